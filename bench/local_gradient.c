/*
 * local_gradient.c - local regularization's value and gradient along a
 * trained model (the evidence behind the `clip` key; README, "Local
 * regularization on a relaxation oscillator").
 *
 * For N times t_s evenly spaced in (0, T) it solves the model of CONFIG,
 * with the parameters of CHECKPOINT, from y0 to t_s and takes the paper's
 * extra step from there (dt from the initial-step heuristic over [t_s, T],
 * the training rtol/atol): R = EEst |dt|, |dR/dtheta| from the step's VJP,
 * and differences of R along d = dR/dtheta / |dR/dtheta| with y_s and dt
 * frozen: forward (R(theta + e d) - R(theta)) / e for e = 1e-7, 1e-9,
 * 1e-11, which tend to |dR/dtheta| where the VJP is right, and central ones
 * for e = 1e-4, 1e-6, which fall short of it where R has a kink (a norm
 * of the error vector near its zero) within e.
 *
 * Usage: bench_local_gradient CONFIG CHECKPOINT T Y0_1 ... Y0_dim [N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "nde/train.h"

typedef struct probe {
    nde_solver *s;
    nde_solve_opts o;
    size_t n, P;
    double ts, dt;
    const double *y;         /* y_s                                      */
    double *y_next, *err;    /* n each                                   */
} probe;

/* R at theta for the frozen y_s and dt; NAN when the step fails. */
static double value_at(probe *p, const double *theta)
{
    nde_solver_invalidate(p->s);
    if (nde_solver_step(p->s, theta, p->ts, p->dt, p->y, p->y_next, p->err))
        return NAN;
    return nde_error_norm(p->err, p->y, p->y_next, p->n, p->o.rtol,
                          p->o.atol) * fabs(p->dt);
}

/* R(theta + e d) with d = g / |g| into work. */
static double value_along(probe *p, const double *theta, const double *g,
                          double gnorm, double e, double *work)
{
    for (size_t k = 0; k < p->P; k++)
        work[k] = theta[k] + e * g[k] / gnorm;
    return value_at(p, work);
}

int main(int argc, char **argv)
{
    nde_ctx *ctx = nde_ctx_create();
    nde_config *cfg = nde_config_create();
    nde_trainer *tr = NULL;
    probe p;
    double T, *y0, *ys, *g, *work;
    long npts = 300;
    size_t dim;

    if (argc < 5) {
        fprintf(stderr, "usage: %s CONFIG CHECKPOINT T Y0_1 ... Y0_dim "
                "[N]\n", argv[0]);
        return 2;
    }
    if (!ctx || !cfg || nde_config_load_file(cfg, argv[1], ctx) ||
        nde_trainer_create(ctx, cfg, 1, &tr) ||
        nde_trainer_checkpoint_load(tr, argv[2], NDE_CHECKPOINT_PARAMS)) {
        fprintf(stderr, "%s\n", ctx ? nde_ctx_message(ctx) : "no memory");
        return 1;
    }
    memset(&p, 0, sizeof p);
    p.s = nde_trainer_solver(tr);
    dim = nde_trainer_field(tr)->dim;
    p.n = dim;
    p.P = nde_trainer_field(tr)->nparams;
    if ((size_t)argc < 4 + dim) {
        fprintf(stderr, "%s: y0 needs %zu values\n", argv[0], dim);
        return 2;
    }
    T = atof(argv[3]);
    if ((size_t)argc > 4 + dim)
        npts = atol(argv[4 + dim]);
    y0 = calloc(dim, sizeof *y0);
    ys = calloc(dim, sizeof *ys);
    p.y_next = calloc(dim, sizeof *p.y_next);
    p.err = calloc(dim, sizeof *p.err);
    g = calloc(p.P, sizeof *g);
    work = calloc(p.P, sizeof *work);
    if (!y0 || !ys || !p.y_next || !p.err || !g || !work || npts < 1 ||
        !(T > 0)) {
        fprintf(stderr, "%s: bad N or T, or out of memory\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < dim; i++)
        y0[i] = atof(argv[4 + i]);
    p.y = ys;
    if (nde_solve_opts_from_section(&p.o, p.s->type,
                                    nde_config_section(cfg, "solver"),
                                    ctx) ||
        nde_solver_set_batch(p.s, 1)) {
        fprintf(stderr, "%s\n", nde_ctx_message(ctx));
        return 1;
    }

    const double *theta = nde_trainer_params(tr);
    printf("t_s dt R |dR/dtheta| fwd(1e-7) fwd(1e-9) fwd(1e-11) "
           "central(1e-4) central(1e-6)\n");
    for (long i = 1; i <= npts; i++) {
        const double *f0;
        double R, gnorm = 0.0, fwd[3], cen[2];
        const double ef[3] = {1e-7, 1e-9, 1e-11}, ec[2] = {1e-4, 1e-6};

        p.ts = T * (double)i / (double)(npts + 1);
        if (nde_solve(p.s, &p.o, theta, 0.0, y0, p.ts, 1, &p.ts, ys, NULL) ||
            nde_solver_first_stage(p.s, theta, p.ts, ys, &f0) ||
            nde_initial_step(p.s, &p.o, theta, p.ts, ys, f0, T, &p.dt)) {
            fprintf(stderr, "%s\n", nde_ctx_message(ctx));
            return 1;
        }
        R = value_at(&p, theta);
        memset(g, 0, p.P * sizeof *g);
        if (nde_solver_last_step_vjp(p.s, p.o.rtol, p.o.atol, NULL,
                                     fabs(p.dt), 0.0, NULL, 0, NULL, g)) {
            fprintf(stderr, "%s\n", nde_ctx_message(ctx));
            return 1;
        }
        for (size_t k = 0; k < p.P; k++)
            gnorm += g[k] * g[k];
        gnorm = sqrt(gnorm);
        for (int e = 0; e < 3; e++)
            fwd[e] = gnorm > 0 ? (value_along(&p, theta, g, gnorm, ef[e],
                                              work) - R) / ef[e]
                               : 0.0;
        for (int e = 0; e < 2; e++)
            cen[e] = gnorm > 0 ? (value_along(&p, theta, g, gnorm, ec[e],
                                              work) -
                                  value_along(&p, theta, g, gnorm, -ec[e],
                                              work)) / (2 * ec[e])
                               : 0.0;
        printf("%.6g %.4g %.4g %.4g %.4g %.4g %.4g %.4g %.4g\n", p.ts, p.dt,
               R, gnorm, fwd[0], fwd[1], fwd[2], cen[0], cen[1]);
    }
    nde_trainer_destroy(tr);
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
    free(y0);
    free(ys);
    free(p.y_next);
    free(p.err);
    free(g);
    free(work);
    return 0;
}
