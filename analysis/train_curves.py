#!/usr/bin/python3
"""Training curves of one or more hdistill runs, from their run.h5 only.

usage: /usr/bin/python3 analysis/train_curves.py RUN_DIR... [--csv OUT.csv] [--png OUT.png]

Prints a Markdown table (run, steps, final loss, best validation loss,
loss tokens, training time, loss tokens per second); --csv writes every logged step of
every run (run, step, loss, lr, grad_norm, tokens, time); --png plots the
training loss (and validation loss, dashed) against the step.
Needs Debian's python3-h5py, python3-numpy (and python3-matplotlib for --png).
"""
import argparse
import csv
import os
import sys

import h5py
import numpy as np

SERIES = ("step", "loss", "lr", "grad_norm", "tokens", "time")


def load(run_dir):
    path = os.path.join(run_dir, "run.h5")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        sys.exit(f"error: {path}: cannot read ({e}) (hint: is it a run directory?)")
    with f:
        if "/metrics/train/step" not in f:
            sys.exit(f"error: {path}: no /metrics/train (hint: the run has not logged a step yet)")
        d = {k: f["/metrics/train/" + k][()] for k in SERIES}
        if "/metrics/val/step" in f:
            d["val_step"] = f["/metrics/val/step"][()]
            d["val_loss"] = f["/metrics/val/loss"][()]
    d["name"] = os.path.basename(os.path.normpath(run_dir))
    return d


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--csv")
    ap.add_argument("--png")
    a = ap.parse_args(argv)
    runs = [load(r) for r in a.runs]
    print("| run | steps | final loss | best val loss | loss tokens | time s | loss tokens/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for d in runs:
        n = len(d["step"])
        if n == 0:
            print(f"| {d['name']} | 0 | | | | | |")
            continue
        val = f"{np.min(d['val_loss']):.4f}" if "val_loss" in d and len(d["val_loss"]) else ""
        t = d["time"][-1]
        print(f"| {d['name']} | {int(d['step'][-1])} | {d['loss'][-1]:.4f} | {val} | "
              f"{int(d['tokens'][-1])} | {t:.1f} | {d['tokens'][-1] / t if t > 0 else 0:.0f} |")
    if a.csv:
        with open(a.csv, "w", newline="") as out:
            w = csv.writer(out)
            w.writerow(("run",) + SERIES)
            for d in runs:
                for i in range(len(d["step"])):
                    w.writerow([d["name"]] + [repr(d[k][i].item()) for k in SERIES])
    if a.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4))
        for d in runs:
            line, = ax.plot(d["step"], d["loss"], label=f"{d['name']} train")
            if "val_step" in d and len(d["val_step"]):
                ax.plot(d["val_step"], d["val_loss"], "--", color=line.get_color(),
                        label=f"{d['name']} validation")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("cross-entropy per target token (nats)")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(a.png, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
