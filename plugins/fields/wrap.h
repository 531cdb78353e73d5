/*
 * wrap.h - the inner field of a wrapper field (second_order, controlled):
 * a field that changes how another one's outputs are used, the other
 * configured in its own section [field.NAME] named by the `inner` key.
 */
#ifndef NDE_FIELDS_WRAP_H
#define NDE_FIELDS_WRAP_H

#include <nde/field.h>

/* Create the ODE field named by sec's `inner` key (its name into *name,
 * the section's) for f's batch_max into *inner (owned by the caller, to
 * be destroyed also on failure). `what`
 * names the wrapper in messages ("a second-order field"). NDE_ECONFIG,
 * naming the key, when the section is missing or the field has a
 * diffusion. */
int field_wrap_inner(nde_field *f, nde_section *sec, const char *what,
                     nde_ctx *ctx, const char **name, nde_field **inner);

#endif
