/* comm -- the only module that includes <mpi.h> (store uses MPI-IO through
 * HDF5 only).  Data-parallel collectives for training, rank-0-decides error
 * propagation, and the abort hook behind DIE.
 *
 * Threads: MPI is initialised asking for MPI_THREAD_SERIALIZED (any thread
 * may call MPI, never two at once; Comm.mpi_serialized says whether MPI
 * gave it).  The main thread makes every call but one kind: gradsync's
 * progress thread tests and starts its non-blocking reductions while the
 * main thread runs the backward pass, which calls no MPI; the two share a
 * mutex around those calls (stages/gradsync.c).  Nothing here locks.
 */
#ifndef HDISTILL_COMM_H
#define HDISTILL_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, size;
    int local_rank, local_size; /* ranks on this node */
    int mpi_serialized;         /* 1: MPI provides MPI_THREAD_SERIALIZED or more */
    int nbc_ring;               /* 1: non-blocking allreduces take Open MPI's ring (2 ranks, below) */
} Comm;

/* MPI_Init_thread (asking for MPI_THREAD_SERIALIZED) + rank/size; installs
 * the MPI_Abort hook for DIE.  With exactly 2 ranks it also selects the ring
 * for non-blocking allreduces (Open MPI's control variable
 * coll_libnbc_iallreduce_algorithm = 1, through MPI_T, on every rank or on
 * none; an OMPI_MCA_coll_libnbc_iallreduce_algorithm in the environment
 * wins): Open MPI 4.1's libnbc otherwise takes a binomial tree for every
 * in-place reduction, which on 2 ranks sends the whole buffer to rank 0 and
 * the sum back, one direction at a time (twice the time of the blocking
 * allreduce); the ring sends half each way at once.  Adding two values is
 * the same sum in either order, so the result does not change.  With more
 * ranks Open MPI's choice stays: the ring would add in another order than
 * the blocking allreduce and the sharded path's reduce-scatter (rounding
 * differences that AdamW turns into visible ones). */
void comm_init(Comm *c, int *argc, char ***argv);
void comm_finalize(void);
/* Ends all ranks with this exit code after a collective decision (no
 * MPI_Abort banner): finalises MPI and calls exit(code). */
void comm_exit(int code) __attribute__((noreturn));

void comm_barrier(void);
/* In-place sums over all ranks. */
void comm_allreduce_sum_f32(float *x, size_t n);
void comm_allreduce_sum_f64(double *x, size_t n);
void comm_allreduce_sum_i64(int64_t *x, size_t n);
/* Non-blocking sums (started now, completed by comm_test/comm_wait; the
 * buffer must stay untouched until then).  A request is a small integer
 * handle; at most COMM_MAX_REQUESTS are outstanding; the handle table is not
 * locked (callers on two threads serialise these calls).  n and the counts
 * must fit an int (buckets do).  Open MPI moves a non-blocking collective
 * on only inside MPI calls, so a caller computing meanwhile calls comm_test
 * now and then (gradsync: from a thread of its own). */
enum { COMM_MAX_REQUESTS = 4096 };
typedef int CommRequest;
/* in place over x[0, n) */
CommRequest comm_iallreduce_sum_f32(float *x, size_t n);
/* Reduce-scatter: the sum over ranks of send[0, sum(counts)) is cut into
 * consecutive pieces, piece r (counts[r] elements) landing in rank r's recv. */
CommRequest comm_ireduce_scatter_sum_f32(const float *send, float *recv, const int *counts);
/* 1 when the request has completed (and is released); 0 while pending. */
int comm_test(CommRequest r);
void comm_wait(CommRequest r);
/* In place: rank r's part x[displs[r], displs[r] + counts[r]) is sent to every rank. */
void comm_allgatherv_f32(float *x, const int *counts, const int *displs);

/* Logical OR / max of an int over ranks. */
int comm_any(int flag);
int64_t comm_max_i64(int64_t v);
/* Broadcasts from rank 0. */
void comm_bcast(void *buf, size_t bytes);
void comm_bcast_i64(int64_t *v, size_t n);
/* Broadcasts a heap string from rank 0: on others *s is replaced by a fresh
 * copy (caller frees). NULL is broadcast as NULL. */
void comm_bcast_string(char **s);

/* Broadcasts rank 0's array of n strings; others get fresh copies (free
 * each and the array). */
void comm_bcast_strings(char ***s, int64_t *n);

/* Collective status check: rank 0's rc and message decide.  If rc != 0 on
 * rank 0, rank 0 prints "error: MSG" and every rank exits with code.  Use
 * after rank-0-only work (reading input files, validating). */
void comm_check(int rc, const char *msg, int code);
/* Like comm_check but any rank may fail: the lowest failing rank's message
 * is printed by rank 0 and all ranks exit with code. */
void comm_check_all(int rc, const char *msg, int code);

/* Agreement on a status without exiting (collective): 0 when rc == 0 on
 * every rank; else -1 on every rank, with msg (n bytes, NUL-terminated; n the
 * same on every rank) replaced everywhere by the lowest failing rank's. */
int comm_agree(int rc, char *msg, size_t n);

/* Gathers variable-length byte strings on rank 0 in rank order; returns a
 * malloc'd concatenation (and lengths per rank) on rank 0, NULL elsewhere. */
char *comm_gather_bytes(const char *buf, size_t len, size_t **lens_out);

double comm_wtime(void);
/* "Open MPI v4.1.4, ..." (first line of MPI_Get_library_version). */
void comm_library_version(char *buf, size_t n);

#endif
