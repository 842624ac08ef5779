#!/usr/bin/env bash
# t_lock -- one run, one owner; run.h5 readable at every moment:
#  - a second `hdistill train` on a live run directory exits 2 with one line
#    naming the directory and the owner (PID, host), on every rank under
#    mpirun -np 2, and changes nothing (no file added, renamed or
#    quarantined; the first run ends as an uninterrupted run does);
#  - with run.lock_wait it waits for the owner and then carries on;
#  - after kill -9 the lock is gone at once: a restart resumes, bitwise;
#  - two teach processes on one data.h5: the second exits 2 naming data.h5;
#  - run.h5 read with h5py in a loop during a run never fails and its loss
#    curve grows; right after kill -9 it opens and holds a prefix of the
#    uninterrupted curve.
source "$(dirname "$0")/lib.sh"

PAIRS=$TMP/pairs.jsonl
$PY tools/make_pairs.py 1500 "$PAIRS"
CFG=configs/sft-tiny.json
common=(--set data.pairs="$PAIRS" --set train.seed=5 --set train.ckpt_every=50 --set run.commit_seconds=0.2)
train() {  # train DIR STEPS [args...]: one rank, one thread
    local dir=$1 steps=$2; shift 2
    OMP_NUM_THREADS=1 "$HD" train "$CFG" "${common[@]}" --set train.steps="$steps" --set run.dir="$dir" "$@"
}
wait_for() {  # wait_for FILE: up to 60 s
    for _ in $(seq 1 600); do [[ -e $1 ]] && return 0; sleep 0.1; done
    return 1
}
listing() { (cd "$1" && find . -print | sort); }

# the uninterrupted reference
train "$TMP/ref" 600 >"$TMP/ref.log" 2>&1
check "reference run exits 0" test $? -eq 0

# --- a second process on a live run
OMP_NUM_THREADS=1 "$HD" train "$CFG" "${common[@]}" --set train.steps=600 --set run.dir="$TMP/a" >"$TMP/a.log" 2>&1 &
pa=$!  # hdistill's own PID (a simple command run in the background is exec'ed)
wait_for "$TMP/a/run.h5"
check "run.h5 is published early in a run" test -f "$TMP/a/run.h5"
before=$(listing "$TMP/a" | grep -v '\.tmp$\|ckpt/step_')
err=$(train "$TMP/a" 600 2>&1 >/dev/null); rc=$?
check "second process: exit 2 (got $rc)" test $rc -eq 2
check "second process: one line" test "$(grep -c . <<<"$err")" -eq 1
check "second process: names the run directory and the owner's PID and host" \
    grep -q "$TMP/a: in use by PID $pa on host $(hostname)" <<<"$err"
after=$(listing "$TMP/a" | grep -v '\.tmp$\|ckpt/step_')
check "second process: changed nothing (same files)" test "$before" = "$after"
wait $pa; rc=$?
check "the owner ends normally (exit $rc)" test $rc -eq 0
check "the owner's curve is the uninterrupted curve" h5cmp "$TMP/a/run.h5" "$TMP/ref/run.h5" /metrics/train/loss exact
check "nothing quarantined" test -z "$(find "$TMP/a" -name '*.corrupt.*' -o -name '*.bad')"

# --- the same under mpirun -np 2: every rank agrees
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" train "$CFG" "${common[@]}" --set train.steps=600 --set run.dir="$TMP/m" \
    >"$TMP/m.log" 2>&1 &
pm=$!
wait_for "$TMP/m/run.h5"
out=$(OMP_NUM_THREADS=1 timeout 60 $MPIRUN -np 2 "$HD" train "$CFG" "${common[@]}" --set train.steps=600 \
      --set run.dir="$TMP/m" 2>&1); rc=$?
check "mpirun -np 2 second run: exit 2 on all ranks (got $rc)" test $rc -eq 2
check "mpirun -np 2 second run: the owner named once" test "$(grep -c 'in use by PID' <<<"$out")" -eq 1
wait $pm
check "mpirun -np 2 owner completes" grep -q "^done: step 600" "$TMP/m.log"

# --- run.lock_wait: waits for the owner, then carries on (nothing left to do)
OMP_NUM_THREADS=1 "$HD" train "$CFG" "${common[@]}" --set train.steps=300 --set run.dir="$TMP/w" >"$TMP/w.log" 2>&1 &
pw=$!
wait_for "$TMP/w/run.h5"
train "$TMP/w" 300 --set run.lock_wait=120 >"$TMP/w2.log" 2>&1; rc=$?
check "lock_wait: the waiting process exits 0 after the owner (got $rc)" test $rc -eq 0
check "lock_wait: it found the run complete" grep -q "already complete" "$TMP/w2.log"
wait $pw

# --- kill -9: the lock goes with the process; run.h5 stays readable; the restart resumes bitwise
OMP_NUM_THREADS=1 "$HD" train "$CFG" "${common[@]}" --set train.steps=600 --set run.dir="$TMP/k" >"$TMP/k.log" 2>&1 &
pk=$!
wait_for "$TMP/k/ckpt/step_00000100.h5"
# readers in a loop during the run
$PY - "$TMP/k/run.h5" "$pk" >"$TMP/reader.log" 2>&1 <<'EOF' &
import os, sys, time, h5py
path, pid = sys.argv[1], int(sys.argv[2])
reads = fails = 0
lengths = []
while True:
    alive = os.path.exists(f"/proc/{pid}")
    try:
        with h5py.File(path, "r") as f:
            lengths.append(len(f["/metrics/train/loss"]))
        reads += 1
    except Exception as e:
        fails += 1
        print("read failed:", e)
    if not alive:
        break
    time.sleep(0.05)
print(f"reads {reads} fails {fails} first {lengths[0] if lengths else -1} last {lengths[-1] if lengths else -1}")
EOF
preader=$!
sleep 1.5
kill -9 $pk; wait $pk 2>/dev/null
wait $preader
check "h5py read run.h5 in a loop during the run: no failure" grep -q "fails 0" "$TMP/reader.log"
check "h5py saw the loss curve grow" $PY -c "
import re,sys; m=re.search(r'first (\d+) last (\d+)', open('$TMP/reader.log').read()); sys.exit(0 if m and int(m.group(2)) > int(m.group(1)) else 1)"
check "right after kill -9: run.h5 opens and is a prefix of the uninterrupted curve" $PY -c "
import h5py,numpy as np,sys
a=h5py.File('$TMP/k/run.h5','r')['/metrics/train/loss'][()]; r=h5py.File('$TMP/ref/run.h5','r')['/metrics/train/loss'][()]
sys.exit(0 if 0 < len(a) <= len(r) and np.array_equal(a, r[:len(a)]) else 1)"
train "$TMP/k" 600 >"$TMP/k2.log" 2>&1; rc=$?
check "restart right after kill -9 is not refused (exit $rc)" test $rc -eq 0
check "restart resumed from a checkpoint" grep -q "resuming from" "$TMP/k2.log"
check "restart did not rebuild run.h5 (it was readable)" bash -c "! grep -q 'moving it to' '$TMP/k2.log'"
check "after kill -9 and resume: the uninterrupted curve" h5cmp "$TMP/k/run.h5" "$TMP/ref/run.h5" /metrics/train/loss exact
check "after kill -9: nothing quarantined" test -z "$(find "$TMP/k" -name '*.corrupt.*' -o -name '*.bad')"

# --- data.h5: two teach processes, one owner
D=$TMP/data.h5
"$HD" ingest --set data.path="$D" --set ingest.limit=120 --set ingest.ood_limit=10 >/dev/null 2>&1
tsets=(--set data.path="$D" --set teach.splits=train --set standin.latency_ms=300 --set teacher.concurrency=4)
teach() { "$HD" teach "${tsets[@]}" "$@"; }
"$HD" teach "${tsets[@]}" >"$TMP/t1.log" 2>&1 &
pt=$!
wait_for "$D.lock"
for _ in $(seq 1 100); do grep -q "teach:" "$TMP/t1.log" && break; sleep 0.1; done
err=$(teach 2>&1 >/dev/null); rc=$?
check "second teach on one data.h5: exit 2 (got $rc)" test $rc -eq 2
check "second teach: names data.h5 and the owner" grep -q "$D: in use by PID $pt" <<<"$err"
wait $pt; rc=$?
check "first teach completes (exit $rc)" test $rc -eq 0
teach >"$TMP/t3.log" 2>&1; rc=$?
check "after it, teach runs again (exit $rc; answers cached)" test $rc -eq 0
finish
