/*
 * check_solver.c - the solver suite of `nde check`, through the public
 * solve functions only (nde_solve, nde_solver_step, nde_solver_dense,
 * nde_solver_step_vjp, nde_solver_advance_vjp), so it does not depend on
 * how a solver is built.
 *
 * - The plugin loads: its tableau or ops pass the checks of
 *   nde_solver_create (a refusal is a failed check, exit 1).
 * - Observed order against the declared one, fixed steps of 1/N on [0, 1],
 *   N = 8, 16, 32, 64 (ODE solvers of order 6 and more: 2, 3, 4, 6, whose
 *   errors at N = 16 are already near round-off), from the last two
 *   errors (ODE) or a least-squares
 *   fit of all four (SDE). ODE: the expr system x' = a cos(t) x,
 *   z' = -b z^2 (a = b = 1, x(0) = z(0) = 1: x = exp(sin t), z = 1/(1+t)),
 *   non-autonomous and nonlinear so that more than the linear order
 *   conditions count. SDE: geometric Brownian motion dx = a x dt + b x dW
 *   (a = 0.5, b = 0.5), exact x0 exp((a - b^2/2) t + b W) in Ito form and
 *   x0 exp(a t + b W) in Stratonovich form, the strong error averaged over
 *   SDE_PATHS paths of one Brownian path set. A solver for additive noise
 *   (NDE_NEEDS_ADDITIVE_NOISE) gets dx = (a / sqrt(1 + t) - x / (2 (1 +
 *   t))) dt + a b / sqrt(1 + t) dW instead, exact (x0 + a (t + b W)) /
 *   sqrt(1 + t) in either form. An observed order below the declared one
 *   by more than the tolerance fails.
 * - Dense output (solvers that declare it) at theta = 0 and 1 equals the
 *   step's start and end.
 * - The step VJP (solvers that declare one) against fourth-order central
 *   differences of the step, into outputs that start at 1 (it must add).
 * - For an adaptive solver with a step VJP that takes it (optional), the
 *   VJP of the step's error norm EEst (a cotangent on it alone, what the
 *   local regularizer asks for) against the same differences of EEst,
 *   to EEST_VJP_TOL: the
 *   estimate is a difference of two solutions 1e-3 of their size, so the
 *   approximations a VJP may make (rodas5p differences the field's VJP
 *   for J's own derivative when the field has no jvp_vjp: 1e-11 on
 *   y_next, 1.7e-6 on EEst here) weigh a thousand times more on it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define ODE_ORDER_TOL 0.3
#define SDE_ORDER_TOL 0.2
#define SDE_PATHS 256
#define VJP_TOL 1e-6
/* The error norm's tolerances in the estimate check: EEst of order 1 on
 * the problems' steps of 0.1. */
#define EEST_RTOL 1e-3
#define EEST_ATOL 1e-4
#define EEST_VJP_TOL 1e-5

static const char ode_ini[] =
    "[field]\nplugin = expr\nstate = x, z\nparams = a=1, b=1\n"
    "dx = a*cos(t)*x\ndz = -b*z*z\n";
static const char sde_ini[] =
    "[field]\nplugin = expr\nstate = x\nparams = a=0.5, b=0.5\n"
    "dx = a*x\ngx = b*x\n";
static const char additive_ini[] =
    "[field]\nplugin = expr\nstate = x\nparams = a=0.5, b=0.5\n"
    "dx = a/sqrt(1 + t) - x/(2*(1 + t))\ngx = a*b/sqrt(1 + t)\n";

static const int steps_n[4] = {8, 16, 32, 64};
static const int steps_high[4] = {2, 3, 4, 6};

typedef struct solver_check {
    nde_ctx *ctx;
    nde_config *pcfg;
    nde_field *f;
    nde_solver *s;
    nde_brownian *bm;
    nde_solve_opts o;
    int sde, ito, additive;
    int stateful;           /* SDE or aux: steps through advance          */
    const nde_plugin_info *refused; /* refused at create (NDE_EPLUGIN) */
    size_t batch, n, P;
    double theta[2];
    double *mem, *y0, *y1, *y2, *aux, *ybar_next, *ybar, *fdy, *dw;
    double thetabar[2], fdth[2];
} solver_check;

/* Errors at t = 1 of the solves with 1/N steps into err[4]. */
static int order_errors(solver_check *c, uint64_t seed,
                        const int *steps_n, double err[4], long *unfixed)
{
    const double a = 0.5, b = 0.5;
    nde_stats st;
    double tsave = 1.0;
    int rc;

    *unfixed = 0;
    for (int k = 0; k < 4; k++) {
        const double h = 1.0 / steps_n[k];
        c->o.dt = c->o.dtmax = h;
        if (c->sde) {
            /* One path on the finest grid; every coarser step is a whole
             * number of its cells. */
            if ((rc = nde_brownian_reset(c->bm, seed, 0.0, 1.0,
                                         1.0 / steps_n[3], c->n)) != NDE_OK)
                return nde_error(c->ctx, rc, "brownian reset failed");
            c->o.brownian = c->bm;
        }
        if ((rc = nde_solve(c->s, &c->o, c->theta, 0.0, c->y0, 1.0, 1, &tsave,
                            c->y1, &st)) != NDE_OK)
            return rc;
        *unfixed += st.steps_accepted != steps_n[k] || st.steps_rejected;
        err[k] = 0.0;
        if (!c->sde) {
            err[k] = fmax(fabs(c->y1[0] - exp(sin(1.0))),
                          fabs(c->y1[1] - 0.5));
            continue;
        }
        if ((rc = nde_brownian_increment(c->bm, 0.0, 1.0, c->dw)) != NDE_OK)
            return nde_error(c->ctx, rc, "brownian increment failed");
        for (size_t i = 0; i < c->n; i++) {
            double drift = c->ito ? a - 0.5 * b * b : a;
            err[k] += fabs(c->y1[i] -
                           (c->additive ? (1.0 + a * (1.0 + b * c->dw[i])) /
                                              sqrt(2.0)
                                        : exp(drift + b * c->dw[i])));
        }
        err[k] /= (double)c->n;
    }
    return NDE_OK;
}

static int check_order(solver_check *c, uint64_t seed, check_report *r)
{
    const double declared = c->sde ? c->s->type->order / 2.0
                                   : c->s->type->order;
    const int *steps = !c->sde && declared >= 6 ? steps_high : steps_n;
    double err[4], observed;
    long unfixed;
    int rc;

    nde_solve_opts_default(&c->o, c->s->type);
    c->o.rtol = c->o.atol = 1.0;   /* every fixed step is accepted */
    c->o.ctrl.qmin = c->o.ctrl.qmax = 1.0;
    for (size_t i = 0; i < c->n; i++)
        c->y0[i] = 1.0;
    if ((rc = order_errors(c, seed, steps, err, &unfixed)) != NDE_OK)
        return rc;
    if (c->sde) {
        /* slope of log2 err against log2 N, least squares */
        double sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (int k = 0; k < 4; k++) {
            double x = log2(steps_n[k]), y = log2(err[k]);
            sx += x; sy += y; sxx += x * x; sxy += x * y;
        }
        observed = -(4 * sxy - sx * sy) / (4 * sxx - sx * sx);
    } else {
        observed = log(err[2] / err[3]) / log((double)steps[3] / steps[2]);
    }
    check_note(r, "%s order: errors %.3e %.3e %.3e %.3e at N = %d, %d, %d, %d "
               "steps; observed %.2f, declared %g",
               !c->sde ? "ODE" : c->additive ? "strong (additive noise)"
               : c->ito ? "strong (Ito GBM)" : "strong (Stratonovich GBM)",
               err[0], err[1], err[2], err[3], steps[0], steps[1], steps[2],
               steps[3], observed, declared);
    check_line(r, "fixed steps taken (solves that were not)", (double)unfixed,
               0.0);
    check_line(r, "order: declared - observed", declared - observed,
               c->sde ? SDE_ORDER_TOL : ODE_ORDER_TOL);
    return NDE_OK;
}

/* How far a tableau's dense output at theta = 1 may round from the step's
 * end: its weights b_i(1) sum terms up to max_i sum_j |r_ij| that cancel
 * (Vern8's 4e6, to b_i of at most 32), each rounded at about 1e-16 of
 * its size; 1e-12 at least, and for solvers without a tableau. */
static double dense_end_tol(const nde_solver_type *t)
{
    const nde_rk_tableau *tab = t->tableau;
    double tol = 1e-12;
    for (int i = 0; tab && i < tab->stages + tab->extra_stages; i++) {
        double size = 0.0;
        for (int j = 0; j < tab->dense_degree; j++)
            size += fabs(tab->dense[i * tab->dense_degree + j]);
        tol = fmax(tol, 1e-16 * size);
    }
    return tol;
}

static int check_dense(solver_check *c, check_report *r)
{
    const double h = 0.1;
    double e0, e1;
    int rc;

    if (!(c->s->type->info.provides & NDE_CAP_DENSE)) {
        check_note(r, "no dense output declared");
        return NDE_OK;
    }
    nde_solver_invalidate(c->s);
    if (c->stateful) {  /* with aux state or noise: through advance */
        rc = nde_solver_aux(c->s) > 0
                 ? nde_solver_start(c->s, c->theta, 0.3, c->y0, c->aux)
                 : NDE_OK;
        if (rc == NDE_OK)
            rc = nde_solver_advance(c->s, c->theta, 0.3, h, c->dw, c->y0,
                                    c->aux, c->y1,
                                    c->aux + nde_solver_aux(c->s) * c->n);
    } else
        rc = nde_solver_step(c->s, c->theta, 0.3, h, c->y0, c->y1, NULL);
    if (rc || (rc = nde_solver_dense(c->s, c->y0, h, 0.0, c->y2)) != NDE_OK)
        return rc;
    e0 = check_rel_error(c->y2, c->y0, c->n);
    if ((rc = nde_solver_dense(c->s, c->y0, h, 1.0, c->y2)) != NDE_OK)
        return rc;
    e1 = check_rel_error(c->y2, c->y1, c->n);
    check_line(r, "dense output at theta = 0 is the start", e0, 1e-14);
    check_line(r, "dense output at theta = 1 is the end", e1,
               dense_end_tol(c->s->type));
    return NDE_OK;
}

/* <ybar_next, step(y, theta)> with aux and dw fixed. */
static int project(solver_check *c, const double *y, double *out)
{
    int rc;

    nde_solver_invalidate(c->s);   /* y moved: no FSAL stage of another y */
    if (c->stateful)
        rc = nde_solver_advance(c->s, c->theta, 0.3, 0.1, c->dw, y, c->aux,
                                c->y1, c->aux + nde_solver_aux(c->s) * c->n);
    else
        rc = nde_solver_step(c->s, c->theta, 0.3, 0.1, y, c->y1, NULL);
    *out = 0.0;
    for (size_t i = 0; i < c->n; i++)
        *out += c->ybar_next[i] * c->y1[i];
    return rc;
}

/* The projected step end from the current y0 and theta, for
 * check_difference. */
static int projection(void *user, double *v)
{
    solver_check *c = user;
    return project(c, c->y0, v);
}

/* The VJP just accumulated into ybar and thetabar (each from 1) against
 * differences of phi in y0 and in theta: the check lines `what` y and
 * theta at tolerance tol. */
static int vs_differences(solver_check *c, int (*phi)(void *, double *),
                          const char *what, double tol, check_report *r)
{
    char line[96];
    size_t i;
    int rc;

    for (i = 0; i < c->n; i++)
        c->ybar[i] -= 1.0;
    for (i = 0; i < c->P; i++)
        c->thetabar[i] -= 1.0;
    for (i = 0; i < c->n; i++)
        if ((rc = check_difference(c->y0, i, phi, c, &c->fdy[i])))
            return rc;
    for (i = 0; i < c->P; i++)
        if ((rc = check_difference(c->theta, i, phi, c, &c->fdth[i])))
            return rc;
    snprintf(line, sizeof line, what, "y");
    check_line(r, line, check_rel_error(c->ybar, c->fdy, c->n), tol);
    snprintf(line, sizeof line, what, "theta");
    check_line(r, line, check_rel_error(c->thetabar, c->fdth, c->P), tol);
    return NDE_OK;
}

static int check_vjp(solver_check *c, uint64_t seed, check_report *r)
{
    const int ops = c->stateful;
    uint64_t rng = seed;
    size_t i;
    int rc;

    if (!(c->s->type->info.provides & NDE_CAP_STEP_VJP)) {
        check_note(r, "no step VJP declared");
        return NDE_OK;
    }
    for (i = 0; i < c->n; i++) {
        c->y0[i] = check_uniform(&rng, 0.5, 1.5);
        c->ybar_next[i] = check_uniform(&rng, -1.0, 1.0);
        c->dw[i] = check_uniform(&rng, -0.3, 0.3);
        c->ybar[i] = 1.0;
    }
    if (nde_solver_noise_blocks(c->s) == 2)   /* the Levy area */
        for (i = 0; i < c->n; i++)
            c->dw[c->n + i] = check_uniform(&rng, -0.1, 0.1);
    c->thetabar[0] = c->thetabar[1] = 1.0;
    if (ops && (rc = nde_solver_start(c->s, c->theta, 0.3, c->y0, c->aux)))
        return rc;
    if (ops)
        rc = nde_solver_advance_vjp(c->s, c->theta, 0.3, 0.1, c->dw, c->y0,
                                    c->aux, c->ybar_next, NULL, c->ybar, NULL,
                                    c->thetabar);
    else
        rc = nde_solver_step_vjp(c->s, c->theta, 0.3, 0.1, c->y0, 1e-6, 1e-6,
                                 c->ybar_next, 0.0, 0.0, NULL, 0, c->ybar,
                                 c->thetabar);
    if (rc != NDE_OK)
        return rc;
    return vs_differences(c, projection,
                          "step vjp %s accumulated vs differences", VJP_TOL,
                          r);
}

/* EEst of the step from the current y0 and theta (y1 its end, y2 its
 * error estimate), for check_difference. */
static int eest_of(void *user, double *v)
{
    solver_check *c = user;
    int rc;

    nde_solver_invalidate(c->s);
    rc = nde_solver_advance_err(c->s, c->theta, 0.3, 0.1, c->dw, c->y0,
                                c->aux, c->y1,
                                c->aux + nde_solver_aux(c->s) * c->n, c->y2);
    *v = rc ? 0.0 : nde_error_norm(c->y2, c->y0, c->y1, c->n, EEST_RTOL,
                                   EEST_ATOL);
    return rc;
}

/* The step VJP with a cotangent on EEst alone against differences of
 * EEst, with the inputs and noise of check_vjp. */
static int check_eest_vjp(solver_check *c, check_report *r)
{
    const nde_step_cotangent ct = {.eest = 1.0, .rtol = EEST_RTOL,
                                   .atol = EEST_ATOL};
    size_t i;
    int rc;

    if (!(c->s->type->info.provides & NDE_CAP_STEP_VJP) ||
        !(c->s->type->info.provides & NDE_CAP_ADAPTIVE))
        return NDE_OK;
    for (i = 0; i < c->n; i++)
        c->ybar[i] = 1.0;
    c->thetabar[0] = c->thetabar[1] = 1.0;
    if (c->stateful &&
        (rc = nde_solver_start(c->s, c->theta, 0.3, c->y0, c->aux)))
        return rc;
    nde_solver_invalidate(c->s);
    rc = nde_solver_vjp(c->s, c->theta, 0.3, 0.1, c->dw, c->y0, c->aux, &ct,
                        c->ybar, NULL, c->thetabar);
    if (rc == NDE_ECAPABILITY) {
        /* optional: a solver may take cotangents on y_next alone (the
         * local regularizer then refuses it) */
        check_note(r, "the step VJP takes no cotangent on EEst");
        nde_ctx_clear(c->ctx);
        return NDE_OK;
    }
    if (rc)
        return rc;
    return vs_differences(c, eest_of, "step vjp of EEst, %s, vs differences",
                          EEST_VJP_TOL, r);
}

/* A reversible solver's reverse of a step returns its start: (y, aux)
 * at t from the step's end, to round-off. */
static int check_reverse(solver_check *c, uint64_t seed, check_report *r)
{
    const size_t na = (size_t)nde_solver_aux(c->s) * c->n;
    double *aux1 = c->aux + na, *aux0r = aux1 + na, *y0r = c->y2, e;
    uint64_t rng = seed + 1;
    int rc;

    if (!(c->s->type->info.provides & NDE_CAP_REVERSIBLE)) {
        check_note(r, "no reverse step declared");
        return NDE_OK;
    }
    for (size_t i = 0; i < c->n; i++) {
        c->y0[i] = check_uniform(&rng, 0.5, 1.5);
        c->dw[i] = check_uniform(&rng, -0.3, 0.3);
    }
    if ((na && (rc = nde_solver_start(c->s, c->theta, 0.3, c->y0, c->aux))) ||
        (rc = nde_solver_advance(c->s, c->theta, 0.3, 0.1, c->dw, c->y0,
                                 c->aux, c->y1, aux1)) ||
        (rc = nde_solver_reverse(c->s, c->theta, 0.3, 0.1, c->dw, c->y1, aux1,
                                 y0r, aux0r)))
        return rc;
    e = check_rel_error(y0r, c->y0, c->n);
    if (na)
        e = fmax(e, check_rel_error(aux0r, c->aux, na));
    check_line(r, "reverse of a step returns its start", e, 1e-12);
    return NDE_OK;
}

static int setup(solver_check *c, nde_config *cfg)
{
    const nde_plugin_info *info;
    const char *name;
    size_t nw;
    int rc;

    if ((rc = nde_get_string(nde_config_section(cfg, "solver"), "plugin",
                             &name, c->ctx)) ||
        (rc = nde_plugin_find(c->ctx, NDE_KIND_SOLVER, name, &info)))
        return rc;
    c->sde = (info->provides & (NDE_CAP_SDE_ITO | NDE_CAP_SDE_STRATONOVICH)) != 0;
    c->ito = (info->provides & NDE_CAP_SDE_ITO) != 0;
    c->additive = (info->needs & NDE_NEEDS_ADDITIVE_NOISE) != 0;
    c->batch = c->sde ? SDE_PATHS : 1;
    if (!(c->pcfg = nde_config_create()))
        return nde_error(c->ctx, NDE_ENOMEM, "out of memory");
    if ((rc = nde_config_load_string(c->pcfg, "nde check's problem",
                                     !c->sde ? ode_ini
                                     : c->additive ? additive_ini : sde_ini,
                                     c->ctx)) ||
        (rc = nde_field_create(c->ctx, c->pcfg, "field", c->batch, &c->f)))
        return rc;
    /* A plugin whose tableau or ops fail the load-time checks is a
     * conformance failure, not a usage error. */
    if ((rc = nde_solver_create(c->ctx, cfg, "solver", c->f, &c->s)) ==
        NDE_EPLUGIN)
        c->refused = info;
    if (rc || (rc = nde_solver_set_batch(c->s, c->batch)))
        return rc;
    c->n = c->batch * c->f->dim;
    c->P = c->f->nparams;
    c->stateful = c->sde || nde_solver_aux(c->s) > 0;
    if ((rc = nde_field_init_params(c->f, c->theta, 1)) != NDE_OK)
        return rc;
    nw = (size_t)(3 * nde_solver_aux(c->s) + 9) * c->n;
    if (!(c->mem = calloc(nw, sizeof *c->mem)))
        return nde_error(c->ctx, NDE_ENOMEM, "out of memory");
    c->y0 = c->mem;
    c->y1 = c->y0 + c->n;
    c->y2 = c->y1 + c->n;
    c->ybar_next = c->y2 + c->n;
    c->ybar = c->ybar_next + c->n;
    c->fdy = c->ybar + c->n;
    c->dw = c->fdy + c->n;
    c->aux = c->dw + 2 * c->n;  /* dw: 2 n (solver.h); aux, aux_next,
                                   a reversed aux */
    if (c->sde && (rc = nde_brownian_create(c->ctx, c->n, &c->bm)))
        return rc;
    return NDE_OK;
}

int check_solver(nde_ctx *ctx, nde_config *cfg, uint64_t seed,
                 check_report *r)
{
    solver_check c;
    int rc;

    memset(&c, 0, sizeof c);
    c.ctx = ctx;
    if ((rc = setup(&c, cfg)) == NDE_EPLUGIN && c.refused) {
        check_plugin(r, ctx, c.refused);
        check_cannot(r, "loads (tableau and ops checks)", ctx, rc);
        rc = NDE_OK;
    } else if (rc == NDE_OK) {
        check_plugin(r, ctx, &c.s->type->info);
        if ((rc = check_order(&c, seed, r)) != NDE_OK)
            check_cannot(r, "order", ctx, rc);
        if ((rc = check_dense(&c, r)) != NDE_OK)
            check_cannot(r, "dense output", ctx, rc);
        if ((rc = check_vjp(&c, seed, r)) != NDE_OK)
            check_cannot(r, "step vjp", ctx, rc);
        else if ((rc = check_eest_vjp(&c, r)) != NDE_OK)
            check_cannot(r, "step vjp of EEst", ctx, rc);
        if ((rc = check_reverse(&c, seed, r)) != NDE_OK)
            check_cannot(r, "reverse", ctx, rc);
        rc = NDE_OK;
    }
    free(c.mem);
    nde_brownian_destroy(c.bm);
    nde_solver_destroy(c.s);
    nde_field_destroy(c.f);
    nde_config_destroy(c.pcfg);
    return rc;
}
