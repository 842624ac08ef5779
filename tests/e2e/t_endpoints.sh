#!/usr/bin/env bash
# t_endpoints -- the stages against the answers real servers give, replayed
# by the stand-in's dialects and quirk faults (docs/standin.md), each case
# asserted on the stored data, the exit code and the last line:
#  - check: a bad extra_body (a role's, a judge's) or reasoning_effort is
#    exit 2 naming the key;
#  - reasoning models: teach, a critique round and eval against vLLM (think
#    tags in content), vLLM with a reasoning parser, llama-server, and the
#    lone </think> and content-parts quirks store the same paraphrases and
#    the same critic probabilities as the plain dialect;
#  - teach: insufficient_quota stops at once (exit 1, the word in the last
#    line, nothing more sent); refusals and filters are answers (exit 0,
#    complete, flags stored); answers cut by the token limit are kept apart
#    and not trained on unless data.use_truncated=1; a reasoning-exhausted
#    answer stops the stage naming the parameter; 4xx quote the param;
#  - critic: unjudged answers are never ties (counted; WTR over the judged;
#    none judged: eval fails); a 4xx fails eval and a critique round quoting
#    the param; insufficient_quota ends a round's judging at once; answers
#    without log-probs are stored as text-sourced with a warning;
#    critic.mode=batch gives the same probabilities as sync (a round: in one
#    batch);
#  - the Batch API: teach of 1,000 inputs killed with -9 while polling,
#    started again: the same batch is polled (one POST /v1/batches in the
#    stand-in's log), every input answered, no synchronous request;
#  - the spend limit: teach stops with exit 4 before the cap is crossed (the
#    answers in the cache and the request log never add up to more), again
#    at once when rerun, and carries on when the cap is raised; a USD cap in
#    a shared file; eval stops with exit 4 too;
#  - --dry-run of teach, critique, eval and run print requests, tokens, cost.
source "$(dirname "$0")/lib.sh"

SERVERS=()
cleanup_servers() { for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap 'cleanup_servers; [[ -n ${KEEP_TMP:-} ]] || rm -rf "$TMP"' EXIT
# start_server NAME ARGS... : `hdistill serve` with a request log; sets URL
start_server() {
    local name=$1; shift
    rm -f "$TMP/$name.port"
    "$HD" serve --standin --port 0 --port-file "$TMP/$name.port" --request-log "$TMP/$name.log" --quiet "$@" \
        >"$TMP/$name.out" 2>&1 &
    SERVERS+=($!)
    for _ in $(seq 1 200); do [[ -s $TMP/$name.port ]] && break; sleep 0.05; done
    URL="http://127.0.0.1:$(cat "$TMP/$name.port")/v1"
}
h5val() { $PY -c "import h5py,sys; f=h5py.File('$1','r'); print($2)"; }
lastline() { tail -n 1 "$1"; }
# count_log LOG METHOD PATH-PREFIX [STATUS]: request-log lines
count_log() {
    $PY - "$@" <<'EOF'
import json, sys
log, method, path = sys.argv[1:4]
status = int(sys.argv[4]) if len(sys.argv) > 4 else None
n = 0
for line in open(log):
    r = json.loads(line)
    if r["method"] == method and r["path"].startswith(path) and (status is None or r["status"] == status):
        n += 1
print(n)
EOF
}

CFG=$TMP/cfg.json
cat >"$CFG" <<EOF
{"run": {"dir": "$TMP/run", "log_every": 1000},
 "data": {"path": "$TMP/data.h5", "too_long": "skip"},
 "ingest": {"source": "wordnet", "limit": 90, "eval_fraction": 0.15, "ood_limit": 8},
 "teach": {"n": 3},
 "teacher": {"backoff": 0.05, "backoff_max": 0.5},
 "critic": {"backoff": 0.05, "backoff_max": 0.5},
 "tokenizer": {"type": "bpe", "vocab_size": 400},
 "model": {"preset": "tiny"},
 "train": {"seq_len": 128, "batch_size": 16, "steps": 12, "lr": 3e-3, "warmup_steps": 2, "seed": 1},
 "critique": {"objective": "dpo", "rounds": 1, "epochs": 1, "inputs": 24, "k": 4, "filter_first": 1,
              "batch_pairs": 8, "ckpt_every": 0},
 "eval": {"limit": 10, "bootstrap": 50, "beam": 2}}
EOF
export OMP_NUM_THREADS=1
hd() { "$HD" "$1" "$CFG" "${@:2}"; }

# ---- check: the roles' request options
out=$(hd check --set teacher.extra_body='{"stream": true}' 2>&1)
check "check: extra_body with a key hdistill sets: exit 2 naming it" test $? -eq 2 -a -n "$(grep 'teacher.extra_body' <<<"$out" | grep stream)"
out=$(hd check --set critic.extra_body='[1]' 2>&1)
check "check: extra_body not an object: exit 2 naming critic.extra_body" test $? -eq 2 -a -n "$(grep 'critic.extra_body' <<<"$out")"
out=$(hd check --set teacher.reasoning_effort=extreme 2>&1)
check "check: a bad reasoning_effort: exit 2 naming it" test $? -eq 2 -a -n "$(grep 'teacher.reasoning_effort' <<<"$out")"
echo '{"judges": [{"name": "j2", "extra_body": "{\"model\": \"x\"}"}]}' >"$TMP/judges.json"
out=$(hd check --set eval.judges="$TMP/judges.json" 2>&1)
check "check: a judge's bad extra_body: exit 2 naming the judge" test $? -eq 2 -a -n "$(grep 'j2.extra_body' <<<"$out")"
out=$(hd check --set teacher.reasoning_effort=low --set teacher.extra_body='{"chat_template_kwargs": {"enable_thinking": false}}' 2>&1)
check "check: good reasoning settings: exit 0" test $? -eq 0

# ---- the plain baseline: teach, SFT, one critique round, eval
hd ingest >"$TMP/ingest.log" 2>&1
check "ingest" test $? -eq 0
cp "$TMP/data.h5" "$TMP/inputs.h5"
NIN=$(h5val "$TMP/inputs.h5" "sum(len(f['/inputs/' + s]) for s in ('train', 'eval', 'ood'))")
start_server plain --seed 7
hd teach --set teacher.base_url="$URL" >"$TMP/teach.plain.log" 2>&1
check "plain: teach exits 0" test $? -eq 0
hd train --set data.pairs="$TMP/data.h5" >"$TMP/train.log" 2>&1
check "plain: SFT" test $? -eq 0
cp -r "$TMP/run" "$TMP/sft"
critique_eval() {  # critique_eval NAME URL [--set ...]: a round and an evaluation on a copy of the SFT run
    local name=$1 url=$2; shift 2
    rm -rf "$TMP/run.$name"; cp -r "$TMP/sft" "$TMP/run.$name"
    hd critique --set run.dir="$TMP/run.$name" --set critic.base_url="$url" "$@" >"$TMP/critique.$name.log" 2>&1 &&
        hd eval --set run.dir="$TMP/run.$name" --set critic.base_url="$url" "$@" >"$TMP/eval.$name.log" 2>&1
}
critique_eval plain "$URL"
check "plain: critique and eval exit 0" test $? -eq 0

# ---- reasoning models: the same stored answers
same_teach() { $PY - "$TMP/data.h5" "$1" "$2" <<'EOF'
import h5py, sys, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
ok = all(np.array_equal(a[g + "/paraphrases"][()], b[g + "/paraphrases"][()]) for g in ("/teacher", "/teacher/eval", "/teacher/ood"))
if sys.argv[3] == "1": ok &= "reasoning" in b["/teacher"] and all(len(x) > 0 for x in b["/teacher/reasoning"][()])
ok &= int(b["/teacher/truncated"][()].sum()) == 0
sys.exit(0 if ok else 1)
EOF
}
same_critic() { $PY - "$TMP/run.plain/run.h5" "$1" <<'EOF'
import h5py, sys, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
bad = []
for g in ("/rounds/0/student", "/eval/eval/critic", "/eval/ood/critic"):
    for d in ("p_ab", "p_ba"):
        if not np.array_equal(a[g + "/" + d][()], b[g + "/" + d][()], equal_nan=True): bad.append(g + "/" + d)
    if not (b[g + "/source"][()] == a[g + "/source"][()]).all(): bad.append(g + "/source")
    if "reasoning" not in b[g]: bad.append(g + "/reasoning missing")
n = a["/eval/eval/critic"].attrs["judged"]
if n == 0 or not np.all(a["/eval/eval/critic/source"][()] == 1): bad.append("baseline not from log-probs")
print(bad)
sys.exit(1 if bad else 0)
EOF
}
for d in "openai --dialect openai" "vllm --dialect vllm" "vllmr --dialect vllm-reasoning" "llama --dialect llama-server" \
         "lone --fault lone-think=1" "parts --fault parts=1" "think --fault think=1"; do
    read -r name args <<<"$d"
    start_server "$name" --seed 7 $args
    cp "$TMP/inputs.h5" "$TMP/d.$name.h5"
    hd teach --set data.path="$TMP/d.$name.h5" --set teacher.base_url="$URL" >"$TMP/teach.$name.log" 2>&1
    check "$name: teach exits 0" test $? -eq 0
    check "$name: the same paraphrases as the plain dialect, reasoning stored apart" same_teach "$TMP/d.$name.h5" $([[ $name == openai ]] && echo 0 || echo 1)
    case $name in vllm|llama|lone)
        critique_eval "$name" "$URL"
        check "$name: critique and eval exit 0" test $? -eq 0
        check "$name: the same critic probabilities as the plain dialect" same_critic "$TMP/run.$name/run.h5" ;;
    esac
done

# ---- teach: insufficient_quota stops at once
start_server quota --seed 3 --fault quota=0.2 --dialect openai
cp "$TMP/inputs.h5" "$TMP/d.quota.h5"
hd teach --set data.path="$TMP/d.quota.h5" --set teacher.base_url="$URL" --set teacher.concurrency=2 >"$TMP/teach.quota.log" 2>&1
check "quota: exit 1" test $? -eq 1
check "quota: the last line says insufficient_quota and quotes the server" \
    bash -c "tail -n 1 '$TMP/teach.quota.log' | grep 'insufficient_quota' | grep -q 'exceeded your current quota'"
n=$(count_log "$TMP/quota.log" POST /v1/chat)
check "quota: nothing sent after it (at most the 2 in flight; $n requests of $NIN)" \
    test "$n" -le "$(( $(count_log "$TMP/quota.log" POST /v1/chat 200) + 2 ))"
check "quota: status insufficient_quota stored, not complete" \
    test "$(h5val "$TMP/d.quota.h5" "int((f['/teacher/status'][()]==11).any() and f['/teacher'].attrs['complete']==0)")" -eq 1

# ---- teach: refusals and content filters are answers
start_server refuse --seed 3 --fault refusal=0.2 --fault filtered=0.1 --fault filter-400=0.1 --dialect azure
cp "$TMP/inputs.h5" "$TMP/d.refuse.h5"
hd teach --set data.path="$TMP/d.refuse.h5" --set teacher.base_url="$URL" >"$TMP/teach.refuse.log" 2>&1
check "refusals/filters: exit 0" test $? -eq 0
check "refusals/filters: flags stored, complete, nothing failed" $PY - "$TMP/d.refuse.h5" <<'EOF'
import h5py, sys, numpy as np
f = h5py.File(sys.argv[1], "r")
t = f["/teacher"]
st, ref, fil, para = t["status"][()], t["refused"][()], t["filtered"][()], t["paraphrases"][()]
ok = t.attrs["complete"] == 1 and f["/teacher/usage"].attrs["failed"] == 0
ok &= ref.sum() > 0 and fil.sum() > 0 and np.all(ref[st == 13] == 1) and np.all(fil[st == 14] == 1)
ok &= all(not any(para[i]) for i in np.where((ref == 1) | (fil == 1))[0])
ok &= f["/teacher/usage"].attrs["retries"] == 0
sys.exit(0 if ok else 1)
EOF
hd teach --set data.path="$TMP/d.refuse.h5" --set teacher.base_url="$URL" >"$TMP/teach.refuse2.log" 2>&1
check "refusals/filters: a rerun exits 0 too" test $? -eq 0

# ---- teach: answers cut by the token limit are kept apart
cp "$TMP/inputs.h5" "$TMP/d.cut.h5"
start_server cut --seed 7
hd teach --set data.path="$TMP/d.cut.h5" --set teacher.base_url="$URL" --set teacher.max_tokens=18 >"$TMP/teach.cut.log" 2>&1
check "truncated: exit 0 with a warning" test $? -eq 0 -a -n "$(grep 'cut by teacher.max_tokens' "$TMP/teach.cut.log")"
check "truncated: flagged, items kept apart" $PY - "$TMP/d.cut.h5" <<'EOF'
import h5py, sys, numpy as np
t = h5py.File(sys.argv[1], "r")["/teacher"]
tr, para, cut = t["truncated"][()], t["paraphrases"][()], t["truncated_paraphrases"][()]
ok = 0 < tr.sum() < len(tr)
ok &= all(not any(para[i]) and any(cut[i]) for i in np.where(tr == 1)[0])
ok &= all(not any(cut[i]) for i in np.where(tr == 0)[0])
sys.exit(0 if ok else 1)
EOF
pairs() { hd train --set data.pairs="$TMP/d.cut.h5" --set run.dir="$TMP/cutrun" --set tokenizer.vocab_size=260 --dry-run "$@" 2>&1 |
          sed -n 's/.*data: \([0-9]*\) pairs.*/\1/p'; }
p0=$(pairs); p1=$(pairs --set data.use_truncated=1)
check "truncated: not trained on by default ($p0 pairs), with data.use_truncated=1 they are ($p1)" test "$p0" -gt 0 -a "$p1" -gt "$p0"

# ---- teach: a reasoning model's limit spent on reasoning; its 4xx
start_server oair --seed 7 --dialect openai-reasoning
cp "$TMP/inputs.h5" "$TMP/d.oair.h5"
hd teach --set data.path="$TMP/d.oair.h5" --set teacher.base_url="$URL" >"$TMP/teach.oair400.log" 2>&1
check "reasoning model given max_tokens: exit 1" test $? -eq 1
check "... the last line quotes the server and the param" \
    bash -c "tail -n 1 '$TMP/teach.oair400.log' | grep \"max_completion_tokens' instead\" | grep -q 'param max_tokens'"
check "... counted failed as http_4xx" test "$(h5val "$TMP/d.oair.h5" "int((f['/teacher/status'][()]==1).all() and f['/teacher/usage'].attrs['failed']==$NIN)")" -eq 1
before=$(wc -l <"$TMP/oair.log")
hd teach --set data.path="$TMP/d.oair.h5" --set teacher.base_url="$URL" --set teacher.token_param=max_completion_tokens \
    --set teacher.temperature=-1 --set teacher.top_p=-1 --set teacher.max_tokens=40 --set teacher.concurrency=2 \
    >"$TMP/teach.oair.log" 2>&1
check "reasoning_length: exit 1" test $? -eq 1
check "... the last line names the parameter" bash -c "tail -n 1 '$TMP/teach.oair.log' | grep -q 'max_completion_tokens went to reasoning'"
check "... the stage stopped at once (at most 2 sent)" test $(( $(wc -l <"$TMP/oair.log") - before )) -le 2
hd teach --set data.path="$TMP/d.oair.h5" --set teacher.base_url="$URL" --set teacher.token_param=max_completion_tokens \
    --set teacher.temperature=-1 --set teacher.top_p=-1 --set teacher.max_tokens=600 --set teacher.reasoning_effort=low \
    >"$TMP/teach.oair2.log" 2>&1
check "reasoning model with max_completion_tokens and reasoning_effort: exit 0" test $? -eq 0
check "... reasoning tokens and cost in the usage record" test "$(h5val "$TMP/d.oair.h5" "int(f['/teacher/usage'].attrs['reasoning_tokens'] > 0 and 'cost_usd' in f['/teacher/usage'].attrs)")" -eq 1

# ---- the critic: unjudged answers, a 4xx, missing log-probs, batch mode
eval_copy() {  # eval_copy NAME URL [--set ...]: eval of the plain run's newest checkpoint on a copy
    local name=$1 url=$2; shift 2
    rm -rf "$TMP/ev.$name"; mkdir "$TMP/ev.$name"; cp -r "$TMP/run.plain/ckpt" "$TMP/run.plain/run.h5" "$TMP/ev.$name/"
    $PY -c "import h5py; del h5py.File('$TMP/ev.$name/run.h5', 'a')['/eval']"
    hd eval --set run.dir="$TMP/ev.$name" --set critic.base_url="$url" "$@" >"$TMP/eval.$name.log" 2>&1
}
critique_copy() {  # critique_copy NAME URL [--set ...]: a critique round on a copy of the SFT run
    local name=$1 url=$2; shift 2
    rm -rf "$TMP/cr.$name"; cp -r "$TMP/sft" "$TMP/cr.$name"
    hd critique --set run.dir="$TMP/cr.$name" --set critic.base_url="$url" "$@" >"$TMP/critique.$name.log" 2>&1
}
start_server crefuse --seed 7 --fault refusal=0.7
eval_copy crefuse "$URL"
check "critic refusals: eval exits 0" test $? -eq 0
check "critic refusals: unjudged counted, never ties; WTR over the judged" $PY - "$TMP/ev.crefuse/run.h5" <<'EOF'
import h5py, sys, numpy as np
g = h5py.File(sys.argv[1], "r")["/eval/eval/critic"]
a, v, p = g.attrs, g["verdict"][()], g["p"][()]
ok = a["unjudged"] > 0 and a["judged"] + a["unjudged"] == a["n"] == len(v)
ok &= int((v == -2).sum()) == a["unjudged"] and np.all(np.isnan(p[v == -2])) and a["ties"] == int((v == 0).sum())
ok &= abs(a["wtr"] - 100.0 * (a["wins"] + a["ties"]) / a["judged"]) < 1e-9
sys.exit(0 if ok else 1)
EOF
check "critic refusals: the unjudged count is printed" grep -q 'no usable verdict for' "$TMP/eval.crefuse.log"
critique_copy crefuse "$URL"
check "critic refusals in a round: exit 0" test $? -eq 0
check "... unjudged pairs get label -2, never ties, and are not trained on" $PY - "$TMP/cr.crefuse/run.h5" <<'EOF'
import h5py, sys, numpy as np
r = h5py.File(sys.argv[1], "r")["/rounds/0"]
s = r["student"]
lab, p, pa = s["label"][()], s["p"][()], s["pair_a"][()]
ok = s.attrs["unjudged"] > 0 and int((lab == -2).sum()) == s.attrs["unjudged"]
ok &= np.all(np.isnan(p[lab == -2])) and np.all(pa[lab == -2] >= 0) and s.attrs["ties"] == int((lab == 0).sum() - (pa < 0).sum())
ok &= len(r["pairs/chosen"]) == int(np.isin(lab, (1, -1)).sum())
sys.exit(0 if ok else 1)
EOF
start_server cshort --seed 7
eval_copy cshort "$URL" --set critic.max_tokens=3
check "critic cut by max_tokens everywhere: eval fails (exit 1), no rate" test $? -eq 1 -a -n "$(lastline "$TMP/eval.cshort.log" | grep 'no usable verdict for any')"
start_server c400 --seed 7 --dialect openai-reasoning
eval_copy c400 "$URL"
check "critic 4xx: eval exit 1, the last line quotes the param" test $? -eq 1 -a -n "$(lastline "$TMP/eval.c400.log" | grep 'param')"
critique_copy c400 "$URL"
check "critic 4xx in a round: exit 1, the last line quotes the param" test $? -eq 1 -a -n "$(lastline "$TMP/critique.c400.log" | grep 'param max_tokens')"
check "... the round is not collected; the critic's usage is recorded" \
    test "$(h5val "$TMP/cr.c400/run.h5" "int('/rounds/0' not in f and f['/usage/critic'].attrs['failed'] > 0)")" -eq 1
start_server cquota --seed 7 --fault quota=1
critique_copy cquota "$URL" --set critic.concurrency=2
check "critic insufficient_quota in a round: exit 1 saying so" test $? -eq 1 -a -n "$(lastline "$TMP/critique.cquota.log" | grep 'insufficient_quota')"
check "... nothing more sent, in any later chunk (at most the 2 in flight)" test "$(count_log "$TMP/cquota.log" POST /v1/chat)" -le 2
start_server ollama --seed 7 --dialect ollama
eval_copy ollama "$URL"
check "no log-probs (Ollama): eval exits 0 with a warning" test $? -eq 0 -a -n "$(grep 'log-probabilities were asked for' "$TMP/eval.ollama.log")"
check "no log-probs: the sources stored per order" \
    test "$(h5val "$TMP/ev.ollama/run.h5" "int(f['/eval/eval/critic'].attrs['p_from_logprobs']==0 and f['/eval/eval/critic'].attrs['p_from_text']>0 and (f['/eval/eval/critic/source'][()]!=1).all())")" -eq 1
start_server cbatch --seed 7 --batch-delay 0.3
eval_copy cbatch "$URL" --set critic.mode=batch --set critic.batch_poll=0.05
check "critic.mode=batch: eval exits 0" test $? -eq 0
check "critic.mode=batch: the same probabilities as sync" h5cmp "$TMP/ev.cbatch/run.h5" "$TMP/run.plain/run.h5" /eval/eval/critic/p rel 1e-12
check "critic.mode=batch: through /v1/batches only" \
    test "$(count_log "$TMP/cbatch.log" POST /v1/batches 200)" -ge 1 -a "$(count_log "$TMP/cbatch.log" POST /v1/chat)" -eq 0
nb=$(count_log "$TMP/cbatch.log" POST /v1/batches 200)
critique_copy cbatch "$URL" --set critic.mode=batch --set critic.batch_poll=0.05
check "critic.mode=batch in a round: exit 0, one batch for the whole round" \
    test $? -eq 0 -a "$(count_log "$TMP/cbatch.log" POST /v1/batches 200)" -eq $((nb + 1))
check "... the same probabilities as sync" $PY - "$TMP/cr.cbatch/run.h5" "$TMP/run.plain/run.h5" <<'EOF'
import h5py, sys, numpy as np
a, b = (h5py.File(x, "r")["/rounds/0/student/p"][()] for x in sys.argv[1:3])
sys.exit(0 if np.allclose(a, b, rtol=1e-12, atol=0, equal_nan=True) else 1)
EOF

# ---- the Batch API: 1,000 inputs, kill -9 while polling, resume
"$HD" ingest --set data.path="$TMP/big.h5" --set ingest.limit=1000 --set ingest.eval_fraction=0 --set ingest.ood_limit=0 >/dev/null 2>&1
start_server batch --seed 5 --batch-delay 3
BARGS=(--set data.path="$TMP/big.h5" --set teach.splits=train --set teacher.base_url="$URL"
       --set teacher.mode=batch --set teacher.batch_poll=0.1)
"$HD" teach "${BARGS[@]}" >"$TMP/batch1.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [[ $(count_log "$TMP/batch.log" GET /v1/batches/) -gt 0 ]] && break; sleep 0.1; done
sleep 0.3
kill -9 $pid; wait $pid 2>/dev/null
check "batch: killed while polling" test "$(count_log "$TMP/batch.log" GET /v1/batches/)" -gt 0 -a ! -s "$TMP/big.h5.tmp"
"$HD" teach "${BARGS[@]}" >"$TMP/batch2.log" 2>&1
check "batch: resumed teach exits 0" test $? -eq 0
check "batch: the same batch polled again (resumed 1, created 0)" grep -q '0 batches created, 1 resumed' "$TMP/batch2.log"
check "batch: one POST /v1/batches and one upload in the stand-in's log" \
    test "$(count_log "$TMP/batch.log" POST /v1/batches)" -eq 1 -a "$(count_log "$TMP/batch.log" POST /v1/files)" -eq 1
check "batch: no synchronous request" test "$(count_log "$TMP/batch.log" POST /v1/chat)" -eq 0
check "batch: all 1000 answered" test "$(h5val "$TMP/big.h5" "int((f['/teacher/status'][()]==0).sum())")" -eq 1000

# ---- the spend limit
start_server budget --seed 7
spent_in_cache() { $PY - "$1" <<'EOF'
import json, sys
b = open(sys.argv[1], "rb").read()
tok, n, i = 0, 0, 0
while i < len(b):
    nl = b.index(b"\n", i)
    head = b[i:nl].split()
    ln = int(head[2])
    body = json.loads(b[nl + 1:nl + 1 + ln])
    tok += body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    n += 1
    i = nl + 1 + ln + 1
print(tok, n)
EOF
}
cp "$TMP/inputs.h5" "$TMP/d.budget.h5"
bud() { hd teach --set data.path="$TMP/d.budget.h5" --set teacher.base_url="$URL" --set teacher.concurrency=4 \
        --set run.dir="$TMP/budgetrun" "$@"; }
bud --set llm.budget_tokens=6000 >"$TMP/budget1.log" 2>&1
check "budget: exit 4" test $? -eq 4
check "budget: the last line says what was spent of the limit" bash -c "tail -n 1 '$TMP/budget1.log' | grep 'spend limit (llm.budget_tokens 6000)' | grep -q 'tokens spent'"
read -r tok n <<<"$(spent_in_cache "$TMP/d.budget.h5.llm-cache")"
check "budget: the answers paid never cross the cap ($tok tokens in $n answers <= 6000)" test "$tok" -le 6000 -a "$n" -gt 10
check "budget: every request the stand-in answered is in the cache" test "$(count_log "$TMP/budget.log" POST /v1/chat 200)" -eq "$n"
check "budget: the budget file agrees" $PY -c "
import sys; l = open('$TMP/budgetrun/llm-budget').read().split('\n')[1].split(); sys.exit(0 if l[0]=='spent' and int(l[2])==$tok else 1)"
bud --set llm.budget_tokens=6000 >"$TMP/budget2.log" 2>&1
check "budget: a rerun under the same cap exits 4 and sends nothing" test $? -eq 4 -a "$(count_log "$TMP/budget.log" POST /v1/chat)" -eq "$n"
bud --set llm.budget_tokens=100000 >"$TMP/budget3.log" 2>&1
check "budget: a raised cap carries on to the end" test $? -eq 0 -a "$(h5val "$TMP/d.budget.h5" "f['/teacher'].attrs['complete']")" -eq 1
eval_copy budget "$URL" --set llm.budget_tokens=2500
check "budget in eval: exit 4 saying so" test $? -eq 4 -a -n "$(lastline "$TMP/eval.budget.log" | grep 'spend limit (llm.budget_tokens 2500)')"
cp "$TMP/inputs.h5" "$TMP/d.budget.h5"; rm -f "$TMP/d.budget.h5.llm-cache"
bud --set llm.budget_usd=0.01 --set llm.budget_file="$TMP/sweep.budget" --set teacher.price_in=1 --set teacher.price_out=4 >"$TMP/budget4.log" 2>&1
check "budget in USD through a shared file: exit 4, never above \$0.01" test $? -eq 4 -a -n "$($PY -c "
import sys; l = open('$TMP/sweep.budget').read().split('\n')[1].split(); print('ok' if float(l[1]) <= 0.01 else '')")"

# ---- --dry-run: requests, tokens, cost
out=$(hd teach --set teacher.base_url="$URL" --set data.path="$TMP/d.cut.h5" --set teacher.price_in=2 --set teacher.price_out=8 --dry-run 2>&1)
check "teach --dry-run: requests to send, cached, tokens, cost" grep -Eq "plan: teacher: $NIN requests"': [0-9]+ cached, [0-9]+ to send; ~[0-9]+ prompt \+ <= [0-9]+ completion tokens; <= \$' <<<"$out"
out=$(hd teach --set data.path="$TMP/d.cut.h5" --set teacher.mode=batch --set teacher.price_in=2 --set teacher.price_out=8 --dry-run 2>&1)
check "teach --dry-run in batch mode: half price" grep -q 'teacher (Batch API, half price)' <<<"$out"
out=$(hd critique --set run.dir="$TMP/sft" --set critique.rounds=2 --dry-run 2>&1)
check "critique --dry-run: the critic's estimate" grep -Eq 'plan: critic: about 96 requests' <<<"$out"
out=$(hd eval --set run.dir="$TMP/sft" --dry-run 2>&1)
check "eval --dry-run: the judge's estimate" grep -Eq 'plan: critic: about [0-9]+ requests' <<<"$out"
out=$(hd run --set run.dir="$TMP/dryrun" --dry-run 2>&1)
check "run --dry-run: the critic's and judges' estimates" test "$(grep -c 'plan: critic: about' <<<"$out")" -eq 2 -a ! -e "$TMP/dryrun"

finish
