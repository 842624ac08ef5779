/* presets -- named model shapes: the project's GPT-2 sizes and the published
 * shapes of the Llama-style students (SmolLM2, Qwen2.5, Qwen3, Llama 3.2).
 *
 * A preset fills a whole ModelConfig.  GPT-2 presets and llama-tiny leave
 * vocab_size 0: the caller sets it from its tokenizer.  The Hugging Face
 * shapes carry their published vocabulary (the one their tokenizer needs)
 * and context length; a caller may lower max_seq_len (it bounds T, nothing
 * is allocated per position).  Weights come from model_init_weights or from
 * io/hfmodel.h.  Knows nothing of the configuration file (base/config.c
 * calls it).
 */
#ifndef HDISTILL_PRESETS_H
#define HDISTILL_PRESETS_H

#include "engine/model.h"

/* 0 and *out filled, or -1 (out untouched) if name is not a preset. */
int model_preset(const char *name, ModelConfig *out);

/* The i-th preset's name and a one-line description, for help texts and
 * hints; NULL when i is past the end (or negative). */
const char *model_preset_name(int i);
const char *model_preset_about(int i);

#endif
