/* util -- see include/base/util.h.  Errors, logging, allocation, arrays, RNG,
 * time, file helpers, command-line options and the kernel thread pool. */
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors ------------------------------------------------------------- */

static int g_rank = 0;
static int g_quiet = 0;
static void (*g_abort_hook)(int) = NULL;

int status_exit_code(Status s, int failed_code) {
    return s == STATUS_OK ? EXIT_OK : s == STATUS_STOPPED ? EXIT_STOPPED : s == STATUS_BUDGET ? EXIT_BUDGET : failed_code;
}

/* Line breaks in a message (from a value quoted out of a file) become
 * spaces: an Err is one line (a JSON string with a newline in a config.json
 * made a two-line error: found by fuzz_hf_config). */
static void err_one_line(Err *e) {
    for (char *p = e->msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

int err_set(Err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        err_one_line(e);
    }
    return -1;
}

int err_prefix(Err *e, const char *fmt, ...) {
    if (!e) return -1;
    char pre[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t a = strnlen(pre, sizeof pre), b = strnlen(old, sizeof old - 1), cap = sizeof e->msg - 1;
    if (a > cap) a = cap;
    if (b > cap - a) b = cap - a;
    memcpy(e->msg, pre, a);
    memcpy(e->msg + a, old, b);
    e->msg[a + b] = 0;
    err_one_line(e);
    return -1;
}

int err_suffix(Err *e, const char *fmt, ...) {
    if (!e) return -1;
    char suf[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(suf, sizeof suf, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t a = strnlen(old, sizeof old - 1), b = strnlen(suf, sizeof suf), cap = sizeof e->msg - 1;
    if (b > cap - a) b = cap - a;
    memcpy(e->msg + a, suf, b);
    e->msg[a + b] = 0;
    err_one_line(e);
    return -1;
}

void util_set_abort_hook(void (*hook)(int)) { g_abort_hook = hook; }
void util_set_rank(int rank) { g_rank = rank; }
int util_rank(void) { return g_rank; }

void util_die(const char *file, int line, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "[rank %d] %s:%d: %s\n", g_rank, file, line, msg);
    fflush(stderr);
    if (g_abort_hook) g_abort_hook(EXIT_RUNTIME);
    abort();
}

void util_check_failed(const char *file, int line, const char *cond, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    util_die(file, line, "check failed: %s -- %s", cond, msg);
}

/* ---- logging ------------------------------------------------------------ */

void log_set_quiet(int quiet) { g_quiet = quiet; }

void log_info(const char *fmt, ...) {
    if (g_rank != 0 || g_quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static void log_stderr(const char *what, const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fflush(stdout);
    fprintf(stderr, "[rank %d] %s%s\n", g_rank, what, msg);
    fflush(stderr);
}

void log_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_stderr("warning: ", fmt, ap);
    va_end(ap);
}

void log_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_stderr("error: ", fmt, ap);
    va_end(ap);
}

/* ---- allocation --------------------------------------------------------- */

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) DIE("out of memory allocating %zu bytes (hint: smaller model or batch)", n);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) DIE("out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) DIE("out of memory reallocating %zu bytes", n);
    return q;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void *xmalloc_aligned(size_t n) {
    void *p = NULL;
    size_t sz = (n + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, sz ? sz : 64) != 0)
        DIE("out of memory allocating %zu bytes (hint: smaller model or batch)", n);
    memset(p, 0, sz ? sz : 64);
    return p;
}

char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    CHECK(n >= 0, "bad format");
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- arrays --------------------------------------------------------------- */

void intvec_reserve(IntVec *v, size_t cap) {
    if (cap <= v->cap) return;
    size_t c = v->cap ? v->cap : 16;
    while (c < cap) c *= 2;
    v->a = xrealloc(v->a, c * sizeof *v->a);
    v->cap = c;
}

void intvec_push(IntVec *v, int x) {
    if (v->n == v->cap) intvec_reserve(v, v->n + 1);
    v->a[v->n++] = x;
}

void intvec_free(IntVec *v) {
    if (!v) return;
    free(v->a);
    v->a = NULL;
    v->n = v->cap = 0;
}

void strvec_push(StrVec *v, const char *s, size_t len) {
    if (len == (size_t)-1) len = strlen(s);
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 64;
        v->a = xrealloc(v->a, sizeof(char *) * v->cap);
    }
    v->a[v->n++] = xstrndup(s, len);
}

void strvec_free(StrVec *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) free(v->a[i]);
    free(v->a);
    v->a = NULL;
    v->n = v->cap = 0;
}

static void bytebuf_grow(ByteBuf *b, size_t extra) {
    size_t need = b->n + extra + 1;
    if (need <= b->cap) return;
    size_t c = b->cap ? b->cap : 64;
    while (c < need) c *= 2;
    b->a = xrealloc(b->a, c);
    b->cap = c;
}

void bytebuf_put(ByteBuf *b, const void *p, size_t n) {
    bytebuf_grow(b, n);
    if (n) memcpy(b->a + b->n, p, n);
    b->n += n;
    b->a[b->n] = 0;
}

void bytebuf_putc(ByteBuf *b, char c) { bytebuf_put(b, &c, 1); }

void bytebuf_put_json_string(ByteBuf *b, const char *s) {
    bytebuf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': bytebuf_put(b, "\\\"", sizeof "\\\"" - 1); break;
        case '\\': bytebuf_put(b, "\\\\", sizeof "\\\\" - 1); break;
        case '\n': bytebuf_put(b, "\\n", sizeof "\\n" - 1); break;
        case '\r': bytebuf_put(b, "\\r", sizeof "\\r" - 1); break;
        case '\t': bytebuf_put(b, "\\t", sizeof "\\t" - 1); break;
        default:
            if (*p < 0x20) bytebuf_printf(b, "\\u%04x", *p);
            else bytebuf_putc(b, (char)*p);
        }
    }
    bytebuf_putc(b, '"');
}

void bytebuf_printf(ByteBuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    CHECK(n >= 0, "bad format");
    bytebuf_grow(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->a + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

void bytebuf_free(ByteBuf *b) {
    if (!b) return;
    free(b->a);
    b->a = NULL;
    b->n = b->cap = 0;
}

/* ---- RNG ----------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(Rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_float(Rng *r) { return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f); }
double rng_double(Rng *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double rng_normal(Rng *r) {
    double u1 = rng_double(r), u2 = rng_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t rng_below(Rng *r, uint64_t n) {
    CHECK(n > 0, "rng_below(0)");
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_u64(r);
    while (x >= limit);
    return x % n;
}

uint64_t rng_derive(uint64_t seed, uint64_t stream, uint64_t index) {
    uint64_t x = seed ^ 0x6a09e667f3bcc909ULL;
    uint64_t a = splitmix64(&x);
    x = a ^ (stream * 0xd1b54a32d192ed03ULL);
    uint64_t b = splitmix64(&x);
    x = b ^ (index * 0x8cb92ba72f3d8dd7ULL);
    return splitmix64(&x);
}

/* ---- time ---------------------------------------------------------------- */

double util_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double util_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- files ----------------------------------------------------------------- */

char *util_read_file(const char *path, size_t *len, Err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(e, "%s: %s", path, strerror(errno));
        return NULL;
    }
    ByteBuf b = {0};
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) bytebuf_put(&b, tmp, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        bytebuf_free(&b);
        err_set(e, "%s: read error", path);
        return NULL;
    }
    if (!b.a) bytebuf_put(&b, "", 0);
    if (len) *len = b.n;
    return b.a;
}

int util_mkdir_p(const char *path, Err *e) {
    char *p = xstrdup(path);
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == 0) {
            char c = p[i];
            p[i] = 0;
            if (mkdir(p, 0775) != 0 && errno != EEXIST) {
                err_set(e, "%s: cannot create directory: %s", p, strerror(errno));
                free(p);
                return -1;
            }
            p[i] = c;
        }
    }
    free(p);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(e, "%s: not a directory", path);
    return 0;
}

int util_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int fsync_fd_path(const char *path, int dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static char *dirname_of(const char *path) {
    const char *s = strrchr(path, '/');
    if (!s) return xstrdup(".");
    if (s == path) return xstrdup("/");
    return xstrndup(path, (size_t)(s - path));
}

int util_fsync_path(const char *path) {
    if (fsync_fd_path(path, 0) != 0) return -1;
    char *d = dirname_of(path);
    int rc = fsync_fd_path(d, 1);
    free(d);
    return rc;
}

int util_copy_file(const char *from, const char *to, Err *e) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return err_set(e, "%s: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return err_set(e, "%s: %s", to, strerror(errno));
    }
    int rc = 0;
    ssize_t r;
    while ((r = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0)) > 0) {
    }
    if (r < 0) { /* e.g. across file systems on old kernels: copy by hand */
        if (lseek(in, 0, SEEK_SET) < 0 || ftruncate(out, 0) != 0 || lseek(out, 0, SEEK_SET) < 0)
            rc = err_set(e, "%s: cannot rewind for copying: %s", to, strerror(errno));
        char buf[1 << 16];
        while (rc == 0 && (r = read(in, buf, sizeof buf)) > 0)
            for (ssize_t done = 0; done < r && rc == 0;) {
                ssize_t w = write(out, buf + done, (size_t)(r - done));
                if (w <= 0) rc = err_set(e, "%s: write failed: %s (disk full?)", to, strerror(errno));
                else done += w;
            }
        if (rc == 0 && r < 0) rc = err_set(e, "%s: read failed: %s", from, strerror(errno));
    }
    close(in);
    if (close(out) != 0 && rc == 0) rc = err_set(e, "%s: close failed: %s", to, strerror(errno));
    return rc;
}

int util_write_file_durable(const char *path, const void *data, size_t n, Err *e) {
    char *tmp = xasprintf("%s.tmp", path);
    int rc = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) rc = err_set(e, "%s: %s", tmp, strerror(errno));
    else {
        if (n && fwrite(data, 1, n, f) != n) rc = err_set(e, "%s: write failed: %s (disk full?)", tmp, strerror(errno));
        if (fclose(f) != 0 && rc == 0) rc = err_set(e, "%s: close failed: %s", tmp, strerror(errno));
    }
    if (rc == 0) rc = util_rename_durable(tmp, path, e);
    if (rc != 0) unlink(tmp);
    free(tmp);
    return rc;
}

int util_rename_durable(const char *tmp, const char *final, Err *e) {
    if (fsync_fd_path(tmp, 0) != 0)
        return err_set(e, "%s: fsync failed: %s", tmp, strerror(errno));
    if (rename(tmp, final) != 0)
        return err_set(e, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
    char *d = dirname_of(final);
    fsync_fd_path(d, 1);
    free(d);
    return 0;
}

const char *util_basename(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int util_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* ---- command-line options --------------------------------------------------------- */

int util_parse_option(int argc, char **argv, int *i, const char *const *names, const char **value, const char *hint,
                      Err *e) {
    const char *s = argv[*i], *eq = strchr(s, '=');
    size_t len = eq ? (size_t)(eq - s) : strlen(s);
    int k = 0;
    while (names[k] && !(strlen(names[k]) == len && memcmp(names[k], s, len) == 0)) k++;
    if (!names[k]) return err_set(e, "unknown option '%.*s'%s", (int)len, s, hint);
    if (eq) {
        *value = eq + 1;
    } else {
        if (*i + 1 >= argc) return err_set(e, "%s needs a value%s", s, hint);
        *value = argv[++*i];
    }
    return k;
}

/* ---- exit hooks ---------------------------------------------------------------- */

enum { MAX_EXIT_HOOKS = 16 };
static void (*g_exit_hooks[MAX_EXIT_HOOKS])(void);
static int g_n_exit_hooks;

void util_run_exit_hooks(void) {
    while (g_n_exit_hooks > 0) g_exit_hooks[--g_n_exit_hooks](); /* each once, newest first */
}

void util_on_exit(void (*fn)(void)) {
    CHECK(g_n_exit_hooks < MAX_EXIT_HOOKS, "too many exit hooks");
    if (g_n_exit_hooks == 0) atexit(util_run_exit_hooks);
    g_exit_hooks[g_n_exit_hooks++] = fn;
}

/* ---- stop signals ------------------------------------------------------------ */

static volatile sig_atomic_t g_stop_signal = 0;

static void on_stop_signal(int sig) {
    if (!g_stop_signal) g_stop_signal = sig;
}

void util_install_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int util_stop_signal(void) { return (int)g_stop_signal; }

/* ---- thread pool ------------------------------------------------------------
 * Workers wait for a new "generation" number.  They spin on it for a short
 * while (cheap hand-off between back-to-back kernels) and then sleep on a
 * condition variable, so OpenBLAS's own threads get the cores during GEMMs. */

#define PAR_SPIN_ITERS 2000

typedef struct {
    pthread_t *threads;
    int n; /* threads in all, including the caller */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic unsigned long gen;
    _Atomic int pending;
    _Atomic int stop;
    ParFn fn;
    void *ctx;
    long total;
} Pool;

static Pool g_pool = {.n = 1};

static void par_chunk(long n, int nt, int k, long *b, long *e) {
    long base = n / nt, rem = n % nt;
    *b = k * base + (k < rem ? k : rem);
    *e = *b + base + (k < rem ? 1 : 0);
}

static void *par_worker(void *arg) {
    int tid = (int)(intptr_t)arg;
    unsigned long seen = 0;
    for (;;) {
        unsigned long g;
        int spins = 0;
        while ((g = atomic_load_explicit(&g_pool.gen, memory_order_acquire)) == seen &&
               !atomic_load(&g_pool.stop)) {
            if (++spins < PAR_SPIN_ITERS) {
                __builtin_ia32_pause();
                continue;
            }
            pthread_mutex_lock(&g_pool.mu);
            while (atomic_load(&g_pool.gen) == seen && !atomic_load(&g_pool.stop))
                pthread_cond_wait(&g_pool.cv, &g_pool.mu);
            pthread_mutex_unlock(&g_pool.mu);
        }
        if (atomic_load(&g_pool.stop)) return NULL;
        seen = g;
        long b, e;
        par_chunk(g_pool.total, g_pool.n, tid, &b, &e);
        if (b < e) g_pool.fn(g_pool.ctx, b, e, tid);
        atomic_fetch_sub_explicit(&g_pool.pending, 1, memory_order_acq_rel);
    }
}

void par_shutdown(void) {
    if (g_pool.n <= 1 || !g_pool.threads) {
        g_pool.n = 1;
        return;
    }
    pthread_mutex_lock(&g_pool.mu);
    atomic_store(&g_pool.stop, 1);
    pthread_cond_broadcast(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);
    for (int i = 1; i < g_pool.n; i++) pthread_join(g_pool.threads[i], NULL);
    free(g_pool.threads);
    g_pool.threads = NULL;
    pthread_mutex_destroy(&g_pool.mu);
    pthread_cond_destroy(&g_pool.cv);
    g_pool.n = 1;
}

void par_init(int nthreads) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads == g_pool.n) return;
    par_shutdown();
    g_pool.n = nthreads;
    if (nthreads == 1) return;
    atomic_store(&g_pool.stop, 0);
    atomic_store(&g_pool.gen, 0);
    pthread_mutex_init(&g_pool.mu, NULL);
    pthread_cond_init(&g_pool.cv, NULL);
    g_pool.threads = xcalloc((size_t)nthreads, sizeof(pthread_t));
    for (int i = 1; i < nthreads; i++)
        if (pthread_create(&g_pool.threads[i], NULL, par_worker, (void *)(intptr_t)i) != 0)
            DIE("cannot start kernel thread %d of %d", i, nthreads);
}

int par_nthreads(void) { return g_pool.n; }

void par_for(long n, long grain, ParFn fn, void *ctx) {
    if (n <= 0) return;
    if (g_pool.n <= 1 || n < grain || n < 2) {
        fn(ctx, 0, n, 0);
        return;
    }
    g_pool.fn = fn;
    g_pool.ctx = ctx;
    g_pool.total = n;
    atomic_store(&g_pool.pending, g_pool.n - 1);
    pthread_mutex_lock(&g_pool.mu);
    atomic_fetch_add_explicit(&g_pool.gen, 1, memory_order_release);
    pthread_cond_broadcast(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);
    long b, e;
    par_chunk(n, g_pool.n, 0, &b, &e);
    if (b < e) fn(ctx, b, e, 0);
    while (atomic_load_explicit(&g_pool.pending, memory_order_acquire) > 0) __builtin_ia32_pause();
}
