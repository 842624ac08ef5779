/* ckpt -- checkpoint files; see include/io/ckpt.h. */
#include "io/ckpt.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* ---- tokenizer -----------------------------------------------------------------
 * Besides offsets, blob, special (token flags), merges and the eot_id/sep_id
 * attributes, a Hugging Face tokenizer has hf_options (int64 [5]: kind,
 * pattern, digits, normalizer, ignore_merges) and hf_json (uint8: the
 * tokenizer.json verbatim).  Files without hf_options are the GPT-2 kind. */

int ckpt_write_tokenizer(StoreFile *f, const char *g, const TokenizerData *t, Err *e) {
    char obj[256];
    int64_t d1 = t->n_vocab + 1, d0 = t->n_vocab, db = t->offsets[t->n_vocab];
    int64_t dm[2] = {t->n_merges, 2};
    snprintf(obj, sizeof obj, "%s/offsets", g);
    if (store_write_i64(f, obj, t->offsets, 1, &d1, "token i's bytes are blob[offsets[i]:offsets[i+1]]", e))
        return -1;
    snprintf(obj, sizeof obj, "%s/blob", g);
    if (store_write_u8(f, obj, t->blob, 1, &db, "concatenated token bytes", e)) return -1;
    snprintf(obj, sizeof obj, "%s/special", g);
    if (store_write_u8(f, obj, t->special, 1, &d0,
                       "token flags: 1 special (never produced from text); 2 added token (its text "
                       "gives its id), +4 matched after normalization, +8 also a model token", e))
        return -1;
    snprintf(obj, sizeof obj, "%s/merges", g);
    if (store_write_i32(f, obj, t->merges, 2, dm, "BPE merges in rank order: (left id, right id)", e))
        return -1;
    if (store_set_attr_i64(f, g, "eot_id", t->eot_id, e) ||
        store_set_attr_i64(f, g, "sep_id", t->sep_id, e) ||
        store_set_attr_i64(f, g, "vocab_size", t->n_vocab, e))
        return -1;
    if (t->kind == TOKENIZER_GPT2) return 0; /* files without hf_options are the GPT-2 kind */
    int64_t opt[5] = {t->kind, t->pattern, t->digits, t->normalizer, t->ignore_merges}, d5 = 5;
    snprintf(obj, sizeof obj, "%s/hf_options", g);
    if (store_write_i64(f, obj, opt, 1, &d5,
                        "Hugging Face tokenizer: kind (1), pattern (0 GPT-2, 1 Llama 3, 2 Qwen2), "
                        "digits (0 none, 1 individual, 2 runs), normalizer (0 none, 1 NFC), "
                        "ignore_merges", e))
        return -1;
    int64_t dj = t->source_len;
    snprintf(obj, sizeof obj, "%s/hf_json", g);
    if (t->source && store_write_u8(f, obj, (const uint8_t *)t->source, 1, &dj,
                                    "the tokenizer.json it was loaded from, verbatim", e))
        return -1;
    return 0;
}

/* The Hugging Face fields (absent in files of the GPT-2 kind, which older
 * versions wrote): 0 or -1 with e set. */
static int read_hf_fields(StoreFile *f, const char *g, TokenizerData *t, Err *e) {
    char obj[256];
    int64_t opt[5];
    snprintf(obj, sizeof obj, "%s/hf_options", g);
    if (!store_exists(f, obj)) return 0;
    if (store_read_i64(f, obj, opt, 5, e) != 0) return -1;
    t->kind = (int)opt[0];
    t->pattern = (int)opt[1];
    t->digits = (int)opt[2];
    t->normalizer = (int)opt[3];
    t->ignore_merges = (int)opt[4];
    snprintf(obj, sizeof obj, "%s/hf_json", g);
    if (!store_exists(f, obj)) return 0;
    int64_t n = 0;
    uint8_t *json = store_read_alloc(f, obj, 'b', &n, e);
    if (!json) return -1;
    t->source = xrealloc(json, (size_t)n + 1);
    t->source[n] = 0;
    t->source_len = n;
    return 0;
}

int ckpt_read_tokenizer(StoreFile *f, const char *g, TokenizerData *t, Err *e) {
    memset(t, 0, sizeof *t);
    char obj[256];
    int64_t n_off = 0, n_blob = 0, n_sp = 0, n_m = 0, v;
    snprintf(obj, sizeof obj, "%s/offsets", g);
    t->offsets = store_read_alloc(f, obj, 'l', &n_off, e);
    snprintf(obj, sizeof obj, "%s/blob", g);
    if (t->offsets) t->blob = store_read_alloc(f, obj, 'b', &n_blob, e);
    snprintf(obj, sizeof obj, "%s/special", g);
    if (t->blob) t->special = store_read_alloc(f, obj, 'b', &n_sp, e);
    snprintf(obj, sizeof obj, "%s/merges", g);
    if (t->special) t->merges = store_read_alloc(f, obj, 'i', &n_m, e);
    int rc = t->merges ? 0 : -1;
    if (rc == 0) {
        t->n_vocab = (int)n_sp;
        t->n_merges = (int)(n_m / 2);
        if (n_off != n_sp + 1 || t->offsets[t->n_vocab] != n_blob || n_m % 2)
            rc = err_set(e, "%s: %s is inconsistent (corrupt file?)", store_path(f), g);
    }
    if (rc == 0 && store_get_attr_i64(f, g, "eot_id", &v, e) == 0) t->eot_id = (int)v;
    else rc = -1;
    if (rc == 0 && store_get_attr_i64(f, g, "sep_id", &v, e) == 0) t->sep_id = (int)v;
    else rc = -1;
    if (rc == 0) rc = read_hf_fields(f, g, t, e);
    if (rc) tokenizer_data_free(t);
    return rc;
}

/* ---- checkpoints -------------------------------------------------------------------- */

static int write_tensors(StoreFile *f, const char *group, const Model *m, const float *buf, Err *e) {
    char obj[256];
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        snprintf(obj, sizeof obj, "%s/%s", group, t->name);
        int64_t dims[2] = {t->shape[0], t->shape[1]};
        if (store_write_f32(f, obj, buf + t->offset, t->ndim, dims, NULL, e) != 0) return -1;
    }
    return 0;
}

static int read_tensors(StoreFile *f, const char *group, const Model *m, float *buf, Err *e) {
    char obj[256];
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        snprintf(obj, sizeof obj, "%s/%s", group, t->name);
        int nd;
        int64_t dims[4];
        if (store_dims(f, obj, &nd, dims, e) != 0) return -1;
        if (nd != t->ndim || dims[0] != t->shape[0] || (nd == 2 && dims[1] != t->shape[1]))
            return err_set(e, "%s: %s has the wrong shape for this model", store_path(f), obj);
        if (store_read_f32(f, obj, buf + t->offset, (int64_t)t->numel, e) != 0) return -1;
    }
    return 0;
}

/* ---- the model's configuration: attributes of /model ------------------------------ */

/* every integer / real field of ModelConfig by name (the arch is a string attribute) */
#define MODEL_INT_FIELDS(X)                                                                                      \
    X(n_layer) X(n_head) X(d_model) X(vocab_size) X(max_seq_len) X(n_kv_head) X(head_dim) X(d_ff) X(qkv_bias)  \
        X(qk_norm) X(tie_embeddings) X(rope_llama3) X(rope_original_max_pos)
#define MODEL_REAL_FIELDS(X) X(norm_eps) X(rope_theta) X(rope_factor) X(rope_low_freq_factor) X(rope_high_freq_factor)

static const char *arch_description(ModelArch a) {
    return a == MODEL_GPT2 ? "GPT-2: pre-LayerNorm, GELU(tanh) MLP 4x, learned positions, tied LM head"
                           : "Llama-style decoder: RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention";
}

static int write_model_config(StoreFile *f, const ModelConfig *c, Err *e) {
    int32_t dims[5] = {c->n_layer, c->n_head, c->d_model, c->vocab_size, c->max_seq_len};
    int64_t five = 5;
    if (store_write_i32(f, "/model/dims", dims, 1, &five, "n_layer, n_head, d_model, vocab_size, max_seq_len", e) ||
        store_set_attr_str(f, "/model", "arch", model_arch_name(c->arch), e) ||
        store_set_attr_str(f, "/model", "architecture", arch_description(c->arch), e))
        return -1;
#define W_INT(k) if (store_set_attr_i64(f, "/model", #k, c->k, e)) return -1;
#define W_REAL(k) if (store_set_attr_f64(f, "/model", #k, c->k, e)) return -1;
    MODEL_INT_FIELDS(W_INT)
    MODEL_REAL_FIELDS(W_REAL)
#undef W_INT
#undef W_REAL
    return 0;
}

/* Checkpoints written before the model families (no "arch") are GPT-2 with
 * the five common fields. */
static int read_model_config(StoreFile *f, ModelConfig *c, Err *e) {
    memset(c, 0, sizeof *c);
    char *arch = store_get_attr_str(f, "/model", "arch", NULL);
    int a = arch ? model_arch_parse(arch) : MODEL_GPT2;
    if (a < 0) {
        err_set(e, "%s: /model: unknown arch '%s' (hint: a newer hdistill wrote it)", store_path(f), arch);
        free(arch);
        return -1;
    }
    c->arch = (ModelArch)a;
    int64_t v;
    double d;
#define R_INT(k)                                                                                                 \
    if (store_get_attr_i64(f, "/model", #k, &v, arch ? e : NULL) == 0) c->k = (int)v;                            \
    else if (arch) goto fail;
#define R_REAL(k)                                                                                                \
    if (store_get_attr_f64(f, "/model", #k, &d, arch ? e : NULL) == 0) c->k = d;                                 \
    else if (arch) goto fail;
    MODEL_INT_FIELDS(R_INT)
    MODEL_REAL_FIELDS(R_REAL)
#undef R_INT
#undef R_REAL
    free(arch);
    /* the five common fields are required in every version */
    const char *k[5] = {"n_layer", "n_head", "d_model", "vocab_size", "max_seq_len"};
    for (int i = 0; i < 5; i++)
        if (store_get_attr_i64(f, "/model", k[i], &v, e) != 0) return -1;
    return 0;
fail:
    free(arch);
    return -1;
}

/* The root attributes (before the tensors, as ckpt_write always wrote them). */
static int write_head(StoreFile *f, const TrainState *st, Err *e) {
    return store_set_attr_str(f, "/", "format", "hdistill-checkpoint", e) ||
                   store_set_attr_i64(f, "/", "format_version", CKPT_FORMAT_VERSION, e) ||
                   store_set_attr_i64(f, "/", "step", st->step, e)
               ? -1
               : 0;
}

/* Everything after the tensors: /optim attributes (moments: the moments are
 * there), state, model configuration, tokenizer, configuration, provenance,
 * metrics (each optional input may be NULL). */
static int write_tail(StoreFile *f, const Model *m, int moments, const TrainState *st, const TokenizerData *tok,
                      const char *config_json, const Provenance *prov, const MetricLog *log, const ValLog *val,
                      Err *e) {
    int64_t two = 2, four = 4;
    int64_t cur[2] = {st->cursor.epoch, st->cursor.index};
    int rc = 0;
    if (moments)
        rc = store_set_attr_i64(f, "/optim", "t", st->step, e) ||
             store_set_attr_str(f, "/optim", "description",
                                "AdamW first (m) and second (v) moments; t = updates applied", e);
    if (rc == 0)
        rc = store_write_u64(f, "/state/rng", st->rng, 1, &four, "xoshiro256** state of the trainer", e) ||
             store_write_i64(f, "/state/cursor", cur, 1, &two,
                             "training stream cursor: epoch, index into the epoch's permutation", e) ||
             store_set_attr_i64(f, "/state", "step", st->step, e) ||
             store_set_attr_i64(f, "/state", "tokens", st->tokens, e) ||
             store_set_attr_f64(f, "/state", "elapsed", st->elapsed, e) ||
             store_set_attr_i64(f, "/state", "world_size", st->world_size, e) ||
             store_set_attr_i64(f, "/state", "threads", st->threads, e);
    if (rc == 0) rc = write_model_config(f, &m->cfg, e);
    if (rc == 0 && tok) rc = ckpt_write_tokenizer(f, "/tokenizer", tok, e);
    if (rc == 0 && config_json)
        rc = store_write_string(f, "/config", config_json, "resolved configuration (JSON)", e);
    if (rc == 0 && prov) rc = prov_write(f, "/provenance", prov, e);
    if (rc == 0 && log) rc = metrics_append_to(f, "/metrics/train", log, 0, e);
    if (rc == 0 && val) rc = metrics_val_write(f, val, e);
    return rc ? -1 : 0;
}

int ckpt_write(const char *dir, const Model *m, const float *mom_m, const float *mom_v,
               const TrainState *st, const TokenizerData *tok, const char *config_json,
               const Provenance *prov, const MetricLog *log, const ValLog *val, char **path_out,
               Err *e) {
    char *final = xasprintf("%s/step_%08lld.h5", dir, (long long)st->step);
    char *tmp = xasprintf("%s.tmp", final);
    StoreFile *f = store_create(tmp, e);
    int rc = f ? 0 : -1;
    if (rc == 0) rc = write_head(f, st, e);
    if (rc == 0) rc = write_tensors(f, "/params", m, m->params, e);
    if (rc == 0 && mom_m) rc = write_tensors(f, "/optim/m", m, mom_m, e);
    if (rc == 0 && mom_v) rc = write_tensors(f, "/optim/v", m, mom_v, e);
    if (rc == 0) rc = write_tail(f, m, mom_m != NULL, st, tok, config_json, prov, log, val, e);
    if (f && store_close(f, rc ? NULL : e) != 0) rc = -1;
    if (rc == 0) rc = util_rename_durable(tmp, final, e);
    if (rc != 0) unlink(tmp);
    if (rc == 0 && path_out) *path_out = final;
    else free(final);
    free(tmp);
    return rc;
}

/* ---- sharded checkpoints: every rank writes its slice through MPI-IO ------------- */

static const char *const SHARD_GROUPS[3] = {"/params", "/optim/m", "/optim/v"};

/* Rank 0, alone: the whole file but the tensor values -- attributes, state,
 * metadata, and the tensor datasets created with their storage allocated. */
static int create_sharded(const char *tmp, const Model *m, const TrainState *st, const TokenizerData *tok,
                          const char *config_json, const Provenance *prov, const MetricLog *log,
                          const ValLog *val, Err *e) {
    StoreFile *f = store_create(tmp, e);
    int rc = f ? write_head(f, st, e) : -1;
    char obj[256];
    for (int g = 0; g < 3 && rc == 0; g++)
        for (int i = 0; i < m->n_tensors && rc == 0; i++) {
            const ModelTensor *t = &m->tensors[i];
            int64_t dims[2] = {t->shape[0], t->shape[1]};
            snprintf(obj, sizeof obj, "%s/%s", SHARD_GROUPS[g], t->name);
            rc = store_create_f32(f, obj, t->ndim, dims, NULL, e);
        }
    if (rc == 0) rc = write_tail(f, m, 1, st, tok, config_json, prov, log, val, e);
    if (f && store_close(f, rc ? NULL : e) != 0) rc = -1;
    return rc;
}

/* All ranks: this rank's part of every tensor of the three groups, one
 * independent MPI-IO write per dataset (store agrees on the status, so
 * every rank returns the same). */
static int write_slices(StoreFile *f, const Model *m, size_t lo, size_t hi, const float *mom_m,
                        const float *mom_v, Err *e) {
    const float *src[3] = {m->params, mom_m, mom_v};
    int n = 3 * m->n_tensors;
    StoreRange *r = xmalloc(sizeof *r * (size_t)n);
    char (*obj)[256] = xmalloc(sizeof *obj * (size_t)n);
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < m->n_tensors; i++) {
            const ModelTensor *t = &m->tensors[i];
            size_t a = lo > t->offset ? lo : t->offset, b = hi < t->offset + t->numel ? hi : t->offset + t->numel;
            if (a >= b) a = b = t->offset; /* nothing of this tensor here: an empty selection */
            int k = g * m->n_tensors + i;
            snprintf(obj[k], sizeof obj[k], "%s/%s", SHARD_GROUPS[g], t->name);
            const float *x = a == b ? NULL : g == 0 ? m->params + a : src[g] + (a - lo); /* src[g] holds [lo, hi) */
            r[k] = (StoreRange){obj[k], (int64_t)(a - t->offset), (int64_t)(b - t->offset), x};
        }
    int rc = store_write_f32_ranges(f, n, r, e);
    free(r), free(obj);
    return rc;
}

int ckpt_write_sharded(const Comm *comm, const char *dir, const Model *m, const size_t *bounds,
                       const float *mom_m_slice, const float *mom_v_slice, const TrainState *st,
                       const TokenizerData *tok, const char *config_json, const Provenance *prov,
                       const MetricLog *log, const ValLog *val, char **path_out, Err *e) {
    int r = comm->rank, W = comm->size;
    CHECK(bounds[0] == 0 && bounds[W] == m->n_params, "bounds [%zu .. %zu] for %zu parameters", bounds[0],
          bounds[W], m->n_params);
    for (int k = 0; k < W; k++) CHECK(bounds[k] <= bounds[k + 1], "bounds %d > %d", k, k + 1);
    size_t lo = bounds[r], hi = bounds[r + 1];
    CHECK(lo == hi || (mom_m_slice && mom_v_slice), "rank %d: moment slices missing", r);
    char *final = xasprintf("%s/step_%08lld.h5", dir, (long long)st->step);
    char *tmp = xasprintf("%s.tmp", final);
    Err mine = {{0}};
    int rc = r == 0 ? create_sharded(tmp, m, st, tok, config_json, prov, log, val, &mine) : 0;
    rc = comm_agree(rc, mine.msg, sizeof mine.msg); /* also the barrier: the file is complete before anyone opens it */
    StoreFile *f = NULL;
    if (rc == 0) {
        f = store_open_parallel(tmp, &mine);
        rc = comm_agree(f ? 0 : -1, mine.msg, sizeof mine.msg);
    }
    if (rc == 0) rc = write_slices(f, m, lo, hi, mom_m_slice, mom_v_slice, &mine);
    if (f) { /* collective: flush = MPI_File_sync (each rank's data on disk), then close */
        int fail = rc == 0 && store_flush(f, &mine) != 0;
        fail |= store_close(f, rc || fail ? NULL : &mine) != 0;
        if (rc == 0) rc = comm_agree(fail, mine.msg, sizeof mine.msg);
    }
    if (r == 0 && rc == 0 && util_rename_durable(tmp, final, &mine) != 0) rc = -1;
    if (r == 0 && rc != 0) unlink(tmp);
    rc = comm_agree(rc, mine.msg, sizeof mine.msg);
    if (rc != 0) err_set(e, "%s", mine.msg);
    if (rc == 0 && path_out) *path_out = final;
    else free(final);
    free(tmp);
    return rc;
}

int ckpt_read_moments_slice(const char *path, const Model *m, size_t lo, size_t hi, float *mom_m, float *mom_v,
                            Err *e) {
    CHECK(lo <= hi && hi <= m->n_params, "slice [%zu, %zu) of %zu parameters", lo, hi, m->n_params);
    StoreFile *f = store_open(path, 0, e);
    if (!f) return -1;
    float *dst[3] = {NULL, mom_m, mom_v};
    char obj[256];
    int rc = 0;
    for (int g = 1; g < 3 && rc == 0; g++) {
        if (!dst[g]) continue;
        if (!store_exists(f, SHARD_GROUPS[g])) {
            rc = err_set(e, "%s: no optimizer state (%s)", path, SHARD_GROUPS[g]);
            break;
        }
        for (int i = 0; i < m->n_tensors && rc == 0; i++) {
            const ModelTensor *t = &m->tensors[i];
            size_t a = lo > t->offset ? lo : t->offset, b = hi < t->offset + t->numel ? hi : t->offset + t->numel;
            if (a >= b) continue;
            snprintf(obj, sizeof obj, "%s/%s", SHARD_GROUPS[g], t->name);
            int nd;
            int64_t dims[4];
            if (store_dims(f, obj, &nd, dims, e) != 0) rc = -1;
            else if (nd != t->ndim || dims[0] != t->shape[0] || (nd == 2 && dims[1] != t->shape[1]))
                rc = err_set(e, "%s: %s has the wrong shape for this model", path, obj);
            else
                rc = store_read_f32_range(f, obj, (int64_t)(a - t->offset), (int64_t)(b - t->offset),
                                          dst[g] + (a - lo), e);
        }
    }
    if (store_close(f, rc ? NULL : e) != 0) rc = -1;
    return rc;
}

int ckpt_read_meta(const char *path, ModelConfig *cfg, TokenizerData *tok, char **config_json,
                   Err *e) {
    if (tok) memset(tok, 0, sizeof *tok);
    StoreFile *f = store_open(path, 0, e);
    if (!f) return -1;
    int rc = 0;
    char *fmt = store_get_attr_str(f, "/", "format", e);
    int64_t ver = 0;
    if (!fmt || strcmp(fmt, "hdistill-checkpoint") != 0)
        rc = err_set(e, "%s: not an hdistill checkpoint", path);
    else if (store_get_attr_i64(f, "/", "format_version", &ver, e) != 0 || ver != CKPT_FORMAT_VERSION)
        rc = err_set(e, "%s: checkpoint format version %lld, this build reads %d", path,
                     (long long)ver, CKPT_FORMAT_VERSION);
    free(fmt);
    if (rc == 0 && cfg) rc = read_model_config(f, cfg, e);
    if (rc == 0 && tok) rc = ckpt_read_tokenizer(f, "/tokenizer", tok, e);
    if (rc == 0 && config_json) {
        *config_json = store_read_string(f, "/config", e);
        if (!*config_json) rc = -1;
    }
    store_close(f, NULL);
    if (rc != 0 && tok) tokenizer_data_free(tok); /* read before a later part failed (found by fuzz_ckpt) */
    return rc;
}

int ckpt_read(const char *path, Model *m, float *mom_m, float *mom_v, TrainState *st, MetricLog *log,
              ValLog *val, Err *e) {
    StoreFile *f = store_open(path, 0, e);
    if (!f) return -1;
    int rc = read_tensors(f, "/params", m, m->params, e);
    if (rc == 0 && mom_m) rc = read_tensors(f, "/optim/m", m, mom_m, e);
    if (rc == 0 && mom_v) rc = read_tensors(f, "/optim/v", m, mom_v, e);
    if (rc == 0 && st) {
        memset(st, 0, sizeof *st);
        int64_t cur[2];
        rc = store_read_u64(f, "/state/rng", st->rng, 4, e) ||
             store_read_i64(f, "/state/cursor", cur, 2, e) ||
             store_get_attr_i64(f, "/state", "step", &st->step, e) ||
             store_get_attr_i64(f, "/state", "tokens", &st->tokens, e) ||
             store_get_attr_f64(f, "/state", "elapsed", &st->elapsed, e) ||
             store_get_attr_i64(f, "/state", "world_size", &st->world_size, e) ||
             store_get_attr_i64(f, "/state", "threads", &st->threads, e);
        st->cursor.epoch = cur[0];
        st->cursor.index = cur[1];
        if (rc) rc = -1;
    }
    if (rc == 0 && log) rc = metrics_read(f, "/metrics/train", log, e);
    if (rc == 0 && val) rc = metrics_val_read(f, val, e);
    if (store_close(f, rc ? NULL : e) != 0) rc = -1;
    return rc;
}

static int step_of(const char *name, long long *step) {
    int len = 0;
    if (sscanf(name, "step_%lld.h5%n", step, &len) == 1 && name[len] == 0) return 1;
    return 0;
}

int64_t ckpt_step_of(const char *path) {
    long long s;
    return step_of(util_basename(path), &s) ? (int64_t)s : -1;
}

static int cmp_desc(const void *a, const void *b) {
    long long x, y;
    step_of(util_basename(*(char *const *)a), &x);
    step_of(util_basename(*(char *const *)b), &y);
    return x < y ? 1 : x > y ? -1 : 0;
}

char **ckpt_list(const char *dir, int *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **out = NULL;
    int cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        long long s;
        if (!step_of(ent->d_name, &s)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            out = xrealloc(out, sizeof(char *) * (size_t)cap);
        }
        out[(*n)++] = xasprintf("%s/%s", dir, ent->d_name);
    }
    closedir(d);
    if (*n) qsort(out, (size_t)*n, sizeof(char *), cmp_desc);
    return out;
}

void ckpt_list_free(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}


int ckpt_find_newest(const char *dir, int quarantine, int64_t before, CkptMeta *meta) {
    memset(meta, 0, sizeof *meta);
    int n = 0, found = 0;
    char **list = ckpt_list(dir, &n);
    for (int i = 0; i < n && !found; i++) {
        Err e;
        long long step;
        if (step_of(util_basename(list[i]), &step) && before >= 0 && step >= before) continue;
        if (ckpt_read_meta(list[i], &meta->cfg, &meta->td, &meta->config_json, &e) == 0) {
            meta->path = xstrdup(list[i]);
            found = 1;
        } else {
            tokenizer_data_free(&meta->td);
            memset(&meta->td, 0, sizeof meta->td);
            log_warn("unreadable checkpoint: %s", e.msg);
            if (quarantine) ckpt_quarantine(list[i]);
        }
    }
    ckpt_list_free(list, n);
    return found;
}

void ckpt_meta_free(CkptMeta *m) {
    if (!m) return;
    free(m->path);
    free(m->config_json);
    tokenizer_data_free(&m->td);
    memset(m, 0, sizeof *m);
}

void ckpt_quarantine(const char *path) {
    char *bad = xasprintf("%s.bad", path);
    if (rename(path, bad) != 0) log_warn("cannot rename unreadable checkpoint %s to %s", path, bad);
    else log_warn("renamed unreadable checkpoint %s to %s", path, bad);
    free(bad);
}

void ckpt_prune(const char *dir, int keep, const char *protect) {
    int n;
    char **l = ckpt_list(dir, &n);
    for (int i = keep; i < n; i++) {
        if (protect && !strcmp(l[i], protect)) continue;
        if (unlink(l[i]) != 0) log_warn("cannot delete old checkpoint %s", l[i]);
    }
    ckpt_list_free(l, n);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *ent;
    while ((ent = readdir(d)))
        if (util_ends_with(ent->d_name, ".h5.tmp")) {
            char *p = xasprintf("%s/%s", dir, ent->d_name);
            unlink(p);
            free(p);
        }
    closedir(d);
}
