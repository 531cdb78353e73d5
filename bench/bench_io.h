/*
 * bench_io.h - what the bench programs write for bench/peers: n raw
 * host-order doubles (a model's initial parameters) into a file.
 */
#ifndef NDE_BENCH_IO_H
#define NDE_BENCH_IO_H

#include <stdio.h>
#include <sys/stat.h>

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
