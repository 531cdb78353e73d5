/*
 * Stiff benchmark: nde's rodas5p and kvaerno5 (Jacobian from the field's
 * JVP, and by finite differences) and autoswitch (tsit5 handing over to
 * rodas5p) against SUNDIALS CVODE's BDF (dense
 * direct solver, the Jacobian given, and by CVODE's differences; when
 * built with it) and
 * GSL's msbdf and bsimp (gsl_odeiv2_driver, standard control, hstart
 * 1e-6, both given the analytic Jacobian), at rtol 1e-4, 1e-6, 1e-8
 * (atol = rtol x the problem's atol_scale), on Robertson to t = 1e11, Van
 * der Pol mu = 1e3 (x'' = mu (1 - x^2) x' - x) on [0, 3000], and HIRES,
 * OREGO and E5 as the IVP test set states them (Mazzia & Magherini, Test
 * Set for IVP Solvers, https://archimede.uniba.it/~testset/, problems
 * ROBER, HIRES, OREGO, E5: rober.f, hires.f, orego.f, e5.f). Error: the
 * largest relative error at t1 against the reference (the test set's
 * solut, RADAU at rtol 1.1e-18 in extended precision; Van der Pol: msbdf
 * at rtol = atol = 1e-12). Time per solve: the process's CPU time (one
 * thread solves; on a shared machine wall time measures the scheduler),
 * batches of repeated solves of at least 30 ms, median of `batches`
 * batches. Counts: RHS evaluations (nde: stages and Newton iterations,
 * difference Jacobians and df/dt; CVODE: its nfe and the difference
 * Jacobians' nfeLS; GSL: every call of its function), Jacobians (nde:
 * formed, JVPs / dim, or for rodas5p evaluations beyond the stages /
 * (dim + 2), not shown for kvaerno5's differences; CVODE: njev; GSL:
 * calls of its jac), step attempts (CVODE: steps, error test and Newton
 * convergence failures).
 *
 * Usage: bench_stiff [batches] [--y]   (markdown on stdout; default 5
 * batches; --y: each row's y(t1) on stderr too)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>

#ifdef HAVE_CVODE
#include <cvode/cvode.h>
#include <nvector/nvector_serial.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunmatrix/sunmatrix_dense.h>
#endif

#include "../tests/stiff_fields.h"
#include "bench_util.h"
#include "nde/nde.h"

/* ------------------------------------------------------------------ */
/* Problems: f and J = df/dy (row-major), one row                      */

#define MAXDIM 8

/* error: the error of y(t1) against ref; NULL: the largest relative
 * error of a component */
typedef struct problem {
    const char *name;
    size_t dim;
    double t1, atol_scale, y0[MAXDIM], ref[MAXDIM];
    double (*error)(const struct problem *p, const double *y);
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

/* HIRES (Schaefer 1975; hires.f): 8 species of a light-induced plant
 * growth reaction, on [0, 321.8122]. */
static void hires_rhs(const double *y, double *dy)
{
    const double r = 280.0 * y[5] * y[7];
    dy[0] = -1.71 * y[0] + 0.43 * y[1] + 8.32 * y[2] + 0.0007;
    dy[1] = 1.71 * y[0] - 8.75 * y[1];
    dy[2] = -10.03 * y[2] + 0.43 * y[3] + 0.035 * y[4];
    dy[3] = 8.32 * y[1] + 1.71 * y[2] - 1.12 * y[3];
    dy[4] = -1.745 * y[4] + 0.43 * y[5] + 0.43 * y[6];
    dy[5] = -r + 0.69 * y[3] + 1.71 * y[4] - 0.43 * y[5] + 0.69 * y[6];
    dy[6] = r - 1.81 * y[6];
    dy[7] = -dy[6];
}

static void hires_jac(const double *y, double *J)
{
    memset(J, 0, 64 * sizeof *J);
#define H(i, j) J[((i) - 1) * 8 + (j) - 1]   /* the 1-based J(i, j) */
    H(1, 1) = -1.71; H(1, 2) = 0.43; H(1, 3) = 8.32;
    H(2, 1) = 1.71; H(2, 2) = -8.75;
    H(3, 3) = -10.03; H(3, 4) = 0.43; H(3, 5) = 0.035;
    H(4, 2) = 8.32; H(4, 3) = 1.71; H(4, 4) = -1.12;
    H(5, 5) = -1.745; H(5, 6) = 0.43; H(5, 7) = 0.43;
    H(6, 4) = 0.69; H(6, 5) = 1.71; H(6, 6) = -280.0 * y[7] - 0.43;
    H(6, 7) = 0.69; H(6, 8) = -280.0 * y[5];
    H(7, 6) = 280.0 * y[7]; H(7, 7) = -1.81; H(7, 8) = 280.0 * y[5];
    H(8, 6) = -H(7, 6); H(8, 7) = 1.81; H(8, 8) = -H(7, 8);
#undef H
}

/* OREGO (Field & Noyes 1974; orego.f): the Oregonator, on [0, 360]. */
static void orego_rhs(const double *y, double *dy)
{
    dy[0] = 77.27 * (y[1] + y[0] * (1.0 - 8.375e-6 * y[0] - y[1]));
    dy[1] = (y[2] - (1.0 + y[0]) * y[1]) / 77.27;
    dy[2] = 0.161 * (y[0] - y[2]);
}

static void orego_jac(const double *y, double *J)
{
    J[0] = 77.27 * (1.0 - 2.0 * 8.375e-6 * y[0] - y[1]);
    J[1] = 77.27 * (1.0 - y[0]); J[2] = 0.0;
    J[3] = -y[1] / 77.27; J[4] = -(1.0 + y[0]) / 77.27; J[5] = 1.0 / 77.27;
    J[6] = 0.161; J[7] = 0.0; J[8] = -0.161;
}

/* E5 (tests/stiff_fields.h), on [0, 1e13]. */

/* E5's error: the relative error of s = (y2 + y3) / 2, and its drift
 * y2 - y3 - y4. The dynamics keep y2 - y3 - y4 (0 at t0), so every error
 * made in it stays to t1, where y4 ~ 0 and y2 = y3 = 8.9e-23 in exact
 * arithmetic; but y2 and y4 peak at 1.4e-10 near t = 1e3, where one unit
 * in their last place is 2.6e-26, 3e-4 of y2(t1): no solver in double
 * precision can give y2 and y3 at t1 to 1e-5 (the test set's reference,
 * RADAU in extended precision, has y2 - y3 = 1.3e-25). A drift d makes
 * y2 and y3 about s +- d / 2 late, while s moves only at second order:
 * kvaerno5 at rtol 1e-10 restarted from t = 1e3 with y2 moved by 1e-24
 * changes y2(t1) by 6e-3 and s by 5e-6 (the README). So E5 is judged on
 * s, with the drift printed beside; y1 (1e-290 at t1) and y4 (0) are
 * below any atol. */
static double e5_error(const problem *p, const double *y)
{
    const double s_ref = 0.5 * (p->ref[1] + p->ref[2]);
    return fabs(0.5 * (y[1] + y[2]) - s_ref) / s_ref;
}

static double e5_drift(const double *y)
{
    return y[1] - y[2] - y[3];
}

/* atol_scale puts atol well below the smallest component measured, so
 * rtol governs the error (HIRES: 5.9e-5 at t1). E5's y1 decays from
 * 1.8e-3 to 1e-290 and feeds y2 at rate 7.89e-10 up to t = 1e13, so an
 * error e in y1 moves y2 (8.9e-23 at t1) by up to e * 7.9e3: hence
 * atol = rtol * 1e-28. Van der Pol's reference is computed at start
 * (ref[0] = NAN here). */
static problem problems[] = {
    {"robertson_1e11", 3, 1e11, 1e-6, {1.0, 0.0, 0.0},
     {0.2083340149701255e-7, 0.8333360770334713e-13, 0.9999999791665050},
     NULL, rober_rhs, rober_jac},
    {"van_der_pol_mu1e3", 2, 3000.0, 1.0, {2.0, 0.0}, {NAN}, NULL,
     vdp_rhs, vdp_jac},
    {"hires", 8, 321.8122, 1e-4, {1.0, 0, 0, 0, 0, 0, 0, 0.0057},
     {0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4,
      0.1175651343283149e-2, 0.2386356198831331e-2, 0.6238968252742796e-2,
      0.2849998395185769e-2, 0.2850001604814231e-2},
     NULL, hires_rhs, hires_jac},
    {"orego", 3, 360.0, 1.0, {1.0, 2.0, 3.0},
     {0.1000814870318523e1, 0.1228178521549917e4, 0.1320554942846706e3},
     NULL, orego_rhs, orego_jac},
    {"e5", 4, 1e13, 1e-28, {1.76e-3, 0.0, 0.0, 0.0},
     {0.1152903278711829e-290, 0.8867655517642120e-22,
      0.8854814626268838e-22, 0.0},
     e5_error, e5_rhs, e5_jac},
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
    (void)t; (void)theta;
    stiff_jvp(p->jac, p->dim, y, v, jv, batch);
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
    double y[MAXDIM];
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
    nde_solver *s[5];   /* rodas5p, kvaerno5 x jacobian = exact,
                           differences; autoswitch */
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
    /* exact: dim JVPs a Jacobian; rodas5p's differences: dim + 2
     * evaluations a Jacobian with df/dt, besides 8 a step (the first
     * step's guess adds one or two: rounded away); kvaerno5's differences
     * hide among its Newton iterations' evaluations, autoswitch's among
     * its parts' (-1: not shown) */
    r->njac = which == 4       ? -1
              : which % 2 == 0 ? (s->counts.nvjp - nvjp0) / (long)p->dim
              : which == 1     ? (st.nfe - 8 * r->steps) / (long)(p->dim + 2)
                               : -1;
}

static int nde_side_make(nde_side *n, const problem *p)
{
    static const char *const keys[5] = {
        "[solver]\nplugin = rodas5p\njacobian = exact\n",
        "[solver]\nplugin = rodas5p\njacobian = differences\n",
        "[solver]\nplugin = kvaerno5\njacobian = exact\n",
        "[solver]\nplugin = kvaerno5\njacobian = differences\n",
        "[solver]\nplugin = autoswitch\n"};

    current = p;
    if (nde_field_create_from(n->ctx, &bench_field, NULL, 1, &n->f))
        return 1;
    for (int k = 0; k < 5; k++) {
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
    for (int k = 0; k < 5; k++) {
        nde_solver_destroy(n->s[k]);
        n->s[k] = NULL;
    }
    nde_field_destroy(n->f);
    n->f = NULL;
}

/* ------------------------------------------------------------------ */
/* CVODE side: BDF with the dense direct solver, set up once a problem  */
/* and reinitialised a solve, as a user solving repeatedly would        */

#ifdef HAVE_CVODE
typedef struct cvode_side {
    SUNContext sun;
    N_Vector y;
    SUNMatrix A;
    SUNLinearSolver ls;
    void *mem;
} cvode_side;

static int cv_rhs(sunrealtype t, N_Vector y, N_Vector dy, void *u)
{
    const problem *p = u;
    (void)t;
    p->rhs(N_VGetArrayPointer(y), N_VGetArrayPointer(dy));
    return 0;
}

static int cv_jac(sunrealtype t, N_Vector y, N_Vector fy, SUNMatrix Jm,
                  void *u, N_Vector t1, N_Vector t2, N_Vector t3)
{
    const problem *p = u;
    double J[MAXDIM * MAXDIM];
    (void)t; (void)fy; (void)t1; (void)t2; (void)t3;
    p->jac(N_VGetArrayPointer(y), J);
    for (size_t i = 0; i < p->dim; i++)
        for (size_t j = 0; j < p->dim; j++)
            SM_ELEMENT_D(Jm, i, j) = J[i * p->dim + j];
    return 0;
}

static int cvode_side_make(cvode_side *c, const problem *p)
{
    const sunindextype d = (sunindextype)p->dim;
    if (SUNContext_Create(NULL, &c->sun))
        return 1;
    c->y = N_VNew_Serial(d, c->sun);
    c->A = SUNDenseMatrix(d, d, c->sun);
    c->mem = CVodeCreate(CV_BDF, c->sun);
    if (!c->y || !c->A || !c->mem)
        return 1;
    memcpy(N_VGetArrayPointer(c->y), p->y0, p->dim * sizeof(double));
    c->ls = SUNLinSol_Dense(c->y, c->A, c->sun);
    return !c->ls || CVodeInit(c->mem, cv_rhs, 0.0, c->y) ||
           CVodeSetUserData(c->mem, (void *)p) ||
           CVodeSetLinearSolver(c->mem, c->ls, c->A) ||
           CVodeSetMaxNumSteps(c->mem, 1000000);
}

static void cvode_side_free(cvode_side *c)
{
    CVodeFree(&c->mem);
    SUNLinSolFree(c->ls);
    SUNMatDestroy(c->A);
    N_VDestroy(c->y);
    SUNContext_Free(&c->sun);
    memset(c, 0, sizeof *c);
}

/* user_jac: the analytic Jacobian, else CVODE's difference quotients. */
static void run_cvode(cvode_side *c, const problem *p, int user_jac,
                      double rtol, double atol, result *r)
{
    double *y = N_VGetArrayPointer(c->y), t = 0.0;
    long nst = 0, nfe = 0, nfels = 0, njac = 0, netf = 0, ncf = 0;

    memcpy(y, p->y0, p->dim * sizeof(double));
    r->ok = !CVodeReInit(c->mem, 0.0, c->y) &&
            !CVodeSStolerances(c->mem, rtol, atol) &&
            !CVodeSetJacFn(c->mem, user_jac ? cv_jac : NULL) &&
            !CVodeSetStopTime(c->mem, p->t1) &&
            CVode(c->mem, p->t1, c->y, &t, CV_NORMAL) >= 0;
    CVodeGetNumSteps(c->mem, &nst);
    CVodeGetNumRhsEvals(c->mem, &nfe);
    CVodeGetNumLinRhsEvals(c->mem, &nfels);
    CVodeGetNumJacEvals(c->mem, &njac);
    CVodeGetNumErrTestFails(c->mem, &netf);
    CVodeGetNumNonlinSolvConvFails(c->mem, &ncf);
    memcpy(r->y, y, p->dim * sizeof(double));
    r->nfe = nfe + nfels;
    r->njac = njac;
    r->steps = nst + netf + ncf;
}
#else
typedef struct cvode_side {
    int none;
} cvode_side;
#endif

/* ------------------------------------------------------------------ */
/* Timing and the table                                                */

/* the nde rows first, in nde_side's order */
enum { NDE_EXACT, NDE_DIFF, KV_EXACT, KV_DIFF, NDE_AUTO, CVODE_JAC, CVODE_DQ,
       GSL_MSBDF, GSL_BSIMP, NCONF };
static const char *const conf_names[NCONF] = {
    "nde rodas5p (J by JVP)", "nde rodas5p (J by differences)",
    "nde kvaerno5 (J by JVP)", "nde kvaerno5 (J by differences)",
    "nde autoswitch (tsit5 / rodas5p, J by JVP)",
    "cvode BDF (J given)", "cvode BDF (J by differences)",
    "gsl msbdf", "gsl bsimp"};

#ifdef HAVE_CVODE
#define HAVE_CONF(c) 1
#else
#define HAVE_CONF(c) ((c) != CVODE_JAC && (c) != CVODE_DQ)
#endif

typedef struct sides {
    nde_side n;
    cvode_side cv;
} sides;

static void run_conf(sides *sd, const problem *p, int c, double rtol,
                     result *r)
{
    const double atol = rtol * p->atol_scale;
    if (c <= NDE_AUTO)
        run_nde(&sd->n, p, c, rtol, atol, r);
#ifdef HAVE_CVODE
    else if (c == CVODE_JAC || c == CVODE_DQ)
        run_cvode(&sd->cv, p, c == CVODE_JAC, rtol, atol, r);
#endif
    else
        run_gsl(p, c == GSL_MSBDF ? gsl_odeiv2_step_msbdf
                                  : gsl_odeiv2_step_bsimp, rtol, atol, r);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Median over batches of the CPU time per solve (s). */
static double time_conf(sides *sd, const problem *p, int c, double rtol,
                        int batches)
{
    double per[16];
    result r;
    for (int b = 0; b < batches; b++) {
        long reps = 0;
        const double t0 = cpu_now();
        double el;
        do {
            run_conf(sd, p, c, rtol, &r);
            reps++;
        } while ((el = cpu_now() - t0) < 0.03);
        per[b] = el / (double)reps;
    }
    return bench_median(per, (size_t)batches);
}

static double rel_error(const problem *p, const double *y)
{
    double e = 0.0;

    if (p->error)
        return p->error(p, y);
    for (size_t i = 0; i < p->dim; i++)
        e = fmax(e, fabs(y[i] - p->ref[i]) / fabs(p->ref[i]));
    return e;
}

/* E5's second table: per row the drift and y2's and y3's own errors */
typedef struct e5_row {
    double rtol, drift, err2, err3;
    int conf;
} e5_row;

static void e5_table(const e5_row *rows, size_t n, const problem *p)
{
    printf("\n| E5: rtol | solver | y2 - y3 - y4 at t1 | rel. error of y2 "
           "| of y3 |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++)
        printf("| %.0e | %s | %.1e | %.2e | %.2e |\n", rows[i].rtol,
               conf_names[rows[i].conf], rows[i].drift,
               rows[i].err2, rows[i].err3);
    printf("| (reference) | test set, RADAU | %.1e | | |\n",
           e5_drift(p->ref));
}

int main(int argc, char **argv)
{
    const double tols[3] = {1e-4, 1e-6, 1e-8};
    int batches = 5, show_y = 0;
    sides sd = {0};
    e5_row e5_rows[3 * NCONF];
    size_t ne5 = 0;

    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--y"))
            show_y = 1;
        else
            batches = atoi(argv[a]);
    }
    if (batches < 1 || batches > 16) {
        fprintf(stderr, "usage: bench_stiff [batches 1..16] [--y]\n");
        return 2;
    }
    gsl_set_error_handler_off();
    if (!(sd.n.ctx = nde_ctx_create()))
        return 1;
#ifndef HAVE_CVODE
    printf("CVODE rows missing: built without SUNDIALS (libsundials-dev)."
           "\n\n");
#endif
    printf("| problem | rtol | solver | steps | RHS evals | Jacobians | "
           "rel. error at t1 | CPU ms per solve |\n"
           "|---|---|---|---|---|---|---|---|\n");
    for (size_t k = 0; k < NPROB; k++) {
        problem *p = &problems[k];
        result r;
        if (isnan(p->ref[0])) {
            run_gsl(p, gsl_odeiv2_step_msbdf, 1e-12, 1e-12, &r);
            memcpy(p->ref, r.y, sizeof r.y);
        }
        if (nde_side_make(&sd.n, p)) {
            fprintf(stderr, "bench_stiff: %s\n", nde_ctx_message(sd.n.ctx));
            return 1;
        }
#ifdef HAVE_CVODE
        if (cvode_side_make(&sd.cv, p)) {
            fprintf(stderr, "bench_stiff: CVODE setup failed\n");
            return 1;
        }
#endif
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < NCONF; c++) {
                double t;
                if (!HAVE_CONF(c))
                    continue;
                run_conf(&sd, p, c, tols[i], &r);
                if (!r.ok) {
                    printf("| %s | %.0e | %s | failed | | | | |\n", p->name,
                           tols[i], conf_names[c]);
                    continue;
                }
                if (show_y) {
                    fprintf(stderr, "%s %.0e %s: y(t1) =", p->name,
                            tols[i], conf_names[c]);
                    for (size_t j = 0; j < p->dim; j++)
                        fprintf(stderr, " %.6e", r.y[j]);
                    fputc('\n', stderr);
                }
                t = time_conf(&sd, p, c, tols[i], batches);
                printf("| %s | %.0e | %s | %ld | %ld | ", p->name, tols[i],
                       conf_names[c], r.steps, r.nfe);
                if (r.njac >= 0)
                    printf("%ld ", r.njac);
                printf("| %.2e | %.3f |\n", rel_error(p, r.y), 1e3 * t);
                fflush(stdout);
                if (p->error == e5_error)
                    e5_rows[ne5++] = (e5_row){
                        tols[i], e5_drift(r.y),
                        fabs(r.y[1] - p->ref[1]) / p->ref[1],
                        fabs(r.y[2] - p->ref[2]) / p->ref[2], c};
            }
        if (p->error == e5_error)
            e5_table(e5_rows, ne5, p);
        nde_side_free(&sd.n);
#ifdef HAVE_CVODE
        cvode_side_free(&sd.cv);
#endif
    }
    nde_ctx_destroy(sd.n.ctx);
    return 0;
}
