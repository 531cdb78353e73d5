/*
 * The classify task ([data] source = idx): labelled images from IDX
 * files, a linear encoder (the lift, F features -> dim), the ODE or SDE
 * block on t in [0, 1], a linear decoder (the readout, dim -> C logits)
 * and the softmax cross-entropy. The contract is nde/train.h's.
 *
 * With an SDE field each training row is one sample path (the trainer's
 * Brownian path of the iteration, its own components per row) and the
 * loss is the cross-entropy of that path's decoded state at t = 1. A test
 * image is predicted from one sample path too, that of the evaluation's
 * fixed Brownian path, so evaluations compare; no mean over paths. This
 * is the local-regularization paper's MNIST neural SDE
 * (avik-pal/LocalRegNeuralDE.jl: experiments/mnist_sde/main.jl, lines
 * 122-135, scores each test batch with the training loss in test mode,
 * which src/layers/neural_sde.jl solves once without the regularizer:
 * one path per image, a fresh one each time).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "task_util.h"


/* Debian's dataset-fashion-mnist files are the default data. */
#define FASHION_MNIST "/usr/share/datasets/fashion-mnist/"

static const nde_key classify_keys[] = {
    {"source", NDE_KEY_WORD, NULL, "idx"},
    {"images", NDE_KEY_TEXT, FASHION_MNIST "train-images-idx3-ubyte.gz",
     "training images (IDX, gzip or not; relative to the config's "
     "directory)"},
    {"labels", NDE_KEY_TEXT, FASHION_MNIST "train-labels-idx1-ubyte.gz",
     "training labels"},
    {"test_images", NDE_KEY_TEXT, FASHION_MNIST "t10k-images-idx3-ubyte.gz",
     "test images"},
    {"test_labels", NDE_KEY_TEXT, FASHION_MNIST "t10k-labels-idx1-ubyte.gz",
     "test labels"},
    {"limit", NDE_KEY_INT, "0",
     "training examples read (the first ones; 0 = all)"},
    {"test_limit", NDE_KEY_INT, "0",
     "test examples read (the first ones; 0 = all)"},
    {NULL, 0, NULL, NULL}};

static const double t_end = 1.0;

/* The encoder kernels' blocks: rows and outputs of encode_rows, columns
 * and outputs of encoder_weight_grad. */
enum { ENC_ROWS = 8, ENC_OUTS = 8, GRAD_COLS = 16, GRAD_OUTS = 4 };

/* On the field's threads (nde_task.pool), a call on ENC_SPLIT_ROWS rows
 * or more is cut into at most ENC_MAX_PARTS parts: blocks of rows for the
 * encoding, of the weights' columns for their gradient. Every entry is
 * computed as on one thread, so the bits do not depend on the count. */
enum { ENC_SPLIT_ROWS = 64, ENC_MAX_PARTS = 8 };

/* The parts of a call on n rows. */
static size_t enc_parts(const nde_task *t, size_t n)
{
    if (!t->pool || n < ENC_SPLIT_ROWS)
        return 1;
    const size_t p = nde_pool_threads(t->pool);
    return p < ENC_MAX_PARTS ? p : ENC_MAX_PARTS;
}

typedef struct classify {
    nde_dataset *train, *test;
    size_t F, C;
    task_order order;      /* the examples' order, epoch by epoch         */
    double *xb;            /* rows x F: the batch's images                */
    int *yb;               /* rows: their labels                          */
    size_t *pick;          /* rows: their examples                        */
    double *y0, *y1;       /* rows x dim: evaluation's chunk              */
    double *xt;            /* F x ENC_ROWS a part: its rows, transposed  */
    double *test_prob;     /* ntest x C                                   */
} classify;

/* theta = [encoder W (D x F, row d = the weights into state d) |
 * encoder b (D) | decoder W (C x D) | decoder b (C)] */
#define ENC_W(c, th) (th)
#define ENC_B(c, D, th) ((th) + (D) * (c)->F)
#define DEC_W(c, D, th) ((th) + (D) * (c)->F + (D))
#define DEC_B(c, D, th) (DEC_W(c, D, th) + (c)->C * (D))

/* One pair of IDX files; a file that cannot be read is a bad [data]
 * entry (NDE_ECONFIG, the reader's message naming the file). */
static int read_idx_pair(nde_section *dsec, const char *ikey,
                         const char *lkey, const char *limkey,
                         nde_dataset **out, nde_ctx *ctx)
{
    const char *ipath, *lpath;
    char *ifull = NULL, *lfull = NULL;
    long limit;
    int rc;

    if ((rc = nde_get_string(dsec, ikey, &ipath, ctx)) ||
        (rc = nde_get_string(dsec, lkey, &lpath, ctx)) ||
        (rc = nde_get_long_min(dsec, limkey, 0, &limit, ctx)))
        return rc;
    if (!(ifull = nde_section_path(dsec, ikey, ipath)) ||
        !(lfull = nde_section_path(dsec, lkey, lpath)))
        rc = nde_error(ctx, NDE_ENOMEM, "out of memory");
    else
        rc = nde_data_read_idx(ifull, lfull, (size_t)limit, out, ctx);
    free(ifull);
    free(lfull);
    if (rc == NDE_EIO) {
        nde_error_prefix(ctx, "[data] %s, %s", ikey, lkey);
        rc = NDE_ECONFIG;
    }
    return rc;
}

static int classify_create(nde_task *t, nde_section *dsec,
                           const nde_task_env *env, nde_ctx *ctx)
{
    const size_t D = t->dim;
    classify *c;
    int rc;

    if (!(c = t->state = calloc(1, sizeof *c)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    (void)env; /* ODE and SDE fields alike */
    if ((rc = read_idx_pair(dsec, "images", "labels", "limit", &c->train,
                            ctx)) ||
        (rc = read_idx_pair(dsec, "test_images", "test_labels", "test_limit",
                            &c->test, ctx)))
        return rc;
    if (c->test->nfeatures != c->train->nfeatures)
        return nde_section_error(dsec, "test_images", ctx,
                                 "%zu features per test image, %zu per "
                                 "training image", c->test->nfeatures,
                                 c->train->nfeatures);
    if (c->train->nexamples == 0 || c->test->nexamples == 0)
        return nde_section_error(dsec, "images", ctx,
                                 "no examples to train or test on");
    c->F = c->train->nfeatures;
    c->C = c->train->nclasses > c->test->nclasses ? c->train->nclasses
                                                   : c->test->nclasses;
    if (c->C < 2)
        return nde_section_error(dsec, "labels", ctx,
                                 "a single class: nothing to classify");
    t->nparams = D * c->F + D + c->C * D + c->C;
    t->input_dim = c->F;
    t->obs_dim = c->C;
    t->max_saves = 1;
    t->max_rows = t->rows;
    t->ntest = c->test->nexamples;
    if ((rc = task_order_init(&c->order, c->train->nexamples, ctx)))
        return rc;
    if (!(c->xb = malloc(t->rows * c->F * sizeof *c->xb)) ||
        !(c->yb = malloc(t->rows * sizeof *c->yb)) ||
        !(c->pick = malloc(t->rows * sizeof *c->pick)) ||
        !(c->y0 = malloc(t->rows * D * sizeof *c->y0)) ||
        !(c->y1 = malloc(t->rows * D * sizeof *c->y1)) ||
        !(c->xt = malloc(enc_parts(t, ENC_SPLIT_ROWS) * c->F * ENC_ROWS *
                         sizeof *c->xt)) ||
        !(c->test_prob = malloc(t->ntest * c->C * sizeof *c->test_prob)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    return NDE_OK;
}

static void classify_destroy(nde_task *t)
{
    classify *c = t->state;

    if (!c)
        return;
    nde_dataset_destroy(c->train);
    nde_dataset_destroy(c->test);
    task_order_free(&c->order);
    free(c->xb);
    free(c->yb);
    free(c->pick);
    free(c->y0);
    free(c->y1);
    free(c->xt);
    free(c->test_prob);
    free(c);
}

/* Glorot-uniform weights (Glorot & Bengio 2010, eq. 16) of the encoder and
 * decoder, biases 0. */
static int classify_init_params(nde_task *t, double *theta, uint64_t seed)
{
    const classify *c = t->state;
    const size_t D = t->dim, F = c->F, C = c->C;
    gsl_rng *r;

    if (!(r = gsl_rng_alloc(gsl_rng_mt19937)))
        return nde_error(t->ctx, NDE_ENOMEM, "out of memory");
    gsl_rng_set(r, seed);
    memset(theta, 0, t->nparams * sizeof *theta);
    task_glorot(r, ENC_W(c, theta), D, F);
    task_glorot(r, DEC_W(c, D, theta), C, D);
    gsl_rng_free(r);
    return NDE_OK;
}

static void classify_param_name(const nde_task *t, size_t i, char *buf,
                                size_t size)
{
    const classify *c = t->state;
    const size_t D = t->dim, F = c->F, C = c->C;

    if (i < D * F)
        snprintf(buf, size, "enc.W[%zu,%zu]", i / F, i % F);
    else if ((i -= D * F) < D)
        snprintf(buf, size, "enc.b[%zu]", i);
    else if ((i -= D) < C * D)
        snprintf(buf, size, "dec.W[%zu,%zu]", i / D, i % D);
    else
        snprintf(buf, size, "dec.b[%zu]", i - C * D);
}

/* One call of the encoder or of the batch's gather, cut into parts
 * (ENC_SPLIT_ROWS). */
typedef struct enc_job {
    const nde_task *t;
    const double *theta, *x, *g;
    size_t n, nparts;
    double *out;           /* encode: y0; the weight gradient: gW; the
                              gather: the batch's images                 */
} enc_job;

/* [*a, *b) of part p: whole blocks of `block` out of `total`. */
static void enc_range(const enc_job *j, size_t p, size_t total, size_t block,
                      size_t *a, size_t *b)
{
    const size_t nb = total / block;
    *a = block * (nb * p / j->nparts);
    *b = p + 1 == j->nparts ? total : block * (nb * (p + 1) / j->nparts);
}

/* The batch's images: part p's rows copied from the examples picked. */
static void gather_part(void *arg, size_t p)
{
    const enc_job *j = arg;
    const classify *c = j->t->state;
    const size_t F = c->F;
    size_t r0, r1;
    enc_range(j, p, j->n, ENC_ROWS, &r0, &r1);
    for (size_t r = r0; r < r1; r++)
        memcpy(j->out + r * F, j->x + c->pick[r] * F, F * sizeof *j->out);
}

/* Examples iteration * rows ... of the stream made of one random
 * permutation of the training set per epoch: it depends on the iteration
 * alone, so a resumed run draws the same batches. */
static int classify_batch(nde_task *t, const nde_task_draw *draw,
                          nde_task_batch *b)
{
    classify *c = t->state;
    const nde_dataset *d = c->train;
    const size_t B = t->rows;
    enc_job j = {.t = t, .x = d->x, .n = B, .nparts = enc_parts(t, B),
                 .out = c->xb};

    for (size_t r = 0; r < B; r++) {
        c->pick[r] = task_order_pick(&c->order, draw->seed,
                                     (uint64_t)draw->iteration * B + r);
        c->yb[r] = d->label[c->pick[r]];
    }
    nde_pool_run(t->pool, gather_part, &j, j.nparts);
    b->t0 = 0.0;
    b->nsave = 1;
    b->tsave = &t_end;
    b->first_ct = 0;
    b->input = c->xb;
    return NDE_OK;
}

/* b + w . x, the products summed in order. */
static double affine1(double b, const double *w, const double *x, size_t F)
{
    double s = b;
    for (size_t f = 0; f < F; f++)
        s += w[f] * x[f];
    return s;
}

/*
 * The encoder's kernels are also built for x86-64-v4 and -v3, picked when
 * the plugin loads (gcc's target_clones). classify is compiled with
 * -ffp-contract=off and the kernels keep each entry's order of
 * operations, so every build gives the bits of the plain loops (affine1;
 * the update g * x added row after row).
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KERNEL_CLONES                                                        \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3",         \
                                 "default")))
#else
#define KERNEL_CLONES
#endif

/* ENC_ROWS doubles: a generic vector of gcc's, which each clone lowers to
 * its widest registers. */
typedef double enc_vec __attribute__((vector_size(ENC_ROWS * sizeof(double))));

/* y (ENC_ROWS rows, D apart) = x W^T + b for the rows whose F features
 * xt holds transposed (F x ENC_ROWS): the rows are the vector lanes, and
 * ENC_OUTS outputs at a time keep as many sums going, each summing its
 * products in order of f. */
KERNEL_CLONES
static void encode_rows(const double *restrict W, const double *bias,
                        const double *restrict xt, size_t F, size_t D,
                        double *restrict y)
{
    for (size_t d = 0; d < D; d += ENC_OUTS) {
        const size_t m = D - d < ENC_OUTS ? D - d : ENC_OUTS;
        enc_vec acc[ENC_OUTS], x;
        for (size_t j = 0; j < ENC_OUTS; j++)
            for (size_t k = 0; k < ENC_ROWS; k++)
                acc[j][k] = j < m ? bias[d + j] : 0.0;
        for (size_t f = 0; f < F; f++) {
            memcpy(&x, xt + f * ENC_ROWS, sizeof x);
            /* a whole block: a constant count gcc unrolls into registers */
            if (m == ENC_OUTS)
                for (size_t j = 0; j < ENC_OUTS; j++)
                    acc[j] += x * W[(d + j) * F + f];
            else
                for (size_t j = 0; j < m; j++)
                    acc[j] += x * W[(d + j) * F + f];
        }
        for (size_t j = 0; j < m; j++)
            for (size_t k = 0; k < ENC_ROWS; k++)
                y[k * D + d + j] = acc[j][k];
    }
}

/* Columns [fa, fb) of gW (D x F) += g^T x for n rows, fa a multiple of
 * GRAD_COLS: GRAD_COLS columns of GRAD_OUTS rows of gW held in registers
 * while the rows of x go by (a block of x small enough for L1; each
 * entry takes the rows in order), the last columns one by one. */
KERNEL_CLONES
static void encoder_weight_grad(const double *restrict x,
                                const double *restrict g, size_t n,
                                size_t D, size_t F, size_t fa, size_t fb,
                                double *restrict gW)
{
    enum { V = GRAD_COLS / ENC_ROWS };
    size_t f0 = fa;
    for (; f0 + GRAD_COLS <= fb; f0 += GRAD_COLS)
        for (size_t d = 0; d < D; d += GRAD_OUTS) {
            const size_t m = D - d < GRAD_OUTS ? D - d : GRAD_OUTS;
            enc_vec acc[GRAD_OUTS][V], xv;
            for (size_t j = 0; j < m; j++)
                memcpy(acc[j], gW + (d + j) * F + f0, sizeof acc[j]);
            for (size_t r = 0; r < n; r++)
                for (size_t v = 0; v < V; v++) {
                    memcpy(&xv, x + r * F + f0 + v * ENC_ROWS, sizeof xv);
                    /* a whole block: a constant count, as in encode_rows */
                    if (m == GRAD_OUTS)
                        for (size_t j = 0; j < GRAD_OUTS; j++)
                            acc[j][v] += xv * g[r * D + d + j];
                    else
                        for (size_t j = 0; j < m; j++)
                            acc[j][v] += xv * g[r * D + d + j];
                }
            for (size_t j = 0; j < m; j++)
                memcpy(gW + (d + j) * F + f0, acc[j], sizeof acc[j]);
        }
    for (size_t d = 0; d < D; d++)
        for (size_t r = 0; r < n; r++)
            for (size_t f = f0; f < fb; f++)
                gW[d * F + f] += g[r * D + d] * x[r * F + f];
}

/* Rows [r0, r1) of y0 = x W^T + b: ENC_ROWS rows at a time through
 * encode_rows (transposed into xt), the rest one by one. */
static void encode_block(const nde_task *t, const double *theta,
                         const double *x, size_t r0, size_t r1, double *xt,
                         double *y0)
{
    const classify *c = t->state;
    const size_t D = t->dim, F = c->F;
    const double *W = ENC_W(c, theta), *bias = ENC_B(c, D, theta);
    size_t r = r0;

    for (; r + ENC_ROWS <= r1; r += ENC_ROWS) {
        for (size_t k = 0; k < ENC_ROWS; k++)
            for (size_t f = 0; f < F; f++)
                xt[f * ENC_ROWS + k] = x[(r + k) * F + f];
        encode_rows(W, bias, xt, F, D, y0 + r * D);
    }
    for (; r < r1; r++)
        for (size_t d = 0; d < D; d++)
            y0[r * D + d] = affine1(bias[d], W + d * F, x + r * F, F);
}

static void encode_part(void *arg, size_t p)
{
    const enc_job *j = arg;
    const classify *c = j->t->state;
    size_t r0, r1;
    enc_range(j, p, j->n, ENC_ROWS, &r0, &r1);
    encode_block(j->t, j->theta, j->x, r0, r1, c->xt + p * c->F * ENC_ROWS,
                 j->out);
}

/* y0 = x W^T + b for n rows. */
static void encode(const nde_task *t, const double *theta, const double *x,
                   size_t n, double *y0)
{
    enc_job j = {.t = t, .theta = theta, .x = x, .n = n,
                 .nparts = enc_parts(t, n), .out = y0};
    nde_pool_run(t->pool, encode_part, &j, j.nparts);
}

static void weight_grad_part(void *arg, size_t p)
{
    const enc_job *j = arg;
    const classify *c = j->t->state;
    size_t fa, fb;
    enc_range(j, p, c->F, GRAD_COLS, &fa, &fb);
    encoder_weight_grad(j->x, j->g, j->n, j->t->dim, c->F, fa, fb, j->out);
}

static int classify_lift(nde_task *t, const double *theta,
                         const nde_task_batch *b, double *y0)
{
    encode(t, theta, b->input, t->rows, y0);
    return NDE_OK;
}

static int classify_lift_vjp(nde_task *t, const double *theta,
                             const nde_task_batch *b, const double *ybar0,
                             double *thetabar)
{
    const classify *c = t->state;
    const size_t D = t->dim;
    double *gb = ENC_B(c, D, thetabar);

    (void)theta;
    for (size_t r = 0; r < t->rows; r++)
        for (size_t d = 0; d < D; d++)
            gb[d] += ybar0[r * D + d];
    enc_job j = {.t = t, .x = b->input, .g = ybar0, .n = t->rows,
                 .nparts = enc_parts(t, t->rows), .out = ENC_W(c, thetabar)};
    nde_pool_run(t->pool, weight_grad_part, &j, j.nparts);
    return NDE_OK;
}

/* Logits y W^T + b of n rows. */
static void decode(const nde_task *t, const double *theta, const double *y,
                   size_t n, double *logits)
{
    const classify *c = t->state;
    const size_t D = t->dim;

    task_affine(DEC_W(c, D, theta), DEC_B(c, D, theta), c->C, D, y, n,
                logits);
}

static int classify_readout(nde_task *t, const double *theta,
                            const nde_task_batch *b, const double *y,
                            double *obs)
{
    (void)b;
    decode(t, theta, y, t->rows, obs);
    return NDE_OK;
}

static int classify_readout_vjp(nde_task *t, const double *theta,
                                const nde_task_batch *b, const double *y,
                                const double *obsbar, double *ybar,
                                double *thetabar)
{
    const classify *c = t->state;
    const size_t D = t->dim;

    (void)b;
    task_affine_vjp(DEC_W(c, D, theta), c->C, D, y, obsbar, t->rows, ybar,
                    DEC_W(c, D, thetabar), DEC_B(c, D, thetabar));
    return NDE_OK;
}

/* The mean cross-entropy; dL/dlogits = (p - onehot) / rows. */
static int classify_loss(nde_task *t, const nde_task_batch *b,
                         const double *obs, double *value, double *obsbar)
{
    const classify *c = t->state;

    (void)b;
    task_xent_loss(c->C, obs, c->yb, t->rows, value, obsbar);
    return NDE_OK;
}

/* The test set in chunks of batch_size rows: mean cross-entropy and
 * accuracy. With an SDE each chunk is solved on the evaluation's fixed
 * Brownian path, so row r of every chunk takes the same draws. */
static int classify_evaluate(nde_task *t, const double *theta,
                             const nde_task_model *m, nde_task_metrics *r)
{
    classify *c = t->state;
    const nde_dataset *d = c->test;
    const size_t N = d->nexamples, C = c->C;
    double sum = 0.0;
    size_t i, n;
    int rc;

    for (i = 0; i < N; i += n) {
        double *p = c->test_prob + i * C;
        n = N - i < t->rows ? N - i : t->rows;
        encode(t, theta, d->x + i * c->F, n, c->y0);
        if ((rc = m->predict(m, 0.0, c->y0, n, t_end, 1, &t_end, c->y1)) !=
            NDE_OK)
            return rc;
        decode(t, theta, c->y1, n, p);
        sum += task_xent(C, p, d->label + i, n, p);
    }
    r->test_loss = sum / (double)N;
    r->test_accuracy =
        (double)task_correct(C, c->test_prob, d->label, N) / (double)N;
    return NDE_OK;
}

static uint64_t classify_digest(const nde_task *t)
{
    const classify *c = t->state;

    return task_digest_split(c->train, c->test);
}

static size_t classify_test_classes(const nde_task *t, const int **label,
                                    const double **prob)
{
    const classify *c = t->state;

    *label = c->test->label;
    *prob = c->test_prob;
    return c->C;
}

static const nde_task_type nde_task_classify = {
    .info = NDE_TASK_INFO(
        .name = "classify",
        .description = "image classification from IDX files (idx): encoder, "
                       "ODE or SDE, decoder, softmax",
        .keys = classify_keys,
        .version = "1"),
    .create = classify_create,
    .destroy = classify_destroy,
    .init_params = classify_init_params,
    .param_name = classify_param_name,
    .batch = classify_batch,
    .lift = classify_lift,
    .lift_vjp = classify_lift_vjp,
    .readout = classify_readout,
    .readout_vjp = classify_readout_vjp,
    .loss = classify_loss,
    .evaluate = classify_evaluate,
    .digest = classify_digest,
    .test_classes = classify_test_classes,
};

NDE_MODULE(&nde_task_classify.info);
