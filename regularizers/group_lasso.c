/*
 * group_lasso: R = sum_g ||theta_g||_2 over the first-layer column groups
 * of the field, applied as a proximal step after each optimizer step
 * (Aliee, Theis and Kilbertus 2021, "Beyond predictions in neural ODEs:
 * identification and interventions", sec. 3; the proximal operator of the
 * group lasso is block soft-thresholding, Parikh and Boyd 2014,
 * "Proximal algorithms", sec. 6.5.4):
 *   theta_g <- theta_g max(0, 1 - lr weight / ||theta_g||),
 * so a group whose norm falls below lr * weight becomes exactly zero.
 *
 * Groups come from the field's parameter names, so that the regularizer
 * needs nothing from the field interface: every parameter named
 * "W1[r,c]" or "<prefix>.W1[r,c]" belongs to group (<prefix>, c), the
 * weights that read input c in that first layer. ngm names block i's
 * first layer "b<i>.W1[h,j]" (group (i, j): does state j drive state i);
 * mlp names its first layer "W1[o,i]" (group i: input i's weights). A
 * field with no such names is refused.
 *
 * With prox = true (the default) the instance is proximal (regularizer.h):
 * after_solve returns R but adds no gradient - the prox replaces it.
 * prox = false adds the (sub)gradient weight theta_g / ||theta_g|| to
 * thetabar instead (0 for a zero group) and takes no proximal step:
 * plain subgradient descent, whose groups hover near zero without
 * reaching it; it is the form whose gradient can be checked against
 * differences.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

typedef struct gl_state {
    size_t ngroups;
    size_t *start;  /* ngroups + 1: group g is idx[start[g]..start[g+1]) */
    size_t *idx;    /* parameter indices, grouped                       */
} gl_state;

static const nde_key gl_keys[] = {
    {"prox", NDE_KEY_BOOL, "true",
     "true: a proximal step after each optimizer step (groups reach exactly "
     "zero; no gradient in the loss); false: the subgradient in the loss "
     "instead"},
    {NULL, 0, NULL, NULL}};

/* Parameter name -> group label "<prefix>|<c>" when it is a first-layer
 * weight W1[r,c] (prefix empty or ending in '.'); 0 otherwise. */
static int group_label(const char *name, char *label, size_t len)
{
    const char *w = strstr(name, "W1[");
    size_t r, c;
    int end = 0;

    if (!w || (w != name && w[-1] != '.'))
        return 0;
    if (sscanf(w, "W1[%zu,%zu]%n", &r, &c, &end) != 2 || end == 0 ||
        w[end] != '\0')
        return 0;
    snprintf(label, len, "%.*s|%zu", (int)(w - name), name, c);
    return 1;
}

static void gl_destroy(nde_regularizer *r)
{
    gl_state *st = r->state;
    if (!st)
        return;
    free(st->start);
    free(st->idx);
    free(st);
    r->state = NULL;
}

/* The groups of field f, in order of first appearance. */
static int find_groups(gl_state *st, const nde_field *f, nde_ctx *ctx)
{
    const size_t P = f->nparams;
    size_t *gid = calloc(P ? P : 1, sizeof *gid), nlabels = 0, n = 0;
    char (*labels)[80] = calloc(P ? P : 1, sizeof *labels);
    char name[80], label[80];
    int rc = NDE_OK;

    if (!gid || !labels) {
        rc = nde_error(ctx, NDE_ENOMEM, "group_lasso: out of memory");
        goto done;
    }
    for (size_t k = 0; k < P; k++) {
        size_t g;
        nde_field_param_name(f, k, name, sizeof name);
        gid[k] = SIZE_MAX;
        if (!group_label(name, label, sizeof label))
            continue;
        for (g = 0; g < nlabels && strcmp(labels[g], label) != 0; g++)
            ;
        if (g == nlabels)
            memcpy(labels[nlabels++], label, sizeof label);
        gid[k] = g;
        n++;
    }
    if (nlabels == 0) {
        rc = nde_error(ctx, NDE_EINVAL,
                       "group_lasso: field '%s' has no first-layer weights "
                       "named W1[r,c] or <block>.W1[r,c] (ngm and mlp name "
                       "theirs so): nothing to group",
                       f->type->info.name);
        goto done;
    }
    st->ngroups = nlabels;
    st->start = calloc(nlabels + 1, sizeof *st->start);
    st->idx = calloc(n, sizeof *st->idx);
    if (!st->start || !st->idx) {
        rc = nde_error(ctx, NDE_ENOMEM, "group_lasso: out of memory");
        goto done;
    }
    for (size_t k = 0; k < P; k++)
        if (gid[k] != SIZE_MAX)
            st->start[gid[k] + 1]++;
    for (size_t g = 0; g < nlabels; g++)
        st->start[g + 1] += st->start[g];
    /* fill group by group, keeping parameter order inside a group */
    for (size_t g = 0, m = 0; g < nlabels; g++)
        for (size_t k = 0; k < P; k++)
            if (gid[k] == g)
                st->idx[m++] = k;
done:
    free(gid);
    free(labels);
    return rc;
}

static int gl_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                     nde_ctx *ctx)
{
    gl_state *st;
    int prox = 1, rc;

    if (sec && (rc = nde_get_bool(sec, "prox", &prox, ctx)))
        return rc;
    if (!(st = calloc(1, sizeof *st)))
        return nde_error(ctx, NDE_ENOMEM, "group_lasso: out of memory");
    r->state = st;
    r->needs = 0;
    r->proximal = prox;
    return find_groups(st, s->field, ctx);
}

static double group_norm(const gl_state *st, size_t g, const double *theta)
{
    double sum = 0.0;
    for (size_t m = st->start[g]; m < st->start[g + 1]; m++)
        sum += theta[st->idx[m]] * theta[st->idx[m]];
    return sqrt(sum);
}

static int gl_after_solve(nde_regularizer *r, const nde_regularizer_input *in,
                          nde_regularizer_output *out)
{
    const gl_state *st = r->state;
    double sum = 0.0;

    for (size_t g = 0; g < st->ngroups; g++) {
        const double norm = group_norm(st, g, in->theta);
        sum += norm;
        if (r->proximal || !out->thetabar || norm == 0.0)
            continue;
        for (size_t m = st->start[g]; m < st->start[g + 1]; m++)
            out->thetabar[st->idx[m]] +=
                in->weight * in->theta[st->idx[m]] / norm;
    }
    out->value = sum;
    out->ct = NULL;
    out->nct = 0;
    out->nfe = 0;
    out->nvjp = 0;
    return NDE_OK;
}

static int gl_prox(nde_regularizer *r, double *theta, double lr,
                   double weight)
{
    const gl_state *st = r->state;

    for (size_t g = 0; g < st->ngroups; g++) {
        const double norm = group_norm(st, g, theta);
        const double keep = norm > lr * weight ? 1.0 - lr * weight / norm
                                               : 0.0;
        for (size_t m = st->start[g]; m < st->start[g + 1]; m++)
            theta[st->idx[m]] = keep > 0.0 ? keep * theta[st->idx[m]] : 0.0;
    }
    return NDE_OK;
}

static const nde_regularizer_type gl_type = {
    .info = NDE_REGULARIZER_INFO(
        .name = "group_lasso",
        .description = "sum of the norms of the first-layer column groups "
                       "(W1[*,c] per block), by a proximal step: edges of a "
                       "causal graph (ngm)",
        .keys = gl_keys,
        .version = "1"),
    .create = gl_create,
    .destroy = gl_destroy,
    .after_solve = gl_after_solve,
    .prox = gl_prox,
};

NDE_MODULE(&gl_type.info);
