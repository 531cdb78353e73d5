/*
 * nde/status.h - status codes and the error context.
 *
 * Every fallible call returns an int status from the list below (NDE_OK = 0).
 * A call that fails also leaves a human-readable message in the nde_ctx it
 * was given; the library never prints, never exits and never aborts.
 */
#ifndef NDE_STATUS_H
#define NDE_STATUS_H

#include <stdarg.h>
#include <stddef.h>
#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, description): one list makes both the enum and the table. */
#define NDE_STATUS_LIST(X)                                                   \
    X(NDE_OK,          0, "success")                                         \
    X(NDE_ERETRY,      1, "non-finite value; the step should be retried smaller") \
    X(NDE_EFATAL,      2, "fatal error in a vector field")                   \
    X(NDE_EINVAL,      3, "invalid argument")                                \
    X(NDE_ENOMEM,      4, "out of memory")                                   \
    X(NDE_ECONFIG,     5, "configuration error")                             \
    X(NDE_EPLUGIN,     6, "plugin error")                                    \
    X(NDE_ECAPABILITY, 7, "missing capability")                              \
    X(NDE_EIO,         8, "input/output error")                              \
    X(NDE_EMAXSTEPS,   9, "maximum number of steps reached")                 \
    X(NDE_ESTEPSIZE,  10, "step size underflow")                             \
    X(NDE_ENONFINITE, 11, "non-finite state")

enum nde_status {
#define NDE_STATUS_ENUM_(name, value, text) name = value,
    NDE_STATUS_LIST(NDE_STATUS_ENUM_)
#undef NDE_STATUS_ENUM_
};

/* "NDE_EINVAL" and "invalid argument"; "unknown status" for other values. */
NDE_API const char *nde_status_name(int status);
NDE_API const char *nde_status_string(int status);

/* True for statuses that mean the user's input (config, plugin choice,
 * pairing) is wrong rather than that a computation failed; the `nde`
 * program maps these to exit code 2 and the others to 1. */
NDE_API int nde_status_is_usage(int status);

/*
 * The context: the last error (status + message) and the plugin registry.
 * One per thread of work; not shared between threads.
 */
typedef struct nde_ctx nde_ctx;

/* NULL when out of memory. */
NDE_API nde_ctx *nde_ctx_create(void);
NDE_API void nde_ctx_destroy(nde_ctx *ctx);

/* Record an error and return `status` (so `return nde_error(...)` reads
 * naturally). The message is formatted with printf rules and truncated to
 * the context's buffer (1 KiB). */
NDE_API int nde_error(nde_ctx *ctx, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
NDE_API int nde_verror(nde_ctx *ctx, int status, const char *fmt, va_list ap);

/* Prefix the current message with "what: " (used when an error travels up
 * through a layer that knows more context, e.g. the file name). */
NDE_API void nde_error_prefix(nde_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

NDE_API int nde_ctx_status(const nde_ctx *ctx);
NDE_API const char *nde_ctx_message(const nde_ctx *ctx);
NDE_API void nde_ctx_clear(nde_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
