/*
 * libFuzzer target: the checkpoint loader, the way `nde train --resume`
 * and `nde predict` use it. Each input is loaded into a fresh trainer of
 * tests/fuzz/checkpoint.ini in resume mode and, when that is accepted, the
 * trainer runs one iteration on what was loaded (the RNG state, the Adam
 * moments, the counters); the input is also loaded in predict mode, and
 * its stored config text is parsed as `nde predict` parses it.
 */
#include "fuzz_util.h"
#include "nde/config.h"
#include "nde/status.h"
#include "nde/train.h"

#ifndef FUZZ_SOURCE_DIR
#error "FUZZ_SOURCE_DIR: the directory of checkpoint.ini"
#endif

static nde_ctx *ctx;
static nde_config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!(ctx = nde_ctx_create()) || !(cfg = nde_config_create()) ||
        nde_config_load_file(cfg, FUZZ_SOURCE_DIR "/checkpoint.ini", ctx)) {
        fprintf(stderr, "fuzz_checkpoint: %s\n",
                ctx ? nde_ctx_message(ctx) : "out of memory");
        abort();
    }
    return 0;
}

static void load(const char *path, int mode)
{
    nde_trainer *tr;
    nde_train_step m;

    if (nde_trainer_create(ctx, cfg, 0, &tr) != NDE_OK) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", nde_ctx_message(ctx));
        abort();
    }
    if (nde_trainer_checkpoint_load(tr, path, mode) == NDE_OK &&
        mode == NDE_CHECKPOINT_RESUME)
        nde_trainer_step(tr, &m);
    nde_trainer_destroy(tr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nde_config *stored;
    char *text;
    fuzz_file f;

    fuzz_file_open(&f, "checkpoint", data, size);
    load(f.path, NDE_CHECKPOINT_RESUME);
    load(f.path, NDE_CHECKPOINT_PARAMS);
    if (nde_checkpoint_read_config(f.path, &text, ctx) == NDE_OK) {
        if (!(stored = nde_config_create()))
            abort();
        nde_config_load_string(stored, "checkpoint", text, ctx);
        nde_config_destroy(stored);
        free(text);
    }
    fuzz_file_close(&f);
    return 0;
}
