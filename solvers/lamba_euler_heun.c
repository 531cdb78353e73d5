/*
 * Lamba's adaptive Euler-Heun for Stratonovich SDEs with diagonal noise:
 * the stochastic Heun step (sheun.h) with an error estimate after Lamba
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

#include "sheun.h"

/* err = Ed + En (top comment), after the step: overwrites yt, f1, g1. */
static int estimate(nde_solver *s, const double *theta, double t, double h,
                    const double *dw, const double *y, double *err)
{
    sheun_work *w = s->work;
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
    const size_t n = s->batch * s->field->dim;
    int rc;

    (void)aux; (void)aux_next;
    if ((rc = sheun_advance(s, theta, t, h, dw, y, y_next)))
        return rc;
    if (!err)
        return NDE_OK;
    if ((rc = estimate(s, theta, t, h, dw, y, err)))
        return rc;
    if (eest)
        *eest = nde_error_norm_spec(norm, err, y, y_next, n);
    return NDE_OK;
}

/* Heun's step VJP (sheun.h): the error estimate takes no cotangent. */
static int lamba_step_vjp(nde_solver *s, const double *theta, double t,
                          double h, const double *dw, const double *y,
                          const double *aux, const nde_step_cotangent *ct,
                          double *ybar, double *auxbar, double *thetabar)
{
    (void)aux; (void)auxbar;
    if (ct->eest != 0.0 || ct->stiffness != 0.0 || ct->ndense > 0)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver 'lamba_heun': the step VJP takes a "
                         "cotangent on y_next only");
    return sheun_vjp(s, theta, t, h, dw, y, ct->y_next, ybar, thetabar);
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
    .ops = {.create = sheun_create, .destroy = sheun_destroy,
            .step = lamba_step, .step_vjp = lamba_step_vjp}};

NDE_MODULE(&lamba_heun.info);
