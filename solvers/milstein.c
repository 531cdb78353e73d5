/*
 * Milstein's scheme for SDEs with diagonal noise in derivative-free form,
 * Ito and Stratonovich (Kloeden, Platen, Numerical Solution of SDEs, 1992,
 * Sec. 10.3 for the scheme, Sec. 11.1 for its derivative-free forms):
 *     y_next = y + h f + g dW + d e,   f = f(t, y), g = g(t, y),
 * with d standing for g g' (the diffusion's derivative along itself) and
 * e its noise weight, q = sqrt(h):
 *   Ito (K-P eq. 11.1.5):  u = y + h f + q g,  d = (g(u) - g) / q,
 *                          e_i = (dW_i^2 - h) / 2;
 *   Stratonovich:          u+- = y +- q g,     d = (g(u+) - g(u-)) / (2q),
 *                          e_i = dW_i^2 / 2.
 * The one-sided difference of the Ito form errs by O(sqrt h), which the
 * Ito weight (mean 0) keeps out of the strong order; the Stratonovich
 * weight has mean h / 2, so there that error would add up to O(sqrt h)
 * over a solve: the central difference (error O(h)) keeps order 1.
 * The field needs no derivative and the step's VJP only first-order
 * VJPs. Strong order 1 when each g_i depends on y_i alone (commutative
 * noise, e.g. scalar GBM); 0.5 when the diffusion couples the states
 * (the scheme has no Levy areas). Per step: drift and diffusion at y,
 * the diffusion at one (Ito) or two (Stratonovich) more points. Fixed
 * step, forwards only.
 */
#include <math.h>
#include <stdlib.h>

#include "nde/nde.h"

typedef struct mil_work {
    double *f, *g;          /* drift and diffusion at y                   */
    double *u, *gu;         /* u (Ito) or u+, and g there                 */
    double *um, *gum;       /* Stratonovich: u-, and g there              */
    double *e;              /* the noise weight e_i                       */
    double *vf, *vg, *vgu;  /* cotangents on f, g, g(u) in the VJP        */
    double *ubar, *umbar;   /* cotangents on u and u-                     */
    double *block;
} mil_work;

static int is_ito(const nde_solver *s)
{
    return (s->type->info.provides & NDE_CAP_SDE_ITO) != 0;
}

static void mil_destroy(nde_solver *s)
{
    mil_work *w = s->work;

    if (w) {
        free(w->block);
        free(w);
        s->work = NULL;
    }
}

static int mil_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    mil_work *w = calloc(1, sizeof *w);
    double **parts[] = {&w->f,  &w->g,  &w->u,   &w->gu,   &w->um, &w->gum,
                        &w->e,  &w->vf, &w->vg,  &w->vgu,  &w->ubar,
                        &w->umbar};
    const size_t np = sizeof parts / sizeof *parts;

    if (!w)
        return NDE_ENOMEM;
    s->work = w;
    if (!(w->block = malloc(np * n * sizeof(double))))
        return NDE_ENOMEM;
    for (size_t k = 0; k < np; k++)
        *parts[k] = w->block + k * n;
    return NDE_OK;
}

/* f, g at (t, y), the supporting values, g there and the weights e. */
static int mil_stages(nde_solver *s, const double *theta, double t, double h,
                      const double *dw, const double *y)
{
    mil_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const int ito = is_ito(s);
    const double q = sqrt(h);
    int rc;

    s->counts.nfe += ito ? 2 : 3;
    if ((rc = nde_field_eval(s->field, t, y, theta, w->f, s->batch)) ||
        (rc = nde_field_diffusion(s->field, t, y, theta, w->g, s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        w->u[i] = y[i] + (ito ? h * w->f[i] : 0.0) + q * w->g[i];
        w->um[i] = y[i] - q * w->g[i];
        w->e[i] = 0.5 * (dw[i] * dw[i] - (ito ? h : 0.0));
    }
    if ((rc = nde_field_diffusion(s->field, t, w->u, theta, w->gu,
                                  s->batch)))
        return rc;
    return ito ? NDE_OK
               : nde_field_diffusion(s->field, t, w->um, theta, w->gum,
                                     s->batch);
}

static int mil_step(nde_solver *s, const double *theta, double t, double h,
                    const double *dw, const double *y, const double *aux,
                    double *y_next, double *aux_next, double *err,
                    const nde_norm_spec *norm, double *eest)
{
    mil_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double q = sqrt(h);
    const double *gm;
    double scale;
    int rc;

    (void)aux; (void)aux_next; (void)err; (void)norm; (void)eest;
    if (!(h > 0))
        return nde_error(s->ctx, NDE_EINVAL,
                         "%s: the step must be positive (h = %g): an SDE "
                         "is solved forwards", s->type->info.name, h);
    if ((rc = mil_stages(s, theta, t, h, dw, y)) != NDE_OK)
        return rc;
    gm = is_ito(s) ? w->g : w->gum;
    scale = is_ito(s) ? 1.0 / q : 0.5 / q;
    for (size_t i = 0; i < n; i++)
        y_next[i] = y[i] + h * w->f[i] + w->g[i] * dw[i] +
                    (w->gu[i] - gm[i]) * scale * w->e[i];
    return NDE_OK;
}

/* With a = ybar_next and k = a e / q (Ito) or a e / (2q): g(u) gets k and
 * its VJP at u gives ubar; Ito: g gets -k, u = y + h f + q g passes ubar
 * to y, h ubar to f, q ubar to g; Stratonovich: g(u-) gets -k, its VJP
 * at u- gives umbar, u+- = y +- q g pass ubar + umbar to y and q (ubar -
 * umbar) to g. Then y gets a, f gets h a, g gets a dW, and f's and g's
 * VJPs at y carry theirs to y and theta. */
static int mil_step_vjp(nde_solver *s, const double *theta, double t,
                        double h, const double *dw, const double *y,
                        const double *aux, const nde_step_cotangent *ct,
                        double *ybar, double *auxbar, double *thetabar)
{
    mil_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double *a = ct->y_next, q = sqrt(h);
    const int ito = is_ito(s);
    const double scale = ito ? 1.0 / q : 0.5 / q;
    int rc;

    (void)aux; (void)auxbar;
    if (!a)
        return NDE_OK;
    if ((rc = mil_stages(s, theta, t, h, dw, y)) != NDE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        w->vgu[i] = a[i] * scale * w->e[i];
        w->ubar[i] = w->umbar[i] = 0.0;
    }
    s->counts.nvjp += ito ? 2 : 3;
    if ((rc = nde_field_diffusion_vjp(s->field, t, w->u, theta, w->vgu,
                                      w->ubar, thetabar, s->batch)))
        return rc;
    if (!ito) {
        for (size_t i = 0; i < n; i++)
            w->vgu[i] = -w->vgu[i];
        if ((rc = nde_field_diffusion_vjp(s->field, t, w->um, theta, w->vgu,
                                          w->umbar, thetabar, s->batch)))
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        w->vf[i] = h * (a[i] + (ito ? w->ubar[i] : 0.0));
        w->vg[i] = a[i] * dw[i] + q * (w->ubar[i] - w->umbar[i]) -
                   (ito ? a[i] * scale * w->e[i] : 0.0);
    }
    if (ybar)
        for (size_t i = 0; i < n; i++)
            ybar[i] += a[i] + w->ubar[i] + w->umbar[i];
    if ((rc = nde_field_vjp(s->field, t, y, theta, w->vf, ybar, thetabar,
                            s->batch)) ||
        (rc = nde_field_diffusion_vjp(s->field, t, y, theta, w->vg, ybar,
                                      thetabar, s->batch)))
        return rc;
    return NDE_OK;
}

#define MILSTEIN_OPS                                                         \
    .order = 2, /* strong order x 2 (solver.h): 1 */                         \
    .error_order = 0, .dense_order = 0,                                      \
    .ops = {.create = mil_create, .destroy = mil_destroy, .step = mil_step,  \
            .step_vjp = mil_step_vjp}

static const nde_solver_type milstein = {
    .info = NDE_SOLVER_INFO(
        .name = "milstein",
        .description = "derivative-free Milstein for Ito SDEs with diagonal "
                       "noise, fixed step (dt); strong order 1 for "
                       "commutative noise",
        .provides = NDE_CAP_SDE_ITO | NDE_CAP_STEP_VJP,
        .version = "1"),
    MILSTEIN_OPS};

static const nde_solver_type milstein_strat = {
    .info = NDE_SOLVER_INFO(
        .name = "milstein_strat",
        .description = "derivative-free Milstein for Stratonovich SDEs with "
                       "diagonal noise, fixed step (dt); strong order 1 for "
                       "commutative noise",
        .provides = NDE_CAP_SDE_STRATONOVICH | NDE_CAP_STEP_VJP,
        .version = "1"),
    MILSTEIN_OPS};

NDE_MODULE(&milstein.info, &milstein_strat.info);
