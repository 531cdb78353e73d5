/* The stochastic Heun step shared by heun.c and lamba_euler_heun.c
 * (sheun.h). */
#include <stdlib.h>
#include <string.h>

#include "sheun.h"

void sheun_destroy(nde_solver *s)
{
    sheun_work *w = s->work;

    if (w) {
        free(w->block);
        free(w->extra);
        free(w);
        s->work = NULL;
    }
}

int sheun_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    const size_t gw = gnoise_width(s->field), ng = gw * n;
    sheun_work *w = calloc(1, sizeof *w);

    if (!w)
        return NDE_ENOMEM;
    s->work = w;
    w->gw = gw;
    if (!(w->block = malloc((6 * n + 3 * ng) * sizeof(double))))
        return NDE_ENOMEM;
    w->f0 = w->block;
    w->g0 = w->f0 + n;
    w->yt = w->g0 + ng;
    w->f1 = w->yt + n;
    w->g1 = w->f1 + n;
    w->ytbar = w->g1 + ng;
    w->f0bar = w->ytbar + n;
    w->g0bar = w->f0bar + n;
    w->gdw = w->g0bar + ng;
    return NDE_OK;
}

/* f0, g0 at (t, y) and the predictor yt; one evaluation. */
static int predict(nde_solver *s, const double *theta, double t, double h,
                   const double *dw, const double *y)
{
    sheun_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    s->counts.nfe++;
    if ((rc = nde_field_eval_sde(s->field, t, y, theta, w->f0, w->g0,
                                 s->batch)))
        return rc;
    if (w->gw > 1) {
        gnoise_prod(s->field, s->batch, 1.0, w->g0, dw, NULL, w->gdw);
        for (size_t i = 0; i < n; i++)
            w->yt[i] = y[i] + w->f0[i] * h + w->gdw[i];
        return NDE_OK;
    }
    for (size_t i = 0; i < n; i++)
        w->yt[i] = y[i] + w->f0[i] * h + w->g0[i] * dw[i];
    return NDE_OK;
}

int sheun_advance(nde_solver *s, const double *theta, double t, double h,
                  const double *dw, const double *y, double *y_next)
{
    sheun_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    if ((rc = predict(s, theta, t, h, dw, y)))
        return rc;
    s->counts.nfe++;
    if ((rc = nde_field_eval_sde(s->field, t + h, w->yt, theta, w->f1,
                                 w->g1, s->batch)))
        return rc;
    if (w->gw > 1) {
        for (size_t i = 0; i < n; i++)
            y_next[i] = y[i] + 0.5 * (w->f0[i] + w->f1[i]) * h +
                        0.5 * w->gdw[i];
        gnoise_prod_add(s->field, s->batch, 0.5, w->g1, dw, y_next);
        return NDE_OK;
    }
    for (size_t i = 0; i < n; i++)
        y_next[i] = y[i] + 0.5 * (w->f0[i] + w->f1[i]) * h +
                    0.5 * (w->g0[i] + w->g1[i]) * dw[i];
    return NDE_OK;
}

/*
 * With cotangent yb on y_next (0 when NULL) and further cotangents fb, gb
 * on f(y), g(y):
 *   Yt = (h/2 yb) df/dy (y~) + (dW/2 yb) dg/dy (y~)     (cotangent on y~)
 *   F0 = h/2 yb + h Yt + fb,  G0 = dW/2 yb + dW Yt + gb  (on f(y), g(y))
 *   ybar += yb + Yt + F0 df/dy (y) + G0 dg/dy (y)
 * With general noise each dW v above (on g) is the outer product v dW^T.
 */
int sheun_vjp_with(nde_solver *s, const double *theta, double t, double h,
                   const double *dw, const double *y, const double *yb,
                   const double *fb, const double *gb, double *ybar,
                   double *thetabar)
{
    sheun_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    for (size_t i = 0; i < n; i++)
        w->f0bar[i] = fb ? fb[i] : 0.0;
    for (size_t i = 0; i < w->gw * n; i++)
        w->g0bar[i] = gb ? gb[i] : 0.0;
    if (yb) {
        if ((rc = predict(s, theta, t, h, dw, y)))
            return rc;
        for (size_t i = 0; i < n; i++) {
            w->f1[i] = 0.5 * h * yb[i];
            if (w->gw == 1)
                w->g1[i] = 0.5 * dw[i] * yb[i];
            w->ytbar[i] = 0.0;
        }
        if (w->gw > 1) {    /* on G(y~): yb/2 dW^T */
            memset(w->g1, 0, w->gw * n * sizeof *w->g1);
            gnoise_outer_add(s->field, s->batch, 0.5, yb, dw, w->g1);
        }
        s->counts.nvjp++;
        if ((rc = nde_field_vjp_sde(s->field, t + h, w->yt, theta, w->f1,
                                    w->g1, w->ytbar, thetabar, s->batch)))
            return rc;
        if (w->gw > 1) {    /* on G(y): (yb/2 + Yt) dW^T */
            gnoise_outer_add(s->field, s->batch, 0.5, yb, dw, w->g0bar);
            gnoise_outer_add(s->field, s->batch, 1.0, w->ytbar, dw,
                             w->g0bar);
        }
        for (size_t i = 0; i < n; i++) {
            w->f0bar[i] += w->f1[i] + h * w->ytbar[i];
            if (w->gw == 1)
                w->g0bar[i] += w->g1[i] + dw[i] * w->ytbar[i];
            if (ybar)
                ybar[i] += yb[i] + w->ytbar[i];
        }
    } else if (!fb && !gb) {
        return NDE_OK;
    }
    s->counts.nvjp++;
    return nde_field_vjp_sde(s->field, t, y, theta, w->f0bar, w->g0bar,
                             ybar, thetabar, s->batch);
}

int sheun_vjp(nde_solver *s, const double *theta, double t, double h,
              const double *dw, const double *y, const double *yb,
              double *ybar, double *thetabar)
{
    return sheun_vjp_with(s, theta, t, h, dw, y, yb, NULL, NULL, ybar,
                          thetabar);
}
