/* test_eval -- stages/eval.h (the statistics themselves are
 * engine/judgestats.h's, in test_judgestats.c).  The stage on the tiny
 * configuration (ingest, teach, SFT first), in one-rank children: /eval
 * with complete, step (the newest checkpoint), objective, seed;
 * /eval/<split>/{input,student,reference} (the reference is the teacher's
 * first paraphrase) and per judge {p_ab,p_ba,p,verdict,raw_ab,raw_ba}: p the
 * mean of the orders with a verdict, NaN exactly where the verdict is -2
 * (unjudged), the counts equal to the verdicts, judged + unjudged = n, wtr
 * over the judged inputs only, inside its interval, the answer sources
 * counting both orders; an extra judge from eval.judges and the agreement
 * of the two; the critic's usage; a second run does nothing; without a
 * checkpoint, or with a bad judges file, it exits 2. */
#define TEST_STAGES
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "io/store.h"
#include "stages/eval.h"
#include "test.h"

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

static void check_split(StoreFile *f, StoreFile *data, const char *split, const char *judge, double tm) {
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
    /* the per-input verdicts and preferences against the attributes */
    double *pab = xcalloc((size_t)n + 1, sizeof(double)), *pba = xcalloc((size_t)n + 1, sizeof(double));
    double *pp = xcalloc((size_t)n + 1, sizeof(double));
    int32_t *v = xcalloc((size_t)n + 1, sizeof(int32_t));
    int read = 1;
    snprintf(o, sizeof o, "%s/p_ab", g), read &= f && store_read_f64(f, o, pab, n, &e) == 0;
    snprintf(o, sizeof o, "%s/p_ba", g), read &= f && store_read_f64(f, o, pba, n, &e) == 0;
    snprintf(o, sizeof o, "%s/p", g), read &= f && store_read_f64(f, o, pp, n, &e) == 0;
    snprintf(o, sizeof o, "%s/verdict", g), read &= f && store_read_i32(f, o, v, n, &e) == 0;
    EXPECT(read, "%s: read the judge datasets", g);
    int64_t cw = 0, ct = 0, cl = 0, cu = 0;
    int consistent = read;
    for (int64_t i = 0; consistent && i < n; i++) {
        double want = !isnan(pab[i]) && !isnan(pba[i]) ? 0.5 * (pab[i] + pba[i]) : isnan(pab[i]) ? pba[i] : pab[i];
        int vw = isnan(want) ? -2 : want > 0.5 + tm ? 1 : want < 0.5 - tm ? -1 : 0;
        consistent = v[i] == vw && (isnan(want) ? isnan(pp[i]) : fabs(pp[i] - want) < 1e-12);
        cw += v[i] == 1, ct += v[i] == 0, cl += v[i] == -1, cu += v[i] == -2;
    }
    EXPECT(consistent, "%s: p is the mean of the orders with a verdict, verdict -2 exactly where p is NaN", g);
    double wtr = fattr(f, g, "wtr"), lo = fattr(f, g, "wtr_ci_low"), hi = fattr(f, g, "wtr_ci_high");
    int64_t wins = attr(f, g, "wins"), ties = attr(f, g, "ties"), losses = attr(f, g, "losses"), nn = attr(f, g, "n");
    int64_t judged = attr(f, g, "judged"), unjudged = attr(f, g, "unjudged");
    EXPECT(wins == cw && ties == ct && losses == cl && unjudged == cu && nn == n && judged + unjudged == n &&
               wins + ties + losses == judged && judged > 0,
           "%s: counts %lld/%lld/%lld, %lld judged, %lld unjudged of %lld equal the verdicts", g, (long long)wins,
           (long long)ties, (long long)losses, (long long)judged, (long long)unjudged, (long long)nn);
    EXPECT(wtr >= 0 && wtr <= 100 && lo <= wtr && wtr <= hi &&
               fabs(wtr - 100.0 * (double)(wins + ties) / (double)judged) < 1e-9,
           "%s: wtr %g in [%g, %g] over the judged inputs", g, wtr, lo, hi);
    double lc = fattr(f, g, "lc_winrate"), llo = fattr(f, g, "lc_ci_low"), lhi = fattr(f, g, "lc_ci_high");
    EXPECT(lc >= 0 && lc <= 100 && llo <= lhi, "%s: lc_winrate %g [%g, %g]", g, lc, llo, lhi);
    double pb = fattr(f, g, "position_bias"), pc = fattr(f, g, "position_consistency");
    double sw = fattr(f, g, "student_words"), rw = fattr(f, g, "reference_words");
    EXPECT(pb >= 0 && pb <= 1 && pc >= 0 && pc <= 1 && pb + pc <= 1 + 1e-12 && sw >= 0 && rw > 0,
           "%s: position bias %g, consistency %g, words %g/%g", g, pb, pc, sw, rw);
    int64_t sl = attr(f, g, "p_from_logprobs"), stx = attr(f, g, "p_from_text"), sn = attr(f, g, "p_from_none");
    EXPECT(sl >= 0 && stx >= 0 && sn >= 0 && sl + stx + sn == 2 * n, "%s: answer sources %lld + %lld + %lld of 2 x %lld",
           g, (long long)sl, (long long)stx, (long long)sn, (long long)n);
    free(pab), free(pba), free(pp), free(v);
}

int main(void) {
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
    check_split(f, d, "eval", "critic", c.eval.tie_margin);
    check_split(f, d, "ood", "critic", c.eval.tie_margin);
    check_split(f, d, "eval", "second", c.eval.tie_margin);
    check_split(f, d, "ood", "second", c.eval.tie_margin);
    double kappa = fattr(f, "/eval/eval/agreement/critic__second", "kappa");
    int64_t both = -1;
    EXPECT(f && store_read_i64(f, "/eval/eval/agreement/critic__second/n_both", &both, 1, &e) == 0 && both >= 0 &&
               (isnan(kappa) || (kappa >= -1 && kappa <= 1)),
           "agreement of critic and second: kappa %g on %lld inputs", kappa, (long long)both);
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
