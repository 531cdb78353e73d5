/*
 * nde/run.h - a config's initial value problem, composed and solved as
 * `nde solve` does it: the field of [field] (its parameters drawn from
 * [field]'s `seed` key when its plugin has one, else NDE_RUN_SEED), the
 * solver of [solver] with its solve options, [problem]'s interval,
 * initial states (one row per batch row), save times, tstops and event
 * (nde/event.h: each row stops at its first root), and for an SDE solver
 * one Brownian path per batch row from the solve's seed.
 *
 * Ownership: a run borrows cfg, which must outlive it, and owns the rest.
 * Errors: NDE_* with the message in ctx; a missing section or a bad key
 * is NDE_ECONFIG naming the config's file, line and key.
 */
#ifndef NDE_RUN_H
#define NDE_RUN_H

#include <stdint.h>
#include "api.h"
#include "config.h"
#include "field.h"
#include "solve.h"
#include "solver.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The parameters' seed of a field without a `seed` key. */
#define NDE_RUN_SEED 1

typedef struct nde_run nde_run;

NDE_API int nde_run_create(nde_ctx *ctx, const nde_config *cfg,
                           nde_run **out);
NDE_API void nde_run_destroy(nde_run *r);

NDE_API nde_field *nde_run_field(const nde_run *r);
NDE_API nde_solver *nde_run_solver(const nde_run *r);
NDE_API const nde_problem *nde_run_problem(const nde_run *r);
/* The field's nparams parameters, owned by the run; a caller may set
 * them before a solve. */
NDE_API double *nde_run_params(nde_run *r);
/* With a [problem] event: each row's event time of the last solve (NaN:
 * it did not fire), batch values owned by the run; NULL without one. */
NDE_API const double *nde_run_event_times(const nde_run *r);

/* Solve the problem into ysave (nsave x batch x dim, the caller's, as
 * nde_solve saves), through the Brownian path of `seed` for an SDE (the
 * same seed, the same paths; ignored for an ODE); *st gets the solve's
 * statistics and status. Returns that status. */
NDE_API int nde_run_solve(nde_run *r, uint64_t seed, double *ysave,
                          nde_stats *st);

#ifdef __cplusplus
}
#endif
#endif
