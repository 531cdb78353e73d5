/* tbadtask.c - a task module without the required batch, loss and
 * evaluate ops, for the trainer to refuse (tests/train). */
#include <stdlib.h>

#include "nde/nde.h"

static int tbad_create(nde_task *t, nde_section *sec, const nde_task_env *env,
                       nde_ctx *ctx)
{
    (void)t;
    (void)sec;
    (void)env;
    (void)ctx;
    return NDE_OK;
}

static void tbad_destroy(nde_task *t) { (void)t; }

static const nde_task_type tbad_type = {
    .info = NDE_TASK_INFO(
        .name = "tbadtask",
        .description = "test task lacking its required ops",
        .version = "1"),
    .create = tbad_create,
    .destroy = tbad_destroy,
};

NDE_MODULE(&tbad_type.info);
