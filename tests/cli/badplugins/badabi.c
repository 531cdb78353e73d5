/* A module built against a future ABI: its entry point declares
 * NDE_ABI_VERSION + 100 (test_cli.c expects that number in the message). */
#include "nde/nde.h"

static const nde_key badabi_keys[] = {{NULL, 0, NULL, NULL}};

static const nde_plugin_info badabi_info = {
    NDE_ABI_VERSION + 100, NDE_KIND_FIELD, NDE_FIELD_VERSION,
    sizeof(nde_field_type), .name = "badabi",
    .description = "a field built for another ABI",
    .keys = badabi_keys, .version = "1"};

static const nde_plugin_info *const badabi_components[] = {&badabi_info, NULL};

NDE_EXPORT extern const nde_module nde_module_entry;
const nde_module nde_module_entry = {NDE_ABI_VERSION + 100, NDE_BUILD_SIGNATURE,
                                     badabi_components};
