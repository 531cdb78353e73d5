/* A field whose info claims a descriptor smaller than its interface
 * version has (a hand-filled info): refused before core reads a member it
 * does not have (test_cli.c expects the name and the size). */
#include "nde/nde.h"

static const nde_plugin_info badsize_info = {
    NDE_ABI_VERSION, NDE_KIND_FIELD, NDE_FIELD_VERSION,
    sizeof(nde_plugin_info), .name = "badsize",
    .description = "a field descriptor too small for its version",
    .version = "1"};

NDE_MODULE(&badsize_info);
