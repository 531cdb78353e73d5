/*
 * mlp.h - private to the mlp plugin: the network's layout (mlp.c builds it
 * from the config) and the numerical kernels (mlp_kernels.c), which are
 * compiled once per instruction set and picked at create time.
 */
#ifndef NDE_PLUGIN_MLP_H
#define NDE_PLUGIN_MLP_H

#include <stddef.h>

#include <nde/field.h>

/* ACT_SIGMOID is only the diffusion's output activation. */
enum mlp_activation { ACT_TANH, ACT_RELU, ACT_SOFTPLUS, ACT_IDENTITY,
                      ACT_SIGMOID };

typedef struct mlp_layer {
    size_t in, out;
    size_t w_off, b_off;   /* offsets of W and b in theta               */
    int act;               /* enum mlp_activation; output layer: identity */
    int blas;              /* 1: dgemm; 0: own kernels                  */
} mlp_layer;

typedef struct mlp_net {
    size_t nlayers;
    mlp_layer *layer;
    double **h;            /* h[l]: out x ld of layer l (l < L-1)       */
} mlp_net;

typedef int (*mlp_eval_fn)(nde_field *f, double t, const double *y,
                           const double *theta, double *out, size_t batch);
typedef int (*mlp_vjp_fn)(nde_field *f, double t, const double *y,
                          const double *theta, const double *v, double *vy,
                          double *vtheta, size_t batch);

/* The field operations and the tanh, for one instruction set. */
typedef struct mlp_kernels {
    const char *name;      /* the `kernels` key's word for this set     */
    mlp_eval_fn eval;
    mlp_vjp_fn vjp;
    mlp_eval_fn diffusion;
    mlp_vjp_fn diffusion_vjp;
    void (*tanh_array)(double *x, size_t n);
} mlp_kernels;

typedef struct mlp_state {
    mlp_net drift;
    mlp_net diffusion;     /* nlayers == 0 for an ODE                   */
    int diffusion_act;     /* ACT_SOFTPLUS or ACT_SIGMOID               */
    int time_input;
    int cube_input;
    size_t in0;            /* first layer's input width: dim (+1)        */
    double *x0;            /* in0 x ld: transformed input               */
    double *g, *gx;        /* max width x ld: output, cotangents        */
    const mlp_kernels *kernels;
} mlp_state;

/*
 * Arrays the kernels work on are feature-major (width x ld), ld = the
 * batch rounded up to a multiple of 8 (the widest vector's lanes), or the
 * batch itself under 4 rows; mlp_padded(batch_max) bounds both.
 */
static inline size_t mlp_padded(size_t batch)
{
    return (batch + 7) & ~(size_t)7;
}

/* Built for AVX-512 (x86-64-v4), AVX2 + FMA (x86-64-v3) and the baseline
 * of the target (SSE2 on x86-64); the first two only on x86-64. */
extern const mlp_kernels mlp_kernels_v4, mlp_kernels_v3, mlp_kernels_base;

/* The sets built for this target, best first, NULL-terminated. */
static const mlp_kernels *const mlp_kernel_sets[] = {
#if defined(__x86_64__)
    &mlp_kernels_v4, &mlp_kernels_v3,
#endif
    &mlp_kernels_base, NULL};

/* Whether this CPU runs kernel set k. */
static inline int mlp_cpu_runs(const mlp_kernels *k)
{
#if defined(__x86_64__) && !defined(__clang__)
    __builtin_cpu_init();
    if (k == &mlp_kernels_v4)
        return __builtin_cpu_supports("x86-64-v4");
    if (k == &mlp_kernels_v3)
        return __builtin_cpu_supports("x86-64-v3");
#elif defined(__x86_64__)
    /* clang 14 (the fuzz build) knows no level names: the features of the
     * levels that it can test, which every CPU with them has the rest of. */
    __builtin_cpu_init();
    int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    if (k == &mlp_kernels_v4)
        return v3 && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512cd") &&
               __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl");
    if (k == &mlp_kernels_v3)
        return v3;
#endif
    return k == &mlp_kernels_base;
}

#endif
