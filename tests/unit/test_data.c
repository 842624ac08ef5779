/* test_data -- engine/data.h (the packer's tests are in test_packer.c):
 * data_tokenize in the plain prompt format (engine/prompt.h) lays each pair
 * out as prompt ids, separator ids (<|sep|>, or a text separator's ids),
 * target ids, end-of-text with n_prompt = prompt + separator; the chat
 * format is refused for a tokenizer without chat tokens; an example needing
 * exactly T positions fits and one more is an error naming source:line
 * (or, with skip_too_long, dropped and counted); no usable pair is an
 * error.  data_examples_pick copies the chosen examples in the given order.
 * data_split is deterministic, disjoint, covering and order-keeping,
 * depends on the seed, honours the fraction and never empties training. */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "engine/data.h"
#include "engine/prompt.h"
#include "engine/tokenizer.h"
#include "test.h"

static Tokenizer *small_tokenizer(void) {
    const char *texts[] = {"the cat sat on the mat", "the dog sat on the log", "a cat and a dog",
                           "the mat and the log"};
    size_t lens[4];
    for (int i = 0; i < 4; i++) lens[i] = strlen(texts[i]);
    Err e;
    Tokenizer *t = tokenizer_train(texts, lens, 4, 275, &e);
    CHECK(t, "tokenizer: %s", e.msg);
    return t;
}

static void encode(const Tokenizer *t, const char *s, IntVec *v) {
    v->n = 0;
    tokenizer_encode(t, s, strlen(s), v);
}

/* example k of x equals prompt ids + sep + target ids + eot */
static int laid_out(const Examples *x, int64_t k, const Tokenizer *t, const char *prompt, const char *target,
                    const int *sep, int ns) {
    IntVec a = {0}, b = {0};
    encode(t, prompt, &a);
    encode(t, target, &b);
    int64_t len = x->off[k + 1] - x->off[k];
    const int32_t *ids = x->ids + x->off[k];
    int ok = len == (int64_t)(a.n + (size_t)ns + b.n + 1) && x->n_prompt[k] == (int32_t)a.n + ns;
    for (size_t i = 0; ok && i < a.n; i++) ok = ids[i] == a.a[i];
    for (int i = 0; ok && i < ns; i++) ok = ids[a.n + (size_t)i] == sep[i];
    for (size_t i = 0; ok && i < b.n; i++) ok = ids[a.n + (size_t)ns + i] == b.a[i];
    ok = ok && ids[len - 1] == tokenizer_eot_id(t);
    intvec_free(&a), intvec_free(&b);
    return ok;
}

static void make_pairs(Pairs *p, int n, const char *const *prompts, const char *const *targets, const int64_t *lines) {
    memset(p, 0, sizeof *p);
    p->n = n;
    p->prompt = xmalloc(sizeof(char *) * n), p->target = xmalloc(sizeof(char *) * n), p->line = xmalloc(sizeof(int64_t) * n);
    for (int i = 0; i < n; i++) p->prompt[i] = xstrdup(prompts[i]), p->target[i] = xstrdup(targets[i]), p->line[i] = lines[i];
}

static void test_tokenize(void) {
    Tokenizer *t = small_tokenizer();
    const char *pr[] = {"the cat", "a dog sat on the mat and the log and the cat", "the log", "mat"};
    const char *tg[] = {"sat on the mat", "ha", "and a dog", "the cat and the dog sat on the log"};
    const int64_t lines[] = {3, 5, 6, 9};
    Pairs p;
    make_pairs(&p, 4, pr, tg, lines);
    int sep = tokenizer_sep_id(t);
    EXPECT(sep >= 0, "a trained tokenizer has <|sep|>");
    Examples x;
    Err e;
    PromptFormat fmt, fmt2;
    EXPECT(prompt_format_init(&fmt, t, PROMPT_PLAIN, "instruction", " => ", &e) == 0, "%s", e.msg);
    EXPECT(fmt.suffix.n == 1 && fmt.suffix.a[0] == sep && fmt.prefix.n == 0 && fmt.end == tokenizer_eot_id(t),
           "plain format: <|sep|> (not the text separator) when the tokenizer has one, <|endoftext|> ends");
    e.msg[0] = 0;
    EXPECT(prompt_format_init(&fmt2, t, PROMPT_CHAT, "instruction", " => ", &e) != 0 && strstr(e.msg, "student.format"),
           "chat format without chat tokens: %s", e.msg);
    int64_t skipped = -1;
    EXPECT(data_tokenize(&p, t, &fmt, 200, 0, "pairs.jsonl", &x, &skipped, &e) == 0, "%s", e.msg);
    int ok = x.n == 4 && x.off[0] == 0 && skipped == 0;
    for (int k = 0; ok && k < 4; k++) ok = laid_out(&x, k, t, pr[k], tg[k], &sep, 1);
    EXPECT(ok, "examples are prompt, <|sep|>, target, <|endoftext|>");
    /* lengths of each, for the boundary cases */
    int need[4];
    for (int k = 0; k < 4; k++) need[k] = (int)(x.off[k + 1] - x.off[k]) - 1;
    data_examples_free(&x);
    /* a separator of two ids (a text separator's encoding) */
    int sep2[2] = {40, 41};
    memset(&fmt2, 0, sizeof fmt2);
    fmt2.kind = PROMPT_PLAIN, fmt2.lead = xstrdup(""), fmt2.end = tokenizer_eot_id(t);
    intvec_push(&fmt2.suffix, sep2[0]), intvec_push(&fmt2.suffix, sep2[1]);
    EXPECT(data_tokenize(&p, t, &fmt2, 200, 0, "pairs.jsonl", &x, NULL, &e) == 0, "%s", e.msg);
    ok = x.n == 4;
    for (int k = 0; ok && k < 4; k++) ok = laid_out(&x, k, t, pr[k], tg[k], sep2, 2);
    EXPECT(ok, "a separator of two ids");
    data_examples_free(&x);
    prompt_format_free(&fmt2);
    /* exactly T positions fits; one fewer is an error naming the line */
    int longest = 0, which = 0;
    for (int k = 0; k < 4; k++)
        if (need[k] > longest) longest = need[k], which = k;
    EXPECT(data_tokenize(&p, t, &fmt, longest, 0, "pairs.jsonl", &x, NULL, &e) == 0 && x.n == 4,
           "an example of exactly T positions: %s", e.msg);
    data_examples_free(&x);
    char want[128];
    snprintf(want, sizeof want, "pairs.jsonl:%lld: pair needs %d positions but train.seq_len is %d",
             (long long)lines[which], longest, longest - 1);
    e.msg[0] = 0;
    EXPECT(data_tokenize(&p, t, &fmt, longest - 1, 0, "pairs.jsonl", &x, NULL, &e) != 0 && strstr(e.msg, want),
           "too long: %s (want %s)", e.msg, want);
    EXPECT(x.n == 0 && x.ids == NULL && x.off == NULL, "nothing left allocated after an error");
    /* skipping: the others stay, in order, and are counted */
    int T = need[0] > need[2] ? need[0] : need[2];
    int64_t expect_skip = 0;
    for (int k = 0; k < 4; k++) expect_skip += need[k] > T;
    EXPECT(data_tokenize(&p, t, &fmt, T, 1, "pairs.jsonl", &x, &skipped, &e) == 0, "%s", e.msg);
    ok = skipped == expect_skip && x.n == 4 - expect_skip && expect_skip > 0;
    for (int k = 0, j = 0; ok && k < 4; k++)
        if (need[k] <= T) ok = laid_out(&x, j++, t, pr[k], tg[k], &sep, 1);
    EXPECT(ok, "skip_too_long: %lld skipped, %lld kept", (long long)skipped, (long long)x.n);
    data_examples_free(&x);
    EXPECT(data_tokenize(&p, t, &fmt, 2, 1, "pairs.jsonl", &x, &skipped, &e) != 0 && strstr(e.msg, "pairs.jsonl") &&
               strstr(e.msg, "no usable pairs") && skipped == 4,
           "all too long: %s", e.msg);
    Pairs none = {0};
    EXPECT(data_tokenize(&none, t, &fmt, 50, 0, "empty.jsonl", &x, NULL, &e) != 0 && strstr(e.msg, "empty.jsonl"),
           "no pairs: %s", e.msg);
    prompt_format_free(&fmt);
    data_pairs_free(&p);
    EXPECT(p.n == 0 && p.prompt == NULL, "data_pairs_free resets");
    data_pairs_free(NULL);
    tokenizer_destroy(t);
}

/* n examples; example i has ids i*1000+j and a prompt of 1 + i%4 ids */
static void make(Examples *x, int n) {
    memset(x, 0, sizeof *x);
    x->n = n;
    x->off = xmalloc(sizeof(int64_t) * (n + 1));
    x->n_prompt = xmalloc(sizeof(int32_t) * (n ? n : 1));
    x->off[0] = 0;
    for (int i = 0; i < n; i++) x->off[i + 1] = x->off[i] + 5 + i % 7, x->n_prompt[i] = 1 + i % 4;
    x->ids = xmalloc(sizeof(int32_t) * (x->off[n] ? x->off[n] : 1));
    for (int i = 0; i < n; i++)
        for (int64_t j = x->off[i]; j < x->off[i + 1]; j++) x->ids[j] = i * 1000 + (int)(j - x->off[i]);
}

/* the example index of example k of x (its ids encode it), or -1 if malformed */
static int who(const Examples *x, int64_t k, const Examples *all) {
    int i = x->ids[x->off[k]] / 1000;
    if (i < 0 || i >= all->n || x->off[k + 1] - x->off[k] != all->off[i + 1] - all->off[i] ||
        x->n_prompt[k] != all->n_prompt[i] ||
        memcmp(x->ids + x->off[k], all->ids + all->off[i], sizeof(int32_t) * (size_t)(all->off[i + 1] - all->off[i])))
        return -1;
    return i;
}

static void test_pick_split(void) {
    Examples all, o;
    make(&all, 57);
    int64_t idx[] = {2, 0, 2, 56};
    data_examples_pick(&all, idx, 4, &o);
    int ok = o.n == 4 && o.off[0] == 0;
    for (int k = 0; ok && k < 4; k++) ok = who(&o, k, &all) == idx[k];
    EXPECT(ok, "pick: the chosen examples in the given order");
    o.ids[0] = -5;
    EXPECT(all.ids[all.off[2]] == 2000, "pick makes copies");
    data_examples_free(&o);
    data_examples_pick(&all, idx, 0, &o);
    EXPECT(o.n == 0 && o.off && o.off[0] == 0, "pick of nothing");
    data_examples_free(&o);
    EXPECT(o.n == 0 && o.ids == NULL, "data_examples_free resets");
    data_examples_free(NULL);

    Examples tr, va, tr2, va2;
    data_split(&all, 0.2, 77, &tr, &va);
    data_split(&all, 0.2, 77, &tr2, &va2);
    int seen[57] = {0}, order = 1, wellformed = 1, last = -1;
    for (int64_t k = 0; k < tr.n; k++) {
        int i = who(&tr, k, &all);
        wellformed &= i >= 0;
        if (i >= 0) seen[i]++, order &= i > last, last = i;
    }
    last = -1;
    for (int64_t k = 0; k < va.n; k++) {
        int i = who(&va, k, &all);
        wellformed &= i >= 0;
        if (i >= 0) seen[i]++, order &= i > last, last = i;
    }
    int cover = 1;
    for (int i = 0; i < 57; i++) cover &= seen[i] == 1;
    EXPECT(wellformed && cover && tr.n + va.n == 57 && va.n > 0, "split: disjoint and covering (%lld + %lld)",
           (long long)tr.n, (long long)va.n);
    EXPECT(order, "split keeps the original order");
    EXPECT(tr.n == tr2.n && va.n == va2.n && !memcmp(tr.ids, tr2.ids, sizeof(int32_t) * tr.off[tr.n]) &&
               !memcmp(va.ids, va2.ids, sizeof(int32_t) * va.off[va.n]),
           "split is deterministic");
    Examples tr3, va3;
    data_split(&all, 0.2, 78, &tr3, &va3);
    /* (the lengths first: memcmp read past va3's ids when only they differed; found by make test-asan) */
    EXPECT(va3.n != va.n || va3.off[va3.n] != va.off[va.n] ||
               memcmp(va3.ids, va.ids, sizeof(int32_t) * va.off[va.n]) != 0,
           "the seed changes the split");
    data_examples_free(&tr), data_examples_free(&va), data_examples_free(&tr2), data_examples_free(&va2);
    data_examples_free(&tr3), data_examples_free(&va3);
    data_split(&all, 0.0, 77, &tr, &va);
    EXPECT(tr.n == 57 && va.n == 0, "fraction 0: no validation");
    data_examples_free(&tr), data_examples_free(&va);
    data_split(&all, 1.0, 77, &tr, &va);
    EXPECT(tr.n == 1 && va.n == 56 && who(&tr, 0, &all) == 0, "fraction 1: training keeps one example (%lld)",
           (long long)tr.n);
    data_examples_free(&tr), data_examples_free(&va);
    data_examples_free(&all);
    make(&all, 4000);
    data_split(&all, 0.2, 5, &tr, &va);
    EXPECT(va.n > 4000 * 0.17 && va.n < 4000 * 0.23, "fraction 0.2 of 4000: %lld", (long long)va.n);
    data_examples_free(&tr), data_examples_free(&va);
    data_examples_free(&all);
}

int main(void) {
    test_tokenize();
    test_pick_split();
    return test_summary();
}
