/*
 * linear - an affine vector field y' = A y + b.
 *
 * Parameters theta = [A (D x D, row-major), b (D)], all learnable;
 * init_params writes the values from the config (the seed is unused).
 *
 * With noise_dim = M > 0 it is a linear SDE with general noise (nde/field.h,
 * NDE_NOISE_GENERAL): dy = (A y + b) dt + G(y) dW, W of M channels, and
 * column k of the D x M matrix G is B_k y + c_k:
 *     G_ik(y) = sum_j B[k][i][j] y_j + C[i][k],
 * with theta = [A, b, B (M x D x D), C (D x M, row-major)]. B_k = beta_k I
 * gives geometric Brownian motion driven by M channels (commutative noise,
 * with an exact solution: tests/solvers/test_general_noise.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nde/field.h>

typedef struct linear_state {
    double *init;          /* nparams initial parameters from the config */
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

/* G(y) (batch x D x M) from B = theta + D*D + D and C after it. */
static int linear_diffusion(nde_field *f, double t, const double *y,
                            const double *theta, double *g, size_t batch)
{
    (void)t;
    const size_t d = f->dim, m = f->noise_dim;
    const double *B = theta + d * d + d, *C = B + m * d * d;
    int bad = 0;
    for (size_t r = 0; r < batch; r++) {
        const double *yr = y + r * d;
        for (size_t i = 0; i < d; i++)
            for (size_t k = 0; k < m; k++) {
                const double *bki = B + (k * d + i) * d;
                double s = C[i * m + k];
                for (size_t j = 0; j < d; j++)
                    s += bki[j] * yr[j];
                g[(r * d + i) * m + k] = s;
                bad |= !isfinite(s);
            }
    }
    return bad ? NDE_ERETRY : NDE_OK;
}

/* With v (batch x D x M): vy_j += sum_ik v_ik B[k][i][j],
 * dB[k][i][j] += v_ik y_j, dC[i][k] += v_ik (row by row). */
static int linear_diffusion_vjp(nde_field *f, double t, const double *y,
                                const double *theta, const double *v,
                                double *vy, double *vtheta, size_t batch)
{
    (void)t;
    const size_t d = f->dim, m = f->noise_dim, off = d * d + d;
    const double *B = theta + off;
    for (size_t r = 0; r < batch; r++) {
        const double *yr = y + r * d;
        for (size_t i = 0; i < d; i++)
            for (size_t k = 0; k < m; k++) {
                const double vik = v[(r * d + i) * m + k];
                const size_t bki = (k * d + i) * d;
                if (vy)
                    for (size_t j = 0; j < d; j++)
                        vy[r * d + j] += vik * B[bki + j];
                if (vtheta) {
                    for (size_t j = 0; j < d; j++)
                        vtheta[off + bki + j] += vik * yr[j];
                    vtheta[off + m * d * d + i * m + k] += vik;
                }
            }
    }
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
    const size_t d = f->dim, m = f->noise_dim, nb = d * d + d;
    if (i < d * d)
        snprintf(buf, len, "A[%zu,%zu]", i / d, i % d);
    else if (i < nb)
        snprintf(buf, len, "b[%zu]", i - d * d);
    else if (i < nb + m * d * d)
        snprintf(buf, len, "B[%zu,%zu,%zu]", (i - nb) / (d * d),
                 (i - nb) / d % d, (i - nb) % d);
    else if (i < f->nparams)
        snprintf(buf, len, "C[%zu,%zu]", (i - nb - m * d * d) / m,
                 (i - nb - m * d * d) % m);
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

static size_t noise_params(const nde_field *f, size_t d)
{
    return f->noise_dim * d * d + d * f->noise_dim;
}

/* noise_dim: general noise with M channels, or none (B, C then refused). */
static int read_noise(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    long m;
    int status;
    if ((status = nde_get_long_min(sec, "noise_dim", 0, &m, ctx)))
        return status;
    if (m == 0) {
        const char *extra = nde_section_has(sec, "B")   ? "B"
                            : nde_section_has(sec, "C") ? "C"
                                                        : NULL;
        if (extra)
            return nde_section_error(sec, extra, ctx,
                                     "is the diffusion's, set without one "
                                     "(add noise_dim = M, the number of "
                                     "noise channels)");
        return NDE_OK;
    }
    f->noise = NDE_NOISE_GENERAL;
    f->noise_dim = (size_t)m;
    return NDE_OK;
}

/* B (M x D x D) and C (D x M) into out, zeros when not given. */
static int read_noise_values(nde_field *f, nde_section *sec, size_t d,
                             double *out, nde_ctx *ctx)
{
    const size_t m = f->noise_dim;
    const struct {
        const char *key, *shape;
        size_t n;
    } parts[] = {{"B", "M x D x D: M matrices B_k, row-major", m * d * d},
                 {"C", "D x M, row-major", d * m}};
    int status = NDE_OK;
    if (m == 0)
        return NDE_OK;
    for (size_t p = 0; p < 2 && status == NDE_OK; p++) {
        double *v = NULL;
        size_t nv = 0;
        if ((status = nde_get_doubles(sec, parts[p].key, &v, &nv, ctx)))
            break;
        if (nv != 0 && nv != parts[p].n)
            status = nde_section_error(sec, parts[p].key, ctx,
                                       "expected %zu values (%s, with M = "
                                       "noise_dim = %zu and D = %zu), got "
                                       "%zu", parts[p].n, parts[p].shape, m,
                                       d, nv);
        else if (nv)
            memcpy(out, v, nv * sizeof *v);
        out += parts[p].n;
        free(v);
    }
    return status;
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
    if ((status = read_noise(f, sec, ctx)))
        goto done;
    s->init = calloc(d * d + d + noise_params(f, d), sizeof *s->init);
    if (!s->init) {
        status = nde_error(ctx, NDE_ENOMEM, "linear: out of memory");
        goto done;
    }
    memcpy(s->init, a, d * d * sizeof *a);
    if (nb)
        memcpy(s->init + d * d, b, d * sizeof *b);
    if ((status = read_noise_values(f, sec, d, s->init + d * d + d, ctx)))
        goto done;
    f->dim = d;
    f->nparams = d * d + d + noise_params(f, d);
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
    {"noise_dim", NDE_KEY_INT, "0",
     "M > 0 makes an SDE with general noise of M channels: dy = (A y + b) "
     "dt + G(y) dW with column k of G being B_k y + c_k (0: an ODE)"},
    {"B", NDE_KEY_DOUBLES, "",
     "with noise_dim: the M matrices B_k (M x D x D, each row-major; "
     "default: zeros)"},
    {"C", NDE_KEY_DOUBLES, "",
     "with noise_dim: the additive noise c, D x M row-major (default: "
     "zeros)"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type linear_type = {
    .info = NDE_FIELD_INFO(
        .name = "linear",
        .description = "affine field y' = A y + b with learnable A and b; "
                       "with noise_dim, a linear SDE with general noise",
        .keys = linear_keys,
        .provides = NDE_CAP_DIFFUSION,
        .version = "1"),
    .create = linear_create,
    .destroy = linear_destroy,
    .init_params = linear_init_params,
    .eval = linear_eval,
    .vjp = linear_vjp,
    .param_name = linear_param_name,
    .jvp = linear_jvp,
    .jvp_vjp = linear_jvp_vjp,
    .diffusion = linear_diffusion,
    .diffusion_vjp = linear_diffusion_vjp,
};

NDE_MODULE(&linear_type.info);
