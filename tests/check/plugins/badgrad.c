/*
 * badgrad - a deliberately wrong regularizer for `nde check`:
 * R = sum theta^2 whose direct gradient is theta (half of 2 theta);
 * `nde check regularizer badgrad` must exit 1.
 */
#include <nde/nde.h>

static int bg_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                     nde_ctx *ctx)
{
    (void)sec;
    (void)s;
    (void)ctx;
    r->needs = 0;
    return NDE_OK;
}

static void bg_destroy(nde_regularizer *r) { (void)r; }

static int bg_after_solve(nde_regularizer *r, const nde_regularizer_input *in,
                          nde_regularizer_output *out)
{
    const size_t P = r->solver->field->nparams;
    out->value = 0.0;
    for (size_t i = 0; i < P; i++) {
        out->value += in->theta[i] * in->theta[i];
        out->thetabar[i] += in->weight * in->theta[i]; /* the bug: 2 theta */
    }
    return NDE_OK;
}

static const nde_regularizer_type badgrad = {
    .info = NDE_REGULARIZER_INFO(
        .name = "badgrad",
        .description = "sum theta^2 with half its gradient (test of nde "
                       "check)",
        .version = "1"),
    .create = bg_create,
    .destroy = bg_destroy,
    .after_solve = bg_after_solve,
};

NDE_MODULE(&badgrad.info);
