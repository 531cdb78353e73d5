/*
 * comm.h - the nde program's ranks when it runs under an MPI launcher
 * (`mpirun -n K nde train|ab ...`).
 *
 * cli_comm_start loads the MPI module (cli/comm_mpi.c, nde-mpi.so) only
 * when the environment shows a launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
 * PMIX_RANK) and NDE_MPI is not `off`: a plain `nde` never loads MPI.
 * On a rank other than 0, stdout goes to /dev/null and stderr is held
 * back: rank 0 speaks for the run. cli_comm_agree is where the ranks
 * compare their exit codes; a failure of a rank other than 0 alone is
 * told by that rank (its held-back stderr), so a message is printed once.
 */
#ifndef CLI_COMM_H
#define CLI_COMM_H

#include "nde/comm.h"

/* For `command` (train or ab): MPI started under a launcher, or nothing
 * without one; an exit code (non-zero: a message was printed). */
int cli_comm_start(int *argc, char ***argv, const char *command);

/* The run's communicator; NULL without a launcher. */
nde_comm *cli_comm(void);

/* This process's rank (0 without a launcher) and the number of ranks. */
int cli_rank(void);
int cli_ranks(void);

/*
 * Collective (every rank calls it at the same point): code if it is not
 * 0, else the first rank's non-zero code, else 0. When some rank failed,
 * the message of the first failed rank is printed: rank 0's went to
 * stderr already; a rank other than 0 prints what it held back. What a
 * rank other than 0 held back is dropped after the call.
 */
int cli_comm_agree(int code);

/* The end of this process's part: MPI finalised; code is returned. */
int cli_comm_end(int code);

#endif
