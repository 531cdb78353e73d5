/*
 * hybrid - an expert model with neural latent states beside it (the
 * latent hybridisation model: Qian, Zame, Fleuren, Elbers, van der Schaar,
 * "Integrating Expert ODEs into Neural ODEs: Pharmacology and Disease
 * Progression", NeurIPS 2021; the structure of RocheODE in model.py of
 * their public code, Hybrid-ODE-NeurIPS-2021). The state is z = [z_e;
 * z_m]: d_e expert states, then d_m neural ones,
 *
 *     z_e' = f_e(t, z_e, u(t))             the expert part, e.g. an expr
 *     z_m' = f_m(t, [z_e; z_m; u(t)])      the neural part, e.g. an mlp
 *
 *     [field]
 *     plugin = hybrid
 *     expert = pk              ; section [field.pk]: d_e states
 *     neural = net             ; section [field.net]: d_e + d_m + m states
 *     neural_states = 2        ; d_m
 *
 * u is the input (nde/input.h) of m channels the expert part reads (its
 * `inputs`; m = 0 without): the hybrid field reads the input the expert
 * reads, hands it to the expert and appends u(t) to the neural part's
 * state. The neural part maps its whole input [z_e; z_m; u] to as many
 * outputs, of which those at z_m's places (d_e .. d_e + d_m - 1) are z_m'
 * (an mlp's other outputs are unused: their weights get no gradient). The
 * expert states do not read the neural ones unless `expert_reads = all`:
 * then the expert part has d_e + d_m states, reads the whole z, and its
 * first d_e outputs are z_e' (give the others 0, e.g. dm1 = 0 in expr).
 *
 * Parameters: the expert's, then the neural part's; part i is initialised
 * from nde_seed_derive(seed, i). Both parts are ODE fields.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nde/field.h>

#include "wrap.h"

typedef struct hybrid_state {
    nde_field *expert, *neural;
    size_t de, dm, m;       /* expert states, neural states, input channels */
    int reads_all;          /* the expert reads the whole z             */
    size_t din_e, din_n;    /* the parts' dimensions                     */
    double *xe, *ve, *vye;  /* batch_max x din_e each: the expert's input,
                               output or cotangent, and vy            */
    double *xn, *vn, *vyn;  /* batch_max x din_n each: the same for the
                               neural part                            */
} hybrid_state;

static int no_input(const nde_field *f)
{
    return nde_error(f->ctx, NDE_EINVAL, "hybrid: the expert reads %zu "
                     "input channel%s but the field has no input set",
                     f->ninputs, f->ninputs == 1 ? "" : "s");
}

/* The parts' inputs: xe = z_e (or z), xn = [z; u(t)]; the expert gets the
 * field's input. */
static void load_parts(nde_field *f, double t, const double *y, size_t batch)
{
    hybrid_state *s = f->state;
    const size_t d = f->dim;

    s->expert->input = f->input;
    for (size_t r = 0; r < batch; r++) {
        double *xn = s->xn + r * s->din_n;
        if (!s->reads_all)
            memcpy(s->xe + r * s->de, y + r * d, s->de * sizeof *y);
        memcpy(xn, y + r * d, d * sizeof *y);
        if (s->m)
            nde_input_value(f->input, r, t, xn + d);
    }
}

/* A part's status into the call's: NDE_ERETRY is remembered, others end
 * it. */
static int merge(int rc, int *retry)
{
    if (rc == NDE_ERETRY) {
        *retry = 1;
        return NDE_OK;
    }
    return rc;
}

static int hybrid_eval(nde_field *f, double t, const double *y,
                       const double *theta, double *dy, size_t batch)
{
    hybrid_state *s = f->state;
    const size_t d = f->dim;
    const double *xe = s->reads_all ? y : s->xe;
    int retry = 0, rc;

    if (s->m && !f->input)
        return no_input(f);
    load_parts(f, t, y, batch);
    if ((rc = merge(nde_field_eval(s->expert, t, xe, theta, s->ve, batch),
                    &retry)) ||
        (rc = merge(nde_field_eval(s->neural, t, s->xn,
                                   theta + s->expert->nparams, s->vn, batch),
                    &retry)))
        return rc;
    for (size_t r = 0; r < batch; r++) {
        memcpy(dy + r * d, s->ve + r * s->din_e, s->de * sizeof *dy);
        memcpy(dy + r * d + s->de, s->vn + r * s->din_n + s->de,
               s->dm * sizeof *dy);
    }
    return retry ? NDE_ERETRY : NDE_OK;
}

/* The expert's VJP with cotangent (v_e, 0) and the neural part's with
 * (0, v_m, 0) at its places; their vy back onto z (the u part of the
 * neural one is dropped: the input is data). */
static int hybrid_vjp(nde_field *f, double t, const double *y,
                      const double *theta, const double *v, double *vy,
                      double *vtheta, size_t batch)
{
    hybrid_state *s = f->state;
    const size_t d = f->dim, pe = s->expert->nparams;
    const double *xe = s->reads_all ? y : s->xe;
    int retry = 0, rc;

    if (s->m && !f->input)
        return no_input(f);
    load_parts(f, t, y, batch);
    memset(s->ve, 0, batch * s->din_e * sizeof *s->ve);
    memset(s->vn, 0, batch * s->din_n * sizeof *s->vn);
    memset(s->vye, 0, batch * s->din_e * sizeof *s->vye);
    memset(s->vyn, 0, batch * s->din_n * sizeof *s->vyn);
    for (size_t r = 0; r < batch; r++) {
        memcpy(s->ve + r * s->din_e, v + r * d, s->de * sizeof *v);
        memcpy(s->vn + r * s->din_n + s->de, v + r * d + s->de,
               s->dm * sizeof *v);
    }
    if ((rc = merge(nde_field_vjp(s->expert, t, xe, theta, s->ve,
                                  vy ? s->vye : NULL, vtheta, batch),
                    &retry)) ||
        (rc = merge(nde_field_vjp(s->neural, t, s->xn, theta + pe, s->vn,
                                  vy ? s->vyn : NULL,
                                  vtheta ? vtheta + pe : NULL, batch),
                    &retry)))
        return rc;
    if (vy)
        for (size_t r = 0; r < batch; r++) {
            for (size_t j = 0; j < s->din_e; j++)
                vy[r * d + j] += s->vye[r * s->din_e + j];
            for (size_t j = 0; j < d; j++)
                vy[r * d + j] += s->vyn[r * s->din_n + j];
        }
    return retry ? NDE_ERETRY : NDE_OK;
}

static int hybrid_init_params(nde_field *f, double *theta, uint64_t seed)
{
    hybrid_state *s = f->state;
    int rc = nde_field_init_params(s->expert, theta, nde_seed_derive(seed, 0));

    if (rc)
        return rc;
    return nde_field_init_params(s->neural, theta + s->expert->nparams,
                                 nde_seed_derive(seed, 1));
}

static int hybrid_param_name(const nde_field *f, size_t i, char *buf,
                             size_t len)
{
    const hybrid_state *s = f->state;
    const size_t pe = s->expert->nparams;
    char inner[96];

    if (i < pe) {
        nde_field_param_name(s->expert, i, buf, len);
        return NDE_OK;
    }
    nde_field_param_name(s->neural, i - pe, inner, sizeof inner);
    snprintf(buf, len, "neural.%s", inner);
    return NDE_OK;
}

static void hybrid_destroy(nde_field *f)
{
    hybrid_state *s = f->state;

    if (!s)
        return;
    nde_field_destroy(s->expert);
    nde_field_destroy(s->neural);
    free(s->xe);
    free(s->ve);
    free(s->vye);
    free(s->xn);
    free(s->vn);
    free(s->vyn);
    free(s);
    f->state = NULL;
}

/* The part named by key (section [field.NAME]) into *part. */
static int make_part(nde_field *f, nde_section *sec, const char *key,
                     nde_field **part, nde_ctx *ctx)
{
    const char *name;
    int rc;

    if ((rc = field_part_create(f, sec, key, ctx, &name, part)) != NDE_OK)
        return rc;
    if ((*part)->noise != NDE_NOISE_NONE)
        return nde_section_error(sec, key, ctx, "'%s' has a diffusion; the "
                                 "parts of a hybrid field are ODEs", name);
    return NDE_OK;
}

static int hybrid_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    hybrid_state *s = calloc(1, sizeof *s);
    const char *reads = "expert";
    long dm;
    size_t want;
    int rc;

    if (!(f->state = s))
        return nde_error(ctx, NDE_ENOMEM, "hybrid: out of memory");
    if (!sec)
        return nde_error(ctx, NDE_ECONFIG, "hybrid: needs a [field] section "
                         "with expert, neural and neural_states");
    if ((rc = nde_get_long_min(sec, "neural_states", 1, &dm, ctx)) ||
        (rc = nde_get_string(sec, "expert_reads", &reads, ctx)))
        return rc;
    if (strcmp(reads, "expert") != 0 && strcmp(reads, "all") != 0)
        return nde_section_error(sec, "expert_reads", ctx, "'%s': expected "
                                 "expert or all", reads);
    s->reads_all = strcmp(reads, "all") == 0;
    s->dm = (size_t)dm;
    if ((rc = make_part(f, sec, "expert", &s->expert, ctx)) ||
        (rc = make_part(f, sec, "neural", &s->neural, ctx)))
        return rc;
    s->din_e = s->expert->dim;
    if (s->reads_all && s->din_e <= s->dm)
        return nde_section_error(sec, "expert", ctx, "the expert part reads "
                                 "all states (expert_reads = all), so it "
                                 "needs more than the %zu neural states; it "
                                 "has %zu", s->dm, s->din_e);
    s->de = s->reads_all ? s->din_e - s->dm : s->din_e;
    s->m = s->expert->ninputs;
    s->din_n = s->neural->dim;
    want = s->de + s->dm + s->m;
    if (s->din_n != want)
        return nde_section_error(sec, "neural", ctx, "the neural part has "
                                 "%zu states; it reads [z_e; z_m; u]: %zu "
                                 "expert + %zu neural states + %zu input "
                                 "channels = %zu", s->din_n, s->de, s->dm,
                                 s->m, want);
    if (s->neural->ninputs)
        return nde_section_error(sec, "neural", ctx, "the neural part reads "
                                 "the input as its last states, not through "
                                 "inputs of its own");
    {
        const size_t ne = f->batch_max * s->din_e, nn = f->batch_max * s->din_n;
        if (!(s->xe = malloc(ne * sizeof *s->xe)) ||
            !(s->ve = malloc(ne * sizeof *s->ve)) ||
            !(s->vye = malloc(ne * sizeof *s->vye)) ||
            !(s->xn = malloc(nn * sizeof *s->xn)) ||
            !(s->vn = malloc(nn * sizeof *s->vn)) ||
            !(s->vyn = malloc(nn * sizeof *s->vyn)))
            return nde_error(ctx, NDE_ENOMEM, "hybrid: out of memory");
    }
    f->dim = s->de + s->dm;
    f->nparams = s->expert->nparams + s->neural->nparams;
    f->ninputs = s->m;
    return NDE_OK;
}

static const nde_key hybrid_keys[] = {
    {"expert", NDE_KEY_WORD, NULL,
     "the expert part f_e(t, z_e, u), configured in section [field.NAME] "
     "(e.g. an expr with named, learnable rate constants and inputs)"},
    {"neural", NDE_KEY_WORD, NULL,
     "the neural part, configured in section [field.NAME]: a field of "
     "d_e + d_m + m states reading [z_e; z_m; u] (e.g. an mlp); its outputs "
     "at z_m's places are z_m'"},
    {"neural_states", NDE_KEY_INT, NULL, "d_m: the number of neural states"},
    {"expert_reads", NDE_KEY_WORD, "expert",
     "expert: the expert part reads z_e only; all: it reads the whole z "
     "(d_e + d_m states, its first d_e outputs are z_e')"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type hybrid_type = {
    .info = NDE_FIELD_INFO(
        .name = "hybrid",
        .description = "latent hybrid: expert states z_e' = f_e(t, z_e, u) "
                       "beside neural ones z_m' = f_m(t, z_e, z_m, u)",
        .keys = hybrid_keys,
        .version = "1"),
    .create = hybrid_create,
    .destroy = hybrid_destroy,
    .init_params = hybrid_init_params,
    .eval = hybrid_eval,
    .vjp = hybrid_vjp,
    .param_name = hybrid_param_name,
};

NDE_MODULE(&hybrid_type.info);
