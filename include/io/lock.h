/* lock -- one owner for a run directory or a data file.
 *
 * An advisory POSIX record lock (fcntl F_SETLK, which network file systems
 * with lock support honour, unlike flock on some of them) on a small lock
 * file, taken before anything of the run is read or written and held for
 * the life of the process (a data file's only while it is written): the kernel releases it when the process ends,
 * however it ends (exit, MPI_Abort, SIGKILL).  The lock file records the
 * owner -- host, PID, Slurm job id, start time -- so a second process can
 * say who holds it.  A second process waits up to wait_s seconds (a Slurm
 * requeue can start the new step while the old one is still exiting), then
 * fails with one line naming the directory and the owner; it changes
 * nothing.
 *
 * The lock of a run directory is RUN_DIR/lock (the directory is created if
 * needed); the lock of a data file is PATH.lock (PATH's directory is created
 * if needed).  Locks are per process and re-entrant: taking a lock the
 * process holds returns it again (hdistill run takes the run's lock once;
 * its stages take it again).  Only rank 0 locks.
 *
 * When the process ends without having written anything the lock guards
 * (the run directory holds nothing but the lock file; the data file does
 * not exist), the lock file and the directory the lock created (the
 * innermost one, when it made several) are removed again at exit(), so a
 * refused configuration leaves nothing behind.
 */
#ifndef HDISTILL_LOCK_H
#define HDISTILL_LOCK_H

#include "base/util.h"

typedef enum { LOCK_RUN_DIR = 0, LOCK_DATA_FILE = 1 } LockKind;

/* Takes the lock of path (a run directory or a data file).  0, or -1 with e
 * set ("runs/x: in use by PID 123 on host n1 (Slurm job 45) since ...").
 * Not thread-safe; held until the process ends. */
int lock_acquire(const char *path, LockKind kind, double wait_s, Err *e);
/* Releases a lock this process holds (for a data file once it is written:
 * run directories stay locked until the process ends).  No-op otherwise. */
void lock_release(const char *path, LockKind kind);
/* 1 if this process holds the lock of path. */
int lock_held(const char *path, LockKind kind);

#endif
