/*
 * Lamba's adaptive Euler-Heun for Stratonovich SDEs with diagonal noise:
 * the stochastic Heun step of heun.c with an error estimate after Lamba
 * (2003, "An adaptive timestepping algorithm for stochastic differential
 * equations", J. Comput. Appl. Math. 161(2)), in the form of
 * StochasticDiffEq.jl's LambaEulerHeun (src/perform_step/lamba.jl,
 * perform_step! for LambaEulerHeunConstantCache, delta = 1), which the
 * local-regularization authors' code steps with. A step from (t, y) of
 * size h > 0 with increment dW:
 *     y~ = y + f(t, y) h + g(t, y) dW
 *     y_next = y + (f(t, y) + f(t + h, y~)) h / 2
 *                + (g(t, y) + g(t + h, y~)) dW / 2
 * and, elementwise, the drift and noise parts of the local error:
 *     Ed = (f(t + h, y + f(t, y) h) - f(t, y)) h / 2
 *     En = (g(t, y + g(t, y) sqrt(h)) - g(t, y)) / (2 sqrt(h)) dW^2
 *     err = Ed + En
 * En is g g' dW^2 / 2 with g' by a forward difference of step g sqrt(h).
 * Two field evaluations a step, two more (a drift and a diffusion, each
 * counted as one) for the estimate. The step VJP is Heun's: the error
 * estimate takes no cotangent.
 */
#include <math.h>
#include <stdlib.h>

#include "nde/nde.h"

typedef struct lamba_work {
    double *f0, *g0;        /* drift and diffusion at (t, y)              */
    double *yt, *f1, *g1;   /* predictor and the field there; reused for
                               the estimate's points                      */
    double *ytbar;          /* cotangent on the predictor in the VJP       */
    double *f0bar, *g0bar;  /* cotangents on f(t, y), g(t, y) in the VJP   */
    double *block;
} lamba_work;

static void lamba_destroy(nde_solver *s)
{
    lamba_work *w = s->work;

    if (w) {
        free(w->block);
        free(w);
        s->work = NULL;
    }
}

static int lamba_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    lamba_work *w = calloc(1, sizeof *w);

    if (!w)
        return NDE_ENOMEM;
    s->work = w;
    if (!(w->block = malloc(8 * n * sizeof(double))))
        return NDE_ENOMEM;
    w->f0 = w->block;
    w->g0 = w->f0 + n;
    w->yt = w->g0 + n;
    w->f1 = w->yt + n;
    w->g1 = w->f1 + n;
    w->ytbar = w->g1 + n;
    w->f0bar = w->ytbar + n;
    w->g0bar = w->f0bar + n;
    return NDE_OK;
}

/* f0, g0 at (t, y) and the predictor yt; one evaluation. */
static int predict(nde_solver *s, const double *theta, double t, double h,
                   const double *dw, const double *y)
{
    lamba_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    s->counts.nfe++;
    if ((rc = nde_field_eval(s->field, t, y, theta, w->f0, s->batch)) ||
        (rc = nde_field_diffusion(s->field, t, y, theta, w->g0, s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++)
        w->yt[i] = y[i] + w->f0[i] * h + w->g0[i] * dw[i];
    return NDE_OK;
}

/* err = Ed + En (top comment), after the step: overwrites yt, f1, g1. */
static int estimate(nde_solver *s, const double *theta, double t, double h,
                    const double *dw, const double *y, double *err)
{
    lamba_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double sqh = sqrt(h);
    int rc;

    for (size_t i = 0; i < n; i++)
        w->yt[i] = y[i] + w->f0[i] * h;
    s->counts.nfe++;
    if ((rc = nde_field_eval(s->field, t + h, w->yt, theta, w->f1,
                             s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++)
        w->yt[i] = y[i] + w->g0[i] * sqh;
    s->counts.nfe++;
    if ((rc = nde_field_diffusion(s->field, t, w->yt, theta, w->g1,
                                  s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++)
        err[i] = 0.5 * h * (w->f1[i] - w->f0[i]) +
                 (w->g1[i] - w->g0[i]) / (2.0 * sqh) * dw[i] * dw[i];
    return NDE_OK;
}

static int lamba_step(nde_solver *s, const double *theta, double t, double h,
                      const double *dw, const double *y, const double *aux,
                      double *y_next, double *aux_next, double *err,
                      const nde_norm_spec *norm, double *eest)
{
    lamba_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    (void)aux; (void)aux_next;
    if ((rc = predict(s, theta, t, h, dw, y)))
        return rc;
    s->counts.nfe++;
    if ((rc = nde_field_eval(s->field, t + h, w->yt, theta, w->f1,
                             s->batch)) ||
        (rc = nde_field_diffusion(s->field, t + h, w->yt, theta, w->g1,
                                  s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++)
        y_next[i] = y[i] + 0.5 * (w->f0[i] + w->f1[i]) * h +
                    0.5 * (w->g0[i] + w->g1[i]) * dw[i];
    if (!err)
        return NDE_OK;
    if ((rc = estimate(s, theta, t, h, dw, y, err)))
        return rc;
    if (eest)
        *eest = nde_error_norm_spec(norm, err, y, y_next, n);
    return NDE_OK;
}

/*
 * Reverse mode through the step with cotangent yb on y_next (as heun.c):
 *   Yt = (h/2 yb) df/dy (y~) + (dW/2 yb) dg/dy (y~)     (cotangent on y~)
 *   F0 = h/2 yb + h Yt,  G0 = dW/2 yb + dW Yt            (on f(y), g(y))
 *   ybar += yb + Yt + F0 df/dy (y) + G0 dg/dy (y)
 */
static int lamba_step_vjp(nde_solver *s, const double *theta, double t,
                          double h, const double *dw, const double *y,
                          const double *aux, const nde_step_cotangent *ct,
                          double *ybar, double *auxbar, double *thetabar)
{
    lamba_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double *yb = ct->y_next;
    int rc;

    (void)aux; (void)auxbar;
    if (ct->eest != 0.0 || ct->stiffness != 0.0 || ct->ndense > 0)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver 'lamba_heun': the step VJP takes a "
                         "cotangent on y_next only");
    if (!yb)
        return NDE_OK;
    if ((rc = predict(s, theta, t, h, dw, y)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        w->f0bar[i] = 0.5 * h * yb[i];
        w->g0bar[i] = 0.5 * dw[i] * yb[i];
        w->ytbar[i] = 0.0;
    }
    s->counts.nvjp++;
    if ((rc = nde_field_vjp(s->field, t + h, w->yt, theta, w->f0bar,
                            w->ytbar, thetabar, s->batch)) ||
        (rc = nde_field_diffusion_vjp(s->field, t + h, w->yt, theta,
                                      w->g0bar, w->ytbar, thetabar,
                                      s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        w->f0bar[i] += h * w->ytbar[i];
        w->g0bar[i] += dw[i] * w->ytbar[i];
        if (ybar)
            ybar[i] += yb[i] + w->ytbar[i];
    }
    s->counts.nvjp++;
    if ((rc = nde_field_vjp(s->field, t, y, theta, w->f0bar, ybar, thetabar,
                            s->batch)) ||
        (rc = nde_field_diffusion_vjp(s->field, t, y, theta, w->g0bar, ybar,
                                      thetabar, s->batch)))
        return rc;
    return NDE_OK;
}

static const nde_solver_type lamba_heun = {
    .info = NDE_SOLVER_INFO(
        .name = "lamba_heun",
        .description = "Lamba's adaptive Euler-Heun for Stratonovich SDEs "
                       "with diagonal noise (StochasticDiffEq.jl's "
                       "LambaEulerHeun): stochastic Heun with a drift and "
                       "noise error estimate, four evaluations a step; "
                       "strong order 1 for commutative or additive noise",
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_SDE_STRATONOVICH |
                    NDE_CAP_STEP_VJP,
        .version = "1"),
    /* strong order x 2 (solver.h): 1 for commutative or additive noise
     * (0.5 for general noise) */
    .order = 2, .error_order = 1, .dense_order = 0,
    .ops = {.create = lamba_create, .destroy = lamba_destroy,
            .step = lamba_step, .step_vjp = lamba_step_vjp}};

NDE_MODULE(&lamba_heun.info);
