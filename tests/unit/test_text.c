/* test_text -- base/text.h: text_normalize's contract on hand-made cases,
 * against a naive reference (normalise, then strip one pair of wrapping
 * quotes and normalise again, recursively) on random short strings, and on a
 * line of a million quotes (the recursive version overflowed the stack:
 * found by tests/fuzz); word counts and cuts; FNV-1a test vectors. */
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "base/util.h"
#include "test.h"

/* The reference: text_normalize's pass as it was, quotes by recursion. */
static char *ref_normalize(const char *s, size_t len) {
    ByteBuf b = {0};
    const unsigned char *p = (const unsigned char *)s;
    int space = 1;
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = n && n <= len - i;
        for (size_t k = 1; ok && k < n; k++) ok = (p[i + k] & 0xC0) == 0x80;
        if (ok && n > 1) { /* overlong, surrogates, beyond U+10FFFF */
            unsigned cp = n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
            for (size_t k = 1; k < n; k++) cp = (cp << 6) | (p[i + k] & 0x3F);
            ok = !((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
                   (cp >= 0xD800 && cp <= 0xDFFF));
        }
        if (!ok) {
            bytebuf_put(&b, "\xEF\xBF\xBD", 3), space = 0, i++;
        } else if (n == 1 && (c < 0x20 || c == 0x7F || c == ' ')) {
            if (!space) bytebuf_putc(&b, ' ');
            space = 1, i++;
        } else if (n == 2 && c == 0xC2 && p[i + 1] == 0xA0) {
            if (!space) bytebuf_putc(&b, ' ');
            space = 1, i += 2;
        } else {
            bytebuf_put(&b, p + i, n), space = 0, i += n;
        }
    }
    while (b.n > 0 && b.a[b.n - 1] == ' ') b.a[--b.n] = 0;
    if (!b.a) bytebuf_put(&b, "", 0);
    if (b.n >= 2 && (b.a[0] == '"' || b.a[0] == '\'') && b.a[b.n - 1] == b.a[0]) {
        char *r = ref_normalize(b.a + 1, b.n - 2);
        bytebuf_free(&b);
        return r;
    }
    return b.a;
}

static int norm_is(const char *in, size_t len, const char *want) {
    char *got = text_normalize(in, len);
    int ok = strcmp(got, want) == 0;
    if (!ok) fprintf(stderr, "  normalize -> '%s', want '%s'\n", got, want);
    free(got);
    return ok;
}

static void test_normalize(void) {
    EXPECT(norm_is("  a \t b\n\n c  ", 14, "a b c"), "white space runs");
    EXPECT(norm_is("\"a b\"", 5, "a b"), "wrapping quotes");
    EXPECT(norm_is("\" ' \"a\"  ' \"", 12, "a"), "nested quotes with spaces");
    EXPECT(norm_is("\"a\" b \"c\"", 9, "a\" b \"c"), "a pair of quotes around the whole only");
    EXPECT(norm_is("'a\"", 3, "'a\""), "different quotes kept");
    EXPECT(norm_is("\"", 1, "\""), "one quote kept");
    EXPECT(norm_is("\" \"", 3, ""), "quoted space is empty");
    EXPECT(norm_is("a\xc2\xa0\x01" "b\xff", 6, "a b\xEF\xBF\xBD"), "no-break space, control, invalid byte");
    EXPECT(norm_is("a\0b", 3, "a b"), "NUL is a control character");
    EXPECT(norm_is("", 0, ""), "empty");
    /* a million quotes: empty, without one recursion per pair */
    size_t n = 1000000;
    char *q = xmalloc(n + 2);
    memset(q, '"', n);
    EXPECT(norm_is(q, n, ""), "a million quotes");
    q[n / 2] = 'x';
    EXPECT(norm_is(q, n, "\"x"), "500000 quotes, x, 499999 quotes");
    free(q);
    /* against the recursive reference on random short strings */
    static const char *const PIECES[] = {"\"", "'", " ", "a", "\t", "\xc2\xa0", "\xff", "\xc3\xa9", "\n", "b c"};
    Rng r;
    rng_seed(&r, 42);
    int bad = 0;
    for (int t = 0; t < 20000; t++) {
        ByteBuf s = {0};
        int k = (int)rng_below(&r, 12);
        for (int i = 0; i < k; i++) {
            const char *pc = PIECES[rng_below(&r, sizeof PIECES / sizeof *PIECES)];
            bytebuf_put(&s, pc, strlen(pc));
        }
        if (!s.a) bytebuf_put(&s, "", 0);
        char *a = text_normalize(s.a, s.n), *b = ref_normalize(s.a, s.n);
        if (strcmp(a, b) != 0 && bad++ < 3) fprintf(stderr, "  '%s' -> '%s', reference '%s'\n", s.a, a, b);
        char *again = text_normalize(a, strlen(a));
        if (strcmp(a, again) != 0 && bad++ < 3) fprintf(stderr, "  not idempotent: '%s' -> '%s'\n", a, again);
        free(a), free(b), free(again);
        bytebuf_free(&s);
    }
    EXPECT(bad == 0, "%d differences from the reference", bad);
}

static void test_words_and_hashes(void) {
    EXPECT(text_word_count("  one two\tthree\n") == 3 && text_word_count("") == 0, "word count");
    char s[] = "one two  three four";
    EXPECT(text_cut_words(s, 2) == 1 && strcmp(s, "one two") == 0, "cut: '%s'", s);
    char t[] = "one two";
    EXPECT(text_cut_words(t, 5) == 0 && strcmp(t, "one two") == 0, "no cut");
    /* FNV-1a test vectors (Fowler, Noll, Vo) */
    EXPECT(text_fnv1a64("", 0) == 0xcbf29ce484222325ULL && text_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL, "fnv64");
    EXPECT(text_fnv1a32("") == 0x811c9dc5u && text_fnv1a32("a") == 0xe40c292cu, "fnv32");
}

int main(void) {
    test_normalize();
    test_words_and_hashes();
    return test_summary();
}
