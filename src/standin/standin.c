/* standin -- the stand-in's humor world: joke lexicon from fortunes vs
 * WordNet examples, the hidden humor score h, and the teacher's and critic's
 * answers; see include/standin/standin.h and docs/standin.md.  HTTP lives in
 * serve.c; this file knows nothing of it. */
#include "standin/standin.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/text.h"

/* ---- words ---------------------------------------------------------------- */

#define WORD_CAP 48    /* longer words are truncated (they never matter) */
#define SENT_MAX 256   /* words of one sentence that the score looks at */

static int is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static char to_lower(unsigned char c) { return (char)((c >= 'A' && c <= 'Z') ? c + 32 : c); }

/* Next word after *p: runs of ASCII letters joined by inner apostrophes,
 * case-folded into buf.  Returns its length (0 at the end of s); *upper
 * tells whether it started with a capital. */
static size_t word_next(const char **p, char buf[WORD_CAP], int *upper) {
    const unsigned char *s = (const unsigned char *)*p;
    while (*s && !is_alpha(*s)) s++;
    if (!*s) {
        *p = (const char *)s;
        buf[0] = 0;
        return 0;
    }
    if (upper) *upper = (*s >= 'A' && *s <= 'Z');
    size_t n = 0;
    for (;;) {
        while (is_alpha(*s)) {
            if (n + 1 < WORD_CAP) buf[n++] = to_lower(*s);
            s++;
        }
        if (*s == '\'' && is_alpha(s[1])) {
            if (n + 1 < WORD_CAP) buf[n++] = '\'';
            s++;
            continue;
        }
        break;
    }
    buf[n] = 0;
    *p = (const char *)s;
    return n;
}

int standin_count_words(const char *text) {
    char buf[WORD_CAP];
    int n = 0;
    const char *p = text ? text : "";
    while (word_next(&p, buf, NULL)) n++;
    return n;
}

/* ---- a string -> int map (open addressing, keys copied) -------------------- */

typedef struct {
    char **keys;
    int *vals;
    uint32_t *hash;
    uint32_t cap, n;
} StrMap;

static void strmap_init(StrMap *m, uint32_t cap) {
    uint32_t c = 64;
    while (c < cap * 2) c *= 2;
    m->cap = c;
    m->n = 0;
    m->keys = xcalloc(c, sizeof *m->keys);
    m->vals = xcalloc(c, sizeof *m->vals);
    m->hash = xcalloc(c, sizeof *m->hash);
}

static void strmap_free(StrMap *m) {
    if (!m->keys) return;
    for (uint32_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    free(m->hash);
    memset(m, 0, sizeof *m);
}

static uint32_t strmap_slot(const StrMap *m, const char *key, uint32_t h) {
    uint32_t i = h & (m->cap - 1);
    while (m->keys[i] && (m->hash[i] != h || strcmp(m->keys[i], key) != 0)) i = (i + 1) & (m->cap - 1);
    return i;
}

/* The value stored for key, or -1. */
static int strmap_get(const StrMap *m, const char *key) {
    if (!m->cap) return -1;
    uint32_t i = strmap_slot(m, key, text_fnv1a32(key));
    return m->keys[i] ? m->vals[i] : -1;
}

static void strmap_grow(StrMap *m) {
    StrMap big;
    strmap_init(&big, m->cap);
    for (uint32_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        uint32_t j = strmap_slot(&big, m->keys[i], m->hash[i]);
        big.keys[j] = m->keys[i];
        big.vals[j] = m->vals[i];
        big.hash[j] = m->hash[i];
        big.n++;
    }
    free(m->keys);
    free(m->vals);
    free(m->hash);
    *m = big;
}

/* Stores key -> val unless key is present; returns the stored value. */
static int strmap_put(StrMap *m, const char *key, int val) {
    if ((m->n + 1) * 2 > m->cap) strmap_grow(m);
    uint32_t h = text_fnv1a32(key);
    uint32_t i = strmap_slot(m, key, h);
    if (m->keys[i]) return m->vals[i];
    m->keys[i] = xstrdup(key);
    m->vals[i] = val;
    m->hash[i] = h;
    m->n++;
    return val;
}

/* ---- stop words (function words; never joke words, never content) ------- */

static const char *const STOP_WORDS[] = {
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "aren't", "as", "at", "be", "because", "been", "before", "being", "below", "between",
    "both", "but", "by", "can", "can't", "cannot", "could", "couldn't", "did", "didn't", "do",
    "does", "doesn't", "doing", "don't", "down", "during", "each", "few", "for", "from", "further",
    "had", "hadn't", "has", "hasn't", "have", "haven't", "having", "he", "he'd", "he'll", "he's",
    "her", "here", "here's", "hers", "herself", "him", "himself", "his", "how", "how's", "i",
    "i'd", "i'll", "i'm", "i've", "if", "in", "into", "is", "isn't", "it", "it's", "its",
    "itself", "just", "let's", "me", "more", "most", "much", "must", "mustn't", "my", "myself",
    "no", "nor", "not", "now", "of", "off", "on", "once", "one", "only", "or", "other", "ought",
    "our", "ours", "ourselves", "out", "over", "own", "same", "shall", "shan't", "she", "she'd",
    "she'll", "she's", "should", "shouldn't", "so", "some", "such", "than", "that", "that's",
    "the", "their", "theirs", "them", "themselves", "then", "there", "there's", "these", "they",
    "they'd", "they'll", "they're", "they've", "this", "those", "through", "to", "too", "under",
    "until", "up", "upon", "us", "very", "was", "wasn't", "we", "we'd", "we'll", "we're", "we've",
    "were", "weren't", "what", "what's", "when", "when's", "where", "where's", "which", "while",
    "who", "who's", "whom", "why", "why's", "will", "with", "won't", "would", "wouldn't", "you",
    "you'd", "you'll", "you're", "you've", "your", "yours", "yourself", "yourselves", "s", "t",
    "ll", "re", "ve", "d", "m", "o", "may", "might", "yet", "every", "whose", "within", "without",
    "somebody", "someone", "something", "nobody", "nothing", "anybody", "anyone", "anything",
    "everybody", "everyone", "everything", "thou", "thee", "thy", "till", "two", "three", "four",
    "five", "six", "seven", "eight", "nine", "ten",
};

/* Lexicon nouns that make poor template fillers. */
static const char *const NOUN_BLOCK[] = {"ass", "comp", "thing", "way", "mode", "percent", "option", "fact", "men"};

/* ---- the world ------------------------------------------------------------------ */

enum { WN_NOUN, WN_VERB, WN_ADJ, WN_ADV, WN_POS };
static const char *const WN_FILES[WN_POS] = {"noun", "verb", "adj", "adv"};

/* What the build counts per word (freed once the lexicon is chosen). */
typedef struct {
    int fc, cap, wc;  /* fortunes tokens, capitalised fortunes tokens, WordNet example tokens */
    int syn[WN_POS];  /* synset counts in WordNet's index files (0: not a lemma) */
} WordStat;

struct StandinWorld {
    /* small final map: stop words and lexicon words -> index into info[] */
    StrMap words;
    float *weight;     /* lexicon weight, 0 for stop words */
    uint8_t *stop;
    char *lexicon[STANDIN_LEXICON_SIZE];
    int n_lexicon;
    char **nouns;      /* joke nouns for the teacher's templates */
    int n_nouns;
    char **tags;       /* short one-line fortunes containing a lexicon word */
    int *tag_words;
    int n_tags;
    char **literals;
    int n_literals;
    int n_jokes;
};

typedef struct {
    StrMap map;       /* word -> index into st */
    WordStat *st;
    int n, cap;
    long n_fortune_tokens, n_example_tokens;
} Counts;

static WordStat *counts_stat(Counts *c, const char *word) {
    int i = strmap_get(&c->map, word);
    if (i < 0) {
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 4096;
            c->st = xrealloc(c->st, (size_t)c->cap * sizeof *c->st);
        }
        i = c->n++;
        memset(&c->st[i], 0, sizeof c->st[i]);
        strmap_put(&c->map, word, i);
    }
    return &c->st[i];
}

static int is_printable_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) return 0;
    return 1;
}

static char *trim_copy(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    return xstrndup(s, n);
}

/* WordNet index.POS: "lemma pos synset_cnt ...", header lines start with "  ". */
static int read_wordnet_index(Counts *c, const char *dir, int pos, Err *e) {
    char *path = xasprintf("%s/index.%s", dir, WN_FILES[pos]);
    size_t len;
    char *txt = util_read_file(path, &len, e);
    free(path);
    if (!txt) return -1;
    char *line = txt;
    while (line < txt + len) {
        char *nl = strchr(line, '\n');
        if (!nl) nl = txt + len;
        *nl = 0;
        if (line[0] != ' ' && line[0]) {
            char *sp = strchr(line, ' ');
            if (sp) {
                *sp = 0;
                int syn = 0;
                char *f = sp + 1;
                char *sp2 = strchr(f, ' '); /* skip pos */
                if (sp2) syn = atoi(sp2 + 1);
                if (!strchr(line, '_') && !strchr(line, '-') && syn > 0)
                    counts_stat(c, line)->syn[pos] = syn;
            }
        }
        line = nl + 1;
    }
    free(txt);
    return 0;
}

/* WordNet data.POS: the quoted examples after the " | " gloss separator. */
static int read_wordnet_examples(Counts *c, StrMap *seen, char ***lits, int *n_lits, int *cap_lits,
                                 const char *dir, int pos, Err *e) {
    char *path = xasprintf("%s/data.%s", dir, WN_FILES[pos]);
    size_t len;
    char *txt = util_read_file(path, &len, e);
    free(path);
    if (!txt) return -1;
    char *line = txt;
    char buf[WORD_CAP];
    while (line < txt + len) {
        char *nl = strchr(line, '\n');
        if (!nl) nl = txt + len;
        *nl = 0;
        char *gloss = line[0] != ' ' ? strstr(line, " | ") : NULL;
        for (char *q = gloss ? strchr(gloss, '"') : NULL; q; q = strchr(q, '"')) {
            char *end = strchr(q + 1, '"');
            if (!end) break;
            char *ex = trim_copy(q + 1, (size_t)(end - q - 1));
            q = end + 1;
            int nw = standin_count_words(ex);
            if (nw < 3 || nw > 40 || !is_printable_ascii(ex) || strmap_get(seen, ex) >= 0) {
                free(ex);
                continue;
            }
            strmap_put(seen, ex, *n_lits);
            if (*n_lits == *cap_lits) {
                *cap_lits = *cap_lits ? 2 * *cap_lits : 4096;
                *lits = xrealloc(*lits, (size_t)*cap_lits * sizeof **lits);
            }
            (*lits)[(*n_lits)++] = ex;
            const char *p = ex;
            while (word_next(&p, buf, NULL)) {
                counts_stat(c, buf)->wc++;
                c->n_example_tokens++;
            }
        }
        line = nl + 1;
    }
    free(txt);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Tag candidates: one-sentence fortunes of 3..10 words ending in . ! or ?,
 * plain ASCII without quoting/markup characters. */
static int tag_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 8 || !strchr(".!?", s[n - 1])) return 0;
    if (!is_printable_ascii(s) || strpbrk(s, ":\"()[]<>{}|_*=@#$^~`\\/+&%")) return 0;
    int words = 0, shouting = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ') p++;
        if (!*p) break;
        words++;
        int upper = 0, lower = 0;
        for (; *p && *p != ' '; p++) {
            upper += *p >= 'A' && *p <= 'Z';
            lower += *p >= 'a' && *p <= 'z';
        }
        shouting += upper >= 3 && lower == 0;
    }
    return words >= 3 && words <= 10 && shouting == 0;
}

/* One fortune record (lines between "%" separators). */
static void fortune_record(Counts *c, char *rec, size_t n, char ***cands, int *n_cands, int *cap_cands,
                           int *n_jokes) {
    size_t letters = 0, nonspace = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)rec[i];
        if (ch > ' ') nonspace++;
        if (is_alpha(ch)) letters++;
    }
    if (nonspace == 0 || letters * 10 < nonspace * 6) return; /* ASCII art, tables */
    (*n_jokes)++;
    ByteBuf joined = {0};
    char buf[WORD_CAP];
    char *line = rec;
    while (line < rec + n) {
        char *nl = memchr(line, '\n', (size_t)(rec + n - line));
        if (!nl) nl = rec + n;
        *nl = 0;
        char *t = line;
        while (*t == ' ' || *t == '\t') t++;
        if (!(t[0] == '-' && t[1] == '-') && *t) { /* "-- Author" attributions are not jokes */
            const char *p = t;
            int upper = 0;
            while (word_next(&p, buf, &upper)) {
                WordStat *st = counts_stat(c, buf);
                st->fc++;
                st->cap += upper;
                c->n_fortune_tokens++;
            }
            for (const char *q = t; *q; q++) {
                char ch = (*q == '\t' || *q == '\r') ? ' ' : *q;
                if (ch == ' ' && (joined.n == 0 || joined.a[joined.n - 1] == ' ')) continue;
                bytebuf_putc(&joined, ch);
            }
            if (joined.n && joined.a[joined.n - 1] != ' ') bytebuf_putc(&joined, ' ');
        }
        line = nl + 1;
    }
    while (joined.n && joined.a[joined.n - 1] == ' ') joined.a[--joined.n] = 0;
    if (joined.n && tag_ok(joined.a)) {
        if (*n_cands == *cap_cands) {
            *cap_cands = *cap_cands ? 2 * *cap_cands : 1024;
            *cands = xrealloc(*cands, (size_t)*cap_cands * sizeof **cands);
        }
        (*cands)[(*n_cands)++] = joined.a;
    } else {
        bytebuf_free(&joined);
    }
}

static int read_fortunes(Counts *c, const char *dir, char ***cands, int *n_cands, int *n_jokes, Err *e) {
    DIR *d = opendir(dir);
    if (!d)
        return err_set(e, "%s: %s (the stand-in needs Debian's fortunes: apt-get install fortunes-min)",
                       dir, strerror(errno));
    char **names = NULL;
    int n_names = 0, cap_names = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (nm[0] == '.' || util_ends_with(nm, ".dat") || util_ends_with(nm, ".u8")) continue;
        char *path = xasprintf("%s/%s", dir, nm);
        struct stat st;
        /* only regular files: the "off" (offensive) subdirectory is skipped */
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (n_names == cap_names) {
                cap_names = cap_names ? 2 * cap_names : 64;
                names = xrealloc(names, (size_t)cap_names * sizeof *names);
            }
            names[n_names++] = path;
        } else {
            free(path);
        }
    }
    closedir(d);
    if (n_names == 0) {
        free(names);
        return err_set(e, "%s: no fortune files (the stand-in needs Debian's fortunes: "
                          "apt-get install fortunes-min)", dir);
    }
    qsort(names, (size_t)n_names, sizeof *names, cmp_str);
    int cap_cands = 0, rc = 0;
    for (int i = 0; i < n_names && rc == 0; i++) {
        size_t len;
        char *txt = util_read_file(names[i], &len, e);
        if (!txt) {
            rc = -1;
            break;
        }
        char *rec = txt;
        char *p = txt;
        while (p <= txt + len) {
            char *nl = memchr(p, '\n', (size_t)(txt + len - p));
            char *end = nl ? nl : txt + len;
            int sep = (end - p == 1 && p[0] == '%') || (end - p == 2 && p[0] == '%' && p[1] == '\r');
            if (sep || !nl) {
                char *rend = sep ? p : end;
                if (rend > rec) fortune_record(c, rec, (size_t)(rend - rec), cands, n_cands, &cap_cands, n_jokes);
                rec = end + 1;
            }
            if (!nl) break;
            p = nl + 1;
        }
        free(txt);
    }
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    return rc;
}

/* A joke noun for the teacher's templates: mostly a noun in WordNet (3x
 * more noun senses than others), not a gerund or plural-looking form. */
static int noun_ok(const char *word, const WordStat *st) {
    int other = st->syn[WN_VERB] + st->syn[WN_ADJ] + st->syn[WN_ADV];
    if (st->syn[WN_NOUN] == 0 || st->syn[WN_NOUN] < 3 * other) return 0;
    if (util_ends_with(word, "ing") || util_ends_with(word, "s")) return 0;
    for (int i = 0; i < (int)(sizeof NOUN_BLOCK / sizeof *NOUN_BLOCK); i++)
        if (strcmp(word, NOUN_BLOCK[i]) == 0) return 0;
    return 1;
}

typedef struct {
    double lo;
    int idx;
    const char *word;
} Cand;

static int cmp_cand(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    if (x->lo != y->lo) return x->lo > y->lo ? -1 : 1;
    return strcmp(x->word, y->word);
}

void standin_world_destroy(StandinWorld *w) {
    if (!w) return;
    strmap_free(&w->words);
    free(w->weight);
    free(w->stop);
    for (int i = 0; i < w->n_lexicon; i++) free(w->lexicon[i]);
    for (int i = 0; i < w->n_nouns; i++) free(w->nouns[i]);
    free(w->nouns);
    for (int i = 0; i < w->n_tags; i++) free(w->tags[i]);
    free(w->tags);
    free(w->tag_words);
    for (int i = 0; i < w->n_literals; i++) free(w->literals[i]);
    free(w->literals);
    free(w);
}

StandinWorld *standin_world_create(const char *fortunes_dir, const char *wordnet_dir, Err *e) {
    const char *fdir = fortunes_dir ? fortunes_dir : STANDIN_DEFAULT_FORTUNES;
    const char *wdir = wordnet_dir ? wordnet_dir : STANDIN_DEFAULT_WORDNET;
    StandinWorld *w = xcalloc(1, sizeof *w);
    Counts c = {0};
    strmap_init(&c.map, 1 << 18);
    StrMap seen;
    strmap_init(&seen, 1 << 16);
    char **cands = NULL;
    int n_cands = 0, cap_lits = 0;
    const int n_stop = (int)(sizeof STOP_WORDS / sizeof *STOP_WORDS);
    StrMap stopset;
    strmap_init(&stopset, (uint32_t)n_stop);
    for (int i = 0; i < n_stop; i++) strmap_put(&stopset, STOP_WORDS[i], i);

    for (int pos = 0; pos < WN_POS; pos++) {
        if (read_wordnet_index(&c, wdir, pos, e) ||
            read_wordnet_examples(&c, &seen, &w->literals, &w->n_literals, &cap_lits, wdir, pos, e)) {
            err_suffix(e, " (the stand-in needs WordNet's data files: apt-get install wordnet-base)");
            goto fail;
        }
    }
    if (read_fortunes(&c, fdir, &cands, &n_cands, &w->n_jokes, e)) goto fail;

    /* the joke lexicon: smoothed log-odds of fortunes vs WordNet examples */
    Cand *cs = xmalloc((size_t)(c.n ? c.n : 1) * sizeof *cs);
    int n_cs = 0;
    double nf = (double)c.n_fortune_tokens, nw = (double)c.n_example_tokens;
    for (uint32_t s = 0; s < c.map.cap; s++) {
        const char *word = c.map.keys[s];
        if (!word) continue;
        const WordStat *st = &c.st[c.map.vals[s]];
        int lemma = st->syn[0] | st->syn[1] | st->syn[2] | st->syn[3];
        if (st->fc < 15 || strlen(word) < 3 || strchr(word, '\'') || !lemma || 2 * st->cap > st->fc ||
            strmap_get(&stopset, word) >= 0)
            continue;
        double lo = log((st->fc + 5.0) / nf) - log((st->wc + 5.0) / nw);
        if (lo <= 0) continue;
        cs[n_cs++] = (Cand){lo, c.map.vals[s], word};
    }
    qsort(cs, (size_t)n_cs, sizeof *cs, cmp_cand);
    w->n_lexicon = n_cs < STANDIN_LEXICON_SIZE ? n_cs : STANDIN_LEXICON_SIZE;
    if (w->n_lexicon < 50) {
        free(cs);
        err_set(e, "%s, %s: too little text for the stand-in's joke lexicon (%d words; need 50)", fdir,
                wdir, w->n_lexicon);
        goto fail;
    }
    strmap_init(&w->words, (uint32_t)(n_stop + w->n_lexicon));
    int n_words = n_stop + w->n_lexicon;
    w->weight = xcalloc((size_t)n_words, sizeof *w->weight);
    w->stop = xcalloc((size_t)n_words, 1);
    for (int i = 0; i < n_stop; i++) {
        int k = strmap_put(&w->words, STOP_WORDS[i], i);
        w->stop[k] = 1;
    }
    double lo_max = cs[0].lo, lo_min = cs[w->n_lexicon - 1].lo;
    for (int i = 0; i < w->n_lexicon; i++) {
        int k = strmap_put(&w->words, cs[i].word, n_stop + i);
        w->weight[k] = (float)(0.5 + 0.5 * (cs[i].lo - lo_min) / (lo_max - lo_min + 1e-12));
        w->lexicon[i] = xstrdup(cs[i].word);
        const WordStat *st = &c.st[cs[i].idx];
        if (noun_ok(cs[i].word, st)) {
            w->nouns = xrealloc(w->nouns, (size_t)(w->n_nouns + 1) * sizeof *w->nouns);
            w->nouns[w->n_nouns++] = xstrdup(cs[i].word);
        }
    }
    free(cs);

    /* tags: short fortunes with at least one lexicon word */
    for (int i = 0; i < n_cands; i++) {
        const char *p = cands[i];
        char buf[WORD_CAP];
        int lex = 0;
        while (word_next(&p, buf, NULL)) lex += standin_lexicon_weight(w, buf) > 0;
        if (!lex) continue;
        w->tags = xrealloc(w->tags, (size_t)(w->n_tags + 1) * sizeof *w->tags);
        w->tag_words = xrealloc(w->tag_words, (size_t)(w->n_tags + 1) * sizeof *w->tag_words);
        int words = 0;
        for (const char *q = cands[i]; *q;) {
            while (*q == ' ') q++;
            if (!*q) break;
            words++;
            while (*q && *q != ' ') q++;
        }
        w->tag_words[w->n_tags] = words;
        w->tags[w->n_tags++] = cands[i];
        cands[i] = NULL;
    }
    if (w->n_nouns < 10 || w->n_tags < 20 || w->n_literals < 100) {
        err_set(e, "%s, %s: too little text for the stand-in (%d joke nouns, %d tags, %d literals)", fdir,
                wdir, w->n_nouns, w->n_tags, w->n_literals);
        goto fail;
    }
    for (int i = 0; i < n_cands; i++) free(cands[i]);
    free(cands);
    strmap_free(&c.map);
    free(c.st);
    strmap_free(&seen);
    strmap_free(&stopset);
    return w;
fail:
    for (int i = 0; i < n_cands; i++) free(cands[i]);
    free(cands);
    strmap_free(&c.map);
    free(c.st);
    strmap_free(&seen);
    strmap_free(&stopset);
    standin_world_destroy(w);
    return NULL;
}

int standin_world_n_literals(const StandinWorld *w) { return w->n_literals; }
int standin_world_n_jokes(const StandinWorld *w) { return w->n_jokes; }
int standin_world_n_tags(const StandinWorld *w) { return w->n_tags; }

const char *standin_world_literal(const StandinWorld *w, int i) {
    CHECK(i >= 0 && i < w->n_literals, "literal %d of %d", i, w->n_literals);
    return w->literals[i];
}

const char *standin_lexicon_word(const StandinWorld *w, int i) {
    CHECK(i >= 0 && i < w->n_lexicon, "lexicon word %d of %d", i, w->n_lexicon);
    return w->lexicon[i];
}

double standin_lexicon_weight(const StandinWorld *w, const char *word) {
    int k = strmap_get(&w->words, word);
    return k < 0 ? 0.0 : (double)w->weight[k];
}

static int is_stop(const StandinWorld *w, const char *word) {
    int k = strmap_get(&w->words, word);
    return k >= 0 && w->stop[k];
}

/* ---- the humor score --------------------------------------------------------- */

typedef struct {
    char w[SENT_MAX][WORD_CAP];
    uint32_t h[SENT_MAX];
    uint8_t stop[SENT_MAX];
    int n;      /* words stored (<= SENT_MAX) */
    int total;  /* words in the text */
} Sent;

static void sent_read(const StandinWorld *w, const char *text, Sent *s) {
    s->n = s->total = 0;
    const char *p = text ? text : "";
    char buf[WORD_CAP];
    while (word_next(&p, buf, NULL)) {
        if (s->n < SENT_MAX) {
            memcpy(s->w[s->n], buf, WORD_CAP);
            s->h[s->n] = text_fnv1a32(buf);
            s->stop[s->n] = (uint8_t)is_stop(w, buf);
            s->n++;
        }
        s->total++;
    }
}

static int sent_find(const Sent *s, const char *word, uint32_t h, int upto) {
    for (int i = 0; i < upto; i++)
        if (s->h[i] == h && strcmp(s->w[i], word) == 0) return i;
    return -1;
}

static int sent_count(const Sent *s, const char *word, uint32_t h) {
    int c = 0;
    for (int i = 0; i < s->n; i++) c += s->h[i] == h && strcmp(s->w[i], word) == 0;
    return c;
}

/* Length band on r = words(paraphrase) / words(literal). */
static double length_band(double r) {
    if (r < 1.0) return r <= 0.4 ? 0.0 : (r - 0.4) / 0.6;
    if (r <= 2.2) return 1.0;
    return r >= 4.0 ? 0.0 : 1.0 - (r - 2.2) / 1.8;
}

static void humor_parts(const StandinWorld *w, const Sent *L, const Sent *P, StandinHumorParts *o) {
    memset(o, 0, sizeof *o);
    o->words_literal = L->total;
    o->words_paraphrase = P->total;
    if (P->n == 0) return;
    double joke_sum = 0;
    int content_p = 0, excess = 0;
    for (int i = 0; i < P->n; i++) {
        if (P->stop[i]) continue;
        content_p++;
        if (sent_find(P, P->w[i], P->h[i], i) >= 0) continue; /* first occurrence only */
        if (sent_find(L, P->w[i], P->h[i], L->n) < 0) joke_sum += standin_lexicon_weight(w, P->w[i]);
        int cp = sent_count(P, P->w[i], P->h[i]), cl = sent_count(L, P->w[i], P->h[i]);
        int allowed = cl > 1 ? cl : 1;
        if (cp > allowed) excess += cp - allowed;
    }
    int content_l = 0, kept = 0;
    for (int i = 0; i < L->n; i++) {
        if (L->stop[i] || sent_find(L, L->w[i], L->h[i], i) >= 0) continue;
        content_l++;
        kept += sent_find(P, L->w[i], L->h[i], P->n) >= 0;
    }
    o->joke = 1.0 - exp(-joke_sum / 1.2);
    o->keep = content_l ? (double)kept / content_l : 1.0;
    o->len = length_band((double)P->total / (L->total > 0 ? L->total : 1));
    o->rep = content_p ? (double)excess / content_p : 0.0;
    double h = 0.45 * o->joke + 0.35 * o->keep + 0.20 * o->len - 0.5 * o->rep;
    o->h = h < 0 ? 0 : h > 1 ? 1 : h;
}

void standin_humor_parts(const StandinWorld *w, const char *literal, const char *paraphrase,
                         StandinHumorParts *out) {
    Sent *s = xmalloc(2 * sizeof *s);
    sent_read(w, literal, &s[0]);
    sent_read(w, paraphrase, &s[1]);
    humor_parts(w, &s[0], &s[1], out);
    free(s);
}

double standin_humor(const StandinWorld *w, const char *literal, const char *paraphrase) {
    StandinHumorParts p;
    standin_humor_parts(w, literal, paraphrase, &p);
    return p.h;
}

/* ---- prompts --------------------------------------------------------------------- */

static const char *skip_blank(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* If line (already past leading blanks) is "K." or "K)" followed by a blank
 * or the end, returns the trimmed rest; else NULL. */
static char *numbered_item(const char *line, size_t len, char k) {
    if (len < 2 || line[0] != k || (line[1] != '.' && line[1] != ')')) return NULL;
    if (len > 2 && line[2] != ' ' && line[2] != '\t') return NULL;
    return trim_copy(line + 2, len - 2);
}

void standin_prompt_free(StandinPrompt *p) {
    if (!p) return;
    free(p->literal);
    free(p->option_a);
    free(p->option_b);
    memset(p, 0, sizeof *p);
}

StandinRole standin_prompt_parse(const char *msg, StandinPrompt *out) {
    memset(out, 0, sizeof *out);
    out->n = 3;
    const char *sent_line = NULL;
    for (const char *line = msg; line && *line;) {
        const char *nl = strchr(line, '\n');
        const char *t = skip_blank(line);
        if (strncasecmp(t, "Sentence:", 9) == 0) {
            sent_line = line;
            const char *end = nl ? nl : t + strlen(t);
            out->literal = trim_copy(t + 9, (size_t)(end - t - 9));
            break;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (!sent_line || !out->literal[0]) {
        standin_prompt_free(out);
        out->n = 3;
        return STANDIN_ROLE_UNKNOWN;
    }
    for (const char *p = msg; p < sent_line; p++) {
        if (*p >= '0' && *p <= '9') {
            long v = 0;
            while (p < sent_line && *p >= '0' && *p <= '9' && v < 1000000) v = 10 * v + (*p++ - '0');
            out->n = v < 1 ? 1 : v > STANDIN_MAX_N ? STANDIN_MAX_N : (int)v;
            break;
        }
    }
    const char *line = strchr(sent_line, '\n');
    while (line && *line) {
        line++;
        const char *nl = strchr(line, '\n');
        const char *t = skip_blank(line);
        size_t len = (size_t)((nl ? nl : t + strlen(t)) - t);
        char *item;
        if (!out->option_a && (item = numbered_item(t, len, '1'))) out->option_a = item;
        else if (!out->option_b && (item = numbered_item(t, len, '2'))) out->option_b = item;
        line = nl;
    }
    if (out->option_a && out->option_b) out->role = STANDIN_ROLE_CRITIC;
    else if (!out->option_a && !out->option_b) out->role = STANDIN_ROLE_TEACHER;
    else {
        standin_prompt_free(out);
        out->n = 3;
        out->role = STANDIN_ROLE_UNKNOWN;
    }
    return out->role;
}

/* ---- teacher ----------------------------------------------------------------------- */

static const char *const OPENERS[] = {
    "As my {N} likes to say,",           "Breaking news from the {N} department:",
    "Confession of a tired {N}:",        "Plot twist, says the {N}:",
    "According to a very reliable {N},", "Fun fact, courtesy of the {N}:",
    "Warning from the local {N}:",       "Rumour has it, and the {N} agrees,",
};
static const char *const CLOSERS1[] = {
    " -- and the {N} never saw it coming.", ", or so the {N} claims.",
    ", which explains the {N} in the fridge.", "; blame the {N}.",
    ", and the {N} filed a complaint.",     " -- ask any {N}.",
};
static const char *const CLOSERS2[] = {
    ", said the {N} to the {M}.",
    " -- the {N} blames the {M}.",
    ", and the {N} married the {M} anyway.",
    "; the {N} and the {M} are still arguing about it.",
};
#define COUNT_OF(a) ((int)(sizeof(a) / sizeof *(a)))

static const char *const NUMBER_WORDS[] = {"zero", "one", "two", "three", "four", "five",
                                           "six",  "seven", "eight", "nine", "ten"};

/* The literal as whitespace tokens, without its final punctuation. */
typedef struct {
    char *buf;
    char **tok;
    int n;
    int *content;  /* indices of tokens holding a content (non-stop) word */
    int n_content;
} Lit;

static void lit_init(const StandinWorld *w, const char *literal, Lit *l) {
    memset(l, 0, sizeof *l);
    size_t len = strlen(literal);
    while (len && strchr(" \t\r\n.!?", literal[len - 1])) len--;
    l->buf = xstrndup(literal, len);
    l->tok = xmalloc((len / 2 + 2) * sizeof *l->tok);
    l->content = xmalloc((len / 2 + 2) * sizeof *l->content);
    for (char *p = l->buf; *p;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') *p++ = 0;
        if (!*p) break;
        l->tok[l->n] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') p++;
        const char *q = l->tok[l->n];
        char buf[WORD_CAP];
        char save = *p;
        *p = 0;
        if (word_next(&q, buf, NULL) && !is_stop(w, buf)) l->content[l->n_content++] = l->n;
        *p = save;
        l->n++;
    }
}

static void lit_free(Lit *l) {
    free(l->buf);
    free(l->tok);
    free(l->content);
}

static void put_tokens(ByteBuf *b, const Lit *l, int from, int to, int skip) {
    for (int i = from; i < to; i++) {
        if (i == skip) continue;
        if (b->n && b->a[b->n - 1] != ' ') bytebuf_putc(b, ' ');
        bytebuf_put(b, l->tok[i], strlen(l->tok[i]));
    }
}

/* A joke noun that is not one of the literal's words and not `avoid`. */
static const char *pick_noun(const StandinWorld *w, const char *literal, const char *avoid, Rng *r) {
    for (int tries = 0; tries < 16; tries++) {
        const char *n = w->nouns[rng_below(r, (uint64_t)w->n_nouns)];
        if ((avoid && strcmp(n, avoid) == 0) || strstr(literal, n)) continue;
        return n;
    }
    return w->nouns[0];
}

static void put_template(ByteBuf *b, const char *tmpl, const char *n1, const char *n2) {
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '{' && (p[1] == 'N' || p[1] == 'M') && p[2] == '}') {
            const char *v = p[1] == 'N' ? n1 : n2;
            bytebuf_put(b, v, strlen(v));
            p += 2;
        } else {
            bytebuf_putc(b, *p);
        }
    }
}

/* A tag of at most max_words words (at least 3), or NULL. */
static const char *pick_tag(const StandinWorld *w, int max_words, Rng *r) {
    for (int tries = 0; tries < 64; tries++) {
        int i = (int)rng_below(r, (uint64_t)w->n_tags);
        if (w->tag_words[i] <= max_words) return w->tags[i];
    }
    return NULL;
}

enum { TIER_GOOD, TIER_MIDDLING, TIER_POOR };

/* One paraphrase of the given tier (malloc'd), before capitalisation. */
static char *make_paraphrase(const StandinWorld *w, const char *literal, const Lit *l, int tier, Rng *r) {
    ByteBuf b = {0};
    int nl = l->n ? l->n : 1;
    int budget = (int)lround(0.8 * nl);
    budget = budget < 3 ? 3 : budget > 10 ? 10 : budget;
    const char *n1 = pick_noun(w, literal, NULL, r);
    const char *n2 = pick_noun(w, literal, n1, r);
    if (tier == TIER_GOOD) {
        if (budget >= 7) {
            put_template(&b, OPENERS[rng_below(r, COUNT_OF(OPENERS))], n1, n2);
            put_tokens(&b, l, 0, l->n, -1);
            const char *tag = rng_below(r, 2) ? pick_tag(w, budget - 4, r) : NULL;
            if (tag) {
                bytebuf_put(&b, ". ", 2);
                bytebuf_put(&b, tag, strlen(tag));
            } else {
                put_template(&b, CLOSERS1[rng_below(r, COUNT_OF(CLOSERS1))], n2, n1);
            }
        } else {
            put_tokens(&b, l, 0, l->n, -1);
            const char *tag = rng_below(r, 3) == 0 ? pick_tag(w, budget, r) : NULL;
            if (tag) {
                bytebuf_put(&b, ". ", 2);
                bytebuf_put(&b, tag, strlen(tag));
            } else {
                put_template(&b, CLOSERS2[rng_below(r, COUNT_OF(CLOSERS2))], n1, n2);
            }
        }
    } else if (tier == TIER_MIDDLING) {
        int skip = -1;
        if (l->n_content >= 3 && rng_below(r, 2)) skip = l->content[rng_below(r, (uint64_t)l->n_content)];
        if (rng_below(r, 2)) {
            put_template(&b, OPENERS[rng_below(r, COUNT_OF(OPENERS))], n1, n2);
            put_tokens(&b, l, 0, l->n, skip);
            bytebuf_putc(&b, '.');
        } else {
            put_tokens(&b, l, 0, l->n, skip);
            put_template(&b, CLOSERS1[rng_below(r, COUNT_OF(CLOSERS1))], n1, n2);
        }
    } else {
        int kind = (int)rng_below(r, 3);
        const char *tag = kind == 0 ? pick_tag(w, 10, r) : NULL;
        if (kind == 0 && tag) { /* the meaning is lost */
            put_tokens(&b, l, 0, l->n < 2 ? l->n : 2, -1);
            bytebuf_put(&b, "... ", 4);
            bytebuf_put(&b, tag, strlen(tag));
        } else if (kind == 1 && l->n_content > 0) { /* bloated and repetitive */
            put_tokens(&b, l, 0, l->n, -1);
            for (int k = 0; k < 2; k++) {
                const char *tok = l->tok[l->content[rng_below(r, (uint64_t)l->n_content)]];
                char buf[WORD_CAP];
                word_next(&tok, buf, NULL);
                bytebuf_put(&b, ", ", 2);
                for (int j = 0; j < 3; j++) {
                    if (j) bytebuf_putc(&b, ' ');
                    bytebuf_put(&b, buf, strlen(buf));
                }
            }
            bytebuf_put(&b, ", you know!", 11);
        } else { /* flat and cut short */
            put_tokens(&b, l, 0, (l->n + 1) / 2, -1);
            bytebuf_putc(&b, '.');
        }
    }
    if (!b.a) bytebuf_put(&b, "", 0);
    if (b.a[0] >= 'a' && b.a[0] <= 'z') b.a[0] = (char)(b.a[0] - 32);
    return b.a;
}

char *standin_teach(const StandinWorld *w, const char *literal, int n, uint64_t draw, double refusal_rate) {
    Rng r;
    rng_seed(&r, draw ^ 0x7265667573616cULL);
    if (rng_double(&r) < refusal_rate) return xstrdup(STANDIN_REFUSAL);
    rng_seed(&r, draw);
    if (n < 1) n = 1;
    if (n > STANDIN_MAX_N) n = STANDIN_MAX_N;
    Lit l;
    lit_init(w, literal, &l);
    /* tiers: a shuffled good/middling/poor pattern, repeated for n > 3 */
    int tiers[STANDIN_MAX_N];
    for (int i = 0; i < n; i++) tiers[i] = i % 3;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint64_t)i + 1);
        int t = tiers[i];
        tiers[i] = tiers[j];
        tiers[j] = t;
    }
    char *items[STANDIN_MAX_N];
    for (int i = 0; i < n; i++) {
        items[i] = NULL;
        for (int tries = 0; tries < 8 && !items[i]; tries++) {
            char *p = make_paraphrase(w, literal, &l, tiers[i], &r);
            int dup = 0;
            for (int j = 0; j < i; j++) dup |= strcmp(items[j], p) == 0;
            if (dup && tries < 7) free(p);
            else items[i] = p;
        }
    }
    lit_free(&l);
    /* the list format varies, to exercise the client's parser */
    double u = rng_double(&r);
    int style = u < 0.55 ? 0 : u < 0.65 ? 1 : u < 0.75 ? 2 : u < 0.85 ? 3 : u < 0.95 ? 4 : 5;
    ByteBuf b = {0};
    if (style == 3 || style == 5)
        bytebuf_printf(&b, "%s %s humorous takes:\n\n", rng_below(&r, 2) ? "Here are" : "Sure! Here are",
                       NUMBER_WORDS[n]);
    for (int i = 0; i < n; i++) {
        if (style == 1) bytebuf_printf(&b, "%d) %s\n", i + 1, items[i]);
        else if (style == 2) bytebuf_printf(&b, "- %s\n", items[i]);
        else if (style == 4) bytebuf_printf(&b, "%d. %s\n\n", i + 1, items[i]);
        else bytebuf_printf(&b, "%d. %s\n", i + 1, items[i]);
        free(items[i]);
    }
    if (style == 5) bytebuf_put(&b, "\nHope these make you smile!\n", 28);
    if (style == 0 || style == 1 || style == 2 || style == 3)
        while (b.n && b.a[b.n - 1] == '\n') b.a[--b.n] = 0;
    return b.a;
}

/* ---- critic ------------------------------------------------------------------------- */

void standin_critic_params_init(StandinCriticParams *p) {
    memset(p, 0, sizeof *p);
    p->tau = STANDIN_DEFAULT_TAU;
}

double standin_sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

double standin_log_sigmoid(double z) {
    if (z >= 0) return -log1p(exp(-z));
    return z - log1p(exp(z));
}

static double critic_logit_parts(const StandinCriticParams *p, const StandinHumorParts *a,
                                 const StandinHumorParts *b, int words_lit) {
    double tau = p->tau > 0 ? p->tau : STANDIN_DEFAULT_TAU;
    return (a->h - b->h) / tau + p->position_bias +
           p->length_bias * (double)(a->words_paraphrase - b->words_paraphrase) /
               (words_lit > 0 ? words_lit : 1);
}

double standin_critic_logit(const StandinWorld *w, const StandinCriticParams *p, const char *literal,
                            const char *a, const char *b) {
    StandinHumorParts pa, pb;
    standin_humor_parts(w, literal, a, &pa);
    standin_humor_parts(w, literal, b, &pb);
    return critic_logit_parts(p, &pa, &pb, pa.words_literal);
}

char *standin_critique(const StandinWorld *w, const StandinCriticParams *p, const char *literal,
                       const char *a, const char *b, uint64_t draw, double *logit, int *answer) {
    StandinHumorParts pa, pb;
    standin_humor_parts(w, literal, a, &pa);
    standin_humor_parts(w, literal, b, &pb);
    double z = critic_logit_parts(p, &pa, &pb, pa.words_literal);
    int ans;
    if (p->sample) {
        Rng r;
        rng_seed(&r, draw);
        ans = rng_double(&r) < standin_sigmoid(z) ? 1 : 2;
    } else {
        ans = z >= 0 ? 1 : 2;
    }
    const StandinHumorParts *win = ans == 1 ? &pa : &pb, *lose = ans == 1 ? &pb : &pa;
    double adv[4] = {0.45 * (win->joke - lose->joke), 0.35 * (win->keep - lose->keep),
                     0.20 * (win->len - lose->len), 0.5 * (lose->rep - win->rep)};
    int best = 0;
    for (int i = 1; i < 4; i++)
        if (adv[i] > adv[best]) best = i;
    const char *reason;
    char buf[160];
    if (adv[best] <= 0.01) {
        reason = "Paraphrase %d reads slightly better.";
    } else if (best == 0) {
        reason = "Paraphrase %d adds more comic detail while staying on topic.";
    } else if (best == 1) {
        reason = "Paraphrase %d keeps more of the original meaning.";
    } else if (best == 2) {
        reason = "Paraphrase %d has a better length for the joke.";
    } else {
        reason = "Paraphrase %d does not repeat itself.";
    }
    snprintf(buf, sizeof buf, reason, ans);
    if (logit) *logit = z;
    if (answer) *answer = ans;
    return xasprintf("Reason: %s\nAnswer: %d", buf, ans);
}

char *standin_reasoning(StandinRole role, const char *literal, int n, int answer, long *decoy_at) {
    *decoy_at = -1;
    const char *lit = literal ? literal : "";
    if (role == STANDIN_ROLE_CRITIC && (answer == 1 || answer == 2)) {
        char *head = xasprintf("Okay, I am comparing two paraphrases of \"%.200s\". At first sight paraphrase %d looks "
                               "funnier, so Answer: ", lit, 3 - answer);
        *decoy_at = (long)strlen(head);
        char *r = xasprintf("%s%d? Wait, the meaning matters too; let me weigh both once more before I answer.", head,
                            3 - answer);
        free(head);
        return r;
    }
    if (role == STANDIN_ROLE_TEACHER)
        return xasprintf("The user wants %d funny versions of \"%.200s\". Some drafts:\n1. A draft that is not good "
                         "enough yet\n2. Another weak draft to throw away\nNow the final list, nothing else.",
                         n, lit);
    return xstrdup("Let me think about what is asked.");
}
