/*
 * test_sde_gan.c - the sde_gan task (plugins/tasks/sde_gan.c) and the
 * trainer's adversary ([train] adversary, adversary_lr, adversary_clip):
 *  - the generated OU and GBM paths' marginal mean and variance against
 *    the closed forms, the dropped fraction, the normalisation;
 *  - the loss's sign and cotangents;
 *  - `nde check task` (lift, readout, loss VJPs against differences) and
 *    `nde check field` on a small SDE-GAN;
 *  - one step: the others descend at lr, the adversary ascends at
 *    adversary_lr (Adam's first step is lr sign(g));
 *  - clipping: layer (1/outputs per matrix) and a value, biases untouched;
 *  - a checkpoint round trip: 2 + 2 resumed steps equal 4 steps, bit for
 *    bit.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "nde/nde.h"
#include "nde/task.h"
#include "nde/train.h"
#include "../test_util.h"

static char workdir[1024];

static void setup(void)
{
    test_workdir_make(workdir, sizeof workdir, "sde_gan");
}

static void teardown(void) { test_workdir_remove(workdir); }

#define run(...) test_run_nde(workdir, __VA_ARGS__, (const char *)NULL)

/* A small SDE-GAN: G = 2, H = 2, paths of 5 times. */
static const char tiny_ini[] =
    "[solver]\nplugin = reversible_heun\ndt = 1\n"
    "[adjoint]\nplugin = reversible\n"
    "[field]\nplugin = sde_gan\ngenerator = gen\ndiscriminator = disc\n"
    "[field.gen]\nplugin = mlp\nlayers = 2, 4, 2\ntime = true\n"
    "diffusion = sigmoid\nnoise_dim = 2\n"
    "[field.disc]\nplugin = mlp\nlayers = 2, 4, 2\ntime = true\n"
    "diffusion = sigmoid\nnoise_dim = 2\n"
    "[data]\nsource = sde_gan\npaths = 64\ntest_paths = 16\nmmd_paths = 8\n"
    "t_size = 5\nwidth = 3\n"
    "[train]\niterations = 4\nbatch_size = 8\nlr = 1e-3\nseed = 3\n"
    "eval_every = 0\nadversary = disc.\nadversary_lr = 1e-2\n";

/* ---- the data ------------------------------------------------------------ */

typedef struct made {
    nde_ctx *ctx;
    nde_config *cfg;
    nde_field *f;
    nde_task *t;
    const nde_task_type *type;
} made;

/* The task of tiny_ini with the overrides, rows rows, created directly. */
static void make_task(made *m, size_t rows, const char *const *over)
{
    const nde_plugin_info *info;
    m->ctx = nde_ctx_create();
    m->cfg = nde_config_create();
    ck_assert_int_eq(nde_config_load_string(m->cfg, "t", tiny_ini, m->ctx),
                     NDE_OK);
    for (; over && *over; over++)
        ck_assert_int_eq(nde_config_override(m->cfg, *over, m->ctx), NDE_OK);
    ck_assert_int_eq(nde_plugin_find(m->ctx, NDE_KIND_TASK, "sde_gan",
                                     &info), NDE_OK);
    m->type = (const nde_task_type *)info;
    {
        const nde_key *const tables[] = {m->type->info.keys, NULL};
        ck_assert_int_eq(nde_section_check(nde_config_section(m->cfg, "data"),
                                           tables, m->ctx), NDE_OK);
    }
    ck_assert_int_eq(nde_field_create(m->ctx, m->cfg, "field", rows, &m->f),
                     NDE_OK);
    ck_assert_ptr_nonnull(m->t = calloc(1, sizeof *m->t));
    m->t->type = m->type;
    m->t->ctx = m->ctx;
    m->t->dim = m->f->dim;
    m->t->rows = rows;
    {
        const nde_task_env env = {m->cfg, m->f, 7};
        int rc = m->type->create(m->t, nde_config_section(m->cfg, "data"),
                                 &env, m->ctx);
        ck_assert_msg(rc == NDE_OK, "%s", nde_ctx_message(m->ctx));
    }
}

static void free_task(made *m)
{
    m->type->destroy(m->t);
    free(m->t);
    nde_field_destroy(m->f);
    nde_config_destroy(m->cfg);
    nde_ctx_destroy(m->ctx);
}

/* Mean and variance of the real rows' data value at the times tk, over
 * nb batches (rows drawn with replacement). */
static void real_moments(made *m, size_t nb, size_t nt, const double *tk,
                         double *mean, double *var, double *count)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    nde_input *in = m->type->input(m->t);
    const size_t B = m->t->rows;
    double s1[8] = {0}, s2[8] = {0};
    gsl_rng_set(rng, 11);
    *count = 0.0;
    for (size_t q = 0; q < nb; q++) {
        const nde_task_draw d = {(long)q, 0, rng};
        nde_task_batch b;
        ck_assert_int_eq(m->type->batch(m->t, &d, &b), NDE_OK);
        for (size_t k = 0; k < nt; k++) {
            nde_input_select(in, tk[k], 0.0);
            for (size_t r = B / 2; r < B; r++) {
                double u[2];
                nde_input_value(in, r, tk[k], u);
                ck_assert_double_eq(u[1], 1.0);
                s1[k] += u[0];
                s2[k] += u[0] * u[0];
            }
        }
        *count += (double)(B - B / 2);
    }
    for (size_t k = 0; k < nt; k++) {
        mean[k] = s1[k] / *count;
        var[k] = (s2[k] - *count * mean[k] * mean[k]) / (*count - 1.0);
    }
    gsl_rng_free(rng);
}

/* The OU of torchsde's example: dy = (mu t - theta y) dt + sigma (2t/T)
 * dW, y0 ~ U[-1, 1]. A linear SDE (Kloeden & Platen 1992, Sec. 4.2):
 * mean e^-th t E y0 + mu (t/th - (1 - e^-th t)/th^2), variance
 * e^-2th t Var y0 + (2 sigma/T)^2 int_0^t e^-a(t-s) s^2 ds, a = 2 th, the
 * integral t^2/a - 2t/a^2 + 2(1 - e^-at)/a^3. Paths drawn with
 * replacement from 4096: the mean's standard error about sqrt(2 var / n).
 */
START_TEST(ou_marginals)
{
    static const char *const over[] = {"data.drop=0", "data.normalise=false",
                                       "data.paths=4096", "data.t_size=64",
                                       NULL};
    const double tk[4] = {0.0, 10.0, 30.0, 63.0};
    const double th = 0.1, mu = 0.02, sig = 0.4, T = 64.0, a = 2 * th;
    double mean[4], var[4], n;
    made m;
    make_task(&m, 8192, over);
    real_moments(&m, 1, 4, tk, mean, var, &n);
    for (size_t k = 0; k < 4; k++) {
        const double t = tk[k], e = exp(-th * t);
        const double m0 = mu * (t / th - (1.0 - e) / (th * th));
        const double v0 = e * e / 3.0 +
                          (2 * sig / T) * (2 * sig / T) *
                              (t * t / a - 2 * t / (a * a) +
                               2 * (1 - exp(-a * t)) / (a * a * a));
        const double sem = sqrt(2.0 * v0 / n), sev = v0 * sqrt(4.0 / n);
        fprintf(stderr, "sde_gan OU t = %2.0f: mean %.4f (exact %.4f), "
                "variance %.4f (exact %.4f), %g draws\n", t, mean[k], m0,
                var[k], v0, n);
        ck_assert_msg(fabs(mean[k] - m0) < 5 * sem, "t %g: mean %g vs %g",
                      t, mean[k], m0);
        ck_assert_msg(fabs(var[k] - v0) < 5 * sev, "t %g: var %g vs %g", t,
                      var[k], v0);
    }
    free_task(&m);
}
END_TEST

/* GBM: log y(t) ~ N((mu - s^2/2) t, 0.25^2 + s^2 t), mu 0.02, s 0.1. */
START_TEST(gbm_marginals)
{
    static const char *const over[] = {"data.drop=0", "data.normalise=false",
                                       "data.paths=4096", "data.t_size=64",
                                       "data.process=gbm", NULL};
    const double tk[3] = {0.0, 20.0, 63.0};
    double mean[3], var[3], n;
    made m;
    make_task(&m, 8192, over);
    real_moments(&m, 1, 3, tk, mean, var, &n);
    for (size_t k = 0; k < 3; k++) {
        const double t = tk[k], lm = (0.02 - 0.005) * t;
        const double lv = 0.0625 + 0.01 * t;
        const double m0 = exp(lm + lv / 2), v0 = (exp(lv) - 1) * m0 * m0;
        const double sem = sqrt(2.0 * v0 / n);
        fprintf(stderr, "sde_gan GBM t = %2.0f: mean %.4f (exact %.4f), "
                "variance %.4f (exact %.4f)\n", t, mean[k], m0, var[k], v0);
        ck_assert_msg(fabs(mean[k] - m0) < 5 * sem, "t %g: mean %g vs %g",
                      t, mean[k], m0);
        /* a log-normal's variance estimate is heavy-tailed: 15% */
        ck_assert_msg(fabs(var[k] - v0) < 0.15 * v0, "t %g: var %g vs %g",
                      t, var[k], v0);
    }
    free_task(&m);
}
END_TEST

/* drop = 0.3: the real rows' series kink at about 70% of the interior
 * times (a dropped value is interpolated across: no kink there); the
 * knots of all rows are 0..63;
 * normalised initial values have mean 0 and standard deviation 1 (over
 * the drawn rows, roughly). */
START_TEST(drop_and_normalise)
{
    static const char *const over[] = {"data.paths=4096", "data.t_size=64",
                                       NULL};
    const double t0[1] = {0.0};
    double mean, var, n, kinks = 0.0, points = 0.0;
    const double *kt;
    made m;
    make_task(&m, 4096, over);
    real_moments(&m, 1, 1, t0, &mean, &var, &n);
    fprintf(stderr, "sde_gan normalised y(0): mean %.3f, sd %.3f\n", mean,
            sqrt(var));
    ck_assert_msg(fabs(mean) < 0.1 && fabs(sqrt(var) - 1.0) < 0.1,
                  "mean %g, sd %g", mean, sqrt(var));
    nde_input *in = m.type->input(m.t);
    ck_assert_uint_eq(nde_input_knots(in, &kt), 64);
    ck_assert_double_eq(kt[0], 0.0);
    for (size_t k = 1; k < 63; k++)
        for (size_t r = 2048; r < 4096; r++) {
            double a0[2], a1[2], b0[2], b1[2];
            nde_input_select(in, (double)k, -1e-6); /* left of k */
            nde_input_value(in, r, (double)k, a0);
            nde_input_value(in, r, (double)k + 1.0, a1);
            nde_input_select(in, (double)k, 1e-6);  /* right of k */
            nde_input_value(in, r, (double)k, b0);
            nde_input_value(in, r, (double)k + 1.0, b1);
            kinks += fabs((a1[0] - a0[0]) - (b1[0] - b0[0])) > 1e-9;
            points += 1.0;
        }
    fprintf(stderr, "sde_gan drop 0.3: kinks at %.4f of the interior "
            "times\n", kinks / points);
    ck_assert_msg(fabs(kinks / points - 0.7) < 0.01, "%g", kinks / points);
    free_task(&m);
}
END_TEST

/* loss = mean real score - mean generated score; obsbar its gradient. */
START_TEST(loss_sign)
{
    made m;
    double obs[8] = {1, 2, 3, 4, 10, 20, 30, 40}, bar[8], L;
    nde_task_batch b;
    make_task(&m, 8, NULL);
    memset(&b, 0, sizeof b);
    ck_assert_int_eq(m.type->loss(m.t, &b, obs, &L, bar), NDE_OK);
    ck_assert_double_eq_tol(L, 25.0 - 2.5, 1e-12);
    for (size_t r = 0; r < 8; r++)
        ck_assert_double_eq_tol(bar[r], r < 4 ? -0.25 : 0.25, 1e-15);
    free_task(&m);
}
END_TEST

START_TEST(checks_pass)
{
    char ini[1100];
    FILE *fp;
    test_run_result r;
    snprintf(ini, sizeof ini, "%s/tiny.ini", workdir);
    ck_assert_ptr_nonnull(fp = fopen(ini, "w"));
    fputs(tiny_ini, fp);
    fclose(fp);
    r = run("check", "task", "sde_gan", "-c", "tiny.ini");
    ck_assert_msg(r.code == 0 && strstr(r.out, " 0 failed"), "%s%s", r.out,
                  r.err);
    test_run_free(&r);
    r = run("check", "field", "sde_gan", "-c", "tiny.ini");
    ck_assert_msg(r.code == 0 && strstr(r.out, " 0 failed"), "%s%s", r.out,
                  r.err);
    test_run_free(&r);
}
END_TEST

/* ---- the adversary --------------------------------------------------- */

static nde_trainer *trainer(nde_ctx *ctx, nde_config **cfg,
                            const char *const *over)
{
    nde_trainer *tr;
    *cfg = nde_config_create();
    ck_assert_int_eq(nde_config_load_string(*cfg, "t", tiny_ini, ctx),
                     NDE_OK);
    for (; over && *over; over++)
        ck_assert_int_eq(nde_config_override(*cfg, *over, ctx), NDE_OK);
    ck_assert_msg(nde_trainer_create(ctx, *cfg, 0, &tr) == NDE_OK, "%s",
                  nde_ctx_message(ctx));
    return tr;
}

/* Adam's first step moves a parameter by -lr g / (|g| + eps): the
 * adversary's by +adversary_lr sign(g). */
START_TEST(adversary_ascends)
{
    nde_ctx *ctx = nde_ctx_create();
    nde_config *c1, *c2;
    nde_trainer *t1 = trainer(ctx, &c1, NULL), *t2 = trainer(ctx, &c2, NULL);
    const size_t P = nde_trainer_nparams(t1);
    double *g = calloc(P, sizeof *g), *th0 = malloc(P * sizeof *th0), L;
    size_t nadv = 0, nchecked = 0;
    nde_train_step st;
    nde_stats ss;
    memcpy(th0, nde_trainer_params(t2), P * sizeof *th0);
    ck_assert_int_eq(nde_trainer_probe(t1), NDE_OK);
    ck_assert_int_eq(nde_trainer_loss_grad(t1, NULL, nde_trainer_params(t1),
                                           &L, g, &ss), NDE_OK);
    ck_assert_int_eq(nde_trainer_step(t2, &st), NDE_OK);
    ck_assert_double_eq(st.loss, L);
    for (size_t i = 0; i < P; i++) {
        char name[128];
        nde_trainer_param_name(t2, i, name, sizeof name);
        const int adv = strncmp(name, "disc.", 5) == 0;
        const double d = nde_trainer_params(t2)[i] - th0[i];
        nadv += adv;
        if (fabs(g[i]) < 1e-5)
            continue;
        const double want = (adv ? 1e-2 : -1e-3) * (g[i] > 0 ? 1 : -1);
        ck_assert_msg(fabs(d - want) < 1e-3 * fabs(want),
                      "%s: moved %g, expected %g (gradient %g)", name, d,
                      want, g[i]);
        nchecked++;
    }
    fprintf(stderr, "adversary: %zu of %zu parameters, %zu steps checked\n",
            nadv, P, nchecked);
    ck_assert_uint_gt(nadv, 0);
    ck_assert_uint_lt(nadv, P);
    ck_assert_uint_gt(nchecked, P / 2);
    nde_trainer_destroy(t1);
    nde_trainer_destroy(t2);
    nde_config_destroy(c1);
    nde_config_destroy(c2);
    nde_ctx_destroy(ctx);
    free(g);
    free(th0);
}
END_TEST

/* The bound of a weight named NAME[i,j] under layer clipping. */
static double layer_bound(const char *name)
{
    static const struct { const char *stem; double out; } m[] = {
        {"disc.W1[", 4}, {"disc.W2[", 2}, {"disc.gW1[", 4}, {"disc.gW2[", 4},
        {"disc.init.W1[", 3}, {"disc.init.W2[", 2},
        {"disc.readout.W1[", 1}};
    for (size_t k = 0; k < sizeof m / sizeof *m; k++)
        if (strncmp(name, m[k].stem, strlen(m[k].stem)) == 0)
            return 1.0 / m[k].out;
    return 0.0;
}

START_TEST(adversary_clipped)
{
    static const char *const layer[] = {"train.adversary_clip=layer", NULL};
    static const char *const value[] = {"train.adversary_clip=0.001", NULL};
    nde_ctx *ctx = nde_ctx_create();
    nde_config *c1, *c2;
    nde_trainer *t1 = trainer(ctx, &c1, layer), *t2 = trainer(ctx, &c2, value);
    const size_t P = nde_trainer_nparams(t1);
    nde_train_step st;
    size_t nweights = 0, at_bound = 0, nbias = 0;
    ck_assert_int_eq(nde_trainer_step(t1, &st), NDE_OK);
    ck_assert_int_eq(nde_trainer_step(t2, &st), NDE_OK);
    for (size_t i = 0; i < P; i++) {
        char name[128];
        nde_trainer_param_name(t1, i, name, sizeof name);
        const double b = layer_bound(name), x1 = nde_trainer_params(t1)[i];
        const double x2 = nde_trainer_params(t2)[i];
        if (b > 0) {
            nweights++;
            ck_assert_msg(fabs(x1) <= b, "%s = %g beyond %g", name, x1, b);
            at_bound += fabs(x1) == b;
            ck_assert_msg(fabs(x2) <= 0.001, "%s = %g", name, x2);
        } else if (strncmp(name, "disc.", 5) == 0) {
            /* biases: one step of 1e-2 from 0, never clamped */
            nbias++;
            ck_assert_msg(fabs(x2) > 0.001 || x2 == 0.0, "%s = %g", name,
                          x2);
        } else {
            ck_assert_msg(strncmp(name, "gen.", 4) == 0, "%s", name);
        }
    }
    fprintf(stderr, "adversary_clip = layer: %zu weights, %zu at their "
            "bound; %zu biases\n", nweights, at_bound, nbias);
    ck_assert_uint_gt(at_bound, 0);
    ck_assert_uint_gt(nbias, 0);
    nde_trainer_destroy(t1);
    nde_trainer_destroy(t2);
    nde_config_destroy(c1);
    nde_config_destroy(c2);
    nde_ctx_destroy(ctx);
}
END_TEST

/* 4 steps = 2 steps, a checkpoint, a resumed trainer's 2 steps. */
START_TEST(checkpoint_round_trip)
{
    static const char *const over[] = {"train.adversary_clip=layer", NULL};
    nde_ctx *ctx = nde_ctx_create();
    nde_config *ca, *cb, *cc;
    nde_trainer *a = trainer(ctx, &ca, over), *b = trainer(ctx, &cb, over);
    nde_trainer *c;
    nde_train_step st;
    char path[1100];
    FILE *fp;
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(nde_trainer_step(a, &st), NDE_OK);
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(nde_trainer_step(b, &st), NDE_OK);
    snprintf(path, sizeof path, "%s/gan.ckpt", workdir);
    ck_assert_ptr_nonnull(fp = fopen(path, "wb"));
    ck_assert_int_eq(nde_trainer_checkpoint_write(b, fp), NDE_OK);
    fclose(fp);
    c = trainer(ctx, &cc, over);
    ck_assert_msg(nde_trainer_checkpoint_load(c, path, NDE_CHECKPOINT_RESUME)
                      == NDE_OK, "%s", nde_ctx_message(ctx));
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(nde_trainer_step(c, &st), NDE_OK);
    ck_assert_int_eq(memcmp(nde_trainer_params(a), nde_trainer_params(c),
                            nde_trainer_nparams(a) * sizeof(double)), 0);
    nde_trainer_destroy(a);
    nde_trainer_destroy(b);
    nde_trainer_destroy(c);
    nde_config_destroy(ca);
    nde_config_destroy(cb);
    nde_config_destroy(cc);
    nde_ctx_destroy(ctx);
}
END_TEST

/* A prefix no parameter has, and a bad clip, are refused by name. */
START_TEST(adversary_refusals)
{
    nde_ctx *ctx = nde_ctx_create();
    nde_config *cfg = nde_config_create();
    nde_trainer *tr = NULL;
    ck_assert_int_eq(nde_config_load_string(cfg, "t", tiny_ini, ctx), NDE_OK);
    ck_assert_int_eq(nde_config_override(cfg, "train.adversary=critic.", ctx),
                     NDE_OK);
    ck_assert_int_eq(nde_trainer_create(ctx, cfg, 0, &tr), NDE_ECONFIG);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "adversary"), "%s",
                  nde_ctx_message(ctx));
    ck_assert_int_eq(nde_config_override(cfg, "train.adversary=disc.", ctx),
                     NDE_OK);
    ck_assert_int_eq(nde_config_override(cfg, "train.adversary_clip=-1",
                                         ctx), NDE_OK);
    ck_assert_int_eq(nde_trainer_create(ctx, cfg, 0, &tr), NDE_ECONFIG);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "adversary_clip"), "%s",
                  nde_ctx_message(ctx));
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sde_gan");
    TCase *tc = tcase_create("sde_gan");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, ou_marginals);
    tcase_add_test(tc, gbm_marginals);
    tcase_add_test(tc, drop_and_normalise);
    tcase_add_test(tc, loss_sign);
    tcase_add_test(tc, checks_pass);
    tcase_add_test(tc, adversary_ascends);
    tcase_add_test(tc, adversary_clipped);
    tcase_add_test(tc, checkpoint_round_trip);
    tcase_add_test(tc, adversary_refusals);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
