#!/usr/bin/env bash
# bench/decode.sh -- decoding throughput of hdistill (gen_run: sampling and
# beam search with the pooled KV cache) vs a plain PyTorch KV-cache loop of
# the same model, same machine, same run.  Random weights, random prompts,
# 1 rank.  Never part of the tests; run on a quiet machine (make bench-decode).
#
# Shapes: 16 prompts x 20 tokens, 32 new tokens; sampling k=6 candidates per
# prompt (temperature 1, top_p 0.95) = 96 rows per step, all in one batch on
# both sides; beam search width 5 (length penalty 1) = 80 rows per step.
#   gpt2-124m     (L12 H12 C768 V50257)  2 threads and 1 thread
#   smollm2-135m  (Llama family: L30 C576 9 heads / 3 kv, ffn 1536, V49152,
#                 tied; presets.h's shape via model_preset -- there is no
#                 model_config_llama(), the preset fills the ModelConfig)  2 threads
# hdistill: build/bench/bench_decode (gen_run, GenOptions.batch = all rows);
# PyTorch: bench/torch_decode.py (Debian python3-torch, float32, no_grad,
# preallocated cache), run with the default OpenMP wait policy and with
# OMP_WAIT_POLICY=PASSIVE (docs/performance.md), the better kept per mode and named.
# End of text: id V-1, made unreachable in the random weights the same way on
# both sides (see bench_decode.c); both check that every sequence ran 32 steps.
# Tokens: generated tokens of all sequences (sampling 16*6*32 = 3072 per run;
# beam: hypotheses alive after each step summed over the steps, 16*5*32 = 2560).
#
# Fraction of the sgemm rate: bench_decode counts the run's model FLOPs (2 x
# matrix parameters per token fed, incl. 2*V*C for each row that needs logits,
# plus 4*L*C*n attention over n cached positions; prefill of the prompts +
# 31 steps of R rows; softmax, sorting and selection not counted), divides by
# the run's time, and divides that by cblas_sgemm's rate on the same model's
# linear shapes at M = R rows (96 or 80; measured in bench_decode like
# bench/sgemm_peak, same thread count).  PyTorch's fraction uses the same
# FLOPs (it does the same work) over its own time.  RESULT's sgemm_gflops is
# bench/sgemm_peak's training-shape rate (M = 2048), for reference.
#
# Prints a Markdown table and, for gpt2-124m at 2 threads,
#   RESULT decode_sample_tok_s=... torch_sample_tok_s=... decode_beam_tok_s=...
#          torch_beam_tok_s=... sample_ratio=... beam_ratio=... sgemm_gflops=...
# (ratio = hdistill / PyTorch).  On a quiet machine the whole run should take
# roughly 15-20 minutes (an estimate from docs/performance.md's rates; PyTorch runs 2 wait
# policies x both modes x (warm-up + reps)).
# Environment: BENCH_DECODE_REPS (3), BENCH_DECODE_WARMUP (1);
# BENCH_DECODE_TINY=1 swaps in tiny models and sizes (checks the script end
# to end in seconds; its numbers mean nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
REPS=${BENCH_DECODE_REPS:-3}
WARMUP=${BENCH_DECODE_WARMUP:-1}
SGEMM_REPS=5
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

json() { $PY -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }

# name|bench_decode model options|threads (the first model's 2-thread line is the RESULT)
if [[ ${BENCH_DECODE_TINY:-0} == 1 ]]; then
    models=("gpt2-tiny|--layers 2 --heads 2 --dim 64 --vocab 512|2 1"
            "llama-tiny|--preset llama-tiny --vocab 512|2")
    sizes=(--prompts 4 --prompt-len 8 --new 8 --k 6 --beam 5)
    REPS=1 WARMUP=0 SGEMM_REPS=1
else
    models=("gpt2-124m|--layers 12 --heads 12 --dim 768 --vocab 50257|2 1"
            "smollm2-135m|--preset smollm2-135m|2")
    # more Llama-family shapes go here, e.g. "qwen2.5-0.5b|--preset qwen2.5-0.5b|2"
    # (torch_decode.py covers no q/k/v biases, q/k norms or Llama 3 rope scaling)
    sizes=(--prompts 16 --prompt-len 20 --new 32 --k 6 --beam 5)
fi
common=("${sizes[@]}" --top-p 0.95 --temperature 1 --length-penalty 1 --warmup "$WARMUP" --reps "$REPS")

peak2=$(OPENBLAS_NUM_THREADS=2 build/bench/sgemm_peak 2 "$SGEMM_REPS" | json sgemm_gflops_best)
peak1=$(OPENBLAS_NUM_THREADS=1 build/bench/sgemm_peak 1 "$SGEMM_REPS" | json sgemm_gflops_best)
echo "OpenBLAS sgemm peak on GPT-2 training shapes (M = 2048): ${peak2} GFLOP/s (2 threads), ${peak1} GFLOP/s (1 thread)"

n=0
for spec in "${models[@]}"; do
    IFS='|' read -r name margs threads_list <<<"$spec"
    read -r -a margs <<<"$margs"
    for threads in $threads_list; do
        n=$((n + 1))
        ours="$OUT/$n.c.json"
        OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads \
            build/bench/bench_decode "${margs[@]}" "${common[@]}" --threads "$threads" >"$ours"
        # the PyTorch model: the shape bench_decode built
        targs=$($PY -c "
import json; c = json.loads(open('$ours').read().strip().splitlines()[-1])
a = ['--arch', c['arch'], '--layers', c['layers'], '--heads', c['heads'], '--dim', c['dim'], '--vocab', c['vocab']]
if c['arch'] == 'llama':
    a += ['--kv-heads', c['kv_heads'], '--head-dim', c['head_dim'], '--ffn', c['ffn'],
          '--rope-theta', c['rope_theta'], '--norm-eps', c['norm_eps']]
print(' '.join(map(str, a)))")
        read -r -a targs <<<"$targs"
        for pol in default PASSIVE; do
            if [[ $pol == default ]]; then envp=(env -u OMP_WAIT_POLICY); else envp=(env OMP_WAIT_POLICY=PASSIVE); fi
            "${envp[@]}" $PY bench/torch_decode.py "${targs[@]}" "${common[@]}" --threads "$threads" --json \
                >"$OUT/$n.torch-$pol.json"
        done
        printf '%s|%s|%s\n' "$name" "$threads" "$n" >>"$OUT/runs"
        echo "  $name ${threads} thread(s): done" >&2
    done
done

# the table and the RESULT line from the JSON lines
$PY - "$OUT" "$peak2" <<'EOF'
import json, sys
out, peak2 = sys.argv[1], float(sys.argv[2])
last = lambda p: json.loads(open(p).read().strip().splitlines()[-1])
print()
print("| model | threads | mode | rows/step | hdistill tok/s | PyTorch tok/s (wait policy) | ratio "
      "| hdistill GFLOP/s (of sgemm) | PyTorch GFLOP/s (of sgemm) | sgemm at M rows GFLOP/s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
result, phases = None, []
for line in open(out + "/runs"):
    name, threads, n = line.strip().split("|")
    c = last("%s/%s.c.json" % (out, n))
    tp = {pol: last("%s/%s.torch-%s.json" % (out, n, pol)) for pol in ("default", "PASSIVE")}
    row = {}
    for mode in ("sample", "beam"):
        if c.get(mode + "_tok_s") is None:
            continue
        pol = max(tp, key=lambda p: tp[p][mode + "_tok_s"])
        t = tp[pol]
        assert t[mode + "_tokens"] == c[mode + "_tokens"], "token counts differ"
        ours, theirs = c[mode + "_tok_s"], t[mode + "_tok_s"]
        fpt, sg = c[mode + "_flops_per_token"], c[mode + "_sgemm_rows_gflops"]
        tg = theirs * fpt / 1e9
        print("| %s | %s | %s | %d | %.1f | %.1f (%s) | %.3f | %.1f (%.0f %%) | %.1f (%.0f %%) | %.1f |"
              % (name, threads, "sampling k=%d" % c["k"] if mode == "sample" else "beam %d" % c["beam"],
                 c[mode + "_rows"], ours, theirs, pol, ours / theirs, c[mode + "_gflops"],
                 100 * c[mode + "_frac"], tg, 100 * tg / sg, sg))
        row[mode] = (ours, theirs)
        phases.append("%s, %s thread(s), %s: hdistill prefill %.3f s, steps %.3f s, other %.3f s of %.3f s; "
                      "PyTorch (%s) prefill %.3f s, steps %.3f s, other %.3f s of %.3f s"
                      % (name, threads, mode, c.get(mode + "_prefill_s", float("nan")),
                         c.get(mode + "_steps_s", float("nan")), c.get(mode + "_other_s", float("nan")),
                         c[mode + "_s"], pol, t[mode + "_prefill_s"], t[mode + "_steps_s"], t[mode + "_other_s"],
                         t[mode + "_s"]))
    if result is None and threads == "2":
        result = row
print()
print("Per run (seconds; hdistill's forward phases timed separately, PyTorch's inside its loop):")
for p in phases:
    print("  " + p)
print()
s, b = result["sample"], result["beam"]
print("RESULT decode_sample_tok_s=%.1f torch_sample_tok_s=%.1f decode_beam_tok_s=%.1f torch_beam_tok_s=%.1f "
      "sample_ratio=%.3f beam_ratio=%.3f sgemm_gflops=%.1f"
      % (s[0], s[1], b[0], b[1], s[0] / s[1], b[0] / b[1], peak2))
EOF
