/* test_mpi.h -- the end of a unit test's ranks (the program run under mpirun by
 * test_mpirun_self): every rank's counts summed, one `N passed, N failed`
 * line printed by rank 0 after the others' output, MPI finalized; the exit
 * status is non-zero on every rank when any check failed anywhere. */
#ifndef HDISTILL_TEST_MPI_H
#define HDISTILL_TEST_MPI_H

#include <stdint.h>
#include <stdio.h>

#include "base/comm.h"
#include "test.h"

static inline int test_ranks_finish(const Comm *c) {
    int64_t counts[2] = {test_passed, test_failed};
    comm_allreduce_sum_i64(counts, 2);
    fflush(stderr);
    comm_barrier();
    if (c->rank == 0) printf("%lld passed, %lld failed\n", (long long)counts[0], (long long)counts[1]);
    fflush(stdout);
    comm_finalize();
    return counts[1] ? 1 : 0;
}

#endif
