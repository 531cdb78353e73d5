/*
 * nde/regularizer.h - the regularizer interface.
 *
 * A regularizer may adjust the problem before a training solve (STEER draws
 * the end time) and, after it, returns a scalar value R, a direct
 * dR/dtheta, and extra cotangents (t, dR/dy(t)) that are merged into the
 * adjoint's list, so it works with any adjoint. It declares in info.flags
 * what it needs recorded (NDE_NEEDS_STEPS, NDE_NEEDS_ERROR_EST,
 * NDE_NEEDS_STIFFNESS), checked against the solver when a config is
 * composed.
 *
 * The registry loads regularizer plugins now; the plugins arrive with the
 * regularizer work.
 */
#ifndef NDE_REGULARIZER_H
#define NDE_REGULARIZER_H

#include <stdint.h>
#include "adjoint.h"
#include "config.h"
#include "trajectory.h"
#include "plugin.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_regularizer nde_regularizer;

/* The part of a training solve a regularizer may change before it runs. */
typedef struct nde_solve_request {
    double t0, t1;          /* t1 may be changed (STEER)                    */
    double *extra_save;     /* extra save times the regularizer needs       */
    size_t nextra_save, extra_save_cap;
} nde_solve_request;

typedef struct nde_regularizer_type {
    nde_plugin_info info; /* kind NDE_KIND_REGULARIZER; first */
    int (*create)(nde_regularizer *r, nde_section *sec, nde_ctx *ctx);
    void (*destroy)(nde_regularizer *r);
    /* Optional (may be NULL). rng_seed is this iteration's seed for the
     * regularizer's own random stream. */
    int (*before_solve)(nde_regularizer *r, nde_solve_request *req,
                        uint64_t rng_seed);
    /* R into *value; thetabar += dR/dtheta (unweighted; the trainer applies
     * the weight); cotangents appended through *ct / *nct (owned by r). */
    int (*after_solve)(nde_regularizer *r, nde_solver *s,
                       const nde_trajectory *fwd, const double *theta,
                       double *value, double *thetabar,
                       const nde_cotangent **ct, size_t *nct);
} nde_regularizer_type;

struct nde_regularizer {
    const nde_regularizer_type *type;
    nde_ctx *ctx;
    void *state;
};

#ifdef __cplusplus
}
#endif
#endif
