/* nfc -- see include/base/nfc.h.  The algorithm of UAX #15 over the tables
 * of nfc_data.c: decode UTF-8, decompose fully (table or Hangul arithmetic),
 * sort each run of non-starters by combining class (stable), compose each
 * character with the last starter unless blocked, encode UTF-8.  Hangul
 * constants and formulas: The Unicode Standard, section 3.12. */
#include "base/nfc.h"

#include <stdlib.h>
#include <string.h>

#include "base/unicode.h"

enum {
    S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7,
    L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT,
    S_COUNT = L_COUNT * N_COUNT,
};

/* A byte that is not well-formed UTF-8 is kept as BAD_BYTE | byte: above
 * U+10FFFF, so it has class 0, no decomposition and no composition. */
#define BAD_BYTE 0x80000000u

typedef struct {
    uint32_t *a;
    size_t n, cap;
} CpVec;

static void cp_push(CpVec *v, uint32_t cp) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 64;
        v->a = xrealloc(v->a, v->cap * sizeof *v->a);
    }
    v->a[v->n++] = cp;
}

static int ccc_of(uint32_t cp) { return cp > 0x10FFFF ? 0 : nfc_ccc(cp); }

int nfc_quick_check(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        i += unicode_decode_utf8(s + i, n - i, &cp);
        if (cp != UNICODE_INVALID && nfc_maybe_changes(cp)) return 0;
    }
    return 1;
}

/* Decoded, fully decomposed code points of s[0..n). */
static void decompose(const uint8_t *s, size_t n, CpVec *d) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t w = unicode_decode_utf8(s + i, n - i, &cp);
        if (cp == UNICODE_INVALID) cp = BAD_BYTE | s[i];
        i += w;
        if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
            uint32_t k = cp - S_BASE;
            cp_push(d, L_BASE + k / N_COUNT);
            cp_push(d, V_BASE + (k % N_COUNT) / T_COUNT);
            if (k % T_COUNT) cp_push(d, T_BASE + k % T_COUNT);
            continue;
        }
        size_t len = 0;
        const uint32_t *seq = cp <= 0x10FFFF ? nfc_decomposition(cp, &len) : NULL;
        if (!seq) {
            cp_push(d, cp);
            continue;
        }
        for (size_t k = 0; k < len; k++) cp_push(d, seq[k]);
    }
}

/* Canonical ordering: a stable insertion sort of each run of non-starters
 * by combining class (runs are short). */
static void canonical_order(uint32_t *a, size_t n) {
    for (size_t i = 1; i < n; i++) {
        int c = ccc_of(a[i]);
        if (c == 0) continue;
        uint32_t x = a[i];
        size_t j = i;
        while (j > 0 && ccc_of(a[j - 1]) > c) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/* The composite of (first, second): table, then Hangul LV and LVT; 0 if none. */
static uint32_t compose(uint32_t first, uint32_t second) {
    if (first > 0x10FFFF || second > 0x10FFFF) return 0;
    if (first >= L_BASE && first < L_BASE + L_COUNT && second >= V_BASE &&
        second < V_BASE + V_COUNT)
        return S_BASE + ((first - L_BASE) * V_COUNT + (second - V_BASE)) * T_COUNT;
    if (first >= S_BASE && first < S_BASE + S_COUNT && (first - S_BASE) % T_COUNT == 0 &&
        second > T_BASE && second < T_BASE + T_COUNT)
        return first + (second - T_BASE);
    return nfc_compose_pair(first, second);
}

/* Canonical composition in place; returns the new length.  A character C
 * joins the last starter S unless blocked: some character between them has
 * class 0 or a class >= C's. */
static size_t canonical_compose(uint32_t *a, size_t n) {
    size_t w = 0;
    long starter = -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = a[i];
        int cc = ccc_of(c);
        if (starter >= 0 && ((long)w - 1 == starter || ccc_of(a[w - 1]) < cc)) {
            uint32_t comp = compose(a[starter], c);
            if (comp) {
                a[starter] = comp;
                continue;
            }
        }
        if (cc == 0) starter = (long)w;
        a[w++] = c;
    }
    return w;
}

static void put_utf8(ByteBuf *out, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp & BAD_BYTE) {
        b[0] = (char)(cp & 0xFF);
        n = 1;
    } else if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    bytebuf_put(out, b, n);
}

void nfc_append(const uint8_t *s, size_t n, ByteBuf *out) {
    if (nfc_quick_check(s, n)) {
        bytebuf_put(out, s, n);
        return;
    }
    CpVec d = {0};
    decompose(s, n, &d);
    canonical_order(d.a, d.n);
    size_t m = canonical_compose(d.a, d.n);
    for (size_t i = 0; i < m; i++) put_utf8(out, d.a[i]);
    free(d.a);
}
