#!/usr/bin/env bash
# t_analysis -- the analysis suite (analysis/*.py) on two real tiny runs
# (configs/run-tiny.json under mpirun -np 2, evaluated after every round):
# summarize.py's numbers equal run.h5 / data.h5, plots.py draws the expected
# lines into valid non-blank PNGs, sweep_report.py over a sweep directory of
# symlinks, the blinded human evaluation round trip (export -> annotate ->
# import) with known agreement, and one-line errors (exit 2) for bad inputs.
source "$(dirname "$0")/lib.sh"

AN=$ROOT/analysis
DATA=$TMP/data.h5
printf '{"judges": [{"name": "j2", "base_url": "standin", "temperature": 0}]}\n' >"$TMP/judges.json"
mkrun() {  # mkrun DIR [--set ...]: the whole pipeline, evaluated after every round
    local dir=$1; shift
    OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" run configs/run-tiny.json --set run.dir="$dir" --set data.path="$DATA" \
        --set critique.eval_each_round=1 "$@" >"$dir.log" 2>&1
}
mkrun "$TMP/ra" --set train.seed=1 --set critique.objective=dpo
check "run ra (dpo, seed 1) exits 0" test $? -eq 0
mkrun "$TMP/rb" --set train.seed=2 --set critique.objective=brio --set eval.judges="$TMP/judges.json"
check "run rb (brio, seed 2, extra judge j2) exits 0" test $? -eq 0

# --- a run without evaluation, and one without rounds and evaluation (copies of ra's run.h5)
mkdir -p "$TMP/noeval" "$TMP/sft"
$PY - "$TMP" <<'EOF'
import h5py, shutil, sys
t = sys.argv[1]
for d, drop in (("noeval", ["eval"]), ("sft", ["eval", "rounds", "sft"])):
    shutil.copy(f"{t}/ra/run.h5", f"{t}/{d}/run.h5")
    with h5py.File(f"{t}/{d}/run.h5", "a") as f:
        for g in drop:
            del f[g]
EOF

# ============================================================ summarize.py
$PY "$AN/summarize.py" "$TMP/ra" "$TMP/rb" --csv "$TMP/sum.csv" --md "$TMP/sum.md" >"$TMP/sum.out" 2>"$TMP/sum.err"
check "summarize exits 0" test $? -eq 0
check "summarize CSV: one row per run; wtr/CI/biases/words/n equal the /eval attributes, times/tokens/loss the last \
metrics, usage the /usage and data.h5 /teacher/usage attributes" $PY - "$TMP" <<'EOF'
import csv, h5py, json, sys
t = sys.argv[1]
rows = list(csv.DictReader(open(f"{t}/sum.csv")))
bad = []
def eq(name, got, want):
    try:
        ok = got != "" and float(got) == float(want)
    except ValueError:
        ok = False
    if not ok:
        bad.append(f"{name}: csv {got!r} != h5 {want!r}")
if [r["run"] for r in rows] != ["ra", "rb"]:
    sys.exit(f"runs {[r['run'] for r in rows]}")
checked = 0
agreements = set()
for r in rows:
    f = h5py.File(f"{t}/{r['run']}/run.h5", "r")
    cfg = json.loads(f["/config"][()])
    if r["objective"] != f["/eval"].attrs["objective"].decode() or r["critique.objective"] != cfg["critique"]["objective"]:
        bad.append(f"{r['run']}: objective {r['objective']}")
    eq(r["run"] + " seed", r["seed"], f["/eval"].attrs["seed"])
    eq(r["run"] + " train.seed", r["train.seed"], cfg["train"]["seed"])
    eq(r["run"] + " eval_step", r["eval_step"], f["/eval"].attrs["step"])
    for split in ("eval", "ood"):
        for judge, g in f["/eval/" + split].items():
            if not isinstance(g, h5py.Group):
                continue
            if judge == "agreement":
                # two judges: Cohen's kappa and Kendall's tau of every pair, over the inputs both judged
                for pair, a in g.items():
                    nb = int(a["n_both"][0])
                    if not 0 < nb <= len(f[f"/eval/{split}/input"]) or not -1 <= a.attrs["kappa"] <= 1 \
                            or not -1 <= a.attrs["kendall_tau"] <= 1:
                        bad.append(f"{r['run']} {split} agreement {pair}: n_both {nb} kappa {a.attrs['kappa']}")
                    checked += 1
                    agreements.add((r["run"], split, pair))
                continue
            for k in ("wtr", "wtr_ci_low", "wtr_ci_high", "lc_winrate", "lc_ci_low", "lc_ci_high", "position_bias",
                      "position_consistency", "length_bias", "student_words", "reference_words", "n", "judged"):
                eq(f"{r['run']} {split}.{judge}.{k}", r[f"{split}.{judge}.{k}"], g.attrs[k]); checked += 1
    m = f["/metrics/train"]
    eq(r["run"] + " steps", r["steps"], m["step"][-1])
    eq(r["run"] + " train_time_s", r["train_time_s"], m["time"][-1])
    eq(r["run"] + " loss_tokens", r["loss_tokens"], m["tokens"][-1])
    eq(r["run"] + " final_loss", r["final_loss"], m["loss"][-1])
    for role, u in f["/usage"].items():
        for k in ("requests", "eval_requests", "cache_hits", "prompt_tokens", "completion_tokens"):
            if k in u.attrs:
                eq(f"{r['run']} usage.{role}.{k}", r[f"usage.{role}.{k}"], u.attrs[k]); checked += 1
    tu = h5py.File(cfg["data"]["path"], "r")["/teacher/usage"].attrs
    for k in ("requests", "cache_hits", "prompt_tokens", "completion_tokens"):
        eq(f"{r['run']} usage.teacher.{k}", r[f"usage.teacher.{k}"], tu[k]); checked += 1
if {a for a in agreements if a[0] == "rb"} != {("rb", "eval", "critic__j2"), ("rb", "ood", "critic__j2")} \
        or any(a[0] == "ra" for a in agreements):
    bad.append(f"agreement groups: {sorted(agreements)} (expected critic__j2 for both splits of rb only)")
if rows[0]["eval.j2.wtr"] != "" or rows[1]["eval.j2.wtr"] == "":
    bad.append("judge j2: empty for ra, present for rb expected")
if float(rows[0]["usage.teacher.requests"]) <= 0 or float(rows[0]["eval.critic.n"]) <= 0:
    bad.append("no teacher requests or no eval items")
print(checked, "values compared")
if bad:
    sys.exit("\n".join(bad))
EOF
check "summarize default keys: the differing keys (objective, seed, judges) and the defaults, not run.dir" $PY - "$TMP/sum.csv" <<'EOF'
import csv, sys
h = next(csv.reader(open(sys.argv[1])))
want = ["critique.objective", "eval.judges", "train.seed", "critique.beta", "critique.rounds", "train.lr"]
sys.exit(0 if all(k in h for k in want) and "run.dir" not in h and "data.path" not in h else f"header {h}")
EOF
check "summarize Markdown on stdout: a row per run with the rounded wtr, same as --md" $PY - "$TMP" <<'EOF'
import h5py, sys
t = sys.argv[1]
out = open(f"{t}/sum.out").read()
ok = out == open(f"{t}/sum.md").read()
for r in ("ra", "rb"):
    w = h5py.File(f"{t}/{r}/run.h5", "r")["/eval/eval/critic"].attrs["wtr"]
    line = [l for l in out.splitlines() if l.startswith(f"| {r} | evaluated |")]
    ok = ok and len(line) == 1 and f" {w:.1f} |" in line[0]
sys.exit(0 if ok else 1)
EOF
$PY "$AN/summarize.py" "$TMP/ra" "$TMP/rb" --keys train.lr,model.preset --csv "$TMP/keys.csv" >/dev/null 2>&1
check "summarize --keys replaces the key columns" $PY -c "
import csv,sys; h=next(csv.reader(open('$TMP/keys.csv')))
sys.exit(0 if h[5:8]==['train.lr','model.preset','eval.critic.wtr'] else h)"
err=$($PY "$AN/summarize.py" "$TMP/ra" --keys train.nope 2>&1 >/dev/null); rc=$?
check "summarize --keys with an unknown key: exit 2, names it (got $rc: $err)" test $rc -eq 2 -a "$(grep -c 'train.nope' <<<"$err")" -eq 1
$PY "$AN/summarize.py" "$TMP/ra" "$TMP/noeval" --csv "$TMP/ne.csv" >/dev/null 2>"$TMP/ne.err"
check "summarize: a run without evaluation exits 0" test $? -eq 0
check "summarize: ...gets a row with empty evaluation cells and the training numbers" $PY - "$TMP" <<'EOF'
import csv, h5py, sys
t = sys.argv[1]
rows = list(csv.DictReader(open(f"{t}/ne.csv")))
r = rows[1]
last = h5py.File(f"{t}/noeval/run.h5", "r")["/metrics/train/tokens"][-1]
ok = len(rows) == 2 and r["run"] == "noeval" and r["eval.critic.wtr"] == "" and r["objective"] == "" \
    and r["status"].startswith("unfinished") and float(r["loss_tokens"]) == last and rows[0]["eval.critic.wtr"] != ""
sys.exit(0 if ok else rows)
EOF
check "summarize: ...and a warning naming it on stderr" grep -q 'warning: noeval: no complete evaluation' "$TMP/ne.err"

# ============================================================ errors: one line, exit 2, naming the file
mkdir -p "$TMP/bad" "$TMP/empty"
echo "this is not HDF5" >"$TMP/bad/run.h5"
one_line_error() {  # one_line_error WANT_IN_MESSAGE CMD...: exit 2, exactly one line on stderr naming it, no traceback
    local want=$1; shift
    local err rc
    err=$("$@" 2>&1 >/dev/null); rc=$?
    [[ $rc -eq 2 && $(wc -l <<<"$err") -eq 1 && $err == error:* && $err == *"$want"* && $err != *Traceback* ]] ||
        { echo "rc=$rc stderr: $err" >&2; return 1; }
}
check "summarize: missing run directory -> exit 2, one line naming it" \
    one_line_error "$TMP/nope" $PY "$AN/summarize.py" "$TMP/ra" "$TMP/nope"
check "summarize: run.h5 not HDF5 -> exit 2, one line naming the file" \
    one_line_error "$TMP/bad/run.h5" $PY "$AN/summarize.py" "$TMP/bad"
check "summarize: directory without run.h5 -> exit 2, one line naming the file" \
    one_line_error "$TMP/empty/run.h5" $PY "$AN/summarize.py" "$TMP/empty"
check "plots: run.h5 not HDF5 -> exit 2, one line naming the file" \
    one_line_error "$TMP/bad/run.h5" $PY "$AN/plots.py" "$TMP/bad" --out "$TMP/badfig"
check "human_eval export: run.h5 not HDF5 -> exit 2, one line naming the file" \
    one_line_error "$TMP/bad/run.h5" $PY "$AN/human_eval.py" export "$TMP/bad" --out "$TMP/x.csv"
check "human_eval export: missing run directory -> exit 2" \
    one_line_error "$TMP/nope" $PY "$AN/human_eval.py" export "$TMP/nope" --out "$TMP/x.csv"
check "human_eval export: run without evaluation -> exit 2, names the file" \
    one_line_error "$TMP/noeval/run.h5" $PY "$AN/human_eval.py" export "$TMP/noeval" --out "$TMP/x.csv"
check "sweep_report: missing sweep directory -> exit 2" \
    one_line_error "$TMP/nosweep" $PY "$AN/sweep_report.py" "$TMP/nosweep" --out "$TMP/r"

# ============================================================ plots.py
$PY "$AN/plots.py" "$TMP/ra" "$TMP/rb" --out "$TMP/fig" --data "$TMP/fig.csv" >"$TMP/fig.out" 2>"$TMP/fig.err"
check "plots exits 0" test $? -eq 0
check "plots: the plotted values (--data) are run.h5's: loss per step, round starts, WTR + CI per round, mean words" \
    $PY - "$TMP" <<'EOF2'
import csv, h5py, numpy as np, sys
t = sys.argv[1]
rows = list(csv.DictReader(open(f"{t}/fig.csv")))
num = lambda v: float(v) if v != "" else None
def got(fig, run, series=None):
    return [(num(r["x"]), num(r["y"]), num(r["y_low"]), num(r["y_high"])) for r in rows
            if r["figure"] == fig and r["run"] == run and (series is None or r["series"] == series)]
bad = []
for r in ("ra", "rb"):
    f = h5py.File(f"{t}/{r}/run.h5", "r")
    m = f["/metrics/train"]
    if got("loss", r, "loss") != [(float(s), float(l), None, None) for s, l in zip(m["step"][()], m["loss"][()])]:
        bad.append(f"{r}: loss")
    rounds = sorted(f["/rounds"], key=int)
    starts = [float(q["x"]) for q in rows if q["figure"] == "loss" and q["run"] == r and q["series"].startswith("round ")]
    if starts != [float(f[f"/rounds/{k}"].attrs["start_step"]) for k in rounds]:
        bad.append(f"{r}: round starts {starts}")
    # the SFT model (/sft/eval) is round 0; eval after round k = k+1 rounds done; the final /eval
    # (after all of them) replaces the last
    want = {0: f["/sft/eval/eval/critic"].attrs}
    want.update({int(k) + 1: f[f"/rounds/{k}/eval/eval/critic"].attrs for k in rounds})
    want[len(rounds)] = f["/eval/eval/critic"].attrs
    w = [(float(x), a["wtr"], a["wtr_ci_low"], a["wtr_ci_high"]) for x, a in sorted(want.items())]
    if got("wtr_by_round", r, "eval/critic") != w:
        bad.append(f"{r}: wtr {got('wtr_by_round', r)} != {w}")
    cw = [(float(k), float(np.mean([len(s.split()) for s in f[f"/rounds/{k}/student/candidates"][()].ravel()])), None, None)
          for k in rounds]
    if got("length_by_round", r, "candidates") != cw:
        bad.append(f"{r}: candidate words")
    ew = [(x, a["student_words"], None, None) for x, _, _, _ in w for a in [want[int(x)]]]
    if got("length_by_round", r, "eval outputs") != ew:
        bad.append(f"{r}: eval output words {got('length_by_round', r, 'eval outputs')} != {ew}")
if bad:
    sys.exit("\n".join(bad))
EOF2
check "plots: three valid, non-blank PNGs" $PY - "$TMP/fig" <<'EOF'
import sys, numpy as np, matplotlib.image as mpimg
for n in ("loss.png", "wtr_by_round.png", "length_by_round.png"):
    p = f"{sys.argv[1]}/{n}"
    if open(p, "rb").read(8) != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{n}: not a PNG")
    im = mpimg.imread(p)
    if im.ndim != 3 or im.shape[0] < 200 or im.shape[1] < 300 or float(im[..., :3].std()) < 0.02:
        sys.exit(f"{n}: blank or tiny {im.shape}")
EOF
check "plots: drew what run.h5 holds (a loss line per run, a marker per round, the round/final evaluations)" \
    $PY - "$TMP" <<'EOF'
import h5py, re, sys
t = sys.argv[1]
out = open(f"{t}/fig.out").read()
rounds = evals = cand = 0
for r in ("ra", "rb"):
    f = h5py.File(f"{t}/{r}/run.h5", "r")
    rounds += len(f["/rounds"])
    cand += sum(1 for g in f["/rounds"].values() if "student/candidates" in g)
    steps = {f[f"/rounds/{k}/eval"].attrs["step"] for k in f["/rounds"] if f"/rounds/{k}/eval/eval/critic" in f}
    steps.add(f["/eval"].attrs["step"])
    steps.add(f["/sft/eval"].attrs["step"])
    evals += len(steps)
want = [f"loss.png (lines=2 round_markers={rounds})",
        f"wtr_by_round.png (series=2 points={evals} split=eval judge=critic)",
        f"length_by_round.png (lines=4 points={cand + evals} reference_lines=1)"]
miss = [w for w in want if w not in out]
print(out, "expected:", want, sep="\n")
sys.exit(1 if miss or rounds != 4 else 0)
EOF
$PY "$AN/plots.py" "$TMP/sft" --out "$TMP/fig2" >"$TMP/fig2.out" 2>"$TMP/fig2.err"
check "plots: a run without rounds/eval: loss.png only, the other figures skipped with a note" \
    test $? -eq 0 -a -f "$TMP/fig2/loss.png" -a ! -e "$TMP/fig2/wtr_by_round.png" -a ! -e "$TMP/fig2/length_by_round.png" \
    -a "$(grep -c '^note: .*skipped' "$TMP/fig2.err")" -eq 2

# ============================================================ sweep_report.py
mkdir -p "$TMP/sweep"
ln -s "$TMP/ra" "$TMP/sweep/row-0"
ln -s "$TMP/rb" "$TMP/sweep/row-1"
touch "$TMP/sweep/row-0-123.out"   # the job logs of a real sweep live there too
$PY "$AN/sweep_report.py" "$TMP/sweep" --out "$TMP/sweep/report" >"$TMP/sw.out" 2>"$TMP/sw.err"
check "sweep_report exits 0" test $? -eq 0
check "sweep_report: summary.csv has 2 rows (row-0, row-1) with the runs' numbers" $PY - "$TMP" <<'EOF'
import csv, h5py, sys
t = sys.argv[1]
rows = list(csv.DictReader(open(f"{t}/sweep/report/summary.csv")))
ok = [r["run"] for r in rows] == ["row-0", "row-1"]
for r, d in zip(rows, ("ra", "rb")):
    a = h5py.File(f"{t}/{d}/run.h5", "r")["/eval/eval/critic"].attrs
    ok = ok and float(r["eval.critic.wtr"]) == a["wtr"] and float(r["eval.critic.wtr_ci_high"]) == a["wtr_ci_high"]
sys.exit(0 if ok else rows)
EOF
check "sweep_report: report.md has the table and links existing PNG figures, incl. the objective x seed heat map" \
    $PY - "$TMP/sweep/report" <<'EOF'
import os, re, sys
d = sys.argv[1]
md = open(f"{d}/report.md").read()
links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
ok = "heatmap_critique.objective__train.seed.png" in links and "| row-0 | evaluated |" in md and "| row-1 | evaluated |" in md
for l in links:
    p = os.path.join(d, l)
    ok = ok and os.path.isfile(p) and open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
print(links)
sys.exit(0 if ok else 1)
EOF
check "sweep_report: the heat map cell values are the rows' WTR (one row per cell)" \
    grep -q "heatmap_critique.objective__train.seed.png (cells=2 of 4)" "$TMP/sw.out"
mkdir -p "$TMP/sweep/row-2"
$PY "$AN/sweep_report.py" "$TMP/sweep" --out "$TMP/sweep/report2" >/dev/null 2>&1
check "sweep_report: a row that has not started is listed as unfinished" \
    grep -q "^- row-2: unfinished: not started" "$TMP/sweep/report2/report.md"
check "sweep_report: ...and has its own row in summary.csv" test "$($PY -c "
import csv; print(len(list(csv.DictReader(open('$TMP/sweep/report2/summary.csv')))))")" = 3

# ============================================================ human_eval.py
$PY "$AN/human_eval.py" export "$TMP/ra" "$TMP/rb" --out "$TMP/he.csv" --seed 7 >"$TMP/he.out" 2>&1
check "human_eval export exits 0 and prints the key's path" grep -q "$TMP/he.key.csv" "$TMP/he.out"
check "human_eval export: blinded file: the annotators' columns, a row per (run, input), nothing revealing the side" \
    $PY - "$TMP" <<'EOF'
import csv, h5py, re, sys
t = sys.argv[1]
rows = list(csv.reader(open(f"{t}/he.csv")))
key = list(csv.DictReader(open(f"{t}/he.key.csv")))
n = sum(len(h5py.File(f"{t}/{r}/run.h5", "r")["/eval/eval/input"]) for r in ("ra", "rb"))
ok = rows[0] == ["id", "input", "A", "B", "funnier", "a_keeps_meaning", "b_keeps_meaning"] and len(rows) == n + 1
# everything but the literal texts (input, A, B): no side, no role, no run name
rest = " ".join(",".join([r[0]] + r[4:]) for r in rows)
ok = ok and not re.search(r"student|teacher|reference|\bra\b|\brb\b", rest, re.I)
ok = ok and all(r[4:] == ["", "", ""] for r in rows[1:])
sides = [k["student_side"] for k in key]
ok = ok and len(key) == n and set(sides) == {"A", "B"} and [k["id"] for k in key] == [r[0] for r in rows[1:]]
sys.exit(0 if ok else 1)
EOF
check "human_eval export: the key un-blinds to the run's student output and teacher reference" $PY - "$TMP" <<'EOF'
import csv, h5py, sys
t = sys.argv[1]
blind = {r["id"]: r for r in csv.DictReader(open(f"{t}/he.csv"))}
for k in csv.DictReader(open(f"{t}/he.key.csv")):
    g = h5py.File(k["run_dir"] + "/run.h5", "r")["/eval/" + k["split"]]
    i = int(k["index"])
    s, ref = g["student"].asstr()[i], g["reference"].asstr()[i]
    b = blind[k["id"]]
    A, B = (s, ref) if k["student_side"] == "A" else (ref, s)
    if (b["input"], b["A"], b["B"]) != (g["input"].asstr()[i], A, B):
        sys.exit(f"id {k['id']}")
EOF
$PY "$AN/human_eval.py" export "$TMP/ra" "$TMP/rb" --out "$TMP/he_again.csv" --seed 7 >/dev/null 2>&1
check "human_eval export: same seed, same file" cmp -s "$TMP/he.csv" "$TMP/he_again.csv"
$PY "$AN/human_eval.py" export "$TMP/ra" "$TMP/rb" --out "$TMP/he5.csv" --key "$TMP/he5.k.csv" --seed 7 --limit 5 >/dev/null 2>&1
check "human_eval export --limit 5: 5 inputs per run, the same inputs for both runs" $PY - "$TMP" <<'EOF'
import csv, sys
key = list(csv.DictReader(open(sys.argv[1] + "/he5.k.csv")))
per = {r: sorted(int(k["index"]) for k in key if k["run"] == r) for r in ("ra", "rb")}
sys.exit(0 if len(key) == 10 and per["ra"] == per["rb"] and len(set(per["ra"])) == 5 else per)
EOF
# the annotators (rule.py, by the critic's verdict v on item i): when the critic says the student
# wins they prefer the student's side (a tie on every 5th item), when it loses the other side (a tie
# on every 4th), when it ties they tie on even items and prefer the other side on odd ones; so every
# item both call decisive agrees. The student keeps the meaning on even items, the reference always.
cat >"$TMP/rule.py" <<'EOF'
def human(v, i):
    if v == 1:
        return 0 if i % 5 == 0 else 1
    if v == -1:
        return 0 if i % 4 == 0 else -1
    return 0 if i % 2 == 0 else -1
EOF
$PY - "$TMP" <<'EOF'
import csv, h5py, sys
t = sys.argv[1]
sys.path.insert(0, t)
from rule import human
key = {k["id"]: k for k in csv.DictReader(open(f"{t}/he.key.csv"))}
rows = list(csv.DictReader(open(f"{t}/he.csv")))
for r in rows:
    k = key[r["id"]]
    i, side = int(k["index"]), k["student_side"]
    v = h5py.File(k["run_dir"] + "/run.h5", "r")[f"/eval/{k['split']}/critic/verdict"][i]
    other = "B" if side == "A" else "A"
    r["funnier"] = {1: side, 0: "tie", -1: other}[human(v, i)]
    keep = {side: "yes" if i % 2 == 0 else "no", other: "yes"}
    r["a_keeps_meaning"], r["b_keeps_meaning"] = keep["A"], keep["B"]
with open(f"{t}/he_filled.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
EOF
$PY "$AN/human_eval.py" import "$TMP/he_filled.csv" --key "$TMP/he.key.csv" "$TMP/ra" "$TMP/rb" --out "$TMP/he.md" >/dev/null 2>"$TMP/he.err"
check "human_eval import exits 0" test $? -eq 0
check "human_eval import: critic 100 % on decisive items; agreement, human and judge WTR, meaning, biases as computed \
from run.h5" $PY - "$TMP" <<'EOF'
import h5py, numpy as np, sys
t = sys.argv[1]
sys.path.insert(0, t)
from rule import human
md = open(f"{t}/he.md").read()
def row(prefix):
    got = [l for l in md.splitlines() if l.startswith(prefix)]
    if len(got) != 1:
        sys.exit(f"no single row {prefix!r}:\n{md}")
    return [c.strip() for c in got[0].strip("|").split("|")]
pct = lambda a, n: f"{100 * a / n:.1f}"
V, H, E, pbn, lbd = [], [], 0, [], []
for r in ("ra", "rb"):
    g = h5py.File(f"{t}/{r}/run.h5", "r")["/eval/eval"]
    v = g["critic/verdict"][()]
    h = np.array([human(x, i) for i, x in enumerate(v)])
    n, even = len(v), (len(v) + 1) // 2
    a = g["critic"].attrs
    ws = np.array([len(s.split()) for s in g["student"][()]])
    wr = np.array([len(s.split()) for s in g["reference"][()]])
    pbn.append((a["position_bias"], a["n"]))
    lbd.append((a["length_bias"], np.sum((v != 0) & (ws != wr))))
    pr = row(f"| {r} | eval | critic |")
    want = [r, "eval", "critic", str(n), pct(np.sum(h == v), n), "100.0", pct(np.sum(v >= 0), n),
            pct(np.sum(h >= 0), n), pct(even, n), f"{a['position_bias']:.3f}", f"{a['length_bias']:.3f}"]
    if pr != want:
        sys.exit(f"{pr} != {want}")
    V.append(v), H.append(h)
    E += even
v, h = np.concatenate(V), np.concatenate(H)
n = len(v)
dec = (v != 0) & (h != 0)
pb = sum(x * m for x, m in pbn) / sum(m for _, m in pbn)
lb = sum(x * d for x, d in lbd) / sum(d for _, d in lbd)
want = ["critic", str(n), pct(np.sum(h == v), n), str(np.sum(dec)), "100.0", pct(np.sum(v >= 0), n), f"{pb:.3f}", f"{lb:.3f}"]
if row("| critic |") != want:
    sys.exit(f"{row('| critic |')} != {want}")
if not (0 < np.sum(h == v) < n and np.sum(h == 0) > 0):
    sys.exit("the rule should give ties and disagreements")
hu = row("| humans |")
if hu[1] != str(n) or hu[5] != pct(np.sum(h >= 0), n):
    sys.exit(f"humans {hu}")
if row("| student |")[1:] != [str(n), pct(E, n)] or row("| teacher reference |")[1:] != [str(n), "100.0"]:
    sys.exit("meaning rows")
nb = len(h5py.File(f"{t}/rb/run.h5", "r")["/eval/eval/input"])
if row("| j2 |")[1] != str(nb):
    sys.exit(f"j2 {row('| j2 |')}")
EOF
# mismatches between the filled file and its key, bad labels, missing columns
$PY - "$TMP" <<'EOF'
import csv, sys
t = sys.argv[1]
rows = list(csv.DictReader(open(f"{t}/he_filled.csv")))
cols = list(rows[0])
def write(name, rs, cs=cols):
    with open(f"{t}/{name}", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cs, extrasaction="ignore")
        w.writeheader()
        w.writerows(rs)
write("he_short.csv", rows[:-1])
write("he_badlabel.csv", [dict(rows[0], funnier="C")] + rows[1:])
write("he_badmeaning.csv", rows[:3] + [dict(rows[3], b_keeps_meaning="maybe")] + rows[4:])
write("he_nocol.csv", rows, [c for c in cols if c != "b_keeps_meaning"])
write("he_badid.csv", [dict(rows[0], id="9999")] + rows[1:])
EOF
imp() { $PY "$AN/human_eval.py" import "$1" --key "${2:-$TMP/he.key.csv}" "$TMP/ra" "$TMP/rb"; }
check "human_eval import: a row missing -> exit 2, counts named" one_line_error "has $(( $(wc -l <"$TMP/he.key.csv") - 2 )) rows" imp "$TMP/he_short.csv"
check "human_eval import: funnier 'C' -> exit 2, names the column" one_line_error "funnier is 'C'" imp "$TMP/he_badlabel.csv"
check "human_eval import: meaning 'maybe' -> exit 2" one_line_error "b_keeps_meaning is 'maybe'" imp "$TMP/he_badmeaning.csv"
check "human_eval import: a missing column -> exit 2, names it" one_line_error "missing column(s) b_keeps_meaning" imp "$TMP/he_nocol.csv"
check "human_eval import: an id not in the key -> exit 2" one_line_error "id '9999' is not in" imp "$TMP/he_badid.csv"
$PY "$AN/human_eval.py" export "$TMP/ra" "$TMP/rb" --out "$TMP/he_s8.csv" --seed 8 >/dev/null 2>&1
check "human_eval import: the key of another export (other seed) -> exit 2" \
    one_line_error "differ from the exported texts" imp "$TMP/he_filled.csv" "$TMP/he_s8.key.csv"

# ============================================================ train_curves.py still works on a full run
$PY "$AN/train_curves.py" "$TMP/ra" "$TMP/rb" >/dev/null
check "train_curves.py on critique runs exits 0" test $? -eq 0

finish
