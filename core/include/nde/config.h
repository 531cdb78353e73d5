/*
 * nde/config.h - INI configuration: sections, keys, overrides, typed getters.
 *
 * A config is read from INI files (through inih, with a line reader of our
 * own that counts real lines, refuses lines longer than the parser's
 * buffer (198 characters) and reads section headers itself, so names of
 * any length work; a UTF-8 BOM and CR LF are accepted; a file is at most
 * 64 MiB) and from `section.key=value` overrides. A value may continue on
 * indented lines; each line is kept as one row (a batch of y0 rows, a
 * matrix) and list getters join the rows. Nothing is cut: values and
 * numbers are read whole, and a number that overflows or underflows is
 * an error.
 *
 * Every value remembers where it came from ("file.ini:12" or
 * "command line (-s solver.rtol=...)"), and every error names that origin,
 * the section and the key.
 *
 * Sections are checked against key tables (nde_section_check) when the
 * component that reads them is composed; the getters then return parsed
 * values, using the table's default for keys that are absent.
 */
#ifndef NDE_CONFIG_H
#define NDE_CONFIG_H

#include <stdio.h>
#include "api.h"
#include "plugin.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_config nde_config;
typedef struct nde_section nde_section;

NDE_API nde_config *nde_config_create(void);
NDE_API void nde_config_destroy(nde_config *cfg);

/* Parse an INI file into cfg (keys repeated later replace earlier ones).
 * NDE_EIO if it cannot be read, NDE_ECONFIG on a syntax error, an over-long
 * line, a NUL byte, more than 64 MiB or an unknown section (with a "did
 * you mean" suggestion). */
NDE_API int nde_config_load_file(nde_config *cfg, const char *path,
                                 nde_ctx *ctx);

/* Same from text in memory; `origin` names it in messages. */
NDE_API int nde_config_load_string(nde_config *cfg, const char *origin,
                                   const char *text, nde_ctx *ctx);

/* Apply "section.key=value": the section is everything before the last dot
 * of the left side (so "field.expert.b=2" sets b in [field.expert]). The
 * section is created if absent. Replaces every row of an existing key.
 * A left side without a key, "section=" (no dot) or "section.name.="
 * (nothing after the last dot: "field.expert=" sets the key expert of
 * [field]), with an empty value, empties the section: every key it had is
 * removed, the section stays in its place (so later overrides refill it:
 * "field=" then "field.plugin=linear" replaces the whole [field]).
 * NDE_ECONFIG for a non-empty value there, an unknown section, and for
 * what would not read back the same from the INI text nde_config_write
 * makes: a control character (but tab), a key outside [A-Za-z0-9_+-] or
 * longer than 64 characters, a ';' at the value's start or after a blank,
 * a '\' at the value's end. */
NDE_API int nde_config_override(nde_config *cfg, const char *assignment,
                                nde_ctx *ctx);

/* Remove the key of "section.key" (split as by nde_config_override), so
 * that it is absent: its default applies and the writers leave it out.
 * NDE_ECONFIG "nothing to remove" when the section or the key is not in
 * the config (with the closest key of the section: a typo is not
 * silently ignored), or for an unknown section or no key. Messages name
 * "command line (-u section.key)". */
NDE_API int nde_config_unset(nde_config *cfg, const char *name,
                             nde_ctx *ctx);

/* Write the effective config (after overrides) as INI text that loads back
 * to the same values, every line within the reader's limit: a row longer
 * than about 100 characters goes on over indented continuation lines, cut
 * after a comma (the line ends in ',': a matrix row goes on) or, where
 * there is none, between two characters (the line ends in '\', which the
 * reader removes, joining the next line without a space). */
NDE_API int nde_config_write(const nde_config *cfg, FILE *out);

/* The same in canonical form, so that two configs of the same meaning
 * write the same text: sections sorted by name (the [regularizer.NAME]
 * sections, whose order matters, as one block in their config order),
 * keys sorted by name, and in the sections checked by nde_section_check
 * every value as parsed by its key's type (numbers in the shortest form
 * that reads back to the same double, so 0.000001 and 1e-6 agree;
 * integers in decimal; booleans as true or false; list items joined by
 * ", ", rows kept). Text and the values of unchecked sections are written
 * as they are. NDE_EIO on a write error. */
NDE_API int nde_config_write_canonical(const nde_config *cfg, FILE *out);

/* Path of the first file loaded, or NULL; relative paths in a config are
 * resolved against its directory. */
NDE_API const char *nde_config_path(const nde_config *cfg);

/* NULL when the section is absent. */
NDE_API nde_section *nde_config_section(const nde_config *cfg,
                                        const char *name);
NDE_API size_t nde_config_nsections(const nde_config *cfg);
NDE_API nde_section *nde_config_section_at(const nde_config *cfg, size_t i);

/* A required section: NDE_ECONFIG "missing section [name]" when absent. */
NDE_API int nde_config_require(const nde_config *cfg, const char *name,
                               nde_section **out, nde_ctx *ctx);

NDE_API const char *nde_section_name(const nde_section *sec);
NDE_API nde_config *nde_section_config(const nde_section *sec);
NDE_API int nde_section_has(const nde_section *sec, const char *key);
NDE_API size_t nde_section_nkeys(const nde_section *sec);
NDE_API const char *nde_section_key_at(const nde_section *sec, size_t i);
/* "file.ini:12" or "command line (-s ...)"; the section header's origin
 * when key is NULL or absent. */
NDE_API const char *nde_section_origin(const nde_section *sec,
                                       const char *key);

/* The file that `path`, the value of key in sec, names: relative to the
 * config file's directory unless it is absolute or was given on the
 * command line (then as typed, relative to the working directory).
 * malloc'd; NULL when out of memory. When the file exists, the key's
 * value in nde_config_write_canonical becomes its absolute path (so a
 * checkpoint's config finds the data from any directory). */
NDE_API char *nde_section_path(const nde_section *sec, const char *key,
                               const char *path);

/*
 * Check every key of sec against the union of the NULL-terminated array of
 * key tables (e.g. the solve loop's keys and the solver plugin's keys), and
 * every value against its declared type. `plugin` is always accepted.
 * Errors: unknown key (with the closest accepted name), malformed value.
 * On success the tables are bound to the section for the getters below.
 */
NDE_API int nde_section_check(nde_section *sec, const nde_key *const *tables,
                              nde_ctx *ctx);

/* Format an error about sec/key: "<origin>: [section] key: <message>",
 * record it with NDE_ECONFIG and return NDE_ECONFIG. key may be NULL. */
NDE_API int nde_section_error(const nde_section *sec, const char *key,
                              nde_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Typed getters. The value is the key's own, else the bound table's default;
 * a required key that is absent is an error ("missing required key").
 * Pointers returned for strings live as long as the config. Arrays returned
 * through `double **` / `char ***` are malloc'd: free them with free() /
 * nde_strings_free().
 */
NDE_API int nde_get_double(const nde_section *sec, const char *key,
                           double *out, nde_ctx *ctx);
NDE_API int nde_get_long(const nde_section *sec, const char *key, long *out,
                         nde_ctx *ctx);
/* The same, and out of range is an error naming the key: a long below lo
 * ("N is below lo"); a double outside [lo, hi] with either end open on
 * request ("x is outside (lo, hi]"). */
NDE_API int nde_get_long_min(const nde_section *sec, const char *key,
                             long lo, long *out, nde_ctx *ctx);
NDE_API int nde_get_double_in(const nde_section *sec, const char *key,
                              double lo, int lo_open, double hi, int hi_open,
                              double *out, nde_ctx *ctx);
NDE_API int nde_get_bool(const nde_section *sec, const char *key, int *out,
                         nde_ctx *ctx);
/* WORD and TEXT keys. */
NDE_API int nde_get_string(const nde_section *sec, const char *key,
                           const char **out, nde_ctx *ctx);
/* All numbers of a DOUBLES key, rows joined; *n may be 0 for "". */
NDE_API int nde_get_doubles(const nde_section *sec, const char *key,
                            double **out, size_t *n, nde_ctx *ctx);
/* Exactly n numbers into caller storage; "expected n values, got m". */
NDE_API int nde_get_doubles_n(const nde_section *sec, const char *key,
                              double *out, size_t n, nde_ctx *ctx);
/* One matrix row per line (continuation lines are further rows); all rows
 * must have the same length. */
NDE_API int nde_get_matrix(const nde_section *sec, const char *key,
                           double **out, size_t *rows, size_t *cols,
                           nde_ctx *ctx);
NDE_API int nde_get_longs(const nde_section *sec, const char *key, long **out,
                          size_t *n, nde_ctx *ctx);
/* WORDS keys: a NULL-terminated array of n strings. */
NDE_API int nde_get_words(const nde_section *sec, const char *key, char ***out,
                          size_t *n, nde_ctx *ctx);
/* ASSIGNS keys: names (NULL-terminated) and values, n pairs. */
NDE_API int nde_get_assigns(const nde_section *sec, const char *key,
                            char ***names, double **values, size_t *n,
                            nde_ctx *ctx);
NDE_API void nde_strings_free(char **strings);

/* x as the shortest of %.15g, %.16g and %.17g that reads back as x (1e-3
 * stays "0.001"), as the config writer prints numbers; buf of at least
 * NDE_DOUBLE_CHARS. */
#define NDE_DOUBLE_CHARS 32
NDE_API void nde_format_double(double x, char *buf);

/* Closest of `candidates` (NULL-terminated) to `word` by edit distance, or
 * NULL if none is close enough to be a plausible typo. */
NDE_API const char *nde_suggest(const char *word,
                                const char *const *candidates);

#ifdef __cplusplus
}
#endif
#endif
