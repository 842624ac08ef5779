#!/usr/bin/env bash
# tests/fuzz/run.sh -- what `make fuzz-run` runs: every libFuzzer target of
# BUILD_DIR/fuzz (made by `make fuzz`) for SECONDS each, FUZZ_JOBS of them
# at a time (default 1: one after the other), on its committed seed corpus
# tests/fuzz/corpus/<target>/ (read only) plus a working corpus
# BUILD_DIR/corpus/<target>/ that keeps what it finds between runs, with the
# dictionary tests/fuzz/dict/<target>.dict when there is one.
# SECONDS 0 replays the corpora only (every seed once: a quick regression
# run).  Any crash, leak, undefined behaviour, timeout or out-of-memory fails
# the run; the input is saved as BUILD_DIR/artifacts/<target>-crash-* (add it
# to the corpus as crash_<what> and a check to the module's unit test: see
# tests/README.md).  Prints one line per target -- executions, exec/s,
# coverage (libFuzzer's cov: edges, ft: features, from its last status line),
# corpus, crashes (0/1: a target stops at its first), failures inside HDF5
# -- and "N passed, N failed" last.
# Usage: tests/fuzz/run.sh [BUILD_DIR [SECONDS [TARGET_FILTER]]]
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-fuzz}
SECS=${2:-10}
FILTER=${3:-}
JOBS=${FUZZ_JOBS:-1}
[[ -d $BUILD/fuzz ]] || { echo "tests/fuzz/run.sh: $BUILD/fuzz missing (make fuzz)" >&2; exit 2; }
# intercept_tls_get_addr=0: see tests/asan/run.sh (LSan's tracer and glibc's dynamic TLS)
export ASAN_OPTIONS=${ASAN_OPTIONS:-intercept_tls_get_addr=0:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# -max_len per target: the seeds of the HDF5 and safetensors targets are real
# files of 20-160 KB and must not be cut; the text targets stay small.
max_len() {
    case $1 in
        ckpt) echo 163840 ;; h5_run) echo 131072 ;; h5_data) echo 65536 ;; safetensors) echo 49152 ;;
        tokenizer_hf | chat_response | critic | ingest) echo 16384 ;; *) echo 8192 ;;
    esac
}

# Frames of the sanitizer and libFuzzer runtimes and of libc's memory and
# string functions: skipped when deciding whose code a report is in.
RUNTIME_RE='__interceptor_|__asan|__sanitizer|__lsan|__ubsan|fuzzer::|/sanitizer_common/|libc\.so|__libc_|libgcc_s|_Unwind_|sysdeps/|_start | in (malloc|calloc|realloc|free|memcpy|memmove|memset|memcmp|strlen|strnlen|strcmp|strncmp|strdup|strndup|strcpy|strncpy)[ (]| in __(mem|str)[a-z0-9_]*'

# The first frame outside the runtimes of the first stack in LOG after the
# first line matching FROM ("" = the first stack).
first_frame() {
    awk -v from="$2" 'BEGIN { on = from == "" }
        !on && $0 ~ from { on = 1; next }
        on && /^ +#[0-9]+ / { print; seen = 1; next }
        on && seen { exit }' "$1" | grep -vE "$RUNTIME_RE" | head -1
}

# 0 if the report in LOG is a crash, hang or out-of-memory inside libhdf5
# itself: the first frame outside the runtimes is in libhdf5 (for a process
# over its memory limit: of the site holding the most memory), and for a
# bad memory access the memory is HDF5's own too (heap allocated in libhdf5, a
# stack frame or global of libhdf5; memory of ours that HDF5 overran is our
# bug).  Leaks, undefined behaviour and FUZZ_CHECK failures never are
# (leaks of HDF5's metadata cache on a failing call are suppressed by
# tests/fuzz/lsan.supp instead).
in_hdf5() {
    grep -aqE 'ERROR: (AddressSanitizer: |libFuzzer: (deadly signal|timeout|out-of-memory \((malloc|used)))' "$1" || return 1
    grep -aqE 'LeakSanitizer|runtime error:|FUZZ_CHECK' "$1" && return 1
    [[ $(first_frame "$1" "") == *libhdf5* ]] || return 1
    if grep -aq 'allocated by thread' "$1"; then
        [[ $(first_frame "$1" "allocated by thread") == *libhdf5* ]] || return 1
    fi
    if grep -aq 'is located in stack of thread' "$1"; then
        [[ $(first_frame "$1" "is located in stack of thread") == *libhdf5* ]] || return 1
    fi
    if grep -aq 'of global variable' "$1"; then
        grep -a 'of global variable' "$1" | grep -q libhdf5 || return 1
    fi
    return 0
}

# Runs target T for SECS seconds; writes its report line to
# $BUILD/logs/T.line (and the crash's excerpt after it) and its status to
# $BUILD/logs/T.rc (0 passed, 1 failed) and the count of HDF5 failures to
# $BUILD/logs/T.hdf5.
fuzz_target() {
    local t=$1 bin=$BUILD/fuzz/fuzz_$1
    local seeds=tests/fuzz/corpus/$t work=$BUILD/corpus/$t log=$BUILD/logs/$t.log out=$BUILD/logs/$t.line
    mkdir -p "$seeds" "$work"
    local args=(-max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1
                -close_fd_mask=1 -artifact_prefix="$BUILD/artifacts/$t-")
    [[ -f tests/fuzz/dict/$t.dict ]] && args+=(-dict="tests/fuzz/dict/$t.dict")
    # HDF5 is built without frame pointers: the HDF5 targets unwind every
    # allocation the slow way, so that a leak's stack shows whose it is
    # (and tests/fuzz/lsan.supp can name HDF5's own).
    local asan=$ASAN_OPTIONS
    case $t in ckpt | h5_*) asan=$asan:fast_unwind_on_malloc=0 ;; esac
    # A crash, hang or huge allocation inside HDF5 itself on a mutated file
    # is HDF5's bug, not ours: it is noted, its input moved to
    # $BUILD/artifacts/hdf5/ (also out of the working corpus, where libFuzzer
    # may have put it before it crashed), and the target goes on for the rest
    # of its time.  Anything else fails.
    local t0=$SECONDS rc=0 hdf5=0 seen=" " run art h notes=""
    : >"$log"
    while :; do
        if [[ $SECS -gt 0 ]]; then run=(-max_total_time="$((SECS - (SECONDS - t0)))"); else run=(-runs=0); fi
        ASAN_OPTIONS=$asan "$bin" "${args[@]}" "${run[@]}" "$work" "$seeds" >"$log.1" 2>&1
        rc=$?
        cat "$log.1" >>"$log"
        [[ $rc -eq 0 ]] && break
        in_hdf5 "$log.1" || break
        rc=0; hdf5=$((hdf5 + 1))
        art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log.1" | tail -1)
        h=${art##*-}
        notes+="  $t: inside HDF5 (not our code): $(grep -a -m1 -oE 'ERROR: [A-Za-z]+: [A-Za-z-]+|timeout after [0-9]+ seconds' "$log.1")${art:+, input $BUILD/artifacts/hdf5/$(basename "$art")}"$'\n'
        [[ -n $art ]] && mv "$art" "$BUILD/artifacts/hdf5/"
        [[ -n $h && -f $work/$h ]] && mv "$work/$h" "$BUILD/artifacts/hdf5/$t-corpus-$h"
        # a committed seed that makes HDF5 fail would do so on every restart
        if [[ -n $h && $seen == *" $h "* ]]; then notes+="  $t: the same input again (a seed of $seeds?): stopped"$'\n'; break; fi
        seen="$seen$h "
        [[ $SECS -gt 0 && $((SECS - (SECONDS - t0))) -gt 2 ]] || break
    done
    rm -f "$log.1"
    # executions summed over the restarts; coverage from the last status line
    local execs el speed last cov ft corp res
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | awk '{ s += $1 } END { print s + 0 }')
    el=$((SECONDS - t0)); speed=$((execs / (el > 0 ? el : 1)))
    last=$(grep -a -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
    res=ok; [[ $rc -ne 0 ]] && res="FAILED (exit $rc; $log)"
    {
        printf '%s' "$notes"
        printf '%-14s %10s %7s %6s %6s %13s %7s %5s  %s\n' "$t" "$execs" "$speed" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
            $((rc != 0)) "$hdf5" "$res"
        if [[ $rc -ne 0 ]]; then
            grep -a -E -m1 -A30 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|FUZZ_CHECK failed|deadly signal' "$log" | head -40
            grep -a -E '^artifact_prefix|Test unit written to' "$log"
        fi
    } >"$out"
    echo $((rc != 0)) >"$BUILD/logs/$t.rc"
    echo "$hdf5" >"$BUILD/logs/$t.hdf5"
}

mkdir -p "$BUILD/artifacts/hdf5" "$BUILD/logs"
targets=()
for bin in "$BUILD"/fuzz/fuzz_*; do
    [[ -x $bin && $bin != *.d ]] || continue
    t=$(basename "$bin"); t=${t#fuzz_}
    [[ -n $FILTER && $t != *"$FILTER"* ]] && continue
    targets+=("$t")
    rm -f "$BUILD/logs/$t.line" "$BUILD/logs/$t.rc" "$BUILD/logs/$t.hdf5"
done
# JOBS targets at a time (each is one process on one core); lines in order
running=0
for t in "${targets[@]}"; do
    if [[ $running -ge $JOBS ]]; then wait -n; running=$((running - 1)); fi
    fuzz_target "$t" &
    running=$((running + 1))
done
wait
pass=0; fail=0; failed=(); hdf5_all=0
printf '%-14s %10s %7s %6s %6s %13s %7s %5s  %s\n' target execs exec/s cov ft corpus crashes hdf5 result
for t in "${targets[@]}"; do
    cat "$BUILD/logs/$t.line" 2>/dev/null || echo "$t: no report"
    if [[ $(cat "$BUILD/logs/$t.rc" 2>/dev/null) == 0 ]]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1)); failed+=("$t")
    fi
    hdf5_all=$((hdf5_all + $(cat "$BUILD/logs/$t.hdf5" 2>/dev/null || echo 0)))
done
[[ $hdf5_all -gt 0 ]] && echo "$hdf5_all crash(es), hang(s) or huge allocation(s) inside HDF5 itself on mutated files (HDF5's bugs; tests/README.md)"
[[ ${#failed[@]} -gt 0 ]] && echo "failing: ${failed[*]}"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
