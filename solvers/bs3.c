/*
 * BS3: the Bogacki-Shampine 3(2) pair, FSAL, with Hermite cubic dense
 * output.
 *
 * P. Bogacki, L. F. Shampine, "A 3(2) pair of Runge-Kutta formulas",
 * Appl. Math. Lett. 2(4):321-325, 1989 (the pair behind MATLAB's ode23).
 * Order conditions of b (order 3) and bhat (order 2) are checked by the
 * solver test suite.
 *
 * Dense output: the cubic Hermite interpolant through (y0, h k1) and
 * (y1, h k4), y1 = y0 + h sum b_i k_i, written per stage:
 *     b_i(theta) = (3 theta^2 - 2 theta^3) b_i
 *                  + [i = 1] (theta - 2 theta^2 + theta^3)
 *                  + [i = 4] (theta^3 - theta^2).
 */
#include "nde/nde.h"

#define S 4

static const double c[S] = {0.0, 1.0 / 2, 3.0 / 4, 1.0};

static const double a[S * S] = {
    0, 0, 0, 0,
    1.0 / 2, 0, 0, 0,
    0, 3.0 / 4, 0, 0,
    2.0 / 9, 1.0 / 3, 4.0 / 9, 0};

static const double b[S] = {2.0 / 9, 1.0 / 3, 4.0 / 9, 0};

/* bhat = (7/24, 1/4, 1/3, 1/8); btilde = bhat - b. */
static const double btilde[S] = {7.0 / 24 - 2.0 / 9, 1.0 / 4 - 1.0 / 3,
                                 1.0 / 3 - 4.0 / 9, 1.0 / 8};

static const double dense[S * 3] = {
    1.0, -2.0 + 3.0 * (2.0 / 9), 1.0 - 2.0 * (2.0 / 9),
    0.0, 3.0 * (1.0 / 3), -2.0 * (1.0 / 3),
    0.0, 3.0 * (4.0 / 9), -2.0 * (4.0 / 9),
    0.0, -1.0, 1.0};

static const nde_rk_tableau tableau = {
    .stages = S, .c = c, .a = a, .b = b, .btilde = btilde, .fsal = 1,
    .dense_degree = 3, .dense = dense, .stiff_stage = -1};

static const nde_solver_type bs3 = {
    .info = NDE_SOLVER_INFO(
        .name = "bs3",
        .description = "Bogacki-Shampine 3(2) explicit Runge-Kutta, FSAL, "
                       "Hermite cubic dense output",
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_DENSE | NDE_CAP_STEP_VJP |
                    NDE_CAP_FSAL,
        .version = "1"),
    .order = 3, .error_order = 2, .dense_order = 3, .tableau = &tableau};

NDE_MODULE(&bs3.info);
