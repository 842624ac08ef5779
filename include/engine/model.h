/* model -- the GPT-2 student (Radford et al. 2019): pre-LayerNorm blocks,
 * GELU MLP 4x, learned positions, LM head tied to the token embedding, fp32.
 *
 * Parameters and gradients each live in one flat buffer; a size table
 * (GptTensor) names every tensor with its offset, in the order
 *   wte, wpe, then per layer l: h.l.ln_1.{weight,bias}, h.l.attn.c_attn.{weight,bias},
 *   h.l.attn.c_proj.{weight,bias}, h.l.ln_2.{weight,bias}, h.l.mlp.c_fc.{weight,bias},
 *   h.l.mlp.c_proj.{weight,bias}, then ln_f.{weight,bias}
 * (names as in Hugging Face's GPT-2; linear weights are [out, in]).
 *
 * The forward pass takes packed rows (see ops.h: seg) and computes logits
 * only for positions that have a target (tgt >= 0), then their
 * log-probabilities; the backward pass takes dL/dlogp for those positions,
 * so every objective (cross-entropy, DPO, BRIO) is a function of logp.
 * Knows nothing of MPI or HDF5.
 */
#ifndef HDISTILL_MODEL_H
#define HDISTILL_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_layer, n_head, d_model, vocab_size, max_seq_len;
} GptConfig;

typedef struct {
    char name[48];
    int ndim;
    long shape[2];
    size_t offset, numel;
    int decay; /* 1: weight decay applies (matrices, embeddings) */
} GptTensor;

/* One micro-batch of B rows x T tokens. */
typedef struct {
    int B, T;
    const int *tok; /* [B*T] input ids */
    const int *pos; /* [B*T] position ids (restart at 0 for each packed example) */
    const int *seg; /* [B*T] index in the row of the first token of the example */
    const int *tgt; /* [B*T] next-token target, or -1 where no logits are needed */
} GptBatch;

typedef struct {
    /* forward */
    float *x0;                  /* [N,C] embeddings */
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *res2;
    float *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *res3; /* per layer, [L][...] */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *lnf_rows;            /* [M,C] */
    float *logits;              /* [M,V]; after backward holds dlogits */
    float *lse, *logp;          /* [M] */
    int *rows, *rtgt;           /* [M] position index and target of each loss row */
    int M;
    /* backward scratch */
    float *dres, *dln, *dqkv, *datty, *datt, *dfch, *dfch_gelu, *dlnf_rows, *scratch;
} GptActs;

typedef struct {
    GptConfig cfg;
    int n_tensors;
    GptTensor *tensors;
    size_t n_params;
    float *params, *grads;
    int B, T; /* activation capacity */
    GptActs a;
} Gpt;

/* Exact parameter count for a configuration (no allocation). */
size_t gpt_param_count(const GptConfig *cfg);
/* The tensors of a configuration (names, shapes, offsets) without allocating
 * the model: *out gets a malloc'd array; returns its length. */
int gpt_tensor_layout(const GptConfig *cfg, GptTensor **out);
/* Bytes of activations + scratch for B x T rows. */
size_t gpt_activation_bytes(const GptConfig *cfg, int B, int T);
/* Model FLOPs per token, forward + backward (PaLM convention, PERF.md):
 * 6 * (12 L d^2 + V d) + 12 L T d. */
double gpt_flops_per_token(const GptConfig *cfg, int T);

/* Lays out tensors and allocates params and grads (zeroed). */
void gpt_init(Gpt *m, const GptConfig *cfg);
void gpt_free(Gpt *m);
/* GPT-2 initialisation from seed: N(0, 0.02), residual projections
 * N(0, 0.02/sqrt(2L)), biases 0, LayerNorm weight 1. */
void gpt_init_weights(Gpt *m, uint64_t seed);
/* (Re)allocates activations for up to B rows of T tokens. */
void gpt_alloc_acts(Gpt *m, int B, int T);
const GptTensor *gpt_find_tensor(const Gpt *m, const char *name);

/* Forward over a batch; returns M, the number of loss rows; their
 * log-probabilities are m->a.logp[0..M), in position order. */
int gpt_forward(Gpt *m, const GptBatch *b);
/* Backward from g[m] = dL/dlogp[m]; ACCUMULATES into m->grads. */
void gpt_backward(Gpt *m, const GptBatch *b, const float *g);
void gpt_zero_grad(Gpt *m);

/* ---- incremental decoding with a key/value cache ---------------------------
 * Each of B cache slots holds one sequence's keys and values for up to T
 * positions.  A step feeds one token to each of n slots at its next position
 * and returns the next-token logits; prompts are fed the same way, one token
 * per step.  Beam search reorders hypotheses with gpt_kv_copy. */
typedef struct {
    int B, T, C, L, V;
    float *k, *v; /* [L][B][T][C] */
    int *len;     /* [B] positions filled */
    /* scratch for n <= B rows */
    float *x, *xn, *mean, *rstd, *qkv, *y, *tmp, *h, *hg, *att;
    int *pos;
} GptKV;

void gpt_kv_init(GptKV *kv, const GptConfig *c, int B, int T);
void gpt_kv_free(GptKV *kv);
/* Empties slot b. */
void gpt_kv_reset(GptKV *kv, int b);
/* Makes slot dst a copy of slot src (positions and cached keys/values). */
void gpt_kv_copy(GptKV *kv, int dst, int src);
/* Feeds tok[i] to slot slot[i] (i < n, distinct slots) at its next position;
 * logits[i*V .. (i+1)*V) get the next-token logits. */
void gpt_decode_step(const Gpt *m, GptKV *kv, const int *slot, const int *tok, int n, float *logits);

#endif
