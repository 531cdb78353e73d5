/*
 * kvaerno5 - Kvaerno's ESDIRK 5(4): seven stages, the first explicit, the
 * others implicit with the same diagonal gamma = 0.26; stiffly accurate
 * and L-stable, with an embedded order-4 solution (its sixth stage) that
 * is stiffly accurate too (A. Kvaerno, "Singly diagonally implicit
 * Runge-Kutta methods with an explicit first stage", BIT 44, 489 (2004)).
 * The numbers were read from diffrax, diffrax/_solver/kvaerno5.py (commit
 * 5ea5fcb0). A step of size h from (t, y), 0-based stages, k_0 = f(t, y):
 *
 *     z_i = psi_i + h gamma f(t + c_i h, z_i),
 *     psi_i = y + h sum_{j<i} a_ij k_j,   k_i = (z_i - psi_i) / (h gamma)
 *     y_next = z_6,   err = h sum_i (b_i - bhat_i) k_i = z_6 - z_5
 *
 * (c_2 = 1.23: one stage evaluates the field past t + h.) k_6 = f(t + h,
 * y_next) is the next step's k_0 (FSAL). Dense output: the cubic Hermite
 * interpolant of y, y_next, h k_0 and h k_6 (order 3; the method has no
 * interpolant of its own; diffrax does the same).
 *
 * Each stage is solved by a simplified Newton iteration, with W = I/(h'
 * gamma) - J for a J and an h' of earlier (Hairer and Wanner, Solving
 * ODEs II, Sec. IV.8), started from a predictor of values only: stage 1
 * from y + c_1 h k_0, stage i >= 2 from the polynomial in c through the
 * last three (two for stage 2) of (0, y), (c_1, z_1), ..., (c_{i-1},
 * z_{i-1}) at c_i (z_6 so starts from z_5). diffrax's and
 * OrdinaryDiffEq's predictors, y + h sum_j alpha_ij k_j, take the stage
 * derivatives k_j, which in a stiff component carry lambda times the
 * stage's Newton error: on E5 they start 1e3 to 3e4 tolerances off, and
 * these take 14 to 28 % fewer evaluations on the five stiff problems of
 * bench_stiff at rtol 1e-6 (README). Each iteration:
 *     W dz = (psi_i - z)/(h' gamma) + (h/h') f(t_i, z),   z += dz
 * |dz| in the scaled RMS norm of the step's tolerances (1e-12 both on a
 * fixed step; newton_tol both when that key is set), rate q = |dz_k| /
 * |dz_{k-1}|. Converged when q/(1 - q) |dz| <= NEWTON_KAPPA (1e-3: at
 * 1e-2, in Hairer and Wanner's range, Van der Pol mu = 1e3 at rtol 1e-6
 * ended 30 tolerances off, at 1e-3 3, for 15 % more evaluations); on the
 * first iteration (no rate yet) when |dz| < NEWTON_FIRST (as
 * OrdinaryDiffEq.jl's nlsolve); or when dz is at round-off (4 eps |z| in
 * every value: relative, since a problem's scale may be far below 1).
 * Diverged when q >= 1 or after NEWTON_MAXIT iterations. J is reused
 * across steps; it is recomputed at a step's start after a step whose
 * iterations converged slowly (q > the key jacobian_rate), and when an
 * iteration fails with an old J (the step then restarts). A J of m
 * columns costs m JVPs (or evaluations) and its LU, so the default rate
 * grows with m: min(0.1, 0.005 m) (Hairer's RADAU5 asks for 0.001 on
 * small systems and 0.1 where J is costly; 0.1 for all, as before, took
 * 1.03 to 1.3 times the evaluations of this rule and 1.05 to 1.3 times
 * its time on bench_stiff's five problems of 2 to 8 values). A failure
 * with a fresh J returns NDE_ERETRY: the driver retries with h / 4
 * (counted in the solve's retries). W is refactored when h moves by more
 * than 20 % from its h'; the driver's invalidate (a new solve, an event)
 * forgets J. The rows of a batch share these decisions (the norm runs
 * over the batch): a row stepped in a batch equals it stepped alone to
 * about the Newton tolerance, not bit for bit.
 *
 * The step VJP takes the stages as solved exactly (implicit function
 * theorem): with cotangents zb on z_i and kb on k_i = f(t_i, z_i),
 *     mu = (I/(h gamma) - J(t_i, z_i))^{-T} (zb + kb / (h gamma))
 *     psib = zb + J^T mu,   thetab += (df/dtheta)^T mu
 * with J at the stage (implicit_jacobian_at: exact, dim JVPs or VJPs, and
 * its own LU). It is the derivative of the converged step, so it differs
 * from the derivative of the computed one by about the Newton tolerance.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "eest_vjp.h"
#include "implicit.h"

#define STAGES 7
#define NEWTON_MAXIT 10
#define NEWTON_KAPPA 1e-3
#define NEWTON_FIRST 1e-5
#define NEWTON_FIXED_TOL 1e-12
#define W_REUSE 0.2

static const double gam = 0.26;

static const double A[STAGES][STAGES] = {
    {0},
    {0.26},
    {0.13, 0.84033320996790809},
    {0.22371961478320505, 0.47675532319799699, -0.06470895363112615},
    {0.16648564323248321, 0.10450018841591720, 0.03631482272098715,
     -0.13090704451073998},
    {0.13855640231268224, 0.0, -0.04245337201752043, 0.02446657898003141,
     0.61943039072480676},
    {0.13659751177640291, 0.0, -0.05496908796538376, -0.04118626728321046,
     0.62993304899016403, 0.06962479448202728},
};

/* b - bhat: b is row 6 with gamma, bhat row 5 with gamma */
static const double btilde[STAGES] = {
    0.13659751177640291 - 0.13855640231268224, 0.0,
    -0.05496908796538376 + 0.04245337201752043,
    -0.04118626728321046 - 0.02446657898003141,
    0.62993304899016403 - 0.61943039072480676, 0.06962479448202728 - 0.26,
    0.26};

static const double c[STAGES] = {0.0, 0.52, 1.230333209967908,
                                 0.8957659843500759, 0.43639360985864756,
                                 1.0, 1.0};

/* The predictor's nodes: stage i >= 2 starts from its weights pw[i][.]
 * on the stages first_node(i) .. i - 1 (stage 0 standing for y). */
#define PRED_NODES 3

static int first_node(int i)
{
    return i > PRED_NODES ? i - PRED_NODES : 0;
}

typedef struct kv_work {
    implicit_lin lin;
    double *k;              /* STAGES blocks of n                          */
    double *zs;             /* STAGES blocks: stage i's value, iterated in
                               place (block 0 unused: y is stage 0)    */
    double pw[STAGES][PRED_NODES];  /* the predictor's Lagrange weights   */
    double *psi, *z, *fz, *dz, *yn; /* n each; z the step VJP's stage   */
    double *kb, *zb, *yb, *mu, *errb, *ynb; /* the step VJP's             */
    int k0;                 /* K0_* : where the next step's k_0 is        */
    int jstale;             /* recompute J at the next step's start       */
    double newton_tol;      /* the key; 0: the solve's tolerances         */
    double jac_rate;        /* the key; 0: min(0.1, 0.005 m)              */
} kv_work;

static void kv_destroy(nde_solver *s)
{
    kv_work *w = s->work;

    if (w) {
        implicit_free(&w->lin);
        free(w->k);
        free(w);
        s->work = NULL;
    }
}

static int kv_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    kv_work *w = calloc(1, sizeof *w);
    double *p;
    int rc;

    if (!w)
        return NDE_ENOMEM;
    s->work = w;
    if ((rc = implicit_create(&w->lin, s, 0)) ||
        (s->section &&
         ((rc = nde_get_double_in(s->section, "newton_tol", 0.0, 0, 1.0, 0,
                                  &w->newton_tol, s->ctx)) ||
          (rc = nde_get_double_in(s->section, "jacobian_rate", 0.0, 0, 1.0,
                                  0, &w->jac_rate, s->ctx)))))
        return rc;
    if (!(w->k = malloc((3 * STAGES + 11) * n * sizeof(double))))
        return NDE_ENOMEM;
    p = w->k + STAGES * n;
    w->kb = p;
    p += STAGES * n;
    w->zs = p;
    p += STAGES * n;
    w->psi = p;
    w->z = p + n;
    w->fz = p + 2 * n;
    w->dz = p + 3 * n;
    w->yn = p + 4 * n;
    w->zb = p + 5 * n;
    w->yb = p + 6 * n;
    w->mu = p + 7 * n;
    w->errb = p + 8 * n;
    w->ynb = p + 9 * n;
    for (int i = 2; i < STAGES; i++)
        for (int j = first_node(i); j < i; j++) {
            double l = 1.0;
            for (int q = first_node(i); q < i; q++)
                if (q != j)
                    l *= (c[i] - c[q]) / (c[j] - c[q]);
            w->pw[i][j - first_node(i)] = l;
        }
    return NDE_OK;
}

/* k_0 of the next step: to evaluate; k[0] already (a step retried from
 * the same point); k[6] (FSAL, copied at the step: the last step's dense
 * output needs k[0] until then) */
enum { K0_EVAL, K0_HERE, K0_LAST };

static void kv_accept(nde_solver *s)
{
    kv_work *w = s->work;

    w->k0 = K0_LAST;
}

static void kv_invalidate(nde_solver *s)
{
    kv_work *w = s->work;

    w->k0 = K0_EVAL;
    implicit_forget(&w->lin);
}

/* psi <- y + h sum_{j<i} coef_ij k_j */
static void combine(const kv_work *w, size_t n, const double *coef, int i,
                    double h, const double *y, double *out)
{
    for (size_t m = 0; m < n; m++) {
        double v = 0.0;
        for (int j = 0; j < i; j++)
            v += coef[j] * w->k[(size_t)j * n + m];
        out[m] = y[m] + h * v;
    }
}

/* z += dz; returns the mean square of dz scaled by atol + rtol |z| (at
 * least DBL_MIN), rn = 1 / n, and sets *at_roundoff when every |dz| is
 * within 4 eps |z|. */
static double newton_update(double *z, const double *dz, size_t n, double rn,
                            double rtol, double atol, int *at_roundoff)
{
    double sum = 0.0;
    int round = 1;

    for (size_t m = 0; m < n; m++) {
        const double zm = z[m] + dz[m], scale = atol + rtol * fabs(zm);
        const double r = dz[m] / (scale > DBL_MIN ? scale : DBL_MIN);
        z[m] = zm;
        sum += r * r;
        round &= fabs(dz[m]) <= 4.0 * DBL_EPSILON * fabs(zm);
    }
    *at_roundoff = round;
    return sum * rn;
}

/* Stage i's starting point into z (see the top). */
static void predict(const kv_work *w, size_t n, int i, double h,
                    const double *y, double *z)
{
    const int first = first_node(i);

    if (i == 1) {
        for (size_t m = 0; m < n; m++)
            z[m] = y[m] + c[1] * h * w->k[m];
        return;
    }
    for (size_t m = 0; m < n; m++) {
        double v = 0.0;
        for (int j = first; j < i; j++)
            v += w->pw[i][j - first] * (j ? w->zs[(size_t)j * n + m] : y[m]);
        z[m] = v;
    }
}

#define NEWTON_FAILED 1

/* Stage i's z, iterated in place in its block of w->zs, and k_i; *qmax:
 * the largest rate seen. Returns NDE_OK, NEWTON_FAILED, or a field
 * status. */
static int newton(nde_solver *s, const double *theta, double ti, double h,
                  int i, const double *y, double rtol, double atol,
                  double *qmax)
{
    kv_work *w = s->work;
    implicit_lin *L = &w->lin;
    const size_t n = s->batch * s->field->dim;
    const double hg = h * gam, hw = L->hgamma, rhw = 1.0 / hw, rhg = 1.0 / hg;
    const double ghw = hg / hw, rn = 1.0 / (double)n;
    double prev = 0.0;
    double *ki = w->k + (size_t)i * n, *z = w->zs + (size_t)i * n;
    int it, rc;

    combine(w, n, A[i], i, h, y, w->psi);
    predict(w, n, i, h, y, z);
    for (it = 0; it < NEWTON_MAXIT; it++) {
        double nd2, nd;
        int at_roundoff;
        s->counts.nfe++;
        if ((rc = nde_field_eval(s->field, ti, z, theta, w->fz, s->batch)))
            return rc;
        for (size_t m = 0; m < n; m++)
            w->dz[m] = (w->psi[m] - z[m]) * rhw + ghw * w->fz[m];
        implicit_solve(L, w->dz);
        nd2 = newton_update(z, w->dz, n, rn, rtol, atol, &at_roundoff);
        if (!isfinite(nd2))
            return NEWTON_FAILED;
        if (at_roundoff)
            break;          /* no rate to learn from */
        /* the first decision on the square, q = nd / prev multiplied
         * out of the others: fewer roots and divisions between dz and
         * the branches (E5: 0.94x the time) */
        if (it == 0 && nd2 < NEWTON_FIRST * NEWTON_FIRST)
            break;
        nd = sqrt(nd2);
        if (it > 0) {
            if (nd >= prev)
                return NEWTON_FAILED;
            if (nd > *qmax * prev)
                *qmax = nd / prev;
            if (nd2 <= NEWTON_KAPPA * (prev - nd))
                break;
        }
        prev = nd;
    }
    if (it == NEWTON_MAXIT)
        return NEWTON_FAILED;
    for (size_t m = 0; m < n; m++)
        ki[m] = (z[m] - w->psi[m]) * rhg;
    return NDE_OK;
}

/* The stages 1..6 with the J and W in w->lin. */
static int stages(nde_solver *s, const double *theta, double t, double h,
                  const double *y, double rtol, double atol, double *qmax)
{
    int rc;

    for (int i = 1; i < STAGES; i++)
        if ((rc = newton(s, theta, t + c[i] * h, h, i, y, rtol, atol, qmax)))
            return rc;
    return NDE_OK;
}

static int kv_step(nde_solver *s, const double *theta, double t, double h,
                   const double *dw, const double *y, const double *aux,
                   double *y_next, double *aux_next, double *err,
                   const nde_norm_spec *norm, double *eest)
{
    kv_work *w = s->work;
    implicit_lin *L = &w->lin;
    const size_t n = s->batch * s->field->dim;
    const double rtol = w->newton_tol > 0.0 ? w->newton_tol
                        : norm ? norm->rtol : NEWTON_FIXED_TOL;
    const double atol = w->newton_tol > 0.0 ? w->newton_tol
                        : norm ? norm->atol : NEWTON_FIXED_TOL;
    const double hg = h * gam;
    double qmax = 0.0;
    int rc;

    (void)dw; (void)aux; (void)aux_next;
    if (w->k0 == K0_LAST) {
        memcpy(w->k, w->k + (STAGES - 1) * n, n * sizeof *w->k);
    } else if (w->k0 == K0_EVAL) {
        s->counts.nfe++;
        if ((rc = nde_field_eval(s->field, t, y, theta, w->k, s->batch)))
            return rc;
    }
    w->k0 = K0_HERE;
    for (;;) {
        /* J of this point (a retried step's), or an older one to reuse */
        int fresh = L->jvalid && L->batch == s->batch && L->t == t &&
                    memcmp(L->y, y, n * sizeof *y) == 0;
        if (!fresh && (!L->jvalid || w->jstale || L->batch != s->batch)) {
            /* differences need f(t, y) itself, not the FSAL k_0 (off
             * by the Newton residual / (h gamma), far above their step) */
            implicit_forget(L);
            if (!L->exact) {
                s->counts.nfe++;
                if ((rc = nde_field_eval(s->field, t, y, theta, w->fz,
                                         s->batch)))
                    return rc;
            }
            if ((rc = implicit_jacobian(L, s, theta, t, h, y,
                                        L->exact ? w->k : w->fz)))
                return rc;
            w->jstale = 0;
            fresh = 1;
        }
        if (!L->wvalid || fabs(hg / L->hgamma - 1.0) > W_REUSE)
            if ((rc = implicit_factor(L, hg)))
                return rc;
        rc = stages(s, theta, t, h, y, rtol, atol, &qmax);
        if (rc != NEWTON_FAILED)
            break;
        if (fresh)
            return NDE_ERETRY;
        w->jstale = 1;
    }
    if (rc)
        return rc;
    if (qmax > (w->jac_rate > 0.0 ? w->jac_rate
                                  : fmin(0.1, 0.005 * (double)L->cols)))
        w->jstale = 1;
    memcpy(y_next, w->zs + (STAGES - 1) * n, n * sizeof *y_next);
    memcpy(w->yn, w->zs + (STAGES - 1) * n, n * sizeof *w->yn);
    if (err) {
        for (size_t m = 0; m < n; m++) {
            double e = 0.0;
            for (int i = 0; i < STAGES; i++)
                e += btilde[i] * w->k[(size_t)i * n + m];
            err[m] = h * e;
        }
        if (eest)
            *eest = nde_error_norm_spec(norm, err, y, y_next, n);
    }
    return NDE_OK;
}

/* The Hermite cubic's weights of y, y_next, h k_0, h k_6 at theta. */
static void hermite(double th, double *wy, double *wyn, double *wk0,
                    double *wk1)
{
    const double p = th * (th - 1.0);

    *wy = (1.0 - th) - p * (1.0 - 2.0 * th);
    *wyn = th + p * (1.0 - 2.0 * th);
    *wk0 = p * (th - 1.0);
    *wk1 = p * th;
}

/* A recorded step's stages: y_next, k_0, k_6. */
static int kv_dense(const nde_solver *s, const double *y, double h,
                    const double *const *k, double theta, double *out)
{
    const kv_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double *yn = k ? k[0] : w->yn, *k0 = k ? k[1] : w->k;
    const double *k6 = k ? k[2] : w->k + (STAGES - 1) * n;
    double a, b, c0, c1;

    hermite(theta, &a, &b, &c0, &c1);
    for (size_t m = 0; m < n; m++)
        out[m] = a * y[m] + b * yn[m] + h * (c0 * k0[m] + c1 * k6[m]);
    return NDE_OK;
}

static void kv_last_stages(const nde_solver *s, const double **k)
{
    const kv_work *w = s->work;
    const size_t n = s->batch * s->field->dim;

    k[0] = w->yn;
    k[1] = w->k;
    k[2] = w->k + (STAGES - 1) * n;
}

/* Stage i's reverse (see the top): zb and kb_i in, psib into w->zb. */
static int stage_vjp(nde_solver *s, const double *theta, double ti, double h,
                     int i, double *thetabar)
{
    kv_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double hg = h * gam;
    int rc;

    if ((rc = implicit_jacobian_at(&w->lin, s, theta, ti, w->z)) ||
        (rc = implicit_factor(&w->lin, hg)))
        return rc;
    for (size_t m = 0; m < n; m++)
        w->mu[m] = w->zb[m] + w->kb[(size_t)i * n + m] / hg;
    implicit_solve_transposed(&w->lin, w->mu);
    s->counts.nvjp++;
    return nde_field_vjp(s->field, ti, w->z, theta, w->mu, w->zb, thetabar,
                         s->batch);
}

static int kv_step_vjp(nde_solver *s, const double *theta, double t, double h,
                       const double *dw, const double *y, const double *aux,
                       const nde_step_cotangent *ct, double *ybar,
                       double *auxbar, double *thetabar)
{
    kv_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    nde_norm_spec whole = {ct->rtol, ct->atol, NULL, 0};
    int rc;

    (void)dw; (void)aux; (void)auxbar;
    /* the step from y (not the FSAL stage of another), tolerances of the
     * solve when it has them */
    w->k0 = K0_EVAL;
    if ((rc = kv_step(s, theta, t, h, NULL, y, NULL, w->yb, NULL, w->errb,
                      ct->rtol > 0.0 ? &whole : NULL, NULL)))
        return rc == NDE_ERETRY
                   ? nde_error(s->ctx, NDE_ENONFINITE, "solver 'kvaerno5': "
                               "the Newton iteration of the step from t = "
                               "%g (h = %g) failed in its VJP", t, h)
                   : rc;
    w->k0 = K0_EVAL;
    memset(w->kb, 0, STAGES * n * sizeof *w->kb);
    memset(w->yb, 0, n * sizeof *w->yb);
    for (size_t m = 0; m < n; m++)
        w->ynb[m] = ct->y_next ? ct->y_next[m] : 0.0;
    for (size_t q = 0; q < ct->ndense; q++) {
        const double *g = ct->dense[q].g;
        double a, b, c0, c1;
        hermite(ct->dense[q].theta, &a, &b, &c0, &c1);
        for (size_t m = 0; m < n; m++) {
            w->yb[m] += a * g[m];
            w->ynb[m] += b * g[m];
            w->kb[m] += h * c0 * g[m];
            w->kb[(STAGES - 1) * n + m] += h * c1 * g[m];
        }
    }
    if (ct->eest != 0.0) {
        eest_vjp(n, ct->eest, ct->rtol, ct->atol, w->errb, y, w->yn, w->dz,
                 w->yb, w->ynb);
        for (int i = 0; i < STAGES; i++)
            for (size_t m = 0; m < n; m++)
                w->kb[(size_t)i * n + m] += h * btilde[i] * w->dz[m];
    }
    memcpy(w->zb, w->ynb, n * sizeof *w->zb);
    for (int i = STAGES - 1; i >= 1; i--) {
        const double ti = t + c[i] * h;
        combine(w, n, A[i], i, h, y, w->psi);
        for (size_t m = 0; m < n; m++)
            w->z[m] = w->psi[m] + h * gam * w->k[(size_t)i * n + m];
        if ((rc = stage_vjp(s, theta, ti, h, i, thetabar)))
            return rc;
        /* w->zb is psib: into y and the earlier k */
        for (size_t m = 0; m < n; m++) {
            w->yb[m] += w->zb[m];
            for (int j = 0; j < i; j++)
                w->kb[(size_t)j * n + m] += h * A[i][j] * w->zb[m];
        }
        memset(w->zb, 0, n * sizeof *w->zb);
    }
    s->counts.nvjp++;
    if ((rc = nde_field_vjp(s->field, t, y, theta, w->kb, w->yb, thetabar,
                            s->batch)))
        return rc;
    implicit_forget(&w->lin);
    if (ybar)
        for (size_t m = 0; m < n; m++)
            ybar[m] += w->yb[m];
    return NDE_OK;
}

static const nde_key kv_keys[] = {
    IMPLICIT_JACOBIAN_KEY,
    {"newton_tol", NDE_KEY_DOUBLE, "0",
     "rtol and atol of the Newton iterations' norm (they stop at 1e-3 of "
     "it); 0: the solve's own (1e-12 on fixed steps)"},
    {"jacobian_rate", NDE_KEY_DOUBLE, "0",
     "recompute J after a step whose Newton iterations converged at a rate "
     "above this; 0: min(0.1, 0.005 x J's columns)"},
    {NULL, 0, NULL, NULL}};

static const nde_solver_type kvaerno5 = {
    .info = NDE_SOLVER_INFO(
        .name = "kvaerno5",
        .description = "Kvaerno's ESDIRK 5(4) (2004) for stiff problems: "
                       "L-stable, stiffly accurate, Hermite dense output; "
                       "simplified Newton per stage with the Jacobian (JVP "
                       "or differences) reused across steps",
        .keys = kv_keys,
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_DENSE | NDE_CAP_FSAL |
                    NDE_CAP_STEP_VJP,
        .version = "1"),
    .order = 5,
    .error_order = 4,
    .dense_order = 3,
    .ops = {.stages = 3,
            .create = kv_create,
            .destroy = kv_destroy,
            .step = kv_step,
            .accept = kv_accept,
            .invalidate = kv_invalidate,
            .dense = kv_dense,
            .last_stages = kv_last_stages,
            .step_vjp = kv_step_vjp},
};

NDE_MODULE(&kvaerno5.info);
