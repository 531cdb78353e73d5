/*
 * nde/adjoint.h - the adjoint (gradient) interface.
 *
 * An adjoint turns the record of a forward solve and a list of cotangents
 * (t_k, dL/dy(t_k)) - save-point losses and regularizer terms at any time in
 * the interval - into dL/dy0 and dL/dtheta. It declares in info.flags what
 * the forward solve must record for it (NDE_NEEDS_DENSE, NDE_NEEDS_STEPS,
 * NDE_NEEDS_STEP_VJP), and the solve loop records only that.
 *
 * The registry loads adjoint plugins now; the recording solve they consume
 * (nde_trajectory) and the first plugins arrive with training.
 */
#ifndef NDE_ADJOINT_H
#define NDE_ADJOINT_H

#include "config.h"
#include "plugin.h"
#include "solve.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The record of one forward solve (opaque; see nde/trajectory.h once it
 * exists). */
typedef struct nde_trajectory nde_trajectory;

/* dL/dy at time t: batch x dim values. */
typedef struct nde_cotangent {
    double t;
    const double *g;
} nde_cotangent;

typedef struct nde_adjoint nde_adjoint;

typedef struct nde_adjoint_type {
    nde_plugin_info info; /* kind NDE_KIND_ADJOINT; first */
    int (*create)(nde_adjoint *a, nde_section *sec, nde_ctx *ctx);
    void (*destroy)(nde_adjoint *a);
    /* ybar0 (batch x dim) and thetabar (nparams) are overwritten; backward
     * evaluations are added to stats->nfe_backward. Cotangents are sorted by
     * time in the direction of the forward solve. */
    int (*gradient)(nde_adjoint *a, nde_solver *s, const nde_trajectory *fwd,
                    const double *theta, const nde_cotangent *ct, size_t nct,
                    double *ybar0, double *thetabar, nde_stats *stats);
} nde_adjoint_type;

struct nde_adjoint {
    const nde_adjoint_type *type;
    nde_ctx *ctx;
    void *state;
};

#ifdef __cplusplus
}
#endif
#endif
