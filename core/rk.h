/* Core-private: the explicit Runge-Kutta engine's workspace, and the
 * controller and engine entry points the solve loop uses (never installed). */
#ifndef NDE_RK_H
#define NDE_RK_H

#include "nde/nde.h"

/* Tableaus with more stages are refused at create. */
#define NDE_RK_MAX_STAGES 16

typedef struct nde_rk_work {
    int stages;
    double *k[NDE_RK_MAX_STAGES]; /* stage derivatives; k[0], k[s-1] swap (FSAL) */
    double *g;              /* stage argument                                */
    double *gq;             /* argument of the stiffness stage q             */
    int k1_valid;           /* k[0] = f(t, y) for the y of the next step     */
    /* the last step taken, while its stages are intact (no accept or new
     * step since): nde_solver_last_step_vjp reuses them */
    int last_valid;
    double last_t, last_h;
    const double *last_y, *last_theta;
    int fsal_pending;       /* last step accepted: k[s-1] becomes k[0]       */
    /* step VJP: its own stages (the step's k stay intact for dense output),
     * every stage argument, every stage cotangent */
    double *kv[NDE_RK_MAX_STAGES];
    double *gv[NDE_RK_MAX_STAGES];
    double *kbar[NDE_RK_MAX_STAGES];
    double *gbar, *gqbar, *ynbar, *errv, *ynextv;
    /* solve loop state (nde_solve) */
    double *y, *y_next, *err, *y1, *f1;
    double *block;          /* the one allocation behind all the above       */
} nde_rk_work;

/* The declared orders of a tableau solver against the order conditions,
 * and c against the row sums of a (core/tableau.c); NDE_EPLUGIN naming
 * what fails. */
int nde_rk_tableau_check_orders(nde_ctx *ctx, const nde_solver_type *type);

/* Workspace for n_max = batch_max * dim values (core/rk.c). */
int nde_rk_work_create(int stages, size_t n_max, nde_rk_work **out);
void nde_rk_work_destroy(nde_rk_work *w);

/* nde_solver_step that also returns, when eest is not NULL (and err is
 * not NULL), the checked error norm computed in the same pass as err:
 * nblocks = 0, the scaled RMS over all n values; otherwise the largest
 * scaled RMS of the consecutive blocks of blocks[0..nblocks-1] values
 * (checked by the caller: each > 0, sum <= n; err is then written for the
 * blocks only, and the values after them are still checked for
 * non-finite values). */
int nde_rk_step(nde_solver *s, const double *theta, double t, double h,
                const double *y, double *y_next, double *err, double rtol,
                double atol, const size_t *blocks, size_t nblocks,
                double *eest);

/* nde_error_norm, but NaN when y_next holds a non-finite value: the loop's
 * one check for a non-finite state. */
double nde_rk_error_norm_checked(const double *err, const double *y,
                                 const double *y_next, size_t n, double rtol,
                                 double atol);

/* A solver with ops as nde_solver_create_from allocates it: the public
 * object first (nde_solver * points at it), then the fixed-step loop's
 * buffers (core/solve.c), sized at create for batch_max x dim values. */
typedef struct nde_ops_solver {
    nde_solver pub;
    double *y, *y_next;     /* n each                                     */
    double *aux, *aux_next; /* aux x n each                               */
    double *dw;             /* n: the step's Brownian increment            */
    double *block;          /* the one allocation behind all the above    */
} nde_ops_solver;

/* The fixed-step loop of nde_solve for ops solvers (core/solve.c). */
int nde_ops_solve(nde_solver *s, const nde_solve_opts *opts,
                  const double *theta, double t0, const double *y0, double t1,
                  size_t nsave, const double *tsave, double *ysave,
                  nde_stats *st);

/* Recording a solve into an nde_trajectory (core/trajectory.c). begin
 * resets the count and sizes the buffers for n values a state and `stages`
 * stages; push appends one accepted step (k: the step's stages, read only
 * with NDE_NEEDS_DENSE); end stores t1 and the final state. NDE_ENOMEM
 * when a buffer cannot grow. */
int nde_trajectory_begin(nde_trajectory *tr, size_t n, int stages, double t0);
int nde_trajectory_push(nde_trajectory *tr, double t, double h,
                        const double *y, double *const *k, double eest,
                        double stiff);
void nde_trajectory_end(nde_trajectory *tr, double t1, const double *y);
/* The same for ops solvers: aux blocks of n values per state (k[j] = aux
 * at the start of step j, with NDE_NEEDS_STEPS), the save times copied at
 * begin, aux_final at end. */
int nde_trajectory_begin_ops(nde_trajectory *tr, size_t n, int aux, double t0,
                             const double *tsave, size_t nsave);
int nde_trajectory_push_ops(nde_trajectory *tr, double t, double h,
                            const double *y, const double *aux);
void nde_trajectory_end_ops(nde_trajectory *tr, double t1, const double *y,
                            const double *aux);

/* PI controller (core/controller.c), methods.md 2.2: the parameters of an
 * nde_controller and the loop's memory of the last accepted error, kept
 * also as its logarithm so that a step costs one log and one exp. */
typedef struct nde_pi {
    nde_controller c;       /* parameters; c.err_prev kept up to date   */
    double log_err_prev;
} nde_pi;

void nde_pi_init(nde_pi *pi, const nde_controller *params);
/* Next step size after an accepted step of size h with error eest <= 1. */
double nde_pi_accept(nde_pi *pi, double eest, double h);
/* Retry size after a rejected step of size h with error eest > 1. */
double nde_pi_reject(const nde_pi *pi, double eest, double h);

#endif
