/*
 * The density task (plugins/tasks/density.c) and its toy densities
 * (density_data.c, compiled in here): the closed-form log-densities
 * integrate to 1; through the trainer, the flow y' = a y (the cnf around
 * linear A = a I) has the test NLL 0.5 e^{2a t1} |x|^2 + log(2 pi) -
 * 2 a t1 at every test point x (a = 0: the standard Gaussian's NLL of
 * the data), under the exact trace and Hutchinson's with Rademacher
 * probes (e^T e = 2 exactly); and the discrete gradient of the batch
 * loss of a cnf around an mlp matches central differences.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "density_data.h"
#include "nde/nde.h"
#include "nde/train.h"

static nde_ctx *ctx;
static nde_config *cfg;

static void setup(void)
{
    ctx = nde_ctx_create();
    cfg = nde_config_create();
}

static void teardown(void)
{
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
}

static nde_trainer *trainer_of(const char *text)
{
    nde_trainer *tr = NULL;
    ck_assert_int_eq(nde_config_load_string(cfg, "density.ini", text, ctx),
                     NDE_OK);
    ck_assert_msg(nde_trainer_create(ctx, cfg, 0, &tr) == NDE_OK, "%s",
                  nde_ctx_message(ctx));
    return tr;
}

/* The integral of p over [-6, 6]^2 by the midpoint rule. */
START_TEST(closed_forms_integrate_to_one)
{
    static const int kinds[] = {DENSITY_EIGHT_GAUSSIANS,
                                DENSITY_CHECKERBOARD};
    const int k = kinds[_i];
    const double h = 0.01;
    double sum = 0.0;

    ck_assert(density_has_log_pdf(k));
    for (double x = -6.0 + h / 2; x < 6.0; x += h)
        for (double y = -6.0 + h / 2; y < 6.0; y += h) {
            const double p[2] = {x, y};
            sum += exp(density_log_pdf(k, p)) * h * h;
        }
    ck_assert_msg(fabs(sum - 1.0) < 1e-3, "%s: integral %.6f",
                  density_names[k], sum);

    /* every sample lies where the density is positive */
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    double x[2000];
    density_sample(k, r, 1000, x);
    for (size_t i = 0; i < 1000; i++)
        ck_assert(isfinite(density_log_pdf(k, x + 2 * i)));
    gsl_rng_free(r);
}
END_TEST

#define N_TRAIN 50
#define N_TEST 40

static const char scaling_ini[] =
    "[solver]\nplugin = dopri5\nrtol = 1e-10\natol = 1e-10\n"
    "[field]\nplugin = cnf\ninner = a\ntrace = %s\n"
    "[field.a]\nplugin = linear\nA = %g, 0, 0, %g\n"
    "[adjoint]\nplugin = interpolating\n"
    "[data]\nsource = density\ndensity = two_moons\nn_train = %d\n"
    "n_test = %d\nt1 = 0.7\n"
    "[train]\niterations = 1\nbatch_size = 16\nseed = 3\n";

START_TEST(scaling_flow_nll)
{
    static const struct {
        const char *trace;
        double a;
    } runs[] = {{"exact", 0.0}, {"exact", -0.4}, {"hutchinson", 0.3}};
    const double t1 = 0.7, a = runs[_i].a;
    char text[512];
    double x[2 * (N_TRAIN + N_TEST)], want = 0.0;
    nde_eval_result e;

    snprintf(text, sizeof text, scaling_ini, runs[_i].trace, a, a, N_TRAIN,
             N_TEST);
    nde_trainer *tr = trainer_of(text);
    ck_assert_int_eq(nde_trainer_evaluate(tr, &e), NDE_OK);

    /* the task's points: the same stream, training points first */
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, nde_seed_derive(3, NDE_STREAM_NOISE));
    density_sample(DENSITY_TWO_MOONS, r, N_TRAIN + N_TEST, x);
    gsl_rng_free(r);
    for (size_t i = N_TRAIN; i < N_TRAIN + N_TEST; i++) {
        const double *p = x + 2 * i;
        want += (0.5 * exp(2.0 * a * t1) * (p[0] * p[0] + p[1] * p[1]) +
                 log(2.0 * M_PI) - 2.0 * a * t1) / N_TEST;
    }
    ck_assert_msg(fabs(e.test_loss - want) < 1e-8,
                  "%s a = %g: test NLL %.12g, expected %.12g",
                  runs[_i].trace, a, e.test_loss, want);
    nde_trainer_destroy(tr);
}
END_TEST

static const char gradient_ini[] =
    "[solver]\nplugin = rk4\ndt = 0.125\n"
    "[field]\nplugin = cnf\ninner = net\ntrace = %s\n"
    "[field.net]\nplugin = mlp\nlayers = 2, 6, 2\nactivation = %s\n"
    "time = true\n"
    "[adjoint]\nplugin = discrete\n"
    "[data]\nsource = density\ndensity = %s\nn_train = 64\nn_test = 8\n"
    "probe = %s\n"
    "[train]\niterations = 1\nbatch_size = 8\nseed = 5\n";

/* Every parameter: |fd - grad| <= 1e-6 max(1, |grad|). */
START_TEST(discrete_gradient_against_differences)
{
    static const char *const runs[][4] = {
        {"exact", "tanh", "eight_gaussians", "rademacher"},
        {"hutchinson", "softplus", "pinwheel", "gaussian"},
    };
    char text[768];
    double loss, lp, lm, scale = 0.0;
    nde_stats st;

    snprintf(text, sizeof text, gradient_ini, runs[_i][0], runs[_i][1],
             runs[_i][2], runs[_i][3]);
    nde_trainer *tr = trainer_of(text);
    const size_t P = nde_trainer_nparams(tr);
    double *theta = malloc(P * sizeof *theta), *g = malloc(P * sizeof *g);
    memcpy(theta, nde_trainer_params(tr), P * sizeof *theta);
    for (size_t k = 0; k < P; k++)
        theta[k] += 0.1 * sin(3.0 * (double)k + 1.0); /* biases not 0 */
    ck_assert_int_eq(nde_trainer_probe(tr), NDE_OK);
    ck_assert_int_eq(nde_trainer_loss_grad(tr, NULL, theta, &loss, g, &st),
                     NDE_OK);
    ck_assert(isfinite(loss));
    for (size_t k = 0; k < P; k++) {
        const double keep = theta[k], h = 1e-5 * (1.0 + fabs(keep));
        theta[k] = keep + h;
        ck_assert_int_eq(
            nde_trainer_loss_grad(tr, NULL, theta, &lp, NULL, &st), NDE_OK);
        theta[k] = keep - h;
        ck_assert_int_eq(
            nde_trainer_loss_grad(tr, NULL, theta, &lm, NULL, &st), NDE_OK);
        theta[k] = keep;
        const double fd = (lp - lm) / (2.0 * h);
        ck_assert_msg(fabs(fd - g[k]) <= 1e-6 * fmax(1.0, fabs(g[k])),
                      "%s: grad[%zu] = %.12g, differences %.12g",
                      runs[_i][0], k, g[k], fd);
        scale = fmax(scale, fabs(g[k]));
    }
    ck_assert(scale > 0.0);
    free(theta);
    free(g);
    nde_trainer_destroy(tr);
}
END_TEST

/* Bad configs name the key. */
START_TEST(bad_input)
{
    static const char *const bad[][2] = {
        {"[field]\nplugin = mlp\nlayers = 2, 4, 2\n[data]\nsource = density\n",
         "dim 3: a cnf with trace = exact"},
        {"[field]\nplugin = cnf\ninner = a\n[field.a]\nplugin = linear\n"
         "A = 1\n[data]\nsource = density\n", "not dim 2"},
        {"[field]\nplugin = cnf\ninner = a\n[field.a]\nplugin = linear\n"
         "A = 1, 0, 0, 1\n[data]\nsource = density\ndensity = moons\n",
         "[data] density: unknown 'moons'"},
        {"[field]\nplugin = cnf\ninner = a\n[field.a]\nplugin = linear\n"
         "A = 1, 0, 0, 1\n[data]\nsource = density\nprobe = rademacer\n",
         "did you mean 'rademacher'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nde_config *c = nde_config_create();
        nde_trainer *tr = NULL;
        char text[512];
        snprintf(text, sizeof text, "%s[train]\nbatch_size = 4\n"
                 "[solver]\nplugin = tsit5\n[adjoint]\nplugin = "
                 "backsolve\n", bad[i][0]);
        ck_assert_int_eq(nde_config_load_string(c, "bad.ini", text, ctx),
                         NDE_OK);
        ck_assert_int_ne(nde_trainer_create(ctx, c, 0, &tr), NDE_OK);
        ck_assert_msg(strstr(nde_ctx_message(ctx), bad[i][1]),
                      "got '%s', expected '%s'", nde_ctx_message(ctx),
                      bad[i][1]);
        nde_config_destroy(c);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("density");
    TCase *tc = tcase_create("density");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, closed_forms_integrate_to_one, 0, 2);
    tcase_add_loop_test(tc, scaling_flow_nll, 0, 3);
    tcase_add_loop_test(tc, discrete_gradient_against_differences, 0, 2);
    tcase_add_test(tc, bad_input);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
