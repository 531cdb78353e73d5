/*
 * nde/plugin.h - what every plugin declares, and how a module exports it.
 *
 * A plugin is a `const`, static descriptor (nde_field_type,
 * nde_solver_type, ...) whose first member is an nde_plugin_info: ABI
 * version, kind, the version and size of the kind's descriptor, name,
 * one-line description, accepted config keys, what it provides and what it
 * needs, and the plugin's own version. Fill it with the kind's macro, which
 * sets the versions and the size:
 *
 *     static const nde_field_type my_field = {
 *         .info = NDE_FIELD_INFO(.name = "my_field",
 *                                .description = "what it is",
 *                                .keys = my_keys, .version = "1"),
 *         .create = ..., };
 *     NDE_MODULE(&my_field.info);
 *
 * A shared object (module) exports one data symbol, `nde_module_entry`,
 * listing its descriptors; use NDE_MODULE().
 *
 * Versions. NDE_ABI_VERSION is the major version: it changes when
 * nde_plugin_info, nde_module or the instance structs change, or when a
 * descriptor changes other than by appending. The registry refuses a module
 * or component of another major version, naming the file and both
 * versions. Each kind's descriptor also has its own interface version
 * (NDE_FIELD_VERSION, NDE_SOLVER_VERSION, NDE_ADJOINT_VERSION,
 * NDE_REGULARIZER_VERSION), raised whenever an optional member is appended
 * to it (SQLite VFS style: never removed, never reordered). A plugin built
 * against an older interface version still loads: the registry hands out a
 * copy of its descriptor whose later members are zero (NULL), so core
 * treats the ops the plugin cannot know as absent. Refused, naming the file
 * and the component: an interface version newer than this library knows
 * (upgrade nde), and a size smaller than the descriptor had at the version
 * claimed (a descriptor not filled by the macro). A descriptor handed to
 * nde_*_create_from directly must have this library's interface version
 * (compiled with these headers, or returned by nde_plugin_find).
 */
#ifndef NDE_PLUGIN_H
#define NDE_PLUGIN_H

#include <stddef.h>
#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The major version (above): 5 split capabilities into provides/needs and
 * gave every descriptor its own interface version and size. */
#define NDE_ABI_VERSION 5

/* Numeric build choices a plugin must share with the library (Lua-style
 * insurance against a plugin built for another configuration). */
#define NDE_BUILD_SIGNATURE                                                  \
    ((unsigned)(sizeof(double) | (sizeof(size_t) << 8) | (sizeof(void *) << 16)))

typedef enum nde_kind {
    NDE_KIND_FIELD = 1,
    NDE_KIND_SOLVER,
    NDE_KIND_ADJOINT,
    NDE_KIND_REGULARIZER,
    NDE_KIND_TASK
} nde_kind;
#define NDE_KIND_COUNT 5

/* "field", "solver", "adjoint", "regularizer", "task"; "?" otherwise. */
NDE_API const char *nde_kind_name(nde_kind kind);

/*
 * Config key types. Values are checked against the type when a component is
 * composed, before its create() runs, so getters never see malformed text.
 */
typedef enum nde_key_type {
    NDE_KEY_DOUBLE = 1, /* one finite number                          */
    NDE_KEY_INT,        /* one integer                                 */
    NDE_KEY_BOOL,       /* true/false/yes/no/on/off/1/0                */
    NDE_KEY_WORD,       /* one word: [A-Za-z0-9_.+-]+                  */
    NDE_KEY_TEXT,       /* free text (an expression, a path)           */
    NDE_KEY_DOUBLES,    /* comma-separated numbers; rows on lines      */
    NDE_KEY_INTS,       /* comma-separated integers                    */
    NDE_KEY_WORDS,      /* comma-separated words                       */
    NDE_KEY_ASSIGNS     /* comma-separated name=number pairs; a name is
                           a word or indexed: w[0], A[0,1]              */
} nde_key_type;

/* "double", "int", ... as printed by `nde plugins`. */
NDE_API const char *nde_key_type_name(nde_key_type type);

/*
 * One accepted key. `def` is the default as config text; NULL means the key
 * is required; "" means optional with no value (nde_section_has() is false).
 * A name ending in '*' accepts every key with that prefix (e.g. "d*" for the
 * equations of `expr`); the plugin checks the rest of the name itself.
 * Tables end with an entry whose name is NULL.
 */
typedef struct nde_key {
    const char *name;
    nde_key_type type;
    const char *def;
    const char *help;
} nde_key;

/*
 * What a component provides (nde_plugin_info.provides; solvers and fields)
 * and what it needs of the forward solve (nde_plugin_info.needs for every
 * instance, and the instance's own a->record / r->needs, which may add to
 * them; adjoints and regularizers). Core checks an adjoint's or
 * regularizer's needs against the forward solver's capabilities when the
 * component is composed - once before its create (the descriptor's needs:
 * create may rely on them) and once after (the instance's) - and refuses a
 * bad pairing before any work starts, naming the component, the solver and
 * the missing capability.
 */
enum nde_capability {
    /* solvers */
    NDE_CAP_ADAPTIVE       = 1u << 0, /* has an embedded error estimate    */
    NDE_CAP_DENSE          = 1u << 1, /* dense output inside a step        */
    NDE_CAP_STIFFNESS      = 1u << 2, /* stiffness estimate per step       */
    NDE_CAP_STEP_VJP       = 1u << 3, /* VJP of one step                   */
    NDE_CAP_FSAL           = 1u << 4, /* first stage = last of previous    */
    NDE_CAP_SDE_ITO        = 1u << 5, /* integrates Ito SDEs               */
    NDE_CAP_SDE_STRATONOVICH = 1u << 6, /* integrates Stratonovich SDEs    */
    NDE_CAP_REVERSIBLE     = 1u << 7, /* exact algebraic reverse step      */
    /* fields */
    NDE_CAP_DIFFUSION      = 1u << 8, /* provides a diffusion g(t, y)      */
    /* SDE solvers: integrates general noise (NDE_NOISE_GENERAL, nde/field.h);
     * a solver without it is refused such a field */
    NDE_CAP_GENERAL_NOISE  = 1u << 9
};

/* Needs. The first four are also what a forward solve records
 * (nde_trajectory.record); each but STEPS, FIELD_JVP and ADDITIVE_NOISE
 * needs a solver capability. FIELD_JVP is a solver's own need (an
 * implicit method's Newton iteration): the field must have a jvp
 * (nde/field.h). ADDITIVE_NOISE is a solver's too (sra1): a diffusion
 * g(t, theta) that does not depend on y; fields do not declare that, so
 * it is documentation (`nde plugins`) and picks the problem `nde check`
 * tests the solver on, not a check. LEVY_AREA is an SDE solver's too: a
 * step's dw carries the space-time Levy area after the increment
 * (nde/solver.h, nde_solver_noise). */
enum nde_need {
    NDE_NEEDS_STEPS        = 1u << 0, /* every accepted step (t, h, y)    */
    NDE_NEEDS_DENSE        = 1u << 1, /* dense output of every step       */
    NDE_NEEDS_ERROR_EST    = 1u << 2, /* an adaptive solver's estimates   */
    NDE_NEEDS_STIFFNESS    = 1u << 3, /* the solver's stiffness estimate  */
    NDE_NEEDS_STEP_VJP     = 1u << 4, /* the solver's step VJP            */
    NDE_NEEDS_REVERSIBLE   = 1u << 5, /* the solver's exact reverse step  */
    NDE_NEEDS_FIELD_JVP    = 1u << 6, /* solvers: the field's JVP         */
    NDE_NEEDS_ADDITIVE_NOISE = 1u << 7, /* solvers: g independent of y    */
    NDE_NEEDS_LEVY_AREA    = 1u << 8  /* SDE solvers: H besides dw      */
};

typedef struct nde_plugin_info {
    int abi_version;         /* NDE_ABI_VERSION the plugin was built with */
    nde_kind kind;
    int iface_version;       /* the kind's interface version (NDE_FIELD_VERSION, ...) */
    size_t size;             /* sizeof the whole descriptor               */
    const char *name;        /* [a-z0-9_]+, unique per kind               */
    const char *description; /* one line                                  */
    const nde_key *keys;     /* accepted keys besides `plugin`; may be NULL */
    unsigned provides;       /* enum nde_capability                       */
    unsigned needs;          /* enum nde_need                             */
    /* The plugin's version, [A-Za-z0-9._+-]+ (at most 32 characters),
     * changed when its numbers or its parameters' meaning change;
     * checkpoints record it. Every component must set it. */
    const char *version;
} nde_plugin_info;

/* The header fields of an nde_plugin_info for a descriptor of `type`, then
 * the caller's designated initializers. Use the kinds' macros
 * (NDE_FIELD_INFO, ...), defined next to each descriptor. */
#define NDE_PLUGIN_INFO_(kind, iface_version, type, ...)                     \
    {NDE_ABI_VERSION, kind, iface_version, sizeof(type), __VA_ARGS__}

/* "adaptive", "dense output", ... for one capability or need bit; NULL
 * for an unknown bit. */
NDE_API const char *nde_capability_name(unsigned cap);
NDE_API const char *nde_need_name(unsigned need);

/* What a module exports under the name NDE_MODULE_SYMBOL. */
typedef struct nde_module {
    int abi_version;                          /* NDE_ABI_VERSION       */
    unsigned build_signature;                 /* NDE_BUILD_SIGNATURE   */
    const nde_plugin_info *const *components; /* NULL-terminated       */
} nde_module;

#define NDE_MODULE_SYMBOL "nde_module_entry"

/* A module's export: kept visible in a plugin built with hidden visibility. */
#define NDE_EXPORT NDE_API

#define NDE_MODULE(...)                                                      \
    static const nde_plugin_info *const nde_module_components_[] = {         \
        __VA_ARGS__, NULL};                                                  \
    NDE_EXPORT extern const nde_module nde_module_entry;                     \
    const nde_module nde_module_entry = {                                    \
        NDE_ABI_VERSION, NDE_BUILD_SIGNATURE, nde_module_components_}

#ifdef __cplusplus
}
#endif
#endif
