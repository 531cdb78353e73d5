/*
 * SDE solvers (euler_maruyama, reversible_heun, heun, lamba_heun) and the
 * driver with solvers that have their own ops: pairing checks at create,
 * the ops table checks, operations by capability, strong and weak orders
 * against exact solutions driven by the same Brownian path, the exact
 * reverse of reversible Heun, step and start VJPs against central
 * differences, the driver (grid, save
 * times, tstops, recording, stats, failure modes) and adaptive SDE
 * solvers (a test-only plugin and lamba_heun: the driver re-queries the
 * path on rejection).
 *
 * Orders use increments built here (a Gaussian path on the finest grid,
 * summed into coarse increments; Kloeden, Platen 1992, Sec. 9.3), so they
 * do not depend on the Brownian Interval; the loop tests use nde_brownian.
 * Measured orders are printed to stderr for the record.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

#include "../sde_fields.h"
#include "../sde_fixture.h"

/* ------------------------------------------------------------------ */
/* Test fields beyond sde_fields.h (theta given by the test)           */

#define SDE_FIELD(var, nm, evalfn, vjpfn, gfn, gvjpfn)                       \
    static const nde_field_type var = {                                      \
        .info = NDE_FIELD_INFO(                                              \
            .name = nm,                                                      \
            .description = "test field",                                     \
            .version = "1"),                                                 \
        .create = create_d1p2_diag, .destroy = tf_destroy,                   \
        .init_params = tf_init, .eval = evalfn, .vjp = vjpfn,                \
        .diffusion = gfn, .diffusion_vjp = gvjpfn}

/* Additive noise g = th1 (Ornstein-Uhlenbeck with th0 < 0). */
static int add_g(nde_field *f, double t, const double *y, const double *th,
                 double *g, size_t batch)
{
    (void)t; (void)y;
    for (size_t i = 0; i < batch * f->dim; i++)
        g[i] = th[1];
    return NDE_OK;
}

static int add_gvjp(nde_field *f, double t, const double *y,
                    const double *th, const double *v, double *vy,
                    double *vth, size_t batch)
{
    (void)t; (void)y; (void)th; (void)vy;
    for (size_t i = 0; i < batch * f->dim; i++)
        if (vth)
            vth[1] += v[i];
    return NDE_OK;
}

/* Diffusion NaN from t > 0.5 on. */
static int nan_g(nde_field *f, double t, const double *y, const double *th,
                 double *g, size_t batch)
{
    for (size_t i = 0; i < batch * f->dim; i++)
        g[i] = t > 0.5 ? NAN : th[1] * y[i];
    return NDE_OK;
}

SDE_FIELD(ou_field, "ou", gbm_eval, gbm_vjp, add_g, add_gvjp);
SDE_FIELD(nan_field, "nan_diffusion", gbm_eval, gbm_vjp, nan_g, gbm_gvjp);

/* ------------------------------------------------------------------ */
/* Fixture (the rest is in sde_fixture.h)                              */

static void assert_message(const char *part)
{
    ck_assert_msg(strstr(nde_ctx_message(ctx), part) != NULL,
                  "message '%s' lacks '%s'", nde_ctx_message(ctx), part);
}

/* ------------------------------------------------------------------ */
/* Pairing and refusals                                                 */

START_TEST(test_pairing)
{
    nde_field *ode = make_field(&ode_field, 1);
    nde_field *sde = make_field(&gbm_field, 1);
    nde_solver *s = NULL;

    ck_assert_int_eq(nde_solver_create_from(ctx, solver_named(
                         "euler_maruyama"), ode, &s), NDE_ECAPABILITY);
    ck_assert_ptr_null(s);
    assert_message("solver 'euler_maruyama' integrates SDEs but field 'mlp' "
                   "has no diffusion");
    ck_assert_int_eq(nde_solver_create_from(ctx, solver_named(
                         "reversible_heun"), ode, &s), NDE_ECAPABILITY);
    assert_message("has no diffusion");
    ck_assert_int_eq(nde_solver_create_from(ctx, solver_named("tsit5"), sde,
                                            &s), NDE_ECAPABILITY);
    assert_message("solver 'tsit5' integrates ODEs but field 'gbm' has a "
                   "diffusion");

    sde->calculus = NDE_CALCULUS_STRATONOVICH;
    ck_assert_int_eq(nde_solver_create_from(ctx, solver_named(
                         "euler_maruyama"), sde, &s), NDE_ECAPABILITY);
    assert_message("solver 'euler_maruyama' integrates Ito SDEs but field "
                   "'gbm' is written in stratonovich form");
    s = make_solver("reversible_heun", sde);
    nde_solver_destroy(s);

    sde->calculus = NDE_CALCULUS_ITO;
    ck_assert_int_eq(nde_solver_create_from(ctx, solver_named(
                         "reversible_heun"), sde, &s), NDE_ECAPABILITY);
    assert_message("solver 'reversible_heun' integrates Stratonovich SDEs "
                   "but field 'gbm' is written in ito form");
    s = make_solver("euler_maruyama", sde);
    nde_solver_destroy(s);

    sde->calculus = NDE_CALCULUS_SOLVER;
    s = make_solver("euler_maruyama", sde);
    nde_solver_destroy(s);
    s = make_solver("reversible_heun", sde);
    nde_solver_destroy(s);
    nde_field_destroy(ode);
    nde_field_destroy(sde);
}
END_TEST

/* An ops table that breaks its contract is refused at create. */
static int bad_start(nde_solver *s, const double *th, double t0,
                     const double *y0, double *aux0)
{
    (void)s; (void)th; (void)t0; (void)y0; (void)aux0;
    return NDE_OK;
}

START_TEST(test_ops_table_checked)
{
    const nde_solver_type *em = solver_named("euler_maruyama");
    const nde_solver_type *rh = solver_named("reversible_heun");
    nde_field *f = make_field(&gbm_field, 1);
    nde_solver_type t = *em;
    nde_solver *s;

    t.ops.step_vjp = NULL; /* declared by NDE_CAP_STEP_VJP */
    ck_assert_int_eq(nde_solver_create_from(ctx, &t, f, &s), NDE_EPLUGIN);
    assert_message("step_vjp");
    t = *em;
    t.ops.aux = -1;
    ck_assert_int_eq(nde_solver_create_from(ctx, &t, f, &s), NDE_EPLUGIN);
    t = *em;
    t.info.provides |= NDE_CAP_REVERSIBLE; /* claims a reverse it lacks */
    ck_assert_int_eq(nde_solver_create_from(ctx, &t, f, &s), NDE_EPLUGIN);
    assert_message("reverse");
    t = *em;
    t.ops.step = NULL;
    ck_assert_int_eq(nde_solver_create_from(ctx, &t, f, &s), NDE_EPLUGIN);
    assert_message("step");
    t = *rh;
    t.ops.start = NULL; /* aux without a start */
    ck_assert_int_eq(nde_solver_create_from(ctx, &t, f, &s), NDE_EPLUGIN);
    assert_message("start with aux");
    t = *em;
    t.ops.start = bad_start; /* optional without aux: accepted */
    s = NULL;
    ck_assert_int_eq(nde_solver_create_from(ctx, &t, f, &s), NDE_OK);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* Every operation works for every solver that has it and is refused,
 * naming the solver, for one that has not: the ODE-only conveniences
 * (nde_solver_step and its VJPs) send SDE solvers to nde_solver_advance,
 * and a tableau solver's step is also reachable as nde_solver_advance. */
START_TEST(test_operations_by_capability)
{
    const char *names[] = {"euler_maruyama", "reversible_heun"};
    nde_field *f = make_field(&gbm_field, 2);
    nde_field *ode = make_field(&ode_field, 2);
    const double th[2] = {0.5, 0.3}, y[2] = {1, 2}, ybar[2] = {1, 1};
    double yn[2], yn2[2], err[2], k[8], out, tb[2] = {0, 0}, yb[2] = {0, 0};
    const double *f0;
    nde_solve_opts o;

    for (int i = 0; i < 2; i++) {
        nde_solver *s = make_solver(names[i], f);
        ck_assert_int_eq(nde_solver_step(s, th, 0, 0.1, y, yn, err),
                         NDE_EINVAL);
        assert_message("nde_solver_advance");
        assert_message(names[i]);
        /* f(t, y) by the field when the solver keeps no stage of it */
        ck_assert_int_eq(nde_solver_first_stage(s, th, 0, y, &f0), NDE_OK);
        ck_assert_int_eq(nde_field_eval(f, 0, y, th, yn, 2), NDE_OK);
        ck_assert(f0[0] == yn[0] && f0[1] == yn[1]);
        ck_assert_int_eq(nde_solver_dense(s, y, 0.1, 0.5, yn),
                         NDE_ECAPABILITY);
        assert_message("dense");
        ck_assert_int_eq(nde_solver_dense_from(s, y, 0.1, k, 0.5, yn),
                         NDE_ECAPABILITY);
        ck_assert_int_eq(nde_solver_stiffness(s, y, &out), NDE_ECAPABILITY);
        ck_assert_int_eq(nde_solver_step_vjp(s, th, 0, 0.1, y, 1e-6, 1e-6,
                                             ybar, 0, 0, NULL, 0, yb, tb),
                         NDE_EINVAL);
        ck_assert_int_eq(nde_solver_last_step_vjp(s, 1e-6, 1e-6, ybar, 0, 0,
                                                  NULL, 0, yb, tb),
                         NDE_EINVAL);
        nde_solve_opts_default(&o, s->type);
        ck_assert_int_eq(nde_initial_step(s, &o, th, 0, y, y, 1, &out),
                         NDE_ECAPABILITY);
        nde_solver_accept(s);
        nde_solver_invalidate(s);
        ck_assert_int_eq(nde_solver_copy_stages(s, k), NDE_ECAPABILITY);
        ck_assert_int_eq(nde_solver_stages(s), nde_solver_aux(s));
        ck_assert_int_eq(nde_solver_aux(s), i == 0 ? 0 : 3);
        ck_assert(nde_solver_is_sde(s));
        ck_assert_int_eq(nde_solver_set_batch(s, 1), NDE_OK);
        nde_solver_destroy(s);
    }
    {
        /* A tableau solver through the general entry points. */
        nde_solver *s = make_solver("tsit5", ode);
        double aux[2];
        ck_assert_int_eq(nde_solver_aux(s), 0);
        ck_assert(!nde_solver_is_sde(s));
        ck_assert_int_eq(nde_solver_start(s, th, 0, y, aux), NDE_OK);
        ck_assert_int_eq(nde_solver_advance(s, th, 0, 0.1, NULL, y, NULL, yn,
                                            NULL), NDE_OK);
        nde_solver_invalidate(s);
        ck_assert_int_eq(nde_solver_step(s, th, 0, 0.1, y, yn2, NULL),
                         NDE_OK);
        ck_assert(yn[0] == yn2[0] && yn[1] == yn2[1]);
        ck_assert_int_eq(nde_solver_reverse(s, th, 0, 0.1, NULL, y, NULL, yn,
                                            NULL), NDE_ECAPABILITY);
        assert_message("tsit5");
        ck_assert_int_eq(nde_solver_advance_vjp(s, th, 0, 0.1, NULL, y, NULL,
                                                ybar, NULL, yb, NULL, tb),
                         NDE_OK);
        ck_assert_int_eq(nde_solver_start_vjp(s, th, 0, y, NULL, yb, tb),
                         NDE_OK);
        nde_solver_destroy(s);
    }
    {
        /* Euler-Maruyama has no reverse. */
        nde_solver *s = make_solver("euler_maruyama", f);
        ck_assert_int_eq(nde_solver_reverse(s, th, 0, 0.1, y, y, NULL, yn,
                                            NULL), NDE_ECAPABILITY);
        assert_message("not reversible");
        nde_solver_destroy(s);
    }
    nde_field_destroy(f);
    nde_field_destroy(ode);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Orders                                                               */

#define M_STRONG 4000     /* paths (batch rows)                          */
#define K_FINE 8          /* finest grid: 2^K_FINE steps on [0, 1]       */
#define K_LO 2            /* coarsest: 2^K_LO steps                      */

/*
 * Strong L1 error mean_m |X_T - X_ref,m| of `solver` on `ft` (theta) for
 * h = 2^-k, k = K_LO..K_FINE. Each row's Brownian path is drawn on a grid
 * of 2^K_FINE x sub steps; the solver gets its sums over each coarse step
 * (Kloeden, Platen 1992, Sec. 9.3) and the reference ref(th, x0, path)
 * sees the whole path.
 * Returns the fitted order, prints the errors, *err_out = the finest one.
 */
typedef double (*ref_fn)(const double *th, double x0, const double *dw,
                         int n);

static double strong_order(const char *solver, const nde_field_type *ft,
                           const double *th, double x0, ref_fn ref, int sub,
                           uint64_t seed, double *err_out)
{
    const int nk = K_FINE - K_LO + 1, nfine = 1 << K_FINE;
    const int npath = nfine * sub;
    double *dwf = malloc((size_t)nfine * M_STRONG * sizeof(double));
    double *path = malloc((size_t)npath * sizeof(double));
    double *xref = malloc(M_STRONG * sizeof(double));
    double *y = malloc(M_STRONG * sizeof(double));
    double *yn = malloc(M_STRONG * sizeof(double));
    double *aux = malloc(3 * M_STRONG * sizeof(double));
    double *auxn = malloc(3 * M_STRONG * sizeof(double));
    double *dw = malloc(M_STRONG * sizeof(double));
    double hs[16], es[16], p;
    nde_field *f = make_field(ft, M_STRONG);
    nde_solver *s = make_solver(solver, f);

    rng_state = seed;
    for (int m = 0; m < M_STRONG; m++) {
        for (int j = 0; j < npath; j++)
            path[j] = sqrt(1.0 / npath) * gauss();
        for (int j = 0; j < nfine; j++) {
            double sum = 0.0;
            for (int q = 0; q < sub; q++)
                sum += path[j * sub + q];
            dwf[(size_t)j * M_STRONG + m] = sum;
        }
        xref[m] = ref(th, x0, path, npath);
    }
    for (int ik = 0; ik < nk; ik++) {
        const int N = 1 << (K_LO + ik), per = nfine / N;
        const double h = 1.0 / N;
        double e = 0.0;
        for (int m = 0; m < M_STRONG; m++)
            y[m] = x0;
        ck_assert_int_eq(nde_solver_start(s, th, 0.0, y, aux), NDE_OK);
        for (int j = 0; j < N; j++) {
            for (int m = 0; m < M_STRONG; m++) {
                double sum = 0.0;
                for (int q = 0; q < per; q++)
                    sum += dwf[(size_t)(j * per + q) * M_STRONG + m];
                dw[m] = sum;
            }
            ck_assert_int_eq(nde_solver_advance(s, th, j * h, h, dw, y, aux,
                                                yn, auxn), NDE_OK);
            memcpy(y, yn, M_STRONG * sizeof *y);
            memcpy(aux, auxn, 3 * M_STRONG * sizeof *aux);
        }
        for (int m = 0; m < M_STRONG; m++)
            e += fabs(y[m] - xref[m]);
        hs[ik] = h;
        es[ik] = e / M_STRONG;
    }
    p = ls_slope(hs, es, nk);
    fprintf(stderr, "strong order of %s on %s: %.3f (", solver,
            ft->info.name, p);
    for (int ik = 0; ik < nk; ik++)
        fprintf(stderr, "%sh=1/%d: %.3e", ik ? ", " : "", 1 << (K_LO + ik),
                es[ik]);
    fprintf(stderr, "; %d paths)\n", M_STRONG);
    if (err_out)
        *err_out = es[nk - 1];
    nde_solver_destroy(s);
    nde_field_destroy(f);
    free(dwf); free(path); free(xref); free(y); free(yn); free(aux);
    free(auxn); free(dw);
    return p;
}

static double path_sum(const double *dw, int n)
{
    double w = 0.0;
    for (int j = 0; j < n; j++)
        w += dw[j];
    return w;
}

/* GBM dX = a X dt + b X dW on [0, 1], th = (a, b); exact solution
 * Kloeden, Platen 1992, Sec. 4.4. */
static double gbm_ito(const double *th, double x0, const double *dw, int n)
{
    return x0 * exp(th[0] - 0.5 * th[1] * th[1] + th[1] * path_sum(dw, n));
}

static double gbm_strat(const double *th, double x0, const double *dw, int n)
{
    return x0 * exp(th[0] + th[1] * path_sum(dw, n));
}

/* OU dX = a X dt + s dW (a < 0), th = (a, s): X_1 = e^a x0 + s int_0^1
 * e^{a (1 - u)} dW_u, the integral by the midpoint rule on the fine path
 * (its error, O(|a| s / n), is far below the solvers' on their grids). */
static double ou_ref(const double *th, double x0, const double *dw, int n)
{
    double x = exp(th[0]) * x0;
    for (int j = 0; j < n; j++)
        x += th[1] * exp(th[0] * (1.0 - (j + 0.5) / n)) * dw[j];
    return x;
}

START_TEST(test_em_strong_order)
{
    const double th[2] = {1.01, 0.87};
    const double p = strong_order("euler_maruyama", &gbm_field, th, 0.5,
                                  gbm_ito, 1, 11, NULL);
    ck_assert_msg(fabs(p - 0.5) <= 0.1, "EM strong order %.3f, expected "
                  "0.5 +- 0.1", p);
}
END_TEST

/* Theory: strong order 0.5 for general noise, 1.0 for commutative noise
 * (scalar noise such as GBM's is commutative) and for additive noise
 * (diffrax's SDE solver table, docs/devdocs/SDE_solver_table.md; Kidger
 * et al. 2021 prove 0.5 in general, torchsde's reversible_heun.py states
 * 0.5 general / 1.0 additive). */
START_TEST(test_rh_strong_order)
{
    const double th[2] = {1.01, 0.87};
    const double p = strong_order("reversible_heun", &gbm_field, th, 0.5,
                                  gbm_strat, 1, 12, NULL);
    ck_assert_msg(fabs(p - 1.0) <= 0.1, "reversible Heun strong order %.3f "
                  "on Stratonovich GBM (scalar, commutative noise: 1.0)", p);
}
END_TEST

/* Milstein: strong order 1 on GBM (scalar noise, commutative), Ito and
 * Stratonovich, against the exact solutions. */
START_TEST(test_milstein_strong_order)
{
    const double th[2] = {1.01, 0.87};
    const double pi = strong_order("milstein", &gbm_field, th, 0.5, gbm_ito,
                                   1, 14, NULL);
    const double ps = strong_order("milstein_strat", &gbm_field, th, 0.5,
                                   gbm_strat, 1, 15, NULL);
    ck_assert_msg(fabs(pi - 1.0) <= 0.1, "Ito Milstein strong order %.3f",
                  pi);
    ck_assert_msg(fabs(ps - 1.0) <= 0.1, "Stratonovich Milstein strong "
                  "order %.3f", ps);
}
END_TEST

START_TEST(test_rh_additive)
{
    const double th[2] = {-1.0, 0.7};
    const double p = strong_order("reversible_heun", &ou_field, th, 0.5,
                                  ou_ref, 16, 13, NULL);
    ck_assert_msg(fabs(p - 1.0) <= 0.1, "reversible Heun strong order %.3f "
                  "on OU (additive noise)", p);
}
END_TEST

/* Weak order of EM on E[X_1] for Ito GBM. E[X_num] - E[X_exact] is
 * estimated by the mean of X_num - X_exact(W_1) over the same paths (a
 * control variate: E[X_exact] = x0 e^a is known), so the Monte-Carlo
 * standard error is that of the strong error, not of X itself. */
#define WEAK_CHUNK 10000
#define WEAK_CHUNKS 20
#define WEAK_K_LO 3
#define WEAK_K_HI 6

START_TEST(test_em_weak_order)
{
    const double th[2] = {1.01, 0.87}, x0 = 0.5;
    const int nk = WEAK_K_HI - WEAK_K_LO + 1, nfine = 1 << WEAK_K_HI;
    const double npaths = (double)WEAK_CHUNK * WEAK_CHUNKS;
    double *dwf = malloc((size_t)nfine * WEAK_CHUNK * sizeof(double));
    double *xex = malloc(WEAK_CHUNK * sizeof(double));
    double *y = malloc(WEAK_CHUNK * sizeof(double));
    double *yn = malloc(WEAK_CHUNK * sizeof(double));
    double *dw = malloc(WEAK_CHUNK * sizeof(double));
    double sum[8] = {0}, sum2[8] = {0}, hs[8], bias[8], p;
    nde_field *f = make_field(&gbm_field, WEAK_CHUNK);
    nde_solver *s = make_solver("euler_maruyama", f);

    rng_state = 21;
    for (int c = 0; c < WEAK_CHUNKS; c++) {
        for (int m = 0; m < WEAK_CHUNK; m++) {
            double w = 0.0;
            for (int j = 0; j < nfine; j++) {
                const double d = sqrt(1.0 / nfine) * gauss();
                dwf[(size_t)j * WEAK_CHUNK + m] = d;
                w += d;
            }
            xex[m] = x0 * exp(th[0] - 0.5 * th[1] * th[1] + th[1] * w);
        }
        for (int ik = 0; ik < nk; ik++) {
            const int N = 1 << (WEAK_K_LO + ik), per = nfine / N;
            const double h = 1.0 / N;
            for (int m = 0; m < WEAK_CHUNK; m++)
                y[m] = x0;
            for (int j = 0; j < N; j++) {
                for (int m = 0; m < WEAK_CHUNK; m++) {
                    double d = 0.0;
                    for (int q = 0; q < per; q++)
                        d += dwf[(size_t)(j * per + q) * WEAK_CHUNK + m];
                    dw[m] = d;
                }
                ck_assert_int_eq(nde_solver_advance(s, th, j * h, h, dw, y,
                                                    NULL, yn, NULL), NDE_OK);
                memcpy(y, yn, WEAK_CHUNK * sizeof *y);
            }
            for (int m = 0; m < WEAK_CHUNK; m++) {
                const double d = y[m] - xex[m];
                sum[ik] += d;
                sum2[ik] += d * d;
            }
        }
    }
    fprintf(stderr, "weak error of euler_maruyama on Ito GBM (%.0f paths):",
            npaths);
    for (int ik = 0; ik < nk; ik++) {
        const int N = 1 << (WEAK_K_LO + ik);
        const double mean = sum[ik] / npaths;
        const double se = sqrt((sum2[ik] / npaths - mean * mean) / npaths);
        /* EM's mean is x0 (1 + a h)^N exactly (E[1 + a h + b dW] = 1 + a h) */
        const double analytic = x0 * (pow(1.0 + th[0] / N, N) - exp(th[0]));
        hs[ik] = 1.0 / N;
        bias[ik] = fabs(mean);
        fprintf(stderr, " h=1/%d: %.4e (MC se %.1e, analytic %.4e)", N,
                bias[ik], se, fabs(analytic));
        ck_assert_msg(se < bias[ik] / 5, "Monte-Carlo error %g not below "
                      "the bias %g / 5", se, bias[ik]);
        ck_assert_msg(fabs(mean - analytic) < 4 * se, "mean error %g vs "
                      "analytic %g (se %g)", mean, analytic, se);
    }
    p = ls_slope(hs, bias, nk);
    fprintf(stderr, "; order %.3f\n", p);
    ck_assert_msg(fabs(p - 1.0) <= 0.1, "EM weak order %.3f", p);
    nde_solver_destroy(s);
    nde_field_destroy(f);
    free(dwf); free(xex); free(y); free(yn); free(dw);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Reversibility and VJPs                                               */

START_TEST(test_rh_round_trip)
{
    enum { B = 3, D = 2, N = B * D, STEPS = 1000 };
    const double th[4] = {0.8, -0.6, 0.5, 0.3}, h = 1e-3;
    double *dws = malloc((size_t)STEPS * N * sizeof(double));
    double y0[N], y[N], yn[N], aux0[3 * N], aux[3 * N], auxn[3 * N];
    double ey = 0.0, ea = 0.0, sy = 0.0, sa = 0.0, dist = 0.0;
    nde_field *f = make_field(&nl_field, B);
    nde_solver *s = make_solver("reversible_heun", f);

    rng_state = 5;
    for (int i = 0; i < N; i++)
        y0[i] = y[i] = gauss();
    for (int i = 0; i < STEPS * N; i++)
        dws[i] = sqrt(h) * gauss();
    ck_assert_int_eq(nde_solver_start(s, th, 0.0, y0, aux0), NDE_OK);
    memcpy(aux, aux0, sizeof aux);
    for (int j = 0; j < STEPS; j++) {
        ck_assert_int_eq(nde_solver_advance(s, th, j * h, h, dws + j * N, y,
                                            aux, yn, auxn), NDE_OK);
        memcpy(y, yn, sizeof y);
        memcpy(aux, auxn, sizeof aux);
    }
    for (int i = 0; i < N; i++)
        dist = fmax(dist, fabs(y[i] - y0[i]));
    ck_assert_msg(dist > 0.1, "the path went nowhere (%g)", dist);
    for (int j = STEPS - 1; j >= 0; j--) {
        ck_assert_int_eq(nde_solver_reverse(s, th, j * h, h, dws + j * N, y,
                                            aux, yn, auxn), NDE_OK);
        memcpy(y, yn, sizeof y);
        memcpy(aux, auxn, sizeof aux);
    }
    for (int i = 0; i < N; i++) {
        ey = fmax(ey, fabs(y[i] - y0[i]));
        sy = fmax(sy, fabs(y0[i]));
    }
    for (int i = 0; i < 3 * N; i++) {
        ea = fmax(ea, fabs(aux[i] - aux0[i]));
        sa = fmax(sa, fabs(aux0[i]));
    }
    fprintf(stderr, "reversible_heun round trip, %d steps each way: "
            "relative error y %.2e, (z, f, g) %.2e\n", STEPS, ey / sy,
            ea / sa);
    ck_assert_msg(ey <= 1e-12 * sy && ea <= 1e-12 * sa, "y %g, aux %g",
                  ey / sy, ea / sa);
    nde_solver_destroy(s);
    nde_field_destroy(f);
    free(dws);
}
END_TEST

/* L = cy . y_next + ca . aux_next of one step. */
static double step_loss(nde_solver *s, const double *th, double h,
                        const double *dw, const double *y, const double *aux,
                        const double *cy, const double *ca, size_t n, int na)
{
    double yn[8], auxn[24], L = 0.0;
    ck_assert_int_eq(nde_solver_advance(s, th, 0.3, h, dw, y, aux, yn, auxn),
                     NDE_OK);
    for (size_t i = 0; i < n; i++)
        L += cy[i] * yn[i];
    for (size_t i = 0; i < (size_t)na * n; i++)
        L += ca[i] * auxn[i];
    return L;
}

static double start_loss(nde_solver *s, const double *th, const double *y0,
                         const double *ca, size_t n, int na)
{
    double aux[24], L = 0.0;
    ck_assert_int_eq(nde_solver_start(s, th, 0.3, y0, aux), NDE_OK);
    for (size_t i = 0; i < (size_t)na * n; i++)
        L += ca[i] * aux[i];
    return L;
}

/* L = cy . y_next + ce EEst of one lamba_heun step (EEst: nde_error_norm
 * of its error estimate with rtol = atol = 1e-3). */
static double eest_loss(nde_solver *s, const double *th, double h,
                        const double *dw, const double *y, const double *cy,
                        double ce, size_t n)
{
    double yn[8], err[8], L = 0.0;
    ck_assert_int_eq(nde_solver_advance_err(s, th, 0.3, h, dw, y, NULL, yn,
                                            NULL, err), NDE_OK);
    for (size_t i = 0; i < n; i++)
        L += cy[i] * yn[i];
    return L + ce * nde_error_norm(err, y, yn, n, 1e-3, 1e-3);
}

/* lamba_heun's step VJP with a cotangent on EEst (and on y_next) against
 * central differences in y and theta; a stiffness or dense cotangent is
 * refused. */
static void check_lamba_eest_vjp(nde_solver *s, double *th, double h,
                                 const double *dw, double *y,
                                 const double *cy)
{
    enum { N = 4 };
    const double eps = 1e-6, ce = 0.7;
    const nde_step_cotangent ct = {.y_next = cy, .eest = ce, .rtol = 1e-3,
                                   .atol = 1e-3};
    const nde_step_cotangent cs = {.y_next = cy, .stiffness = 1.0};
    double yb[N] = {0}, tb[4] = {0};
    long nvjp0 = s->counts.nvjp;

    ck_assert_int_eq(nde_solver_vjp(s, th, 0.3, h, dw, y, NULL, &ct, yb,
                                    NULL, tb), NDE_OK);
    ck_assert_int_eq(s->counts.nvjp - nvjp0, 4);
    for (int i = 0; i < N; i++) {
        const double v = y[i];
        double lp, lm;
        y[i] = v + eps;
        lp = eest_loss(s, th, h, dw, y, cy, ce, N);
        y[i] = v - eps;
        lm = eest_loss(s, th, h, dw, y, cy, ce, N);
        y[i] = v;
        check_fd("eest ybar", "lamba_heun", yb[i], (lp - lm) / (2 * eps));
    }
    for (int i = 0; i < 4; i++) {
        const double v = th[i];
        double lp, lm;
        th[i] = v + eps;
        lp = eest_loss(s, th, h, dw, y, cy, ce, N);
        th[i] = v - eps;
        lm = eest_loss(s, th, h, dw, y, cy, ce, N);
        th[i] = v;
        check_fd("eest thetabar", "lamba_heun", tb[i],
                 (lp - lm) / (2 * eps));
    }
    ck_assert_int_eq(nde_solver_vjp(s, th, 0.3, h, dw, y, NULL, &cs, yb,
                                    NULL, tb), NDE_ECAPABILITY);
    assert_message("no stiffness estimate");
}

START_TEST(test_step_and_start_vjp)
{
    enum { B = 2, D = 2, N = B * D };
    const char *names[] = {"euler_maruyama", "reversible_heun",
                           "lamba_heun", "milstein", "milstein_strat"};
    const long nvjps[] = {1, 1, 2, 2, 3}; /* VJPs of drift and diffusion */
    const double eps = 1e-6, h = 0.1;
    nde_field *f = make_field(&nl_field, B);

    for (int k = 0; k < 5; k++) {
        nde_solver *s = make_solver(names[k], f);
        const int na = nde_solver_aux(s);
        double th[4] = {0.8, -0.6, 0.5, 0.3}, y[N], aux[3 * N], dw[N];
        double cy[N], ca[3 * N], yb[N] = {0}, ab[3 * N] = {0}, tb[4] = {0};
        double yb0[N] = {0}, tb0[4] = {0};
        long nvjp0 = s->counts.nvjp;

        rng_state = 31 + k;
        for (int i = 0; i < N; i++) {
            y[i] = gauss();
            dw[i] = sqrt(h) * gauss();
            cy[i] = gauss();
        }
        for (int i = 0; i < 3 * N; i++) {
            aux[i] = gauss();
            ca[i] = gauss();
        }
        ck_assert_int_eq(nde_solver_advance_vjp(s, th, 0.3, h, dw, y, aux,
                                                cy, ca, yb, ab, tb), NDE_OK);
        ck_assert_int_eq(s->counts.nvjp - nvjp0, nvjps[k]);
        for (int i = 0; i < N; i++) {
            const double v = y[i];
            double lp, lm;
            y[i] = v + eps;
            lp = step_loss(s, th, h, dw, y, aux, cy, ca, N, na);
            y[i] = v - eps;
            lm = step_loss(s, th, h, dw, y, aux, cy, ca, N, na);
            y[i] = v;
            check_fd("step ybar", names[k], yb[i], (lp - lm) / (2 * eps));
        }
        for (int i = 0; i < na * N; i++) {
            const double v = aux[i];
            double lp, lm;
            aux[i] = v + eps;
            lp = step_loss(s, th, h, dw, y, aux, cy, ca, N, na);
            aux[i] = v - eps;
            lm = step_loss(s, th, h, dw, y, aux, cy, ca, N, na);
            aux[i] = v;
            check_fd("step auxbar", names[k], ab[i], (lp - lm) / (2 * eps));
        }
        for (int i = 0; i < 4; i++) {
            const double v = th[i];
            double lp, lm;
            th[i] = v + eps;
            lp = step_loss(s, th, h, dw, y, aux, cy, ca, N, na);
            th[i] = v - eps;
            lm = step_loss(s, th, h, dw, y, aux, cy, ca, N, na);
            th[i] = v;
            check_fd("step thetabar", names[k], tb[i], (lp - lm) / (2 * eps));
        }
        ck_assert_int_eq(nde_solver_start_vjp(s, th, 0.3, y, ca, yb0, tb0),
                         NDE_OK);
        for (int i = 0; i < N; i++) {
            const double v = y[i];
            double lp, lm;
            y[i] = v + eps;
            lp = start_loss(s, th, y, ca, N, na);
            y[i] = v - eps;
            lm = start_loss(s, th, y, ca, N, na);
            y[i] = v;
            check_fd("start ybar", names[k], yb0[i], (lp - lm) / (2 * eps));
        }
        for (int i = 0; i < 4; i++) {
            const double v = th[i];
            double lp, lm;
            th[i] = v + eps;
            lp = start_loss(s, th, y, ca, N, na);
            th[i] = v - eps;
            lm = start_loss(s, th, y, ca, N, na);
            th[i] = v;
            check_fd("start thetabar", names[k], tb0[i],
                     (lp - lm) / (2 * eps));
        }
        if (k == 2)
            check_lamba_eest_vjp(s, th, h, dw, y, cy);
        nde_solver_destroy(s);
    }
    nde_field_destroy(f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The fixed-step loop                                                   */

typedef struct tstop_log {
    int count;
    double t[4];
    size_t i[4];
} tstop_log;

static int log_tstop(void *user, size_t i, double t, double *y)
{
    tstop_log *l = user;
    (void)y;
    if (l->count < 4) {
        l->t[l->count] = t;
        l->i[l->count] = i;
    }
    l->count++;
    return 0;
}

static nde_brownian *make_brownian(size_t n_max, double t0, double t1,
                                   double dt, size_t n)
{
    nde_brownian *bm;
    int rc = nde_brownian_create(ctx, n_max, &bm);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    rc = nde_brownian_reset(bm, 77, t0, t1, dt, n);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return bm;
}

/* The loop against a hand-written loop over the expected boundaries: the
 * same increments, states and record bit for bit, save times exact, the
 * grid kept after a save time or tstop, stats. */
START_TEST(test_loop_matches_manual)
{
    enum { B = 2, D = 2, N = B * D, NB = 13 };
    const char *names[] = {"euler_maruyama", "reversible_heun"};
    const double th[4] = {0.8, -0.6, 0.5, 0.3}, dt = 0.1;
    const double tsave[4] = {0.0, 0.35, 0.35, 1.0}, tstops[2] = {0.62, 1.0};
    const double y0[N] = {0.3, -0.2, 1.0, 0.5};
    nde_field *f = make_field(&nl_field, B);
    nde_brownian *bm = make_brownian(N, 0.0, 1.0, dt, N);
    double bounds[NB];
    nde_step_grid g;
    int nb = 0;

    /* Grid points of nde_grid_time and the inserted times. */
    for (size_t k = 0; k <= 10; k++) {
        const double tk = nde_grid_time(0.0, 1.0, dt, 10, k);
        if (k == 4)
            bounds[nb++] = 0.35;
        if (k == 7)
            bounds[nb++] = 0.62;
        bounds[nb++] = tk;
    }
    ck_assert_int_eq(nb, NB);
    ck_assert_uint_eq(nde_grid_cells(0.0, 1.0, dt), 10);
    ck_assert_int_eq(nde_step_grid_init(&g, 0.0, 1.0, dt, tsave, 4, tstops,
                                        2, ctx), NDE_OK);
    for (int j = 0; j + 1 < NB; j++) {
        ck_assert(nde_step_grid_next(&g, bounds[j]) == bounds[j + 1]);
        ck_assert(nde_step_grid_prev(&g, bounds[j + 1]) == bounds[j]);
    }
    ck_assert(nde_step_grid_next(&g, 1.0) == 1.0);
    ck_assert(nde_step_grid_prev(&g, 0.0) == 0.0);
    ck_assert(nde_step_grid_next(&g, 0.36) == bounds[5]);
    ck_assert(nde_step_grid_prev(&g, 0.36) == 0.35);

    for (int k = 0; k < 2; k++) {
        nde_solver *s = make_solver(names[k], f);
        const int na = nde_solver_aux(s);
        nde_trajectory *tr = nde_trajectory_create(NDE_NEEDS_STEPS, 0);
        double ysave[4 * N], y[N], yn[N], aux[3 * N], auxn[3 * N], dw[N];
        double ys_manual[NB][N], aux_manual[NB][3 * N];
        double *tp, *yp;
        nde_solve_opts o;
        nde_stats st;
        tstop_log log = {0};

        nde_solve_opts_default(&o, s->type);
        o.dt = dt;
        o.brownian = bm;
        o.tstops = tstops;
        o.ntstops = 2;
        o.at_tstop = log_tstop;
        o.at_tstop_user = &log;
        o.record = tr;
        ck_assert_int_eq(nde_brownian_reset(bm, 77, 0.0, 1.0, dt, N), NDE_OK);
        ck_assert_msg(nde_solve(s, &o, th, 0.0, y0, 1.0, 4, tsave, ysave,
                                &st) == NDE_OK, "%s", nde_ctx_message(ctx));

        /* By hand, with the same path. */
        ck_assert_int_eq(nde_brownian_reset(bm, 77, 0.0, 1.0, dt, N), NDE_OK);
        memcpy(y, y0, sizeof y);
        ck_assert_int_eq(nde_solver_start(s, th, 0.0, y, aux), NDE_OK);
        for (int j = 0; j + 1 < NB; j++) {
            memcpy(ys_manual[j], y, sizeof y);
            memcpy(aux_manual[j], aux, sizeof aux);
            ck_assert_int_eq(nde_brownian_increment(bm, bounds[j],
                                                    bounds[j + 1], dw),
                             NDE_OK);
            ck_assert_int_eq(nde_solver_advance(s, th, bounds[j],
                                                bounds[j + 1] - bounds[j],
                                                dw, y, aux, yn, auxn),
                             NDE_OK);
            memcpy(y, yn, sizeof y);
            memcpy(aux, auxn, sizeof aux);
        }
        memcpy(ys_manual[NB - 1], y, sizeof y);

        ck_assert_int_eq(memcmp(ysave, y0, sizeof y0), 0);
        ck_assert_int_eq(memcmp(ysave + N, ys_manual[4], sizeof y), 0);
        ck_assert_int_eq(memcmp(ysave + 2 * N, ys_manual[4], sizeof y), 0);
        ck_assert_int_eq(memcmp(ysave + 3 * N, y, sizeof y), 0);
        ck_assert_int_eq(st.steps_accepted, NB - 1);
        ck_assert_int_eq(st.steps_rejected, 0);
        ck_assert_int_eq(st.nfe, NB - 1 + (na > 0 ? 1 : 0));
        ck_assert_double_eq_tol(st.h_min, 0.02, 1e-12);
        ck_assert_double_eq_tol(st.h_max, 0.1, 1e-12);
        ck_assert_int_eq(st.status, NDE_OK);
        ck_assert_int_eq(log.count, 2);
        ck_assert(log.t[0] == 0.62 && log.i[0] == 0);
        ck_assert(log.t[1] == 1.0 && log.i[1] == 1);

        ck_assert_uint_eq(tr->nsteps, NB - 1);
        ck_assert_uint_eq(tr->nstates, NB - 1);
        ck_assert_int_eq(tr->naux, na);
        ck_assert(tr->t0 == 0.0 && tr->t1 == 1.0);
        ck_assert_uint_eq(tr->nsave, 4);
        ck_assert_int_eq(memcmp(tr->tsave, tsave, sizeof tsave), 0);
        for (int j = 0; j + 1 < NB; j++) {
            ck_assert(tr->t[j] == bounds[j]);
            ck_assert(tr->h[j] == bounds[j + 1] - bounds[j]);
            ck_assert_uint_eq(tr->ystep[j], j);
            ck_assert_int_eq(memcmp(tr->y + j * N, ys_manual[j],
                                    sizeof y), 0);
            if (na)
                ck_assert_int_eq(memcmp(nde_trajectory_aux(tr, (size_t)j),
                                        aux_manual[j],
                                        (size_t)na * N * sizeof(double)), 0);
        }
        ck_assert_int_eq(memcmp(tr->y_final, y, sizeof y), 0);
        if (na)
            ck_assert_int_eq(memcmp(tr->aux_final, aux,
                                    (size_t)na * N * sizeof(double)), 0);
        ck_assert_int_eq(nde_trajectory_find(tr, 0.36), 4);

        /* A second solve of the same shape reuses the record's buffers. */
        tp = tr->t;
        yp = tr->y;
        ck_assert_int_eq(nde_brownian_reset(bm, 78, 0.0, 1.0, dt, N), NDE_OK);
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, 1.0, 4, tsave, ysave,
                                   NULL), NDE_OK);
        ck_assert_ptr_eq(tr->t, tp);
        ck_assert_ptr_eq(tr->y, yp);
        ck_assert_uint_eq(tr->nsteps, NB - 1);
        nde_trajectory_destroy(tr);
        nde_solver_destroy(s);
    }
    nde_brownian_destroy(bm);
    nde_field_destroy(f);
}
END_TEST

/* What the loop refuses, with the message that says why. */
START_TEST(test_loop_bad_input)
{
    const char *names[] = {"euler_maruyama", "reversible_heun"};
    const double th[2] = {1.0, 0.5}, y0[1] = {1.0}, tsave[1] = {1.0};
    nde_field *f = make_field(&gbm_field, 1);
    nde_field *fnan = make_field(&nan_field, 1);
    nde_brownian *bm = make_brownian(2, 0.0, 1.0, 0.1, 1);

    for (int k = 0; k < 2; k++) {
        nde_solver *s = make_solver(names[k], f);
        nde_solver *sn = make_solver(names[k], fnan);
        nde_trajectory *tr = nde_trajectory_create(NDE_NEEDS_DENSE, 0);
        double ys[1];
        nde_solve_opts o;
        nde_stats st;

        nde_solve_opts_default(&o, s->type);
        o.brownian = bm;
        o.dt = 0.0;
        ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 1, tsave, ys, &st),
                         NDE_EINVAL);
        assert_message("needs a positive step dt");
        ck_assert_int_eq(st.status, NDE_EINVAL);
        o.dt = -0.1;
        ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 1, tsave, ys, NULL),
                         NDE_EINVAL);
        assert_message("positive step dt");
        o.dt = 0.1;
        ck_assert_int_eq(nde_solve(s, &o, th, 1, y0, 0, 0, NULL, ys, NULL),
                         NDE_EINVAL);
        assert_message("forwards only");
        o.brownian = NULL;
        ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 1, tsave, ys, NULL),
                         NDE_EINVAL);
        assert_message("needs a Brownian path");
        o.brownian = bm;
        ck_assert_int_eq(nde_brownian_reset(bm, 1, 0.5, 2.0, 0.1, 1), NDE_OK);
        ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 1, tsave, ys, NULL),
                         NDE_EINVAL);
        assert_message("does not cover");
        /* A path that covers the interval on another grid is exact too. */
        ck_assert_int_eq(nde_brownian_reset(bm, 1, 0.0, 2.0, 0.05, 1), NDE_OK);
        ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 1, tsave, ys, NULL),
                         NDE_OK);
        ck_assert_int_eq(nde_brownian_reset(bm, 1, 0.0, 1.0, 0.1, 2), NDE_OK);
        ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 1, tsave, ys, NULL),
                         NDE_EINVAL);
        assert_message("2 channels");
        ck_assert_int_eq(nde_brownian_reset(bm, 1, 0.0, 1.0, 0.1, 1), NDE_OK);
        /* 10 steps of dt = 0.1 against max_steps = 5: refused before
         * the first; with 10, a save time cutting a cell makes the 11th
         * step the one refused. */
        o.max_steps = 5;
        ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 1, tsave, ys, &st),
                         NDE_EMAXSTEPS);
        ck_assert_int_eq(st.steps_accepted, 0);
        assert_message("takes at least 10 steps on [0, 1], more than "
                       "max_steps = 5");
        o.max_steps = 10;
        {
            const double cut[2] = {0.55, 1.0};
            double ys2[2];
            ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 2, cut, ys2,
                                       &st), NDE_EMAXSTEPS);
            ck_assert_int_eq(st.steps_accepted, 10);
            assert_message("max_steps = 10 reached");
        }
        o.max_steps = 100;
        /* A step beyond the Brownian Interval's 2^48 cells (and beyond
         * size_t's range as a count) is refused. */
        o.dt = 1e-300;
        ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 1, tsave, ys, NULL),
                         NDE_EINVAL);
        assert_message("more than 2^48 steps");
        o.dt = 0.1;
        o.record = tr;
        ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 1, tsave, ys, NULL),
                         NDE_ECAPABILITY);
        assert_message("dense output");
        o.record = NULL;
        {
            const double bad[2] = {0.5, 0.2};
            ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 2, bad, ys, NULL),
                             NDE_EINVAL);
            assert_message("save times");
        }
        ck_assert_int_eq(nde_solve(sn, &o, th, 0, y0, 1, 1, tsave, ys, &st),
                         NDE_ENONFINITE);
        assert_message("drift or diffusion produced non-finite values");
        ck_assert_int_eq(st.steps_accepted, k == 0 ? 6 : 5);
        ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, 1, 1, tsave, ys, NULL),
                         NDE_OK);
        nde_trajectory_destroy(tr);
        nde_solver_destroy(s);
        nde_solver_destroy(sn);
    }
    nde_brownian_destroy(bm);
    nde_field_destroy(f);
    nde_field_destroy(fnan);
}
END_TEST

/* Save times within round-off of a grid point are served there: 0.3 on a
 * grid of 0.1 is the grid point 3 * 0.1 = 0.30000000000000004, not a
 * separate boundary 6e-17 away; other save times split their cell. The
 * backward walk visits the same boundaries. */
/* ------------------------------------------------------------------ */
/* An adaptive SDE solver is only a plugin                              */

/* Stochastic Heun (Stratonovich, diagonal noise) with the Euler predictor
 * as its embedded solution, err = y_next - y~: written here against the
 * ops table alone; the driver does the stepping, rejection and the
 * Brownian re-query. */
typedef struct aheun_work {
    double *f0, *g0, *yt, *f1, *g1;
} aheun_work;

static void aheun_destroy(nde_solver *s)
{
    aheun_work *w = s->work;
    if (w)
        free(w->f0);
    free(w);
    s->work = NULL;
}

static int aheun_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    aheun_work *w = calloc(1, sizeof *w);
    if (!(s->work = w) || !(w->f0 = malloc(5 * n * sizeof(double))))
        return NDE_ENOMEM;
    w->g0 = w->f0 + n;
    w->yt = w->g0 + n;
    w->f1 = w->yt + n;
    w->g1 = w->f1 + n;
    return NDE_OK;
}

static int aheun_step(nde_solver *s, const double *theta, double t, double h,
                      const double *dw, const double *y, const double *aux,
                      double *y_next, double *aux_next, double *err,
                      const nde_norm_spec *norm, double *eest)
{
    aheun_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    (void)aux; (void)aux_next;
    s->counts.nfe += 2;
    if ((rc = nde_field_eval(s->field, t, y, theta, w->f0, s->batch)) ||
        (rc = nde_field_diffusion(s->field, t, y, theta, w->g0, s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++)
        w->yt[i] = y[i] + w->f0[i] * h + w->g0[i] * dw[i];
    if ((rc = nde_field_eval(s->field, t + h, w->yt, theta, w->f1,
                             s->batch)) ||
        (rc = nde_field_diffusion(s->field, t + h, w->yt, theta, w->g1,
                                  s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++)
        y_next[i] = y[i] + 0.5 * (w->f0[i] + w->f1[i]) * h +
                    0.5 * (w->g0[i] + w->g1[i]) * dw[i];
    if (err) {
        for (size_t i = 0; i < n; i++)
            err[i] = y_next[i] - w->yt[i];
        if (eest)
            *eest = nde_error_norm_spec(norm, err, y, y_next, n);
    }
    return NDE_OK;
}

static const nde_solver_type aheun_type = {
    .info = NDE_SOLVER_INFO(
        .name = "aheun",
        .description = "adaptive stochastic Heun (test)",
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_SDE_STRATONOVICH,
        .version = "1"),
    .order = 2, .error_order = 1,
    .ops = {.create = aheun_create, .destroy = aheun_destroy,
            .step = aheun_step}};

/* An adaptive SDE solve rejects steps; each retry must query the path on
 * its shorter interval, and its step ends are cheap to query. Then replaying the accepted steps by hand, each
 * with the path's increment over exactly its interval, gives the solve's
 * result bit for bit (reusing a rejected step's longer increment would
 * not). And over several paths the error against a fine fixed-step heun
 * solution on the same path shrinks with the tolerance. */
static void check_adaptive_sde(const nde_solver_type *type, nde_field *f,
                               const double *th)
{
    const double y0[1] = {1.0}, t1 = 2.0;
    const double tols[2] = {1e-2, 1e-4};
    nde_solver *ad, *fx = make_solver("heun", f);
    nde_brownian *bm = make_brownian(1, 0.0, t1, 0.01, 1);
    nde_trajectory *tr = nde_trajectory_create(NDE_NEEDS_STEPS, 0);
    nde_solve_opts o;
    nde_stats st;
    double ref, y, e[2] = {0, 0};

    ck_assert_int_eq(nde_solver_create_from(ctx, type, f, &ad), NDE_OK);
    nde_solve_opts_default(&o, type);
    o.brownian = bm;
    o.rtol = o.atol = 1e-3;
    o.record = tr;
    ck_assert_int_eq(nde_solve(ad, &o, th, 0, y0, t1, 1, &t1, &y, &st),
                     NDE_OK);
    ck_assert_int_gt(st.steps_rejected, 0);
    {
        /* the steps end where the path is cheap (nde_brownian_snap): a
         * query ending at an arbitrary time samples about 50 nodes */
        nde_brownian_stats bs;
        nde_brownian_get_stats(bm, &bs);
        ck_assert_msg(bs.nodes < 20 * bs.queries, "%s: %ld nodes for %ld "
                      "queries", type->info.name, bs.nodes, bs.queries);
    }
    {
        double yr = y0[0], yn, dw;
        for (size_t j = 0; j < tr->nsteps; j++) {
            const double t = tr->t[j];
            const double tn = j + 1 < tr->nsteps ? tr->t[j + 1] : t1;
            ck_assert_int_eq(nde_brownian_increment(bm, t, tn, &dw), NDE_OK);
            ck_assert_int_eq(nde_solver_advance(ad, th, t, tr->h[j], &dw, &yr,
                                                NULL, &yn, NULL), NDE_OK);
            yr = yn;
        }
        ck_assert_msg(yr == y, "%s: replay %.17g, solve %.17g",
                      type->info.name, yr, y);
    }
    o.record = NULL;
    for (uint64_t seed = 1; seed <= 10; seed++) {
        ck_assert_int_eq(nde_brownian_reset(bm, seed, 0.0, t1, 0.01, 1),
                         NDE_OK);
        o.dt = 1e-4;
        o.max_steps = 1000000;
        ck_assert_int_eq(nde_solve(fx, &o, th, 0, y0, t1, 1, &t1, &ref, NULL),
                         NDE_OK);
        o.dt = 0;
        for (int i = 0; i < 2; i++) {
            o.rtol = o.atol = tols[i];
            ck_assert_int_eq(nde_solve(ad, &o, th, 0, y0, t1, 1, &t1, &y,
                                       &st), NDE_OK);
            e[i] += (y - ref) * (y - ref) / 10;
        }
    }
    fprintf(stderr, "adaptive SDE %s: RMS error over 10 paths %.3g at tol "
            "%g, %.3g at tol %g\n", type->info.name, sqrt(e[0]), tols[0],
            sqrt(e[1]), tols[1]);
    ck_assert_msg(sqrt(e[1]) < sqrt(e[0]) / 5, "%s: RMS errors %g, %g",
                  type->info.name, sqrt(e[0]), sqrt(e[1]));
    nde_trajectory_destroy(tr);
    nde_solver_destroy(ad);
    nde_solver_destroy(fx);
    nde_brownian_destroy(bm);
}

START_TEST(test_adaptive_sde_plugin)
{
    const double th[2] = {-1.0, 0.8}, y0[1] = {1.0};
    nde_field *f = make_field(&ou_field, 1);
    nde_solver *ad, *fx = make_solver("heun", f);
    nde_brownian *bm = make_brownian(1, 0.0, 2.0, 0.01, 1);
    nde_solve_opts o;
    nde_stats st;
    double y;

    check_adaptive_sde(&aheun_type, f, th);
    ck_assert_int_eq(nde_solver_create_from(ctx, &aheun_type, f, &ad),
                     NDE_OK);
    nde_solve_opts_default(&o, &aheun_type);
    o.brownian = bm;
    /* Forwards only, and t1 == t0 is a solve of no step. */
    ck_assert_int_eq(nde_solve(ad, &o, th, 1, y0, 0, 0, NULL, NULL, NULL),
                     NDE_EINVAL);
    assert_message("forwards only");
    {
        const double t = 1.0;
        ck_assert_int_eq(nde_solve(ad, &o, th, 1, y0, 1, 1, &t, &y, &st),
                         NDE_OK);
        ck_assert(y == y0[0] && st.steps_accepted == 0);
        o.dt = 0.1;
        y = 0;
        ck_assert_int_eq(nde_solve(fx, &o, th, 1, y0, 1, 1, &t, &y, &st),
                         NDE_OK);
        ck_assert(y == y0[0]);
    }
    nde_solver_destroy(ad);
    nde_solver_destroy(fx);
    nde_brownian_destroy(bm);
    nde_field_destroy(f);
}
END_TEST

/* Lamba's adaptive Euler-Heun on GBM's multiplicative (commutative)
 * noise, where both parts of its error estimate are at work. On GBM
 * (f = a y, g = b y) they are exact: Ed = h (a (y + h a y) - a y) / 2 =
 * a^2 h^2 y / 2 and En = (b (y + sqrt(h) b y) - b y) / (2 sqrt(h)) dW^2 =
 * b^2 y dW^2 / 2. */
START_TEST(test_lamba_heun)
{
    const double th[2] = {-1.0, 0.8}, y = 1.5, h = 0.04, dw = -0.3;
    nde_field *f = make_field(&gbm_field, 1);
    nde_solver *s = make_solver("lamba_heun", f);
    double yn, err, want;

    ck_assert_int_eq(s->ops->step(s, th, 0.2, h, &dw, &y, NULL, &yn, NULL,
                                  &err, NULL, NULL), NDE_OK);
    want = th[0] * th[0] * h * h * y / 2 + th[1] * th[1] * y * dw * dw / 2;
    ck_assert_msg(fabs(err - want) <= 1e-14, "err %.17g, want %.17g", err,
                  want);
    nde_solver_destroy(s);
    check_adaptive_sde(solver_named("lamba_heun"), f, th);
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_step_grid_snaps)
{
    const double tsave[] = {0.3, 0.35, 0.7, 1.0};
    double fwd[32], t = 0.0;
    size_t nf = 0;
    nde_step_grid g;

    ck_assert_int_eq(nde_step_grid_init(&g, 0.0, 1.0, 0.1, tsave, 4, NULL, 0,
                                        ctx), NDE_OK);
    ck_assert(nde_step_grid_snap(&g, 0.3) == 3 * 0.1);
    ck_assert(nde_step_grid_snap(&g, 0.35) == 0.35);
    ck_assert(nde_step_grid_snap(&g, 1.0 - 1e-13) == 1.0);
    while (t < 1.0 && nf < 32)
        fwd[nf++] = t = nde_step_grid_next(&g, t);
    ck_assert_uint_eq(nf, 11);   /* ten cells, one split at 0.35 */
    for (size_t i = 0; i < nf; i++)
        ck_assert(i < 3 ? fwd[i] == (double)(i + 1) * 0.1
                        : i == 3 ? fwd[i] == 0.35
                                 : i == 10 ? fwd[i] == 1.0
                                           : fwd[i] == (double)i * 0.1);
    for (size_t i = nf; i-- > 0;) {
        t = nde_step_grid_prev(&g, fwd[i]);
        ck_assert(t == (i ? fwd[i - 1] : 0.0));
    }
}
END_TEST

Suite *sde_suite(void)
{
    Suite *su = suite_create("sde");
    TCase *tc = tcase_create("solvers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pairing);
    tcase_add_test(tc, test_ops_table_checked);
    tcase_add_test(tc, test_operations_by_capability);
    tcase_add_test(tc, test_rh_round_trip);
    tcase_add_test(tc, test_step_grid_snaps);
    tcase_add_test(tc, test_step_and_start_vjp);
    suite_add_tcase(su, tc);

    tc = tcase_create("orders");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_em_strong_order);
    tcase_add_test(tc, test_rh_strong_order);
    tcase_add_test(tc, test_milstein_strong_order);
    tcase_add_test(tc, test_rh_additive);
    tcase_add_test(tc, test_em_weak_order);
    suite_add_tcase(su, tc);

    tc = tcase_create("loop");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_loop_matches_manual);
    tcase_add_test(tc, test_loop_bad_input);
    tcase_add_test(tc, test_adaptive_sde_plugin);
    tcase_add_test(tc, test_lamba_heun);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(sde_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
