/*
 * ab_plot.h - the plots of `nde ab` (PLplot, PNG and SVG).
 *
 * Reads the run directory described in the `nde ab` contract:
 * DIR/runs/ARM/seedN/metrics.jsonl (per-iteration training lines and
 * evaluation lines) and DIR/runs/ARM/seedN/summary.json (the run's
 * prediction numbers), and writes DIR/loss.{png,svg}, DIR/nfe.{png,svg}
 * and DIR/predict.{png,svg}, each complete or not at all.
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

#endif
