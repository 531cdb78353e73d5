/*
 * damped.c - an nde task plugin written outside the nde tree: fit a
 * damped oscillation seen through one coordinate,
 *
 *     x(t) = a exp(-t / 10) cos t,   t = 0, t1 / (n - 1), ..., t1,
 *
 * a different amplitude a in [0.5, 1.5] in every row of every batch. One
 * observed number cannot carry an oscillator's phase, so the ODE state is
 * augmented (Dupont et al. 2019): the field may have any dim >= 2, the lift
 * pads x(0) with zeros, y0 = (x(0), 0, ..., 0), and a learned linear
 * readout, obs = w . y + c, maps the state back to x (the task's own
 * parameters w and c, trained with the field's). The loss is the mean
 * squared error at the saves after t0.
 *
 * It shows what a task provides: keys, create/destroy, its parameters
 * (init_params, param_name), batch, a lift and a readout with their VJPs
 * (the VJPs add into their outputs), the loss with its cotangent, and
 * evaluate. Train with `[data] source = damped` (damped.ini); check with
 * `nde check task damped` (the Makefile's `make check`).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nde/nde.h>

static const nde_key damped_keys[] = {
    {"source", NDE_KEY_WORD, NULL, "damped"},
    {"npoints", NDE_KEY_INT, "11", "observation times on [0, t1]"},
    {"t1", NDE_KEY_DOUBLE, "5", "end of the observed interval"},
    {NULL, 0, NULL, NULL}};

typedef struct damped {
    size_t n;
    double *t;          /* n observation times                         */
    double *a;          /* rows: the batch's amplitudes, its input      */
    double *target;     /* n x rows: the batch's x(t)                   */
    double *y0, *pred;  /* evaluation: dim, n x dim                     */
} damped;

static double x_of(double a, double t) { return a * exp(-t / 10.0) * cos(t); }

static int damped_create(nde_task *t, nde_section *sec,
                         const nde_task_env *env, nde_ctx *ctx)
{
    damped *s;
    long n;
    double t1;
    int rc;

    (void)env;
    if (!(s = t->state = calloc(1, sizeof *s)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = nde_get_long(sec, "npoints", &n, ctx)) ||
        (rc = nde_get_double(sec, "t1", &t1, ctx)))
        return rc;
    if (n < 2)
        return nde_section_error(sec, "npoints", ctx, "at least 2");
    if (!(t1 > 0))
        return nde_section_error(sec, "t1", ctx, "must be > 0");
    if (t->dim < 2)
        return nde_section_error(sec, "source", ctx, "the field's dim is "
                                 "%zu: an oscillation needs at least 2",
                                 t->dim);
    s->n = (size_t)n;
    s->t = malloc(s->n * sizeof *s->t);
    s->a = malloc(t->rows * sizeof *s->a);
    s->target = malloc(s->n * t->rows * sizeof *s->target);
    s->y0 = calloc(t->dim, sizeof *s->y0);
    s->pred = malloc(s->n * t->dim * sizeof *s->pred);
    if (!s->t || !s->a || !s->target || !s->y0 || !s->pred)
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    for (size_t k = 0; k < s->n; k++)
        s->t[k] = t1 * (double)k / (double)(s->n - 1);
    t->nparams = t->dim + 1;    /* w (dim), c */
    t->input_dim = 1;           /* x(0)       */
    t->obs_dim = 1;             /* x(t)       */
    t->max_saves = s->n;
    t->max_rows = t->rows;
    t->ntest = 1;
    return NDE_OK;
}

static void damped_destroy(nde_task *t)
{
    damped *s = t->state;

    if (!s)
        return;
    free(s->t);
    free(s->a);
    free(s->target);
    free(s->y0);
    free(s->pred);
    free(s);
}

/* w = (1, 0, ..., 0), c = 0: at first the readout is the first
 * coordinate (the values do not depend on the seed). */
static int damped_init_params(nde_task *t, double *theta, uint64_t seed)
{
    (void)seed;
    memset(theta, 0, t->nparams * sizeof *theta);
    theta[0] = 1.0;
    return NDE_OK;
}

static void damped_param_name(const nde_task *t, size_t i, char *buf,
                              size_t size)
{
    if (i < t->dim)
        snprintf(buf, size, "readout.w[%zu]", i);
    else
        snprintf(buf, size, "readout.c");
}

/* The amplitudes depend on the iteration alone (and the run's seed). */
static int damped_batch(nde_task *t, const nde_task_draw *draw,
                        nde_task_batch *b)
{
    damped *s = t->state;
    const size_t B = t->rows;

    for (size_t r = 0; r < B; r++) {
        uint64_t u = nde_seed_derive(draw->seed,
                                     (uint64_t)draw->iteration * B + r);
        s->a[r] = 0.5 + (double)(u >> 11) * 0x1p-53;
        for (size_t k = 0; k < s->n; k++)
            s->target[k * B + r] = x_of(s->a[r], s->t[k]);
    }
    b->t0 = s->t[0];
    b->nsave = s->n;
    b->tsave = s->t;
    b->first_ct = 1;    /* the save at t0 is y0 itself */
    b->input = s->a;
    return NDE_OK;
}

static int damped_lift(nde_task *t, const double *theta,
                       const nde_task_batch *b, double *y0)
{
    (void)theta;
    memset(y0, 0, t->rows * t->dim * sizeof *y0);
    for (size_t r = 0; r < t->rows; r++)
        y0[r * t->dim] = b->input[r];
    return NDE_OK;
}

/* The padding has no parameters: nothing to add. */
static int damped_lift_vjp(nde_task *t, const double *theta,
                           const nde_task_batch *b, const double *ybar0,
                           double *thetabar)
{
    (void)t;
    (void)theta;
    (void)b;
    (void)ybar0;
    (void)thetabar;
    return NDE_OK;
}

/* obs = w . y + c for each of n states (rows of dim). */
static void read_states(const nde_task *t, const double *theta,
                        const double *y, size_t n, double *obs)
{
    const size_t D = t->dim;

    for (size_t i = 0; i < n; i++) {
        double o = theta[D];
        for (size_t d = 0; d < D; d++)
            o += theta[d] * y[i * D + d];
        obs[i] = o;
    }
}

static int damped_readout(nde_task *t, const double *theta,
                          const nde_task_batch *b, const double *y,
                          double *obs)
{
    read_states(t, theta, y, b->nsave * t->rows, obs);
    return NDE_OK;
}

/* ybar += obsbar w, w += obsbar y, c += obsbar. */
static int damped_readout_vjp(nde_task *t, const double *theta,
                              const nde_task_batch *b, const double *y,
                              const double *obsbar, double *ybar,
                              double *thetabar)
{
    const size_t D = t->dim;

    for (size_t i = 0; i < b->nsave * t->rows; i++) {
        for (size_t d = 0; d < D; d++) {
            ybar[i * D + d] += obsbar[i] * theta[d];
            thetabar[d] += obsbar[i] * y[i * D + d];
        }
        thetabar[D] += obsbar[i];
    }
    return NDE_OK;
}

/* Mean squared error at the saves after t0; obsbar is its gradient. */
static int damped_loss(nde_task *t, const nde_task_batch *b,
                       const double *obs, double *value, double *obsbar)
{
    const damped *s = t->state;
    const size_t B = t->rows;
    const double m = (double)((b->nsave - 1) * B);
    double sum = 0.0;

    for (size_t i = 0; i < B; i++)
        obsbar[i] = 0.0;
    for (size_t i = B; i < b->nsave * B; i++) {
        const double d = obs[i] - s->target[i];
        sum += d * d;
        obsbar[i] = 2.0 * d / m;
    }
    *value = sum / m;
    return NDE_OK;
}

/* The amplitude-1 oscillation predicted from x(0) = 1. */
static int damped_evaluate(nde_task *t, const double *theta,
                           const nde_task_model *m, nde_task_metrics *r)
{
    damped *s = t->state;
    double sum = 0.0, x;
    int rc;

    s->y0[0] = 1.0;
    if ((rc = m->predict(m, s->t[0], s->y0, 1, s->t[s->n - 1], s->n, s->t,
                         s->pred)) != NDE_OK)
        return rc;
    for (size_t k = 1; k < s->n; k++) {
        read_states(t, theta, s->pred + k * t->dim, 1, &x);
        sum += (x - x_of(1.0, s->t[k])) * (x - x_of(1.0, s->t[k]));
    }
    r->test_loss = sum / (double)(s->n - 1);
    return NDE_OK;
}

static const nde_task_type damped_type = {
    .info = NDE_TASK_INFO(
        .name = "damped",
        .description = "a damped oscillation seen through one coordinate: "
                       "zero-padded lift, learned linear readout",
        .keys = damped_keys,
        .version = "1"),
    .create = damped_create,
    .destroy = damped_destroy,
    .init_params = damped_init_params,
    .param_name = damped_param_name,
    .batch = damped_batch,
    .lift = damped_lift,
    .lift_vjp = damped_lift_vjp,
    .readout = damped_readout,
    .readout_vjp = damped_readout_vjp,
    .loss = damped_loss,
    .evaluate = damped_evaluate,
};

NDE_MODULE(&damped_type.info);
