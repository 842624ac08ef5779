#!/usr/bin/env bash
# bench/ckpt.sh -- write bandwidth of sharded checkpoints (ckpt_write_sharded:
# rank 0 creates the file, every rank writes its slice of the parameters and
# AdamW moments with MPI-IO writes through parallel HDF5, sync,
# rename) for a qwen2.5-0.5b-sized state (494M parameters: params + m + v =
# 5.9 GB, random values) on 1 and 2 ranks, against
#   dd if=/dev/zero of=F bs=64M count=N conv=fsync
# of the same number of bytes (rounded up to 64 MiB) on the same disk, in
# the same run; also the serial ckpt_write (one process writes everything)
# for reference.  ROUNDS rounds, each dd, serial, 1 rank, 2 ranks in turn;
# the medians go into a Markdown table and
#   RESULT ckpt_sharded_gb_s_1rank=... ckpt_sharded_gb_s_2ranks=...
#          ckpt_serial_gb_s=... dd_gb_s=... ratio_1rank=... ratio_2ranks=... goal=0.80
# (ratio = checkpoint GB/s / dd GB/s; the goal is >= 0.80).  Every file it
# writes is deleted as soon as it is timed, and on exit.  Never part of the
# tests (make bench-ckpt); needs about 6 GB of free disk and 2.5 GB of memory.
# Environment: CKPT_BENCH_DIR (default build/bench-ckpt: the disk measured),
# ROUNDS (3), PRESET (qwen2.5-0.5b), MPI_YIELD=1 (Open MPI's
# mpi_yield_when_idle: waiting ranks give up their core, which matters only
# when other processes compete for the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_mpi_yield_when_idle=${MPI_YIELD:-0}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
MPIRUN="mpirun --allow-run-as-root --oversubscribe --bind-to none"
DIR=${CKPT_BENCH_DIR:-build/bench-ckpt}
ROUNDS=${ROUNDS:-3}
PRESET=${PRESET:-qwen2.5-0.5b}
BIN=build/bench/bench_ckpt
[[ -x $BIN ]] || { echo "bench/ckpt.sh: $BIN missing (hint: make bench-ckpt)" >&2; exit 2; }

bytes=$($BIN --preset "$PRESET" --bytes)
count=$(( (bytes + 67108863) / 67108864 ))
dd_bytes=$(( count * 67108864 ))
mkdir -p "$DIR"
DD="$DIR/dd.bin"
cleanup() { rm -f "$DD" "$DIR"/step_*.h5 "$DIR"/step_*.h5.tmp; rmdir "$DIR" 2>/dev/null || true; }
trap cleanup EXIT
avail=$(df --output=avail -B1 "$DIR" | tail -1)
mem=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) * 1024 ))  # (awk's %d stops at 2^31 in mawk)
if (( avail < dd_bytes + (1 << 30) )); then
    echo "bench/ckpt.sh: $DIR has $((avail >> 20)) MiB free, needs $(((dd_bytes >> 20) + 1024))" >&2; exit 2
fi
if (( mem < bytes / 3 + (1 << 30) )); then
    echo "bench/ckpt.sh: $((mem >> 20)) MiB of memory available, needs $(((bytes / 3 >> 20) + 1024))" >&2; exit 2
fi

echo "disk: $DIR on $(df --output=source "$DIR" | tail -1) ($(findmnt -no FSTYPE -T "$DIR" 2>/dev/null || echo '?'))," \
     "$((avail >> 30)) GiB free; payload $PRESET: $bytes bytes; dd: $count x 64 MiB = $dd_bytes bytes"
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(getconf _NPROCESSORS_ONLN) cores; mpi_yield_when_idle=$OMPI_MCA_mpi_yield_when_idle"

gbs() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-2])['gb_s'])"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
dd_all="" serial_all="" one_all="" two_all=""
for ((r = 1; r <= ROUNDS; r++)); do
    t0=$(date +%s.%N)
    dd if=/dev/zero of="$DD" bs=64M count="$count" conv=fsync status=none
    t1=$(date +%s.%N)
    rm -f "$DD"
    d=$(python3 -c "print(f'{$dd_bytes / ($t1 - $t0) / 1e9:.3f}')")
    s=$($BIN --dir "$DIR" --preset "$PRESET" --serial | gbs)
    o=$($MPIRUN -np 1 $BIN --dir "$DIR" --preset "$PRESET" | gbs)
    w=$($MPIRUN -np 2 $BIN --dir "$DIR" --preset "$PRESET" | gbs)
    echo "  round $r: dd $d GB/s, serial ckpt_write $s, sharded 1 rank $o, 2 ranks $w (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    dd_all+=" $d" serial_all+=" $s" one_all+=" $o" two_all+=" $w"
done
D=$(median <<<"$dd_all") S=$(median <<<"$serial_all") O=$(median <<<"$one_all") T=$(median <<<"$two_all")
ratio() { python3 -c "print(f'{$1 / $D:.2f}')"; }
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| writer | GB/s (median of $ROUNDS) | all rounds | / dd |"
echo "| --- | --- | --- | --- |"
echo "| dd bs=64M conv=fsync | $D |$dd_all | 1.00 |"
echo "| ckpt_write (serial) | $S |$serial_all | $(ratio "$S") |"
echo "| ckpt_write_sharded, 1 rank | $O |$one_all | $(ratio "$O") |"
echo "| ckpt_write_sharded, 2 ranks | $T |$two_all | $(ratio "$T") |"
echo
echo "RESULT ckpt_sharded_gb_s_1rank=$O ckpt_sharded_gb_s_2ranks=$T ckpt_serial_gb_s=$S dd_gb_s=$D" \
     "ratio_1rank=$(ratio "$O") ratio_2ranks=$(ratio "$T") goal=0.80"
