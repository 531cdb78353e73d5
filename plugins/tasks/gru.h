/*
 * gru.h - the variational GRU encoder of the latent tasks (latent, lhm):
 * a GRU (Cho et al. 2014) of H units over a sequence of steps of nin
 * inputs each, then linear maps of its last state to the mean and
 * log-variance of q(z0) (D each), as Rubanova, Chen, Duvenaud 2019. Its
 * parameters are one block of theta (gru_nparams), in the order of
 * gru_block_name: the reset (r), update (u) and candidate (n) gates, each
 * W (H x nin), U (H x H), b (H); the heads to the mean (m) and the
 * log-variance (v). encode keeps every step for encode_vjp
 * (backpropagation through time) until the next encode.
 */
#ifndef NDE_TASKS_GRU_H
#define NDE_TASKS_GRU_H

#include <stddef.h>

#include <gsl/gsl_rng.h>

enum { GRU_WR, GRU_UR, GRU_BR, GRU_WU, GRU_UU, GRU_BU, GRU_WN, GRU_UN,
       GRU_BN, GRU_WM, GRU_BM, GRU_WV, GRU_BV, GRU_NBLOCK };

typedef struct gru {
    size_t H, nin, D, max_steps;
    size_t off[GRU_NBLOCK + 1], rows_of[GRU_NBLOCK], cols_of[GRU_NBLOCK];
    double *hs;            /* (max_steps + 1) x H: the state before each step */
    double *gr, *gu, *gn;  /* max_steps x H: the gates of each step          */
    double *xin;           /* max_steps x nin: the inputs, filled by the caller */
    size_t steps;
    double *mu, *lv;       /* D: q(z0) of the last encode                 */
    double *mubar, *lvbar; /* D each: gru_sample_vjp, gru_kl_vjp          */
    double *hbar, *hprev, *abar, *rhbar, *gbar; /* H each: encode_vjp   */
} gru;

/* Sizes and buffers; 0, or -1 when out of memory (g may then be freed). */
int gru_alloc(gru *g, size_t nin, size_t H, size_t D, size_t max_steps);
void gru_free(gru *g);
static inline size_t gru_nparams(const gru *g) { return g->off[GRU_NBLOCK]; }
/* "wr", "ur", ... of block k and whether it is a bias. */
const char *gru_block_name(int k);
int gru_block_bias(int k);
/* Glorot-uniform matrices from r in block order (task_glorot), biases 0. */
void gru_init(const gru *g, gsl_rng *r, double *theta);
/* The block and index of parameter i (< gru_nparams). */
int gru_block_of(const gru *g, size_t *i);

/* The GRU over g->xin[0 .. steps) (steps <= max_steps, inputs in the
 * order they are read), then g->mu and g->lv. */
void gru_encode(gru *g, const double *theta, size_t steps);
/* thetabar += the encoder's VJP of (mubar, lvbar) at the last encode. */
void gru_encode_vjp(gru *g, const double *theta, const double *mubar,
                    const double *lvbar, double *thetabar);

/* The reparameterised draw z = mu + exp(lv / 2) eps of q(z0) at the last
 * encode (D values each), and thetabar += its VJP of zbar. */
void gru_sample(const gru *g, const double *eps, double *z);
void gru_sample_vjp(gru *g, const double *theta, const double *eps,
                    const double *zbar, double *thetabar);
/* KL(q(z0) || N(0, I)) at the last encode, summed over the D dims, and
 * thetabar += klbar times its gradient. */
double gru_kl(const gru *g);
void gru_kl_vjp(gru *g, const double *theta, double klbar, double *thetabar);

#endif
