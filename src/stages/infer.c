/* infer -- the student you can try; see include/stages/infer.h. */
#include "stages/infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/comm.h"
#include "base/unicode.h"
#include "io/hfmodel.h"
#include "stages/trainer.h"

#define SOURCE_HINT "hint: give a run directory, a checkpoint file (RUN_DIR/ckpt/step_*.h5) or a Hugging Face model directory"

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* the base name of src without trailing slashes and without ".h5" (malloc'd) */
static char *source_name(const char *src) {
    size_t n = strlen(src);
    while (n > 1 && src[n - 1] == '/') n--;
    const char *b = src;
    for (size_t i = 0; i < n; i++)
        if (src[i] == '/' && i + 1 < n) b = src + i + 1;
    size_t len = n - (size_t)(b - src);
    if (len > 3 && strncmp(b + len - 3, ".h5", 3) == 0) len -= 3;
    return xstrndup(b, len);
}

static int apply_sets(Config *c, char *const *sets, int n_sets, Err *e) {
    for (int i = 0; i < n_sets; i++)
        if (config_set(c, sets[i], e) != 0) return err_prefix(e, "--set %s: ", sets[i]);
    return 0;
}

/* A run directory or a checkpoint file: the student and its configuration. */
static int open_checkpoint(Infer *m, const char *src, char *const *sets, int n_sets, Err *e) {
    char *json = NULL;
    if (student_read_source(src, &m->s, &json, e) != 0) return -1;
    m->path = xstrdup(m->s.path);
    int rc = json ? config_load_json(&m->cfg, json, m->s.path, e) : 0;
    free(json);
    if (rc != 0) return err_prefix(e, "%s: its configuration: ", m->s.path);
    return apply_sets(&m->cfg, sets, n_sets, e);
}

/* A Hugging Face directory, as model.init_from reads one: config.json and
 * the weights (hfmodel.h), the tokenizer of tokenizer.type (hf: DIR's
 * tokenizer.json). */
static int open_hf(Infer *m, const char *dir, char *const *sets, int n_sets, Err *e) {
    char *a = xasprintf("model.init_from=%s", dir);
    int rc = config_set(&m->cfg, a, e) || config_set(&m->cfg, "tokenizer.type=hf", e);
    free(a);
    if (rc != 0 || apply_sets(&m->cfg, sets, n_sets, e) != 0) return -1;
    if (m->cfg.tokenizer.type == TOKENIZER_TYPE_BPE)
        return err_set(e, "%s: tokenizer.type bpe is trained by a run, not read (hint: --set tokenizer.type=hf or gpt2)",
                       dir);
    ModelConfig mc;
    if (hf_model_read_config(dir, &mc, e) != 0)
        return err_prefix(e, "%s: not a model directory hdistill reads (a GPT-2 export is read through its run "
                             "directory or checkpoint): ", dir);
    Tokenizer *tok = student_load_tokenizer(&m->cfg, e);
    if (!tok) return -1;
    int vocab = tokenizer_vocab_size(tok);
    if (vocab > mc.vocab_size) {
        tokenizer_destroy(tok);
        return err_set(e, "%s: the tokenizer has %d tokens but the model only %d token embeddings (hint: the "
                          "tokenizer must be the model's own)", dir, vocab, mc.vocab_size);
    }
    tokenizer_to_data(tok, &m->s.td);
    tokenizer_destroy(tok);
    model_init(&m->s.model, &mc);
    char info[256];
    if (student_load_init_from(&m->cfg, &m->s.model, info, sizeof info, e) != 0) return -1;
    m->path = xstrdup(dir);
    return 0;
}

int infer_open(Infer *m, const char *src, char *const *sets, int n_sets, Err *e) {
    memset(m, 0, sizeof *m);
    config_init(&m->cfg);
    struct stat sb;
    int rc;
    if (stat(src, &sb) != 0) {
        rc = err_set(e, "%s: no such file or directory (%s)", src, SOURCE_HINT);
    } else if (is_dir(src)) {
        char *ck = xasprintf("%s/ckpt", src), *cj = xasprintf("%s/config.json", src);
        struct stat cs;
        if (is_dir(ck)) m->kind = INFER_RUN, rc = open_checkpoint(m, src, sets, n_sets, e);
        else if (stat(cj, &cs) == 0) m->kind = INFER_HF, rc = open_hf(m, src, sets, n_sets, e);
        else rc = err_set(e, "%s: neither a run directory (no ckpt/) nor a Hugging Face model directory (no "
                             "config.json) (%s)", src, SOURCE_HINT);
        free(ck), free(cj);
    } else {
        m->kind = INFER_CHECKPOINT;
        rc = open_checkpoint(m, src, sets, n_sets, e);
    }
    if (rc == 0 && student_set_tokenizer(&m->s, &m->cfg, e) != 0) rc = err_prefix(e, "%s: ", src);
    if (rc != 0) {
        infer_close(m);
        return -1;
    }
    m->name = source_name(src);
    Comm one = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
    m->threads = trainer_setup_threads(&m->cfg, &one);
    return 0;
}

void infer_close(Infer *m) {
    if (!m) return;
    student_free(&m->s);
    config_free(&m->cfg);
    free(m->name);
    free(m->path);
    memset(m, 0, sizeof *m);
}

void infer_gen_options(const Infer *m, GenMode mode, GenOptions *o) {
    gen_options_init(o);
    o->mode = mode;
    if (mode == GEN_SAMPLE) {
        o->k = m->cfg.critique.k;
        o->temperature = m->cfg.critique.temperature;
        o->top_p = m->cfg.critique.top_p;
        o->max_new = m->cfg.critique.max_new;
    } else {
        o->beam = m->cfg.eval.beam;
        o->k = 1;
        o->max_new = m->cfg.eval.max_new;
    }
}

/* the top n of row[0..V) (n <= INFER_MAX_TOP): most probable first, ties by the smaller id */
static int top_ids(const float *row, int V, int n, int *id) {
    int k = 0;
    if (n <= 0) return 0;
    for (int v = 0; v < V; v++) {
        if (k == n && !(row[v] > row[id[k - 1]])) continue;
        int j = k < n ? k++ : k - 1;
        while (j > 0 && row[v] > row[id[j - 1]]) {
            id[j] = id[j - 1];
            j--;
        }
        id[j] = v;
    }
    return k;
}

void infer_score(Infer *m, const int *prompt, int plen, const int *ids, int n, int with_eot, int top, InferToken *out) {
    Model *md = &m->s.model;
    int T = plen + n + with_eot - 1;
    CHECK(plen >= 1 && T <= md->cfg.max_seq_len && top >= 0 && top <= INFER_MAX_TOP,
          "infer_score: %d + %d tokens, top %d", plen, n + with_eot, top);
    int *tok = xmalloc(sizeof(int) * 4 * (size_t)T), *pos = tok + T, *seg = pos + T, *tgt = seg + T;
    for (int t = 0; t <= T; t++) {
        int id = t < plen ? prompt[t] : t - plen < n ? ids[t - plen] : m->s.eot;
        if (t < T) tok[t] = id, pos[t] = t, seg[t] = 0, tgt[t] = -1;
        if (t >= plen) tgt[t - 1] = id;
    }
    model_alloc_acts(md, 1, T);
    ModelBatch b = {.B = 1, .T = T, .tok = tok, .pos = pos, .seg = seg, .tgt = tgt};
    int M = model_forward(md, &b);
    CHECK(M == n + with_eot, "infer_score: %d rows scored, %d expected", M, n + with_eot);
    int V = md->cfg.vocab_size, nv = tokenizer_vocab_size(m->s.tok);
    if (nv <= 0 || nv > V) nv = V;
    for (int r = 0; r < M; r++) {
        const float *row = md->logits + (size_t)r * V;
        float mx = -INFINITY;
        for (int v = 0; v < nv; v++) mx = row[v] > mx ? row[v] : mx;
        double s = 0;
        for (int v = 0; v < nv; v++) s += exp((double)row[v] - mx);
        double lse = mx + log(s);
        InferToken *o = &out[r];
        o->id = tgt[plen - 1 + r];
        o->logprob = (double)row[o->id] - lse;
        o->n_top = top_ids(row, nv, top, o->top_id);
        for (int j = 0; j < o->n_top; j++) o->top_logprob[j] = (double)row[o->top_id[j]] - lse;
    }
    free(tok);
}

void infer_token_text(const Infer *m, int id, ByteBuf *b, ByteBuf *raw) {
    ByteBuf t = {0};
    Err e;
    if (tokenizer_decode(m->s.tok, &id, 1, &t, &e) != 0) DIE("%s", e.msg);
    const uint8_t *p = (const uint8_t *)t.a;
    for (size_t i = 0; i < t.n;) {
        uint32_t cp;
        size_t k = unicode_decode_utf8(p + i, t.n - i, &cp);
        if (cp == UNICODE_INVALID || cp == 0) bytebuf_put(b, "\xEF\xBF\xBD", 3);
        else bytebuf_put(b, p + i, k);
        i += k;
    }
    if (!b->a) bytebuf_put(b, "", 0);
    if (raw) bytebuf_put(raw, t.a ? t.a : "", t.n);
    bytebuf_free(&t);
}
