/* lock -- one owner per run directory or data file; see include/io/lock.h. */
#include "io/lock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *target;    /* the run directory or data file */
    char *file;      /* the lock file */
    LockKind kind;
    int fd;          /* kept open: closing any descriptor of the file drops a POSIX lock */
    char *made_dir;  /* the directory the lock created (the run directory, a data file's directory), or NULL */
    int made_file;   /* the lock created the lock file */
} Held;

static Held *g_held;
static int g_n_held;
static int g_atexit;

static char *lock_file_of(const char *path, LockKind kind) {
    return kind == LOCK_RUN_DIR ? xasprintf("%s/lock", path) : xasprintf("%s.lock", path);
}

static Held *find_held(const char *path, LockKind kind) {
    for (int i = 0; i < g_n_held; i++)
        if (g_held[i].kind == kind && !strcmp(g_held[i].target, path)) return &g_held[i];
    return NULL;
}

int lock_held(const char *path, LockKind kind) { return find_held(path, kind) != NULL; }

/* 1 if the run directory holds nothing but the lock file */
static int dir_only_lock(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int other = 0;
    struct dirent *ent;
    while ((ent = readdir(d)))
        if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, "..") && strcmp(ent->d_name, "lock")) other = 1;
    closedir(d);
    return !other;
}

/* At exit: remove what the locks created when nothing was written under them. */
static void cleanup_at_exit(void) {
    for (int i = 0; i < g_n_held; i++) {
        Held *h = &g_held[i];
        int untouched = h->kind == LOCK_RUN_DIR ? dir_only_lock(h->target) : !util_file_exists(h->target);
        if (!untouched) continue;
        if (h->made_file) unlink(h->file);
        if (h->made_dir) rmdir(h->made_dir);
    }
}

void lock_release(const char *path, LockKind kind) {
    Held *h = find_held(path, kind);
    if (!h) return;
    int untouched = kind == LOCK_RUN_DIR ? dir_only_lock(h->target) : !util_file_exists(h->target);
    if (untouched && h->made_file) unlink(h->file); /* before the lock goes: no one can have it yet */
    if (untouched && h->made_dir) rmdir(h->made_dir);
    close(h->fd);
    free(h->target);
    free(h->file);
    free(h->made_dir);
    *h = g_held[--g_n_held];
}

/* The owner line recorded in the lock file. */
static void write_owner(int fd) {
    char host[256] = "?", when[64] = "?";
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *job = getenv("SLURM_JOB_ID");
    char *line = xasprintf("PID %ld on host %s%s%s%s since %s\n", (long)getpid(), host, job ? " (Slurm job " : "",
                           job ? job : "", job ? ")" : "", when);
    if (ftruncate(fd, 0) == 0 && pwrite(fd, line, strlen(line), 0) > 0) fsync(fd);
    free(line);
}

/* The owner line of a lock file held by another process ("" if unreadable). */
static void read_owner(const char *file, char *buf, size_t n) {
    buf[0] = 0;
    FILE *f = fopen(file, "r");
    if (!f) return;
    if (!fgets(buf, (int)n, f)) buf[0] = 0;
    fclose(f);
    size_t len = strlen(buf);
    if (len && buf[len - 1] == '\n') buf[len - 1] = 0;
}

static int try_lock(int fd) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    return fcntl(fd, F_SETLK, &fl);
}

int lock_acquire(const char *path, LockKind kind, double wait_s, Err *e) {
    if (find_held(path, kind)) return 0;
    Held h = {.target = xstrdup(path), .file = lock_file_of(path, kind), .kind = kind, .fd = -1};
    /* the directory the lock file goes into: the run directory, or the data file's (ingest writes a new
     * data.path wherever it points) */
    char *dir = xstrdup(path);
    if (kind == LOCK_DATA_FILE) {
        char *slash = strrchr(dir, '/');
        if (slash) slash[slash == dir] = 0; /* "/x" -> "/" */
        else dir[0] = 0;
    }
    if (dir[0] && !util_file_exists(dir)) {
        if (util_mkdir_p(dir, e) != 0) {
            free(dir);
            goto fail;
        }
        h.made_dir = dir;
    } else {
        free(dir);
    }
    h.made_file = !util_file_exists(h.file);
    h.fd = open(h.file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (h.fd < 0) {
        err_set(e, "%s: cannot create the lock file: %s (hint: is the directory writable?)", h.file, strerror(errno));
        goto fail;
    }
    double t0 = util_now();
    while (1) {
        if (try_lock(h.fd) == 0) {
            /* the file may have been removed and re-made by an owner that left nothing behind: the lock
             * counts only on the file that is there now */
            struct stat a, b;
            if (fstat(h.fd, &a) == 0 && stat(h.file, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) break;
            close(h.fd);
            h.fd = open(h.file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (h.fd < 0) {
                err_set(e, "%s: cannot create the lock file: %s", h.file, strerror(errno));
                goto fail;
            }
            continue;
        }
        if (errno != EACCES && errno != EAGAIN) {
            err_set(e, "%s: cannot lock: %s (hint: a file system without POSIX locks?)", h.file, strerror(errno));
            goto fail;
        }
        if (util_now() - t0 >= wait_s) {
            char owner[512];
            read_owner(h.file, owner, sizeof owner);
            err_set(e, "%s: in use by %s (hint: another hdistill owns it; wait for it to end or cancel it -- "
                       "run.lock_wait=S waits S seconds for a requeued job's old step)",
                    path, owner[0] ? owner : "another process");
            h.made_file = 0; /* the other process's */
            goto fail;
        }
        usleep(100000);
    }
    write_owner(h.fd);
    if (!g_atexit) {
        util_on_exit(cleanup_at_exit);
        g_atexit = 1;
    }
    g_held = xrealloc(g_held, sizeof(Held) * (size_t)(g_n_held + 1));
    g_held[g_n_held++] = h;
    return 0;
fail:
    if (h.fd >= 0) close(h.fd);
    if (h.made_file) unlink(h.file);
    if (h.made_dir) rmdir(h.made_dir);
    free(h.target);
    free(h.file);
    free(h.made_dir);
    return -1;
}
