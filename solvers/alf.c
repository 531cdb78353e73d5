/*
 * alf - the asynchronous leapfrog integrator of MALI (Zhuang, Dvornek,
 * Tatikonda, Duncan, "MALI: A memory efficient and reverse accurate
 * integrator for neural ODEs", ICLR 2021, Algorithm 1; the public code:
 * TorchDiffEqPack odesolver/symplectic.py, sym12async_forward and
 * sym12async_inverse). The state y = z carries a velocity v ~ f(t, z) as
 * aux, v0 = f(t0, z0). A step of size h with damping eta:
 *     s  = z + h/2 v
 *     u  = f(t + h/2, s)                       (the step's one evaluation)
 *     v1 = v + 2 eta (u - v)
 *     z1 = s + h/2 v1
 * with the error estimate h/2 (u - v) for adaptive stepping (the code's:
 * sym12async_forward's error is vt1 dt/2 - v0 dt/2, vt1 = u; u - v =
 * O(h), so the estimate is that of a first-order pair). Its exact
 * inverse takes one evaluation too:
 *     s = z1 - h/2 v1,  u = f(t + h/2, s),
 *     v = (v1 - 2 eta u) / (1 - 2 eta),  z = s - h/2 v
 * singular at eta = 1/2 (refused); eta = 1 (the code's default) gives
 * v = 2 u - v1. Second order in z at eta = 1 only: any other damping
 * leaves a first-order error (`nde check solver alf -s solver.eta=0.9`
 * observes 0.98), and the declared order is the default's.
 *
 * A backward pass reverses a step and then takes its VJP at the state it
 * reconstructed: the VJP reuses the reverse's midpoint s and u = f(s)
 * instead of evaluating f again (the same step to round-off; a field that
 * keeps its last forward passes then skips the VJP's forward pass too).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "eest_vjp.h"

typedef struct alf_work {
    double eta;
    double *s, *u;          /* the step's midpoint and its derivative     */
    double *z1, *err;       /* a recomputed step's end and error estimate */
    double *sbar, *ubar, *z1bar;
    /* the last reverse, while s and u are its: what it returned, at which
     * step and parameters */
    double *rz, *rv;
    double rt, rh;
    const double *rtheta;
    int rvalid;
    double *block;
} alf_work;

static void alf_destroy(nde_solver *s)
{
    alf_work *w = s->work;

    if (w) {
        free(w->block);
        free(w);
        s->work = NULL;
    }
}

static int alf_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    alf_work *w = calloc(1, sizeof *w);
    int rc;

    if (!w)
        return NDE_ENOMEM;
    s->work = w;
    w->eta = 1.0;
    if (s->section &&
        (rc = nde_get_double_in(s->section, "eta", 0.0, 1, 1.0, 0, &w->eta,
                                s->ctx)) != NDE_OK)
        return rc;
    if (w->eta == 0.5)
        return nde_section_error(s->section, "eta", s->ctx,
                                 "0.5 makes the step's inverse singular "
                                 "(v = (v1 - 2 eta u) / (1 - 2 eta))");
    if (!(w->block = malloc(9 * n * sizeof(double))))
        return NDE_ENOMEM;
    w->s = w->block;
    w->u = w->s + n;
    w->z1 = w->u + n;
    w->err = w->z1 + n;
    w->sbar = w->err + n;
    w->ubar = w->sbar + n;
    w->z1bar = w->ubar + n;
    w->rz = w->z1bar + n;
    w->rv = w->rz + n;
    return NDE_OK;
}

static int alf_start(nde_solver *s, const double *theta, double t0,
                     const double *y0, double *aux0)
{
    s->counts.nfe++;
    return nde_field_eval(s->field, t0, y0, theta, aux0, s->batch);
}

/* u = f(t + h/2, s) of the step's midpoint s in w: its one evaluation,
 * forwards and in reverse. */
static int eval_mid(nde_solver *s, const double *theta, double t, double h)
{
    alf_work *w = s->work;

    s->counts.nfe++;
    return nde_field_eval(s->field, t + 0.5 * h, w->s, theta, w->u,
                          s->batch);
}

/* z1, v1 and the error estimate of the step from (z, v) whose midpoint
 * derivative u is in w->u (err, v1 may be NULL). */
static void leap_end(nde_solver *s, double h, const double *v, double *z1,
                     double *v1, double *err)
{
    alf_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double eta = w->eta;

    for (size_t i = 0; i < n; i++) {
        const double vn = v[i] + 2.0 * eta * (w->u[i] - v[i]);
        z1[i] = w->s[i] + 0.5 * h * vn;
        if (v1)
            v1[i] = vn;
        if (err)
            err[i] = 0.5 * h * (w->u[i] - v[i]);
    }
}

/* The step from (z, v): s, u into w, then leap_end. */
static int leap(nde_solver *s, const double *theta, double t, double h,
                const double *z, const double *v, double *z1, double *v1,
                double *err)
{
    alf_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    w->rvalid = 0;
    for (size_t i = 0; i < n; i++)
        w->s[i] = z[i] + 0.5 * h * v[i];
    if ((rc = eval_mid(s, theta, t, h)))
        return rc;
    leap_end(s, h, v, z1, v1, err);
    return NDE_OK;
}

static int alf_step(nde_solver *s, const double *theta, double t, double h,
                    const double *dw, const double *y, const double *aux,
                    double *y_next, double *aux_next, double *err,
                    const nde_norm_spec *norm, double *eest)
{
    int rc;

    (void)dw;
    if ((rc = leap(s, theta, t, h, y, aux, y_next, aux_next, err)))
        return rc;
    if (err && eest)
        *eest = nde_error_norm_spec(norm, err, y, y_next,
                                    s->batch * s->field->dim);
    return NDE_OK;
}

static int alf_reverse(nde_solver *s, const double *theta, double t, double h,
                       const double *dw, const double *y_next,
                       const double *aux_next, double *y, double *aux)
{
    alf_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double eta = w->eta;
    int rc;

    (void)dw;
    w->rvalid = 0;
    for (size_t i = 0; i < n; i++)
        w->s[i] = y_next[i] - 0.5 * h * aux_next[i];
    if ((rc = eval_mid(s, theta, t, h)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        aux[i] = (aux_next[i] - 2.0 * eta * w->u[i]) / (1.0 - 2.0 * eta);
        y[i] = w->s[i] - 0.5 * h * aux[i];
    }
    memcpy(w->rz, y, n * sizeof *y);
    memcpy(w->rv, aux, n * sizeof *aux);
    w->rt = t;
    w->rh = h;
    w->rtheta = theta;
    w->rvalid = 1;
    return NDE_OK;
}

/* Whether s and u are those of the last reverse, which returned (y, aux)
 * for the step (t, h) at theta. */
static int reversed_here(const alf_work *w, const double *theta, double t,
                         double h, const double *y, const double *aux,
                         size_t n)
{
    return w->rvalid && w->rt == t && w->rh == h && w->rtheta == theta &&
           memcmp(w->rz, y, n * sizeof *y) == 0 &&
           memcmp(w->rv, aux, n * sizeof *aux) == 0;
}

/*
 * Reverse mode through alf_step, cotangents zb1 on z1, vb1 on v1 and ebar
 * on the error norm (eest_vjp: eb on err, the scale's part into zb1 and
 * zbar):
 *   V1 = vb1 + h/2 zb1                         (total on v1)
 *   ub = 2 eta V1 + h/2 eb                      (on u)
 *   sb = zb1 + ub df/ds (s)                     (the step's one VJP)
 *   zbar += sb,  vbar += (1 - 2 eta) V1 - h/2 eb + h/2 sb.
 */
static int alf_step_vjp(nde_solver *s, const double *theta, double t,
                        double h, const double *dw, const double *y,
                        const double *aux, const nde_step_cotangent *ct,
                        double *ybar, double *auxbar, double *thetabar)
{
    alf_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double eta = w->eta;
    int rc;

    (void)dw;
    if (ct->stiffness != 0.0 || ct->ndense > 0)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver 'alf': the step VJP takes cotangents on "
                         "y_next, aux_next and the error estimate only");
    if (reversed_here(w, theta, t, h, y, aux, n))
        leap_end(s, h, aux, w->z1, NULL, w->err);
    else if ((rc = leap(s, theta, t, h, y, aux, w->z1, NULL, w->err)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        w->z1bar[i] = ct->y_next ? ct->y_next[i] : 0.0;
        w->ubar[i] = 0.0;
    }
    if (ct->eest != 0.0)
        eest_vjp(n, ct->eest, ct->rtol, ct->atol, w->err, y, w->z1, w->ubar,
                 ybar, w->z1bar);
    for (size_t i = 0; i < n; i++) {
        const double vb1 = ct->aux_next ? ct->aux_next[i] : 0.0;
        const double V1 = vb1 + 0.5 * h * w->z1bar[i], eb = w->ubar[i];
        w->ubar[i] = 2.0 * eta * V1 + 0.5 * h * eb;
        w->sbar[i] = w->z1bar[i];
        if (auxbar)
            auxbar[i] += (1.0 - 2.0 * eta) * V1 - 0.5 * h * eb;
    }
    s->counts.nvjp++;
    if ((rc = nde_field_vjp(s->field, t + 0.5 * h, w->s, theta, w->ubar,
                            w->sbar, thetabar, s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (ybar)
            ybar[i] += w->sbar[i];
        if (auxbar)
            auxbar[i] += 0.5 * h * w->sbar[i];
    }
    return NDE_OK;
}

/* v0 = f(t0, z0): zbar0 += vbar0 df/dz (z0). */
static int alf_start_vjp(nde_solver *s, const double *theta, double t0,
                         const double *y0, const double *auxbar0,
                         double *ybar0, double *thetabar)
{
    if (!auxbar0)
        return NDE_OK;
    s->counts.nvjp++;
    return nde_field_vjp(s->field, t0, y0, theta, auxbar0, ybar0, thetabar,
                         s->batch);
}

static const nde_key alf_keys[] = {
    {"eta", NDE_KEY_DOUBLE, "1",
     "damping in (0, 1], not 0.5 (the inverse is singular there): v1 = v + "
     "2 eta (u - v); 1 is the leapfrog of the MALI paper's code and the "
     "only second-order choice (others are first order)"},
    {NULL, 0, NULL, NULL}};

static const nde_solver_type alf = {
    .info = NDE_SOLVER_INFO(
        .name = "alf",
        .description = "asynchronous leapfrog (MALI): state and velocity, "
                       "one evaluation a step, exact algebraic reverse, "
                       "adaptive with the error estimate h/2 (u - v)",
        .keys = alf_keys,
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_REVERSIBLE | NDE_CAP_STEP_VJP,
        .version = "1"),
    .order = 2,
    .error_order = 1,
    .ops = {.aux = 1,
            .create = alf_create,
            .destroy = alf_destroy,
            .start = alf_start,
            .step = alf_step,
            .step_vjp = alf_step_vjp,
            .start_vjp = alf_start_vjp,
            .reverse = alf_reverse},
};

NDE_MODULE(&alf.info);
