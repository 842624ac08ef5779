/* test_hfmodel -- Hugging Face directories of the Llama-style families
 * against an independent reference (tests/ref/hf_llama.py: its own config.json
 * and safetensors writer/reader, logits from tests/ref/torch_llama.py's
 * float64 forward of the stored values):
 *  - Llama (F32, one file; BF16, three shards + index, llama3 scaling, tied,
 *    rotary buffers), Qwen2 (F16, biases, tied), Qwen3 (BF16, two shards,
 *    q/k norms, head_dim != d_model/heads, rope_parameters) and Llama with
 *    llama3 as rope_parameters: config.json read into the right ModelConfig,
 *    weights loaded, our logits equal the reference's;
 *  - export -> read back: the same configuration and bitwise the same
 *    weights, and the reference's reader finds the Hugging Face layout;
 *  - every unsupported configuration and every broken weight directory is a
 *    one-line error naming the file and the field or tensor. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "engine/model.h"
#include "io/hfmodel.h"
#include "io/store.h"
#include "test.h"

#define DIR "build/tmp/hf"

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st != 0) fprintf(stderr, "command failed (%d): %s\n", st, cmd);
    return st;
}

/* the reference's configuration attributes equal ours */
static void expect_config(StoreFile *f, const ModelConfig *c, const char *name) {
    const char *ik[] = {"n_layer", "n_head", "d_model", "vocab_size", "max_seq_len", "n_kv_head", "head_dim", "d_ff",
                        "qkv_bias", "qk_norm", "tie_embeddings", "rope_llama3", "rope_original_max_pos"};
    int iv[] = {c->n_layer, c->n_head, c->d_model, c->vocab_size, c->max_seq_len, c->n_kv_head, c->head_dim, c->d_ff,
                c->qkv_bias, c->qk_norm, c->tie_embeddings, c->rope_llama3, c->rope_original_max_pos};
    const char *rk[] = {"norm_eps", "rope_theta", "rope_factor", "rope_low_freq_factor", "rope_high_freq_factor"};
    double rv[] = {c->norm_eps, c->rope_theta, c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor};
    Err e;
    for (int i = 0; i < 13; i++) {
        int64_t v = -1;
        store_get_attr_i64(f, "/", ik[i], &v, &e);
        EXPECT(v == iv[i], "%s: config %s is %d, the reference says %lld", name, ik[i], iv[i], (long long)v);
    }
    for (int i = 0; i < 5; i++) {
        double v = -1;
        store_get_attr_f64(f, "/", rk[i], &v, &e);
        EXPECT(v == rv[i], "%s: config %s is %g, the reference says %g", name, rk[i], rv[i], v);
    }
}

/* our logits for the reference's sequence (two packed documents) vs its float64 logits */
static double logits_error(Model *m, StoreFile *f) {
    Err e;
    int nd;
    int64_t dims[4];
    store_dims(f, "/tokens", &nd, dims, &e);
    int T = (int)dims[0], V = m->cfg.vocab_size;
    int32_t *tok = xmalloc(sizeof(int32_t) * T), *pos = xmalloc(sizeof(int32_t) * T), *doc = xmalloc(sizeof(int32_t) * T);
    int *seg = xmalloc(sizeof(int) * T), *tgt = xcalloc((size_t)T, sizeof(int));
    double *ref = xmalloc(sizeof(double) * (size_t)T * V);
    store_read_i32(f, "/tokens", tok, T, &e);
    store_read_i32(f, "/pos", pos, T, &e);
    store_read_i32(f, "/doc", doc, T, &e);
    store_read_f64(f, "/logits", ref, (int64_t)T * V, &e);
    for (int t = 0; t < T; t++) seg[t] = t > 0 && doc[t] == doc[t - 1] ? seg[t - 1] : t;
    model_alloc_acts(m, 1, T);
    ModelBatch b = {1, T, tok, pos, seg, tgt};
    int M = model_forward(m, &b);
    double worst = M == T ? 0 : INFINITY, scale = 1e-3;
    for (long i = 0; i < (long)T * V; i++) scale = fmax(scale, fabs(ref[i]));
    for (long i = 0; i < (long)T * V && M == T; i++) {
        double d = fabs((double)m->logits[i] - ref[i]) / scale;
        if (d > worst || d != d) worst = d != d ? INFINITY : d;
    }
    free(tok), free(pos), free(doc), free(seg), free(tgt), free(ref);
    return worst;
}

/* reads DIR/name into m (configuration from its config.json); 0 or -1 */
static int load(const char *name, Model *m, char *info, size_t n) {
    char dir[256];
    snprintf(dir, sizeof dir, DIR "/%s", name);
    ModelConfig c;
    Err e;
    int rc = hf_model_read_config(dir, &c, &e);
    EXPECT(rc == 0, "%s", e.msg);
    if (rc) return -1;
    model_init(m, &c);
    model_init_weights(m, 3);
    rc = hf_model_check(dir, &c, &e);
    EXPECT(rc == 0, "%s", e.msg);
    if (rc == 0) rc = hf_model_load(dir, m, info, n, &e);
    EXPECT(rc == 0, "%s", e.msg);
    if (rc) model_free(m);
    return rc;
}

static void test_load(const char *name) {
    Model m;
    char info[256] = "", ref[256];
    if (load(name, &m, info, sizeof info)) return;
    snprintf(ref, sizeof ref, DIR "/%s.ref.h5", name);
    Err e;
    StoreFile *f = store_open(ref, 0, &e);
    EXPECT(f != NULL, "%s", e.msg);
    if (f) {
        expect_config(f, &m.cfg, name);
        double err = logits_error(&m, f);
        printf("%-17s logits max error %.2e  (%s)\n", name, err, info);
        EXPECT(err <= 2e-5, "%s: logits error %g", name, err);
        store_close(f, NULL);
    }
    model_free(&m);
}

static int same_config(const ModelConfig *a, const ModelConfig *b) {
    return a->arch == b->arch && a->n_layer == b->n_layer && a->n_head == b->n_head && a->d_model == b->d_model &&
           a->vocab_size == b->vocab_size && a->max_seq_len == b->max_seq_len && a->n_kv_head == b->n_kv_head &&
           a->head_dim == b->head_dim && a->d_ff == b->d_ff && a->qkv_bias == b->qkv_bias && a->qk_norm == b->qk_norm &&
           a->tie_embeddings == b->tie_embeddings && a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta &&
           a->rope_llama3 == b->rope_llama3 && a->rope_factor == b->rope_factor &&
           a->rope_low_freq_factor == b->rope_low_freq_factor && a->rope_high_freq_factor == b->rope_high_freq_factor &&
           a->rope_original_max_pos == b->rope_original_max_pos;
}

/* export -> read back: same configuration, bitwise the same weights; the reference accepts the layout */
static void test_export(const char *name) {
    Model m, m2;
    if (load(name, &m, NULL, 0)) return;
    char out[256];
    snprintf(out, sizeof out, DIR "/export_%s", name);
    Err e;
    int rc = hf_model_export(out, &m, 1, 2, &e);
    EXPECT(rc == 0, "%s", e.msg);
    ModelConfig c;
    rc = rc ? rc : hf_model_read_config(out, &c, &e);
    EXPECT(rc == 0 && same_config(&c, &m.cfg), "%s: exported configuration differs (%s)", name, rc ? e.msg : "");
    if (rc == 0) {
        model_init(&m2, &c);
        EXPECT(hf_model_load(out, &m2, NULL, 0, &e) == 0, "%s", e.msg);
        EXPECT(!memcmp(m.params, m2.params, sizeof(float) * m.n_params), "%s: read(export(m)) != m", name);
        model_free(&m2);
        EXPECT(sh("/usr/bin/python3 tests/ref/hf_llama.py check %s " DIR "/%s.ref.h5", out, name) == 0,
               "%s: the reference does not read the export as the same model", name);
    }
    model_free(&m);
}

/* one line naming the file and what is wrong */
static void expect_error(const char *dir, const ModelConfig *c, const char *file, const char *want1, const char *want2) {
    Err e = {{0}};
    ModelConfig tmp;
    int rc = c ? hf_model_check(dir, c, &e) : hf_model_read_config(dir, &tmp, &e);
    EXPECT(rc != 0, "%s: accepted", dir);
    EXPECT(rc != 0 && strstr(e.msg, file) && strstr(e.msg, want1) && (!want2 || strstr(e.msg, want2)) &&
               !strchr(e.msg, '\n'),
           "message '%s' should name %s, '%s'%s%s", e.msg, file, want1, want2 ? " and " : "", want2 ? want2 : "");
    if (rc != 0) printf("  error as expected: %s\n", e.msg);
}

static const char *BASE = "\"hidden_size\": 32, \"intermediate_size\": 48, \"num_hidden_layers\": 2, "
                          "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 61, "
                          "\"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0";

/* DIR/cfg_<name>/config.json = {arch, model_type, BASE, extra} (or raw text) */
static void config_case(const char *name, const char *arch, const char *type, const char *extra, const char *raw,
                        const char *want1, const char *want2) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, DIR "/cfg_%s", name);
    mkdir(dir, 0775);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (raw) fputs(raw, f);
    else fprintf(f, "{\"architectures\": [\"%s\"], \"model_type\": \"%s\", %s%s%s}\n", arch, type, BASE, *extra ? ", " : "", extra);
    fclose(f);
    expect_error(dir, NULL, path, want1, want2);
}

static void test_config_errors(void) {
    config_case("gemma", "Gemma3ForCausalLM", "gemma3_text", "", NULL, "architectures: Gemma3ForCausalLM is not supported",
                "Qwen2ForCausalLM");
    config_case("moe", "Qwen3MoeForCausalLM", "qwen3_moe", "\"num_experts\": 8", NULL, "Qwen3MoeForCausalLM is not supported",
                NULL);
    config_case("qwen35", "Qwen3_5ForCausalLM", "qwen3_5", "", NULL, "Qwen3_5ForCausalLM is not supported", NULL);
    config_case("sliding", "Qwen2ForCausalLM", "qwen2", "\"use_sliding_window\": true, \"sliding_window\": 16", NULL,
                "use_sliding_window is true", "sliding-window");
    config_case("layertypes", "Qwen3ForCausalLM", "qwen3", "\"layer_types\": [\"full_attention\", \"sliding_attention\"]",
                NULL, "layer_types[1]", "sliding-window");
    config_case("yarn", "LlamaForCausalLM", "llama", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}", NULL,
                "rope_scaling.rope_type: yarn is not supported", "llama3");
    config_case("linear", "LlamaForCausalLM", "llama", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", NULL,
                "rope_scaling.rope_type: linear", NULL);
    config_case("llama3_nofactor", "LlamaForCausalLM", "llama",
                "\"rope_scaling\": {\"rope_type\": \"llama3\", \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                "\"original_max_position_embeddings\": 8192}",
                NULL, "no rope_scaling.factor", NULL);
    config_case("attnbias", "LlamaForCausalLM", "llama", "\"attention_bias\": true", NULL, "attention_bias is true", "o_proj");
    config_case("q3bias", "Qwen3ForCausalLM", "qwen3", "\"attention_bias\": true", NULL, "attention_bias is true", NULL);
    config_case("mlpbias", "LlamaForCausalLM", "llama", "\"mlp_bias\": true", NULL, "mlp_bias is true", NULL);
    config_case("gelu", "LlamaForCausalLM", "llama", "\"hidden_act\": \"gelu\"", NULL, "hidden_act", "silu");
    config_case("partial", "LlamaForCausalLM", "llama", "\"partial_rotary_factor\": 0.5", NULL, "partial_rotary_factor",
                NULL);
    config_case("kvheads", "LlamaForCausalLM", "llama", "\"num_key_value_heads\": 3", NULL,
                "num_key_value_heads 3 does not divide", NULL);
    config_case("mismatch", "LlamaForCausalLM", "qwen2", "", NULL, "model_type qwen2", "LlamaForCausalLM");
    config_case("nohidden", NULL, NULL, NULL,
                "{\"architectures\": [\"LlamaForCausalLM\"], \"intermediate_size\": 48, \"num_hidden_layers\": 2, "
                "\"num_attention_heads\": 4, \"vocab_size\": 61}",
                "no hidden_size", NULL);
    config_case("notjson", NULL, NULL, NULL, "{\"architectures\": [\"LlamaForCausalLM\"],", "not a JSON object", NULL);
    config_case("badint", "LlamaForCausalLM", "llama", "\"num_hidden_layers\": 2.5", NULL,
                "num_hidden_layers must be a positive integer", NULL);
    mkdir(DIR "/cfg_none", 0775);
    expect_error(DIR "/cfg_none", NULL, DIR "/cfg_none/config.json", "config.json", NULL);
}

static void test_weight_errors(void) {
    ModelConfig c;
    Err e;
    if (hf_model_read_config(DIR "/llama_f32", &c, &e) != 0) {
        EXPECT(0, "%s", e.msg);
        return;
    }
    expect_error(DIR "/bad_missing", &c, DIR "/bad_missing/model.safetensors", "no tensor model.layers.0.mlp.up_proj.weight",
                 NULL);
    expect_error(DIR "/bad_unexpected", &c, DIR "/bad_unexpected/model.safetensors",
                 "unexpected tensor model.layers.0.mlp.extra.weight", NULL);
    expect_error(DIR "/bad_shape", &c, DIR "/bad_shape/model.safetensors",
                 "model.layers.0.self_attn.k_proj.weight has shape [24, 32]", "[16, 32]");
    expect_error(DIR "/bad_dtype", &c, DIR "/bad_dtype/model.safetensors",
                 "model.layers.0.input_layernorm.weight has dtype I32", NULL);
    expect_error(DIR "/bad_layers", &c, DIR "/bad_layers/model.safetensors", "model.layers.2.", "more layers");
    expect_error(DIR "/bad_shard_missing", &c, DIR "/bad_shard_missing/model-00002-of-00003.safetensors",
                 "cannot open", "model.safetensors.index.json");
    expect_error(DIR "/bad_shard_truncated", &c, DIR "/bad_shard_truncated/model-00001-of-00003.safetensors",
                 "truncated", NULL);
    expect_error(DIR "/bad_index", &c, DIR "/bad_index/model.safetensors.index.json", "model.norm.weight",
                 "does not hold it");
    mkdir(DIR "/bad_noweights", 0775);
    sh("cp " DIR "/llama_f32/config.json " DIR "/bad_noweights/");
    expect_error(DIR "/bad_noweights", &c, DIR "/bad_noweights", "no model.safetensors or model.safetensors.index.json",
                 NULL);
    ModelConfig other = c;
    other.rope_theta = 500000.0;
    expect_error(DIR "/llama_f32", &other, DIR "/llama_f32/config.json", "rope_theta is 10000", "500000");
    /* a failed load leaves no crash and says so; loading a GPT-2 model is refused */
    Model m;
    model_init(&m, &c);
    EXPECT(hf_model_load(DIR "/bad_shard_truncated", &m, NULL, 0, &e) != 0, "truncated shard loaded");
    model_free(&m);
    ModelConfig g = model_config_gpt2(2, 4, 32, 61, 64);
    expect_error(DIR "/llama_f32", &g, DIR "/llama_f32/config.json", "describes a Llama-style model", NULL);
    model_init(&m, &g);
    EXPECT(hf_model_export(DIR "/export_gpt2", &m, -1, -1, &e) != 0 && strstr(e.msg, "GPT-2"), "gpt2 export: %s", e.msg);
    model_free(&m);
}

int main(void) {
    mkdir("build", 0775);
    mkdir("build/tmp", 0775);
    par_init(2);
    if (sh("/usr/bin/python3 tests/ref/hf_llama.py suite " DIR " >/dev/null") != 0) {
        EXPECT(0, "tests/ref/hf_llama.py suite failed");
        return test_summary();
    }
    const char *good[] = {"llama_f32", "llama3_bf16", "qwen2_f16", "qwen3_bf16", "llama_params_f16"};
    for (int i = 0; i < 5; i++) test_load(good[i]);
    test_export("llama3_bf16");
    test_export("qwen2_f16");
    test_export("qwen3_bf16");
    test_config_errors();
    test_weight_errors();
    par_shutdown();
    return test_summary();
}
