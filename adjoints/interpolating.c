/*
 * interpolating: the continuous adjoint with the state taken from the
 * forward solve's dense output (InterpolatingAdjoint of SciMLSensitivity;
 * Ma et al. 2021, arXiv 1812.01892). Only [a, a_theta]
 * are integrated, backwards in t from t1 to t0 with the forward solver
 * type:
 *     da/dt = -a df/dy (t, y(t)),   da_theta/dt = -a df/dtheta (t, y(t))
 * a(t1) = the cotangents at t1, a_theta(t1) = 0; then dL/dy0 = a(t0) and
 * dL/dtheta = a_theta(t0). Each cotangent inside (t0, t1) is a tstop of
 * the backward solve whose at_tstop adds its jump to a, so the step-size
 * control carries on across observation times. The error norm is the
 * larger of the scaled RMS norms of a and a_theta, each one block over
 * the whole batch (torchdiffeq's mixed norm); `norm = seminorm` leaves
 * a_theta out (Kidger, Chen, Lyons 2021).
 *
 * The forward solve records every step's state and stages
 * (NDE_NEEDS_DENSE). With `checkpoints = N` it records only N step states
 * (NDE_NEEDS_STEPS, max_states = N) and the dense output of a segment
 * between two checkpoints is regenerated, when the backward solve first
 * needs it, by replaying the recorded steps: memory O(N + longest
 * segment), at most one extra forward pass.
 *
 * The augmented system is a field of this plugin's own type over one row
 * of n + P values (n = batch x dim of the forward state); its dimension is
 * set for the current batch before each backward solve (the workspace is
 * sized for batch_max at create). Buffers that depend on the solve (tstop
 * list, regenerated segment) grow on demand and are kept across calls.
 */
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

typedef struct interp_state {
    nde_field *field;         /* the forward field (borrowed)            */
    nde_solver *fwd_solver;   /* borrowed                                */
    nde_field *augf;          /* [a, a_theta]                            */
    nde_solver *augs;
    size_t n_max, nparams;
    int stages;
    nde_backward_settings bw; /* rtol, atol, norm of the section         */
    size_t checkpoints;
    /* per gradient call */
    const nde_trajectory *fwd;
    const double *theta;
    size_t n;
    size_t norm_blocks[2];    /* n, P                                    */
    nde_jumps jumps;          /* the cotangents, into a                  */
    double *ybuf, *z0, *z1;   /* n_max; n_max + P; n_max + P             */
    /* checkpoint segment: states and stages of its steps */
    long seg;                 /* segment held, -1 = none                 */
    double *seg_y, *seg_k;
    size_t seg_cap;           /* steps the buffers hold                  */
} interp_state;

static const nde_key interp_keys[] = {
    {"rtol", NDE_KEY_DOUBLE, "",
     "relative tolerance of the backward solve (default: the forward one)"},
    {"atol", NDE_KEY_DOUBLE, "",
     "absolute tolerance of the backward solve (default: the forward one)"},
    {"norm", NDE_KEY_WORD, "full",
     "error norm of the backward solve: full (the larger scaled RMS of "
     "the adjoint and the parameter adjoint, each over the whole batch), "
     "or seminorm (the adjoint's only, without the parameter adjoint; "
     "Kidger et al. 2021)"},
    {"checkpoints", NDE_KEY_INT, "0",
     "record only this many step states and regenerate the dense output "
     "between them on the way back (memory O(checkpoints)); 0 = record the "
     "dense output of every step"},
    {NULL, 0, NULL, NULL}};

/* ---- the augmented field -------------------------------------------- */

/* Replay the steps of checkpoint segment iseg, keeping each step's state
 * and stages. */
static int regenerate(interp_state *d, long iseg)
{
    const nde_trajectory *fwd = d->fwd;
    nde_solver *s = d->fwd_solver;
    const size_t n = d->n;
    size_t j0, j1;
    int rc;

    double sel_t = 0.0, sel_h = 0.0; /* the backward step's input segment */

    if (s->field->input)
        nde_input_selected(s->field->input, &sel_t, &sel_h);
    nde_trajectory_segment(fwd, (size_t)iseg, &j0, &j1);
    memcpy(d->seg_y, nde_trajectory_state(fwd, (size_t)iseg),
           n * sizeof(double));
    nde_solver_invalidate(s);
    for (size_t j = j0; j < j1; j++) {
        double *yj = d->seg_y + (j - j0) * n;
        /* The last step's end state is not needed: write it to ybuf. */
        double *ynext = j + 1 < j1 ? yj + n : d->ybuf;
        /* the forward solve dropped its FSAL stage on the input's knots */
        if (j > j0 && s->field->input &&
            nde_input_has_knot(s->field->input, fwd->t[j]))
            nde_solver_invalidate(s);
        rc = nde_solver_step(s, d->theta, fwd->t[j], fwd->h[j], yj, ynext,
                             NULL);
        if (rc != NDE_OK)
            return nde_error(s->ctx, rc == NDE_ERETRY ? NDE_EFATAL : rc,
                             "adjoint 'interpolating': replaying step %zu "
                             "from its checkpoint failed", j);
        nde_solver_copy_stages(s, d->seg_k + (j - j0) * (size_t)d->stages * n);
        nde_solver_accept(s);
    }
    nde_solver_invalidate(s);
    if (s->field->input)
        nde_input_select(s->field->input, sel_t, sel_h);
    d->seg = iseg;
    return NDE_OK;
}

/* y(t) from the forward dense output into d->ybuf. */
static int interpolate(interp_state *d, double t)
{
    const nde_trajectory *fwd = d->fwd;
    const size_t n = d->n, sk = (size_t)d->stages * n;
    long j = nde_trajectory_find(fwd, t);
    const double *yj, *kj;
    int rc;

    if (j < 0) /* round-off just outside [t0, t1] */
        j = fwd->t1 >= fwd->t0 ? (t < fwd->t0 ? 0 : (long)fwd->nsteps - 1)
                               : (t > fwd->t0 ? 0 : (long)fwd->nsteps - 1);
    if (d->checkpoints == 0) { /* every step's state and stages */
        yj = nde_trajectory_state(fwd, (size_t)j);
        kj = nde_trajectory_stages(fwd, (size_t)j);
    } else {
        const long iseg = nde_trajectory_state_before(fwd, (size_t)j);
        const size_t j0 = nde_trajectory_state_step(fwd, (size_t)iseg);
        if (d->seg != iseg && (rc = regenerate(d, iseg)) != NDE_OK)
            return rc;
        yj = d->seg_y + ((size_t)j - j0) * n;
        kj = d->seg_k + ((size_t)j - j0) * sk;
    }
    return nde_solver_dense_from(d->fwd_solver, yj, fwd->h[j], kj,
                                 (t - fwd->t[j]) / fwd->h[j], d->ybuf);
}

/* z = [a, a_theta]: dz = -(a df/dy, a df/dtheta) at (t, y(t)). */
static int aug_eval(void *user, double t, const double *z,
                    const double *theta, double *dz)
{
    interp_state *d = user;
    const size_t m = d->n + d->nparams;
    int rc;

    if ((rc = interpolate(d, t)) != NDE_OK)
        return rc;
    memset(dz, 0, m * sizeof(double));
    rc = nde_field_vjp(d->field, t, d->ybuf, theta, z, dz, dz + d->n,
                       d->n / d->field->dim);
    if (rc != NDE_OK)
        return rc;
    for (size_t i = 0; i < m; i++)
        dz[i] = -dz[i];
    return NDE_OK;
}

/* ---- the plugin ------------------------------------------------------ */

static void interp_destroy(nde_adjoint *a)
{
    interp_state *d = a->state;

    if (!d)
        return;
    nde_solver_destroy(d->augs);
    nde_field_destroy(d->augf);
    nde_jumps_free(&d->jumps);
    free(d->ybuf);
    free(d->z0);
    free(d->z1);
    free(d->seg_y);
    free(d->seg_k);
    free(d);
    a->state = NULL;
}

static int interp_create(nde_adjoint *a, nde_section *sec, nde_solver *s,
                         nde_ctx *ctx)
{
    interp_state *d;
    long checkpoints = 0;
    int rc;

    if (!(d = calloc(1, sizeof *d)))
        return nde_error(ctx, NDE_ENOMEM,
                         "adjoint 'interpolating': out of memory");
    a->state = d;
    if ((rc = nde_backward_settings_read(&d->bw, sec, ctx)) ||
        (sec && (rc = nde_get_long(sec, "checkpoints", &checkpoints, ctx))))
        return rc;
    if (checkpoints < 0)
        return nde_section_error(sec, "checkpoints", ctx, "must be >= 0");
    d->checkpoints = (size_t)checkpoints;
    d->field = s->field;
    d->fwd_solver = s;
    d->n_max = s->batch_max * s->field->dim;
    d->nparams = s->field->nparams;
    d->stages = nde_solver_stages(s);
    d->seg = -1;
    if (!(d->ybuf = malloc(d->n_max * sizeof(double))) ||
        !(d->z0 = malloc((d->n_max + d->nparams) * sizeof(double))) ||
        !(d->z1 = malloc((d->n_max + d->nparams) * sizeof(double))))
        return nde_error(ctx, NDE_ENOMEM,
                         "adjoint 'interpolating': out of memory");
    if ((rc = nde_field_create_rhs(ctx, d->n_max + d->nparams, aug_eval, d,
                                   &d->augf)))
        return rc;
    d->augf->quadrature = d->nparams; /* a_theta: read by no derivative */
    d->augf->pool = s->field->pool; /* the model's threads, between calls */
    if ((rc = nde_solver_create_from(ctx, s->type, d->augf, &d->augs)))
        return rc;
    a->record = d->checkpoints ? NDE_NEEDS_STEPS : NDE_NEEDS_DENSE;
    a->max_states = d->checkpoints;
    return NDE_OK;
}

static int grow(void **p, size_t want, size_t size)
{
    void *q = realloc(*p, want * size);

    if (!q)
        return NDE_ENOMEM;
    *p = q;
    return NDE_OK;
}

static int interp_gradient(nde_adjoint *a, const nde_solve_opts *opts,
                           const nde_trajectory *fwd, const double *theta,
                           const nde_cotangent *ct, size_t nct,
                           double *ybar0, double *thetabar, nde_stats *stats)
{
    interp_state *d = a->state;
    nde_solver *s = d->fwd_solver;
    const size_t n = s->batch * s->field->dim, P = d->nparams;
    const unsigned need = d->checkpoints ? NDE_NEEDS_STEPS : NDE_NEEDS_DENSE;
    const long nfe0 = s->counts.nfe;
    nde_solve_opts bo;
    nde_stats bst;
    int rc;

    memset(&bst, 0, sizeof bst);
    if (fwd->n != n || !(fwd->record & need) ||
        (fwd->nsteps > 0 && fwd->nstates == 0))
        return nde_error(a->ctx, NDE_EINVAL,
                         "adjoint 'interpolating': the trajectory does not "
                         "hold the %s of this batch", d->checkpoints
                         ? "step states" : "dense output");
    if (d->seg_cap < fwd->stride && d->checkpoints) {
        if (grow((void **)&d->seg_y, fwd->stride * n, sizeof(double)) ||
            grow((void **)&d->seg_k, fwd->stride * (size_t)d->stages * n,
                 sizeof(double)))
            return nde_error(a->ctx, NDE_ENOMEM, "adjoint 'interpolating': "
                             "out of memory for a segment of %zu steps",
                             fwd->stride);
        d->seg_cap = fwd->stride;
    }
    d->fwd = fwd;
    d->theta = theta;
    d->n = n;
    d->seg = -1;
    d->augf->dim = n + P;
    d->augf->input = d->field->input; /* stop and select as forwards */

    /* z(t1) = [the cotangents at t1, 0]. */
    memset(d->z0, 0, (n + P) * sizeof(double));
    if ((rc = nde_jumps_plan(&d->jumps, fwd, ct, nct, n, 0, d->z0,
                             a->ctx)) != NDE_OK) {
        nde_error_prefix(a->ctx, "adjoint 'interpolating'");
        return rc;
    }

    if (fwd->t1 != fwd->t0) {
        nde_backward_settings_apply(&d->bw, opts, &bo);
        nde_jumps_use(&d->jumps, &bo);
        d->norm_blocks[0] = n;
        d->norm_blocks[1] = P;
        bo.norm_blocks = d->norm_blocks;
        bo.nnorm_blocks = d->bw.seminorm || P == 0 ? 1 : 2;
        rc = nde_solve(d->augs, &bo, theta, fwd->t1, d->z0, fwd->t0, 1,
                       &fwd->t0, d->z1, &bst);
        if (rc != NDE_OK) {
            nde_error_prefix(a->ctx, "adjoint 'interpolating', backward "
                             "solve");
            goto done;
        }
    } else {
        memcpy(d->z1, d->z0, (n + P) * sizeof(double));
    }
    nde_jumps_finish(&d->jumps, d->z1);
    memcpy(ybar0, d->z1, n * sizeof(double));
    memcpy(thetabar, d->z1 + n, P * sizeof(double));
done:
    if (stats)
        stats->nfe_backward += bst.nfe + (s->counts.nfe - nfe0);
    return rc;
}

static const nde_adjoint_type interp_type = {
    .info = NDE_ADJOINT_INFO(
        .name = "interpolating",
        .description = "continuous adjoint [a, a_theta] integrated backwards "
                       "with the state from the forward dense output (or "
                       "checkpoints)",
        .keys = interp_keys,
        .needs = NDE_NEEDS_DENSE,
        .version = "1"),
    .create = interp_create,
    .destroy = interp_destroy,
    .gradient = interp_gradient,
};

NDE_MODULE(&interp_type.info);
