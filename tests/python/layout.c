/*
 * The layout of the structs python/nde/_lib.py mirrors with ctypes: one
 * line "struct size" per struct and "struct.member offset" per member,
 * which test_nde.py compares with the mirrors, so a changed header fails
 * the python suite instead of reading wrong numbers.
 */
#include <stddef.h>
#include <stdio.h>
#include <nde/nde.h>
#include <nde/train.h>

#define S(type) printf("%s %zu\n", #type, sizeof(type))
#define M(type, member) \
    printf("%s.%s %zu\n", #type, #member, offsetof(type, member))

int main(void)
{
    S(nde_train_step);
    M(nde_train_step, iteration); M(nde_train_step, loss);
    M(nde_train_step, grad_norm); M(nde_train_step, reg);
    M(nde_train_step, data_loss); M(nde_train_step, nfe_forward);
    M(nde_train_step, nfe_backward); M(nde_train_step, steps_accepted);
    M(nde_train_step, steps_rejected); M(nde_train_step, time_s);
    M(nde_train_step, data_grad_norm); M(nde_train_step, failed);
    S(nde_eval_result);
    M(nde_eval_result, test_loss); M(nde_eval_result, test_accuracy);
    M(nde_eval_result, nfe); M(nde_eval_result, time_s);
    S(nde_train_totals);
    M(nde_train_totals, nfe_forward); M(nde_train_totals, nfe_backward);
    M(nde_train_totals, time_s); M(nde_train_totals, failures);
    M(nde_train_totals, lr_scale);
    S(nde_train_settings);
    M(nde_train_settings, iterations); M(nde_train_settings, batch_size);
    M(nde_train_settings, eval_every);
    M(nde_train_settings, checkpoint_every); M(nde_train_settings, lr);
    M(nde_train_settings, lr_decay); M(nde_train_settings, beta1);
    M(nde_train_settings, beta2); M(nde_train_settings, eps);
    M(nde_train_settings, weight_decay); M(nde_train_settings, clip);
    M(nde_train_settings, seed); M(nde_train_settings, checkpoint);
    M(nde_train_settings, metrics);
    M(nde_train_settings, refuse_changed_data);
    M(nde_train_settings, on_failure); M(nde_train_settings, max_failures);
    M(nde_train_settings, adversary_lr);
    M(nde_train_settings, adversary_clip);
    M(nde_train_settings, average_from);
    M(nde_train_settings, optimizer); M(nde_train_settings, rho);
    S(nde_stats);
    M(nde_stats, nfe); M(nde_stats, nfe_backward);
    M(nde_stats, steps_accepted); M(nde_stats, steps_rejected);
    M(nde_stats, retries); M(nde_stats, h_min); M(nde_stats, h_max);
    M(nde_stats, status);
    S(nde_problem);
    M(nde_problem, t0); M(nde_problem, t1); M(nde_problem, batch);
    M(nde_problem, dim); M(nde_problem, y0); M(nde_problem, nsave);
    M(nde_problem, tsave); M(nde_problem, ntstops); M(nde_problem, tstops);
    /* Only the leading members up to dim are mirrored. */
    M(nde_field, type); M(nde_field, ctx); M(nde_field, batch_max);
    M(nde_field, dim); M(nde_field, nparams);
    return 0;
}
