/*
 * test_ab_plot.c - the plots of `nde ab` (cli/ab_plot.c) on synthetic run
 * directories: all six files written, PNGs of the page size with a white
 * background (the first pixel decoded with zlib), SVGs naming the arms in
 * their legends, no temporary file left behind, and bad input refused with
 * a message naming the directory.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ab_plot.h"
#include "../test_util.h"

#define PAGE_WIDTH 1000
#define PAGE_HEIGHT 650

static const char *const plot_names[6] = {
    "loss.png", "loss.svg", "nfe.png", "nfe.svg", "predict.png",
    "predict.svg",
};

static void mkdirs(const char *path)
{
    char tmp[4096];

    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

/* A run: iterations 1..niter of a decaying loss (scaled per arm and seed),
 * an NFE that grows, an evaluation line every 100 iterations, optionally a
 * null loss (how the CLI writes NaN) and a truncated last line. */
static void write_run(const char *root, const char *arm, long seed,
                      int niter, double scale, int with_null,
                      int with_summary)
{
    char dir[4096], path[4200];
    FILE *fp;

    snprintf(dir, sizeof dir, "%s/runs/%s/seed%ld", root, arm, seed);
    mkdirs(dir);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    for (int i = 1; i <= niter; i++) {
        double loss = scale * (1.0 + 0.1 * (double)seed) * exp(-i / 80.0)
                      + 1e-3;
        long nfe = 50 + i / 10 + 3 * seed;

        if (with_null && i == niter / 2)
            fprintf(fp, "{\"iteration\": %d, \"loss\": null, "
                    "\"grad_norm\": null, \"nfe_forward\": %ld, "
                    "\"nfe_backward\": %ld}\n", i, nfe, nfe);
        else
            fprintf(fp, "{\"iteration\": %d, \"loss\": %.17g, "
                    "\"grad_norm\": 0.5, \"reg\": 0.01, "
                    "\"reg_local\": 1e-3, \"nfe_forward\": %ld, "
                    "\"nfe_backward\": %ld, \"steps_accepted\": 10, "
                    "\"steps_rejected\": 1, \"time_s\": 0.001}\n",
                    i, loss, nfe, 2 * nfe);
        if (i % 100 == 0)
            fprintf(fp, "{\"iteration\": %d, \"test_loss\": %.17g, "
                    "\"predict_nfe\": %ld, \"predict_time_s\": 0.01}\n",
                    i, 1.1 * loss, nfe);
    }
    if (with_null)
        fputs("{\"iteration\": 99999, \"loss\": 1e9", fp);
    fclose(fp);
    if (with_summary) {
        snprintf(path, sizeof path, "%s/summary.json", dir);
        fp = fopen(path, "w");
        ck_assert_ptr_nonnull(fp);
        fprintf(fp, "{\"iterations\": %d, \"train_time_s\": 1.5, "
                "\"train_nfe_forward\": 1000, \"train_nfe_backward\": 2000, "
                "\"final_loss\": 0.01, \"test_loss\": %.17g, "
                "\"predict_nfe\": %ld, \"predict_time_s\": %.17g, "
                "\"status\": \"ok\", \"status_code\": 0}\n",
                niter, 0.02 * scale * (1.0 + 0.1 * (double)seed),
                (long)(60 / scale) + seed, 0.002 * (double)seed / scale);
        fclose(fp);
    }
}

static char *make_tmpdir(void)
{
    char *dir = strdup("/tmp/nde_test_ab_plot_XXXXXX");

    ck_assert_ptr_nonnull(dir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8
           | p[3];
}

/* Check signature and size; return the first pixel's RGB (the first pixel
 * of row 0 is stored as is whatever the row's filter). */
static void check_png(const char *path, unsigned rgb[3])
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n',
                                         0x1a, '\n'};
    size_t len, pos = 8, idat_len = 0;
    unsigned char *png = (unsigned char *)test_read_file(path, &len);
    unsigned char *idat = NULL, out[16];
    unsigned colour_type, bpp;
    z_stream zs;

    ck_assert_msg(png != NULL, "%s missing", path);
    ck_assert_uint_gt(len, 33);
    ck_assert_msg(!memcmp(png, sig, 8), "%s: no PNG signature", path);
    ck_assert(!memcmp(png + 12, "IHDR", 4));
    ck_assert_uint_eq(be32(png + 16), PAGE_WIDTH);
    ck_assert_uint_eq(be32(png + 20), PAGE_HEIGHT);
    ck_assert_uint_eq(png[24], 8);  /* bit depth */
    colour_type = png[25];
    ck_assert_msg(colour_type == 2 || colour_type == 6,
                  "%s: colour type %u", path, colour_type);
    bpp = colour_type == 6 ? 4 : 3;
    while (pos + 12 <= len) {
        uint32_t n = be32(png + pos);

        ck_assert_uint_le(pos + 12 + n, len);
        if (!memcmp(png + pos + 4, "IDAT", 4)) {
            idat = realloc(idat, idat_len + n);
            ck_assert_ptr_nonnull(idat);
            memcpy(idat + idat_len, png + pos + 8, n);
            idat_len += n;
        }
        pos += 12 + n;
    }
    ck_assert_uint_gt(idat_len, 0);
    memset(&zs, 0, sizeof zs);
    ck_assert_int_eq(inflateInit(&zs), Z_OK);
    zs.next_in = idat;
    zs.avail_in = (uInt)idat_len;
    zs.next_out = out;
    zs.avail_out = 1 + bpp;
    ck_assert_int_ge(inflate(&zs, Z_SYNC_FLUSH), Z_OK);
    ck_assert_uint_eq(zs.avail_out, 0);
    inflateEnd(&zs);
    ck_assert_uint_le(out[0], 4);   /* filter type */
    for (int c = 0; c < 3; c++)
        rgb[c] = out[1 + c];
    if (bpp == 4)
        ck_assert_uint_eq(out[4], 255);     /* opaque */
    free(idat);
    free(png);
}

static void check_outputs(const char *dir, const char *const *must_name,
                          size_t nnames)
{
    char path[4200];
    DIR *d;
    struct dirent *e;

    for (int i = 0; i < 6; i++) {
        struct stat st;

        snprintf(path, sizeof path, "%s/%s", dir, plot_names[i]);
        ck_assert_msg(stat(path, &st) == 0, "%s missing", path);
        ck_assert_msg(st.st_size > 0, "%s empty", path);
        if (strstr(plot_names[i], ".png")) {
            unsigned rgb[3];

            check_png(path, rgb);
            ck_assert_msg(rgb[0] == 255 && rgb[1] == 255 && rgb[2] == 255,
                          "%s: corner pixel %u,%u,%u is not white", path,
                          rgb[0], rgb[1], rgb[2]);
        } else {
            size_t len;
            char *svg = test_read_file(path, &len), *bg, *fill;

            ck_assert_ptr_nonnull(svg);
            ck_assert_msg(!strncmp(svg, "<?xml", 5), "%s: not XML", path);
            ck_assert_msg(strstr(svg, "<svg") != NULL, "%s: no <svg>", path);
            ck_assert_msg(strstr(svg, "</svg>") != NULL, "%s: cut", path);
            /* The page's first element: a white background rectangle. */
            bg = strstr(svg, "<rect");
            fill = bg ? strstr(bg, "fill=\"#FFFFFF\"") : NULL;
            ck_assert_msg(bg && bg < strstr(svg, "<g") && fill
                          && fill < strstr(bg, "/>"),
                          "%s: no white background first", path);
            for (size_t k = 0; k < nnames; k++) {
                /* PLplot's SVG device writes each character as &#xHH; */
                char enc[1024] = "";

                for (const char *c = must_name[k]; *c; c++)
                    snprintf(enc + strlen(enc), sizeof enc - strlen(enc),
                             "&#x%x;", (unsigned char)*c);
                ck_assert_msg(strstr(svg, enc) != NULL,
                              "%s does not name %s", path, must_name[k]);
            }
            free(svg);
        }
    }
    /* No temporary file (.NAME.XXXXXX) left. */
    d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        ck_assert_msg(e->d_name[0] != '.' || !strcmp(e->d_name, ".")
                      || !strcmp(e->d_name, ".."),
                      "temporary file %s left in %s", e->d_name, dir);
    closedir(d);
}

START_TEST(two_arms_with_gaps)
{
    static const char *const arms[] = {"plain", "local", "ghost"};
    static const long seeds[] = {1, 2, 3};
    static const char *const names[] = {
        "plain (baseline)", "local", "ghost (no usable run)",
    };
    char *dir = make_tmpdir();
    char err[512] = "";

    /* plain: 3 seeds; local: seed 3 missing, seed 2 without a summary;
     * ghost: no run at all. 600 iterations: averaged in windows of 3. */
    write_run(dir, "plain", 1, 600, 1.0, 1, 1);
    write_run(dir, "plain", 2, 600, 1.0, 0, 1);
    write_run(dir, "plain", 3, 550, 1.0, 0, 1);
    write_run(dir, "local", 1, 600, 3.0, 0, 1);
    write_run(dir, "local", 2, 600, 3.0, 1, 0);
    ck_assert_msg(ab_plot(dir, arms, 3, seeds, 3, "plain", err, sizeof err)
                  == 0, "ab_plot: %s", err);
    check_outputs(dir, names, 3);
    if (getenv("AB_PLOT_KEEP"))
        printf("plots kept in %s\n", dir);
    else
        test_workdir_remove(dir);
    free(dir);
}
END_TEST

START_TEST(single_iteration)
{
    static const char *const arms[] = {"only"};
    static const long seeds[] = {7};
    static const char *const names[] = {"only"};
    char *dir = make_tmpdir();
    char err[512] = "";

    write_run(dir, "only", 7, 1, 1.0, 0, 1);
    if (getenv("AB_PLOT_KEEP"))
        printf("single-iteration plots in %s\n", dir);
    ck_assert_msg(ab_plot(dir, arms, 1, seeds, 1, "only", err, sizeof err)
                  == 0, "ab_plot: %s", err);
    check_outputs(dir, names, 1);
    /* Drawing again replaces the files. */
    ck_assert_msg(ab_plot(dir, arms, 1, seeds, 1, NULL, err, sizeof err)
                  == 0, "ab_plot: %s", err);
    check_outputs(dir, names, 1);
    if (!getenv("AB_PLOT_KEEP"))
        test_workdir_remove(dir);
    free(dir);
}
END_TEST

START_TEST(bad_directory)
{
    static const char *const arms[] = {"plain"};
    static const long seeds[] = {1};
    char err[512] = "";
    char *dir = make_tmpdir();
    char runs[4200];

    ck_assert_int_ne(ab_plot("/nonexistent/nde_ab_dir", arms, 1, seeds, 1,
                             "plain", err, sizeof err), 0);
    ck_assert_msg(strstr(err, "/nonexistent/nde_ab_dir") != NULL, "%s", err);

    /* A directory without runs/. */
    err[0] = '\0';
    ck_assert_int_ne(ab_plot(dir, arms, 1, seeds, 1, "plain", err,
                             sizeof err), 0);
    ck_assert_msg(strstr(err, dir) != NULL, "%s", err);

    /* runs/ without any metrics file: nothing to plot, no file written. */
    snprintf(runs, sizeof runs, "%s/runs/plain/seed1", dir);
    mkdirs(runs);
    err[0] = '\0';
    ck_assert_int_ne(ab_plot(dir, arms, 1, seeds, 1, "plain", err,
                             sizeof err), 0);
    ck_assert_msg(strstr(err, dir) != NULL && strstr(err, "metrics"),
                  "%s", err);
    snprintf(runs, sizeof runs, "%s/loss.png", dir);
    ck_assert_int_ne(access(runs, F_OK), 0);
    test_workdir_remove(dir);
    free(dir);
}
END_TEST

/* PLplot's SVG device writes each character as &#xHH;. */
static int svg_has_text(const char *svg, const char *text)
{
    char enc[1024] = "";

    for (const char *c = text; *c; c++)
        snprintf(enc + strlen(enc), sizeof enc - strlen(enc), "&#x%x;",
                 (unsigned char)*c);
    return strstr(svg, enc) != NULL;
}

/* A sweep's frontier: every finite point labelled (points at one place
 * with one label), the axes named; a point without a mean is left out;
 * nothing to draw is an error. */
START_TEST(frontier)
{
    const ab_frontier_point pts[] = {
        {"plain", 0.02, 0.015, 0.03, 1600, 1580, 1620, 1, 0},
        {"0.001", 0.021, 0.016, 0.03, 1590, 1570, 1610, 0, 0},
        {"0.01", 0.021, 0.016, 0.03, 1591, 1570, 1610, 0, 0},
        {"0.1", 0.025, 0.02, 0.031, 900, 850, 960, 0, 1},
        {"1000", 0.6, 0.4, 0.9, 120, 100, 150, 0, 0},
        {"nan", NAN, NAN, NAN, 100, 90, 110, 0, 0},
    };
    static const char *const labels[] = {"plain", "0.001, 0.01", "0.1",
                                         "1000",
                                         "test_loss", "predict_nfe",
                                         "weight sweep"};
    char *dir = make_tmpdir(), path[4200], err[512] = "";
    unsigned rgb[3];
    char *svg;

    ck_assert_msg(ab_plot_frontier(dir, pts, 6, "test_loss", "predict_nfe",
                                   "weight sweep", err, sizeof err) == 0,
                  "ab_plot_frontier: %s", err);
    snprintf(path, sizeof path, "%s/frontier.png", dir);
    check_png(path, rgb);
    ck_assert(rgb[0] == 255 && rgb[1] == 255 && rgb[2] == 255);
    snprintf(path, sizeof path, "%s/frontier.svg", dir);
    ck_assert_ptr_nonnull(svg = test_read_file(path, NULL));
    ck_assert_msg(strstr(svg, "</svg>") != NULL, "%s: cut", path);
    for (size_t k = 0; k < sizeof labels / sizeof *labels; k++)
        ck_assert_msg(svg_has_text(svg, labels[k]), "%s does not show %s",
                      path, labels[k]);
    ck_assert_msg(!svg_has_text(svg, "nan"), "%s draws the NAN point",
                  path);
    free(svg);
    test_workdir_remove(dir);
    /* nothing finite: an error and no file */
    ck_assert_int_ne(ab_plot_frontier(dir, pts + 5, 1, "test_loss",
                                      "predict_nfe", "", err, sizeof err),
                     0);
    ck_assert_msg(strstr(err, "no swept value") != NULL, "%s", err);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ab_plot");
    TCase *tc = tcase_create("ab_plot");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, two_arms_with_gaps);
    tcase_add_test(tc, single_iteration);
    tcase_add_test(tc, bad_directory);
    tcase_add_test(tc, frontier);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
