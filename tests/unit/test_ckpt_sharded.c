/* test_ckpt_sharded -- checkpoints written by all ranks at once
 * (ckpt_write_sharded, parallel HDF5) and moment slices read back for
 * another number of ranks (ckpt_read_moments_slice).
 *
 * Started alone, the program runs itself under mpirun (it keeps MPI out of
 * this first process):
 *   -np 2 --write A          sharded writes on 2 ranks; -np 3 --write B
 *   --recut A (2 -> 3); -np 2 --recut B (3 -> 2); -np 1 --write C --recut B;
 *   -np 3 --fail             failing writes;  -np 2 --loop, rank 1 killed
 *   mid-write, then -np 1 --check-loop.
 * For a GPT-2 and a Llama-style model, untied and tied: the sharded file's
 * parameters, moments and state read back (ckpt_read) bitwise equal to the
 * state written, also with bounds that leave a rank empty or cut inside a
 * row; each rank's ckpt_read_moments_slice gives exactly its slice for the
 * writer's and for another number of ranks; and h5py (when /usr/bin/python3
 * has it) finds every sharded file identical to the serial ckpt_write of
 * the same state -- every object, shape, type, attribute and value. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/comm.h"
#include "base/util.h"
#include "io/ckpt.h"
#include "test.h"

enum { MAXW = 8, N_CASES = 3 };

typedef struct {
    const char *name;
    ModelConfig cfg;
} Case;

static int make_cases(Case *cs) {
    ModelConfig l;
    memset(&l, 0, sizeof l);
    l.arch = MODEL_LLAMA;
    l.n_layer = 2, l.n_head = 4, l.d_model = 32, l.vocab_size = 270, l.max_seq_len = 32;
    l.n_kv_head = 2, l.head_dim = 8, l.d_ff = 48, l.qkv_bias = 1, l.norm_eps = 1e-5, l.rope_theta = 10000.0;
    cs[0] = (Case){"gpt2", model_config_gpt2(2, 2, 16, 270, 32)};
    cs[1] = (Case){"llama", l};
    l.tie_embeddings = 1, l.qkv_bias = 0, l.qk_norm = 1;
    cs[2] = (Case){"llama_tied", l};
    return N_CASES;
}

/* The state of step `seed`: weights and moments from the seed (the same in
 * every process). */
static void make_state(const ModelConfig *cfg, uint64_t seed, Model *m, float **mm, float **vv) {
    model_init(m, cfg);
    model_init_weights(m, seed);
    *mm = xmalloc(sizeof(float) * m->n_params), *vv = xmalloc(sizeof(float) * m->n_params);
    Rng r;
    rng_seed(&r, seed * 7919 + 1);
    for (size_t i = 0; i < m->n_params; i++) (*mm)[i] = rng_float(&r) - 0.5f, (*vv)[i] = rng_float(&r) * 1e-3f;
}

static TrainState state_of(int64_t step, int W) {
    TrainState st = {.step = step, .rng = {1, 2, 3, 0xfedcba9876543210ULL}, .cursor = {2, 13},
                     .tokens = 12345, .elapsed = 1.5, .world_size = W, .threads = 1};
    return st;
}

static Tokenizer *small_tokenizer(void) {
    const char *texts[] = {"the cat sat on the mat", "the dog sat on the log", "a cat and a dog"};
    size_t lens[3];
    for (int i = 0; i < 3; i++) lens[i] = strlen(texts[i]);
    Err e;
    Tokenizer *t = tokenizer_train(texts, lens, 3, 270, &e);
    CHECK(t, "tokenizer: %s", e.msg);
    return t;
}

/* Everything a checkpoint carries besides the model (the same in every rank). */
typedef struct {
    TokenizerData td;
    Provenance prov;
    MetricLog log;
    ValLog val;
    const char *json;
} Meta;

static void meta_init(Meta *x, int argc, char **argv, int W) {
    memset(x, 0, sizeof *x);
    Tokenizer *tok = small_tokenizer();
    tokenizer_to_data(tok, &x->td);
    tokenizer_destroy(tok);
    prov_collect(&x->prov, argc, argv, W);
    for (int i = 1; i <= 5; i++) metrics_push(&x->log, i, 5.0 / i, 1e-3 * i, 0.5, 100 * i, 0.1 * i);
    metrics_val_push(&x->val, 5, 4.25);
    x->json = "{\"train\": {\"shard_optimizer\": 1}}";
}

static void meta_free(Meta *x) {
    tokenizer_data_free(&x->td);
    prov_free(&x->prov);
    metrics_free(&x->log);
    metrics_val_free(&x->val);
}

/* 1 when every rank's flag is 1 */
static int all_ranks(int ok) { return !comm_any(!ok); }

/* The checkpoint at path holds exactly (m, mm, vv) and st. */
static void expect_reads_back(const char *path, const Model *m, const float *mm, const float *vv, const TrainState *st,
                              const char *what) {
    Err e = {{0}};
    ModelConfig c2;
    char *json = NULL;
    int rc = ckpt_read_meta(path, &c2, NULL, &json, &e);
    EXPECT(rc == 0 && memcmp(&c2, &m->cfg, sizeof c2) == 0, "%s: meta: %s", what, rc ? e.msg : "config differs");
    free(json);
    Model m2;
    model_init(&m2, &m->cfg);
    float *mm2 = xmalloc(sizeof(float) * m->n_params), *vv2 = xmalloc(sizeof(float) * m->n_params);
    TrainState st2;
    MetricLog log2 = {0};
    ValLog val2 = {0};
    rc = ckpt_read(path, &m2, mm2, vv2, &st2, &log2, &val2, &e);
    EXPECT(rc == 0, "%s: %s", what, e.msg);
    if (rc == 0) {
        size_t bytes = sizeof(float) * m->n_params;
        EXPECT(!memcmp(m2.params, m->params, bytes) && !memcmp(mm2, mm, bytes) && !memcmp(vv2, vv, bytes),
               "%s: params %d m %d v %d differ", what, !!memcmp(m2.params, m->params, bytes), !!memcmp(mm2, mm, bytes),
               !!memcmp(vv2, vv, bytes));
        EXPECT(st2.step == st->step && st2.world_size == st->world_size && st2.tokens == st->tokens &&
                   !memcmp(st2.rng, st->rng, sizeof st->rng) && log2.n == 5 && val2.n == 1,
               "%s: state or logs differ", what);
    }
    metrics_free(&log2), metrics_val_free(&val2);
    free(mm2), free(vv2);
    model_free(&m2);
}

/* This rank's [lo, hi) of the moments of path equals mm/vv there. */
static int slice_matches(const char *path, const Model *m, size_t lo, size_t hi, const float *mm, const float *vv,
                         Err *e) {
    size_t n = hi - lo;
    float *a = xmalloc(sizeof(float) * (n + 1)), *b = xmalloc(sizeof(float) * (n + 1));
    a[n] = b[n] = 12345.f; /* nothing is written past the slice */
    int rc = ckpt_read_moments_slice(path, m, lo, hi, a, b, e);
    int ok = rc == 0 && !memcmp(a, mm + lo, sizeof(float) * n) && !memcmp(b, vv + lo, sizeof(float) * n) &&
             a[n] == 12345.f && b[n] == 12345.f;
    if (rc == 0 && !ok) err_set(e, "%s: slice [%zu, %zu) differs", path, lo, hi);
    free(a), free(b);
    return ok;
}

/* Bounds for W ranks that model_shard_bounds would not give: empty ranks
 * first, in the middle and last, and cuts inside a row.  k-th variant; 0
 * when there are no more. */
static int odd_bounds(int W, size_t n, int k, size_t *b) {
    b[0] = 0, b[W] = n;
    if (W == 1) return k == 0;
    if (k == 0) for (int r = 1; r < W; r++) b[r] = 0;           /* rank 0 .. W-2 empty */
    else if (k == 1) for (int r = 1; r < W; r++) b[r] = n;      /* rank 1 .. W-1 empty */
    else if (k == 2) for (int r = 1; r < W; r++) b[r] = n * r / W + 1 + r; /* inside rows */
    else if (k == 3 && W >= 3) { b[1] = n / 3 + 5; for (int r = 2; r < W; r++) b[r] = b[1]; } /* middle empty */
    else return 0;
    return 1;
}

static void write_case(const Comm *c, const char *out, const Case *k, const Meta *x) {
    int W = c->size, r = c->rank;
    Model m;
    float *mm, *vv;
    make_state(&k->cfg, 5, &m, &mm, &vv);
    TrainState st = state_of(5, W);
    char dir[512], want[600], what[700];
    Err e = {{0}};
    snprintf(dir, sizeof dir, "%s/%s/serial", out, k->name);
    if (r == 0) {
        EXPECT(util_mkdir_p(dir, &e) == 0, "%s", e.msg);
        EXPECT(ckpt_write(dir, &m, mm, vv, &st, &x->td, x->json, &x->prov, &x->log, &x->val, NULL, &e) == 0, "%s",
               e.msg);
    }
    size_t b[MAXW + 1];
    for (int v = -1;; v++) { /* -1: model_shard_bounds; then the odd bounds */
        if (v < 0) model_shard_bounds(&m, W, b);
        else if (!odd_bounds(W, m.n_params, v, b)) break;
        snprintf(dir, sizeof dir, "%s/%s/%s%d", out, k->name, v < 0 ? "sharded" : "odd", v < 0 ? W : v);
        if (r == 0) EXPECT(util_mkdir_p(dir, &e) == 0, "%s", e.msg);
        comm_barrier();
        size_t lo = b[r], hi = b[r + 1];
        float *sm = xmalloc(sizeof(float) * (hi - lo + 1)), *sv = xmalloc(sizeof(float) * (hi - lo + 1));
        memcpy(sm, mm + lo, sizeof(float) * (hi - lo)), memcpy(sv, vv + lo, sizeof(float) * (hi - lo));
        char *path = NULL;
        int rc = ckpt_write_sharded(c, dir, &m, b, sm, sv, &st, r ? NULL : &x->td, r ? NULL : x->json,
                                    r ? NULL : &x->prov, r ? NULL : &x->log, r ? NULL : &x->val, &path, &e);
        snprintf(want, sizeof want, "%s/step_00000005.h5", dir);
        snprintf(what, sizeof what, "%s W=%d %s [%zu, %zu) of %zu", k->name, W, v < 0 ? "shard bounds" : "odd bounds",
                 lo, hi, m.n_params);
        EXPECT(all_ranks(rc == 0), "%s: a rank failed: %s", what, e.msg);
        EXPECT(rc == 0 && path && !strcmp(path, want), "%s: path %s", what, path ? path : "(null)");
        strcat(want, ".tmp");
        EXPECT(!util_file_exists(want), "%s: %s left behind", what, want);
        want[strlen(want) - 4] = 0;
        expect_reads_back(want, &m, mm, vv, &st, what);
        EXPECT(slice_matches(want, &m, lo, hi, mm, vv, &e), "%s: own slice: %s", what, e.msg);
        free(path), free(sm), free(sv);
    }
    if (r == 0) { /* what ckpt_read_moments_slice refuses */
        snprintf(dir, sizeof dir, "%s/%s/nomoments", out, k->name);
        EXPECT(util_mkdir_p(dir, &e) == 0 && ckpt_write(dir, &m, NULL, NULL, &st, NULL, NULL, NULL, NULL, NULL,
                                                        NULL, &e) == 0, "%s", e.msg);
        strcat(dir, "/step_00000005.h5");
        EXPECT(!slice_matches(dir, &m, 0, 10, mm, vv, &e) && strstr(e.msg, "no optimizer state") &&
                   strstr(e.msg, dir), "no moments: %s", e.msg);
        ModelConfig other = k->cfg;
        other.d_model *= 2, other.head_dim *= 2;
        Model m3;
        model_init(&m3, &other);
        snprintf(dir, sizeof dir, "%s/%s/serial/step_00000005.h5", out, k->name);
        float *big = xmalloc(sizeof(float) * m3.n_params);
        EXPECT(ckpt_read_moments_slice(dir, &m3, 0, m3.n_params, big, NULL, &e) != 0 && strstr(e.msg, "wrong shape"),
               "another model: %s", e.msg);
        free(big);
        model_free(&m3);
    }
    free(mm), free(vv);
    model_free(&m);
}

/* Every checkpoint under in/<case>/ re-cut for this number of ranks. */
static void recut_case(const Comm *c, const char *in, const Case *k) {
    int W = c->size, r = c->rank;
    Model m;
    float *mm, *vv;
    make_state(&k->cfg, 5, &m, &mm, &vv);
    size_t b[MAXW + 1];
    model_shard_bounds(&m, W, b);
    size_t lo = b[r], hi = b[r + 1];
    const char *sub[] = {"serial", "sharded1", "sharded2", "sharded3", "odd0", "odd1", "odd2", "odd3"};
    int seen = 0;
    for (size_t s = 0; s < sizeof sub / sizeof *sub; s++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s/%s/step_00000005.h5", in, k->name, sub[s]);
        if (!util_file_exists(path)) continue;
        seen++;
        Err e = {{0}};
        EXPECT(slice_matches(path, &m, lo, hi, mm, vv, &e), "%s -> W=%d rank %d: %s", path, W, r, e.msg);
        size_t a = lo + (hi - lo) / 3, z = hi - (hi - lo) / 5; /* any sub-range, cut anywhere */
        EXPECT(slice_matches(path, &m, a, z, mm, vv, &e), "%s [%zu, %zu): %s", path, a, z, e.msg);
    }
    EXPECT(seen >= 4, "%s: %d checkpoints to re-cut under %s", k->name, seen, in);
    free(mm), free(vv);
    model_free(&m);
}

/* A failing write: every rank -1 with the same message, naming the file;
 * no file with the final name. */
static void expect_fails(const Comm *c, const char *dir, const Model *m, const char *what, const char *needle) {
    size_t b[MAXW + 1];
    model_shard_bounds(m, c->size, b);
    size_t n = b[c->rank + 1] - b[c->rank];
    float *s = xcalloc(n + 1, sizeof(float));
    TrainState st = state_of(5, c->size);
    Err e = {{0}};
    char *path = NULL;
    int rc = ckpt_write_sharded(c, dir, m, b, s, s, &st, NULL, NULL, NULL, NULL, NULL, &path, &e);
    EXPECT(rc == -1 && path == NULL, "%s: rc %d on rank %d", what, rc, c->rank);
    EXPECT(strstr(e.msg, "step_00000005.h5") && strstr(e.msg, needle), "%s: message '%s'", what, e.msg);
    size_t *lens = NULL;
    char *all = comm_gather_bytes(e.msg, sizeof e.msg, &lens);
    if (c->rank == 0) {
        int same = 1;
        for (int r = 1; r < c->size; r++) same &= !memcmp(all, all + r * sizeof e.msg, sizeof e.msg);
        EXPECT(same, "%s: ranks disagree on the message", what);
        printf("%s: every rank: %s\n", what, e.msg);
    }
    free(all), free(lens);
    char final[600];
    snprintf(final, sizeof final, "%s/step_00000005.h5", dir);
    EXPECT(!util_file_exists(final), "%s: %s exists", what, final);
    free(s);
}

static void fail_cases(const Comm *c, const char *out, const Case *k) {
    Model m, other;
    model_init(&m, &k[0].cfg);
    model_init(&other, &k[1].cfg);
    char dir[600], tmp[700];
    snprintf(dir, sizeof dir, "%s/missing/dir", out);
    expect_fails(c, dir, &m, "missing directory", "cannot create");
    snprintf(dir, sizeof dir, "%s/blocked", out);
    snprintf(tmp, sizeof tmp, "%s/step_00000005.h5.tmp", dir);
    Err e;
    if (c->rank == 0) util_mkdir_p(tmp, &e); /* the temporary name taken by a directory */
    comm_barrier();
    expect_fails(c, dir, &m, "temporary name taken", "cannot create");
    if (geteuid() != 0) { /* root writes anywhere */
        snprintf(dir, sizeof dir, "%s/readonly", out);
        if (c->rank == 0) util_mkdir_p(dir, &e), chmod(dir, 0555);
        comm_barrier();
        expect_fails(c, dir, &m, "read-only directory", "cannot create");
    }
    /* a failure on one rank only, in the parallel part: rank 1 writes another
     * model (its tensors are not in the file) */
    snprintf(dir, sizeof dir, "%s/onerank", out);
    if (c->rank == 0) util_mkdir_p(dir, &e);
    comm_barrier();
    expect_fails(c, dir, c->rank == 1 ? &other : &m, "one rank fails", "missing dataset");
    snprintf(tmp, sizeof tmp, "%s/step_00000005.h5.tmp", dir);
    EXPECT(!util_file_exists(tmp), "one rank fails: %s left behind", tmp);
    model_free(&m), model_free(&other);
}

/* ---- a rank killed mid-write ------------------------------------------------------ */

static ModelConfig loop_config(void) { return model_config_gpt2(4, 4, 256, 4096, 64); }

/* Sharded checkpoints of steps 1, 2, ... (each step's own state) until killed. */
static void loop_writes(const Comm *c, const char *dir, int argc, char **argv) {
    char pid[600];
    snprintf(pid, sizeof pid, "%s/pid.%d", dir, c->rank);
    char num[32];
    snprintf(num, sizeof num, "%d\n", (int)getpid());
    Err e;
    CHECK(util_write_file_durable(pid, num, strlen(num), &e) == 0, "%s", e.msg);
    ModelConfig cfg = loop_config();
    Meta x;
    meta_init(&x, argc, argv, c->size);
    for (int64_t step = 1; step <= 60; step++) {
        Model m;
        float *mm, *vv;
        make_state(&cfg, (uint64_t)step, &m, &mm, &vv);
        size_t b[MAXW + 1];
        model_shard_bounds(&m, c->size, b);
        TrainState st = state_of(step, c->size);
        char *path = NULL;
        int rc = ckpt_write_sharded(c, dir, &m, b, mm + b[c->rank], vv + b[c->rank], &st, &x.td, x.json, &x.prov,
                                    &x.log, &x.val, &path, &e);
        CHECK(rc == 0, "%s", e.msg);
        if (c->rank == 0) ckpt_prune(dir, 2, path);
        free(path), free(mm), free(vv);
        model_free(&m);
    }
    meta_free(&x);
}

/* After the kill: every complete checkpoint holds its step's state; the
 * newest one is found; prune removes the .tmp. */
static void check_loop(const char *dir) {
    int n = 0, tmps = 0;
    char **list = ckpt_list(dir, &n);
    EXPECT(n >= 1, "no complete checkpoint in %s", dir);
    ModelConfig cfg = loop_config();
    for (int i = 0; i < n; i++) {
        Model m;
        float *mm, *vv;
        int64_t step = ckpt_step_of(list[i]);
        make_state(&cfg, (uint64_t)step, &m, &mm, &vv);
        TrainState st = state_of(step, 2);
        expect_reads_back(list[i], &m, mm, vv, &st, list[i]);
        free(mm), free(vv);
        model_free(&m);
    }
    CkptMeta meta;
    EXPECT(ckpt_find_newest(dir, 1, -1, &meta) == 1 && n && !strcmp(meta.path, list[0]), "newest %s",
           meta.path ? meta.path : "(none)");
    ckpt_meta_free(&meta);
    for (int64_t s = 1; s <= 60; s++) {
        char t[700];
        snprintf(t, sizeof t, "%s/step_%08lld.h5.tmp", dir, (long long)s);
        if (util_file_exists(t)) tmps++;
    }
    printf("killed mid-write: %d complete checkpoint(s), newest %s; %d .tmp left\n", n, n ? list[0] : "-", tmps);
    ckpt_prune(dir, 2, NULL);
    for (int64_t s = 1; s <= 60; s++) {
        char t[700];
        snprintf(t, sizeof t, "%s/step_%08lld.h5.tmp", dir, (long long)s);
        EXPECT(!util_file_exists(t), "prune left %s", t);
    }
    ckpt_list_free(list, n);
}

/* ---- under mpirun ------------------------------------------------------------------- */

static int ranks_main(int argc, char **argv) {
    Comm c;
    comm_init(&c, &argc, &argv);
    CHECK(c.size <= MAXW, "%d ranks", c.size);
    Case cs[N_CASES];
    make_cases(cs);
    Meta x;
    meta_init(&x, argc, argv, c.size);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *dir = argv[i + 1];
        if (!strcmp(argv[i], "--write"))
            for (int k = 0; k < N_CASES; k++) write_case(&c, dir, &cs[k], &x);
        else if (!strcmp(argv[i], "--recut"))
            for (int k = 0; k < N_CASES; k++) recut_case(&c, dir, &cs[k]);
        else if (!strcmp(argv[i], "--fail"))
            fail_cases(&c, dir, cs);
        else if (!strcmp(argv[i], "--loop"))
            loop_writes(&c, dir, argc, argv);
        else if (!strcmp(argv[i], "--check-loop"))
            check_loop(dir);
        else
            CHECK(0, "unknown mode %s", argv[i]);
    }
    meta_free(&x);
    int64_t counts[2] = {test_passed, test_failed};
    comm_allreduce_sum_i64(counts, 2);
    fflush(stderr);
    comm_barrier();
    if (c.rank == 0) printf("%lld passed, %lld failed\n", (long long)counts[0], (long long)counts[1]);
    fflush(stdout);
    comm_finalize();
    return counts[1] ? 1 : 0;
}

/* ---- the first process: no MPI ------------------------------------------------------ */

/* Starts argv with stdout + stderr into log; returns the pid. */
static pid_t spawn(char *const argv[], const char *log) {
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(127);
        dup2(fd, 1), dup2(fd, 2), close(fd);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* mpirun -np np <this program> args... (under timeout), its output to log */
static pid_t spawn_self(int np, const char *const *args, const char *log) {
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0, "readlink");
    self[n] = 0;
    char npbuf[16];
    snprintf(npbuf, sizeof npbuf, "%d", np);
    const char *argv[32] = {"timeout", "-k", "10", "600", "mpirun", "--allow-run-as-root", "--oversubscribe",
                            "--bind-to", "none", "-np", npbuf, self};
    int k = 12;
    for (int i = 0; args[i] && k < 31; i++) argv[k++] = args[i];
    argv[k] = NULL;
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1), setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    return spawn((char *const *)argv, log);
}

/* Adds the counts of the last "N passed, M failed" line of text; -1 if none. */
static int absorb(const char *text) {
    int a = -1, b = -1;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        int x, y, len = 0;
        if (sscanf(p, "%d passed, %d failed%n", &x, &y, &len) == 2 && len > 0) a = x, b = y;
    }
    if (a < 0) return -1;
    test_passed += a, test_failed += b;
    return 0;
}

static void run_ranks(const char *tmp, int np, const char *const *args, const char *what) {
    char log[600];
    snprintf(log, sizeof log, "%s/%s.log", tmp, what);
    int rc = wait_status(spawn_self(np, args, log));
    Err e;
    size_t len;
    char *out = util_read_file(log, &len, &e);
    printf("---- %s (mpirun -np %d): exit %d\n%s", what, np, rc, out ? out : "");
    EXPECT(rc == 0, "%s: mpirun -np %d exited %d", what, np, rc);
    EXPECT(out && absorb(out) == 0, "%s: no summary from the ranks", what);
    free(out);
}

/* rank 1 of a -np 2 loop of sharded writes killed while a checkpoint's .tmp exists */
static void kill_mid_write(const char *tmp) {
    char dir[600], log[700], pidf[700], tmpf[700];
    snprintf(dir, sizeof dir, "%s/kill", tmp);
    Err e;
    CHECK(util_mkdir_p(dir, &e) == 0, "%s", e.msg);
    snprintf(log, sizeof log, "%s/kill.log", tmp);
    snprintf(pidf, sizeof pidf, "%s/pid.1", dir);
    snprintf(tmpf, sizeof tmpf, "%s/step_00000003.h5.tmp", dir);
    const char *args[] = {"--loop", dir, NULL};
    pid_t mpirun = spawn_self(2, args, log);
    pid_t victim = -1;
    double t0 = util_now();
    while (util_now() - t0 < 300) {
        if (waitpid(mpirun, NULL, WNOHANG) == mpirun) {
            mpirun = -1;
            break;
        }
        char *p = util_file_exists(pidf) ? util_read_file(pidf, NULL, &e) : NULL;
        if (p && atoi(p) > 0 && util_file_exists(tmpf)) victim = atoi(p);
        free(p);
        if (victim > 0) {
            kill(victim, SIGKILL); /* rank 1, a process this test started */
            break;
        }
        usleep(1000);
    }
    EXPECT(victim > 0, "rank 1 was not killed mid-write (the loop %s)", mpirun < 0 ? "ended" : "timed out");
    if (mpirun > 0) {
        int rc = wait_status(mpirun);
        EXPECT(rc != 0, "mpirun exited %d after its rank 1 was killed", rc);
    }
    const char *check[] = {"--check-loop", dir, NULL};
    run_ranks(tmp, 1, check, "check-loop");
}

/* h5py: each sharded file equals the serial file of its state in every object. */
static void compare_with_h5py(const char *tmp) {
    char *argv[] = {"/usr/bin/python3", "-c", "import h5py, numpy", NULL};
    char log[600];
    snprintf(log, sizeof log, "%s/h5py.log", tmp);
    if (wait_status(spawn(argv, log)) != 0) {
        printf("h5py comparison skipped: /usr/bin/python3 has no h5py\n");
        return;
    }
    static const char *script =
        "import glob, os, sys, h5py, numpy as np\n"
        "def items(f):\n"
        "    out = {'/': f}\n"
        "    f.visititems(lambda n, o: out.__setitem__('/' + n, o))\n"
        "    return out\n"
        "def same(x, y):\n"
        "    if isinstance(x, np.ndarray) and x.dtype.kind != 'O':\n"
        "        return isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()\n"
        "    return np.asarray(x, dtype=object).tolist() == np.asarray(y, dtype=object).tolist()\n"
        "def same_attrs(a, b):\n"
        "    return sorted(a.attrs) == sorted(b.attrs) and all(same(a.attrs[k], b.attrs[k]) for k in a.attrs)\n"
        "bad = files = 0\n"
        "for ser in glob.glob(sys.argv[1] + '/*/*/serial/step_00000005.h5'):\n"
        "    case = os.path.dirname(os.path.dirname(ser))\n"
        "    with h5py.File(ser, 'r') as s:\n"
        "        want = items(s)\n"
        "        for other in sorted(glob.glob(case + '/sharded*/*.h5') + glob.glob(case + '/odd*/*.h5')):\n"
        "            files += 1\n"
        "            with h5py.File(other, 'r') as o:\n"
        "                got = items(o)\n"
        "                why = []\n"
        "                if sorted(want) != sorted(got): why.append('objects differ')\n"
        "                for k in want:\n"
        "                    if k not in got: continue\n"
        "                    a, b = want[k], got[k]\n"
        "                    if type(a) != type(b) or not same_attrs(a, b): why.append(k + ': kind or attributes')\n"
        "                    elif isinstance(a, h5py.Dataset):\n"
        "                        if a.dtype != b.dtype or a.shape != b.shape or not same(a[()], b[()]):\n"
        "                            why.append(k + ': values')\n"
        "                        if k.startswith(('/params/', '/optim/')) and "
        "b.id.get_create_plist().get_layout() != h5py.h5d.CONTIGUOUS:\n"
        "                            why.append(k + ': not contiguous')\n"
        "                if why: bad += 1; print('h5py:', other, 'differs from', ser, why[:5])\n"
        "print('h5py: %d sharded files compared, %d differ' % (files, bad))\n"
        "print('%d passed, %d failed' % (1 if files == 33 and not bad else 0, 0 if files == 33 and not bad else 1))\n";
    char *py[] = {"/usr/bin/python3", "-c", (char *)script, (char *)tmp, NULL};
    int rc = wait_status(spawn(py, log));
    char *out = util_read_file(log, NULL, &(Err){{0}});
    printf("%s", out ? out : "");
    EXPECT(rc == 0 && out && absorb(out) == 0, "h5py comparison exited %d", rc);
    free(out);
}

int main(int argc, char **argv) {
    if (getenv("OMPI_COMM_WORLD_SIZE")) return ranks_main(argc, argv);
    char tmp[] = "/tmp/hdistill-ckpt-sharded-XXXXXX";
    CHECK(mkdtemp(tmp), "mkdtemp");
    char a[700], b[700], c[700];
    snprintf(a, sizeof a, "%s/w2", tmp), snprintf(b, sizeof b, "%s/w3", tmp), snprintf(c, sizeof c, "%s/w1", tmp);
    const char *two[] = {"--write", a, NULL};
    const char *three[] = {"--write", b, "--recut", a, NULL};
    const char *back[] = {"--recut", b, NULL};
    const char *one[] = {"--write", c, "--recut", b, "--recut", a, NULL};
    const char *fail[] = {"--fail", tmp, NULL};
    run_ranks(tmp, 2, two, "write-2");
    run_ranks(tmp, 3, three, "write-3+recut-2-to-3");
    run_ranks(tmp, 2, back, "recut-3-to-2");
    run_ranks(tmp, 1, one, "write-1+recut-to-1");
    run_ranks(tmp, 3, fail, "fail-3");
    compare_with_h5py(tmp);
    kill_mid_write(tmp);
    char *rm[] = {"rm", "-rf", tmp, NULL};
    wait_status(spawn(rm, "/dev/null"));
    return test_summary();
}
