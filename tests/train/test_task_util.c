/*
 * task_util.c's order statistics and draws (plugins/tasks/task_util.c):
 * task_kth_smallest against qsort on arrays with and without repeated
 * values, every k; and task_choose, the windows task's draw of a
 * batch of distinct window starts: k distinct values of 0..n-1 in
 * increasing order with the marks left clear (both orderings: k^2 <= n
 * sorts, k^2 > n reads the marks); every value of a k = n draw; and
 * uniform over the k-subsets: 60000 draws of 2 of 5 spread over the 10
 * subsets with a chi-square below its 0.999 quantile for 9 degrees of
 * freedom (27.88), and 20000 draws of 20 of 991 put each value within
 * 4.5 standard deviations of its expected count.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "task_util.h"

/* Whether out holds k increasing values below n and the marks are
 * clear. */
static int draw_ok(const size_t *out, size_t k, size_t n,
                   const unsigned char *mark)
{
    for (size_t i = 0; i < k; i++)
        if (out[i] >= n || (i > 0 && out[i] <= out[i - 1]))
            return 0;
    for (size_t v = 0; v < n; v++)
        if (mark[v])
            return 0;
    return 1;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

START_TEST(test_kth_smallest)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    double v[200], w[200], sorted[200];
    for (size_t rep = 0; rep < 60; rep++) {
        const size_t n = 1 + (rep * 37) % 200;
        /* every third array from 5 values only: runs of equal ones */
        for (size_t i = 0; i < n; i++)
            v[i] = rep % 3 ? gsl_rng_uniform(r) - 0.5
                           : (double)gsl_rng_uniform_int(r, 5);
        memcpy(sorted, v, n * sizeof *v);
        qsort(sorted, n, sizeof *sorted, cmp_double);
        for (size_t k = 0; k < n; k++) {
            memcpy(w, v, n * sizeof *v);
            ck_assert_msg(task_kth_smallest(w, n, k) == sorted[k],
                          "n %zu k %zu", n, k);
        }
    }
    gsl_rng_free(r);
}
END_TEST

START_TEST(test_distinct_sorted_all)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    unsigned char mark[50] = {0};
    size_t out[50];
    for (size_t rep = 0; rep < 200; rep++) {
        const size_t n = 1 + rep % 50, k = rep % (n + 1);
        task_choose(r, out, k, n, mark);
        ck_assert_msg(draw_ok(out, k, n, mark), "%zu of %zu", k, n);
    }
    task_choose(r, out, 50, 50, mark);
    for (size_t v = 0; v < 50; v++)
        ck_assert_uint_eq(out[v], v);
    gsl_rng_free(r);
}
END_TEST

START_TEST(test_uniform_subsets)
{
    enum { N = 5, DRAWS = 60000 };
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    unsigned char mark[N] = {0};
    long count[N][N] = {{0}};
    double chi2 = 0.0;
    size_t out[2];
    gsl_rng_set(r, 7);
    for (long d = 0; d < DRAWS; d++) {
        task_choose(r, out, 2, N, mark);
        count[out[0]][out[1]]++;
    }
    for (size_t a = 0; a < N; a++)
        for (size_t b = a + 1; b < N; b++) {
            const double e = DRAWS / 10.0, x = (double)count[a][b] - e;
            chi2 += x * x / e;
        }
    fprintf(stderr, "task_choose 2 of 5, %d draws: chi-square %.2f over the "
            "10 subsets (0.999 quantile, 9 d.f.: 27.88)\n", DRAWS, chi2);
    ck_assert_msg(chi2 < 27.88, "chi-square %.2f", chi2);
    gsl_rng_free(r);
}
END_TEST

START_TEST(test_spiral_sized)
{
    enum { N = 991, K = 20, DRAWS = 20000 };
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    unsigned char *mark = calloc(N, 1);
    long *hits = calloc(N, sizeof *hits);
    size_t out[K];
    double worst = 0.0;
    const double e = (double)DRAWS * K / N, sd = sqrt(e * (1.0 - 1.0 * K / N));
    ck_assert(mark && hits);
    for (long d = 0; d < DRAWS; d++) {
        task_choose(r, out, K, N, mark);
        ck_assert_msg(draw_ok(out, K, N, mark), "draw %ld", d);
        for (size_t i = 0; i < K; i++)
            hits[out[i]]++;
    }
    for (size_t v = 0; v < N; v++)
        worst = fmax(worst, fabs((double)hits[v] - e) / sd);
    fprintf(stderr, "task_choose 20 of 991, %d draws: each value %.1f "
            "times expected, the farthest %.2f sd away\n", DRAWS, e, worst);
    /* the largest of 991 normal deviations is below 4.5 sd but with
     * probability 991 x 6.8e-6 = 0.7 % */
    ck_assert_msg(worst < 4.5, "a value %.2f sd off", worst);
    free(mark);
    free(hits);
    gsl_rng_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("task_util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_kth_smallest);
    tcase_add_test(tc, test_distinct_sorted_all);
    tcase_add_test(tc, test_uniform_subsets);
    tcase_add_test(tc, test_spiral_sized);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
