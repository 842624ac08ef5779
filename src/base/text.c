/* text -- small text helpers shared by the layers above; see
 * include/base/text.h. */
#include "base/text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static int utf8_len(const unsigned char *p, size_t left) {
    unsigned c = p[0];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || (size_t)n > left) return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int i = 1; i < n; i++) cp = (cp << 6) | (p[i] & 0x3F);
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

char *text_normalize(const char *s, size_t len) {
    ByteBuf b = {0};
    const unsigned char *p = (const unsigned char *)s;
    int space = 1; /* drop leading space */
    for (size_t i = 0; i < len;) {
        int n = utf8_len(p + i, len - i);
        if (n == 0) { /* invalid byte -> U+FFFD */
            bytebuf_put(&b, "\xEF\xBF\xBD", 3);
            space = 0;
            i++;
            continue;
        }
        if (n == 1 && (p[i] < 0x20 || p[i] == 0x7F || p[i] == ' ')) {
            if (!space) bytebuf_putc(&b, ' ');
            space = 1;
            i++;
            continue;
        }
        if (n == 2 && p[i] == 0xC2 && (p[i + 1] <= 0x9F || p[i + 1] == 0xA0)) { /* C1 controls, no-break space */
            if (!space) bytebuf_putc(&b, ' ');
            space = 1;
            i += 2;
            continue;
        }
        bytebuf_put(&b, p + i, (size_t)n);
        space = 0;
        i += (size_t)n;
    }
    while (b.n > 0 && b.a[b.n - 1] == ' ') b.a[--b.n] = 0;
    if (!b.a) bytebuf_put(&b, "", 0);
    /* wrapping ASCII quotes, repeatedly; what they wrap is normalised already
     * but for one space at either end.  A loop, not a recursion per pair: a
     * line of a million quotes overflowed the stack. */
    size_t a = 0, z = b.n;
    while (z - a >= 2 && (b.a[a] == '"' || b.a[a] == '\'') && b.a[z - 1] == b.a[a]) {
        a++, z--;
        if (a < z && b.a[a] == ' ') a++;
        if (a < z && b.a[z - 1] == ' ') z--;
    }
    memmove(b.a, b.a + a, z - a);
    b.a[z - a] = 0;
    return b.a;
}

int text_word_count(const char *s) {
    int n = 0, in = 0;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) in = 0;
        else if (!in) in = 1, n++;
    }
    return n;
}

int text_cut_words(char *s, int max) {
    int n = 0;
    for (char *p = s; *p;) {
        while (isspace((unsigned char)*p)) p++;
        if (!*p) break;
        if (n == max) {
            while (p > s && isspace((unsigned char)p[-1])) p--;
            *p = 0;
            return 1;
        }
        n++;
        while (*p && !isspace((unsigned char)*p)) p++;
    }
    return 0;
}

uint64_t text_fnv1a64(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint32_t text_fnv1a32(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}
