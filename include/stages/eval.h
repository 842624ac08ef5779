/* eval -- the student against the teacher's reference, judged by the
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
 * Stored in run.h5 under /eval/<split>/... (docs/file-formats.md,
 * "Evaluation") and printed as a table.
 */
#ifndef HDISTILL_EVALUATE_H
#define HDISTILL_EVALUATE_H

#include <stdint.h>

#include "base/comm.h"
#include "base/config.h"
#include "io/store.h"
#include "llm/cache.h"
#include "stages/session.h"
#include "stages/student.h"

/* `hdistill eval`: the newest checkpoint into run.h5 /eval.  Collective;
 * returns the exit code. */
int eval_main(const Config *cfg, const Comm *comm, int argc, char **argv);
/* `hdistill eval --dry-run`: checks the checkpoint, the splits and their
 * references and the judges file, and prints the inputs and requests per
 * judge (or that the newest checkpoint is already evaluated); reads only.
 * Collective; exit code. */
int eval_plan(const Config *cfg, const Comm *comm);

/* What a caller that already holds them lends to an evaluation; NULL
 * members (or a NULL EvalShared) are opened by the evaluation itself.
 *   student  the model to evaluate (all ranks; else the newest checkpoint)
 *   run      run.h5 open for writing (rank 0)
 *   cache    the run's LLM cache (rank 0)
 *   critic   the critic's session over that cache (rank 0); its usage is
 *            the caller's to record */
typedef struct {
    const Student *student;
    StoreFile *run;
    LlmCache *cache;
    LlmSession *critic;
} EvalShared;

/* Collective: evaluates into the group root of run.h5 ("/eval", or
 * "/rounds/<r>/eval" after round r, "/sft/eval" after SFT); skipped when
 * root holds a complete evaluation of the same step.  Returns STATUS_OK or
 * STATUS_STOPPED (a stop signal ended the judging); failures end every rank
 * with one message (EXIT_USAGE for missing inputs, else EXIT_RUNTIME). */
Status eval_run(const Config *cfg, const Comm *comm, const char *root, const EvalShared *sh);

typedef struct {
    int64_t n, wins, ties, losses;
    double wtr, ci_low, ci_high, position_bias, length_bias, student_words, reference_words;
} EvalStats;

/* Statistics of n judgements (exposed for tests): p_ab/p_ba are P(student
 * better) in each order (NaN if unparsed); words of both outputs. */
void eval_stats(const double *p_ab, const double *p_ba, const int *w_student, const int *w_ref, int64_t n,
                double tie_margin, int bootstrap, uint64_t seed, EvalStats *out, int *verdict);

#endif
