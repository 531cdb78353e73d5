/*
 * sheun.h - the stochastic Heun step (Ruemelin 1982, SIAM J. Numer. Anal.
 * 19(3)) for Stratonovich SDEs, shared by the heun and lamba_heun
 * solvers: sheun.c is compiled into each module (it is not a plugin, and
 * plugins do not load each other).
 *     y~ = y + f(t, y) h + g(t, y) dW                       (predictor)
 *     y_next = y + (f(t, y) + f(t + h, y~)) h / 2
 *                + (g(t, y) + g(t + h, y~)) dW / 2          (corrector)
 * g dW elementwise for diagonal noise, G dW for general noise (gnoise.h;
 * heun only: lamba_heun does not declare it).
 */
#ifndef NDE_SOLVERS_SHEUN_H
#define NDE_SOLVERS_SHEUN_H

#include "gnoise.h"

typedef struct sheun_work {
    double *f0, *g0;        /* drift and diffusion at (t, y)              */
    double *yt, *f1, *g1;   /* predictor and the field there               */
    double *ytbar;          /* cotangent on the predictor in the VJP       */
    double *f0bar, *g0bar;  /* cotangents on f(t, y), g(t, y) in the VJP   */
    double *gdw;            /* general noise: G(y) dW, used twice a step   */
    size_t gw;              /* values of g per state value (gnoise.h)    */
    double *block;
    double *extra;          /* a method built on this step may allocate its
                               own blocks here (lamba_heun's VJP); freed by
                               sheun_destroy                               */
} sheun_work;

/* The workspace in s->work (the solver's create and destroy ops). */
int sheun_create(nde_solver *s);
void sheun_destroy(nde_solver *s);

/* y_next of the step of size h from (t, y) with increment dw; two
 * evaluations. f0 and g0 at (t, y) stay in the workspace. */
int sheun_advance(nde_solver *s, const double *theta, double t, double h,
                  const double *dw, const double *y, double *y_next);

/* Reverse mode with cotangent yb on y_next (NULL: nothing to do):
 * ybar +=, thetabar += (either may be NULL); one evaluation (to rebuild
 * y~) and two VJPs of drift and diffusion. */
int sheun_vjp(nde_solver *s, const double *theta, double t, double h,
              const double *dw, const double *y, const double *yb,
              double *ybar, double *thetabar);

/* The same with further cotangents fb, gb on f(t, y) and g(t, y) (NULL:
 * none; yb may then be NULL too; gb has g's shape), from a method that
 * uses them besides the step (lamba_heun's error estimate): they join the
 * step's own before the one VJP of drift and diffusion at (t, y). */
int sheun_vjp_with(nde_solver *s, const double *theta, double t, double h,
                   const double *dw, const double *y, const double *yb,
                   const double *fb, const double *gb, double *ybar,
                   double *thetabar);

#endif
