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

/* out += scale G dW, row by row. */
static inline void gnoise_prod_add(const nde_field *f, size_t batch,
                                   double scale, const double *g,
                                   const double *dw, double *out)
{
    const size_t d = f->dim, m = f->noise_dim;

    for (size_t r = 0; r < batch; r++)
        for (size_t i = 0; i < d; i++) {
            const double *gi = g + (r * d + i) * m, *dwr = dw + r * m;
            double s = 0.0;
            for (size_t k = 0; k < m; k++)
                s += gi[k] * dwr[k];
            out[r * d + i] += scale * s;
        }
}

/* gbar += scale v dW^T, row by row: the cotangent on G of out = scale
 * G dW given the cotangent v on out. */
static inline void gnoise_outer_add(const nde_field *f, size_t batch,
                                    double scale, const double *v,
                                    const double *dw, double *gbar)
{
    const size_t d = f->dim, m = f->noise_dim;

    for (size_t r = 0; r < batch; r++)
        for (size_t i = 0; i < d; i++) {
            const double vi = scale * v[r * d + i], *dwr = dw + r * m;
            double *gi = gbar + (r * d + i) * m;
            for (size_t k = 0; k < m; k++)
                gi[k] += vi * dwr[k];
        }
}

#endif
