/*
 * Stochastic Heun (the trapezoidal predictor-corrector) for Stratonovich
 * SDEs with diagonal noise (Ruemelin 1982, SIAM J. Numer. Anal. 19(3); the
 * Heun scheme reversible Heun is measured against in Kidger, Foster, Li,
 * Lyons 2021, arXiv 2105.13493, Sec. 3):
 *     y~ = y + f(t, y) h + g(t, y) dW                       (predictor)
 *     y_next = y + (f(t, y) + f(t + h, y~)) h / 2
 *                + (g(t, y) + g(t + h, y~)) dW / 2          (corrector)
 * Strong order 0.5 for general noise, 1 for commutative (e.g. scalar) and
 * additive noise. No state besides y (aux = 0): two drift and diffusion
 * evaluations a step, where reversible Heun needs one. It is here as the
 * reference its cost is measured against (bench/sde.c).
 */
#include <stdlib.h>

#include "nde/nde.h"

typedef struct heun_work {
    double *f0, *g0;        /* drift and diffusion at (t, y)              */
    double *yt, *f1, *g1;   /* predictor and the field there               */
    double *ytbar;          /* cotangent on the predictor in the VJP       */
    double *f0bar, *g0bar;  /* cotangents on f(t, y), g(t, y) in the VJP   */
    double *block;
} heun_work;

static void heun_destroy(nde_solver *s)
{
    heun_work *w = s->work;

    if (w) {
        free(w->block);
        free(w);
        s->work = NULL;
    }
}

static int heun_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    heun_work *w = calloc(1, sizeof *w);

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
    heun_work *w = s->work;
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

static int heun_step(nde_solver *s, const double *theta, double t, double h,
                     const double *dw, const double *y, const double *aux,
                     double *y_next, double *aux_next, double *err,
                     const nde_norm_spec *norm, double *eest)
{
    heun_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    (void)aux; (void)aux_next; (void)err; (void)norm; (void)eest;
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
    return NDE_OK;
}

/*
 * Reverse mode through heun_step with cotangent yb on y_next:
 *   Yt = (h/2 yb) df/dy (y~) + (dW/2 yb) dg/dy (y~)     (cotangent on y~)
 *   F0 = h/2 yb + h Yt,  G0 = dW/2 yb + dW Yt            (on f(y), g(y))
 *   ybar += yb + Yt + F0 df/dy (y) + G0 dg/dy (y)
 * One evaluation (to rebuild y~) and two VJPs of drift and diffusion.
 */
static int heun_step_vjp(nde_solver *s, const double *theta, double t,
                         double h, const double *dw, const double *y,
                         const double *aux, const nde_step_cotangent *ct,
                         double *ybar, double *auxbar, double *thetabar)
{
    heun_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    const double *ybar_next = ct->y_next;

    (void)aux; (void)auxbar;
    if (!ybar_next)
        return NDE_OK;
    if ((rc = predict(s, theta, t, h, dw, y)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        w->f0bar[i] = 0.5 * h * ybar_next[i];
        w->g0bar[i] = 0.5 * dw[i] * ybar_next[i];
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
            ybar[i] += ybar_next[i] + w->ytbar[i];
    }
    s->counts.nvjp++;
    if ((rc = nde_field_vjp(s->field, t, y, theta, w->f0bar, ybar, thetabar,
                            s->batch)) ||
        (rc = nde_field_diffusion_vjp(s->field, t, y, theta, w->g0bar, ybar,
                                      thetabar, s->batch)))
        return rc;
    return NDE_OK;
}

static const nde_solver_type heun = {
    .info = NDE_SOLVER_INFO(
        .name = "heun",
        .description = "stochastic Heun (predictor-corrector) for "
                       "Stratonovich SDEs, fixed step (dt), two evaluations "
                       "a step; strong order 1 for commutative noise (each "
                       "g_i a function of y_i alone, or additive)",
        .provides = NDE_CAP_SDE_STRATONOVICH | NDE_CAP_STEP_VJP,
        .version = "1"),
    /* strong order x 2 (solver.h): 0.5 for general noise (1 for commutative
     * or additive noise) */
    .order = 1, .error_order = 0, .dense_order = 0, .ops = {.create = heun_create, .destroy = heun_destroy,
            .step = heun_step, .step_vjp = heun_step_vjp}};

NDE_MODULE(&heun.info);
