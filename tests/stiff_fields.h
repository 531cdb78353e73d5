/*
 * stiff_fields.h - stiff test problems shared by tests/solvers/test_rodas.c
 * and bench/stiff.c. Header-only: everything is static and marked unused.
 */
#ifndef NDE_TESTS_STIFF_FIELDS_H
#define NDE_TESTS_STIFF_FIELDS_H

#include <stddef.h>

/* E5 (stiff DETEST, Enright et al. 1975; problem E5 of the IVP test set
 * of Mazzia and Magherini, e5.f): chemical pyrolysis, no parameters, y3'
 * written as y2' - y4' as there, which keeps the invariant y2 - y3 - y4
 * in the field's own arithmetic. J row-major, its row 2 as row 1 minus
 * row 3 likewise. */
#define E5_A 7.89e-10
#define E5_B 1.1e7
#define E5_CM 1.13e9
#define E5_C 1.13e3

static __attribute__((unused)) void e5_rhs(const double *y, double *dy)
{
    const double p1 = E5_A * y[0], p2 = E5_B * y[0] * y[2];
    const double p3 = E5_CM * y[1] * y[2], p4 = E5_C * y[3];
    dy[0] = -p1 - p2;
    dy[1] = p1 - p3;
    dy[3] = p2 - p4;
    dy[2] = dy[1] - dy[3];
}

static __attribute__((unused)) void e5_jac(const double *y, double *J)
{
    J[0] = -E5_A - E5_B * y[2]; J[1] = 0.0; J[2] = -E5_B * y[0]; J[3] = 0.0;
    J[4] = E5_A; J[5] = -E5_CM * y[2]; J[6] = -E5_CM * y[1]; J[7] = 0.0;
    J[12] = E5_B * y[2]; J[13] = 0.0; J[14] = E5_B * y[0]; J[15] = -E5_C;
    for (int j = 0; j < 4; j++)
        J[8 + j] = J[4 + j] - J[12 + j];
}

/* jv = J u for each of batch rows of d <= 8 values, J row-major from
 * jac(y): the JVP of a field given by its Jacobian. */
static __attribute__((unused)) void
stiff_jvp(void (*jac)(const double *y, double *J), size_t d, const double *y,
          const double *u, double *jv, size_t batch)
{
    double J[64];

    for (size_t r = 0; r < batch; r++) {
        jac(y + r * d, J);
        for (size_t i = 0; i < d; i++) {
            double v = 0.0;
            for (size_t j = 0; j < d; j++)
                v += J[i * d + j] * u[r * d + j];
            jv[r * d + i] = v;
        }
    }
}

#endif
