/*
 * mlp - a multilayer perceptron vector field: dy = W_L s(... s(W_1 u + b_1)
 * ...) + b_L, where u is y (or y^3 elementwise, and t appended as one more
 * input when `time` is on). The output layer is affine, or with
 * `output = tanh` goes through tanh (torchsde's SDE-GAN generator ends its
 * drift so, examples/sde_gan.py, "to constrain the rate of change of the
 * hidden state"). The hidden activations: tanh, relu, softplus, identity
 * or lipswish (0.909 z sigmoid(z), mlp.h).
 *
 * Parameter layout: for each layer l = 1..L in order, W_l (out x in,
 * row-major) then b_l (out). With `time`, the first layer's input is
 * (u, t), so W_1's last column multiplies t.
 *
 * SDE form (`diffusion = softplus`, `sigmoid`, `tanh` or `identity`): a
 * second network of the same kind gives the diagonal diffusion,
 * g = s(W_L' ... + b_L') with s the softplus or the sigmoid so that g > 0
 * (the softplus underflows to 0 for pre-activations below about -745; the
 * sigmoid bottoms out at 3.3e-308 below -708), or tanh or the identity for
 * a signed g (a GAN generator's general-noise diffusion: torchsde's
 * examples/sde_gan.py ends it with tanh). Its input is y itself (no cube,
 * no t),
 * its hidden widths are `g_layers` (default: the drift's), its hidden
 * activations `g_activation`, and its output width is the state dimension,
 * or with `noise_dim = M` (general noise, nde/field.h) dim x M: the matrix
 * G, row-major, each entry through the same s.
 * Its parameters follow the drift's in theta, in the same layout.
 *
 * Speed: activations are kept feature-major (width x batch), so the batch
 * is the vectorised dimension of every loop. A layer whose input or output
 * width is at most `thin_width` runs in register-blocked kernels of our
 * own (mlp_kernels.c, built per instruction set); wider layers go through
 * OpenBLAS dgemm. tanh is our own branch-free version (libm's scalar tanh
 * alone costs more than the spiral MLP's arithmetic). Each net keeps its
 * last `cache` forward passes (mlp.h, mlp_cache.c), so that a VJP at the
 * point of a recent evaluation skips its forward pass. With `threads`, a
 * call on a large batch is shared by a pool of threads (nde/pool.h): each
 * computes a block of the batch's rows, then of the parameter gradient's
 * entries (each summed over the whole batch), so the bits are those of
 * one thread.
 *
 * The drift's Jacobian-vector product and its VJP (jvp, jvp_vjp) run in
 * plain scalar loops, one row at a time (mlp_tangent.c).
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "mlp.h"

/* Indexed by enum mlp_activation. */
static const char *const activation_names[] = {"tanh", "relu", "softplus",
                                               "identity", "lipswish", NULL};

/* ---- OpenBLAS under an address-space limit ---------------------------- */

/*
 * OpenBLAS (0.3.21, Debian 12) takes a work buffer of 128 MiB + one page
 * on its first dgemm in a thread (seen in gdb: malloc(134221824) from
 * blas_memory_alloc; BUFFER_SIZE is 32 << 22 in its common_x86_64.h) and,
 * when that allocation fails, retries forever: under `ulimit -v` the run
 * hangs instead of failing. Without a limit on the address space the
 * allocation does not fail (overcommit), so only then do we check: try
 * the allocation ourselves and, if it fits, make OpenBLAS take its buffer
 * now with a dgemm large enough to bypass its small-matrix path (OpenBLAS
 * keeps the buffer in its pool for later calls). The nde program runs
 * OpenBLAS on one thread under such a limit (cli/nde.c), so this one
 * buffer is all it needs.
 */
#define OPENBLAS_BUFFER_BYTES ((size_t)134221824)
#define BLAS_WARMUP_N 160

static int address_space_limited(void)
{
    struct rlimit as, data;
    return (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) ||
           (getrlimit(RLIMIT_DATA, &data) == 0 &&
            data.rlim_cur != RLIM_INFINITY);
}

static int blas_reserve(nde_ctx *ctx)
{
    static int reserved;
    double *a;
    void *probe;

    if (reserved || !address_space_limited())
        return NDE_OK;
    if (!(probe = malloc(OPENBLAS_BUFFER_BYTES)))
        return nde_error(ctx, NDE_ENOMEM,
                         "mlp: out of memory: OpenBLAS needs a 128 MiB work "
                         "buffer for the layers wider than thin_width, and "
                         "the address-space limit (ulimit -v / -d) leaves no "
                         "room for it; raise the limit, or set thin_width to "
                         "the widest layer so that nde's own kernels run "
                         "every layer");
    free(probe);
    if (!(a = calloc(3 * BLAS_WARMUP_N * BLAS_WARMUP_N, sizeof *a)))
        return nde_error(ctx, NDE_ENOMEM, "mlp: out of memory");
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BLAS_WARMUP_N,
                BLAS_WARMUP_N, BLAS_WARMUP_N, 1.0, a, BLAS_WARMUP_N,
                a + BLAS_WARMUP_N * BLAS_WARMUP_N, BLAS_WARMUP_N, 0.0,
                a + 2 * BLAS_WARMUP_N * BLAS_WARMUP_N, BLAS_WARMUP_N);
    free(a);
    reserved = 1;
    return NDE_OK;
}

static int uses_blas(const mlp_net *net)
{
    for (size_t l = 0; l < net->nlayers; l++)
        if (net->layer[l].blas)
            return 1;
    return 0;
}

/* ---- instruction sets -------------------------------------------------- */

/* `kernels`: auto (the best this CPU runs) or a set by name. */
static int pick_kernels(mlp_state *s, nde_section *sec, nde_ctx *ctx)
{
    const char *want;
    int status;
    if ((status = nde_get_string(sec, "kernels", &want, ctx)))
        return status;
    for (size_t i = 0; mlp_kernel_sets[i]; i++) {
        const mlp_kernels *k = mlp_kernel_sets[i];
        if (strcmp(want, "auto") != 0 && strcmp(want, k->name) != 0)
            continue;
        if (mlp_cpu_runs(k)) {
            s->kernels = k;
            return NDE_OK;
        }
        if (strcmp(want, "auto") != 0)
            return nde_section_error(sec, "kernels", ctx,
                                     "this CPU does not run the '%s' kernels",
                                     want);
    }
    return nde_section_error(sec, "kernels", ctx,
                             "unknown kernels '%s' (expected auto, avx512, "
                             "avx2 or generic, as built for this target)",
                             want);
}

static int mlp_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    const mlp_state *s = f->state;
    return s->kernels->eval(f, t, y, theta, dy, batch);
}

static int mlp_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *vy,
                   double *vtheta, size_t batch)
{
    const mlp_state *s = f->state;
    return s->kernels->vjp(f, t, y, theta, v, vy, vtheta, batch);
}

static int mlp_diffusion(nde_field *f, double t, const double *y,
                         const double *theta, double *g, size_t batch)
{
    const mlp_state *s = f->state;
    return s->kernels->diffusion(f, t, y, theta, g, batch);
}

static int mlp_diffusion_vjp(nde_field *f, double t, const double *y,
                             const double *theta, const double *v, double *vy,
                             double *vtheta, size_t batch)
{
    const mlp_state *s = f->state;
    return s->kernels->diffusion_vjp(f, t, y, theta, v, vy, vtheta, batch);
}

/* ---- parameters, config ------------------------------------------------ */


/* Glorot-uniform weights W ~ U(-a, a), a = sqrt(6 / (in + out)) (Glorot &
 * Bengio 2010), zero biases. Weight j of the whole vector is drawn from
 * nde_seed_derive(seed, j), so theta depends on the seed alone (and the
 * drift's weights do not depend on whether there is a diffusion). */
/* Glorot-uniform weights (the last layer's scaled by last_scale), zero
 * biases. */
static void init_net(const mlp_net *n, double *theta, uint64_t seed,
                     double last_scale)
{
    for (size_t l = 0; l < n->nlayers; l++) {
        const mlp_layer *ly = &n->layer[l];
        double a = sqrt(6.0 / (double)(ly->in + ly->out)) *
                   (l + 1 == n->nlayers ? last_scale : 1.0);
        for (size_t j = 0; j < ly->in * ly->out; j++) {
            uint64_t u = nde_seed_derive(seed, ly->w_off + j);
            double unit = (double)(u >> 11) * 0x1.0p-53; /* [0, 1) */
            theta[ly->w_off + j] = a * (2.0 * unit - 1.0);
        }
        memset(theta + ly->b_off, 0, ly->out * sizeof *theta);
    }
}

static int mlp_init_params(nde_field *f, double *theta, uint64_t seed)
{
    mlp_state *s = f->state;
    init_net(&s->drift, theta, seed, s->last_scale);
    init_net(&s->diffusion, theta, seed, 1.0);
    return NDE_OK;
}

/* Drift parameters are W1[o,i], b1[o], ...; the diffusion's gW1, gb1, ... */
static int mlp_param_name(const nde_field *f, size_t i, char *buf, size_t len)
{
    const mlp_state *s = f->state;
    const mlp_net *nets[2] = {&s->drift, &s->diffusion};
    const char *prefix[2] = {"", "g"};
    for (int k = 0; k < 2; k++)
        for (size_t l = 0; l < nets[k]->nlayers; l++) {
            const mlp_layer *ly = &nets[k]->layer[l];
            if (i < ly->w_off)
                continue;
            if (i < ly->b_off) {
                size_t j = i - ly->w_off;
                snprintf(buf, len, "%sW%zu[%zu,%zu]", prefix[k], l + 1,
                         j / ly->in, j % ly->in);
                return NDE_OK;
            }
            if (i < ly->b_off + ly->out) {
                snprintf(buf, len, "%sb%zu[%zu]", prefix[k], l + 1,
                         i - ly->b_off);
                return NDE_OK;
            }
        }
    return NDE_EINVAL;
}

static void destroy_net(mlp_net *n)
{
    mlp_cache_free(n);
    for (size_t l = 0; n->cot && l < n->nlayers; l++)
        free(n->cot[l]);
    free(n->cot);
    free(n->layer);
}

static void mlp_destroy(nde_field *f)
{
    mlp_state *s = f->state;
    if (!s)
        return;
    destroy_net(&s->drift);
    destroy_net(&s->diffusion);
    nde_pool_destroy(s->pool);
    free(s->g);
    free(s->gx);
    free(s->tan);
    free(s);
    f->state = NULL;
}

static int parse_activation(const char *word)
{
    for (int a = 0; activation_names[a]; a++)
        if (strcmp(word, activation_names[a]) == 0)
            return a;
    return -1;
}

/* Read the activations of net n's hidden layers from `key`. */
static int read_activations(mlp_net *n, const char *key, nde_section *sec,
                            nde_ctx *ctx)
{
    char **words = NULL;
    size_t count = 0;
    int status = nde_get_words(sec, key, &words, &count, ctx);
    if (status)
        return status;
    size_t nhidden = n->nlayers - 1;
    if (count != 1 && count != nhidden) {
        status = nde_section_error(sec, key, ctx,
                                   "expected 1 or %zu values (one per hidden "
                                   "layer), got %zu", nhidden, count);
        goto done;
    }
    for (size_t l = 0; l < nhidden; l++) {
        const char *word = words[count == 1 ? 0 : l];
        int act = parse_activation(word);
        if (act < 0) {
            const char *guess = nde_suggest(word, activation_names);
            status = nde_section_error(
                sec, key, ctx,
                "unknown activation '%s'%s%s%s (expected tanh, relu, "
                "softplus, identity or lipswish)", word,
                guess ? " (did you mean '" : "", guess ? guess : "",
                guess ? "'?)" : "");
            goto done;
        }
        n->layer[l].act = act;
    }
done:
    nde_strings_free(words);
    return status;
}

/* `softplus`: libm or vector; the latter marks every softplus of both
 * nets (hidden layers, the diffusion's output) ACT_SOFTPLUS_VECTOR. */
static int pick_softplus(mlp_state *s, nde_section *sec, nde_ctx *ctx)
{
    const char *word;
    int status;
    if ((status = nde_get_string(sec, "softplus", &word, ctx)))
        return status;
    if (strcmp(word, "libm") == 0)
        return NDE_OK;
    if (strcmp(word, "vector") != 0)
        return nde_section_error(sec, "softplus", ctx,
                                 "unknown softplus '%s' (expected libm or "
                                 "vector)", word);
    mlp_net *nets[2] = {&s->drift, &s->diffusion};
    for (int k = 0; k < 2; k++)
        for (size_t l = 0; l < nets[k]->nlayers; l++)
            if (nets[k]->layer[l].act == ACT_SOFTPLUS)
                nets[k]->layer[l].act = ACT_SOFTPLUS_VECTOR;
    if (s->diffusion.out_act == ACT_SOFTPLUS)
        s->diffusion.out_act = ACT_SOFTPLUS_VECTOR;
    return NDE_OK;
}

/* A count from lo to hi, or `auto` (if_auto, outside them); COUNT_BAD
 * for anything else. */
#define COUNT_BAD LONG_MIN
static long parse_count(const char *word, long lo, long hi, long if_auto)
{
    char *end;
    if (strcmp(word, "auto") == 0)
        return if_auto;
    long n = strtol(word, &end, 10);
    return end != word && *end == '\0' && n >= lo && n <= hi ? n
                                                             : COUNT_BAD;
}

/*
 * The smallest batch at which a call on net n pays for the threads
 * (`thread_batch = auto`): its work per row, in multiply-adds with an
 * activation counted as 16, reaching MLP_SPLIT_WORK. On the Fashion-MNIST
 * field (32-64-32 tanh: 5120 per row), 2 threads against 1 in
 *     build/bench/bench_threads --rounds 11
 * ran an eval 0.97 times as fast at batch 32, 1.19 at 64, 1.30 at 128,
 * and an eval + VJP pair 0.93 at 64, 1.01 at 128, 1.19 at 256; a training
 * iteration at batch 128 0.975 (the VJP's parameter gradient reads both
 * threads' columns): so from 192 rows.
 */
#define MLP_SPLIT_WORK (192 * 5120)

static size_t split_batch_auto(const mlp_net *n)
{
    size_t row = 0;
    for (size_t l = 0; l < n->nlayers; l++)
        row += n->layer[l].in * n->layer[l].out +
               (l + 1 < n->nlayers ? 16 * n->layer[l].out : 0);
    return (MLP_SPLIT_WORK + row - 1) / row;
}

/* `threads` and `thread_batch`, into s. */
static int read_threads(mlp_state *s, nde_section *sec, nde_ctx *ctx)
{
    const char *word;
    int status;
    if ((status = nde_get_string(sec, "threads", &word, ctx)))
        return status;
    long threads = parse_count(word, 1, MLP_MAX_THREADS, 0);
    if (threads == COUNT_BAD)
        return nde_section_error(sec, "threads", ctx,
                                 "is '%s'; expected auto or a count of "
                                 "threads from 1 to %d", word,
                                 MLP_MAX_THREADS);
    s->threads = threads > 0 ? (size_t)threads
                 : nde_cpu_count() >= 2 ? 2 : 1;
    if ((status = nde_get_string(sec, "thread_batch", &word, ctx)))
        return status;
    s->thread_from = parse_count(word, 1, 1000000000, 0);
    if (s->thread_from == COUNT_BAD)
        return nde_section_error(sec, "thread_batch", ctx,
                                 "is '%s'; expected auto or a batch size "
                                 "from 1", word);
    return NDE_OK;
}

/* Whether some call on net n is split (split_batch set by plan_split; 0
 * for a net never built, the ODE's diffusion). */
static int net_splits(const mlp_net *n, size_t batch_max)
{
    return n->split_batch && n->split_batch <= batch_max;
}

/* Whether net n's calls are split between the threads, from which batch,
 * and so the columns of its arrays; never a net with a BLAS layer
 * (OpenBLAS runs its own threads, and its sums need not be the same on a
 * part of the columns). */
static void plan_split(const mlp_state *s, mlp_net *n, size_t batch_max)
{
    n->split_batch = 0;
    if (s->threads > 1 && !uses_blas(n))
        n->split_batch = s->thread_from > 0 ? (size_t)s->thread_from
                                            : split_batch_auto(n);
    n->cols = net_splits(n, batch_max) ? mlp_cols(batch_max, s->threads)
                                       : mlp_ld(batch_max);
}

/* The pool of the data-parallel kernels, when a net's calls can be split
 * (none for one thread). */
static int start_pool(nde_field *f, mlp_state *s, nde_ctx *ctx)
{
    if (net_splits(&s->drift, f->batch_max) ||
        net_splits(&s->diffusion, f->batch_max))
        return nde_pool_create(ctx, s->threads, &s->pool);
    return NDE_OK;
}

/* Widths must be in 1..1000000; `first` numbers them in messages. */
static int check_widths(const long *w, size_t n, size_t first,
                        const char *key, nde_section *sec, nde_ctx *ctx)
{
    for (size_t l = 0; l < n; l++)
        if (w[l] < 1 || w[l] > 1000000)
            return nde_section_error(sec, key, ctx,
                                     "width %zu is %ld; widths must be in "
                                     "1..1000000", l + first, w[l]);
    return NDE_OK;
}

/* Lay out net n: input width in0, hidden widths hidden[0..nhidden), output
 * dim; parameters from *off on. Tracks the largest width for the shared
 * scratch. (Its arrays are allocated once its activations are read:
 * finish_net.) */
static int build_net(mlp_net *n, size_t in0, const long *hidden,
                     size_t nhidden, size_t dim, long thin_width,
                     size_t *off, size_t *maxw)
{
    n->nlayers = nhidden + 1;
    n->in0 = in0;
    n->out_act = ACT_IDENTITY;
    n->layer = calloc(n->nlayers, sizeof *n->layer);
    if (!n->layer)
        return NDE_ENOMEM;
    n->p0 = *off;
    for (size_t l = 0; l < n->nlayers; l++) {
        mlp_layer *ly = &n->layer[l];
        ly->in = l == 0 ? in0 : (size_t)hidden[l - 1];
        ly->out = l < nhidden ? (size_t)hidden[l] : dim;
        ly->w_off = *off;
        ly->b_off = *off + ly->in * ly->out;
        *off = ly->b_off + ly->out;
        ly->act = ACT_IDENTITY;
        ly->blas = ly->in > (size_t)thin_width && ly->out > (size_t)thin_width;
        if (ly->out > *maxw)
            *maxw = ly->out;
    }
    n->p1 = *off;
    return NDE_OK;
}

/* The most memory the kept forward passes of one net may take. */
#define CACHE_BYTES_MAX (1024u << 20)

/*
 * `cache = auto` (the default): as many passes as fit in an L2-sized
 * CACHE_AUTO_BYTES, from CACHE_AUTO_MIN to CACHE_AUTO_MAX. Small batches
 * get enough for the discrete adjoint's replays of a whole solve's stages
 * to find theirs (the spiral's 10 KB passes: 50; `nde train
 * examples/spiral.ini` with dopri5 at 1e-3/1e-6 and `discrete`, 6000
 * iterations: 1.15 s with 8, 0.97 s with 64, the same bits); large ones
 * keep 8, since passes spread over more memory than the caches hold
 * slowed bench_sde's reversible adjoint (128 passes, 8.6 MB).
 */
#define CACHE_AUTO_BYTES (512u << 10)
#define CACHE_AUTO_MIN 8
#define CACHE_AUTO_MAX 64
#define CACHE_AUTO (-1L)

/* Net n's activations from `key` (read_activations), how its calls are
 * split (plan_split), then its cotangents and forward passes (npoints, or
 * CACHE_AUTO). */
static int finish_net(const mlp_state *s, mlp_net *n, size_t dim,
                      size_t batch_max, long npoints, const char *key,
                      nde_section *sec, nde_ctx *ctx)
{
    int status = read_activations(n, key, sec, ctx);
    if (status)
        return status;
    plan_split(s, n, batch_max);
    if (!(n->cot = calloc(n->nlayers, sizeof *n->cot)))
        return nde_error(ctx, NDE_ENOMEM, "mlp: out of memory");
    for (size_t l = 0; l < n->nlayers; l++)
        if (!(n->cot[l] = mlp_alloc(n->cols * n->layer[l].out)))
            return nde_error(ctx, NDE_ENOMEM, "mlp: out of memory");
    const size_t bytes = mlp_cache_bytes(n, dim, batch_max);
    if (npoints == CACHE_AUTO) {
        const size_t fit = CACHE_AUTO_BYTES / bytes;
        npoints = fit < CACHE_AUTO_MIN   ? CACHE_AUTO_MIN
                  : fit > CACHE_AUTO_MAX ? CACHE_AUTO_MAX
                                         : (long)fit;
    }
    n->keep = npoints > 0;
    if (npoints > 1 && bytes > CACHE_BYTES_MAX / (size_t)npoints)
        return nde_section_error(sec, "cache", ctx, "%ld forward passes of "
                                 "%zu bytes each (batch %zu) exceed %u MiB; "
                                 "expected at most %zu", npoints, bytes,
                                 batch_max, CACHE_BYTES_MAX >> 20,
                                 CACHE_BYTES_MAX / bytes);
    if (mlp_cache_alloc(n, dim, batch_max, (size_t)npoints))
        return nde_error(ctx, NDE_ENOMEM, "mlp: out of memory");
    return NDE_OK;
}

/* `diffusion`, `g_layers`, `g_activation`, `noise_dim`: the SDE form. */
static int build_diffusion(nde_field *f, mlp_state *s, nde_section *sec,
                           const long *drift_hidden, size_t ndrift_hidden,
                           long thin_width, long npoints, size_t *off,
                           size_t *maxw, nde_ctx *ctx)
{
    const char *kind;
    long *widths = NULL, noise_dim;
    size_t nwidths = 0;
    int status;
    if ((status = nde_get_string(sec, "diffusion", &kind, ctx)) ||
        (status = nde_get_long_min(sec, "noise_dim", 0, &noise_dim, ctx)))
        return status;
    if (strcmp(kind, "none") == 0) {
        const char *extra = nde_section_has(sec, "g_layers")
                                ? "g_layers"
                                : nde_section_has(sec, "g_activation")
                                      ? "g_activation"
                                      : nde_section_has(sec, "noise_dim")
                                            ? "noise_dim"
                                            : NULL;
        if (extra)
            return nde_section_error(sec, extra, ctx,
                                     "set without a diffusion network (add "
                                     "diffusion = softplus, sigmoid, tanh or "
                                     "identity)");
        return NDE_OK;
    }
    int act;
    if (strcmp(kind, "softplus") == 0) {
        act = ACT_SOFTPLUS;
    } else if (strcmp(kind, "sigmoid") == 0) {
        act = ACT_SIGMOID;
    } else if (strcmp(kind, "tanh") == 0) {
        act = ACT_TANH;
    } else if (strcmp(kind, "identity") == 0) {
        act = ACT_IDENTITY;
    } else {
        static const char *const kinds[] = {"none", "softplus", "sigmoid",
                                            "tanh", "identity", NULL};
        const char *guess = nde_suggest(kind, kinds);
        return nde_section_error(sec, "diffusion", ctx,
                                 "unknown diffusion '%s'%s%s%s (expected "
                                 "none, softplus, sigmoid, tanh or "
                                 "identity)", kind,
                                 guess ? " (did you mean '" : "",
                                 guess ? guess : "", guess ? "'?)" : "");
    }
    if ((status = nde_get_longs(sec, "g_layers", &widths, &nwidths, ctx)))
        return status;
    const int own = nde_section_has(sec, "g_layers");
    const long *hidden = own ? widths : drift_hidden;
    const size_t nhidden = own ? nwidths : ndrift_hidden;
    if ((status = check_widths(hidden, nhidden, 1, "g_layers", sec, ctx)))
        goto done;
    /* general noise: the output is G, dim x noise_dim (nde/field.h) */
    const size_t out = f->dim * (noise_dim ? (size_t)noise_dim : 1);
    if (build_net(&s->diffusion, f->dim, hidden, nhidden, out, thin_width,
                  off, maxw)) {
        status = nde_error(ctx, NDE_ENOMEM, "mlp: out of memory");
        goto done;
    }
    s->diffusion.out_act = act;
    if ((status = finish_net(s, &s->diffusion, f->dim, f->batch_max, npoints,
                             "g_activation", sec, ctx)))
        goto done;
    f->noise = noise_dim ? NDE_NOISE_GENERAL : NDE_NOISE_DIAGONAL;
    f->noise_dim = (size_t)noise_dim;
done:
    free(widths);
    return status;
}

/* `output`: the drift's output activation, identity or tanh. */
static int read_output(mlp_net *n, nde_section *sec, nde_ctx *ctx)
{
    const char *word;
    int status;
    if ((status = nde_get_string(sec, "output", &word, ctx)))
        return status;
    if (strcmp(word, "tanh") == 0)
        n->out_act = ACT_TANH;
    else if (strcmp(word, "identity") != 0)
        return nde_section_error(sec, "output", ctx,
                                 "unknown output '%s' (expected identity or "
                                 "tanh)", word);
    return NDE_OK;
}

/* init and init_scale: the scale of the drift's last layer's weights. */
static int read_init(mlp_state *s, nde_section *sec, nde_ctx *ctx)
{
    const char *init;
    int status;

    if ((status = nde_get_string(sec, "init", &init, ctx)) ||
        (status = nde_get_double_in(sec, "init_scale", 0.0, 1, HUGE_VAL, 0,
                                    &s->last_scale, ctx)))
        return status;
    if (strcmp(init, "zero_last") == 0) {
        if (nde_section_has(sec, "init_scale"))
            return nde_section_error(sec, "init_scale", ctx,
                                     "init = zero_last already sets the last "
                                     "layer to 0; give one of the two");
        s->last_scale = 0.0;
    } else if (strcmp(init, "glorot") != 0)
        return nde_section_error(sec, "init", ctx, "'%s': expected glorot "
                                 "or zero_last", init);
    return NDE_OK;
}

static int mlp_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    mlp_state *s = calloc(1, sizeof *s);
    long *widths = NULL;
    size_t nwidths = 0;
    int status;
    if (!sec) {
        free(s);
        return nde_error(ctx, NDE_EINVAL, "mlp: needs a config section");
    }
    if (!s)
        return nde_error(ctx, NDE_ENOMEM, "mlp: out of memory");
    f->state = s;

    status = nde_get_longs(sec, "layers", &widths, &nwidths, ctx);
    if (status)
        return status;
    if (nwidths < 2) {
        status = nde_section_error(sec, "layers", ctx,
                                   "need at least 2 widths (input, output), "
                                   "got %zu", nwidths);
        goto done;
    }
    if ((status = check_widths(widths, nwidths, 1, "layers", sec, ctx)))
        goto done;
    if (widths[nwidths - 1] != widths[0]) {
        status = nde_section_error(sec, "layers", ctx,
                                   "the output width %ld must equal the state "
                                   "dimension (the first width, %ld)",
                                   widths[nwidths - 1], widths[0]);
        goto done;
    }

    int time_input = 0, cube_input = 0;
    long thin_width = 0, npoints = 0;
    const char *input = NULL, *cache = NULL;
    if ((status = nde_get_bool(sec, "time", &time_input, ctx)) ||
        (status = nde_get_string(sec, "input", &input, ctx)) ||
        (status = nde_get_long(sec, "thin_width", &thin_width, ctx)) ||
        (status = nde_get_string(sec, "cache", &cache, ctx)))
        goto done;
    if ((npoints = parse_count(cache, 0, 4096, CACHE_AUTO)) == COUNT_BAD) {
        status = nde_section_error(sec, "cache", ctx,
                                   "is '%s'; expected auto, or 0 (off) to "
                                   "4096 forward passes", cache);
        goto done;
    }
    if (strcmp(input, "identity") == 0) {
        cube_input = 0;
    } else if (strcmp(input, "cube") == 0) {
        cube_input = 1;
    } else {
        status = nde_section_error(sec, "input", ctx,
                                   "unknown input transform '%s' (expected "
                                   "identity or cube)", input);
        goto done;
    }
    if ((status = pick_kernels(s, sec, ctx)) ||
        (status = read_init(s, sec, ctx)))
        goto done;

    const size_t dim = (size_t)widths[0], in0 = dim + (time_input ? 1 : 0);
    f->dim = dim;
    size_t off = 0, maxw = in0;
    s->drift.cube = cube_input;
    s->drift.time = time_input;
    if ((status = read_threads(s, sec, ctx)))
        goto done;
    if (build_net(&s->drift, in0, widths + 1, nwidths - 2, dim, thin_width,
                  &off, &maxw))
        goto nomem;
    if ((status = finish_net(s, &s->drift, dim, f->batch_max, npoints,
                             "activation", sec, ctx)) ||
        (status = read_output(&s->drift, sec, ctx)) ||
        (status = build_diffusion(f, s, sec, widths + 1, nwidths - 2,
                                  thin_width, npoints, &off, &maxw,
                                  ctx)) ||
        (status = pick_softplus(s, sec, ctx)))
        goto done;

    const size_t cols = s->drift.cols > s->diffusion.cols ? s->drift.cols
                                                          : s->diffusion.cols;
    s->g = mlp_alloc(cols * maxw);
    s->gx = mlp_alloc(cols * maxw);
    if (!s->g || !s->gx || mlp_tangent_alloc(s))
        goto nomem;

    if ((status = start_pool(f, s, ctx)))
        goto done;
    f->pool = s->pool;
    if ((uses_blas(&s->drift) || uses_blas(&s->diffusion)) &&
        (status = blas_reserve(ctx)))
        goto done;
    f->nparams = off;
    status = NDE_OK;
    goto done;
nomem:
    status = nde_error(ctx, NDE_ENOMEM, "mlp: out of memory");
done:
    free(widths);
    return status;
}

static const nde_key mlp_keys[] = {
    {"layers", NDE_KEY_INTS, NULL,
     "layer widths from input to output, e.g. 2, 50, 2; the first and the "
     "last are the state dimension"},
    {"activation", NDE_KEY_WORDS, "tanh",
     "tanh, relu, softplus, identity or lipswish (0.909 x sigmoid(x), "
     "1-Lipschitz: Kidger et al. 2021's SDE-GAN): one per hidden layer, or "
     "one for all"},
    {"output", NDE_KEY_WORD, "identity",
     "identity or tanh: the drift's output, after its last affine layer "
     "(tanh bounds each component of dy/dt to (-1, 1), as torchsde's "
     "SDE-GAN generator)"},
    {"time", NDE_KEY_BOOL, "false",
     "feed t to the first layer as one more input"},
    {"input", NDE_KEY_WORD, "identity",
     "identity or cube: elementwise transform of y before the first layer"},
    {"init", NDE_KEY_WORD, "glorot",
     "the initial weights: glorot (Glorot-uniform, biases 0) or zero_last "
     "(the drift's last layer 0 too: the field starts as 0, e.g. a "
     "correction beside a known model)"},
    {"init_scale", NDE_KEY_DOUBLE, "1",
     "a factor on the drift's last layer's initial weights (a small "
     "correction: 0.01); >= 0"},
    {"seed", NDE_KEY_INT, "1",
     "seed of the initial weights when the program is not given one; the "
     "weights come from the seed passed to init_params, which the program "
     "takes from here"},
    {"thin_width", NDE_KEY_INT, "64",
     "a layer whose input or output width is at most this runs in nde's "
     "own kernels, a wider one through BLAS dgemm (0: BLAS for every "
     "layer); the own kernels beat single-threaded OpenBLAS up to about "
     "512 wide, 2-threaded OpenBLAS from about 256"},
    {"cache", NDE_KEY_WORD, "auto",
     "forward passes kept (0 to 4096, at most 1 GiB) so that a VJP at the "
     "point of a recent evaluation (same t, y and parameters, bit for bit) "
     "skips the forward pass: an RK step's VJP after its stages needs as "
     "many as the solver has stages, a discrete adjoint's replay of a whole "
     "solve as many as the solve has evaluations (it goes back over them); "
     "auto: as many as fit in 512 KiB, 8 to 64 (the spiral's 20 rows: 50; "
     "a batch of 2048: 8); 0: recompute every time (the results are the "
     "same)"},
    {"softplus", NDE_KEY_WORD, "libm",
     "libm (glibc's log1p(exp()), scalar) or vector (nde's own exp and "
     "log1p, vectorised: about 7x faster per element with the avx512 "
     "kernels, within 2.6 ulps; results differ in the last bits): how "
     "every softplus (hidden layers, the diffusion's output) and its "
     "derivative are computed"},
    {"kernels", NDE_KEY_WORD, "auto",
     "auto (the best this CPU runs), avx512, avx2 or generic: the "
     "instruction set of the own kernels; sums are grouped by vector width, "
     "so results differ between sets in the last bits"},
    {"threads", NDE_KEY_WORD, "1",
     "a count from 1 to 64, or auto (2 on a machine with 2 CPUs or more, "
     "else 1): threads that share each evaluation and VJP of a large "
     "batch, each computing some rows of the batch (and some of the "
     "parameter gradient's entries, each summed over the whole batch), so "
     "the results are the same bits for any count; not for a net with a "
     "layer wider than thin_width (OpenBLAS has threads of its own). One "
     "by default: the gain is modest (a Fashion-MNIST iteration at batch "
     "512 1.11x on 2 cores) and turns into a loss when the cores are busy "
     "(nde ab -j 2, other work)"},
    {"thread_batch", NDE_KEY_WORD, "auto",
     "auto or a batch size: calls on this many rows or more use the "
     "threads (never under 4 rows); auto: where they start to pay, from "
     "the work per row (192 rows for a 32-64-32 tanh net, 984 for "
     "2-50-2)"},
    {"diffusion", NDE_KEY_WORD, "none",
     "none (an ODE), softplus, sigmoid, tanh or identity: an SDE whose "
     "diffusion g(y) comes from a second network whose output goes through "
     "this function (softplus, sigmoid: g > 0; tanh, identity: signed, e.g. "
     "a GAN generator's general-noise G); its parameters follow the drift's"},
    {"g_layers", NDE_KEY_INTS, "",
     "hidden widths of the diffusion network, e.g. 16, 16 (its input is y, "
     "its output the state dimension; default: the drift's hidden widths)"},
    {"g_activation", NDE_KEY_WORDS, "tanh",
     "tanh, relu, softplus, identity or lipswish: the diffusion network's "
     "hidden layers, one per layer or one for all"},
    {"noise_dim", NDE_KEY_INT, "0",
     "with a diffusion: M > 0 makes the noise general, M channels driving "
     "every state (dy = f dt + G(y) dW, the network's output the D x M "
     "matrix G, row-major); 0: diagonal, one channel per state"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type mlp_type = {
    .info = NDE_FIELD_INFO(
        .name = "mlp",
        .description = "multilayer perceptron (tanh/relu/softplus/lipswish), "
                       "BLAS for wide layers; an SDE with a diffusion "
                       "network",
        .keys = mlp_keys,
        .provides = NDE_CAP_DIFFUSION,
        .version = "1"),
    .create = mlp_create,
    .destroy = mlp_destroy,
    .init_params = mlp_init_params,
    .eval = mlp_eval,
    .vjp = mlp_vjp,
    .param_name = mlp_param_name,
    .diffusion = mlp_diffusion,
    .diffusion_vjp = mlp_diffusion_vjp,
    .jvp = mlp_jvp,
    .jvp_vjp = mlp_jvp_vjp,
};

NDE_MODULE(&mlp_type.info);
