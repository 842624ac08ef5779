/* test_critique -- stages/critique.h on the tiny configuration (ingest,
 * teach, SFT first), in one-rank children: a dpo round writes /rounds/0
 * with the documented attributes (objective, start_step, end_step, inputs,
 * pairs, collected, complete) and datasets (student/{input, candidates
 * [inputs, k], pair_a, pair_b, p_ab, p_ba, p, raw_ab, raw_ba, label},
 * pairs/{prompt, chosen, rejected, ref_chosen, ref_rejected} with one pair
 * per decisive label), trains end_step - start_step steps (one loss per
 * step in /metrics/train) and records the critic's usage; started again it
 * changes nothing; without a trained student it exits 2; rounds = 0 does
 * nothing. */
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

int main(void) {
    char *dir = test_tmpdir("critique");
    Config c;
    test_stage_config(&c, dir, NULL);
    char *out = NULL;
    EXPECT(test_stage("ingest", &c, 0, NULL) == 0 && test_stage("teach", &c, 0, NULL) == 0, "ingest + teach");
    EXPECT(test_stage("critique", &c, 0, &out) == EXIT_USAGE, "no trained student: exit 2");
    free(out);
    EXPECT(test_stage("train", &c, 0, NULL) == 0, "train");
    Config z;
    const char *none[] = {"critique.rounds=0", NULL};
    test_stage_config(&z, dir, none);
    EXPECT(test_stage("critique", &z, 0, NULL) == 0, "rounds = 0: exit 0");
    config_free(&z);
    char *run = xasprintf("%s/run.h5", c.run.dir);
    Err e;
    StoreFile *f = store_open(run, 0, &e);
    EXPECT(f && !store_exists(f, "/rounds"), "rounds = 0 writes no round");
    store_close(f, NULL);

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
    free(ck), free(want), free(run);
    config_free(&c);
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}
