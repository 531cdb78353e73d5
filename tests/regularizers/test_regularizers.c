/*
 * Regularizer suite. Conformance: every regularizer plugin found by
 * nde_plugin_foreach, in each of its variants, on Lotka-Volterra (expr)
 * and a 2-8-2 tanh MLP with a batch of 2: the total gradient (direct
 * thetabar plus the cotangents carried back by the `discrete` adjoint over
 * the recorded forward solve) against central finite differences of R
 * (forward solve and regularizer re-run with the same seed). The step
 * sequence is frozen (tsit5, qmin = qmax = 1, fixed dt = dtmax, a
 * tolerance loose enough that every step is accepted; the step count is
 * checked equal in every evaluation), and dtmax = dt also pins the local
 * regularizer's initial-step dt, which it holds constant. The solve saves
 * at four times spread over [t0, t1] (in->saves) merged with the extra
 * times asked, as the trainer does. The differences are fourth-order central (steps 1e-3 and 2e-3 relative to |theta_i|, so
 * round-off in the small error estimates stays below the tolerance).
 * Agreement: |grad - fd| <= 1e-6 max_i |fd_i| per component (GRAD_RTOL);
 * measured 1e-13 .. 1.7e-7. REG_VERBOSE=1 prints each component. The local regularizer with through_state = false drops
 * dR/dy_s dy_s/dtheta by design, so it is checked against differences
 * with y_s frozen from the unperturbed solve.
 *
 * Then values (global on y' = lambda y from an independent evaluation of
 * the tableau, stiffness = |lambda| / stability size, kinetic against the
 * analytic integral on a linear field, Hutchinson's mean, l2 exactly),
 * determinism, sampling, steer's b and refused pairings.
 *
 * Measured agreement is printed to stderr for the record.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "../ctx_fixture.h"

#define MAX_REGS 16
#define GRAD_RTOL 1e-6
#define NMAX 16
#define NSAVE 4
#define NSOLVE (NSAVE + NDE_REGULARIZER_MAX_EXTRA)


typedef struct reg_list {
    const nde_regularizer_type *type[MAX_REGS];
    size_t n;
} reg_list;

static int collect(const nde_plugin_info *info, const char *path, void *user)
{
    reg_list *l = user;
    (void)path;
    if (info->kind == NDE_KIND_REGULARIZER && l->n < MAX_REGS)
        l->type[l->n++] = (const nde_regularizer_type *)info;
    return 0;
}

/* ------------------------------------------------------------------ */
/* A test field y' = theta0 y (scalar per row).                         */

static void lin_destroy(nde_field *f) { (void)f; }
static int lin_init(nde_field *f, double *theta, uint64_t seed)
{
    (void)f; (void)seed;
    theta[0] = -2.0;
    return NDE_OK;
}
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
    .create = lin_create, .destroy = lin_destroy, .init_params = lin_init,
    .eval = lin_eval, .vjp = lin_vjp};

/* ------------------------------------------------------------------ */
/* Fixture: field, solver, discrete adjoint, regularizer, record.       */

typedef struct fixture {
    nde_config *cfg, *rcfg;
    nde_field *f;
    nde_solver *s;
    nde_adjoint *adj;
    nde_regularizer *r;
    nde_trajectory *tr;
    nde_solve_opts o;
    double *theta;
    size_t P, n, batch;
    double y0[NMAX];
    double t0, t1;
    /* The solve saves at NSAVE times spread over [t0, t1] (in->saves) and
     * at the extra ones, merged: slot[j] < NSAVE is tsave[slot[j]], else
     * extra slot[j] - NSAVE. */
    double tsave[NSAVE], tsolve[NSOLVE];
    size_t slot[NSOLVE];
    double ysolve[NSOLVE * NMAX], saved[NSAVE * NMAX];
    double extra[NDE_REGULARIZER_MAX_EXTRA * NMAX];
    nde_solve_request req;      /* of the last evaluation */
    long nsteps, nfe, nvjp;     /* of the last evaluation */
    nde_brownian *bm;           /* SDE solvers: one path, every evaluation */
} fixture;

static const char lv_ini[] =
    "[field]\nplugin = expr\nstate = x, y\n"
    "params = a=1.5, b=1.0, c=3.0, d=1.0\n"
    "dx = a*x - b*x*y\ndy = d*x*y - c*y\n";
/* Stratonovich (lamba_heun's calculus: the field follows its solver),
 * diagonal, multiplicative noise. */
static const char sde_ini[] =
    "[field]\nplugin = expr\nstate = x, y\n"
    "params = a=-0.5, b=1.0, s=0.3, r=0.2\n"
    "dx = a*x + b*y*y\ndy = -x + a*y\ngx = s*x\ngy = r*y + s*x*y\n";
static const char mlp_ini[] =
    "[field]\nplugin = mlp\nlayers = 2, 8, 2\nactivation = tanh\n";

/* Field from config text (or the built-in lin when text is NULL), solver,
 * frozen-step options, discrete adjoint. */
static void fx_init(fixture *fx, const char *field_ini, const char *solver,
                    size_t batch, const double *y0, double t0, double t1,
                    double dt, double tol)
{
    int rc;

    memset(fx, 0, sizeof *fx);
    fx->cfg = nde_config_create();
    if (field_ini) {
        rc = nde_config_load_string(fx->cfg, "test", field_ini, ctx);
        ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
        rc = nde_field_create(ctx, fx->cfg, "field", batch, &fx->f);
    } else {
        rc = nde_field_create_from(ctx, &lin_field, NULL, batch, &fx->f);
    }
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    fx->P = fx->f->nparams;
    fx->theta = calloc(fx->P, sizeof(double));
    ck_assert_int_eq(nde_field_init_params(fx->f, fx->theta, 1), NDE_OK);
    rc = nde_solver_create_from(
        ctx, (const nde_solver_type *)plugin(NDE_KIND_SOLVER, solver), fx->f,
        &fx->s);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    ck_assert_int_eq(nde_solver_set_batch(fx->s, batch), NDE_OK);
    nde_solve_opts_default(&fx->o, fx->s->type);
    fx->o.rtol = fx->o.atol = tol;
    if (dt > 0) {
        fx->o.dt = dt;
        fx->o.dtmax = dt;
        fx->o.ctrl.qmin = fx->o.ctrl.qmax = 1.0;
    }
    rc = nde_adjoint_create_from(
        ctx, (const nde_adjoint_type *)plugin(NDE_KIND_ADJOINT, "discrete"),
        NULL, fx->s, &fx->adj);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    fx->batch = batch;
    fx->n = batch * fx->f->dim;
    ck_assert(fx->n <= NMAX);
    if (nde_solver_is_sde(fx->s))
        ck_assert_int_eq(nde_brownian_create(ctx, NMAX, &fx->bm), NDE_OK);
    memcpy(fx->y0, y0, fx->n * sizeof(double));
    fx->t0 = t0;
    fx->t1 = t1;
}

/* The regularizer from a section body ("" = no section: defaults). */
static int fx_reg(fixture *fx, const nde_regularizer_type *type,
                  const char *body)
{
    unsigned rec;
    int rc;

    nde_regularizer_destroy(fx->r);
    fx->r = NULL;
    nde_trajectory_destroy(fx->tr);
    fx->tr = NULL;
    if (body && *body) {
        char text[512];
        nde_section *sec;
        snprintf(text, sizeof text, "[regularizer.x]\nplugin = %s\n%s\n",
                 type->info.name, body);
        nde_config_destroy(fx->rcfg);
        fx->rcfg = nde_config_create();
        rc = nde_config_load_string(fx->rcfg, "reg", text, ctx);
        ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
        sec = nde_config_section(fx->rcfg, "regularizer.x");
        rc = nde_regularizer_create_from(ctx, type, sec, fx->s, &fx->r);
    } else {
        rc = nde_regularizer_create_from(ctx, type, NULL, fx->s, &fx->r);
    }
    if (rc != NDE_OK)
        return rc;
    rec = (fx->r->needs & (NDE_NEEDS_STEPS | NDE_NEEDS_DENSE |
                           NDE_NEEDS_ERROR_EST | NDE_NEEDS_STIFFNESS)) |
          fx->adj->record;
    fx->tr = nde_trajectory_create(rec, 0);
    ck_assert_ptr_nonnull(fx->tr);
    return NDE_OK;
}

static void fx_free(fixture *fx)
{
    nde_regularizer_destroy(fx->r);
    nde_trajectory_destroy(fx->tr);
    nde_adjoint_destroy(fx->adj);
    nde_brownian_destroy(fx->bm);
    nde_solver_destroy(fx->s);
    nde_field_destroy(fx->f);
    nde_config_destroy(fx->cfg);
    nde_config_destroy(fx->rcfg);
    free(fx->theta);
}

/* What to hold fixed from an earlier solve (local's y_s). */
typedef struct frozen {
    int on;
    double saved[NSAVE * NMAX], extra[NDE_REGULARIZER_MAX_EXTRA * NMAX];
    double *y;      /* the record's step states */
    size_t ny;
} frozen;

/* The solve's save times: NSAVE spread over [t0, t1] (the last t1) and
 * the extra ones, in the direction of the solve (stable: equal times keep
 * their order). */
static size_t fx_plan_saves(fixture *fx)
{
    const double t0 = fx->req.t0, t1 = fx->req.t1, d = t1 > t0 ? 1.0 : -1.0;
    const size_t n = NSAVE + fx->req.nextra;

    for (size_t j = 0; j < n; j++) {
        double t;
        size_t i;
        if (j < NSAVE)
            t = fx->tsave[j] = j == NSAVE - 1
                                   ? t1
                                   : t0 + (double)(j + 1) / NSAVE * (t1 - t0);
        else
            t = fx->req.extra_save[j - NSAVE];
        for (i = j; i > 0 && d * fx->tsolve[i - 1] > d * t; i--) {
            fx->tsolve[i] = fx->tsolve[i - 1];
            fx->slot[i] = fx->slot[i - 1];
        }
        fx->tsolve[i] = t;
        fx->slot[i] = j;
    }
    return n;
}

/*
 * Forward solve + regularizer at theta with seed. grad (may be NULL):
 * weight * dR/dtheta, direct plus the cotangents through `discrete`.
 * fz (may be NULL): replace y_s by the frozen one before after_solve.
 */
static double fx_eval(fixture *fx, const double *theta, uint64_t seed,
                      double weight, double *grad, const frozen *fz)
{
    nde_regularizer_output out;
    nde_regularizer_input in;
    nde_regularizer_saves sv;
    nde_stats st;
    double direct[256], ybar0[NMAX];
    size_t ns;
    int rc;

    ck_assert(fx->P <= 256);
    memset(&fx->req, 0, sizeof fx->req);
    fx->req.t0 = fx->t0;
    fx->req.t1 = fx->t1;
    if (fx->r->type->before_solve) {
        rc = fx->r->type->before_solve(fx->r, &fx->req, seed);
        ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    }
    fx->o.record = fx->tr;
    ns = fx_plan_saves(fx);
    if (fx->bm) {   /* the same path whatever theta and seed */
        rc = nde_brownian_reset(fx->bm, 99, fx->req.t0, fx->req.t1,
                                fx->o.dt > 0 ? fx->o.dt : 0.1, fx->n);
        ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
        fx->o.brownian = fx->bm;
    }
    rc = nde_solve(fx->s, &fx->o, theta, fx->req.t0, fx->y0, fx->req.t1, ns,
                   fx->tsolve, fx->ysolve, &st);
    fx->o.record = NULL;
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    for (size_t j = 0; j < ns; j++) {
        const size_t s = fx->slot[j];
        memcpy(s < NSAVE ? fx->saved + s * fx->n
                         : fx->extra + (s - NSAVE) * fx->n,
               fx->ysolve + j * fx->n, fx->n * sizeof(double));
    }
    if (fx->o.dt > 0)
        ck_assert_int_eq(st.steps_rejected, 0);
    fx->nsteps = st.steps_accepted;
    if (fz && fz->on) {
        memcpy(fx->saved, fz->saved, sizeof fx->saved);
        memcpy(fx->extra, fz->extra, sizeof fx->extra);
        if (fz->y) {
            ck_assert_uint_eq(fz->ny, fx->tr->nstates * fx->n);
            memcpy(fx->tr->y, fz->y, fz->ny * sizeof(double));
        }
    }
    memset(direct, 0, sizeof direct);
    memset(&out, 0, sizeof out);
    memset(&in, 0, sizeof in);
    out.thetabar = direct;
    in.solver = fx->s;
    in.opts = &fx->o;
    in.fwd = fx->tr;
    in.theta = theta;
    in.t0 = fx->req.t0;
    in.t1 = fx->req.t1;
    in.extra_y = fx->extra;
    in.nextra = fx->req.nextra;
    in.weight = weight;
    sv.nsave = NSAVE;
    sv.t = fx->tsave;
    sv.y = fx->saved;
    in.saves = &sv;
    rc = fx->r->type->after_solve(fx->r, &in, &out);
    ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
    fx->nfe = out.nfe;
    fx->nvjp = out.nvjp;
    if (grad) {
        /* Cotangents sorted by time for the adjoint (they come sorted from
         * every plugin here; check it). */
        for (size_t k = 1; k < out.nct; k++)
            ck_assert(out.ct[k].t >= out.ct[k - 1].t);
        rc = nde_adjoint_gradient(fx->adj, &fx->o, fx->tr, theta, out.ct,
                                  out.nct, ybar0, grad, &st);
        ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(ctx));
        for (size_t i = 0; i < fx->P; i++)
            grad[i] += direct[i];
    }
    return out.value;
}

/* Snapshot y_s (extra saves and the record's states) of the last eval. */
static void freeze(const fixture *fx, frozen *fz)
{
    fz->on = 1;
    memcpy(fz->saved, fx->saved, sizeof fz->saved);
    memcpy(fz->extra, fx->extra, sizeof fz->extra);
    fz->ny = fx->tr->nstates * fx->n;
    fz->y = malloc((fz->ny + 1) * sizeof(double));
    memcpy(fz->y, fx->tr->y, fz->ny * sizeof(double));
}

/* Gradient against central differences; returns the worst relative
 * error (scaled by the largest |fd|). */
static double gradcheck(fixture *fx, const char *what, int hold_ys)
{
    const double weight = 0.5;
    const uint64_t seed = 7;
    double grad[256], fd[256], *th = malloc(fx->P * sizeof(double));
    double scale = 1e-300, worst = 0.0;
    frozen fz = {0};
    long nsteps;

    fx_eval(fx, fx->theta, seed, weight, grad, NULL);
    nsteps = fx->nsteps;
    if (hold_ys)
        freeze(fx, &fz);
    for (size_t i = 0; i < fx->P; i++) {
        const double e = 1e-3 * fmax(1.0, fabs(fx->theta[i]));
        double r[4];
        for (int k = 0; k < 4; k++) {
            static const double off[4] = {1, -1, 2, -2};
            memcpy(th, fx->theta, fx->P * sizeof(double));
            th[i] += off[k] * e;
            r[k] = fx_eval(fx, th, seed, weight, NULL, &fz);
            ck_assert_int_eq(fx->nsteps, nsteps);
        }
        /* Fourth-order central difference (Richardson). */
        fd[i] = (8.0 * (r[0] - r[1]) - (r[2] - r[3])) / (12.0 * e);
        scale = fmax(scale, fabs(fd[i]));
    }
    for (size_t i = 0; i < fx->P; i++) {
        worst = fmax(worst, fabs(grad[i] / weight - fd[i]) / scale);
        if (getenv("REG_VERBOSE"))
            fprintf(stderr, "  %zu: grad %.10e fd %.10e\n", i,
                    grad[i] / weight, fd[i]);
    }
    fprintf(stderr, "gradcheck %-52s P=%3zu steps=%ld |fd|max=%.3e "
            "rel.err=%.2e\n", what, fx->P, nsteps, scale, worst);
    free(th);
    free(fz.y);
    return worst;
}

/* Variants per known plugin; a plugin not listed runs with its defaults.
 * The int says whether y_s must be held fixed for the differences. */
typedef struct variant {
    const char *plugin, *body;
    int hold_ys;
} variant;

static const variant variants[] = {
    {"l2", "weight = 1\nscale = 0.3", 0},
    {"steer", "weight = 1\nb = 0.25", 0},
    {"global", "weight = 1", 0},
    {"global", "weight = 1\naggregate = sum", 0},
    {"global", "weight = 1\naggregate = max", 0},
    {"global", "weight = 1\nmeasure = stiffness", 0},
    {"global", "weight = 1\nmeasure = stiffness\naggregate = mean", 0},
    {"local", "weight = 1\nthrough_state = true", 0},
    {"local", "weight = 1\nsampling = biased\nthrough_state = true", 0},
    {"local", "weight = 1\nmeasure = stiffness\nthrough_state = true", 0},
    {"local", "weight = 1", 1},
    {"local", "weight = 1\nsampling = biased", 1},
    {"local", "weight = 1\nmeasure = stiffness\nsampling = biased", 1},
    {"local", "weight = 1\nstep = solver", 1},
    {"local", "weight = 1\nsampling = biased\nstep = solver\n"
              "through_state = true", 0},
    {"kinetic", "weight = 1", 0},
    {"kinetic", "weight = 1\nkinetic = 0", 0},
    {"kinetic", "weight = 1\njacobian = 0", 0},
    /* its prox form has no gradient to check (group_lasso_prox below) */
    {"group_lasso", "weight = 1\nprox = false", 0},
};

/* Plugins that run on one of the fields only: Lotka-Volterra's expr
 * field has no first-layer weights for group_lasso to group. */
static int skips_field(const char *plugin, const char *fname)
{
    return strcmp(plugin, "group_lasso") == 0 && strcmp(fname, "mlp") != 0;
}

static void conformance_on(const char *field_ini, const double *y0,
                           double theta_scale, const char *fname)
{
    reg_list regs = {0};
    size_t ntested = 0;

    ck_assert_int_eq(nde_plugin_foreach(ctx, collect, NULL, &regs), 0);
    ck_assert_uint_ge(regs.n, 5);
    for (size_t p = 0; p < regs.n; p++) {
        const char *name = regs.type[p]->info.name;
        int known = 0;
        for (size_t v = 0; v <= sizeof variants / sizeof *variants; v++) {
            const char *body = "";
            int hold = 0;
            char what[160];
            fixture fx;
            if (v < sizeof variants / sizeof *variants) {
                if (strcmp(variants[v].plugin, name) != 0)
                    continue;
                known = 1;
                if (skips_field(name, fname))
                    continue;
                body = variants[v].body;
                hold = variants[v].hold_ys;
            } else if (known) {
                break;
            }
            fx_init(&fx, field_ini, "tsit5", 2, y0, 0.0, 1.0, 0.1, 1e-1);
            for (size_t i = 0; i < fx.P; i++)
                fx.theta[i] *= theta_scale;
            ck_assert_msg(fx_reg(&fx, regs.type[p], body) == NDE_OK, "%s",
                          nde_ctx_message(ctx));
            snprintf(what, sizeof what, "%s %s [%s]%s", fname, name, body,
                     hold ? " y_s held" : "");
            for (char *c = what; *c; c++)
                if (*c == '\n')
                    *c = ' ';
            ck_assert_msg(gradcheck(&fx, what, hold) <= GRAD_RTOL, "%s",
                          what);
            ntested++;
            fx_free(&fx);
        }
    }
    ck_assert_uint_ge(ntested, regs.n);
}

START_TEST(conformance_lv)
{
    const double y0[4] = {1.0, 1.0, 0.8, 1.3};
    conformance_on(lv_ini, y0, 1.0, "lv");
}
END_TEST

START_TEST(conformance_mlp)
{
    const double y0[4] = {2.0, 0.0, 0.5, -1.0};
    conformance_on(mlp_ini, y0, 3.0, "mlp");
}
END_TEST

/* ------------------------------------------------------------------ */
/* l2 and steer                                                         */

START_TEST(l2_exact)
{
    const double y0[4] = {1.0, 1.0, 0.8, 1.3};
    double grad[256], want = 0.0;
    fixture fx;

    fx_init(&fx, lv_ini, "rk4", 2, y0, 0.0, 1.0, 0.1, 1e-3);
    ck_assert_int_eq(fx_reg(&fx, (const nde_regularizer_type *)plugin(
                                      NDE_KIND_REGULARIZER, "l2"),
                            "weight = 1\nscale = 0.3"), NDE_OK);
    ck_assert_uint_eq(fx.r->needs, 0);
    for (size_t i = 0; i < fx.P; i++)
        want += 0.3 * fx.theta[i] * fx.theta[i];
    ck_assert_double_eq(fx_eval(&fx, fx.theta, 1, 0.7, grad, NULL), want);
    for (size_t i = 0; i < fx.P; i++)
        ck_assert_double_eq(grad[i], 2 * 0.7 * 0.3 * fx.theta[i]);
    fx_free(&fx);
}
END_TEST

/* group_lasso on an ngm field (3 states, 4 hidden: block of 21
 * parameters, group (i, j) = theta[21 i + 3 h + j], h < 4): its value is
 * the sum of the 9 group norms, it adds no gradient, and its prox zeroes
 * a group of norm below lr weight exactly and scales the others by
 * 1 - lr weight / norm, leaving every other parameter as it was. */
START_TEST(group_lasso_prox)
{
    const double y0[6] = {1.0, -0.5, 0.3, 0.2, 0.8, -1.0};
    const double lr = 0.1, weight = 1.0;
    double grad[256] = {0}, before[256], norm[3][3], want = 0.0;
    fixture fx;

    fx_init(&fx, "[field]\nplugin = ngm\ndim = 3\nhidden = 4\n", "rk4", 2,
            y0, 0.0, 1.0, 0.1, 1e-3);
    ck_assert_uint_eq(fx.P, 63);
    ck_assert_int_eq(fx_reg(&fx, (const nde_regularizer_type *)plugin(
                                      NDE_KIND_REGULARIZER, "group_lasso"),
                            "weight = 1"), NDE_OK);
    ck_assert_int_eq(fx.r->proximal, 1);
    for (size_t k = 0; k < fx.P; k++)
        fx.theta[k] = 0.3 + 0.01 * (double)k * (k % 2 ? -1.0 : 1.0);
    for (size_t h = 0; h < 4; h++) /* group (0, 1): norm 0.05 < lr weight */
        fx.theta[3 * h + 1] = 0.025;
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++) {
            double sq = 0.0;
            for (size_t h = 0; h < 4; h++)
                sq += fx.theta[21 * i + 3 * h + j] *
                      fx.theta[21 * i + 3 * h + j];
            norm[i][j] = sqrt(sq);
            want += norm[i][j];
        }
    ck_assert_double_eq_tol(fx_eval(&fx, fx.theta, 1, weight, grad, NULL),
                            want, 1e-14);
    for (size_t k = 0; k < fx.P; k++)
        ck_assert_double_eq(grad[k], 0.0);

    memcpy(before, fx.theta, fx.P * sizeof *before);
    ck_assert_int_eq(fx.r->type->prox(fx.r, fx.theta, lr, weight), NDE_OK);
    for (size_t k = 0; k < fx.P; k++) {
        const size_t i = k / 21, e = k % 21, h = e / 3, j = e % 3;
        if (e >= 12) {
            ck_assert_double_eq(fx.theta[k], before[k]);
        } else if (i == 0 && j == 1) {
            ck_assert_double_eq(fx.theta[k], 0.0);
        } else {
            const double w = before[k] * (1.0 - lr * weight / norm[i][j]);
            ck_assert_msg(fabs(fx.theta[k] - w) <= 1e-15 * fabs(w),
                          "theta[%zu] (b%zu.W1[%zu,%zu]) %.17g, want %.17g",
                          k, i, h, j, fx.theta[k], w);
        }
    }
    fx_free(&fx);

    /* a field without first-layer weights is refused */
    fx_init(&fx, lv_ini, "rk4", 2, y0, 0.0, 1.0, 0.1, 1e-3);
    ck_assert_int_eq(fx_reg(&fx, (const nde_regularizer_type *)plugin(
                                      NDE_KIND_REGULARIZER, "group_lasso"),
                            "weight = 1"), NDE_EINVAL);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "nothing to group"));
    fx_free(&fx);
}
END_TEST

START_TEST(steer_window)
{
    const nde_regularizer_type *t =
        (const nde_regularizer_type *)plugin(NDE_KIND_REGULARIZER, "steer");
    const double y0[2] = {1.0, 1.0};
    double lo = 10, hi = -10, prev = 0;
    fixture fx;
    int rc;

    fx_init(&fx, lv_ini, "tsit5", 1, y0, 0.0, 1.0, 0, 1e-6);
    /* b outside (0, t1 - t0): at create when b <= 0, at the solve else. */
    ck_assert_int_eq(fx_reg(&fx, t, "weight = 1\nb = 0"), NDE_ECONFIG);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "b"));
    ck_assert_int_eq(fx_reg(&fx, t, "weight = 1\nb = -0.5"), NDE_ECONFIG);
    ck_assert_int_eq(fx_reg(&fx, t, ""), NDE_ECONFIG);
    ck_assert_int_eq(fx_reg(&fx, t, "weight = 1\nb = 1"), NDE_OK);
    memset(&fx.req, 0, sizeof fx.req);
    fx.req.t0 = 0.0;
    fx.req.t1 = 1.0;
    rc = t->before_solve(fx.r, &fx.req, 3);
    ck_assert_int_eq(rc, NDE_ECONFIG);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "steer") &&
                  strstr(nde_ctx_message(ctx), "key b"), "%s",
                  nde_ctx_message(ctx));
    ck_assert_int_eq(fx_reg(&fx, t, "weight = 1\nb = 0.5"), NDE_OK);
    for (uint64_t seed = 1; seed <= 200; seed++) {
        double v = fx_eval(&fx, fx.theta, seed, 1.0, NULL, NULL);
        ck_assert_double_eq(v, 0.0);
        ck_assert(fx.req.t1 >= 0.5 && fx.req.t1 <= 1.5);
        ck_assert(seed == 1 || fx.req.t1 != prev);
        prev = fx.req.t1;
        lo = fmin(lo, fx.req.t1);
        hi = fmax(hi, fx.req.t1);
        /* The solve really ended there. */
        ck_assert_double_eq(fx.tr->t1, fx.req.t1);
    }
    ck_assert(lo < 0.6 && hi > 1.4);
    /* Same seed, same end time. */
    fx_eval(&fx, fx.theta, 5, 1.0, NULL, NULL);
    prev = fx.req.t1;
    fx_eval(&fx, fx.theta, 5, 1.0, NULL, NULL);
    ck_assert_double_eq(fx.req.t1, prev);
    fx_free(&fx);
}
END_TEST


static const nde_regularizer_type *reg_named(const char *name)
{
    return (const nde_regularizer_type *)plugin(NDE_KIND_REGULARIZER, name);
}

/* One tsit5 step of y' = lambda y from y with h, from the tableau alone
 * (independent of the engine): y_next and the error vector. */
static void linear_step(const nde_rk_tableau *tab, double lambda, double y,
                        double h, double *y_next, double *err)
{
    double k[16], yn = y, e = 0.0;

    for (int i = 0; i < tab->stages; i++) {
        double g = y;
        for (int j = 0; j < i; j++)
            g += h * tab->a[i * tab->stages + j] * k[j];
        k[i] = lambda * g;
    }
    for (int i = 0; i < tab->stages; i++) {
        yn += h * tab->b[i] * k[i];
        e += h * tab->btilde[i] * k[i];
    }
    *y_next = yn;
    *err = e;
}

START_TEST(global_error_linear)
{
    const double y0[1] = {1.0}, lambda = -2.0;
    double want = 0.0, maxv = 0.0, v;
    fixture fx;

    /* Adaptive steps (default controller): the record gives t_j, h_j. */
    fx_init(&fx, NULL, "tsit5", 1, y0, 0.0, 2.0, 0, 1e-6);
    ck_assert_int_eq(fx_reg(&fx, reg_named("global"), "weight = 1"), NDE_OK);
    v = fx_eval(&fx, fx.theta, 1, 1.0, NULL, NULL);
    ck_assert_int_ge(fx.nsteps, 5);
    for (size_t j = 0; j < fx.tr->nsteps; j++) {
        const double y = fx.tr->y[j], h = fx.tr->h[j];
        double yn, err, sc, eest;
        linear_step(fx.s->type->tableau, lambda, y, h, &yn, &err);
        sc = 1e-6 + 1e-6 * fmax(fabs(y), fabs(yn));
        eest = fabs(err) / sc;
        /* The loop's own EEst is the same number (no block norm here). */
        ck_assert_double_eq_tol(fx.tr->eest[j], eest, 1e-9 * eest);
        want += eest * fabs(h);
        maxv = fmax(maxv, eest * fabs(h));
    }
    want /= (double)fx.tr->nsteps;
    fprintf(stderr, "global error on y' = -2y: %.15e hand %.15e (%ld "
            "steps)\n", v, want, fx.nsteps);
    ck_assert_double_eq_tol(v, want, 1e-10 * want);
    ck_assert_int_eq(fx_reg(&fx, reg_named("global"),
                            "weight = 1\naggregate = sum"), NDE_OK);
    v = fx_eval(&fx, fx.theta, 1, 1.0, NULL, NULL);
    ck_assert_double_eq_tol(v, want * (double)fx.nsteps, 1e-10 * v);
    ck_assert_int_eq(fx_reg(&fx, reg_named("global"),
                            "weight = 1\naggregate = max"), NDE_OK);
    v = fx_eval(&fx, fx.theta, 1, 1.0, NULL, NULL);
    ck_assert_double_eq_tol(v, maxv, 1e-10 * v);
    fx_free(&fx);
}
END_TEST

/* For y' = lambda y the stages are exactly linear: k_s - k_q = lambda
 * (y_next - g_q), so the estimate is |lambda| / stability size per step:
 * local's value; global's is |lambda h_j| / stability size aggregated
 * over the steps (max, mean). */
START_TEST(stiffness_linear)
{
    const double y0[1] = {1.0};
    const char *bodies[] = {"weight = 1\nmeasure = stiffness",
                            "weight = 1\nmeasure = stiffness\naggregate = mean",
                            "weight = 1\nmeasure = stiffness\nsampling = biased",
                            "weight = 1\nmeasure = stiffness"};
    const char *names[] = {"global", "global", "local", "local"};
    fixture fx;

    fx_init(&fx, NULL, "tsit5", 1, y0, 0.0, 2.0, 0, 1e-6);
    for (int i = 0; i < 4; i++) {
        const double per_h = 2.0 / fx.s->type->tableau->stability_size;
        double v, want = per_h;
        ck_assert_int_eq(fx_reg(&fx, reg_named(names[i]), bodies[i]),
                         NDE_OK);
        v = fx_eval(&fx, fx.theta, 3, 1.0, NULL, NULL);
        if (i < 2) { /* global: over the steps of this solve */
            double hmax = 0, hsum = 0;
            ck_assert_uint_gt(fx.tr->nsteps, 3);
            for (size_t j = 0; j < fx.tr->nsteps; j++) {
                hmax = fmax(hmax, fabs(fx.tr->h[j]));
                hsum += fabs(fx.tr->h[j]);
            }
            want = per_h * (i == 0 ? hmax : hsum / (double)fx.tr->nsteps);
        }
        fprintf(stderr, "stiffness %s on y' = -2y: %.15f want %.15f\n",
                names[i], v, want);
        ck_assert_double_eq_tol(v, want, 1e-12);
    }
    ck_assert_double_eq_tol(2.0 / fx.s->type->tableau->stability_size,
                            2.0 / 3.5068, 1e-15);
    fx_free(&fx);
}
END_TEST

static const char rot_ini[] =
    "[field]\nplugin = linear\nA = -0.5, 2, -2, -0.5\n";

/* y' = A y, A = a I + b J: ||A y||^2 = (a^2 + b^2) e^{2 a t} ||y0||^2. */
START_TEST(kinetic_linear)
{
    const double y0[4] = {1.0, 0.5, -0.3, 2.0}, a = -0.5, b = 2.0, T = 1.5;
    const double y2 = (1.0 + 0.25 + 0.09 + 4.0) / 2.0; /* mean ||y0||^2 */
    const double want = (a * a + b * b) * y2 * (exp(2 * a * T) - 1) / (2 * a);
    double v, mean = 0.0;
    const int nseeds = 400;
    fixture fx;

    fx_init(&fx, rot_ini, "tsit5", 2, y0, 0.0, T, 0, 1e-10);
    ck_assert_int_eq(fx_reg(&fx, reg_named("kinetic"),
                            "weight = 1\njacobian = 0"), NDE_OK);
    v = fx_eval(&fx, fx.theta, 1, 1.0, NULL, NULL);
    fprintf(stderr, "kinetic on a linear field: %.15e analytic %.15e "
            "rel %.2e (%ld steps)\n", v, want, fabs(v - want) / want,
            fx.nsteps);
    ck_assert_double_eq_tol(v, want, 1e-8 * want);

    /* Hutchinson: E ||A eps||^2 = ||A||_F^2 = 2 (a^2 + b^2); over many
     * probes the mean is T ||A||_F^2 (sd of the mean ~ 3.5% here). */
    ck_assert_int_eq(fx_reg(&fx, reg_named("kinetic"),
                            "weight = 1\nkinetic = 0"), NDE_OK);
    fx.o.rtol = fx.o.atol = 1e-6;
    for (int s = 1; s <= nseeds; s++)
        mean += fx_eval(&fx, fx.theta, (uint64_t)s, 1.0, NULL, NULL);
    mean /= nseeds;
    fprintf(stderr, "Hutchinson mean over %d probes: %.4f, ||A||_F^2 T = "
            "%.4f\n", nseeds, mean, 2 * (a * a + b * b) * T);
    ck_assert_double_eq_tol(mean / (2 * (a * a + b * b) * T), 1.0, 0.14);
    fx_free(&fx);
}
END_TEST

START_TEST(deterministic)
{
    const double y0[4] = {2.0, 0.0, 0.5, -1.0};
    const char *names[] = {"local", "local", "kinetic", "global", "steer"};
    const char *bodies[] = {"weight = 1", "weight = 1\nsampling = biased",
                            "weight = 1", "weight = 1", "weight = 1\nb = 0.3"};
    fixture fx;

    fx_init(&fx, mlp_ini, "tsit5", 2, y0, 0.0, 1.0, 0, 1e-6);
    for (int i = 0; i < 5; i++) {
        double g1[64], g2[64], v1, v2, v3;
        ck_assert_int_eq(fx_reg(&fx, reg_named(names[i]), bodies[i]),
                         NDE_OK);
        v1 = fx_eval(&fx, fx.theta, 11, 0.3, g1, NULL);
        v2 = fx_eval(&fx, fx.theta, 11, 0.3, g2, NULL);
        ck_assert_mem_eq(&v1, &v2, sizeof v1);
        ck_assert_mem_eq(g1, g2, fx.P * sizeof(double));
        v3 = fx_eval(&fx, fx.theta, 12, 0.3, NULL, NULL);
        if (strcmp(names[i], "steer") != 0 && strcmp(names[i], "global"))
            ck_assert_msg(v3 != v1, "%s: seeds 11 and 12 gave the same R",
                          names[i]);
    }
    fx_free(&fx);
}
END_TEST

/* Unbiased t_s: in [t0, t1), different per seed, mean near the middle;
 * biased: drawn among the steps (several distinct values). Counts. */
START_TEST(local_sampling)
{
    const double y0[4] = {2.0, 0.0, 0.5, -1.0};
    double mean = 0.0, prev = -1, vals[60];
    size_t ndistinct = 0;
    fixture fx;

    fx_init(&fx, mlp_ini, "tsit5", 2, y0, 0.5, 2.5, 0, 1e-6);
    ck_assert_int_eq(fx_reg(&fx, reg_named("local"), "weight = 1"), NDE_OK);
    for (uint64_t seed = 1; seed <= 200; seed++) {
        double ts;
        fx_eval(&fx, fx.theta, seed, 1.0, NULL, NULL);
        ck_assert_uint_eq(fx.req.nextra, 1);
        ts = fx.req.extra_save[0];
        ck_assert(ts >= 0.5 && ts < 2.5);
        ck_assert(ts != prev);
        prev = ts;
        mean += ts / 200;
        /* f0 (also the step's first stage), the initial step's probe,
         * the step's 6 other stages; the VJP reuses the stages: 7 VJPs
         * and no evaluation. */
        ck_assert_int_eq(fx.nfe, 8);
        ck_assert_int_eq(fx.nvjp, 7);
    }
    fprintf(stderr, "unbiased t_s mean over 200 seeds: %.4f (uniform on "
            "[0.5, 2.5): 1.5 +- 0.04)\n", mean);
    ck_assert_double_eq_tol(mean, 1.5, 0.17);

    ck_assert_int_eq(fx_reg(&fx, reg_named("local"),
                            "weight = 1\nsampling = biased"), NDE_OK);
    for (uint64_t seed = 1; seed <= 60; seed++) {
        const double v = fx_eval(&fx, fx.theta, seed, 1.0, NULL, NULL);
        size_t k = 0;
        ck_assert_uint_eq(fx.req.nextra, 0);
        while (k < ndistinct && vals[k] != v)
            k++;
        if (k == ndistinct)
            vals[ndistinct++] = v;
    }
    fprintf(stderr, "biased: %zu distinct values over 60 seeds (%ld "
            "steps)\n", ndistinct, fx.nsteps);
    ck_assert_uint_ge(ndistinct, fx.nsteps < 5 ? (size_t)fx.nsteps : 5);
    ck_assert_uint_le(ndistinct, (size_t)fx.nsteps);
    fx_free(&fx);
}
END_TEST

/* EEst * |h| of a step of size h from (t, y) (y_next, err: scratch). */
static double step_eest_h(fixture *fx, double t, double h, const double *y,
                          double *y_next, double *err)
{
    nde_solver_invalidate(fx->s);
    ck_assert_int_eq(nde_solver_step(fx->s, fx->theta, t, h, y, y_next, err),
                     NDE_OK);
    return nde_error_norm(err, y, y_next, fx->n, fx->o.rtol, fx->o.atol) *
           fabs(h);
}

/* step = solver: the extra step has the size of the solve's own step at
 * t_s. Biased, it is step j itself, so R is one of the solve's EEst_j
 * |h_j|; unbiased, the step from (t_s, y_s) of the size of the step that
 * holds t_s. Both skip the heuristic's probe (7 evaluations). */
START_TEST(local_solver_step)
{
    const double y0[4] = {2.0, 0.0, 0.5, -1.0};
    double y_next[NMAX], err[NMAX], want[64];
    fixture fx;

    fx_init(&fx, mlp_ini, "tsit5", 2, y0, 0.5, 2.5, 0, 1e-6);
    ck_assert_int_eq(fx_reg(&fx, reg_named("local"),
                            "weight = 1\nsampling = biased\nstep = solver"),
                     NDE_OK);
    for (uint64_t seed = 1; seed <= 20; seed++) {
        const double v = fx_eval(&fx, fx.theta, seed, 1.0, NULL, NULL);
        size_t j, nsteps = fx.tr->nsteps, hit = 0;
        ck_assert_uint_le(nsteps, 64);
        for (j = 0; j < nsteps; j++)
            want[j] = step_eest_h(&fx, fx.tr->t[j], fx.tr->h[j],
                                  nde_trajectory_state(fx.tr, j), y_next,
                                  err);
        for (j = 0; j < nsteps; j++)
            hit += fabs(v - want[j]) <= 1e-12 * want[j];
        ck_assert_msg(hit >= 1, "seed %llu: R = %g is no step's EEst |h|",
                      (unsigned long long)seed, v);
        ck_assert_int_eq(fx.nfe, 7);
        ck_assert_int_eq(fx.nvjp, 7);
    }

    ck_assert_int_eq(fx_reg(&fx, reg_named("local"),
                            "weight = 1\nstep = solver"), NDE_OK);
    for (uint64_t seed = 1; seed <= 20; seed++) {
        const double v = fx_eval(&fx, fx.theta, seed, 1.0, NULL, NULL);
        const double ts = fx.req.extra_save[0];
        size_t k = 0;
        double h;
        while (k + 1 < (size_t)fx.tr->nsteps && fx.tr->t[k + 1] <= ts)
            k++;
        h = fmin(fx.tr->h[k], fx.t1 - ts);
        ck_assert(fx.tr->t[k] <= ts && ts < fx.tr->t[k] + fx.tr->h[k]);
        ck_assert_double_eq_tol(v, step_eest_h(&fx, ts, h, fx.extra, y_next,
                                               err),
                                1e-12 * v);
    }
    fx_free(&fx);
}
END_TEST

/* The test modules: oldreg declares interface version 1 and still loads
 * and runs; savenorm (version 2) is given the states the solve returned at
 * the fixture's save times: its value is theirs, recomputed from an
 * independent solve without the record. */
START_TEST(interface_versions)
{
    const double y0[4] = {1.0, 1.0, 0.8, 1.3};
    const nde_plugin_info *info;
    double y[NSAVE * NMAX], want = 0.0, theta2 = 0.0;
    nde_stats st;
    fixture fx;

    info = plugin(NDE_KIND_REGULARIZER, "oldreg");
    ck_assert_int_eq(info->iface_version, 1);
    fx_init(&fx, lv_ini, "tsit5", 2, y0, 0.0, 1.0, 0.1, 1e-1);
    ck_assert_int_eq(fx_reg(&fx, (const nde_regularizer_type *)info, ""),
                     NDE_OK);
    for (size_t i = 0; i < fx.P; i++)
        theta2 += fx.theta[i] * fx.theta[i];
    ck_assert_double_eq(fx_eval(&fx, fx.theta, 1, 1.0, NULL, NULL), theta2);

    info = plugin(NDE_KIND_REGULARIZER, "savenorm");
    ck_assert_int_eq(info->iface_version, NDE_REGULARIZER_VERSION);
    ck_assert_int_eq(fx_reg(&fx, (const nde_regularizer_type *)info, ""),
                     NDE_OK);
    ck_assert_int_eq(nde_solve(fx.s, &fx.o, fx.theta, fx.t0, fx.y0, fx.t1,
                               NSAVE, fx.tsave, y, &st),
                     NDE_OK);
    for (size_t i = 0; i < NSAVE * fx.n; i++)
        want += y[i] * y[i];
    want /= (double)(NSAVE * fx.batch);
    ck_assert_double_eq(fx_eval(&fx, fx.theta, 1, 1.0, NULL, NULL), want);
    fx_free(&fx);
}
END_TEST

START_TEST(refused_pairings)
{
    const double y0[2] = {1.0, 1.0};
    const char *msg;
    fixture fx;

    fx_init(&fx, lv_ini, "rk4", 1, y0, 0.0, 1.0, 0.1, 1e-6);
    ck_assert_int_eq(fx_reg(&fx, reg_named("local"), "weight = 1"),
                     NDE_ECAPABILITY);
    /* The one composition check's message: component, solver and the
     * missing capability in words. */
    msg = nde_ctx_message(ctx);
    ck_assert_msg(strstr(msg, "regularizer 'local' needs the solver's error "
                              "estimate, which solver 'rk4' does not "
                              "provide"), "%s", msg);
    ck_assert_int_eq(fx_reg(&fx, reg_named("local"),
                            "weight = 1\nmeasure = stiffness"),
                     NDE_ECAPABILITY);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "stiffness"));
    ck_assert_int_eq(fx_reg(&fx, reg_named("global"), "weight = 1"),
                     NDE_ECAPABILITY);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx),
                                 "regularizer 'global' needs the solver's "
                                 "error estimate"));
    ck_assert_int_eq(fx_reg(&fx, reg_named("local"),
                            "weight = 1\nsampling = sometimes"), NDE_ECONFIG);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "sampling"));
    ck_assert_int_eq(fx_reg(&fx, reg_named("global"),
                            "weight = 1\naggregate = median"), NDE_ECONFIG);
    ck_assert_int_eq(fx_reg(&fx, reg_named("kinetic"),
                            "weight = 1\nkinetic = -1"), NDE_ECONFIG);
    /* Plugins that need nothing of the solver work with rk4. */
    ck_assert_int_eq(fx_reg(&fx, reg_named("l2"), "weight = 1"), NDE_OK);
    ck_assert_int_eq(fx_reg(&fx, reg_named("kinetic"), "weight = 1"),
                     NDE_OK);
    fx_free(&fx);
}
END_TEST

/* A record that keeps only a few step states (an adjoint's checkpoints):
 * the plugins replay the missing ones and give the same R (to vtol,
 * relative) and gradient (to 1e-10 of its largest entry), for each
 * regularizer names[i] with section body bodies[i]. */
static void check_checkpointed(const char *field_ini, const char *solver,
                               double dt, double tol, const char **names,
                               const char **bodies, int nregs, uint64_t seed,
                               double vtol, const double *y0)
{
    fixture fx;

    fx_init(&fx, field_ini, solver, 2, y0, 0.0, 1.0, dt, tol);
    for (int i = 0; i < nregs; i++) {
        double g1[64], g2[64], v1, v2, worst = 0.0, gmax = 0.0;
        unsigned rec;
        ck_assert_int_eq(fx_reg(&fx, reg_named(names[i]), bodies[i]),
                         NDE_OK);
        v1 = fx_eval(&fx, fx.theta, seed, 1.0, g1, NULL);
        rec = fx.tr->record;
        nde_trajectory_destroy(fx.tr);
        fx.tr = nde_trajectory_create(rec, 3);
        v2 = fx_eval(&fx, fx.theta, seed, 1.0, g2, NULL);
        ck_assert_uint_lt(fx.tr->nstates, (size_t)fx.nsteps);
        for (size_t k = 0; k < fx.P; k++) {
            worst = fmax(worst, fabs(g1[k] - g2[k]));
            gmax = fmax(gmax, fabs(g1[k]));
        }
        fprintf(stderr, "checkpointed %s %s: R rel %.1e, grad rel %.1e "
                "(%zu of %ld states)\n", solver, names[i],
                fabs(v1 - v2) / fabs(v1), worst / gmax, fx.tr->nstates,
                fx.nsteps);
        ck_assert_double_eq_tol(v1, v2, vtol * fabs(v1));
        ck_assert_msg(worst <= 1e-10 * gmax, "%s: gradient %.2e of %.2e",
                      names[i], worst, gmax);
    }
    fx_free(&fx);
}

START_TEST(checkpointed_record)
{
    const double y0[4] = {2.0, 0.0, 0.5, -1.0};
    const char *names[] = {"global", "global", "local", "kinetic"};
    const char *bodies[] = {"weight = 1", "weight = 1\nmeasure = stiffness",
                            ("weight = 1\nsampling = biased\n"
                             "through_state = true"),
                            "weight = 1"};

    check_checkpointed(mlp_ini, "tsit5", 0, 1e-9, names, bodies, 4, 4, 1e-10,
                       y0);
}
END_TEST

/* SDEs (lamba_heun): local and global against central differences, as
 * the ODE conformance (steps frozen: dt = dtmax = 0.1, qmin = qmax = 1,
 * a tolerance at which every step is accepted and local's SDE initial
 * step reaches dtmax), one Brownian path for every evaluation. */
START_TEST(sde_gradients)
{
    static const variant sde_variants[] = {
        {"local", "weight = 1\nthrough_state = true", 0},
        {"local", "weight = 1\nsampling = biased\nthrough_state = true", 0},
        {"local", "weight = 1", 1},
        {"local", "weight = 1\nsampling = biased", 1},
        {"local", "weight = 1\nstep = solver", 1},
        {"local", "weight = 1\nsampling = biased\nstep = solver", 1},
        {"global", "weight = 1", 0},
        {"global", "weight = 1\naggregate = sum", 0},
        {"global", "weight = 1\naggregate = max", 0},
    };
    const double y0[4] = {1.0, 0.5, -0.5, 1.2};

    for (size_t v = 0; v < sizeof sde_variants / sizeof *sde_variants; v++) {
        char what[160];
        fixture fx;
        fx_init(&fx, sde_ini, "lamba_heun", 2, y0, 0.0, 1.0, 0.1, 1e4);
        ck_assert_msg(fx_reg(&fx, reg_named(sde_variants[v].plugin),
                             sde_variants[v].body) == NDE_OK, "%s",
                      nde_ctx_message(ctx));
        snprintf(what, sizeof what, "sde %s [%s]%s", sde_variants[v].plugin,
                 sde_variants[v].body,
                 sde_variants[v].hold_ys ? " y_s held" : "");
        for (char *c = what; *c; c++)
            if (*c == '\n')
                *c = ' ';
        ck_assert_msg(gradcheck(&fx, what, sde_variants[v].hold_ys) <=
                      GRAD_RTOL, "%s", what);
        fx_free(&fx);
    }
}
END_TEST

/* local on an SDE with t_s a step start (biased) whose step has local's
 * dt (dtmax: every full step of the solve) is the solve's own EEst * dt:
 * the same state, step size and Brownian increment. And global's sum is
 * the sum of the solve's EEst_j h_j. */
START_TEST(sde_values_are_the_solves)
{
    const double y0[4] = {1.0, 0.5, -0.5, 1.2};
    int matched = 0;
    double v, sum = 0.0;
    fixture fx;

    fx_init(&fx, sde_ini, "lamba_heun", 2, y0, 0.0, 1.0, 0.1, 1e4);
    ck_assert_int_eq(fx_reg(&fx, reg_named("local"),
                            "weight = 0\nsampling = biased"), NDE_OK);
    for (uint64_t seed = 1; seed <= 100; seed++) {
        const double u =
            (double)(nde_seed_derive(seed, 0) >> 11) * 0x1.0p-53;
        size_t j;
        v = fx_eval(&fx, fx.theta, seed, 0.0, NULL, NULL);
        j = (size_t)(u * (double)fx.tr->nsteps);
        if (j + 1 >= fx.tr->nsteps || fx.tr->h[j] != fx.o.dtmax)
            continue;
        ck_assert_msg(fabs(v - fx.tr->eest[j] * fx.tr->h[j]) <=
                      1e-14 * fabs(v), "seed %d step %zu: R %.17g, solve's "
                      "EEst h %.17g", (int)seed, j, v,
                      fx.tr->eest[j] * fx.tr->h[j]);
        ck_assert(v > 0.0);
        matched++;
    }
    fprintf(stderr, "sde local: R = the solve's EEst h at %d sampled full "
            "steps\n", matched);
    ck_assert_int_ge(matched, 5);

    ck_assert_int_eq(fx_reg(&fx, reg_named("global"),
                            "weight = 1\naggregate = sum"), NDE_OK);
    v = fx_eval(&fx, fx.theta, 1, 1.0, NULL, NULL);
    for (size_t j = 0; j < fx.tr->nsteps; j++)
        sum += fx.tr->eest[j] * fx.tr->h[j];
    ck_assert_double_eq_tol(v, sum, 1e-14 * sum);
    fx_free(&fx);
}
END_TEST

/* nde_regularizer_replay_step gives each step of the solve again, bit for
 * bit (the last one lands on t1), with the solve's error estimate; an SDE
 * solver steps on the solve's own noise, and without the path it says
 * so. */
static void check_replays(const char *field_ini, const char *solver)
{
    const double y0[4] = {1.0, 0.5, -0.5, 1.2};
    double y_next[NMAX], err[NMAX], dw[2 * NMAX];
    nde_regularizer_input in = {0};
    nde_solve_opts no_path;
    fixture fx;
    size_t replayed = 0;

    fx_init(&fx, field_ini, solver, 2, y0, 0.0, 1.0, 0.0, 1e-4);
    ck_assert_int_eq(fx_reg(&fx, reg_named("global"), "weight = 1"), NDE_OK);
    fx_eval(&fx, fx.theta, 1, 1.0, NULL, NULL);
    in.solver = fx.s;
    in.opts = &fx.o;
    in.fwd = fx.tr;
    in.theta = fx.theta;
    in.t0 = fx.t0;
    in.t1 = fx.t1;
    for (size_t i = 0; i < fx.tr->nstates; i++) {
        const size_t j = nde_trajectory_state_step(fx.tr, i);
        const double *want = j + 1 == fx.tr->nsteps
                                 ? fx.saved + (NSAVE - 1) * fx.n
                                 : nde_trajectory_state(fx.tr, i + 1);
        if (j + 1 < fx.tr->nsteps &&
            (i + 1 >= fx.tr->nstates ||
             nde_trajectory_state_step(fx.tr, i + 1) != j + 1))
            continue;
        ck_assert_int_eq(nde_regularizer_replay_step(
                             &in, j, nde_trajectory_state(fx.tr, i), y_next,
                             err, dw), NDE_OK);
        ck_assert_mem_eq(y_next, want, fx.n * sizeof(double));
        ck_assert_double_eq_tol(nde_error_norm(err,
                                               nde_trajectory_state(fx.tr, i),
                                               y_next, fx.n, fx.o.rtol,
                                               fx.o.atol),
                                fx.tr->eest[j], 1e-14 * fx.tr->eest[j]);
        replayed++;
    }
    ck_assert_uint_eq(replayed, fx.tr->nsteps);
    ck_assert_uint_ge(replayed, 5);
    if (fx.bm) {
        no_path = fx.o;
        no_path.brownian = NULL;
        in.opts = &no_path;
        ck_assert_int_eq(nde_regularizer_replay_step(
                             &in, 0, nde_trajectory_state(fx.tr, 0), y_next,
                             NULL, dw), NDE_EINVAL);
        ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "Brownian path"));
    }
    fx_free(&fx);
}

START_TEST(replay_step_is_the_solves)
{
    check_replays(lv_ini, "tsit5");
    check_replays(sde_ini, "lamba_heun");
    check_replays(sde_ini, "sosri");
}
END_TEST

/* SDEs with a checkpointed record: the replays take the solve's own
 * increments, so R and the gradient are those of the full record. */
START_TEST(sde_checkpointed_record)
{
    const double y0[4] = {1.0, 0.5, -0.5, 1.2};
    const char *names[] = {"global", "local"};
    const char *bodies[] = {"weight = 1", "weight = 1\nsampling = biased\n"
                            "through_state = true"};

    check_checkpointed(sde_ini, "lamba_heun", 0.1, 1e4, names, bodies, 2, 3,
                       1e-12, y0);
}
END_TEST

/* SDE pairings: fixed-step SDE solvers have no error estimate; no SDE
 * solver has a stiffness estimate. */
START_TEST(sde_refused_pairings)
{
    const double y0[2] = {1.0, 0.5};
    const char *msg;
    fixture fx;

    fx_init(&fx, sde_ini, "heun", 1, y0, 0.0, 1.0, 0.1, 1.0);
    ck_assert_int_eq(fx_reg(&fx, reg_named("local"), "weight = 1"),
                     NDE_ECAPABILITY);
    msg = nde_ctx_message(ctx);
    ck_assert_msg(strstr(msg, "regularizer 'local' needs the solver's error "
                              "estimate, which solver 'heun' does not "
                              "provide"), "%s", msg);
    ck_assert_int_eq(fx_reg(&fx, reg_named("global"), "weight = 1"),
                     NDE_ECAPABILITY);
    fx_free(&fx);
    fx_init(&fx, sde_ini, "lamba_heun", 1, y0, 0.0, 1.0, 0.1, 1.0);
    ck_assert_int_eq(fx_reg(&fx, reg_named("local"),
                            "weight = 1\nmeasure = stiffness"),
                     NDE_ECAPABILITY);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(ctx), "stiffness"));
    ck_assert_int_eq(fx_reg(&fx, reg_named("global"),
                            "weight = 1\nmeasure = stiffness"),
                     NDE_ECAPABILITY);
    ck_assert_int_eq(fx_reg(&fx, reg_named("local"), "weight = 1"), NDE_OK);
    ck_assert_int_eq(fx_reg(&fx, reg_named("global"), "weight = 1"), NDE_OK);
    fx_free(&fx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("regularizers");
    TCase *tc = tcase_create("conformance");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, conformance_lv);
    tcase_add_test(tc, conformance_mlp);
    tcase_add_test(tc, group_lasso_prox);
    tcase_add_test(tc, sde_gradients);
    suite_add_tcase(s, tc);

    tc = tcase_create("plugins");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, l2_exact);
    tcase_add_test(tc, steer_window);
    tcase_add_test(tc, global_error_linear);
    tcase_add_test(tc, stiffness_linear);
    tcase_add_test(tc, kinetic_linear);
    tcase_add_test(tc, deterministic);
    tcase_add_test(tc, local_sampling);
    tcase_add_test(tc, local_solver_step);
    tcase_add_test(tc, refused_pairings);
    tcase_add_test(tc, interface_versions);
    tcase_add_test(tc, checkpointed_record);
    tcase_add_test(tc, sde_values_are_the_solves);
    tcase_add_test(tc, sde_refused_pairings);
    tcase_add_test(tc, sde_checkpointed_record);
    tcase_add_test(tc, replay_step_is_the_solves);
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
