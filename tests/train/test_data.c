/*
 * Data readers and split: CSV time series, IDX images/labels (plain and
 * gzip), every bad-input case with its status and message, truncation at
 * every byte, split sizes and determinism.
 *
 * `test_data --fashion-mnist` instead reads Debian's dataset-fashion-mnist
 * files and exits 77 (skipped) when they are not installed.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include <nde/nde.h>
#include <nde/data.h>

static nde_ctx *ctx;
static char tmpdir[] = "/tmp/nde_test_data_XXXXXX";
static char path_buf[4][512];

static void setup(void) { ctx = nde_ctx_create(); }
static void teardown(void) { nde_ctx_destroy(ctx); }

/* A path in the temporary directory; slot picks one of four buffers. */
static const char *tmp_path(int slot, const char *name)
{
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", tmpdir, name);
    return path_buf[slot];
}

static const char *write_file(int slot, const char *name, const void *data,
                              size_t n)
{
    const char *p = tmp_path(slot, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
    return p;
}

static const char *write_text(int slot, const char *name, const char *text)
{
    return write_file(slot, name, text, strlen(text));
}

static const char *write_gzip(int slot, const char *name, const void *data,
                              size_t n)
{
    const char *p = tmp_path(slot, name);
    gzFile g = gzopen(p, "wb");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, data, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(g), Z_OK);
    return p;
}

static unsigned char *read_whole(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    unsigned char *b;
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    b = malloc(*n ? *n : 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* The call failed with `status`, left no data set, and its message holds
 * every one of the NULL-terminated substrings. */
static void check_error(int got, nde_dataset *d, int status, ...)
{
    va_list ap;
    const char *want;
    const char *msg = nde_ctx_message(ctx);
    ck_assert_msg(got == status, "status %s, expected %s; message: %s",
                  nde_status_name(got), nde_status_name(status), msg);
    ck_assert_ptr_null(d);
    va_start(ap, status);
    while ((want = va_arg(ap, const char *)))
        ck_assert_msg(strstr(msg, want), "message '%s' lacks '%s'", msg, want);
    va_end(ap);
}

/* ------------------------------------------------------------------ CSV */

START_TEST(csv_reads_every_value)
{
    /* Spaces, CRLF, comments, blank lines, missing cells, no final newline. */
    const char *text =
        "# generated for the test\r\n"
        " id , t ,  x ,y\r\n"
        "a, 0, 1.5, -2\r\n"
        "\r\n"
        "a, 0.5, , 3e-1\r\n"
        "   # a comment between rows\n"
        "a,1.25,4,\n"
        "b , -1 , 7 , 8\n"
        "b,2,9,10";
    const char *p = write_text(0, "ok.csv", text);
    nde_dataset *d = NULL;
    ck_assert_int_eq(nde_data_read_csv(p, &d, ctx), NDE_OK);
    ck_assert_int_eq(d->kind, NDE_DATA_SERIES);
    ck_assert_uint_eq(d->dim, 2);
    ck_assert_str_eq(d->names[0], "x");
    ck_assert_str_eq(d->names[1], "y");
    ck_assert_ptr_null(d->names[2]);
    ck_assert_uint_eq(d->nseries, 2);
    ck_assert_str_eq(d->series[0].id, "a");
    ck_assert_str_eq(d->series[1].id, "b");
    ck_assert_uint_eq(d->series[0].npoints, 3);
    ck_assert_uint_eq(d->series[1].npoints, 2);
    const double ta[] = {0, 0.5, 1.25}, tb[] = {-1, 2};
    const double ya[] = {1.5, -2, NAN, 0.3, 4, NAN}, yb[] = {7, 8, 9, 10};
    for (size_t i = 0; i < 3; i++)
        ck_assert_double_eq(d->series[0].t[i], ta[i]);
    for (size_t i = 0; i < 2; i++)
        ck_assert_double_eq(d->series[1].t[i], tb[i]);
    for (size_t i = 0; i < 6; i++)
        if (isnan(ya[i]))
            ck_assert(isnan(d->series[0].y[i]));
        else
            ck_assert_double_eq(d->series[0].y[i], ya[i]);
    for (size_t i = 0; i < 4; i++)
        ck_assert_double_eq(d->series[1].y[i], yb[i]);
    ck_assert_uint_eq(d->nexamples, 0);
    ck_assert_ptr_null(d->x);
    nde_dataset_destroy(d);
}
END_TEST

START_TEST(csv_long_lines)
{
    /* 20000 states: lines of ~150 KB, no fixed buffer. */
    const size_t dim = 20000;
    size_t cap = dim * 24 + 64, n = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    n += (size_t)sprintf(text + n, "series,time");
    for (size_t j = 0; j < dim; j++)
        n += (size_t)sprintf(text + n, ",state_%zu", j);
    n += (size_t)sprintf(text + n, "\nlong,3.5");
    for (size_t j = 0; j < dim; j++)
        n += (size_t)sprintf(text + n, ",%zu", j * 3);
    ck_assert_uint_lt(n, cap);
    const char *p = write_text(0, "long.csv", text);
    free(text);
    nde_dataset *d = NULL;
    ck_assert_int_eq(nde_data_read_csv(p, &d, ctx), NDE_OK);
    ck_assert_uint_eq(d->dim, dim);
    ck_assert_str_eq(d->names[dim - 1], "state_19999");
    ck_assert_uint_eq(d->series[0].npoints, 1);
    for (size_t j = 0; j < dim; j++)
        ck_assert_double_eq(d->series[0].y[j], (double)(j * 3));
    nde_dataset_destroy(d);
}
END_TEST

typedef struct csv_case {
    const char *name, *text;
    int status;
    const char *expect[3]; /* substrings besides the file name */
} csv_case;

static const csv_case csv_cases[] = {
    {"empty", "", NDE_ECONFIG, {"empty file", NULL}},
    {"comments_only", "# nothing\n\n  \n", NDE_ECONFIG, {"empty file", NULL}},
    {"header_only", "id,t,x\n", NDE_ECONFIG, {"no data rows", "line 1"}},
    {"short_header", "id,t\na,0\n", NDE_ECONFIG,
     {":1:", "at least 3", NULL}},
    {"no_header", "a,0,1\na,1,2\n", NDE_ECONFIG,
     {":1:", "looks like data", NULL}},
    {"empty_name", "id,t,x,,z\n", NDE_ECONFIG,
     {":1:", "column 4 has an empty name", NULL}},
    {"bad_value", "id,t,x,y\na,0,1,2\na,1,2,abc\n", NDE_ECONFIG,
     {":3:", "column 4 (y)", "'abc'"}},
    {"bad_value_suffix", "id,t,x,y\na,0,1.5kg,2\n", NDE_ECONFIG,
     {":2:", "column 3 (x)", "'1.5kg'"}},
    {"nan_value", "id,t,x\na,0,NaN\n", NDE_ECONFIG,
     {":2:", "column 3 (x)", "missing value"}},
    {"overflow_value", "id,t,x\na,0,1e999\n", NDE_ECONFIG,
     {":2:", "column 3 (x)", "'1e999'"}},
    /* read as 0 before */
    {"underflow_value", "id,t,x\na,0,1e-400\n", NDE_ECONFIG,
     {":2:", "column 3 (x)", "'1e-400' is not a finite number in double range"}},
    {"underflow_time", "id,t,x\na,-1e-999,1\n", NDE_ECONFIG,
     {":2:", "column 2 (t)", "'-1e-999'"}},
    {"bad_time", "id,t,x\na,zero,1\n", NDE_ECONFIG,
     {":2:", "column 2 (t)", "'zero'"}},
    {"missing_time", "id,t,x\na,,1\n", NDE_ECONFIG,
     {":2:", "column 2 (t)", "cannot be missing"}},
    {"few_cells", "id,t,x,y\na,0,1,2\na,1,2\n", NDE_ECONFIG,
     {":3:", "3 cells, expected 4", NULL}},
    {"many_cells", "id,t,x\n# c\na,0,1,2\n", NDE_ECONFIG,
     {":3:", "4 cells, expected 3", NULL}},
    {"all_missing", "id,t,x,y\na,0,1,\na,1, ,\n", NDE_ECONFIG,
     {":3:", "no observed value", NULL}},
    {"empty_id", "id,t,x\n ,0,1\n", NDE_ECONFIG,
     {":2:", "empty series id", NULL}},
    {"equal_time", "id,t,x\na,0,1\na,1,2\na,1,3\n", NDE_ECONFIG,
     {":4:", "does not increase", "series 'a'"}},
    {"decreasing_time", "id,t,x\na,0,1\na,-1,2\n", NDE_ECONFIG,
     {":3:", "does not increase", NULL}},
    {"not_contiguous", "id,t,x\na,0,1\nb,0,1\nb,1,1\na,2,1\nc,0,1\n",
     NDE_ECONFIG, {":5:", "series 'a' are not contiguous", "line 2"}},
    {"nul_byte", "id,t,x\na,0,1\0\n", NDE_ECONFIG, {":2:", "NUL", NULL}},
};

START_TEST(csv_bad_input)
{
    const csv_case *c = &csv_cases[_i];
    char name[64];
    size_t n = strlen(c->text);
    if (strcmp(c->name, "nul_byte") == 0)
        n = strlen(c->text) + 2; /* the NUL and the newline after it */
    snprintf(name, sizeof name, "%s.csv", c->name);
    const char *p = write_file(0, name, c->text, n);
    nde_dataset *d = NULL;
    int status = nde_data_read_csv(p, &d, ctx);
    check_error(status, d, c->status, p, c->expect[0], c->expect[1],
                c->expect[2], (const char *)NULL);
}
END_TEST

START_TEST(csv_unreadable)
{
    nde_dataset *d = NULL;
    const char *missing = tmp_path(0, "does_not_exist.csv");
    check_error(nde_data_read_csv(missing, &d, ctx), d, NDE_EIO, missing,
                "cannot open", "No such file", NULL);
    check_error(nde_data_read_csv(tmpdir, &d, ctx), d, NDE_EIO, tmpdir,
                "read error", NULL);
    check_error(nde_data_read_csv(NULL, &d, ctx), d, NDE_EINVAL, "NULL",
                NULL);
}
END_TEST

/* ------------------------------------------------------------------ IDX */

enum { NIMG = 7, ROWS = 3, COLS = 2, NPIX = ROWS * COLS };

static size_t put32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
    return 4;
}

static unsigned char pixel(size_t i, size_t j)
{
    return (unsigned char)((i * 37 + j * 101 + 5) % 256);
}

static const unsigned char labels7[NIMG] = {3, 0, 5, 5, 1, 0, 2};

/* An images file of n images of ROWS x COLS; returns its size. */
static size_t make_images(unsigned char *b, uint32_t magic, uint32_t n)
{
    size_t k = put32(b, magic);
    k += put32(b + k, n);
    k += put32(b + k, ROWS);
    k += put32(b + k, COLS);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < NPIX; j++)
            b[k++] = pixel(i, j);
    return k;
}

static size_t make_labels(unsigned char *b, uint32_t magic, uint32_t n)
{
    size_t k = put32(b, magic);
    k += put32(b + k, n);
    for (size_t i = 0; i < n; i++)
        b[k++] = labels7[i % NIMG];
    return k;
}

static void check_idx_values(const nde_dataset *d, size_t n)
{
    ck_assert_int_eq(d->kind, NDE_DATA_CLASSES);
    ck_assert_uint_eq(d->nexamples, n);
    ck_assert_uint_eq(d->nfeatures, NPIX);
    int max = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < NPIX; j++)
            ck_assert_double_eq(d->x[i * NPIX + j], pixel(i, j) / 255.0);
        ck_assert_int_eq(d->label[i], labels7[i]);
        if (labels7[i] > max)
            max = labels7[i];
    }
    ck_assert_uint_eq(d->nclasses, (size_t)max + 1);
    ck_assert_uint_eq(d->nseries, 0);
}

START_TEST(idx_reads_every_value)
{
    unsigned char img[16 + NIMG * NPIX], lab[8 + NIMG];
    size_t ni = make_images(img, 0x803, NIMG), nl = make_labels(lab, 0x801, NIMG);
    const char *ip = write_file(0, "img", img, ni);
    const char *lp = write_file(1, "lab", lab, nl);
    const char *gip = write_gzip(2, "img.gz", img, ni);
    const char *glp = write_gzip(3, "lab.gz", lab, nl);
    const char *pairs[4][2] = {{ip, lp}, {gip, glp}, {gip, lp}, {ip, glp}};
    for (int k = 0; k < 4; k++) {
        nde_dataset *d = NULL;
        ck_assert_int_eq(nde_data_read_idx(pairs[k][0], pairs[k][1], 0, &d,
                                           ctx), NDE_OK);
        check_idx_values(d, NIMG);
        nde_dataset_destroy(d);
    }
    /* limit: fewer, or all when larger than the count. */
    const size_t limits[] = {1, 3, NIMG, 100};
    for (int k = 0; k < 4; k++) {
        nde_dataset *d = NULL;
        ck_assert_int_eq(nde_data_read_idx(gip, glp, limits[k], &d, ctx),
                         NDE_OK);
        check_idx_values(d, limits[k] < NIMG ? limits[k] : NIMG);
        nde_dataset_destroy(d);
    }
    /* The gzip file really is compressed (magic 1f 8b). */
    size_t n;
    unsigned char *g = read_whole(gip, &n);
    ck_assert(g[0] == 0x1f && g[1] == 0x8b);
    free(g);
}
END_TEST

START_TEST(idx_bad_headers)
{
    unsigned char img[16 + NIMG * NPIX], lab[8 + NIMG], buf[64];
    size_t ni = make_images(img, 0x803, NIMG), nl = make_labels(lab, 0x801, NIMG);
    const char *ip = write_file(0, "img", img, ni);
    const char *lp = write_file(1, "lab", lab, nl);
    nde_dataset *d = NULL;
    const char *p;

    /* Labels given as images and the other way round. */
    check_error(nde_data_read_idx(lp, ip, 0, &d, ctx), d, NDE_ECONFIG, lp,
                "byte offset 0", "magic number 0x00000801", "expected "
                "0x00000803", "labels file", NULL);
    check_error(nde_data_read_idx(ip, ip, 0, &d, ctx), d, NDE_ECONFIG, ip,
                "byte offset 0", "0x00000803, expected 0x00000801",
                "images file", NULL);
    p = write_text(2, "text.idx", "hello, this is not an idx file\n");
    check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_ECONFIG, p,
                "magic number 0x68656c6c", NULL);
    /* Counts that disagree. */
    nl = make_labels(buf, 0x801, 5);
    p = write_file(2, "lab5", buf, nl);
    check_error(nde_data_read_idx(ip, p, 0, &d, ctx), d, NDE_ECONFIG, p,
                "5 labels", "has 7 images", NULL);
    /* Zero dimensions. */
    size_t k = make_images(buf, 0x803, 0);
    p = write_file(2, "img0", buf, k);
    check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_ECONFIG, p,
                "byte offset 4", "declares 0 images", NULL);
    memcpy(buf, img, 16);
    put32(buf + 12, 0);
    p = write_file(2, "cols0", buf, 16);
    check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_ECONFIG, p,
                "byte offset 12", "3 x 0", NULL);
    /* A header declaring 2^96 bytes, plain and gzip: refused before any
     * allocation. */
    memcpy(buf, img, 16);
    put32(buf + 4, 0xffffffffu);
    put32(buf + 8, 0xffffffffu);
    put32(buf + 12, 0xffffffffu);
    p = write_file(2, "huge", buf, 40);
    check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_EIO, p,
                "byte offset 4", "4294967295 images of 4294967295 x "
                "4294967295", "more than the file of 40 bytes", NULL);
    p = write_gzip(2, "huge.gz", buf, 40);
    check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_EIO, p,
                "byte offset 4", "more than a gzip file", NULL);
    /* Trailing bytes after the declared data. */
    memcpy(buf, img, ni);
    buf[ni] = 0;
    p = write_file(2, "trailing", buf, ni + 1);
    check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_ECONFIG, p,
                "byte offset 58", "unexpected data", NULL);
    /* Also when only the first images are read (plain files: the size is
     * checked against the header up front). */
    check_error(nde_data_read_idx(p, lp, 3, &d, ctx), d, NDE_ECONFIG, p,
                "byte offset 58", "unexpected data", NULL);
    p = write_gzip(2, "trailing.gz", buf, ni + 1);
    check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_ECONFIG, p,
                "byte offset 58 (uncompressed)", "unexpected data", NULL);
    /* Unreadable. */
    p = tmp_path(2, "missing");
    check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_EIO, p,
                "cannot open", NULL);
    check_error(nde_data_read_idx(ip, tmpdir, 0, &d, ctx), d, NDE_EIO, tmpdir,
                "not a regular file", NULL);
    check_error(nde_data_read_idx(ip, NULL, 0, &d, ctx), d, NDE_EINVAL,
                "NULL", NULL);
}
END_TEST

/*
 * A gzip file of 1 MiB of incompressible bytes whose header declares 1000
 * images of 1000 x 1000 (1e9 bytes: within what 1 MiB of deflate data can
 * expand to, so not refused up front). The reader must fail at the end of
 * the data without having allocated for the declared count (8 GB of
 * doubles): outside AddressSanitizer the address space is capped at 1 GiB
 * above its current size, so such an allocation would fail with ENOMEM.
 */
START_TEST(idx_overstated_count)
{
    const size_t nrand = 1u << 20;
    unsigned char *b = malloc(16 + nrand), lab[8 + NIMG];
    uint32_t state = 12345;
    ck_assert_ptr_nonnull(b);
    put32(b, 0x803);
    put32(b + 4, 1000);
    put32(b + 8, 1000);
    put32(b + 12, 1000);
    for (size_t i = 0; i < nrand; i++) {
        state = state * 1664525u + 1013904223u;
        b[16 + i] = (unsigned char)(state >> 24);
    }
    const char *p = write_gzip(0, "overstated.gz", b, 16 + nrand);
    free(b);
    size_t nl = make_labels(lab, 0x801, NIMG);
    lab[4] = lab[5] = lab[6] = 0;
    put32(lab + 4, 1000);
    const char *lp = write_gzip(1, "lab.gz", lab, nl);
#ifndef __SANITIZE_ADDRESS__
    struct rlimit old, cap;
    unsigned long pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(statm);
    ck_assert_int_eq(fscanf(statm, "%lu", &pages), 1);
    fclose(statm);
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    cap = old;
    cap.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (1ul << 30);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &cap), 0);
#endif
    nde_dataset *d = NULL;
    int status = nde_data_read_idx(p, lp, 0, &d, ctx);
#ifndef __SANITIZE_ADDRESS__
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
#endif
    check_error(status, d, NDE_EIO, p, "truncated",
                "ends at byte offset 1048592 (uncompressed)",
                "in image 1 of 1000", NULL);
}
END_TEST

START_TEST(idx_corrupt_gzip)
{
    unsigned char img[16 + NIMG * NPIX], lab[8 + NIMG];
    size_t ni = make_images(img, 0x803, NIMG), nl = make_labels(lab, 0x801, NIMG);
    const char *lp = write_file(1, "lab", lab, nl);
    const char *gp = write_gzip(0, "img.gz", img, ni);
    size_t n;
    unsigned char *g = read_whole(gp, &n);
    nde_dataset *d = NULL;
    const char *p;

    /* A wrong CRC in the trailer (zlib reads ahead, so it is found at the
     * first read of this small file). */
    g[n - 8] ^= 0xff;
    p = write_file(2, "badcrc.gz", g, n);
    check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_EIO, p,
                "corrupt gzip", "byte offset", "incorrect data check", NULL);
    g[n - 8] ^= 0xff;
    /* An unknown compression method in the gzip header. */
    g[2] = 7;
    p = write_file(2, "badmethod.gz", g, n);
    check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_EIO, p,
                "corrupt gzip", "byte offset 0", NULL);
    g[2] = 8;
    /* Garbage instead of the deflate data: an error, never a crash. */
    for (size_t i = 10; i < n - 8; i++)
        g[i] = (unsigned char)(i * 151 + 17);
    p = write_file(2, "garbage.gz", g, n);
    int status = nde_data_read_idx(p, lp, 0, &d, ctx);
    ck_assert_msg(status == NDE_EIO || status == NDE_ECONFIG,
                  "status %s: %s", nde_status_name(status),
                  nde_ctx_message(ctx));
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), p));
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "byte offset"));
    free(g);
}
END_TEST

/* After the last gzip member only another member may follow: junk after
 * the stream was ignored (zlib's gzread skips it). Members concatenated
 * as `cat a.gz b.gz` are read as one stream, as gzip -d reads them. */
START_TEST(idx_gzip_trailing_data)
{
    unsigned char img[16 + NIMG * NPIX], lab[8 + NIMG], *g, *h, *buf;
    size_t ni = make_images(img, 0x803, NIMG), nl = make_labels(lab, 0x801, NIMG);
    const char *lp = write_file(1, "lab", lab, nl), *p;
    size_t n, m;
    nde_dataset *d = NULL;
    static const char *const junk[] = {"junk", "\x1f", "\x1f\x8b", "\0\0\0\0"};
    static const size_t njunk[] = {4, 1, 2, 4};

    g = read_whole(write_gzip(2, "a.gz", img, 20), &n);
    h = read_whole(write_gzip(2, "b.gz", img + 20, ni - 20), &m);
    ck_assert_ptr_nonnull(buf = malloc(n + m + 8));
    memcpy(buf, g, n);
    memcpy(buf + n, h, m);
    p = write_file(2, "cat.gz", buf, n + m);
    ck_assert_int_eq(nde_data_read_idx(p, lp, 0, &d, ctx), NDE_OK);
    check_idx_values(d, NIMG);
    nde_dataset_destroy(d);
    d = NULL;
    for (size_t k = 0; k < sizeof junk / sizeof *junk; k++) {
        memcpy(buf + n + m, junk[k], njunk[k]);
        p = write_file(2, "junk.gz", buf, n + m + njunk[k]);
        int status = nde_data_read_idx(p, lp, 0, &d, ctx);
        ck_assert_msg(status == NDE_ECONFIG || status == NDE_EIO,
                      "junk %zu: status %s: %s", k, nde_status_name(status),
                      nde_ctx_message(ctx));
        ck_assert_ptr_null(d);
        ck_assert_msg(strstr(nde_ctx_message(ctx), p) &&
                          strstr(nde_ctx_message(ctx), "byte offset"),
                      "junk %zu: %s", k, nde_ctx_message(ctx));
    }
    /* "junk" is no gzip member: named as such, at its compressed offset */
    memcpy(buf + n + m, "junk", 4);
    p = write_file(2, "junk.gz", buf, n + m + 4);
    check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_ECONFIG, p,
                "data after the end of the gzip stream", NULL);
    {
        char at[48];
        snprintf(at, sizeof at, "byte offset %zu:", n + m);
        check_error(nde_data_read_idx(p, lp, 0, &d, ctx), d, NDE_ECONFIG, at,
                    NULL);
    }
    free(g);
    free(h);
    free(buf);
}
END_TEST

/* Every proper prefix of a valid file is refused with the file name and a
 * byte offset, plain and gzip, images and labels. */
START_TEST(idx_truncated_everywhere)
{
    unsigned char img[16 + NIMG * NPIX], lab[8 + NIMG];
    size_t ni = make_images(img, 0x803, NIMG), nl = make_labels(lab, 0x801, NIMG);
    const char *ip = write_file(0, "img", img, ni);
    const char *lp = write_file(1, "lab", lab, nl);
    const char *gip = write_gzip(2, "img.gz", img, ni);
    size_t ngi, ngl;
    unsigned char *gi = read_whole(gip, &ngi);
    const char *glp = write_gzip(2, "lab.gz", lab, nl);
    unsigned char *gl = read_whole(glp, &ngl);
    struct {
        const unsigned char *data;
        size_t n;
        int is_images;
    } files[] = {{img, ni, 1}, {lab, nl, 0}, {gi, ngi, 1}, {gl, ngl, 0}};
    size_t tried = 0;
    for (size_t f = 0; f < 4; f++)
        for (size_t len = 0; len < files[f].n; len++) {
            const char *p = write_file(3, "cut", files[f].data, len);
            nde_dataset *d = NULL;
            int status = files[f].is_images
                             ? nde_data_read_idx(p, lp, 0, &d, ctx)
                             : nde_data_read_idx(ip, p, 0, &d, ctx);
            const char *msg = nde_ctx_message(ctx);
            ck_assert_msg(status == NDE_EIO || status == NDE_ECONFIG,
                          "file %zu cut at %zu: status %s (%s)", f, len,
                          nde_status_name(status), msg);
            ck_assert_ptr_null(d);
            ck_assert_msg(strstr(msg, p) && strstr(msg, "byte offset"),
                          "file %zu cut at %zu: %s", f, len, msg);
            tried++;
        }
    ck_assert_uint_eq(tried, ni + nl + ngi + ngl);
    free(gi);
    free(gl);
}
END_TEST

/* ---------------------------------------------------------------- split */

static nde_dataset *series_set(size_t nseries)
{
    char name[64];
    size_t cap = 64 + nseries * 3 * 40, n = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    n += (size_t)sprintf(text, "id,t,u,v\n");
    for (size_t s = 0; s < nseries; s++)
        for (size_t k = 0; k < 3; k++)
            n += (size_t)sprintf(text + n, "s%zu,%zu,%zu,%g\n", s, k,
                                 100 * s + k, (double)s - 0.5 * (double)k);
    snprintf(name, sizeof name, "series%zu.csv", nseries);
    const char *p = write_text(0, name, text);
    free(text);
    nde_dataset *d = NULL;
    ck_assert_int_eq(nde_data_read_csv(p, &d, ctx), NDE_OK);
    ck_assert_uint_eq(d->nseries, nseries);
    return d;
}

static size_t series_index(const char *id) { return strtoul(id + 1, 0, 10); }

/* The parts partition the series in their original order and hold deep
 * copies of the right values; returns the test part's indices as a bit set. */
static uint64_t check_series_parts(const nde_dataset *d, const nde_dataset *tr,
                                   const nde_dataset *te)
{
    uint64_t in_test = 0, seen = 0;
    const nde_dataset *parts[2] = {tr, te};
    ck_assert_uint_eq(tr->nseries + te->nseries, d->nseries);
    for (int k = 0; k < 2; k++) {
        const nde_dataset *p = parts[k];
        ck_assert_int_eq(p->kind, NDE_DATA_SERIES);
        ck_assert_uint_eq(p->dim, 2);
        ck_assert_str_eq(p->names[0], "u");
        ck_assert_str_eq(p->names[1], "v");
        ck_assert_ptr_null(p->names[2]);
        for (size_t i = 0; i < p->nseries; i++) {
            size_t s = series_index(p->series[i].id);
            if (i > 0)
                ck_assert_uint_gt(s, series_index(p->series[i - 1].id));
            ck_assert(!(seen >> s & 1));
            seen |= (uint64_t)1 << s;
            if (k == 1)
                in_test |= (uint64_t)1 << s;
            ck_assert_uint_eq(p->series[i].npoints, 3);
            ck_assert_ptr_ne(p->series[i].t, d->series[s].t);
            for (size_t j = 0; j < 3; j++) {
                ck_assert_double_eq(p->series[i].t[j], (double)j);
                ck_assert_double_eq(p->series[i].y[2 * j], 100.0 * s + j);
                ck_assert_double_eq(p->series[i].y[2 * j + 1],
                                    (double)s - 0.5 * j);
            }
        }
    }
    return in_test;
}

START_TEST(split_series)
{
    nde_dataset *d = series_set(10), *tr, *te, *tr2, *te2;
    ck_assert_int_eq(nde_data_split(d, 0.3, 42, &tr, &te, ctx), NDE_OK);
    ck_assert_uint_eq(te->nseries, 3);
    ck_assert_uint_eq(tr->nseries, 7);
    uint64_t a = check_series_parts(d, tr, te);
    /* The documented permutation: mt19937 seeded 42, gsl_ran_shuffle of
     * 0..9, the first three go to the test part. */
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    size_t perm[10];
    gsl_rng_set(r, 42);
    for (size_t i = 0; i < 10; i++)
        perm[i] = i;
    gsl_ran_shuffle(r, perm, 10, sizeof *perm);
    gsl_rng_free(r);
    uint64_t expect = 0;
    for (size_t i = 0; i < 3; i++)
        expect |= (uint64_t)1 << perm[i];
    ck_assert_uint_eq(a, expect);
    /* Same seed, same split; some other seed, another split. */
    ck_assert_int_eq(nde_data_split(d, 0.3, 42, &tr2, &te2, ctx), NDE_OK);
    ck_assert_uint_eq(check_series_parts(d, tr2, te2), a);
    nde_dataset_destroy(tr2);
    nde_dataset_destroy(te2);
    int differs = 0;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        ck_assert_int_eq(nde_data_split(d, 0.3, seed, &tr2, &te2, ctx), NDE_OK);
        differs |= check_series_parts(d, tr2, te2) != a;
        nde_dataset_destroy(tr2);
        nde_dataset_destroy(te2);
    }
    ck_assert(differs);
    /* Seeds above 2^32 still matter. */
    ck_assert_int_eq(nde_data_split(d, 0.3, 42 + (1ull << 40), &tr2, &te2,
                                    ctx), NDE_OK);
    ck_assert_uint_ne(check_series_parts(d, tr2, te2), a);
    nde_dataset_destroy(tr2);
    nde_dataset_destroy(te2);
    /* Deep copies: the parts outlive the original. */
    nde_dataset_destroy(d);
    ck_assert_double_eq(te->series[0].y[0],
                        100.0 * series_index(te->series[0].id));
    nde_dataset_destroy(tr);
    nde_dataset_destroy(te);
}
END_TEST

START_TEST(split_sizes)
{
    nde_dataset *d = series_set(10), *one = series_set(1), *tr, *te;
    /* fraction -> test size: round, then at least one in each part. */
    const double f[] = {0, 0.01, 0.04, 0.05, 0.25, 0.5, 0.94, 0.96, 0.999};
    const size_t want[] = {0, 1, 1, 1, 3, 5, 9, 9, 9};
    for (size_t k = 0; k < sizeof f / sizeof *f; k++) {
        ck_assert_int_eq(nde_data_split(d, f[k], 7, &tr, &te, ctx), NDE_OK);
        ck_assert_msg(te->nseries == want[k], "fraction %g: %zu test series",
                      f[k], te->nseries);
        check_series_parts(d, tr, te);
        nde_dataset_destroy(tr);
        nde_dataset_destroy(te);
    }
    /* One series: all of it for training at fraction 0, an error else. */
    ck_assert_int_eq(nde_data_split(one, 0, 7, &tr, &te, ctx), NDE_OK);
    ck_assert_uint_eq(tr->nseries, 1);
    ck_assert_uint_eq(te->nseries, 0);
    ck_assert_ptr_null(te->series);
    nde_dataset_destroy(tr);
    nde_dataset_destroy(te);
    ck_assert_int_eq(nde_data_split(one, 0.2, 7, &tr, &te, ctx), NDE_ECONFIG);
    ck_assert_ptr_null(tr);
    ck_assert_ptr_null(te);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "at least 2 series"));
    const double bad[] = {1.0, -0.1, NAN, 2};
    for (size_t k = 0; k < 4; k++) {
        ck_assert_int_eq(nde_data_split(d, bad[k], 7, &tr, &te, ctx),
                         NDE_EINVAL);
        ck_assert_ptr_null(tr);
        ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "test_fraction"));
    }
    nde_dataset_destroy(d);
    nde_dataset_destroy(one);
}
END_TEST

START_TEST(split_classes)
{
    unsigned char img[16 + NIMG * NPIX], lab[8 + NIMG];
    size_t ni = make_images(img, 0x803, NIMG), nl = make_labels(lab, 0x801, NIMG);
    const char *ip = write_file(0, "img", img, ni);
    const char *lp = write_file(1, "lab", lab, nl);
    nde_dataset *d = NULL, *tr, *te, *tr2, *te2;
    ck_assert_int_eq(nde_data_read_idx(ip, lp, 0, &d, ctx), NDE_OK);
    ck_assert_int_eq(nde_data_split(d, 0.5, 3, &tr, &te, ctx), NDE_OK);
    ck_assert_uint_eq(te->nexamples, 4); /* round(3.5) */
    ck_assert_uint_eq(tr->nexamples, 3);
    ck_assert_int_eq(nde_data_split(d, 0.5, 3, &tr2, &te2, ctx), NDE_OK);
    nde_dataset_destroy(d);
    /* Each example once, in order, with its pixels and label; nclasses is
     * the whole set's (6) in both parts. */
    int seen[NIMG] = {0};
    const nde_dataset *parts[2] = {tr, te};
    for (int k = 0; k < 2; k++) {
        const nde_dataset *p = parts[k];
        ck_assert_uint_eq(p->nclasses, 6);
        ck_assert_uint_eq(p->nfeatures, NPIX);
        size_t last = 0;
        for (size_t e = 0; e < p->nexamples; e++) {
            /* Identify the example by its first pixel. */
            size_t i = NIMG;
            for (size_t c = 0; c < NIMG; c++)
                if (p->x[e * NPIX] == pixel(c, 0) / 255.0)
                    i = c;
            ck_assert_uint_lt(i, NIMG);
            ck_assert(e == 0 || i > last);
            last = i;
            ck_assert_int_eq(seen[i]++, 0);
            ck_assert_int_eq(p->label[e], labels7[i]);
            for (size_t j = 0; j < NPIX; j++)
                ck_assert_double_eq(p->x[e * NPIX + j], pixel(i, j) / 255.0);
        }
    }
    /* Same seed, same parts. */
    ck_assert_uint_eq(te2->nexamples, te->nexamples);
    ck_assert_mem_eq(te2->x, te->x, te->nexamples * NPIX * sizeof *te->x);
    ck_assert_mem_eq(tr2->label, tr->label, tr->nexamples * sizeof *tr->label);
    nde_dataset_destroy(tr);
    nde_dataset_destroy(te);
    nde_dataset_destroy(tr2);
    nde_dataset_destroy(te2);
}
END_TEST

/* ----------------------------------------------------- allocation failure */

/*
 * Outside AddressSanitizer (which owns malloc) this executable replaces
 * malloc, calloc, realloc and free with pass-throughs that, when armed,
 * count live blocks and fail the allocation numbered fail_at. Each reader
 * and split then runs with a failure at every one of its allocations in
 * turn: it must return NDE_ENOMEM (or succeed, if the failure was
 * tolerated, as glibc's qsort does), never crash, and leave no block live.
 */
#ifndef __SANITIZE_ADDRESS__
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int armed, resolving;
static long nalloc, fail_at = -1, live;
static _Alignas(16) char boot[8192]; /* dlsym's allocations while resolving */
static size_t boot_used;

static void resolve(void)
{
    resolving = 1;
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    resolving = 0;
}

static int in_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + sizeof boot;
}

/* 1 when this allocation is to fail. */
static int injected(void)
{
    if (!armed || nalloc++ != fail_at)
        return 0;
    errno = ENOMEM;
    return 1;
}

void *malloc(size_t n)
{
    if (!real_malloc)
        resolve();
    if (injected())
        return NULL;
    void *p = real_malloc(n);
    live += armed && p;
    return p;
}

void *calloc(size_t a, size_t b)
{
    if (resolving) {
        size_t n = (a * b + 15) & ~(size_t)15;
        if (boot_used + n > sizeof boot)
            return NULL;
        boot_used += n;
        return boot + boot_used - n; /* static storage: already zero */
    }
    if (!real_calloc)
        resolve();
    if (injected())
        return NULL;
    void *p = real_calloc(a, b);
    live += armed && p;
    return p;
}

void *realloc(void *p, size_t n)
{
    if (!real_realloc)
        resolve();
    if (injected())
        return NULL;
    void *q = real_realloc(p, n);
    live += armed && q && !p;
    return q;
}

void free(void *p)
{
    if (!p || in_boot(p))
        return;
    if (!real_free)
        resolve();
    live -= armed;
    real_free(p);
}

typedef int (*scenario)(nde_dataset **out, nde_dataset **out2);
static const char *fault_paths[4];
static nde_dataset *fault_base;

static int read_csv_ok(nde_dataset **o, nde_dataset **o2)
{
    (void)o2;
    return nde_data_read_csv(fault_paths[0], o, ctx);
}
static int read_csv_bad(nde_dataset **o, nde_dataset **o2)
{
    (void)o2;
    return nde_data_read_csv(fault_paths[1], o, ctx);
}
static int read_idx_plain(nde_dataset **o, nde_dataset **o2)
{
    (void)o2;
    return nde_data_read_idx(fault_paths[2], fault_paths[3], 0, o, ctx);
}
static int read_idx_gzip(nde_dataset **o, nde_dataset **o2)
{
    char gi[512], gl[512];
    (void)o2;
    snprintf(gi, sizeof gi, "%s.gz", fault_paths[2]);
    snprintf(gl, sizeof gl, "%s.gz", fault_paths[3]);
    return nde_data_read_idx(gi, gl, 0, o, ctx);
}
static int split(nde_dataset **o, nde_dataset **o2)
{
    return nde_data_split(fault_base, 0.4, 9, o, o2, ctx);
}

/* Returns how many runs ended in NDE_ENOMEM. */
static long fail_each_allocation(scenario run, int ok_status)
{
    long nomem = 0;
    for (long k = 0;; k++) {
        nde_dataset *a = NULL, *b = NULL;
        nalloc = 0;
        fail_at = k;
        live = 0;
        armed = 1;
        int status = run(&a, &b);
        long attempts = nalloc;
        nde_dataset_destroy(a);
        nde_dataset_destroy(b);
        armed = 0;
        ck_assert_msg(status == ok_status || status == NDE_ENOMEM,
                      "allocation %ld failed: status %s: %s", k,
                      nde_status_name(status), nde_ctx_message(ctx));
        if (status == NDE_ENOMEM) {
            nomem++;
            ck_assert_ptr_null(a);
            ck_assert_ptr_null(b);
            ck_assert_msg(strstr(nde_ctx_message(ctx), "out of memory") ||
                          strstr(nde_ctx_message(ctx), "Cannot allocate"),
                          "message: %s", nde_ctx_message(ctx));
        }
        ck_assert_msg(live == 0, "allocation %ld failed: %ld blocks leaked",
                      k, live);
        if (k >= attempts)
            break; /* this run had no failure: every allocation was tried */
    }
    return nomem;
}

START_TEST(allocation_failures)
{
    const char *csv = "id,t,x,y\n# c\na,0,1,\na,1,,2\nb,0,3,4\nc,5,6,7\n";
    unsigned char img[16 + NIMG * NPIX], lab[8 + NIMG];
    size_t ni = make_images(img, 0x803, NIMG), nl = make_labels(lab, 0x801, NIMG);
    fault_paths[0] = write_text(0, "fault.csv", csv);
    fault_paths[1] = write_text(1, "fault_bad.csv",
                                "id,t,x\na,0,1\nb,0,1\na,1,1\n");
    fault_paths[2] = write_file(2, "fimg", img, ni);
    fault_paths[3] = write_file(3, "flab", lab, nl);
    write_gzip(0, "fimg.gz", img, ni);
    write_gzip(0, "flab.gz", lab, nl);
    fault_paths[0] = write_text(0, "fault.csv", csv); /* slot 0 reused */
    ck_assert_int_gt(fail_each_allocation(read_csv_ok, NDE_OK), 5);
    ck_assert_int_gt(fail_each_allocation(read_csv_bad, NDE_ECONFIG), 5);
    ck_assert_int_gt(fail_each_allocation(read_idx_plain, NDE_OK), 5);
    ck_assert_int_gt(fail_each_allocation(read_idx_gzip, NDE_OK), 5);
    ck_assert_int_eq(nde_data_read_csv(fault_paths[0], &fault_base, ctx),
                     NDE_OK);
    ck_assert_int_gt(fail_each_allocation(split, NDE_OK), 5);
    nde_dataset_destroy(fault_base);
    ck_assert_int_eq(nde_data_read_idx(fault_paths[2], fault_paths[3], 0,
                                       &fault_base, ctx), NDE_OK);
    ck_assert_int_gt(fail_each_allocation(split, NDE_OK), 3);
    nde_dataset_destroy(fault_base);
}
END_TEST
#endif

/* -------------------------------------------------------- Fashion-MNIST */

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Reference numbers from Python's gzip module over the same files: the
 * sum of all pixel bytes, the first labels; the classes are balanced.
 * NDE_FASHION_MNIST_DIR replaces the directory (e.g. to see the skip). */
static int fashion_mnist(void)
{
    const char *dir = getenv("NDE_FASHION_MNIST_DIR");
    static const struct {
        const char *image_file, *label_file;
        size_t n;
        uint64_t pixel_sum;
        int first[4];
    } sets[] = {
        {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000, 3431114169u,
         {9, 0, 0, 3}},
        {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000, 573469082u,
         {9, 2, 1, 1}}};
    char images[2][512], labels[2][512];
    int failures = 0;
    if (!dir)
        dir = FMNIST_DIR;
    for (int s = 0; s < 2; s++) {
        snprintf(images[s], sizeof images[s], "%s/%s", dir, sets[s].image_file);
        snprintf(labels[s], sizeof labels[s], "%s/%s", dir, sets[s].label_file);
        if (access(images[s], R_OK) || access(labels[s], R_OK)) {
            printf("SKIP: %s or %s not readable; install Debian's "
                   "dataset-fashion-mnist package to run this test\n",
                   images[s], labels[s]);
            return 77;
        }
    }
    nde_ctx *c = nde_ctx_create();
    for (int s = 0; s < 2; s++) {
        nde_dataset *d = NULL;
        double t0 = now();
        int status = nde_data_read_idx(images[s], labels[s], 0, &d, c);
        double dt = now() - t0;
        if (status) {
            printf("FAIL: %s\n", nde_ctx_message(c));
            failures++;
            continue;
        }
        size_t per_class[10] = {0};
        uint64_t sum = 0;
        int bad = 0;
        for (size_t i = 0; i < d->nexamples * d->nfeatures; i++) {
            double byte = d->x[i] * 255.0;
            bad |= !(d->x[i] >= 0 && d->x[i] <= 1) ||
                   fabs(byte - round(byte)) > 1e-9;
            sum += (uint64_t)lround(byte);
        }
        for (size_t i = 0; i < d->nexamples; i++)
            if (d->label[i] >= 0 && d->label[i] < 10)
                per_class[d->label[i]]++;
        for (int k = 0; k < 10; k++)
            bad |= per_class[k] != sets[s].n / 10;
        for (int k = 0; k < 4; k++)
            bad |= d->label[k] != sets[s].first[k];
        bad |= d->nexamples != sets[s].n || d->nfeatures != 784 ||
               d->nclasses != 10 || sum != sets[s].pixel_sum;
        printf("%s: %zu images of %zu pixels, %zu classes, pixel sum %llu "
               "(expected %llu), read in %.3f s: %s\n", images[s],
               d->nexamples, d->nfeatures, d->nclasses,
               (unsigned long long)sum, (unsigned long long)sets[s].pixel_sum,
               dt, bad ? "FAIL" : "ok");
        failures += bad;
        nde_dataset_destroy(d);
    }
    /* limit reads only the first examples. */
    nde_dataset *d = NULL;
    double t0 = now();
    int status = nde_data_read_idx(images[0], labels[0], 1000, &d, c);
    printf("first 1000 training images read in %.3f s\n", now() - t0);
    if (status || d->nexamples != 1000 || d->label[0] != 9) {
        printf("FAIL: limit 1000: %s\n", status ? nde_ctx_message(c) : "wrong");
        failures++;
    }
    nde_dataset_destroy(d);
    nde_ctx_destroy(c);
    return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ main */

static void remove_tree(void)
{
    static const char *names[] = {
        "ok.csv", "long.csv", "does_not_exist.csv", "img", "lab", "img.gz",
        "lab.gz", "text.idx", "lab5", "img0", "cols0", "huge", "huge.gz",
        "overstated.gz", "trailing", "trailing.gz", "badcrc.gz", "badmethod.gz",
        "garbage.gz", "cut", "series10.csv", "series1.csv", "fault.csv",
        "fault_bad.csv", "fimg", "flab", "fimg.gz", "flab.gz"};
    char name[64];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        unlink(tmp_path(0, names[i]));
    for (size_t i = 0; i < sizeof csv_cases / sizeof *csv_cases; i++) {
        snprintf(name, sizeof name, "%s.csv", csv_cases[i].name);
        unlink(tmp_path(0, name));
    }
    rmdir(tmpdir);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--fashion-mnist") == 0)
        return fashion_mnist();
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("csv");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, csv_reads_every_value);
    tcase_add_test(tc, csv_long_lines);
    tcase_add_loop_test(tc, csv_bad_input, 0,
                        sizeof csv_cases / sizeof *csv_cases);
    tcase_add_test(tc, csv_unreadable);
    suite_add_tcase(s, tc);
    tc = tcase_create("idx");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, idx_reads_every_value);
    tcase_add_test(tc, idx_bad_headers);
    tcase_add_test(tc, idx_overstated_count);
    tcase_add_test(tc, idx_corrupt_gzip);
    tcase_add_test(tc, idx_gzip_trailing_data);
    tcase_add_test(tc, idx_truncated_everywhere);
    suite_add_tcase(s, tc);
    tc = tcase_create("split");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, split_series);
    tcase_add_test(tc, split_sizes);
    tcase_add_test(tc, split_classes);
    suite_add_tcase(s, tc);
#ifndef __SANITIZE_ADDRESS__
    tc = tcase_create("nomem");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, allocation_failures);
    suite_add_tcase(s, tc);
#else
    printf("allocation-failure test not built: AddressSanitizer owns "
           "malloc (it runs in the plain build)\n");
#endif
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_tree();
    return failed ? 1 : 0;
}
