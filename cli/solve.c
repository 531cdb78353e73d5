/*
 * solve.c - `nde solve CONFIG`: compose field, solver and problem from a
 * config, solve, and write the solution at the save times as CSV.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cli_solve_help[] =
    "Usage: nde solve CONFIG [-s SECTION.KEY=VALUE]... [-u SECTION.KEY]...\n"
    "                 [-o FILE] [--stats-json FILE] [--seed S]\n"
    "\n"
    "Solve the initial value problem of CONFIG: the vector field [field],\n"
    "the solver [solver] and the problem [problem] (t0, t1, y0, saveat or\n"
    "nsave, tstops). Writes the solution at the save times as CSV: a header\n"
    "`t,<state names>` (y0,y1,... when the field does not name its states)\n"
    "and one row per save time; when y0 has several rows (a batch), a\n"
    "leading `batch` column numbers them from 0, rows grouped by batch row.\n"
    "Numbers are printed with 17 significant digits (they read back exactly).\n"
    "Parameters the config does not set are drawn from the `seed` key of\n"
    "[field] when its plugin has one (mlp), else from seed 1.\n"
    "With an SDE solver (euler_maruyama, reversible_heun) the solve follows\n"
    "one Brownian path per batch row, drawn from --seed (default 1) on the\n"
    "solver's step grid: the same seed gives the same paths.\n"
    "With `event = EXPRESSION` in [problem] (and `direction = rising |\n"
    "falling | both`) each batch row stops at the first root of the\n"
    "expression of t and the states, found on the dense output (adaptive\n"
    "ODE solvers with dense output only); save times after a row's event\n"
    "hold its state at the event. Each row's event time is printed on\n"
    "stderr (`nde: event row R: t = T`, or `did not fire` when the row ran\n"
    "to t1) and written to --stats-json as \"event_t\" (null: not fired).\n"
    "\n"
    "Options:\n"
    "  -s, --set SECTION.KEY=VALUE  override a config value (-s and -u in the\n"
    "                               order given; creates the section if\n"
    "                               absent; `field.expert.b=2` sets b in\n"
    "                               [field.expert]); `-s SECTION=` empties a\n"
    "                               section (`-s field.expert.=` a\n"
    "                               sub-section), e.g. -s field= -s\n"
    "                               field.plugin=linear replaces [field]\n"
    "  -u, --unset SECTION.KEY      remove a key, so its default applies (an\n"
    "                               error when the key is not there)\n"
    "  -o, --output FILE            write the CSV to FILE (default: stdout)\n"
    "      --stats-json FILE        write the solver statistics as JSON, also\n"
    "                               when the solve fails\n"
    "      --seed S                 the Brownian path of an SDE solve\n"
    "  -h, --help                   show this help\n"
    "\n"
    "The statistics (evaluations, accepted and rejected steps, status) are\n"
    "printed on stderr. Output files are written to a temporary name and\n"
    "renamed, so a failed run leaves no partial file; a symlink's target is\n"
    "replaced (the link is kept), a device, FIFO or socket is written\n"
    "through. An output that cannot be written, or that is the config or\n"
    "the other output, is refused before the solve.\n"
    "Exit status: 0 success, 1 the solve or an output failed, 2 bad usage,\n"
    "a bad config or a refused output.\n";

typedef struct solve_args {
    const char *config;
    cli_edit *edits;        /* -s and -u, in order */
    size_t nedits;
    const char *output;
    const char *stats_json;
    uint64_t seed;          /* Brownian path of an SDE solve */
} solve_args;

static int parse_args(int argc, char **argv, solve_args *args)
{
    int i, missing;
    const char *v;
    char *end;

    memset(args, 0, sizeof *args);
    args->seed = 1;
    if (!(args->edits = calloc((size_t)argc, sizeof *args->edits))) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_edit_option(argc, argv, &i, &args->edits[args->nedits],
                            &missing))
            args->nedits++;
        else if (!missing && (v = cli_option_value(argc, argv, &i, "-o",
                                                   "--output", &missing)))
            args->output = v;
        else if (!missing &&
                 (v = cli_option_value(argc, argv, &i, NULL,
                                       "--stats-json", &missing)))
            args->stats_json = v;
        else if (!missing && (v = cli_option_value(argc, argv, &i, NULL,
                                                   "--seed", &missing))) {
            errno = 0;
            args->seed = strtoull(v, &end, 10);
            if (*end || end == v || v[0] == '-' || errno == ERANGE) {
                cli_error("solve: --seed needs a non-negative integer, not "
                          "'%s'", v);
                return CLI_EXIT_USAGE;
            }
        } else if (missing) {
            cli_error("solve: option '%s' needs a value (try `nde solve "
                      "--help`)", a);
            return CLI_EXIT_USAGE;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("solve: unknown option '%s' (try `nde solve --help`)",
                      a);
            return CLI_EXIT_USAGE;
        } else if (args->config) {
            cli_error("solve: more than one config file ('%s', '%s')",
                      args->config, a);
            return CLI_EXIT_USAGE;
        } else
            args->config = a;
    }
    if (!args->config) {
        cli_error("solve: no config file given (usage: nde solve CONFIG "
                  "[-s SECTION.KEY=VALUE]... [-o FILE])");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static void write_stats_text(const nde_stats *st, FILE *out)
{
    fprintf(out,
            "nde: nfe %ld, steps accepted %ld, rejected %ld (retries %ld), "
            "status %s\n",
            st->nfe, st->steps_accepted, st->steps_rejected, st->retries,
            nde_status_name(st->status));
}

/* One line per row: the event time or that it did not fire. */
static void write_events_text(const double *event_t, size_t batch, FILE *out)
{
    for (size_t r = 0; r < batch; r++)
        if (isnan(event_t[r]))
            fprintf(out, "nde: event row %zu: did not fire\n", r);
        else
            fprintf(out, "nde: event row %zu: t = %.17g\n", r, event_t[r]);
}

/* event_t (NULL: no event) per row, null where it did not fire. */
static int write_stats_json(const nde_stats *st, const double *event_t,
                            size_t batch, const char *path)
{
    cli_outfile o;

    if (cli_outfile_open(&o, path) != 0)
        return -1;
    fprintf(o.fp,
            "{\"nfe\": %ld, \"nfe_backward\": %ld, \"steps_accepted\": %ld, "
            "\"steps_rejected\": %ld, \"retries\": %ld, \"h_min\": ",
            st->nfe, st->nfe_backward, st->steps_accepted, st->steps_rejected,
            st->retries);
    cli_json_double(o.fp, st->steps_accepted > 0 ? st->h_min : NAN);
    fputs(", \"h_max\": ", o.fp);
    cli_json_double(o.fp, st->steps_accepted > 0 ? st->h_max : NAN);
    fprintf(o.fp, ", \"status\": \"%s\", \"status_code\": %d",
            nde_status_name(st->status), st->status);
    if (event_t) {
        fputs(", \"event_t\": [", o.fp);
        for (size_t r = 0; r < batch; r++) {
            fputs(r ? ", " : "", o.fp);
            cli_json_double(o.fp, event_t[r]);
        }
        fputc(']', o.fp);
    }
    fputs("}\n", o.fp);
    return cli_outfile_commit(&o);
}

int cli_solve(int argc, char **argv)
{
    solve_args args;
    nde_ctx *ctx = NULL;
    nde_config *cfg = NULL;
    nde_run *run = NULL;
    const nde_problem *p;
    const nde_field *f;
    const double *event_t;
    double *ysave = NULL;
    nde_stats stats;
    int i, rc, code;

    for (i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            fputs(cli_solve_help, stdout);
            return CLI_EXIT_OK;
        }
    if ((code = parse_args(argc, argv, &args)) != CLI_EXIT_OK)
        goto done;
    {
        const cli_file files[] = {{"the config", args.config, 0, 0},
                                  {"-o", args.output, 1, 0},
                                  {"--stats-json", args.stats_json, 1, 0}};
        if (cli_files_check(files, sizeof files / sizeof *files) != 0) {
            code = CLI_EXIT_USAGE;
            goto done;
        }
    }
    if (!(ctx = nde_ctx_create()) || !(cfg = nde_config_create())) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((rc = nde_config_load_file(cfg, args.config, ctx)) != NDE_OK) {
        /* An unreadable CONFIG argument is a usage error too. */
        cli_fail(ctx, rc);
        code = CLI_EXIT_USAGE;
        goto done;
    }
    /* The config layer refuses unknown section names (at load and in
     * overrides); known sections that solve does not read, such as
     * [train], are left alone so one config serves every command. */
    if ((rc = cli_apply_edits(cfg, args.edits, args.nedits, ctx)) !=
            NDE_OK ||
        (rc = nde_run_create(ctx, cfg, &run)) != NDE_OK) {
        code = cli_fail(ctx, rc);
        goto done;
    }
    cli_warn_shadowing(ctx);
    p = nde_run_problem(run);
    f = nde_run_field(run);
    if (!(ysave = calloc(p->nsave * p->batch * f->dim + 1, sizeof *ysave))) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    rc = nde_run_solve(run, args.seed, ysave, &stats);
    write_stats_text(&stats, stderr);
    event_t = rc == NDE_OK ? nde_run_event_times(run) : NULL;
    if (event_t)
        write_events_text(event_t, p->batch, stderr);
    code = CLI_EXIT_OK;
    if (args.stats_json &&
        write_stats_json(&stats, event_t, p->batch, args.stats_json) != 0)
        code = CLI_EXIT_FAILURE;
    if (rc != NDE_OK) {
        nde_error_prefix(ctx, "solve failed");
        code = cli_fail(ctx, rc);
    } else if (code == CLI_EXIT_OK &&
               cli_write_solution_csv(args.output, f->state_names, f->dim,
                                      p->tsave, p->nsave, p->batch,
                                      ysave) != 0)
        code = CLI_EXIT_FAILURE;
done:
    free(args.edits);
    free(ysave);
    nde_run_destroy(run);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    return code;
}
