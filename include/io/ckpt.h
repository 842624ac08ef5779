/* ckpt -- checkpoints (HDF5, through store): ckpt/step_NNNNNNNN.h5 holds the
 * state after NNNNNNNN optimizer steps -- parameters, AdamW moments, RNG and
 * data cursor, the model configuration, tokenizer, configuration, provenance
 * and the loss curves so far.  The layout of every dataset and attribute is
 * in docs/file-formats.md ("Checkpoints"), the one place it is written.
 * A checkpoint is written to "<name>.tmp", fsynced and renamed, so a file
 * with the final name is always complete; resume takes the newest one that
 * reads back whole and skips (with a warning) any that do not.
 * With sharded optimizer state (ZeRO-1) all ranks write one checkpoint
 * together (ckpt_write_sharded, MPI-IO through parallel HDF5): the same
 * file, read the same way; ckpt_read_moments_slice reads one rank's slice
 * of the moments back, for any number of ranks.
 */
#ifndef HDISTILL_CKPT_H
#define HDISTILL_CKPT_H

#include <stdint.h>

#include "base/comm.h"
#include "engine/data.h"
#include "engine/packer.h"
#include "engine/model.h"
#include "io/prov.h"
#include "io/metrics.h"
#include "io/store.h"
#include "engine/tokenizer.h"

#define CKPT_FORMAT_VERSION 1

typedef struct {
    int64_t step;      /* optimizer steps completed */
    uint64_t rng[4];   /* trainer RNG state */
    DataCursor cursor; /* next example of the training stream */
    int64_t tokens;    /* loss tokens consumed */
    double elapsed;    /* training seconds so far */
    int64_t world_size;
    int64_t threads;   /* kernel/OpenBLAS threads per rank (OpenBLAS rounds by thread count) */
} TrainState;

/* The tokenizer under group: offsets (int64), blob (uint8), special (uint8),
 * merges (int32 [n,2]), attrs eot_id, sep_id. */
int ckpt_write_tokenizer(StoreFile *f, const char *group, const TokenizerData *t, Err *e);
int ckpt_read_tokenizer(StoreFile *f, const char *group, TokenizerData *t, Err *e);

/* Writes dir/step_<step>.h5 atomically; *path_out (may be NULL) gets the
 * final path (malloc'd). */
int ckpt_write(const char *dir, const Model *m, const float *mom_m, const float *mom_v,
               const TrainState *st, const TokenizerData *tok, const char *config_json,
               const Provenance *prov, const MetricLog *log, const ValLog *val, char **path_out,
               Err *e);

/* COLLECTIVE over all ranks: ckpt_write of a state whose AdamW moments are
 * sharded -- rank r holds mom_m_slice and mom_v_slice, the moments of the
 * flat parameters [bounds[r], bounds[r+1]) (bounds: comm->size + 1 entries
 * from 0 to n_params, e.g. model_shard_bounds; the slices may be NULL where
 * empty), and complete parameters.  The file is exactly ckpt_write's (same
 * datasets, shapes, attributes; its tensors are allocated when created and
 * stored contiguous).  Rank 0 alone creates "<name>.tmp" with everything but
 * the tensor values, from its arguments (st, tok, config_json, prov, log and
 * val are read on rank 0 only); then every rank writes its slice of every
 * tensor of /params, /optim/m and /optim/v with MPI-IO (independent
 * writes: a slice of a contiguous tensor is one block of the file);
 * the file is synced by every rank, and rank 0 renames it (fsyncing the
 * directory).  dir must be on a file system every rank sees.  Every rank
 * returns the same status: 0 (with *path_out, may be NULL, the final path,
 * malloc'd, on every rank) or -1 with the same message in e, naming the
 * file; then no file with the final name exists (the .tmp is removed; a
 * rank killed mid-write leaves only a .tmp, which is never resumed from and
 * which ckpt_prune deletes). */
int ckpt_write_sharded(const Comm *comm, const char *dir, const Model *m, const size_t *bounds,
                       const float *mom_m_slice, const float *mom_v_slice, const TrainState *st,
                       const TokenizerData *tok, const char *config_json, const Provenance *prov,
                       const MetricLog *log, const ValLog *val, char **path_out, Err *e);
/* Reads the moments of the flat parameters [lo, hi) of any checkpoint
 * (sharded or not, written by any number of ranks) into mom_m and mom_v
 * (hi - lo floats each; either may be NULL): only those elements are read.
 * For one rank, independently of the others: this is how a resume re-cuts
 * the slices for another number of ranks.  -1 with e set (a checkpoint
 * without optimizer state, or for another model). */
int ckpt_read_moments_slice(const char *path, const Model *m, size_t lo, size_t hi, float *mom_m, float *mom_v,
                            Err *e);

/* Reads the model configuration, tokenizer and stored configuration JSON
 * (each output may be NULL). */
int ckpt_read_meta(const char *path, ModelConfig *cfg, TokenizerData *tok, char **config_json,
                   Err *e);
/* Reads parameters, moments (may be NULL), state and log (may be NULL) into
 * a model already initialised with the checkpoint's configuration. */
int ckpt_read(const char *path, Model *m, float *mom_m, float *mom_v, TrainState *st, MetricLog *log,
              ValLog *val, Err *e);

/* What a checkpoint says about itself (its metadata). */
typedef struct {
    char *path;
    ModelConfig cfg;
    TokenizerData td;
    char *config_json;
} CkptMeta;

/* The one policy for finding a run's state: the newest checkpoint of dir
 * whose metadata reads back; unreadable ones are skipped with a warning and,
 * when quarantine is set (the process owns the run and is not a dry run),
 * renamed "<path>.bad".  before >= 0: only checkpoints of earlier steps
 * (to fall back from one whose state does not read back); -1: any.
 * Returns 1 with meta filled (free with ckpt_meta_free), 0 if there is none. */
int ckpt_find_newest(const char *dir, int quarantine, int64_t before, CkptMeta *meta);
/* The step of a checkpoint path (step_NNNNNNNN.h5); -1 if not one. */
int64_t ckpt_step_of(const char *path);
void ckpt_meta_free(CkptMeta *m);

/* Complete checkpoints in dir (step_*.h5, not .tmp), newest first; *n set.
 * Free with ckpt_list_free. */
char **ckpt_list(const char *dir, int *n);
void ckpt_list_free(char **list, int n);
/* Deletes all but the newest keep checkpoints (never `protect`, the one
 * just written) and any leftover .tmp files. */
void ckpt_prune(const char *dir, int keep, const char *protect);
/* Renames an unreadable checkpoint to "<path>.bad" so it is neither resumed
 * from nor counted as one of the kept ones. */
void ckpt_quarantine(const char *path);

#endif
