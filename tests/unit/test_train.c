/* test_train -- stages/train.h in one-rank children on a JSONL pairs file:
 * a completed run marks run.h5 sft_complete = 1 and holds the format
 * attributes, tokenizer, provenance, one metrics entry per step (steps
 * 1..N, the learning rate of train_lr_at, finite losses, growing token
 * counts), validation losses at train.eval_every, and the checkpoints of
 * train.ckpt_every pruned to train.ckpt_keep; started again it does
 * nothing; stopped by train.max_run_time it exits 3 without the mark and a
 * rerun completes it with the same loss curve as an uninterrupted run
 * (recording the resume); --dry-run writes nothing; a missing pairs file, a
 * malformed line and a micro-batch that does not divide exit 2.
 * train_lr_at follows the schedule options; train_build_tokenizer trains a
 * BPE of tokenizer.vocab_size. */
#define TEST_STAGES
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "engine/optim.h"
#include "engine/tokenizer.h"
#include "io/ckpt.h"
#include "io/dataset.h"
#include "io/store.h"
#include "test.h"

static char *dir, *pairs;

static void write_pairs(void) {
    static const char *const words[] = {"cat", "dog", "sun", "rain", "tree", "road", "bread", "milk", "song", "ship",
                                        "stone", "cloud"};
    ByteBuf b = {0};
    for (int i = 0; i < 48; i++) {
        const char *a = words[i % 12], *c = words[(i * 5 + 3) % 12], *d = words[(i * 7 + 1) % 12];
        bytebuf_printf(&b, "{\"prompt\": \"the %s saw the %s near the %s\", \"target\": \"%s %s %s, ha!\"}\n", a, c, d,
                       d, c, a);
    }
    pairs = xasprintf("%s/pairs.jsonl", dir);
    test_write_file(pairs, b.a, (long)b.n);
    bytebuf_free(&b);
}

static void config_for(Config *c, const char *sub, const char *const *extra) {
    char *d = xasprintf("%s/%s", dir, sub), *p = xasprintf("data.pairs=%s", pairs);
    const char *kv[] = {p, "tokenizer.vocab_size=300", "train.seq_len=64", "train.steps=6", "train.ckpt_every=2",
                        "train.ckpt_keep=2", "data.val_fraction=0.2", "train.eval_every=3", "train.warmup_steps=2",
                        NULL};
    test_stage_config(c, d, kv);
    test_config_set(c, extra);
    free(d), free(p);
}

static double *series(StoreFile *f, const char *obj, int64_t *n) {
    Err e;
    *n = 0;
    return f ? store_read_alloc(f, obj, 'd', n, &e) : NULL;
}

int main(void) {
    dir = test_tmpdir("train");
    write_pairs();
    Config c;
    config_for(&c, "a", NULL);
    char *out = NULL;
    EXPECT(test_stage("train", &c, 1, &out) == 0 && !util_file_exists(c.run.dir), "dry run: exit 0, nothing written");
    free(out);
    EXPECT(test_stage("train", &c, 0, &out) == 0, "train exits 0");
    free(out);
    char *run = xasprintf("%s/run.h5", c.run.dir);
    Err e;
    StoreFile *f = store_open(run, 0, &e);
    int64_t v = 0, n = 0, nv = 0;
    EXPECT(f && store_get_attr_i64(f, "/", "sft_complete", &v, &e) == 0 && v == 1, "sft_complete = 1");
    char *fmt = f ? store_get_attr_str(f, "/", "format", &e) : NULL;
    EXPECT(fmt && !strcmp(fmt, "hdistill-run"), "format attribute");
    free(fmt);
    EXPECT(f && store_exists(f, "/config") && store_exists(f, "/provenance") && store_exists(f, "/tokenizer/offsets") &&
               store_exists(f, "/tokenizer/merges"),
           "config, provenance, tokenizer");
    double *step = series(f, "/metrics/train/step", &n), *loss = series(f, "/metrics/train/loss", &n);
    double *lr = series(f, "/metrics/train/lr", &n), *tok = series(f, "/metrics/train/tokens", &n);
    double *vstep = series(f, "/metrics/val/step", &nv), *vloss = series(f, "/metrics/val/loss", &nv);
    int ok = step && loss && lr && tok && n == 6;
    for (int i = 0; ok && i < 6; i++)
        ok = step[i] == i + 1 && isfinite(loss[i]) && loss[i] > 0 && lr[i] == train_lr_at(&c, i, 6) &&
             (i == 0 || tok[i] > tok[i - 1]);
    EXPECT(ok, "one entry per step with the schedule's lr (%lld entries)", (long long)n);
    EXPECT(vstep && nv == 2 && vstep[0] == 3 && vstep[1] == 6 && isfinite(vloss[0]), "validation at steps 3 and 6 (%lld)",
           (long long)nv);
    double loss6[6];
    if (loss && n == 6) memcpy(loss6, loss, sizeof loss6);
    free(step), free(loss), free(lr), free(tok), free(vstep), free(vloss);
    store_close(f, NULL);
    char *ck = xasprintf("%s/ckpt", c.run.dir);
    int nk = 0;
    char **list = ckpt_list(ck, &nk);
    EXPECT(nk == 2 && strstr(list[0], "step_00000006.h5") && strstr(list[1], "step_00000004.h5"),
           "checkpoints 6 and 4 kept (%d)", nk);
    ckpt_list_free(list, nk);
    /* again: nothing to do */
    EXPECT(test_stage("train", &c, 0, &out) == 0 && strstr(out, "already complete"), "a complete run is not redone");
    free(out);
    f = store_open(run, 0, &e);
    loss = series(f, "/metrics/train/loss", &n);
    EXPECT(n == 6 && !memcmp(loss, loss6, sizeof loss6), "metrics unchanged (%lld)", (long long)n);
    free(loss);
    store_close(f, NULL);
    list = ckpt_list(ck, &nk);
    EXPECT(nk == 2 && strstr(list[0], "step_00000006.h5"), "no new checkpoint");
    ckpt_list_free(list, nk);
    free(ck), free(run);

    /* stopped by the time limit (before its first step: the reserve exceeds it), then resumed */
    Config s;
    const char *lim[] = {"train.max_run_time=0.5", NULL};
    config_for(&s, "b", lim);
    EXPECT(test_stage("train", &s, 0, &out) == EXIT_STOPPED, "train.max_run_time: exit 3");
    free(out);
    run = xasprintf("%s/run.h5", s.run.dir);
    f = store_open(run, 0, &e);
    EXPECT(f && store_get_attr_i64(f, "/", "sft_complete", &v, &e) != 0, "a stopped run is not marked complete");
    store_close(f, NULL);
    ck = xasprintf("%s/ckpt", s.run.dir);
    list = ckpt_list(ck, &nk);
    EXPECT(nk >= 1, "a stopped run leaves a checkpoint");
    ckpt_list_free(list, nk);
    const char *nolim[] = {"train.max_run_time=0", NULL};
    test_config_set(&s, nolim);
    EXPECT(test_stage("train", &s, 0, &out) == 0, "the resumed run completes");
    free(out);
    f = store_open(run, 0, &e);
    loss = series(f, "/metrics/train/loss", &n);
    EXPECT(f && store_get_attr_i64(f, "/", "sft_complete", &v, &e) == 0 && v == 1, "resumed run marked complete");
    EXPECT(loss && n == 6 && !memcmp(loss, loss6, sizeof loss6), "resumed loss curve differs from the uninterrupted one");
    EXPECT(f && store_exists(f, "/resumes/0"), "the resume is recorded");
    free(loss);
    store_close(f, NULL);
    free(run), free(ck);
    config_free(&s);

    /* errors */
    Config x;
    const char *bad1[] = {"data.pairs=/nonexistent/pairs.jsonl", NULL};
    config_for(&x, "e1", bad1);
    EXPECT(test_stage("train", &x, 0, &out) == EXIT_USAGE && strstr(out, "/nonexistent/pairs.jsonl") &&
               !util_file_exists(x.run.dir),
           "missing pairs: exit 2, nothing written");
    free(out);
    config_free(&x);
    char *badp = xasprintf("%s/bad.jsonl", dir), *setp = xasprintf("data.pairs=%s", badp);
    test_write_file(badp, "{\"prompt\": \"a b\", \"target\": \"c d\"}\n{\"prompt\": 1}\n", -1);
    const char *bad2[] = {setp, NULL};
    config_for(&x, "e2", bad2);
    EXPECT(test_stage("train", &x, 0, &out) == EXIT_USAGE && strstr(out, "bad.jsonl:2:"), "malformed pairs: exit 2");
    free(out);
    config_free(&x);
    free(badp), free(setp);
    const char *bad3[] = {"train.micro_batch=3", NULL};
    config_for(&x, "e3", bad3);
    EXPECT(test_stage("train", &x, 0, &out) == EXIT_USAGE && strstr(out, "train.micro_batch"), "micro_batch 3 of 4 rows");
    free(out);
    config_free(&x);

    /* train_lr_at follows the schedule options */
    Config l;
    config_init(&l);
    const char *sch[] = {"train.lr=0.01", "train.min_lr_frac=0.1", "train.warmup_steps=4", "train.schedule=cosine", NULL};
    test_config_set(&l, sch);
    EXPECT(train_lr_at(&l, 0, 20) == optim_lr(0.01, 0.1, 4, 1, 0, 20) && fabs(train_lr_at(&l, 20, 20) - 0.001) < 1e-15,
           "cosine schedule");
    const char *cst[] = {"train.schedule=constant", NULL};
    test_config_set(&l, cst);
    EXPECT(train_lr_at(&l, 15, 20) == 0.01 && train_lr_at(&l, 1, 20) == 0.005, "constant schedule");
    /* train_build_tokenizer: a BPE of vocab_size ids with the special tokens */
    Pairs pr;
    EXPECT(dataset_load_pairs(pairs, 0, &pr, &e) == 0, "%s", e.msg);
    const char *voc[] = {"tokenizer.vocab_size=290", NULL};
    test_config_set(&l, voc);
    Tokenizer *t = train_build_tokenizer(&l, &pr, &e);
    EXPECT(t && tokenizer_vocab_size(t) == 290 && tokenizer_eot_id(t) >= 0 && tokenizer_sep_id(t) >= 0,
           "a BPE of 290 ids: %s", t ? "" : e.msg);
    tokenizer_destroy(t);
    const char *big[] = {"tokenizer.vocab_size=100000", NULL};
    test_config_set(&l, big);
    t = train_build_tokenizer(&l, &pr, &e);
    EXPECT(!t && strstr(e.msg, "vocab_size"), "a vocabulary the pairs cannot support: %s", t ? "built" : e.msg);
    tokenizer_destroy(t);
    data_pairs_free(&pr);
    config_free(&l);
    config_free(&c);
    test_rm_rf(dir);
    free(dir), free(pairs);
    return test_summary();
}
