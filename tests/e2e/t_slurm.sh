#!/usr/bin/env bash
# t_slurm -- the jobs/ scripts on a real (private, one-node) Slurm cluster:
#  - distill.sbatch: srun --mpi=pmix gives the loss curve of a direct mpirun;
#    a run that stops early (exit 3) requeues itself and completes with the
#    bitwise-identical curve; a bad configuration fails at the dry run;
#  - a real time limit (--time=1 --signal=B:USR1@50): signalled, checkpoints,
#    requeues, resumes, completes with the uninterrupted result;
#  - submit.sh: teach -> sweep array (every row) -> analysis, in order
#    (afterok), each row's run reading the shared data.h5; a failing teach
#    cancels the rest; a sweep file with a bad row is refused before
#    anything is submitted.
source "$(dirname "$0")/lib.sh"
source "$ROOT/tests/e2e/slurm/cluster.sh"
trap 'slurm_stop; [[ -n ${KEEP_TMP:-} ]] || rm -rf "$TMP"' EXIT
if [[ $(id -u) -ne 0 ]]; then echo "t_slurm needs root (slurmd)"; echo "0 passed, 1 failed"; exit 1; fi
slurm_start "$TMP/slurm" || { echo "0 passed, 1 failed"; exit 1; }

PAIRS=$TMP/pairs.jsonl
$PY tools/make_pairs.py 1500 "$PAIRS"
sets="--set data.pairs=$PAIRS --set train.seed=5 --set train.ckpt_every=10"
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" train configs/sft-tiny.json $sets --set train.steps=50 \
    --set run.dir="$TMP/ref" >"$TMP/ref.log" 2>&1
check "reference run" test $? -eq 0

# submit NAME EXTRA_SETS [sbatch args...] -> JOB (distill.sbatch, STAGE=train)
submit() {
    local name=$1 extra=$2; shift 2
    JOB=$(sbatch --parsable -D "$ROOT" -o "$TMP/$name.out" \
        --export=ALL,STAGE=train,CONFIG=configs/sft-tiny.json,HDISTILL="$HD",HDISTILL_SETS="$sets $extra" \
        "$@" jobs/distill.sbatch)
}

submit plain "--set train.steps=50 --set run.dir=$TMP/plain"
st=$(slurm_wait_job "$JOB")
check "distill.sbatch: COMPLETED (got $st)" test "$st" = COMPLETED
check "distill.sbatch ran the dry run first" grep -q "dry run: configuration and data are valid" "$TMP/plain.out"
check "distill.sbatch: 2 tasks x 1 thread" grep -q "2 tasks x 1 threads" "$TMP/plain.out"
check "srun result == mpirun result (bitwise)" h5cmp "$TMP/plain/run.h5" "$TMP/ref/run.h5" /metrics/train/loss exact
check "SLURM_JOB_ID in the provenance" $PY -c "
import h5py,sys; sys.exit(0 if h5py.File('$TMP/plain/run.h5','r')['/provenance'].attrs['SLURM_JOB_ID'].decode()=='$JOB' else 1)"

# stops early (a 1.8 s budget per start, of which 1 s is kept for the checkpoint: the run needs about 2 s of steps), requeues itself, resumes, completes identically
submit requeue "--set train.steps=400 --set run.dir=$TMP/rq --set train.max_run_time=1.8 --set train.ckpt_every=50"
st=$(slurm_wait_job "$JOB")
check "early stop + requeue: COMPLETED (got $st)" test "$st" = COMPLETED
restarts=$(scontrol show job "$JOB" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
check "the job requeued itself at least once (restarts: $restarts)" test "${restarts:-0}" -ge 1
check "requeue logged" grep -q "stopped early (exit 3): requeueing" "$TMP/requeue.out"
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" train configs/sft-tiny.json $sets --set train.steps=400 --set train.ckpt_every=50 \
    --set run.dir="$TMP/ref400" >"$TMP/ref400.log" 2>&1
check "requeued run == uninterrupted run (bitwise)" h5cmp "$TMP/rq/run.h5" "$TMP/ref400/run.h5" /metrics/train/loss exact

# a bad configuration fails at the dry run, before srun
submit bad "--set train.steps=5 --set run.dir=$TMP/bad --set train.lr=-3"
st=$(slurm_wait_job "$JOB")
check "bad configuration: FAILED (got $st)" test "$st" = FAILED
check "bad configuration: the message is in the log" grep -q "train.lr = -3 is out of range" "$TMP/bad.out"
check "bad configuration: nothing written" test ! -e "$TMP/bad"

# a real time limit: 1 minute, USR1 50 s before it; the run needs ~70 s of work
long="--set train.steps=6000 --set train.ckpt_every=1000 --set run.log_every=1000"
sets_l="$sets $long"
JOB=$(sbatch --parsable -D "$ROOT" -o "$TMP/limit.out" --time=1 --signal=B:USR1@50 \
    --export=ALL,STAGE=train,CONFIG=configs/sft-tiny.json,HDISTILL="$HD",HDISTILL_SETS="$sets_l --set run.dir=$TMP/limit" \
    jobs/distill.sbatch)
st=$(slurm_wait_job "$JOB" 600)
check "time limit: COMPLETED after requeues (got $st)" test "$st" = COMPLETED
check "time limit: the script forwarded Slurm's signal" grep -q "signal: asking hdistill to checkpoint and stop" "$TMP/limit.out"
check "time limit: hdistill stopped at a step boundary with a checkpoint" grep -q "stop requested (signal)" "$TMP/limit.out"
restarts=$(scontrol show job "$JOB" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
check "time limit: requeued (restarts: $restarts)" test "${restarts:-0}" -ge 1
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" train configs/sft-tiny.json $sets_l --set run.dir="$TMP/reflong" >"$TMP/reflong.log" 2>&1
check "time limit: same result as an uninterrupted run (bitwise)" h5cmp "$TMP/limit/run.h5" "$TMP/reflong/run.h5" /metrics/train/loss exact

# the chain: teach -> sweep array -> analysis
CFG=$TMP/sweep.json
$PY - "$ROOT/configs/run-tiny.json" "$CFG" "$TMP" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["data"]["path"] = sys.argv[3] + "/sweep/data.h5"
c["ingest"].update({"limit": 250, "ood_limit": 20})
c["train"]["epochs"] = 2
c["critique"].update({"rounds": 1, "inputs": 60, "epochs": 2})
c["eval"]["limit"] = 20
json.dump(c, open(sys.argv[2], "w"), indent=1)
PYEOF
printf 'critique.objective\ttrain.seed\ndpo\t1\nbrio\t1\nsd\t2\n' >"$TMP/sweep.tsv"
out=$(HDISTILL="$HD" jobs/submit.sh "$CFG" "$TMP/sweep.tsv" "$TMP/sweep" 2>&1)
check "submit.sh submitted three jobs" test "$(grep -cE '^(teach|sweep|analysis) [0-9]+' <<<"$out")" -eq 3
teach=$(sed -n 's/^teach \([0-9]*\).*/\1/p' <<<"$out"); sweep=$(sed -n 's/^sweep \([0-9]*\).*/\1/p' <<<"$out")
analysis=$(sed -n 's/^analysis \([0-9]*\).*/\1/p' <<<"$out")
st=$(slurm_wait_job "$analysis" 600)
check "chain: analysis COMPLETED (got $st)" test "$st" = COMPLETED
check "chain: teach COMPLETED" test "$(slurm_job_state "$teach")" = COMPLETED
check "chain: every sweep row COMPLETED" test "$(slurm_job_state "$sweep")" = COMPLETED
check "chain: ran in order (teach < every row < analysis)" $PY - "$teach" "$sweep" "$analysis" <<'PYEOF'
import subprocess, sys, re
from datetime import datetime
def times(job):
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    blocks = [b for b in out.split("\n\n") if b.strip()]
    t = lambda b, k: datetime.fromisoformat(re.search(k + r"=(\S+)", b).group(1))
    return [(t(b, "StartTime"), t(b, "EndTime")) for b in blocks]
teach, rows, ana = times(sys.argv[1]), times(sys.argv[2]), times(sys.argv[3])
ok = len(rows) == 3 and all(s >= teach[0][1] for s, _ in rows) and all(ana[0][0] >= e for _, e in rows)
print("teach", teach, "rows", rows, "analysis", ana)
sys.exit(0 if ok else 1)
PYEOF
check "chain: each row ran its own settings on the shared data" $PY - "$TMP/sweep" <<'PYEOF'
import h5py, json, sys
want = [("dpo", 1), ("brio", 1), ("sd", 2)]
for i, (obj, seed) in enumerate(want):
    f = h5py.File(f"{sys.argv[1]}/row-{i}/run.h5", "r")
    c = json.loads(f["/config"][()])
    ok = c["critique"]["objective"] == obj and c["train"]["seed"] == seed and f["/eval"].attrs["complete"] == 1 \
        and c["data"]["path"].endswith("/sweep/data.h5") and f["/eval"].attrs["objective"].decode() == obj
    if not ok:
        print("row", i, c["critique"]["objective"], c["train"]["seed"]); sys.exit(1)
PYEOF
check "chain: the analysis report exists and covers the rows" grep -q "row-2" "$TMP/sweep/report/report.md"

# a failing teach cancels the rest of the chain (DependencyParameters=kill_invalid_depend)
bad=$TMP/badteach.json
$PY -c "import json; c=json.load(open('$CFG')); c['data']['path']='$TMP/bt/data.h5'; t=c.setdefault('teacher',{}); t['base_url']='http://127.0.0.1:9/v1'; t['retries']=1; t['backoff']=0.05; json.dump(c,open('$bad','w'))"
out=$(TEACH_RETRIES=0 HDISTILL="$HD" jobs/submit.sh "$bad" "$TMP/sweep.tsv" "$TMP/bt" 2>&1)
teach=$(sed -n 's/^teach \([0-9]*\).*/\1/p' <<<"$out"); sweep=$(sed -n 's/^sweep \([0-9]*\).*/\1/p' <<<"$out")
analysis=$(sed -n 's/^analysis \([0-9]*\).*/\1/p' <<<"$out")
st=$(slurm_wait_job "$teach" 120)
check "failing teach: FAILED (got $st)" test "$st" = FAILED
st=$(slurm_wait_job "$analysis" 60)
check "failing teach: sweep and analysis cancelled" test "$(slurm_job_state "$sweep")" = CANCELLED -a "$st" = CANCELLED
check "failing teach: the reason is in the log" grep -q "unreachable" "$TMP/bt"/teach-*.out


# a sweep file with a bad row: submit.sh names it and submits nothing
printf 'critique.objective\ttrain.seed\ndpo\t1\nbrio\tone\n' >"$TMP/badsweep.tsv"
before=$(squeue -h -o %i | wc -l)
err=$(HDISTILL="$HD" jobs/submit.sh "$CFG" "$TMP/badsweep.tsv" "$TMP/bs" 2>&1 >/dev/null); rc=$?
check "bad sweep row: exit 2 naming the row and key ($err)" \
    test $rc -eq 2 -a "$(grep -c "badsweep.tsv row 1: .*train.seed" <<<"$err")" -eq 1
check "bad sweep row: nothing submitted" test "$(squeue -h -o %i | wc -l)" -eq "$before" -a ! -e "$TMP/bs"

finish
