/* gradsync -- the data-parallel gradient reduction and optimizer step of a
 * training step, and its trace.
 *
 * Every rank computes the gradient of its rows; the step needs their sum.
 *   overlap = 0: one blocking reduction after the backward pass (sharded:
 *     every bucket started after it).
 *   overlap = 1: the flat gradient is cut into buckets of bucket elements
 *     from its end (the backward pass finishes the tail first); as the model
 *     reports a part final (Model.grad_ready, between layers) every bucket
 *     inside it becomes ready and is started with a non-blocking reduction,
 *     in index order on every rank (collectives must match), at most 4 in
 *     flight (each holds an Open MPI buffer of its size), so the reduction
 *     of late layers runs while early layers are still differentiated.
 *     Open MPI moves a non-blocking collective on only inside MPI calls:
 *       progress_thread = 1: a thread of the GradSync's own does it while
 *         buckets are in flight or ready, from gradsync_arm to
 *         gradsync_finish: it starts ready buckets and tests the ones in
 *         flight every 200 us, sleeping in between; the main thread then
 *         only marks buckets ready.  Needs MPI_THREAD_SERIALIZED
 *         (Comm.mpi_serialized; else a warning and the fallback below).
 *         All MPI calls on buckets, from either thread, hold one mutex;
 *         the caller makes no MPI calls of its own from gradsync_arm to
 *         gradsync_finish (the backward pass calls none).
 *       progress_thread = 0: the main thread starts and tests them only
 *         when the backward pass reports a part final (between layers), so
 *         on a slow link most of the data moves in gradsync_finish.
 *     Only the last micro-batch's backward pass is armed: accumulation
 *     reduces once.  A rank that arms nothing (no rows this step) starts
 *     every bucket in gradsync_finish, so the ranks' collectives match.
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
    int progress_thread; /* 1: with overlap, a thread moves the reductions on during backward */
    size_t bucket;  /* elements per bucket (overlap) */
    int shard;      /* 1: ZeRO stage 1 */
    int trace;      /* 1: record intervals for run.h5 /trace */
} GradSyncOptions;

enum { TRACE_COMPUTE = 0, TRACE_COMM = 1, TRACE_WAIT = 2, TRACE_OPTIM = 3 };

typedef struct GradSync GradSync;

/* The slice of the parameters this rank's optimizer state covers:
 * [*lo, *hi) = everything unless o->shard and more than one rank. */
void gradsync_range(const Model *m, const Comm *c, const GradSyncOptions *o, size_t *lo, size_t *hi);
/* t0: the trainer's start (util_now) that trace times count from.  Starts
 * the progress thread (overlap, progress_thread, more than one rank). */
GradSync *gradsync_create(Model *m, const Comm *c, const GradSyncOptions *o, double t0);
/* Ends the progress thread; accepts NULL; never between gradsync_arm and
 * gradsync_finish (a CHECK: reductions would still write into m->grads). */
void gradsync_free(GradSync *g);

/* Marks the start of a step's compute (forward/backward). */
void gradsync_begin(GradSync *g);
/* Before the backward pass of the step's last micro-batch: lets the model
 * report finished parts to start their reductions (overlap); the progress
 * thread may call MPI from here to gradsync_finish. */
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
/* Buckets of this step the backward pass has finished whose reduction was
 * not yet seen complete (queued or in flight); 0 after gradsync_finish.
 * Makes no MPI call (tests watch the progress thread with it). */
int gradsync_pending(GradSync *g);
/* Seconds spent reducing, and of them hidden behind compute, so far on this rank. */
void gradsync_totals(const GradSync *g, double *comm, double *hidden);

#endif
