/* The trainer's layout, shared by core/train.c and core/checkpoint.c. */
#ifndef NDE_TRAIN_INTERNAL_H
#define NDE_TRAIN_INTERNAL_H

#include <gsl/gsl_rng.h>

#include "nde/nde.h"
#include "nde/train.h"

struct nde_trainer {
    nde_ctx *ctx;
    const nde_config *cfg;
    nde_train_settings set;
    nde_field *field;
    nde_solver *solver;
    nde_adjoint *adj;
    nde_trajectory *traj;      /* recorded for adj                       */
    nde_trajectory *alt_traj;  /* for another adjoint (gradcheck)        */
    nde_solve_opts opts;
    size_t dim, P;

    /* optimizer */
    double *theta, *grad, *m, *v;
    long adam_t;               /* Adam steps taken                       */
    long iter;                 /* iterations done                        */
    gsl_rng *rng;              /* mini-batch sampling stream             */
    nde_train_totals tot;

    /* data: observations at npoints times, windows of bt points */
    size_t npoints, bt, nchoices;
    double *tgrid;             /* npoints                                 */
    double *truth, *obs;       /* npoints x dim (obs = truth + noise)    */
    double *y0true;            /* dim                                     */
    double *pred_test;         /* npoints x dim, the last evaluation     */
    size_t *choices;           /* 0..nchoices-1, for gsl_ran_choose      */

    /* the current mini-batch (B rows); k-major as nde_solve saves */
    size_t B;
    size_t *starts;            /* B window starts                         */
    double *y0b, *ybar0;       /* B x dim                                 */
    double *target, *ysave, *gbuf; /* bt x B x dim                        */
    nde_cotangent *ct;         /* bt                                      */
};

#endif
