/*
 * Vern6: Verner's "most efficient" 6(5) pair, with its 5th-order embedded
 * estimate and his 6th-order interpolant.
 *
 * J. H. Verner, "Numerically optimal Runge-Kutta pairs with interpolants",
 * Numer. Algorithms 53(2-3):383-396, 2010, and the tables of his web page
 * (people.math.sfu.ca/~jverner, "RK6(5) efficient" pair). Coefficients
 * are those of OrdinaryDiffEq.jl lib/OrdinaryDiffEqVerner/src/
 * verner_tableaus.jl (the exact rationals of Vern6Tableau,
 * Vern6ExtraStages and Vern6InterpolationCoefficients), each rounded to
 * the nearest double; its btilde is bhat - b (bhat, commented out there
 * as b1 ... b9, of order 5; b the row of stage 9), nde's sign.
 *
 * Stage 9 is f(t + h, y_next) (row of a = b), the next step's first
 * stage, so a step costs 8 evaluations as in OrdinaryDiffEq; the 5th-order
 * estimate weighs it (btilde[8] = 1/30). Stages 10-12 are only for dense
 * output (extra_stages: evaluated when a step's dense output is first
 * asked for). b_i(theta) = sum_{j=1..6} r_ij theta^j over stages 1-12
 * (stages 2, 3 weigh 0); in exact arithmetic it satisfies the order
 * conditions up to 6, hence dense_order 6.
 *
 * Stiffness: stage 8 (0-based 7) is at c = 1; stability size 4.8553 from
 * OrdinaryDiffEq.jl lib/OrdinaryDiffEqVerner/src/alg_utils.jl.
 */
#include "nde/nde.h"

#define S 9

static const double c[S] = {
    0, 0.06, 0.09593333333333333, 0.1439, 0.4973, 0.9725, 0.9995, 1.0, 1.0};

static const double a[S * S] = {
    /* row 1 */
    0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* row 2 */
    0.06, 0, 0, 0, 0, 0, 0, 0, 0,
    /* row 3 */
    0.019239962962962962, 0.07669337037037037, 0, 0, 0, 0, 0, 0, 0,
    /* row 4 */
    0.035975, 0, 0.107925, 0, 0, 0, 0, 0, 0,
    /* row 5 */
    1.3186834152331484, 0, -5.042058063628562, 4.220674648395414, 0, 0, 0,
    0, 0,
    /* row 6 */
    -41.872591664327516, 0, 159.4325621631375, -122.11921356501003,
    5.531743066200054, 0, 0, 0, 0,
    /* row 7 */
    -54.430156935316504, 0, 207.06725136501848, -158.61081378459,
    6.991816585950242, -0.018597231062203234, 0, 0, 0,
    /* row 8 */
    -54.66374178728198, 0, 207.95280625538936, -159.2889574744995,
    7.018743740796944, -0.018338785905045722, -0.0005119484997882099, 0, 0,
    /* row 9 */
    0.03438957868357036, 0, 0, 0.2582624555633503, 0.4209371189673537,
    4.40539646966931, -176.48311902429865, 172.36413340141507, 0};

static const double b[S] = {
    0.03438957868357036, 0, 0, 0.2582624555633503, 0.4209371189673537,
    4.40539646966931, -176.48311902429865, 172.36413340141507, 0};

/* bhat - b */
static const double btilde[S] = {
    0.008623404282200852, 0, 0, -0.019434029953152708, 0.028450072588037983,
    -2.109711061065291, 103.45854289996399, -101.39980461914911,
    0.03333333333333333};

#define E 3

static const double c_extra[E] = {
    0.5, 0.828, 0.28};

static const double a_extra[E * (S + E)] = {
    /* row 10 */
    0.016524159013572806, 0, 0, 0.3053128187514179, 0.2071200938201979,
    -1.293879140655123, 57.11988411588149, -55.87979207510932,
    0.024830028297766014, 0, 0, 0,
    /* row 11 */
    0.038150081818627744, 0, 0, 0.2502358252513705, 0.3249441447817608,
    1.8224606658327962, -67.7137233269262, 66.03587911808127,
    -0.0363881087495127, 0.106441599909888, 0, 0,
    /* row 12 */
    0.11178168039666012, 0, 0, 0.025757505109345213, 3.785140856363646,
    92.34088993695727, -3819.461508432344, 3732.492711530704,
    -1.0756940209963033, -3.231539970732086, -4.7075390854586345, 0};

static const double dense[(S + E) * 6] = {
    /* stage 1 */
    1.0, -7.778593856495575, 27.0524385722671, -45.780190114576975,
    36.72377741043638, -11.183042432947357,
    /* stage 2 */
    0, 0, 0, 0, 0, 0,
    /* stage 3 */
    0, 0, 0, 0, 0, 0,
    /* stage 4 */
    0, 16.632102138279762, -86.25583404770623, 171.7330546182696,
    -149.67744091315947, 47.826380659879696,
    /* stage 5 */
    0, 27.10835046149758, -140.58676162962996, 279.9044757968917,
    -243.95644583707966, 77.95131832728772,
    /* stage 6 */
    0, 283.70753264670356, -1471.3371557366656, 2929.3928569314394,
    -2553.17199842168, 815.8141610498723,
    /* stage 7 */
    0, -11365.512865164834, 58942.74718938947, -117353.43045697975,
    102281.77209230464, -32682.059078573824,
    /* stage 8 */
    0, 11100.250191051131, -57567.067013355576, 114614.48808378985,
    -99894.591091309, 31919.283963225014,
    /* stage 9 */
    0, -3.0022825150732126, 14.946122435958785, -27.826954732510288,
    21.824672217437076, -5.941557405812358,
    /* stage 10 */
    0, -19.610347376201034, 93.13370014508226, -165.3493635542416,
    129.73901617804057, -37.91300539268019,
    /* stage 11 */
    0, -18.23029074639409, 96.74593449012313, -199.08634973839895,
    180.85605899200485, -60.285352997334954,
    /* stage 12 */
    0, -13.563796638614157, 90.62137973668116, -204.04515601697273,
    190.48135937835858, -63.493786459452856};

static const nde_rk_tableau tableau = {
    .stages = S, .c = c, .a = a, .b = b, .btilde = btilde, .fsal = 1,
    .dense_degree = 6, .dense = dense,
    .stiff_stage = 7, .stability_size = 4.8553,
    .extra_stages = E, .c_extra = c_extra, .a_extra = a_extra};

static const nde_solver_type vern6 = {
    .info = NDE_SOLVER_INFO(
        .name = "vern6",
        .description = "Verner 6(5) explicit Runge-Kutta, FSAL, "
                       "6th-order dense output (3 lazy extra stages)",
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_DENSE | NDE_CAP_STIFFNESS |
                    NDE_CAP_STEP_VJP | NDE_CAP_FSAL,
        .version = "1"),
    .order = 6, .error_order = 5, .dense_order = 6, .tableau = &tableau};

NDE_MODULE(&vern6.info);
