/*
 * controlled - a data-controlled field (Massaroli, Poli, Park, Yamashita,
 * Asama, "Dissecting Neural ODEs", NeurIPS 2020, Sec. 3.2): the field
 * reads the input x beside the state h at every evaluation, h' = g(t, h,
 * x), so trajectories of different inputs may cross in h.
 *
 *     [field]
 *     plugin   = controlled
 *     inner    = g                ; section [field.g], dimension n + m
 *     controls = 2                ; m: the last m states are x
 *
 * The input rides along as the state's last m components, constant in t
 * (their derivative is 0): whoever builds the initial state puts x there
 * (the points task's `control = true`), and every solver and adjoint
 * sees it with no interface of its own. The inner field maps the whole
 * state (h, x) to n + m outputs, of which the first n are h'; its last m
 * outputs are not used (an mlp's last layer keeps their weights, whose
 * gradient is 0). The parameters are the inner field's.
 */
#include <stdlib.h>
#include <string.h>

#include "wrap.h"

typedef struct ctl_state {
    field_wrap base;        /* first: the inner field                 */
    size_t n;               /* the free states h; the rest are controls  */
} ctl_state;

static int ctl_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    ctl_state *s = f->state;
    const size_t d = f->dim, n = s->n;
    int rc = nde_field_eval(s->base.inner, t, y, theta, s->base.buf, batch);

    if (rc != NDE_OK && rc != NDE_ERETRY)
        return rc;
    for (size_t r = 0; r < batch; r++) {
        memcpy(dy + r * d, s->base.buf + r * d, n * sizeof *dy);
        memset(dy + r * d + n, 0, (d - n) * sizeof *dy);
    }
    return rc;
}

/* The inner VJP with cotangent (v[h], 0): the controls' own cotangent
 * has nothing to flow through (their derivative is constant). */
static int ctl_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *vy,
                   double *vtheta, size_t batch)
{
    ctl_state *s = f->state;
    const size_t d = f->dim, n = s->n;
    double *ct = s->base.buf;

    for (size_t r = 0; r < batch; r++) {
        memcpy(ct + r * d, v + r * d, n * sizeof *ct);
        memset(ct + r * d + n, 0, (d - n) * sizeof *ct);
    }
    return nde_field_vjp(s->base.inner, t, y, theta, ct, vy, vtheta, batch);
}

static int ctl_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    ctl_state *s = calloc(1, sizeof *s);
    const char *name;
    long m;
    int rc;

    if (!(f->state = s))
        return nde_error(ctx, NDE_ENOMEM, "controlled: out of memory");
    if (!sec)
        return nde_error(ctx, NDE_ECONFIG, "controlled: needs a [field] "
                         "section with inner and controls");
    if ((rc = field_wrap_inner(f, sec, "a data-controlled field", ctx,
                               &name, &s->base.inner)) != NDE_OK ||
        (rc = nde_get_long_min(sec, "controls", 1, &m, ctx)) != NDE_OK)
        return rc;
    if ((size_t)m >= s->base.inner->dim)
        return nde_section_error(sec, "controls", ctx, "%ld controls leave "
                                 "no free state of '%s' (dimension %zu)",
                                 m, name, s->base.inner->dim);
    s->n = s->base.inner->dim - (size_t)m;
    if ((rc = field_wrap_buf(f, &s->base, ctx)) != NDE_OK)
        return rc;
    f->dim = s->base.inner->dim;
    f->nparams = s->base.inner->nparams;
    return NDE_OK;
}

static const nde_key ctl_keys[] = {
    {"inner", NDE_KEY_WORD, NULL,
     "the field g(t, h, x), configured in section [field.NAME]: dimension "
     "n + m for the free states h and the controls x; its first n outputs "
     "are h'"},
    {"controls", NDE_KEY_INT, NULL,
     "m: the state's last m components are the input x, constant in t"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type ctl_type = {
    .info = NDE_FIELD_INFO(
        .name = "controlled",
        .description = "data-controlled field h' = g(t, h, x): the input x "
                       "carried as the state's last, constant components",
        .keys = ctl_keys,
        .version = "1"),
    .create = ctl_create,
    .destroy = field_wrap_destroy,
    .init_params = field_wrap_init_params,
    .eval = ctl_eval,
    .vjp = ctl_vjp,
    .param_name = field_wrap_param_name,
};

NDE_MODULE(&ctl_type.info);
