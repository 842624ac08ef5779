#!/usr/bin/env bash
# bench/scale.sh -- data-parallel training across two nodes joined by a slow
# link: `hdistill train` of model shapes (model.preset, random init,
# configs/sft-tiny.json's BPE tokenizer and pairs from tools/make_pairs.py,
# as bench/memory.sh does) with one rank on each node of the 2-node test
# cluster (tests/cluster/cluster.sh; srun --mpi=pmix, TCP over the cluster's
# bridge).  Per preset (SCALE_PRESETS: gpt2-124m and qwen2.5-0.5b) five runs:
#   link unshaped: train.overlap=0 (one blocking allreduce after the
#     backward pass) | train.overlap=1 (train.bucket_mb buckets reduced with
#     non-blocking allreduces while the backward pass goes on, moved on by
#     the progress thread: train.progress_thread=1, the default)
#   link shaped (tbf on both ends of each node's link, SCALE_RATE):
#     train.overlap=0 | overlap=1 progress_thread=0 (the reductions move only
#     when the backward pass calls MPI, between layers) | overlap=1
#     progress_thread=1
# Step time: the median step of /metrics/train/time after SCALE_WARMUP
# steps; communication and the share of it hidden behind compute: rank 0's
# /trace (train.trace=1, analysis/hdio.py comm_hidden); the forward and
# backward pass's own time (the trace's compute interval, median) shows how
# much the reduction beside it slows the compute (here both nodes share the
# machine's cores, so the TCP stack's work lands on them).  The link's rate is
# measured too (a TCP stream node1 -> node2).  Prints a Markdown table per
# preset, the ratios shaped-overlapped / unshaped (goal <= 1.1: the slow
# link costs little once hidden) and overlapped / blocking on each link,
# and one line per preset:
#   RESULT rate=... step_unshaped_s=... step_shaped_blocking_s=... step_shaped_overlap_s=...
#          shaped_overlap_vs_unshaped=... overlap_vs_blocking_shaped=... hidden_pct_shaped=... failed_runs=...
#          preset=... step_shaped_overlap_nothread_s=... nothread_vs_unshaped=... hidden_pct_shaped_nothread=...
#          libnbc_iallreduce_algorithm=... params=... rows=...
# (the keys up to failed_runs as before, the overlapped runs with the progress
# thread; step_unshaped_s: the better of the two unshaped runs; nothread: the
# shaped, overlapped run with train.progress_thread=0; failed_runs: of this
# preset).  A build without train.overlap (hdistill exits 2 naming the key)
# is reported and only the blocking runs are made; one without
# train.progress_thread makes no nothread run (n/a).  Needs root (the
# cluster); never part of the tests (make bench-scale).  A preset whose two
# ranks' dry-run plan does not fit MemAvailable is skipped with a SKIPPED
# line (SCALE_FORCE=1 runs it anyway).  About 2 x 3 GiB and 6 minutes for
# gpt2-124m, 2 x 9 GiB and 20-30 minutes for qwen2.5-0.5b (its runs also
# write a 6 GB final checkpoint each).  A run that fails is shown and made
# once more, and counted in the RESULT line (failed_runs): a rank of this
# bench once died of SIGSEGV in the shaped, overlapped run, not reproduced
# since -- a crash is never hidden.
# Environment: HDISTILL (the binary, default build/hdistill), SCALE_PRESETS
# ("gpt2-124m qwen2.5-0.5b"; SCALE_PRESET, one name, still works),
# SCALE_RATE (1gbit; e.g. 100mbit), SCALE_ROWS (rows per rank per step;
# default 2 for gpt2-124m, 1 for larger presets), SCALE_SEQ (256),
# SCALE_STEPS (timed steps, 5), SCALE_WARMUP (1), SCALE_BUCKET_MB (25),
# SCALE_FORCE=1 (start despite low memory), SCALE_LIBNBC_ALG (exported to
# the runs as OMPI_MCA_coll_libnbc_iallreduce_algorithm: 0 = Open MPI's own
# choice, the binomial tree for in-place reductions; unset = the ring,
# which hdistill selects on 2 ranks, base/comm.h).  Smoke check of the script: SCALE_PRESETS=tiny SCALE_STEPS=1.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=/usr/bin/python3
HD=${HDISTILL:-$ROOT/build/hdistill}
PRESETS=${SCALE_PRESETS:-${SCALE_PRESET:-gpt2-124m qwen2.5-0.5b}}
RATE=${SCALE_RATE:-1gbit}
SEQ=${SCALE_SEQ:-256}
STEPS=${SCALE_STEPS:-5}
WARMUP=${SCALE_WARMUP:-1}
BUCKET=${SCALE_BUCKET_MB:-25}
die() { echo "bench/scale.sh: $*" >&2; exit 1; }
rows_of() { [[ -n ${SCALE_ROWS:-} ]] && echo "$SCALE_ROWS" || { [[ $1 == gpt2-124m || $1 == tiny ]] && echo 2 || echo 1; }; }

[[ -x $HD ]] || die "no $HD (hint: make, or set HDISTILL)"
source tests/cluster/cluster.sh
if reason=$(cluster_unavailable); then
    echo "bench/scale.sh: cannot make the 2-node test cluster here: $reason" >&2
    exit 2
fi

OUT=$(mktemp -d "${TMPDIR:-/tmp}/hdistill-scale.XXXXXX")
trap 'cluster_stop; rm -rf "$OUT"' EXIT
$PY tools/make_pairs.py 400 "$OUT/pairs.jsonl"
# train_args PRESET: the training command's configuration
train_args() {
    local rows; rows=$(rows_of "$1")
    echo configs/sft-tiny.json --set data.pairs="$OUT/pairs.jsonl" --set model.preset="$1" \
        --set train.seq_len="$SEQ" --set train.batch_size=$((2 * rows)) --set train.micro_batch=0 \
        --set train.steps=$((WARMUP + STEPS)) --set train.warmup_steps=1 --set train.ckpt_every=0 \
        --set run.threads=1 --set run.log_every=1
}
first=${PRESETS%% *}
read -ra train <<<"$(train_args "$first")"

# does this build have the overlap options / the progress thread? (hdistill exits 2 naming an unknown key)
overlap_ok=1 progress_ok=1
if ! err=$("$HD" check "${train[@]}" --set train.overlap=1 --set train.bucket_mb="$BUCKET" --set train.trace=1 2>&1 >/dev/null); then
    overlap_ok=0 progress_ok=0
    echo "NOTE: this hdistill does not know the overlap options: ${err#error: }" >&2
    echo "NOTE: measuring the blocking reduction only (build a tree with train.overlap/train.bucket_mb/train.trace)" >&2
elif ! err=$("$HD" check "${train[@]}" --set train.progress_thread=1 2>&1 >/dev/null); then
    progress_ok=0
    echo "NOTE: this hdistill has no progress thread (${err#error: }): no train.progress_thread=0 run" >&2
fi
ALG=${SCALE_LIBNBC_ALG:-}
[[ -n $ALG ]] && export OMPI_MCA_coll_libnbc_iallreduce_algorithm=$ALG

# memory: two ranks of each preset's plan must fit (a preset that does not is skipped)
declare -A PLAN NPARAM
RUN_PRESETS=()
avail=$(awk '/^MemAvailable:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
for p in $PRESETS; do
    read -ra tp <<<"$(train_args "$p")"
    dry=$(OMP_NUM_THREADS=1 OMPI_MCA_btl=self,vader mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 \
          "$HD" train "${tp[@]}" --set run.dir="$OUT/dry" --dry-run 2>&1) || { echo "$dry" >&2; die "hdistill train --dry-run failed ($p)"; }
    PLAN[$p]=$(grep -o 'memory per rank: .*' <<<"$dry" | sed -E 's/.* ([0-9.]+) GiB in all.*/\1/' | head -n 1)
    NPARAM[$p]=$(grep -o 'parameters: [0-9]*' <<<"$dry" | head -n 1 | grep -o '[0-9]*$')
    if [[ ${SCALE_FORCE:-0} != 1 ]] && $PY -c "import sys; sys.exit(0 if $avail < 2 * (${PLAN[$p]:-0} + 0.5) else 1)"; then
        echo "SKIPPED preset=$p reason=memory need_gib=$($PY -c "print(f'{2 * (${PLAN[$p]:-0} + 0.5):.1f}')") mem_available_gib=$avail (SCALE_FORCE=1 runs it anyway)"
        continue
    fi
    RUN_PRESETS+=("$p")
    echo "$p, 2 nodes x 1 rank x 1 thread, $(rows_of "$p") rows x $SEQ tokens per rank per step, $WARMUP + $STEPS steps;" \
         "${NPARAM[$p]:-?} parameters (the gradient reduced each step: $($PY -c "print(f'{4 * ${NPARAM[$p]:-0} / 1e6:.0f}')") MB);" \
         "plan per rank ${PLAN[$p]} GiB; bucket ${BUCKET} MB"
done
[[ ${#RUN_PRESETS[@]} -gt 0 ]] || die "no preset fits this machine's memory (MemAvailable $avail GiB)"
echo "non-blocking allreduce: coll_libnbc_iallreduce_algorithm=${ALG:-not set (hdistill sets 1, the ring)}"

cluster_start "$OUT/cluster" 2 || die "the cluster did not start (logs: $OUT/cluster/log)"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMPI_MCA_btl=tcp,vader,self

# link_rate: Gbit/s of one TCP stream node1 -> node2 over 3 s, measured by the receiver
link_rate() {
    local port=5599
    cluster_exec node2 $PY -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
c, _ = s.accept(); n = 0; t0 = None
while True:
    b = c.recv(1 << 20)
    if not b: break
    if t0 is None: t0 = time.time()
    n += len(b)
print(f"{n * 8 / (time.time() - t0) / 1e9:.3f}")' "$port" >"$OUT/rate" &
    local rx=$!
    sleep 0.5
    cluster_exec node1 $PY -c '
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2]))); buf = b"x" * (1 << 20); t = time.time() + 3
while time.time() < t: c.sendall(buf)
c.close()' "$(cluster_addr node2)" "$port"
    wait "$rx"
    cat "$OUT/rate"
}

declare -A STEP COMM HID COMP FAILED
# modes: 0 = blocking, 1 = overlap with the progress thread, 1n = overlap without it
mode_sets() {
    case $1 in
        0) echo --set train.overlap=0 ;;
        1) echo --set train.overlap=1 $([[ $progress_ok -eq 1 ]] && echo --set train.progress_thread=1) ;;
        1n) echo --set train.overlap=1 --set train.progress_thread=0 ;;
    esac
}
mode_name() { case $1 in 0) echo "train.overlap=0" ;; 1) echo "train.overlap=1, progress thread" ;; 1n) echo "train.overlap=1, no progress thread" ;; esac; }
# run PRESET LINK MODE: one training run on the cluster; fills STEP/COMM/HID[PRESET,LINK,MODE]
run() {
    local p=$1 link=$2 mode=$3 dir=$OUT/run-$1-$2-$3 sets=() tp=()
    read -ra tp <<<"$(train_args "$p")"
    [[ $overlap_ok -eq 1 ]] && read -ra sets <<<"$(mode_sets "$mode") --set train.bucket_mb=$BUCKET --set train.trace=1"
    echo "  $p, $link link, $(mode_name "$mode") ..." >&2
    local try
    for try in 1 2; do
        # -K: a rank that dies takes the other down (else it waits in a collective)
        timeout 3600 srun -K -N 2 --ntasks-per-node=1 --mpi=pmix "$HD" train "${tp[@]}" ${sets[@]+"${sets[@]}"} \
            --set run.dir="$dir" >"$dir.log" 2>&1 && break
        tail -n 20 "$dir.log" >&2
        FAILED[$p]=$((${FAILED[$p]:-0} + 1))
        [[ $try -eq 1 ]] || die "training ($p, $link, $(mode_name "$mode")) failed twice"
        echo "NOTE: training ($p, $link, $(mode_name "$mode")) failed (log above); once more from scratch" >&2
        rm -rf "$dir"
    done
    local r
    r=$($PY - "$dir" "$WARMUP" "$ROOT/analysis" <<'PYEOF'
import sys, h5py, numpy as np
sys.path.insert(0, sys.argv[3])
import hdio
f = h5py.File(sys.argv[1] + "/run.h5", "r"); w = int(sys.argv[2])
d = np.diff(np.concatenate([[0.0], f["/metrics/train/time"][()]]))  # seconds of each step
step = float(np.median(d[w:])) if len(d) > w else float("nan")
comm = hid = comp = float("nan")
if "trace" in f:
    tr = {k: f["/trace"][k][()] for k in ("step", "rank", "kind", "t0", "t1")}
    keep = tr["step"] > w
    tr = {k: v[keep] for k, v in tr.items()}
    n = len(set(tr["step"].tolist()))
    c, h = hdio.comm_hidden(tr, rank=0)
    comm, hid = (c / n, (100.0 * h / c if c > 0 else 0.0)) if n else (float("nan"), float("nan"))
    sel = (tr["rank"] == 0) & (tr["kind"] == 0)  # the compute interval: forward + backward
    comp = float(np.median(tr["t1"][sel] - tr["t0"][sel])) if sel.any() else float("nan")
print(f"{step:.3f} {comm:.3f} {hid:.1f} {comp:.3f}")
PYEOF
) || die "could not read $dir/run.h5"
    read -r STEP[$p,$link,$mode] COMM[$p,$link,$mode] HID[$p,$link,$mode] COMP[$p,$link,$mode] <<<"$r"
    echo "  $p, $link link, $(mode_name "$mode"): step ${STEP[$p,$link,$mode]} s," \
         "reduction ${COMM[$p,$link,$mode]} s/step, ${HID[$p,$link,$mode]} % hidden" >&2
    rm -rf "$dir/ckpt"
}

free_modes=(0 1) shaped_modes=(0 1n 1)
[[ $progress_ok -eq 1 ]] || shaped_modes=(0 1)
[[ $overlap_ok -eq 1 ]] || free_modes=(0) shaped_modes=(0)
rate_free=$(link_rate)
echo "link node1 -> node2 unshaped: $rate_free Gbit/s"
for p in "${RUN_PRESETS[@]}"; do for m in "${free_modes[@]}"; do run "$p" unshaped "$m"; done; done
cluster_shape "$RATE" || die "tc tbf on the nodes' links failed"
rate_shaped=$(link_rate)
echo "link node1 -> node2 shaped to $RATE: $rate_shaped Gbit/s"
for p in "${RUN_PRESETS[@]}"; do for m in "${shaped_modes[@]}"; do run "$p" shaped "$m"; done; done
cluster_unshape

# same_curves PRESET MODES...: are the shaped runs' loss curves bitwise the blocking one's?
same_curves() {
    $PY - "$OUT" "$@" <<'PYEOF'
import h5py, numpy as np, sys
out, p, modes = sys.argv[1], sys.argv[2], sys.argv[3:]
loss = {m: h5py.File(f"{out}/run-{p}-shaped-{m}/run.h5", "r")["/metrics/train/loss"][()] for m in modes}
same = all(np.array_equal(loss[m].view(np.uint8), loss["0"].view(np.uint8)) for m in modes)
print("bitwise the same" if same else "DIFFERENT")
PYEOF
}
ratio() { $PY -c "import math; a, b = float('$1'), float('$2'); print('n/a' if math.isnan(a) or math.isnan(b) or b == 0 else f'{a / b:.3f}')"; }
show() { [[ $1 == nan ]] && echo n/a || echo "$1"; }
for p in "${RUN_PRESETS[@]}"; do
    same=""
    if [[ $overlap_ok -eq 1 ]]; then
        same=$(same_curves "$p" "${shaped_modes[@]}")
    fi
    s_free0=${STEP[$p,unshaped,0]} s_free1=${STEP[$p,unshaped,1]:-nan}
    s_sh0=${STEP[$p,shaped,0]} s_sh1=${STEP[$p,shaped,1]:-nan} s_sh1n=${STEP[$p,shaped,1n]:-nan}
    s_free=$($PY -c "import math, sys; v = [float(x) for x in sys.argv[1:] if not math.isnan(float(x))]; print(min(v))" "$s_free0" "$s_free1")
    echo
    echo "### $p"
    echo
    echo "| link | mode | step s | forward + backward s (rank 0) | gradient reduction s/step (rank 0) | hidden behind backward |"
    echo "| --- | --- | --- | --- | --- | --- |"
    for link in unshaped shaped; do
        modes=("${free_modes[@]}"); [[ $link == shaped ]] && modes=("${shaped_modes[@]}")
        for m in "${modes[@]}"; do
            comm=${COMM[$p,$link,$m]} hid="${HID[$p,$link,$m]} %" comp=${COMP[$p,$link,$m]}
            [[ $comm == nan ]] && comm="n/a (no train.trace)" hid="n/a" comp="n/a"
            echo "| $link ($([[ $link == shaped ]] && echo "$RATE, $rate_shaped" || echo "$rate_free") Gbit/s) | $(mode_name "$m") | ${STEP[$p,$link,$m]} | $comp | $comm | $hid |"
        done
    done
    echo
    r_sh_free=$(ratio "$s_sh1" "$s_free")
    r_shn_free=$(ratio "$s_sh1n" "$s_free")
    r_ov_sh=$(ratio "$s_sh1" "$s_sh0")
    echo "shaped, overlapped (progress thread) / best unshaped:    $r_sh_free (goal <= 1.1)"
    echo "shaped, overlapped (no progress thread) / best unshaped: $r_shn_free"
    echo "shaped, blocking / best unshaped:                        $(ratio "$s_sh0" "$s_free")"
    echo "overlapped / blocking, shaped link:                      $r_ov_sh"
    echo "overlapped / blocking, unshaped link:                    $(ratio "$s_free1" "$s_free0")"
    [[ -n $same ]] && echo "loss curves of the shaped runs (every mode): $same"
    [[ $overlap_ok -eq 1 ]] || echo "overlap: not measured (this build has no train.overlap)"
    [[ ${FAILED[$p]:-0} -eq 0 ]] || echo "WARNING: ${FAILED[$p]} training run(s) of $p failed and were made again (logs above)"
    printf 'RESULT rate=%s step_unshaped_s=%s step_shaped_blocking_s=%s step_shaped_overlap_s=%s shaped_overlap_vs_unshaped=%s overlap_vs_blocking_shaped=%s hidden_pct_shaped=%s failed_runs=%s preset=%s step_shaped_overlap_nothread_s=%s nothread_vs_unshaped=%s hidden_pct_shaped_nothread=%s libnbc_iallreduce_algorithm=%s params=%s rows=%s\n' \
        "$RATE" "$s_free" "$s_sh0" "$(show "$s_sh1")" "$r_sh_free" "$r_ov_sh" "$(show "${HID[$p,shaped,1]:-nan}")" \
        "${FAILED[$p]:-0}" "$p" "$(show "$s_sh1n")" "$r_shn_free" "$(show "${HID[$p,shaped,1n]:-nan}")" "${ALG:-default}" \
        "${NPARAM[$p]:-n/a}" "$(rows_of "$p")"
done
