/* model -- GPT-2 student forward/backward over the ops kernels; see
 * include/model.h. */
#include "engine/model.h"

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

static void layer_shape(int k, long C, long shape[2], int *ndim) {
    static const int rows[T_PER_LAYER] = {1, 1, 3, 3, 1, 1, 1, 1, 4, 4, 1, 1};
    static const int cols[T_PER_LAYER] = {0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 0};
    shape[0] = rows[k] * C;
    shape[1] = cols[k] * C;
    *ndim = cols[k] ? 2 : 1;
}

static int n_tensors_for(const GptConfig *c) { return 2 + T_PER_LAYER * c->n_layer + 2; }

/* Fills t (may be NULL) and returns the parameter count. */
static size_t layout(const GptConfig *c, GptTensor *t) {
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
    return off;
}

size_t gpt_param_count(const GptConfig *cfg) { return layout(cfg, NULL); }

int gpt_tensor_layout(const GptConfig *cfg, GptTensor **out) {
    int n = n_tensors_for(cfg);
    *out = xcalloc((size_t)n, sizeof(GptTensor));
    layout(cfg, *out);
    return n;
}

double gpt_flops_per_token(const GptConfig *c, int T) {
    double L = c->n_layer, d = c->d_model, V = c->vocab_size;
    return 6.0 * (12.0 * L * d * d + V * d) + 12.0 * L * T * d;
}

void gpt_init(Gpt *m, const GptConfig *cfg) {
    memset(m, 0, sizeof *m);
    CHECK(cfg->n_layer > 0 && cfg->n_head > 0 && cfg->d_model % cfg->n_head == 0 &&
              cfg->vocab_size > 0 && cfg->max_seq_len > 0,
          "bad model dimensions");
    m->cfg = *cfg;
    m->n_tensors = n_tensors_for(cfg);
    m->tensors = xcalloc((size_t)m->n_tensors, sizeof(GptTensor));
    m->n_params = layout(cfg, m->tensors);
    m->params = xmalloc_aligned(m->n_params * sizeof(float));
    m->grads = xmalloc_aligned(m->n_params * sizeof(float));
}

static void free_acts(GptActs *a) {
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

void gpt_free(Gpt *m) {
    if (!m) return;
    free_acts(&m->a);
    free(m->params);
    free(m->grads);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

const GptTensor *gpt_find_tensor(const Gpt *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

void gpt_init_weights(Gpt *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    double proj_std = 0.02 / sqrt(2.0 * m->cfg.n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const GptTensor *t = &m->tensors[i];
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

/* sizes in floats of each activation for B x T */
typedef struct {
    size_t n[32];
} ActSizes;

static size_t act_floats(const GptConfig *c, int B, int T, int with_alloc, GptActs *a) {
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

size_t gpt_activation_bytes(const GptConfig *cfg, int B, int T) {
    return act_floats(cfg, B, T, 0, NULL) * sizeof(float);
}

void gpt_alloc_acts(Gpt *m, int B, int T) {
    if (m->B == B && m->T == T && m->a.x0) return;
    CHECK(T <= m->cfg.max_seq_len, "T %d exceeds max_seq_len %d", T, m->cfg.max_seq_len);
    free_acts(&m->a);
    act_floats(&m->cfg, B, T, 1, &m->a);
    m->B = B;
    m->T = T;
}

void gpt_zero_grad(Gpt *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

/* parameter pointers of layer l */
static float *lp(float *base, const Gpt *m, int l, int k) {
    return base + m->tensors[2 + l * T_PER_LAYER + k].offset;
}

int gpt_forward(Gpt *m, const GptBatch *b) {
    CHECK(b->B <= m->B && b->T == m->T, "batch %dx%d does not fit activations %dx%d", b->B, b->T,
          m->B, m->T);
    const GptConfig *c = &m->cfg;
    int B = b->B, T = b->T, C = c->d_model, NH = c->n_head, V = c->vocab_size;
    int N = B * T;
    size_t NC = (size_t)N * C;
    GptActs *a = &m->a;
    float *P = m->params;
    for (int i = 0; i < N; i++) {
        CHECK(b->tok[i] >= 0 && b->tok[i] < V, "token id %d outside vocabulary %d", b->tok[i], V);
        CHECK(b->pos[i] >= 0 && b->pos[i] < c->max_seq_len, "position %d outside %d", b->pos[i],
              c->max_seq_len);
    }
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
    const GptTensor *lnfw = &m->tensors[m->n_tensors - 2], *lnfb = &m->tensors[m->n_tensors - 1];
    ops_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, res, P + lnfw->offset,
                          P + lnfb->offset, N, C);
    int M = 0;
    for (int i = 0; i < N; i++)
        if (b->tgt[i] >= 0) {
            CHECK(b->tgt[i] < V, "target id %d outside vocabulary %d", b->tgt[i], V);
            a->rows[M] = i;
            a->rtgt[M] = b->tgt[i];
            M++;
        }
    a->M = M;
    if (M == 0) return 0;
    ops_gather_rows(a->lnf_rows, a->lnf, a->rows, M, C);
    ops_matmul_forward(a->logits, a->lnf_rows, P + m->tensors[0].offset, NULL, M, C, V);
    ops_logprob_forward(a->logp, a->lse, a->logits, a->rtgt, M, V);
    return M;
}

void gpt_backward(Gpt *m, const GptBatch *b, const float *g) {
    const GptConfig *c = &m->cfg;
    int B = b->B, T = b->T, C = c->d_model, NH = c->n_head, V = c->vocab_size;
    int N = B * T, M = m->a.M;
    size_t NC = (size_t)N * C;
    GptActs *a = &m->a;
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
    const GptTensor *lnfw = &m->tensors[m->n_tensors - 2], *lnfb = &m->tensors[m->n_tensors - 1];
    const float *last = c->n_layer > 0 ? a->res3 + (size_t)(c->n_layer - 1) * NC : a->x0;
    ops_layernorm_backward(a->dres, G + lnfw->offset, G + lnfb->offset, a->dln, last,
                           P + lnfw->offset, a->lnf_mean, a->lnf_rstd, N, C);
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
    }
    ops_encoder_backward(dwte, G + m->tensors[1].offset, a->dres, b->tok, b->pos, N, C);
}

/* ---- incremental decoding ------------------------------------------------------ */

void gpt_kv_init(GptKV *kv, const GptConfig *c, int B, int T) {
    memset(kv, 0, sizeof *kv);
    CHECK(T <= c->max_seq_len, "decode length %d exceeds %d positions", T, c->max_seq_len);
    kv->B = B, kv->T = T, kv->C = c->d_model, kv->L = c->n_layer, kv->V = c->vocab_size;
    size_t cache = (size_t)c->n_layer * B * T * c->d_model;
    kv->k = xmalloc_aligned(cache * sizeof(float));
    kv->v = xmalloc_aligned(cache * sizeof(float));
    kv->len = xcalloc((size_t)B, sizeof(int));
    size_t C = (size_t)c->d_model;
    kv->x = xmalloc_aligned(B * C * sizeof(float));
    kv->xn = xmalloc_aligned(B * C * sizeof(float));
    kv->mean = xmalloc_aligned(B * sizeof(float));
    kv->rstd = xmalloc_aligned(B * sizeof(float));
    kv->qkv = xmalloc_aligned(B * 3 * C * sizeof(float));
    kv->y = xmalloc_aligned(B * C * sizeof(float));
    kv->tmp = xmalloc_aligned(B * C * sizeof(float));
    kv->h = xmalloc_aligned(B * 4 * C * sizeof(float));
    kv->hg = xmalloc_aligned(B * 4 * C * sizeof(float));
    kv->att = xmalloc_aligned((size_t)B * c->n_head * T * sizeof(float));
    kv->pos = xcalloc((size_t)B, sizeof(int));
}

void gpt_kv_free(GptKV *kv) {
    if (!kv) return;
    free(kv->k), free(kv->v), free(kv->len), free(kv->x), free(kv->xn), free(kv->mean), free(kv->rstd);
    free(kv->qkv), free(kv->y), free(kv->tmp), free(kv->h), free(kv->hg), free(kv->att), free(kv->pos);
    memset(kv, 0, sizeof *kv);
}

void gpt_kv_reset(GptKV *kv, int b) { kv->len[b] = 0; }

void gpt_kv_copy(GptKV *kv, int dst, int src) {
    if (dst == src) return;
    size_t row = (size_t)kv->C * sizeof(float) * (size_t)kv->len[src];
    for (int l = 0; l < kv->L; l++) {
        size_t o_d = (((size_t)l * kv->B + dst) * kv->T) * kv->C, o_s = (((size_t)l * kv->B + src) * kv->T) * kv->C;
        memcpy(kv->k + o_d, kv->k + o_s, row);
        memcpy(kv->v + o_d, kv->v + o_s, row);
    }
    kv->len[dst] = kv->len[src];
}

typedef struct {
    GptKV *kv;
    const int *slot;
    int l, NH;
} DecAttCtx;

/* one query per (row, head) against the cached keys 0..pos */
static void dec_att_task(void *vc, long b0, long e0, int tid) {
    (void)tid;
    DecAttCtx *c = vc;
    GptKV *kv = c->kv;
    int C = kv->C, NH = c->NH, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (long ih = b0; ih < e0; ih++) {
        int i = (int)(ih / NH), h = (int)(ih % NH);
        int s = c->slot[i], n = kv->pos[i] + 1;
        const float *q = kv->qkv + (size_t)i * 3 * C + h * hs;
        size_t base = (((size_t)c->l * kv->B + s) * kv->T) * C + (size_t)h * hs;
        float *a = kv->att + ih * kv->T;
        float mx = -INFINITY;
        for (int t = 0; t < n; t++) {
            const float *k = kv->k + base + (size_t)t * C;
            float d = 0;
            for (int j = 0; j < hs; j++) d += q[j] * k[j];
            a[t] = d * scale;
            mx = a[t] > mx ? a[t] : mx;
        }
        float sum = 0;
        for (int t = 0; t < n; t++) sum += (a[t] = expf(a[t] - mx));
        float *y = kv->y + (size_t)i * C + h * hs;
        for (int j = 0; j < hs; j++) y[j] = 0;
        for (int t = 0; t < n; t++) {
            const float *v = kv->v + base + (size_t)t * C;
            float p = a[t] / sum;
            for (int j = 0; j < hs; j++) y[j] += p * v[j];
        }
    }
}

void gpt_decode_step(const Gpt *m, GptKV *kv, const int *slot, const int *tok, int n, float *logits) {
    const GptConfig *c = &m->cfg;
    int C = c->d_model, V = c->vocab_size, L = c->n_layer;
    const float *P = m->params;
    CHECK(n <= kv->B, "decode step of %d rows, cache of %d", n, kv->B);
    for (int i = 0; i < n; i++) {
        int s = slot[i];
        CHECK(kv->len[s] < kv->T, "sequence in slot %d is full (%d positions)", s, kv->T);
        CHECK(tok[i] >= 0 && tok[i] < V, "token %d outside vocabulary", tok[i]);
        kv->pos[i] = kv->len[s];
        const float *a = P + m->tensors[0].offset + (size_t)tok[i] * C;
        const float *b = P + m->tensors[1].offset + (size_t)kv->pos[i] * C;
        for (int j = 0; j < C; j++) kv->x[(size_t)i * C + j] = a[j] + b[j];
    }
    for (int l = 0; l < L; l++) {
        ops_layernorm_forward(kv->xn, kv->mean, kv->rstd, kv->x, lp((float *)P, m, l, T_LN1W),
                              lp((float *)P, m, l, T_LN1B), n, C);
        ops_matmul_forward(kv->qkv, kv->xn, lp((float *)P, m, l, T_QKVW), lp((float *)P, m, l, T_QKVB), n, C,
                           3 * C);
        for (int i = 0; i < n; i++) {
            size_t o = (((size_t)l * kv->B + slot[i]) * kv->T + kv->pos[i]) * C;
            memcpy(kv->k + o, kv->qkv + (size_t)i * 3 * C + C, sizeof(float) * C);
            memcpy(kv->v + o, kv->qkv + (size_t)i * 3 * C + 2 * C, sizeof(float) * C);
        }
        DecAttCtx ac = {kv, slot, l, c->n_head};
        par_for((long)n * c->n_head, 4, dec_att_task, &ac);
        ops_matmul_forward(kv->tmp, kv->y, lp((float *)P, m, l, T_PROJW), lp((float *)P, m, l, T_PROJB), n, C, C);
        ops_residual_forward(kv->x, kv->x, kv->tmp, (long)n * C);
        ops_layernorm_forward(kv->xn, kv->mean, kv->rstd, kv->x, lp((float *)P, m, l, T_LN2W),
                              lp((float *)P, m, l, T_LN2B), n, C);
        ops_matmul_forward(kv->h, kv->xn, lp((float *)P, m, l, T_FCW), lp((float *)P, m, l, T_FCB), n, C, 4 * C);
        ops_gelu_forward(kv->hg, kv->h, 4L * n * C);
        ops_matmul_forward(kv->tmp, kv->hg, lp((float *)P, m, l, T_FCPW), lp((float *)P, m, l, T_FCPB), n, 4 * C, C);
        ops_residual_forward(kv->x, kv->x, kv->tmp, (long)n * C);
    }
    const GptTensor *lnfw = &m->tensors[m->n_tensors - 2], *lnfb = &m->tensors[m->n_tensors - 1];
    ops_layernorm_forward(kv->xn, kv->mean, kv->rstd, kv->x, P + lnfw->offset, P + lnfb->offset, n, C);
    ops_matmul_forward(logits, kv->xn, P + m->tensors[0].offset, NULL, n, C, V);
    for (int i = 0; i < n; i++) kv->len[slot[i]]++;
}
