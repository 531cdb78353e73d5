/*
 * libFuzzer target: the config reader. The input up to its first NUL byte
 * is read as a config file and what follows it is applied as a `-s`
 * override (or, after "-u ", as an unset); the result is written back as
 * INI text, reloaded from that text, and every value is read as each type
 * the plugins ask for (numbers, integers, lists, matrices, words,
 * assignments), so the line reader, inih's callbacks, the writer and the
 * typed getters all see hostile text.
 */
#include "fuzz_util.h" /* first: it defines _GNU_SOURCE */

#include <string.h>

#include "nde/config.h"
#include "nde/status.h"

static void read_every_value(const nde_config *cfg, nde_ctx *ctx)
{
    for (size_t i = 0; i < nde_config_nsections(cfg); i++) {
        nde_section *sec = nde_config_section_at(cfg, i);
        for (size_t k = 0; k < nde_section_nkeys(sec); k++) {
            const char *key = nde_section_key_at(sec, k);
            double d, *ds = NULL;
            long l, *ls = NULL;
            const char *s;
            char **words = NULL, **names = NULL;
            double *values = NULL;
            size_t n = 0, rows = 0, cols = 0;
            int b;
            nde_get_double(sec, key, &d, ctx);
            nde_get_long(sec, key, &l, ctx);
            nde_get_bool(sec, key, &b, ctx);
            nde_get_string(sec, key, &s, ctx);
            if (nde_get_doubles(sec, key, &ds, &n, ctx) == NDE_OK)
                free(ds);
            if (nde_get_matrix(sec, key, &ds, &rows, &cols, ctx) == NDE_OK)
                free(ds);
            if (nde_get_longs(sec, key, &ls, &n, ctx) == NDE_OK)
                free(ls);
            if (nde_get_words(sec, key, &words, &n, ctx) == NDE_OK)
                nde_strings_free(words);
            if (nde_get_assigns(sec, key, &names, &values, &n, ctx) ==
                NDE_OK) {
                nde_strings_free(names);
                free(values);
            }
        }
    }
}

/* What follows the NUL: "-u section.key" is an unset, else an override. */
static int apply(nde_config *cfg, const char *assignment, nde_ctx *ctx)
{
    if (strncmp(assignment, "-u ", 3) == 0)
        return nde_config_unset(cfg, assignment + 3, ctx);
    return nde_config_override(cfg, assignment, ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nde_ctx *ctx = nde_ctx_create();
    nde_config *cfg = nde_config_create(), *again = nde_config_create();
    char *text = NULL;
    size_t len = 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t file_size = nul ? (size_t)(nul - data) : size;
    char *assignment = NULL;
    fuzz_file f;
    FILE *mem;

    if (!ctx || !cfg || !again)
        abort();
    if (nul && !(assignment = strndup((const char *)nul + 1,
                                      size - file_size - 1)))
        abort();
    fuzz_file_open(&f, "config.ini", data, file_size);
    if (nde_config_load_file(cfg, f.path, ctx) == NDE_OK &&
        (!assignment || apply(cfg, assignment, ctx) == NDE_OK)) {
        read_every_value(cfg, ctx);
        if (!(mem = open_memstream(&text, &len)))
            abort();
        nde_config_write(cfg, mem);
        fclose(mem);
        /* What the writer wrote must load back (checkpoints rely on it). */
        if (nde_config_load_string(again, "written", text, ctx) != NDE_OK) {
            fprintf(stderr, "the written config does not load back: %s\n"
                    "---\n%s---\n", nde_ctx_message(ctx), text);
            abort();
        }
        free(text);
    }
    fuzz_file_close(&f);
    free(assignment);
    nde_config_destroy(again);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    return 0;
}
