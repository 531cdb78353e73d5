/* Euler: the explicit Euler method, fixed step, linear dense output. */
#include "nde/nde.h"

static const double c[1] = {0.0};
static const double a[1] = {0.0};
static const double b[1] = {1.0};
static const double dense[1] = {1.0}; /* b_1(theta) = theta */

static const nde_rk_tableau tableau = {
    .stages = 1, .c = c, .a = a, .b = b, .btilde = NULL, .fsal = 0,
    .dense_degree = 1, .dense = dense, .stiff_stage = -1};

static const nde_solver_type euler = {
    .info = NDE_SOLVER_INFO(
        .name = "euler",
        .description = "explicit Euler, fixed step (dt), linear dense output",
        .provides = NDE_CAP_DENSE | NDE_CAP_STEP_VJP,
        .version = "1"),
    .order = 1, .error_order = 0, .dense_order = 1, .tableau = &tableau};

NDE_MODULE(&euler.info);
