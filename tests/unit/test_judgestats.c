/* test_judgestats -- evaluation statistics against hand-worked cases and
 * SciPy: the length-controlled win rate (logistic fit), Cohen's kappa,
 * Kendall's tau-b, and that an unjudged input is never a tie; the tie
 * margin (a judged input within it is a tie, a margin of 0.5 makes every
 * judged input one), the mean lengths over all inputs, no bootstrap -> NaN
 * intervals, all wins, and no input at all. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/judgestats.h"
#include "test.h"

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static void test_lc(void) {
    /* no length signal: the fit is the intercept alone, sigma(a) = mean p */
    double p[8] = {0.9, 0.2, 0.7, 0.6, 0.5, 1.0, 0.0, 0.8}, z[8] = {0}, mean = 0;
    for (int i = 0; i < 8; i++) mean += p[i] / 8;
    EXPECT(fabs(judge_lc_winrate(p, z, 8) - 100 * mean) < 1e-4, "lc %g vs %g", judge_lc_winrate(p, z, 8), 100 * mean);
    /* preferences exactly logistic in z: the fit recovers sigma(a) */
    double pz[21], zz[21];
    for (int i = 0; i < 21; i++) zz[i] = tanh((i - 10) / 4.0), pz[i] = sigmoid(-0.4 + 1.7 * zz[i]);
    EXPECT(fabs(judge_lc_winrate(pz, zz, 21) - 100 * sigmoid(-0.4)) < 1e-3, "lc %g vs %g", judge_lc_winrate(pz, zz, 21),
           100 * sigmoid(-0.4));
    /* the judge prefers the longer answer and the student is mostly longer: the raw mean overstates, the
     * controlled rate does not */
    double pl[21];
    for (int i = 0; i < 21; i++) zz[i] = tanh((i - 5) / 4.0), pl[i] = zz[i] > 0 ? 0.9 : zz[i] < 0 ? 0.3 : 0.5;
    double raw = 0;
    for (int i = 0; i < 21; i++) raw += pl[i] / 21;
    EXPECT(judge_lc_winrate(pl, zz, 21) < 100 * raw, "lc %g not below raw %g", judge_lc_winrate(pl, zz, 21), 100 * raw);
    /* against SciPy's BFGS on the same log-likelihood:
     *   p_i = ((37 i) mod 101) / 100, z_i = tanh(((13 i) mod 17 - 8) / 5), i < 40  ->  49.912392267707695 */
    double pr[40], zr[40];
    for (int i = 0; i < 40; i++) pr[i] = ((i * 37) % 101) / 100.0, zr[i] = tanh(((i * 13) % 17 - 8) / 5.0);
    EXPECT(fabs(judge_lc_winrate(pr, zr, 40) - 49.912392267707695) < 1e-3, "lc %.9f", judge_lc_winrate(pr, zr, 40));
    /* separated preferences stay finite (the ridge) */
    double ps[4] = {1, 1, 0, 0}, zs[4] = {0.5, 0.9, -0.5, -0.9};
    double lc = judge_lc_winrate(ps, zs, 4);
    EXPECT(isfinite(lc) && fabs(lc - 50) < 1, "separated lc %g", lc);
    EXPECT(isnan(judge_lc_winrate(ps, zs, 0)), "empty lc is NaN");
}

static void test_kappa_tau(void) {
    /* po = 3/4, pe = (1*1 + 1*2 + 2*1) / 16 = 5/16, kappa = (3/4 - 5/16) / (11/16) = 7/11 */
    int va[5] = {1, 1, 0, -1, JUDGE_UNJUDGED}, vb[5] = {1, 0, 0, -1, 1};
    EXPECT(fabs(judge_kappa(va, vb, 5) - 7.0 / 11.0) < 1e-12, "kappa %g", judge_kappa(va, vb, 5));
    int same[3] = {1, 1, 1};
    EXPECT(isnan(judge_kappa(same, same, 3)), "constant verdicts: kappa undefined");
    int all_unj[2] = {JUDGE_UNJUDGED, JUDGE_UNJUDGED};
    EXPECT(isnan(judge_kappa(all_unj, va, 2)), "no common judged input: NaN");
    int opp_a[4] = {1, -1, 1, -1}, opp_b[4] = {-1, 1, -1, 1};
    EXPECT(fabs(judge_kappa(opp_a, opp_b, 4) + 1) < 1e-12, "opposite kappa %g", judge_kappa(opp_a, opp_b, 4));
    /* SciPy kendalltau([1,2,2,3],[1,2,3,3]) = 0.8 (tau-b with ties); NaN entries are skipped */
    double pa[5] = {1, 2, 2, 3, NAN}, pb[5] = {1, 2, 3, 3, 7};
    EXPECT(fabs(judge_kendall_tau(pa, pb, 5) - 0.8) < 1e-12, "tau %g", judge_kendall_tau(pa, pb, 5));
    double qa[3] = {1, 2, 3}, qb[3] = {1, 3, 2};
    EXPECT(fabs(judge_kendall_tau(qa, qb, 3) - 1.0 / 3.0) < 1e-12, "tau %g", judge_kendall_tau(qa, qb, 3));
    double c[3] = {0.5, 0.5, 0.5};
    EXPECT(isnan(judge_kendall_tau(qa, c, 3)), "constant list: tau undefined");
}

static void test_stats(void) {
    /* 6 inputs: win both orders, tie, loss, one order only (win), unjudged, a position flip */
    double ab[6] = {0.9, 0.5, 0.1, NAN, NAN, 0.9};
    double ba[6] = {0.8, 0.5, 0.2, 0.7, NAN, 0.1};
    int ws[6] = {10, 5, 5, 12, 4, 6}, wr[6] = {5, 5, 9, 6, 4, 6};
    int v[6];
    double p[6];
    JudgeStats s;
    judge_stats(ab, ba, ws, wr, 6, 0.05, 200, 7, &s, v, p);
    EXPECT(s.n == 6 && s.judged == 5 && s.unjudged == 1, "n %lld judged %lld unjudged %lld", (long long)s.n,
           (long long)s.judged, (long long)s.unjudged);
    EXPECT(v[4] == JUDGE_UNJUDGED && isnan(p[4]), "unjudged verdict %d p %g", v[4], p[4]);
    EXPECT(v[0] == 1 && v[1] == 0 && v[2] == -1 && v[3] == 1 && v[5] == 0, "verdicts %d %d %d %d %d", v[0], v[1], v[2],
           v[3], v[5]);
    EXPECT(s.wins == 2 && s.ties == 2 && s.losses == 1, "w %lld t %lld l %lld", (long long)s.wins, (long long)s.ties,
           (long long)s.losses);
    EXPECT(fabs(s.wtr - 80.0) < 1e-12, "wtr %g (4 of 5 judged, the unjudged one not a tie)", s.wtr);
    EXPECT(s.ci_low <= s.wtr && s.wtr <= s.ci_high, "ci [%g, %g]", s.ci_low, s.ci_high);
    /* both orders at 0,1,2,5: single-order verdicts equal at 0,1,2; 5 flips */
    EXPECT(fabs(s.position_consistency - 0.75) < 1e-12, "consistency %g", s.position_consistency);
    EXPECT(fabs(s.position_bias - 0.25) < 1e-12, "position bias %g", s.position_bias);
    /* decisive with different lengths: 0 (longer student wins), 2 (longer reference wins), 3 (longer student wins) */
    EXPECT(fabs(s.length_bias - 1.0) < 1e-12, "length bias %g", s.length_bias);
    EXPECT(isfinite(s.lc_winrate) && s.lc_low <= s.lc_high, "lc %g [%g, %g]", s.lc_winrate, s.lc_low, s.lc_high);
    /* the same seed gives the same interval */
    JudgeStats t;
    judge_stats(ab, ba, ws, wr, 6, 0.05, 200, 7, &t, NULL, NULL);
    EXPECT(t.ci_low == s.ci_low && t.lc_high == s.lc_high, "bootstrap reproducible");
    /* nothing judged: every rate is missing, never 0 or 50 */
    double none[3] = {NAN, NAN, NAN};
    int w3[3] = {1, 2, 3};
    judge_stats(none, none, w3, w3, 3, 0.05, 50, 1, &s, NULL, NULL);
    EXPECT(s.judged == 0 && isnan(s.wtr) && isnan(s.lc_winrate) && isnan(s.ci_low) && isnan(s.position_bias),
           "all unjudged: wtr %g lc %g", s.wtr, s.lc_winrate);
}

/* (from the unit-tests branch's eval_stats case, with unjudged inputs left out as judgestats.h says) */
static void test_margin(void) {
    const double pab[6] = {0.9, 0.1, 0.52, 0.9, NAN, NAN}, pba[6] = {0.8, 0.2, 0.5, 0.1, 0.7, NAN};
    const int ws[6] = {10, 8, 5, 5, 4, 6}, wr[6] = {5, 3, 5, 5, 4, 6};
    int verdict[6] = {9, 9, 9, 9, 9, 9};
    double p[6];
    JudgeStats s, s2;
    judge_stats(pab, pba, ws, wr, 6, 0.05, 400, 7, &s, verdict, p);
    /* p = 0.85, 0.15, 0.51 (within the margin), 0.5, 0.7 (one order), NaN (neither) */
    const int want_v[6] = {1, -1, 0, 0, 1, JUDGE_UNJUDGED};
    EXPECT(!memcmp(verdict, want_v, sizeof want_v), "verdicts %d %d %d %d %d %d", verdict[0], verdict[1], verdict[2],
           verdict[3], verdict[4], verdict[5]);
    EXPECT(fabs(p[0] - 0.85) < 1e-12 && fabs(p[2] - 0.51) < 1e-12 && p[4] == 0.7 && isnan(p[5]), "preferences");
    EXPECT(s.n == 6 && s.judged == 5 && s.unjudged == 1 && s.wins == 2 && s.ties == 2 && s.losses == 1,
           "counts %lld/%lld/%lld, %lld unjudged", (long long)s.wins, (long long)s.ties, (long long)s.losses,
           (long long)s.unjudged);
    EXPECT(fabs(s.wtr - 80.0) < 1e-12, "wtr %g: 4 of the 5 judged", s.wtr);
    /* both orders at inputs 0..3; input 3 flips (0.9 vs 0.1), input 2 is a tie in both (0.52, 0.5) */
    EXPECT(fabs(s.position_bias - 0.25) < 1e-12 && fabs(s.position_consistency - 0.75) < 1e-12,
           "position bias %g, consistency %g: one flip of 4 inputs judged both ways", s.position_bias,
           s.position_consistency);
    /* decisive with different lengths: input 0 (longer student wins), 1 (longer student loses); 4 has equal lengths */
    EXPECT(fabs(s.length_bias - 0.5) < 1e-12, "length bias: 1 of 2 decisive verdicts won by the longer, got %g",
           s.length_bias);
    EXPECT(fabs(s.student_words - 38.0 / 6) < 1e-12 && fabs(s.reference_words - 28.0 / 6) < 1e-12,
           "mean lengths over all inputs");
    EXPECT(s.ci_low <= s.wtr && s.wtr <= s.ci_high && s.ci_low >= 0 && s.ci_high <= 100 && s.ci_low < s.ci_high,
           "interval [%g, %g] around %g", s.ci_low, s.ci_high, s.wtr);
    judge_stats(pab, pba, ws, wr, 6, 0.05, 400, 7, &s2, NULL, NULL);
    EXPECT(s2.ci_low == s.ci_low && s2.ci_high == s.ci_high, "the bootstrap is seeded");
    judge_stats(pab, pba, ws, wr, 6, 0.5, 0, 7, &s2, verdict, NULL);
    EXPECT(s2.ties == 5 && s2.judged == 5 && verdict[5] == JUDGE_UNJUDGED && s2.wtr == 100 && isnan(s2.ci_low) &&
               isnan(s2.ci_high) && isnan(s2.lc_low) && isnan(s2.length_bias),
           "margin 0.5: every judged input a tie, the unjudged one still not; no bootstrap -> NaN interval");
    const double all_a[3] = {0.9, 0.8, 0.95}, all_b[3] = {0.9, 0.7, 0.99};
    judge_stats(all_a, all_b, ws, wr, 3, 0.05, 100, 1, &s2, NULL, NULL);
    EXPECT(s2.wtr == 100 && s2.ci_low == 100 && s2.ci_high == 100 && s2.position_bias == 0 && s2.unjudged == 0,
           "all wins");
    judge_stats(all_a, all_b, ws, wr, 0, 0.05, 100, 1, &s2, NULL, NULL);
    EXPECT(s2.n == 0 && s2.judged == 0 && isnan(s2.wtr) && isnan(s2.position_bias) && isnan(s2.ci_low),
           "no judgements: NaN");
}

int main(void) {
    test_lc();
    test_kappa_tau();
    test_stats();
    test_margin();
    return test_summary();
}
