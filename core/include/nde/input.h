/*
 * nde/input.h - a time-dependent input (control) u(t) of a field: a dose
 * schedule, a treatment, a forcing, one series per batch row.
 *
 * Row r's series is a list of knots (t_k, u_k), t_k increasing, of m
 * channels each, read in one of two ways:
 *   NDE_INPUT_CONSTANT  u(t) = u_k on [t_k, t_k+1) (a jump at each knot);
 *   NDE_INPUT_LINEAR    linear between the knots (a kink at each knot);
 * both held at u_0 before t_0 and at the last value after the last knot.
 *
 * The contract with the solve driver (nde_solve) and the step wrappers
 * (nde_solver_advance, nde_solver_vjp, ... in nde/solver.h):
 * - The knots of the rows in use are tstops of every solve of a field that
 *   carries the input (f->input, nde/field.h): the driver steps onto them
 *   (and drops its FSAL stage there) besides opts.tstops, with no
 *   at_tstop call, forwards and backwards. So no step straddles a knot.
 * - Before each step attempt over [t, t + h] the driver (and each wrapper,
 *   so every adjoint's replayed step) selects, for every row, the segment
 *   of its series that holds the step's midpoint t + h/2 (nde_input_
 *   select); every evaluation of the field within the step reads that
 *   segment, also at the step's ends. A stage on a jump at a step's end
 *   thus sees the value of the step's side of the jump, and a replayed
 *   step sees what the forward step saw.
 * - Whoever evaluates a field outside a solve or a step wrapper (a task,
 *   a test, a regularizer re-evaluating a step) selects first.
 * - A solve with per-row steps (nde/solve.h) solves row r as a batch of
 *   one and reads row r of the input (the driver sets the row offset).
 *
 * The input is owned by its creator (a task): fields borrow it. Rows are
 * refilled between solves (a new batch), never during one.
 */
#ifndef NDE_INPUT_H
#define NDE_INPUT_H

#include <stddef.h>
#include "api.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this interface (members and functions are only ever
 * added). 1: the functions below but nde_input_increment; 2: that. */
#define NDE_INPUT_VERSION 2

enum nde_input_kind { NDE_INPUT_CONSTANT = 0, NDE_INPUT_LINEAR = 1 };

typedef struct nde_input nde_input;

/* An input of `channels` values per knot for up to rows_max rows of up to
 * knots_max knots each (all memory allocated here), no row set yet. */
NDE_API int nde_input_create(nde_ctx *ctx, size_t rows_max, size_t channels,
                             size_t knots_max, int kind, nde_input **out);
NDE_API void nde_input_destroy(nde_input *in);

/* Row r's series: nknots (1..knots_max) increasing times t and
 * nknots x channels values u (copied). NDE_EINVAL, said, otherwise. */
NDE_API int nde_input_set_row(nde_input *in, size_t r, size_t nknots,
                              const double *t, const double *u);
/* The rows in use from now on: 0..rows-1, each set (NDE_EINVAL, said,
 * when rows is 0, above rows_max or a row is unset). */
NDE_API int nde_input_use_rows(nde_input *in, size_t rows);

NDE_API size_t nde_input_channels(const nde_input *in);
NDE_API int nde_input_kind(const nde_input *in);

/* The knots of the rows in use, increasing, each once (the tstops the
 * driver adds); their count, the list into *t (owned by the input, valid
 * until rows change). */
NDE_API size_t nde_input_knots(const nde_input *in, const double **t);

/* Select every row's segment for a step over [t, t + h] (h may be
 * negative): the one holding t + h/2; h = 0 selects by t itself (the
 * segment starting at a knot at t). Allocation-free. */
NDE_API void nde_input_select(nde_input *in, double t, double h);

/* The (t, h) of the last selection, to restore it after a nested
 * replay (an adjoint that regenerates forward steps inside a backward
 * one). */
NDE_API void nde_input_selected(const nde_input *in, double *t, double *h);

/* Is t one of the knots of the rows in use (where a solve dropped its
 * FSAL stage)? */
NDE_API int nde_input_has_knot(const nde_input *in, double t);

/* Rows read as row0 + r from now on (per-row solves; 0 otherwise). */
NDE_API void nde_input_set_row0(nde_input *in, size_t row0);

/* u(t) of row r (after the row offset) on its selected segment into u
 * (channels values). t outside the segment extrapolates the segment's
 * piece (the driver never asks so). */
NDE_API void nde_input_value(const nde_input *in, size_t r, double t,
                             double *u);

/* du[i] = u_i(tb) - u_i(ta) for the first n channels of row r (after the
 * row offset), at any ta, tb (held values outside the knots), whatever
 * segment is selected: a controlled equation's dX over a step (nde/field.h,
 * control_dim). For a NDE_INPUT_LINEAR input only (a constant input's
 * jumps would fall into whichever step holds them): NDE_EINVAL, said,
 * otherwise or when n exceeds the channels. */
NDE_API int nde_input_increment(const nde_input *in, size_t r, double ta,
                                double tb, size_t n, double *du);

#ifdef __cplusplus
}
#endif
#endif
