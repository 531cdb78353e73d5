/*
 * nde/solve.h - the solve driver (core, not a plugin) and the problem
 * section.
 *
 * Layers as in GSL odeiv2: the solver takes one step and estimates its
 * error (nde/solver.h); the controller (nde_controller) proposes the next
 * step size from the scaled error; nde_solve accepts or rejects, saves,
 * counts and stops. One driver runs every solver, through its ops, with one
 * semantics:
 *
 * - Adaptive solvers (NDE_CAP_ADAPTIVE) step with the PI controller and the
 *   automatic first step unless opts.dt > 0. Save times are served by dense
 *   output, never by shortening steps (solvers without dense output stop
 *   exactly on save times); steps land exactly on tstops and t1.
 * - Fixed-step solvers step on the grid t0 + k dt toward t1 (opts.dt > 0;
 *   the last cell ends at t1): a save time or tstop inside a cell splits it
 *   and is served at a step's end, and the grid does not shift; one within
 *   NDE_STEP_GRID_SNAP dt of a grid point is served at that grid point
 *   (nde_step_grid).
 * - max_steps counts step attempts: accepted, rejected and retried. A
 *   fixed step that needs more than max_steps steps is refused before the
 *   first (NDE_EMAXSTEPS).
 * - A step whose values are not finite (the field's NDE_ERETRY, or a
 *   non-finite y_next, aux_next or error) is retried with a quarter of the
 *   step when the solver is adaptive (at most 30 times in a row) and fails
 *   the solve with NDE_ENONFINITE when it is not.
 * - t1 == t0 is a solve of no step: every save time (all equal to t0) gets
 *   y0, for every solver.
 * - Integration may run backwards (t1 < t0; save times and tstops must
 *   then decrease), except for SDE solvers, which integrate forwards.
 * - SDE solvers take the increment of each step attempt from
 *   opts.brownian, which the caller resets before the solve to a path
 *   covering [t0, t1] with n = batch x dim channels; a rejected step of an
 *   adaptive SDE solver queries the same path on the shorter interval (the
 *   Brownian Interval answers any interval exactly), so the path, not the
 *   step sequence, fixes the noise. On the solve's own grid (nde_brownian_
 *   reset with t0, t1 and dt) every fixed-step query is a whole cell, the
 *   fast case. An adjoint queries the same path backwards. A solver that
 *   needs the space-time Levy area gets it too (nde_solver_noise), and
 *   the solve switches the path's area on for it (nde_brownian_set_area:
 *   the path's W changes, so query W after the solve). An adaptive SDE
 *   solver's step ends where the path is cheap to query
 *   (nde_brownian_snap), within 1/256 of the step of where the controller
 *   put it.
 */
#ifndef NDE_SOLVE_H
#define NDE_SOLVE_H

#include "api.h"
#include "brownian.h"
#include "config.h"
#include "event.h"
#include "field.h"
#include "solver.h"
#include "status.h"
#include "trajectory.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Step-size controllers: the driver calls one through its table after each
 * step of an adaptive solve with the step's scaled error norm eest
 * (accepted iff eest <= 1) and its size h, and takes the size it returns
 * (the sign of h) for the next attempt. memory holds NDE_CONTROLLER_MEMORY
 * doubles of the controller's own state during one solve, set by start.
 *
 * pi (the default; OrdinaryDiffEq.jl controllers.jl, PIController):
 *     accepted: h_new = h clamp(safety EEst^-beta1 EEst_prev^beta2,
 *                               qmin, qmax), EEst_prev = max(EEst, 1e-4)
 *     rejected: h_new = h max(qmin, safety EEst^-beta1)
 * pid (diffrax _step_size_controller/pid.py, PIDController), eps = 1 / EEst,
 * k = order:
 *     factor = safety eps_n^((p + i + d) / k) eps_{n-1}^(-(p + 2 d) / k)
 *              eps_{n-2}^(d / k)
 *     accepted: clamped to [1, qmax]; rejected: to [qmin, safety]
 *     with (p, i, d) = (pcoeff, icoeff, dcoeff); eps before the first step
 *     is 1.
 * i: pid with (p, i, d) = (0, 1, 0), diffrax's default.
 */
#define NDE_CONTROLLER_MEMORY 4

typedef struct nde_controller nde_controller;

typedef struct nde_controller_ops {
    const char *name;
    void (*start)(const nde_controller *c, double *memory);
    double (*accept)(const nde_controller *c, double *memory, double eest,
                     double h);
    double (*reject)(const nde_controller *c, const double *memory,
                     double eest, double h);
} nde_controller_ops;

NDE_API extern const nde_controller_ops nde_controller_pi;
NDE_API extern const nde_controller_ops nde_controller_i;
NDE_API extern const nde_controller_ops nde_controller_pid;

struct nde_controller {
    const nde_controller_ops *ops; /* NULL: nde_controller_pi             */
    double safety, qmin, qmax;
    double beta1, beta2;           /* pi                                  */
    double pcoeff, icoeff, dcoeff; /* pid                                 */
    double order;                  /* pid's k: the solver's order (SDE:
                                      strong order + 0.5)               */
};

typedef struct nde_solve_opts {
    double rtol, atol;
    double dt;              /* adaptive: initial step (0 = automatic);
                               fixed-step: the step                     */
    double dtmin;           /* |h| below this (or below round-off at t) is
                               a step-size underflow                      */
    double dtmax;           /* 0 = unlimited                              */
    long max_steps;         /* step attempts: accepted + rejected       */
    nde_controller ctrl;
    const double *tstops;   /* times the solver must step onto exactly    */
    size_t ntstops;
    /* Called after the solve lands on tstop i (once per tstop, also for a
     * tstop at t1); may change y in place (an adjoint adds a cotangent's
     * jump). The step size carries on; FSAL is invalidated. Non-zero
     * return stops the solve with that status. NULL = none. */
    int (*at_tstop)(void *user, size_t i, double t, double *y);
    void *at_tstop_user;
    /* Error norm by blocks (a mixed norm, as torchdiffeq's over tensors):
     * the state (the whole batch, batch x dim values) is split into
     * consecutive blocks of norm_blocks[0], ..., norm_blocks[nnorm_blocks
     * - 1] values (each > 0, summing to at most the state size) and the
     * error norm (also in the automatic first step) is the largest of the
     * blocks' scaled RMS norms. Values after the last block are left out
     * (a seminorm, e.g. without the parameter adjoint) but still checked
     * for non-finite values. nnorm_blocks = 0: one scaled RMS over the
     * whole state. Checked by nde_solve (NDE_EINVAL). */
    const size_t *norm_blocks;
    size_t nnorm_blocks;
    /* Record the solve into this trajectory (what its flags ask); NULL =
     * record nothing. */
    nde_trajectory *record;
    /* SDE solvers: the Brownian path of this solve (borrowed). */
    nde_brownian *brownian;
    /* The key brownian = split: the solve switches the path's split
     * refinement on (nde_brownian_set_split, which restarts a path that
     * had it off) and the adaptive steps end where the controller puts
     * them. 0 (tree): the solve leaves the path's setting alone. */
    int brownian_split;
    /* Per-row step sizes (adaptive ODE solvers; the key per_row_steps):
     * each row of the batch is solved alone, with its own step sizes,
     * accept/reject decisions and error norm, so that a hard row does not
     * drag the others; the field then runs one row at a time. Such a solve
     * is recorded row by row (record_rows), not into record (NDE_EINVAL
     * for a batch of more than one row). nfe counts one-row
     * evaluations, steps are summed over the rows. */
    int per_row;
    /* per_row: record row r's solve into record_rows[r] (one per row of
     * the batch; record must then be NULL). NULL = record nothing. */
    nde_trajectory **record_rows;
    /* A terminal event (nde/event.h; borrowed, NULL = none): each row
     * stops at the first root of the event in its direction, found on
     * the dense output; its last step is taken again onto the root, so
     * its solve (and record) ends at t*. Needs an adaptive ODE solver
     * with dense output (NDE_ECAPABILITY). A batch of more than one row
     * is solved one row at a time as with per_row (record_rows, not
     * record), each row stopping at its own t*; save times after a row's
     * event hold its state at the event (frozen). */
    nde_event *event;
    /* With event: each row's event time (batch values, caller's; NULL =
     * not wanted), NaN for a row whose event did not fire (it ran to
     * t1). */
    double *event_t;
} nde_solve_opts;

/* The solve loop's keys of a [solver] section (rtol, atol, dt, max_steps,
 * dtmin, dtmax, safety, qmin, qmax, beta1, beta2). */
NDE_API extern const nde_key nde_solve_keys[];

/* Defaults for a solver type (beta1 = 7/(10p), beta2 = 2/(5p), p = order). */
NDE_API void nde_solve_opts_default(nde_solve_opts *o,
                                    const nde_solver_type *type);
/* Defaults, then the keys of a checked [solver] section. */
NDE_API int nde_solve_opts_from_section(nde_solve_opts *o,
                                        const nde_solver_type *type,
                                        const nde_section *sec, nde_ctx *ctx);

typedef struct nde_stats {
    long nfe;               /* field evaluations in the forward solve      */
    long nfe_backward;      /* evaluations + VJPs in a backward pass        */
    long steps_accepted;
    long steps_rejected;
    long retries;           /* rejections caused by non-finite values      */
    double h_min, h_max;    /* smallest / largest accepted |h|              */
    int status;             /* status of the solve                          */
} nde_stats;

/*
 * Integrate from (t0, y0) to t1 over the solver's current batch
 * (nde_solver_set_batch), writing y at each of the nsave save times into
 * ysave (nsave x batch x dim). Save times lie in [t0, t1] in the direction
 * of integration, non-decreasing; a save time equal to t0 returns y0.
 * stats (may be NULL) is filled even on failure.
 * Errors: NDE_EMAXSTEPS, NDE_ESTEPSIZE (step-size underflow),
 * NDE_ENONFINITE (the field keeps returning non-finite values, or the state
 * became non-finite), NDE_EFATAL (from the field), NDE_EINVAL.
 */
NDE_API int nde_solve(nde_solver *s, const nde_solve_opts *opts,
                      const double *theta, double t0, const double *y0,
                      double t1, size_t nsave, const double *tsave,
                      double *ysave, nde_stats *stats);

/* Hairer's initial step heuristic (Hairer, Norsett, Wanner, Solving ODEs
 * I, Sec. II.4); costs one evaluation
 * beyond f0 = f(t0, y0), which the caller supplies. */
NDE_API int nde_initial_step(nde_solver *s, const nde_solve_opts *opts,
                             const double *theta, double t0, const double *y0,
                             const double *f0, double t1, double *h0);

/*
 * The step boundaries of a fixed-step solve (the same sequence forwards and
 * backwards, so an adjoint can walk it without a record): the grid points
 * t0 + k dt (for t1 > t0 those of nde_grid_cells / nde_grid_time) merged
 * with the save times and tstops strictly between t0 and t1, and t1. A
 * save time or tstop within NDE_STEP_GRID_SNAP dt of a grid point is
 * served at that grid point (snap): 0.3 on a grid of 0.1 is
 * 0.30000000000000004, and without the snap a step of 6e-17 would sit
 * between them. tsave and tstops (ordered in the direction of
 * integration) are borrowed. next returns the first boundary strictly
 * after t (t1 for t at or beyond t1), prev the last one strictly before t
 * (t0 for t at or before t0), snap the boundary at which a time between t0
 * and t1 that is a save time, tstop or cotangent time is served; "after"
 * and "before" in the direction of integration (dir). t1 == t0 is
 * refused (NDE_EINVAL).
 */
#define NDE_STEP_GRID_SNAP 1e-9
typedef struct nde_step_grid {
    double t0, t1, dir, dt; /* dir = +1 or -1: the direction of t1      */
    size_t cells;
    const double *tsave;
    size_t nsave;
    const double *tstops;
    size_t ntstops;
} nde_step_grid;
NDE_API int nde_step_grid_init(nde_step_grid *g, double t0, double t1,
                               double dt, const double *tsave, size_t nsave,
                               const double *tstops, size_t ntstops,
                               nde_ctx *ctx);
NDE_API double nde_step_grid_next(const nde_step_grid *g, double t);
NDE_API double nde_step_grid_prev(const nde_step_grid *g, double t);
NDE_API double nde_step_grid_snap(const nde_step_grid *g, double s);

/* The [problem] section: t0, t1, y0 (one row per line), saveat | nsave,
 * tstops; its keys event and direction are read by nde_event_from_section
 * (they need the field's state names). */
typedef struct nde_problem {
    double t0, t1;
    size_t batch, dim;
    double *y0;             /* batch x dim                               */
    size_t nsave;
    double *tsave;
    size_t ntstops;
    double *tstops;
} nde_problem;

NDE_API extern const nde_key nde_problem_keys[];

/* Read and check [problem]; y0 rows must have `dim` values each. */
NDE_API int nde_problem_from_section(nde_problem *p, nde_section *sec,
                                     size_t dim, nde_ctx *ctx);
NDE_API void nde_problem_free(nde_problem *p);

#ifdef __cplusplus
}
#endif
#endif
