/* test_util -- base/util.h: errors (err_set/prefix/suffix, truncation,
 * aliasing), xasprintf, the growable arrays, the RNG (xoshiro256** values
 * from an independent reference, determinism, bounds and the absence of
 * modulo bias in rng_below, rng_derive independence), the file helpers and
 * their errors, util_parse_option (both forms, "--x=", a missing value, an
 * unknown option, repeats, values that look like options), the thread pool's partition (every index exactly once, chunk
 * k on thread k, the same chunks every call, for 1..4 threads) and the stop
 * signals (in forked children: a signal sets the flag once, for good). */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "test.h"

static void test_errors(void) {
    Err e;
    EXPECT(err_set(&e, "%s:%d: bad %s", "f.json", 7, "key") == -1 && !strcmp(e.msg, "f.json:7: bad key"), "%s", e.msg);
    EXPECT(err_set(NULL, "x") == -1, "err_set(NULL) returns -1");
    EXPECT(err_prefix(NULL, "x") == -1 && err_suffix(NULL, "x") == -1, "NULL Err accepted");
    err_set(&e, "middle");
    EXPECT(err_prefix(&e, "%s: ", "data.h5") == -1 && !strcmp(e.msg, "data.h5: middle"), "%s", e.msg);
    EXPECT(err_suffix(&e, " (hint: %d)", 3) == -1 && !strcmp(e.msg, "data.h5: middle (hint: 3)"), "%s", e.msg);
    /* aliasing: the old message as an argument */
    err_set(&e, "abc");
    err_prefix(&e, "%s/", e.msg);
    EXPECT(!strcmp(e.msg, "abc/abc"), "prefix with its own message: %s", e.msg);
    err_suffix(&e, "+%s", e.msg);
    EXPECT(!strcmp(e.msg, "abc/abc+abc/abc"), "suffix with its own message: %s", e.msg);
    /* one line, whatever the arguments hold (a value quoted from a config.json with a newline made a
     * two-line error: found by fuzz_hf_config) */
    err_set(&e, "%s: rope_type: %s is not supported", "c.json", "default\r\nx");
    err_prefix(&e, "a\n");
    err_suffix(&e, "\n(hint: %s)", "y\nz");
    EXPECT(!strcmp(e.msg, "a c.json: rope_type: default  x is not supported (hint: y z)"), "not one line: %s", e.msg);
    /* the message is not a format */
    err_set(&e, "%s", "100%s%n");
    err_prefix(&e, "p ");
    EXPECT(!strcmp(e.msg, "p 100%s%n"), "message reinterpreted: %s", e.msg);
    /* long texts are truncated, always NUL-terminated */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    err_set(&e, "%s", big);
    EXPECT(strlen(e.msg) == sizeof e.msg - 1, "err_set truncates to %zu: %zu", sizeof e.msg - 1, strlen(e.msg));
    err_set(&e, "%s", big + 1500); /* 499 x */
    err_prefix(&e, "%s", big + 1600);  /* 399 y... (x) */
    EXPECT(strlen(e.msg) == sizeof e.msg - 1, "prefix truncates: %zu", strlen(e.msg));
    err_set(&e, "%s", big + 1300);
    err_suffix(&e, "%s", big + 1500);
    EXPECT(strlen(e.msg) == sizeof e.msg - 1, "suffix truncates: %zu", strlen(e.msg));
    err_set(&e, "tail");
    err_prefix(&e, "%s", big); /* a very long prefix is cut, the message kept whole */
    EXPECT(strlen(e.msg) < sizeof e.msg && e.msg[0] == 'x' && util_ends_with(e.msg, "xtail"), "long prefix: %zu",
           strlen(e.msg));
    EXPECT(status_exit_code(STATUS_OK, 7) == EXIT_OK && status_exit_code(STATUS_STOPPED, 7) == EXIT_STOPPED &&
               status_exit_code(STATUS_FAILED, 7) == 7 && status_exit_code(STATUS_FAILED, EXIT_USAGE) == 2,
           "status_exit_code");
    EXPECT(EXIT_OK == 0 && EXIT_RUNTIME == 1 && EXIT_USAGE == 2 && EXIT_STOPPED == 3, "documented exit codes");
}

static void test_strings_and_arrays(void) {
    char *s = xasprintf("%d-%s-%.2f", 42, "ab", 1.5);
    EXPECT(!strcmp(s, "42-ab-1.50"), "%s", s);
    free(s);
    char big[5000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = 0;
    s = xasprintf("<%s>", big);
    EXPECT(strlen(s) == sizeof big + 1 && s[0] == '<' && s[sizeof big] == '>', "long xasprintf: %zu", strlen(s));
    free(s);
    s = xstrndup("abcdef", 3);
    EXPECT(!strcmp(s, "abc"), "xstrndup %s", s);
    free(s);
    float *al = xmalloc_aligned(100);
    EXPECT(((uintptr_t)al & 63) == 0, "64-byte aligned");
    int zero = 1;
    for (int i = 0; i < 25; i++) zero &= al[i] == 0.0f;
    EXPECT(zero, "xmalloc_aligned zeroes");
    free(al);

    IntVec v = {0};
    for (int i = 0; i < 100000; i++) intvec_push(&v, i * 3 - 7);
    int ok = v.n == 100000 && v.cap >= v.n;
    for (int i = 0; i < 100000 && ok; i++) ok = v.a[i] == i * 3 - 7;
    EXPECT(ok, "IntVec keeps 100000 pushes (n %zu cap %zu)", v.n, v.cap);
    size_t cap = v.cap;
    intvec_reserve(&v, 10);
    EXPECT(v.cap == cap && v.n == 100000, "reserve never shrinks");
    intvec_reserve(&v, cap + 1);
    EXPECT(v.cap >= cap + 1 && v.a[99999] == 99999 * 3 - 7, "reserve grows and keeps");
    intvec_free(&v);
    EXPECT(v.a == NULL && v.n == 0 && v.cap == 0, "intvec_free resets");
    intvec_free(NULL);
    IntVec r = {0};
    intvec_reserve(&r, 1000);
    EXPECT(r.cap >= 1000 && r.n == 0, "reserve on empty");
    intvec_free(&r);

    StrVec sv = {0};
    char buf[32];
    for (int i = 0; i < 300; i++) {
        snprintf(buf, sizeof buf, "s%d", i);
        strvec_push(&sv, buf, (size_t)-1);
    }
    strvec_push(&sv, "abcdef", 2);
    strvec_push(&sv, "", (size_t)-1);
    ok = sv.n == 302 && !strcmp(sv.a[0], "s0") && !strcmp(sv.a[299], "s299") && !strcmp(sv.a[300], "ab") &&
         !strcmp(sv.a[301], "");
    EXPECT(ok, "StrVec copies (n %zu)", sv.n);
    buf[0] = 'Z'; /* the vector holds copies */
    EXPECT(sv.a[299][0] == 's', "StrVec holds copies");
    strvec_free(&sv);
    EXPECT(sv.a == NULL && sv.n == 0, "strvec_free resets");
    strvec_free(NULL);

    ByteBuf b = {0};
    bytebuf_putc(&b, 'a');
    EXPECT(b.n == 1 && b.a[1] == 0, "putc NUL-terminates");
    bytebuf_put(&b, "b\0c", 3);
    EXPECT(b.n == 4 && !memcmp(b.a, "ab\0c", 4) && b.a[4] == 0, "binary put");
    for (int i = 0; i < 1000; i++) bytebuf_printf(&b, "[%d]", i);
    size_t want = 4;
    for (int i = 0; i < 1000; i++) want += (size_t)snprintf(buf, sizeof buf, "[%d]", i);
    EXPECT(b.n == want && b.a[b.n] == 0 && b.cap > b.n && !memcmp(b.a + b.n - 5, "[999]", 5), "printf growth %zu/%zu",
           b.n, want);
    bytebuf_printf(&b, "%s", big);
    EXPECT(b.n == want + sizeof big - 1 && b.a[b.n] == 0, "one large printf");
    bytebuf_free(&b);
    EXPECT(b.a == NULL && b.n == 0 && b.cap == 0, "bytebuf_free resets");
    ByteBuf e0 = {0};
    bytebuf_printf(&e0, "%s", "");
    EXPECT(e0.a && e0.a[0] == 0 && e0.n == 0, "empty printf gives \"\"");
    bytebuf_free(&e0);
    bytebuf_free(NULL);
    EXPECT(!strcmp(util_basename("a/b/c.h5"), "c.h5") && !strcmp(util_basename("c.h5"), "c.h5") &&
               !strcmp(util_basename("dir/"), ""),
           "util_basename");
    EXPECT(util_ends_with("x.h5", ".h5") && !util_ends_with("h5", ".h5") && util_ends_with("x", "") &&
               !util_ends_with("x.h5.bad", ".h5"),
           "util_ends_with");
}

static void test_rng(void) {
    /* values of xoshiro256** seeded by splitmix64 (Blackman & Vigna's reference
     * algorithms, computed independently in Python) */
    static const uint64_t want0[4] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL, 0x1a5f849d4933e6e0ULL,
                                      0x6aa594f1262d2d2cULL};
    static const uint64_t want42[4] = {0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL, 0xae17533239e499a1ULL,
                                       0xecb8ad4703b360a1ULL};
    Rng r, q;
    rng_seed(&r, 0);
    int ok = 1;
    for (int i = 0; i < 4; i++) ok &= rng_u64(&r) == want0[i];
    rng_seed(&r, 42);
    for (int i = 0; i < 4; i++) ok &= rng_u64(&r) == want42[i];
    EXPECT(ok, "xoshiro256** reference values");
    /* determinism; the state is all there is (a copy continues identically) */
    rng_seed(&r, 7), rng_seed(&q, 7);
    ok = 1;
    for (int i = 0; i < 1000; i++) ok &= rng_u64(&r) == rng_u64(&q);
    Rng copy = r;
    for (int i = 0; i < 100; i++) ok &= rng_u64(&r) == rng_u64(&copy);
    EXPECT(ok, "same seed, same stream; a copied state continues it");
    rng_seed(&q, 8);
    EXPECT(rng_u64(&r) != rng_u64(&q), "another seed, another stream");
    /* floats: the documented number of random bits, in [0, 1) */
    rng_seed(&r, 3);
    int fbits = 1, dbits = 1, range = 1;
    double mean = 0, var = 0;
    for (int i = 0; i < 100000; i++) {
        float f = rng_float(&r);
        double d = rng_double(&r);
        range &= f >= 0 && f < 1 && d >= 0 && d < 1;
        fbits &= ldexp((double)f, 24) == floor(ldexp((double)f, 24));
        dbits &= ldexp(d, 53) == floor(ldexp(d, 53));
        double z = rng_normal(&r);
        mean += z, var += z * z;
    }
    mean /= 100000, var = var / 100000 - mean * mean;
    EXPECT(range && fbits && dbits, "rng_float/rng_double in [0,1) with 24/53 bits");
    EXPECT(fabs(mean) < 0.02 && fabs(var - 1) < 0.03, "rng_normal mean %g var %g", mean, var);
    /* rng_below: bounds, uniform buckets, and no modulo bias: for
     * n = 3 * 2^62, x % n would put half the draws below 2^62 (1/3 is right) */
    rng_seed(&r, 11);
    int counts[10] = {0};
    int inb = 1;
    for (int i = 0; i < 200000; i++) {
        uint64_t x = rng_below(&r, 10);
        inb &= x < 10;
        if (x < 10) counts[x]++;
    }
    int flat = 1;
    for (int k = 0; k < 10; k++) flat &= counts[k] > 19000 && counts[k] < 21000;
    EXPECT(inb && flat, "rng_below(10): %d %d %d ... %d", counts[0], counts[1], counts[2], counts[9]);
    uint64_t big = 3ULL << 62;
    int low = 0, inbig = 1;
    for (int i = 0; i < 30000; i++) {
        uint64_t x = rng_below(&r, big);
        inbig &= x < big;
        low += x < (1ULL << 62);
    }
    EXPECT(inbig && low > 9300 && low < 10700, "rng_below(3*2^62): %d of 30000 below 2^62 (want ~10000)", low);
    int one = 1;
    for (int i = 0; i < 100; i++) one &= rng_below(&r, 1) == 0;
    EXPECT(one, "rng_below(1) is 0");
    uint64_t top = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng_below(&r, UINT64_MAX);
        if (x > top) top = x;
    }
    EXPECT(top > (UINT64_MAX / 4) * 3, "rng_below(UINT64_MAX) reaches the top quarter");
    /* rng_derive: a pure function; every argument matters; no collisions on a
     * grid; flipping one input bit flips about half the output bits */
    EXPECT(rng_derive(1, 2, 3) == rng_derive(1, 2, 3), "rng_derive is deterministic");
    EXPECT(rng_derive(1, 2, 3) != rng_derive(1, 3, 2) && rng_derive(1, 2, 3) != rng_derive(2, 1, 3) &&
               rng_derive(0, 0, 1) != rng_derive(0, 1, 0),
           "argument order matters");
    enum { G = 48 };
    uint64_t *all = xmalloc(sizeof(uint64_t) * G * G * 8);
    size_t na = 0;
    for (uint64_t s = 0; s < 8; s++)
        for (uint64_t a = 0; a < G; a++)
            for (uint64_t i = 0; i < G; i++) all[na++] = rng_derive(s, a, i);
    int coll = 0;
    for (size_t i = 0; i < na; i++)
        for (size_t j = i + 1; j < na && j < i + 200; j++) coll += all[i] == all[j];
    free(all);
    EXPECT(coll == 0, "%d collisions among neighbouring derived seeds", coll);
    double flips = 0;
    int nflip = 0;
    for (uint64_t t = 0; t < 64; t++)
        for (int bit = 0; bit < 64; bit += 7) {
            uint64_t base = rng_derive(t, t * 3, t * 5);
            flips += __builtin_popcountll(base ^ rng_derive(t ^ (1ULL << bit), t * 3, t * 5));
            flips += __builtin_popcountll(base ^ rng_derive(t, (t * 3) ^ (1ULL << bit), t * 5));
            flips += __builtin_popcountll(base ^ rng_derive(t, t * 3, (t * 5) ^ (1ULL << bit)));
            nflip += 3;
        }
    flips /= nflip;
    EXPECT(flips > 30 && flips < 34, "avalanche: %.2f of 64 bits flip", flips);
    /* streams seeded from neighbouring derived seeds are uncorrelated */
    Rng s1, s2;
    rng_seed(&s1, rng_derive(5, 1, 0)), rng_seed(&s2, rng_derive(5, 1, 1));
    double sxy = 0, sx = 0, sy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < 20000; i++) {
        double x = rng_double(&s1), y = rng_double(&s2);
        sxy += x * y, sx += x, sy += y, sxx += x * x, syy += y * y;
    }
    double n = 20000, corr = (sxy / n - sx / n * sy / n) / sqrt((sxx / n - sx / n * sx / n) * (syy / n - sy / n * sy / n));
    EXPECT(fabs(corr) < 0.03, "correlation of derived streams %g", corr);
}

static void test_files(const char *dir) {
    Err e;
    char path[512], other[600];
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    EXPECT(util_mkdir_p(path, &e) == 0 && util_file_exists(path), "mkdir -p: %s", e.msg);
    EXPECT(util_mkdir_p(path, &e) == 0, "mkdir -p of an existing directory: %s", e.msg);
    snprintf(other, sizeof other, "%s/a/b/d/", dir);
    EXPECT(util_mkdir_p(other, &e) == 0, "trailing slash: %s", e.msg);
    snprintf(path, sizeof path, "%s/file", dir);
    test_write_file(path, "x", -1);
    snprintf(other, sizeof other, "%s/file/sub", dir);
    e.msg[0] = 0;
    EXPECT(util_mkdir_p(other, &e) != 0 && strstr(e.msg, "/file"), "mkdir through a file: %s", e.msg);
    EXPECT(util_mkdir_p(path, &e) != 0 && strstr(e.msg, path) && strstr(e.msg, "not a directory"),
           "mkdir -p of a file: %s", e.msg);
    /* read: contents with NULs, empty files, missing files, directories */
    snprintf(path, sizeof path, "%s/bin", dir);
    test_write_file(path, "a\0b\nc", 5);
    size_t len = 0;
    char *t = util_read_file(path, &len, &e);
    EXPECT(t && len == 5 && !memcmp(t, "a\0b\nc", 5) && t[5] == 0, "read back with NULs");
    free(t);
    snprintf(path, sizeof path, "%s/empty", dir);
    test_write_file(path, "", 0);
    len = 99;
    t = util_read_file(path, &len, &e);
    EXPECT(t && len == 0 && t[0] == 0, "empty file reads as \"\"");
    free(t);
    snprintf(path, sizeof path, "%s/missing.json", dir);
    t = util_read_file(path, &len, &e);
    EXPECT(!t && strstr(e.msg, path) && strstr(e.msg, "No such file"), "missing: %s", e.msg);
    t = util_read_file(dir, &len, &e);
    EXPECT(!t && strstr(e.msg, dir), "a directory: %s", t ? "read" : e.msg);
    free(t);
    /* 200 KB: more than one read buffer */
    char *bigf = xmalloc(200001);
    for (int i = 0; i < 200000; i++) bigf[i] = (char)('a' + i % 26);
    snprintf(path, sizeof path, "%s/big", dir);
    test_write_file(path, bigf, 200000);
    t = util_read_file(path, &len, &e);
    EXPECT(t && len == 200000 && !memcmp(t, bigf, 200000), "200 KB read back");
    free(t), free(bigf);
    /* rename_durable */
    char tmp[600], fin[600];
    snprintf(tmp, sizeof tmp, "%s/x.tmp", dir);
    snprintf(fin, sizeof fin, "%s/x", dir);
    test_write_file(tmp, "payload", -1);
    test_write_file(fin, "old", -1);
    EXPECT(util_rename_durable(tmp, fin, &e) == 0, "%s", e.msg);
    t = test_read_file(fin, NULL);
    EXPECT(!util_file_exists(tmp) && t && !strcmp(t, "payload"), "renamed over the old file");
    free(t);
    EXPECT(util_rename_durable(tmp, fin, &e) != 0 && strstr(e.msg, tmp), "missing source: %s", e.msg);
    snprintf(other, sizeof other, "%s/nodir/x", dir);
    test_write_file(tmp, "p", -1);
    EXPECT(util_rename_durable(tmp, other, &e) != 0 && strstr(e.msg, tmp) && strstr(e.msg, other),
           "rename into a missing directory: %s", e.msg);
    EXPECT(util_fsync_path(fin) == 0 && util_fsync_path(other) != 0, "util_fsync_path");
    EXPECT(util_file_exists(fin) && !util_file_exists(other), "util_file_exists");
}

/* ---- thread pool ---- */
enum { MAXT = 4, MAXN = 1000 };
typedef struct {
    _Atomic int hits[MAXN];
    long begin[MAXT], end[MAXT];
    _Atomic int calls[MAXT];
    pthread_t who[MAXT];
    _Atomic int bad_tid;
} Cover;

static void cover_fn(void *ctx, long b, long e, int tid) {
    Cover *c = ctx;
    if (tid < 0 || tid >= MAXT) {
        c->bad_tid = 1;
        return;
    }
    c->begin[tid] = b, c->end[tid] = e;
    c->who[tid] = pthread_self();
    c->calls[tid]++;
    for (long i = b; i < e; i++) c->hits[i]++;
}

static void test_par_for(void) {
    long ns[] = {1, 2, 3, 4, 5, 7, 64, 999, 1000};
    for (int nt = 1; nt <= 4; nt++) {
        par_init(nt);
        EXPECT(par_nthreads() == nt, "par_nthreads %d", par_nthreads());
        for (size_t q = 0; q < sizeof ns / sizeof ns[0]; q++) {
            long n = ns[q];
            Cover *c = xcalloc(1, sizeof *c), *c2 = xcalloc(1, sizeof *c2);
            for (int rep = 0; rep < 2; rep++) par_for(n, 1, cover_fn, rep ? c2 : c);
            int once = 1;
            for (long i = 0; i < n; i++) once &= c->hits[i] == 1;
            for (long i = n; i < MAXN; i++) once &= c->hits[i] == 0;
            /* chunk k on thread k, contiguous and in order, the same both times */
            int chunks = !c->bad_tid, same = 1, distinct = 1;
            long at = 0;
            for (int k = 0; k < nt; k++) {
                if (c->calls[k] > 1) chunks = 0;
                if (c->calls[k] == 0) continue;
                chunks &= c->begin[k] == at && c->end[k] > c->begin[k];
                at = c->end[k];
                same &= c2->calls[k] == c->calls[k] && c2->begin[k] == c->begin[k] && c2->end[k] == c->end[k];
                for (int j = 0; j < k; j++)
                    if (c->calls[j]) distinct &= !pthread_equal(c->who[j], c->who[k]);
            }
            chunks &= at == n;
            EXPECT(once, "%d threads, n=%ld: an index not covered exactly once", nt, n);
            EXPECT(chunks, "%d threads, n=%ld: chunks are not contiguous, in thread order", nt, n);
            EXPECT(same, "%d threads, n=%ld: another partition the second time", nt, n);
            EXPECT(distinct, "%d threads, n=%ld: two chunks on one thread", nt, n);
            EXPECT(c->calls[0] == 1 && pthread_equal(c->who[0], pthread_self()), "the caller takes chunk 0");
            if (n >= nt) {
                int used = 0;
                for (int k = 0; k < nt; k++) used += c->calls[k] == 1;
                EXPECT(used == nt, "%d threads, n=%ld: %d chunks", nt, n, used);
            }
            free(c), free(c2);
        }
        /* n < grain: inline on the caller */
        Cover *c = xcalloc(1, sizeof *c);
        par_for(100, 1000, cover_fn, c);
        EXPECT(c->calls[0] == 1 && c->begin[0] == 0 && c->end[0] == 100 && pthread_equal(c->who[0], pthread_self()),
               "%d threads: n < grain runs inline", nt);
        free(c);
        c = xcalloc(1, sizeof *c);
        par_for(0, 1, cover_fn, c);
        EXPECT(c->calls[0] == 0 && c->calls[1] == 0, "n = 0 calls nothing");
        free(c);
    }
    par_init(2);
    par_init(2); /* idempotent */
    EXPECT(par_nthreads() == 2, "idempotent par_init");
    par_shutdown();
    EXPECT(par_nthreads() == 1, "shutdown leaves one thread");
    Cover *c = xcalloc(1, sizeof *c);
    par_for(10, 1, cover_fn, c);
    EXPECT(c->calls[0] == 1 && c->end[0] == 10, "par_for after shutdown runs inline");
    free(c);
}

/* ---- stop signals, each in its own child (the flag is sticky) ---- */
static int child_signal(void *ctx) {
    int sig = *(int *)ctx;
    util_install_stop_signals();
    EXPECT(util_stop_signal() == 0, "no signal yet");
    raise(sig);
    EXPECT(util_stop_signal() == sig, "signal %d recorded as %d", sig, util_stop_signal());
    raise(sig == SIGTERM ? SIGINT : SIGTERM); /* a second one neither kills nor replaces the first */
    EXPECT(util_stop_signal() == sig, "the first signal is kept (%d)", util_stop_signal());
    return 0;
}

/* parses argv[1..] like the subcommands do (every argument an option); "name=value;" per option into out,
 * or the error; returns the number parsed or -1 */
static int parse_all(int argc, char **argv, char *out, size_t cap) {
    static const char *const names[] = {"--input", "--set", "--model", "--model-name", "--x", NULL};
    out[0] = 0;
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        Err e = {{0}};
        int k = util_parse_option(argc, argv, &i, names, &v, " (hint: h)", &e);
        if (k < 0) {
            snprintf(out, cap, "%s @%d", e.msg, i);
            return -1;
        }
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s=%s;", names[k], v);
        n++;
    }
    return n;
}

static void test_options(void) {
    char out[1024];
#define PARSE(want_n, want, ...)                                                                                  \
    do {                                                                                                          \
        char *args[] = {"prog", __VA_ARGS__};                                                                     \
        int n_ = parse_all((int)(sizeof args / sizeof args[0]), args, out, sizeof out);                           \
        EXPECT(n_ == (want_n) && !strcmp(out, want), "%s: %d '%s', want %d '%s'", #__VA_ARGS__, n_, out, want_n, \
               want);                                                                                             \
    } while (0)
    PARSE(2, "--input=a b;--input=c;", "--input=a b", "--input", "c");
    PARSE(1, "--x=;", "--x=");                                        /* an empty value, the next argument kept */
    PARSE(2, "--x=;--input=y;", "--x=", "--input", "y");
    PARSE(1, "--set=a.b=c=d;", "--set=a.b=c=d");                       /* the first '=' splits */
    PARSE(1, "--set=a.b=1;", "--set", "a.b=1");
    /* a value that looks like an option is the value */
    PARSE(1, "--input=--json;", "--input", "--json");
    PARSE(1, "--input=--model;", "--input=--model");
    PARSE(2, "--input=--input;--input=x;", "--input", "--input", "--input", "x");
    /* repeats: every occurrence, in order */
    PARSE(3, "--input=a;--input=b;--input=c;", "--input", "a", "--input=b", "--input", "c");
    PARSE(2, "--model=m;--model=n;", "--model=m", "--model", "n");
    /* names match whole, never by prefix */
    PARSE(2, "--model-name=m;--model=n;", "--model-name", "m", "--model=n");
    PARSE(-1, "unknown option '--mod' (hint: h) @1", "--mod=x");
    PARSE(-1, "unknown option '--model-' (hint: h) @1", "--model-", "x");
    PARSE(-1, "unknown option '--inputs' (hint: h) @3", "--input", "a", "--inputs=b");
    /* missing value: only when nothing follows */
    PARSE(-1, "--input needs a value (hint: h) @1", "--input");
    PARSE(-1, "--set needs a value (hint: h) @3", "--input", "a", "--set");
    /* unknown: named without its value, checked before the value (nothing consumed) */
    PARSE(-1, "unknown option '--nope' (hint: h) @1", "--nope=1");
    PARSE(-1, "unknown option '--nope' (hint: h) @1", "--nope", "1");
    PARSE(-1, "unknown option '--nope' (hint: h) @1", "--nope");
    PARSE(-1, "unknown option '-x' (hint: h) @1", "-x");
    PARSE(-1, "unknown option '--' (hint: h) @1", "--", "a");
    PARSE(-1, "unknown option '--a-very-long-option-name-longer-than-any-buffer-of-sixty-four-bytes' (hint: h) @1",
          "--a-very-long-option-name-longer-than-any-buffer-of-sixty-four-bytes=1");
#undef PARSE
    /* no hint; e may be NULL */
    static const char *const one[] = {"--port", NULL};
    char *argv[] = {"prog", "--port"};
    const char *v = "unchanged";
    Err e = {{0}};
    int i = 1;
    EXPECT(util_parse_option(2, argv, &i, one, &v, "", &e) == -1 && !strcmp(e.msg, "--port needs a value") && i == 1 &&
               !strcmp(v, "unchanged"),
           "no hint: '%s', i %d", e.msg, i);
    EXPECT(util_parse_option(2, argv, &i, one, &v, "", NULL) == -1, "e NULL");
}

int main(void) {
    test_errors();
    test_strings_and_arrays();
    test_options();
    test_rng();
    char *dir = test_tmpdir("util");
    test_files(dir);
    test_rm_rf(dir);
    EXPECT(!util_file_exists(dir), "temporary directory removed");
    free(dir);
    test_par_for();
    int sigs[] = {SIGUSR1, SIGTERM, SIGINT};
    for (int i = 0; i < 3; i++)
        EXPECT(test_fork(child_signal, &sigs[i], NULL) == 0, "signal %d: the child was killed or failed", sigs[i]);
    return test_summary();
}
