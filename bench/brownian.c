/*
 * brownian.c - cost of Brownian Interval queries (nde/brownian.h) in the
 * sequential pattern of a fixed-step SDE solve and its adjoint ([0, 1],
 * batch 64 x 4 channels = 256, 100 consecutive cells, a fresh interval per
 * solve), a
 * forward sweep of the cells, then the same cells in reverse order; the
 * same for 10^4 and 10^6 cells (flat per-query cost = O(1) amortised).
 * Also off-grid steps (every query end strictly inside a cell: the cell
 * is bisected down to the time), the same steps ended where an adaptive
 * SDE solve ends them (nde_brownian_snap), the off-grid steps on a path
 * with split refinement (the cell split at the query times,
 * nde_brownian_set_split) and a naive stored path: all increments
 * drawn up front into one array (GSL's ziggurat normals), then read. No
 * peer figure is quoted: a comparison counts only when both ran on the
 * same machine in the same run.
 *
 * Per row: the median (min-max) over repetitions of the per-query time of
 * a whole sweep; nodes sampled per query and the instance's bytes from
 * nde_brownian_get_stats.
 *
 * Run: build/bench/bench_brownian   (prints markdown tables)
 *
 * For bench/peers (the driver next to torchsde's BrownianInterval):
 * --json prints one JSON line per row of the first table without its
 * 10^6-cell, snapped and 10^4-cell split rows (every path's per-query
 * times) and no naive table.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "bench_util.h"
#include "nde/nde.h"
#include "nde/brownian.h"

#define NCH 256     /* batch 64 x 4 channels */

/* median, min, max of v[0..n) in place */
static void summary(double *v, int n, double *med, double *lo, double *hi)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    *med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    *lo = v[0];
    *hi = v[n - 1];
}

/* Keeps the results observable so no query is optimised away. */
static double sink;

static void check(nde_ctx *ctx, int st, const char *what)
{
    if (st != NDE_OK) {
        fprintf(stderr, "bench_brownian: %s: %s\n", what,
                nde_ctx_message(ctx));
        exit(1);
    }
}

/* One row: `reps` fresh paths of `cells` cells on [0, 1]; per path a
 * forward sweep and a reverse sweep of the queries [a_k, b_k]. */
static void print_json(const char *name, int split, size_t nq, int reps,
                       const double *fwd, const double *rev)
{
    printf("{\"task\": \"brownian\", \"pattern\": \"%s\", "
           "\"refine\": \"%s\", \"queries\": %zu, \"paths\": %d, "
           "\"fwd_us\": [", name, split ? "split" : "tree", nq, reps);
    for (int r = 0; r < reps; r++)
        printf("%s%.6f", r ? ", " : "", 1e6 * fwd[r]);
    printf("], \"rev_us\": [");
    for (int r = 0; r < reps; r++)
        printf("%s%.6f", r ? ", " : "", 1e6 * rev[r]);
    printf("]}\n");
}

/* The query patterns of a row; SPLIT is OFFGRID on a path with split
 * refinement (nde_brownian_set_split). */
enum pattern { GRID, OFFGRID, SNAPPED, SPLIT };

/* End k of query k - 1 (and start of query k): a grid point; k / nq; or,
 * SNAPPED, where an adaptive SDE solve ends a step of 1 / nq asked to end
 * at k / nq (nde_brownian_snap, a quantum of 1/256 of the step). */
static double query_end(nde_brownian *bm, enum pattern pat, size_t k,
                        size_t nq)
{
    const double t = (double)k / (double)nq;
    if (pat == GRID)
        return nde_brownian_grid_time(bm, k);
    if (pat != SNAPPED || k == 0 || k == nq)
        return t;
    return nde_brownian_snap(bm, t, 1.0 / (256.0 * (double)nq));
}

static void row(nde_ctx *ctx, nde_brownian *bm, const char *name,
                size_t cells, int reps, enum pattern pat, int json)
{
    double dt = 1.0 / (double)cells, dw[NCH];
    double *fwd = malloc((size_t)reps * sizeof *fwd);
    double *rev = malloc((size_t)reps * sizeof *rev);
    /* off the grid: steps of 1/(cells + 1), every inner end inside a cell */
    const size_t nq = pat == GRID ? cells : cells + 1;
    double *ends = malloc((nq + 1) * sizeof *ends);
    double fm, fl, fh, rm, rl, rh;
    nde_brownian_stats st;
    long nodes_fwd = 0, nodes_all = 0, queries = 0;

    if (!fwd || !rev || !ends) {
        fprintf(stderr, "bench_brownian: out of memory\n");
        exit(1);
    }
    check(ctx, nde_brownian_set_split(bm, pat == SPLIT), "set_split");
    for (int r = 0; r < reps; r++) {
        double t;
        check(ctx, nde_brownian_reset(bm, (uint64_t)r + 1, 0.0, 1.0, dt, NCH),
              "reset");
        /* forwards as a solve: each step's end found as it goes */
        t = bench_now();
        ends[0] = query_end(bm, pat, 0, nq);
        for (size_t k = 0; k < nq; k++) {
            ends[k + 1] = query_end(bm, pat, k + 1, nq);
            nde_brownian_increment(bm, ends[k], ends[k + 1], dw);
            sink += dw[k % NCH];
        }
        fwd[r] = (bench_now() - t) / (double)nq;
        nde_brownian_get_stats(bm, &st);
        nodes_fwd += st.nodes;
        /* backwards as an adjoint: the recorded ends */
        t = bench_now();
        for (size_t k = nq; k-- > 0;) {
            nde_brownian_increment(bm, ends[k], ends[k + 1], dw);
            sink += dw[k % NCH];
        }
        rev[r] = (bench_now() - t) / (double)nq;
        nde_brownian_get_stats(bm, &st);
        nodes_all += st.nodes;
        queries += st.queries;
    }
    summary(fwd, reps, &fm, &fl, &fh);
    summary(rev, reps, &rm, &rl, &rh);
    if (json)
        print_json(name, pat == SPLIT, nq, reps, fwd, rev);
    else
        printf("| %s | %zu | %d | %.3f (%.3f-%.3f) | %.3f (%.3f-%.3f) "
               "| %.2f | %.2f | %zu |\n",
               name, nq, reps, 1e6 * fm, 1e6 * fl, 1e6 * fh, 1e6 * rm,
               1e6 * rl, 1e6 * rh,
               (double)nodes_fwd / ((double)reps * (double)nq),
               (double)nodes_all / (double)queries, st.bytes);
    free(fwd);
    free(rev);
    free(ends);
}

/* The naive stored path: draw cells x 256 increments into an array, then
 * read them cell by cell forwards and backwards. */
static void naive_row(size_t cells, int reps)
{
    size_t n = cells * NCH;
    double *path = malloc(n * sizeof *path), dw[NCH];
    double sd = 1.0 / sqrt((double)cells);
    double *draw = malloc((size_t)reps * sizeof *draw);
    double *fwd = malloc((size_t)reps * sizeof *fwd);
    double *rev = malloc((size_t)reps * sizeof *rev);
    double dm, dl, dh, fm, fl, fh, rm, rl, rh;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);

    if (!path || !draw || !fwd || !rev || !rng) {
        printf("| naive stored path | %zu | - | out of memory for %zu "
               "bytes |\n",
               cells, n * sizeof *path);
        free(path);
        free(draw);
        free(fwd);
        free(rev);
        gsl_rng_free(rng);
        return;
    }
    for (int r = 0; r < reps; r++) {
        double t = bench_now();
        gsl_rng_set(rng, (unsigned long)r + 1);
        for (size_t i = 0; i < n; i++)
            path[i] = sd * gsl_ran_gaussian_ziggurat(rng, 1.0);
        draw[r] = (bench_now() - t) / (double)cells;
        t = bench_now();
        for (size_t k = 0; k < cells; k++) {
            memcpy(dw, path + k * NCH, sizeof dw);
            sink += dw[k % NCH];
        }
        fwd[r] = (bench_now() - t) / (double)cells;
        t = bench_now();
        for (size_t k = cells; k-- > 0;) {
            memcpy(dw, path + k * NCH, sizeof dw);
            sink += dw[k % NCH];
        }
        rev[r] = (bench_now() - t) / (double)cells;
    }
    summary(draw, reps, &dm, &dl, &dh);
    summary(fwd, reps, &fm, &fl, &fh);
    summary(rev, reps, &rm, &rl, &rh);
    printf("| naive stored path | %zu | %d | %.3f (%.3f-%.3f) "
           "| %.3f (%.3f-%.3f) | %.3f (%.3f-%.3f) | %zu |\n",
           cells, reps, 1e6 * dm, 1e6 * dl, 1e6 * dh, 1e6 * fm, 1e6 * fl,
           1e6 * fh, 1e6 * rm, 1e6 * rl, 1e6 * rh, n * sizeof *path);
    free(path);
    free(draw);
    free(fwd);
    free(rev);
    gsl_rng_free(rng);
}

int main(int argc, char **argv)
{
    nde_ctx *ctx;
    nde_brownian *bm = NULL;
    const int json = argc == 2 && strcmp(argv[1], "--json") == 0;

    if (argc > 1 && !json) {
        fprintf(stderr, "usage: bench_brownian [--json]\n");
        return 2;
    }
    if (!(ctx = nde_ctx_create()))
        return 1;
    check(ctx, nde_brownian_create(ctx, NCH, &bm), "create");
    if (json) {
        row(ctx, bm, "grid cells", 100, 2000, GRID, 1);
        row(ctx, bm, "grid cells", 10000, 20, GRID, 1);
        row(ctx, bm, "off-grid steps", 100, 50, OFFGRID, 1);
        row(ctx, bm, "off-grid steps", 100, 500, SPLIT, 1);
        goto done;
    }
    printf("Brownian Interval, %d channels (batch 64 x 4) on [0, 1], "
           "per query: median (min-max) us\n\n", NCH);
    printf("| pattern | queries per sweep | paths | forward sweep us | "
           "reverse sweep us | nodes/query fwd | nodes/query fwd+rev | "
           "bytes |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    row(ctx, bm, "grid cells", 100, 2000, GRID, 0);
    row(ctx, bm, "grid cells", 10000, 20, GRID, 0);
    row(ctx, bm, "grid cells", 1000000, 3, GRID, 0);
    row(ctx, bm, "off-grid steps", 100, 50, OFFGRID, 0);
    row(ctx, bm, "snapped steps", 100, 50, SNAPPED, 0);
    row(ctx, bm, "off-grid steps, split", 100, 500, SPLIT, 0);
    row(ctx, bm, "off-grid steps, split", 10000, 20, SPLIT, 0);
    printf("\nNaive stored path (GSL ziggurat normals drawn up front):\n\n");
    printf("| approach | cells | paths | draw per cell us | forward read us | "
           "reverse read us | bytes |\n");
    printf("|---|---|---|---|---|---|---|\n");
    naive_row(100, 2000);
    naive_row(10000, 20);
    naive_row(1000000, 3);
done:
    fprintf(stderr, "(checksum %g)\n", sink);
    nde_brownian_destroy(bm);
    nde_ctx_destroy(ctx);
    return 0;
}
