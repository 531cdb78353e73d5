/*
 * alf, the asynchronous leapfrog of MALI (solvers/alf.c): the round trip
 * of 1000 steps through the exact reverse, second order, adaptive solves
 * that converge with the tolerance, the damping key, and the error
 * estimate (the reference code's h/2 (u - v)) with its VJP. Its step VJP
 * and one-step reverse are checked by `nde check solver alf`
 * (tests/check).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

#include "../ode_fields.h"

static const nde_solver_type *alf_type(void)
{
    const nde_plugin_info *info;
    ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_SOLVER, "alf", &info),
                     NDE_OK);
    return (const nde_solver_type *)info;
}

/* The solver of a config whose [solver] is alf with `keys`. */
static int alf_from(const char *keys, nde_field *f, nde_solver **out)
{
    char text[256];
    nde_config *cfg = nde_config_create();
    int rc;

    snprintf(text, sizeof text, "[solver]\nplugin = alf\n%s", keys);
    ck_assert_int_eq(nde_config_load_string(cfg, "alf.ini", text, ctx),
                     NDE_OK);
    rc = nde_solver_create(ctx, cfg, "solver", f, out);
    nde_config_destroy(cfg);
    return rc;
}

/* 1000 steps of 1e-3 on Lotka-Volterra and 1000 reverse steps return
 * (z0, v0) to 1e-12 relative. */
START_TEST(test_round_trip)
{
    nde_field *f = make_field(&lv_field, 1);
    nde_solver *s = make_solver(alf_type(), f);
    const double y0[2] = {1.0, 1.0}, h = 1e-3;
    double y[2], v[2], yn[2], vn[2], v0[2];

    ck_assert_int_eq(nde_solver_start(s, lv_theta, 0.0, y0, v0), NDE_OK);
    memcpy(y, y0, sizeof y);
    memcpy(v, v0, sizeof v);
    for (int k = 0; k < 1000; k++) {
        ck_assert_int_eq(nde_solver_advance(s, lv_theta, k * h, h, NULL, y,
                                            v, yn, vn), NDE_OK);
        memcpy(y, yn, sizeof y);
        memcpy(v, vn, sizeof v);
    }
    ck_assert(fabs(y[0] - y0[0]) > 0.1);
    for (int k = 1000; k-- > 0;) {
        ck_assert_int_eq(nde_solver_reverse(s, lv_theta, k * h, h, NULL, y, v,
                                            yn, vn), NDE_OK);
        memcpy(y, yn, sizeof y);
        memcpy(v, vn, sizeof v);
    }
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(fabs(y[i] - y0[i]) <= 1e-12 * fabs(y0[i]),
                      "z[%d] %.17g, started at %.17g", i, y[i], y0[i]);
        ck_assert_msg(fabs(v[i] - v0[i]) <= 1e-12 * fabs(v0[i]) + 1e-15,
                      "v[%d] %.17g, started at %.17g", i, v[i], v0[i]);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* Fixed steps on the rotation y' = A y (rot_exact): the error at t = 2
 * falls as h^2. Adaptive solves: the error against the exact solution
 * falls with the tolerance, and the step count grows. */
START_TEST(test_order_and_adaptive)
{
    nde_field *f = make_field(&rot_field, 1);
    nde_solver *s = make_solver(alf_type(), f);
    const double th[4] = {-0.1, 1.0, -1.0, -0.1}, y0[2] = {1.0, 0.5};
    double exact[2], y[2], e[3], tol_err[2];
    long steps[2];
    nde_stats st;
    nde_solve_opts o;
    const double t1 = 2.0;

    rot_exact(th, t1, y0, exact);
    nde_solve_opts_default(&o, alf_type());
    for (int k = 0; k < 3; k++) {
        o.dt = t1 / (40 << k);
        /* a fixed grid: dtmax = dt and a tolerance nothing rejects */
        o.dtmax = o.dt;
        o.rtol = 0.5;
        o.atol = 1e6;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, &st),
                         NDE_OK);
        ck_assert_int_eq(st.steps_rejected, 0);
        e[k] = hypot(y[0] - exact[0], y[1] - exact[1]);
    }
    for (int k = 0; k < 2; k++)
        ck_assert_msg(fabs(log2(e[k] / e[k + 1]) - 2.0) < 0.15,
                      "errors %g %g %g: order %g", e[0], e[1], e[2],
                      log2(e[k] / e[k + 1]));
    nde_solve_opts_default(&o, alf_type());
    for (int k = 0; k < 2; k++) {
        o.rtol = o.atol = k ? 1e-8 : 1e-5;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, &st),
                         NDE_OK);
        tol_err[k] = hypot(y[0] - exact[0], y[1] - exact[1]);
        steps[k] = st.steps_accepted;
    }
    ck_assert_msg(tol_err[1] < tol_err[0] / 10, "errors %g at 1e-5, %g at "
                  "1e-8", tol_err[0], tol_err[1]);
    ck_assert_int_gt(steps[1], steps[0]);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* eta: in (0, 1], 0.5 refused (the inverse divides by 1 - 2 eta); 0.8
 * damps v1 = v + 1.6 (u - v), and its reverse still inverts a step. */
START_TEST(test_eta)
{
    nde_field *f = make_field(&lv_field, 1);
    nde_solver *s = NULL;
    const double y0[2] = {1.0, 1.0};
    double v0[2], y1[2], v1[2], yr[2], vr[2];

    ck_assert_int_eq(alf_from("eta = 0.5\n", f, &s), NDE_ECONFIG);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "eta") &&
                      strstr(nde_ctx_message(ctx), "singular"),
                  "%s", nde_ctx_message(ctx));
    ck_assert_int_eq(alf_from("eta = 1.5\n", f, &s), NDE_ECONFIG);
    ck_assert_int_eq(alf_from("eta = 0\n", f, &s), NDE_ECONFIG);
    ck_assert_int_eq(alf_from("eta = 0.8\n", f, &s), NDE_OK);
    ck_assert_int_eq(nde_solver_start(s, lv_theta, 0.0, y0, v0), NDE_OK);
    ck_assert_int_eq(nde_solver_advance(s, lv_theta, 0.0, 0.1, NULL, y0, v0,
                                        y1, v1), NDE_OK);
    {
        /* v1 = v0 + 2 eta (u - v0) with u = f(h/2, y0 + h/2 v0) */
        double mid[2] = {y0[0] + 0.05 * v0[0], y0[1] + 0.05 * v0[1]}, u[2];
        ck_assert_int_eq(nde_field_eval(f, 0.05, mid, lv_theta, u, 1),
                         NDE_OK);
        for (int i = 0; i < 2; i++)
            ck_assert(fabs(v1[i] - (v0[i] + 1.6 * (u[i] - v0[i]))) <=
                      1e-15 * fabs(v1[i]));
    }
    ck_assert_int_eq(nde_solver_reverse(s, lv_theta, 0.0, 0.1, NULL, y1, v1,
                                        yr, vr), NDE_OK);
    for (int i = 0; i < 2; i++)
        ck_assert(fabs(yr[i] - y0[i]) <= 1e-14 && fabs(vr[i] - v0[i]) <=
                  1e-13 * fabs(v0[i]) + 1e-15);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* A step's VJP at the state a reverse just returned reuses the reverse's
 * evaluation: one evaluation (the reverse's) and one VJP in all, and the
 * VJP is the one computed afresh to round-off. */
START_TEST(test_vjp_after_reverse)
{
    nde_field *f = make_field(&rot_field, 1);
    nde_solver *s = make_solver(alf_type(), f);
    const double th[2] = {-0.1, 1.0}, y0[2] = {1.0, 0.5};
    const double yb[2] = {0.3, -0.7}, vb[2] = {0.2, 0.1};
    double v0[2], y1[2], v1[2], yr[2], vr[2], scratch[4];
    double zb[2][2], wb[2][2], tb[2][2];
    nde_solver_counts c0;

    ck_assert_int_eq(nde_solver_start(s, th, 0.0, y0, v0), NDE_OK);
    ck_assert_int_eq(nde_solver_advance(s, th, 0.0, 0.2, NULL, y0, v0, y1,
                                        v1), NDE_OK);
    for (int k = 0; k < 2; k++) {
        memset(zb[k], 0, sizeof zb[k]);
        memset(wb[k], 0, sizeof wb[k]);
        memset(tb[k], 0, sizeof tb[k]);
        ck_assert_int_eq(nde_solver_reverse(s, th, 0.0, 0.2, NULL, y1, v1, yr,
                                            vr), NDE_OK);
        if (k == 1) /* another step in between: the VJP starts afresh */
            ck_assert_int_eq(nde_solver_advance(s, th, 0.0, 0.1, NULL, yr,
                                                vr, scratch, scratch + 2),
                             NDE_OK);
        c0 = s->counts;
        ck_assert_int_eq(nde_solver_advance_vjp(s, th, 0.0, 0.2, NULL, yr, vr,
                                                yb, vb, zb[k], wb[k], tb[k]),
                         NDE_OK);
        ck_assert_int_eq(s->counts.nfe - c0.nfe, k == 0 ? 0 : 1);
        ck_assert_int_eq(s->counts.nvjp - c0.nvjp, 1);
    }
    for (int i = 0; i < 2; i++)
        ck_assert(fabs(zb[0][i] - zb[1][i]) <= 1e-14 &&
                  fabs(wb[0][i] - wb[1][i]) <= 1e-14 &&
                  fabs(tb[0][i] - tb[1][i]) <= 1e-14);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/*
 * The error estimate is TorchDiffEqPack's (sym12async_forward: vt1 dt/2
 * - v0 dt/2): err = h/2 (u - v), u = f(t + h/2, z + h/2 v), to round-off;
 * and the step VJP with a cotangent on its norm EEst (what the local
 * regularizer asks for) matches central differences of EEst in z, v and
 * theta to 1e-8 relative. Batch 2 of the nonlinear nl2 field.
 */
START_TEST(test_error_estimate)
{
    nde_field *f = make_field(&nl_field, 2);
    nde_solver *s = make_solver(alf_type(), f);
    const double th[3] = {0.7, -0.4, 1.3}, h = 0.3, t = 0.2;
    const double rtol = 1e-3, atol = 1e-4;
    double x[4 + 4 + 3], z1[4], v1[4], err[4], mid[4], u[4];
    double gz[4] = {0}, gv[4] = {0}, gth[3] = {0};
    const nde_step_cotangent ct = {.eest = 1.0, .rtol = rtol, .atol = atol};
    double *z = x, *v = x + 4, *thx = x + 8;

    for (int i = 0; i < 4; i++) {
        z[i] = 0.3 + 0.2 * i;
        v[i] = 0.5 - 0.3 * i;
    }
    memcpy(thx, th, sizeof th);
    ck_assert_int_eq(nde_solver_advance_err(s, th, t, h, NULL, z, v, z1, v1,
                                            err), NDE_OK);
    for (int i = 0; i < 4; i++)
        mid[i] = z[i] + 0.5 * h * v[i];
    ck_assert_int_eq(nde_field_eval(f, t + 0.5 * h, mid, th, u, 2), NDE_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(fabs(err[i] - 0.5 * h * (u[i] - v[i])) <= 1e-15,
                      "err[%d] %.17g, h/2 (u - v) %.17g", i, err[i],
                      0.5 * h * (u[i] - v[i]));
    ck_assert_int_eq(nde_solver_vjp(s, th, t, h, NULL, z, v, &ct, gz, gv,
                                    gth), NDE_OK);
    for (int k = 0; k < 11; k++) {
        const double x0 = x[k], e = 1e-6;
        double ep, em, g = k < 4 ? gz[k] : k < 8 ? gv[k - 4] : gth[k - 8];
        x[k] = x0 + e;
        ck_assert_int_eq(nde_solver_advance_err(s, thx, t, h, NULL, z, v, z1,
                                                v1, err), NDE_OK);
        ep = nde_error_norm(err, z, z1, 4, rtol, atol);
        x[k] = x0 - e;
        ck_assert_int_eq(nde_solver_advance_err(s, thx, t, h, NULL, z, v, z1,
                                                v1, err), NDE_OK);
        em = nde_error_norm(err, z, z1, 4, rtol, atol);
        x[k] = x0;
        ck_assert_msg(fabs(g - (ep - em) / (2 * e)) <=
                          1e-8 * fmax(1.0, fabs(g)),
                      "input %d: VJP %.12g, differences %.12g", k, g,
                      (ep - em) / (2 * e));
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

static Suite *alf_suite(void)
{
    Suite *su = suite_create("alf");
    TCase *tc = tcase_create("alf");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_order_and_adaptive);
    tcase_add_test(tc, test_eta);
    tcase_add_test(tc, test_vjp_after_reverse);
    tcase_add_test(tc, test_error_estimate);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(alf_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
