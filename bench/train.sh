#!/usr/bin/env bash
# bench/train.sh -- training throughput of hdistill vs PyTorch, same machine,
# same run.  Models `small` (L6 d512 V16384, 16x256) and `gpt2-124m`
# (L12 d768 V50257, 8x256), each as 1 rank x 2 threads and 2 ranks x 1
# thread; PyTorch (Debian python3-torch) on the same model, batch, ranks
# (DistributedDataParallel/gloo) and threads, taking the better of the
# default OpenMP wait policy and OMP_WAIT_POLICY=PASSIVE (docs/performance.md); plus the
# OpenBLAS sgemm peak on GPT-2 shapes.  Prints a Markdown table and
#   RESULT train_tok_s=... pytorch_tok_s=... ratio_vs_pytorch=... mfu=...
# for gpt2-124m at 1 rank x 2 threads (mfu = model FLOP/s / sgemm peak).
# Never part of the tests; run on a quiet machine (make bench-train).
# Environment: BENCH_STEPS_SCALE=k multiplies the timed steps (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader
MPIRUN="mpirun --allow-run-as-root --oversubscribe --bind-to none"
PY=/usr/bin/python3
SCALE=${BENCH_STEPS_SCALE:-1}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

json() { $PY -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }

peak2=$(OPENBLAS_NUM_THREADS=2 build/bench/sgemm_peak 2 5 | json sgemm_gflops_best)
peak1=$(OPENBLAS_NUM_THREADS=1 build/bench/sgemm_peak 1 5 | json sgemm_gflops_best)
echo "OpenBLAS sgemm peak on GPT-2 shapes: ${peak2} GFLOP/s (2 threads), ${peak1} GFLOP/s (1 thread)"

# name L NH C V T B warmup steps
models=("small 6 8 512 16384 256 16 2 6" "gpt2-124m 12 12 768 50257 256 8 1 4")
rows=()
for spec in "${models[@]}"; do
    read -r name L NH C V T B W S <<<"$spec"
    S=$((S * SCALE))
    args=(--layers "$L" --heads "$NH" --dim "$C" --vocab "$V" --seq "$T" --batch "$B" --steps "$S" --warmup "$W")
    for layout in "1 2" "2 1"; do
        read -r ranks threads <<<"$layout"
        if [[ $ranks -eq 1 ]]; then
            ours=$(OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads build/bench/bench_train "${args[@]}" --threads "$threads")
        else
            ours=$(OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads $MPIRUN -np "$ranks" build/bench/bench_train "${args[@]}" --threads "$threads")
        fi
        ours_tok=$(json tok_s <<<"$ours")
        flops=$(json flops_per_token <<<"$ours")
        best=0; best_pol=""
        for pol in default PASSIVE; do
            if [[ $pol == default ]]; then envp=(env -u OMP_WAIT_POLICY); else envp=(env OMP_WAIT_POLICY=PASSIVE); fi
            t=$("${envp[@]}" $PY bench/torch_train.py "${args[@]}" --threads "$threads" --ranks "$ranks" --json | json tok_s)
            if $PY -c "import sys; sys.exit(0 if $t > $best else 1)"; then best=$t; best_pol=$pol; fi
        done
        peak=$([[ $threads -eq 2 ]] && echo "$peak2" || echo "$peak1")
        # machine peak for the layout: ranks x (threads-thread sgemm rate)
        mfu=$($PY -c "print(f'{$ours_tok * $flops / ($ranks * $peak * 1e9):.3f}')")
        ratio=$($PY -c "print(f'{$ours_tok / $best:.3f}')")
        rows+=("| $name | $ranks x $threads | $(printf %.1f "$ours_tok") | $(printf %.1f "$best") ($best_pol) | $ratio | $mfu |")
        if [[ $name == gpt2-124m && $ranks -eq 1 ]]; then
            R_ours=$ours_tok R_torch=$best R_ratio=$ratio R_mfu=$mfu
        fi
        echo "  $name ${ranks}x${threads}: hdistill $ours_tok tok/s, PyTorch $best tok/s ($best_pol)" >&2
    done
done
echo
echo "| model | ranks x threads | hdistill tok/s | PyTorch tok/s (wait policy) | ratio | MFU |"
echo "| --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
printf 'RESULT train_tok_s=%.1f pytorch_tok_s=%.1f ratio_vs_pytorch=%s mfu=%s\n' "$R_ours" "$R_torch" "$R_ratio" "$R_mfu"
