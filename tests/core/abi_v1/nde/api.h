/*
 * nde/api.h - NDE_API, the mark of what libnde exports.
 *
 * libnde is built with hidden visibility: a function or object is exported
 * only when its declaration in these public headers carries NDE_API, so
 * the core's internals stay out of the ABI and its internal calls need no
 * PLT. tests/core/check_exports.py checks that the exports and the NDE_API
 * declarations agree.
 */
#ifndef NDE_API_H
#define NDE_API_H

#if defined(__GNUC__)
#define NDE_API __attribute__((visibility("default")))
#else
#define NDE_API
#endif

#endif
