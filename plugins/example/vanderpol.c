/*
 * vanderpol.c - an nde field plugin written outside the nde tree: the Van
 * der Pol oscillator with a learnable damping mu,
 *
 *     x' = v
 *     v' = mu (1 - x^2) v - x
 *
 * It shows everything a field plugin provides: a key table (for config
 * checking and `nde plugins`), create/destroy, init_params, eval over a
 * batch, the vector-Jacobian product, parameter and state names, its info
 * (filled by NDE_FIELD_INFO, which records the versions and the size the
 * library checks) and the module entry point. Build with the Makefile
 * beside it.
 */
#include <stdlib.h>
#include <string.h>

#include <nde/nde.h>

static const nde_key vdp_keys[] = {
    {"mu", NDE_KEY_DOUBLE, "1.0", "damping strength (initial value of the "
                                  "learnable parameter)"},
    {NULL, 0, NULL, NULL}};

static const char *const vdp_state_names[] = {"x", "v"};

typedef struct vdp_state {
    double mu; /* initial value from the config */
} vdp_state;

static int vdp_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    vdp_state *st;
    int rc;

    if (!(st = calloc(1, sizeof *st)))
        return nde_error(ctx, NDE_ENOMEM, "vanderpol: out of memory");
    f->state = st;
    f->dim = 2;
    f->nparams = 1;
    f->state_names = vdp_state_names;
    st->mu = 1.0;
    if (sec && (rc = nde_get_double(sec, "mu", &st->mu, ctx)) != NDE_OK)
        return rc;
    return NDE_OK;
}

static void vdp_destroy(nde_field *f)
{
    free(f->state);
    f->state = NULL;
}

/* mu is given by the config, so no random draw: the seed is unused. */
static int vdp_init_params(nde_field *f, double *theta, uint64_t seed)
{
    const vdp_state *st = f->state;
    (void)seed;
    theta[0] = st->mu;
    return NDE_OK;
}

static int vdp_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    const double mu = theta[0];
    size_t b;
    (void)f;
    (void)t;
    for (b = 0; b < batch; b++) {
        const double x = y[2 * b], v = y[2 * b + 1];
        dy[2 * b] = v;
        dy[2 * b + 1] = mu * (1.0 - x * x) * v - x;
    }
    return NDE_OK;
}

/*
 * With cotangent (wx, wv) on (x', v'):
 *   d/dx  = wv (-2 mu x v - 1)      d/dv = wx + wv mu (1 - x^2)
 *   d/dmu = wv (1 - x^2) v          (summed over the batch)
 */
static int vdp_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *w, double *vy,
                   double *vtheta, size_t batch)
{
    const double mu = theta[0];
    size_t b;
    (void)f;
    (void)t;
    for (b = 0; b < batch; b++) {
        const double x = y[2 * b], v = y[2 * b + 1];
        const double wx = w[2 * b], wv = w[2 * b + 1];
        if (vy) {
            vy[2 * b] += wv * (-2.0 * mu * x * v - 1.0);
            vy[2 * b + 1] += wx + wv * mu * (1.0 - x * x);
        }
        if (vtheta)
            vtheta[0] += wv * (1.0 - x * x) * v;
    }
    return NDE_OK;
}

static int vdp_param_name(const nde_field *f, size_t i, char *buf, size_t len)
{
    (void)f;
    if (i != 0 || len < 3)
        return NDE_EINVAL;
    memcpy(buf, "mu", 3);
    return NDE_OK;
}

static const nde_field_type vanderpol = {
    .info = NDE_FIELD_INFO(
        .name = "vanderpol",
        .description = "Van der Pol oscillator x' = v, v' = mu (1 - x^2) v - "
                       "x with learnable mu (example of an out-of-tree "
                       "plugin)",
        .keys = vdp_keys,
        .version = "1"),
    .create = vdp_create,
    .destroy = vdp_destroy,
    .init_params = vdp_init_params,
    .eval = vdp_eval,
    .vjp = vdp_vjp,
    .param_name = vdp_param_name,
};

NDE_MODULE(&vanderpol.info);
