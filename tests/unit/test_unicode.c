/* test_unicode -- base/unicode.h: the classes of sample code points (ASCII,
 * the header's White_Space list, letters and numbers of several categories,
 * Unicode 14 vs 15 assignments), the whole code space against the header's
 * White_Space list and against digests of Python 3.11's unicodedata
 * (Unicode 14.0.0) letters and numbers, and the UTF-8 decoder: valid 1-4 byte
 * forms, overlongs, surrogates, values above U+10FFFF, truncation, stray
 * continuation bytes, resynchronisation, and all 2- and 3-byte sequences
 * against a straightforward reference decoder. */
#include <stdlib.h>
#include <string.h>

#include "base/unicode.h"
#include "test.h"

/* RFC 3629 by the book: decode the generic form, then reject what is not
 * well-formed.  Returns bytes used and *cp (UNICODE_INVALID: 1 byte). */
static size_t ref_decode(const uint8_t *s, size_t len, uint32_t *cp) {
    uint8_t b = s[0];
    size_t need = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (need == 0 || need > len) goto bad;
    uint32_t v = need == 1 ? b : need == 2 ? (b & 0x1Fu) : need == 3 ? (b & 0x0Fu) : (b & 0x07u);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) goto bad;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[need] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) goto bad;
    *cp = v;
    return need;
bad:
    *cp = UNICODE_INVALID;
    return 1;
}

static uint64_t fnv_cp(uint64_t h, uint32_t cp) {
    for (int i = 0; i < 4; i++) {
        h ^= (cp >> (8 * i)) & 0xFF;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int is_header_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int main(void) {
    EXPECT(!strcmp(unicode_version, "14.0.0"), "tables are Unicode %s", unicode_version);
    /* samples: cp, letter, number, space (Python 3.11 unicodedata categories) */
    static const struct {
        uint32_t cp;
        int l, n, s;
    } cases[] = {
        {'A', 1, 0, 0},     {'z', 1, 0, 0},     {'0', 0, 1, 0},     {'9', 0, 1, 0},     {' ', 0, 0, 1},
        {'\t', 0, 0, 1},    {'\n', 0, 0, 1},    {0x0B, 0, 0, 1},    {0x0C, 0, 0, 1},    {'\r', 0, 0, 1},
        {0x1C, 0, 0, 0},    {0x1F, 0, 0, 0},    {0x85, 0, 0, 1},    {0xA0, 0, 0, 1},    {0x1680, 0, 0, 1},
        {0x2000, 0, 0, 1},  {0x200A, 0, 0, 1},  {0x200B, 0, 0, 0},  {0x2028, 0, 0, 1},  {0x2029, 0, 0, 1},
        {0x202F, 0, 0, 1},  {0x205F, 0, 0, 1},  {0x3000, 0, 0, 1},  {0xFEFF, 0, 0, 0},  {0xE9, 1, 0, 0},
        {0x3B1, 1, 0, 0},   {0x4E2D, 1, 0, 0},  {0x1F600, 0, 0, 0}, {0x10400, 1, 0, 0}, {0x661, 0, 1, 0},
        {0x2160, 0, 1, 0},  {0xBD, 0, 1, 0},    {0xB2, 0, 1, 0},    {0x870, 1, 0, 0},   {0x11F04, 0, 0, 0},
        {0x31350, 0, 0, 0}, {0x10FFFF, 0, 0, 0}, {'_', 0, 0, 0},    {'-', 0, 0, 0},     {0xAA, 1, 0, 0},
        {0xBA, 1, 0, 0},    {0x2C6, 1, 0, 0},   {0x16EE, 0, 1, 0},  {0x3007, 0, 1, 0},  {0x1D7CE, 0, 1, 0},
        {0xFF10, 0, 1, 0},  {0xAD, 0, 0, 0},    {0x300, 0, 0, 0},   {0x1E900, 1, 0, 0}, {0x7F, 0, 0, 0},
        {0, 0, 0, 0},       {0xD800, 0, 0, 0},  {0x110000, 0, 0, 0}, {UNICODE_INVALID, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t c = cases[i].cp;
        EXPECT(unicode_is_letter(c) == cases[i].l && unicode_is_number(c) == cases[i].n &&
                   unicode_is_space(c) == cases[i].s,
               "U+%04X: letter %d number %d space %d, want %d %d %d", c, unicode_is_letter(c), unicode_is_number(c),
               unicode_is_space(c), cases[i].l, cases[i].n, cases[i].s);
    }
    /* the whole code space */
    uint64_t hl = 0xcbf29ce484222325ULL, hn = hl;
    long nl = 0, nn = 0, space_bad = 0, overlap = 0, nonbool = 0;
    for (uint32_t c = 0; c < 0x110000; c++) {
        int l = unicode_is_letter(c), n = unicode_is_number(c), s = unicode_is_space(c);
        nonbool += (l | n | s) > 1;
        if (l) hl = fnv_cp(hl, c), nl++;
        if (n) hn = fnv_cp(hn, c), nn++;
        space_bad += s != is_header_space(c);
        overlap += l + n + s > 1;
    }
    EXPECT(nl == 131756 && hl == 0x86994fc311ef485fULL, "letters: %ld, digest %llx", nl, (unsigned long long)hl);
    EXPECT(nn == 1791 && hn == 0xafe3d2a490a13d1fULL, "numbers: %ld, digest %llx", nn, (unsigned long long)hn);
    EXPECT(space_bad == 0, "%ld code points differ from the header's White_Space list", space_bad);
    EXPECT(overlap == 0 && nonbool == 0, "classes overlap (%ld) or are not 0/1 (%ld)", overlap, nonbool);
    int above = 0;
    for (uint32_t c = 0x110000; c < 0x120000; c++) above += unicode_is_letter(c) + unicode_is_number(c) + unicode_is_space(c);
    above += unicode_is_letter(0xFFFFFFFEu) + unicode_is_number(0x7FFFFFFFu);
    EXPECT(above == 0, "values above U+10FFFF are in no class");

    /* the decoder */
    static const struct {
        const char *bytes;
        size_t len, used;
        uint32_t cp;
        const char *what;
    } dec[] = {
        {"A", 1, 1, 'A', "ASCII"},
        {"\0", 1, 1, 0, "NUL"},
        {"\x7F", 1, 1, 0x7F, "DEL"},
        {"\xC2\x80", 2, 2, 0x80, "smallest 2-byte"},
        {"\xDF\xBF", 2, 2, 0x7FF, "largest 2-byte"},
        {"\xE0\xA0\x80", 3, 3, 0x800, "smallest 3-byte"},
        {"\xED\x9F\xBF", 3, 3, 0xD7FF, "below the surrogates"},
        {"\xEE\x80\x80", 3, 3, 0xE000, "above the surrogates"},
        {"\xEF\xBF\xBF", 3, 3, 0xFFFF, "largest 3-byte"},
        {"\xF0\x90\x80\x80", 4, 4, 0x10000, "smallest 4-byte"},
        {"\xF4\x8F\xBF\xBF", 4, 4, 0x10FFFF, "U+10FFFF"},
        {"\xF0\x9F\x98\x80", 4, 4, 0x1F600, "emoji"},
        {"\xC0\x80", 2, 1, UNICODE_INVALID, "overlong NUL"},
        {"\xC1\xBF", 2, 1, UNICODE_INVALID, "overlong 2-byte"},
        {"\xE0\x80\x80", 3, 1, UNICODE_INVALID, "overlong 3-byte"},
        {"\xE0\x9F\xBF", 3, 1, UNICODE_INVALID, "overlong U+07FF"},
        {"\xF0\x80\x80\x80", 4, 1, UNICODE_INVALID, "overlong 4-byte"},
        {"\xF0\x8F\xBF\xBF", 4, 1, UNICODE_INVALID, "overlong U+FFFF"},
        {"\xED\xA0\x80", 3, 1, UNICODE_INVALID, "surrogate D800"},
        {"\xED\xBF\xBF", 3, 1, UNICODE_INVALID, "surrogate DFFF"},
        {"\xF4\x90\x80\x80", 4, 1, UNICODE_INVALID, "U+110000"},
        {"\xF5\x80\x80\x80", 4, 1, UNICODE_INVALID, "F5 lead"},
        {"\xF8\x88\x80\x80\x80", 5, 1, UNICODE_INVALID, "5-byte form"},
        {"\xFF", 1, 1, UNICODE_INVALID, "FF"},
        {"\xFE", 1, 1, UNICODE_INVALID, "FE"},
        {"\x80", 1, 1, UNICODE_INVALID, "stray continuation"},
        {"\xBF\x80", 2, 1, UNICODE_INVALID, "stray continuations"},
        {"\xE2\x82", 2, 1, UNICODE_INVALID, "truncated 3-byte (end of input)"},
        {"\xE2\x82\xAC", 2, 1, UNICODE_INVALID, "3-byte cut by len"},
        {"\xF0\x9F\x98", 3, 1, UNICODE_INVALID, "truncated 4-byte"},
        {"\xC3", 1, 1, UNICODE_INVALID, "lone lead byte"},
        {"\xE2\x82" "A", 3, 1, UNICODE_INVALID, "3-byte interrupted by ASCII"},
        {"\xC3\xC3\xA9", 3, 1, UNICODE_INVALID, "lead byte followed by a lead byte"},
    };
    for (size_t i = 0; i < sizeof dec / sizeof dec[0]; i++) {
        uint32_t cp = 12345;
        size_t used = unicode_decode_utf8((const uint8_t *)dec[i].bytes, dec[i].len, &cp);
        EXPECT(used == dec[i].used && cp == dec[i].cp, "%s: used %zu cp %X, want %zu %X", dec[i].what, used, cp,
               dec[i].used, dec[i].cp);
    }
    /* resynchronisation: every byte of a bad sequence is one character */
    const uint8_t str[] = "a\xE2\x82" "b\xED\xA0\x80\xC3\xA9\xF0\x9F\x98\x80z";
    uint32_t want[] = {'a', UNICODE_INVALID, UNICODE_INVALID, 'b', UNICODE_INVALID, UNICODE_INVALID, UNICODE_INVALID,
                       0xE9, 0x1F600, 'z'};
    size_t at = 0, k = 0, n = sizeof str - 1;
    int resync = 1;
    while (at < n && k < sizeof want / sizeof want[0]) {
        uint32_t cp;
        at += unicode_decode_utf8(str + at, n - at, &cp);
        resync &= cp == want[k++];
    }
    EXPECT(resync && at == n && k == sizeof want / sizeof want[0], "resynchronisation (%zu chars, %zu bytes)", k, at);
    /* every 1-, 2- and 3-byte sequence (and 4-byte ones with a sample of tails)
     * against the reference, including the len limit */
    long diff = 0, tried = 0;
    uint8_t b[4];
    for (int b0 = 0; b0 < 256; b0++)
        for (int b1 = 0; b1 < 256; b1++) {
            b[0] = (uint8_t)b0, b[1] = (uint8_t)b1;
            for (size_t len = 1; len <= 2; len++) {
                uint32_t c1, c2;
                size_t u1 = unicode_decode_utf8(b, len, &c1), u2 = ref_decode(b, len, &c2);
                diff += u1 != u2 || c1 != c2, tried++;
            }
            if (b0 < 0xE0) continue;
            for (int b2 = 0; b2 < 256; b2++) {
                b[2] = (uint8_t)b2;
                uint32_t c1, c2;
                size_t u1 = unicode_decode_utf8(b, 3, &c1), u2 = ref_decode(b, 3, &c2);
                diff += u1 != u2 || c1 != c2, tried++;
                if (b0 >= 0xF0 && b0 <= 0xF7) {
                    static const uint8_t tails[] = {0x00, 0x41, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
                    for (size_t t = 0; t < sizeof tails; t++) {
                        b[3] = tails[t];
                        u1 = unicode_decode_utf8(b, 4, &c1), u2 = ref_decode(b, 4, &c2);
                        diff += u1 != u2 || c1 != c2, tried++;
                    }
                }
            }
        }
    EXPECT(diff == 0, "%ld of %ld byte sequences decode differently from the reference", diff, tried);
    return test_summary();
}
