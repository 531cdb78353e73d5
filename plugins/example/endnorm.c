/*
 * endnorm.c - an nde regularizer plugin written outside the nde tree:
 *
 *     R = scale / B * sum_b |y_b(t1)|^2
 *
 * the mean squared norm of the solution at the end of the solve over the
 * B rows of the batch. It shows what a regularizer provides: a key table,
 * create/destroy, after_solve, and how a penalty on the trajectory reaches
 * theta: R depends on theta only through y(t1), so after_solve hands the
 * adjoint the cotangent weight * dR/dy(t1) and adds nothing to thetabar
 * directly. Whatever adjoint the run uses carries it back. y(t1) is the
 * last of the states the solve saved (in->saves, regularizer interface
 * version 2): the very numbers the loss saw, whatever the run records.
 * Check it with `nde check regularizer endnorm` (the Makefile's
 * `make check`).
 */
#include <stdlib.h>

#include <nde/nde.h>

static const nde_key endnorm_keys[] = {
    {"scale", NDE_KEY_DOUBLE, "1.0", "factor of the mean squared norm"},
    {NULL, 0, NULL, NULL}};

typedef struct endnorm_state {
    double scale;
    double *g;            /* the cotangent at t1: batch_max x dim     */
    nde_cotangent ct;
} endnorm_state;

static int endnorm_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                          nde_ctx *ctx)
{
    endnorm_state *st;
    int rc;

    if (!(st = calloc(1, sizeof *st)))
        return nde_error(ctx, NDE_ENOMEM, "endnorm: out of memory");
    r->state = st;
    r->needs = 0; /* y(t1) is always saved */
    st->scale = 1.0;
    if (sec && (rc = nde_get_double(sec, "scale", &st->scale, ctx)) != NDE_OK)
        return rc;
    if (!(st->g = calloc(s->batch_max * s->field->dim, sizeof *st->g)))
        return nde_error(ctx, NDE_ENOMEM, "endnorm: out of memory");
    return NDE_OK;
}

static void endnorm_destroy(nde_regularizer *r)
{
    endnorm_state *st = r->state;
    if (st)
        free(st->g);
    free(st);
    r->state = NULL;
}

static int endnorm_after_solve(nde_regularizer *r,
                               const nde_regularizer_input *in,
                               nde_regularizer_output *out)
{
    endnorm_state *st = r->state;
    const nde_regularizer_saves *sv = in->saves;
    const size_t batch = in->solver->batch;
    const size_t n = batch * in->solver->field->dim;
    const double *y = sv->y + (sv->nsave - 1) * n; /* at t[nsave-1] = t1 */
    double sum = 0.0;

    for (size_t i = 0; i < n; i++) {
        sum += y[i] * y[i];
        st->g[i] = in->weight * st->scale * 2.0 * y[i] / (double)batch;
    }
    out->value = st->scale * sum / (double)batch;
    st->ct.t = sv->t[sv->nsave - 1];
    st->ct.g = st->g;
    out->ct = &st->ct;
    out->nct = 1;
    return NDE_OK;
}

static const nde_regularizer_type endnorm = {
    .info = NDE_REGULARIZER_INFO(
        .name = "endnorm",
        .description = "mean squared norm of the final state, scale/B sum "
                       "|y(t1)|^2 (example of an out-of-tree plugin)",
        .keys = endnorm_keys,
        .version = "1"),
    .create = endnorm_create,
    .destroy = endnorm_destroy,
    .after_solve = endnorm_after_solve,
};

NDE_MODULE(&endnorm.info);
