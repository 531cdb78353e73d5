/* Generic regularizer object: composition from a config section (with the
 * check of its needs against the solver), weight schedule. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "internal.h"

const nde_key nde_regularizer_keys[] = {
    {"weight", NDE_KEY_DOUBLE, NULL,
     "weight of the regularizer in the loss (>= 0); with schedule = "
     "exponential, the first iteration's"},
    {"schedule", NDE_KEY_WORD, "constant",
     "constant, or exponential: decay from weight to weight_final over the "
     "run (Pal et al. anneal e.g. 100 -> 10)"},
    {"weight_final", NDE_KEY_DOUBLE, "",
     "the last iteration's weight (schedule = exponential; > 0)"},
    {"clip", NDE_KEY_DOUBLE, "0",
     "cap the norm of weight * dR/dtheta (the direct part) at clip times "
     "the norm of the gradient through the adjoint (the data loss's, and "
     "the cotangents regularizers hand it) of the same iteration; 0 = off. "
     "Tames a penalty whose one-sample gradient has rare huge spikes "
     "(local on stiff, slow-fast systems)"},
    {NULL, 0, NULL, NULL}};

double nde_weight_at(const nde_weight_schedule *w, long i, long n)
{
    if (!w->exponential || n <= 1 || w->weight == w->weight_final)
        return w->weight;
    return w->weight * pow(w->weight_final / w->weight,
                           (double)i / (double)(n - 1));
}

static int read_schedule(nde_section *sec, nde_weight_schedule *w,
                         nde_ctx *ctx)
{
    const char *schedule;
    int rc;

    memset(w, 0, sizeof *w);
    if ((rc = nde_get_double(sec, "weight", &w->weight, ctx)) ||
        (rc = nde_get_string(sec, "schedule", &schedule, ctx)) ||
        (rc = nde_get_double_in(sec, "clip", 0, 0, HUGE_VAL, 1, &w->clip,
                                ctx)))
        return rc;
    if (!(w->weight >= 0))
        return nde_section_error(sec, "weight", ctx, "must be >= 0, got %g",
                                 w->weight);
    w->weight_final = w->weight;
    if (strcmp(schedule, "exponential") == 0) {
        w->exponential = 1;
        if (!nde_section_has(sec, "weight_final"))
            return nde_section_error(sec, "weight_final", ctx,
                                     "missing required key (schedule = "
                                     "exponential decays to it)");
        if ((rc = nde_get_double(sec, "weight_final", &w->weight_final, ctx)))
            return rc;
        if (!(w->weight_final > 0) || !(w->weight > 0))
            return nde_section_error(sec, "weight_final", ctx,
                                     "exponential decay needs weight > 0 "
                                     "and weight_final > 0");
    } else if (strcmp(schedule, "constant") == 0) {
        if (nde_section_has(sec, "weight_final"))
            return nde_section_error(sec, "weight_final", ctx,
                                     "only used with schedule = exponential");
    } else {
        return nde_section_error(sec, "schedule", ctx,
                                 "expected constant or exponential, got '%s'",
                                 schedule);
    }
    return NDE_OK;
}

int nde_regularizer_create(nde_ctx *ctx, const nde_config *cfg,
                           const char *section, nde_solver *s,
                           nde_weight_schedule *w, nde_regularizer **out)
{
    const nde_plugin_info *info;
    nde_section *sec;
    int rc;

    *out = NULL;
    if ((rc = nde_config_require(cfg, section, &sec, ctx)) ||
        (rc = nde_section_plugin(ctx, sec, NDE_KIND_REGULARIZER, &info)) ||
        (rc = nde_regularizer_create_from(ctx,
                                          (const nde_regularizer_type *)info,
                                          sec, s, out)))
        return rc;
    if ((rc = read_schedule(sec, w, ctx))) {
        nde_regularizer_destroy(*out);
        *out = NULL;
    }
    return rc;
}

int nde_regularizer_create_from(nde_ctx *ctx, const nde_regularizer_type *type,
                                nde_section *sec, nde_solver *s,
                                nde_regularizer **out)
{
    const nde_key *const tables[] = {nde_regularizer_keys, type->info.keys,
                                     NULL};
    nde_regularizer *r;
    int rc;

    *out = NULL;
    if (type->info.kind != NDE_KIND_REGULARIZER)
        return nde_error(ctx, NDE_EPLUGIN, "plugin '%s' is not a regularizer",
                         type->info.name);
    if (!type->create || !type->destroy || !type->after_solve)
        return nde_error(ctx, NDE_EPLUGIN,
                         "regularizer plugin '%s' lacks a required operation "
                         "(create, destroy, after_solve)", type->info.name);
    if (!s)
        return nde_error(ctx, NDE_EINVAL, "regularizer '%s': needs a solver",
                         type->info.name);
    if ((sec && (rc = nde_section_check(sec, tables, ctx)) != NDE_OK) ||
        (rc = nde_check_needs(ctx, &type->info, sec, type->info.needs, s)))
        return rc;
    if (!(r = calloc(1, sizeof *r)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory creating "
                         "regularizer '%s'", type->info.name);
    r->type = type;
    r->ctx = ctx;
    r->solver = s;
    if ((rc = type->create(r, sec, s, ctx)) != NDE_OK ||
        (rc = nde_check_needs(ctx, &type->info, sec, r->needs, s))) {
        nde_regularizer_destroy(r);
        return rc;
    }
    if (r->proximal && !type->prox) {
        nde_regularizer_destroy(r);
        return nde_error(ctx, NDE_EPLUGIN, "regularizer plugin '%s' sets "
                         "proximal but has no prox operation",
                         type->info.name);
    }
    *out = r;
    return NDE_OK;
}

void nde_regularizer_destroy(nde_regularizer *r)
{
    if (!r)
        return;
    r->type->destroy(r);
    free(r);
}

int nde_regularizer_step_noise(const nde_regularizer_input *in, size_t j,
                               double *dw)
{
    const nde_trajectory *fwd = in->fwd;
    const double te = j + 1 < fwd->nsteps ? fwd->t[j + 1] : in->t1;

    if (!in->opts->brownian)
        return nde_error(in->solver->ctx, NDE_EINVAL, "replaying step %zu of "
                         "an SDE solve needs its Brownian path (solve "
                         "options: brownian)", j);
    return nde_solver_noise(in->solver, in->opts->brownian, fwd->t[j], te,
                            dw);
}

int nde_regularizer_replay_step(const nde_regularizer_input *in, size_t j,
                                const double *y, double *y_next, double *err,
                                double *dw)
{
    nde_solver *s = in->solver;
    const double t = in->fwd->t[j], h = in->fwd->h[j];
    int rc;

    /* A fresh first stage: an FSAL solver's belongs to its last state. */
    nde_solver_invalidate(s);
    if (!nde_solver_is_sde(s))
        return nde_solver_step(s, in->theta, t, h, y, y_next, err);
    if ((rc = nde_regularizer_step_noise(in, j, dw)))
        return rc;
    return err ? nde_solver_advance_err(s, in->theta, t, h, dw, y, NULL,
                                        y_next, NULL, err)
               : nde_solver_advance(s, in->theta, t, h, dw, y, NULL, y_next,
                                    NULL);
}
