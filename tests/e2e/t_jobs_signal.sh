#!/usr/bin/env bash
# t_jobs_signal -- the Slurm job scripts and Slurm's time-limit signal,
# without Slurm (a fake srun, scontrol and hdistill on PATH; seconds):
#  - USR1 while the script is still in its --dry-run (Slurm may send the
#    signal up to a minute early): the script does not die of it; the run is
#    not started and the job requeues itself (scontrol requeue JOB, exit 0);
#  - USR1 while the run goes: forwarded to the run, which stops with exit 3,
#    and the job requeues itself;
#  - no signal: the run's exit code is the script's, no requeue;
#  - teach.sbatch: USR1 during its ingest --dry-run: neither stage starts.
source "$(dirname "$0")/lib.sh"

BIN=$TMP/bin
mkdir -p "$BIN"
# fake hdistill: --dry-run writes dry.started and sleeps DRY_S; the run writes run.started and
# sleeps RUN_S, exiting 3 on USR1 (as hdistill does after its checkpoint), else RUN_RC
cat >"$BIN/hdistill" <<'SH'
#!/usr/bin/env bash
for a in "$@"; do
    if [[ $a == --dry-run ]]; then touch "$STATE/dry.started"; sleep "${DRY_S:-2}"; exit 0; fi
done
echo "$1" >>"$STATE/run.started"
trap 'echo stopped >>"$STATE/run.stopped"; exit 3' USR1
for _ in $(seq 1 $((${RUN_S:-2} * 10))); do sleep 0.1; done
exit "${RUN_RC:-0}"
SH
printf '#!/usr/bin/env bash\nshift; exec "$@"\n' >"$BIN/srun" # srun --mpi=pmix CMD...
printf '#!/usr/bin/env bash\necho "$*" >>"$STATE/scontrol"\n' >"$BIN/scontrol"
chmod +x "$BIN"/*
export PATH=$BIN:$PATH HDISTILL=$BIN/hdistill CONFIG=configs/quickstart.json SLURM_JOB_ID=4242

case_dir() { STATE=$TMP/$1; mkdir -p "$STATE"; export STATE; }
wait_for() { for _ in $(seq 1 100); do [[ -e $1 ]] && return 0; sleep 0.1; done; return 1; }
submit() { # submit SCRIPT: runs it in the background like Slurm's batch step; PID in $JOBPID
    bash "jobs/$1" >"$STATE/out" 2>&1 &
    JOBPID=$!
}

# 1. USR1 during the dry run
case_dir early
DRY_S=3 submit distill.sbatch
wait_for "$STATE/dry.started"
kill -USR1 "$JOBPID"
wait "$JOBPID"; rc=$?
check "early signal: the script exits 0 (got $rc)" test "$rc" = 0
check "early signal: the run was not started" test ! -e "$STATE/run.started"
check "early signal: the job requeued itself" grep -qx "requeue 4242" "$STATE/scontrol"
check "early signal: the log says why" grep -q "not starting the run: stopped before it" "$STATE/out"

# 2. USR1 during the run
case_dir late
DRY_S=0 RUN_S=20 submit distill.sbatch
wait_for "$STATE/run.started"
sleep 0.3
kill -USR1 "$JOBPID"
wait "$JOBPID"; rc=$?
check "signal in the run: the script exits 0 (got $rc)" test "$rc" = 0
check "signal in the run: forwarded, the run stopped" grep -q stopped "$STATE/run.stopped"
check "signal in the run: the job requeued itself" grep -qx "requeue 4242" "$STATE/scontrol"
check "signal in the run: the log says it was forwarded" grep -q "signal: asking hdistill to checkpoint and stop" "$STATE/out"

# 3. no signal: the run's own exit code, no requeue
case_dir plain
DRY_S=0 RUN_S=0 RUN_RC=1 submit distill.sbatch
wait "$JOBPID"; rc=$?
check "no signal: the run's exit code 1 is the script's (got $rc)" test "$rc" = 1
check "no signal: no requeue" test ! -e "$STATE/scontrol"

# 4. teach.sbatch: USR1 during ingest's dry run
case_dir teach
DRY_S=3 submit teach.sbatch
wait_for "$STATE/dry.started"
kill -USR1 "$JOBPID"
wait "$JOBPID"; rc=$?
check "teach, early signal: exits 0 (got $rc)" test "$rc" = 0
check "teach, early signal: neither ingest nor teach started" test ! -e "$STATE/run.started"
check "teach, early signal: requeued" grep -qx "requeue 4242" "$STATE/scontrol"
finish
