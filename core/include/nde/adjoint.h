/*
 * nde/adjoint.h - the adjoint (gradient) interface.
 *
 * An adjoint turns the record of a forward solve and a list of cotangents
 * (t_k, dL/dy(t_k)) - save-point losses and regularizer terms at any time in
 * the interval - into dL/dy0 and dL/dtheta. An instance declares in
 * a->record what the forward solve must record for it (NDE_NEEDS_DENSE,
 * NDE_NEEDS_STEPS, ... and a->max_states for checkpointing), and the solve
 * loop records only that (nde_solve_opts.record).
 *
 * Conventions shared by every adjoint:
 * - A cotangent at time t_k is dL/dy(t_k) for the solution the forward
 *   solve returned at t_k: the dense output inside a step, or the state at a
 *   step's end. Several cotangents may share a time (they add).
 * - A solve stopped by an event (nde/event.h) ends at the event time:
 *   fwd->t1 is t*, the cotangents lie in [t0, t*], and one on t* itself
 *   comes from nde_event_cotangent.
 * - The step sizes and accept/reject decisions of the forward solve are
 *   constants: no gradient flows through the step-size controller.
 * - Continuous adjoints (backsolve, interpolating) integrate backwards with
 *   the forward solver type and tolerances unless their section says
 *   otherwise, and add each cotangent's jump when they reach its time
 *   (a tstop) without restarting the step-size control.
 */
#ifndef NDE_ADJOINT_H
#define NDE_ADJOINT_H

#include "api.h"
#include "config.h"
#include "plugin.h"
#include "solve.h"
#include "status.h"
#include "trajectory.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dL/dy at time t: batch x dim values. */
typedef struct nde_cotangent {
    double t;
    const double *g;
} nde_cotangent;

typedef struct nde_adjoint nde_adjoint;

/* The interface version of nde_adjoint_type (plugin.h): members are only
 * ever appended.
 *   1: create, destroy, gradient */
#define NDE_ADJOINT_VERSION 1

/* The descriptor's info: NDE_ADJOINT_INFO(.name = ..., .description = ...,
 * .keys, .needs, .version). */
#define NDE_ADJOINT_INFO(...)                                                \
    NDE_PLUGIN_INFO_(NDE_KIND_ADJOINT, NDE_ADJOINT_VERSION, nde_adjoint_type, \
                     __VA_ARGS__)

typedef struct nde_adjoint_type {
    nde_plugin_info info; /* kind NDE_KIND_ADJOINT; needs NDE_NEEDS_*; first */

    /* Read the section (sec may be NULL: defaults), set a->record and
     * a->max_states, allocate what gradient() needs for up to
     * s->batch_max rows. Core has checked info.needs against the solver
     * before, and checks a->record after (plugin.h). */
    int (*create)(nde_adjoint *a, nde_section *sec, nde_solver *s,
                  nde_ctx *ctx);
    void (*destroy)(nde_adjoint *a);

    /* ybar0 (batch x dim) and thetabar (nparams) are overwritten.
     * fwd was recorded by nde_solve with the same solver, opts and theta.
     * Cotangents are sorted by time in the direction of the forward solve
     * and lie in [t0, t1]. Backward field evaluations and VJPs are added to
     * stats->nfe_backward (other stats fields untouched). */
    int (*gradient)(nde_adjoint *a, const nde_solve_opts *opts,
                    const nde_trajectory *fwd, const double *theta,
                    const nde_cotangent *ct, size_t nct, double *ybar0,
                    double *thetabar, nde_stats *stats);
} nde_adjoint_type;

struct nde_adjoint {
    const nde_adjoint_type *type;
    nde_ctx *ctx;
    nde_solver *solver;   /* the forward solver (borrowed)               */
    unsigned record;      /* NDE_NEEDS_* the forward solve must record    */
    size_t max_states;    /* trajectory states kept (0 = every step)      */
    void *state;
};

/* Create the adjoint named by section `section` (key `plugin`) for the
 * forward solver s; a missing section means `default_plugin` with its
 * defaults. */
NDE_API int nde_adjoint_create(nde_ctx *ctx, const nde_config *cfg,
                               const char *section, const char *default_plugin,
                               nde_solver *s, nde_adjoint **out);
/* Same with a descriptor at hand (one of this library's interface version:
 * compiled with these headers, or returned by nde_plugin_find). Both
 * refuse a solver lacking what the adjoint needs (NDE_ECAPABILITY). */
NDE_API int nde_adjoint_create_from(nde_ctx *ctx, const nde_adjoint_type *type,
                                    nde_section *sec, nde_solver *s,
                                    nde_adjoint **out);
NDE_API void nde_adjoint_destroy(nde_adjoint *a);

static inline int nde_adjoint_gradient(nde_adjoint *a,
                                       const nde_solve_opts *opts,
                                       const nde_trajectory *fwd,
                                       const double *theta,
                                       const nde_cotangent *ct, size_t nct,
                                       double *ybar0, double *thetabar,
                                       nde_stats *stats)
{
    return a->type->gradient(a, opts, fwd, theta, ct, nct, ybar0, thetabar,
                             stats);
}

/*
 * The backward-solve settings of a continuous adjoint's section: rtol and
 * atol (absent: the forward solve's) and norm = full | seminorm. read
 * checks them (sec may be NULL: defaults); apply starts the backward
 * options from the forward ones with these tolerances, recording nothing
 * (record and record_rows NULL).
 */
typedef struct nde_backward_settings {
    double rtol, atol;      /* NaN: the forward solve's                   */
    int seminorm;
} nde_backward_settings;

NDE_API int nde_backward_settings_read(nde_backward_settings *b,
                                       const nde_section *sec, nde_ctx *ctx);
NDE_API void nde_backward_settings_apply(const nde_backward_settings *b,
                                         const nde_solve_opts *fwd,
                                         nde_solve_opts *bo);

/*
 * The cotangent jumps of a continuous adjoint, which integrates its state z
 * backwards from t1 to t0 with the adjoint a (n values) at `offset` in z:
 * nde_jumps_plan adds the cotangents at t1 to a(t1) (in z_t1) and makes the
 * ones strictly inside (t0, t1) tstops of the backward solve, latest first;
 * nde_jumps_use puts them and a callback that adds each jump into solve
 * options (the step size carries on across them); nde_jumps_finish adds
 * the cotangents at t0 to a(t0) (in z_t0). Buffers grow to the largest
 * cotangent count seen and are kept; nde_jumps_free releases them.
 */
typedef struct nde_jumps {
    const nde_cotangent *ct;
    size_t n, offset;
    size_t lo;              /* cotangents [0, lo) lie at t0               */
    double *tstops;         /* nstops times, latest first                 */
    size_t *ct_of_stop;     /* tstop i -> cotangent index                 */
    size_t nstops, cap;
} nde_jumps;

NDE_API int nde_jumps_plan(nde_jumps *j, const nde_trajectory *fwd,
                           const nde_cotangent *ct, size_t nct, size_t n,
                           size_t offset, double *z_t1, nde_ctx *ctx);
NDE_API void nde_jumps_use(nde_jumps *j, nde_solve_opts *o);
NDE_API void nde_jumps_finish(const nde_jumps *j, double *z_t0);
NDE_API void nde_jumps_free(nde_jumps *j);

#ifdef __cplusplus
}
#endif
#endif
