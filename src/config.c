/* config -- see include/config.h.  The OPTIONS table below is the single
 * declaration of every option; parsing, validation, help and dumps all walk
 * it. */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OT_INT, OT_I64, OT_FLOAT, OT_STRING, OT_ENUM } OptType;

typedef struct {
    const char *key;
    OptType type;
    size_t off;
    const char *def;
    double lo, hi;       /* numbers: inclusive bounds */
    const char *choices; /* enums: "a|b|c" */
    const char *help;
} OptSpec;

#define F(field) offsetof(Config, field)
#define BIG 9.0e15

static const OptSpec OPTIONS[] = {
    {"run.dir", OT_STRING, F(run.dir), "runs/default", 0, 0, NULL,
     "run directory (run.h5, ckpt/); created on first use"},
    {"run.threads", OT_INT, F(run.threads), "0", 0, 1024, NULL,
     "kernel and OpenBLAS threads per rank; 0 = OMP_NUM_THREADS, else SLURM_CPUS_PER_TASK, else cores/ranks"},
    {"run.log_every", OT_INT, F(run.log_every), "10", 1, 1e9, NULL, "progress line every N steps"},

    {"data.pairs", OT_STRING, F(data.pairs), "", 0, 0, NULL,
     "training pairs: JSONL of {\"prompt\",\"target\"}, or HDF5 with /pairs/{prompt,target} or a teach data.h5"},
    {"data.max_examples", OT_I64, F(data.max_examples), "0", 0, BIG, NULL, "use the first N pairs; 0 = all"},
    {"data.too_long", OT_ENUM, F(data.too_long), "error", 0, 0, "error|skip",
     "a pair longer than train.seq_len: stop with an error, or skip it (counted)"},
    {"data.val_fraction", OT_FLOAT, F(data.val_fraction), "0", 0, 0.5, NULL,
     "share of the pairs held out for validation loss (deterministic by train.seed)"},

    {"tokenizer.type", OT_ENUM, F(tokenizer.type), "bpe", 0, 0, "bpe|gpt2",
     "bpe: byte-level BPE trained on the run's text; gpt2: GPT-2's vocabulary files"},
    {"tokenizer.vocab_size", OT_INT, F(tokenizer.vocab_size), "2048", 258, 1000000, NULL,
     "bpe: vocabulary size (256 bytes + merges + 2 special tokens)"},
    {"tokenizer.gpt2_vocab", OT_STRING, F(tokenizer.gpt2_vocab), "", 0, 0, NULL,
     "gpt2: vocab.json / encoder.json"},
    {"tokenizer.gpt2_merges", OT_STRING, F(tokenizer.gpt2_merges), "", 0, 0, NULL,
     "gpt2: merges.txt / vocab.bpe"},
    {"tokenizer.separator", OT_STRING, F(tokenizer.separator), " =>", 0, 0, NULL,
     "gpt2: text put between prompt and target (bpe uses its <|sep|> token)"},

    {"model.preset", OT_ENUM, F(model.preset), "tiny", 0, 0, "tiny|mini|small|gpt2-124m|gpt2-350m",
     "model size: tiny L2 d64, mini L4 d256, small L6 d512, gpt2-124m L12 d768, gpt2-350m L24 d1024"},
    {"model.n_layer", OT_INT, F(model.n_layer), "0", 0, 256, NULL, "layers; 0 = preset"},
    {"model.n_head", OT_INT, F(model.n_head), "0", 0, 256, NULL, "attention heads; 0 = preset"},
    {"model.d_model", OT_INT, F(model.d_model), "0", 0, 16384, NULL, "channels; 0 = preset"},
    {"model.max_seq_len", OT_INT, F(model.max_seq_len), "0", 0, 65536, NULL,
     "positions in the position embedding; 0 = preset"},

    {"train.seq_len", OT_INT, F(train.seq_len), "128", 2, 65536, NULL,
     "T: tokens per row; pairs are packed into rows without attending to each other"},
    {"train.batch_size", OT_INT, F(train.batch_size), "16", 1, 1e9, NULL,
     "rows per optimizer step over all ranks (the global batch)"},
    {"train.micro_batch", OT_INT, F(train.micro_batch), "0", 0, 1e9, NULL,
     "rows per rank per forward/backward; 0 = batch_size/ranks (no accumulation)"},
    {"train.steps", OT_I64, F(train.steps), "0", 0, BIG, NULL, "optimizer steps; 0 = from train.epochs"},
    {"train.epochs", OT_FLOAT, F(train.epochs), "1", 0, 1e6, NULL,
     "passes over the pairs when train.steps is 0"},
    {"train.lr", OT_FLOAT, F(train.lr), "3e-4", 0, 10, NULL, "peak learning rate"},
    {"train.min_lr_frac", OT_FLOAT, F(train.min_lr_frac), "0.1", 0, 1, NULL,
     "cosine schedule ends at lr * min_lr_frac"},
    {"train.warmup_steps", OT_I64, F(train.warmup_steps), "10", 0, BIG, NULL, "linear warm-up steps"},
    {"train.schedule", OT_ENUM, F(train.schedule), "cosine", 0, 0, "cosine|constant",
     "learning-rate schedule after warm-up"},
    {"train.weight_decay", OT_FLOAT, F(train.weight_decay), "0.1", 0, 10, NULL,
     "AdamW decoupled weight decay (matrices and embeddings only)"},
    {"train.beta1", OT_FLOAT, F(train.beta1), "0.9", 0, 0.999999, NULL, "AdamW beta1"},
    {"train.beta2", OT_FLOAT, F(train.beta2), "0.95", 0, 0.999999, NULL, "AdamW beta2"},
    {"train.eps", OT_FLOAT, F(train.eps), "1e-8", 1e-30, 1, NULL, "AdamW epsilon"},
    {"train.grad_clip", OT_FLOAT, F(train.grad_clip), "1.0", 0, 1e9, NULL,
     "clip the global gradient norm to this; 0 = off"},
    {"train.seed", OT_I64, F(train.seed), "1337", 0, BIG, NULL, "seed of initialisation and data order"},
    {"train.ckpt_every", OT_I64, F(train.ckpt_every), "100", 0, BIG, NULL,
     "checkpoint every N steps (and always at the end); 0 = only at the end"},
    {"train.ckpt_keep", OT_INT, F(train.ckpt_keep), "2", 1, 1000000, NULL,
     "checkpoints kept (the newest)"},
    {"train.eval_every", OT_I64, F(train.eval_every), "0", 0, BIG, NULL,
     "validation loss every N steps (needs data.val_fraction > 0); 0 = only at the end"},
    {"train.max_run_time", OT_FLOAT, F(train.max_run_time), "0", 0, 1e9, NULL,
     "seconds; checkpoint and stop (exit 3, resumable) before this much wall time"},
};
#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

static const OptSpec *find_opt(const char *key) {
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(OPTIONS[i].key, key) == 0) return &OPTIONS[i];
    return NULL;
}

static int has_section(const char *section, size_t len) {
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strncmp(OPTIONS[i].key, section, len) == 0 && OPTIONS[i].key[len] == '.') return 1;
    return 0;
}

static int choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* Sets option o from a string (defaults and --set); source for messages. */
static int set_from_string(Config *c, const OptSpec *o, const char *v, const char *source, Err *e) {
    char *base = (char *)c;
    switch (o->type) {
    case OT_INT:
    case OT_I64: {
        errno = 0;
        char *end;
        double d = strtod(v, &end);
        if (end == v || *end || errno || d != floor(d))
            return err_set(e, "%s: %s: expected an integer, got '%s'", source, o->key, v);
        if (d < o->lo || d > o->hi)
            return err_set(e, "%s: %s = %s is out of range [%.17g, %.17g]", source, o->key, v, o->lo,
                           o->hi);
        if (o->type == OT_INT)
            *(int *)(base + o->off) = (int)d;
        else
            *(int64_t *)(base + o->off) = (int64_t)d;
        return 0;
    }
    case OT_FLOAT: {
        errno = 0;
        char *end;
        double d = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(d))
            return err_set(e, "%s: %s: expected a number, got '%s'", source, o->key, v);
        if (d < o->lo || d > o->hi)
            return err_set(e, "%s: %s = %s is out of range [%g, %g]", source, o->key, v, o->lo, o->hi);
        *(double *)(base + o->off) = d;
        return 0;
    }
    case OT_ENUM:
        if (!choice_ok(o->choices, v))
            return err_set(e, "%s: %s = '%s' is not one of %s", source, o->key, v, o->choices);
        /* fall through */
    case OT_STRING: {
        char **s = (char **)(base + o->off);
        free(*s);
        *s = xstrdup(v);
        return 0;
    }
    }
    return err_set(e, "internal: bad option type");
}

void config_init(Config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        Err e;
        if (set_from_string(c, &OPTIONS[i], OPTIONS[i].def, "defaults", &e) != 0) DIE("%s", e.msg);
    }
    c->source = xstrdup("defaults");
}

void config_free(Config *c) {
    if (!c) return;
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (OPTIONS[i].type == OT_STRING || OPTIONS[i].type == OT_ENUM) {
            char **s = (char **)((char *)c + OPTIONS[i].off);
            free(*s);
            *s = NULL;
        }
    free(c->source);
    c->source = NULL;
}

static int set_from_json(Config *c, const OptSpec *o, const cJSON *v, const char *source, Err *e) {
    char buf[64];
    switch (o->type) {
    case OT_INT:
    case OT_I64:
    case OT_FLOAT:
        if (!cJSON_IsNumber(v)) {
            /* numbers written as strings are accepted only if they parse */
            if (cJSON_IsString(v)) return set_from_string(c, o, v->valuestring, source, e);
            return err_set(e, "%s: %s: expected a number", source, o->key);
        }
        snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
        return set_from_string(c, o, buf, source, e);
    case OT_STRING:
    case OT_ENUM:
        if (!cJSON_IsString(v)) return err_set(e, "%s: %s: expected a string", source, o->key);
        return set_from_string(c, o, v->valuestring, source, e);
    }
    return err_set(e, "internal: bad option type");
}

int config_load_json(Config *c, const char *text, const char *source, Err *e) {
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        if (at)
            for (const char *p = text; p < at && *p; p++) line += (*p == '\n');
        return err_set(e, "%s: malformed JSON near line %d (hint: check commas and quotes)", source,
                       line);
    }
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = err_set(e, "%s: expected a JSON object of sections", source);
        goto out;
    }
    for (cJSON *sec = root->child; sec; sec = sec->next) {
        if (!has_section(sec->string, strlen(sec->string))) {
            rc = err_set(e, "%s: unknown section '%s' (hint: hdistill help-config lists them)", source,
                         sec->string);
            goto out;
        }
        if (!cJSON_IsObject(sec)) {
            rc = err_set(e, "%s: section '%s' must be an object", source, sec->string);
            goto out;
        }
        for (cJSON *kv = sec->child; kv; kv = kv->next) {
            char key[256];
            snprintf(key, sizeof key, "%s.%s", sec->string, kv->string);
            const OptSpec *o = find_opt(key);
            if (!o) {
                rc = err_set(e, "%s: unknown key '%s' (hint: hdistill help-config lists them)", source,
                             key);
                goto out;
            }
            if ((rc = set_from_json(c, o, kv, source, e)) != 0) goto out;
        }
    }
    free(c->source);
    c->source = xstrdup(source);
out:
    cJSON_Delete(root);
    return rc;
}

int config_load_file(Config *c, const char *path, Err *e) {
    size_t len;
    char *text = util_read_file(path, &len, e);
    if (!text) return err_suffix(e, " (hint: the configuration file must exist)");
    if (strlen(text) != len) {
        free(text);
        return err_set(e, "%s: contains a NUL byte; not a JSON configuration", path);
    }
    int rc = config_load_json(c, text, path, e);
    free(text);
    return rc;
}

int config_set(Config *c, const char *assignment, Err *e) {
    const char *eq = strchr(assignment, '=');
    if (!eq) return err_set(e, "--set %s: expected section.key=value", assignment);
    char key[256];
    size_t n = (size_t)(eq - assignment);
    if (n >= sizeof key) return err_set(e, "--set: key too long");
    memcpy(key, assignment, n);
    key[n] = 0;
    const OptSpec *o = find_opt(key);
    if (!o) return err_set(e, "--set: unknown key '%s' (hint: hdistill help-config lists them)", key);
    return set_from_string(c, o, eq + 1, "--set", e);
}

typedef struct {
    const char *name;
    int n_layer, n_head, d_model, max_seq_len;
} Preset;

static const Preset PRESETS[] = {
    {"tiny", 2, 2, 64, 256},
    {"mini", 4, 4, 256, 256},
    {"small", 6, 8, 512, 512},
    {"gpt2-124m", 12, 12, 768, 1024},
    {"gpt2-350m", 24, 16, 1024, 1024},
};

int config_model_dims(const Config *c, ModelDims *d, Err *e) {
    const Preset *p = NULL;
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
        if (strcmp(PRESETS[i].name, c->model.preset) == 0) p = &PRESETS[i];
    if (!p) return err_set(e, "%s: model.preset '%s' unknown", c->source, c->model.preset);
    d->n_layer = c->model.n_layer ? c->model.n_layer : p->n_layer;
    d->n_head = c->model.n_head ? c->model.n_head : p->n_head;
    d->d_model = c->model.d_model ? c->model.d_model : p->d_model;
    d->max_seq_len = c->model.max_seq_len ? c->model.max_seq_len : p->max_seq_len;
    if (d->d_model % d->n_head != 0)
        return err_set(e, "%s: model.d_model %d is not divisible by model.n_head %d", c->source,
                       d->d_model, d->n_head);
    return 0;
}

int config_validate(const Config *c, Err *e) {
    ModelDims d;
    if (config_model_dims(c, &d, e) != 0) return -1;
    if (c->train.seq_len > d.max_seq_len)
        return err_set(e,
                       "%s: train.seq_len %d exceeds the model's %d positions (hint: raise "
                       "model.max_seq_len or lower train.seq_len)",
                       c->source, c->train.seq_len, d.max_seq_len);
    if (strcmp(c->tokenizer.type, "gpt2") == 0 &&
        (!c->tokenizer.gpt2_vocab[0] || !c->tokenizer.gpt2_merges[0]))
        return err_set(e, "%s: tokenizer.type gpt2 needs tokenizer.gpt2_vocab and tokenizer.gpt2_merges",
                       c->source);
    if (c->train.steps == 0 && c->train.epochs <= 0)
        return err_set(e, "%s: set train.steps or train.epochs > 0", c->source);
    if (c->train.eval_every > 0 && c->data.val_fraction <= 0)
        return err_set(e, "%s: train.eval_every needs data.val_fraction > 0", c->source);
    return 0;
}

static void value_string(const Config *c, const OptSpec *o, char *buf, size_t n) {
    const char *base = (const char *)c;
    switch (o->type) {
    case OT_INT: snprintf(buf, n, "%d", *(const int *)(base + o->off)); break;
    case OT_I64: snprintf(buf, n, "%lld", (long long)*(const int64_t *)(base + o->off)); break;
    case OT_FLOAT: snprintf(buf, n, "%.17g", *(const double *)(base + o->off)); break;
    case OT_STRING:
    case OT_ENUM: snprintf(buf, n, "%s", *(char *const *)(base + o->off)); break;
    }
}

char *config_to_json(const Config *c) {
    cJSON *root = cJSON_CreateObject();
    CHECK(root, "cJSON alloc");
    const char *base = (const char *)c;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const OptSpec *o = &OPTIONS[i];
        const char *dot = strchr(o->key, '.');
        char sec[64];
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - o->key), o->key);
        cJSON *s = cJSON_GetObjectItemCaseSensitive(root, sec);
        if (!s) s = cJSON_AddObjectToObject(root, sec);
        CHECK(s, "cJSON alloc");
        cJSON *v = NULL;
        switch (o->type) {
        case OT_INT: v = cJSON_CreateNumber(*(const int *)(base + o->off)); break;
        case OT_I64: v = cJSON_CreateNumber((double)*(const int64_t *)(base + o->off)); break;
        case OT_FLOAT: v = cJSON_CreateNumber(*(const double *)(base + o->off)); break;
        case OT_STRING:
        case OT_ENUM: v = cJSON_CreateString(*(char *const *)(base + o->off)); break;
        }
        CHECK(v, "cJSON alloc");
        cJSON_AddItemToObject(s, dot + 1, v);
    }
    char *out = cJSON_Print(root);
    CHECK(out, "cJSON print");
    cJSON_Delete(root);
    char *copy = xstrdup(out);
    cJSON_free(out);
    return copy;
}

void config_print(const Config *c, FILE *f) {
    char buf[1024];
    for (size_t i = 0; i < N_OPTIONS; i++) {
        value_string(c, &OPTIONS[i], buf, sizeof buf);
        fprintf(f, "  %-24s = %s\n", OPTIONS[i].key, buf);
    }
}

static int in_sections(const char *key, const char *sections) {
    if (!sections || !*sections) return 1;
    const char *dot = strchr(key, '.');
    size_t n = (size_t)(dot - key);
    const char *p = sections;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, key, n) == 0) return 1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

void config_print_help(FILE *f, const char *sections) {
    static const char *tname[] = {"int", "int", "float", "string", "choice"};
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const OptSpec *o = &OPTIONS[i];
        if (!in_sections(o->key, sections)) continue;
        fprintf(f, "  %-22s %-6s default %-14s %s", o->key, tname[o->type],
                o->def[0] ? o->def : "\"\"", o->help);
        if (o->type == OT_ENUM) fprintf(f, " [%s]", o->choices);
        else if (o->type != OT_STRING) fprintf(f, " [%g..%g]", o->lo, o->hi);
        fputc('\n', f);
    }
}
