/* Gives the tests access to the mlp plugin's static tanh: the module's own
 * source, compiled with the module's flags, plus exported wrappers. */
#include "mlp.c"

void mlp_internal_tanh(double *x, size_t n);
void mlp_internal_tanh_baseline(double *x, size_t n);

/* The version the module runs on this CPU (picked among the clones). */
void mlp_internal_tanh(double *x, size_t n)
{
    mlp_tanh_array(x, n);
}

/* The same formula built for baseline x86-64 (no FMA), whatever the CPU. */
void mlp_internal_tanh_baseline(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = mlp_tanh1(x[i]);
}
