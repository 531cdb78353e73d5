/*
 * test_train.c - end-to-end tests of `nde train` / `nde predict`: loss
 * decreases for each adjoint, resume is bit-for-bit, seeds reproduce,
 * bad checkpoints and configs are refused, failures name the iteration;
 * classification (source = idx, ODE and SDE blocks) on a tiny generated
 * IDX data set.
 *
 * NDE_EXE is the program, NDE_SOURCE_ROOT locates examples/. Runs are
 * short (tens of iterations) so the suite stays fast under sanitizers.
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nde/nde.h"
#include "nde/train.h"
#include "../test_util.h"


typedef test_run_result run_result;

static char workdir[1024];
static char spiral[4096];

static void write_all(const char *path, const char *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

static const char *in_dir(const char *name)
{
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 4096, "%s/%s", workdir, name);
    return b;
}

static void setup(void)
{
    const char *src = getenv("NDE_SOURCE_ROOT");
    ck_assert_ptr_nonnull(src);
    test_workdir_make(workdir, sizeof workdir, "train");
    snprintf(spiral, sizeof spiral, "%s/examples/spiral.ini", src);
}

static void teardown(void) { test_workdir_remove(workdir); }

/* Run nde in workdir with the NULL-terminated arguments. */
#define run(...) test_run_nde(workdir, __VA_ARGS__, (const char *)NULL)

#define assert_contains test_assert_contains
/* The metrics file without the wall times (everything after "time_s"). */
static char *metrics_without_times(const char *name)
{
    char *text = test_read_file(in_dir(name), NULL);
    ck_assert_ptr_nonnull(text);
    test_strip_times(text);
    return text;
}

/* Iteration, theta, m, v of a checkpoint (layout in nde/train.h). */
typedef struct ckpt_view {
    char *data;
    size_t len;
    int64_t iteration;
    uint64_t nparams;
    const char *state; /* theta, m, v: 3 x nparams doubles */
} ckpt_view;

static ckpt_view ckpt_read(const char *name)
{
    ckpt_view c;
    uint64_t cfglen;
    size_t off = 28;

    ck_assert_ptr_nonnull(c.data = test_read_file(in_dir(name), &c.len));
    ck_assert_uint_gt(c.len, off + 8);
    memcpy(&cfglen, c.data + off, 8);
    off += 8 + cfglen;
    memcpy(&c.nparams, c.data + off, 8);
    memcpy(&c.iteration, c.data + off + 8, 8);
    c.state = c.data + off + 24;
    ck_assert_uint_le(off + 24 + 3 * c.nparams * 8, c.len);
    return c;
}

/* ---- loss decreases ------------------------------------------------------ */

/* Full-batch training (every window of a 200-point spiral in each batch),
 * so the loss of iteration 1 and of the last iteration are the same
 * function at two parameter values. */
static void loss_decreases(const char *adjoint)
{
    char plugin[64];
    run_result r;
    char *m, *last;
    double first, final;

    snprintf(plugin, sizeof plugin, "adjoint.plugin=%s", adjoint);
    r = run("train", spiral, "-s", plugin, "-s", "data.npoints=200", "-s",
            "data.t1=5", "-s", "train.batch_size=191", "-s",
            "train.iterations=40", "-s", "train.lr=0.01", "-s",
            "train.metrics=m.jsonl", "-s", "train.checkpoint=", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    m = test_read_file(in_dir("m.jsonl"), NULL);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(sscanf(m, "{\"iteration\": 1, \"loss\": %lf", &first), 1);
    ck_assert_ptr_nonnull(last = strstr(m, "{\"iteration\": 40, \"loss\": "));
    ck_assert_int_eq(sscanf(last, "{\"iteration\": 40, \"loss\": %lf", &final),
                     1);
    ck_assert_msg(final < 0.25 * first,
                  "%s: loss %g after 40 iterations, %g at the first", adjoint,
                  final, first);
    free(m);
}

START_TEST(test_loss_decreases_discrete) { loss_decreases("discrete"); }
END_TEST
START_TEST(test_loss_decreases_interpolating)
{
    loss_decreases("interpolating");
}
END_TEST
START_TEST(test_loss_decreases_backsolve) { loss_decreases("backsolve"); }
END_TEST

/* ---- reproducibility and resume ------------------------------------------ */

#define SHORT "-s", "adjoint.plugin=discrete", "-s", "train.eval_every=10", \
              "--quiet"

START_TEST(test_same_seed_same_numbers)
{
    run_result r;
    char *a, *b, *c;

    r = run("train", spiral, SHORT, "-s", "train.iterations=20", "-s",
            "train.metrics=a.jsonl", "-s", "train.checkpoint=a.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", spiral, SHORT, "-s", "train.iterations=20", "-s",
            "train.metrics=b.jsonl", "-s", "train.checkpoint=b.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", spiral, SHORT, "-s", "train.iterations=20", "-s",
            "train.seed=2", "-s", "train.metrics=c.jsonl", "-s",
            "train.checkpoint=c.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    a = metrics_without_times("a.jsonl");
    b = metrics_without_times("b.jsonl");
    c = metrics_without_times("c.jsonl");
    ck_assert_msg(strcmp(a, b) == 0, "same seed, different metrics");
    /* the seed matters: the test can fail */
    ck_assert_msg(strcmp(a, c) != 0, "another seed, the same metrics");
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(test_resume_bit_for_bit)
{
    run_result r;
    ckpt_view x, y;
    char *a, *b;

    /* eval_every 15: the interrupted run's final evaluation at 15 is
     * also one of the uninterrupted run's */
    r = run("train", spiral, SHORT, "-s", "train.iterations=30", "-s",
            "train.eval_every=15", "-s", "train.metrics=full.jsonl", "-s", "train.checkpoint=full.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", spiral, SHORT, "-s", "train.iterations=15", "-s",
            "train.eval_every=15", "-s", "train.metrics=part.jsonl", "-s", "train.checkpoint=part.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    x = ckpt_read("part.ckpt");
    ck_assert_int_eq(x.iteration, 15);
    free(x.data);
    r = run("train", spiral, SHORT, "-s", "train.iterations=30", "-s",
            "train.eval_every=15", "-s", "train.metrics=part.jsonl", "-s",
            "train.checkpoint=part.ckpt", "--resume", "part.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    x = ckpt_read("full.ckpt");
    y = ckpt_read("part.ckpt");
    ck_assert_int_eq(x.iteration, 30);
    ck_assert_int_eq(y.iteration, 30);
    ck_assert_uint_eq(x.nparams, y.nparams);
    ck_assert_msg(memcmp(x.state, y.state, 3 * x.nparams * 8) == 0,
                  "parameters or Adam state differ after resume");
    a = metrics_without_times("full.jsonl");
    b = metrics_without_times("part.jsonl");
    ck_assert_msg(strcmp(a, b) == 0, "metrics differ after resume");
    free(a);
    free(b);
    free(x.data);
    free(y.data);
}
END_TEST

/* ---- refused checkpoints ------------------------------------------------- */

static void make_checkpoint(void)
{
    run_result r = run("train", spiral, SHORT, "-s", "train.iterations=5",
                       "-s", "train.metrics=", "-s",
                       "train.checkpoint=good.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
}

static void resume_refused(const char *ckpt, const char *needle,
                           const char *set)
{
    run_result r = run("train", spiral, SHORT, "-s", "train.iterations=10",
                       "-s", "train.metrics=", "-s", "train.checkpoint=",
                       "-s", set ? set : "train.lr=1e-3", "--resume", ckpt);
    test_assert_code(r, 2);
    assert_contains(r.err, needle);
    test_run_free(&r);
}

START_TEST(test_checkpoint_truncated)
{
    ckpt_view c;
    make_checkpoint();
    c = ckpt_read("good.ckpt");
    write_all(in_dir("short.ckpt"), c.data, c.len - 100);
    write_all(in_dir("header.ckpt"), c.data, 12);
    free(c.data);
    resume_refused("short.ckpt", "truncated", NULL);
    resume_refused("header.ckpt", "truncated", NULL);
    resume_refused("missing.ckpt", "cannot open checkpoint", NULL);
}
END_TEST

START_TEST(test_checkpoint_corrupted)
{
    ckpt_view c;
    make_checkpoint();
    c = ckpt_read("good.ckpt");
    c.data[c.len - 700] ^= 0x10;
    write_all(in_dir("bad.ckpt"), c.data, c.len);
    memcpy(c.data, "NOTACKPT", 8);
    write_all(in_dir("magic.ckpt"), c.data, c.len);
    free(c.data);
    resume_refused("bad.ckpt", "crc32 mismatch", NULL);
    resume_refused("magic.ckpt", "wrong magic", NULL);
}
END_TEST

START_TEST(test_checkpoint_mismatched)
{
    run_result r;
    make_checkpoint();
    /* another model: a different parameter count */
    resume_refused("good.ckpt", "parameters", "field.layers=2,20,2");
    /* the same model, a setting that changes the numbers */
    resume_refused("good.ckpt", "different config", "train.lr=0.5");
    resume_refused("good.ckpt", "different config", "solver.rtol=1e-5");
    /* the keys that do not change the numbers may differ */
    r = run("train", spiral, SHORT, "-s", "train.iterations=7", "-s",
            "train.metrics=", "-s", "train.checkpoint=", "--resume",
            "good.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
}
END_TEST

/* ---- failures during training -------------------------------------------- */

START_TEST(test_divergence_keeps_last_checkpoint)
{
    run_result r;
    ckpt_view c;

    r = run("train", spiral, SHORT, "-s", "train.lr=1e6", "-s",
            "solver.max_steps=2000", "-s", "train.iterations=50", "-s",
            "train.checkpoint_every=1", "-s", "train.metrics=", "-s",
            "train.checkpoint=div.ckpt");
    test_assert_code(r, 1);
    assert_contains(r.err, "nde: iteration 2: ");
    assert_contains(r.err, "last good state");
    test_run_free(&r);
    c = ckpt_read("div.ckpt");
    ck_assert_int_eq(c.iteration, 1);
    free(c.data);
}
END_TEST

/* A loss that overflows while the solve stays finite: x' = a x observed
 * up to exp(700). */
START_TEST(test_nonfinite_loss)
{
    static const char cfg[] =
        "[field]\nplugin = expr\nstate = x\nparams = a=1\ndx = a*x\n"
        "[solver]\nplugin = tsit5\nrtol = 1e-6\natol = 1e-6\n"
        "[adjoint]\nplugin = discrete\n"
        "[data]\nsource = field\ny0 = 1\ntrue_params = a=1.001\n"
        "npoints = 2\nt1 = 700\nbatch_time = 2\n"
        "[train]\nbatch_size = 1\niterations = 3\n";
    run_result r;

    write_all(in_dir("exp.ini"), cfg, sizeof cfg - 1);
    r = run("train", in_dir("exp.ini"), "--quiet");
    test_assert_code(r, 1);
    assert_contains(r.err, "nde: iteration 1: the loss is not finite");
    test_run_free(&r);
}
END_TEST

START_TEST(test_step_limit_names_iteration)
{
    run_result r = run("train", spiral, SHORT, "-s", "solver.max_steps=2",
                       "-s", "train.metrics=", "-s", "train.checkpoint=",
                       "--summary-json", "s.json");
    char *s;
    test_assert_code(r, 1);
    assert_contains(r.err, "nde: iteration 1: forward solve: max_steps = 2");
    test_run_free(&r);
    ck_assert_ptr_nonnull(s = test_read_file(in_dir("s.json"), NULL));
    assert_contains(s, "\"status\": \"NDE_EMAXSTEPS\"");
    free(s);
}
END_TEST

/* ---- bad [train] / [data] ------------------------------------------------ */

START_TEST(test_bad_keys)
{
    static const struct {
        const char *set, *needle;
    } cases[] = {
        {"train.iteratons=5", "[train] iteratons: unknown key (did you mean "
                              "'iterations'?)"},
        {"train.lr=-1", "[train] lr: -1 is outside (0, inf]"},
        {"train.batch_size=0", "[train] batch_size: 0 is below 1"},
        {"train.beta2=1", "[train] beta2: 1 is outside [0, 1)"},
        {"train.seed=x", "[train] seed"},
        {"data.source=mnist", "[data] source: unknown source 'mnist'"},
        {"data.batch_time=2000", "[data] batch_time: 2000 is more than "
                                 "npoints (1000)"},
        {"data.y0=1,2", "[data] y0: source = spiral fixes"},
        {"field.layers=3,50,3", "the field's dim (3) must equal the data's "
                                "dim (2)"},
        {"adjoint.plugin=nosuch", "no adjoint plugin named 'nosuch'"},
        /* the task plugins: a key of the windows task, a task by name */
        {"data.truth_solver=nosuch", "[data] truth_solver: no solver plugin "
                                     "named 'nosuch'"},
        {"data.source=moments", "[data] source: task 'moments' fits the "
                                "moments of an SDE's sample paths, and the "
                                "field has no diffusion"},
        {"data.t1=x", "[data] t1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_result r = run("train", spiral, "-s", "adjoint.plugin=discrete",
                           "-s", cases[i].set, "--quiet");
        test_assert_code(r, 2);
        assert_contains(r.err, cases[i].needle);
        if (strncmp(cases[i].set, "field.", 6) != 0)
            assert_contains(r.err, "command line (-s ");
        test_run_free(&r);
    }
}
END_TEST

/* The [data] sources' tasks are plugins: listed with their keys, the
 * classification defaults being the classify task's. */
START_TEST(test_task_plugins_listed)
{
    static const char *const needles[] = {
        "task plugins:", "  windows - ", "  moments - ", "  series - ",
        "  classify - ", "truth_solver word            tsit5",
        "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"};
    run_result r = run("plugins", "task");

    test_assert_code(r, 0);
    for (size_t i = 0; i < sizeof needles / sizeof *needles; i++)
        assert_contains(r.out, needles[i]);
    test_run_free(&r);
}
END_TEST

/* A task plugin (test module ttask) whose field state is larger than its
 * data: a learned lift, a readout, a task parameter; the gradient through
 * them agrees with finite differences, training and evaluation run, and
 * a task that breaks its declarations or lacks ops is refused. */
START_TEST(test_task_plugin_augmented)
{
    static const char ini[] = "[field]\nplugin = linear\n"
                              "A = -1, 0.3, 0.2, -0.5\n"
                              "[solver]\nplugin = tsit5\nrtol = 1e-9\n"
                              "atol = 1e-9\n"
                              "[adjoint]\nplugin = discrete\n"
                              "[data]\nsource = ttask\n"
                              "[train]\nbatch_size = 2\niterations = 50\n"
                              "lr = 0.05\neval_every = 0\ncheckpoint =\n";
    const char *cfg = in_dir("aug.ini");
    run_result r;

    write_all(cfg, ini, sizeof ini - 1);
    r = run("gradcheck", cfg, "--tol", "1e-6");
    test_assert_code(r, 0);
    assert_contains(r.out, "lift.a ");
    test_run_free(&r);
    r = run("train", cfg, "--quiet");
    test_assert_code(r, 0);
    assert_contains(r.out, "lift.a = ");
    assert_contains(r.err, "test_loss ");
    test_run_free(&r);
    r = run("train", cfg, "-s", "data.lie=saves", "--quiet");
    test_assert_code(r, 2);
    assert_contains(r.err, "task plugin 'ttask': a batch of 5 save times");
    test_run_free(&r);
    r = run("train", cfg, "-s", "data.source=tbadtask", "--quiet");
    test_assert_code(r, 2);
    assert_contains(r.err, "task plugin 'tbadtask' lacks one of");
    test_run_free(&r);
}
END_TEST

/* ---- predict ------------------------------------------------------------- */

START_TEST(test_predict)
{
    run_result r;
    char *csv, *s;
    double t, x, y;

    r = run("train", spiral, SHORT, "-s", "train.iterations=10", "-s",
            "train.metrics=", "-s", "train.checkpoint=p.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("predict", "p.ckpt", "-o", "held.csv", "--summary-json",
            "p.json");
    test_assert_code(r, 0);
    assert_contains(r.err, "test_loss");
    test_run_free(&r);
    csv = test_read_file(in_dir("held.csv"), NULL);
    ck_assert_ptr_nonnull(csv);
    ck_assert_int_eq(sscanf(csv, "t,y0,y1\n%lf,%lf,%lf", &t, &x, &y), 3);
    ck_assert(t == 0 && x == 2 && y == 0);
    free(csv);
    ck_assert_ptr_nonnull(s = test_read_file(in_dir("p.json"), NULL));
    assert_contains(s, "\"predict_nfe\": ");
    free(s);
    r = run("predict", "p.ckpt", "-s", "problem.y0=1,0.5", "-s",
            "problem.nsave=3", "-s", "problem.t1=1", "-o", "prob.csv");
    test_assert_code(r, 0);
    test_run_free(&r);
    csv = test_read_file(in_dir("prob.csv"), NULL);
    ck_assert_ptr_nonnull(csv);
    assert_contains(csv, "t,y0,y1\n0,1,0.5\n0.5,");
    assert_contains(csv, "\n1,");
    free(csv);
}
END_TEST

/* ---- gradcheck, examples ------------------------------------------------ */

START_TEST(test_gradcheck)
{
    static const char *const adjoints[] = {"adjoint.plugin=discrete",
                                           "adjoint.plugin=interpolating",
                                           "adjoint.plugin=backsolve"};
    run_result r;

    for (int i = 0; i < 3; i++) {
        r = run("gradcheck", spiral, "-s", adjoints[i], "-s",
                "solver.rtol=1e-9", "-s", "solver.atol=1e-9", "--tol",
                "1e-6");
        test_assert_code(r, 0);
        assert_contains(r.out, "relative difference discrete vs finite "
                               "differences: ");
        test_run_free(&r);
    }
    /* finite differences of an adaptive solve agree to ~1e-8 here, not
     * 1e-14: the check must report it and fail */
    r = run("gradcheck", spiral, "-s", "adjoint.plugin=discrete", "--tol",
            "1e-14");
    test_assert_code(r, 1);
    assert_contains(r.err, "exceeds --tol");
    test_run_free(&r);
}
END_TEST

START_TEST(test_lotka_volterra_recovery)
{
    static const char *names[] = {"a = ", "b = ", "c = ", "d = "};
    static const double truth[] = {1.5, 1.0, 3.0, 1.0};
    char lv[4096];
    run_result r;

    snprintf(lv, sizeof lv, "%s/examples/lotka_volterra_fit.ini",
             getenv("NDE_SOURCE_ROOT"));
    r = run("train", lv, "-s", "adjoint.plugin=discrete", "--quiet");
    test_assert_code(r, 0);
    for (int i = 0; i < 4; i++) {
        const char *p = strstr(r.out, names[i]);
        double v;
        ck_assert_msg(p && sscanf(p + 4, "%lf", &v) == 1, "no %s in:\n%s",
                      names[i], r.out);
        ck_assert_msg(fabs(v - truth[i]) < 0.05 * truth[i],
                      "%s%g, truth %g", names[i], v, truth[i]);
    }
    test_run_free(&r);
}
END_TEST

START_TEST(test_solve_ignores_training_sections)
{
    run_result r = run("solve", spiral, "-o", "sol.csv");
    test_assert_code(r, 0);
    test_run_free(&r);
}
END_TEST

/* ---- source = csv -------------------------------------------------------- */

#define LV_EXPR                                                              \
    "[field]\nplugin = expr\nstate = x, y\n"                                \
    "params = a=1, b=1, c=1, d=1\n"                                          \
    "dx = a*x - b*x*y\ndy = d*x*y - c*y\n"

/* Series from `nde solve` of the true system (its batch CSV is the data
 * format: id, t, states), then recover the parameters from them. */
START_TEST(test_csv_recovers_parameters)
{
    static const char solve_cfg[] =
        "[problem]\nt0 = 0\nt1 = 5\nnsave = 26\n"
        "y0 = 1, 1\n    2, 1\n    1, 2\n    1.5, 0.5\n    0.5, 1.5\n"
        "    2, 2\n"
        "[solver]\nplugin = tsit5\nrtol = 1e-10\natol = 1e-12\n"
        "[field]\nplugin = expr\nstate = x, y\n"
        "params = a=1.5, b=1.0, c=3.0, d=1.0\n"
        "dx = a*x - b*x*y\ndy = d*x*y - c*y\n";
    static const char train_cfg[] =
        "[solver]\nplugin = tsit5\nrtol = 1e-6\natol = 1e-8\n" LV_EXPR
        "[adjoint]\nplugin = discrete\n"
        "[data]\nsource = csv\npath = lv.csv\ntest_fraction = 0.34\n"
        "[train]\niterations = 300\nbatch_size = 4\nlr = 0.05\n";
    static const char *names[] = {"a = ", "b = ", "c = ", "d = "};
    static const double truth[] = {1.5, 1.0, 3.0, 1.0};
    run_result r;
    char *csv;

    write_all(in_dir("lvsolve.ini"), solve_cfg, sizeof solve_cfg - 1);
    write_all(in_dir("lvfit.ini"), train_cfg, sizeof train_cfg - 1);
    r = run("solve", "lvsolve.ini", "-o", "lv.csv");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", "lvfit.ini", "--quiet", "-s", "train.checkpoint=lv.ckpt");
    test_assert_code(r, 0);
    for (int i = 0; i < 4; i++) {
        const char *p = strstr(r.out, names[i]);
        double v;
        ck_assert_msg(p && sscanf(p + 4, "%lf", &v) == 1, "no %s in:\n%s",
                      names[i], r.out);
        ck_assert_msg(fabs(v - truth[i]) < 1e-3 * truth[i], "%s%g, truth %g",
                      names[i], v, truth[i]);
    }
    test_run_free(&r);
    /* the held-out series, one block per series id */
    r = run("predict", "lv.ckpt", "-o", "held.csv");
    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_ptr_nonnull(csv = test_read_file(in_dir("held.csv"), NULL));
    ck_assert(strncmp(csv, "series,t,x,y\n", 13) == 0);
    free(csv);
}
END_TEST

START_TEST(test_csv_bad_input)
{
    static const char base[] =
        "[solver]\nplugin = tsit5\n" LV_EXPR
        "[adjoint]\nplugin = discrete\n"
        "[data]\nsource = csv\npath = d.csv\ntest_fraction = 0\n"
        "[train]\niterations = 2\nbatch_size = 1\n";
    static const char three[] = "id,t,x,y,z\na,0,1,1,1\na,1,2,2,2\n";
    static const char nan_first[] = "id,t,x,y\na,0,1,\na,1,2,2\n";
    static const char bad_cell[] = "id,t,x,y\na,0,1,1\na,1,2,oops\n";
    run_result r;

    write_all(in_dir("c.ini"), base, sizeof base - 1);
    write_all(in_dir("d.csv"), three, sizeof three - 1);
    r = run("train", "c.ini", "--quiet");
    test_assert_code(r, 2);
    assert_contains(r.err, "the field's dim (2) must equal the data's dim (3");
    test_run_free(&r);
    write_all(in_dir("d.csv"), nan_first, sizeof nan_first - 1);
    r = run("train", "c.ini", "--quiet");
    test_assert_code(r, 2);
    assert_contains(r.err, "series 'a': its first observation");
    test_run_free(&r);
    write_all(in_dir("d.csv"), bad_cell, sizeof bad_cell - 1);
    r = run("train", "c.ini", "--quiet");
    ck_assert_int_ne(r.code, 0);
    assert_contains(r.err, "d.csv:3");
    test_run_free(&r);
    r = run("train", "c.ini", "--quiet", "-s", "data.path=none.csv");
    ck_assert_int_ne(r.code, 0);
    assert_contains(r.err, "none.csv");
    test_run_free(&r);
}
END_TEST

/* ---- classification (source = idx) -------------------------------------- */

/* 5 x 5: 25 features, a count the encoder kernels' column blocks do not
 * divide (plugins/tasks/classify.c) */
#define IMG_SIDE 5
#define NCLASS 3
/* tiny.ini's classifier: the 3-8-3 field, the encoder (F x 3 + 3) and the
 * decoder (3 x 3 + 3) */
#define TINY_ENC_PARAMS (IMG_SIDE * IMG_SIDE * 3 + 3)
#define TINY_PARAMS (59 + TINY_ENC_PARAMS + 12)

/* A big-endian u32 into b. */
static void be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static void gz_write_file(const char *name, const unsigned char *data,
                          size_t len)
{
    gzFile gz = gzopen(in_dir(name), "wb");
    ck_assert_ptr_nonnull(gz);
    ck_assert_int_eq(gzwrite(gz, data, (unsigned)len), (int)len);
    ck_assert_int_eq(gzclose(gz), Z_OK);
}

/*
 * n 4x4 images of 3 classes, gzip-compressed IDX: class c lights rows
 * 0..c-1... no: class c has its bright band on row c (value 200-255), the
 * other pixels dim noise (0-79); labels cycle 0, 1, 2 with a pseudorandom
 * jitter. Linearly separable by the band's row.
 */
static void write_idx_set(const char *images, const char *labels, size_t n,
                          uint32_t seed)
{
    const size_t F = IMG_SIDE * IMG_SIDE;
    unsigned char *img = malloc(16 + n * F), *lab = malloc(8 + n);
    uint32_t s = seed;
    size_t i, k;

    ck_assert_ptr_nonnull(img);
    ck_assert_ptr_nonnull(lab);
    be32(img, 0x00000803u);
    be32(img + 4, (uint32_t)n);
    be32(img + 8, IMG_SIDE);
    be32(img + 12, IMG_SIDE);
    be32(lab, 0x00000801u);
    be32(lab + 4, (uint32_t)n);
    for (i = 0; i < n; i++) {
        int c;
        s = s * 1664525u + 1013904223u;
        c = (int)((s >> 16) % NCLASS);
        lab[8 + i] = (unsigned char)c;
        for (k = 0; k < F; k++) {
            s = s * 1664525u + 1013904223u;
            img[16 + i * F + k] =
                (unsigned char)(k / IMG_SIDE == (size_t)c
                                    ? 200 + (s >> 16) % 56
                                    : (s >> 16) % 80);
        }
    }
    gz_write_file(images, img, 16 + n * F);
    gz_write_file(labels, lab, 8 + n);
    free(img);
    free(lab);
}

/* tiny.ini: 120 training and 60 test images; a 3-8-3 tanh MLP field. */
static void write_tiny_classifier(void)
{
    static const char ini[] =
        "[solver]\nplugin = tsit5\nrtol = 1e-6\natol = 1e-8\n"
        "[field]\nplugin = mlp\nlayers = 3, 8, 3\nactivation = tanh\n"
        "time = false\n"
        "[adjoint]\nplugin = discrete\n"
        "[data]\nsource = idx\nimages = tr-img.gz\nlabels = tr-lab.gz\n"
        "test_images = te-img.gz\ntest_labels = te-lab.gz\n"
        "[train]\niterations = 60\nbatch_size = 16\nlr = 0.03\nseed = 1\n"
        "eval_every = 20\n";
    write_idx_set("tr-img.gz", "tr-lab.gz", 120, 7u);
    write_idx_set("te-img.gz", "te-lab.gz", 60, 99u);
    write_all(in_dir("tiny.ini"), ini, sizeof ini - 1);
}

static double json_number(const char *text, const char *key)
{
    char pat[128];
    const char *p;
    double v;

    snprintf(pat, sizeof pat, "\"%s\": ", key);
    p = strstr(text, pat);
    ck_assert_msg(p != NULL, "no %s in %s", key, text);
    ck_assert_int_eq(sscanf(p + strlen(pat), "%lf", &v), 1);
    return v;
}

/* Every parameter (field, encoder, decoder) by central differences. */
START_TEST(test_classify_gradcheck)
{
    static const char *const adjoints[] = {"adjoint.plugin=discrete",
                                           "adjoint.plugin=interpolating"};
    run_result r;

    write_tiny_classifier();
    for (int i = 0; i < 2; i++) {
        r = run("gradcheck", "tiny.ini", "-s", adjoints[i], "-s",
                "solver.rtol=1e-10", "-s", "solver.atol=1e-10", "--nparams",
                "1000", "--tol", "1e-6");
        test_assert_code(r, 0);
        char want[64];
        snprintf(want, sizeof want, "%d parameters, %d checked",
                 TINY_PARAMS, TINY_PARAMS);
        assert_contains(r.out, want);
        assert_contains(r.out, "enc.W[2,24]");
        assert_contains(r.out, "enc.b[0]");
        assert_contains(r.out, "dec.W[2,2]");
        assert_contains(r.out, "dec.b[2]");
        assert_contains(r.out, "W1[");
        test_run_free(&r);
    }
    r = run("gradcheck", "tiny.ini", "--nparams", "1000", "--tol", "1e-14");
    test_assert_code(r, 1);
    test_run_free(&r);
}
END_TEST

/* Loss falls and test accuracy rises far above chance (1/3); predict
 * writes one row per test image and the same accuracy. */
START_TEST(test_classify_learns)
{
    run_result r;
    char *sum, *m, *csv, *last, *line;
    double first, final, acc, acc_pred;
    int rows = 0, correct = 0;

    write_tiny_classifier();
    r = run("train", "tiny.ini", "-s", "train.metrics=m.jsonl", "-s",
            "train.checkpoint=c.ckpt", "--summary-json", "s.json",
            "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_ptr_nonnull(sum = test_read_file(in_dir("s.json"), NULL));
    ck_assert_ptr_nonnull(m = test_read_file(in_dir("m.jsonl"), NULL));
    ck_assert_int_eq(sscanf(m, "{\"iteration\": 1, \"loss\": %lf", &first), 1);
    ck_assert_ptr_nonnull(last = strstr(m, "{\"iteration\": 60, \"loss\": "));
    ck_assert_int_eq(sscanf(last, "{\"iteration\": 60, \"loss\": %lf", &final),
                     1);
    acc = json_number(sum, "test_accuracy");
    ck_assert_msg(final < 0.5 * first, "loss %g after 60 iterations, %g first",
                  final, first);
    ck_assert_msg(acc > 0.9, "test_accuracy %g", acc);
    ck_assert_double_gt(json_number(sum, "predict_nfe"), 0);
    ck_assert_ptr_nonnull(strstr(m, "\"test_accuracy\": "));
    free(sum);
    free(m);

    r = run("predict", "c.ckpt", "-o", "pred.csv", "--summary-json",
            "p.json");
    test_assert_code(r, 0);
    assert_contains(r.err, "test_accuracy ");
    test_run_free(&r);
    ck_assert_ptr_nonnull(csv = test_read_file(in_dir("pred.csv"), NULL));
    ck_assert_msg(strncmp(csv, "index,label,predicted,p0,p1,p2\n", 31) == 0,
                  "header: %.40s", csv);
    for (line = strchr(csv, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        int idx, lab, pred;
        double p[3];
        ck_assert_int_eq(sscanf(line, "%d,%d,%d,%lf,%lf,%lf", &idx, &lab,
                                &pred, &p[0], &p[1], &p[2]),
                         6);
        ck_assert_int_eq(idx, rows);
        ck_assert_double_eq_tol(p[0] + p[1] + p[2], 1.0, 1e-6);
        correct += lab == pred;
        rows++;
    }
    ck_assert_int_eq(rows, 60);
    ck_assert_ptr_nonnull(sum = test_read_file(in_dir("p.json"), NULL));
    acc_pred = json_number(sum, "test_accuracy");
    ck_assert_double_eq_tol(acc_pred, acc, 1e-12);
    ck_assert_double_eq_tol((double)correct / rows, acc, 1e-12);
    free(sum);
    free(csv);
}
END_TEST

/* 120 examples in batches of 16: the interruption at 15 falls inside an
 * epoch, and both halves cross epoch boundaries. */
START_TEST(test_classify_resume_bit_for_bit)
{
    run_result r;
    ckpt_view x, y;
    char *a, *b;

    write_tiny_classifier();
    r = run("train", "tiny.ini", "-s", "train.iterations=30", "-s",
            "train.eval_every=15", "-s", "train.metrics=full.jsonl", "-s",
            "train.checkpoint=full.ckpt", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", "tiny.ini", "-s", "train.iterations=15", "-s",
            "train.eval_every=15", "-s", "train.metrics=part.jsonl", "-s",
            "train.checkpoint=part.ckpt", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", "tiny.ini", "-s", "train.iterations=30", "-s",
            "train.eval_every=15", "-s", "train.metrics=part.jsonl", "-s",
            "train.checkpoint=part.ckpt", "--resume", "part.ckpt", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    x = ckpt_read("full.ckpt");
    y = ckpt_read("part.ckpt");
    ck_assert_int_eq(x.iteration, 30);
    ck_assert_int_eq(y.iteration, 30);
    ck_assert_uint_eq(x.nparams, TINY_PARAMS);
    ck_assert_uint_eq(x.nparams, y.nparams);
    ck_assert_msg(memcmp(x.state, y.state, 3 * x.nparams * 8) == 0,
                  "parameters or Adam state differ after resume");
    a = metrics_without_times("full.jsonl");
    b = metrics_without_times("part.jsonl");
    ck_assert_msg(strcmp(a, b) == 0, "metrics differ after resume");
    free(a);
    free(b);
    free(x.data);
    free(y.data);
    /* a checkpoint of another encoder width is refused */
    r = run("train", "tiny.ini", "-s", "field.layers=4,8,4", "--resume",
            "full.ckpt", "--quiet");
    test_assert_code(r, 2);
    assert_contains(r.err, "full.ckpt");
    test_run_free(&r);
}
END_TEST

/* Missing, malformed and truncated IDX files: exit 2 naming the file. */
START_TEST(test_classify_bad_files)
{
    static const unsigned char wrong_magic[] = {0, 0, 8, 1, 0, 0, 0, 0};
    unsigned char *whole;
    size_t len;
    run_result r;

    write_tiny_classifier();
    r = run("train", "tiny.ini", "-s", "data.images=missing-img.gz",
            "--quiet");
    test_assert_code(r, 2);
    assert_contains(r.err, "missing-img.gz");
    test_run_free(&r);
    r = run("train", "tiny.ini", "-s", "data.test_labels=none.gz", "--quiet");
    test_assert_code(r, 2);
    assert_contains(r.err, "none.gz");
    test_run_free(&r);
    write_all(in_dir("magic.idx"), (const char *)wrong_magic,
              sizeof wrong_magic);
    r = run("train", "tiny.ini", "-s", "data.images=magic.idx", "--quiet");
    test_assert_code(r, 2);
    assert_contains(r.err, "magic.idx");
    test_run_free(&r);
    /* images cut short: uncompressed, half of the file */
    write_idx_set("u-img.gz", "u-lab.gz", 120, 7u);
    {
        gzFile gz = gzopen(in_dir("u-img.gz"), "rb");
        ck_assert_ptr_nonnull(gz);
        ck_assert_ptr_nonnull(whole = malloc(16 + 120 * 16));
        len = (size_t)gzread(gz, whole, 16 + 120 * 16);
        gzclose(gz);
        ck_assert_uint_eq(len, 16 + 120 * 16);
        write_all(in_dir("short.idx"), (const char *)whole, len / 2);
        free(whole);
    }
    r = run("train", "tiny.ini", "-s", "data.images=short.idx", "--quiet");
    test_assert_code(r, 2);
    assert_contains(r.err, "short.idx");
    test_run_free(&r);
}
END_TEST

/* The tiny classifier with an SDE block: the mlp's diffusion network
 * softplus(affine(affine(y))), lamba_heun (run with -s solver.plugin=...
 * for fixed steps). */
static const char *const tiny_sde[] = {
    "-s", "field.diffusion=softplus", "-s", "field.g_layers=3", "-s",
    "field.g_activation=identity", "-s", "solver.plugin=lamba_heun", "-s",
    "solver.rtol=1e-2", "-s", "solver.atol=1e-2", "-s", "solver.dt=0.05"};
#define TINY_SDE                                                             \
    tiny_sde[0], tiny_sde[1], tiny_sde[2], tiny_sde[3], tiny_sde[4],         \
        tiny_sde[5], tiny_sde[6], tiny_sde[7], tiny_sde[8], tiny_sde[9],     \
        tiny_sde[10], tiny_sde[11], tiny_sde[12], tiny_sde[13]

/* The gradient of the SDE classifier on one training batch's Brownian
 * path (fixed-step solvers: finite differences of an adaptive SDE solve
 * jump with its step grid) against central differences, every parameter;
 * the diffusion's own parameters get a non-zero gradient, so the batch's
 * rows are solved with noise. */
START_TEST(test_classify_sde_gradcheck)
{
    static const char *const cases[][2] = {
        {"solver.plugin=euler_maruyama", "adjoint.plugin=discrete"},
        {"solver.plugin=reversible_heun", "adjoint.plugin=reversible"}};
    run_result r;

    write_tiny_classifier();
    for (int i = 0; i < 2; i++) {
        const char *g;
        double v;
        r = run("gradcheck", "tiny.ini", TINY_SDE, "-s", cases[i][0], "-s",
                cases[i][1], "--nparams", "1000", "--tol", "1e-6");
        test_assert_code(r, 0);
        /* 59 drift + 24 diffusion + the encoder + 12 decoder parameters
         * (short messages: Check's are bounded) */
        char want[64];
        snprintf(want, sizeof want, "%d parameters, %d checked",
                 TINY_PARAMS + 24, TINY_PARAMS + 24);
        ck_assert_msg(strstr(r.out, want), "%.200s", r.out);
        ck_assert_ptr_nonnull(g = strstr(r.out, "\ngb2[0]"));
        ck_assert_int_eq(sscanf(g + 1, "gb2[0] %lf", &v), 1);
        ck_assert_msg(fabs(v) > 1e-8, "diffusion gradient %g", v);
        test_run_free(&r);
    }
    r = run("gradcheck", "tiny.ini", TINY_SDE, "-s", cases[0][0],
            "--nparams", "1000", "--tol", "1e-14");
    test_assert_code(r, 1);
    test_run_free(&r);
}
END_TEST

/* lamba_heun: test accuracy far above chance (1/3) after 60 iterations;
 * the evaluation's Brownian path is fixed, so `nde predict` of the
 * checkpoint gives the training's last test loss bit for bit. Loop: the
 * Brownian path refined by bisection (0) or at the query times (1; the
 * same queries in the same order, the same bits). */
START_TEST(test_classify_sde_learns)
{
    run_result r;
    char *sum;
    double acc, loss;

    write_tiny_classifier();
    r = run("train", "tiny.ini", TINY_SDE, "-s",
            _i ? "solver.brownian=split" : "solver.brownian=tree", "-s",
            "train.checkpoint=c.ckpt", "--summary-json", "s.json",
            "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_ptr_nonnull(sum = test_read_file(in_dir("s.json"), NULL));
    acc = json_number(sum, "test_accuracy");
    loss = json_number(sum, "test_loss");
    ck_assert_msg(acc > 0.8, "test_accuracy %g", acc);
    free(sum);
    r = run("predict", "c.ckpt", "-o", "pred.csv", "--summary-json",
            "p.json");
    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_ptr_nonnull(sum = test_read_file(in_dir("p.json"), NULL));
    ck_assert_double_eq(json_number(sum, "test_loss"), loss);
    ck_assert_double_eq(json_number(sum, "test_accuracy"), acc);
    free(sum);
}
END_TEST

/* [solver] brownian: a word of two, for SDE solvers; split paths carry
 * the space-time Levy area that sosri reads. */
START_TEST(test_brownian_key)
{
    run_result r;

    write_tiny_classifier();
    r = run("train", "tiny.ini", TINY_SDE, "-s", "solver.plugin=sosri", "-s",
            "solver.brownian=split", "-s", "train.iterations=5", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", "tiny.ini", TINY_SDE, "-s", "solver.brownian=bisect",
            "--quiet");
    ck_assert_int_ne(r.code, 0);
    assert_contains(r.err, "brownian");
    assert_contains(r.err, "not a refinement (tree or split)");
    test_run_free(&r);
    r = run("train", "tiny.ini", "-s", "solver.brownian=split", "--quiet");
    ck_assert_int_ne(r.code, 0);
    assert_contains(r.err, "not an SDE solver");
    test_run_free(&r);
}
END_TEST

/* examples/fashion_mnist_sde.ini and the arms of ab_sde_classifier.ini
 * run (shortened) on Debian's Fashion-MNIST, skipped without it. */
START_TEST(test_classify_sde_example)
{
    static const char *const arms[][2] = {
        {"regularizer.local.plugin=local", "regularizer.local.weight=1000"},
        {"regularizer.global.plugin=global",
         "regularizer.global.weight=10"},
        {"train.seed=2", "train.lr=0.01"}};
    char ini[4096];
    run_result r;

    if (access("/usr/share/datasets/fashion-mnist", R_OK) != 0) {
        fprintf(stderr, "skipped: no dataset-fashion-mnist\n");
        return;
    }
    snprintf(ini, sizeof ini, "%s/examples/fashion_mnist_sde.ini",
             getenv("NDE_SOURCE_ROOT"));
    for (int i = 0; i < 3; i++) {
        r = run("train", ini, "-s", "data.limit=128", "-s",
                "data.test_limit=64", "-s", "train.batch_size=32", "-s",
                "train.iterations=2", "-s", "train.eval_every=2", "-s",
                arms[i][0], "-s", arms[i][1], "--quiet");
        test_assert_code(r, 0);
        assert_contains(r.err, "test_accuracy ");
        test_run_free(&r);
    }
}
END_TEST

/* ---- regularizers through `nde train` (test module treg) ------------------ */

/* The real plugins on the full-batch spiral of loss_decreases: the run
 * completes, the loss (data + weighted regularizer) falls, and the
 * regularizer's value is in the metrics. */
static void reg_loss_decreases(const char *plugin, const char *key,
                               const char *value)
{
    char pset[96], wset[96], kset[96], name[64];
    run_result r;
    char *m, *last;
    double first, final;

    snprintf(pset, sizeof pset, "regularizer.r.plugin=%s", plugin);
    snprintf(wset, sizeof wset, "regularizer.r.weight=0.01");
    snprintf(kset, sizeof kset, "regularizer.r.%s=%s", key ? key : "weight",
             key ? value : "0.01");
    r = run("train", spiral, "-s", pset, "-s", wset, "-s", kset, "-s",
            "adjoint.plugin=interpolating", "-s", "data.npoints=200", "-s",
            "data.t1=5", "-s", "train.batch_size=191", "-s",
            "train.iterations=40", "-s", "train.lr=0.01", "-s",
            "train.metrics=m.jsonl", "-s", "train.checkpoint=", "--quiet");
    test_assert_code(r, 0);
    test_run_free(&r);
    m = test_read_file(in_dir("m.jsonl"), NULL);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(sscanf(m, "{\"iteration\": 1, \"loss\": %lf", &first), 1);
    ck_assert_ptr_nonnull(last = strstr(m, "{\"iteration\": 40, \"loss\": "));
    ck_assert_int_eq(sscanf(last, "{\"iteration\": 40, \"loss\": %lf", &final),
                     1);
    ck_assert_msg(final < 0.25 * first,
                  "%s: loss %g after 40 iterations, %g at the first", plugin,
                  final, first);
    snprintf(name, sizeof name, "reg_r");
    ck_assert_double_ge(json_number(last, name), 0.0);
    free(m);
}

START_TEST(test_reg_spiral_local) { reg_loss_decreases("local", NULL, NULL); }
END_TEST
START_TEST(test_reg_spiral_local_biased)
{
    reg_loss_decreases("local", "sampling", "biased");
}
END_TEST
START_TEST(test_reg_spiral_global) { reg_loss_decreases("global", NULL, NULL); }
END_TEST
START_TEST(test_reg_spiral_steer) { reg_loss_decreases("steer", "b", "0.01"); }
END_TEST

#define TREG "-s", "regularizer.wd.plugin=treg"

START_TEST(test_reg_capability_refused)
{
    run_result r = run("train", spiral, "--quiet", TREG, "-s",
                       "regularizer.wd.weight=1", "-s",
                       "regularizer.wd.needs=error_est", "-s",
                       "solver.plugin=rk4", "-s", "solver.dt=0.05");
    test_assert_code(r, 2);
    assert_contains(r.err, "regularizer 'treg'");
    assert_contains(r.err, "solver 'rk4'");
    assert_contains(r.err, "error estimate");
    test_run_free(&r);
}
END_TEST

START_TEST(test_reg_bad_keys)
{
    run_result r = run("train", spiral, "--quiet", TREG, "-s",
                       "regularizer.wd.wieght=1");
    test_assert_code(r, 2);
    assert_contains(r.err, "[regularizer.wd] wieght");
    assert_contains(r.err, "did you mean 'weight'");
    test_run_free(&r);
    r = run("train", spiral, "--quiet", TREG);
    test_assert_code(r, 2);
    assert_contains(r.err, "[regularizer.wd] weight: missing");
    test_run_free(&r);
    r = run("train", spiral, "--quiet", TREG, "-s", "regularizer.wd.weight=1",
            "-s", "regularizer.wd.schedule=exponential");
    test_assert_code(r, 2);
    assert_contains(r.err, "weight_final");
    test_run_free(&r);
    r = run("train", spiral, "--quiet", TREG, "-s", "regularizer.wd.weight=1",
            "-s", "regularizer.wd.clip=-1");
    test_assert_code(r, 2);
    assert_contains(r.err, "[regularizer.wd] clip");
    test_run_free(&r);
}
END_TEST

/* A regularizer of weight 0 that moves nothing leaves every number of the
 * run as it is without it (the wiring itself does not perturb the solve). */
START_TEST(test_reg_zero_weight_same_numbers)
{
    run_result r;
    ckpt_view x, y;

    r = run("train", spiral, SHORT, "-s", "train.iterations=20", "-s",
            "train.checkpoint=a.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", spiral, SHORT, TREG, "-s", "regularizer.wd.weight=0",
            "-s", "train.iterations=20", "-s", "train.checkpoint=b.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    x = ckpt_read("a.ckpt");
    y = ckpt_read("b.ckpt");
    ck_assert_uint_eq(x.nparams, y.nparams);
    ck_assert_msg(memcmp(x.state, y.state, 3 * x.nparams * 8) == 0,
                  "a weight-0 regularizer changed the parameters");
    free(x.data);
    free(y.data);
}
END_TEST

/* Exponential 100 -> 10 over 5 iterations: reg / reg_wd is the weight. */
START_TEST(test_reg_schedule_in_metrics)
{
    run_result r = run("train", spiral, "--quiet", TREG, "-s",
                       "regularizer.wd.weight=100", "-s",
                       "regularizer.wd.schedule=exponential", "-s",
                       "regularizer.wd.weight_final=10", "-s",
                       "train.iterations=5", "-s", "train.eval_every=0", "-s",
                       "train.metrics=w.jsonl");
    char *text, *line;
    int i = 0;

    test_assert_code(r, 0);
    test_run_free(&r);
    ck_assert_ptr_nonnull(text = test_read_file(in_dir("w.jsonl"), NULL));
    for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        double want = 100.0 * pow(0.1, i / 4.0);
        if (!strstr(line, "\"loss\""))
            continue;
        ck_assert_double_eq_tol(json_number(line, "reg") /
                                    json_number(line, "reg_wd"),
                                want, 1e-9 * want);
        i++;
    }
    ck_assert_int_eq(i, 5);
    free(text);
}
END_TEST

/* As test_resume_bit_for_bit, with regularizers: treg, one of weight 0
 * (which still reports its value), and the random ones steer (t1 drawn)
 * and local (t_s drawn), in that order. */
START_TEST(test_reg_resume_bit_for_bit)
{
#define REGS TREG, "-s", "regularizer.wd.weight=1e-3", "-s",                  \
             "regularizer.zero.plugin=treg", "-s",                           \
             "regularizer.zero.weight=0", "-s",                              \
             "regularizer.steer.plugin=steer", "-s",                         \
             "regularizer.steer.weight=1", "-s", "regularizer.steer.b=0.1",  \
             "-s", "regularizer.loc.plugin=local", "-s",                     \
             "regularizer.loc.weight=0.01"
    run_result r;
    ckpt_view x, y;
    char *a, *b;

    r = run("train", spiral, SHORT, REGS, "-s", "train.iterations=30", "-s",
            "train.eval_every=15", "-s", "train.metrics=full.jsonl", "-s",
            "train.checkpoint=full.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    r = run("train", spiral, SHORT, REGS, "-s", "train.iterations=15", "-s",
            "train.eval_every=15", "-s", "train.metrics=part.jsonl", "-s",
            "train.checkpoint=part.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    /* the regularizer sections are part of the checkpoint's config */
    r = run("train", spiral, SHORT, "-s", "train.iterations=30", "-s",
            "train.checkpoint=x.ckpt", "--resume", "part.ckpt");
    test_assert_code(r, 2);
    assert_contains(r.err, "regularizer");
    test_run_free(&r);
    r = run("train", spiral, SHORT, REGS, "-s", "train.iterations=30", "-s",
            "train.eval_every=15", "-s", "train.metrics=part.jsonl", "-s",
            "train.checkpoint=part.ckpt", "--resume", "part.ckpt");
    test_assert_code(r, 0);
    test_run_free(&r);
    x = ckpt_read("full.ckpt");
    y = ckpt_read("part.ckpt");
    ck_assert_int_eq(y.iteration, 30);
    ck_assert_uint_eq(x.nparams, y.nparams);
    ck_assert_msg(memcmp(x.state, y.state, 3 * x.nparams * 8) == 0,
                  "parameters or Adam state differ after resume");
    a = metrics_without_times("full.jsonl");
    b = metrics_without_times("part.jsonl");
    ck_assert_msg(strcmp(a, b) == 0, "metrics differ after resume");
    assert_contains(a, "\"reg\": ");
    assert_contains(a, "\"reg_wd\": ");
    assert_contains(a, "\"reg_zero\": ");
    assert_contains(a, "\"reg_loc\": ");
    free(a);
    free(b);
    free(x.data);
    free(y.data);
#undef REGS
}
END_TEST

/* ---- regularizers through the library (test-local types) ---------------- */

/* What the test regularizers saw. */
static struct {
    long calls, before_calls;
    uint64_t seed, seeds_differ;
    double t0, t1, weight[16];
    size_t nextra;
    double extra_y[4 * 64], y0[64];
    size_t n;
} seen;

static nde_ctx *reg_ctx;
static nde_config *reg_cfg;

static nde_trainer *trainer_from(const char *text)
{
    nde_trainer *tr = NULL;
    ck_assert_ptr_nonnull(reg_ctx = nde_ctx_create());
    ck_assert_ptr_nonnull(reg_cfg = nde_config_create());
    ck_assert_int_eq(nde_config_load_string(reg_cfg, "test", text, reg_ctx),
                     NDE_OK);
    ck_assert_msg(nde_trainer_create(reg_ctx, reg_cfg, 0, &tr) == NDE_OK,
                  "%s", nde_ctx_message(reg_ctx));
    return tr;
}

static void trainer_free(nde_trainer *tr)
{
    nde_trainer_destroy(tr);
    nde_config_destroy(reg_cfg);
    nde_ctx_destroy(reg_ctx);
}

/* ---- on_failure ---------------------------------------------------------- */

/* Lotka-Volterra fitted at lr 10 with at most 100 steps a solve: the
 * second step takes the parameters where iteration 3's solve fails. */
#define FAILING_LV(policy)                                                  \
    "[solver]\nplugin = tsit5\nrtol = 1e-8\natol = 1e-10\n"                \
    "max_steps = 100\n"                                                     \
    "[field]\nplugin = expr\nstate = x, y\n"                                \
    "params = a=1.5, b=1.0, c=3.0, d=1.0\n"                                 \
    "dx = a*x - b*x*y\ndy = d*x*y - c*y\n"                                   \
    "[adjoint]\nplugin = discrete\n"                                        \
    "[data]\nsource = field\ny0 = 1, 1\n"                                   \
    "true_params = a=1.5, b=1.0, c=3.0, d=1.0\nnpoints = 21\nt1 = 2\n"      \
    "batch_time = 5\n"                                                      \
    "[train]\niterations = 20\nbatch_size = 2\nlr = 10\nmax_failures = 1\n" \
    "on_failure = " policy "\n"

/* skip: the failed iteration counts, its parameters are those before it,
 * the next failure past max_failures stops the run and says so. backoff:
 * a failure restores the parameters of before the last good step and
 * halves the learning rate. */
START_TEST(test_on_failure)
{
    nde_trainer *tr = trainer_from(FAILING_LV("skip"));
    double before[4], after1[4];
    nde_train_step m;
    int rc;

    ck_assert_uint_eq(nde_trainer_nparams(tr), 4);
    ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
    ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
    memcpy(before, nde_trainer_params(tr), sizeof before);
    ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
    ck_assert_int_eq(m.failed, NDE_EMAXSTEPS);
    ck_assert_int_eq(nde_trainer_iteration(tr), 3);
    ck_assert_int_eq(nde_trainer_totals(tr)->failures, 1);
    ck_assert(memcmp(before, nde_trainer_params(tr), sizeof before) == 0);
    ck_assert(nde_trainer_totals(tr)->lr_scale == 1.0);
    do
        rc = nde_trainer_step(tr, &m);
    while (rc == NDE_OK && !m.failed);
    ck_assert_int_eq(rc, NDE_EMAXSTEPS);
    ck_assert_msg(strstr(nde_ctx_message(reg_ctx),
                         "on_failure = skip: failed iteration 2 after 1 "
                         "absorbed (max_failures = 1)"),
                  "%s", nde_ctx_message(reg_ctx));
    trainer_free(tr);

    tr = trainer_from(FAILING_LV("backoff"));
    ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
    memcpy(after1, nde_trainer_params(tr), sizeof after1);
    ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
    ck_assert(memcmp(after1, nde_trainer_params(tr), sizeof after1) != 0);
    ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
    ck_assert_int_eq(m.failed, NDE_EMAXSTEPS);
    ck_assert(memcmp(after1, nde_trainer_params(tr), sizeof after1) == 0);
    ck_assert(nde_trainer_totals(tr)->lr_scale == 0.5);
    ck_assert(nde_trainer_absorbs(tr, NDE_ESTEPSIZE));
    ck_assert(!nde_trainer_absorbs(tr, NDE_EFATAL));
    trainer_free(tr);
}
END_TEST

/* ---- weight averaging ---------------------------------------------------- */

/* Lotka-Volterra fitted from the wrong rates, its data from the true ones
 * (then the data keys, [train]). */
#define LV_FIT                                                              \
    "[solver]\nplugin = tsit5\nrtol = 1e-8\natol = 1e-10\n"                \
    "[field]\nplugin = expr\nstate = x, y\n"                                \
    "params = a=1.2, b=0.8, c=2.5, d=1.2\n"                                 \
    "dx = a*x - b*x*y\ndy = d*x*y - c*y\n"                                   \
    "[adjoint]\nplugin = discrete\n"                                        \
    "[data]\nsource = field\ny0 = 1, 1\n"

#define AVERAGED_LV(from)                                                   \
    LV_FIT                                                                  \
    "true_params = a=1.5, b=1.0, c=3.0, d=1.0\nnpoints = 21\nt1 = 2\n"      \
    "batch_time = 5\n"                                                      \
    "[train]\niterations = 20\nbatch_size = 2\nlr = 0.05\n"                 \
    "average_from = " from "\n"

static void write_checkpoint_of(const nde_trainer *tr, const char *name)
{
    FILE *fp = fopen(in_dir(name), "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(nde_trainer_checkpoint_write(tr, fp), NDE_OK);
    ck_assert_int_eq(fclose(fp), 0);
}

/* The parameters a checkpoint gives a trainer of config text in mode. */
static void params_of(const char *text, const char *name, int mode,
                      double *theta, size_t P)
{
    nde_trainer *tr = trainer_from(text);
    ck_assert_msg(nde_trainer_checkpoint_load(tr, in_dir(name), mode) ==
                      NDE_OK, "%s", nde_ctx_message(reg_ctx));
    memcpy(theta, nde_trainer_params(tr), P * sizeof *theta);
    trainer_free(tr);
}

/* average_from = 3: training steps the parameters exactly as without it;
 * the model (evaluation, a checkpoint loaded for use, by a config with
 * or without averaging) is the mean of the parameters after iterations
 * 3, 4, 5; a resumed run keeps the same mean; a checkpoint whose
 * parameters are averaged does not resume under a config without it. */
START_TEST(test_average)
{
    double th[6][4], mean[4] = {0}, got[4], whole[4];
    nde_trainer *tr = trainer_from(AVERAGED_LV("0"));
    nde_eval_result plain, averaged;
    nde_train_step m;
    int k, i;

    for (k = 1; k <= 5; k++) {
        ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
        memcpy(th[k], nde_trainer_params(tr), sizeof th[k]);
    }
    trainer_free(tr);
    for (i = 0; i < 4; i++)
        mean[i] = (th[3][i] + th[4][i] + th[5][i]) / 3.0;

    tr = trainer_from(AVERAGED_LV("3"));
    for (k = 1; k <= 5; k++) {
        ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
        ck_assert(memcmp(th[k], nde_trainer_params(tr), sizeof th[k]) == 0);
        if (k == 2)
            write_checkpoint_of(tr, "avg2.ckpt");
    }
    write_checkpoint_of(tr, "avg5.ckpt");
    ck_assert_int_eq(nde_trainer_evaluate(tr, &averaged), NDE_OK);
    trainer_free(tr);

    params_of(AVERAGED_LV("0"), "avg5.ckpt", NDE_CHECKPOINT_PARAMS, got, 4);
    for (i = 0; i < 4; i++)
        ck_assert_double_eq_tol(got[i], mean[i], 1e-15 * fabs(mean[i]));
    ck_assert(memcmp(got, th[5], sizeof got) != 0); /* not the last */
    params_of(AVERAGED_LV("3"), "avg5.ckpt", NDE_CHECKPOINT_PARAMS, whole, 4);
    ck_assert(memcmp(got, whole, sizeof got) == 0);

    /* the evaluation saw the mean: a trainer given the mean sees the same */
    tr = trainer_from(AVERAGED_LV("0"));
    ck_assert_int_eq(nde_trainer_checkpoint_load(tr, in_dir("avg5.ckpt"),
                                                 NDE_CHECKPOINT_PARAMS),
                     NDE_OK);
    ck_assert_int_eq(nde_trainer_evaluate(tr, &plain), NDE_OK);
    ck_assert(plain.test_loss == averaged.test_loss);
    trainer_free(tr);

    /* resumed after iteration 2 (nothing averaged yet): the same mean */
    tr = trainer_from(AVERAGED_LV("3"));
    ck_assert_int_eq(nde_trainer_checkpoint_load(tr, in_dir("avg2.ckpt"),
                                                 NDE_CHECKPOINT_RESUME),
                     NDE_OK);
    for (k = 3; k <= 5; k++)
        ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
    write_checkpoint_of(tr, "resumed5.ckpt");
    trainer_free(tr);
    params_of(AVERAGED_LV("3"), "resumed5.ckpt", NDE_CHECKPOINT_PARAMS, got,
              4);
    ck_assert(memcmp(got, whole, sizeof got) == 0);

    tr = trainer_from(AVERAGED_LV("0"));
    ck_assert_int_ne(nde_trainer_checkpoint_load(tr, in_dir("avg5.ckpt"),
                                                 NDE_CHECKPOINT_RESUME),
                     NDE_OK);
    ck_assert_msg(strstr(nde_ctx_message(reg_ctx), "average_from"), "%s",
                  nde_ctx_message(reg_ctx));
    trainer_free(tr);
}
END_TEST

/* ---- Adadelta ------------------------------------------------------------ */

/* One window (5 of 5 points): every batch is the same, so the gradient
 * nde_trainer_loss_grad gives is the one the next step takes. */
#define ONE_WINDOW_LV(optimizer)                                            \
    LV_FIT                                                                  \
    "true_params = a=1.5, b=1.0, c=3.0, d=1.0\nnpoints = 5\nt1 = 1\n"       \
    "batch_time = 5\n"                                                      \
    "[train]\niterations = 20\nbatch_size = 1\nlr = 0.5\n"                  \
    "weight_decay = 0.01\nrho = 0.8\neps = 1e-6\noptimizer = " optimizer "\n"

/* Two Adadelta steps against Zeiler's Algorithm 1 (torch's form: lr on
 * the step, weight decay added to the gradient) computed here from the
 * gradients the trainer reports; rho with adam, beta1 with adadelta and
 * an unknown optimizer are refused by name. */
START_TEST(test_adadelta)
{
    nde_trainer *tr = trainer_from(ONE_WINDOW_LV("adadelta"));
    double th[4], g[4], u[4] = {0}, v[4] = {0}, loss;
    nde_train_step m;
    nde_stats st;
    nde_ctx *ctx;
    nde_config *cfg;

    memcpy(th, nde_trainer_params(tr), sizeof th);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(nde_trainer_probe(tr), NDE_OK);
        ck_assert_int_eq(nde_trainer_loss_grad(tr, NULL, th, &loss, g, &st),
                         NDE_OK);
        for (int i = 0; i < 4; i++) {
            const double gi = g[i] + 0.01 * th[i];
            double step;
            v[i] = 0.8 * v[i] + 0.2 * gi * gi;
            step = sqrt(u[i] + 1e-6) / sqrt(v[i] + 1e-6) * gi;
            u[i] = 0.8 * u[i] + 0.2 * step * step;
            th[i] -= 0.5 * step;
        }
        ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
        for (int i = 0; i < 4; i++)
            ck_assert_double_eq_tol(nde_trainer_params(tr)[i], th[i],
                                    1e-14 * fabs(th[i]));
    }
    trainer_free(tr);

    ck_assert_ptr_nonnull(ctx = nde_ctx_create());
    {
        static const char *const bad[][2] = {
            {ONE_WINDOW_LV("adam"), "rho: belongs to optimizer = adadelta"},
            {ONE_WINDOW_LV("adadelta") "beta1 = 0.5\n",
             "beta1: belongs to optimizer = adam"},
            {ONE_WINDOW_LV("sgd"), "'sgd': expected adam or adadelta"}};
        for (size_t j = 0; j < 3; j++) {
            nde_trainer *t = NULL;
            ck_assert_ptr_nonnull(cfg = nde_config_create());
            ck_assert_int_eq(nde_config_load_string(cfg, "test", bad[j][0],
                                                    ctx), NDE_OK);
            ck_assert_int_eq(nde_trainer_create(ctx, cfg, 0, &t),
                             NDE_ECONFIG);
            ck_assert_msg(strstr(nde_ctx_message(ctx), bad[j][1]), "%s",
                          nde_ctx_message(ctx));
            nde_config_destroy(cfg);
        }
    }
    nde_ctx_destroy(ctx);
}
END_TEST

/* ---- lifting new inputs -------------------------------------------------- */

/* nde_trainer_lift: the points task with control lifts x to [x | x] (the
 * identity lift, then the point as the controls), over the task's span
 * t in [0, 1]; zero rows or more than the batch are refused. */
START_TEST(test_lift_new_inputs)
{
    nde_trainer *tr = trainer_from(
        "[solver]\nplugin = tsit5\n"
        "[field]\nplugin = controlled\ninner = g\ncontrols = 2\n"
        "[field.g]\nplugin = mlp\nlayers = 4, 5, 4\n"
        "[adjoint]\nplugin = discrete\n"
        "[data]\nsource = annuli\ncontrol = true\nn_train = 8\n"
        "n_test = 4\n[train]\nbatch_size = 4\niterations = 1\n");
    const double x[6] = {0.1, -0.2, 1.0, 0.5, -1.25, 0.75};
    double y0[12], t0 = NAN, t1 = NAN;

    ck_assert_uint_eq(nde_trainer_input_dim(tr), 2);
    ck_assert_int_eq(nde_trainer_lift(tr, x, 3, y0, &t0, &t1), NDE_OK);
    ck_assert(t0 == 0.0 && t1 == 1.0);
    for (int r = 0; r < 3; r++)
        for (int j = 0; j < 4; j++)
            ck_assert_msg(y0[4 * r + j] == x[2 * r + j % 2],
                          "row %d state %d: %g", r, j, y0[4 * r + j]);
    ck_assert_int_eq(nde_trainer_lift(tr, x, 0, y0, &t0, &t1), NDE_EINVAL);
    ck_assert_int_eq(nde_trainer_lift(tr, x, 5, y0, &t0, &t1), NDE_EINVAL);
    trainer_free(tr);
}
END_TEST

/* ---- per-row steps ------------------------------------------------------- */

/* Series s of the per-row test: a small Lotka-Volterra cycle (easy, 0) or
 * a wide one (hard, 1); the observations are made-up numbers. */
static void write_rows_csv(const char *name, int which)
{
    static const double y0[2][2] = {{1.1, 0.9}, {4.0, 0.3}};
    char text[2000];
    size_t len = (size_t)snprintf(text, sizeof text, "id,t,x,y\n");
    for (int s = 0; s < 2; s++) {
        if (which >= 0 && s != which)
            continue;
        for (int k = 0; k <= 8; k++)
            len += (size_t)snprintf(text + len, sizeof text - len,
                                    "s%d,%g,%.17g,%.17g\n", s, 0.25 * k,
                                    k ? y0[s][0] + 0.1 * k : y0[s][0],
                                    k ? y0[s][1] - 0.05 * k : y0[s][1]);
    }
    write_all(in_dir(name), text, len);
}

/* The loss and gradient of the trainer of (csv, batch, per_row, adjoint,
 * with or without a local regularizer) at its initial parameters. */
static double rows_loss_grad(const char *csv, int batch, int per_row,
                             const char *adjoint, int reg, double *g,
                             size_t *P, long *nfe)
{
    char ini[2000];
    nde_trainer *tr;
    nde_stats st;
    double loss;

    snprintf(ini, sizeof ini,
             "[solver]\nplugin = dopri5\nrtol = 1e-7\natol = 1e-9\n"
             "per_row_steps = %s\n" LV_EXPR "[adjoint]\nplugin = %s\n"
             "[data]\nsource = csv\npath = %s\ntest_fraction = 0\n"
             "[train]\niterations = 1\nbatch_size = %d\n%s",
             per_row ? "true" : "false", adjoint, in_dir(csv), batch,
             reg ? "[regularizer.local]\nplugin = local\nweight = 0.3\n"
                 : "");
    tr = trainer_from(ini);
    *P = nde_trainer_nparams(tr);
    ck_assert_int_eq(nde_trainer_probe(tr), NDE_OK);
    ck_assert_msg(nde_trainer_loss_grad(tr, NULL, nde_trainer_params(tr),
                                        &loss, g, &st) == NDE_OK,
                  "%s", nde_ctx_message(reg_ctx));
    *nfe = st.nfe;
    trainer_free(tr);
    return loss;
}

static double rel_diff(const double *a, const double *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num / den);
}

/* Per-row steps on a batch of an easy and a hard row: the loss and the
 * gradient (data and regularizer) are the mean of the two rows solved
 * alone, and the joint steps spend more one-row evaluations. The
 * discrete adjoint is exact: to 1e-12, where the joint steps' gradient
 * is off. A continuous adjoint's backward solve is adaptive, and a row's
 * cotangent in the batch is half its cotangent alone (the loss is a mean
 * over the rows), so its steps differ: to within its tolerance. */
START_TEST(test_per_row_steps_match_rows_alone)
{
    static const struct {
        const char *name;
        double tol;
    } adjoints[] = {{"discrete", 1e-12}, {"backsolve", 1e-6},
                    {"interpolating", 1e-6}};
    double g2[8], g0[8], g1[8], mean[8], gj[8], l2, l0, l1;
    long nfe2, nfe0, nfe1, nfej;
    size_t P, i;

    write_rows_csv("rows.csv", -1);
    write_rows_csv("row0.csv", 0);
    write_rows_csv("row1.csv", 1);
    for (int reg = 0; reg < 2; reg++)
        for (size_t a = 0; a < 3; a++) {
            const char *name = adjoints[a].name;
            l2 = rows_loss_grad("rows.csv", 2, 1, name, reg, g2, &P, &nfe2);
            l0 = rows_loss_grad("row0.csv", 1, 1, name, reg, g0, &P, &nfe0);
            l1 = rows_loss_grad("row1.csv", 1, 1, name, reg, g1, &P, &nfe1);
            rows_loss_grad("rows.csv", 2, 0, name, reg, gj, &P, &nfej);
            ck_assert_uint_eq(P, 4);
            for (i = 0; i < P; i++)
                mean[i] = 0.5 * (g0[i] + g1[i]);
            ck_assert_msg(fabs(l2 - 0.5 * (l0 + l1)) <= 1e-12 * l2,
                          "%s reg %d: loss %.17g, rows alone %.17g", name,
                          reg, l2, 0.5 * (l0 + l1));
            ck_assert_msg(rel_diff(g2, mean, P) <= adjoints[a].tol,
                          "%s reg %d: gradient off the rows' by %g", name,
                          reg, rel_diff(g2, mean, P));
            if (adjoints[a].tol <= 1e-12)
                ck_assert_msg(rel_diff(gj, mean, P) > 1e-9,
                              "%s reg %d: joint steps give the rows' "
                              "gradient", name, reg);
            ck_assert_int_eq(nfe2, nfe0 + nfe1);
            ck_assert_msg(nfe2 < 2 * nfej, "per row %ld, joint 2 x %ld",
                          nfe2, nfej);
        }
}
END_TEST

START_TEST(test_per_row_steps_refused)
{
    static const char fixed[] =
        "[solver]\nplugin = rk4\ndt = 0.1\nper_row_steps = true\n" LV_EXPR
        "[data]\nsource = csv\npath = rows.csv\n[train]\niterations = 1\n";
    nde_ctx *ctx = nde_ctx_create();
    nde_config *cfg = nde_config_create();
    nde_trainer *tr = NULL;

    ck_assert_int_eq(nde_config_load_string(cfg, "fixed.ini", fixed, ctx),
                     NDE_OK);
    ck_assert_int_eq(nde_trainer_create(ctx, cfg, 0, &tr), NDE_ECONFIG);
    ck_assert_ptr_null(tr);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "per_row_steps") &&
                      strstr(nde_ctx_message(ctx), "fixed-step"),
                  "%s", nde_ctx_message(ctx));
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
}
END_TEST

/* ---- [data] true_params ------------------------------------------------- */

/* The config of a [field] fitted to data it generates from y0 = 1 with
 * [data] true_params = `truth`. */
static const char *true_params_ini(const char *field, const char *truth)
{
    static char text[1000];
    snprintf(text, sizeof text,
             "[solver]\nplugin = tsit5\nrtol = 1e-11\natol = 1e-13\n"
             "[field]\n%s\n"
             "[adjoint]\nplugin = discrete\n"
             "[data]\nsource = field\ny0 = 1\nnpoints = 21\nt1 = 1\n"
             "batch_time = 5\ntrue_params = %s\n"
             "[train]\niterations = 1\nbatch_size = 4\nseed = 1\n",
             field, truth);
    return text;
}

/* The batch loss at theta: 0 when theta is the truth. */
static double loss_at(nde_trainer *tr, const double *theta)
{
    double loss;
    nde_stats st;
    nde_trainer_probe(tr);
    ck_assert_int_eq(nde_trainer_loss_grad(tr, NULL, theta, &loss, NULL, &st),
                     NDE_OK);
    return loss;
}

/* Every name a field gives its parameters is accepted, and the value
 * reaches the true system: linear's A[0,0] and b[0] (A[0,0] was refused,
 * not a word) and the default theta[0] of twofields.so's twofield_a
 * (y' = -k y, k unnamed), whose module is on NDE_PLUGIN_PATH. */
START_TEST(test_true_params_take_field_names)
{
    nde_trainer *tr = trainer_from(true_params_ini(
        "plugin = linear\nA = -0.5\nb = 0", "A[0,0]=-1, b[0]=0.25"));
    const double truth[2] = {-1.0, 0.25}, init[2] = {-0.5, 0.0};

    ck_assert_double_lt(loss_at(tr, truth), 1e-14);
    ck_assert_double_gt(loss_at(tr, init), 1e-4);
    trainer_free(tr);

    tr = trainer_from(true_params_ini("plugin = twofield_a", "theta[0]=2"));
    ck_assert_double_lt(loss_at(tr, (const double[]){2.0}), 1e-14);
    ck_assert_double_gt(loss_at(tr, (const double[]){1.0}), 1e-4);
    trainer_free(tr);
}
END_TEST

/* A name the field does not have: the key, the name and some that it has. */
START_TEST(test_true_params_unknown_name)
{
    static const struct {
        const char *field, *truth, *needle;
    } cases[] = {
        {"plugin = linear\nA = -0.5", "A[1,0]=2",
         "[data] true_params: [field] has no parameter 'A[1,0]'; its "
         "parameters: A[0,0], b[0]"},
        {"plugin = twofield_a", "k=2",
         "[data] true_params: [field] has no parameter 'k'; its parameters: "
         "theta[0]"},
        {"plugin = mlp\nlayers = 1, 8, 1", "theta[0]=2",
         "has no parameter 'theta[0]'; its parameters: W1[0,0], W1[1,0], "
         "W1[2,0], W1[3,0], W1[4,0], W1[5,0], ... (25 in all)"},
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        nde_ctx *ctx = nde_ctx_create();
        nde_config *cfg = nde_config_create();
        nde_trainer *tr = NULL;
        ck_assert_int_eq(nde_config_load_string(cfg, "tp.ini",
                                                true_params_ini(cases[i].field,
                                                                cases[i].truth),
                                                ctx),
                         NDE_OK);
        ck_assert_int_eq(nde_trainer_create(ctx, cfg, 0, &tr), NDE_ECONFIG);
        ck_assert_ptr_null(tr);
        ck_assert_msg(strstr(nde_ctx_message(ctx), cases[i].needle),
                      "'%s' lacks '%s'", nde_ctx_message(ctx), cases[i].needle);
        nde_config_destroy(cfg);
        nde_ctx_destroy(ctx);
    }
}
END_TEST

static void add_reg_clipped(nde_trainer *tr, const nde_regularizer_type *type,
                            const char *name, double w0, double w1, int expo,
                            double clip)
{
    nde_regularizer *r;
    nde_weight_schedule w = {w0, w1, expo, clip};
    ck_assert_int_eq(nde_regularizer_create_from(reg_ctx, type, NULL,
                                                 nde_trainer_solver(tr), &r),
                     NDE_OK);
    ck_assert_msg(nde_trainer_add_regularizer(tr, name, r, &w) == NDE_OK,
                  "%s", nde_ctx_message(reg_ctx));
}

static void add_reg(nde_trainer *tr, const nde_regularizer_type *type,
                    const char *name, double w0, double w1, int expo)
{
    add_reg_clipped(tr, type, name, w0, w1, expo, 0.0);
}

static int noop_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                       nde_ctx *ctx)
{
    (void)r, (void)sec, (void)s, (void)ctx;
    return NDE_OK;
}
static void noop_destroy(nde_regularizer *r) { (void)r; }

/* (a) ||theta||^2 directly and (b) 0.5 ||y(t_c)||^2 at an extra save time
 * t_c inside the interval, handed back as the cotangent w y(t_c). */
static double probe_g[64 * 4];
static nde_cotangent probe_ct;

static int probe_before(nde_regularizer *r, nde_solve_request *req,
                        uint64_t seed)
{
    (void)r;
    if (seen.before_calls++ > 0 && seed != seen.seed)
        seen.seeds_differ = 1;
    seen.seed = seed;
    req->extra_save[req->nextra++] = req->t0 + 0.37 * (req->t1 - req->t0);
    return NDE_OK;
}

static int probe_after(nde_regularizer *r, const nde_regularizer_input *in,
                       nde_regularizer_output *out)
{
    const size_t P = r->solver->field->nparams;
    const size_t n = r->solver->batch * r->solver->field->dim;
    double sum = 0.0, sy = 0.0;
    size_t i;

    ck_assert_uint_eq(in->nextra, 1);
    ck_assert_uint_le(n, 64 * 4);
    ck_assert_ptr_nonnull(out->thetabar);
    for (i = 0; i < P; i++) {
        sum += in->theta[i] * in->theta[i];
        out->thetabar[i] += 2.0 * in->weight * in->theta[i];
    }
    for (i = 0; i < n; i++) {
        sy += 0.5 * in->extra_y[i] * in->extra_y[i];
        probe_g[i] = in->weight * in->extra_y[i];
    }
    probe_ct.t = in->t0 + 0.37 * (in->t1 - in->t0);
    probe_ct.g = probe_g;
    out->ct = &probe_ct;
    out->nct = 1;
    out->value = sum + sy;
    seen.calls++;
    return NDE_OK;
}

static const nde_regularizer_type probe_reg = {
    NDE_REGULARIZER_INFO(
        .name = "probe",
        .description = "test",
        .version = "1"),
    noop_create, noop_destroy, probe_before, probe_after, NULL};

/* A small spiral MLP on a fixed-step solver: the discrete adjoint is the
 * exact gradient of the discretised loss, so finite differences agree to
 * round-off. */
static const char fd_ini[] =
    "[solver]\nplugin = rk4\ndt = 0.05\n"
    "[field]\nplugin = mlp\nlayers = 2, 6, 2\nactivation = tanh\n"
    "input = cube\ntime = false\n"
    "[adjoint]\nplugin = discrete\n"
    "[data]\nsource = spiral\nnpoints = 100\nt1 = 5\nbatch_time = 8\n"
    "[train]\niterations = 10\nbatch_size = 3\nseed = 7\n";

/* (a) ||theta||^2 directly and (b) 0.5 / nsave sum_k ||y(t_k)||^2 over
 * the solve's save times (in->saves), handed back as cotangents at the
 * very times the loss hands its own (they add in the adjoint). */
static double saves_g[16 * 64 * 4];
static nde_cotangent saves_ct[16];

static int saves_sq_after(nde_regularizer *r, const nde_regularizer_input *in,
                          nde_regularizer_output *out)
{
    const nde_regularizer_saves *sv = in->saves;
    const size_t P = r->solver->field->nparams;
    const size_t n = r->solver->batch * r->solver->field->dim;
    const double c = 0.5 / (double)sv->nsave;
    double sum = 0.0, sy = 0.0;
    size_t i, k;

    ck_assert_uint_le(sv->nsave, 16);
    ck_assert_uint_le(n, 64 * 4);
    for (i = 0; i < P; i++) {
        sum += in->theta[i] * in->theta[i];
        out->thetabar[i] += 2.0 * in->weight * in->theta[i];
    }
    for (k = 0; k < sv->nsave; k++) {
        for (i = 0; i < n; i++) {
            const double y = sv->y[k * n + i];
            sy += c * y * y;
            saves_g[k * n + i] = in->weight * 2.0 * c * y;
        }
        saves_ct[k].t = sv->t[k];
        saves_ct[k].g = saves_g + k * n;
    }
    out->ct = saves_ct;
    out->nct = sv->nsave;
    out->value = sum + sy;
    seen.calls++;
    return NDE_OK;
}

static const nde_regularizer_type saves_sq_reg = {
    NDE_REGULARIZER_INFO(
        .name = "saves_sq",
        .description = "test",
        .version = "1"),
    noop_create, noop_destroy, NULL, saves_sq_after, NULL};

/* The trainer's gradient of data loss + regularizer `type` (probe_reg or
 * saves_sq_reg: ||theta||^2 plus a part through the trajectory) against
 * central differences of the same (same batch, same regularizer seed). */
static void reg_gradient_fd(const char *ini, uint64_t seed,
                            const nde_regularizer_type *type)
{
    nde_trainer *tr = trainer_from(ini), *plain;
    const size_t P = nde_trainer_nparams(tr), Pf = nde_trainer_field(tr)->nparams;
    double th[256], g[256], g0[256], loss, lp, lm, loss0, num = 0, den = 0,
           dir = 0, gn = 0;
    nde_stats st;
    size_t i;

    ck_assert_uint_le(P, 256);
    memset(&seen, 0, sizeof seen);
    add_reg(tr, type, "r", 0.7, 0.7, 0);
    memcpy(th, nde_trainer_params(tr), P * sizeof *th);
    nde_trainer_probe(tr);
    ck_assert_int_eq(nde_trainer_loss_grad(tr, NULL, th, &loss, g, &st),
                     NDE_OK);
    if (type->before_solve)
        ck_assert_uint_eq(
            seen.seed, nde_seed_derive(nde_seed_derive(nde_seed_derive(
                           seed, NDE_STREAM_REGULARIZER), 0), 0));
    for (i = 0; i < P; i++) {
        double h = 1e-6 * fmax(1.0, fabs(th[i])), keep = th[i], fd;
        th[i] = keep + h;
        ck_assert_int_eq(nde_trainer_loss_grad(tr, NULL, th, &lp, NULL, &st),
                         NDE_OK);
        th[i] = keep - h;
        ck_assert_int_eq(nde_trainer_loss_grad(tr, NULL, th, &lm, NULL, &st),
                         NDE_OK);
        th[i] = keep;
        fd = (lp - lm) / (2 * h);
        num += (g[i] - fd) * (g[i] - fd);
        den += fd * fd;
    }
    ck_assert_int_eq(seen.seeds_differ, 0);
    ck_assert_msg(sqrt(num / den) < 1e-6, "gradient vs FD: %g",
                  sqrt(num / den));

    /* the regularizer's part is large, and not only its direct part: the
     * cotangent through the trajectory matters */
    plain = NULL;
    ck_assert_int_eq(nde_trainer_create(reg_ctx, reg_cfg, 0, &plain), NDE_OK);
    nde_trainer_probe(plain);
    ck_assert_int_eq(
        nde_trainer_loss_grad(plain, NULL, th, &loss0, g0, &st), NDE_OK);
    ck_assert_double_gt(loss - loss0, 1e-3);
    for (i = 0; i < P; i++) {
        double d = g[i] - g0[i] - (i < Pf ? 2 * 0.7 * th[i] : 0.0);
        dir += d * d;
        gn += g[i] * g[i];
    }
    ck_assert_msg(sqrt(dir / gn) > 1e-2,
                  "the cotangent part is negligible (%g)", sqrt(dir / gn));
    nde_trainer_destroy(plain);
    trainer_free(tr);
}

START_TEST(test_reg_gradient_fd) { reg_gradient_fd(fd_ini, 7, &probe_reg); }

/* R = ||theta||^2, a direct gradient only. */
static int theta_sq_after(nde_regularizer *r, const nde_regularizer_input *in,
                          nde_regularizer_output *out)
{
    const size_t P = r->solver->field->nparams;

    out->value = 0.0;
    for (size_t i = 0; i < P; i++) {
        out->value += in->theta[i] * in->theta[i];
        out->thetabar[i] += 2.0 * in->weight * in->theta[i];
    }
    return NDE_OK;
}

static const nde_regularizer_type theta_sq_reg = {
    NDE_REGULARIZER_INFO(
        .name = "theta_sq",
        .description = "test",
        .version = "1"),
    noop_create, noop_destroy, NULL, theta_sq_after, NULL};

/* A proximal regularizer (interface version 3): value 0, no gradient;
 * its prox records what it is given and halves theta. */
static double prox_lr[4], prox_w[4], prox_seen[4][256];
static int prox_calls;

static int prox_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                       nde_ctx *ctx)
{
    (void)sec, (void)s, (void)ctx;
    r->proximal = 1;
    return NDE_OK;
}

static int prox_after(nde_regularizer *r, const nde_regularizer_input *in,
                      nde_regularizer_output *out)
{
    (void)r, (void)in;
    out->value = 0.0;
    return NDE_OK;
}

static int prox_halve(nde_regularizer *r, double *theta, double lr,
                      double weight)
{
    const size_t P = r->solver->field->nparams;
    if (prox_calls < 4) {
        prox_lr[prox_calls] = lr;
        prox_w[prox_calls] = weight;
        memcpy(prox_seen[prox_calls], theta, P * sizeof *theta);
    }
    prox_calls++;
    for (size_t i = 0; i < P; i++)
        theta[i] *= 0.5;
    return NDE_OK;
}

static const nde_regularizer_type prox_reg = {
    NDE_REGULARIZER_INFO(
        .name = "halve",
        .description = "test",
        .version = "1"),
    prox_create, noop_destroy, NULL, prox_after, prox_halve};

static const nde_regularizer_type prox_missing_reg = {
    NDE_REGULARIZER_INFO(
        .name = "noprox",
        .description = "test",
        .version = "1"),
    prox_create, noop_destroy, NULL, prox_after, NULL};

/* The trainer calls prox after each Adam step, with that step's learning
 * rate (lr_decay applied) and the iteration's weight (the schedule), on
 * the field's parameters as Adam left them. A proximal instance without a
 * prox op is refused. */
START_TEST(test_reg_prox)
{
    nde_trainer *tr = trainer_from(fd_ini);
    const size_t Pf = nde_trainer_field(tr)->nparams;
    const size_t P = nde_trainer_nparams(tr);
    const double lr = nde_trainer_settings(tr)->lr;
    const double decay = nde_trainer_settings(tr)->lr_decay;
    nde_regularizer *r;
    nde_train_step m;

    ck_assert_uint_le(P, 256);
    prox_calls = 0;
    add_reg_clipped(tr, &prox_reg, "halve", 2.0, 1.0, 1, 0);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
        ck_assert_int_eq(prox_calls, k + 1);
        ck_assert_double_eq_tol(prox_lr[k], lr * pow(decay, k), 1e-15 * lr);
        ck_assert_double_eq_tol(prox_w[k], 2.0 * pow(0.5, k / 9.0), 1e-14);
        for (size_t i = 0; i < Pf; i++)
            ck_assert_double_eq(nde_trainer_params(tr)[i],
                                0.5 * prox_seen[k][i]);
        ck_assert(prox_seen[k][0] != 0.0);
    }
    trainer_free(tr);

    tr = trainer_from(fd_ini);
    ck_assert_int_eq(nde_regularizer_create_from(reg_ctx, &prox_missing_reg,
                                                 NULL, nde_trainer_solver(tr),
                                                 &r),
                     NDE_EPLUGIN);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(reg_ctx),
                                 "sets proximal but has no prox"));
    trainer_free(tr);
}
END_TEST

/* clip caps each regularizer's gradient at clip times the data gradient's
 * norm, in its own direction, and leaves a smaller one as it is; the loss
 * keeps the full weighted value. Two regularizers are capped apart. */
START_TEST(test_reg_clip)
{
    nde_trainer *plain, *tr;
    double th[256], g0[256], g[256], d, dn, gn0, dot, loss0, loss;
    nde_stats st;
    size_t i, P, Pf;

    plain = trainer_from(fd_ini);
    P = nde_trainer_nparams(plain);
    ck_assert_uint_le(P, 256);
    memcpy(th, nde_trainer_params(plain), P * sizeof *th);
    nde_trainer_probe(plain);
    ck_assert_int_eq(nde_trainer_loss_grad(plain, NULL, th, &loss0, g0, &st),
                     NDE_OK);
    Pf = nde_trainer_field(plain)->nparams;
    trainer_free(plain);
    for (gn0 = 0, i = 0; i < P; i++)
        gn0 += g0[i] * g0[i];
    gn0 = sqrt(gn0);

    for (int big = 0; big <= 1; big++) {
        const double w = big ? 1e6 : 1e-6, clip = 0.25;
        double sq = 0.0;
        tr = trainer_from(fd_ini);
        add_reg_clipped(tr, &theta_sq_reg, "a", w, w, 0, clip);
        add_reg_clipped(tr, &theta_sq_reg, "b", w, w, 0, clip);
        nde_trainer_probe(tr);
        ck_assert_int_eq(nde_trainer_loss_grad(tr, NULL, th, &loss, g, &st),
                         NDE_OK);
        for (dn = dot = 0, i = 0; i < P; i++) {
            d = g[i] - g0[i];
            dn += d * d;
            if (i < Pf) {
                dot += d * th[i];
                sq += th[i] * th[i];
            }
        }
        dn = sqrt(dn);
        ck_assert_double_eq_tol(loss, loss0 + 2 * w * sq, 1e-9 * loss);
        /* d = sum of the two regularizers' parts, both along theta */
        ck_assert_double_eq_tol(dot, dn * sqrt(sq), 1e-9 * dn * sqrt(sq));
        if (big)
            ck_assert_double_eq_tol(dn, 2 * clip * gn0, 1e-9 * dn);
        else
            ck_assert_double_eq_tol(dn, 2 * 2 * w * sqrt(sq), 1e-9 * dn);
        trainer_free(tr);
    }
}
END_TEST
END_TEST

START_TEST(test_reg_saves_gradient_fd)
{
    reg_gradient_fd(fd_ini, 7, &saves_sq_reg);
}
END_TEST

/* The same through the classifier (encoder -> ODE -> decoder). */
START_TEST(test_reg_classify_gradient_fd)
{
    char ini[2048];

    write_idx_set("tr-img.gz", "tr-lab.gz", 40, 7u);
    write_idx_set("te-img.gz", "te-lab.gz", 10, 99u);
    snprintf(ini, sizeof ini,
             "[solver]\nplugin = rk4\ndt = 0.1\n"
             "[field]\nplugin = mlp\nlayers = 2, 4, 2\nactivation = tanh\n"
             "time = false\n[adjoint]\nplugin = discrete\n"
             "[data]\nsource = idx\nimages = %s\nlabels = %s\n"
             "test_images = %s\ntest_labels = %s\n"
             "[train]\niterations = 5\nbatch_size = 4\nseed = 3\n",
             in_dir("tr-img.gz"), in_dir("tr-lab.gz"), in_dir("te-img.gz"),
             in_dir("te-lab.gz"));
    reg_gradient_fd(ini, 3, &probe_reg);
}
END_TEST

/* STEER-like: t1 doubled; two extra save times asked out of order; it
 * records t0, t1, y0 (fwd->y[0], NDE_NEEDS_STEPS) and the extra states. */
static int stretch_create(nde_regularizer *r, nde_section *sec,
                          nde_solver *s, nde_ctx *ctx)
{
    (void)sec, (void)s, (void)ctx;
    r->needs = NDE_NEEDS_STEPS;
    return NDE_OK;
}

static int stretch_before(nde_regularizer *r, nde_solve_request *req,
                          uint64_t seed)
{
    (void)r, (void)seed;
    seen.before_calls++;
    req->t1 = req->t0 + 2.0 * (req->t1 - req->t0);
    req->extra_save[req->nextra++] = req->t0 + 0.3 * (req->t1 - req->t0);
    req->extra_save[req->nextra++] = req->t0 + 0.05 * (req->t1 - req->t0);
    return NDE_OK;
}

static int stretch_after(nde_regularizer *r, const nde_regularizer_input *in,
                         nde_regularizer_output *out)
{
    const size_t n = r->solver->batch * r->solver->field->dim;
    (void)out;
    ck_assert_uint_le(n, 64);
    seen.calls++;
    seen.t0 = in->t0;
    seen.t1 = in->t1;
    seen.nextra = in->nextra;
    seen.n = n;
    ck_assert_ptr_nonnull(in->fwd->y);
    memcpy(seen.y0, in->fwd->y, n * sizeof *seen.y0);
    memcpy(seen.extra_y, in->extra_y, in->nextra * n * sizeof *seen.extra_y);
    return NDE_OK;
}

static const nde_regularizer_type stretch_reg = {
    NDE_REGULARIZER_INFO(
        .name = "stretch",
        .description = "test",
        .version = "1"),
    stretch_create, noop_destroy, stretch_before, stretch_after, NULL};

/* y' = -y observed on [0, 2] at 41 points; every window of 5 points in
 * one batch (gsl_ran_choose of all of them: in index order). */
/* An Adam step that is not finite changes nothing: the parameters
 * before the first bad one (zero here, so weight decay cannot overflow
 * them) keep their values too. */
START_TEST(test_adam_failed_step_changes_nothing)
{
    char text[1024];
    snprintf(text, sizeof text, "%sweight_decay = 1e300\n", fd_ini);
    nde_trainer *tr = trainer_from(text);
    const size_t P = nde_trainer_nparams(tr);
    double *theta = nde_trainer_params(tr), *before = malloc(P * sizeof *before);
    nde_train_step m;

    ck_assert_ptr_nonnull(before);
    for (size_t i = 0; i < P / 2; i++)
        theta[i] = 0.0;
    memcpy(before, theta, P * sizeof *theta);
    ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_ENONFINITE);
    ck_assert_msg(strstr(nde_ctx_message(reg_ctx), "Adam update of parameter"),
                  "%s", nde_ctx_message(reg_ctx));
    ck_assert(memcmp(before, theta, P * sizeof *theta) == 0);
    ck_assert_int_eq(nde_trainer_iteration(tr), 0);
    free(before);
    trainer_free(tr);
}
END_TEST

static const char decay_ini[] =
    "[solver]\nplugin = tsit5\nrtol = 1e-11\natol = 1e-13\n"
    "[field]\nplugin = expr\nstate = y\ndy = -y\n"
    "[adjoint]\nplugin = discrete\n"
    "[data]\nsource = field\ny0 = 1\nnpoints = 41\nt1 = 2\nbatch_time = 5\n"
    "[train]\niterations = 5\nbatch_size = 37\nseed = 1\n";

START_TEST(test_reg_stretch_and_extra_saves)
{
    nde_trainer *tr = trainer_from(decay_ini);
    const double dt = 2.0 / 40, t1 = 4 * dt;
    const double te[2] = {0.3 * 2 * t1, 0.05 * 2 * t1};
    double loss, want = 0.0, th[1] = {0};
    nde_stats st;
    size_t b, k, e;

    memset(&seen, 0, sizeof seen);
    add_reg(tr, &stretch_reg, "stretch", 1.0, 1.0, 0);
    nde_trainer_probe(tr);
    ck_assert_int_eq(nde_trainer_loss_grad(tr, NULL, th, &loss, NULL, &st),
                     NDE_OK);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_double_eq(seen.t0, 0.0);
    ck_assert_double_eq_tol(seen.t1, 2 * t1, 1e-15);
    ck_assert_uint_eq(seen.nextra, 2);
    ck_assert_uint_eq(seen.n, 37);
    for (b = 0; b < 37; b++) {
        const double y0 = seen.y0[b];
        ck_assert_double_eq_tol(y0, exp(-(double)b * dt), 1e-8);
        /* the observation at t_k against the solution at 2 t_k */
        for (k = 0; k < 5; k++) {
            double d = y0 * (exp(-2.0 * k * dt) - exp(-(double)k * dt));
            want += d * d;
        }
        /* extra states in the order asked */
        for (e = 0; e < 2; e++)
            ck_assert_msg(fabs(seen.extra_y[e * 37 + b] -
                               y0 * exp(-te[e])) < 1e-9,
                          "row %zu extra %zu: %.12g, want %.12g", b, e,
                          seen.extra_y[e * 37 + b], y0 * exp(-te[e]));
    }
    want /= 37.0 * 5.0;
    ck_assert_msg(fabs(loss - want) < 1e-9 * want, "loss %.12g, want %.12g",
                  loss, want);
    ck_assert_double_gt(want, 1e-3);
    trainer_free(tr);
}
END_TEST

/* Written against regularizer interface 2: keeps what in->saves holds,
 * and the initial state and solve options to solve again. */
static struct {
    size_t nsave, n;
    double t0, t1, t[16], y[16 * 64], y0[64];
    nde_solve_opts o;
} saw;

static int saves_after(nde_regularizer *r, const nde_regularizer_input *in,
                       nde_regularizer_output *out)
{
    const nde_regularizer_saves *sv = in->saves;
    const size_t n = r->solver->batch * r->solver->field->dim;
    (void)out;
    ck_assert_uint_le(sv->nsave, 16);
    ck_assert_uint_le(n, 64);
    saw.nsave = sv->nsave;
    saw.n = n;
    saw.t0 = in->t0;
    saw.t1 = in->t1;
    memcpy(saw.t, sv->t, sv->nsave * sizeof *saw.t);
    memcpy(saw.y, sv->y, sv->nsave * n * sizeof *saw.y);
    memcpy(saw.y0, in->fwd->y, n * sizeof *saw.y0);
    saw.o = *in->opts;
    saw.o.record = NULL;
    return NDE_OK;
}

/* stretch_reg's before_solve (t1 doubled, two extra save times) */
static const nde_regularizer_type saves_reg = {
    NDE_REGULARIZER_INFO(
        .name = "saves",
        .description = "test",
        .version = "1"),
    stretch_create, noop_destroy, stretch_before, saves_after, NULL};

/* The regularizer gets the batch's save times, moved with t1, without the
 * extra ones, and the states there bit for bit as a solve of its own from
 * the same initial state returns them. */
START_TEST(test_reg_saves_bit_for_bit)
{
    nde_trainer *tr = trainer_from(decay_ini);
    const double dt = 2.0 / 40;
    double loss, th[1] = {0}, y[16 * 64];
    nde_stats st;
    size_t k;

    memset(&saw, 0, sizeof saw);
    add_reg(tr, &saves_reg, "saves", 1.0, 1.0, 0);
    nde_trainer_probe(tr);
    ck_assert_int_eq(nde_trainer_loss_grad(tr, NULL, th, &loss, NULL, &st),
                     NDE_OK);
    ck_assert_uint_eq(saw.nsave, 5);
    ck_assert_uint_eq(saw.n, 37);
    for (k = 0; k < 5; k++)
        ck_assert_double_eq_tol(saw.t[k], 2.0 * (double)k * dt, 1e-15);
    ck_assert_double_eq(saw.t[4], saw.t1);
    ck_assert_int_eq(nde_solve(nde_trainer_solver(tr), &saw.o, th, saw.t0,
                               saw.y0, saw.t1, saw.nsave, saw.t, y, &st),
                     NDE_OK);
    ck_assert_int_eq(memcmp(y, saw.y, saw.nsave * saw.n * sizeof *y), 0);
    trainer_free(tr);
}
END_TEST

/* Evaluation never runs regularizers: the same prediction NFE and loss. */
START_TEST(test_reg_not_in_evaluation)
{
    nde_trainer *tr = trainer_from(decay_ini), *plain = NULL;
    nde_eval_result a, b;
    nde_train_step m;
    long calls;

    memset(&seen, 0, sizeof seen);
    add_reg(tr, &stretch_reg, "stretch", 1.0, 1.0, 0);
    ck_assert_int_eq(nde_trainer_create(reg_ctx, reg_cfg, 0, &plain), NDE_OK);
    ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
    calls = seen.calls;
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(nde_trainer_evaluate(tr, &a), NDE_OK);
    ck_assert_int_eq(nde_trainer_evaluate(plain, &b), NDE_OK);
    ck_assert_int_eq(seen.calls, calls);
    ck_assert_int_eq(seen.before_calls, calls);
    ck_assert_int_gt(a.nfe, 0);
    ck_assert_int_eq(a.nfe, b.nfe);
    ck_assert_double_eq(a.test_loss, b.test_loss);
    nde_trainer_destroy(plain);
    trainer_free(tr);
}
END_TEST

/* Records each iteration's weight; value 1 so reg = weight. */
static int weight_after(nde_regularizer *r, const nde_regularizer_input *in,
                        nde_regularizer_output *out)
{
    (void)r;
    if (seen.calls < 16)
        seen.weight[seen.calls] = in->weight;
    seen.calls++;
    out->value = 1.0;
    return NDE_OK;
}

static const nde_regularizer_type weight_reg = {
    NDE_REGULARIZER_INFO(
        .name = "weights",
        .description = "test",
        .version = "1"),
    noop_create, noop_destroy, NULL, weight_after, NULL};

START_TEST(test_reg_weight_schedule)
{
    nde_trainer *tr = trainer_from(decay_ini);
    nde_train_step m;
    double v;
    int i;

    memset(&seen, 0, sizeof seen);
    add_reg(tr, &weight_reg, "w", 100.0, 10.0, 1);
    for (i = 0; i < 5; i++) {
        const double want = 100.0 * pow(0.1, i / 4.0);
        ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
        ck_assert_double_eq_tol(seen.weight[i], want, 1e-12 * want);
        ck_assert_double_eq_tol(m.reg, want, 1e-12 * want);
    }
    ck_assert_double_eq_tol(seen.weight[4], 10.0, 1e-12);
    ck_assert_str_eq(nde_trainer_regularizer(tr, 0, &v), "w");
    ck_assert_double_eq(v, 1.0);
    trainer_free(tr);
}
END_TEST

/* The record: what the adjoint declares alone; with a regularizer that
 * needs error estimates and one that needs steps, the union, and every
 * state (max_states 0). */
static int needs_create(nde_regularizer *r, nde_section *sec, nde_solver *s,
                        nde_ctx *ctx)
{
    (void)sec, (void)s, (void)ctx;
    r->needs = NDE_NEEDS_ERROR_EST;
    return NDE_OK;
}

static const nde_regularizer_type needs_reg = {
    NDE_REGULARIZER_INFO(
        .name = "needs",
        .description = "test",
        .version = "1"),
    needs_create, noop_destroy, NULL, weight_after, NULL};

START_TEST(test_reg_record_flags)
{
    nde_trainer *tr = trainer_from(
        "[solver]\nplugin = tsit5\n"
        "[field]\nplugin = expr\nstate = y\ndy = -y\n"
        "[adjoint]\nplugin = backsolve\n"
        "[data]\nsource = field\ny0 = 1\nnpoints = 41\nt1 = 2\n"
        "batch_time = 5\n"
        "[train]\niterations = 5\nbatch_size = 3\nseed = 1\n");
    const unsigned own = nde_trainer_adjoint(tr)->record;
    nde_train_step m;

    memset(&seen, 0, sizeof seen);
    ck_assert_uint_eq(nde_trainer_trajectory(tr)->record, own);
    add_reg(tr, &needs_reg, "a", 1.0, 1.0, 0);
    ck_assert_uint_eq(nde_trainer_trajectory(tr)->record,
                      own | NDE_NEEDS_ERROR_EST);
    add_reg(tr, &stretch_reg, "b", 1.0, 1.0, 0);
    ck_assert_uint_eq(nde_trainer_trajectory(tr)->record,
                      own | NDE_NEEDS_ERROR_EST | NDE_NEEDS_STEPS);
    ck_assert_uint_eq(nde_trainer_trajectory(tr)->max_states, 0);
    ck_assert_int_eq(nde_trainer_step(tr, &m), NDE_OK);
    ck_assert_ptr_nonnull(nde_trainer_trajectory(tr)->eest);
    ck_assert_uint_eq(nde_trainer_trajectory(tr)->nstates,
                      nde_trainer_trajectory(tr)->nsteps);
    trainer_free(tr);
}
END_TEST

static Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_loss_decreases_discrete);
    tcase_add_test(tc, test_loss_decreases_interpolating);
    tcase_add_test(tc, test_loss_decreases_backsolve);
    tcase_add_test(tc, test_same_seed_same_numbers);
    tcase_add_test(tc, test_resume_bit_for_bit);
    tcase_add_test(tc, test_checkpoint_truncated);
    tcase_add_test(tc, test_checkpoint_corrupted);
    tcase_add_test(tc, test_checkpoint_mismatched);
    tcase_add_test(tc, test_divergence_keeps_last_checkpoint);
    tcase_add_test(tc, test_nonfinite_loss);
    tcase_add_test(tc, test_step_limit_names_iteration);
    tcase_add_test(tc, test_bad_keys);
    tcase_add_test(tc, test_task_plugins_listed);
    tcase_add_test(tc, test_task_plugin_augmented);
    tcase_add_test(tc, test_predict);
    tcase_add_test(tc, test_gradcheck);
    tcase_add_test(tc, test_lotka_volterra_recovery);
    tcase_add_test(tc, test_solve_ignores_training_sections);
    tcase_add_test(tc, test_csv_recovers_parameters);
    tcase_add_test(tc, test_csv_bad_input);
    tcase_add_test(tc, test_classify_gradcheck);
    tcase_add_test(tc, test_classify_learns);
    tcase_add_test(tc, test_classify_resume_bit_for_bit);
    tcase_add_test(tc, test_classify_bad_files);
    tcase_add_test(tc, test_classify_sde_gradcheck);
    tcase_add_loop_test(tc, test_classify_sde_learns, 0, 2);
    tcase_add_test(tc, test_brownian_key);
    tcase_add_test(tc, test_classify_sde_example);
    tcase_add_test(tc, test_reg_capability_refused);
    tcase_add_test(tc, test_per_row_steps_match_rows_alone);
    tcase_add_test(tc, test_per_row_steps_refused);
    tcase_add_test(tc, test_reg_spiral_local);
    tcase_add_test(tc, test_reg_spiral_local_biased);
    tcase_add_test(tc, test_reg_spiral_global);
    tcase_add_test(tc, test_reg_spiral_steer);
    tcase_add_test(tc, test_reg_bad_keys);
    tcase_add_test(tc, test_reg_zero_weight_same_numbers);
    tcase_add_test(tc, test_reg_schedule_in_metrics);
    tcase_add_test(tc, test_reg_resume_bit_for_bit);
    tcase_add_test(tc, test_reg_gradient_fd);
    tcase_add_test(tc, test_reg_clip);
    tcase_add_test(tc, test_reg_prox);
    tcase_add_test(tc, test_reg_classify_gradient_fd);
    tcase_add_test(tc, test_reg_stretch_and_extra_saves);
    tcase_add_test(tc, test_reg_saves_bit_for_bit);
    tcase_add_test(tc, test_reg_saves_gradient_fd);
    tcase_add_test(tc, test_reg_not_in_evaluation);
    tcase_add_test(tc, test_reg_weight_schedule);
    tcase_add_test(tc, test_reg_record_flags);
    tcase_add_test(tc, test_true_params_take_field_names);
    tcase_add_test(tc, test_true_params_unknown_name);
    tcase_add_test(tc, test_adam_failed_step_changes_nothing);
    tcase_add_test(tc, test_lift_new_inputs);
    tcase_add_test(tc, test_on_failure);
    tcase_add_test(tc, test_average);
    tcase_add_test(tc, test_adadelta);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(train_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
