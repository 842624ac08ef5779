/* test_ops_llama -- every Llama kernel against its naive reference, every
 * backward against central finite differences of its forward, the llama3
 * rotary frequencies against values computed independently (numpy, float64),
 * and every kernel bitwise the same on 1 and on 3 pool threads. */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "engine/ops_llama.h"
#include "test.h"

static Rng rng;

static float *rnd(long n, float scale) {
    float *x = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
    for (long i = 0; i < n; i++) x[i] = (float)(rng_normal(&rng) * scale);
    return x;
}

static float *zeros(long n) { return xcalloc((size_t)(n ? n : 1), sizeof(float)); }

static float *copyf(const float *x, long n) {
    float *y = xmalloc(sizeof(float) * (size_t)n);
    memcpy(y, x, sizeof(float) * (size_t)n);
    return y;
}

static double dot(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* max |a-b| / max |b| */
static double rel(const float *a, const float *b, long n) {
    double d = 0, m = 1e-30;
    for (long i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (e > d || e != e) d = (e != e) ? INFINITY : e;
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return d / m;
}

/* loss(x) = <r, f(x)>: central differences at k coordinates of x against g,
 * error relative to max |g| */
typedef double (*LossFn)(void *ctx);

static double fd_check(LossFn f, void *ctx, float *x, long n, const float *g, int k) {
    double worst = 0, gmax = 1e-12;
    for (long i = 0; i < n; i++)
        if (fabs(g[i]) > gmax) gmax = fabs(g[i]);
    for (int s = 0; s < k; s++) {
        long i = (long)rng_below(&rng, (uint64_t)n);
        float x0 = x[i], h = 1e-2f;
        x[i] = x0 + h;
        double lp = f(ctx);
        x[i] = x0 - h;
        double lm = f(ctx);
        x[i] = x0;
        double fd = (lp - lm) / ((double)(x0 + h) - (double)(x0 - h));
        double e = fabs(fd - g[i]) / gmax;
        if (e > worst) worst = e;
    }
    return worst;
}

/* ---- embedding -------------------------------------------------------------------- */

static void test_embedding(void) {
    enum { N = 30, C = 20, V = 7 };
    int tok[N];
    for (int i = 0; i < N; i++) tok[i] = (int)rng_below(&rng, V);
    float *wte = rnd(V * C, 1), *out = zeros(N * C), *d = rnd(N * C, 1);
    ops_embedding_forward(out, tok, wte, N, C);
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= !memcmp(out + i * C, wte + tok[i] * C, sizeof(float) * C);
    EXPECT(ok, "embedding rows");
    float *g1 = rnd(V * C, 1), *g2 = copyf(g1, V * C);
    ops_embedding_backward(g1, d, tok, N, C);
    ops_embedding_backward_naive(g2, d, tok, N, C);
    EXPECT(rel(g1, g2, V * C) < 1e-6, "embedding backward %g", rel(g1, g2, V * C));
    free(wte), free(out), free(d), free(g1), free(g2);
}

/* ---- RMSNorm ---------------------------------------------------------------------- */

typedef struct {
    float *inp, *w, *out, *rstd, *r;
    int N, H, D, ld;
} RmsT;

static double rms_loss(void *vc) {
    RmsT *c = vc;
    ops_rmsnorm_forward(c->out, c->rstd, c->inp, c->w, c->N, c->H, c->D, c->ld, 1e-5f);
    double s = 0;
    for (int i = 0; i < c->N; i++)
        for (int k = 0; k < c->H * c->D; k++) s += (double)c->r[(long)i * c->ld + k] * c->out[(long)i * c->ld + k];
    return s;
}

/* rows of H heads of D inside a wider row (ld > H*D: columns the kernel must not touch) */
static void test_rmsnorm(int N, int H, int D, int ld) {
    long n = (long)N * ld;
    RmsT c = {rnd(n, 1.5f), rnd(D, 1), zeros(n), zeros((long)N * H), rnd(n, 1), N, H, D, ld};
    for (int j = 0; j < D; j++) c.w[j] += 1.0f;
    float *o2 = zeros(n), *r2 = zeros((long)N * H);
    ops_rmsnorm_forward(c.out, c.rstd, c.inp, c.w, N, H, D, ld, 1e-5f);
    ops_rmsnorm_forward_naive(o2, r2, c.inp, c.w, N, H, D, ld, 1e-5f);
    EXPECT(rel(c.out, o2, n) < 1e-6, "rmsnorm forward %g", rel(c.out, o2, n));
    EXPECT(rel(c.rstd, r2, (long)N * H) < 1e-6, "rmsnorm rstd");
    /* accumulate into pre-filled gradients, vs the naive */
    float *di = rnd(n, 1), *dw = rnd(D, 1), *di2 = copyf(di, n), *dw2 = copyf(dw, D);
    ops_rmsnorm_backward(di, dw, c.r, c.inp, c.w, c.rstd, N, H, D, ld, 1);
    ops_rmsnorm_backward_naive(di2, dw2, c.r, c.inp, c.w, c.rstd, N, H, D, ld);
    EXPECT(rel(di, di2, n) < 1e-5 && rel(dw, dw2, D) < 1e-5, "rmsnorm backward %g %g", rel(di, di2, n),
           rel(dw, dw2, D));
    /* in place (acc 0): dout replaced by dinp inside the heads, the rest untouched */
    float *ip = copyf(c.r, n), *dw3 = zeros(D), *z = zeros(n), *dw4 = zeros(D);
    ops_rmsnorm_backward(ip, dw3, ip, c.inp, c.w, c.rstd, N, H, D, ld, 0);
    ops_rmsnorm_backward_naive(z, dw4, c.r, c.inp, c.w, c.rstd, N, H, D, ld);
    int untouched = 1;
    for (int i = 0; i < N; i++)
        for (int k = H * D; k < ld; k++) {
            untouched &= ip[(long)i * ld + k] == c.r[(long)i * ld + k];
            z[(long)i * ld + k] = c.r[(long)i * ld + k];
        }
    EXPECT(untouched && rel(ip, z, n) < 1e-5 && rel(dw3, dw4, D) < 1e-5, "rmsnorm in place %g", rel(ip, z, n));
    /* finite differences */
    float *gi = zeros(n), *gw = zeros(D);
    ops_rmsnorm_forward(c.out, c.rstd, c.inp, c.w, N, H, D, ld, 1e-5f);
    ops_rmsnorm_backward(gi, gw, c.r, c.inp, c.w, c.rstd, N, H, D, ld, 1);
    double e1 = fd_check(rms_loss, &c, c.inp, n, gi, 20), e2 = fd_check(rms_loss, &c, c.w, D, gw, 10);
    EXPECT(e1 < 1e-2 && e2 < 1e-2, "rmsnorm fd %g %g (H %d)", e1, e2, H);
    free(c.inp), free(c.w), free(c.out), free(c.rstd), free(c.r), free(o2), free(r2), free(di), free(dw), free(di2);
    free(dw2), free(ip), free(dw3), free(z), free(dw4), free(gi), free(gw);
}

/* ---- rotary embeddings ------------------------------------------------------------------ */

static void test_rope_freqs(void) {
    /* Llama 3.2: hd 64, theta 5e5, factor 32, low 1, high 4, original 8192 (numpy float64) */
    double inv[32];
    ops_rope_inv_freq(inv, 64, 500000.0, 1, 32.0, 1.0, 4.0, 8192);
    static const struct {
        int j;
        double v;
    } want[] = {{0, 1.0},
                {14, 0.0032114459947525913},    /* high frequency: kept */
                {15, 0.001290547928209264},     /* medium: interpolated */
                {16, 0.00042955679655936815},
                {17, 9.7082878026276702e-05},
                {18, 1.9461638184831125e-05},   /* low: divided by 32 */
                {31, 9.4183067254349087e-08}};
    double worst = 0;
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        worst = fmax(worst, fabs(inv[want[k].j] - want[k].v) / want[k].v);
    EXPECT(worst < 1e-13, "llama3 inv_freq rel error %g", worst);
    ops_rope_inv_freq(inv, 64, 10000.0, 0, 0, 0, 0, 0);
    EXPECT(inv[0] == 1.0 && fabs(inv[16] - 0.01) < 1e-15 && fabs(inv[31] - pow(10000.0, -62.0 / 64)) < 1e-18,
           "plain inv_freq %g %g", inv[16], inv[31]);
}

static void test_rope(void) {
    enum { N = 13, H = 5, hd = 8, ld = 44 };
    int pos[N];
    for (int i = 0; i < N; i++) pos[i] = (int)rng_below(&rng, 9000);
    double inv[hd / 2];
    ops_rope_inv_freq(inv, hd, 10000.0, 1, 8.0, 1.0, 4.0, 64);
    float *cs = zeros(N * hd), *x = rnd(N * ld, 1), *x0 = copyf(x, N * ld), *x2 = copyf(x, N * ld);
    ops_rope_table(cs, pos, inv, N, hd);
    ops_rope_forward(x, cs, N, H, hd, ld);
    ops_rope_apply_naive(x2, pos, inv, N, H, hd, ld, 0);
    EXPECT(rel(x, x2, N * ld) < 1e-6, "rope forward %g", rel(x, x2, N * ld));
    int untouched = 1;
    for (int i = 0; i < N; i++)
        for (int k = H * hd; k < ld; k++) untouched &= x[i * ld + k] == x0[i * ld + k];
    EXPECT(untouched, "rope wrote outside its heads");
    /* backward is the transpose: <R a, b> = <a, R^T b> */
    float *b = rnd(N * ld, 1), *bt = copyf(b, N * ld), *b2 = copyf(b, N * ld);
    ops_rope_backward(bt, cs, N, H, hd, ld);
    ops_rope_apply_naive(b2, pos, inv, N, H, hd, ld, 1);
    EXPECT(rel(bt, b2, N * ld) < 1e-6, "rope backward %g", rel(bt, b2, N * ld));
    double l = dot(x, b, N * ld), r = dot(x0, bt, N * ld);
    EXPECT(fabs(l - r) < 1e-4 * (1 + fabs(l)), "rope transpose %g vs %g", l, r);
    ops_rope_backward(x, cs, N, H, hd, ld);
    EXPECT(rel(x, x0, N * ld) < 1e-6, "rope backward undoes forward %g", rel(x, x0, N * ld));
    free(cs), free(x), free(x0), free(x2), free(b), free(bt), free(b2);
}

/* ---- SwiGLU ---------------------------------------------------------------------------------- */

typedef struct {
    float *gu, *out, *r;
    int N, F;
} SwiT;

static double swi_loss(void *vc) {
    SwiT *c = vc;
    ops_swiglu_forward(c->out, c->gu, c->N, c->F);
    return dot(c->out, c->r, (long)c->N * c->F);
}

static void test_swiglu(void) {
    enum { N = 11, F = 37 };
    SwiT c = {rnd(N * 2 * F, 2), zeros(N * F), rnd(N * F, 1), N, F};
    c.gu[0] = 100.0f, c.gu[1] = -100.0f; /* saturated gates */
    float *o2 = zeros(N * F);
    ops_swiglu_forward(c.out, c.gu, N, F);
    ops_swiglu_forward_naive(o2, c.gu, N, F);
    EXPECT(rel(c.out, o2, N * F) < 1e-6, "swiglu forward %g", rel(c.out, o2, N * F));
    float *d1 = rnd(N * 2 * F, 1), *d2 = copyf(d1, N * 2 * F), *again = zeros(N * F);
    ops_swiglu_backward(d1, again, c.r, c.gu, N, F);
    ops_swiglu_backward_naive(d2, c.r, c.gu, N, F);
    EXPECT(rel(d1, d2, N * 2 * F) < 1e-6, "swiglu backward %g", rel(d1, d2, N * 2 * F));
    EXPECT(!memcmp(again, c.out, sizeof(float) * N * F), "swiglu backward recomputes the forward bitwise");
    c.gu[0] = 0.3f, c.gu[1] = -0.2f;
    float *g = zeros(N * 2 * F);
    ops_swiglu_backward(g, NULL, c.r, c.gu, N, F);
    double e = fd_check(swi_loss, &c, c.gu, N * 2 * F, g, 30);
    EXPECT(e < 1e-2, "swiglu fd %g", e);
    free(c.gu), free(c.out), free(c.r), free(o2), free(d1), free(d2), free(again), free(g);
}

/* ---- grouped-query attention ---------------------------------------------------------------------- */

enum { AB = 2, AT = 70 }; /* T over one 64-row block */

typedef struct {
    float *qkv, *out, *att, *r;
    int *seg, NH, KV, hd, ld;
} GqaT;

static void att_seg(int *seg) {
    for (int t = 0; t < AT; t++) {
        seg[t] = t < 5 ? 0 : t < 66 ? 5 : 66; /* row 0: docs [0,5), [5,66), [66,70) */
        seg[AT + t] = t < 60 ? 0 : t;          /* row 1: one doc, then padding alone */
    }
}

static double gqa_loss(void *vc) {
    GqaT *c = vc;
    int QD = c->NH * c->hd, KD = c->KV * c->hd;
    ops_gqa_forward(c->out, c->att, c->qkv, c->qkv + QD, c->qkv + QD + KD, c->ld, c->seg, AB, AT, c->NH, c->KV,
                    c->hd);
    return dot(c->out, c->r, (long)AB * AT * QD);
}

static void test_gqa(int NH, int KV, int hd) {
    int QD = NH * hd, KD = KV * hd, ld = QD + 2 * KD + 3, N = AB * AT;
    int seg[AB * AT];
    att_seg(seg);
    GqaT c = {rnd((long)N * ld, 1), zeros((long)N * QD), zeros((long)AB * NH * AT * AT), rnd((long)N * QD, 1), seg,
              NH, KV, hd, ld};
    float *o2 = zeros((long)N * QD), *a2 = zeros((long)AB * NH * AT * AT);
    gqa_loss(&c);
    ops_gqa_forward_naive(o2, a2, c.qkv, c.qkv + QD, c.qkv + QD + KD, ld, seg, AB, AT, NH, KV, hd);
    EXPECT(rel(c.out, o2, (long)N * QD) < 1e-5, "gqa forward %g (NH %d KV %d)", rel(c.out, o2, (long)N * QD), NH, KV);
    float *d1 = rnd((long)N * ld, 1), *d2 = copyf(d1, (long)N * ld), *ws = zeros((long)AB * KV * AT * AT);
    ops_gqa_backward(d1, d1 + QD, d1 + QD + KD, ws, c.r, c.qkv, c.qkv + QD, c.qkv + QD + KD, ld, c.att, seg, AB, AT,
                     NH, KV, hd);
    ops_gqa_backward_naive(d2, d2 + QD, d2 + QD + KD, c.r, c.qkv, c.qkv + QD, c.qkv + QD + KD, ld, a2, seg, AB, AT,
                           NH, KV, hd);
    EXPECT(rel(d1, d2, (long)N * ld) < 1e-5, "gqa backward %g (NH %d KV %d)", rel(d1, d2, (long)N * ld), NH, KV);
    float *g = zeros((long)N * ld);
    ops_gqa_backward(g, g + QD, g + QD + KD, ws, c.r, c.qkv, c.qkv + QD, c.qkv + QD + KD, ld, c.att, seg, AB, AT, NH,
                     KV, hd);
    double e = fd_check(gqa_loss, &c, c.qkv, (long)N * ld, g, 40);
    EXPECT(e < 1e-2, "gqa fd %g (NH %d KV %d)", e, NH, KV);
    /* the padding column of every row is never touched */
    int pad = 1;
    for (int i = 0; i < N; i++) pad &= g[(long)i * ld + ld - 1] == 0;
    EXPECT(pad, "gqa wrote outside q|k|v");
    free(c.qkv), free(c.out), free(c.att), free(c.r), free(o2), free(a2), free(d1), free(d2), free(ws), free(g);
}

/* ---- bias helpers ------------------------------------------------------------------------------------ */

static void test_bias(void) {
    enum { N = 9, OC = 5, ld = 8 };
    float *b = rnd(OC, 1), *o = rnd(N * ld, 1), *keep = copyf(o, N * ld), db[OC] = {0};
    ops_bias_fill(o, b, N, OC, ld);
    int ok = 1;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < ld; j++) ok &= o[i * ld + j] == (j < OC ? b[j] : keep[i * ld + j]);
    EXPECT(ok, "bias fill");
    ops_bias_backward(db, keep, N, OC, ld);
    double worst = 0;
    for (int j = 0; j < OC; j++) {
        double s = 0;
        for (int i = 0; i < N; i++) s += keep[i * ld + j];
        worst = fmax(worst, fabs(s - db[j]));
    }
    EXPECT(worst < 1e-5, "bias backward %g", worst);
    free(b), free(o), free(keep);
}

/* ---- thread-count independence ------------------------------------------------------------------------ */

/* every kernel on a fixed problem; all outputs concatenated into out */
static long run_all(float *out) {
    enum { N = 2 * AT, NH = 4, KV = 2, hd = 8, QD = 32, KD = 16, ld = 64, F = 40, C = 48 };
    Rng keep = rng;
    rng_seed(&rng, 99);
    int seg[N], pos[N], tok[N];
    att_seg(seg);
    for (int i = 0; i < N; i++) pos[i] = i % AT - seg[i], tok[i] = i % 7;
    float *x = rnd(N * C, 1), *w = rnd(C, 1), *qkv = rnd(N * ld, 1), *gu = rnd(N * 2 * F, 1), *d = rnd(N * ld, 1);
    float *att = zeros(2L * NH * AT * AT), *ws = zeros(2L * KV * AT * AT), *cs = zeros(N * hd);
    long k = 0;
    double inv[hd / 2];
    ops_rope_inv_freq(inv, hd, 500.0, 1, 4.0, 1.0, 4.0, 32);
    ops_rope_table(cs, pos, inv, N, hd);
    ops_rope_forward(qkv, cs, N, NH + KV, hd, ld);
    ops_rmsnorm_forward(out + k, out + k + N * C, x, w, N, 1, C, C, 1e-6f);
    k += N * C + N;
    ops_rmsnorm_backward(out + k, out + k + N * C, d, x, w, out + N * C, N, 1, C, C, 1);
    k += N * C + C;
    ops_swiglu_forward(out + k, gu, N, F);
    k += N * F;
    ops_swiglu_backward(out + k, NULL, d, gu, N, F);
    k += N * 2 * F;
    ops_gqa_forward(out + k, att, qkv, qkv + QD, qkv + QD + KD, ld, seg, 2, AT, NH, KV, hd);
    k += N * QD;
    ops_gqa_backward(out + k, out + k + QD, out + k + QD + KD, ws, d, qkv, qkv + QD, qkv + QD + KD, ld, att, seg, 2, AT,
                     NH, KV, hd);
    k += N * ld;
    ops_embedding_backward(out + k, x, tok, N, C);
    k += 7 * C;
    memcpy(out + k, qkv, sizeof(float) * N * ld);
    k += N * ld;
    free(x), free(w), free(qkv), free(gu), free(d), free(att), free(ws), free(cs);
    rng = keep;
    return k;
}

static void test_threads(void) {
    long n = 200000;
    float *a = zeros(n), *b = zeros(n);
    par_init(1);
    long k = run_all(a);
    par_init(3);
    run_all(b);
    EXPECT(k <= n && !memcmp(a, b, sizeof(float) * (size_t)k), "results depend on the thread count");
    free(a), free(b);
}

int main(void) {
    rng_seed(&rng, 1234);
    for (int threads = 1; threads <= 3; threads += 2) {
        par_init(threads);
        test_embedding();
        test_rmsnorm(17, 1, 40, 40);
        test_rmsnorm(9, 3, 8, 30);
        test_rope_freqs();
        test_rope();
        test_swiglu();
        test_gqa(4, 2, 8);
        test_gqa(3, 3, 6);
        test_gqa(4, 1, 4);
        test_bias();
    }
    test_threads();
    par_shutdown();
    return test_summary();
}
