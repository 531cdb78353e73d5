/*
 * per_row.c - per-row step sizes ([solver] per_row_steps) against the
 * joint steps of the whole batch, on a batch that mixes easy and hard rows
 * (issue 13, item 4).
 *
 * The field is Lotka-Volterra (expr, a = b = c = d = 1); row 0 starts on a
 * wide cycle (4, 0.3), the other rows on small cycles around the
 * equilibrium (1.1 + 0.01 i, 0.9). Each row is a series of 21 observations
 * on [0, 5] (made-up values: the bench measures work at fixed parameters,
 * not a fit). For each mode, interleaved, it times the trainer's loss and
 * gradient (dopri5 at rtol/atol, the discrete adjoint) and the forward
 * solve alone (nde_trainer_predict), and counts one-row evaluations:
 * joint NFE x rows, per-row NFE as they come.
 *
 * Usage: bench_per_row [--rows N] [--reps R] [--tol RTOL/ATOL] [--json]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "nde/nde.h"
#include "nde/train.h"

#define NOBS 21
#define T_END 5.0

typedef struct mode {
    const char *name;
    nde_ctx *ctx;
    nde_config *cfg;
    nde_trainer *tr;
    double *grad_ms, *solve_ms;
    long nfe_fwd, nfe_bwd, nfe_solve; /* one-row evaluations */
} mode;

static int write_csv(const char *path, int rows)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "id,t,x,y\n");
    for (int r = 0; r < rows; r++) {
        const double x0 = r ? 1.1 + 0.01 * r : 4.0, y0 = r ? 0.9 : 0.3;
        for (int k = 0; k < NOBS; k++)
            fprintf(f, "r%d,%.17g,%.17g,%.17g\n", r, T_END * k / (NOBS - 1),
                    x0 + 0.01 * k, y0);
    }
    return fclose(f);
}

static int mode_create(mode *m, const char *csv, int rows, const char *tol,
                       int per_row, int reps)
{
    char ini[1024], rtol[32];
    const char *slash = strchr(tol, '/');

    if (!slash || (size_t)(slash - tol) >= sizeof rtol)
        return -1;
    memcpy(rtol, tol, (size_t)(slash - tol));
    rtol[slash - tol] = '\0';
    snprintf(ini, sizeof ini,
             "[solver]\nplugin = dopri5\nrtol = %s\natol = %s\n"
             "per_row_steps = %s\n"
             "[field]\nplugin = expr\nstate = x, y\n"
             "params = a=1, b=1, c=1, d=1\n"
             "dx = a*x - b*x*y\ndy = d*x*y - c*y\n"
             "[adjoint]\nplugin = discrete\n"
             "[data]\nsource = csv\npath = %s\ntest_fraction = 0\n"
             "[train]\niterations = 1\nbatch_size = %d\n",
             rtol, slash + 1, per_row ? "true" : "false", csv, rows);
    m->name = per_row ? "per_row" : "joint";
    m->ctx = nde_ctx_create();
    m->cfg = nde_config_create();
    m->grad_ms = calloc((size_t)reps, sizeof *m->grad_ms);
    m->solve_ms = calloc((size_t)reps, sizeof *m->solve_ms);
    if (!m->ctx || !m->cfg || !m->grad_ms || !m->solve_ms ||
        nde_config_load_string(m->cfg, "per_row", ini, m->ctx) ||
        nde_trainer_create(m->ctx, m->cfg, 0, &m->tr) ||
        nde_trainer_probe(m->tr)) {
        fprintf(stderr, "bench_per_row: %s\n",
                m->ctx ? nde_ctx_message(m->ctx) : "out of memory");
        return -1;
    }
    return 0;
}

static void mode_destroy(mode *m)
{
    nde_trainer_destroy(m->tr);
    nde_config_destroy(m->cfg);
    nde_ctx_destroy(m->ctx);
    free(m->grad_ms);
    free(m->solve_ms);
}

/* One loss-and-gradient and one forward solve of the batch, timed. */
static int mode_run(mode *m, int rep, int rows, int per_row, double *grad,
                    double *y0, double *ysave, const double *tsave)
{
    const double *theta = nde_trainer_params(m->tr);
    const long scale = per_row ? 1 : rows;
    nde_stats st;
    double loss, t;

    t = bench_now();
    if (nde_trainer_loss_grad(m->tr, NULL, theta, &loss, grad, &st))
        return -1;
    m->grad_ms[rep] = 1e3 * (bench_now() - t);
    m->nfe_fwd = st.nfe * scale;
    m->nfe_bwd = st.nfe_backward * scale;
    t = bench_now();
    if (nde_trainer_predict(m->tr, 0.0, y0, (size_t)rows, T_END, NOBS, tsave,
                            ysave, &st))
        return -1;
    m->solve_ms[rep] = 1e3 * (bench_now() - t);
    m->nfe_solve = st.nfe * scale;
    return 0;
}

static void report(const mode *m, int reps, int json, int rows,
                   const char *tol)
{
    const double g = bench_median(m->grad_ms, (size_t)reps);
    const double s = bench_median(m->solve_ms, (size_t)reps);
    if (json)
        printf("{\"mode\": \"%s\", \"rows\": %d, \"tol\": \"%s\", "
               "\"grad_median_ms\": %.6g, \"solve_median_ms\": %.6g, "
               "\"row_evals_fwd\": %ld, \"row_evals_bwd\": %ld, "
               "\"row_evals_solve\": %ld}\n",
               m->name, rows, tol, g, s, m->nfe_fwd, m->nfe_bwd,
               m->nfe_solve);
    else
        printf("%-8s %8.3f ms %8.3f ms %10ld %10ld %10ld\n", m->name, g, s,
               m->nfe_fwd, m->nfe_bwd, m->nfe_solve);
}

int main(int argc, char **argv)
{
    int rows = 32, reps = 21, json = 0, rc = 1;
    const char *tol = "1e-6/1e-8";
    char dir[] = "/tmp/nde_per_row.XXXXXX", csv[64];
    double *grad = NULL, *y0 = NULL, *ysave = NULL, tsave[NOBS];
    mode m[2];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
            rows = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc)
            tol = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else {
            fprintf(stderr, "usage: bench_per_row [--rows N] [--reps R] "
                            "[--tol RTOL/ATOL] [--json]\n");
            return 2;
        }
    }
    if (rows < 2 || reps < 1 || !mkdtemp(dir))
        return 2;
    snprintf(csv, sizeof csv, "%s/mixed.csv", dir);
    memset(m, 0, sizeof m);
    grad = calloc(64, sizeof *grad);
    y0 = calloc(2 * (size_t)rows, sizeof *y0);
    ysave = calloc(NOBS * 2 * (size_t)rows, sizeof *ysave);
    for (int k = 0; k < NOBS; k++)
        tsave[k] = T_END * k / (NOBS - 1);
    for (int r = 0; y0 && r < rows; r++) {
        y0[2 * r] = r ? 1.1 + 0.01 * r : 4.0;
        y0[2 * r + 1] = r ? 0.9 : 0.3;
    }
    if (!grad || !y0 || !ysave || write_csv(csv, rows) ||
        mode_create(&m[0], csv, rows, tol, 0, reps) ||
        mode_create(&m[1], csv, rows, tol, 1, reps))
        goto done;
    for (int rep = 0; rep < reps; rep++)
        for (int j = 0; j < 2; j++)
            if (mode_run(&m[j], rep, rows, j, grad, y0, ysave, tsave)) {
                fprintf(stderr, "bench_per_row: %s\n",
                        nde_ctx_message(m[j].ctx));
                goto done;
            }
    if (!json)
        printf("%d rows (row 0 hard), dopri5 %s, discrete adjoint, "
               "medians of %d interleaved runs\n"
               "mode     loss+grad   solve      row-evals: fwd        bwd"
               "      solve\n", rows, tol, reps);
    for (int j = 0; j < 2; j++)
        report(&m[j], reps, json, rows, tol);
    rc = 0;
done:
    for (int j = 0; j < 2; j++)
        if (m[j].ctx)
            mode_destroy(&m[j]);
    unlink(csv);
    rmdir(dir);
    free(grad);
    free(y0);
    free(ysave);
    return rc;
}
