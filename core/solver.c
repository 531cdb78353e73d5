/* Generic solver object: composition from a config section, lifecycle, and
 * the checks that a tableau plugin is well formed. */
#include <math.h>
#include <stdlib.h>

#include "nde/nde.h"
#include "internal.h"
#include "rk.h"

int nde_solver_create(nde_ctx *ctx, const nde_config *cfg, const char *section,
                      nde_field *field, nde_solver **out)
{
    const nde_solver_type *type;
    const nde_plugin_info *info;
    nde_section *sec;
    int rc;

    *out = NULL;
    if ((rc = nde_config_require(cfg, section, &sec, ctx)) != NDE_OK)
        return rc;
    if ((rc = nde_section_plugin(ctx, sec, NDE_KIND_SOLVER, &info)) != NDE_OK)
        return rc;
    type = (const nde_solver_type *)info;
    {
        const nde_key *const tables[] = {nde_solve_keys, type->info.keys,
                                         NULL};
        if ((rc = nde_section_check(sec, tables, ctx)) != NDE_OK)
            return rc;
    }
    return nde_solver_create_from(ctx, type, field, out);
}

/* Structure of the tableau against the declared flags: a plugin that
 * claims what its tableau cannot deliver is refused at create. */
static int check_tableau(nde_ctx *ctx, const nde_solver_type *type)
{
    const nde_rk_tableau *tab = type->tableau;
    const char *name = type->info.name;
    const unsigned flags = type->info.flags;
    int s;

    if (!tab)
        return nde_error(ctx, NDE_EPLUGIN, "solver '%s' has no tableau", name);
    s = tab->stages;
    if (s < 1 || s > NDE_RK_MAX_STAGES || !tab->c || !tab->a || !tab->b)
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': tableau needs 1..%d stages and c, a, b",
                         name, NDE_RK_MAX_STAGES);
    for (int i = 0; i < s; i++)
        for (int j = i; j < s; j++)
            if (tab->a[i * s + j] != 0.0)
                return nde_error(ctx, NDE_EPLUGIN,
                                 "solver '%s': a[%d][%d] != 0, the tableau "
                                 "is not explicit", name, i, j);
    if (tab->fsal) {
        if (tab->c[s - 1] != 1.0 || tab->b[s - 1] != 0.0)
            return nde_error(ctx, NDE_EPLUGIN,
                             "solver '%s': FSAL needs c_s = 1 and b_s = 0",
                             name);
        for (int j = 0; j < s; j++)
            if (tab->a[(s - 1) * s + j] != tab->b[j])
                return nde_error(ctx, NDE_EPLUGIN,
                                 "solver '%s': FSAL needs the last row of a "
                                 "to equal b", name);
    }
    if (tab->stiff_stage >= 0 &&
        (!tab->fsal || tab->stiff_stage >= s - 1 ||
         tab->c[tab->stiff_stage] != 1.0 || !(tab->stability_size > 0.0)))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': the stiffness stage must have c = 1 in "
                         "an FSAL tableau and stability_size > 0", name);
    if (tab->dense_degree < 0 || (tab->dense_degree > 0 && !tab->dense))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': dense_degree without coefficients",
                         name);
    if (!!(flags & NDE_CAP_ADAPTIVE) != !!tab->btilde ||
        !!(flags & NDE_CAP_DENSE) != (tab->dense_degree > 0) ||
        !!(flags & NDE_CAP_STIFFNESS) != (tab->stiff_stage >= 0) ||
        !!(flags & NDE_CAP_FSAL) != !!tab->fsal)
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': capability flags do not match its "
                         "tableau (adaptive = error weights, dense = dense "
                         "coefficients, stiffness = stiff stage, fsal)",
                         name);
    if (type->order < 1 || ((flags & NDE_CAP_ADAPTIVE) && type->error_order < 1))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': order / error_order not set", name);
    return NDE_OK;
}

int nde_solver_create_from(nde_ctx *ctx, const nde_solver_type *type,
                           nde_field *field, nde_solver **out)
{
    nde_solver *s;
    int rc;

    *out = NULL;
    if (type->info.kind != NDE_KIND_SOLVER)
        return nde_error(ctx, NDE_EPLUGIN, "plugin '%s' is not a solver",
                         type->info.name);
    if ((rc = check_tableau(ctx, type)) != NDE_OK)
        return rc;
    if (!field || field->batch_max == 0 || field->dim == 0)
        return nde_error(ctx, NDE_EINVAL,
                         "solver '%s': needs a created field", type->info.name);
    if (!(s = calloc(1, sizeof *s)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory creating solver '%s'",
                         type->info.name);
    s->type = type;
    s->ctx = ctx;
    s->field = field;
    s->batch_max = field->batch_max;
    s->batch = field->batch_max;
    rc = nde_rk_work_create(type->tableau->stages,
                            field->batch_max * field->dim,
                            (nde_rk_work **)&s->work);
    if (rc != NDE_OK) {
        nde_solver_destroy(s);
        return nde_error(ctx, rc, "out of memory for the workspace of solver "
                         "'%s' (%zu rows of %zu)", type->info.name,
                         field->batch_max, field->dim);
    }
    *out = s;
    return NDE_OK;
}

void nde_solver_destroy(nde_solver *s)
{
    if (!s)
        return;
    nde_rk_work_destroy(s->work);
    free(s);
}

int nde_solver_set_batch(nde_solver *s, size_t batch)
{
    if (batch == 0 || batch > s->batch_max)
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s': batch %zu outside 1..%zu",
                         s->type->info.name, batch, s->batch_max);
    s->batch = batch;
    nde_solver_invalidate(s);
    return NDE_OK;
}
