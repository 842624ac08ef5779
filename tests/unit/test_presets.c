/* test_presets -- engine/presets.h: every Hugging Face preset has the shape
 * of its published config.json (written out here by hand from the model
 * cards' config files, not from presets.c) and the published parameter count
 * (model_param_count); the GPT-2 presets leave the vocabulary to the caller
 * and, with GPT-2's 50257, give GPT-2 small's and medium's published counts;
 * names and descriptions enumerate to NULL; an unknown name is -1 and leaves
 * the output untouched. */
#include <string.h>

#include "engine/model.h"
#include "engine/presets.h"
#include "test.h"

typedef struct {
    const char *name;
    int L, NH, KV, hd, C, F, V, P, bias, qkn;
    double eps, theta;
    int llama3;
    size_t params; /* published */
} Published;

static const Published HF[] = {
    /* HuggingFaceTB/SmolLM2-135M */
    {"smollm2-135m", 30, 9, 3, 64, 576, 1536, 49152, 8192, 0, 0, 1e-5, 1e5, 0, 134515008},
    /* HuggingFaceTB/SmolLM2-360M */
    {"smollm2-360m", 32, 15, 5, 64, 960, 2560, 49152, 8192, 0, 0, 1e-5, 1e5, 0, 361821120},
    /* Qwen/Qwen2.5-0.5B */
    {"qwen2.5-0.5b", 24, 14, 2, 64, 896, 4864, 151936, 32768, 1, 0, 1e-6, 1e6, 0, 494032768},
    /* Qwen/Qwen3-0.6B */
    {"qwen3-0.6b", 28, 16, 8, 128, 1024, 3072, 151936, 40960, 0, 1, 1e-6, 1e6, 0, 596049920},
    /* meta-llama/Llama-3.2-1B */
    {"llama3.2-1b", 16, 32, 8, 64, 2048, 8192, 128256, 131072, 0, 0, 1e-5, 5e5, 1, 1235814400},
};

/* the parameter count of a tied Llama-style decoder, counted from its shape */
static size_t count(const Published *p) {
    size_t C = (size_t)p->C, q = (size_t)p->NH * (size_t)p->hd, kv = (size_t)p->KV * (size_t)p->hd;
    size_t layer = C * q + 2 * C * kv + q * C + 3 * C * (size_t)p->F + 2 * C;
    if (p->bias) layer += q + 2 * kv;
    if (p->qkn) layer += 2 * (size_t)p->hd;
    return (size_t)p->L * layer + (size_t)p->V * C + C;
}

static void test_hf(void) {
    for (size_t i = 0; i < sizeof HF / sizeof HF[0]; i++) {
        const Published *p = &HF[i];
        ModelConfig c;
        memset(&c, 0, sizeof c);
        EXPECT(model_preset(p->name, &c) == 0, "%s is a preset", p->name);
        EXPECT(c.arch == MODEL_LLAMA && c.n_layer == p->L && c.n_head == p->NH && c.n_kv_head == p->KV &&
                   c.head_dim == p->hd && c.d_model == p->C && c.d_ff == p->F && c.vocab_size == p->V &&
                   c.max_seq_len == p->P,
               "%s: layers, heads, kv heads, head_dim, width, ffn, vocabulary, positions", p->name);
        EXPECT(c.qkv_bias == p->bias && c.qk_norm == p->qkn && c.tie_embeddings == 1, "%s: biases, q/k norm, tied",
               p->name);
        EXPECT(c.norm_eps == p->eps && c.rope_theta == p->theta, "%s: eps %g theta %g", p->name, c.norm_eps,
               c.rope_theta);
        EXPECT(c.rope_llama3 == p->llama3, "%s: llama3 rope scaling %d", p->name, c.rope_llama3);
        if (p->llama3)
            EXPECT(c.rope_factor == 32 && c.rope_low_freq_factor == 1 && c.rope_high_freq_factor == 4 &&
                       c.rope_original_max_pos == 8192,
                   "%s: rope_scaling factor 32, low 1, high 4, original 8192", p->name);
        EXPECT(count(p) == p->params, "%s: the shape counts %zu, published %zu (the table here is wrong)", p->name,
               count(p), p->params);
        EXPECT(model_param_count(&c) == p->params, "%s: model_param_count %zu, published %zu", p->name,
               model_param_count(&c), p->params);
    }
}

static void test_gpt2(void) {
    const char *names[] = {"tiny", "mini", "small", "gpt2-124m", "gpt2-350m", "llama-tiny"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ModelConfig c;
        EXPECT(model_preset(names[i], &c) == 0 && c.vocab_size == 0, "%s leaves the vocabulary to the caller", names[i]);
    }
    ModelConfig c;
    model_preset("gpt2-124m", &c);
    c.vocab_size = 50257;
    EXPECT(c.arch == MODEL_GPT2 && c.n_layer == 12 && c.n_head == 12 && c.d_model == 768 && c.max_seq_len == 1024,
           "gpt2-124m is GPT-2 small");
    EXPECT(model_param_count(&c) == 124439808, "GPT-2 small has 124,439,808 parameters (got %zu)", model_param_count(&c));
    model_preset("gpt2-350m", &c);
    c.vocab_size = 50257;
    EXPECT(c.n_layer == 24 && c.n_head == 16 && c.d_model == 1024, "gpt2-350m is GPT-2 medium");
    EXPECT(model_param_count(&c) == 354823168, "GPT-2 medium has 354,823,168 parameters (got %zu)",
           model_param_count(&c));
}

static void test_names(void) {
    int n = 0, found_hf = 0;
    for (; model_preset_name(n); n++) {
        ModelConfig c;
        EXPECT(model_preset(model_preset_name(n), &c) == 0, "listed name %s resolves", model_preset_name(n));
        EXPECT(model_preset_about(n) && strlen(model_preset_about(n)) > 10, "%s has a description",
               model_preset_name(n));
        for (size_t i = 0; i < sizeof HF / sizeof HF[0]; i++) found_hf += !strcmp(HF[i].name, model_preset_name(n));
    }
    EXPECT(n == 11 && found_hf == 5, "11 presets listed (%d), the 5 published ones among them (%d)", n, found_hf);
    EXPECT(!model_preset_name(-1) && !model_preset_about(-1) && !model_preset_about(n), "NULL past either end");
    ModelConfig c, before;
    memset(&c, 0x5a, sizeof c);
    memcpy(&before, &c, sizeof c);
    EXPECT(model_preset("gpt2-125m", &c) == -1 && !memcmp(&c, &before, sizeof c), "unknown name: -1, out untouched");
    EXPECT(model_preset("", &c) == -1 && model_preset("SmolLM2-135M", &c) == -1, "empty and differently cased names");
}

int main(void) {
    test_hf();
    test_gpt2();
    test_names();
    return test_summary();
}
