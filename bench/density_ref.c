/*
 * density_ref.c - the limits of the density task's test NLL: on the test
 * points the task generates for a seed (the same draws: density_data.c
 * from nde_seed_derive(seed, NDE_STREAM_NOISE), n_train points first),
 * the true density's own mean NLL where it is known in closed form (8
 * Gaussians, checkerboard) and the NLL of the Gaussian fitted to the
 * training points, in nats.
 *
 * Run: build/bench/bench_density_ref [--seed S] [--n_train N]
 *          [--n_test N]            (defaults: the task's, 1, 10000, 5000)
 * One line per density: name, true NLL (or nan), Gaussian NLL.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "density_data.h"
#include "nde/nde.h"
#include "nde/train.h"

static int usage(void)
{
    fprintf(stderr, "usage: bench_density_ref [--seed S] [--n_train N] "
            "[--n_test N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    unsigned long long seed = 1;
    long ntr = 10000, nte = 5000;

    for (int i = 1; i < argc; i += 2) {
        char *end;
        if (i + 1 >= argc)
            return usage();
        long long v = strtoll(argv[i + 1], &end, 10);
        if (*end || v < 1)
            return usage();
        if (strcmp(argv[i], "--seed") == 0)
            seed = (unsigned long long)v;
        else if (strcmp(argv[i], "--n_train") == 0)
            ntr = (long)v;
        else if (strcmp(argv[i], "--n_test") == 0)
            nte = (long)v;
        else
            return usage();
    }
    double *xtr = malloc((size_t)ntr * 2 * sizeof *xtr);
    double *xte = malloc((size_t)nte * 2 * sizeof *xte);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!xtr || !xte || !r)
        return 1;
    printf("density          true_nll  gaussian_nll  (seed %llu, %ld test "
           "points)\n", seed, nte);
    for (int k = 0; density_names[k]; k++) {
        double nll = NAN;
        gsl_rng_set(r, nde_seed_derive(seed, NDE_STREAM_NOISE));
        density_sample(k, r, (size_t)ntr, xtr);
        density_sample(k, r, (size_t)nte, xte);
        if (density_has_log_pdf(k)) {
            nll = 0.0;
            for (long i = 0; i < nte; i++)
                nll -= density_log_pdf(k, xte + 2 * i) / (double)nte;
        }
        printf("%-16s %8.4f  %12.4f\n", density_names[k], nll,
               density_gaussian_nll(xtr, (size_t)ntr, xte, (size_t)nte));
    }
    gsl_rng_free(r);
    free(xtr);
    free(xte);
    return 0;
}
