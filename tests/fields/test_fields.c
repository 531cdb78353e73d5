/*
 * Field plugins: a conformance suite run over every field plugin with
 * representative configs (VJP against central finite differences, batch
 * position independence, deterministic init_params, accumulating VJP), then
 * specific tests per plugin, bad input, libmatheval quirks and the mlp's
 * vectorised tanh.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <matheval.h>
#include <nde/nde.h>

#include "mlp.h" /* the mlp plugin's kernel sets */

/* The mlp kernel sets built for this target (those the CPU does not run
 * are skipped, saying so). */
enum { NSETS = sizeof mlp_kernel_sets / sizeof mlp_kernel_sets[0] - 1 };

/* ---- helpers ---------------------------------------------------------- */

static uint64_t rng_state;

/* Uniform in [-1, 1), from SplitMix64 via nde_seed_derive. */
static double uniform(void)
{
    uint64_t u = nde_seed_derive(0x5eed, rng_state++);
    return 2.0 * ((double)(u >> 11) * 0x1.0p-53) - 1.0;
}

static void fill_uniform(double *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * uniform();
}

typedef struct loaded {
    nde_ctx *ctx;
    nde_config *cfg;
    nde_field *f;
} loaded;

/* Create [field] from ini text; returns the status, f set on success. */
static int load(loaded *L, const char *ini, size_t batch_max)
{
    L->ctx = nde_ctx_create();
    L->cfg = nde_config_create();
    L->f = NULL;
    ck_assert_ptr_nonnull(L->ctx);
    ck_assert_ptr_nonnull(L->cfg);
    int status = nde_config_load_string(L->cfg, "test.ini", ini, L->ctx);
    if (status)
        return status;
    return nde_field_create(L->ctx, L->cfg, "field", batch_max, &L->f);
}

static void load_ok(loaded *L, const char *ini, size_t batch_max)
{
    int status = load(L, ini, batch_max);
    ck_assert_msg(status == NDE_OK, "create failed: %s",
                  nde_ctx_message(L->ctx));
}

static void unload(loaded *L)
{
    nde_field_destroy(L->f);
    nde_config_destroy(L->cfg);
    nde_ctx_destroy(L->ctx);
}

/* A pair of operations of a field: eval and vjp, or diffusion and
 * diffusion_vjp. */
typedef int (*eval_op)(nde_field *, double, const double *, const double *,
                       double *, size_t);
typedef int (*vjp_op)(nde_field *, double, const double *, const double *,
                      const double *, double *, double *, size_t);

/* sum_i v_i . op(t, y)_i over the batch, w values a row */
static double contract(nde_field *f, eval_op op, double t, const double *y,
                       const double *theta, const double *v, double *dy,
                       size_t batch, size_t w)
{
    ck_assert_int_eq(op(f, t, y, theta, dy, batch), NDE_OK);
    double s = 0.0;
    for (size_t k = 0; k < batch * w; k++)
        s += v[k] * dy[k];
    return s;
}

/* ---- conformance suite ------------------------------------------------ */

/*
 * Checks any field, its drift (eval, vjp) and, when it has noise, its
 * diffusion (diffusion, diffusion_vjp) alike, w values a row (the state
 * dimension, or dim x M for a general-noise diffusion):
 *  - vy and vtheta against central differences of v . f, step
 *    h = 1e-6 (1 + |x|), at random y, theta, v (fixed seed), batch B:
 *    |fd - vjp| <= 1e-6 max(1, |vjp|);
 *  - row i of a batch equals a batch-of-one eval of row i (to 1e-13
 *    relative: dgemm may block a 1-row product differently);
 *  - init_params is deterministic for a seed;
 *  - vjp accumulates (a second call adds the same again) and takes NULL
 *    outputs.
 */
static void check_ops(const char *label, nde_field *f, eval_op eval,
                      vjp_op vjp, size_t B, size_t w)
{
    const double t = 0.7, tol = 1e-6;
    const size_t d = f->dim, p = f->nparams, n = B * d;
    double *theta = calloc(p + 1, sizeof *theta);
    double *theta2 = calloc(p + 1, sizeof *theta2);
    double *y = malloc(n * sizeof *y), *v = malloc(B * w * sizeof *v);
    double *dy = malloc(B * w * sizeof *dy), *dy1 = malloc(w * sizeof *dy1);
    double *vy = calloc(n, sizeof *vy), *vth = calloc(p + 1, sizeof *vth);
    double *vy2 = calloc(n, sizeof *vy2), *vth2 = calloc(p + 1, sizeof *vth2);
    ck_assert(theta && theta2 && y && v && dy && dy1 && vy && vth && vy2 &&
              vth2);
    rng_state = 1;

    /* init_params: deterministic */
    ck_assert_int_eq(nde_field_init_params(f, theta, 42), NDE_OK);
    ck_assert_int_eq(nde_field_init_params(f, theta2, 42), NDE_OK);
    ck_assert_msg(memcmp(theta, theta2, p * sizeof *theta) == 0,
                  "%s: init_params(42) differs between calls", label);

    /* random point: theta perturbed so that biases are not all zero */
    for (size_t k = 0; k < p; k++)
        theta[k] += 0.2 * uniform();
    fill_uniform(y, n, 1.0);
    fill_uniform(v, B * w, 1.0);

    /* batch position independence */
    ck_assert_int_eq(eval(f, t, y, theta, dy, B), NDE_OK);
    for (size_t i = 0; i < B; i++) {
        ck_assert_int_eq(eval(f, t, y + i * d, theta, dy1, 1), NDE_OK);
        for (size_t j = 0; j < w; j++)
            ck_assert_msg(fabs(dy1[j] - dy[i * w + j]) <=
                              1e-13 * (1.0 + fabs(dy[i * w + j])),
                          "%s: row %zu col %zu: batch %.17g, alone %.17g",
                          label, i, j, dy[i * w + j], dy1[j]);
    }

    /* VJP against central differences */
    ck_assert_int_eq(vjp(f, t, y, theta, v, vy, vth, B), NDE_OK);
    double scale = 0.0;
    for (size_t k = 0; k < n; k++) {
        double keep = y[k], h = 1e-6 * (1.0 + fabs(keep));
        y[k] = keep + h;
        double lp = contract(f, eval, t, y, theta, v, dy, B, w);
        y[k] = keep - h;
        double lm = contract(f, eval, t, y, theta, v, dy, B, w);
        y[k] = keep;
        double fd = (lp - lm) / (2.0 * h);
        ck_assert_msg(fabs(fd - vy[k]) <= tol * fmax(1.0, fabs(vy[k])),
                      "%s: vy[%zu] = %.12g, finite difference %.12g", label,
                      k, vy[k], fd);
        scale = fmax(scale, fabs(vy[k]));
    }
    for (size_t k = 0; k < p; k++) {
        double keep = theta[k], h = 1e-6 * (1.0 + fabs(keep));
        theta[k] = keep + h;
        double lp = contract(f, eval, t, y, theta, v, dy, B, w);
        theta[k] = keep - h;
        double lm = contract(f, eval, t, y, theta, v, dy, B, w);
        theta[k] = keep;
        double fd = (lp - lm) / (2.0 * h);
        char name[64];
        nde_field_param_name(f, k, name, sizeof name);
        ck_assert_msg(fabs(fd - vth[k]) <= tol * fmax(1.0, fabs(vth[k])),
                      "%s: vtheta[%zu] (%s) = %.12g, finite difference %.12g",
                      label, k, name, vth[k], fd);
        scale = fmax(scale, fabs(vth[k]));
    }
    ck_assert_msg(scale > 0.0, "%s: the VJP is identically zero", label);

    /* accumulation: a second call on top of the first doubles it */
    memcpy(vy2, vy, n * sizeof *vy);
    memcpy(vth2, vth, p * sizeof *vth);
    ck_assert_int_eq(vjp(f, t, y, theta, v, vy2, vth2, B), NDE_OK);
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(fabs(vy2[k] - 2.0 * vy[k]) <= 1e-12 * fabs(vy[k]),
                      "%s: vy does not accumulate", label);
    for (size_t k = 0; k < p; k++)
        ck_assert_msg(fabs(vth2[k] - 2.0 * vth[k]) <= 1e-12 * fabs(vth[k]),
                      "%s: vtheta does not accumulate", label);

    /* NULL outputs: each alone gives the same values */
    memset(vy2, 0, n * sizeof *vy2);
    memset(vth2, 0, (p + 1) * sizeof *vth2);
    ck_assert_int_eq(vjp(f, t, y, theta, v, vy2, NULL, B), NDE_OK);
    ck_assert_int_eq(vjp(f, t, y, theta, v, NULL, vth2, B), NDE_OK);
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(fabs(vy2[k] - vy[k]) <= 1e-13 * fabs(vy[k]),
                      "%s: vy alone differs", label);
    for (size_t k = 0; k < p; k++)
        ck_assert_msg(fabs(vth2[k] - vth[k]) <= 1e-13 * fabs(vth[k]),
                      "%s: vtheta alone differs", label);
    ck_assert_int_eq(vjp(f, t, y, theta, v, NULL, NULL, B), NDE_OK);

    free(theta);
    free(theta2);
    free(y);
    free(v);
    free(dy);
    free(dy1);
    free(vy);
    free(vth);
    free(vy2);
    free(vth2);
}

/* The field of ini created for batch_max rows, checked at batch B. */
/* An input for a field that reads one (nde/input.h): the same linear
 * series in every row (so a row alone reads what it reads in the batch),
 * each channel its own. */
static nde_input *test_input(nde_field *f)
{
    static const double t[3] = {0.0, 0.5, 1.0};
    double u[3 * 8];
    nde_input *in;

    ck_assert_uint_le(f->ninputs, 8);
    for (size_t k = 0; k < 3; k++)
        for (size_t c = 0; c < f->ninputs; c++)
            u[k * f->ninputs + c] = 0.3 + 0.7 * (double)k - 0.4 * (double)c;
    ck_assert_int_eq(nde_input_create(f->ctx, f->batch_max, f->ninputs, 3,
                                      NDE_INPUT_LINEAR, &in), NDE_OK);
    for (size_t r = 0; r < f->batch_max; r++)
        ck_assert_int_eq(nde_input_set_row(in, r, 3, t, u), NDE_OK);
    ck_assert_int_eq(nde_input_use_rows(in, f->batch_max), NDE_OK);
    nde_input_select(in, 0.5, 0.0);
    ck_assert_int_eq(nde_field_set_input(f, in), NDE_OK);
    return in;
}

static void check_field(const char *label, const char *ini, size_t B,
                        size_t batch_max)
{
    loaded L;
    nde_input *in = NULL;
    load_ok(&L, ini, batch_max);
    if (L.f->ninputs)
        in = test_input(L.f);
    check_ops(label, L.f, L.f->type->eval, L.f->type->vjp, B, L.f->dim);
    if (L.f->noise != NDE_NOISE_NONE) {
        char dlabel[160];
        const size_t m = L.f->noise == NDE_NOISE_GENERAL ? L.f->noise_dim : 1;
        snprintf(dlabel, sizeof dlabel, "%s (diffusion)", label);
        check_ops(dlabel, L.f, L.f->type->diffusion, L.f->type->diffusion_vjp,
                  B, L.f->dim * m);
    }
    unload(&L);
    nde_input_destroy(in);
}

static const char *const conformance_configs[][2] = {
    {"mlp tanh", "[field]\nplugin = mlp\nlayers = 2, 16, 2\n"},
    {"mlp relu", "[field]\nplugin = mlp\nlayers = 3, 12, 3\nactivation = relu\n"},
    {"mlp softplus",
     "[field]\nplugin = mlp\nlayers = 2, 10, 2\nactivation = softplus\n"},
    {"mlp identity",
     "[field]\nplugin = mlp\nlayers = 2, 10, 2\nactivation = identity\n"},
    {"mlp mixed deep time cube",
     "[field]\nplugin = mlp\nlayers = 2, 12, 9, 2\n"
     "activation = softplus, tanh\ntime = true\ninput = cube\n"},
    {"mlp spiral", "[field]\nplugin = mlp\nlayers = 2, 50, 2\ninput = cube\n"},
    {"mlp wide blas",
     "[field]\nplugin = mlp\nlayers = 12, 20, 16, 12\ntime = yes\n"
     "thin_width = 8\n"},
    {"mlp wide blas everywhere",
     "[field]\nplugin = mlp\nlayers = 3, 20, 3\nthin_width = 0\n"
     "activation = relu\n"},
    {"mlp sde softplus",
     "[field]\nplugin = mlp\nlayers = 2, 16, 2\ndiffusion = softplus\n"},
    {"mlp sde sigmoid, own widths and activations, time + cube drift",
     "[field]\nplugin = mlp\nlayers = 3, 12, 3\ntime = true\ninput = cube\n"
     "diffusion = sigmoid\ng_layers = 4, 9\n"
     "g_activation = softplus, tanh\n"},
    {"mlp sde no hidden layer",
     "[field]\nplugin = mlp\nlayers = 2, 6, 2\ndiffusion = softplus\n"
     "g_layers = \n"},
    {"mlp sde wide blas",
     "[field]\nplugin = mlp\nlayers = 12, 20, 12\ndiffusion = sigmoid\n"
     "g_layers = 24, 16\ncalculus = stratonovich\nthin_width = 8\n"},
    {"mlp lipswish", "[field]\nplugin = mlp\nlayers = 3, 11, 3\n"
     "activation = lipswish\n"},
    {"mlp lipswish mixed, output tanh, time",
     "[field]\nplugin = mlp\nlayers = 2, 9, 7, 2\ntime = true\n"
     "activation = lipswish, tanh\noutput = tanh\n"},
    {"mlp sde general noise, softplus",
     "[field]\nplugin = mlp\nlayers = 3, 8, 3\ndiffusion = softplus\n"
     "noise_dim = 2\n"},
    {"mlp sde-gan generator: lipswish, output tanh, general tanh diffusion",
     "[field]\nplugin = mlp\nlayers = 3, 10, 10, 3\ntime = true\n"
     "activation = lipswish\noutput = tanh\ndiffusion = tanh\n"
     "g_layers = 8, 6\ng_activation = lipswish\nnoise_dim = 4\n"},
    {"mlp sde general identity diffusion, relu + lipswish",
     "[field]\nplugin = mlp\nlayers = 2, 6, 2\ndiffusion = identity\n"
     "g_layers = 7, 5\ng_activation = relu, lipswish\nnoise_dim = 3\n"},
    {"mlp sde diagonal tanh diffusion",
     "[field]\nplugin = mlp\nlayers = 2, 6, 2\ndiffusion = tanh\n"
     "g_layers = 5\n"},
    {"mlp sde diagonal identity diffusion, no hidden layer",
     "[field]\nplugin = mlp\nlayers = 3, 6, 3\ndiffusion = identity\n"
     "g_layers = \n"},
    {"linear",
     "[field]\nplugin = linear\nA = 0.5, -1, 0.25\n  1, -0.3, 2\n"
     "  0, 0.7, -1.5\nb = 1, 2, 3\n"},
    {"expr lotka-volterra",
     "[field]\nplugin = expr\nstate = x, y\n"
     "params = a=1.5, b=1.0, c=3.0, d=1.0\n"
     "dx = a*x - b*x*y\ndy = -c*y + d*x*y\n"},
    {"expr with t",
     "[field]\nplugin = expr\nstate = u, w\nparams = k=0.8, om=2\n"
     "du = w*sin(om*t) - k*u^2\ndw = -u + exp(-t)*w^3 + t\n"},
    {"expr gbm",
     "[field]\nplugin = expr\nstate = x\nparams = mu=0.5, sigma=0.3\n"
     "dx = mu*x\ngx = sigma*x\ncalculus = ito\n"},
    {"expr sde coupled, one state without noise",
     "[field]\nplugin = expr\nstate = x, y, z\nparams = a=0.7, s=0.4, k=1.3\n"
     "dx = -a*x + y\ndy = x - y*z\ndz = t - k*z\n"
     "gx = s*sin(y) + a*x^2\ngz = s*exp(-t)*(1 + z^2)\n"},
    {"galerkin fourier",
     "[field]\nplugin = galerkin\nlayers = 2, 7, 2\nmodes = 3\n"},
    {"galerkin poly, relu, two hidden layers",
     "[field]\nplugin = galerkin\nlayers = 3, 5, 4, 3\nbasis = poly\n"
     "modes = 2\nactivation = relu\n"},
    {"galerkin squash (FFJORD's concatsquash)",
     "[field]\nplugin = galerkin\nlayers = 2, 7, 6, 2\nbasis = squash\n"},
    {"second_order around an mlp",
     "[field]\nplugin = second_order\ninner = accel\n"
     "[field.accel]\nplugin = mlp\nlayers = 4, 9, 4\ntime = true\n"},
    {"controlled around an mlp, 2 controls",
     "[field]\nplugin = controlled\ninner = g\ncontrols = 2\n"
     "[field.g]\nplugin = mlp\nlayers = 5, 9, 5\ntime = true\n"},
    {"cnf exact trace around an mlp with t",
     "[field]\nplugin = cnf\ninner = net\n"
     "[field.net]\nplugin = mlp\nlayers = 2, 7, 2\ntime = true\n"},
    {"cnf hutchinson around a softplus mlp",
     "[field]\nplugin = cnf\ninner = net\ntrace = hutchinson\n"
     "[field.net]\nplugin = mlp\nlayers = 3, 6, 5, 3\n"
     "activation = softplus, tanh\n"},
    {"ngm tanh", "[field]\nplugin = ngm\ndim = 3\nhidden = 5\n"},
    {"ngm softplus, two hidden layers",
     "[field]\nplugin = ngm\ndim = 4\nhidden = 6, 3\nactivation = softplus\n"},
    {"ngm relu, states 0 and 2 clamped",
     "[field]\nplugin = ngm\ndim = 3\nhidden = 5\nactivation = relu\n"
     "clamp = 0, 2\n"},
    {"sum expr + mlp",
     "[field]\nplugin = sum\nparts = known, net\n"
     "[field.known]\nplugin = expr\nstate = x, y\nparams = a=1.5, b=1.0\n"
     "dx = a*x - b*x*y\ndy = -y + x*y\n"
     "[field.net]\nplugin = mlp\nlayers = 2, 8, 2\n"},
    {"expr with inputs",
     "[field]\nplugin = expr\nstate = x, y\nparams = k=0.6, b=1.3\n"
     "inputs = dose, food\ndx = -k*x + b*dose*y\ndy = x - y*food\n"},
    {"hybrid: dosed expert + mlp on [z_e; z_m; u]",
     "[field]\nplugin = hybrid\nexpert = pk\nneural = net\n"
     "neural_states = 2\n"
     "[field.pk]\nplugin = expr\nstate = c, ef\nparams = k=0.5, ke=0.3\n"
     "inputs = dose\ndc = -k*c + dose\ndef = ke*(c - ef)\n"
     "[field.net]\nplugin = mlp\nlayers = 5, 9, 5\ntime = true\n"},
    {"hybrid: expert reads all, no input",
     "[field]\nplugin = hybrid\nexpert = lv\nneural = net\n"
     "neural_states = 1\nexpert_reads = all\n"
     "[field.lv]\nplugin = expr\nstate = x, y, m\nparams = a=1.5, b=0.7\n"
     "dx = a*x - b*x*y + m\ndy = -y + x*y\ndm = 0\n"
     "[field.net]\nplugin = mlp\nlayers = 3, 6, 3\n"},
    /* the test input's third channel reads 0.48 at t = 0.7: generated
     * rows (tests/fields/test_sde_gan.c mixes in real ones) */
    {"sde_gan: generator SDE + discriminator CDE",
     "[field]\nplugin = sde_gan\ngenerator = gen\ndiscriminator = disc\n"
     "channels = 2\n"
     "[field.gen]\nplugin = mlp\nlayers = 3, 5, 3\ntime = true\n"
     "diffusion = tanh\nnoise_dim = 2\n"
     "[field.disc]\nplugin = mlp\nlayers = 2, 5, 2\n"
     "diffusion = tanh\nnoise_dim = 3\n"},
};

START_TEST(conformance)
{
    check_field(conformance_configs[_i][0], conformance_configs[_i][1], 3, 3);
}
END_TEST

/*
 * The mlp's kernels work on blocks of up to 32 batch columns (padded to a
 * multiple of 8) and on 2 or 4 rows at a time; batches under 4 take
 * unpadded loops instead, with their own case for one row. Batch 3 above
 * takes only the latter. Here 77 = 2 x 32 + 8 + 5 takes every path of the
 * column loops, and 1 and 2 the narrow ones, in a field created for 85
 * rows (nothing may assume batch == batch_max). Odd widths (1, 5, 7, 13)
 * leave row remainders. Each config runs with every kernel set the CPU
 * runs.
 */
static const char *const large_batch_configs[][2] = {
    {"mlp sde, torchsde's shape", "[field]\nplugin = mlp\nlayers = 4, 64, 4\n"
     "diffusion = sigmoid\ng_layers = 64\n"},
    {"mlp odd widths, time + cube",
     "[field]\nplugin = mlp\nlayers = 5, 13, 7, 5\ntime = true\n"
     "input = cube\ndiffusion = softplus\ng_layers = 1, 6\n"},
    {"mlp sde, softplus = vector",
     "[field]\nplugin = mlp\nlayers = 3, 10, 3\nactivation = softplus\n"
     "diffusion = softplus\ng_layers = 6\nsoftplus = vector\n"},
    {"mlp dgemm and hand layers mixed",
     "[field]\nplugin = mlp\nlayers = 3, 12, 10, 3\nthin_width = 4\n"
     "activation = relu, tanh\n"},
    {"mlp lipswish, output tanh, general tanh diffusion",
     "[field]\nplugin = mlp\nlayers = 4, 13, 9, 4\nactivation = lipswish\n"
     "output = tanh\ndiffusion = tanh\ng_layers = 6\n"
     "g_activation = lipswish\nnoise_dim = 3\n"},
    {"mlp lipswish through dgemm, identity diffusion",
     "[field]\nplugin = mlp\nlayers = 3, 12, 10, 3\nthin_width = 4\n"
     "activation = lipswish\ndiffusion = identity\ng_activation = lipswish\n"},
};

START_TEST(conformance_large_batch)
{
    static const size_t batches[] = {1, 2, 77};
    const mlp_kernels *k = mlp_kernel_sets[_i % NSETS];
    const char *const *c = large_batch_configs[_i / NSETS];
    char label[160], ini[512];
    if (!mlp_cpu_runs(k)) {
        printf("skipped: this CPU does not run the %s kernels\n", k->name);
        return;
    }
    snprintf(ini, sizeof ini, "%skernels = %s\n", c[1], k->name);
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        snprintf(label, sizeof label, "%s, %s kernels, batch %zu", c[0],
                 k->name, batches[b]);
        check_field(label, ini, batches[b], 85);
    }
}
END_TEST

/* Every field plugin in the search path has a config above, so a new one
 * cannot skip the suite unnoticed. */
static int require_conformance_config(const nde_plugin_info *info,
                                      const char *path, void *user)
{
    (void)user;
    if (info->kind != NDE_KIND_FIELD)
        return 0;
    char needle[96];
    snprintf(needle, sizeof needle, "plugin = %s\n", info->name);
    size_t n = sizeof conformance_configs / sizeof conformance_configs[0];
    for (size_t i = 0; i < n; i++)
        if (strstr(conformance_configs[i][1], needle))
            return 0;
    ck_abort_msg("field plugin '%s' (%s) has no conformance config in "
                 "tests/fields/test_fields.c", info->name, path);
    return 1;
}

START_TEST(every_field_plugin_is_covered)
{
    nde_ctx *ctx = nde_ctx_create();
    ck_assert_int_eq(
        nde_plugin_foreach(ctx, require_conformance_config, NULL, NULL), 0);
    const nde_plugin_info *info;
    ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_FIELD, "sum", &info),
                     NDE_OK); /* the search did see the build tree */
    nde_ctx_destroy(ctx);
}
END_TEST

/* ---- mlp -------------------------------------------------------------- */

/* layers 1, 2, 1: f(y) = e tanh(a u + c) + f2 tanh(b u + d) + g */
/* An intervention around an SDE mlp (nde_field_create_clamped): its ops
 * against differences, the held state's drift and diffusion 0, the free
 * one's the mlp's, and its parameters, names and noise the mlp's. */
START_TEST(clamped_field)
{
    static const unsigned char held[3] = {0, 1, 0};
    const double t = 0.3, y[3] = {0.4, -0.2, 0.9};
    double th[200], f[3], c[3];
    loaded L;
    nde_field *cf;
    char a[64], b[64];

    load_ok(&L, "[field]\nplugin = mlp\nlayers = 3, 8, 3\n"
                "diffusion = softplus\n", 3);
    ck_assert_int_eq(nde_field_create_clamped(L.ctx, L.f, held, &cf),
                     NDE_OK);
    check_ops("clamped", cf, cf->type->eval, cf->type->vjp, 3, cf->dim);
    check_ops("clamped (diffusion)", cf, cf->type->diffusion,
              cf->type->diffusion_vjp, 3, cf->dim);
    ck_assert_uint_eq(cf->nparams, L.f->nparams);
    ck_assert_uint_le(cf->nparams, 200);
    ck_assert_int_eq(cf->noise, L.f->noise);
    ck_assert_int_eq(nde_field_init_params(cf, th, 5), NDE_OK);
    nde_field_param_name(cf, 7, a, sizeof a);
    nde_field_param_name(L.f, 7, b, sizeof b);
    ck_assert_str_eq(a, b);
    ck_assert_int_eq(nde_field_eval(cf, t, y, th, c, 1), NDE_OK);
    ck_assert_int_eq(nde_field_eval(L.f, t, y, th, f, 1), NDE_OK);
    ck_assert(c[1] == 0.0 && c[0] == f[0] && c[2] == f[2] && f[1] != 0.0);
    ck_assert_int_eq(nde_field_diffusion(cf, t, y, th, c, 1), NDE_OK);
    ck_assert_int_eq(nde_field_diffusion(L.f, t, y, th, f, 1), NDE_OK);
    ck_assert(c[1] == 0.0 && c[0] == f[0] && c[2] == f[2] && f[1] != 0.0);
    nde_field_destroy(cf);
    unload(&L);
}
END_TEST

START_TEST(mlp_hand_computed)
{
    const char *inputs[] = {"identity", "cube"};
    for (int cube = 0; cube < 2; cube++) {
        char ini[200];
        snprintf(ini, sizeof ini,
                 "[field]\nplugin = mlp\nlayers = 1, 2, 1\ninput = %s\n",
                 inputs[cube]);
        loaded L;
        load_ok(&L, ini, 2);
        ck_assert_uint_eq(L.f->dim, 1);
        ck_assert_uint_eq(L.f->nparams, 7);
        /* W1 (2x1), b1 (2), W2 (1x2), b2 (1) */
        const double theta[7] = {0.3, -1.2, 0.1, 0.4, 2.0, -0.5, 0.25};
        const double y[2] = {0.5, -1.5};
        double dy[2];
        ck_assert_int_eq(nde_field_eval(L.f, 0.0, y, theta, dy, 2), NDE_OK);
        for (int i = 0; i < 2; i++) {
            double u = cube ? y[i] * y[i] * y[i] : y[i];
            double want = 2.0 * tanh(0.3 * u + 0.1) -
                          0.5 * tanh(-1.2 * u + 0.4) + 0.25;
            ck_assert_double_eq_tol(dy[i], want, 1e-15);
        }
        unload(&L);
    }
}
END_TEST

START_TEST(mlp_time_input_and_names)
{
    loaded L;
    load_ok(&L, "[field]\nplugin = mlp\nlayers = 1, 1, 1\ntime = true\n"
                "activation = relu\n", 1);
    ck_assert_uint_eq(L.f->nparams, 2 + 1 + 1 + 1);
    /* W1 = [2, -3] on (y, t), b1 = 0.5, W2 = 4, b2 = -1 */
    const double theta[5] = {2.0, -3.0, 0.5, 4.0, -1.0};
    double y = 1.0, dy;
    ck_assert_int_eq(nde_field_eval(L.f, 0.25, &y, theta, &dy, 1), NDE_OK);
    ck_assert_double_eq_tol(dy, 4.0 * (2.0 - 0.75 + 0.5) - 1.0, 1e-15);
    ck_assert_int_eq(nde_field_eval(L.f, 1.0, &y, theta, &dy, 1), NDE_OK);
    ck_assert_double_eq(dy, -1.0); /* relu cut */
    char name[32];
    nde_field_param_name(L.f, 1, name, sizeof name);
    ck_assert_str_eq(name, "W1[0,1]");
    nde_field_param_name(L.f, 4, name, sizeof name);
    ck_assert_str_eq(name, "b2[0]");
    unload(&L);
}
END_TEST

START_TEST(mlp_glorot_init)
{
    loaded L;
    load_ok(&L, "[field]\nplugin = mlp\nlayers = 2, 50, 2\n", 1);
    const size_t p = L.f->nparams;
    ck_assert_uint_eq(p, 2 * 50 + 50 + 50 * 2 + 2);
    double *a = malloc(p * sizeof *a), *b = malloc(p * sizeof *b);
    nde_field_init_params(L.f, a, 1);
    nde_field_init_params(L.f, b, 2);
    double lim = sqrt(6.0 / 52.0), maxw = 0.0, mean = 0.0;
    for (size_t k = 0; k < 100; k++) {
        ck_assert(fabs(a[k]) < lim);
        maxw = fmax(maxw, fabs(a[k]));
        mean += a[k] / 100.0;
    }
    ck_assert(maxw > 0.8 * lim);    /* really spread over the interval */
    ck_assert(fabs(mean) < 0.1);
    for (size_t k = 100; k < 150; k++)
        ck_assert(a[k] == 0.0); /* b1 */
    ck_assert(a[150] != b[150]); /* another seed, other weights */
    free(a);
    free(b);
    unload(&L);
}
END_TEST

/* init = zero_last: the drift's last layer 0, the field 0 everywhere, the
 * layers before it as glorot's; init_scale: the last layer's glorot
 * weights times the scale, the others untouched. */
START_TEST(mlp_init_last_layer)
{
    loaded G, Z, S;
    load_ok(&G, "[field]\nplugin = mlp\nlayers = 2, 6, 2\n", 1);
    load_ok(&Z, "[field]\nplugin = mlp\nlayers = 2, 6, 2\n"
                "init = zero_last\n", 1);
    load_ok(&S, "[field]\nplugin = mlp\nlayers = 2, 6, 2\n"
                "init_scale = 0.25\n", 1);
    const size_t p = G.f->nparams, last = 2 * 6 + 6; /* W2 starts here */
    double g[32], z[32], sc[32], y[2] = {0.7, -1.3}, dy[2];

    ck_assert_uint_eq(p, last + 6 * 2 + 2);
    nde_field_init_params(G.f, g, 3);
    nde_field_init_params(Z.f, z, 3);
    nde_field_init_params(S.f, sc, 3);
    for (size_t k = 0; k < p; k++) {
        ck_assert(z[k] == (k < last ? g[k] : 0.0));
        ck_assert(sc[k] == (k < last ? g[k] : 0.25 * g[k]));
    }
    ck_assert(g[last] != 0.0);
    ck_assert_int_eq(nde_field_eval(Z.f, 0.0, y, z, dy, 1), NDE_OK);
    ck_assert(dy[0] == 0.0 && dy[1] == 0.0);
    unload(&G);
    unload(&Z);
    unload(&S);
}
END_TEST

START_TEST(mlp_nonfinite_is_retry)
{
    loaded L;
    load_ok(&L, "[field]\nplugin = mlp\nlayers = 2, 4, 2\n", 1);
    double theta[22], y[2] = {NAN, 0.0}, dy[2];
    nde_field_init_params(L.f, theta, 3);
    ck_assert_int_eq(nde_field_eval(L.f, 0.0, y, theta, dy, 1), NDE_ERETRY);
    unload(&L);
}
END_TEST

/* The SDE form: the drift is the ODE's for the same seed, the diffusion's
 * parameters follow, g > 0 everywhere (also far out), g by hand for a
 * one-layer diffusion network. */
START_TEST(mlp_sde_form)
{
    loaded L, M;
    load_ok(&L, "[field]\nplugin = mlp\nlayers = 2, 8, 2\n"
                "diffusion = softplus\ng_layers = 5\n", 4);
    load_ok(&M, "[field]\nplugin = mlp\nlayers = 2, 8, 2\n", 4);
    ck_assert_int_eq(L.f->noise, NDE_NOISE_DIAGONAL);
    ck_assert_int_eq(M.f->noise, NDE_NOISE_NONE);
    const size_t pd = M.f->nparams, p = L.f->nparams;
    ck_assert_uint_eq(p, pd + (2 * 5 + 5) + (5 * 2 + 2));
    double *a = malloc(p * sizeof *a), *b = malloc(pd * sizeof *b);
    ck_assert(a && b);
    nde_field_init_params(L.f, a, 11);
    nde_field_init_params(M.f, b, 11);
    ck_assert(memcmp(a, b, pd * sizeof *a) == 0);
    int nonzero = 0;
    for (size_t k = pd; k < pd + 10; k++)
        nonzero += a[k] != 0.0 && fabs(a[k]) < sqrt(6.0 / 7.0);
    ck_assert_int_eq(nonzero, 10); /* gW1: Glorot, from the seed */
    char name[32];
    nde_field_param_name(L.f, pd, name, sizeof name);
    ck_assert_str_eq(name, "gW1[0,0]");
    nde_field_param_name(L.f, p - 1, name, sizeof name);
    ck_assert_str_eq(name, "gb2[1]");
    nde_field_param_name(L.f, pd - 1, name, sizeof name);
    ck_assert_str_eq(name, "b2[1]");

    /* positivity, including states and weights where z is far negative */
    double y[8] = {0.1, -0.2, 3.0, 5.0, -40.0, 60.0, 1e3, -1e3}, g[8];
    for (size_t k = pd; k < p; k++)
        a[k] *= 25.0;
    ck_assert_int_eq(nde_field_diffusion(L.f, 0.0, y, a, g, 4), NDE_OK);
    for (int k = 0; k < 8; k++)
        ck_assert_msg(g[k] > 0.0 && isfinite(g[k]), "g[%d] = %g", k, g[k]);
    free(a);
    free(b);
    unload(&L);
    unload(&M);

    /* no hidden layer, sigmoid: g_i = 1 / (1 + exp(-(W y + b)_i)) */
    load_ok(&L, "[field]\nplugin = mlp\nlayers = 1, 3, 1\n"
                "diffusion = sigmoid\ng_layers =\n", 2);
    ck_assert_uint_eq(L.f->nparams, 10 + 2);
    double th[12] = {0}, y2[2] = {0.5, -2.0}, g2[2];
    th[10] = 1.5;  /* gW1 */
    th[11] = -0.25; /* gb1 */
    ck_assert_int_eq(nde_field_diffusion(L.f, 0.0, y2, th, g2, 2), NDE_OK);
    ck_assert_double_eq_tol(g2[0], 1.0 / (1.0 + exp(-0.5)), 1e-15);
    ck_assert_double_eq_tol(g2[1], 1.0 / (1.0 + exp(3.25)), 1e-15);
    th[10] = NAN;
    ck_assert_int_eq(nde_field_diffusion(L.f, 0.0, y2, th, g2, 1),
                     NDE_ERETRY);
    unload(&L);
}
END_TEST

/*
 * The kept forward passes (`cache`): the same bits as recomputing every
 * time. Fields with and without the cache run the same evals and VJPs
 * (drift and diffusion): first a random sequence over a few points and
 * their one-ulp neighbours (one entry of y, t, a parameter changed in
 * place and sometimes put back, a smaller batch), so VJPs run right
 * after an eval at their point and after other points displaced it;
 * then runs of VJPs that find nothing (points never evaluated), so that
 * the cache pauses and resumes.
 */
static const char *const cache_configs[] = {
    "[field]\nplugin = mlp\nlayers = 3, 9, 7, 3\ntime = true\n"
    "input = cube\ndiffusion = softplus\ng_layers = 5\n",
    "[field]\nplugin = mlp\nlayers = 2, 12, 2\nthin_width = 0\n"
    "diffusion = sigmoid\n",
    "[field]\nplugin = mlp\nlayers = 3, 9, 3\ndiffusion = softplus\n"
    "g_layers = 6\nnoise_dim = 4\n",     /* general noise: 3 x 4 out */
    "[field]\nplugin = mlp\nlayers = 3, 9, 7, 3\nactivation = lipswish, "
    "tanh\noutput = tanh\ndiffusion = tanh\ng_layers = 6\n"
    "g_activation = lipswish\nnoise_dim = 2\n",
};

typedef struct cache_run {
    loaded L[2];           /* cache = 0, cache = 3 */
    size_t d, p, n;
    size_t gm;             /* the diffusion's values per state (noise_dim
                              for general noise, else 1)                 */
    double *out[2], *vy[2], *vth[2], *v;
} cache_run;

/* The config with cache = 0 and with cache = 3. */
static void cache_load(cache_run *c, const char *config, size_t batch_max)
{
    char ini[256];
    for (int k = 0; k < 2; k++) {
        snprintf(ini, sizeof ini, "%scache = %d\n", config, k ? 3 : 0);
        load_ok(&c->L[k], ini, batch_max);
    }
}

/* kind 0: eval, 1: VJP for vy and vtheta, 2: vy only, 3: vtheta only;
 * on both fields, then their results compared bit for bit. */
static void cache_op(cache_run *c, int kind, int drift, double t,
                     const double *y, const double *theta, size_t rows,
                     const char *what, int step)
{
    const size_t w = drift ? c->d : c->d * c->gm;   /* output a row */
    fill_uniform(c->v, c->gm * c->n, 1.0);
    for (int k = 0; k < 2; k++) {
        nde_field *f = c->L[k].f;
        double *vy = kind == 3 ? NULL : c->vy[k];
        double *vth = kind == 2 ? NULL : c->vth[k];
        int rc;
        if (kind == 0)
            rc = drift ? nde_field_eval(f, t, y, theta, c->out[k], rows)
                       : nde_field_diffusion(f, t, y, theta, c->out[k], rows);
        else
            rc = drift ? nde_field_vjp(f, t, y, theta, c->v, vy, vth, rows)
                       : nde_field_diffusion_vjp(f, t, y, theta, c->v, vy,
                                                 vth, rows);
        ck_assert_int_eq(rc, NDE_OK);
    }
    if (kind == 0)
        ck_assert_msg(memcmp(c->out[0], c->out[1],
                             rows * w * sizeof(double)) == 0,
                      "%s, step %d: eval differs", what, step);
    else
        ck_assert_msg(memcmp(c->vy[0], c->vy[1], c->n * sizeof(double)) ==
                              0 &&
                          memcmp(c->vth[0], c->vth[1],
                                 c->p * sizeof(double)) == 0,
                      "%s, step %d: VJP differs from the recomputed one",
                      what, step);
}

START_TEST(mlp_cache_exact)
{
    enum { B = 5, NPOINTS = 4, OPS = 600 };
    cache_run c;
    cache_load(&c, cache_configs[_i], B);
    c.d = c.L[0].f->dim;
    c.p = c.L[0].f->nparams;
    c.n = B * c.d;
    c.gm = c.L[0].f->noise == NDE_NOISE_GENERAL ? c.L[0].f->noise_dim : 1;
    double *theta = malloc(c.p * sizeof *theta);
    double *y = malloc((NPOINTS + 1) * c.n * sizeof *y);
    double t[NPOINTS];
    c.v = malloc(c.gm * c.n * sizeof *c.v);
    for (int k = 0; k < 2; k++) {
        c.out[k] = malloc(c.gm * c.n * sizeof *c.out[k]);
        c.vy[k] = calloc(c.n, sizeof *c.vy[k]);
        c.vth[k] = calloc(c.p, sizeof *c.vth[k]);
        ck_assert(c.out[k] && c.vy[k] && c.vth[k]);
    }
    ck_assert(theta && y && c.v);
    nde_field_init_params(c.L[0].f, theta, 5);
    rng_state = 77;
    fill_uniform(y, (NPOINTS + 1) * c.n, 1.5);
    for (int k = 0; k < NPOINTS; k++)
        t[k] = 0.25 * k;

    for (int op = 0; op < OPS; op++) {
        const uint64_t r = nde_seed_derive(op, 3);
        const int k = (int)(r % NPOINTS), kind = (int)((r >> 8) % 4);
        const int drift = (r >> 16) & 1, perturb = (int)((r >> 20) % 6);
        const size_t j = (r >> 32) % c.n, q = (r >> 40) % c.p;
        double *yk = y + (size_t)k * c.n, tk = t[k];
        const double yj = yk[j], thq = theta[q];
        /* a neighbour of point k one ulp away, or point k itself */
        if (perturb == 1)
            yk[j] = nextafter(yj, INFINITY);
        else if (perturb == 2)
            tk = nextafter(tk, INFINITY);
        else if (perturb == 3)
            theta[q] = nextafter(thq, -INFINITY);
        else if (perturb == 4)
            yk[j] = -yj;
        cache_op(&c, kind, drift, tk, yk, theta, perturb == 5 ? B - 2 : B,
                 cache_configs[_i], op);
        if (perturb == 3 && (r >> 48) % 2)
            theta[q] = thq; /* sometimes the parameter comes back */
        yk[j] = yj;
    }

    /* Fresh fields: runs of VJPs at new points (which make the cache
     * pause: 12 misses with 3 points), evals at new points during the
     * pause, then a VJP at the point the first one displaced. */
    for (int k = 0; k < 2; k++)
        unload(&c.L[k]);
    cache_load(&c, cache_configs[_i], B);
    double *fresh = y + NPOINTS * c.n;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 12; i++) {
            fresh[0] += 0.001;
            if (i == 9)
                memcpy(y, fresh, c.n * sizeof *y);
            cache_op(&c, 1, 1, 0.5, fresh, theta, B, "runs of misses", i);
        }
        for (int i = 0; i < 48; i++) {
            fresh[0] += 0.001;
            cache_op(&c, 0, 1, 0.5, fresh, theta, B, "pause", i);
        }
        cache_op(&c, 1, 1, 0.5, y, theta, B, "after the pause", round);
    }
    for (int k = 0; k < 2; k++) {
        free(c.out[k]);
        free(c.vy[k]);
        free(c.vth[k]);
        unload(&c.L[k]);
    }
    free(theta);
    free(y);
    free(c.v);
}
END_TEST

/*
 * threads: every operation gives the same bits on 1 and on 2 threads, at
 * batches that split at and between the vector widths (thread_batch = 1
 * splits every batch of 4 rows or more), with the forward pass computed
 * anew and taken from the cache. The last config has a BLAS layer, whose
 * net is never split.
 */
static const char *const thread_configs[] = {
    "[field]\nplugin = mlp\nlayers = 32, 64, 32\n",
    "[field]\nplugin = mlp\nlayers = 3, 9, 7, 3\ntime = true\n"
    "input = cube\ndiffusion = softplus\ng_layers = 5\n",
    "[field]\nplugin = mlp\nlayers = 4, 16, 16, 4\nactivation = relu, "
    "softplus\nsoftplus = vector\ndiffusion = sigmoid\n",
    "[field]\nplugin = mlp\nlayers = 2, 12, 2\nthin_width = 0\n"
    "diffusion = sigmoid\n",
    "[field]\nplugin = mlp\nlayers = 3, 9, 3\ndiffusion = softplus\n"
    "g_layers = 6\nnoise_dim = 4\n",     /* general noise: 3 x 4 out */
    "[field]\nplugin = mlp\nlayers = 3, 9, 7, 3\nactivation = lipswish, "
    "tanh\noutput = tanh\ndiffusion = tanh\ng_layers = 6\n"
    "g_activation = lipswish\nnoise_dim = 2\n",
};
enum { NTHREAD_CONFIGS = sizeof thread_configs / sizeof *thread_configs };

START_TEST(mlp_threads_exact)
{
    static const size_t batches[] = {1, 7, 8, 9, 64, 129, 512, 33, 2};
    enum { BMAX = 512, NB = sizeof batches / sizeof *batches };
    const mlp_kernels *k = mlp_kernel_sets[_i % NSETS];
    const char *config = thread_configs[_i / NSETS];
    if (!mlp_cpu_runs(k)) {
        printf("skipped: this CPU does not run the %s kernels\n", k->name);
        return;
    }
    loaded L[2];
    char ini[512];
    for (int c = 0; c < 2; c++) {
        snprintf(ini, sizeof ini, "%skernels = %s\nthreads = %d\n"
                 "thread_batch = 1\n", config, k->name, c + 1);
        load_ok(&L[c], ini, BMAX);
    }
    const size_t d = L[0].f->dim, p = L[0].f->nparams, n = BMAX * d;
    const int sde = L[0].f->noise != NDE_NOISE_NONE;
    /* the diffusion's output and cotangent: d x M a row, general noise */
    const size_t gm = L[0].f->noise == NDE_NOISE_GENERAL ? L[0].f->noise_dim
                                                         : 1;
    double *theta = malloc(p * sizeof *theta), *y = malloc(n * sizeof *y);
    double *v = malloc(gm * n * sizeof *v), *out[2], *vy[2], *vth[2];
    ck_assert(theta && y && v);
    for (int c = 0; c < 2; c++) {
        out[c] = malloc(gm * n * sizeof *out[c]);
        vy[c] = calloc(n, sizeof *vy[c]);
        vth[c] = calloc(p, sizeof *vth[c]);
        ck_assert(out[c] && vy[c] && vth[c]);
    }
    nde_field_init_params(L[0].f, theta, 9);
    for (size_t j = 0; j < p; j++)
        theta[j] += 0.1 * uniform(); /* nonzero biases */
    rng_state = 5;
    /* op: eval, VJP (cached), VJP at a new point, vy only, vtheta only;
     * then the same with the diffusion */
    for (size_t b = 0; b < NB; b++)
        for (int op = 0; op < (sde ? 10 : 5); op++) {
            const size_t rows = batches[b];
            const int drift = op < 5, kind = op % 5;
            const size_t w = drift ? d : d * gm;    /* output a row */
            if (kind != 1)
                fill_uniform(y, rows * d, 2.0);
            fill_uniform(v, rows * w, 1.0);
            for (int c = 0; c < 2; c++) {
                nde_field *f = L[c].f;
                double *wy = kind == 4 ? NULL : vy[c];
                double *wth = kind == 3 ? NULL : vth[c];
                int rc;
                if (kind == 0)
                    rc = (drift ? nde_field_eval : nde_field_diffusion)(
                        f, 0.3, y, theta, out[c], rows);
                else
                    rc = (drift ? nde_field_vjp : nde_field_diffusion_vjp)(
                        f, 0.3, y, theta, v, wy, wth, rows);
                ck_assert_int_eq(rc, NDE_OK);
            }
            ck_assert_msg(memcmp(out[0], out[1], rows * w * sizeof(double)) ==
                                  0 &&
                              memcmp(vy[0], vy[1], n * sizeof(double)) == 0 &&
                              memcmp(vth[0], vth[1], p * sizeof(double)) == 0,
                          "%s kernels, %s: batch %zu, op %d differs between "
                          "1 and 2 threads", k->name, config, rows, op);
        }
    for (int c = 0; c < 2; c++) {
        free(out[c]);
        free(vy[c]);
        free(vth[c]);
        unload(&L[c]);
    }
    free(theta);
    free(y);
    free(v);
}
END_TEST

/* ---- linear, expr, sum ------------------------------------------------ */

START_TEST(linear_values)
{
    loaded L;
    load_ok(&L, "[field]\nplugin = linear\nA = 1, 2\n  3, 4\nb = 0.5, -1\n", 2);
    ck_assert_uint_eq(L.f->dim, 2);
    ck_assert_uint_eq(L.f->nparams, 6);
    double theta[6], y[4] = {1.0, -2.0, 0.25, 3.0}, dy[4];
    nde_field_init_params(L.f, theta, 99);
    const double want_theta[6] = {1, 2, 3, 4, 0.5, -1};
    for (int k = 0; k < 6; k++)
        ck_assert_double_eq(theta[k], want_theta[k]);
    ck_assert_int_eq(nde_field_eval(L.f, 0.0, y, theta, dy, 2), NDE_OK);
    ck_assert_double_eq(dy[0], 1 - 4 + 0.5);
    ck_assert_double_eq(dy[1], 3 - 8 - 1);
    ck_assert_double_eq(dy[2], 0.25 + 6 + 0.5);
    ck_assert_double_eq(dy[3], 0.75 + 12 - 1);
    unload(&L);

    load_ok(&L, "[field]\nplugin = linear\nA = 2\n", 1); /* b defaults to 0 */
    nde_field_init_params(L.f, theta, 0);
    ck_assert_double_eq(theta[1], 0.0);
    unload(&L);
}
END_TEST

/* ngm: the names follow the documented layout; zeroing the column group
 * b1.W1[*,2] makes dy_1 blind to y_2 and nothing else; the jvp is the
 * transpose of the vjp (<u, J v> = <J^T u, v>). */
START_TEST(ngm_layout_and_jvp)
{
    loaded L;
    char name[64];
    load_ok(&L, "[field]\nplugin = ngm\ndim = 3\nhidden = 4, 2\n", 2);
    const size_t block = 4 * 3 + 4 + 2 * 4 + 2 + 2 + 1;
    ck_assert_uint_eq(L.f->nparams, 3 * block);
    nde_field_param_name(L.f, block + 4 * 3 + 1, name, sizeof name);
    ck_assert_str_eq(name, "b1.b1[1]");
    nde_field_param_name(L.f, block + 3 * 1 + 2, name, sizeof name);
    ck_assert_str_eq(name, "b1.W1[1,2]");
    nde_field_param_name(L.f, 3 * block - 1, name, sizeof name);
    ck_assert_str_eq(name, "b2.b3[0]");

    double theta[3 * 41], y[6] = {0.3, -0.7, 1.1, 0.2, 0.5, -0.4};
    double y2[6], dy[6], dy2[6], u[6] = {0.4, -1.0, 0.6, 0.9, 0.1, -0.3};
    double v[6] = {-0.2, 0.8, 0.5, 0.3, -0.6, 1.2}, jv[6], vy[6] = {0};
    ck_assert_uint_le(3 * block, 3 * 41);
    nde_field_init_params(L.f, theta, 5);
    for (size_t h = 0; h < 4; h++)
        theta[block + 3 * h + 2] = 0.0;
    memcpy(y2, y, sizeof y);
    y2[2] += 0.5;
    y2[5] -= 0.25;
    ck_assert_int_eq(nde_field_eval(L.f, 0.0, y, theta, dy, 2), NDE_OK);
    ck_assert_int_eq(nde_field_eval(L.f, 0.0, y2, theta, dy2, 2), NDE_OK);
    for (size_t k = 0; k < 6; k++)
        if (k % 3 == 1)
            ck_assert_double_eq(dy[k], dy2[k]);
        else
            ck_assert(dy[k] != dy2[k]);

    ck_assert_int_eq(nde_field_jvp(L.f, 0.0, y, theta, v, jv, 2), NDE_OK);
    ck_assert_int_eq(nde_field_vjp(L.f, 0.0, y, theta, u, vy, NULL, 2),
                     NDE_OK);
    for (size_t n = 0; n < 2; n++) {
        double a = 0.0, b = 0.0;
        for (size_t k = 3 * n; k < 3 * n + 3; k++) {
            a += u[k] * jv[k];
            b += vy[k] * v[k];
        }
        ck_assert_msg(fabs(a - b) <= 1e-14 * (fabs(a) + 1.0),
                      "row %zu: <u, Jv> %.17g, <J^T u, v> %.17g", n, a, b);
        ck_assert(jv[3 * n + 1] != 0.0);
    }
    unload(&L);

    /* clamp = 1: dy_1 = 0 and (J v)_1 = 0, the other states as before */
    load_ok(&L, "[field]\nplugin = ngm\ndim = 3\nhidden = 4, 2\n"
                "clamp = 1\n", 2);
    ck_assert_int_eq(nde_field_eval(L.f, 0.0, y2, theta, dy, 2), NDE_OK);
    ck_assert_int_eq(nde_field_jvp(L.f, 0.0, y, theta, v, jv, 2), NDE_OK);
    for (size_t k = 0; k < 6; k++)
        if (k % 3 == 1) {
            ck_assert_double_eq(dy[k], 0.0);
            ck_assert_double_eq(jv[k], 0.0);
        } else {
            ck_assert_double_eq(dy[k], dy2[k]);
        }
    unload(&L);
    ck_assert_int_eq(load(&L, "[field]\nplugin = ngm\ndim = 3\nclamp = 3\n",
                          1), NDE_ECONFIG);
    ck_assert_ptr_nonnull(strstr(nde_ctx_message(L.ctx),
                                 "state 3 is not one of 0..2"));
    unload(&L);
}
END_TEST

static const char *const lv_ini =
    "[field]\nplugin = expr\nstate = x, y\n"
    "params = a=1.5, b=1.0, c=3.0, d=1.0\n"
    "dx = a*x - b*x*y\ndy = -c*y + d*x*y\n";

START_TEST(expr_lotka_volterra)
{
    loaded L;
    load_ok(&L, lv_ini, 2);
    ck_assert_uint_eq(L.f->dim, 2);
    ck_assert_uint_eq(L.f->nparams, 4);
    ck_assert_ptr_nonnull(L.f->state_names);
    ck_assert_str_eq(L.f->state_names[0], "x");
    ck_assert_str_eq(L.f->state_names[1], "y");
    char name[16];
    nde_field_param_name(L.f, 2, name, sizeof name);
    ck_assert_str_eq(name, "c");
    double theta[4], y[4] = {2.0, 0.5, 1.0, 3.0}, dy[4];
    nde_field_init_params(L.f, theta, 0);
    ck_assert_double_eq(theta[0], 1.5);
    ck_assert_double_eq(theta[3], 1.0);
    ck_assert_int_eq(nde_field_eval(L.f, 0.0, y, theta, dy, 2), NDE_OK);
    ck_assert_double_eq_tol(dy[0], 1.5 * 2 - 2 * 0.5, 1e-15);
    ck_assert_double_eq_tol(dy[1], -3 * 0.5 + 2 * 0.5, 1e-15);
    ck_assert_double_eq_tol(dy[2], 1.5 - 3, 1e-15);
    ck_assert_double_eq_tol(dy[3], -9 + 3, 1e-15);
    theta[0] = 2.0; /* parameters come from theta, not the config */
    ck_assert_int_eq(nde_field_eval(L.f, 0.0, y, theta, dy, 1), NDE_OK);
    ck_assert_double_eq_tol(dy[0], 2 * 2 - 2 * 0.5, 1e-15);
    unload(&L);
}
END_TEST

/* A field without parameters accepts theta = NULL (the UBSan build checks
 * that nothing is copied from it). */
START_TEST(expr_without_params_takes_null_theta)
{
    loaded L;
    double y[2] = {2.0, -1.0}, dy[2], v[2] = {1.0, 1.0}, vy[2] = {0, 0};
    load_ok(&L, "[field]\nplugin = expr\nstate = x\ndx = -x*x + t\n", 2);
    ck_assert_uint_eq(L.f->nparams, 0);
    ck_assert_int_eq(nde_field_eval(L.f, 0.5, y, NULL, dy, 2), NDE_OK);
    ck_assert_double_eq_tol(dy[0], -4.0 + 0.5, 1e-15);
    ck_assert_double_eq_tol(dy[1], -1.0 + 0.5, 1e-15);
    ck_assert_int_eq(nde_field_vjp(L.f, 0.5, y, NULL, v, vy, NULL, 2), NDE_OK);
    ck_assert_double_eq_tol(vy[0], -4.0, 1e-15);
    ck_assert_double_eq_tol(vy[1], 2.0, 1e-15);
    unload(&L);
}
END_TEST

/* Geometric Brownian motion dx = mu x dt + sigma x dW: g and its
 * derivatives by hand; calculus read by core. */
START_TEST(expr_gbm_diffusion)
{
    loaded L;
    load_ok(&L, "[field]\nplugin = expr\nstate = x\nparams = mu=0.5, "
                "sigma=0.3\ndx = mu*x\ngx = sigma*x\n"
                "calculus = stratonovich\n", 2);
    ck_assert_int_eq(L.f->noise, NDE_NOISE_DIAGONAL);
    ck_assert_int_eq(L.f->calculus, NDE_CALCULUS_STRATONOVICH);
    ck_assert_str_eq(nde_calculus_name(L.f->calculus), "stratonovich");
    ck_assert(L.f->type->info.provides & NDE_CAP_DIFFUSION);
    double theta[2], y[2] = {2.0, -0.5}, g[2], v[2] = {1.0, 3.0};
    double vy[2] = {0, 0}, vth[2] = {0, 0};
    nde_field_init_params(L.f, theta, 0);
    ck_assert_int_eq(nde_field_diffusion(L.f, 0.1, y, theta, g, 2), NDE_OK);
    ck_assert_double_eq_tol(g[0], 0.6, 1e-15);
    ck_assert_double_eq_tol(g[1], -0.15, 1e-15);
    ck_assert_int_eq(nde_field_diffusion_vjp(L.f, 0.1, y, theta, v, vy, vth,
                                             2), NDE_OK);
    ck_assert_double_eq_tol(vy[0], 0.3, 1e-15);     /* v sigma */
    ck_assert_double_eq_tol(vy[1], 0.9, 1e-15);
    ck_assert_double_eq(vth[0], 0.0);               /* g has no mu */
    ck_assert_double_eq_tol(vth[1], 2.0 - 1.5, 1e-15); /* sum v x */
    theta[1] = 0.0 / 0.0; /* a NaN diffusion asks for a retry */
    ck_assert_int_eq(nde_field_diffusion(L.f, 0.1, y, theta, g, 1),
                     NDE_ERETRY);
    unload(&L);

    /* default calculus; a state without a g key has g = 0 */
    load_ok(&L, "[field]\nplugin = expr\nstate = x, y\ndx = y\ndy = -x\n"
                "gy = 0.5*x\n", 1);
    ck_assert_int_eq(L.f->calculus, NDE_CALCULUS_SOLVER);
    ck_assert_str_eq(nde_calculus_name(L.f->calculus), "solver");
    double y2[2] = {4.0, 1.0}, g2[2] = {7.0, 7.0};
    ck_assert_int_eq(nde_field_diffusion(L.f, 0.0, y2, NULL, g2, 1), NDE_OK);
    ck_assert_double_eq(g2[0], 0.0);
    ck_assert_double_eq(g2[1], 2.0);
    unload(&L);

    /* without g keys: an ODE, as before */
    load_ok(&L, lv_ini, 1);
    ck_assert_int_eq(L.f->noise, NDE_NOISE_NONE);
    unload(&L);
    load_ok(&L, "[field]\nplugin = expr\nstate = x\ndx = -x\n"
                "calculus = solver\n", 1);
    ck_assert_int_eq(L.f->noise, NDE_NOISE_NONE);
    unload(&L);
    ck_assert_str_eq(nde_calculus_name(NDE_CALCULUS_ITO), "ito");
    ck_assert_str_eq(nde_calculus_name(17), "?");
}
END_TEST

START_TEST(sum_values_and_names)
{
    loaded L;
    load_ok(&L, "[field]\nplugin = sum\nparts = one, two\n"
                "[field.one]\nplugin = linear\nA = 1, 0\n  0, 2\n"
                "[field.two]\nplugin = expr\nstate = p, q\nparams = k=3\n"
                "dp = k*q\ndq = t\n", 1);
    ck_assert_uint_eq(L.f->nparams, 6 + 1);
    ck_assert_str_eq(L.f->state_names[0], "p"); /* the first part with names */
    char name[32];
    nde_field_param_name(L.f, 6, name, sizeof name);
    ck_assert_str_eq(name, "two.k");
    nde_field_param_name(L.f, 1, name, sizeof name);
    ck_assert_str_eq(name, "one.A[0,1]");
    double theta[7], y[2] = {1.0, 2.0}, dy[2];
    nde_field_init_params(L.f, theta, 5);
    ck_assert_int_eq(nde_field_eval(L.f, 0.5, y, theta, dy, 1), NDE_OK);
    ck_assert_double_eq_tol(dy[0], 1.0 + 3 * 2.0, 1e-15);
    ck_assert_double_eq_tol(dy[1], 4.0 + 0.5, 1e-15);
    unload(&L);
}
END_TEST

/* hybrid: z_e' is the expert's alone (the neural states do not reach
 * it), z_m' the neural part's outputs at z_m's places on [z_e; z_m; u],
 * row by row with each row's input; parameters expert first. */
/* Two rows of a one-channel dose, 2 then 0 and 5 then 1 (a jump at t =
 * 1), their segment selected for a step over [0.25, 0.75]. */
static const double dose_t[2] = {0.0, 1.0}, dose_u[2][2] = {{2.0, 0.0},
                                                          {5.0, 1.0}};

static nde_input *dose_two_rows(nde_ctx *ctx)
{
    nde_input *in;

    ck_assert_int_eq(nde_input_create(ctx, 2, 1, 2, NDE_INPUT_CONSTANT, &in),
                     NDE_OK);
    for (size_t r = 0; r < 2; r++)
        ck_assert_int_eq(nde_input_set_row(in, r, 2, dose_t, dose_u[r]),
                         NDE_OK);
    ck_assert_int_eq(nde_input_use_rows(in, 2), NDE_OK);
    nde_input_select(in, 0.25, 0.5);
    return in;
}

/* A sum hands its input to the parts that read one: a dosed expert plus
 * an mlp correction (a UDE with a treatment) is the two evaluated alone,
 * the expert with the input; without one set the sum refuses. */
START_TEST(sum_input_values)
{
    static const char ini[] =
        "[field]\nplugin = sum\nparts = pk, net\n"
        "[field.pk]\nplugin = expr\nstate = c\nparams = k=0.5\n"
        "inputs = dose\ndc = -k*c + dose\n"
        "[field.net]\nplugin = mlp\nlayers = 1, 5, 1\n";
    const double y[2] = {1.0, -0.4}, v[2] = {0.7, -1.3};
    double theta[64], dy[2], dp[2], dn[2], vy[2] = {0}, vp[2] = {0};
    double vn[2] = {0}, vth[64] = {0}, vthp[64] = {0};
    nde_field *pk, *net;
    nde_input *in;
    loaded L;

    load_ok(&L, ini, 2);
    ck_assert_uint_eq(L.f->ninputs, 1);
    ck_assert_int_eq(nde_field_create(L.ctx, L.cfg, "field.pk", 2, &pk),
                     NDE_OK);
    ck_assert_int_eq(nde_field_create(L.ctx, L.cfg, "field.net", 2, &net),
                     NDE_OK);
    ck_assert_uint_le(L.f->nparams, 64);
    ck_assert_int_eq(nde_field_init_params(L.f, theta, 3), NDE_OK);
    in = dose_two_rows(L.ctx);
    ck_assert_int_eq(nde_field_eval(L.f, 0.5, y, theta, dy, 2), NDE_EINVAL);
    ck_assert_int_eq(nde_field_set_input(L.f, in), NDE_OK);
    ck_assert_int_eq(nde_field_set_input(pk, in), NDE_OK);
    ck_assert_int_eq(nde_field_eval(L.f, 0.5, y, theta, dy, 2), NDE_OK);
    ck_assert_int_eq(nde_field_eval(pk, 0.5, y, theta, dp, 2), NDE_OK);
    ck_assert_int_eq(nde_field_eval(net, 0.5, y, theta + 1, dn, 2), NDE_OK);
    ck_assert_int_eq(nde_field_vjp(L.f, 0.5, y, theta, v, vy, vth, 2),
                     NDE_OK);
    ck_assert_int_eq(nde_field_vjp(pk, 0.5, y, theta, v, vp, vthp, 2),
                     NDE_OK);
    ck_assert_int_eq(nde_field_vjp(net, 0.5, y, theta + 1, v, vn, vthp + 1,
                                   2), NDE_OK);
    for (size_t r = 0; r < 2; r++) {
        ck_assert_double_eq(dp[r], -0.5 * y[r] + dose_u[r][0]);
        ck_assert_double_eq_tol(dy[r], dp[r] + dn[r], 1e-15);
        ck_assert_double_eq_tol(vy[r], vp[r] + vn[r], 1e-15);
    }
    for (size_t i = 0; i < L.f->nparams; i++)
        ck_assert_double_eq_tol(vth[i], vthp[i], 1e-15);
    nde_input_destroy(in);
    nde_field_destroy(pk);
    nde_field_destroy(net);
    unload(&L);
}
END_TEST

START_TEST(hybrid_values)
{
    static const char ini[] =
        "[field]\nplugin = hybrid\nexpert = pk\nneural = net\n"
        "neural_states = 2\n"
        "[field.pk]\nplugin = expr\nstate = c\nparams = k=0.5\n"
        "inputs = dose\ndc = -k*c + dose\n"
        "[field.net]\nplugin = mlp\nlayers = 4, 7, 4\n";
    const double y[6] = {1.0, 0.2, -0.3, 0.4, -0.6, 0.8};
    double theta[128], dy[6], dy2[6], ye[2], dye[2], xn[4], dyn[4];
    char name[32];
    nde_field *pk, *net;
    nde_input *in;
    loaded L;

    load_ok(&L, ini, 2);
    ck_assert_uint_eq(L.f->dim, 3);
    ck_assert_uint_eq(L.f->ninputs, 1);
    ck_assert_int_eq(nde_field_create(L.ctx, L.cfg, "field.pk", 2, &pk),
                     NDE_OK);
    ck_assert_int_eq(nde_field_create(L.ctx, L.cfg, "field.net", 1, &net),
                     NDE_OK);
    ck_assert_uint_eq(L.f->nparams, 1 + net->nparams);
    ck_assert_uint_le(L.f->nparams, 128);
    ck_assert_int_eq(nde_field_init_params(L.f, theta, 3), NDE_OK);
    ck_assert_double_eq(theta[0], 0.5);
    nde_field_param_name(L.f, 0, name, sizeof name);
    ck_assert_str_eq(name, "k");
    nde_field_param_name(L.f, 1, name, sizeof name);
    ck_assert_ptr_nonnull(strstr(name, "neural."));
    in = dose_two_rows(L.ctx);
    ck_assert_int_eq(nde_field_eval(L.f, 0.5, y, theta, dy, 2), NDE_EINVAL);
    ck_assert_int_eq(nde_field_set_input(L.f, in), NDE_OK);
    ck_assert_int_eq(nde_field_set_input(pk, in), NDE_OK);
    ck_assert_int_eq(nde_field_eval(L.f, 0.5, y, theta, dy, 2), NDE_OK);
    ye[0] = y[0];
    ye[1] = y[3];
    ck_assert_int_eq(nde_field_eval(pk, 0.5, ye, theta, dye, 2), NDE_OK);
    for (size_t r = 0; r < 2; r++) {
        ck_assert_double_eq(dy[3 * r], dye[r]);
        ck_assert_double_eq(dye[r], -0.5 * y[3 * r] + dose_u[r][0]);
        memcpy(xn, y + 3 * r, 3 * sizeof *xn);
        xn[3] = dose_u[r][0];
        ck_assert_int_eq(nde_field_eval(net, 0.5, xn, theta + 1, dyn, 1),
                         NDE_OK);
        ck_assert_double_eq(dy[3 * r + 1], dyn[1]);
        ck_assert_double_eq(dy[3 * r + 2], dyn[2]);
    }
    /* the neural states do not reach z_e' */
    {
        double y2[6];
        memcpy(y2, y, sizeof y2);
        y2[1] += 1.0;
        y2[5] -= 1.0;
        ck_assert_int_eq(nde_field_eval(L.f, 0.5, y2, theta, dy2, 2), NDE_OK);
        ck_assert_double_eq(dy2[0], dy[0]);
        ck_assert_double_eq(dy2[3], dy[3]);
        ck_assert(dy2[1] != dy[1]);
    }
    nde_field_destroy(pk);
    nde_field_destroy(net);
    unload(&L);
    nde_input_destroy(in);
}
END_TEST

START_TEST(sum_seeds_parts_apart)
{
    loaded L, M;
    load_ok(&L, "[field]\nplugin = sum\nparts = a, b\n"
                "[field.a]\nplugin = mlp\nlayers = 2, 4, 2\n"
                "[field.b]\nplugin = mlp\nlayers = 2, 4, 2\n", 1);
    load_ok(&M, "[field]\nplugin = mlp\nlayers = 2, 4, 2\n", 1);
    double ts[44], ta[22], tb[22];
    nde_field_init_params(L.f, ts, 7);
    nde_field_init_params(M.f, ta, nde_seed_derive(7, 0));
    nde_field_init_params(M.f, tb, nde_seed_derive(7, 1));
    ck_assert(memcmp(ts, ta, sizeof ta) == 0);
    ck_assert(memcmp(ts + 22, tb, sizeof tb) == 0);
    ck_assert(ts[0] != ts[22]);
    unload(&L);
    unload(&M);
}
END_TEST

/* ---- bad input -------------------------------------------------------- */

static const char *const bad_configs[][3] = {
    /* config, key, text the message must contain */
    {"[field]\nplugin = sum\nparts = a, b\n[field.a]\nplugin = expr\n"
     "state = c\ninputs = u\ndc = u\n[field.b]\nplugin = expr\n"
     "state = c\ninputs = u, w\ndc = u*w\n", "parts",
     "part 'b' reads an input of 2 channels but another part one of 1"},
    {"[field]\nplugin = mlp\nlayers = 2, 50, 3\n", "layers", "must equal"},
    {"[field]\nplugin = mlp\nlayers = 2\n", "layers", "at least 2"},
    {"[field]\nplugin = mlp\nlayers = 2, 0, 2\n", "layers", "width 2 is 0"},
    {"[field]\nplugin = mlp\nlayers = 2, 5, 5, 2\nactivation = tanh, relu, "
     "tanh\n", "activation", "expected 1 or 2 values"},
    {"[field]\nplugin = mlp\nlayers = 2, 5, 2\nactivation = tahn\n",
     "activation", "did you mean 'tanh'"},
    {"[field]\nplugin = mlp\nlayers = 2, 5, 2\nactivation = lipswich\n",
     "activation", "unknown activation 'lipswich' (did you mean "
     "'lipswish'?) (expected tanh, relu, softplus, identity or lipswish)"},
    {"[field]\nplugin = mlp\nlayers = 2, 5, 2\noutput = sigmoid\n",
     "output", "unknown output 'sigmoid' (expected identity or tanh)"},
    {"[field]\nplugin = mlp\nlayers = 2, 5, 2\ninput = square\n", "input",
     "unknown input transform 'square'"},
    {"[field]\nplugin = mlp\nlayers = 2, 5, 2\nkernels = neon\n", "kernels",
     "unknown kernels 'neon' (expected auto, avx512, avx2 or generic"},
    {"[field]\nplugin = mlp\nlayers = 2, 5, 2\nsoftplus = fast\n",
     "softplus", "unknown softplus 'fast' (expected libm or vector)"},
    {"[field]\nplugin = mlp\nlayers = 2, 5, 2\ncache = -1\n", "cache",
     "is '-1'; expected auto, or 0 (off) to 4096 forward passes"},
    {"[field]\nplugin = mlp\nlayers = 2, 5, 2\ncache = most\n", "cache",
     "is 'most'; expected auto, or 0 (off) to 4096 forward passes"},
    {"[field]\nplugin = mlp\nlayers = 2, 4096, 4096, 2\ncache = 4096\n",
     "cache", "(batch 1) exceed 1024 MiB; expected at most"},
    {"[field]\nplugin = mlp\nlayers = 2, 5, 2\nthreads = 0\n", "threads",
     "is '0'; expected auto or a count of threads from 1 to 64"},
    {"[field]\nplugin = mlp\nlayers = 2, 5, 2\nthread_batch = big\n",
     "thread_batch", "is 'big'; expected auto or a batch size from 1"},
    {"[field]\nplugin = mlp\n", "layers", "missing required key"},
    {"[field]\nplugin = mlp\nlayers = 2, 4, 2\ninit = he\n", "init",
     "'he': expected glorot or zero_last"},
    {"[field]\nplugin = mlp\nlayers = 2, 4, 2\ninit = zero_last\n"
     "init_scale = 0.1\n", "init_scale", "give one of the two"},
    {"[field]\nplugin = mlp\nlayers = 2, 4, 2\ninit_scale = -1\n",
     "init_scale", "outside"},
    {"[field]\nplugin = linear\nA = 1, 2, 3\n", "A", "square matrix"},
    {"[field]\nplugin = linear\nA = 1, 2\n  3, 4\nb = 1, 2, 3\n", "b",
     "expected 2 values"},
    {"[field]\nplugin = expr\nstate = x\ndx = x\ndz = 1\n", "dz",
     "'z' is not a state"},
    {"[field]\nplugin = expr\nstate = x, y\ndx = y\n", "dy",
     "missing equation for state 'y'"},
    {"[field]\nplugin = expr\nstate = x\ndx = k*x\n", "dx",
     "expression 'k*x' uses unknown variable 'k'"},
    {"[field]\nplugin = expr\nstate = x\ndx = 2*(x\n", "dx",
     "cannot parse expression '2*(x'"},
    {"[field]\nplugin = expr\nstate = x\ndx = foo(x)\n", "dx",
     "cannot parse expression 'foo(x)'"},
    {"[field]\nplugin = expr\nstate = x\ndx =\n", "dx", "empty expression"},
    {"[field]\nplugin = expr\nstate = x, e\ndx = 1\nde = 1\n", "state",
     "'e' is reserved by the expression library"},
    {"[field]\nplugin = expr\nstate = x\nparams = delta=1\ndx = -delta*x\n",
     "params", "'delta' is reserved by the expression library"},
    {"[field]\nplugin = expr\nstate = x, 2y\ndx = 1\n", "state",
     "'2y' is not usable as a variable name (a letter followed"},
    {"[field]\nplugin = expr\nstate = x, t\ndx = 1\n", "state",
     "'t' is the time"},
    {"[field]\nplugin = expr\nstate = x\nparams = x=1\ndx = 1\n", "params",
     "'x' is declared twice"},
    {"[field]\nplugin = sum\nparts = a\n[field.a]\nplugin = linear\nA = 1\n",
     "parts", "at least 2 parts"},
    {"[field]\nplugin = sum\nparts = a, b\n[field.a]\nplugin = linear\nA = 1\n",
     "parts", "part 'b' has no section [field.b]"},
    {"[field]\nplugin = sum\nparts = a, b\n[field.a]\nplugin = linear\nA = 1\n"
     "[field.b]\nplugin = linear\nA = 1, 0\n  0, 1\n",
     "parts", "part 'b' has dimension 2 but part 'a' has 1"},
    {"[field]\nplugin = sum\nparts = a, b\n[field.a]\nplugin = linear\nA = 1\n"
     "[field.b]\nplugin = sum\nparts = a, b\n",
     "parts", "part 'b' is this sum itself"},
    {"[field]\nplugin = sum\nparts = a, b\n[field.a]\nplugin = linear\nA = 1\n"
     "[field.b]\nplugin = sum\nparts = a, c\n[field.c]\nplugin = sum\n"
     "parts = a, b\n", "parts", "a cycle"},
    {"[field]\nplugin = second_order\ninner = a\n", "inner",
     "'a' has no section [field.a]"},
    {"[field]\nplugin = second_order\ninner = a\n[field.a]\nplugin = linear\n"
     "A = 1\n", "inner", "'a' has dimension 1; the state (x, v) needs an "
     "even one"},
    {"[field]\nplugin = second_order\ninner = a\n[field.a]\n"
     "plugin = second_order\ninner = b\n[field.b]\nplugin = second_order\n"
     "inner = a\n", "plugin", "this field is a part of itself"},
    {"[field]\nplugin = controlled\ninner = a\ncontrols = 2\n[field.a]\n"
     "plugin = linear\nA = 1, 0\n  0, 1\n", "controls",
     "2 controls leave no free state of 'a' (dimension 2)"},
    {"[field]\nplugin = controlled\ninner = a\n[field.a]\nplugin = linear\n"
     "A = 1, 0\n  0, 1\n", "controls", "missing"},
    {"[field]\nplugin = controlled\ninner = a\ncontrols = 1\n[field.a]\n"
     "plugin = expr\nstate = x, y\ndx = -x\ndy = -y\ngx = 1\n", "inner",
     "'a' has a diffusion; a data-controlled field is an ODE"},
    {"[field]\nplugin = hybrid\nexpert = a\nneural = b\nneural_states = 1\n"
     "[field.a]\nplugin = linear\nA = 1\n[field.b]\nplugin = linear\n"
     "A = 1, 0, 0\n  0, 1, 0\n  0, 0, 1\n", "neural",
     "the neural part has 3 states; it reads [z_e; z_m; u]: 1 expert + 1 "
     "neural states + 0 input channels = 2"},
    {"[field]\nplugin = hybrid\nexpert = a\nneural = b\nneural_states = 1\n"
     "expert_reads = all\n[field.a]\nplugin = linear\nA = 1\n[field.b]\n"
     "plugin = linear\nA = 1\n", "expert", "needs more than the 1 neural "
     "states; it has 1"},
    {"[field]\nplugin = hybrid\nexpert = a\nneural = b\nneural_states = 1\n"
     "expert_reads = some\n", "expert_reads", "'some': expected expert or "
     "all"},
    {"[field]\nplugin = hybrid\nexpert = a\nneural = b\nneural_states = 1\n"
     "[field.a]\nplugin = linear\nA = 1\n", "neural",
     "'b' has no section [field.b]"},
    {"[field]\nplugin = expr\nstate = x\ninputs = t\ndx = -x\n", "inputs",
     "'t' is the time and cannot name an input"},
    /* SDEs: the core's calculus key and expr's diffusion keys */
    {"[field]\nplugin = expr\nstate = x\ndx = -x\ncalculus = ito\n",
     "calculus", "'ito' is set but this 'expr' field has no diffusion"},
    {"[field]\nplugin = mlp\nlayers = 2, 4, 2\ncalculus = stratonovich\n",
     "calculus", "has no diffusion"},
    {"[field]\nplugin = expr\nstate = x\ndx = -x\ngx = x\ncalculus = itoo\n",
     "calculus", "unknown calculus 'itoo' (did you mean 'ito'?)"},
    {"[field]\nplugin = expr\nstate = x\ndx = -x\ngx = x\ncalculus = 1\n",
     "calculus", "expected ito, stratonovich or solver"},
    {"[field]\nplugin = expr\nstate = x, y\ndx = -x\ndy = x\ngz = 1\n",
     "gz", "'z' is not a state (the states are x, y; the diffusion of state x "
     "is gx)"},
    {"[field]\nplugin = expr\nstate = x\ndx = -x\ng = 1\n", "g",
     "unknown key"},
    {"[field]\nplugin = expr\nstate = x\ndx = -x\ngx = s*x\n", "gx",
     "expression 's*x' uses unknown variable 's'"},
    {"[field]\nplugin = expr\nstate = x\ndx = -x\ngx =\n", "gx",
     "empty expression"},
    {"[field]\nplugin = sum\nparts = a, b\n[field.a]\nplugin = linear\n"
     "A = 1\n[field.b]\nplugin = expr\nstate = x\ndx = 1\ngx = 1\n",
     "parts", "part 'b' has a diffusion"},
    {"[field]\nplugin = mlp\nlayers = 2, 4, 2\ndiffusion = softpuls\n",
     "diffusion", "unknown diffusion 'softpuls' (did you mean 'softplus'?)"},
    {"[field]\nplugin = mlp\nlayers = 2, 4, 2\ndiffusion = lipswish\n",
     "diffusion", "unknown diffusion 'lipswish' (expected none, softplus, "
     "sigmoid, tanh or identity)"},
    {"[field]\nplugin = mlp\nlayers = 2, 4, 2\ng_layers = 4\n",
     "g_layers", "set without a diffusion network"},
    {"[field]\nplugin = mlp\nlayers = 2, 4, 2\ndiffusion = sigmoid\n"
     "g_layers = 4, 0\n", "g_layers", "width 2 is 0"},
    {"[field]\nplugin = mlp\nlayers = 2, 4, 2\ndiffusion = sigmoid\n"
     "g_layers = 4, 4\ng_activation = tanh, tanh, tanh\n",
     "g_activation", "expected 1 or 2 values"},
};

START_TEST(bad_input)
{
    const char *ini = bad_configs[_i][0], *key = bad_configs[_i][1],
               *text = bad_configs[_i][2];
    loaded L;
    int status = load(&L, ini, 1);
    const char *msg = nde_ctx_message(L.ctx);
    char keyref[64];
    snprintf(keyref, sizeof keyref, "] %s:", key);
    ck_assert_msg(status == NDE_ECONFIG, "config %d: status %s (%s)", _i,
                  nde_status_name(status), msg);
    ck_assert_ptr_null(L.f);
    ck_assert_msg(strstr(msg, keyref) && strstr(msg, text) &&
                      strstr(msg, "test.ini:"),
                  "config %d: message '%s' lacks '%s' or '%s'", _i, msg,
                  keyref, text);
    unload(&L);
}
END_TEST

/* ---- libmatheval behaviour the expr plugin relies on -------------------- */

static double eval1(const char *text, double x, const char *dname,
                    double *deriv)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", text);
    void *ev = evaluator_create(buf);
    ck_assert_msg(ev != NULL, "'%s' does not parse", text);
    char *names[] = {"x"};
    double r = evaluator_evaluate(ev, 1, names, &x);
    if (dname) {
        void *d = evaluator_derivative(ev, (char *)dname);
        *deriv = evaluator_evaluate(d, 1, names, &x);
        evaluator_destroy(d);
    }
    evaluator_destroy(ev);
    return r;
}

START_TEST(matheval_quirks)
{
    double d;
    ck_assert_double_eq(eval1("x^2", -3.0, "x", &d), 9.0);
    ck_assert_double_eq(d, -6.0);
    ck_assert_double_eq(eval1("-x^2", 3.0, "x", &d), -9.0); /* -(x^2) */
    ck_assert_double_eq(d, -6.0);
    ck_assert_double_eq(eval1("2*-x", 3.0, "x", &d), -6.0);
    ck_assert_double_eq(d, -2.0);
    ck_assert_double_eq_tol(eval1("exp(x)", 1.0, "x", &d), M_E, 1e-15);
    ck_assert_double_eq_tol(d, M_E, 1e-15);
    ck_assert_double_eq(eval1("2^3^2", 0.0, NULL, NULL), 64.0); /* (2^3)^2 */
    ck_assert_double_eq_tol(eval1("e", 0.0, NULL, NULL), M_E, 1e-15);
    char empty[] = "", blank[] = "  ", implicit[] = "2x";
    ck_assert_ptr_null(evaluator_create(empty));
    ck_assert_ptr_null(evaluator_create(blank));
    ck_assert_ptr_null(evaluator_create(implicit));
}
END_TEST

/* ---- the mlp's vectorised tanh ---------------------------------------- */

/* relative error in units of DBL_EPSILON (2^-52) */
static double rel_err(double got, double want)
{
    if (want == 0.0)
        return got == 0.0 ? 0.0 : INFINITY;
    return fabs(got - want) / fabs(want);
}

START_TEST(tanh_accuracy)
{
    enum { N = 600001 };
    const mlp_kernels *k = mlp_kernel_sets[_i];
    if (!mlp_cpu_runs(k)) {
        printf("skipped: this CPU does not run the %s kernels\n", k->name);
        return;
    }
    void (*activate)(int, double *, size_t) = k->activate;
    double *x = malloc(N * sizeof *x), *r = malloc(N * sizeof *r);
    ck_assert(x && r);
    /* a uniform grid over [-30, 30] and a log grid over tiny to 30 */
    for (size_t i = 0; i < N / 2; i++)
        x[i] = -30.0 + 60.0 * (double)i / (double)(N / 2 - 1);
    for (size_t i = N / 2; i < N; i++) {
        double e = -320.0 + 322.0 * (double)(i - N / 2) / (double)(N / 2);
        x[i] = ((i & 1) ? -1.0 : 1.0) * 30.0 * pow(10.0, e) / 100.0;
    }
    memcpy(r, x, N * sizeof *r);
    activate(ACT_TANH, r, N);
    double worst = 0.0, at = 0.0;
    for (size_t i = 0; i < N; i++) {
        double e = rel_err(r[i], tanh(x[i]));
        if (e > worst) {
            worst = e;
            at = x[i];
        }
    }
    /* Measured worst on this grid: 5.1e-16 (2.3 DBL_EPSILON) for the
     * AVX-512 kernels, 4.4e-16 (2 DBL_EPSILON) for the baseline build;
     * 3 DBL_EPSILON = 6.7e-16 asserted. */
    ck_assert_msg(worst <= 3.0 * DBL_EPSILON,
                  "%s kernels: max relative error %.3g at x = %.17g",
                  k->name, worst, at);

    double special[] = {0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-20,
                        20.0, -20.5, 1e300, INFINITY, -INFINITY, NAN};
    const size_t ns = sizeof special / sizeof *special;
    memcpy(r, special, sizeof special);
    activate(ACT_TANH, r, ns);
    for (size_t i = 0; i + 1 < ns; i++) {
        ck_assert_msg(r[i] == tanh(special[i]) &&
                          signbit(r[i]) == signbit(special[i]),
                      "%s kernels: tanh(%g) = %.17g, libm %.17g", k->name,
                      special[i], r[i],
                      tanh(special[i]));
    }
    ck_assert(isnan(r[ns - 1]));
    free(x);
    free(r);
}
END_TEST

/* `softplus = vector` against libm's log1p(exp()) (itself within 1.5
 * ulps), relative: bench_activations measured 2.52 ulps at most against
 * long double; 4 DBL_EPSILON asserted. Underflow to subnormals and 0,
 * the infinities, NaN as libm's. */
START_TEST(softplus_vector_accuracy)
{
    enum { N = 400001 };
    const mlp_kernels *k = mlp_kernel_sets[_i];
    if (!mlp_cpu_runs(k)) {
        printf("skipped: this CPU does not run the %s kernels\n", k->name);
        return;
    }
    double *x = malloc(N * sizeof *x), *r = malloc(N * sizeof *r);
    ck_assert(x && r);
    for (size_t i = 0; i < N; i++)
        x[i] = -800.0 + 840.0 * (double)i / (double)(N - 1);
    memcpy(r, x, N * sizeof *r);
    k->activate(ACT_SOFTPLUS_VECTOR, r, N);
    double worst = 0.0, at = 0.0;
    for (size_t i = 0; i < N; i++) {
        double want = fmax(x[i], 0.0) + log1p(exp(-fabs(x[i])));
        double e = want < DBL_MIN ? fabs(r[i] - want) / 0x1p-1074
                                  : rel_err(r[i], want) / DBL_EPSILON;
        if (e > worst) {
            worst = e;
            at = x[i];
        }
    }
    ck_assert_msg(worst <= 4.0, "%s kernels: max error %.3g (eps or "
                  "subnormal steps) at z = %.17g", k->name, worst, at);
    double special[] = {-INFINITY, INFINITY, -1e300, 1e300, 0.0, NAN};
    const size_t ns = sizeof special / sizeof *special;
    memcpy(r, special, sizeof special);
    k->activate(ACT_SOFTPLUS_VECTOR, r, ns);
    for (size_t i = 0; i + 1 < ns; i++)
        ck_assert_msg(r[i] == fmax(special[i], 0.0) +
                                  log1p(exp(-fabs(special[i]))) ||
                          (i == 4 && fabs(r[i] - log(2.0)) < 1e-16),
                      "%s kernels: softplus(%g) = %.17g", k->name,
                      special[i], r[i]);
    ck_assert(isnan(r[ns - 1]));
    free(x);
    free(r);
}
END_TEST

/* lipswish(x) = 0.909 x sigmoid(x) (mlp.h), against long double on
 * [-800, 40] and a log grid of tiny |x|: within LIPSWISH_EPS relative
 * down to x = -708; below, where the sigmoid may be subnormal (0 below
 * -745), its rounding to a subnormal step is multiplied by 0.909 |x|:
 * there within LIPSWISH_EPS units of eps |lipswish(x)| + 0.909 |x| 2^-1074.
 * And within
 * LIPSWISH_SETS relative of the generic kernels' value (the sets group
 * the exp polynomial's operations differently). Large |x|, whose exp
 * would overflow, give finite values; +inf and NaN propagate. */
enum { LIPSWISH_EPS = 4, LIPSWISH_SETS = 4 };

START_TEST(lipswish_accuracy)
{
    enum { N = 400001 };
    const mlp_kernels *k = mlp_kernel_sets[_i];
    if (!mlp_cpu_runs(k)) {
        printf("skipped: this CPU does not run the %s kernels\n", k->name);
        return;
    }
    double *x = malloc(N * sizeof *x), *r = malloc(N * sizeof *r);
    double *g = malloc(N * sizeof *g);
    ck_assert(x && r && g);
    for (size_t i = 0; i < N / 2; i++)
        x[i] = -800.0 + 840.0 * (double)i / (double)(N / 2 - 1);
    for (size_t i = N / 2; i < N; i++) {
        double e = -300.0 + 301.0 * (double)(i - N / 2) / (double)(N / 2);
        x[i] = ((i & 1) ? -1.0 : 1.0) * pow(10.0, e);
    }
    memcpy(r, x, N * sizeof *r);
    memcpy(g, x, N * sizeof *g);
    k->activate(ACT_LIPSWISH, r, N);
    mlp_kernels_base.activate(ACT_LIPSWISH, g, N);
    double worst = 0.0, at = 0.0, apart = 0.0, apart_at = 0.0;
    for (size_t i = 0; i < N; i++) {
        const long double xl = x[i];
        const double want =
            (double)((long double)0.909 * xl / (1.0L + expl(-xl)));
        double e = x[i] < -708.0
                       ? fabs(r[i] - want) / (DBL_EPSILON * fabs(want) +
                                              0.909 * fabs(x[i]) * 0x1p-1074)
                       : rel_err(r[i], want) / DBL_EPSILON;
        if (e > worst) {
            worst = e;
            at = x[i];
        }
        e = x[i] < -708.0
                ? fabs(r[i] - g[i]) / (DBL_EPSILON * fabs(g[i]) +
                                       0.909 * fabs(x[i]) * 0x1p-1074)
                : rel_err(r[i], g[i]) / DBL_EPSILON;
        if (e > apart) {
            apart = e;
            apart_at = x[i];
        }
    }
    printf("lipswish, %s kernels: max error %.3g eps (x = %.17g), %.3g eps "
           "from generic (x = %.17g)\n", k->name, worst, at, apart,
           apart_at);
    ck_assert_msg(worst <= LIPSWISH_EPS, "%s kernels: max error %.3g (eps "
                  "or subnormal steps) at x = %.17g", k->name, worst, at);
    ck_assert_msg(apart <= LIPSWISH_SETS, "%s kernels: %.3g eps from the "
                  "generic kernels at x = %.17g", k->name, apart, apart_at);
    const double special[] = {-1e300, 1e300, -746.0, 710.0, -0.0, 0.0,
                              INFINITY, NAN};
    const size_t ns = sizeof special / sizeof *special;
    memcpy(r, special, sizeof special);
    k->activate(ACT_LIPSWISH, r, ns);
    ck_assert(r[0] == 0.0 && r[1] == 0.909 * 1e300 && r[2] == 0.0 &&
              r[3] == 0.909 * 710.0);
    ck_assert(r[4] == 0.0 && signbit(r[4]) && r[5] == 0.0 && !signbit(r[5]));
    ck_assert(r[6] == INFINITY && isnan(r[7]));
    free(x);
    free(r);
    free(g);
}
END_TEST

static Suite *fields_suite(void)
{
    Suite *s = suite_create("fields");
    TCase *tc = tcase_create("conformance");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, conformance, 0,
                        sizeof conformance_configs /
                            sizeof conformance_configs[0]);
    tcase_add_loop_test(tc, conformance_large_batch, 0,
                        NSETS * (sizeof large_batch_configs /
                                 sizeof large_batch_configs[0]));
    tcase_add_test(tc, every_field_plugin_is_covered);
    suite_add_tcase(s, tc);

    tc = tcase_create("plugins");
    tcase_add_test(tc, mlp_hand_computed);
    tcase_add_test(tc, clamped_field);
    tcase_add_test(tc, mlp_time_input_and_names);
    tcase_add_test(tc, mlp_glorot_init);
    tcase_add_test(tc, mlp_init_last_layer);
    tcase_add_test(tc, mlp_nonfinite_is_retry);
    tcase_add_test(tc, mlp_sde_form);
    tcase_add_loop_test(tc, mlp_cache_exact, 0,
                        sizeof cache_configs / sizeof cache_configs[0]);
    tcase_add_loop_test(tc, mlp_threads_exact, 0, NSETS * NTHREAD_CONFIGS);
    tcase_add_test(tc, linear_values);
    tcase_add_test(tc, ngm_layout_and_jvp);
    tcase_add_test(tc, expr_lotka_volterra);
    tcase_add_test(tc, expr_without_params_takes_null_theta);
    tcase_add_test(tc, expr_gbm_diffusion);
    tcase_add_test(tc, sum_values_and_names);
    tcase_add_test(tc, sum_seeds_parts_apart);
    tcase_add_test(tc, hybrid_values);
    tcase_add_test(tc, sum_input_values);
    tcase_add_loop_test(tc, bad_input, 0,
                        sizeof bad_configs / sizeof bad_configs[0]);
    tcase_add_test(tc, matheval_quirks);
    tcase_add_loop_test(tc, tanh_accuracy, 0, NSETS);
    tcase_add_loop_test(tc, softplus_vector_accuracy, 0, NSETS);
    tcase_add_loop_test(tc, lipswish_accuracy, 0, NSETS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fields_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
