/*
 * Vern7: Verner's "most efficient" 7(6) pair, with its 6th-order embedded
 * estimate and a 3rd-order (cubic Hermite) dense output.
 *
 * J. H. Verner, "Numerically optimal Runge-Kutta pairs with interpolants",
 * Numer. Algorithms 53(2-3):383-396, 2010, and the tables of his web page
 * (people.math.sfu.ca/~jverner, "RK7(6) efficient" pair). Coefficients
 * (10 stages) are those of OrdinaryDiffEq.jl
 * lib/OrdinaryDiffEqVerner/src/verner_tableaus.jl (Vern7Tableau, exact
 * rationals), rounded to double; its btilde = b - bhat, negated here
 * (nde's btilde = bhat - b).
 *
 * Stage 11 is f(t + h, y_next) (row of a = b): the next step's first
 * stage, so a step costs 10 evaluations as in OrdinaryDiffEq. Verner's
 * 6th-order interpolant needs 6 stages beyond these (his table's stages
 * 11-16, evaluated lazily by OrdinaryDiffEq); the engine has no such
 * stages yet, so dense output is the cubic Hermite interpolant of y,
 * y_next, k_1 = f(y) and k_11 = f(y_next), written as stage weights
 *     b_i(theta) = b_i (3 theta^2 - 2 theta^3)
 *                + [i = 1] (theta - 2 theta^2 + theta^3)
 *                + [i = 11] (theta^3 - theta^2),
 * of order 3 (local error O(h^4)).
 *
 * Stiffness: stage 10 (0-based 9) is at c = 1; stability size 4.64 from
 * OrdinaryDiffEq.jl lib/OrdinaryDiffEqVerner/src/alg_utils.jl.
 * Coefficients printed from the rationals at 80 digits (mpmath), each the
 * double nearest.
 */
#include "nde/nde.h"

#define S 11

static const double c[S] = {
    0,
    0.005,
    0.10888888888888888,
    0.16333333333333333,
    0.4555,
    0.6095094489978381,
    0.884,
    0.925,
    1.0,
    1.0,
    1.0};

static const double a[S * S] = {
    /* row 1 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* row 2 */
    0.005, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* row 3 */
    -1.07679012345679, 1.185679012345679, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* row 4 */
    0.04083333333333333, 0, 0.1225, 0, 0, 0, 0, 0, 0, 0, 0,
    /* row 5 */
    0.6389139236255726, 0, -2.455672638223657, 2.272258714598084, 0, 0, 0,
    0, 0, 0, 0,
    /* row 6 */
    -2.6615773750187572, 0, 10.804513886456137, -8.3539146573962,
    0.820487594956657, 0, 0, 0, 0, 0, 0,
    /* row 7 */
    6.067741434696771, 0, -24.711273635911084, 20.427517930788895,
    -1.9061579788166472, 1.006172249242068, 0, 0, 0, 0, 0,
    /* row 8 */
    12.054670076253203, 0, -49.75478495046899, 41.142888638604674,
    -4.461760149974004, 2.042334822239175, -0.09834843665406108, 0, 0, 0,
    0,
    /* row 9 */
    10.138146522881808, 0, -42.6411360317175, 35.76384003992257,
    -4.3480228403929075, 2.0098622683770357, 0.3487490460338272,
    -0.27143900510483127, 0, 0, 0,
    /* row 10 */
    -45.030072034298676, 0, 187.3272437654589, -154.02882369350186,
    18.56465306347536, -7.141809679295079, 1.3088085781613785, 0, 0, 0, 0,
    /* row 11 */
    0.04715561848627222, 0, 0, 0.25750564298434153, 0.2621665397741262,
    0.15216092656738558, 0.49399691700324844, -0.29430311714032503,
    0.0813174723249511, 0, 0,
};

static const double b[S] = {
    0.04715561848627222,
    0,
    0,
    0.25750564298434153,
    0.2621665397741262,
    0.15216092656738558,
    0.49399691700324844,
    -0.29430311714032503,
    0.0813174723249511,
    0,
    0};

static const double btilde[S] = {
    -0.0025470118799310456,
    0,
    0,
    0.00965839487279575,
    -0.0420647097563969,
    0.0666822437469301,
    -0.26500974646212816,
    0.29430311714032503,
    -0.0813174723249511,
    0.020295184663356284,
    0};

static const double dense[S * 3] = {
    1.0, -1.8585331445411832, 0.9056887630274556,
    0, 0, 0,
    0, 0, 0,
    0, 0.7725169289530246, -0.5150112859686831,
    0, 0.7864996193223787, -0.5243330795482524,
    0, 0.4564827797021567, -0.30432185313477117,
    0, 1.4819907510097452, -0.9879938340064969,
    0, -0.8829093514209752, 0.5886062342806501,
    0, 0.2439524169748533, -0.1626349446499022,
    0, 0, 0,
    0, -1.0, 1.0,
};

static const nde_rk_tableau tableau = {
    .stages = S, .c = c, .a = a, .b = b, .btilde = btilde, .fsal = 1,
    .dense_degree = 3, .dense = dense,
    .stiff_stage = 9, .stability_size = 4.64};

static const nde_solver_type vern7 = {
    .info = NDE_SOLVER_INFO(
        .name = "vern7",
        .description = "Verner 7(6) explicit Runge-Kutta, FSAL, "
                       "3rd-order (Hermite) dense output",
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_DENSE | NDE_CAP_STIFFNESS |
                    NDE_CAP_STEP_VJP | NDE_CAP_FSAL,
        .version = "1"),
    .order = 7, .error_order = 6, .dense_order = 3, .tableau = &tableau};

NDE_MODULE(&vern7.info);
