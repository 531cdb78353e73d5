/* Core-private: the explicit Runge-Kutta engine's workspace and table, the
 * driver's buffers, recording and the step-size controllers (never
 * installed). */
#ifndef NDE_RK_H
#define NDE_RK_H

#include "nde/nde.h"

/* A vector of fewer values stays on the caller's thread (core/rk.c's
 * step, core/trajectory.c's record); two chunks of the error norm. */
#define NDE_SPLIT_MIN (2 * NDE_NORM_CHUNK)

/* Tableaus with more stages are refused at create. */
/* Vern9: 16 stages, its FSAL stage and 9 extra stages for dense output. */
#define NDE_RK_MAX_STAGES 26

typedef struct nde_rk_work {
    int stages;             /* the step's, s                                 */
    int total;              /* s + the extra stages of dense output          */
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
    /* the extra stages k[s..total-1] of the last step, evaluated when its
     * dense output is first asked for, from its start y0 (a copy: the
     * caller's y may be gone by then), t, h and theta */
    int extras_valid;
    double dense_t, dense_h;
    const double *dense_theta;
    double *y0;
    /* step VJP: its own stages (the step's k stay intact for dense output),
     * every stage argument, every stage cotangent */
    double *kv[NDE_RK_MAX_STAGES];
    double *gv[NDE_RK_MAX_STAGES];
    double *kbar[NDE_RK_MAX_STAGES];
    double *gbar, *gqbar, *ynbar, *errv, *ynextv;
    double *sums;           /* a step's error norm: a sum per chunk of values */
    const double *btilde2;  /* the tableau's second estimate, or NULL       */
    double *block;          /* the one allocation behind all the above       */
} nde_rk_work;

/* The declared orders of a tableau solver against the order conditions,
 * and c against the row sums of a (core/tableau.c); NDE_EPLUGIN naming
 * what fails. */
int nde_rk_tableau_check_orders(nde_ctx *ctx, const nde_solver_type *type);

/* Core's ops for an explicit RK tableau solver (core/rk.c): every
 * operation the tableau can back. */
void nde_rk_ops_fill(const nde_solver_type *type, nde_solver_ops *ops);

/* The tableau's extra stages: none before interface version 2 (such a
 * plugin's tableau ends before the member). */
static inline int nde_rk_extra_stages(const nde_solver_type *type)
{
    return type->info.iface_version >= 2 ? type->tableau->extra_stages : 0;
}

/* The tableau's second error estimate: none before interface version 3. */
static inline const double *nde_rk_btilde2(const nde_solver_type *type)
{
    return type->info.iface_version >= 3 ? type->tableau->btilde2 : NULL;
}

/* hc[i] = h b_i(theta), the dense-output weights of the `total` stages
 * (the step's and the extra ones; core/rk.c). */
void nde_rk_dense_weights(const nde_rk_tableau *tab, int total, double theta,
                          double h, double *hc);

/* The driver's buffers (core/solve.c), allocated with the solver for
 * batch_max x dim values and aux blocks. */
struct nde_solve_buffers {
    double *y, *y_next;     /* n each                                     */
    double *aux, *aux_next; /* aux x n each                               */
    double *dw;             /* 2 w: the step's noise (nde_solver_noise)    */
    double *err;            /* n: the step's error estimate                */
    double *f0, *y1, *f1;   /* n each: the first step heuristic            */
    double *block;          /* the one allocation behind all the above    */
};

/* n_max state values, w_max >= n_max noise values a block (more with
 * general noise: batch_max x noise_dim), aux blocks of n_max. */
int nde_solve_buffers_create(size_t n_max, size_t w_max, int aux,
                             nde_solve_buffers **out);
void nde_solve_buffers_destroy(nde_solve_buffers *b);

/* Times in [t0, t1] (closed, in_range) and ordered in the direction of
 * integration; NDE_EINVAL naming `what` (core/solve.c). */
int nde_check_times(nde_ctx *ctx, const char *what, const double *ts,
                    size_t n, double t0, double t1, int in_range);

/* Grid point k of a fixed-step grid (core/grid.c). */
static inline double nde_step_grid_time(const nde_step_grid *g, size_t k)
{
    return k >= g->cells ? g->t1 : g->t0 + g->dir * ((double)k * g->dt);
}

/* Recording a solve into an nde_trajectory (core/trajectory.c). begin
 * resets the count, sizes the buffers for n values a state, `stages`
 * stages a step and naux aux blocks a state, and copies the save times;
 * push appends one accepted step (aux: the aux state at its start, read
 * when naux > 0; k: its stages, read only with NDE_NEEDS_DENSE, copied on
 * pool's threads when pool is not NULL and a state is long); end stores
 * t1 and the final state. NDE_ENOMEM when a buffer cannot grow. */
int nde_trajectory_begin(nde_trajectory *tr, size_t n, int stages, int naux,
                         double t0, const double *tsave, size_t nsave);
int nde_trajectory_push(nde_trajectory *tr, nde_pool *pool, double t,
                        double h, const double *y, const double *aux,
                        const double *const *k, double eest, double stiff);
void nde_trajectory_end(nde_trajectory *tr, double t1, const double *y,
                        const double *aux);

#endif
