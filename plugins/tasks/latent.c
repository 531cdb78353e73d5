/*
 * The latent task ([data] source = latent): a latent ODE (Rubanova, Chen,
 * Duvenaud 2019, "Latent ODEs for irregularly-sampled time series") on
 * their synthetic periodic series, set up as the Physionet experiment of
 * the local-regularization paper (Pal, Edelman, Rackauckas 2023; public
 * code avik-pal/LocalRegNeuralDE.jl, experiments/physionet and
 * experiments/src/construct.jl, utils.jl).
 *
 * Data. One grid of npoints times, uniform on (0, t1) and sorted, shared
 * by every series; series i is a sin(2 pi f t + phase) + c plus noise * U[0,
 * 1), with f ~ U[freq_min, freq_max], a ~ U[amp_min, amp_max], phase ~
 * U[0, phase_max), c = offset + offset_sd * N(0, 1), and observes a random
 * subset of nobs of the grid's points (the irregular sampling). The
 * defaults are the "periodic" data set of Rubanova et al.'s code
 * (YuliaRubanova/latent_ode: generate_timeseries.py, Periodic_1d and
 * add_noise; lib/parse_datasets.py, dataset "periodic": f ~ U[0.4, 0.8],
 * amplitude 1, z0 = 1 + N(0, 0.1), 100 points on [0, 5], noise weight 0.01
 * times a uniform draw; run_models.py -s 50 observes 50 of them). Their
 * grid starts at t = 0; here every point is in (0, t1) and the latent
 * state z0 is the state at t = 0.
 *
 * Batches. As their code and LocalRegNeuralDE's Physionet loader do, a
 * batch is solved on the shared grid and a mask says which points each
 * series observed: the save times are the grid, a batch's input row is
 * [the values at the grid (0 where not observed) | the mask], and each
 * series' loss covers its own observed points only.
 *
 * Model. Encoder: a GRU (Cho et al. 2014) of `hidden` units run backwards
 * in time over a series' observed points, input (x_j, t_next - t_j) with
 * t_next the next observed time (t1 after the last), then linear maps of
 * its last state to the mean and log-variance of q(z0) (dim = the field's
 * dim). The lift is z0 = mu + exp(logvar / 2) eps, eps ~ N(0, I) drawn with
 * the batch from the trainer's sampling stream. Decoder (the readout): a
 * linear map of the latent state to the observation.
 *
 * Loss (LocalRegNeuralDE.jl, construct.jl and utils.jl): per series the
 * Gaussian negative log-likelihood (obs_std 0.01) of its observed points
 * divided by their number, plus w_kl(i) * KL(q(z0) || N(0, I)), the KL
 * averaged over the latent dims; averaged over the batch. The KL weight is
 * annealed as w_kl(i) = max(0, 1 - kl_rate^(i + 1 - kl_wait)) at the
 * 0-based iteration i (their step i + 1: max(0, 1 - 0.99^(t - 100))).
 *
 * The KL depends on the encoder alone, not on the solve. The task
 * interface hands the loss only the readout's observations, so the readout
 * reports each series' KL as a second observation column (obs_dim 2: the
 * decoded value and, at save 0, the KL of that row's q(z0), 0 at the other
 * saves): the readout re-runs the encoder from theta and the batch's input,
 * and its VJP carries the KL's gradient into the encoder. Both VJPs re-run
 * the encoder's forward pass themselves, so they depend on their arguments
 * alone.
 *
 * Evaluation: every test series encoded to mu (no sampling), solved on the
 * grid and decoded; test_loss is the MSE at its observed points
 * (test_on = observed, LocalRegNeuralDE's evaluation) or at every grid point
 * (test_on = all: Rubanova et al.'s interpolation MSE). `nde predict`
 * writes each test series' latent trajectory on the grid (test_series).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "gru.h"
#include "task_util.h"

static const nde_key latent_keys[] = {
    {"source", NDE_KEY_WORD, NULL, "latent"},
    {"ntrain", NDE_KEY_INT, "800", "training series"},
    {"ntest", NDE_KEY_INT, "200", "test series"},
    {"npoints", NDE_KEY_INT, "100", "grid times on (0, t1), shared"},
    {"nobs", NDE_KEY_INT, "50", "grid points each series observes"},
    {"t1", NDE_KEY_DOUBLE, "5", "end of the time span"},
    {"freq_min", NDE_KEY_DOUBLE, "0.4", "lowest frequency"},
    {"freq_max", NDE_KEY_DOUBLE, "0.8", "highest frequency"},
    {"amp_min", NDE_KEY_DOUBLE, "1", "lowest amplitude"},
    {"amp_max", NDE_KEY_DOUBLE, "1", "highest amplitude"},
    {"phase_max", NDE_KEY_DOUBLE, "0", "phases are U[0, phase_max)"},
    {"offset", NDE_KEY_DOUBLE, "1", "mean offset of a series"},
    {"offset_sd", NDE_KEY_DOUBLE, "0.1", "standard deviation of the offset"},
    {"noise", NDE_KEY_DOUBLE, "0.01",
     "observation noise: noise * U[0, 1) added to each value"},
    {"hidden", NDE_KEY_INT, "20", "GRU units of the encoder"},
    {"obs_std", NDE_KEY_DOUBLE, "0.01",
     "standard deviation of the Gaussian likelihood"},
    {"kl_wait", NDE_KEY_INT, "100",
     "iterations before the KL weight grows from 0"},
    {"kl_rate", NDE_KEY_DOUBLE, "0.99",
     "KL weight max(0, 1 - kl_rate^(iteration + 1 - kl_wait))"},
    {"test_on", NDE_KEY_WORD, "observed",
     "test MSE at each test series' observed points, or at all grid points"},
    {NULL, 0, NULL, NULL}};

/* The parameters, in theta's order: the encoder's (gru.h, named enc.*),
 * then the decoder's w (D) and b (1). */
#define IN 2        /* GRU input: the value and the time gap        */
#define OBS_DIM 2   /* readout: the decoded value, the row's KL     */
#define ID_LEN 24

typedef struct latent {
    size_t H, D, np, nobs, ntrain;
    gru enc;               /* its xin: (x_j, t_next - t_j) of a row        */
    size_t wd, bd;         /* the decoder's offsets in theta               */
    double t1, obs_std, kl_rate, w_kl;
    long kl_wait;
    int test_all;
    double *grid;          /* np times                                    */
    double *train_in;      /* ntrain x 2np: values (0 unobserved) | mask  */
    double *test_in;       /* ntest x 2np                                 */
    double *test_full;     /* ntest x np: every grid value                */
    size_t *choices, *pick;
    double *input, *eps;   /* the batch: rows x 2np, rows x D             */
    double *y0, *ysave;    /* evaluation: rows x D, np x rows x D         */
    double *test_pred;     /* ntest x np x D: the last evaluation's       */
    char *ids;             /* ntest ids "0", "1", ... of ID_LEN each      */
} latent;

/* The KL weight of the 0-based iteration (LocalRegNeuralDE.jl,
 * experiments/src/construct.jl: w_kl(t) = max(0, 1 - 0.99^(t - 100)) at
 * their 1-based step t). */
static double kl_weight(const latent *s, long iteration)
{
    double w = 1.0 - pow(s->kl_rate, (double)(iteration + 1 - s->kl_wait));
    return w > 0.0 ? w : 0.0;
}

/* ---- data ---------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct gen_params {
    double fmin, fmax, amin, amax, pmax, c, csd, noise;
} gen_params;

/* n series into in (n x 2np) and, when full is not NULL, every grid value
 * into full (n x np); idx is np scratch indices. */
static void generate(latent *s, const gen_params *g, gsl_rng *r, size_t n,
                     double *in, double *full, size_t *idx)
{
    const size_t np = s->np;
    size_t i, j;

    for (i = 0; i < n; i++) {
        const double f = g->fmin + (g->fmax - g->fmin) * gsl_rng_uniform(r);
        const double a = g->amin + (g->amax - g->amin) * gsl_rng_uniform(r);
        const double ph = g->pmax * gsl_rng_uniform(r);
        const double c = g->c + g->csd * gsl_ran_gaussian_ziggurat(r, 1.0);
        double *row = in + i * 2 * np, *mask = row + np;
        for (j = 0; j < np; j++) {
            double x = a * sin(2.0 * M_PI * f * s->grid[j] + ph) + c +
                       g->noise * gsl_rng_uniform(r);
            row[j] = x;
            mask[j] = 0.0;
            if (full)
                full[i * np + j] = x;
            idx[j] = j;
        }
        gsl_ran_shuffle(r, idx, np, sizeof *idx);
        for (j = 0; j < s->nobs; j++)
            mask[idx[j]] = 1.0;
        for (j = 0; j < np; j++)
            row[j] *= mask[j];
    }
}

/* ---- create / destroy ---------------------------------------------------- */

static int read_keys(latent *s, nde_task *t, nde_section *d, gen_params *g,
                     nde_ctx *ctx)
{
    long ntrain, ntest, np, nobs, hidden;
    const char *on;
    int rc;

    if ((rc = nde_get_long_min(d, "ntrain", (long)t->rows, &ntrain, ctx)) ||
        (rc = nde_get_long_min(d, "ntest", 1, &ntest, ctx)) ||
        (rc = nde_get_long_min(d, "npoints", 1, &np, ctx)) ||
        (rc = nde_get_long_min(d, "nobs", 1, &nobs, ctx)) ||
        (rc = nde_get_long_min(d, "hidden", 1, &hidden, ctx)) ||
        (rc = nde_get_long_min(d, "kl_wait", 0, &s->kl_wait, ctx)) ||
        (rc = nde_get_double_in(d, "t1", 0, 1, HUGE_VAL, 1, &s->t1, ctx)) ||
        (rc = nde_get_double_in(d, "freq_min", 0, 0, HUGE_VAL, 1, &g->fmin,
                                ctx)) ||
        (rc = nde_get_double_in(d, "freq_max", g->fmin, 0, HUGE_VAL, 1,
                                &g->fmax, ctx)) ||
        (rc = nde_get_double_in(d, "amp_min", -HUGE_VAL, 1, HUGE_VAL, 1,
                                &g->amin, ctx)) ||
        (rc = nde_get_double_in(d, "amp_max", g->amin, 0, HUGE_VAL, 1,
                                &g->amax, ctx)) ||
        (rc = nde_get_double_in(d, "phase_max", 0, 0, HUGE_VAL, 1, &g->pmax,
                                ctx)) ||
        (rc = nde_get_double_in(d, "offset", -HUGE_VAL, 1, HUGE_VAL, 1, &g->c,
                                ctx)) ||
        (rc = nde_get_double_in(d, "offset_sd", 0, 0, HUGE_VAL, 1, &g->csd,
                                ctx)) ||
        (rc = nde_get_double_in(d, "noise", 0, 0, HUGE_VAL, 1, &g->noise,
                                ctx)) ||
        (rc = nde_get_double_in(d, "obs_std", 0, 1, HUGE_VAL, 1, &s->obs_std,
                                ctx)) ||
        (rc = nde_get_double_in(d, "kl_rate", 0, 1, 1, 0, &s->kl_rate,
                                ctx)) ||
        (rc = nde_get_string(d, "test_on", &on, ctx)))
        return rc;
    if (nobs > np)
        return nde_section_error(d, "nobs", ctx, "%ld observed points of a "
                                 "grid of npoints = %ld", nobs, np);
    if (strcmp(on, "observed") != 0 && strcmp(on, "all") != 0)
        return nde_section_error(d, "test_on", ctx, "'%s': expected "
                                 "observed or all", on);
    s->test_all = strcmp(on, "all") == 0;
    s->ntrain = (size_t)ntrain;
    t->ntest = (size_t)ntest;
    s->np = (size_t)np;
    s->nobs = (size_t)nobs;
    s->H = (size_t)hidden;
    return NDE_OK;
}

static int latent_create(nde_task *t, nde_section *dsec,
                         const nde_task_env *env, nde_ctx *ctx)
{
    const size_t B = t->rows;
    gen_params g;
    gsl_rng *r = NULL;
    size_t *idx = NULL, np, H, i;
    latent *s;
    int rc;

    if (!(s = t->state = calloc(1, sizeof *s)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = task_check_noise(t, dsec, env, 0)) ||
        (rc = read_keys(s, t, dsec, &g, ctx)))
        return rc;
    s->D = t->dim;
    np = s->np;
    H = s->H;
    if (gru_alloc(&s->enc, IN, H, s->D, np))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    s->wd = gru_nparams(&s->enc);
    s->bd = s->wd + s->D;
    t->nparams = s->bd + 1;
    t->input_dim = 2 * np;
    t->obs_dim = OBS_DIM;
    t->max_saves = np;
    t->max_rows = B;
    if (!(s->grid = malloc(np * sizeof *s->grid)) ||
        !(s->train_in = malloc(s->ntrain * 2 * np * sizeof *s->train_in)) ||
        !(s->test_in = malloc(t->ntest * 2 * np * sizeof *s->test_in)) ||
        !(s->test_full = malloc(t->ntest * np * sizeof *s->test_full)) ||
        !(s->choices = malloc(s->ntrain * sizeof *s->choices)) ||
        !(s->pick = malloc(B * sizeof *s->pick)) ||
        !(s->input = malloc(B * 2 * np * sizeof *s->input)) ||
        !(s->eps = malloc(B * s->D * sizeof *s->eps)) ||
        !(s->y0 = malloc(B * s->D * sizeof *s->y0)) ||
        !(s->ysave = malloc(np * B * s->D * sizeof *s->ysave)) ||
        !(s->test_pred = calloc(t->ntest * np * s->D, sizeof *s->test_pred)) ||
        !(s->ids = malloc(t->ntest * ID_LEN)) ||
        !(idx = malloc(np * sizeof *idx)) ||
        !(r = gsl_rng_alloc(gsl_rng_mt19937))) {
        free(idx);
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    }
    gsl_rng_set(r, nde_seed_derive(env->seed, NDE_STREAM_NOISE));
    for (i = 0; i < np; i++)
        s->grid[i] = s->t1 * gsl_rng_uniform_pos(r);
    qsort(s->grid, np, sizeof *s->grid, cmp_double);
    generate(s, &g, r, s->ntrain, s->train_in, NULL, idx);
    generate(s, &g, r, t->ntest, s->test_in, s->test_full, idx);
    for (i = 0; i < s->ntrain; i++)
        s->choices[i] = i;
    for (i = 0; i < t->ntest; i++)
        snprintf(s->ids + i * ID_LEN, ID_LEN, "%zu", i);
    gsl_rng_free(r);
    free(idx);
    return NDE_OK;
}

static void latent_destroy(nde_task *t)
{
    latent *s = t->state;

    if (!s)
        return;
    free(s->grid);
    free(s->train_in);
    free(s->test_in);
    free(s->test_full);
    free(s->choices);
    free(s->pick);
    free(s->input);
    free(s->eps);
    gru_free(&s->enc);
    free(s->y0);
    free(s->ysave);
    free(s->test_pred);
    free(s->ids);
    free(s);
}

/* ---- parameters ---------------------------------------------------------- */

/* Glorot-uniform matrices (Glorot & Bengio 2010, eq. 16), zero biases. */
static int latent_init_params(nde_task *t, double *theta, uint64_t seed)
{
    const latent *s = t->state;
    gsl_rng *r;

    if (!(r = gsl_rng_alloc(gsl_rng_mt19937)))
        return nde_error(t->ctx, NDE_ENOMEM, "out of memory");
    gsl_rng_set(r, seed);
    memset(theta, 0, t->nparams * sizeof *theta);
    gru_init(&s->enc, r, theta);
    task_glorot(r, theta + s->wd, 1, s->D);
    gsl_rng_free(r);
    return NDE_OK;
}

static void latent_param_name(const nde_task *t, size_t i, char *buf,
                              size_t size)
{
    const latent *s = t->state;
    int k;

    if (i >= s->wd) {
        i -= s->wd;
        if (i < s->D)
            snprintf(buf, size, "dec.w[0,%zu]", i);
        else
            snprintf(buf, size, "dec.b[0]");
        return;
    }
    k = gru_block_of(&s->enc, &i);
    if (gru_block_bias(k))
        snprintf(buf, size, "enc.%s[%zu]", gru_block_name(k), i);
    else
        snprintf(buf, size, "enc.%s[%zu,%zu]", gru_block_name(k),
                 i / s->enc.cols_of[k], i % s->enc.cols_of[k]);
}

/* ---- the encoder --------------------------------------------------------- */

/* The GRU backwards in time over the observed points of one input row
 * (values | mask), input (x_j, t_next - t_j), then q(z0) in s->enc. */
static void encode(latent *s, const double *theta, const double *row)
{
    const double *mask = row + s->np;
    double next = s->t1;
    size_t j, st = 0;

    for (j = s->np; j-- > 0;) {
        double *x = s->enc.xin + st * IN;
        if (mask[j] == 0.0)
            continue;
        x[0] = row[j];
        x[1] = next - s->grid[j];
        next = s->grid[j];
        st++;
    }
    gru_encode(&s->enc, theta, st);
}

/* ---- the ops ------------------------------------------------------------- */

/* batch_size distinct training series and their eps, both from the
 * trainer's sampling stream; the KL weight of the iteration. */
static int latent_batch(nde_task *t, const nde_task_draw *draw,
                        nde_task_batch *b)
{
    latent *s = t->state;
    const size_t B = t->rows, n = 2 * s->np;
    size_t r;

    gsl_ran_choose(draw->rng, s->pick, B, s->choices, s->ntrain,
                   sizeof *s->pick);
    for (r = 0; r < B; r++)
        memcpy(s->input + r * n, s->train_in + s->pick[r] * n,
               n * sizeof *s->input);
    for (r = 0; r < B * s->D; r++)
        s->eps[r] = gsl_ran_gaussian_ziggurat(draw->rng, 1.0);
    s->w_kl = kl_weight(s, draw->iteration);
    b->t0 = 0.0;
    b->nsave = s->np;
    b->tsave = s->grid;
    b->first_ct = 0;
    b->input = s->input;
    return NDE_OK;
}

/* z0 = mu + exp(lv / 2) eps */
static int latent_lift(nde_task *t, const double *theta,
                       const nde_task_batch *b, double *y0)
{
    latent *s = t->state;
    const size_t D = s->D;

    for (size_t r = 0; r < t->rows; r++) {
        encode(s, theta, b->input + r * t->input_dim);
        gru_sample(&s->enc, s->eps + r * D, y0 + r * D);
    }
    return NDE_OK;
}

static int latent_lift_vjp(nde_task *t, const double *theta,
                           const nde_task_batch *b, const double *ybar0,
                           double *thetabar)
{
    latent *s = t->state;
    const size_t D = s->D;

    for (size_t r = 0; r < t->rows; r++) {
        encode(s, theta, b->input + r * t->input_dim);
        gru_sample_vjp(&s->enc, theta, s->eps + r * D, ybar0 + r * D,
                       thetabar);
    }
    return NDE_OK;
}

/* The decoder x = w z + b of n rows of states y (n x D) into column 0 of
 * obs (n x OBS_DIM). */
static void decode(const latent *s, const double *theta, const double *y,
                   size_t n, double *obs)
{
    const double *w = (theta + s->wd), bias = (theta + s->bd)[0];

    for (size_t i = 0; i < n; i++) {
        double x = bias;
        for (size_t d = 0; d < s->D; d++)
            x += w[d] * y[i * s->D + d];
        obs[i * OBS_DIM] = x;
    }
}

static int latent_readout(nde_task *t, const double *theta,
                          const nde_task_batch *b, const double *y,
                          double *obs)
{
    latent *s = t->state;
    const size_t B = t->rows, n = b->nsave * B;

    decode(s, theta, y, n, obs);
    for (size_t i = 0; i < n; i++)
        obs[i * OBS_DIM + 1] = 0.0;
    for (size_t r = 0; r < B; r++) {
        encode(s, theta, b->input + r * t->input_dim);
        /* averaged over the D dims, as LocalRegNeuralDE.jl's
         * experiments/src/utils.jl kl_divergence */
        obs[r * OBS_DIM + 1] = gru_kl(&s->enc) / (double)s->D;
    }
    return NDE_OK;
}

static int latent_readout_vjp(nde_task *t, const double *theta,
                              const nde_task_batch *b, const double *y,
                              const double *obsbar, double *ybar,
                              double *thetabar)
{
    latent *s = t->state;
    const size_t B = t->rows, D = s->D, n = b->nsave * B;
    const double *w = (theta + s->wd);
    double *wbar = (thetabar + s->wd);
    size_t i, d;

    for (i = 0; i < n; i++) {
        const double g = obsbar[i * OBS_DIM];
        (thetabar + s->bd)[0] += g;
        for (d = 0; d < D; d++) {
            wbar[d] += g * y[i * D + d];
            ybar[i * D + d] += g * w[d];
        }
    }
    for (size_t r = 0; r < B; r++) {
        encode(s, theta, b->input + r * t->input_dim);
        gru_kl_vjp(&s->enc, theta, obsbar[r * OBS_DIM + 1] / (double)D,
                   thetabar);
    }
    return NDE_OK;
}

/* Per series, the Gaussian NLL of its observed points over their number
 * plus w_kl times its KL, averaged over the batch (LocalRegNeuralDE.jl,
 * experiments/src/utils.jl log_likelihood_loss, construct.jl). */
static int latent_loss(nde_task *t, const nde_task_batch *b,
                       const double *obs, double *value, double *obsbar)
{
    const latent *s = t->state;
    const size_t B = t->rows, np = s->np;
    const double var = s->obs_std * s->obs_std;
    const double lognorm = log(s->obs_std) + 0.5 * log(2.0 * M_PI);
    double sum = 0.0;
    size_t r, k;

    memset(obsbar, 0, b->nsave * B * OBS_DIM * sizeof *obsbar);
    for (r = 0; r < B; r++) {
        const double *x = b->input + r * t->input_dim, *mask = x + np;
        double nr = 0.0, nll = 0.0;
        for (k = 0; k < np; k++)
            nr += mask[k];
        for (k = 0; k < np; k++) {
            const size_t i = (k * B + r) * OBS_DIM;
            double e;
            if (mask[k] == 0.0)
                continue;
            e = obs[i] - x[k];
            nll += 0.5 * e * e / var + lognorm;
            obsbar[i] = e / (var * nr * (double)B);
        }
        sum += nll / nr + s->w_kl * obs[r * OBS_DIM + 1];
        obsbar[r * OBS_DIM + 1] = s->w_kl / (double)B;
    }
    *value = sum / (double)B;
    return NDE_OK;
}

/* The test series in chunks of batch_size rows, each from its q(z0)'s
 * mean. */
static int latent_evaluate(nde_task *t, const double *theta,
                           const nde_task_model *m, nde_task_metrics *res)
{
    latent *s = t->state;
    const size_t np = s->np, D = s->D, N = t->ntest;
    double sum = 0.0, count = 0.0;
    size_t i, n, r, k, d;
    int rc;

    for (i = 0; i < N; i += n) {
        n = N - i < t->rows ? N - i : t->rows;
        for (r = 0; r < n; r++) {
            encode(s, theta, s->test_in + (i + r) * 2 * np);
            memcpy(s->y0 + r * D, s->enc.mu, D * sizeof *s->y0);
        }
        if ((rc = m->predict(m, 0.0, s->y0, n, s->grid[np - 1], np, s->grid,
                             s->ysave)) != NDE_OK)
            return rc;
        for (r = 0; r < n; r++) {
            const double *in = s->test_in + (i + r) * 2 * np;
            const double *full = s->test_full + (i + r) * np;
            for (k = 0; k < np; k++) {
                const double *z = s->ysave + (k * n + r) * D;
                double x = (theta + s->bd)[0], e;
                memcpy(s->test_pred + ((i + r) * np + k) * D, z,
                       D * sizeof *z);
                if (!s->test_all && in[np + k] == 0.0)
                    continue;
                for (d = 0; d < D; d++)
                    x += (theta + s->wd)[d] * z[d];
                e = x - full[k];
                sum += e * e;
                count += 1.0;
            }
        }
    }
    res->test_loss = sum / count;
    return NDE_OK;
}

static uint64_t latent_digest(const nde_task *t)
{
    const latent *s = t->state;
    task_digest d;

    task_digest_init(&d);
    task_digest_bytes(&d, s->grid, s->np * sizeof *s->grid);
    task_digest_bytes(&d, s->train_in,
                      s->ntrain * 2 * s->np * sizeof *s->train_in);
    task_digest_bytes(&d, s->test_in, t->ntest * 2 * s->np * sizeof *s->test_in);
    task_digest_bytes(&d, s->test_full,
                      t->ntest * s->np * sizeof *s->test_full);
    return task_digest_final(&d);
}

/* Test series i: the grid and its latent trajectory from q(z0)'s mean. */
static size_t latent_test_series(const nde_task *t, size_t i,
                                 const char **id, const double **time,
                                 const double **pred)
{
    const latent *s = t->state;

    *id = s->ids + i * ID_LEN;
    *time = s->grid;
    *pred = s->test_pred + i * s->np * s->D;
    return s->np;
}

static const nde_task_type nde_task_latent = {
    .info = NDE_TASK_INFO(
        .name = "latent",
        .description = "latent ODE on irregularly sampled periodic series "
                       "(Rubanova et al. 2019): GRU encoder backwards in "
                       "time, VAE, annealed KL",
        .keys = latent_keys,
        .version = "1"),
    .create = latent_create,
    .destroy = latent_destroy,
    .init_params = latent_init_params,
    .param_name = latent_param_name,
    .batch = latent_batch,
    .lift = latent_lift,
    .lift_vjp = latent_lift_vjp,
    .readout = latent_readout,
    .readout_vjp = latent_readout_vjp,
    .loss = latent_loss,
    .evaluate = latent_evaluate,
    .digest = latent_digest,
    .test_series = latent_test_series,
};

NDE_MODULE(&nde_task_latent.info);
