/*
 * nde/comm.h - the ranks of a run spread over processes (MPI), as the
 * trainer and `nde ab` see them.
 *
 * A communicator is a table of operations over `size` processes, of
 * which this one is `rank`. The trainer (nde_trainer_set_comm) and the
 * nde program use nothing else, so neither links an MPI library: the nde
 * program loads its MPI implementation (cli/comm_mpi.c) only when it runs
 * under an MPI launcher, and a run without one has no communicator at all
 * (NULL: one rank).
 *
 * allgather is collective: every rank calls it with the same counts and
 * displs (bytes); rank r's block (counts[r] bytes at buf + displs[r])
 * holds its part on entry, and on return every block holds its owner's
 * part on every rank. Blocks may be empty; a call whose blocks are all
 * of one byte synchronises the ranks. It returns 0, or -1 when the
 * transport failed (the run cannot go on: abort).
 *
 * abort ends every rank of the run with exit status `code` (MPI_Abort):
 * for a rank that fails alone, outside a collective the others wait in.
 * close ends this rank's part of the run (MPI_Finalize) and frees comm.
 */
#ifndef NDE_COMM_H
#define NDE_COMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_comm nde_comm;

struct nde_comm {
    int rank, size;
    int (*allgather)(nde_comm *comm, void *buf, const size_t *counts,
                     const size_t *displs);
    void (*abort)(nde_comm *comm, int code);
    void (*close)(nde_comm *comm);
};

#ifdef __cplusplus
}
#endif

#endif
