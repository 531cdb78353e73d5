/*
 * Euler-Maruyama for Ito SDEs with diagonal or general noise (Kloeden,
 * Platen, Numerical Solution of SDEs, 1992, Sec. 10.2):
 *     y_next = y + h f(t, y) + g(t, y) dW,   dW_k = W_k(t + h) - W_k(t),
 * g dW the elementwise product for diagonal noise, the matrix-vector
 * product G dW (dim x M a row) for general noise.
 * Strong order 0.5 (1 for additive noise), weak order 1 (Kloeden-Platen).
 * No state besides y (aux = 0): one drift and one diffusion evaluation a
 * step, one VJP of each for the step's VJP.
 */
#include <stdlib.h>
#include <string.h>

#include "gnoise.h"

typedef struct em_work {
    double *f, *g;          /* drift and diffusion at the step's start */
    double *vf, *vg;        /* cotangents on them in the step VJP      */
    size_t gw;              /* values of g per state value (gnoise.h)  */
    double *block;
} em_work;

static void em_destroy(nde_solver *s)
{
    em_work *w = s->work;

    if (w) {
        free(w->block);
        free(w);
        s->work = NULL;
    }
}

static int em_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    const size_t gw = gnoise_width(s->field);
    em_work *w = calloc(1, sizeof *w);

    if (!w)
        return NDE_ENOMEM;
    s->work = w;
    w->gw = gw;
    if (!(w->block = malloc((2 + 2 * gw) * n * sizeof(double))))
        return NDE_ENOMEM;
    w->f = w->block;
    w->g = w->f + n;
    w->vf = w->g + gw * n;
    w->vg = w->vf + n;
    return NDE_OK;
}

static int em_step(nde_solver *s, const double *theta, double t, double h,
                   const double *dw, const double *y, const double *aux,
                   double *y_next, double *aux_next, double *err,
                   const nde_norm_spec *norm, double *eest)
{
    em_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    (void)aux; (void)aux_next; (void)err; (void)norm; (void)eest;
    s->counts.nfe++;
    if ((rc = nde_field_eval_sde(s->field, t, y, theta, w->f, w->g,
                                 s->batch)))
        return rc;
    if (w->gw > 1) {
        for (size_t i = 0; i < n; i++)
            y_next[i] = y[i] + h * w->f[i];
        gnoise_prod_add(s->field, s->batch, 1.0, w->g, dw, y_next);
        return NDE_OK;
    }
    for (size_t i = 0; i < n; i++)
        y_next[i] = y[i] + h * w->f[i] + w->g[i] * dw[i];
    return NDE_OK;
}

/* ybar += ybar_next (I + h df/dy + dW dg/dy), thetabar likewise. */
static int em_step_vjp(nde_solver *s, const double *theta, double t, double h,
                       const double *dw, const double *y, const double *aux,
                       const nde_step_cotangent *ct,
                       double *ybar, double *auxbar, double *thetabar)
{
    em_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double *ybar_next = ct->y_next;

    (void)aux; (void)auxbar;
    if (!ybar_next)
        return NDE_OK;
    if (w->gw > 1) {        /* the cotangent on G: ybar_next dW^T */
        for (size_t i = 0; i < n; i++)
            w->vf[i] = h * ybar_next[i];
        memset(w->vg, 0, w->gw * n * sizeof *w->vg);
        gnoise_outer_add(s->field, s->batch, 1.0, ybar_next, dw, w->vg);
    } else {
        for (size_t i = 0; i < n; i++) {
            w->vf[i] = h * ybar_next[i];
            w->vg[i] = dw[i] * ybar_next[i];
        }
    }
    if (ybar)
        for (size_t i = 0; i < n; i++)
            ybar[i] += ybar_next[i];
    s->counts.nvjp++;
    return nde_field_vjp_sde(s->field, t, y, theta, w->vf, w->vg, ybar,
                             thetabar, s->batch);
}

static const nde_solver_type euler_maruyama = {
    .info = NDE_SOLVER_INFO(
        .name = "euler_maruyama",
        .description = "Euler-Maruyama for Ito SDEs, fixed step (dt), "
                       "diagonal or general noise; strong order 1 for "
                       "additive noise",
        .provides = NDE_CAP_SDE_ITO | NDE_CAP_STEP_VJP |
                    NDE_CAP_GENERAL_NOISE,
        .version = "1"),
    /* strong order x 2 (solver.h): 0.5 */
    .order = 1, .error_order = 0, .dense_order = 0,
    .ops = {.create = em_create, .destroy = em_destroy, .step = em_step,
            .step_vjp = em_step_vjp}};

NDE_MODULE(&euler_maruyama.info);
