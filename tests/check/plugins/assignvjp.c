/*
 * assignvjp - a deliberately wrong field for `nde check`: y' = theta0 y
 * (dim 2), whose VJP assigns (`=`) where the contract says accumulate
 * (`+=`). Its products are right, so only the check's non-zero starting
 * outputs catch it; `nde check field assignvjp` must exit 1.
 */
#include <nde/nde.h>

static int av_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec;
    (void)ctx;
    f->dim = 2;
    f->nparams = 1;
    return NDE_OK;
}

static void av_destroy(nde_field *f) { (void)f; }

static int av_init_params(nde_field *f, double *theta, uint64_t seed)
{
    (void)f;
    (void)seed;
    theta[0] = -0.5;
    return NDE_OK;
}

static int av_eval(nde_field *f, double t, const double *y,
                   const double *theta, double *dy, size_t batch)
{
    (void)f;
    (void)t;
    for (size_t i = 0; i < 2 * batch; i++)
        dy[i] = theta[0] * y[i];
    return NDE_OK;
}

static int av_vjp(nde_field *f, double t, const double *y,
                  const double *theta, const double *v, double *vy,
                  double *vtheta, size_t batch)
{
    (void)f;
    (void)t;
    if (vtheta)
        vtheta[0] = 0.0; /* the bug: should add to what is there */
    for (size_t i = 0; i < 2 * batch; i++) {
        if (vy)
            vy[i] = v[i] * theta[0]; /* the bug again */
        if (vtheta)
            vtheta[0] += v[i] * y[i];
    }
    return NDE_OK;
}

static const nde_field_type assignvjp = {
    .info = NDE_FIELD_INFO(
        .name = "assignvjp",
        .description = "y' = theta y with a VJP that assigns (test of nde "
                       "check)",
        .version = "1"),
    .create = av_create,
    .destroy = av_destroy,
    .init_params = av_init_params,
    .eval = av_eval,
    .vjp = av_vjp,
};

NDE_MODULE(&assignvjp.info);
