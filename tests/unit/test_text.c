/* test_text -- base/text.h: text_normalize (invalid UTF-8 bytes -> U+FFFD
 * each, control characters (C0, DEL and C1), no-break spaces and runs of
 * white space -> one space, trimming, wrapping quotes removed repeatedly,
 * valid characters kept), and on random byte strings its output is valid
 * UTF-8 without controls, double or edge spaces, and normalising twice
 * changes nothing, and it equals a naive reference (normalise, then strip
 * one pair of wrapping quotes and normalise again, recursively); a line of a
 * million quotes (the recursive version overflowed the stack: found by
 * tests/fuzz); text_word_count and text_cut_words; FNV-1a known values. */
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "base/unicode.h"
#include "base/util.h"
#include "test.h"

#define FFFD "\xEF\xBF\xBD"

static int check_norm(const char *in, size_t len, const char *want) {
    char *got = text_normalize(in, len);
    int ok = got && !strcmp(got, want);
    if (!ok) fprintf(stderr, "normalize: got \"%s\" want \"%s\"\n", got ? got : "(null)", want);
    free(got);
    return ok;
}
#define NORM(in, want) EXPECT(check_norm(in, sizeof(in) - 1, want), "normalize %s", #in)

/* the normal form: valid UTF-8, no C0 or C1 control or DEL, no NBSP, single inner
 * spaces, none at the edges */
static int is_normal(const char *s) {
    size_t n = strlen(s);
    if (n && (s[0] == ' ' || s[n - 1] == ' ')) return 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = unicode_decode_utf8((const uint8_t *)s + i, n - i, &cp);
        if (cp == UNICODE_INVALID || cp < 0x20 || (cp >= 0x7F && cp <= 0xA0)) return 0;
        if (cp == ' ' && s[i + 1] == ' ') return 0;
        i += k;
    }
    return 1;
}

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
        } else if (n == 2 && c == 0xC2 && (p[i + 1] <= 0x9F || p[i + 1] == 0xA0)) {
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

/* a million quotes, and against the recursive reference on random strings */
static void test_quotes(void) {
    size_t n = 1000000;
    char *q = xmalloc(n + 2);
    memset(q, '"', n);
    EXPECT(check_norm(q, n, ""), "a million quotes");
    q[n / 2] = 'x';
    EXPECT(check_norm(q, n, "\"x"), "500000 quotes, x, 499999 quotes");
    free(q);
    static const char *const PIECES[] = {"\"", "'", " ", "a", "\t", "\xc2\xa0", "\xff", "\xc3\xa9", "\n", "b c",
                                         "\xc2\x85"};
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
        free(a), free(b);
        bytebuf_free(&s);
    }
    EXPECT(bad == 0, "%d differences from the reference", bad);
}

int main(void) {
    NORM("  hello   world  ", "hello world");
    NORM("a\tb\nc\rd\fe\vf", "a b c d e f");
    NORM("a\x01\x02\x7f  b", "a b");
    NORM("line one\r\nline two\n", "line one line two");
    NORM("a\xC2\xA0" "b", "a b");
    NORM("\xC2\xA0 a \xC2\xA0\xC2\xA0 b\xC2\xA0", "a b");
    NORM("a\xFF" "b", "a" FFFD "b");
    NORM("\xC0\xAF", FFFD FFFD);
    NORM("x\xED\xA0\x80y", "x" FFFD FFFD FFFD "y");
    NORM("ab\xE2\x82", "ab" FFFD FFFD);
    NORM("\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD);
    NORM("caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80", "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80");
    NORM("\"hello\"", "hello");
    NORM("'hello'", "hello");
    NORM("'\"hi there\"'", "hi there");
    NORM("  \" 'x' \"  ", "x");
    NORM("\"\"", "");
    NORM("\"", "\"");
    NORM("'", "'");
    NORM("\"a'", "\"a'");
    NORM("\"it's\"", "it's");
    NORM("\"\xC2\xA0" "a \"", "a");
    NORM("", "");
    NORM("   \t\n ", "");
    NORM("\xC2\xA0", "");
    NORM("a\xC2\x85" "b\xC2\x9F", "a b");          /* C1 controls: NEL, APC */
    NORM("\xC2\x80x \xC2\x9F\xC2\xA0 y\xC2\x90", "x y"); /* U+0080 .. U+009F, with NBSP and a space */
    NORM("\xC2\xA1" "a\xC2\xBF", "\xC2\xA1" "a\xC2\xBF"); /* U+00A1, U+00BF are not controls */
    EXPECT(check_norm("a\0b", 3, "a b"), "an embedded NUL is a control character");
    EXPECT(check_norm("abcdef", 3, "abc"), "only len bytes are read");
    /* random byte strings over an alphabet that provokes every case */
    static const char *const parts[] = {" ", "  ", "\t", "\n", "\x01", "\x7f", "\xC2\xA0", "\"", "'", "a", "bc",
                                        "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xFF", "\xC3", "\xE2\x82",
                                        "\xED\xA0\x80", "\x80", "\xC0\xAF", "\xC2\x85"};
    Rng r;
    rng_seed(&r, 2024);
    int normal = 1, idem = 1, nonnull = 1;
    for (int t = 0; t < 3000; t++) {
        char buf[256];
        size_t n = 0;
        int k = (int)rng_below(&r, 12);
        for (int i = 0; i < k; i++) {
            const char *p = parts[rng_below(&r, sizeof parts / sizeof parts[0])];
            memcpy(buf + n, p, strlen(p));
            n += strlen(p);
        }
        char *a = text_normalize(buf, n);
        nonnull &= a != NULL;
        if (!a) continue;
        if (!is_normal(a)) {
            if (normal) fprintf(stderr, "not normal: \"%s\"\n", a);
            normal = 0;
        }
        char *b = text_normalize(a, strlen(a));
        if (strcmp(a, b)) {
            if (idem) fprintf(stderr, "not idempotent: \"%s\" -> \"%s\"\n", a, b);
            idem = 0;
        }
        free(a), free(b);
    }
    EXPECT(nonnull && normal, "random inputs normalise to valid, trimmed, single-spaced UTF-8");
    EXPECT(idem, "normalising twice changes something");
    test_quotes();

    /* word counts: runs of non-space characters (C locale) */
    EXPECT(text_word_count("") == 0 && text_word_count("   \t\n") == 0, "no words");
    EXPECT(text_word_count("a") == 1 && text_word_count(" a  b\tc\nd ") == 4, "ASCII words");
    EXPECT(text_word_count("caf\xC3\xA9 \xC3\xBC") == 2, "UTF-8 words");
    EXPECT(text_word_count("a\xC2\xA0" "b") == 1, "NBSP is not C-locale white space");
    EXPECT(text_word_count("a,b; c.") == 2, "punctuation is part of words");

    char s1[] = "one two three four";
    EXPECT(text_cut_words(s1, 2) == 1 && !strcmp(s1, "one two"), "cut to 2: \"%s\"", s1);
    char s2[] = "one  two \t three  ";
    EXPECT(text_cut_words(s2, 2) == 1 && !strcmp(s2, "one  two"), "cut drops the white space before: \"%s\"", s2);
    char s3[] = "one two  ";
    EXPECT(text_cut_words(s3, 2) == 0 && !strcmp(s3, "one two  "), "nothing to cut: \"%s\"", s3);
    char s4[] = "one two";
    EXPECT(text_cut_words(s4, 5) == 0 && !strcmp(s4, "one two"), "fewer words than max");
    char s5[] = "  a b";
    EXPECT(text_cut_words(s5, 1) == 1 && !strcmp(s5, "  a"), "leading space kept: \"%s\"", s5);
    char s6[] = "a b";
    EXPECT(text_cut_words(s6, 0) == 1 && !strcmp(s6, ""), "max 0: \"%s\"", s6);
    char s7[] = "";
    EXPECT(text_cut_words(s7, 0) == 0, "empty string");
    char s8[] = "x y z";
    text_cut_words(s8, 2);
    EXPECT(text_word_count(s8) == 2, "cut then count");

    /* FNV-1a (values from the reference definition, computed in Python) */
    EXPECT(text_fnv1a64("", 0) == 0xcbf29ce484222325ULL, "fnv64 of nothing is the offset basis");
    EXPECT(text_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL, "fnv64 a");
    EXPECT(text_fnv1a64("foobar", 6) == 0x85944171f73967e8ULL, "fnv64 foobar");
    EXPECT(text_fnv1a64("h\xC3\xA9llo", 6) == 0xa35ff71f960240e0ULL, "fnv64 of UTF-8 bytes (unsigned)");
    EXPECT(text_fnv1a64("a\0b", 3) != text_fnv1a64("a", 1), "fnv64 reads n bytes, NULs included");
    EXPECT(text_fnv1a32("") == 0x811c9dc5u && text_fnv1a32("a") == 0xe40c292cu &&
               text_fnv1a32("foobar") == 0xbf9cf968u && text_fnv1a32("h\xC3\xA9llo") == 0x4aa48540u,
           "fnv32 values");
    return test_summary();
}
