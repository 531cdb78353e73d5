/*
 * badsde - a deliberately wrong SDE field for `nde check`: y' = -y with
 * the diagonal diffusion g = theta y, whose both-at-once operations
 * disagree with the separate ones: eval_sde doubles g, vjp_sde leaves
 * out the diffusion's part. `nde check field badsde` must exit 1 on both
 * (the separate operations are right and pass).
 */
#include <nde/nde.h>

#include "decay.h"

static int bs_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec;
    (void)ctx;
    f->dim = 2;
    f->nparams = 1;
    f->noise = NDE_NOISE_DIAGONAL;
    return NDE_OK;
}

static void bs_destroy(nde_field *f) { (void)f; }

static int bs_init_params(nde_field *f, double *theta, uint64_t seed)
{
    (void)f;
    (void)seed;
    theta[0] = 0.5;
    return NDE_OK;
}

static int bs_diffusion(nde_field *f, double t, const double *y,
                        const double *theta, double *g, size_t batch)
{
    (void)t;
    for (size_t i = 0; i < batch * f->dim; i++)
        g[i] = theta[0] * y[i];
    return NDE_OK;
}

static int bs_diffusion_vjp(nde_field *f, double t, const double *y,
                            const double *theta, const double *v, double *vy,
                            double *vtheta, size_t batch)
{
    (void)t;
    for (size_t i = 0; i < batch * f->dim; i++) {
        if (vy)
            vy[i] += v[i] * theta[0];
        if (vtheta)
            vtheta[0] += v[i] * y[i];
    }
    return NDE_OK;
}

/* The bugs: g doubled; the diffusion's VJP left out. */
static int bs_eval_sde(nde_field *f, double t, const double *y,
                       const double *theta, double *dy, double *g,
                       size_t batch)
{
    decay_eval(f, t, y, theta, dy, batch);
    bs_diffusion(f, t, y, theta, g, batch);
    for (size_t i = 0; i < batch * f->dim; i++)
        g[i] *= 2.0;
    return NDE_OK;
}

static int bs_vjp_sde(nde_field *f, double t, const double *y,
                      const double *theta, const double *v, const double *vg,
                      double *vy, double *vtheta, size_t batch)
{
    (void)vg;
    return decay_vjp(f, t, y, theta, v, vy, vtheta, batch);
}

static const nde_field_type badsde = {
    .info = NDE_FIELD_INFO(
        .name = "badsde",
        .description = "an SDE field whose eval_sde and vjp_sde disagree "
                       "with its separate operations (test of nde check)",
        .provides = NDE_CAP_DIFFUSION,
        .version = "1"),
    .create = bs_create,
    .destroy = bs_destroy,
    .init_params = bs_init_params,
    .eval = decay_eval,
    .vjp = decay_vjp,
    .diffusion = bs_diffusion,
    .diffusion_vjp = bs_diffusion_vjp,
    .eval_sde = bs_eval_sde,
    .vjp_sde = bs_vjp_sde,
};

NDE_MODULE(&badsde.info);
