/*
 * The sde_gan field (plugins/fields/sde_gan.c): the joint generator SDE
 * and discriminator CDE, on a batch of generated and real rows with two
 * path channels (so P picks more than one state):
 *  - eval/vjp and diffusion/diffusion_vjp against central differences;
 *  - the diffusion's shape and its entries against the parts' own (the
 *    data's increments are noise channels of their own, control_dim);
 *  - eval_sde and vjp_sde (both at once) against eval, diffusion and
 *    their VJPs; a plugin offering one of the two refused;
 *  - a real row: z stays put and h follows the CDE of the linear
 *    interpolation, against an RK4 solve of that ODE written here;
 *  - reversible_heun with the reversible adjoint against the discrete
 *    adjoint (and that against central differences of the solve) on
 *    rows whose data slope changes at the knots.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

#define B 4           /* rows: 0, 2 generated; 1, 3 real */
#define C 2           /* path channels */
#define G 3
#define H 4
#define D (G + H)
#define M 2           /* Brownian channels (the generator's) */
#define W (M + C)     /* the joint field's noise channels: M, then dY */
#define NK 3

static const char ini[] =
    "[field]\nplugin = sde_gan\ngenerator = gen\ndiscriminator = disc\n"
    "channels = 2\n"
    "[field.gen]\nplugin = mlp\nlayers = 3, 6, 3\ntime = true\n"
    "diffusion = sigmoid\nnoise_dim = 2\n"
    "[field.disc]\nplugin = mlp\nlayers = 4, 6, 4\ntime = true\n"
    "diffusion = sigmoid\nnoise_dim = 3\n"
    "[field.gen_alone]\nplugin = mlp\nlayers = 3, 6, 3\ntime = true\n"
    "diffusion = sigmoid\nnoise_dim = 2\n"
    "[field.disc_alone]\nplugin = mlp\nlayers = 4, 6, 4\ntime = true\n"
    "diffusion = sigmoid\nnoise_dim = 3\n";

/* Real rows' knots (on the adjoint test's grid of 1/8) and values. */
static const double kt[NK] = {0.0, 0.375, 1.0};
static const double ku[2][NK * (C + 1)] = {
    {0.2, -0.5, 1.0, 0.9, 0.1, 1.0, -0.3, 0.4, 1.0},
    {-0.6, 0.3, 1.0, 0.1, -0.8, 1.0, 0.7, 0.2, 1.0}};

typedef struct fix {
    nde_ctx *ctx;
    nde_config *cfg;
    nde_field *f;
    nde_input *in;
    double theta[1024];
} fix;

static void fix_make(fix *x, size_t rows)
{
    static const double zero[C + 1] = {0.0, 0.0, 0.0};
    x->ctx = nde_ctx_create();
    x->cfg = nde_config_create();
    ck_assert_int_eq(nde_config_load_string(x->cfg, "t.ini", ini, x->ctx),
                     NDE_OK);
    ck_assert_msg(nde_field_create(x->ctx, x->cfg, "field", rows, &x->f) ==
                      NDE_OK, "%s", nde_ctx_message(x->ctx));
    ck_assert_uint_le(x->f->nparams, 1024);
    ck_assert_int_eq(nde_field_init_params(x->f, x->theta, 7), NDE_OK);
    for (size_t k = 0; k < x->f->nparams; k++) /* biases not all 0 */
        x->theta[k] += 0.1 * sin(1.7 * (double)k + 0.3);
    ck_assert_int_eq(nde_input_create(x->ctx, rows, C + 1, NK,
                                      NDE_INPUT_LINEAR, &x->in), NDE_OK);
    for (size_t r = 0; r < rows; r++) {
        int rc = r % 2 ? nde_input_set_row(x->in, r, NK, kt, ku[r / 2 % 2])
                       : nde_input_set_row(x->in, r, 1, kt, zero);
        ck_assert_int_eq(rc, NDE_OK);
    }
    ck_assert_int_eq(nde_input_use_rows(x->in, rows), NDE_OK);
    ck_assert_int_eq(nde_field_set_input(x->f, x->in), NDE_OK);
}

static void fix_free(fix *x)
{
    nde_field_destroy(x->f);
    nde_input_destroy(x->in);
    nde_config_destroy(x->cfg);
    nde_ctx_destroy(x->ctx);
}

typedef int (*op_fn)(nde_field *, double, const double *, const double *,
                     double *, size_t);
typedef int (*vjp_fn)(nde_field *, double, const double *, const double *,
                      const double *, double *, double *, size_t);

static double dot_op(fix *x, op_fn op, double t, const double *y,
                     const double *v, size_t n)
{
    double out[B * D * W], s = 0.0;
    ck_assert_int_eq(op(x->f, t, y, x->theta, out, B), NDE_OK);
    for (size_t i = 0; i < n; i++)
        s += v[i] * out[i];
    return s;
}

/* v . op against central differences in y and theta. */
static void check_vjp(fix *x, op_fn op, vjp_fn vjp, size_t width,
                      const char *what)
{
    const double t = 0.6;
    const size_t n = B * D * width, P = x->f->nparams;
    double y[B * D], v[B * D * W], vy[B * D] = {0}, vth[1024] = {0};
    double worst = 0.0, big = 0.0;
    for (size_t i = 0; i < B * D; i++)
        y[i] = 0.8 * sin(0.9 * (double)i + 0.2);
    for (size_t i = 0; i < n; i++)
        v[i] = cos(1.3 * (double)i);
    nde_input_select(x->in, 0.5, 0.25);
    ck_assert_int_eq(vjp(x->f, t, y, x->theta, v, vy, vth, B), NDE_OK);
    for (size_t i = 0; i < B * D + P; i++) {
        double *p = i < B * D ? y + i : x->theta + (i - B * D);
        const double keep = *p, e = 1e-6 * fmax(1.0, fabs(keep));
        const double an = i < B * D ? vy[i] : vth[i - B * D];
        *p = keep + e;
        double lp = dot_op(x, op, t, y, v, n);
        *p = keep - e;
        double lm = dot_op(x, op, t, y, v, n);
        *p = keep;
        const double fd = (lp - lm) / (2 * e);
        ck_assert_msg(fabs(fd - an) <= 1e-7 * fmax(1.0, fabs(an)),
                      "%s: entry %zu: vjp %.12g, difference %.12g", what, i,
                      an, fd);
        worst = fmax(worst, fabs(fd - an));
        big = fmax(big, fabs(an));
    }
    ck_assert_msg(big > 0.1, "%s: the VJP is about 0", what);
    fprintf(stderr, "sde_gan %s: VJP vs central differences, worst abs "
            "err %.2e (largest entry %.2f)\n", what, worst, big);
}

START_TEST(vjps_against_differences)
{
    fix x;
    fix_make(&x, B);
    ck_assert_uint_eq(x.f->dim, D);
    ck_assert_uint_eq(x.f->noise, NDE_NOISE_GENERAL);
    ck_assert_uint_eq(x.f->noise_dim, W);
    ck_assert_uint_eq(x.f->control_dim, C);
    ck_assert_uint_eq(nde_field_brownian_dim(x.f), M);
    ck_assert_int_eq(x.f->input_continuous, 1);
    ck_assert_uint_eq(x.f->ninputs, C + 1);
    check_vjp(&x, x.f->type->eval, x.f->type->vjp, 1, "drift");
    check_vjp(&x, x.f->type->diffusion, x.f->type->diffusion_vjp, W,
              "diffusion");
    fix_free(&x);
}
END_TEST

/* The joint diffusion (D x (M + C) a row) against the parts evaluated
 * alone: generated rows [sigma, 0; g_1 P sigma, 0], real rows [0, 0; 0,
 * g_1] (g_1 on the data's increments); and the drift: generated rows
 * [mu; f + g_0 + g_1 P mu], real rows [0; f + g_0]. */
START_TEST(diffusion_and_drift_entries)
{
    fix x;
    nde_field *gen, *disc;
    const double t = 0.6;
    double y[B * D], g[B * D * W], dy[B * D];
    double z[B * G], h[B * H], sig[B * G * M], gh[B * H * (C + 1)];
    double mu[B * G], fh[B * H];
    fix_make(&x, B);
    ck_assert_int_eq(nde_field_create(x.ctx, x.cfg, "field.gen_alone", B,
                                      &gen), NDE_OK);
    ck_assert_int_eq(nde_field_create(x.ctx, x.cfg, "field.disc_alone", B,
                                      &disc), NDE_OK);
    for (size_t i = 0; i < B * D; i++)
        y[i] = 0.7 * cos(0.4 * (double)i);
    for (size_t r = 0; r < B; r++) {
        memcpy(z + r * G, y + r * D, G * sizeof *y);
        memcpy(h + r * H, y + r * D + G, H * sizeof *y);
    }
    nde_input_select(x.in, 0.5, 0.25);
    ck_assert_int_eq(nde_field_diffusion(x.f, t, y, x.theta, g, B), NDE_OK);
    ck_assert_int_eq(nde_field_eval(x.f, t, y, x.theta, dy, B), NDE_OK);
    ck_assert_int_eq(nde_field_diffusion(gen, t, z, x.theta, sig, B),
                     NDE_OK);
    ck_assert_int_eq(nde_field_eval(gen, t, z, x.theta, mu, B), NDE_OK);
    ck_assert_int_eq(nde_field_diffusion(disc, t, h, x.theta + gen->nparams,
                                         gh, B), NDE_OK);
    ck_assert_int_eq(nde_field_eval(disc, t, h, x.theta + gen->nparams, fh,
                                    B), NDE_OK);
    for (size_t r = 0; r < B; r++) {
        const int real = r % 2;
        for (size_t i = 0; i < G; i++) {
            ck_assert_double_eq_tol(dy[r * D + i],
                                    real ? 0.0 : mu[r * G + i], 1e-14);
            for (size_t k = 0; k < W; k++)
                ck_assert_double_eq_tol(g[(r * D + i) * W + k],
                                        real || k >= M
                                            ? 0.0
                                            : sig[(r * G + i) * M + k],
                                        1e-14);
        }
        for (size_t i = 0; i < H; i++) {
            const double *gi = gh + (r * H + i) * (C + 1);
            double want = fh[r * H + i] + gi[0];
            for (size_t j = 0; j < C && !real; j++)
                want += gi[1 + j] * mu[r * G + j];
            ck_assert_double_eq_tol(dy[r * D + G + i], want, 1e-12);
            for (size_t k = 0; k < W; k++) {
                double w = 0.0;
                for (size_t j = 0; j < C && k < M; j++)
                    w += gi[1 + j] * sig[(r * G + j) * M + k];
                if (k >= M)
                    w = gi[1 + k - M];
                ck_assert_double_eq_tol(g[(r * D + G + i) * W + k],
                                        real == (k >= M) ? w : 0.0, 1e-14);
            }
        }
    }
    nde_field_destroy(gen);
    nde_field_destroy(disc);
    fix_free(&x);
}
END_TEST

/* eval_sde gives eval's and diffusion's values bit for bit; vjp_sde the
 * sum of vjp's and diffusion_vjp's (to round-off: one VJP of the
 * discriminator's diffusion net with the summed cotangent, not two). */
START_TEST(joint_ops_match_separate_ones)
{
    fix x;
    const double t = 0.6;
    double y[B * D], dy[B * D], g[B * D * W], dy2[B * D], g2[B * D * W];
    double v[B * D], vg[B * D * W], vy[B * D] = {0}, vy2[B * D] = {0};
    double vth[1024] = {0}, vth2[1024] = {0}, worst = 0.0;
    nde_field_type half;
    nde_field *f = NULL;
    fix_make(&x, B);
    for (size_t i = 0; i < B * D; i++) {
        y[i] = 0.8 * sin(0.9 * (double)i + 0.2);
        v[i] = cos(0.7 * (double)i);
    }
    for (size_t i = 0; i < B * D * W; i++)
        vg[i] = sin(0.3 * (double)i + 1.0);
    nde_input_select(x.in, 0.5, 0.25);
    ck_assert_ptr_nonnull(x.f->type->eval_sde);
    ck_assert_int_eq(nde_field_eval_sde(x.f, t, y, x.theta, dy, g, B),
                     NDE_OK);
    ck_assert_int_eq(nde_field_eval(x.f, t, y, x.theta, dy2, B), NDE_OK);
    ck_assert_int_eq(nde_field_diffusion(x.f, t, y, x.theta, g2, B), NDE_OK);
    ck_assert(memcmp(dy, dy2, sizeof dy) == 0);
    ck_assert(memcmp(g, g2, sizeof g) == 0);
    ck_assert_int_eq(nde_field_vjp_sde(x.f, t, y, x.theta, v, vg, vy, vth,
                                       B), NDE_OK);
    ck_assert_int_eq(nde_field_vjp(x.f, t, y, x.theta, v, vy2, vth2, B),
                     NDE_OK);
    ck_assert_int_eq(nde_field_diffusion_vjp(x.f, t, y, x.theta, vg, vy2,
                                             vth2, B), NDE_OK);
    for (size_t i = 0; i < B * D + x.f->nparams; i++) {
        const double a = i < B * D ? vy[i] : vth[i - B * D];
        const double b = i < B * D ? vy2[i] : vth2[i - B * D];
        worst = fmax(worst, fabs(a - b) / fmax(1.0, fabs(b)));
    }
    fprintf(stderr, "sde_gan vjp_sde vs vjp + diffusion_vjp: worst rel "
            "diff %.2e\n", worst);
    ck_assert_msg(worst < 1e-14, "%.3e", worst);
    /* a plugin with one of the pair */
    half = *x.f->type;
    half.vjp_sde = NULL;
    ck_assert_int_eq(nde_field_create_from(x.ctx, &half,
                                           nde_config_section(x.cfg, "field"),
                                           B, &f), NDE_EPLUGIN);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(nde_ctx_message(x.ctx), "eval_sde without "
                                                 "vjp_sde"),
                  "%s", nde_ctx_message(x.ctx));
    fix_free(&x);
}
END_TEST

/* The CDE of a real row as an ODE: h' = f + g_0 + g_1 s(t), s the data
 * slope of the segment holding t. */
static void cde_rhs(nde_field *disc, const double *th, double t,
                    double tseg, const double *h, const double *u,
                    double *out)
{
    double fh[H], gh[H * (C + 1)], s[C];
    const size_t k = tseg < kt[1] ? 0 : 1;
    ck_assert_int_eq(nde_field_eval(disc, t, h, th, fh, 1), NDE_OK);
    ck_assert_int_eq(nde_field_diffusion(disc, t, h, th, gh, 1), NDE_OK);
    for (size_t j = 0; j < C; j++)
        s[j] = (u[(k + 1) * (C + 1) + j] - u[k * (C + 1) + j]) /
               (kt[k + 1] - kt[k]);
    for (size_t i = 0; i < H; i++) {
        out[i] = fh[i] + gh[i * (C + 1)];
        for (size_t j = 0; j < C; j++)
            out[i] += gh[i * (C + 1) + 1 + j] * s[j];
    }
}

/* h(1) of the real rows by heun at step dt against RK4 of the CDE; the
 * largest difference. z must stay put exactly. */
static double real_rows_error(fix *x, nde_field *disc, const char *solver,
                              double dt)
{
    nde_solver *s;
    nde_brownian *bm;
    nde_solve_opts o;
    const nde_plugin_info *info;
    double y0[B * D], y1[B * D], worst = 0.0;
    ck_assert_int_eq(nde_plugin_find(x->ctx, NDE_KIND_SOLVER, solver, &info),
                     NDE_OK);
    ck_assert_int_eq(nde_solver_create_from(x->ctx,
                                            (const nde_solver_type *)info,
                                            x->f, &s), NDE_OK);
    ck_assert_int_eq(nde_solver_set_batch(s, B), NDE_OK);
    ck_assert_int_eq(nde_brownian_create(x->ctx, B * M, &bm), NDE_OK);
    ck_assert_int_eq(nde_brownian_reset(bm, 5, 0.0, 1.0, dt, B * M), NDE_OK);
    nde_solve_opts_default(&o, s->type);
    o.dt = dt;
    o.brownian = bm;
    for (size_t i = 0; i < B * D; i++)
        y0[i] = 0.5 * sin(0.7 * (double)i + 1.0);
    ck_assert_msg(nde_solve(s, &o, x->theta, 0.0, y0, 1.0, 1,
                            (double[]){1.0}, y1, NULL) == NDE_OK, "%s",
                  nde_ctx_message(x->ctx));
    for (size_t r = 1; r < B; r += 2) {
        const double *th = x->theta + (x->f->nparams - disc->nparams);
        const double *u = ku[r / 2 % 2];
        double h[H], k1[H], k2[H], k3[H], k4[H], tmp[H];
        memcpy(h, y0 + r * D + G, sizeof h);
        for (size_t i = 0; i < G; i++)
            ck_assert_double_eq(y1[r * D + i], y0[r * D + i]);
        /* RK4 on each segment, 600 steps each */
        for (size_t seg = 0; seg < 2; seg++) {
            const double a = kt[seg], b = kt[seg + 1], hs = (b - a) / 600;
            const double mid = 0.5 * (a + b);
            for (size_t n = 0; n < 600; n++) {
                const double t = a + hs * (double)n;
                cde_rhs(disc, th, t, mid, h, u, k1);
                for (size_t i = 0; i < H; i++)
                    tmp[i] = h[i] + 0.5 * hs * k1[i];
                cde_rhs(disc, th, t + 0.5 * hs, mid, tmp, u, k2);
                for (size_t i = 0; i < H; i++)
                    tmp[i] = h[i] + 0.5 * hs * k2[i];
                cde_rhs(disc, th, t + 0.5 * hs, mid, tmp, u, k3);
                for (size_t i = 0; i < H; i++)
                    tmp[i] = h[i] + hs * k3[i];
                cde_rhs(disc, th, t + hs, mid, tmp, u, k4);
                for (size_t i = 0; i < H; i++)
                    h[i] += hs / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
            }
        }
        for (size_t i = 0; i < H; i++)
            worst = fmax(worst, fabs(y1[r * D + G + i] - h[i]));
    }
    nde_brownian_destroy(bm);
    nde_solver_destroy(s);
    return worst;
}

/* Heun and reversible Heun are of order 2 on the real rows' ODE: the
 * difference to RK4 falls about 4x a halving of the step. The data enter
 * as increments over each step (noise channels), so reversible Heun's
 * evaluation carried across a knot holds no slope of either side. */
START_TEST(real_rows_follow_the_cde)
{
    static const char *const solvers[] = {"heun", "reversible_heun"};
    fix x;
    nde_field *disc;
    fix_make(&x, B);
    ck_assert_int_eq(nde_field_create(x.ctx, x.cfg, "field.disc_alone", 1,
                                      &disc), NDE_OK);
    for (size_t k = 0; k < 2; k++) {
        const double e1 = real_rows_error(&x, disc, solvers[k], 1.0 / 128);
        const double e2 = real_rows_error(&x, disc, solvers[k], 1.0 / 256);
        fprintf(stderr, "sde_gan real rows: h(1) by %s vs RK4 of the CDE: "
                "max abs err %.2e at dt 1/128, %.2e at 1/256\n", solvers[k],
                e1, e2);
        ck_assert_msg(e2 < 5e-5 && e1 / e2 > 3.5, "%s: %.3e, %.3e",
                      solvers[k], e1, e2);
    }
    nde_field_destroy(disc);
    fix_free(&x);
}
END_TEST

/* ---- reversible_heun: reversible adjoint against discrete ---------- */

typedef struct run {
    fix x;
    nde_solver *s;
    nde_brownian *bm;
    nde_solve_opts o;
    double y0[B * D], w[2 * B * D];
    nde_cotangent ct[2];
} run;

static const double tsave[2] = {0.5, 1.0};

static void run_make(run *p)
{
    const nde_plugin_info *info;
    fix_make(&p->x, B);
    ck_assert_int_eq(nde_plugin_find(p->x.ctx, NDE_KIND_SOLVER,
                                     "reversible_heun", &info), NDE_OK);
    ck_assert_int_eq(nde_solver_create_from(p->x.ctx,
                                            (const nde_solver_type *)info,
                                            p->x.f, &p->s), NDE_OK);
    ck_assert_int_eq(nde_solver_set_batch(p->s, B), NDE_OK);
    ck_assert_int_eq(nde_brownian_create(p->x.ctx, B * M, &p->bm), NDE_OK);
    nde_solve_opts_default(&p->o, p->s->type);
    p->o.dt = 1.0 / 8;
    p->o.brownian = p->bm;
    for (size_t i = 0; i < B * D; i++)
        p->y0[i] = 0.6 * sin(1.1 * (double)i);
    for (size_t i = 0; i < 2 * B * D; i++)
        p->w[i] = cos(0.37 * (double)i + 0.5);
    for (size_t k = 0; k < 2; k++) {
        p->ct[k].t = tsave[k];
        p->ct[k].g = p->w + k * B * D;
    }
}

static void run_free(run *p)
{
    nde_brownian_destroy(p->bm);
    nde_solver_destroy(p->s);
    fix_free(&p->x);
}

static double run_loss(run *p, const double *theta, const double *y0)
{
    double ys[2 * B * D], L = 0.0;
    ck_assert_int_eq(nde_brownian_reset(p->bm, 11, 0.0, 1.0, 1.0 / 8, B * M),
                     NDE_OK);
    p->o.record = NULL;
    ck_assert_int_eq(nde_solve(p->s, &p->o, theta, 0.0, y0, 1.0, 2, tsave,
                               ys, NULL), NDE_OK);
    for (size_t i = 0; i < 2 * B * D; i++)
        L += p->w[i] * ys[i];
    return L;
}

/* [dL/dtheta, dL/dy0] by the named adjoint. */
static void run_grad(run *p, const char *adjoint, double *g)
{
    const nde_plugin_info *info;
    nde_adjoint *a;
    nde_trajectory *tr;
    double ys[2 * B * D];
    ck_assert_int_eq(nde_plugin_find(p->x.ctx, NDE_KIND_ADJOINT, adjoint,
                                     &info), NDE_OK);
    ck_assert_int_eq(nde_adjoint_create_from(p->x.ctx,
                                             (const nde_adjoint_type *)info,
                                             NULL, p->s, &a), NDE_OK);
    ck_assert_ptr_nonnull(tr = nde_trajectory_create(a->record,
                                                     a->max_states));
    ck_assert_int_eq(nde_brownian_reset(p->bm, 11, 0.0, 1.0, 1.0 / 8, B * M),
                     NDE_OK);
    p->o.record = tr;
    ck_assert_int_eq(nde_solve(p->s, &p->o, p->x.theta, 0.0, p->y0, 1.0, 2,
                               tsave, ys, NULL), NDE_OK);
    p->o.record = NULL;
    ck_assert_msg(nde_adjoint_gradient(a, &p->o, tr, p->x.theta, p->ct, 2,
                                       g + p->x.f->nparams, g, NULL) ==
                      NDE_OK, "%s", nde_ctx_message(p->x.ctx));
    nde_trajectory_destroy(tr);
    nde_adjoint_destroy(a);
}

START_TEST(reversible_adjoint_matches_discrete)
{
    run p;
    double *gr, *gd, num = 0.0, den = 0.0, fnum = 0.0;
    run_make(&p);
    const size_t n = p.x.f->nparams + B * D;
    gr = calloc(n, sizeof *gr);
    gd = calloc(n, sizeof *gd);
    ck_assert(gr && gd);
    run_grad(&p, "reversible", gr);
    run_grad(&p, "discrete", gd);
    for (size_t i = 0; i < n; i++) {
        num += (gr[i] - gd[i]) * (gr[i] - gd[i]);
        den += gd[i] * gd[i];
    }
    /* discrete against central differences, on a few entries of each
     * kind (parameters of both parts, generated and real rows' states) */
    static const size_t pick[] = {0, 5, 40, 100, 150};
    for (size_t q = 0; q < sizeof pick / sizeof *pick + 2 * D; q++) {
        const size_t i = q < 5 ? pick[q] % p.x.f->nparams
                               : p.x.f->nparams + (q - 5);
        double *x = i < p.x.f->nparams ? p.x.theta + i
                                       : p.y0 + (i - p.x.f->nparams);
        const double keep = *x, e = 1e-6;
        *x = keep + e;
        double lp = run_loss(&p, p.x.theta, p.y0);
        *x = keep - e;
        double lm = run_loss(&p, p.x.theta, p.y0);
        *x = keep;
        fnum = fmax(fnum, fabs((lp - lm) / (2 * e) - gd[i]));
    }
    fprintf(stderr, "sde_gan, reversible_heun dt 1/8 with knots: reversible "
            "vs discrete rel err %.2e; discrete vs central differences max "
            "abs err %.2e\n", sqrt(num / den), fnum);
    ck_assert_msg(sqrt(num / den) < 1e-10, "reversible vs discrete %.3e",
                  sqrt(num / den));
    ck_assert_msg(fnum < 1e-6, "discrete vs differences %.3e", fnum);
    free(gr);
    free(gd);
    run_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sde_gan");
    TCase *tc = tcase_create("field");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, vjps_against_differences);
    tcase_add_test(tc, diffusion_and_drift_entries);
    tcase_add_test(tc, joint_ops_match_separate_ones);
    tcase_add_test(tc, real_rows_follow_the_cde);
    tcase_add_test(tc, reversible_adjoint_matches_discrete);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
