/*
 * nde/event.h - a terminal event: the solve stops at the first root of an
 * expression g(t, y) of the time and the state (one batch row), and the
 * event time's derivative for the adjoints.
 *
 * Written in [problem] (libmatheval syntax, in t and the field's state
 * names; y0, y1, ... when the field does not name its states):
 *
 *     event     = x            # stop where x crosses 0
 *     direction = falling      # rising | falling | both (default both)
 *
 * The solve (nde_solve_opts.event) checks the sign of g after every
 * accepted step; a change in the requested direction (rising: from < 0 to
 * >= 0, falling: from > 0 to <= 0, as the solve proceeds: backwards in
 * t when t1 < t0) brackets a root, which the Illinois
 * method (a safeguarded regula falsi) locates on the step's dense output
 * to a few units of round-off in t. The step is then taken again from its
 * start onto the root, so that the solve, and its record, end at t*. A
 * root at t0 itself does not stop the solve, nor do two roots inside one
 * step (no sign change).
 *
 * The event time is differentiable (Chen, Amos, Nickel, "Learning Neural
 * Event Functions for ODEs", ICLR 2021; torchdiffeq's odeint_event): with
 * g(t*, y(t*)) = 0 the implicit function theorem gives
 *     d(t*)/dp = -(dg/dy . dy(t*)/dp) / (dg/dt + dg/dy . f(t*, y(t*)))
 * for any p (parameters or initial state), so cotangents on t* and on the
 * state at the event, taken as moving with t*, become one cotangent on the
 * state at the fixed time t*, which any adjoint turns into dL/dy0 and
 * dL/dtheta from the solve's record (whose t1 is t*): nde_event_cotangent.
 *
 * An event is evaluated through scratch it owns: one solve at a time.
 */
#ifndef NDE_EVENT_H
#define NDE_EVENT_H

#include <stddef.h>
#include "api.h"
#include "config.h"
#include "field.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_event nde_event;

#define NDE_EVENT_BOTH 0
#define NDE_EVENT_RISING 1
#define NDE_EVENT_FALLING (-1)

/* The keys event and direction of [problem] (sec checked against
 * nde_problem_keys) for the field f: *out is the event, or NULL when sec
 * has no `event` key. Bad expressions, unknown names (the expression may
 * use t and the states, not the field's parameters), a bad direction and
 * a direction without an event are NDE_ECONFIG naming the key. */
NDE_API int nde_event_from_section(nde_event **out, const nde_section *sec,
                                   const nde_field *f, nde_ctx *ctx);
NDE_API void nde_event_destroy(nde_event *ev);

NDE_API int nde_event_direction(const nde_event *ev);
/* g(t, y) for one row y of dim values. */
NDE_API double nde_event_value(nde_event *ev, double t, const double *y);
/* dg/dy into gy (dim values); returns dg/dt. */
NDE_API double nde_event_gradient(nde_event *ev, double t, const double *y,
                                  double *gy);

/*
 * Cotangents at an event (t*, y* = y(t*), one row of the field f) into a
 * cotangent on the state at the fixed time t*: ybar (dim values, the
 * cotangent on y* moving with t*) becomes
 *     ybar - (tbar + ybar . f) / (dg/dt + dg/dy . f) dg/dy
 * with f = f(t*, y*; theta), tbar the cotangent on t*. One field
 * evaluation (batch 1). NDE_ENONFINITE when the event is tangential at t*
 * (dg/dt + dg/dy . f = 0: t* is not differentiable there).
 */
NDE_API int nde_event_cotangent(nde_event *ev, nde_field *f,
                                const double *theta, double tstar,
                                const double *ystar, double tbar,
                                double *ybar, nde_ctx *ctx);

/*
 * The parsing shared with the expr field: text, the value of key in sec,
 * as a libmatheval evaluator whose variables are all among names
 * (nnames); `known` says which names those are in the message about an
 * unknown one. An empty or unparsable expression, or an unknown variable,
 * is NDE_ECONFIG naming the key. *out is freed with evaluator_destroy.
 */
NDE_API int nde_expr_parse(const nde_section *sec, const char *key,
                           const char *text, char *const *names,
                           size_t nnames, const char *known, void **out,
                           nde_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
