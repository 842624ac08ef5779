#!/usr/bin/python3
"""Report of a hyper-parameter sweep: table, heat maps, Markdown.

usage: /usr/bin/python3 analysis/sweep_report.py SWEEP_DIR --out OUT_DIR [--split eval] [--judge critic]

SWEEP_DIR holds one run directory per sweep row, row-0, row-1, ... (made by
jobs/sweep.sbatch; other files there are ignored). Writes into OUT_DIR:
  summary.csv, summary.md   the table of analysis/summarize.py over every row
                            (one row per sweep row; its key columns are the swept
                            parameters: the configuration keys that differ between rows)
  heatmap_<k1>__<k2>.png    per pair of swept parameters: the mean win-or-tie rate of
                            --judge on --split (default: the critic on eval) over the
                            rows with those two values (averaged over the other parameters)
  line_<k>.png              when only one parameter is swept: the win-or-tie rate
                            against its values (each row, and the mean)
  report.md                 the table, the unfinished rows, links to the figures
Rows whose run is missing, unreadable, unfinished or not evaluated are listed as
unfinished and left out of the figures. Exit code 2 when SWEEP_DIR is missing or
holds no row-<i> directory.
Needs Debian's python3-h5py, python3-numpy and python3-matplotlib.
"""
import argparse
import itertools
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hdio  # noqa: E402
import summarize  # noqa: E402


def find_rows(sweep_dir):
    if not os.path.isdir(sweep_dir):
        hdio.fail(f"{sweep_dir}: no such sweep directory (hint: the SWEEP_DIR of jobs/submit.sh or jobs/sweep.sbatch)")
    rows = []
    for name in os.listdir(sweep_dir):
        m = re.fullmatch(r"row-(\d+)", name)
        if m and os.path.isdir(os.path.join(sweep_dir, name)):
            rows.append((int(m.group(1)), os.path.join(sweep_dir, name)))
    if not rows:
        hdio.fail(f"{sweep_dir}: no row-<i> run directories (hint: jobs/sweep.sbatch writes SWEEP_DIR/row-0, row-1, ...)")
    return [d for _, d in sorted(rows)]


def load_rows(dirs):
    runs = []
    for d in dirs:
        try:
            runs.append(hdio.load_run(d))
        except hdio.RunError as e:
            missing = os.path.isdir(d) and not os.path.exists(os.path.join(d, "run.h5"))
            runs.append(hdio.stub_run(d, "not started (no run.h5)" if missing else str(e)))
    return runs


def value_label(v):
    return v if isinstance(v, str) else json.dumps(v)


def sorted_values(vals):
    """Distinct values, numeric ones in numeric order, others as strings in order."""
    uniq = {value_label(v): v for v in vals}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in uniq.values()):
        return [uniq[k] for k in sorted(uniq, key=lambda k: uniq[k])]
    return [uniq[k] for k in sorted(uniq)]


def heatmap(plt, points, k1, k2, out, what):
    """points: [(config dict, wtr)]; mean wtr per (k1 value, k2 value)."""
    v1 = sorted_values([hdio.config_value(c, k1) for c, _ in points])
    v2 = sorted_values([hdio.config_value(c, k2) for c, _ in points])
    m = np.full((len(v1), len(v2)), np.nan)
    cnt = np.zeros((len(v1), len(v2)), dtype=int)
    for i, a in enumerate(v1):
        for j, b in enumerate(v2):
            w = [x for c, x in points if value_label(hdio.config_value(c, k1)) == value_label(a)
                 and value_label(hdio.config_value(c, k2)) == value_label(b)]
            if w:
                m[i, j], cnt[i, j] = float(np.mean(w)), len(w)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(v2), 1.4 + 0.8 * len(v1)))
    ax.set_facecolor("#e8e8e8")  # combinations without an evaluated row
    im = ax.imshow(np.ma.masked_invalid(m), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(v2)), [value_label(v) for v in v2])
    ax.set_yticks(range(len(v1)), [value_label(v) for v in v1])
    ax.set_xlabel(k2)
    ax.set_ylabel(k1)
    finite = m[np.isfinite(m)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(len(v1)):
        for j in range(len(v2)):
            txt = "-" if cnt[i, j] == 0 else f"{m[i, j]:.1f}\n(n={cnt[i, j]})"
            ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                    color="white" if cnt[i, j] and m[i, j] < mid else "black")
    fig.colorbar(im, ax=ax, label=f"mean win-or-tie % ({what})")
    ax.set_title(f"{what}: mean over the other parameters", fontsize=9)
    path = os.path.join(out, f"heatmap_{hdio.safe_filename(k1)}__{hdio.safe_filename(k2)}.png")
    hdio.save_figure(plt, fig, path, f"cells={int((cnt > 0).sum())} of {m.size}")
    return path


def line_plot(plt, points, k, out, what):
    vals = sorted_values([hdio.config_value(c, k) for c, _ in points])
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
    pos = {value_label(v): (float(v) if numeric else i) for i, v in enumerate(vals)}
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [pos[value_label(hdio.config_value(c, k))] for c, _ in points]
    ax.scatter(xs, [w for _, w in points], color="grey", alpha=0.7, label="one row", zorder=3)
    means = [np.mean([w for c, w in points if value_label(hdio.config_value(c, k)) == value_label(v)]) for v in vals]
    ax.plot([pos[value_label(v)] for v in vals], means, marker="o", label="mean")
    if not numeric:
        ax.set_xticks(range(len(vals)), [value_label(v) for v in vals])
    ax.set_xlabel(k)
    ax.set_ylabel(f"win-or-tie % ({what})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    path = os.path.join(out, f"line_{hdio.safe_filename(k)}.png")
    hdio.save_figure(plt, fig, path, f"points={len(points)} values={len(vals)}")
    return path


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir", metavar="SWEEP_DIR")
    ap.add_argument("--out", required=True, metavar="OUT_DIR", help="directory of the report (created)")
    ap.add_argument("--split", default="eval", help="split of the heat maps (default eval)")
    ap.add_argument("--judge", default="critic", help="judge of the heat maps (default critic)")
    a = ap.parse_args(argv)
    runs = load_rows(find_rows(a.sweep_dir))
    try:
        os.makedirs(a.out, exist_ok=True)
    except OSError as e:
        hdio.fail(f"{a.out}: cannot create the directory ({e.strerror})")

    readable = [r for r in runs if r.config is not None]
    swept = hdio.differing_keys([r.config for r in readable])
    keys = swept + [k for k in summarize.DEFAULT_KEYS if k not in swept]
    header, rows = summarize.build(runs, keys, warn=False)
    table = summarize.markdown(header, rows)
    summarize.write_csv(os.path.join(a.out, "summary.csv"), header, rows)
    summarize.write_text(os.path.join(a.out, "summary.md"), table + "\n")
    print(f"wrote {os.path.join(a.out, 'summary.csv')} ({len(rows)} rows)")

    what = f"judge {a.judge}, {a.split} split"
    points = [(r.config, r.eval.results[a.split][a.judge]["wtr"]) for r in readable
              if r.evaluated and a.judge in r.eval.results.get(a.split, {})]
    unfinished = [r for r in runs if not r.evaluated]
    for r in unfinished:
        hdio.warn(f"{r.name}: {r.status}")
    figures, notes = [], []
    if not points:
        notes.append(f"No row has an evaluation by {a.judge} on the {a.split} split: no figures.")
    elif not swept:
        notes.append("No configuration key differs between the rows: nothing to plot against.")
    else:
        plt = hdio.matplotlib_pyplot()
        if len(swept) == 1:
            figures.append((f"win-or-tie rate against {swept[0]}", line_plot(plt, points, swept[0], a.out, what)))
        for k1, k2 in itertools.combinations(swept, 2):
            figures.append((f"{k1} x {k2}", heatmap(plt, points, k1, k2, a.out, what)))
    for n in notes:
        print(f"note: {n}", file=sys.stderr)

    done = len(runs) - len(unfinished)
    md = [f"# Sweep report: {a.sweep_dir}", "",
          f"{len(runs)} rows, {done} evaluated, {len(unfinished)} unfinished.", "",
          "Swept parameters (configuration keys that differ between rows): "
          + (", ".join(f"`{k}`" for k in swept) if swept else "none") + "."]
    if unfinished:
        md += ["", "## Unfinished rows", ""]
        md += [f"- {r.name}: {r.status}" for r in unfinished]
    md += ["", "## Table", "", table, "", "Also as [summary.csv](summary.csv) and [summary.md](summary.md).", "",
           "## Figures", ""]
    if figures:
        md.append(f"Mean win-or-tie rate x100 against the teacher ({what}) over the evaluated rows.")
        md.append("")
        for title, path in figures:
            name = os.path.basename(path)
            md += [f"### {title}", "", f"![{title}]({name})", ""]
    md += notes
    summarize.write_text(os.path.join(a.out, "report.md"), "\n".join(md).rstrip() + "\n")
    print(f"wrote {os.path.join(a.out, 'report.md')}")
    return 0


if __name__ == "__main__":
    hdio.run_main(main)
