/*
 * threads.c - the mlp field on 1 and on 2 threads (the `threads` key),
 * for the Fashion-MNIST field (32-64-32 tanh, examples/fashion_mnist.ini):
 *   eval      per call, at a new point each call (16 in turn);
 *   eval+vjp  an eval and a VJP (vy and vtheta) at the same point, per
 *             pair (a solver step's VJP after its stages);
 * at batches 8 to 512, with thread_batch = 1 so every batch is split
 * (the break-even batch for `thread_batch = auto`); then whole training
 * iterations of a config (default examples/fashion_mnist.ini, on its
 * first 4096 images) at batch 128 and 512, which also checks that both
 * trainers compute the same losses, bit for bit.
 *
 * The runs interleave: each round times a block of calls (>= 5 ms) or
 * one iteration on 1 thread, then on 2; figures are medians over rounds
 * with the quartiles of the per-round ratio, so a neighbour's load
 * shows as spread rather than bias.
 *
 *     ninja -C build bench/bench_threads
 *     ./build/bench/bench_threads [--json] [--rounds N] [CONFIG]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "nde/nde.h"
#include "nde/train.h"

enum { NPOINTS = 16, BMAX = 512, MAXROUNDS = 201 };

typedef struct sample {
    double t[2][MAXROUNDS];  /* per call or iteration, 1 and 2 threads */
    double ratio[MAXROUNDS]; /* t[0] / t[1] per round                  */
} sample;

typedef struct figures {
    double t1, t2, ratio, q1, q3; /* medians; quartiles of the ratio */
} figures;

static figures summarise(sample *s, int rounds)
{
    figures f;
    f.t1 = bench_median(s->t[0], (size_t)rounds);
    f.t2 = bench_median(s->t[1], (size_t)rounds);
    f.ratio = bench_median(s->ratio, (size_t)rounds);
    f.q1 = s->ratio[rounds / 4];
    f.q3 = s->ratio[(3 * rounds) / 4];
    return f;
}

typedef struct fields {
    nde_ctx *ctx;
    nde_config *cfg[2];
    nde_field *f[2];
    double *y, *theta, *v, *dy, *vy, *vtheta;
} fields;

static int fields_create(fields *w)
{
    static const char *const ini[2] = {
        "[field]\nplugin = mlp\nlayers = 32, 64, 32\nthreads = 1\n",
        "[field]\nplugin = mlp\nlayers = 32, 64, 32\nthreads = 2\n"
        "thread_batch = 1\n"};
    int rc;
    if (!(w->ctx = nde_ctx_create()))
        return NDE_ENOMEM;
    for (int k = 0; k < 2; k++)
        if (!(w->cfg[k] = nde_config_create()) ||
            (rc = nde_config_load_string(w->cfg[k], "bench", ini[k],
                                         w->ctx)) ||
            (rc = nde_field_create(w->ctx, w->cfg[k], "field", BMAX,
                                   &w->f[k])))
            return w->cfg[k] ? rc : NDE_ENOMEM;
    const size_t n = BMAX * 32, p = w->f[0]->nparams;
    w->y = malloc(NPOINTS * n * sizeof *w->y);
    w->v = malloc(n * sizeof *w->v);
    w->dy = malloc(n * sizeof *w->dy);
    w->vy = calloc(n, sizeof *w->vy);
    w->theta = malloc(p * sizeof *w->theta);
    w->vtheta = calloc(p, sizeof *w->vtheta);
    if (!w->y || !w->v || !w->dy || !w->vy || !w->theta || !w->vtheta)
        return NDE_ENOMEM;
    for (size_t i = 0; i < NPOINTS * n; i++)
        w->y[i] = 0.9 * ((double)((i * 7919) % 1000) / 500.0 - 1.0);
    for (size_t i = 0; i < n; i++)
        w->v[i] = 0.001 * (double)(i % 17);
    return nde_field_init_params(w->f[0], w->theta, 1);
}

static void fields_destroy(fields *w)
{
    for (int k = 0; k < 2; k++) {
        nde_field_destroy(w->f[k]);
        nde_config_destroy(w->cfg[k]);
    }
    free(w->y);
    free(w->v);
    free(w->dy);
    free(w->vy);
    free(w->theta);
    free(w->vtheta);
    nde_ctx_destroy(w->ctx);
}

/* Seconds per call (per pair when vjp) of field k on batch rows, over
 * calls repeated for at least 5 ms. */
static double time_calls(fields *w, int k, size_t batch, int vjp)
{
    nde_field *f = w->f[k];
    long calls = 0;
    double t0 = bench_now(), t;
    do {
        for (int j = 0; j < NPOINTS; j++, calls++) {
            const double *y = w->y + (size_t)j * BMAX * 32;
            nde_field_eval(f, 0.0, y, w->theta, w->dy, batch);
            if (vjp)
                nde_field_vjp(f, 0.0, y, w->theta, w->v, w->vy, w->vtheta,
                              batch);
        }
    } while ((t = bench_now() - t0) < 5e-3);
    return t / (double)calls;
}

static int bench_fields(int rounds, int json)
{
    static const size_t batches[] = {8, 16, 32, 64, 128, 256, 512};
    static const char *const ops[] = {"eval", "eval+vjp"};
    fields w = {0};
    sample s;
    int rc = fields_create(&w);
    if (rc) {
        fprintf(stderr, "bench_threads: %s\n", nde_ctx_message(w.ctx));
        fields_destroy(&w);
        return 1;
    }
    if (!json)
        printf("mlp 32-64-32 tanh, us per call (eval+vjp: per pair); "
               "median of %d interleaved rounds\n%6s %-9s %9s %9s %7s  "
               "%s\n", rounds, "batch", "op", "1 thread", "2 threads",
               "ratio", "ratio quartiles");
    for (size_t b = 0; b < sizeof batches / sizeof *batches; b++)
        for (int op = 0; op < 2; op++) {
            for (int r = 0; r < rounds; r++) {
                for (int k = 0; k < 2; k++)
                    s.t[k][r] = 1e6 * time_calls(&w, k, batches[b], op);
                s.ratio[r] = s.t[0][r] / s.t[1][r];
            }
            figures f = summarise(&s, rounds);
            if (json)
                printf("{\"bench\": \"threads\", \"what\": \"field\", "
                       "\"op\": \"%s\", \"batch\": %zu, \"us_1\": %.3f, "
                       "\"us_2\": %.3f, \"ratio\": %.4f, \"ratio_q1\": "
                       "%.4f, \"ratio_q3\": %.4f}\n", ops[op], batches[b],
                       f.t1, f.t2, f.ratio, f.q1, f.q3);
            else
                printf("%6zu %-9s %9.2f %9.2f %7.3f  %.3f-%.3f\n",
                       batches[b], ops[op], f.t1, f.t2, f.ratio, f.q1, f.q3);
        }
    fields_destroy(&w);
    return 0;
}

/* A trainer of the config at this batch size on `threads` threads. */
static int make_trainer(nde_ctx *ctx, const char *path, size_t batch,
                        int threads, nde_config **cfg, nde_trainer **tr)
{
    char set[3][64];
    int rc;
    snprintf(set[0], sizeof set[0], "train.batch_size=%zu", batch);
    snprintf(set[1], sizeof set[1], "field.threads=%d", threads);
    snprintf(set[2], sizeof set[2], "data.limit=4096");
    if (!(*cfg = nde_config_create()))
        return NDE_ENOMEM;
    if ((rc = nde_config_load_file(*cfg, path, ctx)))
        return rc;
    for (int i = 0; i < 3; i++)
        if ((rc = nde_config_override(*cfg, set[i], ctx)))
            return rc;
    return nde_trainer_create(ctx, *cfg, 0, tr);
}

static int bench_training(const char *path, int rounds, int json)
{
    static const size_t batches[] = {128, 512};
    nde_ctx *ctx = nde_ctx_create();
    int rc = ctx ? NDE_OK : NDE_ENOMEM;
    if (!json && !rc)
        printf("\ntraining iterations of %s, ms per iteration; median of "
               "%d interleaved iterations after 3\n%6s %9s %9s %7s  %s\n",
               path, rounds, "batch", "1 thread", "2 threads", "ratio",
               "ratio quartiles");
    for (size_t b = 0; !rc && b < sizeof batches / sizeof *batches; b++) {
        nde_config *cfg[2] = {NULL, NULL};
        nde_trainer *tr[2] = {NULL, NULL};
        sample s;
        for (int k = 0; k < 2 && !rc; k++)
            rc = make_trainer(ctx, path, batches[b], k + 1, &cfg[k], &tr[k]);
        for (int r = -3; r < rounds && !rc; r++) {
            nde_train_step m[2];
            for (int k = 0; k < 2 && !rc; k++)
                rc = nde_trainer_step(tr[k], &m[k]);
            if (!rc && memcmp(&m[0].loss, &m[1].loss, sizeof m[0].loss)) {
                fprintf(stderr, "bench_threads: iteration %ld: the losses "
                        "differ between 1 and 2 threads\n", m[0].iteration);
                rc = NDE_EFATAL;
            }
            if (rc || r < 0)
                continue;
            for (int k = 0; k < 2; k++)
                s.t[k][r] = 1e3 * m[k].time_s;
            s.ratio[r] = s.t[0][r] / s.t[1][r];
        }
        if (!rc) {
            figures f = summarise(&s, rounds);
            if (json)
                printf("{\"bench\": \"threads\", \"what\": \"train\", "
                       "\"config\": \"%s\", \"batch\": %zu, \"ms_1\": %.4f, "
                       "\"ms_2\": %.4f, \"ratio\": %.4f, \"ratio_q1\": "
                       "%.4f, \"ratio_q3\": %.4f}\n", path, batches[b], f.t1,
                       f.t2, f.ratio, f.q1, f.q3);
            else
                printf("%6zu %9.3f %9.3f %7.3f  %.3f-%.3f\n", batches[b],
                       f.t1, f.t2, f.ratio, f.q1, f.q3);
        }
        for (int k = 0; k < 2; k++) {
            nde_trainer_destroy(tr[k]);
            nde_config_destroy(cfg[k]);
        }
    }
    if (rc && rc != NDE_EFATAL)
        fprintf(stderr, "bench_threads: %s\n", nde_ctx_message(ctx));
    nde_ctx_destroy(ctx);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *path = "examples/fashion_mnist.ini";
    int json = 0, rounds = 21;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (argv[i][0] != '-') {
            path = argv[i];
        } else {
            fprintf(stderr, "usage: bench_threads [--json] [--rounds N] "
                    "[CONFIG]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAXROUNDS) {
        fprintf(stderr, "bench_threads: --rounds from 1 to %d\n", MAXROUNDS);
        return 2;
    }
    /* the field's own threads only (the classify task calls no BLAS) */
    openblas_set_num_threads(1);
    return bench_fields(rounds, json) || bench_training(path, rounds, json);
}
