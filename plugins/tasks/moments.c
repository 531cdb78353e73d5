/*
 * The moments task ([data] source = field with an SDE field): the mean
 * and variance of sample paths of the true SDE, fitted by the moments of
 * the batch's model paths (nde_moments_loss). The contract is
 * nde/train.h's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "task_util.h"

static const nde_key moments_keys[] = {
    {"source", NDE_KEY_WORD, NULL, "field: the true system below"},
    TASK_GENERATED_KEYS,
    {"paths", NDE_KEY_INT, "1000",
     "sample paths of the true system whose mean and variance are the "
     "data"},
    {"dt", NDE_KEY_DOUBLE, "0",
     "step of the data's simulation (0 = the [solver] dt / 10)"},
    {"seed", NDE_KEY_INT, "1",
     "seed of the data's Brownian path (independent of [train] seed)"},
    {"eval_paths", NDE_KEY_INT, "1000",
     "model paths of each evaluation (one fixed Brownian path, so "
     "evaluations compare)"},
    {NULL, 0, NULL, NULL}};

typedef struct moments {
    size_t npoints, eval_paths;
    double *tgrid;                  /* npoints                            */
    double *y0true;                 /* dim                                */
    double *data_mean, *data_var;   /* npoints x dim                      */
    double *model_mean, *model_var; /* npoints x dim, the last evaluation */
    double *eval_y;                 /* npoints x eval_paths x dim         */
    double *eval_y0;                /* eval_paths x dim: y0 in every row  */
    double *y0;                     /* rows x dim: y0 in every row        */
} moments;

/* `paths` paths of the true SDE from y0, simulated with the configured
 * solver type on [data] dt, reduced to their mean and variance at the
 * observation times. */
static int sde_truth(nde_task *t, moments *s, nde_section *dsec,
                     const nde_task_env *env)
{
    const size_t D = t->dim, T = s->npoints;
    nde_section *ssec = nde_config_section(env->cfg, "solver");
    nde_field *f = NULL;
    nde_solver *sv = NULL;
    nde_brownian *bm = NULL;
    nde_solve_opts o;
    nde_stats st;
    double *theta = NULL, *y0 = NULL, *y = NULL, dt;
    long paths, seed;
    size_t N, b;
    int rc;

    if ((rc = nde_get_long_min(dsec, "paths", 2, &paths, t->ctx)) ||
        (rc = nde_get_long_min(dsec, "seed", 0, &seed, t->ctx)) ||
        (rc = nde_get_double_in(dsec, "dt", 0, 0, HUGE_VAL, 0, &dt,
                                t->ctx)))
        return rc;
    N = (size_t)paths;
    if ((rc = task_true_system(t->ctx, env, dsec, D, N, 1, s->y0true, &f,
                               &theta)) != NDE_OK ||
        (rc = nde_solver_create(t->ctx, env->cfg, "solver", f, &sv)) !=
            NDE_OK ||
        (rc = nde_solve_opts_from_section(&o, sv->type, ssec, t->ctx)) !=
            NDE_OK ||
        (rc = nde_brownian_create(t->ctx, N * nde_field_brownian_dim(f),
                                  &bm)) != NDE_OK)
        goto done;
    if (dt == 0.0)
        dt = o.dt / 10.0;
    o.dt = dt;
    o.brownian = bm;
    o.max_steps = TASK_TRUTH_MAX_STEPS;
    y0 = malloc(N * D * sizeof *y0);
    y = malloc(T * N * D * sizeof *y);
    if (!y0 || !y) {
        rc = nde_error(t->ctx, NDE_ENOMEM, "out of memory");
        goto done;
    }
    for (b = 0; b < N; b++)
        memcpy(y0 + b * D, s->y0true, D * sizeof *y0);
    if ((rc = nde_brownian_reset(bm, nde_seed_derive((uint64_t)seed, 0),
                                 s->tgrid[0], s->tgrid[T - 1], dt,
                                 N * nde_field_brownian_dim(f))) != NDE_OK ||
        (rc = nde_solver_set_batch(sv, N)) != NDE_OK ||
        (rc = nde_solve(sv, &o, theta, s->tgrid[0], y0, s->tgrid[T - 1], T,
                        s->tgrid, y, &st)) != NDE_OK) {
        nde_error_prefix(t->ctx, "[data]: simulating the true SDE with "
                         "dt = %g ([data] dt; default the [solver] dt / 10) "
                         "and at most %ld steps", dt, TASK_TRUTH_MAX_STEPS);
        goto done;
    }
    nde_moments_loss(y, T, N, D, s->data_mean, s->data_var, NULL,
                     s->data_mean, s->data_var);
done:
    free(y);
    free(y0);
    nde_brownian_destroy(bm);
    nde_solver_destroy(sv);
    free(theta);
    nde_field_destroy(f);
    return rc;
}

static int moments_create(nde_task *t, nde_section *dsec,
                          const nde_task_env *env, nde_ctx *ctx)
{
    static const char *const unused[] = {"batch_time", "noise", NULL};
    const size_t D = t->dim;
    moments *s;
    long npoints, eval_paths;
    double t1;
    size_t i, n;
    int rc;

    if (!(s = t->state = calloc(1, sizeof *s)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = task_check_noise(t, dsec, env, 1)) ||
        (rc = nde_get_long_min(dsec, "eval_paths", 2, &eval_paths, ctx)))
        return rc;
    for (i = 0; unused[i]; i++)
        if (nde_section_has(dsec, unused[i]))
            return nde_section_error(dsec, unused[i], ctx,
                                     "not used with an SDE field (each "
                                     "iteration fits the whole interval's "
                                     "moments; the paths are the noise)");
    if ((rc = nde_get_long_min(dsec, "npoints", 2, &npoints, ctx)) ||
        (rc = nde_get_double_in(dsec, "t1", 0, 1, HUGE_VAL, 0, &t1, ctx)))
        return rc;
    if (t->rows < 2)
        return nde_error(ctx, NDE_ECONFIG,
                         "[train] batch_size (%zu) must be at least 2 for "
                         "an SDE field (the loss needs the batch's "
                         "variance)", t->rows);
    s->eval_paths = (size_t)eval_paths;
    s->npoints = (size_t)npoints;
    n = s->npoints * D;
    s->tgrid = malloc(s->npoints * sizeof *s->tgrid);
    s->y0true = calloc(D, sizeof *s->y0true);
    s->data_mean = calloc(n, sizeof *s->data_mean);
    s->data_var = calloc(n, sizeof *s->data_var);
    s->model_mean = calloc(n, sizeof *s->model_mean);
    s->model_var = calloc(n, sizeof *s->model_var);
    s->eval_y = malloc(n * s->eval_paths * sizeof *s->eval_y);
    s->eval_y0 = malloc(D * s->eval_paths * sizeof *s->eval_y0);
    s->y0 = malloc(D * t->rows * sizeof *s->y0);
    if (!s->tgrid || !s->y0true || !s->data_mean || !s->data_var ||
        !s->model_mean || !s->model_var || !s->eval_y || !s->eval_y0 ||
        !s->y0)
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    task_time_grid(s->tgrid, s->npoints, t1);
    if ((rc = sde_truth(t, s, dsec, env)) != NDE_OK)
        return rc;
    for (i = 0; i < s->eval_paths; i++)
        memcpy(s->eval_y0 + i * D, s->y0true, D * sizeof *s->eval_y0);
    for (i = 0; i < t->rows; i++)
        memcpy(s->y0 + i * D, s->y0true, D * sizeof *s->y0);
    t->input_dim = t->obs_dim = D;
    t->max_saves = s->npoints;
    t->max_rows = s->eval_paths > t->rows ? s->eval_paths : t->rows;
    t->ntest = 2;
    return NDE_OK;
}

static void moments_destroy(nde_task *t)
{
    moments *s = t->state;

    if (!s)
        return;
    free(s->tgrid);
    free(s->y0true);
    free(s->data_mean);
    free(s->data_var);
    free(s->model_mean);
    free(s->model_var);
    free(s->eval_y);
    free(s->eval_y0);
    free(s->y0);
    free(s);
}

/* Every row a path from the true y0 on the whole interval; the draws are
 * the Brownian path's (the trainer's). */
static int moments_batch(nde_task *t, const nde_task_draw *draw,
                         nde_task_batch *b)
{
    const moments *s = t->state;

    (void)draw;
    b->t0 = s->tgrid[0];
    b->nsave = s->npoints;
    b->tsave = s->tgrid;
    b->first_ct = 1;
    b->input = s->y0;
    return NDE_OK;
}

static int moments_loss(nde_task *t, const nde_task_batch *b,
                        const double *obs, double *value, double *obsbar)
{
    const moments *s = t->state;

    *value = nde_moments_loss(obs, b->nsave, t->rows, t->dim, s->data_mean,
                              s->data_var, obsbar, NULL, NULL);
    return NDE_OK;
}

/* The moments loss of eval_paths model paths of the fixed evaluation
 * path. */
static int moments_evaluate(nde_task *t, const double *theta,
                            const nde_task_model *m, nde_task_metrics *r)
{
    moments *s = t->state;
    const size_t T = s->npoints;
    int rc;

    (void)theta;
    if ((rc = m->predict(m, s->tgrid[0], s->eval_y0, s->eval_paths,
                         s->tgrid[T - 1], T, s->tgrid, s->eval_y)) != NDE_OK)
        return rc;
    r->test_loss = nde_moments_loss(s->eval_y, T, s->eval_paths, t->dim,
                                    s->data_mean, s->data_var, NULL,
                                    s->model_mean, s->model_var);
    return NDE_OK;
}

static uint64_t moments_digest(const nde_task *t)
{
    const moments *s = t->state;
    const size_t n = s->npoints * t->dim;
    task_digest d;

    task_digest_init(&d);
    task_digest_bytes(&d, s->tgrid, s->npoints * sizeof *s->tgrid);
    task_digest_bytes(&d, s->data_mean, n * sizeof *s->data_mean);
    task_digest_bytes(&d, s->data_var, n * sizeof *s->data_var);
    return task_digest_final(&d);
}

/* The held-out "series": the model's mean (id mean) and variance (var)
 * against the data's. */
static size_t moments_test_series(const nde_task *t, size_t i,
                                  const char **id, const double **time,
                                  const double **pred)
{
    const moments *s = t->state;

    (void)t;
    *id = i == 0 ? "mean" : "var";
    *time = s->tgrid;
    *pred = i == 0 ? s->model_mean : s->model_var;
    return s->npoints;
}

static const nde_task_type nde_task_moments = {
    .info = NDE_TASK_INFO(
        .name = "moments",
        .description = "mean and variance of SDE sample paths (field, SDE)",
        .keys = moments_keys,
        .version = "1"),
    .create = moments_create,
    .destroy = moments_destroy,
    .batch = moments_batch,
    .loss = moments_loss,
    .evaluate = moments_evaluate,
    .digest = moments_digest,
    .test_series = moments_test_series,
};

NDE_MODULE(&nde_task_moments.info);
