#!/usr/bin/env bash
# bench/memory.sh -- peak memory of the biggest student that should train on
# this machine: qwen2.5-0.5b (the preset's published shape: 24 layers, d 896,
# 14 heads / 2 kv heads, ffn 4864, q/k/v biases, vocabulary 151936, tied;
# 494M parameters, random init) trained by `hdistill train` on 2 ranks x 1
# thread, micro-batch 1, T 256 (global batch 2), for MEM_STEPS steps and its
# final checkpoint, on pairs from tools/make_pairs.py (configs/sft-tiny.json's
# BPE tokenizer: the embedding keeps the preset's 151936 rows).  Each rank
# runs under /usr/bin/time -v (its maximum resident set size: the VmHWM of
# the process); next to it what `hdistill train --dry-run` plans per rank
# (16 bytes per parameter for parameters, gradients and the AdamW moments,
# plus activations of one micro-batch), and the training step alone
# (build/bench/bench_train --preset qwen2.5-0.5b, the same layout, loss on
# every position, so every activation page is touched; it prints VmHWM).
# Goal: the 2 ranks within the machine's 24 GiB.  Prints a Markdown table and
#   RESULT qwen05_rss_gib_per_rank=... dry_run_gib_per_rank=... steps=...
# (the larger rank's peak of `hdistill train`).  Allocates about 8 GiB per
# rank: refuses to start when MemAvailable is below what both runs need
# (MEM_FORCE=1 starts anyway).  Never part of the tests (make bench-memory).
# Environment: MEM_STEPS (default 2), MEM_PRESET (default qwen2.5-0.5b),
# MEM_STEP_ALONE=0 skips the bench_train run.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader
MPIRUN="mpirun --allow-run-as-root --oversubscribe --bind-to none"
PY=/usr/bin/python3
STEPS=${MEM_STEPS:-2}
PRESET=${MEM_PRESET:-qwen2.5-0.5b}
RANKS=2 T=256
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

$PY tools/make_pairs.py 400 "$OUT/pairs.jsonl"
train=(configs/sft-tiny.json --set data.pairs="$OUT/pairs.jsonl" --set run.dir="$OUT/run"
       --set model.preset="$PRESET" --set train.seq_len=$T --set train.batch_size=$RANKS
       --set train.micro_batch=1 --set train.steps="$STEPS" --set train.warmup_steps=1
       --set train.ckpt_every=0 --set run.threads=1 --set run.log_every=1)

dry=$(OMP_NUM_THREADS=1 $MPIRUN -np $RANKS build/hdistill train "${train[@]}" --dry-run 2>&1) ||
    { echo "$dry" >&2; echo "memory.sh: hdistill train --dry-run failed" >&2; exit 1; }
plan=$(grep -o 'memory per rank: .*' <<<"$dry" | head -n 1)
dry_gib=$(sed -E 's/.* ([0-9.]+) GiB in all.*/\1/' <<<"$plan")
[[ $dry_gib =~ ^[0-9.]+$ ]] || { echo "memory.sh: no 'memory per rank' in the dry run" >&2; exit 1; }
echo "hdistill train --dry-run ($PRESET, $RANKS ranks, micro-batch 1, T $T): $plan"

avail=$(awk '/^MemAvailable:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
need=$($PY -c "print(f'{$RANKS * ($dry_gib + 1.0):.1f}')")
if [[ ${MEM_FORCE:-0} != 1 ]] && $PY -c "import sys; sys.exit(0 if $avail < $need else 1)"; then
    echo "memory.sh: needs about $need GiB ($RANKS ranks x (plan + 1 GiB)), MemAvailable is $avail GiB; stop other work or set MEM_FORCE=1" >&2
    exit 1
fi
echo "MemAvailable before: $avail GiB"

# gib_of FILE: /usr/bin/time -v's maximum resident set size in GiB; secs_of FILE: its wall clock in seconds
gib_of() { awk -F': ' '/Maximum resident set size/ {printf "%.3f", $2 / 1048576}' "$1"; }
secs_of() {
    awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.0f", s}' "$1"
}

# 1. the trainer: every rank under /usr/bin/time -v, one report per rank
t0=$(date +%s)
if ! OMP_NUM_THREADS=1 $MPIRUN -np $RANKS sh -c 'exec /usr/bin/time -v -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' \
        "$OUT/time" build/hdistill train "${train[@]}" >"$OUT/train.log" 2>&1; then
    tail -n 30 "$OUT/train.log" >&2
    echo "memory.sh: hdistill train failed" >&2
    exit 1
fi
train_s=$(( $(date +%s) - t0 ))
grep -E 'step +[0-9]+/[0-9]+ |done: step' "$OUT/train.log" | tail -n $((STEPS + 1)) || true
train_rss=() ; for r in $(seq 0 $((RANKS - 1))); do train_rss+=("$(gib_of "$OUT/time.$r")"); done
ckpt=$(ls "$OUT/run/ckpt/" 2>/dev/null | tail -n 1)
ckpt_gib=$(du -k "$OUT/run/ckpt/$ckpt" 2>/dev/null | awk '{printf "%.2f", $1 / 1048576}')
rm -rf "$OUT/run"
rows=("| hdistill train ($STEPS steps + final checkpoint $ckpt, ${ckpt_gib:-?} GiB) | $(printf '%s / ' "${train_rss[@]}" | sed 's| / $||') | $train_s |")

# 2. the training step alone: bench_train prints every rank's VmHWM
if [[ ${MEM_STEP_ALONE:-1} != 0 ]]; then
    t0=$(date +%s)
    j=$(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $MPIRUN -np $RANKS build/bench/bench_train --preset "$PRESET" \
        --seq $T --batch $RANKS --micro 1 --steps "$STEPS" --warmup 0 --threads 1 | tail -n 1)
    step_s=$(( $(date +%s) - t0 ))
    step_rss=$($PY -c "import json,sys; print(' / '.join('%.3f' % x for x in json.loads(sys.argv[1])['rss_gib']))" "$j")
    echo "bench_train: $j"
    rows+=("| bench_train (the step alone, $STEPS steps, loss on every position) | $step_rss | $step_s |")
fi

max_rss=$($PY -c "print(max(float(x) for x in '${train_rss[*]}'.split()))")
echo
echo "$PRESET, $RANKS ranks x 1 thread, micro-batch 1, T $T; dry-run plan per rank: $dry_gib GiB"
echo
echo "| run | peak RSS per rank, GiB (rank 0 / 1) | wall s |"
echo "| --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
$PY -c "
t = $RANKS * $max_rss
print(f'{$RANKS} ranks x {$max_rss:.3f} GiB = {t:.2f} GiB: goal (within 24 GiB) ' + ('met' if t <= 24 else 'NOT met'))"
printf 'RESULT qwen05_rss_gib_per_rank=%.3f dry_run_gib_per_rank=%s steps=%s\n' "$max_rss" "$dry_gib" "$STEPS"
