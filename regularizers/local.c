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
 * SDE solvers (lamba_heun) take the path in sde_after_solve, below: the
 * same sampling, the SDE initial-step heuristic and the training path's
 * increment.
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
/* The blocks of the SDE scratch l->sde, n_max each; a step's noise takes
 * one or two (nde_solver_noise). */
enum { SDE_DW, SDE_DW2, SDE_F0, SDE_G0, SDE_Y1, SDE_F1, SDE_G1, SDE_BLOCKS };

typedef struct local_state {
    int measure, biased, through_state, solver_step;
    size_t n_max;
    double u;                 /* this solve's draw                         */
    size_t iextra;            /* index of t_s among the extra save times   */
    int drawn;
    double *y, *y_next, *err, *ybar;     /* n_max each                   */
    double *sde;              /* SDE solvers: dw and the initial step's
                                 f0, g0, y1, f1, g1 (6 x n_max)            */
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

/* The SDE path (below the ODE path's functions). */
static int sde_create(local_state *l, nde_solver *s, nde_ctx *ctx);
static int sde_after_solve(nde_regularizer *r,
                           const nde_regularizer_input *in, double ts,
                           size_t k, nde_regularizer_output *out);

static void local_destroy(nde_regularizer *r)
{
    local_state *l = r->state;

    if (!l)
        return;
    free(l->y);
    free(l->y_next);
    free(l->err);
    free(l->ybar);
    free(l->sde);
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
    if (nde_solver_is_sde(s) && (rc = sde_create(l, s, ctx)))
        return rc;
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
 * from the latest stored state before it (checkpointed records); an SDE
 * replay takes the solve's increments from its path. */
static int state_at_step(local_state *l, const nde_regularizer_input *in,
                         size_t j, size_t n)
{
    const nde_trajectory *fwd = in->fwd;
    const long i = nde_trajectory_state_before(fwd, j);
    double *dw = l->sde ? l->sde + SDE_DW * l->n_max : NULL;
    int rc;

    if (i < 0)
        return NDE_EINVAL;
    memcpy(l->y, nde_trajectory_state(fwd, (size_t)i), n * sizeof(double));
    for (size_t k = nde_trajectory_state_step(fwd, (size_t)i); k < j; k++) {
        if ((rc = nde_regularizer_replay_step(in, k, l->y, l->y_next, NULL,
                                              dw)))
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

/* t_s and y_s (into l->y) of this solve, and for step = solver the
 * solve's step k at t_s. *ts == t1: nothing to take (R = 0). */
static int draw_state(nde_regularizer *r, const nde_regularizer_input *in,
                      size_t n, double *ts, size_t *k)
{
    local_state *l = r->state;
    const nde_trajectory *fwd = in->fwd;
    int rc;

    if ((l->biased || l->solver_step) &&
        (fwd->n != n || !(fwd->record & NDE_NEEDS_STEPS) ||
         fwd->nsteps == 0))
        return nde_error(r->ctx, NDE_EINVAL, "regularizer 'local': biased "
                         "sampling and step = solver need the steps of the "
                         "solve (record NDE_NEEDS_STEPS)");
    if (l->biased) {
        *k = (size_t)(l->u * (double)fwd->nsteps);
        if (*k >= fwd->nsteps)
            *k = fwd->nsteps - 1;
        *ts = fwd->t[*k];
        rc = state_at_step(l, in, *k, n);
        nde_solver_invalidate(in->solver);
        return rc == NDE_EINVAL
                   ? nde_error(r->ctx, rc, "regularizer 'local': no "
                               "recorded state at or before step %zu", *k)
                   : rc;
    }
    if (!in->extra_y || in->nextra <= l->iextra)
        return nde_error(r->ctx, NDE_EINVAL, "regularizer 'local': the "
                         "state at the sampled time t_s was not saved "
                         "(extra save time %zu)", l->iextra);
    *ts = in->t0 + l->u * (in->t1 - in->t0);
    memcpy(l->y, in->extra_y + l->iextra * n, n * sizeof(double));
    if (l->solver_step)
        *k = step_containing(fwd, *ts);
    return NDE_OK;
}

/* step = solver: the solve's step k, to t1 at most. */
static double solver_dt(const nde_trajectory *fwd, size_t k, double ts,
                        double t1)
{
    return fabs(fwd->h[k]) < fabs(t1 - ts) ? fwd->h[k] : t1 - ts;
}

static int ode_after_solve(nde_regularizer *r,
                           const nde_regularizer_input *in, double ts,
                           size_t k, nde_regularizer_output *out)
{
    local_state *l = r->state;
    nde_solver *s = in->solver;
    const size_t n = s->batch * s->field->dim;
    const double rtol = in->opts->rtol, atol = in->opts->atol;
    const double *f0;
    double dt, value;
    int rc;

    /* f(t_s, y_s) serves the initial-step heuristic and is the step's
     * first stage. */
    if ((rc = nde_solver_first_stage(s, in->theta, ts, l->y, &f0)))
        return rc;
    if (l->solver_step)
        dt = solver_dt(in->fwd, k, ts, in->t1);
    else if ((rc = nde_initial_step(s, in->opts, in->theta, ts, l->y, f0,
                                    in->t1, &dt)))
        return rc;
    if ((rc = nde_solver_step(s, in->theta, ts, dt, l->y, l->y_next,
                              l->measure == MEASURE_ERROR ? l->err : NULL)))
        return rc;
    if (l->measure == MEASURE_ERROR)
        value = nde_error_norm(l->err, l->y, l->y_next, n, rtol, atol) *
                fabs(dt);
    else if ((rc = nde_solver_stiffness(s, l->y_next, &value)))
        return rc;
    out->value = value;
    if (in->weight == 0.0)
        return NDE_OK;
    if (l->through_state)
        memset(l->ybar, 0, n * sizeof(double));
    /* The step just taken, from its own stages. */
    return nde_solver_last_step_vjp(
        s, rtol, atol, NULL,
        l->measure == MEASURE_ERROR ? in->weight * fabs(dt) : 0.0,
        l->measure == MEASURE_STIFFNESS ? in->weight : 0.0, NULL, 0,
        l->through_state ? l->ybar : NULL, out->thetabar);
}

static int local_after_solve(nde_regularizer *r,
                             const nde_regularizer_input *in,
                             nde_regularizer_output *out)
{
    local_state *l = r->state;
    nde_solver *s = in->solver;
    const nde_solver_counts c0 = s->counts;
    double ts = in->t0;
    size_t k = 0;
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
    if (l->sde && !in->opts->brownian)
        return nde_error(r->ctx, NDE_EINVAL, "regularizer 'local': the SDE "
                         "solve has no Brownian path (solve options: "
                         "brownian) for the fresh step's increment");
    nde_solver_invalidate(s);
    if ((rc = draw_state(r, in, s->batch * s->field->dim, &ts, &k)) ||
        ts == in->t1)
        goto done;
    rc = l->sde ? sde_after_solve(r, in, ts, k, out)
                : ode_after_solve(r, in, ts, k, out);
    if (rc == NDE_OK && in->weight != 0.0 && l->through_state) {
        l->ct.t = ts;
        l->ct.g = l->ybar;
        out->ct = &l->ct;
        out->nct = 1;
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

/* ---- SDE solvers ----------------------------------------------------------
 *
 * For an adaptive SDE solver (lamba_heun) t_s and y_s are drawn as above
 * (the solver has no dense output, so the unbiased t_s is a step boundary
 * of the solve and y_s its state there; biased: the recorded state of
 * step j, or replayed from the latest stored one through the same path).
 * The fresh step from (t_s, y_s) has
 * - dt from StochasticDiffEq.jl's SDE initial-step heuristic
 *   (sde_determine_initdt, src/initdt.jl), which LocalRegNeuralDE.jl's
 *   fresh integrator (src/layers/neural_sde.jl: init without dt) uses: the
 *   ODE heuristic with 3 g beside f and exponent 1 / (order + 1/2), order
 *   the solver's strong order (nde: type->order / 2; StochasticDiffEq.jl
 *   declares 1/2 for LambaEulerHeun, its order for general noise, nde 1,
 *   its order for commutative noise). dtmax is t1 - t_s (and the solve's
 *   dtmax when set), so the step ends by t1.
 * - dw = W(t_s + dt) - W(t_s) of the training solve's own Brownian path
 *   (in->opts->brownian). LocalRegNeuralDE.jl's fresh integrator draws a
 *   fresh N(0, dt) increment instead; the path's increment after t_s has
 *   that law and is independent of y_s (W has independent increments), so
 *   R has the same distribution, and it needs no random stream of its own:
 *   it is reproducible from the iteration's path, and R is exactly the
 *   estimate the solve would compute for a step of dt from t_s. Brownian
 *   Interval queries do not depend on their order, so the adjoint's later
 *   queries of the path are unchanged.
 * R = EEst dt with EEst = nde_error_norm of the step's own error estimate
 * (nde_solver_advance_err; the training rtol/atol); the gradient is the
 * step's VJP with a cotangent on EEst (nde_solver_vjp), y_s, dt and dw
 * held constant. measure = stiffness is refused at create (no SDE solver
 * has a stiffness estimate), as are SDE solvers with aux state (y_s alone
 * does not restart them). Cost per call: the heuristic's two evaluations
 * (drift and diffusion at two points), the step's four, and the VJP's
 * five evaluations and four VJPs (lamba_heun).
 */
static int sde_create(local_state *l, nde_solver *s, nde_ctx *ctx)
{
    if (nde_solver_aux(s) > 0)
        return nde_error(ctx, NDE_ECAPABILITY, "regularizer 'local': SDE "
                         "solver '%s' carries state besides y; a fresh "
                         "step needs a solver that restarts from y_s alone",
                         s->type->info.name);
    if (!(l->sde = malloc(SDE_BLOCKS * l->n_max * sizeof(double))))
        return nde_error(ctx, NDE_ENOMEM, "regularizer 'local': out of "
                         "memory");
    return NDE_OK;
}

/* RMS over n of max(|a + b|, |a - b|) / sc (b NULL: |a| / sc), sc =
 * atol + rtol |y|: the norms of sde_determine_initdt. */
static double sde_norm(const double *a, const double *b, const double *y,
                       size_t n, double rtol, double atol)
{
    double sum = 0.0;

    for (size_t i = 0; i < n; i++) {
        const double m = b ? fmax(fabs(a[i] + b[i]), fabs(a[i] - b[i]))
                           : fabs(a[i]);
        const double r = m / (atol + rtol * fabs(y[i]));
        sum += r * r;
    }
    return sqrt(sum / (double)n);
}

/* StochasticDiffEq.jl's sde_determine_initdt from (t, y) with dtmax =
 * span (see above); two evaluations of drift and diffusion. */
static int sde_initial_step(local_state *l, nde_solver *s,
                            const nde_solve_opts *o, const double *theta,
                            double t, const double *y, double span,
                            double *dt)
{
    const size_t n = s->batch * s->field->dim, nm = l->n_max;
    double *f0 = l->sde + SDE_F0 * nm, *g0 = l->sde + SDE_G0 * nm;
    double *y1 = l->sde + SDE_Y1 * nm, *f1 = l->sde + SDE_F1 * nm;
    double *g1 = l->sde + SDE_G1 * nm;
    const double order = 0.5 * s->type->order;
    double dtmax = o->dtmax > 0 && o->dtmax < span ? o->dtmax : span;
    double d0, d1, d2, dt0, dt1, dmax;
    int rc;

    s->counts.nfe++;
    if ((rc = nde_field_eval(s->field, t, y, theta, f0, s->batch)) ||
        (rc = nde_field_diffusion(s->field, t, y, theta, g0, s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++)
        g0[i] *= 3.0;
    d0 = sde_norm(y, NULL, y, n, o->rtol, o->atol);
    d1 = sde_norm(f0, g0, y, n, o->rtol, o->atol);
    dt0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : d0 / d1 / 100.0;
    dt0 = fmin(dt0, dtmax);
    for (size_t i = 0; i < n; i++)
        y1[i] = y[i] + dt0 * f0[i];
    s->counts.nfe++;
    if ((rc = nde_field_eval(s->field, t + dt0, y1, theta, f1, s->batch)) ||
        (rc = nde_field_diffusion(s->field, t + dt0, y1, theta, g1,
                                  s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        const double gm = fmax(fabs(g0[i] - 3.0 * g1[i]),
                               fabs(g0[i] + 3.0 * g1[i]));
        f1[i] -= f0[i];
        g1[i] = gm;
    }
    d2 = sde_norm(f1, g1, y, n, o->rtol, o->atol) / dt0;
    dmax = fmax(d1, d2);
    if (!isfinite(dmax))
        return NDE_ERETRY;
    dt1 = dmax <= 1e-15 ? fmax(1e-6, dt0 * 1e-3)
                        : pow(0.01 / dmax, 1.0 / (order + 0.5));
    *dt = fmax(o->dtmin, fmin(fmin(100.0 * dt0, dt1), dtmax));
    return NDE_OK;
}

static int sde_after_solve(nde_regularizer *r,
                           const nde_regularizer_input *in, double ts,
                           size_t k, nde_regularizer_output *out)
{
    local_state *l = r->state;
    nde_solver *s = in->solver;
    const size_t n = s->batch * s->field->dim;
    const double rtol = in->opts->rtol, atol = in->opts->atol;
    double *dw = l->sde + SDE_DW * l->n_max;
    double te, dt;
    int rc;

    if (l->solver_step)
        dt = solver_dt(in->fwd, k, ts, in->t1);
    else if ((rc = sde_initial_step(l, s, in->opts, in->theta, ts, l->y,
                                    in->t1 - ts, &dt)))
        return rc;
    te = fmin(ts + dt, in->t1);
    dt = te - ts;
    if ((rc = nde_solver_noise(s, in->opts->brownian, ts, te, dw)) ||
        (rc = nde_solver_advance_err(s, in->theta, ts, dt, dw, l->y, NULL,
                                     l->y_next, NULL, l->err)))
        return rc;
    out->value = nde_error_norm(l->err, l->y, l->y_next, n, rtol, atol) * dt;
    if (!isfinite(out->value))
        return NDE_ERETRY;
    if (in->weight == 0.0)
        return NDE_OK;
    if (l->through_state)
        memset(l->ybar, 0, n * sizeof(double));
    return nde_solver_vjp(s, in->theta, ts, dt, dw, l->y, NULL,
                          &(const nde_step_cotangent){.eest = in->weight * dt,
                                                      .rtol = rtol,
                                                      .atol = atol},
                          l->through_state ? l->ybar : NULL, NULL,
                          out->thetabar);
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
