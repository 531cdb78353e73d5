/*
 * abstats.c - statistics of A/B comparisons (abstats.h).
 *
 * Welch's t-test (Welch 1947, Biometrika 34:28-35): with sample variances
 * of the means vx = sx^2/nx, vy = sy^2/ny,
 *   t = (mx - my) / sqrt(vx + vy),
 *   df = (vx + vy)^2 / (vx^2/(nx-1) + vy^2/(ny-1))   (Satterthwaite 1946),
 *   p = 2 Q_t(|t|; df).
 *
 * Ratio R = mx/my with Fieller's theorem (Fieller 1954, J. R. Stat. Soc. B
 * 16:175-185) for two independent means: the interval is the set of rho
 * with (mx - rho my)^2 <= q^2 (vx + rho^2 vy), q the 97.5% t quantile,
 * i.e. the roots of
 *   rho^2 (my^2 - q^2 vy) - 2 rho mx my + (mx^2 - q^2 vx) = 0:
 *   rho = (mx my +- q sqrt(my^2 vx + mx^2 vy - q^2 vx vy)) / (my^2 - q^2 vy).
 * The interval is bounded only when my^2 > q^2 vy (the baseline mean is
 * significantly non-zero); otherwise it is reported as NAN. The degrees of
 * freedom are Welch-Satterthwaite's for the variance vx + R^2 vy of
 * mx - R my at the point estimate R.
 */
#include <math.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_statistics_double.h>

#include "abstats.h"

void nde_ab_mean_sd(const double *x, size_t n, double *mean, double *sd)
{
    *mean = n > 0 ? gsl_stats_mean(x, 1, n) : NAN;
    *sd = n > 1 ? gsl_stats_sd_m(x, 1, n, *mean) : NAN;
}

/* Satterthwaite's degrees of freedom of a + b, a and b variances with
 * na - 1 and nb - 1 degrees of freedom. */
static double satterthwaite(double a, size_t na, double b, size_t nb)
{
    return (a + b) * (a + b) /
           (a * a / (double)(na - 1) + b * b / (double)(nb - 1));
}

void nde_ab_compare_means(const double *x, size_t nx, const double *y,
                          size_t ny, nde_ab_compare *out)
{
    double vx, vy, mx, my, R, q, disc, den, s;

    nde_ab_mean_sd(x, nx, &out->mean_x, &out->sd_x);
    nde_ab_mean_sd(y, ny, &out->mean_y, &out->sd_y);
    mx = out->mean_x;
    my = out->mean_y;
    out->ratio = my != 0 ? mx / my : NAN;
    out->ci95[0] = out->ci95[1] = NAN;
    out->t = out->df = out->p_value = NAN;
    if (nx < 2 || ny < 2)
        return;
    vx = out->sd_x * out->sd_x / (double)nx;
    vy = out->sd_y * out->sd_y / (double)ny;
    R = out->ratio;

    if (vx + vy == 0) {
        out->p_value = mx == my ? 1.0 : 0.0;
        out->t = mx == my ? 0.0 : copysign(INFINITY, mx - my);
        out->ci95[0] = out->ci95[1] = R;
        return;
    }
    out->t = (mx - my) / sqrt(vx + vy);
    out->df = satterthwaite(vx, nx, vy, ny);
    out->p_value = 2 * gsl_cdf_tdist_Q(fabs(out->t), out->df);
    if (out->p_value > 1)
        out->p_value = 1;

    if (isnan(R))
        return;
    s = R * R * vy;
    if (vx + s == 0) {
        out->ci95[0] = out->ci95[1] = R;
        return;
    }
    q = gsl_cdf_tdist_Pinv(0.975, satterthwaite(vx, nx, s, ny));
    den = my * my - q * q * vy;
    disc = my * my * vx + mx * mx * vy - q * q * vx * vy;
    if (!(den > 0) || disc < 0)
        return;
    out->ci95[0] = (mx * my - q * sqrt(disc)) / den;
    out->ci95[1] = (mx * my + q * sqrt(disc)) / den;
}

nde_ab_verdict nde_ab_judge(const nde_ab_compare *cost,
                            const nde_ab_compare *quality,
                            int higher_is_better, double alpha)
{
    const double d = quality->mean_x - quality->mean_y;

    if (isnan(cost->mean_x) || isnan(cost->mean_y) ||
        isnan(quality->p_value))
        return NDE_AB_UNTESTED;
    if (!(cost->mean_x < cost->mean_y))
        return NDE_AB_NO_CUT;
    /* worse: on the wrong side of the baseline and significant */
    if (quality->p_value < alpha && (higher_is_better ? d < 0 : d > 0))
        return NDE_AB_WORSE;
    return NDE_AB_QUALIFIES;
}

long nde_ab_recommend(const nde_ab_compare *cost,
                      const nde_ab_compare *quality, size_t n,
                      int higher_is_better, double alpha)
{
    long best = -1;

    for (size_t i = 0; i < n; i++)
        if (nde_ab_judge(&cost[i], &quality[i], higher_is_better, alpha) ==
                NDE_AB_QUALIFIES &&
            (best < 0 || cost[i].mean_x < cost[best].mean_x))
            best = (long)i;
    return best;
}
