/*
 * The adaptive Ito solvers sosri, sriw1 (sri.c) and sra1 (sra1.c): strong
 * orders against exact solutions driven by the same Brownian path (1.5
 * where the I_(1,0) terms cancel, 1 where they do not, since the solvers
 * see dW only), their error estimates on a field where they are known in
 * closed form, adaptive solves (a rejected step re-queries the path: the
 * accepted steps replayed by hand give the solve bit for bit; the error
 * against the exact solution shrinks with the tolerance), and their step
 * VJPs (cotangents on y_next and on the error estimate) against central
 * differences.
 *
 * Measured orders and errors are printed to stderr for the record:
 *     meson test -C build sri --verbose
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
/* Test fields beyond sde_fields.h, dim 1, theta = (a, s)               */

#define SDE_FIELD(var, nm, evalfn, vjpfn, gfn, gvjpfn)                       \
    static const nde_field_type var = {                                      \
        .info = NDE_FIELD_INFO(                                              \
            .name = nm,                                                      \
            .description = "test field",                                     \
            .version = "1"),                                                 \
        .create = create_d1p2_diag, .destroy = tf_destroy,                   \
        .init_params = tf_init, .eval = evalfn, .vjp = vjpfn,                \
        .diffusion = gfn, .diffusion_vjp = gvjpfn}

/* Constant drift and noise: f = a, g = s. */
static int c_f(nde_field *f, double t, const double *y, const double *th,
               double *dy, size_t batch)
{
    (void)t; (void)y;
    for (size_t i = 0; i < batch * f->dim; i++)
        dy[i] = th[0];
    return NDE_OK;
}

static int c_fvjp(nde_field *f, double t, const double *y, const double *th,
                  const double *v, double *vy, double *vth, size_t batch)
{
    (void)t; (void)y; (void)th; (void)vy;
    for (size_t i = 0; i < batch * f->dim; i++)
        if (vth)
            vth[0] += v[i];
    return NDE_OK;
}

/* Additive noise g = s (with gbm's drift a y: Ornstein-Uhlenbeck). */
static int c_g(nde_field *f, double t, const double *y, const double *th,
               double *g, size_t batch)
{
    (void)t; (void)y;
    for (size_t i = 0; i < batch * f->dim; i++)
        g[i] = th[1];
    return NDE_OK;
}

static int c_gvjp(nde_field *f, double t, const double *y, const double *th,
                  const double *v, double *vy, double *vth, size_t batch)
{
    (void)t; (void)y; (void)th; (void)vy;
    for (size_t i = 0; i < batch * f->dim; i++)
        if (vth)
            vth[1] += v[i];
    return NDE_OK;
}

/*
 * Additive, time-dependent (DiffEqProblemLibrary.jl's additive test SDE):
 *     dX = (a / sqrt(1 + t) - X / (2 (1 + t))) dt + a s / sqrt(1 + t) dW,
 *     X_t = X_0 / sqrt(1 + t) + a (t + s W_t) / sqrt(1 + t)
 * (d(sqrt(1 + t) X) = a dt + a s dW). Here f'g = dg/dt, so the I_(1,0)
 * terms cancel and the exact solution needs W_t only.
 */
static int ta_f(nde_field *f, double t, const double *y, const double *th,
                double *dy, size_t batch)
{
    for (size_t i = 0; i < batch * f->dim; i++)
        dy[i] = th[0] / sqrt(1.0 + t) - y[i] / (2.0 * (1.0 + t));
    return NDE_OK;
}

static int ta_fvjp(nde_field *f, double t, const double *y, const double *th,
                   const double *v, double *vy, double *vth, size_t batch)
{
    (void)y; (void)th;
    for (size_t i = 0; i < batch * f->dim; i++) {
        if (vy)
            vy[i] -= v[i] / (2.0 * (1.0 + t));
        if (vth)
            vth[0] += v[i] / sqrt(1.0 + t);
    }
    return NDE_OK;
}

static int ta_g(nde_field *f, double t, const double *y, const double *th,
                double *g, size_t batch)
{
    (void)y;
    for (size_t i = 0; i < batch * f->dim; i++)
        g[i] = th[0] * th[1] / sqrt(1.0 + t);
    return NDE_OK;
}

static int ta_gvjp(nde_field *f, double t, const double *y, const double *th,
                   const double *v, double *vy, double *vth, size_t batch)
{
    (void)y; (void)vy;
    for (size_t i = 0; i < batch * f->dim; i++)
        if (vth) {
            vth[0] += v[i] * th[1] / sqrt(1.0 + t);
            vth[1] += v[i] * th[0] / sqrt(1.0 + t);
        }
    return NDE_OK;
}

SDE_FIELD(const_field, "const", c_f, c_fvjp, c_g, c_gvjp);
SDE_FIELD(ou_field, "ou", gbm_eval, gbm_vjp, c_g, c_gvjp);
SDE_FIELD(tadd_field, "additive_t", ta_f, ta_fvjp, ta_g, ta_gvjp);

/* ------------------------------------------------------------------ */
/* Exact solutions on [0, 1] given the fine path dw[0..n-1]             */

typedef double (*ref_fn)(const double *th, double x0, const double *dw,
                         int n);

static double path_sum(const double *dw, int n)
{
    double w = 0.0;
    for (int j = 0; j < n; j++)
        w += dw[j];
    return w;
}

/* Ito GBM (Kloeden, Platen 1992, Sec. 4.4). */
static double gbm_ito(const double *th, double x0, const double *dw, int n)
{
    return x0 * exp(th[0] - 0.5 * th[1] * th[1] + th[1] * path_sum(dw, n));
}

static double tadd_ref(const double *th, double x0, const double *dw, int n)
{
    return (x0 + th[0] * (1.0 + th[1] * path_sum(dw, n))) / sqrt(2.0);
}

/* OU: X_1 = e^a x0 + s int_0^1 e^{a (1 - u)} dW_u by the midpoint rule on
 * the fine path (its error, O(|a| s / n), is far below the solvers'). */
static double ou_ref(const double *th, double x0, const double *dw, int n)
{
    double x = exp(th[0]) * x0;
    for (int j = 0; j < n; j++)
        x += th[1] * exp(th[0] * (1.0 - (j + 0.5) / n)) * dw[j];
    return x;
}

/* ------------------------------------------------------------------ */
/* Strong orders at fixed steps                                         */

#define M_STRONG 4000     /* paths (batch rows)                          */

/*
 * The fitted strong order of `solver` on `ft`: L1 error mean_m |X_1 -
 * X_ref,m| for h = 2^-k, k = klo..kfine. Each row's path is drawn on a
 * grid of 2^kfine x sub steps; the solver gets its sums over each of its
 * steps (Kloeden, Platen 1992, Sec. 9.3), ref sees the whole path.
 */
static double strong_order(const char *solver, const nde_field_type *ft,
                           const double *th, double x0, ref_fn ref, int klo,
                           int kfine, int sub, uint64_t seed)
{
    const int nk = kfine - klo + 1, nfine = 1 << kfine;
    const int npath = nfine * sub;
    double *dwf = malloc((size_t)nfine * M_STRONG * sizeof(double));
    double *path = malloc((size_t)npath * sizeof(double));
    double *xref = malloc(M_STRONG * sizeof(double));
    double *y = malloc(M_STRONG * sizeof(double));
    double *yn = malloc(M_STRONG * sizeof(double));
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
        const int N = 1 << (klo + ik), per = nfine / N;
        const double h = 1.0 / N;
        double e = 0.0;
        for (int m = 0; m < M_STRONG; m++)
            y[m] = x0;
        for (int j = 0; j < N; j++) {
            for (int m = 0; m < M_STRONG; m++) {
                double sum = 0.0;
                for (int q = 0; q < per; q++)
                    sum += dwf[(size_t)(j * per + q) * M_STRONG + m];
                dw[m] = sum;
            }
            ck_assert_int_eq(nde_solver_advance(s, th, j * h, h, dw, y, NULL,
                                                yn, NULL), NDE_OK);
            memcpy(y, yn, M_STRONG * sizeof *y);
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
        fprintf(stderr, "%sh=1/%d: %.3e", ik ? ", " : "", 1 << (klo + ik),
                es[ik]);
    fprintf(stderr, "; %d paths)\n", M_STRONG);
    nde_solver_destroy(s);
    nde_field_destroy(f);
    free(dwf); free(path); free(xref); free(y); free(yn); free(dw);
    return p;
}

/* The order on h = 2^-klo .. 2^-kfine within [lo, hi]. */
static void expect_order(const char *solver, const nde_field_type *ft,
                         const double *th, ref_fn ref, int klo, int kfine,
                         int sub, uint64_t seed, double lo, double hi)
{
    const double p = strong_order(solver, ft, th, 0.5, ref, klo, kfine, sub,
                                  seed);
    ck_assert_msg(p >= lo && p <= hi, "%s on %s: strong order %.3f, "
                  "expected [%.2f, %.2f]", solver, ft->info.name, p, lo, hi);
}

/* GBM: f'g = a b y = dg/dt + f dg/dy + g^2 g''/2, so the I_(1,0) terms
 * cancel: 1.5, fitted on h = 1/16 .. 1/1024 (at h = 1/4 the error is
 * still short of its asymptote: 1.38 and 1.40 fitted from there). */
START_TEST(test_order_gbm)
{
    const double th[2] = {1.01, 0.87};
    expect_order("sosri", &gbm_field, th, gbm_ito, 4, 10, 1, 21, 1.35, 1.65);
    expect_order("sriw1", &gbm_field, th, gbm_ito, 4, 10, 1, 22, 1.35, 1.65);
}
END_TEST

/* Additive noise with f'g = dg/dt: at least 1.5. The drift is linear (the
 * only additive case where the terms cancel), the noise terms come out
 * exact, and what is left is the drift stages' deterministic error: 2
 * measured. */
START_TEST(test_order_additive_t)
{
    const double th[2] = {1.2, 0.9};
    expect_order("sra1", &tadd_field, th, tadd_ref, 2, 8, 1, 23, 1.35, 2.15);
    expect_order("sosri", &tadd_field, th, tadd_ref, 2, 8, 1, 24, 1.35,
                 2.15);
}
END_TEST

/* OU: f'g = a s, dg/dt = 0: the I_(1,0) term is missed, order 1 (what
 * any method that sees dW only reaches: Clark, Cameron 1980). */
START_TEST(test_order_ou)
{
    const double th[2] = {-1.0, 0.7};
    expect_order("sra1", &ou_field, th, ou_ref, 2, 8, 16, 25, 0.85, 1.15);
    expect_order("sosri", &ou_field, th, ou_ref, 2, 8, 16, 26, 0.85, 1.15);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Error estimates                                                      */

/*
 * On f = a, g = s every stage sees the same values, so y_next = y + a h
 * + s dW and err = delta h a nerr + s (chi2 sum beta3 + chi3 sum beta4),
 * the sums being 0: sosri 4 a h (delta 1, four stages), sriw1 a h / 3
 * (delta 1/6, two), sra1 2 a h (k1 + k2, E2 = 0).
 */
START_TEST(test_error_estimate)
{
    const char *names[] = {"sosri", "sriw1", "sra1"};
    const double want[] = {4.0, 1.0 / 3, 2.0};
    const long nfe[] = {7, 5, 3};
    const double th[2] = {0.7, 0.4}, y = 1.5, h = 0.04, dw = -0.3;
    nde_field *f = make_field(&const_field, 1);

    for (int k = 0; k < 3; k++) {
        nde_solver *s = make_solver(names[k], f);
        nde_norm_spec norm = {.rtol = 0.0, .atol = 1.0};
        double yn, err, eest;

        ck_assert_int_eq(s->ops->step(s, th, 0.2, h, &dw, &y, NULL, &yn,
                                      NULL, &err, &norm, &eest), NDE_OK);
        ck_assert_msg(fabs(yn - (y + th[0] * h + th[1] * dw)) <= 1e-14,
                      "%s: y_next %.17g", names[k], yn);
        ck_assert_msg(fabs(err - want[k] * th[0] * h) <= 1e-14,
                      "%s: err %.17g, want %.17g", names[k], err,
                      want[k] * th[0] * h);
        ck_assert(eest == fabs(err));
        ck_assert_int_eq(s->counts.nfe, nfe[k]);
        nde_solver_destroy(s);
    }
    nde_field_destroy(f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Adaptive solves                                                      */

/*
 * An adaptive solve of `name` on [0, 2] rejects steps; each retry
 * queries the path on its shorter interval, so replaying the accepted
 * steps by hand, each with the path's increment over exactly its
 * interval, gives the solve's result bit for bit. Over 10 paths, the RMS
 * error against the exact solution (given W(2)) shrinks with the
 * tolerance.
 */
typedef double (*exact_fn)(const double *th, double y0, double t, double w);

static double gbm_exact(const double *th, double y0, double t, double w)
{
    return y0 * exp((th[0] - 0.5 * th[1] * th[1]) * t + th[1] * w);
}

static double tadd_exact(const double *th, double y0, double t, double w)
{
    return (y0 + th[0] * (t + th[1] * w)) / sqrt(1.0 + t);
}

static void check_adaptive(const char *name, const nde_field_type *ft,
                           const double *th, exact_fn exact)
{
    const double y0[1] = {1.0}, t1 = 2.0;
    const double tols[2] = {1e-2, 1e-3};
    nde_field *f = make_field(ft, 1);
    nde_solver *s = make_solver(name, f);
    nde_brownian *bm;
    nde_trajectory *tr = nde_trajectory_create(NDE_NEEDS_STEPS, 0);
    nde_solve_opts o;
    nde_stats st;
    double y, e[2] = {0, 0};
    long steps[2] = {0, 0};

    ck_assert_int_eq(nde_brownian_create(ctx, 1, &bm), NDE_OK);
    ck_assert_int_eq(nde_brownian_reset(bm, 77, 0.0, t1, 0.01, 1), NDE_OK);
    nde_solve_opts_default(&o, s->type);
    o.brownian = bm;
    o.rtol = o.atol = 1e-3;
    o.record = tr;
    ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, t1, 1, &t1, &y, &st),
                     NDE_OK);
    ck_assert_int_gt(st.steps_rejected, 0);
    {
        double yr = y0[0], yn, dw;
        for (size_t j = 0; j < tr->nsteps; j++) {
            const double t = tr->t[j];
            const double tn = j + 1 < tr->nsteps ? tr->t[j + 1] : t1;
            ck_assert_int_eq(nde_brownian_increment(bm, t, tn, &dw), NDE_OK);
            ck_assert_int_eq(nde_solver_advance(s, th, t, tr->h[j], &dw, &yr,
                                                NULL, &yn, NULL), NDE_OK);
            yr = yn;
        }
        ck_assert_msg(yr == y, "%s: replay %.17g, solve %.17g", name, yr, y);
    }
    o.record = NULL;
    for (uint64_t seed = 1; seed <= 10; seed++) {
        double w;
        ck_assert_int_eq(nde_brownian_reset(bm, seed, 0.0, t1, 0.01, 1),
                         NDE_OK);
        ck_assert_int_eq(nde_brownian_increment(bm, 0.0, t1, &w), NDE_OK);
        for (int i = 0; i < 2; i++) {
            const double ref = exact(th, y0[0], t1, w);
            o.rtol = o.atol = tols[i];
            ck_assert_int_eq(nde_solve(s, &o, th, 0, y0, t1, 1, &t1, &y,
                                       &st), NDE_OK);
            e[i] += (y - ref) * (y - ref) / 10;
            steps[i] += st.steps_accepted;
        }
    }
    fprintf(stderr, "adaptive %s on %s: RMS error over 10 paths %.3g at tol "
            "%g (%ld steps), %.3g at tol %g (%ld steps)\n", name,
            ft->info.name, sqrt(e[0]), tols[0], steps[0], sqrt(e[1]),
            tols[1], steps[1]);
    ck_assert_msg(sqrt(e[1]) < sqrt(e[0]) / 3, "%s: RMS errors %g, %g",
                  name, sqrt(e[0]), sqrt(e[1]));
    ck_assert_msg(sqrt(e[1]) < 10 * tols[1], "%s: RMS error %g at tol %g",
                  name, sqrt(e[1]), tols[1]);
    nde_trajectory_destroy(tr);
    nde_brownian_destroy(bm);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}

START_TEST(test_adaptive)
{
    const double gbm[2] = {-1.0, 0.8}, ta[2] = {1.2, 0.9};
    check_adaptive("sosri", &gbm_field, gbm, gbm_exact);
    check_adaptive("sriw1", &gbm_field, gbm, gbm_exact);
    check_adaptive("sra1", &tadd_field, ta, tadd_exact);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Step VJPs                                                            */

#define RTOL 1e-2
#define ATOL 1e-3

/* L = cy . y_next + ce EEst of one step (EEst with RTOL, ATOL). */
static double step_loss(nde_solver *s, const double *th, double h,
                        const double *dw, const double *y, const double *cy,
                        double ce, size_t n)
{
    const nde_norm_spec norm = {.rtol = RTOL, .atol = ATOL};
    double yn[8], err[8], eest, L;
    ck_assert_int_eq(s->ops->step(s, th, 0.3, h, dw, y, NULL, yn, NULL, err,
                                  &norm, &eest), NDE_OK);
    L = ce * eest;
    for (size_t i = 0; i < n; i++)
        L += cy[i] * yn[i];
    return L;
}

static void check_fd(const char *what, const char *solver, double analytic,
                     double fd)
{
    ck_assert_msg(fabs(analytic - fd) <= 1e-7 * (1.0 + fabs(fd)),
                  "%s %s: VJP %.12g vs central difference %.12g", solver,
                  what, analytic, fd);
}

/* The nonlinear field (t-dependent drift, coupled diffusion): the VJP of
 * each solver's step, with cotangents on y_next and on the error
 * estimate (0, and 0.7 with y_next's or alone), against central
 * differences in y and theta; a cotangent on a stiffness estimate is
 * refused. */
START_TEST(test_step_vjp)
{
    enum { B = 2, D = 2, N = B * D };
    const char *names[] = {"sosri", "sriw1", "sra1"};
    const long nvjps[] = {7, 5, 3};
    const double eps = 1e-6, h = 0.1;
    nde_field *f = make_field(&nl_field, B);

    for (int k = 0; k < 3 * 3; k++) {
        const char *name = names[k / 3];
        nde_solver *s = make_solver(name, f);
        const double ce = k % 3 ? 0.7 : 0.0;
        double th[4] = {0.8, -0.6, 0.5, 0.3}, y[N], dw[N], cy[N];
        double yb[N] = {0}, tb[4] = {0};
        long nvjp0 = s->counts.nvjp;
        nde_step_cotangent ct = {.y_next = cy, .eest = ce, .rtol = RTOL,
                                 .atol = ATOL};

        rng_state = 41 + k / 3;
        for (int i = 0; i < N; i++) {
            y[i] = gauss();
            dw[i] = sqrt(h) * gauss();
            cy[i] = k % 3 == 2 ? 0.0 : gauss();
        }
        if (k % 3 == 2)
            ct.y_next = NULL;
        ck_assert_int_eq(nde_solver_vjp(s, th, 0.3, h, dw, y, NULL, &ct, yb,
                                        NULL, tb), NDE_OK);
        ck_assert_int_eq(s->counts.nvjp - nvjp0, nvjps[k / 3]);
        for (int i = 0; i < N; i++) {
            const double v = y[i];
            double lp, lm;
            y[i] = v + eps;
            lp = step_loss(s, th, h, dw, y, cy, ce, N);
            y[i] = v - eps;
            lm = step_loss(s, th, h, dw, y, cy, ce, N);
            y[i] = v;
            check_fd(ce ? "ybar with eest" : "ybar", name, yb[i],
                     (lp - lm) / (2 * eps));
        }
        for (int i = 0; i < 4; i++) {
            const double v = th[i];
            double lp, lm;
            th[i] = v + eps;
            lp = step_loss(s, th, h, dw, y, cy, ce, N);
            th[i] = v - eps;
            lm = step_loss(s, th, h, dw, y, cy, ce, N);
            th[i] = v;
            check_fd(ce ? "thetabar with eest" : "thetabar", name, tb[i],
                     (lp - lm) / (2 * eps));
        }
        ct.stiffness = 1.0;
        ck_assert_int_eq(nde_solver_vjp(s, th, 0.3, h, dw, y, NULL, &ct, yb,
                                        NULL, tb), NDE_ECAPABILITY);
        ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx),
                                     "error estimate only"));
        nde_solver_destroy(s);
    }
    nde_field_destroy(f);
}
END_TEST

/* Ito solvers: a field written in Stratonovich form is refused. */
START_TEST(test_calculus_refused)
{
    const char *names[] = {"sosri", "sriw1", "sra1"};
    nde_field *f = make_field(&gbm_field, 1);

    f->calculus = NDE_CALCULUS_STRATONOVICH;
    for (int k = 0; k < 3; k++) {
        nde_solver *s = NULL;
        ck_assert_int_eq(nde_solver_create_from(ctx, solver_named(names[k]),
                                                f, &s), NDE_ECAPABILITY);
        ck_assert_ptr_null(s);
        ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), names[k]));
    }
    nde_field_destroy(f);
}
END_TEST

Suite *sri_suite(void)
{
    Suite *su = suite_create("sri");
    TCase *tc = tcase_create("orders");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_order_gbm);
    tcase_add_test(tc, test_order_additive_t);
    tcase_add_test(tc, test_order_ou);
    suite_add_tcase(su, tc);

    tc = tcase_create("steps");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_error_estimate);
    tcase_add_test(tc, test_adaptive);
    tcase_add_test(tc, test_step_vjp);
    tcase_add_test(tc, test_calculus_refused);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(sri_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
