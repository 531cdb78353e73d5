/*
 * test_cli.c - end-to-end tests of the `nde` program.
 *
 * Each test writes a config into a fresh temporary directory, runs the
 * program (NDE_EXE) as a child process and checks its exit code AND its
 * message, or the numbers it wrote. NDE_SOURCE_ROOT locates examples/,
 * NDE_BAD_PLUGIN_DIR holds deliberately broken modules.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nde/field.h"
#include "nde/plugin.h"
#include "../test_util.h"

#define MAX_ARGS 32

typedef struct run_result {
    int code;   /* exit status, or 128 + signal */
    char *out;  /* stdout */
    char *err;  /* stderr */
} run_result;

static char workdir[1024];

static const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    ck_assert_msg(v && *v, "environment variable %s is not set", name);
    return v;
}

/* A path in workdir, valid until the test's teardown. */
static char *paths[64];
static size_t npaths;

static const char *path_in(const char *name)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s/%s", workdir, name);
    ck_assert(n > 0 && (size_t)n < sizeof buf);
    ck_assert_uint_lt(npaths, sizeof paths / sizeof paths[0]);
    ck_assert_ptr_nonnull(paths[npaths] = strdup(buf));
    return paths[npaths++];
}

/* A formatted string, valid until the test's teardown. */
static const char *fmt(const char *format, const char *arg)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, format, arg);
    ck_assert(n > 0 && (size_t)n < sizeof buf);
    ck_assert_uint_lt(npaths, sizeof paths / sizeof paths[0]);
    ck_assert_ptr_nonnull(paths[npaths] = strdup(buf));
    return paths[npaths++];
}

static const char *write_config(const char *name, const char *text)
{
    const char *path = path_in(name);
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

static const char *example(const char *name)
{
    static char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s/examples/%s",
                     env_or_fail("NDE_SOURCE_ROOT"), name);
    ck_assert(n > 0 && (size_t)n < sizeof buf);
    return buf;
}

static void result_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

/* When not 0, run_env's child runs under this address-space limit (bytes)
 * and is killed by SIGALRM after 30 s instead of hanging the suite. */
static rlim_t run_address_limit;

/*
 * Run nde with the NULL-terminated arguments; `plugin_path`, when not NULL,
 * becomes NDE_PLUGIN_PATH. A sanitizer report on stderr fails the test
 * whatever the exit code (the expected codes 1 and 2 could hide one).
 */
static run_result run_env(const char *plugin_path, const char *arg, ...)
{
    const char *argv[MAX_ARGS + 2];
    const char *exe = env_or_fail("NDE_EXE");
    char out_path[4096], err_path[4096];
    run_result r;
    va_list ap;
    pid_t pid;
    int n = 0, status;

    snprintf(out_path, sizeof out_path, "%s/.stdout", workdir);
    snprintf(err_path, sizeof err_path, "%s/.stderr", workdir);
    argv[n++] = "nde";
    va_start(ap, arg);
    for (; arg && n < MAX_ARGS; arg = va_arg(ap, const char *))
        argv[n++] = arg;
    va_end(ap);
    argv[n] = NULL;

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(127);
        if (run_address_limit) {
            struct rlimit lim = {run_address_limit, run_address_limit};
            if (setrlimit(RLIMIT_AS, &lim) != 0)
                _exit(127);
            alarm(30);
        }
        if (plugin_path)
            setenv("NDE_PLUGIN_PATH", plugin_path, 1);
        else
            unsetenv("NDE_PLUGIN_PATH");
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = test_read_file(out_path, NULL);
    r.err = test_read_file(err_path, NULL);
    ck_assert_ptr_nonnull(r.out);
    ck_assert_ptr_nonnull(r.err);
    unlink(out_path);
    unlink(err_path);
    ck_assert_msg(!strstr(r.err, "Sanitizer") && !strstr(r.err, "runtime error"),
                  "sanitizer report:\n%s", r.err);
    return r;
}

#define run(...) run_env(NULL, __VA_ARGS__, (const char *)NULL)

#define assert_contains(hay, needle)                                         \
    ck_assert_msg(strstr((hay), (needle)) != NULL,                           \
                  "expected \"%s\" in:\n%s", (needle), (hay))

/* Exit code and message of a failed run; every message starts "nde: ". */
#define assert_fails(r, want_code, ...)                                      \
    do {                                                                     \
        const char *needles_[] = {__VA_ARGS__, NULL};                        \
        ck_assert_msg((r).code == (want_code),                               \
                      "exit code %d, expected %d; stderr:\n%s", (r).code,    \
                      (want_code), (r).err);                                 \
        ck_assert_msg(strncmp((r).err, "nde: ", 5) == 0,                     \
                      "message does not start with 'nde: ':\n%s", (r).err);  \
        for (int i_ = 0; needles_[i_]; i_++)                                 \
            assert_contains((r).err, needles_[i_]);                          \
    } while (0)

#define assert_ok(r)                                                         \
    ck_assert_msg((r).code == 0, "exit code %d; stderr:\n%s", (r).code,      \
                  (r).err)

/* A valid Lotka-Volterra config; tests append or change lines of it. */
#define LV_PROBLEM "[problem]\nt0 = 0\nt1 = 10\ny0 = 1, 1\nnsave = 11\n\n"
#define LV_SOLVER "[solver]\nplugin = tsit5\nrtol = 1e-8\natol = 1e-10\n\n"
#define LV_FIELD                                                             \
    "[field]\nplugin = expr\nstate = x, y\n"                                 \
    "params = a=1.5, b=1.0, c=3.0, d=1.0\n"                                  \
    "dx = a*x - b*x*y\ndy = d*x*y - c*y\n"

/* ---- CSV ---------------------------------------------------------------- */

typedef struct csv {
    char header[256];
    size_t rows, cols;
    double v[4096];
} csv;

static void parse_csv(const char *text, csv *c)
{
    const char *p = strchr(text, '\n');
    size_t hlen;

    ck_assert_msg(p != NULL, "no header line in output:\n%s", text);
    hlen = (size_t)(p - text);
    ck_assert_uint_lt(hlen, sizeof c->header);
    memcpy(c->header, text, hlen);
    c->header[hlen] = '\0';
    c->cols = 1;
    for (const char *h = c->header; *h; h++)
        c->cols += *h == ',';
    c->rows = 0;
    for (p++; *p; c->rows++) {
        for (size_t j = 0; j < c->cols; j++) {
            char *end;
            ck_assert_uint_lt(c->rows * c->cols + j, 4096);
            c->v[c->rows * c->cols + j] = strtod(p, &end);
            ck_assert_msg(end != p, "not a number at: %.40s", p);
            p = end;
            ck_assert_msg(*p == (j + 1 < c->cols ? ',' : '\n'),
                          "bad separator at: %.40s", p);
            p++;
        }
    }
}

static double cell(const csv *c, size_t row, size_t col)
{
    ck_assert_uint_lt(row, c->rows);
    return c->v[row * c->cols + col];
}

/* ---- reference solution ------------------------------------------------- */

/* Lotka-Volterra by classical RK4 with a fixed small step: an independent
 * reference (no nde code) whose error, O(h^4) ~ 1e-13 here, is far below
 * the tolerances it is compared with. */
static void lv_reference(double t1, double y[2])
{
    const double a = 1.5, b = 1.0, c = 3.0, d = 1.0;
    const long n = 100000;
    const double h = t1 / (double)n;
    double k[4][2], g[2];

    for (long s = 0; s < n; s++) {
        for (int i = 0; i < 4; i++) {
            double w = i == 0 ? 0 : i == 3 ? h : h / 2;
            g[0] = y[0] + (i ? w * k[i - 1][0] : 0);
            g[1] = y[1] + (i ? w * k[i - 1][1] : 0);
            k[i][0] = a * g[0] - b * g[0] * g[1];
            k[i][1] = d * g[0] * g[1] - c * g[1];
        }
        for (int j = 0; j < 2; j++)
            y[j] += h / 6 * (k[0][j] + 2 * k[1][j] + 2 * k[2][j] + k[3][j]);
    }
}

/* ---- fixtures ----------------------------------------------------------- */

static void setup(void)
{
    snprintf(workdir, sizeof workdir, "%s/nde-cli-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(workdir));
}

static void teardown(void)
{
    DIR *d = opendir(workdir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            unlinkat(dirfd(d), e->d_name, 0) != 0)
            fprintf(stderr, "cannot remove %s/%s\n", workdir, e->d_name);
    closedir(d);
    rmdir(workdir);
    while (npaths)
        free(paths[--npaths]);
}

/* Names in workdir other than "." and "..", sorted by readdir order. */
static size_t count_entries(void)
{
    DIR *d = opendir(workdir);
    struct dirent *e;
    size_t n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* ---- the program itself ------------------------------------------------- */

START_TEST(test_help_and_version)
{
    run_result r = run("--help");
    assert_ok(r);
    assert_contains(r.out, "Usage: nde COMMAND");
    assert_contains(r.out, "solve");
    assert_contains(r.out, "plugins");
    result_free(&r);

    r = run("solve", "--help");
    assert_ok(r);
    assert_contains(r.out, "Usage: nde solve CONFIG");
    assert_contains(r.out, "--stats-json");
    result_free(&r);

    r = run("plugins", "--help");
    assert_ok(r);
    assert_contains(r.out, "Usage: nde plugins");
    result_free(&r);

    /* how to pick a weight, and the scale columns it reports */
    r = run("ab", "--help");
    assert_ok(r);
    assert_contains(r.out, "--sweep [ARM:]KEY=LO:HI:N");
    assert_contains(r.out, "sweep_quality");
    assert_contains(r.out, "reg_NAME.ratio_mean");
    result_free(&r);
    r = run("train", "--help");
    assert_ok(r);
    assert_contains(r.out, "reg_NAME.ratio");
    result_free(&r);

    r = run("--version");
    assert_ok(r);
    assert_contains(r.out, "nde 0.");
    result_free(&r);
}
END_TEST

START_TEST(test_no_arguments)
{
    run_result r = run("solve");
    assert_fails(r, 2, "no config file");
    result_free(&r);

    r = run_env(NULL, (const char *)NULL);
    ck_assert_int_eq(r.code, 2);
    assert_contains(r.err, "Usage: nde");
    result_free(&r);
}
END_TEST

START_TEST(test_unknown_command)
{
    run_result r = run("slove", "x.ini");
    assert_fails(r, 2, "unknown command 'slove'", "did you mean 'solve'");
    result_free(&r);

    r = run("solve", "--frobnicate", "x.ini");
    assert_fails(r, 2, "unknown option '--frobnicate'");
    result_free(&r);

    r = run("solve", "x.ini", "-o");
    assert_fails(r, 2, "'-o' needs a value");
    result_free(&r);
}
END_TEST

START_TEST(test_missing_config_file)
{
    const char *path = path_in("does-not-exist.ini");
    run_result r = run("solve", path);
    assert_fails(r, 2, path);
    result_free(&r);
}
END_TEST

/* ---- correctness -------------------------------------------------------- */

START_TEST(test_lotka_volterra_reference)
{
    double ref[2] = {1, 1};
    run_result r = run("solve", example("lotka_volterra.ini"));
    csv *c = malloc(sizeof *c);

    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_str_eq(c->header, "t,x,y");
    ck_assert_uint_eq(c->rows, 101);
    /* y0 comes back exactly (17 significant digits round-trip). */
    ck_assert(cell(c, 0, 0) == 0.0 && cell(c, 0, 1) == 1.0 &&
              cell(c, 0, 2) == 1.0);
    ck_assert(cell(c, 100, 0) == 10.0);
    lv_reference(10.0, ref);
    /* The example solves at rtol 1e-8, atol 1e-10; measured relative error
     * at t = 10: 5e-9 (tsit5). */
    ck_assert_msg(fabs(cell(c, 100, 1) - ref[0]) < 1e-7 * fabs(ref[0]) &&
                      fabs(cell(c, 100, 2) - ref[1]) < 1e-7 * fabs(ref[1]),
                  "y(10) = (%.17g, %.17g), reference (%.17g, %.17g)",
                  cell(c, 100, 1), cell(c, 100, 2), ref[0], ref[1]);
    assert_contains(r.err, "nfe ");
    assert_contains(r.err, "status NDE_OK");
    result_free(&r);

    /* Tighter tolerances through overrides get closer to the reference
     * (measured: 5e-14). */
    r = run("solve", example("lotka_volterra.ini"), "-s", "solver.rtol=1e-12",
            "-s", "solver.atol=1e-12", "-s", "problem.nsave=2");
    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_uint_eq(c->rows, 2);
    ck_assert_msg(fabs(cell(c, 1, 1) - ref[0]) < 1e-11 * fabs(ref[0]) &&
                      fabs(cell(c, 1, 2) - ref[1]) < 1e-11 * fabs(ref[1]),
                  "tight y(10) = (%.17g, %.17g), reference (%.17g, %.17g)",
                  cell(c, 1, 1), cell(c, 1, 2), ref[0], ref[1]);
    result_free(&r);
    free(c);
}
END_TEST

START_TEST(test_batch_column)
{
    const char *cfg = write_config("batch.ini",
        "[problem]\nt0 = 0\nt1 = 1\ny0 = 1, 1\n     2, 0.5\nsaveat = 0, 0.5, 1\n\n"
        LV_SOLVER LV_FIELD);
    csv *c = malloc(sizeof *c);
    run_result r = run("solve", cfg);

    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_str_eq(c->header, "batch,t,x,y");
    ck_assert_uint_eq(c->rows, 6);
    /* Rows grouped by batch row, save times in order within each. */
    ck_assert(cell(c, 0, 0) == 0 && cell(c, 2, 0) == 0 && cell(c, 3, 0) == 1);
    ck_assert(cell(c, 3, 1) == 0 && cell(c, 3, 2) == 2 && cell(c, 3, 3) == 0.5);
    ck_assert(cell(c, 5, 1) == 1);
    /* Different initial states give different trajectories. */
    ck_assert(cell(c, 2, 2) != cell(c, 5, 2));
    result_free(&r);
    free(c);
}
END_TEST

START_TEST(test_stats_json)
{
    const char *json = path_in("stats.json");
    run_result r = run("solve", example("lotka_volterra.ini"), "-o",
                       path_in("out.csv"), "--stats-json", json);
    char *text;
    const char *p;

    assert_ok(r);
    ck_assert_str_eq(r.out, "");
    text = test_read_file(json, NULL);
    ck_assert_ptr_nonnull(text);
    assert_contains(text, "\"nfe\": ");
    assert_contains(text, "\"steps_accepted\": ");
    assert_contains(text, "\"steps_rejected\": ");
    assert_contains(text, "\"status\": \"NDE_OK\"");
    p = strstr(text, "\"nfe\": ");
    ck_assert_int_gt(atol(p + 7), 0);
    p = strstr(text, "\"steps_accepted\": ");
    ck_assert_int_gt(atol(p + 18), 0);
    free(text);
    text = test_read_file(path_in("out.csv"), NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert(strncmp(text, "t,x,y\n", 6) == 0);
    free(text);
    result_free(&r);
}
END_TEST

/* [problem] event: each row's event time on stderr and in --stats-json
 * (examples/ball.ini: impacts at analytic times), null when it does not
 * fire, and the config errors. */
START_TEST(test_event)
{
    const char *json = path_in("event.json");
    const double want[2] = {sqrt(2 * 10 / 9.81),
                            (5 + sqrt(25 + 2 * 9.81 * 2)) / 9.81};
    run_result r = run("solve", example("ball.ini"), "--stats-json", json);
    const char *cfg;
    char *text, *p, *end;
    double t;

    assert_ok(r);
    assert_contains(r.err, "nde: event row 0: t = 1.42784312292706");
    assert_contains(r.err, "nde: event row 1: t = 1.32670601058161");
    /* after the impact the state stays at the ground */
    assert_contains(r.out, "\n0,5,");
    text = test_read_file(json, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(p = strstr(text, "\"event_t\": ["));
    p += strlen("\"event_t\": [");
    for (size_t i = 0; i < 2; i++, p = end + 1) {
        t = strtod(p, &end);
        ck_assert_msg(fabs(t - want[i]) <= 1e-10, "row %zu: %.17g vs %.17g",
                      i, t, want[i]);
    }
    free(text);
    result_free(&r);

    r = run("solve", example("ball.ini"), "-s", "problem.event=x + 1000",
            "--stats-json", json);
    assert_ok(r);
    assert_contains(r.err, "nde: event row 0: did not fire");
    assert_contains(r.err, "nde: event row 1: did not fire");
    text = test_read_file(json, NULL);
    assert_contains(text, "\"event_t\": [null, null]}");
    free(text);
    result_free(&r);

    cfg = write_config("bad_event.ini",
                       "[problem]\nt1 = 1\ny0 = 1, 0\nevent = x - h\n"
                       "[solver]\nplugin = tsit5\n"
                       "[field]\nplugin = expr\nstate = x, v\n"
                       "dx = v\ndv = -1\n");
    r = run("solve", cfg);
    ck_assert_int_eq(r.code, 2);
    assert_contains(r.err, "bad_event.ini:4: [problem] event: expression "
                           "'x - h' uses unknown variable 'h' (known: t, x, "
                           "v)");
    result_free(&r);
    r = run("solve", cfg, "-s", "problem.event=x", "-s",
            "problem.direction=down");
    ck_assert_int_eq(r.code, 2);
    assert_contains(r.err, "[problem] direction: 'down' is not a direction");
    result_free(&r);
    cfg = write_config("rk4_event.ini",
                       "[problem]\nt1 = 1\ny0 = 1, 0\nevent = x\n"
                       "[solver]\nplugin = rk4\ndt = 0.1\n"
                       "[field]\nplugin = expr\nstate = x, v\n"
                       "dx = v\ndv = -1\n");
    r = run("solve", cfg);
    ck_assert_int_eq(r.code, 2);
    assert_contains(r.err, "rk4_event.ini:4: [problem] event: needs an "
                           "adaptive ODE solver with dense output");
    assert_contains(r.err, "'rk4' is fixed-step");
    result_free(&r);
    r = run("solve", example("ball.ini"), "-u", "problem.event");
    ck_assert_int_eq(r.code, 2);
    assert_contains(r.err, "ball.ini:17: [problem] direction: needs an "
                           "event");
    result_free(&r);
}
END_TEST

START_TEST(test_examples_run)
{
    static const char *const names[] = {"spiral.ini", "ude.ini"};
    for (size_t i = 0; i < 2; i++) {
        run_result r = run("solve", example(names[i]));
        run_result again = run("solve", example(names[i]));
        assert_ok(r);
        ck_assert_msg(strlen(r.out) > 20, "%s: no output", names[i]);
        ck_assert_msg(!strstr(r.out, "nan") && !strstr(r.out, "inf"),
                      "%s: non-finite output", names[i]);
        /* Same config, same parameters (fixed seeds), same numbers. */
        ck_assert_str_eq(r.out, again.out);
        result_free(&r);
        result_free(&again);
    }
}
END_TEST

/* [field] threads: training the spiral on 1 and on 2 threads (every
 * batch split: thread_batch = 1; the batch of 64 windows) gives the same
 * model, bit for bit: the same predictions printed to 17 digits. */
START_TEST(test_mlp_threads_same_model)
{
    char *pred[2];
    for (int k = 0; k < 2; k++) {
        const char *ckpt = path_in(k ? "t2.ckpt" : "t1.ckpt");
        run_result r = run("train", example("spiral.ini"), "--quiet", "-s",
                           "train.iterations=3", "-s", "train.batch_size=64",
                           "-s", "train.eval_every=0", "-s",
                           "field.thread_batch=1", "-s",
                           k ? "field.threads=2" : "field.threads=1", "-s",
                           fmt("train.checkpoint=%s", ckpt), "-s",
                           fmt("train.metrics=%s", path_in("t.jsonl")));
        assert_ok(r);
        result_free(&r);
        r = run("predict", ckpt, "-s", "problem.nsave=5", "-s",
                "solver.rtol=1e-3", "-s", "solver.atol=1e-5", "-o",
                path_in("t.csv"));
        assert_ok(r);
        result_free(&r);
        ck_assert_ptr_nonnull(pred[k] = test_read_file(path_in("t.csv"),
                                                       NULL));
    }
    ck_assert_str_eq(pred[0], pred[1]);
    free(pred[0]);
    free(pred[1]);
}
END_TEST

START_TEST(test_mlp_seed)
{
    /* The mlp's weights come from [field]'s seed key: same seed, same
     * numbers; another seed, other numbers. */
    run_result a = run("solve", example("spiral.ini"), "-s", "problem.nsave=2");
    run_result b = run("solve", example("spiral.ini"), "-s", "problem.nsave=2",
                       "-s", "field.seed=1");
    run_result c = run("solve", example("spiral.ini"), "-s", "problem.nsave=2",
                       "-s", "field.seed=2");
    assert_ok(a);
    assert_ok(b);
    assert_ok(c);
    ck_assert_str_eq(a.out, b.out);
    ck_assert_str_ne(a.out, c.out);
    result_free(&a);
    result_free(&b);
    result_free(&c);
}
END_TEST

START_TEST(test_plugins_lists_all)
{
    static const char *const names[] = {"mlp", "linear", "expr", "sum",
        "tsit5", "dopri5", "bs3", "rk4", "euler"};
    char pat[64];
    run_result r = run("plugins");

    assert_ok(r);
    assert_contains(r.out, "field plugins:");
    assert_contains(r.out, "solver plugins:");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(pat, sizeof pat, "\n  %s - ", names[i]);
        assert_contains(r.out, pat);
    }
    /* Keys with type, default or "required", and help. */
    assert_contains(r.out, "rtol");
    assert_contains(r.out, "required");
    ck_assert_str_eq(r.err, "");
    result_free(&r);
}
END_TEST

START_TEST(test_plugins_kind_filter)
{
    run_result r = run("plugins", "solver");
    assert_ok(r);
    assert_contains(r.out, "\n  tsit5 - ");
    assert_contains(r.out, "order 5");
    assert_contains(r.out, "provides: adaptive, dense output, stiffness "
                           "estimate, step VJP, FSAL\n");
    ck_assert_ptr_null(strstr(r.out, "\n  mlp - "));
    result_free(&r);

    /* What an adjoint needs, apart from what a solver provides. */
    r = run("plugins", "adjoint");
    assert_ok(r);
    assert_contains(r.out, "needs: steps, step VJP\n");
    assert_contains(r.out, "needs: step VJP, reverse step\n");
    ck_assert_ptr_null(strstr(r.out, "provides:"));
    result_free(&r);

    r = run("plugins", "solvers");
    assert_fails(r, 2, "unknown kind 'solvers'", "did you mean 'solver'");
    result_free(&r);
}
END_TEST

/* ---- overrides ---------------------------------------------------------- */

START_TEST(test_set_creates_section)
{
    const char *cfg = write_config("nosolver.ini", LV_PROBLEM LV_FIELD);
    run_result r = run("solve", cfg);
    assert_fails(r, 2, "[solver]");
    result_free(&r);

    r = run("solve", cfg, "-s", "solver.plugin=tsit5");
    assert_ok(r);
    assert_contains(r.out, "t,x,y\n");
    result_free(&r);
}
END_TEST

START_TEST(test_set_subsection_key)
{
    /* y' = b_expert + b_correction: y(1) = y0 + b_e + b_c for any RK method. */
    const char *cfg = write_config("sum.ini",
        "[problem]\nt0 = 0\nt1 = 1\ny0 = 0\nsaveat = 1\n\n"
        "[solver]\nplugin = tsit5\n\n"
        "[field]\nplugin = sum\nparts = expert, correction\n\n"
        "[field.expert]\nplugin = linear\nA = 0\nb = 1\n\n"
        "[field.correction]\nplugin = linear\nA = 0\nb = 0.5\n");
    csv *c = malloc(sizeof *c);
    run_result r = run("solve", cfg);

    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_double_eq_tol(cell(c, 0, 1), 1.5, 1e-12);
    result_free(&r);

    r = run("solve", cfg, "-s", "field.expert.b=2");
    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_double_eq_tol(cell(c, 0, 1), 2.5, 1e-12);
    result_free(&r);

    /* The dot splits at the last one: [field] has no key "expert.b". */
    r = run("solve", cfg, "-s", "field.correction.b=-0.5");
    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_double_eq_tol(cell(c, 0, 1), 0.5, 1e-12);
    result_free(&r);
    free(c);
}
END_TEST

START_TEST(test_set_unknown_section)
{
    run_result r = run("solve", example("lotka_volterra.ini"), "-s",
                       "solvr.rtol=1e-3");
    assert_fails(r, 2, "[solvr]", "did you mean [solver]", "command line");
    result_free(&r);

    r = run("solve", example("lotka_volterra.ini"), "-s", "rtol");
    assert_fails(r, 2, "rtol");
    result_free(&r);
}
END_TEST

/* `-s field=` empties [field], so that the Lotka-Volterra example can
 * switch from expr to linear (-s field.plugin=linear alone left expr's
 * keys, which linear refuses). y' = A y with A = [0 1; -1 0], y0 = (1, 1):
 * x = cos t + sin t, y = cos t - sin t. */
START_TEST(test_set_empties_section)
{
    const char *lv = example("lotka_volterra.ini");
    csv *c = malloc(sizeof *c);
    run_result r = run("solve", lv, "-s", "field.plugin=linear", "-s",
                       "field.A=0, 1, -1, 0");

    assert_fails(r, 2, "[field]", "state");
    result_free(&r);
    r = run("solve", lv, "-s", "field=", "-s", "field.plugin=linear", "-s",
            "field.A=0, 1, -1, 0");
    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_str_eq(c->header, "t,y0,y1");
    ck_assert_uint_eq(c->rows, 101);
    ck_assert_double_eq_tol(cell(c, 100, 1), cos(10.0) + sin(10.0), 1e-6);
    ck_assert_double_eq_tol(cell(c, 100, 2), cos(10.0) - sin(10.0), 1e-6);
    result_free(&r);
    free(c);

    /* a value after a section name is no assignment of a key */
    r = run("solve", lv, "-s", "field=linear");
    assert_fails(r, 2, "command line (-s field=linear)",
                 "expected section.key=value");
    result_free(&r);
}
END_TEST

/* -u removes a key so that its default applies; -s and -u apply in the
 * order given; removing a key that is not there is an error. */
START_TEST(test_unset_key)
{
    const char *cfg = write_config("lin.ini",
        "[problem]\nt0 = 0\nt1 = 1\ny0 = 0\nsaveat = 1\n\n"
        "[solver]\nplugin = tsit5\n\n"
        "[field]\nplugin = linear\nA = 0\nb = 1\n");
    static const struct {
        const char *args[4];
        double y1;
    } cases[] = {
        {{"-s", "field.b=2"}, 2},
        {{"-u", "field.b"}, 0},
        {{"--unset=field.b"}, 0},
        {{"-s", "field.b=2", "-ufield.b"}, 0},
        {{"--unset", "field.b", "--set", "field.b=3"}, 3},
    };
    csv *c = malloc(sizeof *c);
    run_result r;

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *const *a = cases[i].args;
        r = run("solve", cfg, a[0], a[1], a[2], a[3]);
        ck_assert_msg(r.code == 0, "case %zu: exit %d: %s", i, r.code, r.err);
        parse_csv(r.out, c);
        ck_assert_double_eq_tol(cell(c, 0, 1), cases[i].y1, 1e-12);
        result_free(&r);
    }
    free(c);

    r = run("solve", cfg, "-u", "field.bb");
    assert_fails(r, 2, "command line (-u field.bb): [field] bb: nothing to "
                       "remove", "did you mean 'b'?");
    result_free(&r);
    r = run("solve", cfg, "-u", "field.b", "-u", "field.b");
    assert_fails(r, 2, "[field] b: nothing to remove");
    result_free(&r);
    r = run("solve", cfg, "-u");
    assert_fails(r, 2, "option '-u' needs a value");
    result_free(&r);
    r = run("gradcheck", cfg, "-u", "train.lr");
    assert_fails(r, 2, "[train] lr: nothing to remove (the config has no "
                       "section [train])");
    result_free(&r);
}
END_TEST

/* ---- config errors ------------------------------------------------------ */

START_TEST(test_unknown_section)
{
    const char *cfg = write_config("sec.ini",
        LV_PROBLEM "[solvr]\nplugin = tsit5\n\n" LV_FIELD);
    run_result r = run("solve", cfg);
    assert_fails(r, 2, "sec.ini:7", "solvr", "did you mean", "solver");
    result_free(&r);
}
END_TEST

START_TEST(test_unknown_key)
{
    const char *cfg = write_config("key.ini",
        LV_PROBLEM "[solver]\nplugin = tsit5\nrtoll = 1e-6\n\n" LV_FIELD);
    run_result r = run("solve", cfg);
    assert_fails(r, 2, "key.ini:9", "rtoll", "did you mean", "rtol");
    result_free(&r);
}
END_TEST

START_TEST(test_bad_number)
{
    const char *cfg = write_config("num.ini",
        LV_PROBLEM "[solver]\nplugin = tsit5\nrtol = 1e-6x\n\n" LV_FIELD);
    run_result r = run("solve", cfg);
    assert_fails(r, 2, "num.ini:9", "rtol", "1e-6x");
    result_free(&r);
}
END_TEST

START_TEST(test_wrong_list_length)
{
    const char *cfg = write_config("len.ini",
        "[problem]\nt0 = 0\nt1 = 10\ny0 = 1, 1, 1\nnsave = 11\n\n"
        LV_SOLVER LV_FIELD);
    run_result r = run("solve", cfg);
    assert_fails(r, 2, "len.ini:4", "y0", "2", "3");
    result_free(&r);
}
END_TEST

START_TEST(test_missing_required_key)
{
    const char *cfg = write_config("req.ini",
        "[problem]\nt0 = 0\ny0 = 1, 1\nnsave = 11\n\n" LV_SOLVER LV_FIELD);
    run_result r = run("solve", cfg);
    assert_fails(r, 2, "[problem]", "t1", "missing");
    result_free(&r);
}
END_TEST

START_TEST(test_overlong_line)
{
    /* Line 5 is 260 characters: longer than inih's 200-byte buffer. */
    char text[2048], line[300];
    size_t n = 0;
    const char *cfg;
    run_result r;

    n += (size_t)snprintf(line + n, sizeof line - n, "saveat = 0");
    while (n < 260)
        n += (size_t)snprintf(line + n, sizeof line - n, ", 0.5");
    snprintf(text, sizeof text,
             "[problem]\nt0 = 0\nt1 = 10\ny0 = 1, 1\n%s\n\n" LV_SOLVER LV_FIELD,
             line);
    cfg = write_config("long.ini", text);
    r = run("solve", cfg);
    assert_fails(r, 2, "long.ini:5:", "long");
    result_free(&r);
}
END_TEST

START_TEST(test_expr_syntax_error)
{
    const char *cfg = write_config("expr.ini",
        LV_PROBLEM LV_SOLVER
        "[field]\nplugin = expr\nstate = x, y\nparams = a=1.5, b=1.0\n"
        "dx = a*x - (b\ndy = -y\n");
    run_result r = run("solve", cfg);
    assert_fails(r, 2, "dx", "a*x - (b");
    result_free(&r);
}
END_TEST

/* ---- plugins ------------------------------------------------------------ */

START_TEST(test_plugin_name_refused)
{
    run_result r = run("solve", example("lotka_volterra.ini"), "-s",
                       "field.plugin=../x");
    assert_fails(r, 2, "../x");
    result_free(&r);
}
END_TEST

START_TEST(test_missing_plugin_lists_available)
{
    run_result r = run("solve", example("lotka_volterra.ini"), "-s",
                       "solver.plugin=tsit6");
    assert_fails(r, 2, "tsit6", "tsit5", "dopri5", "bs3", "rk4", "euler");
    result_free(&r);
}
END_TEST

START_TEST(test_module_without_entry)
{
    const char *dir = env_or_fail("NDE_BAD_PLUGIN_DIR");
    run_result r = run_env(dir, "solve", example("lotka_volterra.ini"), "-s",
                           "field.plugin=noentry", (const char *)NULL);
    assert_fails(r, 2, "noentry.so", NDE_MODULE_SYMBOL);
    result_free(&r);
}
END_TEST

START_TEST(test_abi_mismatch)
{
    const char *dir = env_or_fail("NDE_BAD_PLUGIN_DIR");
    char found[64], expected[64];
    run_result r = run_env(dir, "solve", example("lotka_volterra.ini"), "-s",
                           "field.plugin=badabi", (const char *)NULL);
    /* badabi.c declares NDE_ABI_VERSION + 100. */
    snprintf(found, sizeof found, "ABI version %d", NDE_ABI_VERSION + 100);
    snprintf(expected, sizeof expected, "expects ABI version %d",
             NDE_ABI_VERSION);
    assert_fails(r, 2, "badabi.so", found, expected);
    result_free(&r);
}
END_TEST

/* Refused after the module is closed: the message must not be read from
 * the unmapped module (it was: SIGSEGV, exit 139). */
START_TEST(test_build_signature_mismatch)
{
    const char *dir = env_or_fail("NDE_BAD_PLUGIN_DIR");
    run_result r = run_env(dir, "solve", example("lotka_volterra.ini"), "-s",
                           "field.plugin=badsig", (const char *)NULL);
    assert_fails(r, 2, "badsig.so", "built for another configuration");
    result_free(&r);
}
END_TEST

START_TEST(test_component_abi_mismatch)
{
    const char *dir = env_or_fail("NDE_BAD_PLUGIN_DIR");
    char found[64];
    run_result r = run_env(dir, "solve", example("lotka_volterra.ini"), "-s",
                           "field.plugin=badcomp", (const char *)NULL);
    /* badcomp.c's component declares NDE_ABI_VERSION + 100. */
    snprintf(found, sizeof found, "ABI version %d", NDE_ABI_VERSION + 100);
    assert_fails(r, 2, "badcomp.so", "component 'badcomp'", found);
    result_free(&r);
}
END_TEST

/* A component of a newer interface version than the library's: refused
 * with the file, the component and both versions. */
START_TEST(test_component_newer_interface)
{
    const char *dir = env_or_fail("NDE_BAD_PLUGIN_DIR");
    char found[64], known[64];
    run_result r = run_env(dir, "solve", example("lotka_volterra.ini"), "-s",
                           "field.plugin=badminor", (const char *)NULL);
    snprintf(found, sizeof found, "field interface version %d",
             NDE_FIELD_VERSION + 1);
    snprintf(known, sizeof known, "knows versions 1 to %d",
             NDE_FIELD_VERSION);
    assert_fails(r, 2, "badminor.so", "field 'badminor'", found, known);
    result_free(&r);
}
END_TEST

/* A descriptor smaller than its interface version's: refused, never read
 * past its end. */
START_TEST(test_component_too_small)
{
    const char *dir = env_or_fail("NDE_BAD_PLUGIN_DIR");
    char size[64];
    run_result r = run_env(dir, "solve", example("lotka_volterra.ini"), "-s",
                           "field.plugin=badsize", (const char *)NULL);
    snprintf(size, sizeof size, "descriptor of %zu bytes",
             sizeof(nde_plugin_info));
    assert_fails(r, 2, "badsize.so", "field 'badsize'", size);
    result_free(&r);
}
END_TEST

START_TEST(test_plugins_reports_broken)
{
    const char *dir = env_or_fail("NDE_BAD_PLUGIN_DIR");
    run_result r = run_env(dir, "plugins", (const char *)NULL);
    assert_ok(r);
    assert_contains(r.out, "\n  tsit5 - ");
    assert_contains(r.err, "noentry.so");
    assert_contains(r.err, "badabi.so");
    assert_contains(r.err, "badsig.so");
    assert_contains(r.err, "badcomp.so");
    assert_contains(r.err, "badminor.so");
    assert_contains(r.err, "badsize.so");
    result_free(&r);
}
END_TEST

/* twofields.so registers twofield_a (y' = -k y) and twofield_b
 * (y' = -2 k y), k = 1: each is found by its own name, not the file's
 * (twofield_b was listed but "not found"). */
START_TEST(test_module_components_found_by_name)
{
    const char *dir = env_or_fail("NDE_TEST_PLUGIN_DIR");
    const char *cfg = write_config("decay.ini",
        "[problem]\nt0 = 0\nt1 = 1\ny0 = 1\nsaveat = 1\n\n"
        "[solver]\nplugin = tsit5\nrtol = 1e-10\natol = 1e-12\n\n"
        "[field]\nplugin = twofield_b\n");
    csv *c = malloc(sizeof *c);
    run_result r = run_env(dir, "solve", cfg, (const char *)NULL);

    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_double_eq_tol(cell(c, 0, 1), exp(-2.0), 1e-9);
    result_free(&r);

    r = run_env(dir, "solve", cfg, "-s", "field.plugin=twofield_a",
                (const char *)NULL);
    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_double_eq_tol(cell(c, 0, 1), exp(-1.0), 1e-9);
    result_free(&r);
    free(c);

    r = run_env(dir, "solve", cfg, "-s", "field.plugin=twofields",
                (const char *)NULL);
    assert_fails(r, 2, "no field plugin named 'twofields'",
                 "(did you mean 'twofield_");
    result_free(&r);

    r = run_env(dir, "plugins", "field", (const char *)NULL);
    assert_ok(r);
    assert_contains(r.out, "\n  twofield_a - ");
    assert_contains(r.out, "\n  twofield_b - ");
    assert_contains(r.out, "twofields.so (version 1)\n");
    result_free(&r);
}
END_TEST

/* y(1) of y' = -c y, y(0) = 1, with the field plugin `field` found in
 * `path`. */
static double decay_at_1(const char *path, const char *field)
{
    const char *cfg = write_config("decay.ini",
        "[problem]\nt0 = 0\nt1 = 1\ny0 = 1\nsaveat = 1\n\n"
        "[solver]\nplugin = tsit5\nrtol = 1e-10\natol = 1e-12\n\n"
        "[field]\nplugin = twofield_a\n");
    char set[100];
    csv *c = malloc(sizeof *c);
    run_result r;
    double y;

    snprintf(set, sizeof set, "field.plugin=%s", field);
    r = run_env(path, "solve", cfg, "-s", set, (const char *)NULL);
    assert_ok(r);
    parse_csv(r.out, c);
    y = cell(c, 0, 1);
    result_free(&r);
    free(c);
    return y;
}

/* Which module a name resolves to: its own NAME.so first, whichever
 * directory holds it; else the first module in search order that
 * registers it. `nde plugins` lists the same ones. shadow/twofield_b.so
 * has rates 3 and 6, twofields.so 1 and 2. */
START_TEST(test_component_search_order)
{
    const char *dir = env_or_fail("NDE_TEST_PLUGIN_DIR");
    char path[2 * 4096 + 20], reversed[2 * 4096 + 20], shadow[4096 + 20];
    run_result r;

    snprintf(shadow, sizeof shadow, "%s/shadow", dir);
    snprintf(path, sizeof path, "%s:%s", dir, shadow);
    snprintf(reversed, sizeof reversed, "%s:%s", shadow, dir);
    ck_assert_double_eq_tol(decay_at_1(path, "twofield_b"), exp(-6.0), 1e-9);
    ck_assert_double_eq_tol(decay_at_1(path, "twofield_a"), exp(-1.0), 1e-9);
    ck_assert_double_eq_tol(decay_at_1(reversed, "twofield_a"), exp(-3.0),
                            1e-9);

    r = run_env(path, "plugins", "field", (const char *)NULL);
    assert_ok(r);
    assert_contains(r.out, "  twofield_a - test: y' = -k y (module twofields.so)\n"
                           "      module: ");
    assert_contains(r.out, "/plugins/twofields.so (version 1)\n");
    assert_contains(r.out, "/shadow/twofield_b.so (version 1)\n"
                           "      shadows: ");
    ck_assert_ptr_null(strstr(strstr(r.out, "twofield_a - ") + 1, "twofield_a - "));
    ck_assert_ptr_null(strstr(strstr(r.out, "twofield_b - ") + 1, "twofield_b - "));
    result_free(&r);
}
END_TEST

/* shipped/linear.so registers a field `linear` (version 9-test), the
 * name of a shipped plugin. The build tree's comes first in search order:
 * `nde plugins` lists it with the copy it shadows, and a run using it says
 * so (it was silent). Without $NDE_PLUGIN_PATH, or when the run does not
 * use `linear`, nothing is said. */
START_TEST(test_shadowed_plugin_marked)
{
    const char *dir = env_or_fail("NDE_TEST_PLUGIN_DIR");
    const char *cfg = write_config("lin.ini",
        "[problem]\nt0 = 0\nt1 = 1\ny0 = 1\nsaveat = 1\n\n"
        "[solver]\nplugin = tsit5\n\n"
        "[field]\nplugin = linear\nA = -2\n");
    char shipped[4096 + 20], expect[2 * 4096 + 100], path[2 * 4096 + 20];
    char shadow[4096 + 20];
    run_result r;

    snprintf(shipped, sizeof shipped, "%s/shipped", dir);
    snprintf(expect, sizeof expect,
             "/plugins/fields/linear.so (version 1)\n"
             "      shadows: %s/linear.so (version 9-test)\n", shipped);
    r = run_env(shipped, "plugins", "field", (const char *)NULL);
    assert_ok(r);
    assert_contains(r.out, "\n  linear - affine field");
    assert_contains(r.out, expect);
    ck_assert_ptr_null(strstr(strstr(r.out, "  linear - ") + 1, "  linear - "));
    result_free(&r);

    r = run_env(shipped, "solve", cfg, (const char *)NULL);
    assert_ok(r);
    snprintf(expect, sizeof expect,
             "/plugins/fields/linear.so (version 1) shadows the one in "
             "%s/linear.so (version 9-test), which is not used\n", shipped);
    assert_contains(r.err, "nde: warning: field 'linear' from /");
    assert_contains(r.err, expect);
    result_free(&r);

    /* no $NDE_PLUGIN_PATH, or a run without `linear`: silent */
    r = run_env(NULL, "solve", cfg, (const char *)NULL);
    assert_ok(r);
    ck_assert_msg(!strstr(r.err, "shadows"), "%s", r.err);
    result_free(&r);
    r = run_env(shipped, "solve", example("lotka_volterra.ini"),
                (const char *)NULL);
    assert_ok(r);
    ck_assert_msg(!strstr(r.err, "shadows"), "%s", r.err);
    result_free(&r);

    /* the winner on $NDE_PLUGIN_PATH: shadow/twofield_b.so before
     * twofields.so's twofield_b */
    snprintf(shadow, sizeof shadow, "%s/shadow", dir);
    snprintf(path, sizeof path, "%s:%s", dir, shadow);
    cfg = write_config("two.ini",
        "[problem]\nt0 = 0\nt1 = 1\ny0 = 1\nsaveat = 1\n\n"
        "[solver]\nplugin = tsit5\n\n[field]\nplugin = twofield_b\n");
    r = run_env(path, "solve", cfg, (const char *)NULL);
    assert_ok(r);
    snprintf(expect, sizeof expect,
             "warning: field 'twofield_b' from %s/twofield_b.so (version 1) "
             "shadows the one in %s/twofields.so (version 1)", shadow, dir);
    assert_contains(r.err, expect);
    result_free(&r);
}
END_TEST

/* ---- output files ------------------------------------------------------- */

START_TEST(test_failed_solve_leaves_no_output)
{
    const char *cfg = write_config("fail.ini",
        LV_PROBLEM "[solver]\nplugin = tsit5\nmax_steps = 3\n\n" LV_FIELD);
    const char *out = path_in("out.csv"), *json = path_in("stats.json");
    char *text;
    run_result r = run("solve", cfg, "-o", out, "--stats-json", json);

    assert_fails(r, 1, "solve failed", "max_steps");
    ck_assert_str_eq(r.out, "");
    ck_assert_int_eq(access(out, F_OK), -1);
    /* The statistics of the failed run are written, completely. */
    text = test_read_file(json, NULL);
    ck_assert_ptr_nonnull(text);
    assert_contains(text, "\"status\": \"NDE_EMAXSTEPS\"");
    assert_contains(text, "}\n");
    free(text);
    /* Only the config and the statistics: no temporary file left. */
    ck_assert_uint_eq(count_entries(), 2);
    result_free(&r);

    /* An existing output is kept as it was. */
    write_config("out.csv", "old\n");
    r = run("solve", cfg, "-o", out);
    ck_assert_int_eq(r.code, 1);
    text = test_read_file(out, NULL);
    ck_assert_str_eq(text, "old\n");
    free(text);
    result_free(&r);

    /* ... and replaced whole by a successful run. */
    r = run("solve", example("lotka_volterra.ini"), "-o", out);
    assert_ok(r);
    text = test_read_file(out, NULL);
    ck_assert(strncmp(text, "t,x,y\n", 6) == 0);
    free(text);
    ck_assert_uint_eq(count_entries(), 3);
    result_free(&r);
}
END_TEST

START_TEST(test_unwritable_output)
{
    run_result r = run("solve", example("lotka_volterra.ini"), "-o",
                       path_in("no-such-dir/out.csv"));
    assert_fails(r, 2, "-o ", "no-such-dir/out.csv", "no directory");
    ck_assert_str_eq(r.out, "");
    result_free(&r);

    /* A directory is refused, not replaced. */
    r = run("solve", example("lotka_volterra.ini"), "-o", workdir);
    assert_fails(r, 2, "is a directory");
    ck_assert_uint_eq(count_entries(), 0);
    result_free(&r);
}
END_TEST

/* A symlink stays a link and its target gets the data; a dangling link's
 * target is created. */
START_TEST(test_output_symlink)
{
    const char *link = path_in("link.csv"), *target = path_in("target.csv");
    const char *dangling = path_in("dangling.csv"), *made = path_in("new.csv");
    struct stat st;
    char buf[64], *text;
    ssize_t n;
    run_result r;

    write_config("target.csv", "old\n");
    ck_assert_int_eq(symlink("target.csv", link), 0);
    ck_assert_int_eq(symlink("new.csv", dangling), 0);
    r = run("solve", example("lotka_volterra.ini"), "-o", link,
            "--stats-json", dangling);
    assert_ok(r);
    result_free(&r);
    ck_assert_int_eq(lstat(link, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    n = readlink(link, buf, sizeof buf - 1);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "target.csv");
    text = test_read_file(target, NULL);
    ck_assert(strncmp(text, "t,x,y\n", 6) == 0);
    free(text);
    ck_assert_int_eq(lstat(dangling, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    text = test_read_file(made, NULL);
    ck_assert_ptr_nonnull(text);
    assert_contains(text, "\"status\": \"NDE_OK\"");
    free(text);
    /* The two links and their targets; no temporary file. */
    ck_assert_uint_eq(count_entries(), 4);
}
END_TEST

/* A FIFO is written through: its reader gets the data. */
START_TEST(test_output_fifo)
{
    const char *fifo = path_in("fifo");
    char buf[65536];
    struct stat st;
    size_t got = 0;
    ssize_t n;
    run_result r;
    int fd;

    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    /* Reader first and non-blocking: nde's open for writing then returns
     * at once, and a program that replaced the FIFO cannot hang the test
     * (the output fits the pipe's buffer). */
    fd = open(fifo, O_RDONLY | O_NONBLOCK);
    ck_assert_int_ge(fd, 0);
    r = run("solve", example("lotka_volterra.ini"), "-o", fifo);
    assert_ok(r);
    result_free(&r);
    while (got < sizeof buf - 1 &&
           (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    buf[got] = '\0';
    ck_assert_msg(strncmp(buf, "t,x,y\n0,1,1\n", 12) == 0,
                  "the FIFO's reader got:\n%s", buf);
    ck_assert_int_eq(lstat(fifo, &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    ck_assert_uint_eq(count_entries(), 1);
}
END_TEST

/* A character device is written through: through a symlink to /dev/null
 * (a program that replaces outputs replaces the link, never /dev/null
 * itself), the run succeeds although /dev/null cannot fsync. */
START_TEST(test_output_char_device)
{
    const char *link = path_in("null.csv");
    struct stat st;
    run_result r;

    ck_assert_int_eq(stat("/dev/null", &st), 0);
    ck_assert_msg(S_ISCHR(st.st_mode), "/dev/null is not a device here");
    ck_assert_int_eq(symlink("/dev/null", link), 0);
    r = run("solve", example("lotka_volterra.ini"), "-o", link);
    assert_ok(r);
    ck_assert_str_eq(r.out, "");
    result_free(&r);
    ck_assert_int_eq(lstat(link, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    /* Should /dev/null ever be replaced, give the machine its device back
     * (root only, as replacing it needs root) and fail. */
    ck_assert_int_eq(lstat("/dev/null", &st), 0);
    if (!S_ISCHR(st.st_mode) && geteuid() == 0) {
        unlink("/dev/null");
        mknod("/dev/null", S_IFCHR | 0666, makedev(1, 3));
        chmod("/dev/null", 0666);
    }
    ck_assert_msg(S_ISCHR(st.st_mode), "/dev/null was replaced");
    ck_assert_uint_eq(count_entries(), 1);
}
END_TEST

/* ---- outputs that are inputs -------------------------------------------- */

/* A small training config in workdir: the LV field, data drawn from it
 * (or, with csv, from data.csv next to the config). */
static const char *train_config(const char *data)
{
    static char text[2048];
    snprintf(text, sizeof text,
             LV_SOLVER LV_FIELD
             "[adjoint]\nplugin = discrete\n"
             "[data]\n%s\n"
             "[train]\niterations = 2\nbatch_size = 2\nlr = 0.01\n",
             data ? data
                  : "source = field\ny0 = 1, 1\n"
                    "true_params = a=1.5, b=1.0, c=3.0, d=1.0\n"
                    "npoints = 21\nt1 = 2\nbatch_time = 5");
    return write_config("train.ini", text);
}

/* r failed with exit 2 naming both files; file still holds `want`. */
static void assert_clash(run_result r, const char *a, const char *b,
                         const char *file, const char *want)
{
    char *text;

    assert_fails(r, 2, a, b, "is the same file as");
    text = test_read_file(file, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, want);
    free(text);
    result_free(&r);
}

/* A [data] key of another built-in task is refused, never ignored: the
 * series task (csv) has no windows (batch_time) and no generated data
 * (npoints). */
START_TEST(test_foreign_data_keys)
{
    const char *cfg = train_config("source = csv\npath = data.csv");
    run_result r;

    write_config("data.csv", "series,t,x,y\na,0,1,1\na,1,2,2\nb,0,1,3\n"
                             "b,1,2,1\n");
    r = run("train", cfg, "-s", "data.batch_time=5", "-s",
            "data.test_fraction=0");
    assert_fails(r, 2, "(-s data.batch_time=5): [data] batch_time: not used "
                       "by source = csv (the task 'series'; it is a key of "
                       "windows): remove it");
    result_free(&r);
    r = run("train", cfg, "-s", "data.npoints=5", "-s",
            "data.test_fraction=0");
    assert_fails(r, 2, "[data] npoints: not used by source = csv");
    result_free(&r);
}
END_TEST

/* How many times PLplot's SVG text holds the glyph `code` (&#xHH;). */
static size_t count_glyphs(const char *svg, const char *code)
{
    size_t n = 0;

    for (const char *p = svg; (p = strstr(p, code)); p++)
        n++;
    return n;
}

/* The data's column names name the prediction's columns, before the
 * field's own (the expr field calls its states x, y). The data path,
 * relative to the config, is found by predict from another directory:
 * the checkpoint names the file absolutely. */
START_TEST(test_prediction_keeps_column_names)
{
    const char *cfg = train_config("source = csv\npath = data.csv\n"
                                   "test_fraction = 0.5");
    const char *ckpt = path_in("names.ckpt"), *out = path_in("names.csv");
    char *text;
    run_result r;

    write_config("data.csv", "series,t,prey,predator\na,0,1,1\na,1,2,2\n"
                             "b,0,1,3\nb,1,2,1\n");
    r = run("train", cfg, "--quiet", "-s", "train.batch_size=1", "-s",
            fmt("train.checkpoint=%s", ckpt));
    assert_ok(r);
    result_free(&r);
    r = run("predict", ckpt, "-o", out);
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(out, NULL));
    ck_assert_msg(strncmp(text, "t,prey,predator\n", 16) == 0, "%s", text);
    free(text);

    /* --plot: the held-out series' 2 observations in each of the 2
     * panels, read back from the SVG as rings (held out whole: no dot of
     * a trained-on observation), the panels named */
    r = run("predict", ckpt, "--plot", path_in("fit"));
    assert_ok(r);
    assert_contains(r.err, "1 held-out series of 1 drawn");
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(path_in("fit.svg"), NULL));
    {
        ck_assert_uint_eq(count_glyphs(text, "&#x25ef;"), 4);
        ck_assert_uint_eq(count_glyphs(text, "&#x25cf;"), 0);
        /* PLplot's SVG device writes each character as &#xHH; */
        ck_assert_ptr_nonnull(strstr(text, "&#x70;&#x72;&#x65;&#x79;"));
    }
    free(text);
    r = run("predict", ckpt, "--plot", path_in("fit"), "-s",
            "problem.y0=1,1");
    assert_fails(r, 2, "--plot draws the held-out fit, not a [problem]");
    result_free(&r);
}
END_TEST

/* One series cannot be split into whole training and test series: the
 * message names the key and says what to set. */
START_TEST(test_one_series_split)
{
    const char *cfg = train_config("source = csv\npath = data.csv");
    run_result r;

    write_config("data.csv", "series,t,x,y\na,0,1,1\na,1,2,2\n");
    r = run("train", cfg, "-s", "train.batch_size=1");
    assert_fails(r, 2, "train.ini:", "[data] test_fraction: 0.2 holds out "
                 "whole series, and data.csv has only 1: set test_fraction "
                 "= 0");
    result_free(&r);
    r = run("train", cfg, "-s", "train.batch_size=1", "-s",
            "data.test_fraction=0", "--quiet");
    assert_ok(r);
    result_free(&r);
}
END_TEST

/* A Lotka-Volterra series of counts up to 80 (hare, lynx) at t = 0..20:
 * a = 0.55, b = 0.0224, c = 0.84, d = 0.0208 from (42.5, 7.5) by RK4, 5 %
 * multiplicative noise, one decimal. */
static const double pop_y[21][2] = {
    {42.7, 8.0},  {58.5, 9.9},  {78.7, 17.7}, {80.4, 41.3}, {39.8, 59.7},
    {22.3, 45.2}, {16.6, 27.0}, {16.7, 16.8}, {20.2, 10.2}, {28.0, 8.0},
    {44.1, 7.4},  {64.0, 9.3},  {80.6, 20.0}, {72.7, 42.3}, {35.8, 51.5},
    {19.6, 38.4}, {14.9, 28.3}, {15.4, 16.9}, {22.8, 10.4}, {32.5, 8.1},
    {48.9, 7.6}};

/* pop.csv (series s) and pop.ini with `data` in its [data]. */
static const char *pop_config(const char *data)
{
    static char text[1024], rows[1024];
    size_t k, used;

    used = (size_t)snprintf(rows, sizeof rows, "series,t,hare,lynx\n");
    for (k = 0; k < 21; k++)
        used += (size_t)snprintf(rows + used, sizeof rows - used,
                                 "s,%zu,%.1f,%.1f\n", k, pop_y[k][0],
                                 pop_y[k][1]);
    write_config("pop.csv", rows);
    snprintf(text, sizeof text,
             "[solver]\nplugin = tsit5\nrtol = 1e-6\natol = 1e-8\n"
             "[field]\nplugin = mlp\nlayers = 2, 32, 2\nactivation = tanh\n"
             "seed = 1\n[adjoint]\nplugin = interpolating\n"
             "[data]\nsource = csv\npath = pop.csv\n%s\n"
             "[train]\niterations = 600\nbatch_size = 1\nlr = 0.01\n"
             "seed = 1\ncheckpoint = %s\n", data, path_in("pop.ckpt"));
    return write_config("pop.ini", text);
}

/* The MSE of the prediction CSV p (`t,hare,lynx`) against pop_y over
 * rows [from, 21). */
static double pop_mse(const csv *p, size_t from)
{
    double sum = 0;
    size_t i, j;

    ck_assert_uint_eq(p->rows, 21);
    for (i = from; i < p->rows; i++)
        for (j = 0; j < 2; j++) {
            double e = cell(p, i, j + 1) - pop_y[i][j];
            sum += e * e;
        }
    return sum / (double)(2 * (p->rows - from));
}

static double json_at(const char *line, const char *key);

/* normalize = standard: trained in the data's standard units, the
 * held-out prediction, test_loss and a [problem] prediction are in the
 * data's units; other data under the checkpoint are refused (their
 * units would be other units). */
START_TEST(test_normalize_original_units)
{
    const char *cfg = pop_config("normalize = standard\ntest_fraction = 0");
    const char *sum = path_in("pop.json"), *out = path_in("pop_pred.csv"),
               *q = path_in("pop_q.csv"), *ckpt = path_in("pop.ckpt");
    static csv p, pq;
    double loss;
    char *text;
    run_result r;

    r = run("train", cfg, "--quiet");
    assert_ok(r);
    result_free(&r);
    r = run("predict", ckpt, "-o", out, "--summary-json", sum);
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(sum, NULL));
    loss = json_at(text, "test_loss");
    free(text);
    /* raw counts: 301 after as many iterations (README) */
    ck_assert_msg(loss < 60, "test_loss %g", loss);
    ck_assert_ptr_nonnull(text = test_read_file(out, NULL));
    parse_csv(text, &p);
    free(text);
    ck_assert_double_eq_tol(cell(&p, 0, 1), 42.7, 1e-12);
    ck_assert_double_eq_tol(cell(&p, 0, 2), 8.0, 1e-12);
    ck_assert_double_eq_tol(pop_mse(&p, 0), loss, 1e-9 * loss);
    r = run("predict", ckpt, "-o", q, "-s", "problem.y0=42.7,8",
            "-s", "problem.t0=0", "-s", "problem.t1=20", "-s",
            "problem.nsave=21");
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(q, NULL));
    parse_csv(text, &pq);
    free(text);
    for (size_t i = 0; i < p.rows; i++)
        for (size_t j = 1; j < 3; j++)
            ck_assert_double_eq_tol(cell(&pq, i, j), cell(&p, i, j),
                                    1e-9 * fabs(cell(&p, i, j)));
    write_config("pop.csv", "series,t,hare,lynx\ns,0,42.7,8.0\n"
                            "s,1,58.5,9.9\ns,2,78.7,17.7\n");
    r = run("predict", ckpt, "-o", out);
    assert_fails(r, 2, "pop.ckpt: the model works in units fitted to the "
                       "data it was trained on ([data] normalize), and the "
                       "data differ now");
    result_free(&r);
}
END_TEST

/* holdout = end:K: trained on every series but its last K observations,
 * test_loss the MSE of those K alone in the data's units (minmax). */
START_TEST(test_holdout_end)
{
    const char *cfg = pop_config("normalize = minmax\nholdout = end:5");
    const char *sum = path_in("pop.json"), *out = path_in("pop_pred.csv");
    static csv p;
    double loss;
    char *text;
    run_result r;

    r = run("train", cfg, "--quiet", "-s", "train.iterations=200");
    assert_ok(r);
    result_free(&r);
    r = run("predict", path_in("pop.ckpt"), "-o", out, "--summary-json",
            sum);
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(sum, NULL));
    loss = json_at(text, "test_loss");
    free(text);
    ck_assert_ptr_nonnull(text = test_read_file(out, NULL));
    parse_csv(text, &p);
    free(text);
    ck_assert_double_eq_tol(pop_mse(&p, 16), loss, 1e-9 * loss);
    ck_assert_double_ne_tol(pop_mse(&p, 0), loss, 1e-3 * loss);
    /* the last 5 neither train nor scale the model: changed, the same
     * model predicts the same */
    {
        char *again, rows[1024];
        size_t k, used = (size_t)snprintf(rows, sizeof rows,
                                          "series,t,hare,lynx\n");
        for (k = 0; k < 21; k++)
            used += (size_t)snprintf(rows + used, sizeof rows - used,
                                     "s,%zu,%.1f,%.1f\n", k,
                                     pop_y[k][0] + (k > 15 ? 1000 : 0),
                                     pop_y[k][1]);
        write_config("pop.csv", rows);
        r = run("train", cfg, "--quiet", "-s", "train.iterations=200");
        assert_ok(r);
        result_free(&r);
        r = run("predict", path_in("pop.ckpt"), "-o", path_in("again.csv"));
        assert_ok(r);
        result_free(&r);
        ck_assert_ptr_nonnull(again = test_read_file(path_in("again.csv"),
                                                     NULL));
        ck_assert_ptr_nonnull(text = test_read_file(out, NULL));
        ck_assert_str_eq(again, text);
        free(again);
        free(text);
    }
}
END_TEST

/* The held-out prediction CSV of pop.csv fitted for 50 iterations with
 * [data] `data` (malloc'd). */
static char *pop_forecast(const char *data)
{
    const char *out = path_in("pop_pred.csv");
    char *text;
    run_result r;

    pop_config(data);
    r = run("train", path_in("pop.ini"), "--quiet", "-s",
            "train.iterations=50");
    assert_ok(r);
    result_free(&r);
    r = run("predict", path_in("pop.ckpt"), "-o", out);
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(out, NULL));
    return text;
}

/* holdout_from = 15.5 holds out the observations at t >= 15.5: the split
 * of end:5 on these yearly times, so the same model and predictions. */
START_TEST(test_holdout_from)
{
    char *a = pop_forecast("normalize = minmax\nholdout = end:5");
    char *b = pop_forecast("normalize = minmax\nholdout_from = 15.5");
    run_result r;

    ck_assert_str_eq(a, b);
    free(b);
    /* the fit's picture: per panel 16 trained-on years as dots, 5 held
     * out as rings */
    r = run("predict", path_in("pop.ckpt"), "--plot", path_in("fit"));
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(b = test_read_file(path_in("fit.svg"), NULL));
    ck_assert_uint_eq(count_glyphs(b, "&#x25cf;"), 2 * 16);
    ck_assert_uint_eq(count_glyphs(b, "&#x25ef;"), 2 * 5);
    free(b);
    /* one more year held out: another model */
    b = pop_forecast("normalize = minmax\nholdout_from = 15");
    ck_assert_str_ne(a, b);
    free(a);
    free(b);
}
END_TEST

/* learn_y0: the series starts from its learned initial state, a task
 * parameter in the model's (minmax) units that `nde params` prints; the
 * units are those of the training prefix alone. */
START_TEST(test_learn_y0)
{
    const char *cfg = pop_config("normalize = minmax\nholdout = end:5\n"
                                 "learn_y0 = true");
    const char *out = path_in("pop_pred.csv");
    static csv p;
    char *text, key[16];
    run_result r;

    r = run("train", cfg, "--quiet", "-s", "train.iterations=200");
    assert_ok(r);
    result_free(&r);
    r = run("predict", path_in("pop.ckpt"), "-o", out);
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(out, NULL));
    parse_csv(text, &p);
    free(text);
    r = run("params", path_in("pop.ckpt"));
    assert_ok(r);
    for (size_t j = 0; j < 2; j++) {
        double lo = INFINITY, hi = -INFINITY, y0;
        const char *at;
        for (size_t k = 0; k < 16; k++) {
            lo = fmin(lo, pop_y[k][j]);
            hi = fmax(hi, pop_y[k][j]);
        }
        snprintf(key, sizeof key, "y0[0,%zu] = ", j);
        ck_assert_ptr_nonnull(at = strstr(r.out, key));
        y0 = strtod(at + strlen(key), NULL);
        ck_assert_double_eq_tol(cell(&p, 0, j + 1), lo + (hi - lo) * y0,
                                1e-9 * hi);
        /* and in the data's units beside it */
        at = strstr(at, "  # ");
        ck_assert_ptr_nonnull(at);
        ck_assert(strncmp(at + 4, j ? "lynx = " : "hare = ", 7) == 0);
        ck_assert_double_eq_tol(strtod(at + 11, NULL), cell(&p, 0, j + 1),
                                1e-9 * hi);
        ck_assert_double_ne_tol(cell(&p, 0, j + 1), pop_y[0][j], 1e-6);
    }
    result_free(&r);
}
END_TEST

/* The learned log_sigma[0], log_sigma[1] of checkpoint pop.ckpt, as
 * `nde params` prints them, both within (lo, hi). */
static void assert_log_sigmas(const char *what, double lo, double hi)
{
    run_result r = run("params", path_in("pop.ckpt"));

    assert_ok(r);
    for (size_t j = 0; j < 2; j++) {
        const char *at =
            strstr(r.out, j ? "log_sigma[1] = " : "log_sigma[0] = ");
        double ls;
        ck_assert_ptr_nonnull(at);
        ls = strtod(strchr(at, '=') + 1, NULL);
        ck_assert_msg(ls > lo && ls < hi, "%s: log_sigma[%zu] = %g", what, j,
                      ls);
    }
    result_free(&r);
}

/* likelihood = gaussian | lognormal: trained by the negative
 * log-likelihood with learned scales log_sigma[j] (printed by `nde
 * params`), moved from their initial 0 towards the residuals' scale:
 * below the data's sd in standard units for a neural ODE (Gaussian), a
 * few percent for the Lotka-Volterra model the counts come from (5 %
 * noise; log-normal, whose prediction stays positive). */
START_TEST(test_likelihoods)
{
    run_result r;

    pop_config("normalize = standard\nholdout = end:5\n"
               "likelihood = gaussian");
    r = run("train", path_in("pop.ini"), "--quiet", "-s",
            "train.iterations=300");
    assert_ok(r);
    result_free(&r);
    assert_log_sigmas("gaussian", -6, -0.5);
    write_config("lv_pop.ini",
                 fmt("[solver]\nplugin = tsit5\nrtol = 1e-8\natol = 1e-10\n"
                     "[field]\nplugin = expr\nstate = hare, lynx\n"
                     "params = a=0.5, b=0.02, c=0.8, d=0.02\n"
                     "dhare = a*hare - b*hare*lynx\n"
                     "dlynx = d*hare*lynx - c*lynx\n"
                     "[adjoint]\nplugin = interpolating\n"
                     "[data]\nsource = csv\npath = pop.csv\n"
                     "holdout = end:5\nlikelihood = lognormal\n"
                     "[train]\niterations = 300\nbatch_size = 1\n"
                     "lr = 0.01\ncheckpoint = %s\n", path_in("pop.ckpt")));
    r = run("train", path_in("lv_pop.ini"), "--quiet");
    assert_ok(r);
    result_free(&r);
    assert_log_sigmas("lognormal", log(0.01), log(0.3));
}
END_TEST

/* normalize = log: the model works in standardized logs, so its
 * forecasts stay positive; test_loss is the MSE of the held-out years in
 * counts, the learned y0 is printed in counts too (where the prediction
 * starts), and a start that has no log is refused. */
START_TEST(test_normalize_log)
{
    const char *out = path_in("pop_pred.csv");
    static csv p;
    double loss;
    char *text, key[16];
    run_result r;

    pop_config("normalize = log\nholdout = end:5\nlearn_y0 = true\n"
               "likelihood = lognormal");
    r = run("train", path_in("pop.ini"), "--quiet", "-s",
            "train.iterations=200", "--summary-json", path_in("pop.json"));
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(path_in("pop.json"), NULL));
    loss = json_at(text, "test_loss");
    free(text);
    r = run("predict", path_in("pop.ckpt"), "-o", out);
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(out, NULL));
    parse_csv(text, &p);
    free(text);
    ck_assert_double_eq_tol(pop_mse(&p, 16), loss, 1e-9 * loss);
    for (size_t k = 0; k < p.rows; k++)
        ck_assert(cell(&p, k, 1) > 0 && cell(&p, k, 2) > 0);
    r = run("params", path_in("pop.ckpt"));
    assert_ok(r);
    for (size_t j = 0; j < 2; j++) {
        const char *at;
        snprintf(key, sizeof key, "y0[0,%zu] = ", j);
        ck_assert_ptr_nonnull(at = strstr(r.out, key));
        ck_assert_ptr_nonnull(at = strstr(at, " = "));
        ck_assert_ptr_nonnull(at = strstr(at + 3, " = "));
        ck_assert_double_eq_tol(strtod(at + 3, NULL), cell(&p, 0, j + 1),
                                1e-9 * cell(&p, 0, j + 1));
    }
    result_free(&r);
    r = run("predict", path_in("pop.ckpt"), "-s", "problem.t0=0", "-s",
            "problem.t1=1", "-s", "problem.y0=40,0", "-s", "problem.nsave=2");
    assert_fails(r, 2, "predict: the model works in the logs of the data's "
                       "values ([data] normalize = log), and state 1 is "
                       "given 0");
    result_free(&r);
}
END_TEST

/* Training on pop.csv of series s from (t = 0, hare = ...) with rows
 * `rows` after "s,0," under [data] `data` (test_fraction 0) is refused
 * with exit 2 naming pop.ini and `want`. */
static void assert_pop_refused(const char *data, const char *rows,
                               const char *want)
{
    char csv_text[256];
    run_result r;

    pop_config(fmt("%s\ntest_fraction = 0", data));
    snprintf(csv_text, sizeof csv_text, "series,t,hare,lynx\ns,0,%s\n", rows);
    write_config("pop.csv", csv_text);
    r = run("train", path_in("pop.ini"), "--quiet");
    assert_fails(r, 2, "pop.ini:", want);
    result_free(&r);
}

/* Bad [data] normalize and holdout values name the file, the key and
 * what is expected. */
START_TEST(test_normalize_holdout_errors)
{
    static const struct {
        const char *data, *want;
    } bad[] = {
        {"normalize = zscore\ntest_fraction = 0",
         "[data] normalize: 'zscore' is none, standard, minmax or log"},
        {"holdout = 5", "[data] holdout: '5' is not end:K (K a positive"},
        {"holdout = end:0", "[data] holdout: 'end:0' is not end:K"},
        {"holdout = end:-2", "[data] holdout: 'end:-2' is not end:K"},
        {"holdout = end:3x", "[data] holdout: 'end:3x' is not end:K"},
        {"holdout = end:20", "[data] holdout: end:20 leaves series 's' (21 "
                             "observations) fewer than 2 to train on"},
        {"holdout = end:5\ntest_fraction = 0.2",
         "[data] holdout: holdout and test_fraction both hold out data: set "
         "one"},
        {"likelihood = poisson\nholdout = end:5",
         "[data] likelihood: 'poisson' is mse, gaussian or lognormal"},
        {"holdout_from = 1",
         "[data] holdout_from: 1 leaves series 's' 1 observations before "
         "it, fewer than 2 to train on"},
        {"holdout_from = 21", "[data] holdout_from: 21 is after every "
                              "series' last observation"},
        {"holdout_from = soon", "[data] holdout_from"},
        {"holdout_from = 10\nholdout = end:2",
         "[data] holdout_from: holdout and holdout_from both hold out"},
        {"holdout_from = 10\ntest_fraction = 0",
         "[data] holdout_from: holdout_from and test_fraction both"},
    };
    run_result r;

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = run("train", pop_config(bad[i].data), "--quiet");
        assert_fails(r, 2, "pop.ini:", bad[i].want);
        result_free(&r);
    }
    /* a constant column has no scale under either rule */
    assert_pop_refused("normalize = minmax", "1,5\ns,1,2,5\ns,2,3,5",
                       "[data] normalize: minmax: column 'lynx' is "
                       "constant on the training part (3 observed values), "
                       "so it has no scale: use normalize = none");
    /* neither log units nor log-normal noise take a zero */
    assert_pop_refused("normalize = log", "1,5\ns,1,2,5\ns,2,3,0",
                       "[data] normalize: log needs positive values, and "
                       "series 's' has lynx = 0 at t = 2");
    assert_pop_refused("likelihood = lognormal", "1,5\ns,1,2,5\ns,2,3,0",
                       "[data] likelihood: lognormal needs positive values, "
                       "and series 's' has lynx = 0 at t = 2");
}
END_TEST

START_TEST(test_solve_output_is_input)
{
    const char *cfg = write_config("lv.ini", LV_PROBLEM LV_SOLVER LV_FIELD);
    const char *q = path_in("q.csv");
    char *before = test_read_file(cfg, NULL);
    const char *dotted;
    run_result r;

    assert_clash(run("solve", cfg, "-o", cfg), "-o ", "the config ", cfg,
                 before);
    assert_clash(run("solve", cfg, "--stats-json", cfg), "--stats-json ",
                 "the config ", cfg, before);
    free(before);
    /* Two outputs named alike, before either exists: nothing written. */
    dotted = fmt("%s/./q.csv", workdir);
    r = run("solve", cfg, "-o", q, "--stats-json", dotted);
    assert_fails(r, 2, "-o ", "is the same file as --stats-json ");
    ck_assert_int_eq(access(q, F_OK), -1);
    result_free(&r);
    /* A hard link is the same file too. */
    write_config("q.csv", "keep\n");
    ck_assert_int_eq(link(q, path_in("hard.csv")), 0);
    assert_clash(run("solve", cfg, "-o", path_in("hard.csv"), "--stats-json",
                     q),
                 "-o ", "--stats-json ", q, "keep\n");
}
END_TEST

/* A neural SDE trained with local (and global) regularization on the
 * adaptive lamba_heun: the regularizer's value is in the metrics; a
 * fixed-step SDE solver is refused before any work, naming what it
 * lacks. */
START_TEST(test_train_sde_local)
{
    const char *cfg = write_config("sde.ini",
        "[solver]\nplugin = lamba_heun\nrtol = 1e-2\natol = 1e-2\n"
        "dt = 0.05\n"
        "[field]\nplugin = mlp\nlayers = 1, 8, 1\nactivation = tanh\n"
        "diffusion = softplus\n"
        "[adjoint]\nplugin = discrete\n"
        "[field.truth]\nplugin = expr\nstate = x\n"
        "params = th=1.5, mu=0.5, s=0.6\ndx = th*(mu - x)\ngx = s\n"
        "[data]\nsource = field\nsystem = field.truth\ny0 = 2\n"
        "npoints = 11\nt1 = 1\npaths = 50\neval_paths = 20\n"
        "[train]\niterations = 5\nbatch_size = 16\nlr = 0.01\nseed = 1\n"
        "[regularizer.local]\nplugin = local\nweight = 1000\n");
    const char *metrics = path_in("m.jsonl");
    char *text;
    run_result r;

    r = run("train", cfg, "--quiet", "-s", fmt("train.metrics=%s", metrics));
    assert_ok(r);
    result_free(&r);
    text = test_read_file(metrics, NULL);
    ck_assert_ptr_nonnull(text);
    assert_contains(text, "\"reg_local\": ");
    ck_assert_msg(!strstr(text, "\"reg_local\": 0,") &&
                  !strstr(text, "nan"), "%s", text);
    free(text);
    r = run("train", cfg, "--quiet", "-s", "regularizer.local.plugin=global");
    assert_ok(r);
    result_free(&r);
    r = run("train", cfg, "--quiet", "-s", "solver.plugin=heun");
    assert_fails(r, 2, "regularizer 'local' needs the solver's error "
                 "estimate, which solver 'heun' does not provide");
    result_free(&r);
}
END_TEST

/* The training loss of the last iteration (`last`) of the metrics file is
 * below half the first's. */
static void assert_loss_halves(const char *metrics, const char *last,
                               const char *what)
{
    char *text = test_read_file(metrics, NULL), *at;
    double first, final;
    ck_assert_ptr_nonnull(text);
    first = json_at(text, "loss");
    ck_assert_ptr_nonnull(at = strstr(text, last));
    final = json_at(at, "loss");
    ck_assert_msg(final < 0.5 * first, "%s: loss %g -> %g", what, first,
                  final);
    free(text);
}

/* A linear SDE with general noise (noise_dim = 3 channels for 2 states)
 * trained end to end on the moments of a general-noise truth: with
 * reversible_heun and the reversible adjoint, and with euler_maruyama and
 * the discrete one, the loss falls, and so it does for an mlp with a
 * D x M diffusion network; an SDE solver for diagonal noise and the
 * backsolve adjoint are refused before any work. */
START_TEST(test_train_general_noise)
{
    const char *cfg = write_config("gn.ini",
        "[solver]\nplugin = reversible_heun\ndt = 0.05\n"
        "[field]\nplugin = linear\nA = -0.5, 0, 0, -0.5\nnoise_dim = 3\n"
        "C = 0.1, 0, 0, 0, 0.1, 0\n"
        "[adjoint]\nplugin = reversible\n"
        "[field.truth]\nplugin = linear\nA = -1, 0.5, -0.5, -1\n"
        "noise_dim = 3\nB = 0.2, 0, 0, 0.2, 0, 0, 0, 0, 0, 0, 0, 0\n"
        "C = 0.3, 0.1, 0, -0.1, 0.4, 0.2\n"
        "[data]\nsource = field\nsystem = field.truth\ny0 = 1, 0.5\n"
        "npoints = 11\nt1 = 1\npaths = 100\neval_paths = 50\n"
        "[train]\niterations = 40\nbatch_size = 32\nlr = 0.02\nseed = 1\n");
    static const char *const pairs[][2] = {
        {"solver.plugin=reversible_heun", "adjoint.plugin=reversible"},
        {"solver.plugin=euler_maruyama", "adjoint.plugin=discrete"}};
    const char *metrics = path_in("gn.jsonl");
    run_result r;

    for (size_t k = 0; k < 2; k++) {
        r = run("train", cfg, "--quiet", "-s", pairs[k][0], "-s",
                pairs[k][1], "-s", fmt("train.metrics=%s", metrics));
        assert_ok(r);
        result_free(&r);
        assert_loss_halves(metrics, "\"iteration\": 40,", pairs[k][0]);
    }
    r = run("train", cfg, "--quiet", "-s", "field=", "-s", "field.plugin=mlp",
            "-s", "field.layers=2,16,2", "-s", "field.diffusion=softplus",
            "-s", "field.noise_dim=3", "-s", fmt("train.metrics=%s", metrics));
    assert_ok(r);
    result_free(&r);
    assert_loss_halves(metrics, "\"iteration\": 40,", "mlp");
    r = run("train", cfg, "--quiet", "-s", "solver.plugin=milstein", "-s",
            "adjoint.plugin=discrete");
    assert_fails(r, 2, "solver 'milstein' integrates diagonal noise only",
                 "general noise (noise_dim = 3)");
    result_free(&r);
    r = run("train", cfg, "--quiet", "-s", "adjoint.plugin=backsolve");
    assert_fails(r, 2, "adjoint 'backsolve' supports diagonal noise only",
                 "noise_dim = 3");
    result_free(&r);
    r = run("train", cfg, "--quiet", "-s", "field.B=1, 2");
    assert_fails(r, 2, "[field] B: expected 12 values");
    result_free(&r);
}
END_TEST

START_TEST(test_train_output_is_input)
{
    const char *cfg = train_config(NULL), *ckpt = path_in("c.ckpt");
    const char *metrics = path_in("m.jsonl");
    const char *set_ckpt, *set_metrics;
    char *config_text = test_read_file(cfg, NULL);
    char *ckpt_text;
    run_result r;

    set_ckpt = fmt("train.checkpoint=%s", ckpt);
    set_metrics = fmt("train.metrics=%s", ckpt);
    /* metrics = checkpoint, --summary-json = config, checkpoint = config */
    r = run("train", cfg, "--quiet", "-s", set_ckpt, "-s", set_metrics);
    assert_fails(r, 2, "[train] checkpoint ", "[train] metrics ",
                 "is the same file as");
    ck_assert_int_eq(access(ckpt, F_OK), -1);
    result_free(&r);
    assert_clash(run("train", cfg, "--quiet", "--summary-json", cfg),
                 "--summary-json ", "the config ", cfg, config_text);
    set_metrics = fmt("train.checkpoint=%s", cfg);
    assert_clash(run("train", cfg, "--quiet", "-s", set_metrics),
                 "[train] checkpoint ", "the config ", cfg, config_text);

    /* --resume from the checkpoint the run replaces: the normal case. */
    r = run("train", cfg, "--quiet", "-s", set_ckpt);
    assert_ok(r);
    result_free(&r);
    r = run("train", cfg, "--quiet", "-s", set_ckpt, "-s",
            "train.iterations=3", "--resume", ckpt);
    assert_ok(r);
    result_free(&r);
    /* ... but not as the summary or the metrics. */
    ckpt_text = test_read_file(ckpt, NULL);
    r = run("train", cfg, "--quiet", "-s", "train.iterations=4",
            "--resume", ckpt, "--summary-json", ckpt);
    assert_fails(r, 2, "--summary-json ", "is the same file as --resume ");
    result_free(&r);
    set_metrics = fmt("train.metrics=%s", ckpt);
    r = run("train", cfg, "--quiet", "-s", "train.iterations=4",
            "--resume", ckpt, "-s", set_metrics);
    assert_fails(r, 2, "[train] metrics ", "is the same file as --resume ");
    result_free(&r);
    {
        size_t len;
        char *now = test_read_file(ckpt, &len);
        ck_assert_mem_eq(now, ckpt_text, len);
        free(now);
    }

    /* predict: the checkpoint is its input. */
    r = run("predict", ckpt, "-o", ckpt);
    assert_fails(r, 2, "-o ", "is the same file as the checkpoint ");
    result_free(&r);
    r = run("predict", ckpt, "--summary-json", ckpt, "-o", metrics);
    assert_fails(r, 2, "--summary-json ", "the checkpoint ");
    ck_assert_int_eq(access(metrics, F_OK), -1);
    result_free(&r);
    {
        size_t len;
        char *now = test_read_file(ckpt, &len);
        ck_assert_mem_eq(now, ckpt_text, len);
        free(now);
    }
    free(ckpt_text);
    free(config_text);
}
END_TEST

/* A checkpoint stores the config without the removed key: --resume with
 * the same -u agrees with it, without the -u it does not (lr differs). */
START_TEST(test_unset_resume)
{
    const char *cfg = train_config(NULL), *ckpt = path_in("u.ckpt");
    const char *set_ckpt = fmt("train.checkpoint=%s", ckpt);
    run_result r = run("train", cfg, "--quiet", "-s", set_ckpt, "-u",
                       "train.lr");

    assert_ok(r);
    result_free(&r);
    r = run("predict", ckpt, "-u", "train.lr");
    assert_fails(r, 2, "[train] lr: nothing to remove");
    result_free(&r);
    r = run("train", cfg, "--quiet", "-s", set_ckpt, "-s",
            "train.iterations=3", "--resume", ckpt);
    assert_fails(r, 2, "lr");
    result_free(&r);
    r = run("train", cfg, "--quiet", "-s", set_ckpt, "-u", "train.lr", "-s",
            "train.iterations=3", "--resume", ckpt);
    assert_ok(r);
    result_free(&r);
    /* [train] emptied and refilled without lr: the same config */
    r = run("train", cfg, "--quiet", "-s", "train=", "-s", set_ckpt, "-s",
            "train.iterations=4", "-s", "train.batch_size=2", "--resume",
            ckpt);
    assert_ok(r);
    result_free(&r);
}
END_TEST

/* [train] metrics = the training data (a path relative to the config's
 * directory, the metrics one given as the working directory sees it). */
START_TEST(test_metrics_is_data)
{
    static const char data[] =
        "id,t,x,y\na,0,1,1\na,1,2,1\na,2,2,2\nb,0,1,1\nb,1,2,1\nb,2,2,2\n"
        "c,0,1,1\nc,1,2,1\nc,2,2,2\nd,0,1,1\nd,1,2,1\nd,2,2,2\n";
    const char *cfg = train_config("source = csv\npath = data.csv");
    const char *csv = write_config("data.csv", data);
    const char *set;

    set = fmt("train.metrics=%s", csv);
    assert_clash(run("train", cfg, "--quiet", "-s", set), "[train] metrics ",
                 "[data] path ", csv, data);
}
END_TEST

/* An uncompressed IDX pair: n 2x2 images, labels alternating 0, 1. */
static void write_idx(const char *images, const char *labels, size_t n)
{
    unsigned char img[16 + 4 * 8] = {0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 2,
                                     0, 0, 0, 2};
    unsigned char lab[8 + 8] = {0, 0, 8, 1, 0, 0, 0, 0};
    FILE *fp;

    ck_assert_uint_le(n, 8);
    img[7] = lab[7] = (unsigned char)n;
    for (size_t i = 0; i < n; i++) {
        lab[8 + i] = (unsigned char)(i % 2);
        img[16 + 4 * i + i % 2] = 255;
    }
    ck_assert_ptr_nonnull(fp = fopen(path_in(images), "wb"));
    ck_assert_uint_eq(fwrite(img, 1, 16 + 4 * n, fp), 16 + 4 * n);
    fclose(fp);
    ck_assert_ptr_nonnull(fp = fopen(path_in(labels), "wb"));
    ck_assert_uint_eq(fwrite(lab, 1, 8 + n, fp), 8 + n);
    fclose(fp);
}

/* The same for IDX data: no output may replace an images or labels file. */
START_TEST(test_output_is_idx_data)
{
    static const char ini[] =
        "[solver]\nplugin = tsit5\n"
        "[field]\nplugin = mlp\nlayers = 2, 4, 2\n"
        "[data]\nsource = idx\nimages = tr-img\nlabels = tr-lab\n"
        "test_images = te-img\ntest_labels = te-lab\n"
        "[train]\niterations = 1\nbatch_size = 2\n";
    const char *cfg = write_config("idx.ini", ini);
    size_t len;
    char *before;
    run_result r;

    write_idx("tr-img", "tr-lab", 6);
    write_idx("te-img", "te-lab", 4);
    before = test_read_file(path_in("te-lab"), &len);
    r = run("train", cfg, "--quiet", "-s",
            fmt("train.metrics=%s", path_in("te-lab")));
    assert_fails(r, 2, "[train] metrics ", "[data] test_labels ");
    result_free(&r);
    r = run("train", cfg, "--quiet", "-s",
            fmt("train.checkpoint=%s", path_in("tr-img")));
    assert_fails(r, 2, "[train] checkpoint ", "[data] images ");
    result_free(&r);
    {
        char *now = test_read_file(path_in("te-lab"), NULL);
        ck_assert_mem_eq(now, before, len);
        free(now);
    }
    free(before);
    /* The config itself is fine: the refusals were the outputs. */
    r = run("train", cfg, "--quiet");
    assert_ok(r);
    result_free(&r);
}
END_TEST

/* An output that cannot be written stops the run before training. */
START_TEST(test_train_unwritable_summary)
{
    const char *cfg = train_config(NULL), *ckpt = path_in("c.ckpt");
    const char *metrics = path_in("m.jsonl");
    const char *set_ckpt, *set_metrics;
    run_result r;

    set_ckpt = fmt("train.checkpoint=%s", ckpt);
    set_metrics = fmt("train.metrics=%s", metrics);
    r = run("train", cfg, "--quiet", "-s", set_ckpt, "-s", set_metrics,
            "--summary-json", path_in("no-such-dir/s.json"));
    assert_fails(r, 2, "--summary-json ", "no-such-dir/s.json",
                 "no directory");
    ck_assert_int_eq(access(ckpt, F_OK), -1);
    ck_assert_int_eq(access(metrics, F_OK), -1);
    result_free(&r);
}
END_TEST

/* A run that fails before its first checkpoint does not pass off an older
 * file of that name as its last good state, and leaves that file alone. */
START_TEST(test_failure_names_no_unwritten_checkpoint)
{
    const char *cfg = train_config(NULL), *ckpt = path_in("old.ckpt");
    const char *set_ckpt;
    char *text;
    run_result r;

    set_ckpt = fmt("train.checkpoint=%s", ckpt);
    write_config("old.ckpt", "older\n");
    r = run("train", cfg, "--quiet", "-s", set_ckpt, "-s", "train.lr=1e9",
            "-s", "train.iterations=20", "-s", "train.checkpoint_every=10",
            "-s", "solver.max_steps=100");
    assert_fails(r, 1, "iteration 2", "before this run wrote a checkpoint",
                 "is not this run's");
    ck_assert_ptr_null(strstr(r.err, "last good state"));
    result_free(&r);
    text = test_read_file(ckpt, NULL);
    ck_assert_str_eq(text, "older\n");
    free(text);

    /* at lr 10 iteration 3 fails: checkpoints of iterations 1 and 2 */
    r = run("train", cfg, "--quiet", "-s", set_ckpt, "-s", "train.lr=10",
            "-s", "train.iterations=20", "-s", "train.checkpoint_every=1",
            "-s", "solver.max_steps=100", "-s", "train.eval_every=0");
    assert_fails(r, 1, "iteration 3", "holds the last good state "
                       "(iteration 2)");
    result_free(&r);
    /* resumed, it fails at once: the file is this run's state */
    r = run("train", cfg, "--quiet", "-s", set_ckpt, "-s", "train.lr=10",
            "-s", "train.iterations=20", "-s", "train.checkpoint_every=1",
            "-s", "solver.max_steps=100", "-s", "train.eval_every=0",
            "--resume", ckpt);
    assert_fails(r, 1, "iteration 3", "holds this run's state at iteration "
                       "2, which it resumed");
    result_free(&r);
    /* a new run that fails first: the file is another run's */
    r = run("train", cfg, "--quiet", "-s", set_ckpt, "-s", "train.lr=10",
            "-s", "train.iterations=20", "-s", "train.checkpoint_every=5",
            "-s", "solver.max_steps=100", "-s", "train.eval_every=0");
    assert_fails(r, 1, "iteration 3", "is another run's (run id ",
                 "iteration 2), not this one's");
    result_free(&r);
}
END_TEST

/* ---- under an address-space limit ---------------------------------------- */

/* OpenBLAS's worker threads retried their failed 128 MiB allocation forever
 * and exit waited for them: `ulimit -v 100000; nde --version` never ended.
 * AddressSanitizer cannot start under such a limit (its shadow memory), so
 * these run in the plain build only. */
#define LIMIT_100MB ((rlim_t)100000 * 1024)
#define WIDE_MLP                                                             \
    "[problem]\nt0 = 0\nt1 = 1\ny0 = 1, 0\nnsave = 3\n\n"                 \
    "[solver]\nplugin = tsit5\n\n"                                          \
    "[field]\nplugin = mlp\nlayers = 2, 16, 16, 2\n"

START_TEST(test_version_under_memory_limit)
{
#ifndef __SANITIZE_ADDRESS__
    run_address_limit = LIMIT_100MB;
    run_result r = run("--version");
    run_address_limit = 0;
    assert_ok(r);
    assert_contains(r.out, "nde ");
    result_free(&r);
#endif
}
END_TEST

/* Thin layers need no BLAS buffer: the solve runs. Layers that go through
 * dgemm (thin_width = 8) fail with a message that says why and what to do,
 * instead of hanging in OpenBLAS. */
START_TEST(test_blas_under_memory_limit)
{
#ifndef __SANITIZE_ADDRESS__
    const char *cfg = write_config("wide.ini", WIDE_MLP);
    run_address_limit = LIMIT_100MB;
    run_result thin = run("solve", cfg);
    run_result wide = run("solve", cfg, "-s", "field.thin_width=8");
    run_address_limit = 0;
    assert_ok(thin);
    assert_fails(wide, 1, "OpenBLAS needs a 128 MiB work buffer",
                 "thin_width");
    result_free(&thin);
    result_free(&wide);
    /* Without the limit the same config runs through dgemm. */
    wide = run("solve", cfg, "-s", "field.thin_width=8");
    assert_ok(wide);
    result_free(&wide);
#endif
}
END_TEST

/* ---- config text: nothing cut, nothing smuggled (issue 10) -------------- */

/* -s values were cut at 4095 characters: 799 save times gave 512 rows. */
START_TEST(test_set_long_value_whole)
{
    const char *cfg = write_config("lv.ini", "[problem]\nt0 = 0\nt1 = 10\ny0 = 1, 1\n\n"
                                   LV_SOLVER LV_FIELD);
    size_t cap = 16 + 799 * 12, n = 0;
    char *set = malloc(cap);
    csv *c = malloc(sizeof *c);
    run_result r;

    ck_assert_ptr_nonnull(set);
    ck_assert_ptr_nonnull(c);
    n += (size_t)snprintf(set, cap, "problem.saveat=");
    for (int i = 1; i < 800; i++)
        n += (size_t)snprintf(set + n, cap - n, "%s%.4f", i > 1 ? ", " : "",
                              i * 10.0 / 800);
    ck_assert_uint_gt(n, 4096);
    r = run("solve", cfg, "-s", set);
    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_uint_eq(c->rows, 799);
    ck_assert_double_eq(cell(c, 798, 0), 9.9875);
    result_free(&r);
    free(set);
    free(c);
}
END_TEST

/* Numbers are read whole, and out-of-range ones are refused: 0.<200
 * zeros>5 read as 0, a 1000-digit number as 1.11e126. */
START_TEST(test_numbers_read_whole)
{
    char set[1100];
    run_result r;

    snprintf(set, sizeof set, "problem.t1=0.%0200d5", 0);
    r = run("solve", example("lotka_volterra.ini"), "-s", set, "-s",
            "problem.nsave=2");
    assert_ok(r);
    assert_contains(r.out, "\n4.9999999999999999e-201,1,1\n");
    result_free(&r);
    memset(set, '1', sizeof set);
    memcpy(set, "problem.t1=", 11);
    set[11 + 1000] = '\0';
    r = run("solve", example("lotka_volterra.ini"), "-s", set);
    assert_fails(r, 2, "[problem] t1: '1111", "is out of range: it overflows a double");
    result_free(&r);
    r = run("solve", example("lotka_volterra.ini"), "-s", "solver.max_steps=99999999999999999999");
    assert_fails(r, 2, "[solver] max_steps: '99999999999999999999' is out of range");
    result_free(&r);
}
END_TEST

/* A newline in a -s value was stored raw in a checkpoint's config, whose
 * re-reading then gave another model. */
START_TEST(test_set_control_characters_refused)
{
    run_result r = run("solve", example("lotka_volterra.ini"), "-s",
                       "problem.t1=10\n[field]\nplugin = linear");
    assert_fails(r, 2, "[problem] t1: refused: control character 0x0a");
    result_free(&r);
    r = run("solve", example("lotka_volterra.ini"), "-s", "solver.rt]ol=1");
    assert_fails(r, 2, "[solver] rt]ol: refused: a key may only have");
    result_free(&r);
}
END_TEST

/* A BOM, CR LF line ends, blanks inside the brackets and section names
 * longer than inih's 49 characters gave "out of memory". */
START_TEST(test_config_bom_crlf_long_sections)
{
    char long_ini[1024], name[61];
    const char *cfg = write_config("crlf.ini",
        "\xEF\xBB\xBF[problem]\r\nt0 = 0\r\nt1 = 10\r\ny0 = 1, 1\r\nnsave = 2\r\n"
        "[ solver ]\r\nplugin = tsit5\r\n[field\r]\r\nplugin = expr\r\n"
        "state = x, y\r\nparams = a=1.5, b=1.0, c=3.0, d=1.0\r\n"
        "dx = a*x - b*x*y\r\ndy = d*x*y - c*y\r\n");
    csv *c = malloc(sizeof *c);
    run_result r = run("solve", cfg);

    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_str_eq(c->header, "t,x,y");
    ck_assert_uint_eq(c->rows, 2);
    result_free(&r);

    /* two parts whose names agree in their first 49 characters */
    memset(name, 'p', 60);
    name[60] = '\0';
    snprintf(long_ini, sizeof long_ini,
             "[problem]\nt0 = 0\nt1 = 1\ny0 = 0\nsaveat = 1\n\n"
             "[solver]\nplugin = tsit5\n\n"
             "[field]\nplugin = sum\nparts = %s1, %s2\n\n"
             "[field.%s1]\nplugin = linear\nA = 0\nb = 1\n\n"
             "[field.%s2]\nplugin = linear\nA = 0\nb = 0.5\n",
             name, name, name, name);
    r = run("solve", write_config("long.ini", long_ini));
    assert_ok(r);
    parse_csv(r.out, c);
    ck_assert_double_eq_tol(cell(c, 0, 1), 1.5, 1e-12);
    result_free(&r);
    free(c);
}
END_TEST

/* /dev/zero as a config was read forever. */
START_TEST(test_config_endless_file)
{
    run_result r = run("solve", "/dev/zero");
    assert_fails(r, 2, "/dev/zero: not a text file (NUL byte)");
    result_free(&r);
}
END_TEST

/* rtol = atol = 1e-300 said "non-finite initial state". */
START_TEST(test_tiny_tolerances)
{
    run_result r = run("solve", example("lotka_volterra.ini"), "-s",
                       "solver.rtol=1e-300", "-s", "solver.atol=1e-300");
    assert_fails(r, 2, "[solver] rtol: 1e-300 is below 2.2e-15");
    result_free(&r);
    r = run("solve", example("lotka_volterra.ini"), "-s", "solver.rtol=0",
            "-s", "solver.atol=1e-300");
    assert_fails(r, 2, "the error norm of the initial state overflows",
                 "atol = 1e-300");
    result_free(&r);
}
END_TEST

/* Integer options beyond their type were clamped to 2^63 - 1 silently. */
START_TEST(test_integer_options_out_of_range)
{
    const char *ab = write_config("ab.ini", "[ab]\nbase = x.ini\n");
    run_result r = run("predict", "no.ckpt", "--paths", "18446744073709551616");
    assert_fails(r, 2, "--paths 18446744073709551616 is out of range");
    result_free(&r);
    r = run("predict", "no.ckpt", "--seed", "18446744073709551616");
    assert_fails(r, 2, "--seed 18446744073709551616 is out of range");
    result_free(&r);
    r = run("gradcheck", "no.ini", "--nparams", "9223372036854775808");
    assert_fails(r, 2, "--nparams 9223372036854775808 is out of range");
    result_free(&r);
    r = run("gradcheck", "no.ini", "--tol", "1e999");
    assert_fails(r, 2, "--tol needs a positive number");
    result_free(&r);
    r = run("solve", "no.ini", "--seed", "99999999999999999999");
    assert_fails(r, 2, "--seed needs a non-negative integer");
    result_free(&r);
    r = run("ab", ab, "--seeds", "1,99999999999999999999", "-o", path_in("abrun"));
    assert_fails(r, 2, "--seeds: 99999999999999999999 is out of range");
    result_free(&r);
    r = run("ab", ab, "-j", "99999999999999999999", "-o", path_in("abrun"));
    assert_fails(r, 2, "-j needs a positive integer");
    result_free(&r);
}
END_TEST

/* ---- regularizer scale in the metrics ------------------------------------ */

/* The number after "KEY": in a JSON line. */
static double json_at(const char *line, const char *key)
{
    char pat[128];
    const char *p;

    snprintf(pat, sizeof pat, "\"%s\": ", key);
    p = strstr(line, pat);
    ck_assert_msg(p != NULL, "no %s in %s", key, line);
    return strtod(p + strlen(pat), NULL);
}

/* nde params: every parameter by name, any count (the UDE's 166: its
 * expert's rates first), as lines or JSON; the training run points at it
 * when it prints none itself. */
/* predict --do: do(y = 2) on a trained Lotka-Volterra expr model holds
 * y at 2, so x' = (a - 2 b) x: x(t) = x0 e^{(a - 2 b) t} with the
 * trained a, b; a neural ODE in standard units holds its state at the
 * value given in the data's units. */
START_TEST(test_predict_do)
{
    const char *ckpt = path_in("do.ckpt");
    static csv c;
    double a, b;
    run_result r;

    r = run("train", train_config(NULL), "--quiet", "-s",
            fmt("train.checkpoint=%s", ckpt));
    assert_ok(r);
    result_free(&r);
    r = run("params", ckpt, "--json");
    assert_ok(r);
    a = json_at(r.out, "a");
    b = json_at(r.out, "b");
    result_free(&r);
    r = run("predict", ckpt, "--do", "y=2", "-s", "problem.t0=0", "-s",
            "problem.t1=1", "-s", "problem.y0=1,5", "-s", "problem.nsave=11");
    assert_ok(r);
    parse_csv(r.out, &c);
    result_free(&r);
    ck_assert_uint_eq(c.rows, 11);
    for (size_t k = 0; k < c.rows; k++) {
        const double x = exp((a - 2 * b) * cell(&c, k, 0));
        ck_assert(cell(&c, k, 2) == 2.0);
        ck_assert_msg(fabs(cell(&c, k, 1) - x) < 1e-6 * x, "x(%g) = %.17g, "
                      "expected %.17g", cell(&c, k, 0), cell(&c, k, 1), x);
    }
    /* by index, and the other state */
    r = run("predict", ckpt, "--do", "0=3", "-s", "problem.t0=0", "-s",
            "problem.t1=1", "-s", "problem.y0=1,5", "-s", "problem.nsave=3");
    assert_ok(r);
    parse_csv(r.out, &c);
    result_free(&r);
    ck_assert(cell(&c, 2, 1) == 3.0 && cell(&c, 2, 2) != 5.0);

    r = run("train", pop_config("normalize = standard\ntest_fraction = 0"),
            "--quiet", "-s", "train.iterations=5");
    assert_ok(r);
    result_free(&r);
    r = run("predict", path_in("pop.ckpt"), "--do", "lynx=20");
    assert_ok(r);
    parse_csv(r.out, &c);
    result_free(&r);
    for (size_t k = 0; k < c.rows; k++)
        ck_assert_double_eq_tol(cell(&c, k, 2), 20.0, 1e-12);

    r = run("predict", path_in("pop.ckpt"), "--do", "wolf=3");
    assert_fails(r, 2, "--do wolf=3: the model has no state 'wolf'");
    result_free(&r);
    r = run("predict", path_in("pop.ckpt"), "--do", "lynx=1,hare");
    assert_fails(r, 2, "--do lynx=1,hare: 'hare' is not STATE=VALUE");
    result_free(&r);
    r = run("predict", path_in("pop.ckpt"), "--do", "lynx=many");
    assert_fails(r, 2, "'many' is not a finite number");
    result_free(&r);
    r = run("predict", path_in("pop.ckpt"), "--do", "lynx=1,1=2");
    assert_fails(r, 2, "state '1' is given twice");
    result_free(&r);
}
END_TEST

START_TEST(test_params)
{
    const char *ckpt = path_in("p.ckpt");
    size_t lines = 0;
    run_result r;

    r = run("train", example("ude_lv.ini"), "--quiet", "-s",
            "train.iterations=2", "-s", fmt("train.checkpoint=%s", ckpt));
    assert_ok(r);
    assert_contains(r.err, "166 parameters: `nde params ");
    result_free(&r);
    r = run("params", ckpt);
    assert_ok(r);
    ck_assert_msg(strncmp(r.out, "expert.a = ", 11) == 0, "%s", r.out);
    assert_contains(r.out, "\ncorrection.b2[1] = ");
    for (const char *p = r.out; (p = strchr(p, '\n')); p++)
        lines++;
    ck_assert_uint_eq(lines, 166);
    result_free(&r);
    r = run("params", ckpt, "--json");
    assert_ok(r);
    ck_assert_msg(strncmp(r.out, "{\"expert.a\": ", 13) == 0, "%s", r.out);
    ck_assert(json_at(r.out, "expert.d") > 0);
    result_free(&r);
    r = run("params", example("ude_lv.ini"));
    assert_fails(r, 2, "not a usable checkpoint");
    result_free(&r);
    r = run("params", ckpt, "--csv");
    assert_fails(r, 2, "unknown option '--csv'");
    result_free(&r);
}
END_TEST

/* examples/ude_lv.ini: with a Glorot-initialised correction seed 2's first
 * solve underflows; init = zero_last (the example's) starts from the
 * expert alone and trains. */
START_TEST(test_ude_zero_last)
{
    run_result r;

    r = run("train", example("ude_lv.ini"), "--quiet", "-s", "train.seed=2",
            "-s", "train.iterations=3", "-u", "field.correction.init", "-s",
            "train.on_failure=stop");
    assert_fails(r, 1, "iteration 1: forward solve: step size underflow");
    result_free(&r);
    r = run("train", example("ude_lv.ini"), "--quiet", "-s", "train.seed=2",
            "-s", "train.iterations=3", "-s", "train.on_failure=stop");
    assert_ok(r);
    result_free(&r);
}
END_TEST

/* examples/ude_stiff.ini: backsolve's backward solve of the stiff UDE
 * fails on its first iteration, and says why and what to use instead;
 * the interpolating adjoint (its backward solve under autoswitch, the
 * parameter cotangent a quadrature) trains. */
START_TEST(test_ude_stiff_adjoints)
{
    run_result r;

    r = run("train", example("ude_stiff.ini"), "--quiet", "-s",
            "train.iterations=2", "-s", "adjoint.plugin=backsolve", "-s",
            "train.on_failure=stop");
    assert_fails(r, 1, "backward solve: step size underflow");
    ck_assert_msg(strstr(r.err, "backsolve solves the state backwards in "
                         "time") && strstr(r.err, "the interpolating and "
                         "discrete adjoints keep the forward states"),
                  "%s", r.err);
    result_free(&r);
    r = run("train", example("ude_stiff.ini"), "--quiet", "-s",
            "train.iterations=2", "-s", "adjoint.plugin=interpolating", "-s",
            "train.on_failure=stop");
    assert_ok(r);
    result_free(&r);
}
END_TEST

/* on_failure = backoff: the run that stops at iteration 3 under the
 * default `stop` finishes; every failed iteration is a metrics line with
 * "failed", a warning, and counted in the summary and the last message.
 * The policy may change on --resume. */
START_TEST(test_on_failure_backoff)
{
    const char *cfg = train_config(NULL), *metrics = path_in("f.jsonl");
    const char *summary = path_in("f.json"), *ckpt = path_in("f.ckpt");
    char *text, *p;
    long failed = 0;
    run_result r;

    r = run("train", cfg, "-s", "train.lr=10", "-s", "train.iterations=40",
            "-s", "solver.max_steps=100", "-s", "train.eval_every=0", "-s",
            "train.on_failure=backoff", "-s", "train.max_failures=30", "-s",
            fmt("train.metrics=%s", metrics), "-s",
            fmt("train.checkpoint=%s", ckpt), "--summary-json", summary);
    assert_ok(r);
    assert_contains(r.err, "iteration 3: forward solve: max_steps = 100");
    assert_contains(r.err, "its batch dropped (on_failure = backoff; 1 of "
                           "at most 30)");
    assert_contains(r.err, "failed iterations dropped (learning rate x ");
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(metrics, NULL));
    for (p = text; (p = strstr(p, "\"failed\": \"NDE_EMAXSTEPS\"")); p++)
        failed++;
    ck_assert_int_gt(failed, 0);
    free(text);
    ck_assert_ptr_nonnull(text = test_read_file(summary, NULL));
    ck_assert_int_eq((long)json_at(text, "failures"), failed);
    ck_assert_ptr_nonnull(strstr(text, "\"run_id\": \""));
    free(text);
    /* resumed under another policy */
    r = run("train", cfg, "--quiet", "-s", "train.lr=10", "-s",
            "train.iterations=41", "-s", "solver.max_steps=100", "-s",
            "train.eval_every=0", "-s", "train.on_failure=skip", "-s",
            "train.max_failures=40", "--resume", ckpt);
    ck_assert_int_ne(r.code, 2);
    result_free(&r);
    r = run("train", cfg, "-s", "train.on_failure=retry");
    assert_fails(r, 2, "[train] on_failure: 'retry': expected stop, skip or "
                       "backoff");
    result_free(&r);
}
END_TEST

/* Each regularizer's R, weight * R and weight * R / data loss per
 * iteration, with an exponential weight (0.01 -> 0.001 over 4
 * iterations) so the weight differs per line; the summary's means are
 * theirs. */
START_TEST(test_regularizer_scale_in_metrics)
{
    static const char *const mean_keys[3] = {
        "reg_wd.mean", "reg_wd.weighted_mean", "reg_wd.ratio_mean"};
    /* data from other parameters than the field's: a loss to compare */
    const char *cfg = train_config("source = field\ny0 = 1, 1\n"
                                   "true_params = a=1.2, b=1.0, c=3.0, "
                                   "d=1.0\nnpoints = 21\nt1 = 2\n"
                                   "batch_time = 5");
    const char *metrics = path_in("m.jsonl");
    const char *summary = path_in("s.json");
    double sum[3] = {0, 0, 0};
    char *text, *line, *save = NULL;
    run_result r;
    int n = 0;

    r = run("train", cfg, "--quiet", "-s", "train.iterations=4", "-s",
            "regularizer.wd.plugin=l2", "-s", "regularizer.wd.weight=1e-2",
            "-s", "regularizer.wd.schedule=exponential", "-s",
            "regularizer.wd.weight_final=1e-3", "-s",
            fmt("train.metrics=%s", metrics), "--summary-json", summary);
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(metrics, NULL));
    for (line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        double w = 1e-2 * pow(0.1, n / 3.0), R, wr, data;
        if (!strstr(line, "\"loss\""))
            continue;
        R = json_at(line, "reg_wd");
        wr = json_at(line, "reg_wd.weighted");
        data = json_at(line, "data_loss");
        ck_assert_double_gt(R, 0);
        ck_assert_double_eq_tol(wr, w * R, 1e-12 * w * R);
        ck_assert_double_eq(wr, json_at(line, "reg"));
        ck_assert_double_eq_tol(data + wr, json_at(line, "loss"),
                                1e-12 * (data + wr));
        ck_assert_double_eq(json_at(line, "reg_wd.ratio"), wr / data);
        /* l2: |w d(sum theta^2)/dtheta| = 2 w |theta| = 2 w sqrt(R) */
        ck_assert_double_eq_tol(json_at(line, "reg_wd.grad_norm"),
                                2 * w * sqrt(R), 1e-9 * w * sqrt(R));
        ck_assert_double_gt(json_at(line, "data_grad_norm"), 0);
        sum[0] += R;
        sum[1] += wr;
        sum[2] += wr / data;
        n++;
    }
    ck_assert_int_eq(n, 4);
    free(text);
    ck_assert_ptr_nonnull(text = test_read_file(summary, NULL));
    for (int k = 0; k < 3; k++)
        ck_assert_double_eq_tol(json_at(text, mean_keys[k]), sum[k] / 4,
                                1e-12 * sum[k]);
    free(text);
}
END_TEST

/* ---- the points task (examples/annuli.ini) ------------------------------- */

/* Augmented by zeros (ANODE: dim 3), the example's model separates the
 * disc from the ring in its 1000 iterations (seed 1: every test point);
 * the summary's accuracy is the task's evaluation. */
START_TEST(test_train_annuli_augmented)
{
    const char *summary = path_in("annuli.json");
    char *text;
    run_result r;

    r = run("train", example("annuli.ini"), "--quiet", "-s", "data.lift=zeros",
            "-s", "field.layers=3,32,3", "-s", "data.n_test=200",
            "--summary-json", summary);
    assert_ok(r);
    result_free(&r);
    text = test_read_file(summary, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(json_at(text, "test_accuracy") >= 0.98, "%s", text);
    ck_assert_msg(json_at(text, "test_loss") < 0.1, "%s", text);
    free(text);
}
END_TEST

/* Data-controlled (the point carried as 2 constant states that the field
 * `controlled` holds still while its inner mlp reads them), the plane's
 * own 2-D state separates the disc from the ring, which the plain model
 * of the example cannot (91 % over 5 seeds: README). */
START_TEST(test_train_annuli_data_controlled)
{
    const char *summary = path_in("annuli.json");
    char *text;
    run_result r;

    r = run("train", example("annuli.ini"), "--quiet", "-s",
            "data.control=true", "-s", "field.plugin=controlled", "-s",
            "field.inner=g", "-s", "field.controls=2", "-u", "field.layers",
            "-u", "field.activation", "-u", "field.time", "-s",
            "field.g.plugin=mlp", "-s", "field.g.layers=4,32,4", "-s",
            "field.g.time=true", "-s", "data.n_test=200", "--summary-json",
            summary);
    assert_ok(r);
    result_free(&r);
    text = test_read_file(summary, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(json_at(text, "test_accuracy") >= 0.98, "%s", text);
    free(text);
}
END_TEST

/* predict --flow: the paths of the grid's inputs within the disc (a 5 x 5
 * grid over [-1.5, 1.5]^2 keeps 13), lifted as the task lifts (the
 * controlled state has 4 components), drawn as one line and a start
 * dot each into a PNG and an SVG; outputs that clash or make no sense are refused. */
START_TEST(test_predict_flow)
{
    const char *ckpt = path_in("ctl.ckpt"), *base = path_in("flow");
    char png[4096], svg[4096], *text;
    size_t len, dots;
    run_result r;

    r = run("train", example("annuli.ini"), "--quiet", "-s",
            "data.control=true", "-s", "field.plugin=controlled", "-s",
            "field.inner=g", "-s", "field.controls=2", "-u", "field.layers",
            "-u", "field.activation", "-u", "field.time", "-s",
            "field.g.plugin=mlp", "-s", "field.g.layers=4,8,4", "-s",
            "train.iterations=20", "-s", fmt("train.checkpoint=%s", ckpt));
    assert_ok(r);
    result_free(&r);
    r = run("predict", ckpt, "--flow", base, "--flow-grid", "5",
            "--flow-states", "0,1");
    assert_ok(r);
    assert_contains(r.err, "flow of 13 inputs");
    result_free(&r);
    snprintf(png, sizeof png, "%s.png", base);
    snprintf(svg, sizeof svg, "%s.svg", base);
    ck_assert_ptr_nonnull(text = test_read_file(png, &len));
    ck_assert_msg(len > 8 && memcmp(text, "\x89PNG\r\n\x1a\n", 8) == 0,
                  "%s is not a PNG", png);
    free(text);
    ck_assert_ptr_nonnull(text = test_read_file(svg, NULL));
    /* each path's start is a dot, the glyph U+25CF as PLplot writes it */
    dots = count_glyphs(text, "&#x25cf;");
    ck_assert_msg(dots == 13, "%zu path starts in %s", dots, svg);
    free(text);

    r = run("predict", ckpt, "--flow", base, "--flow-states", "0,4");
    assert_fails(r, 2, "--flow-states: 0,4: the state has 4 components");
    result_free(&r);
    r = run("predict", ckpt, "--flow", base, "-o", path_in("x.csv"));
    assert_fails(r, 2, "--flow draws a picture");
    result_free(&r);
    r = run("predict", ckpt, "--flow", path_in("ctl"), "--flow-grid", "1");
    assert_fails(r, 2, "--flow-grid");
    result_free(&r);
    r = run("predict", ckpt, "--plot", path_in("fit"));
    assert_fails(r, 2, "--plot: this model's task has no held-out series");
    result_free(&r);
    /* BASE.png may not be the checkpoint */
    r = run("train", example("annuli.ini"), "--quiet", "-s",
            "train.iterations=2", "-s",
            fmt("train.checkpoint=%s", path_in("c.png")));
    assert_ok(r);
    result_free(&r);
    r = run("predict", path_in("c.png"), "--flow", path_in("c"));
    assert_fails(r, 2, "is the same file as the checkpoint");
    result_free(&r);
}
END_TEST

/* The cnf example on 8 Gaussians: 30 iterations already beat the
 * Gaussian fitted to the data (NLL 4.26 nats, bench_density_ref; the
 * untrained flow, the standard normal, 5.9), with the exact trace and
 * with Hutchinson's. */
START_TEST(test_train_cnf_example)
{
    static const char *const traces[] = {"field.trace=exact",
                                         "field.trace=hutchinson"};
    const char *summary = path_in("cnf.json");

    for (size_t i = 0; i < 2; i++) {
        run_result r = run("train", example("cnf.ini"), "--quiet", "-s",
                           traces[i], "-s", "train.iterations=30", "-s",
                           "train.eval_every=0", "-s", "data.n_test=500",
                           "--summary-json", summary);
        char *text;

        assert_ok(r);
        result_free(&r);
        text = test_read_file(summary, NULL);
        ck_assert_ptr_nonnull(text);
        ck_assert_msg(json_at(text, "test_loss") < 4.2, "%s: %s", traces[i],
                      text);
        free(text);
    }
}
END_TEST

/* A density checkpoint: --paths N samples the flow backwards, whose
 * logp is the model's log-density of each point (checked against the
 * forward solve from it); the same seed, the same samples; --plot draws
 * the density. */
START_TEST(test_cnf_samples_and_density)
{
    const char *ckpt = path_in("cnf.ckpt"), *s1 = path_in("s1.csv");
    static csv c;
    char *a, *b;
    run_result r;

    r = run("train", example("cnf.ini"), "--quiet", "-s",
            "train.iterations=20", "-s", "train.eval_every=0", "-s",
            "data.n_test=100", "-s", fmt("train.checkpoint=%s", ckpt));
    assert_ok(r);
    result_free(&r);
    r = run("predict", ckpt, "--paths", "200", "--seed", "5", "-o", s1);
    assert_ok(r);
    assert_contains(r.err, "200 samples of the flow");
    result_free(&r);
    ck_assert_ptr_nonnull(a = test_read_file(s1, NULL));
    parse_csv(a, &c);
    ck_assert_str_eq(c.header, "sample,x0,x1,logp");
    ck_assert_uint_eq(c.rows, 200);
    for (size_t k = 0; k < 3; k++) {
        char y0[128];
        static csv f;
        double z0, z1, l, logp;
        snprintf(y0, sizeof y0, "problem.y0=%.17g,%.17g,0", cell(&c, k, 1),
                 cell(&c, k, 2));
        r = run("predict", ckpt, "-s", "problem.t0=0", "-s", "problem.t1=1",
                "-s", y0, "-s", "problem.nsave=2");
        assert_ok(r);
        parse_csv(r.out, &f);
        result_free(&r);
        z0 = cell(&f, 1, 1);
        z1 = cell(&f, 1, 2);
        l = cell(&f, 1, 3);
        logp = -0.5 * (z0 * z0 + z1 * z1) - log(2 * M_PI) - l;
        ck_assert_msg(fabs(logp - cell(&c, k, 3)) < 1e-3 * (1 + fabs(logp)),
                      "sample %zu: logp %.9g, forward %.9g", k,
                      cell(&c, k, 3), logp);
    }
    r = run("predict", ckpt, "--paths", "200", "--seed", "5", "-o",
            path_in("s2.csv"));
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(b = test_read_file(path_in("s2.csv"), NULL));
    ck_assert_str_eq(a, b);
    free(b);
    r = run("predict", ckpt, "--paths", "200", "--seed", "6", "-o",
            path_in("s2.csv"));
    assert_ok(r);
    result_free(&r);
    ck_assert_ptr_nonnull(b = test_read_file(path_in("s2.csv"), NULL));
    ck_assert_str_ne(a, b);
    free(a);
    free(b);
    r = run("predict", ckpt, "--plot", path_in("dens"), "-o", "/dev/null");
    assert_ok(r);
    assert_contains(r.err, "density on a 100 x 100 grid");
    result_free(&r);
    ck_assert_ptr_nonnull(a = test_read_file(path_in("dens.svg"), NULL));
    ck_assert_ptr_nonnull(strstr(a, "<svg"));
    free(a);
}
END_TEST

/* A lift that does not fit the field's dim, or no lift at all, is a
 * config error naming the file, line and key. */
START_TEST(test_annuli_lift_errors)
{
    run_result r;

    r = run("train", example("annuli.ini"), "-s", "field.layers=3,8,3");
    assert_fails(r, 2, "annuli.ini:", "[data] lift: identity: ",
                 "the field's dim must be 2, not 3");
    result_free(&r);
    r = run("train", example("annuli.ini"), "-s", "data.lift=zeros");
    assert_fails(r, 2, "(-s data.lift=zeros): [data] lift: zeros: ",
                 "at least 3, not 2");
    result_free(&r);
    r = run("train", example("annuli.ini"), "-s", "data.lift=pad");
    assert_fails(r, 2, "[data] lift: expected identity, zeros, linear or "
                       "mlp, not 'pad'");
    result_free(&r);
    r = run("train", example("annuli.ini"), "-s", "data.control=true");
    assert_fails(r, 2, "[data] control: the state [h | x] needs a field's "
                       "dim of at least 3, not 2");
    result_free(&r);
    r = run("train", example("annuli.ini"), "-s", "data.control=true", "-s",
            "field.layers=3,8,3");
    assert_fails(r, 2, "[data] lift: identity: ", "must be 4, not 3");
    result_free(&r);
    r = run("train", example("annuli.ini"), "-s", "data.control=true", "-s",
            "field.layers=3,8,3", "-s", "data.lift=zeros", "-s",
            "data.readout=first");
    assert_fails(r, 2, "[data] readout: first: ", "but h has 1");
    result_free(&r);
    r = run("train", example("annuli.ini"), "-s", "data.readout=last");
    assert_fails(r, 2, "[data] readout: expected linear or first, not 'last'");
    result_free(&r);
    r = run("train", example("annuli.ini"), "-s", "data.r_out=0.9");
    assert_fails(r, 2, "[data] r_out: 0.9 is outside (1, inf)");
    result_free(&r);
}
END_TEST

/* nde graph: a chain a -> b -> c (each state also decays) learned by an
 * ngm field from one trajectory of 100 points. */
#define CHAIN_CONFIG                                                         \
    "[solver]\nplugin = tsit5\nrtol = 1e-5\natol = 1e-7\n"                   \
    "[field]\nplugin = ngm\ndim = 3\nhidden = 4\n"                           \
    "[field.truth]\nplugin = expr\nstate = a, b, c\n"                        \
    "da = -0.3*a\ndb = a - 0.5*b\ndc = b - 0.5*c\n"                          \
    "[adjoint]\nplugin = interpolating\n"                                    \
    "[data]\nsource = field\nsystem = field.truth\ny0 = 2, -1, 1\n"          \
    "npoints = 100\nt1 = 10\nbatch_time = 10\n"                              \
    "[train]\niterations = 1000\nbatch_size = 20\nlr = 0.02\nseed = 1\n"

/* The AUROC `nde graph` printed. */
static double graph_auroc(const char *out)
{
    const char *p = strstr(out, "\nauroc ");
    ck_assert_msg(p != NULL, "no auroc in:\n%s", out);
    return strtod(p + 7, NULL);
}

/* Trained with group_lasso, the graph has the chain's edges (AUROC over
 * the 9 entries >= 0.9); without it, or against a wrong (transposed)
 * truth, it does not. */
START_TEST(test_graph_recovers_chain)
{
    const char *with = write_config("chain.ini", CHAIN_CONFIG
                                    "[regularizer.gl]\nplugin = group_lasso\n"
                                    "weight = 0.5\n");
    const char *without = write_config("plain.ini", CHAIN_CONFIG);
    const char *truth = write_config("truth.csv", "# a b c\n1,0,0\n1,1,0\n"
                                                  "0,1,1\n");
    const char *wrong = write_config("wrong.csv", "1,1,0\n0,1,1\n0,0,1\n");
    const char *ckpt = path_in("chain.ckpt"), *plain = path_in("plain.ckpt");
    const char *csv = path_in("g.csv"), *dot = path_in("g.dot");
    run_result r = run("train", with, "--quiet", "-s",
                       fmt("train.checkpoint=%s", ckpt));
    double auc;
    char *text;

    assert_ok(r);
    result_free(&r);
    r = run("graph", ckpt, "--truth", truth, "--csv", csv, "--dot", dot);
    assert_ok(r);
    auc = graph_auroc(r.out);
    ck_assert_msg(auc >= 0.9, "auroc %g with group_lasso:\n%s", auc, r.out);
    assert_contains(r.out, "y0->y1");
    assert_contains(r.out, "y1->y2");
    ck_assert_ptr_null(strstr(r.out, "y2->y0"));
    result_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(csv, NULL));
    ck_assert_int_eq(strncmp(text, "drives,y0,y1,y2\ny0,", 19), 0);
    free(text);
    ck_assert_ptr_nonnull(text = test_read_file(dot, NULL));
    assert_contains(text, "digraph ngm {");
    assert_contains(text, "\"y0\" -> \"y1\" [label=");
    ck_assert_ptr_null(strstr(text, "\"y2\" -> \"y0\""));
    free(text);

    /* do(b = 0.5): predict with b clamped keeps it at 0.5 */
    r = run("predict", ckpt, "-s", "field.clamp=1", "-s",
            "problem.y0=2,0.5,1", "-s", "problem.t0=0", "-s", "problem.t1=2",
            "-s", "problem.nsave=3");
    assert_ok(r);
    assert_contains(r.out, "\n1,");
    ck_assert_ptr_nonnull(text = strstr(r.out, "\n2,"));
    {
        double t, a, b, c;
        ck_assert_int_eq(sscanf(text, "\n%lf,%lf,%lf,%lf", &t, &a, &b, &c),
                         4);
        ck_assert_double_eq(b, 0.5);
        ck_assert(a != 2.0 && c != 1.0);
    }
    result_free(&r);

    r = run("graph", ckpt, "--truth", wrong);
    assert_ok(r);
    auc = graph_auroc(r.out);
    ck_assert_msg(auc < 0.9, "auroc %g against a wrong truth", auc);
    result_free(&r);

    r = run("train", without, "--quiet", "-s",
            fmt("train.checkpoint=%s", plain));
    assert_ok(r);
    result_free(&r);
    r = run("graph", plain, "--truth", truth);
    assert_ok(r);
    auc = graph_auroc(r.out);
    ck_assert_msg(auc < 0.9, "auroc %g without group_lasso", auc);
    result_free(&r);
}
END_TEST

/* windows: y0 with several rows gives a series per row (the held-out
 * set is all of them); a count that is not a multiple of dim is refused. */
START_TEST(test_windows_several_series)
{
    const char *cfg = write_config("chain.ini", CHAIN_CONFIG);
    const char *ckpt = path_in("two.ckpt");
    run_result r = run("train", cfg, "--quiet", "-s", "train.iterations=2",
                       "-s", "data.y0=2,-1,1,0.5,0.5,-0.5", "-s",
                       fmt("train.checkpoint=%s", ckpt));

    assert_ok(r);
    result_free(&r);
    r = run("predict", ckpt);
    assert_ok(r);
    assert_contains(r.out, "\nfield0,0,");
    assert_contains(r.out, "\nfield1,0,");
    assert_contains(r.out, "\nfield1,10,");
    ck_assert_ptr_null(strstr(r.out, "field2"));
    result_free(&r);
    r = run("train", cfg, "--quiet", "-s", "train.iterations=2", "-s",
            "data.y0=2,-1,1,0.5");
    assert_fails(r, 2, "[data] y0", "expected a multiple of 3 values",
                 "got 4");
    result_free(&r);
}
END_TEST

START_TEST(test_graph_errors)
{
    const char *cfg = train_config(NULL), *ckpt = path_in("lv.ckpt");
    const char *chain = write_config("chain.ini", CHAIN_CONFIG);
    const char *nckpt = path_in("ngm.ckpt");
    const char *short_truth = write_config("short.csv", "1,0,0\n1,1\n");
    const char *bad_truth = write_config("bad.csv", "1,0,0\n1,2,0\n0,1,1\n");
    run_result r = run("train", cfg, "--quiet", "-s",
                       fmt("train.checkpoint=%s", ckpt));
    char *before;
    size_t len;

    assert_ok(r);
    result_free(&r);
    r = run("graph", ckpt);
    assert_fails(r, 2, "lv.ckpt", "its field is 'expr', not 'ngm'");
    result_free(&r);
    r = run("graph");
    assert_fails(r, 2, "missing CKPT");
    result_free(&r);
    r = run("graph", ckpt, "--threshold", "-1");
    assert_fails(r, 2, "--threshold needs a finite number >= 0");
    result_free(&r);
    r = run("graph", ckpt, "--bogus");
    assert_fails(r, 2, "unknown option '--bogus'");
    result_free(&r);
    r = run("graph", path_in("none.ckpt"));
    assert_fails(r, 2, "none.ckpt");
    result_free(&r);

    r = run("train", chain, "--quiet", "-s", "train.iterations=2", "-s",
            fmt("train.checkpoint=%s", nckpt));
    assert_ok(r);
    result_free(&r);
    r = run("graph", nckpt, "--truth", short_truth);
    assert_fails(r, 2, "short.csv:2: 2 values, expected 3");
    result_free(&r);
    r = run("graph", nckpt, "--truth", bad_truth);
    assert_fails(r, 2, "bad.csv:2: value 2: expected 0 or 1");
    result_free(&r);
    /* never over the checkpoint (nor a truth file) */
    before = test_read_file(nckpt, &len);
    r = run("graph", nckpt, "--csv", nckpt);
    assert_fails(r, 2, "--csv ", "is the same file as the checkpoint");
    result_free(&r);
    r = run("graph", nckpt, "--truth", bad_truth, "--dot", bad_truth);
    assert_fails(r, 2, "--dot ", "is the same file as --truth");
    result_free(&r);
    {
        size_t len2;
        char *after = test_read_file(nckpt, &len2);
        ck_assert_uint_eq(len2, len);
        ck_assert_mem_eq(after, before, len);
        free(after);
    }
    free(before);
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_help_and_version);
    tcase_add_test(tc, test_no_arguments);
    tcase_add_test(tc, test_unknown_command);
    tcase_add_test(tc, test_missing_config_file);
    tcase_add_test(tc, test_lotka_volterra_reference);
    tcase_add_test(tc, test_batch_column);
    tcase_add_test(tc, test_stats_json);
    tcase_add_test(tc, test_event);
    tcase_add_test(tc, test_examples_run);
    tcase_add_test(tc, test_graph_recovers_chain);
    tcase_add_test(tc, test_graph_errors);
    tcase_add_test(tc, test_windows_several_series);
    tcase_add_test(tc, test_mlp_seed);
    tcase_add_test(tc, test_mlp_threads_same_model);
    tcase_add_test(tc, test_plugins_lists_all);
    tcase_add_test(tc, test_plugins_kind_filter);
    tcase_add_test(tc, test_set_creates_section);
    tcase_add_test(tc, test_set_subsection_key);
    tcase_add_test(tc, test_set_unknown_section);
    tcase_add_test(tc, test_unknown_section);
    tcase_add_test(tc, test_unknown_key);
    tcase_add_test(tc, test_bad_number);
    tcase_add_test(tc, test_wrong_list_length);
    tcase_add_test(tc, test_missing_required_key);
    tcase_add_test(tc, test_overlong_line);
    tcase_add_test(tc, test_expr_syntax_error);
    tcase_add_test(tc, test_plugin_name_refused);
    tcase_add_test(tc, test_missing_plugin_lists_available);
    tcase_add_test(tc, test_module_without_entry);
    tcase_add_test(tc, test_abi_mismatch);
    tcase_add_test(tc, test_build_signature_mismatch);
    tcase_add_test(tc, test_component_abi_mismatch);
    tcase_add_test(tc, test_component_newer_interface);
    tcase_add_test(tc, test_component_too_small);
    tcase_add_test(tc, test_version_under_memory_limit);
    tcase_add_test(tc, test_blas_under_memory_limit);
    tcase_add_test(tc, test_plugins_reports_broken);
    tcase_add_test(tc, test_module_components_found_by_name);
    tcase_add_test(tc, test_component_search_order);
    tcase_add_test(tc, test_shadowed_plugin_marked);
    tcase_add_test(tc, test_failed_solve_leaves_no_output);
    tcase_add_test(tc, test_unwritable_output);
    tcase_add_test(tc, test_output_symlink);
    tcase_add_test(tc, test_output_fifo);
    tcase_add_test(tc, test_output_char_device);
    tcase_add_test(tc, test_solve_output_is_input);
    tcase_add_test(tc, test_train_output_is_input);
    tcase_add_test(tc, test_train_sde_local);
    tcase_add_test(tc, test_train_general_noise);
    tcase_add_test(tc, test_metrics_is_data);
    tcase_add_test(tc, test_output_is_idx_data);
    tcase_add_test(tc, test_train_unwritable_summary);
    tcase_add_test(tc, test_failure_names_no_unwritten_checkpoint);
    tcase_add_test(tc, test_set_long_value_whole);
    tcase_add_test(tc, test_numbers_read_whole);
    tcase_add_test(tc, test_set_control_characters_refused);
    tcase_add_test(tc, test_config_bom_crlf_long_sections);
    tcase_add_test(tc, test_config_endless_file);
    tcase_add_test(tc, test_tiny_tolerances);
    tcase_add_test(tc, test_integer_options_out_of_range);
    tcase_add_test(tc, test_set_empties_section);
    tcase_add_test(tc, test_unset_key);
    tcase_add_test(tc, test_unset_resume);
    tcase_add_test(tc, test_regularizer_scale_in_metrics);
    tcase_add_test(tc, test_train_annuli_augmented);
    tcase_add_test(tc, test_train_annuli_data_controlled);
    tcase_add_test(tc, test_predict_flow);
    tcase_add_test(tc, test_foreign_data_keys);
    tcase_add_test(tc, test_one_series_split);
    tcase_add_test(tc, test_prediction_keeps_column_names);
    tcase_add_test(tc, test_normalize_original_units);
    tcase_add_test(tc, test_holdout_end);
    tcase_add_test(tc, test_holdout_from);
    tcase_add_test(tc, test_likelihoods);
    tcase_add_test(tc, test_normalize_log);
    tcase_add_test(tc, test_learn_y0);
    tcase_add_test(tc, test_normalize_holdout_errors);
    tcase_add_test(tc, test_on_failure_backoff);
    tcase_add_test(tc, test_ude_zero_last);
    tcase_add_test(tc, test_ude_stiff_adjoints);
    tcase_add_test(tc, test_params);
    tcase_add_test(tc, test_predict_do);
    tcase_add_test(tc, test_annuli_lift_errors);
    tcase_add_test(tc, test_train_cnf_example);
    tcase_add_test(tc, test_cnf_samples_and_density);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cli_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
