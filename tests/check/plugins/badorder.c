/*
 * badorder - a deliberately wrong solver for `nde check`: the explicit
 * Euler tableau declaring order 2; `nde check solver badorder` must exit 1
 * on the observed order.
 */
#include <nde/nde.h>

static const double c[1] = {0.0}, a[1] = {0.0}, b[1] = {1.0};
static const double dense[1] = {1.0};

static const nde_rk_tableau tableau = {
    .stages = 1, .c = c, .a = a, .b = b, .btilde = NULL, .fsal = 0,
    .dense_degree = 1, .dense = dense, .stiff_stage = -1,
    .stability_size = 1.0};

static const nde_solver_type badorder = {
    .info = NDE_SOLVER_INFO(
        .name = "badorder",
        .description = "explicit Euler declaring order 2 (test of nde check)",
        .provides = NDE_CAP_DENSE | NDE_CAP_STEP_VJP,
        .version = "1"),
    .order = 2, .error_order = 0, .dense_order = 1, .tableau = &tableau};

NDE_MODULE(&badorder.info);
