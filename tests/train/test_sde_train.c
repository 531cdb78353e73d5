/*
 * test_sde_train.c - SDE training: the moments loss and its cotangents
 * against finite differences, the trainer's gradient against finite
 * differences for both SDE solvers, a short Ornstein-Uhlenbeck fit that
 * matches the data's mean and variance, resume bit for bit, refused
 * configs, and `nde predict --paths`.
 *
 * NDE_EXE is the program (CLI tests). The model is an `expr` OU SDE
 * dx = th (mu - x) dt + s dW with three parameters, so runs take well
 * under a second even under sanitizers.
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nde/nde.h"
#include "nde/train.h"
#include "../test_util.h"

/* The OU model starts from (th, mu, s) = (0.5, 0, 0.2); the data's truth
 * is (1.5, 0.5, 0.6) from x(0) = 2. */
static const char ou_ini[] =
    "[solver]\n"
    "plugin = euler_maruyama\n"
    "dt = 0.05\n"
    "[field]\n"
    "plugin = expr\n"
    "state = x\n"
    "params = th=0.5, mu=0.0, s=0.2\n"
    "dx = th*(mu - x)\n"
    "gx = s\n"
    "[adjoint]\n"
    "plugin = discrete\n"
    "[data]\n"
    "source = field\n"
    "y0 = 2\n"
    "true_params = th=1.5, mu=0.5, s=0.6\n"
    "npoints = 11\n"
    "t1 = 2\n"
    "paths = 2000\n"
    "eval_paths = 2000\n"
    "[train]\n"
    "iterations = 300\n"
    "batch_size = 128\n"
    "lr = 0.05\n"
    "lr_decay = 0.995\n"
    "seed = 1\n"
    "eval_every = 50\n";

static char workdir[1024];

/* ---- the moments loss ---------------------------------------------------- */

/* Central differences of every input, against g; and m, v by hand. */
START_TEST(test_moments_cotangents_fd)
{
    enum { T = 3, B = 5, D = 2, N = T * B * D };
    double y[N], g[N], M[T * D], V[T * D], mean[T * D], var[T * D];
    double num = 0.0, den = 0.0, L, Lp, Lm, h = 1e-6;
    size_t i, k, b, d;
    uint64_t s = 12345;

    for (i = 0; i < N; i++) {
        s = nde_seed_derive(s, i);
        y[i] = (double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    }
    for (i = 0; i < T * D; i++) {
        M[i] = 0.1 * (double)i - 0.2;
        V[i] = 0.05 * (double)i + 0.1;
    }
    L = nde_moments_loss(y, T, B, D, M, V, g, mean, var);
    ck_assert(isfinite(L) && L > 0);
    /* the moments by hand: mean and unbiased variance over the rows */
    for (k = 0; k < T; k++)
        for (d = 0; d < D; d++) {
            double m = 0.0, v = 0.0;
            for (b = 0; b < B; b++)
                m += y[(k * B + b) * D + d] / B;
            for (b = 0; b < B; b++)
                v += pow(y[(k * B + b) * D + d] - m, 2) / (B - 1);
            ck_assert_double_eq_tol(mean[k * D + d], m, 1e-15);
            ck_assert_double_eq_tol(var[k * D + d], v, 1e-15);
        }
    for (i = 0; i < N; i++) {
        const double keep = y[i];
        y[i] = keep + h;
        Lp = nde_moments_loss(y, T, B, D, M, V, NULL, NULL, NULL);
        y[i] = keep - h;
        Lm = nde_moments_loss(y, T, B, D, M, V, NULL, NULL, NULL);
        y[i] = keep;
        num += pow((Lp - Lm) / (2 * h) - g[i], 2);
        den += g[i] * g[i];
    }
    ck_assert_msg(sqrt(num / den) < 1e-8,
                  "cotangents vs finite differences: relative %g",
                  sqrt(num / den));
    /* one row has no variance */
    ck_assert(isnan(nde_moments_loss(y, T, 1, D, M, V, g, NULL, NULL)));
}
END_TEST

/* ---- through the trainer -------------------------------------------------- */

static nde_ctx *ctx;
static nde_config *cfg;

static int trainer_try(const char *text, const char *const *sets,
                       nde_trainer **tr)
{
    *tr = NULL;
    ck_assert_ptr_nonnull(ctx = nde_ctx_create());
    ck_assert_ptr_nonnull(cfg = nde_config_create());
    ck_assert_int_eq(nde_config_load_string(cfg, "ou", text, ctx), NDE_OK);
    for (; sets && *sets; sets++)
        ck_assert_int_eq(nde_config_override(cfg, *sets, ctx), NDE_OK);
    return nde_trainer_create(ctx, cfg, 0, tr);
}

static nde_trainer *trainer_new(const char *const *sets)
{
    nde_trainer *tr;
    ck_assert_msg(trainer_try(ou_ini, sets, &tr) == NDE_OK, "%s",
                  nde_ctx_message(ctx));
    return tr;
}

static void trainer_free(nde_trainer *tr)
{
    nde_trainer_destroy(tr);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    cfg = NULL;
    ctx = NULL;
}

/* The trainer's gradient (forward SDE solve through one Brownian path,
 * moments cotangents, the adjoint) against central differences of its
 * loss: the same path on every call until a step is taken. */
static void trainer_gradient_fd_of(const char *text, const char *solver,
                                   const char *adjoint)
{
    char s1[64], s2[64];
    const char *sets[] = {s1, s2, NULL};
    double theta[3], grad[3], L, Lp, Lm, h = 1e-6, num = 0, den = 0;
    nde_trainer *tr;
    nde_stats st;
    size_t i;

    snprintf(s1, sizeof s1, "solver.plugin=%s", solver);
    snprintf(s2, sizeof s2, "adjoint.plugin=%s", adjoint);
    ck_assert_msg(trainer_try(text, sets, &tr) == NDE_OK, "%s",
                  nde_ctx_message(ctx));
    ck_assert_uint_eq(nde_trainer_nparams(tr), 3);
    memcpy(theta, nde_trainer_params(tr), sizeof theta);
    ck_assert_int_eq(nde_trainer_probe(tr), NDE_OK);
    ck_assert_msg(nde_trainer_loss_grad(tr, NULL, theta, &L, grad, &st) ==
                      NDE_OK,
                  "%s", nde_ctx_message(ctx));
    ck_assert(st.nfe > 0 && st.nfe_backward > 0);
    for (i = 0; i < 3; i++) {
        const double keep = theta[i];
        theta[i] = keep + h;
        ck_assert_int_eq(nde_trainer_loss_grad(tr, NULL, theta, &Lp, NULL,
                                               &st), NDE_OK);
        theta[i] = keep - h;
        ck_assert_int_eq(nde_trainer_loss_grad(tr, NULL, theta, &Lm, NULL,
                                               &st), NDE_OK);
        theta[i] = keep;
        num += pow((Lp - Lm) / (2 * h) - grad[i], 2);
        den += grad[i] * grad[i];
    }
    ck_assert_msg(den > 0 && sqrt(num / den) < 1e-6,
                  "%s + %s: gradient vs finite differences relative %g",
                  solver, adjoint, sqrt(num / den));
    trainer_free(tr);
}

static void trainer_gradient_fd(const char *solver, const char *adjoint)
{
    trainer_gradient_fd_of(ou_ini, solver, adjoint);
}

START_TEST(test_gradient_euler_maruyama_discrete)
{
    trainer_gradient_fd("euler_maruyama", "discrete");
}
END_TEST

START_TEST(test_gradient_reversible_heun_reversible)
{
    trainer_gradient_fd("reversible_heun", "reversible");
}
END_TEST

/* STEER moves t1 (the Brownian path moves with it, the observation
 * times stretch): still the exact gradient of what was solved. */
START_TEST(test_gradient_with_steer)
{
    char text[sizeof ou_ini + 100];
    snprintf(text, sizeof text,
             "%s[regularizer.steer]\nplugin = steer\nb = 0.1\n"
             "weight = 0\n", ou_ini);
    trainer_gradient_fd_of(text, "euler_maruyama", "discrete");
    trainer_gradient_fd_of(text, "reversible_heun", "reversible");
}
END_TEST

/* 300 iterations from (0.5, 0, 0.2): the evaluation's loss falls by a
 * factor of 20 or more (measured about 0.094 -> 2e-4) and the model's
 * mean and variance over its 2000 evaluation paths come within 0.08 and
 * 0.03 of the exact OU moments at every observation time (measured with
 * train seeds 1-4: mean 0.016-0.041, variance 0.009-0.014; the standard
 * error of a 2000-path mean is at most 0.008, and each iteration's 128
 * paths make the gradient noisy). */
static void fit_matches_moments(const char *solver, const char *adjoint)
{
    char s1[64], s2[64];
    const char *sets[] = {s1, s2, NULL};
    const double *tm, *pm, *tv, *pv;
    const char *id;
    nde_eval_result e0, e1;
    nde_train_step m;
    nde_trainer *tr;
    double dm = 0, dv = 0;
    size_t n, k;

    snprintf(s1, sizeof s1, "solver.plugin=%s", solver);
    snprintf(s2, sizeof s2, "adjoint.plugin=%s", adjoint);
    tr = trainer_new(sets);
    ck_assert_int_eq(nde_trainer_evaluate(tr, &e0), NDE_OK);
    while (nde_trainer_iteration(tr) < 300)
        ck_assert_msg(nde_trainer_step(tr, &m) == NDE_OK, "%s",
                      nde_ctx_message(ctx));
    ck_assert_int_eq(nde_trainer_evaluate(tr, &e1), NDE_OK);
    ck_assert(e1.nfe > 0);
    ck_assert_uint_eq(nde_trainer_ntest(tr), 2);
    n = nde_trainer_test_series(tr, 0, &id, &tm, &pm);
    ck_assert_str_eq(id, "mean");
    ck_assert_uint_eq(n, 11);
    ck_assert_uint_eq(nde_trainer_test_series(tr, 1, &id, &tv, &pv), 11);
    ck_assert_str_eq(id, "var");
    /* the data's moments: OU from 2 with (1.5, 0.5, 0.6) solved exactly,
     * mean mu + (x0 - mu) e^{-th t}, var s^2 (1 - e^{-2 th t}) / (2 th);
     * compare the model to them (the data carry EM and sampling error) */
    for (k = 0; k < n; k++) {
        const double t = tm[k];
        const double M = 0.5 + 1.5 * exp(-1.5 * t);
        const double V = 0.36 * (1 - exp(-3 * t)) / 3.0;
        dm = fmax(dm, fabs(pm[k] - M));
        dv = fmax(dv, fabs(pv[k] - V));
    }
    fprintf(stderr,
            "%s + %s: test loss %.3g -> %.3g; max |mean - exact| %.3g, "
            "max |var - exact| %.3g\n",
            solver, adjoint, e0.test_loss, e1.test_loss, dm, dv);
    ck_assert_msg(e1.test_loss < e0.test_loss / 20, "%g -> %g",
                  e0.test_loss, e1.test_loss);
    ck_assert_msg(dm < 0.08 && dv < 0.03, "mean off by %g, variance by %g",
                  dm, dv);
    trainer_free(tr);
}

START_TEST(test_fit_euler_maruyama)
{
    fit_matches_moments("euler_maruyama", "discrete");
}
END_TEST

START_TEST(test_fit_reversible_heun)
{
    fit_matches_moments("reversible_heun", "reversible");
}
END_TEST

/* Evaluation uses one fixed Brownian path: the same parameters give the
 * same test loss; sampling uses the seed given. */
START_TEST(test_evaluation_fixed_path)
{
    nde_trainer *tr = trainer_new(NULL);
    nde_eval_result a, b;
    nde_train_step m;
    double y0[4] = {2, 2, 2, 2}, t[2] = {0, 1}, p[8], q[8];
    nde_stats st;

    ck_assert_int_eq(nde_trainer_evaluate(tr, &a), NDE_OK);
    ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
    ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
    memcpy(nde_trainer_params(tr), (double[]){0.5, 0.0, 0.2},
           3 * sizeof(double));
    ck_assert_int_eq(nde_trainer_evaluate(tr, &b), NDE_OK);
    ck_assert(a.test_loss == b.test_loss);
    ck_assert_int_eq(nde_trainer_sample(tr, 5, 0, y0, 4, 1, 2, t, p, &st),
                     NDE_OK);
    ck_assert_int_eq(nde_trainer_sample(tr, 5, 0, y0, 4, 1, 2, t, q, &st),
                     NDE_OK);
    ck_assert(memcmp(p, q, sizeof p) == 0);
    ck_assert_int_eq(nde_trainer_sample(tr, 6, 0, y0, 4, 1, 2, t, q, &st),
                     NDE_OK);
    ck_assert(memcmp(p + 4, q + 4, 4 * sizeof(double)) != 0);
    /* four different paths from one y0 */
    ck_assert(p[4] != p[5] && p[5] != p[6] && p[6] != p[7]);
    trainer_free(tr);
}
END_TEST

/* ---- refused configs ----------------------------------------------------- */

static void refused(const char *text, const char *const *sets,
                    const char *needle)
{
    nde_trainer *tr;
    int rc = trainer_try(text, sets, &tr);

    ck_assert_msg(rc != NDE_OK, "accepted; expected \"%s\"", needle);
    ck_assert_ptr_null(tr);
    ck_assert_msg(strstr(nde_ctx_message(ctx), needle) != NULL,
                  "expected \"%s\" in: %s", needle, nde_ctx_message(ctx));
    trainer_free(NULL);
}

static const char ode_ini[] =
    "[solver]\n"
    "plugin = rk4\n"
    "dt = 0.1\n"
    "[field]\n"
    "plugin = expr\n"
    "state = x\n"
    "params = th=0.5\n"
    "dx = -th*x\n"
    "[adjoint]\n"
    "plugin = discrete\n"
    "[data]\n"
    "source = field\n"
    "y0 = 2\n"
    "npoints = 11\n"
    "t1 = 2\n"
    "batch_time = 3\n"
    "[train]\n"
    "batch_size = 4\n";

START_TEST(test_refused)
{
    refused(ode_ini, (const char *[]){"train.loss=moments", NULL},
            "needs an SDE field");
    refused(ode_ini, (const char *[]){"data.paths=10", NULL},
            "only for an SDE field");
    refused(ou_ini, (const char *[]){"train.loss=mse", NULL}, "use moments");
    refused(ou_ini, (const char *[]){"train.loss=l1", NULL},
            "unknown loss 'l1'");
    refused(ou_ini, (const char *[]){"solver.dt=0", NULL}, "dt > 0");
    refused(ou_ini, (const char *[]){"data.source=spiral", NULL},
            "source = field");
    refused(ou_ini, (const char *[]){"train.batch_size=1", NULL},
            "at least 2");
    refused(ou_ini, (const char *[]){"data.batch_time=3", NULL},
            "not used with an SDE field");
    refused(ou_ini, (const char *[]){"data.paths=1", NULL}, "below 2");
    refused(ou_ini, (const char *[]){"data.dt=-1", NULL}, "outside");
    refused(ou_ini, (const char *[]){"data.true_params=z=1", NULL},
            "no parameter 'z'");
    refused(ou_ini, (const char *[]){"data.system=field.nope", NULL},
            "no section [field.nope]");
    {
        char text[sizeof ou_ini + 200];
        snprintf(text, sizeof text, "%s[field.two]\nplugin = expr\n"
                 "state = a, b\nda = -a\ndb = -b\nga = 1\n", ou_ini);
        refused(text, (const char *[]){"data.system=field.two", NULL},
                "[field.two] has 2 states, the model 1");
    }
}
END_TEST

/* ---- the CLI --------------------------------------------------------------- */

typedef test_run_result run_result;

static const char *in_dir(const char *name)
{
    static char bufs[8][2048];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 2048, "%s/%s", workdir, name);
    return b;
}

static void setup(void)
{
    FILE *fp;
    test_workdir_make(workdir, sizeof workdir, "sde_train");
    ck_assert_ptr_nonnull(fp = fopen(in_dir("ou.ini"), "w"));
    fputs(ou_ini, fp);
    fclose(fp);
}

static void teardown(void) { test_workdir_remove(workdir); }

#define run(...) test_run_nde(workdir, __VA_ARGS__, (const char *)NULL)

/* The metrics file without the wall times. */
static char *metrics_without_times(const char *name)
{
    char *text = test_read_file(in_dir(name), NULL);
    ck_assert_ptr_nonnull(text);
    test_strip_times(text);
    return text;
}

/* 20 iterations at once, and 10 + 10 resumed from the checkpoint: the
 * same checkpoint bytes after the config and the same metrics. */
static void resume_bit_for_bit(const char *solver, const char *adjoint)
{
    char s1[64], s2[64];
    run_result r;
    char *a, *b, *x, *y;
    size_t nx, ny;

    snprintf(s1, sizeof s1, "solver.plugin=%s", solver);
    snprintf(s2, sizeof s2, "adjoint.plugin=%s", adjoint);
    r = run("train", "ou.ini", "-s", s1, "-s", s2, "-s",
            "train.iterations=20", "-s", "train.eval_every=10", "-s",
            "train.metrics=full.jsonl", "-s", "train.checkpoint=full.ckpt",
            "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", "ou.ini", "-s", s1, "-s", s2, "-s",
            "train.iterations=10", "-s", "train.eval_every=10", "-s",
            "train.metrics=part.jsonl", "-s", "train.checkpoint=part.ckpt",
            "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", "ou.ini", "-s", s1, "-s", s2, "-s",
            "train.iterations=20", "-s", "train.eval_every=10", "-s",
            "train.metrics=part.jsonl", "-s", "train.checkpoint=part.ckpt",
            "--resume", "part.ckpt", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    a = metrics_without_times("full.jsonl");
    b = metrics_without_times("part.jsonl");
    ck_assert_msg(strcmp(a, b) == 0, "metrics differ after resume:\n%s\n%s",
                  a, b);
    ck_assert_ptr_nonnull(strstr(a, "\"iteration\": 20, \"test_loss\""));
    /* theta, Adam state, iteration: the payload after the config text
     * (the config names its checkpoint file, so it differs) up to the
     * totals' wall time */
    ck_assert_ptr_nonnull(x = test_read_file(in_dir("full.ckpt"), &nx));
    ck_assert_ptr_nonnull(y = test_read_file(in_dir("part.ckpt"), &ny));
    {
        uint64_t cx, cy;
        memcpy(&cx, x + 28, 8);
        memcpy(&cy, y + 28, 8);
        ck_assert_uint_eq(nx - cx, ny - cy);
        /* nparams, iteration, Adam t, theta, m, v (3 parameters) */
        ck_assert(memcmp(x + 36 + cx, y + 36 + cy, 24 + 9 * 8) == 0);
    }
    free(x);
    free(y);
    free(a);
    free(b);
}

START_TEST(test_resume_euler_maruyama)
{
    resume_bit_for_bit("euler_maruyama", "discrete");
}
END_TEST

START_TEST(test_resume_reversible_heun)
{
    resume_bit_for_bit("reversible_heun", "reversible");
}
END_TEST

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(test_predict_paths)
{
    run_result r;
    char *p, *q, *line;
    size_t n;
    char cmd[2300];

    r = run("train", "ou.ini", "-s", "train.iterations=5", "-s",
            "train.checkpoint=ou.ckpt", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("predict", "ou.ckpt", "--paths", "7", "--seed", "3", "-o",
            "p.csv");
    test_assert_code(r, 0);
    ck_assert_ptr_nonnull(strstr(r.err, "7 paths"));
    test_run_free(&r);
    ck_assert_ptr_nonnull(p = test_read_file(in_dir("p.csv"), NULL));
    ck_assert_msg(strncmp(p, "path,t,x\n0,0,2\n", 15) == 0, "%.60s", p);
    ck_assert_uint_eq(count_lines(p), 1 + 7 * 11);
    /* the last path at the last time */
    line = strstr(p, "\n6,2,");
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_null(strstr(p, "\n7,"));
    /* the same seed, the same paths; another seed, others */
    r = run("predict", "ou.ckpt", "--paths", "7", "--seed", "3", "-o",
            "q.csv");
    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_ptr_nonnull(q = test_read_file(in_dir("q.csv"), NULL));
    ck_assert_str_eq(p, q);
    free(q);
    r = run("predict", "ou.ckpt", "--paths", "7", "--seed", "4", "-o",
            "q.csv");
    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_ptr_nonnull(q = test_read_file(in_dir("q.csv"), &n));
    ck_assert_str_ne(p, q);
    free(q);
    free(p);
    /* from a [problem] row at its own times */
    r = run("predict", "ou.ckpt", "--paths", "3", "-s", "problem.t0=0", "-s",
            "problem.t1=1", "-s", "problem.y0=-1", "-s", "problem.nsave=5",
            "-o", "r.csv");
    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_ptr_nonnull(p = test_read_file(in_dir("r.csv"), NULL));
    ck_assert_uint_eq(count_lines(p), 1 + 3 * 5);
    ck_assert_ptr_nonnull(strstr(p, "\n2,0,-1\n"));
    free(p);
    /* the held-out set: the model's mean and variance */
    r = run("predict", "ou.ckpt", "-o", "h.csv");
    test_assert_code(r, 0);
    ck_assert_ptr_nonnull(strstr(r.err, "test_loss"));
    test_run_free(&r);
    ck_assert_ptr_nonnull(p = test_read_file(in_dir("h.csv"), NULL));
    ck_assert_msg(strncmp(p, "series,t,x\nmean,0,", 18) == 0, "%.40s", p);
    ck_assert_ptr_nonnull(strstr(p, "\nvar,0,0\n"));
    ck_assert_uint_eq(count_lines(p), 1 + 2 * 11);
    free(p);
    /* no temporary files left behind */
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -q '^\\.[pqrh]\\.csv'",
             workdir);
    ck_assert_int_ne(system(cmd), 0);
    /* bad uses */
    r = run("predict", "ou.ckpt", "--paths", "0");
    test_assert_code(r, 2);
    test_run_free(&r);
    r = run("predict", "ou.ckpt", "--seed", "3");
    test_assert_code(r, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "give --paths N too"));
    test_run_free(&r);
}
END_TEST

/* examples/sde_ou.ini (mlp SDE form, reversible Heun, reversible
 * adjoint, the truth in [field.truth]) for 150 of its iterations: the
 * test loss (measured 0.0142 at 50, 0.0032 at 150) at least halves. */
START_TEST(test_example_sde_ou)
{
    char path[2048], *m, *p;
    double l50, l150;
    run_result r;

    snprintf(path, sizeof path, "%s/examples/sde_ou.ini",
             getenv("NDE_SOURCE_ROOT"));
    r = run("train", path, "-s", "train.iterations=150", "-s",
            "train.eval_every=50", "-s", "train.metrics=ex.jsonl", "-s",
            "train.checkpoint=", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_ptr_nonnull(m = test_read_file(in_dir("ex.jsonl"), NULL));
    ck_assert_ptr_nonnull(p = strstr(m, "{\"iteration\": 50, \"test_loss\""));
    ck_assert_int_eq(sscanf(p, "{\"iteration\": 50, \"test_loss\": %lf",
                            &l50), 1);
    ck_assert_ptr_nonnull(p = strstr(m, "{\"iteration\": 150, \"test_loss\""));
    ck_assert_int_eq(sscanf(p, "{\"iteration\": 150, \"test_loss\": %lf",
                            &l150), 1);
    ck_assert_msg(l150 < l50 / 2 && l150 < 0.01, "test loss %g -> %g", l50,
                  l150);
    free(m);
}
END_TEST

START_TEST(test_predict_paths_ode_refused)
{
    FILE *fp;
    run_result r;

    ck_assert_ptr_nonnull(fp = fopen(in_dir("ode.ini"), "w"));
    fputs(ode_ini, fp);
    fclose(fp);
    r = run("train", "ode.ini", "-s", "train.iterations=2", "-s",
            "train.checkpoint=ode.ckpt", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("predict", "ode.ckpt", "--paths", "3");
    test_assert_code(r, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "ODE model"));
    test_run_free(&r);
}
END_TEST

static Suite *sde_train_suite(void)
{
    Suite *s = suite_create("sde_train");
    TCase *tc = tcase_create("sde_train");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_moments_cotangents_fd);
    tcase_add_test(tc, test_gradient_euler_maruyama_discrete);
    tcase_add_test(tc, test_gradient_reversible_heun_reversible);
    tcase_add_test(tc, test_gradient_with_steer);
    tcase_add_test(tc, test_fit_euler_maruyama);
    tcase_add_test(tc, test_fit_reversible_heun);
    tcase_add_test(tc, test_evaluation_fixed_path);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_resume_euler_maruyama);
    tcase_add_test(tc, test_resume_reversible_heun);
    tcase_add_test(tc, test_predict_paths);
    tcase_add_test(tc, test_predict_paths_ode_refused);
    tcase_add_test(tc, test_example_sde_ou);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sde_train_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
