/*
 * brownian_impl.h - the Brownian Interval's insides, shared by its two
 * files: brownian.c (the tree of nde/brownian.h, the API) and
 * brownian_split.c (split refinement). Not installed; the functions
 * declared here are libnde's own (hidden, not exported).
 */
#ifndef NDE_BROWNIAN_IMPL_H
#define NDE_BROWNIAN_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "nde/brownian.h"

/* Cells at most 2^BM_TOP_BITS (top depth <= BM_TOP_BITS); a cell bisected
 * BM_CELL_BITS times. One more level for the root. */
#define BM_TOP_BITS 48
#define BM_CELL_BITS 52
#define BM_DEPTH_MAX (BM_TOP_BITS + BM_CELL_BITS + 1)
#define BM_POS_END ((uint64_t)1 << BM_CELL_BITS)

/* A point of the path: cell k and position p / 2^52 inside it; p = 0 is
 * the grid point k, p = BM_POS_END (only with k = cells - 1) is t1. */
typedef struct bm_point {
    size_t k;
    uint64_t p;
} bm_point;

/* One node on a path. Top nodes (level 0 included: a cell) cover the
 * cells [i, j); cell nodes (level >= 1) are inside cell i (j = i + 1) at
 * positions [a, a + 2^(52 - level)). */
typedef struct bm_node {
    size_t i, j;
    unsigned level;
    uint64_t a;
    int split;          /* left[] holds the left child's increment */
    uint64_t key;       /* the node's stream key for its normals */
    double *w;          /* W at the node's start, n values */
    double *inc;        /* the node's increment */
    double *left;       /* its left child's increment, once split */
    double *area;       /* with the area: the node's A (top comment) */
    double *aleft;      /* its left child's A, once split */
} bm_node;

typedef struct bm_path {
    bm_node node[BM_DEPTH_MAX];
    int len;            /* nodes on the path, root first */
    bm_point target;    /* the point it was last walked to */
    int has_target;
} bm_path;

/* Split refinement: a split of a cell, in the order of the queries. */
typedef struct bm_record {
    double t;
    uint32_t next;      /* the cell's next record; BM_NO_RECORD: the last */
    uint32_t ordinal;   /* its place among the cell's splits: 0, 1, ... */
} bm_record;

/* A cell's first and last records. k = SIZE_MAX: a free entry. */
typedef struct bm_history {
    size_t k;
    uint32_t head, tail;
} bm_history;

#define BM_NO_RECORD UINT32_MAX

/* The points of one cell with W there: its two ends, then its splits,
 * each from its neighbours when it was made. */
typedef struct bm_slot {
    size_t k;           /* the cell held; SIZE_MAX: none */
    size_t q, cap;      /* points held, room for */
    double *t;          /* their times, ascending */
    size_t *row;        /* each time's row of w */
    double *w;          /* W, n a row; rows in the order made (0, 1: the
                           cell's start and end) */
    double *a;          /* with the area: I(t) = int_g^t (W(r) - W(g)) dr
                           at the row's time t (g the cell's start), n a
                           row: every piece's A follows from its ends'
                           W and I (bm_slot_piece), so a row, once made,
                           never changes */
    long used;          /* stamp of the last use */
} bm_slot;

struct nde_brownian {
    nde_ctx *ctx;
    size_t n_max, n;
    int ready;          /* reset done */
    uint64_t seed_key;
    double t0, t1, dt;
    size_t cells;
    bm_path path[2];
    double *value[2];   /* W at the two ends of a general query */
    int area;           /* nodes carry the space-time Levy area */
    double *adata;      /* the area arrays, once area was switched on */
    double *acc[6];     /* (W, A) of the two sides of a general query;
                           a split query's middle part */
    double zig_x[257], zig_f[257];  /* ziggurat tables */
    double *z[2];       /* a split's normals, n_max each */
    uint8_t *layer;     /* their ziggurat layers */
    double *data;       /* all the path arrays */
    size_t bytes;       /* held by create and the area */
    long queries, nodes;
    /* split refinement (nde_brownian_set_split; brownian_split.c) */
    int split;
    bm_record *rec;     /* every cell's split times, in query order */
    size_t nrec, rec_cap;
    bm_history *map;    /* cell -> its records; open addressing */
    size_t map_cap, map_used;
    bm_slot slot[2];    /* two cells' points and values */
    long stamp;         /* slot use counter */
};

/* SplitMix64's output function (Steele, Lea, Flood 2014): a bijective
 * 64-bit mix, used as a counter-based generator. */
static inline uint64_t bm_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

#define BM_GAMMA UINT64_C(0x9e3779b97f4a7c15)

static inline uint64_t bm_key(uint64_t seed_key, uint64_t a, uint64_t b)
{
    return bm_mix(bm_mix(seed_key ^ bm_mix(a + BM_GAMMA)) ^ b);
}

/* The second stream of a node with the area; and the root's A. */
#define BM_AREA_KEY UINT64_C(0x3c6ef372fe94f82b)

/* The time of grid point k. */
static inline double bm_time(const nde_brownian *bm, size_t k)
{
    return nde_grid_time(bm->t0, bm->t1, bm->dt, bm->cells, k);
}

/* brownian.c: the tree (its comments say what each does). */
void bm_normals(const nde_brownian *bm, uint64_t key, size_t n, double *z);
void bm_area_split(const nde_brownian *bm, uint64_t key, double a, double b,
                   const double *w, const double *A, double *w1, double *a1);
size_t bm_cell_of(const nde_brownian *bm, double t);
bm_point bm_locate(const nde_brownian *bm, double t);
bm_node *bm_walk(nde_brownian *bm, bm_path *pa, bm_point pt);
void bm_value(nde_brownian *bm, bm_path *pa, bm_point pt, double *out);
int bm_query(nde_brownian *bm, double ta, double tb, double *dw, double *H);

/* brownian_split.c: split refinement. The cell holding t strictly inside
 * it, or SIZE_MAX (a grid point, t1); dw = sign (W(tb) - W(ta)) and H
 * (not NULL: the area on) for ta < tb, ka and kb their inner cells (one
 * of them not SIZE_MAX); forget every split. */
size_t bm_inner_cell(const nde_brownian *bm, double t);
int bm_split_query(nde_brownian *bm, double ta, size_t ka, double tb,
                   size_t kb, double sign, double *dw, double *H);
void bm_split_clear(nde_brownian *bm);

#endif
