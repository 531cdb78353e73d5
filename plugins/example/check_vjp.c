/*
 * check_vjp.c - check a field plugin's VJP against central finite
 * differences of its eval, through the installed libnde only.
 *
 * Usage: check_vjp PLUGIN [SECTION-TEXT]
 * The plugin is looked up by name (so NDE_PLUGIN_PATH must reach it).
 * Exit status 0 when every component agrees to 1e-6 (relative).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <nde/nde.h>

#define BATCH 3

/* A reproducible value in [-1, 1) (a small LCG: no need for quality). */
static double next_value(unsigned long *s)
{
    *s = *s * 6364136223846793005ul + 1442695040888963407ul;
    return (double)(*s >> 11) / 4503599627370496.0 - 1.0;
}

/* <w, f(t, y, theta)> */
static double project(nde_field *f, const double *y, const double *theta,
                      const double *w, double *dy)
{
    double s = 0;
    size_t i;
    nde_field_eval(f, 0.3, y, theta, dy, BATCH);
    for (i = 0; i < BATCH * f->dim; i++)
        s += w[i] * dy[i];
    return s;
}

static int compare(const char *what, size_t i, double got, double fd)
{
    double err = fabs(got - fd) / fmax(1.0, fabs(fd));
    if (err <= 1e-6)
        return 0;
    fprintf(stderr, "check_vjp: %s[%zu]: vjp %.10g, finite differences "
                    "%.10g\n", what, i, got, fd);
    return 1;
}

int main(int argc, char **argv)
{
    const char *plugin = argc > 1 ? argv[1] : "vanderpol";
    char text[512];
    nde_ctx *ctx = nde_ctx_create();
    nde_config *cfg = nde_config_create();
    nde_field *f = NULL;
    double *y, *theta, *w, *dy, *vy, *vtheta;
    const double h = 1e-6;
    unsigned long seed = 42;
    size_t i, n, bad = 0;

    snprintf(text, sizeof text, "[field]\nplugin = %s\n%s\n", plugin,
             argc > 2 ? argv[2] : "");
    if (nde_config_load_string(cfg, "check_vjp", text, ctx) != NDE_OK ||
        nde_field_create(ctx, cfg, "field", BATCH, &f) != NDE_OK) {
        fprintf(stderr, "check_vjp: %s\n", nde_ctx_message(ctx));
        return 2;
    }
    n = BATCH * f->dim;
    y = malloc(n * sizeof *y);
    w = malloc(n * sizeof *w);
    dy = malloc(n * sizeof *dy);
    vy = calloc(n, sizeof *vy);
    theta = malloc((f->nparams + 1) * sizeof *theta);
    vtheta = calloc(f->nparams + 1, sizeof *vtheta);
    nde_field_init_params(f, theta, 1);
    for (i = 0; i < n; i++) {
        y[i] = 2 * next_value(&seed);
        w[i] = next_value(&seed);
    }
    nde_field_vjp(f, 0.3, y, theta, w, vy, vtheta, BATCH);
    for (i = 0; i < n; i++) {
        double keep = y[i], up, down;
        y[i] = keep + h;
        up = project(f, y, theta, w, dy);
        y[i] = keep - h;
        down = project(f, y, theta, w, dy);
        y[i] = keep;
        bad += compare("y", i, vy[i], (up - down) / (2 * h));
    }
    for (i = 0; i < f->nparams; i++) {
        double keep = theta[i], up, down;
        theta[i] = keep + h;
        up = project(f, y, theta, w, dy);
        theta[i] = keep - h;
        down = project(f, y, theta, w, dy);
        theta[i] = keep;
        bad += compare("theta", i, vtheta[i], (up - down) / (2 * h));
    }
    printf("check_vjp: %s: %zu state and %zu parameter components, %zu "
           "disagree\n", plugin, n, f->nparams, bad);
    free(y); free(w); free(dy); free(vy); free(theta); free(vtheta);
    nde_field_destroy(f);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    return bad ? 1 : 0;
}
