/*
 * nde.c - the `nde` program: command dispatch, --help and --version.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ab/ab.h"
#include "cli.h"
#include "comm.h"

static const char main_help[] =
    "Usage: nde COMMAND [ARGS]...\n"
    "       nde --help | --version\n"
    "\n"
    "Neural differential equations from plugins combined by an INI config.\n"
    "\n"
    "Commands:\n"
    "  solve CONFIG      solve the problem of CONFIG and write the solution as CSV\n"
    "  train CONFIG      train the model of CONFIG (metrics, checkpoints)\n"
    "  predict CKPT      predict with a trained checkpoint, write CSV\n"
    "  params CKPT       print every parameter of a checkpoint by name\n"
    "  gradcheck CONFIG  compare the adjoint's gradient with discrete and\n"
    "                    finite differences on one mini-batch\n"
    "  ab CONFIG         A/B test config variations over seeds (runs\n"
    "                    `nde train` per arm and seed, compares with a\n"
    "                    baseline; --sweep picks a weight over a log range)\n"
    "  plugins           list the plugins found, with their config keys\n"
    "  check KIND NAME   run the conformance checks of a field, regularizer\n"
    "                    or solver plugin (for plugin authors)\n"
    "  graph CKPT        print the causal graph a trained ngm field learned\n"
    "                    (CSV, dot; AUROC and SHD against a true graph)\n"
    "\n"
    "Run `nde COMMAND --help` for the options of a command.\n"
    "\n"
    "Exit status: 0 success, 1 the computation or an output failed,\n"
    "2 bad usage or a bad config.\n"
    "\n"
    "Environment:\n"
    "  NDE_PLUGIN_PATH  colon-separated directories searched for plugins\n"
    "                   (after the build tree, before the installed ones)\n"
    "  OPENBLAS_NUM_THREADS  OpenBLAS's threads (for layers wider than an\n"
    "                   mlp's thin_width); under an address-space limit\n"
    "                   (ulimit -v or -d) nde sets it to 1\n"
    "  NDE_MPI=off      under an MPI launcher (mpirun), do not load MPI: each\n"
    "                   rank runs alone (train and ab share their work\n"
    "                   between the ranks otherwise)\n";

/*
 * OpenBLAS starts its worker threads when it is loaded, before main, and a
 * worker whose 128 MiB work buffer cannot be allocated retries forever;
 * exit then waits for it (`ulimit -v 100000; nde --version` never
 * returned). That allocation fails only under a limit on the address space
 * (without one, Linux overcommits). Then nde runs again with OpenBLAS on
 * one thread: the environment must say so before OpenBLAS is loaded, and
 * exec ends the stuck workers without waiting for them. (Setting it from
 * .preinit_array does not work: libc's initialiser resets environ after.)
 * The mlp field reserves that one thread's buffer when it is created
 * (plugins/fields/mlp.c), so a run fails with a message instead of hanging.
 */
static void limit_blas_threads(char **argv)
{
    const char *threads = getenv("OPENBLAS_NUM_THREADS");
    struct rlimit as, data;

    if (threads && strcmp(threads, "1") == 0)
        return;
    if ((getrlimit(RLIMIT_AS, &as) != 0 || as.rlim_cur == RLIM_INFINITY) &&
        (getrlimit(RLIMIT_DATA, &data) != 0 || data.rlim_cur == RLIM_INFINITY))
        return;
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0)
        execv("/proc/self/exe", argv);
    cli_error("warning: cannot restart with OpenBLAS on one thread under "
              "this address-space limit (%m); a failed OpenBLAS allocation "
              "may hang");
}

typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
} cli_command;

static const cli_command commands[] = {
    {"solve", cli_solve},
    {"train", cli_train},
    {"predict", cli_predict},
    {"params", cli_params},
    {"gradcheck", cli_gradcheck},
    {"plugins", cli_plugins},
    {"ab", cli_ab},
    {"check", cli_check},
    {"graph", cli_graph},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("nde: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_fail(nde_ctx *ctx, int status)
{
    const char *msg = ctx ? nde_ctx_message(ctx) : "";
    cli_error("%s", msg && *msg ? msg : nde_status_string(status));
    return nde_status_is_usage(status) ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
}

int cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int main(int argc, char **argv)
{
    const char *names[NCOMMANDS + 1];
    const char *guess;
    size_t i;

    limit_blas_threads(argv);
    if (argc < 2) {
        fputs(main_help, stderr);
        return CLI_EXIT_USAGE;
    }
    if (cli_is_help(argv[1])) {
        fputs(main_help, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("nde %s (ABI %d)\n", nde_version(), NDE_ABI_VERSION);
        return CLI_EXIT_OK;
    }
    for (i = 0; i < NCOMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            int code;
            /* the commands that share their work between MPI ranks */
            if ((strcmp(argv[1], "train") == 0 ||
                 strcmp(argv[1], "ab") == 0) &&
                (code = cli_comm_start(&argc, &argv, argv[1])) != 0)
                return code;
            return cli_comm_end(commands[i].run(argc - 1, argv + 1));
        }

    for (i = 0; i < NCOMMANDS; i++)
        names[i] = commands[i].name;
    names[NCOMMANDS] = NULL;
    if (argv[1][0] == '-')
        cli_error("unknown option '%s' (try `nde --help`)", argv[1]);
    else if ((guess = nde_suggest(argv[1], names)))
        cli_error("unknown command '%s'; did you mean '%s'? "
                  "(try `nde --help`)", argv[1], guess);
    else
        cli_error("unknown command '%s' (try `nde --help` for the list)",
                  argv[1]);
    return CLI_EXIT_USAGE;
}
