/*
 * What the shipped task plugins share (compiled into each module):
 * bounded key getters, the data digest, the true system of generated
 * data, the mean squared error.
 */
#ifndef NDE_TASK_UTIL_H
#define NDE_TASK_UTIL_H

#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "nde/nde.h"
#include "nde/data.h"
#include "nde/train.h"

/* The keys of generated data: observation times and the true system. */
#define TASK_GENERATED_KEYS                                                  \
    {"npoints", NDE_KEY_INT, "1000", "observation times on [0, t1]"},       \
    {"t1", NDE_KEY_DOUBLE, "25", "end of the observed interval"},            \
    {"y0", NDE_KEY_DOUBLES, "",                                              \
     "source = field: the true initial state (windows: one or more, a "  \
     "series from each)"},                              \
    {"system", NDE_KEY_WORD, "field",                                        \
     "source = field: the section of the true system: the model's own "      \
     "[field], or a [field.NAME] section (e.g. an expr SDE as the truth "    \
     "of a neural SDE)"},                                                    \
    {"true_params", NDE_KEY_ASSIGNS, "",                                     \
     "source = field: the true system's parameters by the names the "        \
     "field gives them (a=1.5, b[0]=2, W1[0,1]=0, theta[3]=1); others "      \
     "keep the field's initial values"}

/* NDE_OK when the model's kind suits the task: an SDE field (sde = 1) or
 * an ODE field (sde = 0); else NDE_ECONFIG naming [data] source. */
int task_check_noise(nde_task *t, nde_section *dsec, const nde_task_env *env,
                     int sde);

/* The solves that make data take at most this many steps. */
#define TASK_TRUTH_MAX_STEPS 10000000L

/* linspace(0, t1, n) into t (n >= 2), its last point exactly t1. */
void task_time_grid(double *t, size_t n, double t1);

/* The true system of source = field ([data] system, default the model's
 * [field]) for `rows` rows, with [data] true_params in *theta (malloc'd)
 * and [data] y0 in y0 (nseries x dim: exactly that many values). */
int task_true_system(nde_ctx *ctx, const nde_task_env *env,
                     nde_section *dsec, size_t dim, size_t rows,
                     size_t nseries, double *y0, nde_field **fout,
                     double **theta_out);

/* Solve f from y0 at the n times t, tight tolerances, with the solver
 * named `solver` into y (n x dim). */
int task_solve_truth(nde_ctx *ctx, const char *solver, nde_field *f,
                     const double *theta, const double *y0, size_t n,
                     const double *t, double *y);

/* Glorot-uniform weights (Glorot & Bengio 2010, eq. 16) of an m x n
 * matrix into w: U(-a, a), a = sqrt(6 / (m + n)), drawn in order from r. */
void task_glorot(gsl_rng *r, double *w, size_t m, size_t n);

/* The mean squared error over every observed value of n entries (a NaN
 * target is missing) and its gradient in g; NAN when nothing is
 * observed. */
double task_mse(const double *y, const double *target, size_t n, double *g);

/* The test MSE of ntest predicted series (pred[i], obs[i]: n[i] x dim),
 * NaN observations skipped; NAN when none is observed. */
double task_test_mse(size_t ntest, const size_t *n, size_t dim,
                     double *const *pred, const double *const *obs);

/* [data] normalize of a series task: the model's state j is
 * (value - shift[j]) / scale[j] (nde/task.h's units), fitted per column on
 * every observed value of the training series: standard (the mean, the
 * standard deviation with n - 1) or minmax (the smallest value, the range,
 * so the training values span [0, 1]); log: (log(value) - shift[j]) /
 * scale[j], standard on the logs (*log_units = 1; every observed training
 * value must be positive). "none" leaves *shift NULL. A column that is
 * constant (or has fewer than two values) on the training part has no
 * scale and is refused, naming the key and the column. */
#define TASK_NORMALIZE_KEY                                                   \
    {"normalize", NDE_KEY_WORD, "none",                                      \
     "none | standard | minmax | log: the model works in per-column units "  \
     "fitted on the training part (mean and sd, min and range, or mean and " \
     "sd of the logs: positive data, predictions stay positive); outputs "   \
     "and test_loss are in the data's units, the training loss in the "      \
     "model's"}

int task_units_fit(nde_section *dsec, const nde_dataset *train,
                   double **shift, double **scale, int *log_units,
                   nde_ctx *ctx);

/* y (n values, n a multiple of dim) into the model's units (to = 1) or
 * back (to = 0); NaN stays NaN. */
void task_units_apply(const double *shift, const double *scale,
                      int log_units, size_t dim, double *y, size_t n, int to);

/* A 64-bit hash of a task's data for checkpoints to compare (not a
 * cryptographic one): each array's length, then its bytes as 8-byte
 * words dealt to four lanes, each step h = (h ^ w) * K, h ^= h >> 29
 * (invertible in h and in w, so one changed word always changes its
 * lane). Independent lanes run at memory speed. */
typedef struct task_digest {
    uint64_t h[4];
} task_digest;

void task_digest_init(task_digest *d);
void task_digest_bytes(task_digest *d, const void *p, size_t len);
void task_digest_dataset(task_digest *d, const nde_dataset *ds);
uint64_t task_digest_final(const task_digest *d);
/* The digest of a train and a test set (the data a task read). */
uint64_t task_digest_split(const nde_dataset *train, const nde_dataset *test);

/* Softmax classification (classify, points). The softmax cross-entropy
 * of n rows of C logits summed (log-sum-exp shifted by the row's largest
 * logit); p gets the softmax probabilities (p may be logits). */
double task_xent(size_t C, const double *logits, const int *label, size_t n,
                 double *p);

/* The mean cross-entropy of n rows in *value and its gradient
 * dL/dlogits = (p - onehot) / n in g (n x C, overwritten). */
void task_xent_loss(size_t C, const double *logits, const int *label,
                    size_t n, double *value, double *g);

/* How many of n rows of C probabilities have their largest one (the
 * first of equals) at their label. */
size_t task_correct(size_t C, const double *p, const int *label, size_t n);

/* y = x W^T + b for n rows (x: n x k, W: m x k, y: n x m), each entry
 * b[j] plus its k products added in order. */
void task_affine(const double *W, const double *b, size_t m, size_t k,
                 const double *x, size_t n, double *y);

/* The VJP of task_affine at x for ybar (n x m): gb += sum of the rows
 * of ybar, gW += ybar^T x, and xbar += ybar W unless xbar is NULL. */
void task_affine_vjp(const double *W, size_t m, size_t k, const double *x,
                     const double *ybar, size_t n, double *xbar, double *gW,
                     double *gb);

/* k distinct values of 0..n-1 (k <= n) into out in increasing order,
 * uniform among the k-subsets, with k draws of rng and O(min(k^2, n))
 * more work (R. Floyd's algorithm:
 * J. Bentley, "Programming pearls: a sample of brilliance", CACM 30(9),
 * 1987), where gsl_ran_choose draws n times: for a batch of 20 of the
 * spiral's 991 windows that was 12 % of a training iteration. mark: n
 * bytes, all 0 on entry; all 0 again on return. */
void task_choose(gsl_rng *rng, size_t *out, size_t k, size_t n,
                 unsigned char *mark);

/* The k-th smallest of v[0, n) (k < n), v[k] of v sorted, in expected
 * linear time (Hoare's selection, the middle element as pivot); v is
 * reordered. The SDE-GAN report's bandwidth is the median of 2.1 million
 * distances, which qsort took a third of a second to find. */
double task_kth_smallest(double *v, size_t n, size_t k);

/* Mini-batches of n examples: the stream made of one random permutation
 * of 0..n-1 per epoch, epoch e's drawn with gsl_ran_shuffle from an
 * mt19937 seeded with nde_seed_derive(seed, e). It depends on the
 * position alone, so a resumed run draws the same batches. */
typedef struct task_order {
    size_t n;
    size_t *perm;     /* the permutation of epoch `epoch` (-1: none yet) */
    long epoch;
    gsl_rng *rng;
} task_order;

/* NDE_OK or NDE_ENOMEM (with its message); task_order_free accepts an
 * order whose init failed. */
int task_order_init(task_order *o, size_t n, nde_ctx *ctx);
void task_order_free(task_order *o);
/* The example at position k of the stream of `seed`. */
size_t task_order_pick(task_order *o, uint64_t seed, uint64_t k);

#endif
