/*
 * comm.c - the nde program's ranks under an MPI launcher (comm.h).
 *
 * Why a module loaded at run time: a plain `nde` must neither need an
 * MPI library nor pay for one (Open MPI's start outside a launcher is
 * slow and refuses root), so the MPI calls live in nde-mpi.so, looked
 * for next to the program (the build tree) and then where it is
 * installed, and loaded RTLD_GLOBAL (Open MPI's own plugins resolve
 * libmpi's symbols through the global scope).
 */
#include <dlfcn.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "comm.h"
#include "nde_build_config.h"

typedef nde_comm *(*open_fn)(int *argc, char ***argv, char *why,
                             size_t size);

static nde_comm *world;
static FILE *real_stderr;  /* a rank other than 0: its own stderr */
static char *held;         /* ... and what it held back (memstream) */
static size_t held_len;

/* The launcher's variables: its rank of this process, or NULL. */
static const char *launcher_rank(void)
{
    static const char *const vars[][2] = {
        {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"},
        {"PMI_SIZE", "PMI_RANK"},
        {"PMIX_RANK", "PMIX_RANK"}};
    const char *off = getenv("NDE_MPI");

    if (off && strcmp(off, "off") == 0)
        return NULL;
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i][0])) {
            const char *rank = getenv(vars[i][1]);
            return rank ? rank : "0";
        }
    return NULL;
}

static void *load_module(char *why, size_t size)
{
    char exe[PATH_MAX], path[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    void *h;

    if (n > 0) {
        char *slash;
        exe[n] = '\0';
        if ((slash = strrchr(exe, '/'))) {
            *slash = '\0';
            snprintf(path, sizeof path, "%s/nde-mpi.so", exe);
            if ((h = dlopen(path, RTLD_NOW | RTLD_GLOBAL)))
                return h;
            if (access(path, F_OK) == 0) {
                snprintf(why, size, "%s", dlerror());
                return NULL;
            }
        }
    }
    if (!(h = dlopen(NDE_MPI_MODULE, RTLD_NOW | RTLD_GLOBAL)))
        snprintf(why, size, "%s", dlerror());
    return h;
}

/* A rank other than 0: stdout to /dev/null, stderr held back. */
static int hold_output(void)
{
    FILE *mem;
    if (!freopen("/dev/null", "w", stdout) ||
        !(mem = open_memstream(&held, &held_len)))
        return -1;
    real_stderr = stderr;
    stderr = mem;
    return 0;
}

int cli_comm_start(int *argc, char ***argv, const char *command)
{
    const char *rank = launcher_rank();
    char why[512] = "";
    void *h;
    open_fn open;

    if (!rank)
        return CLI_EXIT_OK;
    if (!(h = load_module(why, sizeof why)) ||
        !(open = (open_fn)(uintptr_t)dlsym(h, "nde_comm_mpi_open"))) {
        if (strcmp(rank, "0") == 0)
            cli_error("%s runs under an MPI launcher, but this nde has no "
                      "MPI module (%s): build nde with Open MPI "
                      "(libopenmpi-dev) installed, or set NDE_MPI=off to "
                      "run each rank alone", command,
                      *why ? why : "nde_comm_mpi_open not found");
        return CLI_EXIT_FAILURE;
    }
    if (!(world = open(argc, argv, why, sizeof why))) {
        cli_error("rank %s: %s", rank, why);
        return CLI_EXIT_FAILURE;
    }
    if (world->rank > 0 && hold_output() != 0) {
        cli_error("rank %d: cannot redirect its output: %m", world->rank);
        world->abort(world, CLI_EXIT_FAILURE);
    }
    return CLI_EXIT_OK;
}

nde_comm *cli_comm(void) { return world; }
int cli_rank(void) { return world ? world->rank : 0; }
int cli_ranks(void) { return world ? world->size : 1; }

/* What this rank held back, each "nde: " line as "nde: rank R: ". */
static void print_held(void)
{
    const char *line = held, *end = held + held_len;

    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = nl ? (size_t)(nl - line) + 1 : (size_t)(end - line);
        if (n > 5 && strncmp(line, "nde: ", 5) == 0)
            fprintf(real_stderr, "nde: rank %d: %.*s", world->rank,
                    (int)(n - 5), line + 5);
        else
            fwrite(line, 1, n, real_stderr);
        line += n;
    }
}

/* Drop what this rank held back, printed first when told to; hold back
 * again when told to. */
static void release(int print, int again)
{
    fclose(stderr);
    if (print)
        print_held();
    fflush(real_stderr);
    free(held);
    held = NULL;
    held_len = 0;
    stderr = real_stderr;
    if (again && (stderr = open_memstream(&held, &held_len)) == NULL) {
        stderr = real_stderr;
        cli_error("rank %d: cannot hold back its messages: %m", world->rank);
        world->abort(world, CLI_EXIT_FAILURE);
    }
}

int cli_comm_agree(int code)
{
    int *codes, first = -1, result = code;
    size_t *cnt, *at;
    const size_t K = world ? (size_t)world->size : 1;

    if (!world || K == 1)
        return code;
    codes = calloc(K, sizeof *codes);
    cnt = calloc(2 * K, sizeof *cnt);
    if (!codes || !cnt) {
        cli_error("rank %d: out of memory", world->rank);
        world->abort(world, CLI_EXIT_FAILURE);
    }
    at = cnt + K;
    for (size_t r = 0; r < K; r++) {
        cnt[r] = sizeof *codes;
        at[r] = r * sizeof *codes;
    }
    codes[world->rank] = code;
    if (world->allgather(world, codes, cnt, at) != 0) {
        cli_error("rank %d: the ranks cannot exchange their status",
                  world->rank);
        world->abort(world, CLI_EXIT_FAILURE);
    }
    for (size_t r = 0; r < K && first < 0; r++)
        if (codes[r] != 0)
            first = (int)r;
    if (first >= 0 && result == 0)
        result = codes[first];
    if (world->rank > 0)
        release(first == world->rank && codes[0] == 0, 1);
    free(codes);
    free(cnt);
    return result;
}

int cli_comm_end(int code)
{
    if (!world)
        return code;
    if (world->rank > 0)
        release(0, 0);
    world->close(world);
    world = NULL;
    return code;
}
