/* train -- supervised fine-tuning (the imitation / warm-start phase) of the
 * student, data parallel over MPI ranks.
 *
 * Every optimizer step consumes one global batch of train.batch_size packed
 * rows from the deterministic stream (packer.h); rank r takes a contiguous
 * slice of them, in micro-batches of train.micro_batch rows (gradient
 * accumulation).  The loss is the mean cross-entropy over all target tokens
 * of the global batch, so each rank scales its gradient by 1/(global target
 * count) and a sum-allreduce gives exactly the single-process gradient.
 * Then global-norm clipping and AdamW (decoupled weight decay on matrices
 * and embeddings) with warm-up + cosine schedule, identically on every rank.
 *
 * Rank 0 writes run.h5 (configuration, provenance, tokenizer, metrics) and
 * checkpoints (docs/file-formats.md); a run directory that holds checkpoints is resumed from the
 * newest complete one, and the resumed loss curve is bitwise identical to an
 * uninterrupted one.  SIGTERM/SIGINT/SIGUSR1, a file named STOP in the run
 * directory, or train.max_run_time stop all ranks at a step boundary after a
 * checkpoint, with exit code 3 (EXIT_STOPPED) (the trainer's protocol,
 * trainer.h).  A run that reaches its last step marks run.h5's root
 * attribute sft_complete = 1.
 */
#ifndef HDISTILL_TRAIN_H
#define HDISTILL_TRAIN_H

#include "base/comm.h"
#include "base/config.h"
#include "engine/data.h"
#include "engine/tokenizer.h"

/* Runs `hdistill train`; returns the process exit code (collective). */
int train_main(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run);

/* The run's tokenizer when no checkpoint provides one: GPT-2's files, or a
 * byte-level BPE trained on the prompts and targets.  NULL with e set. */
Tokenizer *train_build_tokenizer(const Config *cfg, const Pairs *pairs, Err *e);

/* model.init_from (when set) checked against the configuration before any
 * data exists: the file is GPT-2 weights in the Hugging Face layout with the
 * model's dimensions, and no more token embeddings than tokenizer.vocab_size
 * (bpe; gpt2's vocabulary is checked when training starts).  Rank 0 only;
 * 0, or -1 with e naming model.init_from, the file and the tensor. */
int train_check_init_from(const Config *cfg, Err *e);

/* Learning rate at 0-based step s of total. */
double train_lr_at(const Config *cfg, int64_t s, int64_t total);

#endif
