/* The fork-join pool: every part runs exactly once per run; runs repeat,
 * nest and follow a sleep; a pool of one thread, a nested run and a run
 * of one part run everything on the caller. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <nde/nde.h>

enum { MAXPARTS = 64 };

typedef struct tally {
    nde_pool *pool;
    atomic_int count[MAXPARTS];
    pthread_t who[MAXPARTS];
} tally;

static void count_part(void *arg, size_t part)
{
    tally *t = arg;
    atomic_fetch_add(&t->count[part], 1);
    t->who[part] = pthread_self();
}

static void check_once(tally *t, size_t nparts, size_t nthreads)
{
    for (size_t p = 0; p < MAXPARTS; p++)
        ck_assert_int_eq(atomic_load(&t->count[p]), p < nparts);
    if (nthreads == 1 || nparts == 1)
        for (size_t p = 0; p < nparts; p++)
            ck_assert(pthread_equal(t->who[p], pthread_self()));
}

static tally *fresh(tally *t, nde_pool *pool)
{
    memset(t, 0, sizeof *t);
    t->pool = pool;
    return t;
}

START_TEST(every_part_once)
{
    nde_ctx *ctx = nde_ctx_create();
    static tally t;
    for (size_t nthreads = 1; nthreads <= 3; nthreads++) {
        nde_pool *pool;
        ck_assert_int_eq(nde_pool_create(ctx, nthreads, &pool), NDE_OK);
        ck_assert_uint_eq(nde_pool_threads(pool), nthreads);
        const size_t sizes[] = {0, 1, 2, 3, 7, 64};
        for (int rep = 0; rep < 200; rep++)
            for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
                nde_pool_run(pool, count_part, fresh(&t, pool), sizes[k]);
                check_once(&t, sizes[k], nthreads);
            }
        nde_pool_destroy(pool);
    }
    /* no pool: every part on the caller's thread */
    nde_pool_run(NULL, count_part, fresh(&t, NULL), 7);
    check_once(&t, 7, 1);
    nde_ctx_destroy(ctx);
}
END_TEST

/* A part that runs the pool again: the inner run is on its own caller. */
static void nested_part(void *arg, size_t part)
{
    tally *t = arg;
    static tally inner[2];
    (void)part;
    tally *in = fresh(&inner[part], t->pool);
    nde_pool_run(t->pool, count_part, in, 5);
    for (size_t p = 0; p < 5; p++) {
        ck_assert_int_eq(atomic_load(&in->count[p]), 1);
        ck_assert(pthread_equal(in->who[p], pthread_self()));
    }
    count_part(arg, part);
}

START_TEST(nested_runs)
{
    nde_ctx *ctx = nde_ctx_create();
    nde_pool *pool;
    static tally t;
    ck_assert_int_eq(nde_pool_create(ctx, 2, &pool), NDE_OK);
    for (int rep = 0; rep < 50; rep++) {
        nde_pool_run(pool, nested_part, fresh(&t, pool), 2);
        check_once(&t, 2, 2);
    }
    nde_pool_destroy(pool);
    nde_ctx_destroy(ctx);
}
END_TEST

/* Workers that went to sleep wake for the next run; a pool whose workers
 * never ran, or sleep, is destroyed. */
START_TEST(sleep_and_destroy)
{
    nde_ctx *ctx = nde_ctx_create();
    nde_pool *pool;
    static tally t;
    ck_assert_int_eq(nde_pool_create(ctx, 2, &pool), NDE_OK);
    nde_pool_destroy(pool);
    ck_assert_int_eq(nde_pool_create(ctx, 2, &pool), NDE_OK);
    for (int rep = 0; rep < 3; rep++) {
        usleep(20 * NDE_POOL_SPIN_US);
        nde_pool_run(pool, count_part, fresh(&t, pool), 4);
        check_once(&t, 4, 2);
    }
    usleep(20 * NDE_POOL_SPIN_US);
    nde_pool_destroy(pool);
    nde_pool_destroy(NULL);
    nde_ctx_destroy(ctx);
}
END_TEST

START_TEST(bad_thread_count)
{
    nde_ctx *ctx = nde_ctx_create();
    nde_pool *pool = (nde_pool *)ctx;
    ck_assert_int_eq(nde_pool_create(ctx, 0, &pool), NDE_EINVAL);
    ck_assert_ptr_null(pool);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "expected 1 to 256"));
    ck_assert_uint_ge(nde_cpu_count(), 1);
    nde_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    SRunner *sr;
    int failed;
    tcase_add_test(tc, every_part_once);
    tcase_add_test(tc, nested_runs);
    tcase_add_test(tc, sleep_and_destroy);
    tcase_add_test(tc, bad_thread_count);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
