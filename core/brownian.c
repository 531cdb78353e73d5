/*
 * The Brownian Interval of nde/brownian.h (Kidger, Foster, Li, Lyons 2021,
 * arXiv 2105.13493, Sec. 4) as a history-free tree.
 *
 * Top: a balanced binary tree over the index ranges [i, j) of the grid
 * cells, split at m = (i + j) / 2. Below each cell (a top leaf, "level 0"),
 * a dyadic tree over positions a / 2^52 of the cell's width: the node at
 * level L starting at position a covers [a, a + 2^(52-L)) and splits at
 * its middle. A node's split draws n normals that are a function of
 * (seed, node identity, channel) alone (a counter-based hash and the
 * ziggurat), so any order of queries sees the same tree. Only two
 * root-to-node paths are kept (one per end of a query); a path keeps the
 * nodes' W at their start, their increment and, once split, their left
 * child's increment, so moving between neighbouring cells reuses the
 * common ancestors and costs O(1) amortised. (Split refinement, which
 * replaces the dyadic trees below the cells by splits at the query
 * times, is brownian_split.c; the structures are brownian_impl.h's.)
 *
 * Space-time Levy area (nde_brownian_set_area). Per channel, a node over
 * [s, u] of length h carries W = W_u - W_s and A = h H = int_s^u (W_r -
 * W_s - (r - s) W / h) dr, H the space-time Levy area of J. Foster,
 * "Numerical approximation of SDEs with Levy area" (DPhil thesis, Oxford
 * 2020), as the Brownian Interval of Kidger et al. (Sec. 4) carries it: H
 * ~ N(0, h / 12), independent of W. Splitting at s + a (b = h - a) into
 * (W1, A1), (W2, A2), the definition gives (integrate over each half and
 * collect the linear terms)
 *     W = W1 + W2,    A = A1 + A2 + (b W1 - a W2) / 2,
 * with W1, W2, A1, A2 independent, variances a, b, a^3 / 12, b^3 / 12.
 * (W1, A1) given (W, A) is Gaussian (the usual conditioning; the
 * constraints' covariance is diag(h, h^3 / 12)):
 *     mean  W1: a W / h + 6 a b A / h^3,    A1: a^3 A / h^3
 *     cov   W1 W1: a b q / h^3,  W1 A1: -a^4 b / (2 h^3),
 *           A1 A1: a^3 (h^3 - a^3) / (12 h^3),   q = a^2 - a b + b^2,
 * whose Cholesky factor has l22^2 = a^3 b^3 / (12 h q). A split draws two
 * normals per channel for it, and (W2, A2) follow from the rule above. A
 * query's A combines, with the same rule, the nodes that tile it.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brownian_impl.h"

/* Normals by the ziggurat method of G. Marsaglia and W. W. Tsang, "The
 * Ziggurat Method for Generating Random Variables", J. Stat. Softw. 5(8),
 * 2000: 256 layers of equal area v under f(x) = exp(-x^2/2), the base
 * layer's rectangle ending at r (their constant for 256 layers) plus the
 * tail beyond r. Layer i spans [0, x[i]] at heights f(x[i])..f(x[i+1]);
 * x[0] = v / f(r) is the base layer's virtual width. */
#define BM_ZIG_R 3.6541528853610088

static void bm_zig_tables(double *x, double *f)
{
    double fr = exp(-0.5 * BM_ZIG_R * BM_ZIG_R);
    double v = BM_ZIG_R * fr + sqrt(M_PI / 2) * erfc(BM_ZIG_R / M_SQRT2);

    x[0] = v / fr;
    x[1] = BM_ZIG_R;
    for (int i = 1; i < 255; i++)
        x[i + 1] = sqrt(-2.0 * log(v / x[i] + exp(-0.5 * x[i] * x[i])));
    x[256] = 0.0;
    for (int i = 0; i <= 256; i++)
        f[i] = exp(-0.5 * x[i] * x[i]);
}

/* A uniform in (0, 1), never 0 or 1, from the top 53 bits of h. */
static inline double bm_open01(uint64_t h)
{
    return ((double)(h >> 11) + 0.5) * 0x1p-53;
}

/* The ziggurat's rare cases (about 1.2 % of draws): the wedge of a layer,
 * the tail, and new attempts. h0 is the channel's first 64-bit draw; the
 * further ones are mix(h0 + j gamma), j = 1, 2, ... */
static double bm_normal_slow(const double *x, const double *f, uint64_t h0)
{
    uint64_t h = h0, j = 0;

    for (;;) {
        unsigned i = (unsigned)(h & 255);
        double z = ((double)(h >> 11) * 0x1p-52 - 1.0) * x[i];
        if (fabs(z) < x[i + 1])
            return z;
        if (i == 0) {
            /* the tail beyond r (Marsaglia 1964, as in the paper) */
            double a, b;
            do {
                a = -log(bm_open01(bm_mix(h0 + ++j * BM_GAMMA))) / BM_ZIG_R;
                b = -log(bm_open01(bm_mix(h0 + ++j * BM_GAMMA)));
            } while (b + b < a * a);
            return z < 0.0 ? -(BM_ZIG_R + a) : BM_ZIG_R + a;
        }
        if (f[i] + bm_open01(bm_mix(h0 + ++j * BM_GAMMA)) * (f[i + 1] - f[i])
            < exp(-0.5 * z * z))
            return z;
        h = bm_mix(h0 + ++j * BM_GAMMA);
    }
}

/*
 * The uniforms of the ziggurat's first draw for channels c < n of the
 * stream `key`: h_c = mix(key + (c + 1) gamma), u[c] = (top 53 bits of h_c)
 * 2^-52 - 1, a signed uniform, and layer[c] its low 8 bits. Integer
 * arithmetic and exact conversions only, so every clone (the x86-64-v4
 * one does 8 channels at a time) gives the same bits; the table lookups
 * stay in bm_normals, as gathers cost more than they save here.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("tree-vectorize"),
               target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void bm_uniforms(uint64_t key, size_t n, double *restrict u,
                        uint8_t *restrict layer)
{
    for (size_t c = 0; c < n; c++) {
        uint64_t h = bm_mix(key + (uint64_t)(c + 1) * BM_GAMMA);
        u[c] = (double)(int64_t)(h >> 11) * 0x1p-52 - 1.0;
        layer[c] = (uint8_t)h;
    }
}

/* z[c] = the normal of channel c of the stream `key`, c < n: the layer
 * and signed uniform of bm_uniforms, accepted in the layer's rectangle
 * (about 98.8 % of draws), else bm_normal_slow from the same h_c. */
void bm_normals(const nde_brownian *bm, uint64_t key, size_t n, double *z)
{
    const double *zx = bm->zig_x;
    uint8_t *layer = bm->layer;

    bm_uniforms(key, n, z, layer);
    for (size_t c = 0; c < n; c++) {
        unsigned i = layer[c];
        double v = z[c] * zx[i];
        if (__builtin_expect(!(fabs(v) < zx[i + 1]), 0))
            v = bm_normal_slow(zx, bm->zig_f,
                               bm_mix(key + (uint64_t)(c + 1) * BM_GAMMA));
        z[c] = v;
    }
}

/* out[c] = a x[c] + b xi_c for channels c < n, xi_c the normal of channel
 * c of the stream `key`. */
static void bm_bridge(const nde_brownian *bm, uint64_t key, size_t n,
                      double a, const double *x, double b, double *out)
{
    double *z = bm->z[0];

    bm_normals(bm, key, n, z);
    for (size_t c = 0; c < n; c++)
        out[c] = a * x[c] + b * z[c];
}

/* Whether node nd is on the path from the root to the node of point pt. */
static int bm_on_path(const bm_node *nd, bm_point pt)
{
    if (pt.k < nd->i || pt.k >= nd->j)
        return 0;
    if (nd->level == 0)
        return 1;
    return pt.p > nd->a &&
           pt.p < nd->a + ((uint64_t)1 << (BM_CELL_BITS - nd->level));
}

/* Whether point pt is reached at node nd: nd is cell pt.k and pt is one
 * of its ends, or nd splits at pt. */
static int bm_reached(const bm_node *nd, bm_point pt)
{
    if (nd->j - nd->i > 1)
        return 0;
    if (nd->level == 0 && (pt.p == 0 || pt.p == BM_POS_END))
        return 1;
    return pt.p == nd->a + ((uint64_t)1 << (BM_CELL_BITS - 1 - nd->level));
}

/* The lengths a, b of node nd's children. */
static void bm_halves(const nde_brownian *bm, const bm_node *nd, double *a,
                      double *b)
{
    if (nd->j - nd->i > 1) {
        double m = bm_time(bm, (nd->i + nd->j) / 2);
        *a = m - bm_time(bm, nd->i);
        *b = bm_time(bm, nd->j) - m;
    } else {
        *a = *b = ldexp(bm_time(bm, nd->i + 1) - bm_time(bm, nd->i),
                        -(int)nd->level - 1);
    }
}

/* (W1, A1), the left piece of length a of an interval of length a + b
 * with (W, A), from the normals of the stream `key` and of its second
 * one (top comment): W1 = mw W + ma A + l11 z1, A1 = maa A + l21 z1 +
 * l22 z2, into w1[c], a1[c] for the n channels. */
void bm_area_split(const nde_brownian *bm, uint64_t key, double a,
                   double b, const double *w, const double *A, double *w1,
                   double *a1)
{
    const double h = a + b, h3 = h * h * h, q = a * a - a * b + b * b;
    const double mw = a / h, ma = 6.0 * a * b / h3, maa = a * a * a / h3;
    const double l11 = sqrt(a * b * q / h3);
    const double l21 = -a * a * a * a * b / (2.0 * h3 * l11);
    const double l22 = sqrt(a * a * a * b * b * b / (12.0 * h * q));

    bm_normals(bm, key, bm->n, bm->z[0]);
    bm_normals(bm, bm_mix(key ^ BM_AREA_KEY), bm->n, bm->z[1]);
    for (size_t c = 0; c < bm->n; c++) {
        double z1 = bm->z[0][c], z2 = bm->z[1][c];
        w1[c] = mw * w[c] + ma * A[c] + l11 * z1;
        a1[c] = maa * A[c] + l21 * z1 + l22 * z2;
    }
}

/* With the area: (W1, A1) of the left child from their law given the
 * node's (W, A) (top comment), from two streams of the node. */
static void bm_split_area(nde_brownian *bm, bm_node *nd)
{
    double a, b;

    bm_halves(bm, nd, &a, &b);
    bm_area_split(bm, nd->key, a, b, nd->inc, nd->area, nd->left,
                  nd->aleft);
    nd->split = 1;
}

static void bm_split(nde_brownian *bm, bm_node *nd)
{
    double a, b;

    if (nd->split)
        return;
    if (bm->area) {
        bm_split_area(bm, nd);
        return;
    }
    if (nd->j - nd->i > 1) {
        /* Brownian bridge over [s, u] at m: N((u-m)/(u-s) W_s + (m-s)/(u-s)
         * W_u, (m-s)(u-m)/(u-s)) */
        double s = bm_time(bm, nd->i), m = bm_time(bm, (nd->i + nd->j) / 2);
        double u = bm_time(bm, nd->j);
        a = (m - s) / (u - s);
        b = sqrt((m - s) * (u - m) / (u - s));
    } else {
        /* the same at the middle: weight 1/2, variance (u - s) / 4 */
        double width = ldexp(bm_time(bm, nd->i + 1) - bm_time(bm, nd->i),
                             -(int)nd->level);
        a = 0.5;
        b = 0.5 * sqrt(width);
    }
    bm_bridge(bm, nd->key, bm->n, a, nd->inc, b, nd->left);
    nd->split = 1;
}

/* Fill child slot ch of parent pa as its left or right child. */
static void bm_child(nde_brownian *bm, const bm_node *pa, int right,
                     bm_node *ch)
{
    size_t n = bm->n;

    if (pa->j - pa->i > 1) {
        size_t m = (pa->i + pa->j) / 2;
        ch->i = right ? m : pa->i;
        ch->j = right ? pa->j : m;
        ch->level = 0;
        ch->a = 0;
        ch->key = bm_key(bm->seed_key, ch->i, ch->j);
    } else {
        ch->i = pa->i;
        ch->j = pa->j;
        ch->level = pa->level + 1;
        ch->a = pa->a +
                (right ? (uint64_t)1 << (BM_CELL_BITS - ch->level) : 0);
        ch->key = bm_key(bm->seed_key,
                         (uint64_t)ch->i | (UINT64_C(1) << 63),
                         ((uint64_t)ch->level << BM_CELL_BITS) | ch->a);
    }
    ch->split = 0;
    if (right) {
        for (size_t c = 0; c < n; c++) {
            ch->w[c] = pa->w[c] + pa->left[c];
            ch->inc[c] = pa->inc[c] - pa->left[c];
        }
    } else {
        memcpy(ch->w, pa->w, n * sizeof *ch->w);
        memcpy(ch->inc, pa->left, n * sizeof *ch->inc);
    }
    if (bm->area && right) {
        double a, b;
        bm_halves(bm, pa, &a, &b);
        for (size_t c = 0; c < n; c++)
            ch->area[c] = pa->area[c] - pa->aleft[c] -
                          0.5 * (b * pa->left[c] - a * ch->inc[c]);
    } else if (bm->area) {
        memcpy(ch->area, pa->aleft, n * sizeof *ch->area);
    }
    bm->nodes++;
}

/* Walk path pa to point pt: keep the nodes on the way, sample the rest.
 * Returns the node where pt is reached. */
bm_node *bm_walk(nde_brownian *bm, bm_path *pa, bm_point pt)
{
    bm_node *nd;

    if (pa->has_target && pa->target.k == pt.k && pa->target.p == pt.p)
        return &pa->node[pa->len - 1];
    while (pa->len > 1 && !bm_on_path(&pa->node[pa->len - 1], pt))
        pa->len--;
    if (pa->len == 0) {
        nd = &pa->node[0];
        nd->i = 0;
        nd->j = bm->cells;
        nd->level = 0;
        nd->a = 0;
        nd->split = 0;
        nd->key = bm_key(bm->seed_key, 0, bm->cells);
        memset(nd->w, 0, bm->n * sizeof *nd->w);
        bm_bridge(bm, bm_key(bm->seed_key, UINT64_MAX, 0), bm->n, 0.0, nd->w,
                  sqrt(bm->t1 - bm->t0), nd->inc);
        if (bm->area) {
            /* A ~ N(0, T^3 / 12), independent of W */
            double T = bm->t1 - bm->t0;
            uint64_t key = bm_key(bm->seed_key, UINT64_MAX, BM_AREA_KEY);
            bm_normals(bm, key, bm->n, bm->z[0]);
            for (size_t c = 0; c < bm->n; c++)
                nd->area[c] = sqrt(T * T * T / 12.0) * bm->z[0][c];
        }
        pa->len = 1;
        bm->nodes++;
    }
    nd = &pa->node[pa->len - 1];
    while (!bm_reached(nd, pt)) {
        int right;
        if (nd->j - nd->i > 1)
            right = pt.k >= (nd->i + nd->j) / 2;
        else
            right = pt.p > nd->a +
                    ((uint64_t)1 << (BM_CELL_BITS - 1 - nd->level));
        bm_split(bm, nd);
        bm_child(bm, nd, right, nd + 1);
        pa->len++;
        nd++;
    }
    pa->target = pt;
    pa->has_target = 1;
    return nd;
}

/* The position, in units of 2^-52 of the cell [g, g + w], of the
 * midpoint between t and the next double: the bound between the times t
 * stands for and those its successor does. Both sides of a bound compute
 * it from the same double, so the doubles' ranges tile the cell. */
static double bm_bound(double t, double g, double w)
{
    return ldexp(((t - g) + 0.5 * (nextafter(t, HUGE_VAL) - t)) / w,
                 BM_CELL_BITS);
}

/* The position of time t in the cell [g, g + w], in units of 2^-52 of w
 * (may be 2^52 or more when t rounds onto the next grid point). A double
 * t stands for the times between the midpoints to its neighbours: when
 * that range spans positions (t far from 0 next to a narrow cell), t is
 * the one with the fewest bits among them (resolving t further than its
 * own precision would only cost bisections), otherwise the position
 * nearest to t. */
static uint64_t bm_position(double t, double g, double w)
{
    const double x = ldexp((t - g) / w, BM_CELL_BITS);
    const double lo = bm_bound(nextafter(t, -HUGE_VAL), g, w);
    const double hi = bm_bound(t, g, w);
    uint64_t a, b;

    if (hi - lo < 1.0 || ceil(lo) >= hi)
        return x > 0.0 ? (uint64_t)nearbyint(x) : 0;
    a = (uint64_t)fmax(ceil(lo), 0.0);
    b = (uint64_t)(ceil(hi) - 1.0);
    if (a == 0 || a >= b)
        return a;
    /* the one in (a - 1, b] with the most trailing zeros: b with the bits
     * below the highest one where a - 1 and b differ cleared */
    return b & ~(((uint64_t)1 << (63 - __builtin_clzll((a - 1) ^ b))) - 1);
}

/* The cell k of a time t < t1: grid point k <= t < grid point k + 1. */
size_t bm_cell_of(const nde_brownian *bm, double t)
{
    double x = (t - bm->t0) / bm->dt;
    size_t k = x > 0.0 ? (size_t)x : 0;

    if (k > bm->cells - 1)
        k = bm->cells - 1;
    while (k > 0 && bm_time(bm, k) > t)
        k--;
    while (k + 1 < bm->cells && bm_time(bm, k + 1) <= t)
        k++;
    return k;
}

/* The point of time t in [t0, t1]: its cell, and its position in it
 * (bm_position). */
bm_point bm_locate(const nde_brownian *bm, double t)
{
    bm_point pt;
    size_t k;
    double g;

    if (t >= bm->t1) {
        pt.k = bm->cells - 1;
        pt.p = BM_POS_END;
        return pt;
    }
    k = bm_cell_of(bm, t);
    g = bm_time(bm, k);
    pt.k = k;
    pt.p = 0;
    if (t > g) {
        pt.p = bm_position(t, g, bm_time(bm, k + 1) - g);
        if (pt.p >= BM_POS_END) {
            if (k + 1 < bm->cells) {
                pt.k = k + 1;
                pt.p = 0;
            } else {
                pt.p = BM_POS_END;
            }
        }
    }
    return pt;
}

double nde_brownian_snap(const nde_brownian *bm, double t, double quantum)
{
    bm_point pt;
    double g, w, cand;
    uint64_t unit, p;
    int m;

    if (!bm->ready || bm->split || !(quantum > 0.0) ||
        !(t > bm->t0 && t < bm->t1))
        return t;
    pt = bm_locate(bm, t);
    if (pt.p == 0 || pt.p == BM_POS_END)
        return t;
    g = bm_time(bm, pt.k);
    w = bm_time(bm, pt.k + 1) - g;
    /* the coarsest spacing w 2^-m within the quantum */
    m = quantum >= w ? 0 : (int)ceil(log2(w / quantum));
    if (m >= BM_CELL_BITS)
        return t;
    unit = (uint64_t)1 << (BM_CELL_BITS - m);
    p = (pt.p + unit / 2) / unit * unit;
    if (p == 0)
        return g;
    if (p >= BM_POS_END)
        return bm_time(bm, pt.k + 1);
    /* the double nearest the position or a neighbour: the one whose
     * range holds it lands on it or on a coarser position */
    cand = g + ldexp((double)p, -BM_CELL_BITS) * w;
    for (int i = 0; i < 7; i++) {
        double c = cand;
        for (int j = 0; j < (i + 1) / 2; j++)
            c = nextafter(c, i % 2 ? HUGE_VAL : -HUGE_VAL);
        bm_point q = bm_locate(bm, c);
        if (fabs(c - t) <= quantum && q.k == pt.k &&
            (q.p == 0 || __builtin_ctzll(q.p) >= BM_CELL_BITS - m))
            return c;
    }
    return t;
}

/* out = W at point pt, walking path pa. */
void bm_value(nde_brownian *bm, bm_path *pa, bm_point pt, double *out)
{
    bm_node *nd = bm_walk(bm, pa, pt);
    size_t n = bm->n;

    if (nd->level == 0 && pt.p == 0) {
        memcpy(out, nd->w, n * sizeof *out);
    } else if (nd->level == 0 && pt.p == BM_POS_END) {
        for (size_t c = 0; c < n; c++)
            out[c] = nd->w[c] + nd->inc[c];
    } else {
        bm_split(bm, nd);
        for (size_t c = 0; c < n; c++)
            out[c] = nd->w[c] + nd->left[c];
    }
}

int nde_brownian_create(nde_ctx *ctx, size_t n_max, nde_brownian **out)
{
    nde_brownian *bm;
    size_t per_node, total;
    double *d;

    *out = NULL;
    if (n_max == 0)
        return nde_error(ctx, NDE_EINVAL,
                         "brownian: n_max must be at least 1");
    if (n_max > SIZE_MAX / sizeof(double) / (6 * BM_DEPTH_MAX + 5))
        return nde_error(ctx, NDE_EINVAL, "brownian: n_max %zu too large",
                         n_max);
    bm = calloc(1, sizeof *bm);
    per_node = 3 * n_max;
    /* the paths' nodes, value[2], z[2]; the layers after them */
    total = 2 * BM_DEPTH_MAX * per_node + 4 * n_max;
    d = bm ? malloc(total * sizeof *d + n_max) : NULL;
    if (!d) {
        free(bm);
        return nde_error(ctx, NDE_ENOMEM,
                         "brownian: out of memory for %zu channels", n_max);
    }
    bm->ctx = ctx;
    bm->n_max = n_max;
    bm->data = d;
    for (int s = 0; s < 2; s++)
        for (int l = 0; l < BM_DEPTH_MAX; l++) {
            bm_node *nd = &bm->path[s].node[l];
            nd->w = d;
            nd->inc = d + n_max;
            nd->left = d + 2 * n_max;
            d += per_node;
        }
    bm->value[0] = d;
    bm->value[1] = d + n_max;
    bm->z[0] = d + 2 * n_max;
    bm->z[1] = d + 3 * n_max;
    bm->layer = (uint8_t *)(d + 4 * n_max);
    bm->slot[0].k = bm->slot[1].k = SIZE_MAX;
    bm_zig_tables(bm->zig_x, bm->zig_f);
    bm->bytes = sizeof *bm + total * sizeof *d + n_max;
    *out = bm;
    return NDE_OK;
}

void nde_brownian_destroy(nde_brownian *bm)
{
    if (!bm)
        return;
    free(bm->data);
    free(bm->adata);
    free(bm->rec);
    free(bm->map);
    for (int i = 0; i < 2; i++) {
        free(bm->slot[i].t);
        free(bm->slot[i].row);
        free(bm->slot[i].w);
        free(bm->slot[i].a);
    }
    free(bm);
}

/* The same path numbers, another path (a reset, or a setting changed): forget what
 * was sampled. */
static void bm_restart(nde_brownian *bm)
{
    for (int s = 0; s < 2; s++) {
        bm->path[s].len = 0;
        bm->path[s].has_target = 0;
    }
    bm_split_clear(bm);
}

int nde_brownian_reset(nde_brownian *bm, uint64_t seed, double t0, double t1,
                       double dt, size_t n)
{
    size_t cells;

    bm->ready = 0;
    if (!isfinite(t0) || !isfinite(t1) || !(t0 < t1))
        return nde_error(bm->ctx, NDE_EINVAL,
                         "brownian: need finite t0 < t1 (t0 = %g, t1 = %g)",
                         t0, t1);
    if (!isfinite(dt) || !(dt > 0.0))
        return nde_error(bm->ctx, NDE_EINVAL,
                         "brownian: step dt = %g must be positive", dt);
    if (n == 0 || n > bm->n_max)
        return nde_error(bm->ctx, NDE_EINVAL,
                         "brownian: %zu channels, this instance takes "
                         "1 to %zu", n, bm->n_max);
    if ((t1 - t0) / dt >= ldexp(1.0, BM_TOP_BITS))
        return nde_error(bm->ctx, NDE_EINVAL,
                         "brownian: step dt = %g gives more than 2^%d cells "
                         "on [%g, %g]", dt, BM_TOP_BITS, t0, t1);
    cells = nde_grid_cells(t0, t1, dt);
    bm->seed_key = bm_mix(seed ^ UINT64_C(0x6a09e667f3bcc908));
    bm->t0 = t0;
    bm->t1 = t1;
    bm->dt = dt;
    bm->cells = cells;
    bm->n = n;
    bm_restart(bm);
    bm->queries = 0;
    bm->nodes = 0;
    bm->ready = 1;
    return NDE_OK;
}

static int bm_same(bm_point a, bm_point b)
{
    return a.k == b.k && a.p == b.p;
}

static int bm_same_node(const bm_node *x, const bm_node *y)
{
    return x->i == y->i && x->j == y->j && x->level == y->level &&
           x->a == y->a;
}

/* Whether child ch of pa is its left child. */
static int bm_is_left(const bm_node *pa, const bm_node *ch)
{
    return ch->i == pa->i && ch->a == pa->a;
}

enum { BM_WHOLE, BM_LEFT, BM_RIGHT };

/* Join a tile (node nd, or its left or right child) to the pair (w, A) of
 * length *h: on its right (append) or its left, by the rule of the top
 * comment. */
static void bm_join(const nde_brownian *bm, const bm_node *nd, int part,
                    int append, double *w, double *A, double *h)
{
    double a, b, ht;

    bm_halves(bm, nd, &a, &b);
    ht = part == BM_WHOLE ? a + b : part == BM_LEFT ? a : b;
    for (size_t c = 0; c < bm->n; c++) {
        double tw, ta;
        if (part == BM_WHOLE) {
            tw = nd->inc[c];
            ta = nd->area[c];
        } else if (part == BM_LEFT) {
            tw = nd->left[c];
            ta = nd->aleft[c];
        } else {
            tw = nd->inc[c] - nd->left[c];
            ta = nd->area[c] - nd->aleft[c] -
                 0.5 * (b * nd->left[c] - a * tw);
        }
        if (append)
            A[c] += ta + 0.5 * (ht * w[c] - *h * tw);
        else
            A[c] += ta + 0.5 * (*h * tw - ht * w[c]);
        w[c] += tw;
    }
    *h += ht;
}

/* (w, A) over [pt, end of node d] for path pa walked to pt (a query's
 * lower end): the right siblings of the path below d, bottom up, after
 * what the bottom node holds right of pt. Returns the length. */
static double bm_from(const nde_brownian *bm, const bm_path *pa, int d,
                      double *w, double *A)
{
    int m = pa->len - 1;
    const bm_node *nd = &pa->node[m];
    double h = 0.0;

    memset(w, 0, bm->n * sizeof *w);
    memset(A, 0, bm->n * sizeof *A);
    if (nd->level == 0 && pa->target.p == 0)
        bm_join(bm, nd, BM_WHOLE, 1, w, A, &h);
    else if (!(nd->level == 0 && pa->target.p == BM_POS_END))
        bm_join(bm, nd, BM_RIGHT, 1, w, A, &h);
    for (m--; m >= d; m--)
        if (bm_is_left(&pa->node[m], &pa->node[m + 1]))
            bm_join(bm, &pa->node[m], BM_RIGHT, 1, w, A, &h);
    return h;
}

/* The same over [start of node d, pt] (a query's upper end): the left
 * siblings, bottom up, before what the bottom node holds left of pt. */
static double bm_upto(const nde_brownian *bm, const bm_path *pa, int d,
                      double *w, double *A)
{
    int m = pa->len - 1;
    const bm_node *nd = &pa->node[m];
    double h = 0.0;

    memset(w, 0, bm->n * sizeof *w);
    memset(A, 0, bm->n * sizeof *A);
    if (nd->level == 0 && pa->target.p == BM_POS_END)
        bm_join(bm, nd, BM_WHOLE, 0, w, A, &h);
    else if (!(nd->level == 0 && pa->target.p == 0))
        bm_join(bm, nd, BM_LEFT, 0, w, A, &h);
    for (m--; m >= d; m--)
        if (!bm_is_left(&pa->node[m], &pa->node[m + 1]))
            bm_join(bm, &pa->node[m], BM_LEFT, 0, w, A, &h);
    return h;
}

/* H over [lo, hi] (lo < hi) from path pa walked to lo and pb to hi: below
 * their deepest common node C, lo's side up to C's middle, then hi's side.
 * An end that stops at C is C's start, middle or end. */
static void bm_area(nde_brownian *bm, const bm_path *pa, const bm_path *pb,
                    double *H)
{
    int la = pa->len - 1, lb = pb->len - 1, d = 0, cell;
    double *w = bm->acc[0], *A = bm->acc[1], h;

    while (d < la && d < lb && bm_same_node(&pa->node[d + 1], &pb->node[d + 1]))
        d++;
    cell = pa->node[d].level == 0 && pa->node[d].j - pa->node[d].i == 1;
    if (la == d && cell && pa->target.p == 0) {
        h = bm_upto(bm, pb, d, w, A);
    } else if (lb == d && cell && pb->target.p == BM_POS_END) {
        h = bm_from(bm, pa, d, w, A);
    } else if (la == d) {
        h = bm_upto(bm, pb, d + 1, w, A);
    } else if (lb == d) {
        h = bm_from(bm, pa, d + 1, w, A);
    } else {
        double *w2 = bm->acc[2], *A2 = bm->acc[3];
        double h2 = bm_upto(bm, pb, d + 1, w2, A2);
        h = bm_from(bm, pa, d + 1, w, A);
        for (size_t c = 0; c < bm->n; c++)
            A[c] += A2[c] + 0.5 * (h2 * w[c] - h * w2[c]);
        h += h2;
    }
    for (size_t c = 0; c < bm->n; c++)
        H[c] = A[c] / h;
}

/* dw = W(tb) - W(ta) and, when H is not NULL (the area on), H over the
 * interval. */
int bm_query(nde_brownian *bm, double ta, double tb, double *dw,
             double *H)
{
    bm_point lo, hi;
    double sign = 1.0;
    size_t n = bm->n;
    bm_path *pa, *pb;

    if (!bm->ready)
        return nde_error(bm->ctx, NDE_EINVAL,
                         "brownian: increment before a successful reset");
    if (!(ta >= bm->t0 && ta <= bm->t1 && tb >= bm->t0 && tb <= bm->t1))
        return nde_error(bm->ctx, NDE_EINVAL,
                         "brownian: interval [%.17g, %.17g] not inside "
                         "[%.17g, %.17g]", ta, tb, bm->t0, bm->t1);
    bm->queries++;
    if (tb < ta) {
        double t = ta;
        ta = tb;
        tb = t;
        sign = -1.0;
    }
    if (bm->split && ta < tb) {
        size_t ka = bm_inner_cell(bm, ta), kb = bm_inner_cell(bm, tb);
        if (ka != SIZE_MAX || kb != SIZE_MAX)
            return bm_split_query(bm, ta, ka, tb, kb, sign, dw, H);
    }
    lo = bm_locate(bm, ta);
    hi = bm_locate(bm, tb);
    if (bm_same(lo, hi)) {
        memset(dw, 0, n * sizeof *dw);
        if (H)
            memset(H, 0, n * sizeof *H);
        return NDE_OK;
    }
    if (lo.p == 0 && ((hi.p == 0 && hi.k == lo.k + 1) ||
                      (hi.p == BM_POS_END && hi.k == lo.k))) {
        /* a whole cell: its leaf's increment */
        bm_node *nd = bm_walk(bm, &bm->path[0], lo);
        for (size_t c = 0; c < n; c++)
            dw[c] = sign * nd->inc[c];
        if (H) {
            double h = bm_time(bm, lo.k + 1) - bm_time(bm, lo.k);
            for (size_t c = 0; c < n; c++)
                H[c] = nd->area[c] / h;
        }
        return NDE_OK;
    }
    /* each end on the path that was last walked to it, if any */
    pa = &bm->path[0];
    pb = &bm->path[1];
    if ((pa->has_target && bm_same(pa->target, hi)) ||
        (pb->has_target && bm_same(pb->target, lo))) {
        pa = &bm->path[1];
        pb = &bm->path[0];
    }
    bm_value(bm, pa, lo, bm->value[0]);
    bm_value(bm, pb, hi, bm->value[1]);
    for (size_t c = 0; c < n; c++)
        dw[c] = sign * (bm->value[1][c] - bm->value[0][c]);
    if (H)
        bm_area(bm, pa, pb, H);
    return NDE_OK;
}

int nde_brownian_increment(nde_brownian *bm, double ta, double tb,
                           double *dw)
{
    return bm_query(bm, ta, tb, dw, NULL);
}

int nde_brownian_area(nde_brownian *bm, double ta, double tb, double *dw,
                      double *H)
{
    if (!bm->area)
        return nde_error(bm->ctx, NDE_EINVAL,
                         "brownian: the path has no space-time Levy area "
                         "(nde_brownian_set_area)");
    return bm_query(bm, ta, tb, dw, H);
}

int nde_brownian_set_area(nde_brownian *bm, int on)
{
    on = on != 0;
    if (on && !bm->adata) {
        /* two arrays per node on each path, the six of bm->acc */
        size_t total = (4 * BM_DEPTH_MAX + 6) * bm->n_max;
        double *d = malloc(total * sizeof *d);
        if (!d)
            return nde_error(bm->ctx, NDE_ENOMEM,
                             "brownian: out of memory for the area of %zu "
                             "channels", bm->n_max);
        bm->adata = d;
        for (int s = 0; s < 2; s++)
            for (int l = 0; l < BM_DEPTH_MAX; l++) {
                bm->path[s].node[l].area = d;
                bm->path[s].node[l].aleft = d + bm->n_max;
                d += 2 * bm->n_max;
            }
        for (int k = 0; k < 6; k++)
            bm->acc[k] = d + k * bm->n_max;
        bm->bytes += total * sizeof *d;
    }
    if (on != bm->area) {
        /* the same path numbers, a different path: restart it */
        bm->area = on;
        bm_restart(bm);
    }
    return NDE_OK;
}

int nde_brownian_has_area(const nde_brownian *bm)
{
    return bm->area;
}

int nde_brownian_set_split(nde_brownian *bm, int on)
{
    on = on != 0;
    if (on != bm->split) {
        bm->split = on;
        bm_restart(bm);
    }
    return NDE_OK;
}

int nde_brownian_has_split(const nde_brownian *bm)
{
    return bm->split;
}

size_t nde_brownian_cells(const nde_brownian *bm)
{
    return bm->cells;
}

double nde_brownian_grid_time(const nde_brownian *bm, size_t k)
{
    return bm_time(bm, k);
}

size_t nde_brownian_channels(const nde_brownian *bm)
{
    return bm->n;
}

void nde_brownian_get_stats(const nde_brownian *bm, nde_brownian_stats *st)
{
    st->queries = bm->queries;
    st->nodes = bm->nodes;
    st->bytes = bm->bytes + bm->rec_cap * sizeof *bm->rec +
                bm->map_cap * sizeof *bm->map;
    for (int i = 0; i < 2; i++)
        st->bytes += bm->slot[i].cap * (sizeof(double) + sizeof(size_t) +
                                        2 * bm->n_max * sizeof(double));
}
