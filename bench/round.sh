#!/usr/bin/env bash
# bench/round.sh -- one critique round with the critic overlapped with the
# sampling (critique.pipeline=1) against the same round judged after the
# sampling (critique.pipeline=0), the stand-in critic answering every request
# ROUND_LATENCY_MS (500) ms late.  Never part of the tests (make bench-round);
# run it on a quiet machine.
#
# Setup (built here from the repository alone, once per OUT): WordNet inputs,
# the built-in stand-in teacher (no latency), a "mini" GPT-2 student (L4 d256,
# vocabulary 2048) after 10 supervised steps; then each measured run copies
# that run directory (a fresh run.h5 and no critic cache: no answer comes from
# a cache) and runs `hdistill critique` on RANKS (2) ranks of 1 thread.
#
# Sizes, chosen so that sampling alone and the critic alone each take about
# 30 s on this project's 2-core machine, where overlapping them matters most
# (two equal halves take twice max(S, C) one after the other) and where both
# of what the overlap cannot hide count: the first chunk's sampling and the
# last chunk's judging.
#   critic    2 requests (both orders) per input with a usable pair, at most
#             critic.concurrency=40 in flight, each answered 500 ms late:
#             2400 requests / 40 x 0.5 s = 30 s.  Every input has a pair
#             (critique.filter_first=1 and length ratios in [0.1, 10]; only
#             identical candidates never pair), so C is set by the latency
#             and the concurrency alone; the stand-in and the client take
#             little from the sampling (1920 requests at 0 ms latency were
#             all answered in 0.27 s).
#   sampling  1200 inputs x k=6 candidates of at most 48 tokens from the
#             barely trained student: measured on the loaded development
#             machine (load 3-4 on 2 cores) at 0 ms latency, 960 inputs took
#             26-36 s, so 1200 should take 20-30 s on a quiet one.  The
#             pipelined round samples in 30 chunks of 40 inputs (a whole
#             number of the critic's waves of 40 requests; 20 per rank, one
#             decoding batch), the sequential one in batches of 42.
# critique.epochs is as small as it goes (one optimizer step): the training
# after the round is not timed.
#
# Read from each run's log (critique.c): S = `sampled ... in S s`, C = `critic
# busy C s` (first request to last answer), R = `sampling + judging R s` (from
# the start of the sampling until every answer is in).  pipeline=0 gives S and
# C alone (one after the other), pipeline=1 gives R.  Each setting is run
# ROUND_REPS (3) times, alternating; medians.  Prints a Markdown table and
#   RESULT round_s=R sampling_s=S critic_s=C ratio=R/max(S,C) goal=1.15
# Environment: ROUND_REPS, ROUND_LATENCY_MS, RANKS, OUT (runs/bench-round,
# reused: delete it after changing the sizes), ROUND_TINY=1 (a tiny student,
# 24 inputs, 50 ms: checks the script end to end in well under a minute; its
# numbers mean nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
PY=/usr/bin/python3
REPS=${ROUND_REPS:-3}
LAT=${ROUND_LATENCY_MS:-500}
RANKS=${RANKS:-2}
OUT=${OUT:-runs/bench-round}
# preset|tokenizer.vocab_size|ingest.limit|train.steps|critique.inputs|critique.max_new|critic.concurrency
SIZES="mini|2048|1500|10|1200|48|40"
if [[ ${ROUND_TINY:-0} == 1 ]]; then
    SIZES="tiny|512|120|20|24|16|4" REPS=1 LAT=${ROUND_LATENCY_MS:-50} OUT=${OUT%/}-tiny
fi
IFS='|' read -r PRESET VOCAB LIMIT STEPS INPUTS MAXNEW CONC <<<"$SIZES"
mkdir -p "$OUT"
CFG=$OUT/round.json
cat >"$CFG" <<EOF
{
  "run": {"dir": "$OUT/base", "log_every": 1000},
  "data": {"path": "$OUT/data.h5", "pairs": "$OUT/data.h5", "too_long": "skip"},
  "ingest": {"source": "wordnet", "limit": $LIMIT, "eval_fraction": 0.05, "ood_limit": 10},
  "teach": {"n": 3, "splits": "train"},
  "teacher": {"base_url": "standin", "concurrency": 16},
  "critic": {"base_url": "standin", "concurrency": $CONC},
  "tokenizer": {"type": "bpe", "vocab_size": $VOCAB},
  "model": {"preset": "$PRESET"},
  "train": {"seq_len": 128, "batch_size": 16, "steps": $STEPS, "lr": 3e-3, "warmup_steps": 5, "ckpt_every": 0,
            "seed": 1},
  "critique": {"objective": "dpo", "rounds": 1, "epochs": 0.01, "inputs": $INPUTS, "k": 6, "max_new": $MAXNEW,
               "filter_first": 1, "len_lo": 0.1, "len_hi": 10, "batch_pairs": 16}
}
EOF
hd() { OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$RANKS" build/hdistill "$@"; }

t0=$SECONDS
if [[ ! -f $OUT/base.done ]]; then
    echo "== setup: ingest, teach (stand-in), $STEPS steps of supervised training ($PRESET)" >&2
    rm -rf "$OUT/base" "$OUT/data.h5" "$OUT/data.h5.llm-cache"
    { hd ingest "$CFG" && hd teach "$CFG" && hd train "$CFG"; } >"$OUT/base.log" 2>&1 ||
        { tail -n 20 "$OUT/base.log" >&2; exit 1; }
    touch "$OUT/base.done"
fi

# one round; prints "S C R" from its log
round() {
    local dir=$OUT/p$1-r$2
    rm -rf "$dir"
    cp -r "$OUT/base" "$dir"
    rm -f "$dir/llm-cache"
    hd critique "$CFG" --set run.dir="$dir" --set critique.pipeline="$1" --set standin.latency_ms="$LAT" \
        >"$dir.log" 2>&1 || { tail -n 20 "$dir.log" >&2; exit 1; }
    $PY - "$dir.log" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
s = re.search(r"sampled \d+ x \d+ candidates in ([0-9.]+) s", t)
c = re.search(r"critic busy ([0-9.]+) s", t)
r = re.search(r"sampling \+ judging ([0-9.]+) s", t)
if not (s and c and r):
    sys.exit(f"{sys.argv[1]}: the round's times are missing")
print(s.group(1), c.group(1), r.group(1))
EOF
}

declare -a S0 C0 R0 S1 C1 R1
for ((i = 0; i < REPS; i++)); do
    for p in 0 1; do
        echo "== rep $((i + 1))/$REPS: critique.pipeline=$p" >&2
        times=$(round "$p" "$i")
        read -r s c r <<<"$times"
        if [[ $p == 0 ]]; then S0+=("$s") C0+=("$c") R0+=("$r"); else S1+=("$s") C1+=("$c") R1+=("$r"); fi
    done
done
med() { $PY -c "import statistics,sys; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.2f}')" "$@"; }
s0=$(med "${S0[@]}") c0=$(med "${C0[@]}") r0=$(med "${R0[@]}")
s1=$(med "${S1[@]}") c1=$(med "${C1[@]}") r1=$(med "${R1[@]}")
ratio=$($PY -c "print(f'{$r1 / max($s0, $c0):.3f}')")
pairs=$(grep -o "inputs -> [0-9]* pairs" "$OUT/p1-r0.log" | head -n 1 | grep -o "[0-9]* pairs")
echo
echo "| critique.pipeline | sampling s | critic busy s | sampling + judging s | sampling + judging, each run |"
echo "| --- | --- | --- | --- | --- |"
echo "| 0 (one after the other) | $s0 | $c0 | $r0 | ${R0[*]} |"
echo "| 1 (overlapped) | $s1 | $c1 | $r1 | ${R1[*]} |"
echo
echo "(medians; $(($SECONDS - t0)) s in all; $RANKS ranks x 1 thread, $PRESET student, $INPUTS inputs x 6 candidates of" \
    "at most $MAXNEW tokens, $pairs; critic.concurrency $CONC, stand-in latency $LAT ms)"
echo "RESULT round_s=$r1 sampling_s=$s0 critic_s=$c0 ratio=$ratio goal=1.15"
