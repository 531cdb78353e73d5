/*
 * nde/brownian.h - Brownian paths for SDE solvers: a Brownian Interval
 * (Kidger, Foster, Li, Lyons 2021, arXiv 2105.13493, Sec. 4) whose
 * increments are a deterministic function of a seed and the queried times.
 *
 * One path has n independent channels (batch rows x noise channels, laid
 * out as a state: row-major, batch-major). W(ta, tb) = W(tb) - W(ta) is
 * exact for any ta, tb in [t0, t1]: every increment is a Brownian bridge
 * conditioned on the values above it in a binary tree of intervals. The
 * tree's shape does not depend on the order of the queries: its top is a
 * balanced tree over the cells of the grid t0 + k dt (the last cell ends at
 * t1), and a time strictly inside a cell is reached by bisecting the cell
 * (the time is taken to 2^-52 of the cell's width, or to its own
 * precision when that is coarser: nde_brownian_snap). So the backward pass of an adjoint, querying the same
 * intervals in reverse order, gets the forward pass's increments bit for
 * bit, and only the root-to-leaf paths of the last queries are kept: memory
 * is bounded by the tree depth, not the number of steps. Queries of
 * consecutive grid cells cost O(1) amortised. (Split refinement, below,
 * trades the order independence inside cells for O(1) queries anywhere.)
 *
 * Not thread-safe: one instance per solve in flight.
 */
#ifndef NDE_BROWNIAN_H
#define NDE_BROWNIAN_H

#include <stddef.h>
#include <stdint.h>
#include "api.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_brownian nde_brownian;

/* The grid of a fixed step dt > 0 on [t0, t1] (t0 < t1), shared by the
 * Brownian Interval and the fixed-step loop so that their times agree bit
 * for bit: cells = steps of dt needed to reach t1 (a last cell shorter than
 * 1e-9 dt is merged into the one before); grid point k is t0 + k dt for
 * k < cells and t1 for k = cells. */
static inline size_t nde_grid_cells(double t0, double t1, double dt)
{
    double r = (t1 - t0) / dt - 1e-9;
    size_t c = r > 0.0 ? (size_t)r : 0;
    if ((double)c < r)
        c++;
    return c ? c : 1;
}

static inline double nde_grid_time(double t0, double t1, double dt,
                                   size_t cells, size_t k)
{
    return k >= cells ? t1 : t0 + (double)k * dt;
}

/* An instance for paths of up to n_max channels. All memory is allocated
 * here; reset and increment never allocate (split refinement aside:
 * nde_brownian_set_split). */
NDE_API int nde_brownian_create(nde_ctx *ctx, size_t n_max,
                                nde_brownian **out);
NDE_API void nde_brownian_destroy(nde_brownian *bm);

/* Start the path `seed` of n channels on [t0, t1] (t0 < t1) with grid step
 * dt (0 < dt; dt >= t1 - t0 makes one cell). The same (seed, t0, t1, dt, n)
 * gives the same path, bit for bit (with split refinement: for the same
 * queries in the same order). NDE_EINVAL on bad arguments. */
NDE_API int nde_brownian_reset(nde_brownian *bm, uint64_t seed, double t0,
                               double t1, double dt, size_t n);

/* dw[i] = W_i(tb) - W_i(ta) for the n channels; ta, tb in [t0, t1] in
 * either order (tb < ta gives the negative). NDE_EINVAL outside; with
 * split refinement NDE_ENOMEM (dw then undefined, the path unchanged). */
NDE_API int nde_brownian_increment(nde_brownian *bm, double ta, double tb,
                                   double *dw);

/*
 * Space-time Levy area (J. Foster, "Numerical approximation of SDEs with
 * Levy area", DPhil thesis, Oxford 2020; the Brownian Interval of Kidger
 * et al. carries it too). Over [ta, tb] of length h, per channel,
 *     H = (1/h) int_ta^tb (W(r) - W(ta) - (r - ta) dW / h) dr,
 * H ~ N(0, h / 12) independent of dW; so int_ta^tb (W(r) - W(ta)) dr =
 * h (dW / 2 + H), the iterated integral I_(1,0) of order-1.5 SDE
 * schemes. H is exact for the tree's path (every node carries its H, and
 * a split samples its children's (W, H) given the node's), the same in
 * any query order, and additive to round-off by the rule for adjacent
 * pieces of lengths a, b: h H = a H1 + b H2 + (b dW1 - a dW2) / 2.
 *
 * set_area switches it on or off for the paths of this instance (off after
 * create; reset keeps the setting). Off, the paths are bit for bit those
 * of an instance that never had it. On, a split draws two normals per
 * channel instead of one and the path's W differs (the same law): changing
 * the setting restarts the current path, its W included. The first switch
 * on allocates the area's memory (NDE_ENOMEM); nothing else changes.
 * nde_brownian_area is then nde_brownian_increment plus H (n values; tb <
 * ta gives -dw and the same H, which the definition leaves unchanged; dw
 * is the increment query's, bit for bit); off the grid it also combines
 * the nodes below the two ends' common ancestor, O(depth) per channel.
 * NDE_EINVAL without the area. An SDE solve whose solver needs the area
 * switches it on itself (nde/solver.h).
 */
NDE_API int nde_brownian_set_area(nde_brownian *bm, int on);
NDE_API int nde_brownian_has_area(const nde_brownian *bm);
NDE_API int nde_brownian_area(nde_brownian *bm, double ta, double tb,
                              double *dw, double *H);

/*
 * Split refinement, for queries off the grid (an adaptive solve's steps
 * that are not snapped, a backward solve's own steps). Off (after
 * create), a time inside a cell is reached by bisecting the cell (up to
 * 52 levels of n normals each) and the path does not depend on the order
 * of the queries. On, a cell is refined at the query times themselves, as
 * the Brownian Interval of Kidger et al. does: a time the cell does not
 * hold yet becomes its next split, W there drawn from the Brownian bridge
 * between the held times on either side (n normals). The law is exact
 * either way; on, the values inside a cell depend on the order in which
 * its times were first queried (not on other cells' queries), and the
 * same queries in the same order give the same bits, so an adjoint's
 * backward pass over recorded times sees the forward pass's increments.
 * Grid cells' values are the same on or off. Memory grows with the
 * distinct inner times queried since reset (a 16-byte record each and
 * its cell's 16-byte map entry, in arrays that double as they grow, plus
 * the values of the two cells in use, rebuilt when a query returns to
 * another cell): increment may then fail with NDE_ENOMEM. With the area
 * (nde_brownian_set_area) a split draws the new time's (W, A) from their
 * law given the (W, A) of the piece it cuts, as the tree's splits do;
 * nde_brownian_area then combines the pieces a query covers.
 * Changing the setting restarts the current path; reset keeps it.
 * nde_brownian_snap returns its t unchanged when on (every time is
 * cheap).
 */
NDE_API int nde_brownian_set_split(nde_brownian *bm, int on);
NDE_API int nde_brownian_has_split(const nde_brownian *bm);

/*
 * A time within `quantum` (> 0) of t at which the path is cheap to query:
 * a query ending strictly inside a grid cell bisects the cell until it
 * reaches its end's position there, up to 52 times for an arbitrary time,
 * while this time's position is a multiple of w 2^-m (w the cell's width,
 * w 2^-m <= quantum), reached in at most m bisections, or a grid point.
 * t itself when t is not strictly inside (t0, t1), quantum is not
 * positive, or no such time is found. A time t stands for the times
 * within half its ulp of it: a position finer than that is never asked
 * for (when the cell is narrow next to |t|, the position with the fewest
 * bits among them is taken). Adaptive SDE solves end their steps on
 * these times (nde/solve.h).
 */
NDE_API double nde_brownian_snap(const nde_brownian *bm, double t,
                                 double quantum);

/* The path's grid: cells, and the time of grid point k (0..cells; exactly
 * t0 + k * dt for k < cells, t1 for k = cells). A fixed-step solver steps
 * onto these times so that its queries are whole cells. */
NDE_API size_t nde_brownian_cells(const nde_brownian *bm);
NDE_API double nde_brownian_grid_time(const nde_brownian *bm, size_t k);
/* Channels of the current path (the n of the last reset), so a solve can
 * check the path fits its state. */
NDE_API size_t nde_brownian_channels(const nde_brownian *bm);

typedef struct nde_brownian_stats {
    long queries;           /* increment calls since reset              */
    long nodes;             /* tree nodes sampled since reset           */
    size_t bytes;           /* memory held by the instance              */
} nde_brownian_stats;
NDE_API void nde_brownian_get_stats(const nde_brownian *bm,
                                    nde_brownian_stats *st);

#ifdef __cplusplus
}
#endif
#endif
