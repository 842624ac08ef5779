/* test_pipeline -- stages/pipeline.h (`hdistill run`) on the tiny
 * configuration in one-rank children: one call runs ingest, teach, SFT, a
 * critique round and the evaluation (every completion mark set); a second
 * call skips every stage (data.h5 byte for byte unchanged, no new step,
 * checkpoint or request); --dry-run on a fresh directory stops before
 * training and writes no run; unusable model.init_from fails before the
 * teacher is asked (exit 2). */
#define TEST_STAGES
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "io/ckpt.h"
#include "io/store.h"
#include "test.h"

static int64_t attr(const char *path, const char *obj, const char *name) {
    Err e;
    int64_t v = -12345;
    StoreFile *f = store_open(path, 0, &e);
    if (f) store_get_attr_i64(f, obj, name, &v, &e);
    store_close(f, NULL);
    return v;
}

static int64_t steps(const char *path) {
    Err e;
    int nd;
    int64_t dims[4] = {-1};
    StoreFile *f = store_open(path, 0, &e);
    if (!f || store_dims(f, "/metrics/train/step", &nd, dims, &e) != 0) dims[0] = -1;
    store_close(f, NULL);
    return dims[0];
}

int main(void) {
    char *dir = test_tmpdir("pipeline");
    Config c;
    test_stage_config(&c, dir, NULL);
    char *out = NULL;
    EXPECT(test_stage("run", &c, 1, &out) == 0 && strstr(out, "dry run") && !util_file_exists(c.run.dir),
           "dry run: exit 0, no run directory");
    free(out);
    EXPECT(test_stage("run", &c, 0, &out) == 0, "run exits 0");
    free(out);
    char *run = xasprintf("%s/run.h5", c.run.dir);
    EXPECT(attr(c.data.path, "/teacher", "complete") == 1, "teach complete");
    EXPECT(attr(run, "/", "sft_complete") == 1, "sft_complete");
    EXPECT(attr(run, "/rounds/0", "complete") == 1, "round 0 complete");
    EXPECT(attr(run, "/eval", "complete") == 1, "evaluation complete");
    int64_t end = attr(run, "/rounds/0", "end_step");
    EXPECT(attr(run, "/eval", "step") == end && steps(run) == end, "the evaluation is of the newest step (%lld)",
           (long long)end);
    int64_t treq = attr(c.data.path, "/teacher/usage", "requests"), creq = attr(run, "/usage/critic", "requests");
    size_t l0, l1;
    char *d0 = test_read_file(c.data.path, &l0);
    char *ck = xasprintf("%s/ckpt", c.run.dir);
    int n0 = 0, n1 = 0;
    char **list0 = ckpt_list(ck, &n0);

    EXPECT(test_stage("run", &c, 0, &out) == 0, "a second run exits 0");
    EXPECT(out && strstr(out, "teach is complete; skipped") && strstr(out, "fine-tuning is complete; skipped") &&
               strstr(out, "already evaluated"),
           "every stage reported as skipped");
    free(out);
    char *d1 = test_read_file(c.data.path, &l1);
    EXPECT(l0 == l1 && !memcmp(d0, d1, l0), "data.h5 changed by the second run");
    char **list1 = ckpt_list(ck, &n1);
    int same = n0 == n1;
    for (int i = 0; same && i < n0; i++) same = !strcmp(list0[i], list1[i]);
    EXPECT(same, "checkpoints changed by the second run");
    EXPECT(steps(run) == end && attr(run, "/usage/critic", "requests") == creq &&
               attr(c.data.path, "/teacher/usage", "requests") == treq,
           "no new step or request");
    ckpt_list_free(list0, n0), ckpt_list_free(list1, n1);
    free(d0), free(d1), free(ck), free(run);
    config_free(&c);

    /* model.init_from that cannot be used: refused before teach */
    char *d2 = xasprintf("%s/init", dir), *bad = xasprintf("model.init_from=%s/missing.safetensors", dir);
    const char *kv[] = {bad, NULL};
    Err e;
    util_mkdir_p(d2, &e);
    test_stage_config(&c, d2, kv);
    EXPECT(test_stage("run", &c, 0, &out) == EXIT_USAGE && strstr(out, "missing.safetensors") &&
               !util_file_exists(c.data.path),
           "unusable model.init_from: exit 2 before ingest");
    free(out);
    config_free(&c);
    free(d2), free(bad);
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}
