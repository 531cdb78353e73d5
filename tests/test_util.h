/* Helpers shared by the Check suites. */
#ifndef NDE_TEST_UTIL_H
#define NDE_TEST_UTIL_H

#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The whole file, NUL-terminated, or NULL if it cannot be opened; *len
 * (when len is not NULL) gets its length. Free with free(). */
static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;

    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    if (len)
        *len = (size_t)n;
    return buf;
}

/* ---- a scratch directory per test -------------------------------------- */

/* A fresh directory /tmp/nde_STEM_XXXXXX into dir (size bytes), failing
 * the test when it cannot be made. */
static inline void test_workdir_make(char *dir, size_t size,
                                     const char *stem)
{
    snprintf(dir, size, "/tmp/nde_%s_XXXXXX", stem);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Remove dir and everything in it. */
static inline void test_workdir_remove(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- running the nde program ------------------------------------------ */

typedef struct test_run_result {
    int code;               /* exit status, or 128 + signal               */
    char *out, *err;        /* what it wrote to stdout and stderr         */
} test_run_result;

#define TEST_RUN_MAX_ARGS 48

/* Run $NDE_EXE in dir with the NULL-terminated arguments, capturing its
 * output in dir/.stdout and dir/.stderr; a sanitizer report fails the
 * test. Free the result with test_run_free(). */
static inline test_run_result test_run_nde_v(const char *dir, const char *arg,
                                             va_list ap)
{
    const char *argv[TEST_RUN_MAX_ARGS + 2];
    const char *exe = getenv("NDE_EXE");
    char out_path[4096], err_path[4096];
    test_run_result r;
    pid_t pid;
    int n = 0, status;

    ck_assert_ptr_nonnull(exe);
    snprintf(out_path, sizeof out_path, "%s/.stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/.stderr", dir);
    argv[n++] = "nde";
    for (; arg && n < TEST_RUN_MAX_ARGS; arg = va_arg(ap, const char *))
        argv[n++] = arg;
    argv[n] = NULL;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0 ||
            chdir(dir) != 0)
            _exit(127);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ck_assert_ptr_nonnull(r.out = test_read_file(out_path, NULL));
    ck_assert_ptr_nonnull(r.err = test_read_file(err_path, NULL));
    ck_assert_msg(!strstr(r.err, "Sanitizer") &&
                      !strstr(r.err, "runtime error"),
                  "sanitizer report:\n%s", r.err);
    return r;
}

/* test_run_nde_v with the arguments in the call (NULL-terminated). */
static inline test_run_result test_run_nde(const char *dir, const char *arg,
                                           ...)
{
    test_run_result r;
    va_list ap;
    va_start(ap, arg);
    r = test_run_nde_v(dir, arg, ap);
    va_end(ap);
    return r;
}

#define test_assert_contains(hay, needle)                                    \
    ck_assert_msg(strstr((hay), (needle)) != NULL,                           \
                  "expected \"%s\" in:\n%s", (needle), (hay))

static inline void test_run_free(test_run_result *r)
{
    free(r->out);
    free(r->err);
}

#define test_assert_code(r, want)                                            \
    ck_assert_msg((r).code == (want), "exit code %d, expected %d:\n%s",     \
                  (r).code, (want), (r).err)

/* Cut each line of a metrics file (JSON lines) at its first "time_s", in
 * place: what is left does not depend on wall times. */
static inline void test_strip_times(char *text)
{
    char *src, *dst;

    for (src = dst = text; *src;) {
        char *t = strstr(src, "time_s\":");
        char *eol = strchr(src, '\n');
        size_t keep;
        if (!eol)
            eol = src + strlen(src);
        keep = (size_t)((t && t < eol ? t : eol) - src);
        memmove(dst, src, keep);
        dst += keep;
        *dst++ = '\n';
        src = *eol ? eol + 1 : eol;
    }
    *dst = '\0';
}

#endif
