/* safetensors -- the safetensors format: any file's tensors by name (read
 * converting F32/F16/BF16/F64 to float32, write float32), used by io/hfmodel.c
 * for Hugging Face Llama/Qwen directories; and GPT-2 weights in the Hugging
 * Face layout (model.safetensors), for starting the student from pretrained
 * GPT-2 and exporting a trained one.
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
#include <stdint.h>

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

/* ---- any safetensors file ---------------------------------------------------
 * Opening validates the whole header (dtype x shape = byte range, ranges
 * inside the file and tiling its data buffer, no junk): a truncated or
 * corrupt file is an error naming it (and the tensor) before any data is
 * read.  Names are kept as written. */
typedef struct SafetensorsFile SafetensorsFile;

/* Opens PATH; NULL with e set ("PATH: cannot open: ...", "PATH: tensor X ends
 * at byte ... (truncated file?)").  Close with safetensors_close. */
SafetensorsFile *safetensors_open(const char *path, Err *e);
void safetensors_close(SafetensorsFile *f); /* accepts NULL */
const char *safetensors_path(const SafetensorsFile *f);
/* Tensors in header order (without __metadata__); index of a name or -1. */
int safetensors_count(const SafetensorsFile *f);
int safetensors_find(const SafetensorsFile *f, const char *name);
/* Tensor i's name, dtype as the header spells it, 1 if it is one read
 * (F32, F16, BF16, F64), and shape (returns ndim, shape[ndim..4) = 0).
 * The strings belong to f. */
const char *safetensors_name(const SafetensorsFile *f, int i);
const char *safetensors_dtype(const SafetensorsFile *f, int i);
int safetensors_readable(const SafetensorsFile *f, int i);
int safetensors_shape(const SafetensorsFile *f, int i, int64_t shape[4]);
/* Reads tensor i converted to float32 into dst (product of its shape
 * floats), in 16 MiB pieces; -1 with e naming file and tensor on an
 * unreadable dtype, a read error or non-finite values. */
int safetensors_read_f32(const SafetensorsFile *f, int i, float *dst, Err *e);

/* One tensor to write: name, 1 or 2 dimensions, float32 data (borrowed). */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[2];
    const float *data;
} SafetensorsTensor;

/* Writes the n tensors, in order, as F32 to PATH.tmp (header padded to 8
 * bytes, __metadata__ {"format": "pt"}), fsynced and renamed to PATH. */
int safetensors_write_f32(const char *path, const SafetensorsTensor *t, int n, Err *e);

#endif
