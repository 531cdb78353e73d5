/* Generic solver object: composition from a config section, lifecycle, and
 * the checks that a tableau plugin is well formed. */
#include <math.h>
#include <stdlib.h>

#include "nde/nde.h"
#include "internal.h"
#include "rk.h"

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
    return nde_solver_create_from(ctx, type, field, out);
}

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
    return NDE_OK;
}

/* An ops table against the declared flags: every entry point a solve or
 * an adjoint calls is there, reverse exactly when the solver says it is
 * reversible. */
static int check_ops(nde_ctx *ctx, const nde_solver_type *type)
{
    const nde_solver_ops *ops = type->ops;
    const char *name = type->info.name;
    const unsigned flags = type->info.provides;

    if (type->tableau)
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s' has both a tableau and ops", name);
    if (ops->aux < 0 || !ops->create || !ops->destroy || !ops->start ||
        !ops->step || !ops->step_vjp || !ops->start_vjp)
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': ops need aux >= 0 and create, "
                         "destroy, start, step, step_vjp, start_vjp", name);
    if (!!(flags & NDE_CAP_REVERSIBLE) != !!ops->reverse)
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': a reverse step must be given exactly "
                         "when the solver declares NDE_CAP_REVERSIBLE", name);
    if (flags & (NDE_CAP_ADAPTIVE | NDE_CAP_DENSE | NDE_CAP_STIFFNESS |
                 NDE_CAP_FSAL))
        return nde_error(ctx, NDE_EPLUGIN,
                         "solver '%s': a solver with ops is fixed-step (no "
                         "adaptive, dense, stiffness or FSAL flags)", name);
    if (type->order < 1)
        return nde_error(ctx, NDE_EPLUGIN, "solver '%s': order not set",
                         name);
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

static int ops_buffers(nde_ops_solver *os, size_t n, int aux)
{
    const size_t na = (size_t)aux * n;

    if (!(os->block = malloc((3 * n + 2 * na) * sizeof(double))))
        return NDE_ENOMEM;
    os->y = os->block;
    os->y_next = os->y + n;
    os->dw = os->y_next + n;
    os->aux = os->dw + n;
    os->aux_next = os->aux + na;
    return NDE_OK;
}

int nde_solver_create_from(nde_ctx *ctx, const nde_solver_type *type,
                           nde_field *field, nde_solver **out)
{
    nde_solver *s;
    nde_ops_solver *os = NULL;
    size_t n;
    int rc;

    *out = NULL;
    if (type->info.kind != NDE_KIND_SOLVER)
        return nde_error(ctx, NDE_EPLUGIN, "plugin '%s' is not a solver",
                         type->info.name);
    rc = type->ops ? check_ops(ctx, type) : check_tableau(ctx, type);
    if (rc != NDE_OK)
        return rc;
    if (!field || field->batch_max == 0 || field->dim == 0)
        return nde_error(ctx, NDE_EINVAL,
                         "solver '%s': needs a created field", type->info.name);
    if ((rc = check_pairing(ctx, type, field)) != NDE_OK)
        return rc;
    if (type->ops)
        s = (os = calloc(1, sizeof *os)) ? &os->pub : NULL;
    else
        s = calloc(1, sizeof *s);
    if (!s)
        return nde_error(ctx, NDE_ENOMEM, "out of memory creating solver '%s'",
                         type->info.name);
    s->type = type;
    s->ctx = ctx;
    s->field = field;
    s->batch_max = field->batch_max;
    s->batch = field->batch_max;
    n = field->batch_max * field->dim;
    if (os) {
        rc = ops_buffers(os, n, type->ops->aux);
        if (rc == NDE_OK && (rc = type->ops->create(s)) != NDE_OK) {
            nde_solver_destroy(s);
            return rc == NDE_ENOMEM
                       ? nde_error(ctx, rc, "out of memory for the workspace "
                                   "of solver '%s'", type->info.name)
                       : rc;
        }
    } else {
        rc = nde_rk_work_create(type->tableau->stages, n,
                                (nde_rk_work **)&s->work);
    }
    if (rc != NDE_OK) {
        nde_solver_destroy(s);
        return nde_error(ctx, rc, "out of memory for the workspace of solver "
                         "'%s' (%zu rows of %zu)", type->info.name,
                         field->batch_max, field->dim);
    }
    *out = s;
    return NDE_OK;
}

void nde_solver_destroy(nde_solver *s)
{
    if (!s)
        return;
    if (s->type->ops) {
        nde_ops_solver *os = (nde_ops_solver *)s;
        s->type->ops->destroy(s);
        free(os->block);
        free(os);
        return;
    }
    nde_rk_work_destroy(s->work);
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
/* Solvers with ops                                                    */

static int need_ops(const nde_solver *s)
{
    if (s->type->ops)
        return NDE_OK;
    return nde_error(s->ctx, NDE_ECAPABILITY,
                     "solver '%s' is a Runge-Kutta tableau, not a solver "
                     "with its own state (start/advance/reverse)",
                     s->type->info.name);
}

int nde_solver_aux(const nde_solver *s)
{
    return s->type->ops ? s->type->ops->aux : 0;
}

int nde_solver_is_sde(const nde_solver *s)
{
    return (s->type->info.provides &
            (NDE_CAP_SDE_ITO | NDE_CAP_SDE_STRATONOVICH)) != 0;
}

int nde_solver_start(nde_solver *s, const double *theta, double t0,
                     const double *y0, double *aux0)
{
    int rc = need_ops(s);
    return rc ? rc : s->type->ops->start(s, theta, t0, y0, aux0);
}

int nde_solver_advance(nde_solver *s, const double *theta, double t, double h,
                       const double *dw, const double *y, const double *aux,
                       double *y_next, double *aux_next)
{
    int rc = need_ops(s);
    return rc ? rc : s->type->ops->step(s, theta, t, h, dw, y, aux, y_next,
                                        aux_next);
}

int nde_solver_reverse(nde_solver *s, const double *theta, double t, double h,
                       const double *dw, const double *y_next,
                       const double *aux_next, double *y, double *aux)
{
    int rc = need_ops(s);

    if (rc)
        return rc;
    if (!s->type->ops->reverse)
        return nde_error(s->ctx, NDE_ECAPABILITY,
                         "solver '%s' is not reversible", s->type->info.name);
    return s->type->ops->reverse(s, theta, t, h, dw, y_next, aux_next, y,
                                 aux);
}

int nde_solver_advance_vjp(nde_solver *s, const double *theta, double t,
                           double h, const double *dw, const double *y,
                           const double *aux, const double *ybar_next,
                           const double *auxbar_next, double *ybar,
                           double *auxbar, double *thetabar)
{
    int rc = need_ops(s);
    return rc ? rc : s->type->ops->step_vjp(s, theta, t, h, dw, y, aux,
                                            ybar_next, auxbar_next, ybar,
                                            auxbar, thetabar);
}

int nde_solver_start_vjp(nde_solver *s, const double *theta, double t0,
                         const double *y0, const double *auxbar0,
                         double *ybar0, double *thetabar)
{
    int rc = need_ops(s);
    return rc ? rc : s->type->ops->start_vjp(s, theta, t0, y0, auxbar0,
                                             ybar0, thetabar);
}
