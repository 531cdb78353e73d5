/* Generic adjoint object: composition from a config section, lifecycle. */
#include <stdlib.h>

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
    if (sec && (rc = nde_section_check(sec, tables, ctx)) != NDE_OK)
        return rc;
    if (!(a = calloc(1, sizeof *a)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory creating adjoint "
                         "'%s'", type->info.name);
    a->type = type;
    a->ctx = ctx;
    a->solver = s;
    if ((rc = type->create(a, sec, s, ctx)) != NDE_OK) {
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
