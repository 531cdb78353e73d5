/*
 * sde_fixture.h - what the SDE solver suites (test_sde.c, test_sri.c)
 * share besides their fields (sde_fields.h): the context fixture
 * (ctx_fixture.h), solvers found by name, fields and solvers created or
 * failing the test, and the least-squares slope the order measurements
 * fit, the VJP-against-central-difference check.
 */
#ifndef NDE_TESTS_SDE_FIXTURE_H
#define NDE_TESTS_SDE_FIXTURE_H

#include <check.h>
#include <math.h>

#include "nde/nde.h"
#include "ctx_fixture.h"

static const nde_solver_type *solver_named(const char *name)
{
    return (const nde_solver_type *)plugin(NDE_KIND_SOLVER, name);
}

static nde_field *make_field(const nde_field_type *ft, size_t batch_max)
{
    nde_field *f;
    int rc = nde_field_create_from(ctx, ft, NULL, batch_max, &f);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return f;
}

static nde_solver *make_solver(const char *name, nde_field *f)
{
    nde_solver *s;
    int rc = nde_solver_create_from(ctx, solver_named(name), f, &s);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return s;
}

/* Least-squares slope of log(e) against log(h). */
static double ls_slope(const double *h, const double *e, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        const double x = log(h[i]), y = log(e[i]);
        sx += x; sy += y; sxx += x * x; sxy += x * y;
    }
    return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

/* A VJP entry against its central difference, to 1e-7 relative. */
static void check_fd(const char *what, const char *solver, double analytic,
                     double fd)
{
    ck_assert_msg(fabs(analytic - fd) <= 1e-7 * (1.0 + fabs(fd)),
                  "%s %s: VJP %.12g vs central difference %.12g", solver,
                  what, analytic, fd);
}

#endif
