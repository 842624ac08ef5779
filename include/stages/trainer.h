/* trainer -- the protocol every training stage shares, written once:
 * threads, run.h5, the agreement of all ranks to stop, per-step
 * bookkeeping, progress lines, metric flushes and checkpoints.
 *
 * Supervised fine-tuning (train.c) and the critique rounds (critique.c) are
 * its clients: they fill t->s (the student: model, tokenizer, state, logs;
 * student.h) and t->opt, then for every optimizer step call
 *   trainer_should_stop -> (their step) -> trainer_step_done -> trainer_checkpoint
 * and trainer_finish at the end.
 *
 * Stopping: SIGTERM/SIGINT/SIGUSR1, a file named STOP in run.dir (consumed),
 * or train.max_run_time (counted from trainer_init, with the expected time
 * of one more step and one checkpoint kept in reserve) make every rank stop
 * at the same step boundary; the caller checkpoints and exits with
 * EXIT_STOPPED (3), "stopped early, resumable".
 *
 * Collective unless marked "rank 0".
 */
#ifndef HDISTILL_TRAINER_H
#define HDISTILL_TRAINER_H

#include "base/comm.h"
#include "base/config.h"
#include "engine/optim.h"
#include "io/prov.h"
#include "io/store.h"
#include "stages/gradsync.h"
#include "stages/student.h"

/* Collective: rank 0 takes the lock of run.dir (io/lock.h), waiting up to
 * run.lock_wait seconds; every rank exits with EXIT_USAGE and one line naming
 * the owner when another process holds it. */
void trainer_lock_run(const Config *cfg, const Comm *comm);

/* Threads per rank: run.threads, else OMP_NUM_THREADS, else
 * SLURM_CPUS_PER_TASK, else online cores / ranks on this node (>= 1); the
 * kernel thread pool and OpenBLAS are set to it.  Returns the count. */
int trainer_setup_threads(const Config *cfg, const Comm *comm);

typedef struct {
    const Config *cfg;
    const Comm *comm;
    Student s;
    Optim opt;
    GradSync *gs;         /* the step's reduction and optimizer step (trainer_start_sync) */
    int threads;
    Provenance prov;      /* rank 0 */
    StoreFile *run;       /* rank 0: run.h5, open for writing */
    char *run_path, *ckpt_dir, *stop_path, *config_json;
    int64_t log_flushed;  /* entries of s.log already in run.h5 */
    int64_t last_ckpt;    /* step of the newest checkpoint written or read; -1 none */
    double t0, step_avg, ckpt_seconds;
    double tok_window, t_window; /* for the tokens/s of progress lines */
} Trainer;

/* Paths, the configuration's JSON, threads, stop signals, the start time,
 * provenance (rank 0).  Nothing is read or written. */
void trainer_init(Trainer *t, const Config *cfg, const Comm *comm, int argc, char **argv);
/* Frees everything (closes run.h5 without error checks if still open). */
void trainer_free(Trainer *t);

/* Rank 0: opens run.h5 for writing (staged: readers see the last commit);
 * -1 with e set. */
int trainer_open_run(Trainer *t, Err *e);
/* Rank 0: appends the log entries not yet in run.h5 (a staged file:
 * store.h) and commits it when run.commit_seconds have passed since the last
 * commit (DIE on failure: a full disk is fatal). */
void trainer_flush(Trainer *t);
/* Rank 0: commits run.h5 now (force) or when run.commit_seconds have passed. */
void trainer_commit(Trainer *t, int force);
/* Rank 0: flushes, commits and closes run.h5 (DIE on failure). */
void trainer_close_run(Trainer *t);

/* Collective: 1 when the ranks agree to stop before the next step (see
 * above); logs why once. */
int trainer_should_stop(Trainer *t);
/* Collective.  After a step of dt seconds: step + 1, tokens, elapsed, the
 * step-time average, the log entry (rank 0), the step's trace (train.trace). */
void trainer_step_done(Trainer *t, double loss, double lr, double gnorm, int64_t ntok, double dt);
/* The gradient reduction options of train.* (gradsync.h). */
GradSyncOptions trainer_sync_options(const Config *cfg);
/* Collective, once the model and optimizer exist: creates t->gs. */
void trainer_start_sync(Trainer *t);
/* The communication line at the end of training: seconds reducing
 * gradients and the share hidden behind compute (rank 0's; nothing on one
 * rank). */
void trainer_log_comm(const Trainer *t);
/* Collective: writes a checkpoint of the current state unless one of this
 * step exists (rank 0 writes, then prunes to train.ckpt_keep). */
void trainer_checkpoint(Trainer *t);

/* Rank 0: sets an integer attribute of run.h5's root (e.g. "sft_complete"). */
void trainer_mark(Trainer *t, const char *name, int64_t value);

#endif
