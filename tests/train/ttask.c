/*
 * ttask.c - a test task module for tests/train: an augmented neural ODE
 * in miniature, the case the data modes could not express. The data are
 * x(t) = exp(-t) at t = 0, 1/4, ..., 1; the field's state has dim >= 2
 * (more than the data's one component): the lift is y0 = (x0, a x0, 0,
 * ...) with a learned `a` (the task's one parameter, "lift.a"), the
 * readout the first component. `lie = saves` declares fewer save times
 * than a batch has, for the trainer to refuse.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

#define NT 5

static const nde_key ttask_keys[] = {
    {"source", NDE_KEY_WORD, NULL, "ttask"},
    {"lie", NDE_KEY_WORD, "none", "none | saves (declare too few)"},
    {NULL, 0, NULL, NULL}};

typedef struct ttask {
    double t[NT], x[NT];
    double *input;             /* rows x 1: x0 = 1                       */
    double *y0, *pred;         /* rows x dim, NT x dim                   */
} ttask;

static int ttask_create(nde_task *t, nde_section *sec,
                        const nde_task_env *env, nde_ctx *ctx)
{
    const char *lie;
    ttask *s;
    size_t k;
    int rc;

    (void)env;
    if (!(s = t->state = calloc(1, sizeof *s)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = nde_get_string(sec, "lie", &lie, ctx)) != NDE_OK)
        return rc;
    if (t->dim < 2)
        return nde_section_error(sec, "source", ctx, "needs dim >= 2");
    for (k = 0; k < NT; k++) {
        s->t[k] = 0.25 * (double)k;
        s->x[k] = exp(-s->t[k]);
    }
    s->input = malloc(t->rows * sizeof *s->input);
    s->y0 = malloc(t->dim * sizeof *s->y0);
    s->pred = malloc(NT * t->dim * sizeof *s->pred);
    if (!s->input || !s->y0 || !s->pred)
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    for (k = 0; k < t->rows; k++)
        s->input[k] = 1.0;
    t->nparams = 1;
    t->input_dim = 1;
    t->obs_dim = 1;
    t->max_saves = strcmp(lie, "saves") == 0 ? 2 : NT;
    t->max_rows = t->rows;
    t->ntest = 0;
    return NDE_OK;
}

static void ttask_destroy(nde_task *t)
{
    ttask *s = t->state;

    if (!s)
        return;
    free(s->input);
    free(s->y0);
    free(s->pred);
    free(s);
}

static int ttask_init_params(nde_task *t, double *theta, uint64_t seed)
{
    (void)t;
    (void)seed;
    theta[0] = 0.5;
    return NDE_OK;
}

static void ttask_param_name(const nde_task *t, size_t i, char *buf,
                             size_t size)
{
    (void)t;
    (void)i;
    snprintf(buf, size, "lift.a");
}

static int ttask_batch(nde_task *t, const nde_task_draw *draw,
                       nde_task_batch *b)
{
    ttask *s = t->state;

    (void)draw;
    b->t0 = 0.0;
    b->nsave = NT;
    b->tsave = s->t;
    b->first_ct = 1;
    b->input = s->input;
    return NDE_OK;
}

static void lift_rows(const nde_task *t, const double *theta,
                      const double *x, size_t n, double *y0)
{
    memset(y0, 0, n * t->dim * sizeof *y0);
    for (size_t r = 0; r < n; r++) {
        y0[r * t->dim] = x[r];
        y0[r * t->dim + 1] = theta[0] * x[r];
    }
}

static int ttask_lift(nde_task *t, const double *theta,
                      const nde_task_batch *b, double *y0)
{
    lift_rows(t, theta, b->input, t->rows, y0);
    return NDE_OK;
}

static int ttask_lift_vjp(nde_task *t, const double *theta,
                          const nde_task_batch *b, const double *ybar0,
                          double *thetabar)
{
    (void)theta;
    for (size_t r = 0; r < t->rows; r++)
        thetabar[0] += ybar0[r * t->dim + 1] * b->input[r];
    return NDE_OK;
}

static int ttask_readout(nde_task *t, const double *theta,
                         const nde_task_batch *b, const double *y,
                         double *obs)
{
    (void)theta;
    for (size_t i = 0; i < b->nsave * t->rows; i++)
        obs[i] = y[i * t->dim];
    return NDE_OK;
}

static int ttask_readout_vjp(nde_task *t, const double *theta,
                             const nde_task_batch *b, const double *y,
                             const double *obsbar, double *ybar,
                             double *thetabar)
{
    (void)theta;
    (void)y;
    (void)thetabar;
    for (size_t i = 0; i < b->nsave * t->rows; i++)
        ybar[i * t->dim] += obsbar[i];
    return NDE_OK;
}

/* MSE of the saves after t0 against exp(-t). */
static int ttask_loss(nde_task *t, const nde_task_batch *b,
                      const double *obs, double *value, double *obsbar)
{
    const ttask *s = t->state;
    const double n = (double)((NT - 1) * t->rows);
    double sum = 0.0;

    for (size_t k = 0; k < b->nsave; k++)
        for (size_t r = 0; r < t->rows; r++) {
            const size_t i = k * t->rows + r;
            const double d = k ? obs[i] - s->x[k] : 0.0;
            sum += d * d;
            obsbar[i] = 2.0 * d / n;
        }
    *value = sum / n;
    return NDE_OK;
}

static int ttask_evaluate(nde_task *t, const double *theta,
                          const nde_task_model *m, nde_task_metrics *r)
{
    ttask *s = t->state;
    double sum = 0.0;
    int rc;

    lift_rows(t, theta, s->input, 1, s->y0);
    if ((rc = m->predict(m, 0.0, s->y0, 1, s->t[NT - 1], NT, s->t,
                         s->pred)) != NDE_OK)
        return rc;
    for (size_t k = 1; k < NT; k++)
        sum += (s->pred[k * t->dim] - s->x[k]) * (s->pred[k * t->dim] - s->x[k]);
    r->test_loss = sum / (NT - 1);
    return NDE_OK;
}

static const nde_task_type ttask_type = {
    .info = NDE_TASK_INFO(
        .name = "ttask",
        .description = "test task: exp(-t) through an augmented state",
        .keys = ttask_keys,
        .version = "1"),
    .create = ttask_create,
    .destroy = ttask_destroy,
    .init_params = ttask_init_params,
    .param_name = ttask_param_name,
    .batch = ttask_batch,
    .lift = ttask_lift,
    .lift_vjp = ttask_lift_vjp,
    .readout = ttask_readout,
    .readout_vjp = ttask_readout_vjp,
    .loss = ttask_loss,
    .evaluate = ttask_evaluate,
};

NDE_MODULE(&ttask_type.info);
