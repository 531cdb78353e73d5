/* gru.c - see gru.h (moved from latent.c, arithmetic unchanged). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gru.h"
#include "task_util.h"

static const char *const block_name[GRU_NBLOCK] = {
    "wr", "ur", "br", "wu", "uu", "bu", "wn", "un", "bn", "wm", "bm", "wv",
    "bv"};
static const int block_bias[GRU_NBLOCK] = {0, 0, 1, 0, 0, 1, 0, 0, 1,
                                           0, 1, 0, 1};

const char *gru_block_name(int k)
{
    return block_name[k];
}

int gru_block_bias(int k)
{
    return block_bias[k];
}

int gru_alloc(gru *g, size_t nin, size_t H, size_t D, size_t max_steps)
{
    const size_t shape[GRU_NBLOCK][2] = {
        {H, nin}, {H, H}, {H, 1}, {H, nin}, {H, H}, {H, 1}, {H, nin},
        {H, H},   {H, 1}, {D, H}, {D, 1},   {D, H}, {D, 1}};

    memset(g, 0, sizeof *g);
    g->H = H;
    g->nin = nin;
    g->D = D;
    g->max_steps = max_steps;
    for (int k = 0; k < GRU_NBLOCK; k++) {
        g->rows_of[k] = shape[k][0];
        g->cols_of[k] = shape[k][1];
        g->off[k + 1] = g->off[k] + shape[k][0] * shape[k][1];
    }
    if (!(g->hs = malloc((max_steps + 1) * H * sizeof *g->hs)) ||
        !(g->gr = malloc(max_steps * H * sizeof *g->gr)) ||
        !(g->gu = malloc(max_steps * H * sizeof *g->gu)) ||
        !(g->gn = malloc(max_steps * H * sizeof *g->gn)) ||
        !(g->xin = malloc(max_steps * nin * sizeof *g->xin)) ||
        !(g->mu = malloc(D * sizeof *g->mu)) ||
        !(g->lv = malloc(D * sizeof *g->lv)) ||
        !(g->mubar = malloc(D * sizeof *g->mubar)) ||
        !(g->lvbar = malloc(D * sizeof *g->lvbar)) ||
        !(g->hbar = malloc(H * sizeof *g->hbar)) ||
        !(g->hprev = malloc(H * sizeof *g->hprev)) ||
        !(g->rhbar = malloc(H * sizeof *g->rhbar)) ||
        !(g->gbar = malloc(H * sizeof *g->gbar)) ||
        !(g->abar = malloc(H * sizeof *g->abar)))
        return -1;
    return 0;
}

void gru_free(gru *g)
{
    free(g->hs);
    free(g->gr);
    free(g->gu);
    free(g->gn);
    free(g->xin);
    free(g->mu);
    free(g->lv);
    free(g->mubar);
    free(g->lvbar);
    free(g->hbar);
    free(g->hprev);
    free(g->rhbar);
    free(g->gbar);
    free(g->abar);
    memset(g, 0, sizeof *g);
}

void gru_init(const gru *g, gsl_rng *r, double *theta)
{
    for (int k = 0; k < GRU_NBLOCK; k++)
        if (!block_bias[k])
            task_glorot(r, theta + g->off[k], g->rows_of[k], g->cols_of[k]);
}

int gru_block_of(const gru *g, size_t *i)
{
    int k = 0;

    while (*i >= g->off[k + 1])
        k++;
    *i -= g->off[k];
    return k;
}

/* out (m) += W (m x n) x */
static void gemv_add(const double *W, const double *x, size_t m, size_t n,
                     double *out)
{
    for (size_t i = 0; i < m; i++) {
        double acc = 0.0;
        for (size_t j = 0; j < n; j++)
            acc += W[i * n + j] * x[j];
        out[i] += acc;
    }
}

/* xbar (n) += W^T (m x n) g */
static void gemv_t_add(const double *W, const double *g, size_t m, size_t n,
                       double *xbar)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            xbar[j] += W[i * n + j] * g[i];
}

/* Wbar (m x n) += g x^T */
static void outer_add(const double *g, const double *x, size_t m, size_t n,
                      double *Wbar)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            Wbar[i * n + j] += g[i] * x[j];
}

#define BLK(th, k) ((th) + g->off[GRU_##k])

/* Cho et al. 2014: r, u = sigmoid(W x + U h + b), n = tanh(Wn x + Un (r .
 * h) + bn), h' = (1 - u) n + u h. */
void gru_encode(gru *g, const double *theta, size_t steps)
{
    const size_t H = g->H, D = g->D, nin = g->nin;
    double *hn;
    size_t st, i;

    memset(g->hs, 0, H * sizeof *g->hs);
    for (st = 0; st < steps; st++) {
        const double *h = g->hs + st * H, *x = g->xin + st * nin;
        double *r = g->gr + st * H, *u = g->gu + st * H, *n = g->gn + st * H;
        hn = g->hs + (st + 1) * H;
        memcpy(r, BLK(theta, BR), H * sizeof *r);
        memcpy(u, BLK(theta, BU), H * sizeof *u);
        memcpy(n, BLK(theta, BN), H * sizeof *n);
        gemv_add(BLK(theta, WR), x, H, nin, r);
        gemv_add(BLK(theta, UR), h, H, H, r);
        gemv_add(BLK(theta, WU), x, H, nin, u);
        gemv_add(BLK(theta, UU), h, H, H, u);
        for (i = 0; i < H; i++) {
            r[i] = 1.0 / (1.0 + exp(-r[i]));
            u[i] = 1.0 / (1.0 + exp(-u[i]));
            hn[i] = r[i] * h[i]; /* r . h until h' is known */
        }
        gemv_add(BLK(theta, WN), x, H, nin, n);
        gemv_add(BLK(theta, UN), hn, H, H, n);
        for (i = 0; i < H; i++) {
            n[i] = tanh(n[i]);
            hn[i] = (1.0 - u[i]) * n[i] + u[i] * h[i];
        }
    }
    g->steps = steps;
    hn = g->hs + steps * H;
    memcpy(g->mu, BLK(theta, BM), D * sizeof *g->mu);
    memcpy(g->lv, BLK(theta, BV), D * sizeof *g->lv);
    gemv_add(BLK(theta, WM), hn, D, H, g->mu);
    gemv_add(BLK(theta, WV), hn, D, H, g->lv);
}

void gru_encode_vjp(gru *g, const double *theta, const double *mubar,
                    const double *lvbar, double *thetabar)
{
    const size_t H = g->H, D = g->D, nin = g->nin;
    double *hb = g->hbar, *hp = g->hprev, *a = g->abar, *rhb = g->rhbar;
    double *gb = g->gbar;
    size_t st, i, j;

    outer_add(mubar, g->hs + g->steps * H, D, H, BLK(thetabar, WM));
    outer_add(lvbar, g->hs + g->steps * H, D, H, BLK(thetabar, WV));
    for (i = 0; i < D; i++) {
        BLK(thetabar, BM)[i] += mubar[i];
        BLK(thetabar, BV)[i] += lvbar[i];
    }
    memset(hb, 0, H * sizeof *hb);
    gemv_t_add(BLK(theta, WM), mubar, D, H, hb);
    gemv_t_add(BLK(theta, WV), lvbar, D, H, hb);
    for (st = g->steps; st-- > 0;) {
        const double *h = g->hs + st * H, *x = g->xin + st * nin;
        const double *r = g->gr + st * H, *u = g->gu + st * H;
        const double *n = g->gn + st * H;
        memset(rhb, 0, H * sizeof *rhb);
        for (i = 0; i < H; i++) {
            hp[i] = hb[i] * u[i];
            a[i] = hb[i] * (1.0 - u[i]) * (1.0 - n[i] * n[i]);
            gb[i] = hb[i] * (h[i] - n[i]) * u[i] * (1.0 - u[i]);
        }
        /* the candidate n */
        outer_add(a, x, H, nin, BLK(thetabar, WN));
        for (i = 0; i < H; i++) {
            BLK(thetabar, BN)[i] += a[i];
            for (j = 0; j < H; j++)
                BLK(thetabar, UN)[i * H + j] += a[i] * r[j] * h[j];
        }
        gemv_t_add(BLK(theta, UN), a, H, H, rhb);
        /* the update gate u */
        outer_add(gb, x, H, nin, BLK(thetabar, WU));
        outer_add(gb, h, H, H, BLK(thetabar, UU));
        for (i = 0; i < H; i++)
            BLK(thetabar, BU)[i] += gb[i];
        gemv_t_add(BLK(theta, UU), gb, H, H, hp);
        /* the reset gate r, through r . h */
        for (i = 0; i < H; i++) {
            hp[i] += rhb[i] * r[i];
            gb[i] = rhb[i] * h[i] * r[i] * (1.0 - r[i]);
        }
        outer_add(gb, x, H, nin, BLK(thetabar, WR));
        outer_add(gb, h, H, H, BLK(thetabar, UR));
        for (i = 0; i < H; i++)
            BLK(thetabar, BR)[i] += gb[i];
        gemv_t_add(BLK(theta, UR), gb, H, H, hp);
        memcpy(hb, hp, H * sizeof *hb);
    }
}

void gru_sample(const gru *g, const double *eps, double *z)
{
    for (size_t d = 0; d < g->D; d++)
        z[d] = g->mu[d] + exp(0.5 * g->lv[d]) * eps[d];
}

void gru_sample_vjp(gru *g, const double *theta, const double *eps,
                    const double *zbar, double *thetabar)
{
    for (size_t d = 0; d < g->D; d++)
        g->lvbar[d] = zbar[d] * 0.5 * exp(0.5 * g->lv[d]) * eps[d];
    gru_encode_vjp(g, theta, zbar, g->lvbar, thetabar);
}

double gru_kl(const gru *g)
{
    double kl = 0.0;

    for (size_t d = 0; d < g->D; d++)
        kl += exp(g->lv[d]) + g->mu[d] * g->mu[d] - 1.0 - g->lv[d];
    return 0.5 * kl;
}

void gru_kl_vjp(gru *g, const double *theta, double klbar, double *thetabar)
{
    for (size_t d = 0; d < g->D; d++) {
        g->mubar[d] = klbar * g->mu[d];
        g->lvbar[d] = klbar * 0.5 * (exp(g->lv[d]) - 1.0);
    }
    gru_encode_vjp(g, theta, g->mubar, g->lvbar, thetabar);
}
