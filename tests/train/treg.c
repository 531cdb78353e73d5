/*
 * treg.c - a test regularizer module for the CLI tests of tests/train:
 * R = ||theta||^2 (gradient 2 theta, direct), no cotangents; `needs`
 * declares what it asks of the solve, so capability refusals can be tested
 * without the real plugins.
 */
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

static const nde_key treg_keys[] = {
    {"needs", NDE_KEY_WORDS, "",
     "what it declares: error_est, stiffness, steps, dense, step_vjp"},
    {NULL, 0, NULL, NULL}};

static int treg_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                       nde_ctx *ctx)
{
    static const struct {
        const char *word;
        unsigned flag;
    } flags[] = {{"error_est", NDE_NEEDS_ERROR_EST},
                 {"stiffness", NDE_NEEDS_STIFFNESS},
                 {"steps", NDE_NEEDS_STEPS},
                 {"dense", NDE_NEEDS_DENSE},
                 {"step_vjp", NDE_NEEDS_STEP_VJP}};
    char **words = NULL;
    size_t n = 0, i, j;
    int rc;

    (void)s;
    if (!sec || !nde_section_has(sec, "needs"))
        return NDE_OK;
    if ((rc = nde_get_words(sec, "needs", &words, &n, ctx)) != NDE_OK)
        return rc;
    for (i = 0; i < n && rc == NDE_OK; i++) {
        for (j = 0; j < sizeof flags / sizeof *flags; j++)
            if (strcmp(words[i], flags[j].word) == 0)
                break;
        if (j == sizeof flags / sizeof *flags)
            rc = nde_section_error(sec, "needs", ctx, "unknown need '%s'",
                                   words[i]);
        else
            r->needs |= flags[j].flag;
    }
    nde_strings_free(words);
    return rc;
}

static void treg_destroy(nde_regularizer *r) { (void)r; }

static int treg_after(nde_regularizer *r, const nde_regularizer_input *in,
                      nde_regularizer_output *out)
{
    const size_t P = r->solver->field->nparams;
    double sum = 0.0;

    for (size_t i = 0; i < P; i++) {
        sum += in->theta[i] * in->theta[i];
        out->thetabar[i] += 2.0 * in->weight * in->theta[i];
    }
    out->value = sum;
    return NDE_OK;
}

static const nde_regularizer_type treg = {
    NDE_REGULARIZER_INFO(
        .name = "treg",
        .description = "test: ||theta||^2 with declared needs",
        .keys = treg_keys,
        .version = "1"),
    treg_create, treg_destroy, NULL, treg_after, NULL};

NDE_MODULE(&treg.info);
