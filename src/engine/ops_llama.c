/* ops_llama -- kernels of the Llama-style student; see include/engine/ops_llama.h.
 * GEMMs go to OpenBLAS; the rest runs on the util thread pool.  The hot
 * elementwise loops are compiled for AVX-512, AVX2 and baseline x86-64
 * (target_clones) and, as in ops.c, never contract into FMA (-std=c11), so
 * every clone rounds identically. */
#include "engine/ops_llama.h"

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

#define LANES 16         /* explicit partial sums: vectorisable and order-fixed */
#define PAR_MIN_WORK 32768L
#define ATT_BLOCK 64     /* query rows per attention block */

/* exp(x), inlinable for the vectorised loops: the same Cody-Waite reduction and
 * degree-6 polynomial as ops.c's (max rel. error ~2e-7 on [-87, 88]). */
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

static long grain_for(long per_item) {
    long g = (PAR_MIN_WORK + per_item - 1) / (per_item > 0 ? per_item : 1);
    return g < 2 ? 2 : g;
}

/* Runs an OpenBLAS-calling task on the pool with OpenBLAS held to one thread
 * (small per-head GEMMs are erratic when split; docs/performance.md). */
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

/* ---- token embedding --------------------------------------------------------------- */

typedef struct {
    float *out;
    const float *in;
    const int *tok;
    int N, C;
} EmbCtx;

static void emb_fwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    EmbCtx *c = vc;
    for (long i = b; i < e; i++) memcpy(c->out + i * c->C, c->in + (long)c->tok[i] * c->C, sizeof(float) * c->C);
}

void ops_embedding_forward(float *out, const int *tok, const float *wte, int N, int C) {
    EmbCtx c = {.out = out, .in = wte, .tok = tok, .N = N, .C = C};
    par_for(N, grain_for(C), emb_fwd_task, &c);
}

/* columns [b, e) of every row, rows in order: no races, order fixed */
static void emb_bwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    EmbCtx *c = vc;
    for (long i = 0; i < c->N; i++) {
        const float *d = c->in + i * c->C;
        float *w = c->out + (long)c->tok[i] * c->C;
        for (long j = b; j < e; j++) w[j] += d[j];
    }
}

void ops_embedding_backward(float *dwte, const float *dout, const int *tok, int N, int C) {
    EmbCtx c = {.out = dwte, .in = dout, .tok = tok, .N = N, .C = C};
    par_for(C, grain_for(N), emb_bwd_task, &c);
}

/* ---- RMSNorm ------------------------------------------------------------------------ */

typedef struct {
    float *out, *rstd, *dinp, *dw;
    const float *inp, *w, *dout, *crstd;
    int N, H, D, ld, acc;
    float eps;
} RmsCtx;

static inline long row_off(const RmsCtx *c, long r) { return (r / c->H) * c->ld + (r % c->H) * c->D; }

HOT static float sumsq_f(const float *x, int D) {
    float s[LANES] = {0};
    int j = 0;
    for (; j + LANES <= D; j += LANES)
        for (int k = 0; k < LANES; k++) s[k] += x[j + k] * x[j + k];
    float t = 0;
    for (int k = 0; k < LANES; k++) t += s[k];
    for (; j < D; j++) t += x[j] * x[j];
    return t;
}

HOT static void rms_fwd_row(float *o, const float *x, const float *w, float r, int D) {
    for (int j = 0; j < D; j++) o[j] = x[j] * r * w[j];
}

static void rms_fwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    RmsCtx *c = vc;
    for (long r = b; r < e; r++) {
        long o = row_off(c, r);
        float rs = 1.0f / sqrtf(sumsq_f(c->inp + o, c->D) / (float)c->D + c->eps);
        c->rstd[r] = rs;
        rms_fwd_row(c->out + o, c->inp + o, c->w, rs, c->D);
    }
}

void ops_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int H, int D,
                         int ld, float eps) {
    RmsCtx c = {.out = out, .rstd = rstd, .inp = inp, .w = w, .N = N, .H = H, .D = D, .ld = ld, .eps = eps};
    par_for((long)N * H, grain_for(2L * D), rms_fwd_task, &c);
}

/* di (+)= (w*d - xhat * mean(w*d*xhat)) * r, xhat = x*r; reads d[j] before writing di[j] */
HOT static void rms_bwd_row(float *di, const float *d, const float *x, const float *w, float r, int D, int acc) {
    float s[LANES] = {0};
    int j = 0;
    for (; j + LANES <= D; j += LANES)
        for (int k = 0; k < LANES; k++) s[k] += w[j + k] * d[j + k] * (x[j + k] * r);
    float dot = 0;
    for (int k = 0; k < LANES; k++) dot += s[k];
    for (; j < D; j++) dot += w[j] * d[j] * (x[j] * r);
    dot /= (float)D;
    if (acc)
        for (j = 0; j < D; j++) di[j] += (w[j] * d[j] - x[j] * r * dot) * r;
    else
        for (j = 0; j < D; j++) di[j] = (w[j] * d[j] - x[j] * r * dot) * r;
}

static void rms_bwd_rows_task(void *vc, long b, long e, int tid) {
    (void)tid;
    RmsCtx *c = vc;
    for (long r = b; r < e; r++) {
        long o = row_off(c, r);
        rms_bwd_row(c->dinp + o, c->dout + o, c->inp + o, c->w, c->crstd[r], c->D, c->acc);
    }
}

HOT static void rms_dw_cols(RmsCtx *c, long b, long e) {
    long R = (long)c->N * c->H;
    for (long r = 0; r < R; r++) {
        long o = row_off(c, r);
        const float *x = c->inp + o, *d = c->dout + o;
        float rs = c->crstd[r];
        for (long j = b; j < e; j++) c->dw[j] += d[j] * (x[j] * rs);
    }
}

static void rms_dw_task(void *vc, long b, long e, int tid) {
    (void)tid;
    rms_dw_cols(vc, b, e);
}

void ops_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                          const float *rstd, int N, int H, int D, int ld, int acc) {
    RmsCtx c = {.dinp = dinp, .dw = dw, .dout = dout, .inp = inp, .w = w, .crstd = rstd, .N = N, .H = H,
                .D = D, .ld = ld, .acc = acc};
    /* the weight gradient first: in place, the rows pass overwrites dout */
    par_for(D, grain_for(2L * N * H), rms_dw_task, &c);
    par_for((long)N * H, grain_for(4L * D), rms_bwd_rows_task, &c);
}

/* ---- rotary position embeddings ----------------------------------------------------------- */

void ops_rope_inv_freq(double *inv_freq, int hd, double theta, int llama3, double factor, double low_ff,
                       double high_ff, int orig) {
    for (int j = 0; j < hd / 2; j++) {
        double f = 1.0 / pow(theta, (2.0 * j) / hd);
        if (llama3) {
            double wavelen = 2.0 * M_PI / f, low_wl = orig / low_ff, high_wl = orig / high_ff;
            if (wavelen > low_wl) {
                f = f / factor;
            } else if (wavelen >= high_wl) { /* medium: interpolate */
                double s = (orig / wavelen - low_ff) / (high_ff - low_ff);
                f = (1.0 - s) * f / factor + s * f;
            }
        }
        inv_freq[j] = f;
    }
}

typedef struct {
    float *x;
    const float *cs;
    const int *pos;
    const double *inv;
    int N, H, hd, ld;
} RopeCtx;

static void rope_table_task(void *vc, long b, long e, int tid) {
    (void)tid;
    RopeCtx *c = vc;
    int h2 = c->hd / 2;
    for (long i = b; i < e; i++) {
        float *row = c->x + i * c->hd;
        for (int j = 0; j < h2; j++) {
            double a = (double)c->pos[i] * c->inv[j];
            row[j] = (float)cos(a);
            row[h2 + j] = (float)sin(a);
        }
    }
}

void ops_rope_table(float *cs, const int *pos, const double *inv_freq, int N, int hd) {
    RopeCtx c = {.x = cs, .pos = pos, .inv = inv_freq, .N = N, .hd = hd};
    par_for(N, grain_for(20L * hd), rope_table_task, &c);
}

/* sign +1: rotate by the angle; -1: by its negative */
HOT static void rope_row(float *x, const float *cs, int H, int hd, float sign) {
    int h2 = hd / 2;
    const float *co = cs, *si = cs + h2;
    for (int h = 0; h < H; h++) {
        float *a = x + (long)h * hd, *b = a + h2;
        for (int j = 0; j < h2; j++) {
            float s = sign * si[j], u = a[j], v = b[j];
            a[j] = u * co[j] - v * s;
            b[j] = v * co[j] + u * s;
        }
    }
}

static void rope_fwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    RopeCtx *c = vc;
    for (long i = b; i < e; i++) rope_row(c->x + i * c->ld, c->cs + i * c->hd, c->H, c->hd, 1.0f);
}

static void rope_bwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    RopeCtx *c = vc;
    for (long i = b; i < e; i++) rope_row(c->x + i * c->ld, c->cs + i * c->hd, c->H, c->hd, -1.0f);
}

void ops_rope_forward(float *x, const float *cs, int N, int H, int hd, int ld) {
    RopeCtx c = {.x = x, .cs = cs, .N = N, .H = H, .hd = hd, .ld = ld};
    par_for(N, grain_for(2L * H * hd), rope_fwd_task, &c);
}

void ops_rope_backward(float *dx, const float *cs, int N, int H, int hd, int ld) {
    RopeCtx c = {.x = dx, .cs = cs, .N = N, .H = H, .hd = hd, .ld = ld};
    par_for(N, grain_for(2L * H * hd), rope_bwd_task, &c);
}

/* ---- SwiGLU ---------------------------------------------------------------------------------- */

typedef struct {
    float *out, *dgu;
    const float *gu, *dout;
    int N, F;
} SwiCtx;

HOT static void swiglu_fwd_row(float *o, const float *g, const float *u, int F) {
    for (int j = 0; j < F; j++) {
        float s = 1.0f / (1.0f + fexp(-g[j])), silu = g[j] * s; /* as swiglu_bwd_row: bitwise the same */
        o[j] = silu * u[j];
    }
}

static void swiglu_fwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    SwiCtx *c = vc;
    for (long i = b; i < e; i++) {
        const float *g = c->gu + i * 2 * c->F;
        swiglu_fwd_row(c->out + i * c->F, g, g + c->F, c->F);
    }
}

void ops_swiglu_forward(float *out, const float *gu, int N, int F) {
    SwiCtx c = {.out = out, .gu = gu, .N = N, .F = F};
    par_for(N, grain_for(4L * F), swiglu_fwd_task, &c);
}

HOT static void swiglu_bwd_row(float *dg, float *du, float *o, const float *d, const float *g, const float *u,
                               int F) {
    for (int j = 0; j < F; j++) {
        float s = 1.0f / (1.0f + fexp(-g[j])), silu = g[j] * s;
        dg[j] += d[j] * u[j] * (s * (1.0f + g[j] * (1.0f - s)));
        du[j] += d[j] * silu;
        if (o) o[j] = silu * u[j];
    }
}

static void swiglu_bwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    SwiCtx *c = vc;
    long F = c->F;
    for (long i = b; i < e; i++) {
        const float *g = c->gu + i * 2 * F;
        float *dg = c->dgu + i * 2 * F;
        swiglu_bwd_row(dg, dg + F, c->out ? c->out + i * F : NULL, c->dout + i * F, g, g + F, c->F);
    }
}

void ops_swiglu_backward(float *dgu, float *out, const float *dout, const float *gu, int N, int F) {
    SwiCtx c = {.out = out, .dgu = dgu, .gu = gu, .dout = dout, .N = N, .F = F};
    par_for(N, grain_for(6L * F), swiglu_bwd_task, &c);
}

/* ---- grouped-query attention --------------------------------------------------------------------- */

typedef struct {
    float *out, *att, *dq, *dk, *dv, *datt;
    const float *q, *k, *v, *catt, *dout;
    const int *seg;
    int ld, B, T, NH, KV, hd;
} GqaCtx;

/* the first key any query of rows [t0, t1) of a row may see */
static int block_lo(const int *seg, int t0, int t1) {
    int lo = t0;
    for (int t = t0; t < t1; t++) lo = seg[t] < lo ? seg[t] : lo;
    return lo;
}

/* In place over s[lo..t1): softmax over [a, t], zero elsewhere (a >= lo, t < t1). */
HOT static void masked_softmax(float *s, int lo, int a, int t, int t1) {
    float mx = -INFINITY;
    for (int j = a; j <= t; j++) mx = s[j] > mx ? s[j] : mx;
    float sum = 0;
    for (int j = a; j <= t; j++) {
        s[j] = fexp(s[j] - mx);
        sum += s[j];
    }
    float inv = 1.0f / sum;
    for (int j = lo; j < a; j++) s[j] = 0;
    for (int j = a; j <= t; j++) s[j] *= inv;
    for (int j = t + 1; j < t1; j++) s[j] = 0;
}

static void gqa_fwd_task(void *vc, long b0, long e0, int tid) {
    (void)tid;
    GqaCtx *c = vc;
    int T = c->T, NH = c->NH, hd = c->hd, ld = c->ld, QD = NH * hd, G = NH / c->KV;
    float scale = 1.0f / sqrtf((float)hd);
    for (long bh = b0; bh < e0; bh++) {
        int b = (int)(bh / NH), h = (int)(bh % NH), g = h / G;
        const float *q = c->q + (long)b * T * ld + h * hd;
        const float *k = c->k + (long)b * T * ld + g * hd, *v = c->v + (long)b * T * ld + g * hd;
        const int *seg = c->seg + (long)b * T;
        float *A = c->att + bh * T * T, *y = c->out + (long)b * T * QD + h * hd;
        for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
            int t1 = t0 + ATT_BLOCK < T ? t0 + ATT_BLOCK : T, lo = block_lo(seg, t0, t1);
            float *S = A + (long)t0 * T + lo;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t1 - t0, t1 - lo, hd, scale, q + (long)t0 * ld, ld,
                        k + (long)lo * ld, ld, 0.0f, S, T);
            for (int t = t0; t < t1; t++) masked_softmax(A + (long)t * T, lo, seg[t], t, t1);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t1 - t0, hd, t1 - lo, 1.0f, S, T,
                        v + (long)lo * ld, ld, 0.0f, y + (long)t0 * QD, QD);
        }
    }
}

void ops_gqa_forward(float *out, float *att, const float *q, const float *k, const float *v, int ld,
                     const int *seg, int B, int T, int NH, int KV, int hd) {
    GqaCtx c = {.out = out, .att = att, .q = q, .k = k, .v = v, .seg = seg, .ld = ld, .B = B, .T = T, .NH = NH,
                .KV = KV, .hd = hd};
    par_for_blas((long)B * NH, gqa_fwd_task, &c);
}

/* over dp[lo..t1): dS = P * (dP - sum P dP) on [a, t], zero elsewhere */
HOT static void softmax_bwd(float *dp, const float *p, int lo, int a, int t, int t1) {
    float acc[LANES] = {0};
    int j = a;
    for (; j + LANES <= t + 1; j += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += dp[j + k] * p[j + k];
    float dot = 0;
    for (int k = 0; k < LANES; k++) dot += acc[k];
    for (; j <= t; j++) dot += dp[j] * p[j];
    for (j = lo; j < a; j++) dp[j] = 0;
    for (j = a; j <= t; j++) dp[j] = p[j] * (dp[j] - dot);
    for (j = t + 1; j < t1; j++) dp[j] = 0;
}

/* one query head h of row b against its key/value head g, block by block */
static void gqa_bwd_head(GqaCtx *c, int b, int h, int g, float *dP) {
    int T = c->T, hd = c->hd, ld = c->ld, QD = c->NH * hd;
    float scale = 1.0f / sqrtf((float)hd);
    long rb = (long)b * T * ld;
    const float *q = c->q + rb + h * hd, *k = c->k + rb + g * hd, *v = c->v + rb + g * hd;
    float *dq = c->dq + rb + h * hd, *dk = c->dk + rb + g * hd, *dv = c->dv + rb + g * hd;
    const float *P = c->catt + ((long)b * c->NH + h) * T * T, *dy = c->dout + (long)b * T * QD + h * hd;
    const int *seg = c->seg + (long)b * T;
    for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
        int t1 = t0 + ATT_BLOCK < T ? t0 + ATT_BLOCK : T, lo = block_lo(seg, t0, t1), m = t1 - t0, n = t1 - lo;
        const float *Pb = P + (long)t0 * T + lo;
        float *dS = dP + (long)t0 * T + lo;
        /* dP = dY V^T ; dV += P^T dY */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, hd, 1.0f, dy + (long)t0 * QD, QD,
                    v + (long)lo * ld, ld, 0.0f, dS, T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, m, 1.0f, Pb, T, dy + (long)t0 * QD, QD, 1.0f,
                    dv + (long)lo * ld, ld);
        for (int t = t0; t < t1; t++) softmax_bwd(dP + (long)t * T, P + (long)t * T, lo, seg[t], t, t1);
        /* dQ += scale dS K ; dK += scale dS^T Q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, n, scale, dS, T, k + (long)lo * ld, ld, 1.0f,
                    dq + (long)t0 * ld, ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, m, scale, dS, T, q + (long)t0 * ld, ld, 1.0f,
                    dk + (long)lo * ld, ld);
    }
}

static void gqa_bwd_task(void *vc, long b0, long e0, int tid) {
    (void)tid;
    GqaCtx *c = vc;
    int KV = c->KV, G = c->NH / KV, T = c->T;
    for (long bg = b0; bg < e0; bg++) {
        int b = (int)(bg / KV), g = (int)(bg % KV);
        for (int r = 0; r < G; r++) gqa_bwd_head(c, b, g * G + r, g, c->datt + bg * T * T);
    }
}

void ops_gqa_backward(float *dq, float *dk, float *dv, float *datt, const float *dout, const float *q,
                      const float *k, const float *v, int ld, const float *att, const int *seg, int B, int T,
                      int NH, int KV, int hd) {
    GqaCtx c = {.dq = dq, .dk = dk, .dv = dv, .datt = datt, .dout = dout, .q = q, .k = k, .v = v, .catt = att,
                .seg = seg, .ld = ld, .B = B, .T = T, .NH = NH, .KV = KV, .hd = hd};
    par_for_blas((long)B * KV, gqa_bwd_task, &c);
}

/* ---- strided bias helpers ------------------------------------------------------------------------ */

typedef struct {
    float *out;
    const float *in;
    int N, OC, ld;
} BiasCtx;

static void bias_fill_task(void *vc, long b, long e, int tid) {
    (void)tid;
    BiasCtx *c = vc;
    for (long i = b; i < e; i++) memcpy(c->out + i * c->ld, c->in, sizeof(float) * c->OC);
}

void ops_bias_fill(float *out, const float *bias, int N, int OC, int ld) {
    BiasCtx c = {.out = out, .in = bias, .N = N, .OC = OC, .ld = ld};
    par_for(N, grain_for(OC), bias_fill_task, &c);
}

static void bias_bwd_task(void *vc, long b, long e, int tid) {
    (void)tid;
    BiasCtx *c = vc;
    for (long i = 0; i < c->N; i++) {
        const float *x = c->in + i * c->ld;
        for (long j = b; j < e; j++) c->out[j] += x[j];
    }
}

void ops_bias_backward(float *db, const float *x, int N, int OC, int ld) {
    BiasCtx c = {.out = db, .in = x, .N = N, .OC = OC, .ld = ld};
    par_for(OC, grain_for(N), bias_bwd_task, &c);
}

/* ---- naive references ------------------------------------------------------------------------------ */

void ops_embedding_backward_naive(float *dwte, const float *dout, const int *tok, int N, int C) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < C; j++) dwte[(long)tok[i] * C + j] += dout[(long)i * C + j];
}

void ops_rmsnorm_forward_naive(float *out, float *rstd, const float *inp, const float *w, int N, int H, int D,
                               int ld, float eps) {
    for (int i = 0; i < N; i++)
        for (int h = 0; h < H; h++) {
            const float *x = inp + (long)i * ld + (long)h * D;
            double ss = 0;
            for (int j = 0; j < D; j++) ss += (double)x[j] * x[j];
            double r = 1.0 / sqrt(ss / D + eps);
            for (int j = 0; j < D; j++) out[(long)i * ld + (long)h * D + j] = (float)(x[j] * r * w[j]);
            rstd[(long)i * H + h] = (float)r;
        }
}

void ops_rmsnorm_backward_naive(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                                const float *rstd, int N, int H, int D, int ld) {
    for (int i = 0; i < N; i++)
        for (int h = 0; h < H; h++) {
            long o = (long)i * ld + (long)h * D;
            double r = rstd[(long)i * H + h], dot = 0;
            for (int j = 0; j < D; j++) {
                double xh = inp[o + j] * r;
                dot += (double)w[j] * dout[o + j] * xh;
                dw[j] += (float)(dout[o + j] * xh);
            }
            dot /= D;
            for (int j = 0; j < D; j++)
                dinp[o + j] += (float)(((double)w[j] * dout[o + j] - inp[o + j] * r * dot) * r);
        }
}

void ops_rope_apply_naive(float *x, const int *pos, const double *inv_freq, int N, int H, int hd, int ld,
                          int inverse) {
    int h2 = hd / 2;
    for (int i = 0; i < N; i++)
        for (int h = 0; h < H; h++) {
            float *a = x + (long)i * ld + (long)h * hd;
            for (int j = 0; j < h2; j++) {
                double ang = (double)pos[i] * inv_freq[j] * (inverse ? -1 : 1);
                double u = a[j], v = a[j + h2];
                a[j] = (float)(u * cos(ang) - v * sin(ang));
                a[j + h2] = (float)(v * cos(ang) + u * sin(ang));
            }
        }
}

void ops_swiglu_forward_naive(float *out, const float *gu, int N, int F) {
    for (long i = 0; i < N; i++)
        for (int j = 0; j < F; j++) {
            double g = gu[i * 2 * F + j], u = gu[i * 2 * F + F + j];
            out[i * F + j] = (float)(g / (1.0 + exp(-g)) * u);
        }
}

void ops_swiglu_backward_naive(float *dgu, const float *dout, const float *gu, int N, int F) {
    for (long i = 0; i < N; i++)
        for (int j = 0; j < F; j++) {
            double g = gu[i * 2 * F + j], u = gu[i * 2 * F + F + j], s = 1.0 / (1.0 + exp(-g));
            dgu[i * 2 * F + j] += (float)(dout[i * F + j] * u * (s + g * s * (1 - s)));
            dgu[i * 2 * F + F + j] += (float)(dout[i * F + j] * g * s);
        }
}

void ops_gqa_forward_naive(float *out, float *att, const float *q, const float *k, const float *v, int ld,
                           const int *seg, int B, int T, int NH, int KV, int hd) {
    int G = NH / KV, QD = NH * hd;
    double scale = 1.0 / sqrt((double)hd);
    double *row = xmalloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                long qi = ((long)b * T + t) * ld + (long)h * hd;
                int lo = seg[(long)b * T + t], g = h / G;
                double mx = -INFINITY, sum = 0;
                for (int s = lo; s <= t; s++) {
                    const float *kk = k + ((long)b * T + s) * ld + (long)g * hd;
                    double d = 0;
                    for (int j = 0; j < hd; j++) d += (double)q[qi + j] * kk[j];
                    row[s] = d * scale;
                    mx = row[s] > mx ? row[s] : mx;
                }
                for (int s = lo; s <= t; s++) sum += (row[s] = exp(row[s] - mx));
                float *A = att + (((long)b * NH + h) * T + t) * T;
                for (int s = 0; s < T; s++) A[s] = (s >= lo && s <= t) ? (float)(row[s] / sum) : 0.0f;
                for (int j = 0; j < hd; j++) {
                    double y = 0;
                    for (int s = lo; s <= t; s++) y += (row[s] / sum) * v[((long)b * T + s) * ld + (long)g * hd + j];
                    out[((long)b * T + t) * QD + (long)h * hd + j] = (float)y;
                }
            }
    free(row);
}

void ops_gqa_backward_naive(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                            const float *v, int ld, const float *att, const int *seg, int B, int T, int NH,
                            int KV, int hd) {
    int G = NH / KV, QD = NH * hd;
    double scale = 1.0 / sqrt((double)hd);
    double *dp = xmalloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int lo = seg[(long)b * T + t], g = h / G;
                const float *A = att + (((long)b * NH + h) * T + t) * T;
                const float *dy = dout + ((long)b * T + t) * QD + (long)h * hd;
                double dot = 0;
                for (int s = lo; s <= t; s++) {
                    long kv = ((long)b * T + s) * ld + (long)g * hd;
                    double d = 0;
                    for (int j = 0; j < hd; j++) {
                        d += (double)dy[j] * v[kv + j];
                        dv[kv + j] += A[s] * dy[j];
                    }
                    dp[s] = d;
                    dot += d * A[s];
                }
                long qi = ((long)b * T + t) * ld + (long)h * hd;
                for (int s = lo; s <= t; s++) {
                    double ds = A[s] * (dp[s] - dot) * scale;
                    long kv = ((long)b * T + s) * ld + (long)g * hd;
                    for (int j = 0; j < hd; j++) {
                        dq[qi + j] += (float)(ds * k[kv + j]);
                        dk[kv + j] += (float)(ds * q[qi + j]);
                    }
                }
            }
    free(dp);
}
