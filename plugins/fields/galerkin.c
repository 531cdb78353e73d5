/*
 * galerkin - a depth-variant multilayer perceptron: every weight and bias
 * is a function of t, expanded in a basis of K functions of t with
 * learned coefficients, w(t) = sum_k theta_k phi_k(t) (Massaroli, Poli,
 * Park, Yamashita, Asama, "Dissecting Neural ODEs", NeurIPS 2020, Sec. 3,
 * Galerkin neural ODEs; the public torchdyn models/galerkin.py expands in
 * cos and sin of 2 pi n t, and in powers t^n). Bases (`modes` = M):
 *     fourier: 1, cos(2 pi n t / period), sin(2 pi n t / period),
 *              n = 1 .. M - 1  (K = 2 M - 1)
 *     poly:    t^n, n = 0 .. M - 1  (K = M)
 * and, not a Galerkin expansion but built the same way, FFJORD's
 * concatsquash layers (Grathwohl et al., ICLR 2019; the public
 * rtqichen/ffjord lib/layers/diffeq_layers/basic.py ConcatSquashLinear):
 *     squash:  layer l's output (W x + b) * s(t) + e t, per output unit
 *              s = sigmoid(g t + c), i.e. W(t) = diag(s) W and
 *              b(t) = s b + e t (`modes` and `period` refused)
 * The net is mlp's: layers d, h1, ..., d, hidden activation tanh, relu or
 * identity, the output layer affine. With M = 1 it is an autonomous mlp.
 *
 * theta, per layer l in order: the coefficients of W_l (K x out x in, k
 * slowest), then of b_l (K x out); for squash W_l (out x in), b_l, g_l,
 * c_l, e_l (out each). An evaluation builds the weights at t
 * once, in the parameter layout of the mlp field, and runs an autonomous
 * mlp of those weights (its kernels, its kept forward passes); a VJP runs
 * the mlp's, then spreads the weights' gradient over the coefficients:
 * dL/dtheta_k = phi_k(t) dL/dw. The JVP and its VJP (a cnf's trace) are
 * the mlp's at the weights of t, the latter spread the same way.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include <nde/field.h>

typedef struct gal_state {
    size_t nlayers, *width;  /* widths[0..nlayers]                     */
    size_t *off;             /* layer l's coefficients start in theta   */
    int basis;               /* enum gal_basis                          */
    size_t K;                /* basis functions (squash: 1)             */
    double period;
    size_t nweights;         /* sum over layers of out x in + out       */
    double *phi;             /* K: the basis at the last t              */
    double t;                /* squash: the last t                      */
    double *gate;            /* squash: s of every layer's outputs at t */
    double *w;               /* nweights: the weights at t              */
    double *wbar;            /* nweights: their gradient                */
    nde_config *net_cfg;     /* the net's own config                    */
    nde_field *net;          /* the autonomous mlp the weights run in   */
} gal_state;

enum gal_basis { BASIS_FOURIER, BASIS_POLY, BASIS_SQUASH };

/* Layer l's coefficients: K copies of its out x in + out weights, or for
 * squash its weights and 3 out of the gate and the bias in t. */
static size_t layer_coefs(const gal_state *s, size_t l)
{
    const size_t in = s->width[l], o = s->width[l + 1];
    return s->basis == BASIS_SQUASH ? in * o + 4 * o : s->K * (in * o + o);
}

static void basis_at(const gal_state *s, double t, double *phi)
{
    if (s->basis == BASIS_POLY) {
        double p = 1.0;
        for (size_t k = 0; k < s->K; k++, p *= t)
            phi[k] = p;
        return;
    }
    phi[0] = 1.0;
    for (size_t n = 1; 2 * n < s->K + 1; n++) {
        const double a = 2.0 * M_PI * (double)n * t / s->period;
        phi[2 * n - 1] = cos(a);
        phi[2 * n] = sin(a);
    }
}

/* w[i] = sum_k phi_k c[k len + i] for i < len: len weights from their K
 * coefficient blocks. */
static void expand(const double *phi, size_t K, const double *c, size_t len,
                   double *w)
{
    for (size_t i = 0; i < len; i++) {
        double v = 0.0;
        for (size_t k = 0; k < K; k++)
            v += phi[k] * c[k * len + i];
        w[i] = v;
    }
}

/* Its VJP: c[k len + i] += phi_k wbar[i]. */
static void spread(const double *phi, size_t K, const double *wbar,
                   size_t len, double *c)
{
    for (size_t i = 0; i < len; i++)
        for (size_t k = 0; k < K; k++)
            c[k * len + i] += phi[k] * wbar[i];
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* squash: W(t) = diag(s) W, b(t) = s b + e t with s = sigmoid(g t + c),
 * layer by layer; s kept for the VJP. */
static void squash_weights_at(gal_state *s, double t, const double *theta)
{
    double *w = s->w, *gate = s->gate;
    s->t = t;
    for (size_t l = 0; l < s->nlayers; l++) {
        const size_t in = s->width[l], o = s->width[l + 1];
        const double *W = theta + s->off[l], *b = W + in * o;
        const double *g = b + o, *c = g + o, *e = c + o;
        for (size_t i = 0; i < o; i++) {
            gate[i] = sigmoid(g[i] * t + c[i]);
            for (size_t j = 0; j < in; j++)
                w[i * in + j] = gate[i] * W[i * in + j];
            w[in * o + i] = gate[i] * b[i] + e[i] * t;
        }
        w += in * o + o;
        gate += o;
    }
}

/* Its VJP: the weights' gradient wbar into vtheta. */
static void squash_spread(const gal_state *s, const double *theta,
                          double *vtheta)
{
    const double *wbar = s->wbar, *gate = s->gate;
    for (size_t l = 0; l < s->nlayers; l++) {
        const size_t in = s->width[l], o = s->width[l + 1];
        const double *W = theta + s->off[l], *b = W + in * o;
        const double *Wbar = wbar, *bbar = wbar + in * o;
        double *vW = vtheta + s->off[l], *vb = vW + in * o;
        double *vg = vb + o, *vc = vg + o, *ve = vc + o;
        for (size_t i = 0; i < o; i++) {
            double ds = b[i] * bbar[i];
            for (size_t j = 0; j < in; j++) {
                vW[i * in + j] += gate[i] * Wbar[i * in + j];
                ds += W[i * in + j] * Wbar[i * in + j];
            }
            vb[i] += gate[i] * bbar[i];
            ds *= gate[i] * (1.0 - gate[i]); /* through the sigmoid */
            vg[i] += ds * s->t;
            vc[i] += ds;
            ve[i] += bbar[i] * s->t;
        }
        wbar += in * o + o;
        gate += o;
    }
}

/* The weights at t, layer by layer: W_l (its K blocks first in theta),
 * then b_l. */
static void weights_at(gal_state *s, double t, const double *theta)
{
    double *w = s->w;
    if (s->basis == BASIS_SQUASH) {
        squash_weights_at(s, t, theta);
        return;
    }
    basis_at(s, t, s->phi);
    for (size_t l = 0; l < s->nlayers; l++) {
        const size_t nw = s->width[l] * s->width[l + 1], o = s->width[l + 1];
        const double *c = theta + s->off[l];
        expand(s->phi, s->K, c, nw, w);
        expand(s->phi, s->K, c + s->K * nw, o, w + nw);
        w += nw + o;
    }
}

static int gal_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    gal_state *s = f->state;
    weights_at(s, t, theta);
    return nde_field_eval(s->net, t, y, s->w, dy, batch);
}

/* The weights' gradient wbar spread over the coefficients, into vtheta
 * (theta: the coefficients the weights were built from). */
static void spread_all(const gal_state *s, const double *theta,
                       double *vtheta)
{
    if (s->basis == BASIS_SQUASH) {
        squash_spread(s, theta, vtheta);
        return;
    }
    for (size_t l = 0, at = 0; l < s->nlayers; l++) {
        const size_t nw = s->width[l] * s->width[l + 1];
        const size_t o = s->width[l + 1];
        double *c = vtheta + s->off[l];
        spread(s->phi, s->K, s->wbar + at, nw, c);
        spread(s->phi, s->K, s->wbar + at + nw, o, c + s->K * nw);
        at += nw + o;
    }
}

static int gal_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *vy,
                   double *vtheta, size_t batch)
{
    gal_state *s = f->state;
    int rc;

    weights_at(s, t, theta);
    memset(s->wbar, 0, s->nweights * sizeof *s->wbar);
    if ((rc = nde_field_vjp(s->net, t, y, s->w, v, vy,
                            vtheta ? s->wbar : NULL, batch)) != NDE_OK)
        return rc;
    if (vtheta)
        spread_all(s, theta, vtheta);
    return NDE_OK;
}

static int gal_jvp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *jv,
                   size_t batch)
{
    gal_state *s = f->state;
    weights_at(s, t, theta);
    return nde_field_jvp(s->net, t, y, s->w, v, jv, batch);
}

/* The net's second derivative at the weights of t; its weight part spread
 * like the VJP's (the chain rule through the weights, as there). */
static int gal_jvp_vjp(nde_field *f, double t, const double *y,
                       const double *theta, const double *v, const double *w,
                       double *vy, double *vtheta, size_t batch)
{
    gal_state *s = f->state;
    int rc;

    weights_at(s, t, theta);
    memset(s->wbar, 0, s->nweights * sizeof *s->wbar);
    if ((rc = nde_field_jvp_vjp(s->net, t, y, s->w, v, w, vy,
                                vtheta ? s->wbar : NULL, batch)) != NDE_OK)
        return rc;
    if (vtheta)
        spread_all(s, theta, vtheta);
    return NDE_OK;
}

/* The constant mode's coefficients Glorot-uniform (as mlp's init), the
 * others 0: the field starts autonomous. squash: W Glorot-uniform, b 0,
 * g, c and e uniform in [-1, 1] (torch's nn.Linear(1, out) default, which
 * FFJORD's layers keep). */
static int gal_init_params(nde_field *f, double *theta, uint64_t seed)
{
    gal_state *s = f->state;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);

    if (!r)
        return nde_error(f->ctx, NDE_ENOMEM, "galerkin: out of memory");
    gsl_rng_set(r, (unsigned long)seed);
    memset(theta, 0, f->nparams * sizeof *theta);
    for (size_t l = 0; l < s->nlayers; l++) {
        const size_t in = s->width[l], o = s->width[l + 1];
        const double a = sqrt(6.0 / (double)(in + o));
        double *g = theta + s->off[l] + in * o + o;
        for (size_t i = 0; i < in * o; i++)
            theta[s->off[l] + i] = gsl_ran_flat(r, -a, a);
        for (size_t i = 0; s->basis == BASIS_SQUASH && i < 3 * o; i++)
            g[i] = gsl_ran_flat(r, -1.0, 1.0);
    }
    gsl_rng_free(r);
    return NDE_OK;
}

/* squash: W<l>[r,c] and b<l>[r] as mlp's, then gate_t, gate_b, bias_t. */
static void squash_param_name(const gal_state *s, size_t l, size_t j,
                              char *buf, size_t len)
{
    static const char *const part[] = {"b", "gate_t", "gate_b", "bias_t"};
    const size_t in = s->width[l], o = s->width[l + 1];
    if (j < in * o)
        snprintf(buf, len, "W%zu[%zu,%zu]", l + 1, j / in, j % in);
    else
        snprintf(buf, len, "%s%zu[%zu]", part[(j - in * o) / o], l + 1,
                 (j - in * o) % o);
}

static int gal_param_name(const nde_field *f, size_t i, char *buf,
                          size_t len)
{
    const gal_state *s = f->state;
    for (size_t l = s->nlayers; l-- > 0;)
        if (i >= s->off[l]) {
            const size_t nw = s->width[l] * s->width[l + 1];
            const size_t j = i - s->off[l];
            if (s->basis == BASIS_SQUASH)
                squash_param_name(s, l, j, buf, len);
            else if (j < s->K * nw)
                snprintf(buf, len, "W%zu[%zu,%zu,%zu]", l + 1, j / nw,
                         j % nw / s->width[l], j % s->width[l]);
            else
                snprintf(buf, len, "b%zu[%zu,%zu]", l + 1,
                         (j - s->K * nw) / s->width[l + 1],
                         (j - s->K * nw) % s->width[l + 1]);
            return NDE_OK;
        }
    return NDE_EINVAL;
}

static void gal_destroy(nde_field *f)
{
    gal_state *s = f->state;
    if (!s)
        return;
    nde_field_destroy(s->net);
    nde_config_destroy(s->net_cfg);
    free(s->width);
    free(s->off);
    free(s->phi);
    free(s->w);
    free(s->wbar);
    free(s->gate);
    free(s);
    f->state = NULL;
}

static int read_shape(gal_state *s, nde_section *sec, nde_ctx *ctx)
{
    const char *act, *basis;
    long *layers = NULL, modes;
    size_t n = 0;
    int rc;

    if ((rc = nde_get_longs(sec, "layers", &layers, &n, ctx)) ||
        (rc = nde_get_string(sec, "activation", &act, ctx)) ||
        (rc = nde_get_string(sec, "basis", &basis, ctx)) ||
        (rc = nde_get_long(sec, "modes", &modes, ctx)) ||
        (rc = nde_get_double_in(sec, "period", 0.0, 1, HUGE_VAL, 0,
                                &s->period, ctx)))
        goto done;
    rc = NDE_ECONFIG;
    if (n < 2 || layers[0] != layers[n - 1]) {
        nde_section_error(sec, "layers", ctx, "expected at least two widths, "
                          "the first equal to the last (the state "
                          "dimension)");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (layers[i] < 1 || layers[i] > 4096) {
            nde_section_error(sec, "layers", ctx, "width %ld: expected 1 to "
                              "4096", layers[i]);
            goto done;
        }
    if (modes < 1 || modes > 64) {
        nde_section_error(sec, "modes", ctx, "is %ld; expected 1 to 64",
                          modes);
        goto done;
    }
    if (strcmp(act, "tanh") != 0 && strcmp(act, "relu") != 0 &&
        strcmp(act, "identity") != 0) {
        nde_section_error(sec, "activation", ctx, "'%s': expected tanh, "
                          "relu or identity", act);
        goto done;
    }
    if (strcmp(basis, "fourier") == 0) {
        s->basis = BASIS_FOURIER;
        s->K = 2 * (size_t)modes - 1;
    } else if (strcmp(basis, "poly") == 0) {
        s->basis = BASIS_POLY;
        s->K = (size_t)modes;
    } else if (strcmp(basis, "squash") == 0) {
        const char *key = nde_section_has(sec, "modes")    ? "modes"
                          : nde_section_has(sec, "period") ? "period"
                                                           : NULL;
        if (key) {
            nde_section_error(sec, key, ctx, "is a key of the fourier and "
                              "poly bases; basis = squash has none");
            goto done;
        }
        s->basis = BASIS_SQUASH;
        s->K = 1;
    } else {
        nde_section_error(sec, "basis", ctx, "'%s': expected fourier, poly "
                          "or squash", basis);
        goto done;
    }
    s->nlayers = n - 1;
    if (!(s->width = malloc(n * sizeof *s->width))) {
        rc = nde_error(ctx, NDE_ENOMEM, "galerkin: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        s->width[i] = (size_t)layers[i];
    rc = NDE_OK;
done:
    free(layers);
    return rc;
}

/* The autonomous mlp of the same layers and activation, on a config of
 * its own. */
static int create_net(nde_field *f, gal_state *s, nde_section *sec,
                      nde_ctx *ctx)
{
    char text[4096];
    const char *act;
    int n, rc;

    nde_get_string(sec, "activation", &act, ctx);
    n = snprintf(text, sizeof text, "[field]\nplugin = mlp\nactivation = "
                 "%s\nlayers = %zu", act, s->width[0]);
    for (size_t l = 1; l <= s->nlayers && n > 0 && (size_t)n < sizeof text;
         l++)
        n += snprintf(text + n, sizeof text - (size_t)n, ", %zu",
                      s->width[l]);
    if (n < 0 || (size_t)n + 2 > sizeof text)
        return nde_section_error(sec, "layers", ctx, "too many layers");
    strcat(text, "\n");
    if (!(s->net_cfg = nde_config_create()))
        return nde_error(ctx, NDE_ENOMEM, "galerkin: out of memory");
    if ((rc = nde_config_load_string(s->net_cfg, "galerkin's net", text,
                                     ctx)) != NDE_OK)
        return rc;
    return nde_field_create(ctx, s->net_cfg, "field", f->batch_max, &s->net);
}

static int gal_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    gal_state *s = calloc(1, sizeof *s);
    size_t P = 0, nout = 0;
    int rc;

    if (!(f->state = s))
        return nde_error(ctx, NDE_ENOMEM, "galerkin: out of memory");
    if (!sec)
        return nde_error(ctx, NDE_ECONFIG, "galerkin: needs a [field] "
                         "section with layers");
    if ((rc = read_shape(s, sec, ctx)) != NDE_OK)
        return rc;
    if (!(s->off = malloc(s->nlayers * sizeof *s->off)))
        return nde_error(ctx, NDE_ENOMEM, "galerkin: out of memory");
    for (size_t l = 0; l < s->nlayers; l++) {
        s->off[l] = P;
        P += layer_coefs(s, l);
        s->nweights += s->width[l] * s->width[l + 1] + s->width[l + 1];
        nout += s->width[l + 1];
    }
    s->phi = malloc(s->K * sizeof *s->phi);
    s->w = malloc(s->nweights * sizeof *s->w);
    s->wbar = malloc(s->nweights * sizeof *s->wbar);
    s->gate = malloc(nout * sizeof *s->gate);
    if (!s->phi || !s->w || !s->wbar || !s->gate)
        return nde_error(ctx, NDE_ENOMEM, "galerkin: out of memory");
    if ((rc = create_net(f, s, sec, ctx)) != NDE_OK)
        return rc;
    if (s->net->nparams != s->nweights)
        return nde_error(ctx, NDE_EFATAL, "galerkin: its net has %zu "
                         "weights, not %zu", s->net->nparams, s->nweights);
    f->dim = s->width[0];
    f->nparams = P;
    return NDE_OK;
}

static const nde_key gal_keys[] = {
    {"layers", NDE_KEY_INTS, NULL,
     "layer widths from input to output, e.g. 2, 32, 2; the first and the "
     "last are the state dimension"},
    {"activation", NDE_KEY_WORD, "tanh",
     "tanh, relu or identity: the hidden layers' (the output is affine)"},
    {"basis", NDE_KEY_WORD, "fourier",
     "fourier (1, cos and sin of 2 pi n t / period) or poly (t^n): the "
     "functions of t each weight is expanded in; or squash, FFJORD's "
     "concatsquash layers: each layer's output (W x + b) sigmoid(g t + c) "
     "+ e t"},
    {"modes", NDE_KEY_INT, "2",
     "M: harmonics n = 0 .. M - 1 (fourier: 2 M - 1 functions) or powers "
     "(poly: M); 1 is an autonomous mlp"},
    {"period", NDE_KEY_DOUBLE, "1", "fourier: the period of the harmonics"},
    {"seed", NDE_KEY_INT, "1",
     "seed of the initial weights when the program is not given one"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type gal_type = {
    .info = NDE_FIELD_INFO(
        .name = "galerkin",
        .description = "depth-variant mlp: weights expanded in a basis of t "
                       "(Fourier or powers), Dissecting Neural ODEs' "
                       "Galerkin neural ODE",
        .keys = gal_keys,
        .version = "2"),
    .create = gal_create,
    .destroy = gal_destroy,
    .init_params = gal_init_params,
    .eval = gal_eval,
    .vjp = gal_vjp,
    .param_name = gal_param_name,
    .jvp = gal_jvp,
    .jvp_vjp = gal_jvp_vjp,
};

NDE_MODULE(&gal_type.info);
