/* tokenizer -- see include/engine/tokenizer.h.  Byte-level BPE: GPT-2's
 * pre-tokenizer and Llama 3's / Qwen2's (hand-written matchers for their
 * regular expressions), the merge loops, training with incremental pair
 * counts, GPT-2 file import, Hugging Face tokenizer.json import (NFC is
 * base/nfc.c).
 *
 * Encoding a pre-tokenized chunk of the GPT-2 kind follows GPT-2's
 * encoder.py exactly: find the adjacent pair with the lowest merge rank,
 * merge all its non-overlapping occurrences left to right, repeat.  Short
 * chunks run that loop as written (bpe_merge_naive); long ones use a heap of
 * (rank, position) that replays the same passes in O(n log n)
 * (bpe_merge_heap), so a megabyte without a space is not quadratic.  The
 * Hugging Face kind merges one pair at a time as Hugging Face tokenizers
 * does (hf_merge_naive, hf_merge_heap); the two orders differ only when a
 * merge makes a pair of lower rank than itself.
 *
 * Training (Sennrich et al. 2016, "Neural Machine Translation of Rare Words
 * with Subword Units") counts unique chunks, keeps for every pair its count
 * and the chunks it occurs in, and after each merge updates only the chunks
 * that held the merged pair.  A max-heap with lazy deletion picks the most
 * frequent pair.
 *
 * All state used by encode is read-only after construction: encode is
 * thread-safe without locks (its scratch space is per call).
 */
#include "engine/tokenizer.h"

#include <cJSON.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/nfc.h"
#include "base/unicode.h"

/* Chunks up to this many bytes use the quadratic reference merge loop. */
#define BPE_NAIVE_MAX 32

static const char EOT_NAME[] = "<|endoftext|>";
static const char SEP_NAME[] = "<|sep|>";

/* ---- hashing --------------------------------------------------------------- */

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0x243f6a8885a308d3ULL ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = hash_u64(h ^ w);
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    return hash_u64(h ^ w ^ 0x13198a2e03707344ULL);
}

static uint64_t pair_key(int a, int b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

/* ---- U64Map: uint64 key -> int64 value, open addressing ------------------- */

#define U64_EMPTY UINT64_MAX

typedef struct {
    uint64_t *keys;
    int64_t *vals;
    size_t cap, n; /* cap is a power of two */
} U64Map;

static void u64map_init(U64Map *m, size_t expect) {
    size_t cap = 16;
    while (cap < 2 * expect + 2) cap *= 2;
    m->keys = xmalloc(cap * sizeof *m->keys);
    m->vals = xmalloc(cap * sizeof *m->vals);
    memset(m->keys, 0xff, cap * sizeof *m->keys);
    m->cap = cap;
    m->n = 0;
}

static void u64map_free(U64Map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t u64map_slot(const U64Map *m, uint64_t key) {
    size_t mask = m->cap - 1, i = (size_t)hash_u64(key) & mask;
    while (m->keys[i] != U64_EMPTY && m->keys[i] != key) i = (i + 1) & mask;
    return i;
}

/* 1 and *val if present, else 0. */
static int u64map_get(const U64Map *m, uint64_t key, int64_t *val) {
    size_t i = u64map_slot(m, key);
    if (m->keys[i] == U64_EMPTY) return 0;
    *val = m->vals[i];
    return 1;
}

static void u64map_put(U64Map *m, uint64_t key, int64_t val) {
    CHECK(key != U64_EMPTY, "reserved key");
    if (2 * (m->n + 1) > m->cap) {
        U64Map g;
        u64map_init(&g, m->cap);
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i] != U64_EMPTY) {
                size_t j = u64map_slot(&g, m->keys[i]);
                g.keys[j] = m->keys[i];
                g.vals[j] = m->vals[i];
            }
        g.n = m->n;
        u64map_free(m);
        *m = g;
    }
    size_t i = u64map_slot(m, key);
    if (m->keys[i] == U64_EMPTY) {
        m->keys[i] = key;
        m->n++;
    }
    m->vals[i] = val;
}

/* ---- BytesMap: byte string -> int, open addressing, owns its keys --------- */

typedef struct {
    uint64_t hash;
    int64_t off; /* into arena */
    uint32_t len;
    int val;
} BytesEntry;

typedef struct {
    int32_t *slots; /* entry index, -1 = empty */
    size_t cap;     /* power of two */
    BytesEntry *e;
    size_t n, ecap;
    ByteBuf arena;
} BytesMap;

static void bytesmap_init(BytesMap *m, size_t expect) {
    memset(m, 0, sizeof *m);
    m->cap = 16;
    while (m->cap < 2 * expect + 2) m->cap *= 2;
    m->slots = xmalloc(m->cap * sizeof *m->slots);
    memset(m->slots, 0xff, m->cap * sizeof *m->slots);
}

static void bytesmap_free(BytesMap *m) {
    free(m->slots);
    free(m->e);
    bytebuf_free(&m->arena);
    memset(m, 0, sizeof *m);
}

static size_t bytesmap_slot(const BytesMap *m, const uint8_t *p, size_t n, uint64_t h) {
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    for (;; i = (i + 1) & mask) {
        int32_t k = m->slots[i];
        if (k < 0) return i;
        const BytesEntry *e = &m->e[k];
        if (e->hash == h && e->len == n && memcmp(m->arena.a + e->off, p, n) == 0) return i;
    }
}

/* Entry index of p[0..n), or -1. */
static int bytesmap_find(const BytesMap *m, const uint8_t *p, size_t n) {
    return m->slots[bytesmap_slot(m, p, n, hash_bytes(p, n))];
}

/* Adds p[0..n) -> val (must be absent); returns its entry index. */
static int bytesmap_add(BytesMap *m, const uint8_t *p, size_t n, int val) {
    CHECK(n <= UINT32_MAX && m->n < INT32_MAX, "key too long or map too full");
    if (2 * (m->n + 1) > m->cap) {
        free(m->slots);
        m->cap *= 2;
        m->slots = xmalloc(m->cap * sizeof *m->slots);
        memset(m->slots, 0xff, m->cap * sizeof *m->slots);
        size_t mask = m->cap - 1;
        for (size_t k = 0; k < m->n; k++) {
            size_t i = (size_t)m->e[k].hash & mask;
            while (m->slots[i] >= 0) i = (i + 1) & mask;
            m->slots[i] = (int32_t)k;
        }
    }
    uint64_t h = hash_bytes(p, n);
    size_t i = bytesmap_slot(m, p, n, h);
    CHECK(m->slots[i] < 0, "bytesmap_add: key already present");
    if (m->n == m->ecap) {
        m->ecap = m->ecap ? 2 * m->ecap : 64;
        m->e = xrealloc(m->e, m->ecap * sizeof *m->e);
    }
    BytesEntry *e = &m->e[m->n];
    e->hash = h;
    e->off = (int64_t)m->arena.n;
    e->len = (uint32_t)n;
    e->val = val;
    bytebuf_put(&m->arena, p, n);
    m->slots[i] = (int32_t)m->n;
    return (int)m->n++;
}

/* ---- added tokens matched in the text ------------------------------------------ */

/* The non-special added tokens of one phase (raw input or normalized text),
 * grouped by first byte, longest first, so the first that matches at a
 * position is the longest (Hugging Face: leftmost-longest). */
typedef struct {
    int32_t *ids;
    int32_t first[257]; /* tokens starting with byte b: ids[first[b] .. first[b + 1]) */
    int n;
} AddedSet;

typedef struct {
    int32_t first, len, id;
} AddedKey;

static int added_cmp(const void *x, const void *y) {
    const AddedKey *a = x, *b = y;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* The added tokens whose flags & (TOKEN_ADDED | TOKEN_NORMALIZED) == want. */
static void addedset_build(AddedSet *a, const uint8_t *flags, int V, const int64_t *off,
                           const uint8_t *blob, int want) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < V; i++)
        if ((flags[i] & (TOKEN_ADDED | TOKEN_NORMALIZED)) == want) a->n++;
    AddedKey *keys = xmalloc((size_t)(a->n ? a->n : 1) * sizeof *keys);
    int k = 0;
    for (int i = 0; i < V; i++)
        if ((flags[i] & (TOKEN_ADDED | TOKEN_NORMALIZED)) == want)
            keys[k++] = (AddedKey){blob[off[i]], (int32_t)(off[i + 1] - off[i]), i};
    qsort(keys, (size_t)a->n, sizeof *keys, added_cmp);
    a->ids = xmalloc((size_t)(a->n ? a->n : 1) * sizeof *a->ids);
    for (int j = 0; j < a->n; j++) a->ids[j] = keys[j].id;
    int j = 0;
    for (int b = 0; b <= 256; b++) {
        while (j < a->n && keys[j].first < b) j++;
        a->first[b] = j;
    }
    free(keys);
}

/* ---- the tokenizer ----------------------------------------------------------- */

struct Tokenizer {
    int n_vocab;
    int64_t *offsets; /* n_vocab + 1 */
    uint8_t *blob;
    uint8_t *special; /* n_vocab TOKEN_* flags */
    int n_merges;
    int32_t *merges; /* 2 * n_merges */
    int eot_id, sep_id;
    int kind, pattern, digits, normalizer, ignore_merges;
    char *source; /* tokenizer.json verbatim (HF kind), or NULL */
    int64_t source_len;
    int byte_id[256]; /* the token of each single byte */
    U64Map ranks;     /* pair_key(left, right) -> (rank << 32) | result id */
    BytesMap model;   /* bytes -> id of the tokens merges may produce */
    AddedSet added_raw, added_norm; /* TOKEN_ADDED without / with TOKEN_NORMALIZED */
};

void tokenizer_data_free(TokenizerData *d) {
    if (!d) return;
    free(d->offsets);
    free(d->blob);
    free(d->special);
    free(d->merges);
    free(d->source);
    memset(d, 0, sizeof *d);
    d->eot_id = d->sep_id = -1;
}

void tokenizer_destroy(Tokenizer *t) {
    if (!t) return;
    free(t->offsets);
    free(t->blob);
    free(t->special);
    free(t->merges);
    free(t->source);
    u64map_free(&t->ranks);
    bytesmap_free(&t->model);
    free(t->added_raw.ids);
    free(t->added_norm.ids);
    free(t);
}

int tokenizer_vocab_size(const Tokenizer *t) { return t->n_vocab; }
int tokenizer_eot_id(const Tokenizer *t) { return t->eot_id; }
int tokenizer_sep_id(const Tokenizer *t) { return t->sep_id; }
int tokenizer_kind(const Tokenizer *t) { return t->kind; }

int tokenizer_set_eot(Tokenizer *t, int id) {
    if (id < 0 || id >= t->n_vocab || !(t->special[id] & TOKEN_SPECIAL)) return -1;
    t->eot_id = id;
    return 0;
}

const uint8_t *tokenizer_token_bytes(const Tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = (size_t)(t->offsets[id + 1] - t->offsets[id]);
    return t->blob + t->offsets[id];
}

static size_t tok_len(const Tokenizer *t, int id) {
    return (size_t)(t->offsets[id + 1] - t->offsets[id]);
}

int tokenizer_token_id(const Tokenizer *t, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < t->n_vocab; i++)
        if (t->special[i] && tok_len(t, i) == n && memcmp(t->blob + t->offsets[i], name, n) == 0)
            return i;
    int k = n ? bytesmap_find(&t->model, (const uint8_t *)name, n) : -1;
    return k >= 0 ? t->model.e[k].val : -1;
}

/* Valid TOKEN_* flags of one token for the kind: 0 if fine. */
static int flags_ok(int kind, uint8_t f) {
    if (f == 0 || f == TOKEN_SPECIAL) return 1;
    return kind == TOKENIZER_HF && (f & TOKEN_ADDED) &&
           !(f & ~(TOKEN_ADDED | TOKEN_NORMALIZED | TOKEN_IN_MODEL));
}

/* The kind and options checks of tokenizer_from_data: 0, or -1 with e set. */
static int data_check_options(const TokenizerData *d, Err *e) {
    if (d->kind != TOKENIZER_GPT2 && d->kind != TOKENIZER_HF)
        return err_set(e, "tokenizer data: unknown kind %d", d->kind);
    if (d->pattern < TOKENIZER_PATTERN_GPT2 || d->pattern > TOKENIZER_PATTERN_QWEN2 ||
        d->digits < TOKENIZER_DIGITS_NONE || d->digits > TOKENIZER_DIGITS_RUNS ||
        d->normalizer < TOKENIZER_NORM_NONE || d->normalizer > TOKENIZER_NORM_NFC ||
        (d->ignore_merges != 0 && d->ignore_merges != 1))
        return err_set(e, "tokenizer data: bad options (pattern %d, digits %d, normalizer %d, "
                          "ignore_merges %d)",
                       d->pattern, d->digits, d->normalizer, d->ignore_merges);
    if (d->kind == TOKENIZER_GPT2 && (d->pattern || d->digits || d->normalizer || d->ignore_merges))
        return err_set(e, "tokenizer data: a GPT-2 kind tokenizer has Hugging Face options");
    if (d->source && (d->source_len < 0 || d->source[d->source_len] != 0))
        return err_set(e, "tokenizer data: the tokenizer.json text is not NUL-terminated");
    for (int i = 0; i < d->n_vocab; i++)
        if (!flags_ok(d->kind, d->special[i]))
            return err_set(e, "tokenizer data: token %d has flags %d, invalid for its kind", i,
                           d->special[i]);
    return 0;
}

/* The header checks of tokenizer_from_data: 0, or -1 with e set. */
static int data_check_header(const TokenizerData *d, Err *e) {
    if (!d || d->n_vocab < 257 || !d->offsets || !d->blob || !d->special)
        return err_set(e, "tokenizer data: vocabulary of %d ids is too small or missing "
                          "(need the 256 bytes and an end-of-text token)",
                       d ? d->n_vocab : 0);
    if (d->n_merges < 0 || (d->n_merges > 0 && !d->merges))
        return err_set(e, "tokenizer data: bad merge count %d", d->n_merges);
    if (d->offsets[0] != 0)
        return err_set(e, "tokenizer data: offsets[0] is %lld, not 0", (long long)d->offsets[0]);
    for (int i = 0; i < d->n_vocab; i++)
        if (d->offsets[i + 1] <= d->offsets[i])
            return err_set(e, "tokenizer data: token %d has no bytes (offsets not increasing)", i);
    if (data_check_options(d, e) != 0) return -1;
    if (d->eot_id < 0 || d->eot_id >= d->n_vocab || d->special[d->eot_id] != TOKEN_SPECIAL)
        return err_set(e, "tokenizer data: end-of-text id %d is not a special token", d->eot_id);
    if (d->sep_id != -1 &&
        (d->sep_id < 0 || d->sep_id >= d->n_vocab || d->special[d->sep_id] != TOKEN_SPECIAL))
        return err_set(e, "tokenizer data: separator id %d is not -1 or a special token",
                       d->sep_id);
    return 0;
}

/* 1 if token i is one merges can produce (and byte tokens come from). */
static int in_model(uint8_t f) { return f == 0 || (f & TOKEN_IN_MODEL); }

/* Fills t->model and t->byte_id; checks that model tokens have distinct
 * bytes (then a byte string names at most one, as in a string-keyed
 * vocabulary), that every byte has one, and that added tokens of a phase
 * have distinct text.  0, or -1 with e set. */
static int build_model_map(Tokenizer *t, Err *e) {
    bytesmap_init(&t->model, (size_t)t->n_vocab);
    BytesMap added;
    bytesmap_init(&added, 64);
    int rc = 0;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    for (int i = 0; i < t->n_vocab && rc == 0; i++) {
        size_t n = tok_len(t, i);
        const uint8_t *p = t->blob + t->offsets[i];
        uint8_t f = t->special[i];
        if (f & TOKEN_ADDED) {
            /* the phase (raw / normalized) is part of the key */
            ByteBuf key = {0};
            bytebuf_putc(&key, (char)(f & TOKEN_NORMALIZED));
            bytebuf_put(&key, p, n);
            int k = bytesmap_find(&added, (const uint8_t *)key.a, key.n);
            if (k >= 0)
                rc = err_set(e, "tokenizer data: added tokens %d and %d have the same text",
                             added.e[k].val, i);
            else
                bytesmap_add(&added, (const uint8_t *)key.a, key.n, i);
            bytebuf_free(&key);
        }
        if (rc || !in_model(f)) continue;
        int k = bytesmap_find(&t->model, p, n);
        if (k >= 0) {
            rc = err_set(e, "tokenizer data: tokens %d and %d have the same bytes",
                         t->model.e[k].val, i);
            break;
        }
        bytesmap_add(&t->model, p, n, i);
        if (n == 1) t->byte_id[p[0]] = i;
    }
    for (int b = 0; b < 256 && rc == 0; b++)
        if (t->byte_id[b] < 0)
            rc = err_set(e, "tokenizer data: no token for byte 0x%02x (a byte-level BPE needs all "
                            "256)",
                         b);
    bytesmap_free(&added);
    return rc;
}

/* Fills t->ranks from t->merges against t->model; 0, or -1 with e set. */
static int build_ranks(Tokenizer *t, Err *e) {
    u64map_init(&t->ranks, (size_t)t->n_merges);
    ByteBuf cat = {0};
    int rc = 0, V = t->n_vocab;
    for (int k = 0; k < t->n_merges && rc == 0; k++) {
        int a = t->merges[2 * k], b = t->merges[2 * k + 1];
        if (a < 0 || a >= V || b < 0 || b >= V || !in_model(t->special[a]) ||
            !in_model(t->special[b])) {
            rc = err_set(e, "tokenizer data: merge %d joins ids %d and %d, not both ordinary "
                            "tokens",
                         k, a, b);
            break;
        }
        cat.n = 0;
        bytebuf_put(&cat, t->blob + t->offsets[a], tok_len(t, a));
        bytebuf_put(&cat, t->blob + t->offsets[b], tok_len(t, b));
        int r = bytesmap_find(&t->model, (const uint8_t *)cat.a, cat.n);
        int64_t old;
        if (r < 0)
            rc = err_set(e, "tokenizer data: the result of merge %d (%d + %d) is not in the "
                            "vocabulary",
                         k, a, b);
        else if (u64map_get(&t->ranks, pair_key(a, b), &old))
            rc = err_set(e, "tokenizer data: merge %d repeats merge %d (%d + %d)", k,
                         (int)(old >> 32), a, b);
        else
            u64map_put(&t->ranks, pair_key(a, b), ((int64_t)k << 32) | (uint32_t)t->model.e[r].val);
    }
    bytebuf_free(&cat);
    return rc;
}

/* Checks d and builds the tokenizer; NULL with e set on inconsistency. */
Tokenizer *tokenizer_from_data(const TokenizerData *d, Err *e) {
    if (data_check_header(d, e) != 0) return NULL;
    int V = d->n_vocab;
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->n_vocab = V;
    t->n_merges = d->n_merges;
    t->eot_id = d->eot_id;
    t->sep_id = d->sep_id;
    t->kind = d->kind;
    t->pattern = d->pattern;
    t->digits = d->digits;
    t->normalizer = d->normalizer;
    t->ignore_merges = d->ignore_merges;
    size_t nb = (size_t)d->offsets[V];
    t->offsets = xmalloc((size_t)(V + 1) * sizeof *t->offsets);
    memcpy(t->offsets, d->offsets, (size_t)(V + 1) * sizeof *t->offsets);
    t->blob = xmalloc(nb);
    memcpy(t->blob, d->blob, nb);
    t->special = xmalloc((size_t)V);
    memcpy(t->special, d->special, (size_t)V);
    t->merges = xmalloc((size_t)(2 * (size_t)d->n_merges) * sizeof *t->merges);
    if (d->n_merges) memcpy(t->merges, d->merges, 2 * (size_t)d->n_merges * sizeof *t->merges);
    if (d->source) {
        t->source = xmalloc((size_t)d->source_len + 1);
        memcpy(t->source, d->source, (size_t)d->source_len + 1);
        t->source_len = d->source_len;
    }
    addedset_build(&t->added_raw, t->special, V, t->offsets, t->blob, TOKEN_ADDED);
    addedset_build(&t->added_norm, t->special, V, t->offsets, t->blob,
                   TOKEN_ADDED | TOKEN_NORMALIZED);
    if (build_model_map(t, e) != 0 || build_ranks(t, e) != 0) {
        tokenizer_destroy(t);
        return NULL;
    }
    return t;
}

void tokenizer_to_data(const Tokenizer *t, TokenizerData *d) {
    int V = t->n_vocab;
    size_t nb = (size_t)t->offsets[V];
    memset(d, 0, sizeof *d);
    d->n_vocab = V;
    d->offsets = xmalloc((size_t)(V + 1) * sizeof *d->offsets);
    memcpy(d->offsets, t->offsets, (size_t)(V + 1) * sizeof *d->offsets);
    d->blob = xmalloc(nb);
    memcpy(d->blob, t->blob, nb);
    d->special = xmalloc((size_t)V);
    memcpy(d->special, t->special, (size_t)V);
    d->n_merges = t->n_merges;
    d->merges = xmalloc(2 * (size_t)t->n_merges * sizeof *d->merges);
    if (t->n_merges) memcpy(d->merges, t->merges, 2 * (size_t)t->n_merges * sizeof *d->merges);
    d->eot_id = t->eot_id;
    d->sep_id = t->sep_id;
    d->kind = t->kind;
    d->pattern = t->pattern;
    d->digits = t->digits;
    d->normalizer = t->normalizer;
    d->ignore_merges = t->ignore_merges;
    if (t->source) {
        d->source = xmalloc((size_t)t->source_len + 1);
        memcpy(d->source, t->source, (size_t)t->source_len + 1);
        d->source_len = t->source_len;
    }
}

/* ---- pre-tokenizer ------------------------------------------------------------
 * A matcher for GPT-2's pattern, tried in its order at each position:
 *   's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+
 *   | \s+(?!\S) | \s+
 * The last two together: a whitespace run that ends the text is one chunk;
 * a longer run before a non-space gives back its last character (which then
 * starts the next chunk, e.g. " b"); a single whitespace character is a
 * chunk of its own. */

enum { CL_OTHER = 0, CL_LETTER = 1, CL_NUMBER = 2, CL_SPACE = 3 };

static int class_of_cp(uint32_t cp) {
    if (unicode_is_letter(cp)) return CL_LETTER;
    if (unicode_is_number(cp)) return CL_NUMBER;
    if (unicode_is_space(cp)) return CL_SPACE;
    return CL_OTHER;
}

/* the same classes for ASCII, without table lookups */
static inline int ascii_class(uint8_t c) {
    if ((c | 32) >= 'a' && (c | 32) <= 'z') return CL_LETTER;
    if (c >= '0' && c <= '9') return CL_NUMBER;
    if (c == ' ' || (c >= 9 && c <= 13)) return CL_SPACE;
    return CL_OTHER;
}

/* Class of the character at s[i] (i < len); *w = its byte length. */
static inline int class_at(const uint8_t *s, size_t len, size_t i, size_t *w) {
    if (s[i] < 128) {
        *w = 1;
        return ascii_class(s[i]);
    }
    uint32_t cp;
    *w = unicode_decode_utf8(s + i, len - i, &cp);
    return class_of_cp(cp);
}

/* End (exclusive) of the chunk that starts at s[i], i < len. */
static size_t pretok_end(const uint8_t *s, size_t len, size_t i) {
    size_t w;
    if (s[i] == '\'' && i + 1 < len) {
        uint8_t c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if (i + 2 < len) {
            uint8_t c2 = s[i + 2];
            if ((c == 'r' && c2 == 'e') || (c == 'v' && c2 == 'e') || (c == 'l' && c2 == 'l'))
                return i + 3;
        }
    }
    size_t j = i;
    if (s[i] == ' ' && i + 1 < len && class_at(s, len, i + 1, &w) != CL_SPACE) j = i + 1;
    int cl = class_at(s, len, j, &w);
    if (cl != CL_SPACE) {
        size_t k = j + w;
        while (k < len && class_at(s, len, k, &w) == cl) k += w;
        return k;
    }
    /* whitespace run from i: remember where its last character starts */
    size_t k = i, last = i, nchar = 0;
    while (k < len && class_at(s, len, k, &w) == CL_SPACE) {
        last = k;
        k += w;
        nchar++;
    }
    if (k == len || nchar == 1) return k;
    return last;
}

/* ---- Llama 3 and Qwen2 patterns -------------------------------------------------
 * A matcher for
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,M}
 *   |  ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 * with M = 3 (Llama 3) or 1 (Qwen2: \p{N}), tried in order at each position:
 *  - contractions in any case; Oniguruma (Hugging Face's regex engine) folds
 *    U+017F LATIN SMALL LETTER LONG S to s, so 'ſ is one too;
 *  - a letter run, with one leading character that is not CR, LF, a letter
 *    or a number (" word", "\tword", "(word", "'word");
 *  - one to M numbers;
 *  - an "other" run (after an optional space), then any CR/LF characters;
 *  - a whitespace run up to and including its last CR or LF;
 *  - else whitespace as in GPT-2's pattern. */

static inline int is_crlf(uint8_t c) { return c == '\r' || c == '\n'; }
static inline uint8_t ascii_lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* End of a case-insensitive contraction at s[i] == '\'', or 0. */
static size_t contraction_end_ci(const uint8_t *s, size_t len, size_t i) {
    if (i + 1 >= len) return 0;
    uint8_t c = ascii_lower(s[i + 1]);
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
    if (i + 2 >= len) return 0;
    if (s[i + 1] == 0xC5 && s[i + 2] == 0xBF) return i + 3; /* U+017F */
    uint8_t c2 = ascii_lower(s[i + 2]);
    if ((c == 'r' && c2 == 'e') || (c == 'v' && c2 == 'e') || (c == 'l' && c2 == 'l')) return i + 3;
    return 0;
}

/* End of the run of class cl that starts at k. */
static size_t run_end(const uint8_t *s, size_t len, size_t k, int cl) {
    size_t w;
    while (k < len && class_at(s, len, k, &w) == cl) k += w;
    return k;
}

/* End (exclusive) of the chunk that starts at s[i], i < len; max_num is M. */
static size_t pretok_end_split(const uint8_t *s, size_t len, size_t i, int max_num) {
    size_t w, w2;
    if (s[i] == '\'') {
        size_t k = contraction_end_ci(s, len, i);
        if (k) return k;
    }
    int cl = class_at(s, len, i, &w);
    if (cl == CL_LETTER) return run_end(s, len, i + w, CL_LETTER);
    if (cl != CL_NUMBER && !is_crlf(s[i]) && i + w < len &&
        class_at(s, len, i + w, &w2) == CL_LETTER)
        return run_end(s, len, i + w + w2, CL_LETTER);
    if (cl == CL_NUMBER) {
        size_t k = i + w;
        for (int n = 1; n < max_num && k < len && class_at(s, len, k, &w2) == CL_NUMBER; n++)
            k += w2;
        return k;
    }
    size_t j = i;
    if (s[i] == ' ' && i + 1 < len && class_at(s, len, i + 1, &w2) == CL_OTHER) j = i + 1;
    if (j > i || cl == CL_OTHER) {
        size_t k = run_end(s, len, j, CL_OTHER);
        while (k < len && is_crlf(s[k])) k++;
        return k;
    }
    /* cl is CL_SPACE: the whitespace run from i */
    size_t k = i, last = i, nchar = 0, crlf_end = 0;
    while (k < len && class_at(s, len, k, &w2) == CL_SPACE) {
        last = k;
        if (is_crlf(s[k])) crlf_end = k + 1;
        k += w2;
        nchar++;
    }
    if (crlf_end) return crlf_end;
    if (k == len || nchar == 1) return k;
    return last;
}

/* ---- merging one chunk ------------------------------------------------------- */

/* Looks up the merge of (a, b): 1 with *rank and *res, else 0. */
static inline int merge_lookup(const Tokenizer *t, int a, int b, int *rank, int *res) {
    int64_t v;
    if (!u64map_get(&t->ranks, pair_key(a, b), &v)) return 0;
    *rank = (int)(v >> 32);
    *res = (int)(uint32_t)v;
    return 1;
}

/* GPT-2's loop, as written in encoder.py: lowest-rank pair, merge all its
 * occurrences left to right, repeat.  ids[0..n) in place; returns new n. */
static size_t bpe_merge_naive(const Tokenizer *t, int *ids, size_t n) {
    while (n >= 2) {
        int best = INT_MAX, left = -1, right = -1, res = -1;
        for (size_t i = 0; i + 1 < n; i++) {
            int r, x;
            if (merge_lookup(t, ids[i], ids[i + 1], &r, &x) && r < best) {
                best = r;
                left = ids[i];
                right = ids[i + 1];
                res = x;
            }
        }
        if (best == INT_MAX) break;
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && ids[i] == left && ids[i + 1] == right) {
                ids[w++] = res;
                i += 2;
            } else {
                ids[w++] = ids[i++];
            }
        }
        n = w;
    }
    return n;
}

typedef struct {
    int32_t rank, pos, left, right;
} MergeCand;

/* Scratch space of one encode call (so concurrent calls share nothing). */
typedef struct {
    int *ids;
    int32_t *prev, *next;
    MergeCand *heap;
    int32_t *touched;
    size_t cap, heap_cap, heap_n, touched_n;
    ByteBuf norm; /* normalized text (HF kind) */
} EncodeScratch;

static void scratch_reserve(EncodeScratch *s, size_t n) {
    if (n <= s->cap) return;
    size_t c = s->cap ? s->cap : 64;
    while (c < n) c *= 2;
    s->ids = xrealloc(s->ids, c * sizeof *s->ids);
    s->prev = xrealloc(s->prev, c * sizeof *s->prev);
    s->next = xrealloc(s->next, c * sizeof *s->next);
    s->touched = xrealloc(s->touched, c * sizeof *s->touched);
    s->cap = c;
}

static void scratch_free(EncodeScratch *s) {
    free(s->ids);
    free(s->prev);
    free(s->next);
    free(s->heap);
    free(s->touched);
    bytebuf_free(&s->norm);
}

static inline int cand_less(const MergeCand *x, const MergeCand *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void cand_push(EncodeScratch *s, MergeCand c) {
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? 2 * s->heap_cap : 64;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = c;
}

static MergeCand cand_pop(EncodeScratch *s) {
    MergeCand top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!cand_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* Pushes the pair starting at node p, if p and its successor merge. */
static void cand_push_at(const Tokenizer *t, EncodeScratch *s, int32_t p) {
    if (p < 0 || s->next[p] < 0) return;
    int a = s->ids[p], b = s->ids[s->next[p]], r, x;
    if (merge_lookup(t, a, b, &r, &x)) cand_push(s, (MergeCand){r, p, a, b});
}

/* The same passes as bpe_merge_naive on a linked list.  All candidates of
 * the lowest rank r are popped in position order and merged where still
 * valid (an overlapped or already consumed pair no longer matches its
 * recorded tokens); only then are the pairs around the new tokens pushed,
 * as encoder.py looks at them only in its next pass.  ids in s->ids[0..n);
 * the result is compacted into s->ids; returns its length. */
static size_t bpe_merge_heap(const Tokenizer *t, EncodeScratch *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) cand_push_at(t, s, (int32_t)i);
    while (s->heap_n) {
        int32_t r = s->heap[0].rank;
        s->touched_n = 0;
        while (s->heap_n && s->heap[0].rank == r) {
            MergeCand c = cand_pop(s);
            int32_t q = s->next[c.pos];
            if (s->ids[c.pos] != c.left || q < 0 || s->ids[q] != c.right) continue;
            int rr = 0, res = -1;
            CHECK(merge_lookup(t, c.left, c.right, &rr, &res), "candidate without a merge");
            s->ids[c.pos] = res;
            s->ids[q] = -1;
            s->next[c.pos] = s->next[q];
            if (s->next[q] >= 0) s->prev[s->next[q]] = c.pos;
            s->touched[s->touched_n++] = c.pos;
        }
        for (size_t k = 0; k < s->touched_n; k++) {
            int32_t p = s->touched[k];
            cand_push_at(t, s, s->prev[p]);
            cand_push_at(t, s, p);
        }
    }
    size_t w = 0;
    for (int32_t p = 0; p >= 0; p = s->next[p]) s->ids[w++] = s->ids[p];
    return w;
}

static void encode_chunk(const Tokenizer *t, const uint8_t *p, size_t n, EncodeScratch *s,
                         IntVec *out) {
    if (n == 1) {
        intvec_push(out, t->byte_id[p[0]]);
        return;
    }
    CHECK(n < (size_t)INT32_MAX, "chunk of %zu bytes is too long", n);
    scratch_reserve(s, n);
    for (size_t i = 0; i < n; i++) s->ids[i] = t->byte_id[p[i]];
    size_t m = n <= BPE_NAIVE_MAX ? bpe_merge_naive(t, s->ids, n) : bpe_merge_heap(t, s, n);
    intvec_reserve(out, out->n + m);
    memcpy(out->a + out->n, s->ids, m * sizeof *s->ids);
    out->n += m;
}

/* ---- encoding, Hugging Face kind ------------------------------------------------
 * Hugging Face's order: split the input at non-special added tokens (their
 * ids go out as they are), normalize each piece between them, split the
 * normalized pieces at added tokens marked "normalized", then pre-tokenize
 * (Digits, then the pattern) and run BPE on each chunk. */

/* Hugging Face's BPE merges one pair at a time: the pair of lowest rank,
 * the leftmost of equals, then looks again (tokenizers' Word::merge_all).
 * This differs from GPT-2's passes when a merge makes a pair of lower rank
 * than its own (Llama 3's merges do).  Quadratic reference for short
 * chunks: ids in s->ids[0..n), pair i's rank and result in s->prev[i],
 * s->next[i] (INT32_MAX: none).  Returns the new n. */
static void pair_rank(const Tokenizer *t, int a, int b, int32_t *rank, int32_t *res) {
    int r, x;
    if (merge_lookup(t, a, b, &r, &x)) {
        *rank = r;
        *res = x;
    } else {
        *rank = INT32_MAX;
    }
}

static size_t hf_merge_naive(const Tokenizer *t, EncodeScratch *s, size_t n) {
    int *ids = s->ids;
    int32_t *rank = s->prev, *res = s->next;
    for (size_t i = 0; i + 1 < n; i++) pair_rank(t, ids[i], ids[i + 1], &rank[i], &res[i]);
    while (n >= 2) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == INT32_MAX) break;
        ids[best] = res[best];
        memmove(ids + best + 1, ids + best + 2, (n - best - 2) * sizeof *ids);
        if (n >= best + 3) {
            memmove(rank + best + 1, rank + best + 2, (n - best - 3) * sizeof *rank);
            memmove(res + best + 1, res + best + 2, (n - best - 3) * sizeof *res);
        }
        n--;
        if (best > 0) pair_rank(t, ids[best - 1], ids[best], &rank[best - 1], &res[best - 1]);
        if (best + 1 < n) pair_rank(t, ids[best], ids[best + 1], &rank[best], &res[best]);
    }
    return n;
}

/* The same order with a heap of (rank, position) on a linked list: the
 * pairs around a new token are pushed at once, so a lower-ranked one made
 * by a merge goes next.  ids in s->ids[0..n), compacted; returns the length. */
static size_t hf_merge_heap(const Tokenizer *t, EncodeScratch *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) cand_push_at(t, s, (int32_t)i);
    while (s->heap_n) {
        MergeCand c = cand_pop(s);
        int32_t q = s->next[c.pos];
        if (s->ids[c.pos] != c.left || q < 0 || s->ids[q] != c.right) continue;
        int rr = 0, res = -1;
        CHECK(merge_lookup(t, c.left, c.right, &rr, &res), "candidate without a merge");
        s->ids[c.pos] = res;
        s->ids[q] = -1;
        s->next[c.pos] = s->next[q];
        if (s->next[q] >= 0) s->prev[s->next[q]] = c.pos;
        cand_push_at(t, s, s->prev[c.pos]);
        cand_push_at(t, s, c.pos);
    }
    size_t w = 0;
    for (int32_t p = 0; p >= 0; p = s->next[p]) s->ids[w++] = s->ids[p];
    return w;
}

static void hf_encode_chunk(const Tokenizer *t, const uint8_t *p, size_t n, EncodeScratch *s,
                            IntVec *out) {
    if (n == 1) {
        intvec_push(out, t->byte_id[p[0]]);
        return;
    }
    if (t->ignore_merges) {
        int k = bytesmap_find(&t->model, p, n);
        if (k >= 0) {
            intvec_push(out, t->model.e[k].val);
            return;
        }
    }
    CHECK(n < (size_t)INT32_MAX, "chunk of %zu bytes is too long", n);
    scratch_reserve(s, n);
    for (size_t i = 0; i < n; i++) s->ids[i] = t->byte_id[p[i]];
    size_t m = n <= BPE_NAIVE_MAX ? hf_merge_naive(t, s, n) : hf_merge_heap(t, s, n);
    intvec_reserve(out, out->n + m);
    memcpy(out->a + out->n, s->ids, m * sizeof *s->ids);
    out->n += m;
}

/* The pattern's chunks of s[0..len) (as a string of its own: lookaheads
 * see its end). */
static void hf_encode_pattern(const Tokenizer *t, const uint8_t *s, size_t len, EncodeScratch *sc,
                              IntVec *out) {
    int max_num = t->pattern == TOKENIZER_PATTERN_LLAMA3 ? 3 : 1;
    for (size_t i = 0; i < len;) {
        size_t j = t->pattern == TOKENIZER_PATTERN_GPT2 ? pretok_end(s, len, i)
                                                         : pretok_end_split(s, len, i, max_num);
        hf_encode_chunk(t, s + i, j - i, sc, out);
        i = j;
    }
}

/* Pre-tokenizes and encodes text without added tokens: the Digits split
 * (each \p{N}, or each run, apart), then the pattern on every piece. */
static void hf_encode_pretok(const Tokenizer *t, const uint8_t *s, size_t len, EncodeScratch *sc,
                             IntVec *out) {
    if (t->digits == TOKENIZER_DIGITS_NONE) {
        hf_encode_pattern(t, s, len, sc, out);
        return;
    }
    size_t w;
    for (size_t i = 0; i < len;) {
        int cl = class_at(s, len, i, &w);
        size_t j = i + w;
        if (cl != CL_NUMBER) {
            while (j < len && class_at(s, len, j, &w) != CL_NUMBER) j += w;
        } else if (t->digits == TOKENIZER_DIGITS_RUNS) {
            j = run_end(s, len, j, CL_NUMBER);
        }
        hf_encode_pattern(t, s + i, j - i, sc, out);
        i = j;
    }
}

typedef void (*SegmentFn)(const Tokenizer *t, const uint8_t *s, size_t len, EncodeScratch *sc,
                          IntVec *out);

/* The id of the longest token of a whose text starts at s[i], or -1; *n its length. */
static int added_match(const Tokenizer *t, const AddedSet *a, const uint8_t *s, size_t len,
                       size_t i, size_t *n) {
    for (int k = a->first[s[i]]; k < a->first[s[i] + 1]; k++) {
        int id = a->ids[k];
        size_t m = tok_len(t, id);
        if (m <= len - i && memcmp(s + i, t->blob + t->offsets[id], m) == 0) {
            *n = m;
            return id;
        }
    }
    return -1;
}

/* Emits the ids of a's tokens where their text occurs (leftmost, then
 * longest) and hands the text between them to fn. */
static void added_split(const Tokenizer *t, const AddedSet *a, const uint8_t *s, size_t len,
                        EncodeScratch *sc, IntVec *out, SegmentFn fn) {
    size_t start = 0, n = 0;
    for (size_t i = 0; a->n && i < len;) {
        int id = added_match(t, a, s, len, i, &n);
        if (id < 0) {
            i++;
            continue;
        }
        if (i > start) fn(t, s + start, i - start, sc, out);
        intvec_push(out, id);
        i += n;
        start = i;
    }
    if (len > start) fn(t, s + start, len - start, sc, out);
}

/* A piece between raw added tokens: normalize, then split at the
 * normalized added tokens. */
static void hf_encode_piece(const Tokenizer *t, const uint8_t *s, size_t len, EncodeScratch *sc,
                            IntVec *out) {
    if (t->normalizer == TOKENIZER_NORM_NFC && !nfc_quick_check(s, len)) {
        sc->norm.n = 0;
        nfc_append(s, len, &sc->norm);
        s = (const uint8_t *)sc->norm.a;
        len = sc->norm.n;
    }
    added_split(t, &t->added_norm, s, len, sc, out, hf_encode_pretok);
}

void tokenizer_encode(const Tokenizer *t, const char *text, size_t len, IntVec *out) {
    const uint8_t *s = (const uint8_t *)text;
    EncodeScratch sc = {0};
    if (t->kind == TOKENIZER_HF) {
        added_split(t, &t->added_raw, s, len, &sc, out, hf_encode_piece);
    } else {
        for (size_t i = 0; i < len;) {
            size_t j = pretok_end(s, len, i);
            encode_chunk(t, s + i, j - i, &sc, out);
            i = j;
        }
    }
    scratch_free(&sc);
}

int tokenizer_decode(const Tokenizer *t, const int *ids, size_t n, ByteBuf *out, Err *e) {
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_vocab)
            return err_set(e, "token id %d at position %zu is outside the vocabulary [0, %d)", id,
                           i, t->n_vocab);
        bytebuf_put(out, t->blob + t->offsets[id], tok_len(t, id));
    }
    if (!out->a) bytebuf_put(out, "", 0);
    return 0;
}

/* ---- training ------------------------------------------------------------------ */

typedef struct {
    int64_t count;
    int32_t a, b;
} PairCand;

/* max-heap order: higher count first, then smaller (a, b) */
static inline int paircand_before(const PairCand *x, const PairCand *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

typedef struct {
    PairCand *h;
    size_t n, cap;
} PairHeap;

static void pairheap_push(PairHeap *q, PairCand c) {
    if (q->n == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 1024;
        q->h = xrealloc(q->h, q->cap * sizeof *q->h);
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!paircand_before(&c, &q->h[p])) break;
        q->h[i] = q->h[p];
        i = p;
    }
    q->h[i] = c;
}

static PairCand pairheap_pop(PairHeap *q) {
    PairCand top = q->h[0], last = q->h[--q->n];
    size_t i = 0, n = q->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && paircand_before(&q->h[c + 1], &q->h[c])) c++;
        if (!paircand_before(&q->h[c], &last)) break;
        q->h[i] = q->h[c];
        i = c;
    }
    if (n) q->h[i] = last;
    return top;
}

/* Per-pair statistics: count over the corpus and the words it occurs in
 * (a word may be listed more than once or no longer hold the pair). */
typedef struct {
    U64Map index; /* pair_key -> slot in key/count/words */
    uint64_t *key;
    int64_t *count;
    IntVec *words;
    size_t n, cap;
} PairStats;

static int32_t pairstats_slot(PairStats *ps, int a, int b) {
    uint64_t key = pair_key(a, b);
    int64_t v;
    if (u64map_get(&ps->index, key, &v)) return (int32_t)v;
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 4096;
        ps->key = xrealloc(ps->key, ps->cap * sizeof *ps->key);
        ps->count = xrealloc(ps->count, ps->cap * sizeof *ps->count);
        ps->words = xrealloc(ps->words, ps->cap * sizeof *ps->words);
    }
    ps->key[ps->n] = key;
    ps->count[ps->n] = 0;
    memset(&ps->words[ps->n], 0, sizeof ps->words[ps->n]);
    u64map_put(&ps->index, key, (int64_t)ps->n);
    return (int32_t)ps->n++;
}

/* Slot of a pair known to be present. */
static int32_t pairstats_find(const PairStats *ps, int a, int b) {
    int64_t v = -1;
    CHECK(u64map_get(&ps->index, pair_key(a, b), &v), "pair (%d, %d) not counted", a, b);
    return (int32_t)v;
}

static PairCand pair_cand(const PairStats *ps, int32_t k) {
    uint64_t key = ps->key[k];
    return (PairCand){ps->count[k], (int32_t)(key >> 32), (int32_t)(uint32_t)key};
}

static void pairstats_free(PairStats *ps) {
    for (size_t i = 0; i < ps->n; i++) intvec_free(&ps->words[i]);
    free(ps->words);
    free(ps->key);
    free(ps->count);
    u64map_free(&ps->index);
}

/* The unique chunks ("words") of the corpus with their frequencies; word w's
 * current ids are ids[start[w] .. start[w] + len[w]). */
typedef struct {
    int *ids;
    int64_t *start;
    int32_t *len;
    int64_t *freq;
    size_t n;
} Words;

static void words_collect(const char *const *texts, const size_t *lens, size_t n, Words *W) {
    BytesMap chunks;
    bytesmap_init(&chunks, 1 << 16);
    int64_t *freq = NULL;
    size_t fcap = 0;
    for (size_t d = 0; d < n; d++) {
        const uint8_t *s = (const uint8_t *)texts[d];
        for (size_t i = 0; i < lens[d];) {
            size_t j = pretok_end(s, lens[d], i);
            int k = bytesmap_find(&chunks, s + i, j - i);
            if (k < 0) {
                k = bytesmap_add(&chunks, s + i, j - i, 0);
                if ((size_t)k >= fcap) {
                    fcap = fcap ? 2 * fcap : 1 << 16;
                    freq = xrealloc(freq, fcap * sizeof *freq);
                }
                freq[k] = 0;
            }
            freq[k]++;
            i = j;
        }
    }
    W->n = chunks.n;
    W->ids = xmalloc((chunks.arena.n ? chunks.arena.n : 1) * sizeof *W->ids);
    W->start = xmalloc((W->n ? W->n : 1) * sizeof *W->start);
    W->len = xmalloc((W->n ? W->n : 1) * sizeof *W->len);
    W->freq = xmalloc((W->n ? W->n : 1) * sizeof *W->freq);
    for (size_t w = 0; w < W->n; w++) {
        const BytesEntry *e = &chunks.e[w];
        W->start[w] = e->off;
        W->len[w] = (int32_t)e->len;
        W->freq[w] = freq[w];
        for (uint32_t i = 0; i < e->len; i++)
            W->ids[e->off + i] = (uint8_t)chunks.arena.a[e->off + i];
    }
    free(freq);
    bytesmap_free(&chunks);
}

static void words_free(Words *W) {
    free(W->ids);
    free(W->start);
    free(W->len);
    free(W->freq);
}

static void list_add_word(IntVec *v, int w) {
    if (v->n == 0 || v->a[v->n - 1] != w) intvec_push(v, w);
}

/* State of one training run, split into the phases of tokenizer_train. */
typedef struct {
    Words W;
    ByteBuf blob;      /* bytes of the tokens so far */
    int64_t *offsets;  /* token i is blob[offsets[i] .. offsets[i+1]) */
    size_t off_cap;
    BytesMap vocab;    /* token bytes -> id */
    int n_tok;
    IntVec merges;     /* (left, right) pairs in rank order */
    PairStats ps;
    PairHeap q;
    int32_t *seen;     /* merge stamp per word */
    IntVec touched;    /* pair slots involving the new token */
    IntVec todo;
    ByteBuf cat;
} BpeTrainer;

/* Phase 1: the unique words, the 256 byte tokens, every pair's count and
 * words, and the heap of all pairs. */
static void trainer_init(BpeTrainer *T, const char *const *texts, const size_t *lens, size_t n) {
    memset(T, 0, sizeof *T);
    words_collect(texts, lens, n, &T->W);
    Words *W = &T->W;
    T->off_cap = 1024; /* grows: vocab_size may be far more than the corpus gives */
    T->offsets = xmalloc(T->off_cap * sizeof *T->offsets);
    bytesmap_init(&T->vocab, 1024);
    T->offsets[0] = 0;
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        bytebuf_put(&T->blob, &c, 1);
        T->offsets[b + 1] = b + 1;
        bytesmap_add(&T->vocab, &c, 1, b);
    }
    T->n_tok = 256;
    u64map_init(&T->ps.index, 1 << 16);
    for (size_t w = 0; w < W->n; w++) {
        const int *x = W->ids + W->start[w];
        for (int32_t i = 0; i + 1 < W->len[w]; i++) {
            int32_t k = pairstats_slot(&T->ps, x[i], x[i + 1]);
            T->ps.count[k] += W->freq[w];
            list_add_word(&T->ps.words[k], (int)w);
        }
    }
    for (size_t k = 0; k < T->ps.n; k++) pairheap_push(&T->q, pair_cand(&T->ps, (int32_t)k));
    T->seen = xmalloc((W->n ? W->n : 1) * sizeof *T->seen);
    for (size_t w = 0; w < W->n; w++) T->seen[w] = -1;
}

static void trainer_free(BpeTrainer *T) {
    free(T->offsets);
    bytebuf_free(&T->blob);
    bytesmap_free(&T->vocab);
    intvec_free(&T->merges);
    pairstats_free(&T->ps);
    free(T->q.h);
    free(T->seen);
    intvec_free(&T->touched);
    intvec_free(&T->todo);
    bytebuf_free(&T->cat);
    words_free(&T->W);
}

/* Phase 2: the most frequent pair (count 0 if none is left).  Lazy deletion:
 * every pair with a positive count has an entry at least as large; an entry
 * that no longer matches is re-pushed with the current count. */
static PairCand trainer_pop_best(BpeTrainer *T) {
    PairCand best = {0, -1, -1};
    while (T->q.n) {
        PairCand c = pairheap_pop(&T->q);
        int32_t k = pairstats_find(&T->ps, c.a, c.b);
        if (T->ps.count[k] == c.count) {
            best = c;
            break;
        }
        if (T->ps.count[k] > 0) pairheap_push(&T->q, pair_cand(&T->ps, k));
    }
    return best;
}

/* Phase 3: the id of a's bytes followed by b's, a new token unless another
 * split already made those bytes. */
static int trainer_add_token(BpeTrainer *T, int a, int b) {
    const int64_t *off = T->offsets;
    T->cat.n = 0;
    bytebuf_put(&T->cat, T->blob.a + off[a], (size_t)(off[a + 1] - off[a]));
    bytebuf_put(&T->cat, T->blob.a + off[b], (size_t)(off[b + 1] - off[b]));
    int r = bytesmap_find(&T->vocab, (const uint8_t *)T->cat.a, T->cat.n);
    if (r >= 0) return T->vocab.e[r].val; /* same bytes reached by another split: reuse the id */
    int x = T->n_tok++;
    if ((size_t)T->n_tok + 3 > T->off_cap) {
        T->off_cap *= 2;
        T->offsets = xrealloc(T->offsets, T->off_cap * sizeof *T->offsets);
    }
    bytesmap_add(&T->vocab, (const uint8_t *)T->cat.a, T->cat.n, x);
    bytebuf_put(&T->blob, T->cat.a, T->cat.n);
    T->offsets[x + 1] = (int64_t)T->blob.n;
    return x;
}

/* Phase 4a: replaces (a, b) by x in word w and moves the word's pair counts
 * from its old pairs to its new ones; a no-op for a stale list entry. */
static void trainer_merge_word(BpeTrainer *T, int w, int a, int b, int x) {
    PairStats *ps = &T->ps;
    int *ids = T->W.ids + T->W.start[w];
    int32_t L = T->W.len[w], i;
    for (i = 0; i + 1 < L; i++)
        if (ids[i] == a && ids[i + 1] == b) break;
    if (i + 1 >= L) return; /* stale entry */
    int64_t f = T->W.freq[w];
    for (i = 0; i + 1 < L; i++) ps->count[pairstats_find(ps, ids[i], ids[i + 1])] -= f;
    int32_t m = 0;
    for (i = 0; i < L;) {
        if (i + 1 < L && ids[i] == a && ids[i + 1] == b) {
            ids[m++] = x;
            i += 2;
        } else {
            ids[m++] = ids[i++];
        }
    }
    T->W.len[w] = L = m;
    for (i = 0; i + 1 < L; i++) {
        int32_t k = pairstats_slot(ps, ids[i], ids[i + 1]);
        ps->count[k] += f;
        if (ids[i] == x || ids[i + 1] == x) {
            list_add_word(&ps->words[k], w);
            intvec_push(&T->touched, k);
        }
    }
}

/* Phase 4: records merge (a, b) -> x, applies it to every word that holds
 * the pair and pushes the grown counts. */
static void trainer_apply_merge(BpeTrainer *T, int a, int b, int x) {
    PairStats *ps = &T->ps;
    int stamp = (int)(T->merges.n / 2);
    intvec_push(&T->merges, a);
    intvec_push(&T->merges, b);
    int32_t kab = pairstats_find(ps, a, b);
    /* copy: the lists of pairs with x grow below, which may move ps->words */
    T->todo.n = 0;
    for (size_t i = 0; i < ps->words[kab].n; i++) intvec_push(&T->todo, ps->words[kab].a[i]);
    T->touched.n = 0;
    for (size_t wi = 0; wi < T->todo.n; wi++) {
        int w = T->todo.a[wi];
        if (T->seen[w] == stamp) continue;
        T->seen[w] = stamp;
        trainer_merge_word(T, w, a, b, x);
    }
    intvec_free(&ps->words[kab]);
    /* Only pairs with the new token can have grown; push their counts. */
    for (size_t i = 0; i < T->touched.n; i++) {
        int32_t k = T->touched.a[i];
        if ((i == 0 || T->touched.a[i - 1] != k) && ps->count[k] > 0)
            pairheap_push(&T->q, pair_cand(ps, k));
    }
}

/* Phase 5: the two special tokens after the target ordinary ids, then the
 * tokenizer (NULL with e set if the data is inconsistent). */
static Tokenizer *trainer_finish(BpeTrainer *T, int vocab_size, Err *e) {
    int target = vocab_size - 2;
    TokenizerData d = {0};
    d.n_vocab = vocab_size;
    bytebuf_put(&T->blob, EOT_NAME, strlen(EOT_NAME));
    T->offsets[target + 1] = (int64_t)T->blob.n;
    bytebuf_put(&T->blob, SEP_NAME, strlen(SEP_NAME));
    T->offsets[target + 2] = (int64_t)T->blob.n;
    d.offsets = T->offsets;
    d.blob = (uint8_t *)T->blob.a;
    d.special = xcalloc((size_t)vocab_size, 1);
    d.special[target] = d.special[target + 1] = 1;
    d.n_merges = (int)(T->merges.n / 2);
    d.merges = T->merges.a;
    d.eot_id = target;
    d.sep_id = target + 1;
    Tokenizer *t = tokenizer_from_data(&d, e);
    free(d.special);
    return t;
}

Tokenizer *tokenizer_train(const char *const *texts, const size_t *lens, size_t n, int vocab_size,
                           Err *e) {
    if (vocab_size < 258) {
        err_set(e, "vocab_size %d is too small: the 256 bytes and 2 special tokens need 258",
                vocab_size);
        return NULL;
    }
    int target = vocab_size - 2; /* ordinary tokens */
    BpeTrainer T;
    trainer_init(&T, texts, lens, n);
    Tokenizer *t = NULL;
    while (T.n_tok < target) {
        PairCand best = trainer_pop_best(&T);
        if (best.count < 2) {
            err_set(e, "the corpus supports only %d ids (%d merges; no pair then occurs twice), "
                       "not vocab_size %d (hint: more text or a smaller vocabulary)",
                    T.n_tok + 2, (int)(T.merges.n / 2), vocab_size);
            break;
        }
        int x = trainer_add_token(&T, best.a, best.b);
        trainer_apply_merge(&T, best.a, best.b, x);
    }
    if (T.n_tok == target) t = trainer_finish(&T, vocab_size, e);
    trainer_free(&T);
    return t;
}

/* ---- GPT-2 files ----------------------------------------------------------------
 * GPT-2 writes token bytes as text through bytes_to_unicode(): the 188
 * printable bytes '!'..'~', 0xA1..0xAC, 0xAE..0xFF stand for themselves and
 * the other 68 bytes, in increasing order, for U+0100..U+0143. */

#define GPT2_ALPHABET 0x144

/* byte_of[cp] = the byte that code point cp stands for, or -1 */
static void gpt2_byte_table(int byte_of[GPT2_ALPHABET]) {
    for (int i = 0; i < GPT2_ALPHABET; i++) byte_of[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        byte_of[printable ? b : 256 + extra++] = b;
    }
}

/* Appends the bytes that GPT-2 text s[0..n) stands for; -1 on a character
 * outside the alphabet (or bad UTF-8). */
static int gpt2_unmap(const int byte_of[GPT2_ALPHABET], const char *s, size_t n, ByteBuf *out) {
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += unicode_decode_utf8(p + i, n - i, &cp);
        if (cp >= GPT2_ALPHABET || byte_of[cp] < 0) return -1;
        bytebuf_putc(out, (char)byte_of[cp]);
    }
    return 0;
}

/* A token for an error message: quoted, control bytes escaped, cut short. */
static const char *msg_token(const char *s, size_t n, char buf[96]) {
    size_t w = 0;
    buf[w++] = '"';
    for (size_t i = 0; i < n && w < 80; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            w += (size_t)snprintf(buf + w, 96 - w, "\\x%02x", c);
        else
            buf[w++] = (char)c;
    }
    if (w >= 80) {
        memcpy(buf + w, "...", 3);
        w += 3;
    }
    buf[w++] = '"';
    buf[w] = 0;
    return buf;
}

static int json_error_line(const char *text, size_t len) {
    const char *p = cJSON_GetErrorPtr();
    int line = 1;
    if (!p || p < text || p > text + len) return 0;
    for (const char *q = text; q < p; q++) line += *q == '\n';
    return line;
}

/* Reads vocab.json into d (offsets, blob, special, n_vocab, eot_id) and
 * fills vocab with the ordinary tokens' bytes -> id. */
static int gpt2_read_vocab(const char *path, const int byte_of[GPT2_ALPHABET], TokenizerData *d,
                           BytesMap *vocab, Err *e) {
    size_t len = 0;
    char *text = util_read_file(path, &len, e);
    if (!text) return -1;
    int rc = -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    char q[96], q2[96];
    int64_t *spans = NULL; /* id -> (offset, length) in tmp */
    ByteBuf tmp = {0};
    if (!root) {
        err_set(e, "%s:%d: invalid JSON (expected GPT-2's encoder.json / vocab.json)", path,
                json_error_line(text, len));
        goto out;
    }
    if (!cJSON_IsObject(root) || cJSON_GetArraySize(root) < 257) {
        err_set(e, "%s: expected a JSON object of at least 257 \"token\": id pairs", path);
        goto out;
    }
    int V = cJSON_GetArraySize(root);
    spans = xmalloc(2 * (size_t)V * sizeof *spans);
    for (int i = 0; i < 2 * V; i++) spans[i] = -1;
    d->eot_id = -1;
    for (cJSON *it = root->child; it; it = it->next) {
        const char *key = it->string;
        size_t klen = strlen(key);
        if (!cJSON_IsNumber(it)) {
            err_set(e, "%s: token %s: the id is not a number", path, msg_token(key, klen, q));
            goto out;
        }
        double v = it->valuedouble;
        if (!(v >= 0 && v < V) || v != (double)(int)v) {
            err_set(e, "%s: token %s: id %g is not an integer in [0, %d) (%d tokens)", path,
                    msg_token(key, klen, q), v, V, V);
            goto out;
        }
        int id = (int)v;
        if (spans[2 * id] >= 0) {
            const char *other = tmp.a + spans[2 * id];
            err_set(e, "%s: id %d is given to both %s and %s", path, id,
                    msg_token(other, (size_t)spans[2 * id + 1], q2), msg_token(key, klen, q));
            goto out;
        }
        size_t at = tmp.n;
        if (strcmp(key, EOT_NAME) == 0) {
            bytebuf_put(&tmp, key, klen);
            d->eot_id = id;
        } else if (klen == 0 || gpt2_unmap(byte_of, key, klen, &tmp) != 0) {
            err_set(e, "%s: token %s (id %d) is empty or has a character outside GPT-2's byte "
                       "alphabet",
                    path, msg_token(key, klen, q), id);
            goto out;
        }
        spans[2 * id] = (int64_t)at;
        spans[2 * id + 1] = (int64_t)(tmp.n - at);
    }
    if (d->eot_id < 0) {
        err_set(e, "%s: no \"%s\" token", path, EOT_NAME);
        goto out;
    }
    d->n_vocab = V;
    d->offsets = xmalloc((size_t)(V + 1) * sizeof *d->offsets);
    d->special = xcalloc((size_t)V, 1);
    d->blob = xmalloc(tmp.n ? tmp.n : 1);
    d->offsets[0] = 0;
    for (int id = 0; id < V; id++) {
        size_t n = (size_t)spans[2 * id + 1];
        memcpy(d->blob + d->offsets[id], tmp.a + spans[2 * id], n);
        d->offsets[id + 1] = d->offsets[id] + (int64_t)n;
        if (id == d->eot_id) {
            d->special[id] = 1;
            continue;
        }
        const uint8_t *p = d->blob + d->offsets[id];
        int k = bytesmap_find(vocab, p, n);
        if (k >= 0) {
            err_set(e, "%s: ids %d and %d stand for the same bytes", path, vocab->e[k].val, id);
            goto out;
        }
        bytesmap_add(vocab, p, n, id);
    }
    rc = 0;
out:
    cJSON_Delete(root);
    free(spans);
    bytebuf_free(&tmp);
    free(text);
    return rc;
}

/* Reads merges.txt into d->merges / d->n_merges against vocab. */
static int gpt2_read_merges(const char *path, const int byte_of[GPT2_ALPHABET],
                            TokenizerData *d, const BytesMap *vocab, Err *e) {
    size_t len = 0;
    char *text = util_read_file(path, &len, e);
    if (!text) return -1;
    int rc = -1, line = 0;
    char q[96], q2[96];
    IntVec merges = {0};
    U64Map seen; /* pair -> line of first occurrence */
    u64map_init(&seen, 1 << 16);
    ByteBuf part = {0}, cat = {0};
    if (len == 0 || strncmp(text, "#version", 8) != 0) {
        err_set(e, "%s:1: expected a \"#version: ...\" header line (GPT-2's vocab.bpe / "
                   "merges.txt)",
                path);
        goto out;
    }
    for (size_t pos = 0; pos < len;) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        size_t next = end + 1;
        line++;
        if (end > pos && text[end - 1] == '\r') end--;
        if (line == 1) {
            pos = next;
            continue;
        }
        /* fields separated by spaces or tabs */
        size_t fs[3], fe[3];
        int nf = 0;
        for (size_t i = pos; i < end;) {
            while (i < end && (text[i] == ' ' || text[i] == '\t')) i++;
            if (i == end) break;
            size_t j = i;
            while (j < end && text[j] != ' ' && text[j] != '\t') j++;
            if (nf < 3) {
                fs[nf] = i;
                fe[nf] = j;
            }
            nf++;
            i = j;
        }
        pos = next;
        if (nf == 0) continue;
        if (nf != 2) {
            err_set(e, "%s:%d: expected \"left right\", found %d field%s", path, line, nf,
                    nf == 1 ? "" : "s");
            goto out;
        }
        int id[2];
        for (int f = 0; f < 2; f++) {
            part.n = 0;
            int k = -1;
            if (gpt2_unmap(byte_of, text + fs[f], fe[f] - fs[f], &part) == 0)
                k = bytesmap_find(vocab, (const uint8_t *)part.a, part.n);
            if (k < 0) {
                err_set(e, "%s:%d: token %s is not in the vocabulary", path, line,
                        msg_token(text + fs[f], fe[f] - fs[f], q));
                goto out;
            }
            id[f] = vocab->e[k].val;
        }
        int64_t first;
        if (u64map_get(&seen, pair_key(id[0], id[1]), &first)) {
            err_set(e, "%s:%d: duplicate merge (first on line %d)", path, line, (int)first);
            goto out;
        }
        u64map_put(&seen, pair_key(id[0], id[1]), line);
        cat.n = 0;
        for (int f = 0; f < 2; f++)
            bytebuf_put(&cat, d->blob + d->offsets[id[f]],
                        (size_t)(d->offsets[id[f] + 1] - d->offsets[id[f]]));
        if (bytesmap_find(vocab, (const uint8_t *)cat.a, cat.n) < 0) {
            err_set(e, "%s:%d: merging %s and %s gives a token that is not in the vocabulary",
                    path, line, msg_token(text + fs[0], fe[0] - fs[0], q),
                    msg_token(text + fs[1], fe[1] - fs[1], q2));
            goto out;
        }
        intvec_push(&merges, id[0]);
        intvec_push(&merges, id[1]);
    }
    d->n_merges = (int)(merges.n / 2);
    d->merges = xmalloc((merges.n ? merges.n : 1) * sizeof *d->merges);
    for (size_t i = 0; i < merges.n; i++) d->merges[i] = merges.a[i];
    rc = 0;
out:
    intvec_free(&merges);
    u64map_free(&seen);
    bytebuf_free(&part);
    bytebuf_free(&cat);
    free(text);
    return rc;
}

Tokenizer *tokenizer_load_gpt2(const char *vocab_path, const char *merges_path, Err *e) {
    int byte_of[GPT2_ALPHABET];
    gpt2_byte_table(byte_of);
    TokenizerData d = {0};
    d.sep_id = -1;
    BytesMap vocab;
    bytesmap_init(&vocab, 1 << 16);
    Tokenizer *t = NULL;
    if (gpt2_read_vocab(vocab_path, byte_of, &d, &vocab, e) == 0 &&
        gpt2_read_merges(merges_path, byte_of, &d, &vocab, e) == 0) {
        Err sub;
        t = tokenizer_from_data(&d, &sub);
        if (!t) err_set(e, "%s: %s", vocab_path, sub.msg);
    }
    bytesmap_free(&vocab);
    tokenizer_data_free(&d);
    return t;
}

/* ---- Hugging Face tokenizer.json ------------------------------------------------
 * Everything the file says is either implemented exactly or refused with the
 * JSON field named; nothing is approximated. */

static const char HF_HINT[] =
    "hint: hdistill reads byte-level BPE tokenizer.json files as SmolLM2, Qwen2.5/Qwen3, "
    "Llama 3.x and GPT-2 ship them";

/* The three split regexes, as the tokenizer.json files write them (after
 * JSON unescaping; CR and LF may also appear as themselves). */
static const char PAT_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char PAT_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char PAT_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef struct {
    const char *path; /* the tokenizer.json, for messages */
    Err *e;
    int byte_of[GPT2_ALPHABET];
    TokenizerData *d;
} HfLoad;

/* Sets e to "PATH: FIELD: message" and returns -1. */
static int hf_fail(const HfLoad *L, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int hf_fail(const HfLoad *L, const char *field, const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(L->e, "%s: %s: %s", L->path, field, msg);
}

/* Refuses a key of obj that is not in the NULL-terminated list known. */
static int hf_check_keys(const HfLoad *L, const cJSON *obj, const char *field,
                         const char *const *known) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        int ok = 0;
        for (const char *const *k = known; *k && !ok; k++) ok = strcmp(it->string, *k) == 0;
        if (!ok) {
            char f[160], q[96];
            snprintf(f, sizeof f, "%s.%s", field, msg_token(it->string, strlen(it->string), q));
            return hf_fail(L, f, "unknown option (%s)", HF_HINT);
        }
    }
    return 0;
}

/* The "type" string of obj, or "" if obj is no object with one. */
static const char *hf_type(const cJSON *obj) {
    const cJSON *ty = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "type") : NULL;
    return cJSON_IsString(ty) ? ty->valuestring : "";
}

/* A boolean option: *v = its value, or dflt if absent or null; -1 if not a bool. */
static int hf_bool(const HfLoad *L, const cJSON *obj, const char *key, const char *field,
                   int dflt, int *v) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    *v = dflt;
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsBool(it)) return hf_fail(L, field, "%s must be true or false", key);
    *v = cJSON_IsTrue(it);
    return 0;
}

static int hf_normalizer(const HfLoad *L, const cJSON *n) {
    static const char *const keys_nfc[] = {"type", NULL};
    static const char *const keys_seq[] = {"type", "normalizers", NULL};
    L->d->normalizer = TOKENIZER_NORM_NONE;
    if (!n || cJSON_IsNull(n)) return 0;
    const char *ty = hf_type(n);
    if (strcmp(ty, "NFC") == 0) {
        L->d->normalizer = TOKENIZER_NORM_NFC;
        return hf_check_keys(L, n, "normalizer", keys_nfc);
    }
    if (strcmp(ty, "Sequence") != 0)
        return hf_fail(L, "normalizer.type", "\"%s\" is not supported (hint: only NFC, or a "
                                             "Sequence of NFC, or null)",
                       ty);
    if (hf_check_keys(L, n, "normalizer", keys_seq) != 0) return -1;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
    if (!cJSON_IsArray(list)) return hf_fail(L, "normalizer.normalizers", "expected a list");
    int i = 0;
    for (const cJSON *it = list->child; it; it = it->next, i++) {
        char f[64];
        snprintf(f, sizeof f, "normalizer.normalizers[%d]", i);
        if (strcmp(hf_type(it), "NFC") != 0)
            return hf_fail(L, f, "\"%s\" is not supported (hint: a Sequence may only hold NFC)",
                           hf_type(it));
        if (hf_check_keys(L, it, f, keys_nfc) != 0) return -1;
        L->d->normalizer = TOKENIZER_NORM_NFC;
    }
    return 0;
}

/* ByteLevel (pre-tokenizer or decoder): add_prefix_space must be false when
 * pre-tokenizing; *use_regex gets use_regex (default true). */
static int hf_byte_level(const HfLoad *L, const cJSON *b, const char *field, int pretok,
                         int *use_regex) {
    static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex",
                                       NULL};
    int aps = 0, trim = 0;
    char f[160];
    snprintf(f, sizeof f, "%s.add_prefix_space", field);
    if (hf_check_keys(L, b, field, keys) || hf_bool(L, b, "add_prefix_space", f, 0, &aps) ||
        hf_bool(L, b, "trim_offsets", field, 0, &trim) ||
        hf_bool(L, b, "use_regex", field, 1, use_regex))
        return -1;
    if (pretok && aps)
        return hf_fail(L, f, "true is not supported (hint: a space before every piece changes "
                             "the ids; only add_prefix_space false is implemented)");
    return 0;
}

/* Split: the regex must be one of the three known patterns, Isolated. */
static int hf_split(const HfLoad *L, const cJSON *sp, const char *field) {
    static const char *const keys[] = {"type", "pattern", "behavior", "invert", NULL};
    char f[160];
    if (hf_check_keys(L, sp, field, keys) != 0) return -1;
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(sp, "pattern");
    const cJSON *rx = cJSON_IsObject(pat) ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
    snprintf(f, sizeof f, "%s.pattern.Regex", field);
    if (!cJSON_IsString(rx))
        return hf_fail(L, f, "missing (hint: only a Regex pattern is supported, not a String)");
    ByteBuf canon = {0}; /* CR and LF written as \r and \n */
    for (const char *c = rx->valuestring; *c; c++) {
        if (*c == '\r' || *c == '\n')
            bytebuf_put(&canon, *c == '\r' ? "\\r" : "\\n", 2);
        else
            bytebuf_putc(&canon, *c);
    }
    const char *p = canon.a ? canon.a : "";
    int pattern = strcmp(p, PAT_GPT2) == 0     ? TOKENIZER_PATTERN_GPT2
                  : strcmp(p, PAT_LLAMA3) == 0 ? TOKENIZER_PATTERN_LLAMA3
                  : strcmp(p, PAT_QWEN2) == 0  ? TOKENIZER_PATTERN_QWEN2
                                               : -1;
    bytebuf_free(&canon);
    if (pattern < 0)
        return hf_fail(L, f, "unsupported split pattern (hint: implemented are exactly GPT-2's, "
                             "Llama 3's (\\p{N}{1,3}) and Qwen2's (\\p{N}) patterns)");
    L->d->pattern = pattern;
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(sp, "behavior");
    snprintf(f, sizeof f, "%s.behavior", field);
    if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0)
        return hf_fail(L, f, "only \"Isolated\" is supported");
    int invert = 0;
    snprintf(f, sizeof f, "%s.invert", field);
    if (hf_bool(L, sp, "invert", f, 0, &invert) != 0) return -1;
    if (invert) return hf_fail(L, f, "true is not supported");
    return 0;
}

/* Digits: *digits gets the mode. */
static int hf_digits(const HfLoad *L, const cJSON *dg, const char *field) {
    static const char *const keys[] = {"type", "individual_digits", NULL};
    int ind = 0;
    if (hf_check_keys(L, dg, field, keys) || hf_bool(L, dg, "individual_digits", field, 0, &ind))
        return -1;
    L->d->digits = ind ? TOKENIZER_DIGITS_INDIVIDUAL : TOKENIZER_DIGITS_RUNS;
    return 0;
}

/* One step of the pre-tokenizer at position i of a Sequence (or alone, i
 * = -1).  *stage: 0 start, 1 after Digits, 2 after Split, 3 after the
 * final ByteLevel. */
static int hf_pretok_step(const HfLoad *L, const cJSON *p, int i, int *stage) {
    char f[96];
    if (i < 0)
        snprintf(f, sizeof f, "pre_tokenizer");
    else
        snprintf(f, sizeof f, "pre_tokenizer.pretokenizers[%d]", i);
    const char *ty = hf_type(p);
    if (*stage == 3) return hf_fail(L, f, "nothing may follow ByteLevel");
    if (strcmp(ty, "Digits") == 0 && *stage == 0) {
        *stage = 1;
        return hf_digits(L, p, f);
    }
    if (strcmp(ty, "Split") == 0 && *stage < 2) {
        *stage = 2;
        return hf_split(L, p, f);
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        int use_regex = 1;
        if (hf_byte_level(L, p, f, 1, &use_regex) != 0) return -1;
        char fu[128];
        snprintf(fu, sizeof fu, "%s.use_regex", f);
        if (*stage == 2 && use_regex)
            return hf_fail(L, fu, "true after a Split is not supported (two patterns)");
        if (*stage < 2 && !use_regex)
            return hf_fail(L, fu, "false without a Split before it is not supported");
        if (*stage < 2) L->d->pattern = TOKENIZER_PATTERN_GPT2;
        *stage = 3;
        return 0;
    }
    if (strcmp(ty, "Metaspace") == 0)
        return hf_fail(L, f, "Metaspace is SentencePiece-style \"\\u2581\" splitting, not "
                             "byte-level BPE (%s)",
                       HF_HINT);
    return hf_fail(L, f, "\"%s\" is not supported here (hint: implemented are ByteLevel, or a "
                         "Sequence of an optional Digits, then ByteLevel or Split + "
                         "ByteLevel(use_regex=false))",
                   ty);
}

static int hf_pre_tokenizer(const HfLoad *L, const cJSON *p) {
    static const char *const keys_seq[] = {"type", "pretokenizers", NULL};
    int stage = 0;
    if (!p || cJSON_IsNull(p))
        return hf_fail(L, "pre_tokenizer", "null is not supported (hint: byte-level BPE needs a "
                                           "ByteLevel pre-tokenizer)");
    if (strcmp(hf_type(p), "Sequence") == 0) {
        if (hf_check_keys(L, p, "pre_tokenizer", keys_seq) != 0) return -1;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return hf_fail(L, "pre_tokenizer.pretokenizers", "expected a list");
        int i = 0;
        for (const cJSON *it = list->child; it; it = it->next, i++)
            if (hf_pretok_step(L, it, i, &stage) != 0) return -1;
    } else if (hf_pretok_step(L, p, -1, &stage) != 0) {
        return -1;
    }
    if (stage != 3) return hf_fail(L, "pre_tokenizer", "does not end with ByteLevel");
    return 0;
}

static int hf_decoder(const HfLoad *L, const cJSON *dec) {
    int use_regex = 1;
    if (!dec || cJSON_IsNull(dec))
        return hf_fail(L, "decoder", "null is not supported (hint: a byte-level BPE decodes with "
                                     "ByteLevel)");
    if (strcmp(hf_type(dec), "ByteLevel") != 0)
        return hf_fail(L, "decoder.type", "\"%s\" is not supported (only ByteLevel; %s)",
                       hf_type(dec), HF_HINT);
    return hf_byte_level(L, dec, "decoder", 0, &use_regex);
}

/* Post-processors only add special tokens around the text (and offsets,
 * type ids): encode() does not apply them, the caller adds special ids. */
static int hf_post_processor(const HfLoad *L, const cJSON *pp, const char *field) {
    static const char *const known[] = {"ByteLevel", "TemplateProcessing", "BertProcessing",
                                        "RobertaProcessing", NULL};
    if (!pp || cJSON_IsNull(pp)) return 0;
    const char *ty = hf_type(pp);
    for (const char *const *k = known; *k; k++)
        if (strcmp(ty, *k) == 0) return 0;
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pp, "processors");
        int i = 0;
        for (const cJSON *it = cJSON_IsArray(list) ? list->child : NULL; it; it = it->next, i++) {
            char f[128];
            snprintf(f, sizeof f, "%s.processors[%d]", field, i);
            if (hf_post_processor(L, it, f) != 0) return -1;
        }
        return 0;
    }
    char f[160];
    snprintf(f, sizeof f, "%s.type", field);
    return hf_fail(L, f, "\"%s\" is not supported", ty);
}

static int hf_model_options(const HfLoad *L, const cJSON *m) {
    static const char *const keys[] = {"type", "dropout", "unk_token", "continuing_subword_prefix",
                                       "end_of_word_suffix", "fuse_unk", "byte_fallback",
                                       "ignore_merges", "vocab", "merges", NULL};
    if (!cJSON_IsObject(m)) return hf_fail(L, "model", "missing or not an object");
    if (strcmp(hf_type(m), "BPE") != 0)
        return hf_fail(L, "model.type", "\"%s\" is not supported (only byte-level BPE; %s)",
                       hf_type(m), HF_HINT);
    if (hf_check_keys(L, m, "model", keys) != 0) return -1;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (it && !cJSON_IsNull(it) && !(cJSON_IsNumber(it) && it->valuedouble == 0))
        return hf_fail(L, "model.dropout", "BPE dropout is not supported (it makes encoding "
                                           "random; hint: set it to null)");
    it = cJSON_GetObjectItemCaseSensitive(m, "unk_token");
    if (it && !cJSON_IsNull(it) && !cJSON_IsString(it))
        return hf_fail(L, "model.unk_token", "expected a string or null");
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix", NULL};
    for (const char *const *k = affixes; *k; k++) {
        it = cJSON_GetObjectItemCaseSensitive(m, *k);
        if (it && !cJSON_IsNull(it) && !(cJSON_IsString(it) && it->valuestring[0] == 0)) {
            char f[64];
            snprintf(f, sizeof f, "model.%s", *k);
            return hf_fail(L, f, "only null or \"\" is supported (a WordPiece/BPE affix)");
        }
    }
    int fuse = 0, fallback = 0, ignore = 0;
    if (hf_bool(L, m, "fuse_unk", "model.fuse_unk", 0, &fuse) ||
        hf_bool(L, m, "byte_fallback", "model.byte_fallback", 0, &fallback) ||
        hf_bool(L, m, "ignore_merges", "model.ignore_merges", 0, &ignore))
        return -1;
    if (fallback)
        return hf_fail(L, "model.byte_fallback", "true: a SentencePiece-style BPE with <0x..> "
                                                 "byte tokens, not byte-level BPE (%s)",
                       HF_HINT);
    L->d->ignore_merges = ignore;
    return 0;
}

/* Top-level fields other than the model's and the pre/post-processing. */
static int hf_top_level(const HfLoad *L, const cJSON *root) {
    static const char *const keys[] = {"version", "truncation", "padding", "added_tokens",
                                       "normalizer", "pre_tokenizer", "post_processor", "decoder",
                                       "model", NULL};
    if (!cJSON_IsObject(root)) return hf_fail(L, "(top level)", "expected a JSON object");
    if (hf_check_keys(L, root, "(top level)", keys) != 0) return -1;
    static const char *const off[] = {"truncation", "padding", NULL};
    for (const char *const *k = off; *k; k++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, *k);
        if (it && !cJSON_IsNull(it))
            return hf_fail(L, *k, "must be null (hint: hdistill cuts and packs sequences itself)");
    }
    return 0;
}

/* What model.vocab and added_tokens say of each id. */
typedef struct {
    int cap;               /* ids must be < cap (the number of entries) */
    const char **key;      /* id -> model.vocab key, or NULL */
    const cJSON **added;   /* id -> added_tokens entry, or NULL */
    int *added_index;      /* id -> its index in added_tokens */
    BytesMap keys;         /* model.vocab key -> id */
    int n_model;           /* entries of model.vocab */
} HfVocab;

static void hfvocab_free(HfVocab *V) {
    free(V->key);
    free(V->added);
    free(V->added_index);
    bytesmap_free(&V->keys);
}

/* A JSON number that is an integer id in [0, cap): the id, else -1. */
static int hf_id(const cJSON *it, int cap) {
    if (!cJSON_IsNumber(it)) return -1;
    double v = it->valuedouble;
    return v >= 0 && v < cap && v == (double)(int)v ? (int)v : -1;
}

static int hf_read_vocab(const HfLoad *L, const cJSON *vocab, HfVocab *V) {
    char q[96], q2[96];
    if (!cJSON_IsObject(vocab))
        return hf_fail(L, "model.vocab", "expected an object of \"token\": id");
    for (const cJSON *it = vocab->child; it; it = it->next) {
        const char *k = it->string;
        size_t n = strlen(k);
        int id = hf_id(it, V->cap);
        if (id < 0)
            return hf_fail(L, "model.vocab", "token %s: id is not an integer in [0, %d) (the ids "
                                             "of model.vocab and added_tokens must run 0..N-1 "
                                             "without gaps)",
                           msg_token(k, n, q), V->cap);
        if (V->key[id])
            return hf_fail(L, "model.vocab", "id %d is given to both %s and %s", id,
                           msg_token(V->key[id], strlen(V->key[id]), q2), msg_token(k, n, q));
        if (n == 0) return hf_fail(L, "model.vocab", "id %d: empty token", id);
        if (bytesmap_find(&V->keys, (const uint8_t *)k, n) >= 0)
            return hf_fail(L, "model.vocab", "token %s appears twice", msg_token(k, n, q));
        bytesmap_add(&V->keys, (const uint8_t *)k, n, id);
        V->key[id] = k;
        V->n_model++;
    }
    return 0;
}

/* One added_tokens entry: checks its fields, records it under its id.
 * Hugging Face ignores the id written in the file: it adds the entries in
 * order, a text of model.vocab gets that token's id, any other the next id
 * after model.vocab and the added tokens so far (*max_id); a file whose ids
 * differ would encode differently there, so it is refused. */
static int hf_read_added_one(const HfLoad *L, const cJSON *a, int i, HfVocab *V,
                             BytesMap *contents, int *max_id) {
    static const char *const keys[] = {"id", "content", "single_word", "lstrip", "rstrip",
                                       "normalized", "special", NULL};
    char f[64], fk[96], q[96];
    snprintf(f, sizeof f, "added_tokens[%d]", i);
    if (!cJSON_IsObject(a)) return hf_fail(L, f, "expected an object");
    if (hf_check_keys(L, a, f, keys) != 0) return -1;
    int id = hf_id(cJSON_GetObjectItemCaseSensitive(a, "id"), V->cap);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(a, "content");
    snprintf(fk, sizeof fk, "%s.id", f);
    if (id < 0)
        return hf_fail(L, fk, "not an integer in [0, %d) (ids must run 0..N-1 without gaps)",
                       V->cap);
    snprintf(fk, sizeof fk, "%s.content", f);
    if (!cJSON_IsString(c) || !c->valuestring[0]) return hf_fail(L, fk, "not a non-empty string");
    size_t n = strlen(c->valuestring);
    int special = 0, flag = 0;
    if (hf_bool(L, a, "special", f, 0, &special) != 0) return -1;
    static const char *const strips[] = {"single_word", "lstrip", "rstrip", NULL};
    for (const char *const *k = strips; *k; k++) {
        snprintf(fk, sizeof fk, "%s.%s", f, *k);
        if (hf_bool(L, a, *k, fk, 0, &flag) != 0) return -1;
        if (flag && !special)
            return hf_fail(L, fk, "true is not supported for a non-special token");
    }
    int k = bytesmap_find(contents, (const uint8_t *)c->valuestring, n);
    if (k >= 0)
        return hf_fail(L, f, "%s repeats added_tokens[%d]", msg_token(c->valuestring, n, q),
                       contents->e[k].val);
    bytesmap_add(contents, (const uint8_t *)c->valuestring, n, i);
    int x = bytesmap_find(&V->keys, (const uint8_t *)c->valuestring, n);
    int hf = x >= 0 ? V->keys.e[x].val : *max_id >= V->n_model ? *max_id + 1 : V->n_model;
    if (hf > *max_id) *max_id = hf;
    snprintf(fk, sizeof fk, "%s.id", f);
    if (id != hf)
        return hf_fail(L, fk, "%d, but Hugging Face gives %s id %d (%s; hint: the ids of added "
                              "tokens must follow model.vocab in list order)",
                       id, msg_token(c->valuestring, n, q), hf,
                       x >= 0 ? "its id in model.vocab" : "the next free id");
    if (V->added[id])
        return hf_fail(L, fk, "id %d repeats added_tokens[%d]", id, V->added_index[id]);
    V->added[id] = a;
    V->added_index[id] = i;
    return 0;
}

static int hf_read_added(const HfLoad *L, const cJSON *list, HfVocab *V) {
    if (!list || cJSON_IsNull(list)) return 0;
    if (!cJSON_IsArray(list)) return hf_fail(L, "added_tokens", "expected a list");
    BytesMap contents;
    bytesmap_init(&contents, 64);
    int i = 0, rc = 0, max_id = -1;
    for (const cJSON *it = list->child; it && rc == 0; it = it->next, i++)
        rc = hf_read_added_one(L, it, i, V, &contents, &max_id);
    bytesmap_free(&contents);
    return rc;
}

/* Flags of an id that has an added_tokens entry; bytes in *tmp.  A model
 * token that is also a non-special added token must stand for its text. */
static int hf_added_flags(const HfLoad *L, const HfVocab *V, int id, ByteBuf *tmp,
                          uint8_t *flags) {
    const cJSON *a = V->added[id];
    const char *c = cJSON_GetObjectItemCaseSensitive(a, "content")->valuestring;
    size_t n = strlen(c);
    int special = 0, normalized = 0;
    char f[64];
    snprintf(f, sizeof f, "added_tokens[%d]", V->added_index[id]);
    hf_bool(L, a, "special", f, 0, &special);
    hf_bool(L, a, "normalized", f, !special, &normalized);
    bytebuf_put(tmp, c, n);
    if (special) {
        *flags = TOKEN_SPECIAL;
        return 0;
    }
    *flags = TOKEN_ADDED | (normalized ? TOKEN_NORMALIZED : 0);
    if (!V->key[id]) return 0;
    ByteBuf b = {0};
    int rc = gpt2_unmap(L->byte_of, c, n, &b);
    if (rc == 0 && (b.n != n || memcmp(b.a, c, n) != 0))
        rc = hf_fail(L, f, "id %d is also a model.vocab token whose bytes differ from its text "
                           "(not supported)",
                     id);
    else if (rc == 0)
        *flags |= TOKEN_IN_MODEL;
    else
        rc = 0; /* not byte-level text: merges cannot make it, an added token only */
    bytebuf_free(&b);
    return rc;
}

/* Fills d's tokens (offsets, blob, flags) from V: ids 0..N-1, each once. */
static int hf_build_tokens(const HfLoad *L, const HfVocab *V) {
    char q[96];
    TokenizerData *d = L->d;
    int N = 0;
    for (int id = 0; id < V->cap; id++)
        if (V->key[id] || V->added[id]) N = id + 1;
    for (int id = 0; id < N; id++)
        if (!V->key[id] && !V->added[id])
            return hf_fail(L, "model.vocab", "no token has id %d (the ids of model.vocab and "
                                             "added_tokens must run 0..%d without gaps)",
                           id, N - 1);
    if (N < 257) return hf_fail(L, "model.vocab", "only %d tokens (a byte-level BPE has 256 and "
                                                  "more)", N);
    ByteBuf tmp = {0};
    d->n_vocab = N;
    d->offsets = xmalloc((size_t)(N + 1) * sizeof *d->offsets);
    d->special = xcalloc((size_t)N, 1);
    d->offsets[0] = 0;
    int rc = 0;
    for (int id = 0; id < N && rc == 0; id++) {
        if (V->added[id]) {
            rc = hf_added_flags(L, V, id, &tmp, &d->special[id]);
        } else if (gpt2_unmap(L->byte_of, V->key[id], strlen(V->key[id]), &tmp) != 0) {
            rc = hf_fail(L, "model.vocab", "token %s (id %d) is not byte-level: it has a "
                                           "character outside GPT-2's byte alphabet (%s; "
                                           "SentencePiece \"\\u2581\" vocabularies are not)",
                         msg_token(V->key[id], strlen(V->key[id]), q), id, HF_HINT);
        }
        d->offsets[id + 1] = (int64_t)tmp.n;
    }
    d->blob = (uint8_t *)tmp.a; /* d owns it now */
    if (!d->blob) d->blob = xmalloc(1);
    return rc;
}

/* The ids of one merge, "left right" or ["left", "right"]: 0 or -1. */
static int hf_merge_ids(const HfLoad *L, const HfVocab *V, const cJSON *m, int k, int ids[3],
                        ByteBuf *cat) {
    char f[64], q[96], q2[96];
    snprintf(f, sizeof f, "model.merges[%d]", k);
    const char *part[2] = {NULL, NULL};
    size_t plen[2] = {0, 0};
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (sp && sp > s && sp[1] && !strchr(sp + 1, ' ')) {
            part[0] = s, plen[0] = (size_t)(sp - s);
            part[1] = sp + 1, plen[1] = strlen(sp + 1);
        }
    } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
               cJSON_IsString(m->child->next)) {
        part[0] = m->child->valuestring, plen[0] = strlen(part[0]);
        part[1] = m->child->next->valuestring, plen[1] = strlen(part[1]);
    }
    if (!part[0] || !plen[0] || !plen[1])
        return hf_fail(L, f, "expected \"left right\" or [\"left\", \"right\"]");
    cat->n = 0;
    for (int i = 0; i < 2; i++) {
        int x = bytesmap_find(&V->keys, (const uint8_t *)part[i], plen[i]);
        if (x < 0)
            return hf_fail(L, f, "token %s is not in model.vocab",
                           msg_token(part[i], plen[i], q));
        ids[i] = V->keys.e[x].val;
        bytebuf_put(cat, part[i], plen[i]);
    }
    int x = bytesmap_find(&V->keys, (const uint8_t *)cat->a, cat->n);
    if (x < 0)
        return hf_fail(L, f, "%s + %s makes %s, which is not in model.vocab",
                       msg_token(part[0], plen[0], q), msg_token(part[1], plen[1], q2),
                       msg_token(cat->a, cat->n, q2));
    ids[2] = V->keys.e[x].val;
    for (int i = 0; i < 3; i++)
        if (!in_model(L->d->special[ids[i]]))
            return hf_fail(L, f, "joins or makes the special or added token %d (not supported)",
                           ids[i]);
    return 0;
}

static int hf_read_merges(const HfLoad *L, const HfVocab *V, const cJSON *list) {
    if (!cJSON_IsArray(list)) return hf_fail(L, "model.merges", "expected a list");
    int n = cJSON_GetArraySize(list), k = 0, rc = 0;
    TokenizerData *d = L->d;
    d->merges = xmalloc(2 * (size_t)(n ? n : 1) * sizeof *d->merges);
    U64Map seen;
    u64map_init(&seen, (size_t)n);
    ByteBuf cat = {0};
    for (const cJSON *m = list->child; m && rc == 0; m = m->next, k++) {
        int ids[3];
        int64_t first;
        rc = hf_merge_ids(L, V, m, k, ids, &cat);
        if (rc == 0 && u64map_get(&seen, pair_key(ids[0], ids[1]), &first)) {
            char f[64];
            snprintf(f, sizeof f, "model.merges[%d]", k);
            rc = hf_fail(L, f, "repeats model.merges[%d]", (int)first);
        }
        if (rc) break;
        u64map_put(&seen, pair_key(ids[0], ids[1]), k);
        d->merges[2 * k] = ids[0];
        d->merges[2 * k + 1] = ids[1];
    }
    d->n_merges = k;
    u64map_free(&seen);
    bytebuf_free(&cat);
    return rc;
}

/* The special token whose text is name, or -1. */
static int hf_special_id(const TokenizerData *d, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < d->n_vocab; i++)
        if (d->special[i] == TOKEN_SPECIAL && (size_t)(d->offsets[i + 1] - d->offsets[i]) == n &&
            memcmp(d->blob + d->offsets[i], name, n) == 0)
            return i;
    return -1;
}

/* eos_token of dir/tokenizer_config.json into *name (malloc'd; NULL if
 * the file or the field is absent).  0, or -1 with e set. */
static int hf_config_eos(const char *dir, char **name, Err *e) {
    *name = NULL;
    char *path = xasprintf("%s/tokenizer_config.json", dir);
    size_t len = 0;
    char *text = util_file_exists(path) ? util_read_file(path, &len, e) : NULL;
    int rc = util_file_exists(path) && !text ? -1 : 0;
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    if (text && !root)
        rc = err_set(e, "%s:%d: invalid JSON (truncated or malformed)", path,
                     json_error_line(text, len));
    const cJSON *eos = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "eos_token")
                                            : NULL;
    if (cJSON_IsObject(eos)) eos = cJSON_GetObjectItemCaseSensitive(eos, "content");
    if (cJSON_IsString(eos))
        *name = xstrdup(eos->valuestring);
    else if (root && eos && !cJSON_IsNull(eos))
        rc = err_set(e, "%s: eos_token: expected a string, {\"content\": ...} or null", path);
    cJSON_Delete(root);
    free(text);
    free(path);
    return rc;
}

/* d->eot_id: tokenizer_config.json's eos_token, else a usual name. */
static int hf_choose_eot(const HfLoad *L, const char *dir) {
    static const char *const usual[] = {"<|endoftext|>", "<|end_of_text|>", "<|im_end|>", NULL};
    char *name = NULL, q[96];
    if (hf_config_eos(dir, &name, L->e) != 0) return -1;
    TokenizerData *d = L->d;
    if (name) {
        d->eot_id = hf_special_id(d, name);
        int rc = 0;
        if (d->eot_id < 0)
            rc = err_set(L->e, "%s/tokenizer_config.json: eos_token: %s is not a special token "
                               "of %s (hint: fix the file, or remove it and choose with "
                               "tokenizer_set_eot)",
                         dir, msg_token(name, strlen(name), q), L->path);
        free(name);
        return rc;
    }
    for (const char *const *u = usual; *u && d->eot_id < 0; u++) d->eot_id = hf_special_id(d, *u);
    if (d->eot_id < 0)
        return hf_fail(L, "added_tokens", "no end-of-text token: no tokenizer_config.json "
                                          "eos_token beside it and no special <|endoftext|>, "
                                          "<|end_of_text|> or <|im_end|> (hint: add "
                                          "tokenizer_config.json with \"eos_token\")");
    return 0;
}

/* Everything but the end-of-text id, from the parsed file into L->d. */
static int hf_read_all(const HfLoad *L, const cJSON *root) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (hf_top_level(L, root) || hf_model_options(L, model) ||
        hf_normalizer(L, cJSON_GetObjectItemCaseSensitive(root, "normalizer")) ||
        hf_pre_tokenizer(L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")) ||
        hf_decoder(L, cJSON_GetObjectItemCaseSensitive(root, "decoder")) ||
        hf_post_processor(L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"),
                          "post_processor"))
        return -1;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    HfVocab V;
    memset(&V, 0, sizeof V);
    V.cap = cJSON_GetArraySize(vocab) + (cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0);
    V.key = xcalloc((size_t)V.cap + 1, sizeof *V.key);
    V.added = xcalloc((size_t)V.cap + 1, sizeof *V.added);
    V.added_index = xcalloc((size_t)V.cap + 1, sizeof *V.added_index);
    bytesmap_init(&V.keys, (size_t)V.cap);
    int rc = hf_read_vocab(L, vocab, &V);
    if (rc == 0) rc = hf_read_added(L, added, &V);
    if (rc == 0) rc = hf_build_tokens(L, &V);
    if (rc == 0) rc = hf_read_merges(L, &V, cJSON_GetObjectItemCaseSensitive(model, "merges"));
    hfvocab_free(&V);
    return rc;
}

Tokenizer *tokenizer_load_hf(const char *path, Err *e) {
    struct stat st;
    int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    char *file = is_dir ? xasprintf("%s/tokenizer.json", path) : xstrdup(path);
    char *dir = is_dir ? xstrdup(path) : xstrdup(file);
    if (!is_dir) {
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            strcpy(dir, ".");
    }
    size_t len = 0;
    char *text = util_read_file(file, &len, e);
    TokenizerData d;
    memset(&d, 0, sizeof d);
    d.kind = TOKENIZER_HF;
    d.eot_id = d.sep_id = -1;
    HfLoad L = {file, e, {0}, &d};
    gpt2_byte_table(L.byte_of);
    Tokenizer *t = NULL;
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    if (text && !root)
        err_set(e, "%s:%d: invalid JSON (truncated or malformed; expected a Hugging Face "
                   "tokenizer.json)",
                file, json_error_line(text, len));
    if (root && hf_read_all(&L, root) == 0 && hf_choose_eot(&L, dir) == 0) {
        d.source = text;
        d.source_len = (int64_t)len;
        text = NULL;
        Err sub;
        t = tokenizer_from_data(&d, &sub);
        if (!t) err_set(e, "%s: %s", file, sub.msg);
    }
    cJSON_Delete(root);
    tokenizer_data_free(&d);
    free(text);
    free(file);
    free(dir);
    return t;
}
