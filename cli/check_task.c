/*
 * check_task.c - the task suite of `nde check` (nde/task.h's contract).
 *
 * The task is created as the trainer creates it: its [data] section
 * checked against its keys and the built-in tasks' (nde_data_keys), the
 * model's [field] (without a plugin, a 2-8-2 tanh mlp) in its env, TASK_ROWS rows,
 * the seed of --seed. Nothing is solved: the ops are fed random saved
 * states. Over the batches of iterations 0 .. TASK_DRAWS-1, drawn as the
 * trainer draws them:
 * - the sizes create declares are ones its ops can honour, and each batch
 *   keeps within them (save times sorted from t0, the first fitted save,
 *   a finite input);
 * - determinism: a second instance from the same config and seed gives
 *   the same digest, initial parameters, batches, lift, observations,
 *   loss and cotangents, bit for bit.
 * At the last batch, with saved states y in [-1, 1) and the task's
 * parameters from init_params perturbed by up to 10 %:
 * - the loss cotangents the trainer hands the adjoint, dL/dy at the
 *   fitted saves (the readout's VJP of the loss's obsbar) and dL/dtheta,
 *   against fourth-order central differences of loss(readout(y, theta));
 *   the loss overwrites obsbar;
 * - readout_vjp and lift_vjp against differences of readout and lift,
 *   their outputs starting at non-zero values (a VJP must add).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "check.h"
#include "nde/train.h"

#define TASK_ROWS 3
#define TASK_DRAWS 3
#define FD_TOL 1e-6      /* VJPs against differences, relative      */

/* The model when [field] names no plugin (its keys may be given). */
static const char *const default_field[][2] = {
    {"plugin", "mlp"}, {"layers", "2, 8, 2"}, {"activation", "tanh"}};

/* The [data] sources of the first releases (and those a task serves
 * under another name) and the task each names. */
static const struct {
    const char *source, *task;
} legacy_sources[] = {{"spiral", "windows"}, {"field", "windows"},
                      {"field", "moments"},  {"csv", "series"},
                      {"idx", "classify"},   {"annuli", "points"}};
#define NLEGACY (sizeof legacy_sources / sizeof *legacy_sources)

enum { FN_LOSS, FN_READOUT, FN_LIFT };

typedef struct task_check {
    nde_ctx *ctx;
    nde_task *t, *t2;       /* the checked instance, its twin           */
    nde_task_batch b, b2;
    size_t P, ny, nobs, n0; /* parameters; y, obs of a batch; y0        */
    uint64_t rng;           /* the random points                        */
    double *mem;
    double *theta, *y, *obs, *obsbar, *scratch, *v, *v0, *y0;
    double *ybar, *ystart, *fdy, *thbar, *thstart, *fdth;
    double *obs2, *obsbar2, *y02, *theta2;
} task_check;

/* ---- composing the task -------------------------------------------------- */

static int default_model(nde_config *cfg, nde_ctx *ctx)
{
    nde_section *sec = nde_config_section(cfg, "field");
    char text[128];
    int rc;

    if (sec && nde_section_has(sec, "plugin"))
        return NDE_OK;
    for (size_t i = 0; i < sizeof default_field / sizeof *default_field;
         i++) {
        if (sec && nde_section_has(sec, default_field[i][0]))
            continue;
        snprintf(text, sizeof text, "[field]\n%s = %s\n",
                 default_field[i][0], default_field[i][1]);
        if ((rc = nde_config_load_string(cfg, "nde check's model", text,
                                         ctx)) != NDE_OK)
            return rc;
    }
    return NDE_OK;
}

/* [data] source: a config's must name the task (itself or a source of
 * the first releases that does); without one, the first such source. */
static int prepare_data(nde_config *cfg, const char *name, nde_ctx *ctx)
{
    nde_section *dsec = nde_config_section(cfg, "data");
    const char *source = name;
    char text[160];
    size_t i;
    int rc;

    if (dsec && nde_section_has(dsec, "source")) {
        if ((rc = nde_get_string(dsec, "source", &source, ctx)) != NDE_OK)
            return rc;
        if (strcmp(source, name) == 0)
            return NDE_OK;
        for (i = 0; i < NLEGACY; i++)
            if (strcmp(legacy_sources[i].source, source) == 0 &&
                strcmp(legacy_sources[i].task, name) == 0)
                return NDE_OK;
        return nde_section_error(dsec, "source", ctx, "'%s' is not a "
                                 "source of task '%s'", source, name);
    }
    for (i = 0; i < NLEGACY; i++)
        if (strcmp(legacy_sources[i].task, name) == 0) {
            source = legacy_sources[i].source;
            break;
        }
    snprintf(text, sizeof text, "[data]\nsource = %s\n", source);
    return nde_config_load_string(cfg, "nde check", text, ctx);
}

/* The plugin, its ops and its [data] keys, as the trainer checks them;
 * *ops_ok = 0 when it lacks an op (a failed check, not a usage error). */
static int find_type(nde_config *cfg, const char *name, nde_ctx *ctx,
                     const nde_task_type **out, int *ops_ok)
{
    nde_section *dsec = nde_config_section(cfg, "data");
    const nde_plugin_info *info;
    const nde_task_type *type;
    int rc;

    if ((rc = nde_plugin_find(ctx, NDE_KIND_TASK, name, &info)) != NDE_OK)
        return rc;
    *out = type = (const nde_task_type *)info;
    if ((rc = nde_data_section_check(dsec, type, ctx)) != NDE_OK)
        return rc;
    *ops_ok = type->create && type->destroy && type->batch && type->loss &&
              type->evaluate && !type->lift == !type->lift_vjp &&
              !type->readout == !type->readout_vjp;
    return NDE_OK;
}

static void task_free(nde_task *t)
{
    if (t) {
        t->type->destroy(t);
        free(t);
    }
}

static int task_new(const nde_task_type *type, nde_section *dsec,
                    const nde_task_env *env, size_t dim, nde_ctx *ctx,
                    nde_task **out)
{
    nde_task *t;

    if (!(t = *out = calloc(1, sizeof *t)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    t->type = type;
    t->ctx = ctx;
    t->dim = dim;
    t->rows = TASK_ROWS;
    return type->create(t, dsec, env, ctx);
}

/* The sizes the trainer refuses (train/train.c's create_task). */
static size_t bad_sizes(const nde_task *t)
{
    const nde_task_type *tt = t->type;
    return (size_t)(t->nparams && (!tt->init_params || !tt->param_name)) +
           (t->max_saves == 0) + (t->max_rows < t->rows) +
           (t->input_dim == 0) + (t->obs_dim == 0) +
           (!tt->lift && t->input_dim != t->dim) +
           (!tt->readout && t->obs_dim != t->dim);
}

static double *carve(double **cursor, size_t n)
{
    double *p = *cursor;
    *cursor += n + 1; /* +1: none is empty */
    return p;
}

static int alloc_buffers(task_check *c)
{
    const nde_task *t = c->t;
    const size_t P = t->nparams, ny = t->max_saves * t->rows * t->dim;
    const size_t nobs = t->max_saves * t->rows * t->obs_dim;
    const size_t n0 = t->rows * t->dim;
    double *cur;

    /* 4 arrays of ny values, 6 of nobs, 3 of n0, 5 of P */
    if (!(c->mem = calloc(4 * (ny + 1) + 6 * (nobs + 1) + 3 * (n0 + 1) +
                              5 * (P + 1),
                          sizeof *c->mem)))
        return nde_error(c->ctx, NDE_ENOMEM, "out of memory");
    cur = c->mem;
    c->y = carve(&cur, ny);
    c->ybar = carve(&cur, ny);
    c->ystart = carve(&cur, ny);
    c->fdy = carve(&cur, ny);
    c->obs = carve(&cur, nobs);
    c->obsbar = carve(&cur, nobs);
    c->scratch = carve(&cur, nobs);
    c->v = carve(&cur, nobs);
    c->obs2 = carve(&cur, nobs);
    c->obsbar2 = carve(&cur, nobs);
    c->v0 = carve(&cur, n0);
    c->y0 = carve(&cur, n0);
    c->y02 = carve(&cur, n0);
    c->theta = carve(&cur, P);
    c->theta2 = carve(&cur, P);
    c->thbar = carve(&cur, P);
    c->thstart = carve(&cur, P);
    c->fdth = carve(&cur, P);
    c->P = P;
    c->n0 = n0;
    return NDE_OK;
}

/* ---- the ops as the trainer calls them ----------------------------------- */

/* obs = readout(y), or y itself without a readout. */
static int observe(nde_task *t, const nde_task_batch *b, const double *theta,
                   const double *y, double *obs, size_t nobs)
{
    if (t->type->readout)
        return t->type->readout(t, theta, b, y, obs);
    memcpy(obs, y, nobs * sizeof *obs);
    return NDE_OK;
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* The scalar whose derivatives a check compares with the VJPs. */
static int scalar(task_check *c, int fn, double *out)
{
    nde_task *t = c->t;
    int rc;

    switch (fn) {
    case FN_LOSS:
        if ((rc = observe(t, &c->b, c->theta, c->y, c->obs, c->nobs)))
            return rc;
        return t->type->loss(t, &c->b, c->obs, out, c->scratch);
    case FN_READOUT:
        rc = t->type->readout(t, c->theta, &c->b, c->y, c->obs);
        *out = dot(c->v, c->obs, c->nobs);
        return rc;
    default:
        rc = t->type->lift(t, c->theta, &c->b, c->y0);
        *out = dot(c->v0, c->y0, c->n0);
        return rc;
    }
}

typedef struct scalar_of {
    task_check *c;
    int fn;
} scalar_of;

static int scalar_at(void *user, double *v)
{
    scalar_of *s = user;
    return scalar(s->c, s->fn, v);
}

/* fd[i] = d scalar / dx[i] for i in [from, to) (x is c->y or c->theta). */
static int differences(task_check *c, int fn, double *x, size_t from,
                       size_t to, double *fd)
{
    scalar_of s = {c, fn};
    int rc = NDE_OK;

    for (size_t i = from; i < to && rc == NDE_OK; i++)
        rc = check_difference(x, i, scalar_at, &s, &fd[i]);
    return rc;
}

static void fill(task_check *c, double *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = check_uniform(&c->rng, lo, hi);
}

/* ---- the checks ---------------------------------------------------------- */

static size_t bits_differ(const void *a, const void *b, size_t n)
{
    return a && b ? (size_t)(memcmp(a, b, n) != 0) : (size_t)(a != b);
}

/* 1 when batch b is outside the task's declared sizes. */
static int bad_batch(const nde_task *t, const nde_task_batch *b)
{
    const size_t n = t->rows * t->input_dim;
    double dir;

    if (b->nsave == 0 || b->nsave > t->max_saves || b->first_ct > b->nsave ||
        !b->tsave || !b->input || !isfinite(b->t0))
        return 1;
    dir = b->tsave[b->nsave - 1] - b->t0;
    if (!(dir != 0.0) || !isfinite(dir))
        return 1;
    for (size_t k = 0; k < b->nsave; k++)
        if (!isfinite(b->tsave[k]) || (b->tsave[k] - b->t0) * dir < 0 ||
            (k > 0 && (b->tsave[k] - b->tsave[k - 1]) * dir < 0))
            return 1;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(b->input[i]))
            return 1;
    return 0;
}

/* Lift, observations, loss and cotangents of both instances at the same
 * random point; the values differing. */
static int twin_outputs(task_check *c, size_t *differ)
{
    const nde_task_type *tt = c->t->type;
    double loss, loss2;
    int rc;

    fill(c, c->y, c->ny, -1.0, 1.0);
    if (tt->lift &&
        ((rc = tt->lift(c->t, c->theta, &c->b, c->y0)) ||
         (rc = tt->lift(c->t2, c->theta2, &c->b2, c->y02))))
        return rc;
    if ((rc = observe(c->t, &c->b, c->theta, c->y, c->obs, c->nobs)) ||
        (rc = observe(c->t2, &c->b2, c->theta2, c->y, c->obs2, c->nobs)) ||
        (rc = tt->loss(c->t, &c->b, c->obs, &loss, c->obsbar)) ||
        (rc = tt->loss(c->t2, &c->b2, c->obs2, &loss2, c->obsbar2)))
        return rc;
    for (size_t i = 0; i < c->nobs; i++)
        *differ += bits_differ(&c->obs[i], &c->obs2[i], sizeof(double)) +
                   bits_differ(&c->obsbar[i], &c->obsbar2[i], sizeof(double));
    for (size_t i = 0; tt->lift && i < c->n0; i++)
        *differ += bits_differ(&c->y0[i], &c->y02[i], sizeof(double));
    *differ += bits_differ(&loss, &loss2, sizeof loss);
    return NDE_OK;
}

/* The batches of iterations 0 .. TASK_DRAWS-1 of both instances, each
 * from its own stream seeded as the trainer seeds it. */
static int draw_batches(task_check *c, uint64_t seed, check_report *r,
                        size_t *bad)
{
    const uint64_t bseed = nde_seed_derive(seed, NDE_STREAM_BATCHES);
    const nde_task *t = c->t;
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng *g2 = gsl_rng_alloc(gsl_rng_mt19937);
    size_t differ = 0;
    int rc = NDE_OK;

    *bad = 0;
    if (!g || !g2) {
        rc = nde_error(c->ctx, NDE_ENOMEM, "out of memory");
        goto done;
    }
    gsl_rng_set(g, bseed);
    gsl_rng_set(g2, bseed);
    for (long it = 0; it < TASK_DRAWS; it++) {
        const nde_task_draw d = {it, bseed, g}, d2 = {it, bseed, g2};
        const nde_task_batch *b = &c->b, *b2 = &c->b2;
        memset(&c->b, 0, sizeof c->b);
        memset(&c->b2, 0, sizeof c->b2);
        if ((rc = t->type->batch(c->t, &d, &c->b)) ||
            (rc = t->type->batch(c->t2, &d2, &c->b2)))
            goto done;
        if (bad_batch(t, b)) {
            *bad = 1;
            break; /* its arrays may not be read */
        }
        c->ny = b->nsave * t->rows * t->dim;
        c->nobs = b->nsave * t->rows * t->obs_dim;
        differ += bits_differ(&b->t0, &b2->t0, sizeof b->t0) +
                  (b->nsave != b2->nsave) + (b->first_ct != b2->first_ct);
        if (b->nsave != b2->nsave)
            continue;
        differ += bits_differ(b->tsave, b2->tsave,
                              b->nsave * sizeof *b->tsave) +
                  bits_differ(b->input, b2->input,
                              t->rows * t->input_dim * sizeof *b->input);
        if ((rc = twin_outputs(c, &differ)) != NDE_OK)
            goto done;
    }
    if (t->type->digest)
        differ += t->type->digest(c->t) != t->type->digest(c->t2);
    if (c->P)
        differ += bits_differ(c->theta, c->theta2, c->P * sizeof *c->theta);
    check_line(r, "batches within the declared sizes (bad ones)",
               (double)*bad, 0.0);
    if (!*bad)
        check_line(r, "deterministic (values differing)", (double)differ,
                   0.0);
done:
    if (g)
        gsl_rng_free(g);
    if (g2)
        gsl_rng_free(g2);
    return rc;
}

/* The loss's cotangents as the trainer hands them on: dL/dy (through the
 * readout's VJP) at the fitted saves, dL/dtheta through the readout. */
static int check_loss(task_check *c, check_report *r)
{
    const nde_task_type *tt = c->t->type;
    const size_t from = c->b.first_ct * c->t->rows * c->t->dim;
    double value, again;
    size_t differ = 0;
    int rc;

    fill(c, c->y, c->ny, -1.0, 1.0);
    if ((rc = observe(c->t, &c->b, c->theta, c->y, c->obs, c->nobs)) ||
        (rc = tt->loss(c->t, &c->b, c->obs, &value, c->obsbar)))
        return rc;
    check_line(r, "loss finite", isfinite(value) ? 0.0 : 1.0, 0.0);
    /* obsbar is overwritten: from a non-zero start, the same values */
    fill(c, c->obsbar2, c->nobs, 1e3, 2e3);
    if ((rc = tt->loss(c->t, &c->b, c->obs, &again, c->obsbar2)))
        return rc;
    for (size_t i = 0; i < c->nobs; i++)
        differ += bits_differ(&c->obsbar[i], &c->obsbar2[i], sizeof(double));
    check_line(r, "loss obsbar overwritten (values differing)",
               (double)differ, 0.0);

    memset(c->ybar, 0, c->ny * sizeof *c->ybar);
    memset(c->thbar, 0, c->P * sizeof *c->thbar);
    if (tt->readout)
        rc = tt->readout_vjp(c->t, c->theta, &c->b, c->y, c->obsbar,
                             c->ybar, c->thbar);
    else
        memcpy(c->ybar, c->obsbar, c->ny * sizeof *c->ybar);
    if (rc || (rc = differences(c, FN_LOSS, c->y, from, c->ny, c->fdy)))
        return rc;
    if (from > 0)
        check_note(r, "saves before first_ct (%zu) not compared: the trainer "
                   "hands the adjoint no cotangent there", c->b.first_ct);
    check_line(r, "loss dL/dy vs differences",
               check_rel_error(c->ybar + from, c->fdy + from, c->ny - from),
               FD_TOL);
    if (c->P && tt->readout) {
        if ((rc = differences(c, FN_LOSS, c->theta, 0, c->P, c->fdth)))
            return rc;
        check_line(r, "loss dL/dtheta vs differences",
                   check_rel_error(c->thbar, c->fdth, c->P), FD_TOL);
    }
    return NDE_OK;
}

/* readout_vjp into outputs that start non-zero: out - start must be
 * v^T d readout / d(y, theta). */
static int check_readout(task_check *c, check_report *r)
{
    const nde_task_type *tt = c->t->type;
    int rc;

    fill(c, c->y, c->ny, -1.0, 1.0);
    fill(c, c->v, c->nobs, -1.0, 1.0);
    fill(c, c->ystart, c->ny, 0.5, 1.5);
    fill(c, c->thstart, c->P, 0.5, 1.5);
    memcpy(c->ybar, c->ystart, c->ny * sizeof *c->ybar);
    memcpy(c->thbar, c->thstart, c->P * sizeof *c->thbar);
    if ((rc = tt->readout_vjp(c->t, c->theta, &c->b, c->y, c->v, c->ybar,
                              c->thbar)) ||
        (rc = differences(c, FN_READOUT, c->y, 0, c->ny, c->fdy)) ||
        (rc = differences(c, FN_READOUT, c->theta, 0, c->P, c->fdth)))
        return rc;
    for (size_t i = 0; i < c->ny; i++)
        c->ybar[i] -= c->ystart[i];
    for (size_t i = 0; i < c->P; i++)
        c->thbar[i] -= c->thstart[i];
    check_line(r, "readout vjp y accumulated vs differences",
               check_rel_error(c->ybar, c->fdy, c->ny), FD_TOL);
    if (c->P)
        check_line(r, "readout vjp theta accumulated vs differences",
                   check_rel_error(c->thbar, c->fdth, c->P), FD_TOL);
    return NDE_OK;
}

static int check_lift(task_check *c, check_report *r)
{
    int rc;

    fill(c, c->v0, c->n0, -1.0, 1.0);
    fill(c, c->thstart, c->P, 0.5, 1.5);
    memcpy(c->thbar, c->thstart, c->P * sizeof *c->thbar);
    if ((rc = c->t->type->lift_vjp(c->t, c->theta, &c->b, c->v0,
                                   c->thbar)) ||
        (rc = differences(c, FN_LIFT, c->theta, 0, c->P, c->fdth)))
        return rc;
    for (size_t i = 0; i < c->P; i++)
        c->thbar[i] -= c->thstart[i];
    check_line(r, "lift vjp theta accumulated vs differences",
               check_rel_error(c->thbar, c->fdth, c->P), FD_TOL);
    return NDE_OK;
}

/* Parameters of both instances (the same seed), the checked point's
 * perturbed by up to 10 %. */
static int init_params(task_check *c, uint64_t seed)
{
    const uint64_t s = nde_seed_derive(nde_seed_derive(seed,
                                                       NDE_STREAM_INIT), 1);
    int rc;

    if (!c->P)
        return NDE_OK;
    if ((rc = c->t->type->init_params(c->t, c->theta, s)) ||
        (rc = c->t->type->init_params(c->t2, c->theta2, s)))
        return rc;
    return NDE_OK;
}

static void perturb(task_check *c)
{
    for (size_t i = 0; i < c->P; i++) {
        double u = check_uniform(&c->rng, -0.1, 0.1);
        c->theta[i] = c->theta[i] != 0.0 ? c->theta[i] * (1.0 + u) : u;
    }
}

/* The checks after composition; a call that fails ends them with a FAIL
 * line naming it. */
static void run(task_check *c, uint64_t seed, check_report *r)
{
    const nde_task_type *tt = c->t->type;
    const char *step = "init_params";
    size_t bad;
    int rc;

    if ((rc = init_params(c, seed)) != NDE_OK)
        goto fail;
    step = "batch";
    if ((rc = draw_batches(c, seed, r, &bad)) != NDE_OK)
        goto fail;
    if (bad)
        return;
    check_note(r, "at the batch of iteration %d (%zu saves): random saved "
               "states in [-1, 1), the task's parameters perturbed",
               TASK_DRAWS - 1, c->b.nsave);
    perturb(c);
    step = "loss";
    if ((rc = check_loss(c, r)) != NDE_OK)
        goto fail;
    step = "readout";
    if (!tt->readout)
        check_note(r, "no readout: the observations are the saved states");
    else if ((rc = check_readout(c, r)) != NDE_OK)
        goto fail;
    step = "lift";
    if (!tt->lift)
        check_note(r, "no lift: the batch's input rows are the initial "
                   "states");
    else if (!c->P)
        check_note(r, "the lift has no parameters to differentiate");
    else if ((rc = check_lift(c, r)) != NDE_OK)
        goto fail;
    return;
fail:
    check_cannot(r, step, c->ctx, rc);
}

int check_task(nde_ctx *ctx, nde_config *cfg, const char *name,
               uint64_t seed, check_report *r)
{
    const nde_task_type *type = NULL;
    nde_field *f = NULL;
    nde_task_env env;
    task_check c;
    int rc, ops_ok = 0;

    memset(&c, 0, sizeof c);
    c.ctx = ctx;
    c.rng = seed;
    if ((rc = default_model(cfg, ctx)) ||
        (rc = prepare_data(cfg, name, ctx)) ||
        (rc = find_type(cfg, name, ctx, &type, &ops_ok)) ||
        (rc = nde_field_create(ctx, cfg, "field", TASK_ROWS, &f)))
        goto done;
    check_plugin(r, ctx, &type->info);
    if (!ops_ok) {
        rc = nde_error(ctx, NDE_EPLUGIN, "task plugin '%s' lacks one of "
                       "create, destroy, batch, loss, evaluate, or has a "
                       "lift or readout without its VJP", name);
        check_cannot(r, "ops", ctx, rc);
        rc = NDE_OK;
        goto done;
    }
    env.cfg = cfg;
    env.field = f;
    env.seed = seed;
    if ((rc = task_new(type, nde_config_section(cfg, "data"), &env, f->dim,
                       ctx, &c.t)) ||
        (rc = task_new(type, nde_config_section(cfg, "data"), &env, f->dim,
                       ctx, &c.t2)))
        goto done;
    check_note(r, "model: [field] %s (%zu states%s), batch of %d rows, "
               "seed %llu", f->type->info.name, f->dim,
               f->noise == NDE_NOISE_NONE ? "" : ", an SDE", TASK_ROWS,
               (unsigned long long)seed);
    check_note(r, "task: %zu parameters, input_dim %zu, obs_dim %zu, "
               "max_saves %zu, max_rows %zu", c.t->nparams, c.t->input_dim,
               c.t->obs_dim, c.t->max_saves, c.t->max_rows);
    check_line(r, "sizes its ops can honour (bad ones)",
               (double)bad_sizes(c.t), 0.0);
    if (bad_sizes(c.t) == 0 && (rc = alloc_buffers(&c)) == NDE_OK)
        run(&c, seed, r);
done:
    free(c.mem);
    task_free(c.t2);
    task_free(c.t);
    nde_field_destroy(f);
    return rc;
}
