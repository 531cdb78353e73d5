/* The [problem] section: time span, initial states, save times, tstops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nde/nde.h"

const nde_key nde_problem_keys[] = {
    {"t0", NDE_KEY_DOUBLE, "0", "start time"},
    {"t1", NDE_KEY_DOUBLE, NULL, "end time (may be < t0: integrate backwards)"},
    {"y0", NDE_KEY_DOUBLES, NULL,
     "initial state: one row of dim values per line, one line per batch "
     "member"},
    {"saveat", NDE_KEY_DOUBLES, "",
     "save times in [t0, t1], in the direction of integration"},
    {"nsave", NDE_KEY_INT, "",
     "number of save times spread uniformly over [t0, t1], both ends "
     "included (1 = t1 only); default without saveat: t1 only"},
    {"tstops", NDE_KEY_DOUBLES, "",
     "times in [t0, t1] the solver must step onto exactly (discontinuities)"},
    {"event", NDE_KEY_TEXT, "",
     "stop each row at the first root of this expression of t and the "
     "states (e.g. x - 1), found on the solver's dense output"},
    {"direction", NDE_KEY_WORD, "both",
     "the event's crossings that count: rising (- to +), falling (+ to -) "
     "or both"},
    {NULL, 0, NULL, NULL}};

/* Monotone in the direction of integration and inside [t0, t1]. */
static int check_times(nde_section *sec, const char *key, const double *ts,
                       size_t n, double t0, double t1, nde_ctx *ctx)
{
    const double dir = t1 > t0 ? 1.0 : -1.0;

    for (size_t i = 0; i < n; i++) {
        if (dir * (ts[i] - t0) < 0 || dir * (ts[i] - t1) > 0)
            return nde_section_error(sec, key, ctx,
                                     "value %zu (%g) lies outside [t0, t1] "
                                     "= [%g, %g]", i + 1, ts[i], t0, t1);
        if (i > 0 && dir * (ts[i] - ts[i - 1]) < 0)
            return nde_section_error(sec, key, ctx,
                                     "times must be %s from t0 to t1 "
                                     "(value %zu = %g follows %g)",
                                     dir > 0 ? "increasing" : "decreasing",
                                     i + 1, ts[i], ts[i - 1]);
    }
    return NDE_OK;
}

static int read_problem(nde_problem *p, nde_section *sec, size_t dim,
                        nde_ctx *ctx)
{
    const nde_key *const tables[] = {nde_problem_keys, NULL};
    size_t rows, cols;
    int rc;

    if ((rc = nde_section_check(sec, tables, ctx)) ||
        (rc = nde_get_double(sec, "t0", &p->t0, ctx)) ||
        (rc = nde_get_double(sec, "t1", &p->t1, ctx)))
        return rc;
    if (p->t1 == p->t0)
        return nde_section_error(sec, "t1", ctx, "t1 = t0 = %g: empty time "
                                 "span", p->t0);
    if ((rc = nde_get_matrix(sec, "y0", &p->y0, &rows, &cols, ctx)))
        return rc;
    if (rows == 0)
        return nde_section_error(sec, "y0", ctx, "no values (need rows of "
                                 "%zu values)", dim);
    if (cols != dim)
        return nde_section_error(sec, "y0", ctx,
                                 "row 1 has %zu values, the field's "
                                 "dimension is %zu (one row per line, one "
                                 "line per batch member)", cols, dim);
    p->batch = rows;
    p->dim = dim;

    if (nde_section_has(sec, "saveat") && nde_section_has(sec, "nsave"))
        return nde_section_error(sec, "nsave", ctx,
                                 "give either saveat or nsave, not both");
    if (nde_section_has(sec, "saveat")) {
        if ((rc = nde_get_doubles(sec, "saveat", &p->tsave, &p->nsave, ctx)))
            return rc;
        if (p->nsave == 0)
            return nde_section_error(sec, "saveat", ctx, "no save times");
        if ((rc = check_times(sec, "saveat", p->tsave, p->nsave, p->t0,
                              p->t1, ctx)))
            return rc;
    } else {
        long ns = 1;
        if (nde_section_has(sec, "nsave") &&
            (rc = nde_get_long(sec, "nsave", &ns, ctx)))
            return rc;
        if (ns < 1)
            return nde_section_error(sec, "nsave", ctx, "must be >= 1, got "
                                     "%ld", ns);
        if (!(p->tsave = malloc((size_t)ns * sizeof *p->tsave)))
            return nde_error(ctx, NDE_ENOMEM, "out of memory for %ld save "
                             "times", ns);
        p->nsave = (size_t)ns;
        for (long i = 0; i + 1 < ns; i++)
            p->tsave[i] = p->t0 + (p->t1 - p->t0) * (double)i / (double)(ns - 1);
        p->tsave[ns - 1] = p->t1;
    }

    if (nde_section_has(sec, "tstops")) {
        if ((rc = nde_get_doubles(sec, "tstops", &p->tstops, &p->ntstops,
                                  ctx)) ||
            (rc = check_times(sec, "tstops", p->tstops, p->ntstops, p->t0,
                              p->t1, ctx)))
            return rc;
    }
    return NDE_OK;
}

int nde_problem_from_section(nde_problem *p, nde_section *sec, size_t dim,
                             nde_ctx *ctx)
{
    int rc;

    memset(p, 0, sizeof *p);
    if ((rc = read_problem(p, sec, dim, ctx)) != NDE_OK)
        nde_problem_free(p);
    return rc;
}

void nde_problem_free(nde_problem *p)
{
    if (!p)
        return;
    free(p->y0);
    free(p->tsave);
    free(p->tstops);
    memset(p, 0, sizeof *p);
}
