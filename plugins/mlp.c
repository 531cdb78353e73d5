/*
 * mlp - a multilayer perceptron vector field: dy = W_L s(... s(W_1 u + b_1)
 * ...) + b_L, where u is y (or y^3 elementwise, and t appended as one more
 * input when `time` is on). The output layer is affine.
 *
 * Parameter layout: for each layer l = 1..L in order, W_l (out x in,
 * row-major) then b_l (out). With `time`, the first layer's input is
 * (u, t), so W_1's last column multiplies t.
 *
 * SDE form (`diffusion = softplus` or `sigmoid`): a second network of the
 * same kind gives the diagonal diffusion, g = s(W_L' ... + b_L') with s the
 * softplus or the sigmoid so that g > 0 (the softplus underflows to 0 for
 * pre-activations below about -745; the sigmoid bottoms out at 3.3e-308
 * below -708). Its input is y itself (no cube, no t),
 * its hidden widths are `g_layers` (default: the drift's), its hidden
 * activations `g_activation`, and its output width is the state dimension.
 * Its parameters follow the drift's in theta, in the same layout.
 *
 * Speed: activations are kept feature-major (width x batch), so the batch
 * is the vectorised dimension of every loop. A layer whose input or output
 * width is at most `thin_width` runs in register-blocked kernels of our
 * own (4 rows x 32 batch columns of accumulators); wider layers go through
 * OpenBLAS dgemm. tanh is our own branch-free version (libm's scalar tanh
 * alone costs more than the spiral MLP's arithmetic).
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nde/field.h>

/* ACT_SIGMOID is only the diffusion's output activation. */
enum mlp_activation { ACT_TANH, ACT_RELU, ACT_SOFTPLUS, ACT_IDENTITY,
                      ACT_SIGMOID };

static const char *const activation_names[] = {"tanh", "relu", "softplus",
                                               "identity", NULL};

typedef struct mlp_layer {
    size_t in, out;
    size_t w_off, b_off;   /* offsets of W and b in theta               */
    int act;               /* enum mlp_activation; output layer: identity */
    int blas;              /* 1: dgemm; 0: hand loops                    */
} mlp_layer;

typedef struct mlp_net {
    size_t nlayers;
    mlp_layer *layer;
    double **h;            /* h[l]: out x batch of layer l (l < L-1)    */
} mlp_net;

typedef struct mlp_state {
    mlp_net drift;
    mlp_net diffusion;     /* nlayers == 0 for an ODE                   */
    int diffusion_act;     /* ACT_SOFTPLUS or ACT_SIGMOID               */
    int time_input;
    int cube_input;
    size_t in0;            /* first layer's input width: dim (+1)        */
    double *x0;            /* in0 x batch: transformed input            */
    double *g, *gx;        /* max width x batch: output, cotangents     */
} mlp_state;

/* ---- vectorisable tanh ------------------------------------------------ */

static inline double bits_to_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline uint64_t double_to_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/*
 * 2^n and expm1(r) with a = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of
 * ln2, fdlibm's constants), for a in [-708, 40] (or NaN), branch-free:
 * e^a = 2^n (expm1(r) + 1) and expm1(a) = 2^n expm1(r) + (2^n - 1); for
 * n = 0 the latter is expm1(r) itself, so small arguments keep full
 * relative accuracy. expm1(r) is its Taylor series to r^13: the first
 * omitted term is below 1.2e-17 relative for |r| <= 0.347. Rounding to n
 * uses the 1.5 * 2^52 shift, so no float-to-int conversion happens (NaN
 * stays NaN through p); n >= -1022 keeps 2^n a normal number.
 */
static inline double exp_parts(double a, double *scale)
{
    const double inv_ln2 = 1.44269504088896338700e+00;
    const double ln2_hi = 6.93147180369123816490e-01; /* low bits zero */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double shift = 0x1.8p52;
    double kd = a * inv_ln2 + shift;
    double n = kd - shift;
    double r = (a - n * ln2_hi) - n * ln2_lo;
    uint64_t ni = double_to_bits(kd) - double_to_bits(shift);
    double p = 1.0 / 6227020800.0; /* 1/13! */
    *scale = bits_to_double((ni + 1023u) << 52);
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    return r + (r * r) * p;
}

/* expm1(a) for a in [0, 40]. */
static inline double expm1_reduced(double a)
{
    double scale, p = exp_parts(a, &scale);
    return scale * p + (scale - 1.0);
}

/* e^-x for x >= 0: x > 708 gives e^-708 (3.3e-308) instead of the
 * subnormal or zero value, so that a sigmoid stays positive. */
static inline double exp_neg(double x)
{
    double scale, p = exp_parts(x > 708.0 ? -708.0 : -x, &scale);
    return scale * p + scale;
}

/*
 * tanh(x) = sign(x) e / (e + 2), e = expm1(2|x|). Working on |x| keeps
 * e >= 0, where the quotient does not amplify e's error. |x| > 20 gives
 * +-1 (tanh(20) rounds to 1); NaN propagates through e.
 */
static inline double mlp_tanh1(double x)
{
    double t = fabs(x);
    double tc = t > 20.0 ? 20.0 : t;
    double e = expm1_reduced(tc + tc);
    double r = e / (e + 2.0);
    r = t > 20.0 ? 1.0 : r;
    return copysign(r, x);
}

/*
 * The hot functions are built for AVX-512, AVX2+FMA and baseline x86-64 and
 * picked at load time (gcc function multiversioning): the tanh runs 7x
 * faster with AVX-512 than with the baseline's SSE2 on this machine kind.
 * Their helpers are always inlined so that each copy is vectorised for its
 * own target.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MLP_CLONES                                                           \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3",        \
                                 "default")))
#else
#define MLP_CLONES
#endif
#define MLP_INLINE static inline __attribute__((always_inline))

MLP_CLONES static void mlp_tanh_array(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = mlp_tanh1(x[i]);
}

/* softplus(z) = max(z, 0) + log1p(exp(-|z|)), without overflow. */
MLP_INLINE void softplus_array(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double z = x[i];
        x[i] = (z > 0.0 ? z : 0.0) + log1p(exp(-fabs(z)));
    }
}

/* sigmoid(z) from e = exp(-|z|) <= 1, without overflow (and, through
 * exp_neg, vectorised and never 0). */
MLP_INLINE void sigmoid_array(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double z = x[i], e = exp_neg(fabs(z));
        x[i] = (z >= 0.0 ? 1.0 : e) / (1.0 + e);
    }
}

MLP_INLINE void activate(int act, double *x, size_t n)
{
    switch (act) {
    case ACT_TANH:
        mlp_tanh_array(x, n);
        break;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] > 0.0 ? x[i] : 0.0;
        break;
    case ACT_SOFTPLUS:
        softplus_array(x, n);
        break;
    case ACT_SIGMOID:
        sigmoid_array(x, n);
        break;
    default:
        break;
    }
}

/* g *= s'(z), written in terms of the activation's output h = s(z):
 * tanh' = 1 - h^2, relu' = [h > 0], softplus' = sigmoid(z) = 1 - e^-h,
 * sigmoid' = h (1 - h). */
MLP_INLINE void multiply_derivative(int act, const double *h, double *g, size_t n)
{
    switch (act) {
    case ACT_TANH:
        for (size_t i = 0; i < n; i++)
            g[i] *= 1.0 - h[i] * h[i];
        break;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            g[i] = h[i] > 0.0 ? g[i] : 0.0;
        break;
    case ACT_SOFTPLUS:
        for (size_t i = 0; i < n; i++)
            g[i] *= -expm1(-h[i]);
        break;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            g[i] *= h[i] * (1.0 - h[i]);
        break;
    default:
        break;
    }
}

/* ---- small dense kernels ---------------------------------------------- */

/*
 * Every array a layer reads or writes is feature-major: row k holds
 * feature k for the whole batch (width x batch). The batch is then the
 * contiguous dimension of every hand loop, so the loops vectorise fully
 * whatever the widths (a 4-wide layer included), and the same arrays are
 * the row-major operands of dgemm for wide layers.
 */

/*
 * Padding: the batch dimension of these arrays is ld = the batch rounded up
 * to a multiple of 8 (one AVX-512 vector), so the hand loops have no
 * scalar tail. The padding columns hold finite values computed from zeros
 * (the input and the incoming cotangent are zero-padded) and are never
 * summed over: weight and bias gradients run over the batch only.
 *
 * The kernels use gcc's generic vectors, eight doubles each, which every
 * clone lowers to its own registers (one zmm, two ymm or four xmm).
 */
typedef double v8d __attribute__((vector_size(64)));

/* Functions taking or returning v8d are always inlined, so the warning
 * that their ABI differs with and without AVX-512 does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

MLP_INLINE size_t padded(size_t batch)
{
    return (batch + 7) & ~(size_t)7;
}

MLP_INLINE v8d load8(const double *p)
{
    v8d v;
    memcpy(&v, p, sizeof v);
    return v;
}

MLP_INLINE void store8(double *p, v8d v)
{
    memcpy(p, &v, sizeof v);
}

/* The lanes' sum in a fixed order. */
MLP_INLINE double lane_sum(v8d a)
{
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/*
 * Columns [i, i + 8 NV) of four rows z_r = b_r + sum_k w_r[k ws] x_k (x_k
 * row k of x, nk rows): 4 NV accumulators stay in registers over the sum.
 * Rows may repeat (the same row written twice with the same value).
 */
MLP_INLINE void combine_tile(const double *const *w, size_t ws,
                             const double *b, const double *x, size_t nk,
                             size_t ld, double *const *z, size_t i, int NV)
{
    v8d a[4][4];
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < NV; v++)
            a[r][v] = b[r] + (v8d){0};
    for (size_t k = 0; k < nk; k++) {
        v8d xv[4];
        for (int v = 0; v < NV; v++)
            xv[v] = load8(x + k * ld + i + 8 * v);
        for (int r = 0; r < 4; r++) {
            const double c = w[r][k * ws];
            for (int v = 0; v < NV; v++)
                a[r][v] += c * xv[v];
        }
    }
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < NV; v++)
            store8(z[r] + i + 8 * v, a[r][v]);
}

/* z_o = b_o + sum_k w[o wo + k ws] x_k for o < nout, all ld columns
 * (b NULL: no bias). */
MLP_INLINE void combine_rows(const double *w, size_t wo, size_t ws,
                             const double *b, const double *x, size_t nk,
                             size_t nout, size_t ld, double *z)
{
    for (size_t o = 0; o < nout; o += 4) {
        const double *wr[4];
        double br[4], *zr[4];
        for (size_t r = 0; r < 4; r++) {
            const size_t q = o + r < nout ? o + r : nout - 1;
            wr[r] = w + q * wo;
            br[r] = b ? b[q] : 0.0;
            zr[r] = z + q * ld;
        }
        size_t i = 0;
        for (; i + 32 <= ld; i += 32)
            combine_tile(wr, ws, br, x, nk, ld, zr, i, 4);
        for (; i < ld; i += 8)
            combine_tile(wr, ws, br, x, nk, ld, zr, i, 1);
    }
}

/* Lanes j < m of all ones, the others zero: an exact select (a NaN in a
 * padding column is dropped, not multiplied by 0). */
typedef int64_t v8i __attribute__((vector_size(64)));

MLP_INLINE v8d keep_lanes(v8d a, size_t m)
{
    const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
    return (v8d)((v8i)a & (lane < (int64_t)m));
}

/* d[r][c] = g_r . x_c over the first n columns, for four rows of g and
 * four of x (16 accumulators); the last partial vector reads the padding
 * and drops its lanes. */
MLP_INLINE void gram_tile(const double *const *g, const double *const *x,
                          size_t n, double d[4][4])
{
    v8d a[4][4];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            a[r][c] = (v8d){0};
    for (size_t i = 0; i < n; i += 8) {
        v8d gv[4], xv[4];
        for (int r = 0; r < 4; r++) {
            gv[r] = load8(g[r] + i);
            xv[r] = load8(x[r] + i);
        }
        if (i + 8 <= n)
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++)
                    a[r][c] += gv[r] * xv[c];
        else
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++)
                    a[r][c] += keep_lanes(gv[r] * xv[c], n - i);
    }
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            d[r][c] = lane_sum(a[r][c]);
}

/* dw[o in + k] += g_o . x_k over the first n columns (o < out, k < in). */
MLP_INLINE void add_gram(const double *g, const double *x, size_t out,
                         size_t in, size_t n, size_t ld, double *dw)
{
    for (size_t o = 0; o < out; o += 4)
        for (size_t k = 0; k < in; k += 4) {
            const double *gr[4], *xr[4];
            double d[4][4];
            for (size_t r = 0; r < 4; r++) {
                gr[r] = g + (o + r < out ? o + r : out - 1) * ld;
                xr[r] = x + (k + r < in ? k + r : in - 1) * ld;
            }
            gram_tile(gr, xr, n, d);
            for (size_t r = 0; r < 4 && o + r < out; r++)
                for (size_t c = 0; c < 4 && k + c < in; c++)
                    dw[(o + r) * in + k + c] += d[r][c];
        }
}

MLP_INLINE double row_sum(const double *a, size_t n)
{
    v8d acc = {0};
    for (size_t i = 0; i < n; i += 8)
        acc += i + 8 <= n ? load8(a + i) : keep_lanes(load8(a + i), n - i);
    return lane_sum(acc);
}

MLP_INLINE int all_finite(const double *x, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= !(fabs(x[i]) <= 1.79769313486231570815e+308);
    return !bad;
}

/* Z = W X + b 1^T: X is in x ld, Z out x ld. */
MLP_INLINE void layer_forward(const mlp_layer *ly, const double *theta,
                              const double *x, double *z, size_t ld)
{
    const double *w = theta + ly->w_off, *b = theta + ly->b_off;
    const size_t in = ly->in, out = ly->out;
    if (!ly->blas) {
        combine_rows(w, in, 1, b, x, in, out, ld, z);
        return;
    }
    for (size_t o = 0; o < out; o++)
        for (size_t i = 0; i < ld; i++)
            z[o * ld + i] = b[o];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)ld,
                (int)in, 1.0, w, (int)in, x, (int)ld, 1.0, z, (int)ld);
}

/*
 * Given G = dL/dZ (out x ld) for Z = W X + b 1^T: accumulate dL/dW = G X^T
 * and dL/db = G 1 over the batch's columns into vtheta (if not NULL) and
 * write GX = dL/dX = W^T G (in x ld, if not NULL).
 */
MLP_INLINE void layer_backward(const mlp_layer *ly, const double *theta,
                               const double *x, const double *g, double *gx,
                               double *vtheta, size_t batch, size_t ld)
{
    const double *w = theta + ly->w_off;
    const size_t in = ly->in, out = ly->out;
    if (vtheta) {
        double *dw = vtheta + ly->w_off, *db = vtheta + ly->b_off;
        for (size_t o = 0; o < out; o++)
            db[o] += row_sum(g + o * ld, batch);
        if (ly->blas)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)out,
                        (int)in, (int)batch, 1.0, g, (int)ld, x, (int)ld, 1.0,
                        dw, (int)in);
        else
            add_gram(g, x, out, in, batch, ld, dw);
    }
    if (!gx)
        return;
    if (ly->blas)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)in, (int)ld,
                    (int)out, 1.0, w, (int)in, g, (int)ld, 0.0, gx, (int)ld);
    else
        combine_rows(w, 1, in, NULL, g, out, in, ld, gx);
}

/* z (dim x ld, zero padding) from rows (batch x dim), each value cubed
 * when asked. */
MLP_INLINE void from_rows(const double *rows, double *z, size_t dim,
                          size_t batch, size_t ld, int cube)
{
    for (size_t j = 0; j < dim; j++) {
        double *zj = z + j * ld;
        for (size_t i = 0; i < batch; i++) {
            const double v = rows[i * dim + j];
            zj[i] = cube ? v * v * v : v;
        }
        for (size_t i = batch; i < ld; i++)
            zj[i] = 0.0;
    }
}

/* rows (batch x dim) = the batch's columns of z (dim x ld). */
MLP_INLINE void to_rows(const double *z, double *rows, size_t dim,
                        size_t batch, size_t ld)
{
    for (size_t i = 0; i < batch; i++)
        for (size_t j = 0; j < dim; j++)
            rows[i * dim + j] = z[j * ld + i];
}

/* The first layer's input x0 (in0 x ld): y or y^3, and t as a last row
 * when asked. */
MLP_INLINE const double *prepare_input(mlp_state *s, size_t dim, int cube,
                                       int time, double t, const double *y,
                                       size_t batch, size_t ld)
{
    from_rows(y, s->x0, dim, batch, ld, cube);
    if (time)
        for (size_t i = 0; i < ld; i++)
            s->x0[dim * ld + i] = t;
    return s->x0;
}

/* Forward through the hidden layers; returns the last hidden output (the
 * output layer's input). */
MLP_INLINE const double *forward_hidden(const mlp_net *n, const double *x0,
                                        const double *theta, size_t ld)
{
    const double *x = x0;
    for (size_t l = 0; l + 1 < n->nlayers; l++) {
        const mlp_layer *ly = &n->layer[l];
        layer_forward(ly, theta, x, n->h[l], ld);
        activate(ly->act, n->h[l], ld * ly->out);
        x = n->h[l];
    }
    return x;
}

/* Backward through net n after its forward pass from x0, starting from
 * g = dL/dZ of the output layer; the cotangent buffers alternate starting
 * with buf[next] (g may be the other one). Returns dL/dx0, or NULL when
 * want_input is 0. */
MLP_INLINE const double *net_backward(mlp_state *s, const mlp_net *n,
                                      const double *theta, const double *x0,
                                      const double *g, int next,
                                      double *vtheta, int want_input,
                                      size_t batch, size_t ld)
{
    double *buf[2] = {s->g, s->gx};
    for (size_t l = n->nlayers; l-- > 0;) {
        const mlp_layer *ly = &n->layer[l];
        const double *x = l > 0 ? n->h[l - 1] : x0;
        double *gx = (l > 0 || want_input) ? buf[next] : NULL;
        layer_backward(ly, theta, x, g, gx, vtheta, batch, ld);
        if (l > 0)
            multiply_derivative(n->layer[l - 1].act, n->h[l - 1], gx,
                                ld * ly->in);
        g = gx;
        next ^= 1;
    }
    return g;
}

/* vy (batch x dim) += dL/dy from gx0 = dL/dx0 (in0 x ld). */
MLP_INLINE void add_input_cotangent(int cube, const double *gx0,
                                    const double *y, double *vy, size_t dim,
                                    size_t batch, size_t ld)
{
    for (size_t i = 0; i < batch; i++)
        for (size_t j = 0; j < dim; j++) {
            const double gij = gx0[j * ld + i], yij = y[i * dim + j];
            vy[i * dim + j] += cube ? 3.0 * yij * yij * gij : gij;
        }
}

MLP_CLONES static int mlp_eval(nde_field *f, double t, const double *y,
                               const double *theta, double *dy, size_t batch)
{
    mlp_state *s = f->state;
    const mlp_net *n = &s->drift;
    const size_t ld = padded(batch);
    const double *x0 = prepare_input(s, f->dim, s->cube_input, s->time_input,
                                     t, y, batch, ld);
    const double *x = forward_hidden(n, x0, theta, ld);
    layer_forward(&n->layer[n->nlayers - 1], theta, x, s->g, ld);
    to_rows(s->g, dy, f->dim, batch, ld);
    return all_finite(dy, batch * f->dim) ? NDE_OK : NDE_ERETRY;
}

MLP_CLONES static int mlp_vjp(nde_field *f, double t, const double *y,
                              const double *theta, const double *v, double *vy,
                              double *vtheta, size_t batch)
{
    mlp_state *s = f->state;
    const mlp_net *n = &s->drift;
    const size_t dim = f->dim, ld = padded(batch);
    if (!vy && !vtheta)
        return NDE_OK;
    const double *x0 = prepare_input(s, dim, s->cube_input, s->time_input, t,
                                     y, batch, ld);
    forward_hidden(n, x0, theta, ld);
    from_rows(v, s->g, dim, batch, ld, 0);
    const double *g = net_backward(s, n, theta, x0, s->g, 1, vtheta,
                                   vy != NULL, batch, ld);
    if (!vy)
        return NDE_OK;
    add_input_cotangent(s->cube_input, g, y, vy, dim, batch, ld);
    return all_finite(vy, batch * dim) ? NDE_OK : NDE_ERETRY;
}

MLP_CLONES static int mlp_diffusion(nde_field *f, double t, const double *y,
                                    const double *theta, double *g,
                                    size_t batch)
{
    mlp_state *s = f->state;
    const mlp_net *n = &s->diffusion;
    const size_t ld = padded(batch);
    (void)t;
    const double *x0 = prepare_input(s, f->dim, 0, 0, 0.0, y, batch, ld);
    const double *x = forward_hidden(n, x0, theta, ld);
    layer_forward(&n->layer[n->nlayers - 1], theta, x, s->g, ld);
    activate(s->diffusion_act, s->g, f->dim * ld);
    to_rows(s->g, g, f->dim, batch, ld);
    return all_finite(g, batch * f->dim) ? NDE_OK : NDE_ERETRY;
}

MLP_CLONES static int mlp_diffusion_vjp(nde_field *f, double t,
                                        const double *y, const double *theta,
                                        const double *v, double *vy,
                                        double *vtheta, size_t batch)
{
    mlp_state *s = f->state;
    const mlp_net *n = &s->diffusion;
    const size_t dim = f->dim, ld = padded(batch);
    (void)t;
    if (!vy && !vtheta)
        return NDE_OK;
    /* g = s(z): dL/dz = v s'(z), from the output h = s(z) held in s->gx */
    const double *x0 = prepare_input(s, dim, 0, 0, 0.0, y, batch, ld);
    const double *x = forward_hidden(n, x0, theta, ld);
    layer_forward(&n->layer[n->nlayers - 1], theta, x, s->gx, ld);
    activate(s->diffusion_act, s->gx, dim * ld);
    from_rows(v, s->g, dim, batch, ld, 0);
    multiply_derivative(s->diffusion_act, s->gx, s->g, dim * ld);
    const double *gy = net_backward(s, n, theta, x0, s->g, 1, vtheta,
                                    vy != NULL, batch, ld);
    if (!vy)
        return NDE_OK;
    add_input_cotangent(0, gy, y, vy, dim, batch, ld);
    return all_finite(vy, batch * dim) ? NDE_OK : NDE_ERETRY;
}

/* Glorot-uniform weights W ~ U(-a, a), a = sqrt(6 / (in + out)) (Glorot &
 * Bengio 2010), zero biases. Weight j of the whole vector is drawn from
 * nde_seed_derive(seed, j), so theta depends on the seed alone (and the
 * drift's weights do not depend on whether there is a diffusion). */
static void init_net(const mlp_net *n, double *theta, uint64_t seed)
{
    for (size_t l = 0; l < n->nlayers; l++) {
        const mlp_layer *ly = &n->layer[l];
        double a = sqrt(6.0 / (double)(ly->in + ly->out));
        for (size_t j = 0; j < ly->in * ly->out; j++) {
            uint64_t u = nde_seed_derive(seed, ly->w_off + j);
            double unit = (double)(u >> 11) * 0x1.0p-53; /* [0, 1) */
            theta[ly->w_off + j] = a * (2.0 * unit - 1.0);
        }
        memset(theta + ly->b_off, 0, ly->out * sizeof *theta);
    }
}

static int mlp_init_params(nde_field *f, double *theta, uint64_t seed)
{
    mlp_state *s = f->state;
    init_net(&s->drift, theta, seed);
    init_net(&s->diffusion, theta, seed);
    return NDE_OK;
}

/* Drift parameters are W1[o,i], b1[o], ...; the diffusion's gW1, gb1, ... */
static int mlp_param_name(const nde_field *f, size_t i, char *buf, size_t len)
{
    const mlp_state *s = f->state;
    const mlp_net *nets[2] = {&s->drift, &s->diffusion};
    const char *prefix[2] = {"", "g"};
    for (int k = 0; k < 2; k++)
        for (size_t l = 0; l < nets[k]->nlayers; l++) {
            const mlp_layer *ly = &nets[k]->layer[l];
            if (i < ly->w_off)
                continue;
            if (i < ly->b_off) {
                size_t j = i - ly->w_off;
                snprintf(buf, len, "%sW%zu[%zu,%zu]", prefix[k], l + 1,
                         j / ly->in, j % ly->in);
                return NDE_OK;
            }
            if (i < ly->b_off + ly->out) {
                snprintf(buf, len, "%sb%zu[%zu]", prefix[k], l + 1,
                         i - ly->b_off);
                return NDE_OK;
            }
        }
    return NDE_EINVAL;
}

static void destroy_net(mlp_net *n)
{
    if (n->h)
        for (size_t l = 0; l + 1 < n->nlayers; l++)
            free(n->h[l]);
    free(n->h);
    free(n->layer);
}

static void mlp_destroy(nde_field *f)
{
    mlp_state *s = f->state;
    if (!s)
        return;
    destroy_net(&s->drift);
    destroy_net(&s->diffusion);
    free(s->x0);
    free(s->g);
    free(s->gx);
    free(s);
    f->state = NULL;
}

static int parse_activation(const char *word)
{
    for (int a = 0; activation_names[a]; a++)
        if (strcmp(word, activation_names[a]) == 0)
            return a;
    return -1;
}

/* Read the activations of net n's hidden layers from `key`. */
static int read_activations(mlp_net *n, const char *key, nde_section *sec,
                            nde_ctx *ctx)
{
    char **words = NULL;
    size_t count = 0;
    int status = nde_get_words(sec, key, &words, &count, ctx);
    if (status)
        return status;
    size_t nhidden = n->nlayers - 1;
    if (count != 1 && count != nhidden) {
        status = nde_section_error(sec, key, ctx,
                                   "expected 1 or %zu values (one per hidden "
                                   "layer), got %zu", nhidden, count);
        goto done;
    }
    for (size_t l = 0; l < nhidden; l++) {
        const char *word = words[count == 1 ? 0 : l];
        int act = parse_activation(word);
        if (act < 0) {
            const char *guess = nde_suggest(word, activation_names);
            status = nde_section_error(
                sec, key, ctx,
                "unknown activation '%s'%s%s%s (expected tanh, relu, "
                "softplus or identity)", word, guess ? " (did you mean '" : "",
                guess ? guess : "", guess ? "'?)" : "");
            goto done;
        }
        n->layer[l].act = act;
    }
done:
    nde_strings_free(words);
    return status;
}

/* Widths must be in 1..1000000; `first` numbers them in messages. */
static int check_widths(const long *w, size_t n, size_t first,
                        const char *key, nde_section *sec, nde_ctx *ctx)
{
    for (size_t l = 0; l < n; l++)
        if (w[l] < 1 || w[l] > 1000000)
            return nde_section_error(sec, key, ctx,
                                     "width %zu is %ld; widths must be in "
                                     "1..1000000", l + first, w[l]);
    return NDE_OK;
}

/* Lay out net n: input width in0, hidden widths hidden[0..nhidden), output
 * dim; parameters from *off on. Tracks the largest width for the shared
 * scratch. Allocates the hidden outputs for batch_max rows. */
static int build_net(mlp_net *n, size_t in0, const long *hidden,
                     size_t nhidden, size_t dim, long thin_width,
                     size_t batch_max, size_t *off, size_t *maxw)
{
    n->nlayers = nhidden + 1;
    n->layer = calloc(n->nlayers, sizeof *n->layer);
    n->h = calloc(n->nlayers, sizeof *n->h);
    if (!n->layer || !n->h)
        return NDE_ENOMEM;
    for (size_t l = 0; l < n->nlayers; l++) {
        mlp_layer *ly = &n->layer[l];
        ly->in = l == 0 ? in0 : (size_t)hidden[l - 1];
        ly->out = l < nhidden ? (size_t)hidden[l] : dim;
        ly->w_off = *off;
        ly->b_off = *off + ly->in * ly->out;
        *off = ly->b_off + ly->out;
        ly->act = ACT_IDENTITY;
        ly->blas = ly->in > (size_t)thin_width && ly->out > (size_t)thin_width;
        if (ly->out > *maxw)
            *maxw = ly->out;
        if (l < nhidden &&
            !(n->h[l] = malloc(padded(batch_max) * ly->out * sizeof *n->h[l])))
            return NDE_ENOMEM;
    }
    return NDE_OK;
}

/* `diffusion`, `g_layers`, `g_activation`: the SDE form. */
static int build_diffusion(nde_field *f, mlp_state *s, nde_section *sec,
                           const long *drift_hidden, size_t ndrift_hidden,
                           long thin_width, size_t *off, size_t *maxw,
                           nde_ctx *ctx)
{
    const char *kind;
    long *widths = NULL;
    size_t nwidths = 0;
    int status;
    if ((status = nde_get_string(sec, "diffusion", &kind, ctx)))
        return status;
    if (strcmp(kind, "none") == 0) {
        const char *extra = nde_section_has(sec, "g_layers")
                                ? "g_layers"
                                : nde_section_has(sec, "g_activation")
                                      ? "g_activation"
                                      : NULL;
        if (extra)
            return nde_section_error(sec, extra, ctx,
                                     "set without a diffusion network (add "
                                     "diffusion = softplus or sigmoid)");
        return NDE_OK;
    }
    if (strcmp(kind, "softplus") == 0) {
        s->diffusion_act = ACT_SOFTPLUS;
    } else if (strcmp(kind, "sigmoid") == 0) {
        s->diffusion_act = ACT_SIGMOID;
    } else {
        static const char *const kinds[] = {"none", "softplus", "sigmoid",
                                            NULL};
        const char *guess = nde_suggest(kind, kinds);
        return nde_section_error(sec, "diffusion", ctx,
                                 "unknown diffusion '%s'%s%s%s (expected "
                                 "none, softplus or sigmoid)", kind,
                                 guess ? " (did you mean '" : "",
                                 guess ? guess : "", guess ? "'?)" : "");
    }
    if ((status = nde_get_longs(sec, "g_layers", &widths, &nwidths, ctx)))
        return status;
    const int own = nde_section_has(sec, "g_layers");
    const long *hidden = own ? widths : drift_hidden;
    const size_t nhidden = own ? nwidths : ndrift_hidden;
    if ((status = check_widths(hidden, nhidden, 1, "g_layers", sec, ctx)))
        goto done;
    if (build_net(&s->diffusion, f->dim, hidden, nhidden, f->dim, thin_width,
                  f->batch_max, off, maxw)) {
        status = nde_error(ctx, NDE_ENOMEM, "mlp: out of memory");
        goto done;
    }
    if ((status = read_activations(&s->diffusion, "g_activation", sec,
                                   ctx)))
        goto done;
    f->noise = NDE_NOISE_DIAGONAL;
done:
    free(widths);
    return status;
}

static int mlp_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    mlp_state *s = calloc(1, sizeof *s);
    long *widths = NULL;
    size_t nwidths = 0;
    int status;
    if (!sec) {
        free(s);
        return nde_error(ctx, NDE_EINVAL, "mlp: needs a config section");
    }
    if (!s)
        return nde_error(ctx, NDE_ENOMEM, "mlp: out of memory");
    f->state = s;

    status = nde_get_longs(sec, "layers", &widths, &nwidths, ctx);
    if (status)
        return status;
    if (nwidths < 2) {
        status = nde_section_error(sec, "layers", ctx,
                                   "need at least 2 widths (input, output), "
                                   "got %zu", nwidths);
        goto done;
    }
    if ((status = check_widths(widths, nwidths, 1, "layers", sec, ctx)))
        goto done;
    if (widths[nwidths - 1] != widths[0]) {
        status = nde_section_error(sec, "layers", ctx,
                                   "the output width %ld must equal the state "
                                   "dimension (the first width, %ld)",
                                   widths[nwidths - 1], widths[0]);
        goto done;
    }

    int time_input = 0;
    long thin_width = 0;
    const char *input = NULL;
    if ((status = nde_get_bool(sec, "time", &time_input, ctx)) ||
        (status = nde_get_string(sec, "input", &input, ctx)) ||
        (status = nde_get_long(sec, "thin_width", &thin_width, ctx)))
        goto done;
    if (strcmp(input, "identity") == 0) {
        s->cube_input = 0;
    } else if (strcmp(input, "cube") == 0) {
        s->cube_input = 1;
    } else {
        status = nde_section_error(sec, "input", ctx,
                                   "unknown input transform '%s' (expected "
                                   "identity or cube)", input);
        goto done;
    }
    s->time_input = time_input;

    const size_t dim = (size_t)widths[0];
    f->dim = dim;
    s->in0 = dim + (time_input ? 1 : 0);
    size_t off = 0, maxw = s->in0;
    if (build_net(&s->drift, s->in0, widths + 1, nwidths - 2, dim, thin_width,
                  f->batch_max, &off, &maxw))
        goto nomem;
    if ((status = read_activations(&s->drift, "activation", sec, ctx)) ||
        (status = build_diffusion(f, s, sec, widths + 1, nwidths - 2,
                                  thin_width, &off, &maxw, ctx)))
        goto done;

    const size_t bmax = padded(f->batch_max);
    s->x0 = malloc(bmax * s->in0 * sizeof *s->x0);
    s->g = malloc(bmax * maxw * sizeof *s->g);
    s->gx = malloc(bmax * maxw * sizeof *s->gx);
    if (!s->x0 || !s->g || !s->gx)
        goto nomem;

    f->nparams = off;
    status = NDE_OK;
    goto done;
nomem:
    status = nde_error(ctx, NDE_ENOMEM, "mlp: out of memory");
done:
    free(widths);
    return status;
}

static const nde_key mlp_keys[] = {
    {"layers", NDE_KEY_INTS, NULL,
     "layer widths from input to output, e.g. 2, 50, 2; the first and the "
     "last are the state dimension"},
    {"activation", NDE_KEY_WORDS, "tanh",
     "tanh, relu, softplus or identity: one per hidden layer, or one for all "
     "(the output layer is affine)"},
    {"time", NDE_KEY_BOOL, "false",
     "feed t to the first layer as one more input"},
    {"input", NDE_KEY_WORD, "identity",
     "identity or cube: elementwise transform of y before the first layer"},
    {"seed", NDE_KEY_INT, "1",
     "seed of the initial weights when the program is not given one; the "
     "weights come from the seed passed to init_params, which the program "
     "takes from here"},
    {"thin_width", NDE_KEY_INT, "64",
     "a layer whose input or output width is at most this runs in nde's "
     "own kernels, a wider one through BLAS dgemm (0: BLAS for every "
     "layer); the own kernels beat single-threaded OpenBLAS up to about "
     "512 wide, 2-threaded OpenBLAS from about 256"},
    {"diffusion", NDE_KEY_WORD, "none",
     "none (an ODE), softplus or sigmoid: an SDE with a diagonal diffusion "
     "g(y) from a second network whose output goes through this function so "
     "that g > 0; its parameters follow the drift's"},
    {"g_layers", NDE_KEY_INTS, "",
     "hidden widths of the diffusion network, e.g. 16, 16 (its input is y, "
     "its output the state dimension; default: the drift's hidden widths)"},
    {"g_activation", NDE_KEY_WORDS, "tanh",
     "tanh, relu, softplus or identity: the diffusion network's hidden "
     "layers, one per layer or one for all"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type mlp_type = {
    .info = {NDE_ABI_VERSION, NDE_KIND_FIELD, "mlp",
             "multilayer perceptron (tanh/relu/softplus), BLAS for wide "
             "layers; an SDE with a diffusion network", mlp_keys,
             NDE_CAP_DIFFUSION},
    .create = mlp_create,
    .destroy = mlp_destroy,
    .init_params = mlp_init_params,
    .eval = mlp_eval,
    .vjp = mlp_vjp,
    .param_name = mlp_param_name,
    .diffusion = mlp_diffusion,
    .diffusion_vjp = mlp_diffusion_vjp,
};

NDE_MODULE(&mlp_type.info);
