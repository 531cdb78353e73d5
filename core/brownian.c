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
 * common ancestors and costs O(1) amortised.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nde/brownian.h"

/* Cells at most 2^BM_TOP_BITS (top depth <= BM_TOP_BITS); a cell bisected
 * BM_CELL_BITS times. One more level for the root. */
#define BM_TOP_BITS 48
#define BM_CELL_BITS 52
#define BM_DEPTH_MAX (BM_TOP_BITS + BM_CELL_BITS + 1)
#define BM_POS_END ((uint64_t)1 << BM_CELL_BITS)

/* A point of the path: cell k and position p / 2^52 inside it; p = 0 is
 * the grid point k, p = BM_POS_END (only with k = cells - 1) is t1. */
typedef struct bm_point {
    size_t k;
    uint64_t p;
} bm_point;

/* One node on a path. Top nodes (level 0 included: a cell) cover the
 * cells [i, j); cell nodes (level >= 1) are inside cell i (j = i + 1) at
 * positions [a, a + 2^(52 - level)). */
typedef struct bm_node {
    size_t i, j;
    unsigned level;
    uint64_t a;
    int split;          /* left[] holds the left child's increment */
    uint64_t key;       /* the node's stream key for its normals */
    double *w;          /* W at the node's start, n values */
    double *inc;        /* the node's increment */
    double *left;       /* its left child's increment, once split */
} bm_node;

typedef struct bm_path {
    bm_node node[BM_DEPTH_MAX];
    int len;            /* nodes on the path, root first */
    bm_point target;    /* the point it was last walked to */
    int has_target;
} bm_path;

struct nde_brownian {
    nde_ctx *ctx;
    size_t n_max, n;
    int ready;          /* reset done */
    uint64_t seed_key;
    double t0, t1, dt;
    size_t cells;
    bm_path path[2];
    double *value[2];   /* W at the two ends of a general query */
    double zig_x[257], zig_f[257];  /* ziggurat tables */
    double *data;       /* all the path arrays */
    size_t bytes;
    long queries, nodes;
};

/* SplitMix64's output function (Steele, Lea, Flood 2014): a bijective
 * 64-bit mix, used as a counter-based generator. */
static inline uint64_t bm_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

#define BM_GAMMA UINT64_C(0x9e3779b97f4a7c15)

static uint64_t bm_key(uint64_t seed_key, uint64_t a, uint64_t b)
{
    return bm_mix(bm_mix(seed_key ^ bm_mix(a + BM_GAMMA)) ^ b);
}

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

/* out[c] = a x[c] + b xi_c for channels c < n, xi_c the normal of channel
 * c of the stream `key`, drawn from mix(key + (c + 1) gamma): its low 8
 * bits pick the layer, its top 53 a signed uniform. */
static void bm_bridge(const nde_brownian *bm, uint64_t key, size_t n,
                      double a, const double *x, double b, double *out)
{
    const double *zx = bm->zig_x, *zf = bm->zig_f;

    for (size_t c = 0; c < n; c++) {
        uint64_t h = bm_mix(key + (uint64_t)(c + 1) * BM_GAMMA);
        unsigned i = (unsigned)(h & 255);
        double z = ((double)(h >> 11) * 0x1p-52 - 1.0) * zx[i];
        if (__builtin_expect(!(fabs(z) < zx[i + 1]), 0))
            z = bm_normal_slow(zx, zf, h);
        out[c] = a * x[c] + b * z;
    }
}

static double bm_time(const nde_brownian *bm, size_t k)
{
    return nde_grid_time(bm->t0, bm->t1, bm->dt, bm->cells, k);
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

static void bm_split(nde_brownian *bm, bm_node *nd)
{
    double a, b;

    if (nd->split)
        return;
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
    bm->nodes++;
}

/* Walk path pa to point pt: keep the nodes on the way, sample the rest.
 * Returns the node where pt is reached. */
static bm_node *bm_walk(nde_brownian *bm, bm_path *pa, bm_point pt)
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

/* The point of time t in [t0, t1]: its cell, and its position rounded to
 * 2^-52 of the cell's width. */
static bm_point bm_locate(const nde_brownian *bm, double t)
{
    bm_point pt;
    size_t k;
    double g, x;

    if (t >= bm->t1) {
        pt.k = bm->cells - 1;
        pt.p = BM_POS_END;
        return pt;
    }
    x = (t - bm->t0) / bm->dt;
    k = x > 0.0 ? (size_t)x : 0;
    if (k > bm->cells - 1)
        k = bm->cells - 1;
    while (k > 0 && bm_time(bm, k) > t)
        k--;
    while (k + 1 < bm->cells && bm_time(bm, k + 1) <= t)
        k++;
    g = bm_time(bm, k);
    pt.k = k;
    pt.p = 0;
    if (t > g) {
        double r = nearbyint(ldexp((t - g) / (bm_time(bm, k + 1) - g),
                                   BM_CELL_BITS));
        pt.p = r > 0.0 ? (uint64_t)r : 0;
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

/* out = W at point pt, walking path pa. */
static void bm_value(nde_brownian *bm, bm_path *pa, bm_point pt, double *out)
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
    if (n_max > SIZE_MAX / sizeof(double) / (6 * BM_DEPTH_MAX + 2))
        return nde_error(ctx, NDE_EINVAL, "brownian: n_max %zu too large",
                         n_max);
    bm = calloc(1, sizeof *bm);
    per_node = 3 * n_max;
    total = 2 * BM_DEPTH_MAX * per_node + 2 * n_max;
    d = bm ? malloc(total * sizeof *d) : NULL;
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
    bm_zig_tables(bm->zig_x, bm->zig_f);
    bm->bytes = sizeof *bm + total * sizeof *d;
    *out = bm;
    return NDE_OK;
}

void nde_brownian_destroy(nde_brownian *bm)
{
    if (!bm)
        return;
    free(bm->data);
    free(bm);
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
    for (int s = 0; s < 2; s++) {
        bm->path[s].len = 0;
        bm->path[s].has_target = 0;
    }
    bm->queries = 0;
    bm->nodes = 0;
    bm->ready = 1;
    return NDE_OK;
}

static int bm_same(bm_point a, bm_point b)
{
    return a.k == b.k && a.p == b.p;
}

int nde_brownian_increment(nde_brownian *bm, double ta, double tb,
                           double *dw)
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
    lo = bm_locate(bm, ta);
    hi = bm_locate(bm, tb);
    if (bm_same(lo, hi)) {
        memset(dw, 0, n * sizeof *dw);
        return NDE_OK;
    }
    if (lo.p == 0 && ((hi.p == 0 && hi.k == lo.k + 1) ||
                      (hi.p == BM_POS_END && hi.k == lo.k))) {
        /* a whole cell: its leaf's increment */
        bm_node *nd = bm_walk(bm, &bm->path[0], lo);
        for (size_t c = 0; c < n; c++)
            dw[c] = sign * nd->inc[c];
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
    return NDE_OK;
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
    st->bytes = bm->bytes;
}
