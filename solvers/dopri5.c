/*
 * Dopri5: the Dormand-Prince 5(4) pair, FSAL, with Shampine's 4th-order
 * dense output.
 *
 * J. R. Dormand, P. J. Prince, "A family of embedded Runge-Kutta formulae",
 * J. Comput. Appl. Math. 6(1):19-26, 1980; coefficients and error weights
 * e = b - bhat as in Hairer's DOPRI5 code (dopri5.f). btilde = bhat - b
 * = -e.
 *
 * Dense output: Hairer's contd5 form (E. Hairer, S. P. Norsett, G. Wanner,
 * Solving ODEs I, 2nd ed., Sec. II.6, with Shampine's coefficients d_i)
 *     y(theta) = r1 + theta (r2 + (1-theta) (r3 + theta (r4 + (1-theta) r5)))
 *     r2 = y1 - y0, r3 = h k1 - r2, r4 = r2 - h k7 - r3, r5 = h sum d_i k_i
 * expanded exactly in rational arithmetic (python3 fractions) into per-stage
 * polynomials b_i(theta) = sum_j r_ij theta^j; b_i(1) = b_i exactly.
 *
 * Stiffness: stages 6 and 7 are both at c = 1; Hairer's DOPRI5 flags
 * |h lambda| > 3.25 as stiff (Solving ODEs II, Sec. IV.2; the `hlamb > 3.25`
 * test of DOPRI5), so 3.25 normalises the estimate.
 */
#include "nde/nde.h"

#define S 7

static const double c[S] = {0.0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1.0, 1.0};

static const double a[S * S] = {
    0, 0, 0, 0, 0, 0, 0,
    1.0 / 5, 0, 0, 0, 0, 0, 0,
    3.0 / 40, 9.0 / 40, 0, 0, 0, 0, 0,
    44.0 / 45, -56.0 / 15, 32.0 / 9, 0, 0, 0, 0,
    19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729, 0, 0, 0,
    9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656,
    0, 0,
    35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0};

static const double b[S] = {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192,
                            -2187.0 / 6784, 11.0 / 84, 0};

static const double btilde[S] = {-71.0 / 57600, 0, 71.0 / 16695, -71.0 / 1920,
                                 17253.0 / 339200, -22.0 / 525, 1.0 / 40};

static const double dense[S * 4] = {
    1.0, -8048581381.0 / 2820520608.0, 8663915743.0 / 2820520608.0,
    -12715105075.0 / 11282082432.0,
    0.0, 0.0, 0.0, 0.0,
    0.0, 131558114200.0 / 32700410799.0, -68118460800.0 / 10900136933.0,
    87487479700.0 / 32700410799.0,
    0.0, -1754552775.0 / 470086768.0, 14199869525.0 / 1410260304.0,
    -10690763975.0 / 1880347072.0,
    0.0, 127303824393.0 / 49829197408.0, -318862633887.0 / 49829197408.0,
    701980252875.0 / 199316789632.0,
    0.0, -282668133.0 / 205662961.0, 2019193451.0 / 616988883.0,
    -1453857185.0 / 822651844.0,
    0.0, 40617522.0 / 29380423.0, -110615467.0 / 29380423.0,
    69997945.0 / 29380423.0};

static const nde_rk_tableau tableau = {
    .stages = S, .c = c, .a = a, .b = b, .btilde = btilde, .fsal = 1,
    .dense_degree = 4, .dense = dense,
    .stiff_stage = 5, .stability_size = 3.25};

static const nde_solver_type dopri5 = {
    .info = NDE_SOLVER_INFO(
        .name = "dopri5",
        .description = "Dormand-Prince 5(4) explicit Runge-Kutta, FSAL, "
                       "4th-order dense output",
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_DENSE | NDE_CAP_STIFFNESS |
                    NDE_CAP_STEP_VJP | NDE_CAP_FSAL,
        .version = "1"),
    .order = 5, .error_order = 4, .dense_order = 4, .tableau = &tableau};

NDE_MODULE(&dopri5.info);
