/* Trajectory accessors: each answers what the record's layout holds (the
 * public struct's arrays), and says "not recorded" (NULL, NaN, -1) where
 * the record has nothing. */
#include <check.h>
#include <math.h>
#include <string.h>

#include <nde/nde.h>

static nde_ctx *ctx;
static nde_config *cfg;
static nde_field *field;

/* y' = A y, a rotation with slight decay, on two states. */
static void setup(void)
{
    ctx = nde_ctx_create();
    cfg = nde_config_create();
    ck_assert_int_eq(nde_config_load_string(cfg, "test",
                                            "[field]\nplugin = linear\n"
                                            "A = -0.1, 1, -1, -0.1\n", ctx),
                     NDE_OK);
    ck_assert_int_eq(nde_field_create(ctx, cfg, "field", 1, &field), NDE_OK);
}

static void teardown(void)
{
    nde_field_destroy(field);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
}

/* Solve over [0, t1] with solver `name` (dt > 0: fixed steps) into tr. */
static void solve(const char *name, double dt, double t1, nde_trajectory *tr)
{
    const nde_plugin_info *info;
    const double y0[2] = {1.0, 0.5};
    double theta[6], yend[2];
    nde_solver *s;
    nde_solve_opts o;

    ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_SOLVER, name, &info),
                     NDE_OK);
    ck_assert_int_eq(nde_solver_create_from(ctx, (const nde_solver_type *)info,
                                            field, &s), NDE_OK);
    ck_assert_int_eq(nde_field_init_params(field, theta, 1), NDE_OK);
    nde_solve_opts_default(&o, (const nde_solver_type *)info);
    o.rtol = o.atol = 1e-7;
    o.dt = dt;
    o.record = tr;
    ck_assert_int_eq(nde_solve(s, &o, theta, 0.0, y0, t1, 1, &t1, yend, NULL),
                     NDE_OK);
    nde_solver_destroy(s);
}

START_TEST(every_step_recorded)
{
    nde_trajectory *tr = nde_trajectory_create(
        NDE_NEEDS_STEPS | NDE_NEEDS_DENSE | NDE_NEEDS_ERROR_EST |
            NDE_NEEDS_STIFFNESS, 0);
    const size_t n = 2;

    solve("tsit5", 0.0, 3.0, tr);
    ck_assert_uint_gt(tr->nsteps, 5);
    ck_assert_uint_eq(tr->nstates, tr->nsteps);
    for (size_t j = 0; j < tr->nsteps; j++) {
        size_t j0, j1;
        ck_assert_ptr_eq(nde_trajectory_state(tr, j), tr->y + j * n);
        ck_assert_uint_eq(nde_trajectory_state_step(tr, j), j);
        ck_assert_ptr_eq(nde_trajectory_stages(tr, j),
                         tr->k + j * (size_t)tr->stages * n);
        ck_assert(nde_trajectory_eest(tr, j) == tr->eest[j]);
        ck_assert(nde_trajectory_stiffness(tr, j) == tr->stiff[j]);
        ck_assert_int_eq(nde_trajectory_state_before(tr, j), (long)j);
        nde_trajectory_segment(tr, j, &j0, &j1);
        ck_assert(j0 == j && j1 == j + 1);
        ck_assert_ptr_null(nde_trajectory_aux(tr, j));
    }
    ck_assert_ptr_null(nde_trajectory_state(tr, tr->nstates));
    ck_assert_ptr_null(nde_trajectory_stages(tr, tr->nsteps));
    ck_assert(isnan(nde_trajectory_eest(tr, tr->nsteps)));
    nde_trajectory_destroy(tr);

    /* Steps only: no stages, no estimates. */
    tr = nde_trajectory_create(NDE_NEEDS_STEPS, 0);
    solve("tsit5", 0.0, 3.0, tr);
    ck_assert_ptr_nonnull(nde_trajectory_state(tr, 0));
    ck_assert_ptr_null(nde_trajectory_stages(tr, 0));
    ck_assert(isnan(nde_trajectory_eest(tr, 0)));
    ck_assert(isnan(nde_trajectory_stiffness(tr, 0)));
    nde_trajectory_destroy(tr);
}
END_TEST

/* max_states: the stored state at or before each step and the segments
 * between stored states cover every step once. */
START_TEST(checkpointed_record)
{
    nde_trajectory *full = nde_trajectory_create(NDE_NEEDS_STEPS, 0);
    nde_trajectory *tr = nde_trajectory_create(NDE_NEEDS_STEPS, 7);
    size_t covered = 0;

    solve("rk4", 0.01, 10.0, full);
    solve("rk4", 0.01, 10.0, tr);
    ck_assert_uint_eq(tr->nsteps, 1000);
    ck_assert_uint_le(tr->nstates, 7);
    ck_assert_uint_gt(tr->stride, 1);
    for (size_t i = 0; i < tr->nstates; i++) {
        size_t j0, j1;
        nde_trajectory_segment(tr, i, &j0, &j1);
        ck_assert_uint_eq(j0, covered);
        ck_assert_uint_gt(j1, j0);
        covered = j1;
        ck_assert(memcmp(nde_trajectory_state(tr, i),
                         nde_trajectory_state(full, j0),
                         2 * sizeof(double)) == 0);
        for (size_t j = j0; j < j1; j++)
            ck_assert_int_eq(nde_trajectory_state_before(tr, j), (long)i);
    }
    ck_assert_uint_eq(covered, tr->nsteps);
    nde_trajectory_destroy(tr);
    nde_trajectory_destroy(full);

    /* Nothing stored: no state before any step. */
    tr = nde_trajectory_create(0, 0);
    solve("rk4", 0.01, 1.0, tr);
    ck_assert_int_eq(nde_trajectory_state_before(tr, 0), -1);
    ck_assert_ptr_null(nde_trajectory_state(tr, 0));
    nde_trajectory_destroy(tr);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("trajectory");
    TCase *tc = tcase_create("accessors");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, every_step_recorded);
    tcase_add_test(tc, checkpointed_record);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
