/*
 * steer: STEER (Ghosh, Behl, Dupont, Torr, Namboodiri, NeurIPS 2020,
 * arXiv 2006.10711). Each training solve ends at t1' drawn uniformly from
 * [t1 - b, t1 + b] (in the direction of integration), with
 * 0 < b < |t1 - t0| so the interval never collapses or reverses. Only
 * before_solve acts: R = 0 and there is no gradient. The trainer stretches
 * the solve's time grid with t1 (nde/regularizer.h) and never calls it in
 * evaluation.
 *
 * The draw: u = the top 53 bits of nde_seed_derive(seed, 0) / 2^53, in
 * [0, 1) (SplitMix64), t1' = t1 + (2u - 1) b; the same seed, the same t1'.
 */
#include <math.h>
#include <stdlib.h>

#include "nde/nde.h"

typedef struct steer_state {
    double b;
} steer_state;

static const nde_key steer_keys[] = {
    {"b", NDE_KEY_DOUBLE, NULL,
     "half-width of the end-time window, in time units: t1' ~ U[t1 - b, "
     "t1 + b]; required, 0 < b < t1 - t0 (checked at each solve)"},
    {NULL, 0, NULL, NULL}};

static void steer_destroy(nde_regularizer *r)
{
    free(r->state);
    r->state = NULL;
}

static int steer_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                        nde_ctx *ctx)
{
    steer_state *st;
    double b;
    int rc;

    (void)s;
    if (!sec)
        return nde_error(ctx, NDE_ECONFIG, "regularizer 'steer': missing "
                         "required key b (0 < b < t1 - t0)");
    if ((rc = nde_get_double(sec, "b", &b, ctx)))
        return rc;
    if (!(b > 0))
        return nde_section_error(sec, "b", ctx, "must satisfy 0 < b < t1 - "
                                 "t0, got b = %g", b);
    if (!(st = calloc(1, sizeof *st)))
        return nde_error(ctx, NDE_ENOMEM, "regularizer 'steer': out of "
                         "memory");
    st->b = b;
    r->state = st;
    r->needs = 0;
    return NDE_OK;
}

static int steer_before_solve(nde_regularizer *r, nde_solve_request *req,
                              uint64_t seed)
{
    const steer_state *st = r->state;
    const double span = req->t1 - req->t0;
    const double dir = span >= 0 ? 1.0 : -1.0;
    const double u = (double)(nde_seed_derive(seed, 0) >> 11) * 0x1.0p-53;

    if (!(st->b < fabs(span)))
        return nde_error(r->ctx, NDE_ECONFIG,
                         "regularizer 'steer': key b = %g must satisfy 0 < b "
                         "< |t1 - t0| = %g (t0 = %g, t1 = %g)", st->b,
                         fabs(span), req->t0, req->t1);
    req->t1 += dir * (2.0 * u - 1.0) * st->b;
    return NDE_OK;
}

static int steer_after_solve(nde_regularizer *r,
                             const nde_regularizer_input *in,
                             nde_regularizer_output *out)
{
    (void)r;
    (void)in;
    out->value = 0.0;
    out->ct = NULL;
    out->nct = 0;
    out->nfe = 0;
    out->nvjp = 0;
    return NDE_OK;
}

static const nde_regularizer_type steer_type = {
    .info = NDE_REGULARIZER_INFO(
        .name = "steer",
        .description = "STEER: training end time drawn from U[t1 - b, t1 + "
                       "b] (R = 0)",
        .keys = steer_keys,
        .version = "1"),
    .create = steer_create,
    .destroy = steer_destroy,
    .before_solve = steer_before_solve,
    .after_solve = steer_after_solve,
};

NDE_MODULE(&steer_type.info);
