/*
 * PI step-size controller, OrdinaryDiffEq's form (methods.md 2.2):
 *     h_new = h * clamp(safety * EEst^-beta1 * EEst_prev^beta2, qmin, qmax)
 * with EEst_prev the error of the last accepted step (at least 1e-4), and
 * after a rejection h_new = h * max(qmin, safety * EEst^-beta1).
 * Kept apart from the solve loop so that another controller (PID) can be
 * added without touching solvers or the loop's bookkeeping.
 */
#include <math.h>

#include "nde/nde.h"
#include "rk.h"

/* OrdinaryDiffEq's qoldinit: the floor on the remembered error. */
#define ERR_PREV_MIN 1e-4

void nde_controller_reset(nde_controller *c)
{
    c->err_prev = ERR_PREV_MIN;
}

double nde_controller_accept(nde_controller *c, double eest, double h)
{
    double factor;

    if (eest == 0.0) {
        factor = c->qmax;
    } else {
        /* One log and one exp instead of two pow calls. */
        factor = c->safety * exp(c->beta2 * log(c->err_prev) -
                                 c->beta1 * log(eest));
        if (factor < c->qmin)
            factor = c->qmin;
        else if (factor > c->qmax)
            factor = c->qmax;
    }
    c->err_prev = eest > ERR_PREV_MIN ? eest : ERR_PREV_MIN;
    return h * factor;
}

double nde_controller_reject(const nde_controller *c, double eest, double h)
{
    double factor = c->safety * exp(-c->beta1 * log(eest));

    if (!(factor > c->qmin)) /* also when eest is NaN */
        factor = c->qmin;
    return h * factor;
}
