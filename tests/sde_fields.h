/*
 * sde_fields.h - test SDE fields and random numbers shared by the SDE
 * tests (tests/solvers/test_sde.c, test_heun.c,
 * tests/adjoints/test_sde_adjoints.c) and bench/sde.c. Header-only:
 * everything is static and marked unused, so a file includes it whole and
 * uses what it needs.
 */
#ifndef NDE_TESTS_SDE_FIELDS_H
#define NDE_TESTS_SDE_FIELDS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "nde/nde.h"

#define SF_UNUSED __attribute__((unused))

/* ------------------------------------------------------------------ */
/* Random numbers: SplitMix64 and Box-Muller (tests only); seed by     */
/* setting rng_state.                                                   */

static uint64_t rng_state SF_UNUSED;

static SF_UNUSED uint64_t splitmix(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform on (0, 1), never 0 or 1. */
static SF_UNUSED double uniform01(void)
{
    return ((double)(splitmix() >> 11) + 0.5) * 0x1.0p-53;
}

/* Standard normal. */
static SF_UNUSED double gauss(void)
{
    return sqrt(-2.0 * log(uniform01())) * cos(2.0 * M_PI * uniform01());
}

/* ------------------------------------------------------------------ */
/* Field plumbing: nothing to free; parameters start at zero (the      */
/* tests set theta themselves).                                         */

static SF_UNUSED void tf_destroy(nde_field *f) { (void)f; }

static SF_UNUSED int tf_init(nde_field *f, double *theta, uint64_t seed)
{
    (void)seed;
    for (size_t i = 0; i < f->nparams; i++)
        theta[i] = 0.0;
    return NDE_OK;
}

/* create: dim 1, 2 parameters, diagonal noise (GBM, OU). */
static SF_UNUSED int create_d1p2_diag(nde_field *f, nde_section *sec,
                                      nde_ctx *c)
{
    (void)sec; (void)c;
    f->dim = 1;
    f->nparams = 2;
    f->noise = NDE_NOISE_DIAGONAL;
    return NDE_OK;
}

/* create: dim 1, 2 parameters, no diffusion (an ODE). */
static SF_UNUSED int create_d1p2_ode(nde_field *f, nde_section *sec,
                                     nde_ctx *c)
{
    (void)sec; (void)c;
    f->dim = 1;
    f->nparams = 2;
    f->noise = NDE_NOISE_NONE;
    return NDE_OK;
}

/* create: dim 2, 4 parameters, diagonal noise (the nonlinear fields). */
static SF_UNUSED int create_d2p4_diag(nde_field *f, nde_section *sec,
                                      nde_ctx *c)
{
    (void)sec; (void)c;
    f->dim = 2;
    f->nparams = 4;
    f->noise = NDE_NOISE_DIAGONAL;
    return NDE_OK;
}

/* ------------------------------------------------------------------ */
/* GBM dX = th0 X dt + th1 X dW (Ito or Stratonovich, as the solver    */
/* reads it), per value, any dim.                                       */

/* Linear drift f = th0 y. */
static SF_UNUSED int gbm_eval(nde_field *f, double t, const double *y,
                              const double *th, double *dy, size_t batch)
{
    (void)t;
    for (size_t i = 0; i < batch * f->dim; i++)
        dy[i] = th[0] * y[i];
    return NDE_OK;
}

static SF_UNUSED int gbm_vjp(nde_field *f, double t, const double *y,
                             const double *th, const double *v, double *vy,
                             double *vth, size_t batch)
{
    (void)t;
    for (size_t i = 0; i < batch * f->dim; i++) {
        if (vy)
            vy[i] += v[i] * th[0];
        if (vth)
            vth[0] += v[i] * y[i];
    }
    return NDE_OK;
}

/* Multiplicative noise g = th1 y. */
static SF_UNUSED int gbm_g(nde_field *f, double t, const double *y,
                           const double *th, double *g, size_t batch)
{
    (void)t;
    for (size_t i = 0; i < batch * f->dim; i++)
        g[i] = th[1] * y[i];
    return NDE_OK;
}

static SF_UNUSED int gbm_gvjp(nde_field *f, double t, const double *y,
                              const double *th, const double *v, double *vy,
                              double *vth, size_t batch)
{
    (void)t;
    for (size_t i = 0; i < batch * f->dim; i++) {
        if (vy)
            vy[i] += v[i] * th[1];
        if (vth)
            vth[1] += v[i] * y[i];
    }
    return NDE_OK;
}

static const nde_field_type gbm_field SF_UNUSED = {
    .info = NDE_FIELD_INFO(
        .name = "gbm",
        .description = "test field",
        .version = "1"),
    .create = create_d1p2_diag, .destroy = tf_destroy, .init_params = tf_init,
    .eval = gbm_eval, .vjp = gbm_vjp, .diffusion = gbm_g,
    .diffusion_vjp = gbm_gvjp};

/* GBM's ODE twin: the drift th0 y without a diffusion. Named "mlp" (like
 * the mlp plugin without diffusion); test_sde quotes the name. */
static const nde_field_type ode_field SF_UNUSED = {
    .info = NDE_FIELD_INFO(
        .name = "mlp",
        .description = "test field",
        .version = "1"),
    .create = create_d1p2_ode, .destroy = tf_destroy, .init_params = tf_init,
    .eval = gbm_eval, .vjp = gbm_vjp};

/* ------------------------------------------------------------------ */
/* Nonlinear, coupled, time-dependent, dim 2, 4 parameters:            */
/*   f0 = th0 sin(y1) + th1 y0        f1 = th1 y0 y1 - th0 t            */
/*   g0 = th2 cos(y0) + th3 y1        g1 = th3 sin(y0 + y1) + 0.1 th2   */

static SF_UNUSED int nl_eval(nde_field *f, double t, const double *y,
                             const double *th, double *dy, size_t batch)
{
    (void)f;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r;
        dy[2 * r] = th[0] * sin(x[1]) + th[1] * x[0];
        dy[2 * r + 1] = th[1] * x[0] * x[1] - th[0] * t;
    }
    return NDE_OK;
}

static SF_UNUSED int nl_vjp(nde_field *f, double t, const double *y,
                            const double *th, const double *v, double *vy,
                            double *vth, size_t batch)
{
    (void)f;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r, *w = v + 2 * r;
        if (vy) {
            vy[2 * r] += w[0] * th[1] + w[1] * th[1] * x[1];
            vy[2 * r + 1] += w[0] * th[0] * cos(x[1]) + w[1] * th[1] * x[0];
        }
        if (vth) {
            vth[0] += w[0] * sin(x[1]) - w[1] * t;
            vth[1] += w[0] * x[0] + w[1] * x[0] * x[1];
        }
    }
    return NDE_OK;
}

static SF_UNUSED int nl_g(nde_field *f, double t, const double *y,
                          const double *th, double *g, size_t batch)
{
    (void)f; (void)t;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r;
        g[2 * r] = th[2] * cos(x[0]) + th[3] * x[1];
        g[2 * r + 1] = th[3] * sin(x[0] + x[1]) + 0.1 * th[2];
    }
    return NDE_OK;
}

static SF_UNUSED int nl_gvjp(nde_field *f, double t, const double *y,
                             const double *th, const double *v, double *vy,
                             double *vth, size_t batch)
{
    (void)f; (void)t;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r, *w = v + 2 * r;
        const double c = cos(x[0] + x[1]);
        if (vy) {
            vy[2 * r] += -w[0] * th[2] * sin(x[0]) + w[1] * th[3] * c;
            vy[2 * r + 1] += w[0] * th[3] + w[1] * th[3] * c;
        }
        if (vth) {
            vth[2] += w[0] * cos(x[0]) + 0.1 * w[1];
            vth[3] += w[0] * x[1] + w[1] * sin(x[0] + x[1]);
        }
    }
    return NDE_OK;
}

static const nde_field_type nl_field SF_UNUSED = {
    .info = NDE_FIELD_INFO(
        .name = "nonlinear",
        .description = "test field",
        .version = "1"),
    .create = create_d2p4_diag, .destroy = tf_destroy, .init_params = tf_init,
    .eval = nl_eval, .vjp = nl_vjp, .diffusion = nl_g,
    .diffusion_vjp = nl_gvjp};

#endif
