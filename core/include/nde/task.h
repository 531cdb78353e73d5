/*
 * nde/task.h - the task interface: what is fitted and how it is scored.
 *
 * The trainer (libnde-train) runs one loop for every task: draw a batch,
 * lift it to the initial states, solve, read the saved states out, take
 * the loss and its cotangents, add the regularizers, run the adjoint, and
 * update theta. A task supplies everything in that loop that is not the
 * differential equation: its data (read or generated in create from its
 * [data] section), its own parameters around the equation (encoder, lift,
 * observation map, decoder), the batches, the loss, and the evaluation on
 * held-out data. Tasks may link libnde-train for its data readers.
 *
 * theta (the trainer's, length P) is [field's nparams | task's nparams]:
 * every op below gets the task's part only, and a task's VJPs accumulate
 * (+=) into the task's part of the gradient, which the trainer zeroes.
 *
 * Arrays are row-major and batch-major. A batch has `rows` rows; the
 * solve saves nsave states of rows x dim each (k-major: save k is
 * y + k * rows * dim), dim being the field's (the ODE state's) dim.
 *
 * Required ops: create, destroy, batch, loss, evaluate. Optional (NULL):
 * init_params and param_name (required when create sets nparams > 0);
 * lift and lift_vjp (NULL: the batch's input rows are the initial states,
 * input_dim = dim); readout and readout_vjp (NULL: the observations are
 * the saved states, obs_dim = dim); digest, test_series, test_classes,
 * state_names, test_observed, units, test_held_from, param_state,
 * units_log.
 * lift and lift_vjp come as a pair, so do readout and readout_vjp.
 *
 * Lifecycle: the trainer allocates the instance, fills type, ctx, dim,
 * rows and calls create, which reads its section (the trainer has checked
 * its keys), loads or generates the data, sets the sizes below and
 * allocates every buffer the ops need: batch, lift, readout and loss
 * never allocate. destroy must accept an instance whose create failed
 * half-way. Errors: NDE_* codes with a message set through t->ctx
 * (nde_error / nde_section_error naming the section and key); a data file
 * that cannot be read is NDE_ECONFIG naming the key.
 */
#ifndef NDE_TASK_H
#define NDE_TASK_H

#include <stdint.h>
#include "api.h"
#include "config.h"
#include "field.h"
#include "plugin.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_task nde_task;

/* What create gets besides its section. */
typedef struct nde_task_env {
    const nde_config *cfg;  /* the run's config: other sections a task may
                               read (a true system [field.NAME], [solver]) */
    const nde_field *field; /* the model (dim, noise); not to be evaluated:
                               it may be re-created after create           */
    uint64_t seed;          /* [train] seed; a task draws its data streams
                               from nde_seed_derive(seed, NDE_STREAM_*)
                               (nde/train.h)                               */
} nde_task_env;

/* Where a batch's random draws come from. */
typedef struct nde_task_draw {
    long iteration;         /* the iteration the batch is for (0-based)    */
    uint64_t seed;          /* nde_seed_derive([train] seed,
                               NDE_STREAM_BATCHES), for draws that depend on
                               the iteration alone                         */
    void *rng;              /* the trainer's sampling stream, a gsl_rng *
                               (mt19937) whose state checkpoints keep      */
} nde_task_draw;

/*
 * One batch, filled by batch(): its arrays belong to the task and stay
 * valid until its next batch() call. The solve starts at t0 and saves at
 * tsave[0..nsave) (sorted in the direction of the solve; the last one is
 * its end, different from t0). Saves before first_ct are not fitted (the
 * initial state itself): the loss gives them no cotangent.
 */
typedef struct nde_task_batch {
    double t0;
    size_t nsave;           /* at most t->max_saves                        */
    const double *tsave;
    size_t first_ct;
    const double *input;    /* rows x input_dim: the lift's input, or the
                               initial states when the task has no lift    */
} nde_task_batch;

/* What evaluate reports (the trainer adds prediction NFE and time). */
typedef struct nde_task_metrics {
    double test_loss;
    double test_accuracy;   /* classification; left NAN by other tasks     */
} nde_task_metrics;

/* The trained model, as evaluate solves it: predict solves from t0, y0
 * (rows x dim, rows <= t->max_rows) to t1 with the current theta, saving
 * at tsave[0..nsave) into ysave (nsave x rows x dim), as nde_solve does;
 * an SDE model is sampled through the evaluation's fixed Brownian path.
 * NFE are counted by the trainer. Any non-OK status is returned as is. */
typedef struct nde_task_model {
    int (*predict)(const struct nde_task_model *m, double t0,
                   const double *y0, size_t rows, double t1, size_t nsave,
                   const double *tsave, double *ysave);
    void *self;             /* the trainer's                               */
} nde_task_model;

/* The interface version of nde_task_type (plugin.h): members are only
 * ever appended.
 *   1: create, destroy, init_params, param_name, batch, lift, lift_vjp,
 *      readout, readout_vjp, loss, evaluate, digest, test_series,
 *      test_classes
 *   2: state_names, test_observed
 *   3: units
 *   4: test_held_from, param_state, units_log
 *   5: input */
#define NDE_TASK_VERSION 5

/* The descriptor's info: NDE_TASK_INFO(.name = ..., .description = ...,
 * .keys, .version). */
#define NDE_TASK_INFO(...)                                                   \
    NDE_PLUGIN_INFO_(NDE_KIND_TASK, NDE_TASK_VERSION, nde_task_type,          \
                     __VA_ARGS__)

typedef struct nde_task_type {
    nde_plugin_info info; /* kind NDE_KIND_TASK; first */

    int (*create)(nde_task *t, nde_section *sec, const nde_task_env *env,
                  nde_ctx *ctx);
    void (*destroy)(nde_task *t);

    /* Initial values of the task's parameters theta[0..nparams) from
     * `seed` (the same seed, the same values). */
    int (*init_params)(nde_task *t, double *theta, uint64_t seed);
    /* The name of parameter i, e.g. "enc.W[0,3]" (a [a-z0-9_.]+ stem and
     * an optional index, as field parameters are named). */
    void (*param_name)(const nde_task *t, size_t i, char *buf, size_t size);

    /* Draw the batch of the draw's iteration into *b. */
    int (*batch)(nde_task *t, const nde_task_draw *draw, nde_task_batch *b);

    /* y0 (rows x dim) from the batch's input; lift_vjp: thetabar += the
     * task parameters' part of ybar0^T dy0/dtheta. */
    int (*lift)(nde_task *t, const double *theta, const nde_task_batch *b,
                double *y0);
    int (*lift_vjp)(nde_task *t, const double *theta,
                    const nde_task_batch *b, const double *ybar0,
                    double *thetabar);

    /* Observations (nsave x rows x obs_dim) from the saved states y;
     * readout_vjp: ybar += obsbar^T dobs/dy (nsave x rows x dim) and
     * thetabar += obsbar^T dobs/dtheta. */
    int (*readout)(nde_task *t, const double *theta, const nde_task_batch *b,
                   const double *y, double *obs);
    int (*readout_vjp)(nde_task *t, const double *theta,
                       const nde_task_batch *b, const double *y,
                       const double *obsbar, double *ybar, double *thetabar);

    /* The batch's loss in *value (NAN when nothing is observed) and its
     * gradient dL/dobs in obsbar (nsave x rows x obs_dim, overwritten). */
    int (*loss)(nde_task *t, const nde_task_batch *b, const double *obs,
                double *value, double *obsbar);

    /* Score the model on the held-out data. */
    int (*evaluate)(nde_task *t, const double *theta, const nde_task_model *m,
                    nde_task_metrics *r);

    /* A 64-bit hash of the data as loaded or generated, which checkpoints
     * keep to notice changed data. */
    uint64_t (*digest)(const nde_task *t);
    /* Held-out series i (< ntest): its id, times (as observed) and the last
     * evaluation's prediction (n x dim); returns n. */
    size_t (*test_series)(const nde_task *t, size_t i, const char **id,
                          const double **time, const double **pred);
    /* Classification: the ntest labels and the last evaluation's class
     * probabilities (ntest x C); returns C. */
    size_t (*test_classes)(const nde_task *t, const int **label,
                           const double **prob);

    /* Version 2. The dim states' names as the data call them (a CSV's
     * columns), owned by the task; NULL when the data name none. Outputs
     * use them before the field's own names. */
    const char *const *(*state_names)(const nde_task *t);
    /* Held-out series i's observations as evaluate compares them (n x
     * dim at test_series' times, NaN where missing); returns n, 0 when
     * the task has none to show. */
    size_t (*test_observed)(const nde_task *t, size_t i, const double **obs);

    /* Version 3. When the model works in scaled units of the data: the
     * model's state j is (value - shift[j]) / scale[j] of the data's value
     * (dim each, owned by the task, scale > 0); NULL, NULL when the states
     * are the data's own. batch, loss and evaluate work in the model's
     * units (evaluate reports in the data's); the trainer's public
     * predictions (nde_trainer_predict, _sample) take and give the data's
     * units, and a checkpoint of such a task is refused for other data. */
    void (*units)(const nde_task *t, const double **shift,
                  const double **scale);

    /* Version 4. Where held-out series i's held-out part begins: the index
     * of its first observation the evaluation scores but training never
     * saw (0: a series held out whole; n: a training series, scored
     * because nothing is held out). NULL: every series is held out
     * whole. */
    size_t (*test_held_from)(const nde_task *t, size_t i);
    /* The state j whose value task parameter i is, in the model's units
     * (a learned initial state), or -1 when it is none. NULL: none is. */
    int (*param_state)(const nde_task *t, size_t i);
    /* With units: 1 when the model's state j is (log(value) - shift[j]) /
     * scale[j] instead (positive data; predictions stay positive), else
     * 0. NULL: 0. */
    int (*units_log)(const nde_task *t);

    /* Version 5. The time-dependent input (nde/input.h) the model's field
     * reads, owned by the task, or NULL. The trainer gives it to the field
     * (nde_field_set_input) once the field exists; the task fills its rows
     * for the rows being solved: in batch (row r is the batch's row r)
     * and in evaluate before each predict (row r is the r-th row of y0).
     * A field that reads an input with a task that gives none, or the
     * reverse, is refused when the run is composed. NULL: no input. */
    nde_input *(*input)(nde_task *t);
} nde_task_type;

struct nde_task {
    const nde_task_type *type;
    nde_ctx *ctx;
    size_t dim;         /* the field's dim (set by the trainer)            */
    size_t rows;        /* rows of a training batch (set by the trainer)   */
    /* set by create: */
    size_t nparams;     /* the task's own parameters                       */
    size_t input_dim;   /* a batch's input per row (dim without a lift)    */
    size_t obs_dim;     /* observations per row (dim without a readout)    */
    size_t max_saves;   /* most save times of a batch                      */
    size_t max_rows;    /* most rows evaluate predicts at once (>= rows)   */
    size_t ntest;       /* held-out series or examples                     */
    void *state;
    /* The field's threads (nde_field.pool), borrowed, set by the trainer
     * before create (NULL: one thread): a task may share its own kernels
     * between them, never while the field runs. */
    nde_pool *pool;
};

#ifdef __cplusplus
}
#endif
#endif
