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

#endif
