/*
 * ctx_fixture.h - the Check fixture most suites share: a context per
 * test (setup / teardown, for tcase_add_checked_fixture) and plugins
 * found by kind and name, failing the test with the context's message
 * when one is missing.
 */
#ifndef NDE_TESTS_CTX_FIXTURE_H
#define NDE_TESTS_CTX_FIXTURE_H

#include <check.h>

#include "nde/nde.h"

static nde_ctx *ctx;

static void setup(void)
{
    ctx = nde_ctx_create();
    ck_assert_ptr_nonnull(ctx);
}

static void teardown(void) { nde_ctx_destroy(ctx); }

static inline const nde_plugin_info *plugin(nde_kind kind, const char *name)
{
    const nde_plugin_info *info;
    int rc = nde_plugin_find(ctx, kind, name, &info);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return info;
}

#endif
