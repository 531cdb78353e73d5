/*
 * shipped/linear.c - a test module, linear.so, registering a field named
 * like the shipped `linear` (y' = -y, no parameters, version "9-test"):
 * on $NDE_PLUGIN_PATH it and the shipped one shadow each other, which
 * `nde plugins` shows and a run using `linear` warns about.
 */
#include <nde/nde.h>

static int shadow_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec;
    (void)ctx;
    f->dim = 1;
    f->nparams = 0;
    return NDE_OK;
}

static void shadow_destroy(nde_field *f) { (void)f; }

static int shadow_init_params(nde_field *f, double *theta, uint64_t seed)
{
    (void)f;
    (void)theta;
    (void)seed;
    return NDE_OK;
}

static int shadow_eval(nde_field *f, double t, const double *y,
                       const double *theta, double *dy, size_t batch)
{
    size_t i;
    (void)f;
    (void)t;
    (void)theta;
    for (i = 0; i < batch; i++)
        dy[i] = -y[i];
    return NDE_OK;
}

static int shadow_vjp(nde_field *f, double t, const double *y,
                      const double *theta, const double *v, double *vy,
                      double *vtheta, size_t batch)
{
    size_t i;
    (void)f;
    (void)t;
    (void)y;
    (void)theta;
    (void)vtheta;
    for (i = 0; vy && i < batch; i++)
        vy[i] += -v[i];
    return NDE_OK;
}

static const nde_key shadow_keys[] = {{NULL, 0, NULL, NULL}};

static const nde_field_type shadow_linear = {
    .info = NDE_FIELD_INFO(
        .name = "linear",
        .description = "test: y' = -y, named like the shipped linear",
        .keys = shadow_keys,
        .version = "9-test"),
    .create = shadow_create,
    .destroy = shadow_destroy,
    .init_params = shadow_init_params,
    .eval = shadow_eval,
    .vjp = shadow_vjp,
};

NDE_MODULE(&shadow_linear.info);
