#!/usr/bin/env bash
# jobs/submit.sh -- submits a whole sweep as a dependency chain:
#   teach.sbatch -> sweep.sbatch (array, one task per row) -> analysis.sbatch
# each starting only if the previous one succeeded (--dependency=afterok).
# usage: jobs/submit.sh CONFIG SWEEP_FILE SWEEP_DIR [extra sbatch options for the sweep tasks...]
# Every row is checked first (hdistill check CONFIG --set ..., in the
# directory the jobs run in): a bad key or value stops here, before anything
# is submitted.  The jobs run in the checkout this script belongs to, or, for
# an installed copy (PREFIX/share/hdistill/jobs), in the directory it is
# called from; HDISTILL_WORKDIR overrides.  Relative paths in CONFIG (run.dir,
# data.path, ...) resolve there.  The jobs read copies of CONFIG and SWEEP_FILE in SWEEP_DIR
# (config.json, sweep.tsv), so editing them later changes no pending row.
# Prints the three job ids.
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: jobs/submit.sh CONFIG SWEEP_FILE SWEEP_DIR [sbatch options for the rows...]" >&2; exit 2; }
CONFIG=$1 SWEEP=$2 SWEEP_DIR=$3
shift 3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[[ -f $CONFIG ]] || { echo "error: $CONFIG: no such file" >&2; exit 2; }
[[ -f $SWEEP ]] || { echo "error: $SWEEP: no such file" >&2; exit 2; }
# the jobs run in WORK (-D): absolute paths, whatever the directory submit.sh is called from
CONFIG=$(realpath "$CONFIG") SWEEP=$(realpath "$SWEEP") SWEEP_DIR=$(realpath -m "$SWEEP_DIR")
if [[ -n ${HDISTILL_WORKDIR:-} ]]; then WORK=$(realpath -m "$HDISTILL_WORKDIR")
elif [[ -f $ROOT/install-manifest.txt ]]; then WORK=$PWD
else WORK=$ROOT; fi
HDISTILL_ROOT=$ROOT
source "$ROOT/jobs/common.sh"
HDISTILL=$(realpath -m "$(hd_binary)")
[[ -x $HDISTILL ]] || { echo "error: $HDISTILL is not an executable (hint: make, or set HDISTILL, or put hdistill on PATH)" >&2; exit 2; }
rows=$(hd_sweep_rows "$SWEEP")
(( rows > 0 )) || { echo "error: $SWEEP: no rows under a header of configuration keys" >&2; exit 2; }
# every row must be a valid configuration before anything is submitted (nothing paid for a typo)
read -r -a EXTRA <<<"${HDISTILL_SETS:-}"
for (( i = 0; i < rows; i++ )); do
    hd_sweep_sets "$SWEEP" "$i" "$SWEEP_DIR" || exit 2
    err=$(cd "$WORK" && "$HDISTILL" check "$CONFIG" ${EXTRA[@]+"${EXTRA[@]}"} ${SETS[@]+"${SETS[@]}"} 2>&1 >/dev/null) ||
        { echo "error: $SWEEP row $i: ${err#error: }" >&2; exit 2; }
done
echo "checked $rows sweep rows against $CONFIG"
# the jobs read copies: editing CONFIG or SWEEP while the array is pending (or a row is requeued)
# does not change what a row runs
mkdir -p "$SWEEP_DIR"
[[ $CONFIG -ef $SWEEP_DIR/config.json ]] || cp "$CONFIG" "$SWEEP_DIR/config.json"
[[ $SWEEP -ef $SWEEP_DIR/sweep.tsv ]] || cp "$SWEEP" "$SWEEP_DIR/sweep.tsv"
CONFIG=$SWEEP_DIR/config.json SWEEP=$SWEEP_DIR/sweep.tsv
env=ALL,HDISTILL_ROOT=$ROOT,CONFIG=$CONFIG
teach=$(sbatch --parsable -D "$WORK" -o "$SWEEP_DIR/teach-%j.out" --export="$env" "$ROOT/jobs/teach.sbatch")
sweep=$(sbatch --parsable -D "$WORK" -o "$SWEEP_DIR/row-%a-%A.out" --dependency=afterok:"$teach" --array=0-$((rows - 1)) \
    --export="$env,SWEEP=$SWEEP,SWEEP_DIR=$SWEEP_DIR" "$@" "$ROOT/jobs/sweep.sbatch")
analysis=$(sbatch --parsable -D "$WORK" -o "$SWEEP_DIR/analysis-%j.out" --dependency=afterok:"$sweep" \
    --export="ALL,HDISTILL_ROOT=$ROOT,SWEEP_DIR=$SWEEP_DIR" "$ROOT/jobs/analysis.sbatch")
echo "teach $teach"
echo "sweep $sweep ($rows rows)"
echo "analysis $analysis"
