/*
 * nde/train.h - the trainer: data task, loss, optimizer, checkpoints.
 *
 * A trainer is composed from a config: [field], [solver], [adjoint]
 * (default `interpolating`), [data] and [train]. One call of
 * nde_trainer_step() is one iteration: draw a mini-batch, solve forward
 * over the whole batch at once (recording what the adjoint declared),
 * compute the loss and its cotangents (t_k, dL/dy(t_k)), run the adjoint,
 * clip the gradient's norm and take an optimizer step (Adam or Adadelta).
 *
 * What is fitted is a task plugin (nde/task.h, plugins/tasks/) picked by
 * [data] source: spiral and field (ODE field) -> windows, field with an
 * SDE field -> moments, csv -> series, idx -> classify, annuli -> points
 * (plugins/tasks/points.c); any other source names a task plugin. [data]
 * is checked against the task's keys, whose defaults apply
 * (nde_data_section_check: a key of another built-in task is refused,
 * never silently ignored). theta is [field's | task's parameters].
 * Checkpoints record the task with the other plugins.
 *
 * Loss (trajectory fitting): the mean squared error over every observed
 * value of the batch (rows x times x components); a NaN target is missing
 * and skipped (neither in the sum nor in the count).
 *
 * Random numbers: one [train] seed; each use draws from its own stream
 * derived with nde_seed_derive(seed, NDE_STREAM_*): the same seed and
 * config give the same numbers bit for bit. The [field] section's own
 * `seed` key (mlp) is not used by the trainer.
 *
 * [data] source = spiral: torchdiffeq's ode_demo (Chen et al. 2018):
 * y' = (y^3) A, A = [[-0.1, 2], [-2, -0.1]], y0 = (2, 0), npoints points
 * on [0, t1], the truth solved by [data] truth_solver (default tsit5) at
 * rtol 1e-10 / atol 1e-12 plus
 * optional Gaussian noise of standard deviation `noise`. A mini-batch is
 * batch_size windows of batch_time consecutive points starting at distinct
 * random indices in [0, npoints - batch_time]; every window is solved on
 * the times t[0..batch_time-1] (window-relative, as torchdiffeq does: the
 * field should be autonomous) from its first observation.
 * source = field: the same with the config's own [field] (or the field
 * section [data] system names, e.g. [field.truth]; same dim) as the true
 * system, its parameters set by [data] true_params (name=value, names as
 * nde_field_param_name gives them) and the initial state [data] y0.
 * The test set is the whole noise-free trajectory predicted from the true
 * y0: test_loss is the MSE over it.
 * source = field with an SDE field (f->noise set; e.g. expr with g<name>
 * keys): the data are `paths` sample paths of the true system from y0,
 * simulated with the configured [solver] type on the step [data] dt
 * (default: the [solver] dt / 10) through one Brownian path of seed
 * nde_seed_derive([data] seed, 0), recorded at the npoints observation
 * times; only their mean M_k and unbiased variance V_k per time and state
 * are kept. Loss (`[train] loss = moments`, the default and the only loss
 * for SDE fields): the batch_size rows all start from y0 and are solved on
 * the whole interval (batch_time is not used) through one Brownian path
 * per iteration, of seed nde_seed_derive(nde_seed_derive(seed,
 * NDE_STREAM_BROWNIAN), i) in iteration i (so a resumed run draws the same
 * paths); with m_k, v_k the batch's mean and unbiased variance,
 *     L = 1/(npoints dim) sum_k sum_d (m_kd - M_kd)^2 + (v_kd - V_kd)^2
 * (nde_moments_loss). Evaluation: the same loss over eval_paths model paths
 * of the fixed seed nde_seed_derive(nde_seed_derive(seed,
 * NDE_STREAM_BROWNIAN), UINT64_MAX), so evaluations are comparable; the
 * held-out "series" are the model's mean and variance (ids mean, var).
 * An SDE solve needs [solver] dt > 0. STEER's moved t1 moves the Brownian
 * path's interval with it. `loss = moments` with an ODE field, and `mse`
 * with an SDE field, are refused; so are the other sources with an SDE
 * field.
 * source = csv: time series read by nde_data_read_csv from `path` and
 * split by nde_data_split (test_fraction, a seed derived from the train
 * seed). A mini-batch is batch_size whole training series; each series'
 * first observation is its initial state (every component required) and
 * its times are shifted to start at 0 (the field should be autonomous);
 * the batch is solved once on the union of the shifted times, a series
 * contributing only at its own times (NaN cells skipped). The test loss
 * is the MSE over the observed values of every test series (the training
 * series when test_fraction = 0), each predicted from its first point.
 *
 * [data] source = idx: image classification from MNIST-format IDX files
 * (nde_data_read_idx): `images`, `labels` (training) and `test_images`,
 * `test_labels` (defaults: Debian's dataset-fashion-mnist files), `limit`
 * and `test_limit` examples read (0 = all). The model: a linear encoder
 * (F features -> D), the neural ODE block on t in [0, 1] (the configured
 * field, solver and adjoint; only y(1) is used), a linear decoder
 * (D -> C classes) and a softmax. D is the field's dim (for mlp: the first
 * and last entry of [field] layers); C is 1 + the largest label of either
 * set. Loss: softmax cross-entropy (log-sum-exp), the mean over the batch.
 * theta (nde_trainer_params) is [field's nparams | encoder W (D x F, row
 * d = the weights into state d) | encoder b (D) | decoder W (C x D) |
 * decoder b (C)]; the encoder and decoder weights are Glorot-uniform
 * (limit sqrt(6 / (fan_in + fan_out))), biases 0, drawn from a gsl
 * mt19937 seeded with nde_seed_derive(nde_seed_derive(seed,
 * NDE_STREAM_INIT), 1). Mini-batches: the training examples are visited
 * in a new random order each epoch (the permutation of epoch e is drawn
 * from nde_seed_derive(nde_seed_derive(seed, NDE_STREAM_BATCHES), e)),
 * batch_size consecutive examples of that stream per iteration (a batch
 * may straddle two epochs). The test set is predicted in chunks of
 * batch_size rows: test_loss is the mean cross-entropy, test_accuracy the
 * fraction of examples whose largest probability is their label.
 *
 * Regularizers (nde/regularizer.h): every [regularizer.NAME] section
 * (NAME matching [a-z0-9_]+; overrides say regularizer.NAME.key) is
 * created with nde_regularizer_create in the config's section order, with
 * its weight schedule; a solver lacking a capability one needs is refused
 * at composition (NDE_ECAPABILITY naming the regularizer and the solver).
 * A regularizer of weight 0 still runs (STEER still moves t1, the value is
 * still reported, its gradient is zero): remove the section to turn it
 * off. Regularizers act in training only (nde_trainer_step and
 * nde_trainer_loss_grad), never in evaluation or prediction. The forward
 * solve records the union of the adjoint's record flags and every
 * regularizer's (NDE_NEEDS_STEPS, _DENSE, _ERROR_EST, _STIFFNESS), also
 * when no gradient is asked; the adjoint's max_states applies unless a
 * regularizer needs the states of every step (NDE_NEEDS_STEPS or
 * NDE_NEEDS_DENSE). In iteration i (0-based; for nde_trainer_loss_grad the
 * next iteration), regularizer j (in order) draws from the seed
 * nde_seed_derive(nde_seed_derive(nde_seed_derive(seed,
 * NDE_STREAM_REGULARIZER), i), j): the draws depend on the iteration only,
 * so a resumed run repeats them. before_solve is called for each in order
 * with the batch's t0, t1 (t1 as moved by the ones before it); when t1
 * moves, every save time of the solve - the data's and the extra ones
 * asked before - is stretched to t0 + (t - t0) (t1' - t0) / (t1 - t0), and
 * the observation of original time t_k is compared with the state at the
 * stretched t_k (classification: y(1) becomes y(t1')). A moved t1 must
 * stay finite and on the same side of t0; extra save times must lie in the
 * interval. Extra save times are merged into the solve's sorted save
 * times; each regularizer gets the states at its own times, in the order
 * it asked, as extra_y. After the forward solve and the data loss,
 * after_solve is called for each in order with weight = nde_weight_at(
 * schedule, i, [train] iterations) (an exponential schedule spans the
 * run's iteration count: resuming with another count changes the
 * remaining weights); loss += weight * R, its direct gradient is added to
 * the gradient, and its cotangents (in [t0, t1']) are merged with the
 * loss's by time (entries at equal times add, as the adjoint convention
 * says). Its nfe counts in the iteration's nfe_forward, its nvjp in
 * nfe_backward. nde_train_step.loss is the data loss (data_loss) plus
 * reg (the weighted sum); nde_trainer_regularizer() gives each one's name
 * and last unweighted value, nde_trainer_regularizer_weight() its weight
 * then.
 */
#ifndef NDE_TRAIN_H
#define NDE_TRAIN_H

#include <stdint.h>
#include <stdio.h>
#include <nde/nde.h>
#include <nde/comm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Indices for nde_seed_derive(train seed, i): one stream per use. */
enum nde_stream {
    NDE_STREAM_BATCHES = 0, /* mini-batch sampling            */
    NDE_STREAM_INIT = 1,    /* parameter initialisation       */
    NDE_STREAM_NOISE = 2,   /* observation noise of the data  */
    NDE_STREAM_SPLIT = 3,   /* train/test split of a data set */
    NDE_STREAM_PROBE = 4,   /* gradcheck's parameter subset   */
    NDE_STREAM_REGULARIZER = 5, /* regularizers' draws (STEER's t1, ...) */
    NDE_STREAM_BROWNIAN = 6 /* SDE training: the Brownian paths     */
};

/* The keys of [train] and [data]. */
NDE_API extern const nde_key nde_train_keys[];
NDE_API extern const nde_key nde_data_keys[];

/* Check [data] for the task `type`: against its keys (or nde_data_keys,
 * the built-in tasks' keys, for a task plugin that declares none), and
 * refuse, naming the key and the tasks that read it, a key of another
 * built-in task that this one does not read (batch_time under source =
 * csv). NDE_ECONFIG with the message in ctx. */
NDE_API int nde_data_section_check(nde_section *dsec,
                                   const nde_task_type *type, nde_ctx *ctx);

typedef struct nde_train_settings {
    long iterations;        /* total iterations of the run                */
    long batch_size;
    long eval_every;        /* 0 = evaluate at the end only               */
    long checkpoint_every;  /* 0 = checkpoint at the end only             */
    double lr, lr_decay, beta1, beta2, eps, weight_decay;
    double clip;            /* gradient-norm clip; 0 = off                */
    uint64_t seed;
    const char *checkpoint; /* path or NULL (lives as long as the config) */
    const char *metrics;    /* path or NULL                               */
    int refuse_changed_data; /* data_changed = refuse                     */
    int on_failure;         /* enum nde_on_failure                        */
    long max_failures;      /* failed iterations a policy absorbs          */
    /* Appended: the adversary (a GAN's discriminator), [train] adversary */
    double adversary_lr;    /* its learning rate (the [train] lr if unset) */
    double adversary_clip;  /* > 0: its weights clamped to +-this; 0: none;
                               -1: layer (+-1/the layer's outputs)         */
    /* Appended: [train] average_from (0: off) */
    long average_from;      /* iterations from this one on are averaged   */
    /* Appended: [train] optimizer, and Adadelta's decay */
    int optimizer;          /* enum nde_optimizer                          */
    double rho;
} nde_train_settings;

/* [train] optimizer. Both keep two running means a parameter (Adam's m
 * and v; Adadelta's squared steps in m, squared gradients in v), so a
 * checkpoint holds either. */
enum nde_optimizer {
    NDE_OPTIMIZER_ADAM = 0,     /* Kingma & Ba 2015                        */
    NDE_OPTIMIZER_ADADELTA      /* Zeiler 2012, as torch.optim.Adadelta    */
};

/* [train] on_failure: what a failed iteration (a solve that fails: step
 * size underflow, maximum steps, a non-finite state, loss, gradient or
 * optimizer update) does. Itself it changes neither the parameters nor
 * the optimizer's state. backoff's state before the last good step is
 * not in checkpoints: a resumed run's first failure only halves the
 * rate. */
enum nde_on_failure {
    NDE_ON_FAILURE_STOP = 0,   /* the run stops (nde_trainer_step fails)  */
    NDE_ON_FAILURE_SKIP,       /* its batch is dropped, the run goes on   */
    NDE_ON_FAILURE_BACKOFF     /* the same, and the parameters and the
                                  optimizer's state go back to before
                                  the last good step, and the learning
                                  rate halves                            */
};

/* One iteration's numbers. */
typedef struct nde_train_step {
    long iteration;         /* iterations done, this one included (1-based) */
    double loss;            /* before the update                          */
    double grad_norm;       /* before clipping                            */
    double reg;             /* the weighted regularization in loss        */
    double data_loss;       /* loss - reg: the task's loss alone          */
    long nfe_forward, nfe_backward, steps_accepted, steps_rejected;
    double time_s;          /* wall time of the iteration                 */
    double data_grad_norm;  /* the gradient through the adjoint: the data
                               loss's, plus the cotangents regularizers
                               hand it (global; local with through_state);
                               what a clip compares with (NAN without
                               regularizers)                              */
    int failed;             /* the status of a failed iteration that the
                               on_failure policy absorbed (its batch was
                               dropped), else NDE_OK                     */
} nde_train_step;

/* Evaluation on the held-out set. */
typedef struct nde_eval_result {
    double test_loss;
    double test_accuracy;   /* classification; NAN for time series       */
    long nfe;               /* prediction field evaluations               */
    double time_s;          /* prediction wall time                       */
} nde_eval_result;

/* Running totals since the first iteration (kept in checkpoints). */
typedef struct nde_train_totals {
    long nfe_forward, nfe_backward;
    double time_s;          /* wall time inside nde_trainer_step          */
    long failures;          /* failed iterations absorbed by on_failure   */
    double lr_scale;        /* the learning rate's factor: 1, halved by
                               each backoff                              */
} nde_train_totals;

typedef struct nde_trainer nde_trainer;

/*
 * Compose a trainer from cfg (borrowed; must outlive the trainer).
 * min_batch: rows nde_trainer_predict must accept beyond the training
 * batch (0 if none). Parameters are initialised from the seed (or the
 * values the config gives). Errors: NDE_ECONFIG naming file, line,
 * section and key; NDE_EPLUGIN; NDE_ECAPABILITY; a failed data generation.
 */
NDE_API int nde_trainer_create(nde_ctx *ctx, const nde_config *cfg,
                               size_t min_batch, nde_trainer **out);
NDE_API void nde_trainer_destroy(nde_trainer *tr);

NDE_API const nde_train_settings *nde_trainer_settings(const nde_trainer *tr);
NDE_API nde_field *nde_trainer_field(const nde_trainer *tr);
/* theta[nparams], updated in place by each step. With [train]
 * average_from, once averaging has begun, evaluations and predictions use
 * the running mean instead, which a checkpoint loaded in PARAMS mode puts
 * here. */
NDE_API double *nde_trainer_params(const nde_trainer *tr);
NDE_API size_t nde_trainer_nparams(const nde_trainer *tr);
NDE_API long nde_trainer_iteration(const nde_trainer *tr);
NDE_API const nde_train_totals *nde_trainer_totals(const nde_trainer *tr);

/* The run's id: random when the trainer is made, the checkpoint's once
 * one is resumed (so a resumed run keeps its id); never 0. */
NDE_API uint64_t nde_trainer_run_id(const nde_trainer *tr);

/*
 * One iteration. On a failed solve, a non-finite loss or gradient, or an
 * optimizer update that would make a parameter or its state non-finite,
 * the parameters and optimizer state are left as they were and the
 * message names the iteration: NDE_EMAXSTEPS, NDE_ESTEPSIZE,
 * NDE_ENONFINITE, NDE_ERETRY.
 * Under on_failure = skip or backoff such a failure is absorbed: the
 * iteration counts as done, its batch dropped, m->failed holds its
 * status (the message stays in ctx), totals' failures grows (backoff
 * also restores the state before the last good step and halves
 * lr_scale), and NDE_OK is returned, until max_failures are
 * absorbed: the next one is returned, its message saying so. Other
 * errors (NDE_EFATAL, NDE_ENOMEM, ...) always stop. m is filled as far
 * as the iteration got.
 */
NDE_API int nde_trainer_step(nde_trainer *tr, nde_train_step *m);

/*
 * Data-parallel training over the ranks of comm (nde/comm.h; NULL, the
 * default: this process alone). [train] shards = S cuts every batch into
 * S fixed shards of consecutive rows (shard s: rows [s B / S, (s + 1) B /
 * S)), each solved forward and backward as a batch of its own; the
 * shards' field gradients are summed in shard order. Rank r computes
 * shards [r S / K, (r + 1) S / K) of K ranks and the ranks exchange their
 * saves, initial-state cotangents and gradients, so every rank takes the
 * same step and a run gives the same bits for any K <= S (and one process
 * with the same S). The task's readout, loss and lift run on the whole
 * batch on every rank. A failure on one rank fails the step on every rank
 * with its message. shards > 1 takes neither regularizers, per_row_steps
 * nor SDE fields. Call before the first step; comm outlives tr.
 * NDE_ECONFIG when comm has more ranks than shards.
 */
NDE_API int nde_trainer_set_comm(nde_trainer *tr, nde_comm *comm);

/* Whether the on_failure policy (skip, backoff) absorbs a failure of this
 * status: a failed solve (NDE_EMAXSTEPS, NDE_ESTEPSIZE, NDE_ENONFINITE,
 * NDE_ERETRY). For callers that evaluate: a failed evaluation under such
 * a policy is a warning, not the run's end. */
NDE_API int nde_trainer_absorbs(const nde_trainer *tr, int status);

/* Predict the held-out set with the current parameters; test loss, NFE
 * and wall time. */
NDE_API int nde_trainer_evaluate(nde_trainer *tr, nde_eval_result *r);

/* The held-out set: nde_trainer_ntest() series; series i has its id, its
 * times (as observed) and the last evaluation's prediction (n x dim);
 * returns n. */
NDE_API size_t nde_trainer_ntest(const nde_trainer *tr);
NDE_API size_t nde_trainer_test_series(const nde_trainer *tr, size_t i,
                                       const char **id, const double **t,
                                       const double **pred);

/* Held-out series i's observations (n x dim at its times, NaN where
 * missing); returns n, or 0 when the task shows none. */
NDE_API size_t nde_trainer_test_observed(const nde_trainer *tr, size_t i,
                                         const double **obs);

/* Held-out series i's first observation that training never saw (0: the
 * series is held out whole; n: a training series evaluated because
 * nothing is held out; a forecast split: n - K). */
NDE_API size_t nde_trainer_test_held_from(const nde_trainer *tr, size_t i);

/* When parameter i (of nde_trainer_params) is a value of state j in
 * units of the model other than the data's (a learned initial state
 * under [data] normalize): that value in the data's units into *value,
 * and j; else -1 and *value untouched. */
NDE_API int nde_trainer_param_data_value(const nde_trainer *tr, size_t i,
                                         double *value);

/* Classification (source = idx): returns the number of classes C and
 * points *label at the ntest test labels and *prob at the last
 * evaluation's class probabilities (ntest x C); 0 for time series. */
NDE_API size_t nde_trainer_test_classes(const nde_trainer *tr,
                                        const int **label,
                                        const double **prob);

/* The name of parameter i of theta: the field's (nde_field_param_name)
 * or, for classification, enc.W[d,f], enc.b[d], dec.W[c,d], dec.b[c]. */
NDE_API void nde_trainer_param_name(const nde_trainer *tr, size_t i, char *buf,
                                    size_t size);

/* Solve the trained model from (t0, y0 of `batch` rows) to t1, saving at
 * tsave (as nde_solve); batch may be up to the training batch or
 * min_batch. y0 and the saves are in the data's units when the task
 * scales them ([data] normalize: nde/task.h's units). */
NDE_API int nde_trainer_predict(nde_trainer *tr, double t0, const double *y0,
                                size_t batch, double t1, size_t nsave,
                                const double *tsave, double *ysave,
                                nde_stats *st);

/* The task's initial states of n input rows (n x nde_trainer_input_dim,
 * n <= the training batch; in the data's units, as nde_trainer_predict
 * takes them) into y0 (n x dim, the same units) at the current parameters,
 * and the span of its solve (the first batch's t0 and last save time) in
 * *t0 and *t1: what the trained model integrates for a new input. A task
 * without a lift copies the rows. It draws a batch for the span (the
 * training's sampling stream moves on: for use on a trained model, not
 * between steps). NDE_EINVAL for n of 0 or above the batch. */
NDE_API int nde_trainer_lift(nde_trainer *tr, const double *input, size_t n,
                             double *y0, double *t0, double *t1);
/* The names of the dim states for outputs: the data's (a CSV's columns)
 * when the task has them, else the field's, else NULL (y0, y1, ...). */
NDE_API const char *const *nde_trainer_state_names(const nde_trainer *tr);
/* The task's input per row (the field's dim when it has no lift). */
NDE_API size_t nde_trainer_input_dim(const nde_trainer *tr);

/* Interventions: from now on predictions (nde_trainer_predict, _sample,
 * _evaluate) run under do(y_j = values[j]) for each j whose value is not
 * NaN (dim values in the data's units): state j starts at values[j] and
 * its derivative (and diffusion) is held at 0 (nde_field_create_clamped),
 * whatever the field. NULL, or no value, ends an intervention. Training
 * is not affected. */
NDE_API int nde_trainer_intervene(nde_trainer *tr, const double *values);

/* SDE fields: sample `batch` paths of the trained model from (t0, y0 of
 * `batch` rows) to t1 through the Brownian path of `seed` (the same seed,
 * the same paths), saving at tsave as nde_trainer_predict (which, for an
 * SDE field, uses the evaluation's fixed seed). NDE_EINVAL for an ODE
 * field. */
NDE_API int nde_trainer_sample(nde_trainer *tr, uint64_t seed, double t0,
                               const double *y0, size_t batch, double t1,
                               size_t nsave, const double *tsave,
                               double *ysave, nde_stats *st);

/*
 * The moments loss of `nsave` saves of B rows (y: nsave x B x dim, as
 * nde_solve saves) against data means M and variances V (nsave x dim):
 * with m, v the rows' mean and unbiased variance (B >= 2),
 *     L = 1/(nsave dim) sum_k sum_d (m_kd - M_kd)^2 + (v_kd - V_kd)^2,
 * returned; g (nsave x B x dim, may be NULL) gets dL/dy. mean and var
 * (nsave x dim, may be NULL) get m and v (they may be M and V: each entry
 * is read before it is written). NAN when B < 2.
 */
NDE_API double nde_moments_loss(const double *y, size_t nsave, size_t B,
                                size_t dim, const double *M, const double *V,
                                double *g, double *mean, double *var);

/*
 * Gradient check support. nde_trainer_probe() draws a new mini-batch from
 * the sampling stream (as a step would) and keeps it; nde_trainer_loss_grad
 * computes the loss of that batch at theta and, when grad is not NULL, its
 * gradient with adjoint `a` (NULL = the configured one), regularizers
 * included with the next iteration's weights and seeds (the same draws on
 * every call until a step is taken, so finite differences see one
 * function). Neither changes the trainer's parameters or optimizer.
 */
NDE_API int nde_trainer_probe(nde_trainer *tr);
NDE_API int nde_trainer_loss_grad(nde_trainer *tr, nde_adjoint *a,
                                  const double *theta, double *loss,
                                  double *grad, nde_stats *st);
NDE_API nde_solver *nde_trainer_solver(const nde_trainer *tr);
NDE_API nde_adjoint *nde_trainer_adjoint(const nde_trainer *tr);
/* The regularizers: their count; the name (NAME of [regularizer.NAME]) of
 * regularizer i (in order) and its unweighted value R in the last
 * training solve (NAN before the first) in *value (may be NULL). */
NDE_API size_t nde_trainer_nregularizers(const nde_trainer *tr);
NDE_API const char *nde_trainer_regularizer(const nde_trainer *tr, size_t i,
                                            double *value);
/* The weight regularizer i had in the last training solve (its schedule's
 * value then), so weight * value is its share of the loss; NAN before the
 * first solve or when i is out of range. */
NDE_API double nde_trainer_regularizer_weight(const nde_trainer *tr,
                                              size_t i);
/* The norm of regularizer i's direct gradient weight * dR/dtheta in the
 * last training iteration, before its clip (with clip c it was scaled to
 * c * nde_train_step.data_grad_norm when larger); NAN before the first or
 * when i is out of range. */
NDE_API double nde_trainer_regularizer_grad_norm(const nde_trainer *tr,
                                                 size_t i);

/* Add a regularizer made by the caller (e.g. nde_regularizer_create_from
 * with nde_trainer_solver()) after the config's ones, named `name`
 * ([a-z0-9_]+, not yet used), with schedule *w. The trainer owns r on
 * success (the caller keeps it on failure). It is not in the config, so
 * checkpoints do not know it. */
NDE_API int nde_trainer_add_regularizer(nde_trainer *tr, const char *name,
                                        nde_regularizer *r,
                                        const nde_weight_schedule *w);

/* The record of the last training forward solve (for memory accounting). */
NDE_API const nde_trajectory *nde_trainer_trajectory(const nde_trainer *tr);

/*
 * Checkpoints: a binary file, host byte order (doubles as IEEE 754):
 *   "NDECKPT1"            8-byte magic (fixed; the format version follows)
 *   u32 version           NDE_CHECKPOINT_VERSION
 *   u32 byte-order mark   0x01020304 as written by the host
 *   u64 payload length
 *   u32 crc32             zlib crc32 of the payload
 *   payload:
 *     u64 config length, config text (nde_config_write_canonical of the
 *         effective config, after overrides: no NUL byte)
 *     u64 nparams, i64 iteration, i64 optimizer step count
 *     f64 theta[nparams], m[nparams], v[nparams]
 *     i64 nfe_forward, i64 nfe_backward, f64 train time (totals)
 *     u64 data digest (a 64-bit hash of the data as loaded or generated:
 *         times, observations, series ids, images, labels)
 *     i64 failed iterations, f64 learning-rate scale, u64 run id
 *         (totals of on_failure; nde_trainer_run_id)
 *     i64 averaged steps n ([train] average_from), then if n > 0 f64
 *         avg[nparams], the mean of the parameters after those n steps
 *     u64 plugin count (1 to 64), then for each plugin of the run (field,
 *         solver, adjoint, the regularizers in order, the task): u32 kind,
 *         u32 its
 *         module's build signature, u64 name length, name ([a-z0-9_]+, at
 *         most 64 bytes), u64 version length, version ([A-Za-z0-9._+-]+,
 *         at most 32 bytes; "0" for a descriptor that declares none)
 *     u64 rng name length, gsl_rng_name of the sampling RNG
 *     u64 rng state length, the sampling RNG's state (gsl_rng_state)
 * The file is written whole by the caller's atomic-file logic.
 * Version 2 added the canonical config, the data digest and the RNG name,
 * version 3 the plugins, version 4 the failures, learning-rate scale and
 * run id, version 5 the averaged parameters. Versions 3 and 4 are read
 * (no failures, scale 1, no run id; nothing averaged); older ones are
 * refused with a message that says so.
 */
#define NDE_CHECKPOINT_VERSION 5u

NDE_API int nde_trainer_checkpoint_write(const nde_trainer *tr, FILE *out);

enum nde_checkpoint_mode {
    NDE_CHECKPOINT_PARAMS = 0, /* parameters only (predict)              */
    NDE_CHECKPOINT_RESUME = 1  /* everything; the config must match      */
};

/*
 * Load a checkpoint into tr. Refused (NDE_ECONFIG, naming the file and
 * what is wrong, "not a usable checkpoint: <field>" for a field out of
 * range; tr untouched): a truncated file, a bad magic, version or byte
 * order, a checksum mismatch, a different parameter count; then every
 * field is checked against what a trainer writes, whatever the crc says:
 * a config text with a NUL byte or that does not parse, an iteration
 * outside [0, 2^48] (lower for batches over 2^14 rows), an optimizer
 * step count other than the iteration, a non-finite theta or m, a v that is
 * not finite and >= 0, an averaged step count outside [0, the good
 * iterations] or a non-finite average, negative nfe totals, a train time
 * that is not finite and >= 0, a plugin count outside [1, 64], a plugin kind, name
 * or version of the wrong form, an RNG of another type than the trainer's
 * or one whose state cannot be checked (only mt19937's can: 32-bit words,
 * index in [0, 624], not all zero). In RESUME mode also a config whose
 * canonical form differs from the checkpoint's in anything but [train]
 * iterations, eval_every, checkpoint, checkpoint_every, metrics,
 * data_changed, on_failure and max_failures (the keys that do not change
 * the numbers of good iterations), and data that
 * differ from the checkpoint's (by digest) when [train] data_changed =
 * refuse, and averaged steps when the config averages nothing; with the
 * default `warn` the load succeeds and
 * nde_trainer_data_changed() says so. Plugins of other versions are noted
 * (nde_trainer_checkpoint_note), not refused. PARAMS mode performs the
 * same checks but for the config comparison and the refusal of changed
 * data, and loads the model: the averaged parameters if the checkpoint
 * has them (nde_trainer_params then returns them). In either mode changed data are refused when the task scales its
 * units to its data (nde/task.h's units: [data] normalize).
 */
NDE_API int nde_trainer_checkpoint_load(nde_trainer *tr, const char *path,
                                        int mode);

/* 1 if the checkpoint last loaded into tr was trained on other data than
 * tr's (its data digest differs), else 0. */
NDE_API int nde_trainer_data_changed(const nde_trainer *tr);

/* How the plugins of the checkpoint last loaded into tr differ from tr's,
 * matched by kind and name: another version, a module of another build
 * signature, a plugin only one side uses. Note i (one line, e.g. "made
 * with solver 'tsit5' version 1, this run uses version 2"), NULL past the
 * last. Such differences never refuse a checkpoint: the caller warns. */
NDE_API const char *nde_trainer_checkpoint_note(const nde_trainer *tr,
                                                size_t i);

/* The effective config text stored in a checkpoint (malloc'd, for
 * `nde predict`); the same checks as above except the config's. */
NDE_API int nde_checkpoint_read_config(const char *path, char **text,
                                       nde_ctx *ctx);

/* The run id (0 for a version-3 file, which has none) and the iteration
 * of the checkpoint at path, read with the checks of a load that do not
 * need a trainer: whose state a file holds. */
NDE_API int nde_checkpoint_read_run(const char *path, uint64_t *run_id,
                                    long *iteration, nde_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
