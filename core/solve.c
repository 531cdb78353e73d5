/*
 * The one solve driver, for every solver through its ops: adaptive or
 * fixed steps, ODE or SDE, with or without aux state; accept/reject, save
 * times (by dense output, or step ends), tstops, counting and the failure
 * modes (maximum steps, step-size underflow, non-finite values).
 * Step-size proposals come from core/controller.c, fixed-step boundaries
 * from core/grid.c.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "rk.h"

/* A non-finite step is retried this many times in a row, each time with a
 * quarter of the step, before the solve gives up. */
#define MAX_RETRIES 30
#define RETRY_SHRINK 0.25

/* An adaptive step that would leave less than 1% of itself before a stop is
 * stretched onto the stop (no sliver steps). */
#define LAND_STRETCH 1.01
#define RTOL_MIN (10 * DBL_EPSILON)

/* An adaptive SDE step may end up to this fraction of itself away from
 * where the controller put it (nde_brownian_snap). */
#define SDE_SNAP (1.0 / 256.0)

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
    {"controller", NDE_KEY_WORD, "pi",
     "step-size controller of an adaptive solver: pi (OrdinaryDiffEq's), "
     "i or pid (diffrax's PIDController)"},
    {"pcoeff", NDE_KEY_DOUBLE, "0", "pid: proportional coefficient"},
    {"icoeff", NDE_KEY_DOUBLE, "1", "pid: integral coefficient"},
    {"dcoeff", NDE_KEY_DOUBLE, "0", "pid: derivative coefficient"},
    {"per_row_steps", NDE_KEY_BOOL, "false",
     "adaptive ODE solvers: every row of the batch takes its own step "
     "sizes and accept/reject decisions (solved one row at a time), so a "
     "hard row does not drag the whole batch; NFE then count one-row "
     "evaluations"},
    {"brownian", NDE_KEY_WORD, "tree",
     "SDE solvers: how the Brownian path is refined inside its grid cells "
     "(cells of dt): tree (bisection, the same path in any query order; "
     "adaptive steps end where it is cheap) or split (at the query times, "
     "as torchsde's Brownian Interval: O(1) a query anywhere, the values "
     "inside a cell depend on the order of its queries)"},
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
    o->ctrl.icoeff = 1.0;
    /* diffrax's k: the order; for SDE solvers the strong order + 0.5 */
    o->ctrl.order = type->info.provides &
                            (NDE_CAP_SDE_ITO | NDE_CAP_SDE_STRATONOVICH)
                        ? p / 2.0 + 0.5
                        : p;
}

static const nde_controller_ops *const controllers[] = {
    &nde_controller_pi, &nde_controller_i, &nde_controller_pid};

/* Which keys belong to which controller: the others are refused, so a
 * coefficient cannot be set for a controller that ignores it. */
static int controller_keys(const nde_section *sec, const char *name,
                           nde_ctx *ctx)
{
    static const struct {
        const char *key, *owner;
    } own[] = {{"beta1", "pi"}, {"beta2", "pi"}, {"pcoeff", "pid"},
               {"icoeff", "pid"}, {"dcoeff", "pid"}};

    for (size_t i = 0; i < sizeof own / sizeof *own; i++)
        if (strcmp(name, own[i].owner) != 0 &&
            nde_section_has(sec, own[i].key))
            return nde_section_error(sec, own[i].key, ctx,
                                     "belongs to controller = %s, not %s",
                                     own[i].owner, name);
    return NDE_OK;
}

static int controller_from_section(nde_controller *c, const nde_section *sec,
                                   nde_ctx *ctx)
{
    const char *name;
    int rc;

    if ((rc = nde_get_string(sec, "controller", &name, ctx)) != NDE_OK)
        return rc;
    c->ops = NULL;
    for (size_t i = 0; i < sizeof controllers / sizeof *controllers; i++)
        if (strcmp(name, controllers[i]->name) == 0)
            c->ops = controllers[i];
    if (!c->ops)
        return nde_section_error(sec, "controller", ctx,
                                 "'%s' is not a controller (pi, i or pid)",
                                 name);
    if ((rc = controller_keys(sec, name, ctx)) != NDE_OK)
        return rc;
    if ((nde_section_has(sec, "beta1") &&
         (rc = nde_get_double_in(sec, "beta1", 0, 0, 1, 0, &c->beta1, ctx))) ||
        (nde_section_has(sec, "beta2") &&
         (rc = nde_get_double_in(sec, "beta2", 0, 0, 1, 0, &c->beta2, ctx))) ||
        (rc = nde_get_double_in(sec, "pcoeff", -10, 0, 10, 0,
                                &c->pcoeff, ctx)) ||
        (rc = nde_get_double_in(sec, "icoeff", 0, 1, 10, 0,
                                &c->icoeff, ctx)) ||
        (rc = nde_get_double_in(sec, "dcoeff", -10, 0, 10, 0,
                                &c->dcoeff, ctx)))
        return rc;
    return NDE_OK;
}

/* The key brownian: tree or split, the latter for SDE solvers. */
static int brownian_from_section(nde_solve_opts *o,
                                 const nde_solver_type *type,
                                 const nde_section *sec, nde_ctx *ctx)
{
    const char *name;
    int rc;

    if ((rc = nde_get_string(sec, "brownian", &name, ctx)) != NDE_OK)
        return rc;
    if (strcmp(name, "tree") != 0 && strcmp(name, "split") != 0)
        return nde_section_error(sec, "brownian", ctx,
                                 "'%s' is not a refinement (tree or split)",
                                 name);
    o->brownian_split = strcmp(name, "split") == 0;
    if (!o->brownian_split)
        return NDE_OK;
    if (!(type->info.provides & (NDE_CAP_SDE_ITO | NDE_CAP_SDE_STRATONOVICH)))
        return nde_section_error(sec, "brownian", ctx,
                                 "'%s' is not an SDE solver: it has no "
                                 "Brownian path to refine",
                                 type->info.name);
    return NDE_OK;
}

int nde_solve_opts_from_section(nde_solve_opts *o, const nde_solver_type *type,
                                const nde_section *sec, nde_ctx *ctx)
{
    nde_controller *c = &o->ctrl;
    int rc;

    nde_solve_opts_default(o, type);
    if ((rc = nde_get_double_in(sec, "rtol", 0, 0, 1, 0, &o->rtol, ctx)) ||
        (rc = nde_get_double_in(sec, "atol", 0, 0, HUGE_VAL, 0,
                                &o->atol, ctx)) ||
        (rc = nde_get_double_in(sec, "dt", 0, 0, HUGE_VAL, 0, &o->dt, ctx)) ||
        (rc = nde_get_double_in(sec, "dtmin", 0, 0, HUGE_VAL, 0,
                                &o->dtmin, ctx)) ||
        (rc = nde_get_double_in(sec, "dtmax", 0, 0, HUGE_VAL, 0,
                                &o->dtmax, ctx)) ||
        (rc = nde_get_double_in(sec, "safety", 0, 1, 1, 0, &c->safety, ctx)) ||
        (rc = nde_get_double_in(sec, "qmin", 0, 1, 1, 0, &c->qmin, ctx)) ||
        (rc = nde_get_double_in(sec, "qmax", 1, 0, HUGE_VAL, 0,
                                &c->qmax, ctx)) ||
        (rc = nde_get_long(sec, "max_steps", &o->max_steps, ctx)) ||
        (rc = nde_get_bool(sec, "per_row_steps", &o->per_row, ctx)) ||
        (rc = brownian_from_section(o, type, sec, ctx)))
        return rc;
    if ((rc = controller_from_section(c, sec, ctx)) != NDE_OK)
        return rc;
    /* A fixed-step solve has no step size of a row's own to choose, and an
     * SDE's rows share one Brownian path over batch x dim channels. */
    if (o->per_row &&
        (!(type->info.provides & NDE_CAP_ADAPTIVE) ||
         (type->info.provides & (NDE_CAP_SDE_ITO | NDE_CAP_SDE_STRATONOVICH))))
        return nde_section_error(sec, "per_row_steps", ctx,
                                 "needs an adaptive ODE solver, and '%s' is "
                                 "%s", type->info.name,
                                 type->info.provides & NDE_CAP_ADAPTIVE
                                     ? "an SDE solver"
                                     : "fixed-step");
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
    nde_solve_buffers *w = s->buf;
    const size_t n = s->batch * s->field->dim;
    const double dir = t1 >= t0 ? 1.0 : -1.0;
    const double span = fabs(t1 - t0);
    const int p = s->type->order;
    double d0, d1, d2 = 0.0, h0, h1, dmax;
    int rc, tries;

    if (!(s->type->info.provides & NDE_CAP_ADAPTIVE))
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "initial step: solver '%s' is fixed-step",
                         s->type->info.name);
    if (!(span > 0))
        return nde_error(s->ctx, NDE_EINVAL,
                         "initial step: t1 = t0 = %g (or not finite)", t0);
    if ((rc = check_norm_blocks(s->ctx, o, n)) != NDE_OK)
        return rc;
    /* Hairer, Norsett, Wanner, Solving ODEs I, Sec. II.4 (starting step
     * size), in the solve's error norm. */
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
int nde_check_times(nde_ctx *ctx, const char *what, const double *ts,
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

/* ------------------------------------------------------------------ */
/* The driver                                                          */

int nde_solve_buffers_create(size_t n, size_t w, int aux,
                             nde_solve_buffers **out)
{
    const size_t na = (size_t)aux * n;
    nde_solve_buffers *b;

    *out = NULL;
    if (!(b = calloc(1, sizeof *b)))
        return NDE_ENOMEM;
    if (!(b->block = malloc((6 * n + 2 * w + 2 * na) * sizeof(double)))) {
        free(b);
        return NDE_ENOMEM;
    }
    b->y = b->block;
    b->y_next = b->y + n;
    b->dw = b->y_next + n;
    b->err = b->dw + 2 * w;     /* dw: up to two blocks (solver.h) */
    b->f0 = b->err + n;
    b->y1 = b->f0 + n;
    b->f1 = b->y1 + n;
    b->aux = b->f1 + n;
    b->aux_next = b->aux + na;
    *out = b;
    return NDE_OK;
}

void nde_solve_buffers_destroy(nde_solve_buffers *b)
{
    if (b) {
        free(b->block);
        free(b);
    }
}

/* One solve: what it was asked, and where it has got to. */
typedef struct drive {
    nde_solver *s;
    const nde_solve_opts *o;
    const double *theta;
    double t0, t1, dir;
    size_t n, na;           /* values of y, of aux                         */
    int adaptive, dense, sde;
    nde_norm_spec norm;
    nde_trajectory *rec;
    size_t nsave;
    const double *tsave;
    double *ysave;
    size_t isave, istop;    /* the next save time and tstop to serve       */
    double save_at, stop_at; /* where they are served (dir x inf: none)   */
    nde_input *in;          /* the field's input (nde/input.h), or NULL    */
    const double *knots;    /* its knots: stops without an at_tstop call   */
    size_t nknots, iknot;   /* iknot counts in the direction of the solve  */
    double tstop_at, knot_at; /* the next tstop, the next knot; stop_at is
                                 the nearer one                          */
    nde_step_grid grid;     /* fixed-step solves                           */
    size_t kgrid;           /* the grid point the solve heads for          */
    nde_stats *st;
    nde_event *event;       /* opts.event (one row)                        */
    double g_prev;          /* the event at the last accepted step's end   */
    double *ev_y;           /* n: the dense output the root finder reads   */
    int fired;              /* the event fired: t1 is now its time         */
} drive;

/* The Brownian path must cover the solve's interval with n = batch x
 * nde_field_brownian_dim channels (one per state value for diagonal
 * noise). A path on the solve's own grid (t0, t1, dt) is queried by whole
 * cells, the fast case; any other is exact but slower. */
static int check_brownian(nde_solver *s, const nde_brownian *bm, double t0,
                          double t1, size_t n)
{
    const char *name = s->type->info.name;

    if (!bm)
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s' integrates SDEs: the solve needs a "
                         "Brownian path (solve options: brownian, reset to "
                         "t0, t1, dt and n = batch x dim)", name);
    if (!(t1 >= t0))
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s' integrates SDEs forwards only: needs "
                         "t1 >= t0 (t0 = %g, t1 = %g)", name, t0, t1);
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
                         "the solve's noise %zu (batch x the field's noise "
                         "channels, %zu x %zu): reset it with n = %zu", name,
                         nde_brownian_channels(bm), n, s->batch,
                         nde_field_brownian_dim(s->field), n);
    return NDE_OK;
}

static int check_options(const drive *d)
{
    nde_solver *s = d->s;
    const nde_solve_opts *o = d->o;

    if (!isfinite(d->t0) || !isfinite(d->t1))
        return nde_error(s->ctx, NDE_EINVAL, "t0 = %g, t1 = %g: not finite",
                         d->t0, d->t1);
    if (o->max_steps <= 0 || o->rtol < 0 || o->atol < 0 ||
        (d->adaptive && o->rtol == 0 && o->atol == 0))
        return nde_error(s->ctx, NDE_EINVAL,
                         "solve options: need max_steps > 0, rtol >= 0, "
                         "atol >= 0, not both 0");
    if (!d->adaptive && !(o->dt > 0 && isfinite(o->dt)))
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s' is fixed-step (no error estimate): "
                         "it needs a positive step dt, got %g",
                         s->type->info.name, o->dt);
    return NDE_OK;
}

/* An event is located on the dense output of an adaptive ODE solve of one
 * row (nde_solve hands a batch to the driver row by row). */
static int check_event(const drive *d)
{
    nde_solver *s = d->s;

    if (!d->adaptive || !d->dense || d->sde)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "an event needs an adaptive ODE solver with dense "
                         "output (e.g. tsit5, dopri5), and '%s' %s",
                         s->type->info.name,
                         d->sde ? "integrates SDEs"
                                : !d->adaptive ? "is fixed-step"
                                               : "has no dense output");
    if (s->batch != 1)
        return nde_error(s->ctx, NDE_EINVAL,
                         "an event is solved one row at a time, not %zu "
                         "rows in one record", s->batch);
    return NDE_OK;
}

/* Everything checked before the first step. */
static int drive_check(drive *d, const double *y0)
{
    nde_solver *s = d->s;
    const nde_solve_opts *o = d->o;
    int rc;

    if ((rc = check_options(d)) ||
        (rc = nde_check_times(s->ctx, "save times", d->tsave, d->nsave, d->t0,
                          d->t1, 1)) ||
        (rc = nde_check_times(s->ctx, "tstops", o->tstops, o->ntstops, d->t0,
                          d->t1, 0)) ||
        (rc = check_norm_blocks(s->ctx, o, d->n)))
        return rc;
    if (d->sde && (rc = check_brownian(s, o->brownian, d->t0, d->t1,
                                       nde_solver_noise_channels(s))))
        return rc;
    if (d->sde && o->brownian_split && !nde_brownian_has_split(o->brownian) &&
        (rc = nde_brownian_set_split(o->brownian, 1)))
        return rc;
    if (d->event && (rc = check_event(d)))
        return rc;
    if (!d->adaptive && d->t1 != d->t0 &&
        ((rc = nde_step_grid_init(&d->grid, d->t0, d->t1, o->dt, d->tsave,
                                  d->nsave, o->tstops, o->ntstops, s->ctx)) ||
         (rc = check_fixed_steps(s, o, d->t0, d->t1))))
        return rc;
    if (!all_finite(y0, d->n))
        return nde_error(s->ctx, NDE_ENONFINITE,
                         "the initial state is not finite");
    return NDE_OK;
}

static int record_begin(drive *d)
{
    nde_solver *s = d->s;
    nde_trajectory *rec = d->rec;
    const char *name = s->type->info.name;

    if ((rec->record & NDE_NEEDS_DENSE) && !s->ops->dense)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "recording dense output: solver '%s' has none",
                         name);
    if ((rec->record & NDE_NEEDS_ERROR_EST) && !d->adaptive)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "recording error estimates: solver '%s' has none "
                         "(not adaptive)", name);
    if ((rec->record & NDE_NEEDS_STIFFNESS) && !s->ops->stiffness)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "recording stiffness estimates: solver '%s' has "
                         "none", name);
    if (nde_trajectory_begin(rec, d->n, s->ops->dense ? s->stages : 0,
                             s->aux, d->t0, d->tsave, d->nsave) != NDE_OK)
        return nde_error(s->ctx, NDE_ENOMEM,
                         "out of memory for the trajectory record");
    return NDE_OK;
}

/* Append the accepted step (t, h) from (y, aux) to y_next; the solver's
 * last stages are still this step's (an FSAL hand-over waits for the next
 * step). */
static int record_step(const drive *d, double t, double h, const double *y,
                       const double *aux, const double *y_next, double eest)
{
    nde_solver *s = d->s;
    nde_trajectory *rec = d->rec;
    const double *k[NDE_RK_MAX_STAGES] = {NULL};
    double stiff = 0.0;

    if (rec->record & NDE_NEEDS_STIFFNESS)
        s->ops->stiffness(s, y_next, &stiff);
    if (rec->record & NDE_NEEDS_DENSE)
        s->ops->last_stages(s, k);
    if (nde_trajectory_push(rec, s->field->pool, t, h, y, aux, k, eest,
                            stiff) != NDE_OK)
        return nde_error(s->ctx, NDE_ENOMEM,
                         "out of memory recording step %zu of the solve",
                         rec->nsteps);
    return NDE_OK;
}

static void record_end(const drive *d, const double *y, const double *aux)
{
    if (d->rec)
        nde_trajectory_end(d->rec, d->t1, y, aux);
}

/* Where a save time or tstop is served: a fixed-step solve snaps it to
 * its grid, an adaptive one (or one of no step) takes it as given. */
static double served_at(const drive *d, double ts)
{
    if (d->adaptive || d->t1 == d->t0)
        return ts;
    return nde_step_grid_snap(&d->grid, ts);
}

/* After isave or istop moved on: where the next one is served. */
static void next_save(drive *d)
{
    d->save_at = d->isave < d->nsave ? served_at(d, d->tsave[d->isave])
                                     : d->dir * HUGE_VAL;
}

static void next_stop(drive *d)
{
    const nde_solve_opts *o = d->o;
    const size_t k = d->dir > 0 ? d->iknot : d->nknots - 1 - d->iknot;

    d->tstop_at = d->istop < o->ntstops ? served_at(d, o->tstops[d->istop])
                                        : d->dir * HUGE_VAL;
    d->knot_at = d->iknot < d->nknots ? served_at(d, d->knots[k])
                                      : d->dir * HUGE_VAL;
    d->stop_at = d->dir * (d->knot_at - d->tstop_at) < 0 ? d->knot_at
                                                         : d->tstop_at;
}

/* Past the stop at stop_at: the tstop if it is there, else the knot. */
static void pass_stop(drive *d)
{
    if (d->tstop_at == d->stop_at)
        d->istop++;
    else
        d->iknot++;
    next_stop(d);
}

/* Save times at t0 are y0; tstops and knots at t0 are behind us. The
 * input's segment of the first step: the one toward the first stop. */
static void save_start(drive *d, const double *y0)
{
    for (next_save(d); d->save_at == d->t0; next_save(d)) {
        memcpy(d->ysave + d->isave * d->n, y0, d->n * sizeof *y0);
        d->isave++;
    }
    for (next_stop(d); d->dir * (d->stop_at - d->t0) <= 0;)
        pass_stop(d);
    if (d->in)
        nde_input_select(d->in, d->t0,
                         (d->dir * (d->stop_at - d->t1) < 0 ? d->stop_at
                                                             : d->t1) - d->t0);
}

/* Save times served by the accepted step from (t, y) of size h ending at
 * t_new: its end, or its dense output inside. */
static void save_step(drive *d, double t, double h, double t_new,
                      const double *y, const double *y_next)
{
    while (d->dir * (d->save_at - t_new) <= 0) {
        const double ts = d->tsave[d->isave];
        double *out = d->ysave + d->isave * d->n;
        if (!d->adaptive || ts == t_new)
            memcpy(out, y_next, d->n * sizeof *out);
        else
            d->s->ops->dense(d->s, y, h, NULL, (ts - t) / h, out);
        d->isave++;
        next_save(d);
    }
}

/* Landed on a stop at t: call at_tstop for every tstop served at t (a
 * non-zero return goes to *rc) and drop the FSAL stage (a tstop may be a
 * discontinuity, or at_tstop has changed y). Returns the next step size:
 * the step size carries on, and a step cut short to land here says
 * nothing against the size the controller had planned (habs), so that is
 * kept rather than ramping up again from the short step. Out of line:
 * the loop's hot path never comes here. */
static __attribute__((noinline)) double
at_tstops(drive *d, double t, double *y, double h, double habs, double next,
          int *rc)
{
    const nde_solve_opts *o = d->o;
    int hit = 0;

    for (; d->dir * (d->stop_at - t) <= 0; pass_stop(d), hit = 1)
        if (o->at_tstop && d->tstop_at == d->stop_at &&
            (*rc = o->at_tstop(o->at_tstop_user, d->istop, t, y)) != 0)
            return next;
    if (hit)
        nde_solver_invalidate(d->s);
    if (hit && d->event) /* at_tstop may have moved y */
        d->g_prev = nde_event_value(d->event, t, y);
    return d->adaptive && hit && next < habs && fabs(h) < habs ? habs : next;
}

/* The first step size: opts.dt, or Hairer's heuristic. */
static int first_step(const drive *d, const double *y, double *habs)
{
    nde_solver *s = d->s;
    const nde_solve_opts *o = d->o;
    const double *f0;
    double h0;
    int rc;

    *habs = o->dt;
    if (d->adaptive && o->dt == 0) {
        rc = nde_solver_first_stage(s, d->theta, d->t0, y, &f0);
        if (rc == NDE_ERETRY)
            return nde_error(s->ctx, NDE_ENONFINITE,
                             "the field is not finite at the initial state "
                             "(t = %g)", d->t0);
        if (rc != NDE_OK)
            return rc;
        if ((rc = nde_initial_step(s, o, d->theta, d->t0, y, f0, d->t1, &h0)))
            return rc;
        *habs = fabs(h0);
    }
    if (o->dtmax > 0 && *habs > o->dtmax)
        *habs = o->dtmax;
    return NDE_OK;
}

static __attribute__((noinline)) int
fixed_nonfinite(const drive *d, double t, double h)
{
    return nde_error(d->s->ctx, NDE_ENONFINITE,
                     "solver '%s': the drift%s produced non-finite values in "
                     "the step from t = %g to %g (fixed step: no retry)",
                     d->s->type->info.name, d->sde ? " or diffusion" : "", t,
                     t + h);
}

static __attribute__((noinline)) int
step_size_underflow(const drive *d, double t, double h, int nretry)
{
    if (nretry > 0)
        return nde_error(d->s->ctx, NDE_ENONFINITE,
                         "non-finite values at t = %g persist down to step "
                         "size %g", t, fabs(h));
    return nde_error(d->s->ctx, NDE_ESTEPSIZE,
                     "step size underflow at t = %g: |h| = %g is below %s",
                     t, fabs(h), fabs(h) < d->o->dtmin ? "dtmin" : "round-off");
}

/* The aux state at t0 from y0 (solvers with aux). */
static int start_aux(const drive *d, const double *y, double *aux)
{
    int rc = d->s->ops->start(d->s, d->theta, d->t0, y, aux);

    if (rc == NDE_ERETRY || (rc == NDE_OK && !all_finite(aux, d->na)))
        return fixed_nonfinite(d, d->t0, 0.0);
    return rc;
}

/* The next stop of an adaptive solve: t1, the next tstop, or the next save
 * time when the solver has no dense output to serve it from inside a
 * step. */
static double adaptive_stop(const drive *d)
{
    double stop = d->t1;

    if (d->dir * (d->stop_at - d->t1) < 0)
        stop = d->stop_at;
    if (!d->dense && d->dir * (d->save_at - stop) < 0)
        stop = d->save_at;
    return stop;
}

/* The end of a fixed step from t: the next grid point, or the next save
 * time or tstop inside the cell (nde_step_grid_next, kept incrementally:
 * every save time and tstop up to t has been served). */
static double fixed_next(drive *d, double t)
{
    double next;

    while (d->dir * (nde_step_grid_time(&d->grid, d->kgrid) - t) <= 0)
        d->kgrid++;
    next = nde_step_grid_time(&d->grid, d->kgrid);
    if (d->dir * (d->save_at - next) < 0)
        next = d->save_at;
    if (d->dir * (d->stop_at - next) < 0)
        next = d->stop_at;
    return next;
}

/* Does the event's sign change from g0 to g1 count (nde/event.h)? */
static int event_crossed(int direction, double g0, double g1)
{
    return (direction >= 0 && g0 < 0 && g1 >= 0) ||
           (direction <= 0 && g0 > 0 && g1 <= 0);
}

/* The root of the event inside the accepted step (t, h) from y, where it
 * goes from g0 to g1 != 0, on the step's dense output: Illinois (regula
 * falsi that halves the value kept at an end chosen twice in a row;
 * Dowell and Jarratt, BIT 11, 1971), on theta in [0, 1], until the two
 * ends are neighbouring times. *ts is the end past the root. */
static int event_root(drive *d, double t, double h, const double *y,
                      double g0, double g1, double *ts)
{
    nde_solver *s = d->s;
    double a = 0.0, ga = g0, b = 1.0, gb = g1;
    int side = 0, rc;

    for (int it = 0; it < 200 && t + a * h != t + b * h; it++) {
        double c = (a * gb - b * ga) / (gb - ga), gc;
        if (!(c > a && c < b)) /* round-off: bisect */
            c = 0.5 * (a + b);
        if (c == a || c == b)
            break;
        if ((rc = s->ops->dense(s, y, h, NULL, c, d->ev_y)) != NDE_OK)
            return rc;
        gc = nde_event_value(d->event, t + c * h, d->ev_y);
        if (!isfinite(gc))
            return nde_error(s->ctx, NDE_ENONFINITE,
                             "event: the expression is not finite at t = "
                             "%g", t + c * h);
        if (gc == 0.0) {
            b = c;
            break;
        }
        if ((gc > 0) == (gb > 0)) {
            b = c;
            gb = gc;
            if (side == -1)
                ga *= 0.5;
            side = -1;
        } else {
            a = c;
            ga = gc;
            if (side == 1)
                gb *= 0.5;
            side = 1;
        }
    }
    *ts = b == 1.0 ? t + h : t + b * h;
    if (*ts == t) /* a root within round-off of t: the next time */
        *ts = nextafter(t, t + h);
    return NDE_OK;
}

/* After the accepted step (t, *h) to (*t_new, yn): when the event fires
 * inside it, take the step again from (t, y) onto the event time, which
 * becomes the solve's end (d->t1). Out of line: only event solves come
 * here. */
static __attribute__((noinline)) int
event_step(drive *d, double t, double *h, double *t_new, const double *y,
           const double *aux, double *yn, double *auxn, double *err,
           double *eest)
{
    nde_solver *s = d->s;
    const double g0 = d->g_prev;
    const double g1 = nde_event_value(d->event, *t_new, yn);
    double ts = *t_new;
    int rc;

    d->g_prev = g1;
    if (!event_crossed(nde_event_direction(d->event), g0, g1))
        return NDE_OK;
    if (g1 != 0.0 && (rc = event_root(d, t, *h, y, g0, g1, &ts)) != NDE_OK)
        return rc;
    d->fired = 1;
    d->t1 = ts;
    if (ts == *t_new)
        return NDE_OK;
    *h = ts - t;
    *t_new = ts;
    nde_solver_invalidate(s);
    rc = s->ops->step(s, d->theta, t, *h, NULL, y, aux, yn, auxn, err,
                      &d->norm, eest);
    if (rc == NDE_ERETRY || (rc == NDE_OK && !(isfinite(*eest) &&
                                               all_finite(yn, d->n))))
        return nde_error(s->ctx, NDE_ENONFINITE,
                         "the step from t = %g onto the event at t = %g is "
                         "not finite", t, ts);
    return rc;
}

/* Save times after the event hold the state at the event. */
static void save_frozen(drive *d, const double *y)
{
    for (; d->isave < d->nsave; d->isave++)
        memcpy(d->ysave + d->isave * d->n, y, d->n * sizeof *y);
}

static int drive_run(drive *d, const double *y0)
{
    nde_solver *s = d->s;
    const nde_solve_opts *o = d->o;
    const nde_solver_ops *ops = s->ops;
    nde_solve_buffers *b = s->buf;
    nde_stats *st = d->st;
    const size_t n = d->n, na = d->na;
    double *y = b->y, *yn = b->y_next, *aux = b->aux, *auxn = b->aux_next;
    double *dw = d->sde ? b->dw : NULL, *err = d->adaptive ? b->err : NULL;
    double t = d->t0, habs;
    long nsteps = 0;
    int nretry = 0, rc;
    const nde_controller *ctl = &o->ctrl;
    const nde_controller_ops *cops = ctl->ops ? ctl->ops : &nde_controller_pi;
    double mem[NDE_CONTROLLER_MEMORY];

    memcpy(y, y0, n * sizeof *y);
    nde_solver_invalidate(s);
    save_start(d, y0);
    if (na && (rc = start_aux(d, y, aux)) != NDE_OK)
        return rc;
    if (d->t1 == d->t0) {
        record_end(d, y, aux);
        return NDE_OK;
    }
    cops->start(ctl, mem);
    if ((rc = first_step(d, y, &habs)) != NDE_OK)
        return rc;
    if (d->event)
        d->g_prev = nde_event_value(d->event, d->t0, y);

    while (t != d->t1) {
        double h, t_new, eest = 0.0;
        int land = 1, nonfinite;

        if (d->adaptive) {
            const double stop = adaptive_stop(d);
            h = d->dir * habs;
            land = fabs(stop - t) <= habs * LAND_STRETCH;
            if (land)
                h = stop - t;
            if (fabs(h) <= 4.0 * DBL_EPSILON * fabs(t) ||
                (!land && fabs(h) < o->dtmin))
                return step_size_underflow(d, t, h, nretry);
            t_new = land ? stop : t + h;
            if (!land && d->sde) {
                /* an end the Brownian path reaches in a few bisections
                 * (an arbitrary time costs up to 52) */
                t_new = nde_brownian_snap(o->brownian, t_new,
                                          SDE_SNAP * fabs(h));
                h = t_new - t;
            }
        } else {
            t_new = fixed_next(d, t);
            h = t_new - t;
        }
        if (nsteps >= o->max_steps)
            return nde_error(s->ctx, NDE_EMAXSTEPS,
                             "max_steps = %ld reached at t = %g before "
                             "t1 = %g", o->max_steps, t, d->t1);
        nsteps++;
        /* A rejected step's retry asks for the shorter interval: the
         * Brownian Interval answers any interval of its path exactly. */
        if (dw && (rc = nde_solver_noise(s, o->brownian, t, t_new, dw)))
            return rc;
        if (d->in)
            nde_input_select(d->in, t, h);
        rc = ops->step(s, d->theta, t, h, dw, y, aux, yn, auxn, err, &d->norm,
                       err ? &eest : NULL);
        if (rc == NDE_ERETRY)
            nonfinite = 1;
        else if (rc != NDE_OK)
            return rc;
        else if (d->adaptive)
            nonfinite = !isfinite(eest) || (na && !all_finite(auxn, na));
        else
            nonfinite = !all_finite(yn, n) || (na && !all_finite(auxn, na));
        if (nonfinite) {
            if (!d->adaptive)
                return fixed_nonfinite(d, t, h);
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
            habs = fabs(cops->reject(ctl, mem, eest, h));
            continue;
        }

        st->steps_accepted++;
        if (d->event && (rc = event_step(d, t, &h, &t_new, y, aux, yn, auxn,
                                         err, &eest)) != NDE_OK)
            return rc;
        if (d->rec && (rc = record_step(d, t, h, y, aux, yn, eest)) != NDE_OK)
            return rc;
        save_step(d, t, h, t_new, y, yn);
        if (fabs(h) < st->h_min)
            st->h_min = fabs(h);
        if (fabs(h) > st->h_max)
            st->h_max = fabs(h);
        {
            double *tmp = y;
            y = yn;
            yn = tmp;
            tmp = aux;
            aux = auxn;
            auxn = tmp;
        }
        t = t_new;
        if (ops->accept) /* directly: the public wrapper is a PLT call */
            ops->accept(s);
        {
            double next = d->adaptive ? fabs(cops->accept(ctl, mem, eest, h))
                                      : habs;
            if (land && (d->istop < o->ntstops || d->iknot < d->nknots)) {
                int trc = NDE_OK;
                next = at_tstops(d, t, y, h, habs, next, &trc);
                if (trc != NDE_OK)
                    return trc;
            }
            habs = next;
        }
        if (o->dtmax > 0 && habs > o->dtmax)
            habs = o->dtmax;
    }
    if (d->fired)
        save_frozen(d, y);
    record_end(d, y, aux);
    return NDE_OK;
}

static int solve_batch(nde_solver *s, const nde_solve_opts *opts,
                       const double *theta, double t0, const double *y0,
                       double t1, size_t nsave, const double *tsave,
                       double *ysave, nde_stats *stats)
{
    const unsigned flags = s->type->info.provides;
    const long nfe0 = s->counts.nfe;
    nde_stats st;
    drive d;
    int rc;

    memset(&st, 0, sizeof st);
    st.h_min = HUGE_VAL;
    memset(&d, 0, sizeof d);
    d.s = s;
    d.o = opts;
    d.theta = theta;
    d.t0 = t0;
    d.t1 = t1;
    d.dir = t1 >= t0 ? 1.0 : -1.0;
    d.n = s->batch * s->field->dim;
    d.na = (size_t)s->aux * d.n;
    d.adaptive = (flags & NDE_CAP_ADAPTIVE) != 0;
    d.dense = s->ops->dense != NULL;
    d.sde = nde_solver_is_sde(s);
    d.norm.rtol = opts->rtol;
    d.norm.atol = opts->atol;
    d.norm.blocks = opts->norm_blocks;
    d.norm.nblocks = opts->nnorm_blocks;
    d.rec = opts->record;
    d.nsave = nsave;
    d.tsave = tsave;
    d.ysave = ysave;
    d.st = &st;
    d.event = opts->event;
    if ((d.in = s->field->input) != NULL)
        d.nknots = nde_input_knots(d.in, &d.knots);
    rc = drive_check(&d, y0);
    if (rc == NDE_OK && d.event && !(d.ev_y = malloc(d.n * sizeof *d.ev_y)))
        rc = nde_error(s->ctx, NDE_ENOMEM, "out of memory");
    if (rc == NDE_OK && d.rec)
        rc = record_begin(&d);
    if (rc == NDE_OK)
        rc = drive_run(&d, y0);
    free(d.ev_y);
    if (opts->event && opts->event_t)
        *opts->event_t = rc == NDE_OK && d.fired ? d.t1 : NAN;
    st.nfe = s->counts.nfe - nfe0;
    if (st.steps_accepted == 0)
        st.h_min = 0.0;
    st.status = rc;
    if (stats)
        *stats = st;
    return rc;
}

/* One row's stats into the sum over the rows. */
static void add_row_stats(nde_stats *sum, const nde_stats *row)
{
    sum->nfe += row->nfe;
    sum->nfe_backward += row->nfe_backward;
    sum->steps_accepted += row->steps_accepted;
    sum->steps_rejected += row->steps_rejected;
    sum->retries += row->retries;
    if (row->steps_accepted > 0) {
        sum->h_min = fmin(sum->h_min, row->h_min);
        sum->h_max = fmax(sum->h_max, row->h_max);
    }
}

/* opts->per_row: each row solved alone (batch 1; a row of y0 is
 * contiguous, a row of ysave is not), the stats summed over the rows. */
static int solve_rows(nde_solver *s, const nde_solve_opts *opts,
                      const double *theta, double t0, const double *y0,
                      double t1, size_t nsave, const double *tsave,
                      double *ysave, nde_stats *stats)
{
    const size_t rows = s->batch, dim = s->field->dim;
    nde_stats sum, st;
    double *yrow;
    size_t r, k;
    int rc;

    memset(&sum, 0, sizeof sum);
    sum.h_min = HUGE_VAL;
    if (opts->record)
        rc = nde_error(s->ctx, NDE_EINVAL,
                       "a solve with %s records each row's solve "
                       "(record_rows), not %zu rows in one record",
                       opts->per_row ? "per-row steps" : "an event", rows);
    else if (nde_solver_is_sde(s))
        rc = nde_error(s->ctx, NDE_EINVAL,
                       "%s need an ODE solver ('%s' is an SDE solver)",
                       opts->per_row ? "per-row steps" : "events",
                       s->type->info.name);
    else if (!(yrow = malloc((nsave ? nsave : 1) * dim * sizeof *yrow)))
        rc = nde_error(s->ctx, NDE_ENOMEM, "out of memory");
    else {
        nde_solve_opts row = *opts;
        rc = nde_solver_set_batch(s, 1);
        for (r = 0; r < rows && rc == NDE_OK; r++) {
            row.record = opts->record_rows ? opts->record_rows[r] : NULL;
            row.event_t = opts->event_t ? opts->event_t + r : NULL;
            if (s->field->input)
                nde_input_set_row0(s->field->input, r);
            rc = solve_batch(s, &row, theta, t0, y0 + r * dim, t1, nsave,
                             tsave, yrow, &st);
            add_row_stats(&sum, &st);
            if (rc != NDE_OK)
                nde_error_prefix(s->ctx, "row %zu", r);
            for (k = 0; rc == NDE_OK && k < nsave; k++)
                memcpy(ysave + (k * rows + r) * dim, yrow + k * dim,
                       dim * sizeof *yrow);
        }
        free(yrow);
        if (s->field->input)
            nde_input_set_row0(s->field->input, 0);
        nde_solver_set_batch(s, rows);
    }
    if (sum.steps_accepted == 0)
        sum.h_min = 0.0;
    sum.status = rc;
    if (stats)
        *stats = sum;
    return rc;
}

int nde_solve(nde_solver *s, const nde_solve_opts *opts, const double *theta,
              double t0, const double *y0, double t1, size_t nsave,
              const double *tsave, double *ysave, nde_stats *stats)
{
    if ((opts->per_row || opts->event) && (s->batch > 1 || opts->record_rows))
        return solve_rows(s, opts, theta, t0, y0, t1, nsave, tsave, ysave,
                          stats);
    return solve_batch(s, opts, theta, t0, y0, t1, nsave, tsave, ysave,
                       stats);
}
