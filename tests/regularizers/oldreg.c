/*
 * oldreg.c - a regularizer declaring interface version 1 (before
 * nde_regularizer_input.saves): R = sum theta^2, gradient 2 theta. Its
 * descriptor has version 1's layout, which version 2 left unchanged, and
 * it never reads past version 1's input: it loads and runs as a plugin
 * built against the version-1 header does.
 */
#include "nde/nde.h"

static int oldreg_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                         nde_ctx *ctx)
{
    (void)r, (void)sec, (void)s, (void)ctx;
    return NDE_OK;
}

static void oldreg_destroy(nde_regularizer *r) { (void)r; }

static int oldreg_after_solve(nde_regularizer *r,
                              const nde_regularizer_input *in,
                              nde_regularizer_output *out)
{
    const size_t P = r->solver->field->nparams;
    out->value = 0.0;
    for (size_t i = 0; i < P; i++) {
        out->value += in->theta[i] * in->theta[i];
        out->thetabar[i] += 2.0 * in->weight * in->theta[i];
    }
    return NDE_OK;
}

static const nde_regularizer_type oldreg = {
    .info = NDE_PLUGIN_INFO_(NDE_KIND_REGULARIZER, 1, nde_regularizer_type,
                             .name = "oldreg",
                             .description = "sum theta^2, declaring "
                                            "regularizer interface version 1",
                             .version = "1"),
    .create = oldreg_create,
    .destroy = oldreg_destroy,
    .after_solve = oldreg_after_solve,
};

NDE_MODULE(&oldreg.info);
