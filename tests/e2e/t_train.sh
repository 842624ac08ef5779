#!/usr/bin/env bash
# t_train -- end-to-end tests of `hdistill train`: dry run, determinism,
# data-parallel equivalence (mpirun -np 1 vs -np 2), gradient accumulation,
# kill -9 and resume (bitwise), STOP file (exit 3, resumable), a corrupt
# newest checkpoint, validation loss, export to safetensors and a run
# started from the exported weights.
source "$(dirname "$0")/lib.sh"

PAIRS=$TMP/pairs.jsonl
$PY tools/make_pairs.py 1500 "$PAIRS"
CFG=configs/sft-tiny.json
common=(--set data.pairs="$PAIRS" --set train.steps=50 --set train.seed=5 --set train.ckpt_every=10)
run() {  # run DIR [args...] : single rank, 2 threads
    local dir=$1; shift
    OMP_NUM_THREADS=2 "$HD" train "$CFG" "${common[@]}" --set run.dir="$dir" "$@" >"$dir.log" 2>&1
}

# --- dry run: plan, exact parameter count, nothing written
out=$("$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/dry" --dry-run 2>&1)
check "dry-run exit 0" test $? -eq 0
check "dry-run prints parameters" grep -Eq '^parameters: [0-9]+$' <<<"$out"
check "dry-run prints memory per rank" grep -q 'memory per rank' <<<"$out"
check "dry-run writes nothing" test ! -e "$TMP/dry"

# --- the exact GPT-2 124M parameter count with GPT-2's own vocabulary
gdir=$(tools/fetch_gpt2.sh)
out=$("$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/dry" --set model.preset=gpt2-124m \
      --set tokenizer.type=gpt2 --set tokenizer.gpt2_vocab="$gdir/encoder.json" \
      --set tokenizer.gpt2_merges="$gdir/vocab.bpe" --set train.seq_len=256 --dry-run 2>&1)
check "gpt2-124m dry run: parameters: 124439808" grep -qx 'parameters: 124439808' <<<"$out"

# --- determinism: same seed, same world size -> bitwise identical loss curve
run "$TMP/a"; rc=$?
check "train run a exits 0" test $rc -eq 0
run "$TMP/b"
check "run.h5 has /metrics/train/step and loss" $PY -c "
import h5py,sys; f=h5py.File('$TMP/a/run.h5','r'); s=f['/metrics/train/step'][()]; l=f['/metrics/train/loss'][()]
sys.exit(0 if list(s)==list(range(1,51)) and len(l)==50 and l[-1] < l[0] else 1)"
check "loss decreases and is finite" $PY -c "
import h5py,numpy as np,sys; l=h5py.File('$TMP/a/run.h5','r')['/metrics/train/loss'][()]
sys.exit(0 if np.all(np.isfinite(l)) and l[-5:].mean() < 0.8*l[:5].mean() else 1)"
check "same seed -> bitwise identical loss" h5cmp "$TMP/a/run.h5" "$TMP/b/run.h5" /metrics/train/loss exact
check "checkpoints named step_NNNNNNNN.h5, newest two kept" \
    test -f "$TMP/a/ckpt/step_00000050.h5" -a -f "$TMP/a/ckpt/step_00000040.h5" -a ! -e "$TMP/a/ckpt/step_00000030.h5"
check "checkpoint holds params, optimizer, state, tokenizer, config, provenance" $PY -c "
import h5py,sys; f=h5py.File('$TMP/a/ckpt/step_00000050.h5','r')
need=['/params/wte','/params/h.0.attn.c_attn.weight','/optim/m/wte','/optim/v/ln_f.bias','/state/rng','/state/cursor','/tokenizer/merges','/config','/provenance']
miss=[k for k in need if k not in f]
ok=not miss and f.attrs['format_version']==1 and f.attrs['step']==50 and 'git_sha' in f['/provenance'].attrs
print(miss); sys.exit(0 if ok else 1)"

# --- data parallel: -np 2 with the same global batch agrees with -np 1
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/np2" >"$TMP/np2.log" 2>&1
check "mpirun -np 2 exits 0" test $? -eq 0
check "np1 vs np2 loss within 1e-5 relative over 50 steps" h5cmp "$TMP/np2/run.h5" "$TMP/a/run.h5" /metrics/train/loss rel 1e-5
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/np2b" >/dev/null 2>&1
check "np2 deterministic (bitwise)" h5cmp "$TMP/np2/run.h5" "$TMP/np2b/run.h5" /metrics/train/loss exact

# --- HDF5 pairs: the same pairs from /pairs/{prompt,target} give the same curve
$PY - "$PAIRS" "$TMP/pairs.h5" "$TMP/teach.h5" <<'EOF'
import h5py, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
s = h5py.string_dtype()
with h5py.File(sys.argv[2], "w") as f:
    f.create_dataset("/pairs/prompt", data=[r["prompt"] for r in rows], dtype=s)
    f.create_dataset("/pairs/target", data=[r["target"] for r in rows], dtype=s)
# a teacher data.h5: 3 paraphrases per input, some empty, input 1 refused
with h5py.File(sys.argv[3], "w") as f:
    ins = [r["prompt"] for r in rows[:10]]
    para = [[r["target"], r["target"] + " x", ""] for r in rows[:10]]
    f.create_dataset("/inputs/train", data=ins, dtype=s)
    f.create_dataset("/teacher/paraphrases", data=para, dtype=s)
    f.create_dataset("/teacher/refused", data=[0, 1] + [0] * 8, dtype="u1")
EOF
run "$TMP/h5" --set data.pairs="$TMP/pairs.h5"
check "training from HDF5 pairs exits 0" test $? -eq 0
check "HDF5 pairs == JSONL pairs (bitwise loss)" h5cmp "$TMP/h5/run.h5" "$TMP/a/run.h5" /metrics/train/loss exact
out=$("$HD" train "$CFG" "${common[@]}" --set data.pairs="$TMP/teach.h5" --set run.dir="$TMP/teach" --set tokenizer.vocab_size=300 --dry-run 2>&1)
check "teacher data.h5: 9 inputs x 2 non-empty paraphrases = 18 pairs" grep -q "18 pairs -> 18 train" <<<"$out"

# --- gradient accumulation: 4 micro-batches of 2 rows == 1 batch of 8 rows
run "$TMP/acc" --set train.micro_batch=2
check "accumulation matches full batch (1e-5)" h5cmp "$TMP/acc/run.h5" "$TMP/a/run.h5" /metrics/train/loss rel 1e-5

# --- kill -9 mid-run, resume: bitwise identical loss curve
OMP_NUM_THREADS=2 "$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/k" >"$TMP/k.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [[ -f $TMP/k/ckpt/step_00000020.h5 ]] && break; sleep 0.02; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
check "killed before finishing" test ! -e "$TMP/k/ckpt/step_00000050.h5"
run "$TMP/k"
check "resume exits 0" test $? -eq 0
check "resume reports the checkpoint" grep -q 'resuming from .*step_000000[2-4]0.h5' "$TMP/k.log"
check "kill -9 + resume: bitwise identical loss" h5cmp "$TMP/k/run.h5" "$TMP/a/run.h5" /metrics/train/loss exact
check "kill -9 + resume: identical final parameters" h5cmp "$TMP/k/ckpt/step_00000050.h5" "$TMP/a/ckpt/step_00000050.h5" /params/h.1.mlp.c_fc.weight exact
check "resume recorded in run.h5" $PY -c "import h5py,sys; sys.exit(0 if '/resumes/0' in h5py.File('$TMP/k/run.h5','r') else 1)"

# --- the same under mpirun -np 2 (kill every rank)
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/k2" >"$TMP/k2.log" 2>&1 &
pid=$!
for _ in $(seq 1 900); do [[ -f $TMP/k2/ckpt/step_00000020.h5 ]] && break; sleep 0.02; done
pkill -9 -f "run.dir=$TMP/k2" 2>/dev/null; wait $pid 2>/dev/null
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/k2" >"$TMP/k2.log" 2>&1
check "np2 kill -9 + resume exits 0" test $? -eq 0
check "np2 kill -9 + resume: bitwise identical loss" h5cmp "$TMP/k2/run.h5" "$TMP/np2/run.h5" /metrics/train/loss exact

# --- STOP file: checkpoint, exit 3, resume to the same result
mkdir -p "$TMP/s"
OMP_NUM_THREADS=2 "$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/s" >"$TMP/s.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [[ -f $TMP/s/ckpt/step_00000010.h5 ]] && break; sleep 0.02; done
touch "$TMP/s/STOP"
wait $pid; rc=$?
check "STOP file -> exit code 3" test $rc -eq 3
check "STOP file consumed" test ! -e "$TMP/s/STOP"
run "$TMP/s"
check "after STOP, resume completes identically" h5cmp "$TMP/s/run.h5" "$TMP/a/run.h5" /metrics/train/loss exact

# --- SIGTERM: same contract
OMP_NUM_THREADS=2 "$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/sig" >"$TMP/sig.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [[ -f $TMP/sig/ckpt/step_00000010.h5 ]] && break; sleep 0.02; done
kill -TERM $pid; wait $pid; rc=$?
check "SIGTERM -> exit code 3" test $rc -eq 3
run "$TMP/sig"
check "after SIGTERM, resume completes identically" h5cmp "$TMP/sig/run.h5" "$TMP/a/run.h5" /metrics/train/loss exact

# --- a truncated newest checkpoint is skipped
run "$TMP/c" --set train.ckpt_keep=3
truncate -s 5000 "$TMP/c/ckpt/step_00000050.h5"
run "$TMP/c" --set train.ckpt_keep=3
check "corrupt checkpoint skipped with a warning" grep -q 'unreadable checkpoint' "$TMP/c.log"
check "corrupt checkpoint quarantined as .bad" test -f "$TMP/c/ckpt/step_00000050.h5.bad"
check "resumed from step 40" grep -q 'resuming from .*step_00000040.h5' "$TMP/c.log"
check "resumed from the older checkpoint, identical curve" h5cmp "$TMP/c/run.h5" "$TMP/a/run.h5" /metrics/train/loss exact

# --- validation loss
run "$TMP/v" --set data.val_fraction=0.1 --set train.eval_every=10
check "validation loss recorded every 10 steps" $PY -c "
import h5py,numpy as np,sys; f=h5py.File('$TMP/v/run.h5','r')
s=f['/metrics/val/step'][()]; l=f['/metrics/val/loss'][()]
sys.exit(0 if list(s)==[10,20,30,40,50] and np.all(np.isfinite(l)) and l[-1]<l[0] else 1)"

# --- ckpt_keep=1 and a corrupt newest checkpoint: quarantined, never kept in place of good ones
run "$TMP/k1" --set train.ckpt_keep=1
truncate -s 4000 "$TMP/k1/ckpt/step_00000050.h5"
run "$TMP/k1" --set train.ckpt_keep=1
check "keep=1: corrupt only checkpoint -> fresh start, identical curve" h5cmp "$TMP/k1/run.h5" "$TMP/a/run.h5" /metrics/train/loss exact
check "keep=1: the new step 50 is kept, the bad one set aside" test -f "$TMP/k1/ckpt/step_00000050.h5" -a -f "$TMP/k1/ckpt/step_00000050.h5.bad"

# --- validation history survives kill -9 (it is in the checkpoints)
OMP_NUM_THREADS=2 "$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/vk" --set data.val_fraction=0.1 --set train.eval_every=10 >"$TMP/vk.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [[ -f $TMP/vk/ckpt/step_00000030.h5 ]] && break; sleep 0.02; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
rm -f "$TMP/vk/run.h5"   # and even the run file lost: rebuilt from the checkpoint
run "$TMP/vk" --set data.val_fraction=0.1 --set train.eval_every=10
check "validation series identical after kill -9 and a lost run.h5" h5cmp "$TMP/vk/run.h5" "$TMP/v/run.h5" /metrics/val/loss exact
check "train series identical after a lost run.h5" h5cmp "$TMP/vk/run.h5" "$TMP/v/run.h5" /metrics/train/loss exact

# --- a finished run started again does nothing and changes nothing
cp "$TMP/a/run.h5" "$TMP/a_before.h5"
run "$TMP/a"
check "re-running a finished run is a no-op" grep -q 'already complete' "$TMP/a.log"
check "re-run leaves the loss curve" h5cmp "$TMP/a/run.h5" "$TMP/a_before.h5" /metrics/train/loss exact

# --- analysis/train_curves.py reads the same numbers back from run.h5
$PY analysis/train_curves.py "$TMP/a" "$TMP/v" --csv "$TMP/curves.csv" --png "$TMP/curves.png" >"$TMP/curves.md"
check "train_curves.py exits 0" test $? -eq 0
check "train_curves.py CSV equals run.h5" $PY -c "
import csv,h5py,sys
rows=[r for r in csv.DictReader(open('$TMP/curves.csv')) if r['run']=='a']
l=h5py.File('$TMP/a/run.h5','r')['/metrics/train/loss'][()]
sys.exit(0 if len(rows)==50 and all(float(r['loss'])==x for r,x in zip(rows,l)) else 1)"
check "train_curves.py table has the final loss" $PY -c "
import h5py,sys; l=h5py.File('$TMP/a/run.h5','r')['/metrics/train/loss'][-1]
sys.exit(0 if ('| a | 50 | %.4f |' % l) in open('$TMP/curves.md').read() else 1)"
check "train_curves.py wrote a PNG" $PY -c "import sys; sys.exit(0 if open('$TMP/curves.png','rb').read(8)==b'\\x89PNG\\r\\n\\x1a\\n' else 1)"

# --- export the student (Hugging Face GPT-2 layout) and start another run from it
"$HD" export "$TMP/a" --out "$TMP/exp" >"$TMP/exp.log" 2>&1
check "export exits 0 and names the checkpoint" grep -q "exported $TMP/a/ckpt/step_00000050.h5" "$TMP/exp.log"
check "export wrote model.safetensors and config.json" $PY -c "
import json,sys; c=json.load(open('$TMP/exp/config.json'))
sys.exit(0 if c['model_type']=='gpt2' and c['n_layer']==2 and c['n_embd']==64 else 1)"
run "$TMP/init" --set model.init_from="$TMP/exp/model.safetensors" --set train.steps=5 --set train.lr=1e-4
check "a run from the exported weights exits 0" test $? -eq 0
check "... says where its weights came from" grep -q "initial weights from $TMP/exp/model.safetensors: 28 tensors (F32)" "$TMP/init.log"
check "... starts at the exported run's loss, not at a random start's" $PY -c "
import h5py,sys
a=h5py.File('$TMP/a/run.h5','r')['/metrics/train/loss'][()]; b=h5py.File('$TMP/init/run.h5','r')['/metrics/train/loss'][()]
print(f'random start {a[0]:.3f}, after 50 steps {a[-1]:.3f}, from the export {b[0]:.3f}')
sys.exit(0 if b[0] < a[-1] * 1.15 and b[0] < a[0] - 1.0 else 1)"
err=$("$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/initbad" --set model.init_from="$TMP/exp/model.safetensors" \
    --set model.preset=mini --dry-run 2>&1 >/dev/null); rc=$?
check "init_from with other dimensions: exit 2 at the dry run, one line naming it ($err)" \
    test $rc -eq 2 -a "$(wc -l <<<"$err")" -eq 1 -a ! -e "$TMP/initbad" && [[ $err == *model.init_from*exp/model.safetensors*shape* ]]
err=$("$HD" train "$CFG" "${common[@]}" --set run.dir="$TMP/initbad" --set model.init_from="$TMP/nope.safetensors" 2>&1 >/dev/null); rc=$?
check "init_from missing file: exit 2, names it" test $rc -eq 2 -a ! -e "$TMP/initbad" && [[ $err == *nope.safetensors* ]]
mkdir -p "$TMP/empty"
"$HD" export "$TMP/empty" --out "$TMP/exp2" >/dev/null 2>"$TMP/exp2.err"; rc=$?
check "export of a directory without checkpoints: exit 2, one line" test $rc -eq 2 -a "$(wc -l <"$TMP/exp2.err")" -eq 1

finish
