#!/usr/bin/env bash
# t_errors -- bad input gives one clear line naming the file/field, exit
# code 2 on every rank (no hang under mpirun), and no output left behind.
source "$(dirname "$0")/lib.sh"

PAIRS=$TMP/pairs.jsonl
$PY tools/make_pairs.py 300 "$PAIRS"
CFG=configs/sft-tiny.json

# expect_error NAME PATTERN [mpi] -- ARGS... : hdistill train ARGS must exit 2
# within 60 s, print exactly one "error:" line matching PATTERN, and create
# no run directory.
expect_error() {
    local name=$1 pat=$2 launcher=()
    shift 2
    if [[ $1 == mpi ]]; then launcher=($MPIRUN -np 2); shift; fi
    [[ $1 == -- ]] && shift
    local dir=$TMP/run-$RANDOM$RANDOM
    local err
    err=$(OMP_NUM_THREADS=1 timeout 60 "${launcher[@]}" "$HD" train "$@" --set run.dir="$dir" 2>&1 >/dev/null)
    local rc=$?
    local lines; lines=$(grep -c '^error: ' <<<"$err")
    if [[ $rc -ne 2 && -z ${launcher[*]} ]] || [[ $rc -eq 0 || $rc -eq 124 ]]; then
        echo "[$name] exit code $rc; stderr: $err" >&2; check "$name" false; return
    fi
    if ! grep -Eq -- "$pat" <<<"$err" || [[ $lines -ne 1 ]]; then
        echo "[$name] wanted one line matching '$pat', got ($lines error lines):" >&2; echo "$err" >&2
        check "$name" false; return
    fi
    check "$name leaves no run directory" test ! -e "$dir"
    check "$name" true
}

ok_args=(--set data.pairs="$PAIRS" --set train.steps=2)

# configuration files
expect_error "missing config file" "nope.json: No such file" -- "$TMP/nope.json"
printf '{"train": {"lr": 0.1,}}' >"$TMP/bad.json"
expect_error "malformed JSON config" "bad.json: malformed JSON near line 1" -- "$TMP/bad.json"
printf '{"train": {"learning_rate": 0.1}}' >"$TMP/unk.json"
expect_error "unknown key in file" "unk.json: unknown key 'train.learning_rate'" -- "$TMP/unk.json"
printf '{"trian": {"lr": 0.1}}' >"$TMP/sec.json"
expect_error "unknown section" "sec.json: unknown section 'trian'" -- "$TMP/sec.json"
printf '{"train": {"steps": "many"}}' >"$TMP/type.json"
expect_error "wrong type" "type.json: train.steps: expected an integer" -- "$TMP/type.json"
printf '{"train": {"batch_size": 2.5}}' >"$TMP/frac.json"
expect_error "non-integer" "frac.json: train.batch_size: expected an integer" -- "$TMP/frac.json"
printf '{"model": {"preset": "huge"}}' >"$TMP/enum.json"
expect_error "bad choice" "enum.json: model.preset = 'huge' is not one of" -- "$TMP/enum.json"
printf '{"data": {"pairs": 3}}' >"$TMP/str.json"
expect_error "number for string" "str.json: data.pairs: expected a string" -- "$TMP/str.json"
expect_error "--set out of range" "train.lr = -1 is out of range" -- $CFG "${ok_args[@]}" --set train.lr=-1
expect_error "--set unknown key" "unknown key 'train.lrr'" -- $CFG "${ok_args[@]}" --set train.lrr=1
expect_error "--set without =" "expected section.key=value" -- $CFG "${ok_args[@]}" --set train.lr
expect_error "heads do not divide d_model" "d_model 64 is not divisible by model.n_head 3" -- $CFG "${ok_args[@]}" --set model.n_head=3
expect_error "seq_len beyond positions" "train.seq_len 512 exceeds the model's 256 positions" -- $CFG "${ok_args[@]}" --set train.seq_len=512
err=$(cd "$TMP" && "$HD" train "$ROOT/$CFG" "${ok_args[@]}" --set run.dir= 2>&1 >/dev/null); rc=$?
check "empty run.dir -> exit 2, one line" test $rc -eq 2 -a "$(grep -c '^error: .*run.dir is empty' <<<"$err")" -eq 1
check "empty run.dir writes nothing" test ! -e "$TMP/run.h5" -a ! -e "$TMP/ckpt"
expect_error "unknown option" "unknown option '--frobnicate'" -- $CFG --frobnicate

# data files
expect_error "missing data file" "missing.jsonl: No such file" -- $CFG --set data.pairs="$TMP/missing.jsonl"
{ head -5 "$PAIRS"; echo '{"prompt": "x", "target": '; tail -3 "$PAIRS"; } >"$TMP/malformed.jsonl"
expect_error "malformed JSONL line" "malformed.jsonl:6: malformed JSON" -- $CFG --set data.pairs="$TMP/malformed.jsonl"
{ head -5 "$PAIRS"; printf '{"prompt": "cut off'; } >"$TMP/trunc.jsonl"
expect_error "truncated JSONL" "trunc.jsonl:6: malformed JSON \(truncated last line\?\)" -- $CFG --set data.pairs="$TMP/trunc.jsonl"
printf '{"prompt": "a b c", "target": "x y z"} trailing\n' >"$TMP/trail.jsonl"
expect_error "garbage after a JSONL object" "trail.jsonl:1: malformed JSON" -- $CFG --set data.pairs="$TMP/trail.jsonl"
printf '{"prompt": "a\\u0000bc", "target": "x y z"}\n' >"$TMP/nul.jsonl"
expect_error "JSONL string with \\u0000" 'nul.jsonl:1: a string contains' -- $CFG --set data.pairs="$TMP/nul.jsonl"
{ head -2 "$PAIRS"; echo '{"prompt": "a", "answer": "b"}'; } >"$TMP/field.jsonl"
expect_error "missing field" 'field.jsonl:3: expected string fields "prompt" and "target"' -- $CFG --set data.pairs="$TMP/field.jsonl"
: >"$TMP/empty.jsonl"
expect_error "empty data" "empty.jsonl: no pairs found" -- $CFG --set data.pairs="$TMP/empty.jsonl"
$PY - "$TMP/pairs.h5" <<'EOF'
import h5py, sys
with h5py.File(sys.argv[1], "w") as f:
    s = h5py.string_dtype()
    f.create_dataset("/pairs/prompt", data=["one two three four"] * 400, dtype=s)
    f.create_dataset("/pairs/target", data=["four three two one, ha!"] * 400, dtype=s)
    f.create_dataset("/pad", data=list(range(20000)))
EOF
head -c 3000 "$TMP/pairs.h5" >"$TMP/cut.h5"
expect_error "truncated HDF5 pairs" "cut.h5: not a readable HDF5 file" -- $CFG --set data.pairs="$TMP/cut.h5"
$PY -c "import h5py; h5py.File('$TMP/other.h5','w').create_dataset('x', data=[1])"
expect_error "HDF5 without pairs" "other.h5: no /pairs/\{prompt,target\}" -- $CFG --set data.pairs="$TMP/other.h5"
echo "this is not HDF5" >"$TMP/text.h5"
expect_error "text named .h5" "text.h5: not a readable HDF5 file" -- $CFG --set data.pairs="$TMP/text.h5"
expect_error "vocabulary larger than the data supports" "lower tokenizer.vocab_size" -- $CFG "${ok_args[@]}" --set tokenizer.vocab_size=60000
expect_error "pair longer than seq_len" "pairs.jsonl:[0-9]+: pair needs [0-9]+ positions but train.seq_len is 16" -- $CFG "${ok_args[@]}" --set train.seq_len=16
expect_error "gpt2 vocab missing" "no-vocab.json" -- $CFG "${ok_args[@]}" --set tokenizer.type=gpt2 --set tokenizer.gpt2_vocab="$TMP/no-vocab.json" --set tokenizer.gpt2_merges="$TMP/no-merges.txt"

# the same under mpirun -np 2: every rank exits, no hang, one error line
expect_error "np2: malformed JSONL" "malformed.jsonl:6: malformed JSON" mpi -- $CFG --set data.pairs="$TMP/malformed.jsonl"
expect_error "np2: unknown key" "unk.json: unknown key" mpi -- "$TMP/unk.json"
expect_error "np2: batch not divisible by ranks" "train.batch_size 3 is not divisible by the 2 ranks" mpi -- $CFG "${ok_args[@]}" --set train.batch_size=3
expect_error "np2: micro-batch does not divide" "train.micro_batch 3 does not divide the 4 rows per rank" mpi -- $CFG "${ok_args[@]}" --set train.micro_batch=3

# the skip policy drops long pairs and says how many
out=$(OMP_NUM_THREADS=1 "$HD" train $CFG "${ok_args[@]}" --set train.seq_len=40 --set data.too_long=skip --set run.dir="$TMP/skip" --dry-run 2>&1)
check "too_long=skip counts skipped pairs" grep -Eq '\([1-9][0-9]* too long, skipped\)' <<<"$out"

# a checkpoint of a different model in run.dir
OMP_NUM_THREADS=1 "$HD" train $CFG "${ok_args[@]}" --set run.dir="$TMP/m1" >/dev/null 2>&1
err=$(OMP_NUM_THREADS=1 "$HD" train $CFG "${ok_args[@]}" --set run.dir="$TMP/m1" --set model.n_layer=3 2>&1 >/dev/null)
check "different model in run.dir -> exit 2 with hint" grep -q "holds a checkpoint of a different model.*use a new run.dir" <<<"$err"

# subcommand usage
"$HD" frobnicate >/dev/null 2>&1
check "unknown subcommand -> exit 2" test $? -eq 2
help=$("$HD" --help)
check "--help lists train" grep -q "train CONFIG" <<<"$help"
help=$("$HD" train --help)
check "train --help lists options" grep -q "train.batch_size" <<<"$help"
"$HD" tokenize --gpt2-vocab 2>/dev/null
check "tokenize without files -> exit 2" test $? -eq 2


# pretrained weights that cannot be used stop `hdistill run` before ingest and teach spend anything,
# on every rank
printf 'not safetensors' >"$TMP/bad.safetensors"
for launcher in "" "$MPIRUN -np 2"; do
    err=$(OMP_NUM_THREADS=1 timeout 60 $launcher "$HD" run configs/paper.json --set run.dir="$TMP/paper" \
        --set data.path="$TMP/paper.h5" --set model.init_from="$TMP/bad.safetensors" 2>&1 >/dev/null); rc=$?
    check "run with unusable model.init_from${launcher:+ (mpirun -np 2)}: exit 2, one line, before ingest ($rc: $err)" \
        test $rc -eq 2 -a "$(grep -c '^error: model.init_from: .*bad.safetensors: not a safetensors file' <<<"$err")" -eq 1 \
        -a ! -e "$TMP/paper.h5" -a ! -e "$TMP/paper"
done


# jobs/submit.sh checks every sweep row before submitting anything (a stand-in sbatch records calls)
mkdir -p "$TMP/bin"
printf '#!/bin/sh\necho "$*" >>"%s/sbatch.calls"\necho 42\n' "$TMP" >"$TMP/bin/sbatch"
chmod +x "$TMP/bin/sbatch"
for f in jobs/sweeps/*.tsv; do
    out=$(PATH="$TMP/bin:$PATH" HDISTILL="$HD" jobs/submit.sh configs/quickstart.json "$f" "$TMP/sw" 2>&1); rc=$?
    n=$(grep -cv '^[[:space:]]*\(#\|$\)' "$f")
    check "example sweep $f: every row valid, the chain submitted ($rc)" \
        test $rc -eq 0 -a "$(grep -c "^checked $((n - 1)) sweep rows" <<<"$out")" -eq 1 -a "$(grep -c 'array=0-' "$TMP/sbatch.calls")" -ge 1
    rm -f "$TMP/sbatch.calls"
done
printf 'critique.objective\tcritique.beta\ndpo\t0.1\ndpo\t-1\n' >"$TMP/bad.tsv"
err=$(PATH="$TMP/bin:$PATH" HDISTILL="$HD" jobs/submit.sh configs/quickstart.json "$TMP/bad.tsv" "$TMP/sw2" 2>&1 >/dev/null); rc=$?
check "submit.sh with a bad sweep row: exit 2 naming row and key, nothing submitted ($err)" \
    test $rc -eq 2 -a ! -e "$TMP/sbatch.calls" -a ! -e "$TMP/sw2" -a "$(grep -c 'bad.tsv row 1: .*critique.beta' <<<"$err")" -eq 1

finish
