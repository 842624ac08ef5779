/* comm -- the only module that includes <mpi.h> (store uses MPI-IO through
 * HDF5 only).  Data-parallel collectives for training, rank-0-decides error
 * propagation, and the abort hook behind DIE.
 *
 * Only the main thread calls MPI (MPI_THREAD_FUNNELED).
 */
#ifndef HDISTILL_COMM_H
#define HDISTILL_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, size;
    int local_rank, local_size; /* ranks on this node */
} Comm;

/* MPI_Init_thread + rank/size; installs the MPI_Abort hook for DIE. */
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
 * handle; at most COMM_MAX_REQUESTS are outstanding.  n and the counts must
 * fit an int (buckets do).  MPI makes progress inside MPI calls, so a
 * caller computing meanwhile calls comm_test now and then. */
enum { COMM_MAX_REQUESTS = 4096 };
typedef int CommRequest;
/* in place over x[0, n) */
CommRequest comm_iallreduce_sum_f32(float *x, size_t n);
/* Reduce-scatter: the sum over ranks of send[0, sum(counts)) is cut into
 * consecutive pieces, piece r (counts[r] elements) landing in rank r's recv. */
CommRequest comm_ireduce_scatter_sum_f32(const float *send, float *recv, const int *counts);
void comm_reduce_scatter_sum_f32(const float *send, float *recv, const int *counts);
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

/* Gathers variable-length byte strings on rank 0 in rank order; returns a
 * malloc'd concatenation (and lengths per rank) on rank 0, NULL elsewhere. */
char *comm_gather_bytes(const char *buf, size_t len, size_t **lens_out);

double comm_wtime(void);
/* "Open MPI v4.1.4, ..." (first line of MPI_Get_library_version). */
void comm_library_version(char *buf, size_t n);

#endif
