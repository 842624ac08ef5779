/* test_eval -- stages/eval.h.  eval_stats on crafted judgements (verdicts
 * with the tie margin and NaN, win-or-tie rate, position bias = flips over
 * inputs, length bias over decisive verdicts of different lengths, mean
 * lengths, a seeded bootstrap interval around the rate).  The stage on the
 * tiny configuration (ingest, teach, SFT first), in one-rank children:
 * /eval with complete, step (the newest checkpoint), objective, seed;
 * /eval/<split>/{input,student,reference} (the reference is the teacher's
 * first paraphrase) and per judge {p_ab,p_ba,p,verdict,raw_ab,raw_ba} with
 * wtr in [0, 100] inside its interval and equal to the counts; an extra
 * judge from eval.judges; the critic's usage; a second run does nothing;
 * without a checkpoint, or with a bad judges file, it exits 2. */
#define TEST_STAGES
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "io/store.h"
#include "stages/eval.h"
#include "test.h"

static void stats(void) {
    const double pab[6] = {0.9, 0.1, 0.52, 0.9, NAN, NAN}, pba[6] = {0.8, 0.2, 0.5, 0.1, 0.7, NAN};
    const int ws[6] = {10, 8, 5, 5, 4, 6}, wr[6] = {5, 3, 5, 5, 4, 6};
    int verdict[6] = {9, 9, 9, 9, 9, 9};
    EvalStats s, s2;
    eval_stats(pab, pba, ws, wr, 6, 0.05, 400, 7, &s, verdict);
    const int want_v[6] = {1, -1, 0, 0, 1, 0};
    EXPECT(!memcmp(verdict, want_v, sizeof want_v), "verdicts %d %d %d %d %d %d", verdict[0], verdict[1], verdict[2],
           verdict[3], verdict[4], verdict[5]);
    EXPECT(s.n == 6 && s.wins == 2 && s.ties == 3 && s.losses == 1, "counts %lld/%lld/%lld", (long long)s.wins,
           (long long)s.ties, (long long)s.losses);
    EXPECT(fabs(s.wtr - 500.0 / 6) < 1e-12, "wtr %g", s.wtr);
    EXPECT(fabs(s.position_bias - 1.0 / 6) < 1e-12, "position bias: one flip of 6 inputs, got %g", s.position_bias);
    EXPECT(fabs(s.length_bias - 0.5) < 1e-12, "length bias: 1 of 2 decisive verdicts won by the longer, got %g",
           s.length_bias);
    EXPECT(fabs(s.student_words - 38.0 / 6) < 1e-12 && fabs(s.reference_words - 28.0 / 6) < 1e-12, "mean lengths");
    EXPECT(s.ci_low <= s.wtr && s.wtr <= s.ci_high && s.ci_low >= 0 && s.ci_high <= 100 && s.ci_low < s.ci_high,
           "interval [%g, %g] around %g", s.ci_low, s.ci_high, s.wtr);
    eval_stats(pab, pba, ws, wr, 6, 0.05, 400, 7, &s2, NULL);
    EXPECT(s2.ci_low == s.ci_low && s2.ci_high == s.ci_high, "the bootstrap is seeded");
    eval_stats(pab, pba, ws, wr, 6, 0.5, 0, 7, &s2, verdict);
    EXPECT(s2.ties == 6 && s2.wtr == 100 && isnan(s2.ci_low) && isnan(s2.ci_high) && isnan(s2.length_bias),
           "margin 0.5: all ties; no bootstrap -> NaN interval");
    const double all_a[3] = {0.9, 0.8, 0.95}, all_b[3] = {0.9, 0.7, 0.99};
    eval_stats(all_a, all_b, ws, wr, 3, 0.05, 100, 1, &s2, NULL);
    EXPECT(s2.wtr == 100 && s2.ci_low == 100 && s2.ci_high == 100 && s2.position_bias == 0, "all wins");
    eval_stats(all_a, all_b, ws, wr, 0, 0.05, 100, 1, &s2, NULL);
    EXPECT(s2.n == 0 && isnan(s2.wtr) && isnan(s2.position_bias), "no judgements: NaN");
}

static int64_t attr(StoreFile *f, const char *obj, const char *name) {
    int64_t v = -12345;
    Err e;
    if (f) store_get_attr_i64(f, obj, name, &v, &e);
    return v;
}
static double fattr(StoreFile *f, const char *obj, const char *name) {
    double v = NAN;
    Err e;
    if (f) store_get_attr_f64(f, obj, name, &v, &e);
    return v;
}

static void check_split(StoreFile *f, StoreFile *data, const char *split, const char *judge) {
    char o[160];
    Err e;
    int64_t n = 0, m = 0;
    snprintf(o, sizeof o, "/eval/%s/input", split);
    char **in = f ? store_read_strings(f, o, &n, &e) : NULL;
    snprintf(o, sizeof o, "/eval/%s/reference", split);
    char **ref = f ? store_read_strings(f, o, &m, &e) : NULL;
    snprintf(o, sizeof o, "/eval/%s/student", split);
    int64_t ns = 0;
    char **stu = f ? store_read_strings(f, o, &ns, &e) : NULL;
    EXPECT(in && ref && stu && n > 0 && n == m && n == ns && n <= 6, "%s: %lld inputs, references, outputs", split,
           (long long)n);
    /* the reference is the teacher's first paraphrase of the input */
    char a[64], b[64];
    snprintf(a, sizeof a, "/inputs/%s", split);
    snprintf(b, sizeof b, "/teacher/%s/paraphrases", split);
    int64_t ni = 0, np = 0;
    char **din = data ? store_read_strings(data, a, &ni, &e) : NULL, **para = data ? store_read_strings(data, b, &np, &e) : NULL;
    int refs = din && para && in && ref;
    for (int64_t i = 0; refs && i < n; i++) {
        int found = 0;
        for (int64_t j = 0; j < ni && !found; j++)
            if (!strcmp(din[j], in[i])) found = 1, refs = !strcmp(para[j * (np / ni)], ref[i]);
        refs = refs && found;
    }
    EXPECT(refs, "%s: references are the teacher's first paraphrases", split);
    store_free_strings(din, ni), store_free_strings(para, np);
    store_free_strings(in, n), store_free_strings(ref, m), store_free_strings(stu, ns);
    char g[128];
    snprintf(g, sizeof g, "/eval/%s/%s", split, judge);
    const char *per[] = {"p_ab", "p_ba", "p", "verdict", "raw_ab", "raw_ba"};
    int shapes = 1;
    for (int k = 0; k < 6; k++) {
        int nd;
        int64_t dims[4] = {0};
        snprintf(o, sizeof o, "%s/%s", g, per[k]);
        shapes &= f && store_dims(f, o, &nd, dims, &e) == 0 && nd == 1 && dims[0] == n;
    }
    EXPECT(shapes, "%s: per-input judge datasets", g);
    double wtr = fattr(f, g, "wtr"), lo = fattr(f, g, "wtr_ci_low"), hi = fattr(f, g, "wtr_ci_high");
    int64_t wins = attr(f, g, "wins"), ties = attr(f, g, "ties"), losses = attr(f, g, "losses"), nn = attr(f, g, "n");
    EXPECT(wtr >= 0 && wtr <= 100 && lo <= wtr && wtr <= hi && nn == n && wins + ties + losses == n &&
               fabs(wtr - 100.0 * (double)(wins + ties) / (double)n) < 1e-9,
           "%s: wtr %g in [%g, %g], %lld/%lld/%lld of %lld", g, wtr, lo, hi, (long long)wins, (long long)ties,
           (long long)losses, (long long)nn);
    double pb = fattr(f, g, "position_bias"), sw = fattr(f, g, "student_words"), rw = fattr(f, g, "reference_words");
    EXPECT(pb >= 0 && pb <= 1 && sw >= 0 && rw > 0, "%s: position bias %g, words %g/%g", g, pb, sw, rw);
}

int main(void) {
    stats();
    char *dir = test_tmpdir("eval");
    char *judges = xasprintf("%s/judges.json", dir), *setj = xasprintf("eval.judges=%s", judges);
    test_write_file(judges, "{\"judges\": [{\"name\": \"second\", \"base_url\": \"standin\", \"temperature\": 0.5}]}", -1);
    const char *kv[] = {setj, NULL};
    Config c;
    test_stage_config(&c, dir, kv);
    char *out = NULL;
    EXPECT(test_stage("ingest", &c, 0, NULL) == 0 && test_stage("teach", &c, 0, NULL) == 0, "ingest + teach");
    EXPECT(test_stage("eval", &c, 0, &out) == EXIT_USAGE && strstr(out, "checkpoint"), "no checkpoint: exit 2");
    free(out);
    EXPECT(test_stage("train", &c, 0, NULL) == 0, "train");
    test_write_file(judges, "{\"judges\": [{\"name\": \"second\", \"modle\": \"x\"}]}", -1);
    EXPECT(test_stage("eval", &c, 0, &out) == EXIT_USAGE && strstr(out, "modle"), "bad judges file: exit 2");
    free(out);
    test_write_file(judges, "{\"judges\": [{\"name\": \"second\", \"base_url\": \"standin\", \"temperature\": 0.5}]}", -1);
    EXPECT(test_stage("eval", &c, 0, &out) == 0, "eval exits 0");
    free(out);
    char *run = xasprintf("%s/run.h5", c.run.dir);
    Err e;
    StoreFile *f = store_open(run, 0, &e), *d = store_open(c.data.path, 0, &e);
    EXPECT(attr(f, "/eval", "complete") == 1 && attr(f, "/eval", "step") == 40 && attr(f, "/eval", "seed") == 1,
           "/eval: complete, step %lld, seed", (long long)attr(f, "/eval", "step"));
    char *ob = f ? store_get_attr_str(f, "/eval", "objective", &e) : NULL;
    EXPECT(ob && !strcmp(ob, "dpo"), "objective %s", ob ? ob : e.msg);
    free(ob);
    check_split(f, d, "eval", "critic");
    check_split(f, d, "ood", "critic");
    check_split(f, d, "eval", "second");
    EXPECT(attr(f, "/usage/critic", "requests") > 0 && attr(f, "/usage/second", "requests") > 0,
           "usage of the critic and the extra judge");
    int64_t req = attr(f, "/usage/critic", "requests");
    store_close(f, NULL), store_close(d, NULL);
    EXPECT(test_stage("eval", &c, 0, &out) == 0 && strstr(out, "already evaluated"), "a second eval does nothing");
    free(out);
    f = store_open(run, 0, &e);
    EXPECT(attr(f, "/usage/critic", "requests") == req, "nothing asked the second time");
    store_close(f, NULL);
    free(run), free(judges), free(setj);
    config_free(&c);
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}
