/*
 * Adjoint suite. Conformance: every adjoint plugin found by
 * nde_plugin_foreach computes the analytic gradient of a linear ODE,
 * agrees with `discrete` on Lotka-Volterra (expr field) and on the spiral
 * MLP with cotangents at several times, adds to stats->nfe_backward only,
 * and repeats itself exactly. Then per plugin: discrete against central
 * finite differences (fixed-step solves, and an adaptive solve with its
 * step sequence frozen), checkpointing, the seminorm, backward NFE across
 * observation times, and refused pairings.
 *
 * Measured agreement and NFE are printed to stderr for the record.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

#define MAX_ADJOINTS 16

/* ------------------------------------------------------------------ */
/* Fields                                                              */

static void tf_destroy(nde_field *f) { (void)f; }
static int tf_init(nde_field *f, double *theta, uint64_t seed)
{
    (void)seed;
    for (size_t i = 0; i < f->nparams; i++)
        theta[i] = 0.5;
    return NDE_OK;
}

/* y' = theta0 y. */
static int lin_create(nde_field *f, nde_section *sec, nde_ctx *c)
{
    (void)sec; (void)c;
    f->dim = 1;
    f->nparams = 1;
    return NDE_OK;
}
static int lin_eval(nde_field *f, double t, const double *y,
                    const double *th, double *dy, size_t batch)
{
    (void)f; (void)t;
    for (size_t i = 0; i < batch; i++)
        dy[i] = th[0] * y[i];
    return NDE_OK;
}
static int lin_vjp(nde_field *f, double t, const double *y, const double *th,
                   const double *v, double *vy, double *vth, size_t batch)
{
    (void)f; (void)t;
    for (size_t i = 0; i < batch; i++) {
        if (vy)
            vy[i] += v[i] * th[0];
        if (vth)
            vth[0] += v[i] * y[i];
    }
    return NDE_OK;
}
static const nde_field_type lin_field = {
    .info = NDE_FIELD_INFO(
        .name = "lin",
        .description = "y' = theta y",
        .version = "1"),
    .create = lin_create, .destroy = tf_destroy, .init_params = tf_init,
    .eval = lin_eval, .vjp = lin_vjp};

/* ------------------------------------------------------------------ */
/* Fixture                                                             */

typedef struct adjoint_list {
    const nde_adjoint_type *type[MAX_ADJOINTS];
    size_t n;
} adjoint_list;

static nde_ctx *ctx;
static adjoint_list adjoints;

static int collect(const nde_plugin_info *info, const char *path, void *user)
{
    adjoint_list *l = user;
    (void)path;
    /* Adjoints for reversible solvers only have their own SDE suite. */
    if (info->kind == NDE_KIND_ADJOINT && l->n < MAX_ADJOINTS &&
        !(info->needs & NDE_NEEDS_REVERSIBLE))
        l->type[l->n++] = (const nde_adjoint_type *)info;
    return 0;
}

static void setup(void)
{
    ctx = nde_ctx_create();
    ck_assert_ptr_nonnull(ctx);
    memset(&adjoints, 0, sizeof adjoints);
    ck_assert_int_eq(nde_plugin_foreach(ctx, collect, NULL, &adjoints), 0);
}

static void teardown(void) { nde_ctx_destroy(ctx); }

static const nde_solver_type *solver_named(const char *name)
{
    const nde_plugin_info *info;
    int rc = nde_plugin_find(ctx, NDE_KIND_SOLVER, name, &info);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return (const nde_solver_type *)info;
}

static const nde_adjoint_type *adjoint_named(const char *name)
{
    const nde_plugin_info *info;
    int rc = nde_plugin_find(ctx, NDE_KIND_ADJOINT, name, &info);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return (const nde_adjoint_type *)info;
}

static nde_config *config_from(const char *text)
{
    nde_config *cfg = nde_config_create();
    int rc = nde_config_load_string(cfg, "test", text, ctx);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    return cfg;
}

static const char spiral_ini[] =
    "[field]\nplugin = mlp\nlayers = 2, 50, 2\nactivation = tanh\n"
    "input = cube\n";
static const char lv_ini[] =
    "[field]\nplugin = expr\nstate = x, y\n"
    "params = a=1.5, b=1.0, c=3.0, d=1.0\n"
    "dx = a*x - b*x*y\ndy = d*x*y - c*y\n";

/* A problem: field, theta, y0 rows, interval and loss weights. */
typedef struct problem {
    nde_config *cfg;
    nde_field *f;
    double *theta;
    size_t P, n, batch;
    double y0[8];
    double t0, t1;
} problem;

static void problem_from(problem *p, const char *ini, size_t batch,
                         const double *y0, double t0, double t1)
{
    int rc;
    memset(p, 0, sizeof *p);
    p->cfg = config_from(ini);
    rc = nde_field_create(ctx, p->cfg, "field", batch, &p->f);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    p->P = p->f->nparams;
    p->batch = batch;
    p->n = batch * p->f->dim;
    ck_assert_uint_le(p->n, 8);
    memcpy(p->y0, y0, p->n * sizeof(double));
    p->theta = malloc(p->P * sizeof(double));
    ck_assert_int_eq(nde_field_init_params(p->f, p->theta, 7), NDE_OK);
    p->t0 = t0;
    p->t1 = t1;
}

static void problem_lin(problem *p, double th, double y0, double T)
{
    int rc;
    memset(p, 0, sizeof *p);
    rc = nde_field_create_from(ctx, &lin_field, NULL, 1, &p->f);
    ck_assert_int_eq(rc, NDE_OK);
    p->P = 1;
    p->batch = 1;
    p->n = 1;
    p->y0[0] = y0;
    p->theta = malloc(sizeof(double));
    p->theta[0] = th;
    p->t0 = 0.0;
    p->t1 = T;
}

static void problem_free(problem *p)
{
    nde_field_destroy(p->f);
    nde_config_destroy(p->cfg);
    free(p->theta);
}

/* Cotangents: at the given times, weights from a fixed pseudo-random
 * sequence (the loss is sum_k w_k . y(t_k)). */
typedef struct cotangents {
    size_t n;
    double t[16];
    double w[16 * 8];
    nde_cotangent ct[16];
} cotangents;

static void cotangents_at(cotangents *c, const double *ts, size_t nt,
                          size_t n)
{
    unsigned long x = 12345;
    c->n = nt;
    for (size_t k = 0; k < nt; k++) {
        c->t[k] = ts[k];
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005UL + 1442695040888963407UL;
            c->w[k * n + i] = (double)(x >> 11) / 9007199254740992.0 - 0.5;
        }
        c->ct[k].t = ts[k];
        c->ct[k].g = c->w + k * n;
    }
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

/* A solver, opts and an adjoint for a problem. */
typedef struct run {
    nde_solver *s;
    nde_solve_opts o;
    nde_adjoint *a;
    nde_trajectory *tr;
    nde_stats fwd;
} run;

static void run_make(run *r, problem *p, const char *solver, double tol,
                     double dt, const nde_adjoint_type *at, const char *sec)
{
    const nde_solver_type *st = solver_named(solver);
    nde_section *s_sec = NULL;
    nde_config *cfg = NULL;
    int rc;
    memset(r, 0, sizeof *r);
    rc = nde_solver_create_from(ctx, st, p->f, &r->s);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert_int_eq(nde_solver_set_batch(r->s, p->batch), NDE_OK);
    nde_solve_opts_default(&r->o, st);
    r->o.rtol = r->o.atol = tol;
    r->o.dt = dt;
    if (sec) {
        cfg = config_from(sec);
        s_sec = nde_config_section(cfg, "adjoint");
    }
    rc = nde_adjoint_create_from(ctx, at, s_sec, r->s, &r->a);
    ck_assert_msg(rc == NDE_OK, "%s: %s", at->info.name,
                  nde_ctx_message(ctx));
    nde_config_destroy(cfg);
    r->tr = nde_trajectory_create(r->a->record, r->a->max_states);
    ck_assert_ptr_nonnull(r->tr);
    r->o.record = r->tr;
}

static void run_free(run *r)
{
    nde_adjoint_destroy(r->a);
    nde_trajectory_destroy(r->tr);
    nde_solver_destroy(r->s);
}

/* Forward solve (recording what the adjoint asked for) with the cotangent
 * times as save times, as a loss would (a fixed-step solve stops on them),
 * then the gradient. Returns the backward NFE. */
static long run_gradient(run *r, problem *p, const cotangents *c,
                         double *ybar0, double *thetabar)
{
    double ys[16 * 8];
    nde_stats st;
    int rc = nde_solve(r->s, &r->o, p->theta, p->t0, p->y0, p->t1, c->n,
                       c->t, ys, &r->fwd);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    memset(&st, 0, sizeof st);
    rc = nde_adjoint_gradient(r->a, &r->o, r->tr, p->theta, c->ct, c->n,
                              ybar0, thetabar, &st);
    ck_assert_msg(rc == NDE_OK, "%s: %s", r->a->type->info.name,
                  nde_ctx_message(ctx));
    return st.nfe_backward;
}

/* sum_k w_k . y(t_k) from a plain solve with save times. */
static double loss_solve(nde_solver *s, const nde_solve_opts *o0,
                         problem *p, const double *theta, const double *y0,
                         const cotangents *c)
{
    nde_solve_opts o = *o0;
    double ys[16 * 8], L = 0.0;
    int rc;
    o.record = NULL;
    rc = nde_solve(s, &o, theta, p->t0, y0, p->t1, c->n, c->t, ys, NULL);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    for (size_t i = 0; i < c->n * p->n; i++)
        L += c->w[i] * ys[i];
    return L;
}

/* The same loss with the step sequence of tr frozen: replay its steps
 * with nde_solver_step; cotangent times inside a step use its dense
 * output (as the solve loop serves save times). */
static double loss_frozen(nde_solver *s, const nde_trajectory *tr,
                          problem *p, const double *theta, const double *y0,
                          const cotangents *c)
{
    const size_t n = p->n;
    double y[8], yn[8], out[8], L = 0.0;
    size_t k = 0;
    memcpy(y, y0, n * sizeof(double));
    while (k < c->n && c->t[k] == p->t0) {
        for (size_t i = 0; i < n; i++)
            L += c->w[k * n + i] * y[i];
        k++;
    }
    nde_solver_invalidate(s);
    for (size_t j = 0; j < tr->nsteps; j++) {
        const double tj = tr->t[j], h = tr->h[j];
        const double tend = j + 1 < tr->nsteps ? tr->t[j + 1] : tr->t1;
        ck_assert_int_eq(nde_solver_step(s, theta, tj, h, y, yn, NULL),
                         NDE_OK);
        for (; k < c->n && c->t[k] <= tend; k++) {
            if (c->t[k] == tend)
                memcpy(out, yn, n * sizeof(double));
            else
                nde_solver_dense(s, y, h, (c->t[k] - tj) / h, out);
            for (size_t i = 0; i < n; i++)
                L += c->w[k * n + i] * out[i];
        }
        nde_solver_accept(s);
        memcpy(y, yn, n * sizeof(double));
    }
    return L;
}

/* Central differences of loss over theta and y0. */
typedef double (*loss_fn)(void *user, const double *theta, const double *y0);

static void central_fd(loss_fn fn, void *user, problem *p, double *gth,
                       double *gy0)
{
    double *th = malloc(p->P * sizeof(double)), y0[8];
    memcpy(th, p->theta, p->P * sizeof(double));
    memcpy(y0, p->y0, p->n * sizeof(double));
    for (size_t i = 0; i < p->P; i++) {
        const double e = 1e-5 * fmax(1.0, fabs(th[i]));
        double lp, lm;
        th[i] = p->theta[i] + e;
        lp = fn(user, th, y0);
        th[i] = p->theta[i] - e;
        lm = fn(user, th, y0);
        th[i] = p->theta[i];
        gth[i] = (lp - lm) / (2 * e);
    }
    for (size_t i = 0; i < p->n; i++) {
        const double e = 1e-5 * fmax(1.0, fabs(y0[i]));
        double lp, lm;
        y0[i] = p->y0[i] + e;
        lp = fn(user, p->theta, y0);
        y0[i] = p->y0[i] - e;
        lm = fn(user, p->theta, y0);
        y0[i] = p->y0[i];
        gy0[i] = (lp - lm) / (2 * e);
    }
    free(th);
}

typedef struct fd_user {
    run *r;
    problem *p;
    const cotangents *c;
    int frozen;
} fd_user;

static double fd_loss(void *user, const double *theta, const double *y0)
{
    fd_user *u = user;
    if (u->frozen)
        return loss_frozen(u->r->s, u->r->tr, u->p, theta, y0, u->c);
    return loss_solve(u->r->s, &u->r->o, u->p, theta, y0, u->c);
}

/* ------------------------------------------------------------------ */
/* Conformance: every adjoint plugin                                   */

START_TEST(test_found)
{
    const char *expected[] = {"discrete", "interpolating", "backsolve",
                              NULL};
    for (size_t i = 0; expected[i]; i++) {
        int found = 0;
        for (size_t k = 0; k < adjoints.n; k++)
            found |= strcmp(adjoints.type[k]->info.name, expected[i]) == 0;
        ck_assert_msg(found, "adjoint plugin '%s' not found", expected[i]);
    }
}
END_TEST

/* y' = theta y, L = y(T): dL/dtheta = T y0 e^{theta T},
 * dL/dy0 = e^{theta T}. */
START_TEST(test_linear_analytic)
{
    const double th = 0.7, T = 2.0, y0 = 1.0;
    const double dth = T * y0 * exp(th * T), dy0 = exp(th * T);
    for (size_t k = 0; k < adjoints.n; k++) {
        problem p;
        run r;
        cotangents c;
        double ybar0, thbar;
        problem_lin(&p, th, y0, T);
        cotangents_at(&c, &T, 1, 1);
        c.w[0] = 1.0;
        run_make(&r, &p, "tsit5", 1e-11, 0.0, adjoints.type[k], NULL);
        run_gradient(&r, &p, &c, &ybar0, &thbar);
        fprintf(stderr, "linear %-14s dL/dtheta rel err %.2e, dL/dy0 %.2e\n",
                adjoints.type[k]->info.name, fabs(thbar - dth) / dth,
                fabs(ybar0 - dy0) / dy0);
        ck_assert_msg(fabs(thbar - dth) < 1e-8 * dth, "%s: %.17g vs %.17g",
                      adjoints.type[k]->info.name, thbar, dth);
        ck_assert_msg(fabs(ybar0 - dy0) < 1e-8 * dy0, "%s: %.17g vs %.17g",
                      adjoints.type[k]->info.name, ybar0, dy0);
        run_free(&r);
        /* Integrating backwards in time: from y(T) = y0 to t = 0,
         * L = y(0) = y0 e^{-theta T}. */
        p.t0 = T;
        p.t1 = 0.0;
        c.t[0] = c.ct[0].t = 0.0;
        run_make(&r, &p, "tsit5", 1e-11, 0.0, adjoints.type[k], NULL);
        run_gradient(&r, &p, &c, &ybar0, &thbar);
        ck_assert_msg(fabs(thbar + T * y0 * exp(-th * T)) <
                          1e-8 * T * exp(-th * T) &&
                      fabs(ybar0 - exp(-th * T)) < 1e-8 * exp(-th * T),
                      "%s backwards: %.17g %.17g",
                      adjoints.type[k]->info.name, thbar, ybar0);
        run_free(&r);
        problem_free(&p);
    }
}
END_TEST

static int has_key(const nde_adjoint_type *at, const char *key)
{
    for (const nde_key *k = at->info.keys; k && k->name; k++)
        if (strcmp(k->name, key) == 0)
            return 1;
    return 0;
}

/* Against discrete at rtol = atol = 1e-10, batch 2, cotangents at t0,
 * between save points, on shared times and at t1; adjoints with a `norm`
 * key with both norms. */
static void agree_with_discrete(const char *ini, const double *y0, double t1,
                                const char *what)
{
    const double ts[7] = {0.0, 0.37 * t1, 0.5 * t1, 0.5 * t1, 0.71 * t1,
                          0.9 * t1, t1};
    const char *norms[2] = {"full", "seminorm"};
    for (size_t k = 0; k < adjoints.n; k++)
        for (int q = 0; q < (has_key(adjoints.type[k], "norm") ? 2 : 1);
             q++) {
        problem p;
        run rd, ra;
        cotangents c;
        char sec[128];
        double *gd, *ga, yd[8], ya[8];
        double eth, ey;
        long nfe;
        problem_from(&p, ini, 2, y0, 0.0, t1);
        cotangents_at(&c, ts, 7, p.n);
        gd = malloc(p.P * sizeof(double));
        ga = malloc(p.P * sizeof(double));
        snprintf(sec, sizeof sec, "[adjoint]\nplugin = %s\nnorm = %s\n",
                 adjoints.type[k]->info.name, norms[q]);
        run_make(&rd, &p, "tsit5", 1e-10, 0.0, adjoint_named("discrete"),
                 NULL);
        run_make(&ra, &p, "tsit5", 1e-10, 0.0, adjoints.type[k],
                 q > 0 ? sec : NULL);
        run_gradient(&rd, &p, &c, yd, gd);
        nfe = run_gradient(&ra, &p, &c, ya, ga);
        eth = rel_err(ga, gd, p.P);
        ey = rel_err(ya, yd, p.n);
        fprintf(stderr, "%s %-14s %-8s vs discrete: dL/dtheta rel %.2e, "
                "dL/dy0 rel %.2e; forward %ld steps, backward NFE %ld\n",
                what, adjoints.type[k]->info.name, q ? "seminorm" : "", eth,
                ey, ra.fwd.steps_accepted, nfe);
        ck_assert_msg(eth < 1e-5 && ey < 1e-5, "%s %s %s: %.3g %.3g", what,
                      adjoints.type[k]->info.name, norms[q], eth, ey);
        ck_assert_int_gt(nfe, 0);
        run_free(&rd);
        run_free(&ra);
        free(gd);
        free(ga);
        problem_free(&p);
    }
}

START_TEST(test_agree_lv)
{
    const double y0[4] = {1.0, 1.0, 2.0, 0.5};
    agree_with_discrete(lv_ini, y0, 6.0, "lotka-volterra");
}
END_TEST

START_TEST(test_agree_spiral)
{
    const double y0[4] = {2.0, 0.0, 0.5, -1.0};
    agree_with_discrete(spiral_ini, y0, 5.0, "spiral-mlp");
}
END_TEST

/* Contract: overwrites ybar0 and thetabar, adds to nfe_backward only,
 * gives the same numbers when called again. */
START_TEST(test_contract)
{
    const double y0[2] = {1.0, 1.0}, ts[2] = {1.0, 3.0};
    for (size_t k = 0; k < adjoints.n; k++) {
        problem p;
        run r;
        cotangents c;
        nde_stats st;
        double g1[4], g2[4], y1[2], y2[2];
        problem_from(&p, lv_ini, 1, y0, 0.0, 3.0);
        cotangents_at(&c, ts, 2, p.n);
        run_make(&r, &p, "tsit5", 1e-8, 0.0, adjoints.type[k], NULL);
        ck_assert_uint_eq(r.a->record & ~(unsigned)(NDE_NEEDS_STEPS |
                                                    NDE_NEEDS_DENSE), 0);
        run_gradient(&r, &p, &c, y1, g1);
        memset(&st, 0, sizeof st);
        st.nfe = 11;
        st.nfe_backward = 1000;
        st.steps_accepted = 13;
        for (int i = 0; i < 4; i++)
            g2[i] = 1e300;
        y2[0] = y2[1] = 1e300;
        ck_assert_int_eq(nde_adjoint_gradient(r.a, &r.o, r.tr, p.theta,
                                              c.ct, c.n, y2, g2, &st),
                         NDE_OK);
        ck_assert(st.nfe == 11 && st.steps_accepted == 13);
        ck_assert_int_gt(st.nfe_backward, 1000);
        ck_assert(memcmp(g1, g2, sizeof g1) == 0);
        ck_assert(memcmp(y1, y2, sizeof y1) == 0);
        run_free(&r);
        problem_free(&p);
    }
    /* A batch below batch_max gives what a solver sized for it gives. */
    for (size_t k = 0; k < adjoints.n; k++) {
        const double y2r[4] = {1.0, 1.0, 0.5, 1.5};
        problem p;
        run r;
        cotangents c;
        nde_field *f2;
        double g1[4], g2[4], y1[4], yb2[4];
        problem_from(&p, lv_ini, 2, y2r, 0.0, 3.0);
        cotangents_at(&c, ts, 2, p.n);
        run_make(&r, &p, "tsit5", 1e-8, 0.0, adjoints.type[k], NULL);
        run_gradient(&r, &p, &c, y1, g1);
        run_free(&r);
        f2 = p.f;
        ck_assert_int_eq(nde_field_create(ctx, p.cfg, "field", 5, &p.f),
                         NDE_OK);
        run_make(&r, &p, "tsit5", 1e-8, 0.0, adjoints.type[k], NULL);
        run_gradient(&r, &p, &c, yb2, g2);
        ck_assert_msg(memcmp(g1, g2, sizeof g1) == 0 &&
                      memcmp(y1, yb2, sizeof y1) == 0, "%s: batch 2 of 5",
                      adjoints.type[k]->info.name);
        run_free(&r);
        nde_field_destroy(p.f);
        p.f = f2;
        problem_free(&p);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* discrete                                                            */

static void discrete_vs_fd(const char *ini, const char *solver, double dt,
                           int frozen, const double *y0, double t1)
{
    const double ts[5] = {0.0, 0.33 * t1, 0.5 * t1, 0.77 * t1, t1};
    problem p;
    run r;
    cotangents c;
    fd_user u;
    double *g, *gfd, yb[8], yfd[8], eth, ey;
    problem_from(&p, ini, 2, y0, 0.0, t1);
    cotangents_at(&c, ts, 5, p.n);
    g = malloc(p.P * sizeof(double));
    gfd = malloc(p.P * sizeof(double));
    run_make(&r, &p, solver, 1e-6, dt, adjoint_named("discrete"), NULL);
    run_gradient(&r, &p, &c, yb, g);
    u.r = &r;
    u.p = &p;
    u.c = &c;
    u.frozen = frozen;
    central_fd(fd_loss, &u, &p, gfd, yfd);
    eth = rel_err(g, gfd, p.P);
    ey = rel_err(yb, yfd, p.n);
    fprintf(stderr, "discrete vs central FD, %s %s%s (%zu steps, P = %zu): "
            "dL/dtheta rel %.2e, dL/dy0 rel %.2e\n", strstr(ini, "mlp") ? "mlp"
            : "expr", solver, frozen ? " frozen steps" : "", r.tr->nsteps,
            p.P, eth, ey);
    ck_assert_msg(eth < 1e-6 && ey < 1e-6, "%s: %.3g %.3g", solver, eth, ey);
    run_free(&r);
    free(g);
    free(gfd);
    problem_free(&p);
}

START_TEST(test_discrete_fd_fixed)
{
    const double ys[4] = {2.0, 0.0, 0.5, -1.0}, yl[4] = {1.0, 1.0, 2.0, 0.5};
    discrete_vs_fd(spiral_ini, "rk4", 0.05, 0, ys, 2.0);
    discrete_vs_fd(spiral_ini, "euler", 0.01, 0, ys, 1.0);
    discrete_vs_fd(lv_ini, "rk4", 0.02, 0, yl, 3.0);
}
END_TEST

START_TEST(test_discrete_fd_frozen)
{
    const double ys[4] = {2.0, 0.0, 0.5, -1.0}, yl[4] = {1.0, 1.0, 2.0, 0.5};
    discrete_vs_fd(spiral_ini, "tsit5", 0.0, 1, ys, 3.0);
    discrete_vs_fd(lv_ini, "tsit5", 0.0, 1, yl, 4.0);
    discrete_vs_fd(lv_ini, "dopri5", 0.0, 1, yl, 4.0);
}
END_TEST

/* checkpoints = N: the same gradient from N stored states. */
static void checkpoints_same(const char *adjoint, const char *ckpt_sec)
{
    const double y0[4] = {1.0, 1.0, 2.0, 0.5};
    const double ts[4] = {0.0, 1.3, 2.0, 5.0};
    problem p;
    run r0, r1;
    cotangents c;
    double g0[4], g1[4], y0b[4], y1b[4];
    long nfe0, nfe1;
    problem_from(&p, lv_ini, 2, y0, 0.0, 5.0);
    cotangents_at(&c, ts, 4, p.n);
    run_make(&r0, &p, "tsit5", 1e-8, 0.0, adjoint_named(adjoint), NULL);
    run_make(&r1, &p, "tsit5", 1e-8, 0.0, adjoint_named(adjoint), ckpt_sec);
    nfe0 = run_gradient(&r0, &p, &c, y0b, g0);
    nfe1 = run_gradient(&r1, &p, &c, y1b, g1);
    fprintf(stderr, "%s checkpoints: %zu of %zu steps stored, rel diff "
            "theta %.2e y0 %.2e, backward NFE %ld -> %ld\n", adjoint,
            r1.tr->nstates, r1.tr->nsteps, rel_err(g1, g0, 4),
            rel_err(y1b, y0b, 4), nfe0, nfe1);
    ck_assert_uint_le(r1.tr->nstates, r1.a->max_states);
    ck_assert_uint_lt(r1.tr->nstates, r1.tr->nsteps / 4);
    ck_assert(r1.tr->k == NULL);
    ck_assert(rel_err(g1, g0, 4) < 1e-10 && rel_err(y1b, y0b, 4) < 1e-10);
    run_free(&r0);
    run_free(&r1);
    problem_free(&p);
}

START_TEST(test_discrete_checkpoints)
{
    checkpoints_same("discrete", "[adjoint]\nplugin = discrete\n"
                                 "checkpoints = 7\n");
}
END_TEST

START_TEST(test_interpolating_checkpoints)
{
    checkpoints_same("interpolating", "[adjoint]\nplugin = interpolating\n"
                                      "checkpoints = 7\n");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Continuous adjoints: seminorm, observation times                    */

/* norm = seminorm: the same gradient within tolerance, and on the spiral
 * MLP (P = 252) at most the backward NFE of the full norm. Both norms are
 * maxima of per-part RMS norms, so the seminorm's is never larger than
 * the full one's at the same state; with a single RMS over all values
 * the many small parameter-adjoint entries diluted the full norm and the
 * seminorm cost more. The NFE of both are printed for the record. */
START_TEST(test_seminorm)
{
    const char *names[2] = {"backsolve", "interpolating"};
    const char *inis[2] = {spiral_ini, lv_ini};
    const char *what[2] = {"spiral-mlp", "lotka-volterra"};
    const double y0s[2][4] = {{2.0, 0.0, 0.5, 1.0}, {1.0, 1.0, 0.5, 1.0}};
    const double ts[4] = {1.0, 2.5, 4.0, 5.0};
    const double tols[2] = {1e-5, 1e-8};
    for (int k = 0; k < 2; k++)
        for (int q = 0; q < 2; q++)
            for (int it = 0; it < 2; it++) {
                char sec[128];
                problem p;
                run rf, rs;
                cotangents c;
                double *gf, *gs, yf[4], ys[4], eg, ey;
                long nfull, nsemi;
                problem_from(&p, inis[q], 2, y0s[q], 0.0, 5.0);
                cotangents_at(&c, ts, 4, p.n);
                gf = malloc(p.P * sizeof(double));
                gs = malloc(p.P * sizeof(double));
                snprintf(sec, sizeof sec,
                         "[adjoint]\nplugin = %s\nnorm = seminorm\n",
                         names[k]);
                run_make(&rf, &p, "tsit5", tols[it], 0.0,
                         adjoint_named(names[k]), NULL);
                run_make(&rs, &p, "tsit5", tols[it], 0.0,
                         adjoint_named(names[k]), sec);
                nfull = run_gradient(&rf, &p, &c, yf, gf);
                nsemi = run_gradient(&rs, &p, &c, ys, gs);
                eg = rel_err(gs, gf, p.P);
                ey = rel_err(ys, yf, p.n);
                fprintf(stderr, "%s %s (P = %zu) tol %g: backward NFE full "
                        "%ld, seminorm %ld; gradient rel diff %.2e (y0 "
                        "%.2e)\n", names[k], what[q], p.P, tols[it], nfull,
                        nsemi, eg, ey);
                ck_assert_msg(eg < 1e3 * tols[it] && ey < 1e3 * tols[it],
                              "%s %s: %.3g %.3g", names[k], what[q], eg, ey);
                if (q == 0)
                    ck_assert_msg(nsemi <= nfull, "%s %s tol %g: seminorm "
                                  "NFE %ld > full %ld", names[k], what[q],
                                  tols[it], nsemi, nfull);
                run_free(&rf);
                run_free(&rs);
                free(gf);
                free(gs);
                problem_free(&p);
            }
}
END_TEST

/* The torchdiffeq spiral (examples/ode_demo.py) with 10 observation times:
 * backsolve keeps its step size across them. Compared with one
 * observation at t1 only, and with backward solves that restart at each
 * observation (one gradient per interval, each starting with the
 * automatic first step, as torchdiffeq's odeint per interval does). */
START_TEST(test_observations_no_restart)
{
    static const char spiral_true[] =
        "[field]\nplugin = expr\nstate = x, y\n"
        "params = a=-0.1, b=2.0\n"
        "dx = a*x^3 + b*y^3\ndy = -b*x^3 + a*y^3\n";
    const double y0[2] = {2.0, 0.0}, T = 25.0, tol = 1e-6;
    const char *names[2] = {"backsolve", "interpolating"};
    double ts[10], ys[20];
    for (int i = 0; i < 10; i++)
        ts[i] = T * (i + 1) / 10.0;
    for (int k = 0; k < 2; k++) {
        problem p;
        run r;
        cotangents c, c1;
        double g[2], yb[2];
        long n10, n1, nrestart = 0;
        problem_from(&p, spiral_true, 1, y0, 0.0, T);
        cotangents_at(&c, ts, 10, 2);
        cotangents_at(&c1, &T, 1, 2);
        run_make(&r, &p, "tsit5", tol, 0.0, adjoint_named(names[k]), NULL);
        n10 = run_gradient(&r, &p, &c, yb, g);
        n1 = run_gradient(&r, &p, &c1, yb, g);
        ck_assert_int_eq(nde_solve(r.s, &r.o, p.theta, 0.0, y0, T, 10, ts,
                                   ys, NULL), NDE_OK);
        /* Interval by interval from the last: the cotangent at its end is
         * the observation's plus the adjoint carried from the interval
         * after it; the parameter gradients add up. */
        {
            double carry[2] = {0.0, 0.0}, gsum[2] = {0.0, 0.0};
            for (int i = 9; i >= 0; i--) {
                cotangents ci;
                ci.n = 1;
                ci.t[0] = ts[i];
                for (int m = 0; m < 2; m++)
                    ci.w[m] = c.w[2 * i + m] + carry[m];
                ci.ct[0].t = ts[i];
                ci.ct[0].g = ci.w;
                p.t0 = i == 0 ? 0.0 : ts[i - 1];
                p.t1 = ts[i];
                memcpy(p.y0, i == 0 ? y0 : ys + 2 * (i - 1),
                       2 * sizeof(double));
                nrestart += run_gradient(&r, &p, &ci, carry, g);
                gsum[0] += g[0];
                gsum[1] += g[1];
            }
            p.t0 = 0.0;
            p.t1 = T;
            memcpy(p.y0, y0, sizeof y0);
            n10 = run_gradient(&r, &p, &c, yb, g);
            fprintf(stderr, "%s spiral: restarted gradient vs one solve: "
                    "rel diff %.2e (y0 %.2e)\n", names[k],
                    rel_err(gsum, g, 2), rel_err(carry, yb, 2));
            ck_assert(rel_err(gsum, g, 2) < 1e-3);
        }
        fprintf(stderr, "%s spiral tol %g: backward NFE %ld with 10 "
                "observations, %ld with one at t1, %ld restarting at each "
                "observation\n", names[k], tol, n10, n1, nrestart);
        ck_assert_int_lt(n10, 0.95 * (double)nrestart);
        ck_assert_int_lt(n10, 3 * n1 / 2);
        run_free(&r);
        problem_free(&p);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Refused pairings                                                    */

START_TEST(test_refused)
{
    const nde_solver_type *tsit5 = solver_named("tsit5");
    nde_solver_type novjp = *tsit5;
    problem p;
    nde_solver *s;
    nde_adjoint *a;
    const double y0 = 1.0;
    problem_lin(&p, 0.5, y0, 1.0);
    novjp.info.provides &= ~(unsigned)NDE_CAP_STEP_VJP;
    ck_assert_int_eq(nde_solver_create_from(ctx, &novjp, p.f, &s), NDE_OK);
    ck_assert_int_eq(nde_adjoint_create_from(ctx, adjoint_named("discrete"),
                                             NULL, s, &a), NDE_ECAPABILITY);
    ck_assert_ptr_null(a);
    /* The one composition check's message: component, solver and the
     * missing capability in words. */
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx),
                                 "adjoint 'discrete' needs the solver's step "
                                 "VJP, which solver 'tsit5' does not "
                                 "provide"));
    nde_solver_destroy(s);
    /* A solver without dense output cannot serve interpolating. */
    {
        nde_solver_type nodense = *tsit5;
        nde_rk_tableau tab = *tsit5->tableau;
        tab.dense_degree = 0;
        tab.dense = NULL;
        nodense.tableau = &tab;
        nodense.dense_order = 0;
        nodense.info.provides &= ~(unsigned)NDE_CAP_DENSE;
        ck_assert_int_eq(nde_solver_create_from(ctx, &nodense, p.f, &s),
                         NDE_OK);
        ck_assert_int_eq(nde_adjoint_create_from(
                             ctx, adjoint_named("interpolating"), NULL, s, &a),
                         NDE_ECAPABILITY);
        ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx),
                                     "adjoint 'interpolating' needs the "
                                     "solver's dense output"));
        /* discrete works with it (no dense output needed without
         * cotangents inside steps). */
        ck_assert_int_eq(nde_adjoint_create_from(
                             ctx, adjoint_named("discrete"), NULL, s, &a),
                         NDE_OK);
        nde_adjoint_destroy(a);
        nde_solver_destroy(s);
    }
    /* Unknown keys are refused with a suggestion. */
    {
        nde_config *cfg = config_from("[adjoint]\nplugin = discrete\n"
                                      "checkpoint = 3\n");
        ck_assert_int_eq(nde_solver_create_from(ctx, tsit5, p.f, &s), NDE_OK);
        ck_assert_int_eq(nde_adjoint_create(ctx, cfg, "adjoint", "discrete",
                                            s, &a), NDE_ECONFIG);
        ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "checkpoints"));
        nde_config_destroy(cfg);
        /* No section: the default plugin. */
        cfg = config_from("[field]\nplugin = mlp\nlayers = 1, 1\n");
        ck_assert_int_eq(nde_adjoint_create(ctx, cfg, "adjoint", "discrete",
                                            s, &a), NDE_OK);
        ck_assert_str_eq(a->type->info.name, "discrete");
        ck_assert_uint_eq(a->record, NDE_NEEDS_STEPS);
        nde_adjoint_destroy(a);
        nde_config_destroy(cfg);
        nde_solver_destroy(s);
    }
    /* The backward-solve settings of both continuous adjoints. */
    {
        static const char *const bad[][2] = {
            {"norm = semi", "'semi': expected full or seminorm"},
            {"rtol = -1e-6", "[adjoint] rtol: must be >= 0"},
            {"atol = -1", "[adjoint] atol: must be >= 0"}};
        static const char *const names[] = {"backsolve", "interpolating"};
        ck_assert_int_eq(nde_solver_create_from(ctx, tsit5, p.f, &s), NDE_OK);
        for (size_t k = 0; k < 2; k++)
            for (size_t i = 0; i < 3; i++) {
                char text[128];
                nde_config *cfg;
                snprintf(text, sizeof text, "[adjoint]\nplugin = %s\n%s\n",
                         names[k], bad[i][0]);
                cfg = config_from(text);
                ck_assert_int_eq(nde_adjoint_create(ctx, cfg, "adjoint",
                                                    NULL, s, &a),
                                 NDE_ECONFIG);
                ck_assert_msg(strstr(nde_ctx_message(ctx), bad[i][1]),
                              "%s: %s", names[k], nde_ctx_message(ctx));
                nde_config_destroy(cfg);
            }
        nde_solver_destroy(s);
    }
    problem_free(&p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* MALI: alf + reversible                                              */

/* Through alf's adaptive steps, `reversible` (MALI: reverse each step,
 * then its VJP) gives `discrete`'s gradient to round-off while keeping
 * one state instead of one a step; on a fixed grid of alf steps (dtmax =
 * dt, a tolerance nothing rejects) it matches central differences. */
START_TEST(test_mali)
{
    const double ts[5] = {0.0, 0.7, 1.5, 2.2, 3.0};
    const double y0[4] = {1.0, 1.0, 2.0, 0.5};
    const double tols[2] = {1e-4, 1e-6};
    problem p;
    cotangents c;
    fd_user u;
    run rd, rr;
    double gd[4], gr[4], yd[4], yr[4], gfd[4], yfd[4];

    problem_from(&p, lv_ini, 2, y0, 0.0, 3.0);
    cotangents_at(&c, ts, 5, p.n);
    for (int k = 0; k < 2; k++) {
        run_make(&rd, &p, "alf", tols[k], 0.0, adjoint_named("discrete"),
                 NULL);
        run_make(&rr, &p, "alf", tols[k], 0.0, adjoint_named("reversible"),
                 NULL);
        run_gradient(&rd, &p, &c, yd, gd);
        run_gradient(&rr, &p, &c, yr, gr);
        fprintf(stderr, "mali vs discrete through alf at tol %g (%zu "
                "steps): dL/dtheta rel %.2e, dL/dy0 rel %.2e; states kept "
                "%zu vs %zu\n", tols[k], rr.tr->nsteps, rel_err(gr, gd, 4),
                rel_err(yr, yd, 4), rr.tr->nstates, rd.tr->nstates);
        ck_assert_uint_eq(rr.tr->nsteps, rd.tr->nsteps);
        ck_assert_uint_gt(rr.tr->nsteps, 10);
        ck_assert_msg(rel_err(gr, gd, 4) <= 1e-12 && rel_err(yr, yd, 4) <=
                      1e-12, "tol %g: %.3g %.3g", tols[k],
                      rel_err(gr, gd, 4), rel_err(yr, yd, 4));
        ck_assert_uint_le(rr.tr->nstates, 1);
        ck_assert_uint_eq(rd.tr->nstates, rd.tr->nsteps);
        run_free(&rd);
        run_free(&rr);
    }
    run_make(&rr, &p, "alf", 1e-6, 0.01, adjoint_named("reversible"), NULL);
    rr.o.dtmax = 0.01;
    rr.o.rtol = 0.5;
    rr.o.atol = 1e6;
    run_gradient(&rr, &p, &c, yr, gr);
    ck_assert_int_eq(rr.fwd.steps_rejected, 0);
    u.r = &rr;
    u.p = &p;
    u.c = &c;
    u.frozen = 0;
    central_fd(fd_loss, &u, &p, gfd, yfd);
    ck_assert_msg(rel_err(gr, gfd, 4) < 1e-6 && rel_err(yr, yfd, 4) < 1e-6,
                  "mali vs central FD: %.3g %.3g", rel_err(gr, gfd, 4),
                  rel_err(yr, yfd, 4));
    run_free(&rr);
    problem_free(&p);
}
END_TEST

/* One forward solve and gradient of an mlp on a long state (640 rows of
 * 16: three chunks of the error norm, nde/solver.h) on `threads`
 * threads, every call split (thread_batch = 1): the solver's vector
 * operations and the augmented systems run on the field's threads. */
typedef struct long_run {
    double *y1, *ybar0, *thetabar;
    size_t P;
    nde_stats fwd;
} long_run;

enum { LONG_ROWS = 640, LONG_DIM = 16, LONG_N = LONG_ROWS * LONG_DIM };

static void long_gradient(const char *adjoint, int threads, long_run *out)
{
    char ini[160];
    snprintf(ini, sizeof ini, "[field]\nplugin = mlp\nlayers = 16, 32, 16\n"
             "activation = tanh\nthreads = %d\nthread_batch = 1\n", threads);
    nde_config *cfg = config_from(ini);
    nde_field *f;
    ck_assert_int_eq(nde_field_create(ctx, cfg, "field", LONG_ROWS, &f),
                     NDE_OK);
    const size_t P = out->P = f->nparams;
    double *theta = malloc(P * sizeof *theta),
           *y0 = malloc(LONG_N * sizeof *y0), *w = malloc(LONG_N * sizeof *w);
    out->y1 = malloc(LONG_N * sizeof *out->y1);
    out->ybar0 = calloc(LONG_N, sizeof *out->ybar0);
    out->thetabar = calloc(P, sizeof *out->thetabar);
    ck_assert(theta && y0 && w && out->y1 && out->ybar0 && out->thetabar);
    ck_assert_int_eq(nde_field_init_params(f, theta, 7), NDE_OK);
    for (size_t i = 0; i < LONG_N; i++) {
        y0[i] = sin(0.37 * (double)i);
        w[i] = cos(0.11 * (double)i);
    }
    problem p = {.f = f, .theta = theta, .P = P, .n = LONG_N,
                 .batch = LONG_ROWS, .t0 = 0.0, .t1 = 1.0};
    run r;
    run_make(&r, &p, "tsit5", 1e-6, 0.0, adjoint_named(adjoint), NULL);
    const nde_cotangent ct = {1.0, w};
    ck_assert_int_eq(nde_solve(r.s, &r.o, theta, 0.0, y0, 1.0, 1, &p.t1,
                               out->y1, &out->fwd), NDE_OK);
    ck_assert_int_eq(nde_adjoint_gradient(r.a, &r.o, r.tr, theta, &ct, 1,
                                          out->ybar0, out->thetabar, NULL),
                     NDE_OK);
    ck_assert_int_gt(out->fwd.steps_accepted, 1);
    run_free(&r);
    nde_field_destroy(f);
    nde_config_destroy(cfg);
    free(theta);
    free(y0);
    free(w);
}

/* The same bits on 1 and on 2 threads for every gradient method: the
 * solution, the step sequence, the gradients. */
START_TEST(test_long_state_threads)
{
    static const char *const names[] = {"discrete", "interpolating",
                                        "backsolve"};
    const char *name = names[_i];
    long_run r[2];
    for (int k = 0; k < 2; k++)
        long_gradient(name, k + 1, &r[k]);
    ck_assert_int_eq(r[0].fwd.steps_accepted, r[1].fwd.steps_accepted);
    ck_assert_int_eq(r[0].fwd.steps_rejected, r[1].fwd.steps_rejected);
    ck_assert_msg(memcmp(r[0].y1, r[1].y1, LONG_N * sizeof(double)) == 0,
                  "%s: y(t1)", name);
    ck_assert_msg(memcmp(r[0].ybar0, r[1].ybar0,
                         LONG_N * sizeof(double)) == 0, "%s: ybar0", name);
    ck_assert_msg(memcmp(r[0].thetabar, r[1].thetabar,
                         r[0].P * sizeof(double)) == 0, "%s: thetabar",
                  name);
    for (int k = 0; k < 2; k++) {
        free(r[k].y1);
        free(r[k].ybar0);
        free(r[k].thetabar);
    }
}
END_TEST

static Suite *adjoint_suite(void)
{
    Suite *su = suite_create("adjoints");
    TCase *tc = tcase_create("conformance");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_found);
    tcase_add_test(tc, test_linear_analytic);
    tcase_add_test(tc, test_agree_lv);
    tcase_add_test(tc, test_agree_spiral);
    tcase_add_test(tc, test_contract);
    suite_add_tcase(su, tc);

    tc = tcase_create("plugins");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_discrete_fd_fixed);
    tcase_add_test(tc, test_discrete_fd_frozen);
    tcase_add_test(tc, test_discrete_checkpoints);
    tcase_add_test(tc, test_interpolating_checkpoints);
    tcase_add_test(tc, test_seminorm);
    tcase_add_test(tc, test_observations_no_restart);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_mali);
    tcase_add_loop_test(tc, test_long_state_threads, 0, 3);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(adjoint_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
