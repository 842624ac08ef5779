/* generate -- `hdistill generate RUN_DIR|CHECKPOINT.h5|HF_DIR [--input TEXT
 * | --file FILE] [--beam N | --sample [--k N] [--temperature T] [--top-p P]]
 * [--seed S] [--max-new N] [--json] [--set k=v]...`: the student's
 * paraphrases of each input (infer.h: the run's prompt format, the
 * decoding of evaluation and the critique rounds).  One process, no MPI.
 * Inputs: every --input, or the lines of FILE, or the lines of stdin (each
 * decoded as soon as it is read when stdin is a terminal, else in chunks).
 * Output, one input after another: beam search prints its best output on one
 * line, sampling its k outputs on k lines; --json prints one JSON object per
 * input and line:
 *   {"input":TEXT,"prompt_ids":[...],"outputs":[{"text":TEXT,"logprob":L,
 *    "finish_reason":"stop"|"length","tokens":[{"id":I,"text":T,"logprob":L},...]}]}
 * where logprob is the sum of the generated tokens' log-probabilities (the
 * end token included when the output ended with it: finish_reason "stop")
 * as the decoder computed them, and tokens lists those tokens, each scored
 * again by a full forward pass (infer_score).  Input index i (from 0) seeds
 * sampling as input i of a split does in the run (gen.h).  docs/generate.md.
 */
#ifndef HDISTILL_GENERATE_H
#define HDISTILL_GENERATE_H

/* Returns the process exit code: 0, 1 (an output could not be written),
 * 2 (bad arguments, or a source that cannot be read: one line naming the
 * path and a hint). */
int generate_main(int argc, char **argv);

#endif
