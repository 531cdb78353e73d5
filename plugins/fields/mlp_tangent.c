/*
 * The mlp drift's Jacobian-vector product and the VJP of that product (a
 * second derivative, for the trace of a continuous normalizing flow), row
 * by row in plain scalar loops: a forward pass carrying the tangent
 * (z_l, zd_l = dz_l/dy v), then one reverse pass over both.
 *
 * Per row, with x = c(y) (c the `input` transform, t appended under
 * `time`), xd = c'(y) v (0 for t), a_0 = x, and for each layer
 *     z_l = W_l a_{l-1} + b_l,   zd_l = W_l ad_{l-1},
 *     a_l = s(z_l),              ad_l = s'(z_l) zd_l,
 * s the hidden layers' activations and the output's (the identity but
 * under `output = tanh`), J v = ad_L. The reverse pass of Phi = w . ad_L
 * carries the cotangents of z_l (zb) and of zd_l (zdb),
 * zdb_L = s' w, zb_L = s'' zd_L w (w and 0 for the identity):
 *     dW_l += zdb_l ad_{l-1}^T + zb_l a_{l-1}^T,   db_l += zb_l,
 *     adb = W_l^T zdb_l,  ab = W_l^T zb_l,
 *     zdb_{l-1} = s' adb,  zb_{l-1} = s' ab + s'' zd_{l-1} adb,
 * and at the input vy += c'(y) ab + c''(y) v adb. The activations are
 * the kernels' own (as eval's); s' and s'' are kept from the forward pass.
 */
#include <math.h>

#include "mlp.h"

/* s'(z) and s''(z) of a hidden layer's activation from z and h = s(z)
 * (as the kernels computed it). */
static void derivatives(int act, double z, double h, double *d1, double *d2)
{
    switch (act) {
    case ACT_TANH:
        *d1 = 1.0 - h * h;
        *d2 = -2.0 * h * *d1;
        break;
    case ACT_RELU:
        *d1 = z > 0.0 ? 1.0 : 0.0;
        *d2 = 0.0;
        break;
    case ACT_SOFTPLUS:
    case ACT_SOFTPLUS_VECTOR: {
        const double e = exp(-fabs(z)), sg = (z >= 0.0 ? 1.0 : e) / (1.0 + e);
        *d1 = sg;
        *d2 = sg * (1.0 - sg);
        break;
    }
    case ACT_LIPSWISH: {
        /* s = 0.909 z sg: s' = 0.909 (sg + z sg (1 - sg)),
         * s'' = 0.909 sg (1 - sg) (2 + z (1 - 2 sg)) */
        const double e = exp(-fabs(z)), sg = (z >= 0.0 ? 1.0 : e) / (1.0 + e);
        const double q = sg * (1.0 - sg);
        *d1 = MLP_LIPSWISH * (sg + z * q);
        *d2 = MLP_LIPSWISH * q * (2.0 + z * (1.0 - 2.0 * sg));
        break;
    }
    default:
        *d1 = 1.0;
        *d2 = 0.0;
        break;
    }
}

/* The scratch of one row: zd, a, ad, s', s'' of every layer (offsets of
 * the layers' outputs), then x, xd (in0), then the four cotangents
 * (maxw). */
int mlp_tangent_alloc(mlp_state *s)
{
    const mlp_net *n = &s->drift;
    size_t outs = 0, maxw = n->in0;

    for (size_t l = 0; l < n->nlayers; l++) {
        outs += n->layer[l].out;
        if (n->layer[l].out > maxw)
            maxw = n->layer[l].out;
    }
    s->tan_maxw = maxw;
    s->tan = malloc((5 * outs + 2 * n->in0 + 4 * maxw) * sizeof *s->tan);
    return s->tan ? NDE_OK : NDE_ENOMEM;
}

/* Offset of layer l's block of out values in each of the four arrays. */
static size_t layer_off(const mlp_net *n, size_t l)
{
    size_t off = 0;
    for (size_t k = 0; k < l; k++)
        off += n->layer[k].out;
    return off;
}

/* The forward pass of one row: tangent of y along v; returns 0 or 1 when
 * a value is not finite. */
static int forward_row(const mlp_state *s, double t, const double *y,
                       const double *theta, const double *v, size_t dim)
{
    const mlp_net *n = &s->drift;
    const size_t outs = layer_off(n, n->nlayers);
    double *zd = s->tan, *a = zd + outs, *ad = a + outs, *d1 = ad + outs;
    double *d2 = d1 + outs, *x = d2 + outs, *xd = x + n->in0;
    int bad = 0;

    for (size_t i = 0; i < dim; i++) {
        x[i] = n->cube ? y[i] * y[i] * y[i] : y[i];
        xd[i] = n->cube ? 3.0 * y[i] * y[i] * v[i] : v[i];
    }
    if (n->time) {
        x[dim] = t;
        xd[dim] = 0.0;
    }
    const double *in = x, *ind = xd;
    for (size_t l = 0, off = 0; l < n->nlayers; l++) {
        const mlp_layer *ly = &n->layer[l];
        const double *W = theta + ly->w_off, *b = theta + ly->b_off;
        const int act = l + 1 < n->nlayers ? ly->act : n->out_act;
        for (size_t o = 0; o < ly->out; o++) {
            double zo = b[o], zdo = 0.0;
            for (size_t i = 0; i < ly->in; i++) {
                zo += W[o * ly->in + i] * in[i];
                zdo += W[o * ly->in + i] * ind[i];
            }
            zd[off + o] = zdo;
            a[off + o] = zo; /* z until activated below */
            bad |= !isfinite(zdo);
        }
        if (act != ACT_IDENTITY) {
            /* the kernels' own activation, as eval's */
            memcpy(d2 + off, a + off, ly->out * sizeof *a); /* keep z */
            s->kernels->activate(act, a + off, ly->out);
            for (size_t o = off; o < off + ly->out; o++) {
                derivatives(act, d2[o], a[o], &d1[o], &d2[o]);
                ad[o] = d1[o] * zd[o];
            }
        } else {
            for (size_t o = off; o < off + ly->out; o++) {
                d1[o] = 1.0;
                d2[o] = 0.0;
                ad[o] = zd[o];
            }
        }
        in = a + off;
        ind = ad + off;
        off += ly->out;
    }
    return bad;
}

int mlp_jvp(nde_field *f, double t, const double *y, const double *theta,
            const double *v, double *jv, size_t batch)
{
    const mlp_state *s = f->state;
    const mlp_net *n = &s->drift;
    const size_t d = f->dim, last = layer_off(n, n->nlayers - 1);
    const size_t outs = layer_off(n, n->nlayers);
    const double *ad = s->tan + 2 * outs;
    int bad = 0;

    for (size_t r = 0; r < batch; r++) {
        bad |= forward_row(s, t, y + r * d, theta, v + r * d, d);
        memcpy(jv + r * d, ad + last, d * sizeof *jv);
    }
    return bad ? NDE_ERETRY : NDE_OK;
}

int mlp_jvp_vjp(nde_field *f, double t, const double *y, const double *theta,
                const double *v, const double *w, double *vy, double *vtheta,
                size_t batch)
{
    const mlp_state *s = f->state;
    const mlp_net *n = &s->drift;
    const size_t d = f->dim, outs = layer_off(n, n->nlayers);
    const size_t maxw = s->tan_maxw, last = layer_off(n, n->nlayers - 1);
    const double *zd = s->tan, *a = zd + outs, *ad = a + outs;
    const double *d1 = ad + outs, *d2 = d1 + outs;
    const double *x = d2 + outs, *xd = x + n->in0;
    double *zb = s->tan + 5 * outs + 2 * n->in0, *zdb = zb + maxw;
    double *ab = zdb + maxw, *adb = ab + maxw;
    int bad = 0;

    for (size_t r = 0; r < batch; r++) {
        const double *yr = y + r * d, *vr = v + r * d;
        bad |= forward_row(s, t, yr, theta, vr, d);
        for (size_t o = 0; o < d; o++) {
            zdb[o] = w[r * d + o];
            zb[o] = 0.0;
            if (n->out_act != ACT_IDENTITY) {
                zb[o] = d2[last + o] * zd[last + o] * zdb[o];
                zdb[o] *= d1[last + o];
            }
        }
        for (size_t l = n->nlayers; l-- > 0;) {
            const mlp_layer *ly = &n->layer[l];
            const double *W = theta + ly->w_off;
            const size_t pin = l ? layer_off(n, l - 1) : 0;
            const double *in = l ? a + pin : x, *ind = l ? ad + pin : xd;
            for (size_t i = 0; i < ly->in; i++)
                ab[i] = adb[i] = 0.0;
            for (size_t o = 0; o < ly->out; o++) {
                const double *Wo = W + o * ly->in;
                const double zbo = zb[o], zdbo = zdb[o];
                if (vtheta) {
                    double *go = vtheta + ly->w_off + o * ly->in;
                    for (size_t i = 0; i < ly->in; i++) {
                        ab[i] += Wo[i] * zbo;
                        adb[i] += Wo[i] * zdbo;
                        go[i] += zdbo * ind[i] + zbo * in[i];
                    }
                    vtheta[ly->b_off + o] += zbo;
                } else {
                    for (size_t i = 0; i < ly->in; i++) {
                        ab[i] += Wo[i] * zbo;
                        adb[i] += Wo[i] * zdbo;
                    }
                }
            }
            if (l == 0)
                break;
            for (size_t i = 0; i < ly->in; i++) {
                zdb[i] = d1[pin + i] * adb[i];
                zb[i] = d1[pin + i] * ab[i] + d2[pin + i] * zd[pin + i] * adb[i];
            }
        }
        if (!vy)
            continue;
        for (size_t i = 0; i < d; i++) {
            const double c1 = n->cube ? 3.0 * yr[i] * yr[i] : 1.0;
            const double c2 = n->cube ? 6.0 * yr[i] : 0.0;
            vy[r * d + i] += c1 * ab[i] + c2 * vr[i] * adb[i];
            bad |= !isfinite(vy[r * d + i]);
        }
    }
    return bad ? NDE_ERETRY : NDE_OK;
}
