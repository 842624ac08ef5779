/* test_gradsync -- the data-parallel reduction and optimizer step
 * (stages/gradsync.h) on a tiny GPT-2 under mpirun -np 1, 2 and 3.
 *
 * Every rank differentiates its own rows; the naive reference needs no MPI:
 * each rank also differentiates every rank's rows itself, one after the
 * other, and adds the gradients in rank order.  Checked for mode 0
 * (blocking), 1 (overlap), 2 (overlap + progress thread) × shard 0/1 ×
 * buckets that do not divide the vector (1000, 7 elements, one bucket, a
 * bucket larger than the vector), with two accumulated
 * micro-batches (only the last armed) and two optimizer steps:
 *  - after gradsync_finish the gradient on this rank's range equals the
 *    reference sum: bitwise for 2 ranks (a + b in every path), within 1e-6
 *    of the largest element for 3;
 *  - overlap 0 and 1 give bitwise the same reduced gradient and parameters
 *    on 2 ranks; gradsync_step equals optim_step on the reference sum
 *    (bitwise, unsharded, 2 ranks); sharded and unsharded updates agree
 *    within 1e-6 relative on 2 ranks, and their gradient norms within 1e-6
 *    on 2 and 3; on 3 ranks every path's parameters within lr/100 of the
 *    reference's (AdamW's first steps divide each element by its own
 *    magnitude: an element whose sum cancels to rounding level moves
 *    differently);
 *  - parameters are equal on every rank after each step;
 *  - gradsync_range: the ranks' slices tile [0, n) in order (everything
 *    unless sharded on more than one rank);
 *  - trace = 1: /trace holds, per step and rank, one compute interval, one
 *    comm interval per bucket (one for a blocking reduction), one wait and
 *    one optim, in that order, with compute.t1 = wait.t0 <= wait.t1 <=
 *    optim.t0; with overlap some bucket starts before the backward pass ends,
 *    without it none does; trace = 0 writes no /trace; gradsync_totals
 *    hidden <= comm;
 *  - one rank: no reduction (the gradient untouched), overlap and shard
 *    ignored;
 *  - error paths: a trace flush into a read-only file is -1 with the path on
 *    rank 0; an optimizer slice that is not the rank's is a CHECK naming
 *    both slices (the job ends non-zero).
 * Started alone, the program runs itself under mpirun (MPI stays out of the
 * first process). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/comm.h"
#include "base/util.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "io/store.h"
#include "stages/gradsync.h"
#include "test.h"
#include "test_mpi.h"

enum { B = 2, T = 16, V = 64, MICRO = 2, STEPS = 2 };
static const double LR = 1e-2;
static char DIR[512];

/* ---- the model and its rows ------------------------------------------------------- */

static ModelConfig tiny(void) { return model_config_gpt2(2, 2, 16, V, T); }

static void make_model(Model *m) {
    ModelConfig c = tiny();
    model_init(m, &c);
    model_init_weights(m, 42);
    model_alloc_acts(m, B, T);
}

/* The rows of (step, rank, micro): B rows of T random tokens, every position a target but the last. */
typedef struct {
    int tok[B * T], pos[B * T], seg[B * T], tgt[B * T];
    ModelBatch b;
} Rows;

static void make_rows(Rows *r, int step, int rank, int micro) {
    Rng g;
    rng_seed(&g, 1000003ULL * (uint64_t)step + 1009ULL * (uint64_t)rank + (uint64_t)micro + 1);
    for (int i = 0; i < B * T; i++) r->tok[i] = (int)rng_below(&g, V), r->pos[i] = i % T, r->seg[i] = 0;
    for (int i = 0; i < B * T; i++) r->tgt[i] = i % T == T - 1 ? -1 : r->tok[i + 1];
    r->b = (ModelBatch){B, T, r->tok, r->pos, r->seg, r->tgt};
}

/* Mean negative log-likelihood of the rows: accumulates its gradient into m->grads. */
static void backward(Model *m, int step, int rank, int micro) {
    Rows r;
    make_rows(&r, step, rank, micro);
    int M = model_forward(m, &r.b);
    float *g = xmalloc(sizeof(float) * (size_t)M);
    for (int i = 0; i < M; i++) g[i] = -1.0f / (float)M;
    model_backward(m, &r.b, g);
    free(g);
}

/* The naive reference of one step: every rank's gradient (micro-batches accumulated), added in rank order. */
static void reference_sum(Model *m, int step, int W, float *sum) {
    memset(sum, 0, sizeof(float) * m->n_params);
    for (int r = 0; r < W; r++) {
        model_zero_grad(m);
        for (int k = 0; k < MICRO; k++) backward(m, step, r, k);
        for (size_t i = 0; i < m->n_params; i++) sum[i] += m->grads[i];
    }
}

static void optim_of(Optim *o, const Model *m, size_t lo, size_t hi) {
    optim_init_range(o, m, 0.9, 0.95, 1e-8, 0.1, 1.0, lo, hi);
}

/* ---- one configuration on every rank -------------------------------------------------- */

typedef struct {
    float *grad[STEPS];   /* the reduced gradient after finish, on [lo, hi) (zeros elsewhere) */
    float *params[STEPS]; /* after each step */
    double gnorm[STEPS];
    size_t lo, hi;
    double comm, hidden;
} Outcome;

static void outcome_free(Outcome *o) {
    for (int s = 0; s < STEPS; s++) free(o->grad[s]), free(o->params[s]);
}

/* Runs STEPS steps with options opt; run (rank 0, may be NULL) gets the trace. */
static void run_steps(const Comm *c, const GradSyncOptions *opt, StoreFile *run, Outcome *out) {
    Model m;
    make_model(&m);
    memset(out, 0, sizeof *out);
    gradsync_range(&m, c, opt, &out->lo, &out->hi);
    GradSync *g = gradsync_create(&m, c, opt, util_now());
    Optim o;
    optim_of(&o, &m, out->lo, out->hi);
    for (int s = 0; s < STEPS; s++) {
        gradsync_begin(g);
        model_zero_grad(&m);
        for (int k = 0; k < MICRO; k++) {
            if (k == MICRO - 1) gradsync_arm(g);
            backward(&m, s, c->rank, k);
        }
        gradsync_finish(g);
        out->grad[s] = xcalloc(m.n_params, sizeof(float));
        memcpy(out->grad[s] + out->lo, m.grads + out->lo, sizeof(float) * (out->hi - out->lo));
        out->gnorm[s] = gradsync_step(g, &o, LR, s + 1);
        out->params[s] = xmalloc(sizeof(float) * m.n_params);
        memcpy(out->params[s], m.params, sizeof(float) * m.n_params);
        Err e = {{0}};
        int rc = gradsync_trace_flush(g, run, s + 1, &e);
        EXPECT(rc == 0, "trace flush: %s", e.msg);
    }
    gradsync_totals(g, &out->comm, &out->hidden);
    gradsync_free(g);
    EXPECT(m.grad_ready == NULL && m.grad_ctx == NULL, "gradsync_free leaves no hook in the model");
    optim_free(&o);
    model_free(&m);
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

/* max |a - b| over [lo, hi) */
static double max_diff(const float *a, const float *b, size_t lo, size_t hi) {
    double d = 0;
    for (size_t i = lo; i < hi; i++) {
        double x = fabs((double)a[i] - (double)b[i]);
        if (x != x) return INFINITY;
        d = fmax(d, x);
    }
    return d;
}

/* 1 when x[0, n) is bitwise equal on every rank (rank 0's copy broadcast, compared everywhere) */
static int same_on_all_ranks(const float *x, size_t n) {
    float *r0 = xmalloc(sizeof(float) * n);
    memcpy(r0, x, sizeof(float) * n);
    comm_bcast(r0, sizeof(float) * n);
    int differ = memcmp(r0, x, sizeof(float) * n) != 0;
    free(r0);
    return !comm_any(differ);
}

/* The reference of a whole run: reduced gradients and parameters after each unsharded step. */
typedef struct {
    float *grad[STEPS], *params[STEPS];
    double gnorm[STEPS];
    size_t n;
} Reference;

static void reference_run(int W, Reference *r) {
    Model m;
    make_model(&m);
    r->n = m.n_params;
    Optim o;
    optim_of(&o, &m, 0, m.n_params);
    for (int s = 0; s < STEPS; s++) {
        r->grad[s] = xmalloc(sizeof(float) * m.n_params);
        reference_sum(&m, s, W, r->grad[s]);
        memcpy(m.grads, r->grad[s], sizeof(float) * m.n_params);
        r->gnorm[s] = optim_step(&o, &m, LR, s + 1);
        r->params[s] = xmalloc(sizeof(float) * m.n_params);
        memcpy(r->params[s], m.params, sizeof(float) * m.n_params);
    }
    optim_free(&o);
    model_free(&m);
}

static void reference_free(Reference *r) {
    for (int s = 0; s < STEPS; s++) free(r->grad[s]), free(r->params[s]);
}

/* ---- checks on 2 or 3 ranks ----------------------------------------------------------- */

static void check_ranges(const Comm *c, size_t n) {
    for (int shard = 0; shard < 2; shard++) {
        Model m;
        make_model(&m);
        GradSyncOptions o = {.shard = shard};
        size_t lo, hi;
        gradsync_range(&m, c, &o, &lo, &hi);
        int64_t all[2 * 8] = {0};
        all[2 * c->rank] = (int64_t)lo, all[2 * c->rank + 1] = (int64_t)hi;
        comm_allreduce_sum_i64(all, (size_t)(2 * c->size));
        int ok = 1;
        if (!shard || c->size == 1) {
            for (int r = 0; r < c->size; r++) ok &= all[2 * r] == 0 && all[2 * r + 1] == (int64_t)n;
        } else {
            ok &= all[0] == 0 && all[2 * c->size - 1] == (int64_t)n;
            for (int r = 0; r + 1 < c->size; r++) ok &= all[2 * r + 1] == all[2 * r + 2] && all[2 * r] <= all[2 * r + 1];
            size_t *bd = xmalloc(sizeof(size_t) * (size_t)(c->size + 1));
            model_shard_bounds(&m, c->size, bd);
            ok &= bd[c->rank] == lo && bd[c->rank + 1] == hi;
            free(bd);
        }
        EXPECT(ok, "rank %d shard %d: range [%zu, %zu) of %zu", c->rank, shard, lo, hi, n);
        model_free(&m);
    }
}

static void check_against_reference(const Comm *c, const Reference *ref) {
    const int W = c->size;
    size_t n = ref->n;
    const size_t buckets[] = {1000, 7, 0, 10 * n};
    /* parameters: within 1e-6 relative on 2 ranks (the sums are bitwise; only the sharded norm's order differs); on 3
     * the sums differ at rounding level, and AdamW's first steps divide each element by its own magnitude, so an
     * element whose sum cancels to rounding level can move differently: within lr / 100 there */
    const double ptol = W == 2 ? 1e-6 : 1e-2;
    Outcome base; /* overlap 0, unsharded */
    GradSyncOptions o0 = {.overlap = 0, .bucket = 1000};
    run_steps(c, &o0, NULL, &base);
    for (int s = 0; s < STEPS; s++) {
        double scale = max_abs(ref->grad[s], n);
        double d = max_diff(base.grad[s], ref->grad[s], 0, n);
        if (W == 2) EXPECT(d == 0, "%d ranks step %d: blocking reduction = a + b bitwise (max diff %g)", W, s, d);
        else EXPECT(d <= 1e-6 * scale, "%d ranks step %d: blocking reduction = the sum (max diff %g of %g)", W, s, d, scale);
        double dp = max_diff(base.params[s], ref->params[s], 0, n);
        if (W == 2) EXPECT(dp == 0 && base.gnorm[s] == ref->gnorm[s], "step %d: gradsync_step = optim_step on the sum", s);
        else EXPECT(test_max_rel_err(base.params[s], ref->params[s], (long)n, 1e-2) < ptol, "step %d: parameters (%g)", s,
                    test_max_rel_err(base.params[s], ref->params[s], (long)n, 1e-2));
        EXPECT(same_on_all_ranks(base.params[s], n), "step %d: parameters equal on every rank", s);
    }
    for (int shard = 0; shard < 2; shard++)
        for (size_t k = 0; k < sizeof buckets / sizeof *buckets; k++)
            for (int mode = 0; mode < 3; mode++) { /* 0 blocking, 1 overlap, 2 overlap + progress thread */
                int overlap = mode > 0;
                if (!shard && !overlap) continue; /* the base */
                if (!overlap && k > 0) continue;  /* the bucket size matters only with overlap or sharding */
                GradSyncOptions o = {.overlap = overlap, .bucket = buckets[k], .shard = shard, .progress_thread = mode == 2};
                Outcome x;
                run_steps(c, &o, NULL, &x);
                for (int s = 0; s < STEPS; s++) {
                    double scale = max_abs(ref->grad[s], n);
                    double d = max_diff(x.grad[s], ref->grad[s], x.lo, x.hi);
                    if (W == 2)
                        EXPECT(d == 0, "2 ranks mode %d shard %d bucket %zu step %d: reduced gradient on [%zu, %zu) "
                                       "bitwise the sum (max diff %g)", mode, shard, buckets[k], s, x.lo, x.hi, d);
                    else
                        EXPECT(d <= 1e-6 * scale, "%d ranks mode %d shard %d bucket %zu step %d: max diff %g of %g", W,
                               mode, shard, buckets[k], s, d, scale);
                    if (!shard && W == 2)
                        EXPECT(!memcmp(x.params[s], base.params[s], sizeof(float) * n) && x.gnorm[s] == base.gnorm[s],
                               "mode %d bucket %zu step %d: bitwise the parameters of overlap 0", mode, buckets[k], s);
                    else
                        EXPECT(test_max_rel_err(x.params[s], base.params[s], (long)n, 1e-2) < ptol &&
                                   fabs(x.gnorm[s] - base.gnorm[s]) <= 1e-6 * base.gnorm[s],
                               "%d ranks mode %d shard %d bucket %zu step %d: parameters within %g (%g), norm %.9g "
                               "vs %.9g", W, mode, shard, buckets[k], s, ptol,
                               test_max_rel_err(x.params[s], base.params[s], (long)n, 1e-2), x.gnorm[s], base.gnorm[s]);
                    EXPECT(same_on_all_ranks(x.params[s], n), "mode %d shard %d: parameters equal on every rank",
                           mode, shard);
                }
                EXPECT(x.comm > 0 && x.hidden >= 0 && x.hidden <= x.comm + 1e-9, "totals: comm %g hidden %g", x.comm,
                       x.hidden);
                outcome_free(&x);
            }
    outcome_free(&base);
}

/* One step of this rank's rows with an optimizer over the whole vector: the model, the GradSync (returned)
 * and the optimizer are made here and freed by the caller. */
static GradSync *one_step(const Comm *c, GradSyncOptions o, Model *m, Optim *op) {
    make_model(m);
    GradSync *g = gradsync_create(m, c, &o, util_now());
    optim_of(op, m, 0, m->n_params);
    gradsync_begin(g);
    model_zero_grad(m);
    backward(m, 0, c->rank, 0);
    gradsync_finish(g);
    gradsync_step(g, op, LR, 1);
    return g;
}

/* ---- the trace ---------------------------------------------------------------------- */

typedef struct {
    int64_t n, *step, *rank, *kind;
    double *t0, *t1;
} Trace;

static int read_trace(const char *path, Trace *t) {
    Err e = {{0}};
    memset(t, 0, sizeof *t);
    StoreFile *f = store_open(path, 0, &e);
    if (!f) return -1;
    if (!store_exists(f, "/trace/step")) {
        store_close(f, NULL);
        return 0;
    }
    int64_t n[5];
    t->step = store_read_alloc(f, "/trace/step", 'l', &n[0], &e);
    t->rank = store_read_alloc(f, "/trace/rank", 'l', &n[1], &e);
    t->kind = store_read_alloc(f, "/trace/kind", 'l', &n[2], &e);
    t->t0 = store_read_alloc(f, "/trace/t0", 'd', &n[3], &e);
    t->t1 = store_read_alloc(f, "/trace/t1", 'd', &n[4], &e);
    store_close(f, NULL);
    int ok = t->step && t->rank && t->kind && t->t0 && t->t1;
    for (int i = 1; i < 5; i++) ok &= n[i] == n[0];
    t->n = ok ? n[0] : -1;
    return ok ? 0 : -1;
}

static void trace_free(Trace *t) { free(t->step), free(t->rank), free(t->kind), free(t->t0), free(t->t1); }

/* Checks the intervals of (step, rank): compute, comm x n_comm, wait, optim in that order. */
static void check_intervals(const Trace *t, int64_t step, int rank, int n_comm, int overlap) {
    int64_t idx[256];
    int k = 0;
    for (int64_t i = 0; i < t->n && k < 256; i++)
        if (t->step[i] == step && t->rank[i] == rank) idx[k++] = i;
    int ok = k == n_comm + 3;
    for (int j = 0; ok && j < k; j++) {
        int want = j == 0 ? TRACE_COMPUTE : j <= n_comm ? TRACE_COMM : j == n_comm + 1 ? TRACE_WAIT : TRACE_OPTIM;
        ok &= t->kind[idx[j]] == want && t->t0[idx[j]] <= t->t1[idx[j]] && t->t0[idx[j]] >= 0 && t->t1[idx[j]] < 600;
    }
    EXPECT(ok, "step %lld rank %d: %d intervals (compute, %d comm, wait, optim expected)", (long long)step, rank, k, n_comm);
    if (!ok) return;
    double c1 = t->t1[idx[0]], w0 = t->t0[idx[n_comm + 1]], w1 = t->t1[idx[n_comm + 1]], o0 = t->t0[idx[n_comm + 2]];
    EXPECT(c1 == w0 && w1 <= o0, "step %lld rank %d: compute ends where the wait starts (%.9f, %.9f), optim after (%.9f <= %.9f)",
           (long long)step, rank, c1, w0, w1, o0);
    int early = 0, inside = 1;
    for (int j = 1; j <= n_comm; j++) {
        early += t->t0[idx[j]] < c1;
        inside &= t->t1[idx[j]] <= w1 && t->t0[idx[j]] >= t->t0[idx[0]];
    }
    EXPECT(inside, "step %lld rank %d: every reduction inside the step, seen complete by the end of the wait", (long long)step,
           rank);
    if (overlap) EXPECT(early > 0, "overlap: %d of %d buckets started during the backward pass", early, n_comm);
    else EXPECT(early == 0, "no overlap: %d reductions started before the backward pass ended", early);
}

static void check_trace(const Comm *c, size_t n) {
    struct { int overlap, shard; size_t bucket; } cases[] = {{1, 0, 1000}, {0, 0, 1000}, {0, 1, 1000}, {1, 1, 700}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char path[700];
        snprintf(path, sizeof path, "%s/trace%zu_np%d.h5", DIR, k, c->size);
        StoreFile *run = NULL;
        Err e = {{0}};
        if (c->rank == 0) run = store_create(path, &e);
        GradSyncOptions o = {.overlap = cases[k].overlap, .bucket = cases[k].bucket, .shard = cases[k].shard, .trace = 1};
        Outcome x;
        run_steps(c, &o, run, &x);
        outcome_free(&x);
        if (c->rank != 0) continue;
        store_close(run, NULL);
        Trace t;
        EXPECT(read_trace(path, &t) == 0 && t.n > 0, "case %zu: /trace readable", k);
        int nb = (int)((n + cases[k].bucket - 1) / cases[k].bucket);
        int n_comm = cases[k].overlap || cases[k].shard ? nb : 1;
        for (int64_t s = 1; s <= STEPS; s++)
            for (int r = 0; r < c->size; r++) check_intervals(&t, s, r, n_comm, cases[k].overlap);
        EXPECT(t.n == (int64_t)STEPS * c->size * (n_comm + 3), "case %zu: %lld intervals in all", k, (long long)t.n);
        trace_free(&t);
    }
    /* trace 0: nothing written */
    char path[700];
    snprintf(path, sizeof path, "%s/notrace_np%d.h5", DIR, c->size);
    Err e = {{0}};
    StoreFile *run = c->rank == 0 ? store_create(path, &e) : NULL;
    GradSyncOptions o = {.overlap = 1, .bucket = 1000};
    Outcome x;
    run_steps(c, &o, run, &x);
    outcome_free(&x);
    if (c->rank == 0) {
        store_close(run, NULL);
        Trace t;
        EXPECT(read_trace(path, &t) == 0 && t.n == 0, "trace 0: no /trace (%lld rows)", (long long)t.n);
        trace_free(&t);
    }
    /* a write error: a read-only file; rank 0 returns -1 naming it, the others 0 */
    snprintf(path, sizeof path, "%s/readonly_np%d.h5", DIR, c->size);
    if (c->rank == 0) {
        run = store_create(path, &e);
        store_close(run, NULL);
        run = store_open(path, 0, &e);
    }
    comm_barrier();
    Model m;
    Optim op;
    GradSync *g = one_step(c, (GradSyncOptions){.trace = 1}, &m, &op);
    memset(&e, 0, sizeof e);
    int rc = gradsync_trace_flush(g, run, 1, &e);
    if (c->rank == 0) EXPECT(rc == -1 && strstr(e.msg, "readonly_np"), "read-only run file: rc %d, '%s'", rc, e.msg);
    else EXPECT(rc == 0, "rank %d: the flush is rank 0's to fail", c->rank);
    gradsync_free(g);
    optim_free(&op);
    model_free(&m);
    if (c->rank == 0) store_close(run, NULL);
}

/* ---- one rank -------------------------------------------------------------------------- */

static void check_one_rank(const Comm *c) {
    Model m, r;
    make_model(&m), make_model(&r);
    GradSyncOptions o = {.overlap = 1, .bucket = 7, .shard = 1, .trace = 1};
    size_t lo, hi;
    gradsync_range(&m, c, &o, &lo, &hi);
    EXPECT(lo == 0 && hi == m.n_params, "one rank: the whole range, shard or not");
    GradSync *g = gradsync_create(&m, c, &o, util_now());
    Optim om, orf;
    optim_of(&om, &m, 0, m.n_params), optim_of(&orf, &r, 0, r.n_params);
    gradsync_begin(g);
    model_zero_grad(&m), model_zero_grad(&r);
    for (int k = 0; k < MICRO; k++) {
        if (k == MICRO - 1) gradsync_arm(g);
        backward(&m, 0, 0, k), backward(&r, 0, 0, k);
    }
    EXPECT(m.grad_ready == NULL, "one rank: overlap is off, no hook armed");
    gradsync_finish(g);
    EXPECT(!memcmp(m.grads, r.grads, sizeof(float) * m.n_params), "one rank: the gradient is untouched");
    double gn = gradsync_step(g, &om, LR, 1), gr = optim_step(&orf, &r, LR, 1);
    EXPECT(gn == gr && !memcmp(m.params, r.params, sizeof(float) * m.n_params), "one rank: gradsync_step = optim_step");
    double cm = -1, hd = -1;
    gradsync_totals(g, &cm, &hd);
    EXPECT(cm == 0 && hd == 0, "one rank: no reduction time (%g, %g)", cm, hd);
    gradsync_free(g);
    gradsync_free(NULL);
    optim_free(&om), optim_free(&orf);
    model_free(&m), model_free(&r);
}

/* ---- the ranks ---------------------------------------------------------------------------- */

/* both ranks step with an optimizer over the whole vector while sharded: a CHECK */
static int bad_slice(const Comm *c) {
    Model m;
    Optim op;
    one_step(c, (GradSyncOptions){.shard = 1}, &m, &op); /* its gradsync_step ends the job */
    printf("not stopped\n");
    return 0;
}

/* A rank whose step has no rows runs no backward pass and never arms (a critique step with fewer
 * pairs than ranks): with overlap on it must still take part in the bucketed reductions the other
 * ranks started (it took the blocking allreduce before: collectives that do not match, a hang).
 * Every rank ends with rank 0's gradient, exactly (adding zeros is exact). */
static void check_idle_rank(const Comm *c, int progress_thread) {
    Model m;
    make_model(&m);
    float *want = xmalloc(sizeof(float) * m.n_params);
    model_zero_grad(&m);
    backward(&m, 0, 0, 0);
    memcpy(want, m.grads, sizeof(float) * m.n_params);
    GradSyncOptions opt = {.overlap = 1, .bucket = m.n_params / 5 + 1, .progress_thread = progress_thread};
    GradSync *g = gradsync_create(&m, c, &opt, util_now());
    gradsync_begin(g);
    model_zero_grad(&m);
    if (c->rank == 0) {
        gradsync_arm(g);
        backward(&m, 0, 0, 0);
    }
    gradsync_finish(g);
    EXPECT(!memcmp(m.grads, want, sizeof(float) * m.n_params),
           "rank %d progress thread %d: a rank without a backward pass joins the bucketed reduction (rank 0's gradient)",
           c->rank, progress_thread);
    gradsync_free(g);
    free(want);
    model_free(&m);
}

static int ranks_main(int argc, char **argv) {
    Comm c;
    comm_init(&c, &argc, &argv);
    log_set_quiet(1);
    CHECK(c.size <= 8, "%d ranks", c.size);
    CHECK(argc >= 2, "usage: test_gradsync DIR [--bad-slice]");
    snprintf(DIR, sizeof DIR, "%s", argv[1]);
    if (argc > 2 && !strcmp(argv[2], "--bad-slice")) return bad_slice(&c);
    Model m;
    make_model(&m);
    size_t n = m.n_params;
    model_free(&m);
    check_ranges(&c, n);
    if (c.size == 1) {
        check_one_rank(&c);
    } else {
        Reference ref;
        reference_run(c.size, &ref);
        check_against_reference(&c, &ref);
        reference_free(&ref);
        check_trace(&c, n);
        check_idle_rank(&c, 0);
        check_idle_rank(&c, 1);
    }
    return test_ranks_finish(&c);
}

/* ---- the first process: no MPI -------------------------------------------------------------- */

static void run_ranks(int np, const char *dir) {
    const char *args[] = {dir, NULL};
    char *out = NULL;
    int rc = test_mpirun_self(np, args, &out, NULL);
    printf("---- mpirun -np %d: exit %d\n%s", np, rc, out);
    EXPECT(rc == 0, "mpirun -np %d exited %d", np, rc);
    EXPECT(test_absorb(out) == 0, "mpirun -np %d: no summary from the ranks", np);
    free(out);
}

int main(int argc, char **argv) {
    if (test_under_mpirun()) return ranks_main(argc, argv);
    char *tmp = test_tmpdir("test_gradsync");
    run_ranks(1, tmp);
    run_ranks(2, tmp);
    run_ranks(3, tmp);
    const char *args[] = {tmp, "--bad-slice", NULL};
    char *out = NULL;
    int rc = test_mpirun_self(2, args, &out, NULL);
    EXPECT(rc != 0 && strstr(out, "is not this rank's") && !strstr(out, "not stopped"),
           "an optimizer slice that is not the rank's: exit %d\n%s", rc, out);
    free(out);
    test_rm_rf(tmp);
    free(tmp);
    return test_summary();
}
