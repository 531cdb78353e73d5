/*
 * The solve loop: accept/reject, save times by dense output, tstops,
 * counting and the failure modes (maximum steps, step-size underflow,
 * non-finite values). Step-size proposals come from core/controller.c,
 * steps from the RK engine (core/rk.c).
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "nde/nde.h"
#include "rk.h"

/* A non-finite step is retried this many times in a row, each time with a
 * quarter of the step, before the solve gives up. */
#define MAX_RETRIES 30
#define RETRY_SHRINK 0.25

/* An adaptive step that would leave less than 1% of itself before a stop is
 * stretched onto the stop (no sliver steps); fixed steps only absorb
 * round-off. */
#define LAND_STRETCH_ADAPTIVE 1.01
#define LAND_STRETCH_FIXED (1.0 + 1e-8)
#define RTOL_MIN (10 * DBL_EPSILON)

static int all_finite(const double *v, size_t n);

const nde_key nde_solve_keys[] = {
    {"rtol", NDE_KEY_DOUBLE, "1e-6",
     "relative tolerance (scaled RMS error norm, adaptive solvers)"},
    {"atol", NDE_KEY_DOUBLE, "1e-6", "absolute tolerance"},
    {"dt", NDE_KEY_DOUBLE, "0",
     "step size: first step of an adaptive solver (0 = automatic), the "
     "step of a fixed-step solver (must be > 0)"},
    {"max_steps", NDE_KEY_INT, "100000",
     "most steps (accepted + rejected) per solve"},
    {"dtmin", NDE_KEY_DOUBLE, "0",
     "smallest allowed |step|; below it the solve stops with a step-size "
     "underflow"},
    {"dtmax", NDE_KEY_DOUBLE, "0", "largest allowed |step| (0 = unlimited)"},
    {"safety", NDE_KEY_DOUBLE, "0.9", "PI controller safety factor"},
    {"qmin", NDE_KEY_DOUBLE, "0.2", "smallest step-size ratio h_new/h"},
    {"qmax", NDE_KEY_DOUBLE, "10", "largest step-size ratio h_new/h"},
    {"beta1", NDE_KEY_DOUBLE, "",
     "PI exponent on the current error (default 7/(10 p), p = the solver's "
     "order)"},
    {"beta2", NDE_KEY_DOUBLE, "",
     "PI exponent on the previous error (default 2/(5 p))"},
    {NULL, 0, NULL, NULL}};

void nde_solve_opts_default(nde_solve_opts *o, const nde_solver_type *type)
{
    const double p = type->order > 0 ? type->order : 1;

    memset(o, 0, sizeof *o);
    o->rtol = 1e-6;
    o->atol = 1e-6;
    o->max_steps = 100000;
    o->ctrl.safety = 0.9;
    o->ctrl.qmin = 0.2;
    o->ctrl.qmax = 10.0;
    o->ctrl.beta1 = 7.0 / (10.0 * p);
    o->ctrl.beta2 = 2.0 / (5.0 * p);
    o->ctrl.err_prev = 1e-4;
}

static int opt_double(const nde_section *sec, const char *key, double *out,
                      double lo, int lo_open, double hi, nde_ctx *ctx)
{
    int rc;

    if ((rc = nde_get_double(sec, key, out, ctx)) != NDE_OK)
        return rc;
    if (*out < lo || (lo_open && *out == lo) || *out > hi)
        return nde_section_error(sec, key, ctx, "%g is outside %s%g, %g]",
                                 *out, lo_open ? "(" : "[", lo, hi);
    return NDE_OK;
}

int nde_solve_opts_from_section(nde_solve_opts *o, const nde_solver_type *type,
                                const nde_section *sec, nde_ctx *ctx)
{
    nde_controller *c = &o->ctrl;
    int rc;

    nde_solve_opts_default(o, type);
    if ((rc = opt_double(sec, "rtol", &o->rtol, 0, 0, 1, ctx)) ||
        (rc = opt_double(sec, "atol", &o->atol, 0, 0, HUGE_VAL, ctx)) ||
        (rc = opt_double(sec, "dt", &o->dt, 0, 0, HUGE_VAL, ctx)) ||
        (rc = opt_double(sec, "dtmin", &o->dtmin, 0, 0, HUGE_VAL, ctx)) ||
        (rc = opt_double(sec, "dtmax", &o->dtmax, 0, 0, HUGE_VAL, ctx)) ||
        (rc = opt_double(sec, "safety", &c->safety, 0, 1, 1, ctx)) ||
        (rc = opt_double(sec, "qmin", &c->qmin, 0, 1, 1, ctx)) ||
        (rc = opt_double(sec, "qmax", &c->qmax, 1, 0, HUGE_VAL, ctx)) ||
        (rc = nde_get_long(sec, "max_steps", &o->max_steps, ctx)))
        return rc;
    if (nde_section_has(sec, "beta1") &&
        (rc = opt_double(sec, "beta1", &c->beta1, 0, 0, 1, ctx)))
        return rc;
    if (nde_section_has(sec, "beta2") &&
        (rc = opt_double(sec, "beta2", &c->beta2, 0, 0, 1, ctx)))
        return rc;
    if (o->max_steps <= 0)
        return nde_section_error(sec, "max_steps", ctx, "must be > 0");
    if (o->rtol == 0 && o->atol == 0)
        return nde_section_error(sec, "atol", ctx,
                                 "rtol and atol cannot both be 0");
    /* A relative error below ten units of roundoff is rounding noise in
     * the error estimate itself; RADAU5 refuses such tolerances too. */
    if (o->rtol > 0 && o->rtol < RTOL_MIN)
        return nde_section_error(sec, "rtol", ctx,
                                 "%g is below %.1e, the smallest relative "
                                 "error double precision can resolve (use "
                                 "0 for a purely absolute tolerance)",
                                 o->rtol, RTOL_MIN);
    if ((type->info.provides & NDE_CAP_ADAPTIVE) == 0 && o->dt <= 0)
        return nde_section_error(sec, "dt", ctx,
                                 "solver '%s' is fixed-step (no error "
                                 "estimate): set dt > 0", type->info.name);
    return NDE_OK;
}

static double rms_scaled(const double *v, const double *y, size_t n,
                         double rtol, double atol)
{
    double sum = 0.0;

    for (size_t i = 0; i < n; i++) {
        const double q = v[i] / (atol + rtol * fabs(y[i]));
        sum += q * q;
    }
    return sqrt(sum / (double)n);
}

/* rms_scaled in the solve's norm (opts.norm_blocks): the largest block
 * RMS, or one RMS over all n values; NaN propagates. */
static double norm_scaled(const nde_solve_opts *o, const double *v,
                          const double *y, size_t n)
{
    double norm = 0.0, poison = 0.0;
    size_t off = 0;

    if (o->nnorm_blocks == 0)
        return rms_scaled(v, y, n, o->rtol, o->atol);
    for (size_t b = 0; b < o->nnorm_blocks; b++) {
        const double e = rms_scaled(v + off, y + off, o->norm_blocks[b],
                                    o->rtol, o->atol);
        poison += e * 0.0;
        if (e > norm)
            norm = e;
        off += o->norm_blocks[b];
    }
    return norm + poison;
}

/* Blocks non-empty and within the n values of the state. */
static int check_norm_blocks(nde_ctx *ctx, const nde_solve_opts *o, size_t n)
{
    size_t sum = 0;

    if (o->nnorm_blocks > 0 && !o->norm_blocks)
        return nde_error(ctx, NDE_EINVAL, "solve options: nnorm_blocks = %zu "
                         "but norm_blocks is NULL", o->nnorm_blocks);
    for (size_t b = 0; b < o->nnorm_blocks; b++) {
        if (o->norm_blocks[b] == 0)
            return nde_error(ctx, NDE_EINVAL, "solve options: error-norm "
                             "block %zu is empty (norm_blocks[%zu] = 0)", b,
                             b);
        if (o->norm_blocks[b] > n - sum)
            return nde_error(ctx, NDE_EINVAL, "solve options: the error-norm "
                             "blocks (%zu of them) cover more than the "
                             "state's %zu values (batch x dim)",
                             o->nnorm_blocks, n);
        sum += o->norm_blocks[b];
    }
    return NDE_OK;
}

int nde_initial_step(nde_solver *s, const nde_solve_opts *o,
                     const double *theta, double t0, const double *y0,
                     const double *f0, double t1, double *h0_out)
{
    nde_rk_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double dir = t1 >= t0 ? 1.0 : -1.0;
    const double span = fabs(t1 - t0);
    const int p = s->type->order;
    double d0, d1, d2 = 0.0, h0, h1, dmax;
    int rc, tries;

    if (s->type->ops)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "initial step: solver '%s' is fixed-step (ops)",
                         s->type->info.name);
    if (!(span > 0))
        return nde_error(s->ctx, NDE_EINVAL,
                         "initial step: t1 = t0 = %g (or not finite)", t0);
    if ((rc = check_norm_blocks(s->ctx, o, n)) != NDE_OK)
        return rc;
    /* Hairer's heuristic, methods.md 2.4, in the solve's error norm. */
    d0 = norm_scaled(o, y0, y0, n);
    d1 = norm_scaled(o, f0, y0, n);
    if (!isfinite(d0) || !isfinite(d1)) {
        if (all_finite(y0, n) && all_finite(f0, n))
            return nde_error(s->ctx, NDE_EINVAL,
                             "initial step: the error norm of the initial "
                             "state overflows: atol = %g (rtol = %g) is too "
                             "small for its size",
                             o->atol, o->rtol);
        return nde_error(s->ctx, NDE_ENONFINITE,
                         "non-finite initial state or derivative at t = %g",
                         t0);
    }
    h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    if (h0 > span)
        h0 = span;
    if (o->dtmax > 0 && h0 > o->dtmax)
        h0 = o->dtmax;
    for (tries = 0;; tries++) {
        const double hs = dir * h0;
        for (size_t i = 0; i < n; i++)
            w->y1[i] = y0[i] + hs * f0[i];
        s->counts.nfe++;
        rc = nde_field_eval(s->field, t0 + hs, w->y1, theta, w->f1, s->batch);
        if (rc == NDE_OK) {
            for (size_t i = 0; i < n; i++)
                w->f1[i] -= f0[i];
            d2 = norm_scaled(o, w->f1, y0, n) / h0;
            if (isfinite(d2))
                break;
        } else if (rc != NDE_ERETRY) {
            return rc;
        }
        if (tries == MAX_RETRIES)
            return nde_error(s->ctx, NDE_ENONFINITE,
                             "initial step: the field is non-finite near "
                             "t = %g for every trial step down to %g", t0, h0);
        h0 *= RETRY_SHRINK;
    }
    dmax = d1 > d2 ? d1 : d2;
    h1 = dmax <= 1e-15 ? fmax(1e-6, h0 * 1e-3) : pow(0.01 / dmax, 1.0 / p);
    h0 = fmin(100.0 * h0, h1);
    if (h0 > span)
        h0 = span;
    if (o->dtmax > 0 && h0 > o->dtmax)
        h0 = o->dtmax;
    if (h0 < o->dtmin)
        h0 = o->dtmin;
    *h0_out = dir * h0;
    return NDE_OK;
}

/* 0 * v is NaN exactly when v is not finite. Eight sums, not one: the
 * fixed-step loop checks y and aux every step, and a single sum is one
 * add latency per value; these eight gcc -O2 pairs into SSE2 vectors. */
static int all_finite(const double *v, size_t n)
{
    double p0 = 0.0, p1 = 0.0, p2 = 0.0, p3 = 0.0;
    double p4 = 0.0, p5 = 0.0, p6 = 0.0, p7 = 0.0;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        p0 += v[i] * 0.0;
        p1 += v[i + 1] * 0.0;
        p2 += v[i + 2] * 0.0;
        p3 += v[i + 3] * 0.0;
        p4 += v[i + 4] * 0.0;
        p5 += v[i + 5] * 0.0;
        p6 += v[i + 6] * 0.0;
        p7 += v[i + 7] * 0.0;
    }
    for (; i < n; i++)
        p0 += v[i] * 0.0;
    return p0 + p1 + p2 + p3 + p4 + p5 + p6 + p7 == 0.0;
}

/* A fixed step dt that needs more than max_steps steps is refused before
 * the first one (rather than after max_steps of them). */
static int check_fixed_steps(nde_solver *s, const nde_solve_opts *o,
                             double t0, double t1)
{
    const double steps = floor(fabs(t1 - t0) / o->dt);

    if (steps > (double)o->max_steps)
        return nde_error(s->ctx, NDE_EMAXSTEPS,
                         "solver '%s': dt = %g takes at least %.0f steps on "
                         "[%g, %g], more than max_steps = %ld",
                         s->type->info.name, o->dt, steps, t0, t1,
                         o->max_steps);
    return NDE_OK;
}

/* Times in [t0, t1] (closed) or, for tstops, any order-respecting list. */
static int check_times(nde_ctx *ctx, const char *what, const double *ts,
                       size_t n, double t0, double t1, int in_range)
{
    const double dir = t1 >= t0 ? 1.0 : -1.0;

    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ts[i]))
            return nde_error(ctx, NDE_EINVAL, "%s[%zu] is not finite", what, i);
        if (in_range && (dir * (ts[i] - t0) < 0 || dir * (ts[i] - t1) > 0))
            return nde_error(ctx, NDE_EINVAL,
                             "%s[%zu] = %g lies outside [t0, t1] = [%g, %g]",
                             what, i, ts[i], t0, t1);
        if (i > 0 && dir * (ts[i] - ts[i - 1]) < 0)
            return nde_error(ctx, NDE_EINVAL,
                             "%s must be %s in the direction of integration "
                             "(%s[%zu] = %g after %g)", what,
                             dir > 0 ? "non-decreasing" : "non-increasing",
                             what, i, ts[i], ts[i - 1]);
    }
    return NDE_OK;
}

static int record_begin(nde_solver *s, nde_trajectory *rec, size_t n,
                        double t0)
{
    const unsigned flags = s->type->info.provides;
    const char *name = s->type->info.name;

    if ((rec->record & NDE_NEEDS_DENSE) && !(flags & NDE_CAP_DENSE))
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "recording dense output: solver '%s' has none",
                         name);
    if ((rec->record & NDE_NEEDS_ERROR_EST) && !(flags & NDE_CAP_ADAPTIVE))
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "recording error estimates: solver '%s' has none "
                         "(not adaptive)", name);
    if ((rec->record & NDE_NEEDS_STIFFNESS) && !(flags & NDE_CAP_STIFFNESS))
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "recording stiffness estimates: solver '%s' has "
                         "none", name);
    if (nde_trajectory_begin(rec, n, nde_solver_stages(s), t0) != NDE_OK)
        return nde_error(s->ctx, NDE_ENOMEM,
                         "out of memory for the trajectory record");
    return NDE_OK;
}

/* Append the accepted step (t, h) from y to y_next; the engine's k still
 * hold this step's stages (the FSAL swap waits for the next step). */
static int record_step(nde_solver *s, nde_trajectory *rec, double t,
                       double h, const double *y, const double *y_next,
                       double eest)
{
    const nde_rk_work *w = s->work;
    double stiff = 0.0;

    if (rec->record & NDE_NEEDS_STIFFNESS)
        nde_solver_stiffness(s, y_next, &stiff);
    if (nde_trajectory_push(rec, t, h, y, w->k, eest, stiff) != NDE_OK)
        return nde_error(s->ctx, NDE_ENOMEM,
                         "out of memory recording step %zu of the solve",
                         rec->nsteps);
    return NDE_OK;
}

/* Landed on tstop *istop at t: call at_tstop for every tstop at t (a
 * non-zero return goes to *rc) and drop the FSAL stage (a tstop may be a
 * discontinuity, or at_tstop has changed y). Returns the next step size:
 * the step size carries on, and a step cut short to land here says
 * nothing against the size the controller had planned (habs), so that is
 * kept rather than ramping up again from the short step. Out of line:
 * the loop's hot path never comes here. */
static __attribute__((noinline)) double
at_tstops(nde_solver *s, const nde_solve_opts *o, double dir, double t,
          double *y, size_t *istop, int adaptive, double h, double habs,
          double next, int *rc)
{
    for (; *istop < o->ntstops && dir * (o->tstops[*istop] - t) <= 0;
         (*istop)++)
        if (o->at_tstop &&
            (*rc = o->at_tstop(o->at_tstop_user, *istop, t, y)) != 0)
            return next;
    nde_solver_invalidate(s);
    return adaptive && next < habs && fabs(h) < habs ? habs : next;
}

static int solve_loop(nde_solver *s, const nde_solve_opts *o,
                      const double *theta, double t0, const double *y0,
                      double t1, size_t nsave, const double *tsave,
                      double *ysave, nde_stats *st)
{
    const unsigned flags = s->type->info.provides;
    const int adaptive = (flags & NDE_CAP_ADAPTIVE) != 0;
    const int dense = (flags & NDE_CAP_DENSE) != 0;
    const double stretch = adaptive ? LAND_STRETCH_ADAPTIVE : LAND_STRETCH_FIXED;
    const double dir = t1 >= t0 ? 1.0 : -1.0;
    const size_t n = s->batch * s->field->dim;
    nde_trajectory *rec = o->record;
    nde_rk_work *w = s->work;
    nde_pi pi;
    double *y = w->y, *yn = w->y_next, *err = adaptive ? w->err : NULL;
    size_t isave = 0, istop = 0;
    long nsteps = 0;
    int nretry = 0, rc;
    double t = t0, habs;

    if (!isfinite(t0) || !isfinite(t1))
        return nde_error(s->ctx, NDE_EINVAL, "t0 = %g, t1 = %g: not finite",
                         t0, t1);
    if (o->max_steps <= 0 || o->rtol < 0 || o->atol < 0 ||
        (adaptive && o->rtol == 0 && o->atol == 0))
        return nde_error(s->ctx, NDE_EINVAL,
                         "solve options: need max_steps > 0, rtol >= 0, "
                         "atol >= 0, not both 0");
    if (!adaptive && !(o->dt > 0))
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s' is fixed-step (no error estimate): "
                         "dt must be > 0, got %g", s->type->info.name, o->dt);
    if (!adaptive && (rc = check_fixed_steps(s, o, t0, t1)) != NDE_OK)
        return rc;
    if ((rc = check_times(s->ctx, "save times", tsave, nsave, t0, t1, 1)) ||
        (rc = check_times(s->ctx, "tstops", o->tstops, o->ntstops, t0, t1, 0)) ||
        (rc = check_norm_blocks(s->ctx, o, n)))
        return rc;
    if (!all_finite(y0, n))
        return nde_error(s->ctx, NDE_ENONFINITE,
                         "the initial state is not finite");
    if (rec && (rc = record_begin(s, rec, n, t0)) != NDE_OK)
        return rc;

    memcpy(y, y0, n * sizeof *y);
    nde_solver_invalidate(s);
    while (isave < nsave && tsave[isave] == t0) {
        memcpy(ysave + isave * n, y0, n * sizeof *y);
        isave++;
    }
    while (istop < o->ntstops && dir * (o->tstops[istop] - t0) <= 0)
        istop++;
    if (t1 == t0) {
        if (rec)
            nde_trajectory_end(rec, t1, y);
        return NDE_OK;
    }

    nde_pi_init(&pi, &o->ctrl);
    if (adaptive && o->dt == 0) {
        const double *f0;
        double h0;
        rc = nde_solver_first_stage(s, theta, t0, y, &f0);
        if (rc == NDE_ERETRY)
            return nde_error(s->ctx, NDE_ENONFINITE,
                             "the field is not finite at the initial state "
                             "(t = %g)", t0);
        if (rc != NDE_OK)
            return rc;
        if ((rc = nde_initial_step(s, o, theta, t0, y, f0, t1, &h0)))
            return rc;
        habs = fabs(h0);
    } else {
        habs = o->dt;
    }
    if (o->dtmax > 0 && habs > o->dtmax)
        habs = o->dtmax;

    while (t != t1) {
        double stop = t1, h, t_new, eest = 0.0;
        int land = 0, nonfinite = 0;

        if (istop < o->ntstops && dir * (o->tstops[istop] - t1) < 0)
            stop = o->tstops[istop];
        if (!dense && isave < nsave && dir * (tsave[isave] - stop) < 0)
            stop = tsave[isave];
        h = dir * habs;
        if (fabs(stop - t) <= habs * stretch) {
            h = stop - t;
            land = 1;
        }
        if (fabs(h) <= 4.0 * DBL_EPSILON * fabs(t) ||
            (!land && fabs(h) < o->dtmin)) {
            if (nretry > 0)
                return nde_error(s->ctx, NDE_ENONFINITE,
                                 "non-finite values at t = %g persist down "
                                 "to step size %g", t, fabs(h));
            return nde_error(s->ctx, NDE_ESTEPSIZE,
                             "step size underflow at t = %g: |h| = %g is "
                             "below %s", t, fabs(h),
                             fabs(h) < o->dtmin ? "dtmin" : "round-off");
        }
        if (nsteps >= o->max_steps)
            return nde_error(s->ctx, NDE_EMAXSTEPS,
                             "max_steps = %ld reached at t = %g before "
                             "t1 = %g", o->max_steps, t, t1);
        nsteps++;

        rc = nde_rk_step(s, theta, t, h, y, yn, err, o->rtol, o->atol,
                         o->norm_blocks, o->nnorm_blocks, &eest);
        if (rc == NDE_ERETRY) {
            nonfinite = 1;
        } else if (rc != NDE_OK) {
            return rc;
        } else if (adaptive) {
            nonfinite = !isfinite(eest);
        } else {
            nonfinite = !all_finite(yn, n);
        }
        if (nonfinite) {
            st->retries++;
            st->steps_rejected++;
            if (++nretry > MAX_RETRIES)
                return nde_error(s->ctx, NDE_ENONFINITE,
                                 "non-finite values at t = %g in %d retries "
                                 "in a row (last |h| = %g)", t, MAX_RETRIES,
                                 fabs(h));
            habs = fabs(h) * RETRY_SHRINK;
            continue;
        }
        nretry = 0;
        if (eest > 1.0) {
            st->steps_rejected++;
            habs = fabs(nde_pi_reject(&pi, eest, h));
            continue;
        }

        st->steps_accepted++;
        if (rec && (rc = record_step(s, rec, t, h, y, yn, eest)) != NDE_OK)
            return rc;
        t_new = land ? stop : t + h;
        while (isave < nsave && dir * (tsave[isave] - t_new) <= 0) {
            double *out = ysave + isave * n;
            if (tsave[isave] == t_new)
                memcpy(out, yn, n * sizeof *out);
            else
                nde_solver_dense(s, y, h, (tsave[isave] - t) / h, out);
            isave++;
        }
        if (fabs(h) < st->h_min)
            st->h_min = fabs(h);
        if (fabs(h) > st->h_max)
            st->h_max = fabs(h);
        {
            double *tmp = y;
            y = yn;
            yn = tmp;
        }
        t = t_new;
        nde_solver_accept(s);
        {
            double next = adaptive ? fabs(nde_pi_accept(&pi, eest, h))
                                   : o->dt;
            if (land && istop < o->ntstops && stop == o->tstops[istop]) {
                int trc = NDE_OK;
                next = at_tstops(s, o, dir, t, y, &istop, adaptive, h, habs,
                                 next, &trc);
                if (trc != NDE_OK)
                    return trc;
            }
            habs = next;
        }
        if (o->dtmax > 0 && habs > o->dtmax)
            habs = o->dtmax;
    }
    if (rec)
        nde_trajectory_end(rec, t1, y);
    return NDE_OK;
}

int nde_solve(nde_solver *s, const nde_solve_opts *opts, const double *theta,
              double t0, const double *y0, double t1, size_t nsave,
              const double *tsave, double *ysave, nde_stats *stats)
{
    const long nfe0 = s->counts.nfe;
    nde_stats st;
    int rc;

    memset(&st, 0, sizeof st);
    st.h_min = HUGE_VAL;
    if (s->type->ops)
        rc = nde_ops_solve(s, opts, theta, t0, y0, t1, nsave, tsave, ysave,
                           &st);
    else
        rc = solve_loop(s, opts, theta, t0, y0, t1, nsave, tsave, ysave, &st);
    st.nfe = s->counts.nfe - nfe0;
    if (st.steps_accepted == 0)
        st.h_min = 0.0;
    st.status = rc;
    if (stats)
        *stats = st;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Fixed steps of solvers with ops                                     */

int nde_step_grid_init(nde_step_grid *g, double t0, double t1, double dt,
                       const double *tsave, size_t nsave,
                       const double *tstops, size_t ntstops, nde_ctx *ctx)
{
    int rc;

    if (!isfinite(t0) || !isfinite(t1) || !(t1 > t0))
        return nde_error(ctx, NDE_EINVAL, "fixed-step grid: needs t0 < t1, "
                         "both finite (t0 = %g, t1 = %g); solvers with ops "
                         "integrate forwards only", t0, t1);
    if (!(dt > 0) || !isfinite(dt))
        return nde_error(ctx, NDE_EINVAL, "fixed-step grid: needs a positive "
                         "step dt, got %g", dt);
    /* The Brownian Interval's bound, and far below size_t's range. */
    if ((t1 - t0) / dt >= 0x1p48)
        return nde_error(ctx, NDE_EINVAL, "fixed-step grid: dt = %g gives "
                         "more than 2^48 steps on [%g, %g]", dt, t0, t1);
    if ((rc = check_times(ctx, "save times", tsave, nsave, t0, t1, 1)) ||
        (rc = check_times(ctx, "tstops", tstops, ntstops, t0, t1, 0)))
        return rc;
    g->t0 = t0;
    g->t1 = t1;
    g->dt = dt;
    g->cells = nde_grid_cells(t0, t1, dt);
    g->tsave = tsave;
    g->nsave = nsave;
    g->tstops = tstops;
    g->ntstops = ntstops;
    return NDE_OK;
}

static double grid_time(const nde_step_grid *g, size_t k)
{
    return nde_grid_time(g->t0, g->t1, g->dt, g->cells, k);
}

/* The grid point nearest to s (s in [t0, t1]). */
static double nearest_grid_time(const nde_step_grid *g, double s)
{
    double r = (s - g->t0) / g->dt + 0.5;
    size_t k = r > 0.0 ? (size_t)r : 0;

    if (k > g->cells)
        k = g->cells;
    /* The last cell may be short: t1 can be nearer than k's time. */
    if (k + 1 <= g->cells &&
        fabs(grid_time(g, k + 1) - s) < fabs(grid_time(g, k) - s))
        k++;
    return grid_time(g, k);
}

double nde_step_grid_snap(const nde_step_grid *g, double s)
{
    double gp;

    if (s <= g->t0)
        return g->t0;
    if (s >= g->t1)
        return g->t1;
    gp = nearest_grid_time(g, s);
    return fabs(s - gp) <= NDE_STEP_GRID_SNAP * g->dt ? gp : s;
}

/* First index i of the sorted ts[0..n) whose snapped time is > t (snapping
 * is monotone, so the snapped times are sorted too). */
static size_t upper_snapped(const nde_step_grid *g, const double *ts,
                            size_t n, double t)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (nde_step_grid_snap(g, ts[mid]) > t)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* First index i of the sorted ts[0..n) whose snapped time is >= t. */
static size_t lower_snapped(const nde_step_grid *g, const double *ts,
                            size_t n, double t)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (nde_step_grid_snap(g, ts[mid]) >= t)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

double nde_step_grid_next(const nde_step_grid *g, double t)
{
    double next, c;
    size_t k, i;

    if (t >= g->t1)
        return g->t1;
    if (t < g->t0)
        return g->t0;
    /* The grid point after t: start from the rounded cell index and fix
     * it up, so that the times are exactly those of nde_grid_time. */
    k = (size_t)((t - g->t0) / g->dt);
    if (k > g->cells)
        k = g->cells;
    while (k > 0 && grid_time(g, k) > t)
        k--;
    while (grid_time(g, k) <= t)
        k++;
    next = grid_time(g, k);
    i = upper_snapped(g, g->tsave, g->nsave, t);
    if (i < g->nsave && (c = nde_step_grid_snap(g, g->tsave[i])) < next)
        next = c;
    i = upper_snapped(g, g->tstops, g->ntstops, t);
    if (i < g->ntstops && (c = nde_step_grid_snap(g, g->tstops[i])) < next)
        next = c;
    return next;
}

double nde_step_grid_prev(const nde_step_grid *g, double t)
{
    double prev, c;
    size_t k, i;

    if (t <= g->t0)
        return g->t0;
    if (t > g->t1)
        return g->t1;
    /* The grid point before t (t0 at worst). */
    k = (size_t)((t - g->t0) / g->dt) + 1;
    if (k > g->cells)
        k = g->cells;
    while (k < g->cells && grid_time(g, k + 1) < t)
        k++;
    while (grid_time(g, k) >= t)
        k--;
    prev = grid_time(g, k);
    i = lower_snapped(g, g->tsave, g->nsave, t);
    if (i > 0 && (c = nde_step_grid_snap(g, g->tsave[i - 1])) > prev)
        prev = c;
    i = lower_snapped(g, g->tstops, g->ntstops, t);
    if (i > 0 && (c = nde_step_grid_snap(g, g->tstops[i - 1])) > prev)
        prev = c;
    return prev;
}

/* The Brownian path must cover the solve's interval with one channel per
 * state value. A path on the solve's own grid (t0, t1, dt) is queried by
 * whole cells, the fast case; any other is exact but slower. */
static int check_brownian(nde_solver *s, const nde_brownian *bm, double t0,
                          double t1, size_t n)
{
    const char *name = s->type->info.name;

    if (!bm)
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s' integrates SDEs: the solve needs a "
                         "Brownian path (solve options: brownian, reset to "
                         "t0, t1, dt and n = batch x dim)", name);
    if (nde_brownian_grid_time(bm, 0) > t0 ||
        nde_brownian_grid_time(bm, nde_brownian_cells(bm)) < t1)
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s': the Brownian path on [%g, %g] does "
                         "not cover the solve's interval [%g, %g]: reset it "
                         "with the solve's t0, t1 and dt", name,
                         nde_brownian_grid_time(bm, 0),
                         nde_brownian_grid_time(bm, nde_brownian_cells(bm)),
                         t0, t1);
    if (nde_brownian_channels(bm) != n)
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s': the Brownian path has %zu channels, "
                         "the solve's state %zu values (batch x dim): reset "
                         "it with n = %zu", name, nde_brownian_channels(bm),
                         n, n);
    return NDE_OK;
}

static __attribute__((noinline)) int
ops_nonfinite(nde_solver *s, double t, double h, int sde)
{
    return nde_error(s->ctx, NDE_ENONFINITE,
                     "solver '%s': the drift%s produced non-finite values in "
                     "the step from t = %g to %g (fixed step: no retry)",
                     s->type->info.name, sde ? " or diffusion" : "", t,
                     t + h);
}

int nde_ops_solve(nde_solver *s, const nde_solve_opts *o, const double *theta,
                  double t0, const double *y0, double t1, size_t nsave,
                  const double *tsave, double *ysave, nde_stats *st)
{
    nde_ops_solver *os = (nde_ops_solver *)s;
    const nde_solver_ops *ops = s->type->ops;
    const int sde = nde_solver_is_sde(s);
    const size_t n = s->batch * s->field->dim, na = (size_t)ops->aux * n;
    nde_trajectory *rec = o->record;
    double *y = os->y, *yn = os->y_next, *aux = os->aux, *auxn = os->aux_next;
    double *dw = sde ? os->dw : NULL;
    size_t isave = 0, istop = 0;
    nde_step_grid g;
    double t = t0;
    int rc;

    if (!isfinite(t0) || !isfinite(t1) || !(t1 > t0))
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s' integrates forwards only: needs t1 > "
                         "t0 (t0 = %g, t1 = %g)", s->type->info.name, t0, t1);
    if (!(o->dt > 0) || !isfinite(o->dt))
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s' is fixed-step: it needs a positive "
                         "step dt, got %g", s->type->info.name, o->dt);
    if (o->max_steps <= 0)
        return nde_error(s->ctx, NDE_EINVAL,
                         "solve options: need max_steps > 0");
    if ((rc = nde_step_grid_init(&g, t0, t1, o->dt, tsave, nsave, o->tstops,
                                 o->ntstops, s->ctx)) != NDE_OK)
        return rc;
    if ((rc = check_fixed_steps(s, o, t0, t1)) != NDE_OK)
        return rc;
    if (sde && (rc = check_brownian(s, o->brownian, t0, t1, n)))
        return rc;
    if (!all_finite(y0, n))
        return nde_error(s->ctx, NDE_ENONFINITE,
                         "the initial state is not finite");
    if (rec) {
        if (rec->record & (NDE_NEEDS_DENSE | NDE_NEEDS_ERROR_EST |
                           NDE_NEEDS_STIFFNESS))
            return nde_error(s->ctx, NDE_ECAPABILITY,
                             "recording dense output, error or stiffness "
                             "estimates: solver '%s' (fixed-step, with ops) "
                             "has none", s->type->info.name);
        if (nde_trajectory_begin_ops(rec, n, ops->aux, t0, tsave, nsave))
            return nde_error(s->ctx, NDE_ENOMEM,
                             "out of memory for the trajectory record");
    }

    memcpy(y, y0, n * sizeof *y);
    if ((rc = ops->start(s, theta, t0, y, aux)) != NDE_OK) {
        if (rc == NDE_ERETRY)
            return ops_nonfinite(s, t0, 0.0, sde);
        return rc;
    }
    if (!all_finite(aux, na))
        return ops_nonfinite(s, t0, 0.0, sde);
    while (isave < nsave && nde_step_grid_snap(&g, tsave[isave]) == t0) {
        memcpy(ysave + isave * n, y0, n * sizeof *y);
        isave++;
    }
    while (istop < o->ntstops && nde_step_grid_snap(&g, o->tstops[istop]) <= t0)
        istop++;

    while (t < t1) {
        const double tn = nde_step_grid_next(&g, t), h = tn - t;

        if (st->steps_accepted >= o->max_steps)
            return nde_error(s->ctx, NDE_EMAXSTEPS,
                             "max_steps = %ld reached at t = %g before "
                             "t1 = %g", o->max_steps, t, t1);
        if (sde && (rc = nde_brownian_increment(o->brownian, t, tn, dw)))
            return rc;
        rc = ops->step(s, theta, t, h, dw, y, aux, yn, auxn);
        if (rc == NDE_ERETRY || (rc == NDE_OK && (!all_finite(yn, n) ||
                                                  !all_finite(auxn, na))))
            return ops_nonfinite(s, t, h, sde);
        if (rc != NDE_OK)
            return rc;
        st->steps_accepted++;
        if (h < st->h_min)
            st->h_min = h;
        if (h > st->h_max)
            st->h_max = h;
        if (rec && nde_trajectory_push_ops(rec, t, h, y, aux) != NDE_OK)
            return nde_error(s->ctx, NDE_ENOMEM,
                             "out of memory recording step %zu of the solve",
                             rec->nsteps);
        /* Save times are step ends (the grid stops on them, or on the
         * grid point they were snapped to). */
        while (isave < nsave && nde_step_grid_snap(&g, tsave[isave]) <= tn) {
            memcpy(ysave + isave * n, yn, n * sizeof *yn);
            isave++;
        }
        {
            double *tmp = y;
            y = yn;
            yn = tmp;
            tmp = aux;
            aux = auxn;
            auxn = tmp;
        }
        t = tn;
        for (; istop < o->ntstops && nde_step_grid_snap(&g, o->tstops[istop]) <= t;
             istop++)
            if (o->at_tstop &&
                (rc = o->at_tstop(o->at_tstop_user, istop, t, y)) != 0)
                return rc;
    }
    if (rec)
        nde_trajectory_end_ops(rec, t1, y, aux);
    return NDE_OK;
}
