/*
 * common.c - helpers shared by the commands: option values, -s and -u,
 * JSON numbers, solution CSV files.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nde/train.h"

const char *cli_option_value(int argc, char **argv, int *i, const char *shrt,
                             const char *lng, int *missing)
{
    const char *a = argv[*i];
    size_t n = strlen(lng);

    *missing = 0;
    if ((shrt && strcmp(a, shrt) == 0) || strcmp(a, lng) == 0) {
        if (*i + 1 >= argc) {
            *missing = 1;
            return NULL;
        }
        return argv[++*i];
    }
    if (strncmp(a, lng, n) == 0 && a[n] == '=')
        return a + n + 1;
    if (shrt && strncmp(a, shrt, 2) == 0 && a[2] != '\0' && a[1] != '-')
        return a + 2;
    return NULL;
}

int cli_edit_option(int argc, char **argv, int *i, cli_edit *e, int *missing)
{
    const char *v;
    if ((v = cli_option_value(argc, argv, i, "-s", "--set", missing)))
        e->unset = 0;
    else if (!*missing &&
             (v = cli_option_value(argc, argv, i, "-u", "--unset", missing)))
        e->unset = 1;
    else
        return 0;
    e->text = v;
    return 1;
}

int cli_apply_edits(nde_config *cfg, const cli_edit *e, size_t n,
                    nde_ctx *ctx)
{
    int rc = NDE_OK;
    for (size_t i = 0; i < n && rc == NDE_OK; i++)
        rc = e[i].unset ? nde_config_unset(cfg, e[i].text, ctx)
                        : nde_config_override(cfg, e[i].text, ctx);
    return rc;
}

void cli_json_double(FILE *out, double x)
{
    if (isfinite(x))
        fprintf(out, "%.17g", x);
    else
        fputs("null", out);
}

void cli_write_state_names(FILE *fp, const char *const *names, size_t dim)
{
    for (size_t j = 0; j < dim; j++) {
        if (names)
            fprintf(fp, ",%s", names[j]);
        else
            fprintf(fp, ",y%zu", j);
    }
    fputc('\n', fp);
}

int cli_write_solution_csv(const char *path, const char *const *names,
                           size_t dim, const double *tsave, size_t nsave,
                           size_t batch, const double *ysave)
{
    cli_outfile o;
    size_t b, k, j;
    int batched = batch > 1;

    if (cli_outfile_open(&o, path) != 0)
        return -1;
    fputs(batched ? "batch,t" : "t", o.fp);
    cli_write_state_names(o.fp, names, dim);
    for (b = 0; b < batch; b++) {
        for (k = 0; k < nsave; k++) {
            const double *y = ysave + (k * batch + b) * dim;
            if (batched)
                fprintf(o.fp, "%zu,", b);
            fprintf(o.fp, "%.17g", tsave[k]);
            for (j = 0; j < dim; j++)
                fprintf(o.fp, ",%.17g", y[j]);
            fputc('\n', o.fp);
        }
    }
    return cli_outfile_commit(&o);
}

int cli_trainer_load(nde_ctx *ctx, nde_config *cfg, const char *ckpt,
                     size_t min_batch, nde_trainer **tr)
{
    char *text = NULL;
    int rc;

    *tr = NULL;
    if ((rc = nde_checkpoint_read_config(ckpt, &text, ctx)) == NDE_OK &&
        (rc = nde_config_load_string(cfg, ckpt, text, ctx)) == NDE_OK &&
        (rc = nde_trainer_create(ctx, cfg, min_batch, tr)) == NDE_OK)
        rc = nde_trainer_checkpoint_load(*tr, ckpt, NDE_CHECKPOINT_PARAMS);
    free(text);
    return rc;
}
