/*
 * discrete: the exact gradient of the discretised solution. The recorded
 * accepted steps are replayed backwards through the solver's step VJP
 * (reverse-mode through every stage), so the result is the derivative of
 * what the forward solve computed, up to round-off.
 *
 * The step sizes of the forward solve are constants (no gradient through
 * the step-size controller, nde/adjoint.h): the result equals finite
 * differences of the solve with its step sequence frozen.
 *
 * With `checkpoints = N` only N step states are recorded (max_states); the
 * states between two checkpoints are recomputed forward with the recorded
 * step sizes when the backward sweep reaches that segment. Memory is
 * O(N + longest segment) states instead of O(steps).
 *
 * Buffers that depend on the solve (the recomputed segment, the list of
 * dense-output cotangents of a step) grow on demand and are kept across
 * calls, so repeated gradients of similar solves stop allocating.
 *
 * Every solver goes the same way: the record holds the state (y, aux) at
 * the start of every step (or of the checkpoint steps); the steps are
 * replayed backwards through the solver's step VJP (nde_solver_vjp) with,
 * for SDE solvers, each step's Brownian increment queried again from the
 * solve's path (the Brownian Interval returns the forward increments bit
 * for bit, so a recomputed segment is the forward one, bit for bit), then
 * through nde_solver_start_vjp when the solver has aux state. A cotangent
 * inside a step goes on its dense output; a fixed-step solve serves save
 * times and tstops at step ends (on its grid), so there they lie on step
 * boundaries.
 */
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

typedef struct discrete_state {
    size_t n_max, nparams;
    double *ybar, *ybar_prev; /* n_max each                            */
    int aux;                  /* aux blocks of the solver               */
    double *auxbar, *auxbar_prev; /* aux x n_max each                   */
    double *dw;               /* 2 x noise channels: a step's noise */
    double *seg;              /* recomputed states of one segment       */
    size_t seg_cap;           /* states seg can hold                    */
    nde_dense_cotangent *dc;  /* dense cotangents of one step           */
    size_t dc_cap;
} discrete_state;

static const nde_key discrete_keys[] = {
    {"checkpoints", NDE_KEY_INT, "0",
     "record only this many step states and recompute the others forward "
     "from the nearest one (memory O(checkpoints)); 0 = every step"},
    {NULL, 0, NULL, NULL}};

static void discrete_destroy(nde_adjoint *a)
{
    discrete_state *d = a->state;

    if (!d)
        return;
    free(d->ybar);
    free(d->ybar_prev);
    free(d->auxbar);
    free(d->auxbar_prev);
    free(d->dw);
    free(d->seg);
    free(d->dc);
    free(d);
    a->state = NULL;
}

static int discrete_create(nde_adjoint *a, nde_section *sec, nde_solver *s,
                           nde_ctx *ctx)
{
    const int aux = nde_solver_aux(s);
    discrete_state *d;
    long checkpoints = 0;
    int rc;

    if (sec && (rc = nde_get_long(sec, "checkpoints", &checkpoints, ctx)))
        return rc;
    if (checkpoints < 0)
        return nde_section_error(sec, "checkpoints", ctx, "must be >= 0");
    if (!(d = calloc(1, sizeof *d)))
        return nde_error(ctx, NDE_ENOMEM, "adjoint 'discrete': out of memory");
    a->state = d;
    d->n_max = s->batch_max * s->field->dim;
    d->nparams = s->field->nparams;
    if (!(d->ybar = malloc(d->n_max * sizeof(double))) ||
        !(d->ybar_prev = malloc(d->n_max * sizeof(double))))
        return nde_error(ctx, NDE_ENOMEM, "adjoint 'discrete': out of memory");
    {
        const size_t m = (size_t)aux * d->n_max;
        d->aux = aux;
        if ((m && (!(d->auxbar = malloc(m * sizeof(double))) ||
                   !(d->auxbar_prev = malloc(m * sizeof(double))))) ||
            !(d->dw = malloc(2 * nde_solver_noise_channels_max(s) *
                                   sizeof(double))))
            return nde_error(ctx, NDE_ENOMEM,
                             "adjoint 'discrete': out of memory");
    }
    a->record = NDE_NEEDS_STEPS;
    a->max_states = (size_t)checkpoints;
    return NDE_OK;
}

static int grow(void **p, size_t *cap, size_t want, size_t size)
{
    void *q;

    if (want <= *cap)
        return NDE_OK;
    if (!(q = realloc(*p, want * size)))
        return NDE_ENOMEM;
    *p = q;
    *cap = want;
    return NDE_OK;
}

static void add(double *y, const double *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += g[i];
}

/* True when the forward solve stepped onto t_j as a tstop (it then did not
 * carry its FSAL stage across; the recomputation does the same; so on the
 * knots of the field's input). */
static int is_tstop(const nde_solve_opts *o, double t)
{
    for (size_t i = 0; i < o->ntstops; i++)
        if (o->tstops[i] == t)
            return 1;
    return 0;
}

/* The end of recorded step j: the next step's start, or t1 (the times the
 * forward solve used, so the Brownian queries are the same intervals). */
static double step_end(const nde_trajectory *fwd, size_t j)
{
    return j + 1 < fwd->nsteps ? fwd->t[j + 1] : fwd->t1;
}

/* The noise of recorded step j into d->dw (SDE solvers). */
static int step_increment(nde_adjoint *a, const nde_solve_opts *opts,
                          const nde_trajectory *fwd, size_t j)
{
    discrete_state *d = a->state;
    const double tj = fwd->t[j], tend = step_end(fwd, j);
    int rc;

    if (!nde_solver_is_sde(a->solver))
        return NDE_OK;
    if ((rc = nde_solver_noise(a->solver, opts->brownian, tj, tend, d->dw)))
        return nde_error(a->ctx, rc, "adjoint 'discrete': the Brownian "
                         "path has no increment over [%g, %g] (reset it to "
                         "the solve's path)", tj, tend);
    return NDE_OK;
}

/* A step's Brownian increment for an SDE solver, NULL for an ODE one. */
static const double *dw_of(const nde_adjoint *a)
{
    const discrete_state *d = a->state;
    return nde_solver_is_sde(a->solver) ? d->dw : NULL;
}

/* The states (y, aux) of steps j0..j1-1 into d->seg (j1 - j0 states y,
 * then as many aux), from the stored state (y, aux) at step j0, replaying
 * the recorded steps as the forward solve took them: the same step sizes,
 * Brownian increments and FSAL hand-overs, so bit for bit. */
static int recompute(nde_adjoint *a, const nde_solve_opts *opts,
                     const nde_trajectory *fwd, const double *theta,
                     size_t j0, size_t j1, const double *y, const double *aux)
{
    discrete_state *d = a->state;
    nde_solver *s = a->solver;
    const size_t n = fwd->n, m = (size_t)d->aux * n, len = j1 - j0;
    double *ys = d->seg, *auxs = d->seg + len * n;
    int rc;

    memcpy(ys, y, n * sizeof(double));
    if (m)
        memcpy(auxs, aux, m * sizeof(double));
    nde_solver_invalidate(s);
    for (size_t j = j0; j + 1 < j1; j++) {
        const size_t i = j - j0;
        if (j > j0 && (is_tstop(opts, fwd->t[j]) ||
                       (s->field->input &&
                        nde_input_has_knot(s->field->input, fwd->t[j]))))
            nde_solver_invalidate(s);
        if ((rc = step_increment(a, opts, fwd, j)) != NDE_OK)
            return rc;
        rc = nde_solver_advance(s, theta, fwd->t[j], fwd->h[j], dw_of(a),
                                ys + i * n, m ? auxs + i * m : NULL,
                                ys + (i + 1) * n,
                                m ? auxs + (i + 1) * m : NULL);
        if (rc != NDE_OK)
            return nde_error(a->ctx, rc == NDE_ERETRY ? NDE_ENONFINITE : rc,
                             "adjoint 'discrete': recomputing step %zu from "
                             "its checkpoint failed", j);
        nde_solver_accept(s);
    }
    nde_solver_invalidate(s);
    return NDE_OK;
}

/* Where the forward solve served a cotangent's time: a fixed-step solve
 * at the grid point the time snaps to (nde/solve.h), an adaptive one at
 * the time itself. */
typedef struct serving {
    int fixed;
    nde_step_grid grid;
} serving;

static int serving_init(nde_adjoint *a, const nde_solve_opts *opts,
                        const nde_trajectory *fwd, serving *sv)
{
    int rc;

    sv->fixed = !(a->solver->type->info.provides & NDE_CAP_ADAPTIVE) &&
                fwd->t1 != fwd->t0;
    if (sv->fixed &&
        (rc = nde_step_grid_init(&sv->grid, fwd->t0, fwd->t1, opts->dt,
                                 fwd->tsave, fwd->nsave, opts->tstops,
                                 opts->ntstops, a->ctx)) != NDE_OK) {
        nde_error_prefix(a->ctx, "adjoint 'discrete'");
        return rc;
    }
    return NDE_OK;
}

static double served(const serving *sv, double t)
{
    return sv->fixed ? nde_step_grid_snap(&sv->grid, t) : t;
}

/* Swap the cotangents on a step's end with those on its start. */
static void swap(double **a, double **b)
{
    double *t = *a;
    *a = *b;
    *b = t;
}

static int check_record(nde_adjoint *a, const nde_trajectory *fwd,
                        const nde_solve_opts *opts)
{
    discrete_state *d = a->state;
    nde_solver *s = a->solver;
    const size_t n = s->batch * s->field->dim;

    if (fwd->n != n || !(fwd->record & NDE_NEEDS_STEPS) ||
        (fwd->nsteps > 0 && fwd->nstates == 0) || fwd->naux != d->aux)
        return nde_error(a->ctx, NDE_EINVAL,
                         "adjoint 'discrete': the trajectory does not hold "
                         "the step states (y and aux) of this batch (record "
                         "NDE_NEEDS_STEPS with the solver's current batch)");
    if (nde_solver_is_sde(s) && !opts->brownian)
        return nde_error(a->ctx, NDE_EINVAL,
                         "adjoint 'discrete': solver '%s' needs the solve's "
                         "Brownian path (opts->brownian)",
                         s->type->info.name);
    return NDE_OK;
}

/* Steps j1-1 down to j0 of one segment, whose states (and aux) start at
 * ys (auxs): cotangents inside a step go on its dense output, those at
 * its start are added once its VJP has carried ybar there. */
static int replay_segment(nde_adjoint *a, const nde_solve_opts *opts,
                          const nde_trajectory *fwd, const double *theta,
                          const serving *sv, size_t j0, size_t j1,
                          const double *ys, const double *auxs,
                          const nde_cotangent *ct, size_t *ic,
                          double *thetabar)
{
    discrete_state *d = a->state;
    nde_solver *s = a->solver;
    const size_t n = fwd->n, m = (size_t)d->aux * n;
    const double dir = fwd->t1 >= fwd->t0 ? 1.0 : -1.0;
    int rc;

    for (size_t j = j1; j-- > j0;) {
        const double tj = fwd->t[j], hj = fwd->h[j];
        nde_step_cotangent sc = {d->ybar, m ? d->auxbar : NULL, 0.0,
                                 opts->rtol, opts->atol, 0.0, d->dc, 0};
        while (*ic > 0 && dir * (served(sv, ct[*ic - 1].t) - tj) > 0) {
            --*ic;
            d->dc[sc.ndense].theta = (ct[*ic].t - tj) / hj;
            d->dc[sc.ndense++].g = ct[*ic].g;
        }
        if (sc.ndense > 0 && !(s->type->info.provides & NDE_CAP_DENSE))
            return nde_error(a->ctx, NDE_EINVAL,
                             "adjoint 'discrete': a cotangent at t = %g lies "
                             "inside the step [%g, %g] of solver '%s', which "
                             "has no dense output (cotangents must lie on "
                             "step ends: save times or tstops)", ct[*ic].t,
                             tj, step_end(fwd, j), s->type->info.name);
        if ((rc = step_increment(a, opts, fwd, j)) != NDE_OK)
            return rc;
        memset(d->ybar_prev, 0, n * sizeof(double));
        if (m)
            memset(d->auxbar_prev, 0, m * sizeof(double));
        rc = nde_solver_vjp(s, theta, tj, hj, dw_of(a), ys + (j - j0) * n,
                            m ? auxs + (j - j0) * m : NULL, &sc,
                            d->ybar_prev, m ? d->auxbar_prev : NULL,
                            thetabar);
        if (rc != NDE_OK)
            return rc;
        swap(&d->ybar, &d->ybar_prev);
        swap(&d->auxbar, &d->auxbar_prev);
        while (*ic > 0 && dir * (served(sv, ct[*ic - 1].t) - tj) >= 0)
            add(d->ybar, ct[--*ic].g, n);
    }
    return NDE_OK;
}

static int replay(nde_adjoint *a, const nde_solve_opts *opts,
                  const nde_trajectory *fwd, const double *theta,
                  const nde_cotangent *ct, size_t nct, double *ybar0,
                  double *thetabar)
{
    discrete_state *d = a->state;
    nde_solver *s = a->solver;
    const size_t n = fwd->n, m = (size_t)d->aux * n;
    const double dir = fwd->t1 >= fwd->t0 ? 1.0 : -1.0;
    size_t ic = nct;
    serving sv;
    int rc;

    if ((rc = check_record(a, fwd, opts)) ||
        (rc = serving_init(a, opts, fwd, &sv)))
        return rc;
    if (grow((void **)&d->dc, &d->dc_cap, nct, sizeof *d->dc))
        return nde_error(a->ctx, NDE_ENOMEM, "adjoint 'discrete': out of "
                         "memory for %zu cotangents", nct);
    memset(d->ybar, 0, n * sizeof(double));
    if (m)
        memset(d->auxbar, 0, m * sizeof(double));
    memset(thetabar, 0, d->nparams * sizeof(double));
    while (ic > 0 && dir * (served(&sv, ct[ic - 1].t) - fwd->t1) >= 0)
        add(d->ybar, ct[--ic].g, n);
    /* Segments between stored states, last first; without checkpoints
     * every segment is one step and its state is read directly. */
    for (long iseg = (long)fwd->nstates - 1; iseg >= 0; iseg--) {
        const double *ys = nde_trajectory_state(fwd, (size_t)iseg);
        const double *auxs = nde_trajectory_aux(fwd, (size_t)iseg);
        size_t j0, j1;
        nde_trajectory_segment(fwd, (size_t)iseg, &j0, &j1);
        if (j1 - j0 > 1) {
            if (grow((void **)&d->seg, &d->seg_cap, (j1 - j0) * (n + m),
                     sizeof(double)))
                return nde_error(a->ctx, NDE_ENOMEM, "adjoint 'discrete': "
                                 "out of memory for a segment of %zu steps",
                                 j1 - j0);
            if ((rc = recompute(a, opts, fwd, theta, j0, j1, ys, auxs)))
                return rc;
            ys = d->seg;
            auxs = m ? d->seg + (j1 - j0) * n : NULL;
        }
        if ((rc = replay_segment(a, opts, fwd, theta, &sv, j0, j1, ys, auxs,
                                 ct, &ic, thetabar)) != NDE_OK)
            return rc;
    }
    /* Cotangents at t0 (all of them for a solve of zero length). */
    while (ic > 0)
        add(d->ybar, ct[--ic].g, n);
    /* aux0 was computed from y0 by start. */
    if (m && (rc = nde_solver_start_vjp(s, theta, fwd->t0,
                                        fwd->nsteps
                                            ? nde_trajectory_state(fwd, 0)
                                            : fwd->y_final,
                                        d->auxbar, d->ybar, thetabar)))
        return rc;
    memcpy(ybar0, d->ybar, n * sizeof(double));
    return NDE_OK;
}

static int discrete_gradient(nde_adjoint *a, const nde_solve_opts *opts,
                             const nde_trajectory *fwd, const double *theta,
                             const nde_cotangent *ct, size_t nct,
                             double *ybar0, double *thetabar,
                             nde_stats *stats)
{
    nde_solver *s = a->solver;
    const nde_solver_counts c0 = s->counts;
    const int rc = replay(a, opts, fwd, theta, ct, nct, ybar0, thetabar);

    if (stats)
        stats->nfe_backward += (s->counts.nfe - c0.nfe) +
                               (s->counts.nvjp - c0.nvjp);
    return rc;
}

static const nde_adjoint_type discrete_type = {
    .info = NDE_ADJOINT_INFO(
        .name = "discrete",
        .description = "exact gradient of the discretised solve: replays the "
                       "recorded steps through the solver's step VJP (step "
                       "sizes held constant)",
        .keys = discrete_keys,
        .needs = NDE_NEEDS_STEPS | NDE_NEEDS_STEP_VJP,
        .version = "1"),
    .create = discrete_create,
    .destroy = discrete_destroy,
    .gradient = discrete_gradient,
};

NDE_MODULE(&discrete_type.info);
