/*
 * pool.c - the fork-join pool (nde/pool.h).
 *
 * A run publishes (fn, arg, nparts) and bumps a generation counter; each
 * worker waits for the counter to change, runs its parts and counts
 * itself done; the caller runs part 0 (and every nthreads-th after it)
 * and spins until every worker has counted. A worker waits by spinning
 * on the counter for NDE_POOL_SPIN_US, then on a condition variable; it
 * says so in `sleepers` first, so a run locks and signals only when
 * someone sleeps. sleepers and gen are sequentially consistent: either
 * the run sees the sleeper or the sleeper sees the new generation.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nde/pool.h"

typedef struct worker {
    nde_pool *pool;
    size_t index;          /* 1 .. nthreads - 1 */
    pthread_t thread;
} worker;

struct nde_pool {
    size_t nthreads;
    worker *workers;       /* nthreads - 1 */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_uint gen;       /* bumped by every run and by destroy */
    atomic_int sleepers;   /* workers on (or going to) the condition */
    atomic_size_t done;    /* workers through the current run */
    atomic_int stop;
    atomic_flag busy;      /* a run is in progress */
    nde_pool_fn fn;        /* the current run, published by gen */
    void *arg;
    size_t nparts;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

/* Wait until gen differs from seen; return its new value. */
static unsigned wait_for_run(nde_pool *pool, unsigned seen)
{
    unsigned gen;
    double until = 0.0;
    for (unsigned spin = 0;; spin++) {
        if ((gen = atomic_load_explicit(&pool->gen, memory_order_acquire)) !=
            seen)
            return gen;
        cpu_relax();
        /* the clock every 64 pauses: a pause is 10-150 cycles */
        if (spin % 64 == 0) {
            double t = now_us();
            if (spin == 0)
                until = t + NDE_POOL_SPIN_US;
            else if (t > until)
                break;
        }
    }
    atomic_fetch_add(&pool->sleepers, 1);
    pthread_mutex_lock(&pool->lock);
    while ((gen = atomic_load(&pool->gen)) == seen)
        pthread_cond_wait(&pool->wake, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    atomic_fetch_sub(&pool->sleepers, 1);
    return gen;
}

static void run_parts(nde_pool *pool, size_t first)
{
    for (size_t p = first; p < pool->nparts; p += pool->nthreads)
        pool->fn(pool->arg, p);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    nde_pool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_for_run(pool, seen);
        if (atomic_load(&pool->stop))
            return NULL;
        run_parts(pool, w->index);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
    }
}

/* Bump the generation and wake whoever sleeps. */
static void publish(nde_pool *pool)
{
    atomic_fetch_add(&pool->gen, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
}

/* Stop and join the first n workers, free the rest. */
static void stop_workers(nde_pool *pool, size_t n)
{
    atomic_store(&pool->stop, 1);
    publish(pool);
    for (size_t i = 0; i < n; i++)
        pthread_join(pool->workers[i].thread, NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool);
}

int nde_pool_create(nde_ctx *ctx, size_t nthreads, nde_pool **out)
{
    nde_pool *pool;
    *out = NULL;
    if (nthreads < 1 || nthreads > 256)
        return nde_error(ctx, NDE_EINVAL,
                         "pool: %zu threads; expected 1 to 256", nthreads);
    if (!(pool = calloc(1, sizeof *pool)) ||
        !(pool->workers = calloc(nthreads, sizeof *pool->workers))) {
        free(pool);
        return nde_error(ctx, NDE_ENOMEM, "pool: out of memory");
    }
    pool->nthreads = nthreads;
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->stop, 0);
    atomic_flag_clear(&pool->busy);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    for (size_t i = 0; i + 1 < nthreads; i++) {
        worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i + 1;
        int err = pthread_create(&w->thread, NULL, worker_main, w);
        if (err) {
            stop_workers(pool, i);
            return nde_error(ctx, NDE_EFATAL,
                             "pool: cannot start thread %zu of %zu: %s",
                             i + 2, nthreads, strerror(err));
        }
    }
    *out = pool;
    return NDE_OK;
}

void nde_pool_run(nde_pool *pool, nde_pool_fn fn, void *arg, size_t nparts)
{
    if (pool->nthreads == 1 || nparts <= 1 ||
        atomic_flag_test_and_set(&pool->busy)) {
        for (size_t p = 0; p < nparts; p++)
            fn(arg, p);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    pool->nparts = nparts;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    publish(pool);
    run_parts(pool, 0);
    const size_t nworkers = pool->nthreads - 1;
    for (unsigned spin = 1; atomic_load_explicit(&pool->done,
                                                 memory_order_acquire) <
                            nworkers;
         spin++) {
        cpu_relax();
        /* a worker that was preempted: let it have the CPU */
        if (spin % 4096 == 0)
            sched_yield();
    }
    atomic_flag_clear(&pool->busy);
}

size_t nde_pool_threads(const nde_pool *pool)
{
    return pool->nthreads;
}

void nde_pool_destroy(nde_pool *pool)
{
    if (pool)
        stop_workers(pool, pool->nthreads - 1);
}

size_t nde_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (size_t)n : 1;
}
