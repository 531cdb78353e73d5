/* Core-private declarations shared between core/ files (never installed). */
#ifndef NDE_INTERNAL_H
#define NDE_INTERNAL_H

#include "nde/nde.h"

typedef struct nde_registry nde_registry;

nde_registry *nde_registry_create(void);
void nde_registry_destroy(nde_registry *reg);
nde_registry *nde_ctx_registry(nde_ctx *ctx);

/* Look up the `plugin` key of a section and load that plugin of `kind`;
 * errors name the section and key. */
int nde_section_plugin(nde_ctx *ctx, nde_section *sec, nde_kind kind,
                       const nde_plugin_info **out);

/* The one composition check of an adjoint's or regularizer's needs (who's
 * info.needs, or an instance's) against the forward solver's
 * capabilities: NDE_ECAPABILITY naming the section (sec may be NULL), the
 * component's kind and name, the solver and the missing capability. */
int nde_check_needs(nde_ctx *ctx, const nde_plugin_info *who,
                    const nde_section *sec, unsigned needs,
                    const nde_solver *s);

#endif
