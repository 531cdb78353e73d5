/*
 * BS5: the Bogacki-Shampine 5(4) pair, FSAL, with its two 4th-order error
 * estimates and its 5th-order interpolant.
 *
 * P. Bogacki, L. F. Shampine, "An efficient Runge-Kutta (4,5) pair",
 * Comput. Math. Appl. 32(6):15-28, 1996. Coefficients are the exact
 * rationals of OrdinaryDiffEq.jl lib/OrdinaryDiffEqLowOrderRK/src/
 * low_order_rk_tableaus.jl (BS5ConstantCache, BS5Interp and
 * BS5Interp_polyweights, the last RKSuite's with OrdinaryDiffEq's two
 * corrections r011 = 1, r081 = 0), each rounded to the nearest double;
 * checked in exact arithmetic first: b of order 5, b + btilde and
 * b + btilde2 of order 4, b_i(1) = b_i, the interpolant of order 5.
 *
 * Stage 8 is f(t + h, y_next) (row of a = b), so a step costs 7
 * evaluations. The step's error is the larger of two estimates (as the
 * paper's code and OrdinaryDiffEq's perform_step take it): btilde weighs
 * every stage, stage 8 included; btilde2 only stages 1 and 3-6. Stages
 * 9-11 are only for dense output (extra_stages, evaluated when a step's
 * dense output is first asked for); b_i(theta) = sum_{j=1..6} r_ij theta^j.
 *
 * Stiffness: stage 7 (0-based 6) is at c = 1; 3.9879 is the real-axis
 * stability boundary of the fifth-order weights (|R(-x)| <= 1 on
 * [0, 3.9879], computed from the tableau as for DOPRI5's 3.3066, whose
 * normaliser Hairer rounds to 3.25).
 */
#include "nde/nde.h"

#define S 8
#define E 3

static const double c[S] = {
    0, 0.16666666666666666, 0.2222222222222222, 0.42857142857142855,
    0.6666666666666666, 0.75, 1.0, 1.0};

static const double a[S * S] = {
    /* row 1 */
    0, 0, 0, 0, 0, 0, 0, 0,
    /* row 2 */
    0.16666666666666666, 0, 0, 0, 0, 0, 0, 0,
    /* row 3 */
    0.07407407407407407, 0.14814814814814814, 0, 0, 0, 0, 0, 0,
    /* row 4 */
    0.13338192419825073, -0.47230320699708456, 0.7674927113702624, 0, 0, 0, 0,
    0,
    /* row 5 */
    0.22895622895622897, -0.36363636363636365, 0.2937062937062937,
    0.5076405076405076, 0, 0, 0, 0,
    /* row 6 */
    0.026500355113636364, 0.23011363636363635, 0.10772747760052448,
    0.1602190777972028, 0.225439453125, 0, 0, 0,
    /* row 7 */
    0.18159821692916506, -0.38707982536247293, 0.41288268560074054,
    0.6409913191253497, -1.0121439383514517, 1.1637515420586695, 0, 0,
    /* row 8 */
    0.07279265873015874, 0, 0.28662437773692473, 0.19513621794871794,
    0.008638392857142857, 0.3595655806182122, 0.07724277210884353, 0};

static const double b[S] = {
    0.07279265873015874, 0, 0.28662437773692473, 0.19513621794871794,
    0.008638392857142857, 0.3595655806182122, 0.07724277210884353, 0};

/* bhat - b of the estimate that weighs stage 8 */
static const double btilde[S] = {
    -0.0019478942125547064, 0, 0.009048699186152193, -0.015478743126634073,
    0.021222718253968254, -0.013276905111429694, -0.005480370770138146,
    0.005912495780636172};

/* the second estimate's, stages 1 and 3-6 only */
static const double btilde2[S] = {
    -0.00234375, 0, 0.0103760754048583, -0.016490384615384615, 0.018984375,
    -0.010526315789473684, 0, 0};

static const double c_extra[E] = {
    0.5, 0.8333333333333334, 0.1111111111111111};

static const double a_extra[E * (S + E)] = {
    /* row 9 */
    0.07405598958333333, 0, 0.28964485093442743, 0.12839214966168092,
    -0.003779296875, 0.014230019493177388, -0.03379371279761905, 0.03125, 0, 0,
    0,
    /* row 10 */
    -0.06358724036162344, 0.5742461924818869, -0.06365063007249953,
    0.043159777438314964, 0.8370112883898733, -0.34045447246719235,
    0.04926503818334922, -0.006882677669165967, -0.19577394258960973, 0, 0,
    /* row 11 */
    0.0636090772400987, 0.01057854182854183, 0.06600100945670531,
    0.02048391555358402, 0.003682270330219549, 0.155258632271002,
    -0.08509702513818027, 0.1, -0.1, -0.12340531043086005, 0};

static const double dense[(S + E) * 6] = {
    /* stage 1 */
    1.0, -8.103191118438032, 27.298136302807084, -45.470343197183475,
    36.89579791207878, -11.547607240534195,
    /* stage 2 */
    0, 0, 0, 0, 0, 0,
    /* stage 3 */
    0, -3.4362921012159933, 28.38602193195626, -72.2759709558427,
    74.85879078710211, -27.245925284262768,
    /* stage 4 */
    0, -1.3276772735189397, 13.060399314592578, -35.469854845413806,
    38.240038148817945, -14.307769126529058,
    /* stage 5 */
    0, -0.16393430643430643, 0.8847786781120115, -1.964240395021645,
    1.9817123385873385, -0.7296779223862557,
    /* stage 6 */
    0, 3.9253203306051474, -34.163041154825144, 77.4690381021765,
    -65.9928405785889, 19.121088881250603,
    /* stage 7 */
    0, -1.853826530612245, 16.83892431972789, -42.4062818877551,
    42.17455357142857, -14.676126700680273,
    /* stage 8 */
    0, 2.3125, -21.078125, 53.671875, -54.359375, 19.453125,
    /* stage 9 */
    0, 0, -2.3333333333333335, 23.0, -39.0, 18.333333333333332,
    /* stage 10 */
    0, -3.3528990003856314, 30.106238940962648, -73.55422182095978,
    70.20132282057416, -23.400440940191388,
    /* stage 11 */
    0, 12.0, -59.0, 117.0, -105.0, 35.0};

static const nde_rk_tableau tableau = {
    .stages = S, .c = c, .a = a, .b = b, .btilde = btilde, .fsal = 1,
    .dense_degree = 6, .dense = dense,
    .stiff_stage = 6, .stability_size = 3.9879,
    .extra_stages = E, .c_extra = c_extra, .a_extra = a_extra,
    .btilde2 = btilde2};

static const nde_solver_type bs5 = {
    .info = NDE_SOLVER_INFO(
        .name = "bs5",
        .description = "Bogacki-Shampine 5(4) explicit Runge-Kutta, FSAL, "
                       "two error estimates, 5th-order dense output (3 lazy "
                       "extra stages)",
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_DENSE | NDE_CAP_STIFFNESS |
                    NDE_CAP_STEP_VJP | NDE_CAP_FSAL,
        .version = "1"),
    .order = 5, .error_order = 4, .dense_order = 5, .tableau = &tableau};

NDE_MODULE(&bs5.info);
