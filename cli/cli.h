/*
 * cli.h - shared parts of the `nde` program.
 *
 * Exit codes: 0 success, 1 a computation or I/O failed, 2 bad usage or a
 * bad config. Every message goes to stderr as "nde: <message>".
 */
#ifndef NDE_CLI_H
#define NDE_CLI_H

#include <stdio.h>

#include "nde/nde.h"

struct nde_trainer; /* nde/train.h, for the commands that use one */

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,
    CLI_EXIT_USAGE = 2
};

/* Print "nde: <message>\n" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print the library's last message and return the exit code for status. */
int cli_fail(nde_ctx *ctx, int status);

/* A warning on stderr for each plugin the run found so far in ctx that
 * shadows another in, or from, $NDE_PLUGIN_PATH (registry.h). */
void cli_warn_shadowing(nde_ctx *ctx);

/* 1 if arg is -h or --help. */
int cli_is_help(const char *arg);

int cli_solve(int argc, char **argv);
int cli_plugins(int argc, char **argv);
int cli_train(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_gradcheck(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_graph(int argc, char **argv);
int cli_params(int argc, char **argv);

/* `nde predict CKPT --flow BASE` (flow.c): the paths of a grid x grid
 * input grid over [-range, range]^2 (within the disc) in the plane of
 * states sx, sy, to BASE.png and BASE.svg; an exit status. */
typedef struct cli_flow_opts {
    const char *base, *title;
    long grid;
    double range;
    size_t sx, sy;
} cli_flow_opts;
int cli_predict_flow(nde_ctx *ctx, struct nde_trainer *tr,
                     const cli_flow_opts *o);
/* `nde predict CKPT --plot BASE` (flow.c), after the held-out
 * evaluation: up to 8 held-out series, observed against predicted, one
 * panel per state, to BASE.png and BASE.svg; an exit status. */
int cli_predict_fit(struct nde_trainer *tr, const char *base,
                    const char *title);
/* `nde predict CKPT --plot BASE` of a density model (flow.c): the density
 * of a cnf (trace = exact) whose flow ends at t1 on a DENSITY_GRID^2 grid
 * over [-DENSITY_HALF, DENSITY_HALF]^2 (the trainer takes DENSITY_GRID
 * rows), to BASE.png and BASE.svg; an exit status. */
#define DENSITY_GRID 100
#define DENSITY_HALF 4.0
/* Whether cfg's [data] is a density task's (source = density). */
int cli_density_model(const struct nde_config *cfg, struct nde_ctx *ctx);
int cli_predict_density(struct nde_trainer *tr, double t1, const char *base,
                        const char *title);

extern const char cli_solve_help[];
extern const char cli_plugins_help[];
extern const char cli_train_help[];
extern const char cli_predict_help[];
extern const char cli_gradcheck_help[];
extern const char cli_check_help[];
extern const char cli_params_help[];
extern const char cli_graph_help[];

/* Option value: "--opt VALUE", "--opt=VALUE" or "-oVALUE" (shrt may be
 * NULL). NULL when argv[*i] is not this option; *missing is set when it is
 * but no value follows. Advances *i past a separate value. */
const char *cli_option_value(int argc, char **argv, int *i, const char *shrt,
                             const char *lng, int *missing);

/* One -s SECTION.KEY=VALUE or -u SECTION.KEY of the command line. */
typedef struct cli_edit {
    int unset;
    const char *text;
} cli_edit;

/* argv[*i] as -s/--set or -u/--unset (in the forms of cli_option_value):
 * 1 with *e filled in, 0 when it is neither (*missing set when it is one
 * but no value follows). */
int cli_edit_option(int argc, char **argv, int *i, cli_edit *e, int *missing);

/* Apply the edits to cfg in command-line order (nde_config_override,
 * nde_config_unset); NDE_OK or the first failure, with ctx's message. */
int cli_apply_edits(nde_config *cfg, const cli_edit *e, size_t n,
                    nde_ctx *ctx);

/* The trainer of checkpoint ckpt with its parameters (the config it
 * stores loaded into cfg): for commands that read a trained model. An
 * NDE_* status with the message in ctx. */
int cli_trainer_load(nde_ctx *ctx, nde_config *cfg, const char *ckpt,
                     size_t min_batch, struct nde_trainer **tr);

/* A JSON number with 17 significant digits, or null when not finite. */
void cli_json_double(FILE *out, double x);

/*
 * Write a solution as CSV (atomically; NULL or "-" = stdout): a header
 * `t,<state names>` (y0,y1,... when names is NULL),
 * one row per save time; with batch > 1 a leading `batch` column, rows
 * grouped by batch row. ysave is nsave x batch x dim. 0 or -1 (printed).
 */
int cli_write_solution_csv(const char *path, const char *const *names,
                           size_t dim, const double *tsave, size_t nsave,
                           size_t batch, const double *ysave);
/* `,<name>` for each of the dim states (`,y0`, ... when names is NULL),
 * then the header line's end. */
void cli_write_state_names(FILE *fp, const char *const *names, size_t dim);

/*
 * An output file that appears complete or not at all, and never destroys
 * what it should not. A regular file, or a path that does not exist yet,
 * is written to a temporary file "<dir>/.<base>.XXXXXX" in the target's
 * directory and renamed over it by cli_outfile_commit(); a symlink is
 * followed to its final target first, so the link stays a link. A
 * character device, FIFO or socket is written through as it is (no
 * temporary file, no rename). Directories and other types are refused.
 * A NULL or "-" path means stdout.
 */
typedef struct cli_outfile {
    FILE *fp;
    char *path;    /* as given, for messages; NULL for stdout      */
    char *target;  /* what rename replaces; NULL when written through */
    char *tmp;     /* temporary name while open; NULL when through */
} cli_outfile;

/* 0 on success; else prints why and returns -1. */
int cli_outfile_open(cli_outfile *o, const char *path);
/* Flush, sync (a device that cannot sync is fine), close and rename into
 * place; 0 on success, else prints why, removes the temporary file and
 * returns -1. */
int cli_outfile_commit(cli_outfile *o);
/* Close and remove the temporary file (no-op for stdout or when closed).
 * What was written through to a device or FIFO stays written. */
void cli_outfile_discard(cli_outfile *o);
/* Remove the temporary files of path that writers killed before their
 * commit left ("<dir>/.<base>.XXXXXX" as cli_outfile_open names them;
 * only regular files of this user); returns how many. */
int cli_outfile_remove_stale(const char *path);

/*
 * One file a command reads or writes. cli_files_check() takes all of them
 * before the command does any work and refuses (message, -1; exit 2):
 * - an output that cannot be written as cli_outfile_open would: a
 *   directory or block device, a missing or unwritable directory, a
 *   device or FIFO without write permission;
 * - an output that is the same file as an input or as another output
 *   (same device and inode; for a path that does not exist yet, the same
 *   resolved path), naming both. Files of one non-zero `pair` may be the
 *   same (the checkpoint --resume reads and [train] checkpoint replaces).
 *   Devices, FIFOs and sockets are written through, never replaced, so
 *   they do not clash.
 * Entries with a NULL path or "-" (stdout) are skipped, and so are inputs
 * that are not regular files (their reader reports them).
 */
typedef struct cli_file {
    const char *role;  /* how messages name it: "-o", "the config", ... */
    const char *path;
    int output;        /* 1: written by the command; 0: read */
    int pair;
} cli_file;

int cli_files_check(const cli_file *files, size_t n);

#endif
