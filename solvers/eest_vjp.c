/* The VJP of a step's error norm (eest_vjp.h). */
#include <math.h>

#include "eest_vjp.h"

static double sign(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; }

void eest_vjp(size_t n, double ebar, double rtol, double atol,
              const double *err, const double *y, const double *y_next,
              double *errbar, double *ybar, double *ynbar)
{
    double sum = 0.0, eest, cst;

    for (size_t m = 0; m < n; m++) {
        const double r = err[m] / (atol + rtol * fmax(fabs(y[m]),
                                                       fabs(y_next[m])));
        sum += r * r;
        errbar[m] = 0.0;
    }
    eest = sqrt(sum / (double)n);
    if (!(eest > 0.0))
        return;
    cst = ebar / ((double)n * eest);
    for (size_t m = 0; m < n; m++) {
        const double a = fabs(y[m]), b = fabs(y_next[m]);
        const double sc = atol + rtol * (a >= b ? a : b);
        const double r = err[m] / sc;
        const double scbar = -cst * r * r / sc;
        errbar[m] = cst * r / sc;
        if (a >= b) {
            if (ybar)
                ybar[m] += scbar * rtol * sign(y[m]);
        } else {
            ynbar[m] += scbar * rtol * sign(y_next[m]);
        }
    }
}
