/*
 * floor_kernels.h - the mlp's layer kernels for bench_floor: one dense
 * layer forward (Z = W X + b, width x ld feature-major arrays as in
 * mlp_kernels.c), its backward (dW, db into vtheta; GX = W^T G) and the
 * activation derivative multiply g *= s'(h), per instruction set.
 */
#ifndef NDE_BENCH_FLOOR_KERNELS_H
#define NDE_BENCH_FLOOR_KERNELS_H

#include "mlp.h"

typedef struct floor_layer_kernels {
    const char *name;      /* the mlp_kernels set's name                */
    void (*forward)(const mlp_layer *ly, const double *theta,
                    const double *x, double *z, size_t ld);
    void (*backward)(const mlp_layer *ly, const double *theta,
                     const double *x, const double *g, double *gx,
                     double *vtheta, size_t batch, size_t ld);
    void (*derivative)(int act, const double *h, double *g, size_t n);
} floor_layer_kernels;

extern const floor_layer_kernels floor_kernels_v4, floor_kernels_v3,
    floor_kernels_base;

#endif
