/*
 * oldfield.c - a field plugin built against the frozen headers of field
 * interface version 1 (tests/core/abi_v1/), loaded by test_abi.c with
 * today's library: y' = -k y on one state, k = theta[0] (initially 2).
 *
 * Its descriptor is followed in memory by a non-NULL pointer where today's
 * nde_field_type has jvp: a core that read past the old descriptor instead
 * of the registry's zero-padded copy would see a jvp there.
 */
#include <nde/field.h>

#if NDE_FIELD_VERSION != 1
#error "oldfield.c must be built against the frozen version-1 headers"
#endif

static int old_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec;
    (void)ctx;
    f->dim = 1;
    f->nparams = 1;
    return NDE_OK;
}

static void old_destroy(nde_field *f) { (void)f; }

static int old_init_params(nde_field *f, double *theta, uint64_t seed)
{
    (void)f;
    (void)seed;
    theta[0] = 2.0;
    return NDE_OK;
}

static int old_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    (void)f;
    (void)t;
    for (size_t i = 0; i < batch; i++)
        dy[i] = -theta[0] * y[i];
    return NDE_OK;
}

static int old_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *vy,
                   double *vtheta, size_t batch)
{
    (void)f;
    (void)t;
    for (size_t i = 0; i < batch; i++) {
        if (vy)
            vy[i] += -theta[0] * v[i];
        if (vtheta)
            vtheta[0] += -y[i] * v[i];
    }
    return NDE_OK;
}

static const struct {
    nde_field_type type;
    const void *after; /* where jvp is today */
} old = {
    {
        .info = NDE_FIELD_INFO(
            .name = "oldfield",
            .description = "test: y' = -k y, built against field "
                           "interface version 1",
            .version = "1"),
        .create = old_create,
        .destroy = old_destroy,
        .init_params = old_init_params,
        .eval = old_eval,
        .vjp = old_vjp,
    },
    &old,
};

NDE_MODULE(&old.type.info);
