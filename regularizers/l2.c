/*
 * l2: plain weight decay, the control arm of an A/B comparison.
 * R = scale * sum_i theta_i^2 over every parameter of the field; the
 * gradient 2 scale theta goes to thetabar directly (no cotangents). It
 * reads nothing of the solve, so it needs nothing from the solver.
 */
#include <stdlib.h>

#include "nde/nde.h"

typedef struct l2_state {
    double scale;
} l2_state;

static const nde_key l2_keys[] = {
    {"scale", NDE_KEY_DOUBLE, "1",
     "factor on sum theta^2 (dimensionless, >= 0)"},
    {NULL, 0, NULL, NULL}};

static void l2_destroy(nde_regularizer *r)
{
    free(r->state);
    r->state = NULL;
}

static int l2_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                     nde_ctx *ctx)
{
    l2_state *st;
    double scale = 1.0;
    int rc;

    (void)s;
    if (sec && (rc = nde_get_double(sec, "scale", &scale, ctx)))
        return rc;
    if (!(scale >= 0))
        return nde_section_error(sec, "scale", ctx, "must be >= 0, got %g",
                                 scale);
    if (!(st = calloc(1, sizeof *st)))
        return nde_error(ctx, NDE_ENOMEM, "regularizer 'l2': out of memory");
    st->scale = scale;
    r->state = st;
    r->needs = 0;
    return NDE_OK;
}

static int l2_after_solve(nde_regularizer *r, const nde_regularizer_input *in,
                          nde_regularizer_output *out)
{
    const l2_state *st = r->state;
    const size_t np = in->solver->field->nparams;
    const double g = 2.0 * in->weight * st->scale;
    double sum = 0.0;

    for (size_t i = 0; i < np; i++) {
        sum += in->theta[i] * in->theta[i];
        if (out->thetabar)
            out->thetabar[i] += g * in->theta[i];
    }
    out->value = st->scale * sum;
    out->ct = NULL;
    out->nct = 0;
    out->nfe = 0;
    out->nvjp = 0;
    return NDE_OK;
}

static const nde_regularizer_type l2_type = {
    .info = NDE_REGULARIZER_INFO(
        .name = "l2",
        .description = "weight decay: scale * sum of squared parameters "
                       "(control arm)",
        .keys = l2_keys,
        .version = "1"),
    .create = l2_create,
    .destroy = l2_destroy,
    .after_solve = l2_after_solve,
};

NDE_MODULE(&l2_type.info);
