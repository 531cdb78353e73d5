/*
 * cnf - a continuous normalizing flow's dynamics (Chen et al. 2018;
 * FFJORD, Grathwohl et al., ICLR 2019): a field f on z of dimension d
 * moves the points, and the log-density change rides along,
 *
 *     [field]
 *     plugin = cnf
 *     inner  = net            ; section [field.net], dimension d
 *     trace  = exact          ; or hutchinson
 *
 *     dz/dt = f(t, z),   dl/dt = -tr(df/dz),   (de/dt = 0)
 *
 * so that log p(z(t0)) = log p(z(t1)) + l(t1) - l(t0) (the instantaneous
 * change of variables, Chen et al. Thm. 1). A state row is [z (d), l]
 * under `trace = exact` (the d diagonal entries e_k^T J e_k, for small d)
 * and [z (d), l, e (d)] under `hutchinson`: Hutchinson's estimator
 * e^T J e with the probe e carried as a state that does not move, so one
 * probe per row holds for the whole solve, and every adjoint (a backsolve
 * too) sees the same e. Whoever sets the initial state draws the probe
 * (Rademacher or Gaussian: E[e e^T] = I makes the estimate unbiased).
 *
 * The trace comes from the inner field's VJP (e^T (J^T e)); this field's
 * VJP needs the inner field's second derivative (jvp_vjp) and, under
 * hutchinson, its jvp: d(e^T J e)/de = (J + J^T) e. The parameters are
 * the inner field's. An ODE field: the inner one must have no diffusion.
 */
#include <stdlib.h>
#include <string.h>

#include "wrap.h"

typedef struct cnf_state {
    field_wrap base;        /* first: the inner field                 */
    size_t d;              /* the inner field's dim                      */
    int hutchinson;        /* 0: exact trace                             */
    double *z, *v, *w, *out, *acc; /* batch_max x d each                 */
} cnf_state;

/* z rows (and e rows, under hutchinson) of y into s->z (and s->v). */
static void gather(const cnf_state *s, const double *y, size_t D,
                   size_t batch)
{
    for (size_t r = 0; r < batch; r++) {
        memcpy(s->z + r * s->d, y + r * D, s->d * sizeof *s->z);
        if (s->hutchinson)
            memcpy(s->v + r * s->d, y + r * D + s->d + 1,
                   s->d * sizeof *s->v);
    }
}

/* s->v = e_k in every row. */
static void unit_rows(const cnf_state *s, size_t k, size_t batch)
{
    memset(s->v, 0, batch * s->d * sizeof *s->v);
    for (size_t r = 0; r < batch; r++)
        s->v[r * s->d + k] = 1.0;
}

/* tr[r] = the trace (exact) or e^T J e (hutchinson) of row r, into the
 * l column of dy, negated; s->z holds the rows. */
static int neg_trace(cnf_state *s, double t, const double *theta,
                     double *dy, size_t D, size_t batch)
{
    const size_t d = s->d, nk = s->hutchinson ? 1 : d;
    int rc;

    for (size_t r = 0; r < batch; r++)
        dy[r * D + d] = 0.0;
    for (size_t k = 0; k < nk; k++) {
        if (!s->hutchinson)
            unit_rows(s, k, batch);
        memset(s->acc, 0, batch * d * sizeof *s->acc);
        /* acc = J^T v */
        if ((rc = nde_field_vjp(s->base.inner, t, s->z, theta, s->v, s->acc,
                                NULL, batch)) != NDE_OK)
            return rc;
        for (size_t r = 0; r < batch; r++)
            for (size_t i = 0; i < d; i++)
                dy[r * D + d] -= s->v[r * d + i] * s->acc[r * d + i];
    }
    return NDE_OK;
}

static int cnf_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    cnf_state *s = f->state;
    const size_t d = s->d, D = f->dim;
    int rc, rc2;

    gather(s, y, D, batch);
    rc = nde_field_eval(s->base.inner, t, s->z, theta, s->out, batch);
    if (rc != NDE_OK && rc != NDE_ERETRY)
        return rc;
    for (size_t r = 0; r < batch; r++) {
        memcpy(dy + r * D, s->out + r * d, d * sizeof *dy);
        if (s->hutchinson)
            memset(dy + r * D + d + 1, 0, d * sizeof *dy);
    }
    rc2 = neg_trace(s, t, theta, dy, D, batch);
    return rc2 != NDE_OK ? rc2 : rc;
}

/* Add the batch x d array a into the z columns (off 0) or the e columns
 * (off d + 1) of vy. */
static void scatter_add(const double *a, double *vy, size_t D, size_t d,
                        size_t off, size_t batch)
{
    for (size_t r = 0; r < batch; r++)
        for (size_t i = 0; i < d; i++)
            vy[r * D + off + i] += a[r * d + i];
}

/*
 * With the cotangent c = [cz, cl, ce]: the inner VJP of cz, and of
 * Phi = -cl sum_k v_k^T J v_k (v_k = e_k, or the probe) the second
 * derivative jvp_vjp(v_k, -cl v_k) in z and theta and, under hutchinson,
 * -cl (J e + J^T e) in e. ce adds nothing (e does not move).
 */
static int cnf_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *c, double *vy,
                   double *vtheta, size_t batch)
{
    cnf_state *s = f->state;
    const size_t d = s->d, D = f->dim, nk = s->hutchinson ? 1 : d;
    double *vz = vy ? s->out : NULL;
    int rc;

    gather(s, y, D, batch);
    if (vz)
        memset(vz, 0, batch * d * sizeof *vz);
    for (size_t r = 0; r < batch; r++)
        memcpy(s->w + r * d, c + r * D, d * sizeof *s->w);
    if ((rc = nde_field_vjp(s->base.inner, t, s->z, theta, s->w, vz, vtheta,
                            batch)) != NDE_OK)
        return rc;
    for (size_t k = 0; k < nk; k++) {
        if (!s->hutchinson)
            unit_rows(s, k, batch);
        for (size_t r = 0; r < batch; r++)
            for (size_t i = 0; i < d; i++)
                s->w[r * d + i] = -c[r * D + d] * s->v[r * d + i];
        if ((rc = nde_field_jvp_vjp(s->base.inner, t, s->z, theta, s->v, s->w,
                                    vz, vtheta, batch)) != NDE_OK)
            return rc;
    }
    if (!vy)
        return NDE_OK;
    scatter_add(vz, vy, D, d, 0, batch);
    if (!s->hutchinson)
        return NDE_OK;
    /* e: -cl J e (jvp, scaled), then += J^T (-cl e) (vjp) */
    if ((rc = nde_field_jvp(s->base.inner, t, s->z, theta, s->v, s->acc,
                            batch)) != NDE_OK)
        return rc;
    for (size_t r = 0; r < batch; r++)
        for (size_t i = 0; i < d; i++) {
            s->acc[r * d + i] *= -c[r * D + d];
            s->w[r * d + i] = -c[r * D + d] * s->v[r * d + i];
        }
    if ((rc = nde_field_vjp(s->base.inner, t, s->z, theta, s->w, s->acc, NULL,
                            batch)) != NDE_OK)
        return rc;
    scatter_add(s->acc, vy, D, d, d + 1, batch);
    return NDE_OK;
}

static void cnf_destroy(nde_field *f)
{
    cnf_state *s = f->state;
    if (!s)
        return;
    nde_field_destroy(s->base.inner);
    free(s->z);
    free(s->v);
    free(s->w);
    free(s->out);
    free(s->acc);
    free(s);
    f->state = NULL;
}

static int read_trace(cnf_state *s, nde_section *sec, nde_ctx *ctx)
{
    static const char *const words[] = {"exact", "hutchinson", NULL};
    const char *w;
    int rc;

    if ((rc = nde_get_string(sec, "trace", &w, ctx)) != NDE_OK)
        return rc;
    if (strcmp(w, "exact") == 0 || strcmp(w, "hutchinson") == 0) {
        s->hutchinson = w[0] == 'h';
        return NDE_OK;
    }
    const char *guess = nde_suggest(w, words);
    return nde_section_error(sec, "trace", ctx,
                             "unknown trace '%s'%s%s%s (expected exact or "
                             "hutchinson)", w, guess ? " (did you mean '" : "",
                             guess ? guess : "", guess ? "'?)" : "");
}

static int cnf_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    cnf_state *s = calloc(1, sizeof *s);
    const char *name;
    int rc;

    if (!(f->state = s))
        return nde_error(ctx, NDE_ENOMEM, "cnf: out of memory");
    if (!sec)
        return nde_error(ctx, NDE_ECONFIG, "cnf: needs a [field] section "
                         "with inner");
    if ((rc = read_trace(s, sec, ctx)) != NDE_OK ||
        (rc = field_wrap_inner(f, sec, "a cnf", ctx, &name, &s->base.inner)) !=
            NDE_OK)
        return rc;
    const nde_field_type *it = s->base.inner->type;
    if (!it->jvp_vjp || (s->hutchinson && !it->jvp))
        return nde_section_error(sec, "inner", ctx, "field plugin '%s' has "
                                 "no %s, which the gradient of the %s "
                                 "trace needs (mlp, linear and galerkin "
                                 "have it)",
                                 it->info.name,
                                 it->jvp_vjp ? "jvp" : "jvp_vjp",
                                 s->hutchinson ? "hutchinson" : "exact");
    s->d = s->base.inner->dim;
    const size_t n = f->batch_max * s->d;
    if (!(s->z = malloc(n * sizeof *s->z)) ||
        !(s->v = malloc(n * sizeof *s->v)) ||
        !(s->w = malloc(n * sizeof *s->w)) ||
        !(s->out = malloc(n * sizeof *s->out)) ||
        !(s->acc = malloc(n * sizeof *s->acc)))
        return nde_error(ctx, NDE_ENOMEM, "cnf: out of memory");
    f->dim = s->hutchinson ? 2 * s->d + 1 : s->d + 1;
    f->nparams = s->base.inner->nparams;
    return NDE_OK;
}

static const nde_key cnf_keys[] = {
    {"inner", NDE_KEY_WORD, NULL,
     "the flow's field f(t, z), configured in section [field.NAME] "
     "(dimension d; needs jvp_vjp: mlp, linear or galerkin)"},
    {"trace", NDE_KEY_WORD, "exact",
     "exact (state [z, l]: d VJPs per evaluation, for small d) or "
     "hutchinson (state [z, l, e]: e^T J e with the probe e a constant "
     "state, one VJP per evaluation)"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type cnf_type = {
    .info = NDE_FIELD_INFO(
        .name = "cnf",
        .description = "continuous normalizing flow: dz = f(z), dl = "
                       "-tr(df/dz) (exact or Hutchinson), f an inner field",
        .keys = cnf_keys,
        .version = "1"),
    .create = cnf_create,
    .destroy = cnf_destroy,
    .init_params = field_wrap_init_params,
    .eval = cnf_eval,
    .vjp = cnf_vjp,
    .param_name = field_wrap_param_name,
};

NDE_MODULE(&cnf_type.info);
