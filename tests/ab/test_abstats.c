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
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
