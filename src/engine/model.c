/* model -- the family-independent part of the student: argument checks,
 * layout and allocation of the flat buffers, and dispatch to the family
 * (model_family.h); see include/engine/model.h. */
#include "engine/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "engine/model_family.h"

static const ModelFamily *family_of(ModelArch a) {
    switch (a) {
    case MODEL_GPT2: return &model_family_gpt2;
    case MODEL_LLAMA: return &model_family_llama;
    default: return NULL;
    }
}

static const ModelFamily *family_checked(const ModelConfig *c) {
    const ModelFamily *f = family_of(c->arch);
    CHECK(f, "model family %d is not built into this hdistill", (int)c->arch);
    return f;
}

ModelConfig model_config_gpt2(int n_layer, int n_head, int d_model, int vocab_size, int max_seq_len) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.arch = MODEL_GPT2;
    c.n_layer = n_layer, c.n_head = n_head, c.d_model = d_model, c.vocab_size = vocab_size;
    c.max_seq_len = max_seq_len;
    return c;
}

const char *model_arch_name(ModelArch a) {
    switch (a) {
    case MODEL_GPT2: return "gpt2";
    case MODEL_LLAMA: return "llama";
    }
    return "?";
}

int model_arch_parse(const char *name) {
    if (!strcmp(name, "gpt2")) return MODEL_GPT2;
    if (!strcmp(name, "llama")) return MODEL_LLAMA;
    return -1;
}

int model_config_check(const ModelConfig *c, char *why, size_t n) {
    const ModelFamily *f = family_of(c->arch);
    if (!f) {
        snprintf(why, n, "model.arch %s is not built into this hdistill", model_arch_name(c->arch));
        return -1;
    }
    if (c->n_layer <= 0 || c->n_head <= 0 || c->d_model <= 0 || c->vocab_size <= 0 || c->max_seq_len <= 0) {
        snprintf(why, n, "layers %d, heads %d, d_model %d, vocabulary %d and positions %d must all be positive",
                 c->n_layer, c->n_head, c->d_model, c->vocab_size, c->max_seq_len);
        return -1;
    }
    return f->check(c, why, n);
}

size_t model_param_count(const ModelConfig *cfg) {
    ModelTensor *t;
    int n = model_tensor_layout(cfg, &t);
    size_t total = n > 0 ? t[n - 1].offset + t[n - 1].numel : 0;
    free(t);
    return total;
}

int model_tensor_layout(const ModelConfig *cfg, ModelTensor **out) {
    const ModelFamily *f = family_checked(cfg);
    int n = f->layout(cfg, NULL);
    *out = xcalloc((size_t)n, sizeof(ModelTensor));
    f->layout(cfg, *out);
    return n;
}

size_t model_activation_bytes(const ModelConfig *cfg, int B, int T) {
    return family_checked(cfg)->activation_bytes(cfg, B, T);
}

double model_flops_per_token(const ModelConfig *cfg, int T) { return family_checked(cfg)->flops_per_token(cfg, T); }

void model_init(Model *m, const ModelConfig *cfg) {
    memset(m, 0, sizeof *m);
    char why[256];
    CHECK(model_config_check(cfg, why, sizeof why) == 0, "bad model configuration: %s", why);
    m->cfg = *cfg;
    m->family = family_checked(cfg);
    m->n_tensors = model_tensor_layout(cfg, &m->tensors);
    m->n_params = m->tensors[m->n_tensors - 1].offset + m->tensors[m->n_tensors - 1].numel;
    m->params = xmalloc_aligned(m->n_params * sizeof(float));
    m->grads = xmalloc_aligned(m->n_params * sizeof(float));
}

void model_free(Model *m) {
    if (!m) return;
    if (m->family && m->acts) m->family->free_acts(m);
    free(m->params);
    free(m->grads);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

const ModelTensor *model_find_tensor(const Model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

void model_init_weights(Model *m, uint64_t seed) { m->family->init_weights(m, seed); }

void model_alloc_acts(Model *m, int B, int T) {
    if (m->B == B && m->T == T && m->acts) return;
    CHECK(B > 0 && T > 0, "activations for %d x %d", B, T);
    CHECK(T <= m->cfg.max_seq_len, "T %d exceeds max_seq_len %d", T, m->cfg.max_seq_len);
    if (m->acts) m->family->free_acts(m);
    m->family->alloc_acts(m, B, T);
    m->B = B;
    m->T = T;
}

int model_forward(Model *m, const ModelBatch *b) {
    CHECK(m->acts && b->B <= m->B && b->T == m->T, "batch %dx%d does not fit activations %dx%d", b->B, b->T, m->B,
          m->T);
    const ModelConfig *c = &m->cfg;
    int N = b->B * b->T;
    for (int i = 0; i < N; i++) {
        CHECK(b->tok[i] >= 0 && b->tok[i] < c->vocab_size, "token id %d outside vocabulary %d", b->tok[i],
              c->vocab_size);
        CHECK(b->pos[i] >= 0 && b->pos[i] < c->max_seq_len, "position %d outside %d", b->pos[i], c->max_seq_len);
        CHECK(b->tgt[i] < c->vocab_size, "target id %d outside vocabulary %d", b->tgt[i], c->vocab_size);
    }
    return m->family->forward(m, b);
}

void model_backward(Model *m, const ModelBatch *b, const float *g) {
    m->family->backward(m, b, g);
    if (m->grad_ready) m->grad_ready(m->grad_ctx, 0);
}

void model_shard_bounds(const Model *m, int W, size_t *bounds) {
    CHECK(W > 0, "%d slices", W);
    size_t n = m->n_params;
    bounds[0] = 0;
    for (int r = 1; r < W; r++) {
        size_t t = (size_t)((unsigned __int128)n * (unsigned)r / (unsigned)W), b = t;
        for (int k = 0; k < m->n_tensors; k++) {
            const ModelTensor *x = &m->tensors[k];
            if (t < x->offset || t >= x->offset + x->numel) continue;
            size_t row = x->ndim == 2 ? (size_t)x->shape[1] : 1, q = (t - x->offset + row / 2) / row;
            b = x->offset + q * row;
            break;
        }
        bounds[r] = b < bounds[r - 1] ? bounds[r - 1] : b > n ? n : b;
    }
    bounds[W] = n;
}

void model_zero_grad(Model *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

/* ---- decoding ------------------------------------------------------------------ */

ModelKV *model_kv_create_pool(const Model *m, int B, int T, int R, int max_tokens) {
    if (R <= 0) R = B * T;
    if (max_tokens <= 0) max_tokens = B;
    CHECK(B > 0 && T > 0 && R > 0 && max_tokens > 0, "cache of %d x %d, pool %d, %d tokens per call", B, T, R,
          max_tokens);
    CHECK(T <= m->cfg.max_seq_len, "decode length %d exceeds %d positions", T, m->cfg.max_seq_len);
    ModelKV *kv = m->family->kv_create(&m->cfg, R, max_tokens);
    kv->family = m->family;
    kv->B = B, kv->T = T, kv->R = R, kv->max_tokens = max_tokens, kv->used = 0;
    kv->len = xcalloc((size_t)B, sizeof(int));
    kv->map = xcalloc((size_t)B * T, sizeof(int));
    return kv;
}

ModelKV *model_kv_create(const Model *m, int B, int T) { return model_kv_create_pool(m, B, T, 0, 0); }

void model_kv_destroy(ModelKV *kv) {
    if (!kv) return;
    free(kv->len);
    free(kv->map);
    kv->family->kv_destroy(kv);
}

void model_kv_reset(ModelKV *kv, int b) {
    CHECK(b >= 0 && b < kv->B, "slot %d of %d", b, kv->B);
    kv->len[b] = 0;
}

void model_kv_clear(ModelKV *kv) {
    memset(kv->len, 0, sizeof(int) * (size_t)kv->B);
    kv->used = 0;
}

void model_kv_copy(ModelKV *kv, int dst, int src) {
    CHECK(dst >= 0 && dst < kv->B && src >= 0 && src < kv->B, "slots %d <- %d of %d", dst, src, kv->B);
    if (dst == src) return;
    memcpy(kv->map + (size_t)dst * kv->T, kv->map + (size_t)src * kv->T, sizeof(int) * (size_t)kv->len[src]);
    kv->len[dst] = kv->len[src];
}

void model_decode(const Model *m, ModelKV *kv, const int *slot, const int *tok, const int *cnt, int n,
                  float *logits) {
    CHECK(kv->family == m->family, "a cache of another model family");
    CHECK(n <= kv->B, "decode of %d slots, cache of %d", n, kv->B);
    int N = 0;
    for (int i = 0; i < n; i++) {
        int s = slot[i];
        CHECK(s >= 0 && s < kv->B, "slot %d of %d", s, kv->B);
        CHECK(cnt[i] >= 1 && kv->len[s] + cnt[i] <= kv->T, "slot %d: %d + %d positions exceed %d", s, kv->len[s],
              cnt[i], kv->T);
        for (int j = 0; j < cnt[i]; j++) {
            CHECK(tok[N + j] >= 0 && tok[N + j] < m->cfg.vocab_size, "token %d outside vocabulary", tok[N + j]);
            kv->map[(size_t)s * kv->T + kv->len[s] + j] = kv->used + N + j; /* fresh pool rows */
        }
        N += cnt[i];
    }
    CHECK(N <= kv->max_tokens, "%d tokens in one decode call, cache made for %d", N, kv->max_tokens);
    CHECK(kv->used + N <= kv->R, "key/value pool of %d rows is full (%d used, %d more)", kv->R, kv->used, N);
    m->family->decode(m, kv, slot, tok, cnt, n, logits);
    kv->used += N;
    for (int i = 0; i < n; i++) kv->len[slot[i]] += cnt[i];
}

void model_decode_step(const Model *m, ModelKV *kv, const int *slot, const int *tok, int n, float *logits) {
    static const int ones[64] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    if (n <= 64) {
        model_decode(m, kv, slot, tok, ones, n, logits);
        return;
    }
    int *cnt = xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) cnt[i] = 1;
    model_decode(m, kv, slot, tok, cnt, n, logits);
    free(cnt);
}
