/*
 * nde/data.h - data sets: time series (trajectory fitting) and labelled
 * examples (classification), read from CSV and IDX files.
 *
 * Readers check everything they read and report bad input with the file,
 * the line (CSV) or byte offset (IDX) and what was expected; they never
 * crash on a short, truncated or malformed file.
 *
 * Statuses: NDE_EIO when the bytes cannot be had (cannot open or read, a
 * file that ends early, a corrupt gzip stream, an IDX header that declares
 * more than the file can hold); NDE_ECONFIG when they were read but are
 * wrong (a malformed cell, wrong magic, counts that disagree, data after
 * the declared end); NDE_ENOMEM; NDE_EINVAL for NULL arguments or a
 * test_fraction outside [0, 1). On error *out (*train, *test) is NULL.
 */
#ifndef NDE_DATA_H
#define NDE_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <nde/api.h>
#include <nde/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nde_data_kind {
    NDE_DATA_SERIES = 1, /* time series: fit a trajectory              */
    NDE_DATA_CLASSES     /* labelled examples: classify              */
} nde_data_kind;

/* One time series: npoints observations at increasing times. A missing
 * value (an empty CSV cell) is NAN and is skipped by the loss. */
typedef struct nde_series {
    char *id;           /* the series id as written in the file         */
    size_t npoints;
    double *t;          /* npoints, strictly increasing                 */
    double *y;          /* npoints x dim                                */
} nde_series;

typedef struct nde_dataset {
    nde_data_kind kind;
    /* NDE_DATA_SERIES */
    size_t dim;         /* observed components per point                */
    char **names;       /* dim column names (NULL-terminated)           */
    size_t nseries;
    nde_series *series;
    /* NDE_DATA_CLASSES */
    size_t nexamples, nfeatures, nclasses;
    double *x;          /* nexamples x nfeatures, pixels scaled to [0, 1] */
    int *label;         /* nexamples, each in [0, nclasses)             */
} nde_dataset;

/*
 * CSV time series: a header line, then rows `series_id, t, y1, ..., yD`.
 * Rows of one series are contiguous with increasing t; an empty cell is a
 * missing value (at least one value per row). Errors name file:line and the
 * column.
 * Cells are split at every comma (no quoting) and trimmed of spaces and
 * tabs; CRLF line ends, a last line without newline and lines of any
 * length are accepted. Blank lines and lines whose first non-blank
 * character is '#' are skipped (so an id cannot start with '#'). Only an
 * empty cell is missing: "NaN", "inf" and numbers out of double range
 * (above the largest or, nonzero, below the smallest subnormal) are
 * refused, and t is never missing. A first line whose t column is a
 * number is refused as a missing header. A series' rows that resume after
 * another series are refused (file:line of the resumption).
 */
NDE_API int nde_data_read_csv(const char *path, nde_dataset **out,
                              nde_ctx *ctx);

/*
 * MNIST-format IDX image and label files (gzip-compressed or not, detected
 * by content): images of magic 0x00000803, labels of magic 0x00000801, the
 * same count. At most `limit` examples are read (0 = all). nclasses is
 * 1 + the largest label. Errors: wrong magic, count mismatch, a short or
 * truncated file (with the byte offset), a label out of range.
 * Labels are bytes, so any label is in range. Reading everything (limit 0
 * or >= the count) also refuses data after the declared items, checks the
 * gzip CRC and that the file ends where a gzip member ends (members
 * concatenated as by `cat a.gz b.gz` are one stream; anything else after
 * one is refused); with a smaller limit only the header and the first
 * `limit` items are read. Memory grows with the data actually read, never with
 * the header's count alone.
 */
NDE_API int nde_data_read_idx(const char *images, const char *labels,
                              size_t limit, nde_dataset **out, nde_ctx *ctx);

/* Split into train and test parts: whole series (SERIES) or examples
 * (CLASSES), a fraction test_fraction in [0, 1) going to the test part,
 * chosen by a permutation drawn from seed.
 * The test part has round(test_fraction * n) items, raised to 1 and
 * lowered to n - 1 when test_fraction > 0 (both parts non-empty); that
 * needs n >= 2 (else NDE_ECONFIG). test_fraction 0 gives an empty test
 * part. The permutation: gsl_rng_mt19937 seeded with the low 32 bits of
 * seed ^ (seed >> 32) (GSL maps 0 to 4357), gsl_ran_shuffle of 0..n-1;
 * its first items go to test. Both parts keep the file order and are deep
 * copies (each destroyed on its own); a CLASSES part keeps d's nclasses. */
NDE_API int nde_data_split(const nde_dataset *d, double test_fraction,
                           uint64_t seed, nde_dataset **train,
                           nde_dataset **test, nde_ctx *ctx);

NDE_API void nde_dataset_destroy(nde_dataset *d);

#ifdef __cplusplus
}
#endif
#endif
