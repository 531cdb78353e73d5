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

/* Workspace for n_max = batch_max * dim values (core/rk.c). */
int nde_rk_work_create(int stages, size_t n_max, nde_rk_work **out);
void nde_rk_work_destroy(nde_rk_work *w);

/* k[0] = f(t, y) now, kept as the first stage of the next step (FSAL or
 * not); *f0 points to it until the next step. */
int nde_rk_eval_first(nde_solver *s, const double *theta, double t,
                      const double *y, const double **f0);

/* nde_error_norm, but NaN when y_next holds a non-finite value: the loop's
 * one check for a non-finite state. */
double nde_rk_error_norm_checked(const double *err, const double *y,
                                 const double *y_next, size_t n, double rtol,
                                 double atol);

/* PI controller (core/controller.c), methods.md 2.2. */
void nde_controller_reset(nde_controller *c);
/* Next step size after an accepted step of size h with error eest <= 1. */
double nde_controller_accept(nde_controller *c, double eest, double h);
/* Retry size after a rejected step of size h with error eest > 1. */
double nde_controller_reject(const nde_controller *c, double eest, double h);

#endif
