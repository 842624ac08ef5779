# tests/e2e/lib.sh -- shared helpers for the shell tests (sourced).
# check NAME CMD...   runs CMD, counts a pass if it exits 0, else prints NAME
# finish              prints "N passed, N failed" and exits non-zero on failures
# h5cmp A B DATASET MODE [TOL]   a dataset of two HDF5 files, bitwise or within TOL
# slurm_job_state JOB           a Slurm job's states; slurm_wait_job JOB [T] waits until it ends
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HD=$ROOT/build/hdistill
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# quieter Open MPI on machines without a high-speed network
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN="mpirun --allow-run-as-root --oversubscribe --bind-to none"
PASS=0; FAIL=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hdistill-test.XXXXXX")
trap '[[ -n ${KEEP_TMP:-} ]] || rm -rf "$TMP"' EXIT

check() {
    local name=$1; shift
    if "$@"; then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); echo "FAIL: $name" >&2; fi
}
finish() {
    echo "$PASS passed, $FAIL failed"
    [[ $FAIL -eq 0 ]]
}
# h5cmp FILE_A FILE_B DATASET MODE [TOL]: MODE exact | rel
h5cmp() {
    $PY - "$@" <<'PYEOF'
import sys, h5py, numpy as np
a, b, ds, mode = sys.argv[1:5]
tol = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
x = h5py.File(a, "r")[ds][()]
y = h5py.File(b, "r")[ds][()]
if x.shape != y.shape:
    print(f"{ds}: shapes {x.shape} vs {y.shape}", file=sys.stderr); sys.exit(1)
if mode == "exact":
    same = np.array_equal(x.view(np.uint8), y.view(np.uint8))
    if not same:
        i = int(np.argmax(x != y))
        print(f"{ds}: not bitwise equal; first difference at {i}: {x.flat[i]!r} vs {y.flat[i]!r}", file=sys.stderr)
    sys.exit(0 if same else 1)
r = np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-30))
print(f"{ds}: max relative difference {r:.3g} over {x.size} values")
sys.exit(0 if r <= tol else 1)
PYEOF
}

# slurm_job_state JOB: the states of the job (and its array tasks), sorted, unique
slurm_job_state() {
    scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# slurm_wait_job JOB [TIMEOUT_S]: waits until the job (all its tasks) has
# ended, through requeues, and prints its state(s) (TIMEOUT_WAITING(...) after
# TIMEOUT_S, default 300).  A requeued job would wait Slurm's ~120 s before
# starting again: after every 3 s pending (so the old instance's credential
# is not the current second's -- a restart in the same second is refused as
# "credential revoked") its start is set to now; a job pending on a
# dependency is left alone.  A job that can never run (more nodes or CPUs
# than the partition has) is cancelled and reported UNRUNNABLE(...).
slurm_wait_job() {
    local id=$1 limit=${2:-300} i st= pending=0
    for ((i = 0; i < limit * 2; i++)); do
        if scontrol show job "$id" 2>/dev/null | grep -q 'Reason=\(PartitionConfig\|PartitionNodeLimit\)'; then
            echo "UNRUNNABLE($(sinfo -h -o '%D nodes x %c CPUs'))"; scancel "$id"; return
        fi
        st=$(slurm_job_state "$id")
        case " $st " in
            *" PENDING "*)
                if scontrol show job "$id" | grep -q 'Reason=Dependency\b'; then pending=0; else
                    pending=$((pending + 1))
                    (( pending % 6 == 0 )) && scontrol update JobId="$id" StartTime=now >/dev/null 2>&1
                fi ;;
            *" RUNNING "*|*" CONFIGURING "*|*" COMPLETING "*|*" REQUEUED "*) pending=0 ;;
            *) echo "$st"; return ;;
        esac
        sleep 0.5
    done
    echo "TIMEOUT_WAITING($st)"
}
