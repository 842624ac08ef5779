#!/usr/bin/env bash
# t_generate -- the student you can try: `hdistill generate` and
# `hdistill serve --model` on a tiny trained run (configs/run-tiny.json
# without critique rounds, one process):
#   - generate's beam output equals the evaluation's outputs stored in run.h5
#     (/eval/eval/student from --file, /eval/ood/student from stdin; from the
#     run directory and from its checkpoint file);
#   - --json: each output's logprob (the decoder's, over a KV cache) equals the
#     sum of its tokens' (a full forward pass), and both equal an independent
#     float64 PyTorch model (tests/ref/torch_ref.py) of prompt_ids + tokens;
#   - sampling with a seed is reproducible, another seed differs, k lines per
#     input; bad arguments and unreadable sources exit 2 with one line naming them;
#   - serve --model through the official OpenAI Node SDK (npm "openai", installed
#     into build/npm as bench/client.sh does): models.list, n=2 with logprobs and
#     top_logprobs equal to generate --sample --json with the same settings,
#     temperature 0 equal to generate's beam output, a bad temperature as the
#     SDK's APIError with status 400 and param "temperature", another model 404;
#   - the served student as the TEACHER of another run: `hdistill teach` with
#     teacher.base_url at it completes, and the stored answers are the
#     student's outputs;
#   - a Hugging Face directory (tests/ref/hf_llama.py: a random Llama-style
#     student with a SmolLM2-style tokenizer) through generate (float64 check
#     with tests/ref/torch_llama.py) and serve (the model id, chat format with
#     the system message as the instruction).
source "$(dirname "$0")/lib.sh"

SDK_VERSION=4.104.0   # as bench/client.sh
NM=$ROOT/build/npm/node_modules
CFG=configs/run-tiny.json
export OMP_NUM_THREADS=2
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; [[ -n ${KEEP_TMP:-} ]] || rm -rf "$TMP"' EXIT

"$HD" run "$CFG" --set run.dir="$TMP/a" --set data.path="$TMP/data.h5" --set critique.rounds=0 >"$TMP/a.log" 2>&1
check "a tiny run (SFT + evaluation) exits 0" test $? -eq 0
$PY - "$TMP/a/run.h5" "$TMP" <<'EOF'
import h5py, sys
f = h5py.File(sys.argv[1], "r")
for s in ("eval", "ood"):
    for k in ("input", "student"):
        open(f"{sys.argv[2]}/{s}.{k}", "w").write("".join(x.decode() + "\n" for x in f[f"/eval/{s}/{k}"][()]))
EOF
CK=$(ls "$TMP"/a/ckpt/step_*.h5 | tail -1)

# ---- generate = evaluation ------------------------------------------------------------
"$HD" generate "$TMP/a" --file "$TMP/eval.input" >"$TMP/g.eval" 2>"$TMP/g.err"
check "generate --file: exit 0, stderr empty" test $? -eq 0 -a ! -s "$TMP/g.err"
check "generate (beam) = the evaluation's outputs of the eval split" cmp "$TMP/g.eval" "$TMP/eval.student"
"$HD" generate "$CK" <"$TMP/ood.input" >"$TMP/g.ood"
check "generate CHECKPOINT from stdin = the evaluation's outputs of the ood split" cmp "$TMP/g.ood" "$TMP/ood.student"
check "evaluation outputs are not all one text" test "$(sort -u "$TMP/eval.student" | wc -l)" -ge 1
first=$(head -1 "$TMP/eval.input")
check "--input: one line" test "$("$HD" generate "$TMP/a" --input "$first")" = "$(head -1 "$TMP/eval.student")"

# ---- --json: log-probabilities three ways ------------------------------------------------
head -6 "$TMP/eval.input" | "$HD" generate "$TMP/a" --json >"$TMP/beam.jsonl"
"$HD" generate "$TMP/a" --json --sample --k 3 --seed 11 --temperature 1.2 --file <(head -4 "$TMP/eval.input") >"$TMP/sample.jsonl"
check_logprobs() {  # FILE CKPT: sum of tokens = logprob; float64 reference
    $PY - "$1" "$2" <<'EOF'
import json, math, sys, h5py, numpy as np, torch
sys.path.insert(0, "tests/ref")
from torch_ref import RefGPT
lines = [json.loads(l) for l in open(sys.argv[1])]
f = h5py.File(sys.argv[2], "r")
cfg = {k: int(f["/model"].attrs[k]) for k in ("n_layer", "n_head", "d_model", "vocab_size", "max_seq_len")}
ref = RefGPT(cfg, {k: f["/params"][k][()] for k in f["/params"]}) if "/params" in f else None
worst_sum = worst_ref = 0.0
n = 0
for obj in lines:
    for o in obj["outputs"]:
        toks = o["tokens"]
        assert o["finish_reason"] in ("stop", "length") and (o["finish_reason"] == "stop") == (toks and toks[-1]["text"] == "<|endoftext|>")
        worst_sum = max(worst_sum, abs(sum(t["logprob"] for t in toks) - o["logprob"]))
        seq = obj["prompt_ids"] + [t["id"] for t in toks]
        T = len(seq) - 1
        with torch.no_grad():
            lg = ref.forward(torch.tensor([seq[:-1]]), torch.arange(T)[None], torch.zeros(1, T, dtype=torch.long))[0]
        lp = torch.log_softmax(lg, -1)
        p0 = len(obj["prompt_ids"]) - 1
        r = [float(lp[p0 + j, t["id"]]) for j, t in enumerate(toks)]
        worst_ref = max([worst_ref, abs(sum(r) - o["logprob"])] + [abs(a - t["logprob"]) for a, t in zip(r, toks)])
        n += 1
print(f"{n} outputs: |sum(tokens) - logprob| <= {worst_sum:.2e}, |float64 reference - C| <= {worst_ref:.2e}")
sys.exit(0 if n > 0 and worst_sum < 1e-3 and worst_ref < 1e-3 else 1)
EOF
}
check "--json beam: logprob = sum of token logprobs = float64 reference" check_logprobs "$TMP/beam.jsonl" "$CK"
check "--json sampling: the same" check_logprobs "$TMP/sample.jsonl" "$CK"
check "--json beam text = plain output" $PY -c "
import json,sys; t=[json.loads(l)['outputs'][0]['text'] for l in open('$TMP/beam.jsonl')]
sys.exit(0 if t == open('$TMP/eval.student').read().split('\n')[:6] else 1)"

# ---- sampling ---------------------------------------------------------------------------
s1=$(head -3 "$TMP/eval.input" | "$HD" generate "$TMP/a" --sample --seed 5)
s2=$(head -3 "$TMP/eval.input" | "$HD" generate "$TMP/a" --sample --seed 5)
s3=$(head -3 "$TMP/eval.input" | "$HD" generate "$TMP/a" --sample --seed 6)
check "sampling with a seed is reproducible" test "$s1" = "$s2"
check "another seed, other samples" test "$s1" != "$s3"
check "sampling: critique.k = 6 lines per input" test "$(wc -l <<<"$s1")" -eq 18
check "sampling --k 2: 2 lines per input" test "$("$HD" generate "$TMP/a" --sample --k 2 --input x --input y | wc -l)" -eq 4
s4=$(head -3 "$TMP/eval.input" | tail -1 | "$HD" generate "$TMP/a" --sample --seed 5)
check "an input's samples depend on its index (input 2 alone is input 0)" test "$s4" != "$(sed -n 13,18p <<<"$s1")"

# ---- errors -----------------------------------------------------------------------------
expect2() {  # NAME PATTERN -- ARGS...: exit 2, one line on stderr matching PATTERN
    local name=$1 pat=$2; shift 3
    "$HD" generate "$@" </dev/null >"$TMP/e.out" 2>"$TMP/e.err"
    local rc=$?
    check "$name: exit 2 (got $rc)" test $rc -eq 2
    check "$name: one line naming it ($(head -c 200 "$TMP/e.err"))" bash -c "test \$(wc -l <'$TMP/e.err') -eq 1 && grep -Eq -- '$pat' '$TMP/e.err'"
}
mkdir -p "$TMP/empty" "$TMP/norun/ckpt"
head -c 5000 "$CK" >"$TMP/cut.h5"
expect2 "missing source" "$TMP/nothere: no such file or directory \(hint" -- "$TMP/nothere"
expect2 "a directory that is neither" "$TMP/empty: neither a run directory .*hint" -- "$TMP/empty"
expect2 "a run directory without checkpoints" "$TMP/norun/ckpt: no readable checkpoint \(hint" -- "$TMP/norun"
expect2 "a truncated checkpoint" "cut.h5" -- "$TMP/cut.h5"
expect2 "--k without --sample" "--k.*need --sample" -- "$TMP/a" --k 3
expect2 "--beam 0" "--beam 0" -- "$TMP/a" --beam 0
expect2 "--max-new beyond the positions" "--max-new 256.*256 positions" -- "$TMP/a" --max-new 256
expect2 "an unknown option" "unknown option .--nope. \(hint" -- "$TMP/a" --nope 1
expect2 "an unknown option with =" "unknown option .--nope. \(hint" -- "$TMP/a" --nope=1
expect2 "an option without its value" "^error: generate: --beam needs a value \(hint" -- "$TMP/a" --beam
expect2 "an empty value" "--beam : not an integer in" -- "$TMP/a" --beam=
expect2 "a bad --set" "--set student.format=rhyme" -- "$TMP/a" --set student.format=rhyme
for args in "--port|--port needs a value" "--nope=1|unknown option '--nope'" "--threads=|--threads : not an integer in [1, 64]"; do
    err=$("$HD" serve --model "$TMP/a" ${args%%|*} 2>&1 >/dev/null </dev/null); rc=$?
    check "serve --model ${args%%|*}: exit 2, one line ($err)" \
        test $rc -eq 2 -a "$err" = "hdistill serve: ${args#*|} (see hdistill serve --model X --help)"
done

# ---- serve --model with the OpenAI Node SDK --------------------------------------------------
start_server() {  # NAME ARGS...: serve --model in the background; PORT, URL, SERVER_PID
    local name=$1; shift
    rm -f "$TMP/$name.port"
    "$HD" serve --port 0 --port-file "$TMP/$name.port" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 200); do [[ -s "$TMP/$name.port" ]] && break; sleep 0.05; done
    PORT=$(cat "$TMP/$name.port" 2>/dev/null || echo 0)
    URL=http://127.0.0.1:$PORT/v1
}
start_server s --model "$TMP/a"
check "serve --model: ready line names the student" grep -qx "hdistill serve: student a listening on $URL" "$TMP/s.out"
if [[ ! -f $NM/openai/package.json ]]; then
    mkdir -p build/npm
    npm install --prefix build/npm --no-audit --no-fund --loglevel=error "openai@$SDK_VERSION" >&2
fi
check "npm package openai@$SDK_VERSION in build/npm (npm install needs the registry once)" \
    grep -q "\"version\": \"$SDK_VERSION\"" "$NM/openai/package.json"
cat >"$TMP/sdk.mjs" <<'EOF'
// node sdk.mjs NODE_MODULES BASE_URL MODEL INPUT: the OpenAI SDK against serve --model; prints one JSON object
const [nm, baseURL, model, input] = process.argv.slice(2);
const { default: OpenAI } = await import(new URL(`file://${nm}/openai/index.mjs`).href);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const out = {};
out.models = (await client.models.list()).data.map((m) => m.id);
const messages = [{ role: "user", content: input }];
const req = { model, messages, n: 2, temperature: 1.3, top_p: 0.9, seed: 7, max_tokens: 20, logprobs: true, top_logprobs: 3 };
out.sampled = await client.chat.completions.create(req);
out.again = await client.chat.completions.create(req);
out.beam = await client.chat.completions.create({ model, messages, temperature: 0 });
out.long = await client.chat.completions.create({ model, messages: [{ role: "user", content: [{ type: "text", text: input }] }], max_completion_tokens: 100000, temperature: 0 });
for (const [name, bad] of [["temperature", { temperature: 5 }], ["model", { model: "gpt-4o" }], ["n", { n: 0 }],
                           ["top_logprobs", { top_logprobs: 2 }], ["stream", { stream: true }]]) {
  try {
    const r = await client.chat.completions.create({ model, messages, ...bad });
    out[`err_${name}`] = { ok: true, r };
  } catch (e) {
    out[`err_${name}`] = { api: e instanceof OpenAI.APIError, status: e.status, param: e.param, code: e.code, type: e.type, message: e.message };
  }
}
console.log(JSON.stringify(out));
EOF
node "$TMP/sdk.mjs" "$NM" "$URL" a "$first" >"$TMP/sdk.json" 2>"$TMP/sdk.err"
check "the SDK script ran ($(head -c 300 "$TMP/sdk.err"))" test $? -eq 0
"$HD" generate "$TMP/a" --sample --k 2 --temperature 1.3 --top-p 0.9 --seed 7 --max-new 20 --json --input "$first" >"$TMP/same.jsonl"
check "SDK: models.list, n=2 with logprobs = generate --sample --json, 400/404 as APIError with the param" \
    $PY - "$TMP/sdk.json" "$TMP/same.jsonl" "$(head -1 "$TMP/eval.student")" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); g = json.loads(open(sys.argv[2]).read()); beam_text = sys.argv[3]
bad = []
def need(c, m):
    if not c: bad.append(m)
need(r["models"] == ["a"], "models.list ids")
s = r["sampled"]
need(s["object"] == "chat.completion" and s["model"] == "a" and len(s["choices"]) == 2, "two choices")
u = s["usage"]
need(u["prompt_tokens"] == len(g["prompt_ids"]) and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], "usage")
need(u["completion_tokens"] == sum(len(o["tokens"]) for o in g["outputs"]), "completion tokens (the end token counted)")
for c, o in zip(s["choices"], g["outputs"]):
    need(c["message"]["role"] == "assistant" and c["message"]["content"] == o["text"], f"choice {c['index']}: the text of generate")
    need(c["finish_reason"] == o["finish_reason"], "finish_reason")
    toks = [t for t in o["tokens"] if t["text"] != "<|endoftext|>"]
    lc = c["logprobs"]["content"]
    need(len(lc) == len(toks), "one logprobs item per generated token (not the end token)")
    for a, b in zip(lc, toks):
        need(a["token"] == b["text"] and abs(a["logprob"] - b["logprob"]) < 1e-12, "token and logprob = generate's")
        need(bytes(a["bytes"]).decode("utf-8", "replace") == a["token"], "bytes")
        tl = a["top_logprobs"]
        need(len(tl) == 3 and all(tl[i]["logprob"] >= tl[i + 1]["logprob"] for i in range(2)), "top 3, most probable first")
        need(tl[0]["logprob"] >= a["logprob"] - 1e-12 and all(x["logprob"] <= 0 for x in tl), "top_logprobs bound the token")
need(r["again"]["choices"] == s["choices"], "the same seed, the same answer")
need(r["beam"]["choices"][0]["message"]["content"] == beam_text and r["beam"]["choices"][0]["logprobs"] is None,
     "temperature 0 = generate's beam output")
lg = r["long"]
need(lg["usage"]["total_tokens"] <= 256 and lg["choices"][0]["message"]["content"] == beam_text, "max_completion_tokens beyond the context: cut to it")
for name, status, param in (("temperature", 400, "temperature"), ("model", 404, "model"), ("n", 400, "n"),
                            ("top_logprobs", 400, "top_logprobs"), ("stream", 400, "stream")):
    e = r[f"err_{name}"]
    need(e.get("api") and e.get("status") == status and e.get("param") == param and e.get("type") == "invalid_request_error",
         f"error {name}: {e}")
print("problems:", bad)
sys.exit(1 if bad else 0)
EOF
check "POST /v1/models: 405 in OpenAI's shape" bash -c "curl -s -w '%{http_code}' -X POST '$URL/models' | grep -q '\"param\":null.*}405$'"
check "GET /v1/nothing: 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/nothing")" = 404
check "a body that is not JSON: 400" test "$(curl -s -o /dev/null -w '%{http_code}' -d '{' "$URL/chat/completions")" = 400

# ---- the served student as the teacher of another run ---------------------------------------
"$HD" ingest "$CFG" --set data.path="$TMP/t.h5" --set ingest.limit=30 --set ingest.ood_limit=5 >"$TMP/ti.log" 2>&1
"$HD" teach "$CFG" --set data.path="$TMP/t.h5" --set teacher.base_url="$URL" --set teacher.model=a \
    --set teacher.prompt='{input}' --set teach.n=1 --set teacher.temperature=0 --set teacher.max_tokens=40 >"$TMP/tt.log" 2>&1
check "teach with the served student as teacher: exit 0" test $? -eq 0
$PY -c "
import h5py; f=h5py.File('$TMP/t.h5','r')
open('$TMP/t.input','w').write(''.join(x.decode()+'\n' for x in f['/inputs/train'][()]))
open('$TMP/t.raw','w').write(''.join(x.decode()+'\n' for x in f['/teacher/raw'][()]))"
check "teach: complete, every answer stored" $PY -c "
import h5py,sys; f=h5py.File('$TMP/t.h5','r'); t=f['/teacher']
sys.exit(0 if t.attrs['complete']==1 and t.attrs['model'] in (b'a','a') and len(t['raw'])==len(f['/inputs/train']) > 10 else 1)"
"$HD" generate "$TMP/a" --file "$TMP/t.input" >"$TMP/t.gen"
check "teach: the stored answers are the student's outputs" cmp "$TMP/t.raw" "$TMP/t.gen"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; rc=$?
check "serve --model: SIGTERM, exit 0 (got $rc)" test $rc -eq 0
check "serve --model: the summary counts the chat completions" grep -q "chat completions" "$TMP/s.out"

# ---- a Hugging Face directory ---------------------------------------------------------------
if G=$(tools/fetch_gpt2.sh); then
    mkdir -p "$TMP/tok"
    $PY - "$G" "$TMP/tok" <<'EOF'
import json, os, sys
g, out = sys.argv[1:3]
enc = json.load(open(os.path.join(g, "encoder.json")))
merges = [l for l in open(os.path.join(g, "vocab.bpe"), encoding="utf-8").read().split("\n")[1:] if l]
bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
          "special": True} for i, c in ((50256, "<|endoftext|>"), (50257, "<|im_start|>"), (50258, "<|im_end|>"))]
json.dump({"version": "1.0", "added_tokens": added, "normalizer": None, "pre_tokenizer": bl, "post_processor": bl,
           "decoder": bl, "model": {"type": "BPE", "vocab": enc, "merges": merges}},
          open(os.path.join(out, "tokenizer.json"), "w"), ensure_ascii=False)
json.dump({"eos_token": "<|im_end|>"}, open(os.path.join(out, "tokenizer_config.json"), "w"))
EOF
    $PY tests/ref/hf_llama.py student "$TMP/smol" llama 50259 "$TMP/tok" >/dev/null
    "$HD" generate "$TMP/smol" --json --max-new 12 --input "the cat sat on the mat" --input "a dog" >"$TMP/hf.jsonl" 2>"$TMP/hf.err"
    check "generate HF_DIR: exit 0 ($(head -c 200 "$TMP/hf.err"))" test $? -eq 0
    check "generate HF_DIR: logprob = sum of tokens = float64 reference (tests/ref/torch_llama.py)" $PY - "$TMP/hf.jsonl" "$TMP/smol" <<'EOF'
import glob, json, os, sys, numpy as np, torch
sys.path.insert(0, "tests/ref")
import hf_llama, torch_llama
d = sys.argv[2]
params = {}
for p in glob.glob(os.path.join(d, "*.safetensors")):
    params.update({k: v for k, (dt, v) in hf_llama.read_safetensors(p).items()})
cfg = hf_llama.spec("llama", vocab_size=50259, max_seq_len=256, tie_embeddings=1)
worst, n = 0.0, 0
for line in open(sys.argv[1]):
    obj = json.loads(line)
    for o in obj["outputs"]:
        toks = o["tokens"]
        seq = obj["prompt_ids"] + [t["id"] for t in toks]
        T = len(seq) - 1
        lg = torch.as_tensor(torch_llama.logits_of(cfg, params, np.array([seq[:-1]]), np.arange(T)[None], np.zeros((1, T), int))[0])
        lp = torch.log_softmax(lg, -1)
        p0 = len(obj["prompt_ids"]) - 1
        r = [float(lp[p0 + j, t["id"]]) for j, t in enumerate(toks)]
        worst = max([worst, abs(sum(r) - o["logprob"]), abs(sum(t["logprob"] for t in toks) - o["logprob"])] +
                    [abs(a - t["logprob"]) for a, t in zip(r, toks)])
        n += 1
print(f"{n} outputs, worst difference {worst:.2e}")
sys.exit(0 if n == 2 and worst < 1e-3 else 1)
EOF
    start_server h --model "$TMP/smol" --model-name smol-student --set student.format=chat
    check "serve --model HF_DIR --model-name: the model id" bash -c "curl -s '$URL/models' | grep -q '\"id\":\"smol-student\"'"
    body() { echo "{\"model\":\"smol-student\",\"messages\":[$1{\"role\":\"user\",\"content\":\"a dog\"}],\"temperature\":0,\"max_tokens\":3}"; }
    p0=$(curl -s "$URL/chat/completions" -d "$(body '')" | $PY -c 'import json,sys; print(json.load(sys.stdin)["usage"]["prompt_tokens"])')
    p1=$(curl -s "$URL/chat/completions" -d "$(body '{"role":"system","content":"Be very very funny about every single thing."},')" | $PY -c 'import json,sys; print(json.load(sys.stdin)["usage"]["prompt_tokens"])')
    check "chat format: a system message replaces the instruction ($p0 vs $p1 prompt tokens)" test "$p0" -gt 0 -a "$p1" -gt 0 -a "$p0" != "$p1"
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID"
else
    check "tools/fetch_gpt2.sh fetched GPT-2's files (for the Hugging Face directory)" false
fi
finish
