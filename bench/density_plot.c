/*
 * density_plot.c - the density a trained continuous normalizing flow
 * (the density task, trace = exact) assigns to a grid of points, as a
 * PNG image (PLplot): p(x) = N(z(t1); 0, I) exp(-l(t1)) from the solve
 * of each grid point, t in [0, t1].
 *
 * Run: build/bench/bench_density_plot CONFIG CKPT OUT.png
 *          [--grid N] [--half W] [--t1 T] [-s SECTION.KEY=VALUE]...
 * CONFIG: the training config (with the same overrides as the run, so
 * that the parameters fit); CKPT: its checkpoint ([train] checkpoint);
 * the grid is N x N points on [-W, W]^2 (defaults 100, 4); T is [data]
 * t1 (default 1).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plplot.h>

#include "nde/nde.h"
#include "nde/train.h"

static int usage(void)
{
    fprintf(stderr, "usage: bench_density_plot CONFIG CKPT OUT.png "
            "[--grid N] [--half W] [--t1 T] [-s SECTION.KEY=VALUE]...\n");
    return 2;
}

/* p on the n x n grid (p[i][j] at x_i, y_j), row by row of the grid. */
static int grid_density(nde_trainer *tr, size_t n, double half, double t1,
                        PLFLT **p, double *y0, double *ys)
{
    nde_stats st;
    int rc;

    for (size_t j = 0; j < n; j++) {
        const double y = -half + 2.0 * half * ((double)j + 0.5) / (double)n;
        for (size_t i = 0; i < n; i++) {
            y0[3 * i] = -half + 2.0 * half * ((double)i + 0.5) / (double)n;
            y0[3 * i + 1] = y;
            y0[3 * i + 2] = 0.0;
        }
        if ((rc = nde_trainer_predict(tr, 0.0, y0, n, t1, 1, &t1, ys, &st)))
            return rc;
        for (size_t i = 0; i < n; i++) {
            const double *z = ys + 3 * i;
            p[i][j] = exp(-0.5 * (z[0] * z[0] + z[1] * z[1]) - z[2]) /
                      (2.0 * M_PI);
        }
    }
    return NDE_OK;
}

static void plot(const char *out, PLFLT **p, size_t n, double half)
{
    PLFLT top = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            top = fmax(top, p[i][j]);
    plsdev("pngcairo");
    plsfnam(out);
    plspage(0.0, 0.0, 600, 600, 0, 0);
    plscol0(0, 255, 255, 255); /* background */
    plscol0(15, 0, 0, 0);      /* axes and labels */
    {
        /* white (0) to dark blue (the largest p) */
        PLFLT pos[2] = {0.0, 1.0}, r[2] = {1.0, 0.05}, g[2] = {1.0, 0.1},
              b[2] = {1.0, 0.45};
        plscmap1n(256);
        plscmap1l(1, 2, pos, r, g, b, NULL);
    }
    plinit();
    plcol0(15);
    plenv(-half, half, -half, half, 1, 0);
    plimage((PLFLT_MATRIX)p, (PLINT)n, (PLINT)n, -half, half, -half, half,
            0.0, top, -half, half, -half, half);
    pllab("x", "y", "p(x, y) of the trained flow");
    plend();
}

int main(int argc, char **argv)
{
    long n = 100;
    double half = 4.0, t1 = 1.0;
    nde_ctx *ctx = nde_ctx_create();
    nde_config *cfg = nde_config_create();
    nde_trainer *tr = NULL;
    double *y0 = NULL, *ys = NULL;
    PLFLT **p = NULL;
    int rc;

    if (argc < 4 || !ctx || !cfg)
        return usage();
    if ((rc = nde_config_load_file(cfg, argv[1], ctx)) != NDE_OK)
        goto fail;
    for (int k = 4; k < argc; k += 2) {
        if (k + 1 >= argc)
            return usage();
        if (strcmp(argv[k], "--grid") == 0)
            n = atol(argv[k + 1]);
        else if (strcmp(argv[k], "--half") == 0)
            half = atof(argv[k + 1]);
        else if (strcmp(argv[k], "--t1") == 0)
            t1 = atof(argv[k + 1]);
        else if (strcmp(argv[k], "-s") == 0) {
            if ((rc = nde_config_override(cfg, argv[k + 1], ctx)))
                goto fail;
        } else
            return usage();
    }
    if (n < 2 || n > 1000 || !(half > 0.0) || !(t1 > 0.0))
        return usage();
    if ((rc = nde_trainer_create(ctx, cfg, (size_t)n, &tr)) ||
        (rc = nde_trainer_checkpoint_load(tr, argv[2],
                                          NDE_CHECKPOINT_PARAMS)))
        goto fail;
    if (nde_trainer_field(tr)->dim != 3) {
        fprintf(stderr, "bench_density_plot: the field has dim %zu; the "
                "plot needs a cnf with trace = exact (dim 3)\n",
                nde_trainer_field(tr)->dim);
        rc = 2;
        goto done;
    }
    y0 = malloc((size_t)n * 3 * sizeof *y0);
    ys = malloc((size_t)n * 3 * sizeof *ys);
    plAlloc2dGrid(&p, (PLINT)n, (PLINT)n);
    if (!y0 || !ys || !p) {
        rc = NDE_ENOMEM;
        goto done;
    }
    if ((rc = grid_density(tr, (size_t)n, half, t1, p, y0, ys)))
        goto fail;
    plot(argv[3], p, (size_t)n, half);
    goto done;
fail:
    fprintf(stderr, "bench_density_plot: %s\n", nde_ctx_message(ctx));
done:
    if (p)
        plFree2dGrid(p, (PLINT)n, (PLINT)n);
    free(y0);
    free(ys);
    nde_trainer_destroy(tr);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    return rc == NDE_OK ? 0 : rc == NDE_ECONFIG || rc == 2 ? 2 : 1;
}
