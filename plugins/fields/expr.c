/*
 * expr - a vector field written as expressions (libmatheval):
 *
 *     [field]
 *     plugin = expr
 *     state  = x, y
 *     params = a=1.5, b=1.0, c=3.0, d=1.0
 *     dx     = a*x - b*x*y
 *     dy     = -c*y + d*x*y
 *
 * Expressions may use t, the state names and the parameter names. The
 * derivatives with respect to every state and parameter are derived
 * symbolically once, at create, and used by the VJP.
 *
 * An SDE adds g<name> keys: the diagonal diffusion of state <name>, e.g.
 * geometric Brownian motion dx = mu x dt + sigma x dW:
 *
 *     state  = x
 *     params = mu=0.5, sigma=0.3
 *     dx     = mu*x
 *     gx     = sigma*x
 *
 * Once any g key is given the field has a diffusion (f->noise), and a state
 * without a g key has none (g = 0). The [field] key `calculus` says whether
 * the equations are in Ito or Stratonovich form.
 *
 * libmatheval quirks (see tests/fields): `^` is left-associative (2^3^2 is
 * 64); the derivative of x^y with a variable exponent contains log(x), so it
 * is NaN for x <= 0 even where the function is smooth; e, pi, ln2, ... are
 * constants, so they cannot name states or parameters; an empty expression
 * does not parse.
 *
 * Parameters theta: the `params` values in the order given; init_params
 * writes them (the seed is unused).
 *
 * Time-dependent inputs (nde/input.h): `inputs = dose` names the channels
 * of the input u(t) the expressions may use (f->ninputs), e.g. a
 * one-compartment model dosed by an infusion rate:
 *
 *     state  = c
 *     params = k=0.3
 *     inputs = dose
 *     dc     = -k*c + dose
 *
 * The input is data: no derivative is taken with respect to it.
 */
#include <matheval.h>
#include <math.h>
#include <stdio.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <nde/event.h>
#include <nde/field.h>

/* One expression per state with its symbolic derivatives: the drift, or
 * the diffusion (where eq[i] == NULL means g_i = 0). */
typedef struct expr_system {
    void **eq;            /* nstate evaluators                           */
    void **dy;            /* nstate x nstate: d eq_i / d state_j or NULL */
    void **dp;            /* nstate x nparam: d eq_i / d param_k or NULL */
} expr_system;

typedef struct expr_state {
    size_t nstate, nparam, ninput, nvars;
    char **vars;          /* t, states, params, inputs: names as matheval
                             wants                                       */
    double *values;       /* nvars values of the current evaluation      */
    double *init;         /* nparam initial values                       */
    expr_system drift;
    expr_system diffusion;
    const char **state_names;
} expr_state;

static int is_constant_zero(void *ev)
{
    return strcmp(evaluator_get_string(ev), "0") == 0;
}

/* Load t and theta into the value vector once per call. */
static void load_values(expr_state *s, double t, const double *theta)
{
    s->values[0] = t;
    if (s->nparam) /* theta may be NULL for a field without parameters */
        memcpy(s->values + 1 + s->nstate, theta, s->nparam * sizeof *theta);
}

/* Row i's state and input into the value vector. */
static void load_row(const nde_field *f, expr_state *s, double t,
                     const double *y, size_t i)
{
    const size_t d = s->nstate;

    memcpy(s->values + 1, y + i * d, d * sizeof *y);
    if (s->ninput)
        nde_input_value(f->input, i, t, s->values + 1 + d + s->nparam);
}

static int no_input(const nde_field *f)
{
    return nde_error(f->ctx, NDE_EINVAL, "expr: the field reads %zu input "
                     "channel%s (inputs) but has no input set",
                     f->ninputs, f->ninputs == 1 ? "" : "s");
}

static int system_eval(const nde_field *f, const expr_system *sys, double t,
                       const double *y, const double *theta, double *out,
                       size_t batch)
{
    expr_state *s = f->state;
    const size_t d = s->nstate;
    int bad = 0;
    if (s->ninput && !f->input)
        return no_input(f);
    load_values(s, t, theta);
    for (size_t i = 0; i < batch; i++) {
        load_row(f, s, t, y, i);
        for (size_t j = 0; j < d; j++) {
            double v = sys->eq[j] ? evaluator_evaluate(sys->eq[j],
                                                       (int)s->nvars, s->vars,
                                                       s->values)
                                  : 0.0;
            out[i * d + j] = v;
            bad |= !isfinite(v);
        }
    }
    return bad ? NDE_ERETRY : NDE_OK;
}

static int system_vjp(const nde_field *f, const expr_system *sys, double t,
                      const double *y, const double *theta, const double *v,
                      double *vy, double *vtheta, size_t batch)
{
    expr_state *s = f->state;
    const size_t d = s->nstate, np = s->nparam;
    const int n = (int)s->nvars;
    if (s->ninput && !f->input)
        return no_input(f);
    load_values(s, t, theta);
    for (size_t i = 0; i < batch; i++) {
        load_row(f, s, t, y, i);
        for (size_t j = 0; j < d; j++) {
            double vij = v[i * d + j];
            if (vij == 0.0 || !sys->eq[j])
                continue;
            if (vy)
                for (size_t k = 0; k < d; k++)
                    if (sys->dy[j * d + k])
                        vy[i * d + k] += vij * evaluator_evaluate(
                            sys->dy[j * d + k], n, s->vars, s->values);
            if (vtheta)
                for (size_t k = 0; k < np; k++)
                    if (sys->dp[j * np + k])
                        vtheta[k] += vij * evaluator_evaluate(
                            sys->dp[j * np + k], n, s->vars, s->values);
        }
    }
    return NDE_OK;
}

static int expr_eval(nde_field *f, double t, const double *y,
                     const double *theta, double *dy, size_t batch)
{
    expr_state *s = f->state;
    return system_eval(f, &s->drift, t, y, theta, dy, batch);
}

static int expr_vjp(nde_field *f, double t, const double *y,
                    const double *theta, const double *v, double *vy,
                    double *vtheta, size_t batch)
{
    expr_state *s = f->state;
    return system_vjp(f, &s->drift, t, y, theta, v, vy, vtheta, batch);
}

static int expr_diffusion(nde_field *f, double t, const double *y,
                          const double *theta, double *g, size_t batch)
{
    expr_state *s = f->state;
    return system_eval(f, &s->diffusion, t, y, theta, g, batch);
}

static int expr_diffusion_vjp(nde_field *f, double t, const double *y,
                              const double *theta, const double *v, double *vy,
                              double *vtheta, size_t batch)
{
    expr_state *s = f->state;
    return system_vjp(f, &s->diffusion, t, y, theta, v, vy, vtheta, batch);
}

static int expr_init_params(nde_field *f, double *theta, uint64_t seed)
{
    (void)seed;
    const expr_state *s = f->state;
    if (s->nparam)
        memcpy(theta, s->init, s->nparam * sizeof *theta);
    return NDE_OK;
}

static int expr_param_name(const nde_field *f, size_t i, char *buf, size_t len)
{
    const expr_state *s = f->state;
    if (i >= s->nparam)
        return NDE_EINVAL;
    snprintf(buf, len, "%s", s->vars[1 + s->nstate + i]);
    return NDE_OK;
}

static void destroy_evaluators(void **ev, size_t n)
{
    if (!ev)
        return;
    for (size_t i = 0; i < n; i++)
        if (ev[i])
            evaluator_destroy(ev[i]);
    free(ev);
}

static void destroy_system(expr_system *sys, size_t nstate, size_t nparam)
{
    destroy_evaluators(sys->eq, nstate);
    destroy_evaluators(sys->dy, nstate * nstate);
    destroy_evaluators(sys->dp, nstate * nparam);
}

static int alloc_system(expr_system *sys, size_t nstate, size_t nparam)
{
    sys->eq = calloc(nstate, sizeof *sys->eq);
    sys->dy = calloc(nstate * nstate, sizeof *sys->dy);
    sys->dp = calloc(nstate * (nparam ? nparam : 1), sizeof *sys->dp);
    return sys->eq && sys->dy && sys->dp;
}

static void expr_destroy(nde_field *f)
{
    expr_state *s = f->state;
    if (!s)
        return;
    destroy_system(&s->drift, s->nstate, s->nparam);
    destroy_system(&s->diffusion, s->nstate, s->nparam);
    if (s->vars)
        for (size_t i = 0; i < s->nvars; i++)
            free(s->vars[i]);
    free(s->vars);
    free(s->values);
    free(s->init);
    free(s->state_names);
    free(s);
    f->state = NULL;
}

/* A name must be one matheval variable on its own: this refuses syntax
 * that is not a name and matheval's constants (e, pi, ...). */
static int valid_variable(const char *name)
{
    char *copy = strdup(name);
    if (!copy)
        return 0;
    void *ev = evaluator_create(copy);
    free(copy);
    if (!ev)
        return 0;
    char **names;
    int count;
    evaluator_get_variables(ev, &names, &count);
    int ok = count == 1 && strcmp(names[0], name) == 0;
    evaluator_destroy(ev);
    return ok;
}

/* A letter followed by letters, digits or _. */
static int is_identifier(const char *name)
{
    if (!isalpha((unsigned char)*name))
        return 0;
    while (*++name)
        if (!isalnum((unsigned char)*name) && *name != '_')
            return 0;
    return 1;
}

static int find_var(const expr_state *s, const char *name)
{
    for (size_t i = 0; i < s->nvars; i++)
        if (s->vars[i] && strcmp(s->vars[i], name) == 0)
            return (int)i;
    return -1;
}

/* Add `name` as variable slot s->nvars, checking it (key names the list). */
static int add_var(expr_state *s, const nde_section *sec, const char *key,
                   const char *name, nde_ctx *ctx)
{
    if (strcmp(name, "t") == 0)
        return nde_section_error(sec, key, ctx,
                                 "'t' is the time and cannot name a%s",
                                 strcmp(key, "state") == 0    ? " state"
                                 : strcmp(key, "params") == 0 ? " parameter"
                                                              : "n input");
    if (find_var(s, name) >= 0)
        return nde_section_error(sec, key, ctx, "'%s' is declared twice",
                                 name);
    if (!valid_variable(name) && !is_identifier(name))
        return nde_section_error(sec, key, ctx,
                                 "'%s' is not usable as a variable name (a "
                                 "letter followed by letters, digits or _)",
                                 name);
    if (!valid_variable(name))
        return nde_section_error(sec, key, ctx,
                                 "'%s' is reserved by the expression library "
                                 "(libmatheval's functions and constants, "
                                 "such as e, pi, sin, step, delta): choose "
                                 "another name", name);
    if (!(s->vars[s->nvars] = strdup(name)))
        return nde_error(ctx, NDE_ENOMEM, "expr: out of memory");
    s->nvars++;
    return NDE_OK;
}

/* Parse the expression of state j from key <prefix><name> into sys (the
 * drift's d<name> is required, the diffusion's g<name> optional); derive
 * it. */
static int build_equation(expr_state *s, expr_system *sys, char prefix,
                          const nde_section *sec, size_t j, nde_ctx *ctx)
{
    const char *name = s->vars[1 + j];
    char key[80];
    const char *text;
    int status;
    snprintf(key, sizeof key, "%c%s", prefix, name);
    if (!nde_section_has(sec, key)) {
        if (prefix == 'g')
            return NDE_OK;
        return nde_section_error(sec, key, ctx,
                                 "missing equation for state '%s'", name);
    }
    if ((status = nde_get_string(sec, key, &text, ctx)) ||
        (status = nde_expr_parse(sec, key, text, s->vars, s->nvars,
                                 "t, the names in state, params and "
                                 "inputs",
                                 &sys->eq[j], ctx)))
        return status;
    for (size_t k = 0; k < s->nstate + s->nparam; k++) {
        void *der = evaluator_derivative(sys->eq[j], s->vars[1 + k]);
        if (!der)
            return nde_error(ctx, NDE_ENOMEM, "expr: out of memory");
        if (is_constant_zero(der)) {
            evaluator_destroy(der);
            der = NULL;
        }
        if (k < s->nstate)
            sys->dy[j * s->nstate + k] = der;
        else
            sys->dp[j * s->nparam + (k - s->nstate)] = der;
    }
    return NDE_OK;
}

/* Every d- and g-key must name a state; says whether there is a g-key. */
static int check_equation_keys(const expr_state *s, const nde_section *sec,
                               int *has_diffusion, nde_ctx *ctx)
{
    *has_diffusion = 0;
    for (size_t i = 0; i < nde_section_nkeys(sec); i++) {
        const char *key = nde_section_key_at(sec, i);
        if (key[0] != 'd' && key[0] != 'g')
            continue;
        int v = find_var(s, key + 1);
        if (v < 1 || (size_t)v > s->nstate) {
            char states[256] = "";
            for (size_t j = 0; j < s->nstate; j++)
                snprintf(states + strlen(states), sizeof states - strlen(states),
                         "%s%s", j ? ", " : "", s->vars[1 + j]);
            return nde_section_error(sec, key, ctx,
                                     "'%s' is not a state (the states are "
                                     "%s; the %s of state x is %cx)",
                                     key + 1, states,
                                     key[0] == 'd' ? "equation" : "diffusion",
                                     key[0]);
        }
        if (key[0] == 'g')
            *has_diffusion = 1;
    }
    return NDE_OK;
}

static int expr_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    expr_state *s = calloc(1, sizeof *s);
    char **states = NULL, **pnames = NULL, **inames = NULL;
    double *pvalues = NULL;
    size_t nstates = 0, nparams = 0, ninputs = 0;
    int status;
    if (!sec) {
        free(s);
        return nde_error(ctx, NDE_EINVAL, "expr: needs a config section");
    }
    if (!s)
        return nde_error(ctx, NDE_ENOMEM, "expr: out of memory");
    f->state = s;
    if ((status = nde_get_words(sec, "state", &states, &nstates, ctx)) ||
        (status = nde_get_assigns(sec, "params", &pnames, &pvalues, &nparams,
                                  ctx)) ||
        (nde_section_has(sec, "inputs") &&
         (status = nde_get_words(sec, "inputs", &inames, &ninputs, ctx))))
        goto done;
    if (nstates == 0) {
        status = nde_section_error(sec, "state", ctx,
                                   "needs at least one state name");
        goto done;
    }
    s->vars = calloc(1 + nstates + nparams + ninputs, sizeof *s->vars);
    s->values = calloc(1 + nstates + nparams + ninputs, sizeof *s->values);
    s->init = malloc((nparams ? nparams : 1) * sizeof *s->init);
    s->state_names = calloc(nstates, sizeof *s->state_names);
    if (!s->vars || !s->values || !s->init || !s->state_names ||
        !alloc_system(&s->drift, nstates, nparams) ||
        !alloc_system(&s->diffusion, nstates, nparams)) {
        status = nde_error(ctx, NDE_ENOMEM, "expr: out of memory");
        goto done;
    }
    if (!(s->vars[0] = strdup("t"))) {
        status = nde_error(ctx, NDE_ENOMEM, "expr: out of memory");
        goto done;
    }
    s->nvars = 1;
    for (size_t j = 0; j < nstates; j++)
        if ((status = add_var(s, sec, "state", states[j], ctx)))
            goto done;
    s->nstate = nstates;
    for (size_t k = 0; k < nparams; k++)
        if ((status = add_var(s, sec, "params", pnames[k], ctx)))
            goto done;
    s->nparam = nparams;
    for (size_t k = 0; k < ninputs; k++)
        if ((status = add_var(s, sec, "inputs", inames[k], ctx)))
            goto done;
    s->ninput = ninputs;
    if (nparams)
        memcpy(s->init, pvalues, nparams * sizeof *pvalues);
    int has_diffusion;
    if ((status = check_equation_keys(s, sec, &has_diffusion, ctx)))
        goto done;
    for (size_t j = 0; j < nstates; j++)
        if ((status = build_equation(s, &s->drift, 'd', sec, j, ctx)) ||
            (status = build_equation(s, &s->diffusion, 'g', sec, j, ctx)))
            goto done;
    f->noise = has_diffusion ? NDE_NOISE_DIAGONAL : NDE_NOISE_NONE;
    for (size_t j = 0; j < nstates; j++)
        s->state_names[j] = s->vars[1 + j];
    f->state_names = s->state_names;
    f->dim = nstates;
    f->nparams = nparams;
    f->ninputs = ninputs;
done:
    nde_strings_free(states);
    nde_strings_free(pnames);
    nde_strings_free(inames);
    free(pvalues);
    return status;
}

static const nde_key expr_keys[] = {
    {"state", NDE_KEY_WORDS, NULL,
     "names of the state variables, e.g. x, y (also the CSV headers)"},
    {"params", NDE_KEY_ASSIGNS, "",
     "learnable parameters with initial values, e.g. a=1.5, b=1.0"},
    {"inputs", NDE_KEY_WORDS, "",
     "names of the channels of a time-dependent input u(t) (a dose, a "
     "treatment) the expressions may use, e.g. dose; the input is data "
     "(nde/input.h)"},
    {"d*", NDE_KEY_TEXT, "",
     "d<state> = expression: the equation of that state, in t, the states "
     "and the params (libmatheval syntax; ^ is left-associative)"},
    {"g*", NDE_KEY_TEXT, "",
     "g<state> = expression: the diffusion of that state (noise g dW, one "
     "channel per state); any g key makes the field an SDE, and a state "
     "without one has g = 0"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type expr_type = {
    .info = NDE_FIELD_INFO(
        .name = "expr",
        .description = "field written as expressions, with symbolic "
                       "derivatives (libmatheval); an SDE with g<state> keys",
        .keys = expr_keys,
        .provides = NDE_CAP_DIFFUSION,
        .version = "1"),
    .create = expr_create,
    .destroy = expr_destroy,
    .init_params = expr_init_params,
    .eval = expr_eval,
    .vjp = expr_vjp,
    .param_name = expr_param_name,
    .diffusion = expr_diffusion,
    .diffusion_vjp = expr_diffusion_vjp,
};

NDE_MODULE(&expr_type.info);
