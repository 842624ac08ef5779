/* evaluate -- the student against the teacher's reference, judged by the
 * critic and any extra judges (eval.judges), in both orders (Ravi et al.
 * 2024, evaluation).
 *
 * For each split in eval.splits (eval, ood) the student answers every input
 * with beam search (eval.beam; decoded on all ranks), the reference is the
 * teacher's first paraphrase of that input (inputs the teacher refused or
 * left empty are skipped), and each judge gives P(student better) asked
 * both ways.  Per judge and split:
 *   verdict      win / tie / loss from the mean of both orders (a tie when
 *                |p - 0.5| <= eval.tie_margin)
 *   wtr          win-or-tie rate x 100, with a 95% percentile bootstrap
 *                interval (eval.bootstrap resamples of the inputs, seeded)
 *   position_bias share of inputs whose two single-order verdicts are both
 *                decisive and opposite (the verdict flips with the order)
 *   length_bias  of the decisive verdicts between outputs of different word
 *                lengths, the share won by the longer one
 *   student_words / reference_words  mean lengths
 * Stored in run.h5 under /eval/<split>/... and printed as a table.
 */
#ifndef HDISTILL_EVALUATE_H
#define HDISTILL_EVALUATE_H

#include <stdint.h>

#include "base/comm.h"
#include "base/config.h"

int eval_main(const Config *cfg, const Comm *comm, int argc, char **argv);
/* The same into the group root of run.h5 ("/eval", or "/rounds/<r>/eval"
 * for the evaluation after round r); skipped when root holds a complete
 * evaluation of the newest checkpoint. */
int eval_run(const Config *cfg, const Comm *comm, const char *root);

/* hdistill report RUN_DIR [--json]: the stored evaluation as a table or JSON. */
int report_main(int argc, char **argv);

typedef struct {
    int64_t n, wins, ties, losses;
    double wtr, ci_low, ci_high, position_bias, length_bias, student_words, reference_words;
} EvalStats;

/* Statistics of n judgements (exposed for tests): p_ab/p_ba are P(student
 * better) in each order (NaN if unparsed); words of both outputs. */
void eval_stats(const double *p_ab, const double *p_ba, const int *w_student, const int *w_ref, int64_t n,
                double tie_margin, int bootstrap, uint64_t seed, EvalStats *out, int *verdict);

#endif
