/*
 * test_latent.c - the latent task plugin (plugins/tasks/latent.c): its
 * generator (the exact series, statistics of the random draws,
 * irregular masks, reproducibility), the KL schedule through its loss,
 * its VJPs (GRU encoder, decoder, KL) through `nde check task` and the
 * whole gradient through `nde gradcheck`, a short `nde train` whose loss
 * falls, `nde predict`, and bad keys.
 *
 * The task is created in-process as the trainer creates it; NDE_EXE runs
 * the program for the end-to-end tests.
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
    test_workdir_make(workdir, sizeof workdir, "latent");
}

static void teardown(void) { test_workdir_remove(workdir); }

#define run(...) test_run_nde(workdir, __VA_ARGS__, (const char *)NULL)

/* ---- the task in-process -------------------------------------------------- */

typedef struct inst {
    nde_ctx *ctx;
    nde_config *cfg;
    nde_field *f;
    nde_task *t;
    gsl_rng *rng;
    nde_task_batch b;
} inst;

/* The latent task of [data] `data` (after source = latent) on a 3-state
 * mlp, `rows` rows, seed `seed`; its batch of iteration `it`. */
static void inst_new(inst *x, const char *data, size_t rows, uint64_t seed,
                     long it)
{
    const nde_plugin_info *info;
    char text[2048];

    memset(x, 0, sizeof *x);
    snprintf(text, sizeof text,
             "[field]\nplugin = mlp\nlayers = 3, 4, 3\n"
             "[data]\nsource = latent\n%s\n", data);
    ck_assert_ptr_nonnull(x->ctx = nde_ctx_create());
    ck_assert_ptr_nonnull(x->cfg = nde_config_create());
    ck_assert_int_eq(nde_config_load_string(x->cfg, "test", text, x->ctx),
                     NDE_OK);
    ck_assert_int_eq(nde_plugin_find(x->ctx, NDE_KIND_TASK, "latent", &info),
                     NDE_OK);
    {
        const nde_task_type *type = (const nde_task_type *)info;
        const nde_key *const tables[] = {type->info.keys, NULL};
        nde_section *dsec = nde_config_section(x->cfg, "data");
        nde_task_env env;
        ck_assert_int_eq(nde_section_check(dsec, tables, x->ctx), NDE_OK);
        ck_assert_int_eq(nde_field_create(x->ctx, x->cfg, "field", rows,
                                          &x->f),
                         NDE_OK);
        ck_assert_ptr_nonnull(x->t = calloc(1, sizeof *x->t));
        x->t->type = type;
        x->t->ctx = x->ctx;
        x->t->dim = x->f->dim;
        x->t->rows = rows;
        env.cfg = x->cfg;
        env.field = x->f;
        env.seed = seed;
        ck_assert_msg(type->create(x->t, dsec, &env, x->ctx) == NDE_OK, "%s",
                      nde_ctx_message(x->ctx));
    }
    ck_assert_ptr_nonnull(x->rng = gsl_rng_alloc(gsl_rng_mt19937));
    gsl_rng_set(x->rng, nde_seed_derive(seed, NDE_STREAM_BATCHES));
    {
        const nde_task_draw d = {it, 0, x->rng};
        ck_assert_int_eq(x->t->type->batch(x->t, &d, &x->b), NDE_OK);
    }
}

static void inst_free(inst *x)
{
    x->t->type->destroy(x->t);
    free(x->t);
    nde_field_destroy(x->f);
    gsl_rng_free(x->rng);
    nde_config_destroy(x->cfg);
    nde_ctx_destroy(x->ctx);
}

/* Row r's value and mask at grid point k. */
#define VAL(x, r, k) ((x)->b.input[(r) * (x)->t->input_dim + (k)])
#define MASK(x, r, k) ((x)->b.input[(r) * (x)->t->input_dim + \
                                    (x)->b.nsave + (k)])

/* Noise-free series of one frequency: every observed value is the
 * formula's; nobs points each, on a sorted grid in (0, t1), the masks
 * differing between series (irregular sampling). */
START_TEST(test_generator_exact)
{
    inst x;
    size_t r, k, nobs, differ = 0;

    inst_new(&x,
             "ntrain = 8\nntest = 2\nnpoints = 30\nnobs = 10\nt1 = 3\n"
             "freq_min = 0.5\nfreq_max = 0.5\namp_min = 2\namp_max = 2\n"
             "offset = 0.5\noffset_sd = 0\nnoise = 0",
             8, 1, 0);
    ck_assert_uint_eq(x.b.nsave, 30);
    ck_assert_uint_eq(x.t->input_dim, 60);
    ck_assert_double_eq(x.b.t0, 0.0);
    for (k = 0; k < 30; k++) {
        ck_assert(x.b.tsave[k] > 0.0 && x.b.tsave[k] < 3.0);
        ck_assert(k == 0 || x.b.tsave[k] >= x.b.tsave[k - 1]);
    }
    for (r = 0; r < 8; r++) {
        for (k = nobs = 0; k < 30; k++) {
            const double want = 2.0 * sin(M_PI * x.b.tsave[k]) + 0.5;
            ck_assert(MASK(&x, r, k) == 0.0 || MASK(&x, r, k) == 1.0);
            nobs += MASK(&x, r, k) == 1.0;
            ck_assert_double_eq_tol(VAL(&x, r, k),
                                    MASK(&x, r, k) * want, 1e-12);
            differ += r > 0 && MASK(&x, r, k) != MASK(&x, 0, k);
        }
        ck_assert_uint_eq(nobs, 10);
    }
    ck_assert_uint_gt(differ, 0);
    inst_free(&x);
}
END_TEST

/* The offsets' mean and spread, and the noise's range and mean, over
 * 2000 series. */
START_TEST(test_generator_statistics)
{
    const size_t N = 2000;
    double sum = 0.0, sq = 0.0, mean, sd, lo = HUGE_VAL, hi = -HUGE_VAL;
    size_t r, k, n = 0;
    inst x;

    /* amplitude 0, no noise: a series is its offset c ~ 1 + N(0, 0.1) */
    inst_new(&x,
             "ntrain = 2000\nntest = 1\nnpoints = 4\nnobs = 1\n"
             "amp_min = 0\namp_max = 0\noffset_sd = 0.1\nnoise = 0",
             N, 2, 0);
    for (r = 0; r < N; r++)
        for (k = 0; k < 4; k++)
            if (MASK(&x, r, k) == 1.0) {
                sum += VAL(&x, r, k);
                sq += VAL(&x, r, k) * VAL(&x, r, k);
            }
    mean = sum / (double)N;
    sd = sqrt(sq / (double)N - mean * mean);
    ck_assert_msg(fabs(mean - 1.0) < 0.01, "offset mean %g", mean);
    ck_assert_msg(fabs(sd - 0.1) < 0.006, "offset sd %g", sd);
    inst_free(&x);

    /* no offset spread: a value is 1 + 0.2 U[0, 1) */
    inst_new(&x,
             "ntrain = 2000\nntest = 1\nnpoints = 4\nnobs = 4\n"
             "amp_min = 0\namp_max = 0\noffset_sd = 0\nnoise = 0.2",
             N, 3, 0);
    for (sum = 0.0, r = 0; r < N; r++)
        for (k = 0; k < 4; k++, n++) {
            const double e = VAL(&x, r, k) - 1.0;
            sum += e;
            lo = e < lo ? e : lo;
            hi = e > hi ? e : hi;
        }
    ck_assert(lo >= 0.0 && hi < 0.2 && hi > 0.19);
    ck_assert_msg(fabs(sum / (double)n - 0.1) < 0.003, "noise mean %g",
                  sum / (double)n);
    inst_free(&x);

    /* frequencies in [0.4, 0.8] and random phases: |values| <= 1 */
    inst_new(&x,
             "ntrain = 200\nntest = 1\nnpoints = 50\nnobs = 50\noffset = 0\n"
             "offset_sd = 0\nnoise = 0\nphase_max = 6.283185307179586",
             200, 4, 0);
    for (lo = HUGE_VAL, hi = -HUGE_VAL, r = 0; r < 200; r++)
        for (k = 0; k < 50; k++) {
            lo = VAL(&x, r, k) < lo ? VAL(&x, r, k) : lo;
            hi = VAL(&x, r, k) > hi ? VAL(&x, r, k) : hi;
        }
    ck_assert(lo >= -1.0 && lo < -0.99 && hi <= 1.0 && hi > 0.99);
    inst_free(&x);
}
END_TEST

/* The same seed, the same data and batches; another seed, other data. */
START_TEST(test_generator_reproducible)
{
    const char *data = "ntrain = 20\nntest = 5\nnpoints = 12\nnobs = 5";
    inst a, b, c;

    inst_new(&a, data, 4, 7, 3);
    inst_new(&b, data, 4, 7, 3);
    inst_new(&c, data, 4, 8, 3);
    ck_assert_uint_eq(a.t->type->digest(a.t), b.t->type->digest(b.t));
    ck_assert_uint_ne(a.t->type->digest(a.t), c.t->type->digest(c.t));
    ck_assert_mem_eq(a.b.tsave, b.b.tsave, 12 * sizeof(double));
    ck_assert_mem_eq(a.b.input, b.b.input, 4 * 24 * sizeof(double));
    ck_assert(memcmp(a.b.tsave, c.b.tsave, 12 * sizeof(double)) != 0);
    inst_free(&a);
    inst_free(&b);
    inst_free(&c);
}
END_TEST

/* loss = mean over rows of (NLL / observed + w_kl(i) KL): with the
 * decoded values equal to the data and every KL 1, the NLL is its
 * normalising constant and the loss minus it is w_kl(i) =
 * max(0, 1 - 0.99^(i + 1 - 100)); the KL column's cotangent is w / rows. */
START_TEST(test_kl_schedule)
{
    const long iters[] = {0, 98, 99, 100, 150, 1000};
    const double lognorm = log(0.01) + 0.5 * log(2.0 * M_PI);

    for (size_t j = 0; j < sizeof iters / sizeof *iters; j++) {
        const double w = fmax(0.0, 1.0 - pow(0.99, (double)(iters[j] - 99)));
        double obs[12 * 3 * 2], obsbar[12 * 3 * 2], value;
        inst x;
        inst_new(&x, "ntrain = 6\nntest = 1\nnpoints = 12\nnobs = 4", 3, 1,
                 iters[j]);
        ck_assert_uint_eq(x.t->obs_dim, 2);
        for (size_t k = 0; k < 12; k++)
            for (size_t r = 0; r < 3; r++) {
                obs[(k * 3 + r) * 2] = VAL(&x, r, k);
                obs[(k * 3 + r) * 2 + 1] = k == 0 ? 1.0 : 0.0;
            }
        ck_assert_int_eq(x.t->type->loss(x.t, &x.b, obs, &value, obsbar),
                         NDE_OK);
        ck_assert_double_eq_tol(value - lognorm, w, 1e-12);
        for (size_t r = 0; r < 3; r++) {
            ck_assert_double_eq_tol(obsbar[r * 2 + 1], w / 3.0, 1e-15);
            ck_assert_double_eq(obsbar[r * 2], 0.0);
        }
        inst_free(&x);
    }
}
END_TEST

/* ---- the program ---------------------------------------------------------- */

/* The conformance suite with the KL in the loss (kl_wait = 0): the loss,
 * readout (decoder and KL through the GRU) and lift (GRU, reparameter-
 * isation) VJPs against central differences. */
START_TEST(test_check_task)
{
    test_run_result r = run("check", "task", "latent", "-s", "data.kl_wait=0",
                            "-s", "data.kl_rate=0.5", "-s", "data.npoints=15",
                            "-s", "data.nobs=6", "-s", "data.hidden=5", "-s",
                            "data.ntrain=10", "-s", "data.ntest=4", "-s",
                            "field.layers=3,6,3");
    test_assert_code(r, 0);
    test_assert_contains(r.out, "lift vjp theta accumulated vs differences");
    test_assert_contains(r.out, "readout vjp theta accumulated vs differences");
    test_assert_contains(r.out, "loss dL/dtheta vs differences");
    test_assert_contains(r.out, "10 checks, 0 failed");
    test_run_free(&r);
}
END_TEST

static const char *write_config(const char *name, const char *extra)
{
    static char path[2048];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s", workdir, name);
    ck_assert_ptr_nonnull(fp = fopen(path, "w"));
    fprintf(fp,
            "[solver]\nplugin = tsit5\nrtol = 1e-6\natol = 1e-8\n"
            "[field]\nplugin = mlp\nlayers = 3, 8, 3\nactivation = tanh\n"
            "[adjoint]\nplugin = interpolating\n"
            "[data]\nsource = latent\nntrain = 16\nntest = 8\n"
            "npoints = 20\nnobs = 8\nhidden = 6\n%s\n"
            "[train]\niterations = 60\nbatch_size = 16\nlr = 1e-2\n"
            "seed = 1\neval_every = 60\n",
            extra);
    fclose(fp);
    return path;
}

/* Every parameter (field, GRU, heads, decoder) of the whole loss, the KL
 * weighted in, against central differences, for two adjoints. */
START_TEST(test_gradcheck)
{
    static const char *const adjoints[] = {"adjoint.plugin=discrete",
                                           "adjoint.plugin=interpolating"};
    const char *cfg = write_config("g.ini", "kl_wait = 0\nkl_rate = 0.5");

    for (int i = 0; i < 2; i++) {
        test_run_result r =
            run("gradcheck", cfg, "-s", adjoints[i], "-s",
                "solver.rtol=1e-10", "-s", "solver.atol=1e-10", "-s",
                "train.batch_size=3", "--nparams", "2000", "--tol", "1e-5");
        test_assert_code(r, 0);
        test_assert_contains(r.out, "enc.ur[5,5]");
        test_assert_contains(r.out, "enc.bv[2]");
        test_assert_contains(r.out, "dec.w[0,2]");
        test_run_free(&r);
    }
}
END_TEST

static double json_number(const char *text, const char *key)
{
    char pat[128];
    const char *p;
    double v;

    snprintf(pat, sizeof pat, "\"%s\": ", key);
    ck_assert_msg((p = strstr(text, pat)) != NULL, "no %s in %s", key, text);
    ck_assert_int_eq(sscanf(p + strlen(pat), "%lf", &v), 1);
    return v;
}

/* Full batches (every training series each iteration): the loss of the
 * last iterations is far below the first's; the test MSE is finite and
 * `nde predict` writes each test series' latent trajectory. */
START_TEST(test_train_loss_falls)
{
    const char *cfg = write_config("t.ini", "");
    char path[2048], *m, *line, *sum, *csv;
    double first = 0.0, last = 0.0, v;
    test_run_result r;
    int it, rows = 0;

    r = run("train", cfg, "-s", "train.metrics=m.jsonl", "-s",
            "train.checkpoint=c.ckpt", "--summary-json", "s.json", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    snprintf(path, sizeof path, "%s/m.jsonl", workdir);
    ck_assert_ptr_nonnull(m = test_read_file(path, NULL));
    for (line = m; *line; line = strchr(line, '\n') + 1) {
        if (sscanf(line, "{\"iteration\": %d, \"loss\": %lf", &it, &v) == 2) {
            if (it <= 5)
                first += v / 5.0;
            if (it > 55)
                last += v / 5.0;
        }
        if (!strchr(line, '\n'))
            break;
    }
    ck_assert_msg(last < 0.5 * first, "loss %g at the end, %g at the start",
                  last, first);
    snprintf(path, sizeof path, "%s/s.json", workdir);
    ck_assert_ptr_nonnull(sum = test_read_file(path, NULL));
    v = json_number(sum, "test_loss");
    ck_assert_msg(isfinite(v) && v > 0.0 && v < 1.0, "test_loss %g", v);

    r = run("predict", "c.ckpt", "-o", "p.csv");
    test_assert_code(r, 0);
    test_run_free(&r);
    snprintf(path, sizeof path, "%s/p.csv", workdir);
    ck_assert_ptr_nonnull(csv = test_read_file(path, NULL));
    ck_assert_msg(strncmp(csv, "series,t,y0,y1,y2\n", 18) == 0, "%.30s", csv);
    for (line = csv; (line = strchr(line, '\n')); line++)
        rows++;
    ck_assert_int_eq(rows, 1 + 8 * 20);
    free(csv);
    free(sum);
    free(m);
}
END_TEST

/* Bad keys name the key and what was expected; exit 2. */
START_TEST(test_bad_keys)
{
    static const struct {
        const char *set, *msg;
    } cases[] = {
        {"data.nobs=21", "[data] nobs: 21 observed points of a grid of "
                         "npoints = 20"},
        {"data.test_on=some", "[data] test_on: 'some': expected observed or "
                              "all"},
        {"data.ntrain=15", "[data] ntrain"},
        {"data.freq_max=0.1", "[data] freq_max"},
        {"data.obs_std=0", "[data] obs_std"},
        {"data.kl_rate=1.5", "[data] kl_rate"},
    };
    const char *cfg = write_config("b.ini", "");

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        test_run_result r = run("train", cfg, "-s", cases[i].set);
        test_assert_code(r, 2);
        test_assert_contains(r.err, cases[i].msg);
        test_run_free(&r);
    }
}
END_TEST

static Suite *latent_suite(void)
{
    Suite *s = suite_create("latent");
    TCase *tc = tcase_create("latent");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_generator_exact);
    tcase_add_test(tc, test_generator_statistics);
    tcase_add_test(tc, test_generator_reproducible);
    tcase_add_test(tc, test_kl_schedule);
    tcase_add_test(tc, test_check_task);
    tcase_add_test(tc, test_gradcheck);
    tcase_add_test(tc, test_train_loss_falls);
    tcase_add_test(tc, test_bad_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(latent_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
