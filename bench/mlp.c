/*
 * bench_mlp - time of the mlp field's eval and vjp (forward recomputed, both
 * vy and vtheta), per call, for the spiral MLP (batch 20, 2-50-2, tanh,
 * input cube) and a wide one (batch 64, 64-256-256-64), each through both
 * code paths: hand loops (thin_width large) and dgemm (thin_width = 0);
 * and the spiral MLP on one row (predicting one trajectory), hand loops.
 * The plugin is loaded through the registry, as the program loads it.
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

#include <nde/nde.h>

enum { BATCHES = 7 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct workload {
    nde_field *f;
    double *y, *theta, *v, *dy, *vy, *vtheta;
    size_t batch;
} workload;

static void run(workload *w, int vjp, long calls)
{
    for (long c = 0; c < calls; c++) {
        if (vjp)
            nde_field_vjp(w->f, 0.0, w->y, w->theta, w->v, w->vy, w->vtheta,
                          w->batch);
        else
            nde_field_eval(w->f, 0.0, w->y, w->theta, w->dy, w->batch);
    }
}

/* Median over BATCHES of the time per call, each batch >= 30 ms. */
static double time_per_call(workload *w, int vjp)
{
    long calls = 1;
    for (;;) {
        double t0 = now();
        run(w, vjp, calls);
        if (now() - t0 >= 0.03)
            break;
        calls *= 2;
    }
    double per[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        double t0 = now();
        run(w, vjp, calls);
        per[b] = (now() - t0) / (double)calls;
    }
    qsort(per, BATCHES, sizeof *per, compare_doubles);
    return per[BATCHES / 2];
}

static int bench(nde_ctx *ctx, const char *label, const char *layers,
                 const char *input, size_t batch, long thin_width)
{
    char ini[256];
    snprintf(ini, sizeof ini,
             "[field]\nplugin = mlp\nlayers = %s\ninput = %s\n"
             "thin_width = %ld\n", layers, input, thin_width);
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
    w.y = malloc(n * sizeof *w.y);
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
        for (size_t k = 0; k < n; k++) {
            w.y[k] = 0.5 * sin(0.37 * (double)k);
            w.v[k] = cos(0.11 * (double)k);
        }
        double te = time_per_call(&w, 0), tv = time_per_call(&w, 1);
        printf("%-8s %-16s batch %3zu  %-10s  eval %9.3f us  "
               "vjp (fwd+VJP) %9.3f us\n", label, layers, batch,
               thin_width ? "hand loops" : "dgemm", 1e6 * te, 1e6 * tv);
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
    int status = bench(ctx, "spiral", "2, 50, 2", "cube", 1, 1000000) ||
                 bench(ctx, "spiral", "2, 50, 2", "cube", 20, 1000000) ||
                 bench(ctx, "spiral", "2, 50, 2", "cube", 20, 0) ||
                 bench(ctx, "wide", "64, 256, 256, 64", "identity", 64,
                       1000000) ||
                 bench(ctx, "wide", "64, 256, 256, 64", "identity", 64, 0);
    nde_ctx_destroy(ctx);
    return status ? 1 : 0;
}
