/* packer -- examples (data.h) packed into rows of T positions, in the order
 * of an infinite deterministic stream (epoch e = a seeded permutation of the
 * examples).  Each packed example restarts its position ids at 0 and
 * attends only to itself (model.h: seg); the rest of a row is padding
 * without loss.  The stream is a pure function of (seed, cursor), so a
 * checkpoint stores only the cursor, and the rows of a global batch do not
 * depend on how many ranks share them.
 */
#ifndef HDISTILL_PACKER_H
#define HDISTILL_PACKER_H

#include <stdint.h>

#include "engine/data.h"

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
