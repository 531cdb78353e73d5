/*
 * brownian_split.c - split refinement of the Brownian Interval
 * (nde_brownian_set_split; the tree and the API are brownian.c's).
 * Between grid points the path is refined at the query times themselves,
 * as in the Brownian Interval of Kidger et al. (Sec. 4: an interval
 * splits where it is queried): a
 * time strictly inside cell k that the cell does not hold yet becomes the
 * cell's next split, W there drawn from the Brownian bridge between the
 * held points on either side of it, with the normals of the stream (seed,
 * k, the split's ordinal in the cell). The cell's ends come from the tree
 * above. A cell's record of split times is kept; its values are rebuilt
 * by replaying the splits in order (the same arithmetic, so the same
 * bits) when a query returns to a cell that no slot holds.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brownian_impl.h"

#define BM_SPLIT_KEY (UINT64_C(1) << 62)

/* Cell k's entry in a map of cap entries (a power of 2, not full), or
 * the free entry where it goes. */
static bm_history *bm_history_slot(bm_history *map, size_t cap, size_t k)
{
    size_t i = bm_mix(k) & (cap - 1);

    while (map[i].k != SIZE_MAX && map[i].k != k)
        i = (i + 1) & (cap - 1);
    return &map[i];
}

/* Cell k's records, or NULL: it has none. */
static const bm_history *bm_history_find(const nde_brownian *bm, size_t k)
{
    const bm_history *h;

    if (!bm->map_cap)
        return NULL;
    h = bm_history_slot(bm->map, bm->map_cap, k);
    return h->k == k ? h : NULL;
}

/* Room for one more record and one more cell in the map (kept at most
 * 3/4 full). */
static int bm_history_reserve(nde_brownian *bm)
{
    if (bm->nrec == BM_NO_RECORD)
        return nde_error(bm->ctx, NDE_ENOMEM,
                         "brownian: more than %u split times on one path",
                         BM_NO_RECORD - 1);
    if (bm->nrec == bm->rec_cap) {
        size_t cap = bm->rec_cap ? 2 * bm->rec_cap : 64;
        bm_record *r = cap < SIZE_MAX / 2 / sizeof *r
                           ? realloc(bm->rec, cap * sizeof *r) : NULL;
        if (!r)
            return nde_error(bm->ctx, NDE_ENOMEM,
                             "brownian: out of memory for %zu split times",
                             cap);
        bm->rec = r;
        bm->rec_cap = cap;
    }
    if (4 * (bm->map_used + 1) > 3 * bm->map_cap) {
        size_t cap = bm->map_cap ? 2 * bm->map_cap : 64;
        bm_history *m = cap < SIZE_MAX / 2 / sizeof *m
                            ? malloc(cap * sizeof *m) : NULL;
        if (!m)
            return nde_error(bm->ctx, NDE_ENOMEM,
                             "brownian: out of memory for the splits of "
                             "%zu cells", bm->map_used + 1);
        for (size_t i = 0; i < cap; i++)
            m[i].k = SIZE_MAX;
        for (size_t i = 0; i < bm->map_cap; i++)
            if (bm->map[i].k != SIZE_MAX)
                *bm_history_slot(m, cap, bm->map[i].k) = bm->map[i];
        free(bm->map);
        bm->map = m;
        bm->map_cap = cap;
    }
    return NDE_OK;
}

/* Append split time t to cell k's record (room reserved). */
static void bm_history_append(nde_brownian *bm, size_t k, double t)
{
    bm_history *h = bm_history_slot(bm->map, bm->map_cap, k);
    uint32_t r = (uint32_t)bm->nrec++;

    bm->rec[r].t = t;
    bm->rec[r].next = BM_NO_RECORD;
    if (h->k == SIZE_MAX) {
        h->k = k;
        h->head = r;
        bm->rec[r].ordinal = 0;
        bm->map_used++;
    } else {
        bm->rec[r].ordinal = bm->rec[h->tail].ordinal + 1;
        bm->rec[h->tail].next = r;
    }
    h->tail = r;
}

static int bm_slot_reserve(nde_brownian *bm, bm_slot *sl, size_t q)
{
    double *t, *w, *a;
    size_t *row, cap;

    if (q <= sl->cap)
        return NDE_OK;
    cap = sl->cap ? sl->cap : 8;
    while (cap < q)
        cap *= 2;
    if (cap > SIZE_MAX / 2 / sizeof(double) / bm->n_max)
        return nde_error(bm->ctx, NDE_ENOMEM,
                         "brownian: %zu split points in one cell", q);
    t = realloc(sl->t, cap * sizeof *t);
    if (t)
        sl->t = t;
    row = t ? realloc(sl->row, cap * sizeof *row) : NULL;
    if (row)
        sl->row = row;
    w = row ? realloc(sl->w, cap * bm->n_max * sizeof *w) : NULL;
    if (w)
        sl->w = w;
    a = w ? realloc(sl->a, cap * bm->n_max * sizeof *a) : NULL;
    if (!a)
        return nde_error(bm->ctx, NDE_ENOMEM,
                         "brownian: out of memory for %zu split points of "
                         "%zu channels", cap, bm->n_max);
    sl->a = a;
    sl->cap = cap;
    return NDE_OK;
}

/* The place among the slot's sorted times of the first at or after t
 * (t within the cell): t's own if held, else where it goes. */
static size_t bm_slot_index(const bm_slot *sl, double t)
{
    size_t lo = 0, hi = sl->q - 1;

    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (sl->t[m] < t)
            lo = m + 1;
        else
            hi = m;
    }
    return lo;
}

/* (w, A) of the piece between the held rows r0 < r1 (times t0 < t1) of
 * the slot: with I (bm_slot.a), int_t0^t1 (W(r) - W(t0)) dr = I(t1) -
 * I(t0) - (t1 - t0) (W(t0) - W(g)), and A = that - (t1 - t0) w / 2. */
static void bm_slot_piece(const nde_brownian *bm, const bm_slot *sl,
                          size_t r0, size_t r1, double t0, double t1,
                          double *w, double *A)
{
    const size_t n = bm->n;
    const double h = t1 - t0, *wg = sl->w;
    const double *w0 = sl->w + r0 * n, *w1 = sl->w + r1 * n;
    const double *i0 = sl->a + r0 * n, *i1 = sl->a + r1 * n;

    for (size_t c = 0; c < n; c++) {
        w[c] = w1[c] - w0[c];
        A[c] = i1[c] - i0[c] - h * (w0[c] - wg[c]) - 0.5 * h * w[c];
    }
}

/* W(t) and I(t) of a new row r at t between the held rows rl, ru (times
 * s, u) from the law of the left piece's (W1, A1) given the piece's
 * (W, A) (bm_area_split, stream key): W(t) = W(s) + W1, I(t) = I(s) +
 * (t - s) (W(s) - W(g) + W1 / 2) + A1. */
static void bm_slot_area(nde_brownian *bm, bm_slot *sl, size_t rl,
                         size_t ru, size_t r, double s, double t, double u,
                         uint64_t key)
{
    const size_t n = bm->n;
    const double *wl = sl->w + rl * n, *il = sl->a + rl * n, *wg = sl->w;
    double *w = bm->acc[0], *A = bm->acc[1], *w1 = bm->acc[2];
    double *out = sl->w + r * n, *ir = sl->a + r * n;

    bm_slot_piece(bm, sl, rl, ru, s, u, w, A);
    bm_area_split(bm, key, t - s, u - t, w, A, w1, ir);
    for (size_t c = 0; c < n; c++) {
        out[c] = wl[c] + w1[c];
        ir[c] = il[c] + (t - s) * (wl[c] - wg[c] + 0.5 * w1[c]) + ir[c];
    }
}

/* Insert time t, the cell's split number j, into the slot (room
 * reserved): W(t) from the bridge between the held neighbours (with the
 * area, from their (W, A): bm_slot_area). Returns its row. */
static size_t bm_slot_insert(nde_brownian *bm, bm_slot *sl, double t,
                             size_t j)
{
    const size_t hi = bm_slot_index(sl, t), lo = hi - 1, r = sl->q;
    const size_t n = bm->n;
    const uint64_t key =
        bm_key(bm->seed_key, (uint64_t)sl->k | BM_SPLIT_KEY, j);
    const double *wl, *wu;
    double *out = sl->w + r * n, *z = bm->z[0], s, u, f, sd;

    s = sl->t[lo];      /* t[lo] < t < t[hi] */
    u = sl->t[hi];
    if (bm->area) {
        bm_slot_area(bm, sl, sl->row[lo], sl->row[hi], r, s, t, u, key);
    } else {
        wl = sl->w + sl->row[lo] * n;
        wu = sl->w + sl->row[hi] * n;
        f = (t - s) / (u - s);
        sd = sqrt((t - s) * (u - t) / (u - s));
        bm_normals(bm, key, n, z);
        for (size_t c = 0; c < n; c++)
            out[c] = wl[c] + f * (wu[c] - wl[c]) + sd * z[c];
    }
    memmove(sl->t + hi + 1, sl->t + hi, (sl->q - hi) * sizeof *sl->t);
    memmove(sl->row + hi + 1, sl->row + hi, (sl->q - hi) * sizeof *sl->row);
    sl->t[hi] = t;
    sl->row[hi] = r;
    sl->q++;
    bm->nodes++;
    return r;
}

/* Load cell k into slot sl: its ends from the tree (walking path pa),
 * then its recorded splits replayed. */
static int bm_slot_load(nde_brownian *bm, bm_slot *sl, bm_path *pa,
                        size_t k)
{
    const bm_history *h = bm_history_find(bm, k);
    bm_point start = {k, 0};
    const bm_node *nd;
    size_t n = bm->n;
    int rc;

    sl->k = SIZE_MAX;
    if ((rc = bm_slot_reserve(
             bm, sl, 3 + (h ? (size_t)bm->rec[h->tail].ordinal : 0))))
        return rc;
    nd = bm_walk(bm, pa, start);
    sl->t[0] = bm_time(bm, k);
    sl->t[1] = bm_time(bm, k + 1);
    sl->row[0] = 0;
    sl->row[1] = 1;
    memcpy(sl->w, nd->w, n * sizeof *sl->w);
    for (size_t c = 0; c < n; c++)
        sl->w[n + c] = nd->w[c] + nd->inc[c];
    if (bm->area) {
        /* I(g) = 0; I(g + w) = w inc / 2 + A of the cell */
        const double w = sl->t[1] - sl->t[0];
        memset(sl->a, 0, n * sizeof *sl->a);
        for (size_t c = 0; c < n; c++)
            sl->a[n + c] = 0.5 * w * nd->inc[c] + nd->area[c];
    }
    sl->q = 2;
    sl->k = k;
    for (uint32_t r = h ? h->head : BM_NO_RECORD; r != BM_NO_RECORD;
         r = bm->rec[r].next)
        bm_slot_insert(bm, sl, bm->rec[r].t, bm->rec[r].ordinal);
    return NDE_OK;
}

/* The slot to load a cell into: not the one holding cell `keep` (the
 * query's other end; SIZE_MAX: none), else the one used least recently. */
static bm_slot *bm_slot_victim(nde_brownian *bm, size_t keep)
{
    bm_slot *a = &bm->slot[0], *b = &bm->slot[1];

    if (keep != SIZE_MAX && a->k == keep)
        return b;
    if (keep != SIZE_MAX && b->k == keep)
        return a;
    return b->used < a->used ? b : a;
}

/* W(t) for t strictly inside cell k: row *row of slot *slot, a slot
 * holding k (else loaded into bm_slot_victim's, walking path pa), the
 * split made if t is new. */
static int bm_split_value(nde_brownian *bm, size_t k, double t, bm_path *pa,
                          size_t keep, bm_slot **slot, size_t *row)
{
    bm_slot *sl = NULL;
    size_t i, r;
    int rc;

    for (int s = 0; s < 2; s++)
        if (bm->slot[s].k == k)
            sl = &bm->slot[s];
    if (!sl) {
        sl = bm_slot_victim(bm, keep);
        if ((rc = bm_slot_load(bm, sl, pa, k)))
            return rc;
    }
    sl->used = ++bm->stamp;
    i = bm_slot_index(sl, t);
    if (sl->t[i] == t) {
        r = sl->row[i];
    } else {
        if ((rc = bm_slot_reserve(bm, sl, sl->q + 1)) ||
            (rc = bm_history_reserve(bm)))
            return rc;
        r = bm_slot_insert(bm, sl, t, sl->q - 2);
        bm_history_append(bm, k, t);
    }
    *slot = sl;
    *row = r;
    return NDE_OK;
}

/* The cell holding t strictly inside it, or SIZE_MAX (a grid point, t1). */
size_t bm_inner_cell(const nde_brownian *bm, double t)
{
    size_t k;

    if (t >= bm->t1)
        return SIZE_MAX;
    k = bm_cell_of(bm, t);
    return t > bm_time(bm, k) ? k : SIZE_MAX;
}

/* W(t), t in cell k (SIZE_MAX: on the grid) on a split path: inside a
 * cell a slot's row (bm_split_value), else *slot = NULL and out holds it,
 * from the tree as without the splits. */
static int bm_split_point(nde_brownian *bm, double t, size_t k, bm_path *pa,
                          size_t keep, bm_slot **slot, size_t *row,
                          double *out)
{
    if (k == SIZE_MAX) {
        *slot = NULL;
        bm_value(bm, pa, bm_locate(bm, t), out);
        return NDE_OK;
    }
    return bm_split_value(bm, k, t, pa, keep, slot, row);
}

/* Forget every split (a new path). */
void bm_split_clear(nde_brownian *bm)
{
    bm->nrec = 0;
    bm->map_used = 0;
    for (size_t i = 0; i < bm->map_cap; i++)
        bm->map[i].k = SIZE_MAX;
    for (int i = 0; i < 2; i++)
        bm->slot[i].k = SIZE_MAX;
}

/* Append (tw, tA), a piece of length ht, to (w, A) of length *h, by the
 * rule of the top comment. */
static void bm_append(size_t n, const double *tw, const double *tA,
                      double ht, double *w, double *A, double *h)
{
    for (size_t c = 0; c < n; c++) {
        A[c] += tA[c] + 0.5 * (ht * w[c] - *h * tw[c]);
        w[c] += tw[c];
    }
    *h += ht;
}

/* Append the slot's piece between its sorted times i0 < i1 to (w, A) of
 * length *h. */
static void bm_slot_append(nde_brownian *bm, const bm_slot *sl, size_t i0,
                           size_t i1, double *w, double *A, double *h)
{
    double *pw = bm->acc[0], *pA = bm->acc[1];

    bm_slot_piece(bm, sl, sl->row[i0], sl->row[i1], sl->t[i0], sl->t[i1], pw,
                  pA);
    bm_append(bm->n, pw, pA, sl->t[i1] - sl->t[i0], w, A, h);
}

/* H over [ta, tb] on a split path whose ends were queried (bm_split_point:
 * slot sa's row at ta, NULL on the grid; the same for tb): the piece of
 * ta's cell after ta, the tree's whole cells between, the piece of tb's
 * cell before tb; each from its ends' W and I alone, so later splits
 * inside it leave H's bits alone. */
static int bm_split_area_of(nde_brownian *bm, double ta, size_t ka,
                            const bm_slot *sa, double tb, size_t kb,
                            const bm_slot *sb, double *H)
{
    const size_t n = bm->n;
    double *w = bm->acc[2], *A = bm->acc[3], *wm = bm->acc[4],
           *Hm = bm->acc[5], h = 0.0, ga, gb;
    int rc;

    if (ka != SIZE_MAX && ka == kb) {
        memset(w, 0, n * sizeof *w);
        memset(A, 0, n * sizeof *A);
        bm_slot_append(bm, sa, bm_slot_index(sa, ta),
                       bm_slot_index(sa, tb), w, A, &h);
    } else {
        /* the tree's part first: its query uses acc[0..3] */
        ga = ka != SIZE_MAX ? bm_time(bm, ka + 1) : ta;
        gb = kb != SIZE_MAX ? bm_time(bm, kb) : tb;
        if (ga < gb && (rc = bm_query(bm, ga, gb, wm, Hm)))
            return rc;
        memset(w, 0, n * sizeof *w);
        memset(A, 0, n * sizeof *A);
        if (sa)
            bm_slot_append(bm, sa, bm_slot_index(sa, ta), sa->q - 1, w, A,
                           &h);
        if (ga < gb) {
            const double hm = gb - ga;
            for (size_t c = 0; c < n; c++)
                Hm[c] *= hm;    /* the middle's A */
            bm_append(n, wm, Hm, hm, w, A, &h);
        }
        if (sb)
            bm_slot_append(bm, sb, 0, bm_slot_index(sb, tb), w, A, &h);
    }
    for (size_t c = 0; c < n; c++)
        H[c] = A[c] / h;
    return NDE_OK;
}

/* dw = sign (W(tb) - W(ta)), ta < tb, on a split path (an end inside a
 * cell); and H over the interval when H is not NULL (the area on). */
int bm_split_query(nde_brownian *bm, double ta, size_t ka, double tb,
                   size_t kb, double sign, double *dw, double *H)
{
    bm_slot *sa, *sb;
    size_t ra, rb;
    const double *wa, *wb;
    int rc;

    if ((rc = bm_split_point(bm, ta, ka, &bm->path[0], kb, &sa, &ra,
                             bm->value[0])) ||
        (rc = bm_split_point(bm, tb, kb, &bm->path[1], ka, &sb, &rb,
                             bm->value[1])))
        return rc;
    /* rows read only now: the second end's split may move the slot */
    wa = sa ? sa->w + ra * bm->n : bm->value[0];
    wb = sb ? sb->w + rb * bm->n : bm->value[1];
    for (size_t c = 0; c < bm->n; c++)
        dw[c] = sign * (wb[c] - wa[c]);
    return H ? bm_split_area_of(bm, ta, ka, sa, tb, kb, sb, H) : NDE_OK;
}
