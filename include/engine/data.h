/* data -- training pairs and tokenized examples (the packer that turns
 * them into rows is packer.h; loading them from files is io/dataset.h).
 *
 * A pair (prompt, target) becomes one example of token ids
 *     prompt ids (prompt.h: plain: input, separator; chat: the turns), target ids, end id
 * and occupies len-1 positions of a row: inputs ids[0..len-1), next-token
 * targets ids[1..len), with the loss only on positions whose target is a
 * target or end-of-text token.  Examples are packed greedily into rows of T
 * positions by packer.h.
 */
#ifndef HDISTILL_DATA_H
#define HDISTILL_DATA_H

#include <stdint.h>

#include "engine/prompt.h"
#include "engine/tokenizer.h"
#include "base/util.h"

typedef struct {
    int64_t n;
    char **prompt, **target;
    int64_t *line; /* source line (JSONL) or row (HDF5) of each pair, for messages */
} Pairs;

/* Frees the strings of p (accepts NULL). */
void data_pairs_free(Pairs *p);

typedef struct {
    int64_t n;
    int64_t *off;      /* n+1 offsets into ids */
    int32_t *ids;      /* off[n] ids */
    int32_t *n_prompt; /* ids before the first target id (prompt + separator) */
} Examples;

/* Tokenizes pairs in prompt format fmt (prompt.h): the prompt's ids, then
 * the target's and the end id.  An example needing more than T positions is
 * an error naming its line (skip_too_long: dropped and counted in *skipped).
 * Returns 0 or -1 with e set. */
int data_tokenize(const Pairs *p, const Tokenizer *tok, const PromptFormat *fmt, int T, int skip_too_long,
                  const char *source, Examples *out, int64_t *skipped, Err *e);
void data_examples_free(Examples *x);
/* out = the examples idx[0..n) of all, in that order (fresh copies). */
void data_examples_pick(const Examples *all, const int64_t *idx, int64_t n, Examples *out);

/* Deterministic split: example i goes to validation iff a hash of
 * (seed, i) falls under frac.  Fills train/val (fresh copies). */
void data_split(const Examples *all, double frac, uint64_t seed, Examples *train, Examples *val);

#endif
