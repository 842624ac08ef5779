#!/usr/bin/env bash
# t_run -- `hdistill run` end to end on the stand-in under mpirun -np 2:
# the structure and values of run.h5 (rounds, pairs, critic answers in both
# orders, DPO references, evaluation), `report --json`, a finished run
# started again does nothing, and kill -9 in the middle of a critique round
# resumes to the bitwise-identical result; two runs sharing one data.h5 at
# the same time; an unreachable critic fails clearly.
source "$(dirname "$0")/lib.sh"
CFG=configs/run-tiny.json
run() {  # run DIR: the whole method, 2 ranks x 1 thread; data.h5 shared by all runs
    OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" run "$CFG" --set run.dir="$1" --set data.path="$TMP/data.h5" >"$1.log" 2>&1
}
run "$TMP/a"
check "hdistill run exits 0" test $? -eq 0
check "run.h5: rounds, pairs, critic answers, references, evaluation" $PY - "$TMP/a/run.h5" <<'PYEOF'
import h5py, numpy as np, sys
f = h5py.File(sys.argv[1], "r")
bad = []
def need(c, msg):
    if not c: bad.append(msg)
for r in (0, 1):
    g = f[f"/rounds/{r}"]
    need(g.attrs["complete"] == 1 and g.attrs["collected"] == 1, f"round {r} complete")
    s = g["student"]
    n = len(s["input"])
    need(s["candidates"].shape == (n, 6), "candidates n x k")
    lab, pa, pb = s["label"][()], s["pair_a"][()], s["pair_b"][()]
    p_ab, p_ba, p = s["p_ab"][()], s["p_ba"][()], s["p"][()]
    has = pa >= 0
    need(np.all((pa[has] < pb[has]) & (pb[has] < 6)), "pair indices")
    need(np.all(np.isnan(p[~has])) and np.all(lab[~has] == 0), "no pair -> no judgement")
    ok = has & ~np.isnan(p)
    need(np.allclose(p[ok], (p_ab[ok] + p_ba[ok]) / 2), "p = mean of both orders")
    need(np.all((p[ok] >= 0) & (p[ok] <= 1)), "probabilities")
    need(np.all(lab[ok & (p > 0.55)] == 1) and np.all(lab[ok & (p < 0.45)] == -1), "labels follow p and the tie margin")
    raw = [x.decode() for x in s["raw_ab"][()][ok]]
    need(all("Answer" in x for x in raw), "raw critic answers stored")
    pr = g["pairs"]
    npairs = len(pr["chosen"])
    need(npairs == int(np.sum(lab != 0)) and npairs > 5, f"pairs {npairs}")
    need(np.all(np.isfinite(pr["ref_chosen"][()])) and np.all(pr["ref_chosen"][()] < 0), "DPO references")
    need(g.attrs["end_step"] > g.attrs["start_step"], "round trained")
ev = f["/eval/eval/critic"]
a = ev.attrs
need(0 <= a["wtr"] <= 100 and a["wtr_ci_low"] <= a["wtr"] <= a["wtr_ci_high"], "wtr and its interval")
need(abs(a["wtr"] - 100.0 * (a["wins"] + a["ties"]) / a["n"]) < 1e-9, "wtr = wins + ties")
v = ev["verdict"][()]
need(set(np.unique(v)) <= {-1, 0, 1} and len(v) == a["n"] == len(f["/eval/eval/student"]), "verdicts")
need("/eval/ood/critic" in f, "ood split evaluated")
need(len(f["/metrics/train/loss"]) == f["/metrics/train/step"][-1], "one loss per step, SFT and rounds")
print("run.h5 problems:", bad)
sys.exit(1 if bad else 0)
PYEOF
json=$("$HD" report "$TMP/a" --json)
check "report --json" $PY -c "
import json,sys; d=json.loads(sys.argv[1]); c=d['splits']['eval']['critic']
sys.exit(0 if d['objective']=='dpo' and d['seed']==1 and all(k in c for k in ('wtr','wtr_ci_low','wtr_ci_high','position_bias')) else 1)" "$json"
t0=$SECONDS
run "$TMP/a"
check "a finished run started again skips every stage" grep -q "already evaluated" "$TMP/a.log"
check "... quickly" test $((SECONDS - t0)) -lt 30

# kill -9 inside a critique round, then resume
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" run "$CFG" --set run.dir="$TMP/k" --set data.path="$TMP/data.h5" >"$TMP/k.log" 2>&1 &
pid=$!
killed=0
for _ in $(seq 1 1500); do
    if grep -q "round 1 phase dpo" "$TMP/k.log" 2>/dev/null && [[ $(grep -c "^checkpoint" "$TMP/k.log") -ge 6 ]]; then
        pkill -9 -f "run.dir=$TMP/k" && killed=1; break
    fi
    sleep 0.05
done
wait $pid 2>/dev/null
check "killed inside round 1" test $killed -eq 1 -a "$(grep -c 'round 1 complete' "$TMP/k.log")" -eq 0
run "$TMP/k"
check "resumed run exits 0" test $? -eq 0
check "resume picked up round 1 from its stored data" grep -q "round 1: resuming" "$TMP/k.log"
check "kill + resume: identical loss curve" h5cmp "$TMP/k/run.h5" "$TMP/a/run.h5" /metrics/train/loss exact
check "kill + resume: identical pairs" $PY -c "
import h5py,sys; a=h5py.File('$TMP/a/run.h5','r'); b=h5py.File('$TMP/k/run.h5','r')
sys.exit(0 if all(list(a[f'/rounds/{r}/pairs/chosen'][()])==list(b[f'/rounds/{r}/pairs/chosen'][()]) for r in (0,1)) else 1)"
check "kill + resume: identical evaluation" h5cmp "$TMP/k/run.h5" "$TMP/a/run.h5" /eval/eval/critic/verdict exact

# --dry-run of critique and eval: a plan, nothing run, nothing written
before=$(md5sum "$TMP/a/run.h5" | cut -d' ' -f1; ls "$TMP/a/ckpt" | tr '\n' ' ')
out=$(OMP_NUM_THREADS=1 "$HD" critique "$CFG" --set run.dir="$TMP/a" --set data.path="$TMP/data.h5" --set critique.rounds=3 --dry-run 2>&1)
check "critique --dry-run: exit 0 and a plan (round 2 to do)" grep -q "round 2: to do" <<<"$out"
out=$(OMP_NUM_THREADS=1 "$HD" eval "$CFG" --set run.dir="$TMP/a" --set data.path="$TMP/data.h5" --dry-run 2>&1)
check "eval --dry-run: exit 0, already evaluated" grep -q "already evaluated" <<<"$out"
after=$(md5sum "$TMP/a/run.h5" | cut -d' ' -f1; ls "$TMP/a/ckpt" | tr '\n' ' ')
check "critique/eval --dry-run changed nothing" test "$before" = "$after"

# two runs at once on one data.h5 (as the rows of a sweep array do): no lock conflicts
for x in p1 p2; do
    OMP_NUM_THREADS=1 "$HD" run "$CFG" --set run.dir="$TMP/$x" --set data.path="$TMP/data.h5" --set critique.rounds=1 \
        --set train.seed=${x#p} >"$TMP/$x.log" 2>&1 &
done
rc1=0; rc2=0
wait %1 || rc1=$?
wait %2 || rc2=$?
check "two concurrent runs sharing data.h5 both exit 0 ($rc1, $rc2)" test $rc1 -eq 0 -a $rc2 -eq 0
check "... and both evaluated" $PY -c "
import h5py,sys; sys.exit(0 if all(h5py.File(f'$TMP/{x}/run.h5','r')['/eval'].attrs['complete']==1 for x in ('p1','p2')) else 1)"

# an unreachable critic: a clear error and exit 1 (not "stopped", which would requeue forever), and
# no round stored as judged
OMP_NUM_THREADS=1 "$HD" run "$CFG" --set run.dir="$TMP/u" --set data.path="$TMP/data.h5" \
    --set critic.base_url=http://127.0.0.1:9/v1 --set critic.retries=2 --set critic.backoff=0.05 >"$TMP/u.log" 2>&1
rc=$?
check "unreachable critic: exit 1 (got $rc)" test $rc -eq 1
check "unreachable critic: says unreachable and that requests failed" \
    grep -q "critic: .* requests failed after their retries (first: connect" "$TMP/u.log"
check "unreachable critic: not reported as stopped" test "$(grep -c 'stopped while judging' "$TMP/u.log")" -eq 0
check "unreachable critic: round 0 not stored as judged" $PY -c "
import h5py,sys; f=h5py.File('$TMP/u/run.h5','r'); sys.exit(0 if '/rounds/0/pairs' not in f and ('/rounds/0' not in f or f['/rounds/0'].attrs.get('collected',0)==0) else 1)"

finish
