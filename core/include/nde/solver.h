/*
 * nde/solver.h - the solver interface: one step, its error and stiffness
 * estimates, dense output inside the step, and the VJP of the step.
 *
 * ABI 1 solvers are explicit Runge-Kutta methods: a plugin supplies a
 * tableau and the core engine (core/rk.c) does the rest, so every RK solver
 * shares one implementation of stepping, FSAL reuse, dense output,
 * stiffness estimation and the step VJP. Solvers with their own structure
 * (SDE solvers, reversible ones) supply ops instead (nde_solver_ops below):
 * a state (y, aux) advanced by fixed steps, optionally reversed exactly.
 *
 * A step of size h from (t, y) over a batch of B rows (n = B * dim values):
 *     g_i = y + h sum_{j<i} a_ij k_j,   k_i = f(t + c_i h, g_i)
 *     y_next = y + h sum_i b_i k_i
 *     err    = h sum_i btilde_i k_i                 (btilde = bhat - b)
 *     EEst   = sqrt(mean_m (err_m / (atol + rtol max(|y_m|, |y_next_m|)))^2)
 * Dense output for theta in [0, 1]:
 *     y(t + theta h) = y + h sum_i b_i(theta) k_i,
 *     b_i(theta) = sum_{j=1..dense_degree} dense[i*dense_degree + j-1] theta^j
 * Stiffness (Pal et al. 2021/2023, methods.md 2.6), with stage q = stiff_stage
 * evaluated at c_q = 1 and the last stage at y_next (FSAL):
 *     S = RMS(k_s - k_q) / RMS(y_next - g_q) / stability_size
 */
#ifndef NDE_SOLVER_H
#define NDE_SOLVER_H

#include "api.h"
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
} nde_rk_tableau;

typedef struct nde_solver nde_solver;

/*
 * A solver with its own structure: fixed steps of a state (y, aux), where
 * aux is `aux` further blocks of n = batch x dim values the method carries
 * from step to step (reversible Heun: z, f(z), g(z)). dw is the Brownian
 * increment of the step (n values: one channel per state) for an SDE
 * field, NULL for an ODE field. Outputs never alias inputs. One evaluation
 * of an SDE field (drift and diffusion at one point) counts as one in
 * s->counts.nfe, one VJP of both as one in s->counts.nvjp.
 */
typedef struct nde_solver_ops {
    int aux;                /* blocks of n values besides y (0 = none)       */
    /* Workspace for batch_max x dim values in s->work; destroy must
     * accept a half-built one. */
    int (*create)(nde_solver *s);
    void (*destroy)(nde_solver *s);
    /* The state at the start of a solve: aux0 from (t0, y0). */
    int (*start)(nde_solver *s, const double *theta, double t0,
                 const double *y0, double *aux0);
    /* One step of size h: (y, aux) at t -> (y_next, aux_next) at t + h. */
    int (*step)(nde_solver *s, const double *theta, double t, double h,
                const double *dw, const double *y, const double *aux,
                double *y_next, double *aux_next);
    /* NDE_CAP_REVERSIBLE only (else NULL): the exact inverse of step,
     * (y_next, aux_next) at t + h -> (y, aux) at t, to round-off. */
    int (*reverse)(nde_solver *s, const double *theta, double t, double h,
                   const double *dw, const double *y_next,
                   const double *aux_next, double *y, double *aux);
    /* VJP of step at (t, h, dw, y, aux): given cotangents on y_next and
     * aux_next (either may be NULL = zero), accumulate ybar +=, auxbar +=
     * and thetabar += (any may be NULL when not wanted). */
    int (*step_vjp)(nde_solver *s, const double *theta, double t, double h,
                    const double *dw, const double *y, const double *aux,
                    const double *ybar_next, const double *auxbar_next,
                    double *ybar, double *auxbar, double *thetabar);
    /* VJP of start: given auxbar0, accumulate ybar0 += and thetabar +=. */
    int (*start_vjp)(nde_solver *s, const double *theta, double t0,
                     const double *y0, const double *auxbar0, double *ybar0,
                     double *thetabar);
} nde_solver_ops;

/* The interface version of nde_solver_type (plugin.h): members are only
 * ever appended.
 *   1: order, error_order, dense_order, tableau, ops */
#define NDE_SOLVER_VERSION 1

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
    const nde_rk_tableau *tableau; /* explicit RK solvers; or else ops      */
    const nde_solver_ops *ops;
} nde_solver_type;

/* Engine counters; reset by the caller when it wants per-solve numbers. */
typedef struct nde_solver_counts {
    long nfe;               /* field evaluations                              */
    long nvjp;              /* field VJPs                                     */
} nde_solver_counts;

struct nde_solver {
    const nde_solver_type *type;
    nde_ctx *ctx;
    nde_field *field;       /* borrowed; must outlive the solver             */
    size_t batch_max;       /* rows the workspace was sized for              */
    size_t batch;           /* rows of the current solve (<= batch_max)      */
    nde_solver_counts counts;
    void *work;             /* engine (or ops) workspace                     */
};

/* Create the solver named by section `section` (key `plugin`) for `field`,
 * checking the section against the solve loop's keys and the plugin's.
 * Refused (NDE_ECAPABILITY, naming solver and field): an SDE solver with a
 * field without diffusion, an ODE solver with one, and a field whose
 * `calculus` is not the one the SDE solver integrates. */
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
 * One step of size h (either sign) from (t, y). Writes y_next and, when err
 * is not NULL and the solver has an error estimate, the error vector.
 * Reuses k_1 from the previous step when the solver is FSAL and the previous
 * step was accepted onto this y (nde_solver_accept); call
 * nde_solver_invalidate() whenever y changes otherwise. Returns the field's
 * status (NDE_ERETRY on non-finite stage values, so the caller can shrink h).
 */
NDE_API int nde_solver_step(nde_solver *s, const double *theta, double t,
                            double h, const double *y, double *y_next,
                            double *err);

/* Evaluate f(t, y) into the first stage of the next step and return it in
 * *f0 (valid until that step): what the initial-step heuristic needs, with
 * no evaluation wasted when the step from y follows. */
NDE_API int nde_solver_first_stage(nde_solver *s, const double *theta,
                                   double t, const double *y,
                                   const double **f0);

/* The last step was accepted: carry its FSAL stage into the next step. */
NDE_API void nde_solver_accept(nde_solver *s);
NDE_API void nde_solver_invalidate(nde_solver *s);

/* Dense output of the last step (taken from y with size h) at fraction
 * theta in [0, 1]. NDE_ECAPABILITY if the solver has none. */
NDE_API int nde_solver_dense(const nde_solver *s, const double *y, double h,
                             double theta, double *out);

/* Dense output of a recorded step: k holds its stages (stages x n, as
 * nde_trajectory.k), y its start state. */
NDE_API int nde_solver_dense_from(const nde_solver *s, const double *y,
                                  double h, const double *k, double theta,
                                  double *out);

/* Number of stages of a step (the size of a trajectory's k per step). */
NDE_API int nde_solver_stages(const nde_solver *s);

/* Copy the stages of the last step into k (stages x n values, the layout
 * of nde_trajectory.k), so that a caller replaying steps can keep their
 * dense output for nde_solver_dense_from. Valid until the next step. */
NDE_API void nde_solver_copy_stages(const nde_solver *s, double *k);

/* Stiffness estimate of the last step (y_next as returned by it); 0 when
 * the denominator vanishes. NDE_ECAPABILITY if the solver has none. */
NDE_API int nde_solver_stiffness(const nde_solver *s, const double *y_next,
                                 double *out);

/* Scaled RMS norm of err with scale atol + rtol max(|y|, |y_next|). */
NDE_API double nde_error_norm(const double *err, const double *y,
                              const double *y_next, size_t n, double rtol,
                              double atol);

/* A cotangent on the dense output y(t + theta h) of a step (n values). */
typedef struct nde_dense_cotangent {
    double theta;
    const double *g;
} nde_dense_cotangent;

/*
 * VJP of one step (t, y, h) -> (y_next, EEst, S, dense outputs), recomputing
 * the stages. Given cotangents ybar_next (n values, may be NULL), ebar on
 * EEst (computed with rtol/atol), sbar on S and ndc cotangents on dense
 * outputs inside the step (save points served by dense output), accumulate
 * ybar += and thetabar += (either may be NULL). h is a constant (no
 * gradient through step-size control). Counts its field evaluations and
 * VJPs in s->counts.
 */
NDE_API int nde_solver_step_vjp(nde_solver *s, const double *theta, double t,
                                double h, const double *y, double rtol,
                                double atol, const double *ybar_next,
                                double ebar, double sbar,
                                const nde_dense_cotangent *dc, size_t ndc,
                                double *ybar, double *thetabar);

/* The same for the step the last nde_solver_step call took (its theta, t,
 * h and y, which the caller must not have changed since), reusing its
 * stages instead of evaluating the field again. NDE_EINVAL when there is
 * no such step (none taken, or accepted since). */
NDE_API int nde_solver_last_step_vjp(nde_solver *s, double rtol, double atol,
                                     const double *ybar_next, double ebar,
                                     double sbar,
                                     const nde_dense_cotangent *dc, size_t ndc,
                                     double *ybar, double *thetabar);

/*
 * Solvers with ops (s->type->ops != NULL; the RK functions above return
 * NDE_ECAPABILITY for them, and these return it for tableau solvers).
 * aux arguments hold nde_solver_aux(s) x n values (may be NULL when that
 * is 0). See nde_solver_ops for the contracts.
 */
NDE_API int nde_solver_aux(const nde_solver *s);
NDE_API int nde_solver_is_sde(const nde_solver *s); /* NDE_CAP_SDE_* set */
NDE_API int nde_solver_start(nde_solver *s, const double *theta, double t0,
                             const double *y0, double *aux0);
NDE_API int nde_solver_advance(nde_solver *s, const double *theta, double t,
                               double h, const double *dw, const double *y,
                               const double *aux, double *y_next,
                               double *aux_next);
NDE_API int nde_solver_reverse(nde_solver *s, const double *theta, double t,
                               double h, const double *dw,
                               const double *y_next, const double *aux_next,
                               double *y, double *aux);
NDE_API int nde_solver_advance_vjp(nde_solver *s, const double *theta,
                                   double t, double h, const double *dw,
                                   const double *y, const double *aux,
                                   const double *ybar_next,
                                   const double *auxbar_next, double *ybar,
                                   double *auxbar, double *thetabar);
NDE_API int nde_solver_start_vjp(nde_solver *s, const double *theta, double t0,
                                 const double *y0, const double *auxbar0,
                                 double *ybar0, double *thetabar);

#ifdef __cplusplus
}
#endif
#endif
