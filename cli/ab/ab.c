/*
 * ab.c - `nde ab`: A/B comparisons of config variations. Every arm (the base
 * config plus its overrides) is composed and validated before anything runs;
 * then every arm x seed is trained by a child `nde train` (this same binary),
 * -j at a time, into DIR/runs/ARM/seedN (summary.json, metrics.jsonl,
 * stderr.txt: the layout the plots read, cli/ab/ab_plot.h);
 * finished runs are kept across invocations. The report (a table on stdout,
 * DIR/ab.json, the plots) compares each arm with the baseline (abstats.h).
 *
 * Run management: DIR/.lock keeps a second nde ab out of DIR; every run is
 * a process group of its own that dies with nde ab, trains into seedN.tmp
 * and is renamed to seedN when it has ended, so a seedN with a summary is
 * a whole run and anything else is redone from scratch.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ab.h"
#include "ab_plot.h"
#include "abstats.h"
#include "cli.h"
#include "../comm.h"
#include "sweep.h"
#include "nde/train.h"

const char cli_ab_help[] =
    "Usage: nde ab CONFIG [-o DIR] [-j N] [--arm NAME:KEY=VALUE,...]...\n"
    "              [--seeds 1,2,3] [--sweep [ARM:]KEY=LO:HI:N] [--fresh]\n"
    "\n"
    "A/B test config variations. CONFIG holds\n"
    "  [ab]        base = the config every arm starts from (relative to\n"
    "              CONFIG's directory), seeds = 1, 2, 3, 4, 5,\n"
    "              baseline = an arm name, metrics = summary keys to report\n"
    "              (default test_loss, predict_nfe, predict_time_s,\n"
    "              train_time_s, train_nfe_forward; also peak_rss_mb\n"
    "              (the training process's peak memory), reg_NAME.mean,\n"
    "              reg_NAME.weighted_mean, reg_NAME.ratio_mean: a\n"
    "              regularizer's R, weight * R and weight * R / data loss\n"
    "              averaged over the run), sweep_cost = the summary key\n"
    "              --sweep cuts (default predict_nfe), sweep_quality = the\n"
    "              one that must not get worse (default auto: test_accuracy\n"
    "              when the runs have it, else test_loss; only\n"
    "              test_accuracy is better higher)\n"
    "  [arm.NAME]  overrides SECTION.KEY = VALUE of the base, in order (none:\n"
    "              the base as it is), e.g. regularizer.local.plugin = local;\n"
    "              SECTION = with nothing after '=' empties a section of the\n"
    "              base (SECTION.NAME. = a sub-section) and\n"
    "              unset = SECTION.KEY, ... removes keys, e.g. to switch the\n"
    "              field plugin: field = then field.plugin = linear\n"
    "Every arm is composed and validated with the first seed before any run\n"
    "starts. Then every arm x seed runs as `nde train BASE -s OVERRIDE...\n"
    "-s train.seed=N` (an unset as -u SECTION.KEY; no checkpoint but for\n"
    "a 2-D density flow's first seed: model.ckpt, drawn as\n"
    "DIR/density_ARM.png and .svg) into\n"
    "DIR/runs/ARM/seedN.tmp/ (summary.json, metrics.jsonl, stderr.txt,\n"
    "arm.ini: the arm's composed config in canonical form), renamed to\n"
    "seedN/ when it ends. A run whose summary.json exists and whose\n"
    "arm.ini is the arm's config as it is now is not run again: an\n"
    "interrupted `nde ab` continues where it stopped; a run of another\n"
    "config (the base or the arm changed since; not a file the config\n"
    "names, nor another nde build) or without a summary is removed and\n"
    "redone. --fresh redoes every run (after rebuilding nde). One `nde ab`\n"
    "at a time per DIR (DIR/.lock): a second one is refused, naming the\n"
    "first one's pid. The runs end with `nde ab`: SIGINT, SIGTERM or\n"
    "SIGHUP stops them and removes their partial files; if `nde ab` is\n"
    "killed, they are killed too.\n"
    "\n"
    "Report, per arm and metric over its successful runs: mean +- sd, the\n"
    "ratio of means to the baseline with a 95% Fieller interval and the\n"
    "two-sided Welch t-test p-value (Welch-Satterthwaite degrees of\n"
    "freedom; the baseline's own row has ratio 1, interval [1, 1] and no\n"
    "p-value). Written as a table on stdout, DIR/ab.json (every run's\n"
    "summary, the effective config of each arm) and the plots in DIR.\n"
    "\n"
    "Picking a weight: --sweep KEY=LO:HI:N (e.g.\n"
    "regularizer.local.weight=1e-3:1e3:7) runs the baseline and, instead of\n"
    "the other arms, one arm per value: N values from LO to HI, evenly\n"
    "spaced in log, LO and HI exact (LO > 0; N = 1 needs HI = LO). Each is\n"
    "the overrides of ARM plus KEY=value, named ARM@value; without ARM:,\n"
    "ARM is the arm that sets KEY, else the one that sets keys of KEY's\n"
    "section (e.g. regularizer.local.plugin), else the baseline (several\n"
    "such arms: name one). Where ARM's config has KEY, it must be a\n"
    "number. The report adds per value the sweep_cost and sweep_quality\n"
    "ratios to the baseline, the quality's p-value, for a\n"
    "regularizer.NAME.weight its reg_NAME.ratio_mean, and a verdict; it\n"
    "recommends the value with the lowest mean cost below the baseline's\n"
    "whose quality is not significantly worse (p >= 0.05, or better), or\n"
    "says that none qualifies (ab.json \"sweep\"; DIR/frontier.png and\n"
    ".svg: mean cost against mean quality per value, min-max over seeds).\n"
    "With 2-3 seeds a much worse quality can be not significant: read the\n"
    "ratio and its interval, add seeds. Runs are kept by arm name: sweep\n"
    "another key of the same arm into another DIR.\n"
    "\n"
    "Options:\n"
    "  -o, --output DIR      run directory (default: CONFIG without .ini)\n"
    "  -j, --jobs N          runs at a time (default: the number of cores;\n"
    "                        under `mpirun -n K nde ab`, per rank, default\n"
    "                        1: the ranks share the runs, rank 0 locks DIR\n"
    "                        and reports; DIR must be on a file system\n"
    "                        every rank sees)\n"
    "      --arm NAME:KEY=VALUE,...  one more arm, items as the keys of\n"
    "                        [arm.NAME] (values without commas: one\n"
    "                        unset=SECTION.KEY per item)\n"
    "      --seeds LIST      seeds instead of [ab] seeds, e.g. 1,2,3\n"
    "      --sweep [ARM:]KEY=LO:HI:N  sweep KEY over N log-spaced values\n"
    "                        (see above)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 every run succeeded, 1 a run or an output failed (the\n"
    "report is still written, the failed runs with their message), 2 bad\n"
    "usage, a bad config or DIR in use by another `nde ab` (nothing runs),\n"
    "128 + N stopped by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP).\n";

static const nde_key ab_keys[] = {
    {"base", NDE_KEY_TEXT, NULL, "the config every arm starts from"},
    {"seeds", NDE_KEY_INTS, "1, 2, 3, 4, 5", "train.seed of the runs"},
    {"baseline", NDE_KEY_WORD, NULL, "the arm the others are compared with"},
    {"metrics", NDE_KEY_WORDS,
     "test_loss, predict_nfe, predict_time_s, train_time_s, "
     "train_nfe_forward",
     "summary keys reported"},
    {"sweep_cost", NDE_KEY_WORD, "predict_nfe",
     "--sweep: the summary number to cut (lower is better)"},
    {"sweep_quality", NDE_KEY_WORD, "auto",
     "--sweep: the summary number that must not get significantly worse "
     "(auto: test_accuracy when the runs have it, else test_loss)"},
    {NULL, 0, NULL, NULL}};

/* A sweep's value qualifies unless its quality is worse with p below. */
#define SWEEP_ALPHA 0.05

/* Arm sections: every key is an override, checked when composed. */
static const nde_key arm_keys[] = {
    {"*", NDE_KEY_TEXT, "", "SECTION.KEY override of the base"},
    {NULL, 0, NULL, NULL}};

/* The keys of an `nde train --summary-json` object that are numbers. */
static const char *const summary_numbers[] = {
    "iterations",   "train_time_s",  "train_nfe_forward",
    "train_nfe_backward", "final_loss", "test_loss",
    "test_accuracy", "predict_nfe",  "predict_time_s", "peak_rss_mb", NULL};

/* RUN_ELSEWHERE: another MPI rank's to run (share_runs) */
enum run_state { RUN_PENDING, RUN_RUNNING, RUN_OK, RUN_FAILED,
                 RUN_ELSEWHERE };

typedef struct ab_kv {
    char *key, *raw; /* raw: the value's JSON text */
} ab_kv;

typedef struct ab_run {
    long seed;
    enum run_state state;
    pid_t pid;     /* also its process group */
    char *dir;
    char *tmp;     /* dir while the run is under way: DIR/.../seedN.tmp */
    int stale;     /* finished with another config of its arm (or
                      --fresh): dir is removed when it runs again */
    ab_kv *kv;
    size_t nkv;
    char *message;
} ab_run;

/* One change of the base: -s TEXT (SECTION.KEY=VALUE, or SECTION= to
 * empty it) or, when unset, -u TEXT (SECTION.KEY). */
typedef struct ab_override {
    int unset;
    char *text;
} ab_override;

typedef struct ab_arm {
    char *name;
    char *origin;  /* where the arm was defined */
    ab_override *overrides;  /* in the order given */
    size_t noverrides;
    char *config_text;
    char *canonical;  /* the same in canonical form: each run's arm.ini */
    ab_run *runs;  /* one per seed */
    int density;   /* a 2-D flow with the exact trace: the first seed's run
                      keeps model.ckpt, drawn as DIR/density_ARM */
} ab_arm;

typedef struct ab_plan {
    char *base;    /* the base config's path */
    char *dir;
    long *seeds;
    size_t nseeds;
    char **metrics;
    size_t nmetrics;
    char *baseline;
    ab_arm *arms;
    size_t narms;
    long jobs;
    int lock_fd;   /* DIR/.lock, held while the runs go on; -1 before */
    /* --sweep: key NULL when none; arms[0] is then the baseline and
     * arms[1 + i] the arm of value i */
    ab_sweep sweep;
    const char *sweep_text;  /* as given */
    char *sweep_arm;         /* the arm the values went on */
    char *cost, *quality;    /* [ab] sweep_cost, sweep_quality */
} ab_plan;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

/* SIGCHLD needs a handler to end sigsuspend(); waitpid does the work. */
static void on_child(int sig)
{
    (void)sig;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        cli_error("out of memory");
        exit(CLI_EXIT_FAILURE);
    }
    return d;
}

static void *xrealloc(void *p, size_t n)
{
    if (!(p = realloc(p, n ? n : 1))) {
        cli_error("out of memory");
        exit(CLI_EXIT_FAILURE);
    }
    return p;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    s = xrealloc(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* A number of `nde train --summary-json`: one of summary_numbers or a
 * regularizer's mean (reg_NAME.mean, .weighted_mean, .ratio_mean). */
static int is_summary_number(const char *name)
{
    static const char *const reg_means[] = {".mean", ".weighted_mean",
                                            ".ratio_mean", NULL};
    const char *dot = strchr(name, '.'), *c;
    size_t k;

    for (k = 0; summary_numbers[k]; k++)
        if (strcmp(name, summary_numbers[k]) == 0)
            return 1;
    if (strncmp(name, "reg_", 4) != 0 || !dot || dot == name + 4)
        return 0;
    for (c = name + 4; c < dot; c++)
        if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) ||
              *c == '_'))
            return 0;
    for (k = 0; reg_means[k]; k++)
        if (strcmp(dot, reg_means[k]) == 0)
            return 1;
    return 0;
}

/* name of [ab] key is a summary number, else a message naming it; 0 or
 * -1. */
static int check_summary_number(nde_section *sec, const char *key,
                                 const char *name, nde_ctx *ctx)
{
    const char *hint;

    if (is_summary_number(name))
        return 0;
    hint = nde_suggest(name, summary_numbers);
    nde_section_error(sec, key, ctx,
                      "'%s' is not a summary number (e.g. test_loss, "
                      "predict_nfe, reg_NAME.ratio_mean)%s%s%s",
                      name, hint ? "; did you mean '" : "", hint ? hint : "",
                      hint ? "'?" : "");
    cli_fail(ctx, NDE_ECONFIG);
    return -1;
}

static int name_valid(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) ||
              *s == '_'))
            return 0;
    return 1;
}

static ab_arm *find_arm(const ab_plan *p, const char *name)
{
    for (size_t i = 0; i < p->narms; i++)
        if (strcmp(p->arms[i].name, name) == 0)
            return &p->arms[i];
    return NULL;
}

static ab_arm *add_arm(ab_plan *p, const char *name, const char *origin)
{
    ab_arm *a;
    if (find_arm(p, name)) {
        cli_error("%s: arm '%s' is defined twice", origin, name);
        return NULL;
    }
    p->arms = xrealloc(p->arms, (p->narms + 1) * sizeof *p->arms);
    a = &p->arms[p->narms++];
    memset(a, 0, sizeof *a);
    a->name = xstrdup(name);
    a->origin = xstrdup(origin);
    return a;
}

static void add_override(ab_arm *a, int unset, char *text)
{
    a->overrides = xrealloc(a->overrides,
                            (a->noverrides + 1) * sizeof *a->overrides);
    a->overrides[a->noverrides].unset = unset;
    a->overrides[a->noverrides++].text = text;
}

/* KEY = VALUE of an arm into a: an override SECTION.KEY = VALUE, or
 * SECTION = with nothing after '=' (the section is emptied), or for the
 * key `unset`, keys to remove: SECTION.KEY, ... NULL, or why it is none
 * of them (the names are checked when the arm is composed). */
static const char *add_arm_item(ab_arm *a, const char *key,
                                const char *value)
{
    if (strcmp(key, "unset") == 0) {
        for (const char *s = value;; s++) {
            size_t len = strcspn(s, ","), lead = 0, n = len;
            while (lead < n && isspace((unsigned char)s[lead]))
                lead++;
            while (n > lead && isspace((unsigned char)s[n - 1]))
                n--;
            if (n <= lead)
                return "unset needs SECTION.KEY, ... (the keys to remove)";
            add_override(a, 1, xprintf("%.*s", (int)(n - lead), s + lead));
            if (!*(s += len))
                return NULL;
        }
    }
    if (!strchr(key, '.') && *value)
        return "an arm key is SECTION.KEY (e.g. solver.rtol), SECTION with "
               "nothing after '=' (empties it) or unset";
    add_override(a, 0, xprintf("%s=%s", key, value));
    return NULL;
}

/* "1,2,3" into seeds; 0 or -1 (printed). */
static int parse_seeds(const char *text, long **seeds, size_t *n)
{
    const char *s = text;
    char *end;
    *n = 0;
    while (*s) {
        long v;
        errno = 0;
        v = strtol(s, &end, 10);
        if (!isdigit((unsigned char)*s) || (*end && *end != ',')) {
            cli_error("ab: --seeds needs non-negative integers separated by "
                      "commas, not '%s'", text);
            return -1;
        }
        if (errno == ERANGE) { /* strtol gave LONG_MAX: no such seed */
            cli_error("ab: --seeds: %.*s is out of range (at most %ld)",
                      (int)(end - s), s, LONG_MAX);
            return -1;
        }
        *seeds = xrealloc(*seeds, (*n + 1) * sizeof **seeds);
        (*seeds)[(*n)++] = v;
        s = *end ? end + 1 : end;
    }
    return 0;
}

/* "NAME:key=value,key=value" (or "NAME" / "NAME:") into a new arm. */
static int parse_arm_option(ab_plan *p, const char *text)
{
    const char *colon = strchr(text, ':');
    char *name = colon ? strndup(text, (size_t)(colon - text)) : xstrdup(text);
    char *origin = xprintf("command line (--arm %s)", text);
    ab_arm *a = NULL;
    int rc = -1;

    if (!name_valid(name))
        cli_error("%s: the arm name must match [a-z0-9_]+", origin);
    else if ((a = add_arm(p, name, origin))) {
        const char *s = colon ? colon + 1 : "";
        rc = 0;
        while (*s) {
            const char *comma = strchr(s, ',');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            char *item = strndup(s, len);
            char *eq = strchr(item, '=');
            const char *why = "it is not SECTION.KEY=VALUE";
            if (eq) {
                *eq = '\0';
                why = add_arm_item(a, item, eq + 1);
                *eq = '=';
            }
            if (why) {
                cli_error("%s: '%s': %s", origin, item, why);
                free(item);
                rc = -1;
                break;
            }
            free(item);
            s += len + (comma ? 1 : 0);
        }
    }
    free(name);
    free(origin);
    return rc;
}

/* The directory part of path ("." when none). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return xstrdup(".");
    return strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

/* Read [ab] and the arm sections of the A/B config; an exit code. */
static int read_ab_config(ab_plan *p, const char *path, int seeds_given,
                          nde_ctx *ctx)
{
    const nde_key *const ab_tables[] = {ab_keys, NULL};
    const nde_key *const arm_tables[] = {arm_keys, NULL};
    nde_config *cfg = nde_config_create();
    nde_section *sec;
    const char *base, *baseline, *cost, *quality;
    char *dir;
    size_t i, k;
    int rc, code = CLI_EXIT_USAGE;

    if (!cfg) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    if ((rc = nde_config_load_file(cfg, path, ctx)) != NDE_OK ||
        (rc = nde_config_require(cfg, "ab", &sec, ctx)) != NDE_OK ||
        (rc = nde_section_check(sec, ab_tables, ctx)) != NDE_OK ||
        (rc = nde_get_string(sec, "base", &base, ctx)) != NDE_OK ||
        (rc = nde_get_string(sec, "baseline", &baseline, ctx)) != NDE_OK ||
        (rc = nde_get_words(sec, "metrics", &p->metrics, &p->nmetrics,
                            ctx)) != NDE_OK ||
        (rc = nde_get_string(sec, "sweep_cost", &cost, ctx)) != NDE_OK ||
        (rc = nde_get_string(sec, "sweep_quality", &quality, ctx)) !=
            NDE_OK ||
        (!seeds_given && (rc = nde_get_longs(sec, "seeds", &p->seeds,
                                             &p->nseeds, ctx)) != NDE_OK)) {
        cli_fail(ctx, rc);
        goto done;
    }
    p->baseline = xstrdup(baseline);
    p->cost = xstrdup(cost);
    p->quality = xstrdup(quality);
    for (i = 0; i < p->nmetrics; i++)
        if (check_summary_number(sec, "metrics", p->metrics[i], ctx) != 0)
            goto done;
    if (check_summary_number(sec, "sweep_cost", cost, ctx) != 0 ||
        (strcmp(quality, "auto") != 0 &&
         check_summary_number(sec, "sweep_quality", quality, ctx) != 0))
        goto done;
    for (i = 0; !seeds_given && i < p->nseeds; i++)
        if (p->seeds[i] < 0) {
            nde_section_error(sec, "seeds", ctx, "seeds must be >= 0");
            cli_fail(ctx, NDE_ECONFIG);
            goto done;
        }
    dir = dir_of(path);
    p->base = base[0] == '/' ? xstrdup(base) : xprintf("%s/%s", dir, base);
    free(dir);

    for (i = 0; i < nde_config_nsections(cfg); i++) {
        nde_section *s = nde_config_section_at(cfg, i);
        const char *name = nde_section_name(s);
        ab_arm *a;
        if (strcmp(name, "ab") == 0)
            continue;
        if (strncmp(name, "arm.", 4) != 0) {
            cli_error("%s: section [%s] does not belong in an A/B config "
                      "(only [ab] and [arm.NAME]: put it into the base or "
                      "an arm)", nde_section_origin(s, NULL), name);
            goto done;
        }
        if (!(a = add_arm(p, name + 4, nde_section_origin(s, NULL))))
            goto done;
        if ((rc = nde_section_check(s, arm_tables, ctx)) != NDE_OK) {
            cli_fail(ctx, rc);
            goto done;
        }
        for (k = 0; k < nde_section_nkeys(s); k++) {
            const char *key = nde_section_key_at(s, k), *value, *why;
            if ((rc = nde_get_string(s, key, &value, ctx)) != NDE_OK) {
                cli_fail(ctx, rc);
                goto done;
            }
            if ((why = add_arm_item(a, key, value))) {
                cli_error("%s: [%s] %s: %s", nde_section_origin(s, key), name,
                          key, why);
                goto done;
            }
        }
    }
    code = CLI_EXIT_OK;
done:
    nde_config_destroy(cfg);
    return code;
}

/* Base + the arm's overrides (+ extra assignments); NULL on error with the
 * message in ctx. */
static nde_config *compose(const ab_plan *p, const ab_arm *a,
                           const char *const *extra, nde_ctx *ctx)
{
    nde_config *cfg = nde_config_create();
    size_t i;
    if (!cfg) {
        nde_error(ctx, NDE_ENOMEM, "out of memory");
        return NULL;
    }
    if (nde_config_load_file(cfg, p->base, ctx) != NDE_OK)
        goto fail;
    for (i = 0; i < a->noverrides; i++)
        if ((a->overrides[i].unset
                 ? nde_config_unset(cfg, a->overrides[i].text, ctx)
                 : nde_config_override(cfg, a->overrides[i].text, ctx)) !=
            NDE_OK)
            goto fail;
    for (; extra && *extra; extra++)
        if (nde_config_override(cfg, *extra, ctx) != NDE_OK)
            goto fail;
    return cfg;
fail:
    nde_config_destroy(cfg);
    return NULL;
}

static void free_kv(ab_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].raw);
    }
    free(kv);
}

static void free_arm(ab_arm *a, size_t nseeds)
{
    for (size_t k = 0; k < a->noverrides; k++)
        free(a->overrides[k].text);
    for (size_t s = 0; a->runs && s < nseeds; s++) {
        free(a->runs[s].dir);
        free(a->runs[s].tmp);
        free(a->runs[s].message);
        free_kv(a->runs[s].kv, a->runs[s].nkv);
    }
    free(a->runs);
    free(a->overrides);
    free(a->name);
    free(a->origin);
    free(a->config_text);
    free(a->canonical);
}

/* The arm sets the first n characters of key: the key itself (n =
 * strlen(key): an override KEY=...) or its section (n up to its last '.':
 * SECTION.anything=...). */
static int sets_key(const ab_arm *a, const char *key, size_t n)
{
    for (size_t i = 0; i < a->noverrides; i++)
        if (!a->overrides[i].unset &&
            strncmp(a->overrides[i].text, key, n) == 0 &&
            a->overrides[i].text[n] == (key[n] ? '.' : '='))
            return 1;
    return 0;
}

/* The arm the sweep's values go on: ARM: when given, else the one arm
 * that sets the key, else the one that sets keys of its section, else
 * the baseline; NULL (printed) when ARM names no arm or several arms
 * qualify alike. */
static ab_arm *sweep_template(ab_plan *p)
{
    const ab_sweep *sw = &p->sweep;
    const size_t section = (size_t)(strrchr(sw->key, '.') - sw->key);
    size_t i, n = section, count = 0;
    ab_arm *t = NULL;
    char *names = xstrdup("");

    if (sw->arm) {
        if (!(t = find_arm(p, sw->arm)))
            cli_error("ab: --sweep %s: '%s' names no arm", p->sweep_text,
                      sw->arm);
        free(names);
        return t;
    }
    for (i = 0; i < p->narms; i++)
        if (sets_key(&p->arms[i], sw->key, strlen(sw->key)))
            n = strlen(sw->key);
    for (i = 0; i < p->narms; i++)
        if (sets_key(&p->arms[i], sw->key, n)) {
            char *more = xprintf("%s%s'%s'", names, count ? ", " : "",
                                 p->arms[i].name);
            free(names);
            names = more;
            if (count++ == 0)
                t = &p->arms[i];
        }
    if (count > 1) {
        cli_error("ab: --sweep %s: arms %s all set %s%.*s: name the one to "
                  "sweep, e.g. --sweep %s:%s", p->sweep_text, names,
                  n == section ? "keys of " : "", (int)n, sw->key, t->name,
                  p->sweep_text);
        t = NULL;
    } else if (!t)
        t = find_arm(p, p->baseline);
    free(names);
    return t;
}

/* The key, where arm t's config has it, must be a number; 0 or -1
 * (printed). */
static int sweep_key_numeric(const ab_plan *p, const ab_arm *t, nde_ctx *ctx)
{
    const char *key = p->sweep.key, *dot = strrchr(key, '.');
    char *section = strndup(key, (size_t)(dot - key));
    nde_config *cfg = compose(p, t, NULL, ctx);
    const nde_section *sec;
    double v;
    int rc = 0;

    if (!cfg) {
        cli_error("arm '%s' (%s): %s", t->name, t->origin,
                  nde_ctx_message(ctx));
        rc = -1;
    } else if ((sec = nde_config_section(cfg, section)) &&
               nde_section_has(sec, dot + 1) &&
               nde_get_double(sec, dot + 1, &v, ctx) != NDE_OK) {
        cli_error("ab: --sweep %s: the key is not a number in arm '%s': %s",
                  p->sweep_text, t->name, nde_ctx_message(ctx));
        rc = -1;
    }
    nde_config_destroy(cfg);
    free(section);
    return rc;
}

/* Replace the arms by the sweep's: the baseline, then per value an arm
 * of t's overrides plus KEY=value named T@VALUE; an exit code. */
static int plan_sweep(ab_plan *p, nde_ctx *ctx)
{
    const ab_sweep *sw = &p->sweep;
    ab_arm *t = sweep_template(p), *arms;
    size_t i, k, b;

    if (!t || sweep_key_numeric(p, t, ctx) != 0)
        return CLI_EXIT_USAGE;
    p->sweep_arm = xstrdup(t->name);
    arms = xrealloc(NULL, (sw->n + 1) * sizeof *arms);
    memset(arms, 0, (sw->n + 1) * sizeof *arms);
    for (i = 0; i < sw->n; i++) {
        ab_arm *a = &arms[1 + i];
        a->name = xprintf("%s@%s", t->name, sw->texts[i]);
        a->origin = xprintf("--sweep %s, value %s on arm '%s'",
                            p->sweep_text, sw->texts[i], t->name);
        for (k = 0; k < t->noverrides; k++)
            add_override(a, t->overrides[k].unset,
                         xstrdup(t->overrides[k].text));
        add_override(a, 0, xprintf("%s=%s", sw->key, sw->texts[i]));
    }
    for (b = 0; strcmp(p->arms[b].name, p->baseline) != 0; b++)
        ;
    arms[0] = p->arms[b];
    for (i = 0; i < p->narms; i++)
        if (i != b)
            free_arm(&p->arms[i], 0);
    free(p->arms);
    p->arms = arms;
    p->narms = sw->n + 1;
    return CLI_EXIT_OK;
}

/* cfg's text as nde_config_write writes it, or in canonical form;
 * exits on a failure (out of memory). */
static char *config_string(const nde_config *cfg, int canonical)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);

    if (!mem ||
        (canonical ? nde_config_write_canonical(cfg, mem)
                   : nde_config_write(cfg, mem)) != NDE_OK ||
        fclose(mem) != 0) {
        cli_error("out of memory");
        exit(CLI_EXIT_FAILURE);
    }
    return text;
}

/* Compose every arm with the first seed and create (then destroy) its
 * trainer: bad keys, values and capability mismatches stop here. */
static int validate_arms(ab_plan *p, nde_ctx *ctx)
{
    for (size_t i = 0; i < p->narms; i++) {
        ab_arm *a = &p->arms[i];
        char *seed = xprintf("train.seed=%ld", p->seeds[0]);
        const char *const extra[] = {seed, "train.checkpoint=",
                                     "train.metrics=", NULL};
        nde_config *cfg = compose(p, a, NULL, ctx);
        nde_trainer *tr = NULL;
        int rc = NDE_OK;

        if (cfg) {
            a->config_text = config_string(cfg, 0);
            a->canonical = config_string(cfg, 1);
            for (size_t k = 0; extra[k] && rc == NDE_OK; k++)
                rc = nde_config_override(cfg, extra[k], ctx);
            if (rc == NDE_OK)
                rc = nde_trainer_create(ctx, cfg, 0, &tr);
            a->density = rc == NDE_OK && cli_density_model(cfg, ctx) &&
                         nde_trainer_field(tr)->dim == 3;
        }
        free(seed);
        nde_trainer_destroy(tr);
        nde_config_destroy(cfg);
        if (!cfg || rc != NDE_OK) {
            cli_error("arm '%s' (%s): %s", a->name, a->origin,
                      nde_ctx_message(ctx));
            return CLI_EXIT_USAGE;
        }
    }
    return CLI_EXIT_OK;
}

/* ---- run files ----------------------------------------------------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    if (!f)
        return NULL;
    do {
        if (n + 4096 + 1 > cap)
            buf = xrealloc(buf, cap = 2 * cap + 4096 + 1);
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static const char *skip_ws(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

/* A flat JSON object of numbers, plain strings, true/false/null, as
 * `nde train --summary-json` writes; 0 when complete and parseable. */
static int parse_summary(const char *text, ab_kv **kv, size_t *n)
{
    const char *s = skip_ws(text), *e;
    *kv = NULL;
    *n = 0;
    if (*s++ != '{')
        return -1;
    s = skip_ws(s);
    while (*s != '}') {
        ab_kv item;
        if (*s++ != '"' || !(e = strchr(s, '"')))
            return -1;
        item.key = strndup(s, (size_t)(e - s));
        s = skip_ws(e + 1);
        if (*s++ != ':') {
            free(item.key);
            return -1;
        }
        s = skip_ws(s);
        if (*s == '"')
            e = strchr(s + 1, '"') ? strchr(s + 1, '"') + 1 : NULL;
        else {
            for (e = s; *e && !strchr(",} \t\r\n", *e); e++)
                ;
            if (e == s)
                e = NULL;
        }
        if (!e) {
            free(item.key);
            return -1;
        }
        item.raw = strndup(s, (size_t)(e - s));
        *kv = xrealloc(*kv, (*n + 1) * sizeof **kv);
        (*kv)[(*n)++] = item;
        s = skip_ws(e);
        if (*s == ',')
            s = skip_ws(s + 1);
        else if (*s != '}')
            return -1;
    }
    return *skip_ws(s + 1) == '\0' ? 0 : -1;
}

static const char *kv_get(const ab_run *r, const char *key)
{
    for (size_t i = 0; i < r->nkv; i++)
        if (strcmp(r->kv[i].key, key) == 0)
            return r->kv[i].raw;
    return NULL;
}

/* The run's metric, NAN when absent or null. */
static double run_metric(const ab_run *r, const char *key)
{
    const char *raw = kv_get(r, key);
    char *end;
    double v;
    if (!raw)
        return NAN;
    v = strtod(raw, &end);
    return end != raw && *end == '\0' ? v : NAN;
}

/* The last non-empty line of the run's stderr.txt, or NULL. */
static char *last_stderr_line(const ab_run *r)
{
    char *path = xprintf("%s/stderr.txt", r->dir);
    char *text = read_text(path), *end, *start, *line = NULL;
    free(path);
    if (!text)
        return NULL;
    end = text + strlen(text);
    while (end > text && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    start = end;
    while (start > text && start[-1] != '\n' && start[-1] != '\r')
        start--;
    if (*start)
        line = xstrdup(start);
    free(text);
    return line;
}

/* Load the run's summary.json if it is there; 1 when loaded. A summary
 * whose status is not NDE_OK marks a failed run. */
static int load_summary(ab_run *r)
{
    char *path = xprintf("%s/summary.json", r->dir);
    char *text = read_text(path);
    const char *status;
    int ok;

    free(path);
    if (!text)
        return 0;
    ok = parse_summary(text, &r->kv, &r->nkv) == 0;
    free(text);
    if (!ok) {
        free_kv(r->kv, r->nkv);
        r->kv = NULL;
        r->nkv = 0;
        return 0;
    }
    status = kv_get(r, "status");
    r->state = status && strcmp(status, "\"NDE_OK\"") == 0 ? RUN_OK
                                                          : RUN_FAILED;
    if (r->state == RUN_FAILED && !(r->message = last_stderr_line(r)))
        r->message = xprintf("status %s", status ? status : "unknown");
    return 1;
}

/* Whether the finished run r ran arm a as a stands now: its arm.ini,
 * written when it started, holds a's canonical config. */
static int run_current(const ab_arm *a, const ab_run *r)
{
    char *path = xprintf("%s/arm.ini", r->dir);
    char *text = read_text(path);
    const int same = text && strcmp(text, a->canonical) == 0;

    free(path);
    free(text);
    return same;
}

/* Run r of arm a, loaded as finished, is to run again (its config
 * changed, or --fresh): pending, its directory removed when it starts. */
static void forget_run(ab_run *r)
{
    free_kv(r->kv, r->nkv);
    free(r->message);
    r->kv = NULL;
    r->nkv = 0;
    r->message = NULL;
    r->state = RUN_PENDING;
    r->stale = 1;
}

/* Load the arms' finished runs; with fresh, or for a run of another
 * config of its arm (the base or the arm changed since: arm.ini differs
 * or is missing), none is kept, said per arm on stderr. */
static void load_runs(ab_plan *p, int fresh)
{
    for (size_t i = 0; i < p->narms; i++) {
        ab_arm *a = &p->arms[i];
        size_t stale = 0;
        for (size_t k = 0; k < p->nseeds; k++) {
            ab_run *r = &a->runs[k];
            if (load_summary(r) && (fresh || !run_current(a, r))) {
                forget_run(r);
                stale++;
            }
        }
        if (stale && cli_rank() == 0)
            fprintf(stderr, "ab: arm '%s': %zu finished run%s %s: running "
                    "%s again\n", a->name, stale, stale == 1 ? "" : "s",
                    fresh ? "(--fresh)"
                          : "made with another config (its arm.ini)",
                    stale == 1 ? "it" : "them");
    }
}

static int mkdirs(const char *path)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                cli_error("%s: cannot create the directory: %m", p);
                free(p);
                return -1;
            }
            if (!(*s = c))
                break;
        }
    }
    free(p);
    return 0;
}

/* Remove what an unfinished run left: the directory and its files (a run
 * writes no subdirectories); 0 also when it is absent, else -1 (printed). */
static int remove_run_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int rc = 0;

    if (!d) {
        if (errno == ENOENT)
            return 0;
        cli_error("%s: cannot remove this unfinished run: %m", path);
        return -1;
    }
    while (rc == 0 && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            unlinkat(dirfd(d), e->d_name, 0) != 0) {
            cli_error("%s/%s: cannot remove this file of an unfinished run: "
                      "%m", path, e->d_name);
            rc = -1;
        }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0) {
        cli_error("%s: cannot remove this unfinished run: %m", path);
        rc = -1;
    }
    return rc;
}

/* ---- the lock on DIR ----------------------------------------------------- */

/* "pid N on HOST since TIME" into the lock file, for a refused nde ab to
 * name the holder; 0 or -1. */
static int write_holder(int fd)
{
    char host[256] = "", when[64] = "", text[400];
    time_t now = time(NULL);
    struct tm tm;
    int n;

    if (gethostname(host, sizeof host - 1) != 0)
        strcpy(host, "?");
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z",
             localtime_r(&now, &tm));
    n = snprintf(text, sizeof text, "pid %ld on %s since %s\n",
                 (long)getpid(), host, when);
    return ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)n, 0) == n ? 0
                                                                        : -1;
}

/* The holder's line of the lock file, waiting briefly for a holder that has
 * taken the lock but not yet written it. */
static void read_holder(int fd, char *buf, size_t size)
{
    ssize_t n = 0;
    for (int tries = 0; tries < 50 && n <= 0; tries++) {
        if (tries)
            usleep(20000);
        n = pread(fd, buf, size - 1, 0);
    }
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    for (char *c = buf; *c; c++)
        if (!isprint((unsigned char)*c))
            *c = '?';
    if (!*buf)
        snprintf(buf, size, "which has not written its pid");
}

/* Lock DIR for this nde ab: flock(2) on DIR/.lock. The runs inherit the
 * descriptor, so the kernel drops the lock when nde ab and the last of its
 * runs have ended, however they end; the file left behind stops no later
 * nde ab. An exit code: 2 when another nde ab holds it. */
static int lock_dir(ab_plan *p)
{
    char *path = xprintf("%s/.lock", p->dir);
    char holder[256];
    int fd = -1, code = CLI_EXIT_FAILURE;

    if (mkdirs(p->dir) != 0)
        goto done;
    if ((fd = open(path, O_RDWR | O_CREAT, 0666)) < 0) {
        cli_error("%s: cannot open the lock file: %m", path);
        goto done;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            read_holder(fd, holder, sizeof holder);
            cli_error("ab: %s is in use by another nde ab (%s): wait for it "
                      "to end or stop it", p->dir, holder);
            code = CLI_EXIT_USAGE;
        } else
            cli_error("%s: cannot lock: %m", path);
    } else if (write_holder(fd) != 0)
        cli_error("%s: cannot write the lock file: %m", path);
    else {
        p->lock_fd = fd;
        fd = -1;
        code = CLI_EXIT_OK;
    }
done:
    if (fd >= 0)
        close(fd);
    free(path);
    return code;
}

/* ---- running ------------------------------------------------------------- */

/* The signals that stop nde ab, which stops its runs first. */
static const struct {
    int sig;
    const char *name;
} stop_signals[] = {{SIGINT, "SIGINT"}, {SIGTERM, "SIGTERM"},
                    {SIGHUP, "SIGHUP"}};
#define NSTOP (sizeof stop_signals / sizeof *stop_signals)

/* The arm's canonical config into the run's r->tmp/arm.ini, by which a
 * later nde ab knows the run is still the arm's (run_current); 0 or -1
 * (said). */
static int write_arm_ini(const ab_arm *a, const ab_run *r)
{
    char *path = xprintf("%s/arm.ini", r->tmp);
    FILE *f = fopen(path, "w");
    int rc = f && fputs(a->canonical, f) != EOF ? 0 : -1;

    if (f && fclose(f) != 0)
        rc = -1;
    if (rc != 0)
        cli_error("%s: cannot write: %m", path);
    free(path);
    return rc;
}

/* Fork and exec the run's `nde train` into r->tmp (a stale run's old
 * directory removed first); its pid or -1. mask: the signal mask the
 * child gets back. */
static pid_t start_run(const ab_plan *p, const ab_arm *a, ab_run *r,
                       const sigset_t *mask)
{
    char **argv = xrealloc(NULL, (2 * a->noverrides + 16) * sizeof *argv);
    char *seed = xprintf("train.seed=%ld", r->seed);
    char *metrics = xprintf("train.metrics=%s/metrics.jsonl", r->tmp);
    char *summary = xprintf("%s/summary.json", r->tmp);
    char *errpath = xprintf("%s/stderr.txt", r->tmp);
    char *ckpt = a->density && r->seed == p->seeds[0]
                     ? xprintf("train.checkpoint=%s/model.ckpt", r->tmp)
                     : xstrdup("train.checkpoint=");
    const pid_t parent = getpid();
    size_t n = 0, i;
    pid_t pid;

    argv[n++] = "nde";
    argv[n++] = "train";
    argv[n++] = p->base;
    for (i = 0; i < a->noverrides; i++) {
        argv[n++] = a->overrides[i].unset ? "-u" : "-s";
        argv[n++] = a->overrides[i].text;
    }
    argv[n++] = "-s";
    argv[n++] = seed;
    argv[n++] = "-s";
    argv[n++] = metrics;
    argv[n++] = "-s";
    argv[n++] = ckpt;
    argv[n++] = "--quiet";
    argv[n++] = "--summary-json";
    argv[n++] = summary;
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    if ((r->stale && remove_run_dir(r->dir) != 0) || mkdirs(r->tmp) != 0 ||
        write_arm_ini(a, r) != 0)
        pid = -1;
    else if ((pid = fork()) < 0)
        cli_error("cannot start a run: %m");
    else if (pid == 0) {
        int fd, nul;
        /* A group of its own: a terminal's Ctrl-C or hangup reaches nde ab
         * only, which stops the runs. Killed when nde ab dies, even by
         * SIGKILL; getppid() catches a parent gone before the prctl. */
        setpgid(0, 0);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        nul = open("/dev/null", O_RDWR);
        if (fd < 0 || nul < 0 || dup2(fd, STDERR_FILENO) < 0 ||
            dup2(nul, STDOUT_FILENO) < 0 || dup2(nul, STDIN_FILENO) < 0)
            _exit(127);
        /* A stop signal sent to the run before the exec must end it, not
         * run nde ab's handler in this copy and be lost. */
        for (size_t i = 0; i < NSTOP; i++) {
            struct sigaction cur;
            if (sigaction(stop_signals[i].sig, NULL, &cur) == 0 &&
                cur.sa_handler == on_signal)
                signal(stop_signals[i].sig, SIG_DFL);
        }
        sigprocmask(SIG_SETMASK, mask, NULL);
        /* a run is one process, even when nde ab is a rank of mpirun's */
        setenv("NDE_MPI", "off", 1);
        execv("/proc/self/exe", argv);
        dprintf(STDERR_FILENO, "nde: cannot run /proc/self/exe: %s\n",
                strerror(errno));
        _exit(127);
    } else
        setpgid(pid, pid);  /* as the child does: whichever runs first */
    free(argv);
    free(seed);
    free(metrics);
    free(summary);
    free(errpath);
    free(ckpt);
    return pid;
}

/* The run's process has ended on its own: its directory goes into place in
 * one rename, whole (a summary, written last) or to be redone (none). */
static void finish_run(ab_run *r, int wstatus)
{
    r->pid = 0;
    if (rename(r->tmp, r->dir) != 0) {
        r->state = RUN_FAILED;
        r->message = xprintf("cannot rename %s to %s: %s", r->tmp, r->dir,
                             strerror(errno));
        return;
    }
    if (load_summary(r))
        return;
    r->state = RUN_FAILED;
    if (!(r->message = last_stderr_line(r)))
        r->message =
            WIFSIGNALED(wstatus)
                ? xprintf("killed by signal %d", WTERMSIG(wstatus))
                : xprintf("exit status %d", WEXITSTATUS(wstatus));
}

static void progress(const ab_plan *p, size_t done, size_t total,
                     size_t failed, size_t running)
{
    (void)p;
    fprintf(stderr, "\rab: %zu/%zu runs done, %zu running, %zu failed   ",
            done, total, running, failed);
}

/* Stop the runs under way (each process group), wait for them and remove
 * their directories; a run that ended before the signal is kept. */
static void kill_runs(ab_plan *p)
{
    size_t i, s;
    for (i = 0; i < p->narms; i++)
        for (s = 0; s < p->nseeds; s++)
            if (p->arms[i].runs[s].state == RUN_RUNNING)
                kill(-p->arms[i].runs[s].pid, SIGTERM);
    for (i = 0; i < p->narms; i++)
        for (s = 0; s < p->nseeds; s++) {
            ab_run *r = &p->arms[i].runs[s];
            int wstatus;
            if (r->state != RUN_RUNNING)
                continue;
            while (waitpid(r->pid, &wstatus, 0) < 0 && errno == EINTR)
                ;
            if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGTERM) {
                r->state = RUN_PENDING;
                remove_run_dir(r->tmp);
            } else
                finish_run(r, wstatus);
        }
}

/*
 * Under mpirun (comm.h): the pending runs, in run_all's order, go to the
 * ranks in turn; the others' are marked RUN_ELSEWHERE here. Every rank
 * saw the same runs done (the caller agreed after loading them), so the
 * ranks share them alike and each run is run once.
 */
static void share_runs(ab_plan *p)
{
    const size_t total = p->narms * p->nseeds;
    const size_t K = (size_t)cli_ranks(), me = (size_t)cli_rank();
    size_t j = 0;

    for (size_t i = 0; i < total; i++) {
        ab_run *r = &p->arms[i % p->narms].runs[i / p->narms];
        if (r->state == RUN_PENDING && j++ % K != me)
            r->state = RUN_ELSEWHERE;
    }
}

/* After the ranks' runs: the others' summaries (rank 0's report). */
static void gather_runs(ab_plan *p)
{
    for (size_t i = 0; i < p->narms; i++)
        for (size_t s = 0; s < p->nseeds; s++) {
            ab_run *r = &p->arms[i].runs[s];
            if (r->state != RUN_ELSEWHERE)
                continue;
            r->state = RUN_PENDING;
            if (!load_summary(r)) {
                r->state = RUN_FAILED;
                if (!(r->message = last_stderr_line(r)))
                    r->message = xprintf("no summary in %s (run by "
                                         "another rank)", r->dir);
            }
        }
}

/* Run every pending arm x seed, seed-major so that arms share the machine
 * alike; an exit code (128 + the signal when stopped by one). */
static int run_all(ab_plan *p)
{
    const int tty = isatty(STDERR_FILENO);
    size_t total = p->narms * p->nseeds, done = 0, failed = 0, running = 0;
    size_t next = 0, i, s, mine = total;
    struct sigaction sa, old[NSTOP], old_chld;
    sigset_t block, old_mask, wait_mask;

    for (i = 0; i < p->narms; i++)
        for (s = 0; s < p->nseeds; s++) {
            ab_run *r = &p->arms[i].runs[s];
            if (r->state == RUN_ELSEWHERE)
                mine--;
            else if (r->state == RUN_OK || r->state == RUN_FAILED) {
                done++;
                failed += r->state == RUN_FAILED;
            } else if (remove_run_dir(r->dir) != 0 ||
                       remove_run_dir(r->tmp) != 0)
                return CLI_EXIT_FAILURE;
        }
    /* The signals stay blocked but in sigsuspend(), so none slips in
     * between the test of `interrupted` and the wait. A signal ignored
     * when nde ab started (nohup) stays ignored. */
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    for (i = 0; i < NSTOP; i++)
        sigaddset(&block, stop_signals[i].sig);
    sigprocmask(SIG_BLOCK, &block, &old_mask);
    wait_mask = old_mask;
    sigdelset(&wait_mask, SIGCHLD);
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_child;
    sigaction(SIGCHLD, &sa, &old_chld);
    sa.sa_handler = on_signal;
    for (i = 0; i < NSTOP; i++) {
        sigdelset(&wait_mask, stop_signals[i].sig);
        sigaction(stop_signals[i].sig, NULL, &old[i]);
        if (old[i].sa_handler != SIG_IGN)
            sigaction(stop_signals[i].sig, &sa, NULL);
    }
    if (tty)
        progress(p, done, mine, failed, running);
    while (!interrupted) {
        int wstatus;
        pid_t pid;
        while (running < (size_t)p->jobs && next < total) {
            ab_arm *a = &p->arms[next % p->narms];
            ab_run *r = &a->runs[next / p->narms];
            next++;
            if (r->state != RUN_PENDING)
                continue;
            if ((r->pid = start_run(p, a, r, &old_mask)) < 0) {
                r->state = RUN_FAILED;
                r->message = xprintf("cannot start: %s", strerror(errno));
                done++;
                failed++;
                continue;
            }
            r->state = RUN_RUNNING;
            running++;
        }
        if (running == 0)
            break;
        if ((pid = waitpid(-1, &wstatus, WNOHANG)) <= 0) {
            sigsuspend(&wait_mask);
            continue;
        }
        for (i = 0; i < total; i++) {
            ab_run *r = &p->arms[i % p->narms].runs[i / p->narms];
            if (r->state == RUN_RUNNING && r->pid == pid) {
                finish_run(r, wstatus);
                running--;
                done++;
                failed += r->state == RUN_FAILED;
                break;
            }
        }
        if (tty)
            progress(p, done, mine, failed, running);
    }
    if (interrupted)
        kill_runs(p);
    /* Unblocked while our handlers are in place: a pending signal only
     * sets `interrupted` again. */
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    for (i = 0; i < NSTOP; i++)
        sigaction(stop_signals[i].sig, &old[i], NULL);
    sigaction(SIGCHLD, &old_chld, NULL);
    if (tty)
        fputc('\n', stderr);
    if (interrupted) {
        const char *name = "a signal";
        for (i = 0; i < NSTOP; i++)
            if (stop_signals[i].sig == interrupted)
                name = stop_signals[i].name;
        cli_error("ab: interrupted by %s; the runs under way were stopped "
                  "and removed, finished runs are kept: run the same command "
                  "again to continue", name);
        return 128 + interrupted;
    }
    return CLI_EXIT_OK;
}

/* ---- report -------------------------------------------------------------- */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* The arm's successful values of a metric (finite ones). */
static size_t arm_values(const ab_plan *p, const ab_arm *a,
                         const char *metric, double *out)
{
    size_t n = 0;
    for (size_t s = 0; s < p->nseeds; s++) {
        double v;
        if (a->runs[s].state != RUN_OK)
            continue;
        v = run_metric(&a->runs[s], metric);
        if (isfinite(v))
            out[n++] = v;
    }
    return n;
}

/* The arm against the baseline for one metric; the baseline itself gets
 * ratio 1, interval [1, 1] and no p-value. */
static void compare(const ab_plan *p, const ab_arm *a, const char *metric,
                    double *x, double *y, size_t *n, nde_ab_compare *c)
{
    const ab_arm *b = find_arm(p, p->baseline);
    size_t ny = arm_values(p, b, metric, y);
    *n = arm_values(p, a, metric, x);
    nde_ab_compare_means(x, *n, y, ny, c);
    if (a == b) {
        c->ratio = c->mean_y != 0 && *n > 0 ? 1.0 : NAN;
        c->ci95[0] = c->ci95[1] = c->ratio;
        c->p_value = NAN;
    }
}

/* The baseline's number of values of a metric. */
static size_t ny_of(const ab_plan *p, const char *metric)
{
    double *y = xrealloc(NULL, p->nseeds * sizeof *y);
    size_t n = arm_values(p, find_arm(p, p->baseline), metric, y);
    free(y);
    return n;
}

static void print_table(const ab_plan *p)
{
    double *x = xrealloc(NULL, p->nseeds * sizeof *x);
    double *y = xrealloc(NULL, p->nseeds * sizeof *y);
    size_t i, m, s, n, ok;
    int aw = 22, mw = 18;  /* wider for long names, as a sweep's */
    nde_ab_compare c;

    for (i = 0; i < p->narms; i++)
        aw = (int)fmax(aw, (double)strlen(p->arms[i].name) + 8);
    for (m = 0; m < p->nmetrics; m++)
        mw = (int)fmax(mw, (double)strlen(p->metrics[m]));
    printf("%-*s %-*s %-27s %-28s %s\n", aw, "arm (runs ok)", mw, "metric",
           "mean +- sd", "ratio to baseline [95% CI]", "p");
    for (i = 0; i < p->narms; i++) {
        const ab_arm *a = &p->arms[i];
        char head[160];
        for (ok = 0, s = 0; s < p->nseeds; s++)
            ok += a->runs[s].state == RUN_OK;
        snprintf(head, sizeof head, "%s (%zu/%zu)", a->name, ok, p->nseeds);
        for (m = 0; m < p->nmetrics; m++) {
            char ms[64], rs[64], ps[32];
            compare(p, a, p->metrics[m], x, y, &n, &c);
            snprintf(ms, sizeof ms, "%.4g +- %.2g", c.mean_x, c.sd_x);
            if (n == 0)
                snprintf(ms, sizeof ms, "- (no value)");
            if (isnan(c.ratio))
                snprintf(rs, sizeof rs, "-");
            else if (n < 2 || ny_of(p, p->metrics[m]) < 2)
                snprintf(rs, sizeof rs, "%.3f [n < 2]", c.ratio);
            else if (isnan(c.ci95[0]))
                snprintf(rs, sizeof rs, "%.3f [unbounded]", c.ratio);
            else
                snprintf(rs, sizeof rs, "%.3f [%.3f, %.3f]", c.ratio,
                         c.ci95[0], c.ci95[1]);
            if (isnan(c.p_value))
                snprintf(ps, sizeof ps, "-");
            else
                snprintf(ps, sizeof ps, "%.3g", c.p_value);
            printf("%-*s %-*s %-27s %-28s %s\n", aw, m ? "" : head, mw,
                   p->metrics[m], ms, rs, ps);
        }
    }
    for (i = 0; i < p->narms; i++)
        for (s = 0; s < p->nseeds; s++)
            if (p->arms[i].runs[s].state == RUN_FAILED)
                printf("failed: %s seed %ld: %s\n", p->arms[i].name,
                       p->arms[i].runs[s].seed, p->arms[i].runs[s].message);
    fflush(stdout);
    free(x);
    free(y);
}

/* ---- the sweep's report -------------------------------------------------- */

/* Per arm (arms[0] the baseline, arms[1 + i] value i): its cost and
 * quality against the baseline, their ranges over seeds, the swept
 * regularizer's ratio_mean, and the verdict. */
typedef struct sweep_report {
    const char *quality;     /* the resolved metric */
    int higher_is_better;
    char *scale;             /* reg_NAME.ratio_mean, NULL if the key is
                                not a regularizer's weight */
    nde_ab_compare *cost, *qual;
    double (*range)[4];      /* cost min, max, quality min, max */
    double *scale_mean;
    nde_ab_verdict *verdict; /* for arms 1.. */
    long best;               /* arm index, or -1 */
} sweep_report;

/* The metric's min and max over the arm's successful runs. */
static void value_range(const ab_plan *p, const ab_arm *a, const char *metric,
                        double *lo, double *hi)
{
    double *x = xrealloc(NULL, p->nseeds * sizeof *x);
    size_t n = arm_values(p, a, metric, x);
    *lo = n ? INFINITY : NAN;
    *hi = n ? -INFINITY : NAN;
    for (size_t i = 0; i < n; i++) {
        *lo = fmin(*lo, x[i]);
        *hi = fmax(*hi, x[i]);
    }
    free(x);
}

static void sweep_report_make(const ab_plan *p, sweep_report *r)
{
    double *x = xrealloc(NULL, p->nseeds * sizeof *x);
    double *y = xrealloc(NULL, p->nseeds * sizeof *y);
    const char *key = p->sweep.key, *dot = strrchr(key, '.');
    size_t i, n;
    nde_ab_compare c;

    memset(r, 0, sizeof *r);
    r->quality = p->quality;
    if (strcmp(p->quality, "auto") == 0)
        r->quality = arm_values(p, &p->arms[0], "test_accuracy", x) > 0
                         ? "test_accuracy"
                         : "test_loss";
    r->higher_is_better = strcmp(r->quality, "test_accuracy") == 0;
    /* regularizer.NAME.weight: NAME's scale against the data loss */
    if (strncmp(key, "regularizer.", 12) == 0 && strcmp(dot, ".weight") == 0)
        r->scale = xprintf("reg_%.*s.ratio_mean", (int)(dot - key - 12),
                           key + 12);
    r->cost = xrealloc(NULL, p->narms * sizeof *r->cost);
    r->qual = xrealloc(NULL, p->narms * sizeof *r->qual);
    r->range = xrealloc(NULL, p->narms * sizeof *r->range);
    r->scale_mean = xrealloc(NULL, p->narms * sizeof *r->scale_mean);
    r->verdict = xrealloc(NULL, p->narms * sizeof *r->verdict);
    for (i = 0; i < p->narms; i++) {
        const ab_arm *a = &p->arms[i];
        compare(p, a, p->cost, x, y, &n, &r->cost[i]);
        compare(p, a, r->quality, x, y, &n, &r->qual[i]);
        value_range(p, a, p->cost, &r->range[i][0], &r->range[i][1]);
        value_range(p, a, r->quality, &r->range[i][2], &r->range[i][3]);
        r->scale_mean[i] = NAN;
        if (r->scale) {
            compare(p, a, r->scale, x, y, &n, &c);
            r->scale_mean[i] = c.mean_x;
        }
        r->verdict[i] = nde_ab_judge(&r->cost[i], &r->qual[i],
                                     r->higher_is_better, SWEEP_ALPHA);
    }
    r->best = nde_ab_recommend(r->cost + 1, r->qual + 1, p->narms - 1,
                               r->higher_is_better, SWEEP_ALPHA);
    if (r->best >= 0)
        r->best++;
    free(x);
    free(y);
}

static void sweep_report_free(sweep_report *r)
{
    free(r->scale);
    free(r->cost);
    free(r->qual);
    free(r->range);
    free(r->scale_mean);
    free(r->verdict);
}

static const char *verdict_name(nde_ab_verdict v)
{
    switch (v) {
    case NDE_AB_QUALIFIES: return "qualifies";
    case NDE_AB_NO_CUT: return "no cut";
    case NDE_AB_WORSE: return "significantly worse";
    default: return "untested (too few runs)";
    }
}

static void print_sweep(const ab_plan *p, const sweep_report *r)
{
    char cost_head[64], qual_head[64];
    size_t i, s, ok;

    printf("\nsweep of %s on arm '%s' against '%s': cost %s, quality %s "
           "(%s is better), not significantly worse: p >= %g or better\n",
           p->sweep.key, p->sweep_arm, p->baseline, p->cost, r->quality,
           r->higher_is_better ? "higher" : "lower", SWEEP_ALPHA);
    snprintf(cost_head, sizeof cost_head, "%s ratio", p->cost);
    snprintf(qual_head, sizeof qual_head, "%s ratio", r->quality);
    printf("%-14s %-6s %-20s %-20s %-9s %-24s %s\n", "value", "runs",
           cost_head, qual_head, "p", r->scale ? r->scale : "", "verdict");
    for (i = 1; i < p->narms; i++) {
        char runs[32], cr[32], qr[32], pv[32], sc[32];
        for (ok = 0, s = 0; s < p->nseeds; s++)
            ok += p->arms[i].runs[s].state == RUN_OK;
        snprintf(runs, sizeof runs, "%zu/%zu", ok, p->nseeds);
        snprintf(cr, sizeof cr, "%.3f", r->cost[i].ratio);
        snprintf(qr, sizeof qr, "%.3f", r->qual[i].ratio);
        snprintf(pv, sizeof pv, "%.3g", r->qual[i].p_value);
        snprintf(sc, sizeof sc, "%.3g", r->scale_mean[i]);
        printf("%-14s %-6s %-20s %-20s %-9s %-24s %s%s\n",
               p->sweep.texts[i - 1], runs, cr, qr, pv, r->scale ? sc : "",
               verdict_name(r->verdict[i]),
               (long)i == r->best ? ", recommended" : "");
    }
    if (r->best > 0) {
        const nde_ab_compare *q = &r->qual[r->best];
        char ci[64] = "unbounded";
        if (!isnan(q->ci95[0]))
            snprintf(ci, sizeof ci, "[%.3g, %.3g]", q->ci95[0], q->ci95[1]);
        /* with few seeds "not significantly worse" can hide a large
         * ratio: its interval says how much */
        printf("recommended: %s = %s (arm %s): %s %.3fx the baseline's, %s "
               "%.3fx, 95%% CI %s, p %.3g\n",
               p->sweep.key, p->sweep.texts[r->best - 1],
               p->arms[r->best].name, p->cost, r->cost[r->best].ratio,
               r->quality, q->ratio, ci, q->p_value);
    } else
        printf("recommended: none: no value of %s cut %s with a %s not "
               "significantly worse than '%s' (see the verdicts)\n",
               p->sweep.key, p->cost, r->quality, p->baseline);
    fflush(stdout);
}

/* The comparison c as {"mean", "sd", "min", "max", "ratio", "p_value"}. */
static void json_compare(FILE *f, const nde_ab_compare *c, double lo,
                         double hi)
{
    fputs("{\"mean\": ", f);
    cli_json_double(f, c->mean_x);
    fputs(", \"sd\": ", f);
    cli_json_double(f, c->sd_x);
    fputs(", \"min\": ", f);
    cli_json_double(f, lo);
    fputs(", \"max\": ", f);
    cli_json_double(f, hi);
    fputs(", \"ratio_to_baseline\": ", f);
    cli_json_double(f, c->ratio);
    fputs(", \"p_value\": ", f);
    cli_json_double(f, c->p_value);
    fputc('}', f);
}

static void write_sweep_json(FILE *f, const ab_plan *p, const sweep_report *r)
{
    fputs(",\n \"sweep\": {\"key\": ", f);
    json_string(f, p->sweep.key);
    fputs(", \"arm\": ", f);
    json_string(f, p->sweep_arm);
    fputs(", \"cost\": ", f);
    json_string(f, p->cost);
    fputs(", \"quality\": ", f);
    json_string(f, r->quality);
    fprintf(f, ", \"quality_higher_is_better\": %s, \"alpha\": %g,\n"
               "  \"rule\": \"the value with the lowest mean cost below "
               "the baseline's whose quality is not significantly worse "
               "(two-sided Welch p >= alpha, or better)\",\n  \"values\": [",
            r->higher_is_better ? "true" : "false", SWEEP_ALPHA);
    for (size_t i = 1; i < p->narms; i++) {
        fputs(i > 1 ? ",\n   {\"value\": " : "\n   {\"value\": ", f);
        cli_json_double(f, p->sweep.values[i - 1]);
        fputs(", \"arm\": ", f);
        json_string(f, p->arms[i].name);
        fputs(", \"cost\": ", f);
        json_compare(f, &r->cost[i], r->range[i][0], r->range[i][1]);
        fputs(", \"quality\": ", f);
        json_compare(f, &r->qual[i], r->range[i][2], r->range[i][3]);
        if (r->scale) {
            fprintf(f, ", \"%s\": ", r->scale);
            cli_json_double(f, r->scale_mean[i]);
        }
        fputs(", \"verdict\": ", f);
        json_string(f, verdict_name(r->verdict[i]));
        fputc('}', f);
    }
    fputs("],\n  \"recommended\": ", f);
    if (r->best > 0) {
        fputs("{\"value\": ", f);
        cli_json_double(f, p->sweep.values[r->best - 1]);
        fputs(", \"arm\": ", f);
        json_string(f, p->arms[r->best].name);
        fputc('}', f);
    } else
        fputs("null", f);
    fputc('}', f);
}

static int plot_frontier(const ab_plan *p, const sweep_report *r)
{
    ab_frontier_point *pts = xrealloc(NULL, p->narms * sizeof *pts);
    char *title = xprintf("%s on arm '%s'; mean over seeds, bars: min-max; "
                          "square: baseline '%s', ring: recommended",
                          p->sweep.key, p->sweep_arm, p->baseline);
    char err[1024];
    int rc;

    for (size_t i = 0; i < p->narms; i++)
        pts[i] = (ab_frontier_point){
            i ? p->sweep.texts[i - 1] : p->baseline,
            r->qual[i].mean_x, r->range[i][2], r->range[i][3],
            r->cost[i].mean_x, r->range[i][0], r->range[i][1],
            i == 0, (long)i == r->best};
    rc = ab_plot_frontier(p->dir, pts, p->narms, r->quality, p->cost, title,
                          err, sizeof err);
    if (rc != 0)
        cli_error("ab: frontier plot: %s", err);
    free(pts);
    free(title);
    return rc;
}

static void write_run(FILE *f, const ab_run *r)
{
    fprintf(f, "{\"seed\": %ld, \"status\": \"%s\"", r->seed,
            r->state == RUN_OK ? "ok"
                               : r->state == RUN_FAILED ? "failed" : "not run");
    if (r->message) {
        fputs(", \"message\": ", f);
        json_string(f, r->message);
    }
    for (size_t k = 0; k < r->nkv; k++)
        fprintf(f, ", \"%s\": %s",
                strcmp(r->kv[k].key, "status") ? r->kv[k].key
                                               : "train_status",
                r->kv[k].raw);
    fputc('}', f);
}

static int write_json(const ab_plan *p, const char *config_path,
                      const sweep_report *sr)
{
    char *path = xprintf("%s/ab.json", p->dir);
    double *x = xrealloc(NULL, p->nseeds * sizeof *x);
    double *y = xrealloc(NULL, p->nseeds * sizeof *y);
    cli_outfile o;
    size_t i, k, n;
    nde_ab_compare c;
    int rc;

    rc = cli_outfile_open(&o, path);
    free(path);
    if (rc != 0)
        goto done;
    fputs("{\"config\": ", o.fp);
    json_string(o.fp, config_path);
    fputs(", \"base\": ", o.fp);
    json_string(o.fp, p->base);
    fputs(", \"baseline\": ", o.fp);
    json_string(o.fp, p->baseline);
    fputs(",\n \"ci_method\": \"Fieller 95% interval of the ratio of two "
          "independent means, Welch-Satterthwaite df; p: two-sided Welch "
          "t-test\",\n \"seeds\": [", o.fp);
    for (i = 0; i < p->nseeds; i++)
        fprintf(o.fp, "%s%ld", i ? ", " : "", p->seeds[i]);
    fputs("], \"metrics\": [", o.fp);
    for (i = 0; i < p->nmetrics; i++) {
        fputs(i ? ", " : "", o.fp);
        json_string(o.fp, p->metrics[i]);
    }
    fputs("],\n \"arms\": [", o.fp);
    for (i = 0; i < p->narms; i++) {
        const ab_arm *a = &p->arms[i];
        fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", o.fp);
        json_string(o.fp, a->name);
        fputs(", \"overrides\": [", o.fp);
        for (k = 0; k < a->noverrides; k++) {
            char *shown = xprintf("%s%s", a->overrides[k].unset ? "-u " : "",
                                  a->overrides[k].text);
            fputs(k ? ", " : "", o.fp);
            json_string(o.fp, shown);
            free(shown);
        }
        fputs("],\n   \"config\": ", o.fp);
        json_string(o.fp, a->config_text);
        fputs(",\n   \"runs\": [", o.fp);
        for (k = 0; k < p->nseeds; k++) {
            fputs(k ? ",\n    " : "\n    ", o.fp);
            write_run(o.fp, &a->runs[k]);
        }
        fputs("],\n   \"summary\": {", o.fp);
        for (k = 0; k < p->nmetrics; k++) {
            compare(p, a, p->metrics[k], x, y, &n, &c);
            fprintf(o.fp, "%s\n    ", k ? "," : "");
            json_string(o.fp, p->metrics[k]);
            fprintf(o.fp, ": {\"n\": %zu, \"mean\": ", n);
            cli_json_double(o.fp, c.mean_x);
            fputs(", \"sd\": ", o.fp);
            cli_json_double(o.fp, c.sd_x);
            fputs(", \"ratio_to_baseline\": ", o.fp);
            cli_json_double(o.fp, c.ratio);
            fputs(", \"ci95\": [", o.fp);
            cli_json_double(o.fp, c.ci95[0]);
            fputs(", ", o.fp);
            cli_json_double(o.fp, c.ci95[1]);
            fputs("], \"p_value\": ", o.fp);
            cli_json_double(o.fp, c.p_value);
            fputc('}', o.fp);
        }
        fputs("}}", o.fp);
    }
    fputc(']', o.fp);
    if (sr)
        write_sweep_json(o.fp, p, sr);
    fputs("}\n", o.fp);
    rc = cli_outfile_commit(&o);
done:
    free(x);
    free(y);
    return rc;
}

static int make_plots(const ab_plan *p)
{
    const char **names = xrealloc(NULL, p->narms * sizeof *names);
    char err[1024];
    int rc;
    for (size_t i = 0; i < p->narms; i++)
        names[i] = p->arms[i].name;
    rc = ab_plot(p->dir, names, p->narms, p->seeds, p->nseeds, p->baseline,
                 err, sizeof err);
    if (rc != 0)
        cli_error("ab: plots: %s", err);
    free(names);
    return rc;
}

/* Each density arm's flow, from its first seed's model.ckpt, drawn as
 * DIR/density_ARM.png and .svg by `nde predict CKPT --plot` (runs from
 * before nde ab kept the checkpoint have none: skipped). */
static int density_plots(const ab_plan *p)
{
    int code = CLI_EXIT_OK;

    for (size_t i = 0; i < p->narms; i++) {
        const ab_arm *a = &p->arms[i];
        char *ckpt, *base;

        if (!a->density || a->runs[0].state != RUN_OK)
            continue;
        ckpt = xprintf("%s/model.ckpt", a->runs[0].dir);
        base = xprintf("%s/density_%s", p->dir, a->name);
        if (access(ckpt, F_OK) == 0) {
            char *argv[] = {"predict", ckpt, "--plot", base, "-o",
                            "/dev/null", NULL};
            const int rc = cli_predict(6, argv);
            if (rc != CLI_EXIT_OK) {
                cli_error("ab: the density of arm '%s' (%s) was not drawn",
                          a->name, ckpt);
                code = rc;
            }
        }
        free(ckpt);
        free(base);
    }
    return code;
}

/* ---- the command --------------------------------------------------------- */

static void free_plan(ab_plan *p)
{
    for (size_t i = 0; i < p->narms; i++)
        free_arm(&p->arms[i], p->nseeds);
    free(p->arms);
    free(p->base);
    free(p->dir);
    free(p->seeds);
    free(p->baseline);
    free(p->cost);
    free(p->quality);
    free(p->sweep_arm);
    ab_sweep_free(&p->sweep);
    nde_strings_free(p->metrics);
    if (p->lock_fd >= 0)
        close(p->lock_fd);
}

int cli_ab(int argc, char **argv)
{
    ab_plan p;
    sweep_report sweep;
    nde_ctx *ctx = NULL;
    const char *config = NULL, *dir = NULL, *seeds = NULL, *v;
    const char **arm_opts;
    size_t narm_opts = 0, i, k, s;
    int code = CLI_EXIT_USAGE, missing, failed = 0, agreed = 0, fresh = 0;
    char *end;

    memset(&p, 0, sizeof p);
    memset(&sweep, 0, sizeof sweep);
    p.lock_fd = -1;
    for (i = 1; i < (size_t)argc; i++)
        if (cli_is_help(argv[i])) {
            fputs(cli_ab_help, stdout);
            return CLI_EXIT_OK;
        }
    arm_opts = xrealloc(NULL, (size_t)argc * sizeof *arm_opts);
    /* under mpirun, one run at a time per rank unless -j says */
    p.jobs = cli_ranks() > 1 ? 1 : sysconf(_SC_NPROCESSORS_ONLN);
    if (p.jobs < 1)
        p.jobs = 1;
    for (int j = 1; j < argc; j++) {
        const char *arg = argv[j];
        if (strcmp(arg, "--fresh") == 0) {
            fresh = 1;
            continue;
        }
        if ((v = cli_option_value(argc, argv, &j, "-o", "--output", &missing)))
            dir = v;
        else if (!missing &&
                 (v = cli_option_value(argc, argv, &j, "-j", "--jobs",
                                       &missing))) {
            errno = 0;
            p.jobs = strtol(v, &end, 10);
            if (*end || end == v || p.jobs < 1 || errno == ERANGE) {
                cli_error("ab: -j needs a positive integer, not '%s'", v);
                goto done;
            }
        } else if (!missing && (v = cli_option_value(argc, argv, &j, NULL,
                                                     "--arm", &missing)))
            arm_opts[narm_opts++] = v;
        else if (!missing && (v = cli_option_value(argc, argv, &j, NULL,
                                                   "--seeds", &missing)))
            seeds = v;
        else if (!missing && (v = cli_option_value(argc, argv, &j, NULL,
                                                   "--sweep", &missing))) {
            char why[256];
            if (p.sweep_text) {
                cli_error("ab: --sweep is given twice ('%s', '%s'): one "
                          "key at a time", p.sweep_text, v);
                goto done;
            }
            p.sweep_text = v;
            if (ab_sweep_parse(v, &p.sweep, why, sizeof why) != 0) {
                cli_error("ab: --sweep %s", why);
                goto done;
            }
        }
        else if (missing) {
            cli_error("ab: option '%s' needs a value (try `nde ab --help`)",
                      arg);
            goto done;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            cli_error("ab: unknown option '%s' (try `nde ab --help`)", arg);
            goto done;
        } else if (config) {
            cli_error("ab: more than one config file ('%s', '%s')", config,
                      arg);
            goto done;
        } else
            config = arg;
    }
    if (!config) {
        cli_error("ab: no config file given (try `nde ab --help`)");
        goto done;
    }
    if (!(ctx = nde_ctx_create())) {
        cli_error("out of memory");
        code = CLI_EXIT_FAILURE;
        goto done;
    }
    if (seeds && parse_seeds(seeds, &p.seeds, &p.nseeds) != 0)
        goto done;
    if ((code = read_ab_config(&p, config, seeds != NULL, ctx)) != 0)
        goto done;
    code = CLI_EXIT_USAGE;
    for (i = 0; i < narm_opts; i++)
        if (parse_arm_option(&p, arm_opts[i]) != 0)
            goto done;
    if (p.nseeds == 0 || p.narms == 0) {
        cli_error("%s: no %s", config, p.nseeds ? "arms ([arm.NAME])"
                                                : "seeds");
        goto done;
    }
    for (s = 0; s < p.nseeds; s++)
        for (k = 0; k < s; k++)
            if (p.seeds[k] == p.seeds[s]) {
                cli_error("%s: seed %ld is listed twice", config, p.seeds[s]);
                goto done;
            }
    if (!find_arm(&p, p.baseline)) {
        cli_error("%s: [ab] baseline: '%s' names no arm", config,
                  p.baseline);
        goto done;
    }
    if (p.sweep.key && (code = plan_sweep(&p, ctx)) != CLI_EXIT_OK)
        goto done;
    if ((code = validate_arms(&p, ctx)) != CLI_EXIT_OK)
        goto done;

    if (dir)
        p.dir = xstrdup(dir);
    else {
        size_t n = strlen(config);
        p.dir = n > 4 && strcmp(config + n - 4, ".ini") == 0
                    ? strndup(config, n - 4)
                    : xprintf("%s.ab", config);
    }
    /* under mpirun: rank 0 holds the lock for all */
    if (cli_rank() == 0 && (code = lock_dir(&p)) != CLI_EXIT_OK)
        goto done;
    agreed = 1;
    if ((code = cli_comm_agree(CLI_EXIT_OK)) != CLI_EXIT_OK)
        goto done;
    for (i = 0; i < p.narms; i++) {
        ab_arm *a = &p.arms[i];
        a->runs = xrealloc(NULL, p.nseeds * sizeof *a->runs);
        memset(a->runs, 0, p.nseeds * sizeof *a->runs);
        for (s = 0; s < p.nseeds; s++) {
            a->runs[s].seed = p.seeds[s];
            a->runs[s].dir =
                xprintf("%s/runs/%s/seed%ld", p.dir, a->name, p.seeds[s]);
            a->runs[s].tmp = xprintf("%s.tmp", a->runs[s].dir);
        }
    }
    load_runs(&p, fresh);
    if (cli_ranks() > 1) {
        /* every rank has seen the same runs done before any starts */
        if ((code = cli_comm_agree(CLI_EXIT_OK)) != CLI_EXIT_OK)
            goto done;
        share_runs(&p);
    }
    code = cli_comm_agree(run_all(&p));
    if (code != CLI_EXIT_OK || cli_rank() > 0)
        goto done;
    gather_runs(&p);
    print_table(&p);
    for (i = 0; i < p.narms; i++)
        for (s = 0; s < p.nseeds; s++)
            failed += p.arms[i].runs[s].state != RUN_OK;
    if (failed)
        cli_error("ab: %d of %zu runs failed (listed above and in "
                  "%s/ab.json)", failed, p.narms * p.nseeds, p.dir);
    if (p.sweep.key) {
        sweep_report_make(&p, &sweep);
        print_sweep(&p, &sweep);
    }
    if (write_json(&p, config, p.sweep.key ? &sweep : NULL) != 0 ||
        make_plots(&p) != 0 || (p.sweep.key && plot_frontier(&p, &sweep)) ||
        density_plots(&p) != CLI_EXIT_OK || failed)
        code = CLI_EXIT_FAILURE;
done:
    if (!agreed)
        code = cli_comm_agree(code);
    sweep_report_free(&sweep);
    free(arm_opts);
    free_plan(&p);
    nde_ctx_destroy(ctx);
    return code;
}
