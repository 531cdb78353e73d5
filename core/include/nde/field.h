/*
 * nde/field.h - the vector-field interface: y' = f(t, y, theta).
 *
 * Arrays are row-major and batch-major: a state is batch x dim. The
 * parameters are one flat vector theta of length nparams owned by the caller
 * (solver, trainer), so optimizers, checkpoints and gradient checks are
 * generic.
 *
 * Lifecycle: nde_field_create() allocates the instance, checks the section's
 * keys against the descriptor, and calls type->create, which must allocate
 * every buffer eval/vjp need for up to batch_max rows and set dim and
 * nparams. eval and vjp never allocate. destroy must accept an instance whose
 * create failed half-way (state may be NULL or partly built).
 *
 * SDE fields (f->noise = NDE_NOISE_DIAGONAL, set by create) also provide a
 * diagonal diffusion: dy_i = f_i dt + g_i(t, y, theta) dW_i, one noise
 * channel per state, with its VJP. Which calculus the equations are written
 * in is the [field] key `calculus` (read by core, f->calculus): `ito`,
 * `stratonovich`, or `solver` (the default: the model is whatever the
 * chosen SDE solver integrates, the usual reading for a learned model).
 *
 * General noise (f->noise = NDE_NOISE_GENERAL and f->noise_dim = M >= 1,
 * both set by create; interface version 4): M noise channels per row,
 * dy_i = f_i dt + sum_k g_ik(t, y, theta) dW_k. The same two diffusion
 * ops then take the matrix: g is batch x dim x M (row-major: g_ik of row
 * r at g[(r dim + i) M + k]), and diffusion_vjp's cotangent v has that
 * shape too. Why the matrix rather than ops on the product g dW (as
 * torchsde's g_prod): reversible Heun reuses g(z) of one step in the
 * next, with the next step's dW, so the product would cost it a second
 * diffusion evaluation a step; Euler-Maruyama and Heun contract the
 * matrix themselves (O(dim M) a row, as the product would). Only solvers
 * that declare NDE_CAP_GENERAL_NOISE (nde/plugin.h) accept such a field.
 *
 * Status of eval/vjp: NDE_OK; NDE_ERETRY when the output is not finite (the
 * solve loop rejects the step and shrinks it); NDE_EFATAL to stop now (set a
 * message through f->ctx first).
 */
#ifndef NDE_FIELD_H
#define NDE_FIELD_H

#include <stdint.h>
#include "api.h"
#include "config.h"
#include "input.h"
#include "plugin.h"
#include "pool.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_field nde_field;

/* The interface version of nde_field_type (plugin.h): members are only
 * ever appended.
 *   1: create, destroy, init_params, eval, vjp, param_name, diffusion,
 *      diffusion_vjp
 *   2: jvp
 *   3: jvp_vjp
 *   4: no new op: f->noise may be NDE_NOISE_GENERAL, with f->noise_dim
 *      (the diffusion ops then take the dim x M matrix, see above)
 *   5: no new op: f->control_dim and f->input_continuous (controlled
 *      equations, see struct nde_field)
 *   6: eval_sde, vjp_sde
 *   7: no new op: f->quadrature (see struct nde_field) */
#define NDE_FIELD_VERSION 7

/* The descriptor's info: NDE_FIELD_INFO(.name = ..., .description = ...,
 * .keys, .provides, .version). */
#define NDE_FIELD_INFO(...)                                                  \
    NDE_PLUGIN_INFO_(NDE_KIND_FIELD, NDE_FIELD_VERSION, nde_field_type,       \
                     __VA_ARGS__)

typedef struct nde_field_type {
    nde_plugin_info info; /* kind NDE_KIND_FIELD; must be first */

    /* Read the section, set f->dim, f->nparams (and f->state_names if the
     * field names its states), allocate f->state. */
    int (*create)(nde_field *f, nde_section *sec, nde_ctx *ctx);
    void (*destroy)(nde_field *f);

    /* Write initial parameters into theta[0..nparams): values given in the
     * config, or random ones drawn from `seed` (same seed, same theta). */
    int (*init_params)(nde_field *f, double *theta, uint64_t seed);

    /* dy = f(t, y, theta) for `batch` rows (batch <= batch_max). */
    int (*eval)(nde_field *f, double t, const double *y, const double *theta,
                double *dy, size_t batch);

    /* Vector-Jacobian product at (t, y, theta) with cotangent v (batch x dim):
     * vy     += v^T df/dy      (batch x dim; row by row)
     * vtheta += v^T df/dtheta  (nparams; summed over the batch rows)
     * Either output may be NULL when not wanted. */
    int (*vjp)(nde_field *f, double t, const double *y, const double *theta,
               const double *v, double *vy, double *vtheta, size_t batch);

    /* Optional (may be NULL): a name for parameter i, for reports. */
    int (*param_name)(const nde_field *f, size_t i, char *buf, size_t len);

    /* SDE fields only (called when f->noise is set; may be NULL otherwise):
     * g = g(t, y, theta), batch x dim, the noise on state i being g_i dW_i;
     * and its VJP with cotangent v (batch x dim):
     * vy_j   += sum_i v_i dg_i/dy_j   (row by row)
     * vtheta += sum_i v_i dg_i/dtheta (summed over the rows)
     * Same status conventions as eval and vjp. */
    int (*diffusion)(nde_field *f, double t, const double *y,
                     const double *theta, double *g, size_t batch);
    int (*diffusion_vjp)(nde_field *f, double t, const double *y,
                         const double *theta, const double *v, double *vy,
                         double *vtheta, size_t batch);

    /* Version 2. Optional (may be NULL): the Jacobian-vector product
     * jv = (df/dy) v at (t, y, theta), batch x dim, row by row
     * (overwritten), for methods that need the Jacobian's action (implicit
     * solvers). Same status conventions as eval. */
    int (*jvp)(nde_field *f, double t, const double *y, const double *theta,
               const double *v, double *jv, size_t batch);

    /* Version 3. Optional (may be NULL): the VJP of the JVP, a second
     * derivative, for methods whose equations hold the Jacobian's action
     * (a continuous normalizing flow's trace). With a direction v and a
     * cotangent w (batch x dim), at (t, y, theta):
     * vy     += w^T d((df/dy) v)/dy      (batch x dim; row by row)
     * vtheta += w^T d((df/dy) v)/dtheta  (nparams; summed over the rows)
     * (the derivative in v is the vjp's w^T df/dy). Either output may be
     * NULL. Same status conventions as vjp. */
    int (*jvp_vjp)(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, const double *w,
                   double *vy, double *vtheta, size_t batch);

    /* Version 6. Optional (both or neither; SDE fields only): drift and
     * diffusion at one point in one call, dy as eval writes it and g as
     * diffusion does (torchsde's f_and_g), for a field whose two share
     * work; and their VJPs in one call, cotangent v on dy and vg on g,
     * vy and vtheta getting the sum of what vjp and diffusion_vjp would
     * add. Solvers that need both at a point call nde_field_eval_sde and
     * nde_field_vjp_sde, which fall back to the separate ops. Same status
     * conventions as eval and vjp. */
    int (*eval_sde)(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, double *g,
                    size_t batch);
    int (*vjp_sde)(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, const double *vg,
                   double *vy, double *vtheta, size_t batch);
} nde_field_type;

/* f->noise */
enum nde_noise { NDE_NOISE_NONE = 0, NDE_NOISE_DIAGONAL = 1,
                 NDE_NOISE_GENERAL = 2 /* interface version 4 */ };
/* f->calculus: the SDE form the equations are written in. */
enum nde_calculus {
    NDE_CALCULUS_SOLVER = 0,    /* whichever the SDE solver integrates     */
    NDE_CALCULUS_ITO,
    NDE_CALCULUS_STRATONOVICH
};

struct nde_field {
    const nde_field_type *type;
    nde_ctx *ctx;
    size_t batch_max;         /* set before create                     */
    size_t dim;               /* set by create                         */
    size_t nparams;           /* set by create                         */
    const char *const *state_names; /* dim names, or NULL; owned by state */
    int noise;                /* enum nde_noise, set by create          */
    int calculus;             /* enum nde_calculus, set by core         */
    void *state;              /* the plugin's own                      */

    /* Inputs (nde/input.h, NDE_INPUT_VERSION 1): appended members, so a
     * plugin built before them still loads (core allocates the struct).
     * A field that reads a time-dependent input u(t) sets ninputs (its
     * channels) in create and reads u through nde_input_value(f->input,
     * row, t, u) in eval and vjp, on the segment the driver selected for
     * the step (the contract is in nde/input.h). input is borrowed, set
     * by nde_field_set_input before a solve; a field with ninputs > 0
     * and no input fails with NDE_EINVAL. A field made of other fields
     * hands its input to the parts that read one (part->input =
     * f->input) before it calls them; a field that integrates another
     * one's system (an adjoint's augmented field, a clamped field)
     * carries the other's input, so its solve stops on the knots and
     * selects segments as the other's did. */
    size_t ninputs;           /* set by create; 0 = reads no input      */
    nde_input *input;         /* borrowed; NULL = none                   */

    /* Interface version 4 (general noise). Noise channels per row: M, set
     * by create with NDE_NOISE_GENERAL; core sets it to dim for diagonal
     * noise and leaves 0 for an ODE, so a Brownian path for a solve of
     * `batch` rows has batch x noise_dim channels either way. */
    size_t noise_dim;

    /* Interface version 5 (controlled equations), both set by create.
     * control_dim: with general noise, the last control_dim of a row's M
     * channels are not Brownian: their increment over a step [ta, tb] is
     * that of the input's first control_dim channels, u(tb) - u(ta) (the
     * dX of a controlled differential equation dy = f dt + g dX, the
     * input a NDE_INPUT_LINEAR path; nde_solver_noise fills them), so the
     * Brownian path has M - control_dim >= 1 channels a row
     * (nde_field_brownian_dim). A field reading its data path this way
     * needs no slope of it. input_continuous: 1 when eval and diffusion
     * are continuous in t across the input's knots (the field reads no
     * slope and no value that jumps there), so a solver may carry an
     * evaluation from one step into the next across a knot (reversible
     * Heun does; nde/input.h). */
    size_t control_dim;
    int input_continuous;

    /* Interface version 7. quadrature: the last `quadrature` values of
     * every row are quadratures, read by no derivative (the columns of
     * df/dy there are zero: an adjoint's parameter cotangent, an
     * accumulated cost), so an implicit solver needs J and W only over
     * the others and solves for the quadratures by substitution. Set by
     * create, or by the owner of a function field; at most dim (a larger
     * value is read as dim). A field that declares a quadrature whose
     * values some derivative reads gets wrong implicit steps. */
    size_t quadrature;

    /* The threads the field's kernels run on (nde/pool.h), set by create
     * (NULL: one thread) and freed by destroy; a field that integrates
     * another one's system may borrow the other's (an adjoint's augmented
     * field does). A solver may run its vector operations on them between
     * the field's calls, never during one: core's RK engine does on long
     * states. */
    nde_pool *pool;
};

/* Brownian channels a row of f's noise: noise_dim - control_dim (the
 * channels a solve's path needs per row, nde/brownian.h). */
static inline size_t nde_field_brownian_dim(const nde_field *f)
{
    return f->noise_dim - f->control_dim;
}

/* Create the field described by config section `section` (whose `plugin`
 * key names it). Used by the program and by composite fields (`sum`). */
NDE_API int nde_field_create(nde_ctx *ctx, const nde_config *cfg,
                             const char *section, size_t batch_max,
                             nde_field **out);
/* Same with a descriptor already at hand (tests, built-in use). */
NDE_API int nde_field_create_from(nde_ctx *ctx, const nde_field_type *type,
                                  nde_section *sec, size_t batch_max,
                                  nde_field **out);
NDE_API void nde_field_destroy(nde_field *f);

/* A field from a plain function, for a system a plugin integrates itself
 * (an adjoint's augmented state): one row of `dim` values, no parameters,
 * no VJP; fn gets the theta the solve was given. f->dim may be lowered
 * between solves (the solver's workspace was sized for `dim`). */
typedef int (*nde_rhs_fn)(void *user, double t, const double *y,
                          const double *theta, double *dy);
NDE_API int nde_field_create_rhs(nde_ctx *ctx, size_t dim, nde_rhs_fn fn,
                                 void *user, nde_field **out);

/* An intervention do(y_j = const) on `inner` (borrowed: it must outlive
 * the result): the same field with the derivatives, diffusions and
 * cotangents of the states j with held[j] != 0 set to 0 (dim flags,
 * copied), so a solve keeps those states at their initial values. The
 * parameters, names, noise and calculus are inner's; jvp_vjp is not
 * offered. */
NDE_API int nde_field_create_clamped(nde_ctx *ctx, nde_field *inner,
                                     const unsigned char *held,
                                     nde_field **out);

NDE_API int nde_field_init_params(nde_field *f, double *theta, uint64_t seed);

static inline int nde_field_eval(nde_field *f, double t, const double *y,
                                 const double *theta, double *dy, size_t batch)
{
    return f->type->eval(f, t, y, theta, dy, batch);
}

static inline int nde_field_vjp(nde_field *f, double t, const double *y,
                                const double *theta, const double *v,
                                double *vy, double *vtheta, size_t batch)
{
    return f->type->vjp(f, t, y, theta, v, vy, vtheta, batch);
}

/* The field's jvp; NDE_ECAPABILITY, naming the field, when it has none
 * (nor a plugin built against field interface version 1). */
NDE_API int nde_field_jvp(nde_field *f, double t, const double *y,
                          const double *theta, const double *v, double *jv,
                          size_t batch);

/* The field's jvp_vjp; NDE_ECAPABILITY, naming the field, when it has
 * none (nor a plugin built against field interface version 1 or 2). */
NDE_API int nde_field_jvp_vjp(nde_field *f, double t, const double *y,
                              const double *theta, const double *v,
                              const double *w, double *vy, double *vtheta,
                              size_t batch);

/* Diffusion and its VJP (only for f->noise != NDE_NOISE_NONE): batch x
 * dim values, or batch x dim x noise_dim with NDE_NOISE_GENERAL. */
static inline int nde_field_diffusion(nde_field *f, double t, const double *y,
                                      const double *theta, double *g,
                                      size_t batch)
{
    return f->type->diffusion(f, t, y, theta, g, batch);
}

static inline int nde_field_diffusion_vjp(nde_field *f, double t,
                                          const double *y, const double *theta,
                                          const double *v, double *vy,
                                          double *vtheta, size_t batch)
{
    return f->type->diffusion_vjp(f, t, y, theta, v, vy, vtheta, batch);
}

/* Drift and diffusion at one point: the field's eval_sde, else eval then
 * diffusion (which is skipped when eval fails or asks for a retry). */
static inline int nde_field_eval_sde(nde_field *f, double t, const double *y,
                                     const double *theta, double *dy,
                                     double *g, size_t batch)
{
    int rc;

    if (f->type->eval_sde)
        return f->type->eval_sde(f, t, y, theta, dy, g, batch);
    if ((rc = f->type->eval(f, t, y, theta, dy, batch)))
        return rc;
    return f->type->diffusion(f, t, y, theta, g, batch);
}

/* Both VJPs at one point (v on the drift, vg on the diffusion): the
 * field's vjp_sde, else vjp then diffusion_vjp. */
static inline int nde_field_vjp_sde(nde_field *f, double t, const double *y,
                                    const double *theta, const double *v,
                                    const double *vg, double *vy,
                                    double *vtheta, size_t batch)
{
    int rc;

    if (f->type->vjp_sde)
        return f->type->vjp_sde(f, t, y, theta, v, vg, vy, vtheta, batch);
    if ((rc = f->type->vjp(f, t, y, theta, v, vy, vtheta, batch)))
        return rc;
    return f->type->diffusion_vjp(f, t, y, theta, vg, vy, vtheta, batch);
}

/* Give f the input it reads (in may be NULL to take it away):
 * NDE_EINVAL, naming the field, when f reads no input or in has another
 * number of channels than f->ninputs. */
NDE_API int nde_field_set_input(nde_field *f, nde_input *in);

/* "ito", "stratonovich" or "solver". */
NDE_API const char *nde_calculus_name(int calculus);

/* The keys every [field] section accepts besides its plugin's (calculus). */
NDE_API extern const nde_key nde_field_keys[];

/* "a", "b", or "theta[17]" when the field has no names. */
NDE_API void nde_field_param_name(const nde_field *f, size_t i, char *buf,
                                  size_t len);

/* Derive an independent 64-bit seed for sub-component `index` (SplitMix64),
 * so composite fields seed their parts reproducibly. */
NDE_API uint64_t nde_seed_derive(uint64_t seed, uint64_t index);

#ifdef __cplusplus
}
#endif
#endif
