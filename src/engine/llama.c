/* llama -- the Llama-style family behind model.h: pre-RMSNorm blocks, rotary
 * positions (Su et al. 2021) in Hugging Face's half-split layout with optional
 * Llama 3 frequency scaling, grouped-query attention (Ainslie et al. 2023) with
 * head_dim independent of d_model, SwiGLU MLP (Shazeer 2020), optional q/k/v
 * biases (Qwen2.5) and per-head q/k RMSNorm before the rotation (Qwen3), tied
 * or untied LM head; forward/backward over ops.h/ops_llama.h kernels and
 * KV-cached decoding.  Matches transformers' LlamaForCausalLM,
 * Qwen2ForCausalLM and Qwen3ForCausalLM (no o_proj/MLP biases, no sliding
 * window); reading and writing their directories is io/hfmodel.c's.
 *
 * Tensors, in this order (Hugging Face names; linear weights [out, in]):
 *   model.embed_tokens.weight [V, C], then per layer l, prefix model.layers.l.:
 *   input_layernorm.weight [C], self_attn.q_proj.weight [QD, C] (+ .bias [QD]),
 *   self_attn.k_proj.weight [KD, C] (+ .bias), self_attn.v_proj.weight [KD, C]
 *   (+ .bias), self_attn.o_proj.weight [C, QD], self_attn.q_norm.weight [hd] and
 *   self_attn.k_norm.weight [hd] (qk_norm), post_attention_layernorm.weight [C],
 *   mlp.gate_proj.weight [F, C], mlp.up_proj.weight [F, C], mlp.down_proj.weight
 *   [C, F]; then model.norm.weight [C], then lm_head.weight [V, C] when untied.
 * Without biases q|k|v weights are adjacent, so the three projections are one
 * GEMM; gate|up always are.  Shapes as ops_llama.h. */
#include "engine/model_family.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "engine/ops.h"
#include "engine/ops_llama.h"

/* the tensors of a layer, in order; the optional ones absent per configuration */
enum { P_LN1, P_QW, P_QB, P_KW, P_KB, P_VW, P_VB, P_OW, P_QN, P_KN, P_LN2, P_GATE, P_UP, P_DOWN, P_COUNT };

static const char *PNAME[P_COUNT] = {
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight",
    "self_attn.k_proj.bias",  "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.o_proj.weight",
    "self_attn.q_norm.weight", "self_attn.k_norm.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",   "mlp.up_proj.weight",      "mlp.down_proj.weight"};

typedef struct {
    int L, C, NH, KV, hd, QD, KD, QKV, F, V;
} Dims;

static Dims dims_of(const ModelConfig *c) {
    Dims d = {c->n_layer, c->d_model, c->n_head, c->n_kv_head, c->head_dim, 0, 0, 0, c->d_ff, c->vocab_size};
    d.QD = d.NH * d.hd;
    d.KD = d.KV * d.hd;
    d.QKV = d.QD + 2 * d.KD;
    return d;
}

static int present(const ModelConfig *c, int k) {
    if (k == P_QB || k == P_KB || k == P_VB) return c->qkv_bias;
    if (k == P_QN || k == P_KN) return c->qk_norm;
    return 1;
}

static int per_layer(const ModelConfig *c) { return 9 + 3 * !!c->qkv_bias + 2 * !!c->qk_norm; }

/* shape of tensor k of a layer; returns ndim */
static int layer_shape(const Dims *d, int k, long s[2]) {
    static const int nd[P_COUNT] = {1, 2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 2, 2, 2};
    long rows[P_COUNT] = {d->C, d->QD, d->QD, d->KD, d->KD, d->KD, d->KD, d->C, d->hd, d->hd, d->C, d->F, d->F, d->C};
    long cols[P_COUNT] = {0, d->C, 0, d->C, 0, d->C, 0, d->QD, 0, 0, 0, d->C, d->C, d->F};
    s[0] = rows[k];
    s[1] = cols[k];
    return nd[k];
}

static void add_tensor(ModelTensor *t, int k, size_t *off, const char *name, int nd, long s0, long s1) {
    size_t n = (size_t)s0 * (size_t)(nd == 2 ? s1 : 1);
    if (t) {
        snprintf(t[k].name, sizeof t[k].name, "%s", name);
        t[k].ndim = nd;
        t[k].shape[0] = s0;
        t[k].shape[1] = nd == 2 ? s1 : 0;
        t[k].offset = *off;
        t[k].numel = n;
        t[k].decay = nd == 2;
    }
    *off += n;
}

static int layout(const ModelConfig *c, ModelTensor *t) {
    Dims d = dims_of(c);
    size_t off = 0;
    int k = 0;
    add_tensor(t, k++, &off, "model.embed_tokens.weight", 2, d.V, d.C);
    for (int l = 0; l < d.L; l++)
        for (int j = 0; j < P_COUNT; j++) {
            if (!present(c, j)) continue;
            char nm[64];
            long s[2];
            int nd = layer_shape(&d, j, s);
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, PNAME[j]);
            add_tensor(t, k++, &off, nm, nd, s[0], s[1]);
        }
    add_tensor(t, k++, &off, "model.norm.weight", 1, d.C, 0);
    if (!c->tie_embeddings) add_tensor(t, k++, &off, "lm_head.weight", 2, d.V, d.C);
    return k;
}

static int check(const ModelConfig *c, char *why, size_t n) {
    if (c->n_kv_head <= 0 || c->n_head % c->n_kv_head != 0) {
        snprintf(why, n, "n_kv_head %d must be positive and divide the %d heads", c->n_kv_head, c->n_head);
        return -1;
    }
    if (c->head_dim <= 0 || c->head_dim % 2 != 0) {
        snprintf(why, n, "head_dim %d must be positive and even (rotary pairs)", c->head_dim);
        return -1;
    }
    if (c->d_ff <= 0) {
        snprintf(why, n, "d_ff %d must be positive", c->d_ff);
        return -1;
    }
    if (!(c->norm_eps > 0 && c->norm_eps < 1) || !(c->rope_theta > 1 && isfinite(c->rope_theta))) {
        snprintf(why, n, "norm_eps %g must be in (0, 1) and rope_theta %g finite and above 1", c->norm_eps,
                 c->rope_theta);
        return -1;
    }
    if (c->qkv_bias < 0 || c->qkv_bias > 1 || c->qk_norm < 0 || c->qk_norm > 1 || c->tie_embeddings < 0 ||
        c->tie_embeddings > 1 || c->rope_llama3 < 0 || c->rope_llama3 > 1) {
        snprintf(why, n, "qkv_bias, qk_norm, tie_embeddings and rope_llama3 must be 0 or 1");
        return -1;
    }
    if (c->rope_llama3 && !(c->rope_factor >= 1 && c->rope_low_freq_factor > 0 &&
                            c->rope_high_freq_factor > c->rope_low_freq_factor && c->rope_original_max_pos > 0)) {
        snprintf(why, n,
                 "llama3 rope scaling needs rope_factor >= 1 (%g), 0 < rope_low_freq_factor (%g) < "
                 "rope_high_freq_factor (%g) and rope_original_max_pos > 0 (%d)",
                 c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_original_max_pos);
        return -1;
    }
    return 0;
}

/* PaLM convention: 6 x (matrix parameters that multiply a token) + 12 L T (attention width) */
static double flops_per_token(const ModelConfig *c, int T) {
    Dims d = dims_of(c);
    double per_layer = 2.0 * d.C * d.QD + 2.0 * d.C * d.KD + 3.0 * d.C * d.F;
    return 6.0 * (d.L * per_layer + (double)d.V * d.C) + 12.0 * d.L * (double)T * d.QD;
}

static void init_weights(Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        if (t->ndim == 2) {
            for (size_t j = 0; j < t->numel; j++) p[j] = (float)(rng_normal(&r) * 0.02);
        } else {
            float v = util_ends_with(t->name, ".bias") ? 0.0f : 1.0f; /* norms 1, biases 0 */
            for (size_t j = 0; j < t->numel; j++) p[j] = v;
        }
    }
}

/* ---- activations ------------------------------------------------------------------ */

typedef struct {
    float *x;          /* [L+1][N,C] residual stream: x[0] embeddings, x[l+1] output of layer l */
    float *h;          /* [L][N,C] residual after the attention */
    float *xn1, *xn2;  /* [L][N,C] normalised inputs of the attention and the MLP */
    float *rstd1, *rstd2; /* [L][N] */
    float *qkv;        /* [L][N,QKV] q and k normed and rotated, v */
    float *qkv_raw;    /* [L][N,QKV] projections before the q/k norms (qk_norm only) */
    float *qk_rstd;    /* [L][N*NH + N*KV] (qk_norm only) */
    float *att;        /* [L][B,NH,T,T] */
    float *atty;       /* [L][N,QD] attention output */
    float *gu;         /* [L][N,2F] gate|up */
    float *act;        /* [N,F] SwiGLU output (recomputed in backward) */
    float *cs;         /* [N,hd] rotary cos|sin at the batch's positions */
    float *xf_in, *xf, *rstdf; /* [M,C], [M,C], [M]: final norm of the loss rows */
    float *logits;     /* [M,V]; after backward dL/dlogits */
    float *lse, *logp; /* [M] */
    float *dres, *dxn; /* [N,C] */
    float *dbig;       /* [N, max(2F, QKV)]: dgu, then dqkv */
    float *dmid;       /* [N, max(F, QD)]: dact, then datty */
    float *datt;       /* [B,KV,T,T] */
    double *inv_freq;  /* [hd/2] */
    int *rows, *rtgt;  /* [M] */
    int M;
} LlamaActs;

static size_t act_floats(const ModelConfig *c, int B, int T, LlamaActs *a) {
    Dims d = dims_of(c);
    size_t N = (size_t)B * T, L = d.L, NC = N * d.C, tot = 0;
    size_t big = 2 * (size_t)d.F > (size_t)d.QKV ? 2 * (size_t)d.F : (size_t)d.QKV;
    size_t mid = d.F > d.QD ? (size_t)d.F : (size_t)d.QD;
#define A(field, count)                                                                      \
    do {                                                                                     \
        size_t n_ = (count);                                                                 \
        if (a) a->field = n_ ? xmalloc_aligned(n_ * sizeof(float)) : NULL;                   \
        tot += n_;                                                                           \
    } while (0)
    A(x, (L + 1) * NC);
    A(h, L * NC);
    A(xn1, L * NC);
    A(xn2, L * NC);
    A(rstd1, L * N);
    A(rstd2, L * N);
    A(qkv, L * N * d.QKV);
    A(qkv_raw, c->qk_norm ? L * N * d.QKV : 0);
    A(qk_rstd, c->qk_norm ? L * N * (size_t)(d.NH + d.KV) : 0);
    A(att, L * (size_t)B * d.NH * T * T);
    A(atty, L * N * d.QD);
    A(gu, L * N * 2 * d.F);
    A(act, N * d.F);
    A(cs, N * d.hd);
    A(xf_in, NC);
    A(xf, NC);
    A(rstdf, N);
    A(logits, N * d.V);
    A(lse, N);
    A(logp, N);
    A(dres, NC);
    A(dxn, NC);
    A(dbig, N * big);
    A(dmid, N * mid);
    A(datt, (size_t)B * d.KV * T * T);
#undef A
    tot += (size_t)(d.hd / 2) * 2 + 2 * N; /* inv_freq (doubles), rows and rtgt (ints) */
    if (a) {
        a->inv_freq = xmalloc_aligned(sizeof(double) * (size_t)(d.hd / 2));
        a->rows = xcalloc(N, sizeof(int));
        a->rtgt = xcalloc(N, sizeof(int));
    }
    return tot;
}

static size_t activation_bytes(const ModelConfig *c, int B, int T) { return act_floats(c, B, T, NULL) * sizeof(float); }

static void rope_freqs(const ModelConfig *c, double *inv) {
    ops_rope_inv_freq(inv, c->head_dim, c->rope_theta, c->rope_llama3, c->rope_factor, c->rope_low_freq_factor,
                      c->rope_high_freq_factor, c->rope_original_max_pos);
}

static void alloc_acts(Model *m, int B, int T) {
    LlamaActs *a = xcalloc(1, sizeof *a);
    act_floats(&m->cfg, B, T, a);
    rope_freqs(&m->cfg, a->inv_freq);
    m->acts = a;
}

static void free_acts(Model *m) {
    LlamaActs *a = m->acts;
    if (!a) return;
    float **fs[] = {&a->x, &a->h, &a->xn1, &a->xn2, &a->rstd1, &a->rstd2, &a->qkv, &a->qkv_raw, &a->qk_rstd,
                    &a->att, &a->atty, &a->gu, &a->act, &a->cs, &a->xf_in, &a->xf, &a->rstdf, &a->logits,
                    &a->lse, &a->logp, &a->dres, &a->dxn, &a->dbig, &a->dmid, &a->datt};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) free(*fs[i]);
    free(a->inv_freq);
    free(a->rows);
    free(a->rtgt);
    free(a);
    m->acts = NULL;
}

/* ---- parameters of a layer and the GEMMs --------------------------------------------- */

typedef struct {
    float *t[P_COUNT]; /* NULL where absent */
} LayerP;

static void layer_ptrs(const Model *m, float *base, int l, LayerP *p) {
    int k = 1 + l * per_layer(&m->cfg);
    for (int j = 0; j < P_COUNT; j++) p->t[j] = present(&m->cfg, j) ? base + m->tensors[k++].offset : NULL;
}

static float *embed(const Model *m, float *base) { return base + m->tensors[0].offset; }
static float *final_norm(const Model *m, float *base) {
    return base + m->tensors[1 + m->cfg.n_layer * per_layer(&m->cfg)].offset;
}
static float *head(const Model *m, float *base) {
    return m->cfg.tie_embeddings ? embed(m, base) : base + m->tensors[m->n_tensors - 1].offset;
}

/* c[M,N] = beta c + alpha a[M,K] b[N,K]^T  (activations times [out, in] weights) */
static void gemm_nt(int M, int N, int K, float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                    float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}
/* c[M,N] = beta c + a[M,K] b[K,N]  (output gradients times weights) */
static void gemm_nn(int M, int N, int K, const float *a, int lda, const float *b, int ldb, float beta, float *c,
                    int ldc) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, lda, b, ldb, beta, c, ldc);
}
/* c[M,N] += a[K,M]^T b[K,N]  (weight gradients) */
static void gemm_tn(int M, int N, int K, const float *a, int lda, const float *b, int ldb, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, a, lda, b, ldb, 1.0f, c, ldc);
}

static int qkv_fused(const LayerP *p, const Dims *d) {
    return p->t[P_KW] == p->t[P_QW] + (size_t)d->QD * d->C && p->t[P_VW] == p->t[P_KW] + (size_t)d->KD * d->C;
}

/* column offset, width, weight and bias slot of part j (q, k, v) of the fused row */
static void qkv_part(const Dims *d, int j, int *off, int *w, int *wk, int *bk) {
    static const int W[3] = {P_QW, P_KW, P_VW}, Bk[3] = {P_QB, P_KB, P_VB};
    *off = j == 0 ? 0 : j == 1 ? d->QD : d->QD + d->KD;
    *w = j == 0 ? d->QD : d->KD;
    *wk = W[j];
    *bk = Bk[j];
}

/* out[N,QKV] = xn[N,C] @ [Wq; Wk; Wv]^T (+ biases) */
static void qkv_forward(float *out, const float *xn, const LayerP *p, const Dims *d, int N) {
    if (qkv_fused(p, d) && !p->t[P_QB]) {
        gemm_nt(N, d->QKV, d->C, 1.0f, xn, d->C, p->t[P_QW], d->C, 0.0f, out, d->QKV);
        return;
    }
    for (int j = 0; j < 3; j++) {
        int off, w, wk, bk;
        qkv_part(d, j, &off, &w, &wk, &bk);
        if (p->t[bk]) ops_bias_fill(out + off, p->t[bk], N, w, d->QKV);
        gemm_nt(N, w, d->C, 1.0f, xn, d->C, p->t[wk], d->C, p->t[bk] ? 1.0f : 0.0f, out + off, d->QKV);
    }
}

/* dxn[N,C] = dqkv @ Wqkv; dW += dqkv^T xn; db += colsum(dqkv) */
static void qkv_backward(float *dxn, const LayerP *p, const LayerP *g, const float *dqkv, const float *xn,
                         const Dims *d, int N) {
    if (qkv_fused(p, d) && !p->t[P_QB]) {
        gemm_nn(N, d->C, d->QKV, dqkv, d->QKV, p->t[P_QW], d->C, 0.0f, dxn, d->C);
        gemm_tn(d->QKV, d->C, N, dqkv, d->QKV, xn, d->C, g->t[P_QW], d->C);
        return;
    }
    for (int j = 0; j < 3; j++) {
        int off, w, wk, bk;
        qkv_part(d, j, &off, &w, &wk, &bk);
        gemm_nn(N, d->C, w, dqkv + off, d->QKV, p->t[wk], d->C, j ? 1.0f : 0.0f, dxn, d->C);
        gemm_tn(w, d->C, N, dqkv + off, d->QKV, xn, d->C, g->t[wk], d->C);
        if (g->t[bk]) ops_bias_backward(g->t[bk], dqkv + off, N, w, d->QKV);
    }
}

/* q/k norms (qk_norm) from raw into qkv, v copied; then the rotation of q and k */
static void qk_norm_rope(float *qkv, const float *raw, float *qk_rstd, const float *cs, const LayerP *p,
                         const Dims *d, int N, float eps) {
    if (raw) {
        ops_rmsnorm_forward(qkv, qk_rstd, raw, p->t[P_QN], N, d->NH, d->hd, d->QKV, eps);
        ops_rmsnorm_forward(qkv + d->QD, qk_rstd + (size_t)N * d->NH, raw + d->QD, p->t[P_KN], N, d->KV, d->hd,
                            d->QKV, eps);
        size_t vo = (size_t)d->QD + d->KD;
        for (long i = 0; i < N; i++)
            memcpy(qkv + i * d->QKV + vo, raw + i * d->QKV + vo, sizeof(float) * (size_t)d->KD);
    }
    ops_rope_forward(qkv, cs, N, d->NH + d->KV, d->hd, d->QKV);
}

/* ---- forward ------------------------------------------------------------------------------ */

static void layer_forward(Model *m, const ModelBatch *b, int l) {
    const Dims d = dims_of(&m->cfg);
    LlamaActs *a = m->acts;
    int N = b->B * b->T;
    size_t NC = (size_t)N * d.C, n = (size_t)N;
    float eps = (float)m->cfg.norm_eps;
    LayerP p;
    layer_ptrs(m, m->params, l, &p);
    float *x = a->x + l * NC, *h = a->h + l * NC, *xn1 = a->xn1 + l * NC, *xn2 = a->xn2 + l * NC;
    float *qkv = a->qkv + l * n * d.QKV, *raw = a->qkv_raw ? a->qkv_raw + l * n * d.QKV : NULL;
    float *atty = a->atty + l * n * d.QD, *gu = a->gu + l * n * 2 * d.F, *xo = a->x + (l + 1) * NC;
    float *att = a->att + (size_t)l * b->B * d.NH * b->T * b->T;
    ops_rmsnorm_forward(xn1, a->rstd1 + l * n, x, p.t[P_LN1], N, 1, d.C, d.C, eps);
    qkv_forward(raw ? raw : qkv, xn1, &p, &d, N);
    qk_norm_rope(qkv, raw, raw ? a->qk_rstd + l * n * (d.NH + d.KV) : NULL, a->cs, &p, &d, N, eps);
    ops_gqa_forward(atty, att, qkv, qkv + d.QD, qkv + d.QD + d.KD, d.QKV, b->seg, b->B, b->T, d.NH, d.KV, d.hd);
    memcpy(h, x, NC * sizeof(float)); /* h = x + o(atty) */
    gemm_nt(N, d.C, d.QD, 1.0f, atty, d.QD, p.t[P_OW], d.QD, 1.0f, h, d.C);
    ops_rmsnorm_forward(xn2, a->rstd2 + l * n, h, p.t[P_LN2], N, 1, d.C, d.C, eps);
    gemm_nt(N, 2 * d.F, d.C, 1.0f, xn2, d.C, p.t[P_GATE], d.C, 0.0f, gu, 2 * d.F); /* gate|up adjacent */
    ops_swiglu_forward(a->act, gu, N, d.F);
    memcpy(xo, h, NC * sizeof(float)); /* x' = h + down(act) */
    gemm_nt(N, d.C, d.F, 1.0f, a->act, d.F, p.t[P_DOWN], d.F, 1.0f, xo, d.C);
}

static int forward(Model *m, const ModelBatch *b) {
    const Dims d = dims_of(&m->cfg);
    LlamaActs *a = m->acts;
    int N = b->B * b->T;
    ops_embedding_forward(a->x, b->tok, embed(m, m->params), N, d.C);
    ops_rope_table(a->cs, b->pos, a->inv_freq, N, d.hd);
    for (int l = 0; l < d.L; l++) layer_forward(m, b, l);
    int M = 0;
    for (int i = 0; i < N; i++)
        if (b->tgt[i] >= 0) {
            a->rows[M] = i;
            a->rtgt[M] = b->tgt[i];
            M++;
        }
    a->M = M;
    m->M = M, m->rows = a->rows, m->logp = a->logp, m->logits = a->logits;
    if (M == 0) return 0;
    /* the final norm and the head only for the loss rows */
    ops_gather_rows(a->xf_in, a->x + (size_t)d.L * N * d.C, a->rows, M, d.C);
    ops_rmsnorm_forward(a->xf, a->rstdf, a->xf_in, final_norm(m, m->params), M, 1, d.C, d.C,
                        (float)m->cfg.norm_eps);
    gemm_nt(M, d.V, d.C, 1.0f, a->xf, d.C, head(m, m->params), d.C, 0.0f, a->logits, d.V);
    ops_logprob_forward(a->logp, a->lse, a->logits, a->rtgt, M, d.V);
    return M;
}

/* ---- backward ------------------------------------------------------------------------------ */

/* on entry a->dres = dL/d(output of layer l); on return dL/d(its input) */
static void layer_backward(Model *m, const ModelBatch *b, int l) {
    const Dims d = dims_of(&m->cfg);
    LlamaActs *a = m->acts;
    int N = b->B * b->T;
    size_t NC = (size_t)N * d.C, n = (size_t)N;
    LayerP p, g;
    layer_ptrs(m, m->params, l, &p);
    layer_ptrs(m, m->grads, l, &g);
    const float *x = a->x + l * NC, *h = a->h + l * NC, *xn1 = a->xn1 + l * NC, *xn2 = a->xn2 + l * NC;
    const float *qkv = a->qkv + l * n * d.QKV, *raw = a->qkv_raw ? a->qkv_raw + l * n * d.QKV : NULL;
    const float *atty = a->atty + l * n * d.QD, *gu = a->gu + l * n * 2 * d.F;
    const float *att = a->att + (size_t)l * b->B * d.NH * b->T * b->T;
    /* MLP: x' = h + down(swiglu(gate|up(rmsnorm(h)))) */
    float *dact = a->dmid, *dgu = a->dbig;
    gemm_nn(N, d.F, d.C, a->dres, d.C, p.t[P_DOWN], d.F, 0.0f, dact, d.F);
    memset(dgu, 0, n * 2 * d.F * sizeof(float));
    ops_swiglu_backward(dgu, a->act, dact, gu, N, d.F);
    gemm_tn(d.C, d.F, N, a->dres, d.C, a->act, d.F, g.t[P_DOWN], d.F);
    gemm_nn(N, d.C, 2 * d.F, dgu, 2 * d.F, p.t[P_GATE], d.C, 0.0f, a->dxn, d.C);
    gemm_tn(2 * d.F, d.C, N, dgu, 2 * d.F, xn2, d.C, g.t[P_GATE], d.C);
    ops_rmsnorm_backward(a->dres, g.t[P_LN2], a->dxn, h, p.t[P_LN2], a->rstd2 + l * n, N, 1, d.C, d.C, 1);
    /* attention: h = x + o(gqa(rope(qknorm(qkv(rmsnorm(x)))))) */
    float *datty = a->dmid, *dqkv = a->dbig;
    gemm_nn(N, d.QD, d.C, a->dres, d.C, p.t[P_OW], d.QD, 0.0f, datty, d.QD);
    gemm_tn(d.C, d.QD, N, a->dres, d.C, atty, d.QD, g.t[P_OW], d.QD);
    memset(dqkv, 0, n * d.QKV * sizeof(float));
    ops_gqa_backward(dqkv, dqkv + d.QD, dqkv + d.QD + d.KD, a->datt, datty, qkv, qkv + d.QD, qkv + d.QD + d.KD,
                     d.QKV, att, b->seg, b->B, b->T, d.NH, d.KV, d.hd);
    ops_rope_backward(dqkv, a->cs, N, d.NH + d.KV, d.hd, d.QKV);
    if (raw) {
        const float *rs = a->qk_rstd + l * n * (d.NH + d.KV);
        ops_rmsnorm_backward(dqkv, g.t[P_QN], dqkv, raw, p.t[P_QN], rs, N, d.NH, d.hd, d.QKV, 0);
        ops_rmsnorm_backward(dqkv + d.QD, g.t[P_KN], dqkv + d.QD, raw + d.QD, p.t[P_KN], rs + n * d.NH, N, d.KV,
                             d.hd, d.QKV, 0);
    }
    qkv_backward(a->dxn, &p, &g, dqkv, xn1, &d, N);
    ops_rmsnorm_backward(a->dres, g.t[P_LN1], a->dxn, x, p.t[P_LN1], a->rstd1 + l * n, N, 1, d.C, d.C, 1);
}

static void backward(Model *m, const ModelBatch *b, const float *gl) {
    const Dims d = dims_of(&m->cfg);
    LlamaActs *a = m->acts;
    int N = b->B * b->T, M = a->M;
    memset(a->dres, 0, (size_t)N * d.C * sizeof(float));
    if (M > 0) {
        ops_logprob_backward(a->logits, a->lse, a->rtgt, gl, M, d.V);
        float *dxf = a->dxn; /* [M,C] */
        gemm_nn(M, d.C, d.V, a->logits, d.V, head(m, m->params), d.C, 0.0f, dxf, d.C);
        gemm_tn(d.V, d.C, M, a->logits, d.V, a->xf, d.C, head(m, m->grads), d.C);
        ops_rmsnorm_backward(dxf, final_norm(m, m->grads), dxf, a->xf_in, final_norm(m, m->params), a->rstdf, M, 1,
                             d.C, d.C, 0);
        ops_scatter_add_rows(a->dres, dxf, a->rows, M, d.C);
    }
    /* the tail (final norm, untied head) is final; with a tied head the embedding is not (below) */
    model_grads_final(m, (size_t)(final_norm(m, m->params) - m->params));
    for (int l = d.L - 1; l >= 0; l--) {
        layer_backward(m, b, l);
        model_grads_final(m, m->tensors[1 + l * per_layer(&m->cfg)].offset);
    }
    ops_embedding_backward(embed(m, m->grads), a->dres, b->tok, N, d.C);
}

/* ---- incremental decoding -------------------------------------------------------------------- */

/* The cache: a pool of keys and values [L][R][KD] (key/value heads only) and scratch for up
 * to NT tokens per call, padded so every product of a call has at least `pad` rows
 * (ops_matmul_min_rows: a row's result must not depend on the batch). */
typedef struct {
    ModelKV base;
    Dims d;
    float eps;
    int NT, pad;
    float *k, *v;
    float *x, *xn, *rstd, *qkv, *raw, *qk_rstd, *y, *gu, *act, *cs, *xl, *lg;
    double *inv_freq;
    int *tslot, *tpos, *last; /* per token: slot and position; per slot: its last token */
    float *att;               /* [threads][T] attention scores */
    int att_cap, l;
} LlamaKV;

static ModelKV *kv_create(const ModelConfig *c, int R, int NT) {
    LlamaKV *kv = xcalloc(1, sizeof *kv);
    Dims d = dims_of(c);
    kv->d = d;
    kv->eps = (float)c->norm_eps;
    int narrow = d.KD < d.C ? d.KD : d.C; /* the narrowest product of a layer (k or v alone, with biases) */
    kv->pad = ops_matmul_min_rows(narrow);
    NT = NT > kv->pad ? NT : kv->pad;
    kv->NT = NT;
    size_t pool = (size_t)d.L * R * d.KD, nb = (size_t)NT;
    kv->k = xmalloc_aligned(pool * sizeof(float));
    kv->v = xmalloc_aligned(pool * sizeof(float));
    kv->x = xmalloc_aligned(nb * d.C * sizeof(float));
    kv->xn = xmalloc_aligned(nb * d.C * sizeof(float));
    kv->rstd = xmalloc_aligned(nb * sizeof(float));
    kv->qkv = xmalloc_aligned(nb * d.QKV * sizeof(float));
    kv->raw = c->qk_norm ? xmalloc_aligned(nb * d.QKV * sizeof(float)) : NULL;
    kv->qk_rstd = xmalloc_aligned(nb * (d.NH + d.KV) * sizeof(float));
    kv->y = xmalloc_aligned(nb * d.QD * sizeof(float));
    kv->gu = xmalloc_aligned(nb * 2 * d.F * sizeof(float));
    kv->act = xmalloc_aligned(nb * d.F * sizeof(float));
    kv->cs = xmalloc_aligned(nb * d.hd * sizeof(float));
    kv->xl = xmalloc_aligned(nb * d.C * sizeof(float));
    kv->lg = xmalloc_aligned((size_t)ops_matmul_min_rows(d.V) * d.V * sizeof(float));
    kv->inv_freq = xmalloc_aligned(sizeof(double) * (size_t)(d.hd / 2));
    rope_freqs(c, kv->inv_freq);
    kv->tslot = xmalloc(sizeof(int) * nb);
    kv->tpos = xmalloc(sizeof(int) * nb);
    kv->last = xmalloc(sizeof(int) * nb);
    return &kv->base;
}

static void kv_destroy(ModelKV *base) {
    LlamaKV *kv = (LlamaKV *)base;
    float *fs[] = {kv->k,  kv->v, kv->x,  kv->xn, kv->rstd, kv->qkv, kv->raw, kv->qk_rstd,
                   kv->y,  kv->gu, kv->act, kv->cs, kv->xl,  kv->lg,  kv->att};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) free(fs[i]);
    free(kv->inv_freq);
    free(kv->tslot), free(kv->tpos), free(kv->last);
    free(kv);
}

static size_t kv_bytes(const ModelKV *base) {
    const LlamaKV *kv = (const LlamaKV *)base;
    return 2 * (size_t)kv->d.L * base->R * kv->d.KD * sizeof(float);
}

/* one query per (token, head) against its key/value head's cached positions 0..pos */
static void dec_att_task(void *vc, long b0, long e0, int tid) {
    LlamaKV *kv = vc;
    const Dims *d = &kv->d;
    int hd = d->hd, NH = d->NH, G = d->NH / d->KV, T = kv->base.T, R = kv->base.R;
    float scale = 1.0f / sqrtf((float)hd);
    float *a = kv->att + (size_t)tid * T;
    const float *K = kv->k + (size_t)kv->l * R * d->KD, *Vv = kv->v + (size_t)kv->l * R * d->KD;
    for (long ih = b0; ih < e0; ih++) {
        int i = (int)(ih / NH), h = (int)(ih % NH), n = kv->tpos[i] + 1;
        const int *map = kv->base.map + (size_t)kv->tslot[i] * T;
        const float *q = kv->qkv + (size_t)i * d->QKV + (size_t)h * hd;
        size_t hoff = (size_t)(h / G) * hd;
        float mx = -INFINITY, sum = 0;
        for (int t = 0; t < n; t++) {
            const float *k = K + (size_t)map[t] * d->KD + hoff;
            float s = 0;
            for (int j = 0; j < hd; j++) s += q[j] * k[j];
            a[t] = s * scale;
            mx = a[t] > mx ? a[t] : mx;
        }
        for (int t = 0; t < n; t++) sum += (a[t] = expf(a[t] - mx));
        float *y = kv->y + (size_t)i * d->QD + (size_t)h * hd;
        for (int j = 0; j < hd; j++) y[j] = 0;
        for (int t = 0; t < n; t++) {
            const float *v = Vv + (size_t)map[t] * d->KD + hoff;
            float w = a[t] / sum;
            for (int j = 0; j < hd; j++) y[j] += w * v[j];
        }
    }
}

/* layer kv->l over N tokens; products over Np >= N rows (padding) */
static void decode_layer(const Model *m, LlamaKV *kv, int N, int Np) {
    const Dims *d = &kv->d;
    int l = kv->l, T = kv->base.T, R = kv->base.R;
    LayerP p;
    layer_ptrs(m, m->params, l, &p);
    ops_rmsnorm_forward(kv->xn, kv->rstd, kv->x, p.t[P_LN1], N, 1, d->C, d->C, kv->eps);
    qkv_forward(kv->raw ? kv->raw : kv->qkv, kv->xn, &p, d, Np);
    qk_norm_rope(kv->qkv, kv->raw, kv->qk_rstd, kv->cs, &p, d, N, kv->eps);
    for (int i = 0; i < N; i++) {
        size_t o = ((size_t)l * R + (size_t)kv->base.map[(size_t)kv->tslot[i] * T + kv->tpos[i]]) * d->KD;
        memcpy(kv->k + o, kv->qkv + (size_t)i * d->QKV + d->QD, sizeof(float) * d->KD);
        memcpy(kv->v + o, kv->qkv + (size_t)i * d->QKV + d->QD + d->KD, sizeof(float) * d->KD);
    }
    par_for((long)N * d->NH, 4, dec_att_task, kv);
    gemm_nt(Np, d->C, d->QD, 1.0f, kv->y, d->QD, p.t[P_OW], d->QD, 1.0f, kv->x, d->C);
    ops_rmsnorm_forward(kv->xn, kv->rstd, kv->x, p.t[P_LN2], N, 1, d->C, d->C, kv->eps);
    gemm_nt(Np, 2 * d->F, d->C, 1.0f, kv->xn, d->C, p.t[P_GATE], d->C, 0.0f, kv->gu, 2 * d->F);
    ops_swiglu_forward(kv->act, kv->gu, N, d->F);
    gemm_nt(Np, d->C, d->F, 1.0f, kv->act, d->F, p.t[P_DOWN], d->F, 1.0f, kv->x, d->C);
}

/* per token: its slot and position, the embeddings; per slot: its last token */
static int dec_tokens(const Model *m, LlamaKV *kv, const int *slot, const int *tok, const int *cnt, int n) {
    int N = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < cnt[i]; j++, N++) kv->tslot[N] = slot[i], kv->tpos[N] = kv->base.len[slot[i]] + j;
        kv->last[i] = N - 1;
    }
    ops_embedding_forward(kv->x, tok, embed(m, m->params), N, kv->d.C);
    ops_rope_table(kv->cs, kv->tpos, kv->inv_freq, N, kv->d.hd);
    int need = par_nthreads() * kv->base.T;
    if (kv->att_cap < need) {
        free(kv->att);
        kv->att = xmalloc_aligned(sizeof(float) * (size_t)need);
        kv->att_cap = need;
    }
    return N;
}

static void decode(const Model *m, ModelKV *base, const int *slot, const int *tok, const int *cnt, int n,
                   float *logits) {
    LlamaKV *kv = (LlamaKV *)base;
    const Dims *d = &kv->d;
    int N = dec_tokens(m, kv, slot, tok, cnt, n), Np = N > kv->pad ? N : kv->pad;
    for (kv->l = 0; kv->l < d->L; kv->l++) decode_layer(m, kv, N, Np);
    ops_gather_rows(kv->xl, kv->x, kv->last, n, d->C);
    ops_rmsnorm_forward(kv->xn, kv->rstd, kv->xl, final_norm(m, m->params), n, 1, d->C, d->C, kv->eps);
    int pv = ops_matmul_min_rows(d->V);
    if (n >= pv) {
        gemm_nt(n, d->V, d->C, 1.0f, kv->xn, d->C, head(m, m->params), d->C, 0.0f, logits, d->V);
    } else { /* padded into the cache's buffer, so a slot's logits do not depend on n */
        gemm_nt(pv, d->V, d->C, 1.0f, kv->xn, d->C, head(m, m->params), d->C, 0.0f, kv->lg, d->V);
        memcpy(logits, kv->lg, sizeof(float) * (size_t)n * d->V);
    }
}

const ModelFamily model_family_llama = {
    .name = "llama",
    .check = check,
    .layout = layout,
    .init_weights = init_weights,
    .activation_bytes = activation_bytes,
    .alloc_acts = alloc_acts,
    .free_acts = free_acts,
    .forward = forward,
    .backward = backward,
    .flops_per_token = flops_per_token,
    .kv_create = kv_create,
    .kv_destroy = kv_destroy,
    .decode = decode,
    .kv_bytes = kv_bytes,
};
