/*
 * sum - the sum of two or more fields, each configured in its own section:
 *
 *     [field]
 *     plugin = sum
 *     parts  = known, correction      ; sections [field.known] ...
 *
 * Parameters are the parts' parameters concatenated in `parts` order; part i
 * is initialised with the seed nde_seed_derive(seed, i). Parts must be
 * ODE fields (no diffusion). Parts that read a time-dependent input
 * (nde/input.h: an expert model's dose, say) read the sum's, so they must
 * agree on its channels; the sum reads as many (0 when none does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nde/field.h>

#define SUM_MAX_DEPTH 16

typedef struct sum_state {
    size_t nparts;
    nde_field **part;
    char **name;         /* the part names from `parts`            */
    size_t *offset;      /* where part i's parameters start         */
    double *scratch;     /* batch_max x dim                         */
} sum_state;

/* Sections of the sums being created on this thread, outermost first, to
 * refuse a sum that contains itself. */
static _Thread_local const char *building[SUM_MAX_DEPTH];
static _Thread_local int nbuilding;

/* The sum's input to the parts that read one, before they are called. */
static void hand_input(const nde_field *f, const sum_state *s)
{
    for (size_t i = 0; i < s->nparts; i++)
        if (s->part[i]->ninputs)
            s->part[i]->input = f->input;
}

static int sum_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    sum_state *s = f->state;
    const size_t n = batch * f->dim;
    int retry = 0;
    hand_input(f, s);
    for (size_t i = 0; i < s->nparts; i++) {
        double *out = i == 0 ? dy : s->scratch;
        int status = nde_field_eval(s->part[i], t, y, theta + s->offset[i],
                                    out, batch);
        if (status == NDE_ERETRY)
            retry = 1;
        else if (status)
            return status;
        if (i > 0)
            for (size_t k = 0; k < n; k++)
                dy[k] += out[k];
    }
    return retry ? NDE_ERETRY : NDE_OK;
}

static int sum_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *vy,
                   double *vtheta, size_t batch)
{
    sum_state *s = f->state;
    int retry = 0;
    hand_input(f, s);
    for (size_t i = 0; i < s->nparts; i++) {
        int status = nde_field_vjp(s->part[i], t, y, theta + s->offset[i], v,
                                   vy, vtheta ? vtheta + s->offset[i] : NULL,
                                   batch);
        if (status == NDE_ERETRY)
            retry = 1;
        else if (status)
            return status;
    }
    return retry ? NDE_ERETRY : NDE_OK;
}

static int sum_init_params(nde_field *f, double *theta, uint64_t seed)
{
    sum_state *s = f->state;
    for (size_t i = 0; i < s->nparts; i++) {
        int status = nde_field_init_params(s->part[i], theta + s->offset[i],
                                           nde_seed_derive(seed, i));
        if (status)
            return status;
    }
    return NDE_OK;
}

static int sum_param_name(const nde_field *f, size_t i, char *buf, size_t len)
{
    const sum_state *s = f->state;
    for (size_t p = 0; p < s->nparts; p++) {
        const nde_field *part = s->part[p];
        if (i < s->offset[p] + part->nparams) {
            char inner[128];
            nde_field_param_name(part, i - s->offset[p], inner, sizeof inner);
            snprintf(buf, len, "%s.%s", s->name[p], inner);
            return NDE_OK;
        }
    }
    return NDE_EINVAL;
}

static void sum_destroy(nde_field *f)
{
    sum_state *s = f->state;
    if (!s)
        return;
    if (s->part)
        for (size_t i = 0; i < s->nparts; i++)
            nde_field_destroy(s->part[i]);
    free(s->part);
    nde_strings_free(s->name);
    free(s->offset);
    free(s->scratch);
    free(s);
    f->state = NULL;
}

static int create_parts(nde_field *f, sum_state *s, nde_section *sec,
                        nde_ctx *ctx)
{
    const nde_config *cfg = nde_section_config(sec);
    const char *own = nde_section_name(sec);
    size_t nparams = 0;
    for (size_t i = 0; i < s->nparts; i++) {
        char section[160];
        int status;
        snprintf(section, sizeof section, "field.%s", s->name[i]);
        if (strcmp(section, own) == 0)
            return nde_section_error(sec, "parts", ctx,
                                     "part '%s' is this sum itself",
                                     s->name[i]);
        for (int d = 0; d < nbuilding; d++)
            if (strcmp(building[d], section) == 0)
                return nde_section_error(sec, "parts", ctx,
                                         "part '%s' ([%s]) contains this "
                                         "sum: a cycle", s->name[i],
                                         building[d]);
        if (!nde_config_section(cfg, section))
            return nde_section_error(sec, "parts", ctx,
                                     "part '%s' has no section [%s]",
                                     s->name[i], section);
        status = nde_field_create(ctx, cfg, section, f->batch_max,
                                  &s->part[i]);
        if (status)
            return status;
        const nde_field *part = s->part[i];
        if (part->noise != NDE_NOISE_NONE)
            return nde_section_error(sec, "parts", ctx,
                                     "part '%s' has a diffusion; a sum adds "
                                     "drifts only (give the diffusion to a "
                                     "single field, not a sum)", s->name[i]);
        if (part->dim != s->part[0]->dim)
            return nde_section_error(sec, "parts", ctx,
                                     "part '%s' has dimension %zu but part "
                                     "'%s' has %zu", s->name[i], part->dim,
                                     s->name[0], s->part[0]->dim);
        if (part->ninputs && f->ninputs && part->ninputs != f->ninputs)
            return nde_section_error(sec, "parts", ctx,
                                     "part '%s' reads an input of %zu "
                                     "channels but another part one of %zu "
                                     "(the parts read the same input)",
                                     s->name[i], part->ninputs, f->ninputs);
        if (part->ninputs)
            f->ninputs = part->ninputs;
        s->offset[i] = nparams;
        nparams += part->nparams;
        if (!f->state_names && part->state_names)
            f->state_names = part->state_names;
    }
    f->dim = s->part[0]->dim;
    f->nparams = nparams;
    return NDE_OK;
}

static int sum_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    sum_state *s = calloc(1, sizeof *s);
    size_t n = 0;
    int status;
    if (!sec) {
        free(s);
        return nde_error(ctx, NDE_EINVAL, "sum: needs a config section");
    }
    if (!s)
        return nde_error(ctx, NDE_ENOMEM, "sum: out of memory");
    f->state = s;
    if ((status = nde_get_words(sec, "parts", &s->name, &n, ctx)))
        return status;
    if (n < 2)
        return nde_section_error(sec, "parts", ctx,
                                 "needs at least 2 parts, got %zu", n);
    s->part = calloc(n, sizeof *s->part);
    s->offset = calloc(n, sizeof *s->offset);
    if (!s->part || !s->offset)
        return nde_error(ctx, NDE_ENOMEM, "sum: out of memory");
    s->nparts = n;
    if (nbuilding == SUM_MAX_DEPTH)
        return nde_section_error(sec, "parts", ctx,
                                 "sums nested deeper than %d",
                                 SUM_MAX_DEPTH);
    building[nbuilding++] = nde_section_name(sec);
    status = create_parts(f, s, sec, ctx);
    nbuilding--;
    if (status)
        return status;
    s->scratch = malloc(f->batch_max * f->dim * sizeof *s->scratch);
    if (!s->scratch)
        return nde_error(ctx, NDE_ENOMEM, "sum: out of memory");
    return NDE_OK;
}

static const nde_key sum_keys[] = {
    {"parts", NDE_KEY_WORDS, NULL,
     "names of the fields to add (at least 2); part NAME is configured in "
     "section [field.NAME]"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type sum_type = {
    .info = NDE_FIELD_INFO(
        .name = "sum",
        .description = "sum of two or more fields of the same dimension",
        .keys = sum_keys,
        .version = "1"),
    .create = sum_create,
    .destroy = sum_destroy,
    .init_params = sum_init_params,
    .eval = sum_eval,
    .vjp = sum_vjp,
    .param_name = sum_param_name,
};

NDE_MODULE(&sum_type.info);
