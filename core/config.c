/*
 * INI configuration through inih.
 *
 * Debian's inih has a 200-byte line buffer and no line numbers in the
 * handler: a longer line would reach the handler in chunks and errors would
 * name lines that do not exist. So the text is fed to ini_parse_stream by a
 * reader of our own that counts real lines and refuses over-long ones, and
 * the handler takes the line number from the reader. Indented continuation
 * lines arrive as further values of the same key: each is kept as a row.
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nde/nde.h"
#include "internal.h"

/* inih reads at most INI_MAX_LINE - 1 bytes per call, newline included. */
#define LINE_MAX_CHARS (INI_MAX_LINE - 2)
#define SECTION_TABLES_MAX 8

typedef struct value {
    char *key;
    const char *file;  /* interned origin: a path or "command line (...)" */
    long line;         /* 0 for overrides */
    char **rows;
    long *row_lines;
    size_t nrows, cap;
    char *joined;      /* cache for nde_get_string on TEXT keys */
    char *resolved;    /* the file nde_section_path found, absolute: the
                          canonical form names it, wherever it is read */
} value;

struct nde_section {
    char *name;
    const char *file;
    long line;
    nde_config *cfg;
    value *values;
    size_t nvalues, cap;
    const nde_key *tables[SECTION_TABLES_MAX + 1];
};

struct nde_config {
    nde_section **sections;
    size_t nsections, cap;
    char **origins;    /* interned origin strings */
    size_t norigins, origins_cap;
    char *path;
};

/* ---- small utilities --------------------------------------------------- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t ncap;
    void *p;
    if (need <= *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 8;
    while (ncap < need)
        ncap *= 2;
    if (!(p = realloc(*arr, ncap * elem)))
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* s[0..n) without its leading and trailing white space: *s advances and
 * the new length is returned. */
static size_t trim_span(const char **s, size_t n)
{
    while (n && isspace((unsigned char)**s))
        (*s)++, n--;
    while (n && isspace((unsigned char)(*s)[n - 1]))
        n--;
    return n;
}

/* A malloc'd, trimmed copy of s[0..n), or NULL. */
static char *trim_dup(const char *s, size_t n)
{
    char *d;
    n = trim_span(&s, n);
    if ((d = malloc(n + 1))) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* s[0..n) trimmed, for a message: cut to fit buf, the cut marked "...". */
static const char *excerpt(const char *s, size_t n, char *buf, size_t len)
{
    n = trim_span(&s, n);
    if (n < len) {
        memcpy(buf, s, n);
        buf[n] = '\0';
    } else {
        memcpy(buf, s, len - 4);
        memcpy(buf + len - 4, "...", 4);
    }
    return buf;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t row[65];
    if (la > 64 || lb > 64)
        return (size_t)-1;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *nde_suggest(const char *word, const char *const *candidates)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1, limit = strlen(word) / 3 + 1;
    for (; *candidates; candidates++) {
        size_t d = edit_distance(word, *candidates);
        if (d < best_d) {
            best_d = d;
            best = *candidates;
        }
    }
    return best_d <= limit ? best : NULL;
}

/* ---- construction ------------------------------------------------------ */

nde_config *nde_config_create(void)
{
    return calloc(1, sizeof(nde_config));
}

static void value_free(value *v)
{
    size_t i;
    for (i = 0; i < v->nrows; i++)
        free(v->rows[i]);
    free(v->rows);
    free(v->row_lines);
    free(v->key);
    free(v->joined);
    free(v->resolved);
}

void nde_config_destroy(nde_config *cfg)
{
    size_t i, j;
    if (!cfg)
        return;
    for (i = 0; i < cfg->nsections; i++) {
        nde_section *sec = cfg->sections[i];
        for (j = 0; j < sec->nvalues; j++)
            value_free(&sec->values[j]);
        free(sec->values);
        free(sec->name);
        free(sec);
    }
    for (i = 0; i < cfg->norigins; i++)
        free(cfg->origins[i]);
    free(cfg->origins);
    free(cfg->sections);
    free(cfg->path);
    free(cfg);
}

static const char *intern_origin(nde_config *cfg, const char *origin)
{
    char *copy;
    if (cfg->norigins && strcmp(cfg->origins[cfg->norigins - 1], origin) == 0)
        return cfg->origins[cfg->norigins - 1];
    if (grow((void **)&cfg->origins, &cfg->origins_cap, cfg->norigins + 1,
             sizeof(char *)) ||
        !(copy = dup_str(origin)))
        return NULL;
    cfg->origins[cfg->norigins++] = copy;
    return copy;
}

/* Section names the program understands: fixed ones and NAME.sub families. */
static const char *const known_sections[] = {
    "problem", "field", "solver", "adjoint", "train", "data", "ab", NULL};
static const char *const known_families[] = {"field", "regularizer", "arm",
                                             NULL};

static int section_name_known(const char *name)
{
    const char *dot = strchr(name, '.');
    size_t i;
    if (!dot) {
        for (i = 0; known_sections[i]; i++)
            if (strcmp(name, known_sections[i]) == 0)
                return 1;
        return 0;
    }
    if (!nde_plugin_name_valid(dot + 1))
        return 0;
    for (i = 0; known_families[i]; i++)
        if (strlen(known_families[i]) == (size_t)(dot - name) &&
            strncmp(name, known_families[i], (size_t)(dot - name)) == 0)
            return 1;
    return 0;
}

/* origin and line (0: none) name where the header or override was. */
static int unknown_section_error(nde_ctx *ctx, const char *origin, long line,
                                 const char *name)
{
    const char *dot = strchr(name, '.');
    const char *hint;
    char at[24] = "";
    if (line > 0)
        snprintf(at, sizeof at, ":%ld", line);
    if (dot) {
        /* Families are short: a longer one is no typo of theirs. */
        char family[32] = "";
        const char *f = name;
        size_t n = trim_span(&f, (size_t)(dot - name));
        if (n < sizeof family)
            memcpy(family, f, n), family[n] = '\0';
        hint = *family ? nde_suggest(family, known_families) : NULL;
        if (hint && nde_plugin_name_valid(dot + 1))
            return nde_error(ctx, NDE_ECONFIG,
                             "%s%s: unknown section [%s] (did you mean "
                             "[%s%s]?)",
                             origin, at, name, hint, dot);
        if (section_name_known(family) || hint)
            return nde_error(ctx, NDE_ECONFIG,
                             "%s%s: unknown section [%s] (a sub-section name "
                             "after '.' is 1 to 64 characters of [a-z0-9_], "
                             "as a plugin name)",
                             origin, at, name);
        return nde_error(ctx, NDE_ECONFIG,
                         "%s%s: unknown section [%s] (known: problem, field, "
                         "solver, adjoint, train, data, ab, field.NAME, "
                         "regularizer.NAME, arm.NAME)",
                         origin, at, name);
    }
    hint = nde_suggest(name, known_sections);
    if (hint)
        return nde_error(ctx, NDE_ECONFIG,
                         "%s%s: unknown section [%s] (did you mean [%s]?)",
                         origin, at, name, hint);
    return nde_error(ctx, NDE_ECONFIG,
                     "%s%s: unknown section [%s] (known: problem, field, "
                     "solver, adjoint, train, data, ab, field.NAME, "
                     "regularizer.NAME, arm.NAME)",
                     origin, at, name);
}

nde_section *nde_config_section(const nde_config *cfg, const char *name)
{
    size_t i;
    for (i = 0; i < cfg->nsections; i++)
        if (strcmp(cfg->sections[i]->name, name) == 0)
            return cfg->sections[i];
    return NULL;
}

static nde_section *section_add(nde_config *cfg, const char *name,
                                const char *file, long line)
{
    nde_section *sec = nde_config_section(cfg, name);
    if (sec)
        return sec;
    if (grow((void **)&cfg->sections, &cfg->cap, cfg->nsections + 1,
             sizeof(nde_section *)) ||
        !(sec = calloc(1, sizeof *sec)))
        return NULL;
    if (!(sec->name = dup_str(name))) {
        free(sec);
        return NULL;
    }
    sec->file = file;
    sec->line = line;
    sec->cfg = cfg;
    cfg->sections[cfg->nsections++] = sec;
    return sec;
}

static value *section_value(const nde_section *sec, const char *key)
{
    size_t i;
    for (i = 0; i < sec->nvalues; i++)
        if (strcmp(sec->values[i].key, key) == 0)
            return &sec->values[i];
    return NULL;
}

/* Appends text[0..n), trimmed. */
static int value_append_row(value *v, const char *text, size_t n, long line)
{
    char *row;
    if (v->nrows + 1 > v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 4;
        char **rows = realloc(v->rows, ncap * sizeof *rows);
        long *lines;
        if (!rows)
            return -1;
        v->rows = rows;
        if (!(lines = realloc(v->row_lines, ncap * sizeof *lines)))
            return -1;
        v->row_lines = lines;
        v->cap = ncap;
    }
    if (!(row = trim_dup(text, n)))
        return -1;
    v->rows[v->nrows] = row;
    v->row_lines[v->nrows++] = line;
    free(v->joined);
    v->joined = NULL;
    return 0;
}

/* A continuation line: the rest of the last row when that ends in '\\'
 * (which goes; nothing is put in between), else a row of its own. */
static int value_continue(value *v, const char *text, size_t n, long line)
{
    char *last, *row;
    size_t len;

    if (!v->nrows || !(len = strlen(last = v->rows[v->nrows - 1])) ||
        last[len - 1] != '\\')
        return value_append_row(v, text, n, line);
    n = trim_span(&text, n);
    if (!(row = realloc(last, len + n)))
        return -1;
    memcpy(row + len - 1, text, n);
    row[len - 1 + n] = '\0';
    v->rows[v->nrows - 1] = row;
    free(v->joined);
    v->joined = NULL;
    return 0;
}

/* A new (or replaced) key with no rows yet. */
static value *section_set(nde_section *sec, const char *key, const char *file,
                          long line)
{
    value *v = section_value(sec, key);
    if (v) {
        value_free(v);
        memset(v, 0, sizeof *v);
    } else {
        if (grow((void **)&sec->values, &sec->cap, sec->nvalues + 1,
                 sizeof(value)))
            return NULL;
        v = &sec->values[sec->nvalues++];
        memset(v, 0, sizeof *v);
    }
    if (!(v->key = dup_str(key)))
        return NULL;
    v->file = file;
    v->line = line;
    return v;
}

/* ---- parsing ------------------------------------------------------------ */

/* A config is text of human size; the cap stops a source that never ends
 * (/dev/zero, a pipe from `yes`) from being read into memory forever. */
#define CONFIG_MAX_BYTES (64L << 20)

/* Section headers are read here, not by inih: Debian's inih keeps the
 * name in a 50-byte buffer (a longer one is cut and lands in another
 * section) and reports it only through the keys that follow. inih is
 * given a placeholder header instead, which resets its continuation state
 * as the real one would; the handler uses st->sec. */
typedef struct parse_state {
    nde_config *cfg;
    nde_ctx *ctx;
    const char *origin;   /* interned file name */
    const char *text;     /* the rest of the source */
    long line;            /* real line number of the line last read */
    int line_indented;    /* it starts with white space */
    int failed;
    nde_section *sec;     /* the current section, NULL before the first */
    size_t key;           /* 1 + index in sec of the key that indented
                           * lines continue; 0 right after a header */
} parse_state;

/* "[name]", blanks allowed around the name, a comment allowed after. */
static int section_line(parse_state *st, const char *s, size_t n)
{
    const char *close = memchr(s, ']', n), *rest;
    char *name;
    int rc = NDE_OK;

    if (!close)
        return nde_error(st->ctx, NDE_ECONFIG,
                         "%s:%ld: section header without ']'", st->origin,
                         st->line);
    for (rest = close + 1; rest < s + n && isspace((unsigned char)*rest);)
        rest++;
    if (rest < s + n && *rest != ';' && *rest != '#')
        return nde_error(st->ctx, NDE_ECONFIG,
                         "%s:%ld: text after a section header's ']' (only a "
                         "; comment may follow)",
                         st->origin, st->line);
    if (!(name = trim_dup(s + 1, (size_t)(close - s - 1))))
        return nde_error(st->ctx, NDE_ENOMEM, "out of memory");
    if (!section_name_known(name))
        rc = unknown_section_error(st->ctx, st->origin, st->line, name);
    else if (!(st->sec = section_add(st->cfg, name, st->origin, st->line)))
        rc = nde_error(st->ctx, NDE_ENOMEM, "out of memory");
    free(name);
    st->key = 0;
    return rc;
}

/* inih's reader: one real line per call, CR LF taken as LF, a UTF-8 byte
 * order mark at the start skipped. */
static char *read_line(char *str, int num, void *stream)
{
    parse_state *st = stream;
    const char *p = st->text, *nl, *q;
    size_t n;

    if (st->failed || !*p)
        return NULL;
    nl = strchr(p, '\n');
    n = nl ? (size_t)(nl - p) : strlen(p);
    st->text = p + n + (nl != NULL);
    st->line++;
    if (st->line == 1 && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3, n -= 3;
    if (n && p[n - 1] == '\r')
        n--;
    if (n > LINE_MAX_CHARS || n + 2 > (size_t)num) {
        nde_error(st->ctx, NDE_ECONFIG,
                  "%s:%ld: line too long (%zu characters; at most %d): put "
                  "long lists on indented continuation lines",
                  st->origin, st->line, n, LINE_MAX_CHARS);
        st->failed = 1;
        return NULL;
    }
    st->line_indented = n > 0 && isspace((unsigned char)p[0]);
    for (q = p; q < p + n && isspace((unsigned char)*q);)
        q++;
    if (q < p + n && *q == '[') {
        if (section_line(st, q, (size_t)(p + n - q)) != NDE_OK) {
            st->failed = 1;
            return NULL;
        }
        p = "[s]";
        n = 3;
    }
    memcpy(str, p, n);
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

static int handle_pair(void *user, const char *section, const char *name,
                       const char *val)
{
    parse_state *st = user;
    nde_section *sec = st->sec;
    value *v;

    (void)section; /* inih's is the placeholder */
    if (st->failed)
        return 0;
    if (!sec) {
        nde_error(st->ctx, NDE_ECONFIG,
                  "%s:%ld: key '%s' appears before any [section]", st->origin,
                  st->line, name);
        st->failed = 1;
        return 0;
    }
    /* inih continues a key on an indented line exactly when a key line
     * came after the last header, as st->key records; the name inih
     * passes then is its copy, cut at 49 characters: ours is whole. */
    if (st->line_indented && st->key) {
        /* inih strips " ;" comments only on key lines, so a continuation
         * row is cut here, by the same rule. */
        const char *c = val;
        while ((c = strchr(c, ';')) && c > val && !isspace((unsigned char)c[-1]))
            c++;
        v = &sec->values[st->key - 1];
        if (value_continue(v, val, c ? (size_t)(c - val) : strlen(val),
                           st->line))
            goto oom;
        return 1;
    }
    if (!*name) {
        nde_error(st->ctx, NDE_ECONFIG, "%s:%ld: [%s]: '=' without a key",
                  st->origin, st->line, sec->name);
        st->failed = 1;
        return 0;
    }
    v = section_value(sec, name);
    if (v && v->file == st->origin && v->line > 0) {
        nde_error(st->ctx, NDE_ECONFIG,
                  "%s:%ld: [%s] %s: key given twice (first at line %ld)",
                  st->origin, st->line, sec->name, name, v->line);
        st->failed = 1;
        return 0;
    }
    if (!(v = section_set(sec, name, st->origin, st->line)) ||
        value_append_row(v, val, strlen(val), st->line))
        goto oom;
    st->key = (size_t)(v - sec->values) + 1;
    return 1;
oom:
    nde_error(st->ctx, NDE_ENOMEM, "%s:%ld: out of memory", st->origin,
              st->line);
    st->failed = 1;
    return 0;
}

static int parse_text(nde_config *cfg, const char *origin, const char *text,
                      nde_ctx *ctx)
{
    parse_state st;
    int rc;

    memset(&st, 0, sizeof st);
    st.cfg = cfg;
    st.ctx = ctx;
    st.text = text;
    if (!(st.origin = intern_origin(cfg, origin)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    rc = ini_parse_stream(read_line, &st, handle_pair, &st);
    if (st.failed)
        return nde_ctx_status(ctx);
    if (rc != 0) {
        /* inih's own syntax error at real line rc: quote that line. */
        const char *p = text;
        char shown[80];
        long line;
        for (line = 1; line < rc && *p; line++) {
            p = strchr(p, '\n');
            p = p ? p + 1 : "";
        }
        return nde_error(ctx, NDE_ECONFIG,
                         "%s:%d: syntax error: expected '[section]' or "
                         "'key = value', got '%s'",
                         origin, rc,
                         excerpt(p, strcspn(p, "\n"), shown, sizeof shown));
    }
    return NDE_OK;
}

int nde_config_load_string(nde_config *cfg, const char *origin,
                           const char *text, nde_ctx *ctx)
{
    return parse_text(cfg, origin, text, ctx);
}

int nde_config_load_file(nde_config *cfg, const char *path, nde_ctx *ctx)
{
    enum { CHUNK = 1 << 16 };
    FILE *fp = fopen(path, "rb");
    char *text = NULL;
    size_t n = 0, cap = 0;
    int rc = NDE_OK;

    if (!fp)
        return nde_error(ctx, NDE_EIO, "%s: cannot open: %s", path,
                         strerror(errno));
    for (;;) {
        size_t got;
        if (grow((void **)&text, &cap, n + CHUNK + 1, 1)) {
            rc = nde_error(ctx, NDE_ENOMEM, "%s: out of memory", path);
            break;
        }
        errno = 0;
        got = fread(text + n, 1, CHUNK, fp);
        if (memchr(text + n, '\0', got)) {
            rc = nde_error(ctx, NDE_ECONFIG, "%s: not a text file (NUL byte)",
                           path);
            break;
        }
        n += got;
        if (n > CONFIG_MAX_BYTES) {
            rc = nde_error(ctx, NDE_ECONFIG,
                           "%s: larger than a config may be (%ld MiB)", path,
                           CONFIG_MAX_BYTES >> 20);
            break;
        }
        if (got < CHUNK) {
            if (ferror(fp))
                rc = nde_error(ctx, NDE_EIO, "%s: read error: %s", path,
                               strerror(errno ? errno : EIO));
            break;
        }
    }
    fclose(fp);
    if (rc == NDE_OK) {
        text[n] = '\0';
        if (!cfg->path && !(cfg->path = dup_str(path)))
            rc = nde_error(ctx, NDE_ENOMEM, "out of memory");
        else
            rc = parse_text(cfg, path, text, ctx);
    }
    free(text);
    return rc;
}

/* "command line (OPT ...)", the argument shortened past 100 characters:
 * the origin labels messages, the value itself is kept whole. */
static const char *override_origin(nde_config *cfg, const char *opt,
                                   const char *arg)
{
    char shown[104], *origin, *p;
    const char *file;
    size_t n = strlen(arg) + 20;

    if (!(origin = malloc(n)))
        return NULL;
    snprintf(origin, n, "command line (%s %s)", opt,
             excerpt(arg, strlen(arg), shown, sizeof shown));
    for (p = origin; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?'; /* messages stay on one line */
    file = intern_origin(cfg, origin);
    free(origin);
    return file;
}

/* A key from -s fits on a config line with room for its value. */
#define OVERRIDE_KEY_MAX 64

static int row_writable(const char *key, const char *row);

/* Why a -s assignment cannot be kept in the config text a checkpoint
 * stores (a line that read back differently would give the checkpoint
 * another model), into buf; NULL if it can. key is NULL when the
 * assignment empties a whole section (its value is empty). */
static const char *override_problem(const char *assignment, const char *key,
                                    const char *val, char *buf, size_t len)
{
    const char *c;
    for (c = assignment; *c; c++)
        if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) {
            snprintf(buf, len, "control character 0x%02x (a -s value is "
                     "one line of text)", (unsigned char)*c);
            return buf;
        }
    if (!key)
        return NULL;
    if (!*key)
        return "an empty key";
    if (strlen(key) > OVERRIDE_KEY_MAX)
        return "a key of more than 64 characters";
    for (c = key; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("_+-", *c))
            return "a key may only have the characters [A-Za-z0-9_+-]";
    for (c = val; (c = strchr(c, ';')); c++)
        if (c == val || isspace((unsigned char)c[-1]))
            return "';' at the start of a value or after a blank starts a "
                   "comment in a config file";
    if (*val && val[strlen(val) - 1] == '\\')
        return "a value ending in '\\' continues on the next line in a "
               "config file";
    if (!row_writable(key, val)) {
        snprintf(buf, len, "a run of blanks, '[', ';' or '#' too long to "
                 "break over config lines of at most %d characters",
                 LINE_MAX_CHARS);
        return buf;
    }
    return NULL;
}

/* Every key of sec goes; the section keeps its place. Its origin becomes
 * the override's, which messages about a missing key then name. */
static void section_clear(nde_section *sec, const char *origin)
{
    size_t i;
    for (i = 0; i < sec->nvalues; i++)
        value_free(&sec->values[i]);
    sec->nvalues = 0;
    sec->file = origin;
    sec->line = 0;
}

/* lhs[0..n) into a malloc'd section name and key, split at the last dot;
 * *key is NULL when there is no key (no dot, or nothing after the last
 * one). NDE_ECONFIG when there is no section before it. */
static int split_name(const char *lhs, size_t n, char **section, char **key,
                      const char *origin, const char *expected, nde_ctx *ctx)
{
    const char *dot = NULL, *p;
    size_t nsec;

    *section = *key = NULL;
    for (p = lhs; p < lhs + n; p++)
        if (*p == '.')
            dot = p;
    nsec = dot ? (size_t)(dot - lhs) : n;
    p = lhs;
    if (!trim_span(&p, nsec))
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: expected %s (the section is everything before "
                         "the last dot)",
                         origin, expected);
    if (!(*section = trim_dup(lhs, nsec)) ||
        (dot && dot + 1 < lhs + n &&
         !(*key = trim_dup(dot + 1, (size_t)(lhs + n - dot - 1))))) {
        free(*section);
        *section = NULL;
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    }
    return NDE_OK;
}

int nde_config_override(nde_config *cfg, const char *assignment, nde_ctx *ctx)
{
    const char *eq = strchr(assignment, '='), *lhs = assignment;
    const char *origin, *why;
    char *section = NULL, *key = NULL, *val = NULL, buf[200];
    nde_section *sec;
    value *v;
    int rc;

    if (!(origin = override_origin(cfg, "-s", assignment)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if (!eq)
        return nde_error(ctx, NDE_ECONFIG,
                         "%s: expected section.key=value", origin);
    rc = split_name(lhs, trim_span(&lhs, (size_t)(eq - assignment)), &section,
                    &key, origin, "section.key=value or section=", ctx);
    if (rc != NDE_OK)
        return rc;
    if (!(val = trim_dup(eq + 1, strlen(eq + 1))))
        rc = nde_error(ctx, NDE_ENOMEM, "out of memory");
    else if (!key && *val)
        rc = nde_error(ctx, NDE_ECONFIG,
                       "%s: expected section.key=value (the section is "
                       "everything before the last dot; 'section=' with "
                       "nothing after '=' empties a section)",
                       origin);
    else if ((why = override_problem(assignment, key, val, buf, sizeof buf)))
        rc = nde_error(ctx, NDE_ECONFIG, "%s: [%s] %s%srefused: %s", origin,
                       section, key ? key : "", key ? ": " : "", why);
    else if (!section_name_known(section))
        rc = unknown_section_error(ctx, origin, 0, section);
    else if (!(sec = section_add(cfg, section, origin, 0)))
        rc = nde_error(ctx, NDE_ENOMEM, "out of memory");
    else if (!key)
        section_clear(sec, origin);
    else if (!(v = section_set(sec, key, origin, 0)) ||
             value_append_row(v, val, strlen(val), 0))
        rc = nde_error(ctx, NDE_ENOMEM, "out of memory");
    free(section);
    free(key);
    free(val);
    return rc;
}

/* "nothing to remove", with the closest key that sec has. */
static int unset_absent(const nde_section *sec, const char *key,
                        const char *origin, nde_ctx *ctx)
{
    const char **keys = malloc((sec->nvalues + 1) * sizeof *keys);
    const char *hint;
    size_t i;
    int rc;

    if (!keys)
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    for (i = 0; i < sec->nvalues; i++)
        keys[i] = sec->values[i].key;
    keys[i] = NULL;
    hint = nde_suggest(key, keys);
    rc = nde_error(ctx, NDE_ECONFIG,
                   "%s: [%s] %s: nothing to remove (no such key)%s%s%s",
                   origin, sec->name, key, hint ? " (did you mean '" : "",
                   hint ? hint : "", hint ? "'?)" : "");
    free(keys);
    return rc;
}

int nde_config_unset(nde_config *cfg, const char *name, nde_ctx *ctx)
{
    const char *lhs = name, *origin;
    char *section = NULL, *key = NULL;
    nde_section *sec;
    value *v;
    int rc;

    if (!(origin = override_origin(cfg, "-u", name)))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    rc = split_name(lhs, trim_span(&lhs, strlen(name)), &section, &key,
                    origin, "section.key", ctx);
    if (rc != NDE_OK)
        return rc;
    if (!key)
        rc = nde_error(ctx, NDE_ECONFIG,
                       "%s: expected section.key (to empty a whole section: "
                       "-s '%s=')",
                       origin, section);
    else if (!section_name_known(section))
        rc = unknown_section_error(ctx, origin, 0, section);
    else if (!(sec = nde_config_section(cfg, section)))
        rc = nde_error(ctx, NDE_ECONFIG,
                       "%s: [%s] %s: nothing to remove (the config has no "
                       "section [%s])",
                       origin, section, key, section);
    else if (!(v = section_value(sec, key)))
        rc = unset_absent(sec, key, origin, ctx);
    else {
        size_t after = (size_t)(sec->values + sec->nvalues - v) - 1;
        value_free(v);
        memmove(v, v + 1, after * sizeof *v);
        sec->nvalues--;
    }
    free(section);
    free(key);
    return rc;
}

/*
 * Writing rows in lines the reader takes (LINE_MAX_CHARS, inih's buffer):
 * a row longer than WRITE_WIDTH goes on over indented continuation lines,
 * broken after a comma where one is in reach (the line ends in ',' and the
 * reader joins the next one to the row with a space: the space the writer
 * dropped) or else anywhere between two other characters, the line ending
 * in '\' (joined with nothing in between). A break never leaves a line
 * starting with a blank or with '[', ';' or '#' (a header or a comment).
 */
#define WRITE_WIDTH 100

static int starts_line_ok(char c)
{
    return c && !isspace((unsigned char)c) && !strchr("[;#", c);
}

/* Where the piece of row starting at `from` ends: within `room`
 * characters if it can break there, else at the first break beyond, up to
 * `max` characters (a line the reader still takes); *next is where the
 * next piece starts and *joint the character to end this line with ('\0'
 * at the row's end). Returns the row's end when it cannot break. */
static size_t piece_end(const char *row, size_t from, size_t room,
                        size_t max, size_t *next, char *joint)
{
    size_t len = strlen(row), i;

    *joint = '\0';
    *next = len;
    if (len - from <= room || room < 2)
        return len;
    for (i = from + room; i > from + room / 2; i--)
        if (row[i - 1] == ',' && row[i] == ' ' && starts_line_ok(row[i + 1])) {
            *next = i + 1;
            return i;
        }
    for (i = from + room - 1; i > from; i--)
        if (!isspace((unsigned char)row[i - 1]) && starts_line_ok(row[i]))
            break;
    /* A run of blanks, '[', ';' or '#' longer than the room: the first
     * break after it, on a longer line of at most max characters. */
    if (i == from) {
        for (i = from + room; i < len && i <= from + max; i++)
            if (!isspace((unsigned char)row[i - 1]) && starts_line_ok(row[i]))
                break;
        if (i >= len || i > from + max)
            return len; /* nowhere to break: one long line */
    }
    *joint = '\\';
    *next = i;
    return i;
}

/* How many characters the pieces of a row may have on their line: room
 * the writer aims for, max the reader's limit (less the joint). The first
 * line holds "key = " or, narrow, "key=". */
static size_t piece_room(size_t klen, int first, int narrow, size_t *max)
{
    if (!first) {
        *max = LINE_MAX_CHARS - 4 - 1;
        return WRITE_WIDTH - 4;
    }
    if (narrow) {
        *max = LINE_MAX_CHARS - klen - 1 - 1;
        return klen + 3 >= WRITE_WIDTH / 2 ? LINE_MAX_CHARS - klen - 1
                                           : WRITE_WIDTH - klen - 1;
    }
    *max = LINE_MAX_CHARS - klen - 3 - 1;
    return WRITE_WIDTH - klen - 3;
}

/* Whether the first row `row` of a key of klen characters breaks into
 * lines the reader takes back, its first line "key = " or (narrow)
 * "key=". */
static int row_fits(size_t klen, const char *row, int narrow)
{
    size_t from = 0, end, next, max, len = strlen(row);
    char joint;

    do {
        const size_t room = piece_room(klen, from == 0, narrow, &max);
        end = piece_end(row, from, room, max, &next, &joint);
        if (end - from > max + !joint) /* max leaves room for the joint */
            return 0;
        from = next;
    } while (from < len);
    return 1;
}

/* Row `r` of a value: row 0 on the key's line, the others on continuation
 * lines, each broken as above. A long key (a file's line holds "key=value"
 * in LINE_MAX_CHARS), or a first row that fits only so, gets "key=". */
static void write_row(FILE *out, const char *key, const char *row, size_t r)
{
    size_t from = 0, end, next, max, len = strlen(row), klen = strlen(key);
    const int narrow = klen + 3 >= WRITE_WIDTH / 2 ||
                       (r == 0 && !row_fits(klen, row, 0));
    char joint;

    if (r == 0)
        fprintf(out, "%s%s", key, narrow ? "=" : " = ");
    do {
        const size_t room = piece_room(klen, from == 0 && r == 0, narrow,
                                       &max);
        if (from > 0 || r > 0)
            fputs("\n    ", out);
        end = piece_end(row, from, room, max, &next, &joint);
        fprintf(out, "%.*s", (int)(end - from), row + from);
        if (joint)
            fputc(joint, out);
        from = next;
    } while (from < len);
}

/* Whether write_row writes the first row `row` of key in lines the reader
 * takes back. */
static int row_writable(const char *key, const char *row)
{
    return row_fits(strlen(key), row, 0) || row_fits(strlen(key), row, 1);
}

int nde_config_write(const nde_config *cfg, FILE *out)
{
    size_t i, j, r;
    for (i = 0; i < cfg->nsections; i++) {
        const nde_section *sec = cfg->sections[i];
        fprintf(out, "%s[%s]\n", i ? "\n" : "", sec->name);
        for (j = 0; j < sec->nvalues; j++) {
            const value *v = &sec->values[j];
            if (!v->nrows)
                fprintf(out, "%s =", v->key);
            for (r = 0; r < v->nrows; r++)
                write_row(out, v->key, v->rows[r], r);
            fputc('\n', out);
        }
    }
    return ferror(out) ? NDE_EIO : NDE_OK;
}

const char *nde_config_path(const nde_config *cfg) { return cfg->path; }
size_t nde_config_nsections(const nde_config *cfg) { return cfg->nsections; }

nde_section *nde_config_section_at(const nde_config *cfg, size_t i)
{
    return i < cfg->nsections ? cfg->sections[i] : NULL;
}

int nde_config_require(const nde_config *cfg, const char *name,
                       nde_section **out, nde_ctx *ctx)
{
    *out = nde_config_section(cfg, name);
    if (!*out)
        return nde_error(ctx, NDE_ECONFIG, "%s: missing section [%s]",
                         cfg->path ? cfg->path : "config", name);
    return NDE_OK;
}

/* ---- sections ----------------------------------------------------------- */

const char *nde_section_name(const nde_section *sec) { return sec->name; }
nde_config *nde_section_config(const nde_section *sec) { return sec->cfg; }
size_t nde_section_nkeys(const nde_section *sec) { return sec->nvalues; }

int nde_section_has(const nde_section *sec, const char *key)
{
    return section_value(sec, key) != NULL;
}

const char *nde_section_key_at(const nde_section *sec, size_t i)
{
    return i < sec->nvalues ? sec->values[i].key : NULL;
}

/* Thread-unsafe by design (the ctx is per thread of work; this buffer is
 * only used to format messages). */
static const char *format_origin(const char *file, long line, char *buf,
                                 size_t len)
{
    if (line > 0)
        snprintf(buf, len, "%s:%ld", file, line);
    else
        snprintf(buf, len, "%s", file);
    return buf;
}

const char *nde_section_origin(const nde_section *sec, const char *key)
{
    static char buf[640];
    const value *v = key ? section_value(sec, key) : NULL;
    if (v)
        return format_origin(v->file, v->line, buf, sizeof buf);
    return format_origin(sec->file, sec->line, buf, sizeof buf);
}

/* path, relative to the file that gave v (or to sec's config) unless
 * absolute or given on the command line. */
static char *resolve_path(const nde_section *sec, const value *v,
                          const char *path)
{
    const char *cfgpath = sec->cfg->path, *slash;
    size_t dirlen;
    char *out;

    if (path[0] == '/' || !cfgpath ||
        (v && strncmp(v->file, "command line", 12) == 0) ||
        !(slash = strrchr(cfgpath, '/')))
        return strdup(path);
    dirlen = (size_t)(slash - cfgpath) + 1;
    if (!(out = malloc(dirlen + strlen(path) + 1)))
        return NULL;
    memcpy(out, cfgpath, dirlen);
    strcpy(out + dirlen, path);
    return out;
}

char *nde_section_path(const nde_section *sec, const char *key,
                       const char *path)
{
    value *v = (value *)section_value(sec, key);
    char *out = resolve_path(sec, v, path), *abs;

    /* a cache of the value, as `joined` is: the file stays named in a
     * checkpoint's config read from anywhere */
    if (out && v && (abs = realpath(out, NULL))) {
        free(v->resolved);
        v->resolved = abs;
    }
    return out;
}

static int verror_at(const nde_section *sec, const char *key, long line,
                     nde_ctx *ctx, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0), nonnull(5)));
static int verror_at(const nde_section *sec, const char *key, long line,
                     nde_ctx *ctx, const char *fmt, va_list ap)
{
    char msg[768], where[640];
    const value *v = key ? section_value(sec, key) : NULL;
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (v)
        format_origin(v->file, line > 0 ? line : v->line, where, sizeof where);
    else
        format_origin(sec->file, sec->line, where, sizeof where);
    if (key)
        return nde_error(ctx, NDE_ECONFIG, "%s: [%s] %s: %s", where, sec->name,
                         key, msg);
    return nde_error(ctx, NDE_ECONFIG, "%s: [%s]: %s", where, sec->name, msg);
}

int nde_section_error(const nde_section *sec, const char *key, nde_ctx *ctx,
                      const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = verror_at(sec, key, 0, ctx, fmt, ap);
    va_end(ap);
    return rc;
}

static int row_error(const nde_section *sec, const char *key, long line,
                     nde_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int row_error(const nde_section *sec, const char *key, long line,
                     nde_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = verror_at(sec, key, line, ctx, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- value parsing ------------------------------------------------------ */

/* Number parsers return NULL for a number, "" for text that is not one,
 * or why the number is out of range. They read the text in place: a long
 * literal counts in full (no copy to cut it). */
/* Whether strtod or strtol read the whole of s (blanks around allowed). */
static int read_whole(const char *s, const char *end)
{
    if (end == s)
        return 0;
    while (isspace((unsigned char)*end))
        end++;
    return *end == '\0';
}

static const char *parse_double(const char *s, double *out)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    errno = 0;
    *out = strtod(s, &end);
    if (!read_whole(s, end))
        return "";
    if (errno == ERANGE && fabs(*out) > 1.0)
        return "it overflows a double (largest magnitude 1.8e308)";
    /* glibc sets ERANGE for a subnormal result too; the test catches one
     * it does not, as a nonzero literal must not lose its precision. */
    if ((errno == ERANGE && *out == 0.0) ||
        (*out != 0.0 && fabs(*out) < DBL_MIN))
        return "it underflows (nonzero but smaller in magnitude than "
               "2.2e-308)";
    if (!isfinite(*out))
        return "";
    return NULL;
}

static const char *parse_long(const char *s, long *out)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    errno = 0;
    *out = strtol(s, &end, 10);
    if (!read_whole(s, end))
        return "";
    if (errno == ERANGE)
        return "an integer here is at most 9223372036854775807 in magnitude";
    return NULL;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    size_t i, n = trim_span(&s, strlen(s));
    for (i = 0; i < 4; i++) {
        if (n == strlen(yes[i]) && strncasecmp(s, yes[i], n) == 0)
            return *out = 1, 0;
        if (n == strlen(no[i]) && strncasecmp(s, no[i], n) == 0)
            return *out = 0, 0;
    }
    return -1;
}

static int word_valid_n(const char *w, size_t n)
{
    if (!n)
        return 0;
    for (; n; w++, n--)
        if (!isalnum((unsigned char)*w) && !strchr("_.+-", *w))
            return 0;
    return 1;
}

static int word_valid(const char *w) { return word_valid_n(w, strlen(w)); }

/* The name of an assignment: a word, or a word indexed the way fields name
 * their parameters (theta[0], W1[2,3]). */
static int assign_name_valid(const char *w, size_t n)
{
    const char *open = memchr(w, '[', n), *p, *end = w + n - 1;
    if (!open)
        return word_valid_n(w, n);
    if (!word_valid_n(w, (size_t)(open - w)) || *end != ']' || open + 1 == end)
        return 0;
    for (p = open + 1; p < end; p++)
        if (!isdigit((unsigned char)*p) &&
            !(*p == ',' && isdigit((unsigned char)p[-1]) &&
              isdigit((unsigned char)p[1])))
            return 0;
    return 1;
}

static const char *type_expectation(nde_key_type type)
{
    switch (type) {
    case NDE_KEY_DOUBLE: return "a finite number";
    case NDE_KEY_INT: return "an integer";
    case NDE_KEY_BOOL: return "true or false";
    case NDE_KEY_WORD: return "one word ([A-Za-z0-9_.+-])";
    case NDE_KEY_TEXT: return "text";
    case NDE_KEY_DOUBLES: return "a comma-separated list of numbers";
    case NDE_KEY_INTS: return "a comma-separated list of integers";
    case NDE_KEY_WORDS: return "a comma-separated list of words";
    case NDE_KEY_ASSIGNS:
        return "a comma-separated list of name=number (a name is a word, "
               "or indexed: w[0], A[0,1])";
    }
    return "?";
}

/* The error for a scalar that a parser refused with `why`. */
static int bad_scalar(const nde_section *sec, const char *key, long line,
                      nde_ctx *ctx, nde_key_type type, const char *why,
                      const char *text)
{
    char shown[120];
    excerpt(text, strlen(text), shown, sizeof shown);
    if (why && *why)
        return row_error(sec, key, line, ctx, "'%s' is out of range: %s",
                         shown, why);
    return row_error(sec, key, line, ctx, "expected %s, got '%s'",
                     type_expectation(type), shown);
}

/* Iterate over the comma-separated items of a row; a trailing comma (a list
 * continued on the next line) is allowed. fn returns as the parsers do.
 * Returns the number of items; -1 with a clause for the message in bad;
 * -2 when out of memory. */
typedef const char *(*item_fn)(const char *item, void *user);

/* The comma that ends the item starting at p, or NULL; a comma inside
 * brackets belongs to an indexed name (A[0,1] = 2). */
static const char *item_comma(const char *p)
{
    int depth = 0;
    for (; *p; p++)
        if (*p == '[')
            depth++;
        else if (*p == ']' && depth)
            depth--;
        else if (*p == ',' && !depth)
            return p;
    return NULL;
}

static long for_items(const char *row, item_fn fn, void *user, char *bad,
                      size_t badlen)
{
    long count = 0;
    const char *p = row;
    char *item = malloc(strlen(row) + 1), shown[120];
    if (!item)
        return -2;
    for (;;) {
        const char *comma = item_comma(p), *s = p, *why;
        size_t n = trim_span(&s, comma ? (size_t)(comma - p) : strlen(p));
        memcpy(item, s, n);
        item[n] = '\0';
        if (!n) {
            if (!comma) /* an empty row, or a trailing comma */
                break;
            snprintf(bad, badlen, "an empty item is not valid");
            count = -1;
            break;
        }
        if (fn && (why = fn(item, user))) {
            excerpt(item, n, shown, sizeof shown);
            if (*why)
                snprintf(bad, badlen, "'%s' is out of range: %s", shown, why);
            else
                snprintf(bad, badlen, "'%s' is not valid", shown);
            count = -1;
            break;
        }
        count++;
        if (!comma)
            break;
        p = comma + 1;
    }
    free(item);
    return count;
}

static const char *item_double(const char *item, void *user)
{
    double d;
    (void)user;
    return parse_double(item, &d);
}

static const char *item_long(const char *item, void *user)
{
    long l;
    (void)user;
    return parse_long(item, &l);
}

static const char *item_word(const char *item, void *user)
{
    (void)user;
    return word_valid(item) ? NULL : "";
}

/* "name = number": the number into d, or why not; the name is the
 * *nname characters at *name. */
static const char *parse_assign(const char *item, const char **name,
                                size_t *nname, double *d)
{
    const char *eq = strchr(item, '=');
    if (!eq)
        return "";
    *name = item;
    *nname = trim_span(name, (size_t)(eq - item));
    if (!assign_name_valid(*name, *nname))
        return "";
    return parse_double(eq + 1, d);
}

static const char *item_assign(const char *item, void *user)
{
    const char *name;
    size_t n;
    double d;
    (void)user;
    return parse_assign(item, &name, &n, &d);
}

static int check_value(const nde_section *sec, const value *v,
                       nde_key_type type, nde_ctx *ctx)
{
    size_t r;
    int scalar = type == NDE_KEY_DOUBLE || type == NDE_KEY_INT ||
                 type == NDE_KEY_BOOL || type == NDE_KEY_WORD;
    item_fn fn = NULL;
    if (scalar && v->nrows > 1)
        return row_error(sec, v->key, v->row_lines[1], ctx,
                         "expected %s, got a continuation line",
                         type_expectation(type));
    for (r = 0; r < v->nrows; r++) {
        const char *row = v->rows[r], *why = NULL;
        long line = v->row_lines[r], got;
        char bad[300];
        double d;
        long l;
        int b;
        switch (type) {
        case NDE_KEY_DOUBLE: why = parse_double(row, &d); break;
        case NDE_KEY_INT: why = parse_long(row, &l); break;
        case NDE_KEY_BOOL: why = parse_bool(row, &b) ? "" : NULL; break;
        case NDE_KEY_WORD: why = word_valid(row) ? NULL : ""; break;
        case NDE_KEY_TEXT: break;
        case NDE_KEY_DOUBLES: fn = item_double; break;
        case NDE_KEY_INTS: fn = item_long; break;
        case NDE_KEY_WORDS: fn = item_word; break;
        case NDE_KEY_ASSIGNS: fn = item_assign; break;
        }
        if (why)
            return bad_scalar(sec, v->key, line, ctx, type, why, row);
        if (!fn)
            continue;
        if ((got = for_items(row, fn, NULL, bad, sizeof bad)) == -2)
            return nde_error(ctx, NDE_ENOMEM, "out of memory");
        if (got < 0)
            return row_error(sec, v->key, line, ctx, "expected %s; %s",
                             type_expectation(type), bad);
    }
    return NDE_OK;
}

static const nde_key *find_spec(const nde_key *const *tables, const char *key)
{
    const nde_key *prefix_match = NULL;
    for (; tables && *tables; tables++) {
        const nde_key *k;
        for (k = *tables; k->name; k++) {
            size_t n = strlen(k->name);
            if (strcmp(k->name, key) == 0)
                return k;
            if (n && k->name[n - 1] == '*' && strncmp(k->name, key, n - 1) == 0 &&
                strlen(key) >= n)
                prefix_match = k;
        }
    }
    return prefix_match;
}

int nde_section_check(nde_section *sec, const nde_key *const *tables,
                      nde_ctx *ctx)
{
    size_t i, ntables = 0;
    int rc;

    for (; tables && tables[ntables]; ntables++)
        if (ntables == SECTION_TABLES_MAX)
            return nde_error(ctx, NDE_EINVAL, "too many key tables");
    for (i = 0; i < sec->nvalues; i++) {
        const value *v = &sec->values[i];
        const nde_key *spec;
        if (strcmp(v->key, "plugin") == 0)
            continue;
        spec = find_spec(tables, v->key);
        if (!spec) {
            const char *names[256];
            size_t n = 0, t;
            const char *hint;
            for (t = 0; t < ntables; t++) {
                const nde_key *k;
                for (k = tables[t]; k->name && n < 255; k++)
                    if (!strchr(k->name, '*'))
                        names[n++] = k->name;
            }
            names[n] = NULL;
            hint = nde_suggest(v->key, names);
            if (hint)
                return nde_section_error(sec, v->key, ctx,
                                         "unknown key (did you mean '%s'?)",
                                         hint);
            return nde_section_error(sec, v->key, ctx,
                                     "unknown key (see `nde plugins` for the "
                                     "accepted keys)");
        }
        if ((rc = check_value(sec, v, spec->type, ctx)) != NDE_OK)
            return rc;
    }
    memcpy(sec->tables, tables, ntables * sizeof *tables);
    sec->tables[ntables] = NULL;
    return NDE_OK;
}

/* ---- getters ------------------------------------------------------------ */

/* The value's rows, or the default as a single row. *rows == NULL with
 * NDE_OK means optional and absent. */
typedef struct lookup {
    const char *const *rows;
    const long *lines;
    size_t nrows;
    const char *def_row[1];
    long def_line[1];
    const value *v;
} lookup;

static int look_up(const nde_section *sec, const char *key, lookup *lk,
                   nde_ctx *ctx)
{
    const nde_key *spec;
    memset(lk, 0, sizeof *lk);
    lk->v = section_value(sec, key);
    if (lk->v) {
        lk->rows = (const char *const *)lk->v->rows;
        lk->lines = lk->v->row_lines;
        lk->nrows = lk->v->nrows;
        return NDE_OK;
    }
    spec = find_spec(sec->tables, key);
    if (!spec || !spec->def)
        return nde_section_error(sec, key, ctx, "missing required key%s%s%s",
                                 spec && spec->help ? " (" : "",
                                 spec && spec->help ? spec->help : "",
                                 spec && spec->help ? ")" : "");
    if (!*spec->def)
        return NDE_OK;
    lk->def_row[0] = spec->def;
    lk->rows = lk->def_row;
    lk->lines = lk->def_line;
    lk->nrows = 1;
    return NDE_OK;
}

static int scalar_row(const nde_section *sec, const char *key, lookup *lk,
                      nde_ctx *ctx)
{
    int rc = look_up(sec, key, lk, ctx);
    if (rc == NDE_OK && !lk->rows)
        return nde_section_error(sec, key, ctx, "missing required key");
    return rc;
}

int nde_get_double(const nde_section *sec, const char *key, double *out,
                   nde_ctx *ctx)
{
    lookup lk;
    const char *why;
    int rc = scalar_row(sec, key, &lk, ctx);
    if (rc)
        return rc;
    if ((why = parse_double(lk.rows[0], out)))
        return bad_scalar(sec, key, lk.lines[0], ctx, NDE_KEY_DOUBLE, why,
                          lk.rows[0]);
    return NDE_OK;
}

int nde_get_long(const nde_section *sec, const char *key, long *out,
                 nde_ctx *ctx)
{
    lookup lk;
    const char *why;
    int rc = scalar_row(sec, key, &lk, ctx);
    if (rc)
        return rc;
    if ((why = parse_long(lk.rows[0], out)))
        return bad_scalar(sec, key, lk.lines[0], ctx, NDE_KEY_INT, why,
                          lk.rows[0]);
    return NDE_OK;
}

int nde_get_long_min(const nde_section *sec, const char *key, long lo,
                     long *out, nde_ctx *ctx)
{
    int rc = nde_get_long(sec, key, out, ctx);

    if (rc == NDE_OK && *out < lo)
        return nde_section_error(sec, key, ctx, "%ld is below %ld", *out, lo);
    return rc;
}

int nde_get_double_in(const nde_section *sec, const char *key, double lo,
                      int lo_open, double hi, int hi_open, double *out,
                      nde_ctx *ctx)
{
    int rc = nde_get_double(sec, key, out, ctx);

    if (rc != NDE_OK)
        return rc;
    if (*out < lo || (lo_open && *out == lo) || *out > hi ||
        (hi_open && *out == hi))
        return nde_section_error(sec, key, ctx, "%g is outside %s%g, %g%s",
                                 *out, lo_open ? "(" : "[", lo, hi,
                                 hi_open ? ")" : "]");
    return NDE_OK;
}

int nde_get_bool(const nde_section *sec, const char *key, int *out,
                 nde_ctx *ctx)
{
    lookup lk;
    int rc = scalar_row(sec, key, &lk, ctx);
    if (rc)
        return rc;
    if (parse_bool(lk.rows[0], out))
        return bad_scalar(sec, key, lk.lines[0], ctx, NDE_KEY_BOOL, "",
                          lk.rows[0]);
    return NDE_OK;
}

int nde_get_string(const nde_section *sec, const char *key, const char **out,
                   nde_ctx *ctx)
{
    lookup lk;
    value *v;
    size_t r, len = 0;
    int rc = scalar_row(sec, key, &lk, ctx);
    if (rc)
        return rc;
    v = (value *)lk.v;
    if (!v) {
        *out = lk.rows[0];
        return NDE_OK;
    }
    if (!v->joined) {
        for (r = 0; r < v->nrows; r++)
            len += strlen(v->rows[r]) + 1;
        if (!(v->joined = malloc(len + 1)))
            return nde_error(ctx, NDE_ENOMEM, "out of memory");
        for (r = 0, len = 0; r < v->nrows; r++) {
            size_t n = strlen(v->rows[r]); /* rows are kept trimmed */
            memcpy(v->joined + len, v->rows[r], n);
            len += n;
            if (r + 1 < v->nrows)
                v->joined[len++] = ' ';
        }
        v->joined[len] = '\0';
    }
    *out = v->joined;
    return NDE_OK;
}

/* Parsed list items of all rows, with the row each came from. */
typedef struct collect {
    nde_key_type type;
    double *d;
    long *l;
    char **names;
    size_t n, cap;
    int oom;
} collect;

static const char *collect_item(const char *item, void *user)
{
    static const char oom[] = "out of memory";
    collect *c = user;
    const char *why = NULL, *name;
    size_t nname;
    if (c->n + 2 > c->cap) {
        size_t ncap = c->cap ? 2 * c->cap : 16;
        double *d = realloc(c->d, ncap * sizeof *d);
        long *l;
        char **names;
        if (!d)
            return c->oom = 1, oom;
        c->d = d;
        if (!(l = realloc(c->l, ncap * sizeof *l)))
            return c->oom = 1, oom;
        c->l = l;
        if (!(names = realloc(c->names, ncap * sizeof *names)))
            return c->oom = 1, oom;
        c->names = names;
        c->cap = ncap;
    }
    c->names[c->n] = NULL;
    switch (c->type) {
    case NDE_KEY_DOUBLES:
        why = parse_double(item, &c->d[c->n]);
        break;
    case NDE_KEY_INTS:
        why = parse_long(item, &c->l[c->n]);
        break;
    case NDE_KEY_WORDS:
        if (!word_valid(item))
            return "";
        if (!(c->names[c->n] = dup_str(item)))
            return c->oom = 1, oom;
        break;
    default: /* NDE_KEY_ASSIGNS */
        if ((why = parse_assign(item, &name, &nname, &c->d[c->n])))
            return why;
        if (!(c->names[c->n] = trim_dup(name, nname)))
            return c->oom = 1, oom;
    }
    if (why)
        return why;
    c->n++;
    c->names[c->n] = NULL;
    return NULL;
}

static void collect_free(collect *c)
{
    size_t i;
    if (c->names)
        for (i = 0; i < c->n; i++)
            free(c->names[i]);
    free(c->names);
    free(c->d);
    free(c->l);
}

/* rows_out (may be NULL) receives the item count of each row. */
static int ends_with_comma(const char *row)
{
    size_t n = strlen(row);
    while (n && isspace((unsigned char)row[n - 1]))
        n--;
    return n && row[n - 1] == ',';
}

static int collect_rows(const nde_section *sec, const char *key,
                        nde_key_type type, collect *c, size_t **row_counts,
                        size_t *nrows, nde_ctx *ctx)
{
    lookup lk;
    size_t r, first;
    int rc = look_up(sec, key, &lk, ctx);
    memset(c, 0, sizeof *c);
    c->type = type;
    if (rc)
        return rc;
    if (row_counts && !(*row_counts = calloc(lk.nrows + 1, sizeof(size_t))))
        return nde_error(ctx, NDE_ENOMEM, "out of memory");
    if (nrows)
        *nrows = lk.nrows;
    for (r = 0, first = 0; r < lk.nrows; r++) {
        char bad[300];
        size_t before = c->n;
        long got = for_items(lk.rows[r], collect_item, c, bad, sizeof bad);
        if (got < 0) {
            int oom = c->oom || got == -2;
            collect_free(c);
            if (row_counts) {
                free(*row_counts);
                *row_counts = NULL;
            }
            if (oom)
                return nde_error(ctx, NDE_ENOMEM, "out of memory");
            return row_error(sec, key, lk.lines[r], ctx, "expected %s; %s",
                             type_expectation(type), bad);
        }
        if (!row_counts)
            continue;
        /* A row ending in ',' goes on on the next line (the writer breaks
         * long rows so): its items count for the row it continues. */
        if (r == 0 || !ends_with_comma(lk.rows[r - 1]))
            first = r;
        (*row_counts)[first] += c->n - before;
    }
    return NDE_OK;
}

int nde_get_doubles(const nde_section *sec, const char *key, double **out,
                    size_t *n, nde_ctx *ctx)
{
    collect c;
    int rc = collect_rows(sec, key, NDE_KEY_DOUBLES, &c, NULL, NULL, ctx);
    *out = NULL;
    *n = 0;
    if (rc)
        return rc;
    *out = c.d;
    *n = c.n;
    c.d = NULL;
    collect_free(&c);
    return NDE_OK;
}

int nde_get_doubles_n(const nde_section *sec, const char *key, double *out,
                      size_t n, nde_ctx *ctx)
{
    double *vals;
    size_t got;
    int rc = nde_get_doubles(sec, key, &vals, &got, ctx);
    if (rc)
        return rc;
    if (got != n) {
        free(vals);
        return nde_section_error(sec, key, ctx, "expected %zu values, got %zu",
                                 n, got);
    }
    memcpy(out, vals, n * sizeof *out);
    free(vals);
    return NDE_OK;
}

int nde_get_matrix(const nde_section *sec, const char *key, double **out,
                   size_t *rows, size_t *cols, nde_ctx *ctx)
{
    collect c;
    size_t *counts = NULL, nrows = 0, r, keep = 0;
    int rc = collect_rows(sec, key, NDE_KEY_DOUBLES, &c, &counts, &nrows, ctx);
    *out = NULL;
    *rows = *cols = 0;
    if (rc)
        return rc;
    for (r = 0; r < nrows; r++) {
        if (counts[r] == 0)
            continue;
        if (keep && counts[r] != *cols) {
            const value *v = section_value(sec, key);
            long line = v ? v->row_lines[r] : 0;
            size_t first = *cols, got = counts[r];
            free(counts);
            collect_free(&c);
            return row_error(sec, key, line, ctx,
                             "row %zu has %zu values, the first row %zu "
                             "(one row per line; all rows the same length)",
                             keep + 1, got, first);
        }
        *cols = counts[r];
        keep++;
    }
    free(counts);
    *rows = keep;
    *out = c.d;
    c.d = NULL;
    collect_free(&c);
    return NDE_OK;
}

int nde_get_longs(const nde_section *sec, const char *key, long **out,
                  size_t *n, nde_ctx *ctx)
{
    collect c;
    int rc = collect_rows(sec, key, NDE_KEY_INTS, &c, NULL, NULL, ctx);
    *out = NULL;
    *n = 0;
    if (rc)
        return rc;
    *out = c.l;
    *n = c.n;
    c.l = NULL;
    collect_free(&c);
    return NDE_OK;
}

static char **empty_strings(void)
{
    return calloc(1, sizeof(char *));
}

int nde_get_words(const nde_section *sec, const char *key, char ***out,
                  size_t *n, nde_ctx *ctx)
{
    collect c;
    int rc = collect_rows(sec, key, NDE_KEY_WORDS, &c, NULL, NULL, ctx);
    *out = NULL;
    *n = 0;
    if (rc)
        return rc;
    *out = c.names ? c.names : empty_strings();
    *n = c.n;
    c.names = NULL;
    c.n = 0;
    collect_free(&c);
    return *out ? NDE_OK : nde_error(ctx, NDE_ENOMEM, "out of memory");
}

int nde_get_assigns(const nde_section *sec, const char *key, char ***names,
                    double **values, size_t *n, nde_ctx *ctx)
{
    collect c;
    int rc = collect_rows(sec, key, NDE_KEY_ASSIGNS, &c, NULL, NULL, ctx);
    *names = NULL;
    *values = NULL;
    *n = 0;
    if (rc)
        return rc;
    *names = c.names ? c.names : empty_strings();
    *values = c.d;
    *n = c.n;
    c.names = NULL;
    c.d = NULL;
    c.n = 0;
    collect_free(&c);
    return *names ? NDE_OK : nde_error(ctx, NDE_ENOMEM, "out of memory");
}

void nde_strings_free(char **strings)
{
    char **p;
    if (!strings)
        return;
    for (p = strings; *p; p++)
        free(*p);
    free(strings);
}

int nde_section_plugin(nde_ctx *ctx, nde_section *sec, nde_kind kind,
                       const nde_plugin_info **out)
{
    const value *v = section_value(sec, "plugin");
    int rc;
    if (!v)
        return nde_section_error(sec, "plugin", ctx,
                                 "missing required key (the %s plugin to use; "
                                 "`nde plugins` lists them)",
                                 nde_kind_name(kind));
    if (v->nrows > 1 ||
        (rc = nde_plugin_find(ctx, kind, v->rows[0], out)) == 0) {
        if (v->nrows > 1)
            return nde_section_error(sec, "plugin", ctx,
                                     "expected one plugin name");
        return NDE_OK;
    }
    {
        /* Keep the registry's status (NDE_EPLUGIN), add where it was asked. */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", nde_ctx_message(ctx));
        return nde_error(ctx, rc, "%s: [%s] plugin: %s",
                         nde_section_origin(sec, "plugin"), sec->name, msg);
    }
}

/* ---- canonical form ----------------------------------------------------- */

void nde_format_double(double x, char *buf)
{
    int prec;

    for (prec = 15; prec < 17; prec++) {
        snprintf(buf, NDE_DOUBLE_CHARS, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            return;
    }
    snprintf(buf, NDE_DOUBLE_CHARS, "%.17g", x);
}

static void put_double(FILE *out, double x)
{
    char buf[NDE_DOUBLE_CHARS];

    nde_format_double(x, buf);
    fputs(buf, out);
}

typedef struct canon {
    FILE *out;
    nde_key_type type;
    size_t n;          /* items written in this row */
} canon;

/* One item of a list, as parsed; why it does not parse as for_items
 * expects (cannot happen in a checked section). */
static const char *canon_item(const char *item, void *user)
{
    canon *c = user;
    const char *name, *why;
    size_t nname;
    double d;
    long l;

    if (c->n++)
        fputs(", ", c->out);
    switch (c->type) {
    case NDE_KEY_DOUBLES:
        if ((why = parse_double(item, &d)))
            return why;
        put_double(c->out, d);
        return NULL;
    case NDE_KEY_INTS:
        if ((why = parse_long(item, &l)))
            return why;
        fprintf(c->out, "%ld", l);
        return NULL;
    case NDE_KEY_ASSIGNS:
        if ((why = parse_assign(item, &name, &nname, &d)))
            return why;
        fprintf(c->out, "%.*s=", (int)nname, name);
        put_double(c->out, d);
        return NULL;
    default: /* NDE_KEY_WORDS */
        fputs(item, c->out);
        return NULL;
    }
}

/* One row of a value of type `type`, as parsed; -1 if it does not parse
 * (cannot happen in a checked section). */
static int canon_row(const char *row, nde_key_type type, FILE *out)
{
    size_t n = strlen(row);
    canon c = {out, type, 0};
    char bad[300];
    double d;
    long l;
    int b;

    switch (type) {
    case NDE_KEY_DOUBLE:
        if (parse_double(row, &d))
            return -1;
        put_double(out, d);
        return 0;
    case NDE_KEY_INT:
        if (parse_long(row, &l))
            return -1;
        fprintf(out, "%ld", l);
        return 0;
    case NDE_KEY_BOOL:
        if (parse_bool(row, &b))
            return -1;
        fputs(b ? "true" : "false", out);
        return 0;
    case NDE_KEY_WORD:
        while (n && isspace((unsigned char)*row))
            row++, n--;
        while (n && isspace((unsigned char)row[n - 1]))
            n--;
        fprintf(out, "%.*s", (int)n, row);
        return 0;
    case NDE_KEY_TEXT:
        fputs(row, out);
        return 0;
    default:
        return for_items(row, canon_item, &c, bad, sizeof bad) < 0 ? -1 : 0;
    }
}

/* A row as canon_row gives it, written as write_row writes rows. */
static int write_canon_row(FILE *out, const char *key, const char *row,
                           nde_key_type type, size_t r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    int bad;

    if (!mem)
        return NDE_ENOMEM;
    bad = canon_row(row, type, mem) != 0;
    /* A list row ending in ',' goes on on the next row (a matrix row). */
    if (type >= NDE_KEY_DOUBLES && ends_with_comma(row))
        fputc(',', mem);
    if (fclose(mem) != 0) {
        free(text);
        return NDE_ENOMEM;
    }
    if (!bad)
        write_row(out, key, text, r);
    free(text);
    return bad ? NDE_EINVAL : NDE_OK;
}

/* Sort entries: by name, then by their original position. */
typedef struct ranked {
    const char *name;
    size_t idx;
} ranked;

static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

int nde_config_write_canonical(const nde_config *cfg, FILE *out)
{
    static const char reg[] = "regularizer.";
    ranked *secs, *keys;
    size_t i, j, r, most = 0;
    int rc = NDE_OK;

    for (i = 0; i < cfg->nsections; i++)
        if (cfg->sections[i]->nvalues > most)
            most = cfg->sections[i]->nvalues;
    secs = malloc((cfg->nsections + 1) * sizeof *secs);
    keys = malloc((most + 1) * sizeof *keys);
    if (!secs || !keys) {
        free(secs);
        free(keys);
        return NDE_ENOMEM;
    }
    /* The regularizers run in section order: they sort as one block. */
    for (i = 0; i < cfg->nsections; i++) {
        const char *name = cfg->sections[i]->name;
        secs[i].name = strncmp(name, reg, sizeof reg - 1) ? name : reg;
        secs[i].idx = i;
    }
    qsort(secs, cfg->nsections, sizeof *secs, ranked_cmp);
    for (i = 0; i < cfg->nsections && rc == NDE_OK; i++) {
        const nde_section *sec = cfg->sections[secs[i].idx];
        fprintf(out, "%s[%s]\n", i ? "\n" : "", sec->name);
        for (j = 0; j < sec->nvalues; j++) {
            keys[j].name = sec->values[j].key;
            keys[j].idx = j;
        }
        qsort(keys, sec->nvalues, sizeof *keys, ranked_cmp);
        for (j = 0; j < sec->nvalues && rc == NDE_OK; j++) {
            const value *v = &sec->values[keys[j].idx];
            const nde_key *spec = find_spec(sec->tables, v->key);
            nde_key_type type = strcmp(v->key, "plugin") == 0 ? NDE_KEY_WORD
                                : spec                      ? spec->type
                                                            : NDE_KEY_TEXT;
            if (v->resolved)
                rc = write_canon_row(out, v->key, v->resolved, NDE_KEY_TEXT,
                                     0);
            else if (!v->nrows)
                fprintf(out, "%s =", v->key);
            for (r = 0; !v->resolved && r < v->nrows && rc == NDE_OK; r++)
                rc = write_canon_row(out, v->key, v->rows[r], type, r);
            fputc('\n', out);
        }
    }
    free(secs);
    free(keys);
    return rc != NDE_OK ? rc : ferror(out) ? NDE_EIO : NDE_OK;
}
