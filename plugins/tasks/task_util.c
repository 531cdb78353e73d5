/* Helpers of the trainer and the built-in tasks (task_util.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "task_util.h"

#define TRUTH_RTOL 1e-10
#define TRUTH_ATOL 1e-12

void task_time_grid(double *t, size_t n, double t1)
{
    size_t i;

    for (i = 0; i < n; i++)
        t[i] = t1 * (double)i / (double)(n - 1);
    t[n - 1] = t1;
}

int task_solve_truth(nde_ctx *ctx, const char *solver, nde_field *f,
                     const double *theta, const double *y0, size_t n,
                     const double *t, double *y)
{
    const nde_plugin_info *info;
    nde_solver *s = NULL;
    nde_solve_opts o;
    nde_stats st;
    int rc;

    if ((rc = nde_plugin_find(ctx, NDE_KIND_SOLVER, solver, &info)) !=
            NDE_OK ||
        (rc = nde_solver_create_from(ctx, (const nde_solver_type *)info, f,
                                     &s)) != NDE_OK)
        return rc;
    nde_solve_opts_default(&o, s->type);
    o.rtol = TRUTH_RTOL;
    o.atol = TRUTH_ATOL;
    o.max_steps = TASK_TRUTH_MAX_STEPS;
    if ((rc = nde_solver_set_batch(s, 1)) == NDE_OK)
        rc = nde_solve(s, &o, theta, t[0], y0, t[n - 1], n, t, y, &st);
    if (rc != NDE_OK)
        nde_error_prefix(ctx, "[data]: solving the true system");
    nde_solver_destroy(s);
    return rc;
}

/* The first few parameter names of f, "a, b, ... (N in all)", for a
 * message. */
static void param_names_excerpt(const nde_field *f, char *out, size_t len)
{
    char name[128];
    size_t j, used;

    out[0] = '\0';
    if (!f->nparams) {
        snprintf(out, len, "none");
        return;
    }
    for (j = 0; j < f->nparams && j < 6; j++) {
        nde_field_param_name(f, j, name, sizeof name);
        used = strlen(out);
        snprintf(out + used, len - used, "%s%s", j ? ", " : "", name);
    }
    used = strlen(out);
    if (j < f->nparams)
        snprintf(out + used, len - used, ", ... (%zu in all)", f->nparams);
}

int task_true_system(nde_ctx *ctx, const nde_task_env *env,
                     nde_section *dsec, size_t dim, size_t rows,
                     size_t nseries, double *y0, nde_field **fout,
                     double **theta_out)
{
    nde_field *f = NULL;
    double *theta = NULL, *values = NULL;
    char **names = NULL, buf[128];
    const char *system;
    size_t n = 0, i, j;
    int rc;

    *fout = NULL;
    *theta_out = NULL;
    if (!nde_section_has(dsec, "y0"))
        return nde_section_error(dsec, "y0", ctx,
                                 "source = field needs the true initial "
                                 "state");
    if ((rc = nde_get_string(dsec, "system", &system, ctx)) != NDE_OK)
        return rc;
    if (!nde_config_section(env->cfg, system))
        return nde_section_error(dsec, "system", ctx,
                                 "the config has no section [%s]", system);
    if ((rc = nde_get_doubles_n(dsec, "y0", y0, nseries * dim, ctx)) != NDE_OK ||
        (rc = nde_field_create(ctx, env->cfg, system, rows, &f)) != NDE_OK)
        goto done;
    if (f->dim != dim) {
        rc = nde_section_error(dsec, "system", ctx,
                               "[%s] has %zu states, the model %zu", system,
                               f->dim, dim);
        goto done;
    }
    if (!(theta = calloc(f->nparams + 1, sizeof *theta))) {
        rc = nde_error(ctx, NDE_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = nde_field_init_params(f, theta,
                                    nde_seed_derive(env->seed,
                                                    NDE_STREAM_INIT))) !=
        NDE_OK)
        goto done;
    if (nde_section_has(dsec, "true_params") &&
        (rc = nde_get_assigns(dsec, "true_params", &names, &values, &n,
                              ctx)) != NDE_OK)
        goto done;
    for (i = 0; i < n; i++) {
        for (j = 0; j < f->nparams; j++) {
            nde_field_param_name(f, j, buf, sizeof buf);
            if (strcmp(buf, names[i]) == 0)
                break;
        }
        if (j == f->nparams) {
            char known[300];
            param_names_excerpt(f, known, sizeof known);
            rc = nde_section_error(dsec, "true_params", ctx,
                                   "[%s] has no parameter '%s'; its "
                                   "parameters: %s",
                                   system, names[i], known);
            goto done;
        }
        theta[j] = values[i];
    }
done:
    nde_strings_free(names);
    free(values);
    if (rc == NDE_OK) {
        *fout = f;
        *theta_out = theta;
    } else {
        free(theta);
        nde_field_destroy(f);
    }
    return rc;
}

double task_mse(const double *y, const double *target, size_t n, double *g)
{
    double sum = 0.0, scale;
    size_t i, count = 0;

    for (i = 0; i < n; i++) {
        double r = y[i] - target[i];
        if (isnan(target[i])) {
            g[i] = 0.0;
            continue;
        }
        g[i] = r;
        sum += r * r;
        count++;
    }
    if (count == 0)
        return NAN;
    scale = 2.0 / (double)count;
    for (i = 0; i < n; i++)
        g[i] *= scale;
    return sum / (double)count;
}

double task_test_mse(size_t ntest, const size_t *n, size_t dim,
                     double *const *pred, const double *const *obs)
{
    double sum = 0.0;
    size_t i, j, count = 0;

    for (i = 0; i < ntest; i++)
        for (j = 0; j < n[i] * dim; j++) {
            double d = pred[i][j] - obs[i][j];
            if (isnan(obs[i][j]))
                continue;
            sum += d * d;
            count++;
        }
    return count ? sum / (double)count : NAN;
}

#define DIGEST_K UINT64_C(0x9e3779b97f4a7c15)

static uint64_t digest_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * DIGEST_K;
    return h ^ (h >> 29);
}

void task_digest_init(task_digest *d)
{
    d->h[0] = 1;
    d->h[1] = 2;
    d->h[2] = 3;
    d->h[3] = 4;
}

void task_digest_bytes(task_digest *d, const void *p, size_t len)
{
    const unsigned char *b = p;
    uint64_t w[4], h0 = digest_mix(d->h[0], len), h1 = d->h[1],
                   h2 = d->h[2], h3 = d->h[3];
    size_t chunk;

    for (; len > 0; b += chunk, len -= chunk) {
        chunk = len < sizeof w ? len : sizeof w;
        memset(w, 0, sizeof w);
        memcpy(w, b, chunk);
        h0 = digest_mix(h0, w[0]);
        h1 = digest_mix(h1, w[1]);
        h2 = digest_mix(h2, w[2]);
        h3 = digest_mix(h3, w[3]);
    }
    d->h[0] = h0;
    d->h[1] = h1;
    d->h[2] = h2;
    d->h[3] = h3;
}

void task_digest_dataset(task_digest *d, const nde_dataset *ds)
{
    size_t i;

    if (!ds)
        return;
    for (i = 0; i < ds->nseries; i++) {
        const nde_series *s = &ds->series[i];
        task_digest_bytes(d, s->id, strlen(s->id));
        task_digest_bytes(d, s->t, s->npoints * sizeof *s->t);
        task_digest_bytes(d, s->y, s->npoints * ds->dim * sizeof *s->y);
    }
    if (ds->x)
        task_digest_bytes(d, ds->x,
                          ds->nexamples * ds->nfeatures * sizeof *ds->x);
    if (ds->label)
        task_digest_bytes(d, ds->label, ds->nexamples * sizeof *ds->label);
}

uint64_t task_digest_final(const task_digest *d)
{
    uint64_t h = 0;
    size_t i;

    for (i = 0; i < 4; i++)
        h = digest_mix(h, d->h[i]);
    return h;
}

int task_check_noise(nde_task *t, nde_section *dsec, const nde_task_env *env,
                     int sde)
{
    const int is_sde = env->field->noise != NDE_NOISE_NONE;

    if (is_sde == sde)
        return NDE_OK;
    return nde_section_error(dsec, "source", t->ctx,
                             "task '%s' fits %s, and the field %s",
                             t->type->info.name,
                             sde ? "the moments of an SDE's sample paths"
                                 : "deterministic trajectories or outputs",
                             is_sde ? "is an SDE" : "has no diffusion");
}

uint64_t task_digest_split(const nde_dataset *train, const nde_dataset *test)
{
    task_digest d;

    task_digest_init(&d);
    task_digest_dataset(&d, train);
    task_digest_dataset(&d, test);
    return task_digest_final(&d);
}

void task_glorot(gsl_rng *r, double *w, size_t m, size_t n)
{
    const double a = sqrt(6.0 / (double)(m + n));

    for (size_t i = 0; i < m * n; i++)
        w[i] = a * (2.0 * gsl_rng_uniform(r) - 1.0);
}

double task_xent(size_t C, const double *logits, const int *label, size_t n,
                 double *p)
{
    double sum = 0.0;
    size_t r, k;

    for (r = 0; r < n; r++) {
        const double *row = logits + r * C;
        double mx = -HUGE_VAL, z = 0.0, lse;
        for (k = 0; k < C; k++)
            if (row[k] > mx)
                mx = row[k];
        for (k = 0; k < C; k++)
            z += exp(row[k] - mx);
        lse = mx + log(z);
        sum += lse - row[label[r]];
        for (k = 0; k < C; k++)
            p[r * C + k] = exp(row[k] - lse);
    }
    return sum;
}

void task_xent_loss(size_t C, const double *logits, const int *label,
                    size_t n, double *value, double *g)
{
    size_t r, k;

    *value = task_xent(C, logits, label, n, g) / (double)n;
    for (r = 0; r < n; r++)
        for (k = 0; k < C; k++)
            g[r * C + k] =
                (g[r * C + k] - (label[r] == (int)k ? 1.0 : 0.0)) / (double)n;
}

size_t task_correct(size_t C, const double *p, const int *label, size_t n)
{
    size_t i, k, correct = 0;

    for (i = 0; i < n; i++) {
        const double *row = p + i * C;
        size_t best = 0;
        for (k = 1; k < C; k++)
            if (row[k] > row[best])
                best = k;
        correct += (int)best == label[i];
    }
    return correct;
}

void task_affine(const double *W, const double *b, size_t m, size_t k,
                 const double *x, size_t n, double *y)
{
    size_t r, j, i;

    for (r = 0; r < n; r++)
        for (j = 0; j < m; j++) {
            double s = b[j];
            for (i = 0; i < k; i++)
                s += W[j * k + i] * x[r * k + i];
            y[r * m + j] = s;
        }
}

void task_affine_vjp(const double *W, size_t m, size_t k, const double *x,
                     const double *ybar, size_t n, double *xbar, double *gW,
                     double *gb)
{
    size_t r, j, i;

    for (r = 0; r < n; r++)
        for (j = 0; j < m; j++) {
            const double g = ybar[r * m + j];
            gb[j] += g;
            for (i = 0; i < k; i++) {
                gW[j * k + i] += g * x[r * k + i];
                if (xbar)
                    xbar[r * k + i] += g * W[j * k + i];
            }
        }
}

int task_order_init(task_order *o, size_t n, nde_ctx *ctx)
{
    o->n = n;
    o->epoch = -1;
    o->rng = NULL;
    if (!(o->perm = malloc(n * sizeof *o->perm)) ||
        !(o->rng = gsl_rng_alloc(gsl_rng_mt19937)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    return NDE_OK;
}

void task_order_free(task_order *o)
{
    free(o->perm);
    if (o->rng)
        gsl_rng_free(o->rng);
    o->perm = NULL;
    o->rng = NULL;
}

void task_choose(gsl_rng *rng, size_t *out, size_t k, size_t n,
                 unsigned char *mark)
{
    size_t m = 0;

    /* Floyd: after the draw for j, out holds a uniform (k - n + j + 1)-
     * subset of 0..j */
    for (size_t j = n - k; j < n; j++) {
        size_t v = (size_t)gsl_rng_uniform_int(rng, (unsigned long)j + 1);
        if (mark[v])
            v = j;
        mark[v] = 1;
        out[m++] = v;
    }
    /* increasing order, marks cleared: by a pass over the marks when
     * that costs less than sorting (k^2 / 4 moves on average) */
    if (k * k > n) {
        m = 0;
        for (size_t v = 0; v < n; v++)
            if (mark[v]) {
                mark[v] = 0;
                out[m++] = v;
            }
        return;
    }
    for (size_t i = 0; i < k; i++) {
        const size_t v = out[i];
        size_t p = i;
        mark[v] = 0;
        for (; p > 0 && out[p - 1] > v; p--)
            out[p] = out[p - 1];
        out[p] = v;
    }
}

double task_kth_smallest(double *v, size_t n, size_t k)
{
    long lo = 0, hi = (long)n - 1;
    const long want = (long)k;

    while (lo < hi) {
        const double pivot = v[lo + (hi - lo) / 2];
        long i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                const double x = v[i];
                v[i++] = v[j];
                v[j--] = x;
            }
        }
        /* v[lo, j] <= pivot, v[i, hi] >= pivot, v(j, i) == pivot */
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            break;
    }
    return v[want];
}

size_t task_order_pick(task_order *o, uint64_t seed, uint64_t k)
{
    const long epoch = (long)(k / o->n);

    if (epoch != o->epoch) {
        for (size_t j = 0; j < o->n; j++)
            o->perm[j] = j;
        gsl_rng_set(o->rng, nde_seed_derive(seed, (uint64_t)epoch));
        gsl_ran_shuffle(o->rng, o->perm, o->n, sizeof *o->perm);
        o->epoch = epoch;
    }
    return o->perm[k % o->n];
}

/* ---- [data] normalize -------------------------------------------------- */

int task_units_fit(nde_section *dsec, const nde_dataset *train,
                   double **shift, double **scale, int *log_units,
                   nde_ctx *ctx)
{
    const size_t D = train->dim;
    const char *how;
    size_t i, j, k;
    int rc, standard;

    *shift = *scale = NULL;
    if ((rc = nde_get_string(dsec, "normalize", &how, ctx)) != NDE_OK)
        return rc;
    if (strcmp(how, "none") == 0)
        return NDE_OK;
    *log_units = strcmp(how, "log") == 0;
    standard = *log_units || strcmp(how, "standard") == 0;
    if (!standard && strcmp(how, "minmax") != 0)
        return nde_section_error(dsec, "normalize", ctx,
                                 "'%s' is none, standard, minmax or log",
                                 how);
    if (!(*shift = calloc(D, sizeof **shift)) ||
        !(*scale = calloc(D, sizeof **scale)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    for (j = 0; j < D; j++) {
        double n = 0, mean = 0, m2 = 0, lo = INFINITY, hi = -INFINITY;
        for (i = 0; i < train->nseries; i++) {
            const nde_series *e = &train->series[i];
            for (k = 0; k < e->npoints; k++) {
                double v = e->y[k * D + j], d;
                if (isnan(v))
                    continue;
                if (*log_units && !(v > 0))
                    return nde_section_error(
                        dsec, "normalize", ctx,
                        "log needs positive values, and series '%s' has "
                        "%s = %g at t = %g", e->id, train->names[j], v,
                        e->t[k]);
                if (*log_units)
                    v = log(v);
                /* Welford's update: no cancellation for large means */
                n += 1;
                d = v - mean;
                mean += d / n;
                m2 += d * (v - mean);
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        }
        (*shift)[j] = standard ? mean : lo;
        (*scale)[j] = standard ? (n > 1 ? sqrt(m2 / (n - 1)) : 0) : hi - lo;
        if (!((*scale)[j] > 0) || !isfinite((*scale)[j]))
            return nde_section_error(dsec, "normalize", ctx,
                                     "%s: column '%s' is constant on the "
                                     "training part (%.0f observed values), "
                                     "so it has no scale: use normalize = "
                                     "none", how, train->names[j], n);
    }
    return NDE_OK;
}

void task_units_apply(const double *shift, const double *scale,
                      int log_units, size_t dim, double *y, size_t n, int to)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (to)
            y[i] = ((log_units ? log(y[i]) : y[i]) - shift[i % dim]) /
                   scale[i % dim];
        else if (log_units)
            y[i] = exp(shift[i % dim] + scale[i % dim] * y[i]);
        else
            y[i] = shift[i % dim] + scale[i % dim] * y[i];
}
