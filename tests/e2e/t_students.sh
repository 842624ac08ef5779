#!/usr/bin/env bash
# t_students -- the students people distil into today, end to end: a tiny
# randomly initialised checkpoint of each Llama-style family in the Hugging
# Face layout (config.json, BF16 weights in 2 shards + index) with the
# family's REAL tokenizer.json, given as model.init_from:
#   qwen3    Qwen3ForCausalLM (q/k norms)   + Qwen3's tokenizer, chat (ChatML)
#   qwen2    Qwen2ForCausalLM (q/k/v bias)  + Qwen2.5's tokenizer, chat (ChatML)
#   llama3   LlamaForCausalLM               + Llama 3's tokenizer, chat (Llama 3 headers)
#   smollm2  LlamaForCausalLM               + a SmolLM2-style tokenizer (GPT-2's vocabulary,
#            digits split one by one, ChatML tokens added), plain prompts
# Each runs `hdistill run` (ingest -> teach -> SFT -> a DPO round -> eval)
# under mpirun -np 2; a second run of the same configuration is SIGKILLed
# inside its critique round (mpirun's whole session: no rank outlives the
# kill) and resumed, and must end bitwise equal to the first (losses,
# pairs, evaluation); the checkpoint says arch llama; the
# export is a Hugging Face directory that holds the same tokenizer.json and
# is accepted again as model.init_from.
source "$(dirname "$0")/lib.sh"

if ! L=$(tools/fetch_hf_tokenizers.sh); then check "tools/fetch_hf_tokenizers.sh fetched the tokenizers" false; finish; exit; fi
if ! G=$(tools/fetch_gpt2.sh); then check "tools/fetch_gpt2.sh fetched GPT-2's files" false; finish; exit; fi

# the SmolLM2-style tokenizer.json: GPT-2's vocabulary and merges, Digits(individual) + ByteLevel,
# <|endoftext|>, <|im_start|>, <|im_end|> as special tokens
mkdir -p "$TMP/tok-smollm2"
$PY - "$G" "$TMP/tok-smollm2" <<'EOF'
import json, os, sys
g, out = sys.argv[1:3]
enc = json.load(open(os.path.join(g, "encoder.json")))
merges = [l for l in open(os.path.join(g, "vocab.bpe"), encoding="utf-8").read().split("\n")[1:] if l]
bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
          "special": True} for i, c in ((50256, "<|endoftext|>"), (50257, "<|im_start|>"), (50258, "<|im_end|>"))]
json.dump({"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, bl]},
           "post_processor": bl, "decoder": bl,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": enc,
                     "merges": merges}}, open(os.path.join(out, "tokenizer.json"), "w"), ensure_ascii=False)
json.dump({"eos_token": "<|im_end|>"}, open(os.path.join(out, "tokenizer_config.json"), "w"))
EOF

# family: NAME ARCH VOCAB TOKENIZER_DIR FORMAT
families=("qwen3 qwen3 151936 $L/tokenizer-qwen3/models chat"
          "qwen2 qwen2 151936 $L/tokenizer-qwen2_5/models chat"
          "llama3 llama 128256 $L/tokenizer-llama3/models chat"
          "smollm2 llama 50259 $TMP/tok-smollm2 plain")
sets() {  # sets NAME RUN: a small run of the whole method
    echo --set run.dir="$TMP/$2" --set data.path="$TMP/$1.h5" --set model.init_from="$TMP/$1" \
        --set tokenizer.type=hf --set student.format="$3" --set train.seq_len=96 --set ingest.limit=48 \
        --set ingest.ood_limit=8 --set teach.n=2 --set train.epochs=1 --set train.ckpt_every=4 \
        --set critique.rounds=1 --set critique.inputs=16 --set critique.epochs=2 --set critique.ckpt_every=2 \
        --set eval.limit=8 --set critique.batch_pairs=4 --set run.lock_wait=30
}
hd2() { OMP_NUM_THREADS=1 $MPIRUN -np 2 "$HD" "$@"; }
for f in "${families[@]}"; do
    read -r name arch vocab tokdir format <<<"$f"
    $PY tests/ref/hf_llama.py student "$TMP/$name" "$arch" "$vocab" "$tokdir" >/dev/null
    hd2 run configs/run-tiny.json $(sets "$name" "$name-a" "$format") >"$TMP/$name-a.log" 2>&1
    rc=$?
    check "$name: hdistill run (mpirun -np 2) exits 0 (rc $rc)" test $rc -eq 0
    check "$name: the checkpoint is arch llama" $PY -c "
import glob, h5py, sys; f = sorted(glob.glob('$TMP/$name-a/ckpt/step_*.h5'))[-1]
sys.exit(0 if h5py.File(f, 'r')['/model'].attrs['arch'] in (b'llama', 'llama') else 1)"
    check "$name: run.h5 has a collected round with pairs and an evaluation" $PY -c "
import h5py, sys; f = h5py.File('$TMP/$name-a/run.h5', 'r')
sys.exit(0 if f['/rounds/0'].attrs['complete'] == 1 and len(f['/rounds/0/pairs/chosen']) > 0 and f['/eval'].attrs['complete'] == 1 else 1)"
    # the same run, killed inside its critique round, resumed
    OMP_NUM_THREADS=1 setsid $MPIRUN -np 2 "$HD" run configs/run-tiny.json $(sets "$name" "$name-b" "$format") \
        >"$TMP/$name-b.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 1200); do grep -q "round 0 phase" "$TMP/$name-b.log" && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    sleep 0.3
    killed=0 ranks=
    if kill -0 $pid 2>/dev/null; then
        ranks=$(pgrep -d, -s "$pid" -x hdistill)
        # the session: Open MPI puts each rank in a process group of its own (a kill of mpirun's
        # group alone leaves the ranks running, still holding the run, until they notice mpirun is gone)
        pkill -9 -s "$pid" 2>/dev/null
        killed=1
    fi
    wait $pid 2>/dev/null
    if [[ $killed -eq 1 ]]; then
        # dead (gone or a zombie) within 0.3 s of the kill; ranks that outlive mpirun take about 1 s
        for _ in $(seq 1 6); do
            alive=$(ps -o pid=,stat= -p "${ranks:-0}" | awk '$2 !~ /^Z/ {print $1}' | tr '\n' ' ')
            [[ -z $alive ]] && break
            sleep 0.05
        done
        check "$name: the kill ended every rank at once (ranks ${ranks:-none}; alive 0.3 s later: ${alive:-none})" \
            test "$(tr , '\n' <<<"$ranks" | grep -c .)" -eq 2 -a -z "$alive"
    fi
    hd2 run configs/run-tiny.json $(sets "$name" "$name-b" "$format") >>"$TMP/$name-b.log" 2>&1
    rc=$?
    check "$name: killed inside round 0 ($killed) and resumed: exit 0 (rc $rc)" test $killed -eq 1 -a $rc -eq 0
    check "$name: the resumed run equals the uninterrupted one, bitwise" $PY - "$TMP/$name-b/run.h5" "$TMP/$name-a/run.h5" <<'EOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
bad, n = [], 0
def cmp(name, obj):
    global n
    if not isinstance(obj, h5py.Dataset) or name.endswith("metrics/train/time"): return
    if not name.startswith(("metrics/train", "rounds/", "eval/")): return
    x, y = np.asarray(a[name][()]), np.asarray(obj[()])
    n += 1
    if x.shape != y.shape or not (np.array_equal(x.view(np.uint8), y.view(np.uint8)) if x.dtype.kind in "fiu" else np.array_equal(x, y)):
        bad.append(name)
b.visititems(cmp)
print(f"{n} datasets compared, different: {bad}")
sys.exit(0 if n > 20 and not bad else 1)
EOF
    "$HD" export "$TMP/$name-a" --out "$TMP/$name-exp" >"$TMP/$name-exp.log" 2>&1
    check "$name: export writes a Hugging Face directory with the same tokenizer.json" \
        cmp -s "$TMP/$name-exp/tokenizer.json" "$tokdir/tokenizer.json"
    out=$("$HD" train configs/sft-tiny.json --set data.pairs="$TMP/$name.h5" --set run.dir="$TMP/$name-re" \
          --set model.init_from="$TMP/$name-exp" --set tokenizer.type=hf --set student.format="$format" \
          --set train.seq_len=96 --dry-run 2>&1)
    check "$name: the export is accepted as model.init_from" grep -q "dry run: configuration and data are valid" <<<"$out"
done
finish
