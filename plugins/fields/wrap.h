/*
 * wrap.h - the inner field of a wrapper field (second_order, controlled,
 * cnf): a field that changes how another one's outputs are used, the
 * other configured in its own section [field.NAME] named by the `inner`
 * key. A wrapper's state starts with a field_wrap; its parameters are
 * the inner field's.
 */
#ifndef NDE_FIELDS_WRAP_H
#define NDE_FIELDS_WRAP_H

#include <nde/field.h>

/* Create the ODE field named by sec's `inner` key (its name into *name,
 * the section's) for f's batch_max into *inner (owned by the caller, to
 * be destroyed also on failure). `what`
 * names the wrapper in messages ("a second-order field"). NDE_ECONFIG,
 * naming the key, when the section is missing or the field has a
 * diffusion. */
typedef struct field_wrap {
    nde_field *inner;
    double *buf;     /* batch_max x the inner dim, or NULL: the inner
                        field's output or cotangent (field_wrap_buf)  */
} field_wrap;

/* The ops a wrapper takes from its inner field as they are. */
int field_wrap_init_params(nde_field *f, double *theta, uint64_t seed);
int field_wrap_param_name(const nde_field *f, size_t i, char *buf,
                          size_t len);
/* Allocate w->buf once w->inner exists; NDE_ENOMEM (said) when out of
 * memory. */
int field_wrap_buf(nde_field *f, field_wrap *w, nde_ctx *ctx);
/* destroy for a wrapper whose state holds nothing else to free. */
void field_wrap_destroy(nde_field *f);

int field_wrap_inner(nde_field *f, nde_section *sec, const char *what,
                     nde_ctx *ctx, const char **name, nde_field **inner);

/* A part of a composed field (hybrid, sde_gan, a wrapper's inner): the
 * field of section [field.NAME], NAME the value of sec's `key` (into
 * *name), for f's batch_max into *part (owned by the caller, to be
 * destroyed also on failure). NDE_ECONFIG naming the key when the
 * section is missing. */
int field_part_create(nde_field *f, nde_section *sec, const char *key,
                      nde_ctx *ctx, const char **name, nde_field **part);

#endif
