/* A module whose entry point has the right ABI and build signature but one
 * of whose components declares NDE_ABI_VERSION + 100 (test_cli.c expects
 * the component's name and that number in the message). */
#include "nde/nde.h"

static const nde_key badcomp_keys[] = {{NULL, 0, NULL, NULL}};

static const nde_plugin_info badcomp_info = {
    NDE_ABI_VERSION + 100, NDE_KIND_FIELD, NDE_FIELD_VERSION,
    sizeof(nde_field_type), .name = "badcomp",
    .description = "a field component built for another ABI",
    .keys = badcomp_keys, .version = "1"};

static const nde_plugin_info *const badcomp_components[] = {&badcomp_info,
                                                            NULL};

NDE_EXPORT extern const nde_module nde_module_entry;
const nde_module nde_module_entry = {NDE_ABI_VERSION, NDE_BUILD_SIGNATURE,
                                     badcomp_components};
