/*
 * nde/ab.h - statistics of A/B comparisons (`nde ab`).
 *
 * Two independent samples: an arm's per-seed values x and the baseline's y.
 * The ratio of their means gets a 95% confidence interval by Fieller's
 * theorem and the difference a two-sided Welch t-test; both use
 * Welch-Satterthwaite degrees of freedom (formulas in core/abstats.c).
 * Non-finite values are the caller's to drop; nothing here allocates.
 */
#ifndef NDE_AB_H
#define NDE_AB_H

#include <stddef.h>
#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* NDE_API only while `nde ab` links these from libnde; they move into the
 * program (issue 11). */

/* Mean and sample standard deviation (n - 1 denominator). mean is NAN for
 * n = 0, sd is NAN for n < 2. */
NDE_API void nde_ab_mean_sd(const double *x, size_t n, double *mean,
                            double *sd);

typedef struct nde_ab_compare {
    double mean_x, sd_x, mean_y, sd_y;
    double ratio;      /* mean_x / mean_y; NAN when mean_y = 0          */
    double ci95[2];    /* Fieller interval of the ratio; NAN when it is
                          unbounded (the baseline mean is not
                          significantly non-zero) or n < 2 in a sample   */
    double t, df;      /* Welch's statistic and degrees of freedom      */
    double p_value;    /* two-sided; NAN when n < 2 in a sample         */
} nde_ab_compare;

/* Compare x (nx values) with y (ny values). Zero variance in both: the
 * interval is the ratio itself and p is 1 for equal means, else 0. */
NDE_API void nde_ab_compare_means(const double *x, size_t nx, const double *y,
                                  size_t ny, nde_ab_compare *out);

#ifdef __cplusplus
}
#endif
#endif
