/* gradsync -- the data-parallel gradient reduction and optimizer step of a
 * training step, and its trace.
 *
 * Every rank computes the gradient of its rows; the step needs their sum.
 *   overlap = 0: one blocking reduction after the backward pass (sharded:
 *     every bucket started after it).
 *   overlap = 1: the flat gradient is cut into buckets of bucket elements
 *     from its end (the backward pass finishes the tail first); as the model
 *     reports a part final (Model.grad_ready, between layers) every bucket
 *     inside it is started with a non-blocking reduction, and pending ones
 *     are tested then (MPI progresses inside MPI calls), so the reduction of
 *     late layers runs while early layers are still differentiated.  Only
 *     the last micro-batch's backward pass is armed: accumulation reduces
 *     once.
 *   shard = 1 (ZeRO stage 1): the optimizer holds the moments of this rank's
 *     slice of the parameters only (model_shard_bounds); gradients are
 *     reduce-scattered (each rank receives the sum of its slice), each rank
 *     updates its slice, and the parameters are all-gathered.  The gradient
 *     norm for clipping is the square root of the all-reduced per-slice sums
 *     of squares.  Same update as unsharded (its rounding may differ in the
 *     last bits: the norm is summed in a different order).
 * With two ranks every element's sum is a + b in either path, so overlap 0
 * and 1 give bitwise the same model; with more ranks MPI's algorithms may
 * add in different orders (differences at rounding level).
 *
 * Trace (trace = 1): per step and rank, intervals in seconds since the
 * trainer started on that rank (its own clock): compute (forward and
 * backward of the step), comm (one bucket, or the whole reduction, from its
 * start to when its completion was seen), wait (blocked on reductions after
 * the backward pass), optim (optimizer step, with the parameter gather);
 * gathered to rank 0 and appended to run.h5 /trace (docs/file-formats.md).
 * Whether traced or not, the time spent reducing and the part of it hidden
 * behind compute are summed for the end-of-training line.
 *
 * Collective: every rank calls the same functions in the same order -- also
 * a rank with no rows in a step (no backward pass, never armed): with
 * overlap or shard on, its gradsync_finish joins the other ranks' bucketed
 * reductions.
 */
#ifndef HDISTILL_GRADSYNC_H
#define HDISTILL_GRADSYNC_H

#include <stddef.h>
#include <stdint.h>

#include "base/comm.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "io/store.h"

typedef struct {
    int overlap;    /* 1: bucketed non-blocking reduction during backward */
    size_t bucket;  /* elements per bucket (overlap) */
    int shard;      /* 1: ZeRO stage 1 */
    int trace;      /* 1: record intervals for run.h5 /trace */
} GradSyncOptions;

enum { TRACE_COMPUTE = 0, TRACE_COMM = 1, TRACE_WAIT = 2, TRACE_OPTIM = 3 };

typedef struct GradSync GradSync;

/* The slice of the parameters this rank's optimizer state covers:
 * [*lo, *hi) = everything unless o->shard and more than one rank. */
void gradsync_range(const Model *m, const Comm *c, const GradSyncOptions *o, size_t *lo, size_t *hi);
/* t0: the trainer's start (util_now) that trace times count from. */
GradSync *gradsync_create(Model *m, const Comm *c, const GradSyncOptions *o, double t0);
void gradsync_free(GradSync *g); /* accepts NULL */

/* Marks the start of a step's compute (forward/backward). */
void gradsync_begin(GradSync *g);
/* Before the backward pass of the step's last micro-batch: lets the model
 * report finished parts to start their reductions (overlap). */
void gradsync_arm(GradSync *g);
/* After the last backward pass: completes the reduction.  Afterwards
 * m->grads holds the sum over ranks on [opt->lo, opt->hi) (everything when
 * unsharded). */
void gradsync_finish(GradSync *g);
/* The optimizer step on the summed gradient (clipping by its global norm);
 * parameters are complete and equal on every rank afterwards.  Returns the
 * norm before clipping. */
double gradsync_step(GradSync *g, Optim *opt, double lr, int64_t t);

/* With trace on: gathers this step's intervals to rank 0, which appends them
 * to run (NULL on other ranks) under /trace; -1 with e set on a write error
 * (rank 0). */
int gradsync_trace_flush(GradSync *g, StoreFile *run, int64_t step, Err *e);
/* Seconds spent reducing, and of them hidden behind compute, so far on this rank. */
void gradsync_totals(const GradSync *g, double *comm, double *hidden);

#endif
