/*
 * Reversible Heun for Stratonovich SDEs with diagonal or general noise
 * (Kidger, Foster,
 * Li, Lyons 2021, arXiv 2105.13493, Algorithm 1). State y
 * and aux = (z, f(t, z), g(t, z)), z0 = y0:
 *     z1 = 2 y0 - z0 + f0 h + g0 dW
 *     f1 = f(t + h, z1),  g1 = g(t + h, z1)       (the step's one evaluation)
 *     y1 = y0 + (f0 + f1) h / 2 + (g0 + g1) dW / 2
 * and algebraically reversible: z0 = 2 y1 - z1 - f1 h - g1 dW, f0, g0 at z0,
 * y0 = y1 - (f0 + f1) h / 2 - (g0 + g1) dW / 2.
 * Strong order 0.5 for general noise, 1 for commutative (e.g. scalar) and
 * additive noise, weak order 1 (the paper; torchsde's reversible_heun.py;
 * diffrax's SDE solver table); 2 for ODEs. The step VJP keeps
 * cotangents on f(z), g(z) as aux cotangents, so a backward pass costs one
 * evaluation (reverse) and one VJP of drift and diffusion (at z1) a step.
 * General noise (gnoise.h): g(z) in aux is the dim x M matrix G a row (aux
 * is then 2 + M blocks; torchsde's reversible_heun.py keeps the matrix
 * too), g dW is G dW and a cotangent v on it is v dW^T on G.
 *
 * A field that reads an input (nde/input.h): f(z), g(z) carried from a
 * step's end were made on that step's segment of the input, so a step
 * that starts on a knot of the input evaluates them afresh at z on its
 * own segment (one more evaluation; its VJP goes through that
 * evaluation instead of into aux). The reverse step reconstructs y0 with
 * those, then, on a knot, the carried ones on the segment left of it, as
 * the forward step before made them; the start evaluates on the left of
 * t0 too. So no step mixes two segments of the input (a drift that reads
 * the input's slope sees each segment's on its own steps), and the
 * reconstruction is exact across knots where the input's slope or value
 * jumps. A field continuous across its input's knots (f->input_continuous,
 * e.g. a controlled one reading its path through its noise: nde/field.h)
 * needs none of this: its carried evaluation holds on either side.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnoise.h"

typedef struct rh_work {
    double *z1;             /* z at the step's end, recomputed in the VJP */
    double *f1bar, *g1bar;  /* total cotangents on f(z1), g(z1)          */
    double *z1bar;          /* total cotangent on z1                     */
    double *fresh;          /* (z, f(z), g(z)) made afresh on a knot      */
    double *f0bar, *g0bar;  /* cotangents on a step's f0, g0             */
    double *gdw;            /* general noise: G dW of the step's start
                               (forwards) or end (reverse), used twice    */
    size_t gw;              /* values of g per state value (gnoise.h)    */
    double *block;
} rh_work;

static void rh_destroy(nde_solver *s)
{
    rh_work *w = s->work;

    if (w) {
        free(w->block);
        free(w);
        s->work = NULL;
    }
}

static int rh_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    const size_t gw = gnoise_width(s->field);
    rh_work *w = calloc(1, sizeof *w);

    if (!w)
        return NDE_ENOMEM;
    s->work = w;
    w->gw = gw;
    s->aux = 2 + (int)gw;   /* z, f(z), g(z) */
    if (!(w->block = malloc((8 + 3 * gw) * n * sizeof(double))))
        return NDE_ENOMEM;
    w->z1 = w->block;
    w->f1bar = w->z1 + n;
    w->g1bar = w->f1bar + n;
    w->z1bar = w->g1bar + gw * n;
    w->fresh = w->z1bar + n;
    w->f0bar = w->fresh + (2 + gw) * n;
    w->g0bar = w->f0bar + n;
    w->gdw = w->g0bar + gw * n;
    return NDE_OK;
}

/* Select the input on the left of t (the segment holding the double just
 * below t: nde_input_select takes the segment of t + h/2), keeping the
 * selection it replaces in sel[2] for unselect. */
static void select_left(nde_solver *s, double t, double sel[2])
{
    if (!s->field->input)
        return;
    nde_input_selected(s->field->input, &sel[0], &sel[1]);
    nde_input_select(s->field->input, t,
                     2.0 * (nextafter(t, -INFINITY) - t));
}

static void unselect(nde_solver *s, const double sel[2])
{
    if (s->field->input)
        nde_input_select(s->field->input, sel[0], sel[1]);
}

/* aux = (z, f(t, z), g(t, z)) with z at `z`; one evaluation. */
static int eval_at(nde_solver *s, const double *theta, double t,
                   const double *z, double *aux)
{
    const size_t n = s->batch * s->field->dim;

    s->counts.nfe++;
    return nde_field_eval_sde(s->field, t, z, theta, aux + n, aux + 2 * n,
                              s->batch);
}

/* A knot where the field's values jump or kink (not for a field that
 * declares itself continuous there: nde/field.h, input_continuous). */
static int on_knot(const nde_solver *s, double t)
{
    return s->field->input && !s->field->input_continuous &&
           nde_input_has_knot(s->field->input, t);
}

/* The f0, g0 a step from (t, aux) uses: aux's, or on a knot of the
 * input, made afresh at aux's z on the step's segment. */
static int start_values(nde_solver *s, const double *theta, double t,
                        const double *aux, const double **f0,
                        const double **g0)
{
    rh_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    int rc;

    if (!on_knot(s, t)) {
        *f0 = aux + n;
        *g0 = aux + 2 * n;
        return NDE_OK;
    }
    if ((rc = eval_at(s, theta, t, aux, w->fresh)) != NDE_OK)
        return rc;
    *f0 = w->fresh + n;
    *g0 = w->fresh + 2 * n;
    return NDE_OK;
}

static int rh_start(nde_solver *s, const double *theta, double t0,
                    const double *y0, double *aux0)
{
    const size_t n = s->batch * s->field->dim;
    double sel[2];
    int rc;

    for (size_t i = 0; i < n; i++)
        aux0[i] = y0[i];
    select_left(s, t0, sel);
    rc = eval_at(s, theta, t0, aux0, aux0);
    unselect(s, sel);
    return rc;
}

/* rh_step with general noise. */
static int step_general(nde_solver *s, const double *theta, double t,
                        double h, const double *dw, const double *y,
                        const double *aux, double *y_next, double *aux_next)
{
    rh_work *w = s->work;
    const size_t n = s->batch * s->field->dim, b = s->batch;
    const double *z = aux, *f0, *g0;
    const double *f1 = aux_next + n, *g1 = aux_next + 2 * n;
    double *z1 = aux_next;
    int rc;

    if ((rc = start_values(s, theta, t, aux, &f0, &g0)) != NDE_OK)
        return rc;
    gnoise_prod(s->field, b, 1.0, g0, dw, NULL, w->gdw);
    for (size_t i = 0; i < n; i++)
        z1[i] = 2.0 * y[i] - z[i] + f0[i] * h + w->gdw[i];
    if ((rc = eval_at(s, theta, t + h, z1, aux_next)) != NDE_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        y_next[i] = y[i] + 0.5 * (f0[i] + f1[i]) * h + 0.5 * w->gdw[i];
    gnoise_prod_add(s->field, b, 0.5, g1, dw, y_next);
    return NDE_OK;
}

static int rh_step(nde_solver *s, const double *theta, double t, double h,
                   const double *dw, const double *y, const double *aux,
                   double *y_next, double *aux_next, double *err,
                   const nde_norm_spec *norm, double *eest)
{
    const size_t n = s->batch * s->field->dim;
    const double *z = aux, *f0, *g0;
    const double *f1 = aux_next + n, *g1 = aux_next + 2 * n;
    double *z1 = aux_next;
    int rc;

    (void)err; (void)norm; (void)eest;
    if (gnoise_width(s->field) > 1)
        return step_general(s, theta, t, h, dw, y, aux, y_next, aux_next);
    if ((rc = start_values(s, theta, t, aux, &f0, &g0)) != NDE_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        z1[i] = 2.0 * y[i] - z[i] + f0[i] * h + g0[i] * dw[i];
    if ((rc = eval_at(s, theta, t + h, z1, aux_next)) != NDE_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        y_next[i] = y[i] + 0.5 * (f0[i] + f1[i]) * h +
                    0.5 * (g0[i] + g1[i]) * dw[i];
    return NDE_OK;
}

static int rh_reverse(nde_solver *s, const double *theta, double t, double h,
                      const double *dw, const double *y_next,
                      const double *aux_next, double *y, double *aux)
{
    rh_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double *z1 = aux_next, *f1 = aux_next + n, *g1 = aux_next + 2 * n;
    const double *f0 = aux + n, *g0 = aux + 2 * n;
    double *z = aux;
    const int general = gnoise_width(s->field) > 1;
    double sel[2];
    int rc;

    if (general) {
        gnoise_prod(s->field, s->batch, 1.0, g1, dw, NULL, w->gdw);
        for (size_t i = 0; i < n; i++)
            z[i] = 2.0 * y_next[i] - z1[i] - f1[i] * h - w->gdw[i];
    } else {
        for (size_t i = 0; i < n; i++)
            z[i] = 2.0 * y_next[i] - z1[i] - f1[i] * h - g1[i] * dw[i];
    }
    /* f0, g0 as the step used them (on a knot: afresh, on its segment) */
    if ((rc = eval_at(s, theta, t, z, aux)) != NDE_OK)
        return rc;
    if (general) {
        for (size_t i = 0; i < n; i++)
            y[i] = y_next[i] - 0.5 * (f0[i] + f1[i]) * h - 0.5 * w->gdw[i];
        gnoise_prod_add(s->field, s->batch, -0.5, g0, dw, y);
    } else {
        for (size_t i = 0; i < n; i++)
            y[i] = y_next[i] - 0.5 * (f0[i] + f1[i]) * h -
                   0.5 * (g0[i] + g1[i]) * dw[i];
    }
    if (!on_knot(s, t))
        return NDE_OK;
    /* aux as the step before left it: on the segment left of the knot */
    select_left(s, t, sel);
    rc = eval_at(s, theta, t, z, aux);
    unselect(s, sel);
    return rc;
}

/* The cotangents f0bar, g0bar on a step's f0, g0 into aux's, or on a knot
 * through their fresh evaluation at aux's z (start_values). */
static int start_values_vjp(nde_solver *s, const double *theta, double t,
                            const double *aux, double *auxbar,
                            double *thetabar)
{
    rh_work *w = s->work;
    const size_t n = s->batch * s->field->dim, ng = w->gw * n;

    if (!on_knot(s, t)) {
        if (!auxbar)
            return NDE_OK;
        for (size_t i = 0; i < n; i++)
            auxbar[n + i] += w->f0bar[i];
        for (size_t i = 0; i < ng; i++)
            auxbar[2 * n + i] += w->g0bar[i];
        return NDE_OK;
    }
    s->counts.nvjp++;
    return nde_field_vjp_sde(s->field, t, aux, theta, w->f0bar, w->g0bar,
                             auxbar, thetabar, s->batch);
}

/*
 * Reverse mode through rh_step, cotangents (yb1, zb1, fb1, gb1) on
 * (y1, z1, f1, g1):
 *   F1 = fb1 + h/2 yb1,  G1 = gb1 + dW/2 yb1        (totals on f1, g1)
 *   Z1 = zb1 + F1 df/dz (z1) + G1 dg/dz (z1)        (the step's one VJP)
 *   ybar += yb1 + 2 Z1,  zbar -= Z1,
 *   f0bar += h/2 yb1 + h Z1,  g0bar += dW/2 yb1 + dW Z1.
 */
/* rh_step_vjp with general noise: the cotangents on G(z1) and G(z0) are
 * G1 = gb1 + yb1/2 dW^T and (yb1/2 + Z1) dW^T. */
static int step_vjp_general(nde_solver *s, const double *theta, double t,
                            double h, const double *dw, const double *y,
                            const double *aux, const nde_step_cotangent *ct,
                            double *ybar, double *auxbar, double *thetabar)
{
    rh_work *w = s->work;
    const size_t n = s->batch * s->field->dim, ng = w->gw * n;
    const double *z = aux, *f0, *g0;
    const double *ybar_next = ct->y_next, *auxbar_next = ct->aux_next;
    int rc;

    if ((rc = start_values(s, theta, t, aux, &f0, &g0)) != NDE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const double yb = ybar_next ? ybar_next[i] : 0.0;
        w->z1[i] = 2.0 * y[i] - z[i] + f0[i] * h;
        w->f1bar[i] = (auxbar_next ? auxbar_next[n + i] : 0.0) + 0.5 * h * yb;
        w->z1bar[i] = auxbar_next ? auxbar_next[i] : 0.0;
    }
    gnoise_prod_add(s->field, s->batch, 1.0, g0, dw, w->z1);
    if (ybar_next)
        gnoise_outer(s->field, s->batch, 0.5, ybar_next, dw,
                     auxbar_next ? auxbar_next + 2 * n : NULL, w->g1bar);
    else
        for (size_t i = 0; i < ng; i++)
            w->g1bar[i] = auxbar_next ? auxbar_next[2 * n + i] : 0.0;
    s->counts.nvjp++;
    if ((rc = nde_field_vjp_sde(s->field, t + h, w->z1, theta, w->f1bar,
                                w->g1bar, w->z1bar, thetabar, s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        const double yb = ybar_next ? ybar_next[i] : 0.0, zb = w->z1bar[i];
        if (ybar)
            ybar[i] += yb + 2.0 * zb;
        if (auxbar)
            auxbar[i] -= zb;
        w->f0bar[i] = 0.5 * h * yb + h * zb;
        w->f1bar[i] = 0.5 * yb + zb;    /* reused: the cotangent on G0 dW */
    }
    if (on_knot(s, t)) {
        gnoise_outer(s->field, s->batch, 1.0, w->f1bar, dw, NULL, w->g0bar);
        return start_values_vjp(s, theta, t, aux, auxbar, thetabar);
    }
    /* the carried G0's cotangent, straight into auxbar (no pass through
     * g0bar: G is the largest array of the step) */
    if (auxbar) {
        for (size_t i = 0; i < n; i++)
            auxbar[n + i] += w->f0bar[i];
        gnoise_outer_add(s->field, s->batch, 1.0, w->f1bar, dw,
                         auxbar + 2 * n);
    }
    return NDE_OK;
}

static int rh_step_vjp(nde_solver *s, const double *theta, double t, double h,
                       const double *dw, const double *y, const double *aux,
                       const nde_step_cotangent *ct,
                       double *ybar, double *auxbar, double *thetabar)
{
    rh_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double *z = aux, *f0, *g0;
    const double *ybar_next = ct->y_next, *auxbar_next = ct->aux_next;
    const double t1 = t + h;
    int rc;

    if (w->gw > 1)
        return step_vjp_general(s, theta, t, h, dw, y, aux, ct, ybar, auxbar,
                                thetabar);
    if ((rc = start_values(s, theta, t, aux, &f0, &g0)) != NDE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const double yb = ybar_next ? ybar_next[i] : 0.0;
        w->z1[i] = 2.0 * y[i] - z[i] + f0[i] * h + g0[i] * dw[i];
        w->f1bar[i] = (auxbar_next ? auxbar_next[n + i] : 0.0) + 0.5 * h * yb;
        w->g1bar[i] = (auxbar_next ? auxbar_next[2 * n + i] : 0.0) +
                      0.5 * dw[i] * yb;
        w->z1bar[i] = auxbar_next ? auxbar_next[i] : 0.0;
    }
    s->counts.nvjp++;
    if ((rc = nde_field_vjp_sde(s->field, t1, w->z1, theta, w->f1bar,
                                w->g1bar, w->z1bar, thetabar, s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        const double yb = ybar_next ? ybar_next[i] : 0.0, zb = w->z1bar[i];
        if (ybar)
            ybar[i] += yb + 2.0 * zb;
        if (auxbar)
            auxbar[i] -= zb;
        w->f0bar[i] = 0.5 * h * yb + h * zb;
        w->g0bar[i] = 0.5 * dw[i] * yb + dw[i] * zb;
    }
    return start_values_vjp(s, theta, t, aux, auxbar, thetabar);
}

/* aux0 = (y0, f(t0, y0), g(t0, y0)): ybar0 += zb0 + VJPs of f, g at y0. */
static int rh_start_vjp(nde_solver *s, const double *theta, double t0,
                        const double *y0, const double *auxbar0,
                        double *ybar0, double *thetabar)
{
    const size_t n = s->batch * s->field->dim;
    double sel[2];
    int rc;

    if (!auxbar0)
        return NDE_OK;
    if (ybar0)
        for (size_t i = 0; i < n; i++)
            ybar0[i] += auxbar0[i];
    s->counts.nvjp++;
    select_left(s, t0, sel);
    rc = nde_field_vjp_sde(s->field, t0, y0, theta, auxbar0 + n,
                           auxbar0 + 2 * n, ybar0, thetabar, s->batch);
    unselect(s, sel);
    return rc;
}

static const nde_solver_type reversible_heun = {
    .info = NDE_SOLVER_INFO(
        .name = "reversible_heun",
        .description = "reversible Heun for Stratonovich SDEs, fixed step "
                       "(dt), exact reverse step, one evaluation a step; "
                       "strong order 1 for commutative noise (each g_i a "
                       "function of y_i alone, or additive)",
        .provides = NDE_CAP_SDE_STRATONOVICH | NDE_CAP_REVERSIBLE |
                    NDE_CAP_STEP_VJP | NDE_CAP_GENERAL_NOISE,
        .version = "1"),
    /* strong order x 2 (solver.h): 0.5 for general noise (1 for commutative
     * or additive noise) */
    .order = 1, .error_order = 0, .dense_order = 0, .ops = {.aux = 3, .create = rh_create, .destroy = rh_destroy,
            .start = rh_start, .step = rh_step, .step_vjp = rh_step_vjp,
            .start_vjp = rh_start_vjp, .reverse = rh_reverse}};

NDE_MODULE(&reversible_heun.info);
