/*
 * eest_vjp.h - the VJP of a step's error norm for the SDE solvers with
 * ops (sri.c, sra1.c; compiled into each, as sheun.c: plugins do not load
 * each other). The norm is nde_error_norm's over the whole state:
 *     EEst = sqrt(mean_m (err_m / sc_m)^2),
 *     sc_m = atol + rtol max(|y_m|, |y_next_m|)
 * and its derivative follows core's RK engine (core/rk.c): a tie in the
 * max goes to y, the sign of 0 is 0.
 */
#ifndef NDE_SOLVERS_EEST_VJP_H
#define NDE_SOLVERS_EEST_VJP_H

#include <stddef.h>

/* Cotangents of ebar EEst: errbar = d/d err (n values, overwritten; zero
 * when EEst = 0), and through the scale ybar += d/dy (ybar may be NULL),
 * ynbar += d/dy_next. */
void eest_vjp(size_t n, double ebar, double rtol, double atol,
              const double *err, const double *y, const double *y_next,
              double *errbar, double *ybar, double *ynbar);

#endif
