/*
 * second_order - a second-order neural ODE x'' = a(x, x') as the
 * first-order system of the state (x, v) (Massaroli, Poli, Park,
 * Yamashita, Asama, "Dissecting Neural ODEs", NeurIPS 2020, Sec. 5):
 *
 *     [field]
 *     plugin = second_order
 *     inner  = accel              ; section [field.accel]
 *
 *     dx = v,   dv = the last m outputs of the inner field at (x, v)
 *
 * The inner field has the dimension 2m of the state (fields map a state
 * to a derivative of the same size); its first m outputs are not used (an
 * mlp's last layer keeps their weights, whose gradient is 0). The
 * parameters are the inner field's. An ODE field: the inner one must have
 * no diffusion.
 */
#include <stdlib.h>
#include <string.h>

#include "wrap.h"

typedef struct so_state {
    field_wrap base;        /* first: the inner field                 */
    size_t m;
} so_state;

static int so_eval(nde_field *f, double t, const double *y,
                   const double *theta, double *dy, size_t batch)
{
    so_state *s = f->state;
    const size_t m = s->m, d = 2 * m;
    int rc = nde_field_eval(s->base.inner, t, y, theta, s->base.buf, batch);

    if (rc != NDE_OK && rc != NDE_ERETRY)
        return rc;
    for (size_t r = 0; r < batch; r++) {
        memcpy(dy + r * d, y + r * d + m, m * sizeof *dy);
        memcpy(dy + r * d + m, s->base.buf + r * d + m, m * sizeof *dy);
    }
    return rc;
}

/* vy[x] += (inner VJP)[x], vy[v] += vx + (inner VJP)[v], with the inner
 * field's cotangent (0, vv). */
static int so_vjp(nde_field *f, double t, const double *y,
                  const double *theta, const double *v, double *vy,
                  double *vtheta, size_t batch)
{
    so_state *s = f->state;
    const size_t m = s->m, d = 2 * m;
    double *ct = s->base.buf;

    for (size_t r = 0; r < batch; r++) {
        memset(ct + r * d, 0, m * sizeof *ct);
        memcpy(ct + r * d + m, v + r * d + m, m * sizeof *ct);
        if (vy)
            for (size_t i = 0; i < m; i++)
                vy[r * d + m + i] += v[r * d + i];
    }
    return nde_field_vjp(s->base.inner, t, y, theta, ct, vy, vtheta, batch);
}

static int so_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    so_state *s = calloc(1, sizeof *s);
    const char *name;
    int rc;

    if (!(f->state = s))
        return nde_error(ctx, NDE_ENOMEM, "second_order: out of memory");
    if (!sec)
        return nde_error(ctx, NDE_ECONFIG, "second_order: needs a [field] "
                         "section with inner");
    if ((rc = field_wrap_inner(f, sec, "a second-order field", ctx,
                               &name, &s->base.inner)) != NDE_OK)
        return rc;
    if (s->base.inner->dim % 2)
        return nde_section_error(sec, "inner", ctx, "'%s' has dimension "
                                 "%zu; the state (x, v) needs an even one",
                                 name, s->base.inner->dim);
    s->m = s->base.inner->dim / 2;
    if ((rc = field_wrap_buf(f, &s->base, ctx)) != NDE_OK)
        return rc;
    f->dim = s->base.inner->dim;
    f->nparams = s->base.inner->nparams;
    return NDE_OK;
}

static const nde_key so_keys[] = {
    {"inner", NDE_KEY_WORD, NULL,
     "the acceleration's field, configured in section [field.NAME]: "
     "dimension 2m for x and v of m values each; its last m outputs are "
     "x''"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type so_type = {
    .info = NDE_FIELD_INFO(
        .name = "second_order",
        .description = "second-order ODE x'' = a(x, x') on the state (x, "
                       "v), the acceleration from an inner field",
        .keys = so_keys,
        .version = "1"),
    .create = so_create,
    .destroy = field_wrap_destroy,
    .init_params = field_wrap_init_params,
    .eval = so_eval,
    .vjp = so_vjp,
    .param_name = field_wrap_param_name,
};

NDE_MODULE(&so_type.info);
