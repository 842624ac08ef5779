/* model_family -- what a decoder family implements behind model.h.
 *
 * For the implementations (engine/gpt2.c, engine/llama.c) and model.c only;
 * everything else uses model.h.  A family owns its activations (m->acts) and
 * its key/value cache, whose struct starts with a ModelKV (the common part,
 * filled by the family's kv_create).  model.c validates arguments, lays out
 * and allocates the flat buffers from `layout`, and dispatches.
 */
#ifndef HDISTILL_MODEL_FAMILY_H
#define HDISTILL_MODEL_FAMILY_H

#include "engine/model.h"

typedef struct ModelFamily {
    const char *name;
    /* 0, or -1 with a reason naming the field */
    int (*check)(const ModelConfig *c, char *why, size_t n);
    /* number of tensors; fills t (may be NULL); returns it */
    int (*layout)(const ModelConfig *c, ModelTensor *t);
    void (*init_weights)(Model *m, uint64_t seed);
    size_t (*activation_bytes)(const ModelConfig *c, int B, int T);
    void (*alloc_acts)(Model *m, int B, int T); /* after free_acts */
    void (*free_acts)(Model *m);
    int (*forward)(Model *m, const ModelBatch *b); /* sets m->M, rows, logp, logits */
    void (*backward)(Model *m, const ModelBatch *b, const float *g);
    double (*flops_per_token)(const ModelConfig *c, int T);
    /* the family's cache: a struct starting with ModelKV whose pool holds R
     * rows per layer and whose scratch serves max_tokens tokens per call;
     * model.c fills the common part (map, len, ...) */
    ModelKV *(*kv_create)(const ModelConfig *c, int R, int max_tokens);
    void (*kv_destroy)(ModelKV *kv); /* the family's part only */
    /* feeds N = sum(cnt) tokens: token j of slot i sits at position
     * kv->len[slot[i]] + j, in pool row kv->map[slot[i] * T + that position]
     * (assigned by model.c); keys/values go to those rows; attention of a
     * token covers the slot's positions up to its own; logits of each slot's
     * last token.  len is advanced by model.c afterwards. */
    void (*decode)(const Model *m, ModelKV *kv, const int *slot, const int *tok, const int *cnt, int n,
                   float *logits);
    /* bytes of the cached keys and values of the pool (NULL: the family does not say; tests) */
    size_t (*kv_bytes)(const ModelKV *kv);
} ModelFamily;

/* For backward passes: grads[lo, n_params) are final (calls m->grad_ready when set). */
static inline void model_grads_final(Model *m, size_t lo) {
    if (m->grad_ready) m->grad_ready(m->grad_ctx, lo);
}

extern const ModelFamily model_family_gpt2;
extern const ModelFamily model_family_llama;

#endif
