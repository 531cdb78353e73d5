/*
 * The step grid of a fixed-step solve: grid points t0 + k dt toward t1
 * (the last cell ends at t1), split by the save times and tstops inside a
 * cell, each snapped to a grid point within NDE_STEP_GRID_SNAP dt. The
 * driver walks it forwards; adjoints walk the same boundaries backwards
 * without a record. Every comparison is made in the direction of
 * integration (dir = +1 or -1), so one grid serves both; multiplying by
 * dir = 1 is exact, so a forward grid's times are those of
 * nde_grid_time, shared with the Brownian Interval bit for bit.
 */
#include <math.h>

#include "nde/nde.h"
#include "rk.h"

int nde_step_grid_init(nde_step_grid *g, double t0, double t1, double dt,
                       const double *tsave, size_t nsave,
                       const double *tstops, size_t ntstops, nde_ctx *ctx)
{
    int rc;

    if (!isfinite(t0) || !isfinite(t1) || t1 == t0)
        return nde_error(ctx, NDE_EINVAL, "fixed-step grid: needs t0 != t1, "
                         "both finite (t0 = %g, t1 = %g)", t0, t1);
    if (!(dt > 0) || !isfinite(dt))
        return nde_error(ctx, NDE_EINVAL, "fixed-step grid: needs a positive "
                         "step dt, got %g", dt);
    /* The Brownian Interval's bound, and far below size_t's range. */
    if (fabs(t1 - t0) / dt >= 0x1p48)
        return nde_error(ctx, NDE_EINVAL, "fixed-step grid: dt = %g gives "
                         "more than 2^48 steps on [%g, %g]", dt, t0, t1);
    if ((rc = nde_check_times(ctx, "save times", tsave, nsave, t0, t1, 1)) ||
        (rc = nde_check_times(ctx, "tstops", tstops, ntstops, t0, t1, 0)))
        return rc;
    g->t0 = t0;
    g->t1 = t1;
    g->dir = t1 > t0 ? 1.0 : -1.0;
    g->dt = dt;
    g->cells = t1 > t0 ? nde_grid_cells(t0, t1, dt)
                       : nde_grid_cells(t1, t0, dt);
    g->tsave = tsave;
    g->nsave = nsave;
    g->tstops = tstops;
    g->ntstops = ntstops;
    return NDE_OK;
}

/* The grid point nearest to s (s between t0 and t1). */
static double nearest_grid_time(const nde_step_grid *g, double s)
{
    double r = g->dir * (s - g->t0) / g->dt + 0.5;
    size_t k = r > 0.0 ? (size_t)r : 0;

    if (k > g->cells)
        k = g->cells;
    /* The last cell may be short: t1 can be nearer than k's time. */
    if (k + 1 <= g->cells &&
        fabs(nde_step_grid_time(g, k + 1) - s) <
            fabs(nde_step_grid_time(g, k) - s))
        k++;
    return nde_step_grid_time(g, k);
}

double nde_step_grid_snap(const nde_step_grid *g, double s)
{
    double gp;

    if (g->dir * (s - g->t0) <= 0)
        return g->t0;
    if (g->dir * (s - g->t1) >= 0)
        return g->t1;
    gp = nearest_grid_time(g, s);
    return fabs(s - gp) <= NDE_STEP_GRID_SNAP * g->dt ? gp : s;
}

/* First index i of ts[0..n) (sorted in the direction of integration)
 * whose snapped time lies beyond t (strict) or at or beyond t (!strict);
 * snapping is monotone, so the snapped times are sorted too. */
static size_t first_snapped(const nde_step_grid *g, const double *ts,
                            size_t n, double t, int strict)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        const double d = g->dir * (nde_step_grid_snap(g, ts[mid]) - t);
        if (strict ? d > 0 : d >= 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

double nde_step_grid_next(const nde_step_grid *g, double t)
{
    const double dir = g->dir;
    double next, c;
    size_t k, i;

    if (dir * (t - g->t1) >= 0)
        return g->t1;
    if (dir * (t - g->t0) < 0)
        return g->t0;
    /* The grid point after t: start from the rounded cell index and fix
     * it up, so that the times are exactly those of grid_time. */
    k = (size_t)(dir * (t - g->t0) / g->dt);
    if (k > g->cells)
        k = g->cells;
    while (k > 0 && dir * (nde_step_grid_time(g, k) - t) > 0)
        k--;
    while (dir * (nde_step_grid_time(g, k) - t) <= 0)
        k++;
    next = nde_step_grid_time(g, k);
    i = first_snapped(g, g->tsave, g->nsave, t, 1);
    if (i < g->nsave &&
        dir * ((c = nde_step_grid_snap(g, g->tsave[i])) - next) < 0)
        next = c;
    i = first_snapped(g, g->tstops, g->ntstops, t, 1);
    if (i < g->ntstops &&
        dir * ((c = nde_step_grid_snap(g, g->tstops[i])) - next) < 0)
        next = c;
    return next;
}

double nde_step_grid_prev(const nde_step_grid *g, double t)
{
    const double dir = g->dir;
    double prev, c;
    size_t k, i;

    if (dir * (t - g->t0) <= 0)
        return g->t0;
    if (dir * (t - g->t1) > 0)
        return g->t1;
    /* The grid point before t (t0 at worst). */
    k = (size_t)(dir * (t - g->t0) / g->dt) + 1;
    if (k > g->cells)
        k = g->cells;
    while (k < g->cells && dir * (nde_step_grid_time(g, k + 1) - t) < 0)
        k++;
    while (dir * (nde_step_grid_time(g, k) - t) >= 0)
        k--;
    prev = nde_step_grid_time(g, k);
    i = first_snapped(g, g->tsave, g->nsave, t, 0);
    if (i > 0 &&
        dir * ((c = nde_step_grid_snap(g, g->tsave[i - 1])) - prev) > 0)
        prev = c;
    i = first_snapped(g, g->tstops, g->ntstops, t, 0);
    if (i > 0 &&
        dir * ((c = nde_step_grid_snap(g, g->tstops[i - 1])) - prev) > 0)
        prev = c;
    return prev;
}
