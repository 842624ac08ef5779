/* test_tokenizer -- unicode classes and UTF-8 decoding, GPT-2 pre-tokenizer
 * splits, BPE encode against a naive reference, round trips, training
 * (determinism, compression, errors), TokenizerData round trips and GPT-2
 * file import errors; for Hugging Face tokenizer.json files: NFC, the Llama
 * 3 / Qwen2 / Digits splits (expected splits from Hugging Face tokenizers),
 * added and special tokens, the end-of-text choice, loader errors, and
 * TokenizerData round trips in memory and through a checkpoint file.
 * Trains on Debian's fortunes and WordNet glosses (installed by
 * tools/deps.sh / CI).  Prints training time and encoding throughput (not
 * asserted).  GPT-2 id compatibility is tested by
 * tests/e2e/t_tokenizer_gpt2.sh, tokenizer.json compatibility by
 * tests/e2e/t_tokenizer_hf.sh. */
#include <cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "engine/tokenizer.h"
#include "base/nfc.h"
#include "base/unicode.h"
#include "base/util.h"
#include "io/ckpt.h"
#include "io/store.h"

/* ---- corpus ------------------------------------------------------------------ */

typedef struct {
    char **texts;
    size_t *lens;
    size_t n, cap, bytes;
} Corpus;

static void corpus_add(Corpus *c, const char *s, size_t n) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->texts = xrealloc(c->texts, c->cap * sizeof *c->texts);
        c->lens = xrealloc(c->lens, c->cap * sizeof *c->lens);
    }
    c->texts[c->n] = xstrndup(s, n);
    c->lens[c->n++] = n;
    c->bytes += n;
}

static void corpus_free(Corpus *c) {
    for (size_t i = 0; i < c->n; i++) free(c->texts[i]);
    free(c->texts);
    free(c->lens);
    memset(c, 0, sizeof *c);
}

static const char *FORTUNE_FILES[] = {
    "art",       "computers",  "cookie",      "debian",        "definitions", "disclaimer",
    "drugs",     "education",  "ethnic",      "food",          "fortunes",    "goedel",
    "humorists", "kids",       "knghtbrd",    "law",           "linux",       "linuxcookie",
    "literature", "love",      "magic",       "medicine",      "men-women",   "miscellaneous",
    "news",      "paradoxum",  "people",      "perl",          "pets",        "platitudes",
    "politics",  "pratchett",  "riddles",     "science",       "songs-poems", "sports",
    "startrek",  "tao",        "translate-me", "wisdom",       "work",        "zippy",
};

/* Every fortune ("%" lines separate them): index % 4 == 0 goes to held,
 * the others to train. */
static void read_fortunes(Corpus *train, Corpus *held) {
    size_t k = 0;
    for (size_t f = 0; f < sizeof FORTUNE_FILES / sizeof *FORTUNE_FILES; f++) {
        char *path = xasprintf("/usr/share/games/fortunes/%s", FORTUNE_FILES[f]);
        Err e;
        size_t len;
        char *s = util_read_file(path, &len, &e);
        free(path);
        if (!s) continue; /* the set of files varies a little between releases */
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
            int end = i == len || (s[i] == '%' && (i == 0 || s[i - 1] == '\n') &&
                                   (i + 1 == len || s[i + 1] == '\n'));
            if (!end) continue;
            if (i > start) corpus_add(k++ % 4 == 0 ? held : train, s + start, i - start);
            start = i + 2;
            i++;
        }
        free(s);
    }
}

/* WordNet glosses (text after "| " on each synset line) until max_bytes. */
static void read_glosses(Corpus *c, const char *file, size_t max_bytes) {
    char *path = xasprintf("/usr/share/wordnet/%s", file);
    Err e;
    size_t len;
    char *s = util_read_file(path, &len, &e);
    CHECK(s, "%s (install wordnet-base)", e.msg);
    free(path);
    for (size_t i = 0; i < len && c->bytes < max_bytes;) {
        size_t j = i;
        while (j < len && s[j] != '\n') j++;
        if (!(j - i >= 2 && s[i] == ' ' && s[i + 1] == ' ')) {
            const char *bar = memmem(s + i, j - i, "| ", 2);
            if (bar) {
                size_t a = (size_t)(bar + 2 - s), b = j;
                while (b > a && s[b - 1] == ' ') b--;
                if (b > a) corpus_add(c, s + a, b - a);
            }
        }
        i = j + 1;
    }
    free(s);
}

/* ---- helpers ------------------------------------------------------------------ */

static int data_equal(const TokenizerData *a, const TokenizerData *b) {
    if (a->n_vocab != b->n_vocab || a->n_merges != b->n_merges || a->eot_id != b->eot_id ||
        a->sep_id != b->sep_id)
        return 0;
    size_t V = (size_t)a->n_vocab;
    return memcmp(a->offsets, b->offsets, (V + 1) * sizeof *a->offsets) == 0 &&
           memcmp(a->blob, b->blob, (size_t)a->offsets[V]) == 0 &&
           memcmp(a->special, b->special, V) == 0 &&
           memcmp(a->merges, b->merges, 2 * (size_t)a->n_merges * sizeof *a->merges) == 0;
}

static int roundtrip(const Tokenizer *t, const char *s, size_t n, size_t *n_ids) {
    IntVec ids = {0};
    ByteBuf back = {0};
    Err e;
    tokenizer_encode(t, s, n, &ids);
    int ok = tokenizer_decode(t, ids.a, ids.n, &back, &e) == 0 && back.n == n &&
             (n == 0 || memcmp(back.a, s, n) == 0);
    for (size_t i = 0; i < ids.n; i++)
        if (ids.a[i] < 0 || ids.a[i] >= tokenizer_vocab_size(t) ||
            ids.a[i] == tokenizer_eot_id(t) || ids.a[i] == tokenizer_sep_id(t))
            ok = 0;
    if (n_ids) *n_ids = ids.n;
    intvec_free(&ids);
    bytebuf_free(&back);
    return ok;
}

/* ---- naive reference BPE (GPT-2's encoder.py loop) on a TokenizerData -------- */

typedef struct {
    int a, b, rank, result;
} RefMerge;

typedef struct {
    const TokenizerData *d;
    RefMerge *m; /* sorted by (a, b) */
    int *by_bytes; /* ordinary token ids sorted by their bytes */
    int n_by_bytes;
} RefBpe;

static const TokenizerData *g_sort_data;

static int cmp_token_bytes(const void *x, const void *y) {
    const TokenizerData *d = g_sort_data;
    int i = *(const int *)x, j = *(const int *)y;
    size_t li = (size_t)(d->offsets[i + 1] - d->offsets[i]);
    size_t lj = (size_t)(d->offsets[j + 1] - d->offsets[j]);
    int c = memcmp(d->blob + d->offsets[i], d->blob + d->offsets[j], li < lj ? li : lj);
    return c ? c : (li > lj) - (li < lj);
}

static int cmp_merge(const void *x, const void *y) {
    const RefMerge *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return (p->b > q->b) - (p->b < q->b);
}

static int ref_find_bytes(const RefBpe *r, const uint8_t *p, size_t n) {
    int lo = 0, hi = r->n_by_bytes;
    while (lo < hi) {
        int mid = (lo + hi) / 2, id = r->by_bytes[mid];
        size_t l = (size_t)(r->d->offsets[id + 1] - r->d->offsets[id]);
        int c = memcmp(r->d->blob + r->d->offsets[id], p, l < n ? l : n);
        if (!c) c = (l > n) - (l < n);
        if (c == 0) return id;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void ref_init(RefBpe *r, const TokenizerData *d) {
    r->d = d;
    r->by_bytes = xmalloc((size_t)d->n_vocab * sizeof *r->by_bytes);
    r->n_by_bytes = 0;
    for (int i = 0; i < d->n_vocab; i++)
        if (!d->special[i]) r->by_bytes[r->n_by_bytes++] = i;
    g_sort_data = d;
    qsort(r->by_bytes, (size_t)r->n_by_bytes, sizeof *r->by_bytes, cmp_token_bytes);
    r->m = xmalloc((size_t)(d->n_merges ? d->n_merges : 1) * sizeof *r->m);
    ByteBuf cat = {0};
    for (int k = 0; k < d->n_merges; k++) {
        int a = d->merges[2 * k], b = d->merges[2 * k + 1];
        cat.n = 0;
        bytebuf_put(&cat, d->blob + d->offsets[a], (size_t)(d->offsets[a + 1] - d->offsets[a]));
        bytebuf_put(&cat, d->blob + d->offsets[b], (size_t)(d->offsets[b + 1] - d->offsets[b]));
        r->m[k] = (RefMerge){a, b, k, ref_find_bytes(r, (const uint8_t *)cat.a, cat.n)};
    }
    bytebuf_free(&cat);
    qsort(r->m, (size_t)d->n_merges, sizeof *r->m, cmp_merge);
}

static void ref_free(RefBpe *r) {
    free(r->m);
    free(r->by_bytes);
}

/* BPE of one pre-tokenized chunk, exactly as encoder.py's bpe(). */
static void ref_encode_chunk(const RefBpe *r, const uint8_t *s, size_t n, IntVec *out) {
    int *w = xmalloc((n ? n : 1) * sizeof *w);
    for (size_t i = 0; i < n; i++) w[i] = ref_find_bytes(r, s + i, 1);
    for (;;) {
        const RefMerge *best = NULL;
        for (size_t i = 0; i + 1 < n; i++) {
            RefMerge key = {w[i], w[i + 1], 0, 0};
            const RefMerge *m = bsearch(&key, r->m, (size_t)r->d->n_merges, sizeof key, cmp_merge);
            if (m && (!best || m->rank < best->rank)) best = m;
        }
        if (!best) break;
        size_t k = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && w[i] == best->a && w[i + 1] == best->b) {
                w[k++] = best->result;
                i += 2;
            } else {
                w[k++] = w[i++];
            }
        }
        n = k;
    }
    for (size_t i = 0; i < n; i++) intvec_push(out, w[i]);
    free(w);
}

static int ids_equal(const IntVec *a, const IntVec *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->a, b->a, a->n * sizeof *a->a) == 0);
}

/* ---- a tokenizer that makes chunk boundaries visible ------------------------------
 * Its vocabulary holds every substring of one text, with a merge for every
 * way to split each; inside a chunk any two neighbouring tokens can merge,
 * so each chunk encodes to exactly one token, and decoding the ids one by
 * one lists the pre-tokenizer's chunks. */

/* pattern < 0: the GPT-2 kind; else a Hugging Face kind with that pattern
 * and digits mode (TOKENIZER_PATTERN_*, TOKENIZER_DIGITS_*). */
static Tokenizer *substring_tokenizer(const char *s, size_t n, int pattern, int digits) {
    ByteBuf blob = {0};
    IntVec off = {0}; /* token starts into blob; +1 sentinel at the end */
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        intvec_push(&off, (int)blob.n);
        bytebuf_put(&blob, &c, 1);
    }
    IntVec merges = {0};
    for (size_t L = 2; L <= n; L++)
        for (size_t i = 0; i + L <= n; i++) {
            int dup = 0;
            for (size_t t = 256; t < off.n && !dup; t++) {
                size_t tl = (size_t)((t + 1 < off.n ? off.a[t + 1] : (int)blob.n) - off.a[t]);
                dup = tl == L && memcmp(blob.a + off.a[t], s + i, L) == 0;
            }
            if (dup) continue;
            intvec_push(&off, (int)blob.n);
            bytebuf_put(&blob, s + i, L);
        }
    int V = (int)off.n + 1; /* + end-of-text */
    TokenizerData d = {0};
    d.n_vocab = V;
    d.offsets = xmalloc((size_t)(V + 1) * sizeof *d.offsets);
    for (int i = 0; i + 1 < V; i++) d.offsets[i] = off.a[i];
    d.offsets[V - 1] = (int64_t)blob.n;
    bytebuf_put(&blob, "<|endoftext|>", 13);
    d.offsets[V] = (int64_t)blob.n;
    d.blob = (uint8_t *)blob.a;
    d.special = xcalloc((size_t)V, 1);
    d.special[V - 1] = 1;
    d.eot_id = V - 1;
    d.sep_id = -1;
    if (pattern >= 0) {
        d.kind = TOKENIZER_HF;
        d.pattern = pattern;
        d.digits = digits;
    }
    /* merges: for each substring token (shorter first), every split */
    for (int t = 256; t < V - 1; t++) {
        const char *p = blob.a + d.offsets[t];
        size_t L = (size_t)(d.offsets[t + 1] - d.offsets[t]);
        for (size_t k = 1; k < L; k++) {
            int ids[2] = {-1, -1};
            for (int h = 0; h < 2; h++) {
                const char *q = h ? p + k : p;
                size_t ql = h ? L - k : k;
                for (int u = 0; u < V - 1 && ids[h] < 0; u++)
                    if ((size_t)(d.offsets[u + 1] - d.offsets[u]) == ql &&
                        memcmp(blob.a + d.offsets[u], q, ql) == 0)
                        ids[h] = u;
            }
            intvec_push(&merges, ids[0]);
            intvec_push(&merges, ids[1]);
        }
    }
    d.n_merges = (int)(merges.n / 2);
    d.merges = xmalloc((merges.n ? merges.n : 1) * sizeof *d.merges);
    for (size_t i = 0; i < merges.n; i++) d.merges[i] = merges.a[i];
    Err e;
    Tokenizer *t = tokenizer_from_data(&d, &e);
    CHECK(t, "substring tokenizer: %s", e.msg);
    tokenizer_data_free(&d);
    intvec_free(&off);
    intvec_free(&merges);
    return t;
}

/* Chunks of s as "[chunk][chunk]..." (bytes as they are): every substring
 * is a token, so each chunk merges into one. */
static char *split_of(const char *s, size_t n, int pattern, int digits) {
    Tokenizer *t = substring_tokenizer(s, n, pattern, digits);
    IntVec ids = {0};
    tokenizer_encode(t, s, n, &ids);
    ByteBuf out = {0};
    bytebuf_put(&out, "", 0);
    for (size_t i = 0; i < ids.n; i++) {
        size_t l;
        const uint8_t *p = tokenizer_token_bytes(t, ids.a[i], &l);
        bytebuf_putc(&out, '[');
        bytebuf_put(&out, p, l);
        bytebuf_putc(&out, ']');
    }
    intvec_free(&ids);
    tokenizer_destroy(t);
    return out.a;
}

#define EXPECT_SPLIT(text, want)                                                        \
    do {                                                                                \
        char *got_ = split_of(text, sizeof(text) - 1, -1, 0);                           \
        EXPECT(strcmp(got_, want) == 0, "split of %s: got %s want %s", #text, got_, want); \
        free(got_);                                                                     \
    } while (0)

/* ---- tests ------------------------------------------------------------------------ */

static void test_unicode(void) {
    EXPECT(unicode_is_letter('A') && unicode_is_letter('z') && !unicode_is_letter('1'), "ascii");
    EXPECT(unicode_is_letter(0xE9) && unicode_is_letter(0x3B1) && unicode_is_letter(0x436) &&
               unicode_is_letter(0x6F22) && unicode_is_letter(0x30AB) && unicode_is_letter(0x1D518),
           "letters: e-acute, alpha, zhe, CJK, katakana, math fraktur");
    EXPECT(!unicode_is_letter(0x301) && !unicode_is_letter(0x1F600) && !unicode_is_letter(0xD7),
           "combining acute, emoji, multiplication sign are not letters");
    EXPECT(unicode_is_number('7') && unicode_is_number(0x663) && unicode_is_number(0xB2) &&
               unicode_is_number(0x216B) && unicode_is_number(0x2460) && !unicode_is_number('x'),
           "numbers: 7, Arabic-Indic 3, superscript 2, Roman XII, circled 1");
    EXPECT(unicode_is_space(' ') && unicode_is_space('\t') && unicode_is_space('\n') &&
               unicode_is_space(0x0B) && unicode_is_space(0x0C) && unicode_is_space('\r') &&
               unicode_is_space(0x85) && unicode_is_space(0xA0) && unicode_is_space(0x2009) &&
               unicode_is_space(0x3000) && unicode_is_space(0x2028),
           "White_Space members");
    EXPECT(!unicode_is_space(0x1C) && !unicode_is_space(0x1F) && !unicode_is_space(0xFEFF) &&
               !unicode_is_space(0x200B) && !unicode_is_space(0x180E),
           "not White_Space: 1C, 1F, FEFF, ZWSP, 180E");
    EXPECT(!unicode_is_letter(UNICODE_INVALID) && !unicode_is_number(UNICODE_INVALID) &&
               !unicode_is_space(UNICODE_INVALID) && !unicode_is_letter(0x110000),
           "invalid is in no class");
    EXPECT(strcmp(unicode_version, "14.0.0") == 0, "tables are Unicode %s", unicode_version);

    struct {
        const char *s;
        size_t len, used;
        uint32_t cp;
    } cases[] = {
        {"A", 1, 1, 'A'},
        {"\xc3\xa9", 2, 2, 0xE9},
        {"\xe2\x82\xac", 3, 3, 0x20AC},
        {"\xf0\x9f\x98\x80", 4, 4, 0x1F600},
        {"\xf4\x8f\xbf\xbf", 4, 4, 0x10FFFF},
        {"\xc0\x80", 2, 1, UNICODE_INVALID},         /* overlong NUL */
        {"\xe0\x80\xaf", 3, 1, UNICODE_INVALID},     /* overlong '/' */
        {"\xed\xa0\x80", 3, 1, UNICODE_INVALID},     /* surrogate D800 */
        {"\xf4\x90\x80\x80", 4, 1, UNICODE_INVALID}, /* 0x110000 */
        {"\xe2\x82", 2, 1, UNICODE_INVALID},         /* truncated */
        {"\x80", 1, 1, UNICODE_INVALID},             /* stray continuation */
        {"\xff", 1, 1, UNICODE_INVALID},
        {"\xc3(", 2, 1, UNICODE_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint32_t cp = 0;
        size_t used = unicode_decode_utf8((const uint8_t *)cases[i].s, cases[i].len, &cp);
        EXPECT(used == cases[i].used && cp == cases[i].cp, "decode case %zu: used %zu cp %x", i,
               used, cp);
    }
}

static void test_splits(void) {
    /* contractions (case-sensitive, as in GPT-2) */
    EXPECT_SPLIT("I'm here", "[I]['m][ here]");
    EXPECT_SPLIT("they're we've I'll he'd it's don't",
                 "[they]['re][ we]['ve][ I]['ll][ he]['d][ it]['s][ don]['t]");
    EXPECT_SPLIT("IT'S", "[IT]['][S]");
    EXPECT_SPLIT("'x ?'s", "['][x][ ?'][s]");
    EXPECT_SPLIT("'''s", "['''][s]");
    /* " ?\p{L}+" */
    EXPECT_SPLIT("Hello world", "[Hello][ world]");
    EXPECT_SPLIT("h\xc3\xa9llo w\xc3\xb6rld", "[h\xc3\xa9llo][ w\xc3\xb6rld]");
    EXPECT_SPLIT("\xe6\x97\xa5\xe6\x9c\xac \xce\xb1\xce\xb2",
                 "[\xe6\x97\xa5\xe6\x9c\xac][ \xce\xb1\xce\xb2]");
    /* numbers */
    EXPECT_SPLIT("abc123 4567", "[abc][123][ 4567]");
    EXPECT_SPLIT("a1b2", "[a][1][b][2]");
    EXPECT_SPLIT("3.14", "[3][.][14]");
    EXPECT_SPLIT("\xd9\xa3\xd9\xa4 \xc2\xb2", "[\xd9\xa3\xd9\xa4][ \xc2\xb2]");
    /* punctuation runs */
    EXPECT_SPLIT("hello!!! ...world?", "[hello][!!!][ ...][world][?]");
    EXPECT_SPLIT("x=(y+z);", "[x][=(][y][+][z][);]");
    EXPECT_SPLIT("\xf0\x9f\x98\x80\xf0\x9f\x98\x80 ok", "[\xf0\x9f\x98\x80\xf0\x9f\x98\x80][ ok]");
    /* whitespace: \s+(?!\S) gives the last space to the next word */
    EXPECT_SPLIT("a   b", "[a][  ][ b]");
    EXPECT_SPLIT("  hi", "[ ][ hi]");
    EXPECT_SPLIT("hi  ", "[hi][  ]");
    EXPECT_SPLIT(" ", "[ ]");
    EXPECT_SPLIT("a \tb", "[a][ ][\t][b]");
    EXPECT_SPLIT("\n\nb", "[\n][\n][b]");
    EXPECT_SPLIT("a\n\n", "[a][\n\n]");
    EXPECT_SPLIT("a\t\t b", "[a][\t\t][ b]");
    EXPECT_SPLIT("a\xc2\xa0" "b", "[a][\xc2\xa0][b]");
    EXPECT_SPLIT("a \xc2\xa0" "b", "[a][ ][\xc2\xa0][b]");
    EXPECT_SPLIT("x \xe3\x80\x80 y", "[x][ \xe3\x80\x80][ y]");
    /* bytes that are not UTF-8 are single "other" characters; so is NUL */
    EXPECT_SPLIT("a\xff\xfe" "b", "[a][\xff\xfe][b]");
    EXPECT_SPLIT(" \xff" "b", "[ \xff][b]");
    EXPECT_SPLIT("\xe2\x82x", "[\xe2\x82][x]");
    EXPECT_SPLIT("\xc3\xa9\x80", "[\xc3\xa9][\x80]");
    EXPECT_SPLIT("\xed\xa0\x80z", "[\xed\xa0\x80][z]");
    char nul[] = {'a', 0, 'b', ' ', 0};
    char *got = split_of(nul, sizeof nul, -1, 0);
    EXPECT(memcmp(got, "[a][\0][b][ \0]", 14) == 0, "split with NUL bytes");
    free(got);
}

typedef struct {
    const Tokenizer *t;
    const Corpus *c;
    const IntVec *want;
    int ok;
} ThreadJob;

static void *encode_thread(void *arg) {
    ThreadJob *j = arg;
    IntVec ids = {0};
    for (size_t i = 0; i < j->c->n; i++)
        tokenizer_encode(j->t, j->c->texts[i], j->c->lens[i], &ids);
    j->ok = ids_equal(&ids, j->want);
    intvec_free(&ids);
    return NULL;
}

static const char MIXED[] = "the cat's\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80!?\n";

static void test_roundtrips(const Tokenizer *t) {
    Rng r;
    rng_seed(&r, 12345);
    int bad = 0;
    for (int it = 0; it < 300; it++) {
        size_t n = (size_t)rng_below(&r, 300);
        char *s = xmalloc(n + 1);
        int mode = it % 5;
        for (size_t i = 0; i < n; i++) {
            uint64_t x = rng_u64(&r);
            if (mode == 0) s[i] = (char)(x & 0xff);                        /* any bytes */
            else if (mode == 1) s[i] = (x & 3) ? 0 : (char)(x >> 8);       /* mostly NUL */
            else if (mode == 2) s[i] = (x % 10) ? ' ' : "ab\t\n"[(x >> 8) & 3]; /* space runs */
            else if (mode == 3) s[i] = MIXED[x % (sizeof MIXED - 1)];
            else s[i] = (char)(0x80 + (x & 0x7f)); /* continuation bytes and lead bytes */
        }
        if (!roundtrip(t, s, n, NULL)) bad++;
        free(s);
    }
    EXPECT(bad == 0, "%d of 300 random byte strings did not round-trip", bad);
    char *spaces = xmalloc(100000);
    memset(spaces, ' ', 100000);
    EXPECT(roundtrip(t, spaces, 100000, NULL), "100000 spaces");
    spaces[99999] = 'x';
    EXPECT(roundtrip(t, spaces, 100000, NULL), "99999 spaces and x");
    free(spaces);
    EXPECT(roundtrip(t, "", 0, NULL), "empty string");

    /* long single chunks go through the heap merge; compare with the naive
     * reference loop (short chunks are covered by the corpus comparison) */
    TokenizerData d;
    tokenizer_to_data(t, &d);
    RefBpe ref;
    ref_init(&ref, &d);
    int mismatch = 0;
    for (int it = 0; it < 60; it++) {
        size_t n = 33 + (size_t)rng_below(&r, it < 50 ? 400 : 5000);
        char *s = xmalloc(n);
        size_t i = 0;
        if (it % 3 == 1) s[i++] = ' ';
        for (; i < n; i++) {
            uint64_t x = rng_u64(&r);
            if (it % 3 == 2) s[i] = "!.,;:-()[]\"'"[x % 12];   /* punctuation run */
            else s[i] = "etaoinshrdlucmfwypvbgkjqxz"[x % (it % 2 ? 8 : 26)];
        }
        IntVec a = {0}, b = {0};
        tokenizer_encode(t, s, n, &a);
        ref_encode_chunk(&ref, (const uint8_t *)s, n, &b);
        if (!ids_equal(&a, &b)) mismatch++;
        intvec_free(&a);
        intvec_free(&b);
        free(s);
    }
    EXPECT(mismatch == 0, "%d of 60 long chunks differ from the reference BPE", mismatch);
    ref_free(&ref);
    tokenizer_data_free(&d);
}

/* encode == reference BPE on every chunk of real text: splitting the ids by
 * the chunk boundaries needs the pre-tokenizer, so compare per word of
 * letters, which is always one chunk (with or without a leading space). */
static void test_reference_words(const Tokenizer *t, const Corpus *c) {
    TokenizerData d;
    tokenizer_to_data(t, &d);
    RefBpe ref;
    ref_init(&ref, &d);
    int mismatch = 0, checked = 0;
    for (size_t k = 0; k < c->n && checked < 20000; k += 7) {
        const char *s = c->texts[k];
        size_t n = c->lens[k];
        for (size_t i = 0; i < n && checked < 20000;) {
            size_t j = i + (s[i] == ' ');
            size_t e = j;
            while (e < n && ((s[e] | 32) >= 'a' && (s[e] | 32) <= 'z')) e++;
            if (e > j && (e == n || (unsigned char)s[e] < 0x80)) {
                IntVec a = {0}, b = {0};
                tokenizer_encode(t, s + i, e - i, &a);
                ref_encode_chunk(&ref, (const uint8_t *)s + i, e - i, &b);
                mismatch += !ids_equal(&a, &b);
                checked++;
                intvec_free(&a);
                intvec_free(&b);
            }
            i = e > i ? e : i + 1;
        }
    }
    EXPECT(checked > 1000 && mismatch == 0, "%d of %d corpus words differ from the reference",
           mismatch, checked);
    ref_free(&ref);
    tokenizer_data_free(&d);
}

/* Naive reference trainer: recounts every pair after each merge.  Texts
 * here are single chunks (letters with an optional leading space), so no
 * pre-tokenizer is needed.  Fills merges (2 per merge) and returns their
 * number; tokens are bytes then merge results (reusing equal bytes). */
static int ref_train(const Corpus *c, int n_ordinary, int *merges) {
    int V = n_ordinary;
    int64_t *cnt = xcalloc((size_t)V * (size_t)V, sizeof *cnt);
    char **tok = xcalloc((size_t)V, sizeof *tok);
    size_t *tlen = xcalloc((size_t)V, sizeof *tlen);
    for (int b = 0; b < 256; b++) {
        tok[b] = xmalloc(1);
        tok[b][0] = (char)b;
        tlen[b] = 1;
    }
    int **w = xmalloc(c->n * sizeof *w);
    size_t *wl = xmalloc(c->n * sizeof *wl);
    for (size_t i = 0; i < c->n; i++) {
        w[i] = xmalloc((c->lens[i] ? c->lens[i] : 1) * sizeof **w);
        for (size_t k = 0; k < c->lens[i]; k++) w[i][k] = (unsigned char)c->texts[i][k];
        wl[i] = c->lens[i];
    }
    int n_tok = 256, n_merges = 0;
    while (n_tok < V) {
        memset(cnt, 0, (size_t)V * (size_t)V * sizeof *cnt);
        for (size_t i = 0; i < c->n; i++)
            for (size_t k = 0; k + 1 < wl[i]; k++)
                cnt[(size_t)w[i][k] * (size_t)V + (size_t)w[i][k + 1]]++;
        int64_t best = 1;
        int ba = -1, bb = -1;
        for (int a = 0; a < n_tok; a++)
            for (int b = 0; b < n_tok; b++)
                if (cnt[(size_t)a * (size_t)V + (size_t)b] > best) {
                    best = cnt[(size_t)a * (size_t)V + (size_t)b];
                    ba = a;
                    bb = b;
                }
        if (ba < 0) break;
        size_t l = tlen[ba] + tlen[bb];
        char *cat = xmalloc(l);
        memcpy(cat, tok[ba], tlen[ba]);
        memcpy(cat + tlen[ba], tok[bb], tlen[bb]);
        int x = -1;
        for (int t = 0; t < n_tok && x < 0; t++)
            if (tlen[t] == l && memcmp(tok[t], cat, l) == 0) x = t;
        if (x < 0) {
            x = n_tok++;
            tok[x] = cat;
            tlen[x] = l;
        } else {
            free(cat);
        }
        merges[2 * n_merges] = ba;
        merges[2 * n_merges + 1] = bb;
        n_merges++;
        for (size_t i = 0; i < c->n; i++) {
            size_t m = 0;
            for (size_t k = 0; k < wl[i];) {
                if (k + 1 < wl[i] && w[i][k] == ba && w[i][k + 1] == bb) {
                    w[i][m++] = x;
                    k += 2;
                } else {
                    w[i][m++] = w[i][k++];
                }
            }
            wl[i] = m;
        }
    }
    for (size_t i = 0; i < c->n; i++) free(w[i]);
    free(w);
    free(wl);
    for (int t = 0; t < n_tok; t++) free(tok[t]);
    free(tok);
    free(tlen);
    free(cnt);
    return n_merges;
}

static void test_train_reference(const Corpus *src) {
    Corpus words = {0};
    for (size_t k = 0; k < src->n && words.n < 30000; k++) {
        const char *s = src->texts[k];
        size_t n = src->lens[k];
        for (size_t i = 0; i < n && words.n < 30000;) {
            size_t j = i + (s[i] == ' ');
            size_t e = j;
            while (e < n && ((s[e] | 32) >= 'a' && (s[e] | 32) <= 'z')) e++;
            if (e > j) corpus_add(&words, s + i, e - i);
            i = e > i ? e : i + 1;
        }
    }
    int vocab = 256 + 400 + 2;
    int *want = xmalloc(2 * 4000 * sizeof *want);
    int n_want = ref_train(&words, vocab - 2, want);
    Err e;
    Tokenizer *t =
        tokenizer_train((const char *const *)words.texts, words.lens, words.n, vocab, &e);
    EXPECT(t != NULL, "train on words: %s", e.msg);
    if (t) {
        TokenizerData d;
        tokenizer_to_data(t, &d);
        EXPECT(d.n_merges == n_want &&
                   memcmp(d.merges, want, 2 * (size_t)n_want * sizeof *want) == 0,
               "training differs from the naive reference (%d vs %d merges)", d.n_merges, n_want);
        tokenizer_data_free(&d);
        tokenizer_destroy(t);
    }
    free(want);
    corpus_free(&words);
}

static void test_training(void) {
    Corpus train = {0}, held = {0}, extra = {0};
    read_fortunes(&train, &held);
    EXPECT(train.n > 5000 && held.n > 1000, "fortunes read: %zu train, %zu held out (install "
                                            "fortunes and fortunes-min)", train.n, held.n);
    read_glosses(&train, "data.adj", 3000000);
    read_glosses(&train, "data.verb", 3000000);
    read_glosses(&extra, "data.noun", 1u << 30);
    printf("training corpus: %zu texts, %.2f MB; held out %zu texts, %.2f MB\n", train.n,
           train.bytes / 1e6, held.n, held.bytes / 1e6);

    Err e;
    double t0 = util_now();
    Tokenizer *t = tokenizer_train((const char *const *)train.texts, train.lens, train.n, 8192, &e);
    double dt = util_now() - t0;
    EXPECT(t != NULL, "train: %s", e.msg);
    if (!t) {
        corpus_free(&train);
        corpus_free(&held);
        corpus_free(&extra);
        return;
    }
    printf("train to vocab 8192: %.2f s\n", dt);
    EXPECT(tokenizer_vocab_size(t) == 8192 && tokenizer_eot_id(t) == 8190 &&
               tokenizer_sep_id(t) == 8191,
           "vocab %d eot %d sep %d", tokenizer_vocab_size(t), tokenizer_eot_id(t),
           tokenizer_sep_id(t));
    size_t l;
    const uint8_t *p = tokenizer_token_bytes(t, 8190, &l);
    EXPECT(p && l == 13 && memcmp(p, "<|endoftext|>", 13) == 0, "eot bytes");
    p = tokenizer_token_bytes(t, 8191, &l);
    EXPECT(p && l == 7 && memcmp(p, "<|sep|>", 7) == 0, "sep bytes");
    EXPECT(tokenizer_token_bytes(t, 8192, &l) == NULL && tokenizer_token_bytes(t, -1, &l) == NULL,
           "token_bytes out of range");
    p = tokenizer_token_bytes(t, 'A', &l);
    EXPECT(p && l == 1 && p[0] == 'A', "trained ids 0..255 are the bytes");
    /* the eot name as text encodes to ordinary tokens */
    IntVec ids = {0};
    tokenizer_encode(t, "<|endoftext|>", 13, &ids);
    int has_special = 0;
    for (size_t i = 0; i < ids.n; i++) has_special |= ids.a[i] >= 8190;
    EXPECT(ids.n > 1 && !has_special, "<|endoftext|> as text is not the special id");
    intvec_free(&ids);

    /* compression on held-out fortunes */
    size_t n_ids = 0, n_bytes = 0;
    int bad = 0;
    for (size_t i = 0; i < held.n; i++) {
        size_t k;
        if (!roundtrip(t, held.texts[i], held.lens[i], &k)) bad++;
        n_ids += k;
        n_bytes += held.lens[i];
    }
    double ipb = (double)n_ids / (double)n_bytes;
    printf("held-out: %.3f ids per byte (%.2f bytes per id)\n", ipb, 1.0 / ipb);
    EXPECT(bad == 0, "%d held-out texts did not round-trip", bad);
    EXPECT(ipb < 0.35, "ids per byte %.3f, want < 0.35", ipb);

    test_roundtrips(t);
    test_reference_words(t, &held);
    test_train_reference(&train);

    /* to_data -> from_data -> to_data */
    TokenizerData d1, d2;
    tokenizer_to_data(t, &d1);
    Tokenizer *t2 = tokenizer_from_data(&d1, &e);
    EXPECT(t2 != NULL, "from_data: %s", e.msg);
    if (t2) {
        tokenizer_to_data(t2, &d2);
        EXPECT(data_equal(&d1, &d2), "to_data/from_data round trip differs");
        tokenizer_data_free(&d2);
        IntVec a = {0}, b = {0};
        for (size_t i = 0; i < held.n; i += 10) {
            tokenizer_encode(t, held.texts[i], held.lens[i], &a);
            tokenizer_encode(t2, held.texts[i], held.lens[i], &b);
        }
        EXPECT(ids_equal(&a, &b), "rebuilt tokenizer encodes differently");
        intvec_free(&a);
        intvec_free(&b);
        tokenizer_destroy(t2);
    }

    /* determinism: same corpus, same data */
    Tokenizer *t3 =
        tokenizer_train((const char *const *)train.texts, train.lens, train.n, 8192, &e);
    EXPECT(t3 != NULL, "second training: %s", e.msg);
    if (t3) {
        tokenizer_to_data(t3, &d2);
        EXPECT(data_equal(&d1, &d2), "training twice gives different tokenizers");
        tokenizer_data_free(&d2);
        tokenizer_destroy(t3);
    }

    /* inconsistent data is refused */
    int saved = d1.merges[1];
    d1.merges[1] = d1.eot_id;
    t2 = tokenizer_from_data(&d1, &e);
    EXPECT(!t2 && strstr(e.msg, "merge 0"), "merge with a special id: %s", t2 ? "accepted" : e.msg);
    d1.merges[1] = saved;
    d1.special[d1.eot_id] = 0;
    t2 = tokenizer_from_data(&d1, &e);
    EXPECT(!t2 && strstr(e.msg, "end-of-text"), "eot not special: %s", t2 ? "accepted" : e.msg);
    d1.special[d1.eot_id] = 1;
    d1.blob[d1.offsets[300]] ^= 0x80; /* token 300 no longer merge 44's result */
    t2 = tokenizer_from_data(&d1, &e);
    EXPECT(!t2 && strstr(e.msg, "not in the vocabulary"), "merge result missing: %s",
           t2 ? "accepted" : e.msg);
    tokenizer_data_free(&d1);

    /* decode: out-of-range ids */
    ByteBuf out = {0};
    int bad_ids[] = {65, 8192};
    EXPECT(tokenizer_decode(t, bad_ids, 2, &out, &e) == -1 && strstr(e.msg, "8192"),
           "decode of id 8192: %s", e.msg);
    out.n = 0;
    int neg[] = {-1};
    EXPECT(tokenizer_decode(t, neg, 1, &out, &e) == -1 && strstr(e.msg, "-1"), "decode of -1");
    out.n = 0;
    int sp[] = {8190, 'x', 8191};
    EXPECT(tokenizer_decode(t, sp, 3, &out, &e) == 0 && out.n == 21 &&
               memcmp(out.a, "<|endoftext|>x<|sep|>", 21) == 0,
           "specials decode to their names");
    bytebuf_free(&out);

    /* throughput: all texts, serial, then two threads at once */
    Corpus all = {0};
    for (size_t i = 0; i < train.n; i++) corpus_add(&all, train.texts[i], train.lens[i]);
    for (size_t i = 0; i < held.n; i++) corpus_add(&all, held.texts[i], held.lens[i]);
    for (size_t i = 0; i < extra.n; i++) corpus_add(&all, extra.texts[i], extra.lens[i]);
    IntVec serial = {0};
    t0 = util_now();
    for (size_t i = 0; i < all.n; i++) tokenizer_encode(t, all.texts[i], all.lens[i], &serial);
    dt = util_now() - t0;
    printf("encode: %.2f MB in %.3f s = %.1f MB/s, %zu ids\n", all.bytes / 1e6, dt,
           all.bytes / 1e6 / dt, serial.n);
    ThreadJob jobs[2] = {{t, &all, &serial, 0}, {t, &all, &serial, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, encode_thread, &jobs[i]) == 0, "thread %d", i);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    EXPECT(jobs[0].ok && jobs[1].ok, "concurrent encodes differ from the serial one");
    intvec_free(&serial);
    corpus_free(&all);

    tokenizer_destroy(t);
    corpus_free(&train);
    corpus_free(&held);
    corpus_free(&extra);
}

static void test_train_errors(void) {
    Err e;
    const char *texts[] = {"hello hello hello", "abc"};
    size_t lens[] = {17, 3};
    Tokenizer *t = tokenizer_train(texts, lens, 2, 257, &e);
    EXPECT(!t && strstr(e.msg, "258"), "vocab_size 257: %s", t ? "accepted" : e.msg);
    t = tokenizer_train(texts, lens, 2, 1000, &e);
    EXPECT(!t && strstr(e.msg, "supports only") && strstr(e.msg, "1000"),
           "vocab_size 1000 on a tiny corpus: %s", t ? "accepted" : e.msg);
    t = tokenizer_train(texts, lens, 2, 2147483647, &e);
    EXPECT(!t && strstr(e.msg, "supports only"), "vocab_size INT_MAX: %s", t ? "accepted" : e.msg);
    t = tokenizer_train(texts, lens, 2, 260, &e);
    EXPECT(t != NULL, "vocab_size 260 on a tiny corpus: %s", e.msg);
    tokenizer_destroy(t);
    t = tokenizer_train(NULL, NULL, 0, 300, &e);
    EXPECT(!t && strstr(e.msg, "supports only"), "empty corpus");
    /* ties break on the smaller (left, right): "ab" and "cd" are equally
     * frequent, so "ab" is merge 0 */
    const char *tie[] = {"cd", "ab", "cd", "ab"};
    size_t tl[] = {2, 2, 2, 2};
    t = tokenizer_train(tie, tl, 4, 259, &e);
    EXPECT(t != NULL, "tie corpus: %s", e.msg);
    if (t) {
        TokenizerData d;
        tokenizer_to_data(t, &d);
        EXPECT(d.n_merges == 1 && d.merges[0] == 'a' && d.merges[1] == 'b',
               "first merge %d %d", d.merges[0], d.merges[1]);
        tokenizer_data_free(&d);
        tokenizer_destroy(t);
    }
}

/* ---- GPT-2 files ------------------------------------------------------------------ */

static char g_dir[512];

static char *write_file(const char *name, const char *text) {
    char *path = xasprintf("%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

/* GPT-2's byte -> code point map, written out independently of the module. */
static unsigned gpt2_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return (unsigned)b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) n++;
    return 256u + (unsigned)n;
}

/* A small vocab in GPT-2's format: ids 0..255 the bytes, then extra, then
 * <|endoftext|>. */
static char *small_vocab_json(const char *const *extra, int n_extra) {
    ByteBuf b = {0};
    bytebuf_putc(&b, '{');
    for (int i = 0; i < 256; i++) bytebuf_printf(&b, "\"\\u%04x\": %d, ", gpt2_cp(i), i);
    for (int i = 0; i < n_extra; i++) bytebuf_printf(&b, "\"%s\": %d, ", extra[i], 256 + i);
    bytebuf_printf(&b, "\"<|endoftext|>\": %d}", 256 + n_extra);
    return b.a;
}

static void expect_load_error(const char *vocab, const char *merges, const char *want1,
                              const char *want2) {
    Err e = {{0}};
    Tokenizer *t = tokenizer_load_gpt2(vocab, merges, &e);
    EXPECT(!t && strstr(e.msg, want1) && (!want2 || strstr(e.msg, want2)) && !strchr(e.msg, '\n'),
           "load error should name %s%s%s: got \"%s\"", want1, want2 ? " and " : "",
           want2 ? want2 : "", t ? "(loaded)" : e.msg);
    tokenizer_destroy(t);
}

/* A merges file error must read "PATH:LINE: ...". */
static void expect_merges_error(const char *vocab, const char *merges, int line, const char *want) {
    char *where = xasprintf("%s:%d:", merges, line);
    expect_load_error(vocab, merges, where, want);
    free(where);
}

static void test_gpt2_files(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/test_tokenizer.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(g_dir), "mkdtemp");
    const char *extra[] = {"\\u0120t", "he", "\\u0120the", "\\u0120\\u0120"};
    char *vj = small_vocab_json(extra, 4);
    char *vocab = write_file("vocab.json", vj);
    free(vj);
    char *merges = write_file("merges.txt", "#version: 0.2\n\xc4\xa0 t\nh e\n\xc4\xa0t he\n"
                                            "\xc4\xa0 \xc4\xa0\n");
    Err e;
    Tokenizer *t = tokenizer_load_gpt2(vocab, merges, &e);
    EXPECT(t != NULL, "small GPT-2 files: %s", e.msg);
    if (t) {
        IntVec ids = {0};
        tokenizer_encode(t, " the the  the", 13, &ids);
        int want[] = {258, 258, 32, 258};
        EXPECT(ids.n == 4 && memcmp(ids.a, want, sizeof want) == 0, "small vocab encode: %zu ids",
               ids.n);
        EXPECT(tokenizer_eot_id(t) == 260 && tokenizer_sep_id(t) == -1 &&
                   tokenizer_vocab_size(t) == 261,
               "eot %d sep %d", tokenizer_eot_id(t), tokenizer_sep_id(t));
        size_t l;
        const uint8_t *p = tokenizer_token_bytes(t, 256, &l);
        EXPECT(p && l == 2 && memcmp(p, " t", 2) == 0, "token 256 is \" t\"");
        p = tokenizer_token_bytes(t, 10, &l);
        EXPECT(p && l == 1 && p[0] == 10, "token 10 is the byte 0x0a");
        EXPECT(roundtrip(t, "\x00\x01 \xff\xfe the\n\n", 12, NULL), "small vocab round trip");
        intvec_free(&ids);
        tokenizer_destroy(t);
    }

    /* missing files */
    char *nov = xasprintf("%s/no-such-vocab.json", g_dir);
    char *nom = xasprintf("%s/no-such-merges.txt", g_dir);
    expect_load_error(nov, merges, nov, "No such file");
    expect_load_error(vocab, nom, nom, "No such file");
    /* malformed vocab */
    char *p1 = write_file("bad1.json", "{\"a\": 0,\n \"b\": }\n");
    expect_load_error(p1, merges, p1, "invalid JSON");
    char *p2 = write_file("bad2.json", "[1, 2, 3]");
    expect_load_error(p2, merges, p2, "JSON object");
    const char *ex3[] = {"\\u0120t", "he", "\\u0120the", "\\u0120\\u0120"};
    vj = small_vocab_json(ex3, 4);
    char *sub = strstr(vj, "\"he\": 257");
    memcpy(sub, "\"he\": 999", 9);
    char *p3 = write_file("bad3.json", vj);
    free(vj);
    expect_load_error(p3, merges, p3, "\"he\"");
    vj = small_vocab_json(ex3, 4);
    sub = strstr(vj, "\"<|endoftext|>\"");
    memcpy(sub, "\"<|endoftexx|>\"", 15);
    char *p4 = write_file("bad4.json", vj);
    free(vj);
    expect_load_error(p4, merges, p4, NULL);
    const char *ex5[] = {"\\u0120t", "h\\u0001e", "\\u0120the", "\\u0120\\u0120"};
    vj = small_vocab_json(ex5, 4);
    char *p5 = write_file("bad5.json", vj);
    free(vj);
    expect_load_error(p5, merges, p5, "alphabet");
    /* malformed merges: the message names file and line */
    char *m1 = write_file("m1.txt", "\xc4\xa0 t\nh e\n");
    expect_merges_error(vocab, m1, 1, "#version");
    char *m2 = write_file("m2.txt", "#version: 0.2\n\xc4\xa0 t\nh e x\n");
    expect_merges_error(vocab, m2, 3, "3 fields");
    char *m3 = write_file("m3.txt", "#version: 0.2\n\xc4\xa0 t\nh zz\n");
    expect_merges_error(vocab, m3, 3, "\"zz\"");
    char *m4 = write_file("m4.txt", "#version: 0.2\n\xc4\xa0 t\r\n\r\nt h\n");
    expect_merges_error(vocab, m4, 4, "not in the vocabulary");
    char *m5 = write_file("m5.txt", "#version: 0.2\nh e\n\xc4\xa0 t\nh e\n");
    expect_merges_error(vocab, m5, 4, "line 2");
    char *m6 = write_file("m6.txt", "");
    expect_merges_error(vocab, m6, 1, NULL);

    const char *names[] = {"vocab.json", "merges.txt", "bad1.json", "bad2.json", "bad3.json",
                           "bad4.json",  "bad5.json",  "m1.txt",    "m2.txt",    "m3.txt",
                           "m4.txt",     "m5.txt",     "m6.txt"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char *p = xasprintf("%s/%s", g_dir, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(g_dir);
    free(vocab);
    free(merges);
    free(nov);
    free(nom);
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    free(p5);
    free(m1);
    free(m2);
    free(m3);
    free(m4);
    free(m5);
    free(m6);
}

/* ---- Hugging Face kind: splits, NFC, tokenizer.json, persistence ------------------ */

#define SPLIT_LLAMA3 TOKENIZER_PATTERN_LLAMA3, TOKENIZER_DIGITS_NONE
#define SPLIT_QWEN2 TOKENIZER_PATTERN_QWEN2, TOKENIZER_DIGITS_NONE
#define SPLIT_DIGITS TOKENIZER_PATTERN_GPT2, TOKENIZER_DIGITS_INDIVIDUAL
#define SPLIT_RUNS TOKENIZER_PATTERN_GPT2, TOKENIZER_DIGITS_RUNS
#define EXPECT_SPLIT_HF(kind, text, want)                                               \
    do {                                                                                \
        char *got_ = split_of(text, sizeof(text) - 1, kind);                            \
        EXPECT(strcmp(got_, want) == 0, "%s split of %s: got %s want %s", #kind, #text, \
               got_, want);                                                             \
        free(got_);                                                                     \
    } while (0)

/* Expected splits are Hugging Face tokenizers' (Rust, 0.22.2: the words of
 * an encoding with a byte-only vocabulary) for the patterns of Llama 3's and
 * Qwen3's tokenizer.json and for Digits + ByteLevel. */
static void test_hf_splits(void) {
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "I'm HERE it'S we'Ve YOU'LL x'\xc5\xbft",
                    "[I]['m][ HERE][ it]['S][ we]['Ve][ YOU]['LL][ x]['\xc5\xbf][t]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "'x ?'s '''s", "['x][ ?'][s][ '''][s]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "Hello world (word) \"quote\"",
                    "[Hello][ world][ (][word][)][ \"][quote][\"]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "abc12345 6789 a1b2", "[abc][123][45][ ][678][9][ a][1][b][2]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "3.14 x\xc2\xb2\xc2\xb3 \xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6",
                    "[3][.][14][ x][\xc2\xb2\xc2\xb3][ ][\xd9\xa3\xd9\xa4\xd9\xa5][\xd9\xa6]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "hello!!! ...world?\r\nnext",
                    "[hello][!!!][ ...][world][?\r\n][next]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "a   b", "[a][  ][ b]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "  hi", "[ ][ hi]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "hi  ", "[hi][  ]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "a \tb", "[a][ ][\tb]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "a  \r\n  b\t\tc  ", "[a][  \r\n][ ][ b][\t][\tc][  ]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "\n\nb", "[\n\n][b]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "a\n\n", "[a][\n\n]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, " \n \nx", "[ \n \n][x]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "x!!\r\n\r\ny", "[x][!!\r\n\r\n][y]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "\tword\rword", "[\tword][\r][word]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "a\xc2\xa0" "b \xe3\x80\x80" "c",
                    "[a][\xc2\xa0" "b][ ][\xe3\x80\x80" "c]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "\xe6\x97\xa5\xe6\x9c\xac \xce\xb1\xce\xb2",
                    "[\xe6\x97\xa5\xe6\x9c\xac][ \xce\xb1\xce\xb2]");
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80 ok",
                    "[\xf0\x9f\x98\x80\xf0\x9f\x98\x80][ ok]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "I'm HERE it'S we'Ve YOU'LL x'\xc5\xbft",
                    "[I]['m][ HERE][ it]['S][ we]['Ve][ YOU]['LL][ x]['\xc5\xbf][t]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "'x ?'s '''s", "['x][ ?'][s][ '''][s]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "Hello world (word) \"quote\"",
                    "[Hello][ world][ (][word][)][ \"][quote][\"]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "abc12345 6789 a1b2",
                    "[abc][1][2][3][4][5][ ][6][7][8][9][ a][1][b][2]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "3.14 x\xc2\xb2\xc2\xb3 \xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6",
                    "[3][.][1][4][ x][\xc2\xb2][\xc2\xb3][ ][\xd9\xa3][\xd9\xa4][\xd9\xa5][\xd9\xa6]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "hello!!! ...world?\r\nnext",
                    "[hello][!!!][ ...][world][?\r\n][next]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "a   b", "[a][  ][ b]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "  hi", "[ ][ hi]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "hi  ", "[hi][  ]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "a \tb", "[a][ ][\tb]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "a  \r\n  b\t\tc  ", "[a][  \r\n][ ][ b][\t][\tc][  ]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "\n\nb", "[\n\n][b]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "a\n\n", "[a][\n\n]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, " \n \nx", "[ \n \n][x]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "x!!\r\n\r\ny", "[x][!!\r\n\r\n][y]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "\tword\rword", "[\tword][\r][word]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "a\xc2\xa0" "b \xe3\x80\x80" "c",
                    "[a][\xc2\xa0" "b][ ][\xe3\x80\x80" "c]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "\xe6\x97\xa5\xe6\x9c\xac \xce\xb1\xce\xb2",
                    "[\xe6\x97\xa5\xe6\x9c\xac][ \xce\xb1\xce\xb2]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80 ok",
                    "[\xf0\x9f\x98\x80\xf0\x9f\x98\x80][ ok]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "I'm HERE it'S we'Ve YOU'LL x'\xc5\xbft",
                    "[I]['m][ HERE][ it]['][S][ we]['][Ve][ YOU]['][LL][ x]['][\xc5\xbft]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "'x ?'s '''s", "['][x][ ?'][s][ '''][s]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "Hello world (word) \"quote\"",
                    "[Hello][ world][ (][word][)][ \"][quote][\"]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "abc12345 6789 a1b2",
                    "[abc][1][2][3][4][5][ ][6][7][8][9][ a][1][b][2]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "3.14 x\xc2\xb2\xc2\xb3 \xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6",
                    "[3][.][1][4][ x][\xc2\xb2][\xc2\xb3][ ][\xd9\xa3][\xd9\xa4][\xd9\xa5][\xd9\xa6]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "hello!!! ...world?\r\nnext",
                    "[hello][!!!][ ...][world][?][\r][\n][next]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "a   b", "[a][  ][ b]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "  hi", "[ ][ hi]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "hi  ", "[hi][  ]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "a \tb", "[a][ ][\t][b]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "a  \r\n  b\t\tc  ", "[a][  \r\n ][ b][\t][\t][c][  ]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "\n\nb", "[\n][\n][b]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "a\n\n", "[a][\n\n]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, " \n \nx", "[ \n ][\n][x]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "x!!\r\n\r\ny", "[x][!!][\r\n\r][\n][y]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "\tword\rword", "[\t][word][\r][word]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "a\xc2\xa0" "b \xe3\x80\x80" "c",
                    "[a][\xc2\xa0][b][ ][\xe3\x80\x80][c]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "\xe6\x97\xa5\xe6\x9c\xac \xce\xb1\xce\xb2",
                    "[\xe6\x97\xa5\xe6\x9c\xac][ \xce\xb1\xce\xb2]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80 ok",
                    "[\xf0\x9f\x98\x80\xf0\x9f\x98\x80][ ok]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "I'm HERE it'S we'Ve YOU'LL x'\xc5\xbft",
                    "[I]['m][ HERE][ it]['][S][ we]['][Ve][ YOU]['][LL][ x]['][\xc5\xbft]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "'x ?'s '''s", "['][x][ ?'][s][ '''][s]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "Hello world (word) \"quote\"",
                    "[Hello][ world][ (][word][)][ \"][quote][\"]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "abc12345 6789 a1b2", "[abc][12345][ ][6789][ a][1][b][2]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "3.14 x\xc2\xb2\xc2\xb3 \xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6",
                    "[3][.][14][ x][\xc2\xb2\xc2\xb3][ ][\xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "hello!!! ...world?\r\nnext",
                    "[hello][!!!][ ...][world][?][\r][\n][next]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "a   b", "[a][  ][ b]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "  hi", "[ ][ hi]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "hi  ", "[hi][  ]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "a \tb", "[a][ ][\t][b]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "a  \r\n  b\t\tc  ", "[a][  \r\n ][ b][\t][\t][c][  ]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "\n\nb", "[\n][\n][b]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "a\n\n", "[a][\n\n]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, " \n \nx", "[ \n ][\n][x]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "x!!\r\n\r\ny", "[x][!!][\r\n\r][\n][y]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "\tword\rword", "[\t][word][\r][word]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "a\xc2\xa0" "b \xe3\x80\x80" "c",
                    "[a][\xc2\xa0][b][ ][\xe3\x80\x80][c]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "\xe6\x97\xa5\xe6\x9c\xac \xce\xb1\xce\xb2",
                    "[\xe6\x97\xa5\xe6\x9c\xac][ \xce\xb1\xce\xb2]");
    EXPECT_SPLIT_HF(SPLIT_RUNS, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80 ok",
                    "[\xf0\x9f\x98\x80\xf0\x9f\x98\x80][ ok]");
    /* not UTF-8: single "other" characters, no crash */
    EXPECT_SPLIT_HF(SPLIT_LLAMA3, "a\xff\xfe" "b \xff" "c", "[a][\xff\xfe][b][ \xff][c]");
    EXPECT_SPLIT_HF(SPLIT_QWEN2, "'\xc5", "['\xc5]");
    EXPECT_SPLIT_HF(SPLIT_DIGITS, "1\xff" "2", "[1][\xff][2]");
}

static int nfc_is(const char *in, const char *want) {
    ByteBuf b = {0};
    nfc_append((const uint8_t *)in, strlen(in), &b);
    int ok = b.n == strlen(want) && memcmp(b.a, want, b.n) == 0;
    bytebuf_free(&b);
    return ok;
}

static void test_nfc(void) {
    EXPECT(strcmp(nfc_unicode_version, unicode_version) == 0, "NFC tables %s, classes %s",
           nfc_unicode_version, unicode_version);
    EXPECT(nfc_is("e\xcc\x81", "\xc3\xa9"), "e + acute -> U+00E9");
    EXPECT(nfc_is("A\xcc\x8a", "\xc3\x85") && nfc_is("\xe2\x84\xab", "\xc3\x85"),
           "A + ring and the angstrom sign -> U+00C5");
    EXPECT(nfc_is("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81"), "Hangul L V T -> U+AC01");
    EXPECT(nfc_is("\xea\xb0\x80\xe1\x86\xa8", "\xea\xb0\x81"), "Hangul LV + T -> U+AC01");
    EXPECT(nfc_is("q\xcc\x87\xcc\xa3", "q\xcc\xa3\xcc\x87"), "marks reordered by class");
    EXPECT(nfc_is("\xe1\xb8\x8b\xcc\xa3", "\xe1\xb8\x8d\xcc\x87"), "U+1E0B U+0323 -> U+1E0D U+0307");
    EXPECT(nfc_is("\xcd\x84", "\xcc\x88\xcc\x81"), "U+0344 (excluded) decomposes");
    EXPECT(nfc_is("a\xcc\x81\xcc\x81", "\xc3\xa1\xcc\x81"), "second acute is blocked");
    EXPECT(nfc_is("\xcc\x81x", "\xcc\x81x"), "a leading mark stays");
    EXPECT(nfc_is("\xff" "e\xcc\x81\xc3", "\xff\xc3\xa9\xc3"), "bad bytes pass through");
    EXPECT(nfc_quick_check((const uint8_t *)"plain ascii", 11) &&
               nfc_quick_check((const uint8_t *)"\xc3\xa9t\xc3\xa9", 6) &&
               !nfc_quick_check((const uint8_t *)"e\xcc\x81", 3),
           "quick check");
}

/* ---- small tokenizer.json files built with cJSON ---- */

static char g_hfdir[512];

static const char RX_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static void put_utf8(char *buf, unsigned cp) {
    if (cp < 0x80) {
        buf[0] = (char)cp, buf[1] = 0;
    } else {
        buf[0] = (char)(0xC0 | (cp >> 6)), buf[1] = (char)(0x80 | (cp & 0x3F)), buf[2] = 0;
    }
}

static cJSON *byte_level(int use_regex) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "ByteLevel");
    cJSON_AddFalseToObject(b, "add_prefix_space");
    cJSON_AddFalseToObject(b, "trim_offsets");
    cJSON_AddBoolToObject(b, "use_regex", use_regex);
    return b;
}

static void hf_vocab(cJSON *root, const char *key, int id) {
    cJSON_AddNumberToObject(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "vocab"), key,
                            id);
}

static void hf_merge(cJSON *root, const char *a_b) {
    cJSON_AddItemToArray(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges"),
                         cJSON_CreateString(a_b));
}

static void hf_added(cJSON *root, int id, const char *content, int special, int normalized) {
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", id);
    cJSON_AddStringToObject(a, "content", content);
    cJSON_AddFalseToObject(a, "single_word");
    cJSON_AddFalseToObject(a, "lstrip");
    cJSON_AddFalseToObject(a, "rstrip");
    cJSON_AddBoolToObject(a, "normalized", normalized);
    cJSON_AddBoolToObject(a, "special", special);
    cJSON_AddItemToArray(cJSON_GetObjectItem(root, "added_tokens"), a);
}

/* Llama 3's pre-tokenizer, NFC, the 256 bytes (id = byte), " t", "he",
 * " the", "12", "123", "'S" and, with added, the tokens <|endoftext|> and
 * <|im_end|> (special), <think> and "café" (matched after NFC). */
static cJSON *hf_base(int added) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(norm, "type", "NFC");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", RX_LLAMA3);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddItemToArray(list, split);
    cJSON_AddItemToArray(list, byte_level(0));
    cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddItemToObject(root, "decoder", byte_level(0));
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddFalseToObject(m, "fuse_unk");
    cJSON_AddFalseToObject(m, "byte_fallback");
    cJSON_AddFalseToObject(m, "ignore_merges");
    cJSON_AddObjectToObject(m, "vocab");
    cJSON_AddArrayToObject(m, "merges");
    char key[8];
    for (int b = 0; b < 256; b++) {
        put_utf8(key, gpt2_cp(b));
        hf_vocab(root, key, b);
    }
    const char *extra[] = {"\xc4\xa0t", "he", "\xc4\xa0the", "12", "123", "'S"};
    for (int i = 0; i < 6; i++) hf_vocab(root, extra[i], 256 + i);
    const char *merges[] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he", "1 2", "12 3", "' S"};
    for (int i = 0; i < 6; i++) hf_merge(root, merges[i]);
    if (added) {
        hf_added(root, 262, "<|endoftext|>", 1, 0);
        hf_added(root, 263, "<|im_end|>", 1, 0);
        hf_added(root, 264, "<think>", 0, 0);
        hf_added(root, 265, "caf\xc3\xa9", 0, 1);
    }
    return root;
}

/* Writes root (then deleted) to g_hfdir/name; returns the path. */
static char *hf_write(const char *name, cJSON *root) {
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    char *path = xasprintf("%s/%s", g_hfdir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f && text, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    free(text);
    return path;
}

static int ids_are(const Tokenizer *t, const char *text, const int *want, size_t n) {
    IntVec ids = {0};
    tokenizer_encode(t, text, strlen(text), &ids);
    int ok = ids.n == n && memcmp(ids.a, want, n * sizeof *want) == 0;
    if (!ok) {
        fprintf(stderr, "  %s ->", text);
        for (size_t i = 0; i < ids.n; i++) fprintf(stderr, " %d", ids.a[i]);
        fputc('\n', stderr);
    }
    intvec_free(&ids);
    return ok;
}

static void test_hf_encode(const Tokenizer *t) {
    int w1[] = {264, 'a', '<', '|', 'i', 'm', '_', 'e', 'n', 'd', '|', '>', 258};
    EXPECT(ids_are(t, "<think>a<|im_end|> the", w1, 13),
           "non-special added token produced, special one encoded as text");
    int w2[] = {265, 265, 'x', 265};
    EXPECT(ids_are(t, "cafe\xcc\x81" "caf\xc3\xa9xcafe\xcc\x81", w2, 4),
           "normalized added token matched after NFC");
    int w3[] = {260, '4', '5', 'I', 'T', 261};
    EXPECT(ids_are(t, "12345IT'S", w3, 6), "Llama 3 digits and case-insensitive contractions");
    EXPECT(tokenizer_vocab_size(t) == 266, "vocab size %d", tokenizer_vocab_size(t));
    EXPECT(tokenizer_kind(t) == TOKENIZER_HF && tokenizer_sep_id(t) == -1, "kind and sep");
    EXPECT(tokenizer_token_id(t, "<|im_end|>") == 263 && tokenizer_token_id(t, "<think>") == 264 &&
               tokenizer_token_id(t, " the") == 258 && tokenizer_token_id(t, "a") == 'a' &&
               tokenizer_token_id(t, "nope") == -1 && tokenizer_token_id(t, "") == -1,
           "token ids by name");
    ByteBuf b = {0};
    Err e;
    int ids[] = {263, 265, 258};
    EXPECT(tokenizer_decode(t, ids, 3, &b, &e) == 0 && b.n == 19 &&
               memcmp(b.a, "<|im_end|>caf\xc3\xa9 the", 19) == 0,
           "added and special tokens decode to their text");
    bytebuf_free(&b);
    const char *rt = "\xff\xfe <think> x\r\n\r\n  y";
    EXPECT(roundtrip(t, rt, strlen(rt), NULL), "round trip");
}

static void test_hf_eot(void) {
    Err e = {{0}};
    char *path = hf_write("eot.json", hf_base(1));
    Tokenizer *t = tokenizer_load_hf(path, &e);
    EXPECT(t && tokenizer_eot_id(t) == 262, "default eot <|endoftext|>: %s", t ? "" : e.msg);
    if (t) {
        test_hf_encode(t);
        EXPECT(tokenizer_set_eot(t, 264) == -1 && tokenizer_eot_id(t) == 262,
               "a non-special token cannot be the eot");
        EXPECT(tokenizer_set_eot(t, 263) == 0 && tokenizer_eot_id(t) == 263, "set_eot");
    }
    tokenizer_destroy(t);
    /* a directory with tokenizer_config.json */
    char *dir = xasprintf("%s/model", g_hfdir), *tj = xasprintf("%s/tokenizer.json", dir);
    char *tc = xasprintf("%s/tokenizer_config.json", dir);
    CHECK(mkdir(dir, 0755) == 0 && rename(path, tj) == 0, "mkdir/rename");
    FILE *f = fopen(tc, "w");
    CHECK(f, "cannot write %s", tc);
    fputs("{\"eos_token\": {\"content\": \"<|im_end|>\", \"__type\": \"AddedToken\"}}", f);
    fclose(f);
    t = tokenizer_load_hf(dir, &e);
    EXPECT(t && tokenizer_eot_id(t) == 263, "eot from tokenizer_config.json: %s", t ? "" : e.msg);
    tokenizer_destroy(t);
    f = fopen(tc, "w");
    CHECK(f, "cannot write %s", tc);
    fputs("{\"eos_token\": \"<nope>\"}", f);
    fclose(f);
    t = tokenizer_load_hf(tj, &e);
    EXPECT(!t && strstr(e.msg, "tokenizer_config.json: eos_token") && strstr(e.msg, "<nope>"),
           "bad eos_token: %s", t ? "(loaded)" : e.msg);
    tokenizer_destroy(t);
    unlink(tc);
    unlink(tj);
    rmdir(dir);
    free(dir), free(tj), free(tc), free(path);
}

/* Loading root (deleted) must fail with one line naming the file, want1
 * and want2 (NULL: anything). */
static void expect_hf_error(cJSON *root, const char *want1, const char *want2) {
    char *path = hf_write("bad.json", root);
    Err e = {{0}};
    Tokenizer *t = tokenizer_load_hf(path, &e);
    EXPECT(!t && strstr(e.msg, path) && strstr(e.msg, want1) && (!want2 || strstr(e.msg, want2)) &&
               !strchr(e.msg, '\n'),
           "tokenizer.json error should name the file, %s%s%s: got \"%s\"", want1,
           want2 ? " and " : "", want2 ? want2 : "", t ? "(loaded)" : e.msg);
    tokenizer_destroy(t);
    unlink(path);
    free(path);
}

static cJSON *model_of(cJSON *root) { return cJSON_GetObjectItem(root, "model"); }
static cJSON *pretok(cJSON *root, int i) {
    return cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "pre_tokenizer"),
                                                  "pretokenizers"),
                              i);
}
static void set_item(cJSON *obj, const char *key, cJSON *v) {
    if (cJSON_GetObjectItem(obj, key))
        cJSON_ReplaceItemInObject(obj, key, v);
    else
        cJSON_AddItemToObject(obj, key, v);
}

static void test_hf_errors(void) {
    cJSON *r;
    /* malformed or truncated JSON, not an object, missing file */
    char *text = cJSON_PrintUnformatted((r = hf_base(1)));
    cJSON_Delete(r);
    text[100] = 0;
    char *path = xasprintf("%s/truncated.json", g_hfdir);
    FILE *f = fopen(path, "w");
    CHECK(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    Err e = {{0}};
    Tokenizer *t = tokenizer_load_hf(path, &e);
    EXPECT(!t && strstr(e.msg, path) && strstr(e.msg, "invalid JSON"), "truncated: %s", e.msg);
    unlink(path);
    free(path);
    free(text);
    path = xasprintf("%s/none/tokenizer.json", g_hfdir);
    t = tokenizer_load_hf(path, &e);
    EXPECT(!t && strstr(e.msg, path) && strstr(e.msg, "No such file"), "missing: %s", e.msg);
    free(path);
    expect_hf_error(cJSON_CreateArray(), "expected a JSON object", NULL);
    /* not byte-level BPE */
    r = hf_base(1);
    set_item(model_of(r), "type", cJSON_CreateString("Unigram"));
    expect_hf_error(r, "model.type", "Unigram");
    r = hf_base(1);
    set_item(model_of(r), "type", cJSON_CreateString("WordPiece"));
    expect_hf_error(r, "model.type", "WordPiece");
    r = hf_base(1);
    set_item(model_of(r), "byte_fallback", cJSON_CreateTrue());
    expect_hf_error(r, "model.byte_fallback", "SentencePiece");
    r = hf_base(1);
    set_item(model_of(r), "continuing_subword_prefix", cJSON_CreateString("##"));
    expect_hf_error(r, "model.continuing_subword_prefix", NULL);
    r = hf_base(1);
    set_item(model_of(r), "dropout", cJSON_CreateNumber(0.1));
    expect_hf_error(r, "model.dropout", NULL);
    r = hf_base(1);
    set_item(model_of(r), "foo", cJSON_CreateTrue());
    expect_hf_error(r, "model.\"foo\"", "unknown option");
    r = hf_base(1);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "type", "Metaspace");
    set_item(r, "pre_tokenizer", meta);
    expect_hf_error(r, "pre_tokenizer", "Metaspace");
    r = hf_base(1);
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(model_of(r), "vocab"), "he");
    hf_vocab(r, "\xe2\x96\x81he", 257);
    expect_hf_error(r, "model.vocab", "not byte-level");
    /* ids: duplicates, gaps, Hugging Face's order of added ids */
    r = hf_base(1);
    hf_vocab(r, "zz", 65);
    expect_hf_error(r, "model.vocab", "id 65 is given to both");
    r = hf_base(0);
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(model_of(r), "vocab"), "he");
    expect_hf_error(r, "model.vocab", "without gaps");

    r = hf_base(1);
    cJSON *a2 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "added_tokens"), 2);
    set_item(a2, "id", cJSON_CreateNumber(265));
    set_item(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "added_tokens"), 3), "id",
             cJSON_CreateNumber(264));
    expect_hf_error(r, "added_tokens[2].id", "264");
    r = hf_base(1);
    set_item(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "added_tokens"), 2), "lstrip",
             cJSON_CreateTrue());
    expect_hf_error(r, "added_tokens[2].lstrip", NULL);
    r = hf_base(1);
    hf_added(r, 266, "<|im_end|>", 1, 0);
    expect_hf_error(r, "added_tokens[4]", "repeats added_tokens[1]");
}

/* Loader errors, continued: merges and the processing steps. */
static void test_hf_errors_steps(void) {
    cJSON *r;
    r = hf_base(1);
    hf_merge(r, "q zz");
    expect_hf_error(r, "model.merges[6]", "\"zz\" is not in model.vocab");
    r = hf_base(1);
    hf_merge(r, "a b");
    expect_hf_error(r, "model.merges[6]", "which is not in model.vocab");
    r = hf_base(1);
    hf_merge(r, "a b c");
    expect_hf_error(r, "model.merges[6]", "expected \"left right\"");
    r = hf_base(1);
    hf_merge(r, "h e");
    expect_hf_error(r, "model.merges[6]", "repeats model.merges[1]");
    /* pre-tokenizer, normalizer, decoder, other options */
    r = hf_base(1);
    set_item(cJSON_GetObjectItem(pretok(r, 0), "pattern"), "Regex", cJSON_CreateString("\\w+"));
    expect_hf_error(r, "pre_tokenizer.pretokenizers[0].pattern.Regex", "unsupported split pattern");
    r = hf_base(1);
    set_item(pretok(r, 0), "behavior", cJSON_CreateString("Removed"));
    expect_hf_error(r, "pre_tokenizer.pretokenizers[0].behavior", NULL);
    r = hf_base(1);
    set_item(pretok(r, 1), "add_prefix_space", cJSON_CreateTrue());
    expect_hf_error(r, "pre_tokenizer.pretokenizers[1].add_prefix_space", NULL);
    r = hf_base(1);
    set_item(r, "pre_tokenizer", byte_level(0));
    expect_hf_error(r, "pre_tokenizer.use_regex", NULL);
    r = hf_base(1);
    set_item(cJSON_GetObjectItem(r, "normalizer"), "type", cJSON_CreateString("NFKC"));
    expect_hf_error(r, "normalizer.type", "NFKC");
    r = hf_base(1);
    cJSON *seq = cJSON_CreateObject(), *nl = cJSON_AddArrayToObject(seq, "normalizers");
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON *nfc = cJSON_CreateObject();
    cJSON_AddStringToObject(nfc, "type", "NFC");
    cJSON_AddItemToArray(nl, nfc);
    cJSON *lower = cJSON_CreateObject();
    cJSON_AddStringToObject(lower, "type", "Lowercase");
    cJSON_AddItemToArray(nl, lower);
    set_item(r, "normalizer", seq);
    expect_hf_error(r, "normalizer.normalizers[1]", "Lowercase");
    r = hf_base(1);
    set_item(cJSON_GetObjectItem(r, "decoder"), "type", cJSON_CreateString("Metaspace"));
    expect_hf_error(r, "decoder.type", NULL);
    r = hf_base(1);
    set_item(r, "truncation", cJSON_CreateObject());
    expect_hf_error(r, "truncation", "must be null");
    /* no end-of-text token */
    expect_hf_error(hf_base(0), "no end-of-text token", NULL);
}

static int hf_data_equal(const TokenizerData *a, const TokenizerData *b) {
    return data_equal(a, b) && a->kind == b->kind && a->pattern == b->pattern &&
           a->digits == b->digits && a->normalizer == b->normalizer &&
           a->ignore_merges == b->ignore_merges && a->source_len == b->source_len &&
           (!a->source) == (!b->source) &&
           (!a->source || memcmp(a->source, b->source, (size_t)a->source_len + 1) == 0);
}

/* Same ids for a few texts. */
static int same_encoding(const Tokenizer *x, const Tokenizer *y) {
    const char *texts[] = {"<think>cafe\xcc\x81 the 12345 IT'S", "<|im_end|>\r\n\t x", "\xff"};
    int ok = 1;
    for (size_t i = 0; i < 3; i++) {
        IntVec a = {0}, b = {0};
        tokenizer_encode(x, texts[i], strlen(texts[i]), &a);
        tokenizer_encode(y, texts[i], strlen(texts[i]), &b);
        ok = ok && ids_equal(&a, &b);
        intvec_free(&a);
        intvec_free(&b);
    }
    return ok;
}

/* TokenizerData of an HF tokenizer: in memory, through a checkpoint file,
 * and files without the new fields read as the GPT-2 kind. */
static void test_hf_data(void) {
    char *path = hf_write("data.json", hf_base(1));
    Err e = {{0}};
    Tokenizer *t = tokenizer_load_hf(path, &e);
    EXPECT(t, "load: %s", e.msg);
    if (!t) return;
    TokenizerData d, d2, d3;
    tokenizer_to_data(t, &d);
    EXPECT(d.kind == TOKENIZER_HF && d.pattern == TOKENIZER_PATTERN_LLAMA3 &&
               d.normalizer == TOKENIZER_NORM_NFC && d.digits == TOKENIZER_DIGITS_NONE &&
               d.source && d.special[262] == TOKEN_SPECIAL && d.special[264] == TOKEN_ADDED &&
               d.special[265] == (TOKEN_ADDED | TOKEN_NORMALIZED),
           "HF fields of TokenizerData");
    size_t len = 0;
    char *file = util_read_file(path, &len, &e);
    EXPECT(file && (size_t)d.source_len == len && memcmp(d.source, file, len) == 0,
           "tokenizer.json kept verbatim");
    free(file);
    Tokenizer *t2 = tokenizer_from_data(&d, &e);
    EXPECT(t2, "from_data: %s", e.msg);
    if (t2) {
        tokenizer_to_data(t2, &d2);
        EXPECT(hf_data_equal(&d, &d2) && same_encoding(t, t2), "in-memory round trip");
        tokenizer_data_free(&d2);
    }
    /* a checkpoint file */
    char *h5 = xasprintf("%s/tok.h5", g_hfdir);
    StoreFile *f = store_create(h5, &e);
    int rc = f && ckpt_write_tokenizer(f, "/tokenizer", &d, &e) == 0 ? store_close(f, &e) : -1;
    f = rc == 0 ? store_open(h5, 0, &e) : NULL;
    rc = f ? ckpt_read_tokenizer(f, "/tokenizer", &d3, &e) : -1;
    store_close(f, NULL);
    EXPECT(rc == 0 && hf_data_equal(&d, &d3), "checkpoint round trip: %s", rc ? e.msg : "");
    Tokenizer *t3 = rc == 0 ? tokenizer_from_data(&d3, &e) : NULL;
    EXPECT(t3 && same_encoding(t, t3), "tokenizer from a checkpoint encodes the same");
    if (rc == 0) tokenizer_data_free(&d3);
    tokenizer_destroy(t3);
    /* the GPT-2 kind writes no HF fields; a file without them is the GPT-2 kind */
    Tokenizer *g = substring_tokenizer("abc", 3, -1, 0);
    TokenizerData gd;
    tokenizer_to_data(g, &gd);
    f = store_create(h5, &e);
    rc = f && ckpt_write_tokenizer(f, "/tokenizer", &gd, &e) == 0 ? 0 : -1;
    EXPECT(rc == 0 && !store_exists(f, "/tokenizer/hf_options") &&
               !store_exists(f, "/tokenizer/hf_json"),
           "GPT-2 kind: the old layout");
    store_close(f, NULL);
    f = store_open(h5, 0, &e);
    memset(&d3, 0xff, sizeof d3);
    rc = f ? ckpt_read_tokenizer(f, "/tokenizer", &d3, &e) : -1;
    store_close(f, NULL);
    EXPECT(rc == 0 && hf_data_equal(&gd, &d3) && d3.kind == TOKENIZER_GPT2 && !d3.source,
           "old layout reads as the GPT-2 kind");
    if (rc == 0) tokenizer_data_free(&d3);
    tokenizer_data_free(&gd);
    tokenizer_destroy(g);
    unlink(h5);
    free(h5);
    /* inconsistent HF data */
    d.pattern = 7;
    EXPECT(!tokenizer_from_data(&d, &e) && strstr(e.msg, "bad options"), "bad pattern: %s", e.msg);
    d.pattern = TOKENIZER_PATTERN_LLAMA3;
    d.kind = TOKENIZER_GPT2;
    EXPECT(!tokenizer_from_data(&d, &e), "GPT-2 kind with HF options or flags");
    d.kind = TOKENIZER_HF;
    d.eot_id = 264;
    EXPECT(!tokenizer_from_data(&d, &e) && strstr(e.msg, "end-of-text"), "eot not special");
    tokenizer_data_free(&d);
    tokenizer_destroy(t2);
    tokenizer_destroy(t);
    unlink(path);
    free(path);
}

static void test_hf(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_hfdir, sizeof g_hfdir, "%s/test_tokenizer_hf.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(g_hfdir), "mkdtemp");
    test_nfc();
    test_hf_splits();
    test_hf_eot();
    test_hf_errors();
    test_hf_errors_steps();
    test_hf_data();
    rmdir(g_hfdir);
}

int main(void) {
    log_set_quiet(1);
    test_unicode();
    test_splits();
    test_train_errors();
    test_gpt2_files();
    test_hf();
    test_training();
    return test_summary();
}
