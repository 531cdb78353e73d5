/*
 * outfile.c - output files that appear complete or not at all, and never
 * destroy what they should not.
 *
 * What a path names decides how it is written:
 * - a regular file, or a path that does not exist yet: the data go to a
 *   temporary file "<dir>/.<base>.XXXXXX" next to it (same directory, so
 *   same file system) and rename(2) replaces it in one step: a reader, or
 *   a failed run, never sees a half-written file. A symlink is followed to
 *   its final target first (a dangling one to the path it names), so the
 *   link stays a link and its target gets the data.
 * - a character device, FIFO or socket: written through as it is, so
 *   /dev/null stays a device and a FIFO's reader gets the data.
 * - anything else (a directory, a block device) is refused.
 *
 * cli_files_check() applies the same rules to every file of a command
 * before it starts, and refuses an output that is one of its inputs or
 * another of its outputs.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include "cli.h"

enum { OUT_ATOMIC, OUT_THROUGH };

/* Symlinks followed before giving up: the kernel's own limit (ELOOP). */
#define MAX_LINKS 40

static int is_stdout(const char *path)
{
    return path == NULL || strcmp(path, "-") == 0;
}

/* "nde: [ROLE ]PATH: <message>". */
static void out_error(const char *role, const char *path, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));

static void out_error(const char *role, const char *path, const char *fmt,
                      ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_error("%s%s%s: %s", role ? role : "", role ? " " : "", path, msg);
}

/* The last component of path (all of it when it has no '/'). */
static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The target of the symlink at path, a relative one taken relative to
 * path's directory; malloc'd, or NULL with errno set. */
static char *link_target(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t cap = 128, dirlen;
    char *buf = NULL, *out;
    ssize_t n;

    do {
        free(buf);
        cap *= 2;
        if (!(buf = malloc(cap)))
            return NULL;
        if ((n = readlink(path, buf, cap)) < 0) {
            free(buf);
            return NULL;
        }
    } while ((size_t)n == cap);  /* maybe cut: read again, larger */
    buf[n] = '\0';
    if (buf[0] == '/' || !slash)
        return buf;
    dirlen = (size_t)(slash - path) + 1;
    if ((out = malloc(dirlen + (size_t)n + 1))) {
        memcpy(out, path, dirlen);
        memcpy(out + dirlen, buf, (size_t)n + 1);
    }
    free(buf);
    return out;
}

static const char *type_name(mode_t mode)
{
    return S_ISDIR(mode)   ? "a directory"
           : S_ISBLK(mode) ? "a block device"
                           : "not a regular file";
}

/*
 * How path is written: OUT_THROUGH for a character device, FIFO or socket
 * (however reached: stat follows every link the kernel does, /dev/stdout
 * included); OUT_ATOMIC for a regular file or a new one, with *target the
 * name rename(2) replaces (path with its symlinks followed; malloc'd) and
 * *st its status, st_mode 0 when it does not exist yet. -1 with a message
 * (naming role, when not NULL, and path) for anything else.
 */
static int out_resolve(const char *role, const char *path, char **target,
                       struct stat *st)
{
    struct stat want;
    const char *base;
    char *p, *next;
    int links, exists;

    *target = NULL;
    if ((exists = stat(path, &want) == 0)) {
        if (S_ISCHR(want.st_mode) || S_ISFIFO(want.st_mode) ||
            S_ISSOCK(want.st_mode))
            return OUT_THROUGH;
        if (!S_ISREG(want.st_mode)) {
            out_error(role, path, "is %s; nde writes only files, character "
                      "devices, FIFOs and sockets", type_name(want.st_mode));
            return -1;
        }
    } else if (errno != ENOENT) {
        out_error(role, path, "%s", strerror(errno));
        return -1;
    }
    if (!(p = strdup(path))) {
        cli_error("out of memory");
        return -1;
    }
    for (links = 0;; links++) {
        if (lstat(p, st) != 0) {
            if (errno != ENOENT)
                goto fail;
            memset(st, 0, sizeof *st);
            break;
        }
        if (!S_ISLNK(st->st_mode))
            break;
        if (links == MAX_LINKS) {
            errno = ELOOP;
            goto fail;
        }
        if (!(next = link_target(p)))
            goto fail;
        free(p);
        p = next;
    }
    /* The name reached must be the file the kernel reached: a link of
     * /proc (to a deleted file, say) names no path that rename can use. */
    if (exists != (st->st_mode != 0) ||
        (exists && (st->st_dev != want.st_dev || st->st_ino != want.st_ino))) {
        out_error(role, path, "its symlinks lead to no path that can be "
                  "replaced (%s)", p);
        free(p);
        return -1;
    }
    base = base_of(p);
    if (*base == '\0') {
        out_error(role, path, "not a file name");
        free(p);
        return -1;
    }
    *target = p;
    return OUT_ATOMIC;
fail:
    out_error(role, path, "%s", strerror(errno));
    free(p);
    return -1;
}

/* The directory part of target ("." when none); malloc'd or NULL. */
static char *dir_of(const char *target)
{
    const char *slash = strrchr(target, '/');

    if (!slash)
        return strdup(".");
    if (slash == target)
        return strdup("/");
    return strndup(target, (size_t)(slash - target));
}

/* A socket is written through a stream connection to it. */
static int connect_socket(const char *path)
{
    struct sockaddr_un addr;
    int fd;

    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr.sun_path, path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int open_through(cli_outfile *o)
{
    struct stat st;
    int fd;

    /* Opening a FIFO waits for its reader, as a shell redirection does. */
    if (stat(o->path, &st) == 0 && S_ISSOCK(st.st_mode))
        fd = connect_socket(o->path);
    else
        fd = open(o->path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || !(o->fp = fdopen(fd, "w"))) {
        cli_error("%s: cannot open it for writing: %s", o->path,
                  strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return 0;
}

/* The temporary file next to o->target; st is the target's status. */
static int open_temp(cli_outfile *o, const struct stat *st)
{
    const char *base = base_of(o->target);
    size_t len = strlen(o->target) + sizeof "/..XXXXXX";
    mode_t mode, mask;
    int fd;

    /* "<dir>/.<base>.XXXXXX": hidden, and in the target's directory. */
    if (!(o->tmp = malloc(len))) {
        cli_error("out of memory");
        return -1;
    }
    snprintf(o->tmp, len, "%.*s.%s.XXXXXX", (int)(base - o->target),
             o->target, base);
    if ((fd = mkstemp(o->tmp)) < 0) {
        cli_error("%s: cannot create a file there: %s", o->path,
                  strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    /* mkstemp makes 0600: keep the mode of the file replaced, or give a
     * new one the mode a plain fopen would. */
    mask = umask(0);
    umask(mask);
    mode = st->st_mode ? st->st_mode & 07777 : 0666 & ~mask;
    if (fchmod(fd, mode) != 0 || !(o->fp = fdopen(fd, "w"))) {
        cli_error("%s: %s", o->tmp, strerror(errno));
        close(fd);
        return -1;
    }
    return 0;
}

int cli_outfile_open(cli_outfile *o, const char *path)
{
    struct stat st;
    char *target;
    int kind;

    memset(o, 0, sizeof *o);
    if (is_stdout(path)) {
        o->fp = stdout;
        return 0;
    }
    if ((kind = out_resolve(NULL, path, &target, &st)) < 0)
        return -1;
    o->target = target;
    if (!(o->path = strdup(path))) {
        cli_error("out of memory");
        cli_outfile_discard(o);
        return -1;
    }
    if ((kind == OUT_THROUGH ? open_through(o) : open_temp(o, &st)) != 0) {
        cli_outfile_discard(o);
        return -1;
    }
    return 0;
}

/* fsync; devices, FIFOs and sockets need not support it. */
static int sync_file(FILE *fp, int through)
{
    if (fsync(fileno(fp)) == 0)
        return 0;
    return through && (errno == EINVAL || errno == ENOTSUP ||
                       errno == EOPNOTSUPP) ? 0 : -1;
}

int cli_outfile_commit(cli_outfile *o)
{
    int err = 0;

    if (!o->path) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
            cli_error("writing to standard output: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    if (fflush(o->fp) != 0 || ferror(o->fp) || sync_file(o->fp, !o->tmp))
        err = errno ? errno : EIO;
    if (fclose(o->fp) != 0 && !err)
        err = errno;
    o->fp = NULL;
    if (!err && o->tmp && rename(o->tmp, o->target) != 0)
        err = errno;
    if (err) {
        cli_error("%s: %s", o->path, strerror(err));
        cli_outfile_discard(o);
        return -1;
    }
    free(o->tmp);
    o->tmp = NULL;
    cli_outfile_discard(o);
    return 0;
}

void cli_outfile_discard(cli_outfile *o)
{
    if (o->path && o->fp)
        fclose(o->fp);
    if (o->tmp)
        unlink(o->tmp);
    free(o->tmp);
    free(o->target);
    free(o->path);
    memset(o, 0, sizeof *o);
}

/* ---- the files of one command ------------------------------------------ */

/* What an entry is compared by: device and inode of an existing regular
 * file, the resolved path of a new one; `skip` for stdout, devices,
 * FIFOs, sockets (written through, never replaced) and missing inputs
 * (their reader reports them). */
typedef struct file_id {
    int skip;
    dev_t dev;
    ino_t ino;
    char *canon;
} file_id;

/* A new output's canonical path: its directory's realpath + its name. */
static char *canon_path(const char *target, const char *dir)
{
    const char *base = base_of(target);
    char *real = realpath(dir, NULL), *out = NULL;
    size_t len;

    if (real) {
        len = strlen(real) + strlen(base) + 2;
        if ((out = malloc(len)))
            snprintf(out, len, "%s/%s", real, base);
    }
    free(real);
    return out;
}

/* Can the output be written? Fills id. 0, or -1 with a message. */
static int output_id(const cli_file *f, file_id *id)
{
    struct stat st, dst;
    char *target = NULL, *dir = NULL;
    int kind, rc = -1;

    if ((kind = out_resolve(f->role, f->path, &target, &st)) < 0)
        return -1;
    if (kind == OUT_THROUGH) {
        id->skip = 1;
        if (access(f->path, W_OK) == 0)
            return 0;
        out_error(f->role, f->path, "cannot write to it: %s",
                  strerror(errno));
        return -1;
    }
    if (!(dir = dir_of(target)))
        cli_error("out of memory");
    else if (stat(dir, &dst) != 0 || !S_ISDIR(dst.st_mode))
        out_error(f->role, f->path, "no directory %s to write it in", dir);
    else if (access(dir, W_OK | X_OK) != 0)
        out_error(f->role, f->path, "cannot create files in %s: %s", dir,
                  strerror(errno));
    else if (st.st_mode != 0) {
        id->dev = st.st_dev;
        id->ino = st.st_ino;
        rc = 0;
    } else if (!(id->canon = canon_path(target, dir)))
        out_error(f->role, f->path, "%s", strerror(errno));
    else
        rc = 0;
    free(dir);
    free(target);
    return rc;
}

static int same_file(const file_id *a, const file_id *b)
{
    if (a->skip || b->skip || !a->canon != !b->canon)
        return 0;
    if (a->canon)
        return strcmp(a->canon, b->canon) == 0;
    return a->dev == b->dev && a->ino == b->ino;
}

int cli_files_check(const cli_file *files, size_t n)
{
    file_id *ids = calloc(n ? n : 1, sizeof *ids);
    struct stat st;
    size_t i, j;
    int rc = 0;

    if (!ids) {
        cli_error("out of memory");
        return -1;
    }
    for (i = 0; i < n && rc == 0; i++) {
        const cli_file *f = &files[i];
        if (is_stdout(f->path))
            ids[i].skip = 1;
        else if (f->output)
            rc = output_id(f, &ids[i]);
        else if (stat(f->path, &st) != 0 || !S_ISREG(st.st_mode))
            ids[i].skip = 1;
        else {
            ids[i].dev = st.st_dev;
            ids[i].ino = st.st_ino;
        }
    }
    for (i = 0; i < n && rc == 0; i++)
        for (j = i + 1; j < n && rc == 0; j++) {
            const cli_file *a = &files[i], *b = &files[j];
            if (!(a->output || b->output) || (a->pair && a->pair == b->pair) ||
                !same_file(&ids[i], &ids[j]))
                continue;
            if (!a->output) {  /* name the output first */
                const cli_file *t = a;
                a = b;
                b = t;
            }
            cli_error("%s %s is the same file as %s %s: refused, nothing "
                      "written", a->role, a->path, b->role, b->path);
            rc = -1;
        }
    for (i = 0; i < n; i++)
        free(ids[i].canon);
    free(ids);
    return rc;
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
    char *target, *dir = NULL;
    const char *base;
    struct dirent *e;
    struct stat st;
    size_t blen;
    DIR *d = NULL;
    int removed = 0;

    /* The temporaries are next to what rename(2) replaces: a symlink's
     * target. Special files have none. */
    if (is_stdout(path) || out_resolve(NULL, path, &target, &st) != OUT_ATOMIC)
        return 0;
    base = base_of(target);
    blen = strlen(base);
    if ((dir = dir_of(target)) && (d = opendir(dir)))
        while ((e = readdir(d)))
            if (e->d_name[0] == '.' &&
                strncmp(e->d_name + 1, base, blen) == 0 &&
                e->d_name[1 + blen] == '.' &&
                is_mkstemp_suffix(e->d_name + 2 + blen) &&
                fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISREG(st.st_mode) && st.st_uid == getuid() &&
                unlinkat(dirfd(d), e->d_name, 0) == 0)
                removed++;
    if (d)
        closedir(d);
    free(dir);
    free(target);
    return removed;
}
