/*
 * kinetic: the RNODE penalties (Finlay, Jacobsen, Nurbekyan, Oberman,
 * ICML 2020, "How to train your neural ODE", arXiv 2002.02798):
 *   R = kinetic  * (1/B) sum_b int ||f(t, y_b(t))||^2 dt
 *     + jacobian * (1/B) sum_b int ||J(t, y_b(t)) eps_b||^2 dt
 * over the training solve (B batch rows, norms over the state dimension).
 * E||J eps||^2 = ||J||_F^2 for eps ~ N(0, I): Hutchinson's estimator with
 * one Gaussian probe per solve (eps: n values from the seed of
 * before_solve, Box-Muller on SplitMix64 uniforms), held for the whole
 * solve as in RNODE.
 *
 * RNODE integrates these as two extra states of the ODE; here the same
 * integrals are computed by 3-node Gauss-Legendre quadrature (exact for
 * polynomials of degree 5; Abramowitz & Stegun 25.4.29) on every accepted
 * step of the solve, with y at the nodes from the recorded dense output.
 * So the solve's step sequence is not changed by the penalty.
 *
 * J eps is the central difference (f(y + delta eps) - f(y - delta eps)) /
 * (2 delta) with delta = 2^-17 (about cbrt(machine epsilon)) times the
 * power of two at or above max(1, max|y|) at that node: relative to |y|,
 * and piecewise constant in y, so the gradient of the estimate is exact
 * almost everywhere: two VJPs of f at y +- delta eps.
 *
 * Gradient: dtheta directly through field VJPs at the nodes, and dR/dy at
 * each node as a cotangent at that node's time (a dense output inside the
 * step), which the adjoint carries back through the trajectory. Field
 * evaluations and VJPs are counted in s->counts; out->nfe/nvjp are the
 * deltas. The cotangent buffers grow with the number of steps and are kept.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

#define NODES 3

/* Gauss-Legendre on [0, 1]: nodes 1/2 -+ sqrt(15)/10, weights 5/18, 8/18,
 * 5/18 (Abramowitz & Stegun 25.4.29 mapped from [-1, 1]). */
static const double gl_c[NODES] = {0.5 - 0.3872983346207416885, 0.5,
                                   0.5 + 0.3872983346207416885};
static const double gl_w[NODES] = {5.0 / 18.0, 8.0 / 18.0, 5.0 / 18.0};

typedef struct kinetic_state {
    double kinetic, jacobian;
    size_t n_max;
    uint64_t seed;
    int seeded;
    double *eps, *y, *yq, *yp, *ym, *f, *fp, *fm, *v; /* n_max each */
    double *g;                /* cotangent values, cap x n_max         */
    nde_cotangent *ct;        /* cap                                   */
    size_t cap;
} kinetic_state;

static const nde_key kinetic_keys[] = {
    {"kinetic", NDE_KEY_DOUBLE, "1",
     "factor on the kinetic energy int ||f||^2 dt (>= 0; 0 = off)"},
    {"jacobian", NDE_KEY_DOUBLE, "1",
     "factor on int ||J||_F^2 dt, Hutchinson estimate with one Gaussian "
     "probe per solve (>= 0; 0 = off)"},
    {NULL, 0, NULL, NULL}};

static void kinetic_destroy(nde_regularizer *r)
{
    kinetic_state *k = r->state;

    if (!k)
        return;
    free(k->eps);
    free(k->y);
    free(k->yq);
    free(k->yp);
    free(k->ym);
    free(k->f);
    free(k->fp);
    free(k->fm);
    free(k->v);
    free(k->g);
    free(k->ct);
    free(k);
    r->state = NULL;
}

static int kinetic_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                          nde_ctx *ctx)
{
    kinetic_state *k;
    double **bufs[9];
    int rc;

    if (!(k = calloc(1, sizeof *k)))
        return nde_error(ctx, NDE_ENOMEM, "regularizer 'kinetic': out of "
                         "memory");
    r->state = k;
    k->kinetic = 1.0;
    k->jacobian = 1.0;
    if (sec && ((rc = nde_get_double(sec, "kinetic", &k->kinetic, ctx)) ||
                (rc = nde_get_double(sec, "jacobian", &k->jacobian, ctx))))
        return rc;
    if (!(k->kinetic >= 0))
        return nde_section_error(sec, "kinetic", ctx, "must be >= 0, got %g",
                                 k->kinetic);
    if (!(k->jacobian >= 0))
        return nde_section_error(sec, "jacobian", ctx, "must be >= 0, got %g",
                                 k->jacobian);
    k->n_max = s->batch_max * s->field->dim;
    bufs[0] = &k->eps; bufs[1] = &k->y; bufs[2] = &k->yq; bufs[3] = &k->yp;
    bufs[4] = &k->ym; bufs[5] = &k->f; bufs[6] = &k->fp; bufs[7] = &k->fm;
    bufs[8] = &k->v;
    for (int i = 0; i < 9; i++)
        if (!(*bufs[i] = malloc(k->n_max * sizeof(double))))
            return nde_error(ctx, NDE_ENOMEM, "regularizer 'kinetic': out of "
                             "memory");
    r->needs = NDE_NEEDS_DENSE;
    return NDE_OK;
}

static int kinetic_before_solve(nde_regularizer *r, nde_solve_request *req,
                                uint64_t seed)
{
    kinetic_state *k = r->state;

    (void)req;
    k->seed = seed;
    k->seeded = 1;
    return NDE_OK;
}

static double uniform01(uint64_t seed, uint64_t i)
{
    return (double)(nde_seed_derive(seed, i) >> 11) * 0x1.0p-53;
}

/* eps: n standard normal values (Box-Muller, u1 in (0, 1]). */
static void draw_probe(double *eps, size_t n, uint64_t seed)
{
    const double two_pi = 6.283185307179586477;

    for (size_t i = 0; i < n; i += 2) {
        const double u1 = 1.0 - uniform01(seed, 2 * (uint64_t)i);
        const double u2 = uniform01(seed, 2 * (uint64_t)i + 1);
        const double rad = sqrt(-2.0 * log(u1));
        eps[i] = rad * cos(two_pi * u2);
        if (i + 1 < n)
            eps[i + 1] = rad * sin(two_pi * u2);
    }
}

static int grow(kinetic_state *k, size_t want)
{
    double *g;
    nde_cotangent *ct;

    if (want <= k->cap)
        return NDE_OK;
    if (want < 2 * k->cap)
        want = 2 * k->cap;
    if (!(g = realloc(k->g, want * k->n_max * sizeof *g)))
        return NDE_ENOMEM;
    k->g = g;
    if (!(ct = realloc(k->ct, want * sizeof *ct)))
        return NDE_ENOMEM;
    k->ct = ct;
    k->cap = want;
    return NDE_OK;
}

/* The probe's step at y: 2^-17 times the power of two >= max(1, max|y|). */
static double probe_delta(const double *y, size_t n)
{
    double m = 1.0;
    int e;

    for (size_t i = 0; i < n; i++)
        if (fabs(y[i]) > m)
            m = fabs(y[i]);
    (void)frexp(m, &e); /* m = f 2^e, f in [0.5, 1) */
    return ldexp(1.0, e - 17);
}

/* The penalty at one node (t, y): its value (unweighted, per unit of the
 * quadrature weight c) and, when wanted, c_grad * dR/dy into ybar (zeroed
 * here) and c_grad * dR/dtheta added to thetabar. */
static int node(kinetic_state *k, nde_solver *s, const double *theta,
                double t, const double *y, size_t n, double c_grad,
                double *ybar, double *thetabar, double *value)
{
    nde_field *f = s->field;
    const size_t batch = s->batch;
    double sum = 0.0;
    int rc;

    if (ybar)
        memset(ybar, 0, n * sizeof(double));
    if (k->kinetic > 0) {
        double e = 0.0;
        s->counts.nfe++;
        if ((rc = nde_field_eval(f, t, y, theta, k->f, batch)))
            return rc;
        for (size_t i = 0; i < n; i++)
            e += k->f[i] * k->f[i];
        sum += k->kinetic * e;
        if (ybar) {
            for (size_t i = 0; i < n; i++)
                k->v[i] = 2.0 * c_grad * k->kinetic * k->f[i];
            s->counts.nvjp++;
            if ((rc = nde_field_vjp(f, t, y, theta, k->v, ybar, thetabar,
                                    batch)))
                return rc;
        }
    }
    if (k->jacobian > 0) {
        const double delta = probe_delta(y, n);
        double e = 0.0;
        for (size_t i = 0; i < n; i++) {
            k->yp[i] = y[i] + delta * k->eps[i];
            k->ym[i] = y[i] - delta * k->eps[i];
        }
        s->counts.nfe += 2;
        if ((rc = nde_field_eval(f, t, k->yp, theta, k->fp, batch)) ||
            (rc = nde_field_eval(f, t, k->ym, theta, k->fm, batch)))
            return rc;
        for (size_t i = 0; i < n; i++) {
            const double d = (k->fp[i] - k->fm[i]) / (2.0 * delta);
            k->fp[i] = d; /* J eps */
            e += d * d;
        }
        sum += k->jacobian * e;
        if (ybar) {
            /* d/d(J eps) = 2 c (J eps); through the difference quotient. */
            for (size_t i = 0; i < n; i++)
                k->v[i] = c_grad * k->jacobian * k->fp[i] / delta;
            s->counts.nvjp++;
            if ((rc = nde_field_vjp(f, t, k->yp, theta, k->v, ybar, thetabar,
                                    batch)))
                return rc;
            for (size_t i = 0; i < n; i++)
                k->v[i] = -k->v[i];
            s->counts.nvjp++;
            if ((rc = nde_field_vjp(f, t, k->ym, theta, k->v, ybar, thetabar,
                                    batch)))
                return rc;
        }
    }
    *value = sum;
    return NDE_OK;
}

static int kinetic_after_solve(nde_regularizer *r,
                               const nde_regularizer_input *in,
                               nde_regularizer_output *out)
{
    kinetic_state *k = r->state;
    nde_solver *s = in->solver;
    const nde_trajectory *fwd = in->fwd;
    const size_t n = s->batch * s->field->dim, m = fwd->nsteps;
    const nde_solver_counts c0 = s->counts;
    const int grad = in->weight != 0.0;
    size_t istate = 0, nct = 0;
    double total = 0.0;
    int rc = NDE_OK;

    out->value = 0.0;
    out->ct = NULL;
    out->nct = 0;
    out->nfe = 0;
    out->nvjp = 0;
    if (m == 0 || (k->kinetic == 0 && k->jacobian == 0))
        return NDE_OK;
    if (k->jacobian > 0 && !k->seeded)
        return nde_error(r->ctx, NDE_EINVAL, "regularizer 'kinetic': "
                         "after_solve without before_solve (no probe drawn)");
    k->seeded = 0;
    if (fwd->n != n || !(fwd->record & NDE_NEEDS_DENSE) || fwd->nstates == 0)
        return nde_error(r->ctx, NDE_EINVAL, "regularizer 'kinetic': the "
                         "trajectory does not hold the dense output of this "
                         "batch (record NDE_NEEDS_DENSE)");
    if (grad && grow(k, NODES * m))
        return nde_error(r->ctx, NDE_ENOMEM, "regularizer 'kinetic': out of "
                         "memory for %zu steps", m);
    if (k->jacobian > 0)
        draw_probe(k->eps, n, k->seed);

    for (size_t j = 0; j < m; j++) {
        const double *kj = nde_trajectory_stages(fwd, j);
        const double h = fwd->h[j];
        /* Step start: the stored state, or the dense end of the step
         * before (checkpointed records). */
        if (istate < fwd->nstates &&
            nde_trajectory_state_step(fwd, istate) == j) {
            memcpy(k->y, nde_trajectory_state(fwd, istate++),
                   n * sizeof(double));
        } else if ((rc = nde_solver_dense_from(
                        s, k->y, fwd->h[j - 1],
                        nde_trajectory_stages(fwd, j - 1), 1.0, k->yq)) ==
                   NDE_OK) {
            memcpy(k->y, k->yq, n * sizeof(double));
        } else {
            goto done;
        }
        for (int q = 0; q < NODES; q++) {
            const double tq = fwd->t[j] + gl_c[q] * h;
            const double c = gl_w[q] * fabs(h) / (double)s->batch;
            double *ybar = grad ? k->g + nct * n : NULL;
            double e;
            if ((rc = nde_solver_dense_from(s, k->y, h, kj, gl_c[q], k->yq)))
                goto done;
            rc = node(k, s, in->theta, tq, k->yq, n, in->weight * c, ybar,
                      out->thetabar, &e);
            if (rc != NDE_OK)
                goto done;
            total += c * e;
            if (grad) {
                k->ct[nct].t = tq;
                k->ct[nct].g = ybar;
                nct++;
            }
        }
    }
    out->value = total;
    out->ct = grad ? k->ct : NULL;
    out->nct = nct;
done:
    out->nfe = s->counts.nfe - c0.nfe;
    out->nvjp = s->counts.nvjp - c0.nvjp;
    if (rc == NDE_ERETRY)
        rc = nde_error(r->ctx, NDE_ENONFINITE, "regularizer 'kinetic': "
                       "non-finite field values at a quadrature node");
    return rc;
}

static const nde_regularizer_type kinetic_type = {
    .info = NDE_REGULARIZER_INFO(
        .name = "kinetic",
        .description = "RNODE: int ||f||^2 dt and Hutchinson int ||J||_F^2 "
                       "dt by Gauss-Legendre on the solve's steps",
        .keys = kinetic_keys,
        .needs = NDE_NEEDS_DENSE,
        .version = "1"),
    .create = kinetic_create,
    .destroy = kinetic_destroy,
    .before_solve = kinetic_before_solve,
    .after_solve = kinetic_after_solve,
};

NDE_MODULE(&kinetic_type.info);
