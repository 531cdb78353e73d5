/*
 * nde/solver.h - the solver interface: one ops table for every solver.
 *
 * A solver advances a state (y, aux) over a batch of B rows (n = B * dim
 * values in y; aux is `aux` further blocks of n values the method carries
 * from step to step, e.g. reversible Heun's z, f(z), g(z)) by one step of
 * size h. `step` is the only required operation; everything else is
 * optional and declared by being present (SUNDIALS' generic-object style),
 * each with the capability flag that says so: an embedded error estimate
 * (NDE_CAP_ADAPTIVE: then the driver in nde/solve.h steps adaptively),
 * dense output inside the last step (NDE_CAP_DENSE), a stiffness estimate
 * (NDE_CAP_STIFFNESS), the VJP of a step (NDE_CAP_STEP_VJP), an exact
 * reverse step (NDE_CAP_REVERSIBLE), first-same-as-last reuse
 * (NDE_CAP_FSAL: accept / invalidate), and the noise it integrates
 * (NDE_CAP_SDE_ITO / NDE_CAP_SDE_STRATONOVICH: step receives the Brownian
 * increment dw of its interval; NDE_CAP_GENERAL_NOISE: also for a field
 * with general noise, dw then holding M values a row). Flags and
 * operations must agree; that is checked when the solver is created. What
 * an implicit method needs from the field it declares in its info's needs
 * (NDE_NEEDS_FIELD_JVP: the field's jvp, nde/field.h), also checked at
 * create.
 *
 * Explicit Runge-Kutta methods need no operations at all: a plugin gives a
 * tableau and core implements the table from it (one engine shared by
 * every RK solver: stepping, FSAL reuse, dense output, stiffness and the
 * step VJP), after checking the tableau against its declared orders. A
 * step of size h from (t, y):
 *     g_i = y + h sum_{j<i} a_ij k_j,   k_i = f(t + c_i h, g_i)
 *     y_next = y + h sum_i b_i k_i
 *     err    = h sum_i btilde_i k_i                 (btilde = bhat - b)
 *     EEst   = sqrt(mean_m (err_m / (atol + rtol max(|y_m|, |y_next_m|)))^2)
 * Dense output for theta in [0, 1]:
 *     y(t + theta h) = y + h sum_i b_i(theta) k_i,
 *     b_i(theta) = sum_{j=1..dense_degree} dense[i*dense_degree + j-1] theta^j
 * where i also runs over the tableau's extra stages (interface version 2),
 * e = 0 .. extra_stages - 1, stage s + e:
 *     k_{s+e} = f(t + c_extra_e h, y + h sum_{j<s+e} a_extra[e][j] k_j),
 * which only dense output uses (Verner's interpolants need them): the
 * engine evaluates them once after a step, when its dense output is first
 * asked for (or its stages recorded), as OrdinaryDiffEq's lazy
 * interpolation does; the step VJP differentiates through them when it has
 * dense cotangents.
 * A second estimate (interface version 3, btilde2; Bogacki and Shampine's
 * 5(4) pair has two): err2 = h sum_i btilde2_i k_i, and the step size is
 * controlled by the larger of the two norms, max(EEst(err), EEst(err2)),
 * which the driver records as the step's eest. err itself, and with it
 * nde_error_norm of a step's err and the EEst cotangent of step_vjp (what
 * the regularizers measure and differentiate), stay btilde's.
 * Stiffness (Hairer, Wanner, Solving ODEs II, Sec. IV.2; Pal et al. 2021,
 * arXiv 2105.03918), with stage q = stiff_stage
 * evaluated at c_q = 1 and the last stage at y_next (FSAL):
 *     S = RMS(k_s - k_q) / RMS(y_next - g_q) / stability_size
 */
#ifndef NDE_SOLVER_H
#define NDE_SOLVER_H

#include "api.h"
#include "brownian.h"
#include "config.h"
#include "field.h"
#include "plugin.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_rk_tableau {
    int stages;             /* s                                              */
    const double *c;        /* s nodes                                        */
    const double *a;        /* s x s, row-major, strictly lower triangular    */
    const double *b;        /* s weights of the propagated solution           */
    const double *btilde;   /* s error weights bhat - b, or NULL              */
    int fsal;               /* last stage is f(t + h, y_next)                 */
    int dense_degree;       /* 0 = no dense output                            */
    const double *dense;    /* s x dense_degree polynomial coefficients       */
    int stiff_stage;        /* q (0-based) with c_q = 1, or -1                */
    double stability_size;  /* normalises the stiffness estimate             */
    /* Interface version 2: stages for dense output only (see above); dense
     * then has (s + extra_stages) x dense_degree coefficients. */
    int extra_stages;       /* 0 = none                                      */
    const double *c_extra;  /* extra_stages nodes                            */
    const double *a_extra;  /* extra_stages x (s + extra_stages), row-major,
                               row e zero from column s + e on              */
    /* Interface version 3: a second error estimate (see above). */
    const double *btilde2;  /* s error weights of another bhat - b, or NULL */
} nde_rk_tableau;

typedef struct nde_solver nde_solver;

/* How a step's error estimate is measured: the scaled RMS norm of err with
 * scale atol + rtol max(|y|, |y_next|), over the whole state, or the
 * largest over consecutive blocks of blocks[0], ..., blocks[nblocks - 1]
 * values (values after the last block are left out of the norm; see
 * nde_solve_opts.norm_blocks). */
typedef struct nde_norm_spec {
    double rtol, atol;
    const size_t *blocks;   /* NULL when nblocks = 0                        */
    size_t nblocks;
} nde_norm_spec;

/* A cotangent on the dense output y(t + theta h) of a step (n values). */
typedef struct nde_dense_cotangent {
    double theta;
    const double *g;
} nde_dense_cotangent;

/* Cotangents on the outputs of one step; every one may be absent (NULL or
 * 0). eest is on the error norm measured with rtol and atol over the whole
 * state (one block); stiffness on the stiffness estimate; dense on dense
 * outputs inside the step (save points served by dense output). */
typedef struct nde_step_cotangent {
    const double *y_next;   /* n values                                     */
    const double *aux_next; /* aux x n values                               */
    double eest, rtol, atol;
    double stiffness;
    const nde_dense_cotangent *dense;
    size_t ndense;
} nde_step_cotangent;

/*
 * The operations of a solver. Conventions: theta is the field's parameter
 * vector; arrays hold s->batch rows (n values, or aux x n for aux); outputs
 * never alias inputs; a VJP accumulates (+=) into its outputs, any of which
 * may be NULL when not wanted. A field's NDE_ERETRY (non-finite values) is
 * returned as is so that the driver can shrink the step; other errors stop
 * the solve. Counts: one evaluation of the field (drift and diffusion at
 * one point for an SDE) adds one to s->counts.nfe, one VJP one to
 * s->counts.nvjp. Hot operations (step, dense, step_vjp) never allocate.
 */
typedef struct nde_solver_ops {
    int aux;                /* blocks of n values besides y (0 = none)     */
    int stages;             /* blocks of n values a recorded step keeps for
                               dense (0 with no dense)                     */
    /* Optional: workspace for batch_max x dim values in s->work, and the
     * plugin's keys from s->section; destroy (required with create) must
     * accept a half-built one. May raise s->aux when the state it carries
     * depends on the field (reversible Heun keeps a general-noise
     * diffusion, dim x M a row: 2 + M blocks), and set s->stages when
     * they depend on its parts (autoswitch: its parts' most + 1, at most
     * 26). s->buf does not exist yet. A status other than NDE_OK
     * and NDE_ENOMEM comes with its message (nde_section_error naming the
     * key). */
    int (*create)(nde_solver *s);
    void (*destroy)(nde_solver *s);
    /* Required when aux > 0: aux0 at the start of a solve from (t0, y0). */
    int (*start)(nde_solver *s, const double *theta, double t0,
                 const double *y0, double *aux0);
    /* Required: one step of size h (either sign, unless the solver
     * integrates SDEs, forwards only) from (y, aux) at t to (y_next,
     * aux_next) at t + h. dw: the Brownian increment on [t, t + h] (n
     * values; batch x M with a general-noise field, see
     * nde_solver_noise_channels) for SDE solvers, NULL otherwise; for a
     * solver that needs NDE_NEEDS_LEVY_AREA, 2n values: the increment,
     * then the space-time Levy area H of each value's channel over the
     * step (nde/brownian.h),
     * so that int_t^{t+h} (W(s) - W(t)) ds = h (dw / 2 + H). Callers get
     * it from nde_solver_noise. With NDE_CAP_ADAPTIVE, when
     * err is not NULL it receives the error estimate (n values), and when
     * also eest is not NULL, *eest its norm under *norm, NaN if y_next
     * holds a non-finite value (nde_error_norm_spec computes exactly that).
     * Without NDE_CAP_ADAPTIVE err and eest are NULL. */
    int (*step)(nde_solver *s, const double *theta, double t, double h,
                const double *dw, const double *y, const double *aux,
                double *y_next, double *aux_next, double *err,
                const nde_norm_spec *norm, double *eest);
    /* Optional: f(t, y) into *f (valid until the next step), kept as the
     * first stage of a step from y when the method can use it (the first
     * step heuristic needs it). The driver evaluates the field itself
     * otherwise. */
    int (*derivative)(nde_solver *s, const double *theta, double t,
                      const double *y, const double **f);
    /* NDE_CAP_FSAL: the last step was accepted (its last stage becomes the
     * next step's first); invalidate: y changed otherwise. */
    void (*accept)(nde_solver *s);
    void (*invalidate)(nde_solver *s);
    /* NDE_CAP_DENSE: y(t + theta h), theta in [0, 1], of the step of size h
     * from y whose stages are k (`stages` blocks of n values; NULL: the
     * last step taken, until the next step). last_stages points k[i] at
     * the last step's stages (for recording). */
    int (*dense)(const nde_solver *s, const double *y, double h,
                 const double *const *k, double theta, double *out);
    void (*last_stages)(const nde_solver *s, const double **k);
    /* NDE_CAP_STIFFNESS: the stiffness estimate of the last step (y_next as
     * it returned); 0 when its denominator vanishes. */
    int (*stiffness)(const nde_solver *s, const double *y_next, double *out);
    /* NDE_CAP_STEP_VJP: VJP of the step (t, h, dw, y, aux) -> its outputs,
     * recomputing what it needs. h is a constant (no gradient through
     * step-size control). Accumulates ybar, auxbar, thetabar. */
    int (*step_vjp)(nde_solver *s, const double *theta, double t, double h,
                    const double *dw, const double *y, const double *aux,
                    const nde_step_cotangent *ct, double *ybar,
                    double *auxbar, double *thetabar);
    /* Optional: the same for the last step taken (its theta, t, h, dw, y
     * and aux, which the caller has not changed), reusing its stages;
     * NDE_EINVAL when there is none (none taken, or accepted since). */
    int (*last_step_vjp)(nde_solver *s, const nde_step_cotangent *ct,
                         double *ybar, double *auxbar, double *thetabar);
    /* Required with step_vjp when aux > 0: VJP of start, given auxbar0. */
    int (*start_vjp)(nde_solver *s, const double *theta, double t0,
                     const double *y0, const double *auxbar0, double *ybar0,
                     double *thetabar);
    /* NDE_CAP_REVERSIBLE: the exact inverse of step, (y_next, aux_next) at
     * t + h -> (y, aux) at t, to round-off. */
    int (*reverse)(nde_solver *s, const double *theta, double t, double h,
                   const double *dw, const double *y_next,
                   const double *aux_next, double *y, double *aux);
} nde_solver_ops;

/* The interface version of nde_solver_type (plugin.h): members are only
 * ever appended (to it and to the tableau it points to).
 *   1: order, error_order, dense_order, tableau, ops
 *   2: nde_rk_tableau's extra_stages, c_extra, a_extra (a version 1
 *      plugin's tableau ends before them: read as none)
 *   3: nde_rk_tableau's btilde2 (read as NULL before) */
#define NDE_SOLVER_VERSION 3

/* The descriptor's info: NDE_SOLVER_INFO(.name = ..., .description = ...,
 * .keys, .provides, .version). */
#define NDE_SOLVER_INFO(...)                                                 \
    NDE_PLUGIN_INFO_(NDE_KIND_SOLVER, NDE_SOLVER_VERSION, nde_solver_type,    \
                     __VA_ARGS__)

typedef struct nde_solver_type {
    nde_plugin_info info;   /* kind NDE_KIND_SOLVER, provides NDE_CAP_*; first */
    int order;              /* order of the propagated solution (SDE
                               solvers: strong order x 2, so 1 = 0.5)        */
    int error_order;        /* order of the embedded solution; 0 if none     */
    int dense_order;        /* order of the dense output; 0 if none          */
    /* Either a tableau (explicit RK: leave ops empty, core implements it)
     * or ops. */
    const nde_rk_tableau *tableau;
    nde_solver_ops ops;
} nde_solver_type;

/* Engine counters; reset by the caller when it wants per-solve numbers. */
typedef struct nde_solver_counts {
    long nfe;               /* field evaluations                              */
    long nvjp;              /* field VJPs                                     */
} nde_solver_counts;

typedef struct nde_solve_buffers nde_solve_buffers;

struct nde_solver {
    const nde_solver_type *type;
    const nde_solver_ops *ops; /* type->ops, or core's RK engine           */
    nde_ctx *ctx;
    nde_field *field;       /* borrowed; must outlive the solver             */
    size_t batch_max;       /* rows the workspace was sized for              */
    size_t batch;           /* rows of the current solve (<= batch_max)      */
    int aux;                /* blocks of n values besides y                 */
    int stages;             /* blocks of n values of a step's dense output
                               (ops.stages; a composite's create may set
                               it from its parts, at most 26)              */
    nde_solver_counts counts;
    void *work;             /* the solver's own workspace                    */
    nde_solve_buffers *buf; /* the driver's (nde_solve)                      */
    /* The solver's config section while ops.create runs, for the keys its
     * descriptor declares (NULL: nde_solver_create_from, the defaults);
     * NULL after. */
    nde_section *section;
};

/* Create the solver named by section `section` (key `plugin`) for `field`,
 * checking the section against the solve loop's keys and the plugin's.
 * Refused (NDE_ECAPABILITY, naming solver and field): an SDE solver with a
 * field without diffusion, an ODE solver with one, a field whose
 * `calculus` is not the one the SDE solver integrates, and a field with
 * general noise (NDE_NOISE_GENERAL) and a solver without
 * NDE_CAP_GENERAL_NOISE. */
NDE_API int nde_solver_create(nde_ctx *ctx, const nde_config *cfg,
                              const char *section, nde_field *field,
                              nde_solver **out);
NDE_API int nde_solver_create_from(nde_ctx *ctx, const nde_solver_type *type,
                                   nde_field *field, nde_solver **out);
NDE_API void nde_solver_destroy(nde_solver *s);

/* Rows for the following calls; NDE_EINVAL above batch_max. Invalidates the
 * FSAL stage. */
NDE_API int nde_solver_set_batch(nde_solver *s, size_t batch);

/*
 * The operations, for callers that step by hand (adjoints, regularizers,
 * tests). Each returns NDE_ECAPABILITY, naming the solver, when the solver
 * does not have the operation; aux arguments hold nde_solver_aux(s) x n
 * values (NULL when that is 0). See nde_solver_ops for the contracts.
 */
NDE_API int nde_solver_aux(const nde_solver *s);
NDE_API int nde_solver_is_sde(const nde_solver *s); /* NDE_CAP_SDE_* set */
/* The noise of a step: blocks of n values its dw holds (0: an ODE solver;
 * 1: the increment; 2: the increment and the space-time Levy area, for a
 * solver that needs it); and dw of a step over [ta, tb] from the path bm
 * (its n channels), the one way the driver, adjoints and regularizers get
 * it. For a solver that needs the area, a path without it is switched to
 * one with it first (nde_brownian_set_area: the path changes, so query it
 * after that for W that the solve saw). */
NDE_API int nde_solver_noise_blocks(const nde_solver *s);
/* Channels of the Brownian path of a solve (its n): s->batch x the
 * field's Brownian channels, noise_dim less control_dim, noise_dim being
 * dim for diagonal noise and M for general noise (nde/field.h); 0 for an
 * ODE solver. A block of dw holds s->batch x noise_dim values: with
 * control_dim > 0, nde_solver_noise puts each row's Brownian increments
 * first and the input's increments after them (the field's layout). */
NDE_API size_t nde_solver_noise_channels(const nde_solver *s);
/* The same at batch_max rows, at least batch_max x dim: what a buffer for
 * a block of dw is sized for. */
NDE_API size_t nde_solver_noise_channels_max(const nde_solver *s);
NDE_API int nde_solver_noise(const nde_solver *s, nde_brownian *bm,
                             double ta, double tb, double *dw);
NDE_API int nde_solver_start(nde_solver *s, const double *theta, double t0,
                             const double *y0, double *aux0);
/* A step with its state: (y, aux) at t -> (y_next, aux_next) at t + h. */
NDE_API int nde_solver_advance(nde_solver *s, const double *theta, double t,
                               double h, const double *dw, const double *y,
                               const double *aux, double *y_next,
                               double *aux_next);
/* The same and its error estimate err (n values; its norm is
 * nde_error_norm's), for any adaptive solver (NDE_CAP_ADAPTIVE; else
 * NDE_ECAPABILITY): how a caller stepping an adaptive SDE solver by hand
 * (a regularizer's fresh step) gets the estimate the driver sees. */
NDE_API int nde_solver_advance_err(nde_solver *s, const double *theta,
                                   double t, double h, const double *dw,
                                   const double *y, const double *aux,
                                   double *y_next, double *aux_next,
                                   double *err);
/* A step of an ODE solver without aux state, and its error estimate when
 * err is not NULL and the solver has one. Reuses the first stage from the
 * previous step when the solver is FSAL and the previous step was accepted
 * onto this y (nde_solver_accept); call nde_solver_invalidate() whenever y
 * changes otherwise. */
NDE_API int nde_solver_step(nde_solver *s, const double *theta, double t,
                            double h, const double *y, double *y_next,
                            double *err);
/* f(t, y) into *f0, valid until the next step; kept as that step's first
 * stage where the solver can use it (no evaluation wasted). */
NDE_API int nde_solver_first_stage(nde_solver *s, const double *theta,
                                   double t, const double *y,
                                   const double **f0);
/* The last step was accepted; or y changed otherwise. No-ops for solvers
 * without FSAL. */
NDE_API void nde_solver_accept(nde_solver *s);
NDE_API void nde_solver_invalidate(nde_solver *s);

/* Dense output of the last step (taken from y with size h) at fraction
 * theta in [0, 1]. */
NDE_API int nde_solver_dense(const nde_solver *s, const double *y, double h,
                             double theta, double *out);
/* Dense output of a recorded step: k holds its stages (stages x n, as
 * nde_trajectory.k), y its start state. */
NDE_API int nde_solver_dense_from(const nde_solver *s, const double *y,
                                  double h, const double *k, double theta,
                                  double *out);
/* Blocks of n values a recorded step keeps: the stages of a solver with
 * dense output (nde_trajectory.k per step), else the aux state. */
NDE_API int nde_solver_stages(const nde_solver *s);
/* Copy the last step's stages into k (stages x n values). */
NDE_API int nde_solver_copy_stages(const nde_solver *s, double *k);

/* Stiffness estimate of the last step (y_next as returned by it). */
NDE_API int nde_solver_stiffness(const nde_solver *s, const double *y_next,
                                 double *out);

/* Scaled RMS norm of err with scale atol + rtol max(|y|, |y_next|). The
 * squares are summed NDE_NORM_CHUNK values at a time, in order, then the
 * chunks' sums in order: a solver may split a long state's sum between
 * threads and get the same bits (core's RK engine does). */
#define NDE_NORM_CHUNK 4096
NDE_API double nde_error_norm(const double *err, const double *y,
                              const double *y_next, size_t n, double rtol,
                              double atol);
/* The same in the blocks of *norm; NaN when y_next holds a non-finite
 * value: what a step's eest must be. */
NDE_API double nde_error_norm_spec(const nde_norm_spec *norm,
                                   const double *err, const double *y,
                                   const double *y_next, size_t n);

/* VJP of one ODE step (t, y, h) -> (y_next, EEst, S, dense outputs), as
 * nde_solver_ops.step_vjp with cotangents ybar_next, ebar on EEst
 * (computed with rtol/atol), sbar on S and ndc on dense outputs. */
NDE_API int nde_solver_step_vjp(nde_solver *s, const double *theta, double t,
                                double h, const double *y, double rtol,
                                double atol, const double *ybar_next,
                                double ebar, double sbar,
                                const nde_dense_cotangent *dc, size_t ndc,
                                double *ybar, double *thetabar);
/* The same for the step the last nde_solver_step call took, reusing its
 * stages. NDE_EINVAL when there is no such step. */
NDE_API int nde_solver_last_step_vjp(nde_solver *s, double rtol, double atol,
                                     const double *ybar_next, double ebar,
                                     double sbar,
                                     const nde_dense_cotangent *dc, size_t ndc,
                                     double *ybar, double *thetabar);
/* VJP of one step with its state (nde_solver_advance) and every cotangent
 * the solver can take (nde_step_cotangent): the general form of the two
 * conveniences around it. */
NDE_API int nde_solver_vjp(nde_solver *s, const double *theta, double t,
                           double h, const double *dw, const double *y,
                           const double *aux, const nde_step_cotangent *ct,
                           double *ybar, double *auxbar, double *thetabar);
/* VJP of a step with its state, cotangents on y_next and aux_next. */
NDE_API int nde_solver_advance_vjp(nde_solver *s, const double *theta,
                                   double t, double h, const double *dw,
                                   const double *y, const double *aux,
                                   const double *ybar_next,
                                   const double *auxbar_next, double *ybar,
                                   double *auxbar, double *thetabar);
NDE_API int nde_solver_start_vjp(nde_solver *s, const double *theta, double t0,
                                 const double *y0, const double *auxbar0,
                                 double *ybar0, double *thetabar);
NDE_API int nde_solver_reverse(nde_solver *s, const double *theta, double t,
                               double h, const double *dw,
                               const double *y_next, const double *aux_next,
                               double *y, double *aux);

#ifdef __cplusplus
}
#endif
#endif
