/*
 * The Brownian Interval (nde/brownian.h): distribution of increments,
 * additivity, bit-identical replays in any order, bounded memory and
 * bad input. All with fixed seeds; tolerances are stated where used.
 */
#include <check.h>
#include <float.h>
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "nde/brownian.h"

#define NCH 256

static nde_ctx *ctx;

static void setup(void)
{
    ctx = nde_ctx_create();
    ck_assert_ptr_nonnull(ctx);
}

static void teardown(void)
{
    nde_ctx_destroy(ctx);
}

static nde_brownian *make(size_t n_max)
{
    nde_brownian *bm = NULL;
    ck_assert_int_eq(nde_brownian_create(ctx, n_max, &bm), NDE_OK);
    ck_assert_ptr_nonnull(bm);
    return bm;
}

/* An instance with split refinement on (split != 0) or off; the loop
 * tests run with _i = 0 (off) and 1 (on). */
static nde_brownian *make_mode(size_t n_max, int split)
{
    nde_brownian *bm = make(n_max);
    ck_assert_int_eq(nde_brownian_set_split(bm, split), NDE_OK);
    ck_assert_int_eq(nde_brownian_has_split(bm), split);
    return bm;
}

static void inc(nde_brownian *bm, double ta, double tb, double *dw)
{
    int st = nde_brownian_increment(bm, ta, tb, dw);
    ck_assert_msg(st == NDE_OK, "increment(%g, %g): %s", ta, tb,
                  nde_ctx_message(ctx));
}

/* Standard normal CDF. */
static double phi(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kolmogorov-Smirnov D of x[0..m) (sorted in place) against N(0, 1). */
static double ks_normal(double *x, size_t m)
{
    double d = 0.0;

    qsort(x, m, sizeof *x, cmp_double);
    for (size_t i = 0; i < m; i++) {
        double f = phi(x[i]);
        d = fmax(d, fmax(fabs(f - (double)i / (double)m),
                         fabs((double)(i + 1) / (double)m - f)));
    }
    return d;
}

/*
 * Samples x[q nsamp .. (q + 1) nsamp) of the increments of np disjoint
 * pieces of lengths len[q]: each mean within 5 standard errors of 0, its
 * variance within 5 sigma of the chi-square bounds around len[q], every
 * pair's correlation below 5 / sqrt(nsamp); then every piece
 * standardised in place and all of them pooled: KS at the 0.1 % level.
 */
static void check_pieces(double *x, size_t nsamp, int np, const double *len)
{
    double d;

    for (int q = 0; q < np; q++) {
        const double v = len[q], *xq = x + q * nsamp;
        double mean = 0.0, var = 0.0;
        for (size_t i = 0; i < nsamp; i++)
            mean += xq[i];
        mean /= (double)nsamp;
        for (size_t i = 0; i < nsamp; i++)
            var += (xq[i] - mean) * (xq[i] - mean);
        var /= (double)(nsamp - 1);
        ck_assert_msg(fabs(mean) < 5.0 * sqrt(v / (double)nsamp),
                      "piece %d: mean %g, variance %g", q, mean, v);
        ck_assert_msg(fabs(var / v - 1.0) <
                      5.0 * sqrt(2.0 / (double)(nsamp - 1)),
                      "piece %d: variance %g, expected %g", q, var, v);
        for (int r = q + 1; r < np; r++) {
            const double *xr = x + r * nsamp;
            double sqq = 0.0, srr = 0.0, sqr = 0.0;
            for (size_t i = 0; i < nsamp; i++) {
                sqq += xq[i] * xq[i];
                srr += xr[i] * xr[i];
                sqr += xq[i] * xr[i];
            }
            ck_assert_msg(fabs(sqr / sqrt(sqq * srr)) <
                              5.0 / sqrt((double)nsamp),
                          "pieces %d, %d: correlation %g", q, r,
                          sqr / sqrt(sqq * srr));
        }
    }
    for (int q = 0; q < np; q++)
        for (size_t i = 0; i < nsamp; i++)
            x[q * nsamp + i] /= sqrt(len[q]);
    d = ks_normal(x, (size_t)np * nsamp);
    ck_assert_msg(d < 1.95 / sqrt((double)np * (double)nsamp),
                  "KS D = %g over %zu", d, (size_t)np * nsamp);
}

/*
 * Increments of disjoint intervals (grid cells, off-grid pieces, pieces of
 * one cell) over NSEED seeds x 256 channels = N independent samples each:
 * - mean within 5 standard errors of 0: |mean| < 5 sqrt(v / N);
 * - sample variance s^2 with (N - 1) s^2 / v ~ chi^2(N - 1): within
 *   v (1 +- 5 sqrt(2 / (N - 1))) (5 sigma of the chi-square's normal
 *   approximation, which is accurate at N = 10240);
 * - correlation of every pair of disjoint intervals |r| < 5 / sqrt(N);
 * - the standardised samples pass Kolmogorov-Smirnov against N(0, 1) at
 *   the 0.1 % level (D < 1.95 / sqrt(M), M pooled samples).
 */
#define NSEED 40
#define NINT 9
START_TEST(test_distribution)
{
    /* disjoint intervals on [0, 1] with dt = 0.1: whole cells, a cell
     * split off grid, pieces crossing cells, a tiny piece */
    static const double iv[NINT][2] = {
        {0.0, 0.1}, {0.1, 0.2}, {0.2, 0.2371}, {0.2371, 0.3},
        {0.3, 0.55}, {0.55, 0.55 + 1e-9}, {0.6, 0.7}, {0.7, 0.9},
        {0.9, 1.0},
    };
    const size_t nsamp = (size_t)NSEED * NCH;
    double *x = malloc(NINT * nsamp * sizeof *x), len[NINT];
    double dw[NCH];
    nde_brownian *bm = make_mode(NCH, _i);

    ck_assert_ptr_nonnull(x);
    for (int s = 0; s < NSEED; s++) {
        ck_assert_int_eq(nde_brownian_reset(bm, 1000 + (uint64_t)s, 0.0, 1.0,
                                            0.1, NCH), NDE_OK);
        for (int q = 0; q < NINT; q++) {
            inc(bm, iv[q][0], iv[q][1], dw);
            for (int c = 0; c < NCH; c++)
                x[q * nsamp + (size_t)s * NCH + c] = dw[c];
        }
    }
    for (int q = 0; q < NINT; q++)
        len[q] = iv[q][1] - iv[q][0];
    check_pieces(x, nsamp, NINT, len);
    free(x);
    nde_brownian_destroy(bm);
}
END_TEST

/*
 * The normals themselves: the increment over a one-cell [0, 1] is one
 * N(0, 1) draw per channel; 4096 seeds x 256 channels = 2^20 draws.
 * Kolmogorov-Smirnov at the 0.1 % level (D < 1.95 / sqrt(M)); chi-square
 * over 100 equiprobable bins below 99 + 5 sqrt(2 99) (5 sigma of
 * chi^2(99)); the counts beyond |x| > 3, beyond the ziggurat's base
 * r = 3.6541528853610088 and beyond 4 (in its tail) within 5 binomial
 * standard deviations of M erfc(x / sqrt 2); kurtosis within 5
 * standard errors (sqrt(96 / M)) of 3.
 */
START_TEST(test_normals)
{
    const int nseed = 4096;
    const size_t m = (size_t)nseed * NCH;
    const double cut[3] = {3.0, 3.6541528853610088, 4.0};
    double *x = malloc(m * sizeof *x), dw[NCH];
    nde_brownian *bm = make(NCH);
    long bins[100] = {0}, beyond[3] = {0};
    double m2 = 0.0, m4 = 0.0, d = 0.0, chi2 = 0.0;

    ck_assert_ptr_nonnull(x);
    for (int s = 0; s < nseed; s++) {
        ck_assert_int_eq(nde_brownian_reset(bm, 77 + 1000003 * (uint64_t)s,
                                            0.0, 1.0, 1.0, NCH), NDE_OK);
        ck_assert_uint_eq(nde_brownian_cells(bm), 1);
        inc(bm, 0.0, 1.0, dw);
        memcpy(x + (size_t)s * NCH, dw, sizeof dw);
    }
    for (size_t i = 0; i < m; i++) {
        double f = phi(x[i]);
        int b = (int)(f * 100.0);
        bins[b > 99 ? 99 : b]++;
        for (int k = 0; k < 3; k++)
            beyond[k] += fabs(x[i]) > cut[k];
        m2 += x[i] * x[i];
        m4 += x[i] * x[i] * x[i] * x[i];
    }
    for (int b = 0; b < 100; b++) {
        double e = (double)m / 100.0;
        chi2 += ((double)bins[b] - e) * ((double)bins[b] - e) / e;
    }
    ck_assert_msg(chi2 < 99.0 + 5.0 * sqrt(198.0), "chi-square %g", chi2);
    for (int k = 0; k < 3; k++) {
        double t = cut[k], pt = erfc(t / M_SQRT2);
        double e = (double)m * pt, sd = sqrt((double)m * pt * (1.0 - pt));
        long got = beyond[k];
        ck_assert_msg(fabs((double)got - e) < 5.0 * sd,
                      "beyond %g: %ld, expected %g", t, got, e);
    }
    m2 /= (double)m;
    m4 /= (double)m;
    ck_assert_msg(fabs(m4 / (m2 * m2) - 3.0) < 5.0 * sqrt(96.0 / (double)m),
                  "kurtosis %g", m4 / (m2 * m2));
    d = ks_normal(x, m);
    ck_assert_msg(d < 1.95 / sqrt((double)m), "KS D = %g", d);
    free(x);
    nde_brownian_destroy(bm);
}
END_TEST

/* W(t) itself: increment from t0 (W(t0) = 0 exactly). */
static void wvalue(nde_brownian *bm, double t0, double t, double *w)
{
    inc(bm, t0, t, w);
}

/*
 * The cells sum to the whole interval. Each node's right child is its
 * increment minus its left child's (one rounding), so the leaves of a
 * tree of depth D sum (in long double, no further rounding of note) to
 * the root within D * eps * sum |cell|; the test asserts that bound.
 * Grids: 100 cells, 1000 cells, a short merged last cell, one cell.
 */
START_TEST(test_cells_sum_to_root)
{
    static const double grid[][3] = {
        {0.0, 1.0, 0.01}, {-2.0, 3.0, 0.005}, {0.0, 1.0, 0.3},
        {0.0, 0.9 + 1e-12, 0.1}, {1.0, 2.0, 5.0},
    };
    nde_brownian *bm = make(NCH);
    double dw[NCH], root[NCH];
    long double sum[NCH];
    double sabs[NCH];

    for (size_t g = 0; g < sizeof grid / sizeof *grid; g++) {
        double t0 = grid[g][0], t1 = grid[g][1], dt = grid[g][2];
        ck_assert_int_eq(nde_brownian_reset(bm, 7 + g, t0, t1, dt, NCH),
                         NDE_OK);
        size_t cells = nde_brownian_cells(bm);
        ck_assert_uint_eq(cells, nde_grid_cells(t0, t1, dt));
        ck_assert(nde_brownian_grid_time(bm, 0) == t0);
        ck_assert(nde_brownian_grid_time(bm, cells) == t1);
        int depth = 1;
        while (((size_t)1 << (depth - 1)) < cells)
            depth++;
        for (int c = 0; c < NCH; c++) {
            sum[c] = 0.0L;
            sabs[c] = 0.0;
        }
        for (size_t k = 0; k < cells; k++) {
            inc(bm, nde_brownian_grid_time(bm, k),
                nde_brownian_grid_time(bm, k + 1), dw);
            for (int c = 0; c < NCH; c++) {
                sum[c] += dw[c];
                sabs[c] += fabs(dw[c]);
            }
        }
        inc(bm, t0, t1, root);
        for (int c = 0; c < NCH; c++)
            ck_assert_msg(fabsl(sum[c] - root[c]) <=
                          depth * DBL_EPSILON * sabs[c],
                          "grid %zu channel %d: sum %Lg root %g", g, c,
                          sum[c], root[c]);
    }
    nde_brownian_destroy(bm);
}
END_TEST

/*
 * Off-grid additivity: W(a, c) = W(a, b) + W(b, c) for a < b < c with b
 * interior to a cell, in the same cell as a or c or elsewhere. Both sides
 * are differences of the same point values W(.), so they agree to the
 * rounding of three subtractions: |diff| <= 4 eps max(|W(a)|, |W(b)|,
 * |W(c)|). Also W(a, b) = -W(b, a) exactly.
 */
START_TEST(test_offgrid_additive)
{
    nde_brownian *bm = make_mode(NCH, _i);
    double ab[NCH], bc[NCH], ac[NCH], ba[NCH], wa[NCH], wb[NCH], wc[NCH];
    uint64_t r = 12345;

    ck_assert_int_eq(nde_brownian_reset(bm, 99, 0.0, 1.0, 0.01, NCH), NDE_OK);
    for (int trial = 0; trial < 300; trial++) {
        double t[3];
        for (int i = 0; i < 3; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            t[i] = (double)(r >> 11) * 0x1p-53;
        }
        if (trial % 3 == 1)
            t[1] = t[0] + 1e-3 * (t[1] - 0.5);  /* often the same cell */
        if (trial % 3 == 2)
            t[2] = floor(t[0] * 100.0) / 100.0;  /* a grid point */
        qsort(t, 3, sizeof *t, cmp_double);
        if (!(t[0] < t[1] && t[1] < t[2]))
            continue;
        inc(bm, t[0], t[1], ab);
        inc(bm, t[1], t[2], bc);
        inc(bm, t[0], t[2], ac);
        inc(bm, t[1], t[0], ba);
        wvalue(bm, 0.0, t[0], wa);
        wvalue(bm, 0.0, t[1], wb);
        wvalue(bm, 0.0, t[2], wc);
        for (int c = 0; c < NCH; c++) {
            double m = fmax(fabs(wa[c]), fmax(fabs(wb[c]), fabs(wc[c])));
            ck_assert_msg(fabs(ab[c] + bc[c] - ac[c]) <= 4 * DBL_EPSILON * m,
                          "a %.17g b %.17g c %.17g channel %d: %g", t[0],
                          t[1], t[2], c, ab[c] + bc[c] - ac[c]);
            ck_assert(ba[c] == -ab[c]);
            ck_assert(ab[c] == wb[c] - wa[c]);
        }
    }
    nde_brownian_destroy(bm);
}
END_TEST

/* The interval list of a solve: the 100 cells of [0, 1] and 60 off-grid
 * steps. */
#define NQ 160
static void queries(double *ta, double *tb)
{
    for (int k = 0; k < 100; k++) {
        ta[k] = 0.01 * k;
        tb[k] = k == 99 ? 1.0 : 0.01 * (k + 1);
    }
    for (int k = 0; k < 60; k++) {
        ta[100 + k] = k / 60.0;
        tb[100 + k] = (k + 1) / 60.0;
    }
}

/*
 * Forward sweep, then the reverse sweep, then after many unrelated queries,
 * then after resets to another seed and back, then in a fresh instance with
 * fewer channels: every increment bit for bit the same. Without split
 * refinement the queries after a reset and in the small instance come in
 * reverse order; with it in the first order (its paths depend on the
 * order within a cell).
 */
START_TEST(test_replay_bitwise)
{
    static double ref[NQ][NCH];
    double ta[NQ], tb[NQ], dw[NCH];
    nde_brownian *bm = make_mode(NCH, _i), *small = make_mode(3, _i);
    uint64_t r = 1;

    queries(ta, tb);
    ck_assert_int_eq(nde_brownian_reset(bm, 42, 0.0, 1.0, 0.01, NCH), NDE_OK);
    for (int q = 0; q < NQ; q++)
        inc(bm, ta[q], tb[q], ref[q]);
    for (int q = NQ - 1; q >= 0; q--) {
        inc(bm, ta[q], tb[q], dw);
        ck_assert_msg(memcmp(dw, ref[q], sizeof dw) == 0, "reverse %d", q);
        inc(bm, tb[q], ta[q], dw);      /* reversed ends: the negative */
        for (int c = 0; c < NCH; c++)
            ck_assert(dw[c] == -ref[q][c]);
    }
    for (int i = 0; i < 2000; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        double a = (double)(r >> 11) * 0x1p-53;
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        double b = (double)(r >> 11) * 0x1p-53;
        inc(bm, a, b, dw);
    }
    for (int i = 0; i < NQ; i++) {
        int q = (int)((i * 37) % NQ);   /* a scrambled order */
        inc(bm, ta[q], tb[q], dw);
        ck_assert_msg(memcmp(dw, ref[q], sizeof dw) == 0, "scrambled %d", q);
    }
    ck_assert_int_eq(nde_brownian_reset(bm, 43, 0.0, 1.0, 0.01, NCH), NDE_OK);
    inc(bm, ta[5], tb[5], dw);
    ck_assert_int_eq(nde_brownian_reset(bm, 42, 0.0, 1.0, 0.01, NCH), NDE_OK);
    for (int i = 0; i < NQ; i++) {
        int q = _i ? i : NQ - 1 - i;
        inc(bm, ta[q], tb[q], dw);
        ck_assert_msg(memcmp(dw, ref[q], sizeof dw) == 0, "after reset %d", q);
    }
    /* a channel's path does not depend on how many channels there are */
    ck_assert_int_eq(nde_brownian_reset(small, 42, 0.0, 1.0, 0.01, 3), NDE_OK);
    for (int i = 0; i < NQ; i++) {
        int q = _i ? i : NQ - 1 - i;
        inc(small, ta[q], tb[q], dw);
        ck_assert(memcmp(dw, ref[q], 3 * sizeof *dw) == 0);
    }
    nde_brownian_destroy(small);
    nde_brownian_destroy(bm);
}
END_TEST

/* Another seed gives another path: no channel's cell increment repeats. */
START_TEST(test_seeds_differ)
{
    nde_brownian *bm = make(NCH);
    double a[NCH], b[NCH];

    for (uint64_t s = 0; s < 5; s++) {
        ck_assert_int_eq(nde_brownian_reset(bm, s, 0.0, 1.0, 0.01, NCH),
                         NDE_OK);
        inc(bm, 0.37, 0.38, a);
        ck_assert_int_eq(nde_brownian_reset(bm, s + 1, 0.0, 1.0, 0.01, NCH),
                         NDE_OK);
        inc(bm, 0.37, 0.38, b);
        for (int c = 0; c < NCH; c++)
            ck_assert(a[c] != b[c]);
        for (int c = 1; c < NCH; c++)
            ck_assert(a[c] != a[c - 1]);
    }
    nde_brownian_destroy(bm);
}
END_TEST

/*
 * 10^5 cells swept forwards and backwards: the instance's bytes do not
 * change, the heap does not grow (mallinfo2, tcache off in meson.build),
 * and the nodes sampled per query stay below 3 on average (a balanced
 * tree over C cells has 2C - 1 nodes, each sampled once per sweep).
 */
START_TEST(test_memory_bounded)
{
    const size_t n = 4;
    nde_brownian *bm = make(n);
    nde_brownian_stats st0, st;
    double dw[4];
    size_t heap0;

    nde_brownian_get_stats(bm, &st0);
    ck_assert_int_eq(nde_brownian_reset(bm, 5, 0.0, 1.0, 1e-5, n), NDE_OK);
    size_t cells = nde_brownian_cells(bm);
    ck_assert_uint_eq(cells, 100000);
    heap0 = mallinfo2().uordblks;
    for (size_t k = 0; k < cells; k++)
        inc(bm, nde_brownian_grid_time(bm, k),
            nde_brownian_grid_time(bm, k + 1), dw);
    nde_brownian_get_stats(bm, &st);
    ck_assert_int_eq(st.queries, (long)cells);
    ck_assert_uint_eq(st.bytes, st0.bytes);
    ck_assert_msg((double)st.nodes / (double)st.queries < 3.0,
                  "forward: %ld nodes for %ld queries", st.nodes, st.queries);
    for (size_t k = cells; k-- > 0;)
        inc(bm, nde_brownian_grid_time(bm, k),
            nde_brownian_grid_time(bm, k + 1), dw);
    nde_brownian_get_stats(bm, &st);
    ck_assert_uint_eq(st.bytes, st0.bytes);
    ck_assert_msg((double)st.nodes / (double)st.queries < 3.0,
                  "both sweeps: %ld nodes for %ld queries", st.nodes,
                  st.queries);
    ck_assert_uint_eq(mallinfo2().uordblks, heap0);
    nde_brownian_destroy(bm);
}
END_TEST

/* Nodes sampled by the query [g, t] on a fresh path (g a grid point). */
static long nodes_to(nde_brownian *bm, double t0, double t1, double dt,
                     double g, double t)
{
    nde_brownian_stats st;
    double dw[4];
    ck_assert_int_eq(nde_brownian_reset(bm, 8, t0, t1, dt, 4), NDE_OK);
    inc(bm, g, t, dw);
    nde_brownian_get_stats(bm, &st);
    return st.nodes;
}

/* nde_brownian_snap: a time within the quantum whose query samples at
 * most log2(width / quantum) nodes in its cell besides the root and the
 * top tree's (up to 13 over 100 cells), where the time it snaps costs 40
 * or more (about one node per bit of its position); itself at the ends
 * and for a quantum <= 0. On one cell and on 100 (where times far from 0
 * are coarser than 2^-52 of a cell). */
START_TEST(test_snap)
{
    static const double dts[] = {1.0, 0.01};
    static const double quanta[] = {1e-2, 1e-3, 1e-6};
    nde_brownian *bm = make(4);
    uint64_t r = 777;

    for (int d = 0; d < 2; d++)
        for (int q = 0; q < 3; q++)
            for (int trial = 0; trial < 100; trial++) {
                const double dt = dts[d], quantum = quanta[q];
                const int top = d == 0 ? 0 : 13;
                double t, s, g, bisect;
                r = r * 6364136223846793005ULL + 1442695040888963407ULL;
                t = 0.02 + 0.96 * (double)(r >> 11) * 0x1p-53;
                g = floor(t / dt) * dt;
                ck_assert_int_eq(nde_brownian_reset(bm, 8, 0.0, 1.0, dt, 4),
                                 NDE_OK);
                s = nde_brownian_snap(bm, t, quantum);
                ck_assert_msg(fabs(s - t) <= quantum, "%.17g -> %.17g", t,
                              s);
                bisect = ceil(log2(fmin(dt, 1.0) / quantum));
                if (s > g && s < g + dt)
                    ck_assert_msg(nodes_to(bm, 0.0, 1.0, dt, g, s) <=
                                      (long)bisect + top + 3,
                                  "dt %g quantum %g: %.17g -> %.17g costs "
                                  "%ld nodes", dt, quantum, t, s,
                                  nodes_to(bm, 0.0, 1.0, dt, g, s));
                if (t > g && t < g + dt && s != t)
                    ck_assert_int_ge(nodes_to(bm, 0.0, 1.0, dt, g, t), 40);
            }
    ck_assert_int_eq(nde_brownian_reset(bm, 8, 0.0, 1.0, 0.01, 4), NDE_OK);
    ck_assert(nde_brownian_snap(bm, 0.0, 0.1) == 0.0);
    ck_assert(nde_brownian_snap(bm, 1.0, 0.1) == 1.0);
    ck_assert(nde_brownian_snap(bm, 0.123456789, 0.0) == 0.123456789);
    ck_assert(nde_brownian_snap(bm, 0.123456789, -1.0) == 0.123456789);
    nde_brownian_destroy(bm);
}
END_TEST

/* A time far from 0 in a narrow cell is taken to its own precision: each
 * of 64 consecutive doubles near 0.73 (cells of 0.01: an ulp of 0.73 is
 * about 50 units of 2^-52 of a cell) has a point of its own, so the
 * increments between them are non-zero and add up. */
START_TEST(test_position_precision)
{
    nde_brownian *bm = make(NCH);
    double t[65], dw[NCH], sum[NCH], all[NCH], m = 0.0;

    ck_assert_int_eq(nde_brownian_reset(bm, 4, 0.0, 1.0, 0.01, NCH), NDE_OK);
    t[0] = 0.73;
    for (int i = 1; i <= 64; i++)
        t[i] = nextafter(t[i - 1], 1.0);
    memset(sum, 0, sizeof sum);
    for (int i = 0; i < 64; i++) {
        int nonzero = 0;
        inc(bm, t[i], t[i + 1], dw);
        for (int c = 0; c < NCH; c++) {
            nonzero |= dw[c] != 0.0;
            sum[c] += dw[c];
            m = fmax(m, fabs(dw[c]));
        }
        ck_assert_msg(nonzero, "[%.17g, %.17g]: no increment", t[i],
                      t[i + 1]);
    }
    inc(bm, t[0], t[64], all);
    for (int c = 0; c < NCH; c++)
        ck_assert_msg(fabs(sum[c] - all[c]) <= 64 * 4 * DBL_EPSILON,
                      "channel %d: %g", c, sum[c] - all[c]);
    (void)m;
    nde_brownian_destroy(bm);
}
END_TEST

static void expect_einval(int st)
{
    ck_assert_int_eq(st, NDE_EINVAL);
    ck_assert(strlen(nde_ctx_message(ctx)) > 0);
    ck_assert(strstr(nde_ctx_message(ctx), "brownian") != NULL);
    nde_ctx_clear(ctx);
}

START_TEST(test_bad_input)
{
    nde_brownian *bm = NULL;
    double dw[4];

    expect_einval(nde_brownian_create(ctx, 0, &bm));
    ck_assert_ptr_null(bm);
    bm = make(4);
    expect_einval(nde_brownian_increment(bm, 0.0, 0.5, dw));  /* no reset */
    expect_einval(nde_brownian_reset(bm, 1, 1.0, 1.0, 0.1, 4));
    expect_einval(nde_brownian_reset(bm, 1, 1.0, 0.0, 0.1, 4));
    expect_einval(nde_brownian_reset(bm, 1, 0.0, NAN, 0.1, 4));
    expect_einval(nde_brownian_reset(bm, 1, 0.0, 1.0, 0.0, 4));
    expect_einval(nde_brownian_reset(bm, 1, 0.0, 1.0, -0.1, 4));
    expect_einval(nde_brownian_reset(bm, 1, 0.0, 1.0, NAN, 4));
    expect_einval(nde_brownian_reset(bm, 1, 0.0, 1.0, 0.1, 5));
    expect_einval(nde_brownian_reset(bm, 1, 0.0, 1.0, 0.1, 0));
    expect_einval(nde_brownian_reset(bm, 1, 0.0, 1.0, 1e-300, 4));
    ck_assert_int_eq(nde_brownian_reset(bm, 1, 0.0, 1.0, 0.1, 4), NDE_OK);
    expect_einval(nde_brownian_increment(bm, -0.1, 0.5, dw));
    expect_einval(nde_brownian_increment(bm, 0.5, 1.0 + 1e-12, dw));
    expect_einval(nde_brownian_increment(bm, NAN, 0.5, dw));
    inc(bm, 0.0, 1.0, dw);
    inc(bm, 0.5, 0.5, dw);
    for (int c = 0; c < 4; c++)
        ck_assert(dw[c] == 0.0);
    nde_brownian_destroy(bm);
    nde_brownian_destroy(NULL);
}
END_TEST

/* ---- space-time Levy area ---------------------------------------------- */

static nde_brownian *make_area(size_t n_max)
{
    nde_brownian *bm = make(n_max);
    ck_assert_int_eq(nde_brownian_set_area(bm, 1), NDE_OK);
    ck_assert(nde_brownian_has_area(bm));
    return bm;
}

/* The same with split refinement on (split != 0) or off: the loop tests'
 * _i. */
static nde_brownian *make_area_mode(size_t n_max, int split)
{
    nde_brownian *bm = make_area(n_max);
    ck_assert_int_eq(nde_brownian_set_split(bm, split), NDE_OK);
    ck_assert(nde_brownian_has_area(bm));
    return bm;
}

static void area(nde_brownian *bm, double ta, double tb, double *dw,
                 double *H)
{
    int st = nde_brownian_area(bm, ta, tb, dw, H);
    ck_assert_msg(st == NDE_OK, "area(%g, %g): %s", ta, tb,
                  nde_ctx_message(ctx));
}

static double lcg01(uint64_t *r)
{
    *r = *r * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*r >> 11) * 0x1p-53;
}

/*
 * Additivity: for s < t < u, with a = t - s, b = u - t, h = u - s,
 *     h H(s, u) = a H(s, t) + b H(t, u) + (b W(s, t) - a W(t, u)) / 2
 * to round-off (the pieces are tiled from the same nodes by the same rule,
 * so only roundings and the times' rounding to 2^-52 of a cell differ):
 * within 256 eps of the sum of the terms' magnitudes plus 8 eps (|t| + 1)
 * (|W(s, t)| + |W(t, u)|). The points: uniform, grid points (top-level
 * splits), inside one cell (in-cell splits) and a whole cell split inside,
 * on a grid whose last cell is short and on one of 3 cells. dw equals the
 * increment query's bit for bit.
 */
START_TEST(test_area_additive)
{
    static const double grid[][3] = {
        {-0.3, 1.7, 0.07}, {0.0, 1.0, 0.4}, {2.0, 2.5, 1.0},
    };
    nde_brownian *bm = make_area_mode(NCH, _i);
    double w1[NCH], w2[NCH], w[NCH], h1[NCH], h2[NCH], hh[NCH], dw[NCH];
    uint64_t r = 2024;

    for (size_t g = 0; g < sizeof grid / sizeof *grid; g++) {
        double t0 = grid[g][0], t1 = grid[g][1], dt = grid[g][2];
        ck_assert_int_eq(nde_brownian_reset(bm, 3 + g, t0, t1, dt, NCH),
                         NDE_OK);
        size_t cells = nde_brownian_cells(bm);
        for (int trial = 0; trial < 400; trial++) {
            double t[3];
            for (int i = 0; i < 3; i++)
                t[i] = t0 + (t1 - t0) * lcg01(&r);
            if (trial % 4 == 1) {           /* grid points */
                for (int i = 0; i < 3; i++)
                    t[i] = nde_brownian_grid_time(
                        bm, (size_t)(lcg01(&r) * (double)(cells + 1)));
            } else if (trial % 4 == 2) {    /* one cell */
                size_t k = (size_t)(lcg01(&r) * (double)cells);
                double g0 = nde_brownian_grid_time(bm, k);
                double g1 = nde_brownian_grid_time(bm, k + 1);
                for (int i = 0; i < 3; i++)
                    t[i] = g0 + (g1 - g0) * lcg01(&r);
                if (trial % 8 == 2) {       /* the whole cell, split */
                    t[0] = g0;
                    t[2] = g1;
                }
            }
            qsort(t, 3, sizeof *t, cmp_double);
            if (!(t[0] < t[1] && t[1] < t[2]))
                continue;
            area(bm, t[0], t[1], w1, h1);
            area(bm, t[1], t[2], w2, h2);
            area(bm, t[0], t[2], w, hh);
            inc(bm, t[0], t[2], dw);
            double a = t[1] - t[0], b = t[2] - t[1], h = t[2] - t[0];
            for (int c = 0; c < NCH; c++) {
                double rhs = a * h1[c] + b * h2[c] +
                             0.5 * (b * w1[c] - a * w2[c]);
                double mag = fabs(h * hh[c]) + fabs(a * h1[c]) +
                             fabs(b * h2[c]) +
                             0.5 * (fabs(b * w1[c]) + fabs(a * w2[c]));
                double tol = 256 * DBL_EPSILON * mag +
                             8 * DBL_EPSILON * (fabs(t[1]) + 1.0) *
                             (fabs(w1[c]) + fabs(w2[c]));
                ck_assert_msg(fabs(h * hh[c] - rhs) <= tol,
                              "grid %zu [%.17g, %.17g, %.17g] channel %d: "
                              "%g vs %g", g, t[0], t[1], t[2], c, h * hh[c],
                              rhs);
                ck_assert(dw[c] == w[c]);
            }
        }
    }
    nde_brownian_destroy(bm);
}
END_TEST

/*
 * The same (dw, H) whatever the order of the queries: forward, backward,
 * scrambled after unrelated queries, reversed ends (-dw, the same H),
 * after another seed, in another instance with 3 channels (with split
 * refinement, _i = 1: in the first order after the reset). Switching the
 * area off gives the paths of an instance that never had it, bit for bit.
 */
START_TEST(test_area_replay)
{
    static double rw[NQ][NCH], rh[NQ][NCH];
    double ta[NQ], tb[NQ], dw[NCH], H[NCH], ref[NCH];
    nde_brownian *bm = make_area_mode(NCH, _i),
                 *small = make_area_mode(3, _i), *plain = make_mode(NCH, _i);
    uint64_t r = 5;

    queries(ta, tb);
    ck_assert_int_eq(nde_brownian_reset(bm, 42, 0.0, 1.0, 0.01, NCH), NDE_OK);
    for (int q = 0; q < NQ; q++)
        area(bm, ta[q], tb[q], rw[q], rh[q]);
    for (int q = NQ - 1; q >= 0; q--) {
        area(bm, ta[q], tb[q], dw, H);
        ck_assert_msg(memcmp(dw, rw[q], sizeof dw) == 0, "reverse %d", q);
        ck_assert_msg(memcmp(H, rh[q], sizeof H) == 0, "reverse H %d", q);
        area(bm, tb[q], ta[q], dw, H);
        for (int c = 0; c < NCH; c++)
            ck_assert(dw[c] == -rw[q][c] && H[c] == rh[q][c]);
    }
    for (int i = 0; i < 500; i++) {
        double a = lcg01(&r), b = lcg01(&r);
        area(bm, a, b, dw, H);
    }
    for (int i = 0; i < NQ; i++) {
        int q = (int)((i * 37) % NQ);
        area(bm, ta[q], tb[q], dw, H);
        ck_assert_msg(memcmp(dw, rw[q], sizeof dw) == 0, "scrambled %d", q);
        ck_assert_msg(memcmp(H, rh[q], sizeof H) == 0, "scrambled H %d", q);
    }
    ck_assert_int_eq(nde_brownian_reset(bm, 43, 0.0, 1.0, 0.01, NCH), NDE_OK);
    area(bm, ta[7], tb[7], dw, H);
    ck_assert_int_eq(nde_brownian_reset(bm, 42, 0.0, 1.0, 0.01, NCH), NDE_OK);
    ck_assert_int_eq(nde_brownian_reset(small, 42, 0.0, 1.0, 0.01, 3), NDE_OK);
    for (int i = 0; i < NQ; i++) {
        const int q = _i ? i : NQ - 1 - i;  /* split: the first order */
        area(bm, ta[q], tb[q], dw, H);
        ck_assert(memcmp(H, rh[q], sizeof H) == 0);
        area(small, ta[q], tb[q], dw, H);
        ck_assert(memcmp(dw, rw[q], 3 * sizeof *dw) == 0);
        ck_assert(memcmp(H, rh[q], 3 * sizeof *H) == 0);
    }
    /* off again: the plain path; on again: the area path */
    ck_assert_int_eq(nde_brownian_set_area(bm, 0), NDE_OK);
    ck_assert_int_eq(nde_brownian_reset(plain, 42, 0.0, 1.0, 0.01, NCH),
                     NDE_OK);
    for (int q = 0; q < NQ; q++) {
        inc(bm, ta[q], tb[q], dw);
        inc(plain, ta[q], tb[q], ref);
        ck_assert(memcmp(dw, ref, sizeof dw) == 0);
    }
    ck_assert_int_eq(nde_brownian_set_area(bm, 1), NDE_OK);
    area(bm, ta[3], tb[3], dw, H);
    ck_assert(memcmp(H, rh[3], sizeof H) == 0);
    nde_brownian_destroy(plain);
    nde_brownian_destroy(small);
    nde_brownian_destroy(bm);
}
END_TEST

/*
 * The law over NSEED seeds x 256 channels (N samples) on intervals of
 * each kind: whole cells, off grid, crossing cells, inside one cell, the
 * whole path. H: mean within 5 standard errors of 0, variance within 5
 * sigma of the chi-square bounds around h / 12 (about +-7 %: a factor 2
 * fails), correlation with its dW and with the next interval's H below
 * 5 / sqrt(N). dW keeps variance h.
 */
#define NAI 6
START_TEST(test_area_law)
{
    static const double iv[NAI][2] = {
        {0.1, 0.2}, {0.2, 0.2371}, {0.3, 0.55}, {0.61, 0.6137},
        {0.7, 1.0}, {0.0, 1.0},
    };
    const int n = NSEED * NCH;
    static double hs[NAI][NSEED * NCH], ws[NAI][NSEED * NCH];
    nde_brownian *bm = make_area_mode(NCH, _i);
    double dw[NCH], H[NCH];

    for (int s = 0; s < NSEED; s++) {
        ck_assert_int_eq(nde_brownian_reset(bm, 1000 + 7919 * (uint64_t)s,
                                            0.0, 1.0, 0.1, NCH), NDE_OK);
        for (int i = 0; i < NAI; i++) {
            area(bm, iv[i][0], iv[i][1], dw, H);
            memcpy(&ws[i][s * NCH], dw, sizeof dw);
            memcpy(&hs[i][s * NCH], H, sizeof H);
        }
    }
    for (int i = 0; i < NAI; i++) {
        double h = iv[i][1] - iv[i][0], v = h / 12.0;
        double mh = 0, sh = 0, sw = 0, shw = 0, shn = 0, sn = 0;
        for (int k = 0; k < n; k++) {
            mh += hs[i][k];
            sh += hs[i][k] * hs[i][k];
            sw += ws[i][k] * ws[i][k];
            shw += hs[i][k] * ws[i][k];
            if (i + 1 < NAI - 1) {
                shn += hs[i][k] * hs[i + 1][k];
                sn += hs[i + 1][k] * hs[i + 1][k];
            }
        }
        mh /= n;
        ck_assert_msg(fabs(mh) < 5 * sqrt(v / n), "[%g, %g] mean H %g",
                      iv[i][0], iv[i][1], mh);
        ck_assert_msg(fabs(sh / n / v - 1.0) < 5 * sqrt(2.0 / (n - 1)),
                      "[%g, %g] var H %g, expected %g", iv[i][0], iv[i][1],
                      sh / n, v);
        ck_assert_msg(fabs(sw / n / h - 1.0) < 5 * sqrt(2.0 / (n - 1)),
                      "[%g, %g] var dW %g, expected %g", iv[i][0], iv[i][1],
                      sw / n, h);
        ck_assert_msg(fabs(shw / sqrt(sh * sw)) < 5 / sqrt(n),
                      "[%g, %g] corr(H, dW) %g", iv[i][0], iv[i][1],
                      shw / sqrt(sh * sw));
        if (i + 1 < NAI - 1)
            ck_assert_msg(fabs(shn / sqrt(sh * sn)) < 5 / sqrt(n),
                          "corr(H%d, H%d) %g", i, i + 1, shn / sqrt(sh * sn));
    }
    nde_brownian_destroy(bm);
}
END_TEST

/*
 * H against the trapezoid sum of W at m points of [s, u]: the sum's error
 * is exactly -(1/h) sum_k (h/m) H_k over the m pieces, so its RMS over the
 * channels is sqrt(h / 12) / m: RMS m / sqrt(h / 12) within [0.75, 1.25]
 * (4 sigma of a 256-sample RMS) at m = 16, 128, 1024. Intervals across
 * cells and inside one.
 */
START_TEST(test_area_riemann)
{
    static const double iv[2][2] = {{0.1234, 0.8765}, {0.3012, 0.3088}};
    static const int ms[3] = {16, 128, 1024};
    nde_brownian *bm = make_area_mode(NCH, _i);
    double W[NCH], H[NCH], w[NCH], wp[NCH], sum[NCH];

    ck_assert_int_eq(nde_brownian_reset(bm, 31, 0.0, 1.0, 0.01, NCH), NDE_OK);
    for (int i = 0; i < 2; i++) {
        double s = iv[i][0], u = iv[i][1], h = u - s;
        area(bm, s, u, W, H);
        for (int j = 0; j < 3; j++) {
            int m = ms[j];
            double e2 = 0.0;
            memset(sum, 0, sizeof sum);
            memset(wp, 0, sizeof wp);
            for (int k = 1; k <= m; k++) {
                inc(bm, s, k == m ? u : s + h * k / m, w);
                for (int c = 0; c < NCH; c++)
                    sum[c] += 0.5 * (wp[c] + w[c]) * (h / m);
                memcpy(wp, w, sizeof w);
            }
            for (int c = 0; c < NCH; c++) {
                double e = sum[c] / h - 0.5 * W[c] - H[c];
                e2 += e * e;
            }
            double ratio = sqrt(e2 / NCH) * m / sqrt(h / 12.0);
            ck_assert_msg(ratio > 0.75 && ratio < 1.25,
                          "[%g, %g] m = %d: RMS error x m / sqrt(h/12) = %g",
                          s, u, m, ratio);
        }
    }
    nde_brownian_destroy(bm);
}
END_TEST

/* The area query without the area; its memory: allocated once, when
 * switched on, and queries do not allocate. */
START_TEST(test_area_bad_input)
{
    nde_brownian *bm = make(4);
    nde_brownian_stats st0, st1, st2;
    double dw[4], H[4];

    ck_assert_int_eq(nde_brownian_reset(bm, 1, 0.0, 1.0, 0.1, 4), NDE_OK);
    ck_assert(!nde_brownian_has_area(bm));
    expect_einval(nde_brownian_area(bm, 0.0, 0.5, dw, H));
    nde_brownian_get_stats(bm, &st0);
    ck_assert_int_eq(nde_brownian_set_area(bm, 1), NDE_OK);
    nde_brownian_get_stats(bm, &st1);
    ck_assert_uint_gt(st1.bytes, st0.bytes);
    expect_einval(nde_brownian_area(bm, 0.0, 1.5, dw, H));
    area(bm, 0.5, 0.5, dw, H);
    for (int c = 0; c < 4; c++)
        ck_assert(dw[c] == 0.0 && H[c] == 0.0);
    ck_assert_int_eq(nde_brownian_set_area(bm, 0), NDE_OK);
    ck_assert_int_eq(nde_brownian_set_area(bm, 1), NDE_OK);
    nde_brownian_get_stats(bm, &st2);
    ck_assert_uint_eq(st2.bytes, st1.bytes);
    {
        size_t heap0 = mallinfo2().uordblks;
        uint64_t r = 9;
        for (int i = 0; i < 2000; i++) {
            double a = lcg01(&r), b = lcg01(&r);
            area(bm, a, b, dw, H);
        }
        ck_assert_uint_eq(mallinfo2().uordblks, heap0);
    }
    nde_brownian_destroy(bm);
}
END_TEST

/* ---- split refinement ------------------------------------------------- */

/*
 * Law of a split path: in one cell [0, 1], W(0, p) queried at points p in
 * a scrambled order (so that later splits fall between earlier ones, not
 * only next to the cell's ends); the increments between the sorted points
 * over NSEED seeds x 256 channels: the mean, variance, pairwise
 * correlation and KS bounds of test_distribution.
 */
#define NSP 7
START_TEST(test_split_law)
{
    static const double pts[NSP] = {0.5, 0.2, 0.8, 0.35, 0.9, 0.36, 0.05};
    double sorted[NSP + 2], w[NSP + 2][NCH], dw[NCH], len[NSP + 1];
    const size_t nsamp = (size_t)NSEED * NCH;
    double *x = malloc((NSP + 1) * nsamp * sizeof *x);
    nde_brownian *bm = make_mode(NCH, 1);

    ck_assert_ptr_nonnull(x);
    sorted[0] = 0.0;
    sorted[NSP + 1] = 1.0;
    memcpy(sorted + 1, pts, sizeof pts);
    qsort(sorted, NSP + 2, sizeof *sorted, cmp_double);
    for (int s = 0; s < NSEED; s++) {
        ck_assert_int_eq(nde_brownian_reset(bm, 500 + (uint64_t)s, 0.0, 1.0,
                                            1.0, NCH), NDE_OK);
        for (int i = 0; i < NSP; i++)
            inc(bm, 0.0, pts[i], dw);
        for (int i = 0; i < NSP + 2; i++)
            inc(bm, 0.0, sorted[i], w[i]);
        for (int q = 0; q <= NSP; q++)
            for (int c = 0; c < NCH; c++)
                x[q * nsamp + (size_t)s * NCH + c] = w[q + 1][c] - w[q][c];
    }
    for (int q = 0; q <= NSP; q++)
        len[q] = sorted[q + 1] - sorted[q];
    check_pieces(x, nsamp, NSP + 1, len);
    free(x);
    nde_brownian_destroy(bm);
}
END_TEST

/*
 * What the split refinement leaves alone: whole grid cells and W at grid
 * points are the tree's, bit for bit, with it on or off; and the order of
 * the queries inside one cell changes that cell only (two instances query
 * cell 3 in opposite orders, then cell 7 alike).
 */
START_TEST(test_split_grid_same)
{
    nde_brownian *tree = make_mode(NCH, 0), *a = make_mode(NCH, 1),
                 *b = make_mode(NCH, 1);
    double x[NCH], y[NCH], z[NCH];
    static const double in3[3] = {0.031, 0.0345, 0.038};

    ck_assert_int_eq(nde_brownian_reset(tree, 7, 0.0, 1.0, 0.01, NCH), NDE_OK);
    ck_assert_int_eq(nde_brownian_reset(a, 7, 0.0, 1.0, 0.01, NCH), NDE_OK);
    ck_assert_int_eq(nde_brownian_reset(b, 7, 0.0, 1.0, 0.01, NCH), NDE_OK);
    inc(a, 0.0123, 0.0567, x);      /* splits in cells 1 and 5 first */
    for (int k = 0; k < 100; k++) {
        double g0 = nde_brownian_grid_time(tree, (size_t)k);
        double g1 = nde_brownian_grid_time(tree, (size_t)k + 1);
        inc(tree, g0, g1, x);
        inc(a, g0, g1, y);
        ck_assert_msg(memcmp(x, y, sizeof x) == 0, "cell %d", k);
        inc(tree, 0.0, g0, x);
        inc(a, 0.0, g0, y);
        ck_assert_msg(memcmp(x, y, sizeof x) == 0, "grid point %d", k);
    }
    for (int i = 0; i < 3; i++) {
        inc(a, 0.0, in3[i], x);
        inc(b, 0.0, in3[2 - i], x);
    }
    inc(a, 0.0, in3[1], x);
    inc(b, 0.0, in3[1], y);
    ck_assert(memcmp(x, y, sizeof x) != 0);     /* cell 3: order matters */
    inc(a, 0.0712, 0.0755, x);
    inc(b, 0.0712, 0.0755, y);
    inc(tree, 0.0712, 0.0755, z);
    ck_assert(memcmp(x, y, sizeof x) == 0);     /* cell 7: it does not */
    ck_assert(memcmp(x, z, sizeof x) != 0);     /* not the tree's bisection */
    nde_brownian_destroy(tree);
    nde_brownian_destroy(a);
    nde_brownian_destroy(b);
}
END_TEST

/*
 * Memory and work of a split path swept as a solve and its adjoint: 10^4
 * cells, 10^4 + 1 off-grid steps forwards, then backwards. The forward
 * sweep samples about 3 nodes a query (one split, the tree's 2 a cell);
 * the reverse adds no split and no byte (it replays each cell's split);
 * the instance's bytes grow by at most 64 a step (a record, its share of
 * the cell map) beyond the two slots.
 */
START_TEST(test_split_memory)
{
    const size_t cells = 10000, nq = cells + 1, n = 4;
    nde_brownian *bm = make_mode(n, 1);
    nde_brownian_stats st0, st1, st2;
    double dw[4];

    nde_brownian_get_stats(bm, &st0);
    ck_assert_int_eq(nde_brownian_reset(bm, 3, 0.0, 1.0, 1.0 / (double)cells,
                                        n), NDE_OK);
    for (size_t k = 0; k < nq; k++)
        inc(bm, (double)k / (double)nq, (double)(k + 1) / (double)nq, dw);
    nde_brownian_get_stats(bm, &st1);
    ck_assert_msg((double)st1.nodes / (double)st1.queries < 3.5,
                  "forward: %ld nodes, %ld queries", st1.nodes, st1.queries);
    ck_assert_msg(st1.bytes <= st0.bytes + 64 * nq + 4096,
                  "%zu bytes after %zu steps (%zu at create)", st1.bytes, nq,
                  st0.bytes);
    for (size_t k = nq; k-- > 0;)
        inc(bm, (double)k / (double)nq, (double)(k + 1) / (double)nq, dw);
    nde_brownian_get_stats(bm, &st2);
    ck_assert_uint_eq(st2.bytes, st1.bytes);
    ck_assert_msg((double)(st2.nodes - st1.nodes) / (double)nq < 4.0,
                  "reverse: %ld nodes for %zu queries", st2.nodes - st1.nodes,
                  nq);
    nde_brownian_destroy(bm);
}
END_TEST

/* Switching the split refinement on or off restarts the path, whose
 * queries then give what a fresh one gives (with the area too); snap
 * leaves a time alone on a split path. */
START_TEST(test_split_switch)
{
    nde_brownian *sp = make_mode(4, 1), *ar = make_area_mode(4, 1);
    double dw[4], ref[4], H[4], Href[4];

    ck_assert_int_eq(nde_brownian_reset(sp, 2, 0.0, 1.0, 0.1, 4), NDE_OK);
    ck_assert_int_eq(nde_brownian_reset(ar, 2, 0.0, 1.0, 0.1, 4), NDE_OK);
    ck_assert(nde_brownian_snap(sp, 0.1234567, 0.01) == 0.1234567);
    inc(sp, 0.2345, 0.13, ref);
    inc(sp, 0.0, 0.24, dw);
    ck_assert_int_eq(nde_brownian_set_split(sp, 0), NDE_OK);
    ck_assert_int_eq(nde_brownian_set_split(sp, 1), NDE_OK);
    inc(sp, 0.2345, 0.13, dw);
    ck_assert(memcmp(dw, ref, sizeof dw) == 0);
    area(ar, 0.2345, 0.13, ref, Href);
    area(ar, 0.0, 0.24, dw, H);
    ck_assert_int_eq(nde_brownian_set_area(ar, 0), NDE_OK);
    ck_assert_int_eq(nde_brownian_set_area(ar, 1), NDE_OK);
    area(ar, 0.2345, 0.13, dw, H);
    ck_assert(memcmp(dw, ref, sizeof dw) == 0);
    ck_assert(memcmp(H, Href, sizeof H) == 0);
    nde_brownian_destroy(sp);
    nde_brownian_destroy(ar);
}
END_TEST

static Suite *brownian_suite(void)
{
    Suite *s = suite_create("brownian");
    TCase *tc = tcase_create("brownian");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_distribution, 0, 2);
    tcase_add_test(tc, test_normals);
    tcase_add_test(tc, test_cells_sum_to_root);
    tcase_add_loop_test(tc, test_offgrid_additive, 0, 2);
    tcase_add_loop_test(tc, test_replay_bitwise, 0, 2);
    tcase_add_test(tc, test_seeds_differ);
    tcase_add_test(tc, test_memory_bounded);
    tcase_add_test(tc, test_snap);
    tcase_add_test(tc, test_position_precision);
    tcase_add_test(tc, test_bad_input);
    tcase_add_loop_test(tc, test_area_additive, 0, 2);
    tcase_add_loop_test(tc, test_area_replay, 0, 2);
    tcase_add_loop_test(tc, test_area_law, 0, 2);
    tcase_add_loop_test(tc, test_area_riemann, 0, 2);
    tcase_add_test(tc, test_area_bad_input);
    tcase_add_test(tc, test_split_law);
    tcase_add_test(tc, test_split_grid_same);
    tcase_add_test(tc, test_split_memory);
    tcase_add_test(tc, test_split_switch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(brownian_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
