/*
 * Adaptive stochastic Runge-Kutta methods of class SRI for Ito SDEs with
 * diagonal noise (Roessler 2010, "Runge-Kutta methods for the strong
 * approximation of solutions of stochastic differential equations", SIAM
 * J. Numer. Anal. 48(3), 922-952), with the error estimate of Rackauckas
 * and Nie 2017 ("Adaptive methods for stochastic differential equations
 * via natural embeddings and rejection sampling with memory", Discrete
 * Contin. Dyn. Syst. B 22(7)), as StochasticDiffEq.jl steps them
 * (src/perform_step/sri.jl, perform_step! for FourStageSRIConstantCache
 * and SRIW1; calculate_residuals with E1, E2 and delta from DiffEqBase).
 *
 * Four stages. With chi1 = I_(1,1)/sqrt(h) = (dW^2 - h) / (2 sqrt(h)),
 * chi2 = I_(1,0)/h and chi3 = I_(1,1,1)/h = (dW^3 - 3 h dW) / (6 h), all
 * elementwise, a step of size h > 0 from (t, y):
 *     H0_i = y + h sum_{j<i} A0_ij k_j + chi2 sum_{j<i} B0_ij g_j
 *     H1_i = y + h sum_{j<i} A1_ij k_j + sqrt(h) sum_{j<i} B1_ij g_j
 *     k_i = f(t + c0_i h, H0_i),   g_i = g(t + c1_i h, H1_i)
 *     E2 = sum_i (beta3_i chi2 + beta4_i chi3) g_i
 *     y_next = y + h sum_i alpha_i k_i
 *                + sum_i (beta1_i dW + beta2_i chi1) g_i + E2
 *     err = delta h sum_{i<nerr} k_i + E2
 * (delta E1 + E2 of Rackauckas-Nie, Sec. 4; the driver takes its scaled
 * RMS norm, as DiffEqBase's internalnorm does).
 *
 * I_(1,0) = int_t^{t+h} (W_s - W_t) ds = h (dW / 2 + H), H the
 * space-time Levy area of the step, which the solvers declare they need
 * (NDE_NEEDS_LEVY_AREA): dw holds dW, then H (nde/solver.h), both from
 * the Brownian Interval, so chi2 = dW / 2 + H exactly and the strong order
 * is 1.5 for diagonal noise in general. (StochasticDiffEq draws chi2 =
 * (dW + dZ / sqrt(3)) / 2 with an independent increment dZ: the same law,
 * since H ~ N(0, h / 12) independent of dW.) A step is a function of the
 * path, so a rejected step's re-query and an adjoint's replay see the
 * same noise exactly.
 *
 * Evaluations are counted per point: stage 1 (drift and diffusion at y)
 * counts one, a later stage two (H0_i and H1_i differ), or one when its
 * drift has no weight: seven a step for SOSRI, five for SRIW1, and as
 * many VJPs in the step VJP (which first recomputes the stages). The step
 * VJP takes cotangents on y_next and on the error norm (eest_vjp.h), so a
 * local regularizer can differentiate the estimate.
 */
#include <math.h>
#include <stdlib.h>

#include "eest_vjp.h"
#include "nde/nde.h"

enum { S = 4 };

typedef struct sri_tableau {
    double c0[S], c1[S];
    double a0[S][S], a1[S][S], b0[S][S], b1[S][S];  /* [i][j], j < i      */
    double alpha[S], beta1[S], beta2[S], beta3[S], beta4[S];
    double delta;           /* weight of the drift part of the estimate  */
    int nerr;               /* drift stages the estimate sums            */
    int drift;              /* stages whose drift is used (the first)    */
} sri_tableau;

/* SOSRI: Rackauckas, Nie 2018, "Stability-optimized high order methods
 * and stiffness detection for pathwise stiff stochastic differential
 * equations" (arXiv 1804.04344); coefficients as in StochasticDiffEq.jl
 * src/caches/rossler_caches.jl, SOSRIConstantCache (equal to its
 * constructSRIOpt1 in src/tableaus.jl, whose c are the row sums of A). */
static const sri_tableau sosri_tab = {
    .c0 = {0.0, -0.04199224421316468, 0.7898405466170333,
           3.7504010171562823},
    .c1 = {0.0, 0.26204282091330466, 0.05879875232001766,
           0.758661169101175},
    .a0 = {{0}, {-0.04199224421316468},
           {2.842612915017106, -2.0527723684000727},
           {4.338237071435815, -2.8895936137439793, 2.3017575594644466}},
    .a1 = {{0}, {0.26204282091330466},
           {0.20903646383505375, -0.1502377115150361},
           {0.05836595312746999, 0.6149440396332373, 0.08535117634046772}},
    .b0 = {{0}, {-0.21641093549612528},
           {1.5336352863679572, 0.26066223492647056},
           {-1.0536037558179159, 1.7015284721089472, -0.20725685784180017}},
    .b1 = {{0}, {-0.5119011827621657},
           {2.67767339866713, -4.9395031322250995},
           {0.15580956238299215, 3.2361551006624674, -1.4223118283355949}},
    .alpha = {1.140099274172029, -0.6401334255743456, 0.4736296532772559,
              0.026404498125060714},
    .beta1 = {-1.8453464565104432, 2.688764531100726, -0.2523866501071323,
              0.40896857551684956},
    .beta2 = {0.4969658141589478, -0.5771202869753592,
              -0.12919702470322217, 0.2093514975196336},
    .beta3 = {2.8453464565104425, -2.688764531100725, 0.2523866501071322,
              -0.40896857551684945},
    .beta4 = {0.11522663875443433, -0.57877086147738, 0.2857851028163886,
              0.17775911990655704},
    .delta = 1.0, .nerr = 4, .drift = 4};   /* delta_default = 1 */

/* SRIW1 (Roessler 2010's SRI1W1; Rackauckas, Nie 2017): StochasticDiffEq.jl
 * constructSRIW1 (src/tableaus.jl), E1 over the first two stages and
 * delta_default(SRIW1) = 1/6 (src/alg_utils.jl). Its A1_43 = 1/4 weighs
 * k_3 = f(t, y) = k_1 (H0_3 = y, c0_3 = 0): written here as A1_41, as
 * its perform_step! does, so that only two drift stages are evaluated. */
static const sri_tableau sriw1_tab = {
    .c0 = {0.0, 0.75, 0.0, 0.0},
    .c1 = {0.0, 0.25, 1.0, 0.25},
    .a0 = {{0}, {0.75}, {0}, {0}},
    .a1 = {{0}, {0.25}, {1.0}, {0.25}},
    .b0 = {{0}, {1.5}, {0}, {0}},
    .b1 = {{0}, {0.5}, {-1.0}, {-5.0, 3.0, 0.5}},
    .alpha = {1.0 / 3, 2.0 / 3, 0.0, 0.0},
    .beta1 = {-1.0, 4.0 / 3, 2.0 / 3, 0.0},
    .beta2 = {-1.0, 4.0 / 3, -1.0 / 3, 0.0},
    .beta3 = {2.0, -4.0 / 3, -2.0 / 3, 0.0},
    .beta4 = {-2.0, 5.0 / 3, -2.0 / 3, 1.0},
    .delta = 1.0 / 6, .nerr = 2, .drift = 2};

typedef struct sri_work {
    const sri_tableau *tb;
    double *k[S], *g[S];    /* drift and diffusion of each stage          */
    double *h0[S], *h1[S];  /* the stage points H0_i, H1_i                */
    double *kb[S], *gb[S];  /* cotangents on k_i, g_i in the VJP          */
    double *h0b, *h1b;      /* cotangents on one stage's points           */
    double *yn, *err;       /* the step's outputs, recomputed in the VJP  */
    double *yb, *eb;        /* cotangents on y_next (with the norm's) and
                               on err                                     */
    double *block;
} sri_work;

static void sri_destroy(nde_solver *s)
{
    sri_work *w = s->work;

    if (w) {
        free(w->block);
        free(w);
        s->work = NULL;
    }
}

/* The workspace; k_i of the stages past tb->drift stay zero. */
static int sri_create(nde_solver *s, const sri_tableau *tb)
{
    const size_t n = s->batch_max * s->field->dim;
    sri_work *w = calloc(1, sizeof *w);
    double *p;

    if (!w)
        return NDE_ENOMEM;
    s->work = w;
    w->tb = tb;
    if (!(w->block = calloc((6 * S + 6) * n, sizeof(double))))
        return NDE_ENOMEM;
    p = w->block;
    for (int i = 0; i < S; i++) {
        w->k[i] = p; p += n;
        w->g[i] = p; p += n;
        w->h0[i] = p; p += n;
        w->h1[i] = p; p += n;
        w->kb[i] = p; p += n;
        w->gb[i] = p; p += n;
    }
    w->h0b = p;
    w->h1b = p + n;
    w->yn = p + 2 * n;
    w->err = p + 3 * n;
    w->yb = p + 4 * n;
    w->eb = p + 5 * n;
    return NDE_OK;
}

static int sosri_create(nde_solver *s) { return sri_create(s, &sosri_tab); }
static int sriw1_create(nde_solver *s) { return sri_create(s, &sriw1_tab); }

/* chi2 = I_(1,0)/h = dW / 2 + H of value m (top comment; dw holds n
 * increments, then n areas). */
static double chi2_of(const double *dw, size_t n, size_t m)
{
    return 0.5 * dw[m] + dw[n + m];
}

/* The stages k_i, g_i and their points H0_i, H1_i into the workspace. */
static int stages(nde_solver *s, const double *theta, double t, double h,
                  const double *dw, const double *y)
{
    sri_work *w = s->work;
    const sri_tableau *tb = w->tb;
    const size_t n = s->batch * s->field->dim;
    const double sqh = sqrt(h);
    int rc;

    for (int i = 0; i < S; i++) {
        for (size_t m = 0; m < n; m++) {
            double a0 = 0, a1 = 0, b0 = 0, b1 = 0;
            for (int j = 0; j < i; j++) {
                a0 += tb->a0[i][j] * w->k[j][m];
                a1 += tb->a1[i][j] * w->k[j][m];
                b0 += tb->b0[i][j] * w->g[j][m];
                b1 += tb->b1[i][j] * w->g[j][m];
            }
            w->h0[i][m] = y[m] + h * a0 + chi2_of(dw, n, m) * b0;
            w->h1[i][m] = y[m] + h * a1 + sqh * b1;
        }
        s->counts.nfe += i && i < tb->drift ? 2 : 1;
        if ((i < tb->drift &&
             (rc = nde_field_eval(s->field, t + tb->c0[i] * h, w->h0[i],
                                  theta, w->k[i], s->batch))) ||
            (rc = nde_field_diffusion(s->field, t + tb->c1[i] * h, w->h1[i],
                                      theta, w->g[i], s->batch)))
            return rc;
    }
    return NDE_OK;
}

/* The weight of g_i in E2 (beta3 chi2 + beta4 chi3) and in y_next (with
 * beta1 dW + beta2 chi1 besides) at one value. */
static double eweight(const sri_tableau *tb, int i, double h, double dw,
                      double chi2)
{
    const double chi3 = (dw * dw * dw - 3.0 * h * dw) / (6.0 * h);
    return tb->beta3[i] * chi2 + tb->beta4[i] * chi3;
}

static double gweight(const sri_tableau *tb, int i, double h, double dw,
                      double chi2)
{
    const double chi1 = (dw * dw - h) / (2.0 * sqrt(h));
    return tb->beta1[i] * dw + tb->beta2[i] * chi1 +
           eweight(tb, i, h, dw, chi2);
}

/* y_next and (err not NULL) err from the stages. */
static void combine(const nde_solver *s, double h, const double *dw,
                    const double *y, double *y_next, double *err)
{
    const sri_work *w = s->work;
    const sri_tableau *tb = w->tb;
    const size_t n = s->batch * s->field->dim;

    for (size_t m = 0; m < n; m++) {
        const double c2 = chi2_of(dw, n, m);
        double ya = 0, yg = 0, e1 = 0, e2 = 0;
        for (int i = 0; i < S; i++) {
            ya += tb->alpha[i] * w->k[i][m];
            yg += gweight(tb, i, h, dw[m], c2) * w->g[i][m];
            e2 += eweight(tb, i, h, dw[m], c2) * w->g[i][m];
            if (i < tb->nerr)
                e1 += w->k[i][m];
        }
        y_next[m] = y[m] + h * ya + yg;
        if (err)
            err[m] = tb->delta * h * e1 + e2;
    }
}

static int sri_step(nde_solver *s, const double *theta, double t, double h,
                    const double *dw, const double *y, const double *aux,
                    double *y_next, double *aux_next, double *err,
                    const nde_norm_spec *norm, double *eest)
{
    int rc;

    (void)aux; (void)aux_next;
    if ((rc = stages(s, theta, t, h, dw, y)))
        return rc;
    combine(s, h, dw, y, y_next, err);
    if (err && eest)
        *eest = nde_error_norm_spec(norm, err, y, y_next,
                                    s->batch * s->field->dim);
    return NDE_OK;
}

/*
 * With cotangents yb on y_next and ebar on EEst: eest_vjp gives eb on err
 * and adds the scale's part to yb and ybar; then kb_i = h alpha_i yb +
 * [i < nerr] delta h eb, gb_i = weight_i yb + eweight_i eb, and stage by
 * stage from the last, the VJPs at H0_i (with kb_i) and H1_i (with gb_i)
 * give the cotangents on H0_i, H1_i, which flow to y and to the earlier
 * stages through A0, B0 chi2, A1, B1 sqrt(h).
 */
static int sri_step_vjp(nde_solver *s, const double *theta, double t,
                        double h, const double *dw, const double *y,
                        const double *aux, const nde_step_cotangent *ct,
                        double *ybar, double *auxbar, double *thetabar)
{
    sri_work *w = s->work;
    const sri_tableau *tb = w->tb;
    const size_t n = s->batch * s->field->dim;
    const double sqh = sqrt(h);
    int rc;

    (void)aux; (void)auxbar;
    if (ct->stiffness != 0.0 || ct->ndense > 0)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver '%s': the step VJP takes cotangents on "
                         "y_next and the error estimate only",
                         s->type->info.name);
    if (!ct->y_next && ct->eest == 0.0)
        return NDE_OK;
    if ((rc = stages(s, theta, t, h, dw, y)))
        return rc;
    for (size_t m = 0; m < n; m++) {
        w->yb[m] = ct->y_next ? ct->y_next[m] : 0.0;
        w->eb[m] = 0.0;
    }
    if (ct->eest != 0.0) {
        combine(s, h, dw, y, w->yn, w->err);
        eest_vjp(n, ct->eest, ct->rtol, ct->atol, w->err, y, w->yn, w->eb,
                 ybar, w->yb);
    }
    for (int i = 0; i < S; i++)
        for (size_t m = 0; m < n; m++) {
            w->kb[i][m] = h * tb->alpha[i] * w->yb[m] +
                          (i < tb->nerr ? tb->delta * h * w->eb[m] : 0.0);
            w->gb[i][m] = gweight(tb, i, h, dw[m], chi2_of(dw, n, m)) *
                              w->yb[m] +
                          eweight(tb, i, h, dw[m], chi2_of(dw, n, m)) *
                              w->eb[m];
        }
    if (ybar)
        for (size_t m = 0; m < n; m++)
            ybar[m] += w->yb[m];
    for (int i = S - 1; i >= 0; i--) {
        for (size_t m = 0; m < n; m++)
            w->h0b[m] = w->h1b[m] = 0.0;
        s->counts.nvjp += i && i < tb->drift ? 2 : 1;
        if ((i < tb->drift &&
             (rc = nde_field_vjp(s->field, t + tb->c0[i] * h, w->h0[i],
                                 theta, w->kb[i], w->h0b, thetabar,
                                 s->batch))) ||
            (rc = nde_field_diffusion_vjp(s->field, t + tb->c1[i] * h,
                                          w->h1[i], theta, w->gb[i], w->h1b,
                                          thetabar, s->batch)))
            return rc;
        for (size_t m = 0; m < n; m++) {
            const double c2 = chi2_of(dw, n, m);
            for (int j = 0; j < i; j++) {
                w->kb[j][m] += h * (tb->a0[i][j] * w->h0b[m] +
                                    tb->a1[i][j] * w->h1b[m]);
                w->gb[j][m] += c2 * tb->b0[i][j] * w->h0b[m] +
                               sqh * tb->b1[i][j] * w->h1b[m];
            }
            if (ybar)
                ybar[m] += w->h0b[m] + w->h1b[m];
        }
    }
    return NDE_OK;
}

#define SRI_OPS(createfn)                                                    \
    {.create = createfn, .destroy = sri_destroy, .step = sri_step,           \
     .step_vjp = sri_step_vjp}

/* Strong order x 2 (solver.h): 3 = 1.5 (diagonal noise, with the Levy
 * area); the drift estimate is of Euler's order. */
static const nde_solver_type sosri = {
    .info = NDE_SOLVER_INFO(
        .name = "sosri",
        .description = "SOSRI, stability-optimized adaptive SRI for Ito "
                       "SDEs with diagonal noise (Rackauckas, Nie 2018): "
                       "seven evaluations a step; strong order 1.5 (it "
                       "takes the step's space-time Levy area)",
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_SDE_ITO | NDE_CAP_STEP_VJP,
        .needs = NDE_NEEDS_LEVY_AREA,
        .version = "2"),
    .order = 3, .error_order = 1, .dense_order = 0,
    .ops = SRI_OPS(sosri_create)};

static const nde_solver_type sriw1 = {
    .info = NDE_SOLVER_INFO(
        .name = "sriw1",
        .description = "SRIW1, Roessler's adaptive SRI for Ito SDEs with "
                       "diagonal noise (Rackauckas, Nie 2017): five "
                       "evaluations a step; strong order 1.5 as sosri",
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_SDE_ITO | NDE_CAP_STEP_VJP,
        .needs = NDE_NEEDS_LEVY_AREA,
        .version = "2"),
    .order = 3, .error_order = 1, .dense_order = 0,
    .ops = SRI_OPS(sriw1_create)};

NDE_MODULE(&sosri.info, &sriw1.info);
