#!/usr/bin/env bash
# t_serve.sh -- `hdistill serve --standin` from the command line: ready line,
# port file, answers, request log (one line per request, flushed at once,
# so it survives a SIGKILL of the client), repeat counting, SIGTERM/SIGINT
# exit 0 with the log complete, bad options exit 2.  Needs the curl tool.
source "$(dirname "$0")/lib.sh"

if ! "$HD" serve --help 2>/dev/null | grep -q -- "--standin"; then
    echo "FAIL: '$HD serve' is not wired to serve_main (src/main.c)" >&2
    FAIL=$((FAIL + 1))
    finish
    exit 1
fi

# start_server NAME ARGS...: starts it in the background, waits for its port file
start_server() {
    local name=$1; shift
    rm -f "$TMP/$name.port"
    "$HD" serve --standin --port 0 --port-file "$TMP/$name.port" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    SERVER_PID=$!
    for _ in $(seq 100); do [[ -s "$TMP/$name.port" ]] && break; sleep 0.05; done
    PORT=$(cat "$TMP/$name.port" 2>/dev/null || echo 0)
    URL=http://127.0.0.1:$PORT/v1
}

TEACH='{"model":"hdistill-standin","messages":[{"role":"user","content":"Rewrite the sentence below in 3 different humorous ways. Keep its meaning. Answer with a numbered list and nothing else.\nSentence: the committee approved the new budget"}],"temperature":0.8}'
CRIT='{"model":"hdistill-standin","messages":[{"role":"user","content":"Here is a sentence and two humorous paraphrases of it.\nSentence: the committee approved the new budget\n1. As my programmer says, the committee approved the new budget\n2. The committee.\nWhich paraphrase is funnier?"}],"logprobs":true,"top_logprobs":2}'
post() { curl -s -o "$TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' -d "$1" "$URL/chat/completions"; }

start_server a --seed 3 --request-log "$TMP/a.jsonl" --fault 429=0.5 --retry-after 2
check "port file written" test "$PORT" -gt 0
check "ready line" grep -qx "hdistill serve: stand-in listening on $URL" "$TMP/a.out"
check "GET /v1/models" bash -c "curl -sf '$URL/models' | grep -q hdistill-standin"
# the same teacher request until it is answered: 429s then 200, each logged
codes=""
for _ in $(seq 12); do c=$(post "$TEACH"); codes+="$c "; [[ $c == 200 ]] && break; done
check "teacher answered after retries ($codes)" grep -q '^1[.)] \|^- \|^Here\|^Sure' <($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["message"]["content"])' "$TMP/body")
n_teach=$(wc -w <<<"$codes")
c=$(post "$CRIT")
while [[ $c == 429 ]]; do c=$(post "$CRIT"); n_teach=$((n_teach + 1)); done
check "critic answered with logprobs" $PY - "$TMP/body" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))["choices"][0]
assert c["message"]["content"].startswith("Reason: ") and "\nAnswer: " in c["message"]["content"]
t = c["logprobs"]["content"][-1]
assert t["token"] in ("1", "2") and [x["token"] for x in t["top_logprobs"]] in (["1", "2"], ["2", "1"])
EOF
# the log is flushed line by line: it holds every finished request while the
# server runs (a line is written right after the response went out)
for _ in $(seq 40); do [[ $(wc -l <"$TMP/a.jsonl") -ge $((n_teach + 2)) ]] && break; sleep 0.05; done
check "log lines flushed while running" test "$(wc -l <"$TMP/a.jsonl")" -eq $((n_teach + 2))
check "429 carries Retry-After: 2" bash -c "for i in \$(seq 30); do curl -s -D - -o /dev/null -H 'Content-Type: application/json' -d '{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x \$i\"}]}' '$URL/chat/completions'; done | grep -qi '^Retry-After: 2'"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"; rc=$?
check "SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0
check "request log: keys, repeats and statuses" $PY - "$TMP/a.jsonl" "$n_teach" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
n_teach = int(sys.argv[2])
teach = sorted((l for l in lines if l["role"] == "teacher"), key=lambda l: l["repeat"])  # lines come as requests end
assert len(teach) == n_teach, (len(teach), n_teach)
assert len({l["key"] for l in teach}) == 1 and all(len(l["key"]) == 64 for l in teach)
assert [l["repeat"] for l in teach] == list(range(n_teach))
assert teach[-1]["status"] == 200 and all(l["status"] == 429 and l["fault"] == "429" for l in teach[:-1])
assert any(l["role"] == "critic" and l["status"] == 200 for l in lines)
assert any(l["path"] == "/v1/models" and l["key"] is None for l in lines)
EOF

# a client SIGKILLed while its answer is delayed: the server logs it when it ends
start_server b --request-log "$TMP/b.jsonl" --latency-ms 300 --quiet
curl -s -o /dev/null -H 'Content-Type: application/json' -d "$TEACH" "$URL/chat/completions" &
CPID=$!
sleep 0.1
kill -KILL "$CPID"; wait "$CPID" 2>/dev/null
sleep 0.5
kill -INT "$SERVER_PID"
wait "$SERVER_PID"; rc=$?
check "SIGINT: exit 0 (got $rc)" test "$rc" -eq 0
check "killed client's request logged once" test "$(grep -c '"role":"teacher"' "$TMP/b.jsonl")" -eq 1
check "--quiet: only the ready line" test "$(wc -l <"$TMP/b.out")" -eq 1

"$HD" serve --standin --fault bogus=1 >/dev/null 2>"$TMP/bad.err"; rc=$?
check "bad --fault: exit 2 (got $rc)" test "$rc" -eq 2
check "bad --fault: one-line message" test "$(wc -l <"$TMP/bad.err")" -eq 1
"$HD" serve --port 0 >/dev/null 2>&1; rc=$?
check "--standin required: exit 2 (got $rc)" test "$rc" -eq 2
"$HD" serve --standin --fortunes "$TMP/none" --port 0 >/dev/null 2>"$TMP/nodata.err"; rc=$?
check "missing fortunes: exit 1 naming the package (got $rc)" bash -c "test $rc -eq 1 && grep -q fortunes-min '$TMP/nodata.err'"
finish
