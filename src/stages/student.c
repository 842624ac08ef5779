/* student -- the student of a run directory; see include/stages/student.h. */
#include "stages/student.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/text.h"
#include "engine/presets.h"
#include "io/dataset.h"
#include "io/hfmodel.h"
#include "io/safetensors.h"

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* the preset with its overrides */
static int preset_config(const Config *cfg, ModelConfig *mc, Err *e) {
    if (model_preset(cfg->model.preset, mc) != 0)
        return err_set(e, "%s: model.preset '%s' is not a preset (hint: hdistill help-config model)", cfg->source,
                       cfg->model.preset);
    if (mc->arch != MODEL_GPT2 && (cfg->model.n_layer || cfg->model.n_head || cfg->model.d_model))
        return err_set(e, "%s: model.n_layer, n_head and d_model cannot change the published shape of %s (hint: "
                          "model.preset=llama-tiny, or leave them 0)",
                       cfg->source, cfg->model.preset);
    if (cfg->model.n_layer) mc->n_layer = cfg->model.n_layer;
    if (cfg->model.n_head) mc->n_head = cfg->model.n_head;
    if (cfg->model.d_model) mc->d_model = cfg->model.d_model;
    if (cfg->model.max_seq_len) mc->max_seq_len = cfg->model.max_seq_len;
    if (mc->arch == MODEL_GPT2 && mc->d_model % mc->n_head != 0)
        return err_set(e, "%s: model.d_model %d is not divisible by model.n_head %d", cfg->source, mc->d_model,
                       mc->n_head);
    return 0;
}

int student_model_config(const Config *cfg, int vocab, ModelConfig *mc, Err *e) {
    const char *from = cfg->model.init_from;
    if (from[0] && is_dir(from)) {
        if (hf_model_read_config(from, mc, e) != 0) return err_prefix(e, "model.init_from: ");
        if (cfg->model.n_layer || cfg->model.n_head || cfg->model.d_model)
            return err_set(e, "%s: model.n_layer, n_head and d_model cannot change the pretrained model in %s "
                              "(hint: leave them 0)",
                           cfg->source, from);
        if (cfg->model.max_seq_len && cfg->model.max_seq_len < mc->max_seq_len) mc->max_seq_len = cfg->model.max_seq_len;
    } else if (preset_config(cfg, mc, e) != 0) {
        return -1;
    }
    if (mc->vocab_size == 0) mc->vocab_size = vocab;
    else if (vocab > mc->vocab_size)
        return err_set(e, "%s: the tokenizer has %d tokens but the model only %d token embeddings (hint: the "
                          "tokenizer must be the model's own)",
                       cfg->source, vocab, mc->vocab_size);
    if (cfg->train.seq_len > mc->max_seq_len)
        return err_set(e,
                       "%s: train.seq_len %d exceeds the model's %d positions (hint: raise "
                       "model.max_seq_len or lower train.seq_len)",
                       cfg->source, cfg->train.seq_len, mc->max_seq_len);
    ModelConfig probe = *mc;
    if (probe.vocab_size == 0) probe.vocab_size = 1; /* not known before the tokenizer */
    char why[256];
    if (model_config_check(&probe, why, sizeof why) != 0) return err_set(e, "%s: %s", cfg->source, why);
    return 0;
}

int student_check_init_from(const Config *cfg, const ModelConfig *mc, Err *e) {
    const char *from = cfg->model.init_from;
    if (!from[0]) return 0;
    int rc = is_dir(from) ? hf_model_check(from, mc, e) : safetensors_check_gpt2(from, mc, e);
    if (rc == 0 && !is_dir(from) && mc->arch != MODEL_GPT2)
        rc = err_set(e, "%s is one file of GPT-2 weights but model.preset %s is a Llama-style model (hint: give "
                        "the Hugging Face model directory)",
                     from, cfg->model.preset);
    return rc ? err_prefix(e, "model.init_from: ") : 0;
}

int student_load_init_from(const Config *cfg, Model *m, char *info, size_t ninfo, Err *e) {
    const char *from = cfg->model.init_from;
    int rc = is_dir(from) ? hf_model_load(from, m, info, ninfo, e) : safetensors_read_gpt2(from, m, info, ninfo, e);
    return rc ? err_prefix(e, "model.init_from: ") : 0;
}

Tokenizer *student_load_tokenizer(const Config *cfg, Err *e) {
    if (cfg->tokenizer.type == TOKENIZER_TYPE_GPT2)
        return tokenizer_load_gpt2(cfg->tokenizer.gpt2_vocab, cfg->tokenizer.gpt2_merges, e);
    const char *path = cfg->tokenizer.path[0] ? cfg->tokenizer.path : cfg->model.init_from;
    Tokenizer *t = tokenizer_load_hf(path, e);
    if (!t) err_prefix(e, "%s: ", cfg->tokenizer.path[0] ? "tokenizer.path" : "model.init_from (its tokenizer)");
    return t;
}

int student_set_tokenizer(Student *s, const Config *cfg, Err *e) {
    tokenizer_destroy(s->tok);
    prompt_format_free(&s->fmt);
    s->tok = tokenizer_from_data(&s->td, e);
    if (!s->tok) return -1;
    if (prompt_format_init(&s->fmt, s->tok, (PromptKind)cfg->student.format, cfg->student.instruction,
                           cfg->tokenizer.separator, e) != 0)
        return -1;
    s->eot = s->fmt.end;
    return 0;
}

int student_read_newest(Student *s, Optim *opt, const char *ckpt_dir, CkptMeta *meta, int quarantine) {
    ModelConfig want = meta->cfg;
    while (1) {
        Err e;
        if (!s->model.params) model_init(&s->model, &meta->cfg);
        if (ckpt_read(meta->path, &s->model, opt ? opt->m : NULL, opt ? opt->v : NULL, &s->st, &s->log, &s->val,
                      &e) == 0) {
            free(s->path);
            s->path = xstrdup(meta->path);
            return 0;
        }
        log_warn("unreadable checkpoint: %s", e.msg);
        if (quarantine) ckpt_quarantine(meta->path);
        int64_t before = ckpt_step_of(meta->path);
        ckpt_meta_free(meta);
        if (!ckpt_find_newest(ckpt_dir, quarantine, before, meta)) return -1;
        if (memcmp(&meta->cfg, &want, sizeof want) != 0) {
            log_warn("%s holds another model configuration; not resuming from it", meta->path);
            return -1;
        }
    }
}

void student_bcast_state(Student *s, Optim *opt) {
    comm_bcast(s->model.params, s->model.n_params * sizeof(float));
    if (opt) {
        comm_bcast(opt->m, s->model.n_params * sizeof(float));
        comm_bcast(opt->v, s->model.n_params * sizeof(float));
    }
    comm_bcast(&s->st, sizeof s->st);
}

/* s->model (and opt: no weight decay, student.h) allocated for configuration mc */
static void student_alloc(Student *s, const Config *cfg, const ModelConfig *mc, Optim *opt) {
    model_init(&s->model, mc);
    if (opt) optim_init(opt, &s->model, cfg->train.beta1, cfg->train.beta2, cfg->train.eps, 0.0, cfg->train.grad_clip);
}

int student_load(Student *s, const Config *cfg, const Comm *comm, Optim *opt, int quarantine, Err *e) {
    memset(s, 0, sizeof *s);
    if (opt) memset(opt, 0, sizeof *opt); /* the failure paths free it, allocated or not */
    char *dir = xasprintf("%s/ckpt", cfg->run.dir);
    CkptMeta meta = {0};
    int64_t ok = 1;
    if (comm->rank == 0) {
        ok = ckpt_find_newest(dir, quarantine, -1, &meta);
        if (ok) student_alloc(s, cfg, &meta.cfg, opt);
        ok = ok && student_read_newest(s, opt, dir, &meta, quarantine) == 0;
        if (!ok) err_set(e, "%s: no readable checkpoint (hint: train the student first)", dir);
    }
    free(dir);
    comm_bcast_i64(&ok, 1);
    if (!ok) {
        ckpt_meta_free(&meta);
        if (opt) optim_free(opt);
        student_free(s);
        return -1;
    }
    ModelConfig mc = meta.cfg;
    comm_bcast(&mc, sizeof mc);
    if (comm->rank == 0) {
        s->td = meta.td; /* moved */
        memset(&meta.td, 0, sizeof meta.td);
    } else {
        student_alloc(s, cfg, &mc, opt);
    }
    ckpt_meta_free(&meta);
    dataset_bcast_tokenizer(&s->td);
    if (student_set_tokenizer(s, cfg, e) != 0) { /* the same on every rank: the same tokenizer and options */
        if (opt) optim_free(opt);
        student_free(s);
        return -1;
    }
    student_bcast_state(s, opt);
    return 0;
}

void student_free(Student *s) {
    if (!s) return;
    prompt_format_free(&s->fmt);
    model_free(&s->model);
    tokenizer_destroy(s->tok);
    tokenizer_data_free(&s->td);
    metrics_free(&s->log);
    metrics_val_free(&s->val);
    free(s->path);
    memset(s, 0, sizeof *s);
}

void student_prompt(const Student *s, const char *text, IntVec *out) { prompt_encode(&s->fmt, s->tok, text, out); }

char *student_text(const Student *s, const int *ids, int n) {
    ByteBuf b = {0};
    Err e;
    if (tokenizer_decode(s->tok, ids, (size_t)n, &b, &e) != 0) DIE("%s", e.msg);
    if (!b.a) bytebuf_put(&b, "", 0);
    /* valid UTF-8 (a token may end inside a character), one line, trimmed */
    char *r = text_normalize(b.a, b.n);
    bytebuf_free(&b);
    return r;
}

/* This rank's outputs of texts[lo..hi) (ids and texts), serialised "<tokens>\t<text>\0" per output. */
static void generate_share(const Student *s, const GenOptions *o, char *const *texts, int lo, int hi, int64_t first,
                           ByteBuf *b) {
    int k = o->mode == GEN_GREEDY ? 1 : o->k, m = hi - lo;
    IntVec *pr = xcalloc((size_t)(m ? m : 1), sizeof(IntVec));
    const int **pp = xcalloc((size_t)(m ? m : 1), sizeof(int *));
    int *pl = xcalloc((size_t)(m ? m : 1), sizeof(int));
    int maxp = s->model.cfg.max_seq_len - o->max_new;
    for (int i = 0; i < m; i++) {
        student_prompt(s, texts[lo + i], &pr[i]);
        if ((int)pr[i].n > maxp) { /* keep the end: the separator must stay last */
            memmove(pr[i].a, pr[i].a + (pr[i].n - (size_t)maxp), sizeof(int) * (size_t)maxp);
            pr[i].n = (size_t)maxp;
        }
        pp[i] = pr[i].a;
        pl[i] = (int)pr[i].n;
    }
    GenSeq *g = xcalloc((size_t)(m ? m : 1) * (size_t)k, sizeof(GenSeq));
    GenOptions ov = *o;
    ov.n_vocab = tokenizer_vocab_size(s->tok); /* a model may have more token rows than its tokenizer ids */
    if (m > 0) gen_run(&s->model, &ov, pp, pl, m, s->eot, first + lo, g);
    for (int i = 0; i < m * k; i++) {
        char *t = student_text(s, g[i].ids, g[i].n);
        bytebuf_printf(b, "%d\t", g[i].n);
        bytebuf_put(b, t, strlen(t) + 1);
        free(t);
        gen_seq_free(&g[i]);
    }
    for (int i = 0; i < m; i++) intvec_free(&pr[i]);
    free(pr), free(pp), free(pl), free(g);
}

void student_generate_chunks(const Student *s, const GenOptions *o, const Comm *comm, char *const *texts, int n,
                             int chunk, StudentChunkFn fn, void *ctx) {
    int k = o->mode == GEN_GREEDY ? 1 : o->k;
    if (chunk <= 0) chunk = n;
    for (int c0 = 0; c0 < n || (n == 0 && c0 == 0); c0 += chunk) {
        int c1 = c0 + chunk < n ? c0 + chunk : n, C = c1 - c0;
        int lo = c0 + (int)((int64_t)C * comm->rank / comm->size), hi = c0 + (int)((int64_t)C * (comm->rank + 1) / comm->size);
        ByteBuf b = {0};
        generate_share(s, o, texts, lo, hi, 0, &b);
        size_t *lens = NULL;
        char *all = comm_gather_bytes(b.a ? b.a : "", b.n, &lens);
        bytebuf_free(&b);
        if (comm->rank == 0) {
            char **res = xcalloc((size_t)C * (size_t)k + 1, sizeof(char *));
            int *tl = xcalloc((size_t)C * (size_t)k + 1, sizeof(int));
            const char *p = all;
            for (int i = 0; i < C * k; i++) {
                char *tab = strchr(p, '\t');
                CHECK(tab, "gathered outputs are malformed");
                tl[i] = atoi(p);
                res[i] = xstrdup(tab + 1);
                p = tab + 1 + strlen(tab + 1) + 1;
            }
            fn(ctx, c0, c1, res, tl);
            free(all);
            free(lens);
        }
        if (n == 0) break;
    }
}

typedef struct {
    char **out;
    int *tl;
    int k;
} Collect;

static void collect_chunk(void *vc, int c0, int c1, char **texts, int *tok_len) {
    Collect *c = vc;
    for (int i = 0; i < (c1 - c0) * c->k; i++) {
        c->out[(size_t)c0 * c->k + i] = texts[i];
        c->tl[(size_t)c0 * c->k + i] = tok_len[i];
    }
    free(texts);
    free(tok_len);
}

void student_generate(const Student *s, const GenOptions *o, const Comm *comm, char *const *texts, int n,
                      char ***out, int **tok_len) {
    int k = o->mode == GEN_GREEDY ? 1 : o->k;
    Collect c = {NULL, NULL, k};
    if (comm->rank == 0) {
        c.out = xcalloc((size_t)n * (size_t)k + 1, sizeof(char *));
        c.tl = xcalloc((size_t)n * (size_t)k + 1, sizeof(int));
    }
    student_generate_chunks(s, o, comm, texts, n, n, collect_chunk, &c);
    *out = c.out;
    if (tok_len) *tok_len = c.tl;
    else free(c.tl);
}
