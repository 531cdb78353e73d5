/*
 * pool.c - the fork-join pool (nde/pool.h).
 *
 * Thread i (0: the caller) owns the parts p = i (mod nthreads): its lane.
 * A lane is one 64-bit word, the run's generation, the lane's part count
 * and the next of them to take; a thread takes a part with a
 * compare-and-swap that fails once the generation has moved on, so a
 * worker that arrives late never touches a later run's parts. Each
 * thread empties its own lane, then the others' (stealing what a thread
 * that has not started left), and counts each part done; the caller
 * returns once all are.
 *
 * Why own lanes: a thread that computes the same columns every run keeps
 * them in its own cache (with any thread taking any part, 2 threads ran
 * the Fashion-MNIST field slower than 1 at every batch up to 512). Why
 * stealing: on a machine whose other cores are busy, a worker that is not
 * running leaves its share to the caller instead of making it wait (with
 * no stealing, a 2-thread run behind a busy core took 80 us instead of
 * 1 us: the caller spun until the scheduler gave the worker a turn).
 *
 * A run stores the lanes, then the generation in `gen`, which the workers
 * wait on: spinning for NDE_POOL_SPIN_US (pausing, then yielding), then
 * on a condition variable. A worker says so in `sleepers` before it
 * sleeps, so a run locks and signals only when someone sleeps; sleepers
 * and gen are sequentially consistent: either the run sees the sleeper or
 * the sleeper sees the new generation.
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
    size_t index;          /* its lane: 1 .. nthreads - 1 */
    pthread_t thread;
} worker;

/* A lane on a cache line of its own: threads claim in their own lanes
 * without moving each other's lines. */
typedef struct lane {
    _Atomic uint64_t word; /* generation << 32 | count << 16 | next */
    char pad[64 - sizeof(uint64_t)];
} lane;

struct nde_pool {
    size_t nthreads;
    worker *workers;       /* nthreads - 1 */
    lane *lanes;           /* nthreads */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_uint gen;       /* the current run's generation */
    atomic_int sleepers;   /* workers on (or going to) the condition */
    atomic_size_t done;    /* parts of the current run done */
    atomic_int stop;
    atomic_flag busy;      /* a run is in progress */
    nde_pool_fn fn;        /* the current run's, read under a claim */
    void *arg;
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

/* Wait for another generation than seen; return it. */
static unsigned wait_for_run(nde_pool *pool, unsigned seen)
{
    unsigned gen;
    double start = 0.0, waited = 0.0;
    for (unsigned spin = 0;; spin++) {
        if ((gen = atomic_load_explicit(&pool->gen, memory_order_acquire)) !=
            seen)
            return gen;
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
    while ((gen = atomic_load(&pool->gen)) == seen)
        pthread_cond_wait(&pool->wake, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    atomic_fetch_sub(&pool->sleepers, 1);
    return gen;
}

/* Take the next part of lane i in generation gen: 1 and *part, or 0
 * when the lane is empty (or of another generation). */
static int claim(nde_pool *pool, size_t i, unsigned gen, size_t *part)
{
    _Atomic uint64_t *word = &pool->lanes[i].word;
    uint64_t t = atomic_load_explicit(word, memory_order_acquire);
    for (;;) {
        const size_t next = t & 0xffff, count = (t >> 16) & 0xffff;
        if ((unsigned)(t >> 32) != gen || next >= count)
            return 0;
        if (atomic_compare_exchange_weak_explicit(word, &t, t + 1,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            *part = i + next * pool->nthreads;
            return 1;
        }
    }
}

/* Run thread self's parts of generation gen, then what is left in the
 * other lanes. */
static void take_parts(nde_pool *pool, size_t self, unsigned gen)
{
    size_t part;
    for (size_t k = 0; k < pool->nthreads; k++) {
        const size_t i = (self + k) % pool->nthreads;
        while (claim(pool, i, gen, &part)) {
            pool->fn(pool->arg, part);
            atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
        }
    }
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
        take_parts(pool, w->index, seen);
    }
}

/* A new generation with nparts parts in the lanes, and a wake-up for
 * whoever sleeps. */
static unsigned publish(nde_pool *pool, size_t nparts)
{
    const unsigned gen = atomic_load_explicit(&pool->gen,
                                              memory_order_relaxed) + 1;
    const size_t n = pool->nthreads;
    for (size_t i = 0; i < n; i++) {
        const uint64_t count = nparts > i ? (nparts - i + n - 1) / n : 0;
        atomic_store_explicit(&pool->lanes[i].word,
                              (uint64_t)gen << 32 | count << 16,
                              memory_order_relaxed);
    }
    atomic_store(&pool->gen, gen);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    return gen;
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
    free(pool->lanes);
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
        !(pool->workers = calloc(nthreads, sizeof *pool->workers)) ||
        !(pool->lanes = aligned_alloc(64, nthreads * sizeof *pool->lanes))) {
        if (pool)
            free(pool->workers);
        free(pool);
        return nde_error(ctx, NDE_ENOMEM, "pool: out of memory");
    }
    pool->nthreads = nthreads;
    for (size_t i = 0; i < nthreads; i++)
        atomic_init(&pool->lanes[i].word, 0);
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
    if (!pool || pool->nthreads == 1 || nparts <= 1 ||
        nparts > NDE_POOL_MAX_PARTS ||
        atomic_flag_test_and_set(&pool->busy)) {
        for (size_t p = 0; p < nparts; p++)
            fn(arg, p);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    take_parts(pool, 0, publish(pool, nparts));
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
