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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
    ck_assert_ptr_null(strstr(r.out, "\n  mlp - "));
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

START_TEST(test_plugins_reports_broken)
{
    const char *dir = env_or_fail("NDE_BAD_PLUGIN_DIR");
    run_result r = run_env(dir, "plugins", (const char *)NULL);
    assert_ok(r);
    assert_contains(r.out, "\n  tsit5 - ");
    assert_contains(r.err, "noentry.so");
    assert_contains(r.err, "badabi.so");
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
    assert_fails(r, 1, "no-such-dir/out.csv");
    result_free(&r);
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
    tcase_add_test(tc, test_examples_run);
    tcase_add_test(tc, test_mlp_seed);
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
    tcase_add_test(tc, test_plugins_reports_broken);
    tcase_add_test(tc, test_failed_solve_leaves_no_output);
    tcase_add_test(tc, test_unwritable_output);
    tcase_add_test(tc, test_set_long_value_whole);
    tcase_add_test(tc, test_numbers_read_whole);
    tcase_add_test(tc, test_set_control_characters_refused);
    tcase_add_test(tc, test_config_bom_crlf_long_sections);
    tcase_add_test(tc, test_config_endless_file);
    tcase_add_test(tc, test_tiny_tolerances);
    tcase_add_test(tc, test_integer_options_out_of_range);
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
