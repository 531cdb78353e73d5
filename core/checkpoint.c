/*
 * Checkpoints of a trainer (format in nde/train.h): parameters, Adam
 * state, iteration, totals, the sampling RNG's state and the effective
 * config, behind a magic, a version, a byte-order mark and a crc32.
 */
#include <errno.h>
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
    NULL};

static char *config_text(const nde_config *cfg, size_t *len)
{
    char *buf = NULL;
    FILE *fp = open_memstream(&buf, len);

    if (!fp)
        return NULL;
    if (nde_config_write(cfg, fp) != NDE_OK) {
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
    char *cfgtext, *payload = NULL;
    size_t cfglen, plen = 0, rngsize;
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
    i64 = tr->adam_t;
    fwrite(&i64, 8, 1, fp);
    fwrite(tr->theta, sizeof(double), tr->P, fp);
    fwrite(tr->m, sizeof(double), tr->P, fp);
    fwrite(tr->v, sizeof(double), tr->P, fp);
    i64 = tr->tot.nfe_forward;
    fwrite(&i64, 8, 1, fp);
    i64 = tr->tot.nfe_backward;
    fwrite(&i64, 8, 1, fp);
    fwrite(&tr->tot.time_s, sizeof(double), 1, fp);
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
    u32 = (uint32_t)crc32(0L, (const Bytef *)payload, (uInt)plen);
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
} ckpt;

static int bad(nde_ctx *ctx, const char *path, const char *what)
{
    return nde_error(ctx, NDE_ECONFIG, "%s: not a usable checkpoint: %s",
                     path, what);
}

static int take(ckpt *c, void *dst, size_t n)
{
    if (c->len - c->pos < n)
        return -1;
    memcpy(dst, c->data + c->pos, n);
    c->pos += n;
    return 0;
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
    if (version != NDE_CHECKPOINT_VERSION) {
        fclose(fp);
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: checkpoint format version %u, this nde reads "
                         "version %u", path, version, NDE_CHECKPOINT_VERSION);
    }
    if (bom != CKPT_BOM) {
        fclose(fp);
        return bad(ctx, path, "written on a machine of another byte order");
    }
    if (plen > ((uint64_t)1 << 40) || !(c->data = malloc(plen + 1))) {
        fclose(fp);
        return bad(ctx, path, "implausible payload length");
    }
    c->len = (size_t)plen;
    got = fread(c->data, 1, c->len, fp);
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
    if ((uint32_t)crc32(0L, c->data, (uInt)c->len) != crc) {
        free(c->data);
        c->data = NULL;
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: checkpoint corrupted (crc32 mismatch)", path);
    }
    return NDE_OK;
}

static int ckpt_config(ckpt *c, char **text, nde_ctx *ctx)
{
    uint64_t n;

    if (take(c, &n, 8) != 0 || n > c->len - c->pos)
        return bad(ctx, c->path, "malformed config length");
    if (!(*text = malloc((size_t)n + 1)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    take(c, *text, (size_t)n);
    (*text)[n] = '\0';
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

int nde_trainer_checkpoint_load(nde_trainer *tr, const char *path, int mode)
{
    char *saved = NULL, *mine = NULL, diff[256];
    size_t mylen, P = tr->P, rngsize;
    uint64_t nparams, rlen;
    int64_t iter, adam_t, nfe_f, nfe_b;
    double *buf = NULL, time_s;
    ckpt c;
    int rc;

    if ((rc = ckpt_open(&c, path, tr->ctx)) != NDE_OK)
        return rc;
    if ((rc = ckpt_config(&c, &saved, tr->ctx)) != NDE_OK)
        goto done;
    if (take(&c, &nparams, 8) || take(&c, &iter, 8) || take(&c, &adam_t, 8)) {
        rc = bad(tr->ctx, path, "truncated payload");
        goto done;
    }
    if (nparams != P) {
        rc = nde_error(tr->ctx, NDE_ECONFIG,
                       "%s: checkpoint has %llu parameters, the model of "
                       "this config has %zu (a different field?)",
                       path, (unsigned long long)nparams, P);
        goto done;
    }
    if (mode == NDE_CHECKPOINT_RESUME) {
        if (!(mine = config_text(tr->cfg, &mylen))) {
            rc = nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
            goto done;
        }
        strip_resume_free(saved);
        strip_resume_free(mine);
        if (strcmp(saved, mine) != 0) {
            first_difference(saved, mine, diff, sizeof diff);
            rc = nde_error(tr->ctx, NDE_ECONFIG,
                           "%s: checkpoint was made with a different config "
                           "(%s); only [train] iterations, eval_every, "
                           "checkpoint, checkpoint_every and metrics may "
                           "change on resume", path, diff);
            goto done;
        }
    }
    if (!(buf = malloc((3 * P + 1) * sizeof *buf))) {
        rc = nde_error(tr->ctx, NDE_ENOMEM, "out of memory");
        goto done;
    }
    rngsize = gsl_rng_size(tr->rng);
    if (take(&c, buf, 3 * P * sizeof *buf) || take(&c, &nfe_f, 8) ||
        take(&c, &nfe_b, 8) || take(&c, &time_s, 8) || take(&c, &rlen, 8)) {
        rc = bad(tr->ctx, path, "truncated payload");
        goto done;
    }
    if (rlen != rngsize || c.len - c.pos != rngsize) {
        rc = bad(tr->ctx, path, "random-number state of the wrong size");
        goto done;
    }
    memcpy(tr->theta, buf, P * sizeof *buf);
    if (mode == NDE_CHECKPOINT_RESUME) {
        memcpy(tr->m, buf + P, P * sizeof *buf);
        memcpy(tr->v, buf + 2 * P, P * sizeof *buf);
        memcpy(gsl_rng_state(tr->rng), c.data + c.pos, rngsize);
        tr->iter = (long)iter;
        tr->adam_t = (long)adam_t;
        tr->tot.nfe_forward = (long)nfe_f;
        tr->tot.nfe_backward = (long)nfe_b;
        tr->tot.time_s = time_s;
    } else
        tr->iter = (long)iter;
    rc = NDE_OK;
done:
    free(buf);
    free(mine);
    free(saved);
    free(c.data);
    return rc;
}
