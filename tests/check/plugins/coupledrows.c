/*
 * coupledrows - a deliberately wrong field for `nde check`: y' = theta (y -
 * mean of y over the batch rows), so a row's derivative depends on the
 * other rows of its batch. Its VJP is right for that function (the check
 * of the VJP against differences passes); `nde check field coupledrows`
 * must exit 1 on the rows check.
 */
#include <nde/nde.h>

static int cr_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    (void)sec;
    (void)ctx;
    f->dim = 1;
    f->nparams = 1;
    return NDE_OK;
}

static void cr_destroy(nde_field *f) { (void)f; }

static int cr_init_params(nde_field *f, double *theta, uint64_t seed)
{
    (void)f;
    (void)seed;
    theta[0] = -0.5;
    return NDE_OK;
}

static double mean(const double *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s / (double)n;
}

static int cr_eval(nde_field *f, double t, const double *y,
                   const double *theta, double *dy, size_t batch)
{
    const double m = mean(y, batch);
    (void)f;
    (void)t;
    for (size_t i = 0; i < batch; i++)
        dy[i] = theta[0] * (y[i] - m);
    return NDE_OK;
}

static int cr_vjp(nde_field *f, double t, const double *y,
                  const double *theta, const double *v, double *vy,
                  double *vtheta, size_t batch)
{
    const double m = mean(y, batch), vm = mean(v, batch);
    (void)f;
    (void)t;
    for (size_t i = 0; i < batch; i++) {
        if (vy)
            vy[i] += theta[0] * (v[i] - vm);
        if (vtheta)
            vtheta[0] += v[i] * (y[i] - m);
    }
    return NDE_OK;
}

static const nde_field_type coupledrows = {
    .info = NDE_FIELD_INFO(
        .name = "coupledrows",
        .description = "y' = theta (y - batch mean), rows coupled (test of "
                       "nde check)",
        .version = "1"),
    .create = cr_create,
    .destroy = cr_destroy,
    .init_params = cr_init_params,
    .eval = cr_eval,
    .vjp = cr_vjp,
};

NDE_MODULE(&coupledrows.info);
