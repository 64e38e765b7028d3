/* Files written atomically: through PATH.tmp.<pid>, synced, renamed over PATH, with
 * the directory synced, so a reader (or a crash) sees the old file or the whole new
 * one. Every writer of snncl (model files and checkpoints, tuning files, the CLI's
 * pictures) goes through here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"

struct snn_file {
    char *path, *tmp;
    FILE *stream;
};

snn_status snn_file_begin(snn_file **out, const char *path) {
    SNN_REQUIRE_ARG("snn_file_begin", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_file_begin", path);
    if (!path[0]) return snn_fail(SNN_ERR_INVALID_ARG, "snn_file_begin: path is empty");
    snn_file *f = calloc(1, sizeof *f);
    const size_t len = strlen(path);
    if (f) f->path = malloc(len + 1);
    if (f && f->path) f->tmp = malloc(len + 32);
    if (!f || !f->path || !f->tmp) {
        snn_file_abort(f);
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    memcpy(f->path, path, len + 1);
    snprintf(f->tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
    (void)unlink(f->tmp); /* a leftover of an earlier crash of a process with our pid */
    const int fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    f->stream = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f->stream) {
        snn_status st = snn_fail(SNN_ERR_IO, "%s: cannot create temporary file %s: %s", path, f->tmp, strerror(errno));
        if (fd >= 0) close(fd);
        free(f->path);
        free(f->tmp);
        free(f);
        return st;
    }
    *out = f;
    return SNN_OK;
}

FILE *snn_file_stream(snn_file *f) { return f ? f->stream : NULL; }

/* The directory holding path into dir ("." for a bare name); returns path's last
 * component. */
static const char *split_dir(const char *path, char *dir, size_t len) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, len, ".");
    else
        snprintf(dir, len, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    return slash ? slash + 1 : path;
}

/* Best effort: makes the rename durable by syncing the directory holding path. */
static void sync_parent_dir(const char *path) {
    char dir[4096];
    split_dir(path, dir, sizeof dir);
    const int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

snn_status snn_file_commit(snn_file *f) {
    SNN_REQUIRE_ARG("snn_file_commit", f);
    snn_status st = SNN_OK;
    if (ferror(f->stream) || fflush(f->stream) != 0 || fsync(fileno(f->stream)) != 0)
        st = snn_fail(SNN_ERR_IO, "%s: cannot write %s: %s", f->path, f->tmp, strerror(errno ? errno : EIO));
    if (fclose(f->stream) != 0 && st == SNN_OK)
        st = snn_fail(SNN_ERR_IO, "%s: cannot close %s: %s", f->path, f->tmp, strerror(errno));
    f->stream = NULL;
    if (st == SNN_OK && rename(f->tmp, f->path) != 0)
        st = snn_fail(SNN_ERR_IO, "%s: cannot rename %s into place: %s", f->path, f->tmp, strerror(errno));
    if (st == SNN_OK) sync_parent_dir(f->path);
    snn_file_abort(f); /* removes the temporary file if it is still there */
    return st;
}

void snn_file_abort(snn_file *f) {
    if (!f) return;
    if (f->stream) fclose(f->stream);
    if (f->tmp) (void)unlink(f->tmp);
    free(f->tmp);
    free(f->path);
    free(f);
}

int snn_file_remove_stale(const char *path) {
    if (!path || !path[0]) return 0;
    char dir[4096];
    const char *base = split_dir(path, dir, sizeof dir);
    const size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0) continue;
        char *end;
        const long pid = strtol(name + blen + 5, &end, 10);
        if (end == name + blen + 5 || *end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* its writer may still be at work */
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", dir, name);
        if (unlink(full) == 0) {
            snn_log(SNN_LOG_WARN, "removed %s, left by a writer that was killed", full);
            removed++;
        }
    }
    closedir(d);
    return removed;
}
