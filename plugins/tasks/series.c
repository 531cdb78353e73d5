/*
 * The series task ([data] source = csv): time series read by
 * nde_data_read_csv, split into whole series (test_fraction, by
 * nde_data_split) or into every series' prefix and its last K
 * observations (holdout = end:K) or those from a time on (holdout_from =
 * T); a batch is whole training series, each
 * from its first observation, times shifted to start at 0. With
 * normalize the model works in units fitted on the training part
 * (task_units_fit); the data stay in their own units and are scaled as
 * batches are drawn, predictions scaled back.
 *
 * The training loss is the MSE, or with [data] likelihood the mean
 * negative log-likelihood of every observed value under Gaussian noise
 * (in the model's units) or log-normal noise (log value ~ N(log
 * prediction, sigma_j^2), in the data's units), with a learned scale
 * per state: parameters log_sigma[j] after learn_y0's. The readout
 * carries them beside the states (obs_dim 2 dim: the state, then
 * log_sigma of its column), so the loss sees them and readout_vjp takes
 * their gradient. test_loss stays the MSE in the data's units. The
 * contract is nde/train.h's.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "task_util.h"

static const nde_key series_keys[] = {
    {"source", NDE_KEY_WORD, NULL, "csv"},
    {"path", NDE_KEY_TEXT, "",
     "the file (series id, t, one column per state; relative to the "
     "config's directory)"},
    {"test_fraction", NDE_KEY_DOUBLE, "0.2",
     "fraction of the series held out for testing (whole series)"},
    {"holdout", NDE_KEY_TEXT, "",
     "end:K: forecast every series' last K observations instead (trained "
     "on the rest; evaluated from each series' first observation, "
     "test_loss over the last K alone); not with test_fraction"},
    {"holdout_from", NDE_KEY_DOUBLE, "",
     "forecast every observation at t >= this time (the data's time) "
     "instead, as holdout = end:K does"},
    TASK_NORMALIZE_KEY,
    {"likelihood", NDE_KEY_WORD, "mse",
     "mse | gaussian | lognormal: the training loss, the MSE or the mean "
     "negative log-likelihood of the observations under Gaussian noise "
     "(model's units) or log-normal noise (data's units, every value "
     "positive), with learned scales log_sigma[j] (initially 0)"},
    {"learn_y0", NDE_KEY_BOOL, "false",
     "learn each training series' initial state (parameters y0[i,j], i the "
     "training series in file order, in the model's units), fitted to its "
     "first observation with the rest; series held out whole start from "
     "their first observation"},
    {NULL, 0, NULL, NULL}};

typedef struct series {
    nde_dataset *train, *test;
    const nde_dataset *held;   /* test, or train when test is empty       */
    size_t *from;              /* held series i is scored from its
                                  observation from[i] (holdout: n - K)    */
    double *shift, *scale;     /* [data] normalize (NULL: none)           */
    int log_units;             /* normalize = log: of the values' logs    */
    int learn_y0;              /* theta: ntrain x dim initial states      */
    enum { LIK_MSE, LIK_GAUSSIAN, LIK_LOGNORMAL } lik;
    size_t ny0;                /* learn_y0's parameters; log_sigma after  */
    size_t nchoices, *choices; /* the training series, for gsl_ran_choose */
    size_t *pick;              /* rows: the batch's series                */
    double *tsave;             /* the batch's save times (max_saves)      */
    double *y0;                /* rows x dim                              */
    double *target;            /* max_saves x rows x dim                  */
    size_t *test_n;            /* held-out series' lengths                */
    size_t *score_n;           /* their scored parts'                     */
    const double **score_obs;
    double **score_pred;
    double **test_pred;        /* into pred_buf                           */
    double *pred_buf, *tshift; /* tshift: the longest held-out series     */
} series;

/* The forecast split's rule: none, [data] holdout = end:K or
 * holdout_from = T (one of them, and not with test_fraction). */
typedef struct holdout_rule {
    size_t last;            /* end:K, 0 when unset                         */
    int from_set;
    double from;            /* holdout_from                                */
} holdout_rule;

static int read_holdout(nde_section *dsec, holdout_rule *h, nde_ctx *ctx)
{
    const char *text, *key;
    char *end;
    long k;
    int rc;

    memset(h, 0, sizeof *h);
    h->from_set = nde_section_has(dsec, "holdout_from");
    if (!h->from_set && !nde_section_has(dsec, "holdout"))
        return NDE_OK;
    key = h->from_set ? "holdout_from" : "holdout";
    if (h->from_set && nde_section_has(dsec, "holdout"))
        return nde_section_error(dsec, key, ctx,
                                 "holdout and holdout_from both hold out "
                                 "each series' end: set one");
    if (nde_section_has(dsec, "test_fraction"))
        return nde_section_error(dsec, key, ctx,
                                 "%s and test_fraction both hold out "
                                 "data: set one (%s forecasts every "
                                 "series' end, test_fraction "
                                 "holds out whole series)", key, key);
    if (h->from_set)
        return nde_get_double(dsec, "holdout_from", &h->from, ctx);
    if ((rc = nde_get_string(dsec, "holdout", &text, ctx)) != NDE_OK)
        return rc;
    k = strncmp(text, "end:", 4) == 0 && isdigit((unsigned char)text[4])
            ? strtol(text + 4, &end, 10)
            : 0;
    if (k <= 0 || *end != '\0')
        return nde_section_error(dsec, "holdout", ctx,
                                 "'%s' is not end:K (K a positive whole "
                                 "number of observations)", text);
    h->last = (size_t)k;
    return NDE_OK;
}

/* How many of series e's last observations the rule holds out. */
static size_t held_count(const holdout_rule *h, const nde_series *e)
{
    size_t k = 0;

    if (!h->from_set)
        return h->last;
    while (k < e->npoints && e->t[e->npoints - 1 - k] >= h->from)
        k++;
    return k;
}

/* The training part: every series but its held-out end (each needs two
 * observations left, its initial state and one to fit); the held-out
 * part: the whole series, scored from its first held-out observation. */
static int split_holdout(series *s, nde_section *dsec, const nde_dataset *ds,
                         const holdout_rule *h, nde_ctx *ctx)
{
    const char *key = h->from_set ? "holdout_from" : "holdout";
    nde_dataset *none = NULL;
    size_t i, held = 0;
    int rc;

    for (i = 0; i < ds->nseries; i++) {
        const nde_series *e = &ds->series[i];
        const size_t K = held_count(h, e);
        if (e->npoints < K + 2) {
            if (h->from_set)
                return nde_section_error(dsec, key, ctx,
                                         "%g leaves series '%s' %zu "
                                         "observations before it, fewer "
                                         "than 2 to train on", h->from,
                                         e->id, e->npoints - K);
            return nde_section_error(dsec, key, ctx,
                                     "end:%zu leaves series '%s' (%zu "
                                     "observations) fewer than 2 to train "
                                     "on", K, e->id, e->npoints);
        }
        held += K;
    }
    if (!held)
        return nde_section_error(dsec, key, ctx,
                                 "%g is after every series' last "
                                 "observation: nothing is held out",
                                 h->from);
    if ((rc = nde_data_split(ds, 0, 0, &s->train, &none, ctx)) != NDE_OK)
        return rc;
    nde_dataset_destroy(none);
    none = NULL;
    if ((rc = nde_data_split(ds, 0, 0, &s->test, &none, ctx)) != NDE_OK)
        return rc;
    nde_dataset_destroy(none);
    if (!(s->from = calloc(ds->nseries, sizeof *s->from)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    for (i = 0; i < ds->nseries; i++) {
        const size_t K = held_count(h, &ds->series[i]);
        s->train->series[i].npoints -= K;
        s->from[i] = ds->series[i].npoints - K;
    }
    return NDE_OK;
}

/* Every observed value of the training and test parts positive, else
 * NDE_ECONFIG naming key and `what` needs them. */
static int check_positive(const series *s, nde_section *dsec,
                          const char *key, const char *what, nde_ctx *ctx)
{
    const nde_dataset *d[2] = {s->train, s->test};

    for (size_t p = 0; p < 2; p++)
        for (size_t i = 0; i < d[p]->nseries; i++) {
            const nde_series *e = &d[p]->series[i];
            for (size_t k = 0; k < e->npoints * d[p]->dim; k++)
                if (e->y[k] <= 0)
                    return nde_section_error(
                        dsec, key, ctx,
                        "%s needs positive values, and series '%s' has %s "
                        "= %g at t = %g", what, e->id,
                        d[p]->names[k % d[p]->dim], e->y[k],
                        e->t[k / d[p]->dim]);
        }
    return NDE_OK;
}

/* [data] likelihood; lognormal needs every observed value positive. */
static int read_likelihood(series *s, nde_section *dsec, nde_ctx *ctx)
{
    const char *how;
    int rc;

    if ((rc = nde_get_string(dsec, "likelihood", &how, ctx)) != NDE_OK)
        return rc;
    if (strcmp(how, "mse") == 0)
        s->lik = LIK_MSE;
    else if (strcmp(how, "gaussian") == 0)
        s->lik = LIK_GAUSSIAN;
    else if (strcmp(how, "lognormal") == 0)
        s->lik = LIK_LOGNORMAL;
    else
        return nde_section_error(dsec, "likelihood", ctx,
                                 "'%s' is mse, gaussian or lognormal", how);
    return s->lik == LIK_LOGNORMAL
               ? check_positive(s, dsec, "likelihood", "lognormal", ctx)
               : NDE_OK;
}

/* Reads the file and splits it into s->train, s->test (s->from set for
 * a holdout). */
static int load_data(series *s, nde_section *dsec, const nde_task_env *env,
                     size_t D, nde_ctx *ctx)
{
    const char *path;
    char *full = NULL;
    nde_dataset *ds = NULL;
    double frac;
    holdout_rule h;
    size_t i, j;
    int rc;

    if (!nde_section_has(dsec, "path"))
        return nde_section_error(dsec, "path", ctx,
                                 "source = csv needs the file's path");
    if ((rc = nde_get_string(dsec, "path", &path, ctx)) ||
        (rc = nde_get_double_in(dsec, "test_fraction", 0, 0, 1, 1, &frac,
                                ctx)) ||
        (rc = read_holdout(dsec, &h, ctx)))
        return rc;
    if (!(full = nde_section_path(dsec, "path", path)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    rc = nde_data_read_csv(full, &ds, ctx);
    free(full);
    if (rc != NDE_OK)
        return rc;
    if (!h.last && !h.from_set && frac > 0 && ds->nseries < 2)
        rc = nde_section_error(dsec, "test_fraction", ctx,
                               "%g holds out whole series, and %s has only "
                               "%zu: set test_fraction = 0 to train and "
                               "evaluate on it, or holdout = end:K to "
                               "forecast its end", frac, path, ds->nseries);
    else if (ds->dim != D)
        rc = nde_section_error(dsec, "path", ctx,
                               "the field's dim (%zu) must equal the data's "
                               "dim (%zu columns after series id and t)", D,
                               ds->dim);
    for (i = 0; rc == NDE_OK && i < ds->nseries; i++)
        for (j = 0; rc == NDE_OK && j < D; j++)
            if (isnan(ds->series[i].y[j]))
                rc = nde_section_error(dsec, "path", ctx,
                                       "series '%s': its first observation "
                                       "is its initial state and must have "
                                       "every component",
                                       ds->series[i].id);
    if (rc == NDE_OK)
        rc = h.last || h.from_set ? split_holdout(s, dsec, ds, &h, ctx)
               : nde_data_split(ds, frac,
                                nde_seed_derive(env->seed, NDE_STREAM_SPLIT),
                                &s->train, &s->test, ctx);
    nde_dataset_destroy(ds);
    return rc;
}

static int series_create(nde_task *t, nde_section *dsec,
                         const nde_task_env *env, nde_ctx *ctx)
{
    const size_t D = t->dim;
    series *s;
    size_t i, nmax = 0, total = 0, tmax = 0;
    int rc;

    if (!(s = t->state = calloc(1, sizeof *s)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = task_check_noise(t, dsec, env, 0)) != NDE_OK ||
        (rc = load_data(s, dsec, env, D, ctx)) != NDE_OK ||
        (rc = task_units_fit(dsec, s->train, &s->shift, &s->scale,
                             &s->log_units, ctx)) != NDE_OK ||
        (s->log_units && (rc = check_positive(s, dsec, "normalize", "log",
                                              ctx)) != NDE_OK) ||
        (rc = nde_get_bool(dsec, "learn_y0", &s->learn_y0, ctx)) != NDE_OK ||
        (rc = read_likelihood(s, dsec, ctx)) != NDE_OK)
        return rc;
    s->ny0 = s->learn_y0 ? s->train->nseries * D : 0;
    t->nparams = s->ny0 + (s->lik != LIK_MSE ? D : 0);
    if (s->train->nseries < t->rows) {
        const char *path = "";
        nde_get_string(dsec, "path", &path, ctx);
        return nde_error(ctx, NDE_ECONFIG,
                         "[train] batch_size (%zu) is more than the %zu "
                         "training series of %s", t->rows,
                         s->train->nseries, path);
    }
    /* the test part may be empty (test_fraction 0): evaluate on the
     * training series then */
    s->held = s->test->nseries ? s->test : s->train;
    t->ntest = s->held->nseries;
    for (i = 0; i < t->ntest; i++) {
        total += s->held->series[i].npoints;
        if (s->held->series[i].npoints > tmax)
            tmax = s->held->series[i].npoints;
    }
    s->nchoices = s->train->nseries;
    for (i = 0; i < s->nchoices; i++)
        if (s->train->series[i].npoints > nmax)
            nmax = s->train->series[i].npoints;
    t->max_saves = nmax * t->rows;
    s->test_n = calloc(t->ntest, sizeof *s->test_n);
    s->score_n = calloc(t->ntest, sizeof *s->score_n);
    s->score_obs = calloc(t->ntest, sizeof *s->score_obs);
    s->score_pred = calloc(t->ntest, sizeof *s->score_pred);
    s->test_pred = calloc(t->ntest, sizeof *s->test_pred);
    s->pred_buf = malloc(total * D * sizeof *s->pred_buf);
    s->tshift = malloc(tmax * sizeof *s->tshift);
    s->choices = malloc(s->nchoices * sizeof *s->choices);
    s->pick = calloc(t->rows, sizeof *s->pick);
    s->tsave = malloc(t->max_saves * sizeof *s->tsave);
    s->y0 = calloc(t->rows * D, sizeof *s->y0);
    s->target = calloc(t->max_saves * t->rows * D, sizeof *s->target);
    if (!s->test_n || !s->score_n || !s->score_obs || !s->score_pred ||
        !s->test_pred || !s->pred_buf || !s->tshift || !s->choices ||
        !s->pick || !s->tsave || !s->y0 || !s->target)
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    for (i = 0, total = 0; i < t->ntest; i++) {
        const nde_series *e = &s->held->series[i];
        const size_t from = s->from ? s->from[i] : 0;
        s->test_n[i] = e->npoints;
        s->test_pred[i] = s->pred_buf + total * D;
        s->score_n[i] = e->npoints - from;
        s->score_obs[i] = e->y + from * D;
        s->score_pred[i] = s->test_pred[i] + from * D;
        total += e->npoints;
    }
    for (i = 0; i < s->nchoices; i++)
        s->choices[i] = i;
    t->input_dim = D;
    t->obs_dim = s->lik != LIK_MSE ? 2 * D : D;
    t->max_rows = t->rows;
    return NDE_OK;
}

static void series_destroy(nde_task *t)
{
    series *s = t->state;

    if (!s)
        return;
    nde_dataset_destroy(s->train);
    nde_dataset_destroy(s->test);
    free(s->choices);
    free(s->pick);
    free(s->tsave);
    free(s->y0);
    free(s->target);
    free(s->from);
    free(s->shift);
    free(s->scale);
    free(s->test_n);
    free(s->score_n);
    free(s->score_obs);
    free(s->score_pred);
    free(s->test_pred);
    free(s->pred_buf);
    free(s->tshift);
    free(s);
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

/* batch_size distinct series; the save times are the union of their
 * shifted times, a target is NaN where a series has no observation. */
static int series_batch(nde_task *t, const nde_task_draw *draw,
                        nde_task_batch *b)
{
    series *s = t->state;
    const size_t D = t->dim, B = t->rows;
    const nde_dataset *d = s->train;
    size_t r, j, n = 0, u;

    gsl_ran_choose(draw->rng, s->pick, B, s->choices, s->nchoices,
                   sizeof *s->pick);
    for (r = 0; r < B; r++) {
        const nde_series *e = &d->series[s->pick[r]];
        for (j = 0; j < e->npoints; j++)
            s->tsave[n++] = e->t[j] - e->t[0];
    }
    qsort(s->tsave, n, sizeof *s->tsave, cmp_double);
    for (j = u = 0; j < n; j++)
        if (u == 0 || s->tsave[j] != s->tsave[u - 1])
            s->tsave[u++] = s->tsave[j];
    for (j = 0; j < u * B * D; j++)
        s->target[j] = NAN;
    for (r = 0; r < B; r++) {
        const nde_series *e = &d->series[s->pick[r]];
        memcpy(s->y0 + r * D, e->y, D * sizeof *s->y0);
        for (j = 0; j < e->npoints; j++) {
            size_t k = find_time(s->tsave, u, e->t[j] - e->t[0]);
            memcpy(s->target + (k * B + r) * D, e->y + j * D,
                   D * sizeof *s->target);
        }
    }
    if (s->shift) {
        task_units_apply(s->shift, s->scale, s->log_units, D, s->y0, B * D,
                         1);
        task_units_apply(s->shift, s->scale, s->log_units, D, s->target,
                         u * B * D, 1);
    }
    b->t0 = s->tsave[0];
    b->nsave = u;
    b->tsave = s->tsave;
    /* a learned initial state is fitted to the first observation too */
    b->first_ct = s->learn_y0 ? 0 : 1;
    b->input = s->y0;
    return NDE_OK;
}

/* learn_y0: the training series' first observations; log_sigma: 0. */
static int series_init_params(nde_task *t, double *theta, uint64_t seed)
{
    const series *s = t->state;
    const size_t D = t->dim;

    (void)seed;
    for (size_t i = 0; s->ny0 && i < s->train->nseries; i++)
        memcpy(theta + i * D, s->train->series[i].y, D * sizeof *theta);
    if (s->shift)
        task_units_apply(s->shift, s->scale, s->log_units, D, theta, s->ny0,
                         1);
    memset(theta + s->ny0, 0, (t->nparams - s->ny0) * sizeof *theta);
    return NDE_OK;
}

static void series_param_name(const nde_task *t, size_t i, char *buf,
                              size_t size)
{
    const series *s = t->state;

    if (i < s->ny0)
        snprintf(buf, size, "y0[%zu,%zu]", i / t->dim, i % t->dim);
    else
        snprintf(buf, size, "log_sigma[%zu]", i - s->ny0);
}

/* The batch's initial states: its series' learned ones, or its input (the
 * first observations) when none are learned. Rows other than this task's
 * batch (nde_trainer_lift's) are new series: their first observations. */
static int series_lift(nde_task *t, const double *theta,
                       const nde_task_batch *b, double *y0)
{
    const series *s = t->state;
    const size_t D = t->dim;

    if (!s->learn_y0 || b->input != s->y0) {
        memcpy(y0, b->input, t->rows * D * sizeof *y0);
        return NDE_OK;
    }
    for (size_t r = 0; r < t->rows; r++)
        memcpy(y0 + r * D, theta + s->pick[r] * D, D * sizeof *y0);
    return NDE_OK;
}

static int series_lift_vjp(nde_task *t, const double *theta,
                           const nde_task_batch *b, const double *ybar0,
                           double *thetabar)
{
    const series *s = t->state;
    const size_t D = t->dim;

    (void)theta;
    (void)b;
    if (s->learn_y0)
        for (size_t r = 0; r < t->rows; r++)
            for (size_t j = 0; j < D; j++)
                thetabar[s->pick[r] * D + j] += ybar0[r * D + j];
    return NDE_OK;
}

/* The states; with a likelihood each row's states and then its columns'
 * log_sigma. */
static int series_readout(nde_task *t, const double *theta,
                          const nde_task_batch *b, const double *y,
                          double *obs)
{
    const series *s = t->state;
    const size_t D = t->dim, n = b->nsave * t->rows;

    if (s->lik == LIK_MSE) {
        memcpy(obs, y, n * D * sizeof *obs);
        return NDE_OK;
    }
    for (size_t r = 0; r < n; r++) {
        memcpy(obs + r * 2 * D, y + r * D, D * sizeof *obs);
        memcpy(obs + r * 2 * D + D, theta + s->ny0, D * sizeof *obs);
    }
    return NDE_OK;
}

static int series_readout_vjp(nde_task *t, const double *theta,
                              const nde_task_batch *b, const double *y,
                              const double *obsbar, double *ybar,
                              double *thetabar)
{
    const series *s = t->state;
    const size_t D = t->dim, n = b->nsave * t->rows;

    (void)theta;
    (void)y;
    if (s->lik == LIK_MSE) {
        for (size_t k = 0; k < n * D; k++)
            ybar[k] += obsbar[k];
        return NDE_OK;
    }
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < D; j++) {
            ybar[r * D + j] += obsbar[r * 2 * D + j];
            thetabar[s->ny0 + j] += obsbar[r * 2 * D + D + j];
        }
    return NDE_OK;
}

/* The log of model value v of state j in the data's units, and in *d its
 * derivative in v; NaN when that value is not positive. */
static double log_value(const series *s, size_t j, double v, double *d)
{
    const double a = s->shift ? s->shift[j] : 0.0;
    const double c = s->shift ? s->scale[j] : 1.0;

    *d = c;
    if (s->log_units)
        return a + c * v;
    v = a + c * v;
    *d = c / v;
    return v > 0 ? log(v) : NAN;
}

/* The mean over n observed values of -log p(target | prediction y) and
 * its gradient in g (2 dim per row, as the readout gives them):
 *   gaussian:  r = target - y                      (model's units)
 *   lognormal: r = log(target') - log(y')          (data's units: y' =
 *              shift + scale y, or exp of that under normalize = log;
 *              + log target', the density's Jacobian)
 *   -log p = r^2 / (2 sigma^2) + log sigma + log(2 pi) / 2,
 * sigma = exp(log_sigma[j]). A log-normal prediction y' <= 0 has no
 * density: NDE_ENONFINITE, an iteration the on_failure policy may skip. */
static int series_nll(nde_task *t, const nde_task_batch *b, const double *obs,
                      double *value, double *g)
{
    const series *s = t->state;
    const size_t D = t->dim, n = b->nsave * t->rows;
    const double half_log_2pi = 0.91893853320467274178;
    double sum = 0.0;
    size_t count = 0;

    for (size_t k = 0; k < n * D; k++) {
        const size_t j = k % D, at = (k / D) * 2 * D + j;
        const double ls = obs[at + D], inv_var = exp(-2.0 * ls);
        double y = obs[at], target = s->target[k], dy = 1.0, r;
        g[at] = g[at + D] = 0.0;
        if (isnan(target))
            continue;
        if (s->lik == LIK_LOGNORMAL) {
            double unused;
            target = log_value(s, j, target, &unused);
            sum += target;
            if (isnan(y = log_value(s, j, y, &dy)))
                return nde_error(t->ctx, NDE_ENONFINITE,
                                 "[data] likelihood = lognormal: the model "
                                 "predicts a value <= 0 for state %zu", j);
        }
        r = target - y;
        sum += 0.5 * r * r * inv_var + ls + half_log_2pi;
        g[at] = -r * inv_var * dy;
        g[at + D] = 1.0 - r * r * inv_var;
        count++;
    }
    if (count == 0) {
        *value = NAN;
        return NDE_OK;
    }
    for (size_t k = 0; k < n * 2 * D; k++)
        g[k] /= (double)count;
    *value = sum / (double)count;
    return NDE_OK;
}

/* The MSE over every observed value (NaN cells skipped), in the model's
 * units, or the negative log-likelihood. */
static int series_loss(nde_task *t, const nde_task_batch *b,
                       const double *obs, double *value, double *obsbar)
{
    const series *s = t->state;

    if (s->lik != LIK_MSE)
        return series_nll(t, b, obs, value, obsbar);
    *value = task_mse(obs, s->target, b->nsave * t->rows * t->dim, obsbar);
    return NDE_OK;
}

/* Every held-out series predicted from its first point (learn_y0: a
 * training series from its learned initial state), in the data's units;
 * the MSE over their scored parts. */
static int series_evaluate(nde_task *t, const double *theta,
                           const nde_task_model *m, nde_task_metrics *r)
{
    series *s = t->state;
    const size_t D = t->dim;
    size_t i, j;
    int rc;

    for (i = 0; i < t->ntest; i++) {
        const nde_series *e = &s->held->series[i];
        const size_t n = e->npoints;
        for (j = 0; j < n; j++)
            s->tshift[j] = e->t[j] - e->t[0];
        if (n < 2) {
            memcpy(s->test_pred[i], e->y, D * sizeof(double));
            continue;
        }
        memcpy(s->y0, e->y, D * sizeof *s->y0);
        if (s->shift)
            task_units_apply(s->shift, s->scale, s->log_units, D, s->y0, D,
                             1);
        /* a training series (its own or its prefix) starts where learned */
        if (s->learn_y0 && (s->held == s->train || s->from))
            memcpy(s->y0, theta + i * D, D * sizeof *s->y0);
        if ((rc = m->predict(m, s->tshift[0], s->y0, 1, s->tshift[n - 1], n,
                             s->tshift, s->test_pred[i])) != NDE_OK)
            return rc;
        if (s->shift)
            task_units_apply(s->shift, s->scale, s->log_units, D,
                             s->test_pred[i], n * D, 0);
    }
    r->test_loss = task_test_mse(t->ntest, s->score_n, D, s->score_pred,
                                 s->score_obs);
    return NDE_OK;
}

/* The data's digest, and the units' when the model has its own (so a
 * checkpoint is refused under other units, nde/task.h). */
static uint64_t series_digest(const nde_task *t)
{
    const series *s = t->state;
    task_digest d;

    if (!s->shift)
        return task_digest_split(s->train, s->test);
    task_digest_init(&d);
    task_digest_dataset(&d, s->train);
    task_digest_dataset(&d, s->test);
    task_digest_bytes(&d, s->shift, t->dim * sizeof *s->shift);
    task_digest_bytes(&d, s->scale, t->dim * sizeof *s->scale);
    if (s->log_units) /* digests of the other units stay as they were */
        task_digest_bytes(&d, &s->log_units, sizeof s->log_units);
    return task_digest_final(&d);
}

static void series_units(const nde_task *t, const double **shift,
                         const double **scale)
{
    const series *s = t->state;

    *shift = s->shift;
    *scale = s->scale;
}

static int series_units_log(const nde_task *t)
{
    const series *s = t->state;
    return s->log_units;
}

static size_t series_test_series(const nde_task *t, size_t i,
                                 const char **id, const double **time,
                                 const double **pred)
{
    const series *s = t->state;

    *id = s->held->series[i].id;
    *time = s->held->series[i].t;
    *pred = s->test_pred[i];
    return s->held->series[i].npoints;
}

static size_t series_test_observed(const nde_task *t, size_t i,
                                   const double **obs)
{
    const series *s = t->state;

    *obs = s->held->series[i].y;
    return s->held->series[i].npoints;
}

/* A forecast split scores each series from its first held-out
 * observation; without one the held-out series are whole, or (test
 * part empty) they are the training series themselves. */
static size_t series_test_held_from(const nde_task *t, size_t i)
{
    const series *s = t->state;

    if (s->from)
        return s->from[i];
    return s->held == s->train ? s->held->series[i].npoints : 0;
}

/* learn_y0's parameter i < ny0 is y0[i / dim, i % dim]. */
static int series_param_state(const nde_task *t, size_t i)
{
    const series *s = t->state;
    return i < s->ny0 ? (int)(i % t->dim) : -1;
}

/* The CSV's column names: the held-out series are written under them. */
static const char *const *series_state_names(const nde_task *t)
{
    const series *s = t->state;
    return (const char *const *)s->train->names;
}

static const nde_task_type nde_task_series = {
    .info = NDE_TASK_INFO(
        .name = "series",
        .description = "whole time series from a CSV file (csv)",
        .keys = series_keys,
        .version = "1"),
    .create = series_create,
    .destroy = series_destroy,
    .init_params = series_init_params,
    .param_name = series_param_name,
    .batch = series_batch,
    .lift = series_lift,
    .lift_vjp = series_lift_vjp,
    .readout = series_readout,
    .readout_vjp = series_readout_vjp,
    .loss = series_loss,
    .evaluate = series_evaluate,
    .digest = series_digest,
    .test_series = series_test_series,
    .state_names = series_state_names,
    .test_observed = series_test_observed,
    .units = series_units,
    .test_held_from = series_test_held_from,
    .param_state = series_param_state,
    .units_log = series_units_log,
};

NDE_MODULE(&nde_task_series.info);
