/*
 * mlp_kernels.c - the mlp plugin's numerics: activations (our own
 * vectorisable tanh), the dense kernels and the field operations. Built
 * once per instruction set, with MLP_ISA = 4 (x86-64-v4: AVX-512), 3
 * (x86-64-v3: AVX2 + FMA) or 0 (the target's baseline) and the matching
 * -march; mlp.c picks the best one the CPU runs (or the `kernels` key's).
 * One source per set rather than gcc's target_clones because the tiles
 * must follow the register width: generic vectors wider than the
 * registers are lowered through memory (AVX2 ran 4x slower than the old
 * row-major loops that way).
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mlp.h"

#if MLP_ISA == 4
#define MLP_LANES 8
#define MLP_KERNELS mlp_kernels_v4
#define MLP_KERNELS_NAME "avx512"
#elif MLP_ISA == 3
#define MLP_LANES 4
#define MLP_KERNELS mlp_kernels_v3
#define MLP_KERNELS_NAME "avx2"
#elif MLP_ISA == 0
#define MLP_LANES 2
#define MLP_KERNELS mlp_kernels_base
#define MLP_KERNELS_NAME "generic"
#else
#error "MLP_ISA must be 4, 3 or 0"
#endif

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
 * n and expm1(r) with a = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of
 * ln2, fdlibm's constants), for a in [-746, 40] (or NaN), branch-free:
 * e^a = 2^n (expm1(r) + 1) and expm1(a) = 2^n expm1(r) + (2^n - 1); for
 * n = 0 the latter is expm1(r) itself, so small arguments keep full
 * relative accuracy. expm1(r) is its Taylor series to r^13: the first
 * omitted term is below 1.2e-17 relative for |r| <= 0.347. Rounding to n
 * uses the 1.5 * 2^52 shift, so no float-to-int conversion happens (NaN
 * stays NaN through p); exp_parts gives 2^n too, a normal number for
 * n >= -1022.
 */
static inline double exp_reduce(double a, int64_t *n_out)
{
    const double inv_ln2 = 1.44269504088896338700e+00;
    const double ln2_hi = 6.93147180369123816490e-01; /* low bits zero */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double shift = 0x1.8p52;
    double kd = a * inv_ln2 + shift;
    double n = kd - shift;
    double r = (a - n * ln2_hi) - n * ln2_lo;
    double p = 1.0 / 6227020800.0; /* 1/13! */
    *n_out = (int64_t)(double_to_bits(kd) - double_to_bits(shift));
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

/* 2^n for n in [-1022, 1023]. */
static inline double pow2(int64_t n)
{
    return bits_to_double((uint64_t)(n + 1023) << 52);
}

static inline double exp_parts(double a, double *scale)
{
    int64_t n;
    double p = exp_reduce(a, &n);
    *scale = pow2(n);
    return p;
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

/* e^-x for x >= 0 with the subnormal results too: 2^n (n >= -1077) as
 * two normal factors, so the last product rounds once; x > 746: 0. */
static inline double exp_neg_full(double x)
{
    int64_t n;
    double p = exp_reduce(x > 746.0 ? -746.0 : -x, &n);
    double s1 = pow2(n >> 1), s2 = pow2(n - (n >> 1));
    return (s1 * p + s1) * s2;
}

/*
 * log1p(e) for e in [0, 1]: 1 + e = (1 + s) / (1 - s) with
 * s = e / (2 + e) in [0, 1/3], so log1p(e) = 2 atanh(s) =
 * 2 (s + s^3/3 + s^5/5 + ...), summed to s^33/33: the first omitted
 * term is below 1.2e-18 of the sum.
 */
static inline double log1p_unit(double e)
{
    double sv = e / (2.0 + e), s2 = sv * sv, q = 1.0 / 33.0;
    for (int j = 15; j >= 1; j--)
        q = q * s2 + 1.0 / (2 * j + 1);
    return 2.0 * sv + (2.0 * sv) * (s2 * q);
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

#define MLP_INLINE static inline __attribute__((always_inline))

static void mlp_tanh_array(double *x, size_t n)
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

/* The same from nde's own exp and log1p (vectorised; `softplus = vector`).
 * Max error 2.52 ulps (at z = -2.04), measured by bench_activations (a
 * dense sweep against long double); glibc's log1p(exp()) has 1.49 but is
 * scalar: 7x the time per element with the AVX-512 kernels. */
MLP_INLINE void softplus_vector(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double z = x[i];
        x[i] = (z > 0.0 ? z : 0.0) + log1p_unit(exp_neg_full(fabs(z)));
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

/* sigmoid(z) from e = exp(-|z|) in [0, 1] (subnormal, then 0, below
 * z = -708): never exp of a positive argument, so no inf / inf. */
MLP_INLINE double sigmoid_full(double z)
{
    const double e = exp_neg_full(fabs(z));
    return (z >= 0.0 ? 1.0 : e) / (1.0 + e);
}

/* LipSwish: x = 0.909 z sigmoid(z) in place, and sg = sigmoid(z) when sg
 * is not NULL (the derivative needs it; mlp_activate's and the forward
 * pass's values are the same bits). Out of line and not in activate, so
 * that the functions activate is inlined into compile much as before
 * lipswish: inlined, it cost a softplus net's forward pass 8% more
 * instructions (callgrind: forward_block, libm softplus 3-16-16-3, batch
 * 20, avx2). */
static __attribute__((noinline)) void lipswish_array(double *x, double *sg,
                                                     size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const double z = x[i], s = sigmoid_full(z);
        if (sg)
            sg[i] = s;
        x[i] = MLP_LIPSWISH * z * s;
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
    case ACT_SOFTPLUS_VECTOR:
        softplus_vector(x, n);
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
 * sigmoid' = h (1 - h); and of sg = sigmoid(z) (lipswish alone, else
 * unread): lipswish' = 0.909 (sg + z sg (1 - sg)) = 0.909 sg + h (1 - sg). */
MLP_INLINE void multiply_derivative(int act, const double *h,
                                    const double *sg, double *g, size_t n)
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
    case ACT_SOFTPLUS_VECTOR:
        for (size_t i = 0; i < n; i++) {
            double scale, hc = h[i] > 708.0 ? 708.0 : h[i];
            double p = exp_parts(-hc, &scale);
            g[i] *= -(scale * p + (scale - 1.0));
        }
        break;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            g[i] *= h[i] * (1.0 - h[i]);
        break;
    case ACT_LIPSWISH:
        for (size_t i = 0; i < n; i++)
            g[i] *= MLP_LIPSWISH * sg[i] + h[i] * (1.0 - sg[i]);
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
 * Padding: the batch dimension of these arrays is ld = mlp_ld(batch),
 * a multiple of every vector width, so the loops have no scalar tail
 * (except for narrow batches, below). The
 * padding columns hold finite values computed from zeros (the input and
 * the incoming cotangent are zero-padded) and are never summed over:
 * weight and bias gradients drop them.
 *
 * vd is gcc's generic vector of MLP_LANES doubles, the width of this
 * build's registers (8: AVX-512, 4: AVX2, 2: SSE2); the tiles below keep
 * 16 accumulators with 32 registers and 8 with 16.
 */
typedef double vd __attribute__((vector_size(8 * MLP_LANES)));
typedef int64_t vi __attribute__((vector_size(8 * MLP_LANES)));

enum {
    LANES = MLP_LANES,
    MLP_NARROW = 4,      /* batches below are not padded (batch_ld)     */
    TILE_VECS = MLP_LANES == 8 ? 4 : 2, /* vectors per row in combine   */
    GRAM_ROWS = MLP_LANES == 8 ? 4 : 2, /* gram tile: GRAM_ROWS x 4    */
    GRAM_ACC = 4 * GRAM_ROWS            /* its accumulators, any shape  */
};

/* Functions taking or returning vd are always inlined, so the warning
 * that their ABI differs between instruction sets does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

MLP_INLINE vd load_vd(const double *p)
{
    vd v;
    memcpy(&v, p, sizeof v);
    return v;
}

MLP_INLINE void store_vd(double *p, vd v)
{
    memcpy(p, &v, sizeof v);
}

/* The lanes' sum in a fixed order (pairwise: lane j with lane j + w). */
MLP_INLINE double lane_sum(vd a)
{
    for (int w = LANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++)
            a[j] += a[j + w];
    return a[0];
}

/* Lanes j < m kept, the others zero: an exact select (a NaN in a padding
 * column is dropped, not multiplied by 0). */
MLP_INLINE vd keep_lanes(vd a, size_t m)
{
    static const int64_t index[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    vi lane;
    memcpy(&lane, index, sizeof lane);
    return (vd)((vi)a & (lane < (int64_t)m));
}

/*
 * Columns [i, i + LANES nv) of four rows z_r = b_r + sum_k w_r[k ws] x_k
 * (x_k row k of x, nk rows, ld apart): 4 nv accumulators stay in
 * registers over the sum. Rows may repeat (the same row written twice
 * with the same value).
 */
MLP_INLINE void combine_tile(const double *const *w, size_t ws,
                             const double *b, const double *x, size_t nk,
                             size_t ld, double *const *z, size_t i, int nv)
{
    vd a[4][TILE_VECS];
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < nv; v++)
            a[r][v] = b[r] + (vd){0};
    for (size_t k = 0; k < nk; k++) {
        vd xv[TILE_VECS];
        for (int v = 0; v < nv; v++)
            xv[v] = load_vd(x + k * ld + i + LANES * v);
        for (int r = 0; r < 4; r++) {
            const double c = w[r][k * ws];
            for (int v = 0; v < nv; v++)
                a[r][v] += c * xv[v];
        }
    }
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < nv; v++)
            store_vd(z[r] + i + LANES * v, a[r][v]);
}

/* z_o = b_o + sum_k w[o wo + k ws] x_k for o < nout, ncols columns (a
 * multiple of LANES) of x (rows ld apart) into z (rows zld apart); b NULL:
 * no bias. */
MLP_INLINE void combine_cols(const double *w, size_t wo, size_t ws,
                             const double *b, const double *x, size_t nk,
                             size_t nout, size_t ld, size_t ncols,
                             double *z, size_t zld)
{
    for (size_t o = 0; o < nout; o += 4) {
        const double *wr[4];
        double br[4], *zr[4];
        for (size_t r = 0; r < 4; r++) {
            const size_t q = o + r < nout ? o + r : nout - 1;
            wr[r] = w + q * wo;
            br[r] = b ? b[q] : 0.0;
            zr[r] = z + q * zld;
        }
        size_t i = 0;
        for (; i + LANES * TILE_VECS <= ncols; i += LANES * TILE_VECS)
            combine_tile(wr, ws, br, x, nk, ld, zr, i, TILE_VECS);
        for (; i < ncols; i += LANES)
            combine_tile(wr, ws, br, x, nk, ld, zr, i, 1);
    }
}

/* combine_cols on all ld columns, z as wide as x. */
MLP_INLINE void combine_rows(const double *w, size_t wo, size_t ws,
                             const double *b, const double *x, size_t nk,
                             size_t nout, size_t ld, double *z)
{
    combine_cols(w, wo, ws, b, x, nk, nout, ld, ld, z, ld);
}

/*
 * The columns of a call split between threads are stored block by block:
 * the block of columns [c0, c0 + ld) of an array `width` wide is an array
 * of its own, width x ld, from width * s0 on, so a thread writes no part
 * of a row that another thread writes. (With the rows shared, each
 * thread's piece of a row next to the other's, 2 threads ran the
 * Fashion-MNIST field slower than 1 up to batch 256: a thread's prefetches
 * reach into the other's lines. A loop over 64 such rows ran at 0.3-0.6
 * the speed of 1 thread on 2 threads, 1.7-1.9 times it with blocks.) An
 * unsplit call is one block, the whole array. rows: the batch's rows
 * among the block's columns, the rest being padding.
 */
typedef struct mlp_block {
    size_t c0, ld, rows;
    size_t s0;          /* its first column in the kernels' own arrays
                           (passes, cotangents, scratch): c0 and the
                           gaps before it (mlp.h: MLP_BLOCK_GAP) */
} mlp_block;

/* d[r C + c] = g_gi[r] . x_xi[c] over the batch's columns, for R rows
 * of g (gw wide) and C of x (xw wide), R C = GRAM_ACC accumulators,
 * block after block in the order of the columns; the last partial vector
 * reads the padding and drops its lanes. R and C are constants where it
 * is inlined. */
MLP_INLINE void gram_tile(const double *g, size_t gw, const size_t *gi,
                          int R, const double *x, size_t xw,
                          const size_t *xi, int C, const mlp_block *b,
                          size_t nb, double d[GRAM_ACC])
{
    vd a[GRAM_ACC];
    for (int q = 0; q < R * C; q++)
        a[q] = (vd){0};
    for (size_t k = 0; k < nb; k++) {
        const double *gr[GRAM_ACC], *xr[GRAM_ACC];
        const size_t ld = b[k].ld, n = b[k].rows;
        for (int r = 0; r < R; r++)
            gr[r] = g + gw * b[k].s0 + gi[r] * ld;
        for (int c = 0; c < C; c++)
            xr[c] = x + xw * b[k].s0 + xi[c] * ld;
        for (size_t i = 0; i < n; i += LANES) {
            vd gv[GRAM_ACC], xv[GRAM_ACC];
            for (int r = 0; r < R; r++)
                gv[r] = load_vd(gr[r] + i);
            for (int c = 0; c < C; c++)
                xv[c] = load_vd(xr[c] + i);
            if (i + LANES <= n)
                for (int r = 0; r < R; r++)
                    for (int c = 0; c < C; c++)
                        a[r * C + c] += gv[r] * xv[c];
            else
                for (int r = 0; r < R; r++)
                    for (int c = 0; c < C; c++)
                        a[r * C + c] += keep_lanes(gv[r] * xv[c], n - i);
        }
    }
    for (int q = 0; q < R * C; q++)
        d[q] = lane_sum(a[q]);
}

/* add_gram with tiles of R rows of g by C of x. */
MLP_INLINE void add_gram_tiles(const double *g, size_t out, size_t o0,
                               size_t o1, const double *x, size_t in,
                               const mlp_block *b, size_t nb, double *dw,
                               int R, int C)
{
    for (size_t o = o0; o < o1; o += (size_t)R)
        for (size_t k = 0; k < in; k += (size_t)C) {
            size_t gi[GRAM_ACC], xi[GRAM_ACC];
            double d[GRAM_ACC];
            for (int r = 0; r < R; r++)
                gi[r] = o + (size_t)r < o1 ? o + (size_t)r : o1 - 1;
            for (int c = 0; c < C; c++)
                xi[c] = k + (size_t)c < in ? k + (size_t)c : in - 1;
            gram_tile(g, out, gi, R, x, in, xi, C, b, nb, d);
            for (int r = 0; r < R && o + (size_t)r < o1; r++)
                for (int c = 0; c < C && k + (size_t)c < in; c++)
                    dw[(o + (size_t)r) * in + k + (size_t)c] += d[r * C + c];
        }
}

/* dw[o in + k] += g_o . x_k over the batch's columns, for o in [o0, o1)
 * of g (out wide) and k < in. Every entry is the same sum whatever the
 * tile; a tile two wide on a side of at most 2 (the spiral net's 2 inputs
 * and 2 outputs) computes no entry twice, as a square one would. */
MLP_INLINE void add_gram(const double *g, size_t out, size_t o0, size_t o1,
                         const double *x, size_t in, const mlp_block *b,
                         size_t nb, double *dw)
{
    if (in <= 2)
        add_gram_tiles(g, out, o0, o1, x, in, b, nb, dw, GRAM_ACC / 2, 2);
    else if (o1 - o0 <= 2)
        add_gram_tiles(g, out, o0, o1, x, in, b, nb, dw, 2, GRAM_ACC / 2);
    else
        add_gram_tiles(g, out, o0, o1, x, in, b, nb, dw, GRAM_ROWS, 4);
}

/* The sum over the batch's columns of row o of a (width wide): padded
 * past the batch unless the call is one narrow block. */
MLP_INLINE double row_sum(const double *a, size_t width, size_t o,
                          const mlp_block *b, size_t nb)
{
    if (nb == 1 && b[0].rows < MLP_NARROW) {
        double sum = 0.0;
        for (size_t i = 0; i < b[0].rows; i++)
            sum += a[o * b[0].ld + i];
        return sum;
    }
    vd acc = {0};
    for (size_t k = 0; k < nb; k++) {
        const double *r = a + width * b[k].s0 + o * b[k].ld;
        const size_t n = b[k].rows;
        for (size_t i = 0; i < n; i += LANES)
            acc += i + LANES <= n ? load_vd(r + i)
                                  : keep_lanes(load_vd(r + i), n - i);
    }
    return lane_sum(acc);
}

/*
 * Narrow batches (batch < MLP_NARROW) are not padded: ld = batch. Padded
 * to 8 columns, one row cost 8 rows' activations (the spiral net's
 * forward + VJP took 2.8 times as long). The loops below take any ld; the
 * callers instantiate ld = 1 separately, where every stride is 1 and the
 * axpys vectorise (for the forward pass too, though narrow_forward tests
 * ld == 1 itself: without the constant its eval took 0.131 us, not 0.116).
 */
static inline size_t batch_ld(size_t batch)
{
    return batch < MLP_NARROW ? batch : mlp_ld(batch);
}

/* The dot product of the rows a and b over n entries, LANES at a time
 * (fixed order: lane sums, then the tail). */
MLP_INLINE double dot(const double *a, const double *b, size_t n)
{
    size_t k = 0;
    double d = 0.0;
    if (n >= LANES) {
        vd acc = load_vd(a) * load_vd(b);
        for (k = LANES; k + LANES <= n; k += LANES)
            acc += load_vd(a + k) * load_vd(b + k);
        d = lane_sum(acc);
    }
    for (; k < n; k++)
        d += a[k] * b[k];
    return d;
}

/* sum_j a[j sa] b[j sb] for j < n, in four partial sums (four short
 * dependency chains instead of one long one). */
MLP_INLINE double strided_dot(const double *a, size_t sa, const double *b,
                              size_t sb, size_t n)
{
    double p[4] = {0.0, 0.0, 0.0, 0.0};
    size_t j = 0;
    for (; j + 4 <= n; j += 4)
        for (int q = 0; q < 4; q++)
            p[q] += a[(j + q) * sa] * b[(j + q) * sb];
    for (; j < n; j++)
        p[0] += a[j * sa] * b[j * sb];
    return (p[0] + p[1]) + (p[2] + p[3]);
}

/* z_o,i = b_o + sum_k w[o in + k] x_k,i over ld = batch columns. */
MLP_INLINE void narrow_forward(const double *w, const double *b,
                               const double *x, size_t in, size_t out,
                               size_t ld, double *z)
{
    if (ld == 1) {
        for (size_t o = 0; o < out; o++)
            z[o] = b[o] + dot(w + o * in, x, in);
        return;
    }
    for (size_t o = 0; o < out; o++)
        for (size_t i = 0; i < ld; i++) {
            double a = b[o];
            for (size_t k = 0; k < in; k++)
                a += w[o * in + k] * x[k * ld + i];
            z[o * ld + i] = a;
        }
}

/* dw[o in + k] += sum_i g_o,i x_k,i; gx_k,i = sum_o w[o in + k] g_o,i
 * (gx NULL: not wanted). */
MLP_INLINE void narrow_backward(const double *w, const double *x,
                                const double *g, double *gx, double *dw,
                                size_t in, size_t out, size_t ld)
{
    if (dw)
        for (size_t o = 0; o < out; o++)
            for (size_t i = 0; i < ld; i++) {
                const double c = g[o * ld + i];
                for (size_t k = 0; k < in; k++)
                    dw[o * in + k] += c * x[k * ld + i];
            }
    if (!gx)
        return;
    if (in < LANES) {
        /* Few inputs: accumulating into gx would chain every FMA through
         * the same few memory cells. */
        for (size_t k = 0; k < in; k++)
            for (size_t i = 0; i < ld; i++)
                gx[k * ld + i] = strided_dot(w + k, in, g + i, ld, out);
        return;
    }
    memset(gx, 0, in * ld * sizeof *gx);
    for (size_t o = 0; o < out; o++)
        for (size_t i = 0; i < ld; i++) {
            const double c = g[o * ld + i];
            for (size_t k = 0; k < in; k++)
                gx[k * ld + i] += c * w[o * in + k];
        }
}

/* ---- layers ------------------------------------------------------------ */

/*
 * Every stage of the forward pass and of the cotangent pass computes each
 * column (one row of the batch) on its own, so threads split the columns:
 * each runs these on its block (mlp_block) as on a batch of its own, with
 * the bits the whole batch would have. A BLAS layer and a narrow batch
 * are never split. The parameter gradient sums over the columns, so
 * threads split the parameters instead (params_part) and each sum runs
 * over every block.
 */

/* Z = W X + b 1^T: X is in x ld, Z out x ld. */
MLP_INLINE void layer_forward(const mlp_layer *ly, const double *theta,
                              const double *x, double *z, size_t ld)
{
    const double *w = theta + ly->w_off, *b = theta + ly->b_off;
    const size_t in = ly->in, out = ly->out;
    if (ly->blas) {
        for (size_t o = 0; o < out; o++)
            for (size_t i = 0; i < ld; i++)
                z[o * ld + i] = b[o];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out,
                    (int)ld, (int)in, 1.0, w, (int)in, x, (int)ld, 1.0, z,
                    (int)ld);
    } else if (ld == 1) {
        narrow_forward(w, b, x, in, out, 1, z);
    } else if (ld < MLP_NARROW) {
        narrow_forward(w, b, x, in, out, ld, z);
    } else {
        combine_rows(w, in, 1, b, x, in, out, ld, z);
    }
}

/* GX = dL/dX = W^T G for Z = W X + b 1^T, G = dL/dZ (out x ld), GX in x
 * ld. */
MLP_INLINE void layer_cotangent(const mlp_layer *ly, const double *theta,
                                const double *g, double *gx, size_t ld)
{
    const double *w = theta + ly->w_off;
    const size_t in = ly->in, out = ly->out;
    if (ly->blas)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)in,
                    (int)ld, (int)out, 1.0, w, (int)in, g, (int)ld, 0.0, gx,
                    (int)ld);
    else if (ld == 1)
        narrow_backward(w, NULL, g, gx, NULL, in, out, 1);
    else if (ld < MLP_NARROW)
        narrow_backward(w, NULL, g, gx, NULL, in, out, ld);
    else
        combine_rows(w, 1, in, NULL, g, out, in, ld, gx);
}

/* Rows [o0, o1) of dL/dW = G X^T and dL/db = G 1 (G = dL/dZ, out wide;
 * X in wide; blocks b) added into vtheta, each entry summed over the
 * batch's columns. A BLAS layer and a narrow batch are one block. */
MLP_INLINE void layer_params(const mlp_layer *ly, const double *x,
                             const double *g, double *vtheta,
                             const mlp_block *b, size_t nb, size_t o0,
                             size_t o1)
{
    const size_t in = ly->in, out = ly->out, ld = b[0].ld;
    const int batch = (int)b[0].rows;
    double *dw = vtheta + ly->w_off;
    for (size_t o = o0; o < o1; o++)
        vtheta[ly->b_off + o] += row_sum(g, out, o, b, nb);
    if (ly->blas)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(o1 - o0),
                    (int)in, batch, 1.0, g + o0 * ld, (int)ld, x, (int)ld,
                    1.0, dw + o0 * in, (int)in);
    else if (ld == 1)
        narrow_backward(NULL, x, g + o0 * ld, NULL, dw + o0 * in, in,
                        o1 - o0, 1);
    else if (ld < MLP_NARROW)
        narrow_backward(NULL, x, g + o0 * ld, NULL, dw + o0 * in, in,
                        o1 - o0, ld);
    else
        add_gram(g, out, o0, o1, x, in, b, nb, dw);
}

/*
 * Between rows (rows x dim) and feature-major arrays (dim x ld), rows
 * move in tiles of LANES rows x LANES features, transposed in registers
 * (then features left over one at a time, and rows left over one at a
 * time): a tile's rows stay in L1 while each feature's LANES columns are
 * read or written. Row by row, the dim feature rows, ld apart (16 KB at
 * 2048 rows: the same L1 set), evicted each other at every row: the
 * transpositions were 40% of a 17-16-48 diffusion's eval at 2048 rows
 * (perf, sde_gan). Fewer than LANES features (the spiral's 2) go as
 * before, a feature or a row at a time: the tiles' scalar loops cost its
 * forward pass 4% more instructions (callgrind, batch 20, avx2).
 */

#ifdef __clang__
/* r[q][k] = r[k][q]. clang (the fuzz build) has no __builtin_shuffle with
 * a mask vector: through memory, the same values. */
MLP_INLINE void transpose_tile(vd r[LANES])
{
    double t[LANES][LANES];
    memcpy(t, r, sizeof t);
    for (int q = 0; q < LANES; q++)
        for (int k = 0; k < LANES; k++)
            r[q][k] = t[k][q];
}
#else
/* r[q][k] = r[k][q]: log2(LANES) stages, each swapping the off-diagonal
 * blocks of s x s lanes between rows a and a + s. */
MLP_INLINE void transpose_tile(vd r[LANES])
{
    /* unrolled: r stays in registers and the masks are constants */
#pragma GCC unroll 8
    for (int s = LANES / 2; s >= 1; s /= 2)
#pragma GCC unroll 8
        for (int a = 0; a < LANES; a++)
            if (!(a & s)) {
                vi ma, mb;
#pragma GCC unroll 8
                for (int k = 0; k < LANES; k++) {
                    ma[k] = (k & s) ? LANES + k - s : k;
                    mb[k] = (k & s) ? LANES + k : k + s;
                }
                const vd x = __builtin_shuffle(r[a], r[a + s], ma);
                const vd y = __builtin_shuffle(r[a], r[a + s], mb);
                r[a] = x;
                r[a + s] = y;
            }
}
#endif

/* z (dim x ld, zero past the batch's rows) from rows (rows x dim), each
 * value cubed when asked. */
MLP_INLINE void from_rows(const double *y, double *z, size_t dim,
                          size_t rows, size_t ld, int cube)
{
    size_t i0 = 0;
    if (dim < LANES || rows < LANES) {
        for (size_t j = 0; j < dim; j++) {
            double *zj = z + j * ld;
            for (size_t i = 0; i < rows; i++) {
                const double v = y[i * dim + j];
                zj[i] = cube ? v * v * v : v;
            }
            for (size_t i = rows; i < ld; i++)
                zj[i] = 0.0;
        }
        return;
    }
    for (; i0 + LANES <= rows; i0 += LANES) {
        size_t j = 0;
        for (; j + LANES <= dim; j += LANES) {
            vd r[LANES];
#pragma GCC unroll 8
            for (int q = 0; q < LANES; q++)
                r[q] = load_vd(y + (i0 + q) * dim + j);
            transpose_tile(r);
#pragma GCC unroll 8
            for (int q = 0; q < LANES; q++)
                store_vd(z + (j + q) * ld + i0,
                         cube ? r[q] * r[q] * r[q] : r[q]);
        }
        for (; j < dim; j++)
            for (size_t i = i0; i < i0 + LANES; i++) {
                const double v = y[i * dim + j];
                z[j * ld + i] = cube ? v * v * v : v;
            }
    }
    for (size_t j = 0; j < dim; j++) {
        double *zj = z + j * ld;
        for (size_t i = i0; i < rows; i++) {
            const double v = y[i * dim + j];
            zj[i] = cube ? v * v * v : v;
        }
        for (size_t i = rows; i < ld; i++)
            zj[i] = 0.0;
    }
}

/* rows (rows x dim) = the first columns of z (dim x ld). */
MLP_INLINE void to_rows(const double *z, double *y, size_t dim, size_t rows,
                        size_t ld)
{
    size_t i0 = 0;
    if (dim < LANES || rows < LANES) {
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < dim; j++)
                y[i * dim + j] = z[j * ld + i];
        return;
    }
    for (; i0 + LANES <= rows; i0 += LANES) {
        size_t j = 0;
        for (; j + LANES <= dim; j += LANES) {
            vd r[LANES];
#pragma GCC unroll 8
            for (int q = 0; q < LANES; q++)
                r[q] = load_vd(z + (j + q) * ld + i0);
            transpose_tile(r);
#pragma GCC unroll 8
            for (int q = 0; q < LANES; q++)
                store_vd(y + (i0 + q) * dim + j, r[q]);
        }
        for (; j < dim; j++)
            for (size_t i = i0; i < i0 + LANES; i++)
                y[i * dim + j] = z[j * ld + i];
    }
    for (size_t i = i0; i < rows; i++)
        for (size_t j = 0; j < dim; j++)
            y[i * dim + j] = z[j * ld + i];
}

/* vy (rows x dim) += dL/dy from gx0 = dL/dx0 (in0 x ld). */
MLP_INLINE void add_input_cotangent(int cube, const double *gx0,
                                    const double *y, double *vy, size_t dim,
                                    size_t rows, size_t ld)
{
    size_t i0 = 0;
    if (dim < LANES || rows < LANES) {
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < dim; j++) {
                const double gij = gx0[j * ld + i], yij = y[i * dim + j];
                vy[i * dim + j] += cube ? 3.0 * yij * yij * gij : gij;
            }
        return;
    }
    for (; i0 + LANES <= rows; i0 += LANES) {
        size_t j = 0;
        /* without the cube a sum, the same in registers */
        for (; !cube && j + LANES <= dim; j += LANES) {
            vd r[LANES];
#pragma GCC unroll 8
            for (int q = 0; q < LANES; q++)
                r[q] = load_vd(gx0 + (j + q) * ld + i0);
            transpose_tile(r);
#pragma GCC unroll 8
            for (int q = 0; q < LANES; q++) {
                double *vq = vy + (i0 + q) * dim + j;
                store_vd(vq, load_vd(vq) + r[q]);
            }
        }
        for (; j < dim; j++)
            for (size_t i = i0; i < i0 + LANES; i++) {
                const double gij = gx0[j * ld + i], yij = y[i * dim + j];
                vy[i * dim + j] += cube ? 3.0 * yij * yij * gij : gij;
            }
    }
    for (size_t i = i0; i < rows; i++)
        for (size_t j = 0; j < dim; j++) {
            const double gij = gx0[j * ld + i], yij = y[i * dim + j];
            vy[i * dim + j] += cube ? 3.0 * yij * yij * gij : gij;
        }
}

/* Block b's part of the hidden layers' outputs from its part of x0. */
MLP_INLINE void forward_layers(const mlp_net *n, const mlp_point *pt,
                               const double *theta, size_t c0, size_t ld)
{
    const double *x = pt->x0 + n->in0 * c0;
    for (size_t l = 0; l + 1 < n->nlayers; l++) {
        const mlp_layer *ly = &n->layer[l];
        double *h = pt->h[l] + ly->out * c0;
        layer_forward(ly, theta, x, h, ld);
        if (ly->act == ACT_LIPSWISH)
            lipswish_array(h, pt->sg[l] + ly->out * c0, ld * ly->out);
        else
            activate(ly->act, h, ld * ly->out);
        x = h;
    }
}

/*
 * Block b of net n's forward pass through its hidden layers at (t, y,
 * theta), into point pt (and the block's rows of y into pt->y when the
 * point is kept). One function behind eval and vjp alike, not inlined
 * into each, so that a kept pass has the bits a recomputation would have
 * whatever the compiler contracts into FMAs; one row has a copy of its
 * own (ld = 1 constant: unit strides).
 */
static __attribute__((noinline)) void
forward_block(const mlp_net *n, mlp_point *pt, size_t dim, double t,
              const double *y, const double *theta, mlp_block b)
{
    double *x0 = pt->x0 + n->in0 * b.s0;
    y += b.c0 * dim;
    if (pt->batch)
        memcpy(pt->y + b.c0 * dim, y, b.rows * dim * sizeof *y);
    from_rows(y, x0, dim, b.rows, b.ld, n->cube);
    if (n->time)
        for (size_t i = 0; i < b.ld; i++)
            x0[dim * b.ld + i] = t;
    if (b.ld == 1)
        forward_layers(n, pt, theta, b.s0, 1);
    else
        forward_layers(n, pt, theta, b.s0, b.ld);
}

/* Block b of the last hidden output of a forward pass (its input if
 * none). */
MLP_INLINE const double *last_hidden(const mlp_net *n, const mlp_point *pt,
                                     size_t c0)
{
    return n->nlayers > 1
               ? pt->h[n->nlayers - 2] + n->layer[n->nlayers - 2].out * c0
               : pt->x0 + n->in0 * c0;
}

/* Block b of layer l's input in a forward pass. */
MLP_INLINE const double *layer_input(const mlp_net *n, const mlp_point *pt,
                                     size_t l, size_t c0)
{
    return l > 0 ? pt->h[l - 1] + n->layer[l - 1].out * c0
                 : pt->x0 + n->in0 * c0;
}

MLP_INLINE int all_finite(const double *x, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= !(fabs(x[i]) <= 1.79769313486231570815e+308);
    return !bad;
}

/* ---- the field operations, split between threads ------------------------ */

/* One call of a field operation on net n, and how it is split: part p
 * has the block of columns blk[p] (rows of the batch) and its share of
 * the parameters. */
typedef struct job {
    const mlp_state *s;
    const mlp_net *n;
    size_t dim;
    double t;
    const double *y, *theta, *v;
    double *out;           /* eval: dy or g; vjp: vy (NULL: not wanted) */
    double *vtheta;
    mlp_point *pt;
    int forward;           /* pt is to be computed */
    size_t nparts;
    mlp_block blk[MLP_MAX_THREADS];
    int bad[MLP_MAX_THREADS]; /* part p's rows of out are not all finite */
} job;

/* The blocks: ld = batch_ld(batch) columns cut at multiples of 8, each
 * but the first MLP_BLOCK_GAP columns further on in the kernels' arrays
 * than the one before it (mlp_cols). */
static void job_cut(job *jb, size_t batch, size_t nparts)
{
    const size_t ld = batch_ld(batch);
    jb->nparts = nparts;
    for (size_t p = 0; p < nparts; p++) {
        const size_t c0 = mlp_padded(ld * p / nparts),
                     c1 = p + 1 < nparts ? mlp_padded(ld * (p + 1) / nparts)
                                         : ld;
        jb->blk[p].c0 = c0;
        jb->blk[p].s0 = c0 + p * MLP_BLOCK_GAP;
        jb->blk[p].ld = c1 - c0;
        jb->blk[p].rows =
            (c1 < batch ? c1 : batch) - (c0 < batch ? c0 : batch);
        jb->bad[p] = 0;
    }
}

static void job_start(job *jb, mlp_state *s, mlp_net *n, size_t dim,
                      double t, const double *y, const double *theta,
                      size_t batch, int vjp)
{
    int hit;
    jb->s = s;
    jb->n = n;
    jb->dim = dim;
    jb->t = t;
    jb->y = y;
    jb->theta = theta;
    jb->v = NULL;
    jb->out = jb->vtheta = NULL;
    jb->pt = mlp_cache_find(n, dim, t, y, theta, batch, vjp, &hit);
    jb->forward = !hit;
    job_cut(jb, batch, s->pool && n->split_batch && batch >= n->split_batch &&
                               batch >= MLP_NARROW
                           ? nde_pool_threads(s->pool)
                           : 1);
}

static void job_run(job *jb, nde_pool_fn part)
{
    if (jb->nparts == 1)
        part(jb, 0);
    else
        nde_pool_run(jb->s->pool, part, jb, jb->nparts);
}

static int job_status(const job *jb)
{
    for (size_t p = 0; p < jb->nparts; p++)
        if (jb->bad[p])
            return NDE_ERETRY;
    return NDE_OK;
}

/*
 * The output layer's own kernels (not dgemm) on a padded block run
 * OUT_COLS columns at a time through a scratch w x OUT_COLS (12 KB at
 * w = 48), which stays in L1 for the activation and the rows after it:
 * the whole w x ld output (786 KB for a 48-wide diffusion at 2048 rows)
 * was written, then read back twice from L2 or beyond.
 */
enum { OUT_COLS = 32 };

MLP_INLINE int out_chunked(const mlp_layer *ly, size_t ld)
{
    return !ly->blas && ld >= MLP_NARROW;
}

/* Columns [c, c + nc) of the output layer's z = W x + b into zc (w x nc),
 * x its input (in x ld). */
MLP_INLINE void out_chunk(const mlp_layer *ly, const double *theta,
                          const double *x, size_t ld, size_t c, size_t nc,
                          double *zc)
{
    combine_cols(theta + ly->w_off, ly->in, 1, theta + ly->b_off, x + c,
                 ly->in, ly->out, ld, nc, zc, nc);
}

/* The output (dy or g) of part p's columns: w values a row, the state
 * dimension but for a general-noise diffusion (dim x M). */
static void eval_part(void *arg, size_t part)
{
    job *jb = arg;
    const mlp_net *n = jb->n;
    const mlp_block b = jb->blk[part];
    const mlp_layer *ly = &n->layer[n->nlayers - 1];
    const size_t dim = jb->dim, w = ly->out;
    double *z = jb->s->g + w * b.s0, *out = jb->out + b.c0 * w;
    if (jb->forward)
        forward_block(n, jb->pt, dim, jb->t, jb->y, jb->theta, b);
    const double *x = last_hidden(n, jb->pt, b.s0);
    if (!out_chunked(ly, b.ld)) {
        layer_forward(ly, jb->theta, x, z, b.ld);
        if (n->out_act != ACT_IDENTITY)
            activate(n->out_act, z, w * b.ld);
        to_rows(z, out, w, b.rows, b.ld);
    } else
        for (size_t c = 0; c < b.ld; c += OUT_COLS) {
            const size_t nc = b.ld - c < OUT_COLS ? b.ld - c : OUT_COLS;
            const size_t rows = b.rows <= c ? 0
                                : b.rows - c < nc ? b.rows - c
                                                  : nc;
            out_chunk(ly, jb->theta, x, b.ld, c, nc, z);
            if (n->out_act != ACT_IDENTITY)
                activate(n->out_act, z, w * nc);
            to_rows(z, out + c * w, w, rows, nc);
        }
    jb->bad[part] = !all_finite(out, b.rows * w);
}

/* Part p's columns of the cotangents n->cot[l] = dL/dZ_l of every layer,
 * and of vy when wanted. */
static void cotangent_part(void *arg, size_t part)
{
    job *jb = arg;
    const mlp_state *s = jb->s;
    const mlp_net *n = jb->n;
    mlp_point *pt = jb->pt;
    const mlp_block b = jb->blk[part];
    const size_t dim = jb->dim, last = n->nlayers - 1, ld = b.ld;
    const size_t w = n->layer[last].out;    /* eval_part's w */
    double *g = n->cot[last] + w * b.s0;
    if (jb->forward)
        forward_block(n, pt, dim, jb->t, jb->y, jb->theta, b);
    from_rows(jb->v + b.c0 * w, g, w, b.rows, ld, 0);
    if (n->out_act != ACT_IDENTITY) {
        /* out = s(z): dL/dz = v s'(z), from the output h = s(z) held in
         * s->gx (the output layer is recomputed: it is w wide, the
         * cheap one); s is never lipswish */
        double *h = s->gx + w * b.s0;
        const mlp_layer *ly = &n->layer[last];
        const double *x = last_hidden(n, pt, b.s0);
        if (!out_chunked(ly, ld)) {
            layer_forward(ly, jb->theta, x, h, ld);
            activate(n->out_act, h, w * ld);
            multiply_derivative(n->out_act, h, NULL, g, w * ld);
        } else
            for (size_t c = 0; c < ld; c += OUT_COLS) {
                const size_t nc = ld - c < OUT_COLS ? ld - c : OUT_COLS;
                out_chunk(ly, jb->theta, x, ld, c, nc, h);
                activate(n->out_act, h, w * nc);
                for (size_t j = 0; j < w; j++)
                    multiply_derivative(n->out_act, h + j * nc, NULL,
                                        g + j * ld + c, nc);
            }
    }
    for (size_t l = last; l > 0; l--) {
        const mlp_layer *ly = &n->layer[l];
        double *gx = n->cot[l - 1] + ly->in * b.s0;
        const double *sg = pt->sg[l - 1];
        layer_cotangent(ly, jb->theta, n->cot[l] + ly->out * b.s0, gx, ld);
        multiply_derivative(n->layer[l - 1].act,
                            pt->h[l - 1] + ly->in * b.s0,
                            sg ? sg + ly->in * b.s0 : NULL, gx, ld * ly->in);
    }
    if (!jb->out)
        return;
    double *gx0 = s->g + n->in0 * b.s0, *vy = jb->out + b.c0 * dim;
    layer_cotangent(&n->layer[0], jb->theta,
                    n->cot[0] + n->layer[0].out * b.s0, gx0, ld);
    add_input_cotangent(n->cube, gx0, jb->y + b.c0 * dim, vy, dim, b.rows,
                        ld);
    jb->bad[part] = !all_finite(vy, b.rows * dim);
}

/* Part p's share of vtheta, from the cotangents: whole layers when the
 * call is not split, else blocks of GRAM_ROWS rows of the layers' dW and
 * db, given out so each part has about the same multiply-adds. */
static void params_part(void *arg, size_t part)
{
    job *jb = arg;
    const mlp_net *n = jb->n;
    size_t total = 0, sum = 0;
    for (size_t l = 0; l < n->nlayers; l++)
        total += n->layer[l].out * (n->layer[l].in + 1);
    for (size_t l = 0; l < n->nlayers; l++) {
        const mlp_layer *ly = &n->layer[l];
        const double *x = layer_input(n, jb->pt, l, 0);
        if (jb->nparts == 1) {
            layer_params(ly, x, n->cot[l], jb->vtheta, jb->blk, 1, 0,
                         ly->out);
            continue;
        }
        for (size_t o0 = 0; o0 < ly->out; o0 += GRAM_ROWS) {
            const size_t o1 = o0 + GRAM_ROWS < ly->out ? o0 + GRAM_ROWS
                                                       : ly->out;
            const size_t cost = (o1 - o0) * (ly->in + 1);
            if ((2 * sum + cost) * jb->nparts / (2 * total) == part)
                layer_params(ly, x, n->cot[l], jb->vtheta, jb->blk,
                             jb->nparts, o0, o1);
            sum += cost;
        }
    }
}

static int mlp_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    mlp_state *s = f->state;
    job jb;
    job_start(&jb, s, &s->drift, f->dim, t, y, theta, batch, 0);
    jb.out = dy;
    job_run(&jb, eval_part);
    return job_status(&jb);
}

static int net_vjp(mlp_state *s, mlp_net *n, size_t dim, double t,
                   const double *y, const double *theta, const double *v,
                   double *vy, double *vtheta, size_t batch)
{
    job jb;
    if (!vy && !vtheta)
        return NDE_OK;
    job_start(&jb, s, n, dim, t, y, theta, batch, 1);
    jb.v = v;
    jb.out = vy;
    jb.vtheta = vtheta;
    job_run(&jb, cotangent_part);
    if (vtheta)
        job_run(&jb, params_part);
    return job_status(&jb);
}

static int mlp_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *vy,
                   double *vtheta, size_t batch)
{
    mlp_state *s = f->state;
    return net_vjp(s, &s->drift, f->dim, t, y, theta, v, vy, vtheta, batch);
}

static int mlp_diffusion(nde_field *f, double t, const double *y,
                         const double *theta, double *g, size_t batch)
{
    mlp_state *s = f->state;
    job jb;
    job_start(&jb, s, &s->diffusion, f->dim, t, y, theta, batch, 0);
    jb.out = g;
    job_run(&jb, eval_part);
    return job_status(&jb);
}

static int mlp_diffusion_vjp(nde_field *f, double t, const double *y,
                             const double *theta, const double *v, double *vy,
                             double *vtheta, size_t batch)
{
    mlp_state *s = f->state;
    return net_vjp(s, &s->diffusion, f->dim, t, y, theta, v, vy, vtheta,
                   batch);
}

/* x = s(x) in place, for every activation (mlp_kernels). */
static void mlp_activate(int act, double *x, size_t n)
{
    if (act == ACT_LIPSWISH)
        lipswish_array(x, NULL, n);
    else
        activate(act, x, n);
}

const mlp_kernels MLP_KERNELS = {MLP_KERNELS_NAME, mlp_eval, mlp_vjp,
                                 mlp_diffusion, mlp_diffusion_vjp,
                                 mlp_activate};
