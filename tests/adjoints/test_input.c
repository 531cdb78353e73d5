/*
 * Time-dependent inputs (nde/input.h): the series' segments and values,
 * a dosed linear ODE y' = -k y + b u(t) against its exact solution (every
 * adaptive solver kept exact across the jumps, the fixed-step solvers'
 * order kept), per-row solves, and the gradients of the discrete,
 * interpolating and backsolve adjoints against central differences of
 * the exact solution.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nde/nde.h"

static nde_ctx *ctx;

static void setup(void)
{
    ctx = nde_ctx_create();
    ck_assert_ptr_nonnull(ctx);
}

static void teardown(void)
{
    nde_ctx_destroy(ctx);
}

/* Two patients' schedules: row 0 a dose rate switched on and off, row 1
 * another on other times (jumps off any step grid), one channel. */
#define NROWS 2
#define NKNOTS 4
static const double knot_t[NROWS][NKNOTS] = {{0.0, 0.73, 1.91, 3.37},
                                             {0.0, 1.29, 2.43, 3.05}};
static const double knot_u[NROWS][NKNOTS] = {{0.0, 2.0, 0.5, 0.0},
                                             {1.0, 0.0, 3.0, 0.0}};

/* ---- the series ------------------------------------------------------- */

static nde_input *make_input(int kind)
{
    nde_input *in;
    int rc = nde_input_create(ctx, NROWS, 1, NKNOTS, kind, &in);

    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    for (size_t r = 0; r < NROWS; r++)
        ck_assert_int_eq(nde_input_set_row(in, r, NKNOTS, knot_t[r],
                                           knot_u[r]), NDE_OK);
    ck_assert_int_eq(nde_input_use_rows(in, NROWS), NDE_OK);
    return in;
}

START_TEST(test_series)
{
    nde_input *in = make_input(NDE_INPUT_CONSTANT), *lin;
    const double bad_t[2] = {1.0, 1.0}, u2[2] = {0.0, 1.0};
    const double *kn;
    double u;

    /* the knots of both rows, once each (0 is shared) */
    ck_assert_uint_eq(nde_input_knots(in, &kn), 7);
    ck_assert_double_eq(kn[0], 0.0);
    ck_assert_double_eq(kn[6], 3.37);
    ck_assert(nde_input_has_knot(in, 1.29));
    ck_assert(!nde_input_has_knot(in, 1.3));
    /* a step ending on the jump at 0.73 reads the value before it, one
     * starting there the value after it, at the same t */
    nde_input_select(in, 0.5, 0.23);
    nde_input_value(in, 0, 0.73, &u);
    ck_assert_double_eq(u, 0.0);
    nde_input_select(in, 0.73, 0.1);
    nde_input_value(in, 0, 0.73, &u);
    ck_assert_double_eq(u, 2.0);
    /* backwards: a step from 0.73 down reads the earlier side */
    nde_input_select(in, 0.73, -0.1);
    nde_input_value(in, 0, 0.73, &u);
    ck_assert_double_eq(u, 0.0);
    /* h = 0: the segment starting at t; held after the last knot */
    nde_input_select(in, 1.29, 0.0);
    nde_input_value(in, 1, 1.29, &u);
    ck_assert_double_eq(u, 0.0);
    nde_input_select(in, 9.0, 1.0);
    nde_input_value(in, 1, 9.0, &u);
    ck_assert_double_eq(u, 0.0);
    /* the row offset of a per-row solve */
    nde_input_select(in, 0.1, 0.1);
    nde_input_set_row0(in, 1);
    nde_input_value(in, 0, 0.1, &u);
    ck_assert_double_eq(u, 1.0);
    nde_input_set_row0(in, 0);
    /* refusals */
    ck_assert_int_eq(nde_input_set_row(in, 0, 2, bad_t, u2), NDE_EINVAL);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "not after"));
    ck_assert_int_eq(nde_input_set_row(in, 2, 2, knot_t[0], u2), NDE_EINVAL);
    ck_assert_int_eq(nde_input_use_rows(in, 3), NDE_EINVAL);
    nde_input_destroy(in);

    lin = make_input(NDE_INPUT_LINEAR);
    nde_input_select(lin, 0.73, 0.5);
    nde_input_value(lin, 0, 1.32, &u);
    ck_assert_double_eq_tol(u, 2.0 - 1.5 * (1.32 - 0.73) / (1.91 - 0.73),
                            1e-15);
    nde_input_destroy(lin);
}
END_TEST

/* ---- the dosed model -------------------------------------------------- */

#define K 0.8
#define B 1.5
static const double Y0[NROWS] = {0.4, 1.1};

/* y(t) of y' = -k y + b u(t) from y(0) = y0 for row r's input of `kind`:
 * segment by segment, u = a + c (t - s) on [s, e]. */
static double exact(int kind, size_t r, double k, double b, double y0,
                    double t)
{
    double y = y0, s = 0.0;

    for (size_t j = 0; s < t; j++) {
        const double e = j + 1 < NKNOTS ? fmin(knot_t[r][j + 1], t) : t;
        const double a = knot_u[r][j < NKNOTS ? j : NKNOTS - 1];
        const double c = kind == NDE_INPUT_LINEAR && j + 1 < NKNOTS
                             ? (knot_u[r][j + 1] - a) /
                                   (knot_t[r][j + 1] - knot_t[r][j])
                             : 0.0;
        const double p0 = b * a / k - b * c / (k * k);
        const double p1 = b * (a + c * (e - s)) / k - b * c / (k * k);
        y = p1 + (y - p0) * exp(-k * (e - s));
        s = e;
    }
    return y;
}

typedef struct dosed {
    nde_config *cfg;
    nde_field *f;
    nde_solver *s;
    nde_solve_opts o;
    nde_input *in;
    double theta[2];
} dosed;

static void dosed_make(dosed *d, const char *solver, const char *extra,
                       int kind)
{
    char ini[512];
    int rc;

    snprintf(ini, sizeof ini,
             "[field]\nplugin = expr\nstate = y\nparams = k=%g, b=%g\n"
             "inputs = dose\ndy = -k*y + b*dose\n"
             "[solver]\nplugin = %s\n%s", K, B, solver, extra);
    memset(d, 0, sizeof *d);
    d->cfg = nde_config_create();
    rc = nde_config_load_string(d->cfg, "test.ini", ini, ctx);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    rc = nde_field_create(ctx, d->cfg, "field", NROWS, &d->f);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert_uint_eq(d->f->ninputs, 1);
    rc = nde_solver_create(ctx, d->cfg, "solver", d->f, &d->s);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert_int_eq(nde_solver_set_batch(d->s, NROWS), NDE_OK);
    rc = nde_solve_opts_from_section(&d->o, d->s->type,
                                     nde_config_section(d->cfg, "solver"),
                                     ctx);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert_int_eq(nde_field_init_params(d->f, d->theta, 1), NDE_OK);
    d->in = make_input(kind);
    ck_assert_int_eq(nde_field_set_input(d->f, d->in), NDE_OK);
}

static void dosed_free(dosed *d)
{
    nde_input_destroy(d->in);
    nde_solver_destroy(d->s);
    nde_field_destroy(d->f);
    nde_config_destroy(d->cfg);
}

/* Save times: before, on and after jumps, and the end. */
#define NSAVE 5
static const double tsave[NSAVE] = {0.5, 1.29, 1.91, 2.8, 4.0};

/* The largest error of a solve of both rows against the exact solution. */
static double dosed_error(dosed *d, int kind, const double *theta,
                          nde_stats *st)
{
    double ys[NSAVE * NROWS], e = 0.0;
    int rc = nde_solve(d->s, &d->o, theta, 0.0, Y0, 4.0, NSAVE, tsave, ys,
                       st);

    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    for (size_t i = 0; i < NSAVE; i++)
        for (size_t r = 0; r < NROWS; r++)
            e = fmax(e, fabs(ys[i * NROWS + r] -
                             exact(kind, r, theta[0], theta[1], Y0[r],
                                   tsave[i])));
    return e;
}

/* A selection starts from each row's last segment (core/input.c): any
 * order of selections, near, far, back, before the first knot and after
 * the last, gives the segment a search from nothing gives. A constant
 * input whose value on segment k is k reads it; row 1's knots are
 * another grid. */
START_TEST(test_select_any_order)
{
    enum { NK = 40 };
    double t[2][NK], u[2][NK], v;
    nde_input *in;
    ck_assert_int_eq(nde_input_create(ctx, 2, 1, NK, NDE_INPUT_CONSTANT, &in),
                     NDE_OK);
    for (int k = 0; k < NK; k++) {
        t[0][k] = 0.25 * k;
        t[1][k] = 0.1 + 0.3 * k;
        u[0][k] = u[1][k] = k;
    }
    ck_assert_int_eq(nde_input_set_row(in, 0, NK, t[0], u[0]), NDE_OK);
    ck_assert_int_eq(nde_input_set_row(in, 1, NK, t[1], u[1]), NDE_OK);
    ck_assert_int_eq(nde_input_use_rows(in, 2), NDE_OK);
    unsigned long s = 12345;
    double x = 0.0;
    for (int i = 0; i < 2000; i++) {
        s = s * 6364136223846793005UL + 1442695040888963407UL;
        /* mostly small moves, sometimes a jump; x = t + h/2 on knots too */
        const double r = (double)(s >> 11) * 0x1p-53;
        x = (i % 7 == 0) ? -1.0 + 14.0 * r : x + 0.5 * (r - 0.4);
        if (i % 5 == 0)
            x = 0.25 * (double)(long)(x / 0.25);
        nde_input_select(in, x, 0.0);
        for (int row = 0; row < 2; row++) {
            long k = -1;
            while (k + 1 < NK && t[row][k + 1] <= x)
                k++;
            nde_input_value(in, (size_t)row, x, &v);
            ck_assert_msg(v == (k < 0 ? 0.0 : (double)k),
                          "row %d at %.17g: segment %g, expected %ld", row,
                          x, v, k);
        }
    }
    nde_input_destroy(in);
}
END_TEST

START_TEST(test_dose_adaptive)
{
    static const char *const names[] = {"bs3", "bs5", "dopri5", "tsit5",
                                        "vern6", "vern7", "vern8", "vern9"};
    for (int kind = 0; kind < 2; kind++)
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            dosed d;
            nde_stats st;
            double e, erow;
            dosed_make(&d, names[i], "rtol = 1e-10\natol = 1e-10\n", kind);
            e = dosed_error(&d, kind, d.theta, &st);
            d.o.per_row = 1; /* each row alone reads its own input */
            erow = dosed_error(&d, kind, d.theta, NULL);
            fprintf(stderr, "dose %-6s %s: error %.2e (per row %.2e), %ld "
                    "steps, %ld rejected\n", names[i],
                    kind ? "linear" : "constant", e, erow,
                    st.steps_accepted, st.steps_rejected);
            ck_assert_msg(e < 1e-8, "%s: error %g", names[i], e);
            ck_assert_msg(erow < 1e-8, "%s per row: error %g", names[i],
                          erow);
            dosed_free(&d);
        }
}
END_TEST

/* Fixed steps off the jumps: the driver splits the cells at the knots and
 * each piece reads its own side, so the order is the solver's. */
START_TEST(test_dose_order)
{
    static const struct { const char *name; int order; } fixed[] = {
        {"euler", 1}, {"rk4", 4}};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        double lh[4], le[4], sx = 0, sy = 0, sxx = 0, sxy = 0, slope;
        for (int j = 0; j < 4; j++) {
            char extra[64];
            dosed d;
            const double dt = 0.2 / pow(2.0, j);
            snprintf(extra, sizeof extra, "dt = %.17g\n", dt);
            dosed_make(&d, fixed[i].name, extra, NDE_INPUT_CONSTANT);
            lh[j] = log(dt);
            le[j] = log(dosed_error(&d, NDE_INPUT_CONSTANT, d.theta, NULL));
            dosed_free(&d);
            sx += lh[j];
            sy += le[j];
            sxx += lh[j] * lh[j];
            sxy += lh[j] * le[j];
        }
        slope = (4 * sxy - sx * sy) / (4 * sxx - sx * sx);
        fprintf(stderr, "dose %-6s fixed steps: order %.2f (error %.2e at "
                "dt 0.025)\n", fixed[i].name, slope, exp(le[3]));
        ck_assert_msg(fabs(slope - fixed[i].order) < 0.2, "%s: order %g",
                      fixed[i].name, slope);
    }
}
END_TEST

/* ---- gradients through the input ------------------------------------ */

/* L = sum over rows and save times of w_i y_r(t_i). */
static const double wsave[NSAVE] = {0.3, -0.7, 0.4, 1.0, -0.5};

static double exact_loss(int kind, const double *theta, const double *y0)
{
    double l = 0.0;

    for (size_t i = 0; i < NSAVE; i++)
        for (size_t r = 0; r < NROWS; r++)
            l += wsave[i] * (r + 1.0) *
                 exact(kind, r, theta[0], theta[1], y0[r], tsave[i]);
    return l;
}

/* The gradient of L by `adjoint` (with `checkpoints` recorded states, 0 =
 * all) against central differences of the exact loss. */
static void adjoint_gradient(const char *adjoint, int checkpoints, int kind)
{
    char extra[128];
    double fd[2 + NROWS], grad[2 + NROWS], ys[NSAVE * NROWS];
    double g[NSAVE][NROWS], rel = 0.0;
    nde_cotangent ct[NSAVE];
    nde_adjoint *a;
    nde_trajectory *tr;
    dosed d;
    int rc;

    for (size_t p = 0; p < 2 + NROWS; p++) {
        double th[2] = {K, B}, y0[NROWS] = {Y0[0], Y0[1]};
        double *x = p < 2 ? th + p : y0 + (p - 2);
        const double h = 1e-5, x0 = *x;
        double lp, lm;
        *x = x0 + h;
        lp = exact_loss(kind, th, y0);
        *x = x0 - h;
        lm = exact_loss(kind, th, y0);
        fd[p] = (lp - lm) / (2 * h);
    }
    snprintf(extra, sizeof extra, "rtol = 1e-11\natol = 1e-11\n"
             "[adjoint]\nplugin = %s\ncheckpoints = %d\n", adjoint,
             checkpoints);
    dosed_make(&d, "tsit5", checkpoints ? extra : "rtol = 1e-11\natol = "
               "1e-11\n", kind);
    rc = nde_adjoint_create(ctx, d.cfg, "adjoint", adjoint, d.s, &a);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    tr = nde_trajectory_create(a->record, a->max_states);
    ck_assert_ptr_nonnull(tr);
    d.o.record = tr;
    rc = nde_solve(d.s, &d.o, d.theta, 0.0, Y0, 4.0, NSAVE, tsave, ys, NULL);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    for (size_t i = 0; i < NSAVE; i++) {
        for (size_t r = 0; r < NROWS; r++)
            g[i][r] = wsave[i] * (r + 1.0);
        ct[i].t = tsave[i];
        ct[i].g = g[i];
    }
    rc = nde_adjoint_gradient(a, &d.o, tr, d.theta, ct, NSAVE, grad + 2, grad,
                              NULL);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    for (size_t p = 0; p < 2 + NROWS; p++)
        rel = fmax(rel, fabs(grad[p] - fd[p]) / fmax(1.0, fabs(fd[p])));
    fprintf(stderr, "dose %-13s %d %s: dL/d(k, b, y0) = %.9g %.9g %.9g %.9g, "
            "fd %.9g %.9g %.9g %.9g, rel %.2e\n", adjoint, checkpoints,
            kind ? "linear" : "constant", grad[0], grad[1], grad[2], grad[3],
            fd[0], fd[1], fd[2], fd[3], rel);
    ck_assert_msg(rel < 1e-6, "%s: relative error %g", adjoint, rel);
    nde_trajectory_destroy(tr);
    nde_adjoint_destroy(a);
    dosed_free(&d);
}

START_TEST(test_dose_gradients)
{
    for (int kind = 0; kind < 2; kind++) {
        adjoint_gradient("discrete", 0, kind);
        adjoint_gradient("discrete", 3, kind);
        adjoint_gradient("interpolating", 0, kind);
        adjoint_gradient("interpolating", 3, kind);
        adjoint_gradient("backsolve", 0, kind);
    }
}
END_TEST

/* A field that reads an input refuses one of other channels, and an
 * evaluation without one. */
START_TEST(test_dose_refusals)
{
    dosed d;
    nde_input *two;
    double y[NROWS] = {0, 0}, dy[NROWS];

    dosed_make(&d, "tsit5", "", NDE_INPUT_CONSTANT);
    ck_assert_int_eq(nde_input_create(ctx, 1, 2, 1, NDE_INPUT_CONSTANT, &two),
                     NDE_OK);
    ck_assert_int_eq(nde_field_set_input(d.f, two), NDE_EINVAL);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "reads 1 input"));
    ck_assert_int_eq(nde_field_set_input(d.f, NULL), NDE_OK);
    ck_assert_int_eq(nde_field_eval(d.f, 0.0, y, d.theta, dy, NROWS),
                     NDE_EINVAL);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "no input set"));
    nde_input_destroy(two);
    dosed_free(&d);
}
END_TEST

static Suite *input_suite(void)
{
    Suite *su = suite_create("input");
    TCase *tc = tcase_create("input");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_series);
    tcase_add_test(tc, test_select_any_order);
    tcase_add_test(tc, test_dose_adaptive);
    tcase_add_test(tc, test_dose_order);
    tcase_add_test(tc, test_dose_gradients);
    tcase_add_test(tc, test_dose_refusals);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(input_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
