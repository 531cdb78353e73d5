/*
 * Solver conformance suite: every solver plugin found by nde_plugin_foreach
 * runs the tableau, convergence, dense output, error estimate, stiffness,
 * step VJP and determinism checks, so a new solver is tested by existing.
 * Then the solve loop: adaptive accuracy, evaluation counts, save times,
 * tstops, backwards integration and every failure mode; and the [problem]
 * section.
 *
 * The vector fields are defined here (no dependency on field plugins).
 * Measured orders are printed to stderr for the record.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

/* ------------------------------------------------------------------ */
/* Test fields                                                         */

static void tf_destroy(nde_field *f) { (void)f; }

static int tf_init(nde_field *f, double *theta, uint64_t seed)
{
    (void)seed;
    for (size_t i = 0; i < f->nparams; i++)
        theta[i] = 0.0;
    return NDE_OK;
}

static int tf_novjp(nde_field *f, double t, const double *y,
                    const double *theta, const double *v, double *vy,
                    double *vtheta, size_t batch)
{
    (void)t; (void)y; (void)theta; (void)v; (void)vy; (void)vtheta;
    (void)batch;
    return nde_error(f->ctx, NDE_EFATAL, "no vjp in this test field");
}

#define TEST_FIELD(var, nm, D, P, evalfn, vjpfn)                             \
    static int var##_create(nde_field *f, nde_section *sec, nde_ctx *ctx)    \
    {                                                                        \
        f->dim = (D);                                                        \
        f->nparams = (P);                                                    \
        (void)sec;                                                           \
        (void)ctx;                                                           \
        return NDE_OK;                                                       \
    }                                                                        \
    static const nde_field_type var = {                                      \
        .info = NDE_FIELD_INFO(                                              \
            .name = nm,                                                      \
            .description = "test field",                                     \
            .version = "1"),                                                 \
        .create = var##_create, .destroy = tf_destroy,                       \
        .init_params = tf_init, .eval = evalfn, .vjp = vjpfn}

/* y' = theta0 y cos t; with theta0 = 1, y = y0 exp(sin t - sin t0). */
static int cos_eval(nde_field *f, double t, const double *y,
                    const double *th, double *dy, size_t batch)
{
    const double ct = th[0] * cos(t);
    (void)f;
    for (size_t i = 0; i < batch; i++)
        dy[i] = ct * y[i];
    return NDE_OK;
}
static int cos_vjp(nde_field *f, double t, const double *y, const double *th,
                   const double *v, double *vy, double *vth, size_t batch)
{
    (void)f;
    for (size_t i = 0; i < batch; i++) {
        if (vy)
            vy[i] += v[i] * th[0] * cos(t);
        if (vth)
            vth[0] += v[i] * y[i] * cos(t);
    }
    return NDE_OK;
}
TEST_FIELD(cos_field, "cos1", 1, 1, cos_eval, cos_vjp);

/* y' = [[-a, w], [-w, -a]] y, theta = (a, w): a damped rotation,
 * y(t) = exp(-a t) R(w t) y(0). */
static int rot_eval(nde_field *f, double t, const double *y, const double *th,
                    double *dy, size_t batch)
{
    (void)f; (void)t;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r;
        dy[2 * r] = -th[0] * x[0] + th[1] * x[1];
        dy[2 * r + 1] = -th[1] * x[0] - th[0] * x[1];
    }
    return NDE_OK;
}
static int rot_vjp(nde_field *f, double t, const double *y, const double *th,
                   const double *v, double *vy, double *vth, size_t batch)
{
    (void)f; (void)t;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r, *w = v + 2 * r;
        if (vy) {
            vy[2 * r] += -th[0] * w[0] - th[1] * w[1];
            vy[2 * r + 1] += th[1] * w[0] - th[0] * w[1];
        }
        if (vth) {
            vth[0] += -(w[0] * x[0] + w[1] * x[1]);
            vth[1] += w[0] * x[1] - w[1] * x[0];
        }
    }
    return NDE_OK;
}
TEST_FIELD(rot_field, "rot2", 2, 2, rot_eval, rot_vjp);

static void rot_exact(const double *th, double t, const double *y0,
                      double *y)
{
    const double e = exp(-th[0] * t), c = cos(th[1] * t), s = sin(th[1] * t);
    y[0] = e * (c * y0[0] + s * y0[1]);
    y[1] = e * (-s * y0[0] + c * y0[1]);
}

/* Nonlinear, time-dependent, 3 parameters (for the VJP checks):
 * y1' = th0 y2 - sin y1,  y2' = -th1 y1 y2 + th2 cos t. */
static int nl_eval(nde_field *f, double t, const double *y, const double *th,
                   double *dy, size_t batch)
{
    (void)f;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r;
        dy[2 * r] = th[0] * x[1] - sin(x[0]);
        dy[2 * r + 1] = -th[1] * x[0] * x[1] + th[2] * cos(t);
    }
    return NDE_OK;
}
static int nl_vjp(nde_field *f, double t, const double *y, const double *th,
                  const double *v, double *vy, double *vth, size_t batch)
{
    (void)f;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r, *w = v + 2 * r;
        if (vy) {
            vy[2 * r] += -cos(x[0]) * w[0] - th[1] * x[1] * w[1];
            vy[2 * r + 1] += th[0] * w[0] - th[1] * x[0] * w[1];
        }
        if (vth) {
            vth[0] += w[0] * x[1];
            vth[1] += -w[1] * x[0] * x[1];
            vth[2] += w[1] * cos(t);
        }
    }
    return NDE_OK;
}
TEST_FIELD(nl_field, "nl2", 2, 3, nl_eval, nl_vjp);

/* y' = theta0 y. */
static int lam_eval(nde_field *f, double t, const double *y, const double *th,
                    double *dy, size_t batch)
{
    (void)f; (void)t;
    for (size_t i = 0; i < batch; i++)
        dy[i] = th[0] * y[i];
    return NDE_OK;
}
TEST_FIELD(lam_field, "lambda", 1, 1, lam_eval, tf_novjp);

/* Lotka-Volterra x' = a x - b x y, y' = -c y + d x y. */
static int lv_eval(nde_field *f, double t, const double *y, const double *th,
                   double *dy, size_t batch)
{
    (void)f; (void)t;
    for (size_t r = 0; r < batch; r++) {
        const double x0 = y[2 * r], x1 = y[2 * r + 1];
        dy[2 * r] = th[0] * x0 - th[1] * x0 * x1;
        dy[2 * r + 1] = -th[2] * x1 + th[3] * x0 * x1;
    }
    return NDE_OK;
}
TEST_FIELD(lv_field, "lv", 2, 4, lv_eval, tf_novjp);
static const double lv_theta[4] = {1.5, 1.0, 3.0, 1.0};

/* y' = |t - 1|: a kink at t = 1, exact y = y0 + t - t^2/2 (t <= 1),
 * 1/2 + (t-1)^2/2 after (y0 = 0). Counts evaluations exactly at t = 1. */
static long kink_evals_at_1;
static int kink_eval(nde_field *f, double t, const double *y,
                     const double *th, double *dy, size_t batch)
{
    (void)f; (void)y; (void)th;
    if (t == 1.0)
        kink_evals_at_1++;
    for (size_t i = 0; i < batch; i++)
        dy[i] = fabs(t - 1.0);
    return NDE_OK;
}
TEST_FIELD(kink_field, "kink", 1, 0, kink_eval, tf_novjp);

/* y' = y, but NaN (with status OK) once t > 0.5. */
static int nan_eval(nde_field *f, double t, const double *y, const double *th,
                    double *dy, size_t batch)
{
    (void)f; (void)th;
    for (size_t i = 0; i < batch; i++)
        dy[i] = t > 0.5 ? NAN : y[i];
    return NDE_OK;
}
TEST_FIELD(nan_field, "nanf", 1, 0, nan_eval, tf_novjp);

/* y' = y, NDE_ERETRY once t > 0.5. */
static int late_retry_eval(nde_field *f, double t, const double *y,
                           const double *th, double *dy, size_t batch)
{
    (void)f; (void)th;
    if (t > 0.5)
        return NDE_ERETRY;
    for (size_t i = 0; i < batch; i++)
        dy[i] = y[i];
    return NDE_OK;
}
TEST_FIELD(late_retry_field, "lateretry", 1, 0, late_retry_eval, tf_novjp);

/* y' = -y, defined only for y >= 0 (NDE_ERETRY otherwise), as a field
 * with a log or square root would be. */
static long retry_calls;
static int pos_eval(nde_field *f, double t, const double *y, const double *th,
                    double *dy, size_t batch)
{
    (void)f; (void)t; (void)th;
    for (size_t i = 0; i < batch; i++)
        if (y[i] < 0) {
            retry_calls++;
            return NDE_ERETRY;
        }
    for (size_t i = 0; i < batch; i++)
        dy[i] = -y[i];
    return NDE_OK;
}
TEST_FIELD(pos_field, "posf", 1, 0, pos_eval, tf_novjp);

/* y' = y^2: y = 1/(1 - t) blows up at t = 1. */
static int blow_eval(nde_field *f, double t, const double *y,
                     const double *th, double *dy, size_t batch)
{
    (void)f; (void)t; (void)th;
    for (size_t i = 0; i < batch; i++)
        dy[i] = y[i] * y[i];
    return NDE_OK;
}
TEST_FIELD(blow_field, "blow", 1, 0, blow_eval, tf_novjp);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

#define MAX_SOLVERS 32

typedef struct solver_list {
    const nde_solver_type *type[MAX_SOLVERS];
    size_t n;
} solver_list;

static int collect_solver(const nde_plugin_info *info, const char *path,
                          void *user)
{
    solver_list *l = user;
    (void)path;
    /* Tableau solvers only: solvers with ops (SDE, reversible) have their
     * own suite (test_sde.c). */
    if (info->kind == NDE_KIND_SOLVER && l->n < MAX_SOLVERS &&
        ((const nde_solver_type *)info)->tableau)
        l->type[l->n++] = (const nde_solver_type *)info;
    return 0;
}

static nde_ctx *ctx;
static solver_list solvers;

static void setup(void)
{
    ctx = nde_ctx_create();
    ck_assert_ptr_nonnull(ctx);
    memset(&solvers, 0, sizeof solvers);
    ck_assert_int_eq(nde_plugin_foreach(ctx, collect_solver, NULL, &solvers),
                     0);
}

static void teardown(void) { nde_ctx_destroy(ctx); }

static const nde_solver_type *solver_named(const char *name)
{
    for (size_t i = 0; i < solvers.n; i++)
        if (strcmp(solvers.type[i]->info.name, name) == 0)
            return solvers.type[i];
    ck_abort_msg("solver plugin '%s' not found", name);
    return NULL;
}

static nde_field *make_field(const nde_field_type *ft, size_t batch_max)
{
    nde_field *f;
    int rc = nde_field_create_from(ctx, ft, NULL, batch_max, &f);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return f;
}

static nde_solver *make_solver(const nde_solver_type *st, nde_field *f)
{
    nde_solver *s;
    int rc = nde_solver_create_from(ctx, st, f, &s);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return s;
}

static double max_abs_diff(const double *a, const double *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* Least-squares slope of log(e) against log(h). */
static double ls_slope(const double *h, const double *e, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        const double x = log(h[i]), y = log(e[i]);
        sx += x; sy += y; sxx += x * x; sxy += x * y;
    }
    return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

/* N fixed steps from t0 to t1 through the engine (FSAL reuse included). */
static void fixed_steps(nde_solver *s, const double *theta, double t0,
                        double t1, long N, double *y)
{
    const size_t n = s->batch * s->field->dim;
    const double h = (t1 - t0) / (double)N;
    double yn[16];
    ck_assert_uint_le(n, 16);
    nde_solver_invalidate(s);
    for (long i = 0; i < N; i++) {
        int rc = nde_solver_step(s, theta, t0 + (double)i * h, h, y, yn, NULL);
        ck_assert_int_eq(rc, NDE_OK);
        nde_solver_accept(s);
        memcpy(y, yn, n * sizeof *y);
    }
}

/* A solver type whose propagated weights are bhat = b + btilde (no FSAL,
 * no extras): integrating with it measures the embedded method's order. */
typedef struct embedded_type {
    nde_solver_type type;
    nde_rk_tableau tab;
    double bhat[16], a[256];
} embedded_type;

static void make_embedded(const nde_solver_type *st, embedded_type *e)
{
    const nde_rk_tableau *t = st->tableau;
    const int s = t->stages;
    memset(e, 0, sizeof *e);
    for (int i = 0; i < s; i++)
        e->bhat[i] = t->b[i] + t->btilde[i];
    memcpy(e->a, t->a, (size_t)s * s * sizeof(double));
    e->tab.stages = s;
    e->tab.c = t->c;
    e->tab.a = e->a;
    e->tab.b = e->bhat;
    e->tab.stiff_stage = -1;
    e->type.info = st->info;
    e->type.info.provides = NDE_CAP_STEP_VJP;
    e->type.order = st->error_order;
    e->type.tableau = &e->tab;
}

/* A modifiable copy of a tableau solver, for the load-time checks. */
typedef struct tableau_copy {
    nde_solver_type type;
    nde_rk_tableau tab;
    double c[16], a[256], b[16], btilde[16], dense[16 * 8];
} tableau_copy;

static void copy_tableau(const nde_solver_type *st, tableau_copy *e)
{
    const nde_rk_tableau *t = st->tableau;
    const int s = t->stages;

    memset(e, 0, sizeof *e);
    e->type = *st;
    e->tab = *t;
    memcpy(e->c, t->c, (size_t)s * sizeof(double));
    memcpy(e->a, t->a, (size_t)s * s * sizeof(double));
    memcpy(e->b, t->b, (size_t)s * sizeof(double));
    if (t->btilde)
        memcpy(e->btilde, t->btilde, (size_t)s * sizeof(double));
    if (t->dense_degree)
        memcpy(e->dense, t->dense,
               (size_t)s * t->dense_degree * sizeof(double));
    e->tab.c = e->c;
    e->tab.a = e->a;
    e->tab.b = e->b;
    e->tab.btilde = t->btilde ? e->btilde : NULL;
    e->tab.dense = t->dense_degree ? e->dense : NULL;
    e->type.tableau = &e->tab;
}

/* create refuses it with NDE_EPLUGIN and a message containing `what`. */
static void assert_refused(const tableau_copy *e, nde_field *f,
                           const char *what)
{
    nde_solver *s = NULL;
    const int rc = nde_solver_create_from(ctx, &e->type, f, &s);

    ck_assert_ptr_null(s);
    ck_assert_msg(rc == NDE_EPLUGIN && strstr(nde_ctx_message(ctx), what),
                  "%s: rc %d, message '%s', expected '%s'",
                  e->type.info.name, rc, nde_ctx_message(ctx), what);
}

/* Load-time checks: a declared order the coefficients do not have, c that
 * is not the row sums, a dense output that misses the step's end or its
 * order; each shipped tableau passes them unchanged (every test here
 * creates them). */
START_TEST(test_tableau_refused)
{
    nde_field *f = make_field(&cos_field, 1);
    tableau_copy e;
    nde_solver *s;

    /* The copy itself is accepted. */
    copy_tableau(solver_named("tsit5"), &e);
    ck_assert_int_eq(nde_solver_create_from(ctx, &e.type, f, &s), NDE_OK);
    nde_solver_destroy(s);
    /* A weight off in its 7th digit (sum b kept at 1, and FSAL's last row
     * of a with it): order 1 holds, order 2 does not. */
    e.b[1] += 1e-7;
    e.b[0] -= 1e-7;
    e.a[6 * 7 + 1] = e.b[1];
    e.a[6 * 7 + 0] = e.b[0];
    assert_refused(&e, f, "does not have the declared order 5");
    copy_tableau(solver_named("tsit5"), &e);
    e.btilde[2] += 1e-7;
    e.btilde[0] -= 1e-7;
    assert_refused(&e, f, "embedded solution (b + btilde) does not have the "
                          "declared order 4");
    copy_tableau(solver_named("dopri5"), &e);
    e.c[2] += 1e-6;
    assert_refused(&e, f, "row 2 of a sums to");
    /* rk4 is not 5th order. */
    copy_tableau(solver_named("rk4"), &e);
    e.type.order = 5;
    assert_refused(&e, f, "declared order 5: the order condition of tree 9 "
                          "(order 5");
    /* A dense output that misses the step's end (b_i(1) != b_i). */
    copy_tableau(solver_named("rk4"), &e);
    e.dense[0] += 1e-3;
    assert_refused(&e, f, "dense output at theta = 1 is not the step's end");
    /* A tableau claiming what only ops can give. */
    copy_tableau(solver_named("rk4"), &e);
    e.type.info.provides |= NDE_CAP_REVERSIBLE;
    assert_refused(&e, f, "has no exact reverse");
    /* One of order 2 declared 3: moving weight between the theta^2 and
     * theta^3 coefficients of two stages keeps b_i(1). */
    copy_tableau(solver_named("rk4"), &e);
    e.dense[1 * 3 + 1] += 0.1;
    e.dense[1 * 3 + 2] -= 0.1;
    e.dense[2 * 3 + 1] -= 0.1;
    e.dense[2 * 3 + 2] += 0.1;
    assert_refused(&e, f, "the dense output at theta = 0.25 does not have "
                          "the declared order 3");
    nde_field_destroy(f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Conformance: every solver plugin                                    */

START_TEST(test_found_all)
{
    /* The five shipped solvers must be among those found. */
    const char *names[] = {"tsit5", "dopri5", "bs3", "rk4", "euler"};
    for (size_t i = 0; i < 5; i++)
        ck_assert_ptr_nonnull(solver_named(names[i]));
}
END_TEST

START_TEST(test_tableau_consistency)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        const nde_rk_tableau *t = st->tableau;
        const int s = t->stages, deg = t->dense_degree;
        double sb = 0, sbt = 0;
        ck_assert_ptr_nonnull(t);
        for (int i = 0; i < s; i++) {
            double row = 0;
            for (int j = 0; j < s; j++)
                row += t->a[i * s + j];
            ck_assert_msg(fabs(row - t->c[i]) <= 1e-15,
                          "%s: row %d sums to %.17g, c = %.17g",
                          st->info.name, i, row, t->c[i]);
            sb += t->b[i];
            if (t->btilde)
                sbt += t->btilde[i];
        }
        ck_assert_msg(fabs(sb - 1) <= 1e-15, "%s: sum b = %.17g",
                      st->info.name, sb);
        ck_assert_msg(fabs(sbt) <= 1e-15, "%s: sum btilde = %.3g",
                      st->info.name, sbt);
        /* Quadrature conditions sum b_i c_i^q = 1/(q+1), q < order, and
         * the same for bhat below error_order. */
        for (int q = 0; q < st->order; q++) {
            double sum = 0;
            for (int i = 0; i < s; i++)
                sum += t->b[i] * pow(t->c[i], q);
            ck_assert_msg(fabs(sum - 1.0 / (q + 1)) <= 1e-14,
                          "%s: sum b c^%d = %.17g", st->info.name, q, sum);
        }
        for (int q = 0; t->btilde && q < st->error_order; q++) {
            double sum = 0;
            for (int i = 0; i < s; i++)
                sum += (t->b[i] + t->btilde[i]) * pow(t->c[i], q);
            ck_assert_msg(fabs(sum - 1.0 / (q + 1)) <= 1e-14,
                          "%s: sum bhat c^%d = %.17g", st->info.name, q, sum);
        }
        /* Dense output ends at the step: b_i(1) = b_i. */
        for (int i = 0; i < s && deg > 0; i++) {
            double b1 = 0;
            for (int j = 0; j < deg; j++)
                b1 += t->dense[i * deg + j];
            ck_assert_msg(fabs(b1 - t->b[i]) <= 3e-15,
                          "%s: b_%d(1) = %.17g, b = %.17g", st->info.name, i,
                          b1, t->b[i]);
        }
        ck_assert_int_eq(!!(st->info.provides & NDE_CAP_DENSE),
                         deg > 0 && st->dense_order > 0);
        ck_assert_int_eq(!!(st->info.provides & NDE_CAP_ADAPTIVE),
                         t->btilde != NULL && st->error_order > 0);
    }
}
END_TEST

/* Errors of N-step solves of the two exact problems (max over both). */
static double conv_error(nde_solver *scos, nde_solver *srot, long N)
{
    const double thc[1] = {1.0}, thr[2] = {0.2, 1.0};
    const double y0r[2] = {1.0, 0.5};
    double yc[1] = {1.0}, yr[2] = {1.0, 0.5}, exr[2], e;
    fixed_steps(scos, thc, 0.0, 10.0, N, yc);
    e = fabs(yc[0] - exp(sin(10.0)));
    fixed_steps(srot, thr, 0.0, 10.0, N, yr);
    rot_exact(thr, 10.0, y0r, exr);
    return fmax(e, max_abs_diff(yr, exr, 2));
}

/* Slope of log err against log h over the step counts whose error lies in
 * a window past the pre-asymptotic range and above round-off (found for
 * these problems on [0, 10]): doubling N from 2 until the error drops below
 * hi, then up to five points while it stays above lo. */
static double measure_order(const nde_solver_type *st, int *npts)
{
    const double lo = st->order >= 4 ? 1e-13 : st->order == 3 ? 1e-10 : 1e-7;
    const double hi = st->order >= 4 ? 1e-7 : st->order == 3 ? 1e-5 : 1e-3;
    nde_field *fc = make_field(&cos_field, 1), *fr = make_field(&rot_field, 1);
    nde_solver *sc = make_solver(st, fc), *sr = make_solver(st, fr);
    double hs[5], es[5], slope;
    long N = 2;
    int n = 0;

    while (conv_error(sc, sr, N) > hi && N < (1L << 22))
        N *= 2;
    for (; n < 5 && N < (1L << 22); N *= 2) {
        const double e = conv_error(sc, sr, N);
        if (e < lo)
            break;
        hs[n] = 1.0 / (double)N;
        es[n] = e;
        n++;
    }
    slope = n >= 3 ? ls_slope(hs, es, n) : NAN;
    *npts = n;
    nde_solver_destroy(sc);
    nde_solver_destroy(sr);
    nde_field_destroy(fc);
    nde_field_destroy(fr);
    return slope;
}

START_TEST(test_convergence_order)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        int npts;
        const double p = measure_order(st, &npts);
        fprintf(stderr, "order %-8s %.3f (theory %d, %d step sizes)\n",
                st->info.name, p, st->order, npts);
        ck_assert_msg(npts >= 3 && fabs(p - st->order) <= 0.2,
                      "%s: observed order %.3f, expected %d (%d points)",
                      st->info.name, p, st->order, npts);
    }
}
END_TEST

START_TEST(test_embedded_order)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        embedded_type e;
        int npts;
        double p;
        if (!st->tableau->btilde)
            continue;
        make_embedded(st, &e);
        p = measure_order(&e.type, &npts);
        fprintf(stderr, "embedded %-8s %.3f (theory %d, %d step sizes)\n",
                st->info.name, p, st->error_order, npts);
        ck_assert_msg(npts >= 3 && fabs(p - st->error_order) <= 0.2,
                      "%s: embedded order %.3f, expected %d",
                      st->info.name, p, st->error_order);
    }
}
END_TEST

/* Golden numbers of methods.md 1.4: tsit5 on y' = y cos t, [0, 2]. */
START_TEST(test_tsit5_golden)
{
    const double golden[5] = {1.17e-5, 1.88e-7, 3.27e-9, 6.44e-11, 1.45e-12};
    const double th[1] = {1.0};
    nde_field *f = make_field(&cos_field, 1);
    nde_solver *s = make_solver(solver_named("tsit5"), f);
    for (int i = 0; i < 5; i++) {
        double y[1] = {1.0};
        double e;
        fixed_steps(s, th, 0.0, 2.0, 4L << i, y);
        e = fabs(y[0] - exp(sin(2.0)));
        ck_assert_msg(fabs(e / golden[i] - 1) < 0.02,
                      "N = %ld: error %.3g, golden %.3g", 4L << i, e,
                      golden[i]);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* One step of size h from the exact state at t = 0.3 of the rotation
 * problem: returns max over theta in {1/4, 1/2, 3/4} of the dense output's
 * error, and the norm of the local error estimate. */
static void one_step_errors(nde_solver *s, double h, double *dense_err,
                            double *est)
{
    const double th[2] = {0.2, 1.0}, y00[2] = {1.0, 0.5}, t = 0.3;
    double y[2], yn[2], err[2], yd[2], ex[2];
    rot_exact(th, t, y00, y);
    nde_solver_invalidate(s);
    ck_assert_int_eq(nde_solver_step(s, th, t, h, y, yn, err), NDE_OK);
    *dense_err = 0;
    for (int i = 1; i <= 3; i++) {
        ck_assert_int_eq(nde_solver_dense(s, y, h, 0.25 * i, yd), NDE_OK);
        rot_exact(th, t + 0.25 * i * h, y00, ex);
        *dense_err = fmax(*dense_err, max_abs_diff(yd, ex, 2));
    }
    *est = fmax(fabs(err[0]), fabs(err[1]));
}

START_TEST(test_dense_and_estimate_order)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f = make_field(&rot_field, 1);
        nde_solver *s = make_solver(st, f);
        double hs[6], de[6], ee[6];
        int nd = 0;
        /* h = 2^-2 .. 2^-7: local errors stay far above round-off. */
        for (int i = 0; i < 6; i++) {
            hs[nd] = ldexp(1.0, -2 - i);
            one_step_errors(s, hs[nd], &de[nd], &ee[nd]);
            nd++;
        }
        if (st->tableau->dense_degree > 0) {
            const double p = ls_slope(hs, de, nd);
            fprintf(stderr, "dense %-8s local error slope %.3f (dense_order "
                    "%d + 1)\n", st->info.name, p, st->dense_order);
            ck_assert_msg(fabs(p - (st->dense_order + 1)) <= 0.2,
                          "%s: dense local error slope %.3f, expected %d",
                          st->info.name, p, st->dense_order + 1);
        }
        if (st->tableau->btilde) {
            const double p = ls_slope(hs, ee, nd);
            fprintf(stderr, "estimate %-8s slope %.3f (error_order %d + "
                    "1)\n", st->info.name, p, st->error_order);
            ck_assert_msg(fabs(p - (st->error_order + 1)) <= 0.2,
                          "%s: error estimate slope %.3f, expected %d",
                          st->info.name, p, st->error_order + 1);
        }
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
}
END_TEST

START_TEST(test_stiffness_linear)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f;
        nde_solver *s;
        const double lam[1] = {-7.5};
        double y[3] = {1.0, -2.0, 0.5}, yn[3], S;
        if (st->tableau->stiff_stage < 0) {
            f = make_field(&cos_field, 1);
            s = make_solver(st, f);
            ck_assert_int_eq(nde_solver_stiffness(s, y, &S), NDE_ECAPABILITY);
            nde_solver_destroy(s);
            nde_field_destroy(f);
            continue;
        }
        /* Every stage of y' = lambda y is linear in its argument, so
         * (k_s - k_q) / (y_next - g_q) = lambda exactly (batch of 3). */
        f = make_field(&lam_field, 3);
        s = make_solver(st, f);
        ck_assert_int_eq(nde_solver_step(s, lam, 0.0, 0.1, y, yn, NULL),
                         NDE_OK);
        ck_assert_int_eq(nde_solver_stiffness(s, yn, &S), NDE_OK);
        ck_assert_msg(fabs(S / (7.5 / st->tableau->stability_size) - 1) <=
                          1e-10,
                      "%s: S = %.17g", st->info.name, S);
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
}
END_TEST

/* Scalar loss of one step: <w, y_next> + ew EEst + sw S, at (y, theta). */
/* Weights on the dense output at DENSE_THETA inside the step (mode 3). */
#define DENSE_THETA 0.37

static double step_loss(nde_solver *s, const double *theta, double t, double h,
                        const double *y, const double *w, double ew, double sw,
                        const double *dw, double rtol, double atol)
{
    const size_t n = s->batch * s->field->dim;
    double yn[16], err[16], yd[16], L = 0;
    nde_solver_invalidate(s);
    ck_assert_int_eq(nde_solver_step(s, theta, t, h, y, yn, err), NDE_OK);
    for (size_t i = 0; i < n; i++)
        L += w[i] * yn[i];
    if (dw) {
        ck_assert_int_eq(nde_solver_dense(s, y, h, DENSE_THETA, yd), NDE_OK);
        for (size_t i = 0; i < n; i++)
            L += dw[i] * yd[i];
    }
    if (ew != 0)
        L += ew * nde_error_norm(err, y, yn, n, rtol, atol);
    if (sw != 0) {
        double S;
        ck_assert_int_eq(nde_solver_stiffness(s, yn, &S), NDE_OK);
        L += sw * S;
    }
    return L;
}

/* The step VJP against central differences, w.r.t. y and theta, for the
 * cotangent on y_next, on EEst (through err and the scale), on S and on a
 * dense output inside the step. */
START_TEST(test_step_vjp)
{
    const size_t batch = 3, n = 6, np = 3;
    const double t = 0.4, h = 0.5, rtol = 1e-3, atol = 1e-4;
    const double y0[6] = {0.7, -0.4, -1.1, 0.9, 0.3, 1.6};
    const double w[6] = {0.3, -1.2, 0.8, 0.5, -0.7, 1.1};
    const double zero[6] = {0};
    double theta[3] = {1.3, 0.8, -0.6};
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f = make_field(&nl_field, batch);
        nde_solver *s = make_solver(st, f);
        for (int mode = 0; mode < 4; mode++) {
            /* mode 0: y_next; 1: EEst; 2: stiffness; 3: dense output */
            const double *wy = mode == 0 ? w : zero;
            const double *dw = mode == 3 ? w : NULL;
            const nde_dense_cotangent dc = {DENSE_THETA, w};
            const double ew = mode == 1 ? 2.5 : 0, sw = mode == 2 ? 1.7 : 0;
            double ybar[6] = {0}, thbar[3] = {0};
            long nvjp0 = s->counts.nvjp;
            if ((mode == 1 && !st->tableau->btilde) ||
                (mode == 2 && st->tableau->stiff_stage < 0) ||
                (mode == 3 && st->tableau->dense_degree == 0))
                continue;
            ck_assert_int_eq(nde_solver_step_vjp(s, theta, t, h, y0, rtol,
                                                 atol, wy, ew, sw, dw ? &dc : NULL,
                                                 dw ? 1 : 0, ybar, thbar),
                             NDE_OK);
            ck_assert_int_eq(s->counts.nvjp - nvjp0, st->tableau->stages);
            for (size_t i = 0; i < n + np; i++) {
                /* EEst sums cancelling stages: a larger eps keeps the
                 * difference above round-off. */
                const double eps = 1e-5;
                double yp[6], thp[3], Lp, Lm, fd, an;
                memcpy(yp, y0, sizeof yp);
                memcpy(thp, theta, sizeof thp);
                if (i < n) yp[i] += eps; else thp[i - n] += eps;
                Lp = step_loss(s, thp, t, h, yp, wy, ew, sw, dw, rtol, atol);
                if (i < n) yp[i] -= 2 * eps; else thp[i - n] -= 2 * eps;
                Lm = step_loss(s, thp, t, h, yp, wy, ew, sw, dw, rtol, atol);
                fd = (Lp - Lm) / (2 * eps);
                an = i < n ? ybar[i] : thbar[i - n];
                ck_assert_msg(fabs(fd - an) <= 1e-7 + 1e-6 * fabs(fd),
                              "%s mode %d: d/d%s[%zu] analytic %.12g, central "
                              "difference %.12g", st->info.name, mode,
                              i < n ? "y" : "theta", i < n ? i : i - n, an,
                              fd);
            }
        }
        /* The step just taken: the same numbers from its own stages, with
         * no field evaluation; refused once the step is accepted. */
        if (st->tableau->btilde) {
            const nde_dense_cotangent dc = {DENSE_THETA, w};
            double yn[6], err[6], yb1[6] = {0}, tb1[3] = {0};
            double yb2[6] = {0}, tb2[3] = {0};
            long nfe0;
            nde_solver_invalidate(s);
            ck_assert_int_eq(nde_solver_step(s, theta, t, h, y0, yn, err),
                             NDE_OK);
            nfe0 = s->counts.nfe;
            ck_assert_int_eq(nde_solver_last_step_vjp(s, rtol, atol, w, 1.3,
                                                      0, &dc, 1, yb1, tb1),
                             NDE_OK);
            ck_assert_int_eq(s->counts.nfe, nfe0);
            ck_assert_int_eq(nde_solver_step_vjp(s, theta, t, h, y0, rtol,
                                                 atol, w, 1.3, 0, &dc, 1,
                                                 yb2, tb2), NDE_OK);
            ck_assert_int_eq(s->counts.nfe - nfe0, st->tableau->stages);
            ck_assert(memcmp(yb1, yb2, sizeof yb1) == 0);
            ck_assert(memcmp(tb1, tb2, sizeof tb1) == 0);
            nde_solver_accept(s);
            ck_assert_int_eq(nde_solver_last_step_vjp(s, rtol, atol, w, 1.3,
                                                      0, NULL, 0, yb1, tb1),
                             NDE_EINVAL);
        }
        /* NULL outputs are allowed. */
        ck_assert_int_eq(nde_solver_step_vjp(s, theta, t, h, y0, rtol, atol,
                                             w, 0, 0, NULL, 0, NULL, NULL),
                         NDE_OK);
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
}
END_TEST

/* Same inputs, bit-identical outputs: two instances, and one instance
 * before and after other work. */
START_TEST(test_determinism)
{
    const double theta[3] = {1.3, 0.8, -0.6};
    const double y0[4] = {0.7, -0.4, -1.1, 0.9};
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f = make_field(&nl_field, 2);
        nde_solver *a = make_solver(st, f), *b = make_solver(st, f);
        nde_solve_opts o;
        const double ts[3] = {0.5, 1.25, 3.0};
        double ya[12], yb[12], yc[12];
        nde_stats sa, sb;
        nde_solve_opts_default(&o, st);
        o.rtol = o.atol = 1e-7;
        if (!(st->info.provides & NDE_CAP_ADAPTIVE))
            o.dt = 0.01;
        ck_assert_int_eq(nde_solve(a, &o, theta, 0, y0, 3, 3, ts, ya, &sa),
                         NDE_OK);
        ck_assert_int_eq(nde_solve(b, &o, theta, 0, y0, 3, 3, ts, yb, &sb),
                         NDE_OK);
        ck_assert_int_eq(nde_solve(a, &o, theta, 0, y0, 3, 3, ts, yc, NULL),
                         NDE_OK);
        ck_assert_msg(memcmp(ya, yb, sizeof ya) == 0 &&
                          memcmp(ya, yc, sizeof ya) == 0,
                      "%s: results differ between identical solves",
                      st->info.name);
        ck_assert_int_eq(sa.nfe, sb.nfe);
        nde_solver_destroy(a);
        nde_solver_destroy(b);
        nde_field_destroy(f);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* The solve loop                                                      */

static nde_solve_opts opts_for(const nde_solver_type *st, double tol)
{
    nde_solve_opts o;
    nde_solve_opts_default(&o, st);
    o.rtol = o.atol = tol;
    return o;
}

/* Lotka-Volterra reference at the given times: tsit5 fixed steps of 1e-4
 * landing on each time (global error ~1e-15). */
static void lv_reference(const double *ts, size_t nt, double *out)
{
    nde_field *f = make_field(&lv_field, 1);
    nde_solver *s = make_solver(solver_named("tsit5"), f);
    double y[2] = {1.0, 1.0}, t = 0;
    for (size_t i = 0; i < nt; i++) {
        const long N = (long)ceil((ts[i] - t) / 1e-4);
        if (N > 0)
            fixed_steps(s, lv_theta, t, ts[i], N, y);
        t = ts[i];
        memcpy(out + 2 * i, y, sizeof y);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}

START_TEST(test_adaptive_lv)
{
    const double y0[2] = {1.0, 1.0}, t1 = 10.0;
    double ref[2];
    long rejected_loose = 0;
    lv_reference(&t1, 1, ref);
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f;
        nde_solver *s;
        nde_solve_opts o = opts_for(st, 1e-8);
        nde_stats stats;
        double y[2], e;
        const int stages = st->tableau->stages;
        if (!(st->info.provides & NDE_CAP_ADAPTIVE))
            continue;
        f = make_field(&lv_field, 1);
        s = make_solver(st, f);
        /* Evaluation count with rejected steps: each reuses k1. */
        {
            nde_solve_opts loose = opts_for(st, 1e-4);
            ck_assert_int_eq(nde_solve(s, &loose, lv_theta, 0, y0, t1, 1, &t1,
                                       y, &stats), NDE_OK);
            rejected_loose += stats.steps_rejected;
            if (st->tableau->fsal)
                ck_assert_int_eq(stats.nfe, (long)(stages - 1) *
                                 (stats.steps_accepted +
                                  stats.steps_rejected) + 2);
        }
        ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, t1, 1, &t1, y,
                                   &stats), NDE_OK);
        e = max_abs_diff(y, ref, 2);
        fprintf(stderr, "lv %-8s tol 1e-8: err %.2e, nfe %ld, accepted %ld, "
                "rejected %ld, h in [%.3g, %.3g]\n", st->info.name, e,
                stats.nfe, stats.steps_accepted, stats.steps_rejected,
                stats.h_min, stats.h_max);
        ck_assert_msg(e < 2e-6, "%s: error %.3g at tol 1e-8", st->info.name, e);
        ck_assert_int_eq(stats.status, NDE_OK);
        ck_assert_int_eq(stats.retries, 0);
        ck_assert(stats.h_min > 0 && stats.h_min <= stats.h_max);
        /* Evaluations: f0 and the initial-step probe, then s - 1 new stages
         * per step (accepted or rejected) for FSAL tableaus, s otherwise. */
        if (st->tableau->fsal)
            ck_assert_int_eq(stats.nfe, (long)(stages - 1) *
                             (stats.steps_accepted + stats.steps_rejected) + 2);
        /* Tighter tolerance, smaller error. */
        o = opts_for(st, 1e-10);
        ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, t1, 1, &t1, y,
                                   NULL), NDE_OK);
        ck_assert_msg(max_abs_diff(y, ref, 2) < e, "%s", st->info.name);
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
    /* The identity above was exercised with rejected steps. */
    ck_assert_int_gt(rejected_loose, 0);
}
END_TEST

START_TEST(test_save_times_dense)
{
    enum { NS = 41 };
    const double y0[2] = {1.0, 1.0};
    double ts[NS], ref[2 * NS], ys[2 * NS];
    for (int i = 0; i < NS; i++)
        ts[i] = 0.25 * i;
    lv_reference(ts, NS, ref);
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f;
        nde_solver *s;
        nde_solve_opts o = opts_for(st, 1e-9);
        nde_stats many, one;
        const double t1 = 10.0;
        double yend[2];
        if (!(st->info.provides & NDE_CAP_ADAPTIVE) ||
            !(st->info.provides & NDE_CAP_DENSE))
            continue;
        f = make_field(&lv_field, 1);
        s = make_solver(st, f);
        ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, 10, NS, ts, ys,
                                   &many), NDE_OK);
        ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, 10, 1, &t1, yend,
                                   &one), NDE_OK);
        /* Saving does not change the steps. */
        ck_assert_int_eq(many.steps_accepted, one.steps_accepted);
        ck_assert_int_eq(many.nfe, one.nfe);
        ck_assert(memcmp(ys + 2 * (NS - 1), yend, sizeof yend) == 0);
        ck_assert(memcmp(ys, y0, sizeof y0) == 0);
        ck_assert_msg(max_abs_diff(ys, ref, 2 * NS) < 1e-5,
                      "%s: dense saves off by %.3g", st->info.name,
                      max_abs_diff(ys, ref, 2 * NS));
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
}
END_TEST

/* y' = |t - 1| has a kink at 1: stepping onto it exactly makes every RK
 * method of order >= 2 exact (f is linear in t on each side). */
START_TEST(test_tstops)
{
    const double tstop = 1.0, t1 = 2.5, y0 = 0.0;
    const double exact = 0.5 + 0.5 * 1.5 * 1.5;
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&kink_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-3);
    double y, y_nostop;
    ck_assert_int_eq(nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y_nostop,
                               NULL), NDE_OK);
    o.tstops = &tstop;
    o.ntstops = 1;
    kink_evals_at_1 = 0;
    ck_assert_int_eq(nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y, NULL),
                     NDE_OK);
    fprintf(stderr, "tstops: error %.2e with the tstop, %.2e without\n",
            fabs(y - exact), fabs(y_nostop - exact));
    ck_assert_msg(fabs(y - exact) < 1e-13, "error %.3g", fabs(y - exact));
    ck_assert(fabs(y_nostop - exact) > 1e-10);
    /* The FSAL stage was dropped at the tstop: f evaluated at t = 1. */
    ck_assert_int_ge(kink_evals_at_1, 1);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_backwards)
{
    /* y' = y cos t from t = 2 back to 0: y = exp(sin t). */
    const double th[1] = {1.0}, t0 = 2.0, y0 = exp(sin(2.0));
    const double ts[4] = {2.0, 1.5, 0.7, 0.0};
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f = make_field(&cos_field, 1);
        nde_solver *s = make_solver(st, f);
        nde_solve_opts o = opts_for(st, 1e-10);
        nde_stats stats;
        const double tol = st->order >= 3 ? 1e-7 : 1e-2;
        double ys[4];
        if (!(st->info.provides & NDE_CAP_ADAPTIVE))
            o.dt = st->order >= 3 ? 1e-3 : 1e-4;
        ck_assert_int_eq(nde_solve(s, &o, th, t0, &y0, 0.0, 4, ts, ys,
                                   &stats), NDE_OK);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(fabs(ys[i] - exp(sin(ts[i]))) < tol,
                          "%s: t = %g: %.12g vs %.12g", st->info.name, ts[i],
                          ys[i], exp(sin(ts[i])));
        /* Backwards save times must decrease. */
        {
            const double bad[2] = {0.5, 1.5};
            ck_assert_int_eq(nde_solve(s, &o, th, t0, &y0, 0.0, 2, bad, ys,
                                       NULL), NDE_EINVAL);
        }
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
}
END_TEST

START_TEST(test_fixed_step_counts)
{
    /* Fixed step: N = span / dt steps, the last one shortened to land. */
    const nde_solver_type *st = solver_named("rk4");
    nde_field *f = make_field(&cos_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-6);
    const double th[1] = {1.0}, y0 = 1.0, t1 = 1.05;
    nde_stats stats;
    double y;
    o.dt = 0.1;
    ck_assert_int_eq(nde_solve(s, &o, th, 0, &y0, t1, 1, &t1, &y, &stats),
                     NDE_OK);
    ck_assert_int_eq(stats.steps_accepted, 11);
    ck_assert_int_eq(stats.steps_rejected, 0);
    ck_assert_int_eq(stats.nfe, 44);
    ck_assert(fabs(stats.h_min - 0.05) < 1e-12);
    ck_assert(fabs(y - exp(sin(t1))) < 1e-5);
    /* dt = 0 for a fixed-step solver: a clear error. */
    o.dt = 0;
    ck_assert_int_eq(nde_solve(s, &o, th, 0, &y0, t1, 1, &t1, &y, &stats),
                     NDE_EINVAL);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "dt"));
    ck_assert_int_eq(stats.status, NDE_EINVAL);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* solve.h: a fixed-step solve steps on the grid t0 + k dt; a save time
 * inside a cell splits it and the grid does not shift, in either
 * direction, for every fixed-step solver alike (the numbers are those of
 * stepping by hand). A solve with t1 == t0 saves y0. */
START_TEST(test_fixed_step_grid)
{
    const nde_solver_type *st = solver_named("rk4");
    nde_field *f = make_field(&cos_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-6);
    const double th[1] = {1.0}, y0 = 1.0;
    nde_stats stats;

    o.dt = 0.1;
    for (int dir = 1; dir >= -1; dir -= 2) {
        const double t0 = dir > 0 ? 0.0 : 1.0, t1 = 1.0 - t0;
        const double ts[2] = {t0 + dir * 0.25, t1};
        /* by hand: 2 grid steps, the split cell (two halves), 7 more */
        const double hs[11] = {0.1, 0.1, 0.05, 0.05, 0.1, 0.1, 0.1,
                               0.1, 0.1, 0.1, 0.1};
        double y = y0, yn, ys[2], t = t0, y_at_save = 0.0;
        for (int j = 0; j < 11; j++) {
            const double tn = j == 10 ? t1 : j == 2 ? ts[0]
                              : t0 + dir * ((j < 2 ? j + 1 : j) * 0.1);
            nde_solver_invalidate(s);
            ck_assert_int_eq(nde_solver_step(s, th, t, tn - t, &y, &yn, NULL),
                             NDE_OK);
            ck_assert(fabs(fabs(tn - t) - hs[j]) < 1e-12);
            y = yn;
            t = tn;
            if (j == 2)
                y_at_save = y;
        }
        ck_assert_int_eq(nde_solve(s, &o, th, t0, &y0, t1, 2, ts, ys,
                                   &stats), NDE_OK);
        ck_assert_int_eq(stats.steps_accepted, 11);
        ck_assert_msg(ys[0] == y_at_save && ys[1] == y,
                      "dir %d: %.17g %.17g vs by hand %.17g %.17g", dir,
                      ys[0], ys[1], y_at_save, y);
    }
    {
        const double ts[2] = {0.5, 0.5};
        double ys[2] = {0, 0};
        ck_assert_int_eq(nde_solve(s, &o, th, 0.5, &y0, 0.5, 2, ts, ys,
                                   &stats), NDE_OK);
        ck_assert(ys[0] == y0 && ys[1] == y0);
        ck_assert_int_eq(stats.steps_accepted + stats.steps_rejected, 0);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_max_steps)
{
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&lv_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-10);
    const double y0[2] = {1, 1}, t1 = 10;
    nde_stats stats;
    double y[2];
    o.max_steps = 25;
    ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, t1, 1, &t1, y, &stats),
                     NDE_EMAXSTEPS);
    ck_assert_int_eq(stats.status, NDE_EMAXSTEPS);
    ck_assert_int_eq(stats.steps_accepted + stats.steps_rejected, 25);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "max_steps"));
    nde_solver_destroy(s);
    /* A fixed step that cannot reach t1 within max_steps is refused
     * before the first step; 25 steps exactly are allowed. */
    st = solver_named("rk4");
    s = make_solver(st, f);
    o = opts_for(st, 0.0);
    o.max_steps = 25;
    o.dt = t1 / 26;
    ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, t1, 1, &t1, y, &stats),
                     NDE_EMAXSTEPS);
    ck_assert_int_eq(stats.steps_accepted, 0);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "takes at least 26 "
                                 "steps"));
    o.dt = t1 / 25;
    ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, t1, 1, &t1, y, &stats),
                     NDE_OK);
    ck_assert_int_eq(stats.steps_accepted, 25);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_nonfinite)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        const nde_field_type *fts[2] = {&nan_field, &late_retry_field};
        for (int j = 0; j < 2; j++) {
            nde_field *f = make_field(fts[j], 1);
            nde_solver *s = make_solver(st, f);
            nde_solve_opts o = opts_for(st, 1e-6);
            const double y0 = 1.0, t1 = 2.0;
            nde_stats stats;
            double y;
            if (!(st->info.provides & NDE_CAP_ADAPTIVE))
                o.dt = 0.01;
            ck_assert_int_eq(nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y,
                                       &stats), NDE_ENONFINITE);
            ck_assert_int_eq(stats.status, NDE_ENONFINITE);
            ck_assert_int_gt(stats.steps_accepted, 0);
            /* solve.h: an adaptive solver retries with smaller steps, a
             * fixed-step one stops at once. */
            if (st->info.provides & NDE_CAP_ADAPTIVE) {
                ck_assert_int_gt(stats.retries, 0);
                ck_assert_int_ge(stats.steps_rejected, stats.retries);
            } else {
                ck_assert_int_eq(stats.retries, 0);
                ck_assert_msg(strstr(nde_ctx_message(ctx), "no retry"),
                              "%s: %s", st->info.name, nde_ctx_message(ctx));
            }
            nde_solver_destroy(s);
            nde_field_destroy(f);
        }
    }
}
END_TEST

START_TEST(test_retry_region)
{
    /* y' = -y is undefined for y < 0: a first step of 10 makes negative
     * stage values; the loop must shrink and finish accurately. */
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&pos_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-8);
    const double y0 = 1.0, t1 = 5.0;
    nde_stats stats;
    double y;
    o.dt = 10.0;
    retry_calls = 0;
    ck_assert_int_eq(nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y, &stats),
                     NDE_OK);
    ck_assert_int_gt(stats.retries, 0);
    ck_assert_int_eq(stats.retries, retry_calls);
    ck_assert_msg(fabs(y - exp(-5.0)) < 1e-7, "y = %.12g", y);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_step_underflow)
{
    /* y' = y^2 blows up at t = 1. */
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&blow_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-6);
    const double y0 = 1.0, t1 = 2.0;
    nde_stats stats;
    double y;
    int rc;
    o.dtmin = 1e-8;
    ck_assert_int_eq(nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y, &stats),
                     NDE_ESTEPSIZE);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "dtmin"));
    /* Without dtmin: round-off stops it (or the state overflows), in
     * bounded work. */
    o.dtmin = 0;
    rc = nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y, &stats);
    fprintf(stderr, "blow-up without dtmin: %s after %ld steps (%s)\n",
            nde_status_name(rc), stats.steps_accepted + stats.steps_rejected,
            nde_ctx_message(ctx));
    ck_assert(rc == NDE_ESTEPSIZE || rc == NDE_ENONFINITE);
    ck_assert_int_lt(stats.steps_accepted + stats.steps_rejected, 100000);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Config: [solver] and [problem] sections                             */

/* ------------------------------------------------------------------ */
/* Recording, seminorm, tstop callback                                 */

/* Every accepted step is recorded: replaying it from the recorded state
 * reproduces the next recorded state, the error norm, the stiffness and
 * the dense output bit for bit. */
START_TEST(test_record_contents)
{
    const double th[2] = {0.3, 2.0}, y0[2] = {1.0, 0.5}, t1 = 3.0;
    const unsigned all = NDE_NEEDS_STEPS | NDE_NEEDS_DENSE |
                         NDE_NEEDS_ERROR_EST | NDE_NEEDS_STIFFNESS;
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-7);
    nde_trajectory *tr = nde_trajectory_create(all, 0);
    nde_stats stats;
    double yend[2], yn[2], err[2], d1[2], d2[2];
    ck_assert_ptr_nonnull(tr);
    o.record = tr;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yend, &stats),
                     NDE_OK);
    ck_assert_uint_eq(tr->nsteps, (size_t)stats.steps_accepted);
    ck_assert_uint_eq(tr->nstates, tr->nsteps);
    ck_assert_int_eq(tr->stages, 7);
    ck_assert(tr->t0 == 0.0 && tr->t1 == t1 && tr->t[0] == 0.0);
    ck_assert(memcmp(tr->y_final, yend, sizeof yend) == 0);
    ck_assert(memcmp(tr->y, y0, sizeof y0) == 0);
    for (size_t j = 0; j < tr->nsteps; j++) {
        const double *yj = tr->y + 2 * j;
        const double *ynext = j + 1 < tr->nsteps ? tr->y + 2 * (j + 1)
                                                 : tr->y_final;
        double stiff;
        ck_assert_uint_eq(tr->ystep[j], j);
        nde_solver_invalidate(s);
        ck_assert_int_eq(nde_solver_step(s, th, tr->t[j], tr->h[j], yj, yn,
                                         err), NDE_OK);
        ck_assert_msg(memcmp(yn, ynext, sizeof yn) == 0, "step %zu", j);
        ck_assert(nde_error_norm(err, yj, yn, 2, o.rtol, o.atol) ==
                  tr->eest[j]);
        ck_assert(tr->eest[j] <= 1.0);
        ck_assert_int_eq(nde_solver_stiffness(s, yn, &stiff), NDE_OK);
        ck_assert(stiff == tr->stiff[j]);
        ck_assert_int_eq(nde_solver_dense(s, yj, tr->h[j], 0.37, d1), NDE_OK);
        ck_assert_int_eq(nde_solver_dense_from(s, yj, tr->h[j],
                                               tr->k + j * 7 * 2, 0.37, d2),
                         NDE_OK);
        ck_assert(memcmp(d1, d2, sizeof d1) == 0);
        if (j + 1 < tr->nsteps)
            ck_assert(fabs(tr->t[j] + tr->h[j] - tr->t[j + 1]) < 1e-14);
        ck_assert_int_eq(nde_trajectory_find(tr, tr->t[j] + 0.5 * tr->h[j]),
                         (long)j);
    }
    ck_assert_int_eq(nde_trajectory_find(tr, t1), (long)tr->nsteps - 1);
    ck_assert_int_eq(nde_trajectory_find(tr, t1 + 1e-9), -1);
    ck_assert_int_eq(nde_trajectory_find(tr, -1e-9), -1);

    /* A second, shorter solve resets the record. */
    {
        const size_t first = tr->nsteps;
        const double t2 = 0.5;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t2, 1, &t2, yend,
                                   &stats), NDE_OK);
        ck_assert_uint_eq(tr->nsteps, (size_t)stats.steps_accepted);
        ck_assert_uint_lt(tr->nsteps, first);
        ck_assert(tr->t1 == t2);
    }
    /* Nothing requested: the count, the ends and y_final only. */
    {
        nde_trajectory *t0r = nde_trajectory_create(0, 0);
        o.record = t0r;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yend,
                                   &stats), NDE_OK);
        ck_assert_uint_eq(t0r->nsteps, (size_t)stats.steps_accepted);
        ck_assert(t0r->nsteps > 10);
        ck_assert_ptr_null(t0r->t);
        ck_assert_ptr_null(t0r->h);
        ck_assert_ptr_null(t0r->y);
        ck_assert(t0r->t1 == t1);
        ck_assert(memcmp(t0r->y_final, yend, sizeof yend) == 0);
        ck_assert_int_eq(nde_trajectory_find(t0r, 0.5), -1);
        nde_trajectory_destroy(t0r);
        o.record = tr;
    }
    /* Dense output cannot be recorded from a solver without it. */
    {
        nde_trajectory *tk = nde_trajectory_create(NDE_NEEDS_STIFFNESS, 0);
        nde_solver *s4 = make_solver(solver_named("rk4"), f);
        nde_solve_opts o4 = opts_for(solver_named("rk4"), 1e-6);
        o4.dt = 0.1;
        o4.record = tk;
        ck_assert_int_eq(nde_solve(s4, &o4, th, 0.0, y0, t1, 1, &t1, yend,
                                   NULL), NDE_ECAPABILITY);
        ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "stiffness"));
        nde_solver_destroy(s4);
        nde_trajectory_destroy(tk);
    }
    nde_trajectory_destroy(tr);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* max_states: at most that many states, evenly spread (step i * stride),
 * equal to the full record's states at those steps. */
START_TEST(test_record_thinning)
{
    const double th[2] = {0.1, 1.0}, y0[2] = {1.0, 0.0}, t1 = 10.0;
    const nde_solver_type *st = solver_named("rk4");
    nde_field *f = make_field(&rot_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-6);
    nde_trajectory *full = nde_trajectory_create(NDE_NEEDS_STEPS, 0);
    double yend[2];
    o.dt = 0.01;
    o.record = full;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yend, NULL),
                     NDE_OK);
    ck_assert_uint_eq(full->nsteps, 1000);
    ck_assert_ptr_null(full->k);
    for (size_t maxs = 1; maxs <= 40; maxs += 3) {
        nde_trajectory *tr = nde_trajectory_create(NDE_NEEDS_STEPS, maxs);
        o.record = tr;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yend,
                                   NULL), NDE_OK);
        ck_assert_uint_eq(tr->nsteps, 1000);
        ck_assert_uint_le(tr->nstates, maxs);
        ck_assert_uint_le(tr->states_cap, maxs);
        /* Thinned only when full: more than half the slots in use. */
        ck_assert_uint_gt(2 * tr->nstates, maxs);
        ck_assert_uint_eq(tr->stride & (tr->stride - 1), 0);
        /* The last state lies within one stride of the last step. */
        ck_assert_uint_ge((tr->nstates + 1) * tr->stride, 1000);
        for (size_t i = 0; i < tr->nstates; i++) {
            ck_assert_uint_eq(tr->ystep[i], i * tr->stride);
            ck_assert(memcmp(tr->y + 2 * i, full->y + 2 * tr->ystep[i],
                             2 * sizeof(double)) == 0);
        }
        nde_trajectory_destroy(tr);
    }
    nde_trajectory_destroy(full);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* norm_blocks = {2}: the error norm of a batch of two rows over the first
 * row only steps exactly as a solve of that row alone. */
START_TEST(test_norm_blocks_prefix)
{
    const double th[2] = {0.2, 3.0}, t1 = 4.0;
    const double y0[4] = {1.0, 0.0, 100.0, 30.0};
    const size_t row0[1] = {2};
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 2);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-8);
    nde_stats one, semi, full;
    double y1[2], y2[4];
    o.rtol = 0.0;
    ck_assert_int_eq(nde_solver_set_batch(s, 1), NDE_OK);
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y1, &one),
                     NDE_OK);
    ck_assert_int_eq(nde_solver_set_batch(s, 2), NDE_OK);
    o.norm_blocks = row0;
    o.nnorm_blocks = 1;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y2, &semi),
                     NDE_OK);
    o.nnorm_blocks = 0;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y2 + 0, &full),
                     NDE_OK);
    fprintf(stderr, "norm blocks: %ld steps on row 0 alone, %ld with blocks "
            "{2}, %ld with the full norm\n", one.steps_accepted,
            semi.steps_accepted, full.steps_accepted);
    ck_assert_int_eq(semi.steps_accepted, one.steps_accepted);
    ck_assert_int_eq(semi.steps_rejected, one.steps_rejected);
    ck_assert_int_gt(full.steps_accepted, semi.steps_accepted);
    o.nnorm_blocks = 1;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y2, NULL),
                     NDE_OK);
    ck_assert(memcmp(y1, y2, sizeof y1) == 0);
    /* The excluded values are still checked for non-finite values. */
    {
        const double ybad[4] = {1.0, 0.0, 1e300, 1e300};
        const double big[2] = {-1e3, 0.0};
        ck_assert_int_eq(nde_solve(s, &o, big, 0.0, ybad, t1, 1, &t1, y2,
                                   NULL), NDE_ENONFINITE);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* Scaled RMS of err over [lo, hi), scale atol + rtol max(|y|, |yn|). */
static double block_rms(const double *err, const double *y, const double *yn,
                        size_t lo, size_t hi, double rtol, double atol)
{
    double sum = 0.0;
    for (size_t i = lo; i < hi; i++) {
        const double sc = atol + rtol * fmax(fabs(y[i]), fabs(yn[i]));
        sum += (err[i] / sc) * (err[i] / sc);
    }
    return sqrt(sum / (double)(hi - lo));
}

/* Blocks {2, 3} over a batch of three rows (6 values, the last left out):
 * each recorded step's EEst is the larger of the two blocks' RMS, computed
 * here from the step's err; the second block (large rows) dominates, and
 * the RMS over everything would be another number. */
START_TEST(test_norm_blocks_value)
{
    const double th[2] = {0.3, 2.0}, t1 = 3.0;
    const double y0[6] = {1.0, 0.0, 80.0, -30.0, 50.0, 1e3};
    const size_t blocks[2] = {2, 3};
    const double rtol = 1e-10, atol = 1e-7; /* mostly absolute */
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 3);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-7);
    nde_trajectory *tr =
        nde_trajectory_create(NDE_NEEDS_STEPS | NDE_NEEDS_ERROR_EST, 0);
    double yend[6], yn[6], err[6];
    size_t dominated = 0;
    ck_assert_ptr_nonnull(tr);
    ck_assert_int_eq(nde_solver_set_batch(s, 3), NDE_OK);
    o.rtol = rtol;
    o.atol = atol;
    o.norm_blocks = blocks;
    o.nnorm_blocks = 2;
    o.record = tr;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yend, NULL),
                     NDE_OK);
    ck_assert_uint_gt(tr->nsteps, 5);
    ck_assert_uint_eq(tr->nstates, tr->nsteps);
    for (size_t j = 0; j < tr->nsteps; j++) {
        const double *y = tr->y + 6 * j;
        double e0, e1, all, want;
        nde_solver_invalidate(s);
        ck_assert_int_eq(nde_solver_step(s, th, tr->t[j], tr->h[j], y, yn,
                                         err), NDE_OK);
        e0 = block_rms(err, y, yn, 0, 2, rtol, atol);
        e1 = block_rms(err, y, yn, 2, 5, rtol, atol);
        all = block_rms(err, y, yn, 0, 6, rtol, atol);
        want = fmax(e0, e1);
        ck_assert_msg(fabs(tr->eest[j] - want) <= 1e-13 * want,
                      "step %zu: EEst %.17g, max of block RMS %.17g "
                      "(blocks %.3g, %.3g)", j, tr->eest[j], want, e0, e1);
        ck_assert_msg(fabs(all - want) > 1e-3 * want,
                      "step %zu: the RMS over all values %.17g equals the "
                      "block norm", j, all);
        dominated += e1 > 2.0 * e0;
    }
    fprintf(stderr, "norm blocks {2, 3}: %zu steps, block 2 dominates in "
            "%zu\n", tr->nsteps, dominated);
    ck_assert_uint_gt(2 * dominated, tr->nsteps);
    nde_trajectory_destroy(tr);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* nnorm_blocks = 0 and one block over the whole state: the same step
 * sequence, EEst and result bit for bit. */
START_TEST(test_norm_blocks_default)
{
    const double th[2] = {0.3, 2.0}, t1 = 3.0;
    const double y0[4] = {1.0, 0.0, 80.0, -30.0};
    const size_t whole[1] = {4};
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 2);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-7);
    nde_trajectory *t0 = nde_trajectory_create(NDE_NEEDS_ERROR_EST, 0);
    nde_trajectory *t1r = nde_trajectory_create(NDE_NEEDS_ERROR_EST, 0);
    nde_stats s0, s1;
    double ya[4], yb[4];
    ck_assert_int_eq(nde_solver_set_batch(s, 2), NDE_OK);
    o.record = t0;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, ya, &s0),
                     NDE_OK);
    o.norm_blocks = whole;
    o.nnorm_blocks = 1;
    o.record = t1r;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yb, &s1),
                     NDE_OK);
    ck_assert_int_eq(s0.nfe, s1.nfe);
    ck_assert_int_eq(s0.steps_rejected, s1.steps_rejected);
    ck_assert_uint_eq(t0->nsteps, t1r->nsteps);
    ck_assert(memcmp(t0->h, t1r->h, t0->nsteps * sizeof(double)) == 0);
    ck_assert(memcmp(t0->eest, t1r->eest, t0->nsteps * sizeof(double)) == 0);
    ck_assert(memcmp(ya, yb, sizeof ya) == 0);
    nde_trajectory_destroy(t0);
    nde_trajectory_destroy(t1r);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* Empty blocks, blocks past the state and a NULL list are refused. */
START_TEST(test_norm_blocks_invalid)
{
    const double th[2] = {0.3, 2.0}, t1 = 1.0, y0[4] = {1, 0, 2, 1};
    const size_t empty[2] = {2, 0}, past[2] = {2, 3}, over[1] = {5};
    const struct { const size_t *b; size_t nb; const char *msg; } bad[4] = {
        {empty, 2, "empty"}, {past, 2, "more than"}, {over, 1, "more than"},
        {NULL, 1, "NULL"}};
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 2);
    nde_solver *s = make_solver(st, f);
    double y[4], f0[4], h0;
    ck_assert_int_eq(nde_solver_set_batch(s, 2), NDE_OK);
    rot_eval(f, 0.0, y0, th, f0, 2);
    for (int i = 0; i < 4; i++) {
        nde_solve_opts o = opts_for(st, 1e-6);
        o.norm_blocks = bad[i].b;
        o.nnorm_blocks = bad[i].nb;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, NULL),
                         NDE_EINVAL);
        ck_assert_msg(strstr(nde_ctx_message(ctx), bad[i].msg),
                      "case %d: %s", i, nde_ctx_message(ctx));
        ck_assert_int_eq(nde_initial_step(s, &o, th, 0.0, y0, f0, t1, &h0),
                         NDE_EINVAL);
        /* Also with a fixed step given (no initial step). */
        o.dt = 0.1;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, NULL),
                         NDE_EINVAL);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

typedef struct jump_user {
    const double *tstops;
    int hits[4];
    size_t fail_at;         /* index whose call fails; > 3 = none */
    int bad_time;
} jump_user;

static int add_jump(void *user, size_t i, double t, double *y)
{
    jump_user *u = user;
    if (i > 3 || t != u->tstops[i])
        u->bad_time = 1;
    else
        u->hits[i]++;
    if (i == u->fail_at)
        return NDE_EFATAL;
    y[0] += 1.0;
    return 0;
}

/* at_tstop: y' = -y with y += 1 at t = 0.5, 1, 1 (twice) and t1 = 2; every
 * tstop is hit once at its exact time, the jumps land in the solution and
 * the step size carries on across them. */
START_TEST(test_at_tstop)
{
    const double th[2] = {1.0, 0.0}, y0[2] = {1.0, 0.0}, t1 = 2.0;
    const double ts[4] = {0.5, 1.0, 1.0, 2.0};
    const double e5 = exp(-0.5);
    const double exact = (((e5 + 1.0) * e5 + 2.0) * exp(-1.0)) + 1.0;
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-10);
    nde_trajectory *tr = nde_trajectory_create(NDE_NEEDS_STEPS, 0);
    jump_user u = {ts, {0}, 99, 0};
    nde_stats plain, jumps;
    double y[2];
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, &plain),
                     NDE_OK);
    o.tstops = ts;
    o.ntstops = 4;
    o.at_tstop = add_jump;
    o.at_tstop_user = &u;
    o.record = tr;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, &jumps),
                     NDE_OK);
    fprintf(stderr, "at_tstop: %ld steps without tstops, %ld with 3 jumps; "
            "error %.2e\n", plain.steps_accepted, jumps.steps_accepted,
            fabs(tr->y_final[0] - exact));
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(u.hits[i], 1);
    ck_assert(!u.bad_time);
    /* The save at t1 is the state reaching t1; the record's final state
     * includes the jump at t1. */
    ck_assert(tr->y_final[0] == y[0] + 1.0);
    ck_assert_msg(fabs(tr->y_final[0] - exact) < 1e-8, "%.17g vs %.17g",
                  tr->y_final[0], exact);
    /* No restart of the step-size control: solving piece by piece (each
     * piece starting with the automatic first step) takes more steps. */
    {
        const double ends[3] = {0.5, 1.0, 2.0}, add[3] = {1.0, 2.0, 0.0};
        nde_solve_opts op = opts_for(st, 1e-10);
        double ya[2] = {1.0, 0.0}, t = 0.0;
        long restart = 0;
        for (int p = 0; p < 3; p++) {
            nde_stats sp;
            ck_assert_int_eq(nde_solve(s, &op, th, t, ya, ends[p], 1,
                                       &ends[p], ya, &sp), NDE_OK);
            ya[0] += add[p];
            t = ends[p];
            restart += sp.steps_accepted;
        }
        fprintf(stderr, "at_tstop: %ld steps when restarting at each "
                "jump\n", restart);
        ck_assert_int_lt(jumps.steps_accepted, restart);
    }
    /* A failing callback stops the solve with its status. */
    memset(u.hits, 0, sizeof u.hits);
    u.fail_at = 1;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, &jumps),
                     NDE_EFATAL);
    ck_assert_int_eq(jumps.status, NDE_EFATAL);
    ck_assert(u.hits[0] == 1 && u.hits[1] == 1 && u.hits[2] == 0);
    nde_trajectory_destroy(tr);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

static nde_config *load(const char *text)
{
    nde_config *cfg = nde_config_create();
    ck_assert_ptr_nonnull(cfg);
    ck_assert_msg(nde_config_load_string(cfg, "test.ini", text, ctx) ==
                      NDE_OK, "%s", nde_ctx_message(ctx));
    return cfg;
}

START_TEST(test_solver_section)
{
    nde_config *cfg = load("[solver]\nplugin = dopri5\nrtol = 1e-4\n"
                           "beta1 = 0.1\nmax_steps = 77\n");
    nde_field *f = make_field(&lv_field, 2);
    nde_solver *s;
    nde_solve_opts o;
    ck_assert_int_eq(nde_solver_create(ctx, cfg, "solver", f, &s), NDE_OK);
    ck_assert_str_eq(s->type->info.name, "dopri5");
    ck_assert_int_eq(nde_solve_opts_from_section(&o, s->type,
                         nde_config_section(cfg, "solver"), ctx), NDE_OK);
    ck_assert(o.rtol == 1e-4 && o.atol == 1e-6 && o.ctrl.beta1 == 0.1 &&
              o.ctrl.beta2 == 2.0 / 25 && o.max_steps == 77);
    nde_solver_destroy(s);
    nde_config_destroy(cfg);

    cfg = load("[solver]\nplugin = tsit5\nrtoll = 1e-4\n");
    ck_assert_int_eq(nde_solver_create(ctx, cfg, "solver", f, &s),
                     NDE_ECONFIG);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "rtoll"));
    nde_config_destroy(cfg);

    cfg = load("[solver]\nplugin = rk4\n");
    ck_assert_int_eq(nde_solver_create(ctx, cfg, "solver", f, &s), NDE_OK);
    ck_assert_int_eq(nde_solve_opts_from_section(&o, s->type,
                         nde_config_section(cfg, "solver"), ctx), NDE_ECONFIG);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "dt"));
    nde_solver_destroy(s);
    nde_config_destroy(cfg);

    cfg = load("[solver]\nplugin = nosuchsolver\n");
    ck_assert_int_ne(nde_solver_create(ctx, cfg, "solver", f, &s), NDE_OK);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "nosuchsolver"));
    nde_config_destroy(cfg);
    nde_field_destroy(f);
}
END_TEST

static int problem_status(const char *text, size_t dim, const char *needle)
{
    nde_config *cfg = load(text);
    nde_problem p;
    int rc = nde_problem_from_section(&p, nde_config_section(cfg, "problem"),
                                      dim, ctx);
    if (rc != NDE_OK && needle)
        ck_assert_msg(strstr(nde_ctx_message(ctx), needle) != NULL,
                      "message '%s' lacks '%s'", nde_ctx_message(ctx), needle);
    nde_problem_free(&p);
    nde_config_destroy(cfg);
    return rc;
}

START_TEST(test_problem_section)
{
    nde_config *cfg = load("[problem]\nt1 = 2\ny0 = 1, 2\n   3, 4\n"
                           "   5, 6\nnsave = 5\ntstops = 0.5, 1.5\n");
    nde_problem p;
    ck_assert_int_eq(nde_problem_from_section(&p,
                         nde_config_section(cfg, "problem"), 2, ctx), NDE_OK);
    ck_assert(p.t0 == 0 && p.t1 == 2 && p.batch == 3 && p.dim == 2);
    ck_assert(p.y0[4] == 5 && p.y0[5] == 6);
    ck_assert_uint_eq(p.nsave, 5);
    ck_assert(p.tsave[0] == 0 && p.tsave[2] == 1 && p.tsave[4] == 2);
    ck_assert_uint_eq(p.ntstops, 2);
    nde_problem_free(&p);
    nde_config_destroy(cfg);

    cfg = load("[problem]\nt0 = 3\nt1 = 1\ny0 = 1\nsaveat = 3, 2, 1\n");
    ck_assert_int_eq(nde_problem_from_section(&p,
                         nde_config_section(cfg, "problem"), 1, ctx), NDE_OK);
    ck_assert_uint_eq(p.nsave, 3);
    nde_problem_free(&p);
    nde_config_destroy(cfg);

    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\n", 1, NULL),
                     NDE_OK);
    ck_assert_int_eq(problem_status("[problem]\ny0 = 1\n", 1, "t1"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\n", 1, "y0"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 0\ny0 = 1\n", 1, "t1"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1, 2, 3\n", 2,
                                    "y0"), NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1, 2\n  3\n", 2,
                                    "y0"), NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\n"
                                    "saveat = 0.5, 0.2\n", 1, "saveat"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\n"
                                    "saveat = 0.5, 1.2\n", 1, "saveat"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\n"
                                    "saveat = 0.5\nnsave = 3\n", 1, "nsave"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\nnsave = 0\n",
                                    1, "nsave"), NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\n"
                                    "tstops = 2\n", 1, "tstops"), NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\nfoo = 2\n",
                                    1, "foo"), NDE_ECONFIG);
}
END_TEST

Suite *solver_suite(void)
{
    Suite *su = suite_create("solvers");
    TCase *tc = tcase_create("conformance");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_found_all);
    tcase_add_test(tc, test_tableau_consistency);
    tcase_add_test(tc, test_tableau_refused);
    tcase_add_test(tc, test_convergence_order);
    tcase_add_test(tc, test_embedded_order);
    tcase_add_test(tc, test_tsit5_golden);
    tcase_add_test(tc, test_dense_and_estimate_order);
    tcase_add_test(tc, test_stiffness_linear);
    tcase_add_test(tc, test_step_vjp);
    tcase_add_test(tc, test_determinism);
    suite_add_tcase(su, tc);

    tc = tcase_create("solve");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_adaptive_lv);
    tcase_add_test(tc, test_save_times_dense);
    tcase_add_test(tc, test_tstops);
    tcase_add_test(tc, test_backwards);
    tcase_add_test(tc, test_fixed_step_counts);
    tcase_add_test(tc, test_fixed_step_grid);
    tcase_add_test(tc, test_max_steps);
    tcase_add_test(tc, test_nonfinite);
    tcase_add_test(tc, test_retry_region);
    tcase_add_test(tc, test_step_underflow);
    tcase_add_test(tc, test_record_contents);
    tcase_add_test(tc, test_record_thinning);
    tcase_add_test(tc, test_norm_blocks_prefix);
    tcase_add_test(tc, test_norm_blocks_value);
    tcase_add_test(tc, test_norm_blocks_default);
    tcase_add_test(tc, test_norm_blocks_invalid);
    tcase_add_test(tc, test_at_tstop);
    suite_add_tcase(su, tc);

    tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_solver_section);
    tcase_add_test(tc, test_problem_section);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(solver_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
