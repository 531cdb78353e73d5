/*
 * badquad - a field for `nde check`'s quadrature line: x' = -theta q,
 * q' = x, with its last value declared a quadrature (nde_field.quadrature
 * = 1) although x' reads it. Its VJP is right for that function. With
 * `[field] reads = false` x' = -theta x instead, and the declaration is
 * true (the check passes).
 */
#include <nde/nde.h>

static int bq_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    int reads = 1, rc;

    if (sec && nde_section_has(sec, "reads") &&
        (rc = nde_get_bool(sec, "reads", &reads, ctx)))
        return rc;
    f->dim = 2;
    f->nparams = 1;
    f->quadrature = 1;
    f->state = (void *)(size_t)reads;
    return NDE_OK;
}

static void bq_destroy(nde_field *f) { (void)f; }

static int bq_init_params(nde_field *f, double *theta, uint64_t seed)
{
    (void)f;
    (void)seed;
    theta[0] = 0.7;
    return NDE_OK;
}

/* the value x' reads: q, or x itself */
static size_t bq_read(const nde_field *f) { return f->state ? 1 : 0; }

static int bq_eval(nde_field *f, double t, const double *y,
                   const double *theta, double *dy, size_t batch)
{
    (void)t;
    for (size_t r = 0; r < batch; r++) {
        dy[2 * r] = -theta[0] * y[2 * r + bq_read(f)];
        dy[2 * r + 1] = y[2 * r];
    }
    return NDE_OK;
}

static int bq_vjp(nde_field *f, double t, const double *y,
                  const double *theta, const double *v, double *vy,
                  double *vtheta, size_t batch)
{
    (void)t;
    for (size_t r = 0; r < batch; r++) {
        if (vy) {
            vy[2 * r + bq_read(f)] -= theta[0] * v[2 * r];
            vy[2 * r] += v[2 * r + 1];
        }
        if (vtheta)
            vtheta[0] -= v[2 * r] * y[2 * r + bq_read(f)];
    }
    return NDE_OK;
}

static const nde_key bq_keys[] = {
    {"reads", NDE_KEY_BOOL, "true", "x' reads the declared quadrature"},
    {NULL, 0, NULL, NULL}};

static const nde_field_type badquad = {
    .info = NDE_FIELD_INFO(
        .name = "badquad",
        .description = "x' = -theta q with q declared a quadrature (test of "
                       "nde check)",
        .keys = bq_keys,
        .version = "1"),
    .create = bq_create,
    .destroy = bq_destroy,
    .init_params = bq_init_params,
    .eval = bq_eval,
    .vjp = bq_vjp,
};

NDE_MODULE(&badquad.info);
