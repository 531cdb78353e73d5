/*
 * spiral_train.c - cost of one training iteration on torchdiffeq's spiral
 * demo (batch 20 windows of 10 points, 2-50-2 tanh MLP on y^3, dopri5) for
 * each adjoint, at rtol 1e-7/atol 1e-9 (torchdiffeq's defaults) and
 * 1e-3/1e-6. No peer figure is quoted: a comparison counts only when
 * both ran on the same machine in the same run.
 *
 * Per configuration: 5 warm-up iterations, then 3 interleaved passes of
 * 40 timed iterations (forward + gradient + Adam, the time nde_trainer_step
 * measures); the median and min-max of all 120, median forward and
 * backward NFE. Memory: the bytes of the trajectory record the adjoint
 * asked for (t, h, states, stages actually used by the largest solve; own
 * accounting, not ru_maxrss: the adjoints' fixed workspaces are not
 * included), at two tolerances ~10x apart in steps. Prediction: the full
 * 1000-point trajectory from y0, median of 7 runs, and its NFE. All at
 * the initial model (lr 1e-12), as torchdiffeq's "@init" figures.
 *
 * Run: build/bench/bench_spiral_train   (prints a markdown table)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "nde/train.h"

#define WARMUP 5
#define PASSES 3
#define PER_PASS 40
#define NPREDICT 7
/* Adam's step is computed as in training but moves the parameters by
 * ~1e-12: every iteration is measured at the initial model (as
 * torchdiffeq's demo is timed "@init"). */
#define AT_INIT_LR "1e-12"

typedef struct tol_case {
    const char *name, *rtol, *atol;
} tol_case;

static const tol_case tols[] = {
    {"1e-7/1e-9", "1e-7", "1e-9"},
    {"1e-3/1e-6", "1e-3", "1e-6"},
};

typedef struct adj_case {
    const char *plugin, *norm; /* norm NULL: the plugin has none */
} adj_case;

static const adj_case adjs[] = {
    {"discrete", NULL},
    {"interpolating", "full"},
    {"interpolating", "seminorm"},
    {"backsolve", "full"},
    {"backsolve", "seminorm"},
};

#define NTOL (sizeof tols / sizeof tols[0])
#define NADJ (sizeof adjs / sizeof adjs[0])

typedef struct run {
    nde_config *cfg;
    nde_trainer *tr;
    double t_ms[PASSES * PER_PASS];
    long nfe_f[PASSES * PER_PASS], nfe_b[PASSES * PER_PASS];
    size_t n;
    size_t bytes;
} run;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static double median_d(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static long median_l(long *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_long);
    return v[n / 2];
}

/* Bytes of the record as used by its solve (not the grown capacity). */
static size_t traj_bytes(const nde_trajectory *t)
{
    size_t b = t->n * sizeof(double);
    if (t->t)
        b += t->nsteps * 2 * sizeof(double);
    if (t->y)
        b += t->nstates * (t->n * sizeof(double) + sizeof(size_t));
    if (t->k)
        b += t->nsteps * (size_t)t->stages * t->n * sizeof(double);
    if (t->eest)
        b += t->nsteps * sizeof(double);
    if (t->stiff)
        b += t->nsteps * sizeof(double);
    return b;
}

static int make(nde_ctx *ctx, run *r, const char *rtol, const char *atol,
                const adj_case *ac, int batch_time)
{
    char text[2048];
    int rc;

    snprintf(text, sizeof text,
             "[solver]\nplugin = dopri5\nrtol = %s\natol = %s\n"
             "[field]\nplugin = mlp\nlayers = 2, 50, 2\nactivation = tanh\n"
             "input = cube\ntime = false\n"
             "[adjoint]\nplugin = %s\n%s%s%s"
             "[data]\nsource = spiral\nbatch_time = %d\n"
             "[train]\nbatch_size = 20\nlr = %s\nseed = 1\n",
             rtol, atol, ac->plugin, ac->norm ? "norm = " : "",
             ac->norm ? ac->norm : "", ac->norm ? "\n" : "", batch_time,
             AT_INIT_LR);
    memset(r, 0, sizeof *r);
    if (!(r->cfg = nde_config_create()))
        return NDE_ENOMEM;
    if ((rc = nde_config_load_string(r->cfg, "bench", text, ctx)) != NDE_OK ||
        (rc = nde_trainer_create(ctx, r->cfg, 0, &r->tr)) != NDE_OK)
        return rc;
    return NDE_OK;
}

static int iterate(run *r, size_t count, int timed)
{
    nde_train_step m;
    int rc;

    for (size_t i = 0; i < count; i++) {
        if ((rc = nde_trainer_step(r->tr, &m)) != NDE_OK)
            return rc;
        size_t b = traj_bytes(nde_trainer_trajectory(r->tr));
        if (b > r->bytes)
            r->bytes = b;
        if (timed) {
            r->t_ms[r->n] = 1e3 * m.time_s;
            r->nfe_f[r->n] = m.nfe_forward;
            r->nfe_b[r->n] = m.nfe_backward;
            r->n++;
        }
    }
    return NDE_OK;
}

static void destroy(run *r)
{
    nde_trainer_destroy(r->tr);
    nde_config_destroy(r->cfg);
}

static const char *label(const adj_case *ac, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s", ac->plugin, ac->norm ? " (" : "",
             ac->norm ? ac->norm : "", ac->norm ? ")" : "");
    return buf;
}

int main(void)
{
    nde_ctx *ctx = nde_ctx_create();
    static run runs[NTOL][NADJ];
    char name[64];
    size_t i, j, p;
    int rc;

    if (!ctx)
        return 1;
    for (i = 0; i < NTOL; i++)
        for (j = 0; j < NADJ; j++)
            if ((rc = make(ctx, &runs[i][j], tols[i].rtol, tols[i].atol,
                           &adjs[j], 10)) !=
                    NDE_OK ||
                (rc = iterate(&runs[i][j], WARMUP, 0)) != NDE_OK)
                goto fail;
    for (p = 0; p < PASSES; p++)
        for (i = 0; i < NTOL; i++)
            for (j = 0; j < NADJ; j++)
                if ((rc = iterate(&runs[i][j], PER_PASS, 1)) != NDE_OK)
                    goto fail;

    printf("Spiral training iteration (batch 20 x 10 points, 2-50-2 tanh "
           "MLP on y^3, dopri5), %d x %d iterations after %d warm-up\n\n",
           PASSES, PER_PASS, WARMUP);
    printf("| rtol/atol | adjoint | iter ms median (min-max) | NFE fwd | "
           "NFE bwd | record bytes | predict 1000 pts ms (NFE) |\n"
           "|---|---|---|---|---|---|---|\n");
    for (i = 0; i < NTOL; i++)
        for (j = 0; j < NADJ; j++) {
            run *r = &runs[i][j];
            const tol_case *tc = &tols[i];
            double pt[NPREDICT], med, lo, hi, pmed;
            nde_eval_result e;
            long pnfe = 0;

            for (p = 0; p < NPREDICT; p++) {
                if ((rc = nde_trainer_evaluate(r->tr, &e)) != NDE_OK)
                    goto fail;
                pt[p] = 1e3 * e.time_s;
                pnfe = e.nfe;
            }
            pmed = median_d(pt, NPREDICT);
            med = median_d(r->t_ms, r->n);
            lo = r->t_ms[0];
            hi = r->t_ms[r->n - 1];
            printf("| %s | %s | %.3f (%.3f-%.3f) | %ld | %ld | %zu | "
                   "%.3f (%ld) |\n",
                   tc->name, label(&adjs[j], name, sizeof name), med, lo, hi,
                   median_l(r->nfe_f, r->n), median_l(r->nfe_b, r->n),
                   r->bytes, pmed, pnfe);
        }

    /* Memory against the number of steps: batch_time 100, tolerances
     * 1e-3/1e-5 and 1e-11/1e-13 (about 10x the steps). */
    printf("\nTrajectory record bytes vs steps (batch_time 100, at init)\n\n"
           "| adjoint | steps (1e-3/1e-5) | bytes | steps (1e-11/1e-13) | "
           "bytes | steps ratio | bytes ratio |\n"
           "|---|---|---|---|---|---|---|\n");
    for (j = 0; j < NADJ; j++) {
        run a, b;
        size_t sa, sb;
        if ((rc = make(ctx, &a, "1e-3", "1e-5", &adjs[j], 100)) != NDE_OK ||
            (rc = iterate(&a, WARMUP, 0)) != NDE_OK ||
            (rc = make(ctx, &b, "1e-11", "1e-13", &adjs[j], 100)) != NDE_OK ||
            (rc = iterate(&b, WARMUP, 0)) != NDE_OK)
            goto fail;
        sa = nde_trainer_trajectory(a.tr)->nsteps;
        sb = nde_trainer_trajectory(b.tr)->nsteps;
        printf("| %s | %zu | %zu | %zu | %zu | %.1f | %.1f |\n",
               label(&adjs[j], name, sizeof name), sa, a.bytes, sb, b.bytes,
               (double)sb / (double)sa, (double)b.bytes / (double)a.bytes);
        destroy(&a);
        destroy(&b);
    }
    for (i = 0; i < NTOL; i++)
        for (j = 0; j < NADJ; j++)
            destroy(&runs[i][j]);
    nde_ctx_destroy(ctx);
    return 0;
fail:
    fprintf(stderr, "bench_spiral_train: %s\n", nde_ctx_message(ctx));
    nde_ctx_destroy(ctx);
    return 1;
}
