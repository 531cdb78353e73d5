/*
 * The lhm task ([data] source = lhm): forecasting a dosed patient cohort
 * with a latent model, the setting of the latent hybridisation model
 * (Qian, Zame, Fleuren, Elbers, van der Schaar, NeurIPS 2021; structure
 * of VariationalInference and RocheExpertDecoder in model.py of their
 * public code, Hybrid-ODE-NeurIPS-2021): an encoder over a patient's
 * observed prefix gives q(z0), the field (e.g. `hybrid`, an expert model
 * beside neural states) carries z forward under the patient's dose
 * schedule (the field's input, nde/input.h), a linear map of z gives the
 * observations; the loss is the masked squared error plus the KL.
 *
 * Data, generated in-process (seed: [train] seed, stream NDE_STREAM_NOISE).
 * Per patient, a two-compartment model (amounts a1, central, and a2,
 * peripheral; Gabrielsson & Weiner, "Pharmacokinetic and
 * Pharmacodynamic Data Analysis", ch. 2) infused at a piecewise-constant
 * rate u(t), an indirect response of a disease marker m whose production
 * is inhibited by a sigmoid Emax effect (Hill coefficient 2) of the
 * concentration c = a1 (volume 1; Dayneka, Garg, Jusko 1993, model I),
 * and an unmodelled latent rhythm w (a damped oscillator) that modulates
 * the production:
 *     a1' = u - (k10 + k12) a1 + k21 a2,      a2' = k12 a1 - k21 a2,
 *     m'  = kin (1 - emax c^2 / (ec50^2 + c^2)) (1 + w1) - kout m,
 *     w1' = om w2 - zeta w1,                  w2' = -om w1 - zeta w2,
 * rate constants log-normal around their nominal values (sd `pk_sd`),
 * a1 = a2 = 0, m at its baseline kin / kout times (1 + 0.1 N(0, 1)) and w
 * at a random phase and amplitude U[0, `latent_amp`] at t = 0. `ndoses`
 * infusions of length `dose_len` at rates U[dose_min, dose_max] start in
 * the first 70 % of (0, t1), one per equal slot. Observed: x = (c, m) +
 * `noise` N(0, 1) each, at a grid of `npoints` times uniform on (0, t1)
 * (shared, sorted), each value present with probability `p_obs` (missing
 * values and irregular times per patient). The true model is integrated
 * with classical RK4 steps of at most 0.01 that land on every dose start
 * and end and every grid time.
 *
 * Model. The encoder (gru.c) reads the prefix (grid times up to
 * `prefix`) backwards in time, at the points where the patient observed
 * anything, input (x_c, x_m masked to 0, mask_c, mask_m, u(t_j), t_next -
 * t_j); q(z0) = N(mu, exp(lv)) of the field's dim, z0 = mu + exp(lv / 2)
 * eps. The readout: x_hat = W z + b (2 x dim). As in the latent task, the
 * readout reports each row's KL as a third observation column at save 0,
 * so that the loss sees it: per patient, the sum of the squared errors at
 * its observed values plus `kl` times KL(q(z0) || N(0, I)) (summed over
 * the dims), averaged over the batch (their VariationalInference.loss).
 *
 * Evaluation: each held-out patient encoded from its prefix (z0 = mu),
 * solved with its doses, decoded; test_loss is the mean squared error of
 * the forecast at the observed values after the prefix.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "gru.h"
#include "task_util.h"

static const nde_key lhm_keys[] = {
    {"source", NDE_KEY_WORD, NULL, "lhm"},
    {"ntrain", NDE_KEY_INT, "100", "training patients"},
    {"ntest", NDE_KEY_INT, "100", "held-out patients"},
    {"npoints", NDE_KEY_INT, "40", "grid times on (0, t1), shared"},
    {"t1", NDE_KEY_DOUBLE, "20", "end of the time span"},
    {"prefix", NDE_KEY_DOUBLE, "5",
     "the encoder reads the observations up to this time; the test "
     "forecast is scored after it"},
    {"p_obs", NDE_KEY_DOUBLE, "0.5",
     "probability that a value at a grid time is observed"},
    {"noise", NDE_KEY_DOUBLE, "0.05", "observation noise (standard deviation)"},
    {"ndoses", NDE_KEY_INT, "3", "infusions per patient"},
    {"dose_len", NDE_KEY_DOUBLE, "1", "length of an infusion"},
    {"dose_min", NDE_KEY_DOUBLE, "0.5", "lowest infusion rate"},
    {"dose_max", NDE_KEY_DOUBLE, "2", "highest infusion rate"},
    {"pk_sd", NDE_KEY_DOUBLE, "0.2",
     "between-patient log-normal sd of the rate constants"},
    {"latent_amp", NDE_KEY_DOUBLE, "0.5",
     "largest amplitude of the unmodelled latent rhythm (0: none)"},
    {"hidden", NDE_KEY_INT, "16", "GRU units of the encoder"},
    {"kl", NDE_KEY_DOUBLE, "1", "weight of the KL term"},
    {NULL, 0, NULL, NULL}};

#define NX 2        /* observed channels: c, m                          */
#define IN 6        /* encoder input: x (2), mask (2), dose, time gap   */
#define OBS_DIM 3   /* readout: c_hat, m_hat, the row's KL              */
#define ID_LEN 24

/* Nominal rate constants (k10 k12 k21 kin kout emax ec50 om zeta). */
enum { K10, K12, K21, KIN, KOUT, EMAX, EC50, OM, ZETA, NK };
static const double k_nominal[NK] = {0.3, 0.2, 0.1, 1.0, 0.5,
                                     0.8, 1.0, 0.8, 0.05};

typedef struct lhm {
    size_t H, D, np, npre, ntrain, nk; /* nk: knots of a dose series     */
    double t1, prefix, kl, noise, p_obs, dose_len, dose_min, dose_max;
    double pk_sd, amp;
    long ndoses;
    gru enc;
    size_t wo, bo;         /* the observation map's offsets in theta       */
    double *grid;          /* np                                           */
    double *train_x, *test_x; /* patients x np x 2NX: values | masks       */
    double *train_kt, *train_ku, *test_kt, *test_ku; /* patients x nk      */
    size_t *choices, *pick;
    double *xbatch, *eps;  /* rows x np x 2NX; rows x D                    */
    double *y0, *ysave;    /* evaluation: rows x D, np x rows x D          */
    double *test_pred;     /* ntest x np x D                               */
    char *ids;
    nde_input *in;
} lhm;

/* ---- data ---------------------------------------------------------------- */

/* The true system's derivative at state s = (a1, a2, m, w1, w2). */
static void truth(const double *k, double u, const double *s, double *ds)
{
    const double c2 = s[0] * s[0], e2 = k[EC50] * k[EC50];
    ds[0] = u - (k[K10] + k[K12]) * s[0] + k[K21] * s[1];
    ds[1] = k[K12] * s[0] - k[K21] * s[1];
    ds[2] = k[KIN] * (1.0 - k[EMAX] * c2 / (e2 + c2)) * (1.0 + s[3]) -
            k[KOUT] * s[2];
    ds[3] = k[OM] * s[4] - k[ZETA] * s[3];
    ds[4] = -k[OM] * s[3] - k[ZETA] * s[4];
}

/* Classical RK4 from ta to tb at the constant rate u, steps <= 0.01. */
static void advance(const double *k, double u, double ta, double tb,
                    double *s)
{
    const long n = (long)ceil((tb - ta) / 0.01);
    const double h = (tb - ta) / (double)(n > 0 ? n : 1);
    double k1[5], k2[5], k3[5], k4[5], tmp[5];

    for (long i = 0; i < n; i++) {
        int j;
        truth(k, u, s, k1);
        for (j = 0; j < 5; j++)
            tmp[j] = s[j] + 0.5 * h * k1[j];
        truth(k, u, tmp, k2);
        for (j = 0; j < 5; j++)
            tmp[j] = s[j] + 0.5 * h * k2[j];
        truth(k, u, tmp, k3);
        for (j = 0; j < 5; j++)
            tmp[j] = s[j] + h * k3[j];
        truth(k, u, tmp, k4);
        for (j = 0; j < 5; j++)
            s[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
    }
}

/* The rate of the series (kt, ku; nk knots) on [t, next knot). */
static size_t knot_at(const double *kt, size_t nk, double t)
{
    size_t j = 0;
    while (j + 1 < nk && kt[j + 1] <= t)
        j++;
    return j;
}

/* One patient: its dose series (kt, ku) and observations x (np x 2NX). */
static void patient(const lhm *s, gsl_rng *r, double *kt, double *ku,
                    double *x)
{
    const double slot = 0.7 * s->t1 / (double)s->ndoses;
    double k[NK], st[5], t = 0.0, amp, ph;
    size_t j, i;

    for (j = 0; j < NK; j++)
        k[j] = k_nominal[j] *
               exp(s->pk_sd * gsl_ran_gaussian_ziggurat(r, 1.0));
    kt[0] = 0.0;
    ku[0] = 0.0;
    for (j = 0; j < (size_t)s->ndoses; j++) {
        const double start = slot * ((double)j +
                                     (1.0 - s->dose_len / slot) *
                                         gsl_rng_uniform_pos(r));
        kt[1 + 2 * j] = start;
        ku[1 + 2 * j] = s->dose_min +
                        (s->dose_max - s->dose_min) * gsl_rng_uniform(r);
        kt[2 + 2 * j] = start + s->dose_len;
        ku[2 + 2 * j] = 0.0;
    }
    amp = s->amp * gsl_rng_uniform(r);
    ph = 2.0 * M_PI * gsl_rng_uniform(r);
    st[0] = st[1] = 0.0;
    st[2] = k[KIN] / k[KOUT] * (1.0 + 0.1 * gsl_ran_gaussian_ziggurat(r, 1.0));
    st[3] = amp * cos(ph);
    st[4] = amp * sin(ph);
    for (i = 0; i < s->np; i++) {
        double *xi = x + i * 2 * NX;
        /* to grid time i through every knot on the way */
        while (t < s->grid[i]) {
            const size_t kj = knot_at(kt, s->nk, t);
            const double stop = kj + 1 < s->nk && kt[kj + 1] < s->grid[i]
                                    ? kt[kj + 1]
                                    : s->grid[i];
            advance(k, ku[kj], t, stop, st);
            t = stop;
        }
        for (j = 0; j < NX; j++) {
            const double v = st[j == 0 ? 0 : 2] +
                             s->noise * gsl_ran_gaussian_ziggurat(r, 1.0);
            const int seen = gsl_rng_uniform(r) < s->p_obs;
            xi[j] = seen ? v : 0.0;
            xi[NX + j] = seen ? 1.0 : 0.0;
        }
    }
}

/* ---- create / destroy ---------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int read_keys(lhm *s, nde_task *t, nde_section *d, nde_ctx *ctx)
{
    long ntrain, ntest, np, hidden;
    int rc;

    if ((rc = nde_get_long_min(d, "ntrain", (long)t->rows, &ntrain, ctx)) ||
        (rc = nde_get_long_min(d, "ntest", 1, &ntest, ctx)) ||
        (rc = nde_get_long_min(d, "npoints", 2, &np, ctx)) ||
        (rc = nde_get_long_min(d, "hidden", 1, &hidden, ctx)) ||
        (rc = nde_get_long_min(d, "ndoses", 1, &s->ndoses, ctx)) ||
        (rc = nde_get_double_in(d, "t1", 0, 1, HUGE_VAL, 1, &s->t1, ctx)) ||
        (rc = nde_get_double_in(d, "prefix", 0, 1, s->t1, 1, &s->prefix,
                                ctx)) ||
        (rc = nde_get_double_in(d, "p_obs", 0, 1, 1, 0, &s->p_obs, ctx)) ||
        (rc = nde_get_double_in(d, "noise", 0, 0, HUGE_VAL, 1, &s->noise,
                                ctx)) ||
        (rc = nde_get_double_in(d, "dose_len", 0, 1, HUGE_VAL, 1,
                                &s->dose_len, ctx)) ||
        (rc = nde_get_double_in(d, "dose_min", 0, 0, HUGE_VAL, 1,
                                &s->dose_min, ctx)) ||
        (rc = nde_get_double_in(d, "dose_max", s->dose_min, 0, HUGE_VAL, 1,
                                &s->dose_max, ctx)) ||
        (rc = nde_get_double_in(d, "pk_sd", 0, 0, HUGE_VAL, 1, &s->pk_sd,
                                ctx)) ||
        (rc = nde_get_double_in(d, "latent_amp", 0, 0, HUGE_VAL, 1, &s->amp,
                                ctx)) ||
        (rc = nde_get_double_in(d, "kl", 0, 0, HUGE_VAL, 1, &s->kl, ctx)))
        return rc;
    if (s->dose_len >= 0.7 * s->t1 / (double)s->ndoses)
        return nde_section_error(d, "dose_len", ctx, "%g: an infusion must "
                                 "fit in its slot of 0.7 t1 / ndoses = %g",
                                 s->dose_len, 0.7 * s->t1 / (double)s->ndoses);
    s->ntrain = (size_t)ntrain;
    t->ntest = (size_t)ntest;
    s->np = (size_t)np;
    s->H = (size_t)hidden;
    s->nk = 1 + 2 * (size_t)s->ndoses;
    return NDE_OK;
}

static int lhm_create(nde_task *t, nde_section *dsec, const nde_task_env *env,
                      nde_ctx *ctx)
{
    const size_t B = t->rows;
    gsl_rng *r = NULL;
    size_t np, nk, i, rowlen;
    lhm *s;
    int rc;

    if (!(s = t->state = calloc(1, sizeof *s)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = task_check_noise(t, dsec, env, 0)) ||
        (rc = read_keys(s, t, dsec, ctx)))
        return rc;
    s->D = t->dim;
    np = s->np;
    nk = s->nk;
    rowlen = np * 2 * NX;
    if (gru_alloc(&s->enc, IN, s->H, s->D, np))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    s->wo = gru_nparams(&s->enc);
    s->bo = s->wo + NX * s->D;
    t->nparams = s->bo + NX;
    t->input_dim = rowlen;
    t->obs_dim = OBS_DIM;
    t->max_saves = np;
    t->max_rows = B;
    if (!(s->grid = malloc(np * sizeof *s->grid)) ||
        !(s->train_x = malloc(s->ntrain * rowlen * sizeof *s->train_x)) ||
        !(s->test_x = malloc(t->ntest * rowlen * sizeof *s->test_x)) ||
        !(s->train_kt = malloc(s->ntrain * nk * sizeof *s->train_kt)) ||
        !(s->train_ku = malloc(s->ntrain * nk * sizeof *s->train_ku)) ||
        !(s->test_kt = malloc(t->ntest * nk * sizeof *s->test_kt)) ||
        !(s->test_ku = malloc(t->ntest * nk * sizeof *s->test_ku)) ||
        !(s->choices = malloc(s->ntrain * sizeof *s->choices)) ||
        !(s->pick = malloc(B * sizeof *s->pick)) ||
        !(s->xbatch = malloc(B * rowlen * sizeof *s->xbatch)) ||
        !(s->eps = malloc(B * s->D * sizeof *s->eps)) ||
        !(s->y0 = malloc(B * s->D * sizeof *s->y0)) ||
        !(s->ysave = malloc(np * B * s->D * sizeof *s->ysave)) ||
        !(s->test_pred = calloc(t->ntest * np * s->D, sizeof *s->test_pred)) ||
        !(s->ids = malloc(t->ntest * ID_LEN)) ||
        !(r = gsl_rng_alloc(gsl_rng_mt19937)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = nde_input_create(ctx, B, 1, nk, NDE_INPUT_CONSTANT, &s->in))) {
        gsl_rng_free(r);
        return rc;
    }
    gsl_rng_set(r, nde_seed_derive(env->seed, NDE_STREAM_NOISE));
    for (i = 0; i < np; i++)
        s->grid[i] = s->t1 * gsl_rng_uniform_pos(r);
    qsort(s->grid, np, sizeof *s->grid, cmp_double);
    for (s->npre = 0; s->npre < np && s->grid[s->npre] <= s->prefix;)
        s->npre++;
    for (i = 0; i < s->ntrain; i++)
        patient(s, r, s->train_kt + i * nk, s->train_ku + i * nk,
                s->train_x + i * rowlen);
    for (i = 0; i < t->ntest; i++)
        patient(s, r, s->test_kt + i * nk, s->test_ku + i * nk,
                s->test_x + i * rowlen);
    for (i = 0; i < s->ntrain; i++)
        s->choices[i] = i;
    for (i = 0; i < t->ntest; i++)
        snprintf(s->ids + i * ID_LEN, ID_LEN, "%zu", i);
    gsl_rng_free(r);
    if (s->npre == 0)
        return nde_section_error(dsec, "prefix", ctx, "%g: no grid time is "
                                 "in the prefix (the first is %g)",
                                 s->prefix, s->grid[0]);
    return NDE_OK;
}

static void lhm_destroy(nde_task *t)
{
    lhm *s = t->state;

    if (!s)
        return;
    gru_free(&s->enc);
    nde_input_destroy(s->in);
    free(s->grid);
    free(s->train_x);
    free(s->test_x);
    free(s->train_kt);
    free(s->train_ku);
    free(s->test_kt);
    free(s->test_ku);
    free(s->choices);
    free(s->pick);
    free(s->xbatch);
    free(s->eps);
    free(s->y0);
    free(s->ysave);
    free(s->test_pred);
    free(s->ids);
    free(s);
}

/* ---- parameters ---------------------------------------------------------- */

static int lhm_init_params(nde_task *t, double *theta, uint64_t seed)
{
    const lhm *s = t->state;
    gsl_rng *r;

    if (!(r = gsl_rng_alloc(gsl_rng_mt19937)))
        return nde_error(t->ctx, NDE_ENOMEM, "out of memory");
    gsl_rng_set(r, seed);
    memset(theta, 0, t->nparams * sizeof *theta);
    gru_init(&s->enc, r, theta);
    task_glorot(r, theta + s->wo, NX, s->D);
    gsl_rng_free(r);
    return NDE_OK;
}

static void lhm_param_name(const nde_task *t, size_t i, char *buf,
                           size_t size)
{
    const lhm *s = t->state;
    int k;

    if (i >= s->bo) {
        snprintf(buf, size, "obs.b[%zu]", i - s->bo);
        return;
    }
    if (i >= s->wo) {
        i -= s->wo;
        snprintf(buf, size, "obs.w[%zu,%zu]", i / s->D, i % s->D);
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

/* q(z0) of one patient (x: np x 2NX; its dose series kt, ku) from its
 * prefix, backwards in time over the points where it observed anything. */
static void encode(lhm *s, const double *theta, const double *x,
                   const double *kt, const double *ku)
{
    double next = s->prefix;
    size_t j, st = 0;

    for (j = s->npre; j-- > 0;) {
        const double *xj = x + j * 2 * NX;
        double *in = s->enc.xin + st * IN;
        if (xj[NX] == 0.0 && xj[NX + 1] == 0.0)
            continue;
        memcpy(in, xj, 2 * NX * sizeof *in);
        in[4] = ku[knot_at(kt, s->nk, s->grid[j])];
        in[5] = next - s->grid[j];
        next = s->grid[j];
        st++;
    }
    gru_encode(&s->enc, theta, st);
}

/* Rows of the input: patient p's dose series as row r. */
static int set_doses(lhm *s, size_t r, const double *kt, const double *ku)
{
    return nde_input_set_row(s->in, r, s->nk, kt, ku);
}

/* ---- the ops ------------------------------------------------------------- */

static int lhm_batch(nde_task *t, const nde_task_draw *draw,
                     nde_task_batch *b)
{
    lhm *s = t->state;
    const size_t B = t->rows, n = t->input_dim;
    int rc;

    gsl_ran_choose(draw->rng, s->pick, B, s->choices, s->ntrain,
                   sizeof *s->pick);
    for (size_t r = 0; r < B; r++) {
        const size_t p = s->pick[r];
        memcpy(s->xbatch + r * n, s->train_x + p * n, n * sizeof *s->xbatch);
        if ((rc = set_doses(s, r, s->train_kt + p * s->nk,
                            s->train_ku + p * s->nk)))
            return rc;
    }
    if ((rc = nde_input_use_rows(s->in, B)))
        return rc;
    for (size_t r = 0; r < B * s->D; r++)
        s->eps[r] = gsl_ran_gaussian_ziggurat(draw->rng, 1.0);
    b->t0 = 0.0;
    b->nsave = s->np;
    b->tsave = s->grid;
    b->first_ct = 0;
    b->input = s->xbatch;
    return NDE_OK;
}

/* The batch row r's patient: its dose series. */
static void batch_doses(const lhm *s, size_t r, const double **kt,
                        const double **ku)
{
    *kt = s->train_kt + s->pick[r] * s->nk;
    *ku = s->train_ku + s->pick[r] * s->nk;
}

static int lhm_lift(nde_task *t, const double *theta,
                    const nde_task_batch *b, double *y0)
{
    lhm *s = t->state;
    const size_t D = s->D;
    const double *kt, *ku;

    for (size_t r = 0; r < t->rows; r++) {
        batch_doses(s, r, &kt, &ku);
        encode(s, theta, b->input + r * t->input_dim, kt, ku);
        gru_sample(&s->enc, s->eps + r * D, y0 + r * D);
    }
    return NDE_OK;
}

static int lhm_lift_vjp(nde_task *t, const double *theta,
                        const nde_task_batch *b, const double *ybar0,
                        double *thetabar)
{
    lhm *s = t->state;
    const size_t D = s->D;
    const double *kt, *ku;

    for (size_t r = 0; r < t->rows; r++) {
        batch_doses(s, r, &kt, &ku);
        encode(s, theta, b->input + r * t->input_dim, kt, ku);
        gru_sample_vjp(&s->enc, theta, s->eps + r * D, ybar0 + r * D,
                       thetabar);
    }
    return NDE_OK;
}

/* x_hat = W z + b of n states (n x D) into columns 0, 1 of obs. */
static void decode(const lhm *s, const double *theta, const double *y,
                   size_t n, double *obs)
{
    const double *W = theta + s->wo, *bias = theta + s->bo;

    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < NX; c++) {
            double v = bias[c];
            for (size_t d = 0; d < s->D; d++)
                v += W[c * s->D + d] * y[i * s->D + d];
            obs[i * OBS_DIM + c] = v;
        }
}

static int lhm_readout(nde_task *t, const double *theta,
                       const nde_task_batch *b, const double *y, double *obs)
{
    lhm *s = t->state;
    const size_t B = t->rows, n = b->nsave * B;
    const double *kt, *ku;

    decode(s, theta, y, n, obs);
    for (size_t i = 0; i < n; i++)
        obs[i * OBS_DIM + NX] = 0.0;
    for (size_t r = 0; r < B; r++) {
        batch_doses(s, r, &kt, &ku);
        encode(s, theta, b->input + r * t->input_dim, kt, ku);
        obs[r * OBS_DIM + NX] = gru_kl(&s->enc);
    }
    return NDE_OK;
}

static int lhm_readout_vjp(nde_task *t, const double *theta,
                           const nde_task_batch *b, const double *y,
                           const double *obsbar, double *ybar,
                           double *thetabar)
{
    lhm *s = t->state;
    const size_t B = t->rows, D = s->D, n = b->nsave * B;
    const double *W = theta + s->wo, *kt, *ku;
    double *Wbar = thetabar + s->wo, *bbar = thetabar + s->bo;

    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < NX; c++) {
            const double g = obsbar[i * OBS_DIM + c];
            bbar[c] += g;
            for (size_t d = 0; d < D; d++) {
                Wbar[c * D + d] += g * y[i * D + d];
                ybar[i * D + d] += g * W[c * D + d];
            }
        }
    for (size_t r = 0; r < B; r++) {
        batch_doses(s, r, &kt, &ku);
        encode(s, theta, b->input + r * t->input_dim, kt, ku);
        gru_kl_vjp(&s->enc, theta, obsbar[r * OBS_DIM + NX], thetabar);
    }
    return NDE_OK;
}

/* Per patient, the squared errors at its observed values plus kl x its
 * KL, averaged over the batch. */
static int lhm_loss(nde_task *t, const nde_task_batch *b, const double *obs,
                    double *value, double *obsbar)
{
    const lhm *s = t->state;
    const size_t B = t->rows;
    double sum = 0.0;

    memset(obsbar, 0, b->nsave * B * OBS_DIM * sizeof *obsbar);
    for (size_t r = 0; r < B; r++) {
        const double *x = b->input + r * t->input_dim;
        for (size_t k = 0; k < s->np; k++)
            for (size_t c = 0; c < NX; c++) {
                const size_t i = (k * B + r) * OBS_DIM + c;
                double e;
                if (x[k * 2 * NX + NX + c] == 0.0)
                    continue;
                e = obs[i] - x[k * 2 * NX + c];
                sum += e * e;
                obsbar[i] = 2.0 * e / (double)B;
            }
        sum += s->kl * obs[r * OBS_DIM + NX];
        obsbar[r * OBS_DIM + NX] = s->kl / (double)B;
    }
    *value = sum / (double)B;
    return NDE_OK;
}

/* The held-out patients in chunks of batch_size rows, each from its
 * q(z0)'s mean; the forecast's squared error after the prefix. */
static int lhm_evaluate(nde_task *t, const double *theta,
                        const nde_task_model *m, nde_task_metrics *res)
{
    lhm *s = t->state;
    const size_t np = s->np, D = s->D, N = t->ntest, rl = t->input_dim;
    double sum = 0.0, count = 0.0, obs[OBS_DIM];
    size_t i, n, r, k, c;
    int rc;

    for (i = 0; i < N; i += n) {
        n = N - i < t->rows ? N - i : t->rows;
        for (r = 0; r < n; r++) {
            const double *kt = s->test_kt + (i + r) * s->nk;
            const double *ku = s->test_ku + (i + r) * s->nk;
            encode(s, theta, s->test_x + (i + r) * rl, kt, ku);
            memcpy(s->y0 + r * D, s->enc.mu, D * sizeof *s->y0);
            if ((rc = set_doses(s, r, kt, ku)))
                return rc;
        }
        if ((rc = nde_input_use_rows(s->in, n)) ||
            (rc = m->predict(m, 0.0, s->y0, n, s->grid[np - 1], np, s->grid,
                             s->ysave)) != NDE_OK)
            return rc;
        for (r = 0; r < n; r++) {
            const double *x = s->test_x + (i + r) * rl;
            for (k = 0; k < np; k++) {
                const double *z = s->ysave + (k * n + r) * D;
                memcpy(s->test_pred + ((i + r) * np + k) * D, z,
                       D * sizeof *z);
                if (k < s->npre)
                    continue;
                decode(s, theta, z, 1, obs);
                for (c = 0; c < NX; c++) {
                    double e;
                    if (x[k * 2 * NX + NX + c] == 0.0)
                        continue;
                    e = obs[c] - x[k * 2 * NX + c];
                    sum += e * e;
                    count += 1.0;
                }
            }
        }
    }
    res->test_loss = count > 0 ? sum / count : NAN;
    return NDE_OK;
}

static uint64_t lhm_digest(const nde_task *t)
{
    const lhm *s = t->state;
    const size_t rl = t->input_dim;
    task_digest d;

    task_digest_init(&d);
    task_digest_bytes(&d, s->grid, s->np * sizeof *s->grid);
    task_digest_bytes(&d, s->train_x, s->ntrain * rl * sizeof *s->train_x);
    task_digest_bytes(&d, s->test_x, t->ntest * rl * sizeof *s->test_x);
    task_digest_bytes(&d, s->train_kt, s->ntrain * s->nk * sizeof(double));
    task_digest_bytes(&d, s->train_ku, s->ntrain * s->nk * sizeof(double));
    task_digest_bytes(&d, s->test_kt, t->ntest * s->nk * sizeof(double));
    task_digest_bytes(&d, s->test_ku, t->ntest * s->nk * sizeof(double));
    return task_digest_final(&d);
}

static size_t lhm_test_series(const nde_task *t, size_t i, const char **id,
                              const double **time, const double **pred)
{
    const lhm *s = t->state;

    *id = s->ids + i * ID_LEN;
    *time = s->grid;
    *pred = s->test_pred + i * s->np * s->D;
    return s->np;
}

static nde_input *lhm_input(nde_task *t)
{
    lhm *s = t->state;
    return s->in;
}

static const nde_task_type nde_task_lhm = {
    .info = NDE_TASK_INFO(
        .name = "lhm",
        .description = "dosed patient cohort (two-compartment PK, Emax "
                       "effect on a marker, an unmodelled latent rhythm): "
                       "GRU encoder of the prefix, forecast (Qian et al. "
                       "2021)",
        .keys = lhm_keys,
        .version = "1"),
    .create = lhm_create,
    .destroy = lhm_destroy,
    .init_params = lhm_init_params,
    .param_name = lhm_param_name,
    .batch = lhm_batch,
    .lift = lhm_lift,
    .lift_vjp = lhm_lift_vjp,
    .readout = lhm_readout,
    .readout_vjp = lhm_readout_vjp,
    .loss = lhm_loss,
    .evaluate = lhm_evaluate,
    .digest = lhm_digest,
    .test_series = lhm_test_series,
    .input = lhm_input,
};

NDE_MODULE(&nde_task_lhm.info);
