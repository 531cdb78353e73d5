/*
 * The stochastic Heun solver (solvers/heun.c): strong order on
 * Stratonovich GBM against its exact solution driven by the same Brownian
 * path, its step VJP against central differences on a nonlinear coupled
 * field, two evaluations a step, the fixed-step loop with a Brownian
 * Interval agreeing with manual steps, and an ODE field refused.
 * The measured order is printed to stderr for the record.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

/* Random numbers and the GBM, ODE and nonlinear test fields. */
#include "../sde_fields.h"

static nde_ctx *ctx;

static void setup(void)
{
    ctx = nde_ctx_create();
    ck_assert_ptr_nonnull(ctx);
}

static void teardown(void) { nde_ctx_destroy(ctx); }

static nde_solver *make_heun(nde_field *f)
{
    const nde_plugin_info *info;
    nde_solver *s;
    int rc = nde_plugin_find(ctx, NDE_KIND_SOLVER, "heun", &info);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    rc = nde_solver_create_from(ctx, (const nde_solver_type *)info, f, &s);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return s;
}

static nde_field *make_field(const nde_field_type *ft, size_t batch_max)
{
    nde_field *f;
    int rc = nde_field_create_from(ctx, ft, NULL, batch_max, &f);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return f;
}

/*
 * Strong error E|X_N - X(1)| on [0, 1] at h = 2^-k, k = 2..8, over M paths
 * (one per batch row) drawn on the 2^8 grid and summed into coarse
 * increments. Exact Stratonovich GBM: X(1) = x0 exp(a + b W(1)). Theory:
 * strong order 1 for scalar (commutative) noise (Ruemelin 1982).
 */
#define M_PATHS 4000
#define K_FINE 8
#define K_LO 2

START_TEST(test_strong_order_gbm)
{
    const int nfine = 1 << K_FINE, nk = K_FINE - K_LO + 1;
    const double th[2] = {1.01, 0.87}, x0 = 0.5;
    double *dwf = malloc((size_t)nfine * M_PATHS * sizeof(double));
    double *xref = malloc(M_PATHS * sizeof(double));
    double *y = malloc(M_PATHS * sizeof(double));
    double *yn = malloc(M_PATHS * sizeof(double));
    double *dw = malloc(M_PATHS * sizeof(double));
    double lh[K_FINE], le[K_FINE], sx = 0, sy = 0, sxx = 0, sxy = 0, p;
    nde_field *f = make_field(&gbm_field, M_PATHS);
    nde_solver *s = make_heun(f);

    ck_assert_int_eq(nde_solver_set_batch(s, M_PATHS), NDE_OK);
    rng_state = 7;
    for (int m = 0; m < M_PATHS; m++) {
        double w = 0.0;
        for (int j = 0; j < nfine; j++) {
            const double d = sqrt(1.0 / nfine) * gauss();
            dwf[(size_t)j * M_PATHS + m] = d;
            w += d;
        }
        xref[m] = x0 * exp(th[0] + th[1] * w);
    }
    for (int ik = 0; ik < nk; ik++) {
        const int N = 1 << (K_LO + ik), per = nfine / N;
        const double h = 1.0 / N;
        double e = 0.0;
        for (int m = 0; m < M_PATHS; m++)
            y[m] = x0;
        for (int j = 0; j < N; j++) {
            for (int m = 0; m < M_PATHS; m++) {
                double sum = 0.0;
                for (int q = 0; q < per; q++)
                    sum += dwf[(size_t)(j * per + q) * M_PATHS + m];
                dw[m] = sum;
            }
            ck_assert_int_eq(nde_solver_advance(s, th, j * h, h, dw, y, NULL,
                                                yn, NULL), NDE_OK);
            memcpy(y, yn, M_PATHS * sizeof *y);
        }
        for (int m = 0; m < M_PATHS; m++)
            e += fabs(y[m] - xref[m]);
        lh[ik] = log(h);
        le[ik] = log(e / M_PATHS);
    }
    for (int i = 0; i < nk; i++) {
        sx += lh[i]; sy += le[i]; sxx += lh[i] * lh[i]; sxy += lh[i] * le[i];
    }
    p = (nk * sxy - sx * sy) / (nk * sxx - sx * sx);
    fprintf(stderr, "strong order of heun on Stratonovich GBM: %.3f "
            "(h = 1/4: %.3e ... h = 1/256: %.3e; %d paths)\n", p,
            exp(le[0]), exp(le[nk - 1]), M_PATHS);
    ck_assert_msg(fabs(p - 1.0) <= 0.1, "heun strong order %.3f on "
                  "Stratonovich GBM, expected 1.0 +- 0.1", p);
    nde_solver_destroy(s);
    nde_field_destroy(f);
    free(dwf); free(xref); free(y); free(yn); free(dw);
}
END_TEST

/* L = c . y_next of one step from t = 0.3. */
static double step_loss(nde_solver *s, const double *th, double h,
                        const double *dw, const double *y, const double *c,
                        size_t n)
{
    double yn[8], L = 0.0;
    ck_assert_int_eq(nde_solver_advance(s, th, 0.3, h, dw, y, NULL, yn,
                                        NULL), NDE_OK);
    for (size_t i = 0; i < n; i++)
        L += c[i] * yn[i];
    return L;
}

START_TEST(test_step_vjp)
{
    enum { B = 2, N = 4 };
    const double eps = 1e-6, h = 0.1;
    nde_field *f = make_field(&nl_field, B);
    nde_solver *s = make_heun(f);
    double th[4] = {0.8, -0.6, 0.5, 0.3}, y[N], dw[N], c[N];
    double yb[N] = {0}, tb[4] = {0}, yn[N];
    long nfe0, nvjp0;

    ck_assert_int_eq(nde_solver_aux(s), 0);
    ck_assert_int_eq(nde_solver_set_batch(s, B), NDE_OK);
    rng_state = 99;
    for (int i = 0; i < N; i++) {
        y[i] = gauss();
        dw[i] = sqrt(h) * gauss();
        c[i] = gauss();
    }
    nfe0 = s->counts.nfe;
    ck_assert_int_eq(nde_solver_advance(s, th, 0.3, h, dw, y, NULL, yn, NULL),
                     NDE_OK);
    ck_assert_int_eq(s->counts.nfe - nfe0, 2);
    nvjp0 = s->counts.nvjp;
    ck_assert_int_eq(nde_solver_advance_vjp(s, th, 0.3, h, dw, y, NULL, c,
                                            NULL, yb, NULL, tb), NDE_OK);
    ck_assert_int_eq(s->counts.nvjp - nvjp0, 2);
    for (int i = 0; i < N + 4; i++) {
        double *x = i < N ? y + i : th + (i - N);
        const double v = *x, an = i < N ? yb[i] : tb[i - N];
        double lp, lm, fd;
        *x = v + eps;
        lp = step_loss(s, th, h, dw, y, c, N);
        *x = v - eps;
        lm = step_loss(s, th, h, dw, y, c, N);
        *x = v;
        fd = (lp - lm) / (2 * eps);
        ck_assert_msg(fabs(an - fd) <= 1e-7 * (1.0 + fabs(fd)),
                      "%s[%d]: VJP %.12g vs central difference %.12g",
                      i < N ? "ybar" : "thetabar", i < N ? i : i - N, an, fd);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* nde_solve on a Brownian Interval path equals manual steps with the
 * path's increments over the same grid (short last cell included). */
START_TEST(test_loop_matches_manual)
{
    enum { B = 3, N = 6 };
    const double th[4] = {0.8, -0.6, 0.5, 0.3}, t0 = 0.0, t1 = 1.05;
    const double dt = 0.1;
    nde_field *f = make_field(&nl_field, B);
    nde_solver *s = make_heun(f);
    nde_brownian *bm;
    nde_solve_opts o;
    nde_stats st;
    double y0[N], y[N], yn[N], dw[N], yloop[N], t = t0;
    const size_t cells = nde_grid_cells(t0, t1, dt);
    int rc;

    ck_assert_int_eq(nde_solver_set_batch(s, B), NDE_OK);
    ck_assert_int_eq(nde_brownian_create(ctx, N, &bm), NDE_OK);
    for (int i = 0; i < N; i++)
        y0[i] = 0.2 * i - 0.4;
    nde_solve_opts_default(&o, s->type);
    o.dt = dt;
    o.brownian = bm;
    ck_assert_int_eq(nde_brownian_reset(bm, 5, t0, t1, dt, N), NDE_OK);
    rc = nde_solve(s, &o, th, t0, y0, t1, 1, &t1, yloop, &st);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert_int_eq(st.steps_accepted, (long)cells);
    ck_assert_int_eq(st.nfe, 2 * (long)cells);
    ck_assert_int_eq(nde_brownian_reset(bm, 5, t0, t1, dt, N), NDE_OK);
    memcpy(y, y0, sizeof y);
    for (size_t k = 0; k < cells; k++) {
        const double tn = nde_grid_time(t0, t1, dt, cells, k + 1);
        ck_assert_int_eq(nde_brownian_increment(bm, t, tn, dw), NDE_OK);
        ck_assert_int_eq(nde_solver_advance(s, th, t, tn - t, dw, y, NULL,
                                            yn, NULL), NDE_OK);
        memcpy(y, yn, sizeof y);
        t = tn;
    }
    for (int i = 0; i < N; i++)
        ck_assert_msg(fabs(y[i] - yloop[i]) <= 1e-14 * (1.0 + fabs(y[i])),
                      "value %d: loop %.17g, manual %.17g", i, yloop[i],
                      y[i]);
    nde_brownian_destroy(bm);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_ode_field_refused)
{
    const nde_plugin_info *info;
    nde_field *f = make_field(&ode_field, 1);
    nde_solver *s = NULL;

    ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_SOLVER, "heun", &info),
                     NDE_OK);
    ck_assert_int_eq(nde_solver_create_from(ctx,
                                            (const nde_solver_type *)info, f,
                                            &s), NDE_ECAPABILITY);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "heun") != NULL, "%s",
                  nde_ctx_message(ctx));
    nde_field_destroy(f);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("heun");
    TCase *tc = tcase_create("heun");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_strong_order_gbm);
    tcase_add_test(tc, test_step_vjp);
    tcase_add_test(tc, test_loop_matches_manual);
    tcase_add_test(tc, test_ode_field_refused);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
