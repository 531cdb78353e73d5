/* A module of the right ABI built for another configuration: its entry
 * point's build signature is flipped (the registry must refuse it without
 * touching the module after closing it). */
#include "nde/nde.h"

static const nde_key badsig_keys[] = {{NULL, 0, NULL, NULL}};

static const nde_plugin_info badsig_info = NDE_FIELD_INFO(
    .name = "badsig",
    .description = "a field built for another configuration",
    .keys = badsig_keys,
    .version = "1");

static const nde_plugin_info *const badsig_components[] = {&badsig_info, NULL};

NDE_EXPORT extern const nde_module nde_module_entry;
const nde_module nde_module_entry = {NDE_ABI_VERSION, ~NDE_BUILD_SIGNATURE,
                                     badsig_components};
