/* test_ckpt -- checkpoint write -> read round trip (every tensor, moments,
 * state, tokenizer, metrics, config), atomic naming, newest-first listing,
 * pruning, and the errors for truncated files and mismatched models.
 * Needs MPI only for provenance (run as a single process). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/ckpt.h"
#include "base/comm.h"
#include "test.h"
#include "engine/tokenizer.h"
#include "base/util.h"

static Tokenizer *small_tokenizer(void) {
    const char *texts[] = {"the cat sat on the mat", "the dog sat on the log", "a cat and a dog"};
    size_t lens[3];
    for (int i = 0; i < 3; i++) lens[i] = strlen(texts[i]);
    Err e;
    Tokenizer *t = tokenizer_train(texts, lens, 3, 270, &e);
    if (!t) fprintf(stderr, "tokenizer: %s\n", e.msg);
    return t;
}

int main(int argc, char **argv) {
    Comm comm;
    comm_init(&comm, &argc, &argv);
    char dir[] = "/tmp/hdistill-ckpt-XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp");
    ModelConfig cfg = model_config_gpt2(2, 2, 16, 270, 32);
    Model m;
    model_init(&m, &cfg);
    model_init_weights(&m, 11);
    float *mm = xmalloc(sizeof(float) * m.n_params), *vv = xmalloc(sizeof(float) * m.n_params);
    Rng r;
    rng_seed(&r, 5);
    for (size_t i = 0; i < m.n_params; i++) mm[i] = rng_float(&r) - 0.5f, vv[i] = rng_float(&r);
    TrainState st = {.step = 7, .rng = {1, 2, 3, 0xffffffffffffffffULL}, .cursor = {2, 13},
                     .tokens = 12345, .elapsed = 1.5, .world_size = 2, .threads = 3};
    MetricLog log = {0};
    ValLog val = {0};
    metrics_val_push(&val, 5, 4.25);
    for (int i = 1; i <= 7; i++) metrics_push(&log, i, 5.0 / i, 1e-3 * i, 0.5, 100 * i, 0.1 * i);
    Tokenizer *tok = small_tokenizer();
    EXPECT(tok != NULL, "tokenizer");
    TokenizerData td;
    tokenizer_to_data(tok, &td);
    Provenance prov;
    prov_collect(&prov, argc, argv, 1);
    Err e = {{0}};
    char *path = NULL;
    const char *json = "{\"train\": {\"lr\": 0.001}}";
    EXPECT(ckpt_write(dir, &m, mm, vv, &st, &td, json, &prov, &log, &val, &path, &e) == 0, "%s", e.msg);
    char want[256];
    snprintf(want, sizeof want, "%s/step_00000007.h5", dir);
    EXPECT(path && strcmp(path, want) == 0, "path %s", path ? path : "(null)");
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", want);
    EXPECT(!util_file_exists(tmp), "temporary file left behind");

    /* read back into a fresh model */
    ModelConfig c2;
    TokenizerData td2;
    char *json2 = NULL;
    EXPECT(ckpt_read_meta(path, &c2, &td2, &json2, &e) == 0, "%s", e.msg);
    EXPECT(memcmp(&c2, &cfg, sizeof cfg) == 0, "model config differs");
    EXPECT(json2 && strcmp(json2, json) == 0, "config json differs");
    EXPECT(td2.n_vocab == td.n_vocab && td2.n_merges == td.n_merges && td2.eot_id == td.eot_id &&
               td2.sep_id == td.sep_id &&
               memcmp(td2.offsets, td.offsets, sizeof(int64_t) * (td.n_vocab + 1)) == 0 &&
               memcmp(td2.blob, td.blob, (size_t)td.offsets[td.n_vocab]) == 0 &&
               memcmp(td2.merges, td.merges, sizeof(int32_t) * 2 * td.n_merges) == 0,
           "tokenizer differs");
    Tokenizer *tok2 = tokenizer_from_data(&td2, &e);
    EXPECT(tok2 != NULL, "%s", e.msg);
    if (tok2) {
        IntVec a = {0}, b = {0};
        tokenizer_encode(tok, "the cat and the log", 19, &a);
        tokenizer_encode(tok2, "the cat and the log", 19, &b);
        EXPECT(a.n == b.n && memcmp(a.a, b.a, sizeof(int) * a.n) == 0, "encodings differ");
        intvec_free(&a), intvec_free(&b);
    }
    Model m2;
    model_init(&m2, &c2);
    float *mm2 = xmalloc(sizeof(float) * m.n_params), *vv2 = xmalloc(sizeof(float) * m.n_params);
    TrainState st2;
    MetricLog log2 = {0};
    ValLog val2 = {0};
    EXPECT(ckpt_read(path, &m2, mm2, vv2, &st2, &log2, &val2, &e) == 0, "%s", e.msg);
    EXPECT(val2.n == 1 && val2.step[0] == 5 && val2.loss[0] == 4.25, "validation log differs");
    EXPECT(memcmp(m.params, m2.params, sizeof(float) * m.n_params) == 0, "params differ");
    EXPECT(memcmp(mm, mm2, sizeof(float) * m.n_params) == 0, "m differs");
    EXPECT(memcmp(vv, vv2, sizeof(float) * m.n_params) == 0, "v differs");
    EXPECT(st2.step == 7 && st2.cursor.epoch == 2 && st2.cursor.index == 13 && st2.tokens == 12345 &&
               st2.elapsed == 1.5 && st2.world_size == 2 && st2.threads == 3 &&
               memcmp(st2.rng, st.rng, sizeof st.rng) == 0,
           "state differs");
    EXPECT(log2.n == 7 && log2.step[6] == 7 && log2.loss[2] == log.loss[2] && log2.tokens[6] == 700,
           "metric log differs");

    /* listing newest first, pruning */
    st.step = 12;
    EXPECT(ckpt_write(dir, &m, mm, vv, &st, &td, json, &prov, &log, &val, NULL, &e) == 0, "%s", e.msg);
    st.step = 3;
    EXPECT(ckpt_write(dir, &m, mm, vv, &st, &td, json, &prov, &log, &val, NULL, &e) == 0, "%s", e.msg);
    FILE *junk = fopen(tmp, "w"); /* a leftover temporary */
    if (junk) fclose(junk);
    int n;
    char **list = ckpt_list(dir, &n);
    EXPECT(n == 3 && strstr(list[0], "step_00000012.h5") && strstr(list[2], "step_00000003.h5"),
           "listing order (%d)", n);
    ckpt_list_free(list, n);
    char protect[256];
    snprintf(protect, sizeof protect, "%s/step_00000003.h5", dir);
    ckpt_prune(dir, 2, protect); /* the one just written survives even when older */
    list = ckpt_list(dir, &n);
    EXPECT(n == 3, "prune deleted the protected checkpoint (%d left)", n);
    ckpt_list_free(list, n);
    ckpt_prune(dir, 2, NULL);
    list = ckpt_list(dir, &n);
    EXPECT(n == 2 && strstr(list[1], "step_00000007.h5"), "prune kept %d", n);
    ckpt_list_free(list, n);
    EXPECT(!util_file_exists(tmp), "prune removes .tmp leftovers");

    /* a model of other dimensions is refused with a clear message */
    ModelConfig other = model_config_gpt2(2, 2, 32, 270, 32);
    Model m3;
    model_init(&m3, &other);
    EXPECT(ckpt_read(path, &m3, NULL, NULL, NULL, NULL, NULL, &e) != 0 && strstr(e.msg, "wrong shape"),
           "mismatch not detected: %s", e.msg);
    model_free(&m3);

    /* a checkpoint without /config: an error, and the tokenizer read before it is freed, not left
     * to a caller that cannot know it was filled (it leaked: found by fuzz_ckpt) */
    char noconf[300];
    snprintf(noconf, sizeof noconf, "%s/step_00000098.h5", dir);
    EXPECT(util_copy_file(path, noconf, &e) == 0, "%s", e.msg);
    StoreFile *sf = store_open(noconf, 1, &e);
    EXPECT(sf && store_delete(sf, "/config", &e) == 0 && store_close(sf, &e) == 0, "%s", e.msg);
    TokenizerData td3;
    char *json3 = NULL;
    EXPECT(ckpt_read_meta(noconf, &c2, &td3, &json3, &e) != 0 && strstr(e.msg, "/config"), "no /config: %s", e.msg);
    EXPECT(td3.offsets == NULL && td3.blob == NULL && td3.merges == NULL && json3 == NULL,
           "a failed ckpt_read_meta left a half-read tokenizer");

    /* truncated file: an error naming it, never a crash */
    char cut[300];
    snprintf(cut, sizeof cut, "%s/step_00000099.h5", dir);
    size_t len;
    char *bytes = util_read_file(path, &len, &e);
    FILE *f = fopen(cut, "wb");
    if (f && bytes) fwrite(bytes, 1, len / 2, f);
    if (f) fclose(f);
    free(bytes);
    int rc = ckpt_read_meta(cut, &c2, NULL, NULL, &e);
    if (rc == 0) rc = ckpt_read(cut, &m2, mm2, vv2, &st2, NULL, NULL, &e);
    EXPECT(rc != 0 && strstr(e.msg, "step_00000099.h5"), "truncated checkpoint: rc %d msg %s", rc, e.msg);

    tokenizer_destroy(tok), tokenizer_destroy(tok2);
    tokenizer_data_free(&td), tokenizer_data_free(&td2);
    metrics_free(&log), metrics_free(&log2);
    metrics_val_free(&val), metrics_val_free(&val2);
    prov_free(&prov);
    model_free(&m), model_free(&m2);
    free(mm), free(vv), free(mm2), free(vv2), free(path), free(json2);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    comm_finalize();
    return test_summary();
}
