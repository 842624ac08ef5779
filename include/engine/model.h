/* model -- the student: one interface over decoder families, fp32.
 *
 * Families (ModelConfig.arch):
 *  - MODEL_GPT2: GPT-2 (Radford et al. 2019), pre-LayerNorm, GELU MLP 4x,
 *    learned positions, LM head tied to the token embedding (engine/gpt2.c).
 *  - MODEL_LLAMA: the Llama-style decoder (RMSNorm, rotary positions, SwiGLU,
 *    grouped-query attention; optional q/k/v biases, q/k norms, untied head)
 *    of SmolLM2, Qwen2.5/Qwen3 and Llama 3.2 (engine/llama.c; presets.h has
 *    the published shapes, io/hfmodel.h reads and writes Hugging Face
 *    directories).
 *
 * Parameters and gradients each live in one flat buffer; a size table
 * (ModelTensor) names every tensor with its offset, in the family's order,
 * with the names of its Hugging Face implementation.  Linear weights are
 * [out, in].
 *
 * The forward pass takes packed rows (see ops.h: seg) and computes logits
 * only for positions that have a target (tgt >= 0), then their
 * log-probabilities; the backward pass takes dL/dlogp for those positions,
 * so every objective (cross-entropy, DPO, BRIO) is a function of logp.
 * Not thread-safe; knows nothing of MPI or HDF5.
 */
#ifndef HDISTILL_MODEL_H
#define HDISTILL_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum { MODEL_GPT2 = 0, MODEL_LLAMA = 1 } ModelArch;

/* The first five fields are common to every family; the rest are 0 for GPT-2. */
typedef struct {
    int n_layer, n_head, d_model, vocab_size, max_seq_len;
    ModelArch arch;
    /* llama */
    int n_kv_head;          /* grouped-query attention: key/value heads */
    int head_dim;           /* channels per head (need not be d_model / n_head) */
    int d_ff;               /* SwiGLU hidden width */
    int qkv_bias;           /* 1: q/k/v projections have biases (Qwen2.5) */
    int qk_norm;            /* 1: per-head RMSNorm of q and k (Qwen3) */
    int tie_embeddings;     /* 1: the LM head is the token embedding */
    double norm_eps;        /* RMSNorm epsilon */
    double rope_theta;      /* rotary base */
    int rope_llama3;        /* 1: Llama 3 frequency scaling */
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
} ModelConfig;

typedef struct {
    char name[64];
    int ndim;
    long shape[2];
    size_t offset, numel;
    int decay; /* 1: weight decay applies (matrices, embeddings) */
} ModelTensor;

/* One micro-batch of B rows x T tokens. */
typedef struct {
    int B, T;
    const int *tok; /* [B*T] input ids */
    const int *pos; /* [B*T] position ids (restart at 0 for each packed example) */
    const int *seg; /* [B*T] index in the row of the first token of the example */
    const int *tgt; /* [B*T] next-token target, or -1 where no logits are needed */
} ModelBatch;

struct ModelFamily;

typedef struct {
    ModelConfig cfg;
    const struct ModelFamily *family;
    int n_tensors;
    ModelTensor *tensors;
    size_t n_params;
    float *params, *grads;
    int B, T; /* activation capacity */
    /* after model_forward: the M loss rows, in position order */
    int M;
    const int *rows;    /* [M] position index (b*T + t) of each loss row */
    const float *logp;  /* [M] log-probability of its target */
    const float *logits; /* [M,V] its logits (after model_backward: dL/dlogits) */
    void *acts;         /* the family's activations */
    /* Optional (NULL: none): during model_backward, grad_ready(grad_ctx, lo) says that
     * grads[lo, n_params) hold their final values for this backward pass -- lo only
     * falls, through the tail (final norm, head), each layer from the last, and 0 at the
     * end, so a caller can start reducing a finished part while the rest is computed.
     * Called from the calling thread, between layers. */
    void (*grad_ready)(void *ctx, size_t lo);
    void *grad_ctx;
} Model;

/* A GPT-2 configuration (the other fields zero). */
ModelConfig model_config_gpt2(int n_layer, int n_head, int d_model, int vocab_size, int max_seq_len);

/* The family's name ("gpt2", "llama") / the arch of a name (-1 if unknown). */
const char *model_arch_name(ModelArch a);
int model_arch_parse(const char *name);

/* 0 if the configuration is valid for its family, else -1 with a reason
 * (why, n bytes) naming the field. */
int model_config_check(const ModelConfig *c, char *why, size_t n);

/* Exact parameter count for a configuration (no allocation). */
size_t model_param_count(const ModelConfig *cfg);
/* The tensors of a configuration (names, shapes, offsets) without allocating
 * the model: *out gets a malloc'd array; returns its length. */
int model_tensor_layout(const ModelConfig *cfg, ModelTensor **out);
/* Bytes of activations + scratch for B x T rows. */
size_t model_activation_bytes(const ModelConfig *cfg, int B, int T);
/* Model FLOPs per token, forward + backward (PaLM convention, docs/performance.md). */
double model_flops_per_token(const ModelConfig *cfg, int T);

/* Cuts the flat parameter vector into W slices for W ranks (ZeRO-1 optimizer
 * state): bounds[0..W] with bounds[0] = 0, bounds[W] = n_params, slice r =
 * [bounds[r], bounds[r+1]), each within one row of n / W of an even cut and
 * falling on a row of the tensor it cuts (so each slice's part of a tensor is
 * one rectangular block of whole rows: one hyperslab).  Slices may be empty
 * when W exceeds the number of rows. */
void model_shard_bounds(const Model *m, int W, size_t *bounds);

/* Lays out tensors and allocates params and grads; CHECKs the configuration. */
void model_init(Model *m, const ModelConfig *cfg);
void model_free(Model *m); /* accepts NULL */
/* The family's initialisation from seed (GPT-2: N(0, 0.02), residual
 * projections N(0, 0.02/sqrt(2L)), biases 0, norm weights 1). */
void model_init_weights(Model *m, uint64_t seed);
/* (Re)allocates activations for up to B rows of T tokens. */
void model_alloc_acts(Model *m, int B, int T);
const ModelTensor *model_find_tensor(const Model *m, const char *name);

/* Forward over a batch; returns M, the number of loss rows; their
 * log-probabilities are m->logp[0..M), in position order. */
int model_forward(Model *m, const ModelBatch *b);
/* Backward from g[m] = dL/dlogp[m] after model_forward of the same batch;
 * ACCUMULATES into m->grads. */
void model_backward(Model *m, const ModelBatch *b, const float *g);
void model_zero_grad(Model *m);

/* ---- incremental decoding with a key/value cache ---------------------------
 * Each of B slots is one sequence of up to T positions.  The keys and values
 * live in a pool of R rows (per layer); a slot is a map from its positions to
 * pool rows, so slots can share rows: model_kv_copy makes dst a copy of src
 * by copying the map (a shared prompt, a beam hypothesis taking its parent's
 * history) -- no key or value is copied.  Feeding tokens takes fresh pool
 * rows; rows are reclaimed all at once by model_kv_clear.
 *   model_decode feeds cnt[i] tokens to slot[i] (a prompt in one call: its
 *   rows go through every matrix product together) and returns the logits
 *   after the last token of each slot. */
typedef struct ModelKV {
    const struct ModelFamily *family;
    int B, T;      /* slots, positions per slot */
    int *len;      /* [B] positions filled */
    int *map;      /* [B*T] pool row of (slot, position) */
    int R, used;   /* pool rows; rows handed out since the last clear */
    int max_tokens; /* tokens one model_decode call may feed */
} ModelKV;

/* A cache of B slots of up to T positions, a pool of R rows (0: B*T) and
 * calls of up to max_tokens tokens (0: B). */
ModelKV *model_kv_create(const Model *m, int B, int T);
ModelKV *model_kv_create_pool(const Model *m, int B, int T, int R, int max_tokens);
void model_kv_destroy(ModelKV *kv); /* accepts NULL */
/* Empties slot b (its pool rows are not reclaimed before model_kv_clear). */
void model_kv_reset(ModelKV *kv, int b);
/* Empties every slot and reclaims the whole pool. */
void model_kv_clear(ModelKV *kv);
/* Makes slot dst a copy of slot src: the same positions, sharing their rows. */
void model_kv_copy(ModelKV *kv, int dst, int src);
/* Feeds tok[off_i .. off_i + cnt[i]) to slot slot[i] (i < n, distinct slots;
 * off_i = cnt[0] + ... + cnt[i-1]) at its next positions; logits[i*V ..
 * (i+1)*V) get the next-token logits after slot i's last token.  The pool
 * must have sum(cnt) free rows; sum(cnt) <= max_tokens. */
void model_decode(const Model *m, ModelKV *kv, const int *slot, const int *tok, const int *cnt, int n,
                  float *logits);
/* One token per slot: model_decode with every cnt 1. */
void model_decode_step(const Model *m, ModelKV *kv, const int *slot, const int *tok, int n, float *logits);

#endif
