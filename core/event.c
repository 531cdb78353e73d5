/* A terminal event g(t, y) = 0 written as an expression (nde/event.h). */
#include <matheval.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "nde/event.h"

struct nde_event {
    void *g, *dg_dt;        /* evaluators; dg_dt NULL when g has no t      */
    void **dg_dy;           /* dim evaluators, NULL where the derivative is
                               0                                           */
    char **names;           /* t, then the dim state names                 */
    double *values;         /* 1 + dim: the point being evaluated          */
    double *f, *gy;         /* dim each: the field and dg/dy at t*         */
    size_t dim;
    int direction;
};

int nde_expr_parse(const nde_section *sec, const char *key, const char *text,
                   char *const *names, size_t nnames, const char *known,
                   void **out, nde_ctx *ctx)
{
    char *copy, **used;
    int nused;

    *out = NULL;
    if (strspn(text, " \t") == strlen(text))
        return nde_section_error(sec, key, ctx, "empty expression");
    if (!(copy = strdup(text)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    *out = evaluator_create(copy);
    free(copy);
    if (!*out)
        return nde_section_error(sec, key, ctx,
                                 "cannot parse expression '%s'", text);
    evaluator_get_variables(*out, &used, &nused);
    for (int u = 0; u < nused; u++) {
        size_t i = 0;
        while (i < nnames && strcmp(names[i], used[u]) != 0)
            i++;
        if (i == nnames) {
            int rc = nde_section_error(sec, key, ctx,
                                       "expression '%s' uses unknown "
                                       "variable '%s' (known: %s)",
                                       text, used[u], known);
            evaluator_destroy(*out);
            *out = NULL;
            return rc;
        }
    }
    return NDE_OK;
}

void nde_event_destroy(nde_event *ev)
{
    if (!ev)
        return;
    if (ev->g)
        evaluator_destroy(ev->g);
    if (ev->dg_dt)
        evaluator_destroy(ev->dg_dt);
    for (size_t i = 0; ev->dg_dy && i < ev->dim; i++)
        if (ev->dg_dy[i])
            evaluator_destroy(ev->dg_dy[i]);
    for (size_t i = 0; ev->names && i <= ev->dim; i++)
        free(ev->names[i]);
    free(ev->dg_dy);
    free(ev->names);
    free(ev->values);
    free(ev->f);
    free(ev->gy);
    free(ev);
}

/* The derivative of g by variable `name`; NULL (with NDE_OK) when it is
 * the constant 0, so evaluation skips it. */
static int derive(nde_event *ev, const char *name, void **out, nde_ctx *ctx)
{
    *out = evaluator_derivative(ev->g, (char *)name);
    if (!*out)
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if (strcmp(evaluator_get_string(*out), "0") == 0) {
        evaluator_destroy(*out);
        *out = NULL;
    }
    return NDE_OK;
}

static int read_direction(const nde_section *sec, int *dir, nde_ctx *ctx)
{
    const char *word;
    int rc;

    *dir = NDE_EVENT_BOTH;
    if (!nde_section_has(sec, "direction"))
        return NDE_OK;
    if ((rc = nde_get_string(sec, "direction", &word, ctx)) != NDE_OK)
        return rc;
    if (strcmp(word, "rising") == 0)
        *dir = NDE_EVENT_RISING;
    else if (strcmp(word, "falling") == 0)
        *dir = NDE_EVENT_FALLING;
    else if (strcmp(word, "both") != 0)
        return nde_section_error(sec, "direction", ctx,
                                 "'%s' is not a direction (rising, falling "
                                 "or both)", word);
    return NDE_OK;
}

/* Names, the expression and its derivatives. */
static int build(nde_event *ev, const nde_section *sec, const nde_field *f,
                 nde_ctx *ctx)
{
    const size_t dim = f->dim;
    char known[256];
    const char *text;
    size_t len;
    int rc;

    ev->dim = dim;
    ev->names = calloc(dim + 1, sizeof *ev->names);
    ev->dg_dy = calloc(dim, sizeof *ev->dg_dy);
    ev->values = calloc(dim + 1, sizeof *ev->values);
    ev->f = calloc(dim, sizeof *ev->f);
    ev->gy = calloc(dim, sizeof *ev->gy);
    if (!ev->names || !ev->dg_dy || !ev->values || !ev->f || !ev->gy ||
        !(ev->names[0] = strdup("t")))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    len = (size_t)snprintf(known, sizeof known, "t");
    for (size_t i = 0; i < dim; i++) {
        char fallback[32];
        const char *name = f->state_names ? f->state_names[i] : fallback;
        snprintf(fallback, sizeof fallback, "y%zu", i);
        if (!(ev->names[1 + i] = strdup(name)))
            return nde_error(ctx, NDE_ENOMEM, "out of memory");
        if (len < sizeof known)
            len += (size_t)snprintf(known + len, sizeof known - len, ", %s",
                                    name);
    }
    if ((rc = nde_get_string(sec, "event", &text, ctx)) ||
        (rc = nde_expr_parse(sec, "event", text, ev->names, dim + 1, known,
                             &ev->g, ctx)) ||
        (rc = derive(ev, "t", &ev->dg_dt, ctx)))
        return rc;
    for (size_t i = 0; i < dim; i++)
        if ((rc = derive(ev, ev->names[1 + i], &ev->dg_dy[i], ctx)))
            return rc;
    return read_direction(sec, &ev->direction, ctx);
}

int nde_event_from_section(nde_event **out, const nde_section *sec,
                           const nde_field *f, nde_ctx *ctx)
{
    nde_event *ev;
    int rc;

    *out = NULL;
    if (!nde_section_has(sec, "event")) {
        if (nde_section_has(sec, "direction"))
            return nde_section_error(sec, "direction", ctx,
                                     "needs an event (the key event)");
        return NDE_OK;
    }
    if (!(ev = calloc(1, sizeof *ev)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if ((rc = build(ev, sec, f, ctx)) != NDE_OK) {
        nde_event_destroy(ev);
        return rc;
    }
    *out = ev;
    return NDE_OK;
}

int nde_event_direction(const nde_event *ev)
{
    return ev->direction;
}

static double eval_at(nde_event *ev, void *e)
{
    return evaluator_evaluate(e, (int)(ev->dim + 1), ev->names, ev->values);
}

static void load(nde_event *ev, double t, const double *y)
{
    ev->values[0] = t;
    memcpy(ev->values + 1, y, ev->dim * sizeof *y);
}

double nde_event_value(nde_event *ev, double t, const double *y)
{
    load(ev, t, y);
    return eval_at(ev, ev->g);
}

double nde_event_gradient(nde_event *ev, double t, const double *y,
                          double *gy)
{
    load(ev, t, y);
    for (size_t i = 0; i < ev->dim; i++)
        gy[i] = ev->dg_dy[i] ? eval_at(ev, ev->dg_dy[i]) : 0.0;
    return ev->dg_dt ? eval_at(ev, ev->dg_dt) : 0.0;
}

int nde_event_cotangent(nde_event *ev, nde_field *f, const double *theta,
                        double tstar, const double *ystar, double tbar,
                        double *ybar, nde_ctx *ctx)
{
    const size_t dim = ev->dim;
    double rate, push = tbar, scale;
    int rc;

    if ((rc = nde_field_eval(f, tstar, ystar, theta, ev->f, 1)) != NDE_OK)
        return nde_error(ctx, rc == NDE_ERETRY ? NDE_ENONFINITE : rc,
                         "event: the field at the event time t* = %g %s",
                         tstar, rc == NDE_ERETRY ? "is not finite"
                                                 : "failed");
    /* dg/dt* along the solution, and what moving t* does to the loss */
    rate = nde_event_gradient(ev, tstar, ystar, ev->gy);
    for (size_t i = 0; i < dim; i++) {
        rate += ev->gy[i] * ev->f[i];
        push += ybar[i] * ev->f[i];
    }
    if (rate == 0.0 || !isfinite(rate))
        return nde_error(ctx, NDE_ENONFINITE,
                         "event: g is tangential to the solution at t* = %g "
                         "(dg/dt + dg/dy . f = %g): the event time is not "
                         "differentiable there", tstar, rate);
    scale = push / rate;
    for (size_t i = 0; i < dim; i++)
        ybar[i] -= scale * ev->gy[i];
    return NDE_OK;
}
