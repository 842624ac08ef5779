/* hfmodel -- Hugging Face Llama/Qwen2/Qwen3 directories; see include/io/hfmodel.h.
 * config.json through cJSON, weights through io/safetensors.h. */
#include "io/hfmodel.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/safetensors.h"

typedef enum { HF_LLAMA, HF_QWEN2, HF_QWEN3, HF_NONE } HfArch;

static const struct {
    const char *arch, *type;
    int max_pos; /* transformers' default max_position_embeddings */
} HF[] = {{"LlamaForCausalLM", "llama", 2048}, {"Qwen2ForCausalLM", "qwen2", 32768}, {"Qwen3ForCausalLM", "qwen3", 32768}};

#define ARCH_HINT                                                                                                  \
    "hint: hdistill reads LlamaForCausalLM (SmolLM2, Llama 3.x), Qwen2ForCausalLM (Qwen2.5) and Qwen3ForCausalLM " \
    "(Qwen3) models"

/* ---- config.json fields ------------------------------------------------------------------ */

typedef struct {
    const char *path; /* DIR/config.json */
    const cJSON *j;
    Err *e;
    const char *pre; /* "" or the object a nested field is in ("rope_scaling.") */
} Json;

/* o[k], null as absent; of duplicate keys the last, as Python's json (transformers) takes */
static const cJSON *item(const cJSON *o, const char *k) {
    const cJSON *x = NULL;
    for (const cJSON *it = cJSON_IsObject(o) ? o->child : NULL; it; it = it->next)
        if (it->string && !strcmp(it->string, k)) x = it;
    return cJSON_IsNull(x) ? NULL : x;
}

/* o[k] as a positive int (absent or null: def, or an error if def < 0) */
static int get_int(const Json *J, const cJSON *o, const char *k, int def, int *out) {
    const cJSON *x = item(o, k);
    if (!x) {
        if (def < 0)
            return err_set(J->e, "%s: no %s%s (hint: a Hugging Face config.json of the model is expected)", J->path,
                           J->pre, k);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 1 || x->valuedouble > INT_MAX)
        return err_set(J->e, "%s: %s%s must be a positive integer", J->path, J->pre, k);
    *out = (int)x->valuedouble;
    return 0;
}

/* o[k] as a positive finite number (absent or null: def, or an error if def < 0) */
static int get_real(const Json *J, const cJSON *o, const char *k, double def, double *out) {
    const cJSON *x = item(o, k);
    if (!x) {
        if (def < 0)
            return err_set(J->e, "%s: no %s%s (hint: a Hugging Face config.json of the model is expected)", J->path,
                           J->pre, k);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble <= 0)
        return err_set(J->e, "%s: %s%s must be a positive number", J->path, J->pre, k);
    *out = x->valuedouble;
    return 0;
}

static int get_bool(const Json *J, const char *k, int def, int *out) {
    const cJSON *x = item(J->j, k);
    if (!x) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(x)) return err_set(J->e, "%s: %s must be true or false", J->path, k);
    *out = cJSON_IsTrue(x);
    return 0;
}

/* which of the three, from architectures[0] or else model_type */
static int read_arch(const Json *J, HfArch *a) {
    const cJSON *ar = item(J->j, "architectures"), *mt = item(J->j, "model_type");
    const char *name = NULL, *field = "architectures";
    if (ar) {
        const cJSON *a0 = cJSON_IsArray(ar) ? cJSON_GetArrayItem(ar, 0) : NULL;
        if (!cJSON_IsString(a0) || cJSON_GetArraySize(ar) != 1)
            return err_set(J->e, "%s: architectures must list one class name (%s)", J->path, ARCH_HINT);
        name = a0->valuestring;
    } else if (cJSON_IsString(mt)) {
        name = mt->valuestring, field = "model_type";
    } else {
        return err_set(J->e, "%s: no architectures or model_type (%s)", J->path, ARCH_HINT);
    }
    *a = HF_NONE;
    for (int k = 0; k < 3; k++)
        if (!strcmp(name, ar ? HF[k].arch : HF[k].type)) *a = (HfArch)k;
    char nb[80];
    snprintf(nb, sizeof nb, "%s", name);
    for (char *q = nb; *q; q++) *q = (unsigned char)*q < 0x20 ? '?' : *q;
    if (*a == HF_NONE) return err_set(J->e, "%s: %s: %s is not supported (%s)", J->path, field, nb, ARCH_HINT);
    if (ar && cJSON_IsString(mt) && strcmp(mt->valuestring, HF[*a].type))
        return err_set(J->e, "%s: model_type %s does not match architectures %s (hint: %s is expected)", J->path,
                       cJSON_IsString(mt) ? mt->valuestring : "?", HF[*a].arch, HF[*a].type);
    return 0;
}

/* what the family cannot do: one line each, naming the field */
static int read_unsupported(const Json *J, HfArch a) {
    const cJSON *act = item(J->j, "hidden_act"), *lt = item(J->j, "layer_types");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
        return err_set(J->e, "%s: hidden_act: only silu (SwiGLU) is supported", J->path);
    static const char *no[] = {"attention_bias", "mlp_bias", "use_sliding_window", "rope_interleaved", "use_mrope"};
    static const char *why[] = {"an o_proj bias is not supported (hint: Qwen2ForCausalLM has q/k/v biases only)",
                                "MLP biases are not supported", "sliding-window attention is not supported",
                                "interleaved rotary pairs are not supported (Hugging Face's half-split layout is)",
                                "multimodal rotary positions are not supported"};
    for (int k = 0; k < 5; k++) {
        int v = 0;
        if (k == 0 && a == HF_QWEN2) continue; /* Qwen2 has q/k/v biases whatever this says */
        if (get_bool(J, no[k], 0, &v)) return -1;
        if (v) return err_set(J->e, "%s: %s is true: %s", J->path, no[k], why[k]);
    }
    for (int i = 0; cJSON_IsArray(lt) && i < cJSON_GetArraySize(lt); i++) {
        const cJSON *x = cJSON_GetArrayItem(lt, i);
        if (!cJSON_IsString(x) || strcmp(x->valuestring, "full_attention"))
            return err_set(J->e, "%s: layer_types[%d] is not full_attention: sliding-window attention is not supported",
                           J->path, i);
    }
    double prf = 1.0;
    if (get_real(J, J->j, "partial_rotary_factor", 1.0, &prf)) return -1;
    if (prf != 1.0) return err_set(J->e, "%s: partial_rotary_factor %g: only full rotary heads are supported", J->path, prf);
    return 0;
}

/* rope_theta and llama3 scaling, from rope_parameters (transformers 5) or rope_theta + rope_scaling */
static int read_rope(const Json *J, ModelConfig *c) {
    const cJSON *rp = item(J->j, "rope_parameters"), *sc = item(J->j, "rope_scaling");
    const char *field = "rope_scaling";
    if (get_real(J, J->j, "rope_theta", 10000.0, &c->rope_theta)) return -1;
    if (rp) {
        if (!cJSON_IsObject(rp)) return err_set(J->e, "%s: rope_parameters must be an object", J->path);
        if (get_real(J, rp, "rope_theta", c->rope_theta, &c->rope_theta)) return -1;
        sc = rp, field = "rope_parameters";
    }
    if (!sc) return 0;
    if (!cJSON_IsObject(sc)) return err_set(J->e, "%s: %s must be an object or null", J->path, field);
    const cJSON *t = item(sc, "rope_type");
    if (!t) t = item(sc, "type");
    if (!t && rp) return 0; /* rope_parameters without a type: default */
    if (!cJSON_IsString(t)) return err_set(J->e, "%s: %s has no rope_type", J->path, field);
    if (!strcmp(t->valuestring, "default")) return 0;
    if (strcmp(t->valuestring, "llama3"))
        return err_set(J->e, "%s: %s.rope_type: %.40s is not supported (hint: llama3 scaling or none)", J->path, field,
                       t->valuestring);
    c->rope_llama3 = 1;
    Json N = *J;
    N.pre = rp ? "rope_parameters." : "rope_scaling.";
    if (get_real(&N, sc, "factor", -1, &c->rope_factor) || get_real(&N, sc, "low_freq_factor", -1, &c->rope_low_freq_factor) ||
        get_real(&N, sc, "high_freq_factor", -1, &c->rope_high_freq_factor) ||
        get_int(&N, sc, "original_max_position_embeddings", -1, &c->rope_original_max_pos))
        return -1;
    return 0;
}

static int read_fields(const Json *J, HfArch a, ModelConfig *c) {
    const cJSON *j = J->j;
    if (get_int(J, j, "num_hidden_layers", -1, &c->n_layer) || get_int(J, j, "hidden_size", -1, &c->d_model) ||
        get_int(J, j, "intermediate_size", -1, &c->d_ff) || get_int(J, j, "num_attention_heads", -1, &c->n_head) ||
        get_int(J, j, "vocab_size", -1, &c->vocab_size))
        return -1;
    if (get_int(J, j, "num_key_value_heads", c->n_head, &c->n_kv_head) ||
        get_int(J, j, "head_dim", c->d_model / c->n_head > 0 ? c->d_model / c->n_head : 1, &c->head_dim) ||
        get_int(J, j, "max_position_embeddings", HF[a].max_pos, &c->max_seq_len) ||
        get_real(J, j, "rms_norm_eps", 1e-6, &c->norm_eps) || get_bool(J, "tie_word_embeddings", 0, &c->tie_embeddings))
        return -1;
    if (c->n_head % c->n_kv_head)
        return err_set(J->e, "%s: num_key_value_heads %d does not divide num_attention_heads %d", J->path, c->n_kv_head,
                       c->n_head);
    if (c->head_dim % 2)
        return err_set(J->e, "%s: head_dim %d is odd (rotary embeddings rotate channel pairs)", J->path, c->head_dim);
    c->qkv_bias = a == HF_QWEN2;
    c->qk_norm = a == HF_QWEN3;
    return read_rope(J, c);
}

int hf_model_read_config(const char *dir, ModelConfig *c, Err *e) {
    char *path = xasprintf("%s/config.json", dir);
    size_t len = 0;
    char *text = util_read_file(path, &len, e);
    int rc = 0;
    if (!text) {
        rc = err_suffix(e, " (hint: a Hugging Face model directory holds config.json and its weights)");
    } else {
        cJSON *j = cJSON_ParseWithLength(text, len);
        Json J = {path, j, e, ""};
        HfArch a = HF_NONE;
        ModelConfig f;
        memset(&f, 0, sizeof f);
        f.arch = MODEL_LLAMA;
        char why[256];
        if (!cJSON_IsObject(j)) rc = err_set(e, "%s: not a JSON object (corrupt file?)", path);
        else if (read_arch(&J, &a) || read_unsupported(&J, a) || read_fields(&J, a, &f)) rc = -1;
        else if (model_config_check(&f, why, sizeof why) != 0) rc = err_set(e, "%s: %s", path, why);
        if (rc == 0) *c = f;
        cJSON_Delete(j);
    }
    free(text);
    free(path);
    return rc;
}

/* ---- the weights: one file or an index with its shards ------------------------------------ */

typedef struct {
    const char *name; /* owned by its file */
    int file, idx;
    int used;
} WRef;

typedef struct {
    char *index;           /* DIR/model.safetensors.index.json, or NULL for one file */
    int nf, n;
    SafetensorsFile **f;
    WRef *t;
} Weights;

static void weights_close(Weights *w) {
    for (int i = 0; i < w->nf; i++) safetensors_close(w->f[i]);
    free(w->f);
    free(w->t);
    free(w->index);
    memset(w, 0, sizeof *w);
}

static int add_file(Weights *w, const char *path, Err *e) {
    SafetensorsFile *sf = safetensors_open(path, e);
    if (!sf) return -1;
    w->f = xrealloc(w->f, sizeof *w->f * (size_t)(w->nf + 1));
    w->f[w->nf++] = sf;
    return w->nf - 1;
}

static void add_ref(Weights *w, const char *name, int file, int idx) {
    w->t = xrealloc(w->t, sizeof *w->t * (size_t)(w->n + 1));
    w->t[w->n++] = (WRef){name, file, idx, 0};
}

/* the shard file of an index entry (opened once) */
static int shard_of(Weights *w, const char *dir, const char *shard, Err *e) {
    for (int i = 0; i < w->nf; i++)
        if (!strcmp(util_basename(safetensors_path(w->f[i])), shard)) return i;
    if (!*shard || strchr(shard, '/') || !strcmp(shard, "..") || strlen(shard) > 200)
        return err_set(e, "%s: weight_map names the file '%.80s', not a file of the directory (corrupt index?)",
                       w->index, shard);
    char *p = xasprintf("%s/%s", dir, shard);
    int k = add_file(w, p, e);
    free(p);
    if (k < 0) err_suffix(e, " (a shard named by %s)", w->index);
    return k;
}

static int open_index(Weights *w, const char *dir, Err *e) {
    size_t len = 0;
    char *text = util_read_file(w->index, &len, e);
    if (!text) return -1;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    int rc = cJSON_IsObject(map) ? 0 : err_set(e, "%s: no weight_map object (corrupt index?)", w->index);
    for (const cJSON *it = map ? map->child : NULL; it && rc == 0; it = it->next) {
        if (!cJSON_IsString(it)) {
            rc = err_set(e, "%s: weight_map entry %.80s is not a file name (corrupt index?)", w->index, it->string);
            break;
        }
        int k = shard_of(w, dir, it->valuestring, e);
        if (k < 0) {
            rc = -1;
            break;
        }
        int i = safetensors_find(w->f[k], it->string);
        if (i < 0)
            rc = err_set(e, "%s: weight_map puts tensor %.80s in %s, which does not hold it (hint: the index and the "
                            "shards come from different downloads)",
                         w->index, it->string, it->valuestring);
        else
            add_ref(w, safetensors_name(w->f[k], i), k, i);
    }
    for (int k = 0; k < w->nf && rc == 0; k++) /* every tensor of every shard listed, in its shard */
        for (int i = 0; i < safetensors_count(w->f[k]) && rc == 0; i++) {
            int listed = 0;
            for (int r = 0; r < w->n && !listed; r++) listed = w->t[r].file == k && w->t[r].idx == i;
            if (!listed)
                rc = err_set(e, "%s: tensor %.80s is not listed in %s's weight_map (hint: the index and the shards come "
                                "from different downloads)",
                             safetensors_path(w->f[k]), safetensors_name(w->f[k], i), util_basename(w->index));
        }
    cJSON_Delete(j);
    return rc;
}

/* model.safetensors if present (transformers' precedence), else the index and its shards */
static int weights_open(Weights *w, const char *dir, Err *e) {
    memset(w, 0, sizeof *w);
    char *single = xasprintf("%s/model.safetensors", dir), *index = xasprintf("%s/model.safetensors.index.json", dir);
    int rc = 0;
    if (util_file_exists(single) || !util_file_exists(index)) {
        free(index);
        if (!util_file_exists(single)) {
            rc = err_set(e, "%s: no model.safetensors or model.safetensors.index.json (hint: a Hugging Face model "
                            "directory holds config.json and its weights)",
                         dir);
        } else if (add_file(w, single, e) < 0) {
            rc = -1;
        } else {
            for (int i = 0; i < safetensors_count(w->f[0]); i++) add_ref(w, safetensors_name(w->f[0], i), 0, i);
        }
    } else {
        w->index = index;
        rc = open_index(w, dir, e);
    }
    free(single);
    if (rc) weights_close(w);
    return rc;
}

static void shape_str(const int64_t *s, int nd, char *buf, size_t n) {
    int k = snprintf(buf, n, "[");
    for (int d = 0; d < nd && (size_t)k < n; d++) k += snprintf(buf + k, n - (size_t)k, "%s%lld", d ? ", " : "", (long long)s[d]);
    if ((size_t)k < n) snprintf(buf + k, n - (size_t)k, "]");
}

static int ignorable(const char *name, const ModelConfig *c) {
    return (c->tie_embeddings && !strcmp(name, "lm_head.weight")) || util_ends_with(name, ".rotary_emb.inv_freq");
}

/* every tensor of c's layout present, shaped and readable; nothing else */
static int weights_match(Weights *w, const ModelConfig *c, Err *e) {
    ModelTensor *t;
    int nt = model_tensor_layout(c, &t), rc = 0;
    const char *where = w->index ? w->index : (w->nf ? safetensors_path(w->f[0]) : "?");
    for (int i = 0; i < nt && rc == 0; i++) {
        WRef *r = NULL;
        for (int k = 0; k < w->n && !r; k++)
            if (!strcmp(w->t[k].name, t[i].name)) r = &w->t[k];
        if (!r) {
            rc = err_set(e, "%s: no tensor %s (hint: the weights are not those of config.json)", where, t[i].name);
            break;
        }
        r->used = 1;
        const SafetensorsFile *f = w->f[r->file];
        int64_t got[4], want[2] = {t[i].shape[0], t[i].shape[1]};
        int nd = safetensors_shape(f, r->idx, got);
        if (nd != t[i].ndim || got[0] != want[0] || (nd == 2 && got[1] != want[1])) {
            char gs[96], ws[96];
            shape_str(got, nd, gs, sizeof gs);
            shape_str(want, t[i].ndim, ws, sizeof ws);
            rc = err_set(e, "%s: tensor %s has shape %s, config.json needs %s (hint: the weights are not those of "
                            "config.json)",
                         safetensors_path(f), t[i].name, gs, ws);
        } else if (!safetensors_readable(f, r->idx)) {
            rc = err_set(e, "%s: tensor %s has dtype %s (hint: F32, BF16, F16 and F64 are read)", safetensors_path(f),
                         t[i].name, safetensors_dtype(f, r->idx));
        }
    }
    for (int k = 0; k < w->n && rc == 0; k++) {
        if (w->t[k].used || ignorable(w->t[k].name, c)) continue;
        int l;
        const char *file = safetensors_path(w->f[w->t[k].file]);
        if (sscanf(w->t[k].name, "model.layers.%d.", &l) == 1 && l >= c->n_layer)
            rc = err_set(e, "%s: tensor %.80s: the weights have more layers than config.json's %d", file, w->t[k].name,
                         c->n_layer);
        else
            rc = err_set(e, "%s: unexpected tensor %.80s (hint: the weights are not of config.json's architecture)",
                         file, w->t[k].name);
    }
    free(t);
    return rc;
}

/* ---- check, load ------------------------------------------------------------------------------ */

/* config.json describes c (all but max_seq_len) */
static int same_config(const char *dir, const ModelConfig *f, const ModelConfig *c, Err *e) {
    struct {
        const char *name;
        double file, model;
    } k[] = {{"num_hidden_layers", f->n_layer, c->n_layer}, {"hidden_size", f->d_model, c->d_model},
             {"num_attention_heads", f->n_head, c->n_head}, {"num_key_value_heads", f->n_kv_head, c->n_kv_head},
             {"head_dim", f->head_dim, c->head_dim}, {"intermediate_size", f->d_ff, c->d_ff},
             {"vocab_size", f->vocab_size, c->vocab_size}, {"rms_norm_eps", f->norm_eps, c->norm_eps},
             {"rope_theta", f->rope_theta, c->rope_theta}, {"tie_word_embeddings", f->tie_embeddings, c->tie_embeddings},
             {"q/k/v biases (Qwen2)", f->qkv_bias, c->qkv_bias}, {"q/k norms (Qwen3)", f->qk_norm, c->qk_norm},
             {"llama3 rope scaling", f->rope_llama3, c->rope_llama3},
             {"rope_scaling.factor", f->rope_factor, c->rope_factor},
             {"rope_scaling.low_freq_factor", f->rope_low_freq_factor, c->rope_low_freq_factor},
             {"rope_scaling.high_freq_factor", f->rope_high_freq_factor, c->rope_high_freq_factor},
             {"rope_scaling.original_max_position_embeddings", f->rope_original_max_pos, c->rope_original_max_pos}};
    if (c->arch != MODEL_LLAMA)
        return err_set(e, "%s/config.json: describes a Llama-style model, the model is %s (hint: GPT-2 weights are read "
                          "by safetensors_read_gpt2)",
                       dir, model_arch_name(c->arch));
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (k[i].file != k[i].model && (f->rope_llama3 || i < 13))
            return err_set(e, "%s/config.json: %s is %g, the model's is %g (hint: build the model configuration with "
                              "hf_model_read_config)",
                           dir, k[i].name, k[i].file, k[i].model);
    return 0;
}

static int open_checked(const char *dir, const ModelConfig *c, Weights *w, Err *e) {
    ModelConfig f;
    if (hf_model_read_config(dir, &f, e) || same_config(dir, &f, c, e) || weights_open(w, dir, e)) return -1;
    if (weights_match(w, c, e)) {
        weights_close(w);
        return -1;
    }
    return 0;
}

int hf_model_check(const char *dir, const ModelConfig *c, Err *e) {
    Weights w;
    if (open_checked(dir, c, &w, e)) return -1;
    weights_close(&w);
    return 0;
}

int hf_model_load(const char *dir, Model *m, char *info, size_t n, Err *e) {
    Weights w;
    if (open_checked(dir, &m->cfg, &w, e)) return -1;
    int rc = 0;
    char dts[64] = "";
    for (int i = 0; i < m->n_tensors && rc == 0; i++) {
        const ModelTensor *t = &m->tensors[i];
        const WRef *r = NULL;
        for (int k = 0; k < w.n && !r; k++)
            if (!strcmp(w.t[k].name, t->name)) r = &w.t[k];
        rc = safetensors_read_f32(w.f[r->file], r->idx, m->params + t->offset, e);
        const char *dt = safetensors_dtype(w.f[r->file], r->idx);
        if (!strstr(dts, dt) && strlen(dts) + strlen(dt) + 2 < sizeof dts)
            snprintf(dts + strlen(dts), sizeof dts - strlen(dts), "%s%s", *dts ? "+" : "", dt);
    }
    if (rc == 0 && info)
        snprintf(info, n, "%d tensors (%s) from %d file%s%s", m->n_tensors, dts, w.nf, w.nf == 1 ? "" : "s",
                 w.index ? " listed by model.safetensors.index.json" : "");
    weights_close(&w);
    return rc;
}

/* ---- export ------------------------------------------------------------------------------------- */

static cJSON *export_json(const ModelConfig *c, HfArch a, int bos, int eos) {
    cJSON *j = cJSON_CreateObject(), *ar = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(ar, cJSON_CreateString(HF[a].arch));
    cJSON_AddStringToObject(j, "model_type", HF[a].type);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "hidden_size", c->d_model);
    cJSON_AddNumberToObject(j, "intermediate_size", c->d_ff);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layer);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_head);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_head);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_seq_len);
    cJSON_AddNumberToObject(j, "rms_norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(j, "rope_theta", c->rope_theta);
    if (c->rope_llama3) {
        cJSON *s = cJSON_AddObjectToObject(j, "rope_scaling");
        cJSON_AddStringToObject(s, "rope_type", "llama3");
        cJSON_AddNumberToObject(s, "factor", c->rope_factor);
        cJSON_AddNumberToObject(s, "low_freq_factor", c->rope_low_freq_factor);
        cJSON_AddNumberToObject(s, "high_freq_factor", c->rope_high_freq_factor);
        cJSON_AddNumberToObject(s, "original_max_position_embeddings", c->rope_original_max_pos);
    } else {
        cJSON_AddNullToObject(j, "rope_scaling");
    }
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_embeddings);
    if (a != HF_QWEN2) cJSON_AddBoolToObject(j, "attention_bias", 0);
    if (a == HF_LLAMA) cJSON_AddBoolToObject(j, "mlp_bias", 0);
    if (a != HF_LLAMA) {
        cJSON_AddBoolToObject(j, "use_sliding_window", 0);
        cJSON_AddNullToObject(j, "sliding_window");
        cJSON_AddNumberToObject(j, "max_window_layers", c->n_layer);
    }
    cJSON_AddNumberToObject(j, "attention_dropout", 0.0);
    cJSON_AddNumberToObject(j, "initializer_range", 0.02);
    cJSON_AddBoolToObject(j, "use_cache", 1);
    if (bos >= 0) cJSON_AddNumberToObject(j, "bos_token_id", bos);
    if (eos >= 0) cJSON_AddNumberToObject(j, "eos_token_id", eos);
    cJSON_AddStringToObject(j, "torch_dtype", "float32");
    return j;
}

/* text to PATH.tmp, fsynced, renamed to PATH */
static int write_durable(const char *path, const char *text, Err *e) {
    char *tmp = xasprintf("%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    int rc = 0;
    if (!fp) {
        rc = err_set(e, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        fputs(text, fp);
        if (fflush(fp) != 0 || ferror(fp) || fsync(fileno(fp)) != 0)
            rc = err_set(e, "%s: write failed: %s (disk full?)", tmp, strerror(errno));
        if (fclose(fp) != 0 && rc == 0) rc = err_set(e, "%s: close failed: %s", tmp, strerror(errno));
        if (rc == 0) rc = util_rename_durable(tmp, path, e);
        if (rc != 0) unlink(tmp);
    }
    free(tmp);
    return rc;
}

int hf_model_export(const char *dir, const Model *m, int bos_id, int eos_id, Err *e) {
    const ModelConfig *c = &m->cfg;
    if (c->arch != MODEL_LLAMA)
        return err_set(e, "%s: only Llama-style models are exported here (hint: GPT-2 is safetensors_write_gpt2's)", dir);
    if (c->qkv_bias && c->qk_norm)
        return err_set(e, "%s: q/k/v biases with q/k norms have no Hugging Face architecture (Qwen2 has the biases, "
                          "Qwen3 the norms)",
                       dir);
    HfArch a = c->qk_norm ? HF_QWEN3 : c->qkv_bias ? HF_QWEN2 : HF_LLAMA;
    if (util_mkdir_p(dir, e) != 0) return -1;
    SafetensorsTensor *t = xcalloc((size_t)m->n_tensors, sizeof *t);
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *mt = &m->tensors[i];
        t[i] = (SafetensorsTensor){mt->name, mt->ndim, {mt->shape[0], mt->shape[1]}, m->params + mt->offset};
    }
    char *st = xasprintf("%s/model.safetensors", dir), *cf = xasprintf("%s/config.json", dir);
    int rc = safetensors_write_f32(st, t, m->n_tensors, e);
    if (rc == 0) {
        cJSON *j = export_json(c, a, bos_id, eos_id);
        char *text = cJSON_Print(j);
        cJSON_Delete(j);
        char *withnl = xasprintf("%s\n", text ? text : "");
        rc = text ? write_durable(cf, withnl, e) : err_set(e, "%s: out of memory", cf);
        free(text);
        free(withnl);
    }
    free(st);
    free(cf);
    free(t);
    return rc;
}
