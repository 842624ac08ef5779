/* test_ckpt_sharded -- checkpoints written by all ranks at once
 * (ckpt_write_sharded, parallel HDF5) and moment slices read back for
 * another number of ranks (ckpt_read_moments_slice).
 *
 * Under mpirun -np W (W = 1, 2, 3, ...) without arguments, one job checks
 * everything it can: for a GPT-2 and a Llama-style model, untied and tied,
 * the sharded file's parameters, moments and state read back (ckpt_read)
 * bitwise equal to the state written, also with bounds that leave a rank
 * empty or cut inside a row; h5py (no project code) finds every sharded
 * file identical to ckpt_write's file of the same state -- every object,
 * shape, type, attribute and value, tensors contiguous; the slices of every
 * rank of every rank count 1 .. 8 read back exactly; failures (missing
 * directory, .tmp name taken, one rank failing in the parallel part, the
 * rename failing on rank 0) give -1 on every rank with the same message and
 * no checkpoint with the final name and no .tmp; a stale .tmp of the same
 * step is replaced and one of a later step is ignored and pruned.
 *
 * Started alone (as tests/run_all.sh does), the program runs itself under
 * mpirun, keeping MPI out of this first process, with files shared between
 * jobs:  -np 2 --write A;  -np 3 --write B --recut A (2 -> 3);
 * -np 2 --recut B (3 -> 2);  -np 1 --write C --recut B --recut A;
 * -np 3 without arguments (above);  h5py over A, B, C;  -np 2 --loop with rank 1 killed by
 * SIGKILL while a .tmp exists, then -np 1 --check-loop: the complete
 * checkpoints hold their steps' state, the newest is found, the .tmp is
 * pruned. */
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
#include "test_mpi.h"

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

/* A failing write: every rank -1 with the same message, naming the file
 * and containing needle; no checkpoint with the final name; no .tmp left. */
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
    size_t *lens = NULL, len = strlen(e.msg) + 1;
    char *all = comm_gather_bytes(e.msg, len, &lens);
    if (c->rank == 0) {
        int same = 1;
        size_t off = 0;
        for (int r = 0; r < c->size; off += lens[r++]) same &= lens[r] == len && !strcmp(all + off, e.msg);
        EXPECT(same, "%s: ranks disagree on the message", what);
        printf("%s: every rank: %s\n", what, e.msg);
    }
    free(all), free(lens), free(path);
    char final[600], tmp[700];
    snprintf(final, sizeof final, "%s/step_00000005.h5", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    struct stat sb;
    EXPECT(stat(final, &sb) != 0 || S_ISDIR(sb.st_mode), "%s: a file %s exists", what, final);
    EXPECT(stat(tmp, &sb) != 0 || S_ISDIR(sb.st_mode), "%s: %s left behind", what, tmp);
    comm_barrier();
    free(s);
}

static void fail_cases(const Comm *c, const char *out, const Case *k) {
    Model m, other;
    model_init(&m, &k[0].cfg);
    model_init(&other, &k[1].cfg);
    char dir[600], tmp[700];
    Err e;
    snprintf(dir, sizeof dir, "%s/missing/dir", out);
    expect_fails(c, dir, &m, "missing directory", "cannot create");
    snprintf(dir, sizeof dir, "%s/blocked", out);
    snprintf(tmp, sizeof tmp, "%s/step_00000005.h5.tmp", dir);
    if (c->rank == 0) util_mkdir_p(tmp, &e); /* the temporary name taken by a directory */
    comm_barrier();
    expect_fails(c, dir, &m, "temporary name taken", "cannot create");
    if (geteuid() != 0) { /* root writes anywhere */
        snprintf(dir, sizeof dir, "%s/readonly", out);
        if (c->rank == 0) util_mkdir_p(dir, &e), chmod(dir, 0555);
        comm_barrier();
        expect_fails(c, dir, &m, "read-only directory", "cannot create");
    }
    /* a failure on one rank only, in the parallel part: the last rank writes
     * another model (its tensors are not in the file) */
    snprintf(dir, sizeof dir, "%s/onerank", out);
    if (c->rank == 0) util_mkdir_p(dir, &e);
    comm_barrier();
    if (c->size > 1) expect_fails(c, dir, c->rank == c->size - 1 ? &other : &m, "one rank fails", "missing dataset");
    /* a failure at the very end, on rank 0 only: the final name is a directory (the rename fails) */
    snprintf(dir, sizeof dir, "%s/renamed", out);
    snprintf(tmp, sizeof tmp, "%s/step_00000005.h5/keep", dir);
    if (c->rank == 0) util_mkdir_p(tmp, &e);
    comm_barrier();
    expect_fails(c, dir, &m, "final name taken", "cannot rename");
    model_free(&m), model_free(&other);
}

/* .tmp files: a stale one of the same step (a killed earlier attempt, not
 * HDF5) is replaced; one of a later step is never taken for a checkpoint
 * and is deleted by ckpt_prune. */
static void tmp_cases(const Comm *c, const char *out, const Case *k, const Meta *x) {
    Model m;
    float *mm, *vv;
    make_state(&k->cfg, 5, &m, &mm, &vv);
    char dir[600], stale[700], later[700], final[700];
    snprintf(dir, sizeof dir, "%s/stale", out);
    snprintf(stale, sizeof stale, "%s/step_00000005.h5.tmp", dir);
    snprintf(later, sizeof later, "%s/step_00000009.h5.tmp", dir);
    snprintf(final, sizeof final, "%s/step_00000005.h5", dir);
    Err e = {{0}};
    if (c->rank == 0) {
        EXPECT(util_mkdir_p(dir, &e) == 0, "%s", e.msg);
        EXPECT(test_write_file(stale, "half a checkpoint", -1) == 0 && test_write_file(later, "killed", -1) == 0,
               "cannot write %s", stale);
    }
    comm_barrier();
    size_t b[MAXW + 1];
    model_shard_bounds(&m, c->size, b);
    TrainState st = state_of(5, c->size);
    int rc = ckpt_write_sharded(c, dir, &m, b, mm + b[c->rank], vv + b[c->rank], &st, &x->td, x->json, &x->prov,
                                &x->log, &x->val, NULL, &e);
    EXPECT(rc == 0, "over a stale .tmp: %s", e.msg);
    EXPECT(!util_file_exists(stale), "%s left behind", stale);
    if (c->rank == 0) {
        expect_reads_back(final, &m, mm, vv, &st, "over a stale .tmp");
        CkptMeta meta;
        EXPECT(ckpt_find_newest(dir, 0, -1, &meta) == 1 && !strcmp(meta.path, final), "newest %s, want %s",
               meta.path ? meta.path : "(none)", final);
        ckpt_meta_free(&meta);
        ckpt_prune(dir, 2, final);
        EXPECT(!util_file_exists(later) && util_file_exists(final), "ckpt_prune: %s kept or %s deleted", later, final);
    }
    comm_barrier();
    free(mm), free(vv);
    model_free(&m);
}

/* Every rank count W' = 1 .. MAXW and each of its ranks (spread over ours):
 * the slice read back is the written state's. */
static void recut_all_counts(const Comm *c, const char *in, const Case *k) {
    Model m;
    float *mm, *vv;
    make_state(&k->cfg, 5, &m, &mm, &vv);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/sharded%d/step_00000005.h5", in, k->name, c->size);
    int ok = 1, n = 0;
    Err e = {{0}};
    for (int W = 1; W <= MAXW; W++) {
        size_t b[MAXW + 1];
        model_shard_bounds(&m, W, b);
        for (int r = c->rank; r < W; r += c->size, n++)
            if (!slice_matches(path, &m, b[r], b[r + 1], mm, vv, &e)) {
                if (ok) fprintf(stderr, "W'=%d rank %d: %s\n", W, r, e.msg);
                ok = 0;
            }
    }
    EXPECT(ok && n > 0, "%s written by %d ranks, re-cut for 1 .. %d ranks: slices differ", k->name, c->size, MAXW);
    free(mm), free(vv);
    model_free(&m);
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

static void compare_with_h5py(const char *tmp, int want_files);

/* Without a mode (mpirun -np W test_ckpt_sharded): everything one job can
 * check, in a fresh directory -- sharded writes on W ranks (also with odd
 * bounds) read back bitwise, h5py finds each equal to ckpt_write's file,
 * the slices for every other rank count, failures and .tmp files. */
static void all_in_one(const Comm *c, const Case *cs, const Meta *x) {
    char *dir = c->rank == 0 ? test_tmpdir("ckpt_sharded") : NULL;
    comm_bcast_string(&dir);
    char w[600];
    snprintf(w, sizeof w, "%s/w", dir);
    for (int k = 0; k < N_CASES; k++) write_case(c, w, &cs[k], x);
    for (int k = 0; k < N_CASES; k++) recut_all_counts(c, w, &cs[k]);
    fail_cases(c, dir, cs);
    tmp_cases(c, dir, &cs[1], x);
    comm_barrier();
    if (c->rank == 0) {
        int per_case = 1 + (c->size == 1 ? 1 : c->size == 2 ? 3 : 4); /* sharded + odd bounds */
        compare_with_h5py(dir, N_CASES * per_case);
        test_rm_rf(dir);
    }
    free(dir);
}

static int ranks_main(int argc, char **argv) {
    Comm c;
    comm_init(&c, &argc, &argv);
    CHECK(c.size <= MAXW, "%d ranks", c.size);
    Case cs[N_CASES];
    make_cases(cs);
    Meta x;
    meta_init(&x, argc, argv, c.size);
    if (argc == 1) all_in_one(&c, cs, &x);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *dir = argv[i + 1];
        if (!strcmp(argv[i], "--write"))
            for (int k = 0; k < N_CASES; k++) write_case(&c, dir, &cs[k], &x);
        else if (!strcmp(argv[i], "--recut"))
            for (int k = 0; k < N_CASES; k++) recut_case(&c, dir, &cs[k]);
        else if (!strcmp(argv[i], "--loop"))
            loop_writes(&c, dir, argc, argv);
        else if (!strcmp(argv[i], "--check-loop"))
            check_loop(dir);
        else
            CHECK(0, "unknown mode %s", argv[i]);
    }
    meta_free(&x);
    return test_ranks_finish(&c);
}

/* ---- the first process: no MPI ------------------------------------------------------ */

static void run_ranks(int np, const char *const *args, const char *what) {
    char *out = NULL;
    int rc = test_mpirun_self(np, args, &out, NULL);
    printf("---- %s (mpirun -np %d): exit %d\n%s", what, np, rc, out);
    EXPECT(rc == 0, "%s: mpirun -np %d exited %d", what, np, rc);
    EXPECT(test_absorb(out) == 0, "%s: no summary from the ranks", what);
    free(out);
}

/* mpirun -np np <this program> args... in the background, output to log;
 * returns mpirun's pid (test_mpirun_self waits, this one does not). */
static pid_t spawn_self(int np, const char *const *args, const char *log) {
    char self[4096], npbuf[16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0, "readlink");
    self[n] = 0;
    snprintf(npbuf, sizeof npbuf, "%d", np);
    const char *argv[32] = {"mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", npbuf, self};
    int k = 8;
    for (int i = 0; args[i] && k < 31; i++) argv[k++] = args[i];
    argv[k] = NULL;
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(127);
        dup2(fd, 1), dup2(fd, 2), close(fd);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return test_status_(st);
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
        char *p = util_file_exists(pidf) ? test_read_file(pidf, NULL) : NULL;
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
    run_ranks(1, check, "check-loop");
}

/* h5py, no project code: each sharded file under tmp/<dir>/<case>/ equals
 * the serial file of its state (serial/) in every object, shape, type,
 * attribute and value, and its tensors are contiguous; want_files of them. */
static void compare_with_h5py(const char *tmp, int want_files) {
    char *probe[] = {"/usr/bin/python3", "-c", "import h5py, numpy", NULL};
    if (test_run(probe, NULL) != 0) {
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
        "ok = files == int(sys.argv[2]) and not bad\n"
        "print('h5py: %d sharded files compared (want %s), %d differ' % (files, sys.argv[2], bad))\n"
        "print('%d passed, %d failed' % (ok, not ok))\n";
    char want[16];
    snprintf(want, sizeof want, "%d", want_files);
    char *py[] = {"/usr/bin/python3", "-c", (char *)script, (char *)tmp, want, NULL};
    char *out = NULL;
    int rc = test_run(py, &out);
    printf("%s", out);
    EXPECT(rc == 0 && test_absorb(out) == 0, "h5py comparison exited %d", rc);
    free(out);
}

int main(int argc, char **argv) {
    if (test_under_mpirun()) return ranks_main(argc, argv);
    char *tmp = test_tmpdir("ckpt_sharded");
    char a[700], b[700], c[700];
    snprintf(a, sizeof a, "%s/w2", tmp), snprintf(b, sizeof b, "%s/w3", tmp), snprintf(c, sizeof c, "%s/w1", tmp);
    const char *two[] = {"--write", a, NULL};
    const char *three[] = {"--write", b, "--recut", a, NULL};
    const char *back[] = {"--recut", b, NULL};
    const char *one[] = {"--write", c, "--recut", b, "--recut", a, NULL};
    run_ranks(2, two, "write-2");
    run_ranks(3, three, "write-3+recut-2-to-3");
    run_ranks(2, back, "recut-3-to-2");
    run_ranks(1, one, "write-1+recut-to-1");
    run_ranks(3, NULL, "all-in-one-3");
    compare_with_h5py(tmp, 33); /* 3 cases x (w2: 4 files, w3: 5, w1: 2) */
    kill_mid_write(tmp);
    test_rm_rf(tmp);
    free(tmp);
    return test_summary();
}
