#!/usr/bin/python3
"""One row per hdistill run: settings, evaluation, training cost and LLM usage.

usage: /usr/bin/python3 analysis/summarize.py RUN_DIR... [--csv OUT.csv] [--md OUT.md] [--keys k1,k2,...]

Columns, from each RUN_DIR/run.h5 (and the run's data.h5 for the teacher):
  run, status, objective, seed, eval_step   /eval attributes (empty when not evaluated)
  key hyper-parameters   the configuration keys whose values differ between the
                         runs, plus critique.objective, critique.beta,
                         critique.rounds, train.lr, train.seed (--keys k1,k2 replaces them)
  <split>.<judge>.<x>    for every split and judge of /eval: wtr, wtr_ci_low,
                         wtr_ci_high, lc_winrate, lc_ci_low, lc_ci_high,
                         position_bias, position_consistency, length_bias,
                         student_words, reference_words, n, judged
  steps, train_time_s, loss_tokens, final_loss   last /metrics/train step, time, tokens, loss
  usage.<role>.<x>       LLM usage: critic and judges from run.h5 /usage/<role>
                         (requests, eval_requests, cache_hits, prompt_tokens,
                         completion_tokens); teacher from data.h5 /teacher/usage
                         (requests, cache_hits, prompt_tokens, completion_tokens;
                         data.path is taken relative to the current directory)
Prints the table as Markdown on stdout; --csv writes exactly one row per run
(exact values), --md the Markdown table to a file. A run without a complete
evaluation still gets a row (empty cells) and a warning on stderr.
Exit code 2 with a one-line message for a missing or unreadable run.
"""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hdio  # noqa: E402

DEFAULT_KEYS = ("critique.objective", "critique.beta", "critique.rounds", "train.lr", "train.seed")
EVAL_COLS = ("wtr", "wtr_ci_low", "wtr_ci_high", "lc_winrate", "lc_ci_low", "lc_ci_high",
             "position_bias", "position_consistency", "length_bias",
             "student_words", "reference_words", "n", "judged")
RUN_USAGE = ("requests", "eval_requests", "cache_hits", "prompt_tokens", "completion_tokens")
TEACHER_USAGE = ("requests", "cache_hits", "prompt_tokens", "completion_tokens")
DIGITS = {"wtr": 1, "wtr_ci_low": 1, "wtr_ci_high": 1, "lc_winrate": 1, "lc_ci_low": 1, "lc_ci_high": 1,
          "position_bias": 3, "position_consistency": 3, "length_bias": 3,
          "student_words": 1, "reference_words": 1, "train_time_s": 1, "final_loss": 4}


def pick_keys(runs, keys_arg):
    configs = [r.config for r in runs if r.config is not None]
    if keys_arg is not None:
        keys = [k.strip() for k in keys_arg.split(",") if k.strip()]
        known = set().union(*(hdio.flatten_config(c) for c in configs)) if configs else set()
        for k in keys:
            if configs and k not in known:
                hdio.fail(f"--keys: unknown configuration key '{k}' (hint: build/hdistill help-config lists them, "
                          f"as section.key)")
        return keys
    keys = hdio.differing_keys(configs)
    return keys + [k for k in DEFAULT_KEYS if k not in keys]


def build(runs, keys=None, warn=True):
    """(header, rows as lists of raw values) for RUNS (hdio.Run objects, stubs allowed)."""
    if keys is None:
        keys = pick_keys(runs, None)
    splits = hdio.ordered_splits({s for r in runs if r.evaluated for s in r.eval.results})
    judges = {s: hdio.ordered_judges({j for r in runs if r.evaluated for j in r.eval.results.get(s, {})})
              for s in splits}
    roles = hdio.ordered_judges({role for r in runs for role in r.usage})
    role_cols = {role: [k for k in RUN_USAGE if any(k in r.usage.get(role, {}) for r in runs)] for role in roles}
    teacher = {}
    for r in runs:
        if r.config is None:
            continue
        u, why = hdio.teacher_usage(r)
        teacher[r.name] = u
        if u is None and warn:
            hdio.warn(f"{r.name}: no teacher usage ({why})")
    header = ["run", "status", "objective", "seed", "eval_step"] + list(keys)
    for s in splits:
        for j in judges[s]:
            header += [f"{s}.{j}.{c}" for c in EVAL_COLS]
    header += ["steps", "train_time_s", "loss_tokens", "final_loss"]
    for role in roles:
        header += [f"usage.{role}.{c}" for c in role_cols[role]]
    header += [f"usage.teacher.{c}" for c in TEACHER_USAGE]
    rows = []
    for r in runs:
        ev = r.eval if r.evaluated else None
        if ev is None and warn:
            hdio.warn(f"{r.name}: no complete evaluation ({r.status}); its evaluation cells are empty")
        row = [r.name, r.status, ev.attrs.get("objective") if ev else None, ev.attrs.get("seed") if ev else None,
               ev.step if ev else None]
        for k in keys:
            row.append(r.cfg(k) if r.config is not None else None)
        for s in splits:
            for j in judges[s]:
                a = ev.results.get(s, {}).get(j) if ev else None
                row += [a.get(c) if a else None for c in EVAL_COLS]
        row += [r.last_step, r.last_metric("time"), r.last_metric("tokens"), r.last_metric("loss")]
        for role in roles:
            u = r.usage.get(role, {})
            row += [u.get(c) for c in role_cols[role]]
        tu = teacher.get(r.name) or {}
        row += [tu.get(c) for c in TEACHER_USAGE]
        rows.append(row)
    return header, rows


def markdown(header, rows):
    def cell(col, v):
        last = col.rsplit(".", 1)[-1]
        if isinstance(v, float) and last in DIGITS:
            return hdio.fmt(v, DIGITS[last])
        return hdio.fmt(v)
    return hdio.md_table(header, [[cell(h, v) for h, v in zip(header, r)] for r in rows])


def write_csv(path, header, rows):
    try:
        with open(path, "w", newline="") as out:
            w = csv.writer(out)
            w.writerow(header)
            for r in rows:
                w.writerow([hdio.csv_value(v) for v in r])
    except OSError as e:
        hdio.fail(f"{path}: cannot write ({e.strerror})")


def write_text(path, text):
    try:
        with open(path, "w") as out:
            out.write(text)
    except OSError as e:
        hdio.fail(f"{path}: cannot write ({e.strerror})")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR")
    ap.add_argument("--csv", metavar="OUT.csv", help="write the table as CSV, one row per run")
    ap.add_argument("--md", metavar="OUT.md", help="write the Markdown table to a file too")
    ap.add_argument("--keys", metavar="k1,k2,...", help="configuration keys (section.key) to show instead of the default")
    a = ap.parse_args(argv)
    runs = hdio.load_runs(a.runs)
    header, rows = build(runs, pick_keys(runs, a.keys))
    md = markdown(header, rows)
    print(md)
    if a.csv:
        write_csv(a.csv, header, rows)
    if a.md:
        write_text(a.md, md + "\n")
    return 0


if __name__ == "__main__":
    hdio.run_main(main)
