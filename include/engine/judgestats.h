/* judgestats -- what an evaluation reports per split and judge, from the
 * judge's preferences P(student better) asked in both orders (Ravi et al.
 * 2024's win-or-tie rate, kept exactly comparable, and what the field now
 * expects next to it).
 *
 * An input is judged when at least one order gave a preference (p_ab or
 * p_ba not NaN); its preference p is the mean of the orders that did.  An
 * unjudged input (no usable verdict in either order: cut by max_tokens,
 * refused, unparseable) is never a tie: it gets verdict JUDGE_UNJUDGED and
 * is left out of every rate, which are over judged inputs only (NaN when
 * there are none).
 *   verdict            1 win, 0 tie (|p - 0.5| <= tie_margin), -1 loss
 *   wtr                win-or-tie rate x 100, percentile bootstrap 95%
 *                      interval (resampling the judged inputs, seeded)
 *   lc_winrate         length-controlled win rate x 100 (after AlpacaEval 2's
 *                      length control, Dubois et al. 2024): the soft
 *                      preference p fitted by a logistic model on the
 *                      normalised length difference z = tanh((words_s -
 *                      words_r) / sd), sigma(a + b z), predicted at z = 0;
 *                      its interval by the same bootstrap
 *   position_bias      share of inputs judged in both orders whose two
 *                      single-order verdicts are both decisive and opposite
 *   position_consistency share of inputs judged in both orders whose two
 *                      single-order verdicts are equal
 *   length_bias        of the decisive verdicts between outputs of different
 *                      word lengths, the share won by the longer one
 * Between two judges of the same inputs: Cohen's kappa on the verdicts and
 * Kendall's tau-b on p, over the inputs both judged.  Pure computation.
 */
#ifndef HDISTILL_JUDGESTATS_H
#define HDISTILL_JUDGESTATS_H

#include <stdint.h>

enum { JUDGE_UNJUDGED = -2 };

typedef struct {
    int64_t n, judged, unjudged, wins, ties, losses;
    double wtr, ci_low, ci_high;
    double lc_winrate, lc_low, lc_high;
    double position_bias, position_consistency, length_bias;
    double student_words, reference_words; /* over all n */
} JudgeStats;

/* Statistics of n judgements: p_ab/p_ba are P(student better) in each order
 * (NaN where that order gave none), ws/wr the word counts of student and
 * reference; verdict (may be NULL) gets the n verdicts; p (may be NULL) the
 * mean preference (NaN when unjudged). */
void judge_stats(const double *p_ab, const double *p_ba, const int *ws, const int *wr, int64_t n, double tie_margin,
                 int bootstrap, uint64_t seed, JudgeStats *out, int *verdict, double *p);

/* Cohen's kappa of two verdict lists over the inputs both judged; NaN when
 * there are none or the expected agreement is 1. */
double judge_kappa(const int *va, const int *vb, int64_t n);
/* Kendall's tau-b of two preference lists over the inputs both judged; NaN
 * when undefined (fewer than two, or one list constant). */
double judge_kendall_tau(const double *pa, const double *pb, int64_t n);

/* The length-controlled win rate x 100 of (p[i], z[i]) i < n (exposed for
 * tests): the logistic fit of p on z predicted at z = 0. */
double judge_lc_winrate(const double *p, const double *z, int64_t n);

#endif
