/*
 * Data sets: CSV time series, MNIST-format IDX images and labels, and the
 * train/test split.
 *
 * Status convention: NDE_EIO when the bytes cannot be had (the file cannot
 * be opened or read, it ends early, its gzip stream is corrupt); NDE_ECONFIG
 * when they were read but are wrong (a malformed cell, wrong magic, counts
 * that disagree); NDE_ENOMEM; NDE_EINVAL for a bad argument. Every message
 * starts with the file name and gives the line (CSV) or byte offset (IDX).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "nde/nde.h"
#include "nde/data.h"

/* Longest piece of user text (a cell, an id) quoted in a message. */
#define QUOTE_MAX 40

/* Grow *p (of *cap elements of size elem) to hold at least need elements,
 * doubling; 0 on success, -1 on overflow or out of memory (*p untouched). */
static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t ncap = *cap ? *cap : 16;
    void *np;
    if (need <= *cap)
        return 0;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return -1;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem)
        return -1;
    np = realloc(*p, ncap * elem);
    if (!np)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}

static char *dup_string(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

void nde_dataset_destroy(nde_dataset *d)
{
    if (!d)
        return;
    if (d->names) {
        for (char **n = d->names; *n; n++)
            free(*n);
        free(d->names);
    }
    for (size_t i = 0; i < d->nseries; i++) {
        free(d->series[i].id);
        free(d->series[i].t);
        free(d->series[i].y);
    }
    free(d->series);
    free(d->x);
    free(d->label);
    free(d);
}

/* ------------------------------------------------------------------ CSV */

typedef struct cell {
    const char *s; /* trimmed, not NUL-terminated */
    size_t n;
} cell;

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* Split line (NUL-terminated, no newline) at commas into trimmed cells. */
static int split_cells(char *line, cell **cells, size_t *cap, size_t *ncells)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        char *end = strchr(p, ',');
        char *stop = end ? end : p + strlen(p);
        char *a = p, *b = stop;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        if (grow((void **)cells, cap, n + 1, sizeof **cells))
            return -1;
        (*cells)[n].s = a;
        (*cells)[n].n = (size_t)(b - a);
        n++;
        if (!end)
            break;
        p = end + 1;
    }
    *ncells = n;
    return 0;
}

/* A finite number filling the whole cell; 0 on success. */
static int parse_number(const cell *c, double *out)
{
    char buf[64], *end;
    char *heap = NULL;
    const char *s = buf;
    double v;
    if (c->n == 0)
        return -1;
    if (c->n < sizeof buf) {
        memcpy(buf, c->s, c->n);
        buf[c->n] = '\0';
    } else {
        heap = dup_string(c->s, c->n);
        if (!heap)
            return -1;
        s = heap;
    }
    errno = 0;
    v = strtod(s, &end);
    /* A nonzero literal below the smallest subnormal reads as 0: refused
     * like one above the largest double, not taken as a zero. */
    int bad = end != s + c->n || !isfinite(v) || (errno == ERANGE && v == 0);
    free(heap);
    if (bad)
        return -1;
    *out = v;
    return 0;
}

typedef struct csv_reader {
    const char *path;
    FILE *f;
    char *line;
    size_t line_cap;
    size_t lineno;
    cell *cells;
    size_t cells_cap, ncells;
} csv_reader;

/*
 * Next line that is neither blank nor a comment, split into cells.
 * 1 when a line was read, 0 at end of file, or a negative status.
 */
static int csv_next(csv_reader *r, nde_ctx *ctx)
{
    for (;;) {
        errno = 0;
        ssize_t len = getline(&r->line, &r->line_cap, r->f);
        if (len < 0) {
            /* glibc's getline reports a failed allocation by errno only. */
            if (ferror(r->f) || errno == ENOMEM) {
                int e = errno;
                return -nde_error(ctx, e == ENOMEM ? NDE_ENOMEM : NDE_EIO,
                                  "%s: read error after line %zu: %s", r->path,
                                  r->lineno, strerror(e));
            }
            return 0;
        }
        r->lineno++;
        if ((size_t)len != strlen(r->line))
            return -nde_error(ctx, NDE_ECONFIG,
                              "%s:%zu: contains a NUL byte (not a text file?)",
                              r->path, r->lineno);
        while (len > 0 && (r->line[len - 1] == '\n' || r->line[len - 1] == '\r'))
            r->line[--len] = '\0';
        const char *p = r->line;
        while (is_blank(*p))
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (split_cells(r->line, &r->cells, &r->cells_cap, &r->ncells))
            return -nde_error(ctx, NDE_ENOMEM, "%s:%zu: out of memory",
                              r->path, r->lineno);
        return 1;
    }
}

/* Header: id, t, then dim state names. */
static int csv_header(csv_reader *r, nde_dataset *d, nde_ctx *ctx)
{
    int got = csv_next(r, ctx);
    double v;
    if (got < 0)
        return -got;
    if (got == 0)
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: empty file: expected a header line "
                         "(series id, t, one name per state)", r->path);
    if (r->ncells < 3)
        return nde_error(ctx, NDE_ECONFIG,
                         "%s:%zu: header has %zu column%s, expected at least 3 "
                         "(series id, t, one name per state)", r->path,
                         r->lineno, r->ncells, r->ncells == 1 ? "" : "s");
    if (parse_number(&r->cells[1], &v) == 0)
        return nde_error(ctx, NDE_ECONFIG,
                         "%s:%zu: the first line looks like data, not a header "
                         "(column 2 is the number %.*s); the file must start "
                         "with a line naming the columns", r->path, r->lineno,
                         (int)(r->cells[1].n < QUOTE_MAX ? r->cells[1].n : QUOTE_MAX),
                         r->cells[1].s);
    d->dim = r->ncells - 2;
    d->names = calloc(d->dim + 1, sizeof *d->names);
    if (!d->names)
        return nde_error(ctx, NDE_ENOMEM, "%s: out of memory", r->path);
    for (size_t j = 0; j < d->dim; j++) {
        const cell *c = &r->cells[j + 2];
        if (c->n == 0)
            return nde_error(ctx, NDE_ECONFIG,
                             "%s:%zu: header column %zu has an empty name",
                             r->path, r->lineno, j + 3);
        d->names[j] = dup_string(c->s, c->n);
        if (!d->names[j])
            return nde_error(ctx, NDE_ENOMEM, "%s: out of memory", r->path);
    }
    return NDE_OK;
}

/* Where a series starts, to find one whose rows are not contiguous. */
typedef struct series_start {
    const char *id;
    size_t line;
} series_start;

static int compare_start(const void *a, const void *b)
{
    const series_start *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int csv_check_contiguous(const char *path, nde_dataset *d,
                                const size_t *first_line, nde_ctx *ctx)
{
    series_start *s;
    int status = NDE_OK;
    if (d->nseries < 2)
        return NDE_OK;
    s = malloc(d->nseries * sizeof *s);
    if (!s)
        return nde_error(ctx, NDE_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < d->nseries; i++) {
        s[i].id = d->series[i].id;
        s[i].line = first_line[i];
    }
    qsort(s, d->nseries, sizeof *s, compare_start);
    /* Report the earliest line where a series resumes. */
    size_t bad = 0, bad_line = 0;
    for (size_t i = 1; i < d->nseries; i++)
        if (strcmp(s[i].id, s[i - 1].id) == 0 &&
            (bad_line == 0 || s[i].line < bad_line)) {
            bad = i;
            bad_line = s[i].line;
        }
    if (bad_line)
        status = nde_error(ctx, NDE_ECONFIG,
                           "%s:%zu: rows of series '%.*s' are not contiguous "
                           "(its rows started at line %zu, other series came "
                           "in between)", path, bad_line, QUOTE_MAX,
                           s[bad].id, s[bad - 1].line);
    free(s);
    return status;
}

static int csv_read(csv_reader *r, nde_dataset *d, nde_ctx *ctx)
{
    size_t series_cap = 0, t_cap = 0, y_cap = 0, lines_cap = 0;
    size_t *first_line = NULL;
    nde_series *cur = NULL;
    int status = csv_header(r, d, ctx);
    if (status)
        return status;
    const size_t header_line = r->lineno;
    const size_t ncols = d->dim + 2;

    for (;;) {
        int got = csv_next(r, ctx);
        if (got < 0) {
            status = -got;
            goto done;
        }
        if (got == 0)
            break;
        if (r->ncells != ncols) {
            status = nde_error(ctx, NDE_ECONFIG,
                               "%s:%zu: %zu cells, expected %zu as in the "
                               "header (series id, t, %zu state%s)", r->path,
                               r->lineno, r->ncells, ncols, d->dim,
                               d->dim == 1 ? "" : "s");
            goto done;
        }
        const cell *c = r->cells;
        if (c[0].n == 0) {
            status = nde_error(ctx, NDE_ECONFIG,
                               "%s:%zu: column 1: empty series id", r->path,
                               r->lineno);
            goto done;
        }
        double t;
        if (parse_number(&c[1], &t)) {
            status = nde_error(ctx, NDE_ECONFIG,
                               "%s:%zu: column 2 (t): '%.*s' is not a finite "
                               "number in double range (times cannot be "
                               "missing)", r->path,
                               r->lineno,
                               (int)(c[1].n < QUOTE_MAX ? c[1].n : QUOTE_MAX),
                               c[1].s);
            goto done;
        }
        if (!cur || strlen(cur->id) != c[0].n ||
            memcmp(cur->id, c[0].s, c[0].n) != 0) {
            if (grow((void **)&d->series, &series_cap, d->nseries + 1,
                     sizeof *d->series) ||
                grow((void **)&first_line, &lines_cap, d->nseries + 1,
                     sizeof *first_line))
                goto nomem;
            cur = &d->series[d->nseries];
            memset(cur, 0, sizeof *cur);
            first_line[d->nseries] = r->lineno;
            d->nseries++;
            cur->id = dup_string(c[0].s, c[0].n);
            if (!cur->id)
                goto nomem;
            t_cap = y_cap = 0;
        } else if (!(t > cur->t[cur->npoints - 1])) {
            status = nde_error(ctx, NDE_ECONFIG,
                               "%s:%zu: column 2 (t): t = %.17g does not "
                               "increase (previous row of series '%.*s' has "
                               "t = %.17g)", r->path, r->lineno, t, QUOTE_MAX,
                               cur->id, cur->t[cur->npoints - 1]);
            goto done;
        }
        if (grow((void **)&cur->t, &t_cap, cur->npoints + 1, sizeof *cur->t) ||
            cur->npoints + 1 > SIZE_MAX / d->dim ||
            grow((void **)&cur->y, &y_cap, (cur->npoints + 1) * d->dim,
                 sizeof *cur->y))
            goto nomem;
        double *y = cur->y + cur->npoints * d->dim;
        size_t observed = 0;
        for (size_t j = 0; j < d->dim; j++) {
            const cell *cj = &c[j + 2];
            if (cj->n == 0) {
                y[j] = NAN;
                continue;
            }
            if (parse_number(cj, &y[j])) {
                status = nde_error(ctx, NDE_ECONFIG,
                                   "%s:%zu: column %zu (%.*s): '%.*s' is not a "
                                   "finite number in double range (leave the "
                                   "cell empty for a missing value)", r->path, r->lineno, j + 3,
                                   QUOTE_MAX, d->names[j],
                                   (int)(cj->n < QUOTE_MAX ? cj->n : QUOTE_MAX),
                                   cj->s);
                goto done;
            }
            observed++;
        }
        if (observed == 0) {
            status = nde_error(ctx, NDE_ECONFIG,
                               "%s:%zu: no observed value (every state cell "
                               "is empty)", r->path, r->lineno);
            goto done;
        }
        cur->t[cur->npoints++] = t;
    }
    if (d->nseries == 0) {
        status = nde_error(ctx, NDE_ECONFIG,
                           "%s: no data rows after the header (line %zu)",
                           r->path, header_line);
        goto done;
    }
    status = csv_check_contiguous(r->path, d, first_line, ctx);
    goto done;
nomem:
    status = nde_error(ctx, NDE_ENOMEM, "%s:%zu: out of memory", r->path,
                       r->lineno);
done:
    free(first_line);
    return status;
}

int nde_data_read_csv(const char *path, nde_dataset **out, nde_ctx *ctx)
{
    csv_reader r = {0};
    nde_dataset *d;
    int status;
    if (!path || !out)
        return nde_error(ctx, NDE_EINVAL, "nde_data_read_csv: NULL argument");
    *out = NULL;
    d = calloc(1, sizeof *d);
    if (!d)
        return nde_error(ctx, NDE_ENOMEM, "%s: out of memory", path);
    d->kind = NDE_DATA_SERIES;
    r.path = path;
    r.f = fopen(path, "r");
    if (!r.f) {
        int e = errno;
        status = nde_error(ctx, e == ENOMEM ? NDE_ENOMEM : NDE_EIO,
                           "%s: cannot open: %s", path, strerror(e));
    } else {
        status = csv_read(&r, d, ctx);
        fclose(r.f);
    }
    free(r.line);
    free(r.cells);
    if (status) {
        nde_dataset_destroy(d);
        return status;
    }
    *out = d;
    return NDE_OK;
}

/* ------------------------------------------------------------------ IDX */

#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAGIC_IMAGES 0x00000803u
/* Deflate expands at most about 1032:1 (Adler, zlib FAQ): a header that
 * declares more than that from a gzip file is corrupt, and is refused
 * before anything is allocated from it. */
#define GZIP_MAX_RATIO 1032u
/* Bytes asked of gzread at once (images are read in whole images). */
#define IDX_CHUNK_BYTES (1u << 20)

/* Compressed bytes read from the file at once. */
#define IDX_IN_BYTES (128u << 10)

/*
 * An IDX file, plain or gzip (by its first two bytes, 1f 8b). gzip data is
 * inflated here rather than through gzread, which ignores whatever follows
 * the last gzip member: here the file must end where a member ends. More
 * members may follow one another (as `gzip -d` reads them); anything else
 * after a member is refused, as is a member cut short.
 */
typedef struct idx_file {
    const char *path;
    int fd;              /* -1 when closed */
    uint64_t offset;     /* uncompressed bytes consumed so far */
    uint64_t file_size;  /* bytes on disk */
    int compressed;
    /* gzip only */
    z_stream z;
    int z_ready;         /* z needs inflateEnd */
    unsigned char *in;   /* IDX_IN_BYTES of compressed input */
    uint64_t in_read;    /* compressed bytes read from the file */
    int in_eof;
    int member_done;     /* inflate ended a member; no other begun */
    int cut;             /* the file ended inside a member */
    /* Set by idx_header, to name the item a read stops in. */
    const char *item;    /* "image" or "label" */
    uint64_t data_start, item_size, count;
} idx_file;

static const char *idx_where(const idx_file *f)
{
    return f->compressed ? " (uncompressed)" : "";
}

static void idx_close(idx_file *f)
{
    if (f->z_ready)
        inflateEnd(&f->z);
    free(f->in);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

/* More compressed input after the z.avail_in bytes left; in_eof at the
 * end of the file. */
static int idx_fill(idx_file *f, nde_ctx *ctx)
{
    size_t keep = f->z.avail_in;
    ssize_t r;
    if (keep)
        memmove(f->in, f->z.next_in, keep);
    do
        r = read(f->fd, f->in + keep, IDX_IN_BYTES - keep);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return nde_error(ctx, NDE_EIO, "%s: read error near byte offset "
                         "%llu: %s", f->path, (unsigned long long)f->in_read,
                         strerror(errno));
    f->in_read += (uint64_t)r;
    f->in_eof = r == 0;
    f->z.next_in = f->in;
    f->z.avail_in = (uInt)(keep + (size_t)r);
    return NDE_OK;
}

static int idx_open(idx_file *f, const char *path, nde_ctx *ctx)
{
    struct stat st;
    int rc;
    f->path = path;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0)
        return nde_error(ctx, NDE_EIO, "%s: cannot open: %s", path,
                         strerror(errno));
    if (fstat(f->fd, &st) != 0)
        return nde_error(ctx, NDE_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return nde_error(ctx, NDE_EIO, "%s: not a regular file", path);
    f->file_size = (uint64_t)st.st_size;
    if (!(f->in = malloc(IDX_IN_BYTES)))
        return nde_error(ctx, NDE_ENOMEM, "%s: cannot open: out of memory",
                         path);
    if ((rc = idx_fill(f, ctx)) != NDE_OK)
        return rc;
    f->compressed = f->z.avail_in >= 2 && f->in[0] == 0x1f && f->in[1] == 0x8b;
    if (!f->compressed)
        return NDE_OK;
    /* 16 + MAX_WBITS: a gzip wrapper, its CRC and length checked. */
    switch (inflateInit2(&f->z, 16 + MAX_WBITS)) {
    case Z_OK: f->z_ready = 1; return NDE_OK;
    case Z_MEM_ERROR:
        return nde_error(ctx, NDE_ENOMEM, "%s: cannot open: out of memory",
                         path);
    default:
        return nde_error(ctx, NDE_EIO, "%s: zlib: %s", path,
                         f->z.msg ? f->z.msg : "inflateInit2 failed");
    }
}

/* Up to n uncompressed bytes into buf; *got < n only where the data end
 * (f->cut when the file ends inside a gzip member). */
static int idx_inflate(idx_file *f, unsigned char *buf, size_t n,
                       size_t *got, const char *what, nde_ctx *ctx)
{
    int rc = NDE_OK;
    f->z.next_out = buf;
    f->z.avail_out = (uInt)n;
    while (f->z.avail_out) {
        uint64_t at = f->offset + (n - f->z.avail_out);
        int ret;
        if (f->member_done) {
            while (f->z.avail_in < 2 && !f->in_eof)
                if ((rc = idx_fill(f, ctx)) != NDE_OK)
                    break;
            if (rc || (f->z.avail_in == 0 && f->in_eof))
                break;
            if (f->z.avail_in < 2 || f->z.next_in[0] != 0x1f ||
                f->z.next_in[1] != 0x8b) {
                rc = nde_error(ctx, NDE_ECONFIG,
                               "%s: byte offset %llu: data after the end of "
                               "the gzip stream (not another gzip member)",
                               f->path, (unsigned long long)(f->in_read -
                                                             f->z.avail_in));
                break;
            }
            inflateReset(&f->z);
            f->member_done = 0;
        }
        if (f->z.avail_in == 0) {
            if ((rc = idx_fill(f, ctx)) != NDE_OK)
                break;
            if (f->in_eof) {
                f->cut = 1;
                break;
            }
        }
        ret = inflate(&f->z, Z_NO_FLUSH);
        if (ret == Z_STREAM_END)
            f->member_done = 1;
        else if (ret == Z_MEM_ERROR)
            rc = nde_error(ctx, NDE_ENOMEM, "%s: out of memory while reading",
                           f->path);
        else if (ret != Z_OK && ret != Z_BUF_ERROR)
            rc = nde_error(ctx, NDE_EIO, "%s: corrupt gzip data near byte "
                           "offset %llu%s (reading %s): %s", f->path,
                           (unsigned long long)at, idx_where(f), what,
                           f->z.msg ? f->z.msg : "invalid data");
        if (rc)
            break;
    }
    *got = n - f->z.avail_out;
    return rc;
}

/* Up to n bytes of a plain file; *got < n only at its end. */
static int idx_read_plain(idx_file *f, unsigned char *buf, size_t n,
                          size_t *got, nde_ctx *ctx)
{
    /* idx_open read the first bytes already. */
    size_t take = f->z.avail_in < n ? f->z.avail_in : n;
    memcpy(buf, f->z.next_in, take);
    f->z.next_in += take;
    f->z.avail_in -= (uInt)take;
    *got = take;
    while (*got < n) {
        ssize_t r = read(f->fd, buf + *got, n - *got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return nde_error(ctx, NDE_EIO, "%s: read error near byte offset "
                             "%llu: %s", f->path,
                             (unsigned long long)(f->offset + *got),
                             strerror(errno));
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return NDE_OK;
}

/* What lies at uncompressed offset off: "image 3 of 60000". */
static const char *idx_item_at(const idx_file *f, uint64_t off, char *buf,
                               size_t size)
{
    snprintf(buf, size, "%s %llu of %llu", f->item,
             (unsigned long long)((off - f->data_start) / f->item_size),
             (unsigned long long)f->count);
    return buf;
}

/* Read exactly n bytes; `what` says what was expected there (NULL: items
 * of the data part, named by idx_item_at). */
static int idx_read(idx_file *f, void *buf, size_t n, const char *what,
                    nde_ctx *ctx)
{
    size_t got = 0;
    char item[96];
    while (got < n) {
        size_t want = n - got < IDX_CHUNK_BYTES ? n - got : IDX_CHUNK_BYTES;
        size_t r;
        const char *w = what ? what
                             : idx_item_at(f, f->offset + got, item,
                                           sizeof item);
        int rc = f->compressed
                     ? idx_inflate(f, (unsigned char *)buf + got, want, &r,
                                   w, ctx)
                     : idx_read_plain(f, (unsigned char *)buf + got, want, &r,
                                      ctx);
        const uint64_t at = f->offset + got + r;
        if (rc)
            return rc;
        got += r;
        if (r < want)
            return nde_error(ctx, NDE_EIO,
                             "%s: truncated: ends at byte offset %llu%s, in "
                             "%s%s", f->path, (unsigned long long)at,
                             idx_where(f),
                             what ? what : idx_item_at(f, at, item,
                                                       sizeof item),
                             f->cut ? "; the gzip stream ends early" : "");
    }
    f->offset += n;
    return NDE_OK;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
           (uint32_t)b[3];
}

/*
 * Read the header of an IDX file of the given magic: count and, for images,
 * rows and cols. Refuses zero dimensions and a payload the file cannot hold.
 */
static int idx_header(idx_file *f, uint32_t magic, uint32_t *count,
                      uint32_t *rows, uint32_t *cols, nde_ctx *ctx)
{
    const int images = magic == IDX_MAGIC_IMAGES;
    const char *kind = images ? "images" : "labels";
    unsigned char h[16];
    int status = idx_read(f, h, 4, "the 4-byte magic number", ctx);
    if (status)
        return status;
    if (be32(h) != magic)
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: byte offset 0%s: magic number 0x%08x, expected "
                         "0x%08x (IDX %s)%s", f->path, idx_where(f), be32(h),
                         magic, kind,
                         be32(h) == (images ? IDX_MAGIC_LABELS : IDX_MAGIC_IMAGES)
                             ? images ? "; this is a labels file"
                                      : "; this is an images file"
                             : "");
    status = idx_read(f, h + 4, images ? 12 : 4,
                      images ? "the header (count, rows, cols)"
                             : "the header (count)", ctx);
    if (status)
        return status;
    *count = be32(h + 4);
    *rows = images ? be32(h + 8) : 1;
    *cols = images ? be32(h + 12) : 1;
    f->item = images ? "image" : "label";
    f->data_start = f->offset;
    f->item_size = (uint64_t)*rows * *cols;
    f->count = *count;
    if (*count == 0)
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: byte offset 4%s: the header declares 0 %s",
                         f->path, idx_where(f), kind);
    if (*rows == 0 || *cols == 0)
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: byte offset %d%s: the header declares %u x %u "
                         "images", f->path, *rows == 0 ? 8 : 12, idx_where(f),
                         *rows, *cols);
    /* count * rows * cols < 2^96: check it fits in 64 bits first. */
    uint64_t per = (uint64_t)*rows * *cols, payload;
    if (__builtin_mul_overflow(per, (uint64_t)*count, &payload) ||
        payload > UINT64_MAX - f->offset)
        payload = UINT64_MAX;
    else
        payload += f->offset;
    uint64_t room = f->compressed
                        ? (f->file_size > UINT64_MAX / GZIP_MAX_RATIO
                               ? UINT64_MAX
                               : f->file_size * GZIP_MAX_RATIO)
                        : f->file_size;
    if (payload > room) {
        char items[64];
        if (images)
            snprintf(items, sizeof items, "%u images of %u x %u", *count,
                     *rows, *cols);
        else
            snprintf(items, sizeof items, "%u labels", *count);
        return nde_error(ctx, NDE_EIO,
                         "%s: byte offset 4: the header declares %s (%llu "
                         "bytes in all), more than %s of %llu bytes can hold "
                         "(truncated file or corrupt header)", f->path, items,
                         (unsigned long long)payload,
                         f->compressed ? "a gzip file" : "the file",
                         (unsigned long long)f->file_size);
    }
    if (!f->compressed && payload < f->file_size)
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: byte offset %llu: unexpected data after the "
                         "last item the header declares (the file has %llu "
                         "bytes)", f->path, (unsigned long long)payload,
                         (unsigned long long)f->file_size);
    if (images && per > SIZE_MAX / sizeof(double))
        return nde_error(ctx, NDE_ENOMEM, "%s: %u x %u images are too large",
                         f->path, *rows, *cols);
    return NDE_OK;
}

/* After the declared payload: nothing but the end of the file (for gzip,
 * the end of the last member, whose trailer this read checks). */
static int idx_expect_end(idx_file *f, nde_ctx *ctx)
{
    unsigned char c;
    size_t r;
    int rc = f->compressed
                 ? idx_inflate(f, &c, 1, &r, "the end of the file", ctx)
                 : idx_read_plain(f, &c, 1, &r, ctx);
    if (rc)
        return rc;
    if (f->cut)
        return nde_error(ctx, NDE_EIO,
                         "%s: truncated gzip stream: its trailer is missing "
                         "after byte offset %llu (uncompressed)", f->path,
                         (unsigned long long)f->offset);
    if (r > 0)
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: byte offset %llu%s: unexpected data after the "
                         "last item the header declares", f->path,
                         (unsigned long long)f->offset, idx_where(f));
    return NDE_OK;
}

static int idx_read_images(idx_file *f, nde_dataset *d, size_t n,
                           nde_ctx *ctx)
{
    const size_t nf = d->nfeatures;
    /* Whole images per read, at least one. */
    size_t per_chunk = IDX_CHUNK_BYTES / nf ? IDX_CHUNK_BYTES / nf : 1;
    size_t cap = 0;
    unsigned char *buf = malloc(per_chunk * nf);
    int status = NDE_OK;
    if (!buf)
        return nde_error(ctx, NDE_ENOMEM, "%s: out of memory", f->path);
    /* The array grows with what was actually read, so a header that
     * overstates the count cannot make us allocate more than the data. */
    for (size_t done = 0; done < n;) {
        size_t k = n - done < per_chunk ? n - done : per_chunk;
        if (grow((void **)&d->x, &cap, (done + k) * nf, sizeof *d->x)) {
            status = nde_error(ctx, NDE_ENOMEM,
                               "%s: out of memory for %zu images of %zu "
                               "pixels", f->path, done + k, nf);
            break;
        }
        status = idx_read(f, buf, k * nf, NULL, ctx);
        if (status)
            break;
        double *x = d->x + done * nf;
        for (size_t i = 0; i < k * nf; i++)
            x[i] = buf[i] / 255.0;
        done += k;
        d->nexamples = done;
    }
    free(buf);
    return status;
}

static int idx_read_labels(idx_file *f, nde_dataset *d, size_t n,
                           nde_ctx *ctx)
{
    unsigned char *buf = malloc(IDX_CHUNK_BYTES);
    size_t cap = 0;
    int status = NDE_OK, max_label = 0;
    if (!buf)
        return nde_error(ctx, NDE_ENOMEM, "%s: out of memory", f->path);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < IDX_CHUNK_BYTES ? n - done : IDX_CHUNK_BYTES;
        if (grow((void **)&d->label, &cap, done + k, sizeof *d->label)) {
            status = nde_error(ctx, NDE_ENOMEM, "%s: out of memory", f->path);
            break;
        }
        status = idx_read(f, buf, k, NULL, ctx);
        if (status)
            break;
        for (size_t i = 0; i < k; i++) {
            d->label[done + i] = buf[i];
            if (buf[i] > max_label)
                max_label = buf[i];
        }
        done += k;
    }
    d->nclasses = (size_t)max_label + 1;
    free(buf);
    return status;
}

int nde_data_read_idx(const char *images, const char *labels, size_t limit,
                      nde_dataset **out, nde_ctx *ctx)
{
    idx_file fi = {.fd = -1}, fl = {.fd = -1};
    uint32_t count, rows, cols, nlabels, one;
    nde_dataset *d = NULL;
    int status;
    if (!images || !labels || !out)
        return nde_error(ctx, NDE_EINVAL, "nde_data_read_idx: NULL argument");
    *out = NULL;
    if ((status = idx_open(&fi, images, ctx)) ||
        (status = idx_header(&fi, IDX_MAGIC_IMAGES, &count, &rows, &cols,
                             ctx)) ||
        (status = idx_open(&fl, labels, ctx)) ||
        (status = idx_header(&fl, IDX_MAGIC_LABELS, &nlabels, &one, &one,
                             ctx)))
        goto done;
    if (nlabels != count) {
        status = nde_error(ctx, NDE_ECONFIG,
                           "%s: byte offset 4: %u labels, but %s has %u "
                           "images", labels, nlabels, images, count);
        goto done;
    }
    d = calloc(1, sizeof *d);
    if (!d) {
        status = nde_error(ctx, NDE_ENOMEM, "%s: out of memory", images);
        goto done;
    }
    d->kind = NDE_DATA_CLASSES;
    d->nfeatures = (size_t)rows * cols;
    size_t n = limit && limit < count ? limit : count;
    if ((status = idx_read_images(&fi, d, n, ctx)) ||
        (status = idx_read_labels(&fl, d, n, ctx)))
        goto done;
    /* Reading everything also checks that nothing follows and, for gzip,
     * the stream's CRC. */
    if (n == count && ((status = idx_expect_end(&fi, ctx)) ||
                       (status = idx_expect_end(&fl, ctx))))
        goto done;
done:
    idx_close(&fi);
    idx_close(&fl);
    if (status) {
        nde_dataset_destroy(d);
        return status;
    }
    *out = d;
    return NDE_OK;
}

/* ---------------------------------------------------------------- split */

static int copy_series(nde_series *dst, const nde_series *src, size_t dim)
{
    memset(dst, 0, sizeof *dst);
    dst->id = dup_string(src->id, strlen(src->id));
    if (!dst->id)
        return -1;
    if (src->npoints == 0)
        return 0;
    dst->t = malloc(src->npoints * sizeof *dst->t);
    dst->y = malloc(src->npoints * dim * sizeof *dst->y);
    dst->npoints = src->npoints;
    if (!dst->t || !dst->y)
        return -1;
    memcpy(dst->t, src->t, src->npoints * sizeof *dst->t);
    memcpy(dst->y, src->y, src->npoints * dim * sizeof *dst->y);
    return 0;
}

/* A part holding the items i with in_test[i] == which, in their order. */
static nde_dataset *make_part(const nde_dataset *d, const unsigned char *in_test,
                              unsigned char which, size_t count)
{
    nde_dataset *p = calloc(1, sizeof *p);
    size_t k = 0;
    if (!p)
        return NULL;
    p->kind = d->kind;
    if (d->kind == NDE_DATA_SERIES) {
        p->dim = d->dim;
        p->names = calloc(d->dim + 1, sizeof *p->names);
        if (!p->names)
            goto fail;
        for (size_t j = 0; j < d->dim; j++)
            if (!(p->names[j] = dup_string(d->names[j], strlen(d->names[j]))))
                goto fail;
        if (count && !(p->series = calloc(count, sizeof *p->series)))
            goto fail;
        for (size_t i = 0; i < d->nseries; i++)
            if (in_test[i] == which) {
                p->nseries = ++k; /* destroy frees what was copied */
                if (copy_series(&p->series[k - 1], &d->series[i], d->dim))
                    goto fail;
            }
    } else {
        const size_t nf = d->nfeatures;
        p->nfeatures = nf;
        p->nclasses = d->nclasses;
        if (count && (!(p->x = malloc(count * nf * sizeof *p->x)) ||
                      !(p->label = malloc(count * sizeof *p->label))))
            goto fail;
        for (size_t i = 0; i < d->nexamples; i++)
            if (in_test[i] == which) {
                memcpy(p->x + k * nf, d->x + i * nf, nf * sizeof *p->x);
                p->label[k++] = d->label[i];
            }
        p->nexamples = k;
    }
    return p;
fail:
    nde_dataset_destroy(p);
    return NULL;
}

int nde_data_split(const nde_dataset *d, double test_fraction, uint64_t seed,
                   nde_dataset **train, nde_dataset **test, nde_ctx *ctx)
{
    size_t count, ntest;
    size_t *perm = NULL;
    unsigned char *in_test = NULL;
    gsl_rng rng = {gsl_rng_mt19937, NULL};
    int status = NDE_OK;
    const char *items;
    if (!d || !train || !test)
        return nde_error(ctx, NDE_EINVAL, "nde_data_split: NULL argument");
    *train = *test = NULL;
    if (d->kind != NDE_DATA_SERIES && d->kind != NDE_DATA_CLASSES)
        return nde_error(ctx, NDE_EINVAL, "nde_data_split: unknown data kind %d",
                         (int)d->kind);
    if (!(test_fraction >= 0 && test_fraction < 1))
        return nde_error(ctx, NDE_EINVAL,
                         "nde_data_split: test_fraction %g is not in [0, 1)",
                         test_fraction);
    count = d->kind == NDE_DATA_SERIES ? d->nseries : d->nexamples;
    items = d->kind == NDE_DATA_SERIES ? "series" : "examples";
    ntest = (size_t)floor(test_fraction * (double)count + 0.5);
    if (test_fraction > 0) {
        if (count < 2)
            return nde_error(ctx, NDE_ECONFIG,
                             "test_fraction %g needs at least 2 %s to split, "
                             "the data set has %zu", test_fraction, items,
                             count);
        /* Both parts non-empty. */
        if (ntest < 1)
            ntest = 1;
        if (ntest > count - 1)
            ntest = count - 1;
    }
    in_test = calloc(count ? count : 1, 1);
    perm = malloc((count ? count : 1) * sizeof *perm);
    /* Our own state buffer: gsl_rng_alloc would call GSL's error handler
     * (abort by default) when out of memory. */
    rng.state = malloc(gsl_rng_mt19937->size);
    if (!in_test || !perm || !rng.state) {
        status = nde_error(ctx, NDE_ENOMEM, "nde_data_split: out of memory");
        goto done;
    }
    /* mt19937 keeps only the low 32 bits of its seed: fold the high half in
     * (a no-op for seeds below 2^32). GSL maps seed 0 to 4357. */
    gsl_rng_set(&rng, (unsigned long)((seed ^ (seed >> 32)) & 0xffffffffu));
    for (size_t i = 0; i < count; i++)
        perm[i] = i;
    gsl_ran_shuffle(&rng, perm, count, sizeof *perm);
    for (size_t i = 0; i < ntest; i++)
        in_test[perm[i]] = 1;
    *train = make_part(d, in_test, 0, count - ntest);
    *test = make_part(d, in_test, 1, ntest);
    if (!*train || !*test) {
        nde_dataset_destroy(*train);
        nde_dataset_destroy(*test);
        *train = *test = NULL;
        status = nde_error(ctx, NDE_ENOMEM, "nde_data_split: out of memory");
    }
done:
    free(rng.state);
    free(perm);
    free(in_test);
    return status;
}
