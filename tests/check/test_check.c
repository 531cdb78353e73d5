/*
 * test_check.c - `nde check`: every shipped field, regularizer, solver and
 * task (the modules of the build tree, found by nde_plugin_foreach) passes its
 * conformance suite, with the keys of `keyed` below where it needs some
 * (a new plugin runs with its defaults and fails here until it is listed
 * or has them); the wrong plugins of plugins/ fail the check that catches
 * them; usage errors exit 2.
 */
#include <check.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "../test_util.h"

static char workdir[] = "/tmp/nde-test-check-XXXXXX";

/* Data for the tasks, written into workdir by main: a CSV of five short
 * series (one missing value) and an SDE model with its true system. */
static const char series_csv[] =
    "id,t,x,y\n"
    "a,0,1,0\na,0.5,0.8,0.4\na,1,0.5,0.7\n"
    "b,0,0,1\nb,0.25,-0.3,0.9\nb,1,,0.2\n"
    "c,0,2,0\nc,1,1,1\n"
    "d,0,1,1\nd,0.5,0.5,0.5\n"
    "e,0,-1,0\ne,2,0,-1\n";
/* Positive series for the log-normal likelihood (in standard units, so
 * that the checker's states in [-1, 1) are positive values). */
static const char positive_csv[] =
    "id,t,x,y\n"
    "a,0,5,4\na,0.5,5.5,4.2\na,1,6,4.1\n"
    "b,0,4,6\nb,0.5,4.4,5.9\nb,1,,5.5\n"
    "c,0,6,5\nc,1,6.5,4.5\n";
static const char moments_ini[] =
    "[solver]\nplugin = euler_maruyama\ndt = 0.05\n"
    "[field]\nplugin = mlp\nlayers = 1, 4, 1\ndiffusion = softplus\n"
    "[field.truth]\nplugin = expr\nstate = x\nparams = th=1.5, s=0.6\n"
    "dx = -th*x\ngx = s\n"
    "[data]\nsource = field\nsystem = field.truth\ny0 = 2\nnpoints = 11\n"
    "t1 = 1\npaths = 50\neval_paths = 10\n";
/* A hybrid field: a dosed expert (it reads an input) beside an mlp. */
static const char hybrid_ini[] =
    "[field]\nplugin = hybrid\nexpert = pk\nneural = net\n"
    "neural_states = 2\n"
    "[field.pk]\nplugin = expr\nstate = c\nparams = k=0.5\n"
    "inputs = dose\ndc = -k*c + dose\n"
    "[field.net]\nplugin = mlp\nlayers = 4, 6, 4\n";
/* A small SDE-GAN (the sde_gan field and task read each other). */
static const char sde_gan_ini[] =
    "[field]\nplugin = sde_gan\ngenerator = gen\ndiscriminator = disc\n"
    "[field.gen]\nplugin = mlp\nlayers = 2, 4, 2\ntime = true\n"
    "diffusion = tanh\nnoise_dim = 2\n"
    "[field.disc]\nplugin = mlp\nlayers = 2, 4, 2\ntime = true\n"
    "diffusion = tanh\nnoise_dim = 2\n"
    "[data]\nsource = sde_gan\npaths = 32\ntest_paths = 8\nmmd_paths = 4\n"
    "t_size = 5\nwidth = 3\n";
#define FASHION_MNIST "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

/* Plugins that need keys, or have variants worth a run: one entry per run
 * (no arguments: the defaults). */
typedef struct keyed {
    const char *kind, *name;
    const char *args[13]; /* 12 and the NULL that ends them */
} keyed;

static const keyed keyed_runs[] = {
    {"field", "mlp", {"-s", "field.layers=2,8,2"}},
    {"field", "mlp", {"-s", "field.layers=2,8,2", "-s",
                      "field.diffusion=softplus"}},
    {"field", "mlp", {"-s", "field.layers=2,8,2", "-s",
                      "field.diffusion=sigmoid", "-s", "field.noise_dim=3"}},
    {"field", "expr", {"-s", "field.state=x,y", "-s", "field.params=a=1.5,b=1",
                       "-s", "field.dx=a*x-b*x*y", "-s", "field.dy=x*y-y",
                       "-s", "field.gx=b*x*x"}},
    {"field", "galerkin", {"-s", "field.layers=2,8,2"}},
    {"field", "galerkin", {"-s", "field.layers=3,6,5,3", "-s",
                           "field.basis=poly", "-s", "field.modes=3", "-s",
                           "field.activation=relu"}},
    {"field", "galerkin", {"-s", "field.layers=2,7,6,2", "-s",
                           "field.basis=squash"}},
    {"field", "ngm", {"-s", "field.dim=3"}},
    {"field", "linear", {"-s", "field.A=-0.5,1,-1,-0.5", "-s",
                         "field.b=0.1,0.2"}},
    {"field", "linear", {"-s", "field.A=-0.5,1,-1,-0.5", "-s",
                         "field.noise_dim=3", "-s",
                         "field.B=0.3,-0.2,0.1,0.25,-0.15,0.2,0.35,-0.1,"
                         "0.05,0.3,-0.25,0.2", "-s",
                         "field.C=0.1,-0.05,0.2,0.15,0.1,-0.2"}},
    {"field", "sum", {"-s", "field.parts=p,q", "-s", "field.p.plugin=linear",
                      "-s", "field.p.A=-0.5,1,-1,-0.5", "-s",
                      "field.q.plugin=mlp", "-s", "field.q.layers=2,4,2"}},
    {"field", "second_order", {"-s", "field.inner=a", "-s",
                               "field.a.plugin=mlp", "-s",
                               "field.a.layers=4,6,4"}},
    {"field", "controlled", {"-s", "field.inner=g", "-s",
                             "field.controls=2", "-s", "field.g.plugin=mlp",
                             "-s", "field.g.layers=4,6,4"}},
    {"field", "cnf", {"-s", "field.inner=a", "-s", "field.a.plugin=mlp", "-s",
                      "field.a.layers=2,6,2"}},
    {"field", "cnf", {"-s", "field.inner=a", "-s", "field.trace=hutchinson",
                      "-s", "field.a.plugin=mlp", "-s",
                      "field.a.layers=2,6,2"}},
    {"field", "hybrid", {"-c", "hybrid.ini"}},
    {"field", "sde_gan", {"-c", "sde_gan.ini"}},
    {"task", "sde_gan", {"-c", "sde_gan.ini"}},
    {"field", "hybrid", {"-s", "field.expert=a", "-s", "field.neural=a", "-s",
                         "field.neural_states=1", "-s",
                         "field.expert_reads=all", "-s", "field.a.plugin=mlp",
                         "-s", "field.a.layers=2,4,2"}},
    {"regularizer", "steer", {"-s", "regularizer.steer.b=0.25"}},
    {"regularizer", "local", {NULL}},
    {"regularizer", "local", {"-s", "regularizer.local.through_state=true"}},
    {"regularizer", "local", {"-s", "regularizer.local.sampling=biased"}},
    {"regularizer", "group_lasso", {NULL}},
    {"regularizer", "group_lasso", {"-s", "regularizer.group_lasso.prox=false"}},
    {"regularizer", "global", {NULL}},
    {"regularizer", "global", {"-s", "regularizer.global.measure=stiffness"}},
    /* its Newton iterations to round-off: the order check's fixed steps
     * run at rtol = atol = 1, which would set their tolerance */
    {"solver", "kvaerno5", {"-s", "solver.newton_tol=1e-14"}},
    /* its rodas5p part (the plain run checks the tsit5 one) */
    {"solver", "autoswitch", {"-s", "solver.stiff_first=true"}},
    {"task", "windows", {NULL}},
    {"task", "windows", {"-s", "field.layers=2,4,2"}}, /* the mlp's keys */
    {"task", "windows", {"-s", "data.source=field", "-s", "field.plugin=linear",
                         "-s", "field.A=-0.5,1,-1,-0.5", "-s", "data.y0=1,0",
                         "-s", "data.npoints=50"}},
    {"task", "moments", {"-c", "moments.ini"}},
    {"task", "series", {"-s", "data.path=series.csv"}},
    {"task", "series", {"-s", "data.path=series.csv", "-s",
                        "data.learn_y0=true", "-s", "data.normalize=standard",
                        "-s", "data.test_fraction=0"}},
    {"task", "series", {"-s", "data.path=series.csv", "-s",
                        "data.likelihood=gaussian", "-s",
                        "data.learn_y0=true", "-s", "data.test_fraction=0"}},
    {"task", "series", {"-s", "data.path=positive.csv", "-s",
                        "data.likelihood=lognormal", "-s",
                        "data.normalize=standard", "-s",
                        "data.test_fraction=0"}},
    {"task", "series", {"-s", "data.path=positive.csv", "-s",
                        "data.likelihood=lognormal", "-s",
                        "data.normalize=log", "-s", "data.learn_y0=true",
                        "-s", "data.test_fraction=0"}},
    {"task", "classify", {"-s", "data.limit=32", "-s", "data.test_limit=8"}},
    {"task", "density", {"-s", "field.plugin=cnf", "-s", "field.inner=a",
                         "-s", "field.a.plugin=mlp", "-s",
                         "field.a.layers=2,6,2", "-s", "data.n_train=64"}},
    {"task", "density", {"-s", "field.plugin=cnf", "-s", "field.inner=a",
                         "-s", "field.trace=hutchinson", "-s",
                         "field.a.plugin=linear", "-s", "field.a.A=1,0,0,1",
                         "-s", "data.density=checkerboard"}},
    {"task", "points", {NULL}},  /* lift = identity on the 2-8-2 model */
    {"task", "points", {"-s", "field.layers=3,8,3", "-s", "data.lift=zeros"}},
    {"task", "points", {"-s", "field.layers=3,8,3", "-s", "data.lift=linear"}},
    {"task", "points", {"-s", "field.layers=3,8,3", "-s", "data.lift=zeros",
                        "-s", "data.readout=first"}},
    {"task", "points", {"-s", "field.layers=3,8,3", "-s", "data.lift=mlp",
                        "-s", "data.lift_hidden=5"}},
    {"task", "points", {"-s", "field.plugin=controlled", "-s", "field.inner=g",
                        "-s", "field.controls=2", "-s", "field.g.plugin=mlp",
                        "-s", "field.g.layers=4,8,4", "-s",
                        "data.control=true"}},
};

static test_run_result run_check(const char *kind, const char *name,
                                 const char *const *args)
{
    const char *argv[TEST_RUN_MAX_ARGS + 1];
    size_t n = 0;

    argv[n++] = "check";
    argv[n++] = kind;
    argv[n++] = name;
    for (; args && *args && n < TEST_RUN_MAX_ARGS; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    /* test_run_nde takes its arguments as varargs */
    return test_run_nde(workdir, argv[0], argv[1], argv[2], argv[3], argv[4],
                        argv[5], argv[6], argv[7], argv[8], argv[9],
                        argv[10], argv[11], argv[12], argv[13], argv[14],
                        NULL);
}

static void expect_pass(const char *kind, const char *name,
                        const char *const *args)
{
    test_run_result r = run_check(kind, name, args);
    ck_assert_msg(r.code == 0 && strstr(r.out, " 0 failed\n"),
                  "nde check %s %s: exit %d\n%s%s", kind, name, r.code, r.out,
                  r.err);
    ck_assert_msg(!strstr(r.out, "FAIL"), "%s", r.out);
    test_run_free(&r);
}

typedef struct shipped {
    const char *root;
    size_t runs;
} shipped;

static int check_one(const nde_plugin_info *info, const char *path,
                     void *user)
{
    shipped *s = user;
    const char *kind = nde_kind_name(info->kind);
    int listed = 0;

    if (strncmp(path, s->root, strlen(s->root)) != 0 ||
        info->kind == NDE_KIND_ADJOINT)
        return 0;
    if (info->kind == NDE_KIND_TASK && strcmp(info->name, "classify") == 0 &&
        access(FASHION_MNIST, R_OK) != 0) {
        printf("check: classify skipped (no %s)\n", FASHION_MNIST);
        s->runs++;
        return 0;
    }
    for (size_t i = 0; i < sizeof keyed_runs / sizeof *keyed_runs; i++)
        if (strcmp(keyed_runs[i].kind, kind) == 0 &&
            strcmp(keyed_runs[i].name, info->name) == 0) {
            expect_pass(kind, info->name, keyed_runs[i].args);
            listed = 1;
            s->runs++;
        }
    if (!listed) {
        expect_pass(kind, info->name, NULL);
        s->runs++;
    }
    return 0;
}

START_TEST(every_shipped_plugin_passes)
{
    nde_ctx *ctx = nde_ctx_create();
    shipped s = {getenv("NDE_BUILD_ROOT"), 0};

    ck_assert_ptr_nonnull(s.root);
    unsetenv("NDE_PLUGIN_PATH");
    ck_assert_int_eq(nde_plugin_foreach(ctx, check_one, NULL, &s), 0);
    /* 4 fields, 5 regularizers, 8 solvers, 4 tasks at least */
    ck_assert_uint_ge(s.runs, 21);
    nde_ctx_destroy(ctx);
}
END_TEST

/* A wrong plugin exits 1 with a FAIL on `line`. */
static void expect_fail_args(const char *kind, const char *name,
                             const char *const *args, const char *line)
{
    test_run_result r;
    const char *l;

    setenv("NDE_PLUGIN_PATH", getenv("NDE_CHECK_BAD_DIR"), 1);
    r = run_check(kind, name, args);
    unsetenv("NDE_PLUGIN_PATH");
    test_assert_code(r, 1);
    ck_assert_msg((l = strstr(r.out, line)) != NULL, "no '%s' in:\n%s", line,
                  r.out);
    {
        /* the result column: FAIL, or FAIL (why it could not run) */
        const char *bol = l, *eol = strchr(l, '\n'), *f;
        while (bol > r.out && bol[-1] != '\n')
            bol--;
        f = strstr(bol, "  FAIL");
        ck_assert_msg(f && f < eol, "'%s' does not fail:\n%s", line, r.out);
    }
    test_run_free(&r);
}

static void expect_fail(const char *kind, const char *name, const char *line)
{
    expect_fail_args(kind, name, NULL, line);
}

START_TEST(assigning_vjp_fails)
{
    expect_fail("field", "assignvjp", "drift vjp y accumulated");
    expect_fail("field", "assignvjp", "drift vjp theta accumulated");
}
END_TEST

START_TEST(coupled_rows_fail)
{
    expect_fail("field", "coupledrows", "drift rows independent");
}
END_TEST

/* The cotangent of a general-noise diffusion is batch x dim x M. */
START_TEST(general_noise_vjp_fails)
{
    expect_fail("field", "gnoisevjp", "diffusion vjp y accumulated");
    expect_fail("field", "gnoisevjp", "diffusion vjp theta accumulated");
}
END_TEST

/* eval_sde and vjp_sde must agree with the separate operations. */
START_TEST(both_at_once_disagreeing_fails)
{
    expect_fail("field", "badsde", "eval_sde against eval and diffusion");
    expect_fail("field", "badsde", "vjp_sde against vjp + diffusion_vjp");
}
END_TEST

/* A declared quadrature must be read by no derivative; the same plugin
 * with the declaration true passes. */
START_TEST(quadrature_read_fails)
{
    static const char *const honest[] = {"-s", "field.reads=false", NULL};

    expect_fail("field", "badquad", "quadratures read by no derivative");
    setenv("NDE_PLUGIN_PATH", getenv("NDE_CHECK_BAD_DIR"), 1);
    expect_pass("field", "badquad", honest);
    unsetenv("NDE_PLUGIN_PATH");
}
END_TEST

START_TEST(wrong_regularizer_gradient_fails)
{
    expect_fail("regularizer", "badgrad", "gradient vs differences");
}
END_TEST

/* badtask: one bug per run, caught by its own line (and no other). */
START_TEST(wrong_task_fails)
{
    static const struct {
        const char *bug, *line, *clean;
    } runs[] = {
        {"data.bug=loss", "loss dL/dy vs differences", "readout vjp y"},
        {"data.bug=readout", "readout vjp y accumulated", "loss dL/dy"},
        {"data.bug=lift", "lift vjp theta accumulated", "readout vjp theta"},
        {"data.bug=saves", "batches within the declared sizes",
         "sizes its ops can honour"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        const char *const args[] = {"-s", runs[i].bug, NULL};
        test_run_result r;
        const char *l, *pass;

        expect_fail_args("task", "badtask", args, runs[i].line);
        setenv("NDE_PLUGIN_PATH", getenv("NDE_CHECK_BAD_DIR"), 1);
        r = run_check("task", "badtask", args);
        unsetenv("NDE_PLUGIN_PATH");
        ck_assert_ptr_nonnull(l = strstr(r.out, runs[i].clean));
        pass = strstr(l, "PASS");
        ck_assert_msg(pass && pass < strchr(l, '\n'), "%s", r.out);
        test_run_free(&r);
    }
}
END_TEST

START_TEST(overclaimed_order_fails)
{
    expect_fail("solver", "badorder", "does not have the declared order 2");
    expect_fail("solver", "badorderops", "order: declared - observed");
}
END_TEST

START_TEST(same_seed_same_report)
{
    const char *const args[] = {"-s", "field.layers=2,8,2", "--seed", "7",
                                NULL};
    test_run_result a = run_check("field", "mlp", args);
    test_run_result b = run_check("field", "mlp", args);
    test_assert_code(a, 0);
    ck_assert_str_eq(a.out, b.out);
    test_assert_contains(a.out, "(seed 7)");
    test_run_free(&a);
    test_run_free(&b);
}
END_TEST

static void expect_usage(const char *kind, const char *name,
                         const char *const *args, const char *message)
{
    test_run_result r = run_check(kind, name, args);
    test_assert_code(r, 2);
    test_assert_contains(r.err, message);
    ck_assert_str_eq(r.out, "");
    test_run_free(&r);
}

START_TEST(usage_errors)
{
    const char *const bad_key[] = {"-s", "field.layers=2,8,2", "-s",
                                   "field.bogus=1", NULL};
    const char *const bad_seed[] = {"--seed", "x", NULL};
    test_run_result r;

    expect_usage("fild", "mlp", NULL, "unknown kind 'fild'; did you mean "
                                      "'field'?");
    expect_usage("adjoint", "discrete", NULL, "no conformance suite for "
                                              "adjoint");
    expect_usage("field", "nosuch", NULL, "no field plugin named 'nosuch'");
    expect_usage("field", "mlp", NULL, "[field] layers: missing required key");
    expect_usage("field", "mlp", bad_key, "[field] bogus: unknown key");
    expect_usage("field", "mlp", bad_seed, "--seed needs a non-negative");
    expect_usage("regularizer", "steer", NULL, "b: missing required key");
    {
        const char *const spiral[] = {"-s", "data.source=spiral", NULL};
        const char *const ode[] = {"-s", "data.bogus=1", NULL};
        expect_usage("task", "series", spiral, "[data] source: 'spiral' is "
                                               "not a source of task "
                                               "'series'");
        expect_usage("task", "windows", ode, "[data] bogus: unknown key");
        expect_usage("task", "moments", NULL, "the field has no diffusion");
        expect_usage("task", "series", NULL, "[data] path: source = csv "
                                             "needs the file's path");
        expect_usage("task", "nosuch", NULL, "no task plugin named 'nosuch'");
    }
    r = test_run_nde(workdir, "check", "field", NULL);
    test_assert_code(r, 2);
    test_assert_contains(r.err, "a kind and a plugin name are needed");
    test_run_free(&r);
    r = test_run_nde(workdir, "check", "--help", NULL);
    test_assert_code(r, 0);
    test_assert_contains(r.out, "Usage: nde check KIND NAME");
    test_run_free(&r);
}
END_TEST

/* text into workdir/name; 0 or -1 */
static int write_file(const char *name, const char *text)
{
    char path[256];
    FILE *f;
    int rc;

    snprintf(path, sizeof path, "%s/%s", workdir, name);
    if (!(f = fopen(path, "w")))
        return -1;
    rc = fputs(text, f) < 0;
    return fclose(f) != 0 || rc ? -1 : 0;
}

int main(void)
{
    Suite *s = suite_create("check");
    TCase *tc = tcase_create("check");
    SRunner *sr;
    int failed;

    if (!mkdtemp(workdir) || write_file("series.csv", series_csv) ||
        write_file("positive.csv", positive_csv) ||
        write_file("moments.ini", moments_ini) ||
        write_file("hybrid.ini", hybrid_ini) ||
        write_file("sde_gan.ini", sde_gan_ini)) {
        perror(workdir);
        return EXIT_FAILURE;
    }
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, every_shipped_plugin_passes);
    tcase_add_test(tc, assigning_vjp_fails);
    tcase_add_test(tc, coupled_rows_fail);
    tcase_add_test(tc, general_noise_vjp_fails);
    tcase_add_test(tc, both_at_once_disagreeing_fails);
    tcase_add_test(tc, quadrature_read_fails);
    tcase_add_test(tc, wrong_regularizer_gradient_fails);
    tcase_add_test(tc, wrong_task_fails);
    tcase_add_test(tc, overclaimed_order_fails);
    tcase_add_test(tc, same_seed_same_report);
    tcase_add_test(tc, usage_errors);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", workdir);
        if (system(cmd) != 0)
            failed++;
    }
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
