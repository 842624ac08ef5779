/* test_ops -- every optimised kernel against its naive reference, and every
 * backward against central finite differences of its forward.  Run with 1
 * and with 3 pool threads (odd split) to catch partitioning bugs. */
#include <stdlib.h>
#include <string.h>

#include "engine/ops.h"
#include "test.h"
#include "base/util.h"

static Rng rng;

static float *rnd(long n, float scale) {
    float *x = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
    for (long i = 0; i < n; i++) x[i] = (float)(rng_normal(&rng) * scale);
    return x;
}

static float *zeros(long n) { return xcalloc((size_t)(n ? n : 1), sizeof(float)); }

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

/* Problem sizes: two rows, first holds two packed documents. */
enum { B = 2, T = 9, C = 16, NH = 4, OC = 24, V = 37, P = 12 };
#define N (B * T)
static int seg[N];

static void make_seg(void) {
    for (int t = 0; t < T; t++) {
        seg[t] = t < 4 ? 0 : 4; /* row 0: docs [0,4) and [4,9) */
        seg[T + t] = 0;         /* row 1: one doc */
    }
}

/* ---- generic finite-difference check -------------------------------------
 * loss(x) = <r, f(x)>; analytic gradient g given; compares at k random
 * coordinates of x. */
typedef double (*LossFn)(void *ctx);

static double fd_check(LossFn f, void *ctx, float *x, long n, const float *g, int k) {
    double worst = 0, gmax = 1e-12;
    for (long i = 0; i < n; i++)
        if (fabs(g[i]) > gmax) gmax = fabs(g[i]);
    for (int s = 0; s < k; s++) {
        long i = (long)rng_below(&rng, (uint64_t)n);
        float x0 = x[i];
        float h = 1e-2f * (fabsf(x0) > 1 ? fabsf(x0) : 1);
        x[i] = x0 + h;
        double lp = f(ctx);
        x[i] = x0 - h;
        double lm = f(ctx);
        x[i] = x0;
        double fd = (lp - lm) / (2.0 * ((double)(x0 + h) - (double)(x0 - h)) / 2.0);
        double e = fabs(fd - g[i]) / gmax;
        if (e > worst) worst = e;
    }
    return worst;
}

/* ---- LayerNorm -------------------------------------------------------------- */
typedef struct {
    float *inp, *w, *b, *out, *mean, *rstd, *r;
} LnT;
static double ln_loss(void *vc) {
    LnT *c = vc;
    ops_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, N, C);
    return dot(c->out, c->r, (long)N * C);
}

static void test_layernorm(void) {
    LnT c = {rnd(N * C, 1.5f), rnd(C, 1), rnd(C, 1), zeros(N * C), zeros(N), zeros(N), rnd(N * C, 1)};
    for (int i = 0; i < N * C; i++) c.inp[i] += 0.7f;
    float *o2 = zeros(N * C), *m2 = zeros(N), *r2 = zeros(N);
    ops_layernorm_forward(c.out, c.mean, c.rstd, c.inp, c.w, c.b, N, C);
    ops_layernorm_forward_naive(o2, m2, r2, c.inp, c.w, c.b, N, C);
    EXPECT(rel(c.out, o2, N * C) < 1e-5, "layernorm fwd rel %g", rel(c.out, o2, N * C));
    EXPECT(rel(c.rstd, r2, N) < 1e-5, "layernorm rstd rel %g", rel(c.rstd, r2, N));
    float *di = rnd(N * C, 1), *dw = rnd(C, 1), *db = rnd(C, 1); /* nonzero: checks += */
    float *di2 = xmalloc(sizeof(float) * N * C), *dw2 = xmalloc(sizeof(float) * C),
          *db2 = xmalloc(sizeof(float) * C);
    memcpy(di2, di, sizeof(float) * N * C);
    memcpy(dw2, dw, sizeof(float) * C);
    memcpy(db2, db, sizeof(float) * C);
    ops_layernorm_backward(di, dw, db, c.r, c.inp, c.w, c.mean, c.rstd, N, C);
    ops_layernorm_backward_naive(di2, dw2, db2, c.r, c.inp, c.w, m2, r2, N, C);
    EXPECT(rel(di, di2, N * C) < 1e-4, "layernorm dinp rel %g", rel(di, di2, N * C));
    EXPECT(rel(dw, dw2, C) < 1e-4, "layernorm dw rel %g", rel(dw, dw2, C));
    EXPECT(rel(db, db2, C) < 1e-5, "layernorm db rel %g", rel(db, db2, C));
    /* finite differences (zero-initialised grads) */
    float *gi = zeros(N * C), *gw = zeros(C), *gb = zeros(C);
    ops_layernorm_forward(c.out, c.mean, c.rstd, c.inp, c.w, c.b, N, C);
    ops_layernorm_backward(gi, gw, gb, c.r, c.inp, c.w, c.mean, c.rstd, N, C);
    double e1 = fd_check(ln_loss, &c, c.inp, N * C, gi, 40);
    double e2 = fd_check(ln_loss, &c, c.w, C, gw, 16);
    double e3 = fd_check(ln_loss, &c, c.b, C, gb, 16);
    EXPECT(e1 < 5e-3 && e2 < 5e-3 && e3 < 5e-3, "layernorm fd %g %g %g", e1, e2, e3);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(c.r);
    free(o2), free(m2), free(r2), free(di), free(dw), free(db), free(di2), free(dw2), free(db2);
    free(gi), free(gw), free(gb);
}

/* ---- matmul ------------------------------------------------------------------- */
typedef struct {
    float *inp, *w, *bias, *out, *r;
} MmT;
static double mm_loss(void *vc) {
    MmT *c = vc;
    ops_matmul_forward(c->out, c->inp, c->w, c->bias, N, C, OC);
    return dot(c->out, c->r, (long)N * OC);
}

static void test_matmul(void) {
    MmT c = {rnd(N * C, 1), rnd(OC * C, 0.5f), rnd(OC, 1), zeros(N * OC), rnd(N * OC, 1)};
    float *o2 = zeros(N * OC);
    ops_matmul_forward(c.out, c.inp, c.w, c.bias, N, C, OC);
    ops_matmul_forward_naive(o2, c.inp, c.w, c.bias, N, C, OC);
    EXPECT(rel(c.out, o2, N * OC) < 1e-5, "matmul fwd rel %g", rel(c.out, o2, N * OC));
    ops_matmul_forward(c.out, c.inp, c.w, NULL, N, C, OC);
    ops_matmul_forward_naive(o2, c.inp, c.w, NULL, N, C, OC);
    EXPECT(rel(c.out, o2, N * OC) < 1e-5, "matmul fwd (no bias) rel %g", rel(c.out, o2, N * OC));
    float *di = rnd(N * C, 1), *dw = rnd(OC * C, 1), *db = rnd(OC, 1);
    float *di2 = xmalloc(sizeof(float) * N * C), *dw2 = xmalloc(sizeof(float) * OC * C),
          *db2 = xmalloc(sizeof(float) * OC);
    memcpy(di2, di, sizeof(float) * N * C);
    memcpy(dw2, dw, sizeof(float) * OC * C);
    memcpy(db2, db, sizeof(float) * OC);
    ops_matmul_backward(di, dw, db, c.r, c.inp, c.w, N, C, OC);
    ops_matmul_backward_naive(di2, dw2, db2, c.r, c.inp, c.w, N, C, OC);
    EXPECT(rel(di, di2, N * C) < 1e-5, "matmul dinp rel %g", rel(di, di2, N * C));
    EXPECT(rel(dw, dw2, OC * C) < 1e-5, "matmul dw rel %g", rel(dw, dw2, OC * C));
    EXPECT(rel(db, db2, OC) < 1e-5, "matmul dbias rel %g", rel(db, db2, OC));
    float *gi = zeros(N * C), *gw = zeros(OC * C), *gb = zeros(OC);
    ops_matmul_backward(gi, gw, gb, c.r, c.inp, c.w, N, C, OC);
    double e1 = fd_check(mm_loss, &c, c.inp, N * C, gi, 30);
    double e2 = fd_check(mm_loss, &c, c.w, OC * C, gw, 30);
    double e3 = fd_check(mm_loss, &c, c.bias, OC, gb, 10);
    EXPECT(e1 < 5e-3 && e2 < 5e-3 && e3 < 5e-3, "matmul fd %g %g %g", e1, e2, e3);
    free(c.inp), free(c.w), free(c.bias), free(c.out), free(c.r), free(o2);
    free(di), free(dw), free(db), free(di2), free(dw2), free(db2), free(gi), free(gw), free(gb);
}

/* ---- attention ------------------------------------------------------------------ */
typedef struct {
    float *qkv, *out, *att, *r;
} AtT;
static double at_loss(void *vc) {
    AtT *c = vc;
    ops_attention_forward(c->out, c->att, c->qkv, seg, B, T, C, NH);
    return dot(c->out, c->r, (long)N * C);
}

static void test_attention(void) {
    AtT c = {rnd(N * 3 * C, 1), zeros(N * C), zeros(B * NH * T * T), rnd(N * C, 1)};
    float *o2 = zeros(N * C), *a2 = zeros(B * NH * T * T);
    ops_attention_forward(c.out, c.att, c.qkv, seg, B, T, C, NH);
    ops_attention_forward_naive(o2, a2, c.qkv, seg, B, T, C, NH);
    EXPECT(rel(c.out, o2, N * C) < 1e-5, "attention fwd rel %g", rel(c.out, o2, N * C));
    EXPECT(rel(c.att, a2, B * NH * T * T) < 1e-5, "attention probs rel %g",
           rel(c.att, a2, B * NH * T * T));
    /* masked entries are exactly zero, rows sum to one */
    int mask_ok = 1;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *A = c.att + (((long)b * NH + h) * T + t) * T;
                double s = 0;
                for (int u = 0; u < T; u++) {
                    if ((u < seg[b * T + t] || u > t) && A[u] != 0.0f) mask_ok = 0;
                    s += A[u];
                }
                if (fabs(s - 1) > 1e-5) mask_ok = 0;
            }
    EXPECT(mask_ok, "attention mask/normalisation");
    float *dq = rnd(N * 3 * C, 1), *dq2 = xmalloc(sizeof(float) * N * 3 * C);
    memcpy(dq2, dq, sizeof(float) * N * 3 * C);
    float *ws = zeros(B * NH * T * T);
    ops_attention_backward(dq, ws, c.r, c.qkv, c.att, seg, B, T, C, NH);
    ops_attention_backward_naive(dq2, c.r, c.qkv, a2, seg, B, T, C, NH);
    EXPECT(rel(dq, dq2, N * 3 * C) < 1e-4, "attention bwd rel %g", rel(dq, dq2, N * 3 * C));
    float *g = zeros(N * 3 * C);
    ops_attention_forward(c.out, c.att, c.qkv, seg, B, T, C, NH);
    ops_attention_backward(g, ws, c.r, c.qkv, c.att, seg, B, T, C, NH);
    double e = fd_check(at_loss, &c, c.qkv, N * 3 * C, g, 60);
    EXPECT(e < 5e-3, "attention fd %g", e);
    /* isolation: changing document 0 of row 0 leaves document 1's outputs alone */
    float *before = xmalloc(sizeof(float) * N * C);
    ops_attention_forward(c.out, c.att, c.qkv, seg, B, T, C, NH);
    memcpy(before, c.out, sizeof(float) * N * C);
    for (int j = 0; j < 3 * C; j++) c.qkv[1 * 3 * C + j] += 3.0f;
    ops_attention_forward(c.out, c.att, c.qkv, seg, B, T, C, NH);
    EXPECT(memcmp(before + 4 * C, c.out + 4 * C, sizeof(float) * 5 * C) == 0,
           "packed document 1 changed when document 0 did");
    EXPECT(memcmp(before + 1 * C, c.out + 1 * C, sizeof(float) * C) != 0, "doc 0 insensitive");
    free(c.qkv), free(c.out), free(c.att), free(c.r), free(o2), free(a2), free(dq), free(dq2);
    free(ws), free(g), free(before);
}

/* ---- GELU ------------------------------------------------------------------------- */
typedef struct {
    float *x, *out, *r;
    long n;
} GeT;
static double ge_loss(void *vc) {
    GeT *c = vc;
    ops_gelu_forward(c->out, c->x, c->n);
    return dot(c->out, c->r, c->n);
}

static void test_gelu(void) {
    long n = 10007;
    GeT c = {rnd(n, 3), zeros(n), rnd(n, 1), n};
    c.x[0] = 0, c.x[1] = 1e-6f, c.x[2] = -30, c.x[3] = 30, c.x[4] = -5;
    float *o2 = zeros(n);
    ops_gelu_forward(c.out, c.x, n);
    ops_gelu_forward_naive(o2, c.x, n);
    double worst = 0;
    for (long i = 0; i < n; i++) {
        double e = fabs(c.out[i] - o2[i]) / (fabs(o2[i]) + 1e-3);
        if (e > worst) worst = e;
    }
    EXPECT(worst < 1e-5, "gelu fwd rel %g", worst);
    float *d1 = rnd(n, 1), *d2 = xmalloc(sizeof(float) * n);
    memcpy(d2, d1, sizeof(float) * n);
    ops_gelu_backward(d1, c.x, c.r, n);
    ops_gelu_backward_naive(d2, c.x, c.r, n);
    EXPECT(rel(d1, d2, n) < 1e-5, "gelu bwd rel %g", rel(d1, d2, n));
    float *g = zeros(n);
    ops_gelu_backward(g, c.x, c.r, n);
    double e = fd_check(ge_loss, &c, c.x, n, g, 50);
    EXPECT(e < 5e-3, "gelu fd %g", e);
    free(c.x), free(c.out), free(c.r), free(o2), free(d1), free(d2), free(g);
}

/* ---- exp ------------------------------------------------------------------------ */
static void test_expf(void) {
    double worst = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        double e = fabs(ops_expf(x) - exp((double)x)) / exp((double)x);
        if (e > worst) worst = e;
    }
    EXPECT(worst < 5e-7, "ops_expf max rel error %g", worst);
    EXPECT(ops_expf(-1000.0f) < 1e-37f && ops_expf(-1000.0f) >= 0, "exp underflow");
}

/* ---- log-probs --------------------------------------------------------------------- */
typedef struct {
    float *logits, *scratch, *logp, *lse, *g;
    int *tgt;
    int M;
} LpT;
static double lp_loss(void *vc) {
    LpT *c = vc;
    ops_logprob_forward(c->logp, c->lse, c->logits, c->tgt, c->M, V);
    return dot(c->logp, c->g, c->M);
}

static void test_logprob(void) {
    int M = 11;
    LpT c = {rnd(M * V, 4), zeros(M * V), zeros(M), zeros(M), rnd(M, 1), xmalloc(sizeof(int) * M), M};
    for (int m = 0; m < M; m++) c.tgt[m] = (int)rng_below(&rng, V);
    c.logits[5] = 80; /* large logit: stability */
    c.g[3] = 0;        /* a row without loss */
    float *lp2 = zeros(M), *lse2 = zeros(M);
    ops_logprob_forward(c.logp, c.lse, c.logits, c.tgt, M, V);
    ops_logprob_forward_naive(lp2, lse2, c.logits, c.tgt, M, V);
    EXPECT(rel(c.logp, lp2, M) < 1e-5, "logprob fwd rel %g", rel(c.logp, lp2, M));
    memcpy(c.scratch, c.logits, sizeof(float) * M * V);
    float *s2 = xmalloc(sizeof(float) * M * V);
    memcpy(s2, c.logits, sizeof(float) * M * V);
    ops_logprob_backward(c.scratch, c.lse, c.tgt, c.g, M, V);
    ops_logprob_backward_naive(s2, lse2, c.tgt, c.g, M, V);
    EXPECT(rel(c.scratch, s2, M * V) < 1e-5, "logprob bwd rel %g", rel(c.scratch, s2, M * V));
    double e = fd_check(lp_loss, &c, c.logits, M * V, c.scratch, 60);
    EXPECT(e < 5e-3, "logprob fd %g", e);
    free(c.logits), free(c.scratch), free(c.logp), free(c.lse), free(c.g), free(c.tgt);
    free(lp2), free(lse2), free(s2);
}

/* ---- encoder --------------------------------------------------------------------- */
static void test_encoder(void) {
    int tok[N], pos[N];
    for (int i = 0; i < N; i++) tok[i] = (int)rng_below(&rng, 5), pos[i] = i % T;
    float *wte = rnd(V * C, 1), *wpe = rnd(P * C, 1), *out = zeros(N * C), *d = rnd(N * C, 1);
    ops_encoder_forward(out, tok, pos, wte, wpe, N, C);
    int ok = 1;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < C; j++)
            if (out[i * C + j] != wte[tok[i] * C + j] + wpe[pos[i] * C + j]) ok = 0;
    EXPECT(ok, "encoder forward");
    float *dwte = zeros(V * C), *dwpe = zeros(P * C), *r1 = zeros(V * C), *r2 = zeros(P * C);
    ops_encoder_backward(dwte, dwpe, d, tok, pos, N, C);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < C; j++) {
            r1[tok[i] * C + j] += d[i * C + j];
            r2[pos[i] * C + j] += d[i * C + j];
        }
    EXPECT(rel(dwte, r1, V * C) < 1e-6 && rel(dwpe, r2, P * C) < 1e-6, "encoder backward");
    free(wte), free(wpe), free(out), free(d), free(dwte), free(dwpe), free(r1), free(r2);
}

/* ---- AdamW and sum of squares ----------------------------------------------------- */
static void test_adamw(void) {
    long n = 100003;
    float *p = rnd(n, 1), *g = rnd(n, 1), *m = zeros(n), *v = zeros(n);
    float *p2 = xmalloc(sizeof(float) * n), *m2 = zeros(n), *v2 = zeros(n);
    memcpy(p2, p, sizeof(float) * n);
    for (int t = 1; t <= 3; t++) {
        ops_adamw(p, g, m, v, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
        ops_adamw_naive(p2, g, m2, v2, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
    }
    EXPECT(rel(p, p2, n) < 1e-6, "adamw rel %g", rel(p, p2, n));
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)g[i] * g[i];
    double s2 = ops_sumsq(g, n);
    EXPECT(fabs(s - s2) / s < 1e-12, "sumsq %.17g vs %.17g", s2, s);
    free(p), free(g), free(m), free(v), free(p2), free(m2), free(v2);
}

/* decoding's products: a row's result must not depend on how many rows are computed together
 * (the batch-independence of decoding rests on it; ops.h: ops_matmul_min_rows) */
static void test_matmul_rows_invariant(void) {
    static const int shapes[][2] = {{64, 192},  {64, 64},   {64, 256},   {64, 700},  {256, 768},   {256, 256},
                                    {576, 960}, {576, 576}, {576, 1536}, {768, 768}, {768, 2304}, {768, 3072},
                                    {3072, 768}, {896, 1152}, {1536, 576}};
    enum { MAXM = 70 };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int C = shapes[s][0], OC = shapes[s][1], rows = MAXM > ops_matmul_min_rows(OC) ? MAXM : ops_matmul_min_rows(OC);
        float *inp = xmalloc_aligned(sizeof(float) * (size_t)rows * C), *w = xmalloc_aligned(sizeof(float) * (size_t)OC * C);
        float *b = xmalloc(sizeof(float) * (size_t)OC), *ref = xmalloc(sizeof(float) * (size_t)OC);
        float *out = xmalloc_aligned(sizeof(float) * (size_t)rows * OC);
        for (int i = 0; i < C; i++) inp[i] = (float)rng_normal(&rng);
        for (int r = 1; r < rows; r++) memcpy(inp + (size_t)r * C, inp, sizeof(float) * (size_t)C);
        for (long i = 0; i < (long)OC * C; i++) w[i] = (float)rng_normal(&rng) * 0.05f;
        for (int i = 0; i < OC; i++) b[i] = (float)rng_normal(&rng);
        ops_matmul_forward_rows(out, inp, w, b, MAXM, C, OC);
        memcpy(ref, out, sizeof(float) * (size_t)OC);
        int bad = 0;
        for (int M = 1; M <= MAXM && !bad; M++) {
            ops_matmul_forward_rows(out, inp, w, b, M, C, OC);
            for (int r = 0; r < M; r++)
                if (memcmp(out + (size_t)r * OC, ref, sizeof(float) * (size_t)OC)) bad = M;
        }
        EXPECT(!bad, "C %d OC %d: a row of a %d-row product differs from the same row of a %d-row one", C, OC, bad, MAXM);
        free(inp), free(w), free(b), free(ref), free(out);
    }
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    rng_seed(&rng, 1234);
    make_seg();
    int threads[] = {1, 3};
    for (int k = 0; k < 2; k++) {
        par_init(threads[k]);
        test_expf();
        test_encoder();
        test_layernorm();
        test_matmul();
        test_attention();
        test_gelu();
        test_logprob();
        test_adamw();
        test_matmul_rows_invariant();
    }
    par_shutdown();
    return test_summary();
}
