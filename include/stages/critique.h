/* critique -- the critique phase of "Small But Funny" (Ravi et al. 2024):
 * rounds of (sample k candidates per training input -> pick the most
 * distant comparable pair -> the critic judges it in both orders -> train
 * on the labelled pairs), starting from the student after supervised
 * fine-tuning.
 *
 * Objectives (critique.objective): ft (more imitation epochs on the
 * teacher's pairs), sd (cross-entropy on the critic-preferred candidates),
 * dpo (against the round's starting model as frozen reference), brio, and
 * brio-dpo (BRIO on teacher-vs-teacher pairs ranked by the critic, then DPO
 * on the student's pairs).  A round is a list of phases, each a number of
 * optimizer steps over one pair set with one objective (pref.h).
 *
 * With critique.pipeline=1 rank 0 judges each sampled chunk of inputs on a
 * thread while the ranks sample the next ones (0: after the last chunk);
 * both store the same bits.
 *
 * Everything a round decided is stored in run.h5 under /rounds/<r> before
 * training on it (inputs, candidates, selected pairs, both-order
 * preferences, raw critic answers, labels, reference log-probs; layout per
 * objective in docs/file-formats.md, "Critique rounds"), so a run
 * killed at any point resumes: sampling and judging are not redone (and the
 * critic's answers are in the durable cache anyway), and training resumes
 * from the newest checkpoint within the round with the same data order.
 * Stop signals / STOP / time limit: checkpoint and exit 3, as in train.
 */
#ifndef HDISTILL_CRITIQUE_H
#define HDISTILL_CRITIQUE_H

#include "base/comm.h"
#include "base/config.h"

/* Runs the rounds not yet complete; returns the exit code (collective). */
int critique_main(const Config *cfg, const Comm *comm, int argc, char **argv);
/* `hdistill critique --dry-run`: checks what the rounds need (the inputs and
 * the teacher's answers in data.path, a readable checkpoint in run.dir) and
 * prints what is left to do, the most critic requests it can take and
 * their estimated tokens and cost; reads only (no lock, nothing written,
 * nothing sent).  Collective; exit code. */
int critique_plan(const Config *cfg, const Comm *comm);
/* For `hdistill run --dry-run` (no checkpoint needed): the critic's
 * requests of the rounds not yet collected, their estimated tokens and cost
 * (the teacher's paraphrases stand in for the student's candidates).  Reads
 * only.  Collective; exit code (2 when data.path lacks the teacher's
 * answers). */
int critique_plan_requests(const Config *cfg, const Comm *comm);

#endif
