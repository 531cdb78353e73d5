/*
 * implicit.h - the linear algebra of implicit solvers (Rosenbrock, ESDIRK)
 * and their shared key and checks: per batch row the dense dim x dim
 * Jacobian J = df/dy of the field and the time derivative df/dt at a
 * point, and the LU factors of W = I/(h gamma) - J (its own for a few
 * columns, LAPACK's dgetrf and dgetrs from OpenBLAS above), with the
 * solves against them (and the transposed ones of step VJPs).
 *
 * Values a field declares quadratures (nde_field.quadrature: the last q
 * of each row, read by no derivative) have zero columns in J: only the
 * other m = dim - q columns are computed and kept (dim x m a row), W is
 * factored over the m x m block, and a solve takes the quadratures by
 * substitution (implicit_solve). An adjoint's parameter cotangent is
 * such a tail: its backward solve then needs m, not dim, columns.
 *
 * J comes from the field's jvp column by column (m JVPs of the whole
 * batch, each counted in s->counts.nvjp) when it is exact, else from
 * forward differences (m evaluations, counted in s->counts.nfe):
 * column j of row r is (f(y + d e_j) - f(y)) / d with
 * d = sqrt(eps) max(|y_rj|, |h f_rj|), the larger of the value and its
 * change over the step (a floor independent of the problem's scale,
 * 1e-5, cost Robertson's y2 ~ 1e-13 a wrong J and 1.6 to 3.8 times the
 * steps), every row perturbed at once (rows are independent). df/dt
 * is a central difference in t (two evaluations) with the step
 * d_t = cbrt(eps) max(|t|, |h|), the scale of the step and of t's own
 * precision, its error O(d_t^2) small enough for fifth order at the
 * step sizes where that order shows.
 *
 * J and df/dt are kept for the point (t, y, theta) they were computed
 * at and reused while the solver is asked about the same point (a step
 * retried with a smaller h after a rejection); W is refactored only when
 * h gamma or J changed. Everything is allocated by implicit_init; the
 * other calls never allocate.
 */
#ifndef NDE_SOLVERS_IMPLICIT_H
#define NDE_SOLVERS_IMPLICIT_H

#include "nde/nde.h"

typedef struct implicit_lin {
    size_t dim_max, batch_max, nparams;
    int exact;              /* J from the field's jvp                     */
    int with_dT;            /* implicit_jacobian also computes df/dt      */
    double *J;              /* batch x dim x cols, each column-major      */
    double *W;              /* LU factors of W's cols x cols blocks       */
    double *dinv;           /* batch x cols: 1 / U's diagonal (small LU)  */
    int *ipiv;              /* batch x cols: LAPACK's pivots, or the small
                               LU's permutation (up to IMPLICIT_SMALL_LU)  */
    double *dT;             /* df/dt, batch x dim                         */
    double *v, *yp, *fp, *fm; /* scratch, batch x dim each               */
    /* the point J and dT are of, while jvalid */
    double *y, *theta, t;
    double h;               /* the step that scaled df/dt's difference     */
    size_t batch, dim;
    size_t cols;            /* dim - quadratures: J's columns, W's order  */
    int jvalid;
    double hgamma;          /* of the factors in W, while wvalid          */
    int wvalid;
    long njac, nfact;       /* Jacobians computed, W factorised (rows)    */
} implicit_lin;

/* The solvers' key jacobian = auto | exact | differences, an entry of
 * their keys tables. */
#define IMPLICIT_JACOBIAN_KEY                                                \
    {"jacobian", NDE_KEY_WORD, "auto",                                        \
     "df/dy from the field's JVP (exact), from forward differences "          \
     "(differences), or exact when the field has a JVP (auto)"}

/* Workspace for batch_max rows of `dim_max` values (J of at most
 * cols_max columns) and `nparams` parameters; exact: J from the field's
 * jvp; with_dT: df/dt too (a Rosenbrock method). NDE_ENOMEM on failure
 * (implicit_free accepts a half-built one). */
int implicit_init(implicit_lin *L, size_t dim_max, size_t cols_max,
                  size_t batch_max, size_t nparams, int exact, int with_dT);

/* implicit_init for the solver being created: its field's sizes, the
 * jacobian key of its section (errors name the key), and the size limit
 * of the dense matrices (2^26 values each of J and W; NDE_EINVAL with a
 * message naming the solver). */
int implicit_create(implicit_lin *L, nde_solver *s, int with_dT);
void implicit_free(implicit_lin *L);

/* W of at most this many columns is factored by the small LU below, not
 * LAPACK's (implicit.c says why). */
#define IMPLICIT_SMALL_LU 16

/* The factorisation P a = L U of the m x m column-major a in place (L
 * unit lower, partial pivoting: dgetrf's choices of pivot), perm[i] the
 * row of a that is row i of P a (0-based; LAPACK's ipiv are the swaps
 * that make it), and dinv[k] = 1 / U_kk for the solves (which multiply: a
 * division's latency, in the chain of a back substitution, was their
 * largest cost): 0, or k + 1 when U's pivot k is the first that is 0
 * (the factors are then not usable). Then x = A^-1 x and x = A^-T x; x
 * aliases none of the factors. */
int implicit_small_lu_factor(double *a, size_t m, int *perm, double *dinv);
void implicit_small_lu_solve(const double *a, size_t m, const int *perm,
                             const double *dinv, double *x);
void implicit_small_lu_solve_transposed(const double *a, size_t m,
                                        const int *perm, const double *dinv,
                                        double *x);

/* J and df/dt of s->field at (t, y, theta) for s->batch rows, f0 =
 * f(t, y); h the step about to be taken (scales the t difference). Kept
 * when the point is the last one's. Field statuses are returned as
 * they come. */
int implicit_jacobian(implicit_lin *L, nde_solver *s, const double *theta,
                      double t, double h, const double *y, const double *f0);

/* The exact J at (t, y) for s->batch rows, from the field's jvp (m
 * JVPs) or else its VJP row by row (dim VJPs), whatever the jacobian
 * key: a step VJP's Jacobian at a stage. Not kept as a point's (the next
 * implicit_jacobian recomputes); W is invalid after. */
int implicit_jacobian_at(implicit_lin *L, nde_solver *s, const double *theta,
                         double t, const double *y);

/* Factor W = I/hgamma - J for every row; NDE_ERETRY (the driver shrinks
 * the step) when one is singular. */
int implicit_factor(implicit_lin *L, double hgamma);

/* The largest max-row norm of the rows' J over the values that are not
 * quadratures (bounds |lambda|; the quadratures add only zeros). */
double implicit_row_norm_max(const implicit_lin *L);

/* x <- W^{-1} x, row by row (batch x dim values). */
void implicit_solve(const implicit_lin *L, double *x);

/* x <- W^{-T} x with the same factors (the transposed solves of a step
 * VJP). */
void implicit_solve_transposed(const implicit_lin *L, double *x);

/* The second-derivative term of a step VJP: yb += d/dy (w . J v) and
 * thetabar += d/dtheta (w . J v), J = df/dy at (t, y) (summed over the
 * rows; either may be NULL). From the field's jvp_vjp when it has one
 * (exact); else a central difference of its VJP along v,
 *     (vjp(y + e v, w) - vjp(y - e v, w)) / (2 e),
 * e max|v| = cbrt(eps) max(1, max|y|): exact for fields quadratic in y,
 * otherwise a relative error of order e^2 max|v|^2 |f'''| / |f''|
 * (about 1e-11 at unit scales). The J of a step from differences (not
 * exact) is differentiated as if it were the exact J: their difference is
 * of order sqrt(eps). Uses L->v and L->yp. */
int implicit_jacobian_vjp(implicit_lin *L, nde_solver *s, const double *theta,
                          double t, const double *y, const double *v,
                          const double *w, double *yb, double *thetabar);

/* The VJP of the df/dt held in L (the central difference in t that
 * implicit_jacobian took at L's point) with cotangent dTb: yb and
 * thetabar accumulate. Uses L->v. */
int implicit_time_derivative_vjp(implicit_lin *L, nde_solver *s,
                                 const double *theta, const double *dTb,
                                 double *yb, double *thetabar);

/* Forget the point (the field or theta changed in a way a comparison
 * cannot see). */
void implicit_forget(implicit_lin *L);

#endif
