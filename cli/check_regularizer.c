/*
 * check_regularizer.c - the regularizer suite of `nde check`
 * (nde/regularizer.h's contract).
 *
 * A small built-in problem (the program may name shipped plugins; core may
 * not): a 2-8-2 tanh mlp field (parameters from seed 1, times 3 so the
 * solution bends), a batch of 2 rows on [0, 1], tsit5 with its step
 * sequence frozen (fixed dt = 0.1: qmin = qmax = 1, dtmax = dt, a
 * tolerance every step meets) and the `discrete` adjoint, which is exact
 * for the discretised solve. The regularizer's gradient - the direct
 * thetabar plus its cotangents pushed back through the adjoint - is
 * compared with fourth-order central differences of its value (forward
 * solve and regularizer re-run with the same seed, so random draws are
 * the same). The solve saves at t = 0.25, 0.5, 0.75, 1 (moved with t1
 * when before_solve moves it), handed to after_solve as in->saves, and at
 * the extra times asked, merged in as the trainer does. A regularizer that hands the adjoint no cotangent although
 * it reads the solve's states (local regularization holds its sampled
 * state constant) is compared with differences in which those states are
 * held at the unperturbed solve's: the derivative it claims.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define REG_BATCH 2
#define REG_DT 0.1
#define REG_TOL 1e-6     /* gradient against differences, relative to max |fd| */

static const char problem_ini[] =
    "[field]\nplugin = mlp\nlayers = 2, 8, 2\nactivation = tanh\n"
    "[solver]\nplugin = tsit5\n";
static const double problem_y0[REG_BATCH * 2] = {2.0, 0.0, 0.5, -1.0};
#define REG_NSAVE 4
static const double problem_tsave[REG_NSAVE] = {0.25, 0.5, 0.75, 1.0};
#define REG_NSOLVE (REG_NSAVE + NDE_REGULARIZER_MAX_EXTRA)

/* What a held solve keeps: the saved and extra states and the record's. */
typedef struct held {
    int on;
    double *saved, *extra, *y, *k, *eest, *stiff;
    size_t nsaved, nextra, ny, nk, nsteps;
} held;

typedef struct reg_check {
    nde_ctx *ctx;
    nde_config *pcfg;
    nde_field *f;
    nde_solver *s;
    nde_adjoint *adj;
    nde_regularizer *r;
    nde_trajectory *tr;
    nde_solve_opts o;
    size_t P, n;
    double *theta, *th, *direct, *grad, *grad2, *grad3, *fd, *ybar0;
    /* the solve's save times: the problem's (tsave, saved) and the extra
     * ones (extra) merged; slot[j] is k < REG_NSAVE for tsave[k], else
     * REG_NSAVE + the extra's index */
    double tsave[REG_NSAVE], tsolve[REG_NSOLVE];
    size_t slot[REG_NSOLVE];
    double ysolve[REG_NSOLVE * REG_BATCH * 2];
    double saved[REG_NSAVE * REG_BATCH * 2];
    double extra[NDE_REGULARIZER_MAX_EXTRA * REG_BATCH * 2];
    double weight;
    uint64_t seed;
    /* of the last evaluation */
    nde_solve_request req;
    long nsteps;
    size_t nct, ct_bad;
} reg_check;

static int copy_held(double **dst, const double *src, size_t n)
{
    if (!src || n == 0)
        return 0;
    if (!(*dst = malloc(n * sizeof **dst)))
        return -1;
    memcpy(*dst, src, n * sizeof **dst);
    return 0;
}

static void held_free(held *h)
{
    free(h->saved);
    free(h->extra);
    free(h->y);
    free(h->k);
    free(h->eest);
    free(h->stiff);
}

/* Put back what is held (same step count, checked by the caller). */
static void held_apply(const held *h, reg_check *c)
{
    nde_trajectory *tr = c->tr;
    memcpy(c->saved, h->saved, h->nsaved * sizeof *h->saved);
    if (h->extra)
        memcpy(c->extra, h->extra, h->nextra * sizeof *h->extra);
    if (h->y)
        memcpy(tr->y, h->y, h->ny * sizeof *h->y);
    if (h->k)
        memcpy(tr->k, h->k, h->nk * sizeof *h->k);
    if (h->eest)
        memcpy(tr->eest, h->eest, h->nsteps * sizeof *h->eest);
    if (h->stiff)
        memcpy(tr->stiff, h->stiff, h->nsteps * sizeof *h->stiff);
}

static int held_take(held *h, const reg_check *c)
{
    const nde_trajectory *tr = c->tr;
    size_t nk = (tr->record & NDE_NEEDS_DENSE) ? tr->nsteps : 0;

    h->on = 1;
    h->nsaved = REG_NSAVE * c->n;
    h->nextra = c->req.nextra * c->n;
    h->ny = tr->nstates * tr->n;
    h->nk = nk * (size_t)tr->stages * tr->n;
    h->nsteps = tr->nsteps;
    if (copy_held(&h->saved, c->saved, h->nsaved) ||
        copy_held(&h->extra, c->extra, h->nextra) ||
        copy_held(&h->y, tr->y, h->ny) || copy_held(&h->k, tr->k, h->nk) ||
        copy_held(&h->eest, tr->eest, h->nsteps) ||
        copy_held(&h->stiff, tr->stiff, h->nsteps))
        return nde_error(c->ctx, NDE_ENOMEM, "out of memory");
    return NDE_OK;
}

/* The save times of the solve: the problem's, moved with t1 (t0 = 0),
 * and the extra ones, in increasing time (stable: equal times keep their
 * order, the problem's first). */
static size_t plan_saves(reg_check *c)
{
    const size_t n = REG_NSAVE + c->req.nextra;
    size_t j, i;

    for (j = 0; j < n; j++) {
        double t;
        if (j < REG_NSAVE)
            t = c->tsave[j] = problem_tsave[j] * c->req.t1;
        else
            t = c->req.extra_save[j - REG_NSAVE];
        for (i = j; i > 0 && c->tsolve[i - 1] > t; i--) {
            c->tsolve[i] = c->tsolve[i - 1];
            c->slot[i] = c->slot[i - 1];
        }
        c->tsolve[i] = t;
        c->slot[i] = j;
    }
    return n;
}

/*
 * Solve and regularize at theta: *value = R; with grad (may be NULL),
 * grad = thetabar_start + weight dR/dtheta (direct, plus the cotangents
 * through the adjoint) where thetabar_start is what grad held. h (may be
 * NULL) is put back before after_solve.
 */
static int evaluate(reg_check *c, const double *theta, double *grad,
                    const held *h, double *value)
{
    nde_regularizer_output out;
    nde_regularizer_input in;
    nde_regularizer_saves sv;
    nde_stats st;
    size_t ns;
    int rc;

    memset(&c->req, 0, sizeof c->req);
    c->req.t0 = 0.0;
    c->req.t1 = 1.0;
    if (c->r->type->before_solve &&
        (rc = c->r->type->before_solve(c->r, &c->req, c->seed)) != NDE_OK)
        return rc;
    c->o.record = c->tr;
    ns = plan_saves(c);
    rc = nde_solve(c->s, &c->o, theta, c->req.t0, problem_y0, c->req.t1, ns,
                   c->tsolve, c->ysolve, &st);
    c->o.record = NULL;
    if (rc != NDE_OK)
        return rc;
    for (size_t j = 0; j < ns; j++) {
        const size_t s = c->slot[j];
        memcpy(s < REG_NSAVE ? c->saved + s * c->n
                             : c->extra + (s - REG_NSAVE) * c->n,
               c->ysolve + j * c->n, c->n * sizeof *c->ysolve);
    }
    if (st.steps_rejected != 0)
        return nde_error(c->ctx, NDE_EFATAL, "the frozen-step solve "
                         "rejected %ld steps", st.steps_rejected);
    c->nsteps = st.steps_accepted;
    if (h && h->on) {
        if (h->nsteps != c->tr->nsteps)
            return nde_error(c->ctx, NDE_EFATAL, "the step count changed "
                             "under a perturbation");
        held_apply(h, c);
    }
    memset(&out, 0, sizeof out);
    memset(&in, 0, sizeof in);
    memset(c->direct, 0, c->P * sizeof *c->direct);
    out.thetabar = grad ? grad : c->direct;
    in.solver = c->s;
    in.opts = &c->o;
    in.fwd = c->tr;
    in.theta = theta;
    in.t0 = c->req.t0;
    in.t1 = c->req.t1;
    in.extra_y = c->extra;
    in.nextra = c->req.nextra;
    in.weight = c->weight;
    sv.nsave = REG_NSAVE;
    sv.t = c->tsave;
    sv.y = c->saved;
    in.saves = &sv;
    if ((rc = c->r->type->after_solve(c->r, &in, &out)) != NDE_OK)
        return rc;
    *value = out.value;
    c->nct = out.nct;
    c->ct_bad = 0;
    for (size_t k = 0; k < out.nct; k++)
        c->ct_bad += !(out.ct[k].t >= in.t0 && out.ct[k].t <= in.t1) ||
                     (k > 0 && out.ct[k].t < out.ct[k - 1].t);
    if (!grad || out.nct == 0 || c->ct_bad)
        return NDE_OK;
    if ((rc = nde_adjoint_gradient(c->adj, &c->o, c->tr, theta, out.ct,
                                   out.nct, c->ybar0, c->direct, &st)))
        return rc;
    for (size_t i = 0; i < c->P; i++)
        grad[i] += c->direct[i];
    return NDE_OK;
}

/* Compose the problem and the regularizer of cfg's section. */
static int setup(reg_check *c, nde_config *cfg, const char *section)
{
    nde_weight_schedule w;
    unsigned rec;
    size_t P;
    int rc;

    if (!(c->pcfg = nde_config_create()))
        return nde_error(c->ctx, NDE_ENOMEM, "out of memory");
    if ((rc = nde_config_load_string(c->pcfg, "nde check's problem",
                                     problem_ini, c->ctx)) ||
        (rc = nde_field_create(c->ctx, c->pcfg, "field", REG_BATCH, &c->f)) ||
        (rc = nde_solver_create(c->ctx, c->pcfg, "solver", c->f, &c->s)) ||
        (rc = nde_solver_set_batch(c->s, REG_BATCH)) ||
        (rc = nde_adjoint_create(c->ctx, c->pcfg, "adjoint", "discrete", c->s,
                                 &c->adj)) ||
        (rc = nde_regularizer_create(c->ctx, cfg, section, c->s, &w, &c->r)))
        return rc;
    if (!(w.weight > 0))
        return nde_error(c->ctx, NDE_ECONFIG, "[%s] weight: the check needs "
                         "a weight > 0", section);
    c->weight = w.weight;
    c->P = P = c->f->nparams;
    c->n = REG_BATCH * c->f->dim;
    if (!(c->theta = calloc(7 * P + c->n, sizeof *c->theta)))
        return nde_error(c->ctx, NDE_ENOMEM, "out of memory");
    c->th = c->theta + P;
    c->direct = c->th + P;
    c->grad = c->direct + P;
    c->grad2 = c->grad + P;
    c->grad3 = c->grad2 + P;
    c->fd = c->grad3 + P;
    c->ybar0 = c->fd + P;
    if ((rc = nde_field_init_params(c->f, c->theta, 1)) != NDE_OK)
        return rc;
    for (size_t i = 0; i < P; i++)
        c->theta[i] *= 3.0;
    nde_solve_opts_default(&c->o, c->s->type);
    c->o.rtol = c->o.atol = 0.1;
    c->o.dt = c->o.dtmax = REG_DT;
    c->o.ctrl.qmin = c->o.ctrl.qmax = 1.0;
    rec = (c->r->needs & (NDE_NEEDS_STEPS | NDE_NEEDS_DENSE |
                          NDE_NEEDS_ERROR_EST | NDE_NEEDS_STIFFNESS)) |
          c->adj->record;
    if (!(c->tr = nde_trajectory_create(rec, 0)))
        return nde_error(c->ctx, NDE_ENOMEM, "out of memory");
    return NDE_OK;
}

static void teardown(reg_check *c)
{
    free(c->theta);
    nde_trajectory_destroy(c->tr);
    nde_regularizer_destroy(c->r);
    nde_adjoint_destroy(c->adj);
    nde_solver_destroy(c->s);
    nde_field_destroy(c->f);
    nde_config_destroy(c->pcfg);
}

/* fd[i] = dR/dtheta_i, fourth-order central differences; *moved counts
 * perturbations that changed the step count. */
static int differences(reg_check *c, const held *h, long *moved)
{
    static const double off[4] = {1, -1, 2, -2};
    const long nsteps = c->nsteps;
    double p[4];
    int rc;

    *moved = 0;
    for (size_t i = 0; i < c->P; i++) {
        const double e = 1e-3 * fmax(1.0, fabs(c->theta[i]));
        for (int k = 0; k < 4; k++) {
            memcpy(c->th, c->theta, c->P * sizeof *c->th);
            c->th[i] += off[k] * e;
            if ((rc = evaluate(c, c->th, NULL, h, &p[k])) != NDE_OK)
                return rc;
            *moved += c->nsteps != nsteps;
        }
        c->fd[i] = (8.0 * (p[0] - p[1]) - (p[2] - p[3])) / (12.0 * e);
    }
    c->nsteps = nsteps;
    return NDE_OK;
}

/* Worst |a_i - b_i| / max_i |b_i| (the gradient's scale, however small). */
static double scaled_error(const double *a, const double *b, size_t n)
{
    double scale = 1e-300, err = 0.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        err = isnan(d) || d > err ? d : err;
    }
    return err / scale;
}

/* A proximal instance (regularizer.h): its gradient is the prox's, so
 * instead of differences: nothing in thetabar, a prox of lr 0 is the
 * identity, and one of lr 0.1 keeps theta finite and is deterministic. */
static int check_prox(reg_check *c, check_report *r)
{
    const size_t P = c->P;
    size_t nonzero = 0, changed = 0, bad = 0;
    int rc;

    check_note(r, "proximal: its gradient is its prox step, not checked "
               "against differences");
    for (size_t i = 0; i < P; i++)
        nonzero += c->grad[i] != 0.0;
    check_line(r, "gradient left out of thetabar (entries set)",
               (double)nonzero, 0.0);
    memcpy(c->th, c->theta, P * sizeof *c->th);
    if ((rc = c->r->type->prox(c->r, c->th, 0.0, c->weight)) != NDE_OK)
        return rc;
    for (size_t i = 0; i < P; i++)
        changed += memcmp(&c->th[i], &c->theta[i], sizeof *c->th) != 0;
    check_line(r, "prox with lr 0 is the identity (values changed)",
               (double)changed, 0.0);
    memcpy(c->th, c->theta, P * sizeof *c->th);
    memcpy(c->fd, c->theta, P * sizeof *c->fd);
    if ((rc = c->r->type->prox(c->r, c->th, 0.1, c->weight)) != NDE_OK ||
        (rc = c->r->type->prox(c->r, c->fd, 0.1, c->weight)) != NDE_OK)
        return rc;
    changed = 0;
    for (size_t i = 0; i < P; i++) {
        bad += !isfinite(c->th[i]);
        changed += memcmp(&c->th[i], &c->fd[i], sizeof *c->th) != 0;
    }
    check_line(r, "prox with lr 0.1 finite (values not)", (double)bad, 0.0);
    check_line(r, "prox deterministic (values differing)", (double)changed,
               0.0);
    return NDE_OK;
}

/* The checks; NDE_OK or the status of a call that failed (the caller
 * prints it as a failed check). */
static int run(reg_check *c, check_report *r)
{
    const size_t P = c->P;
    held h = {0};
    double value, value2;
    size_t nct, ct_bad, differ;
    long moved;
    int rc;

    /* Twice from zero (determinism), once from 1 (it must add). */
    memset(c->grad, 0, P * sizeof *c->grad);
    memset(c->grad2, 0, P * sizeof *c->grad2);
    for (size_t i = 0; i < P; i++)
        c->grad3[i] = 1.0;
    if ((rc = evaluate(c, c->theta, c->grad, NULL, &value)) != NDE_OK)
        return rc;
    nct = c->nct;
    ct_bad = c->ct_bad;
    if ((rc = evaluate(c, c->theta, c->grad2, NULL, &value2)) != NDE_OK ||
        (rc = evaluate(c, c->theta, c->grad3, NULL, &value2)) != NDE_OK)
        return rc;
    check_note(r, "it hands the adjoint %zu cotangent(s); the solve takes %ld "
               "steps", nct, c->nsteps);
    if (nct == 0 && (c->req.nextra > 0 ||
                     (c->r->needs & (NDE_NEEDS_STEPS | NDE_NEEDS_DENSE |
                                     NDE_NEEDS_ERROR_EST |
                                     NDE_NEEDS_STIFFNESS)))) {
        check_note(r, "held constant: the solve's states it reads (it hands "
                   "the adjoint no cotangent)");
        if ((rc = held_take(&h, c)) != NDE_OK)
            return rc;
    }
    check_line(r, "value finite", isfinite(value) ? 0.0 : 1.0, 0.0);
    check_line(r, "cotangents in [t0, t1], sorted (bad ones)", (double)ct_bad,
               0.0);
    differ = memcmp(&value, &value2, sizeof value) != 0;
    for (size_t i = 0; i < P; i++)
        differ += memcmp(&c->grad[i], &c->grad2[i], sizeof *c->grad) != 0;
    check_line(r, "deterministic (values differing)", (double)differ, 0.0);
    for (size_t i = 0; i < P; i++)
        c->grad3[i] -= 1.0;
    check_line(r, "gradient accumulated into thetabar",
               check_rel_error(c->grad3, c->grad, P), 1e-12);

    if (c->r->proximal) {
        held_free(&h);
        return check_prox(c, r);
    }
    if ((rc = differences(c, &h, &moved)) == NDE_OK) {
        check_line(r, "step sequence frozen (solves that moved)",
                   (double)moved, 0.0);
        for (size_t i = 0; i < P; i++)
            c->grad[i] /= c->weight;
        check_line(r, "gradient vs differences", scaled_error(c->grad, c->fd,
                                                              P), REG_TOL);
    }
    held_free(&h);
    return rc;
}

int check_regularizer(nde_ctx *ctx, nde_config *cfg, const char *section,
                      uint64_t seed, check_report *r)
{
    reg_check c;
    int rc;

    memset(&c, 0, sizeof c);
    c.ctx = ctx;
    c.seed = seed;
    if ((rc = setup(&c, cfg, section)) != NDE_OK) {
        teardown(&c);
        return rc;
    }
    check_plugin(r, ctx, &c.r->type->info);
    check_note(r, "problem: mlp 2-8-2 tanh field (%zu parameters), batch %d, "
               "t in [0, 1], tsit5 with a fixed step %g, discrete adjoint",
               c.P, REG_BATCH, REG_DT);
    check_note(r, "the solve saves (in->saves) at t = 0.25, 0.5, 0.75, 1, "
               "moved with t1");
    check_note(r, "held constant: step sizes, accept decisions, random draws "
               "(seed %llu)", (unsigned long long)seed);
    rc = run(&c, r);
    if (rc != NDE_OK)
        check_cannot(r, "solve and regularize", ctx, rc);
    teardown(&c);
    return NDE_OK;
}
