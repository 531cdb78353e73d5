/*
 * The implicit solvers' own LU for small W (solvers/implicit.c) against
 * LAPACK's dgetrf and dgetrs on matrices whose pivots need row swaps:
 * the same pivots, factors and solutions (plain and transposed) to
 * round-off, residuals at round-off, and a singular matrix reported at
 * the same pivot.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "../../solvers/implicit.h"

void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv,
             int *info);
void dgetrs_(const char *trans, const int *n, const int *nrhs, const double *a,
             const int *lda, const int *ipiv, double *b, const int *ldb,
             int *info, size_t trans_len);

#define M IMPLICIT_SMALL_LU

/* A deterministic value in [-1, 1). */
static double draw(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (double)((*state >> 8) & 0xffffff) / 8388608.0 - 1.0;
}

/* |A x - b| (or A^T) over |A| |x| + |b|, the largest component's. */
static double backward_error(const double *a, size_t m, const double *x,
                             const double *b, int trans)
{
    double worst = 0.0;
    for (size_t i = 0; i < m; i++) {
        double r = -b[i], size = fabs(b[i]);
        for (size_t j = 0; j < m; j++) {
            const double aij = trans ? a[i * m + j] : a[j * m + i];
            r += aij * x[j];
            size += fabs(aij * x[j]);
        }
        worst = fmax(worst, fabs(r) / size);
    }
    return worst;
}

START_TEST(test_against_lapack)
{
    unsigned state = 7;
    int swaps = 0;

    for (size_t m = 1; m <= M; m++)
        for (int rep = 0; rep < 20; rep++) {
            double a[M * M], own[M * M], lap[M * M], b[M], x[M], y[M];
            double dinv[M];
            int piv_own[M], piv_lap[M], perm_lap[M], info, d = (int)m;
            int one = 1;
            /* small diagonal: partial pivoting must swap rows */
            for (size_t i = 0; i < m * m; i++)
                a[i] = draw(&state);
            for (size_t i = 0; i < m; i++)
                a[i * m + i] *= 1e-3;
            for (size_t i = 0; i < m * m; i++)
                own[i] = lap[i] = a[i];
            ck_assert_int_eq(implicit_small_lu_factor(own, m, piv_own, dinv),
                             0);
            for (size_t k = 0; k < m; k++)
                ck_assert_double_eq(dinv[k], 1.0 / own[k * m + k]);
            dgetrf_(&d, &d, lap, &d, piv_lap, &info);
            ck_assert_int_eq(info, 0);
            /* LAPACK's swaps, applied in order, make the permutation */
            for (size_t k = 0; k < m; k++)
                perm_lap[k] = (int)k;
            for (size_t k = 0; k < m; k++) {
                const int p = piv_lap[k] - 1, t = perm_lap[k];
                perm_lap[k] = perm_lap[p];
                perm_lap[p] = t;
                swaps += p != (int)k;
            }
            for (size_t k = 0; k < m; k++)
                ck_assert_int_eq(piv_own[k], perm_lap[k]);
            for (size_t i = 0; i < m * m; i++)
                ck_assert_msg(fabs(own[i] - lap[i]) <=
                                  1e-12 * (1.0 + fabs(lap[i])),
                              "m %zu: factor %zu: %.17g, LAPACK %.17g", m, i,
                              own[i], lap[i]);
            for (int trans = 0; trans < 2; trans++) {
                for (size_t i = 0; i < m; i++)
                    b[i] = x[i] = y[i] = draw(&state);
                if (trans)
                    implicit_small_lu_solve_transposed(own, m, piv_own, dinv,
                                                       x);
                else
                    implicit_small_lu_solve(own, m, piv_own, dinv, x);
                dgetrs_(trans ? "T" : "N", &d, &one, lap, &d, piv_lap, y, &d,
                        &info, 1);
                ck_assert_double_le(backward_error(a, m, x, b, trans), 1e-13);
                for (size_t i = 0; i < m; i++)
                    ck_assert_msg(fabs(x[i] - y[i]) <=
                                      1e-9 * (1.0 + fabs(y[i])),
                                  "m %zu trans %d: x[%zu] %.17g, LAPACK "
                                  "%.17g", m, trans, i, x[i], y[i]);
            }
        }
    ck_assert_int_gt(swaps, 100);
}
END_TEST

START_TEST(test_singular)
{
    /* column 2 a multiple of column 0: U's third pivot (k = 2) is 0 */
    double a[9] = {1, 2, 3, 4, 5, 6, 2, 4, 6}, lap[9], dinv[3];
    int piv[3], piv_lap[3], info, d = 3;

    for (int i = 0; i < 9; i++)
        lap[i] = a[i];
    dgetrf_(&d, &d, lap, &d, piv_lap, &info);
    ck_assert_int_eq(implicit_small_lu_factor(a, 3, piv, dinv), info);
    ck_assert_int_eq(info, 3);
}
END_TEST

START_TEST(test_subnormal_pivot)
{
    /* column 0 subnormal: 1 / pivot overflows, so L's entry must come
     * from a division (OpenBLAS's dgetrf gives inf here) */
    double a[4] = {3e-310, 1e-310, 1.0, 2.0}, dinv[2];
    const double l = 1e-310 / 3e-310;
    int piv[2];

    ck_assert_int_eq(implicit_small_lu_factor(a, 2, piv, dinv), 0);
    ck_assert_int_eq(piv[0], 0);
    ck_assert_double_eq(a[1], l);
    ck_assert_double_eq(a[3], 2.0 - l);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("small_lu");
    TCase *tc = tcase_create("small_lu");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_against_lapack);
    tcase_add_test(tc, test_singular);
    tcase_add_test(tc, test_subnormal_pivot);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
