/* comm -- MPI wrappers; see include/base/comm.h.  Every MPI call is checked:
 * a failing call DIEs with the MPI error string. */
#include "base/comm.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define MPI_CALL(call)                                                          \
    do {                                                                        \
        int rc_ = (call);                                                       \
        if (rc_ != MPI_SUCCESS) {                                               \
            char s_[MPI_MAX_ERROR_STRING];                                      \
            int n_ = 0;                                                         \
            MPI_Error_string(rc_, s_, &n_);                                     \
            DIE("%s failed: %s (hint: check the MPI launcher and network)", #call, s_); \
        }                                                                       \
    } while (0)

static int g_inited = 0;

static void abort_hook(int code) {
    if (g_inited) MPI_Abort(MPI_COMM_WORLD, code);
}

/* Open MPI's non-blocking allreduce algorithm (MPI_T control variable coll_libnbc_iallreduce_algorithm, 1 =
 * the ring) on every rank or on none: each rank writes it unless its environment sets it, the ranks agree,
 * and if one could not, the others write their old value back (algorithms must match).  1 when set. */
static int nbc_ring(void) {
    const char *name = "coll_libnbc_iallreduce_algorithm";
    int prov, idx, n = 0, old = 0, one = 1, back = 0, ok = 0, dl = 0, bind, scope, verb, nl = 0;
    MPI_Datatype dt = MPI_DATATYPE_NULL;
    MPI_T_enum en;
    MPI_T_cvar_handle h = MPI_T_CVAR_HANDLE_NULL;
    int started = MPI_T_init_thread(MPI_THREAD_SERIALIZED, &prov) == MPI_SUCCESS;
    if (started && !getenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm") &&
        MPI_T_cvar_get_index(name, &idx) == MPI_SUCCESS &&
        MPI_T_cvar_get_info(idx, NULL, &nl, &verb, &dt, &en, NULL, &dl, &bind, &scope) == MPI_SUCCESS &&
        dt == MPI_INT && MPI_T_cvar_handle_alloc(idx, NULL, &h, &n) == MPI_SUCCESS && n == 1 &&
        MPI_T_cvar_read(h, &old) == MPI_SUCCESS && MPI_T_cvar_write(h, &one) == MPI_SUCCESS)
        ok = MPI_T_cvar_read(h, &back) == MPI_SUCCESS && back == 1;
    int all = ok;
    MPI_CALL(MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (ok && !all) MPI_T_cvar_write(h, &old);
    if (h != MPI_T_CVAR_HANDLE_NULL) MPI_T_cvar_handle_free(&h);
    if (started) MPI_T_finalize();
    return all;
}

void comm_init(Comm *c, int *argc, char ***argv) {
    int provided = 0;
    MPI_CALL(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided));
    g_inited = 1;
    c->mpi_serialized = provided >= MPI_THREAD_SERIALIZED;
    MPI_CALL(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_CALL(MPI_Comm_rank(MPI_COMM_WORLD, &c->rank));
    MPI_CALL(MPI_Comm_size(MPI_COMM_WORLD, &c->size));
    MPI_Comm node;
    MPI_CALL(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
    MPI_CALL(MPI_Comm_rank(node, &c->local_rank));
    MPI_CALL(MPI_Comm_size(node, &c->local_size));
    MPI_CALL(MPI_Comm_free(&node));
    util_set_rank(c->rank);
    util_set_abort_hook(abort_hook);
    c->nbc_ring = c->size == 2 && nbc_ring();
}

void comm_finalize(void) {
    if (!g_inited) return;
    g_inited = 0;
    MPI_Finalize();
}

void comm_exit(int code) {
    fflush(stdout);
    fflush(stderr);
    util_run_exit_hooks();
    comm_finalize();
    exit(code);
}

void comm_barrier(void) { MPI_CALL(MPI_Barrier(MPI_COMM_WORLD)); }

/* MPI counts are int: large buffers go in chunks. */
#define CHUNK ((size_t)1 << 30)

/* Open MPI allocates a temporary buffer of up to the whole message for an allreduce: pieces of 16M
 * values cap it at 64 MB (bench/memory.sh measured 1 GiB per rank extra with one call for qwen2.5-0.5b) */
#define REDUCE_PIECE ((size_t)1 << 24)

void comm_allreduce_sum_f32(float *x, size_t n) {
    for (size_t o = 0; o < n; o += REDUCE_PIECE) {
        size_t k = n - o < REDUCE_PIECE ? n - o : REDUCE_PIECE;
        MPI_CALL(MPI_Allreduce(MPI_IN_PLACE, x + o, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
}

void comm_allreduce_sum_f64(double *x, size_t n) {
    for (size_t o = 0; o < n; o += CHUNK) {
        size_t k = n - o < CHUNK ? n - o : CHUNK;
        MPI_CALL(MPI_Allreduce(MPI_IN_PLACE, x + o, (int)k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    }
}

void comm_allreduce_sum_i64(int64_t *x, size_t n) {
    MPI_CALL(MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD));
}

/* ---- non-blocking ---- */

static MPI_Request g_req[COMM_MAX_REQUESTS];
static unsigned char g_req_used[COMM_MAX_REQUESTS];

static CommRequest req_new(void) {
    for (int i = 0; i < COMM_MAX_REQUESTS; i++)
        if (!g_req_used[i]) {
            g_req_used[i] = 1;
            g_req[i] = MPI_REQUEST_NULL;
            return i;
        }
    DIE("more than %d outstanding MPI requests", COMM_MAX_REQUESTS);
}

static int count_of(size_t n) {
    CHECK(n <= (size_t)2147483647, "MPI count %zu does not fit an int", n);
    return (int)n;
}

CommRequest comm_iallreduce_sum_f32(float *x, size_t n) {
    CommRequest r = req_new();
    MPI_CALL(MPI_Iallreduce(MPI_IN_PLACE, x, count_of(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &g_req[r]));
    return r;
}

CommRequest comm_ireduce_scatter_sum_f32(const float *send, float *recv, const int *counts) {
    CommRequest r = req_new();
    MPI_CALL(MPI_Ireduce_scatter(send, recv, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &g_req[r]));
    return r;
}

int comm_test(CommRequest r) {
    CHECK(r >= 0 && r < COMM_MAX_REQUESTS && g_req_used[r], "bad MPI request %d", r);
    int done = 0;
    MPI_CALL(MPI_Test(&g_req[r], &done, MPI_STATUS_IGNORE));
    if (done) g_req_used[r] = 0;
    return done;
}

void comm_wait(CommRequest r) {
    CHECK(r >= 0 && r < COMM_MAX_REQUESTS && g_req_used[r], "bad MPI request %d", r);
    MPI_CALL(MPI_Wait(&g_req[r], MPI_STATUS_IGNORE));
    g_req_used[r] = 0;
}

void comm_allgatherv_f32(float *x, const int *counts, const int *displs) {
    MPI_CALL(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, counts, displs, MPI_FLOAT, MPI_COMM_WORLD));
}

int comm_any(int flag) {
    int v = flag ? 1 : 0;
    MPI_CALL(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    return v;
}

int64_t comm_max_i64(int64_t v) {
    MPI_CALL(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD));
    return v;
}

void comm_bcast(void *buf, size_t bytes) {
    char *p = buf;
    for (size_t o = 0; o < bytes; o += CHUNK) {
        size_t k = bytes - o < CHUNK ? bytes - o : CHUNK;
        MPI_CALL(MPI_Bcast(p + o, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD));
    }
}

void comm_bcast_i64(int64_t *v, size_t n) {
    MPI_CALL(MPI_Bcast(v, (int)n, MPI_INT64_T, 0, MPI_COMM_WORLD));
}

void comm_bcast_string(char **s) {
    int rank;
    MPI_CALL(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    int64_t len = (rank == 0) ? (*s ? (int64_t)strlen(*s) : -1) : 0;
    comm_bcast_i64(&len, 1);
    if (rank != 0) {
        free(*s);
        *s = NULL;
        if (len >= 0) {
            *s = xmalloc((size_t)len + 1);
            (*s)[len] = 0;
        }
    }
    if (len > 0) comm_bcast(*s, (size_t)len);
}

void comm_bcast_strings(char ***s, int64_t *n) {
    int rank;
    MPI_CALL(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    comm_bcast_i64(n, 1);
    int64_t bytes = 0;
    char *buf = NULL;
    if (rank == 0) {
        for (int64_t i = 0; i < *n; i++) bytes += (int64_t)strlen((*s)[i]) + 1;
        buf = xmalloc((size_t)(bytes ? bytes : 1));
        char *p = buf;
        for (int64_t i = 0; i < *n; i++) {
            size_t l = strlen((*s)[i]) + 1;
            memcpy(p, (*s)[i], l);
            p += l;
        }
    }
    comm_bcast_i64(&bytes, 1);
    if (rank != 0) buf = xmalloc((size_t)(bytes ? bytes : 1));
    comm_bcast(buf, (size_t)bytes);
    if (rank != 0) {
        *s = xcalloc((size_t)(*n ? *n : 1), sizeof(char *));
        const char *p = buf;
        for (int64_t i = 0; i < *n; i++) {
            (*s)[i] = xstrdup(p);
            p += strlen(p) + 1;
        }
    }
    free(buf);
}

void comm_check(int rc, const char *msg, int code) {
    int64_t v = rc;
    comm_bcast_i64(&v, 1);
    if (v == 0) return;
    int rank;
    MPI_CALL(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    if (rank == 0) {
        fflush(stdout);
        fprintf(stderr, "error: %s\n", msg && *msg ? msg : "failed");
    }
    comm_exit(code);
}

void comm_check_all(int rc, const char *msg, int code) {
    int rank, size;
    MPI_CALL(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CALL(MPI_Comm_size(MPI_COMM_WORLD, &size));
    int first = rc ? rank : size;
    MPI_CALL(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (first == size) return;
    char buf[1024] = {0};
    if (rank == first && msg) snprintf(buf, sizeof buf, "%s", msg);
    if (first != 0) {
        if (rank == first) MPI_CALL(MPI_Send(buf, sizeof buf, MPI_CHAR, 0, 77, MPI_COMM_WORLD));
        if (rank == 0)
            MPI_CALL(MPI_Recv(buf, sizeof buf, MPI_CHAR, first, 77, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    }
    if (rank == 0) {
        fflush(stdout);
        fprintf(stderr, "error: %s\n", buf[0] ? buf : "failed");
    }
    comm_exit(code);
}

int comm_agree(int rc, char *msg, size_t n) {
    int rank, size;
    MPI_CALL(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CALL(MPI_Comm_size(MPI_COMM_WORLD, &size));
    int first = rc ? rank : size;
    MPI_CALL(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (first == size) return 0;
    CHECK(n > 0 && n < (size_t)1 << 30, "message buffer of %zu bytes", n);
    if (rank == first) msg[n - 1] = 0;
    MPI_CALL(MPI_Bcast(msg, (int)n, MPI_CHAR, first, MPI_COMM_WORLD));
    return -1;
}

char *comm_gather_bytes(const char *buf, size_t len, size_t **lens_out) {
    int rank, size;
    MPI_CALL(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CALL(MPI_Comm_size(MPI_COMM_WORLD, &size));
    CHECK(len < (size_t)1 << 31, "gather of %zu bytes exceeds MPI's int count", len);
    int mine = (int)len;
    int *counts = rank == 0 ? xmalloc(sizeof(int) * size) : NULL;
    MPI_CALL(MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD));
    int *displs = NULL;
    char *out = NULL;
    if (rank == 0) {
        displs = xmalloc(sizeof(int) * size);
        long tot = 0;
        for (int r = 0; r < size; r++) {
            displs[r] = (int)tot;
            tot += counts[r];
        }
        CHECK(tot < (1L << 31), "gathered %ld bytes exceed MPI's int count", tot);
        out = xmalloc((size_t)tot + 1);
        out[tot] = 0;
        if (lens_out) {
            *lens_out = xmalloc(sizeof(size_t) * size);
            for (int r = 0; r < size; r++) (*lens_out)[r] = (size_t)counts[r];
        }
    }
    MPI_CALL(MPI_Gatherv(buf, mine, MPI_BYTE, out, counts, displs, MPI_BYTE, 0, MPI_COMM_WORLD));
    free(counts);
    free(displs);
    return out;
}

double comm_wtime(void) { return MPI_Wtime(); }

void comm_library_version(char *buf, size_t n) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(v, &len) != MPI_SUCCESS) snprintf(v, sizeof v, "unknown MPI");
    char *nl = strchr(v, '\n');
    if (nl) *nl = 0;
    char *comma = strchr(v, ',');
    if (comma) *comma = 0;
    snprintf(buf, n, "%s", v);
}
