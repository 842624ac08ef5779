#!/usr/bin/python3
"""Figures of one or more hdistill runs, from their run.h5 only.

usage: /usr/bin/python3 analysis/plots.py RUN_DIR... --out DIR [--split eval] [--judge critic] [--data FILE.csv]

Writes into DIR:
  loss.png            training loss per optimizer step, one line per run; dotted
                      vertical lines at the critique rounds' start steps
                      (/rounds/<r> start_step). The loss is the cross-entropy in
                      supervised fine-tuning and the round's objective after.
  wtr_by_round.png    win-or-tie rate (x100) with its 95 % bootstrap interval as
                      error bars against the feedback rounds completed
                      (0 = the SFT model): /sft/eval and /rounds/<r>/eval (written
                      with critique.eval_each_round=1) and the final /eval as the
                      last point, for --split and --judge (default eval, critic).
  length_by_round.png mean words of the student's sampled candidates of each
                      round (/rounds/<r>/student/candidates, drawn from the model
                      after r rounds) and of its evaluation outputs
                      (/sft/eval, /rounds/<r>/eval, /eval; --split), with the teacher
                      references' mean as a dashed line.
  trace_<run>.png     for every run trained with train.trace=1: the last steps'
                      intervals per rank (/trace) -- compute (forward and
                      backward), each gradient reduction (comm), the wait for
                      them after the backward pass, the optimizer step -- and
                      in the title the share of reduction time hidden behind
                      compute over all steps and ranks.
A figure no run has data for is skipped with a note on stderr. Prints one line
per file written: "wrote PATH (counts of what was drawn)". --data FILE.csv also
writes every plotted value (figure, run, series, x, y, y_low, y_high), e.g. to
plot them elsewhere.
Needs Debian's python3-h5py, python3-numpy and python3-matplotlib.
"""
import argparse
import csv
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hdio  # noqa: E402


DATA = []  # (figure, run, series, x, y, y_low, y_high) of every plotted value


def record(figure, run, series, xs, ys, lo=None, hi=None):
    for i, (x, y) in enumerate(zip(xs, ys)):
        DATA.append((figure, run, series, x, y, None if lo is None else lo[i], None if hi is None else hi[i]))


def plot_loss(plt, runs, out):
    have = [r for r in runs if r.metrics.get("step") is not None and len(r.metrics["step"])]
    if not have:
        print("note: loss.png skipped: no run has /metrics/train", file=sys.stderr)
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in have:
        line, = ax.plot(r.metrics["step"], r.metrics["loss"], lw=1.2, label=r.name, gid="run")
        record("loss", r.name, "loss", r.metrics["step"].tolist(), r.metrics["loss"].tolist())
        for rd in r.rounds:
            s = rd["attrs"].get("start_step")
            if s is not None:
                ax.axvline(s, color=line.get_color(), ls=":", lw=1, alpha=0.8, gid="round")
                record("loss", r.name, f"round {rd['r']} start", [s], [None])
    if any(r.rounds for r in have):
        ax.plot([], [], color="grey", ls=":", label="start of a critique round")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats): SFT cross-entropy, then the round's objective")
    ax.set_title("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    lines = sum(1 for l in ax.get_lines() if l.get_gid() == "run")
    rounds = sum(1 for l in ax.get_lines() if l.get_gid() == "round")
    path = os.path.join(out, "loss.png")
    hdio.save_figure(plt, fig, path, f"lines={lines} round_markers={rounds}")
    return path


def eval_points(run, split, judge):
    """[(rounds completed, step, attrs)] of the run's evaluations of SPLIT by JUDGE, by step;
    the final /eval replaces a per-round evaluation of the same step."""
    pts = {}
    ev = run.sft_eval
    if ev is not None and ev.complete and judge in ev.results.get(split, {}):
        pts[ev.step] = ev.results[split][judge]
    for rd in run.rounds:
        ev = rd["eval"]
        if ev is not None and ev.complete and judge in ev.results.get(split, {}):
            pts[ev.step] = ev.results[split][judge]
    if run.evaluated and judge in run.eval.results.get(split, {}):
        pts[run.eval.step] = run.eval.results[split][judge]
    return [(run.rounds_done(s), s, pts[s]) for s in sorted(pts)]


def eval_lengths(run, split):
    """[(rounds completed, mean words of the student's outputs, mean words of the references)]."""
    pts = {}
    evs = [run.sft_eval] + [rd["eval"] for rd in run.rounds]
    roots = [(ev.step, ev.root) for ev in evs if ev is not None and ev.complete]
    if run.evaluated:
        roots.append((run.eval.step, "/eval"))
    for step, root in roots:
        try:
            o = hdio.eval_outputs(run, split, root)
        except hdio.RunError:
            continue
        if o["student"]:
            pts[step] = (np.mean([hdio.words(s) for s in o["student"]]),
                         np.mean([hdio.words(s) for s in o["reference"]]))
    return [(run.rounds_done(s),) + pts[s] for s in sorted(pts)]


def plot_wtr(plt, runs, out, split, judge):
    series = [(r, eval_points(r, split, judge)) for r in runs]
    series = [(r, p) for r, p in series if p]
    if not series:
        print(f"note: wtr_by_round.png skipped: no run has an evaluation of split '{split}' by judge '{judge}'",
              file=sys.stderr)
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    width = 0.3
    for i, (r, p) in enumerate(series):
        dx = (i - (len(series) - 1) / 2) * (width / max(1, len(series) - 1)) if len(series) > 1 else 0.0
        x = np.array([q[0] for q in p], dtype=float) + dx
        y = np.array([q[2]["wtr"] for q in p], dtype=float)
        lo = np.array([q[2]["wtr_ci_low"] for q in p], dtype=float)
        hi = np.array([q[2]["wtr_ci_high"] for q in p], dtype=float)
        ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", capsize=3, label=f"{r.name} ({split} split, judge {judge})")
        record("wtr_by_round", r.name, f"{split}/{judge}", [q[0] for q in p], y.tolist(), lo.tolist(), hi.tolist())
    xs = sorted({q[0] for _, p in series for q in p})
    ax.set_xticks(xs)
    ax.set_xlabel("feedback rounds completed (0 = after supervised fine-tuning)")
    ax.set_ylabel("win-or-tie rate vs teacher x100 (95 % CI)")
    ax.set_title(f"win-or-tie rate by round ({split} split, judge {judge})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    n_series = len(ax.containers)
    n_points = sum(len(c.lines[0].get_xdata()) for c in ax.containers)
    path = os.path.join(out, "wtr_by_round.png")
    hdio.save_figure(plt, fig, path, f"series={n_series} points={n_points} split={split} judge={judge}")
    return path


def plot_length(plt, runs, out, split):
    data = []
    for r in runs:
        cand = [(rd["r"], float(np.mean(rd["candidate_words"]))) for rd in r.rounds
                if rd["candidate_words"] is not None and len(rd["candidate_words"])]
        ev = eval_lengths(r, split)
        if cand or ev:
            data.append((r, cand, ev))
    if not data:
        print("note: length_by_round.png skipped: no run has round candidates or evaluation outputs", file=sys.stderr)
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ref = None
    for r, cand, ev in data:
        color = None
        if cand:
            line, = ax.plot([c[0] for c in cand], [c[1] for c in cand], marker="o", gid="data",
                            label=f"{r.name}: sampled candidates (train inputs)")
            color = line.get_color()
            record("length_by_round", r.name, "candidates", [c[0] for c in cand], [c[1] for c in cand])
        if ev:
            ax.plot([e[0] for e in ev], [e[1] for e in ev], marker="s", ls="--", color=color, gid="data",
                    label=f"{r.name}: beam outputs ({split} split)")
            record("length_by_round", r.name, f"{split} outputs", [e[0] for e in ev], [float(e[1]) for e in ev])
            ref = ev[-1][2] if ref is None else ref
    if ref is not None:
        ax.axhline(ref, color="black", ls="-.", lw=1, gid="reference", label=f"teacher references ({split} split)")
        record("length_by_round", "", f"{split} references", [None], [float(ref)])
    xs = sorted({c[0] for _, cand, _ in data for c in cand} | {e[0] for _, _, ev in data for e in ev})
    ax.set_xticks(xs)
    ax.set_xlabel("feedback rounds completed (0 = after supervised fine-tuning)")
    ax.set_ylabel("mean words per output")
    ax.set_title("length of the student's outputs by round")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    lines = [l for l in ax.get_lines() if l.get_gid() == "data"]
    n_points = sum(len(l.get_xdata()) for l in lines)
    refs = sum(1 for l in ax.get_lines() if l.get_gid() == "reference")
    path = os.path.join(out, "length_by_round.png")
    hdio.save_figure(plt, fig, path, f"lines={len(lines)} points={n_points} reference_lines={refs}")
    return path


def plot_trace(plt, run, out, last=3):
    tr = run.trace
    steps = np.unique(tr["step"])[-last:]
    colors = {0: "tab:blue", 1: "tab:orange", 2: "tab:red", 3: "tab:green"}
    ranks = sorted(set(tr["rank"].tolist()))
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.9 * len(ranks)))
    n = 0
    for r in ranks:
        for k in (0, 2, 3, 1):
            sel = (tr["rank"] == r) & (tr["kind"] == k) & np.isin(tr["step"], steps)
            if not np.any(sel):
                continue
            a, b = tr["t0"][sel], tr["t1"][sel]
            y = r + (0.2 if k == 1 else -0.2 if k == 0 else 0.0)
            ax.broken_barh(list(zip(a, b - a)), (y - 0.15, 0.3), facecolors=colors[k], gid=hdio.TRACE_KINDS[k])
            record("trace", run.name, f"rank {r} {hdio.TRACE_KINDS[k]}", a.tolist(), (b - a).tolist())
            n += int(np.sum(sel))
    total, hidden = hdio.comm_hidden(tr)
    share = f"{100 * hidden / total:.0f} %" if total > 0 else "-"
    ax.set_yticks(ranks)
    ax.set_yticklabels([f"rank {r}" for r in ranks])
    ax.set_xlabel("seconds since the trainer started (each rank's clock)")
    ax.set_title(f"{run.name}: steps {int(steps[0])}-{int(steps[-1])}; reduction {total:.2f} s over all steps, "
                 f"{share} hidden behind compute")
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=colors[k], label=hdio.TRACE_KINDS[k]) for k in (0, 1, 2, 3)],
              loc="upper left", fontsize=8, ncol=4)
    fig.tight_layout()
    path = os.path.join(out, f"trace_{run.name}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path} (ranks={len(ranks)} intervals={n} hidden={share})")
    return path


def make_all(runs, out, split="eval", judge="critic"):
    plt = hdio.matplotlib_pyplot()
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        hdio.fail(f"{out}: cannot create the directory ({e.strerror})")
    written = [plot_loss(plt, runs, out), plot_wtr(plt, runs, out, split, judge), plot_length(plt, runs, out, split)]
    written += [plot_trace(plt, r, out) for r in runs if r.trace.get("kind") is not None and len(r.trace["kind"])]
    return [p for p in written if p]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR")
    ap.add_argument("--out", required=True, metavar="DIR", help="directory for the PNG files (created)")
    ap.add_argument("--split", default="eval", help="split of the win-or-tie and length figures (default eval)")
    ap.add_argument("--judge", default="critic", help="judge of the win-or-tie figure (default critic)")
    ap.add_argument("--data", metavar="FILE.csv", help="also write every plotted value as CSV")
    a = ap.parse_args(argv)
    runs = hdio.load_runs(a.runs)
    make_all(runs, a.out, a.split, a.judge)
    if a.data:
        try:
            with open(a.data, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(("figure", "run", "series", "x", "y", "y_low", "y_high"))
                w.writerows([hdio.csv_value(hdio.py(v)) for v in row] for row in DATA)
        except OSError as e:
            hdio.fail(f"{a.data}: cannot write ({e.strerror})")
        print(f"wrote {a.data} ({len(DATA)} values)")
    return 0


if __name__ == "__main__":
    hdio.run_main(main)
