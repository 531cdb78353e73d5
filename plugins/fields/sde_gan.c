/*
 * sde_gan - the generator SDE and the discriminator CDE of an SDE-GAN
 * (Kidger, Foster, Li, Oberhauser, Lyons 2021, "Neural SDEs as
 * Infinite-Dimensional GANs", arXiv 2102.03657) as one SDE with general
 * noise, so that one solve (reversible Heun and its reversible adjoint:
 * Kidger, Foster, Li, Lyons 2021, arXiv 2105.13493) scores a batch of
 * generated and real paths alike. A row's state is [z; h]:
 *
 *     [field]
 *     plugin        = sde_gan
 *     generator     = gen       ; [field.gen]: dz = mu dt + sigma dW
 *     discriminator = disc      ; [field.disc]: drift f, diffusion g
 *     channels      = 1         ; c
 *
 * z (G states) is the generator's SDE state and its first c components
 * ARE the generated path y (no readout: an affine readout of full row
 * rank is a change of coordinates that the generator's first and last
 * layers absorb). h (H states) is the discriminator's CDE state, driven
 * by the control X = (t, y), time a channel (as torchsde's
 * examples/sde_gan.py): dh = f(t, h) dt + g(t, h) dX, g an H x (1 + c)
 * matrix, g_0 its first column, g_1 the other c.
 *
 * Generated rows: dX = (dt, P dz), P taking z's first c components, so
 * (Stratonovich: the chain rule holds, the discriminator reads the
 * generator's continuous path; the appendix of torchsde's example)
 *     dz = mu dt + sigma dW
 *     dh = (f + g_0 + g_1 P mu) dt + g_1 P sigma dW.
 * Real rows: z stays put (drift and diffusion 0) and dX = (dt, dY), Y the
 * data path's linear interpolation, the field's input:
 *     dh = (f + g_0) dt + g_1 dY,
 * dY a noise of the joint field driven by the input (nde/field.h,
 * control_dim): a row's M + c noise channels are the M Brownian ones of
 * the generator, then Y's c increments over the step (torchcde's
 * reading of a CDE as an SDE whose noise is the control). Nothing reads
 * the data's slope, so the field is continuous across the data's knots
 * (input_continuous): reversible Heun carries its evaluation from one
 * step into the next as on any step.
 *
 * The input (nde/input.h, NDE_INPUT_LINEAR; given by the sde_gan task)
 * has c + 1 channels: Y, then the row's kind (1 real, 0 generated; a
 * generated row's series may be a single knot: its dY is 0, and its
 * diffusion on the control channels is 0 anyway).
 *
 * The generator is an SDE field with general noise on G >= c states (M
 * noise channels), the discriminator one with general noise on H states
 * and 1 + c channels, read as a CDE: its drift is f, its diffusion
 * matrix g. Parameters: the generator's, then the
 * discriminator's, named gen.NAME and disc.NAME; part i is initialised
 * from nde_seed_derive(seed, i). States are named y1..yc, then z.. for
 * the rest of z, then h1..hH.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nde/field.h>

#include "wrap.h"

typedef struct gan_state {
    nde_field *gen, *disc;
    size_t G, H, c, M;      /* states of z and h, channels, Brownian
                               channels (the generator's)                 */
    unsigned char *real;    /* batch_max: the row is a data path          */
    size_t *gpos;           /* batch_max: a generated row's place among
                               the generated rows (the generator's rows)  */
    size_t ng;              /* generated rows of the last split           */
    double *u;              /* c + 1: the input at t                       */
    double *z, *h;          /* ng x G, batch_max x H: the parts' states    */
    double *mu, *fh;        /* ng x G, batch_max x H: their drifts         */
    double *sig, *gh;       /* ng x G x M, batch_max x H x (1 + c)         */
    double *vz, *vh;        /* cotangents on mu (or z) and f (or h)        */
    double *vsig, *vg;      /* cotangents on sigma and g                   */
    double *vyz, *vyh;      /* the parts' vy                               */
    char *names;            /* the state names' text                      */
    const char **name;      /* dim pointers into names                    */
} gan_state;

static int merge(int rc, int *retry)
{
    if (rc == NDE_ERETRY) {
        *retry = 1;
        return NDE_OK;
    }
    return rc;
}

/* h of each row and its kind; z of the generated rows only, in order
 * (the generator never runs on a real row, whose z stays put). */
static int split(nde_field *f, double t, const double *y, size_t batch)
{
    gan_state *s = f->state;
    const size_t d = f->dim, c = s->c;

    if (!f->input)
        return nde_error(f->ctx, NDE_EINVAL, "sde_gan: no input set (the "
                         "data paths and the rows' kinds: the sde_gan "
                         "task gives it)");
    s->ng = 0;
    for (size_t r = 0; r < batch; r++) {
        memcpy(s->h + r * s->H, y + r * d + s->G, s->H * sizeof *y);
        nde_input_value(f->input, r, t, s->u);
        s->real[r] = s->u[c] > 0.5;
        if (!s->real[r]) {
            s->gpos[r] = s->ng;
            memcpy(s->z + s->ng++ * s->G, y + r * d, s->G * sizeof *y);
        }
    }
    return NDE_OK;
}

/* What a call computes of the parts, at the split's points. */
enum {
    GEN_MU = 1,     /* the generator's drift mu (generated rows)        */
    GEN_SIG = 2,    /* its diffusion sigma                              */
    DISC_F = 4,     /* the discriminator's drift f (every row)          */
    DISC_G = 8      /* its diffusion g                                  */
};

/* The parts' values that `want` names. NDE_ERETRY only after all ran (a
 * part's retry is the field's). */
static int parts_eval(nde_field *f, double t, const double *theta,
                      size_t batch, unsigned want)
{
    gan_state *s = f->state;
    const double *td = theta + s->gen->nparams;
    int retry = 0, rc;

    if ((s->ng && (want & GEN_MU) &&
         (rc = merge(nde_field_eval(s->gen, t, s->z, theta, s->mu, s->ng),
                     &retry))) ||
        (s->ng && (want & GEN_SIG) &&
         (rc = merge(nde_field_diffusion(s->gen, t, s->z, theta, s->sig,
                                         s->ng), &retry))) ||
        ((want & DISC_F) &&
         (rc = merge(nde_field_eval(s->disc, t, s->h, td, s->fh, batch),
                     &retry))) ||
        ((want & DISC_G) &&
         (rc = merge(nde_field_diffusion(s->disc, t, s->h, td, s->gh,
                                         batch), &retry))))
        return rc;
    return retry ? NDE_ERETRY : NDE_OK;
}

/* dy from mu, f, g: [mu; f + g_0 + g_1 P mu] (generated rows), [0; f +
 * g_0] (real rows, whose g_1 takes dY as noise). */
static void drift_of_parts(const gan_state *s, size_t d, double *dy,
                           size_t batch)
{
    const size_t G = s->G, H = s->H, c = s->c, w = 1 + c;

    for (size_t r = 0; r < batch; r++) {
        double *dz = dy + r * d, *dh = dz + G;
        const double *mu = s->real[r] ? NULL : s->mu + s->gpos[r] * G;
        const size_t ca = mu ? c : 0;
        if (mu)
            memcpy(dz, mu, G * sizeof *dz);
        else
            memset(dz, 0, G * sizeof *dz);
        for (size_t i = 0; i < H; i++) {
            const double *g = s->gh + (r * H + i) * w;
            double v = s->fh[r * H + i] + g[0];
            for (size_t j = 0; j < ca; j++)
                v += g[1 + j] * mu[j];
            dh[i] = v;
        }
    }
}

/*
 * The diffusion from sigma and g, d x (M + c) a row: the M Brownian
 * channels, then the c control ones (dY). Generated rows: [sigma, 0;
 * g_1 P sigma, 0]; real rows: [0, 0; 0, g_1]. Written entry by entry in
 * plain loops: memset and memcpy calls of a few values each cost more
 * than the values (2048 rows x 17 calls an evaluation).
 */
static void diffusion_of_parts(const gan_state *s, size_t d, double *g,
                               size_t batch)
{
    const size_t G = s->G, H = s->H, c = s->c, M = s->M;
    const size_t w = 1 + c, W = M + c;

    for (size_t r = 0; r < batch; r++) {
        double *gz = g + r * d * W, *gh = gz + G * W;
        const double *sig = s->real[r] ? NULL : s->sig + s->gpos[r] * G * M;
        for (size_t i = 0; i < G; i++)
            for (size_t k = 0; k < W; k++)
                gz[i * W + k] = sig && k < M ? sig[i * M + k] : 0.0;
        for (size_t i = 0; i < H; i++) {
            const double *gi = s->gh + (r * H + i) * w + 1;
            for (size_t k = 0; k < M; k++) {
                double v = 0.0;
                for (size_t j = 0; sig && j < c; j++)
                    v += gi[j] * sig[j * M + k];
                gh[i * W + k] = v;
            }
            for (size_t j = 0; j < c; j++)
                gh[i * W + M + j] = sig ? 0.0 : gi[j];
        }
    }
}

/*
 * Cotangents on the parts from v on dy (drift_of_parts): mu gets v_z +
 * P^T g_1^T v_h, f v_h, g v_h (1, P mu)^T (a real row's: (v_h, 0)). Sets
 * vz, vh and vg.
 */
static void drift_cotangents(gan_state *s, size_t d, const double *v,
                             size_t batch)
{
    const size_t G = s->G, H = s->H, c = s->c, w = 1 + c;

    for (size_t r = 0; r < batch; r++) {
        const double *vz = v + r * d, *vh = vz + G;
        const double *mu = s->real[r] ? NULL : s->mu + s->gpos[r] * G;
        double *cz;
        memcpy(s->vh + r * H, vh, H * sizeof *vh);
        for (size_t i = 0; i < H; i++) {
            double *vg = s->vg + (r * H + i) * w;
            vg[0] = vh[i];
            for (size_t j = 0; j < c; j++)
                vg[1 + j] = mu ? vh[i] * mu[j] : 0.0;
        }
        if (!mu)
            continue;
        cz = s->vz + s->gpos[r] * G;
        memcpy(cz, vz, G * sizeof *cz);
        for (size_t j = 0; j < c; j++)
            for (size_t i = 0; i < H; i++)
                cz[j] += s->gh[(r * H + i) * w + 1 + j] * vh[i];
    }
}

/*
 * Cotangents on the parts from V = [V_z; V_h] on the diffusion
 * (diffusion_of_parts): a generated row's sigma gets V_z + P^T g_1^T V_h
 * and its g_1 V_h (P sigma)^T on the Brownian channels; a real row's g_1
 * gets V_h's control channels; g_0 nothing. Sets vsig; adds into vg
 * (drift_cotangents set it) when add, else sets it.
 */
static void diffusion_cotangents(gan_state *s, size_t d, const double *v,
                                 size_t batch, int add)
{
    const size_t G = s->G, H = s->H, c = s->c, M = s->M;
    const size_t w = 1 + c, W = M + c;

    for (size_t r = 0; r < batch; r++) {
        const double *vz = v + r * d * W, *vh = vz + G * W, *sig;
        double *cs, *cg = s->vg + r * H * w;
        if (s->real[r]) {
            for (size_t i = 0; i < H; i++) {
                if (!add)
                    cg[i * w] = 0.0;
                for (size_t j = 0; j < c; j++)
                    cg[i * w + 1 + j] = (add ? cg[i * w + 1 + j] : 0.0) +
                                        vh[i * W + M + j];
            }
            continue;
        }
        sig = s->sig + s->gpos[r] * G * M;
        cs = s->vsig + s->gpos[r] * G * M;
        for (size_t i = 0; i < G; i++)
            memcpy(cs + i * M, vz + i * W, M * sizeof *vz);
        for (size_t i = 0; i < H; i++) {
            const double *gi = s->gh + (r * H + i) * w + 1;
            const double *vhi = vh + i * W;
            if (!add)
                cg[i * w] = 0.0;
            for (size_t j = 0; j < c; j++) {
                double acc = 0.0;
                for (size_t k = 0; k < M; k++) {
                    cs[j * M + k] += gi[j] * vhi[k];
                    acc += vhi[k] * sig[j * M + k];
                }
                cg[i * w + 1 + j] = (add ? cg[i * w + 1 + j] : 0.0) + acc;
            }
        }
    }
}

/* The parts' VJPs with the cotangents vz, vsig, vh, vg that `want` names
 * (the discriminator's diffusion always: both drift and diffusion feed
 * g), and vy += the parts' vy row by row (the generator's on generated
 * rows only). */
static int parts_vjp(nde_field *f, double t, const double *theta,
                     double *vy, double *vtheta, size_t batch, unsigned want)
{
    gan_state *s = f->state;
    const size_t pg = s->gen->nparams, d = f->dim;
    const double *td = theta + pg;
    double *vtd = vtheta ? vtheta + pg : NULL;
    double *vyz = vy ? s->vyz : NULL, *vyh = vy ? s->vyh : NULL;
    int retry = 0, rc;

    if (vy) {
        memset(s->vyz, 0, s->ng * s->G * sizeof *s->vyz);
        memset(s->vyh, 0, batch * s->H * sizeof *s->vyh);
    }
    if ((s->ng && (want & GEN_MU) &&
         (rc = merge(nde_field_vjp(s->gen, t, s->z, theta, s->vz, vyz,
                                   vtheta, s->ng), &retry))) ||
        (s->ng && (want & GEN_SIG) &&
         (rc = merge(nde_field_diffusion_vjp(s->gen, t, s->z, theta,
                                             s->vsig, vyz, vtheta, s->ng),
                     &retry))) ||
        ((want & DISC_F) &&
         (rc = merge(nde_field_vjp(s->disc, t, s->h, td, s->vh, vyh, vtd,
                                   batch), &retry))) ||
        (rc = merge(nde_field_diffusion_vjp(s->disc, t, s->h, td, s->vg,
                                            vyh, vtd, batch), &retry)))
        return rc;
    for (size_t r = 0; vy && r < batch; r++) {
        double *o = vy + r * d;
        if (!s->real[r])
            for (size_t j = 0; j < s->G; j++)
                o[j] += s->vyz[s->gpos[r] * s->G + j];
        for (size_t i = 0; i < s->H; i++)
            o[s->G + i] += s->vyh[r * s->H + i];
    }
    return retry ? NDE_ERETRY : NDE_OK;
}

/* The split of (t, y) and the parts' values there. */
static int evaluated(nde_field *f, double t, const double *y,
                     const double *theta, size_t batch, unsigned want)
{
    int rc = split(f, t, y, batch);
    return rc ? rc : parts_eval(f, t, theta, batch, want);
}

/* Whether the parts' values are there: also on a retry, so that the
 * field's output is made of them (not finite: the solver retries). */
static int have_values(int rc) { return rc == NDE_OK || rc == NDE_ERETRY; }

/* The status of a call whose values gave rc and whose VJPs gave vjp_rc. */
static int joined(int rc, int vjp_rc) { return vjp_rc ? vjp_rc : rc; }

static int gan_eval(nde_field *f, double t, const double *y,
                    const double *theta, double *dy, size_t batch)
{
    int rc = evaluated(f, t, y, theta, batch, GEN_MU | DISC_F | DISC_G);
    if (have_values(rc))
        drift_of_parts(f->state, f->dim, dy, batch);
    return rc;
}

static int gan_diffusion(nde_field *f, double t, const double *y,
                         const double *theta, double *g, size_t batch)
{
    int rc = evaluated(f, t, y, theta, batch, GEN_SIG | DISC_G);
    if (have_values(rc))
        diffusion_of_parts(f->state, f->dim, g, batch);
    return rc;
}

/* Both at once: each part's net runs once (eval and diffusion alone run
 * the discriminator's diffusion net each). */
static int gan_eval_sde(nde_field *f, double t, const double *y,
                        const double *theta, double *dy, double *g,
                        size_t batch)
{
    int rc = evaluated(f, t, y, theta, batch,
                       GEN_MU | GEN_SIG | DISC_F | DISC_G);
    if (have_values(rc)) {
        drift_of_parts(f->state, f->dim, dy, batch);
        diffusion_of_parts(f->state, f->dim, g, batch);
    }
    return rc;
}

static int gan_vjp(nde_field *f, double t, const double *y,
                   const double *theta, const double *v, double *vy,
                   double *vtheta, size_t batch)
{
    int rc = evaluated(f, t, y, theta, batch, GEN_MU | DISC_G);
    if (!have_values(rc))
        return rc;
    drift_cotangents(f->state, f->dim, v, batch);
    return joined(rc, parts_vjp(f, t, theta, vy, vtheta, batch,
                                GEN_MU | DISC_F));
}

static int gan_diffusion_vjp(nde_field *f, double t, const double *y,
                             const double *theta, const double *v,
                             double *vy, double *vtheta, size_t batch)
{
    int rc = evaluated(f, t, y, theta, batch, GEN_SIG | DISC_G);
    if (!have_values(rc))
        return rc;
    diffusion_cotangents(f->state, f->dim, v, batch, 0);
    return joined(rc, parts_vjp(f, t, theta, vy, vtheta, batch, GEN_SIG));
}

/* Both VJPs at once: the discriminator's diffusion net gets the sum of
 * the two cotangents on g in one VJP. */
static int gan_vjp_sde(nde_field *f, double t, const double *y,
                       const double *theta, const double *v,
                       const double *vg, double *vy, double *vtheta,
                       size_t batch)
{
    int rc = evaluated(f, t, y, theta, batch, GEN_MU | GEN_SIG | DISC_G);
    if (!have_values(rc))
        return rc;
    drift_cotangents(f->state, f->dim, v, batch);
    diffusion_cotangents(f->state, f->dim, vg, batch, 1);
    return joined(rc, parts_vjp(f, t, theta, vy, vtheta, batch,
                                GEN_MU | GEN_SIG | DISC_F));
}

static int gan_init_params(nde_field *f, double *theta, uint64_t seed)
{
    gan_state *s = f->state;
    int rc;

    if ((rc = nde_field_init_params(s->gen, theta, nde_seed_derive(seed, 0))))
        return rc;
    return nde_field_init_params(s->disc, theta + s->gen->nparams,
                                 nde_seed_derive(seed, 1));
}

static int gan_param_name(const nde_field *f, size_t i, char *buf, size_t len)
{
    const gan_state *s = f->state;
    const size_t pg = s->gen->nparams;
    char inner[128];

    if (i >= f->nparams)
        return NDE_EINVAL;
    nde_field_param_name(i < pg ? s->gen : s->disc, i < pg ? i : i - pg,
                         inner, sizeof inner);
    snprintf(buf, len, "%s.%s", i < pg ? "gen" : "disc", inner);
    return NDE_OK;
}

static void gan_destroy(nde_field *f)
{
    gan_state *s = f->state;

    if (!s)
        return;
    nde_field_destroy(s->gen);
    nde_field_destroy(s->disc);
    free(s->real);
    free(s->gpos);
    free(s->u);
    free(s->z);
    free(s->h);
    free(s->mu);
    free(s->fh);
    free(s->sig);
    free(s->gh);
    free(s->vz);
    free(s->vh);
    free(s->vsig);
    free(s->vg);
    free(s->vyz);
    free(s->vyh);
    free(s->names);
    free(s->name);
    free(s);
    f->state = NULL;
}

/* The part named by key (section [field.NAME]): an SDE field with general
 * noise reading no input. */
static int make_part(nde_field *f, nde_section *sec, const char *key,
                     nde_field **part, nde_ctx *ctx)
{
    const char *name;
    int rc;

    if ((rc = field_part_create(f, sec, key, ctx, &name, part)) != NDE_OK)
        return rc;
    if ((*part)->noise != NDE_NOISE_GENERAL)
        return nde_section_error(sec, key, ctx, "'%s' has no general noise "
                                 "(an mlp needs diffusion and noise_dim)",
                                 name);
    if ((*part)->ninputs)
        return nde_section_error(sec, key, ctx, "'%s' reads an input; the "
                                 "parts of an sde_gan field read none", name);
    return NDE_OK;
}

/* y1..yc, z(c+1)..zG, h1..hH. */
static int name_states(nde_field *f, gan_state *s, nde_ctx *ctx)
{
    const size_t d = f->dim, each = 24;
    if (!(s->names = malloc(d * each)) ||
        !(s->name = malloc(d * sizeof *s->name)))
        return nde_error(ctx, NDE_ENOMEM, "sde_gan: out of memory");
    for (size_t i = 0; i < d; i++) {
        char *p = s->names + i * each;
        if (i < s->c)
            snprintf(p, each, "y%zu", i + 1);
        else if (i < s->G)
            snprintf(p, each, "z%zu", i + 1);
        else
            snprintf(p, each, "h%zu", i - s->G + 1);
        s->name[i] = p;
    }
    f->state_names = s->name;
    return NDE_OK;
}

static int gan_create(nde_field *f, nde_section *sec, nde_ctx *ctx)
{
    gan_state *s = calloc(1, sizeof *s);
    long c;
    int rc;

    if (!(f->state = s))
        return nde_error(ctx, NDE_ENOMEM, "sde_gan: out of memory");
    if (!sec)
        return nde_error(ctx, NDE_ECONFIG, "sde_gan: needs a [field] section "
                         "with generator and discriminator");
    if ((rc = nde_get_long_min(sec, "channels", 1, &c, ctx)) ||
        (rc = make_part(f, sec, "generator", &s->gen, ctx)) ||
        (rc = make_part(f, sec, "discriminator", &s->disc, ctx)))
        return rc;
    s->c = (size_t)c;
    s->G = s->gen->dim;
    s->H = s->disc->dim;
    s->M = s->gen->noise_dim;
    if (s->G < s->c)
        return nde_section_error(sec, "generator", ctx, "has %zu states; "
                                 "its first %zu (channels) are the path", s->G,
                                 s->c);
    if (s->disc->noise_dim != 1 + s->c)
        return nde_section_error(sec, "discriminator", ctx, "has %zu noise "
                                 "channels; as a CDE on (t, y) it needs 1 + "
                                 "channels = %zu (its diffusion is the H x "
                                 "(1 + c) matrix g)", s->disc->noise_dim,
                                 1 + s->c);
    {
        const size_t B = f->batch_max, G = s->G, H = s->H, w = 1 + s->c;
        if (!(s->real = malloc(B)) ||
            !(s->gpos = malloc(B * sizeof *s->gpos)) ||
            !(s->u = malloc(w * sizeof *s->u)) ||
            !(s->z = malloc(B * G * sizeof *s->z)) ||
            !(s->h = malloc(B * H * sizeof *s->h)) ||
            !(s->mu = malloc(B * G * sizeof *s->mu)) ||
            !(s->fh = malloc(B * H * sizeof *s->fh)) ||
            !(s->sig = malloc(B * G * s->M * sizeof *s->sig)) ||
            !(s->gh = malloc(B * H * w * sizeof *s->gh)) ||
            !(s->vz = malloc(B * G * sizeof *s->vz)) ||
            !(s->vh = malloc(B * H * sizeof *s->vh)) ||
            !(s->vsig = malloc(B * G * s->M * sizeof *s->vsig)) ||
            !(s->vg = malloc(B * H * w * sizeof *s->vg)) ||
            !(s->vyz = malloc(B * G * sizeof *s->vyz)) ||
            !(s->vyh = malloc(B * H * sizeof *s->vyh)))
            return nde_error(ctx, NDE_ENOMEM, "sde_gan: out of memory");
    }
    f->dim = s->G + s->H;
    f->nparams = s->gen->nparams + s->disc->nparams;
    f->noise = NDE_NOISE_GENERAL;
    f->noise_dim = s->M + s->c;
    f->control_dim = s->c;
    f->input_continuous = 1;
    f->ninputs = s->c + 1;
    return name_states(f, s, ctx);
}

static const nde_key gan_keys[] = {
    {"generator", NDE_KEY_WORD, NULL,
     "the generator, configured in section [field.NAME]: an SDE field with "
     "general noise on G states whose first `channels` are the generated "
     "path (e.g. an mlp with time, diffusion and noise_dim)"},
    {"discriminator", NDE_KEY_WORD, NULL,
     "the discriminator, configured in section [field.NAME]: an SDE field "
     "with general noise on H states and 1 + channels noise channels, read "
     "as the CDE dh = f(t, h) dt + g(t, h) d(t, y) (its drift f, its "
     "diffusion matrix g)"},
    {"channels", NDE_KEY_INT, "1",
     "c: the path's channels (the generator's first c states; the input's "
     "first c channels on real rows)"},
    {NULL, 0, NULL, NULL},
};

static const nde_field_type gan_type = {
    .info = NDE_FIELD_INFO(
        .name = "sde_gan",
        .description = "SDE-GAN: a generator SDE and a discriminator CDE on "
                       "its path (or on the input's data path) as one SDE "
                       "with general noise",
        .keys = gan_keys,
        .provides = NDE_CAP_DIFFUSION,
        .version = "1"),
    .create = gan_create,
    .destroy = gan_destroy,
    .init_params = gan_init_params,
    .eval = gan_eval,
    .vjp = gan_vjp,
    .param_name = gan_param_name,
    .diffusion = gan_diffusion,
    .diffusion_vjp = gan_diffusion_vjp,
    .eval_sde = gan_eval_sde,
    .vjp_sde = gan_vjp_sde,
};

NDE_MODULE(&gan_type.info);
