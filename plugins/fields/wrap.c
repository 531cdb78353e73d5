/* wrap.c - see wrap.h. */
#include <stdio.h>
#include <stdlib.h>

#include "wrap.h"

int field_part_create(nde_field *f, nde_section *sec, const char *key,
                      nde_ctx *ctx, const char **name, nde_field **part)
{
    char section[160];
    int rc;

    if ((rc = nde_get_string(sec, key, name, ctx)) != NDE_OK)
        return rc;
    snprintf(section, sizeof section, "field.%s", *name);
    if (!nde_config_section(nde_section_config(sec), section))
        return nde_section_error(sec, key, ctx, "'%s' has no section [%s]",
                                 *name, section);
    return nde_field_create(ctx, nde_section_config(sec), section,
                            f->batch_max, part);
}

int field_wrap_inner(nde_field *f, nde_section *sec, const char *what,
                     nde_ctx *ctx, const char **name, nde_field **inner)
{
    int rc;

    if ((rc = field_part_create(f, sec, "inner", ctx, name, inner)))
        return rc;
    if ((*inner)->noise != NDE_NOISE_NONE)
        return nde_section_error(sec, "inner", ctx, "'%s' has a diffusion; "
                                 "%s is an ODE", *name, what);
    return NDE_OK;
}

int field_wrap_init_params(nde_field *f, double *theta, uint64_t seed)
{
    const field_wrap *w = f->state;
    return nde_field_init_params(w->inner, theta, seed);
}

int field_wrap_param_name(const nde_field *f, size_t i, char *buf,
                          size_t len)
{
    const field_wrap *w = f->state;
    nde_field_param_name(w->inner, i, buf, len);
    return NDE_OK;
}

int field_wrap_buf(nde_field *f, field_wrap *w, nde_ctx *ctx)
{
    if (!(w->buf = malloc(f->batch_max * w->inner->dim * sizeof *w->buf)))
        return nde_error(ctx, NDE_ENOMEM, "%s: out of memory",
                         f->type->info.name);
    return NDE_OK;
}

void field_wrap_destroy(nde_field *f)
{
    field_wrap *w = f->state;
    if (!w)
        return;
    nde_field_destroy(w->inner);
    free(w->buf);
    free(w);
    f->state = NULL;
}
