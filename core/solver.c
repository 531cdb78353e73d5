/* Generic solver object: composition from a config section, lifecycle, the
 * checks that a plugin's tableau or ops are well formed, and the operations
 * dispatched through the instance's table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"
#include "internal.h"
#include "rk.h"

/* Structure of the tableau against the declared flags: a plugin that
 * claims what its tableau cannot deliver is refused at create. */
static int check_tableau(nde_ctx *ctx, const nde_solver_type *type)
{
    const nde_rk_tableau *tab = type->tableau;
    const char *name = type->info.name;
    const unsigned flags = type->info.provides;
    int s;

    if (!tab)
        return nde_error(ctx, NDE_EPLUGIN, "solver '%s' has no tableau", name);
    if (flags & (NDE_CAP_SDE_ITO | NDE_CAP_SDE_STRATONOVICH |
                 NDE_CAP_REVERSIBLE))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': an explicit RK tableau integrates "
                         "ODEs and has no exact reverse (SDE or reversible "
                         "solvers implement the ops table)", name);
    s = tab->stages;
    if (s < 1 || s > NDE_RK_MAX_STAGES || !tab->c || !tab->a || !tab->b)
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': tableau needs 1..%d stages and c, a, b",
                         name, NDE_RK_MAX_STAGES);
    for (int i = 0; i < s; i++)
        for (int j = i; j < s; j++)
            if (tab->a[i * s + j] != 0.0)
                return nde_error(ctx, NDE_EPLUGIN,
                                 "solver '%s': a[%d][%d] != 0, the tableau "
                                 "is not explicit", name, i, j);
    if (tab->fsal) {
        if (tab->c[s - 1] != 1.0 || tab->b[s - 1] != 0.0)
            return nde_error(ctx, NDE_EPLUGIN,
                             "solver '%s': FSAL needs c_s = 1 and b_s = 0",
                             name);
        for (int j = 0; j < s; j++)
            if (tab->a[(s - 1) * s + j] != tab->b[j])
                return nde_error(ctx, NDE_EPLUGIN,
                                 "solver '%s': FSAL needs the last row of a "
                                 "to equal b", name);
    }
    if (tab->stiff_stage >= 0 &&
        (!tab->fsal || tab->stiff_stage >= s - 1 ||
         tab->c[tab->stiff_stage] != 1.0 || !(tab->stability_size > 0.0)))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': the stiffness stage must have c = 1 in "
                         "an FSAL tableau and stability_size > 0", name);
    if (tab->dense_degree < 0 || (tab->dense_degree > 0 && !tab->dense))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': dense_degree without coefficients",
                         name);
    if (nde_rk_btilde2(type) && !tab->btilde)
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': a second error estimate (btilde2) "
                         "without the first (btilde)", name);
    if (!!(flags & NDE_CAP_ADAPTIVE) != !!tab->btilde ||
        !!(flags & NDE_CAP_DENSE) != (tab->dense_degree > 0) ||
        !!(flags & NDE_CAP_STIFFNESS) != (tab->stiff_stage >= 0) ||
        !!(flags & NDE_CAP_FSAL) != !!tab->fsal)
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': capability flags do not match its "
                         "tableau (adaptive = error weights, dense = dense "
                         "coefficients, stiffness = stiff stage, fsal)",
                         name);
    if (type->order < 1 || ((flags & NDE_CAP_ADAPTIVE) && type->error_order < 1))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': order / error_order not set", name);
    return nde_rk_tableau_check_orders(ctx, type);
}

/* An ops table against the declared flags: each optional operation is
 * there exactly when its capability is declared, and what the driver and
 * the adjoints call together comes together. */
static int check_ops(nde_ctx *ctx, const nde_solver_type *type)
{
    const nde_solver_ops *ops = &type->ops;
    const char *name = type->info.name;
    const unsigned flags = type->info.provides;
    static const struct {
        unsigned cap;
        const char *what;
    } caps[] = {{NDE_CAP_DENSE, "dense and last_stages (NDE_CAP_DENSE)"},
                {NDE_CAP_STIFFNESS, "stiffness (NDE_CAP_STIFFNESS)"},
                {NDE_CAP_STEP_VJP, "step_vjp (NDE_CAP_STEP_VJP)"},
                {NDE_CAP_REVERSIBLE, "reverse (NDE_CAP_REVERSIBLE)"},
                {NDE_CAP_FSAL, "accept and invalidate (NDE_CAP_FSAL)"}};
    const int has[] = {ops->dense && ops->last_stages, !!ops->stiffness,
                       !!ops->step_vjp, !!ops->reverse,
                       ops->accept && ops->invalidate};

    if (!ops->step || ops->aux < 0 || ops->stages < 0 ||
        (ops->create && !ops->destroy) || (ops->aux > 0 && !ops->start) ||
        (ops->aux > 0 && ops->step_vjp && !ops->start_vjp))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': its ops need step, aux >= 0, "
                         "stages >= 0, destroy with create, start with aux, "
                         "start_vjp with step_vjp and aux", name);
    for (size_t i = 0; i < sizeof caps / sizeof *caps; i++)
        if (!!(flags & caps[i].cap) != has[i])
            return nde_error(ctx, NDE_EPLUGIN,
                             "solver '%s': the ops must have %s exactly when "
                             "the flag is declared", name, caps[i].what);
    if (!!(flags & NDE_CAP_DENSE) != (ops->stages > 0))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': stages > 0 exactly with dense output",
                         name);
    if (type->order < 1 || ((flags & NDE_CAP_ADAPTIVE) && type->error_order < 1))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': order / error_order not set", name);
    return NDE_OK;
}

/* The calculus an SDE solver integrates, for messages. */
static const char *solver_calculus(unsigned flags)
{
    if ((flags & NDE_CAP_SDE_ITO) && (flags & NDE_CAP_SDE_STRATONOVICH))
        return "Ito and Stratonovich";
    return (flags & NDE_CAP_SDE_ITO) ? "Ito" : "Stratonovich";
}

/* Solver and field must agree on noise and, for an SDE, on the calculus
 * the field's equations are written in. */
static int check_pairing(nde_ctx *ctx, const nde_solver_type *type,
                         const nde_field *field)
{
    const unsigned flags = type->info.provides;
    const unsigned sde = flags & (NDE_CAP_SDE_ITO | NDE_CAP_SDE_STRATONOVICH);
    const char *sname = type->info.name, *fname = field->type->info.name;

    if ((type->info.needs & NDE_NEEDS_FIELD_JVP) && !field->type->jvp)
        return nde_error(ctx, NDE_ECAPABILITY,
                         "solver '%s' needs the field's JVP (an implicit "
                         "method), which field '%s' does not provide", sname,
                         fname);
    if (sde && field->noise == NDE_NOISE_NONE)
        return nde_error(ctx, NDE_ECAPABILITY,
                         "solver '%s' integrates SDEs but field '%s' has no "
                         "diffusion (set the field's diffusion, e.g. g<name> "
                         "keys for expr, or use an ODE solver)", sname,
                         fname);
    if (!sde && field->noise != NDE_NOISE_NONE)
        return nde_error(ctx, NDE_ECAPABILITY,
                         "solver '%s' integrates ODEs but field '%s' has a "
                         "diffusion (use an SDE solver: euler_maruyama for "
                         "Ito, reversible_heun for Stratonovich)", sname,
                         fname);
    if (sde && field->noise == NDE_NOISE_GENERAL &&
        !(flags & NDE_CAP_GENERAL_NOISE))
        return nde_error(ctx, NDE_ECAPABILITY,
                         "solver '%s' integrates diagonal noise only but "
                         "field '%s' has general noise (noise_dim = %zu): use "
                         "euler_maruyama, heun or reversible_heun", sname,
                         fname, field->noise_dim);
    if (sde && field->control_dim > 0 && (type->info.needs &
                                          NDE_NEEDS_LEVY_AREA))
        return nde_error(ctx, NDE_ECAPABILITY,
                         "solver '%s' needs the Levy area of its noise, "
                         "which field '%s' does not have for its %zu "
                         "channels driven by its input (control_dim): use "
                         "euler_maruyama, heun or reversible_heun", sname,
                         fname, field->control_dim);
    if ((field->calculus == NDE_CALCULUS_ITO && !(flags & NDE_CAP_SDE_ITO)) ||
        (field->calculus == NDE_CALCULUS_STRATONOVICH &&
         !(flags & NDE_CAP_SDE_STRATONOVICH)))
        return nde_error(ctx, NDE_ECAPABILITY,
                         "solver '%s' integrates %s SDEs but field '%s' is "
                         "written in %s form (set its calculus = solver, or "
                         "use a solver for %s SDEs)", sname,
                         solver_calculus(flags), fname,
                         nde_calculus_name(field->calculus),
                         nde_calculus_name(field->calculus));
    return NDE_OK;
}

/* The instance, and the engine's table for a tableau solver. */
typedef struct solver_impl {
    nde_solver pub;
    nde_solver_ops rk_ops;
} solver_impl;

/* The instance of type for field; the plugin's create reads its keys from
 * sec (NULL: defaults). */
static int solver_create(nde_ctx *ctx, const nde_solver_type *type,
                         nde_field *field, nde_section *sec, nde_solver **out)
{
    solver_impl *impl;
    nde_solver *s;
    int rc = NDE_OK;

    *out = NULL;
    if (type->info.kind != NDE_KIND_SOLVER)
        return nde_error(ctx, NDE_EPLUGIN, "plugin '%s' is not a solver",
                         type->info.name);
    if (type->tableau && type->ops.step)
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s' has both a tableau and ops",
                         type->info.name);
    rc = type->tableau ? check_tableau(ctx, type) : check_ops(ctx, type);
    if (rc != NDE_OK)
        return rc;
    if ((type->info.needs & NDE_NEEDS_LEVY_AREA) &&
        !(type->info.provides & (NDE_CAP_SDE_ITO | NDE_CAP_SDE_STRATONOVICH)))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s' needs the Levy area but integrates no "
                         "SDE", type->info.name);
    if (!field || field->batch_max == 0 || field->dim == 0)
        return nde_error(ctx, NDE_EINVAL,
                         "solver '%s': needs a created field", type->info.name);
    if ((rc = check_pairing(ctx, type, field)) != NDE_OK)
        return rc;
    if (!(impl = calloc(1, sizeof *impl)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory creating solver '%s'",
                         type->info.name);
    s = &impl->pub;
    s->type = type;
    if (type->tableau) {
        nde_rk_ops_fill(type, &impl->rk_ops);
        s->ops = &impl->rk_ops;
    } else {
        s->ops = &type->ops;
    }
    s->ctx = ctx;
    s->field = field;
    s->batch_max = field->batch_max;
    s->batch = field->batch_max;
    s->aux = s->ops->aux;
    s->stages = s->ops->stages;
    s->section = sec;
    if (s->ops->create)
        rc = s->ops->create(s);
    s->section = NULL;
    /* After create, which may have raised s->aux (nde_solver_ops). */
    if (rc == NDE_OK)
        rc = nde_solve_buffers_create(field->batch_max * field->dim,
                                      nde_solver_noise_channels_max(s),
                                      s->aux, &s->buf);
    if (rc != NDE_OK && rc != NDE_ENOMEM) {
        nde_solver_destroy(s);
        return rc;
    }
    if (rc != NDE_OK) {
        nde_solver_destroy(s);
        return nde_error(ctx, rc, "out of memory for the workspace of solver "
                         "'%s' (%zu rows of %zu)", type->info.name,
                         field->batch_max, field->dim);
    }
    /* create may set the stages of a composite; a record keeps at most
     * this many a step */
    if (s->stages < 0 || s->stages > NDE_RK_MAX_STAGES) {
        nde_solver_destroy(s);
        return nde_error(ctx, NDE_EPLUGIN, "solver '%s': %d stages a step, "
                         "more than %d", type->info.name, s->stages,
                         NDE_RK_MAX_STAGES);
    }
    *out = s;
    return NDE_OK;
}

int nde_solver_create(nde_ctx *ctx, const nde_config *cfg, const char *section,
                      nde_field *field, nde_solver **out)
{
    const nde_solver_type *type;
    const nde_plugin_info *info;
    nde_section *sec;
    int rc;

    *out = NULL;
    if ((rc = nde_config_require(cfg, section, &sec, ctx)) != NDE_OK)
        return rc;
    if ((rc = nde_section_plugin(ctx, sec, NDE_KIND_SOLVER, &info)) != NDE_OK)
        return rc;
    type = (const nde_solver_type *)info;
    {
        const nde_key *const tables[] = {nde_solve_keys, type->info.keys,
                                         NULL};
        if ((rc = nde_section_check(sec, tables, ctx)) != NDE_OK)
            return rc;
    }
    return solver_create(ctx, type, field, sec, out);
}

int nde_solver_create_from(nde_ctx *ctx, const nde_solver_type *type,
                           nde_field *field, nde_solver **out)
{
    return solver_create(ctx, type, field, NULL, out);
}

void nde_solver_destroy(nde_solver *s)
{
    if (!s)
        return;
    if (s->ops->destroy)
        s->ops->destroy(s);
    nde_solve_buffers_destroy(s->buf);
    free(s);
}

int nde_solver_set_batch(nde_solver *s, size_t batch)
{
    if (batch == 0 || batch > s->batch_max)
        return nde_error(s->ctx, NDE_EINVAL,
                         "solver '%s': batch %zu outside 1..%zu",
                         s->type->info.name, batch, s->batch_max);
    s->batch = batch;
    nde_solver_invalidate(s);
    return NDE_OK;
}

/* ------------------------------------------------------------------ */
/* The operations, each refused when the solver does not have it        */

static __attribute__((noinline)) int missing(const nde_solver *s,
                                             const char *what)
{
    return nde_error(s->ctx, NDE_ECAPABILITY, "solver '%s' has no %s",
                     s->type->info.name, what);
}

/* Calls through nde_solver_step and its VJPs are for ODE solvers without
 * state besides y (a step of the others needs dw or aux). */
static int need_plain_ode(const nde_solver *s, const char *what)
{
    if (s->aux == 0 && !nde_solver_is_sde(s))
        return NDE_OK;
    return nde_error(s->ctx, NDE_EINVAL,
                     "solver '%s' carries state besides y or integrates "
                     "SDEs: use nde_solver_advance%s", s->type->info.name,
                     what);
}

int nde_solver_aux(const nde_solver *s)
{
    return s->aux;
}

int nde_solver_is_sde(const nde_solver *s)
{
    return (s->type->info.provides &
            (NDE_CAP_SDE_ITO | NDE_CAP_SDE_STRATONOVICH)) != 0;
}

int nde_solver_noise_blocks(const nde_solver *s)
{
    if (!nde_solver_is_sde(s))
        return 0;
    return (s->type->info.needs & NDE_NEEDS_LEVY_AREA) ? 2 : 1;
}

size_t nde_solver_noise_channels(const nde_solver *s)
{
    return nde_solver_is_sde(s) ? s->batch * nde_field_brownian_dim(s->field)
                                : 0;
}

size_t nde_solver_noise_channels_max(const nde_solver *s)
{
    const size_t n = s->batch_max * s->field->dim,
                 w = s->batch_max * s->field->noise_dim;
    return w > n ? w : n;
}

/* A controlled field's noise (nde/field.h, control_dim): the path's
 * rows of M - c Brownian channels, in dw's first values, spread to rows
 * of M from the last row down (so nothing unread is overwritten), each
 * followed by the input's increments of its c control channels. */
static int control_noise(const nde_solver *s, double ta, double tb,
                         double *dw)
{
    const nde_field *f = s->field;
    const size_t M = f->noise_dim, c = f->control_dim, mb = M - c;
    int rc;

    if (!f->input)
        return nde_error(s->ctx, NDE_EINVAL, "field '%s' is driven by its "
                         "input (control_dim %zu) but has none set",
                         f->type->info.name, c);
    for (size_t r = s->batch; r-- > 0;) {
        memmove(dw + r * M, dw + r * mb, mb * sizeof *dw);
        if ((rc = nde_input_increment(f->input, r, ta, tb, c,
                                      dw + r * M + mb)))
            return rc;
    }
    return NDE_OK;
}

int nde_solver_noise(const nde_solver *s, nde_brownian *bm, double ta,
                     double tb, double *dw)
{
    int rc;

    if (s->field->control_dim > 0)
        return (rc = nde_brownian_increment(bm, ta, tb, dw))
                   ? rc
                   : control_noise(s, ta, tb, dw);
    if (nde_solver_noise_blocks(s) < 2)
        return nde_brownian_increment(bm, ta, tb, dw);
    if (!nde_brownian_has_area(bm) && (rc = nde_brownian_set_area(bm, 1)))
        return rc;
    return nde_brownian_area(bm, ta, tb, dw, dw + nde_brownian_channels(bm));
}

/* Every step wrapper selects the field input's segment for its step
 * (nde/input.h), so a replayed step reads what the forward one read. */
static void select_input(nde_solver *s, double t, double h)
{
    if (s->field->input)
        nde_input_select(s->field->input, t, h);
}

int nde_solver_start(nde_solver *s, const double *theta, double t0,
                     const double *y0, double *aux0)
{
    return s->ops->start ? s->ops->start(s, theta, t0, y0, aux0) : NDE_OK;
}

int nde_solver_advance(nde_solver *s, const double *theta, double t, double h,
                       const double *dw, const double *y, const double *aux,
                       double *y_next, double *aux_next)
{
    select_input(s, t, h);
    return s->ops->step(s, theta, t, h, dw, y, aux, y_next, aux_next, NULL,
                        NULL, NULL);
}

int nde_solver_advance_err(nde_solver *s, const double *theta, double t,
                           double h, const double *dw, const double *y,
                           const double *aux, double *y_next,
                           double *aux_next, double *err)
{
    select_input(s, t, h);
    if (!(s->type->info.provides & NDE_CAP_ADAPTIVE))
        return missing(s, "error estimate (fixed-step)");
    return s->ops->step(s, theta, t, h, dw, y, aux, y_next, aux_next, err,
                        NULL, NULL);
}

int nde_solver_step(nde_solver *s, const double *theta, double t, double h,
                    const double *y, double *y_next, double *err)
{
    int rc = need_plain_ode(s, "");

    select_input(s, t, h);
    if (!(s->type->info.provides & NDE_CAP_ADAPTIVE))
        err = NULL;
    return rc ? rc : s->ops->step(s, theta, t, h, NULL, y, NULL, y_next,
                                  NULL, err, NULL, NULL);
}

int nde_solver_first_stage(nde_solver *s, const double *theta, double t,
                           const double *y, const double **f0)
{
    int rc;

    if (s->ops->derivative)
        return s->ops->derivative(s, theta, t, y, f0);
    s->counts.nfe++;
    if ((rc = nde_field_eval(s->field, t, y, theta, s->buf->f0, s->batch)))
        return rc;
    *f0 = s->buf->f0;
    return NDE_OK;
}

void nde_solver_accept(nde_solver *s)
{
    if (s->ops->accept)
        s->ops->accept(s);
}

void nde_solver_invalidate(nde_solver *s)
{
    if (s->ops->invalidate)
        s->ops->invalidate(s);
}

int nde_solver_dense(const nde_solver *s, const double *y, double h,
                     double theta, double *out)
{
    if (!s->ops->dense)
        return missing(s, "dense output");
    return s->ops->dense(s, y, h, NULL, theta, out);
}

int nde_solver_dense_from(const nde_solver *s, const double *y, double h,
                          const double *k, double theta, double *out)
{
    const size_t n = s->batch * s->field->dim;
    const double *ks[NDE_RK_MAX_STAGES];

    if (!s->ops->dense)
        return missing(s, "dense output");
    if (s->stages > NDE_RK_MAX_STAGES)
        return nde_error(s->ctx, NDE_EINVAL, "solver '%s': %d stages, more "
                         "than %d", s->type->info.name, s->stages,
                         NDE_RK_MAX_STAGES);
    for (int i = 0; i < s->stages; i++)
        ks[i] = k + (size_t)i * n;
    return s->ops->dense(s, y, h, ks, theta, out);
}

int nde_solver_stages(const nde_solver *s)
{
    return s->ops->dense ? s->stages : s->aux;
}

int nde_solver_copy_stages(const nde_solver *s, double *k)
{
    const size_t n = s->batch * s->field->dim;
    const double *ks[NDE_RK_MAX_STAGES];

    if (!s->ops->last_stages)
        return missing(s, "dense output (stages to copy)");
    s->ops->last_stages(s, ks);
    for (int i = 0; i < s->stages; i++)
        memcpy(k + (size_t)i * n, ks[i], n * sizeof(double));
    return NDE_OK;
}

int nde_solver_stiffness(const nde_solver *s, const double *y_next,
                         double *out)
{
    if (!s->ops->stiffness)
        return missing(s, "stiffness estimate");
    return s->ops->stiffness(s, y_next, out);
}

int nde_solver_step_vjp(nde_solver *s, const double *theta, double t, double h,
                        const double *y, double rtol, double atol,
                        const double *ybar_next, double ebar, double sbar,
                        const nde_dense_cotangent *dc, size_t ndc,
                        double *ybar, double *thetabar)
{
    const nde_step_cotangent ct = {ybar_next, NULL, ebar, rtol, atol, sbar,
                                   dc, ndc};
    int rc = need_plain_ode(s, "_vjp");

    select_input(s, t, h);
    if (rc)
        return rc;
    if (!s->ops->step_vjp)
        return missing(s, "step VJP");
    return s->ops->step_vjp(s, theta, t, h, NULL, y, NULL, &ct, ybar, NULL,
                            thetabar);
}

int nde_solver_last_step_vjp(nde_solver *s, double rtol, double atol,
                             const double *ybar_next, double ebar,
                             double sbar, const nde_dense_cotangent *dc,
                             size_t ndc, double *ybar, double *thetabar)
{
    const nde_step_cotangent ct = {ybar_next, NULL, ebar, rtol, atol, sbar,
                                   dc, ndc};
    int rc = need_plain_ode(s, "_vjp");

    if (rc)
        return rc;
    if (!s->ops->last_step_vjp)
        return missing(s, "VJP of its last step");
    return s->ops->last_step_vjp(s, &ct, ybar, NULL, thetabar);
}

int nde_solver_vjp(nde_solver *s, const double *theta, double t, double h,
                   const double *dw, const double *y, const double *aux,
                   const nde_step_cotangent *ct, double *ybar, double *auxbar,
                   double *thetabar)
{
    select_input(s, t, h);
    if (!s->ops->step_vjp)
        return missing(s, "step VJP");
    return s->ops->step_vjp(s, theta, t, h, dw, y, aux, ct, ybar, auxbar,
                            thetabar);
}

int nde_solver_advance_vjp(nde_solver *s, const double *theta, double t,
                           double h, const double *dw, const double *y,
                           const double *aux, const double *ybar_next,
                           const double *auxbar_next, double *ybar,
                           double *auxbar, double *thetabar)
{
    const nde_step_cotangent ct = {ybar_next, auxbar_next, 0.0, 0.0, 0.0, 0.0,
                                   NULL, 0};

    return nde_solver_vjp(s, theta, t, h, dw, y, aux, &ct, ybar, auxbar,
                          thetabar);
}

int nde_solver_start_vjp(nde_solver *s, const double *theta, double t0,
                         const double *y0, const double *auxbar0,
                         double *ybar0, double *thetabar)
{
    if (s->aux == 0)
        return NDE_OK;
    if (!s->ops->start_vjp)
        return missing(s, "step VJP");
    return s->ops->start_vjp(s, theta, t0, y0, auxbar0, ybar0, thetabar);
}

int nde_solver_reverse(nde_solver *s, const double *theta, double t, double h,
                       const double *dw, const double *y_next,
                       const double *aux_next, double *y, double *aux)
{
    select_input(s, t, h);
    if (!s->ops->reverse)
        return missing(s, "exact reverse step (not reversible)");
    return s->ops->reverse(s, theta, t, h, dw, y_next, aux_next, y, aux);
}
