/* data -- pairs, examples and the packer; see include/data.h. */
#include "engine/data.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/comm.h"
#include "io/store.h"

/* ---- pairs -------------------------------------------------------------- */

static void pairs_push(Pairs *p, int64_t *cap, const char *a, const char *b, int64_t line) {
    if (p->n == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        p->prompt = xrealloc(p->prompt, sizeof(char *) * (size_t)*cap);
        p->target = xrealloc(p->target, sizeof(char *) * (size_t)*cap);
        p->line = xrealloc(p->line, sizeof(int64_t) * (size_t)*cap);
    }
    p->prompt[p->n] = xstrdup(a);
    p->target[p->n] = xstrdup(b);
    p->line[p->n] = line;
    p->n++;
}

void data_pairs_free(Pairs *p) {
    if (!p) return;
    for (int64_t i = 0; i < p->n; i++) {
        free(p->prompt[i]);
        free(p->target[i]);
    }
    free(p->prompt);
    free(p->target);
    free(p->line);
    memset(p, 0, sizeof *p);
}

static int load_jsonl(const char *path, int64_t max, Pairs *out, Err *e) {
    size_t len;
    char *text = util_read_file(path, &len, e);
    if (!text) return err_suffix(e, " (hint: data.pairs must name an existing file)");
    int64_t cap = 0, lineno = 0;
    char *p = text, *end = text + len;
    int rc = 0;
    while (p < end && (max <= 0 || out->n < max)) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        lineno++;
        char *s = p;
        while (s < le && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
        if (s < le && memchr(p, 0, (size_t)(le - p))) {
            rc = err_set(e, "%s:%lld: contains a NUL byte", path, (long long)lineno);
            break;
        }
        if (s < le) {
            const char *jend = NULL;
            cJSON *j = cJSON_ParseWithLengthOpts(p, (size_t)(le - p), &jend, 0);
            if (j && jend) { /* only white space may follow the object */
                for (const char *q = jend; q < le; q++)
                    if (*q != ' ' && *q != '\t' && *q != '\r') {
                        cJSON_Delete(j);
                        j = NULL;
                        break;
                    }
            }
            int has_nul_escape = j && memmem(p, (size_t)(le - p), "\\u0000", 6) != NULL;
            cJSON *a = j ? cJSON_GetObjectItemCaseSensitive(j, "prompt") : NULL;
            cJSON *b = j ? cJSON_GetObjectItemCaseSensitive(j, "target") : NULL;
            if (!j) rc = err_set(e, "%s:%lld: malformed JSON%s", path, (long long)lineno,
                                 nl ? "" : " (truncated last line?)");
            else if (has_nul_escape) rc = err_set(e, "%s:%lld: a string contains \\u0000", path, (long long)lineno);
            else if (!cJSON_IsString(a) || !cJSON_IsString(b))
                rc = err_set(e, "%s:%lld: expected string fields \"prompt\" and \"target\"", path,
                             (long long)lineno);
            else if (strlen(a->valuestring) == 0 || strlen(b->valuestring) == 0)
                rc = err_set(e, "%s:%lld: empty prompt or target", path, (long long)lineno);
            else pairs_push(out, &cap, a->valuestring, b->valuestring, lineno);
            cJSON_Delete(j);
            if (rc) break;
        }
        p = nl ? nl + 1 : end;
    }
    free(text);
    if (rc == 0 && out->n == 0) rc = err_set(e, "%s: no pairs found", path);
    if (rc) data_pairs_free(out);
    return rc;
}

static int load_h5(const char *path, int64_t max, Pairs *out, Err *e) {
    StoreFile *f = store_open(path, 0, e);
    if (!f) return -1;
    int64_t cap = 0;
    int rc = 0;
    if (store_exists(f, "/pairs/prompt")) {
        int64_t na = 0, nb = 0;
        char **a = store_read_strings(f, "/pairs/prompt", &na, e);
        char **b = a ? store_read_strings(f, "/pairs/target", &nb, e) : NULL;
        if (!a || !b) rc = -1;
        else if (na != nb)
            rc = err_set(e, "%s: /pairs/prompt has %lld rows but /pairs/target %lld", path,
                         (long long)na, (long long)nb);
        else
            for (int64_t i = 0; i < na && (max <= 0 || out->n < max) && rc == 0; i++) {
                if (!a[i][0] || !b[i][0])
                    rc = err_set(e, "%s: /pairs row %lld has an empty prompt or target", path, (long long)i);
                else pairs_push(out, &cap, a[i], b[i], i);
            }
        store_free_strings(a, na);
        store_free_strings(b, nb);
    } else if (store_exists(f, "/inputs/train") && store_exists(f, "/teacher/paraphrases")) {
        int64_t ni = 0, np = 0, nr = 0;
        int nd;
        int64_t dims[4];
        char **in = store_read_strings(f, "/inputs/train", &ni, e);
        char **para = in ? store_read_strings(f, "/teacher/paraphrases", &np, e) : NULL;
        int64_t *refused = NULL;
        if (para && store_exists(f, "/teacher/refused"))
            refused = store_read_alloc(f, "/teacher/refused", 'l', &nr, e);
        if (!in || !para || store_dims(f, "/teacher/paraphrases", &nd, dims, e) != 0) rc = -1;
        else if (nd != 2 || dims[0] != ni || (refused && nr != ni))
            rc = err_set(e, "%s: /teacher/paraphrases must be [%lld, N] matching /inputs/train", path,
                         (long long)ni);
        else
            for (int64_t i = 0; i < ni && (max <= 0 || out->n < max); i++) {
                if (refused && refused[i]) continue;
                for (int64_t k = 0; k < dims[1] && (max <= 0 || out->n < max); k++) {
                    const char *t = para[i * dims[1] + k];
                    if (t[0]) pairs_push(out, &cap, in[i], t, i);
                }
            }
        store_free_strings(in, ni);
        store_free_strings(para, np);
        free(refused);
    } else {
        rc = err_set(e, "%s: no /pairs/{prompt,target} and no /inputs/train + /teacher/paraphrases "
                        "(hint: run hdistill teach first, or give a JSONL file)",
                     path);
    }
    store_close(f, NULL);
    if (rc == 0 && out->n == 0) rc = err_set(e, "%s: no pairs found", path);
    if (rc) data_pairs_free(out);
    return rc;
}

int data_load_pairs(const char *path, int64_t max, Pairs *out, Err *e) {
    memset(out, 0, sizeof *out);
    if (!path || !*path) return err_set(e, "data.pairs is not set (hint: --set data.pairs=FILE.jsonl)");
    if (util_ends_with(path, ".h5") || util_ends_with(path, ".hdf5")) return load_h5(path, max, out, e);
    return load_jsonl(path, max, out, e);
}

/* ---- examples ---------------------------------------------------------------- */

void data_examples_free(Examples *x) {
    if (!x) return;
    free(x->off);
    free(x->ids);
    free(x->n_prompt);
    memset(x, 0, sizeof *x);
}

int data_tokenize(const Pairs *p, const Tokenizer *tok, const int *sep, int n_sep, int T,
                  int skip_too_long, const char *source, Examples *out, int64_t *skipped, Err *e) {
    memset(out, 0, sizeof *out);
    out->off = xmalloc(sizeof(int64_t) * (size_t)(p->n + 1));
    out->n_prompt = xmalloc(sizeof(int32_t) * (size_t)(p->n ? p->n : 1));
    IntVec all = {0}, one = {0};
    int64_t skip = 0;
    out->off[0] = 0;
    int eot = tokenizer_eot_id(tok);
    for (int64_t i = 0; i < p->n; i++) {
        one.n = 0;
        tokenizer_encode(tok, p->prompt[i], strlen(p->prompt[i]), &one);
        for (int k = 0; k < n_sep; k++) intvec_push(&one, sep[k]);
        int np = (int)one.n;
        tokenizer_encode(tok, p->target[i], strlen(p->target[i]), &one);
        intvec_push(&one, eot);
        if ((int64_t)one.n - 1 > T) {
            if (!skip_too_long) {
                err_set(e,
                        "%s:%lld: pair needs %zu positions but train.seq_len is %d (hint: raise "
                        "train.seq_len, or --set data.too_long=skip)",
                        source, (long long)p->line[i], one.n - 1, T);
                intvec_free(&all);
                intvec_free(&one);
                data_examples_free(out);
                return -1;
            }
            skip++;
            continue;
        }
        int64_t k = out->n++;
        out->n_prompt[k] = np;
        for (size_t j = 0; j < one.n; j++) intvec_push(&all, one.a[j]);
        out->off[k + 1] = (int64_t)all.n;
    }
    intvec_free(&one);
    out->ids = xmalloc(sizeof(int32_t) * (all.n ? all.n : 1));
    for (size_t j = 0; j < all.n; j++) out->ids[j] = all.a[j];
    intvec_free(&all);
    if (skipped) *skipped = skip;
    if (out->n == 0) {
        data_examples_free(out);
        return err_set(e, "%s: no usable pairs (all longer than train.seq_len %d)", source, T);
    }
    return 0;
}

void data_examples_bcast(Examples *x) {
    int64_t hdr[2] = {x->n, x->n ? x->off[x->n] : 0};
    comm_bcast_i64(hdr, 2);
    if (util_rank() != 0) {
        data_examples_free(x);
        x->n = hdr[0];
        x->off = xmalloc(sizeof(int64_t) * (size_t)(hdr[0] + 1));
        x->ids = xmalloc(sizeof(int32_t) * (size_t)(hdr[1] ? hdr[1] : 1));
        x->n_prompt = xmalloc(sizeof(int32_t) * (size_t)(hdr[0] ? hdr[0] : 1));
    }
    comm_bcast(x->off, sizeof(int64_t) * (size_t)(hdr[0] + 1));
    comm_bcast(x->ids, sizeof(int32_t) * (size_t)hdr[1]);
    comm_bcast(x->n_prompt, sizeof(int32_t) * (size_t)hdr[0]);
}

void data_tokenizer_bcast(TokenizerData *td) {
    int64_t hdr[11] = {td->n_vocab, td->n_merges, td->eot_id, td->sep_id,
                       td->n_vocab ? td->offsets[td->n_vocab] : 0, td->kind, td->pattern,
                       td->digits, td->normalizer, td->ignore_merges,
                       td->source ? td->source_len : -1};
    comm_bcast_i64(hdr, 11);
    if (util_rank() != 0) {
        tokenizer_data_free(td);
        td->n_vocab = (int)hdr[0];
        td->n_merges = (int)hdr[1];
        td->eot_id = (int)hdr[2];
        td->sep_id = (int)hdr[3];
        td->kind = (int)hdr[5];
        td->pattern = (int)hdr[6];
        td->digits = (int)hdr[7];
        td->normalizer = (int)hdr[8];
        td->ignore_merges = (int)hdr[9];
        td->offsets = xmalloc(sizeof(int64_t) * (size_t)(hdr[0] + 1));
        td->blob = xmalloc((size_t)(hdr[4] ? hdr[4] : 1));
        td->special = xmalloc((size_t)(hdr[0] ? hdr[0] : 1));
        td->merges = xmalloc(sizeof(int32_t) * (size_t)(2 * hdr[1] + 1));
        if (hdr[10] >= 0) {
            td->source = xmalloc((size_t)hdr[10] + 1);
            td->source_len = hdr[10];
        }
    }
    comm_bcast(td->offsets, sizeof(int64_t) * (size_t)(hdr[0] + 1));
    comm_bcast(td->blob, (size_t)hdr[4]);
    comm_bcast(td->special, (size_t)hdr[0]);
    comm_bcast(td->merges, sizeof(int32_t) * (size_t)(2 * hdr[1]));
    if (hdr[10] >= 0) comm_bcast(td->source, (size_t)hdr[10] + 1);
}

static void examples_subset(const Examples *all, const uint8_t *take, int64_t count, Examples *o) {
    memset(o, 0, sizeof *o);
    o->off = xmalloc(sizeof(int64_t) * (size_t)(count + 1));
    o->n_prompt = xmalloc(sizeof(int32_t) * (size_t)(count ? count : 1));
    int64_t tot = 0;
    for (int64_t i = 0; i < all->n; i++)
        if (take[i]) tot += all->off[i + 1] - all->off[i];
    o->ids = xmalloc(sizeof(int32_t) * (size_t)(tot ? tot : 1));
    o->off[0] = 0;
    for (int64_t i = 0; i < all->n; i++) {
        if (!take[i]) continue;
        int64_t len = all->off[i + 1] - all->off[i];
        memcpy(o->ids + o->off[o->n], all->ids + all->off[i], sizeof(int32_t) * (size_t)len);
        o->n_prompt[o->n] = all->n_prompt[i];
        o->off[o->n + 1] = o->off[o->n] + len;
        o->n++;
    }
}

void data_examples_pick(const Examples *all, const int64_t *idx, int64_t n, Examples *o) {
    memset(o, 0, sizeof *o);
    o->off = xmalloc(sizeof(int64_t) * (size_t)(n + 1));
    o->n_prompt = xmalloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    int64_t tot = 0;
    for (int64_t i = 0; i < n; i++) tot += all->off[idx[i] + 1] - all->off[idx[i]];
    o->ids = xmalloc(sizeof(int32_t) * (size_t)(tot ? tot : 1));
    o->off[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = idx[i], len = all->off[k + 1] - all->off[k];
        memcpy(o->ids + o->off[i], all->ids + all->off[k], sizeof(int32_t) * (size_t)len);
        o->n_prompt[i] = all->n_prompt[k];
        o->off[i + 1] = o->off[i] + len;
    }
    o->n = n;
}

void data_split(const Examples *all, double frac, uint64_t seed, Examples *train, Examples *val) {
    uint8_t *is_val = xcalloc((size_t)(all->n ? all->n : 1), 1);
    uint8_t *is_tr = xcalloc((size_t)(all->n ? all->n : 1), 1);
    int64_t nv = 0;
    for (int64_t i = 0; i < all->n; i++) {
        double u = (double)(rng_derive(seed, 0x5e11, (uint64_t)i) >> 11) * (1.0 / 9007199254740992.0);
        is_val[i] = frac > 0 && u < frac;
        is_tr[i] = !is_val[i];
        nv += is_val[i];
    }
    /* never leave training empty */
    if (nv == all->n && all->n > 0) {
        is_val[0] = 0, is_tr[0] = 1;
        nv--;
    }
    examples_subset(all, is_tr, all->n - nv, train);
    examples_subset(all, is_val, nv, val);
    free(is_val);
    free(is_tr);
}

/* ---- packer ---------------------------------------------------------------------- */

#define STREAM_SHUFFLE 0x5bu

static void make_perm(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch, int shuffle) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    if (!shuffle) return;
    Rng r;
    rng_seed(&r, rng_derive(seed, STREAM_SHUFFLE, (uint64_t)epoch));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

void packer_init(Packer *p, const Examples *ex, uint64_t seed, int T, int shuffle) {
    memset(p, 0, sizeof *p);
    p->ex = ex;
    p->seed = seed;
    p->T = T;
    p->shuffle = shuffle;
    p->perm = xmalloc(sizeof(int64_t) * (size_t)(ex->n ? ex->n : 1));
    p->perm_epoch = -1;
}

void packer_free(Packer *p) {
    if (!p) return;
    free(p->perm);
    p->perm = NULL;
}

static int64_t current_example(Packer *p) {
    if (p->one_pass && (p->cur.epoch > 0 || p->cur.index >= p->ex->n)) return -1;
    if (p->cur.index >= p->ex->n) {
        p->cur.epoch++;
        p->cur.index = 0;
    }
    if (p->perm_epoch != p->cur.epoch) {
        make_perm(p->perm, p->ex->n, p->seed, p->cur.epoch, p->shuffle);
        p->perm_epoch = p->cur.epoch;
    }
    return p->perm[p->cur.index];
}

int64_t packer_next_rows(Packer *p, int nrows, int *tok, int *pos, int *seg, int *tgt, int pad_id) {
    return packer_next_rows_ex(p, nrows, tok, pos, seg, tgt, NULL, pad_id);
}

int64_t packer_next_rows_ex(Packer *p, int nrows, int *tok, int *pos, int *seg, int *tgt, int *exid, int pad_id) {
    const Examples *ex = p->ex;
    int T = p->T;
    int64_t nloss = 0;
    for (int r = 0; r < nrows; r++) {
        int *tk = tok + (size_t)r * T, *ps = pos + (size_t)r * T, *sg = seg + (size_t)r * T,
            *tg = tgt + (size_t)r * T;
        int fill = 0;
        for (;;) {
            int64_t k = current_example(p);
            if (k < 0) break; /* one pass: no examples left */
            int need = (int)(ex->off[k + 1] - ex->off[k]) - 1;
            if (fill + need > T) break;
            const int32_t *ids = ex->ids + ex->off[k];
            for (int j = 0; j < need; j++) {
                tk[fill + j] = ids[j];
                ps[fill + j] = j;
                sg[fill + j] = fill;
                int has = j + 1 >= ex->n_prompt[k];
                tg[fill + j] = has ? ids[j + 1] : -1;
                if (exid) exid[(size_t)r * T + fill + j] = (int)k;
                nloss += has;
            }
            fill += need;
            p->cur.index++;
        }
        CHECK(fill > 0 || p->one_pass, "an example longer than the row survived tokenization");
        for (int j = fill; j < T; j++) {
            if (exid) exid[(size_t)r * T + j] = -1;
            tk[j] = pad_id;
            ps[j] = 0;
            sg[j] = j;
            tg[j] = -1;
        }
    }
    return nloss;
}

int64_t packer_rows_for_epochs(const Examples *ex, uint64_t seed, int T, int shuffle, double epochs) {
    Packer p;
    packer_init(&p, ex, seed, T, shuffle);
    double target = epochs * (double)ex->n;
    int64_t rows = 0;
    for (;;) {
        double done = (double)p.cur.epoch * (double)ex->n + (double)p.cur.index;
        if (done >= target) break;
        int fill = 0;
        for (;;) {
            int64_t k = current_example(&p);
            int need = (int)(ex->off[k + 1] - ex->off[k]) - 1;
            if (fill + need > T) break;
            fill += need;
            p.cur.index++;
        }
        rows++;
    }
    packer_free(&p);
    return rows;
}
