/*
 * ode_fields.h - test ODE fields with known solutions and the fixture shared
 * by the solver conformance suite (tests/solvers/test_solvers.c) and the
 * solve driver's tests (tests/core/test_solve.c): the list of tableau
 * solver plugins found, and helpers to make fields and solvers and to step
 * by hand. Header-only: everything is static and marked unused, so a file
 * includes it whole and uses what it needs. No dependency on field
 * plugins.
 */
#ifndef NDE_TESTS_ODE_FIELDS_H
#define NDE_TESTS_ODE_FIELDS_H

#include <check.h>
#include <math.h>
#include <string.h>

#include "nde/nde.h"

#define OF_UNUSED __attribute__((unused))

/* ------------------------------------------------------------------ */
/* Test fields                                                         */

static OF_UNUSED void tf_destroy(nde_field *f) { (void)f; }

static OF_UNUSED int tf_init(nde_field *f, double *theta, uint64_t seed)
{
    (void)seed;
    for (size_t i = 0; i < f->nparams; i++)
        theta[i] = 0.0;
    return NDE_OK;
}

static OF_UNUSED int tf_novjp(nde_field *f, double t, const double *y,
                    const double *theta, const double *v, double *vy,
                    double *vtheta, size_t batch)
{
    (void)t; (void)y; (void)theta; (void)v; (void)vy; (void)vtheta;
    (void)batch;
    return nde_error(f->ctx, NDE_EFATAL, "no vjp in this test field");
}

#define TEST_FIELD(var, nm, D, P, evalfn, vjpfn)                             \
    static OF_UNUSED int var##_create(nde_field *f, nde_section *sec, nde_ctx *ctx)    \
    {                                                                        \
        f->dim = (D);                                                        \
        f->nparams = (P);                                                    \
        (void)sec;                                                           \
        (void)ctx;                                                           \
        return NDE_OK;                                                       \
    }                                                                        \
    static OF_UNUSED const nde_field_type var = {                                      \
        .info = NDE_FIELD_INFO(                                              \
            .name = nm,                                                      \
            .description = "test field",                                     \
            .version = "1"),                                                 \
        .create = var##_create, .destroy = tf_destroy,                       \
        .init_params = tf_init, .eval = evalfn, .vjp = vjpfn}

/* y' = theta0 y cos t; with theta0 = 1, y = y0 exp(sin t - sin t0). */
static OF_UNUSED int cos_eval(nde_field *f, double t, const double *y,
                    const double *th, double *dy, size_t batch)
{
    const double ct = th[0] * cos(t);
    (void)f;
    for (size_t i = 0; i < batch; i++)
        dy[i] = ct * y[i];
    return NDE_OK;
}
static OF_UNUSED int cos_vjp(nde_field *f, double t, const double *y, const double *th,
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
static OF_UNUSED int rot_eval(nde_field *f, double t, const double *y, const double *th,
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
static OF_UNUSED int rot_vjp(nde_field *f, double t, const double *y, const double *th,
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

static OF_UNUSED void rot_exact(const double *th, double t, const double *y0,
                      double *y)
{
    const double e = exp(-th[0] * t), c = cos(th[1] * t), s = sin(th[1] * t);
    y[0] = e * (c * y0[0] + s * y0[1]);
    y[1] = e * (-s * y0[0] + c * y0[1]);
}

/* Nonlinear, time-dependent, 3 parameters (for the VJP checks):
 * y1' = th0 y2 - sin y1,  y2' = -th1 y1 y2 + th2 cos t. */
static OF_UNUSED int nl_eval(nde_field *f, double t, const double *y, const double *th,
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
static OF_UNUSED int nl_vjp(nde_field *f, double t, const double *y, const double *th,
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
static OF_UNUSED int lam_eval(nde_field *f, double t, const double *y, const double *th,
                    double *dy, size_t batch)
{
    (void)f; (void)t;
    for (size_t i = 0; i < batch; i++)
        dy[i] = th[0] * y[i];
    return NDE_OK;
}
TEST_FIELD(lam_field, "lambda", 1, 1, lam_eval, tf_novjp);

/* Lotka-Volterra x' = a x - b x y, y' = -c y + d x y. */
static OF_UNUSED int lv_eval(nde_field *f, double t, const double *y, const double *th,
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
static OF_UNUSED const double lv_theta[4] = {1.5, 1.0, 3.0, 1.0};

/* y' = |t - 1|: a kink at t = 1, exact y = y0 + t - t^2/2 (t <= 1),
 * 1/2 + (t-1)^2/2 after (y0 = 0). Counts evaluations exactly at t = 1. */
static OF_UNUSED long kink_evals_at_1;
static OF_UNUSED int kink_eval(nde_field *f, double t, const double *y,
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
static OF_UNUSED int nan_eval(nde_field *f, double t, const double *y, const double *th,
                    double *dy, size_t batch)
{
    (void)f; (void)th;
    for (size_t i = 0; i < batch; i++)
        dy[i] = t > 0.5 ? NAN : y[i];
    return NDE_OK;
}
TEST_FIELD(nan_field, "nanf", 1, 0, nan_eval, tf_novjp);

/* y' = y, NDE_ERETRY once t > 0.5. */
static OF_UNUSED int late_retry_eval(nde_field *f, double t, const double *y,
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
static OF_UNUSED long retry_calls;
static OF_UNUSED int pos_eval(nde_field *f, double t, const double *y, const double *th,
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
static OF_UNUSED int blow_eval(nde_field *f, double t, const double *y,
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

static OF_UNUSED int collect_solver(const nde_plugin_info *info, const char *path,
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

static OF_UNUSED nde_ctx *ctx;
static OF_UNUSED solver_list solvers;

static OF_UNUSED void setup(void)
{
    ctx = nde_ctx_create();
    ck_assert_ptr_nonnull(ctx);
    memset(&solvers, 0, sizeof solvers);
    ck_assert_int_eq(nde_plugin_foreach(ctx, collect_solver, NULL, &solvers),
                     0);
}

static OF_UNUSED void teardown(void) { nde_ctx_destroy(ctx); }

static OF_UNUSED const nde_solver_type *solver_named(const char *name)
{
    for (size_t i = 0; i < solvers.n; i++)
        if (strcmp(solvers.type[i]->info.name, name) == 0)
            return solvers.type[i];
    ck_abort_msg("solver plugin '%s' not found", name);
    return NULL;
}

static OF_UNUSED nde_field *make_field(const nde_field_type *ft, size_t batch_max)
{
    nde_field *f;
    int rc = nde_field_create_from(ctx, ft, NULL, batch_max, &f);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return f;
}

static OF_UNUSED nde_solver *make_solver(const nde_solver_type *st, nde_field *f)
{
    nde_solver *s;
    int rc = nde_solver_create_from(ctx, st, f, &s);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return s;
}

static OF_UNUSED double max_abs_diff(const double *a, const double *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* Least-squares slope of log(e) against log(h). */
static OF_UNUSED double ls_slope(const double *h, const double *e, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        const double x = log(h[i]), y = log(e[i]);
        sx += x; sy += y; sxx += x * x; sxy += x * y;
    }
    return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

/* N fixed steps from t0 to t1 through the engine (FSAL reuse included). */
static OF_UNUSED void fixed_steps(nde_solver *s, const double *theta, double t0,
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

#endif
