/* safetensors -- GPT-2 weights in the Hugging Face layout (model.safetensors),
 * for starting the student from pretrained GPT-2 and exporting a trained one.
 *
 * A safetensors file is an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}} and the raw little-endian tensors.
 * Hugging Face's GPT-2 names (optionally prefixed "transformer.") are ours
 * with ".weight" on the embeddings (wte.weight, wpe.weight); its Conv1D
 * matrices (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are stored
 * [in, out], ours [out, in], so they are transposed on the way in and out.
 * The attention-mask buffers (h.N.attn.bias, h.N.attn.masked_bias) and a
 * tied lm_head.weight are ignored on reading and not written.
 */
#ifndef HDISTILL_SAFETENSORS_H
#define HDISTILL_SAFETENSORS_H

#include <stddef.h>

#include "engine/model.h"
#include "base/util.h"

/* Checks that PATH holds GPT-2 weights that fit a model of configuration c:
 * every tensor present with the dimensions of c, except that the file may
 * have fewer token embeddings (rows of wte; the model's extra tokens keep
 * their own initialisation) and more positions (the first max_seq_len rows
 * of wpe are used).  The attention heads cannot be seen in the weights: c's
 * n_head is taken as given; c->vocab_size 0 skips the vocabulary check (not
 * known before the tokenizer is).  -1 with e naming the file and the tensor. */
int safetensors_check_gpt2(const char *path, const ModelConfig *c, Err *e);

/* Reads the weights of PATH into m (checked as above).  info (may be NULL)
 * gets a one-line summary (tensors, dtype, rows used). */
int safetensors_read_gpt2(const char *path, Model *m, char *info, size_t ninfo, Err *e);

/* Writes m's parameters as float32 in the Hugging Face layout (names
 * "transformer.*", no lm_head: the head is tied), to PATH.tmp, fsynced and
 * renamed to PATH. */
int safetensors_write_gpt2(const char *path, const Model *m, Err *e);

/* Writes a Hugging Face config.json for GPT2LMHeadModel of configuration c
 * (eot_id: bos/eos token, -1 = none). */
int safetensors_write_hf_config(const char *path, const ModelConfig *c, int eot_id, Err *e);

#endif
