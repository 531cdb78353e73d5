/*
 * SRA1, Roessler's stochastic Runge-Kutta method of class SRA for SDEs with
 * additive noise (Roessler 2010, "Runge-Kutta methods for the strong
 * approximation of solutions of stochastic differential equations", SIAM
 * J. Numer. Anal. 48(3), 922-952), with the error estimate of Rackauckas
 * and Nie 2017 (Discrete Contin. Dyn. Syst. B 22(7)), as StochasticDiffEq.jl
 * steps it
 * (src/perform_step/sra.jl, perform_step! for SRA1ConstantCache; tableau
 * constructSRA1 in src/tableaus.jl; delta_default = 1). A step of size
 * h > 0 from (t, y), elementwise, with chi2 = I_(1,0)/h:
 *     k1 = h f(t, y)
 *     k2 = h f(t + 3h/4, y + 3 k1 / 4 + 3 chi2 g(t + h, y) / 2)
 *     E2 = chi2 (g(t, y) - g(t + h, y))
 *     y_next = y + k1 / 3 + 2 k2 / 3 + E2 + dW g(t + h, y)
 *     err = k1 + k2 + E2
 *
 * Additive noise means g depends on t (and theta) only: g is evaluated at
 * y and nothing else. The solver declares NDE_NEEDS_ADDITIVE_NOISE, but
 * nde's fields do not declare their noise's form, so it cannot be checked;
 * with a g that depends on y this is Euler-Maruyama's strong order 0.5.
 * Ito and Stratonovich agree for additive noise; the solver declares Ito.
 *
 * chi2 = I_(1,0)/h = dW / 2 + H with H the step's space-time Levy area,
 * as in sri.c (see there; the solver declares NDE_NEEDS_LEVY_AREA, so dw
 * holds dW, then H): strong order 1.5 for additive noise. Rejection
 * re-queries and adjoint replays see the same path exactly.
 *
 * Three evaluations a step (f and g at (t, y) count one, g at (t + h, y)
 * and f at the stage one each), three VJPs in the step VJP (which
 * recomputes two evaluations, three with a cotangent on the estimate).
 */
#include <stdlib.h>

#include "eest_vjp.h"
#include "nde/nde.h"

typedef struct sra_work {
    double *k1, *k2;        /* f at (t, y) and at the stage, times h     */
    double *g0, *g1;        /* g at (t, y) and (t + h, y)                 */
    double *ys;             /* the stage point                           */
    double *sb, *k1b, *g1b; /* cotangents on the stage, f(t, y), g1      */
    double *yn, *err;       /* the step's outputs, recomputed in the VJP */
    double *yb, *eb;        /* cotangents on y_next (with the norm's), err */
    double *block;
} sra_work;

static void sra_destroy(nde_solver *s)
{
    sra_work *w = s->work;

    if (w) {
        free(w->block);
        free(w);
        s->work = NULL;
    }
}

static int sra_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    sra_work *w = calloc(1, sizeof *w);

    if (!w)
        return NDE_ENOMEM;
    s->work = w;
    if (!(w->block = malloc(12 * n * sizeof(double))))
        return NDE_ENOMEM;
    w->k1 = w->block;
    w->k2 = w->k1 + n;
    w->g0 = w->k2 + n;
    w->g1 = w->g0 + n;
    w->ys = w->g1 + n;
    w->sb = w->ys + n;
    w->k1b = w->sb + n;
    w->g1b = w->k1b + n;
    w->yn = w->g1b + n;
    w->err = w->yn + n;
    w->yb = w->err + n;
    w->eb = w->yb + n;
    return NDE_OK;
}

/* chi2 = I_(1,0)/h = dW / 2 + H of value m (top comment; dw holds n
 * increments, then n areas). */
static double chi2_of(const double *dw, size_t n, size_t m)
{
    return 0.5 * dw[m] + dw[n + m];
}

/* k1 (not yet times h), g0, g1 and the stage point ys; two evaluations. */
static int stage(nde_solver *s, const double *theta, double t, double h,
                 const double *dw, const double *y)
{
    sra_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    s->counts.nfe += 2;
    if ((rc = nde_field_eval(s->field, t, y, theta, w->k1, s->batch)) ||
        (rc = nde_field_diffusion(s->field, t, y, theta, w->g0, s->batch)) ||
        (rc = nde_field_diffusion(s->field, t + h, y, theta, w->g1,
                                  s->batch)))
        return rc;
    for (size_t m = 0; m < n; m++)
        w->ys[m] = y[m] + 0.75 * h * w->k1[m] +
                   1.5 * chi2_of(dw, n, m) * w->g1[m];
    return NDE_OK;
}

/* y_next and (err not NULL) err from k1, g0, g1 and k2 (f at ys). */
static void combine(const nde_solver *s, double h, const double *dw,
                    const double *y, double *y_next, double *err)
{
    const sra_work *w = s->work;
    const size_t n = s->batch * s->field->dim;

    for (size_t m = 0; m < n; m++) {
        const double k1 = h * w->k1[m], k2 = h * w->k2[m];
        const double e2 = chi2_of(dw, n, m) * (w->g0[m] - w->g1[m]);
        y_next[m] = y[m] + k1 / 3.0 + 2.0 * k2 / 3.0 + e2 + dw[m] * w->g1[m];
        if (err)
            err[m] = k1 + k2 + e2;
    }
}

static int sra_step(nde_solver *s, const double *theta, double t, double h,
                    const double *dw, const double *y, const double *aux,
                    double *y_next, double *aux_next, double *err,
                    const nde_norm_spec *norm, double *eest)
{
    sra_work *w = s->work;
    int rc;

    (void)aux; (void)aux_next;
    if ((rc = stage(s, theta, t, h, dw, y)))
        return rc;
    s->counts.nfe++;
    if ((rc = nde_field_eval(s->field, t + 0.75 * h, w->ys, theta, w->k2,
                             s->batch)))
        return rc;
    combine(s, h, dw, y, y_next, err);
    if (err && eest)
        *eest = nde_error_norm_spec(norm, err, y, y_next,
                                    s->batch * s->field->dim);
    return NDE_OK;
}

/*
 * With cotangents yb on y_next and ebar on EEst (eest_vjp: eb on err, the
 * scale's part added to yb and ybar): the stage's cotangent sb = VJP of f
 * at ys with h (2 yb / 3 + eb); then f(t, y) gets h (yb / 3 + eb + 3 sb /
 * 4), g(t, y) chi2 (yb + eb), g(t + h, y) (dW - chi2) yb - chi2 eb +
 * 3 chi2 sb / 2, and ybar += yb + sb + their VJPs.
 */
static int sra_step_vjp(nde_solver *s, const double *theta, double t,
                        double h, const double *dw, const double *y,
                        const double *aux, const nde_step_cotangent *ct,
                        double *ybar, double *auxbar, double *thetabar)
{
    sra_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    (void)aux; (void)auxbar;
    if (ct->stiffness != 0.0 || ct->ndense > 0)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver 'sra1': the step VJP takes cotangents on "
                         "y_next and the error estimate only");
    if (!ct->y_next && ct->eest == 0.0)
        return NDE_OK;
    if ((rc = stage(s, theta, t, h, dw, y)))
        return rc;
    for (size_t m = 0; m < n; m++) {
        w->yb[m] = ct->y_next ? ct->y_next[m] : 0.0;
        w->eb[m] = 0.0;
    }
    if (ct->eest != 0.0) {
        s->counts.nfe++;
        if ((rc = nde_field_eval(s->field, t + 0.75 * h, w->ys, theta, w->k2,
                                 s->batch)))
            return rc;
        combine(s, h, dw, y, w->yn, w->err);
        eest_vjp(n, ct->eest, ct->rtol, ct->atol, w->err, y, w->yn, w->eb,
                 ybar, w->yb);
    }
    for (size_t m = 0; m < n; m++) {
        w->k2[m] = h * (2.0 * w->yb[m] / 3.0 + w->eb[m]); /* on f(ys) */
        w->sb[m] = 0.0;
    }
    s->counts.nvjp++;
    if ((rc = nde_field_vjp(s->field, t + 0.75 * h, w->ys, theta, w->k2,
                            w->sb, thetabar, s->batch)))
        return rc;
    for (size_t m = 0; m < n; m++) {
        const double c2 = chi2_of(dw, n, m), yb = w->yb[m], eb = w->eb[m];
        w->k1b[m] = h * (yb / 3.0 + eb + 0.75 * w->sb[m]);
        w->g0[m] = c2 * (yb + eb);          /* cotangent on g(t, y) */
        w->g1b[m] = (dw[m] - c2) * yb - c2 * eb + 1.5 * c2 * w->sb[m];
        if (ybar)
            ybar[m] += yb + w->sb[m];
    }
    s->counts.nvjp += 2;
    if ((rc = nde_field_vjp(s->field, t, y, theta, w->k1b, ybar, thetabar,
                            s->batch)) ||
        (rc = nde_field_diffusion_vjp(s->field, t, y, theta, w->g0, ybar,
                                      thetabar, s->batch)) ||
        (rc = nde_field_diffusion_vjp(s->field, t + h, y, theta, w->g1b,
                                      ybar, thetabar, s->batch)))
        return rc;
    return NDE_OK;
}

static const nde_solver_type sra1 = {
    .info = NDE_SOLVER_INFO(
        .name = "sra1",
        .description = "SRA1, Roessler's adaptive SRA for SDEs with "
                       "additive noise (g independent of y; not checked): "
                       "three evaluations a step; strong order 1.5 (it "
                       "takes the step's space-time Levy area)",
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_SDE_ITO | NDE_CAP_STEP_VJP,
        .needs = NDE_NEEDS_ADDITIVE_NOISE | NDE_NEEDS_LEVY_AREA,
        .version = "2"),
    /* strong order x 2 (solver.h), as sri.c */
    .order = 3, .error_order = 1, .dense_order = 0,
    .ops = {.create = sra_create, .destroy = sra_destroy, .step = sra_step,
            .step_vjp = sra_step_vjp}};

NDE_MODULE(&sra1.info);
