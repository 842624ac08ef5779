#!/usr/bin/env bash
# Runs every test program and test script; prints one line per test and the
# total "N passed, N failed" last; exits non-zero on any failure.  A test
# that cannot run here (e.g. the multi-node cluster without root) exits 77
# after a line "skip: why": it is listed as skipped, neither passed nor failed.
# Usage: tests/run_all.sh [NAME_FILTER]
set -uo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
filter=${1:-}
mkdir -p build/test-logs
total_p=0; total_f=0; broken=(); skipped=()
run_one() {  # name, command...
    local name=$1; shift
    [[ -n "$filter" && "$name" != *"$filter"* ]] && return
    local log=build/test-logs/$name.log t0=$SECONDS
    "$@" >"$log" 2>&1; local rc=$?
    if [[ $rc -eq 77 ]]; then
        local why; why=$(grep -m1 '^skip: ' "$log"); why=${why#skip: }
        printf '%-28s skipped: %s  (%ds)\n' "$name" "${why:-no reason given}" $((SECONDS - t0))
        skipped+=("$name")
        return
    fi
    local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    local p=0 f=0
    if [[ -n "$line" ]]; then p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}; fi
    if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; fi   # crashed or exited non-zero
    total_p=$((total_p + p)); total_f=$((total_f + f))
    printf '%-28s %4d passed %3d failed  (%ds)\n' "$name" "$p" "$f" $((SECONDS - t0))
    if [[ $f -ne 0 ]]; then broken+=("$name"); echo "---- tail of $log"; tail -25 "$log"; echo "----"; fi
}
# the code's shape: layers only include downwards, no function over 150 lines
check_tool() { if "$@"; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; return 1; fi; }
run_one check_layers check_tool tools/check_layers.sh
run_one check_functions check_tool /usr/bin/python3 tools/check_functions.py 150
for t in build/tests/test_*; do
    [[ -x "$t" && "$t" != *.d ]] || continue
    n=$(basename "$t")
    run_one "$n" "$t"
done
for s in tests/e2e/t_*.sh tests/cluster/t_*.sh; do
    [[ -f "$s" ]] || continue
    n=$(basename "$s" .sh)
    run_one "$n" bash "$s"
done
[[ ${#skipped[@]} -gt 0 ]] && echo "skipped: ${skipped[*]}"
[[ ${#broken[@]} -gt 0 ]] && echo "failing: ${broken[*]}"
echo "$total_p passed, $total_f failed"
[[ $total_f -eq 0 ]]
