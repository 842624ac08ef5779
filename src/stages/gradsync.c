/* gradsync -- gradient reduction and optimizer step; see include/stages/gradsync.h. */
#include "stages/gradsync.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"

typedef struct {
    int32_t kind;
    double t0, t1;
} TraceEvent;

struct GradSync {
    Model *m;
    const Comm *c;
    GradSyncOptions o;
    double t0;
    int W;
    size_t lo, hi;   /* this rank's slice (shard) or everything */
    int *counts, *displs; /* shard: slice sizes and starts, per rank */
    float *recv;     /* shard: the reduced slice */
    /* buckets, from the end of the flat vector: bucket k = [bs[k], be[k]) */
    int nb, next, armed;
    int ready;       /* buckets the backward pass has finished (started or queued) */
    int inflight, done_upto; /* started and not seen complete; buckets below done_upto all complete */
    size_t *bs, *be;
    CommRequest *req;
    int *pending;
    double *ts, *td; /* start, completion seen */
    int *scount;     /* shard: per bucket, the counts of every rank (nb * W) */
    double c0, c1;   /* this step's compute interval */
    double comm_total, hidden_total;
    TraceEvent *ev;
    int nev, cap;
    /* the progress thread (o.progress_thread): mu guards the bucket state above (next, ready, inflight,
     * done_upto, req, pending, ts, td) and every MPI call on it while the thread may run */
    int threaded;    /* the thread exists */
    int active;      /* it may call MPI: from gradsync_arm to gradsync_finish */
    int stop;        /* gradsync_free: it ends */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* ready buckets, arm, stop */
};

void gradsync_range(const Model *m, const Comm *c, const GradSyncOptions *o, size_t *lo, size_t *hi) {
    *lo = 0, *hi = m->n_params;
    if (!o->shard || c->size <= 1) return;
    size_t *b = xmalloc(sizeof(size_t) * (size_t)(c->size + 1));
    model_shard_bounds(m, c->size, b);
    *lo = b[c->rank], *hi = b[c->rank + 1];
    free(b);
}

static void start_thread(GradSync *g);
static void stop_thread(GradSync *g);

static double now(const GradSync *g) { return util_now() - g->t0; }

static void trace(GradSync *g, int kind, double t0, double t1) {
    if (!g->o.trace) return;
    if (g->nev == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->ev = xrealloc(g->ev, sizeof(TraceEvent) * (size_t)g->cap);
    }
    g->ev[g->nev++] = (TraceEvent){kind, t0, t1};
}

static void make_buckets(GradSync *g) {
    size_t n = g->m->n_params, per = g->o.bucket > 0 ? g->o.bucket : n;
    g->nb = (int)((n + per - 1) / per);
    if (g->nb < 1) g->nb = 1;
    g->bs = xmalloc(sizeof(size_t) * (size_t)g->nb), g->be = xmalloc(sizeof(size_t) * (size_t)g->nb);
    for (int k = 0; k < g->nb; k++) {
        g->be[k] = n - (size_t)k * per;
        g->bs[k] = g->be[k] > per ? g->be[k] - per : 0;
    }
    g->req = xcalloc((size_t)g->nb, sizeof(CommRequest));
    g->pending = xcalloc((size_t)g->nb, sizeof(int));
    g->ts = xcalloc((size_t)g->nb, sizeof(double)), g->td = xcalloc((size_t)g->nb, sizeof(double));
    if (!g->o.shard) return;
    g->scount = xcalloc((size_t)g->nb * (size_t)g->W, sizeof(int));
    for (int k = 0; k < g->nb; k++)
        for (int r = 0; r < g->W; r++) {
            size_t a = g->bs[k] > (size_t)g->displs[r] ? g->bs[k] : (size_t)g->displs[r];
            size_t e = (size_t)g->displs[r] + (size_t)g->counts[r];
            size_t b = g->be[k] < e ? g->be[k] : e;
            g->scount[k * g->W + r] = a < b ? (int)(b - a) : 0;
        }
}

GradSync *gradsync_create(Model *m, const Comm *c, const GradSyncOptions *o, double t0) {
    GradSync *g = xcalloc(1, sizeof *g);
    g->m = m, g->c = c, g->o = *o, g->t0 = t0, g->W = c->size;
    if (g->W <= 1) g->o.overlap = 0, g->o.shard = 0;
    gradsync_range(m, c, &g->o, &g->lo, &g->hi);
    if (g->o.shard) {
        CHECK(m->n_params <= 2147483647u, "a sharded optimizer needs fewer than 2^31 parameters (%zu)", m->n_params);
        size_t *b = xmalloc(sizeof(size_t) * (size_t)(g->W + 1));
        model_shard_bounds(m, g->W, b);
        g->counts = xmalloc(sizeof(int) * (size_t)g->W), g->displs = xmalloc(sizeof(int) * (size_t)g->W);
        for (int r = 0; r < g->W; r++) g->counts[r] = (int)(b[r + 1] - b[r]), g->displs[r] = (int)b[r];
        free(b);
        g->recv = xmalloc_aligned(sizeof(float) * (g->hi - g->lo + 1));
    }
    if (g->o.overlap || g->o.shard) make_buckets(g);
    if (g->o.overlap && g->o.progress_thread) {
        static int warned = 0;
        if (c->mpi_serialized) start_thread(g);
        else if (!warned++)
            log_warn("MPI does not provide MPI_THREAD_SERIALIZED: no gradient progress thread "
                     "(train.progress_thread=1 ignored); overlapped reductions move only between layers");
    }
    return g;
}

void gradsync_free(GradSync *g) {
    if (!g) return;
    CHECK(!g->armed, "gradsync_free between gradsync_arm and gradsync_finish (reductions in flight)");
    if (g->threaded) stop_thread(g);
    if (g->m && g->m->grad_ctx == g) g->m->grad_ready = NULL, g->m->grad_ctx = NULL;
    free(g->counts), free(g->displs), free(g->recv), free(g->bs), free(g->be), free(g->req), free(g->pending);
    free(g->ts), free(g->td), free(g->scount), free(g->ev);
    free(g);
}

static void start_bucket(GradSync *g, int k) {
    float *x = g->m->grads + g->bs[k];
    if (!g->o.shard) {
        g->req[k] = comm_iallreduce_sum_f32(x, g->be[k] - g->bs[k]);
    } else {
        size_t a = g->bs[k] > g->lo ? g->bs[k] : g->lo;
        float *dst = g->scount[k * g->W + g->c->rank] > 0 ? g->recv + (a - g->lo) : g->recv;
        g->req[k] = comm_ireduce_scatter_sum_f32(x, dst, g->scount + (size_t)k * g->W);
    }
    g->pending[k] = 1;
    g->ts[k] = now(g);
}

/* Open MPI's non-blocking reductions hold a temporary buffer of the message each: at most this many
 * buckets are in flight (more would not fill the network better, and all of them would cost memory of
 * the whole gradient). */
enum { MAX_INFLIGHT = 4 };

static void completed(GradSync *g, int k) {
    g->pending[k] = 0, g->td[k] = now(g), g->inflight--;
}

/* tests the pending buckets (progress), noting completions, and starts ready ones while there is room;
 * buckets start in index order on every rank (collectives must match) */
static void progress(GradSync *g) {
    for (int k = g->done_upto; k < g->next; k++)
        if (g->pending[k] && comm_test(g->req[k])) completed(g, k);
    while (g->done_upto < g->next && !g->pending[g->done_upto]) g->done_upto++;
    while (g->next < g->ready && g->inflight < MAX_INFLIGHT) start_bucket(g, g->next++), g->inflight++;
}

/* Open MPI (libnbc) advances a non-blocking collective only inside MPI calls: while buckets are in flight
 * or queued the thread tests them this often, and sleeps in between (a test of a few buckets costs
 * microseconds; 1 Gbit/s moves 25 KB in this time, far less than a socket's buffer). */
enum { PROGRESS_US = 200 };

static int busy(const GradSync *g) { return g->inflight > 0 || g->next < g->ready; }

static void lock(GradSync *g) {
    if (g->threaded) CHECK(pthread_mutex_lock(&g->mu) == 0, "pthread_mutex_lock");
}

static void unlock(GradSync *g) {
    if (g->threaded) CHECK(pthread_mutex_unlock(&g->mu) == 0, "pthread_mutex_unlock");
}

/* the progress thread: between gradsync_arm and gradsync_finish it starts the buckets the backward pass
 * has finished and tests the ones in flight, every PROGRESS_US while any are; otherwise it waits */
static void *progress_main(void *arg) {
    GradSync *g = arg;
    CHECK(pthread_mutex_lock(&g->mu) == 0, "pthread_mutex_lock");
    while (!g->stop) {
        if (g->active && busy(g)) progress(g);
        int rc;
        if (g->active && busy(g)) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            t.tv_nsec += PROGRESS_US * 1000L;
            if (t.tv_nsec >= 1000000000L) t.tv_sec++, t.tv_nsec -= 1000000000L;
            rc = pthread_cond_timedwait(&g->cv, &g->mu, &t);
        } else {
            rc = pthread_cond_wait(&g->cv, &g->mu);
        }
        CHECK(rc == 0 || rc == ETIMEDOUT, "pthread_cond_wait: %s", strerror(rc));
    }
    CHECK(pthread_mutex_unlock(&g->mu) == 0, "pthread_mutex_unlock");
    return NULL;
}

static void start_thread(GradSync *g) {
    pthread_condattr_t a;
    CHECK(pthread_mutex_init(&g->mu, NULL) == 0, "pthread_mutex_init");
    CHECK(pthread_condattr_init(&a) == 0 && pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0 &&
              pthread_cond_init(&g->cv, &a) == 0,
          "pthread_cond_init");
    pthread_condattr_destroy(&a);
    int rc = pthread_create(&g->th, NULL, progress_main, g);
    if (rc != 0) DIE("cannot start the gradient progress thread: %s (hint: set train.progress_thread=0)", strerror(rc));
    g->threaded = 1;
}

static void stop_thread(GradSync *g) {
    lock(g);
    g->stop = 1;
    CHECK(pthread_cond_signal(&g->cv) == 0, "pthread_cond_signal");
    unlock(g);
    CHECK(pthread_join(g->th, NULL) == 0, "pthread_join");
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    g->threaded = 0;
}

static void on_ready(void *ctx, size_t lo) {
    GradSync *g = ctx;
    lock(g);
    while (g->ready < g->nb && g->bs[g->ready] >= lo) g->ready++;
    if (g->threaded) CHECK(pthread_cond_signal(&g->cv) == 0, "pthread_cond_signal"); /* the thread starts them */
    else progress(g);
    unlock(g);
}

void gradsync_begin(GradSync *g) {
    g->c0 = now(g);
    g->nev = 0;
}

void gradsync_arm(GradSync *g) {
    if (!g->o.overlap) return;
    CHECK(!g->armed, "gradsync_arm twice without gradsync_finish");
    lock(g);
    g->next = g->ready = g->inflight = g->done_upto = 0;
    g->armed = 1;
    g->active = g->threaded;
    unlock(g);
    g->m->grad_ready = on_ready;
    g->m->grad_ctx = g;
}

/* |union of [s[k], d[k]) k < n| and its part before c1 (starts are non-decreasing) */
static void account(GradSync *g, const double *s, const double *d, int n) {
    double total = 0, hidden = 0, cs = 0, cd = -1;
    for (int k = 0; k <= n; k++) {
        if (k < n && cd >= 0 && s[k] <= cd) {
            if (d[k] > cd) cd = d[k];
            continue;
        }
        if (cd >= 0) {
            total += cd - cs;
            double a = cs > g->c0 ? cs : g->c0, b = cd < g->c1 ? cd : g->c1;
            if (b > a) hidden += b - a;
        }
        if (k < n) cs = s[k], cd = d[k];
    }
    g->comm_total += total, g->hidden_total += hidden;
}

void gradsync_finish(GradSync *g) {
    g->c1 = now(g);
    trace(g, TRACE_COMPUTE, g->c0, g->c1);
    if (g->W <= 1) return;
    /* bucketed whenever buckets exist, also on a rank that was never armed (no backward pass this step:
     * a critique step with fewer pairs than ranks) -- the other ranks' bucket reductions must be
     * matched, in the same order; sharded without overlap: the buckets all start now (pieces keep
     * MPI's buffers small) */
    if (g->armed || g->o.shard || g->o.overlap) {
        lock(g);
        g->active = 0; /* from here on only this thread calls MPI */
        unlock(g);
        if (!g->armed) g->next = g->inflight = g->done_upto = 0;
        g->m->grad_ready = NULL, g->m->grad_ctx = NULL;
        g->armed = 0;
        g->ready = g->nb; /* armed: model_backward reported 0 already */
        progress(g);
        for (int k = 0; k < g->nb; k++) {
            if (g->pending[k]) comm_wait(g->req[k]), completed(g, k);
            g->done_upto = k + 1;
            progress(g);
        }
        for (int k = 0; k < g->nb; k++) trace(g, TRACE_COMM, g->ts[k], g->td[k]);
        account(g, g->ts, g->td, g->nb);
    } else {
        double s = now(g);
        comm_allreduce_sum_f32(g->m->grads, g->m->n_params);
        double d = now(g);
        trace(g, TRACE_COMM, s, d);
        account(g, &s, &d, 1);
    }
    if (g->o.shard) memcpy(g->m->grads + g->lo, g->recv, sizeof(float) * (g->hi - g->lo));
    trace(g, TRACE_WAIT, g->c1, now(g));
}

double gradsync_step(GradSync *g, Optim *opt, double lr, int64_t t) {
    double s = now(g), gnorm;
    if (!g->o.shard) {
        CHECK(opt->lo == 0 && opt->hi == g->m->n_params, "an unsharded step needs the whole optimizer state");
        gnorm = optim_step(opt, g->m, lr, t);
    } else {
        CHECK(opt->lo == g->lo && opt->hi == g->hi, "optimizer slice [%zu, %zu) is not this rank's [%zu, %zu)",
              opt->lo, opt->hi, g->lo, g->hi);
        double ss = optim_sumsq(opt, g->m);
        comm_allreduce_sum_f64(&ss, 1);
        gnorm = sqrt(ss);
        optim_apply(opt, g->m, lr, t, gnorm);
        comm_allgatherv_f32(g->m->params, g->counts, g->displs);
    }
    trace(g, TRACE_OPTIM, s, now(g));
    return gnorm;
}

int gradsync_trace_flush(GradSync *g, StoreFile *run, int64_t step, Err *e) {
    if (!g->o.trace) return 0;
    size_t *lens = NULL;
    char *all = comm_gather_bytes((const char *)g->ev, sizeof(TraceEvent) * (size_t)g->nev, &lens);
    g->nev = 0;
    if (g->c->rank != 0) return 0;
    int64_t n = 0;
    for (int r = 0; r < g->W; r++) n += (int64_t)(lens[r] / sizeof(TraceEvent));
    int64_t *st = xmalloc(sizeof(int64_t) * (size_t)(n + 1)), *rk = xmalloc(sizeof(int64_t) * (size_t)(n + 1));
    int64_t *kd = xmalloc(sizeof(int64_t) * (size_t)(n + 1));
    double *a = xmalloc(sizeof(double) * (size_t)(n + 1)), *b = xmalloc(sizeof(double) * (size_t)(n + 1));
    const TraceEvent *ev = (const TraceEvent *)all;
    int64_t i = 0;
    for (int r = 0; r < g->W; r++)
        for (size_t k = 0; k < lens[r] / sizeof(TraceEvent); k++, i++)
            st[i] = step, rk[i] = r, kd[i] = ev[i].kind, a[i] = ev[i].t0, b[i] = ev[i].t1;
    int rc = run && (store_append_i64(run, "/trace/step", st, n, "optimizer step the interval belongs to", e) ||
                     store_append_i64(run, "/trace/rank", rk, n, "MPI rank", e) ||
                     store_append_i64(run, "/trace/kind", kd, n, "0 compute, 1 comm, 2 wait, 3 optim", e) ||
                     store_append_f64(run, "/trace/t0", a, n, "start, s since the trainer started on that rank", e) ||
                     store_append_f64(run, "/trace/t1", b, n, "end, s since the trainer started on that rank", e));
    free(st), free(rk), free(kd), free(a), free(b), free(all), free(lens);
    return rc ? -1 : 0;
}

int gradsync_pending(GradSync *g) {
    lock(g);
    int n = g->ready - (g->next - g->inflight);
    unlock(g);
    return n;
}

void gradsync_totals(const GradSync *g, double *comm, double *hidden) {
    *comm = g->comm_total;
    *hidden = g->hidden_total;
}
