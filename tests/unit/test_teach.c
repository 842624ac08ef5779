/* test_teach -- stages/teach.h on the stand-in teacher, in one-rank
 * children: /teacher/paraphrases [n_train, teach.n] and refused, n_parsed,
 * status, raw per input, the same under /teacher/eval and /teacher/ood,
 * /teacher attributes with complete = 1, usage, config and provenance;
 * refusals (stand-in refusal_rate) leave empty rows; a second run sends
 * nothing (cache) and sums the usage; --dry-run writes nothing;
 * teach.splits limits the groups; no data.h5 exits 2; an unreachable
 * teacher exits 1 with complete = 0 and the connect status. */
#define TEST_STAGES
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "io/store.h"
#include "test.h"

static char *dir;

static int64_t attr(StoreFile *f, const char *obj, const char *name) {
    int64_t v = -12345;
    Err e;
    store_get_attr_i64(f, obj, name, &v, &e);
    return v;
}

/* checks one split's group; returns its input count */
static int64_t check_group(StoreFile *f, const char *inputs, const char *g, int N, int64_t *refused_out) {
    Err e;
    char obj[128];
    int64_t n = 0, m = 0;
    char **in = store_read_strings(f, inputs, &n, &e);
    snprintf(obj, sizeof obj, "%s/paraphrases", g);
    int nd = 0;
    int64_t dims[4] = {0};
    char **para = store_read_strings(f, obj, &m, &e);
    int ok = in && para && store_dims(f, obj, &nd, dims, &e) == 0 && nd == 2 && dims[0] == n && dims[1] == N;
    EXPECT(ok, "%s: paraphrases [%lld, %lld] for %lld inputs", g, (long long)dims[0], (long long)dims[1], (long long)n);
    const char *names[] = {"refused", "n_parsed", "status", "raw"};
    for (int k = 0; k < 4; k++) {
        snprintf(obj, sizeof obj, "%s/%s", g, names[k]);
        int ok2 = store_dims(f, obj, &nd, dims, &e) == 0 && nd == 1 && dims[0] == n;
        EXPECT(ok2, "%s has %lld entries, want %lld", obj, (long long)dims[0], (long long)n);
    }
    int64_t *ref = NULL, *np = NULL, *st = NULL, cnt;
    snprintf(obj, sizeof obj, "%s/refused", g);
    ref = store_read_alloc(f, obj, 'l', &cnt, &e);
    snprintf(obj, sizeof obj, "%s/n_parsed", g);
    np = store_read_alloc(f, obj, 'l', &cnt, &e);
    snprintf(obj, sizeof obj, "%s/status", g);
    st = store_read_alloc(f, obj, 'l', &cnt, &e);
    int consistent = ref && np && st && para;
    int64_t nref = 0;
    for (int64_t i = 0; consistent && i < n; i++) {
        consistent = st[i] == 0 && np[i] >= 0 && np[i] <= N;
        nref += ref[i];
        for (int k = 0; consistent && k < N; k++) {
            int filled = para[i * N + k][0] != 0;
            consistent = ref[i] ? !filled : filled == (k < np[i]);
        }
        if (ref[i]) consistent = consistent && np[i] == 0;
    }
    EXPECT(consistent, "%s: status ok, parsed items fill the row, refused rows empty", g);
    if (refused_out) *refused_out = nref;
    free(ref), free(np), free(st);
    store_free_strings(in, n), store_free_strings(para, m);
    return n;
}

int main(void) {
    dir = test_tmpdir("teach");
    const char *kv[] = {"standin.refusal_rate=0.2", NULL};
    Config c;
    test_stage_config(&c, dir, kv);
    char *out = NULL;
    EXPECT(test_stage("teach", &c, 0, &out) == EXIT_USAGE && strstr(out, c.data.path), "no data.h5: exit 2");
    free(out);
    EXPECT(test_stage("ingest", &c, 0, &out) == 0, "ingest");
    free(out);
    size_t len0, len1;
    char *before = test_read_file(c.data.path, &len0);
    EXPECT(test_stage("teach", &c, 1, &out) == 0 && strstr(out, "dry run"), "dry run exits 0");
    free(out);
    char *after = test_read_file(c.data.path, &len1);
    EXPECT(len0 == len1 && !memcmp(before, after, len0), "a dry run changed data.h5");
    free(before), free(after);
    EXPECT(test_stage("teach", &c, 0, &out) == 0, "teach exits 0");
    free(out);
    Err e;
    StoreFile *f = store_open(c.data.path, 0, &e);
    EXPECT(f != NULL, "%s", e.msg);
    int64_t total = 0, refused = 0, r2 = 0, r3 = 0;
    char **p1 = NULL;
    int64_t np1 = 0;
    if (f) {
        total += check_group(f, "/inputs/train", "/teacher", 2, &refused);
        total += check_group(f, "/inputs/eval", "/teacher/eval", 2, &r2);
        total += check_group(f, "/inputs/ood", "/teacher/ood", 2, &r3);
        refused += r2 + r3;
        EXPECT(refused > 0 && refused < total, "refusal_rate 0.2: %lld of %lld refused", (long long)refused,
               (long long)total);
        EXPECT(attr(f, "/teacher", "complete") == 1 && attr(f, "/teacher", "n") == 2, "complete = 1, n = 2");
        char *b = store_get_attr_str(f, "/teacher", "base_url", &e), *pr = store_get_attr_str(f, "/teacher", "prompt", &e),
             *mo = store_get_attr_str(f, "/teacher", "model", &e);
        EXPECT(b && !strcmp(b, "standin") && pr && strstr(pr, "{input}") && mo, "teacher attributes");
        free(b), free(pr), free(mo);
        EXPECT(store_exists(f, "/teacher/config") && store_exists(f, "/teacher/provenance") &&
                   store_exists(f, "/inputs/train"),
               "config, provenance, inputs kept");
        EXPECT(attr(f, "/teacher/usage", "requests") == total && attr(f, "/teacher/usage", "sent") == total &&
                   attr(f, "/teacher/usage", "ok") == total && attr(f, "/teacher/usage", "cache_hits") == 0 &&
                   attr(f, "/teacher/usage", "failed") == 0,
               "usage of the first run: requests %lld of %lld", (long long)attr(f, "/teacher/usage", "requests"),
               (long long)total);
        p1 = store_read_strings(f, "/teacher/paraphrases", &np1, &e);
        store_close(f, NULL);
    }
    char *tmp = xasprintf("%s.tmp", c.data.path);
    EXPECT(!util_file_exists(tmp), "no temporary copy left");
    free(tmp);
    /* again: everything from the cache, usage summed */
    EXPECT(test_stage("teach", &c, 0, &out) == 0, "second teach exits 0");
    free(out);
    f = store_open(c.data.path, 0, &e);
    if (f) {
        EXPECT(attr(f, "/teacher/usage", "requests") == 2 * total && attr(f, "/teacher/usage", "cache_hits") == total &&
                   attr(f, "/teacher/usage", "sent") == total,
               "second run: requests %lld cache_hits %lld sent %lld", (long long)attr(f, "/teacher/usage", "requests"),
               (long long)attr(f, "/teacher/usage", "cache_hits"), (long long)attr(f, "/teacher/usage", "sent"));
        int64_t np2 = 0;
        char **p2 = store_read_strings(f, "/teacher/paraphrases", &np2, &e);
        int same = p1 && p2 && np1 == np2;
        for (int64_t i = 0; same && i < np1; i++) same = !strcmp(p1[i], p2[i]);
        EXPECT(same, "the cached answers give the same paraphrases");
        store_free_strings(p2, np2);
        store_close(f, NULL);
    }
    store_free_strings(p1, np1);
    char *cache = xasprintf("%s.llm-cache", c.data.path);
    EXPECT(util_file_exists(cache), "the cache is data.path + .llm-cache");
    free(cache);
    config_free(&c);

    /* train split only */
    char *d2 = xasprintf("%s/train-only", dir);
    util_mkdir_p(d2, &e);
    const char *kv2[] = {"teach.splits=train", NULL};
    test_stage_config(&c, d2, kv2);
    EXPECT(test_stage("ingest", &c, 0, NULL) == 0 && test_stage("teach", &c, 0, NULL) == 0, "train-only teach");
    f = store_open(c.data.path, 0, &e);
    EXPECT(f && store_exists(f, "/teacher/paraphrases") && !store_exists(f, "/teacher/eval") &&
               !store_exists(f, "/teacher/ood"),
           "teach.splits=train writes /teacher only");
    store_close(f, NULL);
    config_free(&c);
    /* an unreachable teacher: exit 1, not complete, the connect status */
    char *d3 = xasprintf("%s/unreachable", dir);
    util_mkdir_p(d3, &e);
    const char *kv3[] = {"teacher.base_url=http://127.0.0.1:9/v1", "teacher.retries=0", "teach.splits=eval", NULL};
    test_stage_config(&c, d3, kv3);
    EXPECT(test_stage("ingest", &c, 0, NULL) == 0, "ingest");
    EXPECT(test_stage("teach", &c, 0, &out) == EXIT_RUNTIME && strstr(out, "failed"), "unreachable teacher: exit 1");
    free(out);
    f = store_open(c.data.path, 0, &e);
    int64_t cnt = 0, *st = f ? store_read_alloc(f, "/teacher/eval/status", 'l', &cnt, &e) : NULL;
    int connect = st && cnt > 0;
    for (int64_t i = 0; connect && i < cnt; i++) connect = st[i] == 5;
    EXPECT(connect && attr(f, "/teacher", "complete") == 0, "status 5 (connect) everywhere, complete = 0");
    free(st);
    store_close(f, NULL);
    config_free(&c);
    free(d2), free(d3);
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}
