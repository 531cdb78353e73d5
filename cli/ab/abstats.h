/*
 * abstats.h - statistics of A/B comparisons (`nde ab`).
 *
 * Two independent samples: an arm's per-seed values x and the baseline's y.
 * The ratio of their means gets a 95% confidence interval by Fieller's
 * theorem and the difference a two-sided Welch t-test; both use
 * Welch-Satterthwaite degrees of freedom (formulas in cli/ab/abstats.c).
 * Non-finite values are the caller's to drop; nothing here allocates.
 */
#ifndef NDE_CLI_AB_ABSTATS_H
#define NDE_CLI_AB_ABSTATS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Mean and sample standard deviation (n - 1 denominator). mean is NAN for
 * n = 0, sd is NAN for n < 2. */
void nde_ab_mean_sd(const double *x, size_t n, double *mean, double *sd);

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
void nde_ab_compare_means(const double *x, size_t nx, const double *y,
                          size_t ny, nde_ab_compare *out);

/* How a candidate of a sweep stands against the baseline, given its
 * comparisons of a cost (lower is better, e.g. predict_nfe) and of a
 * quality metric (test_loss: lower is better; test_accuracy: higher). */
typedef enum nde_ab_verdict {
    NDE_AB_QUALIFIES,  /* cuts the cost, quality not significantly worse */
    NDE_AB_NO_CUT,     /* mean cost not below the baseline's              */
    NDE_AB_WORSE,      /* quality worse with p < alpha                    */
    NDE_AB_UNTESTED    /* no cost mean or no p-value for the quality
                          (no run, or n < 2 somewhere)                   */
} nde_ab_verdict;

nde_ab_verdict nde_ab_judge(const nde_ab_compare *cost,
                            const nde_ab_compare *quality,
                            int higher_is_better, double alpha);

/* The sweep's recommendation: of the n candidates, the one that
 * qualifies (nde_ab_judge) with the lowest mean cost, i.e. the largest
 * cut (the first of equals); -1 when none qualifies. */
long nde_ab_recommend(const nde_ab_compare *cost,
                      const nde_ab_compare *quality, size_t n,
                      int higher_is_better, double alpha);

#ifdef __cplusplus
}
#endif
#endif
