/*
 * nde/pool.h - a fork-join pool of threads for data-parallel kernels.
 *
 * nde_pool_run(pool, fn, arg, nparts) calls fn(arg, part) exactly once
 * for every part in [0, nparts) and returns when all are done. The
 * caller's thread is thread 0 of the pool, so a pool of one thread has no
 * threads at all. Part p goes to thread p % nthreads, so a thread works
 * on the same data run after run; a thread done with its own parts takes
 * those another thread has not started (one that the system has not
 * scheduled yet), so which thread runs a part is not guaranteed: a
 * kernel is deterministic when each part's work is fixed by its number
 * alone, and then gives the same bits on any number of threads.
 *
 * The workers are made for runs of tens of microseconds: after a run
 * they spin for a short while (NDE_POOL_SPIN_US, pausing the CPU) before
 * they sleep, so a run that follows soon starts without a wake-up.
 *
 * One run at a time: a run that starts while another is in progress on
 * the same pool (fn calling nde_pool_run, or another thread) runs all its
 * parts on its own caller, one after the other, as does a run of more
 * than NDE_POOL_MAX_PARTS parts. fn cannot fail through the pool: a part
 * that can fail records it in arg.
 */
#ifndef NDE_POOL_H
#define NDE_POOL_H

#include <stddef.h>
#include "api.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_pool nde_pool;

typedef void (*nde_pool_fn)(void *arg, size_t part);

/* How long an idle worker spins before it sleeps, in microseconds. */
#define NDE_POOL_SPIN_US 50

/* The most parts a run shares between threads. */
#define NDE_POOL_MAX_PARTS 65535

/* A pool of nthreads >= 1 threads, the caller's included (nthreads - 1
 * are started). NDE_EINVAL for nthreads 0 or above 256, NDE_ENOMEM or
 * NDE_EFATAL (a thread could not start) with a message in ctx; *out is
 * then NULL. The caller owns *out. */
NDE_API int nde_pool_create(nde_ctx *ctx, size_t nthreads, nde_pool **out);

/* fn(arg, part) for every part in [0, nparts) (none for nparts 0); a NULL
 * pool runs them all on the caller's thread, in order. */
NDE_API void nde_pool_run(nde_pool *pool, nde_pool_fn fn, void *arg,
                          size_t nparts);

/* The pool's thread count, the caller's included. */
NDE_API size_t nde_pool_threads(const nde_pool *pool);

/* Stop the workers and free the pool; NULL is accepted. Not during a
 * run. */
NDE_API void nde_pool_destroy(nde_pool *pool);

/* The CPUs online, at least 1. */
NDE_API size_t nde_cpu_count(void);

#ifdef __cplusplus
}
#endif

#endif
