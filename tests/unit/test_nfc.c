/* test_nfc -- base/nfc.h against an independent reference, Python's
 * unicodedata (tests/ref/nfc_ref.py; the same Unicode version, checked):
 * the combining class of every code point, the full canonical decomposition
 * of every code point (Hangul syllables excepted, as the header says), every
 * primary composite pair and no composite for other pairs; nfc_append on
 * hand-picked strings (singletons, composition exclusions, blocked and
 * unblocked marks, reordering, Hangul L V T, malformed UTF-8 kept) and on
 * 20000 random strings biased to what NFC changes; nfc_quick_check never
 * says 1 for a string NFC changes, and says 1 for ASCII. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/nfc.h"
#include "base/unicode.h"
#include "base/util.h"
#include "test.h"

#define REF "/usr/bin/python3 tests/ref/nfc_ref.py"

static void put_utf8(ByteBuf *b, uint32_t c) {
    char u[4];
    int n;
    if (c < 0x80) u[0] = (char)c, n = 1;
    else if (c < 0x800) u[0] = (char)(0xC0 | c >> 6), u[1] = (char)(0x80 | (c & 63)), n = 2;
    else if (c < 0x10000)
        u[0] = (char)(0xE0 | c >> 12), u[1] = (char)(0x80 | (c >> 6 & 63)), u[2] = (char)(0x80 | (c & 63)), n = 3;
    else
        u[0] = (char)(0xF0 | c >> 18), u[1] = (char)(0x80 | (c >> 12 & 63)), u[2] = (char)(0x80 | (c >> 6 & 63)),
        u[3] = (char)(0x80 | (c & 63)), n = 4;
    bytebuf_put(b, u, (size_t)n);
}

/* NFC of the code points cp[0..n) as a NUL-terminated malloc'd UTF-8 string */
static char *nfc_of(const uint32_t *cp, int n) {
    ByteBuf in = {0}, out = {0};
    for (int i = 0; i < n; i++) put_utf8(&in, cp[i]);
    nfc_append((const uint8_t *)(in.a ? in.a : ""), in.n, &out);
    bytebuf_put(&out, "", 1);
    bytebuf_free(&in);
    return out.a;
}

static char *utf8_of(const uint32_t *cp, int n) {
    ByteBuf b = {0};
    for (int i = 0; i < n; i++) put_utf8(&b, cp[i]);
    bytebuf_put(&b, "", 1);
    return b.a;
}

static int same_nfc(const char *in, const char *want) {
    ByteBuf out = {0};
    nfc_append((const uint8_t *)in, strlen(in), &out);
    int ok = out.n == strlen(want) && !memcmp(out.a ? out.a : "", want, out.n);
    if (!ok) fprintf(stderr, "nfc(%s): got %.*s\n", in, (int)out.n, out.a ? out.a : "");
    bytebuf_free(&out);
    return ok;
}

static void test_hand(void) {
    EXPECT(same_nfc("abc", "abc"), "ASCII unchanged");
    EXPECT(same_nfc("e\xCC\x81", "\xC3\xA9"), "e + acute -> U+00E9");
    EXPECT(same_nfc("\xC3\xA9", "\xC3\xA9"), "U+00E9 stays");
    EXPECT(same_nfc("\xE2\x84\xAB", "\xC3\x85"), "ANGSTROM SIGN (singleton) -> U+00C5");
    EXPECT(same_nfc("\xE0\xA5\x98", "\xE0\xA4\x95\xE0\xA4\xBC"), "U+0958 is a composition exclusion: stays decomposed");
    /* a + dot below (220) + acute (230): ordering keeps below first; a composes with... */
    EXPECT(same_nfc("a\xCC\x81\xCC\xA3", "\xE1\xBA\xA1\xCC\x81"), "a acute dot-below -> U+1EA1 + acute (reordered)");
    EXPECT(same_nfc("a\xCC\xA3\xCC\x81", "\xE1\xBA\xA1\xCC\x81"), "a dot-below acute -> U+1EA1 + acute");
    EXPECT(same_nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81"), "Hangul L V T -> U+AC01");
    EXPECT(same_nfc("\xEA\xB0\x80\xE1\x86\xA8", "\xEA\xB0\x81"), "Hangul LV + T -> U+AC01");
    EXPECT(same_nfc("\xFF" "e\xCC\x81", "\xFF\xC3\xA9"), "a bad byte is kept, what follows still composes");
    EXPECT(same_nfc("e\xFF\xCC\x81", "e\xFF\xCC\x81"), "a bad byte between blocks the composition");
    EXPECT(same_nfc("", ""), "empty");
    EXPECT(nfc_quick_check((const uint8_t *)"plain ASCII text 123", 20) == 1, "ASCII is quick-check yes");
    EXPECT(nfc_quick_check((const uint8_t *)"e\xCC\x81", 3) == 0, "e + combining acute may change");
}

static void test_tables(const char *dir) {
    char path[512], cmd[1024];
    snprintf(path, sizeof path, "%s/tables.txt", dir);
    snprintf(cmd, sizeof cmd, REF " tables %s", path);
    int st = system(cmd);
    EXPECT(st == 0, "nfc_ref.py tables exited %d", st);
    FILE *f = fopen(path, "r");
    if (!f) return;
    unsigned char *ccc = calloc(0x110000, 1), *dec = calloc(0x110000, 1);
    char line[512];
    int bad_c = 0, bad_d = 0, bad_p = 0, nc = 0, nd = 0, np = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == 'V') {
            char v[32] = "";
            sscanf(line + 2, "%31s", v);
            EXPECT(!strcmp(v, nfc_unicode_version), "reference Unicode %s = tables' %s", v, nfc_unicode_version);
        } else if (line[0] == 'C') {
            unsigned cp, c;
            sscanf(line + 2, "%x %u", &cp, &c);
            ccc[cp] = (unsigned char)c, nc++;
            if (nfc_ccc(cp) != (int)c && bad_c++ < 5) fprintf(stderr, "ccc(%04X) = %d, want %u\n", cp, nfc_ccc(cp), c);
        } else if (line[0] == 'D') {
            unsigned cp, want[32];
            int n = 0, off = 0, used;
            sscanf(line + 2, "%x%n", &cp, &used);
            off = 2 + used;
            while (n < 32 && sscanf(line + off, "%x%n", &want[n], &used) == 1) n++, off += used;
            dec[cp] = 1, nd++;
            size_t len = 0;
            const uint32_t *d = nfc_decomposition(cp, &len);
            int ok = d && len == (size_t)n;
            for (int i = 0; ok && i < n; i++) ok = d[i] == want[i];
            if (!ok && bad_d++ < 5) fprintf(stderr, "decomposition of %04X differs (len %zu, want %d)\n", cp, len, n);
        } else if (line[0] == 'P') {
            unsigned a, b, c;
            sscanf(line + 2, "%x %x %x", &a, &b, &c);
            np++;
            if (nfc_compose_pair(a, b) != c && bad_p++ < 5)
                fprintf(stderr, "compose(%04X, %04X) = %04X, want %04X\n", a, b, nfc_compose_pair(a, b), c);
        }
    }
    fclose(f);
    int extra_c = 0, extra_d = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        if (!ccc[cp] && nfc_ccc(cp) != 0) extra_c++;
        size_t len;
        if (!dec[cp] && nfc_decomposition(cp, &len)) extra_d++;
    }
    EXPECT(nc > 800 && nd > 2000 && np > 900, "the reference lists %d classes, %d decompositions, %d pairs", nc, nd, np);
    EXPECT(bad_c == 0 && extra_c == 0, "combining classes: %d differ, %d where the reference has 0", bad_c, extra_c);
    EXPECT(bad_d == 0 && extra_d == 0, "decompositions: %d differ, %d where the reference has none", bad_d, extra_d);
    EXPECT(bad_p == 0, "primary composites: %d differ", bad_p);
    /* pairs that are not primary composites: a starter and a mark that never combine, exclusions */
    EXPECT(nfc_compose_pair('q', 0x301) == 0, "q + acute has no composite");
    EXPECT(nfc_compose_pair(0x915, 0x93C) == 0, "KA + NUKTA is excluded from composition");
    EXPECT(nfc_compose_pair('A', 0x30A) == 0xC5, "A + ring -> U+00C5 (not ANGSTROM SIGN)");
    free(ccc), free(dec);
}

/* code points that NFC likes to change, and some that it does not */
static uint32_t pick(Rng *r) {
    static const uint32_t pool[] = {'a', 'e', 'o', 'A', 'u', 'n', 'c', ' ', 0x300, 0x301, 0x302, 0x303, 0x308,
                                    0x323, 0x327, 0x328, 0x31B, 0x345, 0x3B1, 0x3B9, 0x3C9, 0x1F00, 0x0958, 0x915,
                                    0x93C, 0x2126, 0x212B, 0xC5, 0xE9, 0x1E63, 0x0F73, 0x0F71, 0x0F72, 0x0F80,
                                    0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x3099, 0x304B, 0x30AB, 0x1D15E,
                                    0x1D165, 0x1D16E, 0x0CCA, 0x0CC6, 0x0CD5, 0x05B8, 0x05B0, 0xFB2C, 0x4E00,
                                    0x1F600, 0x0335, 0x0334, 0x034F};
    uint64_t k = rng_below(r, 10);
    if (k < 7) return pool[rng_below(r, sizeof pool / sizeof pool[0])];
    if (k < 9) return 0x300 + (uint32_t)rng_below(r, 0x70); /* combining diacritics */
    uint32_t c;
    do c = 0xA0 + (uint32_t)rng_below(r, 0x2FFFF); /* anything assigned or not, no controls */
    while (c >= 0xD800 && c <= 0xDFFF);
    return c;
}

static void test_random(const char *dir) {
    enum { N = 20000, MAXLEN = 12 };
    char in[512], out[512], cmd[1280];
    snprintf(in, sizeof in, "%s/in.txt", dir);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    uint32_t (*s)[MAXLEN] = malloc(sizeof *s * N);
    int *len = malloc(sizeof(int) * N);
    Rng r;
    rng_seed(&r, 20261128);
    FILE *f = fopen(in, "w");
    for (int i = 0; i < N; i++) {
        len[i] = 1 + (int)rng_below(&r, MAXLEN);
        for (int j = 0; j < len[i]; j++) s[i][j] = pick(&r), fprintf(f, "%s%x", j ? " " : "", s[i][j]);
        fputc('\n', f);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, REF " strings %s %s", in, out);
    int st = system(cmd);
    EXPECT(st == 0, "nfc_ref.py strings exited %d", st);
    f = fopen(out, "r");
    if (!f) return;
    int bad = 0, bad_qc = 0, changed = 0, qc_yes = 0;
    char line[1024];
    for (int i = 0; i < N && fgets(line, sizeof line, f); i++) {
        uint32_t want[4 * MAXLEN];
        int n = 0, off = 0, used;
        while (n < 4 * MAXLEN && sscanf(line + off, "%x%n", &want[n], &used) == 1) n++, off += used;
        char *got = nfc_of(s[i], len[i]), *w = utf8_of(want, n), *orig = utf8_of(s[i], len[i]);
        if (strcmp(got, w) && bad++ < 5) fprintf(stderr, "string %d: NFC differs from the reference\n", i);
        int same = !strcmp(w, orig), qc = nfc_quick_check((const uint8_t *)orig, strlen(orig));
        changed += !same, qc_yes += qc;
        if (qc && !same && bad_qc++ < 5) fprintf(stderr, "string %d: quick check yes, but NFC changes it\n", i);
        free(got), free(w), free(orig);
    }
    fclose(f);
    EXPECT(bad == 0, "%d of %d random strings differ from Python's NFC", bad, N);
    EXPECT(bad_qc == 0, "quick check said yes for %d strings NFC changes", bad_qc);
    EXPECT(changed > N / 4 && qc_yes > N / 20, "the sample exercises both sides (%d changed, %d quick yes)", changed,
           qc_yes);
    free(s), free(len);
}

int main(void) {
    char *dir = test_tmpdir("nfc");
    test_hand();
    test_tables(dir);
    test_random(dir);
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}
