/*
 * Step-size controllers (core/controller.c): PI, I and PID against their
 * formulas (nde/solve.h: OrdinaryDiffEq's and diffrax's), the [solver] keys that
 * choose and tune them, and solves driven through each.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <nde/nde.h>

static nde_ctx *ctx;

static void setup(void) { ctx = nde_ctx_create(); }
static void teardown(void) { nde_ctx_destroy(ctx); }

static void assert_close(double got, double want)
{
    ck_assert_msg(fabs(got - want) <= 1e-14 * fabs(want),
                  "%.17g, expected %.17g", got, want);
}

static nde_controller params(const nde_controller_ops *ops)
{
    nde_controller c;

    memset(&c, 0, sizeof c);
    c.ops = ops;
    c.safety = 0.9;
    c.qmin = 0.2;
    c.qmax = 10;
    c.beta1 = 0.14;
    c.beta2 = 0.08;
    c.pcoeff = 0.3;
    c.icoeff = 0.4;
    c.dcoeff = 0.1;
    c.order = 5;
    return c;
}

START_TEST(test_pi_formula)
{
    const nde_controller c = params(&nde_controller_pi);
    double mem[NDE_CONTROLLER_MEMORY];

    c.ops->start(&c, mem);
    /* first step: EEst_prev = 1e-4 */
    assert_close(c.ops->accept(&c, mem, 0.5, 0.1),
                 0.1 * 0.9 * pow(0.5, -0.14) * pow(1e-4, 0.08));
    assert_close(c.ops->accept(&c, mem, 0.25, -0.2),
                 -0.2 * 0.9 * pow(0.25, -0.14) * pow(0.5, 0.08));
    /* clamped to qmax, and an exact step grows by qmax */
    assert_close(c.ops->accept(&c, mem, 1e-30, 0.1), 0.1 * 10);
    assert_close(c.ops->accept(&c, mem, 0.0, 0.1), 0.1 * 10);
    assert_close(c.ops->reject(&c, mem, 4.0, 0.1),
                 0.1 * 0.9 * pow(4.0, -0.14));
    assert_close(c.ops->reject(&c, mem, 1e30, 0.1), 0.1 * 0.2);
    assert_close(c.ops->reject(&c, mem, NAN, 0.1), 0.1 * 0.2);
}
END_TEST

START_TEST(test_pid_formula)
{
    const nde_controller c = params(&nde_controller_pid);
    const double k = 5, p = 0.3, i = 0.4, d = 0.1;
    double mem[NDE_CONTROLLER_MEMORY], f;

    c.ops->start(&c, mem);
    /* eps_{n-1} = eps_{n-2} = 1 before the first step */
    f = 0.9 * pow(1 / 0.5, (p + i + d) / k);
    assert_close(c.ops->accept(&c, mem, 0.5, 0.1), 0.1 * f);
    f = 0.9 * pow(1 / 0.25, (p + i + d) / k) * pow(1 / 0.5, -(p + 2 * d) / k);
    assert_close(c.ops->accept(&c, mem, 0.25, 0.1), 0.1 * f);
    f = 0.9 * pow(1 / 0.8, (p + i + d) / k) *
        pow(1 / 0.25, -(p + 2 * d) / k) * pow(1 / 0.5, d / k);
    /* an accepted step never shrinks the next: clamped to [1, qmax] */
    ck_assert(f < 1);
    assert_close(c.ops->accept(&c, mem, 0.8, 0.1), 0.1);
    /* rejected: clamped to [qmin, safety], eps_{n-1} = 1/0.8 now */
    f = 0.9 * pow(1 / 1.5, (p + i + d) / k) * pow(1 / 0.8, -(p + 2 * d) / k) *
        pow(1 / 0.25, d / k);
    assert_close(c.ops->reject(&c, mem, 1.5, 0.1), 0.1 * f);
    assert_close(c.ops->reject(&c, mem, 1.0001, 0.1), 0.1 * 0.9);
    assert_close(c.ops->reject(&c, mem, 1e30, 0.1), 0.1 * 0.2);
}
END_TEST

START_TEST(test_i_is_pid_0_1_0)
{
    nde_controller c = params(&nde_controller_i);
    double mem[NDE_CONTROLLER_MEMORY], mem2[NDE_CONTROLLER_MEMORY];
    nde_controller c2 = params(&nde_controller_pid);
    const double errs[4] = {0.5, 0.01, 0.9, 0.3};

    c2.pcoeff = 0;
    c2.icoeff = 1;
    c2.dcoeff = 0;
    c.ops->start(&c, mem);
    c2.ops->start(&c2, mem2);
    for (int j = 0; j < 4; j++) {
        const double h = c.ops->accept(&c, mem, errs[j], 0.1);
        ck_assert(h == c2.ops->accept(&c2, mem2, errs[j], 0.1));
        assert_close(h, 0.1 * fmin(fmax(0.9 * pow(errs[j], -0.2), 1), 10));
    }
}
END_TEST

/* y' = -2 t y, y(0) = 1: y = exp(-t^2). */
static int gauss_eval(nde_field *f, double t, const double *y,
                      const double *th, double *dy, size_t batch)
{
    (void)f; (void)th;
    for (size_t i = 0; i < batch; i++)
        dy[i] = -2.0 * t * y[i];
    return NDE_OK;
}

static int create_d1(nde_field *f, nde_section *sec, nde_ctx *c)
{
    (void)sec; (void)c;
    f->dim = 1;
    return NDE_OK;
}

static void no_destroy(nde_field *f) { (void)f; }

static int no_init(nde_field *f, double *theta, uint64_t seed)
{
    (void)f; (void)theta; (void)seed;
    return NDE_OK;
}

static int no_vjp(nde_field *f, double t, const double *y, const double *th,
                  const double *v, double *vy, double *vth, size_t batch)
{
    (void)t; (void)y; (void)th; (void)v; (void)vy; (void)vth; (void)batch;
    return nde_error(f->ctx, NDE_EFATAL, "no VJP in this test");
}

static const nde_field_type gauss_field = {
    .info = NDE_FIELD_INFO(
        .name = "gauss",
        .description = "test field",
        .version = "1"),
    .create = create_d1, .destroy = no_destroy, .init_params = no_init,
    .eval = gauss_eval, .vjp = no_vjp};

/* A solve with the [solver] section `text`: its error at t = 3 and the
 * steps it took. */
static double solve_with(const char *text, long *steps)
{
    nde_config *cfg = nde_config_create();
    nde_field *f;
    nde_solver *s;
    nde_solve_opts o;
    nde_stats st;
    const double y0 = 1.0, t1 = 3.0;
    double y;

    ck_assert_int_eq(nde_config_load_string(cfg, "c.ini", text, ctx), NDE_OK);
    ck_assert_int_eq(nde_field_create_from(ctx, &gauss_field, NULL, 1, &f),
                     NDE_OK);
    ck_assert_msg(nde_solver_create(ctx, cfg, "solver", f, &s) == NDE_OK,
                  "%s", nde_ctx_message(ctx));
    ck_assert_msg(nde_solve_opts_from_section(&o, s->type,
                                              nde_config_section(cfg,
                                                                 "solver"),
                                              ctx) == NDE_OK,
                  "%s", nde_ctx_message(ctx));
    ck_assert_int_eq(nde_solve(s, &o, NULL, 0, &y0, t1, 1, &t1, &y, &st),
                     NDE_OK);
    *steps = st.steps_accepted + st.steps_rejected;
    nde_solver_destroy(s);
    nde_field_destroy(f);
    nde_config_destroy(cfg);
    return fabs(y - exp(-t1 * t1));
}

/* Each controller reaches the tolerance, through the table the section
 * chose (the step counts differ). */
START_TEST(test_solves_by_controller)
{
    long n_pi, n_i, n_pid;
    const double e_pi = solve_with("[solver]\nplugin = tsit5\nrtol = 1e-8\n"
                                   "atol = 1e-8\n", &n_pi);
    const double e_i = solve_with("[solver]\nplugin = tsit5\nrtol = 1e-8\n"
                                  "atol = 1e-8\ncontroller = i\n", &n_i);
    const double e_pid = solve_with("[solver]\nplugin = tsit5\nrtol = 1e-8\n"
                                    "atol = 1e-8\ncontroller = pid\n"
                                    "pcoeff = 0.2\nicoeff = 0.4\n", &n_pid);

    fprintf(stderr, "controllers: pi %ld steps, error %.2e; i %ld, %.2e; "
            "pid (0.2, 0.4, 0) %ld, %.2e\n", n_pi, e_pi, n_i, e_i, n_pid,
            e_pid);
    ck_assert(e_pi < 1e-7 && e_i < 1e-7 && e_pid < 1e-7);
    ck_assert(n_pi != n_i && (n_i != n_pid || e_i != e_pid));
}
END_TEST

START_TEST(test_controller_keys)
{
    static const struct {
        const char *text, *message;
    } bad[] = {
        {"controller = pd\n", "'pd' is not a controller (pi, i or pid)"},
        {"pcoeff = 0.1\n", "belongs to controller = pid, not pi"},
        {"controller = i\ndcoeff = 0.1\n", "belongs to controller = pid, "
                                           "not i"},
        {"controller = pid\nbeta1 = 0.1\n", "belongs to controller = pi, "
                                            "not pid"},
        {"controller = pid\nicoeff = 0\n", "icoeff"},
    };

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nde_config *cfg = nde_config_create();
        char text[256];
        const nde_key *const tables[] = {nde_solve_keys, NULL};
        const nde_plugin_info *info;
        nde_section *sec;
        nde_solve_opts o;

        snprintf(text, sizeof text, "[solver]\nplugin = tsit5\n%s",
                 bad[i].text);
        ck_assert_int_eq(nde_config_load_string(cfg, "c.ini", text, ctx),
                         NDE_OK);
        ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_SOLVER, "tsit5",
                                         &info), NDE_OK);
        sec = nde_config_section(cfg, "solver");
        ck_assert_int_eq(nde_section_check(sec, tables, ctx), NDE_OK);
        ck_assert_int_ne(nde_solve_opts_from_section(
                             &o, (const nde_solver_type *)info, sec, ctx),
                         NDE_OK);
        ck_assert_msg(strstr(nde_ctx_message(ctx), bad[i].message) &&
                          strstr(nde_ctx_message(ctx), "c.ini:"),
                      "'%s': %s", bad[i].text, nde_ctx_message(ctx));
        nde_config_destroy(cfg);
    }
}
END_TEST

int main(void)
{
    Suite *su = suite_create("controller");
    TCase *tc = tcase_create("controller");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_pi_formula);
    tcase_add_test(tc, test_pid_formula);
    tcase_add_test(tc, test_i_is_pid_0_1_0);
    tcase_add_test(tc, test_solves_by_controller);
    tcase_add_test(tc, test_controller_keys);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
