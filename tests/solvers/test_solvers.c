/*
 * Solver conformance suite: every solver plugin found by nde_plugin_foreach
 * runs the tableau, convergence, dense output, error estimate, stiffness,
 * step VJP and determinism checks, so a new solver is tested by existing;
 * tableaus that break their declared orders are refused at load. The
 * solve driver's own tests are tests/core/test_solve.c.
 *
 * The vector fields are tests/ode_fields.h (no dependency on field
 * plugins). Measured orders are printed to stderr for the record.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

#include "../ode_fields.h"


/* Room for every shipped tableau (Vern9's 17 stages). */
#define NSTAGES 17

/* A solver type whose propagated weights are bhat = b + btilde (no FSAL,
 * no extras): integrating with it measures the embedded method's order. */
typedef struct embedded_type {
    nde_solver_type type;
    nde_rk_tableau tab;
    double bhat[NSTAGES], a[NSTAGES * NSTAGES];
} embedded_type;

static void make_embedded(const nde_solver_type *st, embedded_type *e)
{
    const nde_rk_tableau *t = st->tableau;
    const int s = t->stages;
    memset(e, 0, sizeof *e);
    for (int i = 0; i < s; i++)
        e->bhat[i] = t->b[i] + t->btilde[i];
    memcpy(e->a, t->a, (size_t)s * s * sizeof(double));
    e->tab.stages = s;
    e->tab.c = t->c;
    e->tab.a = e->a;
    e->tab.b = e->bhat;
    e->tab.stiff_stage = -1;
    e->type.info = st->info;
    e->type.info.provides = NDE_CAP_STEP_VJP;
    e->type.order = st->error_order;
    e->type.tableau = &e->tab;
}

/* A modifiable copy of a tableau solver, for the load-time checks. */
typedef struct tableau_copy {
    nde_solver_type type;
    nde_rk_tableau tab;
    double c[NSTAGES], a[NSTAGES * NSTAGES], b[NSTAGES], btilde[NSTAGES];
    double btilde2[NSTAGES], dense[NSTAGES * 8];
} tableau_copy;

static void copy_tableau(const nde_solver_type *st, tableau_copy *e)
{
    const nde_rk_tableau *t = st->tableau;
    const int s = t->stages;

    memset(e, 0, sizeof *e);
    e->type = *st;
    e->tab = *t;
    memcpy(e->c, t->c, (size_t)s * sizeof(double));
    memcpy(e->a, t->a, (size_t)s * s * sizeof(double));
    memcpy(e->b, t->b, (size_t)s * sizeof(double));
    if (t->btilde)
        memcpy(e->btilde, t->btilde, (size_t)s * sizeof(double));
    if (t->btilde2)
        memcpy(e->btilde2, t->btilde2, (size_t)s * sizeof(double));
    if (t->dense_degree)
        memcpy(e->dense, t->dense, (size_t)(s + t->extra_stages) *
                                       t->dense_degree * sizeof(double));
    e->tab.c = e->c;
    e->tab.a = e->a;
    e->tab.b = e->b;
    e->tab.btilde = t->btilde ? e->btilde : NULL;
    e->tab.btilde2 = t->btilde2 ? e->btilde2 : NULL;
    e->tab.dense = t->dense_degree ? e->dense : NULL;
    e->type.tableau = &e->tab;
}

/* create refuses it with NDE_EPLUGIN and a message containing `what`. */
static void assert_refused(const tableau_copy *e, nde_field *f,
                           const char *what)
{
    nde_solver *s = NULL;
    const int rc = nde_solver_create_from(ctx, &e->type, f, &s);

    ck_assert_ptr_null(s);
    ck_assert_msg(rc == NDE_EPLUGIN && strstr(nde_ctx_message(ctx), what),
                  "%s: rc %d, message '%s', expected '%s'",
                  e->type.info.name, rc, nde_ctx_message(ctx), what);
}

/* Load-time checks: a declared order the coefficients do not have, c that
 * is not the row sums, a dense output that misses the step's end or its
 * order; each shipped tableau passes them unchanged (every test here
 * creates them). */
START_TEST(test_tableau_refused)
{
    nde_field *f = make_field(&cos_field, 1);
    tableau_copy e;
    nde_solver *s;

    /* The copy itself is accepted. */
    copy_tableau(solver_named("tsit5"), &e);
    ck_assert_int_eq(nde_solver_create_from(ctx, &e.type, f, &s), NDE_OK);
    nde_solver_destroy(s);
    /* A weight off in its 7th digit (sum b kept at 1, and FSAL's last row
     * of a with it): order 1 holds, order 2 does not. */
    e.b[1] += 1e-7;
    e.b[0] -= 1e-7;
    e.a[6 * 7 + 1] = e.b[1];
    e.a[6 * 7 + 0] = e.b[0];
    assert_refused(&e, f, "does not have the declared order 5");
    copy_tableau(solver_named("tsit5"), &e);
    e.btilde[2] += 1e-7;
    e.btilde[0] -= 1e-7;
    assert_refused(&e, f, "embedded solution (b + btilde) does not have the "
                          "declared order 4");
    /* bs5's second estimate is checked as the first one is */
    copy_tableau(solver_named("bs5"), &e);
    e.btilde2[2] += 1e-7;
    e.btilde2[0] -= 1e-7;
    assert_refused(&e, f, "second embedded solution (b + btilde2) does not "
                          "have the declared order 4");
    copy_tableau(solver_named("bs5"), &e);
    e.tab.btilde = NULL;
    e.type.info.provides &= ~NDE_CAP_ADAPTIVE;
    assert_refused(&e, f, "a second error estimate (btilde2) without the "
                          "first");
    copy_tableau(solver_named("dopri5"), &e);
    e.c[2] += 1e-6;
    assert_refused(&e, f, "row 2 of a sums to");
    /* rk4 is not 5th order. */
    copy_tableau(solver_named("rk4"), &e);
    e.type.order = 5;
    assert_refused(&e, f, "declared order 5: the order condition of tree 9 "
                          "(order 5");
    /* A dense output that misses the step's end (b_i(1) != b_i). */
    copy_tableau(solver_named("rk4"), &e);
    e.dense[0] += 1e-3;
    assert_refused(&e, f, "dense output at theta = 1 is not the step's end");
    /* The Levy area is an SDE solver's need. */
    copy_tableau(solver_named("rk4"), &e);
    e.type.info.needs |= NDE_NEEDS_LEVY_AREA;
    assert_refused(&e, f, "needs the Levy area but integrates no SDE");
    /* A tableau claiming what only ops can give. */
    copy_tableau(solver_named("rk4"), &e);
    e.type.info.provides |= NDE_CAP_REVERSIBLE;
    assert_refused(&e, f, "has no exact reverse");
    /* One of order 2 declared 3: moving weight between the theta^2 and
     * theta^3 coefficients of two stages keeps b_i(1). */
    copy_tableau(solver_named("rk4"), &e);
    e.dense[1 * 3 + 1] += 0.1;
    e.dense[1 * 3 + 2] -= 0.1;
    e.dense[2 * 3 + 1] -= 0.1;
    e.dense[2 * 3 + 2] += 0.1;
    assert_refused(&e, f, "the dense output at theta = 0.25 does not have "
                          "the declared order 3");
    nde_field_destroy(f);
}
END_TEST

/* A solver that needs the field's JVP: linearly implicit Euler for scalar
 * fields, y_next = y + h f(y) / (1 - h J), J = df/dy by the field's jvp
 * (the backward Euler step for a linear field). */
static int linimp_step(nde_solver *s, const double *theta, double t, double h,
                       const double *dw, const double *y, const double *aux,
                       double *y_next, double *aux_next, double *err,
                       const nde_norm_spec *norm, double *eest)
{
    double one[16], jac[16];
    int rc;

    (void)dw; (void)aux; (void)aux_next; (void)err; (void)norm; (void)eest;
    ck_assert_uint_le(s->batch, 16);
    for (size_t i = 0; i < s->batch; i++)
        one[i] = 1.0;
    s->counts.nfe++;
    if ((rc = nde_field_eval(s->field, t, y, theta, y_next, s->batch)) ||
        (rc = nde_field_jvp(s->field, t, y, theta, one, jac, s->batch)))
        return rc;
    for (size_t i = 0; i < s->batch; i++)
        y_next[i] = y[i] + h * y_next[i] / (1.0 - h * jac[i]);
    return NDE_OK;
}

static const nde_solver_type linimp_type = {
    .info = NDE_SOLVER_INFO(
        .name = "linimp",
        .description = "linearly implicit Euler (test)",
        .needs = NDE_NEEDS_FIELD_JVP,
        .version = "1"),
    .order = 1,
    .ops = {.step = linimp_step}};

static int lam_jvp(nde_field *f, double t, const double *y, const double *th,
                   const double *v, double *jv, size_t batch)
{
    (void)f; (void)t; (void)y;
    for (size_t i = 0; i < batch; i++)
        jv[i] = th[0] * v[i];
    return NDE_OK;
}

/* What an implicit method needs from the field is declared and checked
 * at create: refused with a field without a jvp, and it steps with one. */
START_TEST(test_needs_field_jvp)
{
    nde_field_type with_jvp = lam_field;
    nde_field *plain = make_field(&lam_field, 2), *f;
    const double th[1] = {-50.0}, y[2] = {1.0, 2.0};
    double yn[2];
    nde_solver *s = NULL;

    ck_assert_int_eq(nde_solver_create_from(ctx, &linimp_type, plain, &s),
                     NDE_ECAPABILITY);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "solver 'linimp' needs the "
                         "field's JVP (an implicit method), which field "
                         "'lambda' does not provide"), "%s",
                  nde_ctx_message(ctx));
    with_jvp.jvp = lam_jvp;
    f = make_field(&with_jvp, 2);
    s = make_solver(&linimp_type, f);
    /* y' = -50 y with h = 0.1: backward Euler's y / (1 + 5), stable where
     * explicit Euler's -4 y is not */
    ck_assert_int_eq(nde_solver_step(s, th, 0.0, 0.1, y, yn, NULL), NDE_OK);
    ck_assert_double_eq_tol(yn[0], 1.0 / 6.0, 1e-15);
    ck_assert_double_eq_tol(yn[1], 2.0 / 6.0, 1e-15);
    nde_solver_destroy(s);
    nde_field_destroy(f);
    nde_field_destroy(plain);
}
END_TEST

/* A controller that keeps h (never rejects at these tolerances): every
 * solve with it takes the same steps, whatever its error estimates. */
static void keep_start(const nde_controller *c, double *memory)
{
    (void)c; (void)memory;
}

static double keep_h(const nde_controller *c, double *memory, double eest,
                     double h)
{
    (void)c; (void)memory; (void)eest;
    return h;
}

static double keep_h_rejected(const nde_controller *c, const double *memory,
                              double eest, double h)
{
    (void)c; (void)memory;
    ck_abort_msg("a step was rejected (eest %g)", eest);
    return h;
}

static const nde_controller_ops keep_ops = {"keep", keep_start, keep_h,
                                            keep_h_rejected};

#define EEST_STEPS 12

/* The eest of each step of a solve of the nonlinear field nl2 with h =
 * 0.25 on [0, 3] (the driver's record). */
static void record_eest(const nde_solver_type *st, nde_field *f,
                        double *eest)
{
    const double th[3] = {1.5, 0.8, 2.0}, y0[2] = {1.0, 0.5}, ts[1] = {3.0};
    nde_trajectory *tr = nde_trajectory_create(NDE_NEEDS_STEPS |
                                                   NDE_NEEDS_ERROR_EST, 0);
    nde_solver *s = NULL;
    nde_solve_opts o;
    double y1[2];

    ck_assert_ptr_nonnull(tr);
    ck_assert_int_eq(nde_solver_create_from(ctx, st, f, &s), NDE_OK);
    nde_solve_opts_default(&o, st);
    o.rtol = o.atol = 1e-3;
    o.dt = 0.25;
    o.ctrl.ops = &keep_ops;
    o.record = tr;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, 3.0, 1, ts, y1, NULL),
                     NDE_OK);
    ck_assert_uint_eq(tr->nsteps, EEST_STEPS);
    for (size_t j = 0; j < EEST_STEPS; j++)
        eest[j] = nde_trajectory_eest(tr, j);
    nde_solver_destroy(s);
    nde_trajectory_destroy(tr);
}

/* A tableau with two error estimates (bs5) is controlled by the larger of
 * their norms, step by step: against copies that carry one each. */
START_TEST(test_second_estimate)
{
    const nde_solver_type *bs5 = solver_named("bs5");
    nde_field *f = make_field(&nl_field, 1);
    tableau_copy first, second;
    double e[3][EEST_STEPS];
    int larger[2] = {0, 0};

    copy_tableau(bs5, &first);
    first.tab.btilde2 = NULL;
    copy_tableau(bs5, &second);
    second.tab.btilde = second.btilde2;
    second.tab.btilde2 = NULL;
    record_eest(bs5, f, e[0]);
    record_eest(&first.type, f, e[1]);
    record_eest(&second.type, f, e[2]);
    for (size_t j = 0; j < EEST_STEPS; j++) {
        ck_assert_msg(e[0][j] == fmax(e[1][j], e[2][j]),
                      "step %zu: eest %.17g, the estimates' %.17g, %.17g", j,
                      e[0][j], e[1][j], e[2][j]);
        larger[e[2][j] > e[1][j]]++;
    }
    /* which one is larger varies along this solve */
    ck_assert_msg(larger[0] > 0 && larger[1] > 0,
                  "btilde's larger in %d steps, btilde2's in %d", larger[0],
                  larger[1]);
    nde_field_destroy(f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Conformance: every solver plugin                                    */

START_TEST(test_found_all)
{
    /* The shipped solvers must be among those found. */
    const char *names[] = {"tsit5", "dopri5", "bs3", "bs5", "rk4", "euler",
                           "vern6", "vern7", "vern8", "vern9"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        ck_assert_ptr_nonnull(solver_named(names[i]));
}
END_TEST

START_TEST(test_tableau_consistency)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        const nde_rk_tableau *t = st->tableau;
        const int s = t->stages, deg = t->dense_degree;
        double sb = 0, sbt = 0, bsize = 1, btsize = 1;
        ck_assert_ptr_nonnull(t);
        for (int i = 0; i < s; i++) {
            double row = 0, size = 1;
            for (int j = 0; j < s; j++) {
                row += t->a[i * s + j];
                size += fabs(t->a[i * s + j]);
            }
            /* Rows of Vern7/9 hold terms up to 1e2: c is the exact row
             * sum, the doubles' sum misses it by round-off of their size. */
            ck_assert_msg(fabs(row - t->c[i]) <= 1e-15 * size,
                          "%s: row %d sums to %.17g, c = %.17g",
                          st->info.name, i, row, t->c[i]);
            sb += t->b[i];
            bsize += fabs(t->b[i]);
            if (t->btilde) {
                sbt += t->btilde[i];
                btsize += fabs(t->btilde[i]);
            }
        }
        /* round-off of the terms' size, as for the rows (Vern6's b and
         * btilde have terms up to 176) */
        ck_assert_msg(fabs(sb - 1) <= 1e-15 * bsize, "%s: sum b = %.17g",
                      st->info.name, sb);
        ck_assert_msg(fabs(sbt) <= 1e-15 * btsize, "%s: sum btilde = %.3g",
                      st->info.name, sbt);
        /* Quadrature conditions sum b_i c_i^q = 1/(q+1), q < order, and
         * the same for bhat below error_order. */
        for (int q = 0; q < st->order; q++) {
            double sum = 0;
            for (int i = 0; i < s; i++)
                sum += t->b[i] * pow(t->c[i], q);
            ck_assert_msg(fabs(sum - 1.0 / (q + 1)) <= 1e-14 * bsize,
                          "%s: sum b c^%d = %.17g", st->info.name, q, sum);
        }
        for (int q = 0; t->btilde && q < st->error_order; q++) {
            double sum = 0;
            for (int i = 0; i < s; i++)
                sum += (t->b[i] + t->btilde[i]) * pow(t->c[i], q);
            ck_assert_msg(fabs(sum - 1.0 / (q + 1)) <= 1e-14 * bsize,
                          "%s: sum bhat c^%d = %.17g", st->info.name, q, sum);
        }
        /* Dense output ends at the step: b_i(1) = b_i, and 0 for the
         * extra stages of dense output. Verner's interpolants have
         * coefficients up to 1e4 that cancel: round-off of their size. */
        for (int i = 0; i < s + t->extra_stages && deg > 0; i++) {
            const double bi = i < s ? t->b[i] : 0.0;
            double b1 = 0, size = 1;
            for (int j = 0; j < deg; j++) {
                b1 += t->dense[i * deg + j];
                size += fabs(t->dense[i * deg + j]);
            }
            ck_assert_msg(fabs(b1 - bi) <= 3e-15 * size,
                          "%s: b_%d(1) = %.17g, b = %.17g", st->info.name, i,
                          b1, bi);
        }
        ck_assert_int_eq(!!(st->info.provides & NDE_CAP_DENSE),
                         deg > 0 && st->dense_order > 0);
        ck_assert_int_eq(!!(st->info.provides & NDE_CAP_ADAPTIVE),
                         t->btilde != NULL && st->error_order > 0);
    }
}
END_TEST

/* Errors of N-step solves of the two exact problems (max over both). */
static double conv_error(nde_solver *scos, nde_solver *srot, long N)
{
    const double thc[1] = {1.0}, thr[2] = {0.2, 1.0};
    const double y0r[2] = {1.0, 0.5};
    double yc[1] = {1.0}, yr[2] = {1.0, 0.5}, exr[2], e;
    fixed_steps(scos, thc, 0.0, 10.0, N, yc);
    e = fabs(yc[0] - exp(sin(10.0)));
    fixed_steps(srot, thr, 0.0, 10.0, N, yr);
    rot_exact(thr, 10.0, y0r, exr);
    return fmax(e, max_abs_diff(yr, exr, 2));
}

/* The sum of |b_i|: 1.6 to 7.6 for the tableaus but Vern6's 354, whose
 * b_7 = -176 and b_8 = 172 (at c = 0.9995 and 1) cancel, so that every
 * step's sum rounds at 50 to 200 times the others' size. */
static double weight_size(const nde_rk_tableau *t)
{
    double size = 0;
    for (int i = 0; i < t->stages; i++)
        size += fabs(t->b[i]);
    return size;
}

/* Slope of log err against log h over the step counts whose error lies in
 * a window past the pre-asymptotic range and above round-off (found for
 * these problems on [0, 10]): growing N from 2 until the error drops below
 * hi, then up to five points while it stays above lo. N doubles; from
 * order 6 on (Vern7, Vern9, PD8 and their embedded pairs) a doubling
 * divides the error by 2^6 to 2^9 and their asymptotic range starts near
 * 1e-10 (PD8's first step from 6e-10 still shows 6.5), so N grows by 3/2
 * between 1e-10 and 1e-14. Vern6's cancelling weights (weight_size) stop
 * its errors near 1e-12 here (8e-13 at N = 314, 1.1e-12 at 209), and its
 * errors fall at order 7 from 1e-5 on: its window is [1e-11, 1e-6]. */
static double measure_order(const nde_solver_type *st, int *npts)
{
    const int high = st->order >= 6,
              cancelling = weight_size(st->tableau) > 20;
    const double lo = cancelling ? 1e-11 : high ? 1e-14
                      : st->order >= 4 ? 1e-13
                      : st->order == 3 ? 1e-10 : 1e-7;
    const double hi = cancelling ? 1e-6 : high ? 1e-10
                      : st->order >= 4 ? 1e-7
                      : st->order == 3 ? 1e-5 : 1e-3;
    nde_field *fc = make_field(&cos_field, 1), *fr = make_field(&rot_field, 1);
    nde_solver *sc = make_solver(st, fc), *sr = make_solver(st, fr);
    double hs[5], es[5], slope;
    long N = 2;
    int n = 0;

#define GROW(N) ((N) = high ? (N) * 3 / 2 : (N) * 2)
    while (conv_error(sc, sr, N) > hi && N < (1L << 22))
        GROW(N);
    for (; n < 5 && N < (1L << 22); GROW(N)) {
        const double e = conv_error(sc, sr, N);
        if (e < lo)
            break;
        hs[n] = 1.0 / (double)N;
        es[n] = e;
        n++;
    }
#undef GROW
    slope = n >= 3 ? ls_slope(hs, es, n) : NAN;
    *npts = n;
    nde_solver_destroy(sc);
    nde_solver_destroy(sr);
    nde_field_destroy(fc);
    nde_field_destroy(fr);
    return slope;
}

/* Observed order p_obs of order p (of a solver st): within 0.2 of p; for
 * Verner's pairs and PD8 (order 6 and more) from p - 0.2 to p + 1.5. Their
 * principal error coefficients are so small (Verner's optimisation: Vern9's
 * stability polynomial's z^10 term is 2% of exp's; Vern7's interpolant
 * misses its order 7 conditions by 1e-7) that the next order's terms
 * dominate down to round-off in double: Vern9 shows 9.5 to 10 on every
 * problem tried (y' = y cos t, rotation, y' = -y^3/2, y' = cos y), Vern6
 * 7.0 on the two here. That the orders are not p + 1 is checked exactly
 * by test_order_exact. */
static int order_matches(const nde_solver_type *st, double p_obs, int p)
{
    return p_obs >= p - 0.2 && p_obs <= p + (st->order >= 6 ? 1.5 : 0.2);
}

/* Every tableau has exactly its declared orders: the order conditions
 * (all trees up to order 10) hold at its orders and fail one above (the
 * dense output's too, for the adaptive solvers). */
START_TEST(test_order_exact)
{
    nde_field *f = make_field(&cos_field, 1);

    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_solver_type up = *st;
        nde_solver *s = NULL;
        int rc;
        char what[64];

        up.order++;
        rc = nde_solver_create_from(ctx, &up, f, &s);
        ck_assert_ptr_null(s);
        snprintf(what, sizeof what, "does not have the declared order %d",
                 up.order);
        ck_assert_msg(rc == NDE_EPLUGIN && strstr(nde_ctx_message(ctx), what),
                      "%s declared order %d: rc %d, '%s'", st->info.name,
                      up.order, rc, nde_ctx_message(ctx));
        if (st->tableau->btilde) {
            up = *st;
            up.error_order++;
            ck_assert_int_eq(nde_solver_create_from(ctx, &up, f, &s),
                             NDE_EPLUGIN);
            ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "embedded"));
        }
        if (st->tableau->dense_degree > 0 && st->tableau->btilde) {
            up = *st;
            up.dense_order++;
            ck_assert_int_eq(nde_solver_create_from(ctx, &up, f, &s),
                             NDE_EPLUGIN);
            ck_assert_msg(strstr(nde_ctx_message(ctx), "dense output"),
                          "%s: %s", st->info.name, nde_ctx_message(ctx));
        }
    }
    nde_field_destroy(f);
}
END_TEST

/*
 * Vern8 on the problems above: its errors reach the asymptotic rate only
 * near its round-off floor (3e-13 globally, 2e-11 for the dense output),
 * so the slopes in double precision stop short: 7.4 for the global order
 * (the error at N = 13 dips, 8.6e-9 against 1.6e-9 at N = 19) and 8.78
 * for the local dense error. A 40-digit run of the same tableau (mpmath,
 * the exact rationals of OrdinaryDiffEq.jl's Vern8Tableau and the
 * 40-digit extra stages and interpolant) gives the same errors, then
 * slopes 8.97 (global, N = 42 to 63) and 8.99 (dense, local, h = 2^-3 to
 * 2^-3.5): test_vern8_reference checks nde's errors against it instead.
 */
static int checked_by_reference(const nde_solver_type *st)
{
    return strcmp(st->info.name, "vern8") == 0;
}

START_TEST(test_convergence_order)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        int npts;
        const double p = measure_order(st, &npts);
        fprintf(stderr, "order %-8s %.3f (theory %d, %d step sizes)\n",
                st->info.name, p, st->order, npts);
        if (checked_by_reference(st))
            continue;
        ck_assert_msg(npts >= 3 && order_matches(st, p, st->order),
                      "%s: observed order %.3f, expected %d (%d points)",
                      st->info.name, p, st->order, npts);
    }
}
END_TEST

START_TEST(test_embedded_order)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        embedded_type e;
        int npts;
        double p;
        if (!st->tableau->btilde)
            continue;
        make_embedded(st, &e);
        p = measure_order(&e.type, &npts);
        fprintf(stderr, "embedded %-8s %.3f (theory %d, %d step sizes)\n",
                st->info.name, p, st->error_order, npts);
        ck_assert_msg(npts >= 3 && order_matches(st, p, st->error_order),
                      "%s: embedded order %.3f, expected %d",
                      st->info.name, p, st->error_order);
    }
}
END_TEST

/* Reference errors of tsit5 on y' = y cos t, [0, 2], at N fixed steps,
 * computed independently in double precision from Tsitouras' tableau. */
START_TEST(test_tsit5_golden)
{
    const double golden[5] = {1.17e-5, 1.88e-7, 3.27e-9, 6.44e-11, 1.45e-12};
    const double th[1] = {1.0};
    nde_field *f = make_field(&cos_field, 1);
    nde_solver *s = make_solver(solver_named("tsit5"), f);
    for (int i = 0; i < 5; i++) {
        double y[1] = {1.0};
        double e;
        fixed_steps(s, th, 0.0, 2.0, 4L << i, y);
        e = fabs(y[0] - exp(sin(2.0)));
        ck_assert_msg(fabs(e / golden[i] - 1) < 0.02,
                      "N = %ld: error %.3g, golden %.3g", 4L << i, e,
                      golden[i]);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* Where a Verner interpolant's output stops converging: its weights b_i(theta)
 * sum terms up to max_i sum_j |r_ij| (Vern6 3e5, Vern8 4e6, Vern9 3e4) that
 * cancel, each rounded at about 1e-16 of its size (Vern8's one-step
 * errors level off at 2e-11 from h = 0.35 on). */
static double dense_floor(const nde_rk_tableau *t)
{
    double floor = 0.0;
    for (int i = 0; i < t->stages + t->extra_stages; i++) {
        double size = 0.0;
        for (int j = 0; j < t->dense_degree; j++)
            size += fabs(t->dense[i * t->dense_degree + j]);
        floor = fmax(floor, 1e-16 * size);
    }
    return floor;
}

/* One step of size h from the exact state at t = 0.3 of the rotation
 * problem: returns max over theta in {1/4, 1/2, 3/4} of the dense output's
 * error, and the norm of the local error estimate. */
static void one_step_errors(nde_solver *s, double h, double *dense_err,
                            double *est)
{
    const double th[2] = {0.2, 1.0}, y00[2] = {1.0, 0.5}, t = 0.3;
    double y[2], yn[2], err[2], yd[2], ex[2];
    rot_exact(th, t, y00, y);
    nde_solver_invalidate(s);
    ck_assert_int_eq(nde_solver_step(s, th, t, h, y, yn, err), NDE_OK);
    *dense_err = 0;
    for (int i = 1; i <= 3 && s->type->tableau->dense_degree > 0; i++) {
        ck_assert_int_eq(nde_solver_dense(s, y, h, 0.25 * i, yd), NDE_OK);
        rot_exact(th, t + 0.25 * i * h, y00, ex);
        *dense_err = fmax(*dense_err, max_abs_diff(yd, ex, 2));
    }
    *est = fmax(fabs(err[0]), fabs(err[1]));
}

/* Vern8 against its 40-digit reference (checked_by_reference): the global
 * errors of conv_error at N fixed steps and the local dense errors of
 * one_step_errors at h, to 1 % while they stand above its round-off. */
START_TEST(test_vern8_reference)
{
    static const long N[4] = {9, 13, 19, 28};
    static const double global[4] = {4.180e-7, 8.610e-9, 1.597e-9,
                                     6.550e-11};
    static const double h[3] = {1.0, 0.70710678118654752, 0.5};
    static const double dense[3] = {2.006e-7, 9.779e-9, 4.556e-10};
    const nde_solver_type *st = solver_named("vern8");
    nde_field *fc = make_field(&cos_field, 1), *fr = make_field(&rot_field, 1);
    nde_solver *sc = make_solver(st, fc), *sr = make_solver(st, fr);
    for (int i = 0; i < 4; i++) {
        const double e = conv_error(sc, sr, N[i]);
        ck_assert_msg(fabs(e / global[i] - 1) < 0.01,
                      "N = %ld: error %.4g, reference %.4g", N[i], e,
                      global[i]);
    }
    for (int i = 0; i < 3; i++) {
        double de, est;
        one_step_errors(sr, h[i], &de, &est);
        ck_assert_msg(fabs(de / dense[i] - 1) < 0.01,
                      "h = %g: dense error %.4g, reference %.4g", h[i], de,
                      dense[i]);
    }
    nde_solver_destroy(sc);
    nde_solver_destroy(sr);
    nde_field_destroy(fc);
    nde_field_destroy(fr);
}
END_TEST

START_TEST(test_dense_and_estimate_order)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f = make_field(&rot_field, 1);
        nde_solver *s = make_solver(st, f);
        double hs[6], de[6], ee[6];
        int nd = 0;
        /* h = 2^-2 .. 2^-7: local errors stay far above round-off; for
         * Vern6, Vern7 and Vern9, h = 1 .. 2^-2.5 (halving h divides
         * their errors by 2^7 to 2^10; Vern6's interpolant, whose
         * coefficients reach 1e5, levels off near 1e-11 below). */
        for (int i = 0; i < 6; i++) {
            hs[nd] = st->order >= 6 ? pow(2.0, -0.5 * i)
                                    : ldexp(1.0, -2 - i);
            one_step_errors(s, hs[nd], &de[nd], &ee[nd]);
            nd++;
        }
        if (st->tableau->dense_degree > 0) {
            /* Interpolants of order 5 and up reach round-off here: their
             * errors at its floor are left out (dense_floor; at least
             * those below 1e-12: Vern9's from h < 0.3, BS5's from h =
             * 2^-5, 3.2e-15). */
            const double floor = fmax(1e-12, dense_floor(st->tableau));
            int nv = nd;
            while (st->dense_order >= 5 && nv > 3 && de[nv - 1] < floor)
                nv--;
            const double p = ls_slope(hs, de, nv);
            fprintf(stderr, "dense %-8s local error slope %.3f (dense_order "
                    "%d + 1)\n", st->info.name, p, st->dense_order);
            ck_assert_msg(checked_by_reference(st) ||
                              order_matches(st, p - 1, st->dense_order),
                          "%s: dense local error slope %.3f, expected %d",
                          st->info.name, p, st->dense_order + 1);
        }
        if (st->tableau->btilde) {
            const double p = ls_slope(hs, ee, nd);
            fprintf(stderr, "estimate %-8s slope %.3f (error_order %d + "
                    "1)\n", st->info.name, p, st->error_order);
            ck_assert_msg(order_matches(st, p - 1, st->error_order),
                          "%s: error estimate slope %.3f, expected %d",
                          st->info.name, p, st->error_order + 1);
        }
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
}
END_TEST

START_TEST(test_stiffness_linear)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f;
        nde_solver *s;
        const double lam[1] = {-7.5};
        double y[3] = {1.0, -2.0, 0.5}, yn[3], S;
        if (st->tableau->stiff_stage < 0) {
            f = make_field(&cos_field, 1);
            s = make_solver(st, f);
            ck_assert_int_eq(nde_solver_stiffness(s, y, &S), NDE_ECAPABILITY);
            nde_solver_destroy(s);
            nde_field_destroy(f);
            continue;
        }
        /* Every stage of y' = lambda y is linear in its argument, so
         * (k_s - k_q) / (y_next - g_q) = lambda exactly (batch of 3). */
        f = make_field(&lam_field, 3);
        s = make_solver(st, f);
        ck_assert_int_eq(nde_solver_step(s, lam, 0.0, 0.1, y, yn, NULL),
                         NDE_OK);
        ck_assert_int_eq(nde_solver_stiffness(s, yn, &S), NDE_OK);
        ck_assert_msg(fabs(S / (7.5 / st->tableau->stability_size) - 1) <=
                          1e-10,
                      "%s: S = %.17g", st->info.name, S);
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
}
END_TEST

/* Scalar loss of one step: <w, y_next> + ew EEst + sw S, at (y, theta). */
/* Weights on the dense output at DENSE_THETA inside the step (mode 3). */
#define DENSE_THETA 0.37

static double step_loss(nde_solver *s, const double *theta, double t, double h,
                        const double *y, const double *w, double ew, double sw,
                        const double *dw, double rtol, double atol)
{
    const size_t n = s->batch * s->field->dim;
    double yn[16], err[16], yd[16], L = 0;
    nde_solver_invalidate(s);
    ck_assert_int_eq(nde_solver_step(s, theta, t, h, y, yn, err), NDE_OK);
    for (size_t i = 0; i < n; i++)
        L += w[i] * yn[i];
    if (dw) {
        ck_assert_int_eq(nde_solver_dense(s, y, h, DENSE_THETA, yd), NDE_OK);
        for (size_t i = 0; i < n; i++)
            L += dw[i] * yd[i];
    }
    if (ew != 0)
        L += ew * nde_error_norm(err, y, yn, n, rtol, atol);
    if (sw != 0) {
        double S;
        ck_assert_int_eq(nde_solver_stiffness(s, yn, &S), NDE_OK);
        L += sw * S;
    }
    return L;
}

/* The step VJP against central differences, w.r.t. y and theta, for the
 * cotangent on y_next, on EEst (through err and the scale), on S and on a
 * dense output inside the step. */
START_TEST(test_step_vjp)
{
    const size_t batch = 3, n = 6, np = 3;
    const double t = 0.4, rtol = 1e-3, atol = 1e-4;
    const double y0[6] = {0.7, -0.4, -1.1, 0.9, 0.3, 1.6};
    const double w[6] = {0.3, -1.2, 0.8, 0.5, -0.7, 1.1};
    const double zero[6] = {0};
    double theta[3] = {1.3, 0.8, -0.6};
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f = make_field(&nl_field, batch);
        nde_solver *s = make_solver(st, f);
        /* Vern7/9's stages at c = 1 agree with y_next to O(h^5), O(h^7):
         * a longer step keeps the stiffness estimate's differences far
         * enough above round-off for central differences. */
        const double h = st->order >= 7 ? 1.0 : 0.5;
        /* The differences' round-off grows with the weights' size: for
         * Vern6 (weight_size 354) at h = 1 they missed d EEst / dy[1] by
         * 1.6e-7, where the analytic VJP is within 6e-11 of a 50-digit
         * reference (mpmath, the tableau's exact rationals, differences
         * at 1e-20). */
        const double fd_scale = fmax(1.0, weight_size(st->tableau) / 10);
        for (int mode = 0; mode < 4; mode++) {
            /* Vern6's error estimate and stiffness estimate (weights up to
             * 103 that cancel) too; its y_next and dense output (a_ij up
             * to 207) are differenced best at the shorter step. */
            const double hm = st->order == 6 && (mode == 1 || mode == 2)
                                  ? 1.0
                                  : h;
            /* mode 0: y_next; 1: EEst; 2: stiffness; 3: dense output */
            const double *wy = mode == 0 ? w : zero;
            const double *dw = mode == 3 ? w : NULL;
            const nde_dense_cotangent dc = {DENSE_THETA, w};
            const double ew = mode == 1 ? 2.5 : 0, sw = mode == 2 ? 1.7 : 0;
            double ybar[6] = {0}, thbar[3] = {0};
            long nvjp0 = s->counts.nvjp;
            if ((mode == 1 && !st->tableau->btilde) ||
                (mode == 2 && st->tableau->stiff_stage < 0) ||
                (mode == 3 && st->tableau->dense_degree == 0))
                continue;
            ck_assert_int_eq(nde_solver_step_vjp(s, theta, t, hm, y0, rtol,
                                                 atol, wy, ew, sw,
                                                 dw ? &dc : NULL, dw ? 1 : 0,
                                                 ybar, thbar),
                             NDE_OK);
            /* one VJP a stage; the extra stages of dense output too when
             * it has a cotangent */
            ck_assert_int_eq(s->counts.nvjp - nvjp0,
                             st->tableau->stages +
                                 (mode == 3 ? st->tableau->extra_stages : 0));
            for (size_t i = 0; i < n + np; i++) {
                /* Extrapolated central differences, (4 D(eps/2) - D(eps))
                 * / 3: their error is O(eps^4), so eps can be large enough
                 * for round-off to stay small: EEst sums cancelling
                 * stages, and so does a step of Vern6 (weights up to
                 * 176, a_ij up to 207; round-off near 1e-12 of the step
                 * made plain differences at eps = 1e-5 miss by 1.5e-7).
                 * Vern8's EEst (btilde up to 23, 7th-order cancelling
                 * stages) at eps = 3e-4 and 1e-4 scattered by 1.4e-4
                 * relative around the analytic value; from eps = 1e-3
                 * (truncation 1e-12) the cancelling tableaus' EEst. */
                const double eps =
                    mode == 1 && weight_size(st->tableau) > 20 ? 1e-3 : 1e-4;
                double D[2];
                for (int r = 0; r < 2; r++) {
                    const double e = eps / (double)(1 << r);
                    double yp[6], thp[3], Lp, Lm;
                    memcpy(yp, y0, sizeof yp);
                    memcpy(thp, theta, sizeof thp);
                    if (i < n) yp[i] += e; else thp[i - n] += e;
                    Lp = step_loss(s, thp, t, hm, yp, wy, ew, sw, dw, rtol,
                                   atol);
                    if (i < n) yp[i] -= 2 * e; else thp[i - n] -= 2 * e;
                    Lm = step_loss(s, thp, t, hm, yp, wy, ew, sw, dw, rtol,
                                   atol);
                    D[r] = (Lp - Lm) / (2 * e);
                }
                const double fd = (4 * D[1] - D[0]) / 3;
                const double an = i < n ? ybar[i] : thbar[i - n];
                ck_assert_msg(fabs(fd - an) <= (1e-7 + 1e-6 * fabs(fd)) *
                                                   fd_scale,
                              "%s mode %d: d/d%s[%zu] analytic %.12g, central "
                              "difference %.12g", st->info.name, mode,
                              i < n ? "y" : "theta", i < n ? i : i - n, an,
                              fd);
            }
        }
        /* The step just taken: the same numbers from its own stages, with
         * no field evaluation; refused once the step is accepted. */
        if (st->tableau->btilde) {
            const nde_dense_cotangent dc = {DENSE_THETA, w};
            const size_t ndc = st->tableau->dense_degree > 0;
            double yn[6], err[6], yb1[6] = {0}, tb1[3] = {0};
            double yb2[6] = {0}, tb2[3] = {0};
            long nfe0;
            nde_solver_invalidate(s);
            ck_assert_int_eq(nde_solver_step(s, theta, t, h, y0, yn, err),
                             NDE_OK);
            nfe0 = s->counts.nfe;
            ck_assert_int_eq(nde_solver_last_step_vjp(s, rtol, atol, w, 1.3,
                                                      0, &dc, ndc, yb1, tb1),
                             NDE_OK);
            /* only the extra stages of dense output, not evaluated yet */
            ck_assert_int_eq(s->counts.nfe - nfe0,
                             st->tableau->extra_stages);
            nfe0 = s->counts.nfe;
            ck_assert_int_eq(nde_solver_step_vjp(s, theta, t, h, y0, rtol,
                                                 atol, w, 1.3, 0, &dc, ndc,
                                                 yb2, tb2), NDE_OK);
            ck_assert_int_eq(s->counts.nfe - nfe0,
                             st->tableau->stages +
                                 st->tableau->extra_stages);
            ck_assert(memcmp(yb1, yb2, sizeof yb1) == 0);
            ck_assert(memcmp(tb1, tb2, sizeof tb1) == 0);
            nde_solver_accept(s);
            ck_assert_int_eq(nde_solver_last_step_vjp(s, rtol, atol, w, 1.3,
                                                      0, NULL, 0, yb1, tb1),
                             NDE_EINVAL);
        }
        /* NULL outputs are allowed. */
        ck_assert_int_eq(nde_solver_step_vjp(s, theta, t, h, y0, rtol, atol,
                                             w, 0, 0, NULL, 0, NULL, NULL),
                         NDE_OK);
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
}
END_TEST

/* The extra stages of dense output (Vern7, Vern9): evaluated once after a
 * step, when its dense output is first asked for; recorded with the
 * step's stages, so that dense output of a recording is the same numbers;
 * and save times inside steps of a solve served at the interpolant's
 * accuracy (a cubic Hermite one misses 1e-9 here by far). */
START_TEST(test_dense_extra_stages)
{
    const double th[2] = {0.2, 1.0}, y00[2] = {1.0, 0.5}, t = 0.3, h = 0.25;
    int tested = 0;

    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        const int extra = st->tableau->extra_stages;
        nde_field *f;
        nde_solver *s;
        nde_solve_opts o;
        double y[2], yn[2], d1[2], d2[2], d3[2], ex[2], k_rec[26 * 2];
        double ts[7], ys[14], err = 0;
        long nfe0;

        if (extra == 0)
            continue;
        tested++;
        f = make_field(&rot_field, 1);
        s = make_solver(st, f);
        ck_assert_int_eq(nde_solver_stages(s), st->tableau->stages + extra);
        rot_exact(th, t, y00, y);
        nde_solver_invalidate(s);
        ck_assert_int_eq(nde_solver_step(s, th, t, h, y, yn, NULL), NDE_OK);
        nfe0 = s->counts.nfe;
        ck_assert_int_eq(nde_solver_dense(s, y, h, 0.3, d1), NDE_OK);
        ck_assert_int_eq(s->counts.nfe - nfe0, extra);
        ck_assert_int_eq(nde_solver_dense(s, y, h, 0.3, d2), NDE_OK);
        ck_assert_int_eq(s->counts.nfe - nfe0, extra);
        ck_assert(memcmp(d1, d2, sizeof d1) == 0);
        rot_exact(th, t + 0.3 * h, y00, ex);
        ck_assert_msg(max_abs_diff(d1, ex, 2) < 1e-9, "%s: dense error %.3g",
                      st->info.name, max_abs_diff(d1, ex, 2));
        ck_assert_int_eq(nde_solver_copy_stages(s, k_rec), NDE_OK);
        ck_assert_int_eq(nde_solver_dense_from(s, y, h, k_rec, 0.3, d3),
                         NDE_OK);
        ck_assert(memcmp(d1, d3, sizeof d1) == 0);
        /* A solve on [0, 6] at 1e-10 saving at times inside its steps. */
        for (int i = 0; i < 7; i++)
            ts[i] = 0.37 + 0.81 * i;
        nde_solve_opts_default(&o, st);
        o.rtol = o.atol = 1e-10;
        nde_solver_invalidate(s);
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y00, 6.0, 7, ts, ys,
                                   NULL), NDE_OK);
        for (int i = 0; i < 7; i++) {
            rot_exact(th, ts[i], y00, ex);
            err = fmax(err, max_abs_diff(ys + 2 * i, ex, 2));
        }
        ck_assert_msg(err < 1e-9, "%s: error at save times %.3g",
                      st->info.name, err);
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
    ck_assert_int_ge(tested, 2);
}
END_TEST

/* Same inputs, bit-identical outputs: two instances, and one instance
 * before and after other work. */
START_TEST(test_determinism)
{
    const double theta[3] = {1.3, 0.8, -0.6};
    const double y0[4] = {0.7, -0.4, -1.1, 0.9};
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f = make_field(&nl_field, 2);
        nde_solver *a = make_solver(st, f), *b = make_solver(st, f);
        nde_solve_opts o;
        const double ts[3] = {0.5, 1.25, 3.0};
        double ya[12], yb[12], yc[12];
        nde_stats sa, sb;
        nde_solve_opts_default(&o, st);
        o.rtol = o.atol = 1e-7;
        if (!(st->info.provides & NDE_CAP_ADAPTIVE))
            o.dt = 0.01;
        ck_assert_int_eq(nde_solve(a, &o, theta, 0, y0, 3, 3, ts, ya, &sa),
                         NDE_OK);
        ck_assert_int_eq(nde_solve(b, &o, theta, 0, y0, 3, 3, ts, yb, &sb),
                         NDE_OK);
        ck_assert_int_eq(nde_solve(a, &o, theta, 0, y0, 3, 3, ts, yc, NULL),
                         NDE_OK);
        ck_assert_msg(memcmp(ya, yb, sizeof ya) == 0 &&
                          memcmp(ya, yc, sizeof ya) == 0,
                      "%s: results differ between identical solves",
                      st->info.name);
        ck_assert_int_eq(sa.nfe, sb.nfe);
        nde_solver_destroy(a);
        nde_solver_destroy(b);
        nde_field_destroy(f);
    }
}
END_TEST

static Suite *solver_suite(void)
{
    Suite *su = suite_create("solvers");
    TCase *tc = tcase_create("conformance");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_found_all);
    tcase_add_test(tc, test_tableau_consistency);
    tcase_add_test(tc, test_tableau_refused);
    tcase_add_test(tc, test_needs_field_jvp);
    tcase_add_test(tc, test_second_estimate);
    tcase_add_test(tc, test_order_exact);
    tcase_add_test(tc, test_convergence_order);
    tcase_add_test(tc, test_embedded_order);
    tcase_add_test(tc, test_tsit5_golden);
    tcase_add_test(tc, test_dense_and_estimate_order);
    tcase_add_test(tc, test_vern8_reference);
    tcase_add_test(tc, test_stiffness_linear);
    tcase_add_test(tc, test_step_vjp);
    tcase_add_test(tc, test_dense_extra_stages);
    tcase_add_test(tc, test_determinism);
    suite_add_tcase(su, tc);

    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(solver_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
