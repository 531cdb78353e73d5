/*
 * Controlled equations (nde/field.h, control_dim): noise channels driven
 * by the field's input instead of Brownian motion, on a field written
 * here with one state and two channels, a Brownian one and a control:
 *     dy = 0 dt + s y dW + c y dY,   theta = (s, c),
 * Y the input's first channel, linear between knots.
 *
 * - nde_input_increment against values by hand: inside a segment, across
 *   knots, before the first and after the last knot, reversed; a
 *   constant input and too many channels refused.
 * - nde_solver_noise: each row's Brownian increment is the path's (a path
 *   of batch x 1 channels, bit for bit) and the control's is Y's.
 * - With s = 0 the solve is the CDE dy = c y dY, exactly y0 exp(c (Y(1) -
 *   Y(0))) for any path Y (Stratonovich): heun and reversible_heun reach
 *   it at order 2 across the path's knots at 0.3 and 0.55.
 * - Refusals: a constant input; a plugin whose control_dim leaves no
 *   Brownian channel.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nde/nde.h"
#include "../ctx_fixture.h"

#define B 3

static size_t bad_control;  /* a control_dim for the refusal test, or 0 */

static int ctl_create(nde_field *f, nde_section *sec, nde_ctx *c)
{
    (void)sec;
    (void)c;
    f->dim = 1;
    f->nparams = 2;
    f->noise = NDE_NOISE_GENERAL;
    f->noise_dim = 2;
    f->control_dim = bad_control ? bad_control : 1;
    f->input_continuous = 1;
    f->ninputs = 1;
    return NDE_OK;
}

static void ctl_destroy(nde_field *f) { (void)f; }

static int ctl_init(nde_field *f, double *theta, uint64_t seed)
{
    (void)f;
    (void)seed;
    theta[0] = 0.0;
    theta[1] = 0.7;
    return NDE_OK;
}

static int ctl_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    (void)f;
    (void)t;
    (void)y;
    (void)theta;
    memset(dy, 0, batch * sizeof *dy);
    return NDE_OK;
}

static int ctl_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *vy,
                   double *vtheta, size_t batch)
{
    (void)f;
    (void)t;
    (void)y;
    (void)theta;
    (void)v;
    (void)vy;
    (void)vtheta;
    (void)batch;
    return NDE_OK;
}

static int ctl_diffusion(nde_field *f, double t, const double *y,
                         const double *theta, double *g, size_t batch)
{
    (void)f;
    (void)t;
    for (size_t r = 0; r < batch; r++) {
        g[2 * r] = theta[0] * y[r];
        g[2 * r + 1] = theta[1] * y[r];
    }
    return NDE_OK;
}

static int ctl_diffusion_vjp(nde_field *f, double t, const double *y,
                             const double *theta, const double *v,
                             double *vy, double *vtheta, size_t batch)
{
    (void)f;
    (void)t;
    for (size_t r = 0; r < batch; r++) {
        if (vy)
            vy[r] += v[2 * r] * theta[0] + v[2 * r + 1] * theta[1];
        if (vtheta) {
            vtheta[0] += v[2 * r] * y[r];
            vtheta[1] += v[2 * r + 1] * y[r];
        }
    }
    return NDE_OK;
}

static const nde_field_type ctl_type = {
    .info = NDE_FIELD_INFO(.name = "ctl",
                           .description = "dy = s y dW + c y dY (test)",
                           .provides = NDE_CAP_DIFFUSION, .version = "1"),
    .create = ctl_create,
    .destroy = ctl_destroy,
    .init_params = ctl_init,
    .eval = ctl_eval,
    .vjp = ctl_vjp,
    .diffusion = ctl_diffusion,
    .diffusion_vjp = ctl_diffusion_vjp,
};

/* Row r's path: Y at knots 0, 0.3, 0.55, 1 (a second channel that no
 * increment asked for one channel may read). */
static const double kt[4] = {0.0, 0.3, 0.55, 1.0};
static const double ku[B][8] = {{0.0, 9, 1.0, 9, -0.5, 9, 0.25, 9},
                                {0.2, 9, -0.4, 9, 0.6, 9, 0.6, 9},
                                {1.0, 9, 1.5, 9, 2.5, 9, 1.0, 9}};

static nde_input *make_input(int kind, size_t channels)
{
    nde_input *in;
    ck_assert_int_eq(nde_input_create(ctx, B, channels, 4, kind, &in),
                     NDE_OK);
    for (size_t r = 0; r < B; r++) {
        double u[8];
        for (size_t k = 0; k < 4; k++)
            for (size_t j = 0; j < channels; j++)
                u[k * channels + j] = ku[r][2 * k + j];
        ck_assert_int_eq(nde_input_set_row(in, r, 4, kt, u), NDE_OK);
    }
    ck_assert_int_eq(nde_input_use_rows(in, B), NDE_OK);
    return in;
}

/* Y of row r at t by hand. */
static double path(size_t r, double t)
{
    if (t <= kt[0])
        return ku[r][0];
    for (size_t k = 0; k + 1 < 4; k++)
        if (t <= kt[k + 1])
            return ku[r][2 * k] + (t - kt[k]) / (kt[k + 1] - kt[k]) *
                                      (ku[r][2 * k + 2] - ku[r][2 * k]);
    return ku[r][6];
}

START_TEST(test_increment)
{
    static const double span[][2] = {{0.1, 0.2},  {0.1, 0.7}, {-1.0, 0.4},
                                     {0.9, 3.0},  {0.8, 0.2}, {0.3, 0.55},
                                     {-2.0, -1.0}, {0.0, 1.0}};
    nde_input *in = make_input(NDE_INPUT_LINEAR, 2);
    nde_input_select(in, 0.6, 0.1); /* any selection: not read */
    for (size_t r = 0; r < B; r++)
        for (size_t q = 0; q < sizeof span / sizeof *span; q++) {
            double du[2] = {-7.0, -7.0};
            ck_assert_int_eq(nde_input_increment(in, r, span[q][0],
                                                 span[q][1], 1, du), NDE_OK);
            ck_assert_double_eq_tol(du[0], path(r, span[q][1]) -
                                              path(r, span[q][0]), 1e-15);
            ck_assert_double_eq(du[1], -7.0); /* one channel asked */
            ck_assert_int_eq(nde_input_increment(in, r, span[q][0],
                                                 span[q][1], 2, du), NDE_OK);
            ck_assert_double_eq(du[1], 0.0); /* the constant channel */
        }
    ck_assert_int_eq(nde_input_increment(in, 0, 0.0, 1.0, 3, (double[3]){0}),
                     NDE_EINVAL);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "at least the channels"),
                  "%s", nde_ctx_message(ctx));
    nde_input_destroy(in);
    in = make_input(NDE_INPUT_CONSTANT, 1);
    ck_assert_int_eq(nde_input_increment(in, 0, 0.0, 1.0, 1, (double[1]){0}),
                     NDE_EINVAL);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "constant input"), "%s",
                  nde_ctx_message(ctx));
    nde_input_destroy(in);
}
END_TEST

static nde_field *make_field(nde_input *in)
{
    nde_field *f;
    ck_assert_msg(nde_field_create_from(ctx, &ctl_type, NULL, B, &f) ==
                      NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert_uint_eq(nde_field_brownian_dim(f), 1);
    ck_assert_int_eq(nde_field_set_input(f, in), NDE_OK);
    return f;
}

static nde_solver *make_solver(const char *name, nde_field *f)
{
    nde_solver *s;
    int rc = nde_solver_create_from(
        ctx, (const nde_solver_type *)plugin(NDE_KIND_SOLVER, name), f, &s);
    ck_assert_msg(rc == NDE_OK, "%s: %s", name, nde_ctx_message(ctx));
    ck_assert_int_eq(nde_solver_set_batch(s, B), NDE_OK);
    return s;
}

START_TEST(test_noise_layout)
{
    nde_input *in = make_input(NDE_INPUT_LINEAR, 1);
    nde_field *f = make_field(in);
    nde_solver *s = make_solver("reversible_heun", f);
    nde_brownian *bm;
    double dw[2 * B], w[B];
    ck_assert_uint_eq(nde_solver_noise_channels(s), B);
    ck_assert_int_eq(nde_brownian_create(ctx, B, &bm), NDE_OK);
    ck_assert_int_eq(nde_brownian_reset(bm, 3, 0.0, 1.0, 0.125, B), NDE_OK);
    ck_assert_int_eq(nde_solver_noise(s, bm, 0.25, 0.375, dw), NDE_OK);
    ck_assert_int_eq(nde_brownian_increment(bm, 0.25, 0.375, w), NDE_OK);
    for (size_t r = 0; r < B; r++) {
        ck_assert(memcmp(&dw[2 * r], &w[r], sizeof *w) == 0);
        ck_assert_double_eq_tol(dw[2 * r + 1], path(r, 0.375) -
                                                   path(r, 0.25), 1e-15);
    }
    nde_brownian_destroy(bm);
    nde_solver_destroy(s);
    nde_field_destroy(f);
    nde_input_destroy(in);
}
END_TEST

/* The largest |y(1) - y0 exp(c (Y(1) - Y(0)))| over the rows at step
 * dt. */
static double cde_error(const char *solver, double dt)
{
    nde_input *in = make_input(NDE_INPUT_LINEAR, 1);
    nde_field *f = make_field(in);
    nde_solver *s = make_solver(solver, f);
    nde_brownian *bm;
    nde_solve_opts o;
    double theta[2], y0[B] = {1.0, -0.5, 2.0}, y1[B], worst = 0.0;
    ck_assert_int_eq(nde_field_init_params(f, theta, 1), NDE_OK);
    ck_assert_int_eq(nde_brownian_create(ctx, B, &bm), NDE_OK);
    ck_assert_int_eq(nde_brownian_reset(bm, 9, 0.0, 1.0, dt, B), NDE_OK);
    nde_solve_opts_default(&o, s->type);
    o.dt = dt;
    o.brownian = bm;
    ck_assert_msg(nde_solve(s, &o, theta, 0.0, y0, 1.0, 1, (double[]){1.0},
                            y1, NULL) == NDE_OK, "%s", nde_ctx_message(ctx));
    for (size_t r = 0; r < B; r++)
        worst = fmax(worst, fabs(y1[r] - y0[r] * exp(theta[1] *
                                                     (path(r, 1.0) -
                                                      path(r, 0.0)))));
    nde_brownian_destroy(bm);
    nde_solver_destroy(s);
    nde_field_destroy(f);
    nde_input_destroy(in);
    return worst;
}

START_TEST(test_cde_order)
{
    static const char *const solvers[] = {"heun", "reversible_heun"};
    for (size_t k = 0; k < 2; k++) {
        const double e1 = cde_error(solvers[k], 1.0 / 40);
        const double e2 = cde_error(solvers[k], 1.0 / 80);
        fprintf(stderr, "control noise: %s on dy = c y dY vs exact: %.2e "
                "at dt 1/40, %.2e at 1/80 (ratio %.2f)\n", solvers[k], e1,
                e2, e1 / e2);
        ck_assert_msg(e1 / e2 > 3.5 && e1 / e2 < 4.5 && e2 < 1e-3,
                      "%s: %.3e, %.3e", solvers[k], e1, e2);
    }
}
END_TEST

START_TEST(test_refusals)
{
    nde_input *in = make_input(NDE_INPUT_LINEAR, 1), *cin;
    nde_field *f = make_field(in), *bad = NULL;
    cin = make_input(NDE_INPUT_CONSTANT, 1);
    ck_assert_int_eq(nde_field_set_input(f, cin), NDE_EINVAL);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "must be linear"), "%s",
                  nde_ctx_message(ctx));
    ck_assert_ptr_eq(f->input, in);
    nde_input_destroy(cin);
    bad_control = 2; /* no Brownian channel left */
    ck_assert_int_eq(nde_field_create_from(ctx, &ctl_type, NULL, B, &bad),
                     NDE_EPLUGIN);
    bad_control = 0;
    ck_assert_ptr_null(bad);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "control_dim 2"), "%s",
                  nde_ctx_message(ctx));
    nde_field_destroy(f);
    nde_input_destroy(in);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("control_noise");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_increment);
    tcase_add_test(tc, test_noise_layout);
    tcase_add_test(tc, test_cde_order);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
