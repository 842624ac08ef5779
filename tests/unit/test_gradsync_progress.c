/* test_gradsync_progress -- stages/gradsync.h under mpirun -np 2 (the program re-runs
 * itself under mpirun when started alone), on a stand-in model (a flat
 * gradient cut into "layers" of 2-D tensors) whose stand-in backward pass
 * adds each rank's values layer by layer from the end and reports each layer
 * final, as the model families do.  Values are quarters and small integers,
 * so every sum is exact and the reduced gradient must equal it bitwise:
 *  - overlap with the progress thread: many tiny buckets (more than in
 *    flight at once), buckets of one value, a bucket bigger than the
 *    gradient, 3 steps each (re-armed); a plain blocking run; the sharded
 *    path (this rank's slice) with and without overlap;
 *  - accumulation: a first micro-batch unarmed, the second armed;
 *  - a rank that runs no backward pass (arms nothing) while the other does:
 *    the same collectives on both, the right sums (rank 1's gradient as it
 *    stood);
 *  - the thread moves the reductions on by itself: after the backward pass
 *    and with no MPI call from the main thread, every bucket completes and
 *    the gradient holds the sums before gradsync_finish; without the thread
 *    (train.progress_thread=0) the same wait leaves buckets pending;
 *  - create/free with nothing in flight (the thread starts and ends idle),
 *    free after steps, free(NULL);
 *  - comm_init selected Open MPI's ring for non-blocking allreduces (2 ranks;
 *    the sums above then run through it).
 * Each rank arms an alarm: a collective mismatch ends the test instead of
 * hanging it. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/comm.h"
#include "base/util.h"
#include "stages/gradsync.h"
#include "test.h"
#include "test_mpi.h"

enum { LAYERS = 7 };

typedef struct {
    Model m;
    size_t *lo; /* layer l = tensors [2l, 2l + 1] = grads [lo[l], lo[l + 1]) */
} Fake;

/* a model of LAYERS layers, each two 2-D tensors (rows x cols), n_params in all */
static void fake_init(Fake *f, size_t rows) {
    memset(f, 0, sizeof *f);
    f->m.n_tensors = 2 * LAYERS;
    f->m.tensors = xcalloc((size_t)f->m.n_tensors, sizeof(ModelTensor));
    f->lo = xmalloc(sizeof(size_t) * (LAYERS + 1));
    size_t off = 0;
    for (int k = 0; k < f->m.n_tensors; k++) {
        ModelTensor *t = &f->m.tensors[k];
        snprintf(t->name, sizeof t->name, "t%d", k);
        t->ndim = 2, t->shape[0] = (long)(rows + (size_t)k), t->shape[1] = 3 + k % 4;
        t->offset = off, t->numel = (size_t)t->shape[0] * (size_t)t->shape[1];
        if (k % 2 == 0) f->lo[k / 2] = off;
        off += t->numel;
    }
    f->lo[LAYERS] = off;
    f->m.n_params = off;
    f->m.grads = xmalloc_aligned(sizeof(float) * off);
}

static void fake_free(Fake *f) {
    free(f->m.tensors), free(f->m.grads), free(f->lo);
}

/* rank r's gradient at index i in micro-batch mb (quarters: every sum of a few is exact) */
static float val(int r, size_t i, int mb) {
    return (float)((int)(i % 997) - 498) * 0.25f + (float)(r * 16 + mb * 4) + (float)(i % 3);
}

/* the stand-in backward pass: adds micro-batch mb's values layer by layer from the end, reporting each
 * layer final (m->grad_ready, set by gradsync_arm), computing pause_us between layers; 0 at the end */
static void backward(Fake *f, int rank, int mb, int pause_us) {
    Model *m = &f->m;
    for (int l = LAYERS - 1; l >= 0; l--) {
        for (size_t i = f->lo[l]; i < f->lo[l + 1]; i++) m->grads[i] += val(rank, i, mb);
        if (pause_us) usleep((useconds_t)pause_us);
        if (m->grad_ready) m->grad_ready(m->grad_ctx, f->lo[l]);
    }
    if (m->grad_ready) m->grad_ready(m->grad_ctx, 0);
}

/* how many of grads [lo, hi) differ from the sum over ranks of micro-batches [0, nmb) */
static size_t wrong(const Fake *f, const Comm *c, size_t lo, size_t hi, int nmb) {
    size_t bad = 0;
    for (size_t i = lo; i < hi; i++) {
        float want = 0;
        for (int r = 0; r < c->size; r++) {
            float x = 0;
            for (int mb = 0; mb < nmb; mb++) x += val(r, i, mb);
            want += x;
        }
        bad += f->m.grads[i] != want;
    }
    return bad;
}

static GradSyncOptions opts(int overlap, int thread, size_t bucket, int shard) {
    return (GradSyncOptions){.overlap = overlap, .progress_thread = thread, .bucket = bucket, .shard = shard};
}

/* steps of one micro-batch each: the reduced gradient (this rank's slice when sharded) is the exact sum */
static void steps(const Comm *c, size_t rows, GradSyncOptions o, int nsteps, const char *what) {
    Fake f;
    fake_init(&f, rows);
    GradSync *g = gradsync_create(&f.m, c, &o, util_now());
    size_t lo, hi;
    gradsync_range(&f.m, c, &o, &lo, &hi);
    for (int s = 0; s < nsteps; s++) {
        memset(f.m.grads, 0, sizeof(float) * f.m.n_params);
        gradsync_begin(g);
        gradsync_arm(g);
        backward(&f, c->rank, 0, s == 0 ? 300 : 0);
        gradsync_finish(g);
        size_t bad = wrong(&f, c, lo, hi, 1);
        EXPECT(bad == 0 && gradsync_pending(g) == 0, "%s, step %d: %zu of [%zu, %zu) wrong, %d pending", what, s,
               bad, lo, hi, gradsync_pending(g));
        EXPECT(f.m.grad_ready == NULL && f.m.grad_ctx == NULL, "%s: the model's callback is cleared", what);
    }
    gradsync_free(g);
    fake_free(&f);
}

static void accumulation(const Comm *c) {
    Fake f;
    fake_init(&f, 40);
    GradSyncOptions o = opts(1, 1, 37, 0);
    GradSync *g = gradsync_create(&f.m, c, &o, util_now());
    for (int s = 0; s < 2; s++) {
        memset(f.m.grads, 0, sizeof(float) * f.m.n_params);
        gradsync_begin(g);
        backward(&f, c->rank, 0, 0); /* not armed: nothing reduced */
        EXPECT(gradsync_pending(g) == 0, "an unarmed backward pass starts nothing");
        gradsync_arm(g);
        backward(&f, c->rank, 1, 100);
        gradsync_finish(g);
        size_t bad = wrong(&f, c, 0, f.m.n_params, 2);
        EXPECT(bad == 0, "accumulation, step %d: %zu wrong", s, bad);
    }
    gradsync_free(g);
    fake_free(&f);
}

/* rank 1 has no rows: it never arms, yet takes part in the same bucketed reductions */
static void idle_rank(const Comm *c, int thread, int shard) {
    Fake f;
    fake_init(&f, 30);
    GradSyncOptions o = opts(1, thread, 53, shard);
    GradSync *g = gradsync_create(&f.m, c, &o, util_now());
    size_t lo, hi;
    gradsync_range(&f.m, c, &o, &lo, &hi);
    for (size_t i = 0; i < f.m.n_params; i++) f.m.grads[i] = c->rank == 1 ? val(1, i, 0) : 0;
    gradsync_begin(g);
    if (c->rank == 0) {
        gradsync_arm(g);
        backward(&f, 0, 0, 0);
    }
    gradsync_finish(g);
    size_t bad = wrong(&f, c, lo, hi, 1);
    EXPECT(bad == 0, "a rank without a backward pass (thread %d, shard %d): %zu wrong", thread, shard, bad);
    gradsync_free(g);
    fake_free(&f);
}

/* after the backward pass, no MPI call from this thread: with the progress thread every bucket completes
 * (and the gradient holds the sums before gradsync_finish); without it some stay pending */
static void moves_alone(const Comm *c, int thread) {
    Fake f;
    fake_init(&f, 60);
    GradSyncOptions o = opts(1, thread, 29, 0); /* more buckets than in flight at once */
    GradSync *g = gradsync_create(&f.m, c, &o, util_now());
    memset(f.m.grads, 0, sizeof(float) * f.m.n_params);
    gradsync_begin(g);
    gradsync_arm(g);
    backward(&f, c->rank, 0, 0);
    double t0 = util_now();
    int left = gradsync_pending(g);
    while (left > 0 && util_now() - t0 < (thread ? 20.0 : 0.3)) {
        usleep(1000);
        left = gradsync_pending(g);
    }
    if (thread) {
        EXPECT(left == 0, "the progress thread completed every bucket alone: %d pending after %.1f s", left,
               util_now() - t0);
        size_t bad = left == 0 ? wrong(&f, c, 0, f.m.n_params, 1) : f.m.n_params;
        EXPECT(bad == 0, "the sums are in place before gradsync_finish: %zu wrong", bad);
    } else {
        EXPECT(left > 0, "without the thread nothing moves the reductions on: %d pending", left);
    }
    gradsync_finish(g);
    EXPECT(wrong(&f, c, 0, f.m.n_params, 1) == 0 && gradsync_pending(g) == 0, "the sums after gradsync_finish");
    gradsync_free(g);
    fake_free(&f);
}

static void lifecycle(const Comm *c) {
    Fake f;
    fake_init(&f, 10);
    for (int thread = 0; thread < 2; thread++) {
        GradSyncOptions o = opts(1, thread, 16, 0);
        GradSync *g = gradsync_create(&f.m, c, &o, util_now());
        EXPECT(gradsync_pending(g) == 0, "a fresh GradSync has nothing pending");
        gradsync_free(g); /* the thread ends without having been armed */
    }
    gradsync_free(NULL);
    fake_free(&f);
    EXPECT(1, "create/free with nothing in flight returned");
}

static void all_cases(const Comm *c) {
    EXPECT(c->mpi_serialized, "MPI provides MPI_THREAD_SERIALIZED (else the progress thread falls back)");
    EXPECT(c->nbc_ring == !getenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm"),
           "2 ranks: comm_init selected the ring for non-blocking allreduces unless the environment chose (%d)",
           c->nbc_ring);
    lifecycle(c);
    steps(c, 50, opts(1, 1, 7, 0), 3, "tiny buckets, thread");
    steps(c, 3, opts(1, 1, 1, 0), 2, "buckets of one value, thread");
    steps(c, 20, opts(1, 1, 1000000, 0), 2, "one bucket bigger than the gradient, thread");
    steps(c, 50, opts(1, 0, 7, 0), 2, "tiny buckets, no thread");
    steps(c, 50, opts(0, 1, 7, 0), 2, "blocking (overlap 0; the thread option unused)");
    steps(c, 50, opts(1, 1, 31, 1), 3, "sharded, overlap, thread");
    steps(c, 50, opts(0, 0, 31, 1), 2, "sharded, blocking");
    accumulation(c);
    for (int thread = 0; thread < 2; thread++)
        for (int shard = 0; shard < 2; shard++) idle_rank(c, thread, shard);
    moves_alone(c, 1);
    moves_alone(c, 0);
}

int main(int argc, char **argv) {
    if (!test_under_mpirun()) {
        char *out = NULL;
        int rc = test_mpirun_self(2, NULL, &out, NULL);
        fputs(out, stdout);
        EXPECT(rc == 0, "mpirun -np 2 exited %d", rc);
        EXPECT(test_absorb(out) == 0, "no summary from the ranks");
        free(out);
        return test_summary();
    }
    alarm(120); /* a mismatched collective hangs: end the rank instead */
    log_set_quiet(1);
    Comm c;
    comm_init(&c, &argc, &argv);
    all_cases(&c);
    return test_ranks_finish(&c);
}
