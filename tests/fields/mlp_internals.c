/* Gives the tests access to the mlp plugin's static tanh: the module's own
 * source, compiled with the module's flags, plus one exported wrapper. */
#include "mlp.c"

void mlp_internal_tanh(double *x, size_t n);

void mlp_internal_tanh(double *x, size_t n)
{
    mlp_tanh_array(x, n);
}
