/*
 * sde.c - cost of one training iteration of a small neural SDE (state
 * dim 4, drift MLP 4-64-tanh-4, diagonal diffusion MLP 4-64-tanh-4-sigmoid, batch 64, t in [0, 1], dt = 0.01,
 * loss mean(y(1)^2), a fresh Brownian path per iteration, float64) for
 * four solver/adjoint pairs, and the cost of reversible Heun against the
 * stochastic Heun solver at the same accuracy. No peer figure is quoted:
 * a comparison counts only when both ran on the same machine in the same
 * run.
 *
 * Part 1, per pair: WARMUP iterations, then PASSES interleaved passes of
 * PER_PASS iterations; forward (nde_solve with the adjoint's record) and
 * backward (nde_adjoint_gradient) timed separately, median (min-max) of
 * all. Evaluation counts: one nde evaluation is the drift and the
 * diffusion once each (torchsde counts f and g calls separately).
 * Memory: (i) own accounting: the trajectory record's bytes as used
 * (times, states, aux blocks, final state and aux) plus the Brownian
 * Interval's bytes (nde_brownian_get_stats); solver and adjoint workspaces
 * are not exposed and not included; (ii) the peak RSS (ru_maxrss) of a
 * child process that builds the pair and runs 5 iterations, and its growth
 * over the RSS after building (libraries and plugins included in the
 * first, not in the second).
 *
 * Part 2, reversible Heun vs Heun: forward cost per step (nde_solve,
 * interleaved) on the MLP problem and on Stratonovich GBM, and strong
 * errors E|y_N - y(1)| at dt = 1/25 .. 1/400: on GBM against the exact
 * solution, on the MLP against Heun at dt = 1/12800; both on the same
 * paths (Brownian Interval on the reference's grid; a coarse step's
 * increment is a query over several cells). Steps are taken with
 * nde_solver_advance, since nde_solve wants the path's grid to be its own.
 *
 * Single thread: OpenBLAS is set to 1 thread (openblas_set_num_threads).
 * Run: build/bench/bench_sde   (prints markdown tables)
 *
 * For bench/peers (the driver next to torchsde): --json runs only part 1's
 * timing and prints one JSON line per pair (all its iteration times,
 * evaluation counts); --pair SOLVER:ADJOINT keeps one pair; --iters N
 * timed iterations per pass; --params FILE writes the initial parameters
 * (nparams raw host-order doubles, the mlp plugin's layout: drift, then
 * diffusion). y0 is row-major batch x dim, y0[i] = 0.1 sin(0.37 i) +
 * 0.05 (i mod 4).
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "nde/nde.h"
#include "../tests/sde_fields.h" /* the GBM test field */

#define WARMUP 3
#define PASSES 3
#define PER_PASS 15
#define MAX_PER_PASS 1000
#define NIT (PASSES * MAX_PER_PASS)
#define BATCH 64
#define DIM 4
#define N (BATCH * DIM)
#define DT 0.01

static const char field_ini[] = BENCH_SDE_FIELD_INI;

/* The discrete adjoint goes back over all 100 steps' points: keeping their
 * passes (6.6 MB for the two nets at batch 64) spares each step's VJP its
 * forward pass. The other adjoints' VJPs are at points of their own, where
 * 128 passes only spread the evaluations over more memory than the
 * default 8: they keep the default. */
static const char *cache_ini(const char *adjoint)
{
    return strcmp(adjoint, "discrete") == 0 ? "cache = 128\n" : "";
}

typedef struct pair {
    const char *solver, *adjoint;
} pair;

static const pair pairs[] = {
    {"euler_maruyama", "discrete"},
    {"reversible_heun", "reversible"},
    {"reversible_heun", "backsolve"},
    {"reversible_heun", "discrete"},
};
#define NPAIR (sizeof pairs / sizeof pairs[0])

typedef struct run {
    nde_config *cfg;
    nde_field *f;
    nde_solver *s;
    nde_adjoint *a;
    nde_trajectory *tr;
    nde_brownian *bm;
    nde_solve_opts o;
    double *theta, *thetabar;
    double y0[N], y1[N], ybar0[N], g[N];
    double fwd[NIT], bwd[NIT], tot[NIT];
    long ev_f, ev_b, vjp_b, nfe_b;
    size_t bytes, bm_bytes, nit;
    uint64_t seed;
} run;

static nde_ctx *ctx;

static int fail(const char *what, int rc)
{
    fprintf(stderr, "bench_sde: %s: %s (%d)\n", what, nde_ctx_message(ctx),
            rc);
    return rc ? rc : 1;
}

static const nde_solver_type *solver_type(const char *name)
{
    const nde_plugin_info *info;
    if (nde_plugin_find(ctx, NDE_KIND_SOLVER, name, &info) != NDE_OK)
        return NULL;
    return (const nde_solver_type *)info;
}

/* Bytes of the record as its solve used them (not the grown capacity). */
static size_t traj_bytes(const nde_trajectory *t)
{
    size_t b = t->n * sizeof(double);              /* y_final */
    if (t->t)
        b += t->nsteps * 2 * sizeof(double);
    if (t->y)
        b += t->nstates * (t->n * sizeof(double) + sizeof(size_t));
    if (t->k)
        b += t->nsteps * (size_t)t->stages * t->n * sizeof(double);
    if (t->aux_final)
        b += (size_t)t->stages * t->n * sizeof(double);
    return b;
}

static int make(run *r, const char *solver, const char *adjoint)
{
    char text[512];
    int rc;

    memset(r, 0, sizeof *r);
    snprintf(text, sizeof text, "%s%s[solver]\nplugin = %s\n"
             "[adjoint]\nplugin = %s\n", field_ini, cache_ini(adjoint),
             solver, adjoint);
    if (!(r->cfg = nde_config_create()))
        return NDE_ENOMEM;
    if ((rc = nde_config_load_string(r->cfg, "bench", text, ctx)) ||
        (rc = nde_field_create(ctx, r->cfg, "field", BATCH, &r->f)) ||
        (rc = nde_solver_create(ctx, r->cfg, "solver", r->f, &r->s)) ||
        (rc = nde_solver_set_batch(r->s, BATCH)) ||
        (rc = nde_adjoint_create(ctx, r->cfg, "adjoint", "discrete", r->s,
                                 &r->a)) ||
        (rc = nde_brownian_create(ctx, N, &r->bm)))
        return rc;
    if (!(r->tr = nde_trajectory_create(r->a->record, r->a->max_states)) ||
        !(r->theta = malloc(r->f->nparams * sizeof(double))) ||
        !(r->thetabar = malloc(r->f->nparams * sizeof(double))))
        return NDE_ENOMEM;
    if ((rc = nde_field_init_params(r->f, r->theta, 1)))
        return rc;
    for (size_t i = 0; i < N; i++)
        r->y0[i] = 0.1 * sin(0.37 * (double)i) + 0.05 * (double)(i % DIM);
    nde_solve_opts_default(&r->o, r->s->type);
    r->o.dt = DT;
    r->o.brownian = r->bm;
    r->o.record = r->tr;
    return NDE_OK;
}

static void destroy(run *r)
{
    nde_trajectory_destroy(r->tr);
    nde_brownian_destroy(r->bm);
    nde_adjoint_destroy(r->a);
    nde_solver_destroy(r->s);
    nde_field_destroy(r->f);
    nde_config_destroy(r->cfg);
    free(r->theta);
    free(r->thetabar);
}

/* One iteration on a fresh path: solve, loss mean(y(1)^2), gradient. */
static int iterate(run *r, int timed)
{
    const double t1 = 1.0;
    nde_solve_opts o = r->o;
    nde_cotangent ct;
    nde_stats st;
    nde_solver_counts c0, c1, c2;
    nde_brownian_stats bs;
    double ta, tb, tc;
    int rc;

    if ((rc = nde_brownian_reset(r->bm, ++r->seed, 0.0, t1, DT, N)))
        return rc;
    c0 = r->s->counts;
    ta = bench_now();
    if ((rc = nde_solve(r->s, &o, r->theta, 0.0, r->y0, t1, 1, &t1, r->y1,
                        &st)))
        return rc;
    tb = bench_now();
    c1 = r->s->counts;
    for (size_t i = 0; i < N; i++)
        r->g[i] = 2.0 * r->y1[i] / N;
    ct.t = t1;
    ct.g = r->g;
    memset(&st, 0, sizeof st);
    if ((rc = nde_adjoint_gradient(r->a, &o, r->tr, r->theta, &ct, 1,
                                   r->ybar0, r->thetabar, &st)))
        return rc;
    tc = bench_now();
    c2 = r->s->counts;
    if (timed) {
        r->fwd[r->nit] = 1e3 * (tb - ta);
        r->bwd[r->nit] = 1e3 * (tc - tb);
        r->tot[r->nit] = 1e3 * (tc - ta);
        r->nit++;
    }
    r->ev_f = c1.nfe - c0.nfe;
    r->ev_b = c2.nfe - c1.nfe;
    r->vjp_b = c2.nvjp - c1.nvjp;
    r->nfe_b = st.nfe_backward;
    r->bytes = traj_bytes(r->tr);
    nde_brownian_get_stats(r->bm, &bs);
    r->bm_bytes = bs.bytes;
    return NDE_OK;
}

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Peak RSS of a child that builds the pair and runs 5 iterations: KiB
 * after building and at the end, through a pipe. */
static int child_rss(const pair *p, long *built, long *peak)
{
    int fd[2], status;
    long v[2] = {-1, -1};
    pid_t pid;

    if (pipe(fd))
        return 1;
    if ((pid = fork()) < 0)
        return 1;
    if (pid == 0) {
        run *r = calloc(1, sizeof *r);
        int rc = r ? make(r, p->solver, p->adjoint) : 1;
        v[0] = maxrss_kb();
        for (int i = 0; !rc && i < 5; i++)
            rc = iterate(r, 0);
        v[1] = rc ? -1 : maxrss_kb();
        if (write(fd[1], v, sizeof v) != sizeof v)
            _exit(1);
        _exit(rc ? 1 : 0);
    }
    close(fd[1]);
    if (read(fd[0], v, sizeof v) != sizeof v)
        v[0] = v[1] = -1;
    close(fd[0]);
    waitpid(pid, &status, 0);
    *built = v[0];
    *peak = v[1];
    return v[1] < 0;
}

/* Command-line options (all for bench/peers; none: the tables). */
typedef struct opts {
    int json;
    const char *pair, *params;
    size_t per_pass;
} opts;

static int parse(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->per_pass = PER_PASS;
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (!v)
            goto usage;
        if (strcmp(a, "--pair") == 0)
            o->pair = v;
        else if (strcmp(a, "--params") == 0)
            o->params = v;
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
    fprintf(stderr, "usage: bench_sde [--json] [--pair SOLVER:ADJOINT] "
            "[--iters 1..%d] [--params FILE]\n", MAX_PER_PASS);
    return 2;
}

static int selected(const opts *o, const pair *q)
{
    char name[64];
    snprintf(name, sizeof name, "%s:%s", q->solver, q->adjoint);
    return !o->pair || strcmp(o->pair, name) == 0;
}

static void print_json(run *r, const pair *q)
{
    double tot = bench_median(r->tot, r->nit);
    printf("{\"task\": \"sde\", \"solver\": \"%s\", \"adjoint\": \"%s\", "
           "\"median_ms\": %.6f, \"min_ms\": %.6f, \"max_ms\": %.6f, "
           "\"fwd_ms\": %.6f, \"bwd_ms\": %.6f, \"nfe_fwd\": %ld, "
           "\"evals_bwd\": %ld, \"vjp_bwd\": %ld, \"times_ms\": [",
           q->solver, q->adjoint, tot, r->tot[0], r->tot[r->nit - 1],
           bench_median(r->fwd, r->nit), bench_median(r->bwd, r->nit),
           r->ev_f, r->ev_b, r->vjp_b);
    for (size_t k = 0; k < r->nit; k++)
        printf("%s%.6f", k ? ", " : "", r->tot[k]);
    printf("]}\n");
}

static int part1(const opts *o)
{
    static run runs[NPAIR];
    size_t i, p, nparams = 0;
    int rc;

    for (i = 0; i < NPAIR; i++) {
        if (!selected(o, &pairs[i]))
            continue;
        if ((rc = make(&runs[i], pairs[i].solver, pairs[i].adjoint)))
            return fail(pairs[i].solver, rc);
        if (o->params && bench_write_doubles(o->params, runs[i].theta,
                                             runs[i].f->nparams))
            return 1;
        for (p = 0; p < WARMUP; p++)
            if ((rc = iterate(&runs[i], 0)))
                return fail(pairs[i].adjoint, rc);
    }
    for (p = 0; p < PASSES; p++)
        for (i = 0; i < NPAIR; i++)
            for (size_t k = 0; selected(o, &pairs[i]) && k < o->per_pass;
                 k++)
                if ((rc = iterate(&runs[i], 1)))
                    return fail(pairs[i].adjoint, rc);

    if (o->json) {
        for (i = 0; i < NPAIR; i++)
            if (selected(o, &pairs[i])) {
                print_json(&runs[i], &pairs[i]);
                destroy(&runs[i]);
            }
        return 0;
    }
    for (i = 0; i < NPAIR && !nparams; i++)
        if (selected(o, &pairs[i]))
            nparams = runs[i].f->nparams;
    printf("## Part 1: a small neural SDE, %d x %zu iterations "
           "after %d warm-up, OpenBLAS threads %d, %zu parameters\n\n",
           PASSES, o->per_pass, WARMUP, openblas_get_num_threads(),
           nparams);
    printf("| solver | adjoint | fwd+bwd ms median (min-max) | fwd ms | "
           "bwd ms | evals fwd | evals; VJPs bwd (nfe_backward) |\n"
           "|---|---|---|---|---|---|---|\n");
    for (i = 0; i < NPAIR; i++) {
        run *r = &runs[i];
        const pair *q = &pairs[i];
        double tot;
        if (!selected(o, q))
            continue;
        tot = bench_median(r->tot, r->nit);
        printf("| %s | %s | %.3f (%.3f-%.3f) | %.3f | %.3f | %ld | %ld; %ld "
               "(%ld) |\n", q->solver, q->adjoint, tot, r->tot[0],
               r->tot[r->nit - 1], bench_median(r->fwd, r->nit),
               bench_median(r->bwd, r->nit), r->ev_f, r->ev_b, r->vjp_b,
               r->nfe_b);
    }
    printf("\nMemory (own accounting: record + Brownian Interval bytes; "
           "child process peak RSS after building and after 5 iterations)\n"
           "\n| solver | adjoint | record bytes | Brownian bytes | sum | "
           "child RSS built KiB | child peak RSS KiB | growth KiB |\n"
           "|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    for (i = 0; i < NPAIR; i++) {
        long built, peak;
        if (!selected(o, &pairs[i]))
            continue;
        if (child_rss(&pairs[i], &built, &peak))
            return fail("child", 1);
        printf("| %s | %s | %zu | %zu | %zu | %ld | %ld | %ld |\n",
               pairs[i].solver, pairs[i].adjoint, runs[i].bytes,
               runs[i].bm_bytes, runs[i].bytes + runs[i].bm_bytes, built,
               peak, peak - built);
        fflush(stdout);
    }
    for (i = 0; i < NPAIR; i++)
        if (selected(o, &pairs[i]))
            destroy(&runs[i]);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Part 2: reversible Heun vs Heun                                     */

/* Stratonovich GBM dX = a X dt + b X o dW, theta = (a, b) = (1.01, 0.87),
 * dim 1: sde_fields.h's GBM with the bench's parameters. */
static int gbm_init(nde_field *f, double *theta, uint64_t seed)
{
    (void)f; (void)seed;
    theta[0] = 1.01;
    theta[1] = 0.87;
    return NDE_OK;
}

static const nde_field_type gbm_bench_field = {
    .info = NDE_FIELD_INFO(
        .name = "gbm",
        .description = "Stratonovich GBM (bench)",
        .version = "1"),
    .create = create_d1p2_diag, .destroy = tf_destroy,
    .init_params = gbm_init, .eval = gbm_eval, .vjp = gbm_vjp,
    .diffusion = gbm_g, .diffusion_vjp = gbm_gvjp};

#define GBM_BATCH 1024
#define NMAX (GBM_BATCH > N ? GBM_BATCH : N)
#define NDT 5
#define REF_STEPS 12800
static const int ndt_steps[NDT] = {25, 50, 100, 200, 400};
static const char *const cmp_solvers[2] = {"reversible_heun", "heun"};

/* One problem of part 2: its field, both solvers, a path. */
typedef struct cmp {
    const char *name;
    nde_config *cfg;
    nde_field *f;
    nde_solver *s[2];
    nde_brownian *bm;
    double *theta;
    size_t n;
    double y0[NMAX];
} cmp;

static int cmp_make(cmp *c, int gbm)
{
    int rc;

    memset(c, 0, sizeof *c);
    if (gbm) {
        c->name = "Stratonovich GBM (a 1.01, b 0.87, x0 0.5, 1024 paths)";
        rc = nde_field_create_from(ctx, &gbm_bench_field, NULL, GBM_BATCH,
                                   &c->f);
    } else {
        c->name = "MLP SDE (batch 64 x dim 4)";
        if (!(c->cfg = nde_config_create()))
            return NDE_ENOMEM;
        if ((rc = nde_config_load_string(c->cfg, "bench", field_ini, ctx)))
            return rc;
        rc = nde_field_create(ctx, c->cfg, "field", BATCH, &c->f);
    }
    if (rc)
        return rc;
    c->n = (gbm ? GBM_BATCH : BATCH) * c->f->dim;
    if (!(c->theta = malloc(c->f->nparams * sizeof(double))))
        return NDE_ENOMEM;
    if ((rc = nde_field_init_params(c->f, c->theta, 1)))
        return rc;
    for (int k = 0; k < 2; k++) {
        const nde_solver_type *st = solver_type(cmp_solvers[k]);
        if (!st)
            return NDE_EINVAL;
        if ((rc = nde_solver_create_from(ctx, st, c->f, &c->s[k])) ||
            (rc = nde_solver_set_batch(c->s[k], c->n / c->f->dim)))
            return rc;
    }
    for (size_t i = 0; i < c->n; i++)
        c->y0[i] = gbm ? 0.5
                       : 0.1 * sin(0.37 * (double)i) +
                             0.05 * (double)(i % DIM);
    return nde_brownian_create(ctx, c->n, &c->bm);
}

static void cmp_destroy(cmp *c)
{
    nde_brownian_destroy(c->bm);
    nde_solver_destroy(c->s[0]);
    nde_solver_destroy(c->s[1]);
    nde_field_destroy(c->f);
    nde_config_destroy(c->cfg);
    free(c->theta);
}

/* Manual fixed steps on [0, 1] with `steps` steps over the current path
 * (any grid: coarse increments are queries over several cells). */
static int manual_solve(cmp *c, int k, int steps, double *y)
{
    static double aux[3 * NMAX], yn[NMAX], auxn[3 * NMAX], dw[NMAX];
    const double h = 1.0 / steps;
    nde_solver *s = c->s[k];
    int rc;

    memcpy(y, c->y0, c->n * sizeof *y);
    if ((rc = nde_solver_start(s, c->theta, 0.0, y, aux)))
        return rc;
    for (int j = 0; j < steps; j++) {
        const double ta = nde_grid_time(0.0, 1.0, h, steps, j);
        const double tb = nde_grid_time(0.0, 1.0, h, steps, j + 1);
        if ((rc = nde_brownian_increment(c->bm, ta, tb, dw)) ||
            (rc = nde_solver_advance(s, c->theta, ta, tb - ta, dw, y, aux, yn,
                                     auxn)))
            return rc;
        memcpy(y, yn, c->n * sizeof *y);
        memcpy(aux, auxn, 3 * c->n * sizeof *aux);
    }
    return NDE_OK;
}

/* Forward cost per step (us) of both solvers with nde_solve at dt = 0.01,
 * interleaved: PASSES x PER_PASS solves each on fresh paths; us[2]: the
 * Brownian increment query of a step alone. */
static int step_cost(cmp *c, double us[3])
{
    static double y1[NMAX];
    double tm[2][NIT];
    const double t1 = 1.0;
    size_t m = 0;
    int rc;

    for (int p = 0; p < PASSES; p++)
        for (int i = 0; i < PER_PASS + (p == 0 ? WARMUP : 0); i++) {
            for (int k = 0; k < 2; k++) {
                nde_solve_opts o;
                nde_stats st;
                double ta;
                nde_solve_opts_default(&o, c->s[k]->type);
                o.dt = DT;
                o.brownian = c->bm;
                if ((rc = nde_brownian_reset(c->bm, 1000 + (uint64_t)i, 0.0,
                                             t1, DT, c->n)))
                    return rc;
                ta = bench_now();
                if ((rc = nde_solve(c->s[k], &o, c->theta, 0.0, c->y0, t1, 1,
                                    &t1, y1, &st)))
                    return rc;
                if (p > 0 || i >= WARMUP)
                    tm[k][m] = 1e6 * (bench_now() - ta) /
                               (double)st.steps_accepted;
            }
            if (p > 0 || i >= WARMUP)
                m++;
        }
    us[0] = bench_median(tm[0], m);
    us[1] = bench_median(tm[1], m);
    /* The Brownian query alone: a forward sweep of a fresh path. */
    for (int i = 0; i < PER_PASS; i++) {
        static double dw[NMAX];
        const size_t cells = nde_grid_cells(0.0, t1, DT);
        double ta;
        if ((rc = nde_brownian_reset(c->bm, 3000 + (uint64_t)i, 0.0, t1, DT,
                                     c->n)))
            return rc;
        ta = bench_now();
        for (size_t k = 0; k < cells; k++)
            if ((rc = nde_brownian_increment(
                     c->bm, nde_grid_time(0.0, t1, DT, cells, k),
                     nde_grid_time(0.0, t1, DT, cells, k + 1), dw)))
                return rc;
        tm[0][i] = 1e6 * (bench_now() - ta) / (double)cells;
    }
    us[2] = bench_median(tm[0], PER_PASS);
    return NDE_OK;
}

/* Strong errors E|y_N - y(1)| (mean over values and paths) at the NDT
 * step counts for both solvers; the reference is exact for GBM, Heun with
 * REF_STEPS for the MLP (*refdiff: its mean distance to reversible Heun
 * with REF_STEPS). */
static int strong_errors(cmp *c, int gbm, int npaths, double err[2][NDT],
                         double *refdiff)
{
    static double yref[NMAX], y[NMAX], w1[NMAX];
    const double dtref = 1.0 / REF_STEPS;
    int rc;

    memset(err, 0, 2 * NDT * sizeof(double));
    *refdiff = 0.0;
    for (int p = 0; p < npaths; p++) {
        if ((rc = nde_brownian_reset(c->bm, 5000 + (uint64_t)p, 0.0, 1.0,
                                     dtref, c->n)))
            return rc;
        if (gbm) {
            if ((rc = nde_brownian_increment(c->bm, 0.0, 1.0, w1)))
                return rc;
            for (size_t i = 0; i < c->n; i++)
                yref[i] = c->y0[i] * exp(c->theta[0] + c->theta[1] * w1[i]);
        } else {
            if ((rc = manual_solve(c, 1, REF_STEPS, yref)) ||
                (rc = manual_solve(c, 0, REF_STEPS, y)))
                return rc;
            for (size_t i = 0; i < c->n; i++)
                *refdiff += fabs(y[i] - yref[i]) / (double)(c->n * npaths);
        }
        for (int k = 0; k < 2; k++)
            for (int d = 0; d < NDT; d++) {
                if ((rc = manual_solve(c, k, ndt_steps[d], y)))
                    return rc;
                for (size_t i = 0; i < c->n; i++)
                    err[k][d] += fabs(y[i] - yref[i]) /
                                 (double)(c->n * npaths);
            }
    }
    return NDE_OK;
}

/* Least-squares fit log e = a + p log h. */
static void fit(const double *e, double *a, double *p)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int d = 0; d < NDT; d++) {
        const double x = log(1.0 / ndt_steps[d]), yv = log(e[d]);
        sx += x; sy += yv; sxx += x * x; sxy += x * yv;
    }
    *p = (NDT * sxy - sx * sy) / (NDT * sxx - sx * sx);
    *a = (sy - *p * sx) / NDT;
}

/* The dt at which errors e (at ndt_steps) reach `target`: log-log
 * interpolation between the bracketing measured points, or the fit
 * log e = a + p log h outside their range. */
static double equal_error_dt(const double *e, double target, double a,
                             double p)
{
    for (int d = 0; d + 1 < NDT; d++)
        if (e[d] >= target && target >= e[d + 1]) {
            const double x0 = log(1.0 / ndt_steps[d]);
            const double x1 = log(1.0 / ndt_steps[d + 1]);
            const double u = (log(target) - log(e[d])) /
                             (log(e[d + 1]) - log(e[d]));
            return exp(x0 + u * (x1 - x0));
        }
    return exp((log(target) - a) / p);
}

static int part2(void)
{
    printf("\n## Part 2: reversible Heun vs Heun (Stratonovich), forward "
           "cost per step at dt = 0.01 (nde_solve, %d x %d solves "
           "interleaved) and strong error E|y_N - y(1)| on the same paths\n",
           PASSES, PER_PASS);
    for (int gbm = 1; gbm >= 0; gbm--) {
        cmp c;
        double us[3], err[2][NDT], refdiff, a[2], p[2];
        const int npaths = gbm ? 4 : 2;
        int rc;

        if ((rc = cmp_make(&c, gbm)) || (rc = step_cost(&c, us)) ||
            (rc = strong_errors(&c, gbm, npaths, err, &refdiff)))
            return fail("part 2", rc);
        printf("\n### %s, %d path(s) per row, reference: %s\n\n", c.name,
               npaths, gbm ? "exact solution" : "heun at dt = 1/12800");
        if (!gbm)
            printf("reference check: |rh - heun| at dt = 1/12800: %.2e\n\n",
                   refdiff);
        printf("Brownian increment query alone: %.3f us per step (part of "
               "both solvers' step cost)\n\n", us[2]);
        printf("| solver | us per step | evals per step |");
        for (int d = 0; d < NDT; d++)
            printf(" err dt=1/%d |", ndt_steps[d]);
        printf(" fitted order |\n|---|---|---|");
        for (int d = 0; d < NDT; d++)
            printf("---|");
        printf("---|\n");
        for (int k = 0; k < 2; k++) {
            fit(err[k], &a[k], &p[k]);
            printf("| %s | %.3f | %d |", cmp_solvers[k], us[k], k ? 2 : 1);
            for (int d = 0; d < NDT; d++)
                printf(" %.3e |", err[k][d]);
            printf(" %.3f |\n", p[k]);
        }
        {
            /* Heun's dt with reversible Heun's error at dt = 0.01 (from
             * Heun's fit), and the cost of [0, 1] at equal error. */
            const double e_rh = err[0][2];
            const double h_heun = equal_error_dt(err[1], e_rh, a[1], p[1]);
            const double cost_rh = us[0] / DT, cost_heun = us[1] / h_heun;
            printf("\nper-step cost ratio rh/heun at equal dt = 0.01: %.3f; "
                   "error ratio rh/heun at dt = 0.01: %.3f; Heun matches "
                   "rh's error %.3e at dt = %.4g (log-log interpolation), so the cost of "
                   "[0, 1] at equal error is rh %.1f us vs heun %.1f us: "
                   "ratio %.3f (target <= 0.6)\n", us[0] / us[1],
                   err[0][2] / err[1][2], e_rh, h_heun, cost_rh, cost_heun,
                   cost_rh / cost_heun);
        }
        fflush(stdout);
        cmp_destroy(&c);
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    size_t i;
    int rc;

    if ((rc = parse(argc, argv, &o)) != 0)
        return rc;
    for (i = 0; i < NPAIR && !selected(&o, &pairs[i]); i++)
        ;
    if (i == NPAIR) {
        fprintf(stderr, "bench_sde: no pair matches --pair %s\n", o.pair);
        return 2;
    }
    openblas_set_num_threads(1);
    if (!(ctx = nde_ctx_create()))
        return 1;
    rc = part1(&o);
    if (!rc && !o.json)
        rc = part2();
    nde_ctx_destroy(ctx);
    return rc ? 1 : 0;
}
