/* presets -- the table of named model shapes; see include/engine/presets.h.
 * Hugging Face shapes as published in each model's config.json:
 * HuggingFaceTB/SmolLM2-135M and -360M, Qwen/Qwen2.5-0.5B, Qwen/Qwen3-0.6B,
 * meta-llama/Llama-3.2-1B. */
#include "engine/presets.h"

#include <string.h>

typedef struct {
    const char *name, *about;
    int gpt2;                                 /* 1: a GPT-2 shape (only L, NH, C, P) */
    int L, NH, C, V, P;                       /* layers, heads, d_model, vocabulary, positions */
    int KV, hd, F, bias, qkn, tie;            /* llama */
    double eps, theta;
    int llama3;
    double factor, low, high;
    int orig;
} Preset;

#define GPT2(nm, ab, l, h, c, p) {.name = nm, .about = ab, .gpt2 = 1, .L = l, .NH = h, .C = c, .P = p}

static const Preset PRESETS[] = {
    GPT2("tiny", "GPT-2 2 layers, 2 heads, d 64, 256 positions (tests)", 2, 2, 64, 256),
    GPT2("mini", "GPT-2 4 layers, 4 heads, d 256, 256 positions", 4, 4, 256, 256),
    GPT2("small", "GPT-2 6 layers, 8 heads, d 512, 512 positions", 6, 8, 512, 512),
    GPT2("gpt2-124m", "GPT-2 small: 12 layers, 12 heads, d 768, 1024 positions", 12, 12, 768, 1024),
    GPT2("gpt2-350m", "GPT-2 medium: 24 layers, 16 heads, d 1024, 1024 positions", 24, 16, 1024, 1024),
    {.name = "llama-tiny",
     .about = "Llama-style 2 layers, d 64, 4 heads / 2 kv, head_dim 16, ffn 192, tied, 256 positions (tests)",
     .L = 2, .NH = 4, .C = 64, .V = 0, .P = 256, .KV = 2, .hd = 16, .F = 192, .tie = 1, .eps = 1e-5,
     .theta = 10000.0},
    {.name = "smollm2-135m",
     .about = "SmolLM2-135M (LlamaForCausalLM): 30 layers, d 576, 9 heads / 3 kv, ffn 1536, tied",
     .L = 30, .NH = 9, .C = 576, .V = 49152, .P = 8192, .KV = 3, .hd = 64, .F = 1536, .tie = 1, .eps = 1e-5,
     .theta = 100000.0},
    {.name = "smollm2-360m",
     .about = "SmolLM2-360M (LlamaForCausalLM): 32 layers, d 960, 15 heads / 5 kv, ffn 2560, tied",
     .L = 32, .NH = 15, .C = 960, .V = 49152, .P = 8192, .KV = 5, .hd = 64, .F = 2560, .tie = 1, .eps = 1e-5,
     .theta = 100000.0},
    {.name = "qwen2.5-0.5b",
     .about = "Qwen2.5-0.5B (Qwen2ForCausalLM): 24 layers, d 896, 14 heads / 2 kv, ffn 4864, q/k/v bias, tied",
     .L = 24, .NH = 14, .C = 896, .V = 151936, .P = 32768, .KV = 2, .hd = 64, .F = 4864, .bias = 1, .tie = 1,
     .eps = 1e-6, .theta = 1000000.0},
    {.name = "qwen3-0.6b",
     .about = "Qwen3-0.6B (Qwen3ForCausalLM): 28 layers, d 1024, 16 heads / 8 kv, head_dim 128, ffn 3072, q/k norm, "
              "tied",
     .L = 28, .NH = 16, .C = 1024, .V = 151936, .P = 40960, .KV = 8, .hd = 128, .F = 3072, .qkn = 1, .tie = 1,
     .eps = 1e-6, .theta = 1000000.0},
    {.name = "llama3.2-1b",
     .about = "Llama-3.2-1B (LlamaForCausalLM): 16 layers, d 2048, 32 heads / 8 kv, ffn 8192, llama3 rope x32, tied",
     .L = 16, .NH = 32, .C = 2048, .V = 128256, .P = 131072, .KV = 8, .hd = 64, .F = 8192, .tie = 1, .eps = 1e-5,
     .theta = 500000.0, .llama3 = 1, .factor = 32.0, .low = 1.0, .high = 4.0, .orig = 8192},
};

#define N_PRESETS ((int)(sizeof PRESETS / sizeof PRESETS[0]))

int model_preset(const char *name, ModelConfig *out) {
    for (int i = 0; i < N_PRESETS; i++) {
        const Preset *p = &PRESETS[i];
        if (strcmp(p->name, name) != 0) continue;
        if (p->gpt2) {
            *out = model_config_gpt2(p->L, p->NH, p->C, p->V, p->P);
            return 0;
        }
        ModelConfig c;
        memset(&c, 0, sizeof c);
        c.arch = MODEL_LLAMA;
        c.n_layer = p->L, c.n_head = p->NH, c.d_model = p->C, c.vocab_size = p->V, c.max_seq_len = p->P;
        c.n_kv_head = p->KV, c.head_dim = p->hd, c.d_ff = p->F, c.qkv_bias = p->bias, c.qk_norm = p->qkn;
        c.tie_embeddings = p->tie, c.norm_eps = p->eps, c.rope_theta = p->theta;
        c.rope_llama3 = p->llama3, c.rope_factor = p->factor, c.rope_low_freq_factor = p->low;
        c.rope_high_freq_factor = p->high, c.rope_original_max_pos = p->orig;
        *out = c;
        return 0;
    }
    return -1;
}

const char *model_preset_name(int i) { return i >= 0 && i < N_PRESETS ? PRESETS[i].name : NULL; }
const char *model_preset_about(int i) { return i >= 0 && i < N_PRESETS ? PRESETS[i].about : NULL; }
