/*
 * run.c - a config's [problem] composed and solved (nde/run.h).
 */
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

struct nde_run {
    nde_ctx *ctx;
    const nde_config *cfg;
    nde_field *field;
    nde_solver *solver;
    nde_brownian *brownian;  /* SDE solvers with t1 > t0; NULL otherwise */
    nde_problem problem;
    nde_solve_opts opts;
    nde_event *event;        /* [problem] event, or NULL                  */
    double *event_t;         /* batch: each row's event time (NaN: none)  */
    double *theta;
};

/* Rows of y0, so the field and solver can be sized before the problem is
 * read against the field's dimension. */
static int count_batch(nde_section *psec, size_t *batch, nde_ctx *ctx)
{
    const nde_key *const tables[] = {nde_problem_keys, NULL};
    double *y0 = NULL;
    size_t rows = 0, cols = 0;
    int rc;

    if ((rc = nde_section_check(psec, tables, ctx)) != NDE_OK)
        return rc;
    rc = nde_get_matrix(psec, "y0", &y0, &rows, &cols, ctx);
    free(y0);
    if (rc == NDE_OK && rows == 0)
        rc = nde_section_error(psec, "y0", ctx, "no initial state given");
    *batch = rows;
    return rc;
}

/* The seed for init_params: [field]'s own `seed` key if its plugin has
 * one (the section is checked, so the getter applies the default), else
 * NDE_RUN_SEED. */
static int field_seed(const nde_config *cfg, const nde_field *f,
                      uint64_t *seed, nde_ctx *ctx)
{
    const nde_key *k;
    long value;
    int rc;

    *seed = NDE_RUN_SEED;
    for (k = f->type->info.keys; k && k->name; k++) {
        if (strcmp(k->name, "seed") != 0 || k->type != NDE_KEY_INT)
            continue;
        if ((rc = nde_get_long(nde_config_section(cfg, "field"), "seed",
                               &value, ctx)) != NDE_OK)
            return rc;
        *seed = (uint64_t)value;
    }
    return NDE_OK;
}

/* [problem] event and direction; the solver must locate it. */
static int compose_event(nde_run *r, nde_section *psec)
{
    const unsigned caps = r->solver->type->info.provides;
    int rc;

    if ((rc = nde_event_from_section(&r->event, psec, r->field, r->ctx)) ||
        !r->event)
        return rc;
    if (!(caps & NDE_CAP_ADAPTIVE) || !(caps & NDE_CAP_DENSE) ||
        nde_solver_is_sde(r->solver))
        return nde_section_error(psec, "event", r->ctx,
                                 "needs an adaptive ODE solver with dense "
                                 "output (e.g. tsit5, dopri5), and solver "
                                 "'%s' %s", r->solver->type->info.name,
                                 nde_solver_is_sde(r->solver)
                                     ? "integrates SDEs"
                                 : !(caps & NDE_CAP_ADAPTIVE)
                                     ? "is fixed-step"
                                     : "has no dense output");
    if (!(r->event_t = calloc(r->problem.batch, sizeof *r->event_t)))
        return nde_error(r->ctx, NDE_ENOMEM, "out of memory");
    r->opts.event = r->event;
    r->opts.event_t = r->event_t;
    return NDE_OK;
}

static int compose(nde_run *r)
{
    nde_section *psec, *ssec;
    size_t batch = 0;
    uint64_t seed;
    int rc;

    if ((rc = nde_config_require(r->cfg, "problem", &psec, r->ctx)) ||
        (rc = nde_config_require(r->cfg, "solver", &ssec, r->ctx)) ||
        (rc = count_batch(psec, &batch, r->ctx)) ||
        (rc = nde_field_create(r->ctx, r->cfg, "field", batch, &r->field)) ||
        (rc = nde_solver_create(r->ctx, r->cfg, "solver", r->field,
                                &r->solver)) ||
        (rc = nde_solve_opts_from_section(&r->opts, r->solver->type, ssec,
                                          r->ctx)) ||
        (rc = nde_problem_from_section(&r->problem, psec, r->field->dim,
                                       r->ctx)) ||
        (rc = compose_event(r, psec)))
        return rc;
    r->opts.tstops = r->problem.tstops;
    r->opts.ntstops = r->problem.ntstops;
    if (!(r->theta = calloc(r->field->nparams ? r->field->nparams : 1,
                            sizeof *r->theta)))
        return nde_error(r->ctx, NDE_ENOMEM, "out of memory");
    if ((rc = field_seed(r->cfg, r->field, &seed, r->ctx)) ||
        (rc = nde_field_init_params(r->field, r->theta, seed)) ||
        (rc = nde_solver_set_batch(r->solver, r->problem.batch)))
        return rc;
    /* with t1 <= t0 the solve itself says why an SDE cannot run */
    if (nde_solver_is_sde(r->solver) && r->problem.t1 > r->problem.t0)
        return nde_brownian_create(
            r->ctx, r->problem.batch * nde_field_brownian_dim(r->field),
            &r->brownian);
    return NDE_OK;
}

int nde_run_create(nde_ctx *ctx, const nde_config *cfg, nde_run **out)
{
    nde_run *r;
    int rc;

    *out = NULL;
    if (!(r = calloc(1, sizeof *r)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    r->ctx = ctx;
    r->cfg = cfg;
    if ((rc = compose(r)) != NDE_OK) {
        nde_run_destroy(r);
        return rc;
    }
    *out = r;
    return NDE_OK;
}

void nde_run_destroy(nde_run *r)
{
    if (!r)
        return;
    free(r->theta);
    free(r->event_t);
    nde_event_destroy(r->event);
    nde_problem_free(&r->problem);
    nde_brownian_destroy(r->brownian);
    nde_solver_destroy(r->solver);
    nde_field_destroy(r->field);
    free(r);
}

nde_field *nde_run_field(const nde_run *r) { return r->field; }
nde_solver *nde_run_solver(const nde_run *r) { return r->solver; }
const nde_problem *nde_run_problem(const nde_run *r) { return &r->problem; }
double *nde_run_params(nde_run *r) { return r->theta; }
const double *nde_run_event_times(const nde_run *r) { return r->event_t; }

int nde_run_solve(nde_run *r, uint64_t seed, double *ysave, nde_stats *st)
{
    const nde_problem *p = &r->problem;
    nde_solve_opts o = r->opts;
    int rc;

    memset(st, 0, sizeof *st);
    if (r->brownian) {
        const size_t n = p->batch * nde_field_brownian_dim(r->field);
        if ((rc = nde_brownian_reset(r->brownian, seed, p->t0, p->t1, o.dt,
                                     n)) != NDE_OK) {
            st->status = rc;
            return rc;
        }
        o.brownian = r->brownian;
    }
    rc = nde_solve(r->solver, &o, r->theta, p->t0, p->y0, p->t1, p->nsave,
                   p->tsave, ysave, st);
    st->status = rc;
    return rc;
}
