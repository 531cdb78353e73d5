/*
 * The explicit Runge-Kutta engine shared by every tableau solver: core's
 * implementation of the solver ops (nde/solver.h) from a tableau: one step
 * with its embedded error, FSAL reuse, dense output, the stiffness estimate
 * and the VJP of one step. Formulas are those of nde/solver.h.
 *
 * Hot path: no allocation and no indirect call except the field's eval;
 * every vector operation is a plain loop over n = batch * dim values.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "rk.h"

/*
 * A long state (a large batch) is combined on the field's threads, when
 * it has some (nde_field.pool): each thread takes whole chunks of
 * NDE_NORM_CHUNK values, so an error norm, summed chunk by chunk
 * (nde_error_norm), has the same bits on any number of threads. A state
 * of fewer than NDE_SPLIT_MIN values stays on the caller's thread.
 */
enum { RK_CHUNK = NDE_NORM_CHUNK };

static inline size_t rk_chunks(size_t n)
{
    return n > RK_CHUNK ? (n + RK_CHUNK - 1) / RK_CHUNK : 1;
}

static int rk_work_create(int stages, int total, size_t n_max,
                          nde_rk_work **out)
{
    /* k, kv, gv, kbar per stage (the extra ones too); g, gq, gbar, gqbar,
     * ynbar, errv, ynextv once; y0 with extra stages. */
    const size_t nbuf = 4 * (size_t)total + 7 + (total > stages);
    const size_t nsums = rk_chunks(n_max);
    nde_rk_work *w;
    double *p;

    *out = NULL;
    if (!(w = calloc(1, sizeof *w)))
        return NDE_ENOMEM;
    if (!(w->block = calloc(nbuf * n_max + nsums, sizeof(double)))) {
        free(w);
        return NDE_ENOMEM;
    }
    w->stages = stages;
    w->total = total;
    p = w->block;
    for (int i = 0; i < total; i++) {
        w->k[i] = p;    p += n_max;
        w->kv[i] = p;   p += n_max;
        w->gv[i] = p;   p += n_max;
        w->kbar[i] = p; p += n_max;
    }
    w->g = p;      p += n_max;
    w->gq = p;     p += n_max;
    w->gbar = p;   p += n_max;
    w->gqbar = p;  p += n_max;
    w->ynbar = p;  p += n_max;
    w->errv = p;   p += n_max;
    w->ynextv = p; p += n_max;
    w->y0 = total > stages ? p : NULL;
    p += total > stages ? n_max : 0;
    w->sums = p;
    *out = w;
    return NDE_OK;
}

static void rk_destroy(nde_solver *s)
{
    nde_rk_work *w = s->work;

    if (w) {
        free(w->block);
        free(w);
        s->work = NULL;
    }
}

static int rk_create(nde_solver *s)
{
    const int stages = s->type->tableau->stages;
    int rc = rk_work_create(stages, stages + nde_rk_extra_stages(s->type),
                            s->batch_max * s->field->dim,
                            (nde_rk_work **)&s->work);

    if (rc == NDE_OK)
        ((nde_rk_work *)s->work)->btilde2 = nde_rk_btilde2(s->type);
    return rc;
}

/* out = y + sum_{j<m} hc[j] k[j] (hc already scaled by h), for a stage
 * count m known at compile time: the j sum unrolls and the loop over the n
 * values vectorises, with no per-coefficient pass over memory. */
static inline __attribute__((always_inline)) void
rk_combine_m(double *restrict out, const double *restrict y, const double *hc,
             double *const *k, size_t n, const int m)
{
    for (size_t i = 0; i < n; i++) {
        double acc = y ? y[i] : 0.0;
#pragma GCC unroll 17
        for (int j = 0; j < m; j++)
            acc += hc[j] * k[j][i];
        out[i] = acc;
    }
}

/* out = y + sum_{j<m} hc[j] k[j]; y may be NULL (then 0). Inlined into
 * the step (saves a call per stage), called elsewhere. */
static inline __attribute__((always_inline)) void
rk_combine_inline(double *restrict out, const double *restrict y,
                  const double *hc, int m, double *const *k, size_t n)
{
    switch (m) {
    case 0: if (y) memcpy(out, y, n * sizeof *out); else memset(out, 0, n * sizeof *out); break;
    case 1: rk_combine_m(out, y, hc, k, n, 1); break;
    case 2: rk_combine_m(out, y, hc, k, n, 2); break;
    case 3: rk_combine_m(out, y, hc, k, n, 3); break;
    case 4: rk_combine_m(out, y, hc, k, n, 4); break;
    case 5: rk_combine_m(out, y, hc, k, n, 5); break;
    case 6: rk_combine_m(out, y, hc, k, n, 6); break;
    case 7: rk_combine_m(out, y, hc, k, n, 7); break;
    /* Vern7's and Vern9's rows and weights (10, 16 and, for dense output,
     * up to 25 stages): unrolled too, the same sums in the same order. */
    case 8: rk_combine_m(out, y, hc, k, n, 8); break;
    case 9: rk_combine_m(out, y, hc, k, n, 9); break;
    case 10: rk_combine_m(out, y, hc, k, n, 10); break;
    case 11: rk_combine_m(out, y, hc, k, n, 11); break;
    case 12: rk_combine_m(out, y, hc, k, n, 12); break;
    case 13: rk_combine_m(out, y, hc, k, n, 13); break;
    case 14: rk_combine_m(out, y, hc, k, n, 14); break;
    case 15: rk_combine_m(out, y, hc, k, n, 15); break;
    case 16: rk_combine_m(out, y, hc, k, n, 16); break;
    case 17: rk_combine_m(out, y, hc, k, n, 17); break;
    default: {
        /* Longer tableaus: one pass per coefficient. */
        if (y)
            memcpy(out, y, n * sizeof *out);
        else
            memset(out, 0, n * sizeof *out);
        for (int j = 0; j < m; j++) {
            const double c = hc[j];
            const double *restrict kj = k[j];
            for (size_t i = 0; i < n; i++)
                out[i] += c * kj[i];
        }
    }
    }
}

static void rk_combine(double *restrict out, const double *restrict y,
                       const double *hc, int m, double *const *k, size_t n)
{
    rk_combine_inline(out, y, hc, m, k, n);
}

/* One vector operation of a step over n values, cut into nparts. */
typedef struct rk_vec {
    double *out;
    const double *y, *y_next;
    const double *hc;
    int m;
    double *const *k;
    size_t n, nparts;
    double rtol, atol;
    double *sums;           /* error norms: a sum of squares per chunk */
} rk_vec;

/* The values [*i0, *i1) of part p: whole chunks. */
static void rk_part(const rk_vec *v, size_t p, size_t *i0, size_t *i1)
{
    const size_t nc = rk_chunks(v->n);
    const size_t c0 = nc * p / v->nparts, c1 = nc * (p + 1) / v->nparts;
    *i0 = c0 * RK_CHUNK;
    *i1 = c1 * RK_CHUNK < v->n ? c1 * RK_CHUNK : v->n;
}

static void rk_combine_part(void *arg, size_t p)
{
    const rk_vec *v = arg;
    double *kb[NDE_RK_MAX_STAGES];
    size_t i0, i1;
    rk_part(v, p, &i0, &i1);
    for (int j = 0; j < v->m; j++)
        kb[j] = v->k[j] + i0;
    rk_combine_inline(v->out + i0, v->y ? v->y + i0 : NULL, v->hc, v->m, kb,
                      i1 - i0);
}

/* Parts for n values on pool: one without threads or for a short state. */
static size_t rk_nparts(const nde_pool *pool, size_t n)
{
    if (!pool || n < NDE_SPLIT_MIN)
        return 1;
    const size_t t = nde_pool_threads(pool), nc = rk_chunks(n);
    return t < nc ? t : nc;
}

/* rk_combine on pool's threads (inlined: the step's hot path, where the
 * job is built only for a split). */
static inline __attribute__((always_inline)) void
rk_combine_on(nde_pool *pool, double *out, const double *y, const double *hc,
              int m, double *const *k, size_t n)
{
    const size_t nparts = rk_nparts(pool, n);
    if (nparts == 1) {
        rk_combine_inline(out, y, hc, m, k, n);
        return;
    }
    rk_vec v = {.out = out, .y = y, .hc = hc, .m = m, .k = k, .n = n,
                .nparts = nparts};
    nde_pool_run(pool, rk_combine_part, &v, v.nparts);
}

/* The scaled squares of err summed over n values (at most a chunk); with
 * check, NaN when y_next holds a non-finite value. */
static inline __attribute__((always_inline)) double
error_sum(const double *err, const double *y, const double *y_next, size_t n,
          double rtol, double atol, const int check)
{
    double sum = 0.0, poison = 0.0;

    for (size_t i = 0; i < n; i++) {
        const double a = fabs(y[i]), b = fabs(y_next[i]);
        const double q = err[i] / (atol + rtol * (a > b ? a : b));
        sum += q * q;
        if (check)
            poison += y_next[i] * 0.0; /* NaN iff y_next[i] is Inf or NaN */
    }
    return sum + poison;
}

/* err = sum_j hc[j] k[j] over n values (at most a chunk) and error_sum of
 * it in the same pass. */
static inline __attribute__((always_inline)) double
error_sum_m(double *restrict err, const double *restrict y,
            const double *restrict y_next, const double *hc, double *const *k,
            size_t n, double rtol, double atol, const int m)
{
    double sum = 0.0, poison = 0.0;

    for (size_t i = 0; i < n; i++) {
        const double a = fabs(y[i]), b = fabs(y_next[i]);
        double e = 0.0, q;
#pragma GCC unroll 17
        for (int j = 0; j < m; j++)
            e += hc[j] * k[j][i];
        err[i] = e;
        q = e / (atol + rtol * (a > b ? a : b));
        sum += q * q;
        poison += y_next[i] * 0.0;
    }
    return sum + poison;
}

/* The checked error sum of len values (at most a chunk); err is computed
 * first from the stages when k is set. */
static inline __attribute__((always_inline)) double
chunk_sum(double *err, const double *y, const double *yn, const double *hc,
          int m, double *const *k, size_t len, double rtol, double atol)
{
    if (!k)
        return error_sum(err, y, yn, len, rtol, atol, 1);
    switch (m) {
    case 4: return error_sum_m(err, y, yn, hc, k, len, rtol, atol, 4);
    case 7: return error_sum_m(err, y, yn, hc, k, len, rtol, atol, 7);
    case 11: return error_sum_m(err, y, yn, hc, k, len, rtol, atol, 11);
    case 17: return error_sum_m(err, y, yn, hc, k, len, rtol, atol, 17);
    default:
        rk_combine(err, NULL, hc, m, k, len);
        return error_sum(err, y, yn, len, rtol, atol, 1);
    }
}

/* chunk_sum of v's values [i, i + len). */
static double chunk_sum_at(const rk_vec *v, size_t i, size_t len)
{
    double *kb[NDE_RK_MAX_STAGES];
    for (int j = 0; v->k && j < v->m; j++)
        kb[j] = v->k[j] + i;
    return chunk_sum(v->out + i, v->y + i, v->y_next + i, v->hc, v->m,
                     v->k ? kb : NULL, len, v->rtol, v->atol);
}

static inline size_t chunk_len(size_t i, size_t end)
{
    return end - i < RK_CHUNK ? end - i : RK_CHUNK;
}

static void rk_error_part(void *arg, size_t p)
{
    const rk_vec *v = arg;
    size_t i0, i1;
    rk_part(v, p, &i0, &i1);
    for (size_t i = i0; i < i1; i += RK_CHUNK)
        v->sums[i / RK_CHUNK] = chunk_sum_at(v, i, chunk_len(i, i1));
}

/* The scaled RMS norm of err = sum_j hc[j] k[j] (of err as it is when k
 * is NULL), NaN when y_next holds a non-finite value; on pool's threads
 * for a long state, with sums[rk_chunks(n)] (NULL without a pool). */
static double rk_error(nde_pool *pool, double *err, const double *y,
                       const double *y_next, const double *hc, int m,
                       double *const *k, size_t n, double rtol, double atol,
                       double *sums)
{
    double total = 0.0;

    if (n <= RK_CHUNK) /* one chunk: the plain sum */
        return sqrt(chunk_sum(err, y, y_next, hc, m, k, n, rtol, atol) /
                    (double)n);
    rk_vec v = {.out = err, .y = y, .y_next = y_next, .hc = hc, .m = m,
                .k = k, .n = n, .nparts = rk_nparts(pool, n), .rtol = rtol,
                .atol = atol, .sums = sums};
    if (v.nparts == 1)
        for (size_t i = 0; i < n; i += RK_CHUNK)
            total += chunk_sum_at(&v, i, chunk_len(i, n));
    else {
        nde_pool_run(pool, rk_error_part, &v, v.nparts);
        for (size_t c = 0; c < rk_chunks(n); c++)
            total += sums[c];
    }
    return sqrt(total / (double)n);
}

static inline void rk_scale(double *hc, const double *coef, int m, double h)
{
    for (int j = 0; j < m; j++)
        hc[j] = h * coef[j];
}

/* Apply a pending FSAL hand-over: the last stage of the accepted step is
 * f(t + h, y_next), the next step's first stage. */
static inline void rk_take_fsal(nde_rk_work *w)
{
    if (w->fsal_pending) {
        double *tmp = w->k[0];
        w->k[0] = w->k[w->stages - 1];
        w->k[w->stages - 1] = tmp;
        w->fsal_pending = 0;
        w->k1_valid = 1;
    }
}

static int rk_derivative(nde_solver *s, const double *theta, double t,
                         const double *y, const double **f0)
{
    nde_rk_work *w = s->work;
    int rc;

    w->fsal_pending = 0;
    w->k1_valid = 0;
    w->last_valid = 0;
    w->extras_valid = 0;
    s->counts.nfe++;
    rc = nde_field_eval(s->field, t, y, theta, w->k[0], s->batch);
    if (rc != NDE_OK)
        return rc;
    w->k1_valid = 1;
    *f0 = w->k[0];
    return NDE_OK;
}

/* 0 when every value is finite, NaN otherwise. */
static double nonfinite_poison(const double *v, size_t n)
{
    double poison = 0.0;

    for (size_t i = 0; i < n; i++)
        poison += v[i] * 0.0;
    return poison;
}

/* The step's error norm under *norm (nde_error_norm_spec): rk_error of
 * the whole state, or the largest of its blocks', NaN when any value of
 * y_next is non-finite. */
static inline __attribute__((always_inline)) double
rk_norm(nde_pool *pool, const nde_norm_spec *norm, double *err,
        const double *y, const double *y_next, const double *hc, int m,
        double *const *k, size_t n, double *sums)
{
    double *kb[NDE_RK_MAX_STAGES];
    double max = 0.0, poison = 0.0;
    size_t off = 0;

    if (norm->nblocks == 0)
        return rk_error(pool, err, y, y_next, hc, m, k, n, norm->rtol,
                        norm->atol, sums);
    for (size_t b = 0; b < norm->nblocks; b++) {
        double e;
        for (int j = 0; k && j < m; j++)
            kb[j] = k[j] + off;
        e = rk_error(pool, err + off, y + off, y_next + off, hc, m,
                     k ? kb : NULL, norm->blocks[b], norm->rtol, norm->atol,
                     sums);
        poison += e * 0.0;  /* a NaN block must not lose the comparison */
        if (e > max)
            max = e;
        off += norm->blocks[b];
    }
    return max + poison + nonfinite_poison(y_next + off, n - off);
}

/* The larger of eest and the second estimate's norm (its err2 in
 * w->errv, free between step VJPs); NaN when either is. */
static double rk_second_estimate(nde_rk_work *w, nde_pool *pool,
                                 const nde_norm_spec *norm, const double *y,
                                 const double *y_next, double h, size_t n,
                                 double eest)
{
    const int ns = w->stages;
    double hc[NDE_RK_MAX_STAGES];
    double e2;

    rk_scale(hc, w->btilde2, ns, h);
    e2 = rk_norm(pool, norm, w->errv, y, y_next, hc, ns, w->k, n, w->sums);
    return e2 > eest || isnan(e2) ? e2 : eest;
}

static int rk_step(nde_solver *s, const double *theta, double t, double h,
                   const double *dw, const double *y, const double *aux,
                   double *y_next, double *aux_next, double *err,
                   const nde_norm_spec *norm, double *eest)
{
    const nde_rk_tableau *tab = s->type->tableau;
    nde_rk_work *w = s->work;
    nde_field *f = s->field;
    const int ns = tab->stages;
    const int last_fsal = tab->fsal ? ns - 1 : ns;
    const size_t batch = s->batch;
    const size_t n = batch * f->dim;
    /* the field's threads for a long state (NULL: the caller's alone) */
    nde_pool *pool = rk_nparts(f->pool, n) > 1 ? f->pool : NULL;
    double hc[NDE_RK_MAX_STAGES]; /* each use writes what it reads */
    int rc;

    (void)dw; (void)aux; (void)aux_next;
    w->last_valid = 0;
    w->extras_valid = 0;
    rk_take_fsal(w);
    if (!w->k1_valid) {
        s->counts.nfe++;
        if ((rc = nde_field_eval(f, t, y, theta, w->k[0], batch)) != NDE_OK)
            return rc;
        w->k1_valid = 1;
    }
    for (int i = 1; i < last_fsal; i++) {
        double *gi = i == tab->stiff_stage ? w->gq : w->g;
        rk_scale(hc, tab->a + (size_t)i * ns, i, h);
        rk_combine_on(pool, gi, y, hc, i, w->k, n);
        s->counts.nfe++;
        rc = nde_field_eval(f, t + tab->c[i] * h, gi, theta, w->k[i], batch);
        if (rc != NDE_OK)
            return rc;
    }
    rk_scale(hc, tab->b, ns, h);
    rk_combine_on(pool, y_next, y, hc, last_fsal, w->k, n);
    if (tab->fsal) {
        s->counts.nfe++;
        rc = nde_field_eval(f, t + h, y_next, theta, w->k[ns - 1], batch);
        if (rc != NDE_OK)
            return rc;
    }
    if (err && tab->btilde) {
        rk_scale(hc, tab->btilde, ns, h);
        if (eest)
            *eest = rk_norm(pool, norm, err, y, y_next, hc, ns, w->k, n,
                            w->sums);
        else
            rk_combine_on(pool, err, NULL, hc, ns, w->k, n);
        if (eest && w->btilde2)
            *eest = rk_second_estimate(w, pool, norm, y, y_next, h, n,
                                       *eest);
    }
    w->last_valid = 1;
    w->last_t = t;
    w->last_h = h;
    w->last_y = y;
    w->last_theta = theta;
    if (w->y0) {
        memcpy(w->y0, y, n * sizeof *y);
        w->dense_t = t;
        w->dense_h = h;
        w->dense_theta = theta;
    }
    return NDE_OK;
}

static void rk_accept(nde_solver *s)
{
    nde_rk_work *w = s->work;

    /* The swap waits for the next step so that dense output of the step
     * just accepted stays available. */
    w->last_valid = 0;
    if (s->type->tableau->fsal) {
        w->fsal_pending = 1;
    } else {
        w->k1_valid = 0;
    }
}

static void rk_invalidate(nde_solver *s)
{
    nde_rk_work *w = s->work;

    w->k1_valid = 0;
    w->fsal_pending = 0;
    w->last_valid = 0;
}

/* hc[i] = h b_i(theta) for i < total, b_i of degree deg, a constant
 * where inlined (the Horner loop unrolls). */
static inline __attribute__((always_inline)) void
rk_dense_weights_deg(const double *dense, int total, double theta, double h,
                     double *hc, const int deg)
{
    for (int i = 0; i < total; i++) {
        const double *r = dense + (size_t)i * (size_t)deg;
        double p = 0.0;
#pragma GCC unroll 16
        for (int j = deg - 1; j >= 0; j--)
            p = (p + r[j]) * theta;
        hc[i] = h * p;
    }
}

void nde_rk_dense_weights(const nde_rk_tableau *tab, int total, double theta,
                          double h, double *hc)
{
    const double *r = tab->dense;

    /* the degrees of bs3 and rk4 (3), dopri5 and tsit5 (4) */
    switch (tab->dense_degree) {
    case 3: rk_dense_weights_deg(r, total, theta, h, hc, 3); break;
    case 4: rk_dense_weights_deg(r, total, theta, h, hc, 4); break;
    default:
        rk_dense_weights_deg(r, total, theta, h, hc, tab->dense_degree);
    }
}

/* Row i of a (j < i) and node c_i of the stages after the step's own:
 * the extra ones, row e of a_extra for stage s + e. */
static inline const double *rk_row(const nde_rk_tableau *tab, int total,
                                   int i)
{
    const int ns = tab->stages;
    return i < ns ? tab->a + (size_t)i * ns
                  : tab->a_extra + (size_t)(i - ns) * total;
}

static inline double rk_node(const nde_rk_tableau *tab, int i)
{
    return i < tab->stages ? tab->c[i] : tab->c_extra[i - tab->stages];
}

/* The extra stages of the last step, once per step. The solver is const
 * for callers of dense output; the extra stages are its own cache of that
 * step (OrdinaryDiffEq's lazy interpolation), and their evaluations count
 * in its nfe. A pending FSAL swap has not happened yet: w->k is still the
 * last step's. */
static int rk_extras(const nde_solver *cs)
{
    nde_solver *s = (nde_solver *)cs;
    const nde_rk_tableau *tab = s->type->tableau;
    nde_rk_work *w = s->work;
    const double h = w->dense_h;
    const size_t n = s->batch * s->field->dim;
    double hc[NDE_RK_MAX_STAGES]; /* rk_scale sets those each stage reads */
    int rc;

    if (w->extras_valid || w->total == w->stages)
        return NDE_OK;
    for (int i = w->stages; i < w->total; i++) {
        rk_scale(hc, rk_row(tab, w->total, i), i, h);
        rk_combine_on(s->field->pool, w->g, w->y0, hc, i, w->k, n);
        s->counts.nfe++;
        rc = nde_field_eval(s->field, w->dense_t + rk_node(tab, i) * h, w->g,
                            w->dense_theta, w->k[i], s->batch);
        if (rc != NDE_OK)
            return rc;
    }
    w->extras_valid = 1;
    return NDE_OK;
}

static int rk_dense(const nde_solver *s, const double *y, double h,
                    const double *const *k, double theta, double *out)
{
    const nde_rk_work *w = s->work;
    /* set for the w->total stages the sum reads (nde_rk_dense_weights):
     * not zeroed, as this runs once per output point */
    double hc[NDE_RK_MAX_STAGES];
    int rc;

    if (!k && (rc = rk_extras(s)) != NDE_OK) {
        /* NaN, for callers that serve it without looking at rc */
        for (size_t i = 0; i < s->batch * s->field->dim; i++)
            out[i] = NAN;
        return rc;
    }
    nde_rk_dense_weights(s->type->tableau, w->total, theta, h, hc);
    /* A pending FSAL swap has not happened yet: w->k is still the last
     * step's. */
    rk_combine_on(s->field->pool, out, y, hc, w->total,
                  k ? (double *const *)k : w->k, s->batch * s->field->dim);
    return NDE_OK;
}

/* For recording: the extra stages are evaluated here (NaN where that
 * fails, so that the recorded dense output shows it). */
static void rk_last_stages(const nde_solver *s, const double **k)
{
    const nde_rk_work *w = s->work;

    if (rk_extras(s) != NDE_OK)
        for (int i = w->stages; i < w->total; i++)
            for (size_t m = 0; m < s->batch * s->field->dim; m++)
                w->k[i][m] = NAN;
    for (int i = 0; i < w->total; i++)
        k[i] = w->k[i];
}

static int rk_stiffness(const nde_solver *s, const double *y_next,
                        double *out)
{
    const nde_rk_tableau *tab = s->type->tableau;
    const nde_rk_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double *ks, *kq;
    double num = 0.0, den = 0.0;

    /* A pending FSAL swap has not happened yet, so k[s-1] is still this
     * step's last stage. */
    ks = w->k[tab->stages - 1];
    kq = w->k[tab->stiff_stage];
    for (size_t i = 0; i < n; i++) {
        const double du = ks[i] - kq[i], dg = y_next[i] - w->gq[i];
        num += du * du;
        den += dg * dg;
    }
    /* RMS(du) / RMS(dg): the 1/n factors cancel. */
    *out = den > 0.0 ? sqrt(num / den) / tab->stability_size : 0.0;
    return NDE_OK;
}

double nde_error_norm(const double *err, const double *y, const double *y_next,
                      size_t n, double rtol, double atol)
{
    double total = 0.0;

    for (size_t i = 0; i < n; i += RK_CHUNK)
        total += error_sum(err + i, y + i, y_next + i, chunk_len(i, n), rtol,
                           atol, 0);
    return sqrt(total / (double)n);
}

double nde_error_norm_spec(const nde_norm_spec *norm, const double *err,
                           const double *y, const double *y_next, size_t n)
{
    /* k NULL: err is only read */
    return rk_norm(NULL, norm, (double *)err, y, y_next, NULL, 0, NULL, n,
                   NULL);
}

/*
 * Reverse mode through one step. Forward (recomputed here):
 *   g_i = y + h sum_j a_ij k_j,  k_i = f(t + c_i h, g_i)
 *   y_next = y + h sum_i b_i k_i,  err = h sum_i btilde_i k_i
 *   EEst = sqrt(mean (err/sc)^2),  sc = atol + rtol max(|y|, |y_next|)
 *   S = sqrt(sum u^2 / sum w^2) / stab,  u = k_s - k_q,  w = y_next - g_q
 * For FSAL tableaus the last stage's argument is y + h sum_j a_sj k_j, the
 * same numbers as y_next (a_s = b), so it is treated as a stage like any
 * other.
 */
static int step_vjp(nde_solver *s, const double *theta, double t, double h,
                    const double *y, int reuse, const nde_step_cotangent *ct,
                    double *ybar, double *thetabar);

static int rk_step_vjp(nde_solver *s, const double *theta, double t, double h,
                       const double *dw, const double *y, const double *aux,
                       const nde_step_cotangent *ct, double *ybar,
                       double *auxbar, double *thetabar)
{
    (void)dw; (void)aux; (void)auxbar;
    return step_vjp(s, theta, t, h, y, 0, ct, ybar, thetabar);
}

static int rk_last_step_vjp(nde_solver *s, const nde_step_cotangent *ct,
                            double *ybar, double *auxbar, double *thetabar)
{
    const nde_rk_work *w = s->work;

    (void)auxbar;
    if (!w->last_valid)
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s': no step to differentiate (the last "
                         "one was accepted or none was taken)",
                         s->type->info.name);
    return step_vjp(s, w->last_theta, w->last_t, w->last_h, w->last_y, 1, ct,
                    ybar, thetabar);
}

static int step_vjp(nde_solver *s, const double *theta, double t, double h,
                    const double *y, int reuse, const nde_step_cotangent *ct,
                    double *ybar, double *thetabar)
{
    const double rtol = ct->rtol, atol = ct->atol;
    const double *ybar_next = ct->y_next;
    const double ebar = ct->eest, sbar = ct->stiffness;
    const nde_dense_cotangent *dc = ct->dense;
    const size_t ndc = ct->ndense;
    const nde_rk_tableau *tab = s->type->tableau;
    nde_rk_work *w = s->work;
    nde_field *f = s->field;
    const int ns = tab->stages, q = tab->stiff_stage;
    /* the extra stages of dense output count when it has cotangents */
    const int nst = ndc > 0 ? w->total : ns;
    const size_t batch = s->batch;
    const size_t n = batch * f->dim;
    double hc[NDE_RK_MAX_STAGES] = {0};
    int rc;

    if (ebar != 0.0 && !tab->btilde)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver '%s' has no error estimate to differentiate",
                         s->type->info.name);
    if (sbar != 0.0 && q < 0)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver '%s' has no stiffness estimate to "
                         "differentiate", s->type->info.name);
    if (ndc > 0 && tab->dense_degree == 0)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver '%s' has no dense output to differentiate",
                         s->type->info.name);

    /* Forward: stage arguments and stages (the last step's, when reused,
     * its extra stages evaluated first if they were not yet). */
    if (reuse && nst > ns && (rc = rk_extras(s)) != NDE_OK)
        return rc;
    memcpy(w->gv[0], y, n * sizeof *y);
    for (int i = 0; i < nst; i++) {
        if (i > 0) {
            rk_scale(hc, rk_row(tab, w->total, i), i, h);
            rk_combine(w->gv[i], y, hc, i, w->kv, n);
        }
        if (reuse) {
            memcpy(w->kv[i], w->k[i], n * sizeof(double));
            continue;
        }
        s->counts.nfe++;
        rc = nde_field_eval(f, t + rk_node(tab, i) * h, w->gv[i], theta,
                            w->kv[i], batch);
        if (rc != NDE_OK)
            return rc;
    }
    rk_scale(hc, tab->b, ns, h);
    rk_combine(w->ynextv, y, hc, ns, w->kv, n);

    for (int i = 0; i < nst; i++)
        memset(w->kbar[i], 0, n * sizeof(double));
    if (ybar_next)
        memcpy(w->ynbar, ybar_next, n * sizeof(double));
    else
        memset(w->ynbar, 0, n * sizeof(double));

    /* EEst: through err and through the scale. */
    if (ebar != 0.0) {
        double sum = 0.0, eest;
        rk_scale(hc, tab->btilde, ns, h);
        rk_combine(w->errv, NULL, hc, ns, w->kv, n);
        for (size_t i = 0; i < n; i++) {
            const double a = fabs(y[i]), b = fabs(w->ynextv[i]);
            const double r = w->errv[i] / (atol + rtol * (a > b ? a : b));
            sum += r * r;
        }
        eest = sqrt(sum / (double)n);
        if (eest > 0.0) {
            const double cst = ebar / ((double)n * eest);
            for (size_t i = 0; i < n; i++) {
                const double yi = y[i], yn = w->ynextv[i];
                const double a = fabs(yi), b = fabs(yn);
                const double sc = atol + rtol * (a > b ? a : b);
                const double r = w->errv[i] / sc;
                const double scbar = -cst * r * r / sc;
                w->errv[i] = cst * r / sc; /* now d(ebar EEst)/d err */
                if (a >= b) {
                    if (ybar)
                        ybar[i] += scbar * rtol * (yi > 0 ? 1.0 : yi < 0 ? -1.0 : 0.0);
                } else {
                    w->ynbar[i] += scbar * rtol * (yn > 0 ? 1.0 : -1.0);
                }
            }
            for (int j = 0; j < ns; j++) {
                const double c = h * tab->btilde[j];
                if (c == 0.0)
                    continue;
                for (size_t i = 0; i < n; i++)
                    w->kbar[j][i] += c * w->errv[i];
            }
        }
    }

    /* Stiffness: S = sqrt(N2 / D2) / stab. */
    if (q >= 0)
        memset(w->gqbar, 0, n * sizeof(double));
    if (sbar != 0.0) {
        const double *ks = w->kv[ns - 1], *kq = w->kv[q], *gq = w->gv[q];
        double n2 = 0.0, d2 = 0.0;
        for (size_t i = 0; i < n; i++) {
            const double du = ks[i] - kq[i], dg = w->ynextv[i] - gq[i];
            n2 += du * du;
            d2 += dg * dg;
        }
        if (d2 > 0.0) {
            const double st = sqrt(n2 / d2) / tab->stability_size;
            const double cu = n2 > 0.0 ? sbar * st / n2 : 0.0;
            const double cg = -sbar * st / d2;
            for (size_t i = 0; i < n; i++) {
                const double du = ks[i] - kq[i], dg = w->ynextv[i] - gq[i];
                w->kbar[ns - 1][i] += cu * du;
                w->kbar[q][i] -= cu * du;
                w->ynbar[i] += cg * dg;
                w->gqbar[i] -= cg * dg;
            }
        }
    }

    /* y_next = y + h sum b_i k_i */
    if (ybar)
        for (size_t i = 0; i < n; i++)
            ybar[i] += w->ynbar[i];
    for (int j = 0; j < ns; j++) {
        const double c = h * tab->b[j];
        if (c == 0.0)
            continue;
        for (size_t i = 0; i < n; i++)
            w->kbar[j][i] += c * w->ynbar[i];
    }

    /* Dense outputs y(theta) = y + h sum b_i(theta) k_i. */
    for (size_t d = 0; d < ndc; d++) {
        nde_rk_dense_weights(tab, nst, dc[d].theta, h, hc);
        if (ybar)
            for (size_t i = 0; i < n; i++)
                ybar[i] += dc[d].g[i];
        for (int j = 0; j < nst; j++) {
            if (hc[j] == 0.0)
                continue;
            for (size_t i = 0; i < n; i++)
                w->kbar[j][i] += hc[j] * dc[d].g[i];
        }
    }

    /* Stages in reverse: gbar_i = kbar_i^T df/dy (+ direct terms), then
     * g_i = y + h sum_j a_ij k_j. */
    for (int i = nst - 1; i >= 0; i--) {
        const double *row = rk_row(tab, w->total, i);
        double *gbar = w->gbar;
        if (i == q)
            memcpy(gbar, w->gqbar, n * sizeof(double));
        else
            memset(gbar, 0, n * sizeof(double));
        s->counts.nvjp++;
        rc = nde_field_vjp(f, t + rk_node(tab, i) * h, w->gv[i], theta,
                           w->kbar[i], gbar, thetabar, batch);
        if (rc != NDE_OK)
            return rc;
        if (ybar)
            for (size_t m = 0; m < n; m++)
                ybar[m] += gbar[m];
        for (int j = 0; j < i; j++) {
            const double c = h * row[j];
            if (c == 0.0)
                continue;
            for (size_t m = 0; m < n; m++)
                w->kbar[j][m] += c * gbar[m];
        }
    }
    return NDE_OK;
}

/* The engine's table. Operations the tableau cannot back (error estimate,
 * dense output, stiffness) are left out per tableau by nde_rk_ops_fill. */
void nde_rk_ops_fill(const nde_solver_type *type, nde_solver_ops *ops)
{
    const nde_rk_tableau *tab = type->tableau;
    const nde_solver_ops all = {
        .aux = 0, .stages = tab->stages + nde_rk_extra_stages(type),
        .create = rk_create, .destroy = rk_destroy, .step = rk_step,
        .derivative = rk_derivative, .accept = rk_accept,
        .invalidate = rk_invalidate, .dense = rk_dense,
        .last_stages = rk_last_stages, .stiffness = rk_stiffness,
        .step_vjp = rk_step_vjp, .last_step_vjp = rk_last_step_vjp};

    *ops = all;
    if (tab->dense_degree == 0) {
        ops->dense = NULL;
        ops->last_stages = NULL;
    }
    if (tab->stiff_stage < 0)
        ops->stiffness = NULL;
}
