/*
 * Stochastic Heun (the trapezoidal predictor-corrector) for Stratonovich
 * SDEs with diagonal or general noise (Ruemelin 1982, SIAM J. Numer.
 * Anal. 19(3); the Heun scheme reversible Heun is measured against in
 * Kidger, Foster, Li, Lyons 2021, arXiv 2105.13493, Sec. 3):
 * the step of sheun.h. Strong order 0.5 for general noise, 1 for commutative (e.g. scalar) and
 * additive noise. No state besides y (aux = 0): two drift and diffusion
 * evaluations a step, where reversible Heun needs one. It is here as the
 * reference its cost is measured against (bench/sde.c).
 */
#include "sheun.h"

static int heun_step(nde_solver *s, const double *theta, double t, double h,
                     const double *dw, const double *y, const double *aux,
                     double *y_next, double *aux_next, double *err,
                     const nde_norm_spec *norm, double *eest)
{
    (void)aux; (void)aux_next; (void)err; (void)norm; (void)eest;
    return sheun_advance(s, theta, t, h, dw, y, y_next);
}

static int heun_step_vjp(nde_solver *s, const double *theta, double t,
                         double h, const double *dw, const double *y,
                         const double *aux, const nde_step_cotangent *ct,
                         double *ybar, double *auxbar, double *thetabar)
{
    (void)aux; (void)auxbar;
    return sheun_vjp(s, theta, t, h, dw, y, ct->y_next, ybar, thetabar);
}

static const nde_solver_type heun = {
    .info = NDE_SOLVER_INFO(
        .name = "heun",
        .description = "stochastic Heun (predictor-corrector) for "
                       "Stratonovich SDEs, fixed step (dt), two evaluations "
                       "a step; strong order 1 for commutative noise (each "
                       "g_i a function of y_i alone, or additive)",
        .provides = NDE_CAP_SDE_STRATONOVICH | NDE_CAP_STEP_VJP |
                    NDE_CAP_GENERAL_NOISE,
        .version = "1"),
    /* strong order x 2 (solver.h): 0.5 for general noise (1 for commutative
     * or additive noise) */
    .order = 1, .error_order = 0, .dense_order = 0,
    .ops = {.create = sheun_create, .destroy = sheun_destroy,
            .step = heun_step, .step_vjp = heun_step_vjp}};

NDE_MODULE(&heun.info);
