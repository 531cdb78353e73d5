/*
 * sde_gan - an SDE trained as a GAN (Kidger, Foster, Li, Oberhauser,
 * Lyons 2021, arXiv 2102.03657, Sec. 4.1; the recipe of Kidger, Foster,
 * Li, Lyons 2021, arXiv 2105.13493) on paths generated here, as
 * torchsde's examples/sde_gan.py (its get_data and sizes). The model is
 * the sde_gan field (plugins/fields/sde_gan.c): state [z; h] a row, z's
 * first c states the generated path y, h the discriminator's CDE state.
 *
 * Data (create): `paths` training and `test_paths` held-out paths at the
 * integer times 0..t_size-1, of
 *   process = ou   dy = (mu t - theta y) dt + sigma (2 t / t_size) dW,
 *                  mu 0.02, theta 0.1, sigma 0.4, y0 ~ U[-1, 1] (the
 *                  example's get_data); sampled exactly from one time to
 *                  the next (a linear SDE with additive noise: Gaussian
 *                  transitions, mean e^-theta y + int e^-theta(t1-s) mu s
 *                  ds and variance int e^-2theta(t1-s) g(s)^2 ds, Kloeden
 *                  & Platen 1992, Sec. 4.2; the integrals by Simpson's
 *                  rule on 1000 panels);
 *   process = gbm  dy = mu y dt + sigma y dW, mu 0.02, sigma 0.1,
 *                  log y0 ~ N(0, 0.25^2), exact: y1 = y0 exp((mu -
 *                  sigma^2/2) + sigma xi) (our choice of a GBM-type
 *                  process beside the example's OU);
 * then a fraction `drop` of all values is removed at random (exactly
 * that many, as the example's randperm) and, with `normalise`, every
 * value is mapped to (y - m) / s, m and s the mean and standard deviation
 * of the training paths' observed initial values (as the example).
 *
 * A batch (rows = [train] batch_size): the first half (rounded down)
 * generated rows, the others real ones, paths drawn uniformly. The field's
 * input (c + 1 channels, linear) holds a real row's observed values
 * (knots at the observed times) with kind 1, and a generated row's single
 * knot of kind 0. Task parameters:
 *   gen.init     MLP initial_noise -> width -> G: z0 of a generated row
 *                from initial_noise standard normals (the example's
 *                _initial; LipSwish hidden layer, Chen et al. 2019, as the
 *                example; its initial weights times init_scale, the
 *                example's init_mult1);
 *   disc.init    MLP 1 + c -> width -> H: h0 from X0 = (t0, y0);
 *   disc.readout linear H -> 1 of h at the final time: the score.
 * Lift: generated rows z0 = gen.init(noise), h0 = disc.init(t0, z0's
 * first c); real rows z0 = 0, h0 = disc.init(t0, the data's y(t0) as
 * interpolated). Loss (the sign convention of this project's [train]
 * adversary): mean real score - mean generated score, the critic's
 * Wasserstein estimate; the generator descends it, the discriminator
 * (adversary = disc.) ascends it.
 *
 * Evaluation: test_paths paths generated through the evaluation's fixed
 * Brownian path from fixed initial noise, saved at every integer time;
 * the two-sample Kolmogorov-Smirnov statistic of each channel's marginal
 * against the held-out paths' observed values at t = 0 and at 0.1, 0.3,
 * 0.5, 0.7, 0.9 of the span (index int(p (t_size - 1)), the example's
 * plot_locs) and at the end; the largest is test_loss. Also the MMD^2
 * (unbiased, Gretton et al. 2012, JMLR 13, eq. 3) between the first
 * mmd_paths generated and held-out paths (the latter linearly
 * interpolated where values are missing, held before the first and after
 * the last), Gaussian kernel of bandwidth the median distance of the
 * pooled paths (the median heuristic, ibid. Sec. 8). With `report`, each
 * evaluation appends these as one JSON line there ("-": stderr).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include <nde/task.h>
#include <nde/train.h>

#include "task_util.h"

#define NLOC 7
static const double plot_locs[NLOC] = {0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0};

/* A one-hidden-layer MLP in theta at off: W1 (k x in), b1, W2 (out x k),
 * b2. */
typedef struct mlp1 {
    size_t in, k, out, off;
} mlp1;

static size_t mlp1_nparams(const mlp1 *n)
{
    return n->k * n->in + n->k + n->out * n->k + n->out;
}

typedef struct gan_task {
    int gbm, normalise;
    size_t T, c, G, H, nz, width, npaths, ntest, nmmd;
    double drop, init_scale, shift, scale;
    const char *report;
    long nevals;
    mlp1 gi, di;            /* gen.init, disc.init                        */
    size_t ro;              /* disc.readout's offset                      */
    double *train, *test;   /* paths x T x c, NaN where dropped           */
    double *ts;             /* T: 0..T-1                                  */
    nde_input *in;
    double *kt, *ku;        /* T, T (c + 1): a row's series               */
    double *x;              /* rows x input_dim: the batch's input        */
    double *hid, *pre;      /* rows x width: hidden values, pre-activation */
    double *z0;             /* rows x dim                                 */
    double tsave1;
    /* evaluation */
    double *gen;            /* ntest x T x c: generated paths             */
    double *ysave;          /* (T - 1) x rows x dim                       */
    double *sa, *sb;        /* ntest each: sorted samples                 */
    double *pool;           /* 2 nmmd x T c                               */
    double *dist;           /* nmmd (2 nmmd - 1) pairwise squared dists   */
    double ks[NLOC], mmd2, bandwidth;
} gan_task;

static const nde_key gan_keys[] = {
    {"source", NDE_KEY_WORD, NULL, "sde_gan"},
    {"process", NDE_KEY_WORD, "ou",
     "ou (time-dependent Ornstein-Uhlenbeck, torchsde's sde_gan example) "
     "or gbm (geometric Brownian motion, mu 0.02, sigma 0.1, log-normal "
     "y0)"},
    {"paths", NDE_KEY_INT, "8192", "training paths"},
    {"test_paths", NDE_KEY_INT, "4096",
     "held-out paths; the evaluation generates as many"},
    {"t_size", NDE_KEY_INT, "64", "observation times 0, 1, ..., t_size - 1"},
    {"drop", NDE_KEY_DOUBLE, "0.3",
     "fraction of all values removed at random (irregular data)"},
    {"normalise", NDE_KEY_BOOL, "true",
     "scale the data by the mean and standard deviation of the training "
     "paths' observed initial values"},
    {"initial_noise", NDE_KEY_INT, "5",
     "standard normals from which gen.init makes a generated row's z0"},
    {"width", NDE_KEY_INT, "16",
     "hidden width of gen.init and disc.init"},
    {"init_scale", NDE_KEY_DOUBLE, "3",
     "factor on gen.init's initial parameters (the example's init_mult1)"},
    {"mmd_paths", NDE_KEY_INT, "1024",
     "generated and held-out paths the MMD compares (<= test_paths)"},
    {"report", NDE_KEY_TEXT, "",
     "file to which each evaluation appends its KS statistics per time and "
     "MMD as a JSON line; - for stderr; empty: none"},
    {NULL, 0, NULL, NULL}};

/* ---- data ---------------------------------------------------------------- */

/* Simpson's rule of fn on [a, b], 1000 panels. */
static double simpson(double (*fn)(double, const double *), const double *p,
                      double a, double b)
{
    const int n = 1000;
    const double h = (b - a) / n;
    double s = fn(a, p) + fn(b, p);
    for (int i = 1; i < n; i++)
        s += (i % 2 ? 4.0 : 2.0) * fn(a + h * i, p);
    return s * h / 3.0;
}

/* p = {theta, mu or sigma, t1, T}: the integrands of the OU transition. */
static double ou_mean_kernel(double s, const double *p)
{
    return exp(-p[0] * (p[2] - s)) * p[1] * s;
}

static double ou_var_kernel(double s, const double *p)
{
    const double g = p[1] * 2.0 * s / p[3];
    return exp(-2.0 * p[0] * (p[2] - s)) * g * g;
}

/* n paths of T values into y (n x T, c = 1); mv (2 (T - 1)) scratch for
 * the OU transitions' added mean and variance. */
static void simulate(const gan_task *s, gsl_rng *r, double *y, size_t n,
                     double *mv)
{
    const double theta = 0.1, mu = 0.02, sigma = 0.4;   /* get_data */
    const double gmu = 0.02, gsig = 0.1, gsd0 = 0.25;   /* gbm      */
    const size_t T = s->T;
    for (size_t k = 1; k < T && !s->gbm; k++) {
        const double t1 = (double)k;
        const double pm[4] = {theta, mu, t1, (double)T};
        const double pv[4] = {theta, sigma, t1, (double)T};
        mv[2 * (k - 1)] = simpson(ou_mean_kernel, pm, t1 - 1.0, t1);
        mv[2 * (k - 1) + 1] = sqrt(simpson(ou_var_kernel, pv, t1 - 1.0, t1));
    }
    for (size_t i = 0; i < n; i++) {
        double *p = y + i * T;
        p[0] = s->gbm ? exp(gsd0 * gsl_ran_gaussian_ziggurat(r, 1.0))
                      : 2.0 * gsl_rng_uniform(r) - 1.0;
        for (size_t k = 1; k < T; k++) {
            const double xi = gsl_ran_gaussian_ziggurat(r, 1.0);
            if (s->gbm)
                p[k] = p[k - 1] * exp(gmu - 0.5 * gsig * gsig + gsig * xi);
            else
                p[k] = exp(-theta) * p[k - 1] + mv[2 * (k - 1)] +
                       mv[2 * (k - 1) + 1] * xi;
        }
    }
}

/* Remove round(drop n) of the n values at random (a partial shuffle). */
static int drop_values(double *y, size_t n, double drop, gsl_rng *r,
                       nde_ctx *ctx)
{
    const size_t m = (size_t)(drop * (double)n);
    size_t *idx = malloc(n * sizeof *idx);
    if (!idx)
        return nde_error(ctx, NDE_ENOMEM, "sde_gan: out of memory");
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = 0; i < m; i++) {
        const size_t j = i + gsl_rng_uniform_int(r, n - i), tmp = idx[i];
        idx[i] = idx[j];
        idx[j] = tmp;
        y[idx[i]] = NAN;
    }
    free(idx);
    return NDE_OK;
}

/* ---- the small networks -------------------------------------------------- */

/* LipSwish(x) = 0.909 x sigmoid(x) (Chen, Behrmann, Duvenaud, Jacobsen
 * 2019, "Residual Flows", Sec. 4; the example's LipSwish) and its
 * derivative. */
static double lipswish(double x)
{
    return 0.909 * x / (1.0 + exp(-x));
}

static double lipswish_d(double x)
{
    const double sg = 1.0 / (1.0 + exp(-x));
    return 0.909 * (sg + x * sg * (1.0 - sg));
}

/* out = W2 lipswish(W1 x + b1) + b2; pre and hid (k) kept for the VJP. */
static void mlp1_eval(const mlp1 *n, const double *th, const double *x,
                      double *pre, double *hid, double *out)
{
    const double *W1 = th + n->off, *b1 = W1 + n->k * n->in;
    const double *W2 = b1 + n->k, *b2 = W2 + n->out * n->k;
    task_affine(W1, b1, n->k, n->in, x, 1, pre);
    for (size_t j = 0; j < n->k; j++)
        hid[j] = lipswish(pre[j]);
    task_affine(W2, b2, n->out, n->k, hid, 1, out);
}

/* thetabar += ob^T d out/d theta; xbar (NULL: not wanted) += ob^T d out/dx;
 * pre, hid from mlp1_eval at x; hb is k scratch. */
static void mlp1_vjp(const mlp1 *n, const double *th, const double *x,
                     const double *pre, const double *hid, const double *ob,
                     double *hb, double *xbar, double *thetabar)
{
    const double *W1 = th + n->off, *W2 = W1 + n->k * n->in + n->k;
    double *gW1 = thetabar + n->off, *gb1 = gW1 + n->k * n->in;
    double *gW2 = gb1 + n->k, *gb2 = gW2 + n->out * n->k;
    for (size_t j = 0; j < n->k; j++)
        hb[j] = 0.0;
    task_affine_vjp(W2, n->out, n->k, hid, ob, 1, hb, gW2, gb2);
    for (size_t j = 0; j < n->k; j++)
        hb[j] *= lipswish_d(pre[j]);
    task_affine_vjp(W1, n->k, n->in, x, hb, 1, xbar, gW1, gb1);
}

/* PyTorch's default Linear initialisation, U(-1/sqrt(in), 1/sqrt(in)) for
 * weights and biases (torch.nn.Linear.reset_parameters), times scale. */
static void init_linear(gsl_rng *r, double *w, size_t out, size_t in,
                        double scale)
{
    const double a = scale / sqrt((double)in);
    for (size_t i = 0; i < out * in + out; i++)
        w[i] = a * (2.0 * gsl_rng_uniform(r) - 1.0);
}

/* init_linear's layout differs from mlp1's (W1 b1 W2 b2 = W1, b1 | W2,
 * b2: the same), so a layer is [W, b] in order. */
static void mlp1_init(const mlp1 *n, gsl_rng *r, double *th, double scale)
{
    init_linear(r, th + n->off, n->k, n->in, scale);
    init_linear(r, th + n->off + n->k * n->in + n->k, n->out, n->k, scale);
}

/* ---- create / destroy ---------------------------------------------------- */

static void gan_destroy(nde_task *t)
{
    gan_task *s = t->state;
    if (!s)
        return;
    nde_input_destroy(s->in);
    free(s->train);
    free(s->test);
    free(s->ts);
    free(s->kt);
    free(s->ku);
    free(s->x);
    free(s->hid);
    free(s->pre);
    free(s->z0);
    free(s->gen);
    free(s->ysave);
    free(s->sa);
    free(s->sb);
    free(s->pool);
    free(s->dist);
    free(s);
    t->state = NULL;
}

static int read_keys(gan_task *s, nde_section *d, nde_ctx *ctx)
{
    const char *proc;
    long paths, tests, T, nz, width, nmmd;
    int rc;

    if ((rc = nde_get_string(d, "process", &proc, ctx)) ||
        (rc = nde_get_long_min(d, "paths", 1, &paths, ctx)) ||
        (rc = nde_get_long_min(d, "test_paths", 2, &tests, ctx)) ||
        (rc = nde_get_long_min(d, "t_size", 2, &T, ctx)) ||
        (rc = nde_get_double_in(d, "drop", 0, 0, 1, 1, &s->drop, ctx)) ||
        (rc = nde_get_bool(d, "normalise", &s->normalise, ctx)) ||
        (rc = nde_get_long_min(d, "initial_noise", 1, &nz, ctx)) ||
        (rc = nde_get_long_min(d, "width", 1, &width, ctx)) ||
        (rc = nde_get_double_in(d, "init_scale", 0, 0, HUGE_VAL, 1,
                                &s->init_scale, ctx)) ||
        (rc = nde_get_long_min(d, "mmd_paths", 2, &nmmd, ctx)))
        return rc;
    s->report = "";
    if (nde_section_has(d, "report") &&
        (rc = nde_get_string(d, "report", &s->report, ctx)))
        return rc;
    if (strcmp(proc, "ou") != 0 && strcmp(proc, "gbm") != 0)
        return nde_section_error(d, "process", ctx, "'%s': expected ou or "
                                 "gbm", proc);
    if (nmmd > tests)
        return nde_section_error(d, "mmd_paths", ctx, "%ld: at most "
                                 "test_paths (%ld)", nmmd, tests);
    s->gbm = strcmp(proc, "gbm") == 0;
    s->npaths = (size_t)paths;
    s->ntest = (size_t)tests;
    s->T = (size_t)T;
    s->nz = (size_t)nz;
    s->width = (size_t)width;
    s->nmmd = (size_t)nmmd;
    return NDE_OK;
}

/* The model must be an sde_gan field: c from its input's channels, H
 * from its states named h1..hH. */
static int read_model(nde_task *t, gan_task *s, nde_section *d,
                      const nde_task_env *env, nde_ctx *ctx)
{
    const nde_field *f = env->field;
    if (strcmp(f->type->info.name, "sde_gan") != 0 || !f->state_names)
        return nde_section_error(d, "source", ctx, "sde_gan: the model's "
                                 "[field] must be an sde_gan field, not "
                                 "'%s'", f->type->info.name);
    s->c = f->ninputs - 1;
    for (size_t i = 0; i < f->dim; i++)
        if (f->state_names[i][0] == 'h')
            s->H++;
    s->G = f->dim - s->H;
    if (s->c != 1)
        return nde_section_error(d, "source", ctx, "sde_gan: the data have "
                                 "one channel; the field's channels is "
                                 "%zu", s->c);
    if (t->rows < 2)
        return nde_section_error(d, "source", ctx, "sde_gan: [train] "
                                 "batch_size %zu: at least 2 (generated and "
                                 "real rows)", t->rows);
    return NDE_OK;
}

static int make_data(gan_task *s, uint64_t seed, nde_ctx *ctx)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    int rc;

    if (!r)
        return nde_error(ctx, NDE_ENOMEM, "sde_gan: out of memory");
    gsl_rng_set(r, nde_seed_derive(seed, NDE_STREAM_NOISE));
    /* the evaluation's ysave, unused yet, holds the OU transitions */
    simulate(s, r, s->train, s->npaths, s->ysave);
    simulate(s, r, s->test, s->ntest, s->ysave);
    if ((rc = drop_values(s->train, s->npaths * s->T, s->drop, r, ctx)) ||
        (rc = drop_values(s->test, s->ntest * s->T, s->drop, r, ctx))) {
        gsl_rng_free(r);
        return rc;
    }
    gsl_rng_free(r);
    s->shift = 0.0;
    s->scale = 1.0;
    if (s->normalise) {
        double m = 0.0, v = 0.0, n = 0.0;
        for (size_t i = 0; i < s->npaths; i++)
            if (!isnan(s->train[i * s->T]))
                m += s->train[i * s->T], n += 1.0;
        if (n < 2.0)
            return nde_error(ctx, NDE_EINVAL, "sde_gan: fewer than 2 "
                             "observed initial values to normalise by");
        m /= n;
        for (size_t i = 0; i < s->npaths; i++)
            if (!isnan(s->train[i * s->T]))
                v += (s->train[i * s->T] - m) * (s->train[i * s->T] - m);
        s->shift = m;
        s->scale = sqrt(v / (n - 1.0));
        for (size_t i = 0; i < s->npaths * s->T; i++)
            s->train[i] = (s->train[i] - m) / s->scale;
        for (size_t i = 0; i < s->ntest * s->T; i++)
            s->test[i] = (s->test[i] - m) / s->scale;
    }
    return NDE_OK;
}

static int gan_create(nde_task *t, nde_section *d, const nde_task_env *env,
                      nde_ctx *ctx)
{
    gan_task *s = calloc(1, sizeof *s);
    int rc;

    if (!(t->state = s))
        return nde_error(ctx, NDE_ENOMEM, "sde_gan: out of memory");
    if ((rc = read_keys(s, d, ctx)) || (rc = read_model(t, s, d, env, ctx)))
        return rc;
    s->gi = (mlp1){s->nz, s->width, s->G, 0};
    s->di = (mlp1){1 + s->c, s->width, s->H, mlp1_nparams(&s->gi)};
    s->ro = s->di.off + mlp1_nparams(&s->di);
    t->nparams = s->ro + s->H + 1;
    t->input_dim = 1 + (s->nz > s->c ? s->nz : s->c);
    t->obs_dim = 1;
    t->max_saves = 1;
    t->max_rows = t->rows;
    t->ntest = 0;
    {
        const size_t T = s->T, B = t->rows, K = s->width, c = s->c;
        const size_t m2 = 2 * s->nmmd;
        if (!(s->train = malloc(s->npaths * T * sizeof *s->train)) ||
            !(s->test = malloc(s->ntest * T * sizeof *s->test)) ||
            !(s->ts = malloc(T * sizeof *s->ts)) ||
            !(s->kt = malloc(T * sizeof *s->kt)) ||
            !(s->ku = malloc(T * (c + 1) * sizeof *s->ku)) ||
            !(s->x = malloc(B * t->input_dim * sizeof *s->x)) ||
            !(s->hid = malloc(B * 2 * K * sizeof *s->hid)) ||
            !(s->pre = malloc(B * 2 * K * sizeof *s->pre)) ||
            !(s->z0 = malloc(B * t->dim * sizeof *s->z0)) ||
            !(s->gen = malloc(s->ntest * T * c * sizeof *s->gen)) ||
            !(s->ysave = malloc((T - 1) * B * t->dim * sizeof *s->ysave)) ||
            !(s->sa = malloc(s->ntest * sizeof *s->sa)) ||
            !(s->sb = malloc(s->ntest * sizeof *s->sb)) ||
            !(s->pool = malloc(m2 * T * c * sizeof *s->pool)) ||
            !(s->dist = malloc(m2 * (m2 - 1) / 2 * sizeof *s->dist)))
            return nde_error(ctx, NDE_ENOMEM, "sde_gan: out of memory");
        for (size_t k = 0; k < T; k++)
            s->ts[k] = (double)k;
        s->tsave1 = (double)(T - 1);
        if ((rc = nde_input_create(ctx, B, c + 1, T, NDE_INPUT_LINEAR,
                                   &s->in)))
            return rc;
    }
    return make_data(s, env->seed, ctx);
}

static int gan_init_params(nde_task *t, double *theta, uint64_t seed)
{
    const gan_task *s = t->state;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);

    if (!r)
        return nde_error(t->ctx, NDE_ENOMEM, "sde_gan: out of memory");
    gsl_rng_set(r, seed);
    mlp1_init(&s->gi, r, theta, s->init_scale);
    mlp1_init(&s->di, r, theta, 1.0);
    init_linear(r, theta + s->ro, 1, s->H, 1.0);
    gsl_rng_free(r);
    return NDE_OK;
}

static void gan_param_name(const nde_task *t, size_t i, char *buf,
                           size_t size)
{
    const gan_task *s = t->state;
    const mlp1 *n = i < s->di.off ? &s->gi : &s->di;
    const char *stem = i < s->di.off ? "gen.init" : "disc.init";
    size_t j;

    if (i >= s->ro) {
        j = i - s->ro;
        if (j < s->H)
            snprintf(buf, size, "disc.readout.W1[0,%zu]", j);
        else
            snprintf(buf, size, "disc.readout.b1[0]");
        return;
    }
    j = i - n->off;
    if (j < n->k * n->in) {
        snprintf(buf, size, "%s.W1[%zu,%zu]", stem, j / n->in, j % n->in);
        return;
    }
    j -= n->k * n->in;
    if (j < n->k) {
        snprintf(buf, size, "%s.b1[%zu]", stem, j);
        return;
    }
    j -= n->k;
    if (j < n->out * n->k)
        snprintf(buf, size, "%s.W2[%zu,%zu]", stem, j / n->k, j % n->k);
    else
        snprintf(buf, size, "%s.b2[%zu]", stem, j - n->out * n->k);
}

/* ---- the ops ------------------------------------------------------------- */

/* Row r of the input from path p (T values, NaN where missing), and the
 * path's value at t0 (held before its first observation) into *y0. */
static int set_real_row(gan_task *s, size_t r, const double *p, double *y0)
{
    const size_t T = s->T;
    size_t n = 0;
    for (size_t k = 0; k < T; k++) {
        if (isnan(p[k]))
            continue;
        s->kt[n] = s->ts[k];
        s->ku[2 * n] = p[k];
        s->ku[2 * n + 1] = 1.0;
        n++;
    }
    if (n == 0) { /* nothing observed: a flat path at 0 */
        s->kt[0] = s->ts[0];
        s->ku[0] = 0.0;
        s->ku[1] = 1.0;
        n = 1;
    }
    *y0 = s->ku[0];
    return nde_input_set_row(s->in, r, n, s->kt, s->ku);
}

static int set_generated_row(gan_task *s, size_t r)
{
    const double u[2] = {0.0, 0.0};
    return nde_input_set_row(s->in, r, 1, s->ts, u);
}

static int gan_batch(nde_task *t, const nde_task_draw *draw,
                     nde_task_batch *b)
{
    gan_task *s = t->state;
    const size_t B = t->rows, half = B / 2, n = t->input_dim;
    int rc;

    memset(s->x, 0, B * n * sizeof *s->x);
    for (size_t r = 0; r < B; r++) {
        double *x = s->x + r * n;
        if (r < half) {
            for (size_t j = 0; j < s->nz; j++)
                x[1 + j] = gsl_ran_gaussian_ziggurat(draw->rng, 1.0);
            rc = set_generated_row(s, r);
        } else {
            const size_t p = gsl_rng_uniform_int(draw->rng, s->npaths);
            x[0] = 1.0;
            rc = set_real_row(s, r, s->train + p * s->T, x + 1);
        }
        if (rc)
            return rc;
    }
    if ((rc = nde_input_use_rows(s->in, B)))
        return rc;
    b->t0 = s->ts[0];
    b->nsave = 1;
    b->tsave = &s->tsave1;
    b->first_ct = 0;
    b->input = s->x;
    return NDE_OK;
}

/* z0 and h0 of `rows` rows of input x into y0 (rows x dim). */
static void lift_rows(gan_task *s, const double *theta, const double *x,
                      size_t rows, size_t n, double *y0)
{
    const size_t D = s->G + s->H, K = s->width;
    for (size_t r = 0; r < rows; r++) {
        const double *xr = x + r * n;
        double *z = y0 + r * D, X0[2];
        X0[0] = s->ts[0];
        if (xr[0] > 0.5) {
            memset(z, 0, s->G * sizeof *z);
            X0[1] = xr[1];
        } else {
            mlp1_eval(&s->gi, theta, xr + 1, s->pre + r * 2 * K,
                      s->hid + r * 2 * K, z);
            X0[1] = z[0];
        }
        mlp1_eval(&s->di, theta, X0, s->pre + r * 2 * K + K,
                  s->hid + r * 2 * K + K, z + s->G);
    }
}

static int gan_lift(nde_task *t, const double *theta, const nde_task_batch *b,
                    double *y0)
{
    gan_task *s = t->state;
    lift_rows(s, theta, b->input, t->rows, t->input_dim, y0);
    return NDE_OK;
}

/* Through h0 = disc.init(t0, y0) into disc.init's parameters and y0's
 * cotangent, then through a generated row's z0 = gen.init(noise). */
static int gan_lift_vjp(nde_task *t, const double *theta,
                        const nde_task_batch *b, const double *ybar0,
                        double *thetabar)
{
    gan_task *s = t->state;
    const size_t D = t->dim, K = s->width, n = t->input_dim;
    double hb[256], zb[256], X0[2];

    if (K > 256 || s->G > 256)
        return nde_error(t->ctx, NDE_EINVAL, "sde_gan: width and the "
                         "generator's states at most 256");
    lift_rows(s, theta, b->input, t->rows, n, s->z0);
    for (size_t r = 0; r < t->rows; r++) {
        const double *xr = b->input + r * n, *yb = ybar0 + r * D;
        const int real = xr[0] > 0.5;
        double xb[2] = {0.0, 0.0};
        X0[0] = s->ts[0];
        X0[1] = real ? xr[1] : s->z0[r * D];
        mlp1_vjp(&s->di, theta, X0, s->pre + r * 2 * K + K,
                 s->hid + r * 2 * K + K, yb + s->G, hb, real ? NULL : xb,
                 thetabar);
        if (real)
            continue;
        memcpy(zb, yb, s->G * sizeof *zb);
        zb[0] += xb[1];
        mlp1_vjp(&s->gi, theta, xr + 1, s->pre + r * 2 * K,
                 s->hid + r * 2 * K, zb, hb, NULL, thetabar);
    }
    return NDE_OK;
}

/* score = w . h(T) + b */
static int gan_readout(nde_task *t, const double *theta,
                       const nde_task_batch *b, const double *y, double *obs)
{
    const gan_task *s = t->state;
    const double *w = theta + s->ro;
    (void)b;
    for (size_t r = 0; r < t->rows; r++) {
        const double *h = y + r * t->dim + s->G;
        double a = w[s->H];
        for (size_t i = 0; i < s->H; i++)
            a += w[i] * h[i];
        obs[r] = a;
    }
    return NDE_OK;
}

static int gan_readout_vjp(nde_task *t, const double *theta,
                           const nde_task_batch *b, const double *y,
                           const double *obsbar, double *ybar,
                           double *thetabar)
{
    const gan_task *s = t->state;
    const double *w = theta + s->ro;
    double *gw = thetabar + s->ro;
    (void)b;
    for (size_t r = 0; r < t->rows; r++) {
        const double *h = y + r * t->dim + s->G;
        double *hb = ybar + r * t->dim + s->G;
        for (size_t i = 0; i < s->H; i++) {
            hb[i] += obsbar[r] * w[i];
            gw[i] += obsbar[r] * h[i];
        }
        gw[s->H] += obsbar[r];
    }
    return NDE_OK;
}

/* mean real score - mean generated score */
static int gan_loss(nde_task *t, const nde_task_batch *b, const double *obs,
                    double *value, double *obsbar)
{
    const size_t B = t->rows, half = B / 2;
    double sum = 0.0;
    (void)b;
    for (size_t r = 0; r < B; r++) {
        const double w = r < half ? -1.0 / (double)half
                                  : 1.0 / (double)(B - half);
        sum += w * obs[r];
        obsbar[r] = w;
    }
    *value = sum;
    return NDE_OK;
}

/* ---- evaluation ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b| of the
 * samples a (na) and b (nb), sorting them in place. */
static double ks2(double *a, size_t na, double *b, size_t nb)
{
    size_t i = 0, j = 0;
    double d = 0.0;
    qsort(a, na, sizeof *a, cmp_double);
    qsort(b, nb, sizeof *b, cmp_double);
    while (i < na && j < nb) {
        const double x = a[i] <= b[j] ? a[i] : b[j];
        while (i < na && a[i] == x)
            i++;
        while (j < nb && b[j] == x)
            j++;
        d = fmax(d, fabs((double)i / (double)na - (double)j / (double)nb));
    }
    return d;
}

/* Path p (T values, NaN where missing) linearly interpolated at every
 * time, held before the first and after the last observation, into out. */
static void interpolate(const double *p, size_t T, double *out)
{
    size_t prev = T;
    for (size_t k = 0; k < T; k++) {
        if (isnan(p[k]))
            continue;
        if (prev == T)
            for (size_t j = 0; j < k; j++)
                out[j] = p[k];
        else
            for (size_t j = prev + 1; j < k; j++)
                out[j] = p[prev] + (p[k] - p[prev]) * (double)(j - prev) /
                                       (double)(k - prev);
        out[k] = p[k];
        prev = k;
    }
    if (prev == T)
        prev = 0, out[0] = 0.0;
    for (size_t j = prev + 1; j < T; j++)
        out[j] = out[prev];
}

static void mmd(gan_task *s)
{
    const size_t m = s->nmmd, L = s->T * s->c, N = 2 * m;
    size_t np = 0;
    double kxx = 0.0, kyy = 0.0, kxy = 0.0;
    for (size_t i = 0; i < m; i++) {
        memcpy(s->pool + i * L, s->gen + i * L, L * sizeof *s->pool);
        interpolate(s->test + i * s->T, s->T, s->pool + (m + i) * L);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t j = i + 1; j < N; j++) {
            double d2 = 0.0;
            for (size_t l = 0; l < L; l++) {
                const double e = s->pool[i * L + l] - s->pool[j * L + l];
                d2 += e * e;
            }
            s->dist[np++] = d2;
        }
    /* the bandwidth (reordering dist), then the kernels from the
     * distances again */
    s->bandwidth = sqrt(task_kth_smallest(s->dist, np, np / 2));
    {
        const double g = 1.0 / (2.0 * s->bandwidth * s->bandwidth);
        for (size_t i = 0; i < N; i++)
            for (size_t j = i + 1; j < N; j++) {
                double d2 = 0.0;
                for (size_t l = 0; l < L; l++) {
                    const double e = s->pool[i * L + l] - s->pool[j * L + l];
                    d2 += e * e;
                }
                const double k = exp(-g * d2);
                if (j < m)
                    kxx += k;
                else if (i >= m)
                    kyy += k;
                else
                    kxy += k;
            }
    }
    s->mmd2 = 2.0 * kxx / ((double)m * (double)(m - 1)) +
              2.0 * kyy / ((double)m * (double)(m - 1)) -
              2.0 * kxy / ((double)m * (double)m);
}

static int write_report(const nde_task *t, gan_task *s)
{
    FILE *fp;
    if (!s->report[0])
        return NDE_OK;
    fp = strcmp(s->report, "-") == 0 ? stderr : fopen(s->report, "a");
    if (!fp)
        return nde_error(t->ctx, NDE_ECONFIG, "[data] report: cannot open "
                         "'%s' to append to", s->report);
    fprintf(fp, "{\"evaluation\": %ld, \"ks\": {", s->nevals);
    for (size_t l = 0; l < NLOC; l++)
        fprintf(fp, "%s\"%zu\": %.4f", l ? ", " : "",
                (size_t)(plot_locs[l] * (double)(s->T - 1)), s->ks[l]);
    fprintf(fp, "}, \"mmd2\": %.6g, \"mmd_bandwidth\": %.6g}\n", s->mmd2,
            s->bandwidth);
    if (fp != stderr)
        fclose(fp);
    return NDE_OK;
}

static int gan_evaluate(nde_task *t, const double *theta,
                        const nde_task_model *m, nde_task_metrics *res)
{
    gan_task *s = t->state;
    const size_t T = s->T, D = t->dim, c = s->c, n = t->input_dim;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    double worst = 0.0;
    int rc = NDE_OK;

    if (!r)
        return nde_error(t->ctx, NDE_ENOMEM, "sde_gan: out of memory");
    /* the same initial noise at every evaluation */
    gsl_rng_set(r, 0x5de6a7);
    for (size_t i = 0, rows; i < s->ntest && rc == NDE_OK; i += rows) {
        rows = s->ntest - i < t->rows ? s->ntest - i : t->rows;
        memset(s->x, 0, rows * n * sizeof *s->x);
        for (size_t q = 0; q < rows && rc == NDE_OK; q++) {
            for (size_t j = 0; j < s->nz; j++)
                s->x[q * n + 1 + j] = gsl_ran_gaussian_ziggurat(r, 1.0);
            rc = set_generated_row(s, q);
        }
        if (rc || (rc = nde_input_use_rows(s->in, rows)))
            break;
        lift_rows(s, theta, s->x, rows, n, s->z0);
        if ((rc = m->predict(m, s->ts[0], s->z0, rows, s->ts[T - 1], T - 1,
                             s->ts + 1, s->ysave)))
            break;
        for (size_t q = 0; q < rows; q++)
            for (size_t k = 0; k < T; k++) {
                const double *y = k ? s->ysave + ((k - 1) * rows + q) * D
                                    : s->z0 + q * D;
                memcpy(s->gen + ((i + q) * T + k) * c, y, c * sizeof *y);
            }
    }
    gsl_rng_free(r);
    if (rc)
        return rc;
    for (size_t l = 0; l < NLOC; l++) {
        const size_t k = (size_t)(plot_locs[l] * (double)(T - 1));
        size_t nb = 0;
        for (size_t i = 0; i < s->ntest; i++) {
            s->sa[i] = s->gen[(i * T + k) * c];
            if (!isnan(s->test[i * T + k]))
                s->sb[nb++] = s->test[i * T + k];
        }
        s->ks[l] = nb ? ks2(s->sa, s->ntest, s->sb, nb) : NAN;
        worst = fmax(worst, s->ks[l]);
    }
    mmd(s);
    s->nevals++;
    res->test_loss = worst;
    return write_report(t, s);
}

static uint64_t gan_digest(const nde_task *t)
{
    const gan_task *s = t->state;
    task_digest d;
    task_digest_init(&d);
    task_digest_bytes(&d, s->train, s->npaths * s->T * sizeof *s->train);
    task_digest_bytes(&d, s->test, s->ntest * s->T * sizeof *s->test);
    return task_digest_final(&d);
}

static nde_input *gan_input(nde_task *t)
{
    gan_task *s = t->state;
    return s->in;
}

static const nde_task_type nde_task_sde_gan = {
    .info = NDE_TASK_INFO(
        .name = "sde_gan",
        .description = "an SDE trained as a GAN against a neural CDE "
                       "discriminator (Kidger et al. 2021) on generated "
                       "Ornstein-Uhlenbeck or GBM paths; KS of the "
                       "marginals and MMD",
        .keys = gan_keys,
        .version = "1"),
    .create = gan_create,
    .destroy = gan_destroy,
    .init_params = gan_init_params,
    .param_name = gan_param_name,
    .batch = gan_batch,
    .lift = gan_lift,
    .lift_vjp = gan_lift_vjp,
    .readout = gan_readout,
    .readout_vjp = gan_readout_vjp,
    .loss = gan_loss,
    .evaluate = gan_evaluate,
    .digest = gan_digest,
    .input = gan_input,
};

NDE_MODULE(&nde_task_sde_gan.info);
