/*
 * nde/data.h - data sets: time series (trajectory fitting) and labelled
 * examples (classification), read from CSV and IDX files.
 *
 * Readers check everything they read and report bad input with the file,
 * the line (CSV) or byte offset (IDX) and what was expected; they never
 * crash on a short, truncated or malformed file.
 */
#ifndef NDE_DATA_H
#define NDE_DATA_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

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
 */
int nde_data_read_csv(const char *path, nde_dataset **out, nde_ctx *ctx);

/*
 * MNIST-format IDX image and label files (gzip-compressed or not, detected
 * by content): images of magic 0x00000803, labels of magic 0x00000801, the
 * same count. At most `limit` examples are read (0 = all). nclasses is
 * 1 + the largest label. Errors: wrong magic, count mismatch, a short or
 * truncated file (with the byte offset), a label out of range.
 */
int nde_data_read_idx(const char *images, const char *labels, size_t limit,
                      nde_dataset **out, nde_ctx *ctx);

/* Split into train and test parts: whole series (SERIES) or examples
 * (CLASSES), a fraction test_fraction in [0, 1) going to the test part,
 * chosen by a permutation drawn from seed. */
int nde_data_split(const nde_dataset *d, double test_fraction, uint64_t seed,
                   nde_dataset **train, nde_dataset **test, nde_ctx *ctx);

void nde_dataset_destroy(nde_dataset *d);

#ifdef __cplusplus
}
#endif
#endif
