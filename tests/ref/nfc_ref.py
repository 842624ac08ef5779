#!/usr/bin/python3
"""Independent NFC reference for tests/unit/test_nfc.c: Python's unicodedata.

nfc_ref.py tables OUT      writes, for every code point whose canonical
                           combining class is not 0 or that has a canonical
                           decomposition: "C cp ccc" and "D cp d1 d2 ..." (full
                           canonical decomposition, Hangul syllables left out),
                           and "P a b c" for every primary composite c of (a, b).
                           First line: "V <unicode version>".
nfc_ref.py strings IN OUT  IN: one string per line, code points as hex
                           separated by spaces; OUT: NFC of each, same form.
"""
import sys
import unicodedata as ud


def tables(out):
    with open(out, "w") as f:
        f.write("V %s\n" % ud.unidata_version)
        for cp in range(0x110000):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            ch = chr(cp)
            c = ud.combining(ch)
            if c:
                f.write("C %x %d\n" % (cp, c))
            if 0xAC00 <= cp <= 0xD7A3:
                continue
            d = ud.normalize("NFD", ch)
            if d != ch:
                f.write("D %x %s\n" % (cp, " ".join("%x" % ord(x) for x in d)))
            m = ud.decomposition(ch)
            if m and not m.startswith("<"):
                parts = [int(x, 16) for x in m.split()]
                if len(parts) == 2 and ud.normalize("NFC", chr(parts[0]) + chr(parts[1])) == ch:
                    f.write("P %x %x %x\n" % (parts[0], parts[1], cp))


def strings(inp, out):
    with open(inp) as f, open(out, "w") as g:
        for line in f:
            s = "".join(chr(int(x, 16)) for x in line.split())
            g.write(" ".join("%x" % ord(x) for x in ud.normalize("NFC", s)) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "tables":
        tables(sys.argv[2])
    else:
        strings(sys.argv[2], sys.argv[3])
