/*
 * The solve driver (core/solve.c, core/grid.c): adaptive accuracy,
 * evaluation counts, save times, tstops, backwards integration, the
 * fixed-step grid and every failure mode, the trajectory record and the
 * error-norm blocks, with the tableau solvers found; and the [solver] and
 * [problem] sections. Solvers with their own ops (SDE, reversible,
 * adaptive SDE) are driven in tests/solvers/test_sde.c.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

#include "../ode_fields.h"

/* ------------------------------------------------------------------ */
/* The solve loop                                                      */

static nde_solve_opts opts_for(const nde_solver_type *st, double tol)
{
    nde_solve_opts o;
    nde_solve_opts_default(&o, st);
    o.rtol = o.atol = tol;
    return o;
}

/* Lotka-Volterra reference at the given times: tsit5 fixed steps of 1e-4
 * landing on each time (global error ~1e-15). */
static void lv_reference(const double *ts, size_t nt, double *out)
{
    nde_field *f = make_field(&lv_field, 1);
    nde_solver *s = make_solver(solver_named("tsit5"), f);
    double y[2] = {1.0, 1.0}, t = 0;
    for (size_t i = 0; i < nt; i++) {
        const long N = (long)ceil((ts[i] - t) / 1e-4);
        if (N > 0)
            fixed_steps(s, lv_theta, t, ts[i], N, y);
        t = ts[i];
        memcpy(out + 2 * i, y, sizeof y);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}

START_TEST(test_adaptive_lv)
{
    const double y0[2] = {1.0, 1.0}, t1 = 10.0;
    double ref[2];
    long rejected_loose = 0;
    lv_reference(&t1, 1, ref);
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f;
        nde_solver *s;
        nde_solve_opts o = opts_for(st, 1e-8);
        nde_stats stats;
        double y[2], e;
        const int stages = st->tableau->stages;
        if (!(st->info.provides & NDE_CAP_ADAPTIVE))
            continue;
        f = make_field(&lv_field, 1);
        s = make_solver(st, f);
        /* Evaluation count with rejected steps: each reuses k1. */
        {
            nde_solve_opts loose = opts_for(st, 1e-4);
            ck_assert_int_eq(nde_solve(s, &loose, lv_theta, 0, y0, t1, 1, &t1,
                                       y, &stats), NDE_OK);
            rejected_loose += stats.steps_rejected;
            if (st->tableau->fsal)
                ck_assert_int_eq(stats.nfe, (long)(stages - 1) *
                                 (stats.steps_accepted +
                                  stats.steps_rejected) + 2);
        }
        ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, t1, 1, &t1, y,
                                   &stats), NDE_OK);
        e = max_abs_diff(y, ref, 2);
        fprintf(stderr, "lv %-8s tol 1e-8: err %.2e, nfe %ld, accepted %ld, "
                "rejected %ld, h in [%.3g, %.3g]\n", st->info.name, e,
                stats.nfe, stats.steps_accepted, stats.steps_rejected,
                stats.h_min, stats.h_max);
        ck_assert_msg(e < 2e-6, "%s: error %.3g at tol 1e-8", st->info.name, e);
        ck_assert_int_eq(stats.status, NDE_OK);
        ck_assert_int_eq(stats.retries, 0);
        ck_assert(stats.h_min > 0 && stats.h_min <= stats.h_max);
        /* Evaluations: f0 and the initial-step probe, then s - 1 new stages
         * per step (accepted or rejected) for FSAL tableaus, s otherwise. */
        if (st->tableau->fsal)
            ck_assert_int_eq(stats.nfe, (long)(stages - 1) *
                             (stats.steps_accepted + stats.steps_rejected) + 2);
        /* Tighter tolerance, smaller error. */
        o = opts_for(st, 1e-10);
        ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, t1, 1, &t1, y,
                                   NULL), NDE_OK);
        ck_assert_msg(max_abs_diff(y, ref, 2) < e, "%s", st->info.name);
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
    /* The identity above was exercised with rejected steps. */
    ck_assert_int_gt(rejected_loose, 0);
}
END_TEST

START_TEST(test_save_times_dense)
{
    enum { NS = 41 };
    const double y0[2] = {1.0, 1.0};
    double ts[NS], ref[2 * NS], ys[2 * NS];
    for (int i = 0; i < NS; i++)
        ts[i] = 0.25 * i;
    lv_reference(ts, NS, ref);
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f;
        nde_solver *s;
        nde_solve_opts o = opts_for(st, 1e-9);
        nde_stats many, one;
        const double t1 = 10.0;
        double yend[2];
        if (!(st->info.provides & NDE_CAP_ADAPTIVE) ||
            !(st->info.provides & NDE_CAP_DENSE))
            continue;
        f = make_field(&lv_field, 1);
        s = make_solver(st, f);
        ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, 10, NS, ts, ys,
                                   &many), NDE_OK);
        ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, 10, 1, &t1, yend,
                                   &one), NDE_OK);
        /* Saving does not change the steps; it evaluates the extra
         * stages of dense output (Vern7, Vern9) of the steps it uses. */
        ck_assert_int_eq(many.steps_accepted, one.steps_accepted);
        if (st->tableau->extra_stages == 0)
            ck_assert_int_eq(many.nfe, one.nfe);
        else
            ck_assert(many.nfe > one.nfe &&
                      many.nfe <= one.nfe + st->tableau->extra_stages * NS);
        ck_assert(memcmp(ys + 2 * (NS - 1), yend, sizeof yend) == 0);
        ck_assert(memcmp(ys, y0, sizeof y0) == 0);
        ck_assert_msg(max_abs_diff(ys, ref, 2 * NS) < 1e-5,
                      "%s: dense saves off by %.3g", st->info.name,
                      max_abs_diff(ys, ref, 2 * NS));
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
}
END_TEST

/* per_row: a batch of an easy and a hard row gives, bit for bit, each
 * row's solve alone, with the rows' NFE and steps summed; a joint batch
 * solve gives other values; a record of more than one row is refused. */
START_TEST(test_per_row)
{
    enum { NS = 9 };
    const double y0[4] = {1.1, 0.9, 4.0, 0.3};
    double ts[NS], ys[2 * 2 * NS], row[2 * NS], yj[2 * 2 * NS];
    const nde_solver_type *st = solver_named("dopri5");
    nde_field *f = make_field(&lv_field, 2);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-8);
    nde_stats both, alone, joint;
    nde_trajectory *rec = nde_trajectory_create(NDE_NEEDS_STEPS, 0);
    long nfe = 0, steps = 0;

    for (int i = 0; i < NS; i++)
        ts[i] = 0.5 * i;
    ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, 4, NS, ts, yj, &joint),
                     NDE_OK);
    o.per_row = 1;
    ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, 4, NS, ts, ys, &both),
                     NDE_OK);
    ck_assert_uint_eq(s->batch, 2);
    ck_assert_int_eq(nde_solver_set_batch(s, 1), NDE_OK);
    for (int r = 0; r < 2; r++) {
        ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0 + 2 * r, 4, NS, ts,
                                   row, &alone), NDE_OK);
        for (int k = 0; k < NS; k++)
            ck_assert(memcmp(ys + (2 * k + r) * 2, row + 2 * k,
                             2 * sizeof *row) == 0);
        nfe += alone.nfe;
        steps += alone.steps_accepted;
    }
    ck_assert_int_eq(both.nfe, nfe);
    ck_assert_int_eq(both.steps_accepted, steps);
    ck_assert(max_abs_diff(ys, yj, 4 * NS) > 0.0);
    ck_assert_int_lt(both.nfe, 2 * joint.nfe);
    ck_assert_int_eq(nde_solver_set_batch(s, 2), NDE_OK);
    o.record = rec;
    ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, 4, NS, ts, ys, &both),
                     NDE_EINVAL);
    nde_trajectory_destroy(rec);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* y' = |t - 1| has a kink at 1: stepping onto it exactly makes every RK
 * method of order >= 2 exact (f is linear in t on each side). */
START_TEST(test_tstops)
{
    const double tstop = 1.0, t1 = 2.5, y0 = 0.0;
    const double exact = 0.5 + 0.5 * 1.5 * 1.5;
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&kink_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-3);
    double y, y_nostop;
    ck_assert_int_eq(nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y_nostop,
                               NULL), NDE_OK);
    o.tstops = &tstop;
    o.ntstops = 1;
    kink_evals_at_1 = 0;
    ck_assert_int_eq(nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y, NULL),
                     NDE_OK);
    fprintf(stderr, "tstops: error %.2e with the tstop, %.2e without\n",
            fabs(y - exact), fabs(y_nostop - exact));
    ck_assert_msg(fabs(y - exact) < 1e-13, "error %.3g", fabs(y - exact));
    ck_assert(fabs(y_nostop - exact) > 1e-10);
    /* The FSAL stage was dropped at the tstop: f evaluated at t = 1. */
    ck_assert_int_ge(kink_evals_at_1, 1);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_backwards)
{
    /* y' = y cos t from t = 2 back to 0: y = exp(sin t). */
    const double th[1] = {1.0}, t0 = 2.0, y0 = exp(sin(2.0));
    const double ts[4] = {2.0, 1.5, 0.7, 0.0};
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        nde_field *f = make_field(&cos_field, 1);
        nde_solver *s = make_solver(st, f);
        nde_solve_opts o = opts_for(st, 1e-10);
        nde_stats stats;
        const double tol = st->order >= 3 ? 1e-7 : 1e-2;
        double ys[4];
        if (!(st->info.provides & NDE_CAP_ADAPTIVE))
            o.dt = st->order >= 3 ? 1e-3 : 1e-4;
        ck_assert_int_eq(nde_solve(s, &o, th, t0, &y0, 0.0, 4, ts, ys,
                                   &stats), NDE_OK);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(fabs(ys[i] - exp(sin(ts[i]))) < tol,
                          "%s: t = %g: %.12g vs %.12g", st->info.name, ts[i],
                          ys[i], exp(sin(ts[i])));
        /* Backwards save times must decrease. */
        {
            const double bad[2] = {0.5, 1.5};
            ck_assert_int_eq(nde_solve(s, &o, th, t0, &y0, 0.0, 2, bad, ys,
                                       NULL), NDE_EINVAL);
        }
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
}
END_TEST

START_TEST(test_fixed_step_counts)
{
    /* Fixed step: N = span / dt steps, the last one shortened to land. */
    const nde_solver_type *st = solver_named("rk4");
    nde_field *f = make_field(&cos_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-6);
    const double th[1] = {1.0}, y0 = 1.0, t1 = 1.05;
    nde_stats stats;
    double y;
    o.dt = 0.1;
    ck_assert_int_eq(nde_solve(s, &o, th, 0, &y0, t1, 1, &t1, &y, &stats),
                     NDE_OK);
    ck_assert_int_eq(stats.steps_accepted, 11);
    ck_assert_int_eq(stats.steps_rejected, 0);
    ck_assert_int_eq(stats.nfe, 44);
    ck_assert(fabs(stats.h_min - 0.05) < 1e-12);
    ck_assert(fabs(y - exp(sin(t1))) < 1e-5);
    /* dt = 0 for a fixed-step solver: a clear error. */
    o.dt = 0;
    ck_assert_int_eq(nde_solve(s, &o, th, 0, &y0, t1, 1, &t1, &y, &stats),
                     NDE_EINVAL);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "dt"));
    ck_assert_int_eq(stats.status, NDE_EINVAL);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* solve.h: a fixed-step solve steps on the grid t0 + k dt; a save time
 * inside a cell splits it and the grid does not shift, in either
 * direction, for every fixed-step solver alike (the numbers are those of
 * stepping by hand). A solve with t1 == t0 saves y0. */
START_TEST(test_fixed_step_grid)
{
    const nde_solver_type *st = solver_named("rk4");
    nde_field *f = make_field(&cos_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-6);
    const double th[1] = {1.0}, y0 = 1.0;
    nde_stats stats;

    o.dt = 0.1;
    for (int dir = 1; dir >= -1; dir -= 2) {
        const double t0 = dir > 0 ? 0.0 : 1.0, t1 = 1.0 - t0;
        const double ts[2] = {t0 + dir * 0.25, t1};
        /* by hand: 2 grid steps, the split cell (two halves), 7 more */
        const double hs[11] = {0.1, 0.1, 0.05, 0.05, 0.1, 0.1, 0.1,
                               0.1, 0.1, 0.1, 0.1};
        double y = y0, yn, ys[2], t = t0, y_at_save = 0.0;
        for (int j = 0; j < 11; j++) {
            const double tn = j == 10 ? t1 : j == 2 ? ts[0]
                              : t0 + dir * ((j < 2 ? j + 1 : j) * 0.1);
            nde_solver_invalidate(s);
            ck_assert_int_eq(nde_solver_step(s, th, t, tn - t, &y, &yn, NULL),
                             NDE_OK);
            ck_assert(fabs(fabs(tn - t) - hs[j]) < 1e-12);
            y = yn;
            t = tn;
            if (j == 2)
                y_at_save = y;
        }
        ck_assert_int_eq(nde_solve(s, &o, th, t0, &y0, t1, 2, ts, ys,
                                   &stats), NDE_OK);
        ck_assert_int_eq(stats.steps_accepted, 11);
        ck_assert_msg(ys[0] == y_at_save && ys[1] == y,
                      "dir %d: %.17g %.17g vs by hand %.17g %.17g", dir,
                      ys[0], ys[1], y_at_save, y);
    }
    {
        const double ts[2] = {0.5, 0.5};
        double ys[2] = {0, 0};
        ck_assert_int_eq(nde_solve(s, &o, th, 0.5, &y0, 0.5, 2, ts, ys,
                                   &stats), NDE_OK);
        ck_assert(ys[0] == y0 && ys[1] == y0);
        ck_assert_int_eq(stats.steps_accepted + stats.steps_rejected, 0);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_max_steps)
{
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&lv_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-10);
    const double y0[2] = {1, 1}, t1 = 10;
    nde_stats stats;
    double y[2];
    o.max_steps = 25;
    ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, t1, 1, &t1, y, &stats),
                     NDE_EMAXSTEPS);
    ck_assert_int_eq(stats.status, NDE_EMAXSTEPS);
    ck_assert_int_eq(stats.steps_accepted + stats.steps_rejected, 25);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "max_steps"));
    nde_solver_destroy(s);
    /* A fixed step that cannot reach t1 within max_steps is refused
     * before the first step; 25 steps exactly are allowed. */
    st = solver_named("rk4");
    s = make_solver(st, f);
    o = opts_for(st, 0.0);
    o.max_steps = 25;
    o.dt = t1 / 26;
    ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, t1, 1, &t1, y, &stats),
                     NDE_EMAXSTEPS);
    ck_assert_int_eq(stats.steps_accepted, 0);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "takes at least 26 "
                                 "steps"));
    o.dt = t1 / 25;
    ck_assert_int_eq(nde_solve(s, &o, lv_theta, 0, y0, t1, 1, &t1, y, &stats),
                     NDE_OK);
    ck_assert_int_eq(stats.steps_accepted, 25);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_nonfinite)
{
    for (size_t k = 0; k < solvers.n; k++) {
        const nde_solver_type *st = solvers.type[k];
        const nde_field_type *fts[2] = {&nan_field, &late_retry_field};
        for (int j = 0; j < 2; j++) {
            nde_field *f = make_field(fts[j], 1);
            nde_solver *s = make_solver(st, f);
            nde_solve_opts o = opts_for(st, 1e-6);
            const double y0 = 1.0, t1 = 2.0;
            nde_stats stats;
            double y;
            if (!(st->info.provides & NDE_CAP_ADAPTIVE))
                o.dt = 0.01;
            ck_assert_int_eq(nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y,
                                       &stats), NDE_ENONFINITE);
            ck_assert_int_eq(stats.status, NDE_ENONFINITE);
            ck_assert_int_gt(stats.steps_accepted, 0);
            /* solve.h: an adaptive solver retries with smaller steps, a
             * fixed-step one stops at once. */
            if (st->info.provides & NDE_CAP_ADAPTIVE) {
                ck_assert_int_gt(stats.retries, 0);
                ck_assert_int_ge(stats.steps_rejected, stats.retries);
            } else {
                ck_assert_int_eq(stats.retries, 0);
                ck_assert_msg(strstr(nde_ctx_message(ctx), "no retry"),
                              "%s: %s", st->info.name, nde_ctx_message(ctx));
            }
            nde_solver_destroy(s);
            nde_field_destroy(f);
        }
    }
}
END_TEST

START_TEST(test_retry_region)
{
    /* y' = -y is undefined for y < 0: a first step of 10 makes negative
     * stage values; the loop must shrink and finish accurately. */
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&pos_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-8);
    const double y0 = 1.0, t1 = 5.0;
    nde_stats stats;
    double y;
    o.dt = 10.0;
    retry_calls = 0;
    ck_assert_int_eq(nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y, &stats),
                     NDE_OK);
    ck_assert_int_gt(stats.retries, 0);
    ck_assert_int_eq(stats.retries, retry_calls);
    ck_assert_msg(fabs(y - exp(-5.0)) < 1e-7, "y = %.12g", y);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_step_underflow)
{
    /* y' = y^2 blows up at t = 1. */
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&blow_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-6);
    const double y0 = 1.0, t1 = 2.0;
    nde_stats stats;
    double y;
    int rc;
    o.dtmin = 1e-8;
    ck_assert_int_eq(nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y, &stats),
                     NDE_ESTEPSIZE);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "dtmin"));
    /* Without dtmin: round-off stops it (or the state overflows), in
     * bounded work. */
    o.dtmin = 0;
    rc = nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y, &stats);
    fprintf(stderr, "blow-up without dtmin: %s after %ld steps (%s)\n",
            nde_status_name(rc), stats.steps_accepted + stats.steps_rejected,
            nde_ctx_message(ctx));
    ck_assert(rc == NDE_ESTEPSIZE || rc == NDE_ENONFINITE);
    ck_assert_int_lt(stats.steps_accepted + stats.steps_rejected, 100000);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Config: [solver] and [problem] sections                             */

/* ------------------------------------------------------------------ */
/* Recording, seminorm, tstop callback                                 */

/* q^2 summed over [i0, i1) in order, as nde/solver.h defines a chunk's. */
static double squares(const double *err, const double *y, const double *yn,
                      size_t i0, size_t i1, double rtol, double atol)
{
    double sum = 0.0;
    for (size_t i = i0; i < i1; i++) {
        const double sc = atol + rtol * fmax(fabs(y[i]), fabs(yn[i]));
        sum += (err[i] / sc) * (err[i] / sc);
    }
    return sum;
}

/* A long state's error norm is summed NDE_NORM_CHUNK values at a time,
 * then chunk by chunk (nde/solver.h): nde_error_norm, nde_error_norm_spec
 * and a step's own eest follow that order bit for bit, and one chunk
 * keeps the plain sum. */
START_TEST(test_error_norm_chunks)
{
    enum { ROWS = 5000, N = 2 * ROWS }; /* two whole chunks and a part */
    const double rtol = 1e-6, atol = 1e-8, th[2] = {0.3, 2.0}, t1 = 0.5;
    const nde_norm_spec spec = {rtol, atol, NULL, 0};
    double *y = malloc(N * sizeof *y), *yn = malloc(N * sizeof *yn);
    double *err = malloc(N * sizeof *err), total = 0.0;
    ck_assert(y && yn && err);
    for (size_t i = 0; i < N; i++) {
        y[i] = sin(0.37 * (double)i);
        yn[i] = y[i] + 1e-3 * cos(0.11 * (double)i);
        err[i] = 1e-7 * sin(1.3 * (double)i + 0.2);
    }
    for (size_t i = 0; i < N; i += NDE_NORM_CHUNK)
        total += squares(err, y, yn, i, i + NDE_NORM_CHUNK < N
                                            ? i + NDE_NORM_CHUNK : N,
                         rtol, atol);
    ck_assert(nde_error_norm(err, y, yn, N, rtol, atol) ==
              sqrt(total / N));
    ck_assert(nde_error_norm_spec(&spec, err, y, yn, N) == sqrt(total / N));
    ck_assert(nde_error_norm(err, y, yn, NDE_NORM_CHUNK, rtol, atol) ==
              sqrt(squares(err, y, yn, 0, NDE_NORM_CHUNK, rtol, atol) /
                   NDE_NORM_CHUNK));

    /* tsit5's steps on ROWS rows of rot2: eest from the fused pass */
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, ROWS);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-7);
    nde_trajectory *tr = nde_trajectory_create(
        NDE_NEEDS_STEPS | NDE_NEEDS_ERROR_EST, 0);
    double *yend = malloc(N * sizeof *yend);
    ck_assert(tr && yend);
    ck_assert_int_eq(nde_solver_set_batch(s, ROWS), NDE_OK);
    o.record = tr;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y, t1, 1, &t1, yend, NULL),
                     NDE_OK);
    ck_assert_uint_ge(tr->nsteps, 2);
    for (size_t j = 0; j < tr->nsteps; j++) {
        nde_solver_invalidate(s);
        ck_assert_int_eq(nde_solver_step(s, th, tr->t[j], tr->h[j],
                                         tr->y + N * j, yn, err), NDE_OK);
        ck_assert_msg(nde_error_norm(err, tr->y + N * j, yn, N, o.rtol,
                                     o.atol) == tr->eest[j], "step %zu", j);
    }
    nde_trajectory_destroy(tr);
    nde_solver_destroy(s);
    nde_field_destroy(f);
    free(y);
    free(yn);
    free(err);
    free(yend);
}
END_TEST

/* Every accepted step is recorded: replaying it from the recorded state
 * reproduces the next recorded state, the error norm, the stiffness and
 * the dense output bit for bit. */
START_TEST(test_record_contents)
{
    const double th[2] = {0.3, 2.0}, y0[2] = {1.0, 0.5}, t1 = 3.0;
    const unsigned all = NDE_NEEDS_STEPS | NDE_NEEDS_DENSE |
                         NDE_NEEDS_ERROR_EST | NDE_NEEDS_STIFFNESS;
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-7);
    nde_trajectory *tr = nde_trajectory_create(all, 0);
    nde_stats stats;
    double yend[2], yn[2], err[2], d1[2], d2[2];
    ck_assert_ptr_nonnull(tr);
    o.record = tr;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yend, &stats),
                     NDE_OK);
    ck_assert_uint_eq(tr->nsteps, (size_t)stats.steps_accepted);
    ck_assert_uint_eq(tr->nstates, tr->nsteps);
    ck_assert_int_eq(tr->stages, 7);
    ck_assert(tr->t0 == 0.0 && tr->t1 == t1 && tr->t[0] == 0.0);
    ck_assert(memcmp(tr->y_final, yend, sizeof yend) == 0);
    ck_assert(memcmp(tr->y, y0, sizeof y0) == 0);
    for (size_t j = 0; j < tr->nsteps; j++) {
        const double *yj = tr->y + 2 * j;
        const double *ynext = j + 1 < tr->nsteps ? tr->y + 2 * (j + 1)
                                                 : tr->y_final;
        double stiff;
        ck_assert_uint_eq(tr->ystep[j], j);
        nde_solver_invalidate(s);
        ck_assert_int_eq(nde_solver_step(s, th, tr->t[j], tr->h[j], yj, yn,
                                         err), NDE_OK);
        ck_assert_msg(memcmp(yn, ynext, sizeof yn) == 0, "step %zu", j);
        ck_assert(nde_error_norm(err, yj, yn, 2, o.rtol, o.atol) ==
                  tr->eest[j]);
        ck_assert(tr->eest[j] <= 1.0);
        ck_assert_int_eq(nde_solver_stiffness(s, yn, &stiff), NDE_OK);
        ck_assert(stiff == tr->stiff[j]);
        ck_assert_int_eq(nde_solver_dense(s, yj, tr->h[j], 0.37, d1), NDE_OK);
        ck_assert_int_eq(nde_solver_dense_from(s, yj, tr->h[j],
                                               tr->k + j * 7 * 2, 0.37, d2),
                         NDE_OK);
        ck_assert(memcmp(d1, d2, sizeof d1) == 0);
        if (j + 1 < tr->nsteps)
            ck_assert(fabs(tr->t[j] + tr->h[j] - tr->t[j + 1]) < 1e-14);
        ck_assert_int_eq(nde_trajectory_find(tr, tr->t[j] + 0.5 * tr->h[j]),
                         (long)j);
    }
    ck_assert_int_eq(nde_trajectory_find(tr, t1), (long)tr->nsteps - 1);
    ck_assert_int_eq(nde_trajectory_find(tr, t1 + 1e-9), -1);
    ck_assert_int_eq(nde_trajectory_find(tr, -1e-9), -1);

    /* A second, shorter solve resets the record. */
    {
        const size_t first = tr->nsteps;
        const double t2 = 0.5;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t2, 1, &t2, yend,
                                   &stats), NDE_OK);
        ck_assert_uint_eq(tr->nsteps, (size_t)stats.steps_accepted);
        ck_assert_uint_lt(tr->nsteps, first);
        ck_assert(tr->t1 == t2);
    }
    /* Nothing requested: the count, the ends and y_final only. */
    {
        nde_trajectory *t0r = nde_trajectory_create(0, 0);
        o.record = t0r;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yend,
                                   &stats), NDE_OK);
        ck_assert_uint_eq(t0r->nsteps, (size_t)stats.steps_accepted);
        ck_assert(t0r->nsteps > 10);
        ck_assert_ptr_null(t0r->t);
        ck_assert_ptr_null(t0r->h);
        ck_assert_ptr_null(t0r->y);
        ck_assert(t0r->t1 == t1);
        ck_assert(memcmp(t0r->y_final, yend, sizeof yend) == 0);
        ck_assert_int_eq(nde_trajectory_find(t0r, 0.5), -1);
        nde_trajectory_destroy(t0r);
        o.record = tr;
    }
    /* Dense output cannot be recorded from a solver without it. */
    {
        nde_trajectory *tk = nde_trajectory_create(NDE_NEEDS_STIFFNESS, 0);
        nde_solver *s4 = make_solver(solver_named("rk4"), f);
        nde_solve_opts o4 = opts_for(solver_named("rk4"), 1e-6);
        o4.dt = 0.1;
        o4.record = tk;
        ck_assert_int_eq(nde_solve(s4, &o4, th, 0.0, y0, t1, 1, &t1, yend,
                                   NULL), NDE_ECAPABILITY);
        ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "stiffness"));
        nde_solver_destroy(s4);
        nde_trajectory_destroy(tk);
    }
    nde_trajectory_destroy(tr);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* max_states: at most that many states, evenly spread (step i * stride),
 * equal to the full record's states at those steps. */
START_TEST(test_record_thinning)
{
    const double th[2] = {0.1, 1.0}, y0[2] = {1.0, 0.0}, t1 = 10.0;
    const nde_solver_type *st = solver_named("rk4");
    nde_field *f = make_field(&rot_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-6);
    nde_trajectory *full = nde_trajectory_create(NDE_NEEDS_STEPS, 0);
    double yend[2];
    o.dt = 0.01;
    o.record = full;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yend, NULL),
                     NDE_OK);
    ck_assert_uint_eq(full->nsteps, 1000);
    ck_assert_ptr_null(full->k);
    for (size_t maxs = 1; maxs <= 40; maxs += 3) {
        nde_trajectory *tr = nde_trajectory_create(NDE_NEEDS_STEPS, maxs);
        o.record = tr;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yend,
                                   NULL), NDE_OK);
        ck_assert_uint_eq(tr->nsteps, 1000);
        ck_assert_uint_le(tr->nstates, maxs);
        ck_assert_uint_le(tr->states_cap, maxs);
        /* Thinned only when full: more than half the slots in use. */
        ck_assert_uint_gt(2 * tr->nstates, maxs);
        ck_assert_uint_eq(tr->stride & (tr->stride - 1), 0);
        /* The last state lies within one stride of the last step. */
        ck_assert_uint_ge((tr->nstates + 1) * tr->stride, 1000);
        for (size_t i = 0; i < tr->nstates; i++) {
            ck_assert_uint_eq(tr->ystep[i], i * tr->stride);
            ck_assert(memcmp(tr->y + 2 * i, full->y + 2 * tr->ystep[i],
                             2 * sizeof(double)) == 0);
        }
        nde_trajectory_destroy(tr);
    }
    nde_trajectory_destroy(full);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* norm_blocks = {2}: the error norm of a batch of two rows over the first
 * row only steps exactly as a solve of that row alone. */
START_TEST(test_norm_blocks_prefix)
{
    const double th[2] = {0.2, 3.0}, t1 = 4.0;
    const double y0[4] = {1.0, 0.0, 100.0, 30.0};
    const size_t row0[1] = {2};
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 2);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-8);
    nde_stats one, semi, full;
    double y1[2], y2[4];
    o.rtol = 0.0;
    ck_assert_int_eq(nde_solver_set_batch(s, 1), NDE_OK);
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y1, &one),
                     NDE_OK);
    ck_assert_int_eq(nde_solver_set_batch(s, 2), NDE_OK);
    o.norm_blocks = row0;
    o.nnorm_blocks = 1;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y2, &semi),
                     NDE_OK);
    o.nnorm_blocks = 0;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y2 + 0, &full),
                     NDE_OK);
    fprintf(stderr, "norm blocks: %ld steps on row 0 alone, %ld with blocks "
            "{2}, %ld with the full norm\n", one.steps_accepted,
            semi.steps_accepted, full.steps_accepted);
    ck_assert_int_eq(semi.steps_accepted, one.steps_accepted);
    ck_assert_int_eq(semi.steps_rejected, one.steps_rejected);
    ck_assert_int_gt(full.steps_accepted, semi.steps_accepted);
    o.nnorm_blocks = 1;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y2, NULL),
                     NDE_OK);
    ck_assert(memcmp(y1, y2, sizeof y1) == 0);
    /* The excluded values are still checked for non-finite values. */
    {
        const double ybad[4] = {1.0, 0.0, 1e300, 1e300};
        const double big[2] = {-1e3, 0.0};
        ck_assert_int_eq(nde_solve(s, &o, big, 0.0, ybad, t1, 1, &t1, y2,
                                   NULL), NDE_ENONFINITE);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* Scaled RMS of err over [lo, hi), scale atol + rtol max(|y|, |yn|). */
static double block_rms(const double *err, const double *y, const double *yn,
                        size_t lo, size_t hi, double rtol, double atol)
{
    return sqrt(squares(err, y, yn, lo, hi, rtol, atol) / (double)(hi - lo));
}

/* Blocks {2, 3} over a batch of three rows (6 values, the last left out):
 * each recorded step's EEst is the larger of the two blocks' RMS, computed
 * here from the step's err; the second block (large rows) dominates, and
 * the RMS over everything would be another number. */
START_TEST(test_norm_blocks_value)
{
    const double th[2] = {0.3, 2.0}, t1 = 3.0;
    const double y0[6] = {1.0, 0.0, 80.0, -30.0, 50.0, 1e3};
    const size_t blocks[2] = {2, 3};
    const double rtol = 1e-10, atol = 1e-7; /* mostly absolute */
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 3);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-7);
    nde_trajectory *tr =
        nde_trajectory_create(NDE_NEEDS_STEPS | NDE_NEEDS_ERROR_EST, 0);
    double yend[6], yn[6], err[6];
    size_t dominated = 0;
    ck_assert_ptr_nonnull(tr);
    ck_assert_int_eq(nde_solver_set_batch(s, 3), NDE_OK);
    o.rtol = rtol;
    o.atol = atol;
    o.norm_blocks = blocks;
    o.nnorm_blocks = 2;
    o.record = tr;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yend, NULL),
                     NDE_OK);
    ck_assert_uint_gt(tr->nsteps, 5);
    ck_assert_uint_eq(tr->nstates, tr->nsteps);
    for (size_t j = 0; j < tr->nsteps; j++) {
        const double *y = tr->y + 6 * j;
        double e0, e1, all, want;
        nde_solver_invalidate(s);
        ck_assert_int_eq(nde_solver_step(s, th, tr->t[j], tr->h[j], y, yn,
                                         err), NDE_OK);
        e0 = block_rms(err, y, yn, 0, 2, rtol, atol);
        e1 = block_rms(err, y, yn, 2, 5, rtol, atol);
        all = block_rms(err, y, yn, 0, 6, rtol, atol);
        want = fmax(e0, e1);
        ck_assert_msg(fabs(tr->eest[j] - want) <= 1e-13 * want,
                      "step %zu: EEst %.17g, max of block RMS %.17g "
                      "(blocks %.3g, %.3g)", j, tr->eest[j], want, e0, e1);
        ck_assert_msg(fabs(all - want) > 1e-3 * want,
                      "step %zu: the RMS over all values %.17g equals the "
                      "block norm", j, all);
        dominated += e1 > 2.0 * e0;
    }
    fprintf(stderr, "norm blocks {2, 3}: %zu steps, block 2 dominates in "
            "%zu\n", tr->nsteps, dominated);
    ck_assert_uint_gt(2 * dominated, tr->nsteps);
    nde_trajectory_destroy(tr);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* nnorm_blocks = 0 and one block over the whole state: the same step
 * sequence, EEst and result bit for bit. */
START_TEST(test_norm_blocks_default)
{
    const double th[2] = {0.3, 2.0}, t1 = 3.0;
    const double y0[4] = {1.0, 0.0, 80.0, -30.0};
    const size_t whole[1] = {4};
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 2);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-7);
    nde_trajectory *t0 = nde_trajectory_create(NDE_NEEDS_ERROR_EST, 0);
    nde_trajectory *t1r = nde_trajectory_create(NDE_NEEDS_ERROR_EST, 0);
    nde_stats s0, s1;
    double ya[4], yb[4];
    ck_assert_int_eq(nde_solver_set_batch(s, 2), NDE_OK);
    o.record = t0;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, ya, &s0),
                     NDE_OK);
    o.norm_blocks = whole;
    o.nnorm_blocks = 1;
    o.record = t1r;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, yb, &s1),
                     NDE_OK);
    ck_assert_int_eq(s0.nfe, s1.nfe);
    ck_assert_int_eq(s0.steps_rejected, s1.steps_rejected);
    ck_assert_uint_eq(t0->nsteps, t1r->nsteps);
    ck_assert(memcmp(t0->h, t1r->h, t0->nsteps * sizeof(double)) == 0);
    ck_assert(memcmp(t0->eest, t1r->eest, t0->nsteps * sizeof(double)) == 0);
    ck_assert(memcmp(ya, yb, sizeof ya) == 0);
    nde_trajectory_destroy(t0);
    nde_trajectory_destroy(t1r);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* Empty blocks, blocks past the state and a NULL list are refused. */
START_TEST(test_norm_blocks_invalid)
{
    const double th[2] = {0.3, 2.0}, t1 = 1.0, y0[4] = {1, 0, 2, 1};
    const size_t empty[2] = {2, 0}, past[2] = {2, 3}, over[1] = {5};
    const struct { const size_t *b; size_t nb; const char *msg; } bad[4] = {
        {empty, 2, "empty"}, {past, 2, "more than"}, {over, 1, "more than"},
        {NULL, 1, "NULL"}};
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 2);
    nde_solver *s = make_solver(st, f);
    double y[4], f0[4], h0;
    ck_assert_int_eq(nde_solver_set_batch(s, 2), NDE_OK);
    rot_eval(f, 0.0, y0, th, f0, 2);
    for (int i = 0; i < 4; i++) {
        nde_solve_opts o = opts_for(st, 1e-6);
        o.norm_blocks = bad[i].b;
        o.nnorm_blocks = bad[i].nb;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, NULL),
                         NDE_EINVAL);
        ck_assert_msg(strstr(nde_ctx_message(ctx), bad[i].msg),
                      "case %d: %s", i, nde_ctx_message(ctx));
        ck_assert_int_eq(nde_initial_step(s, &o, th, 0.0, y0, f0, t1, &h0),
                         NDE_EINVAL);
        /* Also with a fixed step given (no initial step). */
        o.dt = 0.1;
        ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, NULL),
                         NDE_EINVAL);
    }
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

typedef struct jump_user {
    const double *tstops;
    int hits[4];
    size_t fail_at;         /* index whose call fails; > 3 = none */
    int bad_time;
} jump_user;

static int add_jump(void *user, size_t i, double t, double *y)
{
    jump_user *u = user;
    if (i > 3 || t != u->tstops[i])
        u->bad_time = 1;
    else
        u->hits[i]++;
    if (i == u->fail_at)
        return NDE_EFATAL;
    y[0] += 1.0;
    return 0;
}

/* at_tstop: y' = -y with y += 1 at t = 0.5, 1, 1 (twice) and t1 = 2; every
 * tstop is hit once at its exact time, the jumps land in the solution and
 * the step size carries on across them. */
START_TEST(test_at_tstop)
{
    const double th[2] = {1.0, 0.0}, y0[2] = {1.0, 0.0}, t1 = 2.0;
    const double ts[4] = {0.5, 1.0, 1.0, 2.0};
    const double e5 = exp(-0.5);
    const double exact = (((e5 + 1.0) * e5 + 2.0) * exp(-1.0)) + 1.0;
    const nde_solver_type *st = solver_named("tsit5");
    nde_field *f = make_field(&rot_field, 1);
    nde_solver *s = make_solver(st, f);
    nde_solve_opts o = opts_for(st, 1e-10);
    nde_trajectory *tr = nde_trajectory_create(NDE_NEEDS_STEPS, 0);
    jump_user u = {ts, {0}, 99, 0};
    nde_stats plain, jumps;
    double y[2];
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, &plain),
                     NDE_OK);
    o.tstops = ts;
    o.ntstops = 4;
    o.at_tstop = add_jump;
    o.at_tstop_user = &u;
    o.record = tr;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, &jumps),
                     NDE_OK);
    fprintf(stderr, "at_tstop: %ld steps without tstops, %ld with 3 jumps; "
            "error %.2e\n", plain.steps_accepted, jumps.steps_accepted,
            fabs(tr->y_final[0] - exact));
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(u.hits[i], 1);
    ck_assert(!u.bad_time);
    /* The save at t1 is the state reaching t1; the record's final state
     * includes the jump at t1. */
    ck_assert(tr->y_final[0] == y[0] + 1.0);
    ck_assert_msg(fabs(tr->y_final[0] - exact) < 1e-8, "%.17g vs %.17g",
                  tr->y_final[0], exact);
    /* No restart of the step-size control: solving piece by piece (each
     * piece starting with the automatic first step) takes more steps. */
    {
        const double ends[3] = {0.5, 1.0, 2.0}, add[3] = {1.0, 2.0, 0.0};
        nde_solve_opts op = opts_for(st, 1e-10);
        double ya[2] = {1.0, 0.0}, t = 0.0;
        long restart = 0;
        for (int p = 0; p < 3; p++) {
            nde_stats sp;
            ck_assert_int_eq(nde_solve(s, &op, th, t, ya, ends[p], 1,
                                       &ends[p], ya, &sp), NDE_OK);
            ya[0] += add[p];
            t = ends[p];
            restart += sp.steps_accepted;
        }
        fprintf(stderr, "at_tstop: %ld steps when restarting at each "
                "jump\n", restart);
        ck_assert_int_lt(jumps.steps_accepted, restart);
    }
    /* A failing callback stops the solve with its status. */
    memset(u.hits, 0, sizeof u.hits);
    u.fail_at = 1;
    ck_assert_int_eq(nde_solve(s, &o, th, 0.0, y0, t1, 1, &t1, y, &jumps),
                     NDE_EFATAL);
    ck_assert_int_eq(jumps.status, NDE_EFATAL);
    ck_assert(u.hits[0] == 1 && u.hits[1] == 1 && u.hits[2] == 0);
    nde_trajectory_destroy(tr);
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

static nde_config *load(const char *text)
{
    nde_config *cfg = nde_config_create();
    ck_assert_ptr_nonnull(cfg);
    ck_assert_msg(nde_config_load_string(cfg, "test.ini", text, ctx) ==
                      NDE_OK, "%s", nde_ctx_message(ctx));
    return cfg;
}

START_TEST(test_solver_section)
{
    nde_config *cfg = load("[solver]\nplugin = dopri5\nrtol = 1e-4\n"
                           "beta1 = 0.1\nmax_steps = 77\n");
    nde_field *f = make_field(&lv_field, 2);
    nde_solver *s;
    nde_solve_opts o;
    ck_assert_int_eq(nde_solver_create(ctx, cfg, "solver", f, &s), NDE_OK);
    ck_assert_str_eq(s->type->info.name, "dopri5");
    ck_assert_int_eq(nde_solve_opts_from_section(&o, s->type,
                         nde_config_section(cfg, "solver"), ctx), NDE_OK);
    ck_assert(o.rtol == 1e-4 && o.atol == 1e-6 && o.ctrl.beta1 == 0.1 &&
              o.ctrl.beta2 == 2.0 / 25 && o.max_steps == 77);
    nde_solver_destroy(s);
    nde_config_destroy(cfg);

    cfg = load("[solver]\nplugin = tsit5\nrtoll = 1e-4\n");
    ck_assert_int_eq(nde_solver_create(ctx, cfg, "solver", f, &s),
                     NDE_ECONFIG);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "rtoll"));
    nde_config_destroy(cfg);

    cfg = load("[solver]\nplugin = rk4\n");
    ck_assert_int_eq(nde_solver_create(ctx, cfg, "solver", f, &s), NDE_OK);
    ck_assert_int_eq(nde_solve_opts_from_section(&o, s->type,
                         nde_config_section(cfg, "solver"), ctx), NDE_ECONFIG);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "dt"));
    nde_solver_destroy(s);
    nde_config_destroy(cfg);

    cfg = load("[solver]\nplugin = nosuchsolver\n");
    ck_assert_int_ne(nde_solver_create(ctx, cfg, "solver", f, &s), NDE_OK);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "nosuchsolver"));
    nde_config_destroy(cfg);
    nde_field_destroy(f);
}
END_TEST

static int problem_status(const char *text, size_t dim, const char *needle)
{
    nde_config *cfg = load(text);
    nde_problem p;
    int rc = nde_problem_from_section(&p, nde_config_section(cfg, "problem"),
                                      dim, ctx);
    if (rc != NDE_OK && needle)
        ck_assert_msg(strstr(nde_ctx_message(ctx), needle) != NULL,
                      "message '%s' lacks '%s'", nde_ctx_message(ctx), needle);
    nde_problem_free(&p);
    nde_config_destroy(cfg);
    return rc;
}

START_TEST(test_problem_section)
{
    nde_config *cfg = load("[problem]\nt1 = 2\ny0 = 1, 2\n   3, 4\n"
                           "   5, 6\nnsave = 5\ntstops = 0.5, 1.5\n");
    nde_problem p;
    ck_assert_int_eq(nde_problem_from_section(&p,
                         nde_config_section(cfg, "problem"), 2, ctx), NDE_OK);
    ck_assert(p.t0 == 0 && p.t1 == 2 && p.batch == 3 && p.dim == 2);
    ck_assert(p.y0[4] == 5 && p.y0[5] == 6);
    ck_assert_uint_eq(p.nsave, 5);
    ck_assert(p.tsave[0] == 0 && p.tsave[2] == 1 && p.tsave[4] == 2);
    ck_assert_uint_eq(p.ntstops, 2);
    nde_problem_free(&p);
    nde_config_destroy(cfg);

    cfg = load("[problem]\nt0 = 3\nt1 = 1\ny0 = 1\nsaveat = 3, 2, 1\n");
    ck_assert_int_eq(nde_problem_from_section(&p,
                         nde_config_section(cfg, "problem"), 1, ctx), NDE_OK);
    ck_assert_uint_eq(p.nsave, 3);
    nde_problem_free(&p);
    nde_config_destroy(cfg);

    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\n", 1, NULL),
                     NDE_OK);
    ck_assert_int_eq(problem_status("[problem]\ny0 = 1\n", 1, "t1"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\n", 1, "y0"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 0\ny0 = 1\n", 1, "t1"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1, 2, 3\n", 2,
                                    "y0"), NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1, 2\n  3\n", 2,
                                    "y0"), NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\n"
                                    "saveat = 0.5, 0.2\n", 1, "saveat"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\n"
                                    "saveat = 0.5, 1.2\n", 1, "saveat"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\n"
                                    "saveat = 0.5\nnsave = 3\n", 1, "nsave"),
                     NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\nnsave = 0\n",
                                    1, "nsave"), NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\n"
                                    "tstops = 2\n", 1, "tstops"), NDE_ECONFIG);
    ck_assert_int_eq(problem_status("[problem]\nt1 = 1\ny0 = 1\nfoo = 2\n",
                                    1, "foo"), NDE_ECONFIG);
}
END_TEST

static Suite *solve_suite(void)
{
    Suite *su = suite_create("solve");
    TCase *tc;

    tc = tcase_create("solve");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_adaptive_lv);
    tcase_add_test(tc, test_save_times_dense);
    tcase_add_test(tc, test_per_row);
    tcase_add_test(tc, test_tstops);
    tcase_add_test(tc, test_backwards);
    tcase_add_test(tc, test_fixed_step_counts);
    tcase_add_test(tc, test_fixed_step_grid);
    tcase_add_test(tc, test_max_steps);
    tcase_add_test(tc, test_nonfinite);
    tcase_add_test(tc, test_retry_region);
    tcase_add_test(tc, test_step_underflow);
    tcase_add_test(tc, test_record_contents);
    tcase_add_test(tc, test_error_norm_chunks);
    tcase_add_test(tc, test_record_thinning);
    tcase_add_test(tc, test_norm_blocks_prefix);
    tcase_add_test(tc, test_norm_blocks_value);
    tcase_add_test(tc, test_norm_blocks_default);
    tcase_add_test(tc, test_norm_blocks_invalid);
    tcase_add_test(tc, test_at_tstop);
    suite_add_tcase(su, tc);

    tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_solver_section);
    tcase_add_test(tc, test_problem_section);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(solve_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
