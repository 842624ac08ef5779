/* dataset -- training pairs from files, and the collective hand-out of
 * rank 0's examples and tokenizer to every rank (data parallelism: all
 * ranks hold the same examples).
 */
#ifndef HDISTILL_DATASET_H
#define HDISTILL_DATASET_H

#include <stdint.h>

#include "base/util.h"
#include "engine/data.h"
#include "engine/tokenizer.h"

/* Loads pairs from a .jsonl file ({"prompt": str, "target": str} per line;
 * blank lines skipped) or an HDF5 file (/pairs/prompt + /pairs/target, or a
 * teach data.h5: /inputs/train x /teacher/paraphrases, skipping refused
 * inputs, empty paraphrases and those of answers cut by the token limit).  max > 0 keeps the first max pairs.
 * Errors name the file and line. */
int dataset_load_pairs(const char *path, int64_t max, Pairs *out, Err *e);
enum { DATASET_TRUNCATED = 1 }; /* flags of dataset_load_pairs_with */
/* The same; with DATASET_TRUNCATED a teach data.h5 also gives the items of
 * answers cut by the token limit (/teacher/truncated_paraphrases), which
 * are left out otherwise. */
int dataset_load_pairs_with(const char *path, int64_t max, unsigned flags, Pairs *out, Err *e);

/* Collective: rank 0's examples to every rank (others' x is replaced). */
void dataset_bcast_examples(Examples *x);
/* Collective: rank 0's tokenizer description to every rank (others' td is replaced). */
void dataset_bcast_tokenizer(TokenizerData *td);

#endif
