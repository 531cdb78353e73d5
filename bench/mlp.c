/*
 * bench_mlp - time of the mlp field's operations, per call, for the spiral
 * MLP (batch 20, 2-50-2, tanh, input cube) and a wide one (batch 64,
 * 64-256-256-64), each through both code paths: hand loops (thin_width
 * large) and dgemm (thin_width = 0); the spiral MLP on one row
 * (predicting one trajectory), hand loops; and examples/sde_gan.ini's
 * drift (batch 2048, 16-16-16 and time, lipswish, tanh output), hand
 * loops. The plugin is loaded through
 * the registry, as the program loads it. Per workload, with the kept
 * forward passes off (cache = 0) and on (cache = 8):
 *   eval      at a new point each call (16 points in turn, more than the
 *             cache keeps: what a forward solve pays once a VJP has run);
 *   vjp       at a new point each call (forward + VJP, vy and vtheta);
 *   eval+vjp  an eval and a VJP at the same point, per pair (an RK step's
 *             VJP after its stages: the VJP finds the kept pass).
 *
 * Each figure: calls repeated for at least 30 ms per batch, median of 7
 * batches, in microseconds per call.
 *
 *     ninja -C build bench/bench_mlp && ./build/bench/bench_mlp
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include <nde/nde.h>

enum { BATCHES = 7, NPOINTS = 16 };

enum op { OP_EVAL, OP_VJP, OP_PAIR };

typedef struct workload {
    nde_field *f;
    double *y, *theta, *v, *dy, *vy, *vtheta; /* y: NPOINTS points */
    size_t batch;
} workload;

static void run(workload *w, enum op op, long calls)
{
    const size_t n = w->batch * w->f->dim;
    for (long c = 0; c < calls; c++) {
        const double *y = w->y + (size_t)(c % NPOINTS) * n;
        if (op != OP_VJP)
            nde_field_eval(w->f, 0.0, y, w->theta, w->dy, w->batch);
        if (op != OP_EVAL)
            nde_field_vjp(w->f, 0.0, y, w->theta, w->v, w->vy, w->vtheta,
                          w->batch);
    }
}

/* Median over BATCHES of the time per call, each batch >= 30 ms. */
static double time_per_call(workload *w, enum op vjp)
{
    long calls = 1;
    for (;;) {
        double t0 = bench_now();
        run(w, vjp, calls);
        if (bench_now() - t0 >= 0.03)
            break;
        calls *= 2;
    }
    double per[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        double t0 = bench_now();
        run(w, vjp, calls);
        per[b] = (bench_now() - t0) / (double)calls;
    }
    qsort(per, BATCHES, sizeof *per, bench_cmp_double);
    return per[BATCHES / 2];
}

/* The three figures for one field (cache: the `cache` key). */
static int bench_field(nde_ctx *ctx, const char *layers, const char *input,
                       const char *extra, size_t batch, long thin_width,
                       int cache, double us[3])
{
    char ini[512];
    snprintf(ini, sizeof ini,
             "[field]\nplugin = mlp\nlayers = %s\ninput = %s\n"
             "thin_width = %ld\ncache = %d\n%s", layers, input, thin_width,
             cache, extra);
    nde_config *cfg = nde_config_create();
    workload w = {.batch = batch};
    int status = cfg ? nde_config_load_string(cfg, "bench", ini, ctx)
                     : NDE_ENOMEM;
    if (!status)
        status = nde_field_create(ctx, cfg, "field", batch, &w.f);
    if (status) {
        fprintf(stderr, "bench_mlp: %s\n", nde_ctx_message(ctx));
        nde_config_destroy(cfg);
        return status;
    }
    const size_t n = batch * w.f->dim, p = w.f->nparams;
    w.y = malloc(NPOINTS * n * sizeof *w.y);
    w.v = malloc(n * sizeof *w.v);
    w.dy = malloc(n * sizeof *w.dy);
    w.vy = calloc(n, sizeof *w.vy);
    w.theta = malloc(p * sizeof *w.theta);
    w.vtheta = calloc(p, sizeof *w.vtheta);
    if (!w.y || !w.v || !w.dy || !w.vy || !w.theta || !w.vtheta) {
        fprintf(stderr, "bench_mlp: out of memory\n");
        status = NDE_ENOMEM;
    } else {
        nde_field_init_params(w.f, w.theta, 1);
        for (size_t k = 0; k < NPOINTS * n; k++)
            w.y[k] = 0.5 * sin(0.37 * (double)k);
        for (size_t k = 0; k < n; k++)
            w.v[k] = cos(0.11 * (double)k);
        /* a VJP first: the cache keeps nothing before one (as in training,
         * the evals are timed with it on) */
        run(&w, OP_VJP, 1);
        for (int op = OP_EVAL; op <= OP_PAIR; op++)
            us[op] = 1e6 * time_per_call(&w, (enum op)op);
    }
    free(w.y);
    free(w.v);
    free(w.dy);
    free(w.vy);
    free(w.theta);
    free(w.vtheta);
    nde_field_destroy(w.f);
    nde_config_destroy(cfg);
    return status;
}

static int bench(nde_ctx *ctx, const char *label, const char *layers,
                 const char *input, const char *extra, size_t batch,
                 long thin_width)
{
    double off[3], on[3];
    int status =
        bench_field(ctx, layers, input, extra, batch, thin_width, 0, off) ||
        bench_field(ctx, layers, input, extra, batch, thin_width, 8, on);
    if (status)
        return status;
    printf("| %s %s | %zu | %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f "
           "|\n", label, layers, batch,
           thin_width ? "hand loops" : "dgemm", off[OP_EVAL], on[OP_EVAL],
           off[OP_VJP], on[OP_VJP], off[OP_PAIR], on[OP_PAIR]);
    return NDE_OK;
}

int main(void)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "cblas_dgemm");
    printf("cblas_dgemm from %s\n",
           sym && dladdr(sym, &info) && info.dli_fname ? info.dli_fname
                                                        : "(not found)");
    printf("OpenBLAS: %s, %d threads\n", openblas_get_config(),
           openblas_get_num_threads());
    nde_ctx *ctx = nde_ctx_create();
    if (!ctx)
        return 1;
    printf("\nus per call; off: cache = 0, on: cache = 8\n\n"
           "| net | batch | layers via | eval off | eval on | vjp off | "
           "vjp on | eval+vjp off | eval+vjp on |\n"
           "|---|---|---|---|---|---|---|---|---|\n");
    /* sde_gan: examples/sde_gan.ini's drift nets (time, lipswish, tanh
     * output) on its batch of 2048 rows */
    const char *gan = "time = true\nactivation = lipswish\noutput = tanh\n";
    int status =
        bench(ctx, "spiral", "2, 50, 2", "cube", "", 1, 1000000) ||
        bench(ctx, "spiral", "2, 50, 2", "cube", "", 20, 1000000) ||
        bench(ctx, "spiral", "2, 50, 2", "cube", "", 20, 0) ||
        bench(ctx, "wide", "64, 256, 256, 64", "identity", "", 64,
              1000000) ||
        bench(ctx, "wide", "64, 256, 256, 64", "identity", "", 64, 0) ||
        bench(ctx, "sde_gan", "16, 16, 16", "identity", gan, 2048, 1000000);
    nde_ctx_destroy(ctx);
    return status ? 1 : 0;
}
