/*
 * ab_plot.c - the plots of `nde ab`, drawn with PLplot.
 *
 * loss:    training loss against iteration, one colour per arm: the line is
 *          the mean over seeds, the band spans the minimum to the maximum
 *          over seeds (min-max rather than +-1 sd: with 2-5 seeds an sd band
 *          says little, and mean - sd can be negative, which a log axis
 *          cannot show). log10 scale.
 * nfe:     training NFE per iteration (nfe_forward + nfe_backward), same
 *          style, linear scale.
 * predict: one point per finished run (summary.json): prediction NFE and
 *          prediction time against test loss, the baseline arm as squares.
 * frontier (nde ab --sweep, from the caller's numbers): per swept value
 *          the mean cost against the mean quality, min-max over seeds as
 *          error bars, labelled with the value, joined in sweep order;
 *          the baseline a square, the recommended value ringed.
 *
 * With more than CURVE_MAX_POINTS iterations, each run's values are first
 * averaged over windows of ceil(iterations / CURVE_MAX_POINTS) consecutive
 * iterations (the plot's subtitle states the window); the mean and band are
 * then taken over the seeds' window averages.
 *
 * PNG through the pngcairo device; SVG through PLplot's own svg device
 * rather than svgcairo, because cairo turns text into glyph outlines and
 * the legend's arm names should stay text (searchable, testable).
 *
 * PLplot keeps global state, may print and may call exit(): its abort
 * handler collects the message instead of printing, its exit handler jumps
 * back here, and each file is one stream from plinit to plend. Each file is
 * drawn under a temporary name in DIR and renamed into place.
 */
#include "ab_plot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <plplot.h>

#define CURVE_MAX_POINTS 100
#define PAGE_WIDTH 1000
#define PAGE_HEIGHT 650
#define CHAR_SCALE 0.7      /* of PLplot's default, for this page size */

/* cmap0 entries: background, foreground, grid, then the arm colours and
 * their translucent band versions. */
enum { COL_BG = 0, COL_FG = 1, COL_GRID = 2, COL_ARM = 3 };
#define NPALETTE 8
#define COL_BAND (COL_ARM + NPALETTE)
#define NCMAP0 (COL_BAND + NPALETTE)

/* Point markers, drawn as text (both devices render Unicode). */
#define MARK_ARM "\u25cf"          /* black circle */
#define MARK_BASELINE "\u25a0"     /* black square */
#define MARK_RING "\u25ef"         /* large circle: the recommended point */

/* Okabe & Ito (2008), "Color Universal Design": colours told apart also by
 * colour-blind readers (their yellow replaced by a dark grey, which reads
 * on white). */
static const int palette[NPALETTE][3] = {
    {0, 114, 178},   {213, 94, 0},    {0, 158, 115},   {204, 121, 167},
    {230, 159, 0},   {86, 180, 233},  {90, 90, 90},    {140, 80, 20},
};

/* ---------------------------------------------------------------- data */

typedef struct train_point {
    double iteration, loss, nfe;
} train_point;

typedef struct run_data {
    train_point *pts;
    size_t n, cap;
    int have_summary;
    double test_loss, predict_nfe, predict_time_s;
} run_data;

typedef struct curve {
    double *x, *mean, *lo, *hi;  /* lo/hi: the band; log10 for the loss */
    size_t n;
} curve;

typedef struct arm_data {
    const char *name;
    run_data *runs;     /* nseeds, pts == NULL for a run without metrics */
    size_t nusable;     /* runs with metrics or a summary */
    int baseline;
    curve loss, nfe;
    double *pred_loss, *pred_nfe, *pred_time;  /* finished runs' points */
    size_t npred;
} arm_data;

typedef struct plot_data {
    arm_data *arms;
    size_t narms, nseeds;
    double window;      /* iterations per averaging window */
    int loss_logy;      /* log axes where the values span a decade or */
    int predict_logx;   /* more (fewer would leave no labelled tick)  */
    double time_unit;   /* prediction times are plotted in s, ms or us */
} plot_data;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------ flat JSON objects */

enum {
    KEY_ITERATION, KEY_LOSS, KEY_NFE_FORWARD, KEY_NFE_BACKWARD,
    KEY_TEST_LOSS, KEY_PREDICT_NFE, KEY_PREDICT_TIME_S, NKEYS
};

static const char *const key_names[NKEYS] = {
    "iteration", "loss", "nfe_forward", "nfe_backward",
    "test_loss", "predict_nfe", "predict_time_s",
};

typedef struct json_record {
    double v[NKEYS];    /* NaN unless a finite number was given */
    unsigned has;       /* bit k: key k present (whatever its value) */
} json_record;

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* p at the opening quote; returns the position after the closing one. */
static const char *skip_string(const char *p)
{
    for (p++; *p; p++) {
        if (*p == '\\') {
            if (!*++p)
                return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* Any JSON value, nested ones by bracket depth. */
static const char *skip_value(const char *p)
{
    int depth = 0;

    do {
        if (*p == '"') {
            if (!(p = skip_string(p)))
                return NULL;
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (depth == 0)
                return p;   /* end of the enclosing object */
            depth--;
        } else if (*p == ',' && depth == 0) {
            return p;
        } else if (*p == '\0') {
            return depth == 0 ? p : NULL;
        }
        p++;
    } while (depth > 0 || (*p != ',' && *p != '}' && *p != ']' && *p));
    return p;
}

/* One flat object; only the keys above are read. 0, or -1 if malformed. */
static int parse_object(const char *p, json_record *r)
{
    r->has = 0;
    for (int k = 0; k < NKEYS; k++)
        r->v[k] = NAN;
    p = skip_ws(p);
    if (*p++ != '{')
        return -1;
    p = skip_ws(p);
    if (*p == '}')
        return 0;
    for (;;) {
        const char *key, *end;
        size_t len;
        int k;

        if (*p != '"' || !(end = skip_string(p)))
            return -1;
        key = p + 1;
        len = (size_t)(end - 1 - key);
        p = skip_ws(end);
        if (*p++ != ':')
            return -1;
        p = skip_ws(p);
        for (k = 0; k < NKEYS; k++)
            if (strlen(key_names[k]) == len && !memcmp(key, key_names[k], len))
                break;
        if (k < NKEYS && (*p == '-' || (*p >= '0' && *p <= '9'))) {
            char *num_end;
            double x = strtod(p, &num_end);

            if (num_end == p)
                return -1;
            r->v[k] = isfinite(x) ? x : NAN;
            p = num_end;
        } else if (!(p = skip_value(p))) {
            return -1;
        }
        if (k < NKEYS)
            r->has |= 1u << k;
        p = skip_ws(p);
        if (*p == ',') {
            p = skip_ws(p + 1);
            continue;
        }
        return *p == '}' ? 0 : -1;
    }
}

/* --------------------------------------------------------- reading */

/* Training lines of a metrics file. 1 read, 0 no such file, -1 error. */
static int read_metrics(const char *path, run_data *run, char *err,
                        size_t errlen)
{
    FILE *fp = fopen(path, "r");
    char *line = NULL;
    size_t linecap = 0;
    json_record r;

    if (!fp) {
        if (errno == ENOENT)
            return 0;
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (getline(&line, &linecap, fp) >= 0) {
        /* A half-written last line of an interrupted run is skipped. */
        if (parse_object(line, &r) != 0)
            continue;
        if (!(r.has & (1u << KEY_LOSS | 1u << KEY_NFE_FORWARD)))
            continue;
        if (!isfinite(r.v[KEY_ITERATION]))
            continue;
        if (run->n == run->cap) {
            size_t cap = run->cap ? 2 * run->cap : 256;
            train_point *p = realloc(run->pts, cap * sizeof *p);

            if (!p) {
                set_err(err, errlen, "%s: out of memory", path);
                free(line);
                fclose(fp);
                return -1;
            }
            run->pts = p;
            run->cap = cap;
        }
        run->pts[run->n].iteration = r.v[KEY_ITERATION];
        run->pts[run->n].loss = r.v[KEY_LOSS];
        /* A NaN backward count (a line without it) leaves the NFE NaN. */
        run->pts[run->n].nfe = r.v[KEY_NFE_FORWARD] + r.v[KEY_NFE_BACKWARD];
        run->n++;
    }
    free(line);
    if (ferror(fp)) {
        set_err(err, errlen, "%s: read error", path);
        fclose(fp);
        return -1;
    }
    fclose(fp);
    if (!run->pts) {
        /* Present but without training lines: mark it as read. */
        if (!(run->pts = malloc(sizeof *run->pts))) {
            set_err(err, errlen, "%s: out of memory", path);
            return -1;
        }
        run->cap = 1;
    }
    return 1;
}

/* The prediction numbers of summary.json. 1 read, 0 absent or unusable,
 * -1 error. */
static int read_summary(const char *path, run_data *run, char *err,
                        size_t errlen)
{
    FILE *fp = fopen(path, "r");
    char *text = NULL;
    size_t len = 0, cap = 0;
    json_record r;
    int rc = 0;

    if (!fp) {
        if (errno == ENOENT)
            return 0;
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t got;

        if (cap - len < 4096) {
            char *t = realloc(text, cap + 65536);

            if (!t) {
                set_err(err, errlen, "%s: out of memory", path);
                rc = -1;
                goto done;
            }
            text = t;
            cap += 65536;
        }
        got = fread(text + len, 1, cap - len - 1, fp);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(fp)) {
        set_err(err, errlen, "%s: read error", path);
        rc = -1;
        goto done;
    }
    text[len] = '\0';
    if (parse_object(text, &r) == 0) {
        run->test_loss = r.v[KEY_TEST_LOSS];
        run->predict_nfe = r.v[KEY_PREDICT_NFE];
        run->predict_time_s = r.v[KEY_PREDICT_TIME_S];
        run->have_summary = 1;
        rc = 1;
    }
done:
    free(text);
    fclose(fp);
    return rc;
}

/* ---------------------------------------------------------- curves */

/* At least a decade between the smallest and largest positive values. */
static int spans_decade(double lo, double hi)
{
    return lo > 0.0 && isfinite(hi) && hi >= 10.0 * lo;
}

static void curve_log10(curve *c)
{
    for (size_t k = 0; k < c->n; k++) {
        c->mean[k] = log10(c->mean[k]);
        c->lo[k] = log10(c->lo[k]);
        c->hi[k] = log10(c->hi[k]);
    }
}

static void curve_free(curve *c)
{
    free(c->x);
    free(c->mean);
    free(c->lo);
    free(c->hi);
    memset(c, 0, sizeof *c);
}

/* The arm's curve: per run, window averages of the finite values (positive
 * ones only if positive_only); per window, mean/min/max over the runs that
 * have one. scratch holds 2 * nwin doubles. 0, or -1 out of memory. */
static int curve_build(curve *c, const arm_data *a, size_t nseeds,
                       int use_loss, int positive_only, double imin, double window,
                       size_t nwin, double *scratch)
{
    double *sum = scratch, *cnt = scratch + nwin;
    double *acc, *lo, *hi, *nacc;

    memset(c, 0, sizeof *c);
    c->x = malloc(nwin * sizeof(double));
    c->mean = malloc(nwin * sizeof(double));
    c->lo = malloc(nwin * sizeof(double));
    c->hi = malloc(nwin * sizeof(double));
    nacc = calloc(nwin, sizeof(double));
    if (!c->x || !c->mean || !c->lo || !c->hi || !nacc) {
        free(nacc);
        curve_free(c);
        return -1;
    }
    acc = c->mean;
    lo = c->lo;
    hi = c->hi;
    for (size_t k = 0; k < nwin; k++) {
        acc[k] = 0.0;
        lo[k] = INFINITY;
        hi[k] = -INFINITY;
    }
    for (size_t s = 0; s < nseeds; s++) {
        const run_data *run = &a->runs[s];

        memset(scratch, 0, 2 * nwin * sizeof(double));
        for (size_t i = 0; i < run->n; i++) {
            double v = use_loss ? run->pts[i].loss : run->pts[i].nfe;
            double k = floor((run->pts[i].iteration - imin) / window);

            if (!isfinite(v) || (positive_only && v <= 0.0) || !(k >= 0.0))
                continue;
            if (k > (double)(nwin - 1))
                k = (double)(nwin - 1);
            sum[(size_t)k] += v;
            cnt[(size_t)k] += 1.0;
        }
        for (size_t k = 0; k < nwin; k++) {
            double m;

            if (cnt[k] == 0.0)
                continue;
            m = sum[k] / cnt[k];
            acc[k] += m;
            nacc[k] += 1.0;
            lo[k] = fmin(lo[k], m);
            hi[k] = fmax(hi[k], m);
        }
    }
    /* Compact to the windows that have data (in place: n <= k). */
    for (size_t k = 0; k < nwin; k++) {
        double m;

        if (nacc[k] == 0.0)
            continue;
        m = acc[k] / nacc[k];
        c->x[c->n] = imin + (double)k * window + (window - 1.0) / 2.0;
        c->mean[c->n] = m;
        c->lo[c->n] = lo[k];
        c->hi[c->n] = hi[k];
        c->n++;
    }
    free(nacc);
    return 0;
}

/* ---------------------------------------------------------- PLplot */

static jmp_buf plplot_jump;
static char plplot_message[512];

/* plabort: keep the first message (PLplot would print it). */
static void on_plabort(PLCHAR_VECTOR msg)
{
    if (plplot_message[0] == '\0')
        snprintf(plplot_message, sizeof plplot_message, "%s", msg);
}

/* plexit: PLplot would print, end and exit(); jump back instead. */
static int on_plexit(PLCHAR_VECTOR msg)
{
    if (plplot_message[0] == '\0')
        snprintf(plplot_message, sizeof plplot_message, "%s", msg);
    longjmp(plplot_jump, 1);
    return 1;
}

static int have_device(const char *name)
{
    const char **menu, **devs;
    int n = 64;
    int found = 0;

    menu = malloc((size_t)n * sizeof *menu);
    devs = malloc((size_t)n * sizeof *devs);
    if (menu && devs) {
        plgDevs(&menu, &devs, &n);
        for (int i = 0; i < n; i++)
            if (!strcmp(devs[i], name))
                found = 1;
    }
    free(menu);
    free(devs);
    return found;
}

static void setup_colours(void)
{
    plscmap0n(NCMAP0);
    plscol0a(COL_BG, 255, 255, 255, 1.0);
    plscol0a(COL_FG, 25, 25, 25, 1.0);
    plscol0a(COL_GRID, 215, 215, 215, 1.0);
    for (int i = 0; i < NPALETTE; i++) {
        plscol0a(COL_ARM + i, palette[i][0], palette[i][1], palette[i][2],
                 1.0);
        plscol0a(COL_BAND + i, palette[i][0], palette[i][1], palette[i][2],
                 0.18);
    }
}

static void pad_range(double *lo, double *hi, double frac)
{
    double span;

    if (!isfinite(*lo) || !isfinite(*hi)) {
        *lo = 0.0;
        *hi = 1.0;
        return;
    }
    span = *hi - *lo;
    if (span <= 1e-12 * fmax(1.0, fabs(*hi))) {
        span = fmax(1.0, fabs(*hi) * 0.1);
        *lo -= span / 2.0;
        *hi += span / 2.0;
        return;
    }
    *lo -= frac * span;
    *hi += frac * span;
}

/* Legend outside to the right of the current viewport. */
static void draw_legend(const plot_data *pd, int symbols)
{
    const size_t n = pd->narms;
    PLINT opt[n], text_col[n], box_col[n], box_pat[n], line_col[n];
    PLINT line_sty[n], sym_col[n], sym_num[n];
    PLFLT box_scale[n], box_lw[n], line_w[n], sym_scale[n];
    char labels[n][96];
    const char *text[n], *sym[n];
    PLFLT w, h;

    for (size_t i = 0; i < n; i++) {
        const arm_data *a = &pd->arms[i];
        int usable = symbols ? a->npred > 0 : a->loss.n + a->nfe.n > 0;
        PLINT col = COL_ARM + (PLINT)(i % NPALETTE);

        opt[i] = !usable ? PL_LEGEND_NONE
                 : symbols ? PL_LEGEND_SYMBOL : PL_LEGEND_LINE;
        snprintf(labels[i], sizeof labels[i], "%s%s%s", a->name,
                 a->baseline ? " (baseline)" : "",
                 usable ? "" : " (no usable run)");
        text[i] = labels[i];
        text_col[i] = COL_FG;
        box_col[i] = col;
        box_pat[i] = 0;
        box_scale[i] = 1.0;
        box_lw[i] = 1.0;
        line_col[i] = col;
        line_sty[i] = 1 + (PLINT)((i / NPALETTE) % 8);
        line_w[i] = a->baseline ? 4.5 : 2.0;
        sym_col[i] = col;
        sym_scale[i] = a->baseline ? 0.8 : 0.6;
        sym_num[i] = 1;
        sym[i] = a->baseline ? MARK_BASELINE : MARK_ARM;
    }
    pllegend(&w, &h, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
             PL_POSITION_RIGHT | PL_POSITION_OUTSIDE, 0.03, 0.0, 0.06, COL_BG, COL_FG, 1, 0, 0, (PLINT)n, opt,
             1.0, 0.6, 2.0, 0.0, text_col, text, box_col, box_pat, box_scale,
             box_lw, line_col, line_sty, line_w, sym_col, sym_scale, sym_num,
             sym);
    plschr(0.0, CHAR_SCALE);
}

typedef struct curve_plot {
    const plot_data *pd;
    int use_loss;
} curve_plot;

static void draw_curves(const void *arg)
{
    const curve_plot *cp = arg;
    const plot_data *pd = cp->pd;
    const int logy = cp->use_loss && pd->loss_logy;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY,
           ymax = -INFINITY;
    char subtitle[160];

    for (size_t i = 0; i < pd->narms; i++) {
        const curve *c = cp->use_loss ? &pd->arms[i].loss : &pd->arms[i].nfe;

        for (size_t k = 0; k < c->n; k++) {
            xmin = fmin(xmin, c->x[k]);
            xmax = fmax(xmax, c->x[k]);
            ymin = fmin(ymin, c->lo[k]);
            ymax = fmax(ymax, c->hi[k]);
        }
    }
    pad_range(&xmin, &xmax, 0.0);
    pad_range(&ymin, &ymax, 0.05);
    if (!logy && ymin < 0.0 && ymax - ymin > 0.0) {
        for (size_t i = 0; i < pd->narms; i++) {
            const curve *c = cp->use_loss ? &pd->arms[i].loss
                                          : &pd->arms[i].nfe;
            for (size_t k = 0; k < c->n; k++)
                if (c->lo[k] < 0.0)
                    goto negative;
        }
        ymin = 0.0;     /* counts and losses start at zero */
    negative:;
    }

    pladv(0);
    plvpor(0.08, 0.72, 0.10, 0.88);
    plwind(xmin, xmax, ymin, ymax);
    plcol0(COL_GRID);
    plwidth(0.5);
    plbox("g", 0.0, 0, logy ? "gl" : "g", 0.0, 0);
    plwidth(1.0);
    for (size_t i = 0; i < pd->narms; i++) {
        const curve *c = cp->use_loss ? &pd->arms[i].loss : &pd->arms[i].nfe;
        PLFLT bx[2 * CURVE_MAX_POINTS], by[2 * CURVE_MAX_POINTS];

        if (c->n < 2)
            continue;
        for (size_t k = 0; k < c->n; k++) {
            bx[k] = c->x[k];
            by[k] = c->hi[k];
            bx[2 * c->n - 1 - k] = c->x[k];
            by[2 * c->n - 1 - k] = c->lo[k];
        }
        plcol0(COL_BAND + (PLINT)(i % NPALETTE));
        plfill((PLINT)(2 * c->n), bx, by);
    }
    /* Lines over all bands; the baseline first and wider, so an arm that
     * coincides with it leaves it visible at the edges. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < pd->narms; i++) {
            const curve *c = cp->use_loss ? &pd->arms[i].loss
                                          : &pd->arms[i].nfe;

            if (c->n == 0 || pd->arms[i].baseline != (pass == 0))
                continue;
            plcol0(COL_ARM + (PLINT)(i % NPALETTE));
            pllsty(1 + (PLINT)((i / NPALETTE) % 8));
            plwidth(pass == 0 ? 4.5 : 2.0);
            if (c->n > 1) {
                plline((PLINT)c->n, c->x, c->mean);
            } else {
                /* One window: a point with its band as an error bar. */
                plstring(1, c->x, c->mean, MARK_ARM);
                plerry(1, c->x, c->lo, c->hi);
            }
            plwidth(1.0);
            pllsty(1);
        }
    plcol0(COL_FG);
    plbox("bcnst", 0.0, 0, logy ? "bcnstvl" : "bcnstv", 0.0, 0);
    pllab("iteration",
          !cp->use_loss ? "training NFE per iteration (forward + backward)"
          : logy ? "training loss (log scale)" : "training loss",
          cp->use_loss ? "Training loss per arm" : "Training NFE per arm");
    if (pd->window > 1.0)
        snprintf(subtitle, sizeof subtitle,
                 "line: mean over seeds, band: min-max over seeds; "
                 "windows of %.0f iterations averaged", pd->window);
    else
        snprintf(subtitle, sizeof subtitle,
                 "line: mean over seeds, band: min-max over seeds");
    plschr(0.0, 0.8 * CHAR_SCALE);
    plmtex("t", 0.8, 0.5, 0.5, subtitle);
    plschr(0.0, CHAR_SCALE);
    draw_legend(pd, 0);
}

/* One panel of the predict plot: y (NFE or time) against test loss. */
static void predict_panel(const plot_data *pd, double vx0, double vx1,
                          int time_axis)
{
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY,
           ymax = -INFINITY;

    for (size_t i = 0; i < pd->narms; i++) {
        const arm_data *a = &pd->arms[i];

        for (size_t k = 0; k < a->npred; k++) {
            double y = time_axis ? a->pred_time[k] / pd->time_unit
                                 : a->pred_nfe[k];

            xmin = fmin(xmin, a->pred_loss[k]);
            xmax = fmax(xmax, a->pred_loss[k]);
            ymin = fmin(ymin, y);
            ymax = fmax(ymax, y);
        }
    }
    pad_range(&xmin, &xmax, 0.06);
    pad_range(&ymin, &ymax, 0.08);
    if (ymin < 0.0)
        ymin = 0.0;
    plvpor(vx0, vx1, 0.11, 0.88);
    plwind(xmin, xmax, ymin, ymax);
    plcol0(COL_GRID);
    plwidth(0.5);
    plbox(pd->predict_logx ? "gl" : "g", 0.0, 0, "g", 0.0, 0);
    plwidth(1.0);
    for (size_t i = 0; i < pd->narms; i++) {
        const arm_data *a = &pd->arms[i];
        PLFLT y[a->npred ? a->npred : 1];

        if (a->npred == 0)
            continue;
        for (size_t k = 0; k < a->npred; k++)
            y[k] = time_axis ? a->pred_time[k] / pd->time_unit
                             : a->pred_nfe[k];
        plcol0(COL_ARM + (PLINT)(i % NPALETTE));
        plschr(0.0, (a->baseline ? 1.3 : 1.0) * CHAR_SCALE);
        plstring((PLINT)a->npred, a->pred_loss, y,
                 a->baseline ? MARK_BASELINE : MARK_ARM);
        plschr(0.0, CHAR_SCALE);
    }
    plcol0(COL_FG);
    plbox(pd->predict_logx ? "bcnstl" : "bcnst", 0.0, 0, "bcnstv", 0.0, 0);
    pllab(pd->predict_logx ? "test loss (log scale)" : "test loss",
          !time_axis ? "prediction NFE"
          : pd->time_unit == 1.0  ? "prediction time (s)"
          : pd->time_unit == 1e-3 ? "prediction time (ms)"
                                  : "prediction time (\u00b5s)",
          time_axis ? "Prediction time vs test loss"
                    : "Prediction NFE vs test loss");
}

static void draw_predict(const void *arg)
{
    const plot_data *pd = arg;

    pladv(0);
    predict_panel(pd, 0.07, 0.37, 0);
    predict_panel(pd, 0.45, 0.75, 1);
    draw_legend(pd, 1);
}

/* Draw one file with the device; 0, or -1 with plplot_message set. */
static int run_plplot(const char *device, const char *path,
                      void (*draw)(const void *), const void *arg)
{
    plplot_message[0] = '\0';
    plsabort(on_plabort);
    plsexit(on_plexit);
    if (setjmp(plplot_jump) != 0) {
        plsexit(NULL);
        plend();
        plsabort(NULL);
        return -1;
    }
    plsdev(device);
    plsfnam(path);
    plspage(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT, 0, 0);
    plspause(0);
    setup_colours();
    plinit();
    plschr(0.0, CHAR_SCALE);
    draw(arg);
    plend();
    plsexit(NULL);
    plsabort(NULL);
    return plplot_message[0] ? -1 : 0;
}

/* Draw dir/base.ext under a temporary name and rename it into place. */
static int render(const char *dir, const char *base, const char *ext,
                  const char *device, void (*draw)(const void *),
                  const void *arg, char *err, size_t errlen)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    struct stat st;
    mode_t mask;
    int fd;

    if (snprintf(path, sizeof path, "%s/%s.%s", dir, base, ext)
            >= (int)sizeof path
        || snprintf(tmp, sizeof tmp, "%s/.%s.%s.XXXXXX", dir, base, ext)
            >= (int)sizeof tmp) {
        set_err(err, errlen, "%s: path too long", dir);
        return -1;
    }
    if ((fd = mkstemp(tmp)) < 0) {
        set_err(err, errlen, "%s: cannot create a temporary file: %s", path,
                strerror(errno));
        return -1;
    }
    /* mkstemp makes 0600; give the file the mode a plain fopen would. */
    mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) {
        set_err(err, errlen, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (run_plplot(device, tmp, draw, arg) != 0) {
        set_err(err, errlen, "%s: PLplot (%s): %s", path, device,
                plplot_message);
        unlink(tmp);
        return -1;
    }
    if ((fd = open(tmp, O_RDONLY)) < 0 || fsync(fd) != 0
        || fstat(fd, &st) != 0) {
        set_err(err, errlen, "%s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (st.st_size == 0) {
        set_err(err, errlen, "%s: PLplot (%s) wrote no data", path, device);
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Every plot is written through both: PNG for viewing, SVG for text. */
static const char *const devices[2][2] = {
    {"pngcairo", "png"}, {"svg", "svg"},
};

/* 0 when PLplot has both devices, else -1 with a message about dir. */
static int check_devices(const char *dir, char *err, size_t errlen)
{
    for (int d = 0; d < 2; d++)
        if (!have_device(devices[d][0])) {
            set_err(err, errlen, "%s: PLplot has no %s device (install "
                    "plplot-driver-cairo)", dir, devices[d][0]);
            return -1;
        }
    return 0;
}

/* dir/base.png and dir/base.svg drawn by draw(arg). */
static int render_both(const char *dir, const char *base,
                       void (*draw)(const void *), const void *arg,
                       char *err, size_t errlen)
{
    for (int d = 0; d < 2; d++)
        if (render(dir, base, devices[d][1], devices[d][0], draw, arg, err,
                   errlen) != 0)
            return -1;
    return 0;
}

/* ------------------------------------------------------------- main */

static void free_arms(arm_data *arms, size_t narms, size_t nseeds)
{
    if (!arms)
        return;
    for (size_t i = 0; i < narms; i++) {
        if (arms[i].runs)
            for (size_t s = 0; s < nseeds; s++)
                free(arms[i].runs[s].pts);
        free(arms[i].runs);
        curve_free(&arms[i].loss);
        curve_free(&arms[i].nfe);
        free(arms[i].pred_loss);
        free(arms[i].pred_nfe);
        free(arms[i].pred_time);
    }
    free(arms);
}

static int load_arm(const char *dir, arm_data *a, const long *seeds,
                    size_t nseeds, char *err, size_t errlen)
{
    char path[PATH_MAX];

    if (!(a->runs = calloc(nseeds, sizeof *a->runs))
        || !(a->pred_loss = malloc(nseeds * sizeof(double)))
        || !(a->pred_nfe = malloc(nseeds * sizeof(double)))
        || !(a->pred_time = malloc(nseeds * sizeof(double)))) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    for (size_t s = 0; s < nseeds; s++) {
        run_data *run = &a->runs[s];
        int got_metrics, got_summary;

        if (snprintf(path, sizeof path, "%s/runs/%s/seed%ld/metrics.jsonl",
                     dir, a->name, seeds[s]) >= (int)sizeof path) {
            set_err(err, errlen, "%s: path too long", dir);
            return -1;
        }
        if ((got_metrics = read_metrics(path, run, err, errlen)) < 0)
            return -1;
        if (!got_metrics)
            continue;   /* not run (yet): skipped */
        strcpy(path + strlen(path) - strlen("metrics.jsonl"), "summary.json");
        if ((got_summary = read_summary(path, run, err, errlen)) < 0)
            return -1;
        a->nusable++;
        if (got_summary && isfinite(run->test_loss)
            && isfinite(run->predict_nfe) && isfinite(run->predict_time_s)) {
            a->pred_loss[a->npred] = run->test_loss;
            a->pred_nfe[a->npred] = run->predict_nfe;
            a->pred_time[a->npred] = run->predict_time_s;
            a->npred++;
        }
    }
    return 0;
}

int ab_plot(const char *dir, const char *const *arms, size_t narms,
            const long *seeds, size_t nseeds, const char *baseline,
            char *err, size_t errlen)
{
    plot_data pd = {0};
    double imin = INFINITY, imax = -INFINITY, span, *scratch = NULL;
    size_t nwin, nusable = 0;
    char runs_dir[PATH_MAX];
    struct stat st;
    int rc = -1;

    if (err && errlen)
        err[0] = '\0';
    if (snprintf(runs_dir, sizeof runs_dir, "%s/runs", dir)
        >= (int)sizeof runs_dir) {
        set_err(err, errlen, "%s: path too long", dir);
        return -1;
    }
    if (stat(dir, &st) != 0) {
        set_err(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s: not a directory", dir);
        return -1;
    }
    if (stat(runs_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s: no run directory", runs_dir);
        return -1;
    }
    if (!(pd.arms = calloc(narms ? narms : 1, sizeof *pd.arms))) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    pd.narms = narms;
    pd.nseeds = nseeds;
    for (size_t i = 0; i < narms; i++) {
        arm_data *a = &pd.arms[i];

        a->name = arms[i];
        a->baseline = baseline && !strcmp(baseline, arms[i]);
        if (load_arm(dir, a, seeds, nseeds, err, errlen) != 0)
            goto out;
        nusable += a->nusable;
        for (size_t s = 0; s < nseeds; s++)
            for (size_t k = 0; k < a->runs[s].n; k++) {
                imin = fmin(imin, a->runs[s].pts[k].iteration);
                imax = fmax(imax, a->runs[s].pts[k].iteration);
            }
    }
    if (nusable == 0) {
        set_err(err, errlen, "%s: no run has a metrics file "
                "(runs/ARM/seedN/metrics.jsonl) to plot", runs_dir);
        goto out;
    }

    if (!isfinite(imin)) {
        imin = imax = 0.0;
    }
    span = imax - imin + 1.0;
    pd.window = span <= CURVE_MAX_POINTS ? 1.0 : ceil(span / CURVE_MAX_POINTS);
    nwin = (size_t)ceil(span / pd.window);
    if (!(scratch = malloc(2 * nwin * sizeof(double)))) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    {
        double lo = INFINITY, hi = -INFINITY, tmax = 0.0;
        double plo = INFINITY, phi = -INFINITY;
        int nonpositive = 0;

        for (size_t i = 0; i < narms; i++) {
            arm_data *a = &pd.arms[i];

            if (curve_build(&a->loss, a, nseeds, 1, 1, imin, pd.window, nwin,
                            scratch) != 0
                || curve_build(&a->nfe, a, nseeds, 0, 0, imin, pd.window,
                               nwin, scratch) != 0) {
                set_err(err, errlen, "out of memory");
                goto out;
            }
            for (size_t k = 0; k < a->loss.n; k++) {
                lo = fmin(lo, a->loss.lo[k]);
                hi = fmax(hi, a->loss.hi[k]);
            }
            for (size_t k = 0; k < a->npred; k++) {
                plo = fmin(plo, a->pred_loss[k]);
                phi = fmax(phi, a->pred_loss[k]);
                tmax = fmax(tmax, a->pred_time[k]);
                nonpositive |= !(a->pred_loss[k] > 0.0);
            }
        }
        pd.loss_logy = spans_decade(lo, hi);
        pd.predict_logx = !nonpositive && spans_decade(plo, phi);
        pd.time_unit = tmax < 1e-3 ? 1e-6 : tmax < 1.0 ? 1e-3 : 1.0;
        for (size_t i = 0; i < narms; i++) {
            arm_data *a = &pd.arms[i];

            if (pd.loss_logy) {
                curve_log10(&a->loss);
            } else {
                /* Linear axis: non-positive losses count again. */
                curve_free(&a->loss);
                if (curve_build(&a->loss, a, nseeds, 1, 0, imin, pd.window,
                                nwin, scratch) != 0) {
                    set_err(err, errlen, "out of memory");
                    goto out;
                }
            }
            if (pd.predict_logx)
                for (size_t k = 0; k < a->npred; k++)
                    a->pred_loss[k] = log10(a->pred_loss[k]);
        }
    }

    {
        curve_plot loss = {&pd, 1}, nfe = {&pd, 0};

        if (check_devices(dir, err, errlen) != 0
            || render_both(dir, "loss", draw_curves, &loss, err, errlen) != 0
            || render_both(dir, "nfe", draw_curves, &nfe, err, errlen) != 0
            || render_both(dir, "predict", draw_predict, &pd, err, errlen)
                   != 0)
            goto out;
    }
    rc = 0;
out:
    free(scratch);
    free_arms(pd.arms, narms, nseeds);
    return rc;
}

/* ------------------------------------------------------------ frontier */

typedef struct frontier_data {
    ab_frontier_point *pts;  /* log10 already taken on a log axis */
    size_t n;
    const char *xname, *yname, *title;
    int logx, logy;
} frontier_data;

/* Points of the sweep closer than 1% of the ranges share one label. */
static int same_place(const ab_frontier_point *a, const ab_frontier_point *b,
                      double xspan, double yspan)
{
    return !a->baseline && !b->baseline && fabs(a->x - b->x) < 0.01 * xspan &&
           fabs(a->y - b->y) < 0.01 * yspan;
}

static void draw_frontier(const void *arg)
{
    const frontier_data *fd = arg;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY,
           ymax = -INFINITY, dx;
    PLFLT lx[fd->n ? fd->n : 1], ly[fd->n ? fd->n : 1];
    PLINT nl = 0;
    char xlab[160], ylab[160], label[512];

    for (size_t i = 0; i < fd->n; i++) {
        const ab_frontier_point *q = &fd->pts[i];
        xmin = fmin(xmin, fmin(q->xlo, q->x));
        xmax = fmax(xmax, fmax(q->xhi, q->x));
        ymin = fmin(ymin, fmin(q->ylo, q->y));
        ymax = fmax(ymax, fmax(q->yhi, q->y));
    }
    pad_range(&xmin, &xmax, 0.12);
    pad_range(&ymin, &ymax, 0.08);
    dx = 0.012 * (xmax - xmin);
    pladv(0);
    plvpor(0.10, 0.95, 0.11, 0.86);
    plwind(xmin, xmax, ymin, ymax);
    plcol0(COL_GRID);
    plwidth(0.5);
    plbox(fd->logx ? "gl" : "g", 0.0, 0, fd->logy ? "gl" : "g", 0.0, 0);
    plwidth(1.0);
    for (size_t i = 0; i < fd->n; i++)
        if (!fd->pts[i].baseline) {
            lx[nl] = fd->pts[i].x;
            ly[nl++] = fd->pts[i].y;
        }
    plcol0(COL_ARM);
    if (nl > 1)
        plline(nl, lx, ly);
    for (size_t i = 0; i < fd->n; i++) {
        const ab_frontier_point *q = &fd->pts[i];
        PLFLT x = q->x, y = q->y, xlo = q->xlo, xhi = q->xhi, ylo = q->ylo,
              yhi = q->yhi;

        plcol0(q->baseline ? COL_ARM + 1 : COL_ARM);
        plerrx(1, &xlo, &xhi, &y);
        plerry(1, &x, &ylo, &yhi);
        plschr(0.0, (q->baseline ? 1.3 : 1.0) * CHAR_SCALE);
        plstring(1, &x, &y, q->baseline ? MARK_BASELINE : MARK_ARM);
        if (q->recommended) {
            plcol0(COL_ARM + 2);
            plschr(0.0, 2.4 * CHAR_SCALE);
            plstring(1, &x, &y, MARK_RING);
        }
        plschr(0.0, CHAR_SCALE);
        plcol0(COL_FG);
        /* the baseline's label on the left: the smallest values sit
         * next to it */
        if (q->baseline) {
            plptex(x - dx, y, 1.0, 0.0, 1.0, q->label);
            continue;
        }
        label[0] = '\0';
        for (size_t k = 0; k < fd->n; k++) {
            if (!same_place(q, &fd->pts[k], xmax - xmin, ymax - ymin))
                continue;
            if (k < i)
                break;  /* labelled with an earlier point */
            snprintf(label + strlen(label), sizeof label - strlen(label),
                     "%s%s", label[0] ? ", " : "", fd->pts[k].label);
        }
        if (label[0])
            plptex(x + dx, y, 1.0, 0.0, 0.0, label);
    }
    plcol0(COL_FG);
    plbox(fd->logx ? "bcnstl" : "bcnst", 0.0, 0,
          fd->logy ? "bcnstvl" : "bcnstv", 0.0, 0);
    snprintf(xlab, sizeof xlab, "%s%s", fd->xname,
             fd->logx ? " (log scale)" : "");
    snprintf(ylab, sizeof ylab, "%s%s", fd->yname,
             fd->logy ? " (log scale)" : "");
    pllab(xlab, ylab, "Sweep frontier");
    plschr(0.0, 0.8 * CHAR_SCALE);
    plmtex("t", 0.8, 0.5, 0.5, fd->title);
    plschr(0.0, CHAR_SCALE);
}

int ab_plot_frontier(const char *dir, const ab_frontier_point *pts,
                     size_t n, const char *xname, const char *yname,
                     const char *title, char *err, size_t errlen)
{
    frontier_data fd = {NULL, 0, xname, yname, title, 0, 0};
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int rc = -1, xnonpos = 0, ynonpos = 0;

    if (err && errlen)
        err[0] = '\0';
    if (!(fd.pts = malloc((n ? n : 1) * sizeof *fd.pts))) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const ab_frontier_point *q = &pts[i];
        if (!isfinite(q->x) || !isfinite(q->y))
            continue;
        fd.pts[fd.n++] = *q;
        xlo = fmin(xlo, q->xlo);
        xhi = fmax(xhi, q->xhi);
        ylo = fmin(ylo, q->ylo);
        yhi = fmax(yhi, q->yhi);
        xnonpos |= !(q->xlo > 0.0);
        ynonpos |= !(q->ylo > 0.0);
    }
    if (fd.n == 0) {
        set_err(err, errlen, "%s: no swept value has a finite %s and %s "
                "to plot", dir, xname, yname);
        goto out;
    }
    fd.logx = !xnonpos && spans_decade(xlo, xhi);
    fd.logy = !ynonpos && spans_decade(ylo, yhi);
    for (size_t i = 0; i < fd.n; i++) {
        ab_frontier_point *q = &fd.pts[i];
        if (fd.logx) {
            q->x = log10(q->x);
            q->xlo = log10(q->xlo);
            q->xhi = log10(q->xhi);
        }
        if (fd.logy) {
            q->y = log10(q->y);
            q->ylo = log10(q->ylo);
            q->yhi = log10(q->yhi);
        }
    }
    if (check_devices(dir, err, errlen) != 0
        || render_both(dir, "frontier", draw_frontier, &fd, err, errlen)
               != 0)
        goto out;
    rc = 0;
out:
    free(fd.pts);
    return rc;
}

/* ---------------------------------------------------------------- flow */

/* Each path a line coloured by its shade (cmap1: blue to orange), its
 * start a dot, on axes of equal scale. */
static void draw_flow(const void *arg)
{
    const ab_flow *fl = arg;
    const size_t n = fl->n, T = fl->nsave, D = fl->dim;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY,
           ymax = -INFINITY;
    /* cmap1 from the palette's blue (shade 0) to its orange (1) */
    static const PLFLT pos[2] = {0.0, 1.0};
    static const PLFLT red[2] = {0 / 255.0, 213 / 255.0};
    static const PLFLT green[2] = {114 / 255.0, 94 / 255.0};
    static const PLFLT blue[2] = {178 / 255.0, 0 / 255.0};
    PLFLT lx[T], ly[T];

    plscmap1n(256);
    plscmap1l(1, 2, pos, red, green, blue, NULL);
    for (size_t k = 0; k < T * n; k++) {
        xmin = fmin(xmin, fl->y[k * D + fl->sx]);
        xmax = fmax(xmax, fl->y[k * D + fl->sx]);
        ymin = fmin(ymin, fl->y[k * D + fl->sy]);
        ymax = fmax(ymax, fl->y[k * D + fl->sy]);
    }
    pad_range(&xmin, &xmax, 0.04);
    pad_range(&ymin, &ymax, 0.04);
    pladv(0);
    plvpor(0.08, 0.92, 0.10, 0.88);
    plwind(xmin, xmax, ymin, ymax);
    plvasp((ymax - ymin) / (xmax - xmin));
    plwind(xmin, xmax, ymin, ymax);
    plcol0(COL_GRID);
    plwidth(0.5);
    plbox("g", 0.0, 0, "g", 0.0, 0);
    plwidth(0.8);
    for (size_t r = 0; r < n; r++) {
        for (size_t k = 0; k < T; k++) {
            lx[k] = fl->y[(k * n + r) * D + fl->sx];
            ly[k] = fl->y[(k * n + r) * D + fl->sy];
        }
        plcol1(fl->shade[r]);
        plline((PLINT)T, lx, ly);
        plschr(0.0, 0.45 * CHAR_SCALE);
        plstring(1, lx, ly, MARK_ARM);
    }
    plwidth(1.0);
    plschr(0.0, CHAR_SCALE);
    plcol0(COL_FG);
    plbox("bcnst", 0.0, 0, "bcnstv", 0.0, 0);
    pllab(fl->xname, fl->yname, "Learned flow");
    plschr(0.0, 0.8 * CHAR_SCALE);
    plmtex("t", 0.8, 0.5, 0.5, fl->title);
    plschr(0.0, CHAR_SCALE);
}

int ab_plot_flow(const char *dir, const char *base, const ab_flow *fl,
                 char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (fl->n == 0 || fl->nsave == 0 || fl->sx >= fl->dim ||
        fl->sy >= fl->dim) {
        set_err(err, errlen, "%s/%s: nothing to draw", dir, base);
        return -1;
    }
    if (check_devices(dir, err, errlen) != 0)
        return -1;
    return render_both(dir, base, draw_flow, fl, err, errlen);
}

/* ------------------------------------------------------------- density */

static void draw_density(const void *arg)
{
    const ab_density *d = arg;
    const PLFLT h = d->half;
    /* cmap1 from white (p = 0) to dark blue (the largest p) */
    static const PLFLT pos[2] = {0.0, 1.0}, red[2] = {1.0, 0.05},
                       green[2] = {1.0, 0.1}, blue[2] = {1.0, 0.45};
    PLFLT top = 0.0, **img = NULL;

    plAlloc2dGrid(&img, (PLINT)d->n, (PLINT)d->n);
    if (!img)
        return;
    for (size_t i = 0; i < d->n; i++)
        for (size_t j = 0; j < d->n; j++) {
            img[i][j] = d->p[j * d->n + i];
            top = fmax(top, img[i][j]);
        }
    plscmap1n(256);
    plscmap1l(1, 2, pos, red, green, blue, NULL);
    pladv(0);
    plvpor(0.10, 0.90, 0.10, 0.88);
    plwind(-h, h, -h, h);
    plvasp(1.0);
    plwind(-h, h, -h, h);
    plimage((PLFLT_MATRIX)img, (PLINT)d->n, (PLINT)d->n, -h, h, -h, h, 0.0,
            top > 0 ? top : 1.0, -h, h, -h, h);
    plcol0(COL_FG);
    plbox("bcnst", 0.0, 0, "bcnstv", 0.0, 0);
    plmtex("b", 3.0, 0.5, 0.5, "x0");
    plmtex("l", 3.5, 0.5, 0.5, "x1");
    plmtex("t", 2.2, 0.5, 0.5, "The learned density p(x)");
    plschr(0.0, 0.8 * CHAR_SCALE);
    plmtex("t", 0.8, 0.5, 0.5, d->title);
    plschr(0.0, CHAR_SCALE);
    plFree2dGrid(img, (PLINT)d->n, (PLINT)d->n);
}

int ab_plot_density(const char *dir, const char *base, const ab_density *d,
                    char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (d->n < 2 || !(d->half > 0)) {
        set_err(err, errlen, "%s/%s: nothing to draw", dir, base);
        return -1;
    }
    if (check_devices(dir, err, errlen) != 0)
        return -1;
    return render_both(dir, base, draw_density, d, err, errlen);
}

/* ----------------------------------------------------------------- fit */

typedef struct fit_data {
    const ab_fit_series *s;
    size_t nseries, dim;
    const char *const *names;
    const char *title;
} fit_data;

/* Panel j: every series' state j against t. */
static void fit_panel(const fit_data *fd, size_t j, double y0, double y1)
{
    double tmin = INFINITY, tmax = -INFINITY, lo = INFINITY, hi = -INFINITY;
    char name[32];

    for (size_t i = 0; i < fd->nseries; i++)
        for (size_t k = 0; k < fd->s[i].n; k++) {
            const double o = fd->s[i].obs[k * fd->dim + j];
            const double p = fd->s[i].pred[k * fd->dim + j];
            tmin = fmin(tmin, fd->s[i].t[k]);
            tmax = fmax(tmax, fd->s[i].t[k]);
            lo = fmin(lo, isfinite(o) ? fmin(o, p) : p);
            hi = fmax(hi, isfinite(o) ? fmax(o, p) : p);
        }
    pad_range(&tmin, &tmax, 0.02);
    pad_range(&lo, &hi, 0.08);
    plvpor(0.10, 0.78, y0, y1);
    plwind(tmin, tmax, lo, hi);
    plcol0(COL_GRID);
    plwidth(0.5);
    plbox("g", 0.0, 0, "g", 0.0, 0);
    plwidth(1.2);
    for (size_t i = 0; i < fd->nseries; i++) {
        const ab_fit_series *q = &fd->s[i];
        PLFLT t[q->n ? q->n : 1], y[q->n ? q->n : 1];
        plcol0(COL_ARM + (PLINT)(i % NPALETTE));
        for (size_t k = 0; k < q->n; k++) {
            t[k] = q->t[k];
            y[k] = q->pred[k * fd->dim + j];
        }
        plline((PLINT)q->n, t, y);
        if (q->held_from > 0 && q->held_from < q->n) {
            /* the forecast begins between the last trained observation
             * and the first held-out one */
            PLFLT tb[2], yb[2] = {lo, hi};
            tb[0] = tb[1] =
                0.5 * (q->t[q->held_from - 1] + q->t[q->held_from]);
            pllsty(2);
            plline(2, tb, yb);
            pllsty(1);
        }
        plschr(0.0, 0.6 * CHAR_SCALE);
        for (size_t k = 0; k < q->n; k++) {
            PLFLT tk = q->t[k], ok = q->obs[k * fd->dim + j];
            if (isfinite(ok))
                plstring(1, &tk, &ok,
                         k < q->held_from ? MARK_ARM : MARK_RING);
        }
        plschr(0.0, CHAR_SCALE);
    }
    plwidth(1.0);
    plcol0(COL_FG);
    plbox(y0 < 0.2 ? "bcnst" : "bcst", 0.0, 0, "bcnstv", 0.0, 0);
    if (fd->names)
        snprintf(name, sizeof name, "%s", fd->names[j]);
    else
        snprintf(name, sizeof name, "y%zu", j);
    plmtex("l", 5.0, 0.5, 0.5, name);
}

static void draw_fit(const void *arg)
{
    const fit_data *fd = arg;
    const double top = 0.88, bottom = 0.10;
    const double h = (top - bottom) / (double)fd->dim;

    pladv(0);
    for (size_t j = 0; j < fd->dim; j++)
        fit_panel(fd, j, top - (double)(j + 1) * h + 0.01,
                  top - (double)j * h - 0.01);
    plcol0(COL_FG);
    plmtex("b", 3.0, 0.5, 0.5, "t");
    plvpor(0.10, 0.78, bottom, top);
    plmtex("t", 2.2, 0.5, 0.5,
           "Fit: dots trained on, rings held out, lines predicted");
    plschr(0.0, 0.8 * CHAR_SCALE);
    plmtex("t", 0.8, 0.5, 0.5, fd->title);
    plschr(0.0, CHAR_SCALE);
    for (size_t i = 0; i < fd->nseries; i++) {
        plcol0(COL_ARM + (PLINT)(i % NPALETTE));
        plmtex("rv", 1.0, 1.0 - 0.05 * (double)(i + 1), 0.0, fd->s[i].id);
    }
}

int ab_plot_fit(const char *dir, const char *base, const ab_fit_series *s,
                size_t nseries, size_t dim, const char *const *names,
                const char *title, char *err, size_t errlen)
{
    const fit_data fd = {s, nseries, dim, names, title};

    if (err && errlen)
        err[0] = '\0';
    if (nseries == 0 || nseries > NPALETTE || dim == 0) {
        set_err(err, errlen, "%s/%s: %zu series of %zu states: nothing to "
                "draw, or more series than colours (%d)", dir, base, nseries,
                dim, NPALETTE);
        return -1;
    }
    if (check_devices(dir, err, errlen) != 0)
        return -1;
    return render_both(dir, base, draw_fit, &fd, err, errlen);
}
