/*
 * Events ([problem] event, nde/event.h): the event time of a falling ball
 * against its analytic root, the direction key, an event that does not
 * fire, solvers that cannot locate one, batches (each row its own time),
 * bad expressions, and the gradient of the event time and of the state at
 * the event through each adjoint against central finite differences.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

static nde_ctx *ctx;

static void setup(void)
{
    ctx = nde_ctx_create();
    ck_assert_ptr_nonnull(ctx);
}

static void teardown(void) { nde_ctx_destroy(ctx); }

/* A composed event solve: field, solver, options and event of a config. */
typedef struct ev_run {
    nde_config *cfg;
    nde_field *f;
    nde_solver *s;
    nde_solve_opts o;
    nde_event *ev;
    double theta[8];
    size_t dim;
} ev_run;

/* Compose ini (with `extra` appended to it, e.g. an override section);
 * returns the status of reading the event, the rest must work. */
static int ev_make(ev_run *r, const char *ini, size_t batch)
{
    const nde_key *const tables[] = {nde_problem_keys, NULL};
    nde_section *psec;
    int rc;

    memset(r, 0, sizeof *r);
    r->cfg = nde_config_create();
    rc = nde_config_load_string(r->cfg, "test.ini", ini, ctx);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    rc = nde_field_create(ctx, r->cfg, "field", batch, &r->f);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    rc = nde_solver_create(ctx, r->cfg, "solver", r->f, &r->s);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert_int_eq(nde_solver_set_batch(r->s, batch), NDE_OK);
    rc = nde_solve_opts_from_section(&r->o, r->s->type,
                                     nde_config_section(r->cfg, "solver"),
                                     ctx);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert_uint_le(r->f->nparams, 8);
    ck_assert_int_eq(nde_field_init_params(r->f, r->theta, 1), NDE_OK);
    r->dim = r->f->dim;
    psec = nde_config_section(r->cfg, "problem");
    ck_assert_ptr_nonnull(psec);
    ck_assert_int_eq(nde_section_check(psec, tables, ctx), NDE_OK);
    rc = nde_event_from_section(&r->ev, psec, r->f, ctx);
    r->o.event = r->ev;
    return rc;
}

static void ev_free(ev_run *r)
{
    nde_event_destroy(r->ev);
    nde_solver_destroy(r->s);
    nde_field_destroy(r->f);
    nde_config_destroy(r->cfg);
}

/* ball.ini with the solver plugin, the event and its direction. */
static char *ball_ini(const char *solver, const char *event,
                      const char *direction)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "[field]\nplugin = expr\nstate = x, v\nparams = g=9.81\n"
             "dx = v\ndv = -g\n"
             "[solver]\nplugin = %s\nrtol = 1e-12\natol = 1e-12\n"
             "[problem]\nt1 = 5\ny0 = 0, 0\nevent = %s\n%s%s\n",
             solver, event, direction ? "direction = " : "",
             direction ? direction : "");
    return buf;
}

/* x0 + v0 t - g t^2 / 2 = 0 for t > 0. */
static double impact(double x0, double v0)
{
    return (v0 + sqrt(v0 * v0 + 2 * 9.81 * x0)) / 9.81;
}

static void ball_rows(const char *solver)
{
    const double y0[] = {10, 0, 5, 1, 10, -100};
    const double tsave[] = {0.5, 2.0, 5.0};
    double ys[3 * 6], et[3];
    ev_run r;
    int rc;

    ck_assert_int_eq(ev_make(&r, ball_ini(solver, "x", "falling"), 3),
                     NDE_OK);
    r.o.event_t = et;
    rc = nde_solve(r.s, &r.o, r.theta, 0.0, y0, 5.0, 3, tsave, ys, NULL);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    for (size_t b = 0; b < 3; b++) {
        const double want = impact(y0[2 * b], y0[2 * b + 1]);
        fprintf(stderr, "%s row %zu: t* %.17g, error %.2e\n", solver, b,
                et[b], et[b] - want);
        ck_assert_msg(fabs(et[b] - want) <= 1e-10, "%s row %zu: %.17g vs "
                      "%.17g", solver, b, et[b], want);
        /* after the event: the state at the event, x = 0 */
        ck_assert_double_eq_tol(ys[(2 * 3 + b) * 2], 0.0, 1e-9);
        ck_assert_double_eq(ys[(1 * 3 + b) * 2 + 1], ys[(2 * 3 + b) * 2 + 1]);
        ck_assert_double_eq_tol(ys[(2 * 3 + b) * 2 + 1],
                                 y0[2 * b + 1] - 9.81 * want, 1e-8);
    }
    /* before the event of row 0 (t* = 1.43): on the parabola */
    ck_assert_double_eq_tol(ys[0], 10 - 9.81 * 0.125, 1e-10);
    ev_free(&r);
}

START_TEST(test_ball)
{
    ball_rows("tsit5");
    ball_rows("dopri5");
}
END_TEST

/* x = sin t, v = cos t: x - 1/2 rises at pi/6, falls at 5 pi/6. */
static double sine_event(const char *event, const char *direction)
{
    char ini[512];
    const double y0[] = {0, 1}, t1 = 3.0;
    double ys[2], et = 0;
    ev_run r;
    int rc;

    snprintf(ini, sizeof ini,
             "[field]\nplugin = expr\nstate = x, v\ndx = v\ndv = -x\n"
             "[solver]\nplugin = tsit5\nrtol = 1e-12\natol = 1e-12\n"
             "[problem]\nt1 = 3\ny0 = 0, 1\nevent = %s\n%s%s\n", event,
             direction ? "direction = " : "", direction ? direction : "");
    ck_assert_int_eq(ev_make(&r, ini, 1), NDE_OK);
    r.o.event_t = &et;
    rc = nde_solve(r.s, &r.o, r.theta, 0.0, y0, t1, 1, &t1, ys, NULL);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ev_free(&r);
    return et;
}

START_TEST(test_direction)
{
    const double pi = acos(-1.0);

    ck_assert_double_eq_tol(sine_event("x - 0.5", "rising"), pi / 6, 1e-10);
    ck_assert_double_eq_tol(sine_event("x - 0.5", "falling"), 5 * pi / 6,
                            1e-10);
    ck_assert_double_eq_tol(sine_event("x - 0.5", "both"), pi / 6, 1e-10);
    ck_assert_double_eq_tol(sine_event("x - 0.5", NULL), pi / 6, 1e-10);
    /* v = cos t falls through 0 at pi/2 only */
    ck_assert(isnan(sine_event("v", "rising")));
}
END_TEST

START_TEST(test_time_event)
{
    const double pi = acos(-1.0);

    /* g in t only (dg/dy = 0), and in t and the state */
    ck_assert_double_eq_tol(sine_event("t - 2", "rising"), 2.0, 1e-14);
    ck_assert_double_eq_tol(sine_event("x - t + pi/2 - 1", "both"), pi / 2,
                            1e-10);
}
END_TEST

/* Backwards in t: the direction is the solve's; x = 10 - g t^2 / 2 falls
 * to 0 at t = -sqrt(20 / g). */
START_TEST(test_backwards)
{
    const double y0[] = {10, 0}, t1 = -5.0;
    double ys[2], et;
    ev_run r;

    ck_assert_int_eq(ev_make(&r, ball_ini("tsit5", "x", "falling"), 1),
                     NDE_OK);
    r.o.event_t = &et;
    ck_assert_int_eq(nde_solve(r.s, &r.o, r.theta, 0.0, y0, t1, 1, &t1, ys,
                               NULL), NDE_OK);
    ck_assert_double_eq_tol(et, -sqrt(20 / 9.81), 1e-10);
    ck_assert_double_eq_tol(ys[0], 0.0, 1e-9);
    ev_free(&r);
}
END_TEST

/* An event that does not fire: NaN, and the solve is the plain one of
 * per-row steps, bit for bit. */
START_TEST(test_no_event)
{
    const double y0[] = {10, 0, 3, 0}, tsave[] = {0.5, 5.0};
    double ys[8], plain[8], et[2] = {0, 0};
    nde_stats st;
    ev_run r;
    int rc;

    ck_assert_int_eq(ev_make(&r, ball_ini("tsit5", "x + 1000", "falling"),
                             2), NDE_OK);
    r.o.event_t = et;
    rc = nde_solve(r.s, &r.o, r.theta, 0.0, y0, 5.0, 2, tsave, ys, &st);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert(isnan(et[0]) && isnan(et[1]));
    /* rows solved alone, as an event solves them */
    r.o.event = NULL;
    r.o.per_row = 1;
    rc = nde_solve(r.s, &r.o, r.theta, 0.0, y0, 5.0, 2, tsave, plain, NULL);
    ck_assert_int_eq(rc, NDE_OK);
    ck_assert_mem_eq(ys, plain, sizeof ys);
    ck_assert_double_eq_tol(ys[4], 10 - 9.81 * 12.5, 1e-9);
    ev_free(&r);
}
END_TEST

/* The event needs dense output of an adaptive ODE solve. */
static void refused(const char *solver, const char *dt, const char *says)
{
    char ini[1024];
    const double y0[] = {10, 0}, t1 = 2.0;
    double ys[2];
    ev_run r;
    int rc;

    snprintf(ini, sizeof ini,
             "[field]\nplugin = expr\nstate = x, v\nparams = g=9.81\n"
             "dx = v\ndv = -g\n[solver]\nplugin = %s\ndt = %s\n"
             "[problem]\nt1 = 2\ny0 = 10, 0\nevent = x\n", solver, dt);
    ck_assert_int_eq(ev_make(&r, ini, 1), NDE_OK);
    rc = nde_solve(r.s, &r.o, r.theta, 0.0, y0, t1, 1, &t1, ys, NULL);
    ck_assert_int_eq(rc, NDE_ECAPABILITY);
    ck_assert_msg(strstr(nde_ctx_message(ctx), says), "%s",
                  nde_ctx_message(ctx));
    ev_free(&r);
}

START_TEST(test_refused)
{
    const double y0[] = {10, 0, 5, 0}, t1 = 2.0;
    double ys[4];
    nde_trajectory *tr;
    ev_run r;

    refused("rk4", "0.1", "'rk4' is fixed-step");
    refused("alf", "0", "'alf' has no dense output");
    /* a batch with an event records row by row */
    ck_assert_int_eq(ev_make(&r, ball_ini("tsit5", "x", NULL), 2), NDE_OK);
    tr = nde_trajectory_create(NDE_NEEDS_STEPS, 0);
    r.o.record = tr;
    ck_assert_int_eq(nde_solve(r.s, &r.o, r.theta, 0.0, y0, t1, 1, &t1, ys,
                               NULL), NDE_EINVAL);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "an event"));
    nde_trajectory_destroy(tr);
    ev_free(&r);
}
END_TEST

/* Bad keys: NDE_ECONFIG naming file, line and key. */
static void bad(const char *event, const char *direction, const char *says,
                const char *where)
{
    ev_run r;

    ck_assert_int_eq(ev_make(&r, ball_ini("tsit5", event, direction), 1),
                     NDE_ECONFIG);
    ck_assert_msg(strstr(nde_ctx_message(ctx), says) &&
                      strstr(nde_ctx_message(ctx), where),
                  "%s", nde_ctx_message(ctx));
    ck_assert_ptr_null(r.ev);
    ev_free(&r);
}

START_TEST(test_bad_config)
{
    bad("x +* 2", NULL, "cannot parse expression 'x +* 2'",
        "test.ini:14: [problem] event");
    bad("x - h", NULL, "unknown variable 'h' (known: t, x, v)",
        "test.ini:14: [problem] event");
    bad("x", "up", "'up' is not a direction (rising, falling or both)",
        "test.ini:15: [problem] direction");
    bad("  ", NULL, "empty expression", "[problem] event");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Gradients                                                           */

/* A ball with drag: dx = v, dv = -g - k v; event x - t/10 (falling), the
 * loss L = A t* + W . y(t*). */
static const char drag_ini[] =
    "[field]\nplugin = expr\nstate = x, v\nparams = g=9.81, k=0.3\n"
    "dx = v\ndv = -g - k*v\n"
    "[solver]\nplugin = tsit5\nrtol = 1e-12\natol = 1e-12\n"
    "[problem]\nt1 = 5\ny0 = 10, 2\nevent = x - t/10\n"
    "direction = falling\n";
static const double A = 0.7, W[2] = {0.3, -0.4};

static double drag_loss(ev_run *r, const double *theta, const double *y0,
                        double *tstar, double *ystar)
{
    const double t1 = 5.0;
    double et, ys[2];
    int rc;

    r->o.event_t = &et;
    rc = nde_solve(r->s, &r->o, theta, 0.0, y0, t1, 1, &t1, ys, NULL);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert(!isnan(et));
    if (tstar) {
        *tstar = et;
        memcpy(ystar, ys, sizeof ys);
    }
    return A * et + W[0] * ys[0] + W[1] * ys[1];
}

static double grad_error(const char *adjoint)
{
    const double y0[2] = {10, 2}, t1 = 5.0;
    double grad[4], fd[4], ystar[2], ys[2], tstar, et, ybar[2];
    nde_adjoint *a;
    nde_trajectory *tr;
    nde_cotangent ct;
    nde_stats st;
    ev_run r;
    int rc;

    ck_assert_int_eq(ev_make(&r, drag_ini, 1), NDE_OK);
    /* central differences in theta (g, k) and y0 */
    for (size_t i = 0; i < 4; i++) {
        double th[2] = {r.theta[0], r.theta[1]}, y[2] = {y0[0], y0[1]};
        double *p = i < 2 ? th + i : y + (i - 2);
        const double h = 1e-5 * fmax(1.0, fabs(*p)), p0 = *p;
        double lp, lm;
        *p = p0 + h;
        lp = drag_loss(&r, th, y, NULL, NULL);
        *p = p0 - h;
        lm = drag_loss(&r, th, y, NULL, NULL);
        fd[i] = (lp - lm) / (2 * h);
    }
    drag_loss(&r, r.theta, y0, &tstar, ystar);

    rc = nde_adjoint_create(ctx, r.cfg, "adjoint", adjoint, r.s, &a);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    tr = nde_trajectory_create(a->record, a->max_states);
    r.o.record = tr;
    r.o.event_t = &et;
    rc = nde_solve(r.s, &r.o, r.theta, 0.0, y0, t1, 1, &t1, ys, NULL);
    ck_assert_int_eq(rc, NDE_OK);
    ck_assert_double_eq(et, tstar);
    ck_assert_double_eq(tr->t1, tstar); /* the record ends at t* */
    memcpy(ybar, W, sizeof ybar);
    rc = nde_event_cotangent(r.ev, r.f, r.theta, tstar, ys, A, ybar, ctx);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ct.t = tstar;
    ct.g = ybar;
    memset(&st, 0, sizeof st);
    rc = nde_adjoint_gradient(a, &r.o, tr, r.theta, &ct, 1, grad + 2, grad,
                              &st);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    {
        double num = 0, den = 0;
        for (size_t i = 0; i < 4; i++) {
            num += (grad[i] - fd[i]) * (grad[i] - fd[i]);
            den += fd[i] * fd[i];
        }
        fprintf(stderr, "%s: dL/d(g, k, x0, v0) = %.10g %.10g %.10g %.10g, "
                "fd %.10g %.10g %.10g %.10g, rel %.2e\n", adjoint, grad[0],
                grad[1], grad[2], grad[3], fd[0], fd[1], fd[2], fd[3],
                sqrt(num / den));
        nde_trajectory_destroy(tr);
        nde_adjoint_destroy(a);
        ev_free(&r);
        return sqrt(num / den);
    }
}

START_TEST(test_grad_discrete)
{
    ck_assert_double_le(grad_error("discrete"), 1e-6);
}
END_TEST

START_TEST(test_grad_interpolating)
{
    ck_assert_double_le(grad_error("interpolating"), 1e-6);
}
END_TEST

START_TEST(test_grad_backsolve)
{
    ck_assert_double_le(grad_error("backsolve"), 1e-6);
}
END_TEST

/* The cotangent formula on its own: g = x - c at a state moving with
 * f = (v, 0): x0 + v t = 0 gives d(t*)/d(x0) = -1/v. */
START_TEST(test_cotangent_formula)
{
    const double y0[] = {1.0, -2.0}, ystar[] = {0.0, -2.0};
    double ybar[2] = {0.0, 0.0};
    ev_run r;

    ck_assert_int_eq(ev_make(&r,
                             "[field]\nplugin = expr\nstate = x, v\n"
                             "dx = v\ndv = 0\n[solver]\nplugin = tsit5\n"
                             "[problem]\nt1 = 1\ny0 = 1, -2\nevent = x\n",
                             1), NDE_OK);
    (void)y0;
    /* only a cotangent on t*: ybar = -(1 / (dg/dy . f)) dg/dy = (1/2, 0) */
    ck_assert_int_eq(nde_event_cotangent(r.ev, r.f, r.theta, 0.5, ystar, 1.0,
                                         ybar, ctx), NDE_OK);
    ck_assert_double_eq_tol(ybar[0], 0.5, 1e-15);
    ck_assert_double_eq_tol(ybar[1], 0.0, 1e-15);
    /* tangential: v = 0 */
    {
        const double flat[] = {0.0, 0.0};
        ck_assert_int_eq(nde_event_cotangent(r.ev, r.f, r.theta, 0.5, flat,
                                             1.0, ybar, ctx),
                         NDE_ENONFINITE);
    }
    ev_free(&r);
}
END_TEST

/* Training with an event-determined end: recover (g, k) of the drag
 * ball from the impact times of three drops (generated at g = 9.81,
 * k = 0.3) by Gauss-Newton, each row's d(t*)/d(g, k) from its own record
 * (a batch with an event is solved row by row) through the discrete
 * adjoint. */
START_TEST(test_fit_impact_times)
{
    const double y0[] = {10, 0, 5, 0, 20, 0}, t1 = 5.0, truth[] = {9.81, 0.3};
    double ys[6], obs[3], et[3], J[3][2], ybar[2], ybar0[2];
    nde_trajectory *rows[3];
    nde_adjoint *a;
    nde_cotangent ct;
    nde_stats st;
    ev_run r;
    double loss = HUGE_VAL;
    int it, rc;

    ck_assert_int_eq(ev_make(&r, drag_ini, 3), NDE_OK);
    rc = nde_adjoint_create(ctx, r.cfg, "adjoint", "discrete", r.s, &a);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    for (size_t i = 0; i < 3; i++)
        ck_assert_ptr_nonnull(rows[i] = nde_trajectory_create(a->record, 0));
    memcpy(r.theta, truth, sizeof truth);
    r.o.event_t = obs;
    ck_assert_int_eq(nde_solve(r.s, &r.o, r.theta, 0.0, y0, t1, 1, &t1, ys,
                               NULL), NDE_OK);
    r.theta[0] = 7.0;
    r.theta[1] = 0.05;
    r.o.event_t = et;
    r.o.record_rows = rows;
    for (it = 0; it < 20 && loss > 1e-24; it++) {
        double A[3] = {0, 0, 0}, b[2] = {0, 0}, det;
        rc = nde_solve(r.s, &r.o, r.theta, 0.0, y0, t1, 1, &t1, ys, NULL);
        ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
        loss = 0.0;
        ck_assert_int_eq(nde_solver_set_batch(r.s, 1), NDE_OK);
        for (size_t i = 0; i < 3; i++) {
            loss += (et[i] - obs[i]) * (et[i] - obs[i]);
            ybar[0] = ybar[1] = 0.0;
            rc = nde_event_cotangent(r.ev, r.f, r.theta, et[i], ys + 2 * i,
                                     1.0, ybar, ctx);
            ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
            ct.t = et[i];
            ct.g = ybar;
            rc = nde_adjoint_gradient(a, &r.o, rows[i], r.theta, &ct, 1,
                                      ybar0, J[i], &st);
            ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
            A[0] += J[i][0] * J[i][0];
            A[1] += J[i][0] * J[i][1];
            A[2] += J[i][1] * J[i][1];
            b[0] += J[i][0] * (et[i] - obs[i]);
            b[1] += J[i][1] * (et[i] - obs[i]);
        }
        ck_assert_int_eq(nde_solver_set_batch(r.s, 3), NDE_OK);
        det = A[0] * A[2] - A[1] * A[1];
        r.theta[0] -= (A[2] * b[0] - A[1] * b[1]) / det;
        r.theta[1] -= (A[0] * b[1] - A[1] * b[0]) / det;
        fprintf(stderr, "fit %d: loss %.3e, g %.12g, k %.12g\n", it, loss,
                r.theta[0], r.theta[1]);
    }
    ck_assert_double_eq_tol(r.theta[0], truth[0], 1e-8);
    ck_assert_double_eq_tol(r.theta[1], truth[1], 1e-8);
    for (size_t i = 0; i < 3; i++)
        nde_trajectory_destroy(rows[i]);
    nde_adjoint_destroy(a);
    ev_free(&r);
}
END_TEST

static Suite *event_suite(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("events");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ball);
    tcase_add_test(tc, test_direction);
    tcase_add_test(tc, test_time_event);
    tcase_add_test(tc, test_backwards);
    tcase_add_test(tc, test_no_event);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_bad_config);
    tcase_add_test(tc, test_cotangent_formula);
    tcase_add_test(tc, test_grad_discrete);
    tcase_add_test(tc, test_grad_interpolating);
    tcase_add_test(tc, test_grad_backsolve);
    tcase_add_test(tc, test_fit_impact_times);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(event_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
