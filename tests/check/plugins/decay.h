/*
 * decay.h - y' = -y, right, with its VJP: the drift of the SDE plugins
 * whose deliberate bug is in their noise (gnoisevjp, badsde).
 */
#ifndef NDE_TESTS_CHECK_DECAY_H
#define NDE_TESTS_CHECK_DECAY_H

#include <nde/nde.h>

static int decay_eval(nde_field *f, double t, const double *y,
                      const double *theta, double *dy, size_t batch)
{
    (void)t;
    (void)theta;
    for (size_t i = 0; i < batch * f->dim; i++)
        dy[i] = -y[i];
    return NDE_OK;
}

static int decay_vjp(nde_field *f, double t, const double *y,
                     const double *theta, const double *v, double *vy,
                     double *vtheta, size_t batch)
{
    (void)t;
    (void)y;
    (void)theta;
    (void)vtheta;
    if (vy)
        for (size_t i = 0; i < batch * f->dim; i++)
            vy[i] -= v[i];
    return NDE_OK;
}

#endif
