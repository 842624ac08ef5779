#!/usr/bin/env bash
# t_crash -- `hdistill run` under mpirun -np 2, SIGKILLed (the whole process
# group: mpirun and both ranks) at 20+ seeded random moments across its
# stages (the whole session: mpirun and both ranks, each of which Open MPI
# puts in a process group of its own), each time restarted at once, then run
# to the end, against an
# external stand-in that logs every request.  Checks:
#  - the final run.h5 equals an uninterrupted run's, bitwise: the training
#    metrics, every dataset of every round, every dataset of the evaluation;
#  - no file was quarantined (no *.bad, *.corrupt.*), run.h5 opened with h5py
#    right after every kill;
#  - no answered request was sent again, except answers in flight at a kill
#    (sent before it and answered after it or less than 2 s before it);
#  - the kills landed in teach, SFT, the critique phase (sampling and
#    judging; training) and evaluation (printed: which stage each kill
#    interrupted).
# Size: run-tiny shrunk in data, with a 4-layer d-256 student and a stand-in
# answering in 150 ms to 4 connections per role, so that every stage lasts
# seconds however fast the machine (uninterrupted: about 40 s on 2 cores;
# teach ~9 s, SFT ~9 s, each round's sampling ~0.6 s, judging ~4 s, training
# ~3 s, evaluation ~3 s).
source "$(dirname "$0")/lib.sh"

start_standin() {  # start_standin NAME -> URL in $URL, pid in $SPID
    "$HD" serve --standin --port 0 --port-file "$TMP/$1.port" --request-log "$TMP/$1.requests" --seed 3 \
        --latency-ms 150 >"$TMP/$1.serve.log" 2>&1 &
    SPID=$!
    for _ in $(seq 1 200); do [[ -s $TMP/$1.port ]] && break; sleep 0.05; done
    URL="http://127.0.0.1:$(cat "$TMP/$1.port")/v1"
}
sets() {  # sets NAME URL: the run's settings
    echo --set run.dir="$TMP/$1" --set data.path="$TMP/$1.h5" --set teacher.base_url="$2" \
        --set critic.base_url="$2" --set ingest.limit=200 --set ingest.ood_limit=24 --set train.epochs=3 \
        --set critique.inputs=60 --set critique.epochs=3 --set critique.ckpt_every=2 --set train.ckpt_every=10 \
        --set eval.limit=60 --set run.commit_seconds=0.3 --set run.lock_wait=30 \
        --set teacher.concurrency=4 --set critic.concurrency=4 --set model.n_layer=4 --set model.d_model=256 \
        --set model.n_head=4
}
hdrun() {  # hdrun NAME URL: the whole method, in its own process group
    OMP_NUM_THREADS=1 setsid $MPIRUN -np 2 "$HD" run configs/run-tiny.json $(sets "$1" "$2") >>"$TMP/$1.log" 2>&1
}

# --- the uninterrupted reference
start_standin ref
t0=$(date +%s.%N)
hdrun ref "$URL"; rc=$?
t_ref=$($PY -c "import time; print(time.time() - $t0)")
kill "$SPID"; wait "$SPID" 2>/dev/null
check "uninterrupted run exits 0 (rc $rc, $(printf %.0f "$t_ref") s)" test $rc -eq 0

# --- killed at random moments in every stage.  The run's timeline: 0 teach, 1 SFT, then per
# round r: 2+3r sampling, 3+3r judging, 4+3r training, and 8 the evaluation.  Kill i waits until
# this start is at least at position schedule[i] (by its last progress line), then a seeded random
# 0..0.4 s (0..0.1 s in sampling, 0..0.15 s in evaluation: the short stages), then SIGKILLs the
# process group (mpirun and both ranks).
start_standin k
schedule=(0 0 1 1 1 1 1 1 1 1 2 3 3 4 4 4 4 4 5 6 6 7 7 7 7 7 8 8 8)
: >"$TMP/kills"
touch "$TMP/stages" "$TMP/k.log"
cat >"$TMP/stage.py" <<'EOF'
import re, sys
pos = -1
for l in sys.stdin:
    m = re.match(r"round (\d+)", l)
    if l.startswith("teach:"): pos = 0
    elif l.startswith("training:") or (l.startswith("step") and "round" not in l): pos = 1
    elif m and ": dpo on" in l: pos = 2 + 3 * int(m.group(1))
    elif m and ": sampled" in l: pos = 3 + 3 * int(m.group(1))
    elif m and (" phase " in l or ": resuming" in l): pos = 4 + 3 * int(m.group(1))
    elif l.startswith("eval:"): pos = 8
print(pos)
EOF
names=(teach sft sample judge train sample judge train eval)
for ((i = 0; i < ${#schedule[@]}; i++)); do
    from=$(($(stat -c %s "$TMP/k.log") + 1))
    OMP_NUM_THREADS=1 setsid $MPIRUN -np 2 "$HD" run configs/run-tiny.json $(sets k "$URL") >>"$TMP/k.log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        [[ $(tail -c +"$from" "$TMP/k.log" | $PY "$TMP/stage.py") -ge ${schedule[i]} ]] && break
        sleep 0.03
    done
    delay=$($PY -c "import random; s = ${schedule[i]}; \
print(round((0.1 if s in (2, 5) else 0.15 if s == 8 else 0.4) * random.Random(1000 + $i).random(), 3))")
    sleep "$delay"
    if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; echo "start $i ended before its kill"; continue; fi
    pos=$(tail -c +"$from" "$TMP/k.log" | $PY "$TMP/stage.py")
    stage=${names[pos]:-setup}
    printf '%s\n' "$stage" >>"$TMP/stages"
    # the session: Open MPI puts each rank in a process group of its own (a kill of mpirun's group
    # alone leaves the ranks running, still holding the run, until they notice mpirun is gone)
    pkill -9 -s "$pid" 2>/dev/null
    printf '%s\n' "$(date +%s.%N)" >>"$TMP/kills" # after the signal: nothing is sent later
    wait "$pid" 2>/dev/null
    for _ in $(seq 1 50); do pgrep -s "$pid" >/dev/null || break; sleep 0.1; done
    echo "kill $i (at least position ${schedule[i]}, +${delay}s): in $stage (position $pos)"
    if [[ -f $TMP/k/run.h5 ]]; then
        $PY -c "import h5py; h5py.File('$TMP/k/run.h5', 'r').close()" 2>>"$TMP/unreadable" ||
            echo "kill $i: run.h5 unreadable" >>"$TMP/unreadable"
    fi
done
n_kills=$(wc -l <"$TMP/kills")
hdrun k "$URL"; rc=$?
kill "$SPID"; wait "$SPID" 2>/dev/null
check "$n_kills kills (at least 20)" test "$n_kills" -ge 20
check "after the kills the run completes (exit $rc)" test $rc -eq 0
check "run.h5 opened with h5py right after every kill" test ! -s "$TMP/unreadable"
check "no file quarantined" test -z "$(find "$TMP" \( -name '*.bad' -o -name '*.corrupt.*' \))"
check "kills interrupted teach, SFT, sampling, judging, critique training and evaluation" \
    $PY -c "import sys; s = set(open('$TMP/stages').read().split()); print('stages killed in:', sorted(s)); \
sys.exit(0 if {'teach', 'sft', 'sample', 'judge', 'train', 'eval'} <= s else 1)"
check "final run.h5 equals the uninterrupted run's (metrics, rounds, evaluations) bitwise" $PY - "$TMP/k/run.h5" "$TMP/ref/run.h5" <<'EOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
bad, n = [], 0
def cmp(name, obj):
    global n
    if not isinstance(obj, h5py.Dataset):
        return
    if not (name.startswith("metrics/train") or name.startswith("rounds/") or name.startswith("eval/")
            or name.startswith("sft/eval")):
        return
    if name.endswith("metrics/train/time"):  # wall time differs
        return
    if name not in a:
        bad.append(f"{name}: missing"); return
    x, y = np.asarray(a[name][()]), np.asarray(obj[()])
    n += 1
    if x.shape != y.shape or (x.dtype.kind in "fiu" and not np.array_equal(x.view(np.uint8), y.view(np.uint8))) \
            or (x.dtype.kind not in "fiu" and not np.array_equal(x, y)):
        bad.append(name)
b.visititems(cmp)
print(f"{n} datasets compared; different: {bad[:10]}")
sys.exit(0 if n > 20 and not bad else 1)
EOF
check "no answered request sent again except answers in flight at a kill" $PY - "$TMP/k.requests" "$TMP/kills" <<'EOF'
import json, sys
kills = [float(x) for x in open(sys.argv[2]) if x.strip()]
first_done = {}
again, allowed = 0, 0
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
lines.sort(key=lambda r: r["time"])
for r in lines:
    k = r.get("key")
    if not k or r.get("path") != "/v1/chat/completions":
        continue
    if k in first_done:
        sent, done = first_done[k]
        if any(sent <= t <= done + 2.0 for t in kills):
            allowed += 1
        else:
            again += 1
            print("sent again:", k[:12], "sent at", sent, "answered at", done, "asked again at", r["time"])
    elif r.get("status") == 200 and r.get("completed"):
        first_done[k] = (r["time"], r["time"] + r.get("latency_ms", 0) / 1000.0)
print(f"answered keys {len(first_done)}, re-sent in flight at a kill {allowed}, re-sent otherwise {again}")
sys.exit(0 if again == 0 and len(first_done) > 100 else 1)
EOF
finish
