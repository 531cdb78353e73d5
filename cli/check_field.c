/*
 * check_field.c - the field suite of `nde check` (nde/field.h's contract).
 *
 * At FIELD_POINTS random points (t in [0, 1), y in [-1, 1)^(B x dim),
 * theta = init_params(seed) perturbed by up to 10 %, cotangent v in
 * [-1, 1) of the output's shape: B x dim, or B x dim x M for a diffusion
 * with general noise), over a batch of FIELD_BATCH rows, for the drift
 * and, when the field has noise, the diffusion:
 * - the VJP against fourth-order central differences of <v, f>, with the
 *   outputs starting at random non-zero values: out - start must be the
 *   product (a VJP that assigns fails by the size of the start);
 * - a VJP with one output NULL gives the other one unchanged;
 * - rows independent: each row of a batch equals that row evaluated alone
 *   (eval, and the VJP's vy; vtheta is the sum of the rows');
 * - determinism (two evaluations, the same bits), finite output, and eval
 *   and the VJP leave y, theta and v as they were;
 * - with eval_sde and vjp_sde (both at once, field interface 6): their
 *   values against eval's and diffusion's, and against the sum of vjp's
 *   and diffusion_vjp's;
 * - with quadratures (nde_field.quadrature, interface 7): eval gives the
 *   same bits with the quadrature values moved, and the VJP's vy is 0
 *   there (no derivative reads them).
 * The worst error over the points is printed per check.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define FIELD_BATCH 4
#define FIELD_POINTS 3
#define FD_TOL 1e-6      /* VJP against differences, relative        */
#define ROW_TOL 1e-12    /* a row alone against the row of a batch    */

typedef int (*apply_fn)(nde_field *f, double t, const double *y,
                        const double *theta, double *out, size_t batch);
typedef int (*vjp_fn)(nde_field *f, double t, const double *y,
                      const double *theta, const double *v, double *vy,
                      double *vtheta, size_t batch);

/* Worst measured errors of one operator (drift or diffusion). */
enum {
    W_FINITE, W_DETERMINISTIC, W_INPUTS, W_ROWS, W_VJP_Y, W_VJP_THETA,
    W_VJP_NULL, W_VJP_ROWS, W_COUNT
};
static const char *const worst_names[W_COUNT] = {
    "output finite (non-finite values)",
    "deterministic (values differing)",
    "inputs unchanged (values changed)",
    "rows independent",
    "vjp y accumulated vs differences",
    "vjp theta accumulated vs differences",
    "vjp with a NULL output",
    "vjp rows independent",
};
static const double worst_tols[W_COUNT] = {0, 0, 0, ROW_TOL, FD_TOL, FD_TOL,
                                           ROW_TOL, ROW_TOL};

typedef struct field_check {
    nde_field *f;
    apply_fn apply;
    vjp_fn vjp;
    size_t n, P;            /* batch x dim, parameters                   */
    size_t w;               /* output values a row: dim, or dim x M for a
                               general-noise diffusion (nde/field.h)     */
    double t;
    double *y, *theta, *v;  /* the point                                 */
    double *out, *out2, *yc, *thc, *vc;
    double *vy, *vth, *vy0, *vth0, *vy2, *vth2, *fdy, *fdth;
    double worst[W_COUNT];
} field_check;

static void note_worst(field_check *c, int which, double err)
{
    if (isnan(err) || err > c->worst[which])
        c->worst[which] = err;
}

static size_t bits_differ(const double *a, const double *b, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += memcmp(&a[i], &b[i], sizeof *a) != 0;
    return k;
}

/* <v, F(t, y, theta)> over the batch. */
static int project(field_check *c, const double *y, const double *theta,
                   double *out)
{
    int rc = c->apply(c->f, c->t, y, theta, c->out2, FIELD_BATCH);
    *out = 0.0;
    for (size_t i = 0; i < FIELD_BATCH * c->w; i++)
        *out += c->v[i] * c->out2[i];
    return rc;
}

/* <v, F> at the current y and theta, for check_difference. */
static int projection(void *user, double *v)
{
    field_check *c = user;
    return project(c, c->y, c->theta, v);
}

/* Every check at the current point; NDE_OK or the plugin's status. */
static int check_point(field_check *c)
{
    const size_t n = c->n, P = c->P, dim = c->f->dim, w = c->w;
    const size_t no = FIELD_BATCH * w;  /* output values */
    nde_field *f = c->f;
    size_t i, b;
    int rc;

    memcpy(c->yc, c->y, n * sizeof *c->y);
    memcpy(c->thc, c->theta, P * sizeof *c->theta);
    memcpy(c->vc, c->v, no * sizeof *c->v);
    if ((rc = c->apply(f, c->t, c->y, c->theta, c->out, FIELD_BATCH)) ||
        (rc = c->apply(f, c->t, c->y, c->theta, c->out2, FIELD_BATCH)))
        return rc;
    for (i = 0, b = 0; i < no; i++)
        b += !isfinite(c->out[i]);
    note_worst(c, W_FINITE, (double)b);
    note_worst(c, W_DETERMINISTIC, (double)bits_differ(c->out, c->out2, no));

    /* The VJP into outputs that start at vy0, vth0. */
    memcpy(c->vy, c->vy0, n * sizeof *c->vy);
    memcpy(c->vth, c->vth0, P * sizeof *c->vth);
    if ((rc = c->vjp(f, c->t, c->y, c->theta, c->v, c->vy, c->vth,
                     FIELD_BATCH)))
        return rc;
    note_worst(c, W_INPUTS, (double)(bits_differ(c->y, c->yc, n) +
                                     bits_differ(c->theta, c->thc, P) +
                                     bits_differ(c->v, c->vc, no)));
    for (i = 0; i < n; i++)
        c->vy[i] -= c->vy0[i];
    for (i = 0; i < P; i++)
        c->vth[i] -= c->vth0[i];
    for (i = 0; i < n; i++)
        if ((rc = check_difference(c->y, i, projection, c, &c->fdy[i])))
            return rc;
    for (i = 0; i < P; i++)
        if ((rc = check_difference(c->theta, i, projection, c,
                                    &c->fdth[i])))
            return rc;
    note_worst(c, W_VJP_Y, check_rel_error(c->vy, c->fdy, n));
    note_worst(c, W_VJP_THETA, check_rel_error(c->vth, c->fdth, P));

    /* One output NULL: the other as with both (both start at zero). */
    memset(c->vy2, 0, n * sizeof *c->vy2);
    memset(c->vth2, 0, P * sizeof *c->vth2);
    if ((rc = c->vjp(f, c->t, c->y, c->theta, c->v, c->vy2, NULL,
                     FIELD_BATCH)) ||
        (rc = c->vjp(f, c->t, c->y, c->theta, c->v, NULL, c->vth2,
                     FIELD_BATCH)))
        return rc;
    note_worst(c, W_VJP_NULL, fmax(check_rel_error(c->vy2, c->vy, n),
                                   check_rel_error(c->vth2, c->vth, P)));

    /* Each row alone: eval, vy, and vtheta summed over the rows. */
    memset(c->vth2, 0, P * sizeof *c->vth2);
    for (b = 0; b < FIELD_BATCH; b++) {
        const double *yb = c->y + b * dim, *vb = c->v + b * w;
        memset(c->vy2 + b * dim, 0, dim * sizeof *c->vy2);
        if ((rc = c->apply(f, c->t, yb, c->theta, c->out2 + b * w, 1)) ||
            (rc = c->vjp(f, c->t, yb, c->theta, vb, c->vy2 + b * dim,
                         c->vth2, 1)))
            return rc;
    }
    note_worst(c, W_ROWS, check_rel_error(c->out2, c->out, no));
    note_worst(c, W_VJP_ROWS, fmax(check_rel_error(c->vy2, c->vy, n),
                                   check_rel_error(c->vth2, c->vth, P)));
    return NDE_OK;
}

/* Draw point k: t, y, theta (from theta0), v and the outputs' starts. */
static void draw_point(field_check *c, const double *theta0, uint64_t *rng)
{
    size_t i;

    c->t = check_uniform(rng, 0.0, 1.0);
    for (i = 0; i < c->n; i++) {
        c->y[i] = check_uniform(rng, -1.0, 1.0);
        c->vy0[i] = check_uniform(rng, 0.5, 1.5);
    }
    for (i = 0; i < FIELD_BATCH * c->w; i++)
        c->v[i] = check_uniform(rng, -1.0, 1.0);
    for (i = 0; i < c->P; i++) {
        double u = check_uniform(rng, -0.1, 0.1);
        c->theta[i] = theta0[i] != 0.0 ? theta0[i] * (1.0 + u) : u;
        c->vth0[i] = check_uniform(rng, 0.5, 1.5);
    }
}

static void report_op(check_report *r, const char *op, const field_check *c)
{
    char name[64];
    for (int w = 0; w < W_COUNT; w++) {
        snprintf(name, sizeof name, "%s %s", op, worst_names[w]);
        check_line(r, name, c->worst[w], worst_tols[w]);
    }
}

/* The suite for one operator; a failing call ends it with a FAIL line. */
static void check_op(field_check *c, const char *op, const double *theta0,
                     uint64_t seed, check_report *r, nde_ctx *ctx)
{
    uint64_t rng = seed;
    char name[64];
    int rc;

    memset(c->worst, 0, sizeof c->worst);
    for (int k = 0; k < FIELD_POINTS; k++) {
        draw_point(c, theta0, &rng);
        if ((rc = check_point(c)) != NDE_OK) {
            snprintf(name, sizeof name, "%s at point %d", op, k);
            check_cannot(r, name, ctx, rc);
            return;
        }
    }
    report_op(r, op, c);
}

/* eval_sde and vjp_sde at one point of c's suite (its last drawn)
 * against the separate operations, relative errors to ROW_TOL. */
static void check_both(field_check *c, size_t no, check_report *r,
                       nde_ctx *ctx)
{
    nde_field *f = c->f;
    const size_t n = c->n, P = c->P;
    double *m = calloc(4 * n + 3 * no + 2 * (P + 1), sizeof *m);
    double *dy = m, *dy2 = dy + n, *vy = dy2 + n, *vy2 = vy + n;
    double *g = vy2 + n, *g2 = g + no, *vg = g2 + no;
    double *vth = vg + no, *vth2 = vth + P + 1;
    int rc;

    if (!m) {
        check_cannot(r, "eval_sde", ctx,
                     nde_error(ctx, NDE_ENOMEM, "out of memory"));
        return;
    }
    for (size_t i = 0; i < no; i++)
        vg[i] = c->v[i % n] * (1.0 - 0.3 * (double)(i % 7));
    if ((rc = f->type->eval_sde(f, c->t, c->y, c->theta, dy, g,
                                FIELD_BATCH)) ||
        (rc = nde_field_eval(f, c->t, c->y, c->theta, dy2, FIELD_BATCH)) ||
        (rc = nde_field_diffusion(f, c->t, c->y, c->theta, g2,
                                  FIELD_BATCH)))
        check_cannot(r, "eval_sde", ctx, rc);
    else
        check_line(r, "eval_sde against eval and diffusion",
                   fmax(check_rel_error(dy, dy2, n),
                        check_rel_error(g, g2, no)), ROW_TOL);
    if ((rc = f->type->vjp_sde(f, c->t, c->y, c->theta, c->v, vg, vy, vth,
                               FIELD_BATCH)) ||
        (rc = nde_field_vjp(f, c->t, c->y, c->theta, c->v, vy2, vth2,
                            FIELD_BATCH)) ||
        (rc = nde_field_diffusion_vjp(f, c->t, c->y, c->theta, vg, vy2,
                                      vth2, FIELD_BATCH)))
        check_cannot(r, "vjp_sde", ctx, rc);
    else
        check_line(r, "vjp_sde against vjp + diffusion_vjp",
                   fmax(check_rel_error(vy, vy2, n),
                        check_rel_error(vth, vth2, P)), ROW_TOL);
    free(m);
}

/* At the last point checked: the declared quadratures read by nothing,
 * the largest change of eval (relative) or |vy| there. */
static void check_quadrature(field_check *c, check_report *r, nde_ctx *ctx)
{
    nde_field *f = c->f;
    const size_t dim = f->dim, n = c->n;
    const size_t q = f->quadrature < dim ? f->quadrature : dim;
    double worst;
    int rc;

    memcpy(c->yc, c->y, n * sizeof *c->yc);
    for (size_t row = 0; row < FIELD_BATCH; row++)
        for (size_t i = dim - q; i < dim; i++)
            c->yc[row * dim + i] += 0.5 + 0.1 * (double)i;
    memset(c->vy, 0, n * sizeof *c->vy);
    if ((rc = nde_field_eval(f, c->t, c->y, c->theta, c->out,
                             FIELD_BATCH)) ||
        (rc = nde_field_eval(f, c->t, c->yc, c->theta, c->out2,
                             FIELD_BATCH)) ||
        (rc = nde_field_vjp(f, c->t, c->y, c->theta, c->v, c->vy, NULL,
                            FIELD_BATCH))) {
        check_cannot(r, "quadrature", ctx, rc);
        return;
    }
    worst = check_rel_error(c->out2, c->out, n);
    for (size_t row = 0; row < FIELD_BATCH; row++)
        for (size_t i = dim - q; i < dim; i++)
            worst = fmax(worst, fabs(c->vy[row * dim + i]));
    check_line(r, "quadratures read by no derivative", worst, 0.0);
}

/* A field that reads an input (nde/input.h) gets one: the same linear
 * series in every row (a row alone reads what it reads in the batch),
 * knots at 0, 1/2, 1, each channel its own values. */
static int attach_input(nde_field *f, nde_input **in, nde_ctx *ctx)
{
    static const double kt[3] = {0.0, 0.5, 1.0};
    const size_t m = f->ninputs;
    double *u;
    int rc;

    if (!(u = malloc(3 * m * sizeof *u)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    for (size_t k = 0; k < 3; k++)
        for (size_t c = 0; c < m; c++)
            u[k * m + c] = 0.3 + 0.7 * (double)k - 0.4 * (double)c;
    rc = nde_input_create(ctx, FIELD_BATCH, m, 3, NDE_INPUT_LINEAR, in);
    for (size_t row = 0; rc == NDE_OK && row < FIELD_BATCH; row++)
        rc = nde_input_set_row(*in, row, 3, kt, u);
    if (rc == NDE_OK && (rc = nde_input_use_rows(*in, FIELD_BATCH)) == NDE_OK)
        nde_input_select(*in, 0.5, 0.0);
    free(u);
    return rc != NDE_OK ? rc : nde_field_set_input(f, *in);
}

int check_field(nde_ctx *ctx, nde_config *cfg, uint64_t seed,
                check_report *r)
{
    nde_input *in = NULL;
    field_check c;
    nde_field *f = NULL;
    double *mem = NULL, *theta0;
    size_t n, no, P;
    int rc;

    memset(&c, 0, sizeof c);
    if ((rc = nde_field_create(ctx, cfg, "field", FIELD_BATCH, &f)) != NDE_OK)
        return rc;
    check_plugin(r, ctx, &f->type->info);
    n = FIELD_BATCH * f->dim;
    no = f->noise == NDE_NOISE_GENERAL ? n * f->noise_dim : n;
    P = f->nparams;
    /* 6 arrays of n values, 4 of no (outputs and cotangents: the
     * diffusion's may be dim x M a row), 7 of P (+1 so none is empty). */
    if (!(mem = calloc(6 * n + 4 * no + 7 * (P + 1), sizeof *mem))) {
        nde_field_destroy(f);
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    }
    c.f = f;
    c.n = n;
    c.P = P;
    c.y = mem;              c.v = c.y + n;      c.out = c.v + no;
    c.out2 = c.out + no;    c.yc = c.out2 + no; c.vc = c.yc + n;
    c.vy = c.vc + no;       c.vy0 = c.vy + n;   c.vy2 = c.vy0 + n;
    c.fdy = c.vy2 + n;      c.theta = c.fdy + n;
    c.thc = c.theta + P + 1;  c.vth = c.thc + P + 1;
    c.vth0 = c.vth + P + 1;   c.vth2 = c.vth0 + P + 1;
    c.fdth = c.vth2 + P + 1;  theta0 = c.fdth + P + 1;

    check_note(r, "%zu states, %zu parameters, batch %d, %d random points "
               "(seed %llu)", f->dim, P, FIELD_BATCH, FIELD_POINTS,
               (unsigned long long)seed);
    if (f->ninputs)
        check_note(r, "%zu input channel%s: a linear series, the same in "
                   "every row", f->ninputs, f->ninputs == 1 ? "" : "s");
    if (f->ninputs && (rc = attach_input(f, &in, ctx)) != NDE_OK) {
        check_cannot(r, "input", ctx, rc);
    } else if ((rc = nde_field_init_params(f, theta0, seed)) != NDE_OK) {
        check_cannot(r, "init_params", ctx, rc);
    } else {
        c.apply = nde_field_eval;
        c.vjp = nde_field_vjp;
        c.w = f->dim;
        check_op(&c, "drift", theta0, seed, r, ctx);
        if (f->quadrature) {
            check_note(r, "the last %zu value%s of a row declared "
                       "quadratures", f->quadrature,
                       f->quadrature == 1 ? "" : "s");
            check_quadrature(&c, r, ctx);
        }
        if (f->noise == NDE_NOISE_NONE) {
            check_note(r, "no diffusion (an ODE field)");
        } else if (!f->type->diffusion || !f->type->diffusion_vjp) {
            nde_error(ctx, NDE_EPLUGIN, "the field has noise but no "
                      "diffusion or diffusion_vjp");
            check_cannot(r, "diffusion", ctx, NDE_EPLUGIN);
        } else {
            c.apply = nde_field_diffusion;
            c.vjp = nde_field_diffusion_vjp;
            c.w = no / FIELD_BATCH;
            if (f->noise == NDE_NOISE_GENERAL)
                check_note(r, "general noise: the diffusion is dim x %zu a "
                           "row", f->noise_dim);
            check_op(&c, "diffusion", theta0, seed, r, ctx);
            if (f->type->eval_sde)
                check_both(&c, no, r, ctx);
        }
    }
    free(mem);
    nde_field_destroy(f);
    nde_input_destroy(in);
    return NDE_OK;
}
