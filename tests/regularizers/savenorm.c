/*
 * savenorm.c - a test regularizer written against regularizer interface
 * version 2: the mean squared norm of the states the solve saved,
 *
 *     R = 1 / (B nsave) sum_k sum_b |y_b(t_k)|^2,
 *
 * read from in->saves, with the cotangents weight * dR/dy(t_k) at the
 * save times (in increasing time) for the adjoint. `nde check regularizer
 * savenorm` must pass on it (meson test check_savenorm).
 */
#include <stdlib.h>

#include "nde/nde.h"

typedef struct savenorm_state {
    double *g;            /* cap x batch_max x dim cotangents */
    nde_cotangent *ct;    /* cap */
    size_t cap;
} savenorm_state;

static int savenorm_create(nde_regularizer *r, nde_section *sec,
                           nde_solver *s, nde_ctx *ctx)
{
    (void)sec, (void)s;
    if (!(r->state = calloc(1, sizeof(savenorm_state))))
        return nde_error(ctx, NDE_ENOMEM, "savenorm: out of memory");
    return NDE_OK;
}

static void savenorm_destroy(nde_regularizer *r)
{
    savenorm_state *st = r->state;
    if (st) {
        free(st->g);
        free(st->ct);
    }
    free(st);
}

/* Room for nsave cotangents (grown once: the number of save times is
 * known only at the first call). */
static int reserve(nde_regularizer *r, size_t nsave)
{
    savenorm_state *st = r->state;
    if (nsave <= st->cap)
        return NDE_OK;
    free(st->g);
    free(st->ct);
    st->g = malloc(nsave * r->solver->batch_max * r->solver->field->dim *
                   sizeof *st->g);
    st->ct = malloc(nsave * sizeof *st->ct);
    st->cap = st->g && st->ct ? nsave : 0;
    return st->cap ? NDE_OK
                   : nde_error(r->ctx, NDE_ENOMEM, "savenorm: out of memory");
}

static int savenorm_after_solve(nde_regularizer *r,
                                const nde_regularizer_input *in,
                                nde_regularizer_output *out)
{
    savenorm_state *st = r->state;
    const nde_regularizer_saves *sv = in->saves;
    const size_t batch = in->solver->batch, n = batch * in->solver->field->dim;
    const double c = 1.0 / ((double)batch * (double)sv->nsave);
    const int backward = sv->t[sv->nsave - 1] < sv->t[0];
    double sum = 0.0;
    int rc;

    if ((rc = reserve(r, sv->nsave)) != NDE_OK)
        return rc;
    for (size_t j = 0; j < sv->nsave; j++) {
        const size_t k = backward ? sv->nsave - 1 - j : j;
        const double *y = sv->y + k * n;
        double *g = st->g + j * n;
        for (size_t i = 0; i < n; i++) {
            sum += y[i] * y[i];
            g[i] = in->weight * c * 2.0 * y[i];
        }
        st->ct[j].t = sv->t[k];
        st->ct[j].g = g;
    }
    out->value = c * sum;
    out->ct = st->ct;
    out->nct = sv->nsave;
    return NDE_OK;
}

static const nde_regularizer_type savenorm = {
    .info = NDE_REGULARIZER_INFO(
        .name = "savenorm",
        .description = "mean squared norm of the saved states (test of "
                       "in->saves)",
        .version = "1"),
    .create = savenorm_create,
    .destroy = savenorm_destroy,
    .after_solve = savenorm_after_solve,
};

NDE_MODULE(&savenorm.info);
