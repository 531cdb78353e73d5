/*
 * outfile.c - output files that appear complete or not at all.
 *
 * The data go to a temporary file next to the destination (same directory,
 * so same file system) and rename(2) replaces the destination in one step:
 * a reader, or a failed run, never sees a half-written file.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static int is_stdout(const char *path)
{
    return path == NULL || strcmp(path, "-") == 0;
}

int cli_outfile_open(cli_outfile *o, const char *path)
{
    const char *slash, *base;
    size_t dirlen, len;
    mode_t mask;
    int fd;

    memset(o, 0, sizeof *o);
    if (is_stdout(path)) {
        o->fp = stdout;
        return 0;
    }
    slash = strrchr(path, '/');
    base = slash ? slash + 1 : path;
    dirlen = (size_t)(base - path);
    if (*base == '\0') {
        cli_error("%s: not a file name", path);
        return -1;
    }
    /* "<dir>/.<base>.XXXXXX": hidden, and in the destination's directory. */
    len = strlen(path) + sizeof "/..XXXXXX";
    o->path = strdup(path);
    o->tmp = malloc(len);
    if (!o->path || !o->tmp) {
        cli_error("out of memory");
        cli_outfile_discard(o);
        return -1;
    }
    snprintf(o->tmp, len, "%.*s.%s.XXXXXX", (int)dirlen, path, base);
    if ((fd = mkstemp(o->tmp)) < 0) {
        cli_error("%s: cannot create a file there: %s", path, strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        cli_outfile_discard(o);
        return -1;
    }
    /* mkstemp makes 0600; give the file the mode a plain fopen would. */
    mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(o->fp = fdopen(fd, "w"))) {
        cli_error("%s: %s", o->tmp, strerror(errno));
        close(fd);
        cli_outfile_discard(o);
        return -1;
    }
    return 0;
}

int cli_outfile_commit(cli_outfile *o)
{
    int failed;

    if (!o->path) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
            cli_error("writing to standard output: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    failed = fflush(o->fp) != 0 || ferror(o->fp) || fsync(fileno(o->fp)) != 0;
    if (fclose(o->fp) != 0)
        failed = 1;
    o->fp = NULL;
    if (failed || rename(o->tmp, o->path) != 0) {
        cli_error("%s: %s", o->path, strerror(errno));
        cli_outfile_discard(o);
        return -1;
    }
    free(o->tmp);
    free(o->path);
    o->tmp = o->path = NULL;
    return 0;
}

void cli_outfile_discard(cli_outfile *o)
{
    if (o->path && o->fp)
        fclose(o->fp);
    if (o->tmp)
        unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
}

/* mkstemp's replacement for XXXXXX: six of [A-Za-z0-9]. */
static int is_mkstemp_suffix(const char *s)
{
    size_t i;

    for (i = 0; i < 6; i++)
        if (!isalnum((unsigned char)s[i]))
            return 0;
    return s[6] == '\0';
}

int cli_outfile_remove_stale(const char *path)
{
    const char *slash, *base;
    char *dir, *full;
    struct dirent *e;
    struct stat st;
    size_t blen;
    DIR *d;
    int removed = 0;

    if (is_stdout(path))
        return 0;
    slash = strrchr(path, '/');
    base = slash ? slash + 1 : path;
    blen = strlen(base);
    dir = slash ? strndup(path, (size_t)(slash - path) + 1) : strdup("./");
    if (!dir || blen == 0 || !(d = opendir(dir))) {
        free(dir);
        return 0;
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.' || strncmp(e->d_name + 1, base, blen) != 0 ||
            e->d_name[1 + blen] != '.' ||
            !is_mkstemp_suffix(e->d_name + 2 + blen))
            continue;
        if (!(full = malloc(strlen(dir) + strlen(e->d_name) + 1)))
            break;
        strcpy(full, dir);
        strcat(full, e->d_name);
        if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) &&
            st.st_uid == getuid() && unlink(full) == 0)
            removed++;
        free(full);
    }
    closedir(d);
    free(dir);
    return removed;
}
