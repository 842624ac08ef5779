#!/usr/bin/env bash
# tests/fuzz/run.sh -- what `make fuzz-run` runs: every libFuzzer target of
# BUILD_DIR/fuzz (made by `make fuzz`) for SECONDS each, one after the other,
# on its committed seed corpus tests/fuzz/corpus/<target>/ (read only) plus a
# working corpus BUILD_DIR/corpus/<target>/ that keeps what it finds between
# runs, with the dictionary tests/fuzz/dict/<target>.dict when there is one.
# SECONDS 0 replays the corpora only (every seed once: a quick regression
# run).  Any crash, leak, undefined behaviour, timeout or out-of-memory fails
# the run; the input is saved as BUILD_DIR/artifacts/<target>-crash-* (add it
# to the corpus as crash_<what> and a check to the module's unit test: see
# docs/testing.md).  Prints one line per target (executions, exec/s,
# coverage, corpus) and "N passed, N failed" last.
# Usage: tests/fuzz/run.sh [BUILD_DIR [SECONDS [TARGET_FILTER]]]
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-fuzz}
SECS=${2:-20}
FILTER=${3:-}
[[ -d $BUILD/fuzz ]] || { echo "tests/fuzz/run.sh: $BUILD/fuzz missing (make fuzz)" >&2; exit 2; }
# intercept_tls_get_addr=0: see tests/asan/run.sh (LSan's tracer and glibc's dynamic TLS)
export ASAN_OPTIONS=${ASAN_OPTIONS:-intercept_tls_get_addr=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# -max_len per target: the seeds of the HDF5 and safetensors targets are real
# files of 20-160 KB and must not be cut; the text targets stay small.
max_len() {
    case $1 in
        ckpt) echo 163840 ;; h5_run) echo 131072 ;; h5_data) echo 65536 ;; safetensors) echo 49152 ;;
        tokenizer_hf | chat_response | ingest) echo 16384 ;; *) echo 8192 ;;
    esac
}

# 0 if the report in LOG is a crash, hang or out-of-bounds access whose first
# frame outside the sanitizer and libFuzzer runtimes is in libhdf5; leaks,
# undefined behaviour and FUZZ_CHECK failures never are (HDF5 is not
# instrumented; a leak's allocation stack does not say whose memory it is).
in_hdf5() {
    grep -qE 'ERROR: (AddressSanitizer: (SEGV|heap-buffer-overflow|stack-overflow|unknown-crash|global-buffer-overflow|heap-use-after-free)|libFuzzer: (deadly signal|timeout))' "$1" || return 1
    grep -qE 'LeakSanitizer|runtime error:|FUZZ_CHECK' "$1" && return 1
    local frame
    frame=$(grep -E '^ +#[0-9]+ ' "$1" |
        grep -vE '__interceptor_|__asan|__sanitizer|__lsan|fuzzer::|libc\.so|__libc_|/sanitizer_common/|in (memcpy|memmove|memset|strlen|strcmp|__memcpy|__memmove)\b' |
        head -1)
    [[ $frame == *libhdf5* ]]
}

mkdir -p "$BUILD/artifacts" "$BUILD/logs"
pass=0; fail=0; failed=(); hdf5=0
printf '%-15s %10s %8s %7s %7s %12s %s\n' target execs exec/s cov ft corpus result
for bin in "$BUILD"/fuzz/fuzz_*; do
    [[ -x $bin && $bin != *.d ]] || continue
    t=$(basename "$bin"); t=${t#fuzz_}
    [[ -n $FILTER && $t != *"$FILTER"* ]] && continue
    seeds=tests/fuzz/corpus/$t work=$BUILD/corpus/$t log=$BUILD/logs/$t.log
    mkdir -p "$seeds" "$work"
    args=(-max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -close_fd_mask=1
          -artifact_prefix="$BUILD/artifacts/$t-")
    [[ -f tests/fuzz/dict/$t.dict ]] && args+=(-dict="tests/fuzz/dict/$t.dict")
    # A crash or hang inside HDF5 itself on a mutated file is HDF5's bug, not
    # ours: it is noted, its input kept in $BUILD/artifacts/hdf5/, and the
    # target goes on for the rest of its time.  Anything else fails.
    t0=$SECONDS; rc=0; : >"$log"
    while :; do
        left=$((SECS - (SECONDS - t0)))
        if [[ $SECS -gt 0 ]]; then run=(-max_total_time="$left"); else run=(-runs=0); fi
        "$bin" "${args[@]}" "${run[@]}" "$work" "$seeds" >"$log.1" 2>&1
        rc=$?
        cat "$log.1" >>"$log"
        [[ $rc -eq 0 ]] && break
        in_hdf5 "$log.1" || break
        art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log.1" | tail -1)
        mkdir -p "$BUILD/artifacts/hdf5"
        [[ -n $art ]] && mv "$art" "$BUILD/artifacts/hdf5/"
        echo "  $t: inside HDF5 (not our code): $(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+|deadly signal|timeout after [0-9]+ seconds' "$log.1")${art:+, input $BUILD/artifacts/hdf5/$(basename "$art")}"
        hdf5=$((hdf5 + 1)); rc=0
        [[ $SECS -gt 0 && $((SECS - (SECONDS - t0))) -gt 2 ]] || break
    done
    rm -f "$log.1"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
    if [[ $rc -eq 0 ]]; then
        pass=$((pass + 1)); res=ok
    else
        fail=$((fail + 1)); failed+=("$t"); res="FAILED (exit $rc; $log)"
    fi
    printf '%-15s %10s %8s %7s %7s %12s %s\n' "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$res"
    if [[ $rc -ne 0 ]]; then
        grep -E -m1 -A30 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|FUZZ_CHECK failed|deadly signal' "$log" | head -40
        grep -E '^artifact_prefix|Test unit written to' "$log"
    fi
done
[[ $hdf5 -gt 0 ]] && echo "$hdf5 crash(es) or hang(s) inside HDF5 itself on mutated files (HDF5's bugs; docs/testing.md)"
[[ ${#failed[@]} -gt 0 ]] && echo "failing: ${failed[*]}"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
