/* test_critique -- stages/critique.h on the tiny configuration (ingest,
 * teach, SFT first), in one-rank children: a dpo round writes /rounds/0
 * with the documented attributes (objective, start_step, end_step, inputs,
 * pairs, collected, complete) and datasets (student/{input, candidates
 * [inputs, k], pair_a, pair_b, p_ab, p_ba, p, raw_ab, raw_ba, label},
 * pairs/{prompt, chosen, rejected, ref_chosen, ref_rejected} with one pair
 * per decisive label), trains end_step - start_step steps (one loss per
 * step in /metrics/train) and records the critic's usage; started again it
 * changes nothing; without a trained student it exits 2; rounds = 0 does
 * nothing.  critique.pipeline: the same round judged after the sampling
 * (0), pipelined in chunks of 8 (the default run above), of 1 input (the
 * stand-in at some latency) and on 2 ranks under mpirun stores bitwise the
 * same datasets and attributes under /rounds (h5py); the pipelined round
 * has its first chunk judged before the sampling ends, and the sequential
 * one asks the critic only after it (the round's log times). */
#define TEST_STAGES
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "io/ckpt.h"
#include "io/store.h"
#include "test.h"

static int64_t attr(StoreFile *f, const char *obj, const char *name) {
    int64_t v = -12345;
    Err e;
    if (f) store_get_attr_i64(f, obj, name, &v, &e);
    return v;
}

static int64_t len_of(StoreFile *f, const char *obj, int *nd_out, int64_t *d1) {
    int nd = -1;
    int64_t dims[4] = {-1, -1};
    Err e;
    if (!f || store_dims(f, obj, &nd, dims, &e) != 0) return -1;
    if (nd_out) *nd_out = nd;
    if (d1) *d1 = nd > 1 ? dims[1] : 0;
    return dims[0];
}

/* Every round of this test samples up to 40 tokens (the tiny configuration's 16 make the
 * sampling of a round about as short as one answer of the critic). */
#define MAX_NEW "critique.max_new=40"

/* Every dataset and attribute under /rounds of run.h5 in a and b, bitwise (h5py). */
static int same_rounds(const char *a, const char *b, char **out) {
    static const char *py =
        "import sys, h5py, numpy as np\n"
        "fa, fb = (h5py.File(p, 'r') for p in sys.argv[1:3])\n"
        "seen, bad = [], []\n"
        "def raw(v):\n"
        "    v = np.asarray(v)\n"
        "    return (v.dtype.str, v.shape, v.tobytes() if v.dtype.kind != 'O' else repr(v.tolist()).encode())\n"
        "def visit(name, x):\n"
        "    y = fb.get('/rounds/' + name)\n"
        "    seen.append(name)\n"
        "    if y is None or type(x) is not type(y): bad.append(name + ': missing or not alike'); return\n"
        "    if isinstance(x, h5py.Dataset) and raw(x[()]) != raw(y[()]): bad.append(name + ': data differ')\n"
        "    if sorted(x.attrs) != sorted(y.attrs) or any(raw(x.attrs[k]) != raw(y.attrs[k]) for k in x.attrs):\n"
        "        bad.append(name + ': attributes differ')\n"
        "fa['/rounds'].visititems(visit)\n"
        "mine = []\n"
        "fb['/rounds'].visit(mine.append)\n"
        "if sorted(mine) != sorted(seen): bad.append('other objects: %s' % sorted(set(mine) ^ set(seen)))\n"
        "print('%d objects compared; %s' % (len(seen), '; '.join(bad) or 'all equal'))\n"
        "sys.exit(1 if bad or len(seen) < 10 else 0)\n";
    char *ra = xasprintf("%s/run.h5", a), *rb = xasprintf("%s/run.h5", b);
    char *argv[] = {"/usr/bin/python3", "-c", (char *)py, ra, rb, NULL};
    int st = test_run(argv, out);
    free(ra), free(rb);
    return st;
}

/* The round's times from its log: sampling, the critic's first request, its first chunk judged
 * (seconds from the start of the sampling); -1 when a line is missing. */
typedef struct {
    double sampled, from, judged1;
} RoundTimes;
static RoundTimes round_times(const char *out) {
    RoundTimes t = {-1, -1, -1};
    const char *p = out ? strstr(out, "candidates in ") : NULL, *q = out ? strstr(out, "critic busy ") : NULL;
    double busy, to;
    if (p) t.sampled = atof(p + strlen("candidates in "));
    if (q && sscanf(q, "critic busy %lf s (%lf s to %lf s, first chunk judged at %lf s)", &busy, &t.from, &to,
                    &t.judged1) != 4)
        t.from = t.judged1 = -1;
    return t;
}

/* Under mpirun: critique on DIR/RUN with critique.pipeline=1, one input per wave of the critic. */
static int critique_ranks(int argc, char **argv) {
    Comm comm;
    comm_init(&comm, &argc, &argv);
    char *rd = xasprintf("run.dir=%s/%s", argv[2], argv[3]);
    const char *extra[] = {rd, MAX_NEW, "critique.pipeline=1", "critic.concurrency=2", NULL};
    Config c;
    test_stage_config(&c, argv[2], extra);
    char *av[] = {"hdistill", "critique", NULL};
    int rc = critique_main(&c, &comm, 2, av);
    config_free(&c);
    free(rd);
    comm_finalize();
    return rc;
}

/* cp -a DIR/run DIR/name: a copy of the trained student before any critique */
static void copy_run(const char *dir, const char *name) {
    char *from = xasprintf("%s/run", dir), *to = xasprintf("%s/%s", dir, name);
    char *argv[] = {"cp", "-a", from, to, NULL};
    EXPECT(test_run(argv, NULL) == 0, "cp %s %s", from, to);
    free(from), free(to);
}

/* The round on DIR/name with the settings extra (1 rank); its log in *out. */
static int critique_variant(const char *dir, const char *name, const char *const *extra, char **out) {
    char *rd = xasprintf("run.dir=%s/%s", dir, name);
    const char *kv[8] = {rd, MAX_NEW};
    for (int i = 0; extra[i] && i < 5; i++) kv[i + 2] = extra[i];
    Config c;
    test_stage_config(&c, dir, kv);
    int rc = test_stage("critique", &c, 0, out);
    config_free(&c);
    free(rd);
    return rc;
}

/* critique.pipeline 0 and 1 (chunks of 8 in the default run, of 1, and on 2 ranks): the same bits */
static void pipeline_variants(const char *dir) {
    char *out = NULL, *cmp = NULL, *def = xasprintf("%s/run", dir), *seq = xasprintf("%s/seq", dir);
    const char *s0[] = {"critique.pipeline=0", NULL};
    EXPECT(critique_variant(dir, "seq", s0, &out) == 0, "critique.pipeline=0 exits 0");
    RoundTimes t = round_times(out);
    EXPECT(t.sampled > 0 && t.from >= t.sampled && strstr(out, "one after the other"),
           "pipeline=0: the critic asked after the sampling (%.2f s >= %.2f s)", t.from, t.sampled);
    free(out);
    EXPECT(same_rounds(seq, def, &cmp) == 0, "pipeline 0 and 1 (chunks of 8): the same /rounds: %s", cmp);
    printf("pipeline 0 vs 1 in chunks of 8: %s", cmp);
    free(cmp);
    /* chunks of 1 input, one wave of the critic each, answers 5 ms late */
    const char *s1[] = {"critique.pipeline=1", "critic.concurrency=2", "standin.latency_ms=5", NULL};
    EXPECT(critique_variant(dir, "fine", s1, &out) == 0, "critique.pipeline=1 in chunks of 1 exits 0");
    t = round_times(out);
    EXPECT(strstr(out, "(16 chunks)") && t.judged1 > 0 && t.judged1 < t.sampled && strstr(out, "overlapped"),
           "pipeline=1: the first chunk judged (%.2f s) before the sampling ended (%.2f s)", t.judged1, t.sampled);
    free(out);
    char *fine = xasprintf("%s/fine", dir);
    EXPECT(same_rounds(seq, fine, &cmp) == 0, "pipeline 0 and 1 (chunks of 1): the same /rounds: %s", cmp);
    printf("pipeline 0 vs 1 in chunks of 1: %s", cmp);
    free(cmp);
    const char *args[] = {"--critique", dir, "mpi", NULL};
    EXPECT(test_mpirun_self(2, args, &out, NULL) == 0 && strstr(out, "(8 chunks)") &&
               strstr(out, "overlapped"),
           "pipelined critique on 2 ranks: %s", out);
    free(out);
    char *mpi = xasprintf("%s/mpi", dir);
    EXPECT(same_rounds(seq, mpi, &cmp) == 0, "pipeline 0 on 1 rank and 1 on 2 ranks: the same /rounds: %s", cmp);
    printf("pipeline 0 on 1 rank vs 1 on 2 ranks: %s", cmp);
    free(cmp);
    free(def), free(seq), free(fine), free(mpi);
}

int main(int argc, char **argv) {
    if (test_under_mpirun() && argc == 4 && !strcmp(argv[1], "--critique")) return critique_ranks(argc, argv);
    char *dir = test_tmpdir("critique");
    Config c;
    const char *longer[] = {MAX_NEW, NULL};
    test_stage_config(&c, dir, longer);
    char *out = NULL;
    EXPECT(test_stage("ingest", &c, 0, NULL) == 0 && test_stage("teach", &c, 0, NULL) == 0, "ingest + teach");
    EXPECT(test_stage("critique", &c, 0, &out) == EXIT_USAGE, "no trained student: exit 2");
    free(out);
    EXPECT(test_stage("train", &c, 0, NULL) == 0, "train");
    Config z;
    const char *none[] = {MAX_NEW, "critique.rounds=0", NULL};
    test_stage_config(&z, dir, none);
    EXPECT(test_stage("critique", &z, 0, NULL) == 0, "rounds = 0: exit 0");
    config_free(&z);
    char *run = xasprintf("%s/run.h5", c.run.dir);
    Err e;
    StoreFile *f = store_open(run, 0, &e);
    EXPECT(f && !store_exists(f, "/rounds"), "rounds = 0 writes no round");
    store_close(f, NULL);
    copy_run(dir, "seq"), copy_run(dir, "fine"), copy_run(dir, "mpi");

    EXPECT(test_stage("critique", &c, 0, &out) == 0, "critique exits 0");
    free(out);
    f = store_open(run, 0, &e);
    const char *g = "/rounds/0";
    char *obj = f ? store_get_attr_str(f, g, "objective", &e) : NULL;
    EXPECT(obj && !strcmp(obj, "dpo"), "objective %s", obj ? obj : e.msg);
    free(obj);
    int64_t start = attr(f, g, "start_step"), end = attr(f, g, "end_step"), inputs = attr(f, g, "inputs"),
            npairs = attr(f, g, "pairs");
    EXPECT(start == 40 && end > start && inputs == 16 && attr(f, g, "collected") == 1 && attr(f, g, "complete") == 1,
           "round attributes: start %lld end %lld inputs %lld", (long long)start, (long long)end, (long long)inputs);
    const char *per_input[] = {"input", "pair_a", "pair_b", "p_ab", "p_ba", "p", "raw_ab", "raw_ba", "label"};
    int shapes = 1;
    char o[128];
    for (size_t k = 0; k < sizeof per_input / sizeof per_input[0]; k++) {
        snprintf(o, sizeof o, "%s/student/%s", g, per_input[k]);
        int nd = 0;
        shapes &= len_of(f, o, &nd, NULL) == inputs && nd == 1;
    }
    int nd = 0;
    int64_t k = 0;
    snprintf(o, sizeof o, "%s/student/candidates", g);
    EXPECT(shapes && len_of(f, o, &nd, &k) == inputs && nd == 2 && k == 6, "student datasets, candidates [16, 6]");
    int64_t n = 0;
    snprintf(o, sizeof o, "%s/student/label", g);
    int64_t *lab = f ? store_read_alloc(f, o, 'l', &n, &e) : NULL;
    snprintf(o, sizeof o, "%s/student/p", g);
    double *p = f ? store_read_alloc(f, o, 'd', &n, &e) : NULL;
    int64_t decisive = 0;
    int labels = lab && p;
    for (int64_t i = 0; labels && i < n; i++) {
        labels = lab[i] >= -1 && lab[i] <= 1 && (isnan(p[i]) || (p[i] >= 0 && p[i] <= 1));
        if (lab[i] == 1) labels = labels && p[i] > 0.5;
        if (lab[i] == -1) labels = labels && p[i] < 0.5;
        decisive += lab[i] != 0;
    }
    EXPECT(labels, "labels in {-1, 0, 1} agree with p");
    free(lab), free(p);
    const char *per_pair[] = {"prompt", "chosen", "rejected", "ref_chosen", "ref_rejected"};
    int pairs_ok = npairs == decisive && npairs > 0;
    for (size_t q = 0; q < sizeof per_pair / sizeof per_pair[0]; q++) {
        snprintf(o, sizeof o, "%s/pairs/%s", g, per_pair[q]);
        pairs_ok &= len_of(f, o, NULL, NULL) == npairs;
    }
    EXPECT(pairs_ok, "%lld pairs, one per decisive label (%lld)", (long long)npairs, (long long)decisive);
    snprintf(o, sizeof o, "%s/pairs/ref_chosen", g);
    double *ref = f ? store_read_alloc(f, o, 'd', &n, &e) : NULL;
    int refs = ref != NULL;
    for (int64_t i = 0; refs && i < n; i++) refs = isfinite(ref[i]) && ref[i] < 0;
    EXPECT(refs, "DPO reference log-probs are finite and negative");
    free(ref);
    EXPECT(len_of(f, "/metrics/train/loss", NULL, NULL) == end && len_of(f, "/metrics/train/step", NULL, NULL) == end,
           "one loss per step, SFT and round (%lld)", (long long)len_of(f, "/metrics/train/loss", NULL, NULL));
    EXPECT(attr(f, "/usage/critic", "requests") > 0 && attr(f, "/usage/critic", "sent") > 0, "critic usage recorded");
    store_close(f, NULL);
    char *ck = xasprintf("%s/ckpt", c.run.dir), *want = xasprintf("step_%08lld.h5", (long long)end);
    int nk = 0;
    char **list = ckpt_list(ck, &nk);
    EXPECT(nk >= 1 && strstr(list[0], want), "the newest checkpoint is the round's end (%s)", nk ? list[0] : "none");
    ckpt_list_free(list, nk);

    /* again: nothing changes */
    EXPECT(test_stage("critique", &c, 0, &out) == 0, "critique again exits 0");
    free(out);
    f = store_open(run, 0, &e);
    EXPECT(attr(f, g, "end_step") == end && len_of(f, "/metrics/train/loss", NULL, NULL) == end &&
               !store_exists(f, "/rounds/1"),
           "a complete round is not redone");
    store_close(f, NULL);
    list = ckpt_list(ck, &nk);
    EXPECT(nk >= 1 && strstr(list[0], want), "no new checkpoint");
    ckpt_list_free(list, nk);
    pipeline_variants(dir);
    free(ck), free(want), free(run);
    config_free(&c);
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}
