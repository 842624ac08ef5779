/* dataset -- training pairs from files, and examples and tokenizers sent to
 * every rank; see include/io/dataset.h. */
#include "io/dataset.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/comm.h"
#include "io/store.h"

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

/* /teacher/truncated_paraphrases of f (NULL when absent or unreadable: e set then) */
static char **truncated_items(StoreFile *f, const char *path, int64_t want, Err *e) {
    if (!store_exists(f, "/teacher/truncated_paraphrases")) return NULL;
    int64_t n = 0;
    char **t = store_read_strings(f, "/teacher/truncated_paraphrases", &n, e);
    if (t && n != want) {
        store_free_strings(t, n);
        err_set(e, "%s: /teacher/truncated_paraphrases has %lld items, /teacher/paraphrases %lld", path, (long long)n,
                (long long)want);
        return NULL;
    }
    return t;
}

static int load_h5(const char *path, int64_t max, unsigned flags, Pairs *out, Err *e) {
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
        char **cut = para && (flags & DATASET_TRUNCATED) ? truncated_items(f, path, np, e) : NULL;
        if (para && (flags & DATASET_TRUNCATED) && !cut && store_exists(f, "/teacher/truncated_paraphrases")) rc = -1;
        else if (!in || !para || store_dims(f, "/teacher/paraphrases", &nd, dims, e) != 0) rc = -1;
        else if (nd != 2 || dims[0] != ni || (refused && nr != ni))
            rc = err_set(e, "%s: /teacher/paraphrases must be [%lld, N] matching /inputs/train", path,
                         (long long)ni);
        else
            for (int64_t i = 0; i < ni && (max <= 0 || out->n < max); i++) {
                if (refused && refused[i]) continue;
                for (int64_t k = 0; k < dims[1] && (max <= 0 || out->n < max); k++) {
                    const char *t = para[i * dims[1] + k];
                    if (!t[0] && cut) t = cut[i * dims[1] + k];
                    if (t[0]) pairs_push(out, &cap, in[i], t, i);
                }
            }
        store_free_strings(in, ni);
        store_free_strings(para, np);
        if (cut) store_free_strings(cut, np);
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

int dataset_load_pairs_with(const char *path, int64_t max, unsigned flags, Pairs *out, Err *e) {
    memset(out, 0, sizeof *out);
    if (!path || !*path) return err_set(e, "data.pairs is not set (hint: --set data.pairs=FILE.jsonl)");
    if (util_ends_with(path, ".h5") || util_ends_with(path, ".hdf5")) return load_h5(path, max, flags, out, e);
    return load_jsonl(path, max, out, e);
}

int dataset_load_pairs(const char *path, int64_t max, Pairs *out, Err *e) {
    return dataset_load_pairs_with(path, max, 0, out, e);
}

/* ---- examples ---------------------------------------------------------------- */

void dataset_bcast_examples(Examples *x) {
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

void dataset_bcast_tokenizer(TokenizerData *td) {
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

