/*
 * RK4: the classical 4th-order Runge-Kutta method (Kutta 1901), fixed step.
 *
 * Dense output: the standard 3rd-order continuous extension (Hairer,
 * Norsett, Wanner, Solving ODEs I, Sec. II.6):
 *     b1 = theta - 3 theta^2 / 2 + 2 theta^3 / 3,
 *     b2 = b3 = theta^2 - 2 theta^3 / 3,   b4 = -theta^2 / 2 + 2 theta^3 / 3.
 */
#include "nde/nde.h"

#define S 4

static const double c[S] = {0.0, 0.5, 0.5, 1.0};

static const double a[S * S] = {
    0, 0, 0, 0,
    0.5, 0, 0, 0,
    0, 0.5, 0, 0,
    0, 0, 1.0, 0};

static const double b[S] = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6};

static const double dense[S * 3] = {
    1.0, -1.5, 2.0 / 3,
    0.0, 1.0, -2.0 / 3,
    0.0, 1.0, -2.0 / 3,
    0.0, -0.5, 2.0 / 3};

static const nde_rk_tableau tableau = {
    .stages = S, .c = c, .a = a, .b = b, .btilde = NULL, .fsal = 0,
    .dense_degree = 3, .dense = dense, .stiff_stage = -1};

static const nde_solver_type rk4 = {
    .info = NDE_SOLVER_INFO(
        .name = "rk4",
        .description = "classical 4th-order Runge-Kutta, fixed step (dt), "
                       "3rd-order dense output",
        .provides = NDE_CAP_DENSE | NDE_CAP_STEP_VJP,
        .version = "1"),
    .order = 4, .error_order = 0, .dense_order = 3, .tableau = &tableau};

NDE_MODULE(&rk4.info);
