/*
 * test_lhm.c - the lhm task (plugins/tasks/lhm.c) and the time-dependent
 * input it gives the field (nde/task.h version 5): its generated
 * concentrations against nde's own solve of the two-compartment model
 * under the input the task hands out, the partial observation, a short
 * `nde train` of the hybrid model (examples/lhm.ini, smaller), the whole
 * gradient through `nde gradcheck`, and the refusals of a field without
 * an input or a task without one.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "nde/nde.h"
#include "nde/task.h"
#include "nde/train.h"
#include "../test_util.h"

static char workdir[1024];

static void setup(void)
{
    test_workdir_make(workdir, sizeof workdir, "lhm");
}

static void teardown(void) { test_workdir_remove(workdir); }

#define run(...) test_run_nde(workdir, __VA_ARGS__, (const char *)NULL)

/* The expert PK model alone, dosed by the input: nde's solve of it. */
static const char pk_ini[] =
    "[field]\nplugin = expr\nstate = a1, a2\n"
    "params = k10=0.3, k12=0.2, k21=0.1\ninputs = dose\n"
    "da1 = dose - (k10 + k12)*a1 + k21*a2\nda2 = k12*a1 - k21*a2\n"
    "[solver]\nplugin = tsit5\nrtol = 1e-11\natol = 1e-11\n"
    "[data]\nsource = lhm\nntrain = 6\nntest = 2\nnpoints = 30\n";

/* With the patients' rate constants at their nominal values and no noise,
 * the observed concentration is the two-compartment model's a1 under the
 * doses the task hands the field: solved by nde, the same to 1e-8; every
 * value observed (p_obs = 1); and at p_obs = 0.5 about half. */
START_TEST(generator_against_solve)
{
    const size_t B = 4, D = 2;
    const nde_plugin_info *info;
    nde_ctx *ctx = nde_ctx_create();
    nde_config *cfg = nde_config_create();
    nde_field *f;
    nde_solver *s;
    nde_solve_opts o;
    nde_task *t;
    nde_task_batch b;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    const nde_task_type *type;
    double y0[8] = {0}, *ys, err = 0.0, seen = 0.0;
    int rc;

    ck_assert_int_eq(nde_config_load_string(cfg, "test", pk_ini, ctx), NDE_OK);
    ck_assert_int_eq(nde_config_override(cfg, "data.pk_sd=0", ctx), NDE_OK);
    ck_assert_int_eq(nde_config_override(cfg, "data.noise=0", ctx), NDE_OK);
    ck_assert_int_eq(nde_config_override(cfg, "data.p_obs=1", ctx), NDE_OK);
    ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_TASK, "lhm", &info),
                     NDE_OK);
    type = (const nde_task_type *)info;
    {
        const nde_key *const tables[] = {type->info.keys, NULL};
        ck_assert_int_eq(nde_section_check(nde_config_section(cfg, "data"),
                                           tables, ctx), NDE_OK);
    }
    ck_assert_int_eq(nde_field_create(ctx, cfg, "field", B, &f), NDE_OK);
    ck_assert_ptr_nonnull(t = calloc(1, sizeof *t));
    t->type = type;
    t->ctx = ctx;
    t->dim = D;
    t->rows = B;
    {
        const nde_task_env env = {cfg, f, 3};
        rc = type->create(t, nde_config_section(cfg, "data"), &env, ctx);
        ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    }
    ck_assert_ptr_nonnull(type->input);
    ck_assert_int_eq(nde_field_set_input(f, type->input(t)), NDE_OK);
    gsl_rng_set(rng, 5);
    {
        const nde_task_draw d = {0, 0, rng};
        ck_assert_int_eq(type->batch(t, &d, &b), NDE_OK);
    }
    ck_assert_int_eq(nde_solver_create(ctx, cfg, "solver", f, &s), NDE_OK);
    ck_assert_int_eq(nde_solver_set_batch(s, B), NDE_OK);
    ck_assert_int_eq(nde_solve_opts_from_section(
                         &o, s->type, nde_config_section(cfg, "solver"), ctx),
                     NDE_OK);
    ck_assert_ptr_nonnull(ys = malloc(b.nsave * B * D * sizeof *ys));
    {
        double theta[3] = {0.3, 0.2, 0.1};
        rc = nde_solve(s, &o, theta, b.t0, y0, b.tsave[b.nsave - 1],
                       b.nsave, b.tsave, ys, NULL);
        ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    }
    for (size_t r = 0; r < B; r++)
        for (size_t k = 0; k < b.nsave; k++) {
            const double *x = b.input + r * t->input_dim + k * 4;
            ck_assert_double_eq(x[2], 1.0);
            err = fmax(err, fabs(x[0] - ys[(k * B + r) * D]));
        }
    fprintf(stderr, "lhm: generated concentration vs nde's solve: %.2e\n",
            err);
    ck_assert_msg(err < 1e-8, "concentration off by %g", err);
    type->destroy(t);
    free(t);

    /* p_obs = 0.5: about half of 6 x 30 x 2 values observed */
    ck_assert_int_eq(nde_config_override(cfg, "data.p_obs=0.5", ctx), NDE_OK);
    ck_assert_ptr_nonnull(t = calloc(1, sizeof *t));
    t->type = type;
    t->ctx = ctx;
    t->dim = D;
    t->rows = B;
    {
        const nde_task_env env = {cfg, f, 3};
        const nde_task_draw d = {0, 0, rng};
        ck_assert_int_eq(type->create(t, nde_config_section(cfg, "data"),
                                      &env, ctx), NDE_OK);
        ck_assert_int_eq(type->batch(t, &d, &b), NDE_OK);
    }
    for (size_t r = 0; r < B; r++)
        for (size_t k = 0; k < b.nsave; k++)
            seen += b.input[r * t->input_dim + k * 4 + 2] +
                    b.input[r * t->input_dim + k * 4 + 3];
    seen /= (double)(B * b.nsave * 2);
    ck_assert_msg(seen > 0.35 && seen < 0.65, "observed fraction %g", seen);
    type->destroy(t);
    free(t);
    free(ys);
    nde_solver_destroy(s);
    nde_field_destroy(f);
    gsl_rng_free(rng);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
}
END_TEST

/* examples/lhm.ini, smaller: trains, and its held-out forecast error
 * falls from iteration 20 to 60. */
START_TEST(train_hybrid)
{
    char cfg[1024], path[2048];
    test_run_result r;
    char *m, *line;
    double first = NAN, last = NAN, v;
    int it;

    snprintf(cfg, sizeof cfg, "%s/examples/lhm.ini",
             getenv("NDE_SOURCE_ROOT"));
    r = run("train", cfg, "-s", "data.ntrain=10", "-s", "data.ntest=10", "-s",
            "train.iterations=60", "-s", "train.batch_size=5", "-s",
            "train.eval_every=20", "-s", "train.metrics=m.jsonl", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    snprintf(path, sizeof path, "%s/m.jsonl", workdir);
    ck_assert_ptr_nonnull(m = test_read_file(path, NULL));
    for (line = m; *line; line = strchr(line, '\n') + 1) {
        const char *tl = strstr(line, "\"test_loss\": ");
        if (tl && sscanf(tl, "\"test_loss\": %lf", &v) == 1 &&
            sscanf(line, "{\"iteration\": %d", &it) == 1) {
            if (isnan(first))
                first = v;
            last = v;
        }
        if (!strchr(line, '\n'))
            break;
    }
    free(m);
    fprintf(stderr, "lhm: test forecast MSE %g -> %g\n", first, last);
    ck_assert(isfinite(first) && isfinite(last));
    ck_assert_msg(last < first, "test MSE %g -> %g", first, last);
}
END_TEST

/* The whole gradient (the hybrid field's rate constants and network, the
 * encoder) against central differences, for two adjoints, and with
 * per-row steps (each row's adjoint reads its own input row). */
START_TEST(gradcheck)
{
    static const char *const runs[][2] = {
        {"adjoint.plugin=discrete", "solver.per_row_steps=false"},
        {"adjoint.plugin=interpolating", "solver.per_row_steps=false"},
        {"adjoint.plugin=discrete", "solver.per_row_steps=true"}};
    char cfg[1024];

    snprintf(cfg, sizeof cfg, "%s/examples/lhm.ini",
             getenv("NDE_SOURCE_ROOT"));
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        test_run_result r =
            run("gradcheck", cfg, "-s", runs[i][0], "-s", runs[i][1], "-s",
                "solver.rtol=1e-10", "-s", "solver.atol=1e-10", "-s",
                "train.batch_size=3", "-s", "data.ntrain=3", "-s",
                "data.ntest=3", "-s", "data.hidden=4", "-s",
                "field.latent.layers=6,8,6", "--nparams", "2000", "--tol",
                "1e-5");
        test_assert_code(r, 0);
        test_assert_contains(r.out, "k10");
        test_run_free(&r);
    }
}
END_TEST

/* A field that reads no input with this task, and a hybrid field whose
 * expert reads one with a task that gives none. */
START_TEST(input_refusals)
{
    char cfg[1024];
    test_run_result r;

    snprintf(cfg, sizeof cfg, "%s/examples/lhm.ini",
             getenv("NDE_SOURCE_ROOT"));
    r = run("train", cfg, "-s", "field.plugin=mlp", "-s",
            "field.layers=5,8,5", "-u", "field.expert", "-u", "field.neural",
            "-u", "field.neural_states");
    test_assert_code(r, 2);
    test_assert_contains(r.err, "task 'lhm' gives an input of 1 channel, "
                                "but [field] 'mlp' reads none");
    test_run_free(&r);
    r = run("train", cfg, "-s", "data.source=latent", "-s", "data.nobs=20",
            "-u", "data.prefix");
    test_assert_code(r, 2);
    test_assert_contains(r.err, "[field] 'hybrid' reads 1 input channel, but "
                                "task 'latent' gives no input");
    test_run_free(&r);
}
END_TEST

static Suite *lhm_suite(void)
{
    Suite *s = suite_create("lhm");
    TCase *tc = tcase_create("lhm");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, generator_against_solve);
    tcase_add_test(tc, train_hybrid);
    tcase_add_test(tc, gradcheck);
    tcase_add_test(tc, input_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lhm_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
