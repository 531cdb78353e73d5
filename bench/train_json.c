/*
 * train_json.c - one training run of a config for bench/peers (the
 * driver next to the torchdiffeq Fashion-MNIST classifier), as one JSON
 * line: every iteration's wall time (nde_trainer_step's) and NFE, and the
 * held-out evaluations with the training time spent before each.
 *
 * Run: build/bench/bench_train_json CONFIG [-s SECTION.KEY=VALUE]...
 *          [--iters N] [--eval-every K] [--params FILE]
 * --iters N: iterations (default [train] iterations); --eval-every K:
 * evaluate after every K iterations and after the last (0: only after
 * the last; default [train] eval_every); --params FILE: write the initial
 * parameters (nde_trainer_params: nparams raw host-order doubles, the
 * layout of nde/train.h) before the first iteration. Evaluations are not
 * counted in the training time. Checkpoints and metrics are not written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "nde/nde.h"
#include "nde/train.h"

static int usage(void)
{
    fprintf(stderr, "usage: bench_train_json CONFIG [-s SECTION.KEY=VALUE]"
            "... [--iters N] [--eval-every K] [--params FILE]\n");
    return 2;
}

/* Iterations and evaluations as JSON; steps[i] is iteration i + 1. */
static int train(nde_trainer *tr, long iters, long every)
{
    nde_train_step *steps = malloc((size_t)iters * sizeof *steps);
    double train_s = 0.0;
    int rc = NDE_OK;
    long i;

    if (!steps)
        return NDE_ENOMEM;
    printf("{\"task\": \"train\", \"nparams\": %zu, \"evals\": [",
           nde_trainer_nparams(tr));
    for (i = 0; i < iters; i++) {
        if ((rc = nde_trainer_step(tr, &steps[i])) != NDE_OK)
            break;
        train_s += steps[i].time_s;
        if ((every > 0 && (i + 1) % every == 0) || i + 1 == iters) {
            nde_eval_result e;
            char acc[32] = "null"; /* NAN: not a classification */
            if ((rc = nde_trainer_evaluate(tr, &e)) != NDE_OK)
                break;
            if (!isnan(e.test_accuracy))
                snprintf(acc, sizeof acc, "%.6f", e.test_accuracy);
            printf("%s{\"iteration\": %ld, \"train_s\": %.6f, "
                   "\"test_loss\": %.9g, \"test_accuracy\": %s}",
                   every > 0 && i + 1 > every ? ", " : "", i + 1, train_s,
                   e.test_loss, acc);
        }
    }
    if (rc == NDE_OK) {
        printf("], \"times_ms\": [");
        for (i = 0; i < iters; i++)
            printf("%s%.6f", i ? ", " : "", 1e3 * steps[i].time_s);
        printf("], \"nfe_fwd\": [");
        for (i = 0; i < iters; i++)
            printf("%s%ld", i ? ", " : "", steps[i].nfe_forward);
        printf("], \"nfe_bwd\": [");
        for (i = 0; i < iters; i++)
            printf("%s%ld", i ? ", " : "", steps[i].nfe_backward);
        printf("], \"loss\": [");
        for (i = 0; i < iters; i++)
            printf("%s%.9g", i ? ", " : "", steps[i].loss);
        printf("]}\n");
    }
    free(steps);
    return rc;
}

int main(int argc, char **argv)
{
    const char *params = NULL;
    long iters = -1, every = -1;
    nde_config *cfg = NULL;
    nde_trainer *tr = NULL;
    nde_ctx *ctx = NULL;
    int k, rc = 2;

    if (argc < 2 || argv[1][0] == '-')
        return usage();
    if (!(ctx = nde_ctx_create()) || !(cfg = nde_config_create())) {
        rc = 1;
        goto done;
    }
    if ((rc = nde_config_load_file(cfg, argv[1], ctx)) != NDE_OK)
        goto fail;
    for (k = 2; k < argc; k += 2) {
        const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
        rc = 2;
        if (!v)
            goto bad_usage;
        if (strcmp(a, "-s") == 0) {
            if ((rc = nde_config_override(cfg, v, ctx)) != NDE_OK)
                goto fail;
        } else if (strcmp(a, "--iters") == 0) {
            if ((iters = atol(v)) < 1)
                goto bad_usage;
        } else if (strcmp(a, "--eval-every") == 0) {
            if ((every = atol(v)) < 0 || (every == 0 && strcmp(v, "0")))
                goto bad_usage;
        } else if (strcmp(a, "--params") == 0) {
            params = v;
        } else {
            goto bad_usage;
        }
    }
    if ((rc = nde_trainer_create(ctx, cfg, 0, &tr)) != NDE_OK)
        goto fail;
    if (iters < 0)
        iters = nde_trainer_settings(tr)->iterations;
    if (every < 0)
        every = nde_trainer_settings(tr)->eval_every;
    if (params && bench_write_doubles(params, nde_trainer_params(tr),
                                      nde_trainer_nparams(tr))) {
        rc = 1;
        goto done;
    }
    if ((rc = train(tr, iters, every)) != NDE_OK) {
        printf("\n"); /* end the partial line */
        goto fail;
    }
    goto done;
bad_usage:
    usage();
    goto done;
fail:
    fprintf(stderr, "bench_train_json: %s\n", nde_ctx_message(ctx));
    rc = rc == NDE_ECONFIG ? 2 : 1;
done:
    nde_trainer_destroy(tr);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    return rc;
}
