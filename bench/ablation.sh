#!/usr/bin/env bash
# bench/ablation.sh -- the objectives of the critique phase side by side on
# the stand-in: for each seed, one supervised fine-tuning (the shared warm
# start, also evaluated as "sft"), then ft, sd, brio, dpo and brio-dpo each
# from a copy of it with the same budget of critique rounds; every run is
# evaluated by the critic against the teacher's references (win-or-tie rate
# x 100, both orders).  Prints a table (mean +- sample standard deviation
# over seeds) and
#   RESULT ft=... sd=... brio=... dpo=... brio_dpo=...
# (mean win-or-tie rate on the eval split, critic judge).  Never part of the
# tests (make ablation).
# Environment: ABLATION_CONFIG (default configs/ablation.json), SEEDS
# (default "1 2 3"), RANKS (default 2), OUT (default runs/ablation).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
CFG=${ABLATION_CONFIG:-configs/ablation.json}
SEEDS=${SEEDS:-1 2 3}
RANKS=${RANKS:-2}
OUT=${OUT:-runs/ablation}
OBJS=(ft sd brio dpo brio-dpo)
PY=/usr/bin/python3
mkdir -p "$OUT"
hd() { OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$RANKS" build/hdistill "$@"; }
wtr() { build/hdistill report "$1" --json | $PY -c "import json,sys; d=json.load(sys.stdin); print(d['splits']['$2']['critic']['wtr'])"; }

t0=$SECONDS
for seed in $SEEDS; do
    base=$OUT/sft-s$seed
    echo "== seed $seed: supervised fine-tuning" >&2
    hd run "$CFG" --set run.dir="$base" --set data.path="$OUT/data.h5" --set train.seed="$seed" \
        --set critique.rounds=0 >"$base.log" 2>&1
    for obj in "${OBJS[@]}"; do
        dir=$OUT/$obj-s$seed
        if [[ ! -f $dir/run.h5 ]]; then rm -rf "$dir"; cp -r "$base" "$dir"; fi
        echo "== seed $seed: $obj" >&2
        hd run "$CFG" --set run.dir="$dir" --set data.path="$OUT/data.h5" --set train.seed="$seed" \
            --set critique.objective="$obj" >"$dir.log" 2>&1
    done
done
echo
echo "| objective | eval WTR mean +- sd | ood WTR mean +- sd | per seed (eval) |"
echo "| --- | --- | --- | --- |"
declare -A MEAN
for obj in sft "${OBJS[@]}"; do
    ev=(); ood=()
    for seed in $SEEDS; do
        d=$OUT/$obj-s$seed
        ev+=("$(wtr "$d" eval)")
        ood+=("$(wtr "$d" ood)")
    done
    read -r m s <<<"$($PY -c "import statistics as st,sys; v=[float(x) for x in sys.argv[1:]]; print(f'{st.mean(v):.1f} {st.stdev(v) if len(v)>1 else 0:.1f}')" "${ev[@]}")"
    read -r mo so <<<"$($PY -c "import statistics as st,sys; v=[float(x) for x in sys.argv[1:]]; print(f'{st.mean(v):.1f} {st.stdev(v) if len(v)>1 else 0:.1f}')" "${ood[@]}")"
    MEAN[$obj]=$m
    echo "| $obj | $m +- $s | $mo +- $so | ${ev[*]} |"
done
echo
echo "($(($SECONDS - t0)) s, seeds: $SEEDS, $RANKS ranks, config $CFG)"
echo "RESULT ft=${MEAN[ft]} sd=${MEAN[sd]} brio=${MEAN[brio]} dpo=${MEAN[dpo]} brio_dpo=${MEAN[brio-dpo]}"
