/*
 * Work-precision benchmark: nde's tsit5, dopri5, bs3, bs5, vern6, vern7,
 * vern8, vern9 and pd8 against GSL's gsl_odeiv2 (rkf45, rkck, rk8pd
 * through gsl_odeiv2_driver, standard control, hstart 1e-6, a driver
 * allocated per solve, as a user of gsl_odeiv2_driver_apply writes it) on
 * Lotka-Volterra, Van der Pol (mu = 1), DETEST B5 and the demo spiral, at
 * tolerances 1e-4 ... 1e-12 in quarter decades (atol = rtol = tol; the
 * detail table shows whole decades). Error = max norm at T against rk8pd
 * at 1e-14 (its distance to vern9 at 1e-14 is printed: the reference's
 * own error). Time per solve: batches of repeated solves of at
 * least 30 ms, median (min-max) of 7 batches, nde and GSL interleaved.
 * Then, per error level (1e-4 ... 1e-10), the fewest RHS evaluations and
 * the fastest configuration of each solver that reaches it, nde's best
 * against GSL's best, the tsit5 ratios, and the loop overhead per RHS
 * evaluation on a trivial RHS.
 *
 * With `detest`, the DETEST nonstiff set instead (detest_report).
 *
 * When built with SUNDIALS (libsundials-dev), ARKODE's explicit ERKStep
 * too, with its Dormand-Prince 5(4), Verner 6(5) and Fehlberg 8(7)
 * tables (one integrator per problem and table, ERKStepReInit per solve,
 * its own first step and controller); without it their columns are
 * dashes.
 *
 * Usage: bench_work_precision [detest] [batches]   (markdown on stdout)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>

#include "bench_util.h"
#include "nde/nde.h"

#ifdef HAVE_ARKODE
#include <arkode/arkode_erkstep.h>
#include <nvector/nvector_serial.h>
#endif

/* ------------------------------------------------------------------ */
/* Problems: one RHS per problem, used by both sides                   */

typedef void (*rhs_fn)(double t, const double *y, double *dy);

static void lv_rhs(double t, const double *y, double *dy)
{
    (void)t;
    dy[0] = 1.5 * y[0] - y[0] * y[1];
    dy[1] = -3.0 * y[1] + y[0] * y[1];
}

static void vdp_rhs(double t, const double *y, double *dy)
{
    (void)t;
    dy[0] = y[1];
    dy[1] = (1.0 - y[0] * y[0]) * y[1] - y[0];
}

static void b5_rhs(double t, const double *y, double *dy)
{
    (void)t;
    dy[0] = y[1] * y[2];
    dy[1] = -y[0] * y[2];
    dy[2] = -0.51 * y[0] * y[1];
}

/* y' = y^3 A, y a row vector, A = [[-0.1, 2], [-2, -0.1]]. */
static void spiral_rhs(double t, const double *y, double *dy)
{
    const double a = y[0] * y[0] * y[0], b = y[1] * y[1] * y[1];
    (void)t;
    dy[0] = -0.1 * a - 2.0 * b;
    dy[1] = 2.0 * a - 0.1 * b;
}

static void decay_rhs(double t, const double *y, double *dy)
{
    (void)t;
    dy[0] = -y[0];
}

/* The DETEST nonstiff problems (T. E. Hull, W. H. Enright, B. M. Fellen,
 * A. E. Sedgwick, "Comparing numerical methods for ordinary differential
 * equations", SIAM J. Numer. Anal. 9(4):603-637, 1972, Appendix), all on
 * [0, 20]; D1, D3, D5 are the orbit problem with eccentricity 0.1, 0.5,
 * 0.9. */
static void a1_rhs(double t, const double *y, double *dy)
{
    (void)t;
    dy[0] = -y[0];
}

static void a2_rhs(double t, const double *y, double *dy)
{
    (void)t;
    dy[0] = -0.5 * y[0] * y[0] * y[0];
}

static void a3_rhs(double t, const double *y, double *dy)
{
    dy[0] = y[0] * cos(t);
}

static void a4_rhs(double t, const double *y, double *dy)
{
    (void)t;
    dy[0] = 0.25 * y[0] * (1.0 - y[0] / 20.0);
}

static void a5_rhs(double t, const double *y, double *dy)
{
    dy[0] = (y[0] - t) / (y[0] + t);
}

static void b1_rhs(double t, const double *y, double *dy)
{
    (void)t;
    dy[0] = 2.0 * (y[0] - y[0] * y[1]);
    dy[1] = -(y[1] - y[0] * y[1]);
}

static void b2_rhs(double t, const double *y, double *dy)
{
    (void)t;
    dy[0] = -y[0] + y[1];
    dy[1] = y[0] - 2.0 * y[1] + y[2];
    dy[2] = y[1] - y[2];
}

static void b3_rhs(double t, const double *y, double *dy)
{
    (void)t;
    dy[0] = -y[0];
    dy[1] = y[0] - y[1] * y[1];
    dy[2] = y[1] * y[1];
}

static void b4_rhs(double t, const double *y, double *dy)
{
    const double r = sqrt(y[0] * y[0] + y[1] * y[1]);
    (void)t;
    dy[0] = -y[1] - y[0] * y[2] / r;
    dy[1] = y[0] - y[1] * y[2] / r;
    dy[2] = y[0] / r;
}

static void d_rhs(double t, const double *y, double *dy)
{
    const double r2 = y[0] * y[0] + y[1] * y[1], r3 = r2 * sqrt(r2);
    (void)t;
    dy[0] = y[2];
    dy[1] = y[3];
    dy[2] = -y[0] / r3;
    dy[3] = -y[1] / r3;
}

static void e3_rhs(double t, const double *y, double *dy)
{
    dy[0] = y[1];
    dy[1] = y[0] * y[0] * y[0] / 6.0 - y[0] + 2.0 * sin(2.78535 * t);
}

typedef struct problem {
    const char *name;
    size_t dim;
    double t1;
    double y0[4];
    rhs_fn rhs;
    const nde_field_type *field;
} problem;

/* nde side: a field type per problem, the problem in its state. */
#define FIELD_OF(fname, rhs, D)                                              \
    static int fname##_eval(nde_field *f, double t, const double *y,         \
                            const double *th, double *dy, size_t batch)      \
    {                                                                        \
        (void)f; (void)th;                                                   \
        for (size_t r = 0; r < batch; r++)                                   \
            rhs(t, y + r * (D), dy + r * (D));                               \
        return NDE_OK;                                                       \
    }                                                                        \
    static int fname##_create(nde_field *f, nde_section *s, nde_ctx *c)      \
    {                                                                        \
        (void)s; (void)c;                                                    \
        f->dim = (D);                                                        \
        return NDE_OK;                                                       \
    }                                                                        \
    static const nde_field_type fname##_type = {                             \
        .info = NDE_FIELD_INFO(                                              \
            .name = #fname,                                                  \
            .description = "bench",                                          \
            .version = "1"),                                                 \
        .create = fname##_create, .destroy = no_destroy,                     \
        .init_params = no_init, .eval = fname##_eval, .vjp = no_vjp}

static void no_destroy(nde_field *f) { (void)f; }
static int no_init(nde_field *f, double *th, uint64_t seed)
{
    (void)f; (void)th; (void)seed;
    return NDE_OK;
}
static int no_vjp(nde_field *f, double t, const double *y, const double *th,
                  const double *v, double *vy, double *vth, size_t batch)
{
    (void)t; (void)y; (void)th; (void)v; (void)vy; (void)vth; (void)batch;
    return nde_error(f->ctx, NDE_EFATAL, "bench field has no vjp");
}

FIELD_OF(lv, lv_rhs, 2);
FIELD_OF(vdp, vdp_rhs, 2);
FIELD_OF(b5, b5_rhs, 3);
FIELD_OF(spiral, spiral_rhs, 2);
FIELD_OF(decay, decay_rhs, 1);
FIELD_OF(a1, a1_rhs, 1);
FIELD_OF(a2, a2_rhs, 1);
FIELD_OF(a3, a3_rhs, 1);
FIELD_OF(a4, a4_rhs, 1);
FIELD_OF(a5, a5_rhs, 1);
FIELD_OF(b1, b1_rhs, 2);
FIELD_OF(b2, b2_rhs, 3);
FIELD_OF(b3, b3_rhs, 3);
FIELD_OF(b4, b4_rhs, 3);
FIELD_OF(d, d_rhs, 4);
FIELD_OF(e3, e3_rhs, 2);

static const problem classic[] = {
    {"lotka_volterra", 2, 10.0, {1.0, 1.0, 0, 0}, lv_rhs, &lv_type},
    {"van_der_pol_mu1", 2, 20.0, {2.0, 0.0, 0, 0}, vdp_rhs, &vdp_type},
    {"detest_b5", 3, 12.0, {0.0, 1.0, 1.0, 0}, b5_rhs, &b5_type},
    {"spiral_demo", 2, 25.0, {2.0, 0.0, 0, 0}, spiral_rhs, &spiral_type},
};

/* D: y0 = (1 - e, 0, 0, sqrt((1 + e) / (1 - e))). */
#define ORBIT(name, e)                                                       \
    {name, 4, 20.0, {1.0 - (e), 0, 0, 0}, d_rhs, &d_type}
static problem detest[] = {
    {"A1", 1, 20.0, {1.0}, a1_rhs, &a1_type},
    {"A2", 1, 20.0, {1.0}, a2_rhs, &a2_type},
    {"A3", 1, 20.0, {1.0}, a3_rhs, &a3_type},
    {"A4", 1, 20.0, {1.0}, a4_rhs, &a4_type},
    {"A5", 1, 20.0, {4.0}, a5_rhs, &a5_type},
    {"B1", 2, 20.0, {1.0, 3.0}, b1_rhs, &b1_type},
    {"B2", 3, 20.0, {2.0, 0.0, 1.0}, b2_rhs, &b2_type},
    {"B3", 3, 20.0, {1.0, 0.0, 0.0}, b3_rhs, &b3_type},
    {"B4", 3, 20.0, {3.0, 0.0, 0.0}, b4_rhs, &b4_type},
    {"B5", 3, 20.0, {0.0, 1.0, 1.0}, b5_rhs, &b5_type},
    ORBIT("D1", 0.1),
    ORBIT("D3", 0.5),
    ORBIT("D5", 0.9),
    {"E2", 2, 20.0, {2.0, 0.0}, vdp_rhs, &vdp_type},
    {"E3", 2, 20.0, {0.0, 0.0}, e3_rhs, &e3_type},
    {"LV", 2, 10.0, {1.0, 1.0}, lv_rhs, &lv_type},
};
#define MAXPROB 16

/* The problem set of this run: classic, or detest. */
static const problem *problems = classic;
static size_t nprob = sizeof classic / sizeof classic[0];

/* GSL side. */
typedef struct gsl_params {
    rhs_fn rhs;
    long nfe;
} gsl_params;

static int gsl_rhs(double t, const double y[], double dydt[], void *params)
{
    gsl_params *p = params;
    p->nfe++;
    p->rhs(t, y, dydt);
    return GSL_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Solvers under test                                                  */

enum { NDE_TSIT5, NDE_DOPRI5, NDE_BS3, NDE_BS5, NDE_VERN6, NDE_VERN7,
       NDE_VERN8, NDE_VERN9, NDE_PD8, GSL_RKF45,
       GSL_RKCK, GSL_RK8PD, ARK_DP5, ARK_VERNER6, ARK_FEHLBERG8, NCONF };
#define NNDE GSL_RKF45
#define NARK (NCONF - ARK_DP5)
static const char *const conf_name[NCONF] = {
    "nde_tsit5", "nde_dopri5", "nde_bs3", "nde_bs5", "nde_vern6",
    "nde_vern7", "nde_vern8", "nde_vern9", "nde_pd8", "gsl_rkf45",
    "gsl_rkck", "gsl_rk8pd", "arkode_dp5", "arkode_verner6",
    "arkode_fehlberg8"};
static const char *const nde_plugin[NNDE] = {"tsit5", "dopri5", "bs3",
                                             "bs5", "vern6", "vern7", "vern8",
                                             "vern9", "pd8"};
#define IS_GSL(c) ((c) >= GSL_RKF45 && (c) < ARK_DP5)
#define IS_ARK(c) ((c) >= ARK_DP5)

static const gsl_odeiv2_step_type *gsl_type(int c)
{
    return c == GSL_RKF45 ? gsl_odeiv2_step_rkf45
           : c == GSL_RKCK ? gsl_odeiv2_step_rkck
                           : gsl_odeiv2_step_rk8pd;
}

typedef struct run {
    long nfe, steps, rejected;
    double y[4];
    int status;
} run;

static nde_ctx *ctx;
static nde_solver *nde_solvers[MAXPROB][NNDE];
static nde_field *nde_fields[MAXPROB];
static const nde_solver_type *nde_types[NNDE];

static void solve_nde(int c, size_t ip, double tol, run *r)
{
    const problem *p = &problems[ip];
    nde_solver *s = nde_solvers[ip][c];
    nde_solve_opts o;
    nde_stats st;
    nde_solve_opts_default(&o, s->type);
    o.rtol = o.atol = tol;
    r->status = nde_solve(s, &o, NULL, 0.0, p->y0, p->t1, 1, &p->t1, r->y,
                          &st);
    r->nfe = st.nfe;
    r->steps = st.steps_accepted + st.steps_rejected;
    r->rejected = st.steps_rejected;
}

static void solve_gsl(const gsl_odeiv2_step_type *T, rhs_fn rhs, size_t dim,
                      const double *y0, double t1, double tol, run *r)
{
    gsl_params par = {rhs, 0};
    gsl_odeiv2_system sys = {gsl_rhs, NULL, dim, &par};
    gsl_odeiv2_driver *d =
        gsl_odeiv2_driver_alloc_standard_new(&sys, T, 1e-6, tol, tol, 1, 0);
    double t = 0.0;
    memcpy(r->y, y0, dim * sizeof(double));
    r->status = gsl_odeiv2_driver_apply(d, &t, t1, r->y);
    r->nfe = par.nfe;
    r->steps = (long)d->e->count;
    r->rejected = (long)d->e->failed_steps;
    gsl_odeiv2_driver_free(d);
}

/* ARKODE side: an ERKStep integrator per problem and table, made at its
 * first solve and reinitialised for each one. */
#ifdef HAVE_ARKODE
typedef struct ark_side {
    void *mem;
    N_Vector y;
    rhs_fn rhs;
} ark_side;

static SUNContext ark_sun;
static ark_side ark[MAXPROB][NARK];

static int ark_rhs(realtype t, N_Vector y, N_Vector dy, void *user)
{
    const ark_side *a = user;
    a->rhs(t, N_VGetArrayPointer(y), N_VGetArrayPointer(dy));
    return 0;
}

static void solve_ark(int c, size_t ip, double tol, run *r)
{
    static const ARKODE_ERKTableID table[NARK] = {
        ARKODE_DORMAND_PRINCE_7_4_5, ARKODE_VERNER_8_5_6,
        ARKODE_FEHLBERG_13_7_8};
    const problem *p = &problems[ip];
    ark_side *a = &ark[ip][c - ARK_DP5];
    long nfe = 0, nst = 0, netf = 0;
    realtype t = 0.0;
    int ok;

    if (!ark_sun && SUNContext_Create(NULL, &ark_sun))
        ark_sun = NULL;
    if (!a->mem && ark_sun) {
        a->rhs = p->rhs;
        a->y = N_VNew_Serial((sunindextype)p->dim, ark_sun);
        if (a->y) {
            memcpy(N_VGetArrayPointer(a->y), p->y0, p->dim * sizeof(double));
            a->mem = ERKStepCreate(ark_rhs, 0.0, a->y, ark_sun);
        }
        if (a->mem &&
            (ERKStepSetTableNum(a->mem, table[c - ARK_DP5]) ||
             ERKStepSetUserData(a->mem, a) ||
             ERKStepSetMaxNumSteps(a->mem, 1000000)))
            ERKStepFree(&a->mem);
    }
    r->status = -1;
    if (!a->mem)
        return;
    memcpy(N_VGetArrayPointer(a->y), p->y0, p->dim * sizeof(double));
    ok = !ERKStepReInit(a->mem, ark_rhs, 0.0, a->y) &&
         !ERKStepSStolerances(a->mem, tol, tol) &&
         !ERKStepSetStopTime(a->mem, p->t1) &&
         ERKStepEvolve(a->mem, p->t1, a->y, &t, ARK_NORMAL) >= 0;
    ERKStepGetNumRhsEvals(a->mem, &nfe);
    ERKStepGetNumSteps(a->mem, &nst);
    ERKStepGetNumErrTestFails(a->mem, &netf);
    memcpy(r->y, N_VGetArrayPointer(a->y), p->dim * sizeof(double));
    r->status = ok ? 0 : -1;
    r->nfe = nfe;
    r->steps = nst + netf;
    r->rejected = netf;
}

static void ark_free(void)
{
    for (size_t ip = 0; ip < MAXPROB; ip++)
        for (int k = 0; k < NARK; k++) {
            ERKStepFree(&ark[ip][k].mem);
            if (ark[ip][k].y)
                N_VDestroy(ark[ip][k].y);
        }
    if (ark_sun)
        SUNContext_Free(&ark_sun);
}
#else
static void solve_ark(int c, size_t ip, double tol, run *r)
{
    (void)c; (void)ip; (void)tol;
    r->status = -1;   /* built without SUNDIALS: a dash */
}

static void ark_free(void) {}
#endif

static void solve_conf(int c, size_t ip, double tol, run *r)
{
    const problem *p = &problems[ip];
    if (IS_ARK(c))
        solve_ark(c, ip, tol, r);
    else if (IS_GSL(c))
        solve_gsl(gsl_type(c), p->rhs, p->dim, p->y0, p->t1, tol, r);
    else
        solve_nde(c, ip, tol, r);
}

/* Seconds per solve over a batch of at least 30 ms. */
static double time_batch(int c, size_t ip, double tol)
{
    run r;
    long reps = 0;
    double t0 = bench_now(), el;
    do {
        for (int i = 0; i < 16; i++)
            solve_conf(c, ip, tol, &r);
        reps += 16;
        el = bench_now() - t0;
    } while (el < 0.03);
    return el / (double)reps;
}

/* ------------------------------------------------------------------ */

#define NTOL 33 /* 1e-4 ... 1e-12, four per decade */
#define NLEVEL 4
#define MAXB 15

typedef struct cell {
    run r;
    double err, med, lo, hi;
} cell;

static cell results[MAXPROB][NCONF][NTOL];
static double tols[NTOL];

static void fastest(size_t ip, int c, double level, int *best)
{
    *best = -1;
    for (int k = 0; k < NTOL; k++) {
        const cell *x = &results[ip][c][k];
        if (x->r.status == 0 && x->err <= level &&
            (*best < 0 || x->med < results[ip][c][*best].med))
            *best = k;
    }
}

/* The tolerance index whose solve reached `level` in the fewest RHS
 * evaluations, or -1 when none did. */
static int fewest_evals(size_t ip, int c, double level)
{
    int best = -1;

    for (int k = 0; k < NTOL; k++) {
        const cell *x = &results[ip][c][k];
        if (x->r.status == 0 && x->err <= level &&
            (best < 0 || x->r.nfe < results[ip][c][best].r.nfe))
            best = k;
    }
    return best;
}

enum { GROUP_NDE, GROUP_GSL, GROUP_ARK, NGROUP };
static const char *const group_name[NGROUP] = {"nde", "GSL", "ARKODE"};

static int group_of(int c)
{
    return IS_ARK(c) ? GROUP_ARK : IS_GSL(c) ? GROUP_GSL : GROUP_NDE;
}

/* "a / b" with two digits, or a dash when either is missing. */
static const char *ratio(double a, double b)
{
    static char buf[32];
    if (!isfinite(a) || !isfinite(b))
        return "—";
    snprintf(buf, sizeof buf, "%.2f", a / b);
    return buf;
}

/* The fewest RHS evaluations of each solver whose error reaches each
 * level (at any tolerance of the grid), and nde's best over GSL's best. */
static void rhs_table(const double *levels)
{
    int wins = 0, cells = 0;
    printf("\n**Fewest RHS evaluations reaching each error level** "
           "(evals @ tol)\n\n| problem | level |");
    for (int c = 0; c < NCONF; c++)
        printf(" %s |", conf_name[c]);
    printf(" best nde / best GSL | best nde / best ARKODE |\n|---|---|");
    for (int c = 0; c < NCONF + 2; c++)
        printf("---|");
    printf("\n");
    for (size_t ip = 0; ip < nprob; ip++)
        for (int l = 0; l < NLEVEL; l++) {
            double b[NGROUP] = {HUGE_VAL, HUGE_VAL, HUGE_VAL};
            printf("| %s | %.0e |", problems[ip].name, levels[l]);
            for (int c = 0; c < NCONF; c++) {
                const int best = fewest_evals(ip, c, levels[l]);
                if (best < 0) {
                    printf(" — |");
                    continue;
                }
                printf(" %ld @%.1e |", results[ip][c][best].r.nfe,
                       tols[best]);
                b[group_of(c)] = fmin(b[group_of(c)],
                                      (double)results[ip][c][best].r.nfe);
            }
            printf(" %s |", ratio(b[GROUP_NDE], b[GROUP_GSL]));
            printf(" %s |\n", ratio(b[GROUP_NDE], b[GROUP_ARK]));
            if (isfinite(b[GROUP_NDE]) && isfinite(b[GROUP_GSL])) {
                cells++;
                wins += b[GROUP_NDE] <= b[GROUP_GSL];
            }
        }
    printf("\nnde's best needs no more RHS evaluations than GSL's best in %d "
           "of %d cells.\n", wins, cells);
}

/* Loop overhead per RHS evaluation on y' = -y over [0, 20] at tol 1e-8. */
static void overhead(int batches)
{
    const double y0 = 1.0, t1 = 20.0, tol = 1e-8;
    nde_field *f;
    nde_solver *s[NNDE];
    printf("\n**Loop overhead per RHS evaluation** (y' = -y, t in [0, 20], "
           "tol 1e-8; the RHS itself is one multiply)\n\n");
    printf("| solver | RHS evals | µs/solve median | ns per RHS eval |\n");
    printf("|---|---|---|---|\n");
    if (nde_field_create_from(ctx, &decay_type, NULL, 1, &f) != NDE_OK)
        return;
    for (int c = 0; c < NNDE; c++)
        nde_solver_create_from(ctx, nde_types[c], f, &s[c]);
    for (int c = 0; c < ARK_DP5; c++) {   /* ARKODE's are per problem */
        double tb[MAXB];
        run r;
        for (int b = 0; b < batches; b++) {
            long reps = 0;
            double t0 = bench_now(), el;
            do {
                for (int i = 0; i < 16; i++) {
                    if (IS_GSL(c)) {
                        solve_gsl(gsl_type(c), decay_rhs, 1, &y0, t1, tol, &r);
                    } else {
                        nde_solve_opts o;
                        nde_stats st;
                        nde_solve_opts_default(&o, s[c]->type);
                        o.rtol = o.atol = tol;
                        r.status = nde_solve(s[c], &o, NULL, 0, &y0, t1, 1,
                                             &t1, r.y, &st);
                        r.nfe = st.nfe;
                    }
                }
                reps += 16;
                el = bench_now() - t0;
            } while (el < 0.03);
            tb[b] = el / (double)reps;
        }
        qsort(tb, (size_t)batches, sizeof tb[0], bench_cmp_double);
        printf("| %s | %ld | %.2f | %.1f |\n", conf_name[c], r.nfe,
               1e6 * tb[batches / 2], 1e9 * tb[batches / 2] / (double)r.nfe);
    }
    /* GSL again with one driver reused (reset per solve), to show what
     * allocating the driver per solve adds to the GSL rows. */
    for (int c = GSL_RKF45; c < ARK_DP5; c++) {
        gsl_params par = {decay_rhs, 0};
        gsl_odeiv2_system sys = {gsl_rhs, NULL, 1, &par};
        gsl_odeiv2_driver *d = gsl_odeiv2_driver_alloc_standard_new(
            &sys, gsl_type(c), 1e-6, tol, tol, 1, 0);
        double tb[MAXB];
        long nfe = 0;
        for (int b = 0; b < batches; b++) {
            long reps = 0;
            double t0 = bench_now(), el;
            do {
                for (int i = 0; i < 16; i++) {
                    double t = 0.0, y = y0;
                    gsl_odeiv2_driver_reset_hstart(d, 1e-6);
                    par.nfe = 0;
                    gsl_odeiv2_driver_apply(d, &t, t1, &y);
                    nfe = par.nfe;
                }
                reps += 16;
                el = bench_now() - t0;
            } while (el < 0.03);
            tb[b] = el / (double)reps;
        }
        qsort(tb, (size_t)batches, sizeof tb[0], bench_cmp_double);
        printf("| %s (driver reused) | %ld | %.2f | %.1f |\n", conf_name[c],
               nfe, 1e6 * tb[batches / 2], 1e9 * tb[batches / 2] / (double)nfe);
        gsl_odeiv2_driver_free(d);
    }
    for (int c = 0; c < NNDE; c++)
        nde_solver_destroy(s[c]);
    nde_field_destroy(f);
}

/* A group of solvers' best cell: fewest evaluations (of conf ce) and
 * shortest time (of conf ct); HUGE_VAL when none reached the level. */
typedef struct group_best {
    double evals, time;
    int ce, ct;
} group_best;

/* "evals (solver)" or "µs (solver)" of a group's best, a dash if none. */
static void print_best(double v, int c, int time)
{
    if (!isfinite(v))
        printf(" — |");
    else if (time)
        printf(" %.1f (%s) |", 1e6 * v, conf_name[c] + strcspn(conf_name[c],
                                                               "_") + 1);
    else
        printf(" %.0f (%s) |", v, conf_name[c] + strcspn(conf_name[c], "_") +
                                      1);
}

/* The DETEST set at the error levels: per problem, level and
 * solver the tolerance with the fewest RHS evaluations reaching the level,
 * and that solve's time (median of the batches); then per group (nde, GSL,
 * ARKODE) the best of each, how often nde's best needs no more than the
 * others', and the geometric means of the ratios. */
static void detest_report(int batches, const double *refdiff)
{
    static const double levels[3] = {1e-5, 1e-7, 1e-9};
    static group_best best[MAXPROB][3][NGROUP];
    int ewins[NGROUP] = {0}, twins[NGROUP] = {0}, cells[NGROUP] = {0};
    double elog[NGROUP] = {0}, tlog[NGROUP] = {0};

    printf("## DETEST nonstiff (Hull et al. 1972) and Lotka-Volterra: nde vs "
           "GSL odeiv2 and SUNDIALS ARKODE\n\natol = rtol = tol in quarter "
           "decades 1e-4 ... 1e-12; per solver the tolerance with the fewest "
           "RHS evaluations whose error (max norm at T against rk8pd at "
           "1e-14) reaches the level: evals / µs per solve (median of %d "
           "batches of >= 30 ms).\n", batches);
    printf("Reference check, max |rk8pd - vern9| at 1e-14:");
    for (size_t ip = 0; ip < nprob; ip++)
        printf(" %s %.1e%s", problems[ip].name, refdiff[ip],
               ip + 1 < nprob ? "," : ".\n\n");
    printf("| problem | level |");
    for (int c = 0; c < NCONF; c++)
        printf(" %s |", conf_name[c]);
    printf("\n|---|---|");
    for (int c = 0; c < NCONF; c++)
        printf("---|");
    printf("\n");
    for (size_t ip = 0; ip < nprob; ip++)
        for (int l = 0; l < 3; l++) {
            group_best *g = best[ip][l];
            for (int k = 0; k < NGROUP; k++)
                g[k] = (group_best){HUGE_VAL, HUGE_VAL, -1, -1};
            printf("| %s | %.0e |", problems[ip].name, levels[l]);
            for (int c = 0; c < NCONF; c++) {
                double tb[MAXB], med, ev;
                const int k = fewest_evals(ip, c, levels[l]);
                group_best *b = &g[group_of(c)];
                if (k < 0) {
                    printf(" — |");
                    continue;
                }
                for (int i = 0; i < batches; i++)
                    tb[i] = time_batch(c, ip, tols[k]);
                qsort(tb, (size_t)batches, sizeof tb[0], bench_cmp_double);
                med = tb[batches / 2];
                ev = (double)results[ip][c][k].r.nfe;
                printf(" %.0f / %.1f |", ev, 1e6 * med);
                if (ev < b->evals) {
                    b->evals = ev;
                    b->ce = c;
                }
                if (med < b->time) {
                    b->time = med;
                    b->ct = c;
                }
            }
            printf("\n");
        }

    printf("\n**Best of each group** (evaluations and µs per solve, with the "
           "solver)\n\n| problem | level | nde evals | GSL evals | ARKODE "
           "evals | nde µs | GSL µs | ARKODE µs | evals nde/GSL | time "
           "nde/GSL |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t ip = 0; ip < nprob; ip++)
        for (int l = 0; l < 3; l++) {
            const group_best *g = best[ip][l], *n = &g[GROUP_NDE];
            printf("| %s | %.0e |", problems[ip].name, levels[l]);
            for (int k = 0; k < NGROUP; k++)
                print_best(g[k].evals, g[k].ce, 0);
            for (int k = 0; k < NGROUP; k++)
                print_best(g[k].time, g[k].ct, 1);
            printf(" %s |", ratio(n->evals, g[GROUP_GSL].evals));
            printf(" %s |\n", ratio(n->time, g[GROUP_GSL].time));
            for (int k = GROUP_GSL; k < NGROUP; k++)
                if (isfinite(n->evals) && isfinite(g[k].evals)) {
                    cells[k]++;
                    ewins[k] += n->evals <= g[k].evals;
                    twins[k] += n->time <= g[k].time;
                    elog[k] += log(n->evals / g[k].evals);
                    tlog[k] += log(n->time / g[k].time);
                }
        }
    printf("\n");
    for (int k = GROUP_GSL; k < NGROUP; k++)
        if (cells[k])
            printf("nde's best needs no more RHS evaluations than %s's best "
                   "in %d of %d cells, no more time in %d; geometric means "
                   "nde/%s: evaluations %.2f, time %.2f.\n", group_name[k],
                   ewins[k], cells[k], twins[k], group_name[k],
                   exp(elog[k] / cells[k]), exp(tlog[k] / cells[k]));
}

static void cleanup(void)
{
    for (size_t ip = 0; ip < nprob; ip++) {
        for (int c = 0; c < NNDE; c++)
            nde_solver_destroy(nde_solvers[ip][c]);
        nde_field_destroy(nde_fields[ip]);
    }
    nde_ctx_destroy(ctx);
    ark_free();
}

int main(int argc, char **argv)
{
    const double levels[NLEVEL] = {1e-4, 1e-6, 1e-8, 1e-10};
    const int use_detest = argc > 1 && strcmp(argv[1], "detest") == 0;
    int batches = argc > 1 + use_detest ? atoi(argv[1 + use_detest]) : 7;
    double ref[MAXPROB][4], refdiff[MAXPROB];

    if (batches < 1 || batches > MAXB)
        batches = 7;
    if (use_detest) {
        problems = detest;
        nprob = sizeof detest / sizeof detest[0];
        for (size_t ip = 0; ip < nprob; ip++)
            if (detest[ip].rhs == d_rhs) /* y0[0] = 1 - e */
                detest[ip].y0[3] = sqrt((2.0 - detest[ip].y0[0]) /
                                        detest[ip].y0[0]);
    }
    /* Quarter decades: equal tolerance is not equal accuracy, and a grid of
     * whole decades would make a solver whose error lands just above a
     * level pay for a tenfold tighter tolerance. */
    for (int k = 0; k < NTOL; k++)
        tols[k] = pow(10.0, -4.0 - 0.25 * k);
    gsl_set_error_handler_off();
    ctx = nde_ctx_create();
    for (int c = 0; c < NNDE; c++) {
        const nde_plugin_info *info;
        if (nde_plugin_find(ctx, NDE_KIND_SOLVER, nde_plugin[c], &info)) {
            fprintf(stderr, "%s\n", nde_ctx_message(ctx));
            return 1;
        }
        nde_types[c] = (const nde_solver_type *)info;
    }
    for (size_t ip = 0; ip < nprob; ip++) {
        run r;
        if (nde_field_create_from(ctx, problems[ip].field, NULL, 1,
                                  &nde_fields[ip])) {
            fprintf(stderr, "%s\n", nde_ctx_message(ctx));
            return 1;
        }
        for (int c = 0; c < NNDE; c++)
            if (nde_solver_create_from(ctx, nde_types[c], nde_fields[ip],
                                       &nde_solvers[ip][c])) {
                fprintf(stderr, "%s\n", nde_ctx_message(ctx));
                return 1;
            }
        solve_gsl(gsl_odeiv2_step_rk8pd, problems[ip].rhs, problems[ip].dim,
                  problems[ip].y0, problems[ip].t1, 1e-14, &r);
        memcpy(ref[ip], r.y, sizeof ref[ip]);
        solve_nde(NDE_VERN9, ip, 1e-14, &r);
        refdiff[ip] = 0.0;
        for (size_t i = 0; i < problems[ip].dim; i++)
            refdiff[ip] = fmax(refdiff[ip], fabs(r.y[i] - ref[ip][i]));
    }

    /* Counts and errors, then interleaved timing batches. */
    for (size_t ip = 0; ip < nprob; ip++)
        for (int c = 0; c < NCONF; c++)
            for (int k = 0; k < NTOL; k++) {
                cell *x = &results[ip][c][k];
                double e = 0;
                solve_conf(c, ip, tols[k], &x->r);
                for (size_t i = 0; i < problems[ip].dim; i++)
                    e = fmax(e, fabs(x->r.y[i] - ref[ip][i]));
                x->err = x->r.status ? NAN : e;
            }
    if (use_detest) {
        detest_report(batches, refdiff);
        cleanup();
        return 0;
    }
    for (size_t ip = 0; ip < nprob; ip++)
        for (int k = 0; k < NTOL; k++) {
            double tb[NCONF][MAXB];
            for (int b = 0; b < batches; b++)
                for (int c = 0; c < NCONF; c++)
                    tb[c][b] = results[ip][c][k].r.status
                                   ? NAN
                                   : time_batch(c, ip, tols[k]);
            for (int c = 0; c < NCONF; c++) {
                cell *x = &results[ip][c][k];
                qsort(tb[c], (size_t)batches, sizeof(double),
                      bench_cmp_double);
                x->med = tb[c][batches / 2];
                x->lo = tb[c][0];
                x->hi = tb[c][batches - 1];
            }
        }

    printf("## Work-precision: nde vs GSL odeiv2\n\n");
    printf("atol = rtol = tol; error = max norm at T against rk8pd at 1e-14; "
           "time = median (min-max) of %d batches of >= 30 ms.\n", batches);
    printf("Reference check, max |rk8pd - vern9| at 1e-14:");
    for (size_t ip = 0; ip < nprob; ip++)
        printf(" %s %.1e%s", problems[ip].name, refdiff[ip],
               ip + 1 < nprob ? "," : ".\n");
    for (size_t ip = 0; ip < nprob; ip++) {
        printf("\n**%s**\n\n", problems[ip].name);
        printf("| solver | tol | RHS evals | steps | rejected | µs/solve "
               "median (min–max) | ns/RHS eval | err_inf at T |\n");
        printf("|---|---|---|---|---|---|---|---|\n");
        for (int c = 0; c < NCONF; c++)
            for (int k = 0; k < NTOL; k += 4) {
                const cell *x = &results[ip][c][k];
                printf("| %s | %.0e | %ld | %ld | %ld | %.2f (%.2f–%.2f) | "
                       "%.0f | %.2e |\n", conf_name[c], tols[k], x->r.nfe,
                       x->r.steps, x->r.rejected, 1e6 * x->med, 1e6 * x->lo,
                       1e6 * x->hi, 1e9 * x->med / (double)x->r.nfe, x->err);
            }
    }

    printf("\n**Fastest configuration reaching each error level** "
           "(µs/solve @ tol)\n\n");
    printf("| problem | level |");
    for (int c = 0; c < NCONF; c++)
        printf(" %s |", conf_name[c]);
    printf(" tsit5 / rkf45 | tsit5 / rkck | tsit5 / fastest GSL | fastest "
           "nde / fastest GSL | fastest nde / fastest ARKODE |\n|---|---|");
    for (int c = 0; c < NCONF + 5; c++)
        printf("---|");
    printf("\n");
    for (size_t ip = 0; ip < nprob; ip++)
        for (int l = 0; l < NLEVEL; l++) {
            int best[NCONF];
            double b[NGROUP] = {HUGE_VAL, HUGE_VAL, HUGE_VAL};
            printf("| %s | %.0e |", problems[ip].name, levels[l]);
            for (int c = 0; c < NCONF; c++) {
                fastest(ip, c, levels[l], &best[c]);
                if (best[c] < 0) {
                    printf(" — |");
                    continue;
                }
                printf(" %.2f @%.1e |", 1e6 * results[ip][c][best[c]].med,
                       tols[best[c]]);
                b[group_of(c)] = fmin(b[group_of(c)],
                                      results[ip][c][best[c]].med);
            }
            if (best[NDE_TSIT5] < 0) {
                printf(" — | — | — | %s |", ratio(b[GROUP_NDE], b[GROUP_GSL]));
                printf(" %s |\n", ratio(b[GROUP_NDE], b[GROUP_ARK]));
                continue;
            }
            {
                const double t5 = results[ip][NDE_TSIT5][best[NDE_TSIT5]].med;
                const int cmp[2] = {GSL_RKF45, GSL_RKCK};
                for (int j = 0; j < 2; j++) {
                    if (best[cmp[j]] < 0)
                        printf(" — |");
                    else
                        printf(" %.2f |",
                               t5 / results[ip][cmp[j]][best[cmp[j]]].med);
                }
                printf(" %.2f | %s |", t5 / b[GROUP_GSL],
                       ratio(b[GROUP_NDE], b[GROUP_GSL]));
                printf(" %s |\n", ratio(b[GROUP_NDE], b[GROUP_ARK]));
            }
        }
    printf("\nRatios < 1: tsit5 (or nde's fastest) is faster.\n");

    rhs_table(levels);

    overhead(batches);

    cleanup();
    return 0;
}
