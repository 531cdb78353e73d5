/*
 * SDE adjoints. For a fixed Brownian path (fixed seed): `discrete` (both
 * SDE solvers; and the adaptive lamba_heun, sosri, sriw1 and sra1 with
 * their steps frozen) and `reversible` (reversible_heun) against central
 * finite differences of the whole discretised solve on the same path, on
 * a GBM field with theta = (mu, sigma) and a small nonlinear field whose
 * diffusion couples the states (so the adjoint's noise is not diagonal);
 * `reversible` against `discrete`; `backsolve` converging to `discrete` as
 * dt shrinks (mean over fixed paths at each dt); the record of
 * `reversible` not growing with the number of steps; refused pairings.
 *
 * Measured agreements are printed to stderr for the record.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "../ctx_fixture.h"

/* ------------------------------------------------------------------ */
/* Fields                                                              */

/* GBM dy = mu y dt + sigma y dW, theta = (mu, sigma) (gbm_field), random
 * numbers and field plumbing. */
#include "../sde_fields.h"

/* A nonlinear 2-state SDE, theta = (a, b, c, e), t-dependent drift:
 *   f0 = a sin(y1) - y0/2 + t/4     g0 = c tanh(y0) + y1/10
 *   f1 = -b y0 y1                   g1 = e sqrt(1 + y1^2)
 * g0 depends on y1: the adjoint's noise couples the states. Not
 * sde_fields.h's nl_field: the tolerances here were set on this one. */
static int cn_eval(nde_field *f, double t, const double *y,
                   const double *th, double *dy, size_t batch)
{
    (void)f;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r;
        dy[2 * r] = th[0] * sin(x[1]) - 0.5 * x[0] + 0.25 * t;
        dy[2 * r + 1] = -th[1] * x[0] * x[1];
    }
    return NDE_OK;
}
static int cn_vjp(nde_field *f, double t, const double *y, const double *th,
                  const double *v, double *vy, double *vth, size_t batch)
{
    (void)f; (void)t;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r, *w = v + 2 * r;
        if (vy) {
            vy[2 * r] += -0.5 * w[0] - th[1] * x[1] * w[1];
            vy[2 * r + 1] += th[0] * cos(x[1]) * w[0] - th[1] * x[0] * w[1];
        }
        if (vth) {
            vth[0] += sin(x[1]) * w[0];
            vth[1] += -x[0] * x[1] * w[1];
        }
    }
    return NDE_OK;
}
static int cn_diff(nde_field *f, double t, const double *y,
                   const double *th, double *g, size_t batch)
{
    (void)f; (void)t;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r;
        g[2 * r] = th[2] * tanh(x[0]) + 0.1 * x[1];
        g[2 * r + 1] = th[3] * sqrt(1.0 + x[1] * x[1]);
    }
    return NDE_OK;
}
static int cn_diff_vjp(nde_field *f, double t, const double *y,
                       const double *th, const double *v, double *vy,
                       double *vth, size_t batch)
{
    (void)f; (void)t;
    for (size_t r = 0; r < batch; r++) {
        const double *x = y + 2 * r, *w = v + 2 * r;
        const double th0 = tanh(x[0]), s1 = sqrt(1.0 + x[1] * x[1]);
        if (vy) {
            vy[2 * r] += th[2] * (1.0 - th0 * th0) * w[0];
            vy[2 * r + 1] += 0.1 * w[0] + th[3] * x[1] / s1 * w[1];
        }
        if (vth) {
            vth[2] += th0 * w[0];
            vth[3] += s1 * w[1];
        }
    }
    return NDE_OK;
}
static const nde_field_type cn_field = {
    .info = NDE_FIELD_INFO(
        .name = "nl",
        .description = "nonlinear SDE",
        .provides = NDE_CAP_DIFFUSION,
        .version = "1"),
    .create = create_d2p4_diag, .destroy = tf_destroy,
    .init_params = tf_init,
    .eval = cn_eval, .vjp = cn_vjp, .diffusion = cn_diff,
    .diffusion_vjp = cn_diff_vjp};

/* ------------------------------------------------------------------ */
/* Fixture                                                             */


#define SOLVER(name) ((const nde_solver_type *)plugin(NDE_KIND_SOLVER, name))
#define ADJOINT(name) \
    ((const nde_adjoint_type *)plugin(NDE_KIND_ADJOINT, name))

#define NMAX 8
#define PMAX 128
#define KMAX 4

/* A problem on one Brownian path: field, solver, options, save times and
 * the loss L = sum_k w_k . y(t_k). */
typedef struct sde {
    nde_field *f;
    nde_solver *s;
    nde_brownian *bm;
    nde_solve_opts o;
    size_t n, P, nsave;
    double theta[PMAX], y0[NMAX];
    double t0, t1, bm_dt;
    uint64_t seed;
    double tsave[KMAX], w[KMAX * NMAX];
    nde_cotangent ct[KMAX];
} sde;

static void sde_make(sde *p, const nde_field_type *ft, size_t batch,
                     const char *solver, double dt, double bm_dt)
{
    static const double ts[] = {0.3, 0.75, 1.0};
    static const double th_gbm[] = {0.4, 0.6};
    static const double th_nl[] = {0.8, 0.7, 0.5, 0.3};
    unsigned long x = 2024;
    int rc;

    memset(p, 0, sizeof *p);
    rc = nde_field_create_from(ctx, ft, NULL, batch, &p->f);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    rc = nde_solver_create_from(ctx, SOLVER(solver), p->f, &p->s);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert_int_eq(nde_solver_set_batch(p->s, batch), NDE_OK);
    p->n = batch * p->f->dim;
    p->P = p->f->nparams;
    ck_assert_uint_le(p->n, NMAX);
    memcpy(p->theta, ft == &gbm_field ? th_gbm : th_nl,
           p->P * sizeof(double));
    for (size_t i = 0; i < p->n; i++)
        p->y0[i] = 0.5 + 0.25 * (double)i;
    p->t0 = 0.0;
    p->t1 = 1.0;
    p->bm_dt = bm_dt;
    p->seed = 42;
    ck_assert_int_eq(nde_brownian_create(ctx, p->n, &p->bm), NDE_OK);
    nde_solve_opts_default(&p->o, p->s->type);
    p->o.dt = dt;
    p->o.brownian = p->bm;
    p->nsave = 3;
    for (size_t k = 0; k < p->nsave; k++) {
        p->tsave[k] = ts[k];
        for (size_t i = 0; i < p->n; i++) {
            x = x * 6364136223846793005UL + 1442695040888963407UL;
            p->w[k * p->n + i] = (double)(x >> 11) / 9007199254740992.0 - 0.5;
        }
        p->ct[k].t = ts[k];
        p->ct[k].g = p->w + k * p->n;
    }
}

static void sde_free(sde *p)
{
    nde_brownian_destroy(p->bm);
    nde_solver_destroy(p->s);
    nde_field_destroy(p->f);
}

static void bm_reset(sde *p)
{
    int rc = nde_brownian_reset(p->bm, p->seed, p->t0, p->t1, p->bm_dt, p->n);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
}

/* The loss of a plain solve on the path. */
static double loss(sde *p, const double *theta, const double *y0)
{
    nde_solve_opts o = p->o;
    double ys[KMAX * NMAX], L = 0.0;
    int rc;
    o.record = NULL;
    bm_reset(p);
    rc = nde_solve(p->s, &o, theta, p->t0, y0, p->t1, p->nsave, p->tsave, ys,
                   NULL);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    for (size_t i = 0; i < p->nsave * p->n; i++)
        L += p->w[i] * ys[i];
    return L;
}

/* Central differences of the loss: g = [dL/dtheta, dL/dy0]. */
static void fd_grad(sde *p, double *g)
{
    double th[PMAX], y0[NMAX];
    memcpy(th, p->theta, sizeof th);
    memcpy(y0, p->y0, sizeof y0);
    for (size_t i = 0; i < p->P + p->n; i++) {
        double *x = i < p->P ? th + i : y0 + (i - p->P);
        const double x0 = *x, e = 1e-5 * fmax(1.0, fabs(x0));
        double lp, lm;
        *x = x0 + e;
        lp = loss(p, th, y0);
        *x = x0 - e;
        lm = loss(p, th, y0);
        *x = x0;
        g[i] = (lp - lm) / (2 * e);
    }
}

/* The adjoint's g = [dL/dtheta, dL/dy0] after a recording solve, the
 * adjoint configured by the [adjoint] section of ini (NULL: defaults); the
 * trajectory is returned in *keep when not NULL. */
static void adj_grad_ini(sde *p, const char *adjoint, const char *ini,
                         double *g, nde_stats *st, nde_trajectory **keep)
{
    nde_adjoint *a;
    nde_trajectory *tr;
    nde_config *cfg = NULL;
    double ys[KMAX * NMAX];
    nde_stats fst;
    int rc;
    if (ini) {
        cfg = nde_config_create();
        ck_assert_int_eq(nde_config_load_string(cfg, "test", ini, ctx),
                         NDE_OK);
    }
    rc = nde_adjoint_create_from(ctx, ADJOINT(adjoint),
                                 cfg ? nde_config_section(cfg, "adjoint")
                                     : NULL, p->s, &a);
    nde_config_destroy(cfg);
    ck_assert_msg(rc == NDE_OK, "%s: %s", adjoint, nde_ctx_message(ctx));
    tr = nde_trajectory_create(a->record, a->max_states);
    ck_assert_ptr_nonnull(tr);
    p->o.record = tr;
    bm_reset(p);
    rc = nde_solve(p->s, &p->o, p->theta, p->t0, p->y0, p->t1, p->nsave,
                   p->tsave, ys, &fst);
    p->o.record = NULL;
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    if (st)
        memset(st, 0, sizeof *st);
    rc = nde_adjoint_gradient(a, &p->o, tr, p->theta, p->ct, p->nsave,
                              g + p->P, g, st);
    ck_assert_msg(rc == NDE_OK, "%s: %s", adjoint, nde_ctx_message(ctx));
    nde_adjoint_destroy(a);
    if (keep)
        *keep = tr;
    else
        nde_trajectory_destroy(tr);
}

static void adj_grad(sde *p, const char *adjoint, double *g, nde_stats *st,
                     nde_trajectory **keep)
{
    adj_grad_ini(p, adjoint, NULL, g, st, keep);
}

static double rel_err(const double *a, const double *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ------------------------------------------------------------------ */
/* Finite differences                                                  */

static const nde_field_type *const fields[] = {&gbm_field, &cn_field};
static const size_t batches[] = {2, 1};

static void check_fd(const char *solver, const char *adjoint)
{
    for (size_t k = 0; k < 2; k++) {
        sde p;
        double g[PMAX + NMAX], gfd[PMAX + NMAX], eth, ey;
        nde_stats st;
        sde_make(&p, fields[k], batches[k], solver, 1.0 / 32, 1.0 / 32);
        adj_grad(&p, adjoint, g, &st, NULL);
        fd_grad(&p, gfd);
        eth = rel_err(g, gfd, p.P);
        ey = rel_err(g + p.P, gfd + p.P, p.n);
        fprintf(stderr, "%-15s %-10s %-4s vs central FD: dL/dtheta rel err "
                "%.2e, dL/dy0 %.2e (backward NFE %ld)\n", solver, adjoint,
                fields[k]->info.name, eth, ey, st.nfe_backward);
        ck_assert_msg(eth < 1e-6 && ey < 1e-6, "%s %s %s: %.3e %.3e",
                      solver, adjoint, fields[k]->info.name, eth, ey);
        ck_assert_int_gt(st.nfe_backward, 0);
        sde_free(&p);
    }
}

START_TEST(test_discrete_fd_em)
{
    check_fd("euler_maruyama", "discrete");
}
END_TEST

START_TEST(test_discrete_fd_rh)
{
    check_fd("reversible_heun", "discrete");
}
END_TEST

/* The loss of the recorded steps of tr replayed from (theta, y0), each
 * with the path's noise over exactly its interval: the solve with its
 * step sequence frozen (an adaptive solve's steps move with theta). The
 * solver stops on every save time, so they are step ends. A split path
 * is not reset: it holds the forward solve's points (its rejected
 * steps' ends among them), which a reset would forget, and the same
 * noise is read back from them. */
static double loss_frozen(sde *p, const nde_trajectory *tr,
                          const double *theta, const double *y0)
{
    double y[NMAX], yn[NMAX], dw[2 * NMAX], L = 0.0;
    size_t k = 0;
    memcpy(y, y0, p->n * sizeof(double));
    if (!p->o.brownian_split)
        bm_reset(p);
    for (size_t j = 0; j < tr->nsteps; j++) {
        const double t = tr->t[j];
        const double tn = j + 1 < tr->nsteps ? tr->t[j + 1] : tr->t1;
        ck_assert_int_eq(nde_solver_noise(p->s, p->bm, t, tn, dw), NDE_OK);
        ck_assert_int_eq(nde_solver_advance(p->s, theta, t, tr->h[j], dw, y,
                                            NULL, yn, NULL), NDE_OK);
        memcpy(y, yn, p->n * sizeof(double));
        for (; k < p->nsave && p->tsave[k] == tn; k++)
            for (size_t i = 0; i < p->n; i++)
                L += p->w[k * p->n + i] * y[i];
    }
    ck_assert_uint_eq(k, p->nsave);
    return L;
}

/* discrete replays any solver's recorded steps: the gradient of an
 * adaptive solve (lamba_heun, sosri, sriw1, sra1; lamba_heun again on a
 * split path, brownian = split) against central differences with its
 * accepted steps frozen. */
START_TEST(test_discrete_fd_adaptive)
{
    static const char *const solvers[] = {"lamba_heun", "sosri", "sriw1",
                                          "sra1", "lamba_heun"};
    for (size_t q = 0; q < 2 * 5; q++) {
        const size_t k = q % 2;
        const char *solver = solvers[q / 2];
        const int split = q / 2 == 4;
        sde p;
        nde_trajectory *tr;
        double g[PMAX + NMAX], gfd[PMAX + NMAX], th[PMAX], y0[NMAX];
        double eth, ey;
        nde_stats st;

        sde_make(&p, fields[k], batches[k], solver, 0.0, 1.0 / 32);
        p.o.rtol = p.o.atol = 1e-3;
        p.o.brownian_split = split;
        adj_grad(&p, "discrete", g, &st, &tr);
        ck_assert_int_eq(nde_brownian_has_split(p.bm), split);
        ck_assert_uint_gt(tr->nsteps, 8);
        memcpy(th, p.theta, sizeof th);
        memcpy(y0, p.y0, sizeof y0);
        for (size_t i = 0; i < p.P + p.n; i++) {
            double *x = i < p.P ? th + i : y0 + (i - p.P);
            const double x0 = *x, e = 1e-5 * fmax(1.0, fabs(x0));
            double lp, lm;
            *x = x0 + e;
            lp = loss_frozen(&p, tr, th, y0);
            *x = x0 - e;
            lm = loss_frozen(&p, tr, th, y0);
            *x = x0;
            gfd[i] = (lp - lm) / (2 * e);
        }
        eth = rel_err(g, gfd, p.P);
        ey = rel_err(g + p.P, gfd + p.P, p.n);
        fprintf(stderr, "%s%s discrete %-4s (%zu adaptive steps) vs "
                "frozen-step central FD: dL/dtheta rel err %.2e, dL/dy0 "
                "%.2e\n", solver, split ? " (split)" : "",
                fields[k]->info.name, tr->nsteps, eth, ey);
        ck_assert_msg(eth < 1e-6 && ey < 1e-6, "%s %s: %.3e %.3e", solver,
                      fields[k]->info.name, eth, ey);
        nde_trajectory_destroy(tr);
        sde_free(&p);
    }
}
END_TEST

START_TEST(test_reversible_fd)
{
    check_fd("reversible_heun", "reversible");
}
END_TEST

/* reversible reconstructs what discrete stored: equal to round-off. */
START_TEST(test_reversible_equals_discrete)
{
    for (size_t k = 0; k < 2; k++) {
        sde p;
        double gr[PMAX + NMAX], gd[PMAX + NMAX], e;
        sde_make(&p, fields[k], batches[k], "reversible_heun", 1.0 / 128,
                 1.0 / 128);
        adj_grad(&p, "reversible", gr, NULL, NULL);
        adj_grad(&p, "discrete", gd, NULL, NULL);
        e = rel_err(gr, gd, p.P + p.n);
        fprintf(stderr, "reversible vs discrete (%s, 128 steps): rel err "
                "%.2e\n", fields[k]->info.name, e);
        ck_assert_msg(e < 1e-10, "%s: %.3e", fields[k]->info.name, e);
        sde_free(&p);
    }
}
END_TEST

/* discrete with checkpoints = 5: the segments between the 5 stored
 * states (y and aux) are recomputed on the same Brownian increments, so
 * the gradient is the one from every stored state, bit for bit. The save
 * times 0.3 and 0.75 cut the grid's cells: the steps are uneven. */
START_TEST(test_discrete_checkpoints)
{
    static const char *const solvers[] = {"euler_maruyama",
                                          "reversible_heun", "heun"};
    for (size_t i = 0; i < 3; i++)
        for (size_t k = 0; k < 2; k++) {
            sde p;
            nde_trajectory *tr;
            nde_stats st0, st1;
            double g0[PMAX + NMAX], g1[PMAX + NMAX];
            sde_make(&p, fields[k], batches[k], solvers[i], 1.0 / 128,
                     1.0 / 128);
            adj_grad(&p, "discrete", g0, &st0, NULL);
            adj_grad_ini(&p, "discrete", "[adjoint]\ncheckpoints = 5\n", g1,
                         &st1, &tr);
            fprintf(stderr, "discrete checkpoints = 5, %s on %s: %zu of %zu "
                    "step states kept, backward NFE %ld -> %ld\n",
                    solvers[i], fields[k]->info.name, tr->nstates,
                    tr->nsteps, st0.nfe_backward, st1.nfe_backward);
            ck_assert_uint_le(tr->nstates, 5);
            ck_assert_uint_le(tr->states_cap, 5);
            ck_assert_uint_gt(tr->nsteps, 128);
            ck_assert_int_gt(st1.nfe_backward, st0.nfe_backward);
            ck_assert_msg(memcmp(g0, g1, (p.P + p.n) * sizeof *g0) == 0,
                          "%s %s: the gradient with checkpoints differs",
                          solvers[i], fields[k]->info.name);
            nde_trajectory_destroy(tr);
            /* More checkpoints than steps: every state, allocated with
             * the steps (not 10^12 states up front). */
            adj_grad_ini(&p, "discrete",
                         "[adjoint]\ncheckpoints = 1000000000000\n", g1,
                         NULL, &tr);
            ck_assert_uint_eq(tr->nstates, tr->nsteps);
            ck_assert_uint_le(tr->states_cap, tr->cap);
            ck_assert(memcmp(g0, g1, (p.P + p.n) * sizeof *g0) == 0);
            nde_trajectory_destroy(tr);
            sde_free(&p);
        }
}
END_TEST

/* ------------------------------------------------------------------ */
/* backsolve converges to the discrete gradient                        */

START_TEST(test_backsolve_converges)
{
    /* One Brownian path per seed on the finest grid, shared by every dt
     * (the coarse steps query whole groups of its cells), so the error is
     * measured pathwise: the mean over NSEED fixed paths at each dt. */
    enum { NDT = 6, NSEED = 16 };
    for (size_t k = 0; k < 2; k++) {
        double err[NDT], slope, sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (size_t i = 0; i < NDT; i++) {
            const double dt = ldexp(1.0, -3 - (int)i), lh = log(dt);
            err[i] = 0.0;
            for (uint64_t seed = 1; seed <= NSEED; seed++) {
                sde p;
                double gb[PMAX + NMAX], gd[PMAX + NMAX];
                sde_make(&p, fields[k], batches[k], "reversible_heun", dt,
                         ldexp(1.0, -3 - (NDT - 1)));
                p.seed = seed;
                adj_grad(&p, "backsolve", gb, NULL, NULL);
                adj_grad(&p, "discrete", gd, NULL, NULL);
                err[i] += rel_err(gb, gd, p.P + p.n) / NSEED;
                sde_free(&p);
            }
            fprintf(stderr, "backsolve vs discrete (%s, dt = 2^-%zu): mean "
                    "rel err over %d paths %.3e\n", fields[k]->info.name,
                    3 + i, NSEED, err[i]);
            sx += lh;
            sy += log(err[i]);
            sxx += lh * lh;
            sxy += lh * log(err[i]);
        }
        slope = (NDT * sxy - sx * sy) / (NDT * sxx - sx * sx);
        fprintf(stderr, "backsolve vs discrete (%s): fitted rate %.2f\n",
                fields[k]->info.name, slope);
        /* Each quartering of dt at least halves the mean error (measured
         * rates about 1; pairs two apart so that the sampling noise of 8
         * paths cannot flip the test). */
        for (size_t i = 2; i < NDT; i++)
            ck_assert_msg(err[i] < 0.5 * err[i - 2], "%s: dt = 2^-%zu: "
                          "%.3e vs %.3e at 4 dt", fields[k]->info.name,
                          3 + i, err[i], err[i - 2]);
        ck_assert_msg(slope > 0.5, "%s: rate %.2f", fields[k]->info.name,
                      slope);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Memory of reversible                                                */

START_TEST(test_reversible_memory)
{
    const double dts[] = {1.0 / 100, 1.0 / 10000};
    size_t bytes0 = 0;
    for (size_t i = 0; i < 2; i++) {
        sde p;
        nde_trajectory *tr;
        double g[PMAX + NMAX];
        nde_stats st;
        sde_make(&p, &gbm_field, 2, "reversible_heun", dts[i], dts[i]);
        adj_grad(&p, "reversible", g, &st, &tr);
        /* Nothing per step: no step arrays, no states. */
        ck_assert_uint_eq(tr->record, 0);
        ck_assert_uint_eq(tr->cap, 0);
        ck_assert_uint_eq(tr->states_cap, 0);
        ck_assert_ptr_null(tr->t);
        ck_assert_ptr_null(tr->y);
        ck_assert_ptr_null(tr->k);
        fprintf(stderr, "reversible, %.0f steps: record flags 0, %zu steps "
                "and %zu states allocated, backward NFE %ld\n", 1.0 / dts[i],
                tr->cap, tr->states_cap, st.nfe_backward);
        {
            nde_brownian_stats bs;
            nde_brownian_get_stats(p.bm, &bs);
            fprintf(stderr, "  Brownian Interval holds %zu bytes\n",
                    bs.bytes);
            if (i == 0)
                bytes0 = bs.bytes;
            else
                ck_assert_uint_eq(bs.bytes, bytes0);
        }
        /* One evaluation and one VJP per step (plus start). */
        ck_assert_int_le(st.nfe_backward, 2 * (long)(1.0 / dts[i]) + 8);
        for (size_t j = 0; j < p.P + p.n; j++)
            ck_assert(isfinite(g[j]));
        nde_trajectory_destroy(tr);
        sde_free(&p);
    }
}
END_TEST

/* Step boundaries that are not grid points: t0 != 0, a last cell cut
 * short by t1, a tstop, a save time at t0 (its cotangent goes straight
 * to dL/dy0) and one splitting a cell. reversible walks the boundaries
 * from the grid alone; it must meet the forward solve's. */
START_TEST(test_uneven_grid)
{
    static const double tstop[] = {0.5};
    static const char *const adj[] = {"discrete", "reversible"};
    for (size_t k = 0; k < 2; k++) {
        double g[2][PMAX + NMAX], gfd[PMAX + NMAX], gb[PMAX + NMAX];
        sde p;
        sde_make(&p, fields[k], batches[k], "reversible_heun", 0.07, 0.07);
        p.t0 = 0.1;
        p.t1 = 1.23;
        p.tsave[0] = p.ct[0].t = 0.1;
        p.tsave[1] = p.ct[1].t = 0.45;
        p.tsave[2] = p.ct[2].t = 1.23;
        p.o.tstops = tstop;
        p.o.ntstops = 1;
        for (size_t i = 0; i < 2; i++)
            adj_grad(&p, adj[i], g[i], NULL, NULL);
        adj_grad(&p, "backsolve", gb, NULL, NULL);
        fd_grad(&p, gfd);
        fprintf(stderr, "uneven grid (%s): discrete vs FD %.2e, reversible "
                "vs discrete %.2e, backsolve vs discrete %.2e\n",
                fields[k]->info.name, rel_err(g[0], gfd, p.P + p.n),
                rel_err(g[1], g[0], p.P + p.n),
                rel_err(gb, g[0], p.P + p.n));
        ck_assert_double_lt(rel_err(g[0], gfd, p.P), 1e-6);
        ck_assert_double_lt(rel_err(g[0] + p.P, gfd + p.P, p.n), 1e-6);
        ck_assert_double_lt(rel_err(g[1], g[0], p.P + p.n), 1e-10);
        ck_assert_double_lt(rel_err(gb, g[0], p.P + p.n), 0.1);
        sde_free(&p);
    }
}
END_TEST

/* Stratonovich GBM (expr, calculus = stratonovich): X_T = X0 exp(mu T +
 * sigma W_T) pathwise, so dX_T/dmu = T X_T, dX_T/dsigma = W_T X_T and
 * dX_T/dX0 = X_T / X0. Every SDE adjoint of reversible_heun approaches
 * this exact gradient as dt shrinks. */
START_TEST(test_gbm_exact)
{
    static const char ini[] =
        "[field]\nplugin = expr\nstate = x\nparams = mu=0.4, sigma=0.6\n"
        "calculus = stratonovich\ndx = mu*x\ngx = sigma*x\n";
    static const char *const adj[] = {"discrete", "reversible", "backsolve"};
    static const int steps[] = {64, 1024};
    nde_config *cfg = nde_config_create();
    double err[2][3];
    ck_assert_int_eq(nde_config_load_string(cfg, "test", ini, ctx), NDE_OK);
    for (size_t i = 0; i < 2; i++) {
        sde p;
        double W, XT, exact[3];
        sde_make(&p, &gbm_field, 1, "reversible_heun", 1.0 / steps[i],
                 1.0 / steps[i]);
        /* Swap in the expr field (same solver type). */
        nde_solver_destroy(p.s);
        nde_field_destroy(p.f);
        ck_assert_int_eq(nde_field_create(ctx, cfg, "field", 1, &p.f),
                         NDE_OK);
        ck_assert_int_eq(nde_solver_create_from(ctx, SOLVER(
                             "reversible_heun"), p.f, &p.s), NDE_OK);
        ck_assert_int_eq(nde_field_init_params(p.f, p.theta, 1), NDE_OK);
        p.nsave = 1;
        p.tsave[0] = p.ct[0].t = 1.0;
        p.w[0] = 1.0;
        bm_reset(&p);
        ck_assert_int_eq(nde_brownian_increment(p.bm, 0.0, 1.0, &W), NDE_OK);
        XT = p.y0[0] * exp(p.theta[0] + p.theta[1] * W);
        exact[0] = XT;
        exact[1] = W * XT;
        exact[2] = XT / p.y0[0];
        for (size_t a = 0; a < 3; a++) {
            double g[PMAX + NMAX];
            adj_grad(&p, adj[a], g, NULL, NULL);
            err[i][a] = rel_err(g, exact, 3);
            fprintf(stderr, "Stratonovich GBM, %d steps, W_T = %.4f: %-10s "
                    "vs exact pathwise gradient: rel err %.2e\n", steps[i],
                    W, adj[a], err[i][a]);
        }
        sde_free(&p);
    }
    for (size_t a = 0; a < 3; a++) {
        ck_assert_msg(err[1][a] < 1e-2, "%s: %.3e", adj[a], err[1][a]);
        ck_assert_msg(err[1][a] < err[0][a] / 4, "%s: %.3e vs %.3e", adj[a],
                      err[1][a], err[0][a]);
    }
    nde_config_destroy(cfg);
}
END_TEST

/* The mlp SDE form (drift and softplus diffusion networks, time input),
 * batch of 2: discrete (both solvers) and reversible against central
 * finite differences on a fixed path. */
START_TEST(test_mlp_sde)
{
    static const char ini[] =
        "[field]\nplugin = mlp\nlayers = 2, 8, 2\nactivation = tanh\n"
        "time = true\ndiffusion = softplus\ng_layers = 6\n";
    static const char *const runs[][2] = {{"euler_maruyama", "discrete"},
                                          {"reversible_heun", "discrete"},
                                          {"reversible_heun", "reversible"}};
    nde_config *cfg = nde_config_create();
    ck_assert_int_eq(nde_config_load_string(cfg, "test", ini, ctx), NDE_OK);
    for (size_t r = 0; r < 3; r++) {
        sde p;
        double g[PMAX + NMAX], gfd[PMAX + NMAX], eth, ey;
        sde_make(&p, &gbm_field, 1, runs[r][0], 1.0 / 16, 1.0 / 16);
        nde_solver_destroy(p.s);
        nde_field_destroy(p.f);
        nde_brownian_destroy(p.bm);
        ck_assert_int_eq(nde_field_create(ctx, cfg, "field", 2, &p.f),
                         NDE_OK);
        ck_assert_int_eq(nde_solver_create_from(ctx, SOLVER(runs[r][0]), p.f,
                                                &p.s), NDE_OK);
        ck_assert_int_eq(nde_solver_set_batch(p.s, 2), NDE_OK);
        p.n = 2 * p.f->dim;
        p.P = p.f->nparams;
        ck_assert_uint_le(p.P, PMAX);
        ck_assert_int_eq(nde_field_init_params(p.f, p.theta, 3), NDE_OK);
        for (size_t i = 0; i < p.n; i++)
            p.y0[i] = 0.3 * (double)i - 0.4;
        for (size_t i = 0; i < p.nsave * p.n; i++)
            p.w[i] = 0.1 * (double)(i % 7) - 0.3;
        for (size_t k = 0; k < p.nsave; k++)
            p.ct[k].g = p.w + k * p.n;
        ck_assert_int_eq(nde_brownian_create(ctx, p.n, &p.bm), NDE_OK);
        p.o.brownian = p.bm;
        adj_grad(&p, runs[r][1], g, NULL, NULL);
        fd_grad(&p, gfd);
        eth = rel_err(g, gfd, p.P);
        ey = rel_err(g + p.P, gfd + p.P, p.n);
        fprintf(stderr, "mlp SDE (%zu params) %-15s %-10s vs central FD: "
                "dL/dtheta rel err %.2e, dL/dy0 %.2e\n", p.P, runs[r][0],
                runs[r][1], eth, ey);
        ck_assert_msg(eth < 1e-6 && ey < 1e-6, "%s %s: %.3e %.3e",
                      runs[r][0], runs[r][1], eth, ey);
        sde_free(&p);
    }
    nde_config_destroy(cfg);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Refusals                                                            */

static void expect_refused(const char *solver, const char *adjoint,
                           const char *msg)
{
    nde_field *f;
    nde_solver *s;
    nde_adjoint *a = (nde_adjoint *)1;
    ck_assert_int_eq(nde_field_create_from(ctx, &gbm_field, NULL, 1, &f),
                     NDE_OK);
    ck_assert_int_eq(nde_solver_create_from(ctx, SOLVER(solver), f, &s),
                     NDE_OK);
    ck_assert_int_eq(nde_adjoint_create_from(ctx, ADJOINT(adjoint), NULL, s,
                                             &a), NDE_ECAPABILITY);
    ck_assert_ptr_null(a);
    ck_assert_msg(strstr(nde_ctx_message(ctx), msg), "%s + %s: '%s'",
                  adjoint, solver, nde_ctx_message(ctx));
    ck_assert_msg(strstr(nde_ctx_message(ctx), solver), "%s + %s: '%s'",
                  adjoint, solver, nde_ctx_message(ctx));
    fprintf(stderr, "refused %s + %s: %s\n", adjoint, solver,
            nde_ctx_message(ctx));
    nde_solver_destroy(s);
    nde_field_destroy(f);
}

START_TEST(test_refused)
{
    expect_refused("euler_maruyama", "reversible",
                   "adjoint 'reversible' needs the solver's reverse step");
    expect_refused("euler_maruyama", "backsolve", "Stratonovich");
    expect_refused("euler_maruyama", "interpolating", "dense output");
    expect_refused("reversible_heun", "interpolating", "dense output");
    /* The adaptive Ito solvers: only discrete (step VJP) works. */
    for (size_t k = 0; k < 3; k++) {
        static const char *const ito[] = {"sosri", "sriw1", "sra1"};
        expect_refused(ito[k], "reversible",
                       "adjoint 'reversible' needs the solver's reverse step");
        expect_refused(ito[k], "backsolve", "Stratonovich");
        expect_refused(ito[k], "interpolating", "dense output");
    }
    /* backsolve's adaptive settings mean nothing for fixed SDE steps. */
    {
        nde_field *f;
        nde_solver *s;
        nde_adjoint *a;
        nde_config *cfg = nde_config_create();
        ck_assert_int_eq(nde_config_load_string(cfg, "test", "[adjoint]\n"
                         "plugin = backsolve\nrtol = 1e-6\n", ctx), NDE_OK);
        ck_assert_int_eq(nde_field_create_from(ctx, &gbm_field, NULL, 1, &f),
                         NDE_OK);
        ck_assert_int_eq(nde_solver_create_from(ctx, SOLVER(
                             "reversible_heun"), f, &s), NDE_OK);
        ck_assert_int_eq(nde_adjoint_create(ctx, cfg, "adjoint", NULL, s,
                                            &a), NDE_ECONFIG);
        ck_assert_ptr_null(a);
        ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "rtol"));
        fprintf(stderr, "refused backsolve rtol + reversible_heun: %s\n",
                nde_ctx_message(ctx));
        nde_config_destroy(cfg);
        cfg = nde_config_create();
        ck_assert_int_eq(nde_config_load_string(cfg, "test", "[adjoint]\n"
                         "plugin = backsolve\n", ctx), NDE_OK);
        ck_assert_int_eq(nde_adjoint_create(ctx, cfg, "adjoint", NULL, s,
                                            &a), NDE_OK);
        nde_adjoint_destroy(a);
        nde_solver_destroy(s);
        nde_field_destroy(f);
        nde_config_destroy(cfg);
    }
    /* An ODE solver is not reversible either. */
    {
        nde_field *f;
        nde_solver *s;
        nde_adjoint *a;
        ck_assert_int_eq(nde_field_create_from(ctx, &gbm_field, NULL, 1, &f),
                         NDE_OK);
        f->noise = NDE_NOISE_NONE;
        ck_assert_int_eq(nde_solver_create_from(ctx, SOLVER("tsit5"), f, &s),
                         NDE_OK);
        ck_assert_int_eq(nde_adjoint_create_from(ctx, ADJOINT("reversible"),
                                                 NULL, s, &a),
                         NDE_ECAPABILITY);
        ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "tsit5"));
        nde_solver_destroy(s);
        nde_field_destroy(f);
    }
}
END_TEST

/* A cotangent between step boundaries has no meaning for a solver without
 * dense output: refused, not interpolated. */
START_TEST(test_cotangent_off_grid)
{
    static const char *const names[][2] = {
        {"euler_maruyama", "discrete"},
        {"reversible_heun", "discrete"},
        {"reversible_heun", "reversible"},
        {"reversible_heun", "backsolve"}};
    for (size_t k = 0; k < 4; k++) {
        sde p;
        nde_adjoint *a;
        nde_trajectory *tr;
        double ys[KMAX * NMAX], g[PMAX + NMAX];
        int rc;
        sde_make(&p, &gbm_field, 1, names[k][0], 1.0 / 32, 1.0 / 32);
        ck_assert_int_eq(nde_adjoint_create_from(ctx, ADJOINT(names[k][1]),
                                                 NULL, p.s, &a), NDE_OK);
        tr = nde_trajectory_create(a->record, a->max_states);
        p.o.record = tr;
        bm_reset(&p);
        ck_assert_int_eq(nde_solve(p.s, &p.o, p.theta, p.t0, p.y0, p.t1,
                                   p.nsave, p.tsave, ys, NULL), NDE_OK);
        p.ct[1].t = 0.31; /* between 0.3 and the grid point 0.3125 */
        rc = nde_adjoint_gradient(a, &p.o, tr, p.theta, p.ct, p.nsave,
                                  g + p.P, g, NULL);
        ck_assert_msg(rc == NDE_EINVAL, "%s + %s: %d", names[k][1],
                      names[k][0], rc);
        ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "t = 0.31"));
        nde_adjoint_destroy(a);
        nde_trajectory_destroy(tr);
        sde_free(&p);
    }
}
END_TEST

static Suite *sde_adjoint_suite(void)
{
    Suite *su = suite_create("sde_adjoints");
    TCase *tc = tcase_create("gradients");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_discrete_fd_em);
    tcase_add_test(tc, test_discrete_fd_rh);
    tcase_add_test(tc, test_discrete_fd_adaptive);
    tcase_add_test(tc, test_reversible_fd);
    tcase_add_test(tc, test_reversible_equals_discrete);
    tcase_add_test(tc, test_discrete_checkpoints);
    tcase_add_test(tc, test_backsolve_converges);
    tcase_add_test(tc, test_reversible_memory);
    tcase_add_test(tc, test_uneven_grid);
    tcase_add_test(tc, test_gbm_exact);
    tcase_add_test(tc, test_mlp_sde);
    suite_add_tcase(su, tc);
    tc = tcase_create("refusals");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_cotangent_off_grid);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(sde_adjoint_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
