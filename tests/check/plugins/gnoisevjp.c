/*
 * gnoisevjp - a deliberately wrong general-noise field for `nde check`:
 * y' = -y, and M = 2 noise channels with G_ik = theta_k y_i, whose
 * diffusion VJP reads its cotangent as if the noise were diagonal (batch x
 * dim) instead of batch x dim x M. `nde check field gnoisevjp` must exit 1
 * on the diffusion's VJP against differences.
 */
#include <nde/nde.h>

#include "decay.h"

#define NCH 2

static int gv_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec;
    (void)ctx;
    f->dim = 2;
    f->nparams = NCH;
    f->noise = NDE_NOISE_GENERAL;
    f->noise_dim = NCH;
    return NDE_OK;
}

static void gv_destroy(nde_field *f) { (void)f; }

static int gv_init_params(nde_field *f, double *theta, uint64_t seed)
{
    (void)f;
    (void)seed;
    theta[0] = 0.5;
    theta[1] = -0.3;
    return NDE_OK;
}

static int gv_diffusion(nde_field *f, double t, const double *y,
                        const double *theta, double *g, size_t batch)
{
    (void)t;
    for (size_t i = 0; i < batch * f->dim; i++)
        for (size_t k = 0; k < NCH; k++)
            g[i * NCH + k] = theta[k] * y[i];
    return NDE_OK;
}

/* The bug: v indexed as batch x dim. */
static int gv_diffusion_vjp(nde_field *f, double t, const double *y,
                            const double *theta, const double *v, double *vy,
                            double *vtheta, size_t batch)
{
    (void)t;
    for (size_t i = 0; i < batch * f->dim; i++)
        for (size_t k = 0; k < NCH; k++) {
            if (vy)
                vy[i] += v[i] * theta[k];
            if (vtheta)
                vtheta[k] += v[i] * y[i];
        }
    return NDE_OK;
}

static const nde_field_type gnoisevjp = {
    .info = NDE_FIELD_INFO(
        .name = "gnoisevjp",
        .description = "general noise whose diffusion VJP takes a diagonal "
                       "cotangent (test of nde check)",
        .provides = NDE_CAP_DIFFUSION,
        .version = "1"),
    .create = gv_create,
    .destroy = gv_destroy,
    .init_params = gv_init_params,
    .eval = decay_eval,
    .vjp = decay_vjp,
    .diffusion = gv_diffusion,
    .diffusion_vjp = gv_diffusion_vjp,
};

NDE_MODULE(&gnoisevjp.info);
