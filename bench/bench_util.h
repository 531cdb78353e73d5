/*
 * bench_util.h - what every bench program needs: a monotonic clock, the
 * median of a sample, and (for bench/peers) n raw host-order doubles (a
 * model's initial parameters) written to a file.
 */
#ifndef NDE_BENCH_UTIL_H
#define NDE_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

/* The neural SDE of bench_sde and bench_floor (issue 13's, the peer's
 * torchsde net): 4 states, drift and diffusion nets of one hidden layer of
 * 64, tanh; batch 64, 100 steps of 0.01 in both. */
#define BENCH_SDE_FIELD_INI                                                 \
    "[field]\nplugin = mlp\nlayers = 4, 64, 4\nactivation = tanh\n"       \
    "time = false\ndiffusion = sigmoid\ng_layers = 64\ng_activation = tanh\n"

/* Seconds on the monotonic clock. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* qsort's comparison of doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0, n), n > 0 (v is sorted in place). */
static inline double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Write x[0, n) to path through path.tmp and a rename, so a failed write
 * leaves no half-written file; a path that exists and is not a regular
 * file (a device, a directory) is refused. 0, or 1 with a message. */
static inline int bench_write_doubles(const char *path, const double *x,
                                      size_t n)
{
    char tmp[4096];
    struct stat st;
    FILE *fp;
    int bad;

    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: not a regular file, not written\n", path);
        return 1;
    }
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        fprintf(stderr, "%s: path too long\n", path);
        return 1;
    }
    if (!(fp = fopen(tmp, "wb"))) {
        perror(tmp);
        return 1;
    }
    bad = fwrite(x, sizeof(double), n, fp) != n;
    bad |= fclose(fp) != 0;
    if (!bad && rename(tmp, path) == 0)
        return 0;
    perror(path);
    remove(tmp);
    return 1;
}

#endif
