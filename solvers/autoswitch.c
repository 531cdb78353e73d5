/*
 * autoswitch - an explicit solver that hands over to an implicit one while
 * the problem is stiff and back when it is not, the composite of
 * OrdinaryDiffEq.jl's AutoSwitch (AutoTsit5(Rodas5P()); the rule is that
 * of its composite_algs.jl, AutoSwitch and is_stiff):
 *
 *   after each step a verdict: stiff when lambda |h| / S_ns > threshold,
 *   lambda the largest eigenvalue's size as the part that took the step
 *   estimates it (the explicit part's stiffness estimate, nde/solver.h; the
 *   implicit part's max-row norm of its Jacobian, as OrdinaryDiffEq's
 *   calc_J does for composite algorithms), S_ns the explicit part's
 *   stability size. More than `to_stiff` stiff verdicts switch to the
 *   implicit part, more than `to_nonstiff` non-stiff ones in a row back.
 *
 * The explicit part's stiff verdicts are counted as Hairer's DOPRI5 counts
 * them (dopri5.f, its stiffness detection: IASTI, reset after NONSTI = 6
 * non-stiff verdicts in a row), not only in a row as OrdinaryDiffEq does:
 * an explicit solver held at its stability limit estimates lambda from
 * whatever its stages excite, and on E5 at rtol 1e-8 tsit5's verdicts
 * there alternate (one stiff in two or three steps), so a count of stiff
 * verdicts in a row reached 11 only after 165000 steps to t = 28 (rodas5p
 * alone: 3618 steps to t1 = 1e13).
 *
 * Which part runs, and the verdicts counted so far, are the solver's aux
 * state (one block of n equal values a): a >= 0, the explicit part with
 * a = stiff * R + calm, `stiff` verdicts counted and the last `calm` < R
 * non-stiff ones in a row (R the key `reset`); a < 0, the implicit part
 * with -a - 1 non-stiff verdicts in a row. So the switch points are part
 * of every recorded state and a replayed step (the discrete adjoint)
 * takes the part the forward solve took, and the verdict is a function
 * of the step alone.
 * A recorded step's stages are its part's, followed by a block holding the
 * part (0 or 1) for its dense output.
 *
 * Both parts must have the same orders (the step-size controller is tuned
 * to one), an error estimate, dense output and a stiffness estimate; the
 * VJP of a step is its part's (the part's choice has no derivative). Not
 * done: OrdinaryDiffEq's step-size factor at a switch (the controller
 * starts from the step size the other part had).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

enum { NONSTIFF, STIFF };

typedef struct auto_work {
    nde_solver *part[2];
    double size;            /* the explicit part's stability size          */
    long to_stiff, to_nonstiff, reset;
    double threshold;
    int last;               /* the part of the last step taken, -1: none   */
    int stiff_first;        /* a solve starts with the implicit part       */
    double *mark[2];        /* n values of 0, n of 1: a step's part block  */
} auto_work;

static void auto_destroy(nde_solver *s)
{
    auto_work *w = s->work;

    if (w) {
        nde_solver_destroy(w->part[NONSTIFF]);
        nde_solver_destroy(w->part[STIFF]);
        free(w->mark[0]);
        free(w);
        s->work = NULL;
    }
}

/* The stability size a part's stiffness estimate is divided by: its
 * tableau's, 1 for one with ops (an implicit method has no bound). */
static double part_size(const nde_solver *p)
{
    return p->type->tableau ? p->type->tableau->stability_size : 1.0;
}

/* The part named by key `key` (default def), created for s->field. */
static int part_create(nde_solver *s, const char *key, const char *def,
                       nde_solver **out)
{
    const unsigned need = NDE_CAP_ADAPTIVE | NDE_CAP_DENSE |
                          NDE_CAP_STIFFNESS;
    const nde_plugin_info *info;
    const nde_solver_type *t;
    const char *name = def;
    int rc;

    if (s->section && (rc = nde_get_string(s->section, key, &name, s->ctx)))
        return rc;
    if (strcmp(name, s->type->info.name) == 0)
        return nde_section_error(s->section, key, s->ctx,
                                 "a part cannot be autoswitch itself");
    if ((rc = nde_plugin_find(s->ctx, NDE_KIND_SOLVER, name, &info)))
        return rc;
    t = (const nde_solver_type *)info;
    if ((info->provides & need) != need ||
        (info->provides & (NDE_CAP_SDE_ITO | NDE_CAP_SDE_STRATONOVICH)))
        return nde_section_error(s->section, key, s->ctx,
                                 "solver '%s' cannot be a part: a part "
                                 "solves ODEs with an error estimate, dense "
                                 "output and a stiffness estimate", name);
    if (t->order != s->type->order || t->error_order != s->type->error_order ||
        t->dense_order < s->type->dense_order)
        return nde_section_error(s->section, key, s->ctx,
                                 "solver '%s' has orders %d(%d) and dense "
                                 "order %d; the parts of autoswitch must be "
                                 "of order %d(%d) with dense order %d or "
                                 "more", name, t->order, t->error_order,
                                 t->dense_order, s->type->order,
                                 s->type->error_order,
                                 s->type->dense_order);
    return nde_solver_create_from(s->ctx, t, s->field, out);
}

static int auto_create(nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim;
    auto_work *w = calloc(1, sizeof *w);
    nde_solver *ns, *st;
    int rc;

    if (!w)
        return NDE_ENOMEM;
    s->work = w;
    w->last = -1;
    if ((rc = part_create(s, "nonstiff", "tsit5", &w->part[NONSTIFF])) ||
        (rc = part_create(s, "stiff", "rodas5p", &w->part[STIFF])))
        return rc;
    ns = w->part[NONSTIFF];
    st = w->part[STIFF];
    if (!ns->type->tableau || !ns->ops->derivative)
        return nde_section_error(s->section, "nonstiff", s->ctx,
                                 "solver '%s' is not an explicit "
                                 "Runge-Kutta tableau",
                                 ns->type->info.name);
    w->size = part_size(ns);
    w->to_stiff = 10;
    w->to_nonstiff = 3;
    w->reset = 6;
    w->threshold = 0.9;
    if (s->section &&
        ((rc = nde_get_long_min(s->section, "to_stiff", 0, &w->to_stiff,
                                s->ctx)) ||
         (rc = nde_get_long_min(s->section, "to_nonstiff", 0,
                                &w->to_nonstiff, s->ctx)) ||
         (rc = nde_get_long_min(s->section, "reset", 1, &w->reset,
                                s->ctx)) ||
         (rc = nde_get_double_in(s->section, "threshold", 0.0, 1, HUGE_VAL,
                                 1, &w->threshold, s->ctx)) ||
         (rc = nde_get_bool(s->section, "stiff_first", &w->stiff_first,
                            s->ctx))))
        return rc;
    /* the parts' stages, then the block that says which part took it */
    s->stages = (ns->stages > st->stages ? ns->stages : st->stages) + 1;
    if (!(w->mark[0] = calloc(2 * n, sizeof(double))))
        return NDE_ENOMEM;
    w->mark[1] = w->mark[0] + n;
    for (size_t m = 0; m < n; m++)
        w->mark[1][m] = 1.0;
    return NDE_OK;
}

/* The part (a) says runs, with the batch of s. */
static nde_solver *part_of(const nde_solver *s, int which)
{
    const auto_work *w = s->work;
    nde_solver *p = w->part[which];

    if (p->batch != s->batch)
        nde_solver_set_batch(p, s->batch);
    return p;
}

/* The part's counts move to s's. */
static void take_counts(nde_solver *s, nde_solver *p)
{
    s->counts.nfe += p->counts.nfe;
    s->counts.nvjp += p->counts.nvjp;
    p->counts.nfe = p->counts.nvjp = 0;
}

static int auto_start(nde_solver *s, const double *theta, double t0,
                      const double *y0, double *aux0)
{
    const auto_work *w = s->work;
    const size_t n = s->batch * s->field->dim;

    (void)theta; (void)t0; (void)y0;
    for (size_t m = 0; m < n; m++)
        aux0[m] = w->stiff_first ? -1.0 : 0.0;
    return NDE_OK;
}

/* The state after a step from state a whose verdict was `stiff`. */
static double next_state(const auto_work *w, double a, int stiff)
{
    if (a >= 0.0) {
        const double r = (double)w->reset, count = floor(a / r);
        const double calm = a - count * r;
        if (stiff)
            return count + 1.0 > (double)w->to_stiff ? -1.0
                                                       : (count + 1.0) * r;
        return calm + 1.0 >= r ? 0.0 : a + 1.0;
    }
    if (stiff)
        return -1.0;
    return -a > (double)w->to_nonstiff ? 0.0 : a - 1.0;
}

static int auto_step(nde_solver *s, const double *theta, double t, double h,
                     const double *dw, const double *y, const double *aux,
                     double *y_next, double *aux_next, double *err,
                     const nde_norm_spec *norm, double *eest)
{
    auto_work *w = s->work;
    const size_t n = s->batch * s->field->dim;
    const int which = aux[0] < 0.0 ? STIFF : NONSTIFF;
    nde_solver *p = part_of(s, which);
    double lambda = 0.0, next;
    int rc;

    (void)dw;
    /* The explicit part's FSAL stage is of its own last step, not of
     * this y when the other part ran since. */
    if (which != w->last && p->ops->invalidate)
        p->ops->invalidate(p);
    w->last = which;
    rc = p->ops->step(p, theta, t, h, NULL, y, NULL, y_next, NULL, err,
                      norm, eest);
    if (rc == NDE_OK)
        rc = p->ops->stiffness(p, y_next, &lambda);
    take_counts(s, p);
    if (rc != NDE_OK)
        return rc;
    lambda *= part_size(p);
    next = next_state(w, aux[0], lambda * fabs(h) / w->size > w->threshold);
    for (size_t m = 0; m < n; m++)
        aux_next[m] = next;
    return NDE_OK;
}

/* f(t, y), kept by the explicit part as its next first stage (the
 * driver's first-step guess asks for it). */
static int auto_derivative(nde_solver *s, const double *theta, double t,
                           const double *y, const double **f)
{
    auto_work *w = s->work;
    nde_solver *p = part_of(s, NONSTIFF);
    int rc;

    w->last = NONSTIFF;
    rc = p->ops->derivative(p, theta, t, y, f);
    take_counts(s, p);
    return rc;
}

static void auto_accept(nde_solver *s)
{
    auto_work *w = s->work;
    nde_solver *p = w->last >= 0 ? w->part[w->last] : NULL;

    if (p && p->ops->accept)
        p->ops->accept(p);
}

static void auto_invalidate(nde_solver *s)
{
    auto_work *w = s->work;

    for (int i = 0; i < 2; i++)
        if (w->part[i]->ops->invalidate)
            w->part[i]->ops->invalidate(w->part[i]);
}

/* A recorded step's part is in its last stage block; the last step
 * taken's is w->last. */
static int auto_dense(const nde_solver *s, const double *y, double h,
                      const double *const *k, double theta, double *out)
{
    const auto_work *w = s->work;
    const int which = k ? k[s->stages - 1][0] != 0.0 : w->last;
    nde_solver *p;

    if (which < 0)
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver 'autoswitch': dense output before a step");
    p = part_of(s, which);
    return p->ops->dense(p, y, h, k, theta, out);
}

static void auto_last_stages(const nde_solver *s, const double **k)
{
    const auto_work *w = s->work;
    const int which = w->last > 0;
    const nde_solver *p = w->part[which];

    p->ops->last_stages(p, k);
    for (int i = p->stages; i < s->stages; i++)
        k[i] = w->mark[which];
}

static int auto_step_vjp(nde_solver *s, const double *theta, double t,
                         double h, const double *dw, const double *y,
                         const double *aux, const nde_step_cotangent *ct,
                         double *ybar, double *auxbar, double *thetabar)
{
    const int which = aux[0] < 0.0 ? STIFF : NONSTIFF;
    nde_solver *p = part_of(s, which);
    nde_step_cotangent pc = *ct;
    int rc;

    (void)dw; (void)auxbar; /* the part's choice has no derivative */
    if (!p->ops->step_vjp)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver 'autoswitch': the step at t = %g was "
                         "taken by '%s', which has no step VJP (use the "
                         "interpolating or backsolve adjoint)", t,
                         p->type->info.name);
    pc.aux_next = NULL;
    rc = p->ops->step_vjp(p, theta, t, h, NULL, y, NULL, &pc, ybar, NULL,
                          thetabar);
    take_counts(s, p);
    return rc;
}

/* aux0 is a constant: nothing flows back. */
static int auto_start_vjp(nde_solver *s, const double *theta, double t0,
                          const double *y0, const double *auxbar0,
                          double *ybar0, double *thetabar)
{
    (void)s; (void)theta; (void)t0; (void)y0; (void)auxbar0; (void)ybar0;
    (void)thetabar;
    return NDE_OK;
}

static const nde_key auto_keys[] = {
    {"nonstiff", NDE_KEY_WORD, "tsit5",
     "the explicit part (an adaptive tableau with dense output and a "
     "stiffness estimate, of order 5(4))"},
    {"stiff", NDE_KEY_WORD, "rodas5p",
     "the implicit part (order 5(4), dense output, a stiffness estimate)"},
    {"to_stiff", NDE_KEY_INT, "10",
     "switch to the stiff part after more than this many stiff verdicts "
     "(counted until `reset` non-stiff ones in a row)"},
    {"reset", NDE_KEY_INT, "6",
     "this many non-stiff verdicts in a row clear the count of stiff ones "
     "(Hairer's DOPRI5: 6; 1: stiff verdicts in a row)"},
    {"to_nonstiff", NDE_KEY_INT, "3",
     "switch back after more than this many non-stiff verdicts in a row"},
    {"stiff_first", NDE_KEY_BOOL, "false",
     "start every solve with the stiff part"},
    {"threshold", NDE_KEY_DOUBLE, "0.9",
     "a step's verdict is stiff when lambda |h| / (the explicit part's "
     "stability size) exceeds this"},
    {NULL, 0, NULL, NULL}};

static const nde_solver_type autoswitch = {
    .info = NDE_SOLVER_INFO(
        .name = "autoswitch",
        .description = "tsit5 that hands over to rodas5p while the problem "
                       "is stiff and back when it is not (OrdinaryDiffEq's "
                       "AutoTsit5(Rodas5P())); the switch points are part "
                       "of the state, so every adjoint replays them",
        .keys = auto_keys,
        .provides = NDE_CAP_ADAPTIVE | NDE_CAP_DENSE | NDE_CAP_STEP_VJP |
                    NDE_CAP_FSAL,
        .version = "1"),
    .order = 5,
    .error_order = 4,
    .dense_order = 4,
    .ops = {.aux = 1,
            .stages = 2, /* create sets the parts' stages + 1 */
            .create = auto_create,
            .destroy = auto_destroy,
            .start = auto_start,
            .step = auto_step,
            .derivative = auto_derivative,
            .accept = auto_accept,
            .invalidate = auto_invalidate,
            .dense = auto_dense,
            .last_stages = auto_last_stages,
            .step_vjp = auto_step_vjp,
            .start_vjp = auto_start_vjp},
};

NDE_MODULE(&autoswitch.info);
