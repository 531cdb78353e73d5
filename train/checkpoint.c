/*
 * Checkpoints of a trainer (format in nde/train.h): parameters, optimizer
 * state, iteration, totals, the data's digest, the plugins used (name,
 * version, module build signature), the sampling RNG's type and state and
 * the effective config in canonical form, behind a magic, a version, a
 * byte-order mark and a crc32.
 *
 * The crc32 only catches accidents: the loader checks every field against
 * what the trainer can have written, so a crafted file is refused with a
 * message, never used.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "train_internal.h"

static const char ckpt_magic[8] = {'N', 'D', 'E', 'C', 'K', 'P', 'T', '1'};
#define CKPT_BOM 0x01020304u
#define CKPT_HEADER (8 + 4 + 4 + 8 + 4)

/* [train] keys that do not change the numbers of a run: a resumed run may
 * set them differently (more iterations, another metrics file). */
static const char *const resume_free_keys[] = {
    "iterations", "eval_every", "checkpoint", "checkpoint_every", "metrics",
    "data_changed", "on_failure", "max_failures", NULL};

/* Most plugins a checkpoint records: field, solver, adjoint and up to 61
 * regularizers. */
#define CKPT_MAX_COMPONENTS 64

/* The plugins of tr's run, in a fixed order: field, solver, adjoint, the
 * regularizers in order, the task. Their count (at most max). */
static size_t run_components(const nde_trainer *tr,
                             const nde_plugin_info **out, size_t max)
{
    size_t n = 0, i;

    out[n++] = &tr->field->type->info;
    out[n++] = &tr->solver->type->info;
    out[n++] = &tr->adj->type->info;
    for (i = 0; i < tr->nregs && n < max; i++)
        out[n++] = &tr->regs[i].r->type->info;
    if (n < max)
        out[n++] = &tr->task->type->info;
    return n;
}

/* A descriptor made in a program rather than loaded from a module may
 * leave its version unset. */
static const char *version_of(const nde_plugin_info *info)
{
    return info->version ? info->version : "0";
}

static char *config_text(const nde_config *cfg, size_t *len)
{
    char *buf = NULL;
    FILE *fp = open_memstream(&buf, len);

    if (!fp)
        return NULL;
    if (nde_config_write_canonical(cfg, fp) != NDE_OK) {
        fclose(fp);
        free(buf);
        return NULL;
    }
    if (fclose(fp) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int nde_trainer_checkpoint_write(const nde_trainer *tr, FILE *out)
{
    const nde_plugin_info *comp[CKPT_MAX_COMPONENTS];
    char *cfgtext, *payload = NULL;
    size_t cfglen, plen = 0, rngsize, ncomp, i;
    uint64_t u64;
    int64_t i64;
    uint32_t u32;
    FILE *fp;
    int ok;

    if (!(cfgtext = config_text(tr->cfg, &cfglen)))
        return nde_error(tr->ctx, NDE_ENOMEM, "checkpoint: out of memory");
    if (!(fp = open_memstream(&payload, &plen))) {
        free(cfgtext);
        return nde_error(tr->ctx, NDE_ENOMEM, "checkpoint: out of memory");
    }
    u64 = cfglen;
    fwrite(&u64, 8, 1, fp);
    fwrite(cfgtext, 1, cfglen, fp);
    u64 = tr->P;
    fwrite(&u64, 8, 1, fp);
    i64 = tr->iter;
    fwrite(&i64, 8, 1, fp);
    i64 = tr->opt_steps;
    fwrite(&i64, 8, 1, fp);
    fwrite(tr->theta, sizeof(double), tr->P, fp);
    fwrite(tr->m, sizeof(double), tr->P, fp);
    fwrite(tr->v, sizeof(double), tr->P, fp);
    i64 = tr->tot.nfe_forward;
    fwrite(&i64, 8, 1, fp);
    i64 = tr->tot.nfe_backward;
    fwrite(&i64, 8, 1, fp);
    fwrite(&tr->tot.time_s, sizeof(double), 1, fp);
    fwrite(&tr->data_digest, 8, 1, fp);
    i64 = tr->tot.failures;
    fwrite(&i64, 8, 1, fp);
    fwrite(&tr->tot.lr_scale, sizeof(double), 1, fp);
    fwrite(&tr->run_id, 8, 1, fp);
    i64 = tr->navg;
    fwrite(&i64, 8, 1, fp);
    if (tr->navg > 0)
        fwrite(tr->avg, sizeof(double), tr->P, fp);
    ncomp = run_components(tr, comp, CKPT_MAX_COMPONENTS);
    u64 = ncomp;
    fwrite(&u64, 8, 1, fp);
    for (i = 0; i < ncomp; i++) {
        const char *version = version_of(comp[i]);
        u32 = (uint32_t)comp[i]->kind;
        fwrite(&u32, 4, 1, fp);
        u32 = nde_plugin_build_signature(tr->ctx, comp[i]);
        fwrite(&u32, 4, 1, fp);
        u64 = strlen(comp[i]->name);
        fwrite(&u64, 8, 1, fp);
        fwrite(comp[i]->name, 1, (size_t)u64, fp);
        u64 = strlen(version);
        fwrite(&u64, 8, 1, fp);
        fwrite(version, 1, (size_t)u64, fp);
    }
    u64 = strlen(gsl_rng_name(tr->rng));
    fwrite(&u64, 8, 1, fp);
    fwrite(gsl_rng_name(tr->rng), 1, (size_t)u64, fp);
    rngsize = gsl_rng_size(tr->rng);
    u64 = rngsize;
    fwrite(&u64, 8, 1, fp);
    fwrite(gsl_rng_state(tr->rng), 1, rngsize, fp);
    ok = !ferror(fp);
    if (fclose(fp) != 0)
        ok = 0;
    free(cfgtext);
    if (!ok) {
        free(payload);
        return nde_error(tr->ctx, NDE_ENOMEM, "checkpoint: out of memory");
    }
    fwrite(ckpt_magic, 1, 8, out);
    u32 = NDE_CHECKPOINT_VERSION;
    fwrite(&u32, 4, 1, out);
    u32 = CKPT_BOM;
    fwrite(&u32, 4, 1, out);
    u64 = plen;
    fwrite(&u64, 8, 1, out);
    u32 = (uint32_t)crc32_z(0L, (const Bytef *)payload, plen);
    fwrite(&u32, 4, 1, out);
    fwrite(payload, 1, plen, out);
    free(payload);
    return ferror(out) ? nde_error(tr->ctx, NDE_EIO,
                                   "checkpoint: write error: %s",
                                   strerror(errno))
                       : NDE_OK;
}

/* ---- reading ------------------------------------------------------------- */

typedef struct ckpt {
    unsigned char *data;
    size_t len, pos;       /* within the payload                        */
    const char *path;
    uint32_t version;      /* 3 to NDE_CHECKPOINT_VERSION               */
} ckpt;

static int bad(nde_ctx *ctx, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(nde_ctx *ctx, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    nde_verror(ctx, NDE_ECONFIG, fmt, ap);
    va_end(ap);
    nde_error_prefix(ctx, "%s: not a usable checkpoint", path);
    return NDE_ECONFIG;
}

static int take(ckpt *c, void *dst, size_t n)
{
    if (c->len - c->pos < n)
        return -1;
    memcpy(dst, c->data + c->pos, n);
    c->pos += n;
    return 0;
}

/* Read up to c->len payload bytes into c->data (malloc'd, one byte more),
 * the buffer growing with what the file holds: the header's length alone
 * never decides an allocation (a 28-byte file claimed a terabyte). The
 * count read, or (size_t)-1 when out of memory (c->data freed). */
static size_t read_payload(FILE *fp, ckpt *c)
{
    size_t cap = 0, got = 0, want;
    unsigned char *grown;

    do {
        want = cap ? cap : (size_t)1 << 20; /* the buffer doubles */
        if (want > c->len - got)
            want = c->len - got;
        if (!(grown = realloc(c->data, got + want + 1))) {
            free(c->data);
            c->data = NULL;
            return (size_t)-1;
        }
        c->data = grown;
        cap = got + want;
        got += fread(c->data + got, 1, want, fp);
    } while (got == cap && got < c->len);
    return got;
}

/* Read and verify the file; c->data is the payload (c->data[-header]). */
static int ckpt_open(ckpt *c, const char *path, nde_ctx *ctx)
{
    unsigned char hdr[CKPT_HEADER];
    uint32_t version, bom, crc;
    uint64_t plen;
    FILE *fp;
    size_t got;

    memset(c, 0, sizeof *c);
    c->path = path;
    if (!(fp = fopen(path, "rb")))
        return nde_error(ctx, NDE_ECONFIG, "%s: cannot open checkpoint: %s",
                         path, strerror(errno));
    got = fread(hdr, 1, sizeof hdr, fp);
    if (got < 8 || memcmp(hdr, ckpt_magic, 8) != 0) {
        fclose(fp);
        return bad(ctx, path, got < 8 ? "truncated header"
                                      : "wrong magic (not an nde checkpoint)");
    }
    if (got < sizeof hdr) {
        fclose(fp);
        return bad(ctx, path, "truncated header");
    }
    memcpy(&version, hdr + 8, 4);
    memcpy(&bom, hdr + 12, 4);
    memcpy(&plen, hdr + 16, 8);
    memcpy(&crc, hdr + 24, 4);
    if (version < 3 || version > NDE_CHECKPOINT_VERSION) {
        fclose(fp);
        if (version < 3)
            return nde_error(ctx, NDE_ECONFIG,
                             "%s: checkpoint format version %u, written by "
                             "an older nde; this nde reads versions 3 to "
                             "%u only (train again to make one)",
                             path, version, NDE_CHECKPOINT_VERSION);
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: checkpoint format version %u, this nde reads "
                         "versions 3 to %u", path, version,
                         NDE_CHECKPOINT_VERSION);
    }
    c->version = version;
    if (bom != CKPT_BOM) {
        fclose(fp);
        return bad(ctx, path, "written on a machine of another byte order");
    }
    if (plen > ((uint64_t)1 << 40)) {
        fclose(fp);
        return bad(ctx, path, "implausible payload length");
    }
    c->len = (size_t)plen;
    if ((got = read_payload(fp, c)) == (size_t)-1) {
        fclose(fp);
        return nde_error(ctx, NDE_ENOMEM, "%s: out of memory reading the "
                         "checkpoint", path);
    }
    if (got < c->len) {
        fclose(fp);
        free(c->data);
        c->data = NULL;
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: checkpoint truncated (%zu of %zu payload "
                         "bytes)", path, got, c->len);
    }
    if (fgetc(fp) != EOF) {
        fclose(fp);
        free(c->data);
        c->data = NULL;
        return bad(ctx, path, "trailing bytes after the payload");
    }
    fclose(fp);
    if ((uint32_t)crc32_z(0L, c->data, c->len) != crc) {
        free(c->data);
        c->data = NULL;
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: checkpoint corrupted (crc32 mismatch)", path);
    }
    return NDE_OK;
}

/* The config text: a length within the payload, no NUL byte, and text
 * that the config reader accepts. */
static int ckpt_config(ckpt *c, char **text, nde_ctx *ctx)
{
    nde_config *scratch;
    uint64_t n = 0;
    int rc;

    if (take(c, &n, 8) != 0 || n == 0 || n > c->len - c->pos)
        return bad(ctx, c->path, "config length %llu is not within the "
                   "payload", (unsigned long long)n);
    if (memchr(c->data + c->pos, '\0', (size_t)n))
        return bad(ctx, c->path, "config text holds a NUL byte");
    if (!(*text = malloc((size_t)n + 1)) ||
        !(scratch = nde_config_create())) {
        free(*text);
        *text = NULL;
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    }
    take(c, *text, (size_t)n);
    (*text)[n] = '\0';
    rc = nde_config_load_string(scratch, c->path, *text, ctx);
    nde_config_destroy(scratch);
    if (rc != NDE_OK) {
        nde_error_prefix(ctx, "%s: not a usable checkpoint: config", c->path);
        free(*text);
        *text = NULL;
        return NDE_ECONFIG;
    }
    return NDE_OK;
}

int nde_checkpoint_read_config(const char *path, char **text, nde_ctx *ctx)
{
    ckpt c;
    int rc;

    *text = NULL;
    if ((rc = ckpt_open(&c, path, ctx)) != NDE_OK)
        return rc;
    rc = ckpt_config(&c, text, ctx);
    free(c.data);
    return rc;
}

/* The config text without the [train] keys a resumed run may change. */
static void strip_resume_free(char *text)
{
    char *src = text, *dst = text, *eol;
    int in_train = 0, skipping = 0;
    size_t i, len, klen;

    while (*src) {
        eol = strchr(src, '\n');
        len = eol ? (size_t)(eol - src) + 1 : strlen(src);
        if (src[0] == '[') {
            in_train = strncmp(src, "[train]", 7) == 0;
            skipping = 0;
        } else if (src[0] == ' ') {
            /* continuation row: follows the fate of its key */
        } else {
            skipping = 0;
            for (i = 0; in_train && resume_free_keys[i]; i++) {
                klen = strlen(resume_free_keys[i]);
                if (strncmp(src, resume_free_keys[i], klen) == 0 &&
                    strncmp(src + klen, " = ", 3) == 0)
                    skipping = 1;
            }
        }
        if (!skipping) {
            memmove(dst, src, len);
            dst += len;
        }
        src += len;
    }
    *dst = '\0';
}

/* First differing line of a and b, for the message. */
static void first_difference(const char *a, const char *b, char *buf,
                             size_t len)
{
    const char *la = a, *lb = b;
    while (*la && *lb) {
        const char *ea = strchr(la, '\n'), *eb = strchr(lb, '\n');
        size_t na = ea ? (size_t)(ea - la) : strlen(la);
        size_t nb = eb ? (size_t)(eb - lb) : strlen(lb);
        if (na != nb || memcmp(la, lb, na) != 0) {
            snprintf(buf, len, "checkpoint has '%.*s', config has '%.*s'",
                     (int)(na > 80 ? 80 : na), la, (int)(nb > 80 ? 80 : nb),
                     lb);
            return;
        }
        la += na + (ea != NULL);
        lb += nb + (eb != NULL);
    }
    snprintf(buf, len, "checkpoint has '%.80s', config has '%.80s'",
             *la ? la : "(end)", *lb ? lb : "(end)");
}

/* Largest iteration a checkpoint may hold: beyond any run (2^48
 * iterations of a microsecond are nine years), and small enough that the
 * classifier's example index, iteration x batch_size, stays below 2^62. */
#define CKPT_MAX_ITER ((int64_t)1 << 48)

/* A plugin as the checkpoint records it. */
typedef struct ckpt_component {
    uint32_t kind, signature;
    char name[64 + 1], version[32 + 1];
} ckpt_component;

/* The fields after the config, as read. */
typedef struct ckpt_fields {
    uint64_t nparams, digest;
    int64_t iter, opt_steps, nfe_f, nfe_b;
    double time_s;
    int64_t failures;          /* version 4; 0 in version 3               */
    double lr_scale;           /* version 4; 1 in version 3               */
    uint64_t run_id;           /* version 4; 0 (unknown) in version 3     */
    int64_t navg;              /* version 5; 0 before                     */
    double *theta, *m, *v;     /* P each, one allocation at theta         */
    double *avg;               /* P, the same allocation; read if navg > 0 */
    ckpt_component comp[CKPT_MAX_COMPONENTS];
    size_t ncomp;
    char rng_name[64];
    const unsigned char *rng;  /* into the payload                        */
    uint64_t rng_len;
} ckpt_fields;

/* A string of 1 to max bytes for which valid() holds into dst (max + 1
 * bytes); `what` and `pattern` describe it in a message. */
static int take_string(ckpt *c, char *dst, size_t max,
                       int (*valid)(const char *), const char *what,
                       const char *pattern, nde_ctx *ctx)
{
    uint64_t n = 0;

    if (take(c, &n, 8) || n == 0 || n > max || n > c->len - c->pos)
        return bad(ctx, c->path, "%s has length %llu, not within [1, %zu]",
                   what, (unsigned long long)n, max);
    take(c, dst, (size_t)n);
    dst[n] = '\0';
    if (strlen(dst) != n || !valid(dst))
        return bad(ctx, c->path, "%s is not %s", what, pattern);
    return NDE_OK;
}

/* The plugins recorded: kinds and names as the registry accepts them,
 * versions as plugin.h defines them. */
static int read_components(ckpt *c, ckpt_fields *f, nde_ctx *ctx)
{
    char what[64];
    uint64_t n;
    size_t i;
    int rc;

    if (take(c, &n, 8))
        return bad(ctx, c->path, "truncated payload");
    if (n == 0 || n > CKPT_MAX_COMPONENTS)
        return bad(ctx, c->path, "plugin count %llu is outside [1, %d]",
                   (unsigned long long)n, CKPT_MAX_COMPONENTS);
    f->ncomp = (size_t)n;
    for (i = 0; i < f->ncomp; i++) {
        ckpt_component *k = &f->comp[i];
        if (take(c, &k->kind, 4) || take(c, &k->signature, 4))
            return bad(ctx, c->path, "truncated payload");
        if (k->kind < NDE_KIND_FIELD || k->kind > NDE_KIND_COUNT)
            return bad(ctx, c->path, "plugin %zu has kind %u, not one of "
                       "1 to %d", i, k->kind, NDE_KIND_COUNT);
        snprintf(what, sizeof what, "the name of plugin %zu", i);
        if ((rc = take_string(c, k->name, sizeof k->name - 1,
                              nde_plugin_name_valid, what, "[a-z0-9_]+",
                              ctx)) != NDE_OK)
            return rc;
        snprintf(what, sizeof what, "the version of plugin '%s'", k->name);
        if ((rc = take_string(c, k->version, sizeof k->version - 1,
                              nde_plugin_version_valid, what,
                              "[A-Za-z0-9._+-]+", ctx)) != NDE_OK)
            return rc;
    }
    return NDE_OK;
}

static int read_fields(ckpt *c, size_t P, ckpt_fields *f, nde_ctx *ctx)
{
    uint64_t n;
    int rc;

    if (take(c, &f->nparams, 8) || take(c, &f->iter, 8) ||
        take(c, &f->opt_steps, 8))
        return bad(ctx, c->path, "truncated payload");
    if (f->nparams != P)
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: checkpoint has %llu parameters, the model of "
                         "this config has %zu (a different field?)",
                         c->path, (unsigned long long)f->nparams, P);
    if (!(f->theta = malloc((4 * P + 1) * sizeof *f->theta)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    f->m = f->theta + P;
    f->v = f->theta + 2 * P;
    f->avg = f->theta + 3 * P;
    if (take(c, f->theta, 3 * P * sizeof *f->theta) || take(c, &f->nfe_f, 8) ||
        take(c, &f->nfe_b, 8) || take(c, &f->time_s, 8) ||
        take(c, &f->digest, 8))
        return bad(ctx, c->path, "truncated payload");
    f->lr_scale = 1.0;
    if (c->version >= 4 &&
        (take(c, &f->failures, 8) || take(c, &f->lr_scale, 8) ||
         take(c, &f->run_id, 8)))
        return bad(ctx, c->path, "truncated payload");
    if (c->version >= 5 &&
        (take(c, &f->navg, 8) ||
         (f->navg > 0 && take(c, f->avg, P * sizeof *f->avg))))
        return bad(ctx, c->path, "truncated payload");
    if ((rc = read_components(c, f, ctx)) != NDE_OK)
        return rc;
    if (take(c, &n, 8))
        return bad(ctx, c->path, "truncated payload");
    if (n == 0 || n >= sizeof f->rng_name || n > c->len - c->pos ||
        memchr(c->data + c->pos, '\0', (size_t)n))
        return bad(ctx, c->path, "random-number generator name of length "
                   "%llu is not a name", (unsigned long long)n);
    take(c, f->rng_name, (size_t)n);
    f->rng_name[n] = '\0';
    if (take(c, &f->rng_len, 8) || f->rng_len != c->len - c->pos)
        return bad(ctx, c->path, "random-number state length does not match "
                   "the payload");
    f->rng = c->data + c->pos;
    return NDE_OK;
}

/* What the trainer can have written: nde_trainer_step takes one optimizer
 * step per completed iteration and keeps theta, m and v finite (a
 * non-finite gradient stops the run), v >= 0 (a sum of squares); the
 * totals only grow from 0. */
static int check_numbers(const nde_trainer *tr, const char *path,
                         const ckpt_fields *f)
{
    const size_t P = tr->P;
    int64_t most = CKPT_MAX_ITER;
    size_t i;

    if ((int64_t)((UINT64_C(1) << 62) / tr->B) < most)
        most = (int64_t)((UINT64_C(1) << 62) / tr->B);
    if (f->iter < 0 || f->iter > most)
        return bad(tr->ctx, path, "iteration %lld is outside [0, %lld]",
                   (long long)f->iter, (long long)most);
    if (f->failures < 0 || f->failures > f->iter)
        return bad(tr->ctx, path, "failed iteration count %lld is outside "
                   "[0, %lld]", (long long)f->failures, (long long)f->iter);
    /* one step per good iteration, each failure taking back at most one
     * (backoff) */
    if (f->opt_steps < 0 || f->opt_steps + f->failures > f->iter ||
        f->opt_steps + 2 * f->failures < f->iter)
        return bad(tr->ctx, path, "optimizer step count %lld does not fit the "
                   "iteration %lld with %lld failed iterations (one step "
                   "per good iteration, at most one taken back by each "
                   "failure)", (long long)f->opt_steps, (long long)f->iter,
                   (long long)f->failures);
    /* halved by each failure under backoff, from 1 */
    if (!(f->lr_scale > 0 && f->lr_scale <= 1) ||
        frexp(f->lr_scale, &(int){0}) != 0.5 ||
        f->lr_scale < ldexp(1.0, -(int)(f->failures < 1074 ? f->failures
                                                          : 1074)))
        return bad(tr->ctx, path, "learning-rate scale %g is not a power "
                   "of 2 in [2^-failures, 1]", f->lr_scale);
    for (i = 0; i < P; i++) {
        if (!isfinite(f->theta[i]))
            return bad(tr->ctx, path, "parameter theta[%zu] = %g is not "
                       "finite", i, f->theta[i]);
        if (!isfinite(f->m[i]))
            return bad(tr->ctx, path, "optimizer state m[%zu] = %g is not "
                       "finite", i, f->m[i]);
        if (!(isfinite(f->v[i]) && f->v[i] >= 0))
            return bad(tr->ctx, path, "optimizer state v[%zu] = %g is not "
                       "a finite number >= 0", i, f->v[i]);
    }
    /* one averaged step per good iteration at most */
    if (f->navg < 0 || f->navg > f->iter - f->failures)
        return bad(tr->ctx, path, "averaged step count %lld is outside [0, "
                   "%lld] (the good iterations)", (long long)f->navg,
                   (long long)(f->iter - f->failures));
    for (i = 0; f->navg > 0 && i < P; i++)
        if (!isfinite(f->avg[i]))
            return bad(tr->ctx, path, "averaged parameter %zu = %g is not "
                       "finite", i, f->avg[i]);
    if (f->nfe_f < 0 || f->nfe_b < 0)
        return bad(tr->ctx, path, "%s count %lld is negative",
                   f->nfe_f < 0 ? "nfe_forward" : "nfe_backward",
                   (long long)(f->nfe_f < 0 ? f->nfe_f : f->nfe_b));
    if (!(isfinite(f->time_s) && f->time_s >= 0))
        return bad(tr->ctx, path, "train time %g is not a finite number >= 0",
                   f->time_s);
    return NDE_OK;
}

/* GSL's mt19937 state, as gsl-2.x rng/mt.c defines it (mt_state_t):
 * mt_set masks every word to 32 bits and mt_get's recurrence keeps them
 * so; mti is the next word to temper, N after seeding or a full draw, and
 * mt_get reads mt[mti] without a check when mti < N. The all-zero state
 * (mt[0]'s low 31 bits are never read) draws nothing but zeros. */
#define MT_N 624
typedef struct mt_state {
    unsigned long mt[MT_N];
    int mti;
} mt_state;

/* The sampling RNG's type and state; only types checked here are used. */
static int check_rng(const nde_trainer *tr, const char *path,
                     const ckpt_fields *f)
{
    unsigned long seen;
    mt_state s;
    size_t i;

    if (strcmp(f->rng_name, gsl_rng_name(tr->rng)) != 0)
        return bad(tr->ctx, path, "random-number generator '%s', the trainer "
                   "uses '%s'", f->rng_name, gsl_rng_name(tr->rng));
    if (tr->rng->type != gsl_rng_mt19937 || gsl_rng_size(tr->rng) != sizeof s)
        return bad(tr->ctx, path, "random-number generator '%s' is not one "
                   "whose state this nde can check", f->rng_name);
    if (f->rng_len != sizeof s)
        return bad(tr->ctx, path, "random-number state of %llu bytes, "
                   "mt19937's has %zu", (unsigned long long)f->rng_len,
                   sizeof s);
    memcpy(&s, f->rng, sizeof s);
    if (s.mti < 0 || s.mti > MT_N)
        return bad(tr->ctx, path, "random-number state index mti = %d is "
                   "outside [0, %d]", s.mti, MT_N);
    seen = s.mt[0] & 0x80000000UL;
    for (i = 0; i < MT_N; i++) {
        if (s.mt[i] > 0xffffffffUL)
            return bad(tr->ctx, path, "random-number state word mt[%zu] = "
                       "%#lx is wider than 32 bits", i, s.mt[i]);
        seen |= i ? s.mt[i] : 0;
    }
    if (!seen)
        return bad(tr->ctx, path, "random-number state mt[] is all zeros "
                   "(mt19937's degenerate state)");
    return NDE_OK;
}

/* Append a note for nde_trainer_checkpoint_note; -1 when out of memory. */
static int add_note(char ***notes, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int add_note(char ***notes, size_t *n, const char *fmt, ...)
{
    char **grown, *text, buf[300]; /* names and versions are short */
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!(text = strdup(buf)))
        return -1;
    if (!(grown = realloc(*notes, (*n + 1) * sizeof *grown))) {
        free(text);
        return -1;
    }
    *notes = grown;
    grown[(*n)++] = text;
    return 0;
}

static void free_notes(char **notes, size_t n)
{
    while (n)
        free(notes[--n]);
    free(notes);
}

/* How the plugins recorded differ from tr's (matched by kind and name):
 * version, module build signature, one used by one side only. */
static int compare_components(const nde_trainer *tr, const ckpt_fields *f,
                              char ***notes, size_t *nnotes)
{
    const nde_plugin_info *mine[CKPT_MAX_COMPONENTS];
    int used[CKPT_MAX_COMPONENTS] = {0};
    size_t nmine = run_components(tr, mine, CKPT_MAX_COMPONENTS), i, j;
    int fail = 0;

    for (i = 0; i < f->ncomp && !fail; i++) {
        const ckpt_component *k = &f->comp[i];
        const char *kind = nde_kind_name((nde_kind)k->kind);
        unsigned sig;

        for (j = 0; j < nmine; j++)
            if (!used[j] && (uint32_t)mine[j]->kind == k->kind &&
                strcmp(mine[j]->name, k->name) == 0)
                break;
        if (j == nmine) {
            fail = add_note(notes, nnotes, "made with %s '%s' version %s, "
                            "which this run does not use", kind, k->name,
                            k->version);
            continue;
        }
        used[j] = 1;
        sig = nde_plugin_build_signature(tr->ctx, mine[j]);
        if (strcmp(version_of(mine[j]), k->version) != 0)
            fail = add_note(notes, nnotes, "made with %s '%s' version %s, "
                            "this run uses version %s", kind, k->name,
                            k->version, version_of(mine[j]));
        if (!fail && sig != k->signature)
            fail = add_note(notes, nnotes, "made with %s '%s' from a module "
                            "of build signature 0x%x, this run's has 0x%x",
                            kind, k->name, k->signature, sig);
    }
    for (j = 0; j < nmine && !fail; j++)
        if (!used[j])
            fail = add_note(notes, nnotes, "made without %s '%s' (version "
                            "%s), which this run uses",
                            nde_kind_name(mine[j]->kind), mine[j]->name,
                            version_of(mine[j]));
    return fail ? nde_error(tr->ctx, NDE_ENOMEM, "out of memory") : NDE_OK;
}

const char *nde_trainer_checkpoint_note(const nde_trainer *tr, size_t i)
{
    return i < tr->nnotes ? tr->notes[i] : NULL;
}

/* RESUME: the checkpoint's config against tr's, both canonical, but for
 * the keys a resumed run may change. */
static int same_config(const nde_trainer *tr, const char *path, char *saved)
{
    char *mine, diff[256];
    size_t mylen;
    int rc = NDE_OK;

    if (!(mine = config_text(tr->cfg, &mylen)))
        return nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
    strip_resume_free(saved);
    strip_resume_free(mine);
    if (strcmp(saved, mine) != 0) {
        first_difference(saved, mine, diff, sizeof diff);
        rc = nde_error(tr->ctx, NDE_ECONFIG,
                       "%s: checkpoint was made with a different config "
                       "(%s); only [train] iterations, eval_every, "
                       "checkpoint, checkpoint_every, metrics, "
                       "data_changed, on_failure and max_failures may "
                       "change on resume", path, diff);
    }
    free(mine);
    return rc;
}

int nde_checkpoint_read_run(const char *path, uint64_t *run_id,
                            long *iteration, nde_ctx *ctx)
{
    ckpt_fields f;
    char *text = NULL;
    uint64_t P = 0;
    ckpt c;
    int rc;

    memset(&f, 0, sizeof f);
    if ((rc = ckpt_open(&c, path, ctx)) != NDE_OK)
        return rc;
    if ((rc = ckpt_config(&c, &text, ctx)) == NDE_OK) {
        /* the parameter count as the file gives it, if its arrays fit */
        if (c.len - c.pos >= 8)
            memcpy(&P, c.data + c.pos, 8);
        if (P > (c.len - c.pos) / 24)
            rc = bad(ctx, path, "%llu parameters do not fit the payload",
                     (unsigned long long)P);
        else
            rc = read_fields(&c, (size_t)P, &f, ctx);
    }
    if (rc == NDE_OK) {
        *run_id = f.run_id;
        *iteration = (long)f.iter;
    }
    free(f.theta);
    free(text);
    free(c.data);
    return rc;
}

int nde_trainer_checkpoint_load(nde_trainer *tr, const char *path, int mode)
{
    const size_t P = tr->P;
    ckpt_fields f;
    char *saved = NULL, **notes = NULL;
    size_t nnotes = 0;
    ckpt c;
    int rc;

    memset(&f, 0, sizeof f);
    if ((rc = ckpt_open(&c, path, tr->ctx)) != NDE_OK)
        return rc;
    if ((rc = ckpt_config(&c, &saved, tr->ctx)) != NDE_OK ||
        (rc = read_fields(&c, P, &f, tr->ctx)) != NDE_OK ||
        (rc = check_numbers(tr, path, &f)) != NDE_OK ||
        (rc = check_rng(tr, path, &f)) != NDE_OK ||
        (mode == NDE_CHECKPOINT_RESUME &&
         (rc = same_config(tr, path, saved)) != NDE_OK) ||
        (rc = compare_components(tr, &f, &notes, &nnotes)) != NDE_OK)
        goto done;
    tr->data_changed = f.digest != tr->data_digest;
    if (tr->data_changed && mode == NDE_CHECKPOINT_RESUME &&
        tr->set.refuse_changed_data) {
        rc = nde_error(tr->ctx, NDE_ECONFIG,
                       "%s: the data differ from those the checkpoint was "
                       "trained on (data digest %016llx, the checkpoint's "
                       "%016llx), and [train] data_changed = refuse", path,
                       (unsigned long long)tr->data_digest,
                       (unsigned long long)f.digest);
        goto done;
    }
    /* the task's units are fitted to its data: other data, other units */
    if (tr->data_changed && tr->shift) {
        rc = nde_error(tr->ctx, NDE_ECONFIG,
                       "%s: the model works in units fitted to the data it "
                       "was trained on ([data] normalize), and the data "
                       "differ now (data digest %016llx, the checkpoint's "
                       "%016llx): give it the same data", path,
                       (unsigned long long)tr->data_digest,
                       (unsigned long long)f.digest);
        goto done;
    }
    if (mode == NDE_CHECKPOINT_RESUME && f.navg > 0 && !tr->avg) {
        rc = bad(tr->ctx, path, "averaged step count %lld, but this config "
                 "averages nothing ([train] average_from = 0)",
                 (long long)f.navg);
        goto done;
    }
    free_notes(tr->notes, tr->nnotes);
    tr->notes = notes;
    tr->nnotes = nnotes;
    notes = NULL;
    nnotes = 0;
    tr->iter = (long)f.iter;
    if (mode != NDE_CHECKPOINT_RESUME) {
        /* the model: the running mean if the run kept one */
        memcpy(tr->theta, f.navg > 0 ? f.avg : f.theta, P * sizeof *f.theta);
    } else {
        memcpy(tr->theta, f.theta, P * sizeof *f.theta);
        if (tr->avg && f.navg > 0)
            memcpy(tr->avg, f.avg, P * sizeof *f.avg);
        tr->navg = (long)f.navg;
        memcpy(tr->m, f.m, P * sizeof *f.m);
        memcpy(tr->v, f.v, P * sizeof *f.v);
        memcpy(gsl_rng_state(tr->rng), f.rng, (size_t)f.rng_len);
        tr->opt_steps = (long)f.opt_steps;
        tr->tot.nfe_forward = (long)f.nfe_f;
        tr->tot.nfe_backward = (long)f.nfe_b;
        tr->tot.time_s = f.time_s;
        tr->tot.failures = (long)f.failures;
        tr->tot.lr_scale = f.lr_scale;
        if (f.run_id)
            tr->run_id = f.run_id;
    }
done:
    free_notes(notes, nnotes);
    free(f.theta);
    free(saved);
    free(c.data);
    return rc;
}

int nde_trainer_data_changed(const nde_trainer *tr)
{
    return tr->data_changed;
}
