#!/usr/bin/python3
"""Writes N deterministic (prompt, target) pairs as JSONL for the tests.

Prompts are WordNet example sentences (Debian's wordnet-base); the target
is a fixed, learnable rewrite of the prompt (words in reverse order plus a
suffix), so a model can drive the loss well below the unigram level.
Used by the tests and by `make demo`.
Usage: tools/make_pairs.py N OUT.jsonl
"""
import json
import re
import sys


def sentences():
    seen = set()
    for part in ("verb", "noun", "adj", "adv"):
        with open("/usr/share/wordnet/data." + part, encoding="utf-8", errors="replace") as f:
            for line in f:
                for s in re.findall(r'"([^"]{12,90})"', line):
                    s = s.strip()
                    if s and s not in seen:
                        seen.add(s)
                        yield s


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    with open(out, "w", encoding="utf-8") as f:
        for i, s in enumerate(sentences()):
            if i >= n:
                break
            words = s.split()
            f.write(json.dumps({"prompt": s, "target": " ".join(reversed(words)) + ", ha!"}) + "\n")


if __name__ == "__main__":
    main()
