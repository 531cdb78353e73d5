/*
 * rodas5p - the L-stable, stiffly accurate Rosenbrock-Wanner method Rodas5P
 * of Steinebach: order 5, an embedded order-4 estimate and a dense output
 * of order 4, eight stages (G. Steinebach, "Construction of
 * Rosenbrock-Wanner method Rodas5P and numerical benchmarks within the
 * Julia Differential Equations package", BIT Numer. Math. 63, 27 (2023)).
 * The numbers below were read from OrdinaryDiffEq.jl,
 * lib/OrdinaryDiffEqRosenbrock/src/rosenbrock_tableaus.jl (RODAS5PA, C, c,
 * d, H; commit b211787f), which gives the method in the form of Hairer and
 * Wanner (Solving ODEs II, Sec. IV.7, (7.25)) with stage increments U_i:
 *
 *     (I/(h gamma) - J) U_i = f(t + c_i h, y + sum_{j<i} A_ij U_j)
 *                             + sum_{j<i} (C_ij / h) U_j + h d_i df/dt
 *     y_next = y + sum_{j<7} A_7j U_j + U_7        (stiffly accurate)
 *     err    = U_7                                  (order-4 embedded)
 *
 * (0-based stages; A's last row is the weights b), J = df/dy and df/dt
 * at (t, y) (implicit.h: one Jacobian a step, reused by every stage and
 * by a retried step from the same point). Dense output, with the vectors
 * K_k = sum_i H_ki U_i of the step:
 *
 *     y(t + theta h) = (1 - theta) y + theta (y_next + (1 - theta)
 *                      (K_0 + theta (K_1 + theta K_2)))
 *
 * A recorded step keeps y_next, K_0, K_1, K_2. The step VJP (below)
 * runs the stages backwards with transposed solves; the step depends on
 * J(y), so it needs the field's second derivative (jvp_vjp, or central
 * differences of its VJP: implicit.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "eest_vjp.h"
#include "implicit.h"

#define STAGES 8

static const double gam = 0.21193756319429014;

static const double A[STAGES][STAGES] = {
    {0},
    {3.0},
    {2.849394379747939, 0.45842242204463923},
    {-6.954028509809101, 2.489845061869568, -10.358996098473584},
    {2.8029986275628964, 0.5072464736228206, -0.3988312541770524,
     -0.04721187230404641},
    {-7.502846399306121, 2.561846144803919, -11.627539656261098,
     -0.18268767659942256, 0.030198172008377946},
    {-7.502846399306121, 2.561846144803919, -11.627539656261098,
     -0.18268767659942256, 0.030198172008377946, 1.0},
    {-7.502846399306121, 2.561846144803919, -11.627539656261098,
     -0.18268767659942256, 0.030198172008377946, 1.0, 1.0},
};

static const double C[STAGES][STAGES] = {
    {0},
    {-14.155112264123755},
    {-17.97296035885952, -2.859693295451294},
    {147.12150275711716, -1.41221402718213, 71.68940251302358},
    {165.43517024871676, -0.4592823456491126, 42.90938336958603,
     -5.961986721573306},
    {24.854864614690072, -3.0009227002832186, 47.4931110020768,
     5.5814197821558125, -0.6610691825249471},
    {30.91273214028599, -3.1208243349937974, 77.79954646070892,
     34.28646028294783, -19.097331116725623, -28.087943162872662},
    {37.80277123390563, -3.2571969029072276, 112.26918849496327,
     66.9347231244047, -40.06618937091002, -54.66780262877968,
     -9.48861652309627},
};

static const double c[STAGES] = {0.0, 0.6358126895828704, 0.4095798393397535,
                            0.9769306725060716, 0.4288403609558664, 1.0, 1.0,
                            1.0};

static const double d[STAGES] = {0.21193756319429014, -0.42387512638858027,
                            -0.3384627126235924, 1.8046452872882734,
                            2.325825639765069, 0.0, 0.0, 0.0};

#define NDENSE 3
static const double H[NDENSE][STAGES] = {
    {25.948786856663858, -2.5579724845846235, 10.433815404888879,
     -2.3679251022685204, 0.524948541321073, 1.1241088310450404,
     0.4272876194431874, -0.17202221070155493},
    {-9.91568850695171, -0.9689944594115154, 3.0438037242978453,
     -24.495224566215796, 20.176138334709044, 15.98066361424651,
     -6.789040303419874, -6.710236069923372},
    {11.419903575922262, 2.8879645146136994, 72.92137995996029,
     80.12511834622643, -52.072871366152654, -59.78993625266729,
     -0.15582684282751913, 4.883087185713722},
};

typedef struct rodas_work {
    implicit_lin lin;
    double *U;              /* STAGES blocks of n: the stage increments   */
    double *g, *fg;         /* a stage's argument and its derivative      */
    double *k;              /* 1 + NDENSE blocks: y_next, K_0..K_2         */
    /* the step VJP's: cotangents of the U_i (STAGES blocks), of a stage's
     * right-hand side, argument, of y_next, y, df/dt and err */
    double *Ub, *rb, *gb, *ynb, *yb, *dTb, *errb;
} rodas_work;

static void rodas_destroy(nde_solver *s)
{
    rodas_work *w = s->work;

    if (w) {
        implicit_free(&w->lin);
        free(w->U);
        free(w);
        s->work = NULL;
    }
}

static int rodas_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    rodas_work *w = calloc(1, sizeof *w);
    int rc;

    if (!w)
        return NDE_ENOMEM;
    s->work = w;
    if ((rc = implicit_create(&w->lin, s, 1)))
        return rc;
    if (!(w->U = malloc((2 * STAGES + 9 + NDENSE) * n * sizeof(double))))
        return NDE_ENOMEM;
    w->g = w->U + STAGES * n;
    w->fg = w->g + n;
    w->k = w->fg + n;
    w->Ub = w->k + (1 + NDENSE) * n;
    w->rb = w->Ub + STAGES * n;
    w->gb = w->rb + n;
    w->ynb = w->gb + n;
    w->yb = w->ynb + n;
    w->dTb = w->yb + n;
    w->errb = w->dTb + n;
    return NDE_OK;
}

/* rhs (in w->fg, f of the stage) += sum_{j<i} C_ij/h U_j + h d_i df/dt,
 * then U_i = W^{-1} rhs. */
static void stage_solve(rodas_work *w, size_t n, int i, double h)
{
    double *Ui = w->U + (size_t)i * n;

    for (size_t m = 0; m < n; m++) {
        double r = w->fg[m] + h * d[i] * w->lin.dT[m];
        for (int j = 0; j < i; j++)
            r += (C[i][j] / h) * w->U[(size_t)j * n + m];
        Ui[m] = r;
    }
    implicit_solve(&w->lin, Ui);
}

/* w->g <- y + sum_{j<i} A_ij U_j, stage i's argument. */
static void stage_argument(rodas_work *w, size_t n, int i, const double *y)
{
    for (size_t m = 0; m < n; m++) {
        double g = y[m];
        for (int j = 0; j < i; j++)
            g += A[i][j] * w->U[(size_t)j * n + m];
        w->g[m] = g;
    }
}

static int rodas_step(nde_solver *s, const double *theta, double t, double h,
                      const double *dw, const double *y, const double *aux,
                      double *y_next, double *aux_next, double *err,
                      const nde_norm_spec *norm, double *eest)
{
    rodas_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    double *K = w->k + n;
    int rc;

    (void)dw; (void)aux; (void)aux_next;
    s->counts.nfe++;
    if ((rc = nde_field_eval(s->field, t, y, theta, w->fg, s->batch)) ||
        (rc = implicit_jacobian(&w->lin, s, theta, t, h, y, w->fg)) ||
        (rc = implicit_factor(&w->lin, h * gam)))
        return rc;
    stage_solve(w, n, 0, h);
    for (int i = 1; i < STAGES; i++) {
        stage_argument(w, n, i, y);
        s->counts.nfe++;
        if ((rc = nde_field_eval(s->field, t + c[i] * h, w->g, theta, w->fg,
                                 s->batch)))
            return rc;
        stage_solve(w, n, i, h);
    }
    /* the last stage's argument plus its increment (stiffly accurate) */
    for (size_t m = 0; m < n; m++) {
        y_next[m] = w->g[m] + w->U[(STAGES - 1) * n + m];
        w->k[m] = y_next[m];
    }
    for (int k = 0; k < NDENSE; k++)
        for (size_t m = 0; m < n; m++) {
            double v = 0.0;
            for (int i = 0; i < STAGES; i++)
                v += H[k][i] * w->U[(size_t)i * n + m];
            K[(size_t)k * n + m] = v;
        }
    if (err) {
        memcpy(err, w->U + (STAGES - 1) * n, n * sizeof *err);
        if (eest)
            *eest = nde_error_norm_spec(norm, err, y, y_next, n);
    }
    return NDE_OK;
}

static int rodas_dense(const nde_solver *s, const double *y, double h,
                       const double *const *k, double theta, double *out)
{
    const rodas_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double *yn = k ? k[0] : w->k, *K0 = k ? k[1] : w->k + n;
    const double *K1 = k ? k[2] : w->k + 2 * n, *K2 = k ? k[3] : w->k + 3 * n;
    const double th1 = 1.0 - theta;

    (void)h;
    for (size_t m = 0; m < n; m++)
        out[m] = th1 * y[m] +
                 theta * (yn[m] +
                          th1 * (K0[m] + theta * (K1[m] + theta * K2[m])));
    return NDE_OK;
}

/* The stiffness estimate: the largest max-row norm of the rows' J of the
 * last step, which bounds |lambda| (OrdinaryDiffEq's calc_J takes
 * opnorm(J, Inf) for its composite algorithms); an L-stable method has
 * no stability bound to divide it by. */
static int rodas_stiffness(const nde_solver *s, const double *y_next,
                           double *out)
{
    (void)y_next;
    *out = implicit_row_norm_max(&((const rodas_work *)s->work)->lin);
    return NDE_OK;
}

static void rodas_last_stages(const nde_solver *s, const double **k)
{
    const rodas_work *w = s->work;
    const size_t n = s->batch * s->field->dim;

    for (int i = 0; i <= NDENSE; i++)
        k[i] = w->k + (size_t)i * n;
}

/*
 * The step VJP: the step above run backwards (recomputed first). With
 * cotangents Ub_i of the U_i, collected from the outputs (y_next, err =
 * U_7, the dense output's K_k) and from the later stages, stage i gives
 * rb = W^{-T} Ub_i (the transposed solve with the step's factors),
 * which flows into f(t_i, g_i) (the field's VJP), into df/dt (h d_i rb),
 * into the U_j, j < i (C_ij / h rb and, through g_i, A_ij), and, since W
 * = I/(h gamma) - J(t, y), into J: Jbar = rb U_i^T, whose dependence on
 * y and theta is the second derivative d(rb . J U_i) (implicit.h:
 * implicit_jacobian_vjp). df/dt's dependence on y and theta is the VJP
 * of its difference in t. h is a constant, as in every step VJP.
 */
static int rodas_step_vjp(nde_solver *s, const double *theta, double t,
                          double h, const double *dw, const double *y,
                          const double *aux, const nde_step_cotangent *ct,
                          double *ybar, double *auxbar, double *thetabar)
{
    rodas_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const double *yn = w->k, *U7 = w->U + (STAGES - 1) * n;
    nde_norm_spec whole = {ct->rtol, ct->atol, NULL, 0};
    int rc;

    (void)dw; (void)aux; (void)auxbar;
    if (ct->stiffness != 0.0)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver 'rodas5p': no VJP of its stiffness estimate "
                         "(the norm of J)");
    if ((rc = rodas_step(s, theta, t, h, NULL, y, NULL, w->yb, NULL,
                         w->errb, &whole, NULL)))
        return rc;
    memset(w->Ub, 0, STAGES * n * sizeof *w->Ub);
    memset(w->yb, 0, n * sizeof *w->yb);
    memset(w->dTb, 0, n * sizeof *w->dTb);
    for (size_t m = 0; m < n; m++)
        w->ynb[m] = ct->y_next ? ct->y_next[m] : 0.0;
    for (size_t q = 0; q < ct->ndense; q++) {
        const double th = ct->dense[q].theta, th1 = 1.0 - th;
        const double *g = ct->dense[q].g;
        for (int i = 0; i < STAGES; i++) {
            const double c_i =
                th * th1 * (H[0][i] + th * (H[1][i] + th * H[2][i]));
            for (size_t m = 0; m < n; m++)
                w->Ub[(size_t)i * n + m] += c_i * g[m];
        }
        for (size_t m = 0; m < n; m++) {
            w->yb[m] += th1 * g[m];
            w->ynb[m] += th * g[m];
        }
    }
    if (ct->eest != 0.0) {
        eest_vjp(n, ct->eest, ct->rtol, ct->atol, U7, y, yn, w->errb, w->yb,
                 w->ynb);
        for (size_t m = 0; m < n; m++)
            w->Ub[(STAGES - 1) * n + m] += w->errb[m];
    }
    /* y_next = g_7 + U_7 */
    for (size_t m = 0; m < n; m++)
        w->Ub[(STAGES - 1) * n + m] += w->ynb[m];
    for (int i = STAGES - 1; i >= 0; i--) {
        const double *Ui = w->U + (size_t)i * n;
        memcpy(w->rb, w->Ub + (size_t)i * n, n * sizeof *w->rb);
        implicit_solve_transposed(&w->lin, w->rb);
        for (size_t m = 0; m < n; m++) {
            w->dTb[m] += h * d[i] * w->rb[m];
            for (int j = 0; j < i; j++)
                w->Ub[(size_t)j * n + m] += (C[i][j] / h) * w->rb[m];
        }
        if ((rc = implicit_jacobian_vjp(&w->lin, s, theta, t, y, Ui, w->rb,
                                        w->yb, thetabar)))
            return rc;
        if (i == STAGES - 1)
            memcpy(w->gb, w->ynb, n * sizeof *w->gb);
        else
            memset(w->gb, 0, n * sizeof *w->gb);
        stage_argument(w, n, i, y);
        s->counts.nvjp++;
        if ((rc = nde_field_vjp(s->field, t + c[i] * h, w->g, theta, w->rb,
                                w->gb, thetabar, s->batch)))
            return rc;
        for (size_t m = 0; m < n; m++) {
            w->yb[m] += w->gb[m];
            for (int j = 0; j < i; j++)
                w->Ub[(size_t)j * n + m] += A[i][j] * w->gb[m];
        }
    }
    if ((rc = implicit_time_derivative_vjp(&w->lin, s, theta, w->dTb, w->yb,
                                           thetabar)))
        return rc;
    if (ybar)
        for (size_t m = 0; m < n; m++)
            ybar[m] += w->yb[m];
    return NDE_OK;
}

static const nde_key rodas_keys[] = {IMPLICIT_JACOBIAN_KEY,
                                     {NULL, 0, NULL, NULL}};

static const nde_solver_type rodas5p = {
    .info = NDE_SOLVER_INFO(
        .name = "rodas5p",
        .description = "Rosenbrock method Rodas5P (Steinebach 2023) for "
                       "stiff problems: order 5(4), L-stable, dense "
                       "output; one Jacobian (JVP or differences) and LU "
                       "a step",
        .keys = rodas_keys,
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_DENSE | NDE_CAP_STIFFNESS |
                    NDE_CAP_STEP_VJP,
        .version = "1"),
    .order = 5,
    .error_order = 4,
    .dense_order = 4,
    .ops = {.stages = 1 + NDENSE,
            .create = rodas_create,
            .destroy = rodas_destroy,
            .step = rodas_step,
            .dense = rodas_dense,
            .last_stages = rodas_last_stages,
            .stiffness = rodas_stiffness,
            .step_vjp = rodas_step_vjp},
};

NDE_MODULE(&rodas5p.info);
