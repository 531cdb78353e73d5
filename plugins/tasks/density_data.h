/*
 * The 2-D toy densities of FFJORD's experiments (Grathwohl et al., ICLR
 * 2019, fig. 2; generated as in rtqichen/ffjord, lib/toy_data.py), their
 * log-densities where known in closed form, and the NLL of a Gaussian
 * fitted to a sample: compiled into the density task and into
 * bench/density_ref, which prints the limits the task's test NLL is
 * measured against.
 */
#ifndef NDE_DENSITY_DATA_H
#define NDE_DENSITY_DATA_H

#include <stddef.h>

#include <gsl/gsl_rng.h>

enum density_kind { DENSITY_EIGHT_GAUSSIANS, DENSITY_TWO_MOONS,
                    DENSITY_PINWHEEL, DENSITY_CHECKERBOARD };

/* "eight_gaussians", "two_moons", "pinwheel", "checkerboard", NULL. */
extern const char *const density_names[];

/* n points (n x 2) of density k, drawn in order from r. */
void density_sample(int k, gsl_rng *r, size_t n, double *x);

/* Whether density k has a closed-form log-density, and log p(x) then. */
int density_has_log_pdf(int k);
double density_log_pdf(int k, const double *x);

/* The mean NLL (nats) on test (nte x 2) of the Gaussian of the mean and
 * covariance (maximum likelihood) of train (ntr x 2). */
double density_gaussian_nll(const double *train, size_t ntr,
                            const double *test, size_t nte);

#endif
