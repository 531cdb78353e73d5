/*
 * check.h - `nde check KIND NAME`: conformance suites for plugin authors.
 *
 * Each suite prints one line per check (name, measured error, tolerance,
 * PASS or FAIL) through check_line and counts the failures; a check that
 * cannot run (the plugin returned an error) is a failure with the
 * library's message. Points are drawn from a seed, so a run repeats.
 */
#ifndef NDE_CLI_CHECK_H
#define NDE_CLI_CHECK_H

#include <stdint.h>

#include "cli.h"

typedef struct check_report {
    const char *title, *name;   /* kind and plugin, for the header       */
    const char *module, *version; /* where it was loaded from (or NULL)  */
    int printed;                /* the header is out                     */
    int checks, failed;
} check_report;

/* Name the checked plugin's module and version in the header. */
void check_plugin(check_report *r, nde_ctx *ctx, const nde_plugin_info *info);
/* "NAME  ERROR  TOL  PASS|FAIL": pass when err <= tol (NaN fails). */
void check_line(check_report *r, const char *name, double err, double tol);
/* A check that could not run: "NAME  -  -  FAIL (why)". */
void check_cannot(check_report *r, const char *name, nde_ctx *ctx, int rc);
/* A line starting with "# ": what a suite holds constant or skips. */
void check_note(check_report *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A reproducible uniform number in [lo, hi) from *state (SplitMix64). */
double check_uniform(uint64_t *state, double lo, double hi);

/* d phi / d x[i] by fourth-order central differences, steps of 1e-3
 * max(1, |x[i]|): phi(user, &value) is called with x[i] moved (x is
 * restored); its first non-OK status is returned. */
int check_difference(double *x, size_t i, int (*phi)(void *user, double *v),
                     void *user, double *out);

/* max_i |got_i - want_i| / max(1, max_i |want_i|) */
double check_rel_error(const double *got, const double *want, size_t n);

/* The suites. cfg holds the plugin's section (plugin key set); each
 * returns NDE_OK after running (failures are in *r) or the status of a
 * composition error (bad keys, no such plugin), with ctx's message. */
int check_field(nde_ctx *ctx, nde_config *cfg, uint64_t seed,
                check_report *r);
int check_regularizer(nde_ctx *ctx, nde_config *cfg, const char *section,
                      uint64_t seed, check_report *r);
int check_solver(nde_ctx *ctx, nde_config *cfg, uint64_t seed,
                 check_report *r);
/* The task NAME of cfg's [data] (source set unless given). */
int check_task(nde_ctx *ctx, nde_config *cfg, const char *name,
               uint64_t seed, check_report *r);

#endif
