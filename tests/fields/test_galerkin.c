/*
 * The fields of Dissecting Neural ODEs. galerkin (plugins/fields/
 * galerkin.c), the depth-variant mlp: with one mode it is the autonomous
 * mlp of the same weights (the layouts agree); with Fourier modes it
 * depends on t with the basis' period, and the coefficients of the
 * non-constant modes start at 0; squash is FFJORD's concatsquash layer.
 * second_order: an oscillator through it.
 * controlled: the inner field's first outputs, the controls held still.
 * Their VJPs are checked against differences by the conformance suite
 * (test_fields.c) and `nde check field` (tests/check).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

static nde_ctx *ctx;
static nde_config *cfg;

static nde_field *field_of(const char *text, size_t batch)
{
    nde_field *f = NULL;
    cfg = nde_config_create();
    ck_assert_int_eq(nde_config_load_string(cfg, "galerkin.ini", text, ctx),
                     NDE_OK);
    ck_assert_msg(nde_field_create(ctx, cfg, "field", batch, &f) == NDE_OK,
                  "%s", nde_ctx_message(ctx));
    nde_config_destroy(cfg);
    return f;
}

static void setup(void) { ctx = nde_ctx_create(); }
static void teardown(void) { nde_ctx_destroy(ctx); }

START_TEST(test_one_mode_is_mlp)
{
    nde_field *g = field_of("[field]\nplugin = galerkin\nlayers = 2, 7, 2\n"
                            "modes = 1\n", 3);
    nde_field *m = field_of("[field]\nplugin = mlp\nlayers = 2, 7, 2\n"
                            "kernels = generic\n", 3);
    const double y[6] = {0.3, -1.2, 2.0, 0.1, -0.7, 0.9};
    double theta[64], dg[6], dm[6];

    ck_assert_uint_eq(g->nparams, m->nparams);
    ck_assert_uint_le(g->nparams, 64);
    for (size_t i = 0; i < g->nparams; i++)
        theta[i] = sin(1.0 + (double)i);
    ck_assert_int_eq(nde_field_eval(g, 0.37, y, theta, dg, 3), NDE_OK);
    ck_assert_int_eq(nde_field_eval(m, 0.37, y, theta, dm, 3), NDE_OK);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(fabs(dg[i] - dm[i]) <= 1e-14 * (1.0 + fabs(dm[i])),
                      "%d: galerkin %.17g, mlp %.17g", i, dg[i], dm[i]);
    nde_field_destroy(g);
    nde_field_destroy(m);
}
END_TEST

START_TEST(test_fourier_in_t)
{
    nde_field *f = field_of("[field]\nplugin = galerkin\nlayers = 2, 5, 2\n"
                            "modes = 3\nperiod = 2\n", 1);
    const double y[2] = {0.4, -0.3};
    double theta[256], a[2], b[2], c[2], init[256];

    ck_assert_uint_eq(f->nparams, 5 * (2 * 5 + 5 + 5 * 2 + 2));
    ck_assert_int_eq(nde_field_init_params(f, init, 3), NDE_OK);
    /* the initial field is autonomous */
    ck_assert_int_eq(nde_field_eval(f, 0.1, y, init, a, 1), NDE_OK);
    ck_assert_int_eq(nde_field_eval(f, 0.9, y, init, b, 1), NDE_OK);
    ck_assert(a[0] == b[0] && a[1] == b[1]);
    for (size_t i = 0; i < f->nparams; i++)
        theta[i] = 0.3 * cos(0.7 * (double)i);
    ck_assert_int_eq(nde_field_eval(f, 0.1, y, theta, a, 1), NDE_OK);
    ck_assert_int_eq(nde_field_eval(f, 0.6, y, theta, b, 1), NDE_OK);
    ck_assert_int_eq(nde_field_eval(f, 2.1, y, theta, c, 1), NDE_OK);
    ck_assert(fabs(a[0] - b[0]) + fabs(a[1] - b[1]) > 1e-3);
    ck_assert(fabs(a[0] - c[0]) <= 1e-12 && fabs(a[1] - c[1]) <= 1e-12);
    nde_field_destroy(f);
}
END_TEST

/* squash, one affine layer: f = (W y + b) sigmoid(g t + c) + e t per
 * output, FFJORD's ConcatSquashLinear, by hand; its parameter names. */
START_TEST(test_squash_by_hand)
{
    nde_field *f = field_of("[field]\nplugin = galerkin\nlayers = 2, 2\n"
                            "basis = squash\n", 1);
    const double y[2] = {0.4, -0.3}, t = 0.7;
    /* W (2 x 2), b, g, c, e */
    const double theta[12] = {1, 2, -3, 0.5, 0.1, -0.2, 0.9, -1.1,
                              0.3, 0.25, -0.6, 1.5};
    char name[32];
    double dy[2];

    ck_assert_uint_eq(f->nparams, 12);
    ck_assert_int_eq(nde_field_eval(f, t, y, theta, dy, 1), NDE_OK);
    for (int i = 0; i < 2; i++) {
        const double lin = theta[2 * i] * y[0] + theta[2 * i + 1] * y[1] +
                           theta[4 + i];
        const double s = 1.0 / (1.0 + exp(-(theta[6 + i] * t +
                                            theta[8 + i])));
        const double want = lin * s + theta[10 + i] * t;
        ck_assert_msg(fabs(dy[i] - want) <= 1e-15 * fabs(want),
                      "%d: %.17g, want %.17g", i, dy[i], want);
    }
    nde_field_param_name(f, 1, name, sizeof name);
    ck_assert_str_eq(name, "W1[0,1]");
    nde_field_param_name(f, 7, name, sizeof name);
    ck_assert_str_eq(name, "gate_t1[1]");
    nde_field_param_name(f, 10, name, sizeof name);
    ck_assert_str_eq(name, "bias_t1[0]");
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_bad_keys)
{
    static const char *bad[][2] = {
        {"layers = 2, 5, 3\n", "first equal to the last"},
        {"layers = 2, 5, 2\nmodes = 0\n", "modes"},
        {"layers = 2, 5, 2\nbasis = legendre\n", "fourier, poly or squash"},
        {"layers = 2, 5, 2\nbasis = squash\nmodes = 3\n",
         "modes: is a key of the fourier and poly bases"},
        {"layers = 2, 5, 2\nbasis = squash\nperiod = 2\n",
         "period: is a key of the fourier and poly bases"},
        {"layers = 2, 5, 2\nactivation = gelu\n", "tanh, relu"},
        {"layers = 2, 5, 2\nperiod = 0\n", "period"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[256];
        nde_field *f = NULL;
        snprintf(text, sizeof text, "[field]\nplugin = galerkin\n%s",
                 bad[i][0]);
        cfg = nde_config_create();
        ck_assert_int_eq(nde_config_load_string(cfg, "bad.ini", text, ctx),
                         NDE_OK);
        ck_assert_int_eq(nde_field_create(ctx, cfg, "field", 1, &f),
                         NDE_ECONFIG);
        ck_assert_msg(strstr(nde_ctx_message(ctx), bad[i][1]) &&
                          strstr(nde_ctx_message(ctx), "bad.ini"),
                      "%s: %s", bad[i][0], nde_ctx_message(ctx));
        nde_config_destroy(cfg);
    }
}
END_TEST

/* second_order: x'' = -x through an inner linear field whose second row
 * is the acceleration (its first row is ignored), from (1, 0): x(pi) =
 * -1, v(pi) = 0. */
START_TEST(test_second_order_oscillator)
{
    nde_field *f = field_of("[field]\nplugin = second_order\ninner = acc\n"
                            "[field.acc]\nplugin = linear\nA = 5, 7\n"
                            "  -1, 0\n", 1);
    const nde_plugin_info *info;
    nde_solver *s;
    nde_solve_opts o;
    double theta[8], y0[2] = {1.0, 0.0}, y[2];
    const double t1 = M_PI;

    ck_assert_uint_eq(f->dim, 2);
    ck_assert_int_eq(nde_field_init_params(f, theta, 1), NDE_OK);
    ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_SOLVER, "tsit5", &info),
                     NDE_OK);
    ck_assert_int_eq(nde_solver_create_from(
                         ctx, (const nde_solver_type *)info, f, &s), NDE_OK);
    nde_solve_opts_default(&o, (const nde_solver_type *)info);
    o.rtol = o.atol = 1e-11;
    ck_assert_int_eq(nde_solve(s, &o, theta, 0.0, y0, t1, 1, &t1, y, NULL),
                     NDE_OK);
    ck_assert_msg(fabs(y[0] + 1.0) < 1e-8 && fabs(y[1]) < 1e-8,
                  "x(pi) %.17g, v(pi) %.17g", y[0], y[1]);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* controlled: h' = the first n rows of the inner linear field on (h, x),
 * x' = 0, row by row; the VJP with a cotangent on x alone is 0. */
START_TEST(test_controlled_holds_controls)
{
    nde_field *f = field_of("[field]\nplugin = controlled\ninner = g\n"
                            "controls = 2\n[field.g]\nplugin = linear\n"
                            "A = 1, 2, 3, 4\n  5, 6, 7, 8\n"
                            "  9, 9, 9, 9\n  9, 9, 9, 9\n", 2);
    const double y[8] = {1, -1, 0.5, 2, 0, 3, -2, 1};
    const double want[8] = {8.5, 18.5, 0, 0, 4, 12, 0, 0};
    const double vx[8] = {0, 0, 1, -1, 0, 0, 2, 3};
    double theta[32], dy[8], vy[8] = {0}, vth[32] = {0};

    ck_assert_uint_eq(f->dim, 4);
    ck_assert_int_eq(nde_field_init_params(f, theta, 1), NDE_OK);
    ck_assert_int_eq(nde_field_eval(f, 0.0, y, theta, dy, 2), NDE_OK);
    for (int i = 0; i < 8; i++)
        ck_assert_msg(dy[i] == want[i], "%d: %g, want %g", i, dy[i],
                      want[i]);
    ck_assert_int_eq(nde_field_vjp(f, 0.0, y, theta, vx, vy, vth, 2),
                     NDE_OK);
    for (int i = 0; i < 8; i++)
        ck_assert_msg(vy[i] == 0.0, "vy[%d] %g", i, vy[i]);
    for (size_t i = 0; i < f->nparams; i++)
        ck_assert_msg(vth[i] == 0.0, "vtheta[%zu] %g", i, vth[i]);
    nde_field_destroy(f);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("galerkin");
    TCase *tc = tcase_create("galerkin");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_one_mode_is_mlp);
    tcase_add_test(tc, test_fourier_in_t);
    tcase_add_test(tc, test_squash_by_hand);
    tcase_add_test(tc, test_bad_keys);
    tcase_add_test(tc, test_second_order_oscillator);
    tcase_add_test(tc, test_controlled_holds_controls);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
