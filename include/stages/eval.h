/* eval -- the student against the teacher's reference, judged by the
 * critic and any extra judges (eval.judges), in both orders (Ravi et al.
 * 2024, evaluation).
 *
 * For each split in eval.splits (eval, ood) the student answers every input
 * with beam search (eval.beam; decoded on all ranks), the reference is the
 * teacher's first paraphrase of that input (inputs the teacher refused or
 * left empty are skipped), and each judge gives P(student better) asked
 * both ways.  Per judge and split (engine/judgestats.h): verdicts (win,
 * tie, loss; unjudged inputs -- no usable verdict in either order -- are
 * never ties and are left out of every rate; with none judged the
 * evaluation fails), the win-or-tie rate of the paper with its bootstrap
 * interval, the length-controlled win rate, position bias and consistency,
 * length bias, mean lengths, and where the preferences came from
 * (log-probs, the written answer, none; a warning when log-probs were asked
 * for and missing).  With several judges, their agreement per split (Cohen's
 * kappa, Kendall's tau).
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

#endif
