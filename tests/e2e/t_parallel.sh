#!/usr/bin/env bash
# t_parallel -- the data-parallel step on one machine (tests/cluster runs it
# across namespace nodes):
#  - train.overlap=1 (bucketed non-blocking allreduces started during the
#    backward pass; tiny buckets so there are many, and gradient
#    accumulation) gives bitwise the model of train.overlap=0 on 2 ranks, in
#    SFT and in a critique round, with the progress thread (the default) and
#    without it (SFT); on 3 ranks bitwise or within 1e-6 (says which);
#  - train.trace=1: /trace holds, per step and rank, one compute, one wait,
#    one optimizer interval and one interval per bucket; buckets start
#    before the backward pass ends with overlap, after it without;
#    analysis/plots.py draws it; the end-of-training line reports the share
#    hidden;
#  - train.shard_optimizer=1 (ZeRO stage 1) against the unsharded run: gpt2
#    and llama-tiny, 2 and 3 ranks, 50 steps, the loss within 1e-6 and the
#    checkpoint (written by all ranks at once) within 1e-5; the dry run's
#    memory per rank falls with the ranks; resumes 2 -> 3, 3 -> 2 (slices
#    re-cut, against unsharded resumes) and 3 -> 1;
#  - `hdistill run` under mpirun -np 2 records world_size 2 in every
#    provenance group, data.h5's (ingest and teach: rank 0's work) too.
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
    grep -Eq 'gradient reduction: [0-9.]+ s on rank 0, [0-9]+ % of it hidden .*train.overlap=1, 2 ranks, train.progress_thread=1' "$TMP/o2.log"
tr 2 "$TMP/n2" --set train.overlap=1 --set train.progress_thread=0 --set train.micro_batch=2
check "np2 overlap=1 without the progress thread exits 0" test $? -eq 0
check "np2: overlap without the progress thread gives bitwise the loss of blocking" \
    h5cmp "$TMP/n2/run.h5" "$TMP/b2/run.h5" /metrics/train/loss exact

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
runp() {  # runp NAME overlap [args...]
    local name=$1 ov=$2; shift 2
    OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" run configs/run-tiny.json --set run.dir="$TMP/$name" \
        --set data.path="$TMP/$name.h5" --set ingest.limit=120 --set ingest.ood_limit=10 --set train.epochs=1 \
        --set critique.inputs=24 --set critique.epochs=1 --set critique.rounds=1 --set eval.limit=8 \
        --set train.bucket_mb=0.02 --set train.overlap="$ov" "$@" >"$TMP/$name.log" 2>&1
}
runp pb 0; rc_b=$?
runp po 1; rc_o=$?
check "hdistill run with overlap 0 and 1 exit 0" test "$rc_b$rc_o" = 00
check "hdistill run under mpirun -np 2: data.h5's provenance (ingest, teach) and run.h5's record world_size 2" \
    $PY - "$TMP/pb.h5" "$TMP/pb/run.h5" <<'EOF'
import sys, h5py
data, run = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
groups = {"data.h5 /provenance": data["/provenance"], "data.h5 /teacher/provenance": data["/teacher/provenance"],
          "run.h5 /provenance": run["/provenance"]}
got = {k: {a: g.attrs[a].decode() for a in ("world_size", "command")} for k, g in groups.items()}
print({k: v["world_size"] for k, v in got.items()}, "commands equal:", len({v["command"] for v in got.values()}) == 1)
sys.exit(0 if all(v["world_size"] == "2" for v in got.values()) and len({v["command"] for v in got.values()}) == 1 else 1)
EOF
check "critique round: overlap gives bitwise the loss of blocking (SFT and DPO steps)" \
    h5cmp "$TMP/po/run.h5" "$TMP/pb/run.h5" /metrics/train/loss exact
runp ps 1 --set train.shard_optimizer=1
check "hdistill run with train.shard_optimizer=1 exits 0" test $? -eq 0
check "critique round sharded (the DPO phase loads the SFT checkpoint's moments as slices): loss within 1e-6 of unsharded" \
    h5cmp "$TMP/ps/run.h5" "$TMP/pb/run.h5" /metrics/train/loss rel 1e-6

# --- ZeRO stage 1: the sharded optimizer takes the unsharded path's steps (50 steps, 2 and 3 ranks, gpt2 and llama)
z=(--set train.steps=50 --set train.ckpt_every=25 --set train.ckpt_keep=10 --set train.batch_size=6)
for fam in gpt2 llama; do
    fm=(); [[ $fam == llama ]] && fm=(--set model.preset=llama-tiny)
    for np in 2 3; do
        tr "$np" "$TMP/u$fam$np" "${z[@]}" "${fm[@]}" --set train.shard_optimizer=0
        tr "$np" "$TMP/s$fam$np" "${z[@]}" "${fm[@]}" --set train.shard_optimizer=1
        check "$fam np$np: sharded and unsharded runs exit 0" test -s "$TMP/s$fam$np/ckpt/step_00000050.h5" -a \
            -s "$TMP/u$fam$np/ckpt/step_00000050.h5"
        check "$fam np$np: sharded loss within 1e-6 of unsharded over 50 steps" \
            h5cmp "$TMP/s$fam$np/run.h5" "$TMP/u$fam$np/run.h5" /metrics/train/loss rel 1e-6
        check "$fam np$np: sharded checkpoint (written by all ranks) holds the unsharded parameters and moments within 1e-5" \
            same_params "$TMP/s$fam$np" "$TMP/u$fam$np" 50 rel 1e-5
    done
done
check "the sharded run says so in its plan" grep -q 'reduce-scatter + parameter all-gather (ZeRO-1)' "$TMP/sgpt22.log"

# --- memory per rank in the dry run falls as the ranks grow (sharded), not without sharding (gpt2-124m: its
# unsharded state fits 3 ranks on a small machine; the dry run refuses a plan that does not fit the node)
mem() {  # mem NP SHARD -> GiB of parameters+gradients+AdamW per rank
    OMP_NUM_THREADS=1 $MPIRUN -np "$1" "$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/dry" \
        --set model.preset=gpt2-124m --set train.batch_size=6 --set train.shard_optimizer="$2" --dry-run 2>&1 |
        sed -nE 's/.*memory per rank: ([0-9.]+) GiB parameters.*/\1/p' | head -1
}
m1=$(mem 1 1); m2=$(mem 2 1); m3=$(mem 3 1); u2=$(mem 2 0); u3=$(mem 3 0)
echo "dry-run state per rank (GiB, gpt2-124m): sharded 1/2/3 ranks $m1 / $m2 / $m3; unsharded 2/3 ranks $u2 / $u3"
check "dry run: sharded state per rank falls with the ranks ($m1 > $m2 > $m3), unsharded does not ($u2 = $u3)" \
    $PY -c "import sys; a=[float(x) for x in sys.argv[1:]]; sys.exit(0 if a[0] > a[1] > a[2] and a[3] == a[4] > a[1] else 1)" \
    "$m1" "$m2" "$m3" "$u2" "$u3"
check "the dry runs wrote nothing" test ! -e "$TMP/dry"

# --- resume with another number of ranks: the moments' slices are re-cut (2 -> 3, 3 -> 2, 3 -> 1).  Each
# sharded resume (every rank reads its new slice) against an unsharded resume from the same checkpoint on
# the same ranks (which reads the moments whole): the same parameters and moments at step 50.  (Against the
# uninterrupted run only the loss is compared: the rank count changes the rounding of the gradient sums, and
# AdamW turns the rounding noise of gradients that are zero in exact arithmetic, such as the key biases',
# into updates of the learning rate's size.)
cut_at_25() {  # cut_at_25 SRC DST: the run directory as it was at step 25
    cp -r "$1" "$2"; rm -f "$2/ckpt/step_00000050.h5"
}
cut_at_25 "$TMP/sgpt22" "$TMP/r23"; cut_at_25 "$TMP/sgpt22" "$TMP/q23"
cut_at_25 "$TMP/sgpt23" "$TMP/r32"; cut_at_25 "$TMP/sgpt23" "$TMP/q32"; cut_at_25 "$TMP/sgpt23" "$TMP/r31"
tr 3 "$TMP/r23" "${z[@]}" --set train.shard_optimizer=1; rc23=$?
tr 3 "$TMP/q23" "${z[@]}" --set train.shard_optimizer=0; rq23=$?
tr 2 "$TMP/r32" "${z[@]}" --set train.shard_optimizer=1; rc32=$?
tr 2 "$TMP/q32" "${z[@]}" --set train.shard_optimizer=0; rq32=$?
tr 1 "$TMP/r31" "${z[@]}" --set train.shard_optimizer=0; rc31=$?
check "resume 2 -> 3, 3 -> 2 and 3 -> 1 ranks (sharded and unsharded) exit 0" test "$rc23$rq23$rc32$rq32$rc31" = 00000
check "2 -> 3: resumed from step 25 (sharded moments re-cut)" grep -q 'resuming from .*step_00000025.h5 (step 25)' "$TMP/r23.log"
check "2 -> 3: the rest of the curve within 1e-5 of the uninterrupted 2-rank run" \
    h5cmp "$TMP/r23/run.h5" "$TMP/sgpt22/run.h5" /metrics/train/loss rel 1e-5
check "3 -> 2: the rest of the curve within 1e-5 of the uninterrupted 3-rank run" \
    h5cmp "$TMP/r32/run.h5" "$TMP/sgpt23/run.h5" /metrics/train/loss rel 1e-5
check "2 -> 3: re-cut slices give the parameters and moments of an unsharded resume (within 1e-5)" \
    same_params "$TMP/r23" "$TMP/q23" 50 rel 1e-5
check "3 -> 2: re-cut slices give the parameters and moments of an unsharded resume (within 1e-5)" \
    same_params "$TMP/r32" "$TMP/q32" 50 rel 1e-5
check "3 -> 1 (sharded checkpoint, unsharded resume): the rest of the curve within 1e-5" \
    h5cmp "$TMP/r31/run.h5" "$TMP/sgpt23/run.h5" /metrics/train/loss rel 1e-5

finish
