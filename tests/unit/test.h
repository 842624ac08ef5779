/* test.h -- the tiny harness every test program uses.
 * EXPECT(cond, fmt, ...) counts one check; a failing one prints where and why.
 * test_summary() prints "N passed, N failed" last and returns the exit code. */
#ifndef HDISTILL_TEST_H
#define HDISTILL_TEST_H

#include <math.h>
#include <stdio.h>

static int test_passed = 0, test_failed = 0;

#define EXPECT(cond, ...)                                                   \
    do {                                                                    \
        if (cond) {                                                         \
            test_passed++;                                                  \
        } else {                                                            \
            test_failed++;                                                  \
            fprintf(stderr, "FAIL %s:%d: %s -- ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

/* max |a-b| / max(|b|, floor) over n values */
static inline double test_max_rel_err(const float *a, const float *b, long n, double floor_) {
    double worst = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double s = fabs((double)b[i]);
        if (s < floor_) s = floor_;
        if (d / s > worst || d != d) worst = (d != d) ? INFINITY : d / s;
    }
    return worst;
}

static inline int test_summary(void) {
    fflush(stdout);
    printf("%d passed, %d failed\n", test_passed, test_failed);
    fflush(stdout);
    return test_failed ? 1 : 0;
}

/* ---- helpers for tests that need files, child processes or several ranks ----
 * Everything below is static inline (unused helpers cost nothing).  None of
 * them touches MPI: a process that forks children which call comm_init must
 * not have initialised MPI itself (Open MPI's singleton hangs in a forked
 * child), so such tests keep MPI out of the parent and run every collective
 * part in test_fork children or under test_mpirun_self. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A fresh directory build/tmp/<name>.XXXXXX (malloc'd path; test_rm_rf it). */
static inline char *test_tmpdir(const char *name) {
    mkdir("build", 0775);
    mkdir("build/tmp", 0775);
    size_t n = strlen(name) + 32;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "build/tmp/%s.XXXXXX", name);
    if (!mkdtemp(p)) {
        fprintf(stderr, "mkdtemp %s: %s\n", p, strerror(errno));
        abort();
    }
    return p;
}

static inline int test_rm_one_(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* rm -rf path (no shell). */
static inline void test_rm_rf(const char *path) {
    if (path) nftw(path, test_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes n bytes (n < 0: strlen) to path; 0 or -1. */
static inline int test_write_file(const char *path, const char *text, long n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t len = n < 0 ? strlen(text) : (size_t)n;
    int rc = fwrite(text, 1, len, f) == len ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

/* The whole file (malloc'd, NUL-terminated; *len if non-NULL), or NULL. */
static inline char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, k;
    char *b = malloc(cap);
    while (b && (k = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n < 2) b = realloc(b, cap *= 2);
    }
    fclose(f);
    if (!b) abort();
    b[n] = 0;
    if (len) *len = n;
    return b;
}

/* Copies the first n bytes of from into to (a truncated copy); 0 or -1. */
static inline int test_copy_prefix(const char *from, const char *to, long n) {
    size_t len;
    char *b = test_read_file(from, &len);
    if (!b) return -1;
    int rc = test_write_file(to, b, n < 0 || (size_t)n > len ? (long)len : n);
    free(b);
    return rc;
}

/* Redirects stdout (and stderr when both) to a file until test_capture_end,
 * which restores them and returns what was written (malloc'd). */
static int test_saved_fd_[2] = {-1, -1};
static char test_capture_path_[64];
static inline void test_capture_begin(int both) {
    fflush(stdout), fflush(stderr);
    snprintf(test_capture_path_, sizeof test_capture_path_, "build/tmp/capture.XXXXXX");
    mkdir("build", 0775), mkdir("build/tmp", 0775);
    int fd = mkstemp(test_capture_path_);
    if (fd < 0) abort();
    test_saved_fd_[0] = dup(1);
    dup2(fd, 1);
    if (both) test_saved_fd_[1] = dup(2), dup2(fd, 2);
    close(fd);
}
static inline char *test_capture_end(void) {
    fflush(stdout), fflush(stderr);
    dup2(test_saved_fd_[0], 1), close(test_saved_fd_[0]);
    if (test_saved_fd_[1] >= 0) dup2(test_saved_fd_[1], 2), close(test_saved_fd_[1]);
    test_saved_fd_[0] = test_saved_fd_[1] = -1;
    char *out = test_read_file(test_capture_path_, NULL);
    unlink(test_capture_path_);
    return out ? out : strdup("");
}

/* Adds the counts of the last "N passed, M failed" line of out to ours;
 * returns 0 if there was one, -1 if not. */
static inline int test_absorb(const char *out) {
    const char *last = NULL;
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        int a, b, k = 0;
        if (sscanf(p, "%d passed, %d failed%n", &a, &b, &k) == 2 && k > 0) last = p;
    }
    int a, b;
    if (!last || sscanf(last, "%d passed, %d failed", &a, &b) != 2) return -1;
    test_passed += a, test_failed += b;
    return 0;
}

/* The exit status of a waitpid status: the exit code, or 128 + signal. */
static inline int test_status_(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

/* Runs fn(ctx) in a forked child and returns its exit status (fn's return
 * value, an exit() code from inside fn, or 128 + signal).  The child's
 * EXPECT counts are added to the parent's.  out (may be NULL) gets the
 * child's stdout + stderr (malloc'd), which are also copied to our stdout.
 * The parent must not hold open HDF5 files (the child's exit closes them). */
static int test_child_fd_ = -1;
static inline void test_child_report_(void) {
    if (test_child_fd_ < 0) return;
    int c[2] = {test_passed, test_failed};
    if (write(test_child_fd_, c, sizeof c) != (ssize_t)sizeof c) _exit(99);
    test_child_fd_ = -1;
}
static inline int test_fork(int (*fn)(void *ctx), void *ctx, char **out) {
    int p[2];
    if (pipe(p) != 0) abort();
    char path[64] = "build/tmp/child.XXXXXX";
    int fd = -1;
    if (out) {
        mkdir("build", 0775), mkdir("build/tmp", 0775);
        fd = mkstemp(path);
        if (fd < 0) abort();
    }
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        close(p[0]);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2), close(fd);
        test_passed = test_failed = 0;
        test_child_fd_ = p[1];
        atexit(test_child_report_);
        exit(fn(ctx));
    }
    close(p[1]);
    int c[2] = {0, 0};
    ssize_t got = 0, k;
    while (got < (ssize_t)sizeof c && (k = read(p[0], (char *)c + got, sizeof c - (size_t)got)) > 0) got += k;
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (got == (ssize_t)sizeof c) test_passed += c[0], test_failed += c[1];
    if (out) {
        close(fd);
        *out = test_read_file(path, NULL);
        if (!*out) *out = strdup("");
        unlink(path);
        fputs(*out, stdout);
    }
    return test_status_(st);
}

/* Runs argv (PATH search) with stdout + stderr into *out (malloc'd, may be
 * NULL to discard); returns the exit status (127 if it could not start). */
static inline int test_run(char *const argv[], char **out) {
    char path[64] = "build/tmp/run.XXXXXX";
    mkdir("build", 0775), mkdir("build/tmp", 0775);
    int fd = mkstemp(path);
    if (fd < 0) abort();
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        dup2(fd, 1), dup2(fd, 2), close(fd);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fd);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    char *o = test_read_file(path, NULL);
    unlink(path);
    if (out) *out = o ? o : strdup("");
    else free(o);
    return test_status_(st);
}

/* 1 when this process was started by mpirun (or srun with Open MPI). */
static inline int test_under_mpirun(void) { return getenv("OMPI_COMM_WORLD_SIZE") != NULL; }

/* Runs this program again under "mpirun -np np" with the extra arguments
 * (NULL-terminated), output into *out; returns mpirun's exit status.  With
 * rank_codes (np ints), every rank's own exit status is recorded there
 * (-1 if a rank left none): the ranks run under a shell that writes it, and
 * mpirun lets every rank finish (its own status is then 0). */
static inline int test_mpirun_self(int np, const char *const *args, char **out, int *rank_codes) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) abort();
    self[n] = 0;
    char *dir = rank_codes ? test_tmpdir("ranks") : NULL;
    char npbuf[16], script[512];
    snprintf(npbuf, sizeof npbuf, "%d", np);
    snprintf(script, sizeof script, "\"$0\" \"$@\"; rc=$?; echo $rc > %s/rank.$OMPI_COMM_WORLD_RANK; exit $rc",
             dir ? dir : "/dev/null");
    const char *argv[64] = {"mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", npbuf};
    int k = 7;
    if (rank_codes) /* every rank runs to its end (mpirun itself then exits 0) */
        argv[k++] = "--mca", argv[k++] = "orte_abort_on_non_zero_status", argv[k++] = "0", argv[k++] = "sh",
        argv[k++] = "-c", argv[k++] = script;
    argv[k++] = self;
    for (int i = 0; args && args[i] && k < 62; i++) argv[k++] = args[i];
    argv[k] = NULL;
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1), setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    int rc = test_run((char *const *)argv, out);
    for (int r = 0; rank_codes && r < np; r++) {
        char f[600];
        snprintf(f, sizeof f, "%s/rank.%d", dir, r);
        char *t = test_read_file(f, NULL);
        rank_codes[r] = t ? atoi(t) : -1;
        free(t);
    }
    test_rm_rf(dir);
    free(dir);
    return rc;
}

/* ---- stage tests (define TEST_STAGES before including test.h) ----------------
 * A tiny configuration on a temporary directory (WordNet inputs, the
 * stand-in teacher and critic, a 2-layer student, a few steps of everything:
 * the whole method in about two seconds), and the stages run in forked
 * children that initialise MPI themselves as one rank (stage functions end
 * the process on errors, and a parent that initialised MPI cannot fork a
 * child that uses it). */
#ifdef TEST_STAGES
#include "base/comm.h"
#include "base/config.h"
#include "stages/critique.h"
#include "stages/eval.h"
#include "stages/ingest.h"
#include "stages/pipeline.h"
#include "stages/teach.h"
#include "stages/train.h"

/* Applies "key=value" settings; aborts on a bad one (a broken test). */
static inline void test_config_set(Config *c, const char *const *kv) {
    for (int i = 0; kv && kv[i]; i++) {
        Err e;
        if (config_set(c, kv[i], &e) != 0) {
            fprintf(stderr, "test configuration: %s\n", e.msg);
            abort();
        }
    }
}

/* The tiny configuration with run.dir = dir/run and data.path = data.pairs
 * = dir/data.h5, then the extra settings (NULL-terminated, may be NULL). */
static inline void test_stage_config(Config *c, const char *dir, const char *const *extra) {
    config_init(c);
    char run[600], data[600], pairs[600];
    snprintf(run, sizeof run, "run.dir=%s/run", dir);
    snprintf(data, sizeof data, "data.path=%s/data.h5", dir);
    snprintf(pairs, sizeof pairs, "data.pairs=%s/data.h5", dir); /* as `hdistill run` does */
    const char *base[] = {run, data, pairs, "run.threads=1", "run.log_every=100", "ingest.source=wordnet", "ingest.limit=48",
                          "ingest.ood_limit=8", "ingest.eval_fraction=0.2", "ingest.max_words=12", "teach.n=2",
                          "teacher.base_url=standin", "critic.base_url=standin", "tokenizer.vocab_size=400",
                          "model.preset=tiny", "data.too_long=skip", "train.seq_len=128", "train.batch_size=4",
                          "train.steps=40", "train.lr=3e-3", "train.warmup_steps=2", "train.ckpt_every=20",
                          "train.seed=1", "critique.objective=dpo", "critique.rounds=1", "critique.epochs=1",
                          "critique.inputs=16", "critique.k=6", "critique.len_lo=0.1", "critique.len_hi=10",
                          "critique.tie_margin=0", "critique.batch_pairs=2", "critique.ckpt_every=0",
                          "critique.max_new=16", "eval.limit=6", "eval.bootstrap=50", "eval.beam=2", "eval.max_new=16",
                          NULL};
    test_config_set(c, base);
    test_config_set(c, extra);
    Err e;
    if (config_validate(c, &e) != 0) {
        fprintf(stderr, "test configuration: %s\n", e.msg);
        abort();
    }
}

typedef struct {
    const char *stage; /* ingest teach train critique eval run, or "fn" */
    const Config *cfg;
    int dry_run;
    int (*fn)(const Comm *comm, void *ctx); /* stage "fn": called after comm_init */
    void *ctx;
} TestStage;

static inline int test_stage_child_(void *v) {
    TestStage *t = v;
    Comm comm;
    comm_init(&comm, NULL, NULL);
    char *argv[] = {"hdistill", (char *)t->stage, NULL};
    int rc;
    if (!strcmp(t->stage, "ingest")) rc = ingest_main(t->cfg, &comm, 2, argv, t->dry_run);
    else if (!strcmp(t->stage, "teach")) rc = teach_main(t->cfg, &comm, 2, argv, t->dry_run);
    else if (!strcmp(t->stage, "train")) rc = train_main(t->cfg, &comm, 2, argv, t->dry_run);
    else if (!strcmp(t->stage, "critique")) rc = critique_main(t->cfg, &comm, 2, argv);
    else if (!strcmp(t->stage, "eval")) rc = eval_main(t->cfg, &comm, 2, argv);
    else if (!strcmp(t->stage, "run")) rc = pipeline_main(t->cfg, &comm, 2, argv, t->dry_run);
    else rc = t->fn(&comm, t->ctx);
    comm_finalize();
    return rc;
}

/* Runs stage (see TestStage) on cfg in a child of one rank; returns its
 * exit status; out (may be NULL) gets its output. */
static inline int test_stage(const char *stage, const Config *cfg, int dry_run, char **out) {
    TestStage t = {stage, cfg, dry_run, NULL, NULL};
    return test_fork(test_stage_child_, &t, out);
}
/* Runs fn(comm, ctx) in a child of one rank (EXPECTs inside count). */
static inline int test_with_mpi(int (*fn)(const Comm *comm, void *ctx), void *ctx, char **out) {
    TestStage t = {"fn", NULL, 0, fn, ctx};
    return test_fork(test_stage_child_, &t, out);
}
#endif

#endif
