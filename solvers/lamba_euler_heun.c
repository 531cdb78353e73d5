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
 * counted as one) for the estimate.
 *
 * The step VJP takes cotangents on y_next and on EEst, the scaled RMS norm
 * of err with scale atol + rtol max(|y|, |y_next|) (nde_step_cotangent;
 * through err and through the scale, as core's RK engine). With
 * ya = y + f(t, y) h and yb = y + g(t, y) sqrt(h), and E = d(ebar EEst) /
 * d err:
 *     on f(t + h, ya): E h / 2      -> ya, theta; ya -> y, f(t, y) (x h)
 *     on g(t, yb):     E dW^2 / (2 sqrt(h)) -> yb, theta; yb -> y,
 *                                              g(t, y) (x sqrt(h))
 *     on f(t, y): -E h / 2,  on g(t, y): -E dW^2 / (2 sqrt(h)),
 * which join Heun's own cotangents on f(t, y), g(t, y) (sheun_vjp_with).
 * With an EEst cotangent it recomputes the step and the estimate (four
 * evaluations, one more to rebuild the predictor) and takes four VJPs (at
 * ya, yb, y~ and y); without one, Heun's one evaluation and two VJPs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* The VJP's own blocks after Heun's (sheun_work.extra). */
enum { X_YNEXT, X_ERR, X_YNBAR, X_FB, X_GB, X_BLOCKS };

static int lamba_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    int rc = sheun_create(s);
    sheun_work *w = s->work;

    if (rc)
        return rc;
    if (!(w->extra = malloc(X_BLOCKS * n * sizeof(double))))
        return NDE_ENOMEM;
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

/* The cotangent ebar on EEst into E = d(ebar EEst)/d err (in place over
 * err, n values), the scale's part added to ybar (when not NULL) and to
 * ynbar. Nothing when EEst = 0 (its gradient is undefined there; the RK
 * engine does the same). */
static void eest_vjp(double ebar, double rtol, double atol, const double *y,
                     const double *y_next, double *err, size_t n,
                     double *ybar, double *ynbar)
{
    double sum = 0.0, eest, cst;

    for (size_t i = 0; i < n; i++) {
        const double a = fabs(y[i]), b = fabs(y_next[i]);
        const double r = err[i] / (atol + rtol * (a > b ? a : b));
        sum += r * r;
    }
    eest = sqrt(sum / (double)n);
    cst = eest > 0.0 ? ebar / ((double)n * eest) : 0.0;
    for (size_t i = 0; i < n; i++) {
        const double a = fabs(y[i]), b = fabs(y_next[i]);
        const double sc = atol + rtol * (a > b ? a : b);
        const double r = err[i] / sc, scbar = -cst * r * r / sc;
        err[i] = cst * r / sc;
        if (a >= b) {
            if (ybar)
                ybar[i] += scbar * rtol *
                           (y[i] > 0 ? 1.0 : y[i] < 0 ? -1.0 : 0.0);
        } else {
            ynbar[i] += scbar * rtol * (y_next[i] > 0 ? 1.0 : -1.0);
        }
    }
}

static int lamba_step_vjp(nde_solver *s, const double *theta, double t,
                          double h, const double *dw, const double *y,
                          const double *aux, const nde_step_cotangent *ct,
                          double *ybar, double *auxbar, double *thetabar)
{
    sheun_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    double *yn = w->extra + X_YNEXT * n, *e = w->extra + X_ERR * n;
    double *ynbar = w->extra + X_YNBAR * n;
    double *fb = w->extra + X_FB * n, *gb = w->extra + X_GB * n;
    const double sqh = sqrt(h);
    int rc;

    (void)aux; (void)auxbar;
    if (ct->stiffness != 0.0 || ct->ndense > 0)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver 'lamba_heun': the step VJP takes "
                         "cotangents on y_next and the error estimate only "
                         "(no stiffness estimate, no dense output)");
    if (ct->eest == 0.0)
        return sheun_vjp(s, theta, t, h, dw, y, ct->y_next, ybar, thetabar);

    /* Forward again: y_next, then err (f0, g0 stay; yt, f1, g1 are
     * scratch from here on). */
    if ((rc = sheun_advance(s, theta, t, h, dw, y, yn)) ||
        (rc = estimate(s, theta, t, h, dw, y, e)))
        return rc;
    if (ct->y_next)
        memcpy(ynbar, ct->y_next, n * sizeof(double));
    else
        memset(ynbar, 0, n * sizeof(double));
    eest_vjp(ct->eest, ct->rtol, ct->atol, y, yn, e, n, ybar, ynbar);

    /* Drift part: Ed = (f(t + h, ya) - f(t, y)) h / 2. */
    for (size_t i = 0; i < n; i++) {
        w->yt[i] = y[i] + w->f0[i] * h;
        fb[i] = 0.5 * h * e[i];
        w->g1[i] = 0.0;
    }
    s->counts.nvjp++;
    if ((rc = nde_field_vjp(s->field, t + h, w->yt, theta, fb, w->g1,
                            thetabar, s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (ybar)
            ybar[i] += w->g1[i];
        fb[i] = h * w->g1[i] - 0.5 * h * e[i];
    }
    /* Noise part: En = (g(t, yb) - g(t, y)) dW^2 / (2 sqrt(h)). */
    for (size_t i = 0; i < n; i++) {
        w->yt[i] = y[i] + w->g0[i] * sqh;
        gb[i] = e[i] * dw[i] * dw[i] / (2.0 * sqh);
        w->g1[i] = 0.0;
    }
    s->counts.nvjp++;
    if ((rc = nde_field_diffusion_vjp(s->field, t, w->yt, theta, gb, w->g1,
                                      thetabar, s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (ybar)
            ybar[i] += w->g1[i];
        gb[i] = sqh * w->g1[i] - e[i] * dw[i] * dw[i] / (2.0 * sqh);
    }
    return sheun_vjp_with(s, theta, t, h, dw, y, ynbar, fb, gb, ybar,
                          thetabar);
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
    .ops = {.create = lamba_create, .destroy = sheun_destroy,
            .step = lamba_step, .step_vjp = lamba_step_vjp}};

NDE_MODULE(&lamba_heun.info);
