/*
 * badorderops - a deliberately wrong solver for `nde check`: explicit
 * Euler written against the ops table (no tableau for the load-time order
 * check to read) declaring order 2; `nde check solver badorderops` must
 * exit 1 on the observed order.
 */
#include <nde/nde.h>

static int euler_step(nde_solver *s, const double *theta, double t, double h,
                      const double *dw, const double *y, const double *aux,
                      double *y_next, double *aux_next, double *err,
                      const nde_norm_spec *norm, double *eest)
{
    const size_t n = s->batch * s->field->dim;
    int rc;

    (void)dw; (void)aux; (void)aux_next; (void)err; (void)norm; (void)eest;
    s->counts.nfe++;
    if ((rc = nde_field_eval(s->field, t, y, theta, y_next, s->batch)))
        return rc;
    for (size_t i = 0; i < n; i++)
        y_next[i] = y[i] + h * y_next[i];
    return NDE_OK;
}

static const nde_solver_type badorderops = {
    .info = NDE_SOLVER_INFO(
        .name = "badorderops",
        .description = "explicit Euler as ops declaring order 2 (test of nde "
                       "check)",
        .version = "1"),
    .order = 2, .ops = {.step = euler_step}};

NDE_MODULE(&badorderops.info);
