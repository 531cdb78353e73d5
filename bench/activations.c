/*
 * bench_activations - the mlp's activations per element: time (ns per
 * element) and accuracy (max error in ulps) of tanh, the sigmoid and the
 * softplus as each mlp kernel set computes them, against glibc's scalar
 * libm (what a plain loop calls) and glibc's libmvec vector functions
 * (_ZGVdN4v_* for AVX2, _ZGVeN8v_* for AVX-512, glibc >= 2.35; what gcc
 * calls for such a loop under -ffast-math or `#pragma omp simd`).
 *
 * Time: in place on 4096 values (L1-resident) uniform in [-5, 5] (the
 * pre-activations of a trained net are mostly there), restored from a
 * copy before each pass; the copy's own time is measured alone and
 * subtracted. Passes repeated for >= 20 ms per batch, median (min-max)
 * of 9 batches.
 *
 * Accuracy: against long double (x87, 64-bit significand: tanhl, expl,
 * log1pl), on a uniform grid of 2 000 001 points over [-40, 40] and
 * 400 001 log-spaced magnitudes (both signs) from 1e-300 to 40; the error
 * in ulps of the double nearest the reference.
 *
 *     ninja -C build bench/bench_activations && build/bench/bench_activations
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "mlp.h"

#if defined(__x86_64__) && defined(__GLIBC__) && defined(HAVE_LIBMVEC)
#include <immintrin.h>
#define LIBMVEC 1
#else
#define LIBMVEC 0
#endif

enum { N = 4096, BATCHES = 9 };

typedef void (*array_fn)(double *x, size_t n);

/* ---- glibc's scalar libm ---------------------------------------------- */

static void libm_tanh(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tanh(x[i]);
}

static void libm_sigmoid(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0 / (1.0 + exp(-x[i]));
}

static void libm_softplus(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = fmax(x[i], 0.0) + log1p(exp(-fabs(x[i])));
}

/* ---- glibc's libmvec --------------------------------------------------- */

#if LIBMVEC
#pragma GCC diagnostic ignored "-Wpsabi"
/* Declared with the targets their vector arguments need (clang refuses
 * the call otherwise: the ABI of a vector argument depends on them). */
#define MVEC4 __attribute__((target("avx2,fma"))) __m256d
#define MVEC8 __attribute__((target("avx512f"))) __m512d
MVEC4 _ZGVdN4v_tanh(__m256d);
MVEC4 _ZGVdN4v_exp(__m256d);
MVEC4 _ZGVdN4v_log1p(__m256d);
MVEC8 _ZGVeN8v_tanh(__m512d);
MVEC8 _ZGVeN8v_exp(__m512d);
MVEC8 _ZGVeN8v_log1p(__m512d);

/* n a multiple of 8 here */
__attribute__((target("avx2,fma"))) static void mvec4_tanh(double *x,
                                                           size_t n)
{
    for (size_t i = 0; i < n; i += 4)
        _mm256_storeu_pd(x + i, _ZGVdN4v_tanh(_mm256_loadu_pd(x + i)));
}

__attribute__((target("avx2,fma"))) static void mvec4_sigmoid(double *x,
                                                              size_t n)
{
    const __m256d one = _mm256_set1_pd(1.0), zero = _mm256_setzero_pd();
    for (size_t i = 0; i < n; i += 4) {
        __m256d e = _ZGVdN4v_exp(_mm256_sub_pd(zero, _mm256_loadu_pd(x + i)));
        _mm256_storeu_pd(x + i, _mm256_div_pd(one, _mm256_add_pd(one, e)));
    }
}

__attribute__((target("avx2,fma"))) static void mvec4_softplus(double *x,
                                                               size_t n)
{
    const __m256d zero = _mm256_setzero_pd();
    for (size_t i = 0; i < n; i += 4) {
        __m256d z = _mm256_loadu_pd(x + i);
        __m256d a = _mm256_max_pd(z, _mm256_sub_pd(zero, z));
        __m256d l = _ZGVdN4v_log1p(_ZGVdN4v_exp(_mm256_sub_pd(zero, a)));
        _mm256_storeu_pd(x + i, _mm256_add_pd(_mm256_max_pd(z, zero), l));
    }
}

__attribute__((target("avx512f"))) static void mvec8_tanh(double *x,
                                                          size_t n)
{
    for (size_t i = 0; i < n; i += 8)
        _mm512_storeu_pd(x + i, _ZGVeN8v_tanh(_mm512_loadu_pd(x + i)));
}

__attribute__((target("avx512f"))) static void mvec8_sigmoid(double *x,
                                                             size_t n)
{
    const __m512d one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
    for (size_t i = 0; i < n; i += 8) {
        __m512d e = _ZGVeN8v_exp(_mm512_sub_pd(zero, _mm512_loadu_pd(x + i)));
        _mm512_storeu_pd(x + i, _mm512_div_pd(one, _mm512_add_pd(one, e)));
    }
}

__attribute__((target("avx512f"))) static void mvec8_softplus(double *x,
                                                              size_t n)
{
    const __m512d zero = _mm512_setzero_pd();
    for (size_t i = 0; i < n; i += 8) {
        __m512d z = _mm512_loadu_pd(x + i);
        __m512d a = _mm512_max_pd(z, _mm512_sub_pd(zero, z));
        __m512d l = _ZGVeN8v_log1p(_ZGVeN8v_exp(_mm512_sub_pd(zero, a)));
        _mm512_storeu_pd(x + i, _mm512_add_pd(_mm512_max_pd(z, zero), l));
    }
}
#endif

/* ---- the mlp's kernel sets -------------------------------------------- */

static const mlp_kernels *current_set;

static void set_tanh(double *x, size_t n)
{
    current_set->activate(ACT_TANH, x, n);
}

static void set_sigmoid(double *x, size_t n)
{
    current_set->activate(ACT_SIGMOID, x, n);
}

static void set_softplus(double *x, size_t n)
{
    current_set->activate(ACT_SOFTPLUS, x, n);
}

static void set_softplus_vector(double *x, size_t n)
{
    current_set->activate(ACT_SOFTPLUS_VECTOR, x, n);
}

/* ---- measurement ------------------------------------------------------- */

typedef struct variant {
    const char *name;
    array_fn fn;
    const mlp_kernels *set; /* the kernel set fn runs, or NULL */
    int isa;                /* 0, or the level the CPU needs: 3 or 4 */
} variant;

static double *src, *work;

static void pass_copy(array_fn fn, long passes)
{
    for (long p = 0; p < passes; p++) {
        memcpy(work, src, N * sizeof *work);
        if (fn)
            fn(work, N);
    }
}

/* ns per element of fn (NULL: the copy alone), median and range of
 * BATCHES batches of >= 20 ms. */
static void time_ns(array_fn fn, double out[3])
{
    long passes = 1;
    for (;;) {
        double t0 = bench_now();
        pass_copy(fn, passes);
        if (bench_now() - t0 >= 0.02)
            break;
        passes *= 2;
    }
    double per[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        double t0 = bench_now();
        pass_copy(fn, passes);
        per[b] = 1e9 * (bench_now() - t0) / ((double)passes * N);
    }
    qsort(per, BATCHES, sizeof *per, bench_cmp_double);
    out[0] = per[BATCHES / 2];
    out[1] = per[0];
    out[2] = per[BATCHES - 1];
}

static long double ref_tanh(long double x)
{
    return tanhl(x);
}

static long double ref_sigmoid(long double x)
{
    return 1.0L / (1.0L + expl(-x));
}

static long double ref_softplus(long double x)
{
    return (x > 0 ? x : 0.0L) + log1pl(expl(-fabsl(x)));
}

/* Error of got against ref in ulps of the double nearest ref (the
 * spacing of doubles at it; subnormal spacing below DBL_MIN). */
static double ulps(double got, long double ref)
{
    if (isnan(got) || isnan((double)ref))
        return isnan(got) && isnan((double)ref) ? 0.0 : INFINITY;
    double r = (double)ref;
    if (got == r)
        return 0.0;
    int e;
    frexp(fabs(r) > DBL_MIN ? r : DBL_MIN, &e);
    return (double)(fabsl((long double)got - ref) /
                    ldexpl(1.0L, e - DBL_MANT_DIG));
}

enum { NGRID = 2000001, NLOG = 400001 };
static double *grid, *grid_out;

static void make_grid(void)
{
    for (size_t i = 0; i < NGRID; i++)
        grid[i] = -40.0 + 80.0 * (double)i / (double)(NGRID - 1);
    for (size_t i = 0; i < NLOG; i++) {
        double e = -300.0 + (300.0 + log10(40.0)) * (double)i / (NLOG - 1);
        grid[NGRID + 2 * i] = pow(10.0, e);
        grid[NGRID + 2 * i + 1] = -pow(10.0, e);
    }
}

/* Max error in ulps of fn over the grid, and where. */
static double max_ulps(array_fn fn, long double (*ref)(long double),
                       double *at)
{
    const size_t n = NGRID + 2 * (size_t)NLOG;
    double worst = 0.0;
    memcpy(grid_out, grid, n * sizeof *grid);
    fn(grid_out, n);
    *at = 0.0;
    for (size_t i = 0; i < n; i++) {
        double u = ulps(grid_out[i], ref((long double)grid[i]));
        if (u > worst) {
            worst = u;
            *at = grid[i];
        }
    }
    return worst;
}

static int cpu_has(int isa)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (isa == 4)
        return __builtin_cpu_supports("avx512f");
    if (isa == 3)
        return __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
#endif
    return isa == 0;
}

static void run_act(const char *act, const variant *v, size_t nv,
                    long double (*ref)(long double), double copy_ns)
{
    for (size_t i = 0; i < nv; i++) {
        double t[3], at;
        if (!cpu_has(v[i].isa) || (v[i].set && !mlp_cpu_runs(v[i].set)))
            continue;
        current_set = v[i].set;
        time_ns(v[i].fn, t);
        double u = max_ulps(v[i].fn, ref, &at);
        printf("| %s | %s | %.3f (%.3f-%.3f) | %.2f at %.6g |\n", act,
               v[i].name, t[0] - copy_ns, t[1] - copy_ns, t[2] - copy_ns, u,
               at);
    }
}

int main(void)
{
    src = malloc(N * sizeof *src);
    work = malloc(N * sizeof *work);
    grid = malloc((NGRID + 2 * (size_t)NLOG) * sizeof *grid);
    grid_out = malloc((NGRID + 2 * (size_t)NLOG) * sizeof *grid_out);
    if (!src || !work || !grid || !grid_out)
        return 1;
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < N; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        src[i] = -5.0 + 10.0 * (double)(s >> 11) * 0x1.0p-53;
    }
    make_grid();
    double copy[3];
    time_ns(NULL, copy);
    printf("copy alone: %.3f ns per element (subtracted below)\n\n",
           copy[0]);
    printf("| activation | implementation | ns per element, median "
           "(min-max) | max error, ulps |\n|---|---|---|---|\n");

#define SETS(fn, how)                                                      \
    {"nde mlp, avx512 kernels" how, fn, &mlp_kernels_v4, 0},               \
    {"nde mlp, avx2 kernels" how, fn, &mlp_kernels_v3, 0},                 \
    {"nde mlp, generic kernels" how, fn, &mlp_kernels_base, 0}
#if defined(__x86_64__)
    const variant tanh_v[] = {
        {"glibc libm tanh (scalar)", libm_tanh, NULL, 0},
#if LIBMVEC
        {"glibc libmvec _ZGVdN4v_tanh (AVX2)", mvec4_tanh, NULL, 3},
        {"glibc libmvec _ZGVeN8v_tanh (AVX-512)", mvec8_tanh, NULL, 4},
#endif
        SETS(set_tanh, "")};
    const variant sigmoid_v[] = {
        {"1 / (1 + exp(-x)), libm exp (scalar)", libm_sigmoid, NULL, 0},
#if LIBMVEC
        {"same, libmvec _ZGVdN4v_exp (AVX2)", mvec4_sigmoid, NULL, 3},
        {"same, libmvec _ZGVeN8v_exp (AVX-512)", mvec8_sigmoid, NULL, 4},
#endif
        SETS(set_sigmoid, "")};
    const variant softplus_v[] = {
        {"max(x, 0) + log1p(exp(-|x|)), libm (scalar)", libm_softplus, NULL,
         0},
#if LIBMVEC
        {"same, libmvec exp, log1p (AVX2)", mvec4_softplus, NULL, 3},
        {"same, libmvec exp, log1p (AVX-512)", mvec8_softplus, NULL, 4},
#endif
        SETS(set_softplus, ", softplus = libm"),
        SETS(set_softplus_vector, ", softplus = vector")};
#else
    const variant tanh_v[] = {{"glibc libm tanh (scalar)", libm_tanh, NULL,
                               0},
                              {"nde mlp, generic kernels", set_tanh,
                               &mlp_kernels_base, 0}};
    const variant sigmoid_v[] = {{"libm", libm_sigmoid, NULL, 0},
                                 {"nde mlp, generic kernels", set_sigmoid,
                                  &mlp_kernels_base, 0}};
    const variant softplus_v[] = {{"libm", libm_softplus, NULL, 0},
                                  {"nde mlp, generic kernels", set_softplus,
                                   &mlp_kernels_base, 0},
                                  {"nde mlp, generic kernels, vector",
                                   set_softplus_vector, &mlp_kernels_base,
                                   0}};
#endif
#define RUN(act, v, ref) run_act(act, v, sizeof v / sizeof v[0], ref, copy[0])
    RUN("tanh", tanh_v, ref_tanh);
    RUN("sigmoid", sigmoid_v, ref_sigmoid);
    RUN("softplus", softplus_v, ref_softplus);
    free(src);
    free(work);
    free(grid);
    free(grid_out);
    return 0;
}
