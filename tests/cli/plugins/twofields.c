/*
 * twofields.c - a test module, twofields.so, registering two field
 * components whose names are not the file's: twofield_a, y' = -k y, and
 * twofield_b, y' = -2 k y, on one state with one learnable k (initially
 * 1). Neither names its parameter, so k is "theta[0]" (the default name).
 * Built a second time as shadow/twofield_b.so with TWOFIELD_SCALE = 3
 * (rates 3 and 6), to tell which module a lookup found.
 */
#include <nde/nde.h>

#ifndef TWOFIELD_SCALE
#define TWOFIELD_SCALE 1
#endif

static int twofield_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec;
    (void)ctx;
    f->dim = 1;
    f->nparams = 1;
    return NDE_OK;
}

static void twofield_destroy(nde_field *f) { (void)f; }

static int twofield_init_params(nde_field *f, double *theta, uint64_t seed)
{
    (void)f;
    (void)seed;
    theta[0] = 1.0;
    return NDE_OK;
}

/* y' = -c k y and its VJP; c = 1 for twofield_a, 2 for twofield_b (times
 * TWOFIELD_SCALE). */
static void eval_c(double c, const double *y, const double *theta, double *dy,
                   size_t batch)
{
    size_t i;
    for (i = 0; i < batch; i++)
        dy[i] = -c * theta[0] * y[i];
}

static void vjp_c(double c, const double *y, const double *theta,
                  const double *v, double *vy, double *vtheta, size_t batch)
{
    size_t i;
    for (i = 0; i < batch; i++) {
        if (vy)
            vy[i] += -c * theta[0] * v[i];
        if (vtheta)
            vtheta[0] += -c * y[i] * v[i];
    }
}

static int eval_a(nde_field *f, double t, const double *y, const double *theta,
                  double *dy, size_t batch)
{
    (void)f;
    (void)t;
    eval_c(TWOFIELD_SCALE * 1.0, y, theta, dy, batch);
    return NDE_OK;
}

static int eval_b(nde_field *f, double t, const double *y, const double *theta,
                  double *dy, size_t batch)
{
    (void)f;
    (void)t;
    eval_c(TWOFIELD_SCALE * 2.0, y, theta, dy, batch);
    return NDE_OK;
}

static int vjp_a(nde_field *f, double t, const double *y, const double *theta,
                 const double *v, double *vy, double *vtheta, size_t batch)
{
    (void)f;
    (void)t;
    vjp_c(TWOFIELD_SCALE * 1.0, y, theta, v, vy, vtheta, batch);
    return NDE_OK;
}

static int vjp_b(nde_field *f, double t, const double *y, const double *theta,
                 const double *v, double *vy, double *vtheta, size_t batch)
{
    (void)f;
    (void)t;
    vjp_c(TWOFIELD_SCALE * 2.0, y, theta, v, vy, vtheta, batch);
    return NDE_OK;
}

static const nde_key twofield_keys[] = {{NULL, 0, NULL, NULL}};

static const nde_field_type twofield_a = {
    .info = NDE_FIELD_INFO(
        .name = "twofield_a",
        .description = "test: y' = -k y (module twofields.so)",
        .keys = twofield_keys,
        .version = "1"),
    .create = twofield_create,
    .destroy = twofield_destroy,
    .init_params = twofield_init_params,
    .eval = eval_a,
    .vjp = vjp_a,
};

static const nde_field_type twofield_b = {
    .info = NDE_FIELD_INFO(
        .name = "twofield_b",
        .description = "test: y' = -2 k y (module twofields.so)",
        .keys = twofield_keys,
        .version = "1"),
    .create = twofield_create,
    .destroy = twofield_destroy,
    .init_params = twofield_init_params,
    .eval = eval_b,
    .vjp = vjp_b,
};

NDE_MODULE(&twofield_a.info, &twofield_b.info);
