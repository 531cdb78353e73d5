/*
 * mlp.h - private to the mlp plugin: the network's layout (mlp.c builds it
 * from the config) and the numerical kernels (mlp_kernels.c), which are
 * compiled once per instruction set and picked at create time.
 */
#ifndef NDE_PLUGIN_MLP_H
#define NDE_PLUGIN_MLP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nde/field.h>
#include <nde/pool.h>

/* ACT_SIGMOID is only the diffusion's output activation;
 * ACT_SOFTPLUS_VECTOR is ACT_SOFTPLUS under `softplus = vector`;
 * ACT_LIPSWISH, 0.909 z sigmoid(z), only a hidden layer's. */
enum mlp_activation { ACT_TANH, ACT_RELU, ACT_SOFTPLUS, ACT_IDENTITY,
                      ACT_LIPSWISH, ACT_SIGMOID, ACT_SOFTPLUS_VECTOR };

/* LipSwish's factor, as in Kidger et al. 2021, "Efficient and Accurate
 * Gradients for Neural SDEs" (arXiv 2105.13493) and torchsde's
 * examples/sde_gan.py (class LipSwish): z sigmoid(z) has slopes up to
 * 1.0998 (at z = 2.40), so 0.909 z sigmoid(z) is 1-Lipschitz. */
#define MLP_LIPSWISH 0.909

typedef struct mlp_layer {
    size_t in, out;
    size_t w_off, b_off;   /* offsets of W and b in theta               */
    int act;               /* enum mlp_activation; output layer: identity */
    int blas;              /* 1: dgemm; 0: own kernels                  */
} mlp_layer;

/*
 * One forward pass through a net's hidden layers, kept so that a VJP at
 * the same point (an RK step's VJP after its stages, backsolve's augmented
 * field, a solver's step VJP) need not recompute it: the point it was
 * computed at (t, the rows of y, the net's parameters, the batch) and its
 * activations.
 */
typedef struct mlp_point {
    size_t batch;          /* 0: holds no pass                          */
    double t;
    unsigned long theta_gen; /* the net's theta_gen when computed       */
    double *y;             /* batch x dim, as given                     */
    double *x0;            /* in0 x ld: the first layer's input         */
    double **h;            /* h[l]: out x ld of layer l (l < L-1)       */
    double **sg;           /* sg[l]: sigmoid(z) of a lipswish layer l,
                              out x ld (NULL for other layers): its
                              derivative 0.909 sg + h (1 - sg)          */
} mlp_point;

typedef struct mlp_net {
    size_t nlayers;
    mlp_layer *layer;
    size_t in0;            /* first layer's input width: dim (+1)        */
    int cube, time;        /* input y^3; t as the last input            */
    int out_act;           /* the output layer's activation: identity,
                              tanh (the drift's `output`), or the
                              diffusion's output function               */
    int keep;              /* 0: never reuse a pass (the `cache` key)   */
    int armed;             /* a VJP has run: evals keep their passes    */
    unsigned misses;       /* VJPs in a row that found no pass          */
    unsigned rest;         /* calls left that keep nothing              */
    size_t npoints;        /* >= 1                                      */
    mlp_point *point;
    uint64_t *tag;         /* tag[p]: the bits of point p's y[0], for a
                              first pass that reads one word a point   */
    size_t next;           /* the point a miss takes (oldest first)     */
    size_t p0, p1;         /* the net's parameters: theta[p0, p1)       */
    double *theta;         /* their values when theta_gen was last bumped */
    unsigned long theta_gen;
    double **cot;          /* cot[l]: out x ld, dL/dZ of layer l (VJPs)  */
    size_t split_batch;    /* calls on this many rows or more are split
                              between the pool's threads; 0: never      */
    size_t cols;           /* columns of its passes and cotangents:
                              mlp_cols(batch_max, threads) when it splits */
} mlp_net;

static inline uint64_t mlp_bits(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/*
 * The point of net n that holds (or is to hold) the forward pass at
 * (t, y, theta, batch): *hit = 1 when one holds it; otherwise the oldest
 * point, relabelled, into which the caller must run the pass and copy
 * the rows of y (when pt->batch is not 0: a labelled point; the kernels
 * copy them with the pass, split between threads alike). vjp: the
 * caller is a VJP. Keeping costs a comparison of the parameters and a
 * copy of y per call, so nothing is kept until the net's first VJP (a
 * program that only solves forward pays nothing), nor for a while after
 * many VJPs in a row found nothing (a solver whose VJPs are at points it
 * never evaluated, such as a fixed-step SDE solver under the discrete
 * adjoint, pays little).
 *
 * A pass is reused only for the same bits of everything it depends on:
 * the batch, the rows of y, t (when the net reads it) and the net's
 * parameters. Parameters are compared by value against a copy (the copy
 * is taken, and theta_gen bumped, whenever they differ), not trusted to a
 * pointer or a counter the callers would have to keep: trainers update
 * theta in place and gradient checks perturb it. Newest points are tried
 * first: a VJP usually follows the eval at its point closely.
 */
static inline mlp_point *mlp_cache_find(mlp_net *n, size_t dim, double t,
                                        const double *y, const double *theta,
                                        size_t batch, int vjp, int *hit)
{
    const size_t np = n->p1 - n->p0, ny = batch * dim, m = n->npoints;

    *hit = 0;
    n->armed |= vjp;
    if (!n->keep || !n->armed || ny == 0 || n->rest > 0) {
        n->rest -= n->rest > 0;
        n->point[0].batch = 0; /* holds no labelled pass */
        return &n->point[0];
    }
    if (n->theta_gen == 0 ||
        memcmp(n->theta, theta + n->p0, np * sizeof *theta) != 0) {
        memcpy(n->theta, theta + n->p0, np * sizeof *theta);
        n->theta_gen++;
    }
    const uint64_t tag = mlp_bits(y[0]);
    for (size_t k = 1, p = n->next; k <= m; k++) {
        p = p == 0 ? m - 1 : p - 1;
        mlp_point *pt = &n->point[p];
        if (n->tag[p] == tag && pt->batch == batch &&
            pt->theta_gen == n->theta_gen &&
            (!n->time || mlp_bits(pt->t) == mlp_bits(t)) &&
            memcmp(pt->y, y, ny * sizeof *y) == 0) {
            n->misses = 0;
            *hit = 1;
            return pt;
        }
    }
    if (vjp && ++n->misses == 4 * m) {
        n->misses = 0;
        n->rest = 16 * m;
    }
    mlp_point *pt = &n->point[n->next];
    n->tag[n->next] = tag;
    n->next = n->next + 1 == m ? 0 : n->next + 1;
    pt->batch = batch;
    pt->t = t;
    pt->theta_gen = n->theta_gen;
    return pt;
}

/* The bytes one of net n's points holds (its activations must be set);
 * the gaps between threads' blocks (MLP_BLOCK_GAP), allocated but never
 * written, are not counted. */
size_t mlp_cache_bytes(const mlp_net *n, size_t dim, size_t batch_max);

/* Allocate net n's points (npoints, 0: one never reused) for batch_max
 * rows of dim states, once its layers and parameter range are set; free
 * them (also after a failed allocation). */
int mlp_cache_alloc(mlp_net *n, size_t dim, size_t batch_max,
                    size_t npoints);
void mlp_cache_free(mlp_net *n);

typedef int (*mlp_eval_fn)(nde_field *f, double t, const double *y,
                           const double *theta, double *out, size_t batch);
typedef int (*mlp_vjp_fn)(nde_field *f, double t, const double *y,
                          const double *theta, const double *v, double *vy,
                          double *vtheta, size_t batch);

/* The field operations and the activations, for one instruction set. */
typedef struct mlp_kernels {
    const char *name;      /* the `kernels` key's word for this set     */
    mlp_eval_fn eval;
    mlp_vjp_fn vjp;
    mlp_eval_fn diffusion;
    mlp_vjp_fn diffusion_vjp;
    void (*activate)(int act, double *x, size_t n); /* x = s(x) in place */
} mlp_kernels;

/* The `threads` key's largest count. */
#define MLP_MAX_THREADS 64

typedef struct mlp_state {
    mlp_net drift;
    mlp_net diffusion;     /* nlayers == 0 for an ODE                   */
    double *g, *gx;        /* max width x cols: output, input cotangent */
    const mlp_kernels *kernels;
    size_t threads;        /* the `threads` key (auto resolved)         */
    long thread_from;      /* the `thread_batch` key; 0: auto           */
    nde_pool *pool;        /* NULL: one thread                          */
    double last_scale;     /* the drift's last layer's initial weights
                              are scaled by it (0: zero_last)           */
    double *tan;           /* one row's scratch of mlp_tangent.c         */
    size_t tan_maxw;       /* its widest layer (input included)         */
} mlp_state;

/* The drift's jvp and jvp_vjp (nde/field.h), scalar, one row at a time
 * (mlp_tangent.c), and the scratch they need (NDE_OK or NDE_ENOMEM). */
int mlp_tangent_alloc(mlp_state *s);
int mlp_jvp(nde_field *f, double t, const double *y, const double *theta,
            const double *v, double *jv, size_t batch);
int mlp_jvp_vjp(nde_field *f, double t, const double *y, const double *theta,
                const double *v, const double *w, double *vy, double *vtheta,
                size_t batch);

/*
 * Arrays the kernels work on are feature-major (width x ld), ld =
 * mlp_ld(batch), or the batch itself under 4 rows; mlp_ld(batch_max)
 * bounds both. mlp_padded rounds up to a multiple of 8 (the widest
 * vector's lanes).
 */
static inline size_t mlp_padded(size_t batch)
{
    return (batch + 7) & ~(size_t)7;
}

/* The batch padded to a multiple of 8, and 8 more at a multiple of 512:
 * rows 4 KB apart (or a multiple) fall into the same L1 set, and a
 * 16-wide layer at 2048 rows, 16 rows 16 KB apart, overflowed its 8 ways
 * (an sde_gan.ini iteration: 713 ms with 2056, 737 with 2048, min of 3
 * alternating runs). Never less for more rows. */
static inline size_t mlp_ld(size_t batch)
{
    const size_t ld = mlp_padded(batch);
    return ld % 512 == 0 ? ld + 8 : ld;
}

/*
 * Columns left unused before each thread's block but the first in the
 * kernels' own arrays (forward passes, cotangents, scratch) of a split
 * call: block p starts at column c0 + p MLP_BLOCK_GAP (mlp_kernels.c's
 * mlp_block.s0). With the blocks adjacent, each thread's part of an eval
 * of the Fashion-MNIST field (32-64-32 tanh, batch 512, 2 threads) took
 * 48-52 us where the same work as a field of its own, on its own thread
 * beside the other, took 34-40; the blocks shared no cache line and
 * nothing else the parts wrote. With the second block 300 columns
 * further on it took 56 us, 384: 46, 448 and more: 36-38. Measured on
 * this 2-vCPU VM (/tmp drivers, 2026-12-08), which has no hardware
 * counters to say why, in the state it was in most of that day; in its
 * better state the adjacent blocks cost little (README, "Both cores").
 */
#define MLP_BLOCK_GAP 512

/* The columns of a net's own arrays for calls of up to batch_max rows
 * split between threads (threads = 1: not split). */
static inline size_t mlp_cols(size_t batch_max, size_t threads)
{
    return mlp_ld(batch_max) + (threads - 1) * MLP_BLOCK_GAP;
}

/* n doubles on a cache line's boundary, so that threads that split a
 * feature-major array at a multiple of 8 columns share no cache line
 * (freed with free; NULL when out of memory). */
static inline double *mlp_alloc(size_t n)
{
    return aligned_alloc(64, (n * sizeof(double) + 63) & ~(size_t)63);
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
