/*
 * ab_plot.h - the plots of `nde ab` (PLplot, PNG and SVG).
 *
 * Reads the run directory described in the `nde ab` contract:
 * DIR/runs/ARM/seedN/metrics.jsonl (per-iteration training lines and
 * evaluation lines) and DIR/runs/ARM/seedN/summary.json (the run's
 * prediction numbers), and writes DIR/loss.{png,svg}, DIR/nfe.{png,svg}
 * and DIR/predict.{png,svg}, each complete or not at all; and the flow
 * plot of `nde flow`.
 */
#ifndef NDE_CLI_AB_PLOT_H
#define NDE_CLI_AB_PLOT_H

#include <stddef.h>

/* Plot the runs under dir/runs for the given arms and seeds; writes
 * the PNG and SVG files listed above. Returns 0, or non-zero with a
 * message in err (file and reason). Runs without a metrics file are
 * skipped (reported in the message only if no run is usable).
 * baseline names the arm drawn with a distinct marker (may be NULL).
 * Not thread-safe: PLplot keeps global state. */
int ab_plot(const char *dir, const char *const *arms, size_t narms,
            const long *seeds, size_t nseeds, const char *baseline,
            char *err, size_t errlen);

/* One point of a sweep's frontier: an arm's cost (e.g. prediction NFE)
 * against its quality metric (e.g. test loss) over its seeds. */
typedef struct ab_frontier_point {
    const char *label;       /* drawn beside the point, e.g. the weight */
    double x, xlo, xhi;      /* quality: mean, min and max over seeds   */
    double y, ylo, yhi;      /* cost: the same                          */
    int baseline;            /* a square, not on the sweep's line       */
    int recommended;         /* ringed                                  */
} ab_frontier_point;

/* Write dir/frontier.{png,svg}: the points with their min-max spread as
 * error bars, the non-baseline ones joined in the given order, axes named
 * xname and yname (log where the values span a decade), title the plot's
 * subtitle. Points with a non-finite mean are left out. 0, or non-zero
 * with a message in err. Not thread-safe. */
int ab_plot_frontier(const char *dir, const ab_frontier_point *pts,
                     size_t n, const char *xname, const char *yname,
                     const char *title, char *err, size_t errlen);

/* Paths of a flow: y holds nsave x n x dim states (save-major, as
 * nde_solve saves them); path r is drawn in the plane of states sx, sy,
 * coloured by shade[r] in [0, 1] (blue to orange), its start marked. */
typedef struct ab_flow {
    const double *y;
    size_t nsave, n, dim, sx, sy;
    const double *shade;
    const char *xname, *yname, *title;
} ab_flow;

/* Write dir/base.{png,svg}: the paths of fl. 0, or non-zero with a
 * message in err. Not thread-safe. */
int ab_plot_flow(const char *dir, const char *base, const ab_flow *fl,
                 char *err, size_t errlen);

/* A density on an n x n grid over [-half, half]^2: p[j * n + i] at
 * (x_i, y_j), x_i = -half + 2 half (i + 0.5) / n (likewise y_j). */
typedef struct ab_density {
    const double *p;
    size_t n;
    double half;
    const char *title;
} ab_density;

/* Write dir/base.{png,svg}: the density as an image, white at 0 to dark
 * blue at its largest value. 0, or non-zero with a message in err. Not
 * thread-safe. */
int ab_plot_density(const char *dir, const char *base, const ab_density *d,
                    char *err, size_t errlen);

/* One series of a fit: n times, its observations (NaN: missing) and the
 * model's prediction, dim values each; observations from held_from on
 * were held out from training. */
typedef struct ab_fit_series {
    const char *id;
    size_t n, held_from;
    const double *t, *obs, *pred;
} ab_fit_series;

/* Write dir/base.{png,svg}: one panel per state (named by names, or y0,
 * y1, ...), each series' observations as dots (training) and rings (held
 * out), a dashed line where a series' held-out part begins, and its
 * prediction as a line in its colour (at most 8 series). 0, or non-zero
 * with a message in err. Not thread-safe. */
int ab_plot_fit(const char *dir, const char *base, const ab_fit_series *s,
                size_t nseries, size_t dim, const char *const *names,
                const char *title, char *err, size_t errlen);

#endif
