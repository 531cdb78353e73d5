/* Generic adjoint object: composition from a config section (with the
 * check of its needs against the solver), lifecycle; the cotangent jumps
 * shared by the continuous adjoints. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "internal.h"

int nde_adjoint_create(nde_ctx *ctx, const nde_config *cfg,
                       const char *section, const char *default_plugin,
                       nde_solver *s, nde_adjoint **out)
{
    nde_section *sec = cfg ? nde_config_section(cfg, section) : NULL;
    const nde_plugin_info *info;
    int rc;

    *out = NULL;
    if (sec)
        rc = nde_section_plugin(ctx, sec, NDE_KIND_ADJOINT, &info);
    else if (default_plugin)
        rc = nde_plugin_find(ctx, NDE_KIND_ADJOINT, default_plugin, &info);
    else
        return nde_error(ctx, NDE_ECONFIG, "missing section [%s]", section);
    if (rc != NDE_OK)
        return rc;
    return nde_adjoint_create_from(ctx, (const nde_adjoint_type *)info, sec,
                                   s, out);
}

int nde_adjoint_create_from(nde_ctx *ctx, const nde_adjoint_type *type,
                            nde_section *sec, nde_solver *s,
                            nde_adjoint **out)
{
    const nde_key *const tables[] = {type->info.keys, NULL};
    nde_adjoint *a;
    int rc;

    *out = NULL;
    if (type->info.kind != NDE_KIND_ADJOINT)
        return nde_error(ctx, NDE_EPLUGIN, "plugin '%s' is not an adjoint",
                         type->info.name);
    if (!type->create || !type->destroy || !type->gradient)
        return nde_error(ctx, NDE_EPLUGIN,
                         "adjoint plugin '%s' lacks a required operation "
                         "(create, destroy, gradient)", type->info.name);
    if (!s)
        return nde_error(ctx, NDE_EINVAL, "adjoint '%s': needs a solver",
                         type->info.name);
    if ((sec && (rc = nde_section_check(sec, tables, ctx)) != NDE_OK) ||
        (rc = nde_check_needs(ctx, &type->info, sec, type->info.needs, s)))
        return rc;
    if (!(a = calloc(1, sizeof *a)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory creating adjoint "
                         "'%s'", type->info.name);
    a->type = type;
    a->ctx = ctx;
    a->solver = s;
    if ((rc = type->create(a, sec, s, ctx)) != NDE_OK ||
        (rc = nde_check_needs(ctx, &type->info, sec, a->record, s))) {
        nde_adjoint_destroy(a);
        return rc;
    }
    *out = a;
    return NDE_OK;
}

void nde_adjoint_destroy(nde_adjoint *a)
{
    if (!a)
        return;
    a->type->destroy(a);
    free(a);
}

int nde_backward_settings_read(nde_backward_settings *b,
                               const nde_section *sec, nde_ctx *ctx)
{
    const char *norm = "full";
    int rc;

    b->rtol = b->atol = NAN;
    b->seminorm = 0;
    if (!sec)
        return NDE_OK;
    if ((nde_section_has(sec, "rtol") &&
         (rc = nde_get_double(sec, "rtol", &b->rtol, ctx))) ||
        (nde_section_has(sec, "atol") &&
         (rc = nde_get_double(sec, "atol", &b->atol, ctx))) ||
        (rc = nde_get_string(sec, "norm", &norm, ctx)))
        return rc;
    if (b->rtol < 0 || b->atol < 0)
        return nde_section_error(sec, b->rtol < 0 ? "rtol" : "atol", ctx,
                                 "must be >= 0");
    if (strcmp(norm, "full") != 0 && strcmp(norm, "seminorm") != 0)
        return nde_section_error(sec, "norm", ctx,
                                 "'%s': expected full or seminorm", norm);
    b->seminorm = strcmp(norm, "seminorm") == 0;
    return NDE_OK;
}

void nde_backward_settings_apply(const nde_backward_settings *b,
                                 const nde_solve_opts *fwd,
                                 nde_solve_opts *bo)
{
    *bo = *fwd;
    bo->record = NULL;
    bo->record_rows = NULL;
    bo->event = NULL;
    bo->event_t = NULL;
    bo->rtol = isnan(b->rtol) ? fwd->rtol : b->rtol;
    bo->atol = isnan(b->atol) ? fwd->atol : b->atol;
}

int nde_jumps_plan(nde_jumps *j, const nde_trajectory *fwd,
                   const nde_cotangent *ct, size_t nct, size_t n,
                   size_t offset, double *z_t1, nde_ctx *ctx)
{
    const double dir = fwd->t1 >= fwd->t0 ? 1.0 : -1.0;
    size_t lo = 0, hi = nct;

    if (j->cap < nct) {
        double *t = realloc(j->tstops, nct * sizeof *t);
        size_t *k;
        if (t)
            j->tstops = t;
        if (!t || !(k = realloc(j->ct_of_stop, nct * sizeof *k)))
            return nde_error(ctx, NDE_ENOMEM,
                             "out of memory for %zu cotangents", nct);
        j->ct_of_stop = k;
        j->cap = nct;
    }
    j->ct = ct;
    j->n = n;
    j->offset = offset;
    while (hi > 0 && dir * (ct[hi - 1].t - fwd->t1) >= 0)
        for (size_t m = 0, k = --hi; m < n; m++)
            z_t1[offset + m] += ct[k].g[m];
    while (lo < hi && dir * (ct[lo].t - fwd->t0) <= 0)
        lo++;
    j->lo = lo;
    j->nstops = 0;
    for (size_t k = hi; k-- > lo;) {
        j->tstops[j->nstops] = ct[k].t;
        j->ct_of_stop[j->nstops++] = k;
    }
    return NDE_OK;
}

static int add_jump(void *user, size_t i, double t, double *z)
{
    const nde_jumps *j = user;
    const double *g = j->ct[j->ct_of_stop[i]].g;
    double *a = z + j->offset;

    (void)t;
    for (size_t m = 0; m < j->n; m++)
        a[m] += g[m];
    return NDE_OK;
}

void nde_jumps_use(nde_jumps *j, nde_solve_opts *o)
{
    o->tstops = j->tstops;
    o->ntstops = j->nstops;
    o->at_tstop = add_jump;
    o->at_tstop_user = j;
}

void nde_jumps_finish(const nde_jumps *j, double *z_t0)
{
    for (size_t k = 0; k < j->lo; k++)
        for (size_t m = 0; m < j->n; m++)
            z_t0[j->offset + m] += j->ct[k].g[m];
}

void nde_jumps_free(nde_jumps *j)
{
    free(j->tstops);
    free(j->ct_of_stop);
    memset(j, 0, sizeof *j);
}
