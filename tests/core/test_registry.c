/* Registry: every plugin in the build tree loads, declares itself fully,
 * is found again by name and kind, and unloading leaks nothing (the
 * sanitizer build's LeakSanitizer checks the last part). */
#include <check.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <nde/nde.h>

typedef struct seen {
    char names[64][80];
    size_t n;
} seen;

static int record(const nde_plugin_info *info, const char *path, void *user)
{
    seen *s = user;
    const nde_key *k;
    ck_assert_ptr_nonnull(path);
    ck_assert_int_eq(info->abi_version, NDE_ABI_VERSION);
    /* Shipped plugins are of today's interface version, filled by the
     * kind's macro. */
    switch (info->kind) {
    case NDE_KIND_FIELD:
        ck_assert_int_eq(info->iface_version, NDE_FIELD_VERSION);
        ck_assert_uint_eq(info->size, sizeof(nde_field_type));
        break;
    case NDE_KIND_SOLVER:
        ck_assert_int_eq(info->iface_version, NDE_SOLVER_VERSION);
        ck_assert_uint_eq(info->size, sizeof(nde_solver_type));
        break;
    case NDE_KIND_ADJOINT:
        ck_assert_int_eq(info->iface_version, NDE_ADJOINT_VERSION);
        ck_assert_uint_eq(info->size, sizeof(nde_adjoint_type));
        break;
    case NDE_KIND_REGULARIZER:
        ck_assert_int_eq(info->iface_version, NDE_REGULARIZER_VERSION);
        ck_assert_uint_eq(info->size, sizeof(nde_regularizer_type));
        break;
    case NDE_KIND_TASK:
        ck_assert_int_eq(info->iface_version, NDE_TASK_VERSION);
        ck_assert_uint_eq(info->size, sizeof(nde_task_type));
        break;
    }
    ck_assert(nde_plugin_name_valid(info->name));
    ck_assert_msg(info->description && *info->description, "%s lacks a description",
                  info->name);
    for (k = info->keys; k && k->name; k++) {
        ck_assert_msg(k->help && *k->help, "%s key %s lacks help", info->name, k->name);
        ck_assert_str_ne(nde_key_type_name(k->type), "?");
    }
    ck_assert_uint_lt(s->n, 64);
    snprintf(s->names[s->n++], 80, "%s/%s", nde_kind_name(info->kind), info->name);
    return 0;
}

static int has(const seen *s, const char *name)
{
    size_t i;
    for (i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return 1;
    return 0;
}

START_TEST(every_plugin_loads_and_is_found_again)
{
    static const char *const expected[] = {
        "field/mlp", "field/linear", "field/expr", "field/sum", "solver/tsit5",
        "solver/dopri5", "solver/bs3", "solver/rk4", "solver/euler",
        "task/windows", "task/moments", "task/series", "task/classify"};
    nde_ctx *ctx = nde_ctx_create();
    seen s = {.n = 0};
    size_t i;

    ck_assert_int_eq(nde_plugin_foreach(ctx, record, NULL, &s), 0);
    for (i = 0; i < sizeof expected / sizeof *expected; i++)
        ck_assert_msg(has(&s, expected[i]), "plugin %s not found in %s", expected[i],
                      nde_plugin_search_path(ctx));
    for (i = 0; i < s.n; i++) {
        const nde_plugin_info *info;
        char *slash = strchr(s.names[i], '/');
        nde_kind kind = strncmp(s.names[i], "field", 5) == 0    ? NDE_KIND_FIELD
                        : strncmp(s.names[i], "solver", 6) == 0 ? NDE_KIND_SOLVER
                        : strncmp(s.names[i], "adjoint", 7) == 0 ? NDE_KIND_ADJOINT
                        : strncmp(s.names[i], "task", 4) == 0    ? NDE_KIND_TASK
                                                                 : NDE_KIND_REGULARIZER;
        ck_assert_int_eq(nde_plugin_find(ctx, kind, slash + 1, &info), NDE_OK);
        ck_assert_str_eq(info->name, slash + 1);
        ck_assert_ptr_nonnull(nde_plugin_path(ctx, info));
    }
    nde_ctx_destroy(ctx);
}
END_TEST

START_TEST(wrong_kind_and_did_you_mean)
{
    nde_ctx *ctx = nde_ctx_create();
    const nde_plugin_info *info;
    ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_FIELD, "tsit5", &info), NDE_EPLUGIN);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "'tsit5' is a solver plugin, not a field plugin"));
    ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_SOLVER, "tsit", &info), NDE_EPLUGIN);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "did you mean 'tsit5'?"));
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "dopri5"));
    nde_ctx_destroy(ctx);
}
END_TEST

/* A plugin named in a config section: the registry's status and message,
 * with the file, line, section and key in front. */
START_TEST(section_plugin_errors_keep_their_status)
{
    nde_ctx *ctx = nde_ctx_create();
    nde_config *cfg = nde_config_create();
    nde_field *f;
    ck_assert_int_eq(nde_config_load_string(cfg, "p.ini",
                                            "[field]\nplugin = ../x\n[field.a]\n"
                                            "plugin = mlpp\n[field.b]\nlayers = 2\n",
                                            ctx),
                     NDE_OK);
    ck_assert_int_eq(nde_field_create(ctx, cfg, "field", 1, &f), NDE_EPLUGIN);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx),
                                 "p.ini:2: [field] plugin: invalid field plugin name '../x'"));
    ck_assert_int_eq(nde_field_create(ctx, cfg, "field.a", 1, &f), NDE_EPLUGIN);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx),
                                 "p.ini:4: [field.a] plugin: no field plugin named 'mlpp' "
                                 "(did you mean 'mlp'?)"));
    ck_assert_int_eq(nde_field_create(ctx, cfg, "field.b", 1, &f), NDE_ECONFIG);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "[field.b] plugin: missing required key"));
    ck_assert_int_eq(nde_field_create(ctx, cfg, "field.c", 1, &f), NDE_ECONFIG);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "missing section [field.c]"));
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
}
END_TEST

static int count_only(const nde_plugin_info *info, const char *path, void *user)
{
    (void)info;
    (void)path;
    ++*(size_t *)user;
    return 0;
}

/* Contexts that load every plugin and go away must not accumulate memory:
 * after the first cycle (which maps the modules once per process), the
 * heap in use is the same after every further cycle (meson runs this with
 * glibc's tcache off, which would otherwise count cached free chunks).
 * LeakSanitizer checks the rest in the sanitizer build. */
START_TEST(load_unload_cycles_do_not_grow)
{
    size_t in_use[4], cycle;
    for (cycle = 0; cycle < 4; cycle++) {
        nde_ctx *ctx = nde_ctx_create();
        size_t n = 0;
        ck_assert_int_eq(nde_plugin_foreach(ctx, count_only, NULL, &n), 0);
        ck_assert_uint_ge(n, 9);
        nde_ctx_destroy(ctx);
        in_use[cycle] = mallinfo2().uordblks;
    }
    ck_assert_uint_eq(in_use[1], in_use[3]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");
    SRunner *sr;
    int failed;
    tcase_add_test(tc, every_plugin_loads_and_is_found_again);
    tcase_add_test(tc, wrong_kind_and_did_you_mean);
    tcase_add_test(tc, load_unload_cycles_do_not_grow);
    tcase_add_test(tc, section_plugin_errors_keep_their_status);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
