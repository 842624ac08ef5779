/* test_lock -- io/lock: one owner per run directory or data file.
 * Other owners are forked children (fcntl record locks are per process and
 * not inherited), so every case is a real second process:
 *  - a lock taken is held, re-entrant, and its file is RUN_DIR/lock or PATH.lock
 *    (missing directories created);
 *  - a second process is refused with a message naming the path and the
 *    owner's PID, after waiting about wait_s, and changes nothing;
 *  - the kernel releases the lock of a SIGKILLed owner; a waiting process gets
 *    a lock its owner lets go within wait_s;
 *  - lock_release lets another process take it;
 *  - a process that wrote nothing removes the lock file and the directory it
 *    created at exit. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "io/lock.h"
#include "test.h"

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* In a child: try the lock with wait_s; exit 0 if taken, 1 if refused (the
 * message, and the seconds waited, written to fd). hold_s > 0: keep it that
 * long first; hold_s < 0: keep it until killed. */
static pid_t try_in_child(const char *path, LockKind kind, double wait_s, double hold_s, int fd) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    Err e = {{0}};
    double t0 = util_now();
    int rc = lock_acquire(path, kind, wait_s, &e);
    char buf[600];
    int n = snprintf(buf, sizeof buf, "%.3f %s", util_now() - t0, rc ? e.msg : "taken");
    if (fd >= 0 && write(fd, buf, (size_t)n + 1) < 0) _exit(9);
    if (rc == 0 && hold_s < 0) {
        for (;;) pause();
    }
    if (rc == 0 && hold_s > 0) usleep((useconds_t)(hold_s * 1e6));
    _exit(rc ? 1 : 0);
}

static int child_status(pid_t pid) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs a child that tries path with wait_s and returns at once; its exit
 * status, message and the seconds it waited. */
static int second_process(const char *path, LockKind kind, double wait_s, char *msg, size_t n, double *waited) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    pid_t pid = try_in_child(path, kind, wait_s, 0, p[1]);
    close(p[1]);
    char buf[600] = {0};
    ssize_t got = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    int rc = child_status(pid);
    *waited = got > 0 ? atof(buf) : -1;
    const char *sp = got > 0 ? strchr(buf, ' ') : NULL;
    snprintf(msg, n, "%s", sp ? sp + 1 : "");
    return rc;
}

static void test_run_dir(const char *root) {
    char *dir = xasprintf("%s/runs/a", root), *lockf = xasprintf("%s/runs/a/lock", root);
    Err e = {{0}};
    EXPECT(!exists(dir), "fresh");
    EXPECT(lock_acquire(dir, LOCK_RUN_DIR, 0, &e) == 0, "%s", e.msg);
    EXPECT(exists(lockf), "%s holds the lock file", lockf);
    EXPECT(lock_held(dir, LOCK_RUN_DIR) == 1, "held");
    EXPECT(lock_held(dir, LOCK_DATA_FILE) == 0, "a run directory's lock is not a data file's");
    EXPECT(lock_acquire(dir, LOCK_RUN_DIR, 0, &e) == 0, "re-entrant: %s", e.msg);

    char msg[600], pidtxt[32];
    double waited;
    snprintf(pidtxt, sizeof pidtxt, "%d", (int)getpid());
    int rc = second_process(dir, LOCK_RUN_DIR, 0, msg, sizeof msg, &waited);
    EXPECT(rc == 1, "a second process is refused (rc %d, %s)", rc, msg);
    EXPECT(strstr(msg, dir) != NULL, "the message names the directory: %s", msg);
    EXPECT(strstr(msg, pidtxt) != NULL, "the message names the owner's PID %s: %s", pidtxt, msg);
    EXPECT(waited >= 0 && waited < 0.5, "wait 0 does not wait (%.3f s)", waited);
    rc = second_process(dir, LOCK_RUN_DIR, 0.6, msg, sizeof msg, &waited);
    EXPECT(rc == 1 && waited >= 0.55 && waited < 5, "wait 0.6 waits about 0.6 s then refuses (rc %d, %.3f s)", rc,
           waited);
    EXPECT(exists(lockf), "the refused process left the lock file");

    lock_release(dir, LOCK_RUN_DIR);
    EXPECT(lock_held(dir, LOCK_RUN_DIR) == 0, "released");
    rc = second_process(dir, LOCK_RUN_DIR, 0, msg, sizeof msg, &waited);
    EXPECT(rc == 0, "after lock_release another process takes it (rc %d, %s)", rc, msg);
    free(dir), free(lockf);
}

static void test_kill_and_wait(const char *root) {
    char *dir = xasprintf("%s/runs/k", root);
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    pid_t owner = try_in_child(dir, LOCK_RUN_DIR, 0, -1, p[1]);
    close(p[1]);
    char buf[600] = {0};
    EXPECT(read(p[0], buf, sizeof buf - 1) > 0 && strstr(buf, "taken"), "the child owns %s: %s", dir, buf);
    close(p[0]);
    Err e = {{0}};
    EXPECT(lock_acquire(dir, LOCK_RUN_DIR, 0, &e) != 0, "refused while the child owns it");
    char pidtxt[32];
    snprintf(pidtxt, sizeof pidtxt, "%d", (int)owner);
    EXPECT(strstr(e.msg, pidtxt) != NULL, "names the child's PID %s: %s", pidtxt, e.msg);
    kill(owner, SIGKILL);
    EXPECT(child_status(owner) == 128 + SIGKILL, "the owner was killed");
    e.msg[0] = 0;
    EXPECT(lock_acquire(dir, LOCK_RUN_DIR, 0, &e) == 0, "the kernel released a killed owner's lock: %s", e.msg);

    /* an owner that lets go within the wait */
    char *dir2 = xasprintf("%s/runs/w", root);
    CHECK(pipe(p) == 0, "pipe");
    pid_t o2 = try_in_child(dir2, LOCK_RUN_DIR, 0, 0.4, p[1]);
    close(p[1]);
    EXPECT(read(p[0], buf, sizeof buf - 1) > 0 && strstr(buf, "taken"), "the child owns %s", dir2);
    close(p[0]);
    double t0 = util_now();
    e.msg[0] = 0;
    int rc = lock_acquire(dir2, LOCK_RUN_DIR, 10, &e);
    double dt = util_now() - t0;
    EXPECT(rc == 0 && dt >= 0.2 && dt < 5, "a waiting process gets it when the owner ends (rc %d, %.2f s, %s)", rc,
           dt, e.msg);
    EXPECT(child_status(o2) == 0, "the owner ended normally");
    free(dir), free(dir2);
}

static void test_data_file(const char *root) {
    char *path = xasprintf("%s/data/new/d.h5", root), *lockf = xasprintf("%s/data/new/d.h5.lock", root);
    Err e = {{0}};
    EXPECT(lock_acquire(path, LOCK_DATA_FILE, 0, &e) == 0, "%s", e.msg);
    EXPECT(exists(lockf), "PATH.lock, its missing directory created");
    char msg[600];
    double waited;
    int rc = second_process(path, LOCK_DATA_FILE, 0, msg, sizeof msg, &waited);
    EXPECT(rc == 1 && strstr(msg, path), "a second writer is refused naming the file: %s", msg);
    lock_release(path, LOCK_DATA_FILE);
    EXPECT(lock_held(path, LOCK_DATA_FILE) == 0, "released");
    rc = second_process(path, LOCK_DATA_FILE, 0, msg, sizeof msg, &waited);
    EXPECT(rc == 0, "after lock_release another process takes it (rc %d, %s)", rc, msg);
    free(path), free(lockf);
}

/* A child that locks a fresh run directory and exits without writing. */
static void test_cleanup(const char *root) {
    char *dir = xasprintf("%s/fresh/run", root), *parent = xasprintf("%s/fresh", root);
    pid_t pid = fork();
    if (pid == 0) {
        Err e;
        exit(lock_acquire(dir, LOCK_RUN_DIR, 0, &e) == 0 && exists(dir) ? 0 : 1);
    }
    EXPECT(child_status(pid) == 0, "the child locked %s", dir);
    EXPECT(!exists(dir), "the run directory it created is gone again");
    EXPECT(exists(parent) == 0 || exists(parent) == 1, "(the outer one may stay)");

    /* a directory that holds something else stays */
    char *kept = xasprintf("%s/kept", root), *f = xasprintf("%s/kept/config.json", root);
    CHECK(mkdir(kept, 0755) == 0, "mkdir");
    FILE *fp = fopen(f, "w");
    CHECK(fp, "fopen");
    fputs("{}\n", fp);
    fclose(fp);
    pid = fork();
    if (pid == 0) {
        Err e;
        exit(lock_acquire(kept, LOCK_RUN_DIR, 0, &e) == 0 ? 0 : 1);
    }
    EXPECT(child_status(pid) == 0, "the child locked %s", kept);
    EXPECT(exists(f), "a directory that was there is left alone");
    free(dir), free(parent), free(kept), free(f);
}

int main(void) {
    char tmpl[] = "/tmp/hdistill-lock.XXXXXX";
    CHECK(mkdtemp(tmpl), "mkdtemp");
    test_run_dir(tmpl);
    test_kill_and_wait(tmpl);
    test_data_file(tmpl);
    test_cleanup(tmpl);
    char *cmd = xasprintf("rm -rf '%s'", tmpl);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpl);
    free(cmd);
    return test_summary();
}
