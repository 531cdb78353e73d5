/*
 * params.c - `nde params CKPT [--json]`: every parameter of a trained
 * model by name (the field's, e.g. an expert's rates or W1[3,0], then the
 * task's, e.g. lift.W[0,1]), with its value: `name = value` lines, or
 * one JSON object in parameter order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nde/train.h"

const char cli_params_help[] =
    "Usage: nde params CKPT [--json]\n"
    "\n"
    "Print every parameter of the model trained into checkpoint CKPT, by\n"
    "name, in the order of theta: `name = value` per line (17 significant\n"
    "digits), or with --json one object {\"name\": value, ...}. The names\n"
    "are the field's (an expr field's own, mlp's W1[o,i] and b1[o], a sum's\n"
    "parts prefixed) and the task's (lift.W[d,i], out.b[c], ...). A learned\n"
    "initial state of a model in units of its own ([data] normalize) is\n"
    "followed by its value in the data's units: `y0[0,1] = -0.4  # lynx =\n"
    "21.3 in the data's units` (text only).\n";

static void print_params(const nde_trainer *tr, int json)
{
    const double *theta = nde_trainer_params(tr);
    const size_t P = nde_trainer_nparams(tr);
    const char *const *states = nde_trainer_state_names(tr);
    char name[128];
    double value;
    int j;

    if (json)
        fputc('{', stdout);
    for (size_t i = 0; i < P; i++) {
        nde_trainer_param_name(tr, i, name, sizeof name);
        if (json) {
            /* names are [A-Za-z0-9_.,\[\]]: nothing to escape */
            printf("%s\"%s\": ", i ? ", " : "", name);
            cli_json_double(stdout, theta[i]);
        } else if ((j = nde_trainer_param_data_value(tr, i, &value)) >= 0) {
            printf("%s = %.17g  # ", name, theta[i]);
            if (states)
                printf("%s", states[j]);
            else
                printf("y%d", j);
            printf(" = %.17g in the data's units\n", value);
        } else
            printf("%s = %.17g\n", name, theta[i]);
    }
    if (json)
        fputs("}\n", stdout);
}

int cli_params(int argc, char **argv)
{
    const char *ckpt = NULL;
    nde_ctx *ctx = NULL;
    nde_config *cfg = NULL;
    nde_trainer *tr = NULL;
    int json = 0, rc, code = CLI_EXIT_USAGE;

    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(cli_params_help, stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("params: unknown option '%s' (try `nde params "
                      "--help`)", argv[i]);
            return CLI_EXIT_USAGE;
        } else if (ckpt) {
            cli_error("params: more than one checkpoint ('%s', '%s')", ckpt,
                      argv[i]);
            return CLI_EXIT_USAGE;
        } else
            ckpt = argv[i];
    }
    if (!ckpt) {
        cli_error("params: no checkpoint (try `nde params --help`)");
        return CLI_EXIT_USAGE;
    }
    if (!(ctx = nde_ctx_create()) || !(cfg = nde_config_create())) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((rc = cli_trainer_load(ctx, cfg, ckpt, 0, &tr)) != NDE_OK) {
        code = cli_fail(ctx, rc);
        goto done;
    }
    print_params(tr, json);
    code = fflush(stdout) == 0 && !ferror(stdout) ? CLI_EXIT_OK
                                                  : CLI_EXIT_FAILURE;
    if (code != CLI_EXIT_OK)
        cli_error("params: cannot write the parameters: %m");
done:
    nde_trainer_destroy(tr);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    return code;
}
