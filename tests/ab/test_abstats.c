/*
 * test_abstats.c - the statistics of `nde ab` (cli/ab/abstats.h) against
 * independently computed reference values.
 *
 * References: SciPy 1.10.1 (Debian python3-scipy):
 *   scipy.stats.ttest_ind(x, y, equal_var=False) for t and the two-sided
 *   p-value; the Fieller bounds as the roots, found by scipy.optimize.brentq
 *   on either side of R = mean(x)/mean(y), of
 *   f(rho) = (mx - rho my)^2 - q^2 (vx + rho^2 vy),
 *   q = scipy.stats.t.ppf(0.975, df), df Welch-Satterthwaite of
 *   vx + R^2 vy (the definition in cli/ab/abstats.c).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "abstats.h"

static const double xa[] = {10.2, 11.5, 9.8, 12.1, 10.9};
static const double ya[] = {14.0, 15.2, 13.1, 16.3, 14.8, 15.5};
static const double xb[] = {0.021, 0.034, 0.018, 0.05, 0.027};
static const double yb[] = {0.022, 0.019, 0.031, 0.025, 0.02};

#define CLOSE(a, b, rel) ck_assert_double_eq_tol((a), (b), (rel) * fabs(b))

START_TEST(mean_sd)
{
    double m, s;
    nde_ab_mean_sd(xa, 5, &m, &s);
    CLOSE(m, 10.9, 1e-14);
    CLOSE(s, 0.9354143466934852, 1e-13);
    nde_ab_mean_sd(xa, 1, &m, &s);
    CLOSE(m, 10.2, 1e-15);
    ck_assert(isnan(s));
    nde_ab_mean_sd(xa, 0, &m, &s);
    ck_assert(isnan(m) && isnan(s));
}
END_TEST

START_TEST(welch_fieller_clear_difference)
{
    nde_ab_compare c;
    nde_ab_compare_means(xa, 5, ya, 6, &c);
    CLOSE(c.ratio, 0.7356580427446571, 1e-13);
    CLOSE(c.t, -6.277501218628209, 1e-12);
    CLOSE(c.p_value, 0.00014487274344522183, 1e-8);
    CLOSE(c.ci95[0], 0.6555377161884166, 1e-8);
    CLOSE(c.ci95[1], 0.8233950744993607, 1e-8);
}
END_TEST

START_TEST(welch_fieller_no_difference)
{
    nde_ab_compare c;
    nde_ab_compare_means(xb, 5, yb, 5, &c);
    CLOSE(c.ratio, 1.2820512820512822, 1e-13);
    CLOSE(c.t, 1.0826948796258988, 1e-12);
    CLOSE(c.p_value, 0.3272423253008634, 1e-8);
    CLOSE(c.ci95[0], 0.6619292793345232, 1e-8);
    CLOSE(c.ci95[1], 2.0424764003070375, 1e-8);
}
END_TEST

START_TEST(same_sample)
{
    nde_ab_compare c;
    nde_ab_compare_means(xa, 5, xa, 5, &c);
    ck_assert_double_eq(c.ratio, 1.0);
    ck_assert_double_eq(c.t, 0.0);
    ck_assert_double_eq_tol(c.p_value, 1.0, 1e-12);
    ck_assert(c.ci95[0] < 1 && c.ci95[1] > 1);
}
END_TEST

START_TEST(degenerate)
{
    const double a[] = {3, 3, 3}, b[] = {6, 6, 6}, z[] = {0, 0, 0};
    const double w[] = {0.1, -0.2, 0.15};
    nde_ab_compare c;

    /* no variance: exact ratio, p 0 or 1 */
    nde_ab_compare_means(a, 3, b, 3, &c);
    ck_assert_double_eq(c.ratio, 0.5);
    ck_assert_double_eq(c.ci95[0], 0.5);
    ck_assert_double_eq(c.ci95[1], 0.5);
    ck_assert_double_eq(c.p_value, 0.0);
    nde_ab_compare_means(a, 3, a, 3, &c);
    ck_assert_double_eq(c.p_value, 1.0);
    /* zero baseline mean: no ratio */
    nde_ab_compare_means(a, 3, z, 3, &c);
    ck_assert(isnan(c.ratio) && isnan(c.ci95[0]));
    /* baseline mean not significantly non-zero: unbounded interval */
    nde_ab_compare_means(a, 3, w, 3, &c);
    ck_assert(isfinite(c.ratio) && isnan(c.ci95[0]) && isnan(c.ci95[1]));
    ck_assert(c.p_value >= 0 && c.p_value <= 1);
    /* one run: means only */
    nde_ab_compare_means(a, 1, b, 3, &c);
    ck_assert_double_eq(c.ratio, 0.5);
    ck_assert(isnan(c.p_value) && isnan(c.ci95[0]));
}
END_TEST

/* ---- the sweep's recommendation on synthetic results ---------------------- */

/* Baseline: cost about 100, loss about 1; candidates i = 0..n-1 given as
 * per-seed costs and losses (3 seeds each). */
static const double base_cost[] = {100, 102, 98}, base_loss[] = {1.0, 1.1, 0.9};

static void judge_all(const double (*cost)[3], const double (*loss)[3],
                      size_t n, nde_ab_compare *cc, nde_ab_compare *qc)
{
    for (size_t i = 0; i < n; i++) {
        nde_ab_compare_means(cost[i], 3, base_cost, 3, &cc[i]);
        nde_ab_compare_means(loss[i], 3, base_loss, 3, &qc[i]);
    }
}

/* The biggest cut (index 2) is significantly worse: the next one wins. */
START_TEST(recommend_skips_significantly_worse)
{
    const double cost[][3] = {{99, 101, 97}, {70, 72, 68}, {30, 31, 29}};
    const double loss[][3] = {{1.0, 1.05, 0.95}, {1.1, 1.2, 0.95},
                              {9.0, 9.5, 8.5}};
    nde_ab_compare cc[3], qc[3];

    judge_all(cost, loss, 3, cc, qc);
    ck_assert_int_eq(nde_ab_judge(&cc[1], &qc[1], 0, 0.05),
                     NDE_AB_QUALIFIES);
    ck_assert(qc[2].p_value < 0.05);
    ck_assert_int_eq(nde_ab_judge(&cc[2], &qc[2], 0, 0.05), NDE_AB_WORSE);
    ck_assert_int_eq(nde_ab_recommend(cc, qc, 3, 0, 0.05), 1);
    /* the same numbers as accuracies: index 2 is significantly better */
    ck_assert_int_eq(nde_ab_judge(&cc[2], &qc[2], 1, 0.05),
                     NDE_AB_QUALIFIES);
    ck_assert_int_eq(nde_ab_recommend(cc, qc, 3, 1, 0.05), 2);
}
END_TEST

/* No cut, a worse cut and an untestable one: nothing qualifies. */
START_TEST(recommend_none_qualifies)
{
    const double cost[][3] = {{100, 103, 99}, {50, 51, 49}, {60, 61, 59}};
    const double loss[][3] = {{0.5, 0.5, 0.5}, {3.0, 3.1, 2.9},
                              {1.0, 1.0, 1.0}};
    nde_ab_compare cc[3], qc[3];

    judge_all(cost, loss, 3, cc, qc);
    ck_assert_int_eq(nde_ab_judge(&cc[0], &qc[0], 0, 0.05), NDE_AB_NO_CUT);
    ck_assert_int_eq(nde_ab_judge(&cc[1], &qc[1], 0, 0.05), NDE_AB_WORSE);
    /* one run only: no p-value, so not recommended */
    nde_ab_compare_means(loss[2], 1, base_loss, 3, &qc[2]);
    ck_assert_int_eq(nde_ab_judge(&cc[2], &qc[2], 0, 0.05),
                     NDE_AB_UNTESTED);
    ck_assert_int_eq(nde_ab_recommend(cc, qc, 3, 0, 0.05), -1);
    ck_assert_int_eq(nde_ab_recommend(cc, qc, 0, 0, 0.05), -1);
    /* no successful run: untested, not "no cut" */
    nde_ab_compare_means(cost[0], 0, base_cost, 3, &cc[0]);
    ck_assert_int_eq(nde_ab_judge(&cc[0], &qc[0], 0, 0.05),
                     NDE_AB_UNTESTED);
}
END_TEST

/* Worse but not significantly (p >= alpha) still qualifies; a stricter
 * alpha does not change that, a looser one can. */
START_TEST(recommend_alpha_boundary)
{
    const double cost[][3] = {{80, 81, 79}};
    const double loss[][3] = {{1.1, 1.25, 0.95}};
    nde_ab_compare cc[1], qc[1];

    judge_all(cost, loss, 1, cc, qc);
    ck_assert(qc[0].mean_x > qc[0].mean_y);
    ck_assert(qc[0].p_value > 0.05);
    ck_assert_int_eq(nde_ab_recommend(cc, qc, 1, 0, 0.05), 0);
    ck_assert_int_eq(nde_ab_recommend(cc, qc, 1, 0, qc[0].p_value * 1.01),
                     -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ab");
    TCase *tc = tcase_create("stats");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, mean_sd);
    tcase_add_test(tc, welch_fieller_clear_difference);
    tcase_add_test(tc, welch_fieller_no_difference);
    tcase_add_test(tc, same_sample);
    tcase_add_test(tc, degenerate);
    tcase_add_test(tc, recommend_skips_significantly_worse);
    tcase_add_test(tc, recommend_none_qualifies);
    tcase_add_test(tc, recommend_alpha_boundary);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
