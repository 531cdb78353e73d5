/* Generic field object: composition from a config section, lifecycle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "internal.h"

const nde_key nde_field_keys[] = {
    {"calculus", NDE_KEY_WORD, "solver",
     "ito, stratonovich or solver: the SDE form the diffusion is written in "
     "(solver: whichever form the SDE solver integrates); only for fields "
     "with a diffusion"},
    {NULL, 0, NULL, NULL},
};

static const char *const calculus_names[] = {"solver", "ito", "stratonovich",
                                             NULL};

const char *nde_calculus_name(int calculus)
{
    if (calculus < NDE_CALCULUS_SOLVER || calculus > NDE_CALCULUS_STRATONOVICH)
        return "?";
    return calculus_names[calculus];
}

static int read_calculus(nde_section *sec, int *out, nde_ctx *ctx)
{
    const char *word, *guess;
    int rc;

    if ((rc = nde_get_string(sec, "calculus", &word, ctx)) != NDE_OK)
        return rc;
    for (int c = 0; calculus_names[c]; c++)
        if (strcmp(word, calculus_names[c]) == 0) {
            *out = c;
            return NDE_OK;
        }
    guess = nde_suggest(word, calculus_names);
    return nde_section_error(sec, "calculus", ctx,
                             "unknown calculus '%s'%s%s%s (expected ito, "
                             "stratonovich or solver)", word,
                             guess ? " (did you mean '" : "",
                             guess ? guess : "", guess ? "'?)" : "");
}

/* What create produced must match the section: a diffusion needs its ops,
 * and a calculus is only meaningful for a field with a diffusion. Sets
 * noise_dim for the fields that do not (all but general noise). */
static int check_noise(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    const char *name = f->type->info.name;

    if (f->noise != NDE_NOISE_NONE && f->noise != NDE_NOISE_DIAGONAL &&
        f->noise != NDE_NOISE_GENERAL)
        return nde_error(ctx, NDE_EPLUGIN,
                         "field plugin '%s' set an unknown noise type %d",
                         name, f->noise);
    if (f->noise == NDE_NOISE_GENERAL && f->noise_dim == 0)
        return nde_error(ctx, NDE_EPLUGIN,
                         "field plugin '%s' declares general noise but set "
                         "no noise_dim (the number of noise channels)", name);
    if (!f->type->eval_sde != !f->type->vjp_sde ||
        (f->type->eval_sde && f->noise == NDE_NOISE_NONE))
        return nde_error(ctx, NDE_EPLUGIN,
                         "field plugin '%s' offers %s without %s", name,
                         f->type->vjp_sde ? "vjp_sde" : "eval_sde",
                         f->noise == NDE_NOISE_NONE ? "a diffusion"
                         : f->type->vjp_sde ? "eval_sde" : "vjp_sde");
    if (f->noise != NDE_NOISE_NONE &&
        (!f->type->diffusion || !f->type->diffusion_vjp))
        return nde_error(ctx, NDE_EPLUGIN,
                         "field plugin '%s' declares a diffusion but lacks "
                         "the diffusion or diffusion_vjp operation", name);
    if (f->noise != NDE_NOISE_GENERAL)    /* channels per row (field.h) */
        f->noise_dim = f->noise == NDE_NOISE_DIAGONAL ? f->dim : 0;
    if (f->control_dim > 0 &&
        (f->noise != NDE_NOISE_GENERAL || f->control_dim >= f->noise_dim ||
         f->control_dim > f->ninputs))
        return nde_error(ctx, NDE_EPLUGIN,
                         "field plugin '%s' set control_dim %zu: expected "
                         "general noise with more channels (%zu) and at "
                         "least as many inputs (%zu)", name, f->control_dim,
                         f->noise_dim, f->ninputs);
    if (f->noise == NDE_NOISE_NONE && f->calculus != NDE_CALCULUS_SOLVER)
        return nde_section_error(sec, "calculus", ctx,
                                 "'%s' is set but this '%s' field has no "
                                 "diffusion (an ODE); remove the key or give "
                                 "the field a diffusion",
                                 nde_calculus_name(f->calculus), name);
    return NDE_OK;
}

/* The sections of the fields being created on this thread, outermost
 * first: a composite field (sum, second_order, a user's) whose parts lead
 * back to itself is refused instead of recursing without end. */
#define FIELD_NEST_MAX 32
static _Thread_local const nde_section *creating[FIELD_NEST_MAX];
static _Thread_local int ncreating;

int nde_field_create(nde_ctx *ctx, const nde_config *cfg, const char *section,
                     size_t batch_max, nde_field **out)
{
    nde_section *sec;
    const nde_plugin_info *info;
    int rc;

    *out = NULL;
    if ((rc = nde_config_require(cfg, section, &sec, ctx)) != NDE_OK)
        return rc;
    if ((rc = nde_section_plugin(ctx, sec, NDE_KIND_FIELD, &info)) != NDE_OK)
        return rc;
    for (int i = 0; i < ncreating; i++)
        if (creating[i] == sec)
            return nde_section_error(sec, "plugin", ctx,
                                     "this field is a part of itself (a "
                                     "cycle of composite fields)");
    if (ncreating == FIELD_NEST_MAX)
        return nde_section_error(sec, "plugin", ctx,
                                 "fields nested deeper than %d",
                                 FIELD_NEST_MAX);
    creating[ncreating++] = sec;
    rc = nde_field_create_from(ctx, (const nde_field_type *)info, sec,
                               batch_max, out);
    ncreating--;
    return rc;
}

int nde_field_create_from(nde_ctx *ctx, const nde_field_type *type,
                          nde_section *sec, size_t batch_max, nde_field **out)
{
    const nde_key *const tables[] = {nde_field_keys, type->info.keys, NULL};
    int calculus = NDE_CALCULUS_SOLVER;
    nde_field *f;
    int rc;

    *out = NULL;
    if (batch_max == 0)
        return nde_error(ctx, NDE_EINVAL, "field '%s': batch_max must be > 0",
                         type->info.name);
    if (!type->create || !type->destroy || !type->eval || !type->vjp ||
        !type->init_params)
        return nde_error(ctx, NDE_EPLUGIN,
                         "field plugin '%s' lacks a required operation "
                         "(create, destroy, init_params, eval, vjp)",
                         type->info.name);
    if (sec && ((rc = nde_section_check(sec, tables, ctx)) != NDE_OK ||
                (rc = read_calculus(sec, &calculus, ctx)) != NDE_OK))
        return rc;
    if (!(f = calloc(1, sizeof *f)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory creating field '%s'",
                         type->info.name);
    f->type = type;
    f->ctx = ctx;
    f->batch_max = batch_max;
    f->calculus = calculus;
    if ((rc = type->create(f, sec, ctx)) != NDE_OK ||
        (rc = check_noise(f, sec, ctx)) != NDE_OK) {
        nde_field_destroy(f);
        return rc;
    }
    if (f->dim == 0) {
        nde_field_destroy(f);
        return nde_error(ctx, NDE_EPLUGIN,
                         "field plugin '%s' created a field of dimension 0",
                         type->info.name);
    }
    *out = f;
    return NDE_OK;
}

void nde_field_destroy(nde_field *f)
{
    if (!f)
        return;
    f->type->destroy(f);
    free(f);
}

int nde_field_init_params(nde_field *f, double *theta, uint64_t seed)
{
    return f->type->init_params(f, theta, seed);
}

int nde_field_jvp(nde_field *f, double t, const double *y,
                  const double *theta, const double *v, double *jv,
                  size_t batch)
{
    if (!f->type->jvp)
        return nde_error(f->ctx, NDE_ECAPABILITY,
                         "field '%s' has no Jacobian-vector product (jvp)",
                         f->type->info.name);
    return f->type->jvp(f, t, y, theta, v, jv, batch);
}

int nde_field_jvp_vjp(nde_field *f, double t, const double *y,
                      const double *theta, const double *v, const double *w,
                      double *vy, double *vtheta, size_t batch)
{
    if (!f->type->jvp_vjp)
        return nde_error(f->ctx, NDE_ECAPABILITY,
                         "field '%s' has no second derivative (jvp_vjp)",
                         f->type->info.name);
    return f->type->jvp_vjp(f, t, y, theta, v, w, vy, vtheta, batch);
}

void nde_field_param_name(const nde_field *f, size_t i, char *buf, size_t len)
{
    if (f->type->param_name && f->type->param_name(f, i, buf, len) == NDE_OK)
        return;
    snprintf(buf, len, "theta[%zu]", i);
}

/* ---- a field from a plain function ------------------------------------- */

typedef struct rhs_state {
    nde_rhs_fn fn;
    void *user;
} rhs_state;

static int rhs_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec;
    if (!(f->state = calloc(1, sizeof(rhs_state))))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    f->dim = 1; /* nde_field_create_rhs sets the real one */
    return NDE_OK;
}

static void rhs_destroy(nde_field *f) { free(f->state); }

static int rhs_init(nde_field *f, double *theta, uint64_t seed)
{
    (void)f; (void)theta; (void)seed;
    return NDE_OK;
}

static int rhs_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    const rhs_state *r = f->state;
    (void)batch;
    return r->fn(r->user, t, y, theta, dy);
}

static int rhs_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *vy,
                   double *vtheta, size_t batch)
{
    (void)t; (void)y; (void)theta; (void)v; (void)vy; (void)vtheta;
    (void)batch;
    return nde_error(f->ctx, NDE_EFATAL, "a function field has no VJP");
}

static const nde_field_type rhs_type = {
    .info = NDE_FIELD_INFO(
        .name = "rhs",
        .description = "a plain function y' = fn(t, y) (built in)",
        .version = "1"),
    .create = rhs_create, .destroy = rhs_destroy, .init_params = rhs_init,
    .eval = rhs_eval, .vjp = rhs_vjp};

int nde_field_create_rhs(nde_ctx *ctx, size_t dim, nde_rhs_fn fn, void *user,
                         nde_field **out)
{
    rhs_state *r;
    int rc;

    if (dim == 0 || !fn)
        return nde_error(ctx, NDE_EINVAL, "function field: need dim > 0 "
                         "and a function");
    if ((rc = nde_field_create_from(ctx, &rhs_type, NULL, 1, out)))
        return rc;
    r = (*out)->state;
    r->fn = fn;
    r->user = user;
    (*out)->dim = dim;
    return NDE_OK;
}

/* ---- an intervention: states held constant ------------------------------ */

typedef struct clamp_state {
    nde_field *inner;
    unsigned char *held;    /* dim: 1 for a state whose derivative is 0   */
    double *v;              /* batch_max x dim: a cotangent without them  */
} clamp_state;

static int clamp_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec;
    if (!(f->state = calloc(1, sizeof(clamp_state))))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    f->dim = 1; /* nde_field_create_clamped sets the real one */
    return NDE_OK;
}

static void clamp_destroy(nde_field *f)
{
    clamp_state *c = f->state;

    if (c) {
        free(c->held);
        free(c->v);
        free(c);
    }
}

static int clamp_init(nde_field *f, double *theta, uint64_t seed)
{
    const clamp_state *c = f->state;
    return nde_field_init_params(c->inner, theta, seed);
}

static int clamp_param_name(const nde_field *f, size_t i, char *buf,
                            size_t len)
{
    const clamp_state *c = f->state;
    nde_field_param_name(c->inner, i, buf, len);
    return NDE_OK;
}

/* The held states' entries of out (batch x dim) set to 0. */
static void clamp_zero(const nde_field *f, double *out, size_t batch)
{
    const clamp_state *c = f->state;

    for (size_t i = 0; i < batch * f->dim; i++)
        if (c->held[i % f->dim])
            out[i] = 0.0;
}

/* v without the held states' entries, in c->v. */
static const double *clamp_cotangent(const nde_field *f, const double *v,
                                     size_t batch)
{
    const clamp_state *c = f->state;

    memcpy(c->v, v, batch * f->dim * sizeof *c->v);
    clamp_zero(f, c->v, batch);
    return c->v;
}

static int clamp_eval(nde_field *f, double t, const double *y,
                      const double *theta, double *dy, size_t batch)
{
    const clamp_state *c = f->state;
    int rc = nde_field_eval(c->inner, t, y, theta, dy, batch);

    clamp_zero(f, dy, batch);
    return rc;
}

static int clamp_vjp(nde_field *f, double t, const double *y,
                     const double *theta, const double *v, double *vy,
                     double *vtheta, size_t batch)
{
    const clamp_state *c = f->state;
    return nde_field_vjp(c->inner, t, y, theta, clamp_cotangent(f, v, batch),
                         vy, vtheta, batch);
}

static int clamp_jvp(nde_field *f, double t, const double *y,
                     const double *theta, const double *u, double *out,
                     size_t batch)
{
    const clamp_state *c = f->state;
    int rc = nde_field_jvp(c->inner, t, y, theta, u, out, batch);

    clamp_zero(f, out, batch);
    return rc;
}

static int clamp_diffusion(nde_field *f, double t, const double *y,
                           const double *theta, double *g, size_t batch)
{
    const clamp_state *c = f->state;
    int rc = nde_field_diffusion(c->inner, t, y, theta, g, batch);

    clamp_zero(f, g, batch);
    return rc;
}

static int clamp_diffusion_vjp(nde_field *f, double t, const double *y,
                               const double *theta, const double *v,
                               double *vy, double *vtheta, size_t batch)
{
    const clamp_state *c = f->state;
    return nde_field_diffusion_vjp(c->inner, t, y, theta,
                                   clamp_cotangent(f, v, batch), vy, vtheta,
                                   batch);
}

static const nde_field_type clamp_type = {
    .info = NDE_FIELD_INFO(
        .name = "do",
        .description = "a field with some states held constant (built in)",
        .version = "1"),
    .create = clamp_create, .destroy = clamp_destroy,
    .init_params = clamp_init, .param_name = clamp_param_name,
    .eval = clamp_eval, .vjp = clamp_vjp, .jvp = clamp_jvp,
    .diffusion = clamp_diffusion, .diffusion_vjp = clamp_diffusion_vjp};

int nde_field_create_clamped(nde_ctx *ctx, nde_field *inner,
                             const unsigned char *held, nde_field **out)
{
    clamp_state *c;
    int rc;

    *out = NULL;
    if (!inner || !held)
        return nde_error(ctx, NDE_EINVAL, "clamped field: need a field and "
                         "its held states");
    if (inner->noise == NDE_NOISE_GENERAL)
        return nde_error(ctx, NDE_ECAPABILITY, "clamped field: '%s' has "
                         "general noise (noise_dim = %zu), which holding "
                         "states does not support (diagonal noise only)",
                         inner->type->info.name, inner->noise_dim);
    if ((rc = nde_field_create_from(ctx, &clamp_type, NULL, inner->batch_max,
                                    out)))
        return rc;
    c = (*out)->state;
    c->inner = inner;
    c->held = malloc(inner->dim);
    c->v = malloc(inner->batch_max * inner->dim * sizeof *c->v);
    if (!c->held || !c->v) {
        nde_field_destroy(*out);
        *out = NULL;
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    }
    memcpy(c->held, held, inner->dim);
    (*out)->dim = inner->dim;
    (*out)->nparams = inner->nparams;
    (*out)->state_names = inner->state_names;
    (*out)->noise = inner->noise;
    (*out)->noise_dim = inner->noise_dim;
    (*out)->calculus = inner->calculus;
    (*out)->input = inner->input;
    return NDE_OK;
}

/* ---- time-dependent inputs (nde/input.h) -------------------------------- */

int nde_field_set_input(nde_field *f, nde_input *in)
{
    if (in && f->ninputs != nde_input_channels(in))
        return nde_error(f->ctx, NDE_EINVAL, "field '%s' reads %zu input "
                         "channel%s, the input has %zu",
                         f->type->info.name, f->ninputs,
                         f->ninputs == 1 ? "" : "s", nde_input_channels(in));
    if (in && f->control_dim > 0 && nde_input_kind(in) != NDE_INPUT_LINEAR)
        return nde_error(f->ctx, NDE_EINVAL, "field '%s' is driven by its "
                         "input's increments (control_dim %zu): the input "
                         "must be linear, not constant",
                         f->type->info.name, f->control_dim);
    f->input = in;
    return NDE_OK;
}
