/*
 * check.c - `nde check KIND NAME`: load a plugin by name as a run does,
 * give it its keys (defaults, -c FILE, -s/-u) and run the conformance
 * suite of its kind (check_field.c, check_regularizer.c, check_solver.c,
 * check_task.c).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define CHECK_SEED 1

const char cli_check_help[] =
    "Usage: nde check KIND NAME [-c FILE] [-s SECTION.KEY=VALUE]...\n"
    "                 [-u SECTION.KEY]... [--seed S]\n"
    "\n"
    "Run the conformance suite of kind KIND (field, regularizer, solver,\n"
    "task) on the plugin NAME, found by name as a run finds it (the build\n"
    "tree, $NDE_PLUGIN_PATH, the installed plugins), and print one line per\n"
    "check: its name, the measured error, the tolerance and PASS or FAIL.\n"
    "\n"
    "  field        at random states, times and parameters over a batch:\n"
    "               the VJP (v^T df/dy, v^T df/dtheta) against central\n"
    "               differences of eval, into outputs that start non-zero\n"
    "               (a VJP must add, not assign); the diffusion's VJP when\n"
    "               the field has noise; NULL outputs; rows independent\n"
    "               (a row of a batch equals a batch of that row alone);\n"
    "               determinism; inputs left unchanged\n"
    "  regularizer  its gradient (direct plus the cotangents it hands the\n"
    "               adjoint, through the `discrete` adjoint) against central\n"
    "               differences of its value, on a 2-8-2 mlp field solved\n"
    "               by tsit5 with a fixed step; its random draws come from\n"
    "               one seed, and the states it reads are held constant when\n"
    "               it hands the adjoint no cotangent (said in the output)\n"
    "  solver       observed order of convergence against the declared one\n"
    "               (ODE: fixed steps on expr problems with a known solution;\n"
    "               SDE: strong order on geometric Brownian motion), dense\n"
    "               output at both ends of a step, the step VJP against\n"
    "               central differences\n"
    "  task         created as `nde train` creates it (3 rows, the model's\n"
    "               [field], by default a 2-8-2 tanh mlp; nothing is\n"
    "               solved): the sizes it declares, its batches within\n"
    "               them, determinism (a second instance, the same bits); at\n"
    "               random saved states, the loss cotangents handed to the\n"
    "               adjoint (dL/dy at the fitted saves, dL/dtheta) against\n"
    "               central differences of loss(readout), the readout and\n"
    "               lift VJPs into outputs that start non-zero\n"
    "\n"
    "The plugin's keys are those of the section a run reads: [field],\n"
    "[solver] or [regularizer.NAME] (weight = 1 unless given), with their\n"
    "defaults; the section's `plugin` is NAME. A task's are [data]'s, whose\n"
    "source is NAME (or spiral, field, csv, idx for the shipped tasks), and\n"
    "it may read the config's other sections, e.g. [solver] or [field.NAME]:\n"
    "  nde check task series -s data.path=series.csv\n"
    "  nde check task moments -c examples/sde_ou.ini -s data.paths=100\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE            read the plugin's section from FILE (a\n"
    "                               run's config will do; other sections are\n"
    "                               ignored, but a task may read them)\n"
    "  -s, --set SECTION.KEY=VALUE  set a key, e.g. -s field.layers=2,16,2\n"
    "  -u, --unset SECTION.KEY      remove a key of FILE, so its default\n"
    "                               applies\n"
    "      --seed S                 the seed of the random points and draws\n"
    "                               (default 1)\n"
    "  -h, --help                   show this help\n"
    "\n"
    "Exit status: 0 every check passed, 1 a check failed, 2 bad usage (an\n"
    "unknown kind, no such plugin, bad keys).\n";

typedef struct check_args {
    const char *kind, *name, *config;
    cli_edit *edits;
    size_t nedits;
    uint64_t seed;
} check_args;

static const char *const check_kinds[] = {"field", "regularizer", "solver",
                                          "task", NULL};

static int parse_args(int argc, char **argv, check_args *a)
{
    int i, missing;
    const char *v;
    char *end;

    memset(a, 0, sizeof *a);
    a->seed = CHECK_SEED;
    if (!(a->edits = calloc((size_t)argc, sizeof *a->edits))) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (cli_edit_option(argc, argv, &i, &a->edits[a->nedits], &missing))
            a->nedits++;
        else if (!missing && (v = cli_option_value(argc, argv, &i, "-c",
                                                   "--config", &missing)))
            a->config = v;
        else if (!missing && (v = cli_option_value(argc, argv, &i, NULL,
                                                   "--seed", &missing))) {
            errno = 0;
            a->seed = strtoull(v, &end, 10);
            if (*end || end == v || v[0] == '-' || errno == ERANGE) {
                cli_error("check: --seed needs a non-negative integer, not "
                          "'%s'", v);
                return CLI_EXIT_USAGE;
            }
        } else if (missing) {
            cli_error("check: option '%s' needs a value (try `nde check "
                      "--help`)", arg);
            return CLI_EXIT_USAGE;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            cli_error("check: unknown option '%s' (try `nde check --help`)",
                      arg);
            return CLI_EXIT_USAGE;
        } else if (!a->kind)
            a->kind = arg;
        else if (!a->name)
            a->name = arg;
        else {
            cli_error("check: unexpected argument '%s' (usage: nde check "
                      "KIND NAME [options])", arg);
            return CLI_EXIT_USAGE;
        }
    }
    if (!a->name) {
        cli_error("check: a kind and a plugin name are needed (usage: nde "
                  "check KIND NAME; kinds: field, regularizer, solver, "
                  "task)");
        return CLI_EXIT_USAGE;
    }
    for (i = 0; check_kinds[i]; i++)
        if (strcmp(a->kind, check_kinds[i]) == 0)
            return CLI_EXIT_OK;
    if (strcmp(a->kind, "adjoint") == 0)
        cli_error("check: no conformance suite for adjoint plugins yet "
                  "(kinds: field, regularizer, solver, task)");
    else if ((v = nde_suggest(a->kind, check_kinds)))
        cli_error("check: unknown kind '%s'; did you mean '%s'?", a->kind, v);
    else
        cli_error("check: unknown kind '%s' (kinds: field, regularizer, "
                  "solver, task)", a->kind);
    return CLI_EXIT_USAGE;
}

/* Set key = value in cfg's section unless the section has the key; the
 * origin in messages is "nde check". */
static int set_default(nde_config *cfg, const char *section, const char *key,
                       const char *value, nde_ctx *ctx)
{
    char text[256];
    nde_section *sec = nde_config_section(cfg, section);

    if (sec && nde_section_has(sec, key))
        return NDE_OK;
    snprintf(text, sizeof text, "[%s]\n%s = %s\n", section, key, value);
    return nde_config_load_string(cfg, "nde check", text, ctx);
}

/* The plugin's section: `plugin` is NAME (a FILE naming another plugin
 * there is refused: its keys would be that plugin's). */
static int prepare_section(nde_config *cfg, const check_args *a,
                           const char *section, nde_ctx *ctx)
{
    nde_section *sec = nde_config_section(cfg, section);
    const char *plugin;
    int rc;

    if (!nde_plugin_name_valid(a->name))
        return nde_error(ctx, NDE_EPLUGIN,
                         "check: '%s' is not a plugin name ([a-z0-9_]+)",
                         a->name);
    if (strcmp(a->kind, "task") == 0)
        return NDE_OK; /* [data] names it by source (check_task) */
    if (sec && nde_section_has(sec, "plugin")) {
        if ((rc = nde_get_string(sec, "plugin", &plugin, ctx)) != NDE_OK)
            return rc;
        if (strcmp(plugin, a->name) != 0)
            return nde_error(ctx, NDE_ECONFIG,
                             "%s: [%s] is for plugin '%s', not '%s'",
                             nde_section_origin(sec, "plugin"), section,
                             plugin, a->name);
    }
    if ((rc = set_default(cfg, section, "plugin", a->name, ctx)) != NDE_OK)
        return rc;
    if (strcmp(a->kind, "regularizer") == 0)
        rc = set_default(cfg, section, "weight", "1", ctx);
    return rc;
}

static int run_check(const check_args *a, nde_ctx *ctx, check_report *r)
{
    nde_config *cfg = nde_config_create();
    char section[128];
    int rc;

    if (!cfg)
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if (strcmp(a->kind, "regularizer") == 0)
        snprintf(section, sizeof section, "regularizer.%s", a->name);
    else
        snprintf(section, sizeof section, "%s", a->kind);
    rc = NDE_OK;
    if (a->config && (rc = nde_config_load_file(cfg, a->config, ctx)) != NDE_OK)
        rc = rc == NDE_EIO ? NDE_EINVAL : rc; /* a bad argument: usage */
    if (rc == NDE_OK &&
        (rc = cli_apply_edits(cfg, a->edits, a->nedits, ctx)) == NDE_OK &&
        (rc = prepare_section(cfg, a, section, ctx)) == NDE_OK) {
        r->title = a->kind;
        r->name = a->name;
        if (strcmp(a->kind, "field") == 0)
            rc = check_field(ctx, cfg, a->seed, r);
        else if (strcmp(a->kind, "regularizer") == 0)
            rc = check_regularizer(ctx, cfg, section, a->seed, r);
        else if (strcmp(a->kind, "task") == 0)
            rc = check_task(ctx, cfg, a->name, a->seed, r);
        else
            rc = check_solver(ctx, cfg, a->seed, r);
    }
    nde_config_destroy(cfg);
    return rc;
}

int cli_check(int argc, char **argv)
{
    check_args a;
    check_report r = {0};
    nde_ctx *ctx = NULL;
    int i, rc, code;

    for (i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            fputs(cli_check_help, stdout);
            return CLI_EXIT_OK;
        }
    if ((code = parse_args(argc, argv, &a)) != CLI_EXIT_OK)
        goto done;
    if (!(ctx = nde_ctx_create())) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((rc = run_check(&a, ctx, &r)) != NDE_OK) {
        fflush(stdout);
        code = cli_fail(ctx, rc);
        goto done;
    }
    cli_warn_shadowing(ctx);
    printf("%d checks, %d failed\n", r.checks, r.failed);
    code = r.failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
done:
    free(a.edits);
    nde_ctx_destroy(ctx);
    return code;
}

/* ---- what the suites share --------------------------------------------- */

/* The title and column names, before a suite's first line (so nothing is
 * printed when the plugin cannot be composed). */
static void header(check_report *r)
{
    if (r->printed)
        return;
    r->printed = 1;
    printf("nde check %s %s\n", r->title, r->name);
    if (r->module)
        printf("# module %s, version %s\n", r->module, r->version);
    printf("%-46s %10s %10s  %s\n", "check", "error", "tolerance", "result");
}

void check_plugin(check_report *r, nde_ctx *ctx, const nde_plugin_info *info)
{
    r->module = nde_plugin_path(ctx, info);
    r->version = info->version ? info->version : "?";
}

void check_line(check_report *r, const char *name, double err, double tol)
{
    int pass = err <= tol;
    header(r);
    r->checks++;
    r->failed += !pass;
    printf("%-46s %10.3e %10.3e  %s\n", name, err, tol,
           pass ? "PASS" : "FAIL");
}

void check_cannot(check_report *r, const char *name, nde_ctx *ctx, int rc)
{
    const char *msg = nde_ctx_message(ctx);
    header(r);
    r->checks++;
    r->failed++;
    printf("%-46s %10s %10s  FAIL (%s)\n", name, "-", "-",
           msg && *msg ? msg : nde_status_string(rc));
    nde_ctx_clear(ctx);
}

void check_note(check_report *r, const char *fmt, ...)
{
    va_list ap;
    header(r);
    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

double check_uniform(uint64_t *state, double lo, double hi)
{
    *state = nde_seed_derive(*state, 1);
    return lo + (hi - lo) * (double)(*state >> 11) * 0x1p-53;
}

int check_difference(double *x, size_t i, int (*phi)(void *user, double *v),
                     void *user, double *out)
{
    static const double off[4] = {1, -1, 2, -2};
    const double keep = x[i], e = 1e-3 * fmax(1.0, fabs(keep));
    double p[4];
    int rc = NDE_OK;

    for (int k = 0; k < 4 && rc == NDE_OK; k++) {
        x[i] = keep + off[k] * e;
        rc = phi(user, &p[k]);
    }
    x[i] = keep;
    *out = (8.0 * (p[0] - p[1]) - (p[2] - p[3])) / (12.0 * e);
    return rc;
}

double check_rel_error(const double *got, const double *want, size_t n)
{
    double scale = 1.0, err = 0.0;
    size_t i;

    for (i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        err = isnan(d) || d > err ? d : err;
    }
    return err / scale;
}
