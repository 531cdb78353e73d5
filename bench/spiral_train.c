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
 *
 * For bench/peers (the driver next to torchdiffeq): --json prints one JSON
 * line per configuration (all its iteration times, median NFE, the
 * prediction) instead of the tables; --tol NAME and --adjoint PLUGIN[:NORM]
 * keep only the matching configurations; --iters N timed iterations per
 * pass; --params FILE writes the initial parameters (nparams raw
 * host-order doubles in the mlp plugin's layout) for the peer to load;
 * --controller NAME sets [solver] controller (torchdiffeq's step control
 * is nde's `i`: safety 0.9, factors in [0.2, 10], exponent 1/5, and an
 * accepted step never shrinks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "nde/nde.h"
#include "nde/train.h"

#define WARMUP 5
#define PASSES 3
#define MAX_PER_PASS 1000
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

/* The record-bytes table: a solver, an adjoint and the tighter of its
 * two tolerances (the looser is 1e-3/1e-5). */
typedef struct mem_case {
    const char *solver;
    adj_case adj;
    const char *rtol, *atol;
} mem_case;

static const mem_case mems[] = {
    {"dopri5", {"discrete", NULL}, "1e-11", "1e-13"},
    {"dopri5", {"interpolating", "full"}, "1e-11", "1e-13"},
    {"dopri5", {"backsolve", "full"}, "1e-11", "1e-13"},
    {"alf", {"discrete", NULL}, "1e-7", "1e-9"},
    {"alf", {"reversible", NULL}, "1e-7", "1e-9"},
};

#define NTOL (sizeof tols / sizeof tols[0])
#define NMEM (sizeof mems / sizeof mems[0])
#define NADJ (sizeof adjs / sizeof adjs[0])

typedef struct run {
    nde_config *cfg;
    nde_trainer *tr;
    double t_ms[PASSES * MAX_PER_PASS];
    long nfe_f[PASSES * MAX_PER_PASS], nfe_b[PASSES * MAX_PER_PASS];
    size_t n;
    size_t bytes;
} run;

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
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
    if (t->aux) /* a solver's aux state: with each stored one, and at t1 */
        b += (t->nstates + 1) * (size_t)t->naux * t->n * sizeof(double);
    if (t->k)
        b += t->nsteps * (size_t)t->stages * t->n * sizeof(double);
    if (t->eest)
        b += t->nsteps * sizeof(double);
    if (t->stiff)
        b += t->nsteps * sizeof(double);
    return b;
}

/* [solver] controller; NULL: the default (pi). */
static const char *controller;

static int make(nde_ctx *ctx, run *r, const char *solver, const char *rtol,
                const char *atol, const adj_case *ac, int batch_time)
{
    char text[2048];
    int rc;

    snprintf(text, sizeof text,
             "[solver]\nplugin = %s\nrtol = %s\natol = %s\n%s%s%s"
             "[field]\nplugin = mlp\nlayers = 2, 50, 2\nactivation = tanh\n"
             "input = cube\ntime = false\n"
             "[adjoint]\nplugin = %s\n%s%s%s"
             "[data]\nsource = spiral\nbatch_time = %d\n"
             "[train]\nbatch_size = 20\nlr = %s\nseed = 1\n",
             solver, rtol, atol, controller ? "controller = " : "",
             controller ? controller : "", controller ? "\n" : "",
             ac->plugin, ac->norm ? "norm = " : "",
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

/* Command-line options (all for bench/peers; none: the tables). */
typedef struct opts {
    int json;
    const char *tol, *adjoint, *params;
    size_t per_pass;
} opts;

static int parse(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->per_pass = 40;
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (!v)
            goto usage;
        if (strcmp(a, "--tol") == 0)
            o->tol = v;
        else if (strcmp(a, "--adjoint") == 0)
            o->adjoint = v;
        else if (strcmp(a, "--params") == 0)
            o->params = v;
        else if (strcmp(a, "--controller") == 0)
            controller = v;
        else if (strcmp(a, "--iters") == 0) {
            long n = atol(v);
            if (n < 1 || n > MAX_PER_PASS)
                goto usage;
            o->per_pass = (size_t)n;
        } else
            goto usage;
        k++;
    }
    return 0;
usage:
    fprintf(stderr, "usage: bench_spiral_train [--json] [--tol 1e-7/1e-9|"
            "1e-3/1e-6] [--adjoint PLUGIN[:NORM]] [--iters 1..%d] "
            "[--params FILE] [--controller pi|i|pid]\n", MAX_PER_PASS);
    return 2;
}

/* Whether configuration (tolerance i, adjoint j) is selected. */
static int selected(const opts *o, size_t i, size_t j)
{
    char name[64];
    const adj_case *ac = &adjs[j];

    snprintf(name, sizeof name, "%s%s%s", ac->plugin, ac->norm ? ":" : "",
             ac->norm ? ac->norm : "");
    return (!o->tol || strcmp(o->tol, tols[i].name) == 0) &&
           (!o->adjoint || strcmp(o->adjoint, name) == 0);
}

static double mean_l(const long *v, size_t n)
{
    double s = 0.0;
    for (size_t k = 0; k < n; k++)
        s += (double)v[k];
    return s / (double)n;
}

static void print_json(const run *r, const tol_case *tc, const adj_case *ac,
                       double med, double pmed, long pnfe)
{
    long nf[PASSES * MAX_PER_PASS], nb[PASSES * MAX_PER_PASS];

    memcpy(nf, r->nfe_f, r->n * sizeof *nf);
    memcpy(nb, r->nfe_b, r->n * sizeof *nb);
    printf("{\"task\": \"spiral\", \"tol\": \"%s\", \"adjoint\": \"%s%s%s\", "
           "\"median_ms\": %.6f, \"min_ms\": %.6f, \"max_ms\": %.6f, "
           "\"nfe_fwd\": %ld, \"nfe_bwd\": %ld, \"nfe_fwd_mean\": %.3f, "
           "\"nfe_bwd_mean\": %.3f, \"predict_ms\": %.6f, "
           "\"predict_nfe\": %ld, \"times_ms\": [",
           tc->name, ac->plugin, ac->norm ? ":" : "", ac->norm ? ac->norm : "",
           med, r->t_ms[0], r->t_ms[r->n - 1], median_l(nf, r->n),
           median_l(nb, r->n), mean_l(r->nfe_f, r->n), mean_l(r->nfe_b, r->n),
           pmed, pnfe);
    for (size_t k = 0; k < r->n; k++)
        printf("%s%.6f", k ? ", " : "", r->t_ms[k]);
    printf("]}\n");
}

int main(int argc, char **argv)
{
    nde_ctx *ctx;
    static run runs[NTOL][NADJ];
    char name[64];
    size_t i, j, p;
    opts o;
    int rc;

    if ((rc = parse(argc, argv, &o)) != 0)
        return rc;
    for (p = 0, i = 0; i < NTOL; i++)
        for (j = 0; j < NADJ; j++)
            p += (size_t)selected(&o, i, j);
    if (p == 0) {
        fprintf(stderr, "bench_spiral_train: no configuration matches "
                "--tol %s --adjoint %s\n", o.tol ? o.tol : "(any)",
                o.adjoint ? o.adjoint : "(any)");
        return 2;
    }
    if (!(ctx = nde_ctx_create()))
        return 1;
    for (i = 0; i < NTOL; i++)
        for (j = 0; j < NADJ; j++) {
            if (!selected(&o, i, j))
                continue;
            if ((rc = make(ctx, &runs[i][j], "dopri5", tols[i].rtol,
                           tols[i].atol,
                           &adjs[j], 10)) != NDE_OK)
                goto fail;
            if (o.params && bench_write_doubles(
                              o.params, nde_trainer_params(runs[i][j].tr),
                              nde_trainer_nparams(runs[i][j].tr))) {
                nde_ctx_destroy(ctx);
                return 1;
            }
            if ((rc = iterate(&runs[i][j], WARMUP, 0)) != NDE_OK)
                goto fail;
        }
    for (p = 0; p < PASSES; p++)
        for (i = 0; i < NTOL; i++)
            for (j = 0; j < NADJ; j++)
                if (selected(&o, i, j) &&
                    (rc = iterate(&runs[i][j], o.per_pass, 1)) != NDE_OK)
                    goto fail;

    if (!o.json) {
        printf("Spiral training iteration (batch 20 x 10 points, 2-50-2 "
               "tanh MLP on y^3, dopri5), %d x %zu iterations after %d "
               "warm-up\n\n", PASSES, o.per_pass, WARMUP);
        printf("| rtol/atol | adjoint | iter ms median (min-max) | NFE fwd | "
               "NFE bwd | record bytes | predict 1000 pts ms (NFE) |\n"
               "|---|---|---|---|---|---|---|\n");
    }
    for (i = 0; i < NTOL; i++)
        for (j = 0; j < NADJ; j++) {
            run *r = &runs[i][j];
            const tol_case *tc = &tols[i];
            double pt[NPREDICT], med, lo, hi, pmed;
            nde_eval_result e;
            long pnfe = 0, nf, nb;

            if (!selected(&o, i, j))
                continue;
            for (p = 0; p < NPREDICT; p++) {
                if ((rc = nde_trainer_evaluate(r->tr, &e)) != NDE_OK)
                    goto fail;
                pt[p] = 1e3 * e.time_s;
                pnfe = e.nfe;
            }
            pmed = bench_median(pt, NPREDICT);
            med = bench_median(r->t_ms, r->n);
            lo = r->t_ms[0];
            hi = r->t_ms[r->n - 1];
            if (o.json) {
                print_json(r, tc, &adjs[j], med, pmed, pnfe);
                continue;
            }
            nf = median_l(r->nfe_f, r->n);
            nb = median_l(r->nfe_b, r->n);
            printf("| %s | %s | %.3f (%.3f-%.3f) | %ld | %ld | %zu | "
                   "%.3f (%ld) |\n",
                   tc->name, label(&adjs[j], name, sizeof name), med, lo, hi,
                   nf, nb, r->bytes, pmed, pnfe);
        }
    if (o.json)
        goto done;
    /* Memory against the number of steps: batch_time 100, two tolerances
     * about 10x the steps apart (dopri5: 1e-3/1e-5 and 1e-11/1e-13; alf,
     * whose first-order error estimate needs more steps per digit:
     * 1e-3/1e-5 and 1e-7/1e-9). */
    printf("\nTrajectory record bytes vs steps (batch_time 100, at init)\n\n"
           "| solver | adjoint | tolerances | steps | bytes | steps | bytes | "
           "steps ratio | bytes ratio |\n"
           "|---|---|---|---|---|---|---|---|---|\n");
    for (j = 0; j < NMEM; j++) {
        const mem_case *mc = &mems[j];
        run a, b;
        size_t sa, sb;
        if ((rc = make(ctx, &a, mc->solver, "1e-3", "1e-5", &mc->adj,
                       100)) != NDE_OK ||
            (rc = iterate(&a, WARMUP, 0)) != NDE_OK ||
            (rc = make(ctx, &b, mc->solver, mc->rtol, mc->atol, &mc->adj,
                       100)) != NDE_OK ||
            (rc = iterate(&b, WARMUP, 0)) != NDE_OK)
            goto fail;
        sa = nde_trainer_trajectory(a.tr)->nsteps;
        sb = nde_trainer_trajectory(b.tr)->nsteps;
        printf("| %s | %s | 1e-3/1e-5, %s/%s | %zu | %zu | %zu | %zu | %.1f "
               "| %.1f |\n", mc->solver, label(&mc->adj, name, sizeof name),
               mc->rtol, mc->atol, sa, a.bytes, sb, b.bytes,
               (double)sb / (double)sa, (double)b.bytes / (double)a.bytes);
        destroy(&a);
        destroy(&b);
    }
done:
    for (i = 0; i < NTOL; i++)
        for (j = 0; j < NADJ; j++)
            if (selected(&o, i, j))
                destroy(&runs[i][j]);
    nde_ctx_destroy(ctx);
    return 0;
fail:
    fprintf(stderr, "bench_spiral_train: %s\n", nde_ctx_message(ctx));
    nde_ctx_destroy(ctx);
    return 1;
}
