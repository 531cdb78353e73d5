/*
 * floor.c - the floor of one training iteration from the kernels' own
 * throughput, next to the iteration's measured time (issue 13, item 5),
 * for four workloads:
 *
 *   spiral   bench_spiral_train's: 2-50-2 tanh MLP on y^3, batch 20
 *            windows of 10 points, dopri5, discrete adjoint, at init
 *            (lr 1e-12), rtol/atol 1e-7/1e-9 and 1e-3/1e-6;
 *   sde      bench_sde's: drift 4-64-tanh-4, diffusion 4-64-tanh-4-sigmoid,
 *            batch 64, Euler-Maruyama dt 0.01 on [0, 1], discrete adjoint,
 *            loss mean(y(1)^2), a fresh Brownian path per iteration;
 *   fashion  examples/fashion_mnist.ini: encoder 784 -> 32 (the classify
 *            task's lift), field 32-64-tanh-32, decoder 32 -> 10, softmax
 *            cross-entropy, batch 128, tsit5 1e-3/1e-4, interpolating
 *            adjoint, Adam (lr 3e-3: the model moves, the NFE with it);
 *            and again with the discrete adjoint (bench/peers' row
 *            against torchdiffeq's odeint).
 *
 * Work of one iteration. A dense layer in -> out on B rows costs
 * 2 in out B flops forward (Z = W X + b), and 4 in out B in its VJP: the
 * weight gradient G X^T and the input gradient W^T G, 2 in out B each (the
 * input gradient of the first layer too: the adjoints want dL/dy).
 * Activations: forward, one tanh per hidden unit and row (and one sigmoid
 * per output of the diffusion); VJP, one derivative multiply g *= s'(h)
 * per hidden unit and row (and per diffusion output). A VJP at a point
 * the forward pass evaluated needs no forward recomputation (the mlp's
 * `cache` key keeps its last passes): spiral's discrete adjoint replays
 * each step's stages before their VJPs, and the SDE keeps its 100 steps'
 * passes (cache = 128, as bench_sde), so neither pays one in the floor;
 * the replays themselves, at points whose passes the mlp kept (cache =
 * auto holds the spiral's whole solve), pay the output layer only; the
 * last column gives the floor when every such VJP and replay recomputes
 * its pass instead. The interpolating adjoint's VJPs are at
 * interpolated states no pass saw ("fresh"), so each pays a forward pass
 * in the floor too. Evaluations and VJPs are counted per iteration from
 * the solver's counters (nde_solver_counts: an SDE evaluation or VJP is
 * drift and diffusion at one point); the trainer's nfe_forward +
 * nfe_backward beyond them are the interpolating adjoint's fresh VJPs.
 * Fashion adds per iteration the encoder (2 784 32 B flops forward, as
 * many for its weight gradient; no input gradient) and the decoder
 * (2 32 10 B forward, 4 32 10 B backward).
 *
 * Kernel rates, on the exact shapes, single thread: each layer's forward
 * and backward as OpenBLAS cblas_dgemm calls them in the mlp's layout
 * (feature-major: Z (out x ld) = W X, dW += G X^T, GX = W^T G, ld the
 * padded batch) and as the mlp's own register-blocked kernels (which the
 * mlp runs on layers at most thin_width = 64 wide, all of these:
 * floor_kernels.c compiles mlp_kernels.c again to reach them); the floor
 * takes the faster. The classify task's encoder and decoder (its own
 * loops, rows x features) at dgemm's rate on their shapes. tanh, sigmoid
 * and the derivative multiply per element from the best mlp kernel set
 * this CPU runs, on arrays of the layer's size. A 256^3 dgemm gives the
 * machine's rate for reference.
 *
 * The bound below every floor: the iteration's matmul flops (the counts
 * above) at the core's peak rate of fused multiply-adds, measured as
 * 12 independent FMA chains in the widest registers the CPU has (AVX-512
 * or AVX2; no kernel can multiply faster on one core). A peer's
 * iteration time divided by it is the largest speed-up over that peer
 * any single-thread implementation of the same work could show here.
 *
 * Left out of the floor: the solver's own arithmetic (stage sums, error
 * norms, step control, interpolation), the adjoint's bookkeeping, Adam,
 * batch assembly, loss and softmax, the transposes between the solver's
 * rows and the mlp's feature-major arrays, the y^3 input, the Brownian
 * increments.
 *
 * Measurement: ROUNDS rounds, each one timing every kernel shape (median
 * of 5 batches of >= 2 ms) and then iterations of every workload (100
 * of spiral's, 20 of the others', after WARMUP untimed ones), so kernels
 * and iterations share the machine's state. A kernel's time is its
 * median over rounds; each iteration's floor is from its own counts; the
 * table gives the median iteration time, the median floor and the median
 * of the per-iteration ratios.
 *
 * Run from the source root (examples/fashion_mnist.ini reads Debian's
 * dataset-fashion-mnist):  build/bench/bench_floor [--kernels]
 * --kernels also prints every shape's time and rate.
 */
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "floor_kernels.h"
#include "mlp.h"
#include "bench_util.h"
#include "nde/nde.h"
#include "nde/train.h"

#define ROUNDS 3
#define WARMUP 5
#define MAX_ITERS 100
#define MAX_OPS 32

/* ---- kernels ------------------------------------------------------------ */

/*
 * A layer's forward (OP_FWD) or backward (OP_BWD) costs the faster of
 * dgemm and the mlp's own kernel on its shape; OP_MM is a plain dgemm
 * (the classify task's encoder and decoder); the others are elementwise.
 */
enum op_kind { OP_FWD, OP_BWD, OP_MM, OP_TANH, OP_SIGMOID, OP_DERIV };
/* What an op is paid per: every evaluation, every VJP, every VJP at a
 * point no forward pass saw, once per iteration, every evaluation at a
 * point whose pass the mlp kept (the discrete adjoint's replays: the
 * output layer only). */
enum op_per { PER_EVAL, PER_VJP, PER_VJP_FRESH, PER_ITER, PER_EVAL_KEPT,
              NPER };

typedef struct op {
    int kind, per;
    int ta, tb;            /* OP_MM: transposes of A and B (row-major)  */
    size_t m, n, k;        /* OP_MM: C (m x n) = A (m x k) B (k x n);
                              layers: m = out, n = rows, k = in;
                              elementwise: n elements                   */
    int own;               /* run the mlp's kernel instead of dgemm     */
    double s[2][ROUNDS];   /* seconds per op and round: dgemm, own      */
} op;

static double *buf_a, *buf_b, *buf_c, *buf_h, *buf_v;
#define BUF 200704 /* 784 x 256 */

static const mlp_kernels *kset;        /* the plugin's best set here */
static const floor_layer_kernels *lset; /* its layer kernels         */

static void dgemm(int ta, int tb, size_t m, size_t n, size_t k, double beta)
{
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, 1.0,
                buf_a, (int)(ta ? m : k), buf_b, (int)(tb ? k : n), beta,
                buf_c, (int)n);
}

/* The mlp's leading dimension for a batch (mlp_kernels.c's batch_ld). */
static size_t ld_of(size_t batch)
{
    return batch < 4 ? batch : mlp_padded(batch);
}

static void run_op(const op *o, long reps)
{
    const mlp_layer ly = {.in = o->k, .out = o->m, .w_off = 0,
                          .b_off = o->k * o->m, .act = ACT_TANH};
    const size_t ld = ld_of(o->n);
    for (long r = 0; r < reps; r++)
        switch (o->kind) {
        case OP_FWD: /* Z = W X: as the mlp calls dgemm, out x ld */
            if (o->own)
                lset->forward(&ly, buf_a, buf_b, buf_c, ld);
            else
                dgemm(0, 0, o->m, ld, o->k, 1.0);
            break;
        case OP_BWD: /* dW += G X^T, GX = W^T G */
            if (o->own) {
                lset->backward(&ly, buf_a, buf_b, buf_h, buf_c, buf_v, o->n,
                               ld);
            } else {
                dgemm(0, 1, o->m, o->k, o->n, 1.0);
                dgemm(1, 0, o->k, ld, o->m, 0.0);
            }
            break;
        case OP_MM:
            dgemm(o->ta, o->tb, o->m, o->n, o->k, o->ta ? 1.0 : 0.0);
            break;
        case OP_TANH:
        case OP_SIGMOID:
        case OP_DERIV:
            /* restored each pass (a derivative multiply repeated in
             * place underflows); the copy is timed alone and removed */
            memcpy(buf_c, buf_b, o->n * sizeof *buf_c);
            if (o->kind == OP_DERIV)
                lset->derivative(ACT_TANH, buf_h, buf_c, o->n);
            else
                kset->activate(o->kind == OP_TANH ? ACT_TANH : ACT_SIGMOID,
                               buf_c, o->n);
            break;
        }
}

/* Seconds per run of o: median of 5 batches of >= 2 ms. */
static double time_op(const op *o)
{
    long reps = 1;
    double t[5];
    for (;;) {
        double t0 = bench_now();
        run_op(o, reps);
        if (bench_now() - t0 >= 2e-3)
            break;
        reps *= 2;
    }
    for (int b = 0; b < 5; b++) {
        double t0 = bench_now();
        run_op(o, reps);
        t[b] = (bench_now() - t0) / (double)reps;
    }
    return bench_median(t, 5);
}

/* Seconds to copy n doubles (what the elementwise ops time besides). */
static double time_copy(size_t n)
{
    long reps = 1;
    double t[5];
    for (;;) {
        double t0 = bench_now();
        for (long r = 0; r < reps; r++) {
            memcpy(buf_c, buf_b, n * sizeof *buf_c);
            __asm__ volatile("" ::: "memory");
        }
        if (bench_now() - t0 >= 2e-3)
            break;
        reps *= 2;
    }
    for (int b = 0; b < 5; b++) {
        double t0 = bench_now();
        for (long r = 0; r < reps; r++) {
            memcpy(buf_c, buf_b, n * sizeof *buf_c);
            __asm__ volatile("" ::: "memory");
        }
        t[b] = (bench_now() - t0) / (double)reps;
    }
    return bench_median(t, 5);
}

static int is_layer(const op *o)
{
    return o->kind == OP_FWD || o->kind == OP_BWD;
}

/* The flops of a matmul op (not an elementwise one): 2 m n k, and 4 m n k
 * for a layer's backward (dW and dX). */
static double op_flops(const op *o)
{
    return (o->kind == OP_BWD ? 4.0 : 2.0) * (double)(o->m * o->n * o->k);
}

/* Round r's measurements of o. */
static void measure(op *o, int r)
{
    o->own = 0;
    o->s[0][r] = time_op(o);
    if (o->kind >= OP_TANH)
        o->s[0][r] -= time_copy(o->n);
    if (is_layer(o)) {
        o->own = 1;
        o->s[1][r] = time_op(o);
    }
}

/* Median over rounds of dgemm's (which 0) or the own kernel's (1) time. */
static double op_median(const op *o, int which)
{
    double s[ROUNDS];
    memcpy(s, o->s[which], sizeof s);
    return bench_median(s, ROUNDS);
}

/* The op's cost in the floor: the faster way. */
static double op_seconds(const op *o)
{
    const double b = op_median(o, 0);
    return is_layer(o) ? fmin(b, op_median(o, 1)) : b;
}

/* ---- the peak FMA rate -------------------------------------------------- */

#define FMA_CHAINS 12   /* more than latency x ports on current cores */

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static double fma_chains_512(long n)
{
    __m512d a[FMA_CHAINS], m = _mm512_set1_pd(1.0 - 1e-12),
                           c = _mm512_set1_pd(1e-12);
    double out[8], sum = 0.0;
    for (int j = 0; j < FMA_CHAINS; j++)
        a[j] = _mm512_set1_pd((double)j);
    for (long i = 0; i < n; i++)
#pragma GCC unroll 12   /* the chains in registers, not in memory */
        for (int j = 0; j < FMA_CHAINS; j++)
            a[j] = _mm512_fmadd_pd(a[j], m, c);
    for (int j = 1; j < FMA_CHAINS; j++)
        a[0] = _mm512_add_pd(a[0], a[j]);
    _mm512_storeu_pd(out, a[0]);
    for (int l = 0; l < 8; l++)
        sum += out[l];
    return sum;
}

__attribute__((target("avx2,fma"))) static double fma_chains_256(long n)
{
    __m256d a[FMA_CHAINS], m = _mm256_set1_pd(1.0 - 1e-12),
                           c = _mm256_set1_pd(1e-12);
    double out[4], sum = 0.0;
    for (int j = 0; j < FMA_CHAINS; j++)
        a[j] = _mm256_set1_pd((double)j);
    for (long i = 0; i < n; i++)
#pragma GCC unroll 12
        for (int j = 0; j < FMA_CHAINS; j++)
            a[j] = _mm256_fmadd_pd(a[j], m, c);
    for (int j = 1; j < FMA_CHAINS; j++)
        a[0] = _mm256_add_pd(a[0], a[j]);
    _mm256_storeu_pd(out, a[0]);
    for (int l = 0; l < 4; l++)
        sum += out[l];
    return sum;
}
#endif

static double fma_sink;

/* FLOP/s of n rounds of the chains of `lanes` doubles: the best of 5. */
static double fma_rate(double (*chains)(long), int lanes)
{
    const long n = 2000000;
    double best = 0.0;
    for (int b = 0; b < 5; b++) {
        double t0 = bench_now();
        fma_sink += chains(n);
        best = fmax(best, 2.0 * FMA_CHAINS * lanes * (double)n /
                              (bench_now() - t0));
    }
    return best;
}

/* The core's peak FMA rate in FLOP/s (0 where neither AVX2 nor AVX-512
 * is there to measure it) and the registers that reached it. */
static double peak_rate(const char **regs)
{
    double r = 0.0;
    *regs = "none";
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        r = fma_rate(fma_chains_256, 4);
        *regs = "AVX2";
    }
    if (__builtin_cpu_supports("avx512f")) {
        double r512 = fma_rate(fma_chains_512, 8);
        if (r512 > r) {
            r = r512;
            *regs = "AVX-512";
        }
    }
#endif
    return r;
}

/* ---- workloads ---------------------------------------------------------- */

typedef struct workload {
    const char *name;
    op ops[MAX_OPS];
    size_t nops;
    size_t iters;          /* timed per round                           */
    nde_config *cfg;
    nde_trainer *tr;       /* spiral, fashion                           */
    /* sde: the low-level objects, as bench_sde */
    nde_field *f;
    nde_solver *s;
    nde_adjoint *a;
    nde_trajectory *traj;
    nde_brownian *bm;
    double *theta, *thetabar, *y0, *y1, *ybar0, *g;
    uint64_t seed;
    /* per timed iteration: time, evaluations (of them at kept points),
     * VJPs, fresh VJPs */
    double t[ROUNDS * MAX_ITERS];
    long ev[ROUNDS * MAX_ITERS], ek[ROUNDS * MAX_ITERS],
        vj[ROUNDS * MAX_ITERS], vf[ROUNDS * MAX_ITERS];
    size_t nt;
} workload;

static op *add_op(workload *w, int kind, int per, size_t m, size_t n,
                  size_t k)
{
    op *o = &w->ops[w->nops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->per = per;
    o->m = m;
    o->n = n;
    o->k = k;
    return o;
}

static void add_mm(workload *w, int ta, int tb, size_t m, size_t n,
                   size_t k)
{
    op *o = add_op(w, OP_MM, PER_ITER, m, n, k);
    o->ta = ta;
    o->tb = tb;
}

/*
 * The ops of a tanh net with widths w[0..nw) on B rows (sigmoid: its
 * output goes through a sigmoid): forward per evaluation and again per
 * fresh VJP, backward per VJP of either kind.
 */
static void add_net(workload *wl, const size_t *w, size_t nw, size_t B,
                    int sigmoid)
{
    for (int per = PER_EVAL; per <= PER_VJP_FRESH; per += 2) {
        for (size_t l = 0; l + 1 < nw; l++) {
            add_op(wl, OP_FWD, per, w[l + 1], B, w[l]);
            if (l + 2 < nw)
                add_op(wl, OP_TANH, per, 0, w[l + 1] * B, 0);
        }
        if (sigmoid)
            add_op(wl, OP_SIGMOID, per, 0, w[nw - 1] * B, 0);
    }
    add_op(wl, OP_FWD, PER_EVAL_KEPT, w[nw - 1], B, w[nw - 2]);
    if (sigmoid)
        add_op(wl, OP_SIGMOID, PER_EVAL_KEPT, 0, w[nw - 1] * B, 0);
    for (size_t l = 0; l + 1 < nw; l++) {
        add_op(wl, OP_BWD, PER_VJP, w[l + 1], B, w[l]);
        if (l + 2 < nw)
            add_op(wl, OP_DERIV, PER_VJP, 0, w[l + 1] * B, 0);
    }
    if (sigmoid) /* h (1 - h): the same multiply as tanh's 1 - h^2 */
        add_op(wl, OP_DERIV, PER_VJP, 0, w[nw - 1] * B, 0);
}

static nde_ctx *ctx;

/* The trainer of a config text or file, with an override (KEY=VALUE as
 * -s takes it) when `set` is not NULL. */
static int make_trainer(workload *w, const char *text, const char *path,
                        const char *set)
{
    int rc;
    if (!(w->cfg = nde_config_create()))
        return NDE_ENOMEM;
    rc = path ? nde_config_load_file(w->cfg, path, ctx)
              : nde_config_load_string(w->cfg, w->name, text, ctx);
    if (rc == NDE_OK && set)
        rc = nde_config_override(w->cfg, set, ctx);
    if (rc == NDE_OK)
        rc = nde_trainer_create(ctx, w->cfg, 0, &w->tr);
    return rc;
}

static int make_spiral(workload *w, const char *name, const char *rtol,
                       const char *atol)
{
    static const size_t widths[] = {2, 50, 2};
    char text[1024];
    w->name = name;
    w->iters = MAX_ITERS;
    add_net(w, widths, 3, 20, 0);
    snprintf(text, sizeof text,
             "[solver]\nplugin = dopri5\nrtol = %s\natol = %s\n"
             "[field]\nplugin = mlp\nlayers = 2, 50, 2\nactivation = tanh\n"
             "input = cube\ntime = false\n[adjoint]\nplugin = discrete\n"
             "[data]\nsource = spiral\nbatch_time = 10\n"
             "[train]\nbatch_size = 20\nlr = 1e-12\nseed = 1\n",
             rtol, atol);
    return make_trainer(w, text, NULL, NULL);
}

enum { SDE_B = 64, SDE_DIM = 4, SDE_N = SDE_B * SDE_DIM };

static int make_sde(workload *w)
{
    static const size_t widths[] = {SDE_DIM, 64, SDE_DIM};
    static const char text[] =
        BENCH_SDE_FIELD_INI "cache = 128\n[solver]\nplugin = euler_maruyama\n"
        "[adjoint]\nplugin = discrete\n";
    int rc;

    w->name = "sde EM + discrete";
    w->iters = 20;
    add_net(w, widths, 3, SDE_B, 0); /* drift */
    add_net(w, widths, 3, SDE_B, 1); /* diffusion */
    if (!(w->cfg = nde_config_create()))
        return NDE_ENOMEM;
    if ((rc = nde_config_load_string(w->cfg, "sde", text, ctx)) ||
        (rc = nde_field_create(ctx, w->cfg, "field", SDE_B, &w->f)) ||
        (rc = nde_solver_create(ctx, w->cfg, "solver", w->f, &w->s)) ||
        (rc = nde_solver_set_batch(w->s, SDE_B)) ||
        (rc = nde_adjoint_create(ctx, w->cfg, "adjoint", "discrete", w->s,
                                 &w->a)) ||
        (rc = nde_brownian_create(ctx, SDE_N, &w->bm)))
        return rc;
    if (!(w->traj = nde_trajectory_create(w->a->record, w->a->max_states)) ||
        !(w->theta = malloc(w->f->nparams * sizeof(double))) ||
        !(w->thetabar = malloc(w->f->nparams * sizeof(double))) ||
        !(w->y0 = malloc(4 * SDE_N * sizeof(double))))
        return NDE_ENOMEM;
    w->y1 = w->y0 + SDE_N;
    w->ybar0 = w->y1 + SDE_N;
    w->g = w->ybar0 + SDE_N;
    for (size_t i = 0; i < SDE_N; i++)
        w->y0[i] = 0.1 * sin(0.37 * (double)i) + 0.05 * (double)(i % SDE_DIM);
    return nde_field_init_params(w->f, w->theta, 1);
}

/* examples/fashion_mnist.ini with its adjoint (set NULL) or another:
 * set = "adjoint.plugin=discrete", the peers' row. */
static int make_fashion(workload *w, const char *name, const char *path,
                        const char *set)
{
    static const size_t widths[] = {32, 64, 32};
    const size_t B = 128, F = 784, D = 32, C = 10;
    w->name = name;
    w->iters = 20;
    add_net(w, widths, 3, B, 0);
    add_mm(w, 0, 1, B, D, F); /* encoder X W^T */
    add_mm(w, 1, 0, D, F, B); /* its dW += G^T X */
    add_mm(w, 0, 1, B, C, D); /* decoder Y W^T */
    add_mm(w, 1, 0, C, D, B); /* its dW += G^T Y */
    add_mm(w, 0, 0, B, D, C); /* its dY = G W */
    return make_trainer(w, NULL, path, set);
}

/*
 * One iteration of w: wall time, the solver's evaluations and VJPs, and
 * the fresh VJPs: the iteration's evaluations and VJPs (nfe_forward +
 * nfe_backward) the solver did not make, those of the interpolating
 * adjoint's backward solve (one VJP at an interpolated state per
 * evaluation of its augmented system).
 */
static int iterate(workload *w, int timed)
{
    nde_solver *s = w->tr ? nde_trainer_solver(w->tr) : w->s;
    const nde_solver_counts c0 = s->counts;
    long total = -1, forward = -1;
    double t;
    int rc;

    if (w->tr) {
        nde_train_step m;
        if ((rc = nde_trainer_step(w->tr, &m)))
            return rc;
        t = m.time_s;
        total = m.nfe_forward + m.nfe_backward;
        forward = m.nfe_forward;
    } else {
        /* bench_sde's iteration: solve, loss mean(y(1)^2), gradient */
        const double t1 = 1.0;
        nde_solve_opts o;
        nde_cotangent ct;
        nde_stats st;
        if ((rc = nde_brownian_reset(w->bm, ++w->seed, 0.0, t1, 0.01,
                                     SDE_N)))
            return rc;
        nde_solve_opts_default(&o, w->s->type);
        o.dt = 0.01;
        o.brownian = w->bm;
        o.record = w->traj;
        double t0 = bench_now();
        if ((rc = nde_solve(w->s, &o, w->theta, 0.0, w->y0, t1, 1, &t1,
                            w->y1, &st)))
            return rc;
        for (size_t i = 0; i < SDE_N; i++)
            w->g[i] = 2.0 * w->y1[i] / SDE_N;
        ct.t = t1;
        ct.g = w->g;
        memset(&st, 0, sizeof st);
        if ((rc = nde_adjoint_gradient(w->a, &o, w->traj, w->theta, &ct, 1,
                                       w->ybar0, w->thetabar, &st)))
            return rc;
        t = bench_now() - t0;
    }
    if (timed) {
        w->t[w->nt] = t;
        w->ev[w->nt] = s->counts.nfe - c0.nfe;
        /* the solver's evaluations beyond the forward solve's replay it
         * (discrete adjoint), at points the mlp keeps (cache = auto: the
         * spiral's whole solve) */
        w->ek[w->nt] = forward < 0 ? 0 : w->ev[w->nt] - forward;
        w->vj[w->nt] = s->counts.nvjp - c0.nvjp;
        w->vf[w->nt] = total < 0 ? 0 : total - w->ev[w->nt] - w->vj[w->nt];
        w->nt++;
    }
    return NDE_OK;
}

static void destroy(workload *w)
{
    nde_trainer_destroy(w->tr);
    nde_trajectory_destroy(w->traj);
    nde_brownian_destroy(w->bm);
    nde_adjoint_destroy(w->a);
    nde_solver_destroy(w->s);
    nde_field_destroy(w->f);
    nde_config_destroy(w->cfg);
    free(w->theta);
    free(w->thetabar);
    free(w->y0);
}

/* Seconds of w's ops by payment: per[0] matmuls, per[1] elementwise. */
static void unit_costs(const workload *w, double per[2][NPER])
{
    memset(per, 0, 2 * NPER * sizeof **per);
    for (size_t i = 0; i < w->nops; i++)
        per[w->ops[i].kind >= OP_TANH][w->ops[i].per] +=
            op_seconds(&w->ops[i]);
}

/* Matmul flops of w's ops by payment (floor_of of them: an iteration's). */
static void unit_flops(const workload *w, double per[NPER])
{
    memset(per, 0, NPER * sizeof *per);
    for (size_t i = 0; i < w->nops; i++) {
        const op *o = &w->ops[i];
        if (o->kind < OP_TANH)
            per[o->per] += op_flops(o);
    }
}

/* The floor of timed iteration i from the costs per payment. */
static double floor_of(const workload *w, const double per[NPER], size_t i)
{
    return per[PER_EVAL] * (double)(w->ev[i] - w->ek[i]) +
           per[PER_EVAL_KEPT] * (double)w->ek[i] +
           per[PER_VJP] * (double)(w->vj[i] + w->vf[i]) +
           per[PER_VJP_FRESH] * (double)w->vf[i] + per[PER_ITER];
}

/* The bound of the top comment: each workload's matmul flops at the
 * core's peak FMA rate. */
static void print_peak(const workload *wl, int nw)
{
    const char *regs;
    const double peak = peak_rate(&regs);

    if (!(peak > 0.0)) {
        printf("\nPeak FMA rate: not measured (no AVX2 or AVX-512 here).\n");
        return;
    }
    printf("\nPeak FMA rate: %.1f GFLOP/s (%d independent %s FMA chains, "
           "best of 5). The matmul flops of an iteration at that rate: no "
           "single-thread implementation of the same work is faster.\n\n"
           "| workload | matmul MFLOP per iteration | at peak ms | measured / "
           "at peak |\n|---|---|---|---|\n", 1e-9 * peak, FMA_CHAINS, regs);
    for (int k = 0; k < nw; k++) {
        const workload *w = &wl[k];
        double per[NPER], fl[ROUNDS * MAX_ITERS], ratio[ROUNDS * MAX_ITERS];
        unit_flops(w, per);
        for (size_t i = 0; i < w->nt; i++) {
            fl[i] = floor_of(w, per, i);
            ratio[i] = w->t[i] * peak / fl[i];
        }
        const double f = bench_median(fl, w->nt);
        printf("| %s | %.2f | %.4f | %.1f |\n", w->name, 1e-6 * f,
               1e3 * f / peak, bench_median(ratio, w->nt));
    }
}

/* --kernels: every op's time both ways and its rate. */
static void print_ops(const workload *wl, int nw)
{
    static const char *const kinds[] = {
        "layer forward", "layer backward", "dgemm", "tanh", "sigmoid",
        "g *= 1 - h^2"};
    static const char *const pers[] = {"eval", "VJP", "fresh VJP",
                                       "iteration", "kept eval"};
    printf("\n| workload | op | per | m n k, or elements | dgemm us "
           "(GFLOP/s) | mlp kernel us (GFLOP/s) | ns per element |\n"
           "|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < nw; k++)
        for (size_t i = 0; i < wl[k].nops; i++) {
            const op *o = &wl[k].ops[i];
            const double b = op_median(o, 0);
            printf("| %s | %s | %s | ", wl[k].name, kinds[o->kind],
                   pers[o->per]);
            if (o->kind >= OP_TANH) {
                printf("%zu | | | %.3f |\n", o->n, 1e9 * b / (double)o->n);
                continue;
            }
            const double fl = op_flops(o);
            printf("%zu %zu %zu | %.3f (%.2f) | ", o->m, o->n, o->k,
                   1e6 * b, 1e-9 * fl / b);
            if (is_layer(o))
                printf("%.3f (%.2f) | |\n", 1e6 * op_median(o, 1),
                       1e-9 * fl / op_median(o, 1));
            else
                printf("| |\n");
        }
}

int main(int argc, char **argv)
{
    enum { NW = 5 };
    static workload wl[NW];
    int kernels = argc > 1 && strcmp(argv[1], "--kernels") == 0;
    int rc;

    if (argc > 2 || (argc == 2 && !kernels)) {
        fprintf(stderr, "usage: bench_floor [--kernels]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    for (size_t i = 0; !kset && mlp_kernel_sets[i]; i++)
        if (mlp_cpu_runs(mlp_kernel_sets[i]))
            kset = mlp_kernel_sets[i];
#if defined(__x86_64__)
    lset = kset == &mlp_kernels_v4   ? &floor_kernels_v4
           : kset == &mlp_kernels_v3 ? &floor_kernels_v3
                                     : &floor_kernels_base;
#else
    lset = &floor_kernels_base;
#endif
    buf_a = malloc(BUF * sizeof *buf_a);
    buf_b = malloc(BUF * sizeof *buf_b);
    buf_c = malloc(BUF * sizeof *buf_c);
    buf_h = malloc(BUF * sizeof *buf_h);
    buf_v = calloc(BUF, sizeof *buf_v);
    if (!buf_a || !buf_b || !buf_c || !buf_h || !buf_v ||
        !(ctx = nde_ctx_create()))
        return 1;
    /* weights and inputs in [-1, 1], pre-activations in [-5, 5],
     * activations their tanh */
    for (size_t i = 0; i < BUF; i++) {
        const double z = -5.0 + 10.0 * (double)((i * 7919) % 1000) / 1000.0;
        buf_a[i] = 0.2 * z;
        buf_b[i] = z;
        buf_c[i] = 0.0;
        buf_h[i] = tanh(z);
    }
    if ((rc = make_spiral(&wl[0], "spiral 1e-7/1e-9 discrete", "1e-7",
                          "1e-9")) ||
        (rc = make_spiral(&wl[1], "spiral 1e-3/1e-6 discrete", "1e-3",
                          "1e-6")) ||
        (rc = make_sde(&wl[2])) ||
        (rc = make_fashion(&wl[3], "fashion (examples/fashion_mnist.ini)",
                           "examples/fashion_mnist.ini", NULL)) ||
        (rc = make_fashion(&wl[4], "fashion, discrete adjoint",
                           "examples/fashion_mnist.ini",
                           "adjoint.plugin=discrete")))
        goto fail;
    for (int k = 0; k < NW; k++)
        for (int i = 0; i < WARMUP; i++)
            if ((rc = iterate(&wl[k], 0)))
                goto fail;

    /* a big product: the machine's dgemm rate, for reference */
    op big = {.kind = OP_MM, .m = 256, .n = 256, .k = 256};
    double big_s[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        big_s[r] = time_op(&big);
        for (int k = 0; k < NW; k++) {
            for (size_t i = 0; i < wl[k].nops; i++)
                measure(&wl[k].ops[i], r);
            for (size_t i = 0; i < wl[k].iters; i++)
                if ((rc = iterate(&wl[k], 1)))
                    goto fail;
        }
    }

    printf("Kernel floor per training iteration: %d rounds of kernels "
           "then iterations; mlp kernels \"%s\"; OpenBLAS 1 thread, dgemm "
           "256^3 at %.1f GFLOP/s\n\n", ROUNDS, kset->name,
           2.0 * 256 * 256 * 256 / bench_median(big_s, ROUNDS) * 1e-9);
    printf("| workload | evals (replays) | VJPs (fresh) | floor ms (of it matmuls) | "
           "measured ms median (min-max) | measured / floor | floor ms, "
           "every VJP and replay recomputing its pass (measured / it) |\n"
           "|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < NW; k++) {
        workload *w = &wl[k];
        double per[2][NPER], fl[ROUNDS * MAX_ITERS], fm[ROUNDS * MAX_ITERS],
            ratio[ROUNDS * MAX_ITERS], fr[ROUNDS * MAX_ITERS],
            ratio_r[ROUNDS * MAX_ITERS], ev[ROUNDS * MAX_ITERS],
            ek[ROUNDS * MAX_ITERS],
            vj[ROUNDS * MAX_ITERS], vf[ROUNDS * MAX_ITERS],
            t[ROUNDS * MAX_ITERS];
        unit_costs(w, per);
        for (size_t i = 0; i < w->nt; i++) {
            fm[i] = floor_of(w, per[0], i);
            fl[i] = fm[i] + floor_of(w, per[1], i);
            ratio[i] = w->t[i] / fl[i];
            fr[i] = fl[i] + (per[0][PER_VJP_FRESH] + per[1][PER_VJP_FRESH]) *
                                (double)w->vj[i] +
                    (per[0][PER_EVAL] + per[1][PER_EVAL] -
                     per[0][PER_EVAL_KEPT] - per[1][PER_EVAL_KEPT]) *
                        (double)w->ek[i];
            ratio_r[i] = w->t[i] / fr[i];
            ev[i] = (double)w->ev[i];
            ek[i] = (double)w->ek[i];
            vj[i] = (double)(w->vj[i] + w->vf[i]);
            vf[i] = (double)w->vf[i];
            t[i] = w->t[i];
        }
        const double tm = bench_median(t, w->nt);
        printf("| %s | %.0f (%.0f) | %.0f (%.0f) | %.4f (%.4f) | %.4f "
               "(%.4f-%.4f) | %.2f | %.4f (%.2f) |\n", w->name,
               bench_median(ev, w->nt), bench_median(ek, w->nt),
               bench_median(vj, w->nt),
               bench_median(vf, w->nt), 1e3 * bench_median(fl, w->nt),
               1e3 * bench_median(fm, w->nt), 1e3 * tm,
               1e3 * t[0], 1e3 * t[w->nt - 1], bench_median(ratio, w->nt),
               1e3 * bench_median(fr, w->nt), bench_median(ratio_r, w->nt));
    }
    print_peak(wl, NW);
    printf("\nFloor: each layer's matmuls at the faster of OpenBLAS dgemm "
           "and the mlp's own kernel on its shape, the task's encoder and "
           "decoder at dgemm's, tanh, sigmoid and derivative multiplies at "
           "the mlp kernels' rate per element. Left out: solver arithmetic, "
           "adjoint bookkeeping, Adam, batch assembly, loss, transposes, "
           "the y^3 input, Brownian increments.\n");
    if (kernels)
        print_ops(wl, NW);
    for (int k = 0; k < NW; k++)
        destroy(&wl[k]);
    nde_ctx_destroy(ctx);
    free(buf_a);
    free(buf_b);
    free(buf_c);
    free(buf_h);
    free(buf_v);
    return 0;
fail:
    fprintf(stderr, "bench_floor: %s\n", nde_ctx_message(ctx));
    nde_ctx_destroy(ctx);
    return 1;
}
