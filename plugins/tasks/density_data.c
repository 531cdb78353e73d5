/*
 * The toy densities (density_data.h). Constants from rtqichen/ffjord,
 * lib/toy_data.py (inf_train_gen): the generators are written anew from
 * those definitions, each draw through GSL.
 */
#include <math.h>

#include <gsl/gsl_randist.h>

#include "density_data.h"

const char *const density_names[] = {"eight_gaussians", "two_moons",
                                     "pinwheel", "checkerboard", NULL};

/* 8gaussians: centres at radius 4 on the 8 compass directions, std 0.5,
 * all divided by 1.414. */
#define G8_SCALE 4.0
#define G8_STD 0.5
#define G8_DIV 1.414

/* moons: sklearn's make_moons with noise 0.1, then x 2 + (-1, -0.2);
 * the angle uniform on [0, pi] (sklearn spaces it evenly). */
#define MOONS_NOISE 0.1

/* pinwheel: 5 arms, radial std 0.3, tangential std 0.1, rate 0.25, x 2. */
#define PW_ARMS 5
#define PW_RADIAL 0.3
#define PW_TANGENTIAL 0.1
#define PW_RATE 0.25

static void eight_gaussians(gsl_rng *r, double *x)
{
    const int k = (int)gsl_rng_uniform_int(r, 8);
    const double phi = M_PI / 4.0 * k;
    x[0] = (G8_SCALE * cos(phi) + gsl_ran_gaussian(r, G8_STD)) / G8_DIV;
    x[1] = (G8_SCALE * sin(phi) + gsl_ran_gaussian(r, G8_STD)) / G8_DIV;
}

static void two_moons(gsl_rng *r, size_t i, double *x)
{
    const double th = M_PI * gsl_rng_uniform(r);
    double u = cos(th), v = sin(th);
    if (i % 2) { /* the inner moon */
        u = 1.0 - u;
        v = 0.5 - v;
    }
    x[0] = 2.0 * (u + gsl_ran_gaussian(r, MOONS_NOISE)) - 1.0;
    x[1] = 2.0 * (v + gsl_ran_gaussian(r, MOONS_NOISE)) - 0.2;
}

static void pinwheel(gsl_rng *r, double *x)
{
    const int arm = (int)gsl_rng_uniform_int(r, PW_ARMS);
    const double f0 = 1.0 + gsl_ran_gaussian(r, PW_RADIAL);
    const double f1 = gsl_ran_gaussian(r, PW_TANGENTIAL);
    const double a = 2.0 * M_PI * arm / PW_ARMS + PW_RATE * exp(f0);
    x[0] = 2.0 * (f0 * cos(a) + f1 * sin(a));
    x[1] = 2.0 * (-f0 * sin(a) + f1 * cos(a));
}

/* x1 = 2 u, u ~ U[-2, 2); x2 = 2 (v - 2 b + floor(u) mod 2), v ~ U[0, 1),
 * b ~ {0, 1}: uniform on the 8 squares of side 2 in [-4, 4)^2 whose
 * floor(x1 / 2) + floor(x2 / 2) is even. */
static void checkerboard(gsl_rng *r, double *x)
{
    const double u = 4.0 * gsl_rng_uniform(r) - 2.0;
    const double v = gsl_rng_uniform(r);
    const double b = (double)gsl_rng_uniform_int(r, 2);
    const double s = fmod(floor(u), 2.0) != 0.0 ? 1.0 : 0.0;
    x[0] = 2.0 * u;
    x[1] = 2.0 * (v - 2.0 * b + s);
}

void density_sample(int k, gsl_rng *r, size_t n, double *x)
{
    for (size_t i = 0; i < n; i++)
        switch (k) {
        case DENSITY_EIGHT_GAUSSIANS:
            eight_gaussians(r, x + 2 * i);
            break;
        case DENSITY_TWO_MOONS:
            two_moons(r, i, x + 2 * i);
            break;
        case DENSITY_PINWHEEL:
            pinwheel(r, x + 2 * i);
            break;
        default:
            checkerboard(r, x + 2 * i);
            break;
        }
}

int density_has_log_pdf(int k)
{
    return k == DENSITY_EIGHT_GAUSSIANS || k == DENSITY_CHECKERBOARD;
}

double density_log_pdf(int k, const double *x)
{
    if (k == DENSITY_CHECKERBOARD) {
        const double a = floor(x[0] / 2.0), b = floor(x[1] / 2.0);
        const int in = fabs(x[0]) <= 4.0 && fabs(x[1]) <= 4.0 &&
                       fmod(a + b, 2.0) == 0.0;
        return in ? -log(32.0) : -INFINITY;
    }
    /* the mixture by log-sum-exp over its 8 equal parts */
    const double s = G8_STD / G8_DIV, m = G8_SCALE / G8_DIV;
    double q[8], top = -INFINITY, sum = 0.0;
    for (int c = 0; c < 8; c++) {
        const double dx = x[0] - m * cos(M_PI / 4.0 * c);
        const double dy = x[1] - m * sin(M_PI / 4.0 * c);
        q[c] = -(dx * dx + dy * dy) / (2.0 * s * s);
        top = fmax(top, q[c]);
    }
    for (int c = 0; c < 8; c++)
        sum += exp(q[c] - top);
    return top + log(sum / 8.0) - log(2.0 * M_PI * s * s);
}

double density_gaussian_nll(const double *train, size_t ntr,
                            const double *test, size_t nte)
{
    double m0 = 0.0, m1 = 0.0, s00 = 0.0, s01 = 0.0, s11 = 0.0, nll = 0.0;
    for (size_t i = 0; i < ntr; i++) {
        m0 += train[2 * i] / (double)ntr;
        m1 += train[2 * i + 1] / (double)ntr;
    }
    for (size_t i = 0; i < ntr; i++) {
        const double a = train[2 * i] - m0, b = train[2 * i + 1] - m1;
        s00 += a * a / (double)ntr;
        s01 += a * b / (double)ntr;
        s11 += b * b / (double)ntr;
    }
    const double det = s00 * s11 - s01 * s01;
    for (size_t i = 0; i < nte; i++) {
        const double a = test[2 * i] - m0, b = test[2 * i + 1] - m1;
        nll += 0.5 * (s11 * a * a - 2.0 * s01 * a * b + s00 * b * b) / det;
    }
    return nll / (double)nte + 0.5 * log(det) + log(2.0 * M_PI);
}
