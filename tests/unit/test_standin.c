/* test_standin -- the stand-in's humor world (standin/standin.h) against
 * docs/standin.md, worked by hand.
 *
 * A synthetic world written under build/tmp (WordNet index and data files,
 * a fortunes directory) whose every count is known:
 *  - literals: the quoted examples after " | " of data.noun/verb/adj/adv in
 *    that order, trimmed, 3..40 words, printable ASCII, no duplicates, never
 *    from the licence lines;
 *  - jokes: the records between "%" lines of the regular files only (not
 *    .dat, .u8, hidden files or subdirectories), ASCII art (letters < 60 %)
 *    dropped, "--" attribution lines not counted;
 *  - the lexicon: words with f >= 15, >= 3 letters, a WordNet lemma, not a
 *    stop word, capitalised at most half the time, ranked by log-odds: with
 *    joke words absent from the literals the weights are
 *    0.5 + 0.5 (log(f+5) - log(f_min+5)) / (log(f_max+5) - log(f_min+5)),
 *    whatever the totals; every excluded candidate stays out;
 *  - tags: one-line fortunes of 3..10 words ending in . ! ?, no markup, no
 *    shouting, with a lexicon word;
 *  - joke nouns: lexicon words with 3x more noun senses: the teacher never
 *    uses a lexicon word that is mostly a verb;
 *  - the humor score h and its parts for paraphrases worked by hand (the
 *    literal 0.55, joke words, repeats, the length band on both sides and
 *    its ends, case folding, the first 256 words only, an empty paraphrase);
 *  - standin_count_words, standin_prompt_parse (teacher/critic/unknown,
 *    n and its clamp, 1) and 2), blanks, case), the critic's logit formula
 *    with both biases, its answer (z >= 0 writes 1), the reason for each
 *    component and for a bias alone, sampled answers at sigmoid(z),
 *    sigmoid / log-sigmoid at the extremes, standin_reasoning's decoy;
 *  - standin_teach: pure in its arguments, refusals at the rate, n clamped
 *    to [1, 10], distinct capitalised items in the documented list formats
 *    at about the documented shares;
 *  - errors: a missing fortunes or WordNet directory (naming the Debian
 *    package), a directory without fortune files, too little text.
 * Debian's world (fortunes-min + wordnet-base): its documented sizes, the
 * top of the lexicon, the literal at exactly 0.55, the teacher's best and
 * worst items over 200 literals (0.85 and 0.39 documented), the critic's
 * table; four threads at once get the serial answers. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "standin/standin.h"
#include "test.h"

static char *TMP;

/* ---- the synthetic world ------------------------------------------------------------------------ */

enum { NJ = 60, NNOUN = 50, NTAG = 25 };
static char JW[NJ][8];   /* the joke words: zqab, zqac, ... */
static int F[NJ];        /* their counts in the counted fortune text */
static int N_JOKES, N_TAGS;

static char *path2(const char *a, const char *b) { return xasprintf("%s/%s", a, b); }

static void put(const char *dir, const char *name, const char *text) {
    char *p = path2(dir, name);
    CHECK(test_write_file(p, text, -1) == 0, "write %s", p);
    free(p);
}

static const char *ADJ[] = {"plain", "quiet", "brown", "tall", "small"};
static const char *NOUN[] = {"farmer", "teacher", "doctor", "sailor", "baker"};
static const char *VERB[] = {"walks", "sleeps", "waits", "reads", "sings"};

static char *literal_of(int i) {
    return xasprintf("the %s %s %s near the old river", ADJ[i / 25], NOUN[(i / 5) % 5], VERB[i % 5]);
}

/* WordNet: 125 literals (100 noun, 10 verb, 10 adj, 5 adv) and the rejects; index files. */
static void write_wordnet(const char *dir) {
    mkdir(dir, 0775);
    const char *licence = "  1 This software and database is provided; \"licence line example with words\"\n"
                          "  2 | \"a quoted licence example after a bar\"\n";
    ByteBuf f[4] = {{0}};
    for (int k = 0; k < 4; k++) bytebuf_put(&f[k], licence, strlen(licence));
    for (int i = 0; i < 125; i++) {
        int k = i < 100 ? 0 : i < 110 ? 1 : i < 120 ? 2 : 3;
        char *l = literal_of(i);
        if (i % 2) bytebuf_printf(&f[k], "%08d 03 n 01 thing 0 000 | a gloss; \"%s\"\n", i, l);
        else bytebuf_printf(&f[k], "%08d 03 n 01 thing 0 000 | a gloss; \"  %s \"; \"too short\"\n", i, l);
        free(l);
    }
    /* rejects: a duplicate, two words, 41 words, non-ASCII, a quote before the gloss */
    bytebuf_printf(&f[1], "00000001 03 v 01 x 0 000 | dup; \"the plain farmer walks near the old river\"\n");
    bytebuf_printf(&f[1], "00000002 03 v 01 x 0 000 | short; \"two words\"\n");
    ByteBuf longw = {0};
    for (int i = 0; i < 41; i++) bytebuf_printf(&longw, "%sword", i ? " " : "");
    bytebuf_put(&longw, "", 0);
    bytebuf_printf(&f[2], "00000003 03 a 01 x 0 000 | long; \"%s\"\n", longw.a);
    bytebuf_free(&longw);
    bytebuf_printf(&f[2], "00000004 03 a 01 x 0 000 | accent; \"the caf\xC3\xA9 was open late\"\n");
    bytebuf_printf(&f[3], "00000005 03 r 01 \"not an example here\" 0 000 | no quotes in this gloss\n");
    const char *pos[] = {"noun", "verb", "adj", "adv"};
    for (int k = 0; k < 4; k++) {
        char name[32];
        snprintf(name, sizeof name, "data.%s", pos[k]);
        bytebuf_put(&f[k], "", 0);
        put(dir, name, f[k].a);
        bytebuf_free(&f[k]);
    }
    ByteBuf in = {0}, iv = {0};
    bytebuf_put(&in, licence, strlen(licence));
    bytebuf_put(&iv, licence, strlen(licence));
    for (int i = 0; i < NJ; i++) {
        bytebuf_printf(&in, "%s n 3 1 @ 3 0 00000001 00000002 00000003\n", JW[i]);
        if (i >= NNOUN) bytebuf_printf(&iv, "%s v 2 1 @ 2 0 00000004 00000005\n", JW[i]);
    }
    bytebuf_printf(&in, "quux n 1 1 @ 1 0 00000006\nzed n 1 1 @ 1 0 00000007\nox n 1 1 @ 1 0 00000008\n"
                        "something n 1 1 @ 1 0 00000009\nzqzz n 1 1 @ 1 0 00000010\nzqyy n 1 1 @ 1 0 00000011\n"
                        "zqxx n 1 1 @ 1 0 00000012\nice_cream n 1 1 @ 1 0 00000013\n");
    bytebuf_put(&in, "", 0), bytebuf_put(&iv, "", 0);
    put(dir, "index.noun", in.a);
    put(dir, "index.verb", iv.a);
    put(dir, "index.adj", licence);
    put(dir, "index.adv", licence);
    bytebuf_free(&in), bytebuf_free(&iv);
}

/* appends one record (a "%" line after it) and counts its joke words */
static void record(ByteBuf *b, const char *text, int counted) {
    bytebuf_printf(b, "%s\n%%\n", text);
    N_JOKES += counted;
}

static void count_words_in(const char *text) {
    for (int i = 0; i < NJ; i++) {
        size_t n = strlen(JW[i]);
        for (const char *p = text; (p = strstr(p, JW[i])); p += n) F[i]++;
    }
}

static void write_fortunes(const char *dir) {
    mkdir(dir, 0775);
    ByteBuf b = {0};
    /* tags: "The <w> is here." for the first 25 joke words */
    for (int t = 0; t < NTAG; t++) {
        char *s = xasprintf("The %s is here.", JW[t]);
        record(&b, s, 1), count_words_in(s);
        N_TAGS++;
        free(s);
    }
    /* not tags: markup, shouting, too few and too many words, no lexicon word, two lines joined but 11 words */
    const char *not_tags[] = {"The zqab is (here).", "THE ZQAB IS HERE.", "zqab zqab.", "The zqab is here and there and then here and there again.",
                              "The sun is here.", "The zqab is here\nand there and then back here again too."};
    for (size_t i = 0; i < sizeof not_tags / sizeof *not_tags; i++) {
        record(&b, not_tags[i], 1);
        char *low = xstrdup(not_tags[i]);
        for (char *p = low; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        count_words_in(low);
        free(low);
    }
    /* a tag written over two lines joins into one: a tag */
    record(&b, "The zqac\nis here!", 1), count_words_in("zqac");
    N_TAGS++;
    /* distractors: 14 x quux, 20 x Zed (capitalised), 30 x ox, noway (not a lemma), something (a stop word) */
    ByteBuf d = {0};
    for (int i = 0; i < 14; i++) bytebuf_printf(&d, "quux ");
    for (int i = 0; i < 20; i++) bytebuf_printf(&d, "Zed ");
    for (int i = 0; i < 30; i++) bytebuf_printf(&d, "ox noway something ");
    bytebuf_put(&d, "", 0);
    record(&b, d.a, 1);
    bytebuf_free(&d);
    /* attribution lines are not counted; ASCII art is dropped whole */
    ByteBuf att = {0}, art = {0};
    bytebuf_printf(&att, "zqad zqad\n");
    for (int i = 0; i < 20; i++) bytebuf_printf(&att, "  -- by zqzz\n");
    bytebuf_printf(&att, "zqad");
    for (int i = 0; i < 20; i++) bytebuf_printf(&art, "zqyy ##################################\n");
    bytebuf_put(&att, "", 0), bytebuf_put(&art, "", 0);
    record(&b, att.a, 1), count_words_in("zqad zqad zqad");
    record(&b, art.a, 0);
    bytebuf_free(&att), bytebuf_free(&art);
    /* the bulk: every joke word up to f_i = 75 - i occurrences, ten a record, no final punctuation */
    for (int i = 0; i < NJ; i++) {
        int want = 75 - i;
        CHECK(F[i] <= want, "%s already at %d", JW[i], F[i]);
        while (F[i] < want) {
            ByteBuf r = {0};
            for (int k = 0; k < 10 && F[i] < want; k++, F[i]++) bytebuf_printf(&r, "%s%s", k ? " " : "", JW[i]);
            bytebuf_put(&r, "", 0);
            record(&b, r.a, 1);
            bytebuf_free(&r);
        }
    }
    bytebuf_put(&b, "", 0);
    put(dir, "jokes", b.a);
    bytebuf_free(&b);
    /* never read: .dat, .u8, hidden files, a subdirectory */
    ByteBuf x = {0};
    for (int i = 0; i < 30; i++) bytebuf_printf(&x, "zqxx zqxx zqxx\n%%\n");
    bytebuf_put(&x, "", 0);
    put(dir, "jokes.dat", x.a);
    put(dir, "jokes.u8", x.a);
    put(dir, ".hidden", x.a);
    char *off = path2(dir, "off");
    mkdir(off, 0775);
    put(off, "rude", x.a);
    free(off);
    bytebuf_free(&x);
}

static double weight_of(int i) {
    double fmax = 75, fmin = 75 - (NJ - 1);
    return 0.5 + 0.5 * (log(75 - i + 5.0) - log(fmin + 5)) / (log(fmax + 5) - log(fmin + 5));
}

static StandinWorld *synthetic(char **fdir_out, char **wdir_out) {
    for (int i = 0; i < NJ; i++) snprintf(JW[i], sizeof JW[i], "zq%c%c", "abcdef"[i / 10], "bcdfghjklm"[i % 10]);
    char *fdir = path2(TMP, "fortunes"), *wdir = path2(TMP, "wordnet");
    write_wordnet(wdir);
    write_fortunes(fdir);
    Err e = {{0}};
    StandinWorld *w = standin_world_create(fdir, wdir, &e);
    EXPECT(w != NULL, "the synthetic world: %s", e.msg);
    *fdir_out = fdir, *wdir_out = wdir;
    return w;
}

static void world_contents(const StandinWorld *w) {
    EXPECT(standin_world_n_literals(w) == 125, "125 literals (%d)", standin_world_n_literals(w));
    char *l0 = literal_of(0), *l1 = literal_of(1), *l100 = literal_of(100), *l124 = literal_of(124);
    EXPECT(!strcmp(standin_world_literal(w, 0), l0) && !strcmp(standin_world_literal(w, 1), l1) &&
               !strcmp(standin_world_literal(w, 100), l100) && !strcmp(standin_world_literal(w, 124), l124),
           "literals in file order, trimmed: '%s', '%s'", standin_world_literal(w, 0), standin_world_literal(w, 100));
    free(l0), free(l1), free(l100), free(l124);
    EXPECT(standin_world_n_jokes(w) == N_JOKES, "%d jokes (%d expected: art dropped, other files skipped)",
           standin_world_n_jokes(w), N_JOKES);
    EXPECT(standin_world_n_tags(w) == N_TAGS, "%d tags (%d expected)", standin_world_n_tags(w), N_TAGS);
    int order = 1, weights = 1;
    for (int i = 0; i < NJ; i++) {
        order &= !strcmp(standin_lexicon_word(w, i), JW[i]);
        weights &= fabs(standin_lexicon_weight(w, JW[i]) - weight_of(i)) < 1e-6;
    }
    EXPECT(order, "the lexicon ranked by log-odds: %s %s ... %s", standin_lexicon_word(w, 0), standin_lexicon_word(w, 1),
           standin_lexicon_word(w, NJ - 1));
    EXPECT(weights && standin_lexicon_weight(w, JW[0]) == 1.0f && fabs(standin_lexicon_weight(w, JW[NJ - 1]) - 0.5) < 1e-7,
           "weights 0.5 + 0.5 (lo - lo_min)/(lo_max - lo_min): %g .. %g", standin_lexicon_weight(w, JW[0]),
           standin_lexicon_weight(w, JW[NJ - 1]));
    const char *out[] = {"quux", "zed", "ox", "noway", "something", "zqzz", "zqyy", "zqxx", "the", "sun", "farmer", "here"};
    int none = 1;
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) {
        if (standin_lexicon_weight(w, out[i]) != 0) none = 0, fprintf(stderr, "  '%s' is in the lexicon\n", out[i]);
    }
    EXPECT(none, "f < 15, capitalised names, 2 letters, not a lemma, stop words, attribution, art, skipped files: out");
    EXPECT(standin_lexicon_weight(w, "ZQAB") == 0, "the lexicon is lowercase: look-ups are not folded");
}

/* ---- the humor score, by hand ------------------------------------------------------------------------ */

static double band(double r) {
    if (r <= 0.4) return 0;
    if (r < 1.0) return (r - 0.4) / 0.6;
    if (r <= 2.2) return 1;
    if (r >= 4.0) return 0;
    return 1 - (r - 2.2) / 1.8;
}

static double clamp01(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

static void humor(const StandinWorld *w) {
    const char *L = "the plain farmer walks near the old river"; /* 8 words; content: plain farmer walks near old river */
    double w0 = standin_lexicon_weight(w, JW[0]), w1 = standin_lexicon_weight(w, JW[1]);
    struct { const char *p; double h; const char *what; } cases[] = {
        {L, 0.35 + 0.20, "the literal itself"},
        {"THE Plain FARMER walks, near the old RIVER!", 0.35 + 0.20, "case and punctuation do not matter"},
        {"the plain farmer walks near the old river zqab", 0.45 * (1 - exp(-w0 / 1.2)) + 0.55, "one joke word"},
        {"the plain farmer walks near the old river zqab zqac", 0.45 * (1 - exp(-(w0 + w1) / 1.2)) + 0.55, "two joke words"},
        {"the plain farmer walks near the old river zqab zqab", 0.45 * (1 - exp(-w0 / 1.2)) + 0.55 - 0.5 * (1.0 / 8),
         "a joke word twice: counted once, one excess repeat of 8 content tokens"},
        {"the plain farmer walks near the old river river river", 0.55 - 0.5 * (2.0 / 8),
         "a literal word three times: two excess"},
        {"the plain farmer", 0.35 * (2.0 / 6) + 0.20 * band(3.0 / 8), "cut to 3 of 8 words: below 0.4"},
        {"the plain farmer walks near the", 0.35 * (4.0 / 6) + 0.20 * band(6.0 / 8), "6 of 8 words: on the slope"},
        {"the plain farmer walks near the old river and so on and so on and so on", 0.35 + 0.20,
         "17 words of 8: 2.125, still inside the band"},
        {"the plain farmer walks near the old river and so on and so on and so on and so on", 0.35 + 0.20 * band(20.0 / 8),
         "20 words of 8: above 2.2"},
        {"the plain farmer walks near the old river and so on and so on and so on and so on and so on and so on and so "
         "on and so on", 0.35 + 0.20 * band(32.0 / 8), "32 words of 8: 4.0, the band's end"},
        {"a farmer", 0.35 * (1.0 / 6), "two words"},
        {"", 0, "empty"},
        {"!!! ...", 0, "no words"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double h = standin_humor(w, L, cases[i].p);
        EXPECT(fabs(h - clamp01(cases[i].h)) < 1e-9, "%s: h %.12f, by hand %.12f", cases[i].what, h, clamp01(cases[i].h));
    }
    /* the parts */
    StandinHumorParts p;
    standin_humor_parts(w, L, "the plain farmer walks near the old river zqab zqab", &p);
    EXPECT(fabs(p.joke - (1 - exp(-w0 / 1.2))) < 1e-12 && p.keep == 1 && p.len == 1 && fabs(p.rep - 1.0 / 8) < 1e-12 &&
               p.words_literal == 8 && p.words_paraphrase == 10,
           "parts: joke %g keep %g len %g rep %g words %d/%d", p.joke, p.keep, p.len, p.rep, p.words_literal, p.words_paraphrase);
    standin_humor_parts(w, L, "", &p);
    EXPECT(p.h == 0 && p.joke == 0 && p.keep == 0 && p.words_paraphrase == 0 && p.words_literal == 8, "empty: all 0");
    /* a joke word of the literal is no joke; a literal of stop words only keeps everything */
    EXPECT(fabs(standin_humor(w, "the zqab sat on the mat", "the zqab sat on the mat") - 0.55) < 1e-12, "a literal's own joke word");
    EXPECT(fabs(standin_humor(w, "it is what it is", "it is what it is zqab") - (0.45 * (1 - exp(-w0 / 1.2)) + 0.55)) < 1e-12,
           "a literal of stop words: keep 1");
    /* only the first 256 words are looked at: a joke word as word 259 does not count; the length counts all words */
    ByteBuf b = {0};
    bytebuf_put(&b, L, strlen(L));
    for (int i = 0; i < 250; i++) bytebuf_put(&b, " the", 4);
    bytebuf_put(&b, " zqab", 5);
    bytebuf_put(&b, "", 0);
    standin_humor_parts(w, L, b.a, &p);
    EXPECT(p.joke == 0 && p.words_paraphrase == 259 && p.len == 0 && fabs(p.h - 0.35) < 1e-12,
           "word 259 unseen: joke %g, %d words, h %g", p.joke, p.words_paraphrase, p.h);
    bytebuf_free(&b);
    /* words */
    struct { const char *t; int n; } words[] = {{"don't stop", 2},  {"a-b c3d", 4},     {"  ", 0},        {NULL, 0},
                                                {"it's 'quoted'", 2}, {"x'", 1},          {"caf\xC3\xA9 ok", 2}};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        EXPECT(standin_count_words(words[i].t) == words[i].n, "count_words('%s') = %d (%d)", words[i].t ? words[i].t : "NULL",
               standin_count_words(words[i].t), words[i].n);
}

/* ---- prompts ------------------------------------------------------------------------------------------- */

static void prompts(void) {
    struct { const char *msg; int role, n; const char *lit, *a, *b; } cases[] = {
        {"Rewrite the sentence below in 4 different humorous ways.\nSentence: the cat sat\n", STANDIN_ROLE_TEACHER, 4,
         "the cat sat", NULL, NULL},
        {"Sentence:   the cat sat  \t", STANDIN_ROLE_TEACHER, 3, "the cat sat", NULL, NULL},
        {"Give 0 takes.\nSentence: x y", STANDIN_ROLE_TEACHER, 1, "x y", NULL, NULL},
        {"Give 99 takes.\nSentence: x y", STANDIN_ROLE_TEACHER, 10, "x y", NULL, NULL},
        {"Give 12345678901234567890 takes.\nSentence: x y", STANDIN_ROLE_TEACHER, 10, "x y", NULL, NULL},
        {"Funny please.\nSentence: x y\nUse 7 words.", STANDIN_ROLE_TEACHER, 3, "x y", NULL, NULL},
        {"  sentence: lower case\n", STANDIN_ROLE_TEACHER, 3, "lower case", NULL, NULL},
        {"Here is a sentence.\nSentence: the cat sat\n1. A cat sat\n2. The cat, seated\nWhich?", STANDIN_ROLE_CRITIC, 3,
         "the cat sat", "A cat sat", "The cat, seated"},
        {"Sentence: s\n  1) first one \n2)second\n2) two", STANDIN_ROLE_CRITIC, 3, "s", "first one", "two"},
        {"1. before\n2. before\nSentence: s", STANDIN_ROLE_TEACHER, 1, "s", NULL, NULL},
        {"Sentence: s\n1. only one", STANDIN_ROLE_UNKNOWN, 3, NULL, NULL, NULL},
        {"Sentence: s\n10. ten\n2. two", STANDIN_ROLE_UNKNOWN, 3, NULL, NULL, NULL},
        {"Sentence:   \n1. a\n2. b", STANDIN_ROLE_UNKNOWN, 3, NULL, NULL, NULL},
        {"hello there", STANDIN_ROLE_UNKNOWN, 3, NULL, NULL, NULL},
        {"", STANDIN_ROLE_UNKNOWN, 3, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        StandinPrompt p;
        int role = standin_prompt_parse(cases[i].msg, &p);
        int ok = role == cases[i].role && (int)p.role == role && p.n == cases[i].n &&
                 (cases[i].lit ? p.literal && !strcmp(p.literal, cases[i].lit) : !p.literal) &&
                 (cases[i].a ? p.option_a && !strcmp(p.option_a, cases[i].a) : !p.option_a) &&
                 (cases[i].b ? p.option_b && !strcmp(p.option_b, cases[i].b) : !p.option_b);
        EXPECT(ok, "prompt %zu: role %d n %d literal '%s' a '%s' b '%s'", i, role, p.n, p.literal ? p.literal : "-",
               p.option_a ? p.option_a : "-", p.option_b ? p.option_b : "-");
        standin_prompt_free(&p);
        standin_prompt_free(&p);
    }
    standin_prompt_free(NULL);
}

/* ---- the critic ----------------------------------------------------------------------------------------- */

static void critic(const StandinWorld *w) {
    const char *L = "the plain farmer walks near the old river";
    const char *A = "the plain farmer walks near the old river zqab";
    double w0 = standin_lexicon_weight(w, JW[0]), dh = 0.45 * (1 - exp(-w0 / 1.2));
    StandinCriticParams p;
    standin_critic_params_init(&p);
    EXPECT(p.tau == 0.1 && p.position_bias == 0 && p.length_bias == 0 && p.sample == 0, "defaults: tau 0.1, no bias");
    EXPECT(fabs(standin_critic_logit(w, &p, L, A, L) - dh / 0.1) < 1e-9, "z = dh / tau");
    EXPECT(fabs(standin_critic_logit(w, &p, L, L, A) + dh / 0.1) < 1e-9, "antisymmetric");
    p.position_bias = 0.5, p.length_bias = 2, p.tau = 0.2;
    EXPECT(fabs(standin_critic_logit(w, &p, L, A, L) - (dh / 0.2 + 0.5 + 2.0 * (9 - 8) / 8)) < 1e-9,
           "z = dh/tau + B + L (words(a) - words(b)) / words(literal)");
    /* an empty literal: both lose the length band and keep everything; the length term divides by 1 */
    EXPECT(fabs(standin_critic_logit(w, &p, "", A, L) - (dh / 0.2 + 0.5 + 2.0 * (9 - 8) / 1)) < 1e-9,
           "an empty literal divides by max(1, 0): %g", standin_critic_logit(w, &p, "", A, L));
    standin_critic_params_init(&p);

    /* the written answer and its reason */
    struct { const char *a, *b; double bias; int ans; const char *reason; } cases[] = {
        {A, L, 0, 1, "Paraphrase 1 adds more comic detail while staying on topic."},
        {L, A, 0, 2, "Paraphrase 2 adds more comic detail while staying on topic."},
        {L, "the plain the walks near the old river", 0, 1, "Paraphrase 1 keeps more of the original meaning."},
        {"the plain farmer walks near the old river and so on and so on and so on and so on and so on and so on", L, 0, 2,
         "Paraphrase 2 has a better length for the joke."},
        {"the plain farmer walks near the old river river river", L, 0, 2, "Paraphrase 2 does not repeat itself."},
        {L, L, 0.3, 1, "Paraphrase 1 reads slightly better."},
        {L, L, -0.3, 2, "Paraphrase 2 reads slightly better."},
        {L, L, 0, 1, "Paraphrase 1 reads slightly better."}, /* z = 0 writes 1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        p.position_bias = cases[i].bias;
        double z = NAN;
        int ans = 0;
        char *t = standin_critique(w, &p, L, cases[i].a, cases[i].b, 99, &z, &ans);
        char *want = xasprintf("Reason: %s\nAnswer: %d", cases[i].reason, cases[i].ans);
        EXPECT(!strcmp(t, want) && ans == cases[i].ans && z == standin_critic_logit(w, &p, L, cases[i].a, cases[i].b),
               "critique %zu: '%s' (want '%s'), z %g", i, t, want, z);
        free(t), free(want);
    }
    char *t = standin_critique(w, &p, L, A, L, 1, NULL, NULL);
    EXPECT(t && !strncmp(t, "Reason: ", 8), "NULL outputs accepted");
    free(t);
    /* sampled answers: p(1) = sigmoid(z), a function of the draw */
    standin_critic_params_init(&p);
    p.sample = 1;
    p.position_bias = log(3.0); /* identical options: z = log 3, p(1) = 0.75 */
    int ones = 0, same = 1;
    for (int d = 0; d < 4000; d++) {
        int a1, a2;
        char *x = standin_critique(w, &p, L, L, L, (uint64_t)d, NULL, &a1), *y = standin_critique(w, &p, L, L, L, (uint64_t)d, NULL, &a2);
        same &= a1 == a2 && !strcmp(x, y);
        ones += a1 == 1;
        free(x), free(y);
    }
    EXPECT(same && fabs(ones / 4000.0 - 0.75) < 0.03, "sampled: %d of 4000 say 1 (0.75 expected), a function of the draw", ones);

    /* sigmoid and log-sigmoid */
    EXPECT(standin_sigmoid(0) == 0.5 && fabs(standin_log_sigmoid(0) + log(2)) < 1e-15, "at 0");
    EXPECT(standin_sigmoid(1000) == 1 && standin_sigmoid(-1000) == 0 && standin_log_sigmoid(1000) == 0 &&
               standin_log_sigmoid(-1000) == -1000 && isfinite(standin_log_sigmoid(-1e300)),
           "no overflow, no log(0): %g %g", standin_log_sigmoid(-1000), standin_log_sigmoid(-1e300));
    int sym = 1;
    for (double z = -30; z <= 30; z += 0.37) {
        sym &= fabs(standin_sigmoid(z) + standin_sigmoid(-z) - 1) < 1e-15;
        sym &= fabs(standin_log_sigmoid(z) - log(1 / (1 + exp(-z)))) < 1e-12;
    }
    EXPECT(sym, "sigmoid(z) + sigmoid(-z) = 1, log-sigmoid = log(1/(1+e^-z))");
    /* the documented table (tau 0.1) */
    double dhs[] = {0.02, 0.05, 0.10, 0.20, 0.30, 0.45}, ps[] = {0.55, 0.62, 0.73, 0.88, 0.95, 0.99};
    int table = 1;
    for (int i = 0; i < 6; i++) table &= fabs(standin_sigmoid(dhs[i] / 0.1) - ps[i]) < 0.005;
    EXPECT(table, "the table of p(better one) for dh 0.02 .. 0.45");

    /* reasoning: the decoy verdict is the other answer */
    for (int a = 1; a <= 2; a++) {
        long at = -2;
        char *r = standin_reasoning(STANDIN_ROLE_CRITIC, "the cat sat", 3, a, &at);
        EXPECT(at > 8 && at < (long)strlen(r) && r[at] == '0' + (3 - a) && !strncmp(r + at - 8, "Answer: ", 8) &&
                   strstr(r, "the cat sat"),
               "critic reasoning for %d: the decoy %c at %ld: %s", a, '0' + 3 - a, at, r);
        free(r);
    }
    long at = 5;
    char *r = standin_reasoning(STANDIN_ROLE_TEACHER, "the cat sat", 4, 0, &at);
    EXPECT(at == -1 && strstr(r, "\n1. ") && strstr(r, "\n2. ") && strstr(r, "4") && strstr(r, "the cat sat"),
           "teacher reasoning: two numbered drafts: %s", r);
    free(r);
    r = standin_reasoning(STANDIN_ROLE_CRITIC, NULL, 3, 0, &at);
    EXPECT(at == -1 && r && !strstr(r, "Answer"), "no verdict, no literal: no decoy: %s", r);
    free(r);
    r = standin_reasoning(STANDIN_ROLE_UNKNOWN, "x", 3, 1, &at);
    EXPECT(at == -1 && r, "unknown role: %s", r);
    free(r);
}

/* ---- the teacher --------------------------------------------------------------------------------------- */

/* Items of a teacher answer by the documented list formats: "k. x", "k) x", "- x"; *style gets
 * 0 "1." lines, 1 "1)", 2 bullets, 3 intro + list, 4 blank-separated with trailing blanks, 5 intro + list + outro,
 * -1 unknown. */
static int items_of(const char *text, char items[][512], int max, int *style) {
    int n = 0, intro = 0, outro = 0, blank_between = 0, paren = 0, bullet = 0, dot = 0;
    size_t len = strlen(text);
    int trailing = len > 0 && text[len - 1] == '\n';
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        char line[500];
        snprintf(line, sizeof line, "%.*s", (int)l, p);
        int k = 0, off = 0;
        if (sscanf(line, "%d.%n", &k, &off) == 1 && off > 0 && line[off] == ' ' && n < max) {
            snprintf(items[n++], 512, "%s", line + off + 1), dot++;
            if (k != n) return -1;
        } else if (sscanf(line, "%d)%n", &k, &off) == 1 && off > 0 && line[off] == ' ' && n < max) {
            snprintf(items[n++], 512, "%s", line + off + 1), paren++;
            if (k != n) return -1;
        } else if (!strncmp(line, "- ", 2) && n < max) {
            snprintf(items[n++], 512, "%s", line + 2), bullet++;
        } else if (!strcmp(line, "Here are") || strstr(line, "humorous takes:")) {
            intro = n == 0;
        } else if (!strcmp(line, "Hope these make you smile!")) {
            outro = 1;
        } else if (!line[0]) {
            if (n > 0 && !outro) blank_between = 1;
        } else {
            return -1;
        }
        p += l + (nl ? 1 : 0);
    }
    *style = paren && !intro ? 1 : bullet ? 2 : intro && outro ? 5 : intro ? 3 : blank_between && trailing ? 4 : dot ? 0 : -1;
    return n;
}

static int capitalised_and_distinct(char items[][512], int n) {
    for (int i = 0; i < n; i++) {
        if (items[i][0] >= 'a' && items[i][0] <= 'z') return 0; /* capitalised (a literal may start with a digit) */
        for (int j = 0; j < i; j++)
            if (!strcmp(items[i], items[j])) return 0;
    }
    return 1;
}

static void teacher(const StandinWorld *w, int synthetic_world) {
    int styles[6] = {0}, bad = 0, never_verbs = 1, refused = 0;
    char items[STANDIN_MAX_N][512];
    for (int d = 0; d < 2000; d++) {
        const char *lit = standin_world_literal(w, d % standin_world_n_literals(w));
        char *t = standin_teach(w, lit, 3, (uint64_t)d, 0.0), *t2 = standin_teach(w, lit, 3, (uint64_t)d, 0.0);
        int style = -1, n = items_of(t, items, STANDIN_MAX_N, &style);
        if (n != 3 || style < 0 || strcmp(t, t2) || !capitalised_and_distinct(items, n)) {
            if (bad++ < 3) fprintf(stderr, "  answer %d (style %d, %d items):\n%s\n", d, style, n, t);
        } else {
            styles[style]++;
        }
        if (synthetic_world)
            for (int i = NNOUN; i < NJ; i++) never_verbs &= strstr(t, JW[i]) == NULL;
        free(t), free(t2);
        t = standin_teach(w, lit, 3, (uint64_t)d, 0.3);
        refused += !strcmp(t, STANDIN_REFUSAL);
        free(t);
    }
    EXPECT(bad == 0, "2000 answers: 3 distinct capitalised items in a documented format, a pure function (%d bad)", bad);
    double want[6] = {0.55, 0.10, 0.10, 0.10, 0.10, 0.05};
    int shares = 1;
    for (int s = 0; s < 6; s++) shares &= fabs(styles[s] / 2000.0 - want[s]) < 0.04;
    EXPECT(shares, "list formats: %d %d %d %d %d %d of 2000 (55/10/10/10/10/5 %%)", styles[0], styles[1], styles[2], styles[3],
           styles[4], styles[5]);
    EXPECT(fabs(refused / 2000.0 - 0.3) < 0.04, "refusal rate 0.3: %d of 2000", refused);
    if (synthetic_world) EXPECT(never_verbs, "the templates' nouns are joke nouns: lexicon words that are mostly verbs never appear");
    char *t = standin_teach(w, "the cat sat on the mat", 3, 5, 1.0);
    EXPECT(!strcmp(t, "I'm sorry, but I can't help with that.") && !strcmp(STANDIN_REFUSAL, t), "refusal rate 1: '%s'", t);
    free(t);
    int style;
    struct { int ask, got; } ns[] = {{0, 1}, {-5, 1}, {1, 1}, {7, 7}, {10, 10}, {50, 10}};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        t = standin_teach(w, standin_world_literal(w, 3), ns[i].ask, 42, 0);
        int n = items_of(t, items, STANDIN_MAX_N, &style);
        EXPECT(n == ns[i].got && capitalised_and_distinct(items, n), "n %d: %d items (%d)", ns[i].ask, n, ns[i].got);
        free(t);
    }
    t = standin_teach(w, standin_world_literal(w, 3), 3, 42, 0);
    char *u = standin_teach(w, standin_world_literal(w, 3), 3, 43, 0);
    EXPECT(strcmp(t, u) != 0, "another draw, another answer");
    free(t), free(u);
}

/* ---- errors ----------------------------------------------------------------------------------------------- */

static void errors(const char *fdir, const char *wdir) {
    Err e = {{0}};
    char *nodir = path2(TMP, "nothere");
    StandinWorld *w = standin_world_create(nodir, wdir, &e);
    EXPECT(!w && strstr(e.msg, nodir) && strstr(e.msg, "apt-get install fortunes-min") && !strchr(e.msg, '\n'),
           "no fortunes: %s", e.msg);
    memset(&e, 0, sizeof e);
    w = standin_world_create(fdir, nodir, &e);
    EXPECT(!w && strstr(e.msg, nodir) && strstr(e.msg, "apt-get install wordnet-base") && !strchr(e.msg, '\n'),
           "no WordNet: %s", e.msg);
    char *only = path2(TMP, "only-dat");
    mkdir(only, 0775);
    put(only, "x.dat", "binary");
    char *sub = path2(only, "off");
    mkdir(sub, 0775);
    put(sub, "rude", "a joke\n%\n");
    memset(&e, 0, sizeof e);
    w = standin_world_create(only, wdir, &e);
    EXPECT(!w && strstr(e.msg, "no fortune files") && strstr(e.msg, "fortunes-min"), "no fortune files: %s", e.msg);
    char *tiny = path2(TMP, "tiny");
    mkdir(tiny, 0775);
    put(tiny, "jokes", "The zqab is here.\n%\nzqab zqab zqab\n");
    memset(&e, 0, sizeof e);
    w = standin_world_create(tiny, wdir, &e);
    EXPECT(!w && strstr(e.msg, "too little text") && !strchr(e.msg, '\n'), "too little text: %s", e.msg);
    standin_world_destroy(NULL);
    free(nodir), free(only), free(sub), free(tiny);
}

/* ---- Debian's world ----------------------------------------------------------------------------------------- */

typedef struct {
    const StandinWorld *w;
    double h[200];
    char *teach[50];
} Job;

static void *job(void *v) {
    Job *j = v;
    for (int i = 0; i < 200; i++) {
        const char *lit = standin_world_literal(j->w, 37 * i);
        char *t = standin_teach(j->w, lit, 3, (uint64_t)i, 0.1);
        j->h[i] = standin_humor(j->w, lit, t);
        if (i < 50) j->teach[i] = t;
        else free(t);
    }
    return NULL;
}

static void debian(void) {
    Err e = {{0}};
    double t0 = util_now();
    StandinWorld *w = standin_world_create(NULL, NULL, &e);
    if (!w) {
        printf("note: Debian's fortunes or WordNet are missing, their checks are left out: %s\n", e.msg);
        return;
    }
    printf("Debian's world: %d fortunes, %d literals, %d tags in %.2f s\n", standin_world_n_jokes(w),
           standin_world_n_literals(w), standin_world_n_tags(w), util_now() - t0);
    EXPECT(standin_world_n_literals(w) > 35000 && standin_world_n_literals(w) < 50000, "about 43,000 literals");
    EXPECT(standin_world_n_jokes(w) > 10000 && standin_world_n_jokes(w) < 20000, "about 15,000 fortunes");
    EXPECT(standin_world_n_tags(w) > 1000 && standin_world_n_tags(w) < 3000, "about 1,800 tags");
    EXPECT(!strcmp(standin_lexicon_word(w, 0), "programmer") && standin_lexicon_weight(w, "programmer") == 1.0f &&
               fabs(standin_lexicon_weight(w, standin_lexicon_word(w, STANDIN_LEXICON_SIZE - 1)) - 0.5) < 1e-6,
           "the lexicon: 400 words from programmer (1.0) to %s (0.5)", standin_lexicon_word(w, STANDIN_LEXICON_SIZE - 1));
    int exact = 1;
    for (int i = 0; i < 2000; i++) {
        const char *l = standin_world_literal(w, 17 * i);
        exact &= fabs(standin_humor(w, l, l) - 0.55) < 1e-12;
    }
    EXPECT(exact, "every literal scores 0.55 against itself");
    /* the teacher's tiers over 200 literals: best 0.85, worst 0.39 on average (documented) */
    double best = 0, worst = 0;
    char items[STANDIN_MAX_N][512];
    int parsed = 0;
    for (int i = 0; i < 200; i++) {
        const char *lit = standin_world_literal(w, (211 * i + 5) % standin_world_n_literals(w));
        char *t = standin_teach(w, lit, 3, (uint64_t)i * 7 + 1, 0);
        int style, n = items_of(t, items, STANDIN_MAX_N, &style);
        double hi = 0, lo = 1;
        for (int k = 0; k < n; k++) {
            double h = standin_humor(w, lit, items[k]);
            hi = fmax(hi, h), lo = fmin(lo, h);
        }
        parsed += n == 3;
        best += hi / 200, worst += lo / 200;
        free(t);
    }
    EXPECT(parsed == 200 && fabs(best - 0.85) < 0.05 && fabs(worst - 0.39) < 0.06,
           "200 literals: mean best %.3f (0.85), worst %.3f (0.39)", best, worst);
    teacher(w, 0);
    /* four threads at once get the serial answers */
    Job serial = {w, {0}, {0}}, par[4];
    job(&serial);
    pthread_t th[4];
    for (int k = 0; k < 4; k++) par[k] = (Job){w, {0}, {0}}, pthread_create(&th[k], NULL, job, &par[k]);
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    int same = 1;
    for (int k = 0; k < 4; k++) {
        same &= !memcmp(serial.h, par[k].h, sizeof serial.h);
        for (int i = 0; i < 50; i++) same &= !strcmp(serial.teach[i], par[k].teach[i]), free(par[k].teach[i]);
    }
    for (int i = 0; i < 50; i++) free(serial.teach[i]);
    EXPECT(same, "four threads: the serial scores and answers");
    standin_world_destroy(w);
}

int main(void) {
    TMP = test_tmpdir("test_standin");
    char *fdir, *wdir;
    StandinWorld *w = synthetic(&fdir, &wdir);
    if (w) {
        world_contents(w);
        humor(w);
        critic(w);
        teacher(w, 1);
        standin_world_destroy(w);
    }
    prompts();
    errors(fdir, wdir);
    debian();
    test_rm_rf(TMP);
    free(TMP), free(fdir), free(wdir);
    return test_summary();
}
