#!/usr/bin/env bash
# t_signals -- stopping early, as Slurm does before a time limit
# (--signal=USR1@N, scancel's TERM), and resuming:
#  - teach: USR1 while requests are in flight -> exit 3; the requests in
#    flight finish within llm.stop_grace and are cached, so a restart sends
#    no answered request again and the result equals an uninterrupted teach;
#  - hdistill run under mpirun -np 2, USR1 to mpirun (forwarded to both
#    ranks) while rank 0 waits for the critic -> exit 3; resuming sends no
#    answered critic request again and ends bitwise equal to an
#    uninterrupted run;
#  - USR1 to rank 1 alone while training: both ranks stop at the same step
#    boundary, rank 0 checkpoints, exit 3, resume is bitwise equal;
#  - llm.stop_grace=0 abandons the requests in flight at once (still exit 3);
#  - with an evaluation after every round, a STOP inside round 1 and a resume
#    neither redo round 0's evaluation nor overwrite it with a later model.
source "$(dirname "$0")/lib.sh"

SERVERS=()
cleanup() { for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup EXIT
start_server() {  # start_server NAME ARGS...: a separate stand-in with a request log; sets PORT
    local name=$1; shift
    "$HD" serve --standin --port 0 --port-file "$TMP/$name.port" --request-log "$TMP/$name.log" "$@" \
        >"$TMP/$name.out" 2>&1 &
    SERVERS+=($!)
    for _ in $(seq 1 200); do [[ -s $TMP/$name.port ]] && break; sleep 0.05; done
    PORT=$(cat "$TMP/$name.port")
}
wait_for() {  # wait_for SECONDS 'SHELL CONDITION': poll it (evaluated afresh) every 0.05 s
    local n=$(( $1 * 20 )); shift
    for _ in $(seq 1 "$n"); do eval "$1" && return 0; sleep 0.05; done
    return 1
}
same_strings() {  # same_strings FILE_A FILE_B DATASET: equal string datasets
    $PY -c "
import h5py, sys
a = h5py.File('$1', 'r')['$3'][()]; b = h5py.File('$2', 'r')['$3'][()]
sys.exit(0 if a.shape == b.shape and a.tolist() == b.tolist() else 1)"
}
# no_repeats LOG: no request key was answered (HTTP 200) twice
no_repeats() {
    $PY - "$1" <<'EOF'
import collections, json, sys
ok = collections.Counter(json.loads(l)["key"] for l in open(sys.argv[1]) if json.loads(l).get("status") == 200)
twice = [k for k, v in ok.items() if v > 1]
print(f"{len(ok)} keys answered, {len(twice)} of them twice", file=sys.stderr)
sys.exit(1 if twice or not ok else 0)
EOF
}
lines() { [[ -f $1 ]] && wc -l <"$1" || echo 0; }

# ============================================================ teach
"$HD" ingest --set data.path="$TMP/t.h5" --set ingest.limit=240 --set ingest.eval_fraction=0 --set ingest.ood_limit=0 >/dev/null
cp "$TMP/t.h5" "$TMP/ref.h5"
start_server tref --seed 5
"$HD" teach --set data.path="$TMP/ref.h5" --set teach.splits=train --set teacher.base_url="http://127.0.0.1:$PORT/v1" \
    >"$TMP/tref.teach.log" 2>&1
check "uninterrupted teach exits 0" test $? -eq 0
start_server tstop --seed 5 --latency-ms 400
TEACH_STOP=("$HD" teach --set data.path="$TMP/t.h5" --set teach.splits=train --set teacher.base_url="http://127.0.0.1:$PORT/v1" \
        --set teacher.concurrency=8)
"${TEACH_STOP[@]}" >"$TMP/t1.log" 2>&1 &  # (not a function: $! must be hdistill itself)
pid=$!
wait_for 30 '[[ $(lines "$TMP/tstop.log") -ge 24 ]]'
kill -USR1 $pid
wait $pid; rc=$?
n1=$(lines "$TMP/tstop.log")
check "teach: USR1 -> exit 3 (got $rc)" test $rc -eq 3
check "teach: stopped part way ($n1 of 240 requests)" test "$n1" -gt 20 -a "$n1" -lt 240
check "teach: the requests in flight were let finish" grep -q "stop signal: letting [1-9][0-9]* requests in flight finish" "$TMP/t1.log"
check "teach: stopped run says how to carry on" grep -q "stopped early by a signal: run teach again" "$TMP/t1.log"
"${TEACH_STOP[@]}" >"$TMP/t2.log" 2>&1
check "teach: restart exits 0" test $? -eq 0
check "teach: no answered request was sent again" no_repeats "$TMP/tstop.log"
check "teach: the result equals the uninterrupted teach" same_strings "$TMP/t.h5" "$TMP/ref.h5" /teacher/paraphrases

# llm.stop_grace=0: in-flight requests are abandoned at once
cp "$TMP/ref.h5" "$TMP/g0.h5"
start_server g0 --seed 6 --latency-ms 3000
"$HD" teach --set data.path="$TMP/g0.h5" --set teach.splits=train --set teacher.base_url="http://127.0.0.1:$PORT/v1" \
    --set teacher.concurrency=4 --set llm.stop_grace=0 >"$TMP/g0.teach.log" 2>&1 &
pid=$!
sleep 1.5
t0=$SECONDS
kill -USR1 $pid
wait $pid; rc=$?
check "stop_grace=0: exit 3 without waiting for 3 s answers (rc $rc, $((SECONDS - t0)) s)" test $rc -eq 3 -a $((SECONDS - t0)) -lt 3
check "stop_grace=0: the progress line says none was answered" grep -q "^\[teach\] stopped by a signal: 0/240 answered" "$TMP/g0.teach.log"
check "stop_grace=0: usage counts 240 stopped, 0 failed" test "$($PY -c "
import h5py; a = h5py.File('$TMP/g0.h5', 'r')['/teacher/usage'].attrs; print(a['stopped'], a['failed'])")" = "240 0"

# ============================================================ hdistill run, 2 ranks
CFG=configs/run-tiny.json
start_server cref --seed 7
REF_PORT=$PORT
start_server cstop --seed 7 --latency-ms 60
STOP_PORT=$PORT
run() {  # run DIR PORT: the whole method, 2 ranks, critic on the given server; data.h5 shared
    OMP_NUM_THREADS=1 exec $MPIRUN -np 2 "$HD" run "$CFG" --set run.dir="$1" --set data.path="$TMP/data.h5" \
        --set critic.base_url="http://127.0.0.1:$2/v1" --set critic.concurrency=4
}
(run "$TMP/a" $REF_PORT) >"$TMP/a.log" 2>&1
check "reference run exits 0" test $? -eq 0

# --- USR1 to mpirun while rank 0 waits for the critic in round 1
(run "$TMP/k" $STOP_PORT) >"$TMP/k.log" 2>&1 &  # $! is mpirun: run execs it
pid=$!
wait_for 120 'grep -q "round 1" "$TMP/k.log"'  # round 0 done and stored
before=$(lines "$TMP/cstop.log")
wait_for 60 '[[ $(lines "$TMP/cstop.log") -ge $((before + 20)) ]]'
kill -USR1 $pid
wait $pid; rc=$?
check "run: USR1 while judging -> exit 3 (got $rc)" test $rc -eq 3
check "run: stopped while judging, answers cached" grep -q "stopped while judging" "$TMP/k.log"
check "run: not complete" test "$(grep -c 'round 1 complete' "$TMP/k.log")" -eq 0
(run "$TMP/k" $STOP_PORT) >"$TMP/k2.log" 2>&1
check "run: resumed run exits 0" test $? -eq 0
check "run: no answered critic request was sent again" no_repeats "$TMP/cstop.log"
check "run: resume -> identical loss curve" h5cmp "$TMP/k/run.h5" "$TMP/a/run.h5" /metrics/train/loss exact
check "run: resume -> identical critic probabilities" h5cmp "$TMP/k/run.h5" "$TMP/a/run.h5" /rounds/1/student/p exact
check "run: resume -> identical evaluation" h5cmp "$TMP/k/run.h5" "$TMP/a/run.h5" /eval/eval/critic/verdict exact

# --- evaluated after every round: a STOP inside round 1's training, then resume; the evaluation
# of round 0 is neither redone nor replaced by a later model, and everything equals an uninterrupted run
E=(--set critique.eval_each_round=1 --set critique.epochs=24)
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" run "$CFG" --set run.dir="$TMP/ea" --set data.path="$TMP/data.h5" \
    --set critic.base_url="http://127.0.0.1:$REF_PORT/v1" "${E[@]}" >"$TMP/ea.log" 2>&1
check "evaluated-per-round reference run exits 0" test $? -eq 0
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" run "$CFG" --set run.dir="$TMP/es" --set data.path="$TMP/data.h5" \
    --set critic.base_url="http://127.0.0.1:$REF_PORT/v1" "${E[@]}" >"$TMP/es.log" 2>&1 &
pid=$!
wait_for 120 'grep -q "round 1 phase" "$TMP/es.log"'
sleep 0.3
touch "$TMP/es/STOP"
wait $pid; rc=$?
check "STOP inside round 1 -> exit 3 (got $rc)" test $rc -eq 3 -a "$(grep -c 'round 1 complete' "$TMP/es.log")" -eq 0
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" run "$CFG" --set run.dir="$TMP/es" --set data.path="$TMP/data.h5" \
    --set critic.base_url="http://127.0.0.1:$REF_PORT/v1" "${E[@]}" >"$TMP/es2.log" 2>&1
check "resumed exits 0" test $? -eq 0
check "the resume evaluated only round 1's model and the final one" \
    test "$(grep -c '^\[eval eval: critic\]' "$TMP/es2.log")" -eq 2
check "no carriage-return progress lines in a log under mpirun" test "$(grep -c $'\r' "$TMP/es2.log")" -eq 0
check "per-round evaluations: steps are the rounds' ends, results equal the uninterrupted run's" $PY - "$TMP" <<'EOF'
import h5py, numpy as np, sys
t = sys.argv[1]
a, b = h5py.File(f"{t}/ea/run.h5", "r"), h5py.File(f"{t}/es/run.h5", "r")
bad = []
for r in ("0", "1"):
    for f, n in ((a, "ea"), (b, "es")):
        if f[f"/rounds/{r}/eval"].attrs["step"] != f[f"/rounds/{r}"].attrs["end_step"]:
            bad.append(f"{n}: /rounds/{r}/eval is not the model after round {r}")
    if not np.array_equal(a[f"/rounds/{r}/eval/eval/critic/verdict"][()], b[f"/rounds/{r}/eval/eval/critic/verdict"][()]):
        bad.append(f"round {r}: verdicts differ")
if b["/sft/eval"].attrs["objective"] != b"sft" or b["/sft/eval"].attrs["step"] >= b["/rounds/0"].attrs["end_step"]:
    bad.append("/sft/eval")
if not np.array_equal(a["/metrics/train/loss"][()], b["/metrics/train/loss"][()]):
    bad.append("loss curves differ")
print(bad)
sys.exit(1 if bad else 0)
EOF

# --- USR1 to rank 1 alone while training: all ranks agree on the step boundary
PAIRS=$TMP/pairs.jsonl
$PY tools/make_pairs.py 1500 "$PAIRS"
train() {  # train DIR: 400 steps of the tiny student, 2 ranks (execs mpirun: call it in a subshell)
    OMP_NUM_THREADS=1 exec $MPIRUN -np 2 "$HD" train configs/sft-tiny.json --set data.pairs="$PAIRS" --set train.steps=400 \
        --set train.seed=3 --set train.ckpt_every=100 --set run.dir="$1"
}
(train "$TMP/sa") >"$TMP/sa.log" 2>&1
check "uninterrupted training exits 0" test $? -eq 0
(train "$TMP/s") >"$TMP/s.log" 2>&1 &
pid=$!
wait_for 60 '[[ -f $TMP/s/ckpt/step_00000100.h5 ]]'
rank1=
for p in $(pgrep -f "run.dir=$TMP/s\$"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && rank1=$p
done
check "found rank 1's process" test -n "$rank1"
[[ -n $rank1 ]] && kill -USR1 "$rank1"
wait $pid; rc=$?
check "train: USR1 to rank 1 alone -> exit 3 (got $rc)" test $rc -eq 3
stopline=$(grep -m1 "^stopped" "$TMP/s.log")
step=$(sed -n 's/^stopped: step \([0-9]*\).*/\1/p' <<<"$stopline")
check "train: stopped part way at step '$step' ($stopline)" test -n "$step" && test "${step:-0}" -gt 100 -a "${step:-400}" -lt 400
check "train: rank 0 wrote the checkpoint of that step" test -f "$TMP/s/ckpt/$(printf 'step_%08d.h5' "${step:-0}")"
(train "$TMP/s") >"$TMP/s2.log" 2>&1
check "train: resumed run exits 0" test $? -eq 0
check "train: resumed from that checkpoint" grep -q "resuming from .*$(printf 'step_%08d.h5' "${step:-0}")" "$TMP/s2.log"
check "train: rank-1 stop + resume -> bitwise identical loss curve" h5cmp "$TMP/s/run.h5" "$TMP/sa/run.h5" /metrics/train/loss exact
finish
