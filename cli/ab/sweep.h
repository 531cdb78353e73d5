/*
 * sweep.h - `nde ab --sweep [ARM:]KEY=LO:HI:N`: one config value over a
 * log range (cli/ab/sweep.c).
 *
 * The N values run from LO to HI inclusive, evenly spaced in log(value):
 * values[0] is LO and values[N-1] is HI exactly (as parsed); the values
 * between are rounded to 12 significant digits (exp and log leave errors
 * in the 15th), so that 1e-3:1e3:7 gives 10, not 9.99999999999999.
 * texts[i] is values[i] as written into the config: the shortest text
 * that reads back as it. Arm
 * choice, running and the report are ab.c's; nothing here prints.
 */
#ifndef NDE_CLI_AB_SWEEP_H
#define NDE_CLI_AB_SWEEP_H

#include <stddef.h>

#define AB_SWEEP_MAX 100   /* values per sweep: more is a typo, not a plan */

typedef struct ab_sweep {
    char *arm;       /* ARM: the arm the values go on; NULL when not given */
    char *key;       /* SECTION.KEY                                        */
    double lo, hi;
    size_t n;
    double *values;  /* n                                                  */
    char **texts;    /* n: values[i] as written into the config            */
} ab_sweep;

/* Parse text into s (zeroed first). 0, or -1 with the reason in err and
 * s empty: not [ARM:]KEY=LO:HI:N, KEY without a '.', LO or HI not a
 * finite number, LO <= 0, HI < LO, N not an integer in [1,
 * AB_SWEEP_MAX], N = 1 with HI != LO or N > 1 with HI = LO, two values
 * with the same text (too close). */
int ab_sweep_parse(const char *text, ab_sweep *s, char *err, size_t errlen);

void ab_sweep_free(ab_sweep *s);

#endif
