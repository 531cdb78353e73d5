/* The trainer's layout, shared by train/train.c and train/checkpoint.c. */
#ifndef NDE_TRAIN_INTERNAL_H
#define NDE_TRAIN_INTERNAL_H

#include <gsl/gsl_rng.h>

#include "nde/nde.h"
#include "nde/data.h"
#include "nde/train.h"

/* One regularizer of the run. */
typedef struct nde_train_reg {
    char *name;                /* NAME of [regularizer.NAME]              */
    nde_regularizer *r;
    nde_weight_schedule w;
    size_t first, nextra;      /* its extra save times in extra_t         */
    double value;              /* R of the last training solve            */
    const nde_cotangent *ct;   /* its cotangents of the last solve        */
    size_t nct;
} nde_train_reg;

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
    uint64_t data_digest;      /* of the data loaded or generated        */
    int data_changed;          /* the last checkpoint loaded has another */
    char **notes;              /* its plugins' differences from ours    */
    size_t nnotes;

    /* generated data (spiral, field): observations at npoints times,
     * windows of bt points */
    size_t npoints, bt, nchoices;
    double *tgrid;             /* npoints                                 */
    double *truth, *obs;       /* npoints x dim (obs = truth + noise)    */
    double *y0true;            /* dim                                     */
    size_t *choices;           /* 0..nchoices-1, for gsl_ran_choose      */

    /* SDE fields (source = field): the data's moments at the npoints
     * observation times, the training and evaluation Brownian path */
    int sde;                   /* loss = moments                          */
    size_t eval_paths;
    double *data_mean, *data_var;   /* npoints x dim                      */
    double *model_mean, *model_var; /* npoints x dim, the last evaluation */
    double *eval_y;            /* npoints x eval_paths x dim              */
    double *eval_y0;           /* eval_paths x dim: y0 in every row      */
    nde_brownian *bm;          /* rows up to the solver's batch_max       */

    /* CSV data: whole series, time shifted to start at 0 */
    nde_dataset *ds_train, *ds_test;

    /* the held-out set: ntest series, each predicted from its first
     * point (generated data: one series, the noise-free truth) */
    size_t ntest;
    const char **test_id;
    size_t *test_n;
    const double **test_t, **test_obs;
    double **test_pred;        /* into pred_buf                           */
    double *test_tshift;       /* shifted times of the longest series     */
    double *pred_buf;
    size_t test_nmax;

    /* classification (source = idx): theta = [field (Pf) | encoder W
     * (D x F), b (D) | decoder W (C x D), b (C)] */
    int classify;
    size_t F, C, Pf;
    nde_dataset *idx_train, *idx_test;
    size_t *perm;              /* this epoch's order of the examples     */
    long perm_epoch;           /* the epoch perm is for (-1: none)       */
    gsl_rng *perm_rng;
    double *xb;                /* B x F                                   */
    double *prob;              /* B x C: logits, then probabilities       */
    int *yb;                   /* B labels                                */
    double *test_prob;         /* ntest x C                               */

    /* the current mini-batch (B rows); k-major as nde_solve saves */
    size_t B, T, Tcap;         /* rows, save times, their capacity        */
    double *tsave;             /* T save times                            */
    size_t *starts;            /* B window starts / series indices        */
    double *y0b, *ybar0;       /* B x dim                                 */
    double *target, *ysave, *gbuf; /* Tcap x B x dim                      */
    nde_cotangent *ct;         /* Tcap                                    */

    /* regularizers (training solves only) */
    nde_train_reg *regs;
    size_t nregs;
    double *reg_grad;          /* P: their direct gradient                */
    double *tk;                /* Tcap: the data's save times as solved   */
    double *solve_t;           /* Tcap + extras: the solve's save times   */
    size_t *slot;              /* solve_t[j] -> data time k, or T + extra */
    size_t nsolve;
    double *ysolve;            /* (Tcap + extras) x B x dim               */
    double *extra_t, *extra_y; /* extras, extras x B x dim                */
    size_t nextra, extra_cap;  /* extra_cap = MAX_EXTRA x nregs           */
    nde_cotangent *ct_all;     /* the loss's and the regularizers'        */
    size_t ct_cap;
    double reg_total;          /* weighted sum of the last training solve */
};

#endif
