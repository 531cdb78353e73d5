/*
 * test_sweep.c - `nde ab --sweep` values (cli/ab/sweep.h): parsing, good
 * and bad, and the log spacing (exact at the ends).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sweep.h"

START_TEST(seven_decades)
{
    static const char *const want[] = {"0.001", "0.01", "0.1", "1",
                                       "10",    "100",  "1000"};
    ab_sweep s;
    char err[256] = "";

    ck_assert_int_eq(ab_sweep_parse("regularizer.local.weight=1e-3:1e3:7",
                                    &s, err, sizeof err), 0);
    ck_assert_ptr_null(s.arm);
    ck_assert_str_eq(s.key, "regularizer.local.weight");
    ck_assert_uint_eq(s.n, 7);
    for (size_t i = 0; i < 7; i++) {
        ck_assert_str_eq(s.texts[i], want[i]);
        ck_assert_double_eq(s.values[i], strtod(want[i], NULL));
    }
    ab_sweep_free(&s);
}
END_TEST

/* Ends exactly as given, whatever the rounding between; even spacing in
 * log; the text reads back as the value. */
START_TEST(ends_exact_log_spacing)
{
    ab_sweep s;
    char err[256] = "";

    ck_assert_int_eq(ab_sweep_parse("local:train.lr=3e-4:0.07:5", &s, err,
                                    sizeof err), 0);
    ck_assert_str_eq(s.arm, "local");
    ck_assert_str_eq(s.key, "train.lr");
    ck_assert_double_eq(s.values[0], 3e-4);
    ck_assert_double_eq(s.values[4], 0.07);
    ck_assert_str_eq(s.texts[0], "0.0003");
    ck_assert_str_eq(s.texts[4], "0.07");
    for (size_t i = 0; i < 5; i++) {
        double want = exp(log(3e-4) + (log(0.07) - log(3e-4)) * i / 4.0);
        ck_assert_double_eq_tol(s.values[i], want, 1e-11 * want);
        ck_assert_double_eq(strtod(s.texts[i], NULL), s.values[i]);
    }
    ab_sweep_free(&s);
    /* ends with more digits than the rounding between keeps */
    ck_assert_int_eq(ab_sweep_parse("a.b=1.2345678901234567e-3:"
                                    "0.0123456789012345:4", &s, err,
                                    sizeof err), 0);
    ck_assert_double_eq(s.values[0], 1.2345678901234567e-3);
    ck_assert_double_eq(s.values[3], 0.0123456789012345);
    ck_assert_str_eq(s.texts[3], "0.0123456789012345");
    ck_assert_double_eq(strtod(s.texts[0], NULL), 1.2345678901234567e-3);
    ab_sweep_free(&s);
    /* one value */
    ck_assert_int_eq(ab_sweep_parse("a.b=2.5:2.5:1", &s, err, sizeof err), 0);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_str_eq(s.texts[0], "2.5");
    ab_sweep_free(&s);
}
END_TEST

START_TEST(bad_sweeps_refused)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"regularizer.local.weight", "not [ARM:]KEY=LO:HI:N"},
        {"regularizer.local.weight=1:10", "not [ARM:]KEY=LO:HI:N"},
        {"regularizer.local.weight=1:10:3:4", "not [ARM:]KEY=LO:HI:N"},
        {"weight=1:10:3", "not SECTION.KEY"},
        {":a.b=1:10:3", "no arm name"},
        {"a.b=x:10:3", "finite numbers"},
        {"a.b=1:inf:3", "finite numbers"},
        {"a.b=1:10e:3", "finite numbers"},
        {"a.b=0:10:3", "LO must be > 0"},
        {"a.b=-1:10:3", "LO must be > 0"},
        {"a.b=10:1:3", "below LO"},
        {"a.b=1:10:0", "N must be an integer"},
        {"a.b=1:10:-2", "N must be an integer"},
        {"a.b=1:10:2.5", "N must be an integer"},
        {"a.b=1:10:", "N must be an integer"},
        {"a.b=1:10:101", "N must be an integer"},
        {"a.b=1:10:1", "N = 1 needs HI = LO"},
        {"a.b=1:1:3", "HI = LO needs N = 1"},
        {"a.b=1:1.00000000000001:9", "too close"},
    };
    ab_sweep s;
    char err[256];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        ck_assert_msg(ab_sweep_parse(bad[i].text, &s, err, sizeof err) != 0,
                      "'%s' accepted", bad[i].text);
        ck_assert_msg(strstr(err, bad[i].why) != NULL,
                      "'%s': message '%s' lacks '%s'", bad[i].text, err,
                      bad[i].why);
        ck_assert_ptr_null(s.key);
        ck_assert_ptr_null(s.values);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("sweep");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, seven_decades);
    tcase_add_test(tc, ends_exact_log_spacing);
    tcase_add_test(tc, bad_sweeps_refused);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
