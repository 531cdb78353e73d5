/*
 * Load-time checks of an explicit Runge-Kutta tableau: its structure
 * against the flags it declares, and its declared orders against the
 * order conditions, so that a mistyped coefficient is refused when the
 * plugin is composed instead of silently converging at a lower order.
 *
 * Order conditions (Butcher, Numerical Methods for ODEs, 3rd ed. 2016,
 * Sec. 31, Table 312(I)): a method with weights w has order p when
 * w . v_t = 1 / gamma(t) for every rooted tree t with at most p vertices,
 * where v_t is the tree's elementary-weight vector over the stages built
 * from A and c = A 1. The 17 trees up to order 5 are listed below; the
 * 1188 of orders 6 to 10 are generated after them (Butcher, Sec. 30: a
 * tree is a root with a multiset of subtrees u_k, v_t = prod_k A v_{u_k}
 * elementwise and gamma(t) = |t| prod_k gamma(u_k)); a declared order
 * above 10 is checked up to 10. The same vectors check the
 * embedded weights bhat = b + btilde against error_order, and a dense
 * output b(theta) of order q by w = b(theta), 1 / gamma(t) replaced by
 * theta^|t| / gamma(t) (Hairer, Norsett, Wanner, Solving ODEs I, 2nd ed.,
 * Sec. II.6, Theorem 6.1).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "rk.h"

#define MAX_TREE_ORDER 10
#define MAX_TREES 1205            /* trees of order <= 10 (OEIS A000081)   */
/* The conditions are sums of products of coefficients given to double
 * precision: true ones hold to ~1e-16 times the size of their terms, wrong
 * ones miss by far more (a coefficient off in its 4th digit misses by
 * ~1e-4). High-order tableaus have terms of size 1e2 and more, hence the
 * tolerance relative to sum |w_i v_i| (at least 1). */
#define COND_TOL 1e-12
#define ROW_SUM_TOL 1e-15

typedef struct tree_vectors {
    int n;                        /* trees held                            */
    int order[MAX_TREES];         /* vertices of the tree                  */
    double gamma[MAX_TREES];      /* its density                           */
    double v[MAX_TREES][NDE_RK_MAX_STAGES];
} tree_vectors;

/* Every tree up to some order, each with A v_t (what a parent multiplies
 * in), ordered by order: the building blocks of the generated trees. */
typedef struct tree_forest {
    int n;
    int order[MAX_TREES];
    double gamma[MAX_TREES];
    double v[MAX_TREES][NDE_RK_MAX_STAGES];
    double av[MAX_TREES][NDE_RK_MAX_STAGES];
} tree_forest;

/* out = A x (s stages, A row-major). */
static void mat_vec(const double *a, const double *x, double *out, int s)
{
    for (int i = 0; i < s; i++) {
        double sum = 0.0;
        for (int j = 0; j < i; j++)
            sum += a[i * s + j] * x[j];
        out[i] = sum;
    }
}

static void tree(tree_vectors *tv, int *k, int order, double gamma,
                 const double *v, int s)
{
    tv->order[*k] = order;
    tv->gamma[*k] = gamma;
    memcpy(tv->v[*k], v, (size_t)s * sizeof *v);
    (*k)++;
}

/* The trees of order `order` whose root has subtrees of total order
 * `left` still to choose, from forest trees `from` .. `below` - 1 (a
 * multiset: indices never decrease), given the product `prod` and the
 * densities' product `gprod` of the subtrees chosen so far. */
static void grow(tree_forest *tf, const double *a, int s, int order,
                 int left, int from, int below, const double *prod,
                 double gprod)
{
    double next[NDE_RK_MAX_STAGES];

    if (left == 0) {
        const int k = tf->n++;
        tf->order[k] = order;
        tf->gamma[k] = order * gprod;
        memcpy(tf->v[k], prod, (size_t)s * sizeof *prod);
        mat_vec(a, prod, tf->av[k], s);
        return;
    }
    for (int u = from; u < below && tf->order[u] <= left; u++) {
        for (int i = 0; i < s; i++)
            next[i] = prod[i] * tf->av[u][i];
        grow(tf, a, s, order, left - tf->order[u], u, below, next,
             gprod * tf->gamma[u]);
    }
}

/* Append the trees of orders 6 .. p to tv (the forest is scratch). */
static void high_order_trees(tree_vectors *tv, tree_forest *tf,
                             const double *a, int s, int p)
{
    double one[NDE_RK_MAX_STAGES];

    for (int i = 0; i < s; i++)
        one[i] = 1.0;
    tf->n = 0;
    for (int order = 1; order <= p; order++) {
        const int first = tf->n;
        grow(tf, a, s, order, order - 1, 0, first, one, 1.0);
        if (order <= 5)
            continue;
        for (int k = first; k < tf->n; k++)
            tree(tv, &tv->n, order, tf->gamma[k], tf->v[k], s);
    }
}

/* The elementary-weight vectors of the 17 trees of order <= 5, in the
 * order of Butcher's Table 312(I). */
static void tree_vectors_build(tree_vectors *tv, const double *a,
                               const double *c, int s)
{
    double one[NDE_RK_MAX_STAGES], c2[NDE_RK_MAX_STAGES],
        c3[NDE_RK_MAX_STAGES], c4[NDE_RK_MAX_STAGES], ac[NDE_RK_MAX_STAGES],
        ac2[NDE_RK_MAX_STAGES], ac3[NDE_RK_MAX_STAGES],
        aac[NDE_RK_MAX_STAGES], aac2[NDE_RK_MAX_STAGES],
        aaac[NDE_RK_MAX_STAGES], cac[NDE_RK_MAX_STAGES],
        acac[NDE_RK_MAX_STAGES], t[NDE_RK_MAX_STAGES];
    int k = 0;

    for (int i = 0; i < s; i++) {
        one[i] = 1.0;
        c2[i] = c[i] * c[i];
        c3[i] = c2[i] * c[i];
        c4[i] = c3[i] * c[i];
    }
    mat_vec(a, c, ac, s);
    mat_vec(a, c2, ac2, s);
    mat_vec(a, c3, ac3, s);
    mat_vec(a, ac, aac, s);
    mat_vec(a, ac2, aac2, s);
    mat_vec(a, aac, aaac, s);
    for (int i = 0; i < s; i++)
        cac[i] = c[i] * ac[i];
    mat_vec(a, cac, acac, s);

    tree(tv, &k, 1, 1, one, s);
    tree(tv, &k, 2, 2, c, s);
    tree(tv, &k, 3, 3, c2, s);
    tree(tv, &k, 3, 6, ac, s);
    tree(tv, &k, 4, 4, c3, s);
    tree(tv, &k, 4, 8, cac, s);
    tree(tv, &k, 4, 12, ac2, s);
    tree(tv, &k, 4, 24, aac, s);
    tree(tv, &k, 5, 5, c4, s);
    for (int i = 0; i < s; i++)
        t[i] = c2[i] * ac[i];
    tree(tv, &k, 5, 10, t, s);
    for (int i = 0; i < s; i++)
        t[i] = c[i] * ac2[i];
    tree(tv, &k, 5, 15, t, s);
    for (int i = 0; i < s; i++)
        t[i] = c[i] * aac[i];
    tree(tv, &k, 5, 30, t, s);
    for (int i = 0; i < s; i++)
        t[i] = ac[i] * ac[i];
    tree(tv, &k, 5, 20, t, s);
    tree(tv, &k, 5, 20, ac3, s);
    tree(tv, &k, 5, 40, acac, s);
    tree(tv, &k, 5, 60, aac2, s);
    tree(tv, &k, 5, 120, aaac, s);
    tv->n = k;
}

/* The first tree of order <= p whose condition w . v = theta^|t| / gamma
 * fails, or -1. wsize[i]: the size of the terms w_i was computed from
 * (NULL: |w_i|), which the tolerance scales with. */
static int first_failed_tree(const tree_vectors *tv, const double *w,
                             const double *wsize, int s, int p, double theta,
                             double *residual)
{
    for (int k = 0; k < tv->n && tv->order[k] <= p; k++) {
        double sum = 0.0, size = 1.0;
        for (int i = 0; i < s; i++) {
            sum += w[i] * tv->v[k][i];
            size += fabs(tv->v[k][i]) * (wsize ? wsize[i] : fabs(w[i]));
        }
        *residual = sum - pow(theta, tv->order[k]) / tv->gamma[k];
        if (!(fabs(*residual) <= COND_TOL * size))
            return k;
    }
    return -1;
}

static int order_error(nde_ctx *ctx, const char *name, const char *what,
                       int declared, const tree_vectors *tv, int k,
                       double residual)
{
    return nde_error(ctx, NDE_EPLUGIN,
                     "solver '%s': %s does not have the declared order %d: "
                     "the order condition of tree %d (order %d, density %g) "
                     "misses by %.3g", name, what, declared, k + 1,
                     tv->order[k], tv->gamma[k], residual);
}

/* sum_j |r_ij| theta^j: the size of the terms of stage i's dense weight
 * b_i(theta) (Vern6's reach 1e5, Vern8's 1e6, where b_i(1) is at most
 * 176 and 32), which its rounding scales with. */
static double dense_size(const nde_rk_tableau *tab, int i, double theta)
{
    double size = 0.0, power = theta;
    for (int j = 0; j < tab->dense_degree; j++, power *= theta)
        size += fabs(tab->dense[i * tab->dense_degree + j]) * power;
    return size;
}

/* c_i = sum_j a_ij: every tree vector above assumes it (a and c of all
 * `total` stages). */
static int check_row_sums(nde_ctx *ctx, const char *name, const double *a,
                          const double *c, int total)
{
    for (int i = 0; i < total; i++) {
        double row = 0.0, size = 1.0;
        for (int j = 0; j < i; j++) {
            row += a[i * total + j];
            size += fabs(a[i * total + j]);
        }
        /* relative to the row's terms, as COND_TOL: Vern6's row 6 sums
         * terms up to 159 to 0.9725, 1.4e-14 off in doubles */
        if (!(fabs(row - c[i]) <= ROW_SUM_TOL * size))
            return nde_error(ctx, NDE_EPLUGIN,
                             "solver '%s': row %d of a sums to %.17g but "
                             "c[%d] = %.17g (c must be the row sums)", name,
                             i, row, i, c[i]);
    }
    return NDE_OK;
}

/* The extra stages of dense output: within the engine's limit, explicit,
 * with dense output to use them. Then a and c of all `total` stages into
 * a (total x total) and c, the step's first. */
static int augment(nde_ctx *ctx, const nde_solver_type *type, double *a,
                   double *c, int *total)
{
    const nde_rk_tableau *tab = type->tableau;
    const int s = tab->stages, extra = nde_rk_extra_stages(type);
    const int tot = s + extra;

    if (extra < 0 || tot > NDE_RK_MAX_STAGES ||
        (extra > 0 && (!tab->c_extra || !tab->a_extra ||
                       tab->dense_degree == 0)))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': %d extra stages: they need c_extra, "
                         "a_extra and dense output, and at most %d stages in "
                         "all", type->info.name, extra, NDE_RK_MAX_STAGES);
    memset(a, 0, (size_t)tot * tot * sizeof *a);
    for (int i = 0; i < s; i++) {
        memcpy(a + (size_t)i * tot, tab->a + (size_t)i * s,
               (size_t)s * sizeof *a);
        c[i] = tab->c[i];
    }
    for (int e = 0; e < extra; e++) {
        const double *row = tab->a_extra + (size_t)e * tot;
        for (int j = s + e; j < tot; j++)
            if (row[j] != 0.0)
                return nde_error(ctx, NDE_EPLUGIN,
                                 "solver '%s': a_extra[%d][%d] != 0, the "
                                 "extra stage %d is not explicit",
                                 type->info.name, e, j, s + e);
        memcpy(a + (size_t)(s + e) * tot, row, (size_t)tot * sizeof *a);
        c[s + e] = tab->c_extra[e];
    }
    *total = tot;
    return NDE_OK;
}

/* The highest order any of the solver's conditions is checked at. */
static int checked_order(const nde_solver_type *type)
{
    int p = type->order;

    if (type->tableau->btilde && type->error_order > p)
        p = type->error_order;
    if (type->tableau->dense_degree > 0 && type->dense_order > p)
        p = type->dense_order;
    return p < MAX_TREE_ORDER ? p : MAX_TREE_ORDER;
}

/* An embedded solution b + bt (bt NULL: none) of error_order. */
static int check_embedded(nde_ctx *ctx, const nde_solver_type *type,
                          const tree_vectors *tv, const double *bt, int s,
                          const char *what)
{
    double w[NDE_RK_MAX_STAGES] = {0}, residual;
    int k;

    if (!bt)
        return NDE_OK;
    for (int i = 0; i < type->tableau->stages; i++)
        w[i] = type->tableau->b[i] + bt[i];
    if ((k = first_failed_tree(tv, w, NULL, s, type->error_order, 1.0,
                               &residual)) >= 0)
        return order_error(ctx, type->info.name, what, type->error_order, tv,
                           k, residual);
    return NDE_OK;
}

static int check_orders(nde_ctx *ctx, const nde_solver_type *type,
                        tree_vectors *tvp, tree_forest *tf)
{
    static const double thetas[] = {0.25, 0.5, 0.75, 1.0};
    const nde_rk_tableau *tab = type->tableau;
    const char *name = type->info.name;
    const tree_vectors *tv = tvp;
    double a[NDE_RK_MAX_STAGES * NDE_RK_MAX_STAGES], c[NDE_RK_MAX_STAGES];
    double b[NDE_RK_MAX_STAGES] = {0}, w[NDE_RK_MAX_STAGES] = {0}, residual;
    int rc, k, s = 0;

    /* Every stage's vectors, the extra ones of dense output too; b and
     * bhat weigh those with 0. */
    if ((rc = augment(ctx, type, a, c, &s)) != NDE_OK ||
        (rc = check_row_sums(ctx, name, a, c, s)) != NDE_OK)
        return rc;
    memcpy(b, tab->b, (size_t)tab->stages * sizeof *b);
    tree_vectors_build(tvp, a, c, s);
    high_order_trees(tvp, tf, a, s, checked_order(type));
    if ((k = first_failed_tree(tv, b, NULL, s, type->order, 1.0,
                               &residual)) >= 0)
        return order_error(ctx, name, "the propagated solution (b)",
                           type->order, tv, k, residual);
    if ((rc = check_embedded(ctx, type, tv, tab->btilde, s,
                             "the embedded solution (b + btilde)")) ||
        (rc = check_embedded(ctx, type, tv, nde_rk_btilde2(type), s,
                             "the second embedded solution (b + btilde2)")))
        return rc;
    if (tab->dense_degree == 0)
        return NDE_OK;
    /* The dense output must end where the step ends (to round-off of its
     * coefficients' size) ... */
    nde_rk_dense_weights(tab, s, 1.0, 1.0, w);
    for (int i = 0; i < s; i++)
        if (!(fabs(w[i] - b[i]) <= COND_TOL * (1.0 + dense_size(tab, i, 1.0))))
            return nde_error(ctx, NDE_EPLUGIN,
                             "solver '%s': the dense output at theta = 1 is "
                             "not the step's end: b_%d(1) = %.17g, b_%d = "
                             "%.17g", name, i, w[i], i, b[i]);
    /* ... and have its declared order inside the step. */
    for (size_t j = 0; j < sizeof thetas / sizeof *thetas; j++) {
        double wsize[NDE_RK_MAX_STAGES];
        nde_rk_dense_weights(tab, s, thetas[j], 1.0, w);
        for (int i = 0; i < s; i++)
            wsize[i] = dense_size(tab, i, thetas[j]);
        if ((k = first_failed_tree(tv, w, wsize, s, type->dense_order,
                                   thetas[j], &residual)) >= 0) {
            char what[64];
            snprintf(what, sizeof what, "the dense output at theta = %g",
                     thetas[j]);
            return order_error(ctx, name, what, type->dense_order, tv, k,
                               residual);
        }
    }
    return NDE_OK;
}

int nde_rk_tableau_check_orders(nde_ctx *ctx, const nde_solver_type *type)
{
    /* Half a megabyte, of which a tableau of order p touches the trees up
     * to p (17 for order 5): off the stack. */
    tree_vectors *tv = malloc(sizeof *tv);
    tree_forest *tf = malloc(sizeof *tf);
    int rc = NDE_ENOMEM;

    if (tv && tf)
        rc = check_orders(ctx, type, tv, tf);
    free(tv);
    free(tf);
    return rc;
}
