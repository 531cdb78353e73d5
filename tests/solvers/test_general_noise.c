/*
 * General (non-diagonal) noise (nde/field.h, NDE_NOISE_GENERAL) on the
 * `linear` field with noise_dim = M: dy = A y dt + sum_k (B_k y + c_k) dW_k
 * (and the adjoints on `mlp` with noise_dim, its diffusion net D x M).
 *
 * - Strong order over many paths against the exact solution on the same
 *   Brownian path, for D = 2 states driven by M = 3 channels with A and
 *   every B_k diagonal (commuting B_k: commutative noise), a_i and beta_ki
 *   their diagonals:
 *       Ito:          y_i(1) = y0_i exp(a_i - sum_k beta_ki^2 / 2
 *                                        + sum_k beta_ki W_k(1))
 *       Stratonovich: y_i(1) = y0_i exp(a_i + sum_k beta_ki W_k(1))
 *   Euler-Maruyama (Ito) 0.5, Heun and reversible Heun (Stratonovich) 1.
 * - Each step's VJP against central differences in y, aux and theta, on
 *   full (non-commuting) B_k and C.
 * - The solve driver with a Brownian Interval of batch x M channels gives
 *   the manual steps bit for bit; a path of batch x dim channels refused.
 * - The `discrete` (euler_maruyama, heun, reversible_heun) and
 *   `reversible` (reversible_heun) adjoints against central differences
 *   of the whole solve on a fixed path; `backsolve` refused.
 * - Every other SDE solver refused with a message naming general noise,
 *   and a clamped (intervened) field; the linear field's noise keys
 *   refused with file:line: key.
 * Measured orders and errors are printed to stderr for the record.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "../ctx_fixture.h"

#include "../sde_fields.h"

#define D 2
#define M 3


/* The [field] of ini, or NULL with its status in *rc. */
static nde_field *field_from(const char *ini, size_t batch, int *rc)
{
    nde_config *cfg = nde_config_create();
    nde_field *f = NULL;
    ck_assert_ptr_nonnull(cfg);
    *rc = nde_config_load_string(cfg, "gn.ini", ini, ctx);
    if (*rc == NDE_OK)
        *rc = nde_field_create(ctx, cfg, "field", batch, &f);
    nde_config_destroy(cfg);
    return f;
}

static nde_field *make_field(const char *ini, size_t batch)
{
    int rc;
    nde_field *f = field_from(ini, batch, &rc);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return f;
}

static nde_solver *make_solver(const char *name, nde_field *f)
{
    nde_solver *s;
    int rc = nde_solver_create_from(
        ctx, (const nde_solver_type *)plugin(NDE_KIND_SOLVER, name), f, &s);
    ck_assert_msg(rc == NDE_OK, "%s: %s", name, nde_ctx_message(ctx));
    return s;
}

/* Commutative noise: A = diag(a), B_k = diag(beta_k). */
static const double a_diag[D] = {0.3, -0.2};
static const double beta[M][D] = {{0.5, 0.2}, {-0.3, 0.4}, {0.25, -0.35}};
static const char ini_comm[] =
    "[field]\nplugin = linear\nA = 0.3, 0, 0, -0.2\nnoise_dim = 3\n"
    "B = 0.5, 0, 0, 0.2,\n    -0.3, 0, 0, 0.4,\n    0.25, 0, 0, -0.35\n";

/* Full B_k and C: non-commuting noise, for the derivatives. */
static const char ini_full[] =
    "[field]\nplugin = linear\nA = -0.4, 0.3, -0.2, 0.1\nb = 0.05, -0.1\n"
    "noise_dim = 3\n"
    "B = 0.3, -0.2, 0.1, 0.25,\n    -0.15, 0.2, 0.35, -0.1,\n"
    "    0.05, 0.3, -0.25, 0.2\n"
    "C = 0.1, -0.05, 0.2, 0.15, 0.1, -0.2\n";

/* The mlp's diffusion network with a D x M output. */
static const char ini_mlp[] =
    "[field]\nplugin = mlp\nlayers = 2, 8, 2\ndiffusion = softplus\n"
    "noise_dim = 3\n";

/* ------------------------------------------------------------------ */
/* Strong order                                                        */

#define PATHS 2000
#define K_FINE 8
#define K_LO 2

/* log-log slope of the mean |y(1) - exact| over h = 2^-2 .. 2^-8. */
static double strong_order(const char *solver, int stratonovich)
{
    const int nfine = 1 << K_FINE, nk = K_FINE - K_LO + 1;
    const size_t n = (size_t)PATHS * D, nw = (size_t)PATHS * M;
    double *dwf = malloc((size_t)nfine * nw * sizeof(double));
    double *ref = malloc(n * sizeof(double)), *y = malloc(n * sizeof(double));
    double *yn = malloc(n * sizeof(double)), *dw = malloc(nw * sizeof(double));
    double lh[K_FINE], le[K_FINE], sx = 0, sy = 0, sxx = 0, sxy = 0, p;
    nde_field *f = make_field(ini_comm, PATHS);
    nde_solver *s = make_solver(solver, f);
    const int aux = nde_solver_aux(s);
    double *ax = malloc((size_t)(aux + 1) * n * M * sizeof(double));
    double *axn = malloc((size_t)(aux + 1) * n * M * sizeof(double));
    double theta[64];

    ck_assert_uint_le(f->nparams, 64);
    ck_assert_int_eq(nde_field_init_params(f, theta, 1), NDE_OK);
    ck_assert_int_eq(nde_solver_set_batch(s, PATHS), NDE_OK);
    rng_state = 11;
    for (size_t r = 0; r < PATHS; r++) {
        double W[M] = {0};
        for (int j = 0; j < nfine; j++)
            for (int k = 0; k < M; k++) {
                const double d = sqrt(1.0 / nfine) * gauss();
                dwf[(size_t)j * nw + r * M + k] = d;
                W[k] += d;
            }
        for (int i = 0; i < D; i++) {
            double e = a_diag[i];
            for (int k = 0; k < M; k++)
                e += beta[k][i] * W[k] -
                     (stratonovich ? 0.0 : 0.5 * beta[k][i] * beta[k][i]);
            ref[r * D + i] = (1.0 + 0.1 * i) * exp(e);
        }
    }
    for (int ik = 0; ik < nk; ik++) {
        const int N = 1 << (K_LO + ik), per = nfine / N;
        const double h = 1.0 / N;
        double e = 0.0;
        for (size_t r = 0; r < PATHS; r++)
            for (int i = 0; i < D; i++)
                y[r * D + i] = 1.0 + 0.1 * i;
        ck_assert_int_eq(nde_solver_start(s, theta, 0.0, y, aux ? ax : NULL),
                         NDE_OK);
        for (int j = 0; j < N; j++) {
            for (size_t c = 0; c < nw; c++) {
                double sum = 0.0;
                for (int q = 0; q < per; q++)
                    sum += dwf[(size_t)(j * per + q) * nw + c];
                dw[c] = sum;
            }
            ck_assert_int_eq(nde_solver_advance(s, theta, j * h, h, dw, y,
                                                aux ? ax : NULL, yn,
                                                aux ? axn : NULL), NDE_OK);
            memcpy(y, yn, n * sizeof *y);
            if (aux)
                memcpy(ax, axn, (size_t)aux * n * sizeof *ax);
        }
        for (size_t c = 0; c < n; c++)
            e += fabs(y[c] - ref[c]);
        lh[ik] = log(h);
        le[ik] = log(e / (double)n);
    }
    for (int i = 0; i < nk; i++) {
        sx += lh[i]; sy += le[i]; sxx += lh[i] * lh[i]; sxy += lh[i] * le[i];
    }
    p = (nk * sxy - sx * sy) / (nk * sxx - sx * sx);
    fprintf(stderr, "strong order of %s, general noise (D = %d, M = %d, "
            "commutative, %s): %.3f (h = 1/4: %.3e ... h = 1/256: %.3e; "
            "%d paths)\n", solver, D, M, stratonovich ? "Stratonovich" : "Ito",
            p, exp(le[0]), exp(le[nk - 1]), PATHS);
    nde_solver_destroy(s);
    nde_field_destroy(f);
    free(dwf); free(ref); free(y); free(yn); free(dw); free(ax); free(axn);
    return p;
}

START_TEST(test_order_em)
{
    const double p = strong_order("euler_maruyama", 0);
    ck_assert_msg(fabs(p - 0.5) <= 0.1, "euler_maruyama: %.3f, expected "
                  "0.5 +- 0.1", p);
}
END_TEST

START_TEST(test_order_heun)
{
    const double p = strong_order("heun", 1);
    ck_assert_msg(fabs(p - 1.0) <= 0.1, "heun: %.3f, expected 1 +- 0.1", p);
}
END_TEST

START_TEST(test_order_reversible_heun)
{
    const double p = strong_order("reversible_heun", 1);
    ck_assert_msg(fabs(p - 1.0) <= 0.1, "reversible_heun: %.3f, expected "
                  "1 +- 0.1", p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Step VJPs                                                           */

#define VB 2                    /* rows                                */
#define VN (VB * D)
#define VNA (5 * VN * M)        /* room for any aux                    */
#define VP 160

typedef struct step_case {
    nde_solver *s;
    int aux;
    size_t na, P;
    double theta[VP], y[VN], ax[VNA], dw[VB * M], cy[VN], ca[VNA];
} step_case;

/* L = cy . y_next + ca . aux_next of one step from t = 0.3, h = 0.1. */
static double step_loss(step_case *c)
{
    double yn[VN], an[VNA], L = 0.0;
    ck_assert_int_eq(nde_solver_advance(c->s, c->theta, 0.3, 0.1, c->dw,
                                        c->y, c->aux ? c->ax : NULL, yn,
                                        c->aux ? an : NULL), NDE_OK);
    for (size_t i = 0; i < VN; i++)
        L += c->cy[i] * yn[i];
    for (size_t i = 0; i < c->na; i++)
        L += c->ca[i] * an[i];
    return L;
}

static double fd(step_case *c, double *x)
{
    const double x0 = *x, e = 1e-6;
    double lp, lm;
    *x = x0 + e;
    lp = step_loss(c);
    *x = x0 - e;
    lm = step_loss(c);
    *x = x0;
    return (lp - lm) / (2 * e);
}

static double worst(const double *a, const double *b, size_t n)
{
    double w = 0.0;
    for (size_t i = 0; i < n; i++)
        w = fmax(w, fabs(a[i] - b[i]) / fmax(1.0, fabs(b[i])));
    return w;
}

static void check_step_vjp(const char *solver)
{
    step_case c;
    nde_field *f = make_field(ini_full, VB);
    double yb[VN] = {0}, ab[VNA] = {0}, tb[VP] = {0};
    double ey, ea = 0.0, et;

    memset(&c, 0, sizeof c);
    c.s = make_solver(solver, f);
    c.aux = nde_solver_aux(c.s);
    c.na = (size_t)c.aux * VN;
    c.P = f->nparams;
    ck_assert_uint_le(c.P, VP);
    ck_assert_uint_le(c.na, VNA);
    ck_assert_int_eq(nde_field_init_params(f, c.theta, 1), NDE_OK);
    rng_state = 3;
    for (size_t i = 0; i < VN; i++) {
        c.y[i] = 0.5 + 0.3 * gauss();
        c.cy[i] = gauss();
    }
    for (size_t i = 0; i < c.na; i++) {  /* any (z, f, G): the step's input */
        c.ax[i] = 0.5 * gauss();
        c.ca[i] = gauss();
    }
    for (size_t i = 0; i < VB * M; i++)
        c.dw[i] = sqrt(0.1) * gauss();
    ck_assert_int_eq(nde_solver_advance_vjp(c.s, c.theta, 0.3, 0.1, c.dw, c.y,
                                            c.aux ? c.ax : NULL, c.cy,
                                            c.aux ? c.ca : NULL, yb,
                                            c.aux ? ab : NULL, tb), NDE_OK);
    {
        double gy[VN], ga[VNA], gt[VP];
        for (size_t i = 0; i < VN; i++)
            gy[i] = fd(&c, &c.y[i]);
        for (size_t i = 0; i < c.na; i++)
            ga[i] = fd(&c, &c.ax[i]);
        for (size_t i = 0; i < c.P; i++)
            gt[i] = fd(&c, &c.theta[i]);
        ey = worst(yb, gy, VN);
        if (c.na)
            ea = worst(ab, ga, c.na);
        et = worst(tb, gt, c.P);
    }
    fprintf(stderr, "%s step VJP, general noise, vs central FD: y %.1e, "
            "aux %.1e, theta %.1e\n", solver, ey, ea, et);
    ck_assert_msg(ey < 1e-7 && ea < 1e-7 && et < 1e-7,
                  "%s: %.2e %.2e %.2e", solver, ey, ea, et);
    nde_solver_destroy(c.s);
    nde_field_destroy(f);
}

START_TEST(test_step_vjp)
{
    check_step_vjp("euler_maruyama");
    check_step_vjp("heun");
    check_step_vjp("reversible_heun");
}
END_TEST

/* ------------------------------------------------------------------ */
/* The driver                                                          */

START_TEST(test_driver)
{
    static const char *const solvers[] = {"euler_maruyama", "heun",
                                          "reversible_heun"};
    const double dt = 1.0 / 16;
    nde_field *f = make_field(ini_full, VB);
    nde_brownian *bm;
    double theta[VP], y0[VN], y[VN], yn[VN], ys[VN], dw[VB * M];
    double ax[VNA], axn[VNA];

    ck_assert_int_eq(nde_field_init_params(f, theta, 1), NDE_OK);
    for (size_t i = 0; i < VN; i++)
        y0[i] = 0.7 - 0.1 * (double)i;
    ck_assert_int_eq(nde_brownian_create(ctx, VB * M, &bm), NDE_OK);
    for (size_t k = 0; k < 3; k++) {
        nde_solver *s = make_solver(solvers[k], f);
        const int aux = nde_solver_aux(s);
        nde_solve_opts o;
        double t1 = 1.0;
        int rc;

        ck_assert_uint_eq(nde_solver_noise_channels(s), VB * M);
        nde_solve_opts_default(&o, s->type);
        o.dt = dt;
        o.brownian = bm;
        ck_assert_int_eq(nde_brownian_reset(bm, 9, 0.0, 1.0, dt, VB * M),
                         NDE_OK);
        rc = nde_solve(s, &o, theta, 0.0, y0, 1.0, 1, &t1, ys, NULL);
        ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
        memcpy(y, y0, sizeof y);
        ck_assert_int_eq(nde_solver_start(s, theta, 0.0, y, aux ? ax : NULL),
                         NDE_OK);
        for (int j = 0; j < 16; j++) {
            ck_assert_int_eq(nde_brownian_increment(bm, j * dt, (j + 1) * dt,
                                                    dw), NDE_OK);
            ck_assert_int_eq(nde_solver_advance(s, theta, j * dt, dt, dw, y,
                                                aux ? ax : NULL, yn,
                                                aux ? axn : NULL), NDE_OK);
            memcpy(y, yn, sizeof y);
            if (aux)
                memcpy(ax, axn, (size_t)aux * VN * sizeof *ax);
        }
        ck_assert_msg(memcmp(y, ys, sizeof y) == 0, "%s: the driver's "
                      "solve differs from the manual steps", solvers[k]);
        /* one channel per state value is the diagonal sizing: refused */
        ck_assert_int_eq(nde_brownian_reset(bm, 9, 0.0, 1.0, dt, VN),
                         NDE_OK);
        ck_assert_int_eq(nde_solve(s, &o, theta, 0.0, y0, 1.0, 1, &t1, ys,
                                   NULL), NDE_EINVAL);
        ck_assert_msg(strstr(nde_ctx_message(ctx), "reset it with n = 6"),
                      "%s", nde_ctx_message(ctx));
        nde_solver_destroy(s);
    }
    nde_brownian_destroy(bm);
    nde_field_destroy(f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Adjoints                                                            */

#define NSAVE 3

typedef struct adj_case {
    nde_field *f;
    nde_solver *s;
    nde_brownian *bm;
    nde_solve_opts o;
    size_t P;
    double theta[VP], y0[VN], w[NSAVE * VN], ts[NSAVE];
    nde_cotangent ct[NSAVE];
} adj_case;

/* L = sum_k w_k . y(t_k) of a solve on the fixed path (seed 42). */
static double solve_loss(adj_case *c, const double *theta, const double *y0,
                         nde_trajectory *rec)
{
    double ys[NSAVE * VN], L = 0.0;
    int rc;
    c->o.record = rec;
    ck_assert_int_eq(nde_brownian_reset(c->bm, 42, 0.0, 1.0, 1.0 / 32,
                                        VB * M), NDE_OK);
    rc = nde_solve(c->s, &c->o, theta, 0.0, y0, 1.0, NSAVE, c->ts, ys, NULL);
    c->o.record = NULL;
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    for (size_t i = 0; i < NSAVE * VN; i++)
        L += c->w[i] * ys[i];
    return L;
}

static void check_adjoint(const char *ini, const char *solver,
                          const char *adjoint)
{
    adj_case c;
    nde_adjoint *a;
    nde_trajectory *tr;
    double g[VP + VN] = {0}, gfd[VP + VN], eth, ey;
    int rc;

    memset(&c, 0, sizeof c);
    c.f = make_field(ini, VB);
    c.s = make_solver(solver, c.f);
    c.P = c.f->nparams;
    ck_assert_uint_le(c.P, VP);
    ck_assert_int_eq(nde_field_init_params(c.f, c.theta, 1), NDE_OK);
    ck_assert_int_eq(nde_brownian_create(ctx, VB * M, &c.bm), NDE_OK);
    nde_solve_opts_default(&c.o, c.s->type);
    c.o.dt = 1.0 / 32;
    c.o.brownian = c.bm;
    rng_state = 5;
    for (size_t i = 0; i < VN; i++)
        c.y0[i] = 0.5 + 0.2 * (double)i;
    for (size_t k = 0; k < NSAVE; k++) {
        c.ts[k] = 0.25 + 0.375 * (double)k;
        for (size_t i = 0; i < VN; i++)
            c.w[k * VN + i] = gauss();
        c.ct[k].t = c.ts[k];
        c.ct[k].g = c.w + k * VN;
    }
    rc = nde_adjoint_create_from(
        ctx, (const nde_adjoint_type *)plugin(NDE_KIND_ADJOINT, adjoint),
        NULL, c.s, &a);
    ck_assert_msg(rc == NDE_OK, "%s: %s", adjoint, nde_ctx_message(ctx));
    ck_assert_ptr_nonnull(tr = nde_trajectory_create(a->record,
                                                     a->max_states));
    solve_loss(&c, c.theta, c.y0, tr);
    rc = nde_adjoint_gradient(a, &c.o, tr, c.theta, c.ct, NSAVE, g + c.P, g,
                              NULL);
    ck_assert_msg(rc == NDE_OK, "%s: %s", adjoint, nde_ctx_message(ctx));
    for (size_t i = 0; i < c.P + VN; i++) {
        double th[VP], y0[VN], lp, lm;
        double *x = i < c.P ? th + i : y0 + (i - c.P);
        memcpy(th, c.theta, sizeof th);
        memcpy(y0, c.y0, sizeof y0);
        *x += 1e-5;
        lp = solve_loss(&c, th, y0, NULL);
        *x -= 2e-5;
        lm = solve_loss(&c, th, y0, NULL);
        gfd[i] = (lp - lm) / 2e-5;
    }
    eth = worst(g, gfd, c.P);
    ey = worst(g + c.P, gfd + c.P, VN);
    fprintf(stderr, "%-15s %-10s general noise (%s) vs central FD: "
            "dL/dtheta %.1e, dL/dy0 %.1e\n", solver, adjoint,
            c.f->type->info.name, eth, ey);
    ck_assert_msg(eth < 1e-6 && ey < 1e-6, "%s %s: %.2e %.2e", solver,
                  adjoint, eth, ey);
    nde_trajectory_destroy(tr);
    nde_adjoint_destroy(a);
    nde_brownian_destroy(c.bm);
    nde_solver_destroy(c.s);
    nde_field_destroy(c.f);
}

START_TEST(test_adjoints)
{
    check_adjoint(ini_full, "euler_maruyama", "discrete");
    check_adjoint(ini_full, "heun", "discrete");
    check_adjoint(ini_full, "reversible_heun", "discrete");
    check_adjoint(ini_full, "reversible_heun", "reversible");
    check_adjoint(ini_mlp, "euler_maruyama", "discrete");
    check_adjoint(ini_mlp, "reversible_heun", "reversible");
}
END_TEST

START_TEST(test_backsolve_refused)
{
    nde_field *f = make_field(ini_full, VB);
    nde_solver *s = make_solver("reversible_heun", f);
    nde_adjoint *a = NULL;
    int rc = nde_adjoint_create_from(
        ctx, (const nde_adjoint_type *)plugin(NDE_KIND_ADJOINT, "backsolve"),
        NULL, s, &a);
    ck_assert_int_eq(rc, NDE_ECAPABILITY);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "general noise") &&
                      strstr(nde_ctx_message(ctx), "noise_dim"),
                  "%s", nde_ctx_message(ctx));
    nde_solver_destroy(s);
    nde_field_destroy(f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Refusals                                                            */

START_TEST(test_other_solvers_refused)
{
    static const char *const others[] = {"milstein", "milstein_strat",
                                         "sosri", "sriw1", "sra1",
                                         "lamba_heun"};
    nde_field *f = make_field(ini_full, 1);
    for (size_t k = 0; k < sizeof others / sizeof *others; k++) {
        nde_solver *s = NULL;
        int rc = nde_solver_create_from(
            ctx, (const nde_solver_type *)plugin(NDE_KIND_SOLVER, others[k]),
            f, &s);
        ck_assert_msg(rc == NDE_ECAPABILITY, "%s accepted general noise",
                      others[k]);
        ck_assert_msg(strstr(nde_ctx_message(ctx), "general noise (noise_dim"
                                                   " = 3)"),
                      "%s", nde_ctx_message(ctx));
    }
    nde_field_destroy(f);
}
END_TEST

START_TEST(test_config_errors)
{
    static const struct {
        const char *ini, *expect;
    } bad[] = {
        {"[field]\nplugin = linear\nA = 1\nB = 0.5\n",
         "gn.ini:4: [field] B"},
        {"[field]\nplugin = linear\nA = 1\nC = 0.5\n",
         "gn.ini:4: [field] C"},
        {"[field]\nplugin = linear\nA = 1\nnoise_dim = 2\nB = 1, 2, 3\n",
         "gn.ini:5: [field] B"},
        {"[field]\nplugin = linear\nA = 1\nnoise_dim = 2\nC = 1\n",
         "gn.ini:5: [field] C"},
        {"[field]\nplugin = linear\nA = 1\nnoise_dim = -1\n",
         "gn.ini:4: [field] noise_dim"},
        {"[field]\nplugin = mlp\nlayers = 2, 4, 2\nnoise_dim = 3\n",
         "gn.ini:4: [field] noise_dim: set without a diffusion network"},
        {"[field]\nplugin = mlp\nlayers = 2, 4, 2\ndiffusion = softplus\n"
         "noise_dim = -2\n", "gn.ini:5: [field] noise_dim"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        int rc;
        nde_field *f = field_from(bad[k].ini, 1, &rc);
        ck_assert_ptr_null(f);
        ck_assert_int_ne(rc, NDE_OK);
        ck_assert_msg(strstr(nde_ctx_message(ctx), bad[k].expect),
                      "case %zu: '%s' lacks '%s'", k, nde_ctx_message(ctx),
                      bad[k].expect);
    }
}
END_TEST

/* Holding states (an intervention) is for diagonal noise only. */
START_TEST(test_clamped_refused)
{
    nde_field *f = make_field(ini_full, 1), *c = NULL;
    const unsigned char held[D] = {1, 0};
    ck_assert_int_eq(nde_field_create_clamped(ctx, f, held, &c),
                     NDE_ECAPABILITY);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "general noise"), "%s",
                  nde_ctx_message(ctx));
    nde_field_destroy(f);
}
END_TEST

/* A general-noise field has noise_dim = M; core sets dim for diagonal. */
START_TEST(test_noise_dim)
{
    nde_field *f = make_field(ini_comm, 1);
    ck_assert_int_eq(f->noise, NDE_NOISE_GENERAL);
    ck_assert_uint_eq(f->noise_dim, M);
    ck_assert_uint_eq(f->nparams, D * D + D + M * D * D + D * M);
    nde_field_destroy(f);
    f = make_field("[field]\nplugin = linear\nA = 1, 0, 0, 1\n", 1);
    ck_assert_int_eq(f->noise, NDE_NOISE_NONE);
    ck_assert_uint_eq(f->noise_dim, 0);
    nde_field_destroy(f);
    f = make_field("[field]\nplugin = expr\nstate = x, y\nparams = s=0.5\n"
                   "dx = -x\ndy = -y\ngx = s\n", 1);
    ck_assert_int_eq(f->noise, NDE_NOISE_DIAGONAL);
    ck_assert_uint_eq(f->noise_dim, 2);
    nde_field_destroy(f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("general_noise");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_order_em);
    tcase_add_test(tc, test_order_heun);
    tcase_add_test(tc, test_order_reversible_heun);
    tcase_add_test(tc, test_step_vjp);
    tcase_add_test(tc, test_driver);
    tcase_add_test(tc, test_adjoints);
    tcase_add_test(tc, test_backsolve_refused);
    tcase_add_test(tc, test_other_solvers_refused);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_clamped_refused);
    tcase_add_test(tc, test_noise_dim);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
