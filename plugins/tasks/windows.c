/*
 * The windows task ([data] source = spiral | field, an ODE field):
 * generated trajectory data, fitted on windows of consecutive points
 * (torchdiffeq's ode_demo). The contract is nde/train.h's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "task_util.h"

/* The spiral's true field y' = (y^3) A, A = [[-0.1, 2], [-2, -0.1]]
 * (Chen et al. 2018, torchdiffeq's ode_demo), as an `expr` model. */
static const char spiral_truth_ini[] =
    "[field]\n"
    "plugin = expr\n"
    "state = x, y\n"
    "dx = -0.1*x^3 - 2.0*y^3\n"
    "dy = 2.0*x^3 - 0.1*y^3\n";

static const nde_key windows_keys[] = {
    {"source", NDE_KEY_WORD, NULL,
     "spiral (the demo's system and y0) or field (the true system below)"},
    TASK_GENERATED_KEYS,
    {"batch_time", NDE_KEY_INT, "10",
     "consecutive observations per mini-batch window"},
    {"noise", NDE_KEY_DOUBLE, "0",
     "standard deviation of Gaussian observation noise"},
    {"truth_solver", NDE_KEY_WORD, "tsit5",
     "solver plugin of the data's trajectory (rtol 1e-10, atol 1e-12)"},
    {NULL, 0, NULL, NULL}};

typedef struct windows {
    const char *source;        /* "spiral" or "field": the test series' id */
    const char *truth_solver;
    size_t npoints, bt, nchoices;
    size_t nseries;            /* one per y0 row (source = field)          */
    char (*ids)[24];           /* nseries ids when more than one           */
    double *tgrid;             /* npoints                                  */
    double *truth, *obs;       /* nseries x npoints x dim (obs = truth +
                                  noise)                                   */
    double *y0true;            /* nseries x dim                            */
    double *pred;              /* nseries x npoints x dim: the last
                                  evaluation's                             */
    double *ysave;             /* npoints x nseries x dim: its solve's     */
    unsigned char *mark;       /* nchoices, for task_choose of window c:
                                  start c % per-series starts of series c /
                                  per-series starts                        */
    size_t *starts;            /* rows: the batch's window starts          */
    double *y0;                /* rows x dim: the windows' first points    */
    double *target;            /* bt x rows x dim                          */
} windows;

/* The true ODE system ([data] system, true_params, y0) at the
 * observation times, one series per y0 row. */
static int field_truth(nde_task *t, windows *w, nde_section *dsec,
                       const nde_task_env *env)
{
    const size_t D = t->dim;
    nde_field *f;
    double *theta;
    int rc;

    if ((rc = task_true_system(t->ctx, env, dsec, D, 1, w->nseries,
                               w->y0true, &f, &theta)) != NDE_OK)
        return rc;
    for (size_t s = 0; s < w->nseries && rc == NDE_OK; s++)
        rc = task_solve_truth(t->ctx, w->truth_solver, f, theta,
                              w->y0true + s * D, w->npoints, w->tgrid,
                              w->truth + s * w->npoints * D);
    free(theta);
    nde_field_destroy(f);
    return rc;
}

static int spiral_truth(nde_task *t, windows *w, nde_section *dsec)
{
    static const char *const field_keys[] = {"y0", "true_params", "system",
                                             NULL};
    nde_config *c;
    nde_field *f = NULL;
    double no_params[1] = {0.0}; /* the field has none; never NULL */
    size_t i;
    int rc;

    for (i = 0; field_keys[i]; i++)
        if (nde_section_has(dsec, field_keys[i]))
            return nde_section_error(dsec, field_keys[i], t->ctx,
                                     "source = spiral fixes its system and "
                                     "y0; this key is for source = field");
    if (!(c = nde_config_create()))
        return nde_error(t->ctx, NDE_ENOMEM, "out of memory");
    w->y0true[0] = 2.0;
    w->y0true[1] = 0.0;
    if ((rc = nde_config_load_string(c, "spiral truth", spiral_truth_ini,
                                     t->ctx)) == NDE_OK &&
        (rc = nde_field_create(t->ctx, c, "field", 1, &f)) == NDE_OK)
        rc = task_solve_truth(t->ctx, w->truth_solver, f, no_params,
                              w->y0true, w->npoints, w->tgrid, w->truth);
    nde_field_destroy(f);
    nde_config_destroy(c);
    return rc;
}

/* source = field: one series per y0 row (a multiple of dim values);
 * spiral: one. */
static int count_series(nde_task *t, windows *w, nde_section *dsec)
{
    double *v = NULL;
    size_t nv = 0;
    int rc;

    w->nseries = 1;
    if (strcmp(w->source, "field") != 0 || !nde_section_has(dsec, "y0"))
        return NDE_OK;
    if ((rc = nde_get_doubles(dsec, "y0", &v, &nv, t->ctx)) != NDE_OK)
        return rc;
    free(v);
    if (nv == 0 || nv % t->dim != 0)
        return nde_section_error(dsec, "y0", t->ctx,
                                 "expected a multiple of %zu values (one "
                                 "initial state of the field's %zu per "
                                 "series), got %zu", t->dim, t->dim, nv);
    w->nseries = nv / t->dim;
    return NDE_OK;
}

static int windows_create(nde_task *t, nde_section *dsec,
                          const nde_task_env *env, nde_ctx *ctx)
{
    const size_t D = t->dim;
    const nde_plugin_info *info;
    windows *w;
    long npoints, bt;
    double t1, noise;
    size_t i, n;
    gsl_rng *r;
    int rc;

    if (!(w = t->state = calloc(1, sizeof *w)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = task_check_noise(t, dsec, env, 0)) ||
        (rc = nde_get_string(dsec, "source", &w->source, ctx)) ||
        (rc = nde_get_string(dsec, "truth_solver", &w->truth_solver, ctx)) ||
        (rc = nde_get_long_min(dsec, "npoints", 2, &npoints, ctx)) ||
        (rc = nde_get_long_min(dsec, "batch_time", 2, &bt, ctx)) ||
        (rc = nde_get_double_in(dsec, "t1", 0, 1, HUGE_VAL, 0, &t1, ctx)) ||
        (rc = nde_get_double_in(dsec, "noise", 0, 0, HUGE_VAL, 0, &noise,
                                ctx)))
        return rc;
    if (nde_plugin_find(ctx, NDE_KIND_SOLVER, w->truth_solver, &info) !=
        NDE_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", nde_ctx_message(ctx));
        return nde_section_error(dsec, "truth_solver", ctx, "%s", why);
    }
    if (strcmp(w->source, "spiral") == 0 && D != 2)
        return nde_section_error(dsec, "source", ctx,
                                 "the field's dim (%zu) must equal the "
                                 "data's dim (2)", D);
    if (bt > npoints)
        return nde_section_error(dsec, "batch_time", ctx,
                                 "%ld is more than npoints (%ld)", bt,
                                 npoints);
    if ((rc = count_series(t, w, dsec)) != NDE_OK)
        return rc;
    w->npoints = (size_t)npoints;
    w->bt = (size_t)bt;
    w->nchoices = w->nseries * (w->npoints - w->bt + 1);
    if (t->rows > w->nchoices)
        return nde_error(ctx, NDE_ECONFIG,
                         "[train] batch_size (%zu) is more than the %zu "
                         "distinct windows of [data] (npoints - batch_time "
                         "+ 1 per series)", t->rows, w->nchoices);
    n = w->nseries * w->npoints * D;
    w->tgrid = malloc(w->npoints * sizeof *w->tgrid);
    w->truth = malloc(n * sizeof *w->truth);
    w->obs = malloc(n * sizeof *w->obs);
    w->pred = malloc(n * sizeof *w->pred);
    w->ysave = malloc(n * sizeof *w->ysave);
    w->ids = calloc(w->nseries, sizeof *w->ids);
    w->y0true = calloc(w->nseries * D, sizeof *w->y0true);
    w->mark = calloc(w->nchoices, 1);
    w->starts = calloc(t->rows, sizeof *w->starts);
    w->y0 = calloc(t->rows * D, sizeof *w->y0);
    w->target = calloc(w->bt * t->rows * D, sizeof *w->target);
    if (!w->tgrid || !w->truth || !w->obs || !w->pred || !w->ysave ||
        !w->ids || !w->y0true ||
        !w->mark || !w->starts || !w->y0 || !w->target)
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    task_time_grid(w->tgrid, w->npoints, t1);
    rc = strcmp(w->source, "spiral") == 0 ? spiral_truth(t, w, dsec)
                                          : field_truth(t, w, dsec, env);
    if (rc != NDE_OK)
        return rc;
    memcpy(w->obs, w->truth, n * sizeof *w->obs);
    if (noise > 0) {
        if (!(r = gsl_rng_alloc(gsl_rng_mt19937)))
            return nde_error(ctx, NDE_ENOMEM, "out of memory");
        gsl_rng_set(r, nde_seed_derive(env->seed, NDE_STREAM_NOISE));
        for (i = 0; i < n; i++)
            w->obs[i] += gsl_ran_gaussian_ziggurat(r, noise);
        gsl_rng_free(r);
    }
    t->input_dim = t->obs_dim = D;
    t->max_saves = w->bt;
    t->max_rows = t->rows > w->nseries ? t->rows : w->nseries;
    t->ntest = w->nseries;
    for (i = 0; w->nseries > 1 && i < w->nseries; i++)
        snprintf(w->ids[i], sizeof w->ids[i], "%s%zu", w->source, i);
    return NDE_OK;
}

static void windows_destroy(nde_task *t)
{
    windows *w = t->state;

    if (!w)
        return;
    free(w->tgrid);
    free(w->truth);
    free(w->obs);
    free(w->pred);
    free(w->ysave);
    free(w->ids);
    free(w->y0true);
    free(w->mark);
    free(w->starts);
    free(w->y0);
    free(w->target);
    free(w);
}

/* batch_size distinct window starts; y0 rows and targets. */
static int windows_batch(nde_task *t, const nde_task_draw *draw,
                         nde_task_batch *b)
{
    windows *w = t->state;
    const size_t D = t->dim, B = t->rows;
    size_t r, k;

    task_choose(draw->rng, w->starts, B, w->nchoices, w->mark);
    for (r = 0; r < B; r++) {
        /* window c: series c / per, start c % per (the series' rows of
         * obs follow one another, so that is row c + (bt - 1) s) */
        const size_t per = w->nchoices / w->nseries;
        const size_t row = w->starts[r] + (w->bt - 1) * (w->starts[r] / per);
        memcpy(w->y0 + r * D, w->obs + row * D, D * sizeof *w->y0);
        for (k = 0; k < w->bt; k++)
            memcpy(w->target + (k * B + r) * D, w->obs + (row + k) * D,
                   D * sizeof *w->target);
    }
    /* every window on the times t[0..bt-1], as torchdiffeq does */
    b->t0 = w->tgrid[0];
    b->nsave = w->bt;
    b->tsave = w->tgrid;
    b->first_ct = 1;
    b->input = w->y0;
    return NDE_OK;
}

/* The MSE over every observed value; a window's first point is its y0
 * (residual 0): it counts in the mean, as in torchdiffeq's demo. */
static int windows_loss(nde_task *t, const nde_task_batch *b,
                        const double *obs, double *value, double *obsbar)
{
    const windows *w = t->state;

    *value = task_mse(obs, w->target, b->nsave * t->rows * t->dim, obsbar);
    return NDE_OK;
}

/* The whole noise-free trajectories predicted from the true y0 rows. */
static int windows_evaluate(nde_task *t, const double *theta,
                            const nde_task_model *m, nde_task_metrics *r)
{
    windows *w = t->state;
    const size_t n = w->npoints, S = w->nseries, D = t->dim;
    const double **truth = malloc(S * sizeof *truth);
    double **pred = malloc(S * sizeof *pred);
    size_t *len = malloc(S * sizeof *len);
    int rc;

    (void)theta;
    if (!truth || !pred || !len) {
        rc = nde_error(t->ctx, NDE_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = m->predict(m, w->tgrid[0], w->y0true, S, w->tgrid[n - 1], n,
                         w->tgrid, w->ysave)) != NDE_OK)
        goto done;
    for (size_t s = 0; s < S; s++) {
        truth[s] = w->truth + s * n * D;
        pred[s] = w->pred + s * n * D;
        len[s] = n;
        for (size_t k = 0; k < n; k++)
            memcpy(pred[s] + k * D, w->ysave + (k * S + s) * D,
                   D * sizeof *w->pred);
    }
    r->test_loss = task_test_mse(S, len, D, pred, truth);
done:
    free(truth);
    free(pred);
    free(len);
    return rc;
}

static uint64_t windows_digest(const nde_task *t)
{
    const windows *w = t->state;
    const size_t n = w->nseries * w->npoints * t->dim;
    task_digest d;

    task_digest_init(&d);
    task_digest_bytes(&d, w->tgrid, w->npoints * sizeof *w->tgrid);
    task_digest_bytes(&d, w->obs, n * sizeof *w->obs);
    task_digest_bytes(&d, w->truth, n * sizeof *w->truth);
    return task_digest_final(&d);
}

static size_t windows_test_series(const nde_task *t, size_t i,
                                  const char **id, const double **time,
                                  const double **pred)
{
    const windows *w = t->state;

    *id = w->nseries > 1 ? w->ids[i] : w->source;
    *time = w->tgrid;
    *pred = w->pred + i * w->npoints * t->dim;
    return w->npoints;
}

static const nde_task_type nde_task_windows = {
    .info = NDE_TASK_INFO(
        .name = "windows",
        .description = "trajectory windows of generated data (spiral, field)",
        .keys = windows_keys,
        .version = "1"),
    .create = windows_create,
    .destroy = windows_destroy,
    .batch = windows_batch,
    .loss = windows_loss,
    .evaluate = windows_evaluate,
    .digest = windows_digest,
    .test_series = windows_test_series,
};

NDE_MODULE(&nde_task_windows.info);
