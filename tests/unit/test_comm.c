/* test_comm -- base/comm.h under mpirun -np 2 (the program re-runs itself
 * under mpirun when started alone, so tests/run_all.sh can run it):
 * in-place allreduce sums (f32, f64, i64) equal the sequential sums,
 * comm_any, comm_max_i64, comm_agree, comm_bcast / bcast_i64, bcast_string (text,
 * UTF-8, "", NULL), bcast_strings (incl. none), gather_bytes in rank order
 * with lengths; and in child jobs, that comm_check_all ends every rank with
 * the same exit code and rank 0 prints the lowest failing rank's message
 * once, that comm_check follows rank 0 only, and that nobody exits when
 * all succeed. */
#include <stdlib.h>
#include <string.h>

#include "base/comm.h"
#include "base/util.h"
#include "test.h"
#include "test_mpi.h"

/* the value of rank r at index i (exactly representable sums) */
static double val(int r, size_t i) { return (double)((int)(i % 1000) - 500) * 0.25 + r * 1024.0 + (double)i; }

static void collectives(const Comm *c) {
    enum { N = 1537 };
    float *f = xmalloc(sizeof(float) * N);
    double *d = xmalloc(sizeof(double) * N);
    int64_t *l = xmalloc(sizeof(int64_t) * N);
    for (size_t i = 0; i < N; i++) f[i] = (float)val(c->rank, i), d[i] = val(c->rank, i) * 1e-3, l[i] = (int64_t)i * (c->rank + 1) * 1000003LL - 7;
    comm_allreduce_sum_f32(f, N);
    comm_allreduce_sum_f64(d, N);
    comm_allreduce_sum_i64(l, N);
    int okf = 1, okd = 1, okl = 1;
    for (size_t i = 0; i < N; i++) {
        float sf = 0;
        double sd = 0;
        int64_t sl = 0;
        for (int r = 0; r < c->size; r++) sf += (float)val(r, i), sd += val(r, i) * 1e-3, sl += (int64_t)i * (r + 1) * 1000003LL - 7;
        okf &= f[i] == sf, okd &= d[i] == sd, okl &= l[i] == sl;
    }
    EXPECT(okf && okd && okl, "allreduce sums f32 %d f64 %d i64 %d", okf, okd, okl);
    comm_allreduce_sum_f64(d, 0); /* nothing to do */
    free(f), free(d), free(l);

    EXPECT(comm_any(c->rank == 1) == 1, "any: one rank");
    EXPECT(comm_any(0) == 0, "any: none");
    EXPECT(comm_any(7) == 1, "any: a non-zero flag is true");
    EXPECT(comm_max_i64(c->rank == 1 ? INT64_MAX - 3 : -5) == INT64_MAX - 3, "max");
    EXPECT(comm_max_i64(-(int64_t)c->rank - 10) == -10, "max of negatives");
    char msg[64];
    snprintf(msg, sizeof msg, "rank %d is fine", c->rank);
    EXPECT(comm_agree(0, msg, sizeof msg) == 0 && strstr(msg, "is fine"), "agree: all succeed, messages kept");
    snprintf(msg, sizeof msg, c->rank ? "rank %d failed" : "rank %d fine", c->rank);
    int rc = comm_agree(c->rank == 1 ? -1 : 0, msg, sizeof msg);
    EXPECT(rc == -1 && !strcmp(msg, "rank 1 failed"), "agree: rank 1 fails: %d '%s'", rc, msg);
    snprintf(msg, sizeof msg, "rank %d failed", c->rank);
    rc = comm_agree(-1, msg, sizeof msg);
    EXPECT(rc == -1 && !strcmp(msg, "rank 0 failed"), "agree: all fail, the lowest rank's message: %d '%s'", rc, msg);

    char buf[300];
    for (int i = 0; i < 300; i++) buf[i] = c->rank == 0 ? (char)(i * 7) : 0;
    comm_bcast(buf, sizeof buf);
    int okb = 1;
    for (int i = 0; i < 300; i++) okb &= buf[i] == (char)(i * 7);
    EXPECT(okb, "bcast of 300 bytes");
    int64_t iv[3] = {c->rank ? 0 : INT64_MIN, c->rank ? 0 : 5, c->rank ? 0 : INT64_MAX};
    comm_bcast_i64(iv, 3);
    EXPECT(iv[0] == INT64_MIN && iv[1] == 5 && iv[2] == INT64_MAX, "bcast_i64");

    char *s = c->rank == 0 ? xstrdup("caf\xC3\xA9 \xE4\xB8\xAD, rank zero's text") : xstrdup("rank one's old text");
    comm_bcast_string(&s);
    EXPECT(s && !strcmp(s, "caf\xC3\xA9 \xE4\xB8\xAD, rank zero's text"), "bcast_string: %s", s ? s : "(null)");
    free(s);
    s = c->rank == 0 ? xstrdup("") : xstrdup("junk");
    comm_bcast_string(&s);
    EXPECT(s && s[0] == 0, "bcast of \"\"");
    free(s);
    s = c->rank == 0 ? NULL : xstrdup("should become NULL");
    comm_bcast_string(&s);
    EXPECT(s == NULL, "NULL is broadcast as NULL");

    char **v = NULL;
    int64_t n = 0;
    if (c->rank == 0) {
        n = 4;
        v = xmalloc(sizeof(char *) * 4);
        v[0] = xstrdup("one"), v[1] = xstrdup(""), v[2] = xstrdup("\xF0\x9F\x98\x80"), v[3] = xstrdup("four");
    } else {
        n = 99;
    }
    comm_bcast_strings(&v, &n);
    EXPECT(n == 4 && v && !strcmp(v[0], "one") && !strcmp(v[1], "") && !strcmp(v[2], "\xF0\x9F\x98\x80") &&
               !strcmp(v[3], "four"),
           "bcast_strings (n %lld)", (long long)n);
    for (int64_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
    v = NULL;
    n = c->rank == 0 ? 0 : 5;
    comm_bcast_strings(&v, &n);
    EXPECT(n == 0, "bcast of no strings");
    free(v);

    /* rank r sends r+1 copies of 'a'+r; one empty contribution */
    char mine[8];
    int len = c->rank + 1;
    memset(mine, 'a' + c->rank, (size_t)len);
    size_t *lens = NULL;
    char *all = comm_gather_bytes(mine, (size_t)len, &lens);
    if (c->rank == 0) {
        int ok = all && lens;
        size_t at = 0;
        for (int r = 0; ok && r < c->size; r++) {
            ok = lens[r] == (size_t)(r + 1);
            for (int k = 0; ok && k <= r; k++) ok = all[at++] == 'a' + r;
        }
        EXPECT(ok && all[at] == 0, "gather in rank order with lengths");
    } else {
        EXPECT(all == NULL && lens == NULL, "gather gives nothing on other ranks");
    }
    free(all), free(lens);
    all = comm_gather_bytes("xyz", c->rank == 0 ? 0 : 3, NULL);
    if (c->rank == 0) EXPECT(all && !strcmp(all, "xyz"), "gather with an empty part: %s", all ? all : "-");
    free(all);
    comm_barrier();
    char ver[256];
    comm_library_version(ver, sizeof ver);
    EXPECT(strstr(ver, "MPI") && !strchr(ver, '\n') && !strchr(ver, ','), "library version %s", ver);
    double t1 = comm_wtime(), t2 = comm_wtime();
    EXPECT(t2 >= t1, "wtime runs forward");
}

/* child jobs: exit paths */
static int child(const char *mode, Comm *c) {
    if (!strcmp(mode, "checkall-rank1")) comm_check_all(c->rank == 1, c->rank == 1 ? "boom on rank one" : NULL, 5);
    else if (!strcmp(mode, "checkall-both"))
        comm_check_all(1, c->rank == 0 ? "first message" : "second message", 4);
    else if (!strcmp(mode, "checkall-none")) comm_check_all(0, "unused", 6);
    else if (!strcmp(mode, "check-rank0")) comm_check(c->rank == 0 ? -1 : 0, "rank zero decides", 2);
    else if (!strcmp(mode, "check-rank1")) comm_check(c->rank == 1 ? -1 : 0, "ignored", 2);
    printf("rank %d: passed the check\n", c->rank);
    return 0;
}

static int count(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub)) n++;
    return n;
}

int main(int argc, char **argv) {
    if (!test_under_mpirun()) {
        /* the collectives under mpirun -np 2 */
        char *out = NULL;
        int rc = test_mpirun_self(2, NULL, &out, NULL);
        fputs(out, stdout);
        EXPECT(rc == 0, "mpirun -np 2 exited %d", rc);
        EXPECT(test_absorb(out) == 0, "no summary from the ranks");
        free(out);
        static const struct {
            const char *mode;
            int code, passed;
            const char *msg;
        } cases[] = {
            {"checkall-rank1", 5, 0, "error: boom on rank one"},
            {"checkall-both", 4, 0, "error: first message"},
            {"checkall-none", 0, 2, NULL},
            {"check-rank0", 2, 0, "error: rank zero decides"},
            {"check-rank1", 0, 2, NULL},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int codes[2] = {-2, -2};
            const char *args[] = {"--child", cases[i].mode, NULL};
            rc = test_mpirun_self(2, args, &out, codes);
            EXPECT(codes[0] == cases[i].code && codes[1] == cases[i].code, "%s: rank exit codes %d %d, want %d",
                   cases[i].mode, codes[0], codes[1], cases[i].code);
            EXPECT(count(out, "passed the check") == cases[i].passed, "%s: %d ranks went on", cases[i].mode,
                   count(out, "passed the check"));
            if (cases[i].msg)
                EXPECT(count(out, cases[i].msg) == 1 && count(out, "error:") == 1, "%s: message printed once: %s",
                       cases[i].mode, out);
            else
                EXPECT(count(out, "error:") == 0, "%s: an error was printed: %s", cases[i].mode, out);
            free(out);
        }
        return test_summary();
    }
    Comm c;
    comm_init(&c, &argc, &argv);
    if (argc >= 3 && !strcmp(argv[1], "--child")) {
        int rc = child(argv[2], &c);
        comm_finalize();
        return rc;
    }
    EXPECT(c.size == 2 && c.rank >= 0 && c.rank < 2 && c.local_size == 2 && c.local_rank == c.rank,
           "rank %d of %d, local %d of %d", c.rank, c.size, c.local_rank, c.local_size);
    EXPECT(util_rank() == c.rank, "util_rank");
    collectives(&c);
    /* one summary for both ranks, printed by rank 0 */
    return test_ranks_finish(&c);
}
