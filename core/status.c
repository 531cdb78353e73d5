/* Status codes, the error context and small shared helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "internal.h"
#include "nde_build_config.h"

#define NDE_MESSAGE_MAX 1024

struct nde_ctx {
    int status;
    char message[NDE_MESSAGE_MAX];
    nde_registry *registry; /* created on first plugin lookup */
};

const char *nde_version(void) { return NDE_VERSION; }

const char *nde_status_name(int status)
{
    switch (status) {
#define NDE_STATUS_NAME_(name, value, text) case value: return #name;
        NDE_STATUS_LIST(NDE_STATUS_NAME_)
#undef NDE_STATUS_NAME_
    }
    return "unknown status";
}

const char *nde_status_string(int status)
{
    switch (status) {
#define NDE_STATUS_TEXT_(name, value, text) case value: return text;
        NDE_STATUS_LIST(NDE_STATUS_TEXT_)
#undef NDE_STATUS_TEXT_
    }
    return "unknown status";
}

int nde_status_is_usage(int status)
{
    return status == NDE_EINVAL || status == NDE_ECONFIG ||
           status == NDE_EPLUGIN || status == NDE_ECAPABILITY;
}

nde_ctx *nde_ctx_create(void)
{
    return calloc(1, sizeof(nde_ctx));
}

void nde_ctx_destroy(nde_ctx *ctx)
{
    if (!ctx)
        return;
    nde_registry_destroy(ctx->registry);
    free(ctx);
}

int nde_verror(nde_ctx *ctx, int status, const char *fmt, va_list ap)
{
    if (!ctx)
        return status;
    ctx->status = status;
    vsnprintf(ctx->message, sizeof ctx->message, fmt, ap);
    return status;
}

int nde_error(nde_ctx *ctx, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nde_verror(ctx, status, fmt, ap);
    va_end(ap);
    return status;
}

void nde_error_prefix(nde_ctx *ctx, const char *fmt, ...)
{
    char prefix[NDE_MESSAGE_MAX], joined[2 * NDE_MESSAGE_MAX + 2];
    va_list ap;
    if (!ctx)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(joined, sizeof joined, "%s: %s", prefix, ctx->message);
    memcpy(ctx->message, joined, NDE_MESSAGE_MAX - 1);
    ctx->message[NDE_MESSAGE_MAX - 1] = '\0';
}

int nde_ctx_status(const nde_ctx *ctx) { return ctx->status; }
const char *nde_ctx_message(const nde_ctx *ctx) { return ctx->message; }

void nde_ctx_clear(nde_ctx *ctx)
{
    ctx->status = NDE_OK;
    ctx->message[0] = '\0';
}

nde_registry *nde_ctx_registry(nde_ctx *ctx)
{
    if (!ctx->registry)
        ctx->registry = nde_registry_create();
    return ctx->registry;
}

const char *nde_kind_name(nde_kind kind)
{
    switch (kind) {
    case NDE_KIND_FIELD: return "field";
    case NDE_KIND_SOLVER: return "solver";
    case NDE_KIND_ADJOINT: return "adjoint";
    case NDE_KIND_REGULARIZER: return "regularizer";
    case NDE_KIND_TASK: return "task";
    }
    return "?";
}

const char *nde_key_type_name(nde_key_type type)
{
    switch (type) {
    case NDE_KEY_DOUBLE: return "double";
    case NDE_KEY_INT: return "int";
    case NDE_KEY_BOOL: return "bool";
    case NDE_KEY_WORD: return "word";
    case NDE_KEY_TEXT: return "text";
    case NDE_KEY_DOUBLES: return "doubles";
    case NDE_KEY_INTS: return "ints";
    case NDE_KEY_WORDS: return "words";
    case NDE_KEY_ASSIGNS: return "name=value list";
    }
    return "?";
}

uint64_t nde_seed_derive(uint64_t seed, uint64_t index)
{
    /* SplitMix64 finaliser (Steele, Lea & Flood 2014) over seed and index. */
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (index + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
