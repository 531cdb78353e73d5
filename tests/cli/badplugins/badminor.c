/* A field built against a newer field interface than this library knows
 * (NDE_FIELD_VERSION + 1): refused, not read past what the library knows
 * (test_cli.c expects the name and both versions in the message). */
#include "nde/nde.h"

static const nde_plugin_info badminor_info = {
    NDE_ABI_VERSION, NDE_KIND_FIELD, NDE_FIELD_VERSION + 1,
    sizeof(nde_field_type) + sizeof(void *), .name = "badminor",
    .description = "a field of a future interface version", .version = "1"};

NDE_MODULE(&badminor_info);
