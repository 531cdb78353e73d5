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

void nde_pi_init(nde_pi *pi, const nde_controller *params)
{
    pi->c = *params;
    pi->c.err_prev = ERR_PREV_MIN;
    pi->log_err_prev = log(ERR_PREV_MIN);
}

double nde_pi_accept(nde_pi *pi, double eest, double h)
{
    const nde_controller *c = &pi->c;
    double factor = c->qmax, log_eest = log(ERR_PREV_MIN);

    if (eest > 0.0) {
        log_eest = log(eest);
        factor = c->safety * exp(c->beta2 * pi->log_err_prev -
                                 c->beta1 * log_eest);
        if (factor < c->qmin)
            factor = c->qmin;
        else if (factor > c->qmax)
            factor = c->qmax;
    }
    if (eest > ERR_PREV_MIN) {
        pi->c.err_prev = eest;
        pi->log_err_prev = log_eest;
    } else {
        pi->c.err_prev = ERR_PREV_MIN;
        pi->log_err_prev = log(ERR_PREV_MIN);
    }
    return h * factor;
}

double nde_pi_reject(const nde_pi *pi, double eest, double h)
{
    double factor = pi->c.safety * exp(-pi->c.beta1 * log(eest));

    if (!(factor > pi->c.qmin)) /* also when eest is NaN */
        factor = pi->c.qmin;
    return h * factor;
}
