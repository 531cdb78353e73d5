/*
 * The points task ([data] source = annuli): classify 2-D points, the
 * showcase of "Dissecting Neural ODEs" (Massaroli et al., NeurIPS 2020,
 * sec. 3) and of ANODE (Dupont, Doucet, Teh, NeurIPS 2019, sec. 4).
 *
 * Data, generated in create from the [train] seed: class 0 uniform (by
 * area) in the disc r < r_in, class 1 uniform in the ring r_mid < r <
 * r_out; point i has class i % 2. The radii default to ANODE's
 * concentric spheres in 2-D (EmilienDupont/augmented-neural-odes,
 * config.json: inner_range [0, 0.5], outer_range [1.0, 1.5]).
 *
 * Model: the lift (the task's `lift` key) from the point to the ODE
 * state, the solve on t in [0, 1], a learned affine readout from y(1) to
 * 2 logits, softmax cross-entropy. No flow of the plane maps the disc out
 * of the ring, so with lift = identity a linear readout cannot separate
 * them; lift = zeros (ANODE) pads the point with dim - 2 zeros, lift =
 * linear learns an affine map 2 -> dim (Massaroli et al.'s input-layer
 * augmentation), lift = mlp a one-hidden-layer tanh network.
 *
 * control = true (Massaroli et al.'s data control, with the field
 * `controlled`): the state is [h | x], the lift's h (dim - 2 values) and
 * the point x itself as the last 2 components, which that field holds
 * constant while its inner field reads them; the readout reads h alone.
 *
 * readout = first (the paper's other readout) takes h's first 2
 * components as the logits, with no parameters.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "task_util.h"

static const nde_key points_keys[] = {
    {"source", NDE_KEY_WORD, NULL,
     "annuli (class 0 a disc, class 1 a ring around it)"},
    {"lift", NDE_KEY_WORD, "identity",
     "the ODE state from the point: identity (the point itself: the "
     "field's dim must be 2), zeros (the point and dim - 2 zeros: ANODE), "
     "linear (a learned affine map 2 -> dim: input-layer augmentation), "
     "mlp (a learned tanh network 2 -> lift_hidden -> dim)"},
    {"lift_hidden", NDE_KEY_INT, "32", "lift = mlp: its hidden units"},
    {"control", NDE_KEY_BOOL, "false",
     "append the point to the state as 2 constant controls (data-"
     "controlled field `controlled`, controls = 2): the lift then makes "
     "the first dim - 2 states and the readout reads those alone"},
    {"readout", NDE_KEY_WORD, "linear",
     "the logits from the final state h: linear (a learned affine map) or "
     "first (its first 2 components)"},
    {"n_train", NDE_KEY_INT, "1000", "training points (half of each class)"},
    {"n_test", NDE_KEY_INT, "1000", "test points"},
    {"r_in", NDE_KEY_DOUBLE, "0.5", "class 0: the disc r < r_in"},
    {"r_mid", NDE_KEY_DOUBLE, "1.0", "class 1: the ring r_mid < r < r_out"},
    {"r_out", NDE_KEY_DOUBLE, "1.5", "the ring's outer radius"},
    {NULL, 0, NULL, NULL}};

#define NIN 2     /* a point's coordinates */
#define NCLASS 2

static const double t_end = 1.0;

enum lift { LIFT_IDENTITY, LIFT_ZEROS, LIFT_LINEAR, LIFT_MLP };

typedef struct points {
    enum lift lift;
    int control;
    int first;             /* readout = first: no readout parameters   */
    size_t nh;             /* the lifted states h: dim, or dim - 2 with
                              control (then x follows them)              */
    size_t hidden;         /* lift = mlp: its hidden units               */
    size_t ntrain, ntest;
    double *xtr, *xte;     /* n x 2                                       */
    int *ltr, *lte;        /* n labels                                    */
    size_t nlift;          /* the lift's parameters                       */
    task_order order;
    double *xb;            /* rows x 2: the batch's points                */
    int *lb;               /* rows: their labels                          */
    double *y0, *y1;       /* rows x dim: evaluation's chunk              */
    double *h, *hbar;      /* rows x nh: the lift's output, the readout's
                              input, and their cotangents               */
    double *a, *abar;      /* rows x hidden: the mlp lift's tanh layer,
                              its cotangent                              */
    double *test_prob;     /* ntest x 2                                   */
} points;

/* theta = [lift | readout W (2 x nh) | readout b (2)], the lift's part
 * being nothing (identity, zeros), [W (nh x 2) | b (nh)] (linear) or
 * [W1 (H x 2) | b1 (H) | W2 (nh x H) | b2 (nh)] (mlp). */
#define LIFT_W(th) (th)
#define LIFT_B(p, th) ((th) + (p)->nh * NIN)
#define LIFT_W1(th) (th)
#define LIFT_B1(p, th) ((th) + (p)->hidden * NIN)
#define LIFT_W2(p, th) (LIFT_B1(p, th) + (p)->hidden)
#define LIFT_B2(p, th) (LIFT_W2(p, th) + (p)->nh * (p)->hidden)
#define OUT_W(p, th) ((th) + (p)->nlift)
#define OUT_B(p, th) (OUT_W(p, th) + NCLASS * (p)->nh)

/* n points, class i % 2, uniform by area: r = sqrt(a^2 + u (b^2 - a^2))
 * on [a, b). */
static void annuli(gsl_rng *r, size_t n, double r_in, double r_mid,
                   double r_out, double *x, int *label)
{
    for (size_t i = 0; i < n; i++) {
        const double a = i % 2 ? r_mid : 0.0, b = i % 2 ? r_out : r_in;
        const double rad = sqrt(a * a + gsl_rng_uniform(r) * (b * b - a * a));
        const double phi = 2.0 * M_PI * gsl_rng_uniform(r);
        x[i * NIN] = rad * cos(phi);
        x[i * NIN + 1] = rad * sin(phi);
        label[i] = (int)(i % 2);
    }
}

static int read_lift(nde_task *t, nde_section *dsec, points *p,
                     nde_ctx *ctx)
{
    const char *w, *ro;
    long hidden;
    int rc;

    if ((rc = nde_get_string(dsec, "readout", &ro, ctx)) ||
        (rc = nde_get_string(dsec, "lift", &w, ctx)) ||
        (rc = nde_get_bool(dsec, "control", &p->control, ctx)) ||
        (rc = nde_get_long_min(dsec, "lift_hidden", 1, &hidden, ctx)))
        return rc;
    p->hidden = (size_t)hidden;
    if (strcmp(w, "identity") == 0)
        p->lift = LIFT_IDENTITY;
    else if (strcmp(w, "zeros") == 0)
        p->lift = LIFT_ZEROS;
    else if (strcmp(w, "linear") == 0)
        p->lift = LIFT_LINEAR;
    else if (strcmp(w, "mlp") == 0)
        p->lift = LIFT_MLP;
    else
        return nde_section_error(dsec, "lift", ctx,
                                 "expected identity, zeros, linear or mlp, "
                                 "not '%s'", w);
    if (p->control && t->dim <= NIN)
        return nde_section_error(dsec, "control", ctx,
                                 "the state [h | x] needs a field's dim of "
                                 "at least 3, not %zu", t->dim);
    p->nh = p->control ? t->dim - NIN : t->dim;
    if (strcmp(ro, "linear") != 0 && strcmp(ro, "first") != 0)
        return nde_section_error(dsec, "readout", ctx,
                                 "expected linear or first, not '%s'", ro);
    p->first = ro[0] == 'f';
    if (p->first && p->nh < NCLASS)
        return nde_section_error(dsec, "readout", ctx,
                                 "first: the 2 logits are h's first 2 "
                                 "components, but h has %zu", p->nh);
    if (p->lift == LIFT_IDENTITY && p->nh != NIN)
        return nde_section_error(dsec, "lift", ctx,
                                 "identity: the ODE state is the 2-D point, "
                                 "so the field's dim must be %d, not %zu "
                                 "(lift = zeros or linear augments it)",
                                 p->control ? 2 * NIN : NIN, t->dim);
    if (p->lift == LIFT_ZEROS && p->nh <= NIN)
        return nde_section_error(dsec, "lift", ctx,
                                 "zeros: the 2-D point padded with zeros "
                                 "needs a field's dim of at least %d, not "
                                 "%zu", p->control ? 2 * NIN + 1 : NIN + 1,
                                 t->dim);
    p->nlift = p->lift == LIFT_LINEAR ? p->nh * (NIN + 1)
               : p->lift == LIFT_MLP
                   ? p->hidden * (NIN + 1) + p->nh * (p->hidden + 1)
                   : 0;
    return NDE_OK;
}

static int points_create(nde_task *t, nde_section *dsec,
                         const nde_task_env *env, nde_ctx *ctx)
{
    const size_t D = t->dim;
    double r_in, r_mid, r_out;
    long ntrain, ntest;
    gsl_rng *r;
    points *p;
    int rc;

    if (!(p = t->state = calloc(1, sizeof *p)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = task_check_noise(t, dsec, env, 0)) ||
        (rc = read_lift(t, dsec, p, ctx)) ||
        (rc = nde_get_long_min(dsec, "n_train", 2, &ntrain, ctx)) ||
        (rc = nde_get_long_min(dsec, "n_test", 1, &ntest, ctx)) ||
        (rc = nde_get_double_in(dsec, "r_in", 0, 1, HUGE_VAL, 1, &r_in,
                                ctx)) ||
        (rc = nde_get_double_in(dsec, "r_mid", r_in, 0, HUGE_VAL, 1, &r_mid,
                                ctx)) ||
        (rc = nde_get_double_in(dsec, "r_out", r_mid, 1, HUGE_VAL, 1,
                                &r_out, ctx)))
        return rc;
    p->ntrain = (size_t)ntrain;
    p->ntest = (size_t)ntest;
    t->nparams = p->nlift + (p->first ? 0 : NCLASS * p->nh + NCLASS);
    t->input_dim = NIN;
    t->obs_dim = NCLASS;
    t->max_saves = 1;
    t->max_rows = t->rows;
    t->ntest = p->ntest;
    if ((rc = task_order_init(&p->order, p->ntrain, ctx)))
        return rc;
    if (!(p->xtr = malloc(p->ntrain * NIN * sizeof *p->xtr)) ||
        !(p->ltr = malloc(p->ntrain * sizeof *p->ltr)) ||
        !(p->xte = malloc(p->ntest * NIN * sizeof *p->xte)) ||
        !(p->lte = malloc(p->ntest * sizeof *p->lte)) ||
        !(p->xb = malloc(t->rows * NIN * sizeof *p->xb)) ||
        !(p->lb = malloc(t->rows * sizeof *p->lb)) ||
        !(p->y0 = malloc(t->rows * D * sizeof *p->y0)) ||
        !(p->y1 = malloc(t->rows * D * sizeof *p->y1)) ||
        !(p->h = malloc(t->rows * p->nh * sizeof *p->h)) ||
        !(p->hbar = malloc(t->rows * p->nh * sizeof *p->hbar)) ||
        !(p->a = malloc(t->rows * p->hidden * sizeof *p->a)) ||
        !(p->abar = malloc(t->rows * p->hidden * sizeof *p->abar)) ||
        !(p->test_prob = malloc(p->ntest * NCLASS * sizeof *p->test_prob)) ||
        !(r = gsl_rng_alloc(gsl_rng_mt19937)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    gsl_rng_set(r, nde_seed_derive(env->seed, NDE_STREAM_NOISE));
    annuli(r, p->ntrain, r_in, r_mid, r_out, p->xtr, p->ltr);
    annuli(r, p->ntest, r_in, r_mid, r_out, p->xte, p->lte);
    gsl_rng_free(r);
    return NDE_OK;
}

static void points_destroy(nde_task *t)
{
    points *p = t->state;

    if (!p)
        return;
    task_order_free(&p->order);
    free(p->xtr);
    free(p->ltr);
    free(p->xte);
    free(p->lte);
    free(p->xb);
    free(p->lb);
    free(p->y0);
    free(p->y1);
    free(p->h);
    free(p->hbar);
    free(p->a);
    free(p->abar);
    free(p->test_prob);
    free(p);
}

/* Glorot-uniform weights (as classify's), biases 0. */
static int points_init_params(nde_task *t, double *theta, uint64_t seed)
{
    const points *p = t->state;
    gsl_rng *r;

    if (!(r = gsl_rng_alloc(gsl_rng_mt19937)))
        return nde_error(t->ctx, NDE_ENOMEM, "out of memory");
    gsl_rng_set(r, seed);
    memset(theta, 0, t->nparams * sizeof *theta);
    if (p->lift == LIFT_LINEAR)
        task_glorot(r, LIFT_W(theta), p->nh, NIN);
    if (p->lift == LIFT_MLP) {
        task_glorot(r, LIFT_W1(theta), p->hidden, NIN);
        task_glorot(r, LIFT_W2(p, theta), p->nh, p->hidden);
    }
    if (!p->first)
        task_glorot(r, OUT_W(p, theta), NCLASS, p->nh);
    gsl_rng_free(r);
    return NDE_OK;
}

static void points_param_name(const nde_task *t, size_t i, char *buf,
                              size_t size)
{
    const points *p = t->state;
    const size_t H = p->hidden, nh = p->nh;

    if (i >= p->nlift) {
        if ((i -= p->nlift) < NCLASS * nh)
            snprintf(buf, size, "out.W[%zu,%zu]", i / nh, i % nh);
        else
            snprintf(buf, size, "out.b[%zu]", i - NCLASS * nh);
    } else if (p->lift == LIFT_LINEAR) {
        if (i < nh * NIN)
            snprintf(buf, size, "lift.W[%zu,%zu]", i / NIN, i % NIN);
        else
            snprintf(buf, size, "lift.b[%zu]", i - nh * NIN);
    } else if (i < H * NIN) {
        snprintf(buf, size, "lift.W1[%zu,%zu]", i / NIN, i % NIN);
    } else if ((i -= H * NIN) < H) {
        snprintf(buf, size, "lift.b1[%zu]", i);
    } else if ((i -= H) < nh * H) {
        snprintf(buf, size, "lift.W2[%zu,%zu]", i / H, i % H);
    } else {
        snprintf(buf, size, "lift.b2[%zu]", i - nh * H);
    }
}

/* batch_size points of the stream of one permutation per epoch. */
static int points_batch(nde_task *t, const nde_task_draw *draw,
                        nde_task_batch *b)
{
    points *p = t->state;

    for (size_t r = 0; r < t->rows; r++) {
        const size_t j = task_order_pick(&p->order, draw->seed,
                                         (uint64_t)draw->iteration *
                                             t->rows + r);
        p->xb[r * NIN] = p->xtr[j * NIN];
        p->xb[r * NIN + 1] = p->xtr[j * NIN + 1];
        p->lb[r] = p->ltr[j];
    }
    b->t0 = 0.0;
    b->nsave = 1;
    b->tsave = &t_end;
    b->first_ct = 0;
    b->input = p->xb;
    return NDE_OK;
}

/* h (n x nh) of n points; the mlp lift keeps its tanh layer in p->a. */
static void lift_h(points *p, const double *theta, const double *x,
                   size_t n, double *h)
{
    const size_t nh = p->nh, H = p->hidden;

    switch (p->lift) {
    case LIFT_LINEAR:
        task_affine(LIFT_W(theta), LIFT_B(p, theta), nh, NIN, x, n, h);
        return;
    case LIFT_MLP:
        task_affine(LIFT_W1(theta), LIFT_B1(p, theta), H, NIN, x, n, p->a);
        for (size_t i = 0; i < n * H; i++)
            p->a[i] = tanh(p->a[i]);
        task_affine(LIFT_W2(p, theta), LIFT_B2(p, theta), nh, H, p->a, n, h);
        return;
    case LIFT_IDENTITY:
    case LIFT_ZEROS:
        for (size_t r = 0; r < n; r++) {
            h[r * nh] = x[r * NIN];
            h[r * nh + 1] = x[r * NIN + 1];
            for (size_t d = NIN; d < nh; d++)
                h[r * nh + d] = 0.0;
        }
    }
}

/* y0 (n x dim) of n points: [h | x] with control, h without. */
static void lift(points *p, const double *theta, const double *x, size_t n,
                 size_t D, double *y0)
{
    const size_t nh = p->nh;

    lift_h(p, theta, x, n, p->h);
    for (size_t r = 0; r < n; r++) {
        memcpy(y0 + r * D, p->h + r * nh, nh * sizeof *y0);
        if (p->control)
            memcpy(y0 + r * D + nh, x + r * NIN, NIN * sizeof *y0);
    }
}

static int points_lift(nde_task *t, const double *theta,
                       const nde_task_batch *b, double *y0)
{
    lift(t->state, theta, b->input, t->rows, t->dim, y0);
    return NDE_OK;
}

/* The lift's parameters' gradient from ybar0's h part (the controls are
 * the data: nothing to learn); identity and zeros have none. The mlp
 * lift's tanh layer is recomputed: lift_vjp may follow another lift. */
static int points_lift_vjp(nde_task *t, const double *theta,
                           const nde_task_batch *b, const double *ybar0,
                           double *thetabar)
{
    points *p = t->state;
    const size_t n = t->rows, D = t->dim, nh = p->nh, H = p->hidden;

    if (p->lift != LIFT_LINEAR && p->lift != LIFT_MLP)
        return NDE_OK;
    for (size_t r = 0; r < n; r++)
        memcpy(p->hbar + r * nh, ybar0 + r * D, nh * sizeof *p->hbar);
    if (p->lift == LIFT_LINEAR) {
        task_affine_vjp(LIFT_W(theta), nh, NIN, b->input, p->hbar, n, NULL,
                        LIFT_W(thetabar), LIFT_B(p, thetabar));
        return NDE_OK;
    }
    lift_h(p, theta, b->input, n, p->h);
    memset(p->abar, 0, n * H * sizeof *p->abar);
    task_affine_vjp(LIFT_W2(p, theta), nh, H, p->a, p->hbar, n, p->abar,
                    LIFT_W2(p, thetabar), LIFT_B2(p, thetabar));
    for (size_t i = 0; i < n * H; i++)
        p->abar[i] *= 1.0 - p->a[i] * p->a[i];
    task_affine_vjp(LIFT_W1(theta), H, NIN, b->input, p->abar, n, NULL,
                    LIFT_W1(thetabar), LIFT_B1(p, thetabar));
    return NDE_OK;
}

/* logits (n x 2) from the states y (n x dim): h's first 2, or the affine
 * map of h. */
static void readout(points *p, const double *theta, const double *y,
                    size_t n, size_t D, double *obs)
{
    const size_t nh = p->nh;

    for (size_t r = 0; r < n; r++)
        memcpy(p->first ? obs + r * NCLASS : p->h + r * nh, y + r * D,
               (p->first ? NCLASS : nh) * sizeof *obs);
    if (p->first)
        return;
    task_affine(OUT_W(p, theta), OUT_B(p, theta), NCLASS, nh, p->h, n, obs);
}

static int points_readout(nde_task *t, const double *theta,
                          const nde_task_batch *b, const double *y,
                          double *obs)
{
    (void)b;
    readout(t->state, theta, y, t->rows, t->dim, obs);
    return NDE_OK;
}

static int points_readout_vjp(nde_task *t, const double *theta,
                              const nde_task_batch *b, const double *y,
                              const double *obsbar, double *ybar,
                              double *thetabar)
{
    points *p = t->state;
    const size_t n = t->rows, D = t->dim, nh = p->nh;

    (void)b;
    if (p->first) {
        for (size_t r = 0; r < n; r++)
            for (size_t c = 0; c < NCLASS; c++)
                ybar[r * D + c] += obsbar[r * NCLASS + c];
        return NDE_OK;
    }
    for (size_t r = 0; r < n; r++)
        memcpy(p->h + r * nh, y + r * D, nh * sizeof *p->h);
    memset(p->hbar, 0, n * nh * sizeof *p->hbar);
    task_affine_vjp(OUT_W(p, theta), NCLASS, nh, p->h, obsbar, n, p->hbar,
                    OUT_W(p, thetabar), OUT_B(p, thetabar));
    for (size_t r = 0; r < n; r++)
        for (size_t d = 0; d < nh; d++)
            ybar[r * D + d] += p->hbar[r * nh + d];
    return NDE_OK;
}

static int points_loss(nde_task *t, const nde_task_batch *b,
                       const double *obs, double *value, double *obsbar)
{
    const points *p = t->state;

    (void)b;
    task_xent_loss(NCLASS, obs, p->lb, t->rows, value, obsbar);
    return NDE_OK;
}

/* The test points in chunks of batch_size rows: mean cross-entropy and
 * accuracy. */
static int points_evaluate(nde_task *t, const double *theta,
                           const nde_task_model *m, nde_task_metrics *r)
{
    points *p = t->state;
    const size_t N = p->ntest, D = t->dim;
    double sum = 0.0;
    size_t i, n;
    int rc;

    for (i = 0; i < N; i += n) {
        double *prob = p->test_prob + i * NCLASS;
        n = N - i < t->rows ? N - i : t->rows;
        lift(p, theta, p->xte + i * NIN, n, D, p->y0);
        if ((rc = m->predict(m, 0.0, p->y0, n, t_end, 1, &t_end, p->y1)) !=
            NDE_OK)
            return rc;
        readout(p, theta, p->y1, n, D, prob);
        sum += task_xent(NCLASS, prob, p->lte + i, n, prob);
    }
    r->test_loss = sum / (double)N;
    r->test_accuracy =
        (double)task_correct(NCLASS, p->test_prob, p->lte, N) / (double)N;
    return NDE_OK;
}

static uint64_t points_digest(const nde_task *t)
{
    const points *p = t->state;
    task_digest d;

    task_digest_init(&d);
    task_digest_bytes(&d, p->xtr, p->ntrain * NIN * sizeof *p->xtr);
    task_digest_bytes(&d, p->ltr, p->ntrain * sizeof *p->ltr);
    task_digest_bytes(&d, p->xte, p->ntest * NIN * sizeof *p->xte);
    task_digest_bytes(&d, p->lte, p->ntest * sizeof *p->lte);
    return task_digest_final(&d);
}

static size_t points_test_classes(const nde_task *t, const int **label,
                                  const double **prob)
{
    const points *p = t->state;

    *label = p->lte;
    *prob = p->test_prob;
    return NCLASS;
}

static const nde_task_type nde_task_points = {
    .info = NDE_TASK_INFO(
        .name = "points",
        .description = "2-D point classification (annuli: a disc inside a "
                       "ring), lift identity | zeros | linear | mlp, data "
                       "control, affine or first-components readout, "
                       "softmax",
        .keys = points_keys,
        .version = "1"),
    .create = points_create,
    .destroy = points_destroy,
    .init_params = points_init_params,
    .param_name = points_param_name,
    .batch = points_batch,
    .lift = points_lift,
    .lift_vjp = points_lift_vjp,
    .readout = points_readout,
    .readout_vjp = points_readout_vjp,
    .loss = points_loss,
    .evaluate = points_evaluate,
    .digest = points_digest,
    .test_classes = points_test_classes,
};

NDE_MODULE(&nde_task_points.info);
