/*
 * nde/registry.h - finding plugins by name.
 *
 * Plugins live in shared objects (modules) named *.so, searched in order
 * in: the build tree (when the running libnde is the build tree's own), each
 * directory of $NDE_PLUGIN_PATH (colon separated), and the installed plugin
 * directory. A module may register several plugins. The plugin NAME of a
 * kind is the one in the first module file NAME.so that registers it; when
 * no NAME.so does, the one in the first module that does, directories in
 * search order and files sorted by name within each. A name must match
 * [a-z0-9_]+ (a config never names a path); every component of a module
 * declares a valid version (plugin.h). The registry
 * lives in the nde_ctx and releases everything it allocated when the
 * context is destroyed; the modules themselves stay mapped until the
 * process exits (their libraries may hold global state).
 */
#ifndef NDE_REGISTRY_H
#define NDE_REGISTRY_H

#include "api.h"
#include "plugin.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Load the plugin `name` of `kind` (in search order, above). Errors
 * (NDE_EPLUGIN): a malformed name; no such plugin (the message lists the
 * available ones of that kind, or names the module where `name` is a plugin
 * of another kind); a NAME.so without the entry point, with an ABI or
 * build-signature mismatch (the message names the file, the version found
 * and the version expected), or with a component of a newer interface
 * version than this library's or of too small a size (plugin.h). Other
 * modules that fail to load are skipped. A component of an older interface
 * version is returned as a copy in today's layout (valid until the context
 * is destroyed) whose members added since are NULL.
 */
NDE_API int nde_plugin_find(nde_ctx *ctx, nde_kind kind, const char *name,
                            const nde_plugin_info **out);

/* The path of the module a loaded plugin came from, or NULL. */
NDE_API const char *nde_plugin_path(nde_ctx *ctx, const nde_plugin_info *info);

/* The build signature of that module; NDE_BUILD_SIGNATURE (the library's)
 * for a plugin not loaded from a module. */
NDE_API unsigned nde_plugin_build_signature(nde_ctx *ctx, const nde_plugin_info *info);

/*
 * Shadowing: other modules of the search path may register a plugin of the
 * same name and kind as the one found; they are never used. fn gets the
 * plugin found (`info`, from module `path`) and each one it shadows, in
 * search order; non-zero from fn stops and is returned.
 *
 * nde_plugin_shadowed lists every copy that `info` (a plugin that
 * nde_plugin_find or nde_plugin_foreach returned) shadows, loading every
 * module of the search path (those that fail are skipped).
 *
 * nde_plugin_used_shadowing does so for every plugin nde_plugin_find has
 * returned in this context, but only for pairs of which one module lies
 * in a $NDE_PLUGIN_PATH directory: a copy there is meant to be used or
 * is in the way. A build tree shadowing the installed plugins (the usual
 * development setup) is not reported, and without $NDE_PLUGIN_PATH no
 * module is opened.
 */
typedef int (*nde_plugin_shadow_fn)(const nde_plugin_info *info,
                                    const char *path,
                                    const nde_plugin_info *shadowed,
                                    const char *shadowed_path, void *user);
NDE_API int nde_plugin_shadowed(nde_ctx *ctx, const nde_plugin_info *info,
                                nde_plugin_shadow_fn fn, void *user);
NDE_API int nde_plugin_used_shadowing(nde_ctx *ctx, nde_plugin_shadow_fn fn,
                                      void *user);

/* Call visit for every plugin found in the search path, module by module
 * in search order, once per name and kind: with the component that
 * nde_plugin_find returns. Modules that fail to load are reported
 * through `broken` (may be NULL) with the file and the reason. Stops early
 * and returns the callback's value when it is non-zero. */
typedef int (*nde_plugin_visit_fn)(const nde_plugin_info *info,
                                   const char *path, void *user);
typedef void (*nde_plugin_broken_fn)(const char *path, const char *reason,
                                     void *user);
NDE_API int nde_plugin_foreach(nde_ctx *ctx, nde_plugin_visit_fn visit,
                               nde_plugin_broken_fn broken, void *user);

/* The search path as used, colon separated (for messages and --help). */
NDE_API const char *nde_plugin_search_path(nde_ctx *ctx);

/* 1 if name matches [a-z0-9_]+ (and is at most 64 characters). */
NDE_API int nde_plugin_name_valid(const char *name);

/* 1 if version matches [A-Za-z0-9._+-]+ (and is at most 32 characters). */
NDE_API int nde_plugin_version_valid(const char *version);

#ifdef __cplusplus
}
#endif
#endif
