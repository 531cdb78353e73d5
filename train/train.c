/*
 * The trainer: data task, mean-squared-error loss (time series) or
 * encoder -> ODE -> decoder -> softmax cross-entropy (classification) with
 * its cotangents, one batched forward solve and one adjoint pass per
 * iteration, Adam.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "nde/nde.h"
#include "nde/train.h"
#include "train_internal.h"

const nde_key nde_train_keys[] = {
    {"iterations", NDE_KEY_INT, "2000", "total training iterations"},
    {"batch_size", NDE_KEY_INT, "20", "rows (windows) per mini-batch"},
    {"lr", NDE_KEY_DOUBLE, "1e-3", "Adam learning rate"},
    {"seed", NDE_KEY_INT, "1",
     "seed of every random stream (batches, initialisation, noise)"},
    {"eval_every", NDE_KEY_INT, "100",
     "evaluate on the held-out set every this many iterations (0 = only at "
     "the end)"},
    {"checkpoint", NDE_KEY_TEXT, "", "checkpoint file (none if absent)"},
    {"checkpoint_every", NDE_KEY_INT, "500",
     "write the checkpoint every this many iterations (0 = only at the "
     "end)"},
    {"metrics", NDE_KEY_TEXT, "",
     "metrics file: one JSON object per iteration (none if absent)"},
    {"lr_decay", NDE_KEY_DOUBLE, "1",
     "learning rate of iteration i (from 0) is lr * lr_decay^i"},
    {"beta1", NDE_KEY_DOUBLE, "0.9", "Adam first-moment decay"},
    {"beta2", NDE_KEY_DOUBLE, "0.999", "Adam second-moment decay"},
    {"eps", NDE_KEY_DOUBLE, "1e-8", "Adam denominator guard"},
    {"weight_decay", NDE_KEY_DOUBLE, "0",
     "L2 penalty added to the gradient (as torch.optim.Adam)"},
    {"clip", NDE_KEY_DOUBLE, "0",
     "clip the gradient's Euclidean norm to this (0 = off)"},
    {"data_changed", NDE_KEY_WORD, "warn",
     "on --resume, data that differ from the checkpoint's (by digest): "
     "warn | refuse"},
    {"loss", NDE_KEY_WORD, "auto",
     "time series: mse | moments (mean and variance of the batch's paths "
     "against the data's, SDE fields only); auto = mse for ODE fields, "
     "moments for SDE fields"},
    {NULL, 0, NULL, NULL}};

const nde_key nde_data_keys[] = {
    {"source", NDE_KEY_WORD, NULL,
     "where the data come from: spiral | field | csv | idx"},
    {"npoints", NDE_KEY_INT, "1000", "observation times on [0, t1]"},
    {"t1", NDE_KEY_DOUBLE, "25", "end of the observed interval"},
    {"batch_time", NDE_KEY_INT, "10",
     "consecutive observations per mini-batch window"},
    {"noise", NDE_KEY_DOUBLE, "0",
     "standard deviation of Gaussian observation noise"},
    {"y0", NDE_KEY_DOUBLES, "", "source = field: the true initial state"},
    {"system", NDE_KEY_WORD, "field",
     "source = field: the section of the true system: the model's own "
     "[field], or a [field.NAME] section (e.g. an expr SDE as the truth "
     "of a neural SDE)"},
    {"true_params", NDE_KEY_ASSIGNS, "",
     "source = field: the true system's parameters by the names the "
     "field gives them (a=1.5, b[0]=2, W1[0,1]=0, theta[3]=1); others "
     "keep the field's initial values"},
    {"path", NDE_KEY_TEXT, "",
     "source = csv: the file (series id, t, one column per state; "
     "relative to the config's directory)"},
    {"test_fraction", NDE_KEY_DOUBLE, "0.2",
     "source = csv: fraction of the series held out for testing"},
    {"images", NDE_KEY_TEXT,
     "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
     "source = idx: training images (IDX, gzip or not; relative to the "
     "config's directory)"},
    {"labels", NDE_KEY_TEXT,
     "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
     "source = idx: training labels"},
    {"test_images", NDE_KEY_TEXT,
     "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
     "source = idx: test images"},
    {"test_labels", NDE_KEY_TEXT,
     "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
     "source = idx: test labels"},
    {"limit", NDE_KEY_INT, "0",
     "source = idx: training examples read (the first ones; 0 = all)"},
    {"test_limit", NDE_KEY_INT, "0",
     "source = idx: test examples read (the first ones; 0 = all)"},
    {"paths", NDE_KEY_INT, "1000",
     "source = field with an SDE field: sample paths of the true system "
     "whose mean and variance are the data"},
    {"dt", NDE_KEY_DOUBLE, "0",
     "source = field with an SDE field: step of the data's simulation "
     "(0 = the [solver] dt / 10)"},
    {"seed", NDE_KEY_INT, "1",
     "source = field with an SDE field: seed of the data's Brownian path "
     "(independent of [train] seed)"},
    {"eval_paths", NDE_KEY_INT, "1000",
     "SDE fields: model paths of each evaluation (one fixed Brownian "
     "path, so evaluations compare)"},
    {NULL, 0, NULL, NULL}};

/* The spiral's true field y' = (y^3) A, A = [[-0.1, 2], [-2, -0.1]]
 * (methods.md 13.1), as an `expr` model solved by tsit5 through the
 * registry like any other config. */
static const char spiral_truth_ini[] =
    "[field]\n"
    "plugin = expr\n"
    "state = x, y\n"
    "dx = -0.1*x^3 - 2.0*y^3\n"
    "dy = 2.0*x^3 - 0.1*y^3\n";

#define TRUTH_RTOL 1e-10
#define TRUTH_ATOL 1e-12
#define TRUTH_MAX_STEPS 10000000L

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- settings ----------------------------------------------------------- */

static int get_long_min(const nde_section *sec, const char *key, long lo,
                        long *out, nde_ctx *ctx)
{
    int rc = nde_get_long(sec, key, out, ctx);
    if (rc == NDE_OK && *out < lo)
        return nde_section_error(sec, key, ctx, "%ld is below %ld", *out, lo);
    return rc;
}

static int get_double_in(const nde_section *sec, const char *key, double lo,
                         int lo_open, double hi, int hi_open, double *out,
                         nde_ctx *ctx)
{
    int rc = nde_get_double(sec, key, out, ctx);
    if (rc != NDE_OK)
        return rc;
    if (*out < lo || (lo_open && *out == lo) || *out > hi ||
        (hi_open && *out == hi))
        return nde_section_error(sec, key, ctx, "%g is outside %s%g, %g%s",
                                 *out, lo_open ? "(" : "[", lo, hi,
                                 hi_open ? ")" : "]");
    return NDE_OK;
}

static int optional_text(const nde_section *sec, const char *key,
                         const char **out, nde_ctx *ctx)
{
    *out = NULL;
    if (!nde_section_has(sec, key))
        return NDE_OK;
    int rc = nde_get_string(sec, key, out, ctx);
    if (rc == NDE_OK && **out == '\0')
        *out = NULL;
    return rc;
}

static int read_settings(nde_train_settings *s, nde_section *sec,
                         nde_ctx *ctx)
{
    const nde_key *const tables[] = {nde_train_keys, NULL};
    const char *changed;
    long seed;
    int rc;

    if ((rc = nde_section_check(sec, tables, ctx)) != NDE_OK ||
        (rc = get_long_min(sec, "iterations", 0, &s->iterations, ctx)) ||
        (rc = get_long_min(sec, "batch_size", 1, &s->batch_size, ctx)) ||
        (rc = get_long_min(sec, "eval_every", 0, &s->eval_every, ctx)) ||
        (rc = get_long_min(sec, "checkpoint_every", 0, &s->checkpoint_every,
                           ctx)) ||
        (rc = get_long_min(sec, "seed", 0, &seed, ctx)) ||
        (rc = get_double_in(sec, "lr", 0, 1, HUGE_VAL, 0, &s->lr, ctx)) ||
        (rc = get_double_in(sec, "lr_decay", 0, 1, 1, 0, &s->lr_decay,
                            ctx)) ||
        (rc = get_double_in(sec, "beta1", 0, 0, 1, 1, &s->beta1, ctx)) ||
        (rc = get_double_in(sec, "beta2", 0, 0, 1, 1, &s->beta2, ctx)) ||
        (rc = get_double_in(sec, "eps", 0, 1, HUGE_VAL, 0, &s->eps, ctx)) ||
        (rc = get_double_in(sec, "weight_decay", 0, 0, HUGE_VAL, 0,
                            &s->weight_decay, ctx)) ||
        (rc = get_double_in(sec, "clip", 0, 0, HUGE_VAL, 0, &s->clip, ctx)) ||
        (rc = optional_text(sec, "checkpoint", &s->checkpoint, ctx)) ||
        (rc = optional_text(sec, "metrics", &s->metrics, ctx)) ||
        (rc = nde_get_string(sec, "data_changed", &changed, ctx)))
        return rc;
    if (strcmp(changed, "warn") != 0 && strcmp(changed, "refuse") != 0)
        return nde_section_error(sec, "data_changed", ctx,
                                 "'%s' is neither warn nor refuse", changed);
    s->refuse_changed_data = strcmp(changed, "refuse") == 0;
    s->seed = (uint64_t)seed;
    return NDE_OK;
}

/* ---- data --------------------------------------------------------------- */

/* Solve the true system at the observation times, tight tolerances. */
static int solve_truth(nde_trainer *tr, nde_field *f, const double *theta,
                       const double *y0)
{
    const nde_plugin_info *info;
    nde_solver *s = NULL;
    nde_solve_opts o;
    nde_stats st;
    int rc;

    if ((rc = nde_plugin_find(tr->ctx, NDE_KIND_SOLVER, "tsit5", &info)) !=
            NDE_OK ||
        (rc = nde_solver_create_from(tr->ctx, (const nde_solver_type *)info,
                                     f, &s)) != NDE_OK)
        return rc;
    nde_solve_opts_default(&o, s->type);
    o.rtol = TRUTH_RTOL;
    o.atol = TRUTH_ATOL;
    o.max_steps = TRUTH_MAX_STEPS;
    if ((rc = nde_solver_set_batch(s, 1)) == NDE_OK)
        rc = nde_solve(s, &o, theta, tr->tgrid[0], y0,
                       tr->tgrid[tr->npoints - 1], tr->npoints, tr->tgrid,
                       tr->truth, &st);
    if (rc != NDE_OK)
        nde_error_prefix(tr->ctx, "[data]: solving the true system");
    nde_solver_destroy(s);
    return rc;
}

/* The first few parameter names of f, "a, b, ... (N in all)", for a
 * message. */
static void param_names_excerpt(const nde_field *f, char *out, size_t len)
{
    char name[128];
    size_t j, used;

    out[0] = '\0';
    if (!f->nparams) {
        snprintf(out, len, "none");
        return;
    }
    for (j = 0; j < f->nparams && j < 6; j++) {
        nde_field_param_name(f, j, name, sizeof name);
        used = strlen(out);
        snprintf(out + used, len - used, "%s%s", j ? ", " : "", name);
    }
    used = strlen(out);
    if (j < f->nparams)
        snprintf(out + used, len - used, ", ... (%zu in all)", f->nparams);
}

/* The true system ([data] system, default the config's own [field]) for
 * `rows` rows, with [data] true_params in *theta (malloc'd) and y0 in
 * tr->y0true. */
static int true_system(nde_trainer *tr, nde_section *dsec, size_t rows,
                       nde_field **fout, double **theta_out)
{
    nde_field *f = NULL;
    double *theta = NULL, *values = NULL;
    char **names = NULL, buf[128];
    const char *system;
    size_t n = 0, i, j;
    int rc;

    *fout = NULL;
    *theta_out = NULL;
    if (!nde_section_has(dsec, "y0"))
        return nde_section_error(dsec, "y0", tr->ctx,
                                 "source = field needs the true initial "
                                 "state");
    if ((rc = nde_get_string(dsec, "system", &system, tr->ctx)) != NDE_OK)
        return rc;
    if (!nde_config_section(tr->cfg, system))
        return nde_section_error(dsec, "system", tr->ctx,
                                 "the config has no section [%s]", system);
    if ((rc = nde_get_doubles_n(dsec, "y0", tr->y0true, tr->dim, tr->ctx)) !=
            NDE_OK ||
        (rc = nde_field_create(tr->ctx, tr->cfg, system, rows, &f)) !=
            NDE_OK)
        goto done;
    if (f->dim != tr->dim) {
        rc = nde_section_error(dsec, "system", tr->ctx,
                               "[%s] has %zu states, the model %zu", system,
                               f->dim, tr->dim);
        goto done;
    }
    if (!(theta = calloc(f->nparams + 1, sizeof *theta))) {
        rc = nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = nde_field_init_params(f, theta,
                                    nde_seed_derive(tr->set.seed,
                                                    NDE_STREAM_INIT))) !=
        NDE_OK)
        goto done;
    if (nde_section_has(dsec, "true_params") &&
        (rc = nde_get_assigns(dsec, "true_params", &names, &values, &n,
                              tr->ctx)) != NDE_OK)
        goto done;
    for (i = 0; i < n; i++) {
        for (j = 0; j < f->nparams; j++) {
            nde_field_param_name(f, j, buf, sizeof buf);
            if (strcmp(buf, names[i]) == 0)
                break;
        }
        if (j == f->nparams) {
            char known[300];
            param_names_excerpt(f, known, sizeof known);
            rc = nde_section_error(dsec, "true_params", tr->ctx,
                                   "[%s] has no parameter '%s'; its "
                                   "parameters: %s",
                                   system, names[i], known);
            goto done;
        }
        theta[j] = values[i];
    }
done:
    nde_strings_free(names);
    free(values);
    if (rc == NDE_OK) {
        *fout = f;
        *theta_out = theta;
    } else {
        free(theta);
        nde_field_destroy(f);
    }
    return rc;
}

/* The true ODE system ([data] system, true_params, y0) at the
 * observation times. */
static int field_truth(nde_trainer *tr, nde_section *dsec)
{
    nde_field *f;
    double *theta;
    int rc;

    if ((rc = true_system(tr, dsec, 1, &f, &theta)) != NDE_OK)
        return rc;
    rc = solve_truth(tr, f, theta, tr->y0true);
    free(theta);
    nde_field_destroy(f);
    return rc;
}

static int spiral_truth(nde_trainer *tr, nde_section *dsec)
{
    nde_config *c;
    nde_field *f = NULL;
    double no_params[1] = {0.0}; /* the field has none; never NULL */
    int rc;

    static const char *const field_keys[] = {"y0", "true_params", "system",
                                             NULL};
    size_t i;

    for (i = 0; field_keys[i]; i++)
        if (nde_section_has(dsec, field_keys[i]))
            return nde_section_error(dsec, field_keys[i], tr->ctx,
                                     "source = spiral fixes its system and "
                                     "y0; this key is for source = field");
    if (!(c = nde_config_create()))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    tr->y0true[0] = 2.0;
    tr->y0true[1] = 0.0;
    if ((rc = nde_config_load_string(c, "spiral truth", spiral_truth_ini,
                                     tr->ctx)) == NDE_OK &&
        (rc = nde_field_create(tr->ctx, c, "field", 1, &f)) == NDE_OK)
        rc = solve_truth(tr, f, no_params, tr->y0true);
    nde_field_destroy(f);
    nde_config_destroy(c);
    return rc;
}

/* Generated data: the spiral or the config's own field. */
static int make_generated(nde_trainer *tr, nde_section *dsec,
                          const char *source)
{
    long npoints, bt;
    double t1, noise;
    size_t i, n;
    gsl_rng *r;
    int rc;

    if ((rc = get_long_min(dsec, "npoints", 2, &npoints, tr->ctx)) ||
        (rc = get_long_min(dsec, "batch_time", 2, &bt, tr->ctx)) ||
        (rc = get_double_in(dsec, "t1", 0, 1, HUGE_VAL, 0, &t1, tr->ctx)) ||
        (rc = get_double_in(dsec, "noise", 0, 0, HUGE_VAL, 0, &noise,
                            tr->ctx)))
        return rc;
    if (strcmp(source, "spiral") == 0 && tr->dim != 2)
        return nde_section_error(dsec, "source", tr->ctx,
                                 "the field's dim (%zu) must equal the "
                                 "data's dim (2)", tr->dim);
    if (bt > npoints)
        return nde_section_error(dsec, "batch_time", tr->ctx,
                                 "%ld is more than npoints (%ld)", bt,
                                 npoints);
    tr->npoints = (size_t)npoints;
    tr->bt = (size_t)bt;
    tr->nchoices = tr->npoints - tr->bt + 1;
    if ((size_t)tr->set.batch_size > tr->nchoices)
        return nde_error(tr->ctx, NDE_ECONFIG,
                         "[train] batch_size (%ld) is more than the %zu "
                         "distinct windows of [data] (npoints - batch_time "
                         "+ 1)", tr->set.batch_size, tr->nchoices);
    n = tr->npoints * tr->dim;
    tr->tgrid = malloc(tr->npoints * sizeof *tr->tgrid);
    tr->truth = malloc(n * sizeof *tr->truth);
    tr->obs = malloc(n * sizeof *tr->obs);
    tr->choices = malloc(tr->nchoices * sizeof *tr->choices);
    if (!tr->tgrid || !tr->truth || !tr->obs || !tr->choices)
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    /* linspace(0, t1, npoints) */
    for (i = 0; i < tr->npoints; i++)
        tr->tgrid[i] = t1 * (double)i / (double)(tr->npoints - 1);
    tr->tgrid[tr->npoints - 1] = t1;
    for (i = 0; i < tr->nchoices; i++)
        tr->choices[i] = i;
    rc = strcmp(source, "spiral") == 0 ? spiral_truth(tr, dsec)
                                       : field_truth(tr, dsec);
    if (rc != NDE_OK)
        return rc;
    memcpy(tr->obs, tr->truth, n * sizeof *tr->obs);
    if (noise > 0) {
        if (!(r = gsl_rng_alloc(gsl_rng_mt19937)))
            return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
        gsl_rng_set(r, nde_seed_derive(tr->set.seed, NDE_STREAM_NOISE));
        for (i = 0; i < n; i++)
            tr->obs[i] += gsl_ran_gaussian_ziggurat(r, noise);
        gsl_rng_free(r);
    }
    tr->Tcap = tr->bt;
    tr->T = tr->bt;
    tr->tsave = tr->tgrid;
    /* the held-out set: the noise-free trajectory from the true y0 */
    tr->ntest = 1;
    tr->test_nmax = tr->npoints;
    if (!(tr->test_id = calloc(1, sizeof *tr->test_id)) ||
        !(tr->test_n = calloc(1, sizeof *tr->test_n)) ||
        !(tr->test_t = calloc(1, sizeof *tr->test_t)) ||
        !(tr->test_obs = calloc(1, sizeof *tr->test_obs)) ||
        !(tr->test_pred = calloc(1, sizeof *tr->test_pred)) ||
        !(tr->pred_buf = malloc(n * sizeof *tr->pred_buf)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    tr->test_id[0] = source;
    tr->test_n[0] = tr->npoints;
    tr->test_t[0] = tr->tgrid;
    tr->test_obs[0] = tr->truth;
    tr->test_pred[0] = tr->pred_buf;
    return NDE_OK;
}

/* ---- SDE fields: moments of sample paths --------------------------------- */

double nde_moments_loss(const double *y, size_t nsave, size_t B, size_t dim,
                        const double *M, const double *V, double *g,
                        double *mean, double *var)
{
    const double count = (double)(nsave * dim);
    double sum = 0.0;
    size_t k, b, d;

    if (B < 2 || nsave == 0 || dim == 0)
        return NAN;
    for (k = 0; k < nsave; k++)
        for (d = 0; d < dim; d++) {
            const double *yk = y + k * B * dim + d;
            double m = 0.0, v = 0.0, em, ev;
            for (b = 0; b < B; b++)
                m += yk[b * dim];
            m /= (double)B;
            for (b = 0; b < B; b++)
                v += (yk[b * dim] - m) * (yk[b * dim] - m);
            v /= (double)(B - 1);
            em = m - M[k * dim + d];
            ev = v - V[k * dim + d];
            sum += em * em + ev * ev;
            if (mean)
                mean[k * dim + d] = m;
            if (var)
                var[k * dim + d] = v;
            if (!g)
                continue;
            /* dm/dy_b = 1/B; dv/dy_b = 2 (y_b - m) / (B - 1) (the terms
             * through m cancel: the deviations sum to zero) */
            for (b = 0; b < B; b++)
                g[(k * B + b) * dim + d] =
                    (2.0 * em / (double)B +
                     4.0 * ev * (yk[b * dim] - m) / (double)(B - 1)) /
                    count;
        }
    return sum / count;
}

/* The Brownian path of a training iteration, and the evaluation's. */
static uint64_t brownian_seed(const nde_trainer *tr, uint64_t i)
{
    return nde_seed_derive(nde_seed_derive(tr->set.seed, NDE_STREAM_BROWNIAN),
                           i);
}
#define EVAL_PATH UINT64_MAX

/* `paths` paths of the true SDE from y0, simulated with the configured
 * solver type on [data] dt, reduced to their mean and variance at the
 * observation times. */
static int sde_truth(nde_trainer *tr, nde_section *dsec)
{
    const size_t D = tr->dim, T = tr->npoints;
    nde_section *ssec = nde_config_section(tr->cfg, "solver");
    nde_field *f = NULL;
    nde_solver *s = NULL;
    nde_brownian *bm = NULL;
    nde_solve_opts o;
    nde_stats st;
    double *theta = NULL, *y0 = NULL, *y = NULL, dt;
    long paths, seed;
    size_t N, b;
    int rc;

    if ((rc = get_long_min(dsec, "paths", 2, &paths, tr->ctx)) ||
        (rc = get_long_min(dsec, "seed", 0, &seed, tr->ctx)) ||
        (rc = get_double_in(dsec, "dt", 0, 0, HUGE_VAL, 0, &dt, tr->ctx)))
        return rc;
    N = (size_t)paths;
    if ((rc = true_system(tr, dsec, N, &f, &theta)) != NDE_OK ||
        (rc = nde_solver_create(tr->ctx, tr->cfg, "solver", f, &s)) !=
            NDE_OK ||
        (rc = nde_solve_opts_from_section(&o, s->type, ssec, tr->ctx)) !=
            NDE_OK ||
        (rc = nde_brownian_create(tr->ctx, N * D, &bm)) != NDE_OK)
        goto done;
    if (dt == 0.0)
        dt = o.dt / 10.0;
    o.dt = dt;
    o.brownian = bm;
    o.max_steps = TRUTH_MAX_STEPS;
    y0 = malloc(N * D * sizeof *y0);
    y = malloc(T * N * D * sizeof *y);
    if (!y0 || !y) {
        rc = nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
        goto done;
    }
    for (b = 0; b < N; b++)
        memcpy(y0 + b * D, tr->y0true, D * sizeof *y0);
    if ((rc = nde_brownian_reset(bm, nde_seed_derive((uint64_t)seed, 0),
                                 tr->tgrid[0], tr->tgrid[T - 1], dt,
                                 N * D)) != NDE_OK ||
        (rc = nde_solver_set_batch(s, N)) != NDE_OK ||
        (rc = nde_solve(s, &o, theta, tr->tgrid[0], y0, tr->tgrid[T - 1], T,
                        tr->tgrid, y, &st)) != NDE_OK) {
        nde_error_prefix(tr->ctx, "[data]: simulating the true SDE with "
                         "dt = %g ([data] dt; default the [solver] dt / 10) "
                         "and at most %ld steps", dt, TRUTH_MAX_STEPS);
        goto done;
    }
    nde_moments_loss(y, T, N, D, tr->data_mean, tr->data_var, NULL,
                     tr->data_mean, tr->data_var);
done:
    free(y);
    free(y0);
    nde_brownian_destroy(bm);
    nde_solver_destroy(s);
    free(theta);
    nde_field_destroy(f);
    return rc;
}

/* source = field with an SDE field: the data's moments at npoints times
 * on [0, t1]; the held-out "series" are the mean and the variance. */
static int make_sde_data(nde_trainer *tr, nde_section *dsec,
                         const char *source)
{
    static const char *const unused[] = {"batch_time", "noise", NULL};
    const size_t D = tr->dim;
    long npoints;
    double t1;
    size_t i, n;
    int rc;

    if (strcmp(source, "field") != 0)
        return nde_section_error(dsec, "source", tr->ctx,
                                 "the field is an SDE: it trains on the "
                                 "moments of paths simulated from its own "
                                 "system (source = field), not on '%s'",
                                 source);
    for (i = 0; unused[i]; i++)
        if (nde_section_has(dsec, unused[i]))
            return nde_section_error(dsec, unused[i], tr->ctx,
                                     "not used with an SDE field (each "
                                     "iteration fits the whole interval's "
                                     "moments; the paths are the noise)");
    if ((rc = get_long_min(dsec, "npoints", 2, &npoints, tr->ctx)) ||
        (rc = get_double_in(dsec, "t1", 0, 1, HUGE_VAL, 0, &t1, tr->ctx)))
        return rc;
    if (tr->B < 2)
        return nde_error(tr->ctx, NDE_ECONFIG,
                         "[train] batch_size (%zu) must be at least 2 for "
                         "an SDE field (the loss needs the batch's "
                         "variance)", tr->B);
    tr->npoints = (size_t)npoints;
    n = tr->npoints * D;
    tr->tgrid = malloc(tr->npoints * sizeof *tr->tgrid);
    tr->data_mean = calloc(n, sizeof *tr->data_mean);
    tr->data_var = calloc(n, sizeof *tr->data_var);
    tr->model_mean = calloc(n, sizeof *tr->model_mean);
    tr->model_var = calloc(n, sizeof *tr->model_var);
    tr->eval_y = malloc(n * tr->eval_paths * sizeof *tr->eval_y);
    tr->eval_y0 = malloc(D * tr->eval_paths * sizeof *tr->eval_y0);
    if (!tr->tgrid || !tr->data_mean || !tr->data_var || !tr->model_mean ||
        !tr->model_var || !tr->eval_y || !tr->eval_y0)
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    for (i = 0; i < tr->npoints; i++)
        tr->tgrid[i] = t1 * (double)i / (double)(tr->npoints - 1);
    tr->tgrid[tr->npoints - 1] = t1;
    if ((rc = sde_truth(tr, dsec)) != NDE_OK)
        return rc;
    for (i = 0; i < tr->eval_paths; i++)
        memcpy(tr->eval_y0 + i * D, tr->y0true, D * sizeof *tr->eval_y0);
    tr->Tcap = tr->T = tr->npoints;
    tr->tsave = tr->tgrid;
    tr->ntest = 2;
    tr->test_nmax = tr->npoints;
    if (!(tr->test_id = calloc(2, sizeof *tr->test_id)) ||
        !(tr->test_n = calloc(2, sizeof *tr->test_n)) ||
        !(tr->test_t = calloc(2, sizeof *tr->test_t)) ||
        !(tr->test_obs = calloc(2, sizeof *tr->test_obs)) ||
        !(tr->test_pred = calloc(2, sizeof *tr->test_pred)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    tr->test_id[0] = "mean";
    tr->test_id[1] = "var";
    for (i = 0; i < 2; i++) {
        tr->test_n[i] = tr->npoints;
        tr->test_t[i] = tr->tgrid;
    }
    tr->test_obs[0] = tr->data_mean;
    tr->test_obs[1] = tr->data_var;
    tr->test_pred[0] = tr->model_mean;
    tr->test_pred[1] = tr->model_var;
    return NDE_OK;
}

/* CSV time series: whole series; each series' first observation is its
 * initial state (all components required) and its times are shifted to
 * start at 0. */
static int make_csv(nde_trainer *tr, nde_section *dsec)
{
    const char *path;
    char *full = NULL;
    nde_dataset *ds = NULL;
    double frac;
    size_t i, j, nmax = 0, total = 0;
    int rc;

    if (!nde_section_has(dsec, "path"))
        return nde_section_error(dsec, "path", tr->ctx,
                                 "source = csv needs the file's path");
    if ((rc = nde_get_string(dsec, "path", &path, tr->ctx)) ||
        (rc = get_double_in(dsec, "test_fraction", 0, 0, 1, 1, &frac,
                            tr->ctx)))
        return rc;
    if (!(full = nde_section_path(dsec, "path", path)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    rc = nde_data_read_csv(full, &ds, tr->ctx);
    free(full);
    if (rc != NDE_OK)
        return rc;
    if (ds->dim != tr->dim) {
        rc = nde_section_error(dsec, "path", tr->ctx,
                               "the field's dim (%zu) must equal the data's "
                               "dim (%zu columns after series id and t)",
                               tr->dim, ds->dim);
        nde_dataset_destroy(ds);
        return rc;
    }
    for (i = 0; i < ds->nseries; i++)
        for (j = 0; j < tr->dim; j++)
            if (isnan(ds->series[i].y[j])) {
                rc = nde_section_error(dsec, "path", tr->ctx,
                                       "series '%s': its first observation "
                                       "is its initial state and must have "
                                       "every component",
                                       ds->series[i].id);
                nde_dataset_destroy(ds);
                return rc;
            }
    rc = nde_data_split(ds, frac,
                        nde_seed_derive(tr->set.seed, NDE_STREAM_SPLIT),
                        &tr->ds_train, &tr->ds_test, tr->ctx);
    nde_dataset_destroy(ds);
    if (rc != NDE_OK)
        return rc;
    if (tr->ds_train->nseries < (size_t)tr->set.batch_size)
        return nde_error(tr->ctx, NDE_ECONFIG,
                         "[train] batch_size (%ld) is more than the %zu "
                         "training series of %s", tr->set.batch_size,
                         tr->ds_train->nseries, path);
    /* the test part may be empty (test_fraction 0): evaluate on the
     * training series then */
    {
        const nde_dataset *t = tr->ds_test->nseries ? tr->ds_test
                                                    : tr->ds_train;
        tr->ntest = t->nseries;
        for (i = 0; i < t->nseries; i++) {
            total += t->series[i].npoints;
            if (t->series[i].npoints > tr->test_nmax)
                tr->test_nmax = t->series[i].npoints;
        }
        tr->test_id = calloc(tr->ntest, sizeof *tr->test_id);
        tr->test_n = calloc(tr->ntest, sizeof *tr->test_n);
        tr->test_t = calloc(tr->ntest, sizeof *tr->test_t);
        tr->test_obs = calloc(tr->ntest, sizeof *tr->test_obs);
        tr->test_pred = calloc(tr->ntest, sizeof *tr->test_pred);
        tr->pred_buf = malloc(total * tr->dim * sizeof *tr->pred_buf);
        tr->test_tshift = malloc(tr->test_nmax * sizeof *tr->test_tshift);
        if (!tr->test_id || !tr->test_n || !tr->test_t || !tr->test_obs ||
            !tr->test_pred || !tr->pred_buf || !tr->test_tshift)
            return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
        for (i = 0, total = 0; i < t->nseries; i++) {
            tr->test_id[i] = t->series[i].id;
            tr->test_n[i] = t->series[i].npoints;
            tr->test_t[i] = t->series[i].t;
            tr->test_obs[i] = t->series[i].y;
            tr->test_pred[i] = tr->pred_buf + total * tr->dim;
            total += t->series[i].npoints;
        }
    }
    tr->nchoices = tr->ds_train->nseries;
    for (i = 0; i < tr->nchoices; i++)
        if (tr->ds_train->series[i].npoints > nmax)
            nmax = tr->ds_train->series[i].npoints;
    tr->Tcap = nmax * (size_t)tr->set.batch_size;
    if (!(tr->choices = malloc(tr->nchoices * sizeof *tr->choices)) ||
        !(tr->tsave = malloc(tr->Tcap * sizeof *tr->tsave)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    for (i = 0; i < tr->nchoices; i++)
        tr->choices[i] = i;
    return NDE_OK;
}

/* One pair of IDX files; a file that cannot be read is a bad [data]
 * entry (NDE_ECONFIG, the reader's message naming the file). */
static int read_idx_pair(nde_trainer *tr, nde_section *dsec,
                         const char *ikey, const char *lkey,
                         const char *limkey, nde_dataset **out)
{
    const char *ipath, *lpath;
    char *ifull = NULL, *lfull = NULL;
    long limit;
    int rc;

    if ((rc = nde_get_string(dsec, ikey, &ipath, tr->ctx)) ||
        (rc = nde_get_string(dsec, lkey, &lpath, tr->ctx)) ||
        (rc = get_long_min(dsec, limkey, 0, &limit, tr->ctx)))
        return rc;
    if (!(ifull = nde_section_path(dsec, ikey, ipath)) ||
        !(lfull = nde_section_path(dsec, lkey, lpath)))
        rc = nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    else
        rc = nde_data_read_idx(ifull, lfull, (size_t)limit, out, tr->ctx);
    free(ifull);
    free(lfull);
    if (rc == NDE_EIO) {
        nde_error_prefix(tr->ctx, "[data] %s, %s", ikey, lkey);
        rc = NDE_ECONFIG;
    }
    return rc;
}

/* Labelled images: the training and test sets, the epoch permutation. */
static int make_idx(nde_trainer *tr, nde_section *dsec)
{
    int rc;

    if ((rc = read_idx_pair(tr, dsec, "images", "labels", "limit",
                            &tr->idx_train)) ||
        (rc = read_idx_pair(tr, dsec, "test_images", "test_labels",
                            "test_limit", &tr->idx_test)))
        return rc;
    if (tr->idx_test->nfeatures != tr->idx_train->nfeatures)
        return nde_section_error(dsec, "test_images", tr->ctx,
                                 "%zu features per test image, %zu per "
                                 "training image", tr->idx_test->nfeatures,
                                 tr->idx_train->nfeatures);
    if (tr->idx_train->nexamples == 0 || tr->idx_test->nexamples == 0)
        return nde_section_error(dsec, "images", tr->ctx,
                                 "no examples to train or test on");
    tr->classify = 1;
    tr->F = tr->idx_train->nfeatures;
    tr->C = tr->idx_train->nclasses > tr->idx_test->nclasses
                ? tr->idx_train->nclasses
                : tr->idx_test->nclasses;
    if (tr->C < 2)
        return nde_section_error(dsec, "labels", tr->ctx,
                                 "a single class: nothing to classify");
    tr->Tcap = tr->T = 1;
    tr->ntest = tr->idx_test->nexamples;
    tr->perm_epoch = -1;
    if (!(tr->perm = malloc(tr->idx_train->nexamples * sizeof *tr->perm)) ||
        !(tr->perm_rng = gsl_rng_alloc(gsl_rng_mt19937)) ||
        !(tr->xb = malloc(tr->B * tr->F * sizeof *tr->xb)) ||
        !(tr->prob = malloc(tr->B * tr->C * sizeof *tr->prob)) ||
        !(tr->yb = malloc(tr->B * sizeof *tr->yb)) ||
        !(tr->test_prob = malloc(tr->ntest * tr->C * sizeof *tr->test_prob)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    return NDE_OK;
}

/* ---- data digest -------------------------------------------------------- */

/* A 64-bit hash of the data for checkpoints to compare (not a
 * cryptographic one): each array's length, then its bytes as 8-byte words
 * dealt to four lanes, each step h = (h ^ w) * K, h ^= h >> 29
 * (invertible in h and in w, so one changed word always changes its
 * lane). Independent lanes run at memory speed: 0.05 s for the 376 MB of
 * Fashion-MNIST's training images as doubles. */
typedef struct digest {
    uint64_t h[4];
} digest;

#define DIGEST_K UINT64_C(0x9e3779b97f4a7c15)

static uint64_t digest_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * DIGEST_K;
    return h ^ (h >> 29);
}

static void digest_bytes(digest *d, const void *p, size_t len)
{
    const unsigned char *b = p;
    uint64_t w[4], h0 = digest_mix(d->h[0], len), h1 = d->h[1],
                   h2 = d->h[2], h3 = d->h[3];
    size_t chunk;

    for (; len > 0; b += chunk, len -= chunk) {
        chunk = len < sizeof w ? len : sizeof w;
        memset(w, 0, sizeof w);
        memcpy(w, b, chunk);
        h0 = digest_mix(h0, w[0]);
        h1 = digest_mix(h1, w[1]);
        h2 = digest_mix(h2, w[2]);
        h3 = digest_mix(h3, w[3]);
    }
    d->h[0] = h0;
    d->h[1] = h1;
    d->h[2] = h2;
    d->h[3] = h3;
}

static void digest_dataset(digest *d, const nde_dataset *ds)
{
    size_t i;

    if (!ds)
        return;
    for (i = 0; i < ds->nseries; i++) {
        const nde_series *s = &ds->series[i];
        digest_bytes(d, s->id, strlen(s->id));
        digest_bytes(d, s->t, s->npoints * sizeof *s->t);
        digest_bytes(d, s->y, s->npoints * ds->dim * sizeof *s->y);
    }
    if (ds->x)
        digest_bytes(d, ds->x, ds->nexamples * ds->nfeatures * sizeof *ds->x);
    if (ds->label)
        digest_bytes(d, ds->label, ds->nexamples * sizeof *ds->label);
}

/* What the run trains and tests on, as loaded or generated. */
static uint64_t data_digest(const nde_trainer *tr)
{
    const size_t n = tr->npoints * tr->dim;
    digest d = {{1, 2, 3, 4}};
    uint64_t h = 0;
    size_t i;

    if (tr->tgrid)
        digest_bytes(&d, tr->tgrid, tr->npoints * sizeof *tr->tgrid);
    if (tr->obs)
        digest_bytes(&d, tr->obs, n * sizeof *tr->obs);
    if (tr->truth)
        digest_bytes(&d, tr->truth, n * sizeof *tr->truth);
    if (tr->data_mean)
        digest_bytes(&d, tr->data_mean, n * sizeof *tr->data_mean);
    if (tr->data_var)
        digest_bytes(&d, tr->data_var, n * sizeof *tr->data_var);
    digest_dataset(&d, tr->ds_train);
    digest_dataset(&d, tr->ds_test);
    digest_dataset(&d, tr->idx_train);
    digest_dataset(&d, tr->idx_test);
    for (i = 0; i < 4; i++)
        h = digest_mix(h, d.h[i]);
    return h;
}

static int make_data(nde_trainer *tr, nde_section *dsec)
{
    const nde_key *const tables[] = {nde_data_keys, NULL};
    const char *source;
    int rc;

    static const char *const sde_keys[] = {"paths", "dt", "seed",
                                           "eval_paths", NULL};
    size_t i;

    if ((rc = nde_section_check(dsec, tables, tr->ctx)) != NDE_OK ||
        (rc = nde_get_string(dsec, "source", &source, tr->ctx)))
        return rc;
    if (strcmp(source, "spiral") != 0 && strcmp(source, "field") != 0 &&
        strcmp(source, "csv") != 0 && strcmp(source, "idx") != 0)
        return nde_section_error(dsec, "source", tr->ctx,
                                 "unknown source '%s' (known: spiral, "
                                 "field, csv, idx)", source);
    if (tr->sde)
        return make_sde_data(tr, dsec, source);
    for (i = 0; sde_keys[i]; i++)
        if (nde_section_has(dsec, sde_keys[i]))
            return nde_section_error(dsec, sde_keys[i], tr->ctx,
                                     "only for an SDE field (this field "
                                     "has no diffusion)");
    if (strcmp(source, "csv") == 0)
        return make_csv(tr, dsec);
    if (strcmp(source, "idx") == 0)
        return make_idx(tr, dsec);
    return make_generated(tr, dsec, source);
}

/* ---- regularizers -------------------------------------------------------- */

#define RECORD_NEEDS                                                         \
    (NDE_NEEDS_STEPS | NDE_NEEDS_DENSE | NDE_NEEDS_ERROR_EST |               \
     NDE_NEEDS_STIFFNESS)

/* What a training solve with adjoint a records: the union of the
 * adjoint's and the regularizers' needs; a regularizer that reads the
 * states of steps gets every one of them. */
static void record_for(const nde_trainer *tr, const nde_adjoint *a,
                       unsigned *record, size_t *max_states)
{
    unsigned reg = 0;
    size_t i;

    for (i = 0; i < tr->nregs; i++)
        reg |= tr->regs[i].r->needs & RECORD_NEEDS;
    *record = a->record | reg;
    *max_states = (reg & (NDE_NEEDS_STEPS | NDE_NEEDS_DENSE))
                      ? 0
                      : a->max_states;
}

static int push_regularizer(nde_trainer *tr, const char *name,
                            nde_regularizer *r, const nde_weight_schedule *w)
{
    nde_train_reg *regs, *g;

    if (!(regs = realloc(tr->regs, (tr->nregs + 1) * sizeof *regs)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    tr->regs = regs;
    g = &regs[tr->nregs];
    memset(g, 0, sizeof *g);
    if (!(g->name = strdup(name)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    g->r = r;
    g->w = *w;
    g->value = NAN;
    tr->nregs++;
    return NDE_OK;
}

/* Every [regularizer.NAME] section, in the config's order. */
static int regs_create(nde_trainer *tr)
{
    const size_t n = nde_config_nsections(tr->cfg);
    static const char prefix[] = "regularizer.";
    nde_weight_schedule w;
    nde_regularizer *r;
    size_t i;
    int rc;

    for (i = 0; i < n; i++) {
        const char *name = nde_section_name(nde_config_section_at(tr->cfg, i));
        if (strncmp(name, prefix, sizeof prefix - 1) != 0)
            continue;
        if ((rc = nde_regularizer_create(tr->ctx, tr->cfg, name, tr->solver,
                                         &w, &r)) != NDE_OK)
            return rc;
        if ((rc = push_regularizer(tr, name + sizeof prefix - 1, r, &w)) !=
            NDE_OK) {
            nde_regularizer_destroy(r);
            return rc;
        }
    }
    return NDE_OK;
}

/* The buffers that depend on the number of regularizers, and the record
 * of the training solve (its flags depend on them). */
static int regs_alloc(nde_trainer *tr)
{
    const size_t E = NDE_REGULARIZER_MAX_EXTRA * tr->nregs;
    const size_t per = tr->B * tr->dim, ns = tr->Tcap + E;
    nde_trajectory *traj;
    unsigned record;
    size_t max_states;

    record_for(tr, tr->adj, &record, &max_states);
    if (!(traj = nde_trajectory_create(record, max_states)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    nde_trajectory_destroy(tr->traj);
    tr->traj = traj;
    if (tr->nregs == 0)
        return NDE_OK;
    free(tr->reg_grad);
    free(tr->tk);
    free(tr->solve_t);
    free(tr->slot);
    free(tr->ysolve);
    free(tr->extra_t);
    free(tr->extra_y);
    tr->reg_grad = calloc(tr->P + 1, sizeof *tr->reg_grad);
    tr->tk = calloc(tr->Tcap, sizeof *tr->tk);
    tr->solve_t = calloc(ns, sizeof *tr->solve_t);
    tr->slot = calloc(ns, sizeof *tr->slot);
    tr->ysolve = calloc(ns * per, sizeof *tr->ysolve);
    tr->extra_t = calloc(E, sizeof *tr->extra_t);
    tr->extra_y = calloc(E * per, sizeof *tr->extra_y);
    tr->extra_cap = E;
    if (!tr->reg_grad || !tr->tk || !tr->solve_t || !tr->slot ||
        !tr->ysolve || !tr->extra_t || !tr->extra_y)
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    return NDE_OK;
}

/* t between a and b (either order). */
static int between(double t, double a, double b)
{
    return a <= b ? (t >= a && t <= b) : (t <= a && t >= b);
}

/* Stretch t of [t0, t1] onto [t0, t1s]. */
static double stretch(double t, double t0, double t1, double t1s)
{
    double u;

    if (t == t1)
        return t1s;
    u = t0 + (t - t0) * ((t1s - t0) / (t1 - t0));
    return between(u, t0, t1s) ? u : (fabs(u - t0) < fabs(u - t1s) ? t0
                                                                   : t1s);
}

/* before_solve of every regularizer, in order: the solve's end *t1 (moved
 * by STEER) and the extra save times, stretched along when t1 moves. */
static int regs_before(nde_trainer *tr, double t0, double *t1)
{
    const uint64_t base = nde_seed_derive(
        nde_seed_derive(tr->set.seed, NDE_STREAM_REGULARIZER),
        (uint64_t)tr->iter);
    nde_solve_request req;
    size_t j, e;
    int rc;

    tr->nextra = 0;
    for (j = 0; j < tr->nregs; j++) {
        nde_train_reg *g = &tr->regs[j];
        g->first = tr->nextra;
        g->nextra = 0;
        if (!g->r->type->before_solve)
            continue;
        memset(&req, 0, sizeof req);
        req.t0 = t0;
        req.t1 = *t1;
        if ((rc = g->r->type->before_solve(g->r, &req,
                                           nde_seed_derive(base, j))) !=
            NDE_OK) {
            nde_error_prefix(tr->ctx, "regularizer '%s'", g->name);
            return rc;
        }
        if (req.t1 != *t1) {
            if (!isfinite(req.t1) || req.t1 == t0 ||
                (req.t1 > t0) != (*t1 > t0))
                return nde_error(tr->ctx, NDE_EINVAL,
                                 "regularizer '%s' moved the end time to %g "
                                 "(the solve starts at %g and ends at %g)",
                                 g->name, req.t1, t0, *t1);
            for (e = 0; e < tr->nextra; e++)
                tr->extra_t[e] = stretch(tr->extra_t[e], t0, *t1, req.t1);
            *t1 = req.t1;
        }
        if (req.nextra > NDE_REGULARIZER_MAX_EXTRA)
            return nde_error(tr->ctx, NDE_EINVAL,
                             "regularizer '%s' asked for %zu extra save "
                             "times (at most %d)", g->name, req.nextra,
                             NDE_REGULARIZER_MAX_EXTRA);
        for (e = 0; e < req.nextra; e++) {
            if (!between(req.extra_save[e], t0, *t1))
                return nde_error(tr->ctx, NDE_EINVAL,
                                 "regularizer '%s': extra save time %g is "
                                 "outside the solve [%g, %g]", g->name,
                                 req.extra_save[e], t0, *t1);
            tr->extra_t[tr->nextra++] = req.extra_save[e];
        }
        g->nextra = req.nextra;
    }
    return NDE_OK;
}

/* The solve's save times: the n data times ts of [t0, t1] stretched onto
 * [t0, t1s] (into tk) merged in the direction of the solve with the extra
 * times; slot[j] = k for data time k, n + e for extra time e. */
static void plan_saves(nde_trainer *tr, double t0, double t1, double t1s,
                       const double *ts, size_t n)
{
    const double d = t1s >= t0 ? 1.0 : -1.0;
    size_t k = 0, j, e, next, last = 0;
    int have_last = 0;

    for (k = 0; k < n; k++)
        tr->tk[k] = t1s == t1 ? ts[k] : stretch(ts[k], t0, t1, t1s);
    tr->nsolve = n + tr->nextra;
    for (j = k = 0; j < tr->nsolve; j++) {
        /* the earliest extra time after the last one taken (ties by
         * index), so equal times keep the order asked */
        next = tr->nextra;
        for (e = 0; e < tr->nextra; e++) {
            const double te = d * tr->extra_t[e];
            if (have_last &&
                (te < d * tr->extra_t[last] ||
                 (te == d * tr->extra_t[last] && e <= last)))
                continue;
            if (next == tr->nextra || te < d * tr->extra_t[next])
                next = e;
        }
        if (next < tr->nextra &&
            (k == n || d * tr->extra_t[next] < d * tr->tk[k])) {
            tr->solve_t[j] = tr->extra_t[next];
            tr->slot[j] = n + next;
            last = next;
            have_last = 1;
        } else {
            tr->solve_t[j] = tr->tk[k];
            tr->slot[j] = k++;
        }
    }
}

/* The saved states to the data rows (ydata, n times) and extra_y. */
static void gather_saves(nde_trainer *tr, double *ydata, size_t n)
{
    const size_t per = tr->B * tr->dim;
    size_t j;

    for (j = 0; j < tr->nsolve; j++) {
        const size_t s = tr->slot[j];
        memcpy(s < n ? ydata + s * per : tr->extra_y + (s - n) * per,
               tr->ysolve + j * per, per * sizeof *ydata);
    }
}

/* after_solve of every regularizer: their weighted sum into *reg, their
 * direct gradient into reg_grad, their NFE into st; their cotangents are
 * kept for merge_cotangents. */
static int regs_after(nde_trainer *tr, const nde_solve_opts *o,
                      const nde_trajectory *traj, const double *theta,
                      double t0, double t1s, nde_stats *st, double *reg)
{
    const size_t per = tr->B * tr->dim;
    nde_regularizer_input in;
    nde_regularizer_output out;
    size_t j, c;
    int rc;

    *reg = 0.0;
    memset(tr->reg_grad, 0, tr->P * sizeof *tr->reg_grad);
    for (j = 0; j < tr->nregs; j++) {
        nde_train_reg *g = &tr->regs[j];
        memset(&in, 0, sizeof in);
        memset(&out, 0, sizeof out);
        in.solver = tr->solver;
        in.opts = o;
        in.fwd = traj;
        in.theta = theta;
        in.t0 = t0;
        in.t1 = t1s;
        in.extra_y = tr->extra_y + g->first * per;
        in.nextra = g->nextra;
        in.weight = nde_weight_at(&g->w, tr->iter, tr->set.iterations);
        out.thetabar = tr->reg_grad;
        g->ct = NULL;
        g->nct = 0;
        rc = g->r->type->after_solve(g->r, &in, &out);
        st->nfe += out.nfe;
        st->nfe_backward += out.nvjp;
        if (rc != NDE_OK) {
            nde_error_prefix(tr->ctx, "regularizer '%s'", g->name);
            return rc;
        }
        if (!isfinite(out.value))
            return nde_error(tr->ctx, NDE_ENONFINITE,
                             "regularizer '%s': its value is not finite "
                             "(%g)", g->name, out.value);
        for (c = 0; c < out.nct; c++)
            if (!out.ct || !between(out.ct[c].t, t0, t1s))
                return nde_error(tr->ctx, NDE_EINVAL,
                                 "regularizer '%s': cotangent %zu at %g is "
                                 "outside the solve [%g, %g]", g->name, c,
                                 out.ct ? out.ct[c].t : NAN, t0, t1s);
        g->value = out.value;
        g->ct = out.ct;
        g->nct = out.nct;
        *reg += in.weight * out.value;
    }
    /* a regularizer may have used the solver's workspace */
    return nde_solver_set_batch(tr->solver, tr->B);
}

/* The loss's cotangents and the regularizers' in one list sorted by time
 * in the direction of the solve (stable: equal times keep their order and
 * add in the adjoint). */
static int merge_cotangents(nde_trainer *tr, const nde_cotangent *ct,
                            size_t nct, double t0, double t1s,
                            const nde_cotangent **out, size_t *nout)
{
    const double d = t1s >= t0 ? 1.0 : -1.0;
    size_t n = nct, j, i;

    for (j = 0; j < tr->nregs; j++)
        n += tr->regs[j].nct;
    if (n > tr->ct_cap) {
        nde_cotangent *p = realloc(tr->ct_all, n * sizeof *p);
        if (!p)
            return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
        tr->ct_all = p;
        tr->ct_cap = n;
    }
    memcpy(tr->ct_all, ct, nct * sizeof *ct);
    n = nct;
    for (j = 0; j < tr->nregs; j++)
        for (i = 0; i < tr->regs[j].nct; i++) {
            /* insertion: the lists are short or nearly sorted */
            const nde_cotangent c = tr->regs[j].ct[i];
            size_t k = n++;
            while (k > 0 && d * tr->ct_all[k - 1].t > d * c.t) {
                tr->ct_all[k] = tr->ct_all[k - 1];
                k--;
            }
            tr->ct_all[k] = c;
        }
    *out = tr->ct_all;
    *nout = n;
    return NDE_OK;
}

/* ---- composition --------------------------------------------------------- */

/* Glorot-uniform weights (Glorot & Bengio 2010, eq. 16) of the encoder and
 * decoder, biases 0. */
static int init_classifier(nde_trainer *tr)
{
    const size_t D = tr->dim, F = tr->F, C = tr->C;
    double *we = tr->theta + tr->Pf, *wd = we + D * F + D, a;
    gsl_rng *r;
    size_t i;

    if (!(r = gsl_rng_alloc(gsl_rng_mt19937)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    gsl_rng_set(r, nde_seed_derive(nde_seed_derive(tr->set.seed,
                                                   NDE_STREAM_INIT), 1));
    a = sqrt(6.0 / (double)(F + D));
    for (i = 0; i < D * F; i++)
        we[i] = a * (2.0 * gsl_rng_uniform(r) - 1.0);
    a = sqrt(6.0 / (double)(D + C));
    for (i = 0; i < C * D; i++)
        wd[i] = a * (2.0 * gsl_rng_uniform(r) - 1.0);
    gsl_rng_free(r);
    return NDE_OK;
}

/* The loss of [train] (auto, mse or moments) against the field's kind;
 * an SDE field's evaluation paths raise the rows the field must take. */
static int sde_setup(nde_trainer *tr, nde_section *tsec, nde_section *dsec,
                     size_t *bmax)
{
    const nde_key *const tables[] = {nde_data_keys, NULL};
    const char *loss;
    long eval_paths;
    int rc;

    tr->sde = tr->field->noise != NDE_NOISE_NONE;
    if ((rc = nde_get_string(tsec, "loss", &loss, tr->ctx)) != NDE_OK)
        return rc;
    if (strcmp(loss, "auto") != 0 && strcmp(loss, "mse") != 0 &&
        strcmp(loss, "moments") != 0)
        return nde_section_error(tsec, "loss", tr->ctx,
                                 "unknown loss '%s' (known: auto, mse, "
                                 "moments)", loss);
    if (!tr->sde && strcmp(loss, "moments") == 0)
        return nde_section_error(tsec, "loss", tr->ctx,
                                 "moments fits the spread of sample paths: "
                                 "it needs an SDE field (this one has no "
                                 "diffusion)");
    if (tr->sde && strcmp(loss, "mse") == 0)
        return nde_section_error(tsec, "loss", tr->ctx,
                                 "mse against single paths does not fit "
                                 "an SDE field's noise: use moments");
    if (!tr->sde)
        return NDE_OK;
    if ((rc = nde_section_check(dsec, tables, tr->ctx)) != NDE_OK ||
        (rc = get_long_min(dsec, "eval_paths", 2, &eval_paths, tr->ctx)) !=
            NDE_OK)
        return rc;
    tr->eval_paths = (size_t)eval_paths;
    if (tr->eval_paths <= *bmax)
        return NDE_OK;
    *bmax = tr->eval_paths;
    nde_field_destroy(tr->field);
    tr->field = NULL;
    return nde_field_create(tr->ctx, tr->cfg, "field", *bmax, &tr->field);
}

int nde_trainer_create(nde_ctx *ctx, const nde_config *cfg, size_t min_batch,
                       nde_trainer **out)
{
    nde_section *tsec, *dsec, *ssec;
    nde_trainer *tr;
    size_t bmax, nb, P;
    int rc;

    *out = NULL;
    if (!(tr = calloc(1, sizeof *tr)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    tr->ctx = ctx;
    tr->cfg = cfg;
    if ((rc = nde_config_require(cfg, "train", &tsec, ctx)) != NDE_OK ||
        (rc = nde_config_require(cfg, "data", &dsec, ctx)) != NDE_OK ||
        (rc = nde_config_require(cfg, "solver", &ssec, ctx)) != NDE_OK ||
        (rc = read_settings(&tr->set, tsec, ctx)) != NDE_OK)
        goto fail;
    tr->B = (size_t)tr->set.batch_size;
    bmax = tr->B > min_batch ? tr->B : min_batch;
    if ((rc = nde_field_create(ctx, cfg, "field", bmax, &tr->field)) !=
            NDE_OK ||
        (rc = sde_setup(tr, tsec, dsec, &bmax)) != NDE_OK ||
        (rc = nde_solver_create(ctx, cfg, "solver", tr->field,
                                &tr->solver)) != NDE_OK ||
        (rc = nde_solve_opts_from_section(&tr->opts, tr->solver->type, ssec,
                                          ctx)) != NDE_OK ||
        (rc = nde_adjoint_create(ctx, cfg, "adjoint", "interpolating",
                                 tr->solver, &tr->adj)) != NDE_OK ||
        (rc = regs_create(tr)) != NDE_OK)
        goto fail;
    tr->dim = tr->field->dim;
    if (tr->sde) {
        if (!(tr->opts.dt > 0)) {
            rc = nde_section_error(ssec, "dt", ctx,
                                   "an SDE solve takes fixed steps: set "
                                   "dt > 0");
            goto fail;
        }
        if ((rc = nde_brownian_create(ctx, bmax * tr->dim, &tr->bm)) !=
            NDE_OK)
            goto fail;
    }
    P = tr->P = tr->field->nparams;
    if (!(tr->y0true = calloc(tr->dim, sizeof *tr->y0true))) {
        rc = nde_error(ctx, NDE_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = make_data(tr, dsec)) != NDE_OK)
        goto fail;
    tr->data_digest = data_digest(tr);
    tr->Pf = P;
    if (tr->classify)
        P = tr->P = P + tr->dim * tr->F + tr->dim + tr->C * tr->dim + tr->C;
    nb = tr->Tcap * tr->B * tr->dim;
    tr->theta = calloc(P + 1, sizeof *tr->theta);
    tr->grad = calloc(P + 1, sizeof *tr->grad);
    tr->m = calloc(P + 1, sizeof *tr->m);
    tr->v = calloc(P + 1, sizeof *tr->v);
    tr->starts = calloc(tr->B, sizeof *tr->starts);
    tr->y0b = calloc(tr->B * tr->dim, sizeof *tr->y0b);
    tr->ybar0 = calloc(tr->B * tr->dim, sizeof *tr->ybar0);
    tr->target = calloc(nb, sizeof *tr->target);
    tr->ysave = calloc(nb, sizeof *tr->ysave);
    tr->gbuf = calloc(nb, sizeof *tr->gbuf);
    tr->ct = calloc(tr->Tcap, sizeof *tr->ct);
    tr->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!tr->theta || !tr->grad || !tr->m || !tr->v || !tr->starts ||
        !tr->y0b || !tr->ybar0 || !tr->target || !tr->ysave || !tr->gbuf ||
        !tr->ct || !tr->rng) {
        rc = nde_error(ctx, NDE_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = regs_alloc(tr)) != NDE_OK)
        goto fail;
    gsl_rng_set(tr->rng, nde_seed_derive(tr->set.seed, NDE_STREAM_BATCHES));
    if ((rc = nde_field_init_params(tr->field, tr->theta,
                                    nde_seed_derive(tr->set.seed,
                                                    NDE_STREAM_INIT))) !=
            NDE_OK ||
        (tr->classify && (rc = init_classifier(tr)) != NDE_OK))
        goto fail;
    *out = tr;
    return NDE_OK;
fail:
    nde_trainer_destroy(tr);
    return rc;
}

void nde_trainer_destroy(nde_trainer *tr)
{
    if (!tr)
        return;
    for (size_t i = 0; i < tr->nnotes; i++)
        free(tr->notes[i]);
    free(tr->notes);
    nde_trajectory_destroy(tr->traj);
    nde_trajectory_destroy(tr->alt_traj);
    for (size_t i = 0; i < tr->nregs; i++) {
        nde_regularizer_destroy(tr->regs[i].r);
        free(tr->regs[i].name);
    }
    free(tr->regs);
    free(tr->reg_grad);
    free(tr->tk);
    free(tr->solve_t);
    free(tr->slot);
    free(tr->ysolve);
    free(tr->extra_t);
    free(tr->extra_y);
    free(tr->ct_all);
    nde_brownian_destroy(tr->bm);
    free(tr->data_mean);
    free(tr->data_var);
    free(tr->model_mean);
    free(tr->model_var);
    free(tr->eval_y);
    free(tr->eval_y0);
    if (tr->rng)
        gsl_rng_free(tr->rng);
    nde_adjoint_destroy(tr->adj);
    nde_solver_destroy(tr->solver);
    nde_field_destroy(tr->field);
    free(tr->y0true);
    if (tr->tsave != tr->tgrid)
        free(tr->tsave);
    free(tr->tgrid);
    free(tr->truth);
    free(tr->obs);
    free(tr->choices);
    nde_dataset_destroy(tr->ds_train);
    nde_dataset_destroy(tr->ds_test);
    nde_dataset_destroy(tr->idx_train);
    nde_dataset_destroy(tr->idx_test);
    free(tr->perm);
    if (tr->perm_rng)
        gsl_rng_free(tr->perm_rng);
    free(tr->xb);
    free(tr->prob);
    free(tr->yb);
    free(tr->test_prob);
    free(tr->test_id);
    free(tr->test_n);
    free(tr->test_t);
    free(tr->test_obs);
    free(tr->test_pred);
    free(tr->test_tshift);
    free(tr->pred_buf);
    free(tr->theta);
    free(tr->grad);
    free(tr->m);
    free(tr->v);
    free(tr->starts);
    free(tr->y0b);
    free(tr->ybar0);
    free(tr->target);
    free(tr->ysave);
    free(tr->gbuf);
    free(tr->ct);
    free(tr);
}

const nde_train_settings *nde_trainer_settings(const nde_trainer *tr)
{
    return &tr->set;
}
nde_field *nde_trainer_field(const nde_trainer *tr) { return tr->field; }
nde_solver *nde_trainer_solver(const nde_trainer *tr) { return tr->solver; }
nde_adjoint *nde_trainer_adjoint(const nde_trainer *tr) { return tr->adj; }
const nde_trajectory *nde_trainer_trajectory(const nde_trainer *tr)
{
    return tr->traj;
}
double *nde_trainer_params(const nde_trainer *tr) { return tr->theta; }
size_t nde_trainer_nparams(const nde_trainer *tr) { return tr->P; }
long nde_trainer_iteration(const nde_trainer *tr) { return tr->iter; }
const nde_train_totals *nde_trainer_totals(const nde_trainer *tr)
{
    return &tr->tot;
}

/* ---- one iteration ------------------------------------------------------- */

/* Draw batch_size distinct window starts and gather y0 rows and targets. */
static void sample_windows(nde_trainer *tr)
{
    const size_t D = tr->dim, B = tr->B;
    size_t b, k;

    gsl_ran_choose(tr->rng, tr->starts, B, tr->choices, tr->nchoices,
                   sizeof *tr->starts);
    for (b = 0; b < B; b++) {
        memcpy(tr->y0b + b * D, tr->obs + tr->starts[b] * D,
               D * sizeof *tr->y0b);
        for (k = 0; k < tr->bt; k++)
            memcpy(tr->target + (k * B + b) * D,
                   tr->obs + (tr->starts[b] + k) * D, D * sizeof *tr->target);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Index of t in the sorted tsave[0..n) (present by construction). */
static size_t find_time(const double *tsave, size_t n, double t)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tsave[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Draw batch_size distinct series; the save times are the union of their
 * shifted times, a target is NaN where a series has no observation. */
static void sample_series(nde_trainer *tr)
{
    const size_t D = tr->dim, B = tr->B;
    const nde_dataset *d = tr->ds_train;
    size_t b, j, n = 0, u;

    gsl_ran_choose(tr->rng, tr->starts, B, tr->choices, tr->nchoices,
                   sizeof *tr->starts);
    for (b = 0; b < B; b++) {
        const nde_series *s = &d->series[tr->starts[b]];
        for (j = 0; j < s->npoints; j++)
            tr->tsave[n++] = s->t[j] - s->t[0];
    }
    qsort(tr->tsave, n, sizeof *tr->tsave, cmp_double);
    for (j = u = 0; j < n; j++)
        if (u == 0 || tr->tsave[j] != tr->tsave[u - 1])
            tr->tsave[u++] = tr->tsave[j];
    tr->T = u;
    for (j = 0; j < u * B * D; j++)
        tr->target[j] = NAN;
    for (b = 0; b < B; b++) {
        const nde_series *s = &d->series[tr->starts[b]];
        memcpy(tr->y0b + b * D, s->y, D * sizeof *tr->y0b);
        for (j = 0; j < s->npoints; j++) {
            size_t k = find_time(tr->tsave, u, s->t[j] - s->t[0]);
            memcpy(tr->target + (k * B + b) * D, s->y + j * D,
                   D * sizeof *tr->target);
        }
    }
}

/* Examples iter * B ... iter * B + B - 1 of the stream made of one random
 * permutation of the training set per epoch: it depends on the iteration
 * alone, so a resumed run draws the same batches. */
static void sample_examples(nde_trainer *tr)
{
    const nde_dataset *d = tr->idx_train;
    const size_t N = d->nexamples, B = tr->B, F = tr->F;
    const uint64_t base = nde_seed_derive(tr->set.seed, NDE_STREAM_BATCHES);
    size_t b, j;

    for (b = 0; b < B; b++) {
        const uint64_t k = (uint64_t)tr->iter * B + b;
        const long epoch = (long)(k / N);
        if (epoch != tr->perm_epoch) {
            for (j = 0; j < N; j++)
                tr->perm[j] = j;
            gsl_rng_set(tr->perm_rng, nde_seed_derive(base, (uint64_t)epoch));
            gsl_ran_shuffle(tr->perm_rng, tr->perm, N, sizeof *tr->perm);
            tr->perm_epoch = epoch;
        }
        j = tr->perm[k % N];
        memcpy(tr->xb + b * F, d->x + j * F, F * sizeof *tr->xb);
        tr->yb[b] = d->label[j];
    }
}

static void sample_batch(nde_trainer *tr)
{
    size_t b;

    if (tr->classify)
        sample_examples(tr);
    else if (tr->sde)
        /* every row a path from the true y0; the draws are the Brownian
         * path's */
        for (b = 0; b < tr->B; b++)
            memcpy(tr->y0b + b * tr->dim, tr->y0true,
                   tr->dim * sizeof *tr->y0b);
    else if (tr->ds_train)
        sample_series(tr);
    else
        sample_windows(tr);
}

/*
 * MSE over every observed value, and its gradient as cotangents. The
 * window's first point is its y0 (residual 0, no gradient): it counts in
 * the mean, as in torchdiffeq's demo, but gets no cotangent. tk: the
 * save times as solved (stretched when a regularizer moved t1).
 */
static double mse_cotangents(nde_trainer *tr, const double *tk,
                             size_t *nct)
{
    const size_t per = tr->B * tr->dim, n = tr->T * per;
    double sum = 0.0, scale;
    size_t i, count = 0, k;

    for (i = 0; i < n; i++) {
        double r = tr->ysave[i] - tr->target[i];
        if (isnan(tr->target[i])) {
            tr->gbuf[i] = 0.0;
            continue;
        }
        tr->gbuf[i] = r;
        sum += r * r;
        count++;
    }
    if (count == 0)
        return NAN;
    scale = 2.0 / (double)count;
    for (i = 0; i < n; i++)
        tr->gbuf[i] *= scale;
    *nct = 0;
    for (k = 1; k < tr->T; k++) {
        tr->ct[*nct].t = tk[k];
        tr->ct[*nct].g = tr->gbuf + k * per;
        (*nct)++;
    }
    return sum / (double)count;
}

/* The moments loss of the batch's paths and its cotangents at the
 * observation times after t0 (at t0 every row is y0: no gradient). */
static double moments_cotangents(nde_trainer *tr, const double *tk,
                                 size_t *nct)
{
    const size_t per = tr->B * tr->dim;
    double loss;
    size_t k;

    loss = nde_moments_loss(tr->ysave, tr->T, tr->B, tr->dim, tr->data_mean,
                            tr->data_var, tr->gbuf, NULL, NULL);
    *nct = 0;
    for (k = 1; k < tr->T; k++) {
        tr->ct[*nct].t = tk[k];
        tr->ct[*nct].g = tr->gbuf + k * per;
        (*nct)++;
    }
    return loss;
}

/* ---- classification: encoder -> ODE on [0, 1] -> decoder -> softmax ---- */

static const double t_end = 1.0;

/* y0 = x W^T + b for n rows. */
static void encode(const nde_trainer *tr, const double *theta,
                   const double *x, size_t n, double *y0)
{
    const size_t D = tr->dim, F = tr->F;
    const double *W = theta + tr->Pf, *bias = W + D * F;
    size_t b, d, f;

    for (b = 0; b < n; b++)
        for (d = 0; d < D; d++) {
            const double *w = W + d * F, *xr = x + b * F;
            double s = bias[d];
            for (f = 0; f < F; f++)
                s += w[f] * xr[f];
            y0[b * D + d] = s;
        }
}

/* Logits y W^T + b of n rows into p, the cross-entropy summed over the
 * rows (log-sum-exp shifted by the row's largest logit), p overwritten by
 * the softmax probabilities. */
static double decode_xent(const nde_trainer *tr, const double *theta,
                          const double *y, const int *label, size_t n,
                          double *p)
{
    const size_t D = tr->dim, C = tr->C;
    const double *W = theta + tr->Pf + D * tr->F + D, *bias = W + C * D;
    double sum = 0.0;
    size_t b, c, d;

    for (b = 0; b < n; b++) {
        double *row = p + b * C, mx = -HUGE_VAL, z = 0.0, lse;
        for (c = 0; c < C; c++) {
            double s = bias[c];
            for (d = 0; d < D; d++)
                s += W[c * D + d] * y[b * D + d];
            row[c] = s;
            if (s > mx)
                mx = s;
        }
        for (c = 0; c < C; c++)
            z += exp(row[c] - mx);
        lse = mx + log(z);
        sum += lse - row[label[b]];
        for (c = 0; c < C; c++)
            row[c] = exp(row[c] - lse);
    }
    return sum;
}

/* Mean cross-entropy of n rows back through the decoder: dL/dlogits =
 * (p - onehot) / n; the decoder's gradient into grad, dL/dy(1) into gy. */
static void decoder_vjp(const nde_trainer *tr, const double *theta,
                        const double *y, const int *label, size_t n,
                        const double *p, double *grad, double *gy)
{
    const size_t D = tr->dim, C = tr->C, off = tr->Pf + D * tr->F + D;
    const double *W = theta + off;
    double *gW = grad + off, *gb = gW + C * D;
    size_t b, c, d;

    memset(gW, 0, (C * D + C) * sizeof *gW);
    for (b = 0; b < n; b++) {
        double *gyr = gy + b * D;
        memset(gyr, 0, D * sizeof *gyr);
        for (c = 0; c < C; c++) {
            const double g =
                (p[b * C + c] - (label[b] == (int)c ? 1.0 : 0.0)) / (double)n;
            gb[c] += g;
            for (d = 0; d < D; d++) {
                gW[c * D + d] += g * y[b * D + d];
                gyr[d] += g * W[c * D + d];
            }
        }
    }
}

/* The encoder's gradient from dL/dy0 (ybar0, n rows). */
static void encoder_vjp(const nde_trainer *tr, const double *x,
                        const double *ybar0, size_t n, double *grad)
{
    const size_t D = tr->dim, F = tr->F;
    double *gW = grad + tr->Pf, *gb = gW + D * F;
    size_t b, d, f;

    memset(gW, 0, (D * F + D) * sizeof *gW);
    for (b = 0; b < n; b++)
        for (d = 0; d < D; d++) {
            const double g = ybar0[b * D + d];
            const double *xr = x + b * F;
            double *w = gW + d * F;
            gb[d] += g;
            for (f = 0; f < F; f++)
                w[f] += g * xr[f];
        }
}

static int classify_loss_grad(nde_trainer *tr, nde_adjoint *a,
                              nde_trajectory *traj, const double *theta,
                              double *loss, double *grad, nde_stats *st)
{
    const size_t B = tr->B;
    nde_solve_opts o = tr->opts;
    const nde_cotangent *ct = tr->ct;
    const double *ts = &t_end;
    double t1s = t_end, reg;
    size_t nct = 1, ns = 1, i;
    double *yout = tr->ysave;
    int rc;

    o.record = grad || tr->nregs ? traj : NULL;
    memset(st, 0, sizeof *st);
    tr->reg_total = 0.0;
    if ((rc = nde_solver_set_batch(tr->solver, B)) != NDE_OK)
        return rc;
    encode(tr, theta, tr->xb, B, tr->y0b);
    if (tr->nregs) {
        if ((rc = regs_before(tr, 0.0, &t1s)) != NDE_OK)
            return rc;
        plan_saves(tr, 0.0, t_end, t1s, &t_end, 1);
        ts = tr->solve_t;
        ns = tr->nsolve;
        yout = tr->ysolve;
    }
    rc = nde_solve(tr->solver, &o, theta, 0.0, tr->y0b, t1s, ns, ts, yout,
                   st);
    st->status = rc;
    st->nfe_backward = 0;
    if (rc != NDE_OK) {
        nde_error_prefix(tr->ctx, "forward solve");
        return rc;
    }
    if (tr->nregs)
        gather_saves(tr, tr->ysave, 1);
    *loss = decode_xent(tr, theta, tr->ysave, tr->yb, B, tr->prob) /
            (double)B;
    if (!isfinite(*loss))
        return nde_error(tr->ctx, NDE_ENONFINITE,
                         "the loss is not finite (%g)", *loss);
    if (tr->nregs) {
        if ((rc = regs_after(tr, &o, traj, theta, 0.0, t1s, st, &reg)) !=
            NDE_OK)
            return rc;
        tr->reg_total = reg;
        *loss += reg;
    }
    if (!grad)
        return NDE_OK;
    decoder_vjp(tr, theta, tr->ysave, tr->yb, B, tr->prob, grad, tr->gbuf);
    tr->ct[0].t = t1s;
    tr->ct[0].g = tr->gbuf;
    if (tr->nregs &&
        (rc = merge_cotangents(tr, tr->ct, 1, 0.0, t1s, &ct, &nct)) != NDE_OK)
        return rc;
    rc = nde_adjoint_gradient(a, &o, traj, theta, ct, nct, tr->ybar0, grad,
                              st);
    st->status = rc;
    if (rc != NDE_OK) {
        nde_error_prefix(tr->ctx, "gradient (adjoint '%s')",
                         a->type->info.name);
        return rc;
    }
    encoder_vjp(tr, tr->xb, tr->ybar0, B, grad);
    for (i = 0; tr->nregs && i < tr->P; i++)
        grad[i] += tr->reg_grad[i];
    return NDE_OK;
}

/* The test set in chunks of batch_size rows. */
static int classify_evaluate(nde_trainer *tr, nde_eval_result *r)
{
    const nde_dataset *d = tr->idx_test;
    const size_t N = d->nexamples, B = tr->B, C = tr->C;
    nde_solve_opts o = tr->opts;
    double start = now_s(), sum = 0.0;
    size_t i, n, c, correct = 0;
    nde_stats st;
    int rc = NDE_OK;

    o.record = NULL;
    for (i = 0; i < N && rc == NDE_OK; i += n) {
        n = N - i < B ? N - i : B;
        encode(tr, tr->theta, d->x + i * tr->F, n, tr->y0b);
        if ((rc = nde_solver_set_batch(tr->solver, n)) != NDE_OK)
            break;
        rc = nde_solve(tr->solver, &o, tr->theta, 0.0, tr->y0b, t_end, 1,
                       &t_end, tr->ysave, &st);
        r->nfe += st.nfe;
        if (rc == NDE_OK)
            sum += decode_xent(tr, tr->theta, tr->ysave, d->label + i, n,
                               tr->test_prob + i * C);
    }
    r->time_s = now_s() - start;
    if (rc != NDE_OK) {
        nde_error_prefix(tr->ctx, "evaluation after iteration %ld", tr->iter);
        return rc;
    }
    for (i = 0; i < N; i++) {
        const double *p = tr->test_prob + i * C;
        size_t best = 0;
        for (c = 1; c < C; c++)
            if (p[c] > p[best])
                best = c;
        correct += (int)best == d->label[i];
    }
    r->test_loss = sum / (double)N;
    r->test_accuracy = (double)correct / (double)N;
    return NDE_OK;
}

static int loss_grad(nde_trainer *tr, nde_adjoint *a, nde_trajectory *traj,
                     const double *theta, double *loss, double *grad,
                     nde_stats *st)
{
    nde_solve_opts o = tr->opts;
    const nde_cotangent *ct = tr->ct;
    const double *ts = tr->tsave;
    double *yout = tr->ysave, t0, t1, t1s, reg;
    size_t nct = 0, ns = tr->T, i;
    int rc;

    if (tr->classify)
        return classify_loss_grad(tr, a, traj, theta, loss, grad, st);

    o.record = grad || tr->nregs ? traj : NULL;
    memset(st, 0, sizeof *st);
    tr->reg_total = 0.0;
    if ((rc = nde_solver_set_batch(tr->solver, tr->B)) != NDE_OK)
        return rc;
    if (tr->T < 2)
        return nde_error(tr->ctx, NDE_ECONFIG,
                         "the mini-batch has a single observation time: "
                         "nothing to fit");
    t0 = tr->tsave[0];
    t1 = t1s = tr->tsave[tr->T - 1];
    if (tr->nregs) {
        if ((rc = regs_before(tr, t0, &t1s)) != NDE_OK)
            return rc;
        plan_saves(tr, t0, t1, t1s, tr->tsave, tr->T);
        ts = tr->solve_t;
        ns = tr->nsolve;
        yout = tr->ysolve;
    }
    /* A fixed-step solver's grid stretches with the observation times
     * when STEER moves t1, so they stay grid points (and the solve takes
     * as many steps as unmoved). */
    if (tr->solver->type->ops && t1s != t1)
        o.dt *= (t1s - t0) / (t1 - t0);
    if (tr->sde) {
        /* the iteration's path on the solve's interval (moved by STEER) */
        if ((rc = nde_brownian_reset(tr->bm,
                                     brownian_seed(tr, (uint64_t)tr->iter),
                                     t0, t1s, o.dt, tr->B * tr->dim)) !=
            NDE_OK)
            return rc;
        o.brownian = tr->bm;
    }
    rc = nde_solve(tr->solver, &o, theta, t0, tr->y0b, t1s, ns, ts, yout,
                   st);
    st->status = rc;
    st->nfe_backward = 0;
    if (rc != NDE_OK) {
        nde_error_prefix(tr->ctx, "forward solve");
        return rc;
    }
    if (tr->nregs)
        gather_saves(tr, tr->ysave, tr->T);
    if (tr->sde)
        *loss = moments_cotangents(tr, tr->nregs ? tr->tk : tr->tsave,
                                   &nct);
    else
        *loss = mse_cotangents(tr, tr->nregs ? tr->tk : tr->tsave, &nct);
    if (!isfinite(*loss))
        return nde_error(tr->ctx, NDE_ENONFINITE,
                         "the loss is not finite (%g)", *loss);
    if (tr->nregs) {
        if ((rc = regs_after(tr, &o, traj, theta, t0, t1s, st, &reg)) !=
            NDE_OK)
            return rc;
        tr->reg_total = reg;
        *loss += reg;
    }
    if (!grad)
        return NDE_OK;
    if (tr->nregs &&
        (rc = merge_cotangents(tr, tr->ct, nct, t0, t1s, &ct, &nct)) !=
            NDE_OK)
        return rc;
    rc = nde_adjoint_gradient(a, &o, traj, theta, ct, nct, tr->ybar0, grad,
                              st);
    st->status = rc;
    if (rc != NDE_OK) {
        nde_error_prefix(tr->ctx, "gradient (adjoint '%s')",
                         a->type->info.name);
        return rc;
    }
    for (i = 0; tr->nregs && i < tr->P; i++)
        grad[i] += tr->reg_grad[i];
    return NDE_OK;
}

/* Adam (Kingma & Ba 2015, Algorithm 1) with an L2 term added to the
 * gradient as torch.optim.Adam's weight_decay does. Pass 0 only checks
 * that every new theta, m and v is finite (g * g of a huge weight-decay
 * term can overflow v), pass 1 stores them: a refused update leaves the
 * state as it was, and no checkpoint holds what its loader refuses. */
static int adam_update(nde_trainer *tr)
{
    const nde_train_settings *s = &tr->set;
    const double t = (double)(tr->adam_t + 1);
    const double lr = s->lr * pow(s->lr_decay, (double)tr->adam_t);
    const double c1 = 1.0 - pow(s->beta1, t), c2 = 1.0 - pow(s->beta2, t);
    double g, m, v, th;
    size_t i;
    int pass;

    for (pass = 0; pass < 2; pass++)
        for (i = 0; i < tr->P; i++) {
            g = tr->grad[i] + s->weight_decay * tr->theta[i];
            m = s->beta1 * tr->m[i] + (1.0 - s->beta1) * g;
            v = s->beta2 * tr->v[i] + (1.0 - s->beta2) * g * g;
            th = tr->theta[i] - lr * (m / c1) / (sqrt(v / c2) + s->eps);
            if (pass == 0 && !(isfinite(th) && isfinite(m) && isfinite(v)))
                return nde_error(tr->ctx, NDE_ENONFINITE,
                                 "the Adam update of parameter %zu is not "
                                 "finite (theta %g, m %g, v %g: lr or "
                                 "weight_decay too large?)", i, th, m, v);
            if (pass == 1) {
                tr->m[i] = m;
                tr->v[i] = v;
                tr->theta[i] = th;
            }
        }
    tr->adam_t++;
    return NDE_OK;
}

int nde_trainer_step(nde_trainer *tr, nde_train_step *m)
{
    const double start = now_s();
    double norm = 0.0;
    nde_stats st;
    size_t i;
    int rc;

    memset(m, 0, sizeof *m);
    m->iteration = tr->iter + 1;
    m->loss = NAN;
    m->grad_norm = NAN;
    sample_batch(tr);
    rc = loss_grad(tr, tr->adj, tr->traj, tr->theta, &m->loss, tr->grad, &st);
    m->reg = tr->reg_total;
    m->nfe_forward = st.nfe;
    m->nfe_backward = st.nfe_backward;
    m->steps_accepted = st.steps_accepted;
    m->steps_rejected = st.steps_rejected;
    tr->tot.nfe_forward += st.nfe;
    tr->tot.nfe_backward += st.nfe_backward;
    if (rc == NDE_OK) {
        for (i = 0; i < tr->P; i++)
            norm += tr->grad[i] * tr->grad[i];
        norm = sqrt(norm);
        m->grad_norm = norm;
        if (!isfinite(norm))
            rc = nde_error(tr->ctx, NDE_ENONFINITE,
                           "the gradient is not finite");
    }
    if (rc == NDE_OK) {
        if (tr->set.clip > 0 && norm > tr->set.clip)
            for (i = 0; i < tr->P; i++)
                tr->grad[i] *= tr->set.clip / norm;
        rc = adam_update(tr);
    }
    if (rc != NDE_OK) {
        nde_error_prefix(tr->ctx, "iteration %ld", m->iteration);
        m->time_s = now_s() - start;
        tr->tot.time_s += m->time_s;
        return rc;
    }
    tr->iter++;
    m->time_s = now_s() - start;
    tr->tot.time_s += m->time_s;
    return NDE_OK;
}

/* ---- evaluation and prediction ------------------------------------------- */

static int predict(nde_trainer *tr, uint64_t seed, double t0,
                   const double *y0, size_t batch, double t1, size_t nsave,
                   const double *tsave, double *ysave, nde_stats *st)
{
    nde_solve_opts o = tr->opts;
    int rc;

    o.record = NULL;
    memset(st, 0, sizeof *st);
    if (batch > tr->solver->batch_max)
        return nde_error(tr->ctx, NDE_EINVAL,
                         "predict: %zu initial states, at most %zu", batch,
                         tr->solver->batch_max);
    if ((rc = nde_solver_set_batch(tr->solver, batch)) != NDE_OK)
        return rc;
    if (tr->sde) {
        if (!(t1 > t0))
            return nde_error(tr->ctx, NDE_EINVAL,
                             "predict: an SDE is sampled forwards (t0 %g, "
                             "t1 %g)", t0, t1);
        if ((rc = nde_brownian_reset(tr->bm, seed, t0, t1, o.dt,
                                     batch * tr->dim)) != NDE_OK)
            return rc;
        o.brownian = tr->bm;
    }
    rc = nde_solve(tr->solver, &o, tr->theta, t0, y0, t1, nsave, tsave,
                   ysave, st);
    st->status = rc;
    return rc;
}

int nde_trainer_predict(nde_trainer *tr, double t0, const double *y0,
                        size_t batch, double t1, size_t nsave,
                        const double *tsave, double *ysave, nde_stats *st)
{
    return predict(tr, brownian_seed(tr, EVAL_PATH), t0, y0, batch, t1,
                   nsave, tsave, ysave, st);
}

int nde_trainer_sample(nde_trainer *tr, uint64_t seed, double t0,
                       const double *y0, size_t batch, double t1,
                       size_t nsave, const double *tsave, double *ysave,
                       nde_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!tr->sde)
        return nde_error(tr->ctx, NDE_EINVAL,
                         "sample: the field is not an SDE (no diffusion)");
    return predict(tr, seed, t0, y0, batch, t1, nsave, tsave, ysave, st);
}

/* SDE fields: the moments loss of eval_paths model paths of the fixed
 * evaluation path. */
static int sde_evaluate(nde_trainer *tr, nde_eval_result *r)
{
    const size_t T = tr->npoints;
    double start = now_s();
    nde_stats st;
    int rc;

    rc = predict(tr, brownian_seed(tr, EVAL_PATH), tr->tgrid[0], tr->eval_y0,
                 tr->eval_paths, tr->tgrid[T - 1], T, tr->tgrid, tr->eval_y,
                 &st);
    r->nfe = st.nfe;
    r->time_s = now_s() - start;
    if (rc != NDE_OK) {
        nde_error_prefix(tr->ctx, "evaluation after iteration %ld", tr->iter);
        return rc;
    }
    r->test_loss = nde_moments_loss(tr->eval_y, T, tr->eval_paths, tr->dim,
                                    tr->data_mean, tr->data_var, NULL,
                                    tr->model_mean, tr->model_var);
    return NDE_OK;
}

int nde_trainer_evaluate(nde_trainer *tr, nde_eval_result *r)
{
    const size_t D = tr->dim;
    double start, sum = 0.0;
    size_t i, j, count = 0;
    nde_stats st;
    int rc = NDE_OK;

    memset(r, 0, sizeof *r);
    r->test_loss = NAN;
    r->test_accuracy = NAN;
    if (tr->classify)
        return classify_evaluate(tr, r);
    if (tr->sde)
        return sde_evaluate(tr, r);
    start = now_s();
    for (i = 0; i < tr->ntest && rc == NDE_OK; i++) {
        const size_t n = tr->test_n[i];
        const double *t = tr->test_t[i];
        if (tr->test_tshift) {
            for (j = 0; j < n; j++)
                tr->test_tshift[j] = tr->test_t[i][j] - tr->test_t[i][0];
            t = tr->test_tshift;
        }
        if (n < 2) {
            memcpy(tr->test_pred[i], tr->test_obs[i], D * sizeof(double));
            continue;
        }
        rc = nde_trainer_predict(tr, t[0],
                                 tr->test_tshift ? tr->test_obs[i]
                                                 : tr->y0true,
                                 1, t[n - 1], n, t, tr->test_pred[i], &st);
        r->nfe += st.nfe;
    }
    r->time_s = now_s() - start;
    if (rc != NDE_OK) {
        nde_error_prefix(tr->ctx, "evaluation after iteration %ld", tr->iter);
        return rc;
    }
    for (i = 0; i < tr->ntest; i++)
        for (j = 0; j < tr->test_n[i] * D; j++) {
            double d = tr->test_pred[i][j] - tr->test_obs[i][j];
            if (isnan(tr->test_obs[i][j]))
                continue;
            sum += d * d;
            count++;
        }
    r->test_loss = count ? sum / (double)count : NAN;
    return NDE_OK;
}

size_t nde_trainer_ntest(const nde_trainer *tr) { return tr->ntest; }

size_t nde_trainer_test_series(const nde_trainer *tr, size_t i,
                               const char **id, const double **t,
                               const double **pred)
{
    if (tr->classify) {
        *id = NULL;
        *t = *pred = NULL;
        return 0;
    }
    *id = tr->test_id[i];
    *t = tr->test_t[i];
    *pred = tr->test_pred[i];
    return tr->test_n[i];
}

/* ---- gradient check ------------------------------------------------------ */

int nde_trainer_probe(nde_trainer *tr)
{
    sample_batch(tr);
    return NDE_OK;
}

int nde_trainer_loss_grad(nde_trainer *tr, nde_adjoint *a,
                          const double *theta, double *loss, double *grad,
                          nde_stats *st)
{
    nde_trajectory *traj = tr->traj;
    unsigned record;
    size_t max_states;

    if (a && a != tr->adj && grad) {
        record_for(tr, a, &record, &max_states);
        if (tr->alt_traj && (tr->alt_traj->record != record ||
                             tr->alt_traj->max_states != max_states)) {
            nde_trajectory_destroy(tr->alt_traj);
            tr->alt_traj = NULL;
        }
        if (!tr->alt_traj &&
            !(tr->alt_traj = nde_trajectory_create(record, max_states)))
            return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
        traj = tr->alt_traj;
    }
    return loss_grad(tr, a ? a : tr->adj, traj, theta, loss, grad, st);
}

size_t nde_trainer_test_classes(const nde_trainer *tr, const int **label,
                                const double **prob)
{
    if (!tr->classify) {
        *label = NULL;
        *prob = NULL;
        return 0;
    }
    *label = tr->idx_test->label;
    *prob = tr->test_prob;
    return tr->C;
}

void nde_trainer_param_name(const nde_trainer *tr, size_t i, char *buf,
                            size_t size)
{
    const size_t D = tr->dim, F = tr->F, C = tr->C;

    if (i < tr->Pf) {
        nde_field_param_name(tr->field, i, buf, size);
        return;
    }
    i -= tr->Pf;
    if (i < D * F)
        snprintf(buf, size, "enc.W[%zu,%zu]", i / F, i % F);
    else if ((i -= D * F) < D)
        snprintf(buf, size, "enc.b[%zu]", i);
    else if ((i -= D) < C * D)
        snprintf(buf, size, "dec.W[%zu,%zu]", i / D, i % D);
    else
        snprintf(buf, size, "dec.b[%zu]", i - C * D);
}

size_t nde_trainer_nregularizers(const nde_trainer *tr) { return tr->nregs; }

const char *nde_trainer_regularizer(const nde_trainer *tr, size_t i,
                                    double *value)
{
    if (i >= tr->nregs) {
        if (value)
            *value = NAN;
        return NULL;
    }
    if (value)
        *value = tr->regs[i].value;
    return tr->regs[i].name;
}

int nde_trainer_add_regularizer(nde_trainer *tr, const char *name,
                                nde_regularizer *r,
                                const nde_weight_schedule *w)
{
    int rc;

    if (!r || !w || !name || !nde_plugin_name_valid(name))
        return nde_error(tr->ctx, NDE_EINVAL,
                         "add regularizer: a name matching [a-z0-9_]+, a "
                         "regularizer and a schedule are needed");
    if (r->solver != tr->solver)
        return nde_error(tr->ctx, NDE_EINVAL,
                         "add regularizer '%s': made for another solver",
                         name);
    for (size_t i = 0; i < tr->nregs; i++)
        if (strcmp(tr->regs[i].name, name) == 0)
            return nde_error(tr->ctx, NDE_EINVAL,
                             "add regularizer '%s': the name is taken", name);
    if ((rc = push_regularizer(tr, name, r, w)) != NDE_OK)
        return rc;
    if ((rc = regs_alloc(tr)) != NDE_OK) {
        /* the caller keeps r */
        tr->nregs--;
        free(tr->regs[tr->nregs].name);
        regs_alloc(tr);
    }
    return rc;
}
