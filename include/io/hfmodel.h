/* hfmodel -- Hugging Face model directories of the Llama-style students:
 * config.json <-> ModelConfig, and the weights in model.safetensors or in
 * shards model-0000k-of-0000n.safetensors listed by
 * model.safetensors.index.json (weight_map), dtypes F32, BF16, F16 (and F64).
 * When both are present model.safetensors is read, as transformers does.
 *
 * Accepted architectures (config.json "architectures"[0], or "model_type"):
 *   LlamaForCausalLM / llama   SmolLM2, Llama 3.x (llama3 rope scaling)
 *   Qwen2ForCausalLM / qwen2   Qwen2.5 (q/k/v biases, always)
 *   Qwen3ForCausalLM / qwen3   Qwen3 (per-head q/k RMSNorm)
 * Rejected, as one error line naming config.json and the field, with a hint:
 * any other architecture (Gemma, Mistral, MoE models such as
 * Qwen3MoeForCausalLM, ...), hidden_act other than silu, attention_bias or
 * mlp_bias true (an o_proj / MLP bias: Llama, Qwen3), sliding-window
 * attention enabled (use_sliding_window, layer_types), rope scaling other
 * than llama3 or none (linear, dynamic, yarn, longrope, ...), partial rotary
 * factors, interleaved rotary pairs, multimodal rope (use_mrope).
 * Both config spellings of rotary settings are read: rope_theta +
 * rope_scaling {rope_type|type, factor, low_freq_factor, high_freq_factor,
 * original_max_position_embeddings} and transformers 5's rope_parameters.
 * Defaults of absent fields are transformers': num_key_value_heads =
 * num_attention_heads, head_dim = hidden_size / num_attention_heads,
 * rms_norm_eps 1e-6, rope_theta 10000, tie_word_embeddings false,
 * max_position_embeddings 2048 (llama) / 32768 (qwen2, qwen3).
 *
 * Errors are recoverable (Err): one line naming the file and the field or
 * tensor, never a crash.  Knows nothing of MPI; reads with plain POSIX I/O.
 */
#ifndef HDISTILL_HFMODEL_H
#define HDISTILL_HFMODEL_H

#include <stddef.h>

#include "base/util.h"
#include "engine/model.h"

/* Reads DIR/config.json into *c (a complete MODEL_LLAMA configuration,
 * max_seq_len = max_position_embeddings, validated by model_config_check);
 * 0, or -1 with e naming the file and the field. */
int hf_model_read_config(const char *dir, ModelConfig *c, Err *e);

/* Checks that DIR holds a model of configuration c without loading it:
 * config.json describes c (every field but max_seq_len), and every tensor of
 * c's layout is present with its shape and a readable dtype, nothing
 * unexpected (a tied lm_head.weight and rotary_emb.inv_freq buffers are
 * ignored), the index's shards present, whole and holding what it says.
 * -1 with e naming the first mismatch (file and tensor). */
int hf_model_check(const char *dir, const ModelConfig *c, Err *e);

/* hf_model_check, then reads every tensor into m->params (converted to
 * float32).  info (may be NULL) gets a one-line summary. */
int hf_model_load(const char *dir, Model *m, char *info, size_t n, Err *e);

/* Writes m as a Hugging Face directory: DIR/config.json (architectures,
 * model_type and every field above, torch_dtype float32; bos/eos token ids
 * when >= 0) and DIR/model.safetensors (F32, no lm_head when tied), each to a
 * .tmp file, fsynced and renamed; DIR is created.  The architecture follows
 * the switches: q/k norms -> Qwen3ForCausalLM, q/k/v biases ->
 * Qwen2ForCausalLM, else LlamaForCausalLM (both switches: an error, no
 * transformers class has them without an o_proj bias). */
int hf_model_export(const char *dir, const Model *m, int bos_id, int eos_id, Err *e);

#endif
