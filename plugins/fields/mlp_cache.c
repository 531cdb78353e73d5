/*
 * mlp_cache.c - the mlp's kept forward passes (mlp.h): their memory and
 * the lookup. Linked with every kernel set.
 */
#include <stdlib.h>
#include <string.h>

#include "mlp.h"

size_t mlp_cache_bytes(const mlp_net *n, size_t dim, size_t batch_max)
{
    const size_t cols = mlp_ld(batch_max); /* not the gaps: never touched */
    size_t doubles = batch_max * dim + cols * n->in0;
    for (size_t l = 0; l + 1 < n->nlayers; l++)
        doubles += cols * n->layer[l].out *
                   (n->layer[l].act == ACT_LIPSWISH ? 2 : 1);
    return doubles * sizeof(double);
}

/* Space for npoints forward passes of net n on up to batch_max rows of
 * dim states (at least one: the pass being computed), and for a copy of
 * its parameters; once its layers' activations are set (a lipswish
 * layer keeps its sigmoids too). */
int mlp_cache_alloc(mlp_net *n, size_t dim, size_t batch_max,
                    size_t npoints)
{
    const size_t cols = n->cols;
    n->npoints = npoints > 0 ? npoints : 1;
    n->point = calloc(n->npoints, sizeof *n->point);
    n->tag = calloc(n->npoints, sizeof *n->tag);
    n->theta = malloc((n->p1 - n->p0) * sizeof *n->theta);
    if (!n->point || !n->tag || !n->theta)
        return NDE_ENOMEM;
    for (size_t p = 0; p < n->npoints; p++) {
        mlp_point *pt = &n->point[p];
        pt->y = malloc(batch_max * dim * sizeof *pt->y);
        pt->x0 = mlp_alloc(cols * n->in0);
        pt->h = calloc(n->nlayers, sizeof *pt->h);
        pt->sg = calloc(n->nlayers, sizeof *pt->sg);
        if (!pt->y || !pt->x0 || !pt->h || !pt->sg)
            return NDE_ENOMEM;
        for (size_t l = 0; l + 1 < n->nlayers; l++) {
            if (!(pt->h[l] = mlp_alloc(cols * n->layer[l].out)))
                return NDE_ENOMEM;
            if (n->layer[l].act == ACT_LIPSWISH &&
                !(pt->sg[l] = mlp_alloc(cols * n->layer[l].out)))
                return NDE_ENOMEM;
        }
    }
    return NDE_OK;
}

void mlp_cache_free(mlp_net *n)
{
    for (size_t p = 0; n->point && p < n->npoints; p++) {
        mlp_point *pt = &n->point[p];
        for (size_t l = 0; pt->h && l + 1 < n->nlayers; l++)
            free(pt->h[l]);
        for (size_t l = 0; pt->sg && l + 1 < n->nlayers; l++)
            free(pt->sg[l]);
        free(pt->h);
        free(pt->sg);
        free(pt->y);
        free(pt->x0);
    }
    free(n->point);
    free(n->tag);
    free(n->theta);
}
