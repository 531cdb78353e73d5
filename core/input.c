/* input.c - time-dependent inputs of a field (nde/input.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/input.h"

struct nde_input {
    nde_ctx *ctx;
    size_t rows_max, m, knots_max;
    int kind;
    size_t *nknots;  /* rows_max: knots of each row, 0 = unset           */
    double *t;       /* rows_max x knots_max                              */
    double *u;       /* rows_max x knots_max x m                          */
    long *seg;       /* rows_max: selected segment, -1 = before t_0       */
    size_t rows;     /* rows in use                                       */
    size_t row0;     /* per-row solves: the row a batch of one reads      */
    double *knots;   /* rows_max x knots_max: the union of the rows' knots */
    size_t nknots_all;
    double sel_t, sel_h; /* the last selection                           */
};

int nde_input_create(nde_ctx *ctx, size_t rows_max, size_t channels,
                     size_t knots_max, int kind, nde_input **out)
{
    nde_input *in;
    const size_t n = rows_max * knots_max;

    *out = NULL;
    if (rows_max == 0 || channels == 0 || knots_max == 0 ||
        (kind != NDE_INPUT_CONSTANT && kind != NDE_INPUT_LINEAR))
        return nde_error(ctx, NDE_EINVAL, "input: %zu rows, %zu channels, "
                         "%zu knots, kind %d (expected positive sizes and "
                         "constant or linear)", rows_max, channels,
                         knots_max, kind);
    if (!(in = calloc(1, sizeof *in)))
        return nde_error(ctx, NDE_ENOMEM, "input: out of memory");
    in->ctx = ctx;
    in->rows_max = rows_max;
    in->m = channels;
    in->knots_max = knots_max;
    in->kind = kind;
    if (!(in->nknots = calloc(rows_max, sizeof *in->nknots)) ||
        !(in->t = malloc(n * sizeof *in->t)) ||
        !(in->u = malloc(n * channels * sizeof *in->u)) ||
        !(in->seg = calloc(rows_max, sizeof *in->seg)) ||
        !(in->knots = malloc(n * sizeof *in->knots))) {
        nde_input_destroy(in);
        return nde_error(ctx, NDE_ENOMEM, "input: out of memory");
    }
    *out = in;
    return NDE_OK;
}

void nde_input_destroy(nde_input *in)
{
    if (!in)
        return;
    free(in->nknots);
    free(in->t);
    free(in->u);
    free(in->seg);
    free(in->knots);
    free(in);
}

int nde_input_set_row(nde_input *in, size_t r, size_t nknots, const double *t,
                      const double *u)
{
    if (r >= in->rows_max || nknots == 0 || nknots > in->knots_max)
        return nde_error(in->ctx, NDE_EINVAL, "input: row %zu with %zu "
                         "knots (the input holds %zu rows of 1..%zu knots)",
                         r, nknots, in->rows_max, in->knots_max);
    for (size_t k = 0; k < nknots; k++)
        if (!isfinite(t[k]) || (k > 0 && !(t[k] > t[k - 1])))
            return nde_error(in->ctx, NDE_EINVAL, "input: row %zu: knot "
                             "time %zu (%g) is not finite or not after the "
                             "one before", r, k, t[k]);
    for (size_t k = 0; k < nknots * in->m; k++)
        if (!isfinite(u[k]))
            return nde_error(in->ctx, NDE_EINVAL, "input: row %zu: value "
                             "%zu is not finite", r, k);
    memcpy(in->t + r * in->knots_max, t, nknots * sizeof *t);
    memcpy(in->u + r * in->knots_max * in->m, u,
           nknots * in->m * sizeof *u);
    in->nknots[r] = nknots;
    return NDE_OK;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int nde_input_use_rows(nde_input *in, size_t rows)
{
    size_t n = 0, kept = 0;

    if (rows == 0 || rows > in->rows_max)
        return nde_error(in->ctx, NDE_EINVAL, "input: %zu rows in use, "
                         "expected 1..%zu", rows, in->rows_max);
    for (size_t r = 0; r < rows; r++) {
        if (in->nknots[r] == 0)
            return nde_error(in->ctx, NDE_EINVAL, "input: row %zu is not "
                             "set", r);
        memcpy(in->knots + n, in->t + r * in->knots_max,
               in->nknots[r] * sizeof *in->knots);
        n += in->nknots[r];
    }
    qsort(in->knots, n, sizeof *in->knots, cmp_double);
    for (size_t k = 0; k < n; k++)
        if (kept == 0 || in->knots[k] != in->knots[kept - 1])
            in->knots[kept++] = in->knots[k];
    in->nknots_all = kept;
    in->rows = rows;
    in->row0 = 0;
    nde_input_select(in, in->knots[0], 0.0);
    return NDE_OK;
}

size_t nde_input_channels(const nde_input *in)
{
    return in->m;
}

int nde_input_kind(const nde_input *in)
{
    return in->kind;
}

size_t nde_input_knots(const nde_input *in, const double **t)
{
    *t = in->knots;
    return in->nknots_all;
}

/* The number of knots of ts[0..n) at or before x, less one: the segment
 * [ts[k], ts[k+1]) holding x, -1 before ts[0]. */
static long segment_of(const double *ts, size_t n, double x)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (ts[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (long)lo - 1;
}

/* segment_of, tried first at segment k, the next and the one before (a
 * solver's selections mostly stay on a segment or move to a neighbour:
 * a binary search for each of 2048 rows at each selection cost 1.3% of
 * an sde_gan.ini iteration); the segment holding x is the only j with
 * ts[j] <= x < ts[j+1] (ts[-1] = -inf, ts[n] = +inf), so the result is
 * segment_of's. */
static long segment_near(const double *ts, size_t n, double x, long k)
{
    static const long step[3] = {0, 1, -1};
    for (int q = 0; q < 3; q++) {
        const long j = k + step[q];
        if (j >= -1 && j < (long)n && (j < 0 || ts[j] <= x) &&
            (j + 1 == (long)n || x < ts[j + 1]))
            return j;
    }
    return segment_of(ts, n, x);
}

void nde_input_select(nde_input *in, double t, double h)
{
    const double x = t + 0.5 * h;

    in->sel_t = t;
    in->sel_h = h;
    for (size_t r = 0; r < in->rows; r++)
        in->seg[r] = segment_near(in->t + r * in->knots_max, in->nknots[r],
                                  x, in->seg[r]);
}

void nde_input_set_row0(nde_input *in, size_t row0)
{
    in->row0 = row0;
}

void nde_input_value(const nde_input *in, size_t r, double t, double *u)
{
    const size_t row = in->row0 + r, m = in->m, n = in->nknots[row];
    const double *ts = in->t + row * in->knots_max;
    const double *us = in->u + row * in->knots_max * m;
    const long k = in->seg[row];

    if (k < 0 || (size_t)k + 1 >= n || in->kind == NDE_INPUT_CONSTANT) {
        const size_t j = k < 0 ? 0 : (size_t)k;
        memcpy(u, us + j * m, m * sizeof *u);
        return;
    }
    {
        const double w = (t - ts[k]) / (ts[k + 1] - ts[k]);
        const double *a = us + (size_t)k * m, *b = a + m;
        for (size_t i = 0; i < m; i++)
            u[i] = a[i] + w * (b[i] - a[i]);
    }
}

void nde_input_selected(const nde_input *in, double *t, double *h)
{
    *t = in->sel_t;
    *h = in->sel_h;
}

int nde_input_has_knot(const nde_input *in, double t)
{
    const long k = segment_of(in->knots, in->nknots_all, t);
    return k >= 0 && in->knots[k] == t;
}

/* Where t falls on a linear row of n knots ts: u(t) = (1 - w) u_k + w
 * u_k+1 as u_k + w (u_k+1 - u_k), k1 = k0 + 1; held before the first
 * knot and after the last (k1 = k0, w = 0). near: the row's selected
 * segment, where a step's ends mostly are (segment_near). */
static void linear_place(const double *ts, size_t n, double t, long near,
                         size_t *k0, size_t *k1, double *w)
{
    const long k = segment_near(ts, n, t, near);

    if (k < 0 || (size_t)k + 1 >= n) {
        *k0 = *k1 = k < 0 ? 0 : (size_t)k;
        *w = 0.0;
        return;
    }
    *k0 = (size_t)k;
    *k1 = *k0 + 1;
    *w = (t - ts[k]) / (ts[k + 1] - ts[k]);
}

int nde_input_increment(const nde_input *in, size_t r, double ta, double tb,
                        size_t n, double *du)
{
    const size_t row = in->row0 + r, m = in->m;
    const double *ts = in->t + row * in->knots_max;
    const double *us = in->u + row * in->knots_max * m;
    size_t a0, a1, b0, b1;
    double wa, wb;

    if (in->kind != NDE_INPUT_LINEAR || n > m)
        return nde_error(in->ctx, NDE_EINVAL, "input: increments of %zu "
                         "channel%s of a %s input of %zu (a control path "
                         "must be linear, with at least the channels asked)",
                         n, n == 1 ? "" : "s",
                         in->kind == NDE_INPUT_LINEAR ? "linear" : "constant",
                         m);
    linear_place(ts, in->nknots[row], ta, in->seg[row], &a0, &a1, &wa);
    linear_place(ts, in->nknots[row], tb, in->seg[row], &b0, &b1, &wb);
    for (size_t i = 0; i < n; i++) {
        const double ua = us[a0 * m + i] +
                          wa * (us[a1 * m + i] - us[a0 * m + i]);
        const double ub = us[b0 * m + i] +
                          wb * (us[b1 * m + i] - us[b0 * m + i]);
        du[i] = ub - ua;
    }
    return NDE_OK;
}
