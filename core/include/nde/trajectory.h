/*
 * nde/trajectory.h - the record of one forward solve, for adjoints and
 * regularizers.
 *
 * What is recorded is chosen by flags (the NDE_NEEDS_* declared by the
 * adjoint and regularizers of a run); the solve loop records only that.
 * With record = 0 only the step count, t0, t1 and y_final are kept (memory
 * independent of the number of steps: what backsolve needs). Otherwise
 * every accepted step j = 0..nsteps-1 has its start time t[j] and its size
 * h[j] (two doubles a step), and on request:
 *   NDE_NEEDS_STEPS      y[j]: the state at the start of step j (n values)
 *   NDE_NEEDS_DENSE      k[j]: the step's stages (stages x n values), and
 *                        y[j] as with NDE_NEEDS_STEPS, so the dense output
 *                        of any step can be evaluated later
 *   NDE_NEEDS_ERROR_EST  eest[j]: the step's scaled error norm
 *   NDE_NEEDS_STIFFNESS  stiff[j]: the step's stiffness estimate
 * A solver with aux state (nde_solver_aux) has it recorded with every
 * stored state (naux x n values, with NDE_NEEDS_STEPS) and at t1
 * (aux_final, always), so that steps can be replayed from a stored state
 * and a reversible solver's adjoint can run them backwards from the end.
 * The solve's save times are copied (tsave, nsave): a fixed-step solve
 * stops on them, and an adjoint walking its grid needs them.
 * With max_states > 0, y (and its aux) is kept for at most
 * that many steps, evenly spread over the step index (when full, every
 * other one is dropped and the stride doubles): ystep[i] says which step
 * y[i] belongs to. Adjoints that replay steps from such checkpoints get
 * memory O(max_states).
 *
 * Buffers grow geometrically and are kept across solves (nde_solve resets
 * the count), so repeated training solves stop allocating once they have
 * seen their longest solve.
 *
 * Plugins read the record's arrays of n-value blocks through the accessors
 * below, never by computing offsets into y and k: the layout is core's.
 */
#ifndef NDE_TRAJECTORY_H
#define NDE_TRAJECTORY_H

#include <stddef.h>
#include "api.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_trajectory {
    unsigned record;     /* NDE_NEEDS_* flags                              */
    size_t max_states;   /* 0 = y at every step (with NDE_NEEDS_STEPS)     */
    size_t n;            /* values per state (batch x dim)                 */
    int stages;          /* stages per step in k                           */
    int naux;            /* aux blocks per stored state (the solver's aux) */
    double t0, t1;       /* the solve's interval                          */
    size_t nsteps;       /* accepted steps recorded                        */
    double *t, *h;       /* nsteps each                                    */
    size_t nstates;      /* states in y (== nsteps unless max_states)     */
    size_t stride;       /* y holds every stride-th step                   */
    size_t *ystep;       /* nstates: the step index of each stored state   */
    double *y;           /* nstates x n                                    */
    double *aux;         /* nstates x naux x n: aux with each stored state */
    double *k;           /* nsteps x stages x n                            */
    double *eest;        /* nsteps                                         */
    double *stiff;       /* nsteps                                         */
    double *y_final;     /* n: the state at t1                             */
    double *aux_final;   /* naux x n: the aux state at t1                  */
    double *tsave;       /* the solve's save times                        */
    size_t nsave, tsave_cap;
    size_t cap, states_cap; /* allocated steps / states                   */
} nde_trajectory;

/* An empty record. NULL when out of memory. */
NDE_API nde_trajectory *nde_trajectory_create(unsigned record,
                                              size_t max_states);
NDE_API void nde_trajectory_destroy(nde_trajectory *tr);

/* Stored state i (0 <= i < nstates): the state at the start of step
 * nde_trajectory_state_step(tr, i), n values. NULL when out of range. */
NDE_API const double *nde_trajectory_state(const nde_trajectory *tr,
                                           size_t i);
/* The step index of stored state i (ystep[i]). */
NDE_API size_t nde_trajectory_state_step(const nde_trajectory *tr, size_t i);
/* The aux state that goes with stored state i (naux x n values). NULL
 * when out of range or the solver has none. */
NDE_API const double *nde_trajectory_aux(const nde_trajectory *tr, size_t i);
/* The stages of step j (NDE_NEEDS_DENSE; stages x n values), to evaluate
 * its dense output from nde_trajectory_state. NULL when not recorded. */
NDE_API const double *nde_trajectory_stages(const nde_trajectory *tr,
                                            size_t j);
/* The scaled error norm (NDE_NEEDS_ERROR_EST) and stiffness estimate
 * (NDE_NEEDS_STIFFNESS) of step j; NaN when not recorded. */
NDE_API double nde_trajectory_eest(const nde_trajectory *tr, size_t j);
NDE_API double nde_trajectory_stiffness(const nde_trajectory *tr, size_t j);

/* Checkpointed records (max_states): the last stored state at or before
 * step j, -1 when none (nstates == 0); and the steps [*j0, *j1) that
 * replay from stored state i to the next one (or to the last step). */
NDE_API long nde_trajectory_state_before(const nde_trajectory *tr, size_t j);
NDE_API void nde_trajectory_segment(const nde_trajectory *tr, size_t i,
                                    size_t *j0, size_t *j1);

/* The step j whose interval [t[j], t[j] + h[j]] contains t (either
 * direction of integration); the last step for t1. -1 if outside or when
 * no step times were recorded (record = 0). */
NDE_API long nde_trajectory_find(const nde_trajectory *tr, double t);

#ifdef __cplusplus
}
#endif
#endif
