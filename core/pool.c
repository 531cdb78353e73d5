/*
 * pool.c - the fork-join pool (nde/pool.h).
 *
 * A run publishes (fn, arg) and then a ticket: the run's generation, its
 * part count and the next part to take, in one 64-bit word. Every thread
 * of the pool, the caller first, takes parts by incrementing the ticket
 * (a compare-and-swap that fails once the generation has moved on, so a
 * worker that arrives late never touches a later run's parts) and counts
 * each part done; the caller returns once all are. Parts are not bound
 * to threads: on a machine whose other cores are busy, a worker that is
 * not running leaves its share to the caller instead of making it wait
 * (with parts bound to threads, a 2-thread run behind a busy core took
 * 80 us instead of 1 us: the caller spun until the scheduler gave the
 * worker a turn).
 *
 * A worker waits for a new generation by spinning for NDE_POOL_SPIN_US
 * (pausing, then yielding), then on a condition variable; it says so in `sleepers` first, so a run
 * locks and signals only when someone sleeps. sleepers and the ticket
 * are sequentially consistent: either the run sees the sleeper or the
 * sleeper sees the new ticket.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nde/pool.h"

typedef struct worker {
    nde_pool *pool;
    pthread_t thread;
} worker;

struct nde_pool {
    size_t nthreads;
    worker *workers;       /* nthreads - 1 */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    _Atomic uint64_t ticket; /* generation << 32 | nparts << 16 | next */
    uint32_t gen;          /* the last run's generation (the caller's) */
    atomic_int sleepers;   /* workers on (or going to) the condition */
    atomic_size_t done;    /* parts of the current run done */
    atomic_int stop;
    atomic_flag busy;      /* a run is in progress */
    nde_pool_fn fn;        /* the current run's, read under a claim */
    void *arg;
};

static uint32_t ticket_gen(uint64_t t)
{
    return (uint32_t)(t >> 32);
}

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

/* Wait for a ticket of another generation than seen; return it. */
static uint64_t wait_for_run(nde_pool *pool, uint32_t seen)
{
    uint64_t t;
    double start = 0.0, waited = 0.0;
    for (unsigned spin = 0;; spin++) {
        t = atomic_load_explicit(&pool->ticket, memory_order_acquire);
        if (ticket_gen(t) != seen)
            return t;
        /* after a few microseconds, spin by yielding: a caller that
         * shares this CPU (the others being busy) gets it back */
        if (waited < NDE_POOL_SPIN_US / 10)
            cpu_relax();
        else
            sched_yield();
        /* the clock every 64 pauses: a pause is 10-150 cycles */
        if (spin % 64 == 0 || waited >= NDE_POOL_SPIN_US / 10) {
            double now = now_us();
            if (spin == 0)
                start = now;
            if ((waited = now - start) > NDE_POOL_SPIN_US)
                break;
        }
    }
    atomic_fetch_add(&pool->sleepers, 1);
    pthread_mutex_lock(&pool->lock);
    while (ticket_gen(t = atomic_load(&pool->ticket)) == seen)
        pthread_cond_wait(&pool->wake, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    atomic_fetch_sub(&pool->sleepers, 1);
    return t;
}

/* Run the parts of generation gen that are left, one claim at a time. */
static void take_parts(nde_pool *pool, uint32_t gen)
{
    uint64_t t = atomic_load_explicit(&pool->ticket, memory_order_acquire);
    for (;;) {
        const size_t next = t & 0xffff, nparts = (t >> 16) & 0xffff;
        if (ticket_gen(t) != gen || next >= nparts)
            return;
        if (!atomic_compare_exchange_weak_explicit(&pool->ticket, &t, t + 1,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        pool->fn(pool->arg, next);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
        t = atomic_load_explicit(&pool->ticket, memory_order_acquire);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    nde_pool *pool = w->pool;
    uint32_t seen = 0;
    for (;;) {
        seen = ticket_gen(wait_for_run(pool, seen));
        if (atomic_load(&pool->stop))
            return NULL;
        take_parts(pool, seen);
    }
}

/* A new generation with nparts parts, and a wake-up for whoever sleeps. */
static void publish(nde_pool *pool, size_t nparts)
{
    pool->gen++;
    atomic_store(&pool->ticket,
                 (uint64_t)pool->gen << 32 | (uint64_t)nparts << 16);
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
    publish(pool, 0);
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
    atomic_init(&pool->ticket, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->stop, 0);
    atomic_flag_clear(&pool->busy);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    for (size_t i = 0; i + 1 < nthreads; i++) {
        worker *w = &pool->workers[i];
        w->pool = pool;
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
    if (pool->nthreads == 1 || nparts <= 1 || nparts > NDE_POOL_MAX_PARTS ||
        atomic_flag_test_and_set(&pool->busy)) {
        for (size_t p = 0; p < nparts; p++)
            fn(arg, p);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    publish(pool, nparts);
    take_parts(pool, pool->gen);
    /* the parts other threads took: a worker preempted in one gets the
     * CPU if it is waiting for this one */
    for (unsigned spin = 1;
         atomic_load_explicit(&pool->done, memory_order_acquire) < nparts;
         spin++) {
        cpu_relax();
        if (spin % 1024 == 0)
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
