/*
 * ab.h - `nde ab`: A/B comparisons of config variations (cli/ab/ab.c).
 */
#ifndef NDE_CLI_AB_H
#define NDE_CLI_AB_H

int cli_ab(int argc, char **argv);
extern const char cli_ab_help[];

#endif
