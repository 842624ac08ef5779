"""hdio -- reading hdistill's HDF5 outputs (run.h5, data.h5) for the analysis scripts.

Imported by the scripts of this directory (summarize.py, plots.py,
sweep_report.py, human_eval.py), which put their own directory on sys.path:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import hdio
    run = hdio.load_run("runs/a")          # hdio.RunError on a missing/unreadable/non-run file
    run.eval.results["eval"]["critic"]["wtr"]
    hdio.teacher_usage(run)                # /teacher/usage of the run's data.h5

Only reads (h5py, numpy); every file is opened read-only and closed again.
Expected problems raise RunError with a one-line message naming the file and
a hint; scripts turn it into "error: ..." on stderr and exit code 2 (fail()).
Needs Debian's python3-h5py and python3-numpy (run with /usr/bin/python3).
"""
import json
import math
import os
import sys

import h5py
import numpy as np

# attributes of /eval/<split>/<judge> (and /rounds/<r>/eval/<split>/<judge>)
EVAL_KEYS = ("wtr", "wtr_ci_low", "wtr_ci_high", "lc_winrate", "lc_ci_low", "lc_ci_high",
             "position_bias", "position_consistency", "length_bias",
             "student_words", "reference_words", "n", "judged", "unjudged", "wins", "ties", "losses")
SPLIT_ORDER = ("eval", "ood")


class RunError(Exception):
    """An expected problem with an input file; the message is one line."""


def fail(msg, code=2):
    """Print one line "error: MSG" to stderr and exit (2: bad input)."""
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def run_main(main):
    """sys.exit(main(argv)); a closed pipe (| head) is not an error."""
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        sys.exit(0)


def warn(msg):
    print(f"warning: {msg}", file=sys.stderr)


def one_line(x):
    return " ".join(str(x).split())


def py(v):
    """An HDF5 attribute or dataset element as a plain Python value."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return [py(x) for x in v.tolist()] if v.dtype.kind in "OS" else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def attrs(obj):
    """The attributes of an HDF5 object as a dict, without the 'description' note."""
    return {k: py(obj.attrs[k]) for k in obj.attrs if k != "description"}


def strings(ds):
    """A string dataset as a list (or list of lists) of str."""
    a = ds[()]
    if isinstance(a, (bytes, str)):
        return py(a)
    return py(np.asarray(a, dtype=object))


def words(s):
    """Words of a string as hdistill counts them (runs of non-white-space, ASCII white space)."""
    b = s.encode("utf-8") if isinstance(s, str) else s
    return len(b.split())


def run_name(run_dir):
    p = os.path.normpath(run_dir)
    if os.path.basename(p) == "run.h5":
        p = os.path.dirname(p) or "."
    return os.path.basename(os.path.abspath(p))


def run_h5_path(run_dir):
    """run.h5 of a run directory (a path to the run.h5 itself is accepted too)."""
    if os.path.isfile(run_dir) and run_dir.endswith(".h5"):
        return run_dir
    return os.path.join(run_dir, "run.h5")


def open_h5(path, what="file"):
    """Open an HDF5 file read-only; RunError with a one-line message otherwise."""
    if not os.path.exists(path):
        raise RunError(f"{path}: no such file")
    if os.path.isdir(path):
        raise RunError(f"{path}: is a directory, not an HDF5 {what}")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        msg = one_line(e)
        if "lock" in msg.lower():
            # being written by hdistill right now: read what is there without the lock
            try:
                return h5py.File(path, "r", locking=False)
            except OSError as e2:
                msg = one_line(e2)
        if "signature" in msg or "truncated" in msg.lower() or "eof" in msg.lower():
            raise RunError(f"{path}: not a readable HDF5 file (truncated, corrupt or not HDF5: {msg})")
        if "ermission" in msg:
            raise RunError(f"{path}: permission denied")
        raise RunError(f"{path}: cannot read ({msg})")


def open_run_h5(run_dir):
    """Open RUN_DIR/run.h5 read-only and check it is a hdistill run file."""
    if not os.path.exists(run_dir):
        raise RunError(f"{run_dir}: no such run directory (hint: give the run.dir of a run, which holds run.h5)")
    path = run_h5_path(run_dir)
    if os.path.isdir(run_dir) and not os.path.exists(path):
        raise RunError(f"{path}: no such file (hint: the run has not started, or {run_dir} is not a run directory)")
    if not os.path.isdir(run_dir) and path == os.path.join(run_dir, "run.h5"):
        raise RunError(f"{run_dir}: not a directory (hint: give a run directory, the run.dir of a configuration)")
    f = open_h5(path, "run file")
    if "config" not in f or not isinstance(f["config"], h5py.Dataset):
        f.close()
        raise RunError(f"{path}: not a hdistill run file (no /config) (hint: give a run directory of hdistill train/run)")
    return f


def read_config(f, path="run.h5"):
    try:
        raw = f["/config"][()]
        return json.loads(py(raw))
    except (ValueError, TypeError) as e:
        raise RunError(f"{path}: /config is not valid JSON ({one_line(e)})")


def flatten_config(cfg):
    """{"section": {"key": v}} -> {"section.key": v}."""
    out = {}
    for sec, d in (cfg or {}).items():
        if isinstance(d, dict):
            for k, v in d.items():
                out[f"{sec}.{k}"] = v
        else:
            out[sec] = d
    return out


def config_value(cfg, key, default=None):
    sec, _, k = key.partition(".")
    d = (cfg or {}).get(sec)
    if isinstance(d, dict) and k in d:
        return d[k]
    return default


def differing_keys(configs, exclude=("run.dir",)):
    """Configuration keys whose values differ between the configurations (a missing key differs)."""
    flats = [flatten_config(c) for c in configs if c is not None]
    if len(flats) < 2:
        return []
    keys = []
    for k in sorted(set().union(*flats)):
        if k in exclude:
            continue
        vals = [json.dumps(f.get(k, None), sort_keys=True) for f in flats]
        if len(set(vals)) > 1:
            keys.append(k)
    return keys


def ordered_splits(names):
    return [s for s in SPLIT_ORDER if s in names] + sorted(s for s in names if s not in SPLIT_ORDER)


def ordered_judges(names):
    return (["critic"] if "critic" in names else []) + sorted(j for j in names if j != "critic")


class EvalSet:
    """The evaluation at ROOT (/eval or /rounds/<r>/eval): its attributes and, per split
    and judge, the attributes of EVAL_KEYS (None where a run predates one: judged,
    unjudged, lc_* and position_consistency came with the length-controlled rate)."""

    def __init__(self, root, a, results):
        self.root = root
        self.attrs = a                  # step, objective, seed, complete
        self.results = results          # {split: {judge: {attr: value}}}

    @property
    def complete(self):
        return int(self.attrs.get("complete", 0) or 0) == 1

    @property
    def step(self):
        return self.attrs.get("step")

    def splits(self):
        return ordered_splits(self.results)

    def judges(self, split=None):
        names = set()
        for s, d in self.results.items():
            if split is None or s == split:
                names.update(d)
        return ordered_judges(names)


def read_eval(f, root):
    """EvalSet of the group ROOT, or None when absent."""
    if root not in f or not isinstance(f[root], h5py.Group):
        return None
    g = f[root]
    results = {}
    for split, sg in g.items():
        if not isinstance(sg, h5py.Group):
            continue
        for judge, jg in sg.items():
            if isinstance(jg, h5py.Group) and "wtr" in jg.attrs:
                a = attrs(jg)
                results.setdefault(split, {})[judge] = {k: a.get(k) for k in EVAL_KEYS}
    return EvalSet(root, attrs(g), results)


def _numeric_key(s):
    try:
        return (0, int(s))
    except ValueError:
        return (1, s)


class Run:
    """What the analysis needs from one run.h5 (small things, read at once)."""

    def __init__(self, run_dir):
        self.dir = run_dir
        self.name = run_name(run_dir)
        self.path = run_h5_path(run_dir)
        self.error = None               # a message when the run could not be read (stub)
        self.config = None
        self.provenance = {}
        self.root_attrs = {}
        self.eval = None
        self.sft_eval = None            # /sft/eval: the SFT model (critique.eval_each_round=1)
        self.rounds = []                # [{"r", "attrs", "eval", "candidates_words"}]
        self.metrics = {}               # /metrics/train/<series> -> array
        self.val = {}                   # /metrics/val/<series> -> array
        self.usage = {}                 # role -> attributes of /usage/<role>
        self.trace = {}                 # /trace/<step|rank|kind|t0|t1> -> array (train.trace=1)

    # --- derived
    def cfg(self, key, default=None):
        return config_value(self.config, key, default)

    @property
    def last_step(self):
        s = self.metrics.get("step")
        return int(s[-1]) if s is not None and len(s) else None

    def last_metric(self, series):
        a = self.metrics.get(series)
        return py(a[-1]) if a is not None and len(a) else None

    def rounds_done(self, step):
        """Feedback rounds completed when the checkpoint of STEP was written (0 = after SFT)."""
        return sum(1 for r in self.rounds if r["attrs"].get("complete") == 1
                   and r["attrs"].get("end_step") is not None and r["attrs"]["end_step"] <= step)

    @property
    def status(self):
        if self.error:
            return "unfinished: " + self.error
        if self.eval is not None and self.eval.complete:
            if self.last_step is not None and self.eval.step is not None and self.eval.step < self.last_step:
                return f"evaluated at step {self.eval.step}, trained to step {self.last_step}"
            return "evaluated"
        if self.last_step is None:
            return "unfinished: no training step yet"
        want = int(self.cfg("critique.rounds", 0) or 0)
        done = sum(1 for r in self.rounds if r["attrs"].get("complete") == 1)
        if want > 0 and done < want:
            if self.rounds or self.root_attrs.get("sft_complete") == 1:
                return f"unfinished: critique ({done} of {want} rounds, step {self.last_step})"
            return f"unfinished: training (step {self.last_step})"
        if self.eval is not None:
            return f"unfinished: evaluation incomplete (step {self.last_step})"
        return f"unfinished: not evaluated (step {self.last_step})"

    @property
    def evaluated(self):
        return self.eval is not None and self.eval.complete

    def data_path(self):
        """The run's data.h5: its config's data.path (relative paths: to the current directory)."""
        return self.cfg("data.path")


TRACE_KINDS = ("compute", "comm", "wait", "optim")   # /trace/kind 0..3


def _union(iv):
    """Merged, sorted list of the (start, end) intervals IV."""
    out = []
    for a, b in sorted(iv):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def comm_hidden(trace, rank=None):
    """(seconds reducing gradients, of them hidden behind compute) over the steps of a
    /trace (train.trace=1), summed over ranks (or for RANK): per step and rank, the union
    of the comm intervals and its overlap with the compute interval."""
    if not trace or "kind" not in trace:
        return None
    step, rk, kind = trace["step"], trace["rank"], trace["kind"]
    t0, t1 = trace["t0"], trace["t1"]
    total = hidden = 0.0
    for key in sorted(set(zip(step.tolist(), rk.tolist()))):
        if rank is not None and key[1] != rank:
            continue
        sel = (step == key[0]) & (rk == key[1])
        comp = [(a, b) for a, b, k in zip(t0[sel], t1[sel], kind[sel]) if k == 0]
        comm = _union([(a, b) for a, b, k in zip(t0[sel], t1[sel], kind[sel]) if k == 1])
        for a, b in comm:
            total += b - a
            for c0, c1 in comp:
                hidden += max(0.0, min(b, c1) - max(a, c0))
    return total, hidden


def load_run(run_dir):
    """Read a run directory's run.h5; RunError when missing, unreadable or not a run."""
    run = Run(run_dir)
    f = open_run_h5(run_dir)
    with f:
        try:
            run.config = read_config(f, run.path)
            run.root_attrs = attrs(f)
            if "provenance" in f:
                run.provenance = attrs(f["provenance"])
            for grp, dst in (("/metrics/train", run.metrics), ("/metrics/val", run.val), ("/trace", run.trace)):
                if grp in f:
                    for k, ds in f[grp].items():
                        if isinstance(ds, h5py.Dataset):
                            dst[k] = ds[()]
            run.eval = read_eval(f, "/eval")
            run.sft_eval = read_eval(f, "/sft/eval")
            if "rounds" in f:
                for r in sorted(f["rounds"], key=_numeric_key):
                    g = f["rounds"][r]
                    if not isinstance(g, h5py.Group):
                        continue
                    info = {"r": int(r) if r.isdigit() else r, "attrs": attrs(g),
                            "eval": read_eval(f, f"/rounds/{r}/eval"), "candidate_words": None}
                    if "student/candidates" in g:
                        c = np.asarray(g["student/candidates"][()], dtype=object).ravel()
                        info["candidate_words"] = np.array([words(x) for x in c], dtype=float)
                    run.rounds.append(info)
            if "usage" in f:
                for role, obj in f["usage"].items():
                    run.usage[role] = attrs(obj)
        except (KeyError, OSError, RuntimeError) as e:
            raise RunError(f"{run.path}: cannot read ({one_line(e)})")
    return run


def stub_run(run_dir, message):
    """A Run standing for a run that could not be read (listed as unfinished)."""
    run = Run(run_dir)
    run.error = message
    return run


def load_runs(run_dirs):
    """load_run for every directory; exits 2 with the first error (names must be unique: a
    duplicate base name gets its parent directory prepended)."""
    try:
        runs = [load_run(d) for d in run_dirs]
    except RunError as e:
        fail(str(e))
    unique_names(runs)
    return runs


def unique_names(runs):
    seen = {}
    for r in runs:
        seen.setdefault(r.name, []).append(r)
    for name, rs in seen.items():
        if len(rs) > 1:
            for r in rs:
                parent = os.path.basename(os.path.dirname(os.path.abspath(os.path.normpath(r.dir))))
                r.name = f"{parent}/{name}"


def eval_outputs(run, split, root="/eval"):
    """The texts and verdicts of ROOT/<split>: {"input", "student", "reference": [str],
    "verdict": {judge: int array}, "p_ab"/"p_ba": {judge: array}}; RunError when absent."""
    f = open_run_h5(run.dir)
    with f:
        g = f"{root}/{split}"
        if g not in f:
            have = ", ".join(k for k in f[root] if isinstance(f[root][k], h5py.Group)) if root in f else ""
            raise RunError(f"{run.path}: no {g} (hint: " + (f"splits evaluated: {have})" if have else
                           "the run has not been evaluated: hdistill eval CONFIG)"))
        sg = f[g]
        out = {k: strings(sg[k]) for k in ("input", "student", "reference")}
        out["verdict"], out["p_ab"], out["p_ba"] = {}, {}, {}
        for judge, jg in sg.items():
            if isinstance(jg, h5py.Group) and "verdict" in jg:
                out["verdict"][judge] = np.asarray(jg["verdict"][()], dtype=int)
                for k in ("p_ab", "p_ba"):
                    if k in jg:
                        out[k][judge] = np.asarray(jg[k][()], dtype=float)
        return out


def teacher_usage(run):
    """(attributes of /teacher/usage in the run's data.h5, None) or (None, why not)."""
    p = run.data_path()
    if not p:
        return None, f"{run.path}: the configuration has no data.path"
    if not os.path.exists(p):
        return None, f"{p}: no such file (the data.path of {run.name}; relative paths are taken from the current directory)"
    try:
        f = open_h5(p, "data file")
    except RunError as e:
        return None, str(e)
    with f:
        if "/teacher/usage" not in f:
            return None, f"{p}: no /teacher/usage (teach has not run)"
        return attrs(f["/teacher/usage"]), None


def data_provenance(run):
    """Provenance attributes of the run's data.h5 (/provenance and /teacher/provenance)."""
    out = {}
    p = run.data_path()
    try:
        f = open_h5(p, "data file") if p else None
    except RunError:
        f = None
    if f is None:
        return out
    with f:
        for g in ("provenance", "teacher/provenance"):
            if g in f:
                out[g] = attrs(f[g])
    return out


def fmt(v, digits=None):
    """A cell value for Markdown: '' for missing/NaN, rounded floats."""
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.{digits}f}" if digits is not None else f"{v:.4g}"
    return str(v)


def csv_value(v):
    """A cell value for CSV: exact (repr) floats, '' for missing/NaN."""
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def md_table(header, rows):
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def matplotlib_pyplot():
    """pyplot with the Agg backend; a one-line error when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("matplotlib is not installed (hint: apt-get install python3-matplotlib, and run /usr/bin/python3)")
    return plt


def save_figure(plt, fig, path, summary):
    """Writes FIG to PATH (PNG), closes it and prints "wrote PATH (SUMMARY)"; exit 2 when it cannot be written."""
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        fail(f"{path}: cannot write ({e.strerror})")
    plt.close(fig)
    print(f"wrote {path} ({summary})")


def safe_filename(s):
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in s)
