/* gpt2 -- the GPT-2 family behind model.h (Radford et al. 2019): pre-LayerNorm
 * blocks, GELU MLP 4x, learned positions, LM head tied to the token
 * embedding; forward/backward over the ops kernels and KV-cached decoding.
 *
 * Tensors, in this order (Hugging Face GPT-2 names; linear weights [out, in]):
 *   wte, wpe, then per layer l: h.l.ln_1.{weight,bias}, h.l.attn.c_attn.{weight,bias},
 *   h.l.attn.c_proj.{weight,bias}, h.l.ln_2.{weight,bias}, h.l.mlp.c_fc.{weight,bias},
 *   h.l.mlp.c_proj.{weight,bias}, then ln_f.{weight,bias}. */
#include "engine/model_family.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops.h"
#include "base/util.h"

enum { T_LN1W, T_LN1B, T_QKVW, T_QKVB, T_PROJW, T_PROJB, T_LN2W, T_LN2B, T_FCW, T_FCB, T_FCPW,
       T_FCPB, T_PER_LAYER };

static const char *LAYER_NAMES[T_PER_LAYER] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};

/* activations of B x T rows (forward) and backward scratch */
typedef struct {
    float *x0;                  /* [N,C] embeddings */
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *res2;
    float *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *res3; /* per layer, [L][...] */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *lnf_rows;            /* [M,C] */
    float *logits;              /* [M,V]; after backward holds dlogits */
    float *lse, *logp;          /* [M] */
    int *rows, *rtgt;           /* [M] position index and target of each loss row */
    int M;
    float *dres, *dln, *dqkv, *datty, *datt, *dfch, *dfch_gelu, *dlnf_rows, *scratch;
} GptActs;

static void layer_shape(int k, long C, long shape[2], int *ndim) {
    static const int rows[T_PER_LAYER] = {1, 1, 3, 3, 1, 1, 1, 1, 4, 4, 1, 1};
    static const int cols[T_PER_LAYER] = {0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 0};
    shape[0] = rows[k] * C;
    shape[1] = cols[k] * C;
    *ndim = cols[k] ? 2 : 1;
}


/* Fills t (may be NULL) and returns the number of tensors. */
static int layout(const ModelConfig *c, ModelTensor *t) {
    long C = c->d_model;
    size_t off = 0;
    int k = 0;
#define ADD(nm, d, s0, s1, dec)                                            \
    do {                                                                   \
        size_t n_ = (size_t)(s0) * (size_t)((d) == 2 ? (s1) : 1);          \
        if (t) {                                                           \
            snprintf(t[k].name, sizeof t[k].name, "%s", nm);               \
            t[k].ndim = d;                                                 \
            t[k].shape[0] = s0;                                            \
            t[k].shape[1] = (d) == 2 ? (s1) : 0;                           \
            t[k].offset = off;                                             \
            t[k].numel = n_;                                               \
            t[k].decay = dec;                                              \
        }                                                                  \
        off += n_;                                                         \
        k++;                                                               \
    } while (0)
    ADD("wte", 2, c->vocab_size, C, 1);
    ADD("wpe", 2, c->max_seq_len, C, 1);
    for (int l = 0; l < c->n_layer; l++)
        for (int j = 0; j < T_PER_LAYER; j++) {
            char nm[48];
            long shape[2];
            int nd;
            snprintf(nm, sizeof nm, "h.%d.%s", l, LAYER_NAMES[j]);
            layer_shape(j, C, shape, &nd);
            ADD(nm, nd, shape[0], shape[1], nd == 2);
        }
    ADD("ln_f.weight", 1, C, 0, 0);
    ADD("ln_f.bias", 1, C, 0, 0);
#undef ADD
    return k;
}

static int check(const ModelConfig *c, char *why, size_t n) {
    if (c->d_model % c->n_head != 0) {
        snprintf(why, n, "d_model %d is not a multiple of the %d heads", c->d_model, c->n_head);
        return -1;
    }
    return 0;
}

static double flops_per_token(const ModelConfig *c, int T) {
    double L = c->n_layer, d = c->d_model, V = c->vocab_size;
    return 6.0 * (12.0 * L * d * d + V * d) + 12.0 * L * T * d;
}

static void free_acts_of(GptActs *a) {
    float **fs[] = {&a->x0, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->atty, &a->att,
                    &a->res2, &a->ln2, &a->ln2_mean, &a->ln2_rstd, &a->fch, &a->fch_gelu,
                    &a->res3, &a->lnf, &a->lnf_mean, &a->lnf_rstd, &a->lnf_rows, &a->logits,
                    &a->lse, &a->logp, &a->dres, &a->dln, &a->dqkv, &a->datty, &a->datt,
                    &a->dfch, &a->dfch_gelu, &a->dlnf_rows, &a->scratch};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        free(*fs[i]);
        *fs[i] = NULL;
    }
    free(a->rows);
    free(a->rtgt);
    a->rows = a->rtgt = NULL;
}

static void free_acts(Model *m) {
    if (!m->acts) return;
    free_acts_of(m->acts);
    free(m->acts);
    m->acts = NULL;
}

static void init_weights(Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    double proj_std = 0.02 / sqrt(2.0 * m->cfg.n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const char *nm = t->name;
        if (strstr(nm, "ln_") && util_ends_with(nm, ".weight")) {
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
        } else if (t->ndim == 1) {
            memset(p, 0, t->numel * sizeof(float));
        } else {
            double sd = util_ends_with(nm, "c_proj.weight") ? proj_std : 0.02;
            for (size_t j = 0; j < t->numel; j++) p[j] = (float)(rng_normal(&r) * sd);
        }
    }
}

/* floats of the activations for B x T (allocated into a when with_alloc) */
static size_t act_floats(const ModelConfig *c, int B, int T, int with_alloc, GptActs *a) {
    size_t N = (size_t)B * T, C = c->d_model, L = c->n_layer, NH = c->n_head, V = c->vocab_size;
    size_t tot = 0;
#define A(field, count)                                                     \
    do {                                                                    \
        size_t n_ = (count);                                                \
        if (with_alloc) a->field = xmalloc_aligned(n_ * sizeof(float));     \
        tot += n_;                                                          \
    } while (0)
    A(x0, N * C);
    A(ln1, L * N * C);
    A(ln1_mean, L * N);
    A(ln1_rstd, L * N);
    A(qkv, L * N * 3 * C);
    A(atty, L * N * C);
    A(att, L * (size_t)B * NH * T * T);
    A(res2, L * N * C);
    A(ln2, L * N * C);
    A(ln2_mean, L * N);
    A(ln2_rstd, L * N);
    A(fch, L * N * 4 * C);
    A(fch_gelu, L * N * 4 * C);
    A(res3, L * N * C);
    A(lnf, N * C);
    A(lnf_mean, N);
    A(lnf_rstd, N);
    A(lnf_rows, N * C);
    A(logits, N * V);
    A(lse, N);
    A(logp, N);
    A(dres, N * C);
    A(dln, N * C);
    A(dqkv, N * 3 * C);
    A(datty, N * C);
    A(datt, (size_t)B * NH * T * T);
    A(dfch, N * 4 * C);
    A(dfch_gelu, N * 4 * C);
    A(dlnf_rows, N * C);
    A(scratch, N * 4 * C);
#undef A
    tot += 2 * N; /* rows, rtgt */
    if (with_alloc) {
        a->rows = xcalloc(N, sizeof(int));
        a->rtgt = xcalloc(N, sizeof(int));
    }
    return tot;
}

static size_t activation_bytes(const ModelConfig *cfg, int B, int T) {
    return act_floats(cfg, B, T, 0, NULL) * sizeof(float);
}

static void alloc_acts(Model *m, int B, int T) {
    GptActs *a = xcalloc(1, sizeof(GptActs));
    act_floats(&m->cfg, B, T, 1, a);
    m->acts = a;
}

/* parameter pointers of layer l */
static float *lp(float *base, const Model *m, int l, int k) {
    return base + m->tensors[2 + l * T_PER_LAYER + k].offset;
}

static int forward(Model *m, const ModelBatch *b) {
    const ModelConfig *c = &m->cfg;
    int B = b->B, T = b->T, C = c->d_model, NH = c->n_head, V = c->vocab_size;
    int N = B * T;
    size_t NC = (size_t)N * C;
    GptActs *a = m->acts;
    float *P = m->params;
    ops_encoder_forward(a->x0, b->tok, b->pos, P + m->tensors[0].offset, P + m->tensors[1].offset,
                        N, C);
    const float *res = a->x0;
    for (int l = 0; l < c->n_layer; l++) {
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        float *att = a->att + (size_t)l * B * NH * T * T, *res2 = a->res2 + l * NC;
        float *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC, *fcg = a->fch_gelu + l * 4 * NC;
        float *res3 = a->res3 + l * NC;
        ops_layernorm_forward(ln1, a->ln1_mean + (size_t)l * N, a->ln1_rstd + (size_t)l * N, res,
                              lp(P, m, l, T_LN1W), lp(P, m, l, T_LN1B), N, C);
        ops_matmul_forward(qkv, ln1, lp(P, m, l, T_QKVW), lp(P, m, l, T_QKVB), N, C, 3 * C);
        ops_attention_forward(atty, att, qkv, b->seg, B, T, C, NH);
        ops_matmul_forward(a->scratch, atty, lp(P, m, l, T_PROJW), lp(P, m, l, T_PROJB), N, C, C);
        ops_residual_forward(res2, res, a->scratch, (long)NC);
        ops_layernorm_forward(ln2, a->ln2_mean + (size_t)l * N, a->ln2_rstd + (size_t)l * N, res2,
                              lp(P, m, l, T_LN2W), lp(P, m, l, T_LN2B), N, C);
        ops_matmul_forward(fch, ln2, lp(P, m, l, T_FCW), lp(P, m, l, T_FCB), N, C, 4 * C);
        ops_gelu_forward(fcg, fch, 4 * (long)NC);
        ops_matmul_forward(a->scratch, fcg, lp(P, m, l, T_FCPW), lp(P, m, l, T_FCPB), N, 4 * C, C);
        ops_residual_forward(res3, res2, a->scratch, (long)NC);
        res = res3;
    }
    const ModelTensor *lnfw = &m->tensors[m->n_tensors - 2], *lnfb = &m->tensors[m->n_tensors - 1];
    ops_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, res, P + lnfw->offset,
                          P + lnfb->offset, N, C);
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
    ops_gather_rows(a->lnf_rows, a->lnf, a->rows, M, C);
    ops_matmul_forward(a->logits, a->lnf_rows, P + m->tensors[0].offset, NULL, M, C, V);
    ops_logprob_forward(a->logp, a->lse, a->logits, a->rtgt, M, V);
    return M;
}

static void backward(Model *m, const ModelBatch *b, const float *g) {
    const ModelConfig *c = &m->cfg;
    int B = b->B, T = b->T, C = c->d_model, NH = c->n_head, V = c->vocab_size;
    GptActs *a = m->acts;
    int N = B * T, M = a->M;
    size_t NC = (size_t)N * C;
    float *P = m->params, *G = m->grads;
    float *dwte = G + m->tensors[0].offset;
    /* LM head */
    memset(a->dres, 0, NC * sizeof(float));
    memset(a->dln, 0, NC * sizeof(float));
    if (M > 0) {
        ops_logprob_backward(a->logits, a->lse, a->rtgt, g, M, V);
        memset(a->dlnf_rows, 0, (size_t)M * C * sizeof(float));
        ops_matmul_backward(a->dlnf_rows, dwte, NULL, a->logits, a->lnf_rows,
                            P + m->tensors[0].offset, M, C, V);
        ops_scatter_add_rows(a->dln, a->dlnf_rows, a->rows, M, C);
    }
    const ModelTensor *lnfw = &m->tensors[m->n_tensors - 2], *lnfb = &m->tensors[m->n_tensors - 1];
    const float *last = c->n_layer > 0 ? a->res3 + (size_t)(c->n_layer - 1) * NC : a->x0;
    ops_layernorm_backward(a->dres, G + lnfw->offset, G + lnfb->offset, a->dln, last,
                           P + lnfw->offset, a->lnf_mean, a->lnf_rstd, N, C);
    model_grads_final(m, lnfw->offset);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        const float *res = l > 0 ? a->res3 + (size_t)(l - 1) * NC : a->x0;
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC, *atty = a->atty + l * NC;
        float *att = a->att + (size_t)l * B * NH * T * T, *res2 = a->res2 + l * NC;
        float *ln2 = a->ln2 + l * NC, *fch = a->fch + l * 4 * NC, *fcg = a->fch_gelu + l * 4 * NC;
        /* MLP: res3 = res2 + fcproj(gelu(fc(ln2(res2)))) */
        memset(a->dfch_gelu, 0, 4 * NC * sizeof(float));
        ops_matmul_backward(a->dfch_gelu, lp(G, m, l, T_FCPW), lp(G, m, l, T_FCPB), a->dres, fcg,
                            lp(P, m, l, T_FCPW), N, 4 * C, C);
        memset(a->dfch, 0, 4 * NC * sizeof(float));
        ops_gelu_backward(a->dfch, fch, a->dfch_gelu, 4 * (long)NC);
        memset(a->dln, 0, NC * sizeof(float));
        ops_matmul_backward(a->dln, lp(G, m, l, T_FCW), lp(G, m, l, T_FCB), a->dfch, ln2,
                            lp(P, m, l, T_FCW), N, C, 4 * C);
        ops_layernorm_backward(a->dres, lp(G, m, l, T_LN2W), lp(G, m, l, T_LN2B), a->dln, res2,
                               lp(P, m, l, T_LN2W), a->ln2_mean + (size_t)l * N,
                               a->ln2_rstd + (size_t)l * N, N, C);
        /* attention: res2 = res + proj(attn(qkv(ln1(res)))) */
        memset(a->datty, 0, NC * sizeof(float));
        ops_matmul_backward(a->datty, lp(G, m, l, T_PROJW), lp(G, m, l, T_PROJB), a->dres, atty,
                            lp(P, m, l, T_PROJW), N, C, C);
        memset(a->dqkv, 0, 3 * NC * sizeof(float));
        ops_attention_backward(a->dqkv, a->datt, a->datty, qkv, att, b->seg, B, T, C, NH);
        memset(a->dln, 0, NC * sizeof(float));
        ops_matmul_backward(a->dln, lp(G, m, l, T_QKVW), lp(G, m, l, T_QKVB), a->dqkv, ln1,
                            lp(P, m, l, T_QKVW), N, C, 3 * C);
        ops_layernorm_backward(a->dres, lp(G, m, l, T_LN1W), lp(G, m, l, T_LN1B), a->dln, res,
                               lp(P, m, l, T_LN1W), a->ln1_mean + (size_t)l * N,
                               a->ln1_rstd + (size_t)l * N, N, C);
        model_grads_final(m, m->tensors[2 + l * T_PER_LAYER].offset);
    }
    ops_encoder_backward(dwte, G + m->tensors[1].offset, a->dres, b->tok, b->pos, N, C);
}

/* ---- incremental decoding ------------------------------------------------------ */

/* The cache: a pool of keys and values [L][R][C] and scratch for up to
 * max_tokens tokens per call. */
typedef struct {
    ModelKV base;
    int C, L, V, NT; /* channels, layers, vocabulary, scratch tokens */
    float *k, *v;
    float *x, *xn, *mean, *rstd, *qkv, *y, *tmp, *h, *hg, *xl;
    float *lg; /* [ops_matmul_min_rows(V)][V] logits of a call with fewer slots */
    int *tslot, *tpos, *last; /* per token: slot and position; per slot: its last token */
    float *att;               /* [threads][T] attention scores */
    int att_cap;
} GptKV;

static ModelKV *kv_create(const ModelConfig *c, int R, int NT) {
    GptKV *kv = xcalloc(1, sizeof *kv);
    int pad = ops_matmul_min_rows(c->d_model); /* the smallest product of a layer has d_model outputs */
    NT = NT > pad ? NT : pad;
    kv->C = c->d_model, kv->L = c->n_layer, kv->V = c->vocab_size, kv->NT = NT;
    size_t pool = (size_t)c->n_layer * R * c->d_model, C = (size_t)c->d_model;
    kv->k = xmalloc_aligned(pool * sizeof(float));
    kv->v = xmalloc_aligned(pool * sizeof(float));
    kv->x = xmalloc_aligned(NT * C * sizeof(float));
    kv->xn = xmalloc_aligned(NT * C * sizeof(float));
    kv->mean = xmalloc_aligned(NT * sizeof(float));
    kv->rstd = xmalloc_aligned(NT * sizeof(float));
    kv->qkv = xmalloc_aligned(NT * 3 * C * sizeof(float));
    kv->y = xmalloc_aligned(NT * C * sizeof(float));
    kv->tmp = xmalloc_aligned(NT * C * sizeof(float));
    kv->h = xmalloc_aligned(NT * 4 * C * sizeof(float));
    kv->hg = xmalloc_aligned(NT * 4 * C * sizeof(float));
    kv->xl = xmalloc_aligned(NT * C * sizeof(float));
    kv->lg = xmalloc_aligned((size_t)ops_matmul_min_rows(c->vocab_size) * c->vocab_size * sizeof(float));
    kv->tslot = xmalloc(sizeof(int) * (size_t)NT);
    kv->tpos = xmalloc(sizeof(int) * (size_t)NT);
    kv->last = xmalloc(sizeof(int) * (size_t)NT);
    return &kv->base;
}

static void kv_destroy(ModelKV *base) {
    GptKV *kv = (GptKV *)base;
    free(kv->k), free(kv->v), free(kv->x), free(kv->xn), free(kv->mean), free(kv->rstd), free(kv->qkv);
    free(kv->y), free(kv->tmp), free(kv->h), free(kv->hg), free(kv->xl), free(kv->tslot), free(kv->tpos);
    free(kv->last), free(kv->att), free(kv->lg);
    free(kv);
}

typedef struct {
    GptKV *kv;
    int l, NH;
} DecAttCtx;

/* one query per (token, head) against the slot's cached keys 0..pos */
static void dec_att_task(void *vc, long b0, long e0, int tid) {
    DecAttCtx *c = vc;
    GptKV *kv = c->kv;
    int C = kv->C, NH = c->NH, hs = C / NH, T = kv->base.T, R = kv->base.R;
    float scale = 1.0f / sqrtf((float)hs);
    float *a = kv->att + (size_t)tid * T;
    const float *K = kv->k + (size_t)c->l * R * C, *Vv = kv->v + (size_t)c->l * R * C;
    for (long ih = b0; ih < e0; ih++) {
        int q = (int)(ih / NH), h = (int)(ih % NH);
        int n = kv->tpos[q] + 1;
        const int *map = kv->base.map + (size_t)kv->tslot[q] * T;
        const float *qv = kv->qkv + (size_t)q * 3 * C + h * hs;
        float mx = -INFINITY;
        for (int t = 0; t < n; t++) {
            const float *k = K + (size_t)map[t] * C + (size_t)h * hs;
            float d = 0;
            for (int j = 0; j < hs; j++) d += qv[j] * k[j];
            a[t] = d * scale;
            mx = a[t] > mx ? a[t] : mx;
        }
        float sum = 0;
        for (int t = 0; t < n; t++) sum += (a[t] = expf(a[t] - mx));
        float *y = kv->y + (size_t)q * C + h * hs;
        for (int j = 0; j < hs; j++) y[j] = 0;
        for (int t = 0; t < n; t++) {
            const float *v = Vv + (size_t)map[t] * C + (size_t)h * hs;
            float p = a[t] / sum;
            for (int j = 0; j < hs; j++) y[j] += p * v[j];
        }
    }
}

/* per token: its slot and position; per slot: its last token; the embeddings */
static int dec_tokens(const Model *m, GptKV *kv, const int *slot, const int *tok, const int *cnt, int n) {
    int C = kv->C, N = 0;
    const float *P = m->params;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < cnt[i]; j++, N++) {
            kv->tslot[N] = slot[i];
            kv->tpos[N] = kv->base.len[slot[i]] + j;
            const float *a = P + m->tensors[0].offset + (size_t)tok[N] * C;
            const float *b = P + m->tensors[1].offset + (size_t)kv->tpos[N] * C;
            for (int c = 0; c < C; c++) kv->x[(size_t)N * C + c] = a[c] + b[c];
        }
        kv->last[i] = N - 1;
    }
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
    GptKV *kv = (GptKV *)base;
    const ModelConfig *c = &m->cfg;
    int C = c->d_model, V = c->vocab_size, L = c->n_layer, T = base->T, R = base->R;
    float *P = (float *)m->params;
    int N = dec_tokens(m, kv, slot, tok, cnt, n);
    for (int l = 0; l < L; l++) {
        ops_layernorm_forward(kv->xn, kv->mean, kv->rstd, kv->x, lp(P, m, l, T_LN1W), lp(P, m, l, T_LN1B), N, C);
        ops_matmul_forward_rows(kv->qkv, kv->xn, lp(P, m, l, T_QKVW), lp(P, m, l, T_QKVB), N, C, 3 * C);
        for (int q = 0; q < N; q++) {
            size_t o = ((size_t)l * R + (size_t)base->map[(size_t)kv->tslot[q] * T + kv->tpos[q]]) * C;
            memcpy(kv->k + o, kv->qkv + (size_t)q * 3 * C + C, sizeof(float) * C);
            memcpy(kv->v + o, kv->qkv + (size_t)q * 3 * C + 2 * C, sizeof(float) * C);
        }
        DecAttCtx ac = {kv, l, c->n_head};
        par_for((long)N * c->n_head, 4, dec_att_task, &ac);
        ops_matmul_forward_rows(kv->tmp, kv->y, lp(P, m, l, T_PROJW), lp(P, m, l, T_PROJB), N, C, C);
        ops_residual_forward(kv->x, kv->x, kv->tmp, (long)N * C);
        ops_layernorm_forward(kv->xn, kv->mean, kv->rstd, kv->x, lp(P, m, l, T_LN2W), lp(P, m, l, T_LN2B), N, C);
        ops_matmul_forward_rows(kv->h, kv->xn, lp(P, m, l, T_FCW), lp(P, m, l, T_FCB), N, C, 4 * C);
        ops_gelu_forward(kv->hg, kv->h, 4L * N * C);
        ops_matmul_forward_rows(kv->tmp, kv->hg, lp(P, m, l, T_FCPW), lp(P, m, l, T_FCPB), N, 4 * C, C);
        ops_residual_forward(kv->x, kv->x, kv->tmp, (long)N * C);
    }
    const ModelTensor *lnfw = &m->tensors[m->n_tensors - 2], *lnfb = &m->tensors[m->n_tensors - 1];
    ops_gather_rows(kv->xl, kv->x, kv->last, n, C);
    ops_layernorm_forward(kv->xn, kv->mean, kv->rstd, kv->xl, P + lnfw->offset, P + lnfb->offset, n, C);
    if (n >= ops_matmul_min_rows(V)) {
        ops_matmul_forward(logits, kv->xn, P + m->tensors[0].offset, NULL, n, C, V);
    } else { /* padded into the cache's buffer, so a slot's logits do not depend on n */
        ops_matmul_forward_rows(kv->lg, kv->xn, P + m->tensors[0].offset, NULL, n, C, V);
        memcpy(logits, kv->lg, sizeof(float) * (size_t)n * V);
    }
}

const ModelFamily model_family_gpt2 = {
    .name = "gpt2",
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
};
