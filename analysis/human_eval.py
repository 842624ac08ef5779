#!/usr/bin/python3
"""Blinded human evaluation of hdistill runs, and the judges' agreement with it.

usage:
  /usr/bin/python3 analysis/human_eval.py export RUN_DIR... --out FILE.csv [--key KEY.csv]
                                          [--split eval] [--seed S] [--limit N]
  /usr/bin/python3 analysis/human_eval.py import FILE.csv --key KEY.csv RUN_DIR... [--out report.md]

export writes FILE.csv for the annotators: one row per (run, input) of the
split's evaluation (/eval/<split>/{input,student,reference}: the student's
output and the teacher's reference), columns
  id, input, A, B, funnier, a_keeps_meaning, b_keeps_meaning
with the two outputs in a random order per row and the rows shuffled over the
runs (both seeded by --seed; --limit N takes a seeded sample of N inputs per
run, the same inputs for runs of the same evaluation). The annotators fill
  funnier            A, B or tie
  a_keeps_meaning    yes or no (does A keep the meaning of the input?)
  b_keeps_meaning    yes or no
(an empty funnier leaves the row out). Nothing in FILE.csv tells which side
is the student or which run a row comes from: that goes into the un-blinding
key KEY.csv (default FILE.key.csv; id, run, run_dir, split, index,
student_side, check), to be kept away from the annotators.

import reads the filled FILE.csv and its KEY.csv, checks that they belong
together (same ids and rows, unchanged texts) and that the runs still hold the
exported outputs, and reports as Markdown (stdout, or --out), in the manner of
Table 1 of Ravi et al. (2024): per judge present in the runs (the critic and
the extra judges of eval.judges), the agreement of its verdict
(/eval/<split>/<judge>/verdict: 1 student wins, 0 tie, -1 loss; -2, no
usable verdict, is left out of the judge's figures) with the humans on humor (a tie agrees only with a tie), also on the items both call
decisive, and its position-bias and length-bias rates (the attributes of
/eval/<split>/<judge>, over the whole split); the humans' win-or-tie rate of
the student and their length-bias rate; the share of student outputs and of
teacher references that keep the input's meaning; the same per run.
Exit code 2 with a one-line message for files that do not match, bad labels
or missing columns.
"""
import argparse
import csv
import hashlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hdio  # noqa: E402

UNJUDGED = -2   # the verdict of an input the judge gave no usable answer on
BLIND_COLS = ("id", "input", "A", "B", "funnier", "a_keeps_meaning", "b_keeps_meaning")
FILL_COLS = ("id", "funnier", "a_keeps_meaning", "b_keeps_meaning")
KEY_COLS = ("id", "run", "run_dir", "split", "index", "student_side", "check")
FUNNIER = {"a": "A", "b": "B", "tie": "tie"}
YESNO = {"yes": True, "y": True, "no": False, "n": False}


def check_hash(inp, a, b):
    return hashlib.sha256(json.dumps([inp, a, b], ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def default_key_path(out):
    base = out[:-4] if out.lower().endswith(".csv") else out
    return base + ".key.csv"


def read_csv(path, what):
    """(header, [(line number, row dict)]) of a CSV file (',' ';' or tab separated, BOM tolerated)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        hdio.fail(f"{path}: no such file ({what})")
    except (OSError, UnicodeDecodeError) as e:
        hdio.fail(f"{path}: cannot read ({what}: {hdio.one_line(e)})")
    first = text.split("\n", 1)[0]
    delim = max((",", ";", "\t"), key=first.count)
    rd = csv.reader(text.splitlines(keepends=True), delimiter=delim)
    try:
        rows = list(rd)
    except csv.Error as e:
        hdio.fail(f"{path}: not a valid CSV file ({e})")
    if not rows:
        hdio.fail(f"{path}: empty file ({what})")
    header = [h.strip() for h in rows[0]]
    out = []
    line = 1
    for r in rows[1:]:
        line += 1
        if not any(c.strip() for c in r):
            continue
        if len(r) > len(header):
            hdio.fail(f"{path} row {line}: {len(r)} cells for {len(header)} columns")
        out.append((line, {h: (r[i] if i < len(r) else "") for i, h in enumerate(header)}))
    return header, out


def need_columns(path, header, cols, what):
    miss = [c for c in cols if c not in header]
    if miss:
        hdio.fail(f"{path}: missing column(s) {', '.join(miss)} (hint: {what})")


# ----------------------------------------------------------------------------- export

def cmd_export(a):
    if a.limit is not None and a.limit < 1:
        hdio.fail("--limit must be at least 1")
    key_path = a.key or default_key_path(a.out)
    if os.path.abspath(key_path) == os.path.abspath(a.out):
        hdio.fail(f"{key_path}: the key must not be the annotators' file (hint: --key OTHER.csv)")
    runs = hdio.load_runs(a.runs)
    items = []
    for r in runs:
        try:
            o = hdio.eval_outputs(r, a.split)
        except hdio.RunError as e:
            hdio.fail(str(e))
        n = len(o["input"])
        if n == 0:
            hdio.fail(f"{r.path}: /eval/{a.split} has no items")
        idx = range(n)
        if a.limit is not None and a.limit < n:
            idx = sorted(np.random.default_rng([a.seed, n]).choice(n, size=a.limit, replace=False).tolist())
        for i in idx:
            items.append((r, i, o["input"][i], o["student"][i], o["reference"][i]))
    rng = np.random.default_rng(a.seed)
    order = rng.permutation(len(items))
    student_is_a = rng.integers(0, 2, size=len(items)) == 1
    width = max(4, len(str(len(items))))
    blind, key = [], []
    for k, j in enumerate(order):
        r, i, inp, stu, ref = items[j]
        sa = bool(student_is_a[k])
        A, B = (stu, ref) if sa else (ref, stu)
        iid = f"{k + 1:0{width}d}"
        blind.append([iid, inp, A, B, "", "", ""])
        key.append([iid, r.name, os.path.abspath(r.dir), a.split, i, "A" if sa else "B", check_hash(inp, A, B)])
    for path, header, rows in ((a.out, BLIND_COLS, blind), (key_path, KEY_COLS, key)):
        try:
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(rows)
        except OSError as e:
            hdio.fail(f"{path}: cannot write ({e.strerror})")
    print(f"wrote {a.out} ({len(blind)} items from {len(runs)} run(s), split {a.split}) for the annotators")
    print(f"wrote {key_path} (the un-blinding key: keep it away from the annotators)")
    return 0


# ----------------------------------------------------------------------------- import

def parse_label(path, line, col, v, allowed):
    s = v.strip().lower()
    if s == "":
        return None
    if s not in allowed:
        want = "A, B or tie" if allowed is FUNNIER else "yes or no"
        hdio.fail(f"{path} row {line}: {col} is '{v.strip()}', expected {want} (or empty)")
    return allowed[s]


def match_runs(key_rows, run_dirs, key_path):
    """{key run name: hdio.Run} for the runs the key names, from the RUN_DIRs given."""
    given = []
    for d in run_dirs:
        try:
            given.append(hdio.load_run(d))
        except hdio.RunError as e:
            hdio.fail(str(e))
    by_real = {os.path.realpath(g.dir): g for g in given}
    out = {}
    for _, k in key_rows:
        name = k["run"]
        if name in out:
            continue
        g = by_real.get(os.path.realpath(k["run_dir"]))
        if g is None:
            same = [x for x in given if x.name == name or x.name == os.path.basename(name)]
            g = same[0] if len(same) == 1 else None
        if g is None:
            hdio.fail(f"{key_path}: needs run '{name}' (exported from {k['run_dir']}): give its run directory")
        out[name] = g
    return out


def bias_pool(entries):
    """Pooled position and length bias over (attrs, decisive-with-different-length count) entries."""
    n = sum(a["n"] or 0 for a, _ in entries)
    pb = sum((a["position_bias"] or 0) * (a["n"] or 0) for a, _ in entries) / n if n else float("nan")
    lb_entries = [(a["length_bias"], dl) for a, dl in entries if dl and a["length_bias"] is not None
                  and not np.isnan(a["length_bias"])]
    d = sum(dl for _, dl in lb_entries)
    lb = sum(x * dl for x, dl in lb_entries) / d if d else float("nan")
    return pb, lb


def pct(x, n):
    return f"{100.0 * x / n:.1f}" if n else ""


def cmd_import(a):
    fhdr, filled = read_csv(a.file, "the annotated file")
    need_columns(a.file, fhdr, FILL_COLS, "the file written by human_eval.py export, with the annotators' columns")
    khdr, keyrows = read_csv(a.key, "the un-blinding key")
    need_columns(a.key, khdr, KEY_COLS, "the key written by human_eval.py export, FILE.key.csv")
    if len(filled) != len(keyrows):
        hdio.fail(f"{a.file} has {len(filled)} rows but {a.key} has {len(keyrows)} "
                  f"(hint: every exported row must come back, annotated or not; is this the key of this file?)")
    key = {}
    for line, k in keyrows:
        if k["id"] in key:
            hdio.fail(f"{a.key} row {line}: id '{k['id']}' appears twice")
        if k["student_side"] not in ("A", "B"):
            hdio.fail(f"{a.key} row {line}: student_side is '{k['student_side']}', expected A or B")
        try:
            k["index"] = int(k["index"])
        except ValueError:
            hdio.fail(f"{a.key} row {line}: index '{k['index']}' is not a number")
        key[k["id"]] = k
    seen = set()
    texts = all(c in fhdr for c in ("input", "A", "B"))
    labels = []
    for line, row in filled:
        iid = row["id"].strip()
        if iid not in key:
            hdio.fail(f"{a.file} row {line}: id '{iid}' is not in {a.key} (hint: is this the key of this file?)")
        if iid in seen:
            hdio.fail(f"{a.file} row {line}: id '{iid}' appears twice")
        seen.add(iid)
        k = key[iid]
        if texts and check_hash(row["input"], row["A"], row["B"]) != k["check"]:
            hdio.fail(f"{a.file} row {line}: id '{iid}': input/A/B differ from the exported texts "
                      f"(hint: is this the key of this file? were the texts edited?)")
        fun = parse_label(a.file, line, "funnier", row["funnier"], FUNNIER)
        ma = parse_label(a.file, line, "a_keeps_meaning", row["a_keeps_meaning"], YESNO)
        mb = parse_label(a.file, line, "b_keeps_meaning", row["b_keeps_meaning"], YESNO)
        labels.append((k, fun, ma, mb))
    runs = match_runs(keyrows, a.runs, a.key)

    # the runs' outputs and verdicts; the exported texts must still be there
    outs = {}
    for k, _, _, _ in labels:
        rk = (k["run"], k["split"])
        if rk not in outs:
            try:
                outs[rk] = hdio.eval_outputs(runs[k["run"]], k["split"])
            except hdio.RunError as e:
                hdio.fail(str(e))
        o = outs[rk]
        i = k["index"]
        if i < 0 or i >= len(o["input"]):
            hdio.fail(f"{runs[k['run']].path}: /eval/{k['split']} has no item {i} (id {k['id']}; hint: evaluated again since the export?)")
        s, ref = o["student"][i], o["reference"][i]
        A, B = (s, ref) if k["student_side"] == "A" else (ref, s)
        if check_hash(o["input"][i], A, B) != k["check"]:
            hdio.fail(f"{runs[k['run']].path}: /eval/{k['split']} item {i} (id {k['id']}) differs from the exported one "
                      f"(hint: evaluated again since the export? export again)")

    items = []   # dicts: run, split, index, human verdict, meaning kept (student, reference), words
    unannotated = 0
    for k, fun, ma, mb in labels:
        if fun is None:
            unannotated += 1
        sa = k["student_side"] == "A"
        o = outs[(k["run"], k["split"])]
        i = k["index"]
        hv = None if fun is None else (0 if fun == "tie" else (1 if (fun == "A") == sa else -1))
        items.append({"run": k["run"], "split": k["split"], "i": i, "h": hv,
                      "ms": ma if sa else mb, "mr": mb if sa else ma,
                      "ws": hdio.words(o["student"][i]), "wr": hdio.words(o["reference"][i]),
                      "v": {j: int(v[i]) for j, v in o["verdict"].items()}})
    if unannotated:
        hdio.warn(f"{a.file}: {unannotated} of {len(items)} rows have no funnier label and are left out of the humor figures")
    rated = [x for x in items if x["h"] is not None]
    if not rated and not any(x["ms"] is not None or x["mr"] is not None for x in items):
        hdio.fail(f"{a.file}: no row is annotated (hint: fill funnier with A, B or tie)")
    judges = hdio.ordered_judges({j for x in items for j in x["v"]})

    # the judges' bias attributes per (run, split), with the count that weighs length bias
    attrs = {}
    for (rn, sp), o in outs.items():
        run = runs[rn]
        for j in o["verdict"]:
            at = run.eval.results.get(sp, {}).get(j) if run.eval else None
            if at is None:
                continue
            ws = np.array([hdio.words(s) for s in o["student"]])
            wr = np.array([hdio.words(s) for s in o["reference"]])
            vj = o["verdict"][j]
            dl = int(np.sum((vj != 0) & (vj != UNJUDGED) & (ws != wr)))
            attrs[(rn, sp, j)] = (at, dl)

    def agreement(xs, j):
        xs = [x for x in xs if x["h"] is not None and j in x["v"] and x["v"][j] != UNJUDGED]
        h = np.array([x["h"] for x in xs], dtype=int)
        v = np.array([x["v"][j] for x in xs], dtype=int)
        dec = (h != 0) & (v != 0)
        return len(xs), int(np.sum(h == v)), int(np.sum(dec)), int(np.sum((h == v) & dec)), int(np.sum(v >= 0))

    def human(xs):
        h = np.array([x["h"] for x in xs if x["h"] is not None], dtype=int)
        lw = [(x["h"] > 0) == (x["ws"] > x["wr"]) for x in xs if x["h"] not in (None, 0) and x["ws"] != x["wr"]]
        return len(h), int(np.sum(h > 0)), int(np.sum(h == 0)), int(np.sum(h < 0)), (sum(lw), len(lw))

    runs_used = sorted({x["run"] for x in items})
    splits_used = sorted({x["split"] for x in items})
    md = [f"# Human evaluation: {os.path.basename(a.file)}", "",
          f"{len(rated)} of {len(items)} items annotated for humor; runs {', '.join(runs_used)}; "
          f"split {', '.join(splits_used)}. Verdicts are the student's output against the teacher's reference.", "",
          "## Humor: judges against the humans (cf. Table 1 of Ravi et al. 2024)", "",
          "Agreement: items where the judge's verdict equals the humans' (win, tie or loss; a tie agrees only "
          "with a tie). Decisive: items both call a win or a loss. Position and length bias: the judge's rates "
          "over the whole evaluated split (run.h5 attributes; pooled over runs weighted by their counts): verdicts "
          "that flip with the order, and decisive verdicts won by the longer output.", ""]
    rows = []
    for j in judges:
        n, agree, nd, agd, jwt = agreement(items, j)
        pb, lb = bias_pool([attrs[key_] for key_ in attrs if key_[2] == j])
        rows.append([j, n, pct(agree, n), nd, pct(agd, nd), pct(jwt, n), hdio.fmt(pb, 3), hdio.fmt(lb, 3)])
    nh, hw, ht, hl, (lw, ld) = human(items)
    rows.append(["humans", nh, "", "", "", pct(hw + ht, nh), "", hdio.fmt(lw / ld, 3) if ld else ""])
    md.append(hdio.md_table(["rater", "items", "agreement %", "decisive items", "agreement on decisive %",
                             "student win-or-tie %", "position bias", "length bias"], rows))
    md += ["", f"Humans: student win-or-tie rate {pct(hw + ht, nh) or '-'} % ({hw} wins, {ht} ties, {hl} losses "
               f"of {nh}).", "", "## Meaning kept (humans)", ""]
    ms = [x["ms"] for x in items if x["ms"] is not None]
    mr = [x["mr"] for x in items if x["mr"] is not None]
    md.append(hdio.md_table(["output", "items rated", "keeps the meaning %"],
                            [["student", len(ms), pct(sum(ms), len(ms))],
                             ["teacher reference", len(mr), pct(sum(mr), len(mr))]]))
    md += ["", "## Per run", ""]
    prow = []
    for rn in runs_used:
        for sp in splits_used:
            xs = [x for x in items if x["run"] == rn and x["split"] == sp]
            if not xs:
                continue
            nh_, hw_, ht_, _, _ = human(xs)
            ms_ = [x["ms"] for x in xs if x["ms"] is not None]
            for j in judges:
                if (rn, sp, j) not in attrs:
                    continue
                at, _ = attrs[(rn, sp, j)]
                n, agree, nd, agd, jwt = agreement(xs, j)
                prow.append([rn, sp, j, n, pct(agree, n), pct(agd, nd), pct(jwt, n), pct(hw_ + ht_, nh_),
                             pct(sum(ms_), len(ms_)), hdio.fmt(at["position_bias"], 3), hdio.fmt(at["length_bias"], 3)])
    md.append(hdio.md_table(["run", "split", "judge", "items", "agreement %", "agreement on decisive %",
                             "judge win-or-tie %", "human win-or-tie %", "student keeps meaning %",
                             "position bias", "length bias"], prow))
    text = "\n".join(md) + "\n"
    if a.out:
        try:
            with open(a.out, "w") as f:
                f.write(text)
        except OSError as e:
            hdio.fail(f"{a.out}: cannot write ({e.strerror})")
        print(f"wrote {a.out}")
    else:
        sys.stdout.write(text)
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="{export,import}")
    e = sub.add_parser("export", help="write the blinded CSV for the annotators and its key")
    e.add_argument("runs", nargs="+", metavar="RUN_DIR")
    e.add_argument("--out", required=True, metavar="FILE.csv", help="the annotators' file")
    e.add_argument("--key", metavar="KEY.csv", help="the un-blinding key (default FILE.key.csv)")
    e.add_argument("--split", default="eval", help="evaluated split (default eval)")
    e.add_argument("--seed", type=int, default=0, help="seed of the order, the sides and --limit (default 0)")
    e.add_argument("--limit", type=int, metavar="N", help="a seeded sample of N inputs per run")
    i = sub.add_parser("import", help="report the annotations against the judges")
    i.add_argument("file", metavar="FILE.csv", help="the annotated file")
    i.add_argument("--key", required=True, metavar="KEY.csv", help="its un-blinding key")
    i.add_argument("runs", nargs="+", metavar="RUN_DIR")
    i.add_argument("--out", metavar="report.md", help="write the report here instead of stdout")
    a = ap.parse_args(argv)
    return cmd_export(a) if a.cmd == "export" else cmd_import(a)


if __name__ == "__main__":
    hdio.run_main(main)
