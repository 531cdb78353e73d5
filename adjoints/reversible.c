/*
 * reversible: the exact gradient of the discretised solution of a
 * reversible solver (NDE_CAP_REVERSIBLE: reversible_heun, alf) with memory
 * independent of the number of states (Kidger, Foster, Li, Lyons 2021,
 * arXiv 2105.13493, Sec. 3; with alf it is MALI, Zhuang et al., ICLR 2021:
 * reverse the step exactly, then take its VJP).
 *
 * The forward solve records no state per step: its final state (y, aux),
 * its save times and, for an adaptive solver, each accepted step's start
 * and size (two doubles a step). The backward pass walks the same steps
 * from t1 to t0 (a fixed-step solve's by nde_step_grid: the grid t0 + k dt
 * merged with the save times and tstops), reconstructs the state at the
 * start of each step with the solver's algebraic reverse, and takes the
 * step's VJP; the Brownian increment of each step is queried again from
 * the solve's path (bit for bit the forward one). The result equals the
 * `discrete` adjoint's up to the round-off of the reconstruction.
 * Cotangents must lie on step boundaries (save times or tstops, where a
 * solver without dense output stops).
 *
 * All buffers are allocated at create for batch_max rows.
 */
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

typedef struct reversible_state {
    size_t n_max, nparams;
    int aux;
    int adaptive;               /* steps from the record, not a grid      */
    double *y, *y_prev;         /* n_max each                             */
    double *aux_cur, *aux_prev; /* aux x n_max each                       */
    double *ybar, *ybar_prev;   /* n_max each                             */
    double *auxbar, *auxbar_prev; /* aux x n_max each                     */
    double *dw;                 /* 2 x noise channels: a step's noise */
} reversible_state;

static void reversible_destroy(nde_adjoint *a)
{
    reversible_state *d = a->state;

    if (!d)
        return;
    free(d->y);
    free(d->y_prev);
    free(d->aux_cur);
    free(d->aux_prev);
    free(d->ybar);
    free(d->ybar_prev);
    free(d->auxbar);
    free(d->auxbar_prev);
    free(d->dw);
    free(d);
    a->state = NULL;
}

static int reversible_create(nde_adjoint *a, nde_section *sec, nde_solver *s,
                             nde_ctx *ctx)
{
    reversible_state *d;
    size_t n, m;

    (void)sec;
    if (!(d = calloc(1, sizeof *d)))
        return nde_error(ctx, NDE_ENOMEM,
                         "adjoint 'reversible': out of memory");
    a->state = d;
    d->n_max = n = s->batch_max * s->field->dim;
    d->nparams = s->field->nparams;
    d->aux = nde_solver_aux(s);
    m = (size_t)d->aux * n;
    if (!(d->y = malloc(n * sizeof(double))) ||
        !(d->y_prev = malloc(n * sizeof(double))) ||
        !(d->ybar = malloc(n * sizeof(double))) ||
        !(d->ybar_prev = malloc(n * sizeof(double))) ||
        !(d->dw = malloc(2 * nde_solver_noise_channels_max(s) *
                                   sizeof(double))) ||
        (m && (!(d->aux_cur = malloc(m * sizeof(double))) ||
               !(d->aux_prev = malloc(m * sizeof(double))) ||
               !(d->auxbar = malloc(m * sizeof(double))) ||
               !(d->auxbar_prev = malloc(m * sizeof(double))))))
        return nde_error(ctx, NDE_ENOMEM,
                         "adjoint 'reversible': out of memory");
    /* an adaptive solve's steps: their times, and one state */
    d->adaptive = (s->type->info.provides & NDE_CAP_ADAPTIVE) != 0;
    a->record = d->adaptive ? NDE_NEEDS_STEPS : 0;
    a->max_states = d->adaptive ? 1 : 0;
    return NDE_OK;
}

static void add(double *y, const double *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += g[i];
}

static void swap(double **p, double **q)
{
    double *t = *p;
    *p = *q;
    *q = t;
}

/* The steps the backward pass walks: a fixed-step solve's grid, or the
 * accepted steps an adaptive solve recorded (step j starts at t[j] with
 * size h[j]; the next starts where it ends). */
typedef struct walk {
    const nde_trajectory *fwd;
    nde_step_grid grid;         /* fixed steps                            */
    size_t j;                   /* adaptive: steps left                   */
} walk;

static int walk_init(walk *w, const reversible_state *d,
                     const nde_solve_opts *opts, const nde_trajectory *fwd,
                     nde_ctx *ctx)
{
    w->fwd = fwd;
    w->j = fwd->nsteps;
    if (!d->adaptive)
        return nde_step_grid_init(&w->grid, fwd->t0, fwd->t1, opts->dt,
                                  fwd->tsave, fwd->nsave, opts->tstops,
                                  opts->ntstops, ctx);
    if (fwd->t1 != fwd->t0 && (fwd->nsteps == 0 || !fwd->t || !fwd->h))
        return nde_error(ctx, NDE_EINVAL, "the record of an adaptive solve "
                         "holds no step times (record NDE_NEEDS_STEPS)");
    return NDE_OK;
}

/* The start tp and size h of the step that ends at t. */
static void walk_prev(walk *w, double t, double *tp, double *h)
{
    if (w->grid.cells) {
        *tp = nde_step_grid_prev(&w->grid, t);
        *h = t - *tp;
    } else {
        w->j--;
        *tp = w->fwd->t[w->j];
        *h = w->fwd->h[w->j];
    }
}

/* The step boundary at which a cotangent at time c is served. */
static double walk_snap(const walk *w, double c)
{
    return w->grid.cells ? nde_step_grid_snap(&w->grid, c) : c;
}

static int reversible_gradient(nde_adjoint *a, const nde_solve_opts *opts,
                               const nde_trajectory *fwd,
                               const double *theta, const nde_cotangent *ct,
                               size_t nct, double *ybar0, double *thetabar,
                               nde_stats *stats)
{
    reversible_state *d = a->state;
    nde_solver *s = a->solver;
    const size_t n = s->batch * s->field->dim, m = (size_t)d->aux * n;
    const int sde = nde_solver_is_sde(s);
    const nde_solver_counts c0 = s->counts;
    walk w;
    size_t ic = nct;
    double t = fwd->t1;
    int rc;

    if (fwd->n != n || !fwd->y_final || (m && !fwd->aux_final) ||
        fwd->naux != d->aux)
        return nde_error(a->ctx, NDE_EINVAL,
                         "adjoint 'reversible': the trajectory does not hold "
                         "the final state (y and aux) of this batch");
    if (fwd->t1 < fwd->t0)
        return nde_error(a->ctx, NDE_EINVAL, "adjoint 'reversible': solver "
                         "'%s' steps forwards only", s->type->info.name);
    if (sde && !opts->brownian)
        return nde_error(a->ctx, NDE_EINVAL,
                         "adjoint 'reversible': solver '%s' needs the "
                         "solve's Brownian path (opts->brownian)",
                         s->type->info.name);
    memset(&w, 0, sizeof w);
    if ((rc = walk_init(&w, d, opts, fwd, a->ctx)) != NDE_OK) {
        nde_error_prefix(a->ctx, "adjoint 'reversible'");
        return rc;
    }
    memcpy(d->y, fwd->y_final, n * sizeof(double));
    memset(d->ybar, 0, n * sizeof(double));
    if (m) {
        memcpy(d->aux_cur, fwd->aux_final, m * sizeof(double));
        memset(d->auxbar, 0, m * sizeof(double));
    }
    memset(thetabar, 0, d->nparams * sizeof(double));
    while (ic > 0 && walk_snap(&w, ct[ic - 1].t) >= fwd->t1)
        add(d->ybar, ct[--ic].g, n);
    while (t > fwd->t0) {
        double tp, h;
        walk_prev(&w, t, &tp, &h);
        if (ic > 0 && walk_snap(&w, ct[ic - 1].t) > tp) {
            rc = nde_error(a->ctx, NDE_EINVAL,
                           "adjoint 'reversible': a cotangent at t = %g "
                           "lies inside the step [%g, %g] (cotangents must "
                           "lie on step ends: save times or tstops)",
                           ct[ic - 1].t, tp, t);
            goto done;
        }
        if (sde &&
            (rc = nde_solver_noise(s, opts->brownian, tp, t, d->dw))) {
            nde_error(a->ctx, rc, "adjoint 'reversible': the Brownian path "
                      "has no increment over [%g, %g] (reset it to the "
                      "solve's path)", tp, t);
            goto done;
        }
        rc = nde_solver_reverse(s, theta, tp, h, sde ? d->dw : NULL, d->y,
                                m ? d->aux_cur : NULL, d->y_prev,
                                m ? d->aux_prev : NULL);
        if (rc != NDE_OK)
            goto done;
        memset(d->ybar_prev, 0, n * sizeof(double));
        if (m)
            memset(d->auxbar_prev, 0, m * sizeof(double));
        rc = nde_solver_advance_vjp(s, theta, tp, h, sde ? d->dw : NULL,
                                    d->y_prev, m ? d->aux_prev : NULL,
                                    d->ybar, m ? d->auxbar : NULL,
                                    d->ybar_prev,
                                    m ? d->auxbar_prev : NULL, thetabar);
        if (rc != NDE_OK)
            goto done;
        swap(&d->y, &d->y_prev);
        swap(&d->aux_cur, &d->aux_prev);
        swap(&d->ybar, &d->ybar_prev);
        swap(&d->auxbar, &d->auxbar_prev);
        t = tp;
        while (ic > 0 && walk_snap(&w, ct[ic - 1].t) >= t)
            add(d->ybar, ct[--ic].g, n);
    }
    while (ic > 0)
        add(d->ybar, ct[--ic].g, n);
    /* aux0 came from y0 (here reconstructed) through start. */
    if (m && (rc = nde_solver_start_vjp(s, theta, fwd->t0, d->y, d->auxbar,
                                        d->ybar, thetabar)))
        goto done;
    memcpy(ybar0, d->ybar, n * sizeof(double));
done:
    if (stats)
        stats->nfe_backward += (s->counts.nfe - c0.nfe) +
                               (s->counts.nvjp - c0.nvjp);
    return rc;
}

static const nde_adjoint_type reversible_type = {
    .info = NDE_ADJOINT_INFO(
        .name = "reversible",
        .description = "exact gradient of the discretised solve of a "
                       "reversible solver (reversible_heun; alf: MALI): "
                       "reconstructs each step's state backwards by the "
                       "solver's algebraic reverse (no state kept per "
                       "step)",
        .needs = NDE_NEEDS_REVERSIBLE | NDE_NEEDS_STEP_VJP,
        .version = "1"),
    .create = reversible_create,
    .destroy = reversible_destroy,
    .gradient = reversible_gradient,
};

NDE_MODULE(&reversible_type.info);
