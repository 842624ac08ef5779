#!/usr/bin/env bash
# t_multinode -- hdistill on a private 3-node Slurm cluster on this machine
# (tests/cluster/cluster.sh: a network namespace, hostname and slurmd per
# node, on a bridge of the test's own).  Checks:
#  - each node has its own hostname and address; Open MPI between nodes uses
#    TCP on the bridge's subnet and shared memory only within a node;
#  - `srun -N 2` and `srun -N 3` (one rank per node) of `hdistill run` give
#    the loss curve of `mpirun -np 2` / `-np 3` on one node (bitwise for 2
#    ranks; for 3, bitwise or within 1e-6 relative, and the message says
#    which);
#  - train.overlap=1 (gradients reduced in small buckets behind the backward
#    pass, many non-blocking allreduces in flight over TCP) on 2 nodes gives
#    bitwise the one-node blocking result, and the trace shows the overlap;
#  - jobs/distill.sbatch, unchanged, with --nodes=2: the one-node result;
#  - one node of that job crashes (every process of the node SIGKILLed:
#    slurmd, slurmstepd, its rank): Slurm marks it down, the job (--requeue)
#    is requeued, the node comes back, the job resumes from its checkpoint and
#    ends with the uninterrupted run's loss curve and final checkpoint;
#  - jobs/submit.sh with --nodes=2: teach -> sweep rows on 2 nodes each ->
#    analysis.
# Skipped (exit 77, "skip: ..." and "0 passed, 0 failed") where the cluster
# cannot be made: not root, no namespaces or bridges, no Slurm.
# About 5 minutes on 2 loaded cores; KEEP_TMP=1 keeps the cluster's logs.
source "$(dirname "$0")/../e2e/lib.sh"
source "$ROOT/tests/cluster/cluster.sh"
if reason=$(cluster_unavailable); then
    echo "skip: no multi-node test cluster here: $reason"
    echo "0 passed, 0 failed"
    exit 77
fi
trap 'cluster_stop; [[ -n ${KEEP_TMP:-} ]] || rm -rf "$TMP"' EXIT
if ! cluster_start "$TMP/cluster" 3; then
    tail -n 5 "$TMP"/cluster/log/* >&2
    echo "FAIL: the cluster did not start" >&2; echo "0 passed, 1 failed"; exit 1
fi
echo "cluster: ${CLUSTER_NODES[*]} on $CLUSTER_SUBNET (bridge $CLUSTER_BR), SLURM_CONF=$SLURM_CONF"

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# one-node references: shared memory, as in the other tests
host_mpirun() { OMPI_MCA_btl=self,vader $MPIRUN "$@"; }
# cluster jobs: TCP between nodes, shared memory within one (lib.sh's
# self,vader is for one-node runs); the cluster's TaskProlog picks the network
export OMPI_MCA_btl=tcp,vader,self

# --- the nodes
out=$(timeout 60 srun -N 3 --ntasks-per-node=1 /bin/sh -c 'echo "$(hostname) $SLURMD_NODENAME $(ip -4 -o addr show dev eth0 | awk "{print \$4}")"' 2>&1 | sort)
echo "$out"
check "3 nodes, each with its own hostname (= NodeName) and address on $CLUSTER_SUBNET" $PY - "$out" "$CLUSTER_NET" <<'PYEOF'
import sys
lines = [l.split() for l in sys.argv[1].splitlines()]
net = sys.argv[2].rsplit(".", 1)[0]
ok = len(lines) == 3 and all(len(l) == 3 and l[0] == l[1] for l in lines) \
    and [l[0] for l in lines] == ["node1", "node2", "node3"] \
    and [l[2] for l in lines] == [f"{net}.{i}/24" for i in (1, 2, 3)]
sys.exit(0 if ok else 1)
PYEOF

# --- which transport Open MPI uses: 2 nodes x 2 ranks, the BTL chosen per peer
OMPI_MCA_btl_base_verbose=100 timeout 120 srun -N 2 --ntasks-per-node=2 --mpi=pmix "$HD" version >"$TMP/btl.log" 2>&1
grep -E "Using .* btl for send|Found match" "$TMP/btl.log" | sort | uniq -c
check "Open MPI: TCP on the bridge between nodes, never shared memory; shared memory within a node" \
    $PY - "$TMP/btl.log" "$CLUSTER_NET" <<'PYEOF'
import re, sys
out, net = open(sys.argv[1]).read(), sys.argv[2].rsplit(".", 1)[0]
uses = re.findall(r"\[(node\d):\d+\] mca: bml: Using (\w+) btl for send to \S+ on node (node\d)", out)
cross = [(a, b, btl) for a, btl, b in uses if a != b]
local = [(a, b, btl) for a, btl, b in uses if a == b and btl != "self"]
matches = re.findall(r"btl: tcp: Found match: (\S+) \((\w+)\)", out)
print("between nodes:", sorted(set(cross)), "within a node:", sorted(set(local)), "tcp interfaces:", sorted(set(matches)))
ok = ({(a, b) for a, b, _ in cross} == {("node1", "node2"), ("node2", "node1")} and all(btl == "tcp" for *_, btl in cross)
      and any(btl == "vader" for *_, btl in local)
      and matches and all(ip.startswith(net + ".") and dev == "eth0" for ip, dev in matches))
if any(btl != "vader" for *_, btl in local):
    print("note: some ranks of one node did not use shared memory with each other (see btl.log)")
sys.exit(0 if ok else 1)
PYEOF
out=$(OMPI_MCA_btl=vader,self timeout 120 srun -N 2 --ntasks-per-node=1 --mpi=pmix "$HD" version 2>&1)
check "without TCP the nodes cannot reach each other (no shared memory across nodes)" \
    grep -q "BTLs attempted: self$" <<<"$out"

# --- srun -N 2 / -N 3 of hdistill run == mpirun -np 2 / -np 3 on one node
CFG=configs/run-tiny.json
DATA="--set data.path=$TMP/data.h5"
host_mpirun -np 2 "$HD" run $CFG --set run.dir="$TMP/host2" $DATA >"$TMP/host2.log" 2>&1
check "one node, mpirun -np 2: hdistill run exits 0" test $? -eq 0
timeout 600 srun -K -N 2 --ntasks-per-node=1 --mpi=pmix "$HD" run $CFG --set run.dir="$TMP/n2" $DATA >"$TMP/n2.log" 2>&1
check "srun -N 2: hdistill run exits 0" test $? -eq 0
check "srun -N 2: rank 0 ran on node1, world size 2" $PY -c "
import h5py,sys; a=h5py.File('$TMP/n2/run.h5','r')['/provenance'].attrs
sys.exit(0 if a['host'].decode()=='node1' and a['world_size'].decode()=='2' else 1)"
check "srun -N 2 == mpirun -np 2: loss curve (bitwise)" h5cmp "$TMP/n2/run.h5" "$TMP/host2/run.h5" /metrics/train/loss exact
check "srun -N 2 == mpirun -np 2: evaluation verdicts (bitwise)" \
    h5cmp "$TMP/n2/run.h5" "$TMP/host2/run.h5" /eval/eval/critic/verdict exact

# (run-tiny's 16 rows per step do not split over 3 ranks: 12)
DATA="$DATA --set train.batch_size=12"
host_mpirun -np 3 "$HD" run $CFG --set run.dir="$TMP/host3" $DATA >"$TMP/host3.log" 2>&1
check "one node, mpirun -np 3 (oversubscribed): hdistill run exits 0" test $? -eq 0
timeout 600 srun -K -N 3 --ntasks-per-node=1 --mpi=pmix "$HD" run $CFG --set run.dir="$TMP/n3" $DATA >"$TMP/n3.log" 2>&1
check "srun -N 3: hdistill run exits 0" test $? -eq 0
# 3 ranks: the sum is reduced in an order MPI chooses; say whether it is the same
cmp3=$($PY - "$TMP/n3/run.h5" "$TMP/host3/run.h5" <<'PYEOF'
import sys, h5py, numpy as np
x = h5py.File(sys.argv[1], "r")["/metrics/train/loss"][()]
y = h5py.File(sys.argv[2], "r")["/metrics/train/loss"][()]
if x.shape != y.shape:
    print(f"shapes {x.shape} vs {y.shape}"); sys.exit(1)
if np.array_equal(x.view(np.uint8), y.view(np.uint8)):
    print(f"bitwise, {x.size} steps"); sys.exit(0)
r = float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-30)))
print(f"not bitwise: max relative difference {r:.3g} over {x.size} steps"); sys.exit(0 if r <= 1e-6 else 1)
PYEOF
)
rc=$?
echo "srun -N 3 vs mpirun -np 3: $cmp3"
check "srun -N 3 == mpirun -np 3: loss curve ($cmp3)" test $rc -eq 0

PAIRS=$TMP/pairs.jsonl
$PY tools/make_pairs.py 1500 "$PAIRS"

# --- gradients reduced behind the backward pass across nodes: tiny buckets (many
# non-blocking allreduces in flight over TCP) and 2 micro-batches per rank
ov=(--set data.pairs="$PAIRS" --set train.seed=5 --set train.steps=40 --set train.ckpt_every=0
    --set train.bucket_mb=0.02 --set train.micro_batch=2)
host_mpirun -np 2 "$HD" train configs/sft-tiny.json "${ov[@]}" --set train.overlap=0 --set run.dir="$TMP/ov-host" \
    >"$TMP/ov-host.log" 2>&1
check "one node, mpirun -np 2, train.overlap=0: exits 0" test $? -eq 0
timeout 300 srun -K -N 2 --ntasks-per-node=1 --mpi=pmix "$HD" train configs/sft-tiny.json "${ov[@]}" --set train.overlap=1 \
    --set train.trace=1 --set run.dir="$TMP/ov-n2" >"$TMP/ov-n2.log" 2>&1
check "srun -N 2, train.overlap=1: exits 0" test $? -eq 0
check "srun -N 2 overlapped == mpirun -np 2 blocking: loss curve (bitwise)" \
    h5cmp "$TMP/ov-n2/run.h5" "$TMP/ov-host/run.h5" /metrics/train/loss exact
check "srun -N 2 overlapped: reductions ran during the backward pass (trace)" $PY - "$TMP/ov-n2/run.h5" "$ROOT/analysis" <<'PYEOF'
import sys, h5py
sys.path.insert(0, sys.argv[2])
import hdio
t = {k: v[()] for k, v in h5py.File(sys.argv[1], "r")["/trace"].items()}
for r in (0, 1):
    comm, hidden = hdio.comm_hidden(t, rank=r)
    print(f"rank {r}: {comm:.3f} s reducing, {hidden:.3f} s of it behind the backward pass")
    if not (comm > 0 and hidden > 0):
        sys.exit(1)
PYEOF

# --- jobs/distill.sbatch, unchanged, on 2 nodes
sets="--set data.pairs=$PAIRS --set train.seed=5 --set train.steps=400 --set train.ckpt_every=50"
host_mpirun -np 2 "$HD" train configs/sft-tiny.json $sets --set run.dir="$TMP/sft-host" >"$TMP/sft-host.log" 2>&1
check "one node, mpirun -np 2: training reference" test $? -eq 0
# submit NAME RUN_DIR -> JOB: distill.sbatch (STAGE=train) with --nodes=2, one rank per node
submit() {
    JOB=$(sbatch --parsable -D "$ROOT" -o "$TMP/$1.out" --nodes=2 --ntasks-per-node=1 \
        --export=ALL,STAGE=train,CONFIG=configs/sft-tiny.json,HDISTILL="$HD",HDISTILL_SETS="$sets --set run.dir=$2" \
        jobs/distill.sbatch)
}
submit sft2 "$TMP/sft2"
st=$(slurm_wait_job "$JOB" 300)
check "distill.sbatch --nodes=2: COMPLETED (got $st)" test "$st" = COMPLETED
check "distill.sbatch --nodes=2: 2 tasks x 1 thread on 2 nodes" grep -Eq "on node\[[1-3][-,][1-3]\]: 2 tasks x 1 threads" "$TMP/sft2.out"
check "distill.sbatch --nodes=2 == mpirun -np 2 (bitwise)" \
    h5cmp "$TMP/sft2/run.h5" "$TMP/sft-host/run.h5" /metrics/train/loss exact

# --- a node crashes mid-run: requeue, resume, the same result
submit crash "$TMP/crash"
for _ in $(seq 1 1200); do
    grep -q "step_00000100.h5" "$TMP/crash.out" 2>/dev/null && break
    sleep 0.1
done
batch=$(scontrol show job "$JOB" | sed -n 's/.*BatchHost=\([a-z0-9]*\).*/\1/p')
victim=$(scontrol show hostnames "$(squeue -h -j "$JOB" -o %N)" | grep -vx "$batch" | head -1)
killed=$(for p in $(cluster_node_pids "$victim"); do ps -o comm= -p "$p"; done | sort -u | tr '\n' ' ')
echo "crash: job $JOB (batch host $batch), killing every process of $victim: $killed"
cluster_kill_node "$victim"
check "crash: killed mid-run, after a checkpoint (slurmd, slurmstepd and the rank of $victim: $killed)" \
    test -n "$victim" -a "$(grep -c '^done:' "$TMP/crash.out")" -eq 0 \
    -a "$(grep -cwE 'slurmd|slurmstepd|hdistill' <<<"${killed// /$'\n'}")" -eq 3
down=0
for _ in $(seq 1 120); do
    [[ $(sinfo -h -N -n "$victim" -o %t) == down* ]] && { down=1; break; }
    sleep 0.5
done
check "crash: Slurm marked $victim down" test $down -eq 1
cluster_start_node "$victim"
st=$(slurm_wait_job "$JOB" 300)
check "crash: the job COMPLETED after a requeue (got $st)" test "$st" = COMPLETED
restarts=$(scontrol show job "$JOB" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
check "crash: requeued by Slurm for the node failure (restarts: $restarts)" \
    test "${restarts:-0}" -ge 1 -a "$(grep -c 'DUE TO NODE FAILURE' "$TMP/crash.out")" -ge 1
check "crash: resumed from a checkpoint" grep -q "resume: from .*/step_0000" "$TMP/crash.out"
check "crash: $victim is back in service" cluster_wait_idle 30
check "crash + requeue == uninterrupted run: loss curve (bitwise)" \
    h5cmp "$TMP/crash/run.h5" "$TMP/sft2/run.h5" /metrics/train/loss exact
check "crash + requeue == uninterrupted run: final checkpoint (parameters, AdamW moments, RNG, cursor)" \
    $PY - "$TMP/crash/ckpt/step_00000400.h5" "$TMP/sft2/ckpt/step_00000400.h5" <<'PYEOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
for g in ("params", "optim/m", "optim/v"):
    names += [f"{g}/{k}" for k in b[g]]
names += ["state/rng", "state/cursor"]
bad = [n for n in names if n not in a or not np.array_equal(a[n][()].view(np.uint8), b[n][()].view(np.uint8))]
print(f"final checkpoints: {len(names)} datasets, {len(bad)} differ {bad[:5]}")
sys.exit(1 if bad or len(a["params"]) != len(b["params"]) else 0)
PYEOF

# --- the chain with --nodes=2: teach -> sweep rows (2 nodes each) -> analysis
SCFG=$TMP/sweep.json
$PY - "$ROOT/configs/run-tiny.json" "$SCFG" "$TMP" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["data"]["path"] = sys.argv[3] + "/sweep/data.h5"
c["ingest"].update({"limit": 250, "ood_limit": 20})
c["train"]["epochs"] = 2
c["critique"].update({"rounds": 1, "inputs": 60, "epochs": 2})
c["eval"]["limit"] = 20
json.dump(c, open(sys.argv[2], "w"), indent=1)
PYEOF
printf 'critique.objective\ttrain.seed\ndpo\t1\nsd\t2\n' >"$TMP/sweep.tsv"
out=$(HDISTILL="$HD" jobs/submit.sh "$SCFG" "$TMP/sweep.tsv" "$TMP/sweep" --nodes=2 --ntasks-per-node=1 2>&1)
echo "$out"
teach=$(sed -n 's/^teach \([0-9]*\).*/\1/p' <<<"$out"); sweep=$(sed -n 's/^sweep \([0-9]*\).*/\1/p' <<<"$out")
analysis=$(sed -n 's/^analysis \([0-9]*\).*/\1/p' <<<"$out")
st=$(slurm_wait_job "${analysis:-0}" 600)
check "chain --nodes=2: analysis COMPLETED (got $st)" test "$st" = COMPLETED
check "chain --nodes=2: teach and every row COMPLETED" \
    test "$(slurm_job_state "${teach:-0}")" = COMPLETED -a "$(slurm_job_state "${sweep:-0}")" = COMPLETED
check "chain --nodes=2: each row ran 2 tasks on 2 nodes" \
    test "$(cat "$TMP"/sweep/row-*.out 2>/dev/null | grep -cE "on node\[[1-3][-,][1-3]\]: 2 tasks x 1 threads")" -eq 2
check "chain --nodes=2: each row evaluated with its own settings" $PY - "$TMP/sweep" <<'PYEOF'
import h5py, json, sys
for i, (obj, seed) in enumerate([("dpo", 1), ("sd", 2)]):
    f = h5py.File(f"{sys.argv[1]}/row-{i}/run.h5", "r")
    c = json.loads(f["/config"][()])
    if not (c["critique"]["objective"] == obj and c["train"]["seed"] == seed and f["/eval"].attrs["complete"] == 1
            and f["/provenance"].attrs["world_size"].decode() == "2"):
        print("row", i, c["critique"]["objective"], c["train"]["seed"]); sys.exit(1)
PYEOF
check "chain --nodes=2: the report covers both rows" grep -q "row-1" "$TMP/sweep/report/report.md"

finish
