# jobs/common.sh -- sourced by the batch scripts from $HDISTILL_ROOT (Slurm
# runs a copy of the script, which cannot look beside itself): in a checkout
# the repository, default $SLURM_SUBMIT_DIR; in an installed tree
# PREFIX/share/hdistill, the default make install writes into its copies.
#   hd_binary          the hdistill to run: $HDISTILL, else the checkout's
#                      build/hdistill, else PREFIX/bin/hdistill of an installed
#                      tree, else the one on PATH
#   hd_setup           threads from --cpus-per-task, the binary, a banner
#   hd_step CMD...     runs CMD in the background, forwarding USR1/TERM to it
#                      (Slurm's --signal=B:USR1@N reaches only this script),
#                      and returns its exit code
#   hd_finish RC       RC 3 = stopped early, resumable: requeue this job (it
#                      resumes from its checkpoint) and exit 0; else exit RC
#                      (4 = the LLM spend limit: not requeued, raise it first)
#   hd_sweep_rows FILE   the number of rows of a sweep file (header excluded)
#   hd_sweep_sets FILE I DIR   SETS=(--set run.dir=DIR/row-I --set key=value...)
#                      for row I; returns 2 with a message for a bad row
set -euo pipefail

# a sweep file: '#' comments and blank lines ignored; a header of configuration
# keys, then one row of values per array task (tab- or space-separated; a
# Windows-edited file's CR line ends and byte-order mark are dropped)
# (empty arrays are expanded as ${A[@]+"${A[@]}"}: bash before 4.4 calls "${A[@]}" unbound)
hd_sweep_lines() { sed -e 's/\r$//' -e '1s/^\xEF\xBB\xBF//' "$1" | grep -v '^[[:space:]]*\(#\|$\)' || true; }
hd_sweep_rows() { echo $(( $(hd_sweep_lines "$1" | wc -l) - 1 )); }
hd_sweep_sets() {
    local file=$1 i=$2 dir=$3 lines keys vals k
    mapfile -t lines < <(hd_sweep_lines "$file")
    read -r -a keys <<<"${lines[0]:-}"
    (( ${#keys[@]} > 0 )) || { echo "error: $file: no header of configuration keys" >&2; return 2; }
    (( i + 1 < ${#lines[@]} )) || { echo "error: $file has no row $i (hint: --array=0-$((${#lines[@]} - 2)))" >&2; return 2; }
    read -r -a vals <<<"${lines[i + 1]}"
    [[ ${#vals[@]} -eq ${#keys[@]} ]] ||
        { echo "error: $file: row $i has ${#vals[@]} values for ${#keys[@]} keys (${keys[*]})" >&2; return 2; }
    SETS=(--set run.dir="$dir/row-$i")
    for k in "${!keys[@]}"; do SETS+=(--set "${keys[k]}=${vals[k]}"); done
}

hd_binary() {
    if [[ -n ${HDISTILL:-} ]]; then echo "$HDISTILL"
    elif [[ -x $HDISTILL_ROOT/build/hdistill ]]; then echo "$HDISTILL_ROOT/build/hdistill"
    elif [[ -f $HDISTILL_ROOT/install-manifest.txt && -x $HDISTILL_ROOT/../../bin/hdistill ]]; then
        echo "$(cd "$HDISTILL_ROOT/../../bin" && pwd)/hdistill"
    else command -v hdistill || echo "$HDISTILL_ROOT/build/hdistill"; fi
}

hd_setup() {
    HDISTILL=$(hd_binary)
    [[ -x $HDISTILL ]] || { echo "error: $HDISTILL is not an executable (hint: make, or set HDISTILL, or put hdistill on PATH)" >&2; exit 2; }
    # threads x ranks per node never exceed the cores Slurm gave us
    export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
    export OPENBLAS_NUM_THREADS=$OMP_NUM_THREADS
    echo "$(date -u +%FT%TZ) job ${SLURM_JOB_ID:-?} (array task ${SLURM_ARRAY_TASK_ID:--}) restart" \
        "${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-1} tasks x $OMP_NUM_THREADS threads"
    # Slurm may send the time-limit signal up to a minute early, also before the run has started
    # (during the --dry-run): remember it instead of dying of it; hd_step then does not start
    HD_STOP=0
    trap 'HD_STOP=1; echo "$(date -u +%FT%TZ) signal before the run started"' USR1 TERM
}

hd_step() {
    if [[ ${HD_STOP:-0} == 1 ]]; then
        echo "$(date -u +%FT%TZ) not starting the run: stopped before it (exit 3, requeue)"
        return 3
    fi
    "$@" &
    local child=$! rc=0
    trap "echo \"\$(date -u +%FT%TZ) signal: asking hdistill to checkpoint and stop\"; kill -USR1 $child 2>/dev/null || true" USR1 TERM
    if [[ ${HD_STOP:-0} == 1 ]]; then # the signal came as the step started
        echo "$(date -u +%FT%TZ) signal: asking hdistill to checkpoint and stop"
        kill -USR1 "$child" 2>/dev/null || true
    fi
    while true; do
        wait "$child" && rc=0 || rc=$?
        kill -0 "$child" 2>/dev/null || break # interrupted by a trapped signal: wait again
    done
    trap 'HD_STOP=1' USR1 TERM
    return "$rc"
}

hd_finish() {
    local rc=$1
    if [[ $rc -eq 3 ]]; then
        echo "$(date -u +%FT%TZ) stopped early (exit 3): requeueing to resume from the last checkpoint"
        scontrol requeue "${SLURM_JOB_ID}"
        exit 0
    fi
    exit "$rc"
}
