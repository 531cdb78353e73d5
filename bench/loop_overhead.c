/*
 * loop_overhead.c - the solve driver's own cost per RHS evaluation, on
 * y' = -y over [0, 20] (the RHS is one multiply) for the adaptive
 * tableau solvers at tol 1e-8, rk4 with dt = 0.01, and the SDE solvers on
 * dY = -Y dt + 0.1 dW with dt = 0.01: the numbers to compare when the
 * driver changes. Wall time: median of 9 batches of >= 50 ms. Under
 * valgrind --tool=callgrind, run with a repeat count instead (e.g. 2000)
 * and divide the instructions by the RHS evaluations it prints, which are
 * repeatable where wall time on a shared machine is not.
 *
 * Usage: bench_loop_overhead [repeats [solver]]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "nde/nde.h"

#define BATCHES 9

static int decay_eval(nde_field *f, double t, const double *y,
                      const double *th, double *dy, size_t batch)
{
    (void)f; (void)t; (void)th;
    for (size_t i = 0; i < batch; i++)
        dy[i] = -y[i];
    return NDE_OK;
}

static int noise_eval(nde_field *f, double t, const double *y,
                      const double *th, double *g, size_t batch)
{
    (void)f; (void)t; (void)th; (void)y;
    for (size_t i = 0; i < batch; i++)
        g[i] = 0.1;
    return NDE_OK;
}

static int no_vjp(nde_field *f, double t, const double *y, const double *th,
                  const double *v, double *vy, double *vth, size_t batch)
{
    (void)f; (void)t; (void)y; (void)th; (void)v; (void)vy; (void)vth;
    (void)batch;
    return NDE_EFATAL;
}

static int init0(nde_field *f, double *theta, uint64_t seed)
{
    (void)f; (void)theta; (void)seed;
    return NDE_OK;
}

static void destroy0(nde_field *f) { (void)f; }

static int create_ode(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec; (void)ctx;
    f->dim = 1;
    return NDE_OK;
}

static int create_sde(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec; (void)ctx;
    f->dim = 1;
    f->noise = NDE_NOISE_DIAGONAL;
    return NDE_OK;
}

static const nde_field_type decay = {
    .info = NDE_FIELD_INFO(
        .name = "decay",
        .description = "y' = -y",
        .version = "1"),
    .create = create_ode, .destroy = destroy0, .init_params = init0,
    .eval = decay_eval, .vjp = no_vjp};

static const nde_field_type decay_sde = {
    .info = NDE_FIELD_INFO(
        .name = "decay_sde",
        .description = "dY = -Y dt + 0.1 dW",
        .version = "1"),
    .create = create_sde, .destroy = destroy0, .init_params = init0,
    .eval = decay_eval, .vjp = no_vjp, .diffusion = noise_eval,
    .diffusion_vjp = no_vjp};

typedef struct bench {
    nde_solver *s;
    nde_solve_opts o;
    nde_brownian *bm;
} bench;

static long solve_once(bench *b)
{
    const double y0 = 1.0, t1 = 20.0;
    nde_stats st;
    double y;

    if (nde_solve(b->s, &b->o, NULL, 0, &y0, t1, 1, &t1, &y, &st) != NDE_OK)
        return -1;
    return st.nfe;
}

int main(int argc, char **argv)
{
    static const char *const names[] = {"tsit5", "dopri5", "bs3", "rk4",
                                        "euler_maruyama", "reversible_heun"};
    const long repeats = argc > 1 ? atol(argv[1]) : 0;
    nde_ctx *ctx = nde_ctx_create();
    nde_field *ode, *sde;
    nde_brownian *bm;

    if (nde_field_create_from(ctx, &decay, NULL, 1, &ode) ||
        nde_field_create_from(ctx, &decay_sde, NULL, 1, &sde) ||
        nde_brownian_create(ctx, 1, &bm) ||
        nde_brownian_reset(bm, 1, 0.0, 20.0, 0.01, 1)) {
        fprintf(stderr, "bench_loop_overhead: %s\n", nde_ctx_message(ctx));
        return 1;
    }
    printf("| solver | RHS evals | µs/solve | ns per RHS eval |\n");
    printf("|---|---|---|---|\n");
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        const nde_plugin_info *info;
        const int is_sde = k >= 4;
        double tb[BATCHES];
        long nfe = 0;
        bench b;

        if (argc > 2 && strcmp(argv[2], names[k]) != 0)
            continue;
        if (nde_plugin_find(ctx, NDE_KIND_SOLVER, names[k], &info) ||
            nde_solver_create_from(ctx, (const nde_solver_type *)info,
                                   is_sde ? sde : ode, &b.s)) {
            fprintf(stderr, "bench_loop_overhead: %s\n", nde_ctx_message(ctx));
            return 1;
        }
        nde_solve_opts_default(&b.o, b.s->type);
        b.o.rtol = b.o.atol = 1e-8;
        if (k >= 3)
            b.o.dt = 0.01;
        b.o.brownian = is_sde ? bm : NULL;
        if (repeats > 0) {
            for (long i = 0; i < repeats; i++)
                nfe += solve_once(&b);
            printf("| %s | %ld | | |\n", names[k], nfe);
        } else {
            for (int j = 0; j < BATCHES; j++) {
                const double t0 = bench_now();
                long reps = 0;
                double el;
                do {
                    nfe = solve_once(&b);
                    reps++;
                } while ((el = bench_now() - t0) < 0.05);
                tb[j] = el / (double)reps;
            }
            qsort(tb, BATCHES, sizeof *tb, bench_cmp_double);
            printf("| %s | %ld | %.2f | %.1f |\n", names[k], nfe,
                   1e6 * tb[BATCHES / 2], 1e9 * tb[BATCHES / 2] / (double)nfe);
        }
        nde_solver_destroy(b.s);
    }
    nde_brownian_destroy(bm);
    nde_field_destroy(sde);
    nde_field_destroy(ode);
    nde_ctx_destroy(ctx);
    return 0;
}
