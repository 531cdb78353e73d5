/*
 * Second derivatives and the cnf field. The jvp of mlp, linear and
 * galerkin against central differences of eval, their jvp_vjp against
 * central differences of w . jvp in y and theta (several activations, time
 * input on and off, the cube input, galerkin's weights of t); cnf's
 * Hutchinson estimate against its exact trace in expectation; cnf's
 * refusals. cnf's VJP itself is checked against differences by the
 * conformance suite (test_fields.c).
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nde/nde.h>

static nde_ctx *ctx;
static uint64_t rng_state;

static void setup(void) { ctx = nde_ctx_create(); }
static void teardown(void) { nde_ctx_destroy(ctx); }

/* Uniform in [-1, 1). */
static double uniform(void)
{
    uint64_t u = nde_seed_derive(0xc0f, rng_state++);
    return 2.0 * ((double)(u >> 11) * 0x1.0p-53) - 1.0;
}

static nde_field *field_of(const char *text, size_t batch)
{
    nde_config *cfg = nde_config_create();
    nde_field *f = NULL;
    ck_assert_int_eq(nde_config_load_string(cfg, "cnf.ini", text, ctx),
                     NDE_OK);
    ck_assert_msg(nde_field_create(ctx, cfg, "field", batch, &f) == NDE_OK,
                  "%s", nde_ctx_message(ctx));
    nde_config_destroy(cfg);
    return f;
}

static const char *const second_configs[] = {
    "[field]\nplugin = mlp\nlayers = 2, 9, 2\n",
    "[field]\nplugin = mlp\nlayers = 3, 8, 3\nactivation = softplus\n"
    "time = true\n",
    "[field]\nplugin = mlp\nlayers = 2, 7, 6, 2\nactivation = relu, tanh\n",
    "[field]\nplugin = mlp\nlayers = 2, 5, 2\nactivation = identity\n"
    "input = cube\ntime = true\n",
    "[field]\nplugin = mlp\nlayers = 3, 6, 5, 3\nactivation = tanh, softplus\n"
    "input = cube\nsoftplus = vector\n",
    "[field]\nplugin = mlp\nlayers = 4, 70, 4\nthin_width = 8\n",
    "[field]\nplugin = mlp\nlayers = 3, 8, 3\nactivation = lipswish\n"
    "time = true\n",
    "[field]\nplugin = mlp\nlayers = 2, 7, 6, 2\nactivation = lipswish, "
    "relu\noutput = tanh\ninput = cube\n",
    "[field]\nplugin = mlp\nlayers = 3, 6, 3\noutput = tanh\n"
    "activation = softplus\ndiffusion = tanh\nnoise_dim = 2\n",
    "[field]\nplugin = linear\nA = 0.5, -1, 0.25, 1\nb = 1, 2\n",
    "[field]\nplugin = galerkin\nlayers = 2, 6, 5, 2\nbasis = poly\n"
    "modes = 3\n",
    "[field]\nplugin = galerkin\nlayers = 3, 7, 3\nbasis = fourier\n"
    "modes = 2\nperiod = 0.7\nactivation = relu\n",
    "[field]\nplugin = galerkin\nlayers = 2, 6, 5, 2\nbasis = squash\n",
};

/* sum over the batch of w . (J v) */
static double wjv(nde_field *f, double t, const double *y,
                  const double *theta, const double *v, const double *w,
                  double *jv, size_t n)
{
    double s = 0.0;
    ck_assert_int_eq(nde_field_jvp(f, t, y, theta, v, jv, n / f->dim),
                     NDE_OK);
    for (size_t k = 0; k < n; k++)
        s += w[k] * jv[k];
    return s;
}

START_TEST(jvp_and_jvp_vjp_against_differences)
{
    const size_t B = 3;
    const double t = 0.4;
    nde_field *f = field_of(second_configs[_i], B);
    const size_t d = f->dim, p = f->nparams, n = B * d;
    double *theta = malloc(p * sizeof *theta), *y = malloc(n * sizeof *y);
    double *v = malloc(n * sizeof *v), *w = malloc(n * sizeof *w);
    double *jv = malloc(n * sizeof *jv), *fp = malloc(n * sizeof *fp);
    double *fm = malloc(n * sizeof *fm), *vy = calloc(n, sizeof *vy);
    double *vth = calloc(p, sizeof *vth), *vy2 = calloc(n, sizeof *vy2);
    double *vth2 = calloc(p, sizeof *vth2), *yp = malloc(n * sizeof *yp);
    double scale = 0.0;

    rng_state = 7;
    ck_assert_int_eq(nde_field_init_params(f, theta, 3), NDE_OK);
    for (size_t k = 0; k < p; k++)
        theta[k] += 0.3 * uniform();
    for (size_t k = 0; k < n; k++) {
        y[k] = uniform();
        v[k] = uniform();
        w[k] = uniform();
    }

    /* J v against (f(y + h v) - f(y - h v)) / 2h */
    ck_assert_int_eq(nde_field_jvp(f, t, y, theta, v, jv, B), NDE_OK);
    {
        const double h = 1e-6;
        for (size_t k = 0; k < n; k++)
            yp[k] = y[k] + h * v[k];
        ck_assert_int_eq(nde_field_eval(f, t, yp, theta, fp, B), NDE_OK);
        for (size_t k = 0; k < n; k++)
            yp[k] = y[k] - h * v[k];
        ck_assert_int_eq(nde_field_eval(f, t, yp, theta, fm, B), NDE_OK);
        for (size_t k = 0; k < n; k++) {
            double fd = (fp[k] - fm[k]) / (2.0 * h);
            ck_assert_msg(fabs(fd - jv[k]) <= 1e-6 * fmax(1.0, fabs(jv[k])),
                          "config %d: jv[%zu] = %.12g, differences %.12g",
                          _i, k, jv[k], fd);
        }
    }

    /* w^T d(J v)/dy and /dtheta against differences of w . J v */
    ck_assert_int_eq(nde_field_jvp_vjp(f, t, y, theta, v, w, vy, vth, B),
                     NDE_OK);
    for (size_t k = 0; k < n + p; k++) {
        double *x = k < n ? &y[k] : &theta[k - n];
        const double got = k < n ? vy[k] : vth[k - n];
        const double keep = *x, h = 1e-5 * (1.0 + fabs(keep));
        *x = keep + h;
        double lp = wjv(f, t, y, theta, v, w, jv, n);
        *x = keep - h;
        double lm = wjv(f, t, y, theta, v, w, jv, n);
        *x = keep;
        double fd = (lp - lm) / (2.0 * h);
        ck_assert_msg(fabs(fd - got) <= 1e-6 * fmax(1.0, fabs(got)),
                      "config %d: %s[%zu] = %.12g, differences %.12g", _i,
                      k < n ? "vy" : "vtheta", k < n ? k : k - n, got, fd);
        scale = fmax(scale, fabs(got));
    }
    ck_assert(scale > 0.0);

    /* accumulates, and each output alone gives the same */
    memcpy(vy2, vy, n * sizeof *vy);
    ck_assert_int_eq(nde_field_jvp_vjp(f, t, y, theta, v, w, vy2, NULL, B),
                     NDE_OK);
    for (size_t k = 0; k < n; k++)
        ck_assert(fabs(vy2[k] - 2.0 * vy[k]) <= 1e-12 * (1.0 + fabs(vy[k])));
    ck_assert_int_eq(nde_field_jvp_vjp(f, t, y, theta, v, w, NULL, vth2, B),
                     NDE_OK);
    for (size_t k = 0; k < p; k++)
        ck_assert(fabs(vth2[k] - vth[k]) <= 1e-12 * (1.0 + fabs(vth[k])));

    nde_field_destroy(f);
    free(theta); free(y); free(v); free(w); free(jv); free(fp); free(fm);
    free(vy); free(vth); free(vy2); free(vth2); free(yp);
}
END_TEST

/*
 * At one z, N rows that differ only in their Rademacher probe: the mean of
 * the Hutchinson dl/dt is the exact one within 5 standard errors of the
 * estimate (the off-diagonal terms e_i e_j (J_ij + J_ji) are its only
 * noise), and far from it with the sign flipped. Likewise for the
 * gradient of the mean dl/dt in theta, whose estimate is unbiased too.
 */
START_TEST(hutchinson_mean_is_the_exact_trace)
{
    enum { N = 4000 };
    static const char net[] =
        "[field.net]\nplugin = mlp\nlayers = 2, 8, 2\ntime = true\n";
    char text[256];
    snprintf(text, sizeof text, "[field]\nplugin = cnf\ninner = net\n%s",
             net);
    nde_field *ex = field_of(text, 1);
    snprintf(text, sizeof text, "[field]\nplugin = cnf\ninner = net\n"
             "trace = hutchinson\n%s", net);
    nde_field *hu = field_of(text, N);
    const size_t p = ex->nparams;
    double *theta = malloc(p * sizeof *theta), y[3] = {0.3, -0.7, 0.0};
    double dy[3], c[3] = {0.0, 0.0, 1.0};
    double *yh = malloc(N * 5 * sizeof *yh), *dyh = malloc(N * 5 * sizeof *dyh);
    double *ch = calloc(N * 5, sizeof *ch), *gex = calloc(p, sizeof *gex);
    double *ghu = calloc(p, sizeof *ghu);
    double mean = 0.0, var = 0.0;

    ck_assert_int_eq(ex->dim, 3);
    ck_assert_int_eq(hu->dim, 5);
    ck_assert_int_eq(nde_field_init_params(ex, theta, 5), NDE_OK);
    ck_assert_int_eq(nde_field_eval(ex, 0.2, y, theta, dy, 1), NDE_OK);
    rng_state = 99;
    for (size_t r = 0; r < N; r++) {
        yh[r * 5] = y[0];
        yh[r * 5 + 1] = y[1];
        yh[r * 5 + 2] = 0.0;
        yh[r * 5 + 3] = uniform() < 0.0 ? -1.0 : 1.0;
        yh[r * 5 + 4] = uniform() < 0.0 ? -1.0 : 1.0;
        ch[r * 5 + 2] = 1.0 / N;
    }
    ck_assert_int_eq(nde_field_eval(hu, 0.2, yh, theta, dyh, N), NDE_OK);
    for (size_t r = 0; r < N; r++) {
        ck_assert_double_eq(dyh[r * 5], dy[0]);
        ck_assert_double_eq(dyh[r * 5 + 3], 0.0);
        mean += dyh[r * 5 + 2] / N;
    }
    for (size_t r = 0; r < N; r++)
        var += (dyh[r * 5 + 2] - mean) * (dyh[r * 5 + 2] - mean) / (N - 1);
    const double se = sqrt(var / N);
    ck_assert(se > 0.0);
    ck_assert_msg(fabs(mean - dy[2]) <= 5.0 * se,
                  "Hutchinson mean %.6g, exact %.6g (se %.2g)", mean, dy[2],
                  se);
    ck_assert_msg(fabs(mean + dy[2]) > 5.0 * se,
                  "the trace %.6g cannot tell a sign (se %.2g)", dy[2], se);

    /* d(dl/dt)/dtheta: exact against the mean of the estimates */
    ck_assert_int_eq(nde_field_vjp(ex, 0.2, y, theta, c, NULL, gex, 1),
                     NDE_OK);
    ck_assert_int_eq(nde_field_vjp(hu, 0.2, yh, theta, ch, NULL, ghu, N),
                     NDE_OK);
    double gscale = 0.0, gerr = 0.0;
    for (size_t k = 0; k < p; k++) {
        gscale = fmax(gscale, fabs(gex[k]));
        gerr = fmax(gerr, fabs(ghu[k] - gex[k]));
    }
    ck_assert(gscale > 0.0);
    ck_assert_msg(gerr <= 0.1 * gscale, "gradient: max error %.3g of %.3g",
                  gerr, gscale);

    nde_field_destroy(ex);
    nde_field_destroy(hu);
    free(theta); free(yh); free(dyh); free(ch); free(gex); free(ghu);
}
END_TEST

/* Around y' = A y: dl/dt = -tr A, and -e^T A e under hutchinson. */
START_TEST(cnf_linear_by_hand)
{
    static const char lin[] = "[field.a]\nplugin = linear\n"
                              "A = 0.5, -1, 0.25, 1\nb = 3, 4\n";
    char text[256];
    double theta[6], dy[10];
    const double y[10] = {1, 2, 7, 1, -1, 0.5, -2, 0, 2, 3};

    snprintf(text, sizeof text, "[field]\nplugin = cnf\ninner = a\n%s", lin);
    nde_field *ex = field_of(text, 2);
    ck_assert_int_eq(nde_field_init_params(ex, theta, 1), NDE_OK);
    ck_assert_int_eq(nde_field_eval(ex, 0.0, y, theta, dy, 1), NDE_OK);
    ck_assert_double_eq_tol(dy[0], 0.5 - 2 + 3, 1e-15);
    ck_assert_double_eq_tol(dy[1], 0.25 + 2 + 4, 1e-15);
    ck_assert_double_eq_tol(dy[2], -1.5, 1e-15);
    nde_field_destroy(ex);
    snprintf(text, sizeof text, "[field]\nplugin = cnf\ninner = a\n"
             "trace = hutchinson\n%s", lin);
    nde_field *hu = field_of(text, 2);
    ck_assert_int_eq(nde_field_eval(hu, 0.0, y, theta, dy, 2), NDE_OK);
    /* e = (1, -1): e^T A e = 0.5 + 1 + 1 - 0.25; e = (2, 3): 2 + 9 - 6 +
     * 1.5 */
    ck_assert_double_eq_tol(dy[2], -2.25, 1e-15);
    ck_assert_double_eq_tol(dy[7], -(2.0 + 9.0 - 6.0 + 1.5), 1e-15);
    ck_assert_double_eq(dy[3], 0.0);
    ck_assert_double_eq(dy[9], 0.0);
    nde_field_destroy(hu);
}
END_TEST

/* Refusals name the key and what was expected. */
START_TEST(cnf_bad_input)
{
    static const char *const bad[][2] = {
        {"[field]\nplugin = cnf\ninner = a\n[field.a]\nplugin = expr\n"
         "state = x\ndx = -x\n", "'expr' has no jvp_vjp"},
        {"[field]\nplugin = cnf\ninner = a\ntrace = hutchinsn\n[field.a]\n"
         "plugin = linear\nA = 1\n", "did you mean 'hutchinson'"},
        {"[field]\nplugin = cnf\ninner = b\n", "'b' has no section"},
        {"[field]\nplugin = cnf\ninner = a\n[field.a]\nplugin = mlp\n"
         "layers = 1, 3, 1\ndiffusion = softplus\n", "has a diffusion"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nde_config *cfg = nde_config_create();
        nde_field *f = NULL;
        ck_assert_int_eq(nde_config_load_string(cfg, "cnf.ini", bad[i][0],
                                                ctx), NDE_OK);
        ck_assert_int_ne(nde_field_create(ctx, cfg, "field", 2, &f), NDE_OK);
        ck_assert_ptr_null(f);
        ck_assert_msg(strstr(nde_ctx_message(ctx), bad[i][1]),
                      "got '%s', expected '%s'", nde_ctx_message(ctx),
                      bad[i][1]);
        nde_config_destroy(cfg);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cnf");
    TCase *tc = tcase_create("cnf");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, jvp_and_jvp_vjp_against_differences, 0,
                        sizeof second_configs / sizeof *second_configs);
    tcase_add_test(tc, hutchinson_mean_is_the_exact_trace);
    tcase_add_test(tc, cnf_linear_by_hand);
    tcase_add_test(tc, cnf_bad_input);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
