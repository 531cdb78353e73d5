/*
 * comm_mpi.c - nde/comm.h over MPI: the module the nde program loads
 * (cli/comm.c) when it runs under an MPI launcher. Built only when meson
 * finds MPI; nothing else in nde links an MPI library.
 *
 * Errors of MPI calls return (MPI_ERRORS_RETURN) so that the caller can
 * say what failed; an allgather that fails leaves the run unusable and
 * the caller aborts it.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <sys/prctl.h>

#include <mpi.h>

#include "nde/comm.h"

/*
 * The end of request req (started with status rc): 0, or -1 when it
 * failed. Polled for WAIT_SPIN_US, then with short sleeps: a rank that
 * waits for another (which is still computing its share) gives its CPU
 * away instead of spinning in MPI's progress loop, which on a machine
 * with fewer free cores than ranks took the CPU the other rank needed.
 */
#define WAIT_SPIN_US 50.0
#define WAIT_SLEEP_NS 20000L

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

static int wait_for(int rc, MPI_Request *req)
{
    const double start = now_us();
    const struct timespec nap = {0, WAIT_SLEEP_NS};
    int done = 0;

    if (rc != MPI_SUCCESS)
        return -1;
    while (!done) {
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return -1;
        if (!done && now_us() - start > WAIT_SPIN_US)
            nanosleep(&nap, NULL);
    }
    return 0;
}

/* The MPI interface counts in int: an exchange of more than INT_MAX
 * bytes per block is refused rather than truncated. */
static int mpi_allgather(nde_comm *comm, void *buf, const size_t *counts,
                         const size_t *displs)
{
    int *c = malloc(2 * (size_t)comm->size * sizeof *c), rc = -1;
    MPI_Request req;

    if (!c)
        return -1;
    for (int r = 0; r < comm->size; r++) {
        if (counts[r] > INT_MAX || displs[r] > INT_MAX)
            goto out;
        c[r] = (int)counts[r];
        c[comm->size + r] = (int)displs[r];
    }
    rc = wait_for(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf,
                                  c, c + comm->size, MPI_BYTE,
                                  MPI_COMM_WORLD, &req),
                  &req);
out:
    free(c);
    return rc;
}

static void mpi_abort(nde_comm *comm, int code)
{
    (void)comm;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); /* MPI_Abort does not return; this keeps the contract */
}

static void mpi_close(nde_comm *comm)
{
    MPI_Finalize();
    free(comm);
}

/* The module's entry: MPI initialised, this process's rank and the run's
 * size; NULL with a message in why. */
__attribute__((visibility("default"))) nde_comm *
nde_comm_mpi_open(int *argc, char ***argv, char *why, size_t size)
{
    nde_comm *comm;
    int rank, n, len;
    char text[MPI_MAX_ERROR_STRING];
    int rc = MPI_Init(argc, argv);

    if (rc != MPI_SUCCESS) {
        if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
            snprintf(text, sizeof text, "error %d", rc);
        snprintf(why, size, "MPI_Init failed: %s", text);
        return NULL;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    /* a waiting rank's naps (wait_for) end within a microsecond of their
     * time instead of Linux's default 50 us timer slack: two exchanges
     * an iteration, each a nap late, cost a few percent of a spiral
     * iteration on 2 free cores (bench notes in README, MPI) */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (!(comm = calloc(1, sizeof *comm))) {
        snprintf(why, size, "out of memory");
        MPI_Abort(MPI_COMM_WORLD, 1);
        return NULL;
    }
    comm->rank = rank;
    comm->size = n;
    comm->allgather = mpi_allgather;
    comm->abort = mpi_abort;
    comm->close = mpi_close;
    return comm;
}
