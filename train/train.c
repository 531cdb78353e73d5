/*
 * The trainer: one loop over a task (nde/task.h): draw a batch, lift it to
 * the initial states, one batched forward solve, readout, the task's loss
 * and its cotangents, the regularizers, one adjoint pass, the optimizer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gsl/gsl_rng.h>

#include "train_internal.h"

const nde_key nde_train_keys[] = {
    {"iterations", NDE_KEY_INT, "2000", "total training iterations"},
    {"batch_size", NDE_KEY_INT, "20", "rows (windows) per mini-batch"},
    {"lr", NDE_KEY_DOUBLE, "1e-3", "learning rate (Adam or Adadelta)"},
    {"seed", NDE_KEY_INT, "1",
     "seed of every random stream (batches, initialisation, noise)"},
    {"eval_every", NDE_KEY_INT, "100",
     "evaluate on the held-out set every this many iterations (0 = only at "
     "the end)"},
    {"checkpoint", NDE_KEY_TEXT, "", "checkpoint file (none if absent)"},
    {"checkpoint_every", NDE_KEY_INT, "500",
     "write the checkpoint every this many iterations (0 = only at the "
     "end)"},
    {"metrics", NDE_KEY_TEXT, "",
     "metrics file: one JSON object per iteration (none if absent)"},
    {"lr_decay", NDE_KEY_DOUBLE, "1",
     "learning rate of iteration i (from 0) is lr * lr_decay^i"},
    {"beta1", NDE_KEY_DOUBLE, "0.9", "Adam first-moment decay"},
    {"beta2", NDE_KEY_DOUBLE, "0.999", "Adam second-moment decay"},
    {"eps", NDE_KEY_DOUBLE, "1e-8",
     "denominator guard (Adam; Adadelta: in both square roots)"},
    {"weight_decay", NDE_KEY_DOUBLE, "0",
     "L2 penalty added to the gradient (as torch.optim.Adam)"},
    {"clip", NDE_KEY_DOUBLE, "0",
     "clip the gradient's Euclidean norm to this (0 = off)"},
    {"on_failure", NDE_KEY_WORD, "stop",
     "a failed iteration (step size underflow, maximum steps, a non-finite "
     "value): stop (the run ends), skip (its batch is dropped, the run "
     "goes on) or backoff (skip, and halve the learning rate); the "
     "parameters stay those of the last good iteration"},
    {"max_failures", NDE_KEY_INT, "10",
     "skip, backoff: the failed iterations absorbed before the run stops"},
    {"shards", NDE_KEY_INT, "1",
     "solve the batch as this many shards of consecutive rows, each its own "
     "solve, their gradients summed in order: the unit `mpirun -n K nde "
     "train` shares between K <= shards ranks (the same bits for any K)"},
    {"data_changed", NDE_KEY_WORD, "warn",
     "on --resume, data that differ from the checkpoint's (by digest): "
     "warn | refuse"},
    {"adversary", NDE_KEY_WORDS, "",
     "PREFIX[, PREFIX...]: parameters whose names start with one of these "
     "(e.g. disc. for an SDE-GAN's discriminator) are an adversary's: "
     "their gradient is negated before the optimizer step, so they ascend "
     "the loss the others descend"},
    {"adversary_lr", NDE_KEY_DOUBLE, "",
     "the adversary's learning rate (default: lr), decayed as lr is"},
    {"adversary_clip", NDE_KEY_WORD, "none",
     "none, layer or a value: after each step the adversary's weight "
     "matrices (parameters named ...W<k>[i,j]) are clamped to +-1/(the "
     "matrix's output count) with layer (the WGAN weight clipping of "
     "torchsde's sde_gan example), or to +-value; biases are left alone"},
    {"optimizer", NDE_KEY_WORD, "adam",
     "adam (lr, beta1, beta2, eps) or adadelta (Zeiler 2012 as "
     "torch.optim.Adadelta: lr (torch's default 1), rho, eps (torch's "
     "default 1e-6)), both with weight_decay, lr_decay and the adversary's "
     "rate"},
    {"rho", NDE_KEY_DOUBLE, "0.9",
     "adadelta: the decay of its running means of squared gradients and "
     "steps"},
    {"average_from", NDE_KEY_INT, "0",
     "> 0: from this iteration on, the model is the running mean of the "
     "parameters after each iteration (stochastic weight averaging, "
     "Izmailov et al. 2018), which evaluations, predictions, nde params "
     "and checkpoints' users see; training steps the parameters as "
     "before; 0 = off"},
    {"loss", NDE_KEY_WORD, "auto",
     "time series: mse | moments (mean and variance of the batch's paths "
     "against the data's, SDE fields only); auto = mse for ODE fields, "
     "moments for SDE fields"},
    {NULL, 0, NULL, NULL}};

/* [data]: source, and the keys of the built-in tasks' sources, accepted
 * under any source as the first releases did; their defaults and meaning
 * are the task's (`nde plugins task`). */
const nde_key nde_data_keys[] = {
    {"source", NDE_KEY_WORD, NULL,
     "where the data come from: spiral | field | csv | idx, or a task "
     "plugin's name"},
    {"npoints", NDE_KEY_INT, "", "windows, moments"},
    {"t1", NDE_KEY_DOUBLE, "", "windows, moments"},
    {"batch_time", NDE_KEY_INT, "", "windows"},
    {"noise", NDE_KEY_DOUBLE, "", "windows"},
    {"y0", NDE_KEY_DOUBLES, "", "windows, moments"},
    {"system", NDE_KEY_WORD, "", "windows, moments"},
    {"true_params", NDE_KEY_ASSIGNS, "", "windows, moments"},
    {"truth_solver", NDE_KEY_WORD, "", "windows"},
    {"path", NDE_KEY_TEXT, "", "series"},
    {"test_fraction", NDE_KEY_DOUBLE, "", "series"},
    {"images", NDE_KEY_TEXT, "", "classify"},
    {"labels", NDE_KEY_TEXT, "", "classify"},
    {"test_images", NDE_KEY_TEXT, "", "classify"},
    {"test_labels", NDE_KEY_TEXT, "", "classify"},
    {"limit", NDE_KEY_INT, "", "classify"},
    {"test_limit", NDE_KEY_INT, "", "classify"},
    {"paths", NDE_KEY_INT, "", "moments"},
    {"dt", NDE_KEY_DOUBLE, "", "moments"},
    {"seed", NDE_KEY_INT, "", "moments"},
    {"eval_paths", NDE_KEY_INT, "", "moments"},
    {NULL, 0, NULL, NULL}};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}


/* ---- settings ----------------------------------------------------------- */

static int optional_text(const nde_section *sec, const char *key,
                         const char **out, nde_ctx *ctx)
{
    *out = NULL;
    if (!nde_section_has(sec, key))
        return NDE_OK;
    int rc = nde_get_string(sec, key, out, ctx);
    if (rc == NDE_OK && **out == '\0')
        *out = NULL;
    return rc;
}

/* optimizer and its keys: a key of the other optimizer set explicitly is
 * refused, so it cannot be set for nothing. */
static int read_optimizer(nde_train_settings *s, nde_section *sec,
                          nde_ctx *ctx)
{
    static const char *const adam_only[] = {"beta1", "beta2"};
    const char *name;
    int rc;

    if ((rc = nde_get_string(sec, "optimizer", &name, ctx)) ||
        (rc = nde_get_double_in(sec, "rho", 0, 0, 1, 1, &s->rho, ctx)))
        return rc;
    if (strcmp(name, "adam") == 0) {
        s->optimizer = NDE_OPTIMIZER_ADAM;
        if (nde_section_has(sec, "rho"))
            return nde_section_error(sec, "rho", ctx,
                                     "belongs to optimizer = adadelta, "
                                     "not adam");
    } else if (strcmp(name, "adadelta") == 0) {
        s->optimizer = NDE_OPTIMIZER_ADADELTA;
        for (size_t i = 0; i < sizeof adam_only / sizeof *adam_only; i++)
            if (nde_section_has(sec, adam_only[i]))
                return nde_section_error(sec, adam_only[i], ctx,
                                         "belongs to optimizer = adam, "
                                         "not adadelta");
    } else {
        return nde_section_error(sec, "optimizer", ctx,
                                 "'%s': expected adam or adadelta", name);
    }
    return NDE_OK;
}

/* adversary_lr and adversary_clip (the adversary's prefixes are read
 * with the parameters' names, adversary_flags). */
static int read_adversary(nde_train_settings *s, nde_section *sec,
                          nde_ctx *ctx)
{
    const char *clip;
    char *end;
    int rc;

    s->adversary_lr = s->lr;
    if (nde_section_has(sec, "adversary_lr") &&
        (rc = nde_get_double_in(sec, "adversary_lr", 0, 1, HUGE_VAL, 0,
                                &s->adversary_lr, ctx)))
        return rc;
    if ((rc = nde_get_string(sec, "adversary_clip", &clip, ctx)))
        return rc;
    if (strcmp(clip, "none") == 0) {
        s->adversary_clip = 0.0;
    } else if (strcmp(clip, "layer") == 0) {
        s->adversary_clip = -1.0;
    } else {
        s->adversary_clip = strtod(clip, &end);
        if (end == clip || *end || !(s->adversary_clip > 0) ||
            !isfinite(s->adversary_clip))
            return nde_section_error(sec, "adversary_clip", ctx,
                                     "'%s': expected none, layer or a "
                                     "positive value", clip);
    }
    return NDE_OK;
}

static int read_settings(nde_train_settings *s, nde_section *sec,
                         nde_ctx *ctx)
{
    const nde_key *const tables[] = {nde_train_keys, NULL};
    const char *changed, *failure;
    long seed;
    int rc;

    if ((rc = nde_section_check(sec, tables, ctx)) != NDE_OK ||
        (rc = nde_get_long_min(sec, "iterations", 0, &s->iterations,
                               ctx)) ||
        (rc = nde_get_long_min(sec, "batch_size", 1, &s->batch_size,
                               ctx)) ||
        (rc = nde_get_long_min(sec, "eval_every", 0, &s->eval_every,
                               ctx)) ||
        (rc = nde_get_long_min(sec, "checkpoint_every", 0,
                               &s->checkpoint_every, ctx)) ||
        (rc = nde_get_long_min(sec, "seed", 0, &seed, ctx)) ||
        (rc = nde_get_double_in(sec, "lr", 0, 1, HUGE_VAL, 0, &s->lr,
                                ctx)) ||
        (rc = nde_get_double_in(sec, "lr_decay", 0, 1, 1, 0, &s->lr_decay,
                                ctx)) ||
        (rc = nde_get_double_in(sec, "beta1", 0, 0, 1, 1, &s->beta1,
                                ctx)) ||
        (rc = nde_get_double_in(sec, "beta2", 0, 0, 1, 1, &s->beta2,
                                ctx)) ||
        (rc = nde_get_double_in(sec, "eps", 0, 1, HUGE_VAL, 0, &s->eps,
                                ctx)) ||
        (rc = nde_get_double_in(sec, "weight_decay", 0, 0, HUGE_VAL, 0,
                                &s->weight_decay, ctx)) ||
        (rc = nde_get_double_in(sec, "clip", 0, 0, HUGE_VAL, 0, &s->clip,
                                ctx)) ||
        (rc = optional_text(sec, "checkpoint", &s->checkpoint, ctx)) ||
        (rc = optional_text(sec, "metrics", &s->metrics, ctx)) ||
        (rc = nde_get_string(sec, "data_changed", &changed, ctx)) ||
        (rc = nde_get_string(sec, "on_failure", &failure, ctx)) ||
        (rc = nde_get_long_min(sec, "max_failures", 0, &s->max_failures,
                               ctx)) ||
        (rc = nde_get_long_min(sec, "average_from", 0, &s->average_from,
                               ctx)))
        return rc;
    if ((rc = read_adversary(s, sec, ctx)) ||
        (rc = read_optimizer(s, sec, ctx)))
        return rc;
    if (strcmp(failure, "stop") == 0)
        s->on_failure = NDE_ON_FAILURE_STOP;
    else if (strcmp(failure, "skip") == 0)
        s->on_failure = NDE_ON_FAILURE_SKIP;
    else if (strcmp(failure, "backoff") == 0)
        s->on_failure = NDE_ON_FAILURE_BACKOFF;
    else
        return nde_section_error(sec, "on_failure", ctx,
                                 "'%s': expected stop, skip or backoff",
                                 failure);
    if (strcmp(changed, "warn") != 0 && strcmp(changed, "refuse") != 0)
        return nde_section_error(sec, "data_changed", ctx,
                                 "'%s' is neither warn nor refuse", changed);
    s->refuse_changed_data = strcmp(changed, "refuse") == 0;
    s->seed = (uint64_t)seed;
    return NDE_OK;
}


/* ---- SDE fields: moments of sample paths --------------------------------- */

double nde_moments_loss(const double *y, size_t nsave, size_t B, size_t dim,
                        const double *M, const double *V, double *g,
                        double *mean, double *var)
{
    const double count = (double)(nsave * dim);
    double sum = 0.0;
    size_t k, b, d;

    if (B < 2 || nsave == 0 || dim == 0)
        return NAN;
    for (k = 0; k < nsave; k++)
        for (d = 0; d < dim; d++) {
            const double *yk = y + k * B * dim + d;
            double m = 0.0, v = 0.0, em, ev;
            for (b = 0; b < B; b++)
                m += yk[b * dim];
            m /= (double)B;
            for (b = 0; b < B; b++)
                v += (yk[b * dim] - m) * (yk[b * dim] - m);
            v /= (double)(B - 1);
            em = m - M[k * dim + d];
            ev = v - V[k * dim + d];
            sum += em * em + ev * ev;
            if (mean)
                mean[k * dim + d] = m;
            if (var)
                var[k * dim + d] = v;
            if (!g)
                continue;
            /* dm/dy_b = 1/B; dv/dy_b = 2 (y_b - m) / (B - 1) (the terms
             * through m cancel: the deviations sum to zero) */
            for (b = 0; b < B; b++)
                g[(k * B + b) * dim + d] =
                    (2.0 * em / (double)B +
                     4.0 * ev * (yk[b * dim] - m) / (double)(B - 1)) /
                    count;
        }
    return sum / count;
}

/* The Brownian path of a training iteration, and the evaluation's. */
static uint64_t brownian_seed(const nde_trainer *tr, uint64_t i)
{
    return nde_seed_derive(nde_seed_derive(tr->set.seed, NDE_STREAM_BROWNIAN),
                           i);
}
#define EVAL_PATH UINT64_MAX

/* ---- regularizers -------------------------------------------------------- */

#define RECORD_NEEDS                                                         \
    (NDE_NEEDS_STEPS | NDE_NEEDS_DENSE | NDE_NEEDS_ERROR_EST |               \
     NDE_NEEDS_STIFFNESS)

/* What a training solve with adjoint a records: the union of the
 * adjoint's and the regularizers' needs; a regularizer that reads the
 * states of steps gets every one of them. */
static void record_for(const nde_trainer *tr, const nde_adjoint *a,
                       unsigned *record, size_t *max_states)
{
    unsigned reg = 0;
    size_t i;

    for (i = 0; i < tr->nregs; i++)
        reg |= tr->regs[i].r->needs & RECORD_NEEDS;
    *record = a->record | reg;
    *max_states = (reg & (NDE_NEEDS_STEPS | NDE_NEEDS_DENSE))
                      ? 0
                      : a->max_states;
}

static int push_regularizer(nde_trainer *tr, const char *name,
                            nde_regularizer *r, const nde_weight_schedule *w)
{
    nde_train_reg *regs, *g;

    if (!(regs = realloc(tr->regs, (tr->nregs + 1) * sizeof *regs)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    tr->regs = regs;
    g = &regs[tr->nregs];
    memset(g, 0, sizeof *g);
    if (!(g->name = strdup(name)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    g->r = r;
    g->w = *w;
    g->value = NAN;
    g->weight = NAN;
    g->grad_norm = NAN;
    tr->nregs++;
    return NDE_OK;
}

/* Every [regularizer.NAME] section, in the config's order. */
static int regs_create(nde_trainer *tr)
{
    const size_t n = nde_config_nsections(tr->cfg);
    static const char prefix[] = "regularizer.";
    nde_weight_schedule w;
    nde_regularizer *r;
    size_t i;
    int rc;

    for (i = 0; i < n; i++) {
        const char *name = nde_section_name(nde_config_section_at(tr->cfg, i));
        if (strncmp(name, prefix, sizeof prefix - 1) != 0)
            continue;
        if ((rc = nde_regularizer_create(tr->ctx, tr->cfg, name, tr->solver,
                                         &w, &r)) != NDE_OK)
            return rc;
        if ((rc = push_regularizer(tr, name + sizeof prefix - 1, r, &w)) !=
            NDE_OK) {
            nde_regularizer_destroy(r);
            return rc;
        }
    }
    return NDE_OK;
}

/* The regularizer buffers (sized for the batch and save times). */
static void reg_buffers_free(nde_trainer *tr)
{
    free(tr->reg_grad);
    free(tr->tk);
    free(tr->solve_t);
    free(tr->slot);
    free(tr->ysolve);
    free(tr->extra_t);
    free(tr->extra_y);
}

/* The buffers that depend on the number of regularizers, and the record
 * of the training solve (its flags depend on them). */
static int regs_alloc(nde_trainer *tr)
{
    const size_t E = NDE_REGULARIZER_MAX_EXTRA * tr->nregs;
    const size_t per = tr->B * tr->dim, ns = tr->Tcap + E;
    nde_trajectory *traj;
    unsigned record;
    size_t max_states;

    record_for(tr, tr->adj, &record, &max_states);
    if (!(traj = nde_trajectory_create(record, max_states)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    nde_trajectory_destroy(tr->traj);
    tr->traj = traj;
    if (tr->nregs == 0)
        return NDE_OK;
    reg_buffers_free(tr);
    tr->reg_grad = calloc(tr->nregs * tr->P + 1, sizeof *tr->reg_grad);
    tr->tk = calloc(tr->Tcap, sizeof *tr->tk);
    tr->solve_t = calloc(ns, sizeof *tr->solve_t);
    tr->slot = calloc(ns, sizeof *tr->slot);
    tr->ysolve = calloc(ns * per, sizeof *tr->ysolve);
    tr->extra_t = calloc(E, sizeof *tr->extra_t);
    tr->extra_y = calloc(E * per, sizeof *tr->extra_y);
    tr->extra_cap = E;
    if (!tr->reg_grad || !tr->tk || !tr->solve_t || !tr->slot ||
        !tr->ysolve || !tr->extra_t || !tr->extra_y)
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    return NDE_OK;
}

/* The records of the rows' own solves (per-row steps), with the flags of
 * traj, and the buffers of one row. */
static int rows_prepare(nde_trainer *tr, const nde_trajectory *traj)
{
    const size_t B = tr->B;
    size_t r;

    if (!tr->row_traj && !(tr->row_traj = calloc(B, sizeof *tr->row_traj)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    for (r = 0; r < B; r++) {
        nde_trajectory *t = tr->row_traj[r];
        if (t && (t->record != traj->record ||
                  t->max_states != traj->max_states)) {
            nde_trajectory_destroy(t);
            tr->row_traj[r] = NULL;
        }
        if (!tr->row_traj[r] &&
            !(tr->row_traj[r] = nde_trajectory_create(traj->record,
                                                      traj->max_states)))
            return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    }
    if (!tr->row_y || tr->row_extra_cap < tr->extra_cap) {
        free(tr->row_y);
        tr->row_y = calloc((2 * tr->Tcap + tr->extra_cap) * tr->dim,
                           sizeof *tr->row_y);
        tr->row_extra_cap = tr->extra_cap;
    }
    if (!tr->row_grad)
        tr->row_grad = calloc(tr->Pf + 1, sizeof *tr->row_grad);
    if (!tr->row_y || !tr->row_grad)
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    return NDE_OK;
}

static void rows_free(nde_trainer *tr)
{
    if (tr->row_traj)
        for (size_t r = 0; r < tr->B; r++)
            nde_trajectory_destroy(tr->row_traj[r]);
    free(tr->row_traj);
    free(tr->row_y);
    free(tr->row_grad);
}

/* ---- shards (nde_trainer_set_comm) --------------------------------------- */

/*
 * A stage (the forward solves, then the adjoints) leaves one record per
 * shard in shard_buf, in slot order: the shard in slot p at p a + r_p b
 * doubles (r_p the rows of the slots before it; a, b per stage). Slots
 * hold rank 0's shards, then rank 1's, ..., so that the records of a
 * rank's shards are one block and a stage's results go between the
 * ranks in one exchange. A record starts with the shard's status, its
 * solve's stats and the length of its message (the first failed shard's
 * owner sends it).
 */
enum { SHARD_STATUS, SHARD_NFE, SHARD_NFE_BACKWARD, SHARD_ACCEPTED,
       SHARD_REJECTED, SHARD_RETRIES, SHARD_HMIN, SHARD_HMAX, SHARD_MSG,
       SHARD_NST };

#define SHARD_MSG_MAX 1024

static size_t shard_first_row(const nde_trainer *tr, size_t s)
{
    return s * tr->B / tr->nshards;
}

/*
 * The rank of K that computes shard s: the shards are dealt in rounds of
 * K, every other round from the last rank back (0 .. K-1, K-1 .. 0, ...).
 * A task may order a batch's rows by how long their solve takes (the
 * windows task's starts are increasing, and a spiral's early windows
 * take twice the steps of its late ones); dealt back and forth, each
 * rank gets shards from both ends. Which rank computes a shard does not
 * change its bits.
 */
static size_t shard_owner(size_t s, size_t K)
{
    return (s / K) % 2 ? K - 1 - s % K : s % K;
}

/* The slots of the shards among K ranks (tr->shard_cnt holds 3 K + 1),
 * and this rank's, [s0, s1). */
static void shards_deal(nde_trainer *tr, size_t rank, size_t K)
{
    const size_t S = tr->nshards;
    size_t *first = tr->shard_cnt + 2 * K, p = 0;

    for (size_t r = 0; r < K; r++) {
        first[r] = p;
        for (size_t s = 0; s < S; s++)
            if (shard_owner(s, K) == r) {
                tr->slot_shard[p] = s;
                tr->shard_slot[s] = p++;
            }
    }
    first[K] = S;
    tr->slot_row[0] = 0;
    for (p = 0; p < S; p++) {
        const size_t s = tr->slot_shard[p];
        tr->slot_row[p + 1] = tr->slot_row[p] + shard_first_row(tr, s + 1) -
                              shard_first_row(tr, s);
    }
    tr->s0 = first[rank];
    tr->s1 = first[rank + 1];
}

static int shards_alloc(nde_trainer *tr)
{
    const size_t S = tr->nshards;
    const size_t most = (tr->B + S - 1) / S; /* rows of the largest shard */

    tr->shard_traj = calloc(S, sizeof *tr->shard_traj);
    tr->shard_buf = calloc(S * (SHARD_NST + tr->Pf) + tr->Tcap * tr->B *
                               tr->dim, sizeof *tr->shard_buf);
    tr->shard_ct = calloc(tr->Tcap * most * tr->dim, sizeof *tr->shard_ct);
    tr->shard_cnt = calloc(3 + 1, sizeof *tr->shard_cnt);
    tr->slot_shard = calloc(3 * S + 1, sizeof *tr->slot_shard);
    if (!tr->shard_traj || !tr->shard_buf || !tr->shard_ct ||
        !tr->shard_cnt || !tr->slot_shard)
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    tr->shard_slot = tr->slot_shard + S;
    tr->slot_row = tr->shard_slot + S;
    shards_deal(tr, 0, 1);
    return NDE_OK;
}

static void shards_free(nde_trainer *tr)
{
    if (tr->shard_traj)
        for (size_t s = 0; s < tr->nshards; s++)
            nde_trajectory_destroy(tr->shard_traj[s]);
    free(tr->shard_traj);
    free(tr->shard_buf);
    free(tr->shard_ct);
    free(tr->shard_cnt);
    free(tr->slot_shard);
}

/* [train] shards, with what a sharded batch cannot take refused. */
static int shards_read(nde_trainer *tr, nde_section *tsec)
{
    long n;
    const char *why = tr->nregs ? "regularizers"
                      : tr->opts.per_row ? "[solver] per_row_steps"
                      : tr->sde ? "an SDE field"
                      : tr->field->input ? "a field that reads an input"
                                : NULL;
    int rc;

    if ((rc = nde_get_long_min(tsec, "shards", 1, &n, tr->ctx)) != NDE_OK)
        return rc;
    if (n > tr->set.batch_size)
        return nde_section_error(tsec, "shards", tr->ctx,
                                 "%ld shards of a batch of %ld rows: at "
                                 "most batch_size", n, tr->set.batch_size);
    if (n > 1 && why)
        return nde_section_error(tsec, "shards", tr->ctx,
                                 "shards = %ld: a sharded batch does not "
                                 "take %s (shards = 1 does)", n, why);
    tr->nshards = (size_t)n;
    return NDE_OK;
}

/* t between a and b (either order). */
static int between(double t, double a, double b)
{
    return a <= b ? (t >= a && t <= b) : (t <= a && t >= b);
}

/* Stretch t of [t0, t1] onto [t0, t1s]. */
static double stretch(double t, double t0, double t1, double t1s)
{
    double u;

    if (t == t1)
        return t1s;
    u = t0 + (t - t0) * ((t1s - t0) / (t1 - t0));
    return between(u, t0, t1s) ? u : (fabs(u - t0) < fabs(u - t1s) ? t0
                                                                   : t1s);
}

/* before_solve of every regularizer, in order: the solve's end *t1 (moved
 * by STEER) and the extra save times, stretched along when t1 moves. */
static int regs_before(nde_trainer *tr, double t0, double *t1)
{
    const uint64_t base = nde_seed_derive(
        nde_seed_derive(tr->set.seed, NDE_STREAM_REGULARIZER),
        (uint64_t)tr->iter);
    nde_solve_request req;
    size_t j, e;
    int rc;

    tr->nextra = 0;
    for (j = 0; j < tr->nregs; j++) {
        nde_train_reg *g = &tr->regs[j];
        g->first = tr->nextra;
        g->nextra = 0;
        if (!g->r->type->before_solve)
            continue;
        memset(&req, 0, sizeof req);
        req.t0 = t0;
        req.t1 = *t1;
        if ((rc = g->r->type->before_solve(g->r, &req,
                                           nde_seed_derive(base, j))) !=
            NDE_OK) {
            nde_error_prefix(tr->ctx, "regularizer '%s'", g->name);
            return rc;
        }
        if (req.t1 != *t1) {
            if (!isfinite(req.t1) || req.t1 == t0 ||
                (req.t1 > t0) != (*t1 > t0))
                return nde_error(tr->ctx, NDE_EINVAL,
                                 "regularizer '%s' moved the end time to %g "
                                 "(the solve starts at %g and ends at %g)",
                                 g->name, req.t1, t0, *t1);
            for (e = 0; e < tr->nextra; e++)
                tr->extra_t[e] = stretch(tr->extra_t[e], t0, *t1, req.t1);
            *t1 = req.t1;
        }
        if (req.nextra > NDE_REGULARIZER_MAX_EXTRA)
            return nde_error(tr->ctx, NDE_EINVAL,
                             "regularizer '%s' asked for %zu extra save "
                             "times (at most %d)", g->name, req.nextra,
                             NDE_REGULARIZER_MAX_EXTRA);
        for (e = 0; e < req.nextra; e++) {
            if (!between(req.extra_save[e], t0, *t1))
                return nde_error(tr->ctx, NDE_EINVAL,
                                 "regularizer '%s': extra save time %g is "
                                 "outside the solve [%g, %g]", g->name,
                                 req.extra_save[e], t0, *t1);
            tr->extra_t[tr->nextra++] = req.extra_save[e];
        }
        g->nextra = req.nextra;
    }
    return NDE_OK;
}

/* The solve's save times: the n data times ts of [t0, t1] stretched onto
 * [t0, t1s] (into tk) merged in the direction of the solve with the extra
 * times; slot[j] = k for data time k, n + e for extra time e. */
static void plan_saves(nde_trainer *tr, double t0, double t1, double t1s,
                       const double *ts, size_t n)
{
    const double d = t1s >= t0 ? 1.0 : -1.0;
    size_t k = 0, j, e, next, last = 0;
    int have_last = 0;

    for (k = 0; k < n; k++)
        tr->tk[k] = t1s == t1 ? ts[k] : stretch(ts[k], t0, t1, t1s);
    tr->nsolve = n + tr->nextra;
    for (j = k = 0; j < tr->nsolve; j++) {
        /* the earliest extra time after the last one taken (ties by
         * index), so equal times keep the order asked */
        next = tr->nextra;
        for (e = 0; e < tr->nextra; e++) {
            const double te = d * tr->extra_t[e];
            if (have_last &&
                (te < d * tr->extra_t[last] ||
                 (te == d * tr->extra_t[last] && e <= last)))
                continue;
            if (next == tr->nextra || te < d * tr->extra_t[next])
                next = e;
        }
        if (next < tr->nextra &&
            (k == n || d * tr->extra_t[next] < d * tr->tk[k])) {
            tr->solve_t[j] = tr->extra_t[next];
            tr->slot[j] = n + next;
            last = next;
            have_last = 1;
        } else {
            tr->solve_t[j] = tr->tk[k];
            tr->slot[j] = k++;
        }
    }
}

/* The saved states to the data rows (ydata, n times) and extra_y. */
static void gather_saves(nde_trainer *tr, double *ydata, size_t n)
{
    const size_t per = tr->B * tr->dim;
    size_t j;

    for (j = 0; j < tr->nsolve; j++) {
        const size_t s = tr->slot[j];
        memcpy(s < n ? ydata + s * per : tr->extra_y + (s - n) * per,
               tr->ysolve + j * per, per * sizeof *ydata);
    }
}

/* Before regs_after: no value, no direct gradient yet. */
static void regs_clear(nde_trainer *tr)
{
    memset(tr->reg_grad, 0, tr->nregs * tr->P * sizeof *tr->reg_grad);
    for (size_t j = 0; j < tr->nregs; j++)
        tr->regs[j].value = 0.0;
}

/* after_solve of every regularizer on a solve of `rows` rows (the batch,
 * or one row of it under per-row steps: then at rows/B of the weight, so
 * that the values over the rows add up to their mean), given its save
 * times and states (sv) and its extra states: the weighted values added
 * to *reg and to each regularizer's value, regularizer j's direct
 * gradient added to reg_grad + j P, their NFE to st; their cotangents
 * are kept for merge_cotangents. */
static int regs_after(nde_trainer *tr, const nde_solve_opts *o,
                      const nde_trajectory *traj, const double *theta,
                      double t0, double t1s, const nde_regularizer_saves *sv,
                      const double *extra_y, size_t rows, nde_stats *st,
                      double *reg)
{
    const size_t per = rows * tr->dim;
    const double share = (double)rows / (double)tr->B;
    double weight;
    nde_regularizer_input in;
    nde_regularizer_output out;
    size_t j, c;
    int rc;

    for (j = 0; j < tr->nregs; j++) {
        nde_train_reg *g = &tr->regs[j];
        memset(&in, 0, sizeof in);
        memset(&out, 0, sizeof out);
        in.solver = tr->solver;
        in.opts = o;
        in.fwd = traj;
        in.theta = theta;
        in.t0 = t0;
        in.t1 = t1s;
        in.extra_y = extra_y + g->first * per;
        in.nextra = g->nextra;
        weight = nde_weight_at(&g->w, tr->iter, tr->set.iterations);
        in.weight = share * weight;
        in.saves = sv;
        out.thetabar = tr->reg_grad + j * tr->P;
        g->ct = NULL;
        g->nct = 0;
        rc = g->r->type->after_solve(g->r, &in, &out);
        st->nfe += out.nfe;
        st->nfe_backward += out.nvjp;
        if (rc != NDE_OK) {
            nde_error_prefix(tr->ctx, "regularizer '%s'", g->name);
            return rc;
        }
        if (!isfinite(out.value))
            return nde_error(tr->ctx, NDE_ENONFINITE,
                             "regularizer '%s': its value is not finite "
                             "(%g)", g->name, out.value);
        for (c = 0; c < out.nct; c++)
            if (!out.ct || !between(out.ct[c].t, t0, t1s))
                return nde_error(tr->ctx, NDE_EINVAL,
                                 "regularizer '%s': cotangent %zu at %g is "
                                 "outside the solve [%g, %g]", g->name, c,
                                 out.ct ? out.ct[c].t : NAN, t0, t1s);
        g->value += share * out.value;
        g->weight = weight;
        g->ct = out.ct;
        g->nct = out.nct;
        *reg += in.weight * out.value;
    }
    /* a regularizer may have used the solver's workspace */
    return nde_solver_set_batch(tr->solver, rows);
}

static double norm2(const double *x, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return sqrt(s);
}

/* grad (through the adjoint: the data loss's and the regularizers'
 * cotangents) += every regularizer's direct gradient, each capped at its
 * clip times |grad| first. Nothing to do (or measure) without them. */
static void add_reg_grads(nde_trainer *tr, double *grad)
{
    double data_norm;

    if (tr->nregs == 0)
        return;
    data_norm = norm2(grad, tr->P);
    tr->data_grad_norm = data_norm;
    for (size_t j = 0; j < tr->nregs; j++) {
        const double *g = tr->reg_grad + j * tr->P;
        const double clip = tr->regs[j].w.clip, norm = norm2(g, tr->P);
        const double scale = clip > 0 && norm > clip * data_norm
                                 ? clip * data_norm / norm : 1.0;

        tr->regs[j].grad_norm = norm;
        for (size_t i = 0; i < tr->P; i++)
            grad[i] += scale * g[i];
    }
}

/* The loss's cotangents and the regularizers' in one list sorted by time
 * in the direction of the solve (stable: equal times keep their order and
 * add in the adjoint). */
static int merge_cotangents(nde_trainer *tr, const nde_cotangent *ct,
                            size_t nct, double t0, double t1s,
                            const nde_cotangent **out, size_t *nout)
{
    const double d = t1s >= t0 ? 1.0 : -1.0;
    size_t n = nct, j, i;

    for (j = 0; j < tr->nregs; j++)
        n += tr->regs[j].nct;
    if (n > tr->ct_cap) {
        nde_cotangent *p = realloc(tr->ct_all, n * sizeof *p);
        if (!p)
            return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
        tr->ct_all = p;
        tr->ct_cap = n;
    }
    memcpy(tr->ct_all, ct, nct * sizeof *ct);
    n = nct;
    for (j = 0; j < tr->nregs; j++)
        for (i = 0; i < tr->regs[j].nct; i++) {
            /* insertion: the lists are short or nearly sorted */
            const nde_cotangent c = tr->regs[j].ct[i];
            size_t k = n++;
            while (k > 0 && d * tr->ct_all[k - 1].t > d * c.t) {
                tr->ct_all[k] = tr->ct_all[k - 1];
                k--;
            }
            tr->ct_all[k] = c;
        }
    *out = tr->ct_all;
    *nout = n;
    return NDE_OK;
}
/* ---- composition --------------------------------------------------------- */

/* The loss of [train] (auto, mse or moments) against the field's kind. */
static int check_loss(nde_trainer *tr, nde_section *tsec)
{
    const char *loss;
    int rc;

    tr->sde = tr->field->noise != NDE_NOISE_NONE;
    if ((rc = nde_get_string(tsec, "loss", &loss, tr->ctx)) != NDE_OK)
        return rc;
    if (strcmp(loss, "auto") != 0 && strcmp(loss, "mse") != 0 &&
        strcmp(loss, "moments") != 0)
        return nde_section_error(tsec, "loss", tr->ctx,
                                 "unknown loss '%s' (known: auto, mse, "
                                 "moments)", loss);
    if (!tr->sde && strcmp(loss, "moments") == 0)
        return nde_section_error(tsec, "loss", tr->ctx,
                                 "moments fits the spread of sample paths: "
                                 "it needs an SDE field (this one has no "
                                 "diffusion)");
    if (tr->sde && strcmp(loss, "mse") == 0)
        return nde_section_error(tsec, "loss", tr->ctx,
                                 "mse against single paths does not fit "
                                 "an SDE field's noise: use moments");
    return NDE_OK;
}

/* The field, solver, adjoint and regularizers of the config for up to
 * bmax rows. */
static int compose(nde_trainer *tr, nde_section *tsec, nde_section *ssec,
                   size_t bmax)
{
    int rc;

    tr->bmax = bmax;
    if ((rc = nde_field_create(tr->ctx, tr->cfg, "field", bmax,
                               &tr->field)) != NDE_OK ||
        (rc = check_loss(tr, tsec)) != NDE_OK ||
        (rc = nde_solver_create(tr->ctx, tr->cfg, "solver", tr->field,
                                &tr->solver)) != NDE_OK ||
        (rc = nde_solve_opts_from_section(&tr->opts, tr->solver->type, ssec,
                                          tr->ctx)) != NDE_OK ||
        (rc = nde_adjoint_create(tr->ctx, tr->cfg, "adjoint",
                                 "interpolating", tr->solver, &tr->adj)) !=
            NDE_OK)
        return rc;
    tr->dim = tr->field->dim;
    return regs_create(tr);
}

static void decompose(nde_trainer *tr)
{
    for (size_t i = 0; i < tr->nregs; i++) {
        nde_regularizer_destroy(tr->regs[i].r);
        free(tr->regs[i].name);
    }
    free(tr->regs);
    tr->regs = NULL;
    tr->nregs = 0;
    nde_adjoint_destroy(tr->adj);
    nde_solver_destroy(tr->solver);
    nde_field_destroy(tr->field);
    tr->adj = NULL;
    tr->solver = NULL;
    tr->field = NULL;
}

/* The task plugin of each [data] source of the first releases (and of
 * the sources a task serves under another name), for an ODE field and
 * for an SDE field (NULL: none); any other source names a task plugin. */
static const struct source_task {
    const char *source, *ode, *sde;
} source_tasks[] = {{"spiral", "windows", NULL},
                    {"field", "windows", "moments"},
                    {"csv", "series", NULL},
                    {"idx", "classify", "classify"},
                    {"annuli", "points", NULL}};

/* The task plugin for `source`; the sources above keep their messages. */
static int find_task(nde_trainer *tr, nde_section *dsec, const char *source,
                     const nde_task_type **type)
{
    static const char *const sde_keys[] = {"paths", "dt", "seed",
                                           "eval_paths", NULL};
    const size_t n = sizeof source_tasks / sizeof *source_tasks;
    const nde_plugin_info *info;
    const char *name = source;
    size_t i;

    for (i = 0; i < n && strcmp(source, source_tasks[i].source) != 0; i++)
        ;
    if (i < n && tr->sde) {
        if (!source_tasks[i].sde)
            return nde_section_error(dsec, "source", tr->ctx,
                                     "the field is an SDE: it trains on the "
                                     "moments of paths simulated from its "
                                     "own system (source = field) or "
                                     "classifies images (source = idx), "
                                     "not on '%s'", source);
        name = source_tasks[i].sde;
    } else if (i < n) {
        for (size_t k = 0; sde_keys[k]; k++)
            if (nde_section_has(dsec, sde_keys[k]))
                return nde_section_error(dsec, sde_keys[k], tr->ctx,
                                         "only for an SDE field (this field "
                                         "has no diffusion)");
        name = source_tasks[i].ode;
    }
    if (!nde_plugin_name_valid(name) ||
        nde_plugin_find(tr->ctx, NDE_KIND_TASK, name, &info) != NDE_OK)
        return nde_section_error(dsec, "source", tr->ctx,
                                 "unknown source '%s' (known: spiral, "
                                 "field, csv, idx, or the name of a task "
                                 "plugin)", source);
    *type = (const nde_task_type *)info;
    return NDE_OK;
}

static const nde_key *key_in(const nde_key *keys, const char *name)
{
    for (; keys && keys->name; keys++)
        if (strcmp(keys->name, name) == 0)
            return keys;
    return NULL;
}

/* [data] against the task's keys (or the built-in tasks', for a task
 * that declares none). */
static int check_data_keys(nde_section *dsec, const nde_task_type *type,
                           nde_ctx *ctx)
{
    const nde_key *const legacy[] = {nde_data_keys, NULL};
    const nde_key *const tables[] = {type->info.keys, nde_data_keys, NULL};

    return nde_section_check(dsec, type->info.keys ? tables : legacy, ctx);
}

/* A key of another built-in task that this one does not read. */
static int refuse_foreign_keys(nde_section *dsec, const nde_task_type *type,
                               nde_ctx *ctx)
{
    const char *source = "(none)";

    if (!type->info.keys)
        return NDE_OK;
    for (size_t i = 0; i < nde_section_nkeys(dsec); i++) {
        const char *key = nde_section_key_at(dsec, i);
        const nde_key *other = key_in(nde_data_keys, key);
        if (strcmp(key, "source") == 0 || key_in(type->info.keys, key) ||
            !other)
            continue;
        if (nde_section_has(dsec, "source"))
            nde_get_string(dsec, "source", &source, ctx);
        return nde_section_error(dsec, key, ctx,
                                 "not used by source = %s (the task '%s'; "
                                 "it is a key of %s): remove it", source,
                                 type->info.name, other->help);
    }
    return NDE_OK;
}

int nde_data_section_check(nde_section *dsec, const nde_task_type *type,
                           nde_ctx *ctx)
{
    int rc = check_data_keys(dsec, type, ctx);
    return rc != NDE_OK ? rc : refuse_foreign_keys(dsec, type, ctx);
}

/* The task's time-dependent input (nde/task.h, version 5) to the field
 * that reads it; each refused without the other. */
static int bind_input(nde_trainer *tr)
{
    nde_input *in = tr->task->type->input ? tr->task->type->input(tr->task)
                                          : NULL;

    if (!in && tr->field->ninputs)
        return nde_error(tr->ctx, NDE_ECONFIG, "[field] '%s' reads %zu "
                         "input channel%s, but task '%s' gives no input",
                         tr->field->type->info.name, tr->field->ninputs,
                         tr->field->ninputs == 1 ? "" : "s",
                         tr->task->type->info.name);
    if (in && !tr->field->ninputs)
        return nde_error(tr->ctx, NDE_ECONFIG, "task '%s' gives an input of "
                         "%zu channel%s, but [field] '%s' reads none (e.g. "
                         "expr's inputs, or a hybrid field)",
                         tr->task->type->info.name, nde_input_channels(in),
                         nde_input_channels(in) == 1 ? "" : "s",
                         tr->field->type->info.name);
    return in ? nde_field_set_input(tr->field, in) : NDE_OK;
}

/* The task of [data] source, its section checked against the task's keys
 * (whose defaults apply). */
static int create_task(nde_trainer *tr, nde_section *dsec)
{
    const nde_key *const legacy[] = {nde_data_keys, NULL};
    const nde_task_type *type = NULL;
    nde_task_env env = {tr->cfg, tr->field, tr->set.seed};
    const char *source;
    nde_task *t;
    int rc;

    if (!nde_section_has(dsec, "source") &&
        (rc = nde_section_check(dsec, legacy, tr->ctx)) != NDE_OK)
        return rc;
    if ((rc = nde_get_string(dsec, "source", &source, tr->ctx)) ||
        (rc = find_task(tr, dsec, source, &type)))
        return rc;
    if ((rc = check_data_keys(dsec, type, tr->ctx)) != NDE_OK)
        return rc;
    if (!type->create || !type->destroy || !type->batch || !type->loss ||
        !type->evaluate || !type->lift != !type->lift_vjp ||
        !type->readout != !type->readout_vjp)
        return nde_error(tr->ctx, NDE_EPLUGIN,
                         "task plugin '%s' lacks one of create, destroy, "
                         "batch, loss, evaluate, or has a lift or readout "
                         "without its VJP", type->info.name);
    if (!(t = tr->task = calloc(1, sizeof *t)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    t->type = type;
    t->ctx = tr->ctx;
    t->dim = tr->dim;
    t->rows = tr->B;
    t->pool = tr->field->pool;
    /* the task's own messages about its keys come first */
    if ((rc = type->create(t, dsec, &env, tr->ctx)) != NDE_OK ||
        (rc = refuse_foreign_keys(dsec, type, tr->ctx)) != NDE_OK)
        return rc;
    if ((t->nparams && (!type->init_params || !type->param_name)) ||
        t->max_saves == 0 || t->max_rows < t->rows || t->input_dim == 0 ||
        t->obs_dim == 0 || (!type->lift && t->input_dim != t->dim) ||
        (!type->readout && t->obs_dim != t->dim))
        return nde_error(tr->ctx, NDE_EPLUGIN,
                         "task plugin '%s' declares sizes its ops cannot "
                         "honour (nparams %zu, input_dim %zu, obs_dim %zu, "
                         "max_saves %zu, max_rows %zu; dim %zu, rows %zu)",
                         type->info.name, t->nparams, t->input_dim,
                         t->obs_dim, t->max_saves, t->max_rows, t->dim,
                         t->rows);
    return NDE_OK;
}

/* 64 random bits from the kernel, or (without /dev/urandom) from the
 * clock and the process; never 0, which checkpoints of version 3 read as
 * "no id". */
static uint64_t new_run_id(void)
{
    struct timespec ts;
    uint64_t id = 0;
    FILE *fp = fopen("/dev/urandom", "rb");

    if (fp) {
        if (fread(&id, sizeof id, 1, fp) != 1)
            id = 0;
        fclose(fp);
    }
    if (id == 0) {
        clock_gettime(CLOCK_REALTIME, &ts);
        id = nde_seed_derive((uint64_t)ts.tv_sec * 1000000000u +
                                 (uint64_t)ts.tv_nsec,
                             (uint64_t)getpid());
    }
    return id ? id : 1;
}

/* A weight matrix's entry by its name, STEM[i,j] with STEM's last
 * component (after its last '.') [a-z]*W[0-9]* (an mlp's W1, gW2, a task's
 * enc.W): the stem's length into *len and the output index i into *row;
 * 0 when the name is no such entry. */
static int weight_entry(const char *name, size_t *len, unsigned long *row)
{
    const char *br = strchr(name, '['), *c, *p;
    char *end;

    if (!br || !strchr(br, ','))
        return 0;
    for (c = br; c > name && c[-1] != '.'; c--)
        ;
    for (p = c; p < br && *p >= 'a' && *p <= 'z'; p++)
        ;
    if (p == br || *p++ != 'W')
        return 0;
    for (; p < br; p++)
        if (*p < '0' || *p > '9')
            return 0;
    *row = strtoul(br + 1, &end, 10);
    if (end == br + 1 || *end != ',')
        return 0;
    *len = (size_t)(br - name);
    return 1;
}

/* [train] adversary: flag the parameters whose names start with one of
 * its prefixes and, with adversary_clip, the bound of each of their
 * weight entries: a matrix's entries are consecutive parameters of one
 * stem, its output count the largest row index + 1. */
static int adversary_flags(nde_trainer *tr, nde_section *tsec)
{
    char **pre = NULL, name[256], stem[256];
    size_t npre = 0, count = 0, i, k;
    int rc;

    if ((rc = nde_get_words(tsec, "adversary", &pre, &npre, tr->ctx)) ||
        npre == 0) {
        nde_strings_free(pre);
        return rc;
    }
    if (!(tr->adv = calloc(tr->P + 1, 1)) ||
        !(tr->clamp = calloc(tr->P + 1, sizeof *tr->clamp))) {
        nde_strings_free(pre);
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    }
    for (i = 0; i < tr->P; i++) {
        nde_trainer_param_name(tr, i, name, sizeof name);
        for (k = 0; k < npre; k++)
            if (strncmp(name, pre[k], strlen(pre[k])) == 0)
                tr->adv[i] = 1;
        count += tr->adv[i];
    }
    if (count == 0) {
        rc = nde_section_error(tsec, "adversary", tr->ctx,
                               "no parameter's name starts with '%s'%s "
                               "(see `nde check` or the checkpoint's "
                               "names: e.g. disc.)", pre[0],
                               npre > 1 ? " or the others" : "");
        nde_strings_free(pre);
        return rc;
    }
    nde_strings_free(pre);
    for (i = 0; tr->set.adversary_clip != 0.0 && i < tr->P;) {
        size_t len, j;
        unsigned long row, rows = 0;
        nde_trainer_param_name(tr, i, name, sizeof name);
        if (!tr->adv[i] || !weight_entry(name, &len, &row)) {
            i++;
            continue;
        }
        memcpy(stem, name, len);
        stem[len] = '\0';
        for (j = i; j < tr->P; j++) {
            size_t lj;
            unsigned long rj;
            nde_trainer_param_name(tr, j, name, sizeof name);
            if (!tr->adv[j] || !weight_entry(name, &lj, &rj) || lj != len ||
                strncmp(name, stem, len) != 0)
                break;
            rows = rj + 1 > rows ? rj + 1 : rows;
        }
        for (; i < j; i++)
            tr->clamp[i] = tr->set.adversary_clip > 0
                               ? tr->set.adversary_clip
                               : 1.0 / (double)rows;
    }
    return NDE_OK;
}

int nde_trainer_create(nde_ctx *ctx, const nde_config *cfg, size_t min_batch,
                       nde_trainer **out)
{
    nde_section *tsec, *dsec, *ssec;
    nde_trainer *tr;
    size_t bmax, per, nb, no, P;
    int rc;

    *out = NULL;
    if (!(tr = calloc(1, sizeof *tr)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    tr->ctx = ctx;
    tr->cfg = cfg;
    if ((rc = nde_config_require(cfg, "train", &tsec, ctx)) != NDE_OK ||
        (rc = nde_config_require(cfg, "data", &dsec, ctx)) != NDE_OK ||
        (rc = nde_config_require(cfg, "solver", &ssec, ctx)) != NDE_OK ||
        (rc = read_settings(&tr->set, tsec, ctx)) != NDE_OK)
        goto fail;
    tr->B = (size_t)tr->set.batch_size;
    bmax = tr->B > min_batch ? tr->B : min_batch;
    if ((rc = compose(tr, tsec, ssec, bmax)) != NDE_OK)
        goto fail;
    if (tr->sde && !(tr->opts.dt > 0)) {
        rc = nde_section_error(ssec, "dt", ctx,
                               "an SDE solve takes fixed steps: set dt > 0");
        goto fail;
    }
    if ((rc = create_task(tr, dsec)) != NDE_OK)
        goto fail;
    /* the task's evaluation may predict more rows at once */
    if (tr->task->max_rows > bmax) {
        bmax = tr->task->max_rows;
        decompose(tr);
        if ((rc = compose(tr, tsec, ssec, bmax)) != NDE_OK)
            goto fail;
    }
    if ((rc = bind_input(tr)) != NDE_OK)
        goto fail;
    if (tr->sde &&
        (rc = nde_brownian_create(ctx,
                                  bmax * nde_field_brownian_dim(tr->field),
                                  &tr->bm)) != NDE_OK)
        goto fail;
    tr->data_digest = tr->task->type->digest
                          ? tr->task->type->digest(tr->task)
                          : 0;
    if (tr->task->type->units)
        tr->task->type->units(tr->task, &tr->shift, &tr->scale);
    tr->log_units = tr->shift && tr->task->type->units_log &&
                    tr->task->type->units_log(tr->task);
    if (tr->shift && !(tr->y0u = calloc(bmax * tr->dim, sizeof *tr->y0u))) {
        rc = nde_error(ctx, NDE_ENOMEM, "out of memory");
        goto fail;
    }
    tr->Pf = tr->field->nparams;
    P = tr->P = tr->Pf + tr->task->nparams;
    tr->Tcap = tr->task->max_saves;
    per = tr->B * tr->dim;
    nb = tr->Tcap * per;
    no = tr->Tcap * tr->B * tr->task->obs_dim;
    tr->theta = calloc(P + 1, sizeof *tr->theta);
    tr->grad = calloc(P + 1, sizeof *tr->grad);
    tr->m = calloc(P + 1, sizeof *tr->m);
    tr->v = calloc(P + 1, sizeof *tr->v);
    tr->opt_next = calloc(3 * P + 1, sizeof *tr->opt_next);
    tr->good_t = -1;
    if ((tr->set.on_failure == NDE_ON_FAILURE_BACKOFF &&
         !(tr->good = calloc(3 * P + 1, sizeof *tr->good))) ||
        (tr->set.average_from > 0 &&
         !(tr->avg = calloc(P + 1, sizeof *tr->avg)))) {
        rc = nde_error(ctx, NDE_ENOMEM, "out of memory");
        goto fail;
    }
    tr->y0b = calloc(per, sizeof *tr->y0b);
    tr->ybar0 = calloc(per, sizeof *tr->ybar0);
    tr->ysave = calloc(nb, sizeof *tr->ysave);
    tr->obsbar = calloc(no, sizeof *tr->obsbar);
    tr->ct = calloc(tr->Tcap, sizeof *tr->ct);
    tr->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (tr->task->type->readout) {
        tr->obs = calloc(no, sizeof *tr->obs);
        tr->ybar = calloc(nb, sizeof *tr->ybar);
    } else {
        tr->obs = tr->ysave;
        tr->ybar = tr->obsbar;
    }
    if (!tr->theta || !tr->grad || !tr->m || !tr->v || !tr->opt_next ||
        !tr->y0b ||
        !tr->ybar0 || !tr->ysave || !tr->obsbar || !tr->ct || !tr->rng ||
        !tr->obs || !tr->ybar) {
        rc = nde_error(ctx, NDE_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = regs_alloc(tr)) != NDE_OK ||
        (rc = shards_read(tr, tsec)) != NDE_OK)
        goto fail;
    if (tr->nshards > 1 && (rc = shards_alloc(tr)) != NDE_OK)
        goto fail;
    gsl_rng_set(tr->rng, nde_seed_derive(tr->set.seed, NDE_STREAM_BATCHES));
    tr->tot.lr_scale = 1.0;
    tr->run_id = new_run_id();
    if ((rc = nde_field_init_params(tr->field, tr->theta,
                                    nde_seed_derive(tr->set.seed,
                                                    NDE_STREAM_INIT))) !=
        NDE_OK)
        goto fail;
    if (tr->task->nparams &&
        (rc = tr->task->type->init_params(
             tr->task, tr->theta + tr->Pf,
             nde_seed_derive(nde_seed_derive(tr->set.seed, NDE_STREAM_INIT),
                             1))) != NDE_OK)
        goto fail;
    if ((rc = adversary_flags(tr, tsec)) != NDE_OK)
        goto fail;
    *out = tr;
    return NDE_OK;
fail:
    nde_trainer_destroy(tr);
    return rc;
}

static void intervention_free(nde_trainer *tr)
{
    nde_solver_destroy(tr->do_solver);
    nde_field_destroy(tr->do_field);
    free(tr->do_value);
    free(tr->y0do);
    tr->do_solver = NULL;
    tr->do_field = NULL;
    tr->do_value = tr->y0do = NULL;
}

void nde_trainer_destroy(nde_trainer *tr)
{
    if (!tr)
        return;
    for (size_t i = 0; i < tr->nnotes; i++)
        free(tr->notes[i]);
    free(tr->notes);
    nde_trajectory_destroy(tr->traj);
    nde_trajectory_destroy(tr->alt_traj);
    rows_free(tr);
    shards_free(tr);
    decompose(tr);
    reg_buffers_free(tr);
    free(tr->ct_all);
    nde_brownian_destroy(tr->bm);
    if (tr->rng)
        gsl_rng_free(tr->rng);
    if (tr->task) {
        tr->task->type->destroy(tr->task);
        free(tr->task);
    }
    if (tr->obs != tr->ysave)
        free(tr->obs);
    if (tr->ybar != tr->obsbar)
        free(tr->ybar);
    free(tr->theta);
    free(tr->grad);
    free(tr->m);
    free(tr->v);
    free(tr->opt_next);
    free(tr->adv);
    free(tr->clamp);
    free(tr->good);
    free(tr->avg);
    free(tr->y0b);
    free(tr->y0u);
    intervention_free(tr);
    free(tr->ybar0);
    free(tr->ysave);
    free(tr->obsbar);
    free(tr->ct);
    free(tr);
}

const nde_train_settings *nde_trainer_settings(const nde_trainer *tr)
{
    return &tr->set;
}
nde_field *nde_trainer_field(const nde_trainer *tr) { return tr->field; }
nde_solver *nde_trainer_solver(const nde_trainer *tr) { return tr->solver; }
nde_adjoint *nde_trainer_adjoint(const nde_trainer *tr) { return tr->adj; }
const nde_trajectory *nde_trainer_trajectory(const nde_trainer *tr)
{
    return tr->traj;
}
double *nde_trainer_params(const nde_trainer *tr) { return tr->theta; }

/* The model's parameters: the running mean once one is kept, else the
 * parameters being trained. */
static const double *model_params(const nde_trainer *tr)
{
    return tr->navg > 0 ? tr->avg : tr->theta;
}
size_t nde_trainer_nparams(const nde_trainer *tr) { return tr->P; }
long nde_trainer_iteration(const nde_trainer *tr) { return tr->iter; }
uint64_t nde_trainer_run_id(const nde_trainer *tr)
{
    return tr->run_id;
}

const nde_train_totals *nde_trainer_totals(const nde_trainer *tr)
{
    return &tr->tot;
}

/* ---- one iteration ------------------------------------------------------- */

/* The task's batch of the next iteration. */
static int sample_batch(nde_trainer *tr)
{
    const nde_task_draw draw = {
        tr->iter, nde_seed_derive(tr->set.seed, NDE_STREAM_BATCHES), tr->rng};

    const nde_task *t = tr->task;
    const nde_task_batch *b = &tr->batch;
    int rc;

    if ((rc = t->type->batch(tr->task, &draw, &tr->batch)) != NDE_OK)
        return rc;
    if (b->nsave == 0 || b->nsave > t->max_saves || b->first_ct > b->nsave)
        return nde_error(tr->ctx, NDE_EPLUGIN,
                         "task plugin '%s': a batch of %zu save times, the "
                         "first fitted %zu (it declared at most %zu)",
                         t->type->info.name, b->nsave, b->first_ct,
                         t->max_saves);
    return NDE_OK;
}

/* Row r of n blocks of B rows (src: n x B x dim) into dst (n x dim). */
static void row_of(const nde_trainer *tr, const double *src, size_t n,
                   size_t r, double *dst)
{
    for (size_t k = 0; k < n; k++)
        memcpy(dst + k * tr->dim, src + (k * tr->B + r) * tr->dim,
               tr->dim * sizeof *dst);
}

/* The data loss's cotangents into tr->ct: save k (from first_ct on) at
 * the solve's save time tk[k], dL/dy at ybar + k stride. Their count. */
static size_t data_cotangents(nde_trainer *tr, const double *tk,
                              const double *ybar, size_t stride)
{
    const nde_task_batch *b = &tr->batch;
    size_t n = 0;

    for (size_t k = b->first_ct; k < b->nsave; k++, n++) {
        tr->ct[n].t = tk[k];
        tr->ct[n].g = ybar + k * stride;
    }
    return n;
}

/* The adjoint's gradient from the cotangents ct[0..nct) (the data's; the
 * regularizers' are merged in) of a solve recorded in traj: dL/dy0 into
 * ybar0, the field's gradient into grad. */
static int adjoint_grad(nde_trainer *tr, nde_adjoint *a,
                        const nde_solve_opts *o, const nde_trajectory *traj,
                        const double *theta, double t0, double t1s,
                        const nde_cotangent *ct, size_t nct, double *ybar0,
                        double *grad, nde_stats *st)
{
    int rc;

    if (tr->nregs &&
        (rc = merge_cotangents(tr, ct, nct, t0, t1s, &ct, &nct)) != NDE_OK)
        return rc;
    rc = nde_adjoint_gradient(a, o, traj, theta, ct, nct, ybar0, grad, st);
    st->status = rc;
    if (rc != NDE_OK)
        nde_error_prefix(tr->ctx, "gradient (adjoint '%s')",
                         a->type->info.name);
    return rc;
}

/*
 * Per-row steps: the regularizers and the adjoint on each row's own
 * recorded solve, one row at a time (a batch of one), after the task's
 * loss on the whole batch (t1: its end before STEER moved it to t1s).
 * Each regularizer counts a row at 1/B of its weight (regs_after), so its
 * value is the mean over the rows; the field's gradient is the sum of the
 * rows'. tr->ybar holds the data's cotangents (nsave x B x dim).
 */
static int rows_after(nde_trainer *tr, nde_adjoint *a,
                      const nde_solve_opts *o, const double *theta,
                      double t0, double t1, double t1s, double *reg,
                      double *grad, nde_stats *st)
{
    const nde_task_batch *b = &tr->batch;
    const size_t T = b->nsave, dim = tr->dim;
    const double *tk = tr->nregs ? tr->tk : b->tsave;
    double *ysv = tr->row_y, *ybar = ysv + tr->Tcap * dim;
    double *extra = ybar + tr->Tcap * dim;
    nde_solve_opts row = *o;
    size_t r, nct, i;
    int rc;

    /* what the rows' solves recorded is read, never written again */
    row.record_rows = NULL;

    if (tr->nregs)
        regs_clear(tr);
    if (grad)
        memset(grad, 0, tr->Pf * sizeof *grad);
    if ((rc = nde_solver_set_batch(tr->solver, 1)) != NDE_OK)
        return rc;
    for (r = 0; r < tr->B; r++) {
        if (tr->nregs) {
            const nde_regularizer_saves sv = {T, tk, ysv};
            double t1r = t1;
            /* before_solve again, with the same seed (the same draws), to
             * pair with each row's after_solve */
            if (r > 0 && (rc = regs_before(tr, t0, &t1r)) != NDE_OK)
                break;
            row_of(tr, tr->ysave, T, r, ysv);
            row_of(tr, tr->extra_y, tr->nextra, r, extra);
            if ((rc = regs_after(tr, &row, tr->row_traj[r], theta, t0, t1s,
                                 &sv, extra, 1, st, reg)) != NDE_OK)
                break;
        }
        if (!grad)
            continue;
        row_of(tr, tr->ybar, T, r, ybar);
        nct = data_cotangents(tr, tk, ybar, dim);
        if (tr->field->input) /* the row's input, as its solve read it */
            nde_input_set_row0(tr->field->input, r);
        if ((rc = adjoint_grad(tr, a, &row, tr->row_traj[r], theta, t0, t1s,
                               tr->ct, nct, tr->ybar0 + r * dim,
                               tr->row_grad, st)) != NDE_OK)
            break;
        for (i = 0; i < tr->Pf; i++)
            grad[i] += tr->row_grad[i];
    }
    if (rc != NDE_OK)
        nde_error_prefix(tr->ctx, "row %zu", r);
    if (tr->field->input)
        nde_input_set_row0(tr->field->input, 0);
    nde_solver_set_batch(tr->solver, tr->B);
    return rc;
}

/* Shard s's record in a stage of records a + b rows doubles. */
/* Where slot p's record starts in shard_buf (p = S: the end). */
static size_t slot_offset(const nde_trainer *tr, size_t p, size_t a,
                          size_t b)
{
    return p * a + tr->slot_row[p] * b;
}

static double *shard_record(const nde_trainer *tr, size_t s, size_t a,
                            size_t b)
{
    return tr->shard_buf + slot_offset(tr, tr->shard_slot[s], a, b);
}

/* Every rank's records of a stage (a, b: shard_record) to every rank. */
static int shards_share(nde_trainer *tr, size_t a, size_t b)
{
    nde_comm *c = tr->comm;
    size_t *cnt = tr->shard_cnt, *at, *first;

    if (!c)
        return NDE_OK;
    at = cnt + c->size;
    first = at + c->size;
    for (size_t r = 0; r < (size_t)c->size; r++) {
        const size_t lo = slot_offset(tr, first[r], a, b);
        at[r] = lo * sizeof(double);
        cnt[r] = (slot_offset(tr, first[r + 1], a, b) - lo) * sizeof(double);
    }
    if (c->allgather(c, tr->shard_buf, cnt, at) != 0)
        return nde_error(tr->ctx, NDE_EFATAL,
                         "rank %d: the exchange between the ranks failed",
                         c->rank);
    return NDE_OK;
}

/* A shard's status and stats after its solve or adjoint into its record
 * d. */
static void shard_note(nde_trainer *tr, double *d, int rc,
                       const nde_stats *st)
{
    const char *msg = rc != NDE_OK ? nde_ctx_message(tr->ctx) : "";

    d[SHARD_STATUS] = rc;
    d[SHARD_NFE] = (double)st->nfe;
    d[SHARD_NFE_BACKWARD] = (double)st->nfe_backward;
    d[SHARD_ACCEPTED] = (double)st->steps_accepted;
    d[SHARD_REJECTED] = (double)st->steps_rejected;
    d[SHARD_RETRIES] = (double)st->retries;
    d[SHARD_HMIN] = st->h_min;
    d[SHARD_HMAX] = st->h_max;
    d[SHARD_MSG] = (double)(msg ? strnlen(msg, SHARD_MSG_MAX - 1) : 0);
}

/* The failed shard s's message from its owner to every rank, then the
 * step's error (status rc) on every rank, "rank R: " before it. */
static int shard_failure(nde_trainer *tr, size_t s, size_t n, int rc)
{
    nde_comm *c = tr->comm;
    const size_t owner = shard_owner(s, (size_t)c->size);
    size_t *cnt = tr->shard_cnt, *at = cnt + c->size;
    char msg[SHARD_MSG_MAX];

    memset(msg, 0, sizeof msg);
    if ((int)owner == c->rank)
        memcpy(msg, nde_ctx_message(tr->ctx), n);
    memset(cnt, 0, 2 * (size_t)c->size * sizeof *cnt);
    cnt[owner] = n;
    if (c->allgather(c, msg, cnt, at) != 0)
        return nde_error(tr->ctx, NDE_EFATAL,
                         "rank %d: the exchange between the ranks failed",
                         c->rank);
    return nde_error(tr->ctx, rc, "rank %zu: %s", owner, msg);
}

/*
 * After every rank's shards of a stage, their records shared: the stats
 * added into st. When a shard failed, the first one's status and message
 * are every rank's: the step fails, or an on_failure policy absorbs it,
 * alike on every rank.
 */
static int shards_settle(nde_trainer *tr, size_t a, size_t b, nde_stats *st,
                         int backward)
{
    const size_t S = tr->nshards;
    size_t s, failed = S;
    int rc;

    if ((rc = shards_share(tr, a, b)) != NDE_OK)
        return rc;
    for (s = 0; s < S; s++) {
        const double *d = shard_record(tr, s, a, b);
        if (failed == S && d[SHARD_STATUS] != 0)
            failed = s;
        if (backward) {
            st->nfe_backward += (long)d[SHARD_NFE_BACKWARD];
            continue;
        }
        st->nfe += (long)d[SHARD_NFE];
        st->steps_accepted += (long)d[SHARD_ACCEPTED];
        st->steps_rejected += (long)d[SHARD_REJECTED];
        st->retries += (long)d[SHARD_RETRIES];
        if (s == 0 || d[SHARD_HMIN] < st->h_min)
            st->h_min = d[SHARD_HMIN];
        if (s == 0 || d[SHARD_HMAX] > st->h_max)
            st->h_max = d[SHARD_HMAX];
    }
    if (failed == S)
        return NDE_OK;
    {
        const double *d = shard_record(tr, failed, a, b);
        rc = st->status = (int)d[SHARD_STATUS];
        /* one process: the message is in ctx */
        return tr->comm ? shard_failure(tr, failed, (size_t)d[SHARD_MSG], rc)
                        : rc;
    }
}

/* This rank's shard s's record before its stage: a failure of an
 * earlier shard leaves the later ones as they were, marked failed. */
static double *shard_begin(nde_trainer *tr, size_t s, size_t a, size_t b,
                           size_t *lo, size_t *rows)
{
    double *d = shard_record(tr, s, a, b);

    *lo = shard_first_row(tr, s);
    *rows = shard_first_row(tr, s + 1) - *lo;
    memset(d, 0, SHARD_NST * sizeof *d);
    return d;
}

/*
 * loss_grad with the batch in shards (nde_trainer_set_comm): this rank's
 * shards solved forward, every rank's saves shared; the task's readout
 * and loss on the whole batch; this rank's shards' adjoints, their
 * gradients and initial-state cotangents shared and the gradients summed
 * in shard order; the lift's VJP on the whole batch.
 */
/* The batch's initial states into *y0: its input, or the task's lift
 * of it (into tr->y0b); a batch of one observation time has nothing to
 * fit. */
static int lift_batch(nde_trainer *tr, const double *th, const double **y0)
{
    const nde_task_batch *b = &tr->batch;
    int rc;

    if (b->tsave[b->nsave - 1] == b->t0)
        return nde_error(tr->ctx, NDE_ECONFIG,
                         "the mini-batch has a single observation time: "
                         "nothing to fit");
    *y0 = b->input;
    if (!tr->task->type->lift)
        return NDE_OK;
    if ((rc = tr->task->type->lift(tr->task, th, b, tr->y0b)) != NDE_OK)
        return rc;
    *y0 = tr->y0b;
    return NDE_OK;
}

/* The task's loss of the saves in tr->ysave (through its readout) into
 * *loss and tr->data_loss; with grad, the task's part of grad zeroed and
 * given the readout's VJP, and the saves' cotangent in tr->ybar (without
 * a readout tr->ybar is tr->obsbar, which the loss filled). */
static int fit_loss(nde_trainer *tr, const double *th, double *loss,
                    double *grad)
{
    nde_task *task = tr->task;
    const nde_task_type *tt = task->type;
    const nde_task_batch *b = &tr->batch;
    int rc;

    if ((tt->readout &&
         (rc = tt->readout(task, th, b, tr->ysave, tr->obs)) != NDE_OK) ||
        (rc = tt->loss(task, b, tr->obs, loss, tr->obsbar)) != NDE_OK)
        return rc;
    if (!isfinite(*loss))
        return nde_error(tr->ctx, NDE_ENONFINITE,
                         "the loss is not finite (%g)", *loss);
    tr->data_loss = *loss;
    if (!grad)
        return NDE_OK;
    memset(grad + tr->Pf, 0, task->nparams * sizeof *grad);
    if (!tt->readout)
        return NDE_OK;
    memset(tr->ybar, 0, b->nsave * tr->B * tr->dim * sizeof *tr->ybar);
    return tt->readout_vjp(task, th, b, tr->ysave, tr->obsbar, tr->ybar,
                           grad + tr->Pf);
}

static int shards_loss_grad(nde_trainer *tr, nde_adjoint *a,
                            const nde_trajectory *traj, const double *theta,
                            double *loss, double *grad, nde_stats *st)
{
    nde_task *task = tr->task;
    const nde_task_type *tt = task->type;
    const nde_task_batch *b = &tr->batch;
    const double *th = theta + tr->Pf, *y0;
    const size_t T = b->nsave, dim = tr->dim, S = tr->nshards;
    const size_t fa = SHARD_NST, fb = T * dim;           /* forward    */
    const size_t ba = SHARD_NST + tr->Pf, bb = dim;      /* backward   */
    const double t0 = b->t0, t1 = b->tsave[T - 1];
    nde_solve_opts o = tr->opts;
    nde_stats sst;
    size_t p, s, k, lo, rows; /* p: a slot of this rank's */
    int rc = NDE_OK;

    memset(st, 0, sizeof *st);
    tr->reg_total = 0.0;
    tr->data_loss = NAN;
    if ((rc = lift_batch(tr, th, &y0)) != NDE_OK)
        return rc;
    /* forward: record = stats, then the saves (T x rows x dim) */
    for (p = tr->s0; p < tr->s1; p++) {
        double *d = shard_begin(tr, s = tr->slot_shard[p], fa, fb, &lo, &rows);
        nde_trajectory **rec = &tr->shard_traj[s];
        if (rc != NDE_OK) {
            d[SHARD_STATUS] = rc;
            continue;
        }
        if (grad && *rec && ((*rec)->record != traj->record ||
                             (*rec)->max_states != traj->max_states)) {
            nde_trajectory_destroy(*rec);
            *rec = NULL;
        }
        if (grad && !*rec &&
            !(*rec = nde_trajectory_create(traj->record, traj->max_states)))
            rc = nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
        memset(&sst, 0, sizeof sst);
        o.record = grad ? *rec : NULL;
        if (rc == NDE_OK &&
            (rc = nde_solver_set_batch(tr->solver, rows)) == NDE_OK &&
            (rc = nde_solve(tr->solver, &o, theta, t0, y0 + lo * dim, t1, T,
                            b->tsave, d + SHARD_NST, &sst)) != NDE_OK)
            nde_error_prefix(tr->ctx, "forward solve");
        shard_note(tr, d, rc, &sst);
    }
    nde_solver_set_batch(tr->solver, tr->B);
    if ((rc = shards_settle(tr, fa, fb, st, 0)) != NDE_OK)
        return rc;
    for (s = 0; s < S; s++) {
        const double *y = shard_record(tr, s, fa, fb) + SHARD_NST;
        lo = shard_first_row(tr, s);
        rows = shard_first_row(tr, s + 1) - lo;
        for (k = 0; k < T; k++)
            memcpy(tr->ysave + (k * tr->B + lo) * dim, y + k * rows * dim,
                   rows * dim * sizeof *tr->ysave);
    }
    if ((rc = fit_loss(tr, th, loss, grad)) != NDE_OK || !grad)
        return rc;
    /* backward: record = stats, the field's gradient (Pf), dL/dy0 (rows
     * x dim) */
    for (p = tr->s0; p < tr->s1; p++) {
        double *d = shard_begin(tr, s = tr->slot_shard[p], ba, bb, &lo, &rows);
        size_t nct;
        if (rc != NDE_OK) {
            d[SHARD_STATUS] = rc;
            continue;
        }
        for (k = 0; k < T; k++)
            memcpy(tr->shard_ct + k * rows * dim,
                   tr->ybar + (k * tr->B + lo) * dim,
                   rows * dim * sizeof *tr->shard_ct);
        nct = data_cotangents(tr, b->tsave, tr->shard_ct, rows * dim);
        memset(&sst, 0, sizeof sst);
        if ((rc = nde_solver_set_batch(tr->solver, rows)) == NDE_OK)
            rc = adjoint_grad(tr, a, &o, tr->shard_traj[s], theta, t0, t1,
                              tr->ct, nct, d + SHARD_NST + tr->Pf,
                              d + SHARD_NST, &sst);
        shard_note(tr, d, rc, &sst);
    }
    nde_solver_set_batch(tr->solver, tr->B);
    if ((rc = shards_settle(tr, ba, bb, st, 1)) != NDE_OK)
        return rc;
    /* from shard 0's own bits, not 0 + them: -0.0 stays -0.0 */
    memcpy(grad, shard_record(tr, 0, ba, bb) + SHARD_NST,
           tr->Pf * sizeof *grad);
    for (s = 0; s < S; s++) {
        const double *d = shard_record(tr, s, ba, bb) + SHARD_NST;
        lo = shard_first_row(tr, s);
        rows = shard_first_row(tr, s + 1) - lo;
        for (size_t i = 0; s > 0 && i < tr->Pf; i++)
            grad[i] += d[i];
        memcpy(tr->ybar0 + lo * dim, d + tr->Pf,
               rows * dim * sizeof *tr->ybar0);
    }
    if (tt->lift_vjp &&
        (rc = tt->lift_vjp(task, th, b, tr->ybar0, grad + tr->Pf)) != NDE_OK)
        return rc;
    return NDE_OK;
}

/*
 * The loss of the current batch at theta and, when grad is not NULL, its
 * gradient through adjoint a: lift, solve (regularizers' extra save times
 * merged in), readout, the task's loss, the regularizers, the adjoint from
 * the loss's and the regularizers' cotangents, and the task's VJPs.
 */
static int loss_grad(nde_trainer *tr, nde_adjoint *a, nde_trajectory *traj,
                     const double *theta, double *loss, double *grad,
                     nde_stats *st)
{
    nde_task *task = tr->task;
    const nde_task_type *tt = task->type;
    const nde_task_batch *b = &tr->batch;
    const double *th = theta + tr->Pf, *y0;
    const size_t per = tr->B * tr->dim, T = b->nsave;
    nde_solve_opts o = tr->opts;
    const double *ts = b->tsave, *tk = b->tsave;
    double *yout = tr->ysave, t0 = b->t0, t1, t1s, reg = 0.0;
    size_t ns = T;
    int rc;

    if (tr->nshards > 1)
        return shards_loss_grad(tr, a, traj, theta, loss, grad, st);
    memset(st, 0, sizeof *st);
    tr->reg_total = 0.0;
    tr->data_loss = NAN;
    if (grad || tr->nregs) {
        if (!o.per_row)
            o.record = traj;
        else if ((rc = rows_prepare(tr, traj)) != NDE_OK)
            return rc;
        else
            o.record_rows = tr->row_traj;
    }
    if ((rc = nde_solver_set_batch(tr->solver, tr->B)) != NDE_OK)
        return rc;
    t1 = t1s = b->tsave[T - 1];
    if ((rc = lift_batch(tr, th, &y0)) != NDE_OK)
        return rc;
    if (tr->nregs) {
        if ((rc = regs_before(tr, t0, &t1s)) != NDE_OK)
            return rc;
        plan_saves(tr, t0, t1, t1s, b->tsave, T);
        ts = tr->solve_t;
        tk = tr->tk;
        ns = tr->nsolve;
        yout = tr->ysolve;
    }
    /* A fixed-step solver's grid stretches with the observation times
     * when STEER moves t1, so they stay grid points (and the solve takes
     * as many steps as unmoved). */
    if (!(tr->solver->type->info.provides & NDE_CAP_ADAPTIVE) && t1s != t1)
        o.dt *= (t1s - t0) / (t1 - t0);
    if (tr->sde) {
        /* the iteration's path on the solve's interval (moved by STEER) */
        if ((rc = nde_brownian_reset(
                 tr->bm, brownian_seed(tr, (uint64_t)tr->iter), t0, t1s,
                 o.dt, tr->B * nde_field_brownian_dim(tr->field))) != NDE_OK)
            return rc;
        o.brownian = tr->bm;
    }
    rc = nde_solve(tr->solver, &o, theta, t0, y0, t1s, ns, ts, yout, st);
    st->status = rc;
    st->nfe_backward = 0;
    if (rc != NDE_OK) {
        nde_error_prefix(tr->ctx, "forward solve");
        return rc;
    }
    if (tr->nregs)
        gather_saves(tr, tr->ysave, T);
    if ((rc = fit_loss(tr, th, loss, grad)) != NDE_OK)
        return rc;
    if (o.per_row) {
        if ((rc = rows_after(tr, a, &o, theta, t0, t1, t1s, &reg, grad,
                             st)) !=
            NDE_OK)
            return rc;
    } else if (tr->nregs) {
        const nde_regularizer_saves sv = {T, tk, tr->ysave};
        regs_clear(tr);
        if ((rc = regs_after(tr, &o, traj, theta, t0, t1s, &sv, tr->extra_y,
                             tr->B, st, &reg)) != NDE_OK)
            return rc;
    }
    if (tr->nregs) {
        tr->reg_total = reg;
        *loss += reg;
    }
    if (!grad)
        return NDE_OK;
    if (!o.per_row &&
        (rc = adjoint_grad(tr, a, &o, traj, theta, t0, t1s, tr->ct,
                           data_cotangents(tr, tk, tr->ybar, per), tr->ybar0,
                           grad, st)) != NDE_OK)
        return rc;
    if (tt->lift_vjp &&
        (rc = tt->lift_vjp(task, th, b, tr->ybar0, grad + tr->Pf)) != NDE_OK)
        return rc;
    add_reg_grads(tr, grad);
    return NDE_OK;
}

/* The learning rate of the next optimizer step. */
static double step_lr(const nde_trainer *tr)
{
    return tr->set.lr * tr->tot.lr_scale *
           pow(tr->set.lr_decay, (double)tr->opt_steps);
}

/* Adam (Kingma & Ba 2015, Algorithm 1) or Adadelta (Zeiler 2012,
 * Algorithm 1, with torch.optim.Adadelta's lr on the step), with an L2
 * term added to the gradient as torch's weight_decay does; the adversary's
 * parameters at their own rate and clamped to their bounds after the
 * step (the gradient given is already negated for them). Pass 0 only checks
 * that every new theta, m and v is finite (g * g of a huge weight-decay
 * term can overflow v), pass 1 stores them: a refused update leaves the
 * state as it was, and no checkpoint holds what its loader refuses. */
static int optimizer_step(nde_trainer *tr)
{
    const nde_train_settings *s = &tr->set;
    const double t = (double)(tr->opt_steps + 1);
    const double lr = step_lr(tr), lr_adv = lr * s->adversary_lr / s->lr;
    const double c1 = 1.0 - pow(s->beta1, t), c2 = 1.0 - pow(s->beta2, t);
    const size_t P = tr->P;
    double *th = tr->opt_next, *m = th + P, *v = m + P;
    size_t i, bad = P;

    /* into opt_next first: a step that is not finite changes nothing */
    for (i = 0; i < P; i++) {
        const double g = tr->grad[i] + s->weight_decay * tr->theta[i];
        const double lri = tr->adv && tr->adv[i] ? lr_adv : lr;
        if (s->optimizer == NDE_OPTIMIZER_ADADELTA) {
            /* Zeiler 2012, Algorithm 1, with torch's lr on the step */
            double step;
            v[i] = s->rho * tr->v[i] + (1.0 - s->rho) * g * g;
            step = sqrt(tr->m[i] + s->eps) / sqrt(v[i] + s->eps) * g;
            m[i] = s->rho * tr->m[i] + (1.0 - s->rho) * step * step;
            th[i] = tr->theta[i] - lri * step;
        } else {
            m[i] = s->beta1 * tr->m[i] + (1.0 - s->beta1) * g;
            v[i] = s->beta2 * tr->v[i] + (1.0 - s->beta2) * g * g;
            th[i] = tr->theta[i] -
                    lri * (m[i] / c1) / (sqrt(v[i] / c2) + s->eps);
        }
        if (tr->clamp && tr->clamp[i] > 0)
            th[i] = fmin(fmax(th[i], -tr->clamp[i]), tr->clamp[i]);
        if (bad == P && !(isfinite(th[i]) && isfinite(m[i]) && isfinite(v[i])))
            bad = i;
    }
    if (bad < P)
        return nde_error(tr->ctx, NDE_ENONFINITE,
                         "the %s update of parameter %zu is not finite "
                         "(theta %g, m %g, v %g: lr or weight_decay too "
                         "large?)",
                         s->optimizer == NDE_OPTIMIZER_ADADELTA ? "Adadelta"
                                                                : "Adam",
                         bad, th[bad], m[bad], v[bad]);
    if (tr->good) {
        memcpy(tr->good, tr->theta, P * sizeof *th);
        memcpy(tr->good + P, tr->m, P * sizeof *m);
        memcpy(tr->good + 2 * P, tr->v, P * sizeof *v);
        tr->good_t = tr->opt_steps;
    }
    memcpy(tr->theta, th, P * sizeof *th);
    memcpy(tr->m, m, P * sizeof *m);
    memcpy(tr->v, v, P * sizeof *v);
    tr->opt_steps++;
    return NDE_OK;
}

/* A failure the solve can cause, which the on_failure policy may absorb
 * (a field's NDE_EFATAL, a lack of memory, ... always stop). */
int nde_trainer_absorbs(const nde_trainer *tr, int status)
{
    return tr->set.on_failure != NDE_ON_FAILURE_STOP &&
           (status == NDE_ERETRY || status == NDE_EMAXSTEPS ||
            status == NDE_ESTEPSIZE || status == NDE_ENONFINITE);
}

/* The failed iteration m (status rc) under the on_failure policy: counted
 * as done with its batch dropped (NDE_OK), or rc. */
static int absorb_failure(nde_trainer *tr, nde_train_step *m, int rc)
{
    static const char *const policy[] = {"stop", "skip", "backoff"};
    const nde_train_settings *s = &tr->set;

    if (!nde_trainer_absorbs(tr, rc))
        return rc;
    if (tr->tot.failures >= s->max_failures) {
        nde_error_prefix(tr->ctx, "on_failure = %s: failed iteration %ld "
                         "after %ld absorbed (max_failures = %ld)",
                         policy[s->on_failure], tr->tot.failures + 1,
                         tr->tot.failures, s->max_failures);
        return rc;
    }
    m->failed = rc;
    tr->tot.failures++;
    if (s->on_failure == NDE_ON_FAILURE_BACKOFF) {
        /* the step that led here goes too: the state before it, a
         * smaller step from there */
        if (tr->good_t >= 0) {
            memcpy(tr->theta, tr->good, tr->P * sizeof *tr->theta);
            memcpy(tr->m, tr->good + tr->P, tr->P * sizeof *tr->m);
            memcpy(tr->v, tr->good + 2 * tr->P, tr->P * sizeof *tr->v);
            tr->opt_steps = tr->good_t;
        }
        tr->tot.lr_scale *= 0.5;
    }
    tr->iter++;
    return NDE_OK;
}

/* The proximal steps of the regularizers that take one (regularizer.h),
 * in config order, on the field's parameters after the optimizer's step
 * of learning rate lr. */
static int regs_prox(nde_trainer *tr, double lr)
{
    for (size_t j = 0; j < tr->nregs; j++) {
        nde_train_reg *g = &tr->regs[j];
        const double w = nde_weight_at(&g->w, tr->iter, tr->set.iterations);
        int rc;
        if (!g->r->proximal)
            continue;
        if ((rc = g->r->type->prox(g->r, tr->theta, lr, w)) != NDE_OK) {
            nde_error_prefix(tr->ctx, "regularizer '%s'", g->name);
            return rc;
        }
        for (size_t i = 0; i < tr->Pf; i++)
            if (!isfinite(tr->theta[i]))
                /* a plugin's fault, after the optimizer's step: not a failure
                 * on_failure may absorb, which would keep that step */
                return nde_error(tr->ctx, NDE_EPLUGIN,
                                 "regularizer '%s': its proximal step made "
                                 "parameter %zu not finite", g->name, i);
    }
    return NDE_OK;
}

int nde_trainer_step(nde_trainer *tr, nde_train_step *m)
{
    const double start = now_s();
    double norm = 0.0;
    nde_stats st;
    size_t i;
    int rc, prox_failed = 0;

    memset(m, 0, sizeof *m);
    m->iteration = tr->iter + 1;
    m->loss = NAN;
    m->grad_norm = NAN;
    memset(&st, 0, sizeof st);
    tr->reg_total = 0.0;
    tr->data_loss = NAN;
    tr->data_grad_norm = NAN;
    for (size_t j = 0; j < tr->nregs; j++)
        tr->regs[j].grad_norm = NAN;
    if ((rc = sample_batch(tr)) == NDE_OK)
        rc = loss_grad(tr, tr->adj, tr->traj, tr->theta, &m->loss, tr->grad,
                       &st);
    m->reg = tr->reg_total;
    m->data_loss = tr->data_loss;
    m->data_grad_norm = tr->data_grad_norm;
    m->nfe_forward = st.nfe;
    m->nfe_backward = st.nfe_backward;
    m->steps_accepted = st.steps_accepted;
    m->steps_rejected = st.steps_rejected;
    tr->tot.nfe_forward += st.nfe;
    tr->tot.nfe_backward += st.nfe_backward;
    if (rc == NDE_OK) {
        norm = norm2(tr->grad, tr->P);
        m->grad_norm = norm;
        if (!isfinite(norm))
            rc = nde_error(tr->ctx, NDE_ENONFINITE,
                           "the gradient is not finite");
    }
    if (rc == NDE_OK) {
        if (tr->set.clip > 0 && norm > tr->set.clip)
            for (i = 0; i < tr->P; i++)
                tr->grad[i] *= tr->set.clip / norm;
        /* the adversary ascends the loss */
        for (i = 0; tr->adv && i < tr->P; i++)
            if (tr->adv[i])
                tr->grad[i] = -tr->grad[i];
        const double lr = step_lr(tr);
        if ((rc = optimizer_step(tr)) == NDE_OK) {
            rc = regs_prox(tr, lr);
            prox_failed = rc != NDE_OK;
        }
    }
    if (rc != NDE_OK) {
        nde_error_prefix(tr->ctx, "iteration %ld", m->iteration);
        m->time_s = now_s() - start;
        tr->tot.time_s += m->time_s;
        /* after the optimizer's step the parameters moved: nothing to
         * absorb */
        return prox_failed ? rc : absorb_failure(tr, m, rc);
    }
    tr->iter++;
    if (tr->avg && tr->iter >= tr->set.average_from) {
        /* the mean of the n steps so far */
        const double w = 1.0 / (double)++tr->navg;
        if (tr->navg == 1)
            memcpy(tr->avg, tr->theta, tr->P * sizeof *tr->avg);
        for (i = 0; tr->navg > 1 && i < tr->P; i++)
            tr->avg[i] += w * (tr->theta[i] - tr->avg[i]);
    }
    m->time_s = now_s() - start;
    tr->tot.time_s += m->time_s;
    return NDE_OK;
}


/* ---- evaluation and prediction ------------------------------------------- */

static int predict(nde_trainer *tr, uint64_t seed, double t0,
                   const double *y0, size_t batch, double t1, size_t nsave,
                   const double *tsave, double *ysave, nde_stats *st)
{
    nde_solver *s = tr->do_solver ? tr->do_solver : tr->solver;
    nde_solve_opts o = tr->opts;
    int rc;

    o.record = NULL;
    memset(st, 0, sizeof *st);
    if (batch > s->batch_max)
        return nde_error(tr->ctx, NDE_EINVAL,
                         "predict: %zu initial states, at most %zu", batch,
                         s->batch_max);
    if ((rc = nde_solver_set_batch(s, batch)) != NDE_OK)
        return rc;
    if (tr->do_solver) {
        for (size_t i = 0; i < batch * tr->dim; i++)
            tr->y0do[i] = isnan(tr->do_value[i % tr->dim])
                              ? y0[i]
                              : tr->do_value[i % tr->dim];
        y0 = tr->y0do;
    }
    if (tr->sde) {
        if (!(t1 > t0))
            return nde_error(tr->ctx, NDE_EINVAL,
                             "predict: an SDE is sampled forwards (t0 %g, "
                             "t1 %g)", t0, t1);
        if ((rc = nde_brownian_reset(
                 tr->bm, seed, t0, t1, o.dt,
                 batch * nde_field_brownian_dim(tr->field))) != NDE_OK)
            return rc;
        o.brownian = tr->bm;
    }
    rc = nde_solve(s, &o, model_params(tr), t0, y0, t1, nsave, tsave, ysave,
                   st);
    st->status = rc;
    return rc;
}

/* Under log units every given value must be positive (NaN: not given):
 * NDE_EINVAL naming the first that is not, in `what`. */
static int check_log_units(const nde_trainer *tr, const double *v, size_t n,
                           const char *what)
{
    for (size_t i = 0; tr->log_units && i < n; i++)
        if (v[i] <= 0)
            return nde_error(tr->ctx, NDE_EINVAL,
                             "%s: the model works in the logs of the data's "
                             "values ([data] normalize = log), and state %zu "
                             "is given %g", what, i % tr->dim, v[i]);
    return NDE_OK;
}

/* n values (whole rows of dim) from the data's units into the task's
 * (in may be out), and back in place; no-ops for a task without units. */
static void to_task_units(const nde_trainer *tr, const double *in,
                          double *out, size_t n)
{
    for (size_t i = 0; tr->shift && i < n; i++)
        out[i] = ((tr->log_units ? log(in[i]) : in[i]) -
                  tr->shift[i % tr->dim]) /
                 tr->scale[i % tr->dim];
}

static void to_data_units(const nde_trainer *tr, double *y, size_t n)
{
    for (size_t i = 0; tr->shift && i < n; i++) {
        y[i] = tr->shift[i % tr->dim] + tr->scale[i % tr->dim] * y[i];
        if (tr->log_units)
            y[i] = exp(y[i]);
    }
}

int nde_trainer_intervene(nde_trainer *tr, const double *values)
{
    unsigned char *held = NULL;
    size_t nheld = 0;
    int rc;

    intervention_free(tr);
    if (!values)
        return NDE_OK;
    if ((rc = check_log_units(tr, values, tr->dim, "intervene")) != NDE_OK)
        return rc;
    if (!(held = calloc(tr->dim, 1)) ||
        !(tr->do_value = malloc(tr->dim * sizeof *tr->do_value)) ||
        !(tr->y0do = malloc(tr->bmax * tr->dim * sizeof *tr->y0do))) {
        free(held);
        intervention_free(tr);
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    }
    for (size_t j = 0; j < tr->dim; j++) {
        held[j] = !isnan(values[j]);
        nheld += held[j];
        tr->do_value[j] = values[j];
    }
    to_task_units(tr, tr->do_value, tr->do_value, tr->dim);
    rc = nheld ? nde_field_create_clamped(tr->ctx, tr->field, held,
                                          &tr->do_field)
               : NDE_OK;
    if (rc == NDE_OK && nheld)
        rc = nde_solver_create(tr->ctx, tr->cfg, "solver", tr->do_field,
                               &tr->do_solver);
    free(held);
    if (rc != NDE_OK || !nheld)
        intervention_free(tr);
    return rc;
}

/* predict in the data's units: y0 into the task's, the saves back. */
static int predict_data(nde_trainer *tr, uint64_t seed, double t0,
                        const double *y0, size_t batch, double t1,
                        size_t nsave, const double *tsave, double *ysave,
                        nde_stats *st)
{
    const size_t n = batch * tr->dim;
    int rc;

    if (!tr->shift)
        return predict(tr, seed, t0, y0, batch, t1, nsave, tsave, ysave, st);
    if (batch > tr->bmax) {
        memset(st, 0, sizeof *st);
        return nde_error(tr->ctx, NDE_EINVAL,
                         "predict: %zu initial states, at most %zu", batch,
                         tr->bmax);
    }
    if ((rc = check_log_units(tr, y0, n, "predict")) != NDE_OK) {
        memset(st, 0, sizeof *st);
        return rc;
    }
    to_task_units(tr, y0, tr->y0u, n);
    rc = predict(tr, seed, t0, tr->y0u, batch, t1, nsave, tsave, ysave, st);
    if (rc == NDE_OK)
        to_data_units(tr, ysave, n * nsave);
    return rc;
}

int nde_trainer_predict(nde_trainer *tr, double t0, const double *y0,
                        size_t batch, double t1, size_t nsave,
                        const double *tsave, double *ysave, nde_stats *st)
{
    return predict_data(tr, brownian_seed(tr, EVAL_PATH), t0, y0, batch, t1,
                        nsave, tsave, ysave, st);
}

int nde_trainer_sample(nde_trainer *tr, uint64_t seed, double t0,
                       const double *y0, size_t batch, double t1,
                       size_t nsave, const double *tsave, double *ysave,
                       nde_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!tr->sde)
        return nde_error(tr->ctx, NDE_EINVAL,
                         "sample: the field is not an SDE (no diffusion)");
    return predict_data(tr, seed, t0, y0, batch, t1, nsave, tsave, ysave,
                        st);
}

size_t nde_trainer_test_observed(const nde_trainer *tr, size_t i,
                                 const double **obs)
{
    const nde_task *t = tr->task;

    *obs = NULL;
    return t->type->test_observed && i < t->ntest
               ? t->type->test_observed(t, i, obs)
               : 0;
}

int nde_trainer_param_data_value(const nde_trainer *tr, size_t i,
                                 double *value)
{
    const nde_task *t = tr->task;
    const double *shift = NULL, *scale = NULL;
    int j;

    if (i < tr->Pf || i >= tr->P || !t->type->param_state || !t->type->units)
        return -1;
    if ((j = t->type->param_state(t, i - tr->Pf)) < 0)
        return -1;
    t->type->units(t, &shift, &scale);
    if (!shift)
        return -1;
    *value = shift[j] + scale[j] * tr->theta[i];
    if (tr->log_units)
        *value = exp(*value);
    return j;
}

size_t nde_trainer_test_held_from(const nde_trainer *tr, size_t i)
{
    const nde_task *t = tr->task;

    return t->type->test_held_from && i < t->ntest
               ? t->type->test_held_from(t, i)
               : 0;
}

const char *const *nde_trainer_state_names(const nde_trainer *tr)
{
    const nde_task *t = tr->task;
    const char *const *names =
        t->type->state_names ? t->type->state_names(t) : NULL;
    return names ? names : tr->field->state_names;
}

size_t nde_trainer_input_dim(const nde_trainer *tr)
{
    return tr->task->input_dim;
}

/* The task lifts whole batches: the n rows go first, the last one repeats
 * up to the batch. */
int nde_trainer_lift(nde_trainer *tr, const double *input, size_t n,
                     double *y0, double *t0, double *t1)
{
    nde_task *t = tr->task;
    const size_t in = t->input_dim, D = tr->dim;
    double *rows = NULL;
    int rc;

    if (n == 0 || n > t->rows)
        return nde_error(tr->ctx, NDE_EINVAL, "lift: %zu rows (1 to %zu)",
                         n, t->rows);
    if ((rc = sample_batch(tr)) != NDE_OK)
        return rc;
    *t0 = tr->batch.t0;
    *t1 = tr->batch.tsave[tr->batch.nsave - 1];
    if (!t->type->lift) {
        memcpy(y0, input, n * D * sizeof *y0);
        return NDE_OK;
    }
    if (in == D && (rc = check_log_units(tr, input, n * in, "lift")) != NDE_OK)
        return rc;
    if (!(rows = malloc(t->rows * in * sizeof *rows)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    for (size_t r = 0; r < t->rows; r++)
        memcpy(rows + r * in, input + (r < n ? r : n - 1) * in,
               in * sizeof *rows);
    /* the task's units in, the data's out (a task with units lifts its
     * states, in = D) */
    if (in == D)
        to_task_units(tr, rows, rows, t->rows * in);
    tr->batch.input = rows;
    if ((rc = t->type->lift(t, model_params(tr) + tr->Pf, &tr->batch,
                            tr->y0b)) == NDE_OK) {
        memcpy(y0, tr->y0b, n * D * sizeof *y0);
        to_data_units(tr, y0, n * D);
    }
    tr->batch.input = NULL;
    free(rows);
    return rc;
}

/* The model as the task's evaluation solves it, in the task's units:
 * nde_trainer_predict without the change of units, counting NFE. */
static int eval_predict(const nde_task_model *m, double t0, const double *y0,
                        size_t rows, double t1, size_t nsave,
                        const double *tsave, double *ysave)
{
    nde_trainer *tr = m->self;
    nde_stats st;
    int rc;

    rc = predict(tr, brownian_seed(tr, EVAL_PATH), t0, y0, rows, t1, nsave,
                 tsave, ysave, &st);
    tr->eval_nfe += st.nfe;
    return rc;
}

int nde_trainer_evaluate(nde_trainer *tr, nde_eval_result *r)
{
    const nde_task_model m = {eval_predict, tr};
    nde_task_metrics met = {NAN, NAN};
    double start = now_s();
    int rc;

    memset(r, 0, sizeof *r);
    tr->eval_nfe = 0;
    rc = tr->task->type->evaluate(tr->task, model_params(tr) + tr->Pf, &m,
                                  &met);
    r->nfe = tr->eval_nfe;
    r->time_s = now_s() - start;
    r->test_loss = rc == NDE_OK ? met.test_loss : NAN;
    r->test_accuracy = rc == NDE_OK ? met.test_accuracy : NAN;
    if (rc != NDE_OK)
        nde_error_prefix(tr->ctx, "evaluation after iteration %ld", tr->iter);
    return rc;
}

size_t nde_trainer_ntest(const nde_trainer *tr) { return tr->task->ntest; }

size_t nde_trainer_test_series(const nde_trainer *tr, size_t i,
                               const char **id, const double **t,
                               const double **pred)
{
    if (!tr->task->type->test_series || i >= tr->task->ntest) {
        *id = NULL;
        *t = *pred = NULL;
        return 0;
    }
    return tr->task->type->test_series(tr->task, i, id, t, pred);
}

size_t nde_trainer_test_classes(const nde_trainer *tr, const int **label,
                                const double **prob)
{
    if (!tr->task->type->test_classes) {
        *label = NULL;
        *prob = NULL;
        return 0;
    }
    return tr->task->type->test_classes(tr->task, label, prob);
}

/* ---- gradient check ------------------------------------------------------ */

int nde_trainer_probe(nde_trainer *tr) { return sample_batch(tr); }

int nde_trainer_loss_grad(nde_trainer *tr, nde_adjoint *a,
                          const double *theta, double *loss, double *grad,
                          nde_stats *st)
{
    nde_trajectory *traj = tr->traj;
    unsigned record;
    size_t max_states;

    if (a && a != tr->adj && grad) {
        record_for(tr, a, &record, &max_states);
        if (tr->alt_traj && (tr->alt_traj->record != record ||
                             tr->alt_traj->max_states != max_states)) {
            nde_trajectory_destroy(tr->alt_traj);
            tr->alt_traj = NULL;
        }
        if (!tr->alt_traj &&
            !(tr->alt_traj = nde_trajectory_create(record, max_states)))
            return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
        traj = tr->alt_traj;
    }
    return loss_grad(tr, a ? a : tr->adj, traj, theta, loss, grad, st);
}

void nde_trainer_param_name(const nde_trainer *tr, size_t i, char *buf,
                            size_t size)
{
    if (i < tr->Pf)
        nde_field_param_name(tr->field, i, buf, size);
    else
        tr->task->type->param_name(tr->task, i - tr->Pf, buf, size);
}

size_t nde_trainer_nregularizers(const nde_trainer *tr) { return tr->nregs; }

const char *nde_trainer_regularizer(const nde_trainer *tr, size_t i,
                                    double *value)
{
    if (i >= tr->nregs) {
        if (value)
            *value = NAN;
        return NULL;
    }
    if (value)
        *value = tr->regs[i].value;
    return tr->regs[i].name;
}

double nde_trainer_regularizer_weight(const nde_trainer *tr, size_t i)
{
    return i < tr->nregs ? tr->regs[i].weight : NAN;
}

double nde_trainer_regularizer_grad_norm(const nde_trainer *tr, size_t i)
{
    return i < tr->nregs ? tr->regs[i].grad_norm : NAN;
}

int nde_trainer_add_regularizer(nde_trainer *tr, const char *name,
                                nde_regularizer *r,
                                const nde_weight_schedule *w)
{
    int rc;

    if (!r || !w || !name || !nde_plugin_name_valid(name))
        return nde_error(tr->ctx, NDE_EINVAL,
                         "add regularizer: a name matching [a-z0-9_]+, a "
                         "regularizer and a schedule are needed");
    if (r->solver != tr->solver)
        return nde_error(tr->ctx, NDE_EINVAL,
                         "add regularizer '%s': made for another solver",
                         name);
    for (size_t i = 0; i < tr->nregs; i++)
        if (strcmp(tr->regs[i].name, name) == 0)
            return nde_error(tr->ctx, NDE_EINVAL,
                             "add regularizer '%s': the name is taken", name);
    if (tr->nshards > 1)
        return nde_error(tr->ctx, NDE_EINVAL,
                         "add regularizer '%s': [train] shards = %zu: a "
                         "sharded batch does not take regularizers", name,
                         tr->nshards);
    if ((rc = push_regularizer(tr, name, r, w)) != NDE_OK)
        return rc;
    if ((rc = regs_alloc(tr)) != NDE_OK) {
        /* the caller keeps r */
        tr->nregs--;
        free(tr->regs[tr->nregs].name);
        regs_alloc(tr);
    }
    return rc;
}

int nde_trainer_set_comm(nde_trainer *tr, nde_comm *comm)
{
    const size_t K = comm ? (size_t)comm->size : 1;

    if (K > tr->nshards)
        return nde_error(tr->ctx, NDE_ECONFIG,
                         "%zu ranks share a batch of [train] shards = %zu: "
                         "set shards to a multiple of the ranks (at most "
                         "batch_size = %ld)", K, tr->nshards,
                         tr->set.batch_size);
    tr->comm = K > 1 ? comm : NULL;
    if (tr->comm) {
        free(tr->shard_cnt);
        if (!(tr->shard_cnt = calloc(3 * K + 1, sizeof *tr->shard_cnt)))
            return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    }
    if (tr->nshards > 1)
        shards_deal(tr, tr->comm ? (size_t)comm->rank : 0, K);
    return NDE_OK;
}
