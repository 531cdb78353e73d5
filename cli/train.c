/*
 * train.c - `nde train`, `nde predict` and `nde gradcheck`: the training
 * loop around the library's trainer (metrics, progress, checkpoints,
 * evaluation, summary), prediction from a checkpoint, and the gradient
 * check of the configured adjoint.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "cli.h"
#include "comm.h"
#include "nde/train.h"

const char cli_train_help[] =
    "Usage: nde train CONFIG [-s SECTION.KEY=VALUE]... [-u SECTION.KEY]...\n"
    "                 [--resume CKPT] [--quiet] [--summary-json FILE]\n"
    "\n"
    "Train the model of CONFIG: the field [field], the solver [solver], the\n"
    "adjoint [adjoint] (default: interpolating), the data [data] and the\n"
    "training settings [train] (the contract is in nde/train.h).\n"
    "[problem] is not used by training; `nde predict` uses it when asked.\n"
    "\n"
    "[data]  source = spiral | field | csv | idx, each a task plugin (nde\n"
    "        plugins task lists their keys), or a task plugin's name.\n"
    "        spiral, field: npoints, t1, batch_time, noise, truth_solver\n"
    "        (field also y0, true_params, system = the true system's\n"
    "        section: [field] or e.g. [field.truth]); csv:\n"
    "        path, test_fraction (a batch is batch_size whole series, each\n"
    "        from its first observation, times shifted to start at 0); idx:\n"
    "        images, labels, test_images, test_labels, limit, test_limit\n"
    "        (classification: linear encoder -> the ODE on [0, 1] -> linear\n"
    "        decoder -> softmax; the ODE state dim, i.e. the field's dim,\n"
    "        is the encoder's width). An SDE field (e.g. expr with g<name>\n"
    "        keys, mlp's SDE form) trains with source = field on the mean\n"
    "        and variance of `paths` sample paths of the true system (from\n"
    "        y0, simulated with the [solver] type on [data] dt, own [data]\n"
    "        seed): every iteration solves batch_size paths of the model\n"
    "        from y0 through a new Brownian path and matches their mean and\n"
    "        variance at the npoints times (loss = moments); the test loss\n"
    "        is the same over eval_paths paths of one fixed Brownian path.\n"
    "        [solver] dt > 0 is required.\n"
    "[train] iterations, batch_size, lr, lr_decay, seed, eval_every,\n"
    "        optimizer = adam | adadelta (rho),\n"
    "        checkpoint, checkpoint_every, metrics, beta1, beta2, eps,\n"
    "        weight_decay, clip, loss = auto | mse | moments (auto: mse for\n"
    "        ODE fields, moments for SDE fields), data_changed = warn |\n"
    "        refuse (--resume on data whose digest differs from the\n"
    "        checkpoint's; default warn), on_failure = stop | skip | backoff\n"
    "        (a failed iteration: step size underflow, maximum steps, a\n"
    "        non-finite value; skip drops its batch, backoff also halves the\n"
    "        learning rate; the parameters stay the last good iteration's),\n"
    "        max_failures (default 10: then the run stops), shards (default\n"
    "        1; see MPI below), average_from (> 0: from that iteration on\n"
    "        the model evaluated, predicted and loaded from the checkpoint\n"
    "        is the mean of the parameters after each iteration) (see `nde\n"
    "        plugins` for the solver and adjoint keys).\n"
    "[regularizer.NAME]  (any number; NAME matches [a-z0-9_]+) plugin,\n"
    "        weight, schedule = constant | exponential, weight_final and\n"
    "        the plugin's keys (`nde plugins`). Training only: loss += weight\n"
    "        * R each iteration, in section order; never in evaluation or\n"
    "        prediction. A solver lacking what a regularizer needs (e.g. an\n"
    "        error estimate) is refused before training. Weight 0 still runs\n"
    "        it (its value is reported); remove the section to turn it off.\n"
    "\n"
    "Every iteration appends one JSON object to the metrics file (iteration,\n"
    "loss, grad_norm, with regularizers reg (the weighted sum, included in\n"
    "loss), data_loss (loss - reg) and per regularizer reg_NAME (its\n"
    "unweighted value R), reg_NAME.weighted (weight * R) and reg_NAME.ratio\n"
    "(weight * R / data_loss: how large the penalty is against the fit),\n"
    "data_grad_norm (the gradient through the adjoint: the data loss's and\n"
    "the cotangents regularizers hand it) and\n"
    "reg_NAME.grad_norm (|weight dR/dtheta|, before its clip), nfe_forward,\n"
    "nfe_backward (regularizers' own evaluations and VJPs included),\n"
    "steps_accepted, steps_rejected, time_s); every eval_every iterations\n"
    "and at the end one more with test_loss (classification also\n"
    "test_accuracy), predict_nfe and predict_time_s, also printed on\n"
    "stderr when it is a terminal\n"
    "(with the progress line; neither with --quiet or when stderr is not a\n"
    "terminal). The checkpoint is written (atomically) every\n"
    "checkpoint_every iterations and at the end, each time after the\n"
    "metrics before it are on disk; temporary files that killed runs left\n"
    "beside the checkpoint and the metrics file are removed at the start;\n"
    "a failed iteration (solver failure, non-finite loss) stops the run with\n"
    "the iteration in the message and leaves the last checkpoint it wrote\n"
    "(the message says when it wrote none).\n"
    "Paths in [train] are relative to the working directory. Models with at\n"
    "most 16 parameters print them by name at the end.\n"
    "Outputs (checkpoint, metrics, summary) are checked before training: a\n"
    "missing or unwritable directory, or an output that is the config, a\n"
    "[data] file, --resume CKPT (except as [train] checkpoint: the normal\n"
    "resume) or another output, is refused (exit 2). A symlink's target is\n"
    "replaced, the link kept; a device or FIFO is written through.\n"
    "MPI: `mpirun -n K nde train CONFIG` trains data-parallel. [train]\n"
    "shards = S (K to batch_size; a multiple of K shares evenly) cuts each\n"
    "batch into S fixed shards of rows, each solved forward and backward as\n"
    "a batch of its own; the ranks share the shards and sum the gradients in\n"
    "shard order, so the parameters are the same bits for any K <= S and for\n"
    "one process with the same shards (not those of shards = 1: each shard\n"
    "takes its own steps). Not with regularizers, per_row_steps or SDE\n"
    "fields. Rank 0 writes every output and prints; a rank that fails ends\n"
    "the run on every rank with its message.\n"
    "\n"
    "Options:\n"
    "  -s, --set SECTION.KEY=VALUE  override a config value (`-s SECTION=`\n"
    "                               empties a section: see `nde solve --help`)\n"
    "  -u, --unset SECTION.KEY      remove a key, so its default applies\n"
    "                               (-s and -u apply in the order given)\n"
    "      --resume CKPT            continue from a checkpoint, bit for bit\n"
    "                               as if never interrupted (the config may\n"
    "                               differ only in [train] iterations,\n"
    "                               eval_every, checkpoint, checkpoint_every,\n"
    "                               metrics, data_changed, and in form: key\n"
    "                               order, number spelling; the metrics file\n"
    "                               is cut after the checkpoint's iteration\n"
    "                               and appended to, so each iteration is in\n"
    "                               it once)\n"
    "      --quiet                  no progress or evaluation lines\n"
    "      --summary-json FILE      write a summary as one JSON object\n"
    "                               (peak_rss_mb: the process's peak\n"
    "                               memory; with regularizers also\n"
    "                               reg_NAME.mean,\n"
    "                               .weighted_mean, .ratio_mean: means over\n"
    "                               the iterations this invocation ran)\n"
    "  -h, --help                   show this help\n"
    "\n"
    "Exit status: 0 success, 1 training or an output failed, 2 bad usage,\n"
    "a bad config, an unusable checkpoint or a refused output.\n";

const char cli_predict_help[] =
    "Usage: nde predict CKPT [-s SECTION.KEY=VALUE]... [-u SECTION.KEY]...\n"
    "                   [-o FILE] [--summary-json FILE] [--paths N [--seed S]]\n"
    "                   [--plot BASE] [--flow BASE [--flow-grid N] [--flow-range A]\n"
    "                    [--flow-states I,J]]\n"
    "                   [--do STATE=VALUE[,STATE=VALUE]...]\n"
    "\n"
    "Run the model trained into checkpoint CKPT (with the config stored in\n"
    "it) on the held-out set, or, when an override sets a problem.* key\n"
    "(e.g. -s problem.y0=1,0 -s problem.nsave=101), on the [problem]\n"
    "section: t0, t1, y0 (one or more rows), saveat or nsave. Writes the\n"
    "prediction as CSV (as `nde solve`) and prints the NFE, the wall time\n"
    "and, for the held-out set, the test loss on stderr. A classification\n"
    "checkpoint (source = idx) writes `index,label,predicted,p0..pC-1` for\n"
    "the test set and prints the accuracy too. An SDE checkpoint's held-out\n"
    "set is the model's mean and variance (`series,t,<states>` with series\n"
    "mean and var, over eval_paths paths) against the data's; --paths N\n"
    "samples N paths of the model instead, from the data's y0 at its\n"
    "observation times (or from the one [problem] y0 row at its times\n"
    "when a problem.* key is set), and writes `path,t,<states>`. A density\n"
    "checkpoint (source = density, a cnf) samples its flow instead: --paths\n"
    "N draws N points x (z standard normal at t1, solved back to 0) and\n"
    "writes `sample,<point>,logp` (logp, the model's log-density of x, with\n"
    "trace = exact only); --plot BASE draws its density on a grid.\n"
    "--flow BASE draws the learned flow of a model whose task takes 2-D\n"
    "inputs (the points task) instead: the paths of an N x N grid of\n"
    "inputs over [-A, A]^2 (those within radius A), each lifted as the\n"
    "task lifts its data and solved over its span, in the plane of states\n"
    "I and J, coloured by the input's radius (blue centre, orange rim), to\n"
    "BASE.png and BASE.svg.\n"
    "--do predicts under an intervention, whatever the field: each STATE\n"
    "(a name as the outputs call it, or its index) starts at VALUE (the\n"
    "data's units) and is held there (its derivative and diffusion 0).\n"
    "\n"
    "Options:\n"
    "  -s, --set SECTION.KEY=VALUE  override a value of the stored config\n"
    "  -u, --unset SECTION.KEY      remove a key, so its default applies\n"
    "                               (-s and -u apply in the order given)\n"
    "  -o, --output FILE            write the CSV to FILE (default: stdout)\n"
    "      --summary-json FILE      write test_loss, predict_nfe,\n"
    "                               predict_time_s, status as JSON\n"
    "      --paths N                SDE: sample N paths (see above)\n"
    "      --seed S                 SDE: the Brownian path of --paths\n"
    "                               (default 1; the same seed, the same\n"
    "                               paths)\n"
    "      --plot BASE              draw the held-out series' observations\n"
    "                               (dots) against the predictions (lines),\n"
    "                               a panel per state, to BASE.png/.svg\n"
    "      --flow BASE              draw the flow (see above)\n"
    "      --flow-grid N            inputs per side (default 15)\n"
    "      --flow-range A           the grid's half-width (default 1.5)\n"
    "      --flow-states I,J        the states drawn (default 0,1)\n"
    "      --do STATE=VALUE,...     predict under do(STATE = VALUE)\n"
    "  -h, --help                   show this help\n"
    "\n"
    "An output that is CKPT, a [data] file or the other output is refused\n"
    "before the prediction (exit 2).\n";

const char cli_gradcheck_help[] =
    "Usage: nde gradcheck CONFIG [-s SECTION.KEY=VALUE]... [-u SECTION.KEY]...\n"
    "                     [--tol X] [--nparams K]\n"
    "\n"
    "On one mini-batch drawn as training would, compute dL/dtheta with the\n"
    "configured adjoint, with `discrete` (the exact gradient of the\n"
    "discretised solve) and with central finite differences on K randomly\n"
    "chosen parameters (default 8), and print the relative differences\n"
    "||a - b|| / ||b||. Finite differences of an adaptive solve also see the\n"
    "step sizes move, so they agree only to about the solver's tolerance.\n"
    "The loss includes the [regularizer.NAME] terms (the next training\n"
    "iteration's weights and random draws, the same for every evaluation).\n"
    "`local` and `global` hold step sizes (and local its y_s and dt)\n"
    "constant by design, which finite differences do not: to check the\n"
    "adjoint, set their weight to 0 (-s regularizer.NAME.weight=0).\n"
    "\n"
    "Options:\n"
    "  -s, --set SECTION.KEY=VALUE  override a config value\n"
    "  -u, --unset SECTION.KEY      remove a key, so its default applies\n"
    "                               (-s and -u apply in the order given)\n"
    "      --tol X                  largest accepted relative difference of\n"
    "                               the configured adjoint against discrete\n"
    "                               and against finite differences\n"
    "                               (default 1e-3)\n"
    "      --nparams K              parameters checked by finite differences\n"
    "  -h, --help                   show this help\n"
    "\n"
    "Exit status: 0 within tolerance, 1 a difference exceeds it or the\n"
    "computation failed, 2 bad usage or a bad config.\n";

typedef struct train_args {
    const char *config;  /* CONFIG or CKPT */
    cli_edit *edits;     /* -s and -u, in order */
    size_t nedits;
    const char *resume, *summary, *output;
    int quiet;
    double tol;
    long nprobe;
    long paths;          /* predict --paths (0 = not asked)             */
    unsigned long long seed;
    int seed_given;
    cli_flow_opts flow;  /* predict --flow (base NULL = not asked)      */
    const char *plot;    /* predict --plot BASE                        */
    const char *intervene; /* predict --do STATE=VALUE,...             */
} train_args;

/* The value v of integer option opt, in [min, max], into *out; else says
 * why not and returns -1 (strtoull alone clamps an overflow silently). */
static int option_integer(const char *cmd, const char *opt, const char *v,
                          unsigned long long min, unsigned long long max,
                          unsigned long long *out)
{
    char *end = NULL;
    int digits = isdigit((unsigned char)*v);

    if (digits) {
        errno = 0;
        *out = strtoull(v, &end, 10);
        if (!*end && (errno == ERANGE || *out > max)) {
            cli_error("%s: %s %s is out of range (at most %llu)", cmd, opt, v,
                      max);
            return -1;
        }
    }
    if (!digits || *end || *out < min) {
        cli_error("%s: %s needs a %s integer, not '%s'", cmd, opt,
                  min ? "positive" : "non-negative", v);
        return -1;
    }
    return 0;
}

/* argv[*i] as one of predict's picture options (--plot, --flow and
 * its settings): 1 when it is one (*rc
 * non-zero when its value is bad, said), 0 when not. */
/* The BASE of a picture option into *base; -1 (said) when it cannot name
 * BASE.png and BASE.svg. */
static int picture_base(const char *cmd, const char *opt, const char *v,
                        const char **base)
{
    *base = v;
    if (*v && v[strlen(v) - 1] != '/')
        return 0;
    cli_error("%s: %s needs a file name without its extension (BASE.png and "
              "BASE.svg are written), not '%s'", cmd, opt, v);
    return -1;
}

static int flow_option(const char *cmd, int argc, char **argv, int *i,
                       cli_flow_opts *f, const char **plot, int *missing,
                       int *rc)
{
    unsigned long long u = 0, w = 0;
    const char *v;
    char *end;

    *rc = 0;
    if ((v = cli_option_value(argc, argv, i, NULL, "--flow", missing)))
        *rc = picture_base(cmd, "--flow", v, &f->base);
    else if (!*missing &&
             (v = cli_option_value(argc, argv, i, NULL, "--plot", missing)))
        *rc = picture_base(cmd, "--plot", v, plot);
    else if (!*missing && (v = cli_option_value(argc, argv, i, NULL,
                                                  "--flow-grid", missing))) {
        *rc = option_integer(cmd, "--flow-grid", v, 2, 1000, &u);
        f->grid = (long)u;
    } else if (!*missing && (v = cli_option_value(argc, argv, i, NULL,
                                                  "--flow-range", missing))) {
        f->range = strtod(v, &end);
        if (*end || end == v || !(f->range > 0) || !isfinite(f->range)) {
            cli_error("%s: --flow-range needs a positive number, not '%s'",
                      cmd, v);
            *rc = -1;
        }
    } else if (!*missing && (v = cli_option_value(argc, argv, i, NULL,
                                                  "--flow-states", missing))) {
        const char *comma = strchr(v, ',');
        char first[32];
        if (!comma || (size_t)(comma - v) >= sizeof first) {
            cli_error("%s: --flow-states needs two state indices I,J, not "
                      "'%s'", cmd, v);
            *rc = -1;
            return 1;
        }
        snprintf(first, sizeof first, "%.*s", (int)(comma - v), v);
        *rc = option_integer(cmd, "--flow-states", first, 0, 1 << 20, &u) ||
              option_integer(cmd, "--flow-states", comma + 1, 0, 1 << 20, &w);
        f->sx = (size_t)u;
        f->sy = (size_t)w;
    } else
        return 0;
    return 1;
}

/* Parse the common shape: one positional argument, -s, and the options
 * `allowed` names ("resume quiet summary output tol nparams"). */
static int parse_args(const char *cmd, int argc, char **argv,
                      const char *allowed, train_args *a)
{
    int i, missing, rc;
    unsigned long long u;
    const char *v;
    char *end;

    memset(a, 0, sizeof *a);
    a->tol = 1e-3;
    a->nprobe = 8;
    a->seed = 1;
    a->flow.grid = 15;
    a->flow.range = 1.5;
    a->flow.sx = 0;
    a->flow.sy = 1;
    if (!(a->edits = calloc((size_t)argc, sizeof *a->edits))) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        missing = 0;
        if (cli_edit_option(argc, argv, &i, &a->edits[a->nedits], &missing))
            a->nedits++;
        else if (!missing && strstr(allowed, "resume") &&
                 (v = cli_option_value(argc, argv, &i, NULL, "--resume",
                                       &missing)))
            a->resume = v;
        else if (!missing && strstr(allowed, "summary") &&
                 (v = cli_option_value(argc, argv, &i, NULL, "--summary-json",
                                       &missing)))
            a->summary = v;
        else if (!missing && strstr(allowed, "output") &&
                 (v = cli_option_value(argc, argv, &i, "-o", "--output",
                                       &missing)))
            a->output = v;
        else if (!missing && strstr(allowed, "tol") &&
                 (v = cli_option_value(argc, argv, &i, NULL, "--tol",
                                       &missing))) {
            a->tol = strtod(v, &end);
            if (*end || end == v || !(a->tol > 0) || !isfinite(a->tol)) {
                cli_error("%s: --tol needs a positive number, not '%s'", cmd,
                          v);
                return CLI_EXIT_USAGE;
            }
        } else if (!missing && strstr(allowed, "nparams") &&
                   (v = cli_option_value(argc, argv, &i, NULL, "--nparams",
                                         &missing))) {
            if (option_integer(cmd, "--nparams", v, 1, LONG_MAX, &u))
                return CLI_EXIT_USAGE;
            a->nprobe = (long)u;
        } else if (!missing && strstr(allowed, "paths") &&
                   (v = cli_option_value(argc, argv, &i, NULL, "--paths",
                                         &missing))) {
            if (option_integer(cmd, "--paths", v, 1, LONG_MAX, &u))
                return CLI_EXIT_USAGE;
            a->paths = (long)u;
        } else if (!missing && strstr(allowed, "seed") &&
                   (v = cli_option_value(argc, argv, &i, NULL, "--seed",
                                         &missing))) {
            a->seed_given = 1;
            if (option_integer(cmd, "--seed", v, 0, UINT64_MAX, &a->seed))
                return CLI_EXIT_USAGE;
        } else if (!missing && strstr(allowed, "do") &&
                   (v = cli_option_value(argc, argv, &i, NULL, "--do",
                                         &missing))) {
            a->intervene = v;
        } else if (!missing && strstr(allowed, "flow") &&
                   flow_option(cmd, argc, argv, &i, &a->flow, &a->plot,
                               &missing, &rc)) {
            if (rc)
                return CLI_EXIT_USAGE;
        } else if (missing) {
            cli_error("%s: option '%s' needs a value (try `nde %s --help`)",
                      cmd, arg, cmd);
            return CLI_EXIT_USAGE;
        } else if (strstr(allowed, "quiet") && strcmp(arg, "--quiet") == 0)
            a->quiet = 1;
        else if (arg[0] == '-' && arg[1] != '\0') {
            cli_error("%s: unknown option '%s' (try `nde %s --help`)", cmd,
                      arg, cmd);
            return CLI_EXIT_USAGE;
        } else if (a->config) {
            cli_error("%s: more than one %s ('%s', '%s')", cmd,
                      strcmp(cmd, "predict") ? "config file" : "checkpoint",
                      a->config, arg);
            return CLI_EXIT_USAGE;
        } else
            a->config = arg;
    }
    if (!a->config) {
        cli_error("%s: no %s given (try `nde %s --help`)", cmd,
                  strcmp(cmd, "predict") ? "config file" : "checkpoint", cmd);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

/* The index of state `name` (a name as nde_trainer_state_names gives
 * it, y<j>, or j), or -1. */
static long state_index(nde_trainer *tr, const char *name, size_t len)
{
    const char *const *names = nde_trainer_state_names(tr);
    const size_t D = nde_trainer_field(tr)->dim;
    char *end;
    long j;

    for (size_t k = 0; names && k < D; k++)
        if (strlen(names[k]) == len && strncmp(names[k], name, len) == 0)
            return (long)k;
    if (len > 1 && name[0] == 'y' && isdigit((unsigned char)name[1]))
        name++, len--;
    if (!isdigit((unsigned char)name[0]))
        return -1;
    j = strtol(name, &end, 10);
    return end == name + len && j < (long)D ? j : -1;
}

/* --do STATE=VALUE[,STATE=VALUE]...: predictions under that
 * intervention (nde_trainer_intervene); an exit code. */
static int intervene(nde_ctx *ctx, nde_trainer *tr, const char *spec)
{
    const size_t D = nde_trainer_field(tr)->dim;
    double *values = malloc(D * sizeof *values);
    const char *p = spec;
    int code = CLI_EXIT_USAGE;

    if (!values) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    for (size_t j = 0; j < D; j++)
        values[j] = NAN;
    for (;;) {
        const char *eq = strchr(p, '='), *comma = strchr(p, ',');
        char *end;
        long j;
        if (!comma)
            comma = p + strlen(p);
        if (!eq || eq > comma) {
            cli_error("predict: --do %s: '%.*s' is not STATE=VALUE", spec,
                      (int)(comma - p), p);
            goto done;
        }
        if ((j = state_index(tr, p, (size_t)(eq - p))) < 0) {
            cli_error("predict: --do %s: the model has no state '%.*s' (a "
                      "name the outputs use, or an index below %zu)", spec,
                      (int)(eq - p), p, D);
            goto done;
        }
        if (!isnan(values[j])) {
            cli_error("predict: --do %s: state '%.*s' is given twice", spec,
                      (int)(eq - p), p);
            goto done;
        }
        values[j] = strtod(eq + 1, &end);
        if (end == eq + 1 || end != comma || !isfinite(values[j])) {
            cli_error("predict: --do %s: '%.*s' is not a finite number", spec,
                      (int)(comma - eq - 1), eq + 1);
            goto done;
        }
        if (!*comma)
            break;
        p = comma + 1;
    }
    {
        int rc = nde_trainer_intervene(tr, values);
        code = rc == NDE_OK ? CLI_EXIT_OK : cli_fail(ctx, rc);
    }
done:
    free(values);
    return code;
}

static int help_wanted(int argc, char **argv, const char *text)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            fputs(text, stdout);
            return 1;
        }
    return 0;
}

/* Load CONFIG and apply the overrides; an exit code. */
static int load_config(nde_ctx *ctx, nde_config *cfg, const train_args *a)
{
    int rc;

    if ((rc = nde_config_load_file(cfg, a->config, ctx)) != NDE_OK) {
        cli_fail(ctx, rc);
        return CLI_EXIT_USAGE;
    }
    if ((rc = cli_apply_edits(cfg, a->edits, a->nedits, ctx)) != NDE_OK)
        return cli_fail(ctx, rc);
    return CLI_EXIT_OK;
}

/* The data files [data] names, as inputs: source = csv reads `path`,
 * source = idx four files, named as the trainer opens them
 * (nde_section_path). Appended to files at *n; their paths are malloc'd
 * into own[4]. */
static int add_data_files(const nde_config *cfg, cli_file *files, size_t *n,
                          char **own, nde_ctx *ctx)
{
    static const char *const keys[][2] = {
        {"path", "[data] path"},
        {"images", "[data] images"},
        {"labels", "[data] labels"},
        {"test_images", "[data] test_images"},
        {"test_labels", "[data] test_labels"}};
    const nde_section *dsec = nde_config_section(cfg, "data");
    const char *source, *path;
    size_t i, k = 0, first, last;
    int rc;

    if (!dsec || nde_get_string(dsec, "source", &source, ctx) != NDE_OK)
        return NDE_OK;
    if (strcmp(source, "csv") == 0)
        first = last = 0;
    else if (strcmp(source, "idx") == 0)
        first = 1, last = 4;
    else
        return NDE_OK;
    for (i = first; i <= last; i++) {
        if ((rc = nde_get_string(dsec, keys[i][0], &path, ctx)) != NDE_OK)
            return rc;
        if (!(own[k] = nde_section_path(dsec, keys[i][0], path)))
            return nde_error(ctx, NDE_ENOMEM, "out of memory");
        files[(*n)++] = (cli_file){keys[i][1], own[k++], 0, 0};
    }
    return NDE_OK;
}

/* cli_files_check over files[n] and the data files; an exit code. files
 * must have room for 5 more entries. */
static int check_files(const nde_config *cfg, cli_file *files, size_t n,
                       nde_ctx *ctx)
{
    char *own[4] = {NULL};
    int rc, code = CLI_EXIT_OK;

    if ((rc = add_data_files(cfg, files, &n, own, ctx)) != NDE_OK)
        code = cli_fail(ctx, rc);
    else if (cli_files_check(files, n) != 0)
        code = CLI_EXIT_USAGE;
    for (size_t i = 0; i < 4; i++)
        free(own[i]);
    return code;
}

/* ---- nde train ----------------------------------------------------------- */

static int write_checkpoint(const nde_trainer *tr, const char *path,
                            nde_ctx *ctx)
{
    cli_outfile o;
    int rc;

    if (cli_outfile_open(&o, path) != 0)
        return -1;
    if ((rc = nde_trainer_checkpoint_write(tr, o.fp)) != NDE_OK) {
        cli_fail(ctx, rc);
        cli_outfile_discard(&o);
        return -1;
    }
    return cli_outfile_commit(&o);
}

static void metrics_step(FILE *fp, const nde_trainer *tr,
                         const nde_train_step *m)
{
    const size_t nreg = nde_trainer_nregularizers(tr);
    double value;

    fprintf(fp, "{\"iteration\": %ld, \"loss\": ", m->iteration);
    cli_json_double(fp, m->loss);
    fputs(", \"grad_norm\": ", fp);
    cli_json_double(fp, m->grad_norm);
    if (nreg > 0) {
        fputs(", \"reg\": ", fp);
        cli_json_double(fp, m->reg);
        fputs(", \"data_loss\": ", fp);
        cli_json_double(fp, m->data_loss);
        fputs(", \"data_grad_norm\": ", fp);
        cli_json_double(fp, m->data_grad_norm);
    }
    for (size_t i = 0; i < nreg; i++) {
        const char *name = nde_trainer_regularizer(tr, i, &value);
        const double wr = nde_trainer_regularizer_weight(tr, i) * value;
        fprintf(fp, ", \"reg_%s\": ", name);
        cli_json_double(fp, value);
        fprintf(fp, ", \"reg_%s.weighted\": ", name);
        cli_json_double(fp, wr);
        fprintf(fp, ", \"reg_%s.ratio\": ", name);
        cli_json_double(fp, wr / m->data_loss);
        fprintf(fp, ", \"reg_%s.grad_norm\": ", name);
        cli_json_double(fp, nde_trainer_regularizer_grad_norm(tr, i));
    }
    fprintf(fp,
            ", \"nfe_forward\": %ld, \"nfe_backward\": %ld, "
            "\"steps_accepted\": %ld, \"steps_rejected\": %ld, \"time_s\": ",
            m->nfe_forward, m->nfe_backward, m->steps_accepted,
            m->steps_rejected);
    cli_json_double(fp, m->time_s);
    if (m->failed)
        fprintf(fp, ", \"failed\": \"%s\"", nde_status_name(m->failed));
    fputs("}\n", fp);
}

static void metrics_eval(FILE *fp, long iteration, const nde_eval_result *e)
{
    fprintf(fp, "{\"iteration\": %ld, \"test_loss\": ", iteration);
    cli_json_double(fp, e->test_loss);
    if (!isnan(e->test_accuracy)) {
        fputs(", \"test_accuracy\": ", fp);
        cli_json_double(fp, e->test_accuracy);
    }
    fprintf(fp, ", \"predict_nfe\": %ld, \"predict_time_s\": ", e->nfe);
    cli_json_double(fp, e->time_s);
    fputs("}\n", fp);
}

/* Sums over this invocation's iterations of each regularizer's R, w * R
 * and w * R / data loss, for their means in the summary. */
enum { REG_VALUE, REG_WEIGHTED, REG_RATIO, REG_NSUMS };

typedef struct summary {
    long iterations;
    const nde_train_totals *tot;
    nde_eval_result eval;
    double final_loss;
    int status;
    const nde_trainer *tr;
    double *reg_sum;      /* REG_NSUMS per regularizer */
    long reg_count;       /* iterations summed */
} summary;

static void summary_add(summary *s, const nde_train_step *m)
{
    const size_t nreg = nde_trainer_nregularizers(s->tr);
    double value, wr, *sum;

    for (size_t i = 0; i < nreg; i++) {
        nde_trainer_regularizer(s->tr, i, &value);
        wr = nde_trainer_regularizer_weight(s->tr, i) * value;
        sum = s->reg_sum + REG_NSUMS * i;
        sum[REG_VALUE] += value;
        sum[REG_WEIGHTED] += wr;
        sum[REG_RATIO] += wr / m->data_loss;
    }
    s->reg_count++;
}

static void summary_regs(FILE *fp, const summary *s)
{
    static const char *const suffix[REG_NSUMS] = {"mean", "weighted_mean",
                                                  "ratio_mean"};
    const size_t nreg = s->tr ? nde_trainer_nregularizers(s->tr) : 0;

    for (size_t i = 0; i < nreg; i++)
        for (size_t k = 0; k < REG_NSUMS; k++) {
            fprintf(fp, ", \"reg_%s.%s\": ",
                    nde_trainer_regularizer(s->tr, i, NULL), suffix[k]);
            cli_json_double(fp, s->reg_count
                                    ? s->reg_sum[REG_NSUMS * i + k] /
                                          (double)s->reg_count
                                    : NAN);
        }
}

/* The process's peak resident memory so far, in MiB (NAN when unknown). */
static double peak_rss_mb(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return NAN;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

static int write_summary(const char *path, const summary *s)
{
    cli_outfile o;

    if (cli_outfile_open(&o, path) != 0)
        return -1;
    fprintf(o.fp, "{\"iterations\": %ld, \"train_time_s\": ", s->iterations);
    cli_json_double(o.fp, s->tot ? s->tot->time_s : NAN);
    fprintf(o.fp, ", \"train_nfe_forward\": %ld, \"train_nfe_backward\": %ld",
            s->tot ? s->tot->nfe_forward : 0,
            s->tot ? s->tot->nfe_backward : 0);
    fputs(", \"final_loss\": ", o.fp);
    cli_json_double(o.fp, s->final_loss);
    fputs(", \"test_loss\": ", o.fp);
    cli_json_double(o.fp, s->eval.test_loss);
    if (!isnan(s->eval.test_accuracy)) {
        fputs(", \"test_accuracy\": ", o.fp);
        cli_json_double(o.fp, s->eval.test_accuracy);
    }
    fprintf(o.fp, ", \"predict_nfe\": %ld, \"predict_time_s\": ",
            s->eval.nfe);
    cli_json_double(o.fp, s->eval.time_s);
    fputs(", \"peak_rss_mb\": ", o.fp);
    cli_json_double(o.fp, peak_rss_mb());
    if (s->tot && s->tr) /* a training run's */
        fprintf(o.fp, ", \"failures\": %ld, \"run_id\": \"%016llx\"",
                s->tot->failures,
                (unsigned long long)nde_trainer_run_id(s->tr));
    summary_regs(o.fp, s);
    fprintf(o.fp, ", \"status\": \"%s\", \"status_code\": %d}\n",
            nde_status_name(s->status), s->status);
    return cli_outfile_commit(&o);
}

/* After a failed run, what the checkpoint file holds: the last good state
 * only if this run wrote it, or if it is the one the run resumed (the
 * same run id); any other file of that name is not this run's. */
static void checkpoint_note(const char *path, long written,
                            const nde_trainer *tr)
{
    uint64_t id = 0;
    long at = 0;
    nde_ctx *ctx;
    int rc = NDE_EIO;

    if (written >= 0) {
        cli_error("training stopped; the checkpoint %s holds the last good "
                  "state (iteration %ld)", path, written);
        return;
    }
    if (access(path, F_OK) != 0) {
        cli_error("training stopped before this run wrote a checkpoint (%s "
                  "does not exist)", path);
        return;
    }
    if ((ctx = nde_ctx_create())) {
        rc = nde_checkpoint_read_run(path, &id, &at, ctx);
        nde_ctx_destroy(ctx);
    }
    if (rc == NDE_OK && id == nde_trainer_run_id(tr))
        cli_error("training stopped before it wrote a checkpoint; %s holds "
                  "this run's state at iteration %ld, which it resumed",
                  path, at);
    else if (rc == NDE_OK && id)
        cli_error("training stopped before this run wrote a checkpoint; %s "
                  "is another run's (run id %016llx, iteration %ld), not "
                  "this one's", path, (unsigned long long)id, at);
    else
        cli_error("training stopped before this run wrote a checkpoint; %s "
                  "is not this run's", path);
}

/* A model's parameters on stdout when they are few; else where to see
 * them. */
static void print_params(const nde_trainer *tr, const char *ckpt)
{
    const double *theta = nde_trainer_params(tr);
    size_t i, P = nde_trainer_nparams(tr);
    char name[128];

    if (P > 16) {
        if (ckpt)
            cli_error("%zu parameters: `nde params %s` prints them", P,
                      ckpt);
        return;
    }
    for (i = 0; i < P; i++) {
        nde_trainer_param_name(tr, i, name, sizeof name);
        printf("%s = %.10g\n", name, theta[i]);
    }
    fflush(stdout);
}

/* The metrics file, opened for the run. A resumed run (resumed_at = the
 * checkpoint's iteration, else -1) keeps the lines of the iterations the
 * checkpoint holds and cuts the file after them: a killed run may have
 * written lines after its last checkpoint, the last one maybe in part,
 * and the resumed run writes those iterations again. Lines are in
 * iteration order, so the first line that is torn, not ours or beyond
 * resumed_at ends what is kept. */
static FILE *open_metrics(const char *path, long resumed_at)
{
    static const char prefix[] = "{\"iteration\": ";
    char *line = NULL, *end;
    size_t cap = 0;
    ssize_t n;
    off_t keep = 0;
    long it, dropped = 0;
    struct stat st;
    FILE *fp;

    if (resumed_at < 0)
        fp = fopen(path, "w");
    else if (!(fp = fopen(path, "r+")) && errno == ENOENT)
        fp = fopen(path, "w+"); /* read too: the scan below sees EOF */
    if (!fp) {
        cli_error("%s: cannot open the metrics file: %m", path);
        return NULL;
    }
    if (resumed_at < 0 || fstat(fileno(fp), &st) != 0 ||
        !S_ISREG(st.st_mode))
        return fp;
    while ((n = getline(&line, &cap, fp)) > 0) {
        if (dropped == 0 && line[n - 1] == '\n' &&
            strncmp(line, prefix, sizeof prefix - 1) == 0) {
            errno = 0;
            it = strtol(line + sizeof prefix - 1, &end, 10);
            if (errno == 0 && end != line + sizeof prefix - 1 &&
                it <= resumed_at) {
                keep += n;
                continue;
            }
        }
        dropped++;
    }
    free(line);
    if (ferror(fp) || ftruncate(fileno(fp), keep) != 0 ||
        fseek(fp, 0, SEEK_END) != 0) {
        cli_error("%s: cannot cut the metrics file to iteration %ld: %m",
                  path, resumed_at);
        fclose(fp);
        return NULL;
    }
    if (dropped)
        cli_error("%s: dropped %ld line%s after iteration %ld (the "
                  "checkpoint's); they are written again", path, dropped,
                  dropped == 1 ? "" : "s", resumed_at);
    return fp;
}

/* The metrics on disk before a checkpoint is renamed into place, so that a
 * kill never leaves a checkpoint ahead of its metrics. */
static int sync_metrics(FILE *fp, const char *path)
{
    if (!fp)
        return 0;
    /* pipes and character devices cannot be synced, nor need to be */
    if (fflush(fp) != 0 ||
        (fsync(fileno(fp)) != 0 && errno != EINVAL && errno != EROFS)) {
        cli_error("%s: %m", path);
        return -1;
    }
    return 0;
}

/* One line per evaluation (after the progress line, if any). */
/* Over the progress line (\r), which the next iteration redraws below. */
static void eval_line(long iteration, const nde_eval_result *e)
{
    fprintf(stderr, "\riteration %ld: test_loss %.6g", iteration,
            e->test_loss);
    if (!isnan(e->test_accuracy))
        fprintf(stderr, ", test_accuracy %.4f", e->test_accuracy);
    fprintf(stderr, ", prediction %ld nfe in %.3f s\n", e->nfe, e->time_s);
}

/* How the plugins the checkpoint was made with differ from this run's. */
static void warn_components_changed(const nde_trainer *tr, const char *ckpt)
{
    const char *note;
    size_t i;

    for (i = 0; (note = nde_trainer_checkpoint_note(tr, i)); i++)
        cli_error("warning: %s: %s", ckpt, note);
}

/* Evaluate into *e; a failure the on_failure policy absorbs is said and
 * leaves the scores NAN: the run goes on. */
static int evaluate(nde_trainer *tr, nde_ctx *ctx, nde_eval_result *e)
{
    int rc = nde_trainer_evaluate(tr, e);

    if (rc == NDE_OK || !nde_trainer_absorbs(tr, rc))
        return rc;
    cli_error("%s (on_failure: the run goes on)", nde_ctx_message(ctx));
    e->test_loss = NAN;
    e->test_accuracy = NAN;
    return NDE_OK;
}

int cli_train(int argc, char **argv)
{
    train_args a;
    nde_ctx *ctx = NULL;
    nde_config *cfg = NULL;
    nde_trainer *tr = NULL;
    const nde_train_settings *set;
    FILE *metrics = NULL;
    summary sum;
    nde_train_step m;
    long last_eval = -1, written = -1;  /* checkpoint of this run */
    int code, rc = NDE_OK, progress, agreed = 0;
    /* under mpirun, rank 0 writes every output (comm.h) */
    const int lead = cli_rank() == 0;

    if (help_wanted(argc, argv, cli_train_help))
        return CLI_EXIT_OK;
    memset(&sum, 0, sizeof sum);
    sum.eval.test_loss = NAN;
    sum.eval.test_accuracy = NAN;
    sum.eval.time_s = NAN;
    sum.final_loss = NAN;
    if ((code = parse_args("train", argc, argv, "resume quiet summary", &a)))
        goto done;
    if (!(ctx = nde_ctx_create()) || !(cfg = nde_config_create())) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((code = load_config(ctx, cfg, &a)) != CLI_EXIT_OK)
        goto done;
    if ((rc = nde_trainer_create(ctx, cfg, 0, &tr)) != NDE_OK ||
        (a.resume && (rc = nde_trainer_checkpoint_load(
                          tr, a.resume, NDE_CHECKPOINT_RESUME)) != NDE_OK) ||
        (rc = nde_trainer_set_comm(tr, cli_comm())) != NDE_OK) {
        code = cli_fail(ctx, rc);
        goto done;
    }
    set = nde_trainer_settings(tr);
    sum.tot = nde_trainer_totals(tr);
    sum.tr = tr;
    if (!(sum.reg_sum = calloc(REG_NSUMS * nde_trainer_nregularizers(tr) + 1,
                               sizeof *sum.reg_sum))) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    {
        /* --resume CKPT may be the checkpoint this run replaces. */
        cli_file files[10] = {{"the config", a.config, 0, 0},
                              {"--resume", a.resume, 0, 1},
                              {"[train] checkpoint", set->checkpoint, 1, 1},
                              {"[train] metrics", set->metrics, 1, 0},
                              {"--summary-json", a.summary, 1, 0}};
        if ((code = check_files(cfg, files, 5, ctx)) != CLI_EXIT_OK)
            goto done;
    }
    cli_warn_shadowing(ctx);
    if (a.resume)
        warn_components_changed(tr, a.resume);
    if (a.resume && nde_trainer_data_changed(tr))
        cli_error("warning: %s was trained on other data than [data] gives "
                  "now (their digests differ); resuming on the new data "
                  "([train] data_changed = refuse stops instead)", a.resume);
    /* temporary files of runs killed while writing */
    if (lead && set->checkpoint)
        cli_outfile_remove_stale(set->checkpoint);
    if (lead && set->metrics)
        cli_outfile_remove_stale(set->metrics);
    if (lead && set->metrics &&
        !(metrics = open_metrics(set->metrics,
                                 a.resume ? nde_trainer_iteration(tr) : -1))) {
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    /* every rank ready, or none trains */
    agreed = 1;
    if ((code = cli_comm_agree(CLI_EXIT_OK)) != CLI_EXIT_OK)
        goto done;
    progress = !a.quiet && isatty(STDERR_FILENO);
    code = CLI_EXIT_OK;
    while (nde_trainer_iteration(tr) < set->iterations) {
        rc = nde_trainer_step(tr, &m);
        if (metrics)
            metrics_step(metrics, tr, &m);
        if (rc != NDE_OK)
            break;
        if (m.failed)
            cli_error("%s: its batch dropped (on_failure = %s; %ld of at "
                      "most %ld)", nde_ctx_message(ctx),
                      set->on_failure == NDE_ON_FAILURE_SKIP ? "skip"
                                                             : "backoff",
                      sum.tot->failures, set->max_failures);
        else {
            sum.final_loss = m.loss;
            summary_add(&sum, &m);
        }
        if (set->eval_every > 0 && m.iteration % set->eval_every == 0) {
            if ((rc = evaluate(tr, ctx, &sum.eval)) != NDE_OK)
                break;
            last_eval = m.iteration;
            if (metrics)
                metrics_eval(metrics, m.iteration, &sum.eval);
            if (progress)
                eval_line(m.iteration, &sum.eval);
        }
        if (progress)
            fprintf(stderr, "\r%ld/%ld  loss %.4g  test %.4g  nfe %ld+%ld   ",
                    m.iteration, set->iterations, m.loss, sum.eval.test_loss,
                    m.nfe_forward, m.nfe_backward);
        if (set->checkpoint && set->checkpoint_every > 0 &&
            m.iteration % set->checkpoint_every == 0) {
            if (lead && (sync_metrics(metrics, set->metrics) != 0 ||
                         write_checkpoint(tr, set->checkpoint, ctx) != 0))
                code = CLI_EXIT_FAILURE;
            if ((code = cli_comm_agree(code)) != CLI_EXIT_OK)
                break;
            written = m.iteration;
        }
        if (metrics)
            fflush(metrics);
    }
    if (progress)
        fputc('\n', stderr);
    sum.iterations = nde_trainer_iteration(tr);
    if (rc == NDE_OK && code == CLI_EXIT_OK) {
        if (last_eval != sum.iterations) {
            rc = evaluate(tr, ctx, &sum.eval);
            if (rc == NDE_OK && metrics)
                metrics_eval(metrics, sum.iterations, &sum.eval);
        }
        if (rc == NDE_OK && set->checkpoint) {
            if (lead && (sync_metrics(metrics, set->metrics) != 0 ||
                         write_checkpoint(tr, set->checkpoint, ctx) != 0))
                code = CLI_EXIT_FAILURE;
            code = cli_comm_agree(code);
        }
    }
    if (metrics && fclose(metrics) != 0) {
        cli_error("%s: %m", set->metrics);
        code = CLI_EXIT_FAILURE;
    }
    metrics = NULL;
    sum.status = rc;
    if (rc != NDE_OK) {
        code = cli_fail(ctx, rc);
        if (set->checkpoint)
            checkpoint_note(set->checkpoint, written, tr);
    } else if (code == CLI_EXIT_OK) {
        fprintf(stderr,
                "nde: %ld iterations in %.3f s (nfe %ld forward, %ld "
                "backward); test_loss %.6g, ", sum.iterations,
                sum.tot->time_s, sum.tot->nfe_forward, sum.tot->nfe_backward,
                sum.eval.test_loss);
        if (!isnan(sum.eval.test_accuracy))
            fprintf(stderr, "test_accuracy %.4f, ", sum.eval.test_accuracy);
        fprintf(stderr, "prediction %ld nfe in %.3f ms\n", sum.eval.nfe,
                1e3 * sum.eval.time_s);
        if (sum.tot->failures)
            fprintf(stderr, "nde: %ld failed iteration%s dropped (learning "
                    "rate x %g)\n", sum.tot->failures,
                    sum.tot->failures == 1 ? "" : "s", sum.tot->lr_scale);
        print_params(tr, set->checkpoint);
    }
    if (lead && a.summary && write_summary(a.summary, &sum) != 0 &&
        code == CLI_EXIT_OK)
        code = CLI_EXIT_FAILURE;
done:
    if (!agreed)
        code = cli_comm_agree(code);
    if (metrics)
        fclose(metrics);
    free(sum.reg_sum);
    nde_trainer_destroy(tr);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    free(a.edits);
    return code;
}

/* ---- nde predict --------------------------------------------------------- */

static int wants_problem(const train_args *a)
{
    for (size_t i = 0; i < a->nedits; i++)
        if (!a->edits[i].unset &&
            strncmp(a->edits[i].text, "problem.", 8) == 0)
            return 1;
    return 0;
}

/* Rows of [problem] y0 (checked against the problem keys). */
static int problem_rows(nde_config *cfg, size_t *rows, nde_ctx *ctx)
{
    const nde_key *const tables[] = {nde_problem_keys, NULL};
    nde_section *psec;
    double *y0 = NULL;
    size_t cols = 0;
    int rc;

    *rows = 0;
    if ((rc = nde_config_require(cfg, "problem", &psec, ctx)) != NDE_OK ||
        (rc = nde_section_check(psec, tables, ctx)) != NDE_OK ||
        (rc = nde_get_matrix(psec, "y0", &y0, rows, &cols, ctx)) != NDE_OK)
        return rc;
    free(y0);
    if (*rows == 0)
        return nde_section_error(psec, "y0", ctx, "no initial state given");
    return NDE_OK;
}

/* Classification: `index,label,predicted,p0..pC-1` per test example. */
static int write_classes_csv(const char *path, const nde_trainer *tr)
{
    const size_t N = nde_trainer_ntest(tr);
    const int *label;
    const double *prob;
    const size_t C = nde_trainer_test_classes(tr, &label, &prob);
    cli_outfile o;
    size_t i, c, best;

    if (cli_outfile_open(&o, path) != 0)
        return -1;
    fputs("index,label,predicted", o.fp);
    for (c = 0; c < C; c++)
        fprintf(o.fp, ",p%zu", c);
    fputc('\n', o.fp);
    for (i = 0; i < N; i++) {
        const double *p = prob + i * C;
        for (best = 0, c = 1; c < C; c++)
            if (p[c] > p[best])
                best = c;
        fprintf(o.fp, "%zu,%d,%zu", i, label[i], best);
        for (c = 0; c < C; c++)
            fprintf(o.fp, ",%.9g", p[c]);
        fputc('\n', o.fp);
    }
    return cli_outfile_commit(&o);
}

/* The held-out prediction: `t,<states>` for one series, with a leading
 * `series` column (the series ids) for several; classes for source = idx. */
static int write_heldout_csv(const char *path, const nde_trainer *tr)
{
    const nde_field *f = nde_trainer_field(tr);
    const size_t ns = nde_trainer_ntest(tr);
    const double *t, *pred;
    const int *label;
    const char *id;
    cli_outfile o;
    size_t i, k, j, n;

    if (nde_trainer_test_classes(tr, &label, &pred) > 0)
        return write_classes_csv(path, tr);
    if (ns == 1) {
        n = nde_trainer_test_series(tr, 0, &id, &t, &pred);
        return cli_write_solution_csv(path, nde_trainer_state_names(tr),
                                      f->dim, t, n, 1, pred);
    }
    if (cli_outfile_open(&o, path) != 0)
        return -1;
    fputs("series,t", o.fp);
    cli_write_state_names(o.fp, nde_trainer_state_names(tr), f->dim);
    for (i = 0; i < ns; i++) {
        n = nde_trainer_test_series(tr, i, &id, &t, &pred);
        for (k = 0; k < n; k++) {
            fprintf(o.fp, "%s,%.17g", id, t[k]);
            for (j = 0; j < f->dim; j++)
                fprintf(o.fp, ",%.17g", pred[k * f->dim + j]);
            fputc('\n', o.fp);
        }
    }
    return cli_outfile_commit(&o);
}

/* Density models ([data] source = density): 1, else 0. */
int cli_density_model(const nde_config *cfg, nde_ctx *ctx)
{
    nde_section *d = nde_config_section(cfg, "data");
    const char *source;

    return d && nde_section_has(d, "source") &&
           nde_get_string(d, "source", &source, ctx) == NDE_OK &&
           strcmp(source, "density") == 0;
}

/* The rows of a density model's solve of samples at a time. */
#define SAMPLE_CHUNK 4096

/* --paths N of a density model: N points of the flow, x(0) from z ~ N(0,
 * I) at t1 (seed --seed), with log p(x) = log N(z) + l(0) (l(t1) = 0:
 * the backward solve of dl/dt = -tr(df/dz) gives l(0) = int_0^t1 tr,
 * FFJORD's change of variables) when the trace is exact. */
static int predict_samples(nde_ctx *ctx, const nde_config *cfg,
                           nde_trainer *tr, const train_args *a, double t1,
                           summary *sum)
{
    const size_t D = nde_trainer_field(tr)->dim, N = (size_t)a->paths;
    const size_t chunk = N < SAMPLE_CHUNK ? N : SAMPLE_CHUNK;
    const char *trace = "exact";
    const char *const *names = nde_trainer_state_names(tr);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    double *y0 = malloc(chunk * D * sizeof *y0);
    double *ys = malloc(chunk * D * sizeof *ys), zero = 0.0;
    size_t d;
    cli_outfile o;
    nde_stats st;
    int rc, exact, code = CLI_EXIT_FAILURE, open = 0;

    if (nde_section_has(nde_config_section(cfg, "field"), "trace"))
        nde_get_string(nde_config_section(cfg, "field"), "trace", &trace,
                       ctx);
    exact = strcmp(trace, "exact") == 0;
    d = exact ? D - 1 : (D - 1) / 2; /* [x, l] or [x, l, probe] */
    if (!rng || !y0 || !ys) {
        cli_error("out of memory");
        goto done;
    }
    gsl_rng_set(rng, (unsigned long)a->seed);
    if (cli_outfile_open(&o, a->output) != 0)
        goto done;
    open = 1;
    fputs("sample", o.fp);
    for (size_t j = 0; j < d; j++)
        if (names)
            fprintf(o.fp, ",%s", names[j]);
        else
            fprintf(o.fp, ",x%zu", j);
    fputs(exact ? ",logp\n" : "\n", o.fp);
    for (size_t at = 0; at < N; at += chunk) {
        const size_t m = N - at < chunk ? N - at : chunk;
        memset(y0, 0, m * D * sizeof *y0);
        for (size_t r = 0; r < m; r++)
            for (size_t j = 0; j < d; j++)
                y0[r * D + j] = gsl_ran_gaussian_ziggurat(rng, 1.0);
        if ((rc = nde_trainer_predict(tr, t1, y0, m, 0.0, 1, &zero, ys,
                                      &st)) != NDE_OK) {
            nde_error_prefix(ctx, "predict failed");
            code = cli_fail(ctx, rc);
            goto done;
        }
        sum->eval.nfe += st.nfe;
        for (size_t r = 0; r < m; r++) {
            double logn = -0.5 * (double)d * log(2.0 * M_PI);
            fprintf(o.fp, "%zu", at + r);
            for (size_t j = 0; j < d; j++) {
                logn -= 0.5 * y0[r * D + j] * y0[r * D + j];
                fprintf(o.fp, ",%.17g", ys[r * D + j]);
            }
            if (exact)
                fprintf(o.fp, ",%.17g", logn + ys[r * D + d]);
            fputc('\n', o.fp);
        }
    }
    open = 0;
    code = cli_outfile_commit(&o) ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
    if (code == CLI_EXIT_OK)
        fprintf(stderr, "nde: %zu samples of the flow, %ld nfe\n", N,
                sum->eval.nfe);
done:
    if (open)
        cli_outfile_discard(&o);
    if (rng)
        gsl_rng_free(rng);
    free(y0);
    free(ys);
    return code;
}

/* --paths N: N sample paths of an SDE model as `path,t,<states>`, from
 * the data's y0 at its observation times or from [problem]. */
static int predict_paths(nde_ctx *ctx, nde_config *cfg, nde_trainer *tr,
                         const train_args *a, const nde_problem *prob,
                         summary *sum)
{
    const nde_field *f = nde_trainer_field(tr);
    const size_t N = (size_t)a->paths, D = f->dim;
    const double *t, *pred;
    const char *id;
    double *y0 = NULL, *ysave = NULL, t0, t1;
    struct timespec c0, c1;
    size_t n, b, k, j;
    cli_outfile o;
    nde_stats st;
    int rc, code = CLI_EXIT_FAILURE;

    if (f->noise == NDE_NOISE_NONE) {
        cli_error("predict: --paths samples an SDE model; %s holds an ODE "
                  "model", a->config);
        return CLI_EXIT_USAGE;
    }
    if (prob) {
        if (prob->batch != 1) {
            cli_error("predict --paths: give one [problem] y0 row (the start "
                      "of every path), not %zu", prob->batch);
            return CLI_EXIT_USAGE;
        }
        t = prob->tsave;
        n = prob->nsave;
        t0 = prob->t0;
        t1 = prob->t1;
    } else {
        n = nde_trainer_test_series(tr, 0, &id, &t, &pred);
        t0 = t[0];
        t1 = t[n - 1];
    }
    if (!(y0 = malloc(N * D * sizeof *y0)) ||
        !(ysave = malloc((n * N * D + 1) * sizeof *ysave))) {
        cli_error("out of memory");
        goto done;
    }
    if (prob)
        memcpy(y0, prob->y0, D * sizeof *y0);
    else if ((rc = nde_get_doubles_n(nde_config_section(cfg, "data"), "y0",
                                     y0, D, ctx)) != NDE_OK) {
        code = cli_fail(ctx, rc);
        goto done;
    }
    for (b = 1; b < N; b++)
        memcpy(y0 + b * D, y0, D * sizeof *y0);
    clock_gettime(CLOCK_MONOTONIC, &c0);
    rc = nde_trainer_sample(tr, (uint64_t)a->seed, t0, y0, N, t1, n, t,
                            ysave, &st);
    clock_gettime(CLOCK_MONOTONIC, &c1);
    sum->eval.nfe = st.nfe;
    sum->eval.time_s = (double)(c1.tv_sec - c0.tv_sec) +
                       1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
    sum->status = rc;
    if (rc != NDE_OK) {
        nde_error_prefix(ctx, "predict failed");
        code = cli_fail(ctx, rc);
        goto done;
    }
    fprintf(stderr, "nde: %zu paths, %ld nfe in %.3f ms\n", N, st.nfe,
            1e3 * sum->eval.time_s);
    if (cli_outfile_open(&o, a->output) != 0)
        goto done;
    fputs("path,t", o.fp);
    cli_write_state_names(o.fp, nde_trainer_state_names(tr), D);
    for (b = 0; b < N; b++)
        for (k = 0; k < n; k++) {
            fprintf(o.fp, "%zu,%.17g", b, t[k]);
            for (j = 0; j < D; j++)
                fprintf(o.fp, ",%.17g", ysave[(k * N + b) * D + j]);
            fputc('\n', o.fp);
        }
    code = cli_outfile_commit(&o) ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
done:
    free(ysave);
    free(y0);
    return code;
}

int cli_predict(int argc, char **argv)
{
    train_args a;
    nde_ctx *ctx = NULL;
    nde_config *cfg = NULL;
    nde_trainer *tr = NULL;
    nde_problem prob;
    nde_stats st;
    summary sum;
    char *text = NULL;
    double *ysave = NULL;
    size_t rows = 0, want;
    double density_t1 = 0.0;
    int code, rc = NDE_OK, use_problem, density;

    if (help_wanted(argc, argv, cli_predict_help))
        return CLI_EXIT_OK;
    memset(&prob, 0, sizeof prob);
    memset(&sum, 0, sizeof sum);
    sum.eval.test_loss = NAN;
    sum.eval.test_accuracy = NAN;
    sum.eval.time_s = NAN;
    sum.final_loss = NAN;
    if ((code = parse_args("predict", argc, argv,
                           "output summary paths seed flow do", &a)))
        goto done;
    if (a.flow.base && (a.paths || a.output || a.summary || a.plot)) {
        cli_error("predict: --flow draws a picture; it takes no --paths, -o, "
                  "--summary-json or --plot");
        code = CLI_EXIT_USAGE;
        goto done;
    }
    if (a.plot && a.paths) {
        cli_error("predict: --plot draws the held-out fit; --paths samples "
                  "paths instead");
        code = CLI_EXIT_USAGE;
        goto done;
    }
    if (a.seed_given && !a.paths) {
        cli_error("predict: --seed is the Brownian path of --paths; give "
                  "--paths N too");
        code = CLI_EXIT_USAGE;
        goto done;
    }
    if (!(ctx = nde_ctx_create()) || !(cfg = nde_config_create())) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((rc = nde_checkpoint_read_config(a.config, &text, ctx)) != NDE_OK ||
        (rc = nde_config_load_string(cfg, a.config, text, ctx)) != NDE_OK) {
        code = cli_fail(ctx, rc);
        goto done;
    }
    if ((rc = cli_apply_edits(cfg, a.edits, a.nedits, ctx)) != NDE_OK) {
        code = cli_fail(ctx, rc);
        goto done;
    }
    use_problem = wants_problem(&a);
    if (use_problem && a.plot) {
        cli_error("predict: --plot draws the held-out fit, not a [problem] "
                  "solve");
        code = CLI_EXIT_USAGE;
        goto done;
    }
    density = cli_density_model(cfg, ctx);
    if (use_problem && (rc = problem_rows(cfg, &rows, ctx)) != NDE_OK) {
        code = cli_fail(ctx, rc);
        goto done;
    }
    /* the rows predictions take: a density model's samples go in chunks,
     * its picture a grid row at a time */
    want = density && a.paths > SAMPLE_CHUNK ? SAMPLE_CHUNK : (size_t)a.paths;
    want = rows > want ? rows : want;
    if (density && a.plot && want < DENSITY_GRID)
        want = DENSITY_GRID;
    if ((rc = nde_trainer_create(ctx, cfg, want, &tr)) != NDE_OK ||
        (rc = nde_trainer_checkpoint_load(tr, a.config,
                                          NDE_CHECKPOINT_PARAMS)) != NDE_OK ||
        (use_problem &&
         (rc = nde_problem_from_section(&prob,
                                        nde_config_section(cfg, "problem"),
                                        nde_trainer_field(tr)->dim, ctx)) !=
             NDE_OK) ||
        /* the flow's end (the section is checked: its default applies) */
        (density && (rc = nde_get_double(nde_config_section(cfg, "data"),
                                         "t1", &density_t1, ctx)) !=
                        NDE_OK)) {
        code = cli_fail(ctx, rc);
        goto done;
    }
    {
        const char *pic = a.flow.base ? a.flow.base : a.plot;
        char png[4096], svg[4096];
        cli_file files[9] = {{"the checkpoint", a.config, 0, 0},
                             {"-o", a.output, 1, 0},
                             {"--summary-json", a.summary, 1, 0},
                             {a.flow.base ? "--flow" : "--plot", NULL, 1, 0},
                             {a.flow.base ? "--flow" : "--plot", NULL, 1, 0}};
        if (pic) {
            snprintf(png, sizeof png, "%s.png", pic);
            snprintf(svg, sizeof svg, "%s.svg", pic);
            files[3].path = png;
            files[4].path = svg;
        }
        if ((code = check_files(cfg, files, 5, ctx)) != CLI_EXIT_OK)
            goto done;
    }
    cli_warn_shadowing(ctx);
    warn_components_changed(tr, a.config);
    if (nde_trainer_data_changed(tr))
        cli_error("warning: %s was trained on other data than its [data] "
                  "gives now (their digests differ)", a.config);
    sum.iterations = nde_trainer_iteration(tr);
    if (a.intervene && (code = intervene(ctx, tr, a.intervene)) != CLI_EXIT_OK)
        goto done;
    if (a.flow.base) {
        a.flow.title = a.config;
        code = cli_predict_flow(ctx, tr, &a.flow);
        goto done;
    }
    if (a.paths && density && !use_problem) {
        code = predict_samples(ctx, cfg, tr, &a, density_t1, &sum);
        goto summary;
    }
    if (a.paths) {
        code = predict_paths(ctx, cfg, tr, &a, use_problem ? &prob : NULL,
                             &sum);
        goto summary;
    }
    if (use_problem) {
        const size_t n = prob.nsave * prob.batch * nde_trainer_field(tr)->dim;
        struct timespec t0, t1;
        if (!(ysave = calloc(n ? n : 1, sizeof *ysave))) {
            cli_error("out of memory");
            code = CLI_EXIT_FAILURE;
            goto done;
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = nde_trainer_predict(tr, prob.t0, prob.y0, prob.batch, prob.t1,
                                 prob.nsave, prob.tsave, ysave, &st);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        sum.eval.nfe = st.nfe;
        sum.eval.time_s = (double)(t1.tv_sec - t0.tv_sec) +
                          1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    } else
        rc = nde_trainer_evaluate(tr, &sum.eval);
    sum.status = rc;
    if (rc != NDE_OK) {
        nde_error_prefix(ctx, "predict failed");
        code = cli_fail(ctx, rc);
    } else {
        fprintf(stderr, "nde: prediction %ld nfe in %.3f ms", sum.eval.nfe,
                1e3 * sum.eval.time_s);
        if (!use_problem)
            fprintf(stderr, "; test_loss %.6g", sum.eval.test_loss);
        if (!use_problem && !isnan(sum.eval.test_accuracy))
            fprintf(stderr, "; test_accuracy %.4f", sum.eval.test_accuracy);
        fputc('\n', stderr);
        if (use_problem)
            code = cli_write_solution_csv(a.output,
                                          nde_trainer_state_names(tr),
                                          nde_trainer_field(tr)->dim,
                                          prob.tsave, prob.nsave, prob.batch,
                                          ysave)
                       ? CLI_EXIT_FAILURE
                       : CLI_EXIT_OK;
        else
            code = write_heldout_csv(a.output, tr) ? CLI_EXIT_FAILURE
                                                   : CLI_EXIT_OK;
        if (code == CLI_EXIT_OK && a.plot)
            code = density ? cli_predict_density(tr, density_t1, a.plot,
                                                 a.config)
                           : cli_predict_fit(tr, a.plot, a.config);
    }
summary:
    if (a.summary && write_summary(a.summary, &sum) != 0 &&
        code == CLI_EXIT_OK)
        code = CLI_EXIT_FAILURE;
done:
    free(ysave);
    free(text);
    nde_problem_free(&prob);
    nde_trainer_destroy(tr);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    free(a.edits);
    return code;
}

/* ---- nde gradcheck ------------------------------------------------------- */

static double rel_diff(const double *a, const double *b, const size_t *idx,
                       size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        size_t j = idx ? idx[i] : i;
        num += (a[j] - b[j]) * (a[j] - b[j]);
        den += b[j] * b[j];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

int cli_gradcheck(int argc, char **argv)
{
    train_args a;
    nde_ctx *ctx = NULL;
    nde_config *cfg = NULL;
    nde_trainer *tr = NULL;
    nde_adjoint *disc = NULL;
    const nde_plugin_info *info;
    double *g_adj = NULL, *g_disc = NULL, *g_fd = NULL, *th = NULL, loss, lp,
           lm;
    size_t *idx = NULL, P, K, i;
    nde_stats st;
    int code, rc;

    if (help_wanted(argc, argv, cli_gradcheck_help))
        return CLI_EXIT_OK;
    if ((code = parse_args("gradcheck", argc, argv, "tol nparams", &a)))
        goto done;
    if (!(ctx = nde_ctx_create()) || !(cfg = nde_config_create())) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((code = load_config(ctx, cfg, &a)) != CLI_EXIT_OK)
        goto done;
    if ((rc = nde_trainer_create(ctx, cfg, 0, &tr)) != NDE_OK ||
        (rc = nde_plugin_find(ctx, NDE_KIND_ADJOINT, "discrete", &info)) !=
            NDE_OK ||
        (rc = nde_adjoint_create_from(ctx, (const nde_adjoint_type *)info,
                                      NULL, nde_trainer_solver(tr), &disc)) !=
            NDE_OK) {
        code = cli_fail(ctx, rc);
        goto done;
    }
    cli_warn_shadowing(ctx);
    P = nde_trainer_nparams(tr);
    K = (size_t)a.nprobe < P ? (size_t)a.nprobe : P;
    g_adj = calloc(P + 1, sizeof *g_adj);
    g_disc = calloc(P + 1, sizeof *g_disc);
    g_fd = calloc(P + 1, sizeof *g_fd);
    th = calloc(P + 1, sizeof *th);
    idx = calloc(P + 1, sizeof *idx);
    if (!g_adj || !g_disc || !g_fd || !th || !idx) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    memcpy(th, nde_trainer_params(tr), P * sizeof *th);
    /* K distinct parameters by a partial Fisher-Yates shuffle drawn from
     * the probe stream. */
    {
        uint64_t s = nde_seed_derive(nde_trainer_settings(tr)->seed,
                                     NDE_STREAM_PROBE);
        for (i = 0; i < P; i++)
            idx[i] = i;
        for (i = 0; i < K; i++) {
            size_t j = i + (size_t)(nde_seed_derive(s, i) % (P - i));
            size_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
    }
    nde_trainer_probe(tr);
    if ((rc = nde_trainer_loss_grad(tr, NULL, th, &loss, g_adj, &st)) !=
            NDE_OK ||
        (rc = nde_trainer_loss_grad(tr, disc, th, &loss, g_disc, &st)) !=
            NDE_OK) {
        code = cli_fail(ctx, rc);
        goto done;
    }
    for (i = 0; i < K; i++) {
        size_t j = idx[i];
        double h = 1e-6 * fmax(1.0, fabs(th[j])), keep = th[j];
        th[j] = keep + h;
        rc = nde_trainer_loss_grad(tr, NULL, th, &lp, NULL, &st);
        th[j] = keep - h;
        if (rc == NDE_OK)
            rc = nde_trainer_loss_grad(tr, NULL, th, &lm, NULL, &st);
        th[j] = keep;
        if (rc != NDE_OK) {
            code = cli_fail(ctx, rc);
            goto done;
        }
        g_fd[j] = (lp - lm) / (2.0 * h);
    }
    {
        const char *name = nde_trainer_adjoint(tr)->type->info.name;
        double r_ad = rel_diff(g_adj, g_disc, NULL, P);
        double r_af = rel_diff(g_adj, g_fd, idx, K);
        double r_df = rel_diff(g_disc, g_fd, idx, K);
        char pname[128];

        printf("loss %.17g, %zu parameters, %zu checked by finite "
               "differences\n", loss, P, K);
        printf("%-12s %-16s %-24s %s\n", "parameter", name, "discrete",
               "finite difference");
        for (i = 0; i < K; i++) {
            nde_trainer_param_name(tr, idx[i], pname, sizeof pname);
            printf("%-12s %-16.9g %-24.9g %.9g\n", pname, g_adj[idx[i]],
                   g_disc[idx[i]], g_fd[idx[i]]);
        }
        printf("relative difference %s vs discrete: %.3g\n", name, r_ad);
        printf("relative difference %s vs finite differences: %.3g\n", name,
               r_af);
        printf("relative difference discrete vs finite differences: %.3g\n",
               r_df);
        code = (r_ad <= a.tol && r_af <= a.tol) ? CLI_EXIT_OK
                                                : CLI_EXIT_FAILURE;
        if (code != CLI_EXIT_OK)
            cli_error("gradcheck: a relative difference exceeds --tol %g",
                      a.tol);
    }
done:
    free(idx);
    free(th);
    free(g_fd);
    free(g_disc);
    free(g_adj);
    nde_adjoint_destroy(disc);
    nde_trainer_destroy(tr);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    free(a.edits);
    return code;
}
