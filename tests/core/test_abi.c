/* Per-descriptor versions: a field plugin built against the frozen headers
 * of field interface version 1 (oldfield.so, tests/core/abi_v1/) loads
 * through the registry and runs with today's library, the jvp appended in
 * version 2 and the jvp_vjp of version 3 reading as absent; a plugin of
 * today's version has them. */
#include <check.h>
#include <string.h>

#include <nde/nde.h>

static nde_ctx *ctx;

static void setup(void) { ctx = nde_ctx_create(); }
static void teardown(void) { nde_ctx_destroy(ctx); }

START_TEST(old_field_loads_and_runs)
{
    const nde_plugin_info *info;
    const nde_field_type *type;
    nde_field *f;
    const double y[2] = {1.0, -3.0}, v[2] = {0.5, 2.0};
    double theta[1], dy[2], vy[2] = {1.0, 1.0}, vtheta[1] = {1.0}, jv[2];

    ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_FIELD, "oldfield", &info),
                     NDE_OK);
    ck_assert_ptr_nonnull(strstr(nde_plugin_path(ctx, info), "oldfield.so"));
    ck_assert_int_eq(info->iface_version, 1);
    ck_assert_uint_lt(info->size, sizeof(nde_field_type));
    type = (const nde_field_type *)info;
    ck_assert_ptr_null(type->jvp);
    ck_assert_ptr_null(type->jvp_vjp);
    ck_assert_int_eq(nde_field_create_from(ctx, type, NULL, 2, &f), NDE_OK);
    ck_assert_int_eq(nde_field_init_params(f, theta, 1), NDE_OK);
    ck_assert_double_eq(theta[0], 2.0);
    ck_assert_int_eq(nde_field_eval(f, 0.0, y, theta, dy, 2), NDE_OK);
    ck_assert_double_eq(dy[0], -2.0);
    ck_assert_double_eq(dy[1], 6.0);
    /* The VJP accumulates onto what is there. */
    ck_assert_int_eq(nde_field_vjp(f, 0.0, y, theta, v, vy, vtheta, 2),
                     NDE_OK);
    ck_assert_double_eq(vy[0], 1.0 - 2.0 * 0.5);
    ck_assert_double_eq(vy[1], 1.0 - 2.0 * 2.0);
    ck_assert_double_eq(vtheta[0], 1.0 - (1.0 * 0.5 - 3.0 * 2.0));
    ck_assert_int_eq(nde_field_jvp(f, 0.0, y, theta, v, jv, 2),
                     NDE_ECAPABILITY);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "'oldfield'"));
    ck_assert_int_eq(nde_field_jvp_vjp(f, 0.0, y, theta, v, v, vy, vtheta, 2),
                     NDE_ECAPABILITY);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "'oldfield'"));
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "jvp_vjp"));
    nde_field_destroy(f);
}
END_TEST

/* A plugin of today's interface version is handed out as it is, jvp and
 * all: linear's jv = A v. */
START_TEST(current_field_has_jvp)
{
    nde_config *cfg = nde_config_create();
    nde_field *f;
    const double y[4] = {1, 2, 3, 4}, v[4] = {1, 0, -1, 2};
    double theta[6], jv[4];

    ck_assert_int_eq(nde_config_load_string(cfg, "test",
                                            "[field]\nplugin = linear\n"
                                            "A = 1, 2, 3, 4\n", ctx),
                     NDE_OK);
    ck_assert_int_eq(nde_field_create(ctx, cfg, "field", 2, &f), NDE_OK);
    ck_assert_int_eq(f->type->info.iface_version, NDE_FIELD_VERSION);
    ck_assert_int_eq(nde_field_init_params(f, theta, 1), NDE_OK);
    ck_assert_int_eq(nde_field_jvp(f, 0.0, y, theta, v, jv, 2), NDE_OK);
    ck_assert_double_eq(jv[0], 1.0);
    ck_assert_double_eq(jv[1], 3.0);
    ck_assert_double_eq(jv[2], 3.0);
    ck_assert_double_eq(jv[3], 5.0);
    /* linear's J v does not depend on y: vy unchanged */
    jv[0] = jv[1] = jv[2] = jv[3] = 0.0;
    ck_assert_int_eq(nde_field_jvp_vjp(f, 0.0, y, theta, v, v, jv, NULL, 2),
                     NDE_OK);
    ck_assert_double_eq(jv[0], 0.0);
    ck_assert_double_eq(jv[3], 0.0);
    nde_field_destroy(f);
    nde_config_destroy(cfg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("abi");
    TCase *tc = tcase_create("versions");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, old_field_loads_and_runs);
    tcase_add_test(tc, current_field_has_jvp);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
