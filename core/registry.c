/*
 * Plugin registry: finds plugins by name in the modules (*.so) of the
 * search path with libltdl, checks their ABI and keeps them loaded until
 * the context is destroyed.
 */
#define _GNU_SOURCE /* dladdr */
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <ltdl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nde/nde.h"
#include "internal.h"
#include "nde_build_config.h"

#define NAME_MAX_CHARS 64
#define VERSION_MAX_CHARS 32

/* Allocated one by one: a scan holds a module while it loads others. */
typedef struct module {
    char *path;
    size_t dir;           /* index into nde_registry.dirs */
    const nde_module *entry;
    /* NULL-terminated: entry's components, or for one of an older
     * interface version a zero-padded copy (owned) in today's layout. */
    const nde_plugin_info **components;
} module;

/* Each kind's interface version and its descriptor's size at every
 * version (index version - 1): the end of its last member then. A
 * descriptor is read up to the size of the version it declares. */
static const size_t field_sizes[] = {
    offsetof(nde_field_type, jvp), offsetof(nde_field_type, jvp_vjp),
    offsetof(nde_field_type, eval_sde),
    offsetof(nde_field_type, eval_sde), /* 4: general noise */
    offsetof(nde_field_type, eval_sde), /* 5: controlled equations */
    sizeof(nde_field_type), sizeof(nde_field_type)}; /* 7: quadrature */
static const size_t solver_sizes[] = { /* 2, 3: the tableau grew */
    sizeof(nde_solver_type), sizeof(nde_solver_type),
    sizeof(nde_solver_type)};
static const size_t adjoint_sizes[] = {
    sizeof(nde_adjoint_type)};
static const size_t regularizer_sizes[] = {
    offsetof(nde_regularizer_type, prox), offsetof(nde_regularizer_type, prox),
    sizeof(nde_regularizer_type)};
static const size_t task_sizes[] = {
    offsetof(nde_task_type, state_names), offsetof(nde_task_type, units),
    offsetof(nde_task_type, test_held_from), offsetof(nde_task_type, input),
    sizeof(nde_task_type)};

/* One size per version: a version without its entry would read as 0. */
#define NDE_SIZES_COMPLETE(kind, KIND)                                        \
    _Static_assert(sizeof kind##_sizes / sizeof *kind##_sizes ==              \
                       NDE_##KIND##_VERSION,                                  \
                   #kind "_sizes needs one entry per interface version")
NDE_SIZES_COMPLETE(field, FIELD);
NDE_SIZES_COMPLETE(solver, SOLVER);
NDE_SIZES_COMPLETE(adjoint, ADJOINT);
NDE_SIZES_COMPLETE(regularizer, REGULARIZER);
NDE_SIZES_COMPLETE(task, TASK);

static const struct {
    int version;
    const size_t *sizes;
} interfaces[NDE_KIND_COUNT + 1] = {
    [NDE_KIND_FIELD] = {NDE_FIELD_VERSION, field_sizes},
    [NDE_KIND_SOLVER] = {NDE_SOLVER_VERSION, solver_sizes},
    [NDE_KIND_ADJOINT] = {NDE_ADJOINT_VERSION, adjoint_sizes},
    [NDE_KIND_REGULARIZER] = {NDE_REGULARIZER_VERSION, regularizer_sizes},
    [NDE_KIND_TASK] = {NDE_TASK_VERSION, task_sizes},
};
_Static_assert(NDE_KIND_COUNT == NDE_KIND_TASK,
               "a new kind needs its row in interfaces[]");

struct nde_registry {
    int ltdl_ready;
    char **dirs;
    size_t ndirs;
    size_t env_begin, env_end; /* dirs[env_begin..env_end): $NDE_PLUGIN_PATH */
    char *search_path;    /* dirs joined with ':' */
    module **modules;
    size_t nmodules;
    const nde_plugin_info **used; /* what nde_plugin_find returned */
    size_t nused;
};

int nde_plugin_name_valid(const char *name)
{
    size_t n = 0;
    if (!name || !*name)
        return 0;
    for (; *name; name++, n++)
        if (!((*name >= 'a' && *name <= 'z') || (*name >= '0' && *name <= '9') ||
              *name == '_'))
            return 0;
    return n <= NAME_MAX_CHARS;
}

int nde_plugin_version_valid(const char *version)
{
    size_t n = 0;
    if (!version || !*version)
        return 0;
    for (; *version; version++, n++)
        if (!((*version >= 'a' && *version <= 'z') ||
              (*version >= 'A' && *version <= 'Z') ||
              (*version >= '0' && *version <= '9') ||
              strchr("._+-", *version)))
            return 0;
    return n <= VERSION_MAX_CHARS;
}

/* Capabilities and needs in words (`nde plugins`, messages). */
static const struct {
    unsigned bit;
    const char *name;
} capability_names[] = {
    {NDE_CAP_ADAPTIVE, "adaptive"},
    {NDE_CAP_DENSE, "dense output"},
    {NDE_CAP_STIFFNESS, "stiffness estimate"},
    {NDE_CAP_STEP_VJP, "step VJP"},
    {NDE_CAP_FSAL, "FSAL"},
    {NDE_CAP_SDE_ITO, "Ito SDEs"},
    {NDE_CAP_SDE_STRATONOVICH, "Stratonovich SDEs"},
    {NDE_CAP_REVERSIBLE, "reversible"},
    {NDE_CAP_DIFFUSION, "diffusion"},
    {NDE_CAP_GENERAL_NOISE, "general noise"},
};

/* Each need, its name, and the solver capability it asks for (0: none). */
static const struct {
    unsigned bit;
    const char *name;
    unsigned cap;
} need_names[] = {
    {NDE_NEEDS_STEPS, "steps", 0},
    {NDE_NEEDS_DENSE, "dense output", NDE_CAP_DENSE},
    {NDE_NEEDS_ERROR_EST, "error estimate", NDE_CAP_ADAPTIVE},
    {NDE_NEEDS_STIFFNESS, "stiffness estimate", NDE_CAP_STIFFNESS},
    {NDE_NEEDS_STEP_VJP, "step VJP", NDE_CAP_STEP_VJP},
    {NDE_NEEDS_REVERSIBLE, "reverse step", NDE_CAP_REVERSIBLE},
    {NDE_NEEDS_FIELD_JVP, "field's JVP", 0}, /* checked against the field */
    {NDE_NEEDS_ADDITIVE_NOISE, "additive noise", 0}, /* not checkable */
    {NDE_NEEDS_LEVY_AREA, "space-time Levy area", 0}, /* the driver's */
};

const char *nde_capability_name(unsigned cap)
{
    for (size_t i = 0; i < sizeof capability_names / sizeof *capability_names;
         i++)
        if (capability_names[i].bit == cap)
            return capability_names[i].name;
    return NULL;
}

const char *nde_need_name(unsigned need)
{
    for (size_t i = 0; i < sizeof need_names / sizeof *need_names; i++)
        if (need_names[i].bit == need)
            return need_names[i].name;
    return NULL;
}

int nde_check_needs(nde_ctx *ctx, const nde_plugin_info *who,
                    const nde_section *sec, unsigned needs,
                    const nde_solver *s)
{
    const nde_plugin_info *solver = &s->type->info;

    for (size_t i = 0; i < sizeof need_names / sizeof *need_names; i++)
        if ((needs & need_names[i].bit) &&
            (solver->provides & need_names[i].cap) != need_names[i].cap)
            return nde_error(ctx, NDE_ECAPABILITY,
                             "%s%s%s '%s' needs the solver's %s, which "
                             "solver '%s' does not provide",
                             sec ? nde_section_origin(sec, "plugin") : "",
                             sec ? ": " : "", nde_kind_name(who->kind),
                             who->name, need_names[i].name, solver->name);
    return NDE_OK;
}

static int add_dir(nde_registry *reg, const char *dir, size_t len)
{
    char **dirs;
    char *copy;
    size_t i;
    if (len == 0)
        return 0;
    for (i = 0; i < reg->ndirs; i++)
        if (strlen(reg->dirs[i]) == len && strncmp(reg->dirs[i], dir, len) == 0)
            return 0;
    if (!(dirs = realloc(reg->dirs, (reg->ndirs + 1) * sizeof *dirs)))
        return -1;
    reg->dirs = dirs;
    if (!(copy = malloc(len + 1)))
        return -1;
    memcpy(copy, dir, len);
    copy[len] = '\0';
    reg->dirs[reg->ndirs++] = copy;
    return 0;
}

/* True when the libnde running this code is the build tree's own, so a
 * build can be used without installing (and an installed nde never picks
 * up a stale build tree). */
static int running_from_build_tree(void)
{
    Dl_info info;
    char lib[PATH_MAX], root[PATH_MAX];
    size_t n;
    if (!dladdr((void *)nde_plugin_name_valid, &info) || !info.dli_fname ||
        !realpath(info.dli_fname, lib) || !realpath(NDE_BUILD_ROOT, root))
        return 0;
    n = strlen(root);
    return strncmp(lib, root, n) == 0 && lib[n] == '/';
}

nde_registry *nde_registry_create(void)
{
    static const char *const build_dirs[] = {"solvers", "plugins/fields",
                                             "adjoints", "regularizers",
                                             "plugins/tasks"};
    nde_registry *reg = calloc(1, sizeof *reg);
    const char *env = getenv("NDE_PLUGIN_PATH");
    size_t i, len = 1;
    if (!reg)
        return NULL;
    if (running_from_build_tree()) {
        for (i = 0; i < sizeof build_dirs / sizeof *build_dirs; i++) {
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%s/%s", NDE_BUILD_ROOT, build_dirs[i]);
            if (add_dir(reg, dir, strlen(dir)))
                goto fail;
        }
    }
    reg->env_begin = reg->ndirs;
    while (env && *env) {
        const char *colon = strchr(env, ':');
        size_t n = colon ? (size_t)(colon - env) : strlen(env);
        if (add_dir(reg, env, n))
            goto fail;
        env += n + (colon != NULL);
    }
    reg->env_end = reg->ndirs;
    if (add_dir(reg, NDE_PLUGIN_DIR, strlen(NDE_PLUGIN_DIR)))
        goto fail;
    for (i = 0; i < reg->ndirs; i++)
        len += strlen(reg->dirs[i]) + 1;
    if (!(reg->search_path = malloc(len)))
        goto fail;
    reg->search_path[0] = '\0';
    for (i = 0; i < reg->ndirs; i++) {
        if (i)
            strcat(reg->search_path, ":");
        strcat(reg->search_path, reg->dirs[i]);
    }
    if (lt_dlinit() == 0)
        reg->ltdl_ready = 1;
    return reg;
fail:
    nde_registry_destroy(reg);
    return NULL;
}

static void free_module(module *m)
{
    size_t i;
    for (i = 0; m->components && m->components[i]; i++)
        if (m->components[i] != m->entry->components[i])
            free((void *)m->components[i]);
    free(m->components);
    free(m->path);
    free(m);
}

void nde_registry_destroy(nde_registry *reg)
{
    size_t i;
    if (!reg)
        return;
    /* Modules stay loaded (libltdl keeps them reachable) until the process
     * exits: a plugin's own libraries may hold global state - libmatheval
     * keeps its parser buffer in globals - that unmapping would orphan, and
     * descriptors handed out must never dangle. Loading the same module
     * again, from a later context, reuses the mapping. */
    for (i = 0; i < reg->nmodules; i++)
        free_module(reg->modules[i]);
    for (i = 0; i < reg->ndirs; i++)
        free(reg->dirs[i]);
    free(reg->dirs);
    free(reg->modules);
    free(reg->used);
    free(reg->search_path);
    free(reg);
}

static nde_registry *registry(nde_ctx *ctx)
{
    nde_registry *reg = nde_ctx_registry(ctx);
    if (!reg)
        nde_error(ctx, NDE_ENOMEM, "out of memory creating the plugin registry");
    else if (!reg->ltdl_ready) {
        nde_error(ctx, NDE_EPLUGIN, "cannot initialise libltdl");
        return NULL;
    }
    return reg;
}

const char *nde_plugin_search_path(nde_ctx *ctx)
{
    nde_registry *reg = registry(ctx);
    return reg ? reg->search_path : "";
}

/* Component i of the module at `path` against the ABI and its kind's
 * interface. Messages are formatted while the module is mapped: info
 * lives in its memory. */
static int check_component(nde_ctx *ctx, const char *path, size_t i,
                           const nde_plugin_info *info)
{
    const char *name = nde_plugin_name_valid(info->name) ? info->name : "?";
    const char *kind;
    size_t min;
    int v;

    if (info->abi_version != NDE_ABI_VERSION)
        return nde_error(ctx, NDE_EPLUGIN,
                         "%s: component '%.64s' has ABI version %d, but this "
                         "nde expects ABI version %d: rebuild the plugin",
                         path, name, info->abi_version, NDE_ABI_VERSION);
    if (!nde_plugin_name_valid(info->name) || !info->description ||
        info->kind < NDE_KIND_FIELD || info->kind > NDE_KIND_TASK ||
        !nde_plugin_version_valid(info->version))
        return nde_error(ctx, NDE_EPLUGIN,
                         "%s: component %zu has an invalid name, kind, "
                         "description or version (a version is "
                         "[A-Za-z0-9._+-]+, at most %d characters)",
                         path, i, VERSION_MAX_CHARS);
    kind = nde_kind_name(info->kind);
    v = interfaces[info->kind].version;
    if (info->iface_version < 1 || info->iface_version > v)
        return nde_error(ctx, NDE_EPLUGIN,
                         "%s: %s '%s' was built for %s interface version %d, "
                         "but this nde (%s) knows versions 1 to %d: "
                         "upgrade nde, or build the plugin against this "
                         "nde's headers", path, kind, name, kind,
                         info->iface_version, nde_version(), v);
    min = interfaces[info->kind].sizes[info->iface_version - 1];
    if (info->size < min)
        return nde_error(ctx, NDE_EPLUGIN,
                         "%s: %s '%s' declares a descriptor of %zu bytes, "
                         "less than the %zu of %s interface version %d: "
                         "fill its info with the kind's macro "
                         "(NDE_FIELD_INFO, ...)", path, kind, name,
                         info->size, min, kind, info->iface_version);
    return NDE_OK;
}

/* A checked component as core reads it: itself when it has this library's
 * interface version; else a copy of the members its version has, the ones
 * appended since zero (optional ops read as absent). NULL when out of
 * memory. */
static const nde_plugin_info *in_current_layout(const nde_plugin_info *info)
{
    const size_t *sizes = interfaces[info->kind].sizes;
    const int v = interfaces[info->kind].version;
    unsigned char *copy;

    if (info->iface_version == v)
        return info;
    if (!(copy = calloc(1, sizes[v - 1])))
        return NULL;
    memcpy(copy, info, sizes[info->iface_version - 1]);
    return (const nde_plugin_info *)copy;
}

/* Load (or find already loaded) the module at `path`, in directory `dir`
 * of the search path. On failure the context holds a message naming the
 * file. */
static int load_module(nde_ctx *ctx, nde_registry *reg, size_t dir,
                       const char *path, const module **out)
{
    const nde_module *entry;
    lt_dlhandle handle;
    module **mods, *m = NULL;
    size_t i;
    int rc;

    for (i = 0; i < reg->nmodules; i++)
        if (strcmp(reg->modules[i]->path, path) == 0) {
            *out = reg->modules[i];
            return NDE_OK;
        }
    if (!(handle = lt_dlopen(path))) {
        const char *why = lt_dlerror(); /* copy at once: the next call overwrites it */
        return nde_error(ctx, NDE_EPLUGIN, "%s: cannot load: %s", path,
                         why ? why : "unknown error");
    }
    entry = lt_dlsym(handle, NDE_MODULE_SYMBOL);
    if (!entry) {
        lt_dlclose(handle);
        return nde_error(ctx, NDE_EPLUGIN,
                         "%s: not an nde plugin (no entry point '%s')", path,
                         NDE_MODULE_SYMBOL);
    }
    if (entry->abi_version != NDE_ABI_VERSION) {
        int found = entry->abi_version;
        lt_dlclose(handle);
        return nde_error(ctx, NDE_EPLUGIN,
                         "%s: plugin ABI version %d, but this nde (%s) "
                         "expects ABI version %d: rebuild the plugin",
                         path, found, nde_version(), NDE_ABI_VERSION);
    }
    /* Every message below is formatted before lt_dlclose: entry and the
     * components live in the module's memory, gone once it is unmapped. */
    if (entry->build_signature != NDE_BUILD_SIGNATURE || !entry->components) {
        nde_error(ctx, NDE_EPLUGIN,
                  "%s: plugin built for another configuration "
                  "(build signature 0x%x, expected 0x%x%s)",
                  path, entry->build_signature, NDE_BUILD_SIGNATURE,
                  entry->components ? "" : "; no component list");
        lt_dlclose(handle);
        return NDE_EPLUGIN;
    }
    for (i = 0; entry->components[i]; i++)
        if ((rc = check_component(ctx, path, i, entry->components[i]))) {
            lt_dlclose(handle);
            return rc;
        }
    if (!(mods = realloc(reg->modules, (reg->nmodules + 1) * sizeof *mods)) ||
        !(m = calloc(1, sizeof *m)) || !(m->path = strdup(path)) ||
        !(m->components = calloc(i + 1, sizeof *m->components))) {
        if (mods)
            reg->modules = mods;
        if (m)
            free_module(m);
        lt_dlclose(handle);
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    }
    reg->modules = mods;
    m->dir = dir;
    m->entry = entry;
    for (i = 0; entry->components[i]; i++)
        if (!(m->components[i] = in_current_layout(entry->components[i]))) {
            free_module(m);
            lt_dlclose(handle);
            return nde_error(ctx, NDE_ENOMEM, "out of memory");
        }
    mods[reg->nmodules++] = m;
    *out = m;
    return NDE_OK;
}

static const nde_plugin_info *module_component(const module *m, const char *name,
                                               int kind)
{
    const nde_plugin_info *const *c;
    for (c = m->components; *c; c++)
        if (strcmp((*c)->name, name) == 0 && (kind == 0 || (int)(*c)->kind == kind))
            return *c;
    return NULL;
}

/* The loaded module that holds info, or NULL. */
static const module *module_of(nde_registry *reg, const nde_plugin_info *info)
{
    const nde_plugin_info *const *c;
    size_t i;
    for (i = 0; reg && i < reg->nmodules; i++)
        for (c = reg->modules[i]->components; *c; c++)
            if (*c == info)
                return reg->modules[i];
    return NULL;
}

const char *nde_plugin_path(nde_ctx *ctx, const nde_plugin_info *info)
{
    const module *m = module_of(nde_ctx_registry(ctx), info);
    return m ? m->path : NULL;
}

unsigned nde_plugin_build_signature(nde_ctx *ctx, const nde_plugin_info *info)
{
    const module *m = module_of(nde_ctx_registry(ctx), info);
    return m ? m->entry->build_signature : NDE_BUILD_SIGNATURE;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The NAME.so files of a directory, sorted. */
static char **list_modules(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t cap = 0;
    *n = 0;
    if (!d)
        return NULL;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        char stem[NAME_MAX_CHARS + 1];
        if (len < 4 || len - 3 > NAME_MAX_CHARS ||
            strcmp(e->d_name + len - 3, ".so") != 0)
            continue;
        memcpy(stem, e->d_name, len - 3);
        stem[len - 3] = '\0';
        if (!nde_plugin_name_valid(stem))
            continue;
        if (*n + 1 > cap) {
            char **p = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof *p);
            if (!p)
                break;
            names = p;
        }
        if (!(names[*n] = strdup(e->d_name)))
            break;
        (*n)++;
    }
    closedir(d);
    if (names)
        qsort(names, *n, sizeof *names, compare_names);
    return names;
}

/*
 * Search order. A component is looked up first in the modules named after
 * it (NAME.so, directory by directory), then in every module of the search
 * path (directories in order, files sorted), so a module may register
 * components of other names. The first match wins; the common case opens a
 * single module, and a name that is no file name opens the others once per
 * context (they stay loaded). nde_plugin_foreach lists the same winners.
 */

/* Pass 1: the component `name` of `kind` in the first NAME.so that has it,
 * or *out = NULL. *other (when still NULL) gets a component of that name
 * and another kind. A NAME.so that fails to load is an error. */
static int find_by_file(nde_ctx *ctx, nde_registry *reg, const char *name,
                        nde_kind kind, const nde_plugin_info **out,
                        const nde_plugin_info **other)
{
    size_t i;
    int rc;

    *out = NULL;
    for (i = 0; i < reg->ndirs; i++) {
        char path[PATH_MAX];
        const module *m;
        snprintf(path, sizeof path, "%s/%s.so", reg->dirs[i], name);
        if (access(path, F_OK) != 0)
            continue;
        if ((rc = load_module(ctx, reg, i, path, &m)) != NDE_OK)
            return rc;
        if ((*out = module_component(m, name, kind)))
            return NDE_OK;
        if (!*other)
            *other = module_component(m, name, 0);
    }
    return NDE_OK;
}

/* Called for each module by scan_modules; non-zero stops the scan. */
typedef int (*module_fn)(const module *m, void *user);

/* Load every module of the search path in search order and call fn on it.
 * A module that fails to load is passed to `broken` (may be NULL) and
 * skipped. Returns what fn returned when non-zero, else 0. */
static int scan_modules(nde_ctx *ctx, nde_registry *reg, module_fn fn,
                        nde_plugin_broken_fn broken, void *user)
{
    size_t i, j, n;
    int rc = 0;

    for (i = 0; i < reg->ndirs && rc == 0; i++) {
        char **files = list_modules(reg->dirs[i], &n);
        for (j = 0; j < n; j++) {
            char path[PATH_MAX];
            const module *m;
            snprintf(path, sizeof path, "%s/%s", reg->dirs[i], files[j]);
            free(files[j]);
            if (rc != 0)
                continue;
            if (load_module(ctx, reg, i, path, &m) != NDE_OK) {
                if (broken)
                    broken(path, nde_ctx_message(ctx), user);
                nde_ctx_clear(ctx);
                continue;
            }
            rc = fn(m, user);
        }
        free(files);
    }
    return rc;
}

/* Pass 2, through scan_modules. */
typedef struct wanted {
    const char *name;
    nde_kind kind;
    const nde_plugin_info *found, *other;
    size_t nbroken;
} wanted;

static int match_component(const module *m, void *user)
{
    wanted *w = user;
    if ((w->found = module_component(m, w->name, w->kind)))
        return 1;
    if (!w->other)
        w->other = module_component(m, w->name, 0);
    return 0;
}

static void count_broken(const char *path, const char *reason, void *user)
{
    (void)path;
    (void)reason;
    ((wanted *)user)->nbroken++;
}

typedef struct available {
    nde_kind kind;
    const char *names[128];
    size_t n;
} available;

static int collect_available(const nde_plugin_info *info, const char *path,
                             void *user)
{
    available *a = user;
    (void)path;
    if (info->kind == a->kind && a->n < 127)
        a->names[a->n++] = info->name;
    return 0;
}

/* The error for a name found nowhere: the available plugins of that kind
 * and the closest name. */
static int not_found(nde_ctx *ctx, nde_registry *reg, const wanted *w)
{
    available avail;
    char list[600], hint[100], broken[100];
    size_t i;

    if (w->other)
        return nde_error(ctx, NDE_EPLUGIN,
                         "%s: '%s' is a %s plugin, not a %s plugin",
                         nde_plugin_path(ctx, w->other), w->name,
                         nde_kind_name(w->other->kind), nde_kind_name(w->kind));
    avail.kind = w->kind;
    avail.n = 0;
    nde_plugin_foreach(ctx, collect_available, NULL, &avail);
    avail.names[avail.n] = NULL;
    list[0] = hint[0] = broken[0] = '\0';
    for (i = 0; i < avail.n; i++) {
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                 avail.names[i]);
    }
    if (avail.n && nde_suggest(w->name, avail.names))
        snprintf(hint, sizeof hint, " (did you mean '%s'?)",
                 nde_suggest(w->name, avail.names));
    if (w->nbroken)
        snprintf(broken, sizeof broken,
                 "; %zu module(s) could not be loaded ('nde plugins' says why)",
                 w->nbroken);
    return nde_error(ctx, NDE_EPLUGIN,
                     "no %s plugin named '%s'%s; available %s plugins: %s "
                     "(search path: %s)%s",
                     nde_kind_name(w->kind), w->name, hint,
                     nde_kind_name(w->kind), avail.n ? list : "none",
                     reg->search_path, broken);
}

/* Note info as used by the run (once), for nde_plugin_used_shadowing. */
static int remember_used(nde_ctx *ctx, nde_registry *reg,
                         const nde_plugin_info *info)
{
    const nde_plugin_info **used;
    size_t i;
    for (i = 0; i < reg->nused; i++)
        if (reg->used[i] == info)
            return NDE_OK;
    if (!(used = realloc(reg->used, (reg->nused + 1) * sizeof *used)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    reg->used = used;
    used[reg->nused++] = info;
    return NDE_OK;
}

int nde_plugin_find(nde_ctx *ctx, nde_kind kind, const char *name,
                    const nde_plugin_info **out)
{
    nde_registry *reg = registry(ctx);
    wanted w = {name, kind, NULL, NULL, 0};
    int rc;

    *out = NULL;
    if (!reg)
        return nde_ctx_status(ctx);
    if (!nde_plugin_name_valid(name))
        return nde_error(ctx, NDE_EPLUGIN,
                         "invalid %s plugin name '%s': a plugin name is "
                         "[a-z0-9_]+ (at most %d characters), never a path",
                         nde_kind_name(kind), name, NAME_MAX_CHARS);
    if ((rc = find_by_file(ctx, reg, name, kind, &w.found, &w.other)) !=
        NDE_OK)
        return rc;
    if (!w.found)
        scan_modules(ctx, reg, match_component, count_broken, &w);
    if (!w.found)
        return not_found(ctx, reg, &w);
    *out = w.found;
    return remember_used(ctx, reg, w.found);
}

/* nde_plugin_foreach, through scan_modules. */
typedef struct listing {
    nde_ctx *ctx;
    nde_registry *reg;
    nde_plugin_visit_fn visit;
    void *user;
    const nde_plugin_info *seen[256];
    size_t nseen;
} listing;

/* Whether `c` of module `m` is the one nde_plugin_find returns, given
 * that every module before m in search order has been seen: it is unless
 * it came before, or it is not in its NAME.so and a NAME.so has it. */
static int wins(listing *l, const module *m, const nde_plugin_info *c)
{
    const nde_plugin_info *by_file, *other = NULL;
    const char *slash = strrchr(m->path, '/');
    size_t k, n = strlen(c->name);

    for (k = 0; k < l->nseen; k++)
        if (l->seen[k]->kind == c->kind && strcmp(l->seen[k]->name, c->name) == 0)
            return 0;
    if (strncmp(slash + 1, c->name, n) == 0 && strcmp(slash + 1 + n, ".so") == 0)
        return 1;
    if (find_by_file(l->ctx, l->reg, c->name, c->kind, &by_file, &other) !=
        NDE_OK) {
        nde_ctx_clear(l->ctx); /* reported when the scan reaches that file */
        by_file = NULL;
    }
    return !by_file;
}

static int list_components(const module *m, void *user)
{
    listing *l = user;
    const nde_plugin_info *const *c;
    int rc = 0;

    for (c = m->components; rc == 0 && *c; c++) {
        if (!wins(l, m, *c))
            continue;
        if (l->nseen < sizeof l->seen / sizeof *l->seen)
            l->seen[l->nseen++] = *c;
        rc = l->visit(*c, m->path, l->user);
    }
    return rc;
}

int nde_plugin_foreach(nde_ctx *ctx, nde_plugin_visit_fn visit,
                       nde_plugin_broken_fn broken, void *user)
{
    nde_registry *reg = registry(ctx);
    listing l;

    if (!reg)
        return nde_ctx_status(ctx);
    l.ctx = ctx;
    l.reg = reg;
    l.visit = visit;
    l.user = user;
    l.nseen = 0;
    return scan_modules(ctx, reg, list_components, broken, &l);
}

/* nde_plugin_shadowed, through scan_modules. */
typedef struct shadow_scan {
    nde_registry *reg;
    const module *winner;
    const nde_plugin_info *info;
    int env_only;          /* report a pair only when one is in env dirs */
    nde_plugin_shadow_fn fn;
    void *user;
} shadow_scan;

static int in_env(const nde_registry *reg, const module *m)
{
    return m->dir >= reg->env_begin && m->dir < reg->env_end;
}

static int report_shadowed(const module *m, void *user)
{
    shadow_scan *s = user;
    const nde_plugin_info *other;

    if (m == s->winner ||
        !(other = module_component(m, s->info->name, (int)s->info->kind)))
        return 0;
    if (s->env_only && !in_env(s->reg, m) && !in_env(s->reg, s->winner))
        return 0;
    return s->fn(s->info, s->winner->path, other, m->path, s->user);
}

static int scan_shadowed(nde_ctx *ctx, nde_registry *reg,
                         const nde_plugin_info *info, int env_only,
                         nde_plugin_shadow_fn fn, void *user)
{
    shadow_scan s;

    s.reg = reg;
    s.winner = module_of(reg, info);
    s.info = info;
    s.env_only = env_only;
    s.fn = fn;
    s.user = user;
    if (!s.winner)
        return 0; /* not from a module: nothing to shadow */
    return scan_modules(ctx, reg, report_shadowed, NULL, &s);
}

int nde_plugin_shadowed(nde_ctx *ctx, const nde_plugin_info *info,
                        nde_plugin_shadow_fn fn, void *user)
{
    nde_registry *reg = registry(ctx);
    return reg ? scan_shadowed(ctx, reg, info, 0, fn, user)
               : nde_ctx_status(ctx);
}

int nde_plugin_used_shadowing(nde_ctx *ctx, nde_plugin_shadow_fn fn,
                              void *user)
{
    nde_registry *reg = registry(ctx);
    size_t i;
    int rc = 0;

    if (!reg)
        return nde_ctx_status(ctx);
    /* Without $NDE_PLUGIN_PATH nothing is reported: no module is opened. */
    for (i = 0; reg->env_end > reg->env_begin && i < reg->nused && rc == 0;
         i++)
        rc = scan_shadowed(ctx, reg, reg->used[i], 1, fn, user);
    return rc;
}
