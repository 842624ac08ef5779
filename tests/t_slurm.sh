#!/usr/bin/env bash
# t_slurm -- the jobs/ scripts on a real (private, one-node) Slurm cluster:
# train.sbatch runs srun --mpi=pmix and gives the loss curve of a direct
# mpirun; a run that stops early (exit 3) requeues itself and completes with
# the bitwise-identical curve; a bad configuration fails at the dry run.
source "$(dirname "$0")/lib.sh"
source "$ROOT/tests/slurm/cluster.sh"
trap 'slurm_stop; [[ -n ${KEEP_TMP:-} ]] || rm -rf "$TMP"' EXIT
if [[ $(id -u) -ne 0 ]]; then echo "t_slurm needs root (slurmd)"; echo "0 passed, 1 failed"; exit 1; fi
slurm_start "$TMP/slurm" || { echo "0 passed, 1 failed"; exit 1; }

PAIRS=$TMP/pairs.jsonl
$PY tools/make_pairs.py 1500 "$PAIRS"
sets="--set data.pairs=$PAIRS --set train.seed=5 --set train.ckpt_every=10"
# reference: the same run under mpirun -np 2
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" train configs/sft-tiny.json $sets --set train.steps=50 \
    --set run.dir="$TMP/ref" >"$TMP/ref.log" 2>&1
check "reference run" test $? -eq 0

# submit NAME EXTRA_SETS [sbatch args...] -> JOB
submit() {
    local name=$1 extra=$2; shift 2
    JOB=$(sbatch --parsable -D "$ROOT" -o "$TMP/$name.out" --export=ALL,CONFIG=configs/sft-tiny.json,HDISTILL="$HD",HDISTILL_SETS="$sets $extra" \
        "$@" jobs/train.sbatch)
}
# wait_requeue JOB: waits for the job to finish.  A requeued job would wait
# Slurm's ~120 s before starting again; after 3 s pending (so the old
# instance's credential is no longer the current second's -- a restart in the
# same second is refused as "credential revoked") its start is set to now.
wait_requeue() {
    local id=$1 i st pending=0
    for ((i = 0; i < 1200; i++)); do
        st=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
        if scontrol show job "$id" 2>/dev/null | grep -q 'Reason=PartitionConfig'; then
            echo "UNRUNNABLE($(sinfo -h -o '%c CPUs'))"; scancel "$id"; return
        fi
        case $st in
            COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) echo "$st"; return ;;
            PENDING)
                pending=$((pending + 1))
                [[ $pending -eq 6 ]] && scontrol update JobId="$id" StartTime=now >/dev/null 2>&1 ;;
            *) pending=0 ;;
        esac
        sleep 0.5
    done
    echo TIMEOUT_WAITING
}

submit plain "--set train.steps=50 --set run.dir=$TMP/plain"
st=$(wait_requeue "$JOB")
check "train.sbatch: COMPLETED (got $st)" test "$st" = COMPLETED
check "train.sbatch ran the dry run first" grep -q "dry run: configuration and data are valid" "$TMP/plain.out"
check "train.sbatch: 2 ranks x 1 thread" grep -q "2 ranks x 1 threads" "$TMP/plain.out"
check "srun result == mpirun result (bitwise)" h5cmp "$TMP/plain/run.h5" "$TMP/ref/run.h5" /metrics/train/loss exact
check "SLURM_JOB_ID in the provenance" $PY -c "
import h5py,sys; sys.exit(0 if h5py.File('$TMP/plain/run.h5','r')['/provenance'].attrs['SLURM_JOB_ID'].decode()=='$JOB' else 1)"

# stops early (a 2 s budget per start), requeues itself, resumes, completes identically
submit requeue "--set train.steps=400 --set run.dir=$TMP/rq --set train.max_run_time=2.5 --set train.ckpt_every=50"
st=$(wait_requeue "$JOB")
check "early stop + requeue: COMPLETED (got $st)" test "$st" = COMPLETED
restarts=$(scontrol show job "$JOB" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
check "the job requeued itself at least once (restarts: $restarts)" test "${restarts:-0}" -ge 1
check "requeue logged" grep -q "stopped early (exit 3): requeueing" "$TMP/requeue.out"
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" train configs/sft-tiny.json $sets --set train.steps=400 --set train.ckpt_every=50 \
    --set run.dir="$TMP/ref400" >"$TMP/ref400.log" 2>&1
check "requeued run == uninterrupted run (bitwise)" h5cmp "$TMP/rq/run.h5" "$TMP/ref400/run.h5" /metrics/train/loss exact

# a bad configuration fails at the dry run, before srun
submit bad "--set train.steps=5 --set run.dir=$TMP/bad --set train.lr=-3"
st=$(wait_requeue "$JOB")
check "bad configuration: FAILED (got $st)" test "$st" = FAILED
check "bad configuration: the message is in the log" grep -q "train.lr = -3 is out of range" "$TMP/bad.out"
check "bad configuration: nothing written" test ! -e "$TMP/bad"

finish
