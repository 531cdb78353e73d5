/* The trainer's layout, shared by train/train.c and train/checkpoint.c. */
#ifndef NDE_TRAIN_INTERNAL_H
#define NDE_TRAIN_INTERNAL_H

#include <gsl/gsl_rng.h>

#include "nde/nde.h"
#include "nde/train.h"

/* One regularizer of the run. */
typedef struct nde_train_reg {
    char *name;                /* NAME of [regularizer.NAME]              */
    nde_regularizer *r;
    nde_weight_schedule w;
    size_t first, nextra;      /* its extra save times in extra_t         */
    double value;              /* R of the last training solve            */
    double weight;             /* its weight in that solve                */
    double grad_norm;          /* |weight dR/dtheta| then, before clip    */
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
    size_t bmax;               /* rows the field and solver take          */
    size_t dim, P;

    /* optimizer */
    double *theta, *grad, *m, *v;
    double *opt_next;          /* 3P: theta, m, v after the step, checked */
    double *good;              /* on_failure = backoff: 3P, theta, m, v
                                  before the last good step, which a
                                  failure restores (NULL otherwise)      */
    long good_t;               /* opt_steps there; -1: none yet          */
    double *avg;               /* average_from: P, the running mean of the
                                  parameters after each averaged step
                                  (NULL: no averaging)                   */
    long navg;                 /* steps in avg; 0: the model is theta    */
    /* [train] adversary: its parameters' flags (P; NULL: no adversary),
     * and the bound each step clamps a parameter to (P; 0: none) */
    unsigned char *adv;
    double *clamp;
    long opt_steps;            /* optimizer steps taken                  */
    long iter;                 /* iterations done                        */
    gsl_rng *rng;              /* mini-batch sampling stream             */
    nde_train_totals tot;
    uint64_t run_id;           /* nde_trainer_run_id                      */
    uint64_t data_digest;      /* of the data loaded or generated        */
    int data_changed;          /* the last checkpoint loaded has another */
    char **notes;              /* its plugins' differences from ours    */
    size_t nnotes;

    /* the task: data, its parameters theta[Pf..P), loss, evaluation */
    nde_task *task;
    size_t Pf;                 /* the field's parameters, first in theta  */
    int sde;                   /* an SDE field: solves take Brownian paths */
    nde_brownian *bm;          /* rows up to the solver's batch_max       */
    long eval_nfe;             /* NFE of the evaluation's predictions     */
    const double *shift, *scale; /* the task's units (NULL: the data's)   */
    int log_units;             /* of the values' logs (task units_log)    */
    double *y0u;               /* bmax x dim: a prediction's y0 in them   */
    /* nde_trainer_intervene: predictions by do_solver on do_field (field
     * with the held states' derivatives 0) from y0 with the held states
     * set to do_value (model units) in y0do (bmax x dim); NULL: none */
    nde_field *do_field;
    nde_solver *do_solver;
    double *do_value, *y0do;

    /* the current batch (B rows); k-major as nde_solve saves */
    nde_task_batch batch;
    size_t B, Tcap;            /* rows, most save times of a batch        */
    double *y0b, *ybar0;       /* B x dim: initial states, their cotangent */
    double *ysave;             /* Tcap x B x dim                          */
    double *obs, *obsbar;      /* Tcap x B x obs_dim (obs = ysave without
                                  a readout)                              */
    double *ybar;              /* Tcap x B x dim (= obsbar without one)   */
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
    double data_loss;          /* the task's loss of that solve, no reg   */
    double data_grad_norm;     /* the norm of its gradient                */

    /* per-row steps (opts.per_row): each row's solve is recorded alone */
    nde_trajectory **row_traj; /* B records, NULL until the first         */
    double *row_y;             /* (2 Tcap + extra_cap) x dim: one row's
                                  saves, cotangents and extra states      */
    double *row_grad;          /* Pf: one row's field gradient            */
    size_t row_extra_cap;      /* extra_cap when row_y was sized          */

    /* [train] shards (nshards > 1), dealt to the ranks (shards_deal) into
     * slots in rank order; this rank computes slots [s0, s1) */
    size_t nshards;
    nde_comm *comm;            /* NULL: this process computes them all    */
    size_t s0, s1;
    size_t *slot_shard;        /* 3 S + 1: the shard in each slot, each
                                  shard's slot, the rows before each slot
                                  (slot_row, S + 1)                       */
    size_t *shard_slot, *slot_row;
    nde_trajectory **shard_traj; /* S records                             */
    double *shard_buf;         /* a stage's records (shard_record)         */
    double *shard_ct;          /* one shard's cotangents, T x rows x dim  */
    size_t *shard_cnt;         /* 3 K + 1: an exchange's counts and
                                  displs, each rank's first slot (K + 1)  */
};

#endif
