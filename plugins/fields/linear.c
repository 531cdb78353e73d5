/*
 * linear - an affine vector field y' = A y + b.
 *
 * Parameters theta = [A (D x D, row-major), b (D)], all learnable;
 * init_params writes the values from the config (the seed is unused).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nde/field.h>

typedef struct linear_state {
    double *init;          /* D*D + D initial parameters from the config */
} linear_state;

static int linear_eval(nde_field *f, double t, const double *y,
                       const double *theta, double *dy, size_t batch)
{
    (void)t;
    const size_t d = f->dim;
    const double *a = theta, *b = theta + d * d;
    int bad = 0;
    for (size_t i = 0; i < batch; i++) {
        const double *yi = y + i * d;
        double *dyi = dy + i * d;
        for (size_t r = 0; r < d; r++) {
            double s = b[r];
            for (size_t c = 0; c < d; c++)
                s += a[r * d + c] * yi[c];
            dyi[r] = s;
            bad |= !isfinite(s);
        }
    }
    return bad ? NDE_ERETRY : NDE_OK;
}

/* vy += v A, dA += v y^T, db += v (row by row). */
static int linear_vjp(nde_field *f, double t, const double *y,
                      const double *theta, const double *v, double *vy,
                      double *vtheta, size_t batch)
{
    (void)t;
    const size_t d = f->dim;
    const double *a = theta;
    for (size_t i = 0; i < batch; i++) {
        const double *yi = y + i * d, *vi = v + i * d;
        for (size_t r = 0; r < d; r++) {
            if (vy)
                for (size_t c = 0; c < d; c++)
                    vy[i * d + c] += vi[r] * a[r * d + c];
            if (vtheta) {
                for (size_t c = 0; c < d; c++)
                    vtheta[r * d + c] += vi[r] * yi[c];
                vtheta[d * d + r] += vi[r];
            }
        }
    }
    return NDE_OK;
}

/* jv = A v (row by row). */
static int linear_jvp(nde_field *f, double t, const double *y,
                      const double *theta, const double *v, double *jv,
                      size_t batch)
{
    (void)t;
    (void)y;
    const size_t d = f->dim;
    const double *a = theta;
    for (size_t i = 0; i < batch; i++)
        for (size_t r = 0; r < d; r++) {
            double s = 0.0;
            for (size_t c = 0; c < d; c++)
                s += a[r * d + c] * v[i * d + c];
            jv[i * d + r] = s;
        }
    return NDE_OK;
}

/* J v = A v: no y in it; dA += w v^T (row by row). */
static int linear_jvp_vjp(nde_field *f, double t, const double *y,
                          const double *theta, const double *v,
                          const double *w, double *vy, double *vtheta,
                          size_t batch)
{
    (void)t;
    (void)y;
    (void)theta;
    (void)vy;
    const size_t d = f->dim;
    if (!vtheta)
        return NDE_OK;
    for (size_t i = 0; i < batch; i++)
        for (size_t r = 0; r < d; r++)
            for (size_t c = 0; c < d; c++)
                vtheta[r * d + c] += w[i * d + r] * v[i * d + c];
    return NDE_OK;
}

static int linear_init_params(nde_field *f, double *theta, uint64_t seed)
{
    (void)seed;
    const linear_state *s = f->state;
    memcpy(theta, s->init, f->nparams * sizeof *theta);
    return NDE_OK;
}

static int linear_param_name(const nde_field *f, size_t i, char *buf,
                             size_t len)
{
    const size_t d = f->dim;
    if (i < d * d)
        snprintf(buf, len, "A[%zu,%zu]", i / d, i % d);
    else if (i < d * d + d)
        snprintf(buf, len, "b[%zu]", i - d * d);
    else
        return NDE_EINVAL;
    return NDE_OK;
}

static void linear_destroy(nde_field *f)
{
    linear_state *s = f->state;
    if (!s)
        return;
    free(s->init);
    free(s);
    f->state = NULL;
}

static int linear_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    linear_state *s = calloc(1, sizeof *s);
    double *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int status;
    if (!sec) {
        free(s);
        return nde_error(ctx, NDE_EINVAL, "linear: needs a config section");
    }
    if (!s)
        return nde_error(ctx, NDE_ENOMEM, "linear: out of memory");
    f->state = s;
    if ((status = nde_get_doubles(sec, "A", &a, &na, ctx)))
        goto done;
    size_t d = (size_t)llround(sqrt((double)na));
    if (na == 0 || d * d != na) {
        status = nde_section_error(sec, "A", ctx,
                                   "expected D*D values (a square matrix, "
                                   "row-major), got %zu", na);
        goto done;
    }
    if ((status = nde_get_doubles(sec, "b", &b, &nb, ctx)))
        goto done;
    if (nb != 0 && nb != d) {
        status = nde_section_error(sec, "b", ctx,
                                   "expected %zu values (one per row of A), "
                                   "got %zu", d, nb);
        goto done;
    }
    s->init = calloc(d * d + d, sizeof *s->init);
    if (!s->init) {
        status = nde_error(ctx, NDE_ENOMEM, "linear: out of memory");
        goto done;
    }
    memcpy(s->init, a, d * d * sizeof *a);
    if (nb)
        memcpy(s->init + d * d, b, d * sizeof *b);
    f->dim = d;
    f->nparams = d * d + d;
done:
    free(a);
    free(b);
    return status;
}

static const nde_key linear_keys[] = {
    {"A", NDE_KEY_DOUBLES, NULL,
     "the D x D matrix, row-major (one row per line is fine); D is the state "
     "dimension"},
    {"b", NDE_KEY_DOUBLES, "", "the offset, D values (default: zeros)"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type linear_type = {
    .info = NDE_FIELD_INFO(
        .name = "linear",
        .description = "affine field y' = A y + b with learnable A and b",
        .keys = linear_keys,
        .version = "1"),
    .create = linear_create,
    .destroy = linear_destroy,
    .init_params = linear_init_params,
    .eval = linear_eval,
    .vjp = linear_vjp,
    .param_name = linear_param_name,
    .jvp = linear_jvp,
    .jvp_vjp = linear_jvp_vjp,
};

NDE_MODULE(&linear_type.info);
