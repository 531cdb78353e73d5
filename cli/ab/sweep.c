/*
 * sweep.c - the values of `nde ab --sweep` (sweep.h).
 */
#include "sweep.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nde/config.h"

static int fail(ab_sweep *s, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(ab_sweep *s, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    ab_sweep_free(s);
    return -1;
}

/* The whole of text[0, len) as a finite double into *x; 0 or -1. */
static int number(const char *text, size_t len, double *x)
{
    char buf[64], *end;

    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    errno = 0;
    *x = strtod(buf, &end);
    return *end || errno == ERANGE || !isfinite(*x) ? -1 : 0;
}

/* x as the config writer prints it, malloc'd. */
static char *shortest(double x)
{
    char buf[NDE_DOUBLE_CHARS];

    nde_format_double(x, buf);
    return strdup(buf);
}

int ab_sweep_parse(const char *text, ab_sweep *s, char *err, size_t errlen)
{
    const char *eq = strchr(text, '='), *colon, *c1, *c2;
    char *end;
    long n;
    size_t i;

    memset(s, 0, sizeof *s);
    if (!eq || !(c1 = strchr(eq + 1, ':')) || !(c2 = strchr(c1 + 1, ':')) ||
        strchr(c2 + 1, ':'))
        return fail(s, err, errlen, "'%s' is not [ARM:]KEY=LO:HI:N (e.g. "
                    "regularizer.local.weight=1e-3:1e3:7)", text);
    colon = memchr(text, ':', (size_t)(eq - text));
    if (colon) {
        if (colon == text)
            return fail(s, err, errlen, "'%s': no arm name before ':'",
                        text);
        s->arm = strndup(text, (size_t)(colon - text));
    }
    s->key = colon ? strndup(colon + 1, (size_t)(eq - colon - 1))
                   : strndup(text, (size_t)(eq - text));
    if (!s->key || (colon && !s->arm))
        return fail(s, err, errlen, "out of memory");
    if (!strchr(s->key, '.') || s->key[0] == '.' ||
        s->key[strlen(s->key) - 1] == '.')
        return fail(s, err, errlen, "'%s': the key '%s' is not SECTION.KEY "
                    "(e.g. regularizer.local.weight)", text, s->key);
    if (number(eq + 1, (size_t)(c1 - eq - 1), &s->lo) != 0 ||
        number(c1 + 1, (size_t)(c2 - c1 - 1), &s->hi) != 0)
        return fail(s, err, errlen, "'%s': LO and HI must be finite numbers",
                    text);
    if (!(s->lo > 0))
        return fail(s, err, errlen, "'%s': LO must be > 0 (the values are "
                    "log-spaced), not %g", text, s->lo);
    if (s->hi < s->lo)
        return fail(s, err, errlen, "'%s': HI = %g is below LO = %g", text,
                    s->hi, s->lo);
    errno = 0;
    n = strtol(c2 + 1, &end, 10);
    if (end == c2 + 1 || *end || errno == ERANGE || n < 1 ||
        n > AB_SWEEP_MAX)
        return fail(s, err, errlen, "'%s': N must be an integer from 1 to "
                    "%d, not '%s'", text, AB_SWEEP_MAX, c2 + 1);
    if ((n == 1) != (s->hi == s->lo))
        return fail(s, err, errlen, "'%s': %s", text,
                    n == 1 ? "N = 1 needs HI = LO (one value)"
                           : "HI = LO needs N = 1 (the values would repeat)");
    s->n = (size_t)n;
    s->values = calloc(s->n, sizeof *s->values);
    s->texts = calloc(s->n, sizeof *s->texts);
    if (!s->values || !s->texts)
        return fail(s, err, errlen, "out of memory");
    for (i = 0; i < s->n; i++) {
        double v = s->lo;
        if (i == s->n - 1)
            v = s->hi;
        else if (i > 0) {
            char buf[40];
            v = exp(log(s->lo) + (log(s->hi) - log(s->lo)) * (double)i /
                                     (double)(s->n - 1));
            snprintf(buf, sizeof buf, "%.12g", v);
            v = strtod(buf, NULL);
        }
        s->values[i] = v;
        if (!(s->texts[i] = shortest(v)))
            return fail(s, err, errlen, "out of memory");
        if (i > 0 && strcmp(s->texts[i], s->texts[i - 1]) == 0)
            return fail(s, err, errlen, "'%s': the values are too close to "
                        "tell apart (%s twice): take a smaller N", text,
                        s->texts[i]);
    }
    return 0;
}

void ab_sweep_free(ab_sweep *s)
{
    for (size_t i = 0; s->texts && i < s->n; i++)
        free(s->texts[i]);
    free(s->texts);
    free(s->values);
    free(s->arm);
    free(s->key);
    memset(s, 0, sizeof *s);
}
