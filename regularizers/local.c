/*
 * local: local regularization (Pal, Edelman, Rackauckas, ICML 2023,
 * "Locally Regularized Neural Differential Equations: Some Black Boxes
 * Were Meant to Remain Closed!"; the authors' code,
 * avik-pal/LocalRegNeuralDE.jl, src/perform_step.jl).
 *
 * Per training solve one time t_s is sampled:
 *   sampling = unbiased: t_s = t0 + u (t1 - t0), u ~ U[0, 1), asked for as
 *     an extra save time so that y_s is the solve's own y(t_s);
 *   sampling = biased: t_s is the start time of an accepted step j drawn
 *     uniformly from the solve's steps, y_s its recorded state.
 * From (t_s, y_s) one fresh solver step is taken towards t1, its dt
 *   step = heuristic (the paper): from the initial-step heuristic
 *     (nde_initial_step over [t_s, t1], with f0 = f(t_s, y_s) from
 *     nde_solver_first_stage, which is also the step's first stage);
 *   step = solver: the size h_k of the forward solve's own accepted step
 *     that contains t_s (step j itself when biased), at most |t1 - t_s|;
 * and
 *   measure = error:     R = EEst |dt| (EEst: nde_error_norm with the
 *                        training rtol/atol);
 *   measure = stiffness: R = the step's stiffness estimate.
 * step = solver keeps the extra step one the solve would take (within
 * the controller's reach of the stability region). Neither choice
 * changes the value's nature: R is a norm of the step's error vector, so
 * its gradient keeps the size |d err/dtheta| |dt| / tolerance however
 * small R is (near an equilibrium the heuristic's dt grows and err
 * vanishes); the trainer's `clip` key caps such gradients (README, "Local
 * regularization on a relaxation oscillator").
 *
 * As in the paper y_s and dt are constants: the gradient flows through that
 * one step into theta only (the main solve's adjoint is untouched). With
 * through_state = true dR/dy_s is also handed to the adjoint as a
 * cotangent at t_s (beyond the paper). One difference from the authors'
 * code: it creates the step's integrator outside AD, so there the first
 * stage k1 = f(t_s, y_s) is a constant; here every stage is
 * differentiated (the step's own gradient).
 *
 * Random draws: u = (nde_seed_derive(seed, 0) >> 11) / 2^53 (SplitMix64),
 * from the seed given to before_solve; biased sampling uses it in
 * after_solve as j = floor(u nsteps). The unbiased t_s is recomputed in
 * after_solve as t0 + u (t1 - t0) of the interval actually solved, which is
 * the time asked for (or that time stretched with t1 when another
 * regularizer moved t1). Edges: u < 1 keeps t_s before t1, so the step
 * always has [t_s, t1] to go; should t_s round to t1 (probability ~2^-53)
 * or the solve have zero length, R = 0 with no gradient.
 *
 * The forward solver's workspace is used for the extra step; its FSAL
 * state is invalidated afterwards. The VJP reuses the step's stages
 * (nde_solver_last_step_vjp): the regularizer costs the heuristic's two
 * evaluations, the step's other stages and one VJP per stage;
 * out->nfe/nvjp are the deltas of s->counts.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

enum { MEASURE_ERROR, MEASURE_STIFFNESS };

typedef struct local_state {
    int measure, biased, through_state, solver_step;
    size_t n_max;
    double u;                 /* this solve's draw                         */
    size_t iextra;            /* index of t_s among the extra save times   */
    int drawn;
    double *y, *y_next, *err, *ybar;     /* n_max each                   */
    nde_cotangent ct;
} local_state;

static const nde_key local_keys[] = {
    {"sampling", NDE_KEY_WORD, "unbiased",
     "unbiased: t_s uniform in [t0, t1) (one extra save time); biased: t_s "
     "uniform among the solver's accepted step start times"},
    {"measure", NDE_KEY_WORD, "error",
     "error: the extra step's EEst * |dt| (time units); stiffness: its "
     "stiffness estimate |lambda| / stability size (1/time units)"},
    {"step", NDE_KEY_WORD, "heuristic",
     "the extra step's dt - heuristic: the initial-step heuristic over "
     "[t_s, t1] (the paper); solver: the size of the solve's own accepted "
     "step at t_s, which stays stable on stiff (slow-fast) systems"},
    {"through_state", NDE_KEY_BOOL, "false",
     "also hand weight * dR/dy_s to the adjoint as a cotangent at t_s "
     "(the paper holds y_s constant)"},
    {NULL, 0, NULL, NULL}};

static void local_destroy(nde_regularizer *r)
{
    local_state *l = r->state;

    if (!l)
        return;
    free(l->y);
    free(l->y_next);
    free(l->err);
    free(l->ybar);
    free(l);
    r->state = NULL;
}

static int local_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                        nde_ctx *ctx)
{
    local_state *l;
    const char *sampling = "unbiased", *measure = "error",
               *step = "heuristic";
    int rc;

    if (!(l = calloc(1, sizeof *l)))
        return nde_error(ctx, NDE_ENOMEM, "regularizer 'local': out of "
                         "memory");
    r->state = l;
    if (sec && ((rc = nde_get_string(sec, "sampling", &sampling, ctx)) ||
                (rc = nde_get_string(sec, "measure", &measure, ctx)) ||
                (rc = nde_get_string(sec, "step", &step, ctx)) ||
                (rc = nde_get_bool(sec, "through_state", &l->through_state,
                                   ctx))))
        return rc;
    if (strcmp(sampling, "unbiased") == 0)
        l->biased = 0;
    else if (strcmp(sampling, "biased") == 0)
        l->biased = 1;
    else
        return nde_section_error(sec, "sampling", ctx, "expected unbiased or "
                                 "biased, got '%s'", sampling);
    if (strcmp(measure, "error") == 0)
        l->measure = MEASURE_ERROR;
    else if (strcmp(measure, "stiffness") == 0)
        l->measure = MEASURE_STIFFNESS;
    else
        return nde_section_error(sec, "measure", ctx, "expected error or "
                                 "stiffness, got '%s'", measure);
    if (strcmp(step, "heuristic") == 0)
        l->solver_step = 0;
    else if (strcmp(step, "solver") == 0)
        l->solver_step = 1;
    else
        return nde_section_error(sec, "step", ctx, "expected heuristic or "
                                 "solver, got '%s'", step);
    l->n_max = s->batch_max * s->field->dim;
    if (!(l->y = malloc(l->n_max * sizeof(double))) ||
        !(l->y_next = malloc(l->n_max * sizeof(double))) ||
        !(l->err = malloc(l->n_max * sizeof(double))) ||
        !(l->ybar = malloc(l->n_max * sizeof(double))))
        return nde_error(ctx, NDE_ENOMEM, "regularizer 'local': out of "
                         "memory");
    r->needs = NDE_NEEDS_STEP_VJP |
               (l->measure == MEASURE_ERROR ? NDE_NEEDS_ERROR_EST
                                            : NDE_NEEDS_STIFFNESS) |
               (l->biased || l->solver_step ? NDE_NEEDS_STEPS : 0);
    return NDE_OK;
}

static int local_before_solve(nde_regularizer *r, nde_solve_request *req,
                              uint64_t seed)
{
    local_state *l = r->state;

    l->u = (double)(nde_seed_derive(seed, 0) >> 11) * 0x1.0p-53;
    l->drawn = 1;
    if (l->biased)
        return NDE_OK;
    if (req->nextra >= NDE_REGULARIZER_MAX_EXTRA)
        return nde_error(r->ctx, NDE_EINVAL, "regularizer 'local': no room "
                         "for another extra save time (at most %d)",
                         NDE_REGULARIZER_MAX_EXTRA);
    l->iextra = req->nextra;
    req->extra_save[req->nextra++] = req->t0 + l->u * (req->t1 - req->t0);
    return NDE_OK;
}

/* The state at the start of step j into l->y: the stored one, or replayed
 * from the latest stored state before it (checkpointed records). */
static int state_at_step(local_state *l, nde_solver *s, const double *theta,
                         const nde_trajectory *fwd, size_t j, size_t n)
{
    const long i = nde_trajectory_state_before(fwd, j);
    int rc;

    if (i < 0)
        return NDE_EINVAL;
    memcpy(l->y, nde_trajectory_state(fwd, (size_t)i), n * sizeof(double));
    for (size_t k = nde_trajectory_state_step(fwd, (size_t)i); k < j; k++) {
        nde_solver_invalidate(s);
        if ((rc = nde_solver_step(s, theta, fwd->t[k], fwd->h[k], l->y,
                                  l->y_next, NULL)))
            return rc;
        memcpy(l->y, l->y_next, n * sizeof(double));
    }
    return NDE_OK;
}

/* The accepted step whose interval holds ts (t[k] <= ts in the direction
 * of the solve, the last such k; ts >= t[0] = t0). */
static size_t step_containing(const nde_trajectory *fwd, double ts)
{
    const double dir = fwd->h[0] < 0 ? -1.0 : 1.0;
    size_t lo = 0, hi = fwd->nsteps - 1;

    while (lo < hi) {
        const size_t mid = lo + (hi - lo + 1) / 2;
        if ((ts - fwd->t[mid]) * dir >= 0)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static int local_after_solve(nde_regularizer *r,
                             const nde_regularizer_input *in,
                             nde_regularizer_output *out)
{
    local_state *l = r->state;
    nde_solver *s = in->solver;
    const nde_trajectory *fwd = in->fwd;
    const size_t n = s->batch * s->field->dim;
    const double rtol = in->opts->rtol, atol = in->opts->atol;
    const nde_solver_counts c0 = s->counts;
    const double *f0;
    double ts, dt, value;
    size_t k = 0; /* the solve's step at t_s, for step = solver */
    int rc;

    out->value = 0.0;
    out->ct = NULL;
    out->nct = 0;
    out->nfe = 0;
    out->nvjp = 0;
    if (!l->drawn)
        return nde_error(r->ctx, NDE_EINVAL, "regularizer 'local': "
                         "after_solve without before_solve (no t_s drawn)");
    l->drawn = 0;
    if (in->t1 == in->t0)
        return NDE_OK;

    nde_solver_invalidate(s);
    if ((l->biased || l->solver_step) &&
        (fwd->n != n || !(fwd->record & NDE_NEEDS_STEPS) ||
         fwd->nsteps == 0))
        return nde_error(r->ctx, NDE_EINVAL, "regularizer 'local': biased "
                         "sampling and step = solver need the steps of the "
                         "solve (record NDE_NEEDS_STEPS)");
    if (l->biased) {
        k = (size_t)(l->u * (double)fwd->nsteps);
        if (k >= fwd->nsteps)
            k = fwd->nsteps - 1;
        ts = fwd->t[k];
        if ((rc = state_at_step(l, s, in->theta, fwd, k, n))) {
            nde_solver_invalidate(s);
            return rc == NDE_EINVAL
                       ? nde_error(r->ctx, rc, "regularizer 'local': no "
                                   "recorded state at or before step %zu", k)
                       : rc;
        }
    } else {
        if (!in->extra_y || in->nextra <= l->iextra)
            return nde_error(r->ctx, NDE_EINVAL, "regularizer 'local': the "
                             "state at the sampled time t_s was not saved "
                             "(extra save time %zu)", l->iextra);
        ts = in->t0 + l->u * (in->t1 - in->t0);
        if (ts == in->t1)
            return NDE_OK;
        memcpy(l->y, in->extra_y + l->iextra * n, n * sizeof(double));
        if (l->solver_step)
            k = step_containing(fwd, ts);
    }

    /* f(t_s, y_s) serves the initial-step heuristic and is the step's
     * first stage. */
    if ((rc = nde_solver_first_stage(s, in->theta, ts, l->y, &f0)))
        goto done;
    if (l->solver_step)
        dt = fabs(fwd->h[k]) < fabs(in->t1 - ts) ? fwd->h[k] : in->t1 - ts;
    else if ((rc = nde_initial_step(s, in->opts, in->theta, ts, l->y, f0,
                                    in->t1, &dt)))
        goto done;
    if ((rc = nde_solver_step(s, in->theta, ts, dt, l->y, l->y_next,
                              l->measure == MEASURE_ERROR ? l->err : NULL)))
        goto done;
    if (l->measure == MEASURE_ERROR)
        value = nde_error_norm(l->err, l->y, l->y_next, n, rtol, atol) *
                fabs(dt);
    else if ((rc = nde_solver_stiffness(s, l->y_next, &value)))
        goto done;
    out->value = value;

    if (in->weight != 0.0) {
        const double ebar = l->measure == MEASURE_ERROR
                                ? in->weight * fabs(dt) : 0.0;
        const double sbar = l->measure == MEASURE_STIFFNESS ? in->weight
                                                            : 0.0;
        if (l->through_state)
            memset(l->ybar, 0, n * sizeof(double));
        /* The step just taken, from its own stages. */
        rc = nde_solver_last_step_vjp(s, rtol, atol, NULL, ebar, sbar, NULL,
                                      0, l->through_state ? l->ybar : NULL,
                                      out->thetabar);
        if (rc == NDE_OK && l->through_state) {
            l->ct.t = ts;
            l->ct.g = l->ybar;
            out->ct = &l->ct;
            out->nct = 1;
        }
    }
done:
    nde_solver_invalidate(s);
    out->nfe = s->counts.nfe - c0.nfe;
    out->nvjp = s->counts.nvjp - c0.nvjp;
    if (rc == NDE_ERETRY)
        rc = nde_error(r->ctx, NDE_ENONFINITE, "regularizer 'local': "
                       "non-finite values in the step from t_s = %g", ts);
    return rc;
}

static const nde_regularizer_type local_type = {
    .info = NDE_REGULARIZER_INFO(
        .name = "local",
        .description = "Pal et al. 2023: error or stiffness estimate of one "
                       "fresh step from a sampled time t_s (y_s held "
                       "constant)",
        .keys = local_keys,
        .needs = NDE_NEEDS_STEP_VJP,
        .version = "1"),
    .create = local_create,
    .destroy = local_destroy,
    .before_solve = local_before_solve,
    .after_solve = local_after_solve,
};

NDE_MODULE(&local_type.info);
