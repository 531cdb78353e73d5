/*
 * midpoint - an example solver written against the solver ops table (not
 * a tableau): the explicit midpoint rule with the Euler step as its
 * embedded solution, so the driver steps it adaptively.
 *
 *     k1 = f(t, y),  k2 = f(t + h/2, y + h/2 k1)
 *     y_next = y + h k2            (order 2)
 *     err    = h (k2 - k1)         (y_next minus the Euler step, order 1)
 *
 * Operations: step (with the error estimate and its norm) and step_vjp;
 * the driver does acceptance, step-size control, save times (this solver
 * has no dense output, so the driver stops on them) and counting.
 */
#include <stdlib.h>

#include <nde/nde.h>

typedef struct midpoint_work {
    double *k1, *k2, *g;    /* stages and the midpoint argument */
    double *k2bar, *gbar;   /* their cotangents in the VJP       */
} midpoint_work;

static void midpoint_destroy(nde_solver *s)
{
    midpoint_work *w = s->work;

    if (w)
        free(w->k1);
    free(w);
    s->work = NULL;
}

static int midpoint_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    midpoint_work *w = calloc(1, sizeof *w);

    if (!(s->work = w) || !(w->k1 = malloc(5 * n * sizeof(double))))
        return NDE_ENOMEM;
    w->k2 = w->k1 + n;
    w->g = w->k2 + n;
    w->k2bar = w->g + n;
    w->gbar = w->k2bar + n;
    return NDE_OK;
}

/* k1, g and k2 of the step from (t, y). */
static int stages(nde_solver *s, const double *theta, double t, double h,
                  const double *y)
{
    midpoint_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    s->counts.nfe += 2;
    if ((rc = nde_field_eval(s->field, t, y, theta, w->k1, s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++)
        w->g[i] = y[i] + 0.5 * h * w->k1[i];
    return nde_field_eval(s->field, t + 0.5 * h, w->g, theta, w->k2,
                          s->batch);
}

static int midpoint_step(nde_solver *s, const double *theta, double t,
                         double h, const double *dw, const double *y,
                         const double *aux, double *y_next, double *aux_next,
                         double *err, const nde_norm_spec *norm, double *eest)
{
    midpoint_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    (void)dw; (void)aux; (void)aux_next;
    if ((rc = stages(s, theta, t, h, y)) != NDE_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        y_next[i] = y[i] + h * w->k2[i];
    if (err) {
        for (size_t i = 0; i < n; i++)
            err[i] = h * (w->k2[i] - w->k1[i]);
        /* NaN when y_next is not finite: the driver then retries */
        if (eest)
            *eest = nde_error_norm_spec(norm, err, y, y_next, n);
    }
    return NDE_OK;
}

/*
 * Reverse mode with cotangent v on y_next (the error estimate's cotangent
 * is not supported: ct->eest must be 0):
 *     k2bar = h v,  gbar = k2bar^T df/dy (g),  thetabar += k2bar^T df/dth
 *     k1bar = h/2 gbar,  ybar += v + gbar + k1bar^T df/dy (y)
 */
static int midpoint_step_vjp(nde_solver *s, const double *theta, double t,
                             double h, const double *dw, const double *y,
                             const double *aux, const nde_step_cotangent *ct,
                             double *ybar, double *auxbar, double *thetabar)
{
    midpoint_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    (void)dw; (void)aux; (void)auxbar;
    if (ct->eest != 0.0 || ct->stiffness != 0.0 || ct->ndense > 0)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver 'midpoint': the step VJP takes a cotangent "
                         "on y_next only");
    if (!ct->y_next)
        return NDE_OK;
    if ((rc = stages(s, theta, t, h, y)) != NDE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        w->k2bar[i] = h * ct->y_next[i];
        w->gbar[i] = 0.0;
    }
    s->counts.nvjp += 2;
    if ((rc = nde_field_vjp(s->field, t + 0.5 * h, w->g, theta, w->k2bar,
                            w->gbar, thetabar, s->batch)))
        return rc;
    /* gbar feeds y directly and, through k1 = f(t, y), with weight h/2 */
    if (ybar)
        for (size_t i = 0; i < n; i++)
            ybar[i] += ct->y_next[i] + w->gbar[i];
    for (size_t i = 0; i < n; i++)
        w->gbar[i] *= 0.5 * h;
    return nde_field_vjp(s->field, t, y, theta, w->gbar, ybar, thetabar,
                         s->batch);
}

static const nde_solver_type midpoint = {
    .info = NDE_SOLVER_INFO(
        .name = "midpoint",
        .description = "explicit midpoint with an embedded Euler step, "
                       "adaptive (example of a solver written against the "
                       "ops table)",
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_STEP_VJP,
        .version = "1"),
    .order = 2,
    .error_order = 1,
    .ops = {.create = midpoint_create, .destroy = midpoint_destroy,
            .step = midpoint_step, .step_vjp = midpoint_step_vjp}};

NDE_MODULE(&midpoint.info);
