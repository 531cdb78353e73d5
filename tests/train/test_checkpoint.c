/*
 * test_checkpoint.c - checkpoints against attack and accident, end to end:
 * every field of a crafted checkpoint with a valid crc is checked by
 * `nde train --resume` and `nde predict` (exit 2, the field named, no
 * crash); resume compares the config's meaning, not its text; a changed
 * data file warns or is refused; metrics and checkpoint agree after
 * SIGKILL, and the temporary files of killed writers go.
 *
 * NDE_EXE is the program. Runs are a few iterations of tiny models.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../test_util.h"

static char workdir[1024];

static void setup(void)
{
    test_workdir_make(workdir, sizeof workdir, "ckpt");
}

static void teardown(void) { test_workdir_remove(workdir); }

static const char *in_dir(const char *name)
{
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 4096, "%s/%s", workdir, name);
    return b;
}

static void write_text(const char *name, const char *text)
{
    FILE *fp = fopen(in_dir(name), "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fputs(text, fp) >= 0, 1);
    fclose(fp);
}

#define run(...) test_run_nde(workdir, __VA_ARGS__, (const char *)NULL)

#define assert_contains test_assert_contains

/* A small spiral model: 2-8-2, 200 points, a few ms per iteration. */
static const char spiral_ini[] =
    "[solver]\nplugin = tsit5\nrtol = 1e-6\natol = 1e-8\n"
    "[field]\nplugin = mlp\nlayers = 2, 8, 2\nactivation = tanh\n"
    "input = cube\n"
    "[adjoint]\nplugin = discrete\n"
    "[data]\nsource = spiral\nnpoints = 200\nt1 = 5\nbatch_time = 10\n"
    "[train]\niterations = 5\nbatch_size = 8\nlr = 0.01\nseed = 3\n"
    "eval_every = 0\ncheckpoint = c.ckpt\ncheckpoint_every = 1\n"
    "metrics = m.jsonl\n";

/* ---- hostile checkpoints ------------------------------------------------- */

/* Offsets of a recorded plugin's fields. */
typedef struct comp_layout {
    size_t kind, signature, namelen, name, versionlen, version;
} comp_layout;

/* Offsets of a checkpoint's fields (layout in nde/train.h). */
typedef struct layout {
    char *data;
    size_t len;
    size_t cfglen, cfg, nparams, iter, opt_steps, theta, m, v, nfe_f, nfe_b,
        time, digest, failures, lr_scale, run_id, navg, avg, ncomp,
        rng_namelen,
        rng_name, rng_len, rng;
    comp_layout comp[8];
    size_t ncomps;
} layout;

static uint64_t u64_at(const char *p)
{
    uint64_t u;
    memcpy(&u, p, 8);
    return u;
}

static layout layout_read(const char *name)
{
    layout l;
    uint64_t P;

    ck_assert_ptr_nonnull(l.data = test_read_file(in_dir(name), &l.len));
    ck_assert_uint_eq(u64_at(l.data + 8) & 0xffffffffu, 5); /* version */
    l.cfglen = 28;
    l.cfg = l.cfglen + 8;
    l.nparams = l.cfg + u64_at(l.data + l.cfglen);
    ck_assert_uint_lt(l.nparams + 8, l.len);
    P = u64_at(l.data + l.nparams);
    l.iter = l.nparams + 8;
    l.opt_steps = l.iter + 8;
    l.theta = l.opt_steps + 8;
    l.m = l.theta + 8 * P;
    l.v = l.m + 8 * P;
    l.nfe_f = l.v + 8 * P;
    l.nfe_b = l.nfe_f + 8;
    l.time = l.nfe_b + 8;
    l.digest = l.time + 8;
    l.failures = l.digest + 8;
    l.lr_scale = l.failures + 8;
    l.run_id = l.lr_scale + 8;
    l.navg = l.run_id + 8;
    l.avg = l.navg + 8;
    ck_assert_uint_le(l.avg, l.len);
    l.ncomp = l.avg + (u64_at(l.data + l.navg) > 0 ? 8 * P : 0);
    ck_assert_uint_le(l.ncomp + 8, l.len);
    l.ncomps = u64_at(l.data + l.ncomp);
    ck_assert_uint_le(l.ncomps, 8);
    l.rng_namelen = l.ncomp + 8;
    for (size_t i = 0; i < l.ncomps; i++) {
        comp_layout *c = &l.comp[i];
        c->kind = l.rng_namelen;
        c->signature = c->kind + 4;
        c->namelen = c->signature + 4;
        c->name = c->namelen + 8;
        ck_assert_uint_le(c->name, l.len);
        c->versionlen = c->name + u64_at(l.data + c->namelen);
        c->version = c->versionlen + 8;
        ck_assert_uint_le(c->version, l.len);
        l.rng_namelen = c->version + u64_at(l.data + c->versionlen);
    }
    l.rng_name = l.rng_namelen + 8;
    ck_assert_uint_le(l.rng_name, l.len);
    ck_assert_uint_le(u64_at(l.data + l.rng_namelen), 64);
    l.rng_len = l.rng_name + u64_at(l.data + l.rng_namelen);
    l.rng = l.rng_len + 8;
    ck_assert_uint_eq(l.rng + u64_at(l.data + l.rng_len), l.len);
    ck_assert_uint_eq(u64_at(l.data + l.rng_namelen), 7); /* "mt19937" */
    return l;
}

/* Write data (len bytes) as `name` with the header's payload length and
 * crc32 recomputed, so only the field checks can refuse it. */
static void write_with_crc(const char *name, char *data, size_t len)
{
    uint64_t plen = len - 28;
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)data + 28, (uInt)plen);
    FILE *fp;

    memcpy(data + 16, &plen, 8);
    memcpy(data + 24, &crc, 4);
    ck_assert_ptr_nonnull(fp = fopen(in_dir(name), "wb"));
    ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

/* Both commands refuse `name` with exit 2, naming the field. */
static void both_refuse(const char *name, const char *field)
{
    test_run_result r;

    r = run("train", "s.ini", "--quiet", "-s", "train.iterations=8", "-s",
            "train.checkpoint=", "-s", "train.metrics=", "--resume", name);
    test_assert_code(r, 2);
    assert_contains(r.err, "not a usable checkpoint");
    assert_contains(r.err, field);
    test_run_free(&r);
    r = run("predict", name, "-o", "p.csv");
    test_assert_code(r, 2);
    assert_contains(r.err, "not a usable checkpoint");
    assert_contains(r.err, field);
    test_run_free(&r);
}

/* The checkpoint with n bytes at off replaced by value: both refuse it. */
static void patch(const layout *l, size_t off, const void *value, size_t n,
                  const char *field)
{
    char *d = malloc(l->len);
    ck_assert_ptr_nonnull(d);
    memcpy(d, l->data, l->len);
    memcpy(d + off, value, n);
    write_with_crc("x.ckpt", d, l->len);
    free(d);
    both_refuse("x.ckpt", field);
}

static void patch_i64(const layout *l, size_t off, int64_t value,
                      const char *field)
{
    patch(l, off, &value, 8, field);
}

static void patch_f64(const layout *l, size_t off, double value,
                      const char *field)
{
    patch(l, off, &value, 8, field);
}

static void patch_i32(const layout *l, size_t off, int32_t value,
                      const char *field)
{
    patch(l, off, &value, 4, field);
}

static void make_spiral_checkpoint(void)
{
    test_run_result r;
    write_text("s.ini", spiral_ini);
    r = run("train", "s.ini", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
}

/* The same, its parameters averaged over iterations 3, 4, 5. */
static void make_averaged_checkpoint(void)
{
    test_run_result r;
    write_text("s.ini", spiral_ini);
    r = run("train", "s.ini", "--quiet", "-s", "train.average_from=3");
    test_assert_code(r, 0);
    test_run_free(&r);
}

START_TEST(test_hostile_numbers)
{
    layout l;

    make_spiral_checkpoint();
    l = layout_read("c.ckpt");
    /* the file as written is accepted by both */
    {
        test_run_result r = run("predict", "c.ckpt", "-o", "p.csv");
        test_assert_code(r, 0);
        test_run_free(&r);
    }
    patch_i64(&l, l.iter, -5, "iteration -5");
    patch_i64(&l, l.iter, INT64_C(1) << 62, "iteration");
    patch_i64(&l, l.opt_steps, -1, "optimizer step count -1");
    patch_i64(&l, l.opt_steps, 4, "optimizer step count 4");
    patch_i64(&l, l.failures, -1, "failed iteration count -1");
    patch_i64(&l, l.failures, 1, "does not fit the iteration");
    patch_i64(&l, l.opt_steps, 2, "does not fit the iteration"); /* 5: 2 + 0 */
    patch_f64(&l, l.lr_scale, 0.3, "learning-rate scale 0.3");
    patch_f64(&l, l.lr_scale, 2.0, "learning-rate scale 2");
    patch_f64(&l, l.lr_scale, 0.5, "learning-rate scale 0.5"); /* 0 failed */
    patch_f64(&l, l.lr_scale, NAN, "learning-rate scale");
    patch_f64(&l, l.theta + 8, NAN, "theta[1]");
    patch_f64(&l, l.theta, INFINITY, "theta[0]");
    patch_f64(&l, l.m + 16, NAN, "m[2]");
    patch_f64(&l, l.v + 24, -1e-3, "v[3]");
    patch_f64(&l, l.v, NAN, "v[0]");
    patch_f64(&l, l.v, INFINITY, "v[0]");
    patch_i64(&l, l.nfe_f, -3, "nfe_forward");
    patch_i64(&l, l.nfe_b, -3, "nfe_backward");
    patch_f64(&l, l.time, NAN, "train time");
    patch_f64(&l, l.time, -1.0, "train time");
    patch_i64(&l, l.navg, -1, "averaged step count -1");
    free(l.data);

    make_averaged_checkpoint();
    l = layout_read("c.ckpt");
    ck_assert_int_eq((int64_t)u64_at(l.data + l.navg), 3);
    patch_i64(&l, l.navg, 6, "averaged step count 6");
    patch_f64(&l, l.avg + 8, NAN, "averaged parameter 1");
    free(l.data);
}
END_TEST

START_TEST(test_hostile_rng)
{
    /* GSL's mt19937 state: unsigned long mt[624]; int mti */
    const size_t mti = 624 * sizeof(unsigned long);
    layout l;
    char *d;

    make_spiral_checkpoint();
    l = layout_read("c.ckpt");
    patch_i32(&l, l.rng + mti, -100000000, "mti = -100000000");
    patch_i32(&l, l.rng + mti, 625, "mti = 625");
    patch_i64(&l, l.rng + 5 * sizeof(unsigned long), INT64_C(1) << 40,
              "mt[5]");
    /* all zeros */
    ck_assert_ptr_nonnull(d = malloc(l.len));
    memcpy(d, l.data, l.len);
    memset(d + l.rng, 0, mti);
    write_with_crc("x.ckpt", d, l.len);
    both_refuse("x.ckpt", "all zeros");
    /* another generator's name */
    memcpy(d, l.data, l.len);
    memcpy(d + l.rng_name, "ranlux0", 7);
    write_with_crc("x.ckpt", d, l.len);
    both_refuse("x.ckpt", "random-number generator 'ranlux0'");
    /* a state length that does not match */
    memcpy(d, l.data, l.len);
    write_with_crc("x.ckpt", d, l.len - 8);
    both_refuse("x.ckpt", "random-number state");
    free(d);
    free(l.data);
}
END_TEST

START_TEST(test_hostile_config)
{
    layout l;
    char *d;
    char *eq;

    make_spiral_checkpoint();
    l = layout_read("c.ckpt");
    ck_assert_ptr_nonnull(d = malloc(l.len));
    /* a NUL byte in the text */
    memcpy(d, l.data, l.len);
    d[l.cfg + 3] = '\0';
    write_with_crc("x.ckpt", d, l.len);
    both_refuse("x.ckpt", "NUL byte");
    /* text that does not parse: the first '=' becomes a newline */
    memcpy(d, l.data, l.len);
    ck_assert_ptr_nonnull(eq = memchr(d + l.cfg, '=', 64));
    *eq = '\n';
    write_with_crc("x.ckpt", d, l.len);
    both_refuse("x.ckpt", "config");
    /* a length beyond the payload */
    memcpy(d, l.data, l.len);
    {
        uint64_t n = UINT64_C(1) << 40;
        memcpy(d + l.cfglen, &n, 8);
    }
    write_with_crc("x.ckpt", d, l.len);
    both_refuse("x.ckpt", "config length");
    free(d);
    free(l.data);
}
END_TEST

/* The plugins recorded (field, solver, adjoint, task): every field
 * checked. */
START_TEST(test_hostile_plugins)
{
    const comp_layout *field;
    layout l;
    char *d;

    make_spiral_checkpoint();
    l = layout_read("c.ckpt");
    ck_assert_uint_eq(l.ncomps, 4);
    ck_assert_int_eq(memcmp(l.data + l.comp[3].name, "windows", 7), 0);
    field = &l.comp[0];
    ck_assert_int_eq(memcmp(l.data + field->name, "mlp", 3), 0);
    ck_assert_int_eq(memcmp(l.data + field->version, "1", 1), 0);
    patch_i64(&l, l.ncomp, 0, "plugin count 0");
    patch_i64(&l, l.ncomp, 65, "plugin count 65");
    /* one more: the RNG name length read as a kind */
    patch_i64(&l, l.ncomp, 5, "plugin 4 has kind 7");
    patch_i32(&l, field->kind, 9, "kind 9");
    patch_i64(&l, field->namelen, 0, "name of plugin 0 has length 0");
    patch_i64(&l, field->namelen, 65, "name of plugin 0 has length 65");
    patch(&l, field->name, "mLp", 3, "name of plugin 0 is not [a-z0-9_]+");
    patch_i64(&l, field->versionlen, 0,
              "version of plugin 'mlp' has length 0");
    patch_i64(&l, field->versionlen, INT64_C(1) << 40,
              "version of plugin 'mlp' has length 1099511627776");
    patch(&l, field->version, "\n", 1, "version of plugin 'mlp' is not");
    patch(&l, field->version, "", 1, "version of plugin 'mlp' is not");
    patch(&l, field->version, " ", 1, "version of plugin 'mlp' is not");
    /* a version of 33 characters: the file grows by 32 bytes */
    ck_assert_ptr_nonnull(d = malloc(l.len + 32));
    memcpy(d, l.data, field->version);
    memset(d + field->version, '7', 33);
    memcpy(d + field->version + 33, l.data + field->version + 1,
           l.len - field->version - 1);
    {
        uint64_t n = 33;
        memcpy(d + field->versionlen, &n, 8);
    }
    write_with_crc("x.ckpt", d, l.len + 32);
    both_refuse("x.ckpt", "version of plugin 'mlp' has length 33");
    free(d);
    free(l.data);
}
END_TEST

/* A checkpoint made with other plugin versions or builds loads, with one
 * warning per difference naming the plugin and both versions. */
START_TEST(test_plugin_version_differs)
{
    const comp_layout *field, *solver;
    test_run_result r;
    uint32_t sig;
    layout l;
    char *d;

    make_spiral_checkpoint();
    l = layout_read("c.ckpt");
    field = &l.comp[0];
    solver = &l.comp[1];
    ck_assert_int_eq(memcmp(l.data + solver->name, "tsit5", 5), 0);
    /* as written: no word about versions */
    r = run("predict", "c.ckpt", "-o", "p.csv");
    test_assert_code(r, 0);
    ck_assert_msg(!strstr(r.err, "version"), "%s", r.err);
    test_run_free(&r);
    ck_assert_ptr_nonnull(d = malloc(l.len));
    memcpy(d, l.data, l.len);
    d[field->version] = '7';
    memcpy(&sig, d + solver->signature, 4);
    sig ^= 0x10000u;
    memcpy(d + solver->signature, &sig, 4);
    write_with_crc("v.ckpt", d, l.len);
    r = run("predict", "v.ckpt", "-o", "p.csv");
    test_assert_code(r, 0);
    assert_contains(r.err, "warning: v.ckpt: made with field 'mlp' version "
                           "7, this run uses version 1\n");
    assert_contains(r.err, "warning: v.ckpt: made with solver 'tsit5' from a "
                           "module of build signature");
    test_run_free(&r);
    r = run("train", "s.ini", "--quiet", "-s", "train.iterations=6", "-s",
            "train.checkpoint=", "-s", "train.metrics=", "--resume",
            "v.ckpt");
    test_assert_code(r, 0);
    assert_contains(r.err, "made with field 'mlp' version 7, this run uses "
                           "version 1");
    test_run_free(&r);
    /* a plugin this run does not use: the adjoint renamed */
    memcpy(d, l.data, l.len);
    ck_assert_uint_eq(u64_at(d + l.comp[2].namelen), 8); /* "discrete" */
    memcpy(d + l.comp[2].name, "discret2", 8);
    write_with_crc("v.ckpt", d, l.len);
    r = run("predict", "v.ckpt", "-o", "p.csv");
    test_assert_code(r, 0);
    assert_contains(r.err, "made with adjoint 'discret2' version 1, which "
                           "this run does not use");
    assert_contains(r.err, "made without adjoint 'discrete' (version 1), "
                           "which this run uses");
    test_run_free(&r);
    free(d);
    free(l.data);
}
END_TEST

/* Version-3 (no failures, learning-rate scale, run id or average) and
 * version-4 files (no average) are read as those of a run without
 * failures or averaging: the same prediction as their version-5 twin. */
START_TEST(test_old_versions_read)
{
    test_run_result r;
    char *d, *old, *now;
    layout l;
    uint32_t v;

    make_spiral_checkpoint();
    l = layout_read("c.ckpt");
    r = run("predict", "c.ckpt", "-o", "p5.csv");
    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_ptr_nonnull(now = test_read_file(in_dir("p5.csv"), NULL));
    ck_assert_ptr_nonnull(d = malloc(l.len));
    for (v = 3; v <= 4; v++) {
        /* the fields that version lacks, cut out */
        const size_t from = v == 3 ? l.failures : l.navg;
        memcpy(d, l.data, from);
        memcpy(d + from, l.data + l.ncomp, l.len - l.ncomp);
        memcpy(d + 8, &v, 4);
        write_with_crc("old.ckpt", d, l.len - (l.ncomp - from));
        r = run("predict", "old.ckpt", "-o", "p.csv");
        test_assert_code(r, 0);
        test_run_free(&r);
        ck_assert_ptr_nonnull(old = test_read_file(in_dir("p.csv"), NULL));
        ck_assert_str_eq(old, now);
        free(old);
    }
    free(now);
    free(d);
    free(l.data);
}
END_TEST

START_TEST(test_old_version_named)
{
    test_run_result r;
    layout l;
    uint32_t v = 2;

    make_spiral_checkpoint();
    l = layout_read("c.ckpt");
    memcpy(l.data + 8, &v, 4);
    write_with_crc("old.ckpt", l.data, l.len);
    r = run("predict", "old.ckpt");
    test_assert_code(r, 2);
    assert_contains(r.err, "version 2, written by an older nde");
    test_run_free(&r);
    free(l.data);
}
END_TEST

/* A header that claims a huge payload in a short file: refused as
 * truncated, memory growing with what is read (the loader allocated the
 * claimed 512 GiB first: an allocator abort under ASan). */
START_TEST(test_huge_payload_length_claimed)
{
    test_run_result r;
    uint64_t claimed = (uint64_t)1 << 39;
    FILE *fp;
    layout l;

    make_spiral_checkpoint();
    l = layout_read("c.ckpt");
    memcpy(l.data + 16, &claimed, 8);
    ck_assert_ptr_nonnull(fp = fopen(in_dir("huge.ckpt"), "wb"));
    ck_assert_uint_eq(fwrite(l.data, 1, 128, fp), 128);
    fclose(fp);
    r = run("predict", "huge.ckpt");
    test_assert_code(r, 2);
    assert_contains(r.err, "checkpoint truncated (100 of 549755813888");
    test_run_free(&r);
    free(l.data);
}
END_TEST

/* The trainer never writes what the loader refuses: a weight-decay term
 * whose square overflows would make v infinite (it used to be stored and
 * training went on); the update is refused instead. */
START_TEST(test_adam_overflow_stops)
{
    test_run_result r;

    write_text("s.ini", spiral_ini);
    r = run("train", "s.ini", "--quiet", "-s", "train.weight_decay=1e300");
    test_assert_code(r, 1);
    assert_contains(r.err, "iteration 1: the Adam update of parameter");
    assert_contains(r.err, "not finite");
    test_run_free(&r);
}
END_TEST

/* ---- the config's meaning ------------------------------------------------ */

START_TEST(test_resume_compares_meaning)
{
    /* spiral_ini with sections and keys in another order, numbers spelt
     * otherwise, a boolean-free, list-spaced form */
    static const char reordered[] =
        "[train]\nmetrics = m.jsonl\nseed = 3\nlr = 1e-2\nbatch_size = 8\n"
        "iterations = 8\ncheckpoint_every = 1\ncheckpoint = c.ckpt\n"
        "eval_every = 0\n"
        "[data]\nbatch_time = 10\nt1 = 5.0\nnpoints = 200\nsource = spiral\n"
        "[adjoint]\nplugin = discrete\n"
        "[field]\ninput = cube\nactivation = tanh\nlayers = 2,8 , 2\n"
        "plugin = mlp\n"
        "[solver]\natol = 0.00000001\nrtol = 0.000001\nplugin = tsit5\n";
    test_run_result r;

    make_spiral_checkpoint();
    write_text("r.ini", reordered);
    r = run("train", "r.ini", "--quiet", "--resume", "c.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    /* a different number is still a different config */
    r = run("train", "r.ini", "--quiet", "-s", "solver.rtol=1.0000001e-6",
            "--resume", "c.ckpt");
    test_assert_code(r, 2);
    assert_contains(r.err, "different config");
    assert_contains(r.err, "rtol");
    test_run_free(&r);
}
END_TEST

START_TEST(test_resume_regularizer_order_matters)
{
    static const char a[] = "[regularizer.one]\nplugin = local\nweight = "
                            "0.01\n[regularizer.two]\nplugin = global\n"
                            "weight = 0.01\n";
    static const char b[] = "[regularizer.two]\nplugin = global\nweight = "
                            "0.01\n[regularizer.one]\nplugin = local\n"
                            "weight = 0.01\n";
    char text[4096];
    test_run_result r;

    snprintf(text, sizeof text, "%s%s", spiral_ini, a);
    write_text("a.ini", text);
    snprintf(text, sizeof text, "%s%s", spiral_ini, b);
    write_text("b.ini", text);
    r = run("train", "a.ini", "--quiet", "-s", "train.iterations=3");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", "b.ini", "--quiet", "--resume", "c.ckpt");
    test_assert_code(r, 2);
    assert_contains(r.err, "different config");
    test_run_free(&r);
}
END_TEST

/* ---- data digest --------------------------------------------------------- */

static const char decay_ini[] =
    "[solver]\nplugin = tsit5\nrtol = 1e-8\natol = 1e-10\n"
    "[field]\nplugin = expr\nstate = x\nparams = k=0.5\ndx = -k*x\n"
    "[adjoint]\nplugin = discrete\n"
    "[data]\nsource = csv\npath = d.csv\ntest_fraction = 0\n"
    "[train]\niterations = 4\nbatch_size = 2\nlr = 0.01\n"
    "checkpoint = d.ckpt\nmetrics =\n";
static const char decay_csv[] =
    "id,t,x\na,0,1\na,1,0.5\na,2,0.25\nb,0,2\nb,1,1\nb,2,0.5\n";

START_TEST(test_data_changed)
{
    test_run_result r;

    write_text("d.ini", decay_ini);
    write_text("d.csv", decay_csv);
    r = run("train", "d.ini", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    /* the same data: no word about it */
    r = run("train", "d.ini", "--quiet", "-s", "train.iterations=6", "-s",
            "train.checkpoint=", "--resume", "d.ckpt");
    test_assert_code(r, 0);
    ck_assert_msg(!strstr(r.err, "other data"), "%s", r.err);
    test_run_free(&r);
    /* one value changed: a warning by default, refused on request */
    write_text("d.csv", "id,t,x\na,0,1\na,1,0.5\na,2,0.25\nb,0,2\nb,1,1\n"
                        "b,2,0.51\n");
    r = run("train", "d.ini", "--quiet", "-s", "train.iterations=6", "-s",
            "train.checkpoint=", "--resume", "d.ckpt");
    test_assert_code(r, 0);
    assert_contains(r.err, "warning: d.ckpt was trained on other data");
    test_run_free(&r);
    r = run("train", "d.ini", "--quiet", "-s", "train.iterations=6", "-s",
            "train.checkpoint=", "-s", "train.data_changed=refuse",
            "--resume", "d.ckpt");
    test_assert_code(r, 2);
    assert_contains(r.err, "data differ");
    assert_contains(r.err, "data_changed = refuse");
    test_run_free(&r);
    r = run("predict", "d.ckpt", "-o", "p.csv");
    test_assert_code(r, 0);
    assert_contains(r.err, "other data");
    test_run_free(&r);
    /* a bad value of the key */
    r = run("train", "d.ini", "--quiet", "-s", "train.data_changed=maybe");
    test_assert_code(r, 2);
    assert_contains(r.err, "data_changed");
    test_run_free(&r);
}
END_TEST

/* ---- metrics after a kill ------------------------------------------------ */

/* Every line of m.jsonl is whole and ours, and the step lines (with a
 * loss) are iterations 1..n, each once. */
static void metrics_exactly_once(long n)
{
    char *text = test_read_file(in_dir("m.jsonl"), NULL), *line, *eol;
    long *seen = calloc((size_t)n + 2, sizeof *seen), it;

    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(seen);
    for (line = text; *line; line = eol + 1) {
        ck_assert_msg((eol = strchr(line, '\n')) != NULL, "torn last line");
        *eol = '\0';
        ck_assert_msg(sscanf(line, "{\"iteration\": %ld,", &it) == 1 &&
                          eol[-1] == '}',
                      "not a metrics line: %s", line);
        ck_assert_msg(it >= 1 && it <= n, "iteration %ld of %ld", it, n);
        if (strstr(line, "\"loss\""))
            seen[it]++;
    }
    for (it = 1; it <= n; it++)
        ck_assert_msg(seen[it] == 1, "iteration %ld in the metrics %ld times",
                      it, seen[it]);
    free(seen);
    free(text);
}

START_TEST(test_metrics_cut_on_resume)
{
    test_run_result r;
    FILE *fp;
    int i;

    write_text("s.ini", spiral_ini);
    r = run("train", "s.ini", "--quiet", "-s", "train.iterations=10", "-s",
            "train.checkpoint_every=10");
    test_assert_code(r, 0);
    test_run_free(&r);
    /* what a run killed at iteration 15 leaves: lines past the checkpoint
     * and half a line */
    ck_assert_ptr_nonnull(fp = fopen(in_dir("m.jsonl"), "a"));
    for (i = 11; i <= 15; i++)
        fprintf(fp, "{\"iteration\": %d, \"loss\": 1}\n", i);
    fputs("{\"iteration\": 16, \"lo", fp);
    fclose(fp);
    r = run("train", "s.ini", "--quiet", "-s", "train.iterations=20",
            "--resume", "c.ckpt");
    test_assert_code(r, 0);
    assert_contains(r.err, "dropped 6 lines after iteration 10");
    test_run_free(&r);
    metrics_exactly_once(20);
}
END_TEST

static long count_lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    long n = 0;
    int c;

    if (!fp)
        return 0;
    while ((c = getc(fp)) != EOF)
        n += c == '\n';
    fclose(fp);
    return n;
}

/* A resumed run may name a metrics file that does not exist yet: it is
 * created and holds the iterations after the checkpoint's (and the final
 * evaluation's line). */
START_TEST(test_metrics_new_on_resume)
{
    static const char first[] = "{\"iteration\": 11,";
    test_run_result r;
    char *text;

    write_text("s.ini", spiral_ini);
    r = run("train", "s.ini", "--quiet", "-s", "train.iterations=10", "-s",
            "train.checkpoint_every=10");
    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_int_eq(remove(in_dir("m.jsonl")), 0);
    r = run("train", "s.ini", "--quiet", "-s", "train.iterations=12",
            "--resume", "c.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    text = test_read_file(in_dir("m.jsonl"), NULL);
    ck_assert_msg(strncmp(text, first, strlen(first)) == 0,
                  "first line: %.40s", text);
    ck_assert_int_eq(count_lines(in_dir("m.jsonl")), 3);
    free(text);
}
END_TEST

/* The iteration a checkpoint holds (the same offset in every version). */
static long ckpt_iteration(const char *name)
{
    size_t len;
    char *d = test_read_file(in_dir(name), &len);
    int64_t it;

    ck_assert_ptr_nonnull(d);
    ck_assert_uint_gt(len, 44 + u64_at(d + 28) + 8);
    memcpy(&it, d + 44 + u64_at(d + 28), 8);
    free(d);
    return (long)it;
}

/* Start `nde train s.ini [--resume c.ckpt]` with checkpoint_every `every`
 * and SIGKILL it once m.jsonl has `lines` lines (or it ends). */
static void train_and_kill(const char *every, long lines, int resume)
{
    const char *exe = getenv("NDE_EXE");
    char set[64];
    struct timespec nap = {0, 200000};
    pid_t pid;
    int status;
    long waited;

    snprintf(set, sizeof set, "train.checkpoint_every=%s", every);
    ck_assert_ptr_nonnull(exe);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (chdir(workdir) != 0 || !freopen("/dev/null", "w", stdout) ||
            !freopen(".kill_stderr", "w", stderr))
            _exit(127);
        if (resume)
            execl(exe, "nde", "train", "s.ini", "--quiet", "-s", set, "-s",
                  "train.iterations=100000", "--resume", "c.ckpt",
                  (char *)NULL);
        else
            execl(exe, "nde", "train", "s.ini", "--quiet", "-s", set, "-s",
                  "train.iterations=100000", (char *)NULL);
        _exit(127);
    }
    for (waited = 0; count_lines(in_dir("m.jsonl")) < lines; waited++) {
        ck_assert_msg(waited < 200000, "no metrics after 40 s");
        ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0);
        nanosleep(&nap, NULL);
    }
    kill(pid, SIGKILL);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void kill_and_resume(const char *every)
{
    const char *stale = ".c.ckpt.AbC123";
    test_run_result r;
    char n[64];
    long at;

    write_text("s.ini", spiral_ini);
    /* killed twice at different points, resumed each time */
    train_and_kill(every, 23, 0);
    train_and_kill(every, 47, 1);
    write_text(stale, "left by a killed writer");
    at = ckpt_iteration("c.ckpt");
    snprintf(n, sizeof n, "train.iterations=%ld", at + 12);
    r = run("train", "s.ini", "--quiet", "-s", n, "--resume", "c.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    metrics_exactly_once(at + 12);
    ck_assert_msg(access(in_dir(stale), F_OK) != 0,
                  "the stale temporary file is still there");
}

START_TEST(test_kill_checkpoint_every_1) { kill_and_resume("1"); }
END_TEST

START_TEST(test_kill_checkpoint_every_10) { kill_and_resume("10"); }
END_TEST

START_TEST(test_stale_temporaries_only_ours)
{
    /* names that are not cli_outfile_open's for c.ckpt, and a directory
     * of the right name, stay */
    static const char *const keep[] = {".c.ckpt.AbC12", ".c.ckpt.AbC1234",
                                       "c.ckpt.AbC123", ".c.ckptXAbC123",
                                       ".m.jsonl.x", NULL};
    test_run_result r;
    size_t i;

    write_text("s.ini", spiral_ini);
    for (i = 0; keep[i]; i++)
        write_text(keep[i], "x");
    ck_assert_int_eq(mkdir(in_dir(".c.ckpt.dir123"), 0755), 0);
    write_text(".m.jsonl.Zz9Yy8", "x");
    r = run("train", "s.ini", "--quiet", "-s", "train.iterations=1");
    test_assert_code(r, 0);
    test_run_free(&r);
    for (i = 0; keep[i]; i++)
        ck_assert_msg(access(in_dir(keep[i]), F_OK) == 0, "%s removed",
                      keep[i]);
    ck_assert_int_eq(access(in_dir(".c.ckpt.dir123"), F_OK), 0);
    ck_assert_int_ne(access(in_dir(".m.jsonl.Zz9Yy8"), F_OK), 0);
}
END_TEST

/* A checkpoint path that is a symlink: its temporaries are written next
 * to the target, and a killed writer's are removed there. */
START_TEST(test_stale_temporaries_at_symlink_target)
{
    test_run_result r;

    write_text("s.ini", spiral_ini);
    ck_assert_int_eq(mkdir(in_dir("real"), 0755), 0);
    ck_assert_int_eq(symlink("real/t.ckpt", in_dir("c.ckpt")), 0);
    write_text("real/.t.ckpt.Zz9Yy8", "x");
    r = run("train", "s.ini", "--quiet", "-s", "train.iterations=1");
    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_int_ne(access(in_dir("real/.t.ckpt.Zz9Yy8"), F_OK), 0);
    ck_assert_int_eq(access(in_dir("real/t.ckpt"), F_OK), 0);
}
END_TEST

static Suite *checkpoint_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_hostile_numbers);
    tcase_add_test(tc, test_hostile_rng);
    tcase_add_test(tc, test_hostile_config);
    tcase_add_test(tc, test_huge_payload_length_claimed);
    tcase_add_test(tc, test_hostile_plugins);
    tcase_add_test(tc, test_plugin_version_differs);
    tcase_add_test(tc, test_old_version_named);
    tcase_add_test(tc, test_old_versions_read);
    tcase_add_test(tc, test_adam_overflow_stops);
    tcase_add_test(tc, test_resume_compares_meaning);
    tcase_add_test(tc, test_resume_regularizer_order_matters);
    tcase_add_test(tc, test_data_changed);
    tcase_add_test(tc, test_metrics_cut_on_resume);
    tcase_add_test(tc, test_metrics_new_on_resume);
    tcase_add_test(tc, test_kill_checkpoint_every_1);
    tcase_add_test(tc, test_kill_checkpoint_every_10);
    tcase_add_test(tc, test_stale_temporaries_only_ours);
    tcase_add_test(tc, test_stale_temporaries_at_symlink_target);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(checkpoint_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
