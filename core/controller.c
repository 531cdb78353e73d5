/*
 * Step-size controllers (nde/solve.h): PI in OrdinaryDiffEq's form
 * (OrdinaryDiffEq.jl controllers.jl, PIController), and PID in diffrax's
 * (diffrax _step_size_controller/pid.py, PIDController), of which the I
 * controller is the case (0, 1, 0). Kept apart from the driver so that a
 * controller is a table the driver calls, not a name it knows.
 */
#include <math.h>

#include "nde/nde.h"

/* OrdinaryDiffEq's qoldinit: the floor on the remembered error. */
#define ERR_PREV_MIN 1e-4

/* memory[0]: log of the last accepted error (at least ERR_PREV_MIN), so
 * that a step costs one log and one exp. */
static void pi_start(const nde_controller *c, double *memory)
{
    (void)c;
    memory[0] = log(ERR_PREV_MIN);
}

static double pi_accept(const nde_controller *c, double *memory, double eest,
                        double h)
{
    double factor = c->qmax, log_eest = log(ERR_PREV_MIN);

    if (eest > 0.0) {
        log_eest = log(eest);
        factor = c->safety * exp(c->beta2 * memory[0] - c->beta1 * log_eest);
        if (factor < c->qmin)
            factor = c->qmin;
        else if (factor > c->qmax)
            factor = c->qmax;
    }
    memory[0] = eest > ERR_PREV_MIN ? log_eest : log(ERR_PREV_MIN);
    return h * factor;
}

static double pi_reject(const nde_controller *c, const double *memory,
                        double eest, double h)
{
    double factor = c->safety * exp(-c->beta1 * log(eest));

    (void)memory;
    if (!(factor > c->qmin)) /* also when eest is NaN */
        factor = c->qmin;
    return h * factor;
}

const nde_controller_ops nde_controller_pi = {"pi", pi_start, pi_accept,
                                               pi_reject};

/* memory[0], memory[1]: log eps of the last two accepted steps (0 before
 * them: eps = 1). */
static void pid_start(const nde_controller *c, double *memory)
{
    (void)c;
    memory[0] = memory[1] = 0.0;
}

/* safety eps_n^b1 eps_{n-1}^b2 eps_{n-2}^b3 with (p, i, d) given. */
static double pid_factor(const nde_controller *c, const double *memory,
                         double eest, double p, double i, double d)
{
    const double k = c->order;

    if (!(eest > 0.0))
        return eest == 0.0 ? c->qmax : c->qmin; /* NaN: shrink */
    return c->safety * exp(-(p + i + d) / k * log(eest) -
                           (p + 2.0 * d) / k * memory[0] +
                           d / k * memory[1]);
}

static double clamp(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

static double pid_accept_with(const nde_controller *c, double *memory,
                              double eest, double h, double p, double i,
                              double d)
{
    const double factor = pid_factor(c, memory, eest, p, i, d);

    memory[1] = memory[0];
    memory[0] = eest > 0.0 ? -log(eest) : 0.0;
    return h * clamp(factor, 1.0, c->qmax);
}

static double pid_accept(const nde_controller *c, double *memory, double eest,
                         double h)
{
    return pid_accept_with(c, memory, eest, h, c->pcoeff, c->icoeff,
                           c->dcoeff);
}

static double pid_reject(const nde_controller *c, const double *memory,
                         double eest, double h)
{
    return h * clamp(pid_factor(c, memory, eest, c->pcoeff, c->icoeff,
                                c->dcoeff), c->qmin, c->safety);
}

static double i_accept(const nde_controller *c, double *memory, double eest,
                       double h)
{
    return pid_accept_with(c, memory, eest, h, 0.0, 1.0, 0.0);
}

static double i_reject(const nde_controller *c, const double *memory,
                       double eest, double h)
{
    return h * clamp(pid_factor(c, memory, eest, 0.0, 1.0, 0.0), c->qmin,
                     c->safety);
}

const nde_controller_ops nde_controller_pid = {"pid", pid_start, pid_accept,
                                                pid_reject};
const nde_controller_ops nde_controller_i = {"i", pid_start, i_accept,
                                              i_reject};
