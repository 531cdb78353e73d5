/*
 * flow.c - the pictures of `nde predict`: --plot BASE, the held-out
 * series' observations against the model's predictions, one panel per
 * state; --flow BASE, the learned flow of a task with 2-D inputs (the
 * points task), drawn as the paths of a grid of inputs; --plot BASE of a
 * density model (a cnf with the exact trace), the density it assigns
 * to a grid of points.
 *
 * --flow: *
 * The grid: N x N inputs over [-A, A]^2, those within the disc of radius A
 * kept, each lifted by the task (nde_trainer_lift: its learned lift, its
 * augmentation, its controls) and solved over the task's span, saving K
 * states; path r is drawn in the plane of two states, coloured by its
 * input's radius |x| / A (blue at the centre, orange at the rim: the
 * annuli's disc and ring), to BASE.png and BASE.svg.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ab/ab_plot.h"
#include "cli.h"
#include "nde/train.h"

#define FLOW_SAVES 41

/* BASE split into its directory (into dir; "." when it has none), which
 * is returned, and its file name, into *name. */
static const char *split_base(const char *base, char *dir, size_t size,
                              const char **name)
{
    const char *slash = strrchr(base, '/');

    *name = slash ? slash + 1 : base;
    if (slash == base)
        return "/";
    snprintf(dir, size, "%.*s", slash ? (int)(slash - base) : 1,
             slash ? base : ".");
    return dir;
}

/* The grid's inputs within the disc into x (room for N^2 rows), their
 * shades into shade; returns their count. */
static size_t grid_inputs(long N, double A, double *x, double *shade)
{
    size_t n = 0;

    for (long i = 0; i < N; i++)
        for (long j = 0; j < N; j++) {
            const double u = A * (2.0 * (double)i / (double)(N - 1) - 1.0);
            const double v = A * (2.0 * (double)j / (double)(N - 1) - 1.0);
            const double r = hypot(u, v);
            if (r > A * (1.0 + 1e-12))
                continue;
            x[2 * n] = u;
            x[2 * n + 1] = v;
            shade[n++] = fmin(r / A, 1.0);
        }
    return n;
}

/* Lift and solve rows [at, at + m) of the grid; their saves go into y
 * (FLOW_SAVES x n x D) at their rows. */
static int solve_chunk(nde_trainer *tr, const double *x, size_t at, size_t m,
                       size_t n, size_t D, double *y0, double *ys,
                       double *y, long *nfe)
{
    double t0, t1, ts[FLOW_SAVES];
    nde_stats st;
    int rc;

    if ((rc = nde_trainer_lift(tr, x + 2 * at, m, y0, &t0, &t1)) != NDE_OK)
        return rc;
    for (size_t k = 0; k < FLOW_SAVES; k++)
        ts[k] = t0 + (t1 - t0) * (double)k / (FLOW_SAVES - 1);
    ts[FLOW_SAVES - 1] = t1;
    if ((rc = nde_trainer_predict(tr, t0, y0, m, t1, FLOW_SAVES, ts, ys,
                                  &st)) != NDE_OK)
        return rc;
    *nfe += st.nfe;
    for (size_t k = 0; k < FLOW_SAVES; k++)
        memcpy(y + (k * n + at) * D, ys + k * m * D, m * D * sizeof *y);
    return NDE_OK;
}

/* The pictures replace their files by a rename: refuse to replace
 * anything but a regular file (a device, a FIFO, a directory). */
static int replaceable(const char *opt, const char *base)
{
    static const char *const ext[2] = {"png", "svg"};
    char path[4096];
    struct stat st;

    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s.%s", base, ext[i]);
        if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
            cli_error("predict %s: %s exists and is not a regular file: "
                      "refused, nothing written", opt, path);
            return 0;
        }
    }
    return 1;
}

int cli_predict_flow(nde_ctx *ctx, nde_trainer *tr, const cli_flow_opts *o)
{
    const size_t D = nde_trainer_field(tr)->dim;
    const size_t B = (size_t)nde_trainer_settings(tr)->batch_size;
    const size_t cap = (size_t)(o->grid * o->grid);
    double *x = malloc(2 * cap * sizeof *x);
    double *shade = malloc(cap * sizeof *shade);
    double *y = NULL, *y0 = NULL, *ys = NULL;
    char dir[4096], err[512], xname[32], yname[32];
    const char *name;
    long nfe = 0;
    size_t n, at;
    int rc, code = CLI_EXIT_FAILURE;

    if (nde_trainer_input_dim(tr) != 2) {
        cli_error("predict --flow: the flow is drawn from a grid of 2-D "
                  "inputs; this model's task takes %zu per row",
                  nde_trainer_input_dim(tr));
        code = CLI_EXIT_USAGE;
        goto done;
    }
    if (o->sx >= D || o->sy >= D) {
        cli_error("predict --flow-states: %zu,%zu: the state has %zu "
                  "components (0 to %zu)", o->sx, o->sy, D, D - 1);
        code = CLI_EXIT_USAGE;
        goto done;
    }
    if (!replaceable("--flow", o->base)) {
        code = CLI_EXIT_USAGE;
        goto done;
    }
    if (!x || !shade)
        goto oom;
    n = grid_inputs(o->grid, o->range, x, shade);
    if (!(y = malloc(FLOW_SAVES * n * D * sizeof *y)) ||
        !(y0 = malloc(B * D * sizeof *y0)) ||
        !(ys = malloc(FLOW_SAVES * B * D * sizeof *ys)))
        goto oom;
    for (at = 0; at < n; at += B) {
        const size_t m = n - at < B ? n - at : B;
        if ((rc = solve_chunk(tr, x, at, m, n, D, y0, ys, y, &nfe)) !=
            NDE_OK) {
            nde_error_prefix(ctx, "predict --flow failed");
            code = cli_fail(ctx, rc);
            goto done;
        }
    }
    snprintf(xname, sizeof xname, "state %zu", o->sx);
    snprintf(yname, sizeof yname, "state %zu", o->sy);
    {
        const ab_flow fl = {y, FLOW_SAVES, n, D, o->sx, o->sy, shade,
                            xname, yname, o->title};
        const char *where = split_base(o->base, dir, sizeof dir, &name);
        if (ab_plot_flow(where, name, &fl, err, sizeof err) != 0) {
            cli_error("predict --flow: %s", err);
            goto done;
        }
    }
    fprintf(stderr, "nde: flow of %zu inputs, %ld nfe: %s.png, %s.svg\n", n,
            nfe, o->base, o->base);
    code = CLI_EXIT_OK;
    goto done;
oom:
    cli_error("out of memory");
done:
    free(x);
    free(shade);
    free(y);
    free(y0);
    free(ys);
    return code;
}

/* At most this many held-out series are drawn (one colour each). */
#define FIT_SERIES 8

int cli_predict_fit(nde_trainer *tr, const char *base, const char *title)
{
    const size_t ns = nde_trainer_ntest(tr), D = nde_trainer_field(tr)->dim;
    ab_fit_series s[FIT_SERIES];
    const char *name;
    char dir[4096], err[512];
    size_t n = 0;

    if (!replaceable("--plot", base))
        return CLI_EXIT_USAGE;
    for (size_t i = 0; i < ns && n < FIT_SERIES; i++) {
        ab_fit_series *q = &s[n];
        q->n = nde_trainer_test_series(tr, i, &q->id, &q->t, &q->pred);
        q->held_from = nde_trainer_test_held_from(tr, i);
        if (nde_trainer_test_observed(tr, i, &q->obs) == q->n && q->n > 0)
            n++;
    }
    if (n == 0) {
        cli_error("predict --plot: this model's task has no held-out series "
                  "with observations to draw (time series from source = "
                  "csv have)");
        return CLI_EXIT_USAGE;
    }
    const char *where = split_base(base, dir, sizeof dir, &name);
    if (ab_plot_fit(where, name, s, n, D, nde_trainer_state_names(tr), title,
                    err, sizeof err) != 0) {
        cli_error("predict --plot: %s", err);
        return CLI_EXIT_FAILURE;
    }
    fprintf(stderr, "nde: %zu held-out series of %zu drawn: %s.png, %s.svg\n",
            n, ns, base, base);
    return CLI_EXIT_OK;
}

/* The density's grid: DENSITY_GRID^2 points over [-DENSITY_HALF,
 * DENSITY_HALF]^2, solved a grid row at a time. */
int cli_predict_density(nde_trainer *tr, double t1, const char *base,
                        const char *title)
{
    const size_t n = DENSITY_GRID, D = nde_trainer_field(tr)->dim;
    const double half = DENSITY_HALF;
    double *p = malloc(n * n * sizeof *p), *y0 = malloc(n * D * sizeof *y0);
    double *ys = malloc(n * D * sizeof *ys);
    ab_density d = {p, n, half, title};
    const char *name;
    char dir[4096], err[512];
    nde_stats st;
    int code = CLI_EXIT_FAILURE;

    if (!replaceable("--plot", base)) {
        code = CLI_EXIT_USAGE;
        goto done;
    }
    if (D != 3) {
        cli_error("predict --plot: the density of a flow is drawn for a cnf "
                  "with trace = exact on 2-D points (state x0, x1, l), not a "
                  "state of %zu", D);
        code = CLI_EXIT_USAGE;
        goto done;
    }
    if (!p || !y0 || !ys) {
        cli_error("out of memory");
        goto done;
    }
    /* p(x) = N(z(t1); 0, I) exp(-l(t1)) from x at 0 (nde/task.h's density
     * task: -log p = |z|^2 / 2 + log(2 pi) + l(t1)) */
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < n; i++) {
            y0[3 * i] = -half + 2.0 * half * ((double)i + 0.5) / (double)n;
            y0[3 * i + 1] = -half + 2.0 * half * ((double)j + 0.5) / (double)n;
            y0[3 * i + 2] = 0.0;
        }
        if (nde_trainer_predict(tr, 0.0, y0, n, t1, 1, &t1, ys, &st) !=
            NDE_OK) {
            cli_error("predict --plot: the density's solve failed");
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            const double *z = ys + 3 * i;
            p[j * n + i] = exp(-0.5 * (z[0] * z[0] + z[1] * z[1]) - z[2]) /
                           (2.0 * M_PI);
        }
    }
    {
        const char *where = split_base(base, dir, sizeof dir, &name);
        if (ab_plot_density(where, name, &d, err, sizeof err) != 0) {
            cli_error("predict --plot: %s", err);
            goto done;
        }
    }
    fprintf(stderr, "nde: density on a %zu x %zu grid over [-%g, %g]^2: "
            "%s.png, %s.svg\n", n, n, half, half, base, base);
    code = CLI_EXIT_OK;
done:
    free(p);
    free(y0);
    free(ys);
    return code;
}
