/*
 * nde/regularizer.h - the regularizer interface.
 *
 * A regularizer adds weight * R(theta) to a training loss. Around each
 * training solve (never in evaluation):
 * - before_solve (optional) may move the end time of the solve (STEER) and
 *   ask for extra save times (local regularization's sampled t_s). When t1
 *   moves, the trainer stretches the whole time grid of the solve with it:
 *   every save time t_k becomes t0 + (t_k - t0) (t1' - t0) / (t1 - t0), so
 *   observations are compared at the stretched times (for an autonomous
 *   field: a random rescaling of the vector field by (t1 - t0)/(t1' - t0)).
 * - after_solve returns R (unweighted), adds weight * dR/dtheta to
 *   thetabar directly, and may hand back cotangents (t, weight * dR/dy(t))
 *   that the trainer merges into the adjoint's list, so gradients flowing
 *   through the trajectory reach theta through whatever adjoint is
 *   configured. A regularizer that holds the trajectory constant (the local
 *   regularizer of Pal et al. 2023) returns no cotangents.
 *   after_solve is given the solve's save times and the states the solve
 *   returned there (in->saves, interface version 2), so a penalty at the
 *   observed states needs no save times of its own.
 *
 * The descriptor declares in info.needs what every instance needs, and an
 * instance in r->needs what it needs (it may add to them): record flags
 * for the forward solve (NDE_NEEDS_STEPS, ...) and solver capabilities
 * (NDE_NEEDS_ERROR_EST: an adaptive solver; NDE_NEEDS_STIFFNESS;
 * NDE_NEEDS_STEP_VJP). nde_regularizer_create refuses a solver that lacks
 * one, naming the regularizer, the solver and what is missing, before any
 * work starts (plugin.h).
 *
 * Weights: every [regularizer.NAME] section takes, besides `plugin` and the
 * plugin's keys, the keys of nde_regularizer_keys: weight, and an optional
 * schedule (constant, or exponential decay from weight to weight_final
 * over the run, as the Pal et al. papers anneal theirs).
 */
#ifndef NDE_REGULARIZER_H
#define NDE_REGULARIZER_H

#include <stdint.h>
#include "api.h"
#include "adjoint.h"
#include "config.h"
#include "plugin.h"
#include "solve.h"
#include "status.h"
#include "trajectory.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_regularizer nde_regularizer;

/* What before_solve may change. extra_save has room for
 * NDE_REGULARIZER_MAX_EXTRA times. */
#define NDE_REGULARIZER_MAX_EXTRA 8
typedef struct nde_solve_request {
    double t0, t1;          /* t1 may be moved (STEER)                    */
    size_t nextra;          /* extra save times asked for                 */
    double extra_save[NDE_REGULARIZER_MAX_EXTRA];
} nde_solve_request;

/* The training solve's save times and the states it returned there
 * (nde_solve's tsave and ysave at the task's observation times: the ODE
 * state, before the task's readout). The regularizers' extra save times
 * are not among them (those states are extra_y), so what one regularizer
 * sees does not depend on which others are configured. The interval is
 * the input's t0, t1. Grows append-only, as the input does. */
typedef struct nde_regularizer_saves {
    size_t nsave;           /* >= 1                                       */
    const double *t;        /* nsave save times in the direction of the
                               solve, moved with t1 (STEER); the last is
                               the input's t1                             */
    const double *y;        /* nsave x batch x dim: the states the solve
                               returned at t, bit for bit                 */
} nde_regularizer_saves;

/* What after_solve sees: members are only ever appended. The caller
 * allocates it, so a plugin built against an older version never reads
 * past what it knows. */
typedef struct nde_regularizer_input {
    nde_solver *solver;         /* the forward solver; its workspace may be
                                   used for extra steps (FSAL invalidated) */
    const nde_solve_opts *opts; /* the training solve's options (rtol, atol) */
    const nde_trajectory *fwd;  /* its record (what r->needs asked for)     */
    const double *theta;
    double t0, t1;              /* the interval actually solved            */
    const double *extra_y;      /* states at the extra save times, in the
                                   order asked: nextra x batch x dim        */
    size_t nextra;
    double weight;              /* this iteration's weight                  */
    /* Version 2 and later: */
    const nde_regularizer_saves *saves; /* never NULL                       */
} nde_regularizer_input;

/* What after_solve returns. */
typedef struct nde_regularizer_output {
    double value;               /* R, unweighted                           */
    double *thetabar;           /* += weight * dR/dtheta (direct part)     */
    const nde_cotangent *ct;    /* weight * dR/dy(t), owned by the plugin,
                                   valid until its next call; may be NULL */
    size_t nct;
    long nfe;                   /* field evaluations it spent (forward)    */
    long nvjp;                  /* field VJPs it spent                     */
} nde_regularizer_output;

/* The interface version of nde_regularizer_type and of what its ops are
 * given (plugin.h): members are only ever appended.
 *   1: create, destroy, before_solve, after_solve
 *   2: nde_regularizer_input.saves (the descriptor is unchanged)
 * Version 2 appends a member to the input rather than an op to the
 * descriptor: after_solve keeps its one signature and a plugin its one
 * entry point (no second op to prefer or to fall back from), and a
 * version-1 plugin reads the input as it always did. The version still
 * rises so that a plugin reading saves is refused by a library too old to
 * fill them.
 *   3: prox (and nde_regularizer.proximal, which core allocates) */
#define NDE_REGULARIZER_VERSION 3

/* The descriptor's info: NDE_REGULARIZER_INFO(.name = ...,
 * .description = ..., .keys, .needs, .version). */
#define NDE_REGULARIZER_INFO(...)                                            \
    NDE_PLUGIN_INFO_(NDE_KIND_REGULARIZER, NDE_REGULARIZER_VERSION,           \
                     nde_regularizer_type, __VA_ARGS__)

typedef struct nde_regularizer_type {
    nde_plugin_info info; /* kind NDE_KIND_REGULARIZER; needs NDE_NEEDS_*; first */

    /* Read the section (sec may be NULL: defaults); set r->needs; allocate
     * for up to s->batch_max rows. */
    int (*create)(nde_regularizer *r, nde_section *sec, nde_solver *s,
                  nde_ctx *ctx);
    void (*destroy)(nde_regularizer *r);
    /* Optional (may be NULL). seed: this iteration's seed for the
     * regularizer's own random stream (the same seed, the same draw). */
    int (*before_solve)(nde_regularizer *r, nde_solve_request *req,
                        uint64_t seed);
    int (*after_solve)(nde_regularizer *r, const nde_regularizer_input *in,
                       nde_regularizer_output *out);

    /* Version 3. Optional (may be NULL): a proximal step on the field's
     * parameters theta[0..field->nparams), called by the trainer after
     * each optimizer step, with that step's learning rate lr and this
     * iteration's weight, on an instance that set r->proximal:
     * theta <- argmin_x R(x) lr weight + ||x - theta||^2 / 2. Such an
     * instance leaves dR/dtheta out of after_solve's thetabar (the prox
     * takes its place) and still returns its value R, so a penalty that
     * is not differentiable at zero (group lasso) sets parameters exactly
     * to zero. */
    int (*prox)(nde_regularizer *r, double *theta, double lr, double weight);
} nde_regularizer_type;

struct nde_regularizer {
    const nde_regularizer_type *type;
    nde_ctx *ctx;
    nde_solver *solver;     /* the forward solver (borrowed)              */
    unsigned needs;         /* NDE_NEEDS_*: record flags and capabilities */
    void *state;
    int proximal;           /* set by create: the gradient is prox's      */
};

/* The weight keys every [regularizer.NAME] section accepts: weight
 * (required), schedule = constant | exponential (default constant),
 * weight_final (the last iteration's weight for exponential). */
NDE_API extern const nde_key nde_regularizer_keys[];

/* How the trainer weighs a regularizer: its weight schedule, and clip
 * (0: none): the norm of its direct gradient weight * dR/dtheta is capped
 * at clip times the norm of the gradient through the adjoint of the
 * iteration (the data loss's, plus the cotangents regularizers hand it,
 * which are not capped). */
typedef struct nde_weight_schedule {
    double weight, weight_final;
    int exponential;
    double clip;
} nde_weight_schedule;

/* The weight at iteration i (0-based) of a run of n iterations: weight, or
 * weight (weight_final / weight)^(i / (n - 1)) for exponential decay. */
NDE_API double nde_weight_at(const nde_weight_schedule *w, long i, long n);

/* Create the regularizer of section `section` (e.g. "regularizer.local",
 * key `plugin`) for the forward solver s: checks the section against the
 * plugin's keys and nde_regularizer_keys, reads the schedule into *w, and
 * refuses a solver lacking a capability the instance needs. */
NDE_API int nde_regularizer_create(nde_ctx *ctx, const nde_config *cfg,
                                   const char *section, nde_solver *s,
                                   nde_weight_schedule *w,
                                   nde_regularizer **out);
NDE_API int nde_regularizer_create_from(nde_ctx *ctx,
                                        const nde_regularizer_type *type,
                                        nde_section *sec, nde_solver *s,
                                        nde_regularizer **out);
NDE_API void nde_regularizer_destroy(nde_regularizer *r);

/* Replaying the forward solve's steps (for after_solve). Step j of
 * in->fwd (which recorded NDE_NEEDS_STEPS) runs on [t_j, t_{j+1}], t1
 * for the last step: where the driver landed.
 * nde_regularizer_step_noise: the noise the solve drew on step j, from
 * in->opts->brownian (NDE_EINVAL without one), into dw, which holds
 * nde_solver_noise_blocks(in->solver) x in->fwd->n values.
 * nde_regularizer_replay_step: step j again from y into y_next, and its
 * error estimate into err unless NULL (an adaptive solver's); with a
 * fresh first stage (the solver's FSAL stage belongs to another state);
 * an SDE solver steps on the solve's noise, into dw as above (an ODE
 * solver ignores dw: it may be NULL). */
NDE_API int nde_regularizer_step_noise(const nde_regularizer_input *in,
                                       size_t j, double *dw);
NDE_API int nde_regularizer_replay_step(const nde_regularizer_input *in,
                                        size_t j, const double *y,
                                        double *y_next, double *err,
                                        double *dw);

#ifdef __cplusplus
}
#endif
#endif
