/*
 * gnoise.h - general noise (nde/field.h, NDE_NOISE_GENERAL) for the SDE
 * solvers that integrate it: the diffusion is a dim x M matrix G a row
 * (g[(r dim + i) M + k]) and a step's dW has M values a row (dw[r M + k]).
 * Header-only (static inline): each solver is its own module.
 */
#ifndef NDE_SOLVERS_GNOISE_H
#define NDE_SOLVERS_GNOISE_H

#include "nde/nde.h"

/* Values of g per state value: M for general noise, 1 for diagonal. */
static inline size_t gnoise_width(const nde_field *f)
{
    return f->noise == NDE_NOISE_GENERAL ? f->noise_dim : 1;
}

/*
 * The two products a step takes with G, for a noise width m known at
 * compile time (the k loops unroll): a G of 2048 rows x 32 states x 4
 * channels (the SDE-GAN's) is 2 MB, streamed once per product, and a
 * loop whose trip count m is only known at run time cost about a third
 * of that model's iteration. Dispatched by GNOISE_BY_WIDTH.
 */
static inline __attribute__((always_inline)) void
prod_m(size_t batch, size_t d, double scale, const double *restrict g,
       const double *restrict dw, const double *base, double *out,
       const size_t m)
{
    for (size_t r = 0; r < batch; r++) {
        const double *dwr = dw + r * m;
        for (size_t i = 0; i < d; i++) {
            const double *gi = g + (r * d + i) * m;
            double s = 0.0;
            for (size_t k = 0; k < m; k++)
                s += gi[k] * dwr[k];
            out[r * d + i] = (base ? base[r * d + i] : 0.0) + scale * s;
        }
    }
}

static inline __attribute__((always_inline)) void
outer_m(size_t batch, size_t d, double scale, const double *restrict v,
        const double *restrict dw, const double *base, double *gbar,
        const size_t m)
{
    for (size_t r = 0; r < batch; r++) {
        const double *dwr = dw + r * m;
        for (size_t i = 0; i < d; i++) {
            const double vi = scale * v[r * d + i];
            const size_t o = (r * d + i) * m;
            for (size_t k = 0; k < m; k++)
                gbar[o + k] = (base ? base[o + k] : 0.0) + vi * dwr[k];
        }
    }
}

/* kernel(batch, dim, scale, x, dw, base, out, m) for f's width m, a
 * constant where the kernels have one. */
#define GNOISE_BY_WIDTH(kernel, f, batch, scale, x, dw, base, out)          \
    do {                                                                     \
        const size_t d_ = (f)->dim, m_ = (f)->noise_dim;                     \
        switch (m_) {                                                        \
        case 2: kernel(batch, d_, scale, x, dw, base, out, 2); break;        \
        case 3: kernel(batch, d_, scale, x, dw, base, out, 3); break;        \
        case 4: kernel(batch, d_, scale, x, dw, base, out, 4); break;        \
        default: kernel(batch, d_, scale, x, dw, base, out, m_);             \
        }                                                                    \
    } while (0)

/* out = base + scale G dW, row by row (base may be NULL: 0; it may be
 * out itself). */
static inline void gnoise_prod(const nde_field *f, size_t batch,
                               double scale, const double *g,
                               const double *dw, const double *base,
                               double *out)
{
    GNOISE_BY_WIDTH(prod_m, f, batch, scale, g, dw, base, out);
}

/* out += scale G dW (gnoise_prod onto itself). */
static inline void gnoise_prod_add(const nde_field *f, size_t batch,
                                   double scale, const double *g,
                                   const double *dw, double *out)
{
    gnoise_prod(f, batch, scale, g, dw, out, out);
}

/* gbar = base + scale v dW^T row by row (base may be NULL: 0; it may be
 * gbar itself): with the cotangent v on out = scale G dW, the cotangent on
 * G added to base. */
static inline void gnoise_outer(const nde_field *f, size_t batch,
                                double scale, const double *v,
                                const double *dw, const double *base,
                                double *gbar)
{
    GNOISE_BY_WIDTH(outer_m, f, batch, scale, v, dw, base, gbar);
}

/* gbar += scale v dW^T (gnoise_outer onto itself). */
static inline void gnoise_outer_add(const nde_field *f, size_t batch,
                                    double scale, const double *v,
                                    const double *dw, double *gbar)
{
    gnoise_outer(f, batch, scale, v, dw, gbar, gbar);
}

#endif
