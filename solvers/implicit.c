/*
 * implicit.c - Jacobians, df/dt and LU-factored W for implicit solvers
 * (contract in implicit.h).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "implicit.h"

/* LAPACK (OpenBLAS ships it): Fortran calling convention, the trailing
 * length of the character argument included. */
void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv,
             int *info);
void dgetrs_(const char *trans, const int *n, const int *nrhs, const double *a,
             const int *lda, const int *ipiv, double *b, const int *ldb,
             int *info, size_t trans_len);

/*
 * W of at most IMPLICIT_SMALL_LU columns is factored and solved here, not
 * by LAPACK: OpenBLAS's dgetrf and dgetrs take a lock and a work buffer on
 * every call, which cost more than the arithmetic of a few rows (perf of
 * bench_stiff: pthread_mutex_lock and unlock 24 % of its samples, E5's and
 * Robertson's 4 and 3 rows). Larger ones go to LAPACK's blocked code.
 */
int implicit_small_lu_factor(double *a, size_t m, int *perm, double *dinv)
{
    int info = 0;

    for (size_t k = 0; k < m; k++)
        perm[k] = (int)k;
    for (size_t k = 0; k < m; k++) {
        double *ck = a + k * m, big = fabs(ck[k]);
        size_t p = k;
        for (size_t i = k + 1; i < m; i++)
            if (fabs(ck[i]) > big) {
                big = fabs(ck[i]);
                p = i;
            }
        if (ck[p] == 0.0) {
            if (!info)
                info = (int)k + 1;
            dinv[k] = 0.0;
            continue;
        }
        if (p != k) {
            const int t = perm[k];
            perm[k] = perm[p];
            perm[p] = t;
            for (size_t j = 0; j < m; j++) {
                const double v = a[j * m + k];
                a[j * m + k] = a[j * m + p];
                a[j * m + p] = v;
            }
        }
        dinv[k] = 1.0 / ck[k];
        /* by the reciprocal unless that overflows (reference LAPACK
         * dgetf2's sfmin test; OpenBLAS's dgetrf has none and gives inf) */
        if (fabs(ck[k]) >= DBL_MIN)
            for (size_t i = k + 1; i < m; i++)
                ck[i] *= dinv[k];
        else
            for (size_t i = k + 1; i < m; i++)
                ck[i] /= ck[k];
        for (size_t j = k + 1; j < m; j++) {
            double *cj = a + j * m;
            for (size_t i = k + 1; i < m; i++)
                cj[i] -= ck[i] * cj[k];
        }
    }
    return info;
}

/*
 * The solves' bodies, inlined where m is a constant: for the orders up to
 * SOLVE_UNROLLED the compiler unrolls them whole (with m known only at
 * run time a solve of order 4 took 280 instructions, callgrind on E5, a
 * third of kvaerno5's) and keeps v in registers. x is read once through
 * the permutation and each value written once, when it is final:
 * swapping values in x, as LAPACK's pivots ask, left 16-byte loads of
 * values just stored 8 bytes at a time, which the CPU cannot forward
 * (perf of E5: the solve 31 % of kvaerno5's time for 10 % of its
 * instructions), and a copy of v to x at the end became such a pair.
 */
#define SOLVE_UNROLLED 8

static inline __attribute__((always_inline)) void
lu_solve_body(const double *restrict a, size_t m, const int *restrict perm,
              const double *restrict dinv, double *restrict x)
{
    double v[IMPLICIT_SMALL_LU];

    for (size_t i = 0; i < m; i++)
        v[i] = x[perm[i]];
    for (size_t j = 0; j < m; j++)      /* L y = P x, by columns */
        for (size_t i = j + 1; i < m; i++)
            v[i] -= a[j * m + i] * v[j];
    for (size_t j = m; j-- > 0;) {      /* U x = y, by columns */
        x[j] = v[j] *= dinv[j];
        for (size_t i = 0; i < j; i++)
            v[i] -= a[j * m + i] * v[j];
    }
}

/* U^T y = x, L^T z = y, then x = P^T z. */
static inline __attribute__((always_inline)) void
lu_solve_transposed_body(const double *restrict a, size_t m,
                         const int *restrict perm,
                         const double *restrict dinv, double *restrict x)
{
    double v[IMPLICIT_SMALL_LU];

    for (size_t j = 0; j < m; j++) {
        double sum = x[j];
        for (size_t i = 0; i < j; i++)
            sum -= a[j * m + i] * v[i];
        v[j] = sum * dinv[j];
    }
    for (size_t j = m; j-- > 0;) {
        for (size_t i = j + 1; i < m; i++)
            v[j] -= a[j * m + i] * v[i];
        x[perm[j]] = v[j];
    }
}

/* GCC's vectorizer (on at -O2 since GCC 12) pairs neighbouring values of
 * v into 16-byte operations and moves them through the stack, where the
 * same stalls come back (perf of E5: the solves above still 31 % of
 * kvaerno5's time with it, 13 to 17 % without). */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_VECTORIZE __attribute__((optimize("no-tree-vectorize")))
#else
#define NO_VECTORIZE
#endif

/* case M: body(..., M, ...) for M = 1 .. SOLVE_UNROLLED, else m */
#define BY_ORDER(body, a, m, perm, dinv, x)                                   \
    switch (m) {                                                              \
    case 1: body(a, 1, perm, dinv, x); break;                                 \
    case 2: body(a, 2, perm, dinv, x); break;                                 \
    case 3: body(a, 3, perm, dinv, x); break;                                 \
    case 4: body(a, 4, perm, dinv, x); break;                                 \
    case 5: body(a, 5, perm, dinv, x); break;                                 \
    case 6: body(a, 6, perm, dinv, x); break;                                 \
    case 7: body(a, 7, perm, dinv, x); break;                                 \
    case SOLVE_UNROLLED: body(a, SOLVE_UNROLLED, perm, dinv, x); break;       \
    default: body(a, m, perm, dinv, x);                                       \
    }

NO_VECTORIZE
void implicit_small_lu_solve(const double *a, size_t m, const int *perm,
                             const double *dinv, double *x)
{
    BY_ORDER(lu_solve_body, a, m, perm, dinv, x)
}

NO_VECTORIZE
void implicit_small_lu_solve_transposed(const double *a, size_t m,
                                        const int *perm, const double *dinv,
                                        double *x)
{
    BY_ORDER(lu_solve_transposed_body, a, m, perm, dinv, x)
}

/* The scale of a difference step where y and f both vanish. */
#define JAC_FLOOR 1e-5

/* The dense J and W of every row take 2 batch dim^2 doubles: refused
 * above 1 GiB (a large augmented state of an adjoint's backward solve,
 * whose parameter part would make J mostly zeros). */
#define MATRIX_MAX ((size_t)1 << 26)

/* The columns of J a solve needs: those of the values that are not
 * quadratures (nde_field.quadrature), whose derivatives may be read. */
static size_t jac_cols(const nde_field *f)
{
    return f->quadrature < f->dim ? f->dim - f->quadrature : 0;
}

/* jacobian = auto | exact | differences */
static int jacobian_key(nde_solver *s, int *exact)
{
    const int has_jvp = s->field->type->jvp != NULL;
    const char *word = "auto";
    int rc;

    if (s->section &&
        (rc = nde_get_string(s->section, "jacobian", &word, s->ctx)))
        return rc;
    if (strcmp(word, "auto") == 0)
        *exact = has_jvp;
    else if (strcmp(word, "differences") == 0)
        *exact = 0;
    else if (strcmp(word, "exact") != 0)
        return nde_section_error(s->section, "jacobian", s->ctx,
                                 "unknown jacobian '%s' (expected auto, "
                                 "exact or differences)", word);
    else if (!has_jvp)
        return nde_section_error(s->section, "jacobian", s->ctx,
                                 "exact needs the field's JVP, which field "
                                 "'%s' does not provide (use auto or "
                                 "differences)", s->field->type->info.name);
    else
        *exact = 1;
    return NDE_OK;
}

int implicit_create(implicit_lin *L, nde_solver *s, int with_dT)
{
    const size_t dim = s->field->dim, n = s->batch_max * dim;
    const size_t cols = jac_cols(s->field);
    int exact = 0, rc;

    if (cols > 0 && dim > MATRIX_MAX / cols / s->batch_max)
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s': the dense Jacobians of %zu rows of "
                         "dimension %zu would take %.0f MiB (at most %zu "
                         "values each of J and W); use an explicit solver "
                         "for a system this large", s->type->info.name,
                         s->batch_max, dim,
                         2.0 * (double)n * (double)cols * 8.0 / 1048576.0,
                         MATRIX_MAX);
    if ((rc = jacobian_key(s, &exact)))
        return rc;
    return implicit_init(L, dim, cols, s->batch_max, s->field->nparams,
                         exact, with_dT);
}

int implicit_init(implicit_lin *L, size_t dim_max, size_t cols_max,
                  size_t batch_max, size_t nparams, int exact, int with_dT)
{
    const size_t n = dim_max * batch_max, nn = n * cols_max;

    memset(L, 0, sizeof *L);
    L->dim_max = dim_max;
    L->batch_max = batch_max;
    L->nparams = nparams;
    L->exact = exact;
    L->with_dT = with_dT;
    /* one block of doubles: J, W, dinv, dT, v, yp, fp, fm, y, theta */
    if (!(L->J = malloc((2 * nn + 7 * n + nparams + 1) * sizeof(double))) ||
        !(L->ipiv = malloc(n * sizeof(int))))
        return NDE_ENOMEM;
    L->W = L->J + nn;
    L->dinv = L->W + nn;
    L->dT = L->dinv + n;
    L->v = L->dT + n;
    L->yp = L->v + n;
    L->fp = L->yp + n;
    L->fm = L->fp + n;
    L->y = L->fm + n;
    L->theta = L->y + n;
    return NDE_OK;
}

void implicit_free(implicit_lin *L)
{
    free(L->J);
    free(L->ipiv);
    memset(L, 0, sizeof *L);
}

void implicit_forget(implicit_lin *L)
{
    L->jvalid = 0;
    L->wvalid = 0;
}

static int same_point(const implicit_lin *L, const nde_solver *s,
                      const double *theta, double t, const double *y)
{
    const size_t dim = s->field->dim, n = s->batch * dim;
    const size_t np = s->field->nparams;

    return L->jvalid && L->t == t && L->batch == s->batch && L->dim == dim &&
           memcmp(L->y, y, n * sizeof *y) == 0 &&
           (np == 0 || memcmp(L->theta, theta, np * sizeof *theta) == 0);
}

/* Column j of every row's J from fp = J e_j (batch x dim). */
static void store_column(implicit_lin *L, size_t batch, size_t dim,
                         size_t cols, size_t j, const double *col)
{
    for (size_t r = 0; r < batch; r++)
        for (size_t i = 0; i < dim; i++)
            L->J[r * dim * cols + j * dim + i] = col[r * dim + i];
}

static int jacobian_exact(implicit_lin *L, nde_solver *s, const double *theta,
                          double t, const double *y)
{
    const size_t dim = s->field->dim, n = s->batch * dim;
    const size_t cols = jac_cols(s->field);
    int rc;

    memset(L->v, 0, n * sizeof *L->v);
    for (size_t j = 0; j < cols; j++) {
        for (size_t r = 0; r < s->batch; r++)
            L->v[r * dim + j] = 1.0;
        s->counts.nvjp++;
        if ((rc = nde_field_jvp(s->field, t, y, theta, L->v, L->fp,
                                s->batch)))
            return rc;
        store_column(L, s->batch, dim, cols, j, L->fp);
        for (size_t r = 0; r < s->batch; r++)
            L->v[r * dim + j] = 0.0;
    }
    return NDE_OK;
}

static int jacobian_differences(implicit_lin *L, nde_solver *s,
                                const double *theta, double t, double h,
                                const double *y, const double *f0)
{
    const size_t dim = s->field->dim, n = s->batch * dim;
    const size_t cols = jac_cols(s->field);
    const double srur = sqrt(DBL_EPSILON);
    int rc;

    memcpy(L->yp, y, n * sizeof *y);
    for (size_t j = 0; j < cols; j++) {
        for (size_t r = 0; r < s->batch; r++) {
            const size_t m = r * dim + j;
            /* the step actually taken, after rounding y + d */
            const double scale = fmax(fabs(y[m]), fabs(h * f0[m]));
            L->yp[m] = y[m] + srur * (scale > 0.0 ? scale : JAC_FLOOR);
            L->v[r] = L->yp[m] - y[m];
        }
        s->counts.nfe++;
        if ((rc = nde_field_eval(s->field, t, L->yp, theta, L->fp, s->batch)))
            return rc;
        for (size_t r = 0; r < s->batch; r++) {
            for (size_t i = 0; i < dim; i++)
                L->fp[r * dim + i] =
                    (L->fp[r * dim + i] - f0[r * dim + i]) / L->v[r];
            L->yp[r * dim + j] = y[r * dim + j];
        }
        store_column(L, s->batch, dim, cols, j, L->fp);
    }
    return NDE_OK;
}

/* The two times of df/dt's central difference at t for a step h. */
static void time_points(double t, double h, double *tp, double *tm)
{
    const double dt = cbrt(DBL_EPSILON) * fmax(fabs(t), fabs(h));

    *tp = t + dt;
    *tm = t - dt;
}

static int time_derivative(implicit_lin *L, nde_solver *s,
                           const double *theta, double t, double h,
                           const double *y)
{
    const size_t n = s->batch * s->field->dim;
    double tp, tm;
    int rc;

    time_points(t, h, &tp, &tm);

    s->counts.nfe += 2;
    if ((rc = nde_field_eval(s->field, tp, y, theta, L->fp, s->batch)) ||
        (rc = nde_field_eval(s->field, tm, y, theta, L->fm, s->batch)))
        return rc;
    for (size_t m = 0; m < n; m++)
        L->dT[m] = (L->fp[m] - L->fm[m]) / (tp - tm);
    return NDE_OK;
}

int implicit_jacobian(implicit_lin *L, nde_solver *s, const double *theta,
                      double t, double h, const double *y, const double *f0)
{
    const size_t dim = s->field->dim, n = s->batch * dim;
    const size_t np = s->field->nparams;
    int rc;

    if (same_point(L, s, theta, t, y))
        return NDE_OK;
    L->jvalid = L->wvalid = 0;
    rc = L->exact ? jacobian_exact(L, s, theta, t, y)
                  : jacobian_differences(L, s, theta, t, h, y, f0);
    if (rc || (L->with_dT && (rc = time_derivative(L, s, theta, t, h, y))))
        return rc;
    memcpy(L->y, y, n * sizeof *y);
    if (np)
        memcpy(L->theta, theta, np * sizeof *theta);
    L->t = t;
    L->h = h;
    L->batch = s->batch;
    L->dim = dim;
    L->cols = jac_cols(s->field);
    L->jvalid = 1;
    L->njac++;
    return NDE_OK;
}

int implicit_factor(implicit_lin *L, double hgamma)
{
    const size_t m = L->cols;
    const int d = (int)m;

    if (L->wvalid && L->hgamma == hgamma)
        return NDE_OK;
    L->wvalid = 0;
    for (size_t r = 0; r < L->batch && m > 0; r++) {
        double *W = L->W + r * m * m;
        const double *J = L->J + r * L->dim * m;
        int info;

        /* the block of the values that are not quadratures */
        for (size_t j = 0; j < m; j++)
            for (size_t i = 0; i < m; i++)
                W[j * m + i] = -J[j * L->dim + i];
        for (size_t i = 0; i < m; i++)
            W[i * m + i] += 1.0 / hgamma;
        if (m <= IMPLICIT_SMALL_LU)
            info = implicit_small_lu_factor(W, m, L->ipiv + r * m,
                                            L->dinv + r * m);
        else
            dgetrf_(&d, &d, W, &d, L->ipiv + r * m, &info);
        L->nfact++;
        if (info != 0)
            return NDE_ERETRY;
    }
    L->hgamma = hgamma;
    L->wvalid = 1;
    return NDE_OK;
}

double implicit_row_norm_max(const implicit_lin *L)
{
    const size_t m = L->cols, dim = L->dim;
    double most = 0.0;

    for (size_t r = 0; r < L->batch; r++) {
        const double *J = L->J + r * dim * m;
        for (size_t i = 0; i < m; i++) {
            double sum = 0.0;
            for (size_t j = 0; j < m; j++)
                sum += fabs(J[j * dim + i]);
            if (sum > most)
                most = sum;
        }
    }
    return most;
}

/* With quadratures (W = [Wa 0; -C I/hg], C their rows of J): Wa xa = ba,
 * then xq = hg (bq + C xa). */
void implicit_solve(const implicit_lin *L, double *x)
{
    const size_t m = L->cols, dim = L->dim;
    const int d = (int)m, one = 1;

    for (size_t r = 0; r < L->batch; r++) {
        double *xr = x + r * dim;
        const double *J = L->J + r * dim * m;
        int info;

        if (m > 0 && m <= IMPLICIT_SMALL_LU)
            implicit_small_lu_solve(L->W + r * m * m, m, L->ipiv + r * m,
                                    L->dinv + r * m, xr);
        else if (m > 0)
            dgetrs_("N", &d, &one, L->W + r * m * m, &d, L->ipiv + r * m, xr,
                    &d, &info, 1);
        for (size_t i = m; i < dim; i++) {
            double sum = xr[i];
            for (size_t j = 0; j < m; j++)
                sum += J[j * dim + i] * xr[j];
            xr[i] = L->hgamma * sum;
        }
    }
}

int implicit_jacobian_at(implicit_lin *L, nde_solver *s, const double *theta,
                         double t, const double *y)
{
    const size_t dim = s->field->dim, n = s->batch * dim;
    const size_t cols = jac_cols(s->field);
    int rc;

    L->jvalid = L->wvalid = 0;
    L->batch = s->batch;
    L->dim = dim;
    L->cols = cols;
    if (s->field->type->jvp)
        return jacobian_exact(L, s, theta, t, y);
    /* row i of every row's J: the VJP with e_i */
    memset(L->v, 0, n * sizeof *L->v);
    for (size_t i = 0; i < dim; i++) {
        for (size_t r = 0; r < s->batch; r++)
            L->v[r * dim + i] = 1.0;
        memset(L->fp, 0, n * sizeof *L->fp);
        s->counts.nvjp++;
        if ((rc = nde_field_vjp(s->field, t, y, theta, L->v, L->fp, NULL,
                                s->batch)))
            return rc;
        for (size_t r = 0; r < s->batch; r++) {
            for (size_t j = 0; j < cols; j++)
                L->J[r * dim * cols + j * dim + i] = L->fp[r * dim + j];
            L->v[r * dim + i] = 0.0;
        }
    }
    return NDE_OK;
}

/* W^T = [Wa^T -C^T; 0 I/hg]: xq = hg bq, then Wa^T xa = ba + C^T xq. */
void implicit_solve_transposed(const implicit_lin *L, double *x)
{
    const size_t m = L->cols, dim = L->dim;
    const int d = (int)m, one = 1;

    for (size_t r = 0; r < L->batch; r++) {
        double *xr = x + r * dim;
        const double *J = L->J + r * dim * m;
        int info;

        for (size_t i = m; i < dim; i++)
            xr[i] *= L->hgamma;
        for (size_t j = 0; j < m; j++)
            for (size_t i = m; i < dim; i++)
                xr[j] += J[j * dim + i] * xr[i];
        if (m > 0 && m <= IMPLICIT_SMALL_LU)
            implicit_small_lu_solve_transposed(L->W + r * m * m, m,
                                               L->ipiv + r * m,
                                               L->dinv + r * m, xr);
        else if (m > 0)
            dgetrs_("T", &d, &one, L->W + r * m * m, &d, L->ipiv + r * m,
                    xr, &d, &info, 1);
    }
}

int implicit_jacobian_vjp(implicit_lin *L, nde_solver *s, const double *theta,
                          double t, const double *y, const double *v,
                          const double *w, double *yb, double *thetabar)
{
    const size_t n = s->batch * s->field->dim;
    double vmax = 0.0, ymax = 1.0, e;
    int rc;

    s->counts.nvjp++;
    if (s->field->type->jvp_vjp)
        return nde_field_jvp_vjp(s->field, t, y, theta, v, w, yb, thetabar,
                                 s->batch);
    for (size_t m = 0; m < n; m++) {
        vmax = fmax(vmax, fabs(v[m]));
        ymax = fmax(ymax, fabs(y[m]));
    }
    if (vmax == 0.0)
        return NDE_OK;
    e = cbrt(DBL_EPSILON) * ymax / vmax;
    s->counts.nvjp++;
    for (int sign = 1; sign >= -1; sign -= 2) {
        for (size_t m = 0; m < n; m++) {
            L->yp[m] = y[m] + sign * e * v[m];
            L->v[m] = sign * w[m] / (2.0 * e);
        }
        if ((rc = nde_field_vjp(s->field, t, L->yp, theta, L->v, yb,
                                thetabar, s->batch)))
            return rc;
    }
    return NDE_OK;
}

int implicit_time_derivative_vjp(implicit_lin *L, nde_solver *s,
                                 const double *theta, const double *dTb,
                                 double *yb, double *thetabar)
{
    const size_t n = s->batch * s->field->dim;
    const double *y = L->y;
    double tp, tm;
    int rc;

    time_points(L->t, L->h, &tp, &tm);
    s->counts.nvjp += 2;
    for (size_t m = 0; m < n; m++)
        L->v[m] = dTb[m] / (tp - tm);
    if ((rc = nde_field_vjp(s->field, tp, y, theta, L->v, yb, thetabar,
                            s->batch)))
        return rc;
    for (size_t m = 0; m < n; m++)
        L->v[m] = -L->v[m];
    return nde_field_vjp(s->field, tm, y, theta, L->v, yb, thetabar,
                         s->batch);
}
