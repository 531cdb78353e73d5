/*
 * badtask.c - a task with one deliberate bug for `nde check task` to
 * catch, chosen by [data] bug:
 *   loss     the loss's cotangent is half its gradient
 *   readout  readout_vjp assigns ybar (=) instead of adding (+=)
 *   lift     lift_vjp assigns thetabar
 *   saves    create declares fewer save times than a batch has
 * Otherwise a small correct task: targets exp(-t) at t = 0, 1/4, ..., 1;
 * lift y0 = (a x0, 0, ...), readout obs = w y[0], parameters (a, w).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

#define NT 5

static const nde_key badtask_keys[] = {
    {"source", NDE_KEY_WORD, NULL, "badtask"},
    {"bug", NDE_KEY_WORD, "loss", "loss | readout | lift | saves"},
    {NULL, 0, NULL, NULL}};

typedef struct badtask {
    char bug;                 /* 'l'oss, 'r'eadout, l'i'ft, 's'aves     */
    double t[NT], x[NT];
    double *input;            /* rows x 1                               */
} badtask;

static int badtask_create(nde_task *t, nde_section *sec,
                          const nde_task_env *env, nde_ctx *ctx)
{
    const char *bug;
    badtask *s;
    int rc;

    (void)env;
    if (!(s = t->state = calloc(1, sizeof *s)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = nde_get_string(sec, "bug", &bug, ctx)) != NDE_OK)
        return rc;
    s->bug = strcmp(bug, "lift") == 0 ? 'i' : bug[0];
    for (size_t k = 0; k < NT; k++) {
        s->t[k] = 0.25 * (double)k;
        s->x[k] = exp(-s->t[k]);
    }
    if (!(s->input = malloc(t->rows * sizeof *s->input)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    for (size_t r = 0; r < t->rows; r++)
        s->input[r] = 1.0 + 0.5 * (double)r;
    t->nparams = 2;
    t->input_dim = 1;
    t->obs_dim = 1;
    t->max_saves = s->bug == 's' ? NT - 1 : NT;
    t->max_rows = t->rows;
    return NDE_OK;
}

static void badtask_destroy(nde_task *t)
{
    badtask *s = t->state;

    if (s)
        free(s->input);
    free(s);
}

static int badtask_init_params(nde_task *t, double *theta, uint64_t seed)
{
    (void)t;
    (void)seed;
    theta[0] = 1.0;
    theta[1] = 0.5;
    return NDE_OK;
}

static void badtask_param_name(const nde_task *t, size_t i, char *buf,
                               size_t size)
{
    (void)t;
    snprintf(buf, size, i == 0 ? "lift.a" : "readout.w");
}

static int badtask_batch(nde_task *t, const nde_task_draw *draw,
                         nde_task_batch *b)
{
    badtask *s = t->state;

    (void)draw;
    b->t0 = 0.0;
    b->nsave = NT;
    b->tsave = s->t;
    b->first_ct = 1;
    b->input = s->input;
    return NDE_OK;
}

static int badtask_lift(nde_task *t, const double *theta,
                        const nde_task_batch *b, double *y0)
{
    memset(y0, 0, t->rows * t->dim * sizeof *y0);
    for (size_t r = 0; r < t->rows; r++)
        y0[r * t->dim] = theta[0] * b->input[r];
    return NDE_OK;
}

static int badtask_lift_vjp(nde_task *t, const double *theta,
                            const nde_task_batch *b, const double *ybar0,
                            double *thetabar)
{
    const badtask *s = t->state;
    double g = 0.0;

    (void)theta;
    for (size_t r = 0; r < t->rows; r++)
        g += ybar0[r * t->dim] * b->input[r];
    if (s->bug == 'i')
        thetabar[0] = g;
    else
        thetabar[0] += g;
    return NDE_OK;
}

static int badtask_readout(nde_task *t, const double *theta,
                           const nde_task_batch *b, const double *y,
                           double *obs)
{
    for (size_t i = 0; i < b->nsave * t->rows; i++)
        obs[i] = theta[1] * y[i * t->dim];
    return NDE_OK;
}

static int badtask_readout_vjp(nde_task *t, const double *theta,
                               const nde_task_batch *b, const double *y,
                               const double *obsbar, double *ybar,
                               double *thetabar)
{
    const badtask *s = t->state;

    for (size_t i = 0; i < b->nsave * t->rows; i++) {
        if (s->bug == 'r')
            ybar[i * t->dim] = obsbar[i] * theta[1];
        else
            ybar[i * t->dim] += obsbar[i] * theta[1];
        thetabar[1] += obsbar[i] * y[i * t->dim];
    }
    return NDE_OK;
}

/* MSE of the saves after t0 against exp(-t). */
static int badtask_loss(nde_task *t, const nde_task_batch *b,
                        const double *obs, double *value, double *obsbar)
{
    const badtask *s = t->state;
    const double n = (double)((b->nsave - 1) * t->rows);
    const double half = s->bug == 'l' ? 0.5 : 1.0;
    double sum = 0.0;

    for (size_t k = 0; k < b->nsave; k++)
        for (size_t r = 0; r < t->rows; r++) {
            const size_t i = k * t->rows + r;
            const double d = k ? obs[i] - s->x[k] : 0.0;
            sum += d * d;
            obsbar[i] = half * 2.0 * d / n;
        }
    *value = sum / n;
    return NDE_OK;
}

static int badtask_evaluate(nde_task *t, const double *theta,
                            const nde_task_model *m, nde_task_metrics *r)
{
    (void)t;
    (void)theta;
    (void)m;
    r->test_loss = NAN;
    return NDE_OK;
}

static const nde_task_type badtask_type = {
    .info = NDE_TASK_INFO(
        .name = "badtask",
        .description = "test task with a wrong cotangent or VJP",
        .keys = badtask_keys,
        .version = "1"),
    .create = badtask_create,
    .destroy = badtask_destroy,
    .init_params = badtask_init_params,
    .param_name = badtask_param_name,
    .batch = badtask_batch,
    .lift = badtask_lift,
    .lift_vjp = badtask_lift_vjp,
    .readout = badtask_readout,
    .readout_vjp = badtask_readout_vjp,
    .loss = badtask_loss,
    .evaluate = badtask_evaluate,
};

NDE_MODULE(&badtask_type.info);
