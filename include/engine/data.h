/* data -- training pairs, tokenized examples, and the deterministic packer.
 *
 * A pair (prompt, target) becomes one example of token ids
 *     prompt ids, separator ids, target ids, <|endoftext|>
 * and occupies len-1 positions of a row: inputs ids[0..len-1), next-token
 * targets ids[1..len), with the loss only on positions whose target is a
 * target or end-of-text token.  Examples are packed greedily into rows of T
 * positions in the order of an infinite stream (epoch e = a seeded
 * permutation of the examples); each packed example restarts its position
 * ids at 0 and attends only to itself (model.h: seg), the rest of a row is
 * padding without loss.  The stream is a pure function of (seed, cursor), so
 * a checkpoint stores only the cursor, and the rows of a global batch do not
 * depend on how many ranks share them.
 */
#ifndef HDISTILL_DATA_H
#define HDISTILL_DATA_H

#include <stdint.h>

#include "engine/tokenizer.h"
#include "base/util.h"

typedef struct {
    int64_t n;
    char **prompt, **target;
    int64_t *line; /* source line (JSONL) or row (HDF5) of each pair, for messages */
} Pairs;

/* Loads pairs from a .jsonl file ({"prompt": str, "target": str} per line;
 * blank lines skipped) or an HDF5 file (/pairs/prompt + /pairs/target, or a
 * teach data.h5: /inputs/train x /teacher/paraphrases, skipping refused
 * inputs and empty paraphrases).  max > 0 keeps the first max pairs.
 * Errors name the file and line. */
int data_load_pairs(const char *path, int64_t max, Pairs *out, Err *e);
void data_pairs_free(Pairs *p);

typedef struct {
    int64_t n;
    int64_t *off;      /* n+1 offsets into ids */
    int32_t *ids;      /* off[n] ids */
    int32_t *n_prompt; /* ids before the first target id (prompt + separator) */
} Examples;

/* Tokenizes pairs.  sep/n_sep: the separator ids.  An example needing more
 * than T positions is an error naming its line (skip_too_long: dropped and
 * counted in *skipped).  Returns 0 or -1 with e set. */
int data_tokenize(const Pairs *p, const Tokenizer *tok, const int *sep, int n_sep, int T,
                  int skip_too_long, const char *source, Examples *out, int64_t *skipped, Err *e);
void data_examples_free(Examples *x);
/* Rank 0's examples to every rank (others' x is replaced). */
void data_examples_bcast(Examples *x);
/* out = the examples idx[0..n) of all, in that order (fresh copies). */
void data_examples_pick(const Examples *all, const int64_t *idx, int64_t n, Examples *out);

/* Rank 0's tokenizer description to every rank (others' td is replaced). */
void data_tokenizer_bcast(TokenizerData *td);
/* Deterministic split: example i goes to validation iff a hash of
 * (seed, i) falls under frac.  Fills train/val (fresh copies). */
void data_split(const Examples *all, double frac, uint64_t seed, Examples *train, Examples *val);

typedef struct {
    int64_t epoch, index; /* next example: position index of epoch's permutation */
} DataCursor;

typedef struct {
    const Examples *ex;
    uint64_t seed;
    int shuffle;
    int T;
    DataCursor cur;
    int64_t *perm; /* permutation of the cursor's epoch */
    int64_t perm_epoch;
    int one_pass;  /* 1: stop at the end of epoch 0 (pad the rest): evaluation sets */
} Packer;

void packer_init(Packer *p, const Examples *ex, uint64_t seed, int T, int shuffle);
void packer_free(Packer *p);
/* Fills nrows rows (each T ints) of tok/pos/seg/tgt from the stream and
 * advances the cursor; returns the number of loss positions.  With one_pass
 * set, every example appears once: rows after the last are all padding. */
int64_t packer_next_rows(Packer *p, int nrows, int *tok, int *pos, int *seg, int *tgt, int pad_id);
/* The same, also filling ex (nrows*T ints) with the example index of every
 * position (-1 for padding). */
int64_t packer_next_rows_ex(Packer *p, int nrows, int *tok, int *pos, int *seg, int *tgt, int *ex, int pad_id);
/* Rows the stream needs to cover `epochs` passes (rounded up). */
int64_t packer_rows_for_epochs(const Examples *ex, uint64_t seed, int T, int shuffle, double epochs);

#endif
