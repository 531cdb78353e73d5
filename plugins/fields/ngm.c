/*
 * ngm - a vector field with one small network per output state, each of
 * whose first layers reads every state: dy_i = g_i(y), with
 * g_i(y) = w_L s(... s(W1 y + b1) ...) + b_L, a scalar. This is the
 * structure of neural graphical modelling (Bellot, Branson and van der
 * Schaar, ICLR 2022, "Neural graphical modelling in continuous-time";
 * their public code bellot/ngm, models/NMC.py): state j drives state i
 * exactly when some weight of block i's first layer in column j is not
 * zero, so a group lasso on those columns (regularizers/group_lasso.c)
 * reads the causal graph off the trained weights (Aliee, Theis and
 * Kilbertus 2021).
 *
 * Parameter layout: block i = 0..D-1 after block i-1, each block its
 * layers l = 1..L in order, W_l (out x in, row-major) then b_l (out); layer
 * 1 has in = D, layer L out = 1. Names: "b<i>.W<l>[r,c]" and
 * "b<i>.b<l>[r]". The first-layer column group (i, j) is every
 * "b<i>.W1[h,j]": the naming convention group_lasso and `nde graph` read.
 *
 * Interventions: `clamp` lists states whose derivative is held at 0, so
 * a state starting at c stays at c - the do-operator do(y_k = c) of
 * Aliee et al. 2021, with c given as the state's initial value (e.g.
 * `nde predict CKPT -s field.clamp=3 -s problem.y0=...`). The parameters
 * are the same, so a trained checkpoint predicts under intervention.
 *
 * Plain loops, one row and one block at a time: this field is for small
 * systems whose graph is wanted, not for speed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nde/field.h>

enum { ACT_TANH, ACT_RELU, ACT_SOFTPLUS, ACT_IDENTITY };
static const char *const act_names[] = {"tanh", "relu", "softplus",
                                        "identity", NULL};

typedef struct ngm_state {
    size_t nlayers;     /* L: hidden layers + the scalar output layer */
    size_t *width;      /* L + 1 widths: D, hidden..., 1              */
    size_t *off;        /* L: offset of W_l within a block            */
    size_t block;       /* parameters per block                       */
    size_t maxw;        /* widest layer                               */
    int act;
    unsigned char *clamped; /* dim: 1 for a state held constant      */
    double *z, *a;      /* pre- and post-activations, L x maxw        */
    double *g, *g2;     /* cotangent or tangent of one layer, maxw    */
} ngm_state;

static double act_f(int act, double z)
{
    switch (act) {
    case ACT_TANH:
        return tanh(z);
    case ACT_RELU:
        return z > 0 ? z : 0.0;
    case ACT_SOFTPLUS:
        return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
    default:
        return z;
    }
}

/* s'(z), given z and a = s(z). */
static double act_d(int act, double z, double a)
{
    switch (act) {
    case ACT_TANH:
        return 1.0 - a * a;
    case ACT_RELU:
        return z > 0 ? 1.0 : 0.0;
    case ACT_SOFTPLUS:
        return 1.0 / (1.0 + exp(-z));
    default:
        return 1.0;
    }
}

/* Block i's forward pass on the row y: z and a of every layer; returns
 * the scalar output. th is the block's parameters. */
static double forward(const ngm_state *s, const double *th, const double *y)
{
    const double *in = y;
    for (size_t l = 0; l < s->nlayers; l++) {
        const size_t ni = s->width[l], no = s->width[l + 1];
        const double *w = th + s->off[l], *b = w + ni * no;
        double *z = s->z + l * s->maxw, *a = s->a + l * s->maxw;
        const int last = l + 1 == s->nlayers;
        for (size_t r = 0; r < no; r++) {
            double sum = b[r];
            for (size_t c = 0; c < ni; c++)
                sum += w[r * ni + c] * in[c];
            z[r] = sum;
            a[r] = last ? sum : act_f(s->act, sum);
        }
        in = a;
    }
    return s->a[(s->nlayers - 1) * s->maxw];
}

static int ngm_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    const ngm_state *s = f->state;
    const size_t d = f->dim;
    int bad = 0;
    (void)t;
    for (size_t n = 0; n < batch; n++)
        for (size_t i = 0; i < d; i++) {
            double v = s->clamped[i] ? 0.0
                                     : forward(s, theta + i * s->block,
                                               y + n * d);
            dy[n * d + i] = v;
            bad |= !isfinite(v);
        }
    return bad ? NDE_ERETRY : NDE_OK;
}

/* Back through block i from the cotangent v on its output: into vy (the
 * row's, may be NULL) and vth (the block's, may be NULL). Needs forward's
 * z and a of the same row. */
static void backward(const ngm_state *s, const double *th, const double *y,
                     double v, double *vy, double *vth)
{
    double *g = s->g, *gin = s->g2;
    g[0] = v;
    for (size_t l = s->nlayers; l-- > 0;) {
        const size_t ni = s->width[l], no = s->width[l + 1];
        const double *w = th + s->off[l];
        const double *in = l ? s->a + (l - 1) * s->maxw : y;
        if (vth)
            for (size_t r = 0; r < no; r++) {
                for (size_t c = 0; c < ni; c++)
                    vth[s->off[l] + r * ni + c] += g[r] * in[c];
                vth[s->off[l] + ni * no + r] += g[r];
            }
        if (l == 0 && !vy)
            break;
        for (size_t c = 0; c < ni; c++) {
            double sum = 0.0;
            for (size_t r = 0; r < no; r++)
                sum += g[r] * w[r * ni + c];
            gin[c] = sum;
        }
        if (l == 0) {
            for (size_t c = 0; c < ni; c++)
                vy[c] += gin[c];
            break;
        }
        /* through the activation of layer l - 1 (the input of layer l) */
        const double *z = s->z + (l - 1) * s->maxw;
        const double *a = s->a + (l - 1) * s->maxw;
        for (size_t c = 0; c < ni; c++)
            g[c] = gin[c] * act_d(s->act, z[c], a[c]);
    }
}

static int ngm_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *vy,
                   double *vtheta, size_t batch)
{
    const ngm_state *s = f->state;
    const size_t d = f->dim;
    (void)t;
    if (!vy && !vtheta)
        return NDE_OK;
    for (size_t n = 0; n < batch; n++)
        for (size_t i = 0; i < d; i++) {
            const double *th = theta + i * s->block;
            if (s->clamped[i])
                continue;
            forward(s, th, y + n * d);
            backward(s, th, y + n * d, v[n * d + i], vy ? vy + n * d : NULL,
                     vtheta ? vtheta + i * s->block : NULL);
        }
    return NDE_OK;
}

/* jv_i = (dg_i/dy) v: the tangent v carried forward through block i. */
static int ngm_jvp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *jv,
                   size_t batch)
{
    const ngm_state *s = f->state;
    const size_t d = f->dim;
    (void)t;
    for (size_t n = 0; n < batch; n++)
        for (size_t i = 0; i < d; i++) {
            const double *th = theta + i * s->block;
            const double *tin = v + n * d;
            if (s->clamped[i]) {
                jv[n * d + i] = 0.0;
                continue;
            }
            forward(s, th, y + n * d);
            for (size_t l = 0; l < s->nlayers; l++) {
                const size_t ni = s->width[l], no = s->width[l + 1];
                const double *w = th + s->off[l];
                const double *z = s->z + l * s->maxw;
                const double *a = s->a + l * s->maxw;
                double *tout = (l % 2) ? s->g2 : s->g;
                const int last = l + 1 == s->nlayers;
                for (size_t r = 0; r < no; r++) {
                    double sum = 0.0;
                    for (size_t c = 0; c < ni; c++)
                        sum += w[r * ni + c] * tin[c];
                    tout[r] = last ? sum : sum * act_d(s->act, z[r], a[r]);
                }
                tin = tout;
            }
            jv[n * d + i] = tin[0];
        }
    return NDE_OK;
}

/* Glorot-uniform weights (Glorot & Bengio 2010), zero biases; weight k of
 * the whole vector drawn from nde_seed_derive(seed, k), as mlp does. */
static int ngm_init_params(nde_field *f, double *theta, uint64_t seed)
{
    const ngm_state *s = f->state;
    for (size_t i = 0; i < f->dim; i++)
        for (size_t l = 0; l < s->nlayers; l++) {
            const size_t ni = s->width[l], no = s->width[l + 1];
            const size_t w0 = i * s->block + s->off[l];
            const double lim = sqrt(6.0 / (double)(ni + no));
            for (size_t k = 0; k < ni * no; k++) {
                uint64_t u = nde_seed_derive(seed, w0 + k);
                double unit = (double)(u >> 11) * 0x1.0p-53; /* [0, 1) */
                theta[w0 + k] = lim * (2.0 * unit - 1.0);
            }
            memset(theta + w0 + ni * no, 0, no * sizeof *theta);
        }
    return NDE_OK;
}

static int ngm_param_name(const nde_field *f, size_t k, char *buf,
                          size_t len)
{
    const ngm_state *s = f->state;
    if (k >= f->nparams)
        return NDE_EINVAL;
    const size_t i = k / s->block, j = k % s->block;
    for (size_t l = s->nlayers; l-- > 0;) {
        const size_t ni = s->width[l], no = s->width[l + 1];
        if (j < s->off[l])
            continue;
        const size_t e = j - s->off[l];
        if (e < ni * no)
            snprintf(buf, len, "b%zu.W%zu[%zu,%zu]", i, l + 1, e / ni,
                     e % ni);
        else
            snprintf(buf, len, "b%zu.b%zu[%zu]", i, l + 1, e - ni * no);
        return NDE_OK;
    }
    return NDE_EINVAL;
}

static void ngm_destroy(nde_field *f)
{
    ngm_state *s = f->state;
    if (!s)
        return;
    free(s->width);
    free(s->off);
    free(s->clamped);
    free(s->z);
    free(s->a);
    free(s->g);
    free(s->g2);
    free(s);
    f->state = NULL;
}

static int ngm_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    ngm_state *s;
    long dim, *hidden = NULL, *clamp = NULL;
    size_t nhidden = 0, nclamp = 0;
    const char *act;
    int status;

    if (!sec)
        return nde_error(ctx, NDE_EINVAL, "ngm: needs a config section");
    if (!(s = calloc(1, sizeof *s)))
        return nde_error(ctx, NDE_ENOMEM, "ngm: out of memory");
    f->state = s;
    if ((status = nde_get_long(sec, "dim", &dim, ctx)) ||
        (status = nde_get_longs(sec, "hidden", &hidden, &nhidden, ctx)) ||
        (status = nde_get_string(sec, "activation", &act, ctx)) ||
        (status = nde_get_longs(sec, "clamp", &clamp, &nclamp, ctx)))
        goto done;
    if (dim < 1 || dim > 10000) {
        status = nde_section_error(sec, "dim", ctx,
                                   "is %ld; expected 1 to 10000 states", dim);
        goto done;
    }
    for (size_t l = 0; l < nhidden; l++)
        if (hidden[l] < 1 || hidden[l] > 100000) {
            status = nde_section_error(sec, "hidden", ctx,
                                       "width %zu is %ld; widths must be in "
                                       "1..100000", l + 1, hidden[l]);
            goto done;
        }
    s->act = -1;
    for (int k = 0; act_names[k]; k++)
        if (strcmp(act, act_names[k]) == 0)
            s->act = k;
    if (s->act < 0) {
        const char *guess = nde_suggest(act, act_names);
        status = nde_section_error(sec, "activation", ctx,
                                   "unknown activation '%s'%s%s%s (expected "
                                   "tanh, relu, softplus or identity)", act,
                                   guess ? " (did you mean '" : "",
                                   guess ? guess : "", guess ? "'?)" : "");
        goto done;
    }
    if (!(s->clamped = calloc((size_t)dim, 1)))
        goto nomem;
    for (size_t k = 0; k < nclamp; k++) {
        if (clamp[k] < 0 || clamp[k] >= dim) {
            status = nde_section_error(sec, "clamp", ctx,
                                       "state %ld is not one of 0..%ld",
                                       clamp[k], dim - 1);
            goto done;
        }
        s->clamped[clamp[k]] = 1;
    }
    s->nlayers = nhidden + 1;
    s->width = calloc(s->nlayers + 1, sizeof *s->width);
    s->off = calloc(s->nlayers, sizeof *s->off);
    if (!s->width || !s->off)
        goto nomem;
    s->width[0] = (size_t)dim;
    for (size_t l = 0; l < nhidden; l++)
        s->width[l + 1] = (size_t)hidden[l];
    s->width[s->nlayers] = 1;
    s->maxw = (size_t)dim;
    for (size_t l = 0; l < s->nlayers; l++) {
        s->off[l] = s->block;
        s->block += (s->width[l] + 1) * s->width[l + 1];
        if (s->width[l + 1] > s->maxw)
            s->maxw = s->width[l + 1];
    }
    s->z = calloc(s->nlayers * s->maxw, sizeof *s->z);
    s->a = calloc(s->nlayers * s->maxw, sizeof *s->a);
    s->g = calloc(s->maxw, sizeof *s->g);
    s->g2 = calloc(s->maxw, sizeof *s->g2);
    if (!s->z || !s->a || !s->g || !s->g2)
        goto nomem;
    f->dim = (size_t)dim;
    f->nparams = f->dim * s->block;
    goto done;
nomem:
    status = nde_error(ctx, NDE_ENOMEM, "ngm: out of memory");
done:
    free(hidden);
    free(clamp);
    return status;
}

static const nde_key ngm_keys[] = {
    {"dim", NDE_KEY_INT, NULL, "the state dimension D (one block per state)"},
    {"hidden", NDE_KEY_INTS, "10",
     "hidden widths of each block, e.g. 10 or 16, 8 (the first hidden "
     "layer reads all D states; the output is one value)"},
    {"activation", NDE_KEY_WORD, "tanh",
     "tanh, relu, softplus or identity: every hidden layer's (the output "
     "layer is affine)"},
    {"seed", NDE_KEY_INT, "1",
     "seed of the initial weights when the program is not given one"},
    {"clamp", NDE_KEY_INTS, "",
     "states (0-based) whose derivative is held at 0: an intervention "
     "do(y_k = its initial value), e.g. at prediction"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type ngm_type = {
    .info = NDE_FIELD_INFO(
        .name = "ngm",
        .description = "one MLP per output state reading all states (neural "
                       "graphical model); first-layer column b<i>.W1[*,j] "
                       "is the edge j -> i",
        .keys = ngm_keys,
        .version = "1"),
    .create = ngm_create,
    .destroy = ngm_destroy,
    .init_params = ngm_init_params,
    .eval = ngm_eval,
    .vjp = ngm_vjp,
    .param_name = ngm_param_name,
    .jvp = ngm_jvp,
};

NDE_MODULE(&ngm_type.info);
