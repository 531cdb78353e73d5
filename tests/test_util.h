/* Helpers shared by the Check suites. */
#ifndef NDE_TEST_UTIL_H
#define NDE_TEST_UTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif
