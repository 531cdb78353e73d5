/*
 * Helpers of the libFuzzer targets: the readers under test take paths, so
 * each input is put into a memory file (memfd) and read through its
 * /proc/self/fd path; nothing touches the disk.
 */
#ifndef NDE_FUZZ_UTIL_H
#define NDE_FUZZ_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create; this header comes first in each target */
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct fuzz_file {
    int fd;
    char path[64];
} fuzz_file;

/* A memory file holding data[0..size); abort() when the system refuses
 * (that is the harness's failure, not a finding in nde). */
static inline void fuzz_file_open(fuzz_file *f, const char *name,
                                  const uint8_t *data, size_t size)
{
    size_t done = 0;
    f->fd = memfd_create(name, MFD_CLOEXEC);
    if (f->fd < 0)
        abort();
    while (done < size) {
        ssize_t n = write(f->fd, data + done, size - done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

static inline void fuzz_file_close(fuzz_file *f)
{
    close(f->fd);
}

#endif
