/*
 * floor_kernels.c - the mlp's own layer kernels (plugins/fields/
 * mlp_kernels.c, compiled again here per instruction set with the
 * plugin's flags) made reachable for bench_floor, which times them on the
 * shapes of the thin layers they run. The kernel sets' symbols are
 * renamed so as not to clash with the plugin's copies linked next to
 * them.
 */
#define mlp_kernels_v4 floor_mlp_v4
#define mlp_kernels_v3 floor_mlp_v3
#define mlp_kernels_base floor_mlp_base
#include "mlp_kernels.c"

#include "floor_kernels.h"

static void fwd(const mlp_layer *ly, const double *theta, const double *x,
                double *z, size_t ld)
{
    layer_forward(ly, theta, x, z, ld);
}

static void bwd(const mlp_layer *ly, const double *theta, const double *x,
                const double *g, double *gx, double *vtheta, size_t batch,
                size_t ld)
{
    const mlp_block all = {0, ld, batch, 0};
    if (vtheta)
        layer_params(ly, x, g, vtheta, &all, 1, 0, ly->out);
    if (gx)
        layer_cotangent(ly, theta, g, gx, ld);
}

/* act is never lipswish here (bench_floor times tanh and sigmoid), so no
 * sigmoids are passed. */
static void deriv(int act, const double *h, double *g, size_t n)
{
    multiply_derivative(act, h, NULL, g, n);
}

#if MLP_ISA == 4
const floor_layer_kernels floor_kernels_v4 = {MLP_KERNELS_NAME, fwd, bwd,
                                              deriv};
#elif MLP_ISA == 3
const floor_layer_kernels floor_kernels_v3 = {MLP_KERNELS_NAME, fwd, bwd,
                                              deriv};
#else
const floor_layer_kernels floor_kernels_base = {MLP_KERNELS_NAME, fwd, bwd,
                                                deriv};
#endif
