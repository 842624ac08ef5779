#!/usr/bin/python3
"""check_functions.py -- fails when a function in src/ is longer than the limit.

A function is counted from the line of its name to its closing brace at
column 0 (the project's formatting).  Usage: tools/check_functions.py [MAX]
(default 150).  Prints one line per long function, then "functions: ok" or
exits 1; with --list, prints every function over 100 lines.
"""
import glob
import os
import re
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
args = [a for a in sys.argv[1:] if not a.startswith("--")]
limit = int(args[0]) if args else 150
listing = "--list" in sys.argv
head = re.compile(r"^(?:static\s+|inline\s+|const\s+|unsigned\s+|struct\s+|enum\s+)*[A-Za-z_][\w\s\*]*?\b(\w+)\s*\(")
bad = 0
for path in sorted(glob.glob("src/**/*.c", recursive=True)):
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    depth, start, name, cand = 0, None, None, None
    for i, line in enumerate(lines):
        code = re.sub(r'"(\\.|[^"\\])*"', '""', line)
        code = re.sub(r"'(\\.|[^'\\])*'", "''", code)
        code = re.sub(r"//.*", "", code)
        if depth == 0:
            m = head.match(line)
            if m and not line.startswith(("typedef", "#")) and not line.rstrip().endswith(";"):
                cand = (m.group(1), i)
        opens, closes = code.count("{"), code.count("}")
        if depth == 0 and opens and cand and i - cand[1] < 8:
            start, name = cand[1], cand[0]
        depth += opens - closes
        if depth == 0 and start is not None and closes:
            n = i - start + 1
            if n > limit or (listing and n > 100):
                print(f"{path}:{start + 1}: {name} is {n} lines" + (f" (limit {limit})" if n > limit else ""))
                bad += n > limit
            start, cand = None, None
if bad:
    sys.exit(1)
print("functions: ok")
