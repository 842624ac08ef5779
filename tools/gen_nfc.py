#!/usr/bin/python3
"""Generates src/base/nfc_data.c: the Unicode tables of canonical composition
(NFC, UAX #15) that src/base/nfc.c uses, from Python's unicodedata:

  - canonical combining classes (ccc != 0) as ranges;
  - full canonical decompositions (recursive, canonically ordered; Hangul
    syllables are left to the algorithm);
  - primary composites: (first, second) -> composite for every character
    whose one-level canonical decomposition has two characters and that is
    not excluded from composition (Full_Composition_Exclusion: found as the
    characters that NFC does not keep, since unicodedata has no such list);
  - the "may change under NFC" set for the quick check: characters that NFC
    changes on their own (NFC_Quick_Check=No), the second characters of the
    composition pairs and Hangul vowel/trailing jamo (NFC_Quick_Check=Maybe),
    and every character with ccc != 0 (may be reordered).

The tables must be the Unicode version of src/base/unicode.c (the \\p{L},
\\p{N}, \\s classes from tools/gen_unicode.py): the script stops if this
Python's unicodedata is another version.  Before writing, it checks an NFC
written in Python over the tables against unicodedata.normalize on every
code point, on its NFD and on shuffled combining sequences.

Usage (from the repository root):  /usr/bin/python3 tools/gen_nfc.py [OUT]
OUT defaults to src/base/nfc_data.c.
"""
import random
import re
import sys
import unicodedata

OUT = sys.argv[1] if len(sys.argv) > 1 else "src/base/nfc_data.c"
UNICODE_C = "src/base/unicode.c"
MAX_CP = 0x10FFFF
S_BASE, L_BASE, V_BASE, T_BASE = 0xAC00, 0x1100, 0x1161, 0x11A7
L_COUNT, V_COUNT, T_COUNT = 19, 21, 28
N_COUNT = V_COUNT * T_COUNT
S_COUNT = L_COUNT * N_COUNT


def is_assigned_scalar(cp):
    return not 0xD800 <= cp <= 0xDFFF


def canonical_mapping(cp):
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith("<"):
        return None
    return [int(x, 16) for x in d.split()]


def build():
    ccc = {}
    decomp = {}
    pairs = {}
    changes = set()
    for cp in range(MAX_CP + 1):
        if not is_assigned_scalar(cp):
            continue
        c = chr(cp)
        k = unicodedata.combining(c)
        if k:
            ccc[cp] = k
        if S_BASE <= cp < S_BASE + S_COUNT:
            continue
        m = canonical_mapping(cp)
        if m is None:
            continue
        decomp[cp] = [ord(x) for x in unicodedata.normalize("NFD", c)]
        if unicodedata.normalize("NFC", c) != c:
            changes.add(cp)
        elif len(m) == 2:
            pairs[(m[0], m[1])] = cp
    maybe = set(ccc) | changes | {b for (_, b) in pairs}
    maybe |= set(range(V_BASE, V_BASE + V_COUNT)) | set(range(T_BASE + 1, T_BASE + T_COUNT))
    return ccc, decomp, pairs, maybe


def nfc_reference(s, ccc, decomp, pairs):
    """NFC over the tables, as src/base/nfc.c does it."""
    d = []
    for ch in s:
        cp = ord(ch)
        if S_BASE <= cp < S_BASE + S_COUNT:
            i = cp - S_BASE
            d += [L_BASE + i // N_COUNT, V_BASE + (i % N_COUNT) // T_COUNT]
            if i % T_COUNT:
                d.append(T_BASE + i % T_COUNT)
        else:
            d += decomp.get(cp, [cp])
    i = 0
    while i < len(d):  # canonical ordering: stable sort of each non-starter run
        if ccc.get(d[i], 0) == 0:
            i += 1
            continue
        j = i
        while j < len(d) and ccc.get(d[j], 0) != 0:
            j += 1
        d[i:j] = sorted(d[i:j], key=lambda x: ccc[x])
        i = j
    out = []
    starter = -1
    for cp in d:
        k = ccc.get(cp, 0)
        if starter >= 0 and (len(out) - 1 == starter or ccc.get(out[-1], 0) < k):
            a = out[starter]
            comp = pairs.get((a, cp))
            if comp is None and L_BASE <= a < L_BASE + L_COUNT and V_BASE <= cp < V_BASE + V_COUNT:
                comp = S_BASE + ((a - L_BASE) * V_COUNT + cp - V_BASE) * T_COUNT
            if (comp is None and S_BASE <= a < S_BASE + S_COUNT and (a - S_BASE) % T_COUNT == 0
                    and T_BASE < cp < T_BASE + T_COUNT):
                comp = a + cp - T_BASE
            if comp is not None:
                out[starter] = comp
                continue
        if k == 0:
            starter = len(out)
        out.append(cp)
    return "".join(chr(x) for x in out)


def self_check(ccc, decomp, pairs, maybe):
    rng = random.Random(1)
    marks = sorted(ccc)
    starters = [cp for cp in range(0x20, 0x3000) if cp not in ccc and is_assigned_scalar(cp)]
    cases = 0
    for cp in range(MAX_CP + 1):
        if not is_assigned_scalar(cp):
            continue
        for s in (chr(cp), unicodedata.normalize("NFD", chr(cp))):
            want = unicodedata.normalize("NFC", s)
            if nfc_reference(s, ccc, decomp, pairs) != want:
                sys.exit("gen_nfc.py: self-check failed on %r" % s)
            if want != s and not any(ord(ch) in maybe for ch in s):
                sys.exit("gen_nfc.py: quick check would miss %r" % s)
            cases += 1
    for _ in range(200000):
        s = "".join(chr(rng.choice(starters)) if rng.random() < 0.4 else chr(rng.choice(marks))
                    for _ in range(rng.randint(1, 6)))
        if nfc_reference(s, ccc, decomp, pairs) != unicodedata.normalize("NFC", s):
            sys.exit("gen_nfc.py: self-check failed on %r" % s)
        cases += 1
    return cases


def ranges_with_value(d):
    out = []
    for cp in sorted(d):
        if out and out[-1][1] == cp - 1 and out[-1][2] == d[cp]:
            out[-1][1] = cp
        else:
            out.append([cp, cp, d[cp]])
    return out


def rows(items, per_row):
    lines = []
    for i in range(0, len(items), per_row):
        lines.append("    " + " ".join(items[i:i + per_row]))
    return "\n".join(lines)


def main():
    with open(UNICODE_C) as f:
        m = re.search(r'unicode_version\[\] = "([0-9.]+)"', f.read())
    if not m or m.group(1) != unicodedata.unidata_version:
        sys.exit("gen_nfc.py: %s is Unicode %s but this Python's unicodedata is %s: regenerate "
                 "both with the same Python (tools/gen_unicode.py)"
                 % (UNICODE_C, m.group(1) if m else "?", unicodedata.unidata_version))
    ccc, decomp, pairs, maybe = build()
    cases = self_check(ccc, decomp, pairs, maybe)
    # the lookups in the template start with these shortcuts
    if min(ccc) < 0x300 or min(maybe) < 0x300 or min(decomp) < 0xC0:
        sys.exit("gen_nfc.py: a table starts lower than the C shortcuts assume")

    ccc_rows = ["{0x%04X, 0x%04X, %d}," % tuple(r) for r in ranges_with_value(ccc)]
    pool, dec_rows = [], []
    for cp in sorted(decomp):
        seq = decomp[cp]
        dec_rows.append("{0x%05X, %d, %d}," % (cp, len(pool), len(seq)))
        pool += seq
    if len(pool) > 0xFFFF or max(len(v) for v in decomp.values()) > 0xFF:
        sys.exit("gen_nfc.py: the decomposition pool outgrew its uint16/uint8 index")
    pool_rows = ["0x%04X," % x for x in pool]
    comp_rows = ["{0x%04X, 0x%04X, 0x%05X}," % (a, b, c) for (a, b), c in sorted(pairs.items())]
    maybe_rows = ["{0x%04X, 0x%04X}," % (r[0], r[1])
                  for r in ranges_with_value({cp: 1 for cp in maybe})]

    src = TEMPLATE.format(
        version=unicodedata.unidata_version,
        n_ccc=len(ccc_rows), ccc=rows(ccc_rows, 4),
        n_dec=len(dec_rows), dec=rows(dec_rows, 4),
        n_pool=len(pool_rows), pool=rows(pool_rows, 10),
        n_comp=len(comp_rows), comp=rows(comp_rows, 3),
        n_maybe=len(maybe_rows), maybe=rows(maybe_rows, 4))
    with open(OUT, "w") as f:
        f.write(src)
    print("%s: Unicode %s, %d ccc ranges, %d decompositions, %d composition pairs, %d quick-check "
          "ranges; self-check on %d strings passed"
          % (OUT, unicodedata.unidata_version, len(ccc_rows), len(dec_rows), len(comp_rows),
             len(maybe_rows), cases))


TEMPLATE = """\
/* nfc_data -- the tables of include/base/nfc.h.  GENERATED by tools/gen_nfc.py
 * from Python's unicodedata (Unicode {version}, the version of unicode.c); do
 * not edit, rerun the script.  All tables are sorted for binary search. */
#include "base/nfc.h"

const char nfc_unicode_version[] = "{version}";

/* canonical combining class of the code points with ccc != 0 ({n_ccc} ranges) */
static const struct {{
    uint32_t first, last;
    uint8_t ccc;
}} ccc_ranges[] = {{
{ccc}
}};

/* full canonical decomposition of cp: dec_pool[start .. start + len) ({n_dec}) */
static const struct {{
    uint32_t cp;
    uint16_t start;
    uint8_t len;
}} dec_index[] = {{
{dec}
}};

static const uint32_t dec_pool[{n_pool}] = {{
{pool}
}};

/* primary composites: (first, second) -> composite ({n_comp}) */
static const struct {{
    uint32_t first, second, composite;
}} comp_pairs[] = {{
{comp}
}};

/* code points that NFC may change or combine ({n_maybe} ranges) */
static const uint32_t maybe_ranges[][2] = {{
{maybe}
}};

#define N_OF(t) (sizeof(t) / sizeof((t)[0]))

int nfc_ccc(uint32_t cp) {{
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = N_OF(ccc_ranges);
    while (lo < hi) {{
        size_t mid = lo + (hi - lo) / 2;
        if (cp < ccc_ranges[mid].first)
            hi = mid;
        else if (cp > ccc_ranges[mid].last)
            lo = mid + 1;
        else
            return ccc_ranges[mid].ccc;
    }}
    return 0;
}}

const uint32_t *nfc_decomposition(uint32_t cp, size_t *len) {{
    if (cp < 0xC0) return NULL;
    size_t lo = 0, hi = N_OF(dec_index);
    while (lo < hi) {{
        size_t mid = lo + (hi - lo) / 2;
        if (cp < dec_index[mid].cp)
            hi = mid;
        else if (cp > dec_index[mid].cp)
            lo = mid + 1;
        else {{
            *len = dec_index[mid].len;
            return dec_pool + dec_index[mid].start;
        }}
    }}
    return NULL;
}}

uint32_t nfc_compose_pair(uint32_t first, uint32_t second) {{
    size_t lo = 0, hi = N_OF(comp_pairs);
    while (lo < hi) {{
        size_t mid = lo + (hi - lo) / 2;
        uint32_t f = comp_pairs[mid].first, s = comp_pairs[mid].second;
        if (first < f || (first == f && second < s))
            hi = mid;
        else if (first > f || second > s)
            lo = mid + 1;
        else
            return comp_pairs[mid].composite;
    }}
    return 0;
}}

int nfc_maybe_changes(uint32_t cp) {{
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = N_OF(maybe_ranges);
    while (lo < hi) {{
        size_t mid = lo + (hi - lo) / 2;
        if (cp < maybe_ranges[mid][0])
            hi = mid;
        else if (cp > maybe_ranges[mid][1])
            lo = mid + 1;
        else
            return 1;
    }}
    return 0;
}}
"""

if __name__ == "__main__":
    main()
