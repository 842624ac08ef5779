/* ops -- forward/backward kernels of the GPT-2 student; see include/engine/ops.h.
 * GEMMs go to OpenBLAS; the rest runs on the util thread pool.  The hot
 * elementwise loops are compiled for AVX-512, AVX2 and baseline x86-64 and
 * picked at load time (target_clones); with -std=c11 GCC does not contract
 * a*b+c into FMA, so every clone rounds identically and replicas on
 * different node types stay bitwise equal. */
#include "engine/ops.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT
#endif

#define LANES 16 /* explicit partial sums: vectorisable and order-fixed */

/* ---- scalar helpers ------------------------------------------------------ */

/* exp(x) by Cody-Waite reduction x = n ln2 + r and a degree-6 polynomial. */
static inline float fexp(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.0f ? 88.0f : x;
    float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - fn * 0.693145751953125f;
    r = r - fn * 1.42860682030941723212e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f +
                                                                      r * (0.00833333377f + r * 0.00138888892f)))));
    int32_t bits = ((int32_t)fn + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

float ops_expf(float x) { return fexp(x); }

/* 0.5 (1 + tanh(u)) = sigmoid(2u), without the cancellation of 1 + tanh */
static inline float fsig2(float u) { return 1.0f / (1.0f + fexp(-2.0f * u)); }

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f

/* Below this many elements of work a kernel runs on the calling thread:
 * waking the pool costs more than it saves. */
#define PAR_MIN_WORK 32768L
static long grain_for(long per_item) {
    long g = (PAR_MIN_WORK + per_item - 1) / (per_item > 0 ? per_item : 1);
    return g < 2 ? 2 : g;
}

/* Runs an OpenBLAS-calling task on the pool with OpenBLAS itself held to one
 * thread (small per-head GEMMs are erratic when split; docs/performance.md). */
static void par_for_blas(long n, ParFn fn, void *ctx) {
    if (par_nthreads() <= 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    int nb = openblas_get_num_threads();
    openblas_set_num_threads(1);
    par_for(n, 1, fn, ctx);
    openblas_set_num_threads(nb);
}

/* ---- encoder --------------------------------------------------------------- */

typedef struct {
    float *out, *dwte, *dwpe;
    const float *wte, *wpe, *dout;
    const int *tok, *pos;
    int N, C;
} EncCtx;

static void enc_fwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    EncCtx *c = vc;
    for (long i = b; i < e; i++) {
        float *o = c->out + i * c->C;
        const float *a = c->wte + (long)c->tok[i] * c->C, *p = c->wpe + (long)c->pos[i] * c->C;
        for (int j = 0; j < c->C; j++) o[j] = a[j] + p[j];
    }
}

void ops_encoder_forward(float *out, const int *tok, const int *pos, const float *wte,
                         const float *wpe, int N, int C) {
    EncCtx c = {.out = out, .wte = wte, .wpe = wpe, .tok = tok, .pos = pos, .N = N, .C = C};
    par_for(N, grain_for(C), enc_fwd_task, &c);
}

/* by column range: each thread owns columns [b, e) of every row -> no races,
 * rows accumulated in order */
static void enc_bwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    EncCtx *c = vc;
    for (long i = 0; i < c->N; i++) {
        const float *d = c->dout + i * c->C;
        float *w = c->dwte + (long)c->tok[i] * c->C, *p = c->dwpe + (long)c->pos[i] * c->C;
        for (long j = b; j < e; j++) {
            w[j] += d[j];
            p[j] += d[j];
        }
    }
}

void ops_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tok,
                          const int *pos, int N, int C) {
    EncCtx c = {.dwte = dwte, .dwpe = dwpe, .dout = dout, .tok = tok, .pos = pos, .N = N, .C = C};
    par_for(C, grain_for(N), enc_bwd_task, &c);
}

/* ---- LayerNorm --------------------------------------------------------------- */

typedef struct {
    float *out, *mean, *rstd, *dinp, *dw, *db;
    const float *inp, *w, *b, *dout, *cmean, *crstd;
    int N, C;
} LnCtx;

HOT static void ln_fwd_row(float *o, float *mean, float *rstd, const float *x, const float *w,
                           const float *b, int C) {
    float s[LANES] = {0};
    int j = 0;
    for (; j + LANES <= C; j += LANES)
        for (int k = 0; k < LANES; k++) s[k] += x[j + k];
    float m = 0;
    for (int k = 0; k < LANES; k++) m += s[k];
    for (; j < C; j++) m += x[j];
    m /= (float)C;
    float q[LANES] = {0};
    j = 0;
    for (; j + LANES <= C; j += LANES)
        for (int k = 0; k < LANES; k++) {
            float d = x[j + k] - m;
            q[k] += d * d;
        }
    float var = 0;
    for (int k = 0; k < LANES; k++) var += q[k];
    for (; j < C; j++) var += (x[j] - m) * (x[j] - m);
    var /= (float)C;
    float r = 1.0f / sqrtf(var + 1e-5f);
    for (j = 0; j < C; j++) o[j] = (x[j] - m) * r * w[j] + b[j];
    *mean = m;
    *rstd = r;
}

static void ln_fwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    LnCtx *c = vc;
    for (long i = b; i < e; i++)
        ln_fwd_row(c->out + i * c->C, c->mean + i, c->rstd + i, c->inp + i * c->C, c->w, c->b,
                   c->C);
}

void ops_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C) {
    LnCtx c = {.out = out, .mean = mean, .rstd = rstd, .inp = inp, .w = w, .b = b, .N = N, .C = C};
    par_for(N, grain_for(3L * C), ln_fwd_task, &c);
}

HOT static void ln_bwd_row(float *di, const float *d, const float *x, const float *w, float m,
                           float r, int C) {
    float s1[LANES] = {0}, s2[LANES] = {0};
    int j = 0;
    for (; j + LANES <= C; j += LANES)
        for (int k = 0; k < LANES; k++) {
            float n = (x[j + k] - m) * r, dn = w[j + k] * d[j + k];
            s1[k] += dn;
            s2[k] += dn * n;
        }
    float a = 0, bb = 0;
    for (int k = 0; k < LANES; k++) {
        a += s1[k];
        bb += s2[k];
    }
    for (; j < C; j++) {
        float n = (x[j] - m) * r, dn = w[j] * d[j];
        a += dn;
        bb += dn * n;
    }
    a /= (float)C;
    bb /= (float)C;
    for (j = 0; j < C; j++) {
        float n = (x[j] - m) * r;
        di[j] += (w[j] * d[j] - a - n * bb) * r;
    }
}

static void ln_bwd_rows_task(void *vc, long b, long e, int tid) {
    (void)tid;
    LnCtx *c = vc;
    for (long i = b; i < e; i++)
        ln_bwd_row(c->dinp + i * c->C, c->dout + i * c->C, c->inp + i * c->C, c->w, c->cmean[i],
                   c->crstd[i], c->C);
}

HOT static void ln_bwd_cols(LnCtx *c, long b, long e) {
    for (long i = 0; i < c->N; i++) {
        const float *x = c->inp + i * c->C, *d = c->dout + i * c->C;
        float m = c->cmean[i], r = c->crstd[i];
        for (long j = b; j < e; j++) {
            c->dw[j] += (x[j] - m) * r * d[j];
            c->db[j] += d[j];
        }
    }
}

static void ln_bwd_cols_task(void *vc, long b, long e, int tid) {
    (void)tid;
    ln_bwd_cols(vc, b, e);
}

void ops_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int N, int C) {
    LnCtx c = {.dinp = dinp, .dw = dw, .db = db, .dout = dout, .inp = inp, .w = w,
               .cmean = mean, .crstd = rstd, .N = N, .C = C};
    par_for(N, grain_for(4L * C), ln_bwd_rows_task, &c);
    par_for(C, grain_for(2L * N), ln_bwd_cols_task, &c);
}

/* ---- matmul -------------------------------------------------------------------- */

typedef struct {
    float *out;
    const float *bias, *dout;
    int N, OC;
} BiasCtx;

static void bias_fill_task(void *vc, long b, long e, int tid) {
    (void)tid;
    BiasCtx *c = vc;
    for (long i = b; i < e; i++) memcpy(c->out + i * c->OC, c->bias, sizeof(float) * c->OC);
}

void ops_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                        int C, int OC) {
    float beta = 0.0f;
    if (bias) {
        BiasCtx c = {.out = out, .bias = bias, .N = N, .OC = OC};
        par_for(N, grain_for(OC), bias_fill_task, &c);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, beta, out,
                OC);
}

int ops_matmul_min_rows(int OC) { return OC > 0 ? (4096 + OC - 1) / OC : 1; }

void ops_matmul_forward_rows(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC) {
    int min = ops_matmul_min_rows(OC);
    ops_matmul_forward(out, inp, w, bias, N < min ? min : N, C, OC);
}

static void bias_grad_task(void *vc, long b, long e, int tid) {
    (void)tid;
    BiasCtx *c = vc;
    float *db = c->out;
    for (long i = 0; i < c->N; i++) {
        const float *d = c->dout + i * c->OC;
        for (long j = b; j < e; j++) db[j] += d[j];
    }
}

void ops_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, int N, int C, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C,
                    1.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
                dw, C);
    if (dbias) {
        BiasCtx c = {.out = dbias, .dout = dout, .N = N, .OC = OC};
        par_for(OC, grain_for(N), bias_grad_task, &c);
    }
}

/* ---- attention -------------------------------------------------------------------- */

typedef struct {
    float *out, *att, *dqkv, *datt;
    const float *qkv, *catt, *dout;
    const int *seg;
    int B, T, C, NH;
} AttCtx;

/* In place over one score row s[0..T): softmax over [lo, hi], zeros elsewhere. */
HOT static void masked_softmax_row(float *s, int lo, int hi, int T) {
    float mx = -INFINITY;
    for (int j = lo; j <= hi; j++) mx = s[j] > mx ? s[j] : mx;
    float sum = 0;
    for (int j = lo; j <= hi; j++) {
        s[j] = fexp(s[j] - mx);
        sum += s[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < lo; j++) s[j] = 0;
    for (int j = lo; j <= hi; j++) s[j] *= inv;
    for (int j = hi + 1; j < T; j++) s[j] = 0;
}

static void att_fwd_task(void *vc, long b0, long e0, int tid) {
    (void)tid;
    AttCtx *c = vc;
    int T = c->T, C = c->C, NH = c->NH, hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (long bh = b0; bh < e0; bh++) {
        int b = (int)(bh / NH), h = (int)(bh % NH);
        const float *q = c->qkv + (long)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
        float *A = c->att + bh * T * T;
        const int *seg = c->seg + (long)b * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C3, k, C3, 0.0f,
                    A, T);
        for (int t = 0; t < T; t++) masked_softmax_row(A + (long)t * T, seg[t], t, T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, A, T, v, C3, 0.0f,
                    c->out + (long)b * T * C + h * hs, C);
    }
}

void ops_attention_forward(float *out, float *att, const float *qkv, const int *seg, int B, int T,
                           int C, int NH) {
    AttCtx c = {.out = out, .att = att, .qkv = qkv, .seg = seg, .B = B, .T = T, .C = C, .NH = NH};
    par_for_blas((long)B * NH, att_fwd_task, &c);
}

/* dS = P * (dP - sum_j dP_j P_j), row-wise, in place over dP */
HOT static void softmax_bwd_row(float *dp, const float *p, int lo, int hi, int T) {
    float acc[LANES] = {0};
    int j = lo;
    for (; j + LANES <= hi + 1; j += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += dp[j + k] * p[j + k];
    float dot = 0;
    for (int k = 0; k < LANES; k++) dot += acc[k];
    for (; j <= hi; j++) dot += dp[j] * p[j];
    for (j = 0; j < lo; j++) dp[j] = 0;
    for (j = lo; j <= hi; j++) dp[j] = p[j] * (dp[j] - dot);
    for (j = hi + 1; j < T; j++) dp[j] = 0;
}

static void att_bwd_task(void *vc, long b0, long e0, int tid) {
    (void)tid;
    AttCtx *c = vc;
    int T = c->T, C = c->C, NH = c->NH, hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (long bh = b0; bh < e0; bh++) {
        int b = (int)(bh / NH), h = (int)(bh % NH);
        long base = (long)b * T * C3 + h * hs;
        const float *q = c->qkv + base, *k = q + C, *v = q + 2 * C;
        float *dq = c->dqkv + base, *dk = dq + C, *dv = dq + 2 * C;
        const float *P = c->catt + bh * T * T;
        float *dP = c->datt + bh * T * T;
        const float *dy = c->dout + (long)b * T * C + h * hs;
        const int *seg = c->seg + (long)b * T;
        /* dP = dY V^T ; dV += P^T dY */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dy, C, v, C3, 0.0f,
                    dP, T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, P, T, dy, C, 1.0f, dv,
                    C3);
        for (int t = 0; t < T; t++) softmax_bwd_row(dP + (long)t * T, P + (long)t * T, seg[t], t, T);
        /* dQ += scale dS K ; dK += scale dS^T Q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, scale, dP, T, k, C3, 1.0f,
                    dq, C3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, scale, dP, T, q, C3, 1.0f,
                    dk, C3);
    }
}

void ops_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                            const float *att, const int *seg, int B, int T, int C, int NH) {
    AttCtx c = {.dqkv = dqkv, .datt = datt, .dout = dout, .qkv = qkv, .catt = att, .seg = seg,
                .B = B, .T = T, .C = C, .NH = NH};
    par_for_blas((long)B * NH, att_bwd_task, &c);
}

/* ---- GELU, residual, gather --------------------------------------------------------- */

typedef struct {
    float *out;
    const float *a, *b, *c;
} EwCtx;

HOT static void gelu_fwd_range(float *o, const float *x, long n) {
    for (long i = 0; i < n; i++) {
        float u = GELU_K * (x[i] + GELU_C * x[i] * x[i] * x[i]);
        o[i] = x[i] * fsig2(u);
    }
}

static void gelu_fwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    EwCtx *c = vc;
    gelu_fwd_range(c->out + b, c->a + b, e - b);
}

void ops_gelu_forward(float *out, const float *inp, long n) {
    EwCtx c = {.out = out, .a = inp};
    par_for(n, PAR_MIN_WORK / 4, gelu_fwd_task, &c);
}

HOT static void gelu_bwd_range(float *di, const float *x, const float *d, long n) {
    for (long i = 0; i < n; i++) {
        float xi = x[i], x2 = xi * xi;
        float s = fsig2(GELU_K * (xi + GELU_C * x2 * xi));
        float g = s + 2.0f * xi * s * (1.0f - s) * GELU_K * (1.0f + 3.0f * GELU_C * x2);
        di[i] += g * d[i];
    }
}

static void gelu_bwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    EwCtx *c = vc;
    gelu_bwd_range(c->out + b, c->a + b, c->b + b, e - b);
}

void ops_gelu_backward(float *dinp, const float *inp, const float *dout, long n) {
    EwCtx c = {.out = dinp, .a = inp, .b = dout};
    par_for(n, PAR_MIN_WORK / 4, gelu_bwd_task, &c);
}

static void resid_task(void *vc, long b, long e, int tid) {
    (void)tid;
    EwCtx *c = vc;
    for (long i = b; i < e; i++) c->out[i] = c->a[i] + c->b[i];
}

void ops_residual_forward(float *out, const float *a, const float *b, long n) {
    EwCtx c = {.out = out, .a = a, .b = b};
    par_for(n, PAR_MIN_WORK, resid_task, &c);
}

void ops_gather_rows(float *dst, const float *src, const int *idx, int M, int C) {
    for (int m = 0; m < M; m++) memcpy(dst + (long)m * C, src + (long)idx[m] * C, sizeof(float) * C);
}

void ops_scatter_add_rows(float *dst, const float *src, const int *idx, int M, int C) {
    for (int m = 0; m < M; m++) {
        float *d = dst + (long)idx[m] * C;
        const float *s = src + (long)m * C;
        for (int j = 0; j < C; j++) d[j] += s[j];
    }
}

/* ---- log-probabilities (the LM head's loss side) -------------------------------- */

typedef struct {
    float *logp, *lse, *logits;
    const float *clogits, *g, *clse;
    const int *tgt;
    int M, V;
} LpCtx;

HOT static float row_lse(const float *x, int V) {
    float mx[LANES];
    for (int k = 0; k < LANES; k++) mx[k] = -INFINITY;
    int j = 0;
    for (; j + LANES <= V; j += LANES)
        for (int k = 0; k < LANES; k++) mx[k] = x[j + k] > mx[k] ? x[j + k] : mx[k];
    float m = -INFINITY;
    for (int k = 0; k < LANES; k++) m = mx[k] > m ? mx[k] : m;
    for (; j < V; j++) m = x[j] > m ? x[j] : m;
    float s[LANES] = {0};
    j = 0;
    for (; j + LANES <= V; j += LANES)
        for (int k = 0; k < LANES; k++) s[k] += fexp(x[j + k] - m);
    float sum = 0;
    for (int k = 0; k < LANES; k++) sum += s[k];
    for (; j < V; j++) sum += fexp(x[j] - m);
    return m + logf(sum);
}

static void lp_fwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    LpCtx *c = vc;
    for (long m = b; m < e; m++) {
        const float *x = c->clogits + m * c->V;
        float l = row_lse(x, c->V);
        c->lse[m] = l;
        c->logp[m] = x[c->tgt[m]] - l;
    }
}

void ops_logprob_forward(float *logp, float *lse, const float *logits, const int *tgt, int M,
                         int V) {
    LpCtx c = {.logp = logp, .lse = lse, .clogits = logits, .tgt = tgt, .M = M, .V = V};
    par_for(M, grain_for(2L * V), lp_fwd_task, &c);
}

HOT static void lp_bwd_row(float *x, float l, float g, int V) {
    for (int j = 0; j < V; j++) x[j] = -g * fexp(x[j] - l);
}

static void lp_bwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    LpCtx *c = vc;
    for (long m = b; m < e; m++) {
        float *x = c->logits + m * c->V;
        float g = c->g[m];
        if (g == 0.0f) {
            memset(x, 0, sizeof(float) * c->V);
            continue;
        }
        lp_bwd_row(x, c->clse[m], g, c->V);
        x[c->tgt[m]] += g;
    }
}

void ops_logprob_backward(float *logits, const float *lse, const int *tgt, const float *g, int M,
                          int V) {
    LpCtx c = {.logits = logits, .clse = lse, .tgt = tgt, .g = g, .M = M, .V = V};
    par_for(M, grain_for(2L * V), lp_bwd_task, &c);
}

/* ---- reductions and the optimizer -------------------------------------------------- */

HOT static double sumsq_range(const float *x, long n) {
    double s[8] = {0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += (double)x[i + k] * (double)x[i + k];
    double t = 0;
    for (int k = 0; k < 8; k++) t += s[k];
    for (; i < n; i++) t += (double)x[i] * (double)x[i];
    return t;
}

#define SUMSQ_BLOCK 65536L
typedef struct {
    const float *x;
    long n;
    double *part;
} SqCtx;

static void sumsq_task(void *vc, long b, long e, int tid) {
    (void)tid;
    SqCtx *c = vc;
    for (long k = b; k < e; k++) {
        long lo = k * SUMSQ_BLOCK, hi = lo + SUMSQ_BLOCK < c->n ? lo + SUMSQ_BLOCK : c->n;
        c->part[k] = sumsq_range(c->x + lo, hi - lo);
    }
}

double ops_sumsq(const float *x, long n) {
    long nb = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    double stackpart[256];
    double *part = nb <= 256 ? stackpart : xmalloc(sizeof(double) * (size_t)nb);
    SqCtx c = {.x = x, .n = n, .part = part};
    par_for(nb, 2, sumsq_task, &c);
    double t = 0;
    for (long k = 0; k < nb; k++) t += part[k];
    if (part != stackpart) free(part);
    return t;
}

static void scale_task(void *vc, long b, long e, int tid) {
    (void)tid;
    EwCtx *c = vc;
    float s = *c->a;
    for (long i = b; i < e; i++) c->out[i] *= s;
}

void ops_scale(float *x, float s, long n) {
    EwCtx c = {.out = x, .a = &s};
    par_for(n, 65536, scale_task, &c);
}

typedef struct {
    float *p, *m, *v;
    const float *g;
    float lr, b1, b2, eps, wd, bc1, bc2;
} AdamCtx;

HOT static void adamw_range(AdamCtx *c, long b, long e) {
    float lr = c->lr, b1 = c->b1, b2 = c->b2, eps = c->eps, decay = 1.0f - c->lr * c->wd;
    float bc1 = c->bc1, bc2 = c->bc2;
    for (long i = b; i < e; i++) {
        float g = c->g[i];
        float m = b1 * c->m[i] + (1.0f - b1) * g;
        float v = b2 * c->v[i] + (1.0f - b2) * g * g;
        c->m[i] = m;
        c->v[i] = v;
        float mhat = m / bc1, vhat = v / bc2;
        c->p[i] = c->p[i] * decay - lr * mhat / (sqrtf(vhat) + eps);
    }
}

static void adamw_task(void *vc, long b, long e, int tid) {
    (void)tid;
    adamw_range(vc, b, e);
}

void ops_adamw(float *p, const float *g, float *m, float *v, long n, float lr, float beta1,
               float beta2, float eps, float wd, int t) {
    AdamCtx c = {.p = p, .g = g, .m = m, .v = v, .lr = lr, .b1 = beta1, .b2 = beta2, .eps = eps,
                 .wd = wd, .bc1 = 1.0f - powf(beta1, (float)t), .bc2 = 1.0f - powf(beta2, (float)t)};
    par_for(n, 65536, adamw_task, &c);
}

/* ---- naive references ------------------------------------------------------------------ */

void ops_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                                 const float *w, const float *b, int N, int C) {
    for (int i = 0; i < N; i++) {
        const float *x = inp + (long)i * C;
        double m = 0, v = 0;
        for (int j = 0; j < C; j++) m += x[j];
        m /= C;
        for (int j = 0; j < C; j++) v += (x[j] - m) * (x[j] - m);
        v /= C;
        double r = 1.0 / sqrt(v + 1e-5);
        for (int j = 0; j < C; j++) out[(long)i * C + j] = (float)((x[j] - m) * r * w[j] + b[j]);
        mean[i] = (float)m;
        rstd[i] = (float)r;
    }
}

void ops_layernorm_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                                  const float *inp, const float *w, const float *mean,
                                  const float *rstd, int N, int C) {
    for (int i = 0; i < N; i++) {
        const float *x = inp + (long)i * C, *d = dout + (long)i * C;
        double a = 0, bb = 0;
        for (int j = 0; j < C; j++) {
            double n = (x[j] - mean[i]) * (double)rstd[i];
            a += (double)w[j] * d[j];
            bb += (double)w[j] * d[j] * n;
            dw[j] += (float)(n * d[j]);
            db[j] += d[j];
        }
        a /= C;
        bb /= C;
        for (int j = 0; j < C; j++) {
            double n = (x[j] - mean[i]) * (double)rstd[i];
            dinp[(long)i * C + j] += (float)(((double)w[j] * d[j] - a - n * bb) * rstd[i]);
        }
    }
}

void ops_matmul_forward_naive(float *out, const float *inp, const float *w, const float *bias,
                              int N, int C, int OC) {
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0;
            for (int j = 0; j < C; j++) s += (double)inp[(long)i * C + j] * w[(long)o * C + j];
            out[(long)i * OC + o] = (float)s;
        }
}

void ops_matmul_backward_naive(float *dinp, float *dw, float *dbias, const float *dout,
                               const float *inp, const float *w, int N, int C, int OC) {
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            float d = dout[(long)i * OC + o];
            for (int j = 0; j < C; j++) {
                if (dinp) dinp[(long)i * C + j] += d * w[(long)o * C + j];
                dw[(long)o * C + j] += d * inp[(long)i * C + j];
            }
            if (dbias) dbias[o] += d;
        }
}

void ops_attention_forward_naive(float *out, float *att, const float *qkv, const int *seg, int B,
                                 int T, int C, int NH) {
    int hs = C / NH;
    double scale = 1.0 / sqrt((double)hs);
    double *row = xmalloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((long)b * T + t) * 3 * C + h * hs;
                int lo = seg[(long)b * T + t];
                double mx = -INFINITY, sum = 0;
                for (int s = lo; s <= t; s++) {
                    const float *k = qkv + ((long)b * T + s) * 3 * C + C + h * hs;
                    double d = 0;
                    for (int j = 0; j < hs; j++) d += (double)q[j] * k[j];
                    row[s] = d * scale;
                    if (row[s] > mx) mx = row[s];
                }
                for (int s = lo; s <= t; s++) sum += (row[s] = exp(row[s] - mx));
                float *A = att + (((long)b * NH + h) * T + t) * T;
                for (int s = 0; s < T; s++) A[s] = (s >= lo && s <= t) ? (float)(row[s] / sum) : 0.0f;
                float *o = out + ((long)b * T + t) * C + h * hs;
                for (int j = 0; j < hs; j++) {
                    double y = 0;
                    for (int s = lo; s <= t; s++)
                        y += (double)A[s] * qkv[((long)b * T + s) * 3 * C + 2 * C + h * hs + j];
                    o[j] = (float)y;
                }
            }
    free(row);
}

void ops_attention_backward_naive(float *dqkv, const float *dout, const float *qkv,
                                  const float *att, const int *seg, int B, int T, int C, int NH) {
    int hs = C / NH;
    double scale = 1.0 / sqrt((double)hs);
    double *dp = xmalloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int lo = seg[(long)b * T + t];
                const float *A = att + (((long)b * NH + h) * T + t) * T;
                const float *dy = dout + ((long)b * T + t) * C + h * hs;
                double dot = 0;
                for (int s = lo; s <= t; s++) {
                    const float *v = qkv + ((long)b * T + s) * 3 * C + 2 * C + h * hs;
                    float *dv = dqkv + ((long)b * T + s) * 3 * C + 2 * C + h * hs;
                    double d = 0;
                    for (int j = 0; j < hs; j++) {
                        d += (double)dy[j] * v[j];
                        dv[j] += A[s] * dy[j];
                    }
                    dp[s] = d;
                    dot += d * A[s];
                }
                const float *q = qkv + ((long)b * T + t) * 3 * C + h * hs;
                float *dq = dqkv + ((long)b * T + t) * 3 * C + h * hs;
                for (int s = lo; s <= t; s++) {
                    double ds = A[s] * (dp[s] - dot) * scale;
                    const float *k = qkv + ((long)b * T + s) * 3 * C + C + h * hs;
                    float *dk = dqkv + ((long)b * T + s) * 3 * C + C + h * hs;
                    for (int j = 0; j < hs; j++) {
                        dq[j] += (float)(ds * k[j]);
                        dk[j] += (float)(ds * q[j]);
                    }
                }
            }
    free(dp);
}

void ops_gelu_forward_naive(float *out, const float *inp, long n) {
    for (long i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = (float)(0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))));
    }
}

void ops_gelu_backward_naive(float *dinp, const float *inp, const float *dout, long n) {
    for (long i = 0; i < n; i++) {
        double x = inp[i], k = sqrt(2.0 / M_PI);
        double u = k * (x + 0.044715 * x * x * x), th = tanh(u);
        double g = 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k * (1 + 3 * 0.044715 * x * x);
        dinp[i] += (float)(g * dout[i]);
    }
}

void ops_logprob_forward_naive(float *logp, float *lse, const float *logits, const int *tgt,
                               int M, int V) {
    for (int m = 0; m < M; m++) {
        const float *x = logits + (long)m * V;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++) mx = x[v] > mx ? x[v] : mx;
        for (int v = 0; v < V; v++) s += exp(x[v] - mx);
        lse[m] = (float)(mx + log(s));
        logp[m] = (float)(x[tgt[m]] - (mx + log(s)));
    }
}

void ops_logprob_backward_naive(float *logits, const float *lse, const int *tgt, const float *g,
                                int M, int V) {
    for (int m = 0; m < M; m++) {
        float *x = logits + (long)m * V;
        for (int v = 0; v < V; v++) {
            double p = exp((double)x[v] - lse[m]);
            x[v] = (float)(g[m] * ((v == tgt[m] ? 1.0 : 0.0) - p));
        }
    }
}

void ops_adamw_naive(float *p, const float *g, float *m, float *v, long n, float lr, float beta1,
                     float beta2, float eps, float wd, int t) {
    for (long i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        double mhat = m[i] / (1.0 - pow(beta1, t)), vhat = v[i] / (1.0 - pow(beta2, t));
        p[i] = (float)(p[i] * (1.0 - (double)lr * wd) - lr * mhat / (sqrt(vhat) + eps));
    }
}
