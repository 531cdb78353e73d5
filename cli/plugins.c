/*
 * plugins.c - `nde plugins`: every plugin found in the search path,
 * grouped by kind, with its description, module, version, the copies it
 * shadows and its config keys; and the warning a run gives when one of
 * its plugins shadows another.
 */
#include <string.h>

#include "cli.h"

const char cli_plugins_help[] =
    "Usage: nde plugins [KIND]\n"
    "\n"
    "List the plugins found in the search path (the build tree, each\n"
    "directory of $NDE_PLUGIN_PATH, then the installed plugin directory),\n"
    "grouped by kind (field, solver, adjoint, regularizer, task), each with\n"
    "its description, the module it came from and its version, the modules of\n"
    "the search path that register the same name and kind (\"shadows:\",\n"
    "never used: the first in search order wins), what it provides (solvers,\n"
    "fields) and what it needs of the solver and the forward solve\n"
    "(adjoints, regularizers), and its config keys: name, type, default (or\n"
    "\"required\") and help. With KIND, list only that kind. Modules that\n"
    "cannot be loaded are reported on stderr.\n"
    "\n"
    "A run (solve, train, predict) warns on stderr about each plugin it uses\n"
    "that shadows another, or is shadowed, in a $NDE_PLUGIN_PATH directory.\n";

typedef struct list_state {
    nde_ctx *ctx;
    nde_kind kind;       /* list plugins of this kind            */
    size_t count;        /* how many were listed                 */
    int report_broken;   /* report modules that fail to load     */
} list_state;

static void print_keys(const nde_key *keys, const char *indent)
{
    const nde_key *k;

    if (!keys || !keys->name) {
        printf("%s(no keys besides plugin)\n", indent);
        return;
    }
    for (k = keys; k->name; k++) {
        const char *def = !k->def ? "required" : *k->def ? k->def : "(unset)";
        printf("%s%-12s %-15s %-10s %s\n", indent, k->name,
               nde_key_type_name(k->type), def, k->help ? k->help : "");
    }
}

/* "label: a, b, ..." for the bits set in `bits`, named by name(). */
static void print_bits(const char *label, unsigned bits,
                       const char *(*name)(unsigned))
{
    const char *sep = "";
    unsigned b;

    if (!bits)
        return;
    printf("      %s: ", label);
    for (b = 1; b; b <<= 1)
        if ((bits & b) && name(b)) {
            printf("%s%s", sep, name(b));
            sep = ", ";
        }
    printf("\n");
}

static int print_shadowed(const nde_plugin_info *info, const char *path,
                          const nde_plugin_info *shadowed,
                          const char *shadowed_path, void *user)
{
    (void)info;
    (void)path;
    (void)user;
    printf("      shadows: %s (version %s)\n", shadowed_path,
           shadowed->version);
    return 0;
}

static int visit(const nde_plugin_info *info, const char *path, void *user)
{
    list_state *st = user;

    if (info->kind != st->kind)
        return 0;
    st->count++;
    printf("  %s - %s\n", info->name, info->description);
    printf("      module: %s (version %s)\n", path ? path : "(built in)",
           info->version);
    nde_plugin_shadowed(st->ctx, info, print_shadowed, NULL);
    if (info->kind == NDE_KIND_SOLVER) {
        /* info is the first member of the solver's descriptor */
        const nde_solver_type *type = (const nde_solver_type *)info;
        if (type->info.provides & (NDE_CAP_SDE_ITO | NDE_CAP_SDE_STRATONOVICH))
            /* SDE solvers declare twice their strong order (solver.h) */
            printf("      strong order %g", 0.5 * type->order);
        else
            printf("      order %d", type->order);
        if (type->error_order)
            printf(", error estimate of order %d", type->error_order);
        if (type->dense_order)
            printf(", dense output of order %d", type->dense_order);
        printf("\n");
    }
    print_bits("provides", info->provides, nde_capability_name);
    print_bits("needs", info->needs, nde_need_name);
    print_keys(info->keys, "      ");
    return 0;
}

static void broken(const char *path, const char *reason, void *user)
{
    const list_state *st = user;
    if (!st->report_broken)
        return;
    /* The registry's reasons usually start with the path already. */
    if (strncmp(reason, path, strlen(path)) == 0)
        cli_error("warning: cannot load %s", reason);
    else
        cli_error("warning: cannot load %s: %s", path, reason);
}

int cli_plugins(int argc, char **argv)
{
    static const nde_kind kinds[NDE_KIND_COUNT] = {
        NDE_KIND_FIELD, NDE_KIND_SOLVER, NDE_KIND_ADJOINT,
        NDE_KIND_REGULARIZER, NDE_KIND_TASK};
    const char *only = NULL;
    nde_ctx *ctx;
    size_t i;
    int rc, first = 1, code = CLI_EXIT_OK;

    if (argc >= 2 && cli_is_help(argv[1])) {
        fputs(cli_plugins_help, stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        cli_error("plugins: unexpected argument '%s' (usage: nde plugins "
                  "[KIND])", argv[argc > 2 ? 2 : 1]);
        return CLI_EXIT_USAGE;
    }
    if (argc == 2) {
        only = argv[1];
        for (i = 0; i < NDE_KIND_COUNT; i++)
            if (strcmp(only, nde_kind_name(kinds[i])) == 0)
                break;
        if (i == NDE_KIND_COUNT) {
            const char *names[NDE_KIND_COUNT + 1], *guess;
            for (i = 0; i < NDE_KIND_COUNT; i++)
                names[i] = nde_kind_name(kinds[i]);
            names[NDE_KIND_COUNT] = NULL;
            guess = nde_suggest(only, names);
            cli_error("plugins: unknown kind '%s'%s%s%s (kinds: field, "
                      "solver, adjoint, regularizer, task)", only,
                      guess ? "; did you mean '" : "", guess ? guess : "",
                      guess ? "'?" : "");
            return CLI_EXIT_USAGE;
        }
    }
    if (!(ctx = nde_ctx_create())) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    printf("Plugin search path: %s\n", nde_plugin_search_path(ctx));
    /* One pass per kind keeps the listing grouped; broken modules are
     * reported in the first pass only. */
    for (i = 0; i < NDE_KIND_COUNT; i++) {
        list_state st = {ctx, kinds[i], 0, first};
        const char *name = nde_kind_name(kinds[i]);

        if (only && strcmp(only, name) != 0)
            continue;
        printf("\n%s plugins:\n", name);
        rc = nde_plugin_foreach(ctx, visit, broken, &st);
        first = 0;
        if (rc != NDE_OK) {
            code = cli_fail(ctx, rc);
            break;
        }
        if (st.count == 0)
            printf("  (none found)\n");
        if (kinds[i] == NDE_KIND_FIELD) {
            printf("  Keys every field section accepts (read by core):\n");
            print_keys(nde_field_keys, "      ");
        }
        if (kinds[i] == NDE_KIND_SOLVER) {
            printf("  Keys every solver section accepts (the solve loop):\n");
            print_keys(nde_solve_keys, "      ");
        }
    }
    if (code == CLI_EXIT_OK && !only) {
        printf("\n[problem] keys:\n");
        print_keys(nde_problem_keys, "      ");
    }
    if (fflush(stdout) != 0 && code == CLI_EXIT_OK) {
        cli_error("writing to standard output failed");
        code = CLI_EXIT_FAILURE;
    }
    nde_ctx_destroy(ctx);
    return code;
}

static int warn_shadowing(const nde_plugin_info *info, const char *path,
                          const nde_plugin_info *shadowed,
                          const char *shadowed_path, void *user)
{
    (void)user;
    cli_error("warning: %s '%s' from %s (version %s) shadows the one in %s "
              "(version %s), which is not used", nde_kind_name(info->kind),
              info->name, path, info->version, shadowed_path,
              shadowed->version);
    return 0;
}

void cli_warn_shadowing(nde_ctx *ctx)
{
    nde_plugin_used_shadowing(ctx, warn_shadowing, NULL);
}
