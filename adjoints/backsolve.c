/*
 * backsolve: the continuous adjoint with the state integrated backwards
 * together with it (Chen, Rubanova, Bettencourt, Duvenaud 2018, arXiv
 * 1806.07366, Algorithm 1). From z(t1) = [y(t1), a(t1), 0]
 * the system
 *     dy/dt = f(t, y),  da/dt = -a df/dy,  da_theta/dt = -a df/dtheta
 * is solved with t decreasing from t1 to t0 by the forward solver type;
 * then dL/dy0 = a(t0) and dL/dtheta = a_theta(t0). The forward solve
 * records nothing but its final state.
 *
 * Each cotangent inside (t0, t1) is a tstop of the backward solve whose
 * at_tstop adds its jump to a, and the step size carries on across it
 * (torchdiffeq restarts its step-size heuristic at every observation
 * time instead). The error norm is torchdiffeq's mixed norm: the largest
 * of the scaled RMS norms of y, a and a_theta, each one block over the
 * whole batch (an RMS over all 2n + P values would let the P small
 * parameter-adjoint entries dilute the errors of y and a). With `norm =
 * seminorm` it covers y and a only (Kidger, Chen, Lyons 2021, "Hey,
 * that's not an ODE"): a_theta is an integral that does not feed back
 * into the rest, so its error need not control the steps.
 *
 * Like every backsolve, the reconstructed y drifts from the forward path
 * on problems that are unstable backwards (Ma et al. 2021, arXiv
 * 1812.01892: e.g. Lorenz).
 *
 * The augmented system is a field of this plugin's own type over one row
 * of 2n + P values (n = batch x dim); its dimension is set for the current
 * batch before each backward solve (the workspace is sized for batch_max
 * at create). The tstop list grows on demand and is kept across calls.
 *
 * SDEs (a Stratonovich solver such as reversible_heun; Li, Wong, Chen,
 * Duvenaud 2020, arXiv 2001.01328, Sec. 3): for dy = f dt + g o dW the augmented state
 * obeys, backwards over the same Brownian path,
 *     y(s)   = y(t)   - int_s^t f du        - int_s^t g o dW
 *     a(s)   = a(t)   + int_s^t a df/dy du  + int_s^t a dg/dy o dW
 *     a_th(s)= a_th(t)+ int_s^t a df/dth du + int_s^t a dg/dth o dW
 * The adjoint's noise is not diagonal (a_i gets sum_j a_j dg_j/dy_i dW_j,
 * the diffusion VJP with v = a dW), so this plugin steps it itself with
 * Heun's method (trapezoidal, which converges to the Stratonovich
 * solution) on the forward solve's step boundaries walked backwards
 * (nde_step_grid), each step's increment queried again from the solve's
 * Brownian path. A stage is one drift and diffusion evaluation and one VJP
 * of both. Cotangents must lie on step boundaries (save times, tstops).
 * The gradient converges to the exact one (and to `discrete`'s) as dt
 * shrinks. Itô solvers are refused: the backward equation above is the
 * Stratonovich one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

typedef struct backsolve_state {
    nde_field *field;         /* the forward field (borrowed)            */
    nde_field *augf;          /* [y, a, a_theta]                         */
    nde_solver *augs;
    size_t n_max, nparams;
    nde_backward_settings bw; /* rtol, atol, norm of the section         */
    /* per gradient call */
    size_t n;
    size_t norm_blocks[3];    /* n, n, P                                 */
    nde_jumps jumps;          /* the cotangents, into a                  */
    double *z0, *z1;          /* 2 n_max + P each                        */
    /* SDEs: Heun on the augmented state, all 2 n_max + P unless noted */
    int sde;
    double *zt, *d1, *d2;     /* predictor, the two stages' increments   */
    double *fg, *v, *dw;      /* 2 n_max (f, g), n_max, n_max            */
} backsolve_state;

static const nde_key backsolve_keys[] = {
    {"rtol", NDE_KEY_DOUBLE, "",
     "relative tolerance of the backward solve (default: the forward one)"},
    {"atol", NDE_KEY_DOUBLE, "",
     "absolute tolerance of the backward solve (default: the forward one)"},
    {"norm", NDE_KEY_WORD, "full",
     "error norm of the backward solve: full (the largest scaled RMS of "
     "y, a and the parameter adjoint, each over the whole batch), or "
     "seminorm (the same over y and a only, without the parameter "
     "adjoint; Kidger et al. 2021)"},
    {NULL, 0, NULL, NULL}};

/* ---- the augmented field -------------------------------------------- */

/* z = [y, a, a_theta]: dz = [f, -a df/dy, -a df/dtheta] at (t, y). */
static int aug_eval(void *user, double t, const double *z,
                    const double *theta, double *dz)
{
    backsolve_state *d = user;
    const size_t n = d->n, rows = n / d->field->dim;
    double *da = dz + n;
    int rc;

    if ((rc = nde_field_eval(d->field, t, z, theta, dz, rows)) != NDE_OK)
        return rc;
    memset(da, 0, (n + d->nparams) * sizeof(double));
    rc = nde_field_vjp(d->field, t, z, theta, z + n, da, da + n, rows);
    if (rc != NDE_OK)
        return rc;
    for (size_t i = 0; i < n + d->nparams; i++)
        da[i] = -da[i];
    return NDE_OK;
}

/* ---- SDEs: Heun backwards on the augmented state -------------------- */

/* dz = the backward increment of z = [y, a, a_theta] over a step of size h
 * with Brownian increment dw, from the point (t, z):
 * [-(f h + g dw), a df/dy h + (a dw) dg/dy, a df/dth h + (a dw) dg/dth]. */
static int sde_increment(backsolve_state *d, double t, const double *z,
                         const double *theta, double h, double *dz)
{
    const size_t n = d->n, rows = n / d->field->dim, P = d->nparams;
    const double *a = z + n;
    double *f = d->fg, *g = d->fg + n;
    int rc;

    if ((rc = nde_field_eval(d->field, t, z, theta, f, rows)) ||
        (rc = nde_field_diffusion(d->field, t, z, theta, g, rows)))
        return rc;
    for (size_t i = 0; i < n; i++)
        dz[i] = -(f[i] * h + g[i] * d->dw[i]);
    memset(dz + n, 0, (n + P) * sizeof(double));
    if ((rc = nde_field_vjp(d->field, t, z, theta, a, dz + n, dz + 2 * n,
                            rows)))
        return rc;
    for (size_t i = n; i < 2 * n + P; i++)
        dz[i] *= h;
    for (size_t i = 0; i < n; i++)
        d->v[i] = a[i] * d->dw[i];
    return nde_field_diffusion_vjp(d->field, t, z, theta, d->v, dz + n,
                                   dz + 2 * n, rows);
}

static void add_ct(double *a, const double *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] += g[i];
}

static int sde_gradient(nde_adjoint *a, const nde_solve_opts *opts,
                        const nde_trajectory *fwd, const double *theta,
                        const nde_cotangent *ct, size_t nct, double *ybar0,
                        double *thetabar, long *nfe)
{
    backsolve_state *d = a->state;
    const size_t n = d->n, P = d->nparams, m = 2 * n + P;
    nde_step_grid grid;
    size_t ic = nct;
    double t = fwd->t1, *z = d->z0;
    int rc;

    if (fwd->t1 < fwd->t0)
        return nde_error(a->ctx, NDE_EINVAL, "adjoint 'backsolve': solver "
                         "'%s' steps forwards only",
                         a->solver->type->info.name);
    if (!opts->brownian)
        return nde_error(a->ctx, NDE_EINVAL,
                         "adjoint 'backsolve': solver '%s' needs the solve's "
                         "Brownian path (opts->brownian)",
                         a->solver->type->info.name);
    /* its grid has no stops on the input's knots (nde/input.h) */
    if (a->solver->field->input)
        return nde_error(a->ctx, NDE_ECAPABILITY, "adjoint 'backsolve': an "
                         "SDE field that reads a time-dependent input is "
                         "not supported (the discrete adjoint is)");
    if ((rc = nde_step_grid_init(&grid, fwd->t0, fwd->t1, opts->dt,
                                 fwd->tsave, fwd->nsave, opts->tstops,
                                 opts->ntstops, a->ctx)) != NDE_OK) {
        nde_error_prefix(a->ctx, "adjoint 'backsolve'");
        return rc;
    }
    memcpy(z, fwd->y_final, n * sizeof(double));
    memset(z + n, 0, (n + P) * sizeof(double));
    while (ic > 0 && nde_step_grid_snap(&grid, ct[ic - 1].t) >= fwd->t1)
        add_ct(z + n, ct[--ic].g, n);
    while (t > fwd->t0) {
        const double tp = nde_step_grid_prev(&grid, t), h = t - tp;
        if (ic > 0 && nde_step_grid_snap(&grid, ct[ic - 1].t) > tp)
            return nde_error(a->ctx, NDE_EINVAL,
                             "adjoint 'backsolve': a cotangent at t = %g "
                             "lies inside the step [%g, %g] of an SDE solve "
                             "(cotangents must lie on step ends: save times "
                             "or tstops)", ct[ic - 1].t, tp, t);
        if ((rc = nde_brownian_increment(opts->brownian, tp, t, d->dw)))
            return nde_error(a->ctx, rc, "adjoint 'backsolve': the Brownian "
                             "path has no increment over [%g, %g] (reset it "
                             "to the solve's path)", tp, t);
        /* Heun from t to tp: predictor, then the trapezoidal mean. */
        if ((rc = sde_increment(d, t, z, theta, h, d->d1)))
            goto failed;
        for (size_t i = 0; i < m; i++)
            d->zt[i] = z[i] + d->d1[i];
        if ((rc = sde_increment(d, tp, d->zt, theta, h, d->d2)))
            goto failed;
        for (size_t i = 0; i < m; i++)
            z[i] += 0.5 * (d->d1[i] + d->d2[i]);
        *nfe += 4;
        t = tp;
        while (ic > 0 && nde_step_grid_snap(&grid, ct[ic - 1].t) >= t)
            add_ct(z + n, ct[--ic].g, n);
    }
    while (ic > 0)
        add_ct(z + n, ct[--ic].g, n);
    for (size_t i = 0; i < m; i++)
        if (!isfinite(z[i]))
            return nde_error(a->ctx, NDE_ENONFINITE, "adjoint 'backsolve': "
                             "the backward SDE solve became non-finite");
    memcpy(ybar0, z + n, n * sizeof(double));
    memcpy(thetabar, z + 2 * n, P * sizeof(double));
    return NDE_OK;
failed:
    if (rc == NDE_ERETRY)
        return nde_error(a->ctx, NDE_ENONFINITE, "adjoint 'backsolve': the "
                         "field returned non-finite values in the backward "
                         "SDE solve at t = %g", t);
    nde_error_prefix(a->ctx, "adjoint 'backsolve', backward SDE solve");
    return rc;
}

/* ---- the plugin ------------------------------------------------------ */

static void backsolve_destroy(nde_adjoint *a)
{
    backsolve_state *d = a->state;

    if (!d)
        return;
    nde_solver_destroy(d->augs);
    nde_field_destroy(d->augf);
    nde_jumps_free(&d->jumps);
    free(d->z0);
    free(d->z1);
    free(d->zt);
    free(d->d1);
    free(d->d2);
    free(d->fg);
    free(d->v);
    free(d->dw);
    free(d);
    a->state = NULL;
}

static int backsolve_create(nde_adjoint *a, nde_section *sec, nde_solver *s,
                            nde_ctx *ctx)
{
    backsolve_state *d;
    size_t m;
    int rc;

    if (nde_solver_is_sde(s) &&
        !(s->type->info.provides & NDE_CAP_SDE_STRATONOVICH))
        return nde_error(ctx, NDE_ECAPABILITY,
                         "adjoint 'backsolve' needs the Stratonovich form of "
                         "the SDE (its backward equation is the Stratonovich "
                         "one); solver '%s' integrates Ito SDEs: use a "
                         "Stratonovich solver such as reversible_heun, or "
                         "the adjoint 'discrete'", s->type->info.name);
    if (s->field->noise == NDE_NOISE_GENERAL)   /* its equation is diagonal */
        return nde_error(ctx, NDE_ECAPABILITY,
                         "adjoint 'backsolve' supports diagonal noise only, "
                         "but field '%s' has general noise (its key "
                         "noise_dim = %zu): use the adjoint 'discrete' or "
                         "'reversible'", s->field->type->info.name,
                         s->field->noise_dim);
    if (!(d = calloc(1, sizeof *d)))
        return nde_error(ctx, NDE_ENOMEM, "adjoint 'backsolve': out of memory");
    a->state = d;
    if ((rc = nde_backward_settings_read(&d->bw, sec, ctx)))
        return rc;
    d->field = s->field;
    d->n_max = s->batch_max * s->field->dim;
    d->nparams = s->field->nparams;
    m = 2 * d->n_max + d->nparams;
    if (!(d->z0 = malloc(m * sizeof(double))) ||
        !(d->z1 = malloc(m * sizeof(double))))
        return nde_error(ctx, NDE_ENOMEM, "adjoint 'backsolve': out of memory");
    a->record = 0;
    a->max_states = 0;
    if (nde_solver_is_sde(s)) {
        static const char *const adaptive_keys[] = {"rtol", "atol", "norm"};
        for (size_t i = 0; i < 3; i++)
            if (sec && nde_section_has(sec, adaptive_keys[i]))
                return nde_section_error(sec, adaptive_keys[i], ctx,
                                         "has no effect with solver '%s': "
                                         "the backward SDE takes the "
                                         "forward solve's fixed steps",
                                         s->type->info.name);
        d->sde = 1;
        if (!(d->zt = malloc(m * sizeof(double))) ||
            !(d->d1 = malloc(m * sizeof(double))) ||
            !(d->d2 = malloc(m * sizeof(double))) ||
            !(d->fg = malloc(2 * d->n_max * sizeof(double))) ||
            !(d->v = malloc(d->n_max * sizeof(double))) ||
            !(d->dw = malloc(d->n_max * sizeof(double))))
            return nde_error(ctx, NDE_ENOMEM,
                             "adjoint 'backsolve': out of memory");
        return NDE_OK;
    }
    if ((rc = nde_field_create_rhs(ctx, m, aug_eval, d, &d->augf)))
        return rc;
    d->augf->quadrature = d->nparams; /* a_theta: read by no derivative */
    d->augf->pool = s->field->pool; /* the model's threads, between calls */
    if ((rc = nde_solver_create_from(ctx, s->type, d->augf, &d->augs)))
        return rc;
    a->record = 0;
    a->max_states = 0;
    return NDE_OK;
}

/* A backward solve that failed on its steps most often met the state's
 * own backward instability: say so, and what does not have it. */
static void hint_unstable(nde_ctx *ctx, int rc)
{
    char msg[1024];

    snprintf(msg, sizeof msg, "%s", nde_ctx_message(ctx));
    nde_error(ctx, rc, "%s (backsolve solves the state backwards in time, "
              "where a stiff or strongly damped system grows without "
              "bound; the interpolating and discrete adjoints keep the "
              "forward states)", msg);
}

static int backsolve_gradient(nde_adjoint *a, const nde_solve_opts *opts,
                              const nde_trajectory *fwd, const double *theta,
                              const nde_cotangent *ct, size_t nct,
                              double *ybar0, double *thetabar,
                              nde_stats *stats)
{
    backsolve_state *d = a->state;
    const nde_solver *s = a->solver;
    const size_t n = s->batch * s->field->dim, P = d->nparams;
    nde_solve_opts bo;
    nde_stats bst;
    int rc;

    memset(&bst, 0, sizeof bst);
    if (fwd->n != n || !fwd->y_final)
        return nde_error(a->ctx, NDE_EINVAL,
                         "adjoint 'backsolve': the trajectory does not hold "
                         "the final state of this batch");
    d->n = n;
    if (d->sde) {
        long nfe = 0;
        rc = sde_gradient(a, opts, fwd, theta, ct, nct, ybar0, thetabar,
                          &nfe);
        if (stats)
            stats->nfe_backward += nfe;
        return rc;
    }
    d->augf->dim = 2 * n + P;
    d->augf->input = s->field->input; /* stop and select as forwards */

    /* z(t1) = [y(t1), the cotangents at t1, 0]. */
    memcpy(d->z0, fwd->y_final, n * sizeof(double));
    memset(d->z0 + n, 0, (n + P) * sizeof(double));
    if ((rc = nde_jumps_plan(&d->jumps, fwd, ct, nct, n, n, d->z0,
                             a->ctx)) != NDE_OK) {
        nde_error_prefix(a->ctx, "adjoint 'backsolve'");
        return rc;
    }

    if (fwd->t1 != fwd->t0) {
        nde_backward_settings_apply(&d->bw, opts, &bo);
        nde_jumps_use(&d->jumps, &bo);
        d->norm_blocks[0] = d->norm_blocks[1] = n;
        d->norm_blocks[2] = P;
        bo.norm_blocks = d->norm_blocks;
        bo.nnorm_blocks = d->bw.seminorm || P == 0 ? 2 : 3;
        rc = nde_solve(d->augs, &bo, theta, fwd->t1, d->z0, fwd->t0, 1,
                       &fwd->t0, d->z1, &bst);
        if (rc != NDE_OK) {
            nde_error_prefix(a->ctx, "adjoint 'backsolve', backward solve");
            if (rc == NDE_ESTEPSIZE || rc == NDE_EMAXSTEPS ||
                rc == NDE_ENONFINITE)
                hint_unstable(a->ctx, rc);
            goto done;
        }
    } else {
        memcpy(d->z1, d->z0, (2 * n + P) * sizeof(double));
    }
    nde_jumps_finish(&d->jumps, d->z1);
    memcpy(ybar0, d->z1 + n, n * sizeof(double));
    memcpy(thetabar, d->z1 + 2 * n, P * sizeof(double));
done:
    /* Each evaluation of the system is one field evaluation and one VJP. */
    if (stats)
        stats->nfe_backward += 2 * bst.nfe;
    return rc;
}

static const nde_adjoint_type backsolve_type = {
    .info = NDE_ADJOINT_INFO(
        .name = "backsolve",
        .description = "continuous adjoint: state, adjoint and parameter "
                       "adjoint integrated backwards together from y(t1) "
                       "(memory O(1))",
        .keys = backsolve_keys,
        .version = "1"),
    .create = backsolve_create,
    .destroy = backsolve_destroy,
    .gradient = backsolve_gradient,
};

NDE_MODULE(&backsolve_type.info);
