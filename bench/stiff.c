/*
 * Stiff benchmark: nde's rodas5p (Jacobian from the field's JVP, and by
 * finite differences) against GSL's msbdf and bsimp (gsl_odeiv2_driver,
 * standard control, hstart 1e-6, both given the analytic Jacobian) on
 * Robertson to t = 1e11 and Van der Pol mu = 1e3 (x'' = mu (1 - x^2) x' -
 * x) on [0, 3000], at rtol 1e-4, 1e-6, 1e-8 (atol = rtol x the problem's
 * atol_scale). Error: the largest relative error at t1 against the
 * reference (Robertson: the IVP test set's, Mazzia & Magherini, ROBER;
 * Van der Pol: msbdf at rtol = atol = 1e-12). Time per solve: batches of
 * repeated solves of at least 30 ms, median of `batches` batches. Counts:
 * RHS evaluations (nde: stages, difference Jacobians and df/dt; GSL:
 * every call of its function), Jacobians (nde: formed, JVPs / dim or
 * evaluations beyond the stages / (dim + 2); GSL: calls of its jac),
 * step attempts.
 *
 * Usage: bench_stiff [batches]   (markdown on stdout; default 5)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>

#include "bench_util.h"
#include "nde/nde.h"

/* ------------------------------------------------------------------ */
/* Problems: f and J = df/dy (row-major), one row                      */

typedef struct problem {
    const char *name;
    size_t dim;
    double t1, atol_scale, y0[3], ref[3];
    void (*rhs)(const double *y, double *dy);
    void (*jac)(const double *y, double *J);
} problem;

static void rober_rhs(const double *y, double *dy)
{
    const double a = 0.04 * y[0], b = 1e4 * y[1] * y[2];
    const double c = 3e7 * y[1] * y[1];
    dy[0] = -a + b;
    dy[1] = a - b - c;
    dy[2] = c;
}

static void rober_jac(const double *y, double *J)
{
    J[0] = -0.04; J[1] = 1e4 * y[2]; J[2] = 1e4 * y[1];
    J[3] = 0.04; J[4] = -1e4 * y[2] - 6e7 * y[1]; J[5] = -1e4 * y[1];
    J[6] = 0.0; J[7] = 6e7 * y[1]; J[8] = 0.0;
}

#define MU 1e3
static void vdp_rhs(const double *y, double *dy)
{
    dy[0] = y[1];
    dy[1] = MU * (1.0 - y[0] * y[0]) * y[1] - y[0];
}

static void vdp_jac(const double *y, double *J)
{
    J[0] = 0.0; J[1] = 1.0;
    J[2] = -2.0 * MU * y[0] * y[1] - 1.0; J[3] = MU * (1.0 - y[0] * y[0]);
}

/* Van der Pol's reference is computed at start (ref[0] = NAN here). */
static problem problems[] = {
    {"robertson_1e11", 3, 1e11, 1e-6, {1.0, 0.0, 0.0},
     {0.2083340149701255e-7, 0.8333360770334713e-13, 0.9999999791665050},
     rober_rhs, rober_jac},
    {"van_der_pol_mu1e3", 2, 3000.0, 1.0, {2.0, 0.0, 0.0}, {NAN, 0, 0},
     vdp_rhs, vdp_jac},
};
#define NPROB (sizeof problems / sizeof problems[0])

/* ------------------------------------------------------------------ */
/* nde side: a field over one problem (its state names the problem)    */

static const problem *current;

static int bf_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec; (void)ctx;
    f->dim = current->dim;
    f->nparams = 0;
    f->state = (void *)current;
    return NDE_OK;
}

static void bf_destroy(nde_field *f) { (void)f; }

static int bf_init(nde_field *f, double *theta, uint64_t seed)
{
    (void)f; (void)theta; (void)seed;
    return NDE_OK;
}

static int bf_eval(nde_field *f, double t, const double *y,
                   const double *theta, double *dy, size_t batch)
{
    const problem *p = f->state;
    (void)t; (void)theta;
    for (size_t r = 0; r < batch; r++)
        p->rhs(y + r * p->dim, dy + r * p->dim);
    return NDE_OK;
}

static int bf_vjp(nde_field *f, double t, const double *y,
                  const double *theta, const double *v, double *vy,
                  double *vtheta, size_t batch)
{
    (void)t; (void)y; (void)theta; (void)v; (void)vy; (void)vtheta;
    (void)batch;
    return nde_error(f->ctx, NDE_EFATAL, "bench field: no vjp");
}

static int bf_jvp(nde_field *f, double t, const double *y,
                  const double *theta, const double *v, double *jv,
                  size_t batch)
{
    const problem *p = f->state;
    const size_t d = p->dim;
    double J[9];
    (void)t; (void)theta;
    for (size_t r = 0; r < batch; r++) {
        p->jac(y + r * d, J);
        for (size_t i = 0; i < d; i++) {
            jv[r * d + i] = 0.0;
            for (size_t j = 0; j < d; j++)
                jv[r * d + i] += J[i * d + j] * v[r * d + j];
        }
    }
    return NDE_OK;
}

static const nde_field_type bench_field = {
    .info = NDE_FIELD_INFO(.name = "bench_stiff",
                           .description = "bench problem", .version = "1"),
    .create = bf_create, .destroy = bf_destroy, .init_params = bf_init,
    .eval = bf_eval, .vjp = bf_vjp, .jvp = bf_jvp};

/* ------------------------------------------------------------------ */
/* One configuration: a solve of p at tol, its counts and y(t1)        */

typedef struct result {
    int ok;
    long nfe, njac, steps;
    double y[3];
} result;

typedef struct gsl_user {
    const problem *p;
    long nfe, njac;
} gsl_user;

static int gsl_rhs(double t, const double y[], double dydt[], void *u)
{
    gsl_user *g = u;
    (void)t;
    g->nfe++;
    g->p->rhs(y, dydt);
    return GSL_SUCCESS;
}

static int gsl_jac(double t, const double y[], double *dfdy, double dfdt[],
                   void *u)
{
    gsl_user *g = u;
    (void)t;
    g->njac++;
    g->p->jac(y, dfdy);
    for (size_t i = 0; i < g->p->dim; i++)
        dfdt[i] = 0.0;
    return GSL_SUCCESS;
}

static void run_gsl(const problem *p, const gsl_odeiv2_step_type *T,
                    double rtol, double atol, result *r)
{
    gsl_user g = {p, 0, 0};
    gsl_odeiv2_system sys = {gsl_rhs, gsl_jac, p->dim, &g};
    gsl_odeiv2_driver *d =
        gsl_odeiv2_driver_alloc_y_new(&sys, T, 1e-6, atol, rtol);
    double t = 0.0;

    gsl_odeiv2_driver_set_nmax(d, 0);
    memcpy(r->y, p->y0, p->dim * sizeof(double));
    r->ok = gsl_odeiv2_driver_apply(d, &t, p->t1, r->y) == GSL_SUCCESS;
    r->nfe = g.nfe;
    r->njac = g.njac;
    r->steps = (long)d->n;
    gsl_odeiv2_driver_free(d);
}

typedef struct nde_side {
    nde_ctx *ctx;
    nde_field *f;
    nde_solver *s[2];   /* jacobian = exact, differences */
} nde_side;

static void run_nde(nde_side *n, const problem *p, int which, double rtol,
                    double atol, result *r)
{
    nde_solver *s = n->s[which];
    nde_solve_opts o;
    nde_stats st;
    const long nvjp0 = s->counts.nvjp;
    int rc;

    nde_solve_opts_default(&o, s->type);
    o.rtol = rtol;
    o.atol = atol;
    o.max_steps = 1000000;
    rc = nde_solve(s, &o, NULL, 0.0, p->y0, p->t1, 1, &p->t1, r->y, &st);
    r->ok = rc == NDE_OK;
    r->nfe = st.nfe;
    r->steps = st.steps_accepted + st.steps_rejected;
    /* exact: dim JVPs a Jacobian; differences: dim + 2 evaluations a
     * Jacobian with df/dt, besides 8 a step (the first step's guess adds
     * one or two: rounded away) */
    r->njac = which == 0 ? (s->counts.nvjp - nvjp0) / (long)p->dim
                         : (st.nfe - 8 * r->steps) / (long)(p->dim + 2);
}

static int nde_side_make(nde_side *n, const problem *p)
{
    static const char *const keys[2] = {
        "[solver]\nplugin = rodas5p\njacobian = exact\n",
        "[solver]\nplugin = rodas5p\njacobian = differences\n"};

    current = p;
    if (nde_field_create_from(n->ctx, &bench_field, NULL, 1, &n->f))
        return 1;
    for (int k = 0; k < 2; k++) {
        nde_config *cfg = nde_config_create();
        int rc = !cfg ||
                 nde_config_load_string(cfg, "bench", keys[k], n->ctx) ||
                 nde_solver_create(n->ctx, cfg, "solver", n->f, &n->s[k]);
        nde_config_destroy(cfg);
        if (rc)
            return 1;
    }
    return 0;
}

static void nde_side_free(nde_side *n)
{
    for (int k = 0; k < 2; k++)
        nde_solver_destroy(n->s[k]);
    nde_field_destroy(n->f);
    n->s[0] = n->s[1] = NULL;
    n->f = NULL;
}

/* ------------------------------------------------------------------ */
/* Timing and the table                                                */

enum { NDE_EXACT, NDE_DIFF, GSL_MSBDF, GSL_BSIMP, NCONF };
static const char *const conf_names[NCONF] = {
    "nde rodas5p (J by JVP)", "nde rodas5p (J by differences)",
    "gsl msbdf", "gsl bsimp"};

static void run_conf(nde_side *n, const problem *p, int c, double rtol,
                     result *r)
{
    const double atol = rtol * p->atol_scale;
    if (c == NDE_EXACT || c == NDE_DIFF)
        run_nde(n, p, c == NDE_DIFF, rtol, atol, r);
    else
        run_gsl(p, c == GSL_MSBDF ? gsl_odeiv2_step_msbdf
                                  : gsl_odeiv2_step_bsimp, rtol, atol, r);
}

/* Median over batches of the time per solve (s). */
static double time_conf(nde_side *n, const problem *p, int c, double rtol,
                        int batches)
{
    double per[16];
    result r;
    for (int b = 0; b < batches; b++) {
        long reps = 0;
        const double t0 = bench_now();
        double el;
        do {
            run_conf(n, p, c, rtol, &r);
            reps++;
        } while ((el = bench_now() - t0) < 0.03);
        per[b] = el / (double)reps;
    }
    return bench_median(per, (size_t)batches);
}

static double rel_error(const problem *p, const double *y)
{
    double e = 0.0;
    for (size_t i = 0; i < p->dim; i++)
        e = fmax(e, fabs(y[i] - p->ref[i]) / fabs(p->ref[i]));
    return e;
}

int main(int argc, char **argv)
{
    const double tols[3] = {1e-4, 1e-6, 1e-8};
    const int batches = argc > 1 ? atoi(argv[1]) : 5;
    nde_side n = {0};

    if (batches < 1 || batches > 16) {
        fprintf(stderr, "usage: bench_stiff [batches 1..16]\n");
        return 2;
    }
    gsl_set_error_handler_off();
    if (!(n.ctx = nde_ctx_create()))
        return 1;
    printf("| problem | rtol | solver | steps | RHS evals | Jacobians | "
           "rel. error at t1 | time per solve (ms) |\n"
           "|---|---|---|---|---|---|---|---|\n");
    for (size_t k = 0; k < NPROB; k++) {
        problem *p = &problems[k];
        result r;
        if (isnan(p->ref[0])) {
            run_gsl(p, gsl_odeiv2_step_msbdf, 1e-12, 1e-12, &r);
            memcpy(p->ref, r.y, sizeof r.y);
        }
        if (nde_side_make(&n, p)) {
            fprintf(stderr, "bench_stiff: %s\n", nde_ctx_message(n.ctx));
            return 1;
        }
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < NCONF; c++) {
                double t;
                run_conf(&n, p, c, tols[i], &r);
                if (!r.ok) {
                    printf("| %s | %.0e | %s | failed | | | | |\n", p->name,
                           tols[i], conf_names[c]);
                    continue;
                }
                t = time_conf(&n, p, c, tols[i], batches);
                printf("| %s | %.0e | %s | %ld | %ld | %ld | %.2e | %.3f |\n",
                       p->name, tols[i], conf_names[c], r.steps, r.nfe,
                       r.njac, rel_error(p, r.y), 1e3 * t);
                fflush(stdout);
            }
        nde_side_free(&n);
    }
    nde_ctx_destroy(n.ctx);
    return 0;
}
