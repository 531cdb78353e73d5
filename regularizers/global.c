/*
 * global: regularization by internal solver heuristics (Pal, Ma, Shah,
 * Rackauckas, ICML 2021, "Opening the Blackbox: Accelerating Neural
 * Differential Equations by Regularizing Internal Solver Heuristics",
 * arXiv 2105.03918).
 *
 * Over every accepted step j of the training solve (t_j, h_j, y_j from
 * the record) a value v_j is computed by replaying the step from y_j with
 * h_j:
 *   measure = error:     v_j = EEst_j |h_j|, EEst_j = nde_error_norm of
 *                        the replayed step with the training rtol/atol (the
 *                        loop's own EEst may be a block norm; the replay
 *                        uses the plain scaled RMS norm so that value and
 *                        VJP agree);
 *   measure = stiffness: v_j = S_j |h_j|, Hairer's |lambda h| over the
 *                        solver's stability size (3.5068 for tsit5): S_j =
 *                        RMS(k_s - k_q) / RMS(y_next - g_q) / stability
 *                        size is the engine's nde_solver_stiffness, the
 *                        |lambda| / 3.5068 that `local` uses per step as
 *                        LocalRegNeuralDE.jl does.
 * R = aggregate_j v_j with aggregate = mean | sum | max. Defaults as the
 * authors' code (RegNeuralDE.jl mnist_node.jl): mean for error, max for
 * stiffness.
 *
 * Gradient: the step sizes and accept/reject decisions of the solve are
 * constants. For each contributing step (every step; for max only the
 * arg-max one) the step VJP from y_j with ebar (error) or sbar
 * (stiffness) = weight dR/dv_j |h_j| gives dtheta directly and
 * dR/dy_j, which is handed back as a cotangent at t_j so the gradient also
 * flows back through the trajectory by the configured adjoint.
 *
 * SDE solvers with an error estimate (lamba_heun; measure = error only,
 * as no SDE solver has a stiffness estimate) replay step j with the
 * training solve's own increment W(t_{j+1}) - W(t_j) from its Brownian
 * path (in->opts->brownian, queried on the solve's own step intervals, so
 * bit for bit the increments the solve used), and differentiate it with
 * that increment held constant (nde_solver_vjp). The record keeps the
 * step states and the path answers any interval, so nothing more is
 * needed: as for ODEs, the trajectory part of the gradient is handed to
 * the configured adjoint as cotangents at t_j. SDE solvers with aux state
 * are refused (the record's states would not restart them here).
 *
 * Buffers that grow with the number of steps (the cotangents) are kept
 * across calls, like the trajectory's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

enum { MEASURE_ERROR, MEASURE_STIFFNESS };
enum { AGG_MEAN, AGG_SUM, AGG_MAX };

typedef struct global_state {
    int measure, aggregate;
    size_t n_max;
    double *y, *y_next, *err;   /* n_max each                          */
    double *dw;                 /* 2 n_max: SDE solvers' step noise     */
    double *v;                  /* per-step values, cap                 */
    double *g;                  /* cotangent values, cap x n_max         */
    nde_cotangent *ct;          /* cap                                  */
    size_t cap;
} global_state;

static const nde_key global_keys[] = {
    {"measure", NDE_KEY_WORD, "error",
     "error: per-step error estimate EEst times |h| (time units); "
     "stiffness: per-step Hairer stiffness |lambda h| / stability size "
     "(3.5068 for tsit5; dimensionless)"},
    {"aggregate", NDE_KEY_WORD, "",
     "mean, sum or max over the accepted steps (default: mean for error, "
     "max for stiffness, as Pal et al.'s code); gradients hold step sizes "
     "and accept/reject decisions constant"},
    {NULL, 0, NULL, NULL}};

static void global_destroy(nde_regularizer *r)
{
    global_state *g = r->state;

    if (!g)
        return;
    free(g->y);
    free(g->y_next);
    free(g->err);
    free(g->dw);
    free(g->v);
    free(g->g);
    free(g->ct);
    free(g);
    r->state = NULL;
}

static int global_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                         nde_ctx *ctx)
{
    global_state *g;
    const char *measure = "error", *aggregate = NULL;
    int rc;

    if (!(g = calloc(1, sizeof *g)))
        return nde_error(ctx, NDE_ENOMEM, "regularizer 'global': out of "
                         "memory");
    r->state = g;
    if (sec && (rc = nde_get_string(sec, "measure", &measure, ctx)))
        return rc;
    if (strcmp(measure, "error") == 0)
        g->measure = MEASURE_ERROR;
    else if (strcmp(measure, "stiffness") == 0)
        g->measure = MEASURE_STIFFNESS;
    else
        return nde_section_error(sec, "measure", ctx, "expected error or "
                                 "stiffness, got '%s'", measure);
    g->aggregate = g->measure == MEASURE_ERROR ? AGG_MEAN : AGG_MAX;
    if (sec && nde_section_has(sec, "aggregate")) {
        if ((rc = nde_get_string(sec, "aggregate", &aggregate, ctx)))
            return rc;
        if (strcmp(aggregate, "mean") == 0)
            g->aggregate = AGG_MEAN;
        else if (strcmp(aggregate, "sum") == 0)
            g->aggregate = AGG_SUM;
        else if (strcmp(aggregate, "max") == 0)
            g->aggregate = AGG_MAX;
        else
            return nde_section_error(sec, "aggregate", ctx, "expected mean, "
                                     "sum or max, got '%s'", aggregate);
    }
    if (nde_solver_is_sde(s) && nde_solver_aux(s) > 0)
        return nde_error(ctx, NDE_ECAPABILITY, "regularizer 'global': SDE "
                         "solver '%s' carries state besides y, which the "
                         "replay of a step from its recorded state lacks",
                         s->type->info.name);
    g->n_max = s->batch_max * s->field->dim;
    if (!(g->y = malloc(g->n_max * sizeof(double))) ||
        !(g->y_next = malloc(g->n_max * sizeof(double))) ||
        !(g->err = malloc(g->n_max * sizeof(double))) ||
        !(g->dw = malloc(2 * g->n_max * sizeof(double))))
        return nde_error(ctx, NDE_ENOMEM, "regularizer 'global': out of "
                         "memory");
    r->needs = NDE_NEEDS_STEPS | NDE_NEEDS_STEP_VJP |
               (g->measure == MEASURE_ERROR ? NDE_NEEDS_ERROR_EST
                                            : NDE_NEEDS_STIFFNESS);
    return NDE_OK;
}

static int grow(global_state *g, size_t want)
{
    double *v, *gv;
    nde_cotangent *ct;

    if (want <= g->cap)
        return NDE_OK;
    if (want < 2 * g->cap)
        want = 2 * g->cap;
    if (!(v = realloc(g->v, want * sizeof *v)))
        return NDE_ENOMEM;
    g->v = v;
    if (!(gv = realloc(g->g, want * g->n_max * sizeof *gv)))
        return NDE_ENOMEM;
    g->g = gv;
    if (!(ct = realloc(g->ct, want * sizeof *ct)))
        return NDE_ENOMEM;
    g->ct = ct;
    g->cap = want;
    return NDE_OK;
}

/* Whether the record's next stored state, istate, is that of step j. */
static int stored_at(const nde_trajectory *fwd, size_t istate, size_t j)
{
    return istate < fwd->nstates &&
           nde_trajectory_state_step(fwd, istate) == j;
}

/* VJP of step j from g->y with cotangents ebar on EEst, sbar on S. */
static int replay_vjp(global_state *g, nde_solver *s,
                      const nde_regularizer_input *in, size_t j, double ebar,
                      double sbar, double *ybar, double *thetabar)
{
    const nde_trajectory *fwd = in->fwd;
    const double rtol = in->opts->rtol, atol = in->opts->atol;
    const nde_step_cotangent ct = {.eest = ebar, .rtol = rtol, .atol = atol,
                                   .stiffness = sbar};
    int rc;

    if (!nde_solver_is_sde(s))
        return nde_solver_step_vjp(s, in->theta, fwd->t[j], fwd->h[j], g->y,
                                   rtol, atol, NULL, ebar, sbar, NULL, 0,
                                   ybar, thetabar);
    if ((rc = nde_regularizer_step_noise(in, j, g->dw)))
        return rc;
    return nde_solver_vjp(s, in->theta, fwd->t[j], fwd->h[j], g->dw, g->y,
                          NULL, &ct, ybar, NULL, thetabar);
}

static int global_after_solve(nde_regularizer *r,
                              const nde_regularizer_input *in,
                              nde_regularizer_output *out)
{
    global_state *g = r->state;
    nde_solver *s = in->solver;
    const nde_trajectory *fwd = in->fwd;
    const size_t n = s->batch * s->field->dim, m = fwd->nsteps;
    const double rtol = in->opts->rtol, atol = in->opts->atol;
    const nde_solver_counts c0 = s->counts;
    size_t istate = 0, jmax = 0, nct = 0;
    double agg = 0.0;
    int rc = NDE_OK;

    out->value = 0.0;
    out->ct = NULL;
    out->nct = 0;
    out->nfe = 0;
    out->nvjp = 0;
    if (m == 0)
        return NDE_OK;
    if (fwd->n != n || !(fwd->record & NDE_NEEDS_STEPS) || fwd->nstates == 0)
        return nde_error(r->ctx, NDE_EINVAL, "regularizer 'global': the "
                         "trajectory does not hold the step states of this "
                         "batch (record NDE_NEEDS_STEPS)");
    if (grow(g, m))
        return nde_error(r->ctx, NDE_ENOMEM, "regularizer 'global': out of "
                         "memory for %zu steps", m);

    /* Values: replay each step from its state (stored, or the end of the
     * replayed step before when the record keeps checkpoints only). */
    for (size_t j = 0; j < m; j++) {
        if (stored_at(fwd, istate, j))
            memcpy(g->y, nde_trajectory_state(fwd, istate++),
                   n * sizeof(double));
        else
            memcpy(g->y, g->y_next, n * sizeof(double));
        rc = nde_regularizer_replay_step(in, j, g->y, g->y_next,
                                         g->measure == MEASURE_ERROR ? g->err
                                                                     : NULL,
                                         g->dw);
        if (rc != NDE_OK)
            goto done;
        if (g->measure == MEASURE_ERROR)
            g->v[j] = nde_error_norm(g->err, g->y, g->y_next, n, rtol, atol);
        else if ((rc = nde_solver_stiffness(s, g->y_next, &g->v[j])))
            goto done;
        g->v[j] *= fabs(fwd->h[j]);
        if (g->aggregate == AGG_MAX) {
            if (j == 0 || g->v[j] > agg) {
                agg = g->v[j];
                jmax = j;
            }
        } else {
            agg += g->v[j];
        }
    }
    if (g->aggregate == AGG_MEAN)
        agg /= (double)m;
    out->value = agg;

    /* Gradient: the VJP of every contributing step, from its state again. */
    istate = 0;
    for (size_t j = 0; j < m; j++) {
        const double dv = g->aggregate == AGG_MEAN ? 1.0 / (double)m
                          : g->aggregate == AGG_SUM ? 1.0
                          : (j == jmax ? 1.0 : 0.0);
        const double bar = in->weight * dv * fabs(fwd->h[j]);
        double *ybar = g->g + nct * n;
        if (stored_at(fwd, istate, j)) {
            memcpy(g->y, nde_trajectory_state(fwd, istate++),
                   n * sizeof(double));
        } else {
            memcpy(g->y, g->y_next, n * sizeof(double));
        }
        /* Without a stored state the next one comes from this step. */
        if (!stored_at(fwd, istate, j + 1) && j + 1 < m &&
            (rc = nde_regularizer_replay_step(in, j, g->y, g->y_next, NULL,
                                              g->dw)))
            goto done;
        if (dv == 0.0 || bar == 0.0)
            continue;
        memset(ybar, 0, n * sizeof(double));
        rc = replay_vjp(g, s, in, j, g->measure == MEASURE_ERROR ? bar : 0.0,
                        g->measure == MEASURE_STIFFNESS ? bar : 0.0, ybar,
                        out->thetabar);
        if (rc != NDE_OK)
            goto done;
        g->ct[nct].t = fwd->t[j];
        g->ct[nct].g = ybar;
        nct++;
    }
    out->ct = g->ct;
    out->nct = nct;
done:
    nde_solver_invalidate(s);
    out->nfe = s->counts.nfe - c0.nfe;
    out->nvjp = s->counts.nvjp - c0.nvjp;
    if (rc != NDE_OK) {
        out->ct = NULL;
        out->nct = 0;
    }
    return rc;
}

static const nde_regularizer_type global_type = {
    .info = NDE_REGULARIZER_INFO(
        .name = "global",
        .description = "Pal et al. 2021: mean/sum/max over the solve's steps "
                       "of EEst*|h| or the stiffness estimate, through the "
                       "steps",
        .keys = global_keys,
        .needs = NDE_NEEDS_STEPS | NDE_NEEDS_STEP_VJP,
        .version = "1"),
    .create = global_create,
    .destroy = global_destroy,
    .after_solve = global_after_solve,
};

NDE_MODULE(&global_type.info);
