/*
 * graph.c - `nde graph CKPT`: the causal graph read off a trained ngm
 * field (plugins/fields/ngm.c). Entry [i][j] of the D x D matrix is the
 * norm of block i's first-layer column j, the weights b<i>.W1[*,j]
 * through which state j drives state i (the groups group_lasso drives to
 * zero). Scores against a true graph: AUROC of the norms as scores over
 * all D x D entries (the diagonal included), and the structural Hamming
 * distance of the thresholded graph (differing directed entries: a
 * reversed edge counts 2).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nde/train.h"

const char cli_graph_help[] =
    "Usage: nde graph CKPT [--threshold X] [--csv FILE] [--dot FILE]\n"
    "                 [--truth FILE]\n"
    "\n"
    "Print the graph a trained ngm field has learned: the D x D matrix whose\n"
    "entry [i][j] is the norm of the first-layer weights b<i>.W1[*,j] of\n"
    "block i (how strongly state j drives state i; exactly 0 for a group\n"
    "group_lasso removed), then the edges j -> i whose norm exceeds the\n"
    "threshold.\n"
    "\n"
    "Options:\n"
    "      --threshold X  an edge where the norm is > X (default 0.01)\n"
    "      --csv FILE     write the norms as CSV (header and first column:\n"
    "                     the state names; row i = the driven state)\n"
    "      --dot FILE     write the thresholded graph as Graphviz dot\n"
    "                     (edges j -> i labelled with the norm)\n"
    "      --truth FILE   a CSV of the true graph: D lines of D values 0 or\n"
    "                     1, [i][j] = 1 when state j drives state i (lines\n"
    "                     starting with # are skipped); prints the AUROC of\n"
    "                     the norms over all D x D entries and the SHD of\n"
    "                     the thresholded graph (differing entries)\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 success, 1 an output failed, 2 bad usage, a checkpoint\n"
    "that is not an ngm field's, or a bad truth file.\n";

typedef struct graph_args {
    const char *ckpt, *csv, *dot, *truth;
    double threshold;
} graph_args;

static int parse(int argc, char **argv, graph_args *a)
{
    memset(a, 0, sizeof *a);
    a->threshold = 0.01;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = cli_option_value(argc, argv, &i, NULL, "--csv", &missing)))
            a->csv = v;
        else if (!missing &&
                 (v = cli_option_value(argc, argv, &i, NULL, "--dot",
                                       &missing)))
            a->dot = v;
        else if (!missing &&
                 (v = cli_option_value(argc, argv, &i, NULL, "--truth",
                                       &missing)))
            a->truth = v;
        else if (!missing &&
                 (v = cli_option_value(argc, argv, &i, NULL, "--threshold",
                                       &missing))) {
            char *end;
            errno = 0;
            a->threshold = strtod(v, &end);
            if (end == v || *end || errno || !(a->threshold >= 0) ||
                !isfinite(a->threshold)) {
                cli_error("graph: --threshold needs a finite number >= 0, "
                          "got '%s'", v);
                return CLI_EXIT_USAGE;
            }
        } else if (missing) {
            cli_error("graph: %s needs a value", argv[i]);
            return CLI_EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("graph: unknown option '%s' (try `nde graph --help`)",
                      argv[i]);
            return CLI_EXIT_USAGE;
        } else if (a->ckpt) {
            cli_error("graph: one checkpoint only (got '%s' and '%s')",
                      a->ckpt, argv[i]);
            return CLI_EXIT_USAGE;
        } else {
            a->ckpt = argv[i];
        }
    }
    if (!a->ckpt) {
        cli_error("graph: missing CKPT (try `nde graph --help`)");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

/* The group norms of an ngm field: adj[i * d + j] = ||b<i>.W1[*,j]||. */
static void group_norms(const nde_field *f, const double *theta, double *adj)
{
    const size_t d = f->dim;
    char name[80];
    memset(adj, 0, d * d * sizeof *adj);
    for (size_t k = 0; k < f->nparams; k++) {
        size_t i, h, j;
        int end = 0;
        nde_field_param_name(f, k, name, sizeof name);
        if (sscanf(name, "b%zu.W1[%zu,%zu]%n", &i, &h, &j, &end) == 3 &&
            end && !name[end] && i < d && j < d)
            adj[i * d + j] += theta[k] * theta[k];
    }
    for (size_t e = 0; e < d * d; e++)
        adj[e] = sqrt(adj[e]);
}

/* The state names, y0.. when the field has none. */
static const char *state_name(const nde_field *f, size_t i, char *buf,
                              size_t len)
{
    if (f->state_names)
        return f->state_names[i];
    snprintf(buf, len, "y%zu", i);
    return buf;
}

/* Read a D x D 0/1 matrix; an exit code (2 with a message naming the
 * file and line). */
static int read_truth(const char *path, size_t d, int *truth)
{
    FILE *fp = fopen(path, "r");
    char line[4096];
    size_t row = 0, lineno = 0;
    int code = CLI_EXIT_OK;

    if (!fp) {
        cli_error("graph: cannot read the truth file %s: %s", path,
                  strerror(errno));
        return CLI_EXIT_USAGE;
    }
    while (code == CLI_EXIT_OK && fgets(line, sizeof line, fp)) {
        char *p = line;
        size_t col = 0;
        lineno++;
        p += strspn(p, " \t\r\n");
        if (!*p || *p == '#')
            continue;
        if (!strchr(line, '\n') && !feof(fp)) {
            cli_error("%s:%zu: line longer than %zu characters", path,
                      lineno, sizeof line - 2);
            code = CLI_EXIT_USAGE;
            break;
        }
        if (row == d) {
            cli_error("%s:%zu: more than %zu rows (the field has %zu "
                      "states)", path, lineno, d, d);
            code = CLI_EXIT_USAGE;
            break;
        }
        for (;;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || (v != 0 && v != 1)) {
                cli_error("%s:%zu: value %zu: expected 0 or 1", path, lineno,
                          col + 1);
                code = CLI_EXIT_USAGE;
                break;
            }
            if (col == d) {
                cli_error("%s:%zu: more than %zu values (the field has %zu "
                          "states)", path, lineno, d, d);
                code = CLI_EXIT_USAGE;
                break;
            }
            truth[row * d + col++] = (int)v;
            p = end + strspn(end, " \t\r\n");
            if (!*p)
                break;
            if (*p != ',') {
                cli_error("%s:%zu: expected ',' after value %zu", path,
                          lineno, col);
                code = CLI_EXIT_USAGE;
                break;
            }
            p++;
        }
        if (code == CLI_EXIT_OK && col != d) {
            cli_error("%s:%zu: %zu values, expected %zu (one per state)",
                      path, lineno, col, d);
            code = CLI_EXIT_USAGE;
        }
        row++;
    }
    if (code == CLI_EXIT_OK && ferror(fp)) {
        cli_error("graph: reading %s: %s", path, strerror(errno));
        code = CLI_EXIT_USAGE;
    }
    if (code == CLI_EXIT_OK && row != d) {
        cli_error("%s: %zu rows, expected %zu (one per state)", path, row, d);
        code = CLI_EXIT_USAGE;
    }
    fclose(fp);
    return code;
}

/* AUROC of scores s against labels y (n entries): the probability that a
 * positive scores above a negative, ties counting 1/2 (Mann-Whitney);
 * NAN without positives or negatives. */
static double auroc(const double *s, const int *y, size_t n)
{
    double wins = 0.0, pairs = 0.0;
    for (size_t p = 0; p < n; p++) {
        if (!y[p])
            continue;
        for (size_t q = 0; q < n; q++) {
            if (y[q])
                continue;
            wins += s[p] > s[q] ? 1.0 : s[p] == s[q] ? 0.5 : 0.0;
            pairs += 1.0;
        }
    }
    return pairs > 0 ? wins / pairs : NAN;
}

static int write_csv(const char *path, const nde_field *f, const double *adj)
{
    const size_t d = f->dim;
    char buf[32];
    cli_outfile o;
    if (cli_outfile_open(&o, path) != 0)
        return -1;
    fputs("drives", o.fp);
    for (size_t j = 0; j < d; j++)
        fprintf(o.fp, ",%s", state_name(f, j, buf, sizeof buf));
    fputc('\n', o.fp);
    for (size_t i = 0; i < d; i++) {
        fputs(state_name(f, i, buf, sizeof buf), o.fp);
        for (size_t j = 0; j < d; j++)
            fprintf(o.fp, ",%.17g", adj[i * d + j]);
        fputc('\n', o.fp);
    }
    return cli_outfile_commit(&o);
}

static int write_dot(const char *path, const nde_field *f, const double *adj,
                     double threshold)
{
    const size_t d = f->dim;
    char bi[32], bj[32];
    cli_outfile o;
    if (cli_outfile_open(&o, path) != 0)
        return -1;
    fprintf(o.fp, "digraph ngm {\n  // edge j -> i: ||b<i>.W1[*,j]|| > "
            "%g\n", threshold);
    for (size_t i = 0; i < d; i++)
        fprintf(o.fp, "  \"%s\";\n", state_name(f, i, bi, sizeof bi));
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            if (adj[i * d + j] > threshold)
                fprintf(o.fp, "  \"%s\" -> \"%s\" [label=\"%.3g\"];\n",
                        state_name(f, j, bj, sizeof bj),
                        state_name(f, i, bi, sizeof bi), adj[i * d + j]);
    fputs("}\n", o.fp);
    return cli_outfile_commit(&o);
}

static void print_matrix(const nde_field *f, const double *adj,
                         double threshold)
{
    const size_t d = f->dim;
    char buf[32];
    size_t nedges = 0;
    printf("# [i][j] = ||b<i>.W1[*,j]||: how strongly state j drives "
           "state i\n%-8s", "");
    for (size_t j = 0; j < d; j++)
        printf(" %10s", state_name(f, j, buf, sizeof buf));
    putchar('\n');
    for (size_t i = 0; i < d; i++) {
        printf("%-8s", state_name(f, i, buf, sizeof buf));
        for (size_t j = 0; j < d; j++)
            printf(" %10.4g", adj[i * d + j]);
        putchar('\n');
    }
    printf("# edges j -> i with norm > %g:", threshold);
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            if (adj[i * d + j] > threshold) {
                char bj[32];
                printf(" %s->%s", state_name(f, j, bj, sizeof bj),
                       state_name(f, i, buf, sizeof buf));
                nedges++;
            }
    printf("\n# %zu edges\n", nedges);
}

int cli_graph(int argc, char **argv)
{
    graph_args a;
    nde_ctx *ctx = NULL;
    nde_config *cfg = NULL;
    nde_trainer *tr = NULL;
    const nde_field *f;
    double *adj = NULL;
    int *truth = NULL, code, rc;

    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            fputs(cli_graph_help, stdout);
            return CLI_EXIT_OK;
        }
    if ((code = parse(argc, argv, &a)) != CLI_EXIT_OK)
        return code;
    {
        const cli_file files[] = {{"the checkpoint", a.ckpt, 0, 0},
                                  {"--truth", a.truth, 0, 0},
                                  {"--csv", a.csv, 1, 0},
                                  {"--dot", a.dot, 1, 0}};
        if (cli_files_check(files, sizeof files / sizeof *files) != 0)
            return CLI_EXIT_USAGE;
    }
    if (!(ctx = nde_ctx_create()) || !(cfg = nde_config_create())) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((rc = cli_trainer_load(ctx, cfg, a.ckpt, 1, &tr)) != NDE_OK) {
        code = cli_fail(ctx, rc);
        goto done;
    }
    f = nde_trainer_field(tr);
    if (strcmp(f->type->info.name, "ngm") != 0) {
        cli_error("graph: %s: its field is '%s', not 'ngm' (the graph is "
                  "read off an ngm field's first-layer column groups)",
                  a.ckpt, f->type->info.name);
        code = CLI_EXIT_USAGE;
        goto done;
    }
    const size_t d = f->dim;
    if (!(adj = calloc(d * d, sizeof *adj)) ||
        !(truth = calloc(d * d, sizeof *truth))) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    if (a.truth && (code = read_truth(a.truth, d, truth)) != CLI_EXIT_OK)
        goto done;
    group_norms(f, nde_trainer_params(tr), adj);
    print_matrix(f, adj, a.threshold);
    if (a.truth) {
        size_t shd = 0;
        for (size_t e = 0; e < d * d; e++)
            shd += (adj[e] > a.threshold) != truth[e];
        printf("auroc %.4f\nshd %zu\n", auroc(adj, truth, d * d), shd);
    }
    fflush(stdout);
    code = CLI_EXIT_OK;
    if ((a.csv && write_csv(a.csv, f, adj) != 0) ||
        (a.dot && write_dot(a.dot, f, adj, a.threshold) != 0))
        code = CLI_EXIT_FAILURE;
done:
    free(adj);
    free(truth);
    nde_trainer_destroy(tr);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    return code;
}
