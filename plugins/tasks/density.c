/*
 * The density task ([data] source = density): fit a continuous
 * normalizing flow (FFJORD, Grathwohl et al., ICLR 2019) to a 2-D toy
 * density by maximum likelihood. The model is the `cnf` field: the state
 * row is [z (2), l] (trace = exact, dim 3) or [z (2), l, e (2)]
 * (trace = hutchinson, dim 5). A data point x starts the solve as
 * z = x, l = 0 (and the probe e), t in [0, t1]; at the end z(t1) should
 * be standard normal, so
 *
 *     -log p(x) = 0.5 |z(t1)|^2 + log(2 pi) + l(t1)     (nats)
 *
 * (l(t1) = -int tr(df/dz) dt). The loss is its mean over the batch.
 *
 * Probes (Hutchinson): one per row and batch, Rademacher or Gaussian
 * (`probe`), drawn from the batch's seed and iteration (and nothing
 * else); the evaluation uses one fixed probe per test point, the same
 * at every evaluation, so its test NLL is an unbiased estimate whose
 * noise does not move between evaluations. Under trace = exact the test
 * NLL is exact (up to the solver's error).
 *
 * Data, generated in create from the [train] seed: n_train and n_test
 * points of [data] density (density_data.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "density_data.h"
#include "task_util.h"

static const nde_key density_keys[] = {
    {"source", NDE_KEY_WORD, NULL, "density"},
    {"density", NDE_KEY_WORD, "eight_gaussians",
     "eight_gaussians, two_moons, pinwheel or checkerboard (FFJORD's toy "
     "densities)"},
    {"n_train", NDE_KEY_INT, "10000", "training points"},
    {"n_test", NDE_KEY_INT, "5000", "test points"},
    {"probe", NDE_KEY_WORD, "rademacher",
     "trace = hutchinson: rademacher (entries +-1) or gaussian"},
    {"t1", NDE_KEY_DOUBLE, "1", "the end of the flow, t in [0, t1]"},
    {NULL, 0, NULL, NULL}};

#define NIN 2     /* a point's coordinates */

/* Salt of the probe streams, apart from the batch order's epochs. */
#define PROBE_STREAM ((uint64_t)1 << 62)
#define EVAL_STREAM (((uint64_t)1 << 62) + ((uint64_t)1 << 61))

typedef struct density {
    int kind;              /* enum density_kind                          */
    int hutchinson, gaussian;
    double t1;
    size_t ntrain, ntest;
    double *xtr, *xte;     /* n x 2                                      */
    task_order order;
    double *y0b;           /* rows x dim: the batch's initial states      */
    double *y0, *y1;       /* rows x dim: evaluation's chunk              */
} density;

static int read_word(nde_section *dsec, const char *key,
                     const char *const *words, int *out, nde_ctx *ctx)
{
    const char *w, *guess;
    int rc;

    if ((rc = nde_get_string(dsec, key, &w, ctx)))
        return rc;
    for (int i = 0; words[i]; i++)
        if (strcmp(w, words[i]) == 0) {
            *out = i;
            return NDE_OK;
        }
    guess = nde_suggest(w, words);
    return nde_section_error(dsec, key, ctx, "unknown '%s'%s%s%s", w,
                             guess ? " (did you mean '" : "",
                             guess ? guess : "", guess ? "'?)" : "");
}

static int density_create(nde_task *t, nde_section *dsec,
                          const nde_task_env *env, nde_ctx *ctx)
{
    static const char *const probes[] = {"rademacher", "gaussian", NULL};
    const size_t D = t->dim;
    long ntrain, ntest;
    gsl_rng *r;
    density *p;
    int rc;

    if (!(p = t->state = calloc(1, sizeof *p)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = task_check_noise(t, dsec, env, 0)) ||
        (rc = read_word(dsec, "density", density_names, &p->kind, ctx)) ||
        (rc = read_word(dsec, "probe", probes, &p->gaussian, ctx)) ||
        (rc = nde_get_long_min(dsec, "n_train", 1, &ntrain, ctx)) ||
        (rc = nde_get_long_min(dsec, "n_test", 1, &ntest, ctx)) ||
        (rc = nde_get_double_in(dsec, "t1", 0, 0, HUGE_VAL, 1, &p->t1, ctx)))
        return rc;
    if (D != NIN + 1 && D != 2 * NIN + 1)
        return nde_section_error(dsec, "source", ctx,
                                 "density: the field's state is [z, l] (dim "
                                 "3: a cnf with trace = exact) or [z, l, e] "
                                 "(dim 5: trace = hutchinson) for 2-D "
                                 "points, not dim %zu", D);
    p->hutchinson = D == 2 * NIN + 1;
    p->ntrain = (size_t)ntrain;
    p->ntest = (size_t)ntest;
    t->nparams = 0;
    t->input_dim = D;
    t->obs_dim = D;
    t->max_saves = 1;
    t->max_rows = t->rows;
    t->ntest = p->ntest;
    if ((rc = task_order_init(&p->order, p->ntrain, ctx)))
        return rc;
    if (!(p->xtr = malloc(p->ntrain * NIN * sizeof *p->xtr)) ||
        !(p->xte = malloc(p->ntest * NIN * sizeof *p->xte)) ||
        !(p->y0b = malloc(t->rows * D * sizeof *p->y0b)) ||
        !(p->y0 = malloc(t->rows * D * sizeof *p->y0)) ||
        !(p->y1 = malloc(t->rows * D * sizeof *p->y1)) ||
        !(r = gsl_rng_alloc(gsl_rng_mt19937)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    gsl_rng_set(r, nde_seed_derive(env->seed, NDE_STREAM_NOISE));
    density_sample(p->kind, r, p->ntrain, p->xtr);
    density_sample(p->kind, r, p->ntest, p->xte);
    gsl_rng_free(r);
    return NDE_OK;
}

static void density_destroy(nde_task *t)
{
    density *p = t->state;

    if (!p)
        return;
    task_order_free(&p->order);
    free(p->xtr);
    free(p->xte);
    free(p->y0b);
    free(p->y0);
    free(p->y1);
    free(p);
}

/* Uniform in (0, 1) from a 64-bit word. */
static double unit_open(uint64_t u)
{
    return ((double)(u >> 11) + 0.5) * 0x1.0p-53;
}

/* The probe of stream `seed` (2 values): Rademacher from two bits, or
 * Gaussian by Box-Muller. */
static void probe(int gaussian, uint64_t seed, double *e)
{
    const uint64_t u = nde_seed_derive(seed, 0), v = nde_seed_derive(seed, 1);
    if (!gaussian) {
        e[0] = u >> 63 ? 1.0 : -1.0;
        e[1] = v >> 63 ? 1.0 : -1.0;
        return;
    }
    const double rad = sqrt(-2.0 * log(unit_open(u)));
    const double phi = 2.0 * M_PI * unit_open(v);
    e[0] = rad * cos(phi);
    e[1] = rad * sin(phi);
}

/* n initial states [x, 0 (, e)] of the points x; probe i from
 * stream(seed, first + i). */
static void initial_states(const nde_task *t, const double *x, size_t n,
                           uint64_t seed, uint64_t first, double *y0)
{
    const density *p = t->state;
    const size_t D = t->dim;

    for (size_t r = 0; r < n; r++) {
        y0[r * D] = x[r * NIN];
        y0[r * D + 1] = x[r * NIN + 1];
        y0[r * D + 2] = 0.0;
        if (p->hutchinson)
            probe(p->gaussian, nde_seed_derive(seed, first + r),
                  y0 + r * D + NIN + 1);
    }
}

/* batch_size points of the stream of one permutation per epoch. */
static int density_batch(nde_task *t, const nde_task_draw *draw,
                         nde_task_batch *b)
{
    density *p = t->state;
    const size_t D = t->dim;
    double x[NIN];

    for (size_t r = 0; r < t->rows; r++) {
        const size_t j = task_order_pick(&p->order, draw->seed,
                                         (uint64_t)draw->iteration *
                                             t->rows + r);
        x[0] = p->xtr[j * NIN];
        x[1] = p->xtr[j * NIN + 1];
        initial_states(t, x, 1,
                       nde_seed_derive(draw->seed, PROBE_STREAM +
                                                       (uint64_t)
                                                           draw->iteration),
                       r, p->y0b + r * D);
    }
    b->t0 = 0.0;
    b->nsave = 1;
    b->tsave = &p->t1;
    b->first_ct = 0;
    b->input = p->y0b;
    return NDE_OK;
}

/* Sum over n rows of 0.5 |z|^2 + log(2 pi) + l. */
static double nll_sum(const double *y, size_t n, size_t D)
{
    double s = 0.0;
    for (size_t r = 0; r < n; r++) {
        const double *z = y + r * D;
        s += 0.5 * (z[0] * z[0] + z[1] * z[1]) + log(2.0 * M_PI) + z[NIN];
    }
    return s;
}

static int density_loss(nde_task *t, const nde_task_batch *b,
                        const double *obs, double *value, double *obsbar)
{
    const size_t D = t->dim, n = t->rows;

    (void)b;
    *value = nll_sum(obs, n, D) / (double)n;
    memset(obsbar, 0, n * D * sizeof *obsbar);
    for (size_t r = 0; r < n; r++) {
        obsbar[r * D] = obs[r * D] / (double)n;
        obsbar[r * D + 1] = obs[r * D + 1] / (double)n;
        obsbar[r * D + NIN] = 1.0 / (double)n;
    }
    return NDE_OK;
}

/* The mean NLL of the test points, in chunks of batch_size rows, each
 * with its fixed probe (hutchinson). */
static int density_evaluate(nde_task *t, const double *theta,
                            const nde_task_model *m, nde_task_metrics *r)
{
    density *p = t->state;
    const size_t N = p->ntest, D = t->dim;
    double sum = 0.0;
    size_t i, n;
    int rc;

    (void)theta;
    for (i = 0; i < N; i += n) {
        n = N - i < t->rows ? N - i : t->rows;
        initial_states(t, p->xte + i * NIN, n, EVAL_STREAM, i, p->y0);
        if ((rc = m->predict(m, 0.0, p->y0, n, p->t1, 1, &p->t1, p->y1)) !=
            NDE_OK)
            return rc;
        sum += nll_sum(p->y1, n, D);
    }
    r->test_loss = sum / (double)N;
    return NDE_OK;
}

static uint64_t density_digest(const nde_task *t)
{
    const density *p = t->state;
    task_digest d;

    task_digest_init(&d);
    task_digest_bytes(&d, p->xtr, p->ntrain * NIN * sizeof *p->xtr);
    task_digest_bytes(&d, p->xte, p->ntest * NIN * sizeof *p->xte);
    return task_digest_final(&d);
}

static const nde_task_type nde_task_density = {
    .info = NDE_TASK_INFO(
        .name = "density",
        .description = "2-D density estimation with a continuous "
                       "normalizing flow (the cnf field): mean NLL in "
                       "nats of FFJORD's toy densities",
        .keys = density_keys,
        .version = "1"),
    .create = density_create,
    .destroy = density_destroy,
    .batch = density_batch,
    .loss = density_loss,
    .evaluate = density_evaluate,
    .digest = density_digest,
};

NDE_MODULE(&nde_task_density.info);
