/*
 * The record of a forward solve (nde/trajectory.h): growth, thinning of the
 * stored states, and lookup of the step that contains a time. The solve
 * loop writes into it through the core-private calls declared in rk.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "rk.h"

#define TRAJ_MIN_CAP 64

nde_trajectory *nde_trajectory_create(unsigned record, size_t max_states)
{
    nde_trajectory *tr = calloc(1, sizeof *tr);

    if (!tr)
        return NULL;
    tr->record = record;
    tr->max_states = max_states;
    tr->stride = 1;
    return tr;
}

void nde_trajectory_destroy(nde_trajectory *tr)
{
    if (!tr)
        return;
    free(tr->t);
    free(tr->h);
    free(tr->ystep);
    free(tr->y);
    free(tr->aux);
    free(tr->k);
    free(tr->eest);
    free(tr->stiff);
    free(tr->y_final);
    free(tr->aux_final);
    free(tr->tsave);
    free(tr);
}

static int wants_states(const nde_trajectory *tr)
{
    return (tr->record & (NDE_NEEDS_STEPS | NDE_NEEDS_DENSE)) != 0;
}

static int grow(void **p, size_t count, size_t size)
{
    void *q;

    if (count == 0)
        return NDE_OK;
    if (!(q = realloc(*p, count * size)))
        return NDE_ENOMEM;
    *p = q;
    return NDE_OK;
}

/* Reallocate every buffer for cap steps and states_cap states of n values
 * (a solve with another batch or solver may reuse the record). */
static int traj_realloc(nde_trajectory *tr, size_t cap, size_t states_cap,
                        size_t n, int stages, int naux)
{
    if ((tr->record &&
         (grow((void **)&tr->t, cap, sizeof(double)) ||
          grow((void **)&tr->h, cap, sizeof(double)))) ||
        ((tr->record & NDE_NEEDS_ERROR_EST) &&
         grow((void **)&tr->eest, cap, sizeof(double))) ||
        ((tr->record & NDE_NEEDS_STIFFNESS) &&
         grow((void **)&tr->stiff, cap, sizeof(double))) ||
        ((tr->record & NDE_NEEDS_DENSE) &&
         grow((void **)&tr->k, cap * (size_t)stages * n, sizeof(double))) ||
        (wants_states(tr) &&
         (grow((void **)&tr->y, states_cap * n, sizeof(double)) ||
          grow((void **)&tr->aux, states_cap * (size_t)naux * n,
               sizeof(double)) ||
          grow((void **)&tr->ystep, states_cap, sizeof(size_t)))))
        return NDE_ENOMEM;
    tr->cap = cap;
    tr->states_cap = wants_states(tr) ? states_cap : 0;
    return NDE_OK;
}

int nde_trajectory_begin(nde_trajectory *tr, size_t n, int stages, int naux,
                         double t0, const double *tsave, size_t nsave)
{
    if (n != tr->n || stages != tr->stages || naux != tr->naux ||
        !tr->y_final) {
        if (grow((void **)&tr->y_final, n, sizeof(double)) ||
            grow((void **)&tr->aux_final, (size_t)naux * n, sizeof(double)) ||
            traj_realloc(tr, tr->cap, tr->states_cap, n, stages, naux))
            return NDE_ENOMEM;
    }
    if (nsave > tr->tsave_cap) {
        if (grow((void **)&tr->tsave, nsave, sizeof(double)))
            return NDE_ENOMEM;
        tr->tsave_cap = nsave;
    }
    if (nsave > 0)
        memcpy(tr->tsave, tsave, nsave * sizeof(double));
    tr->nsave = nsave;
    tr->n = n;
    tr->stages = stages;
    tr->naux = naux;
    tr->t0 = tr->t1 = t0;
    tr->nsteps = 0;
    tr->nstates = 0;
    tr->stride = 1;
    return NDE_OK;
}

/* Keep every other stored state (indices 0, 2, 4, ...): the stride doubles
 * and the states stay evenly spread over the step index. */
static void thin_states(nde_trajectory *tr)
{
    const size_t n = tr->n, na = (size_t)tr->naux * n;
    size_t keep = 0;

    for (size_t i = 0; i < tr->nstates; i += 2, keep++) {
        if (keep != i) {
            memcpy(tr->y + keep * n, tr->y + i * n, n * sizeof(double));
            if (na)
                memcpy(tr->aux + keep * na, tr->aux + i * na,
                       na * sizeof(double));
            tr->ystep[keep] = tr->ystep[i];
        }
    }
    tr->nstates = keep;
    tr->stride *= 2;
}

/* A step's stages into the record, on a pool's threads: part p copies
 * its share of every stage's values. */
typedef struct stage_copy {
    double *kj;
    const double *const *k;
    int stages;
    size_t n, nparts;
} stage_copy;

static void stage_copy_part(void *arg, size_t p)
{
    const stage_copy *c = arg;
    const size_t a = c->n * p / c->nparts, b = c->n * (p + 1) / c->nparts;
    for (int i = 0; i < c->stages; i++)
        memcpy(c->kj + (size_t)i * c->n + a, c->k[i] + a,
               (b - a) * sizeof(double));
}

static void copy_stages(nde_pool *pool, double *kj, const double *const *k,
                        int stages, size_t n)
{
    stage_copy c = {kj, k, stages, n, 1};
    if (pool && n >= NDE_SPLIT_MIN)
        c.nparts = nde_pool_threads(pool);
    nde_pool_run(pool, stage_copy_part, &c, c.nparts);
}

int nde_trajectory_push(nde_trajectory *tr, nde_pool *pool, double t,
                        double h, const double *y, const double *aux,
                        const double *const *k, double eest, double stiff)
{
    const size_t n = tr->n, na = (size_t)tr->naux * n, j = tr->nsteps;

    if (!tr->record) { /* only the count: memory flat in the steps */
        tr->nsteps = j + 1;
        return NDE_OK;
    }
    if (j == tr->cap) {
        size_t cap = tr->cap < TRAJ_MIN_CAP ? TRAJ_MIN_CAP : 2 * tr->cap;
        /* States grow with the steps up to max_states, so a max_states
         * beyond the solve's steps costs nothing. */
        size_t scap = tr->max_states > 0 && tr->max_states < cap
                          ? tr->max_states : cap;
        if (scap < tr->states_cap)
            scap = tr->states_cap;
        if (traj_realloc(tr, cap, scap, n, tr->stages, tr->naux))
            return NDE_ENOMEM;
    }
    tr->t[j] = t;
    tr->h[j] = h;
    if (tr->record & NDE_NEEDS_ERROR_EST)
        tr->eest[j] = eest;
    if (tr->record & NDE_NEEDS_STIFFNESS)
        tr->stiff[j] = stiff;
    if (tr->record & NDE_NEEDS_DENSE)
        copy_stages(pool, tr->k + j * (size_t)tr->stages * n, k, tr->stages,
                    n);
    if (wants_states(tr)) {
        while (tr->max_states > 0 && j % tr->stride == 0 &&
               tr->nstates == tr->max_states)
            thin_states(tr);
        if (j % tr->stride == 0) {
            memcpy(tr->y + tr->nstates * n, y, n * sizeof(double));
            if (na)
                memcpy(tr->aux + tr->nstates * na, aux, na * sizeof(double));
            tr->ystep[tr->nstates++] = j;
        }
    }
    tr->nsteps = j + 1;
    return NDE_OK;
}

void nde_trajectory_end(nde_trajectory *tr, double t1, const double *y,
                        const double *aux)
{
    tr->t1 = t1;
    memcpy(tr->y_final, y, tr->n * sizeof(double));
    if (tr->naux > 0)
        memcpy(tr->aux_final, aux, (size_t)tr->naux * tr->n * sizeof(double));
}

long nde_trajectory_find(const nde_trajectory *tr, double t)
{
    const double dir = tr->t1 >= tr->t0 ? 1.0 : -1.0;
    size_t lo = 0, hi;

    if (tr->nsteps == 0 || !tr->t || dir * (t - tr->t0) < 0 ||
        dir * (t - tr->t1) > 0)
        return -1;
    if (t == tr->t1)
        return (long)tr->nsteps - 1;
    /* Largest j with t[j] at or before t. */
    hi = tr->nsteps;
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (dir * (t - tr->t[mid]) >= 0)
            lo = mid;
        else
            hi = mid;
    }
    return (long)lo;
}

/* ---- accessors ---------------------------------------------------------- */

const double *nde_trajectory_state(const nde_trajectory *tr, size_t i)
{
    return i < tr->nstates ? tr->y + i * tr->n : NULL;
}

size_t nde_trajectory_state_step(const nde_trajectory *tr, size_t i)
{
    return tr->ystep[i];
}

const double *nde_trajectory_aux(const nde_trajectory *tr, size_t i)
{
    if (tr->naux <= 0 || i >= tr->nstates)
        return NULL;
    return tr->aux + i * (size_t)tr->naux * tr->n;
}

const double *nde_trajectory_stages(const nde_trajectory *tr, size_t j)
{
    if (!(tr->record & NDE_NEEDS_DENSE) || j >= tr->nsteps)
        return NULL;
    return tr->k + j * (size_t)tr->stages * tr->n;
}

double nde_trajectory_eest(const nde_trajectory *tr, size_t j)
{
    return (tr->record & NDE_NEEDS_ERROR_EST) && j < tr->nsteps ? tr->eest[j]
                                                                 : NAN;
}

double nde_trajectory_stiffness(const nde_trajectory *tr, size_t j)
{
    return (tr->record & NDE_NEEDS_STIFFNESS) && j < tr->nsteps
               ? tr->stiff[j]
               : NAN;
}

long nde_trajectory_state_before(const nde_trajectory *tr, size_t j)
{
    size_t lo = 0, hi = tr->nstates;

    /* Largest i with ystep[i] <= j (ystep is increasing). */
    if (hi == 0 || tr->ystep[0] > j)
        return -1;
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (tr->ystep[mid] <= j)
            lo = mid;
        else
            hi = mid;
    }
    return (long)lo;
}

void nde_trajectory_segment(const nde_trajectory *tr, size_t i, size_t *j0,
                            size_t *j1)
{
    *j0 = tr->ystep[i];
    *j1 = i + 1 < tr->nstates ? tr->ystep[i + 1] : tr->nsteps;
}
