/* data -- pairs and tokenized examples; see include/engine/data.h. */
#include "engine/data.h"

#include <stdlib.h>
#include <string.h>

/* ---- pairs -------------------------------------------------------------- */

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

void data_examples_free(Examples *x) {
    if (!x) return;
    free(x->off);
    free(x->ids);
    free(x->n_prompt);
    memset(x, 0, sizeof *x);
}

int data_tokenize(const Pairs *p, const Tokenizer *tok, const PromptFormat *fmt, int T, int skip_too_long,
                  const char *source, Examples *out, int64_t *skipped, Err *e) {
    memset(out, 0, sizeof *out);
    out->off = xmalloc(sizeof(int64_t) * (size_t)(p->n + 1));
    out->n_prompt = xmalloc(sizeof(int32_t) * (size_t)(p->n ? p->n : 1));
    IntVec all = {0}, one = {0};
    int64_t skip = 0;
    out->off[0] = 0;
    for (int64_t i = 0; i < p->n; i++) {
        one.n = 0;
        prompt_encode(fmt, tok, p->prompt[i], &one);
        int np = (int)one.n;
        prompt_encode_answer(fmt, tok, p->target[i], &one);
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
