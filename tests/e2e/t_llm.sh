#!/usr/bin/env bash
# t_llm -- the LLM client and the teach stage against a separate stand-in
# server: every fault kind is retried to success; kill -9 of teach and a
# restart sends no answered request again; connection refused, unknown
# host, slow server, wrong schema and 4xx give clear errors, recorded
# failures and exit 1 without hanging; rate limiting; the API key never
# reaches a file or a log.
source "$(dirname "$0")/lib.sh"

SERVERS=()
cleanup_servers() { for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap 'cleanup_servers; rm -rf "$TMP"' EXIT

# start_server NAME ARGS... : starts `hdistill serve`, sets PORT
start_server() {
    local name=$1; shift
    rm -f "$TMP/$name.port"
    "$HD" serve --standin --port 0 --port-file "$TMP/$name.port" --request-log "$TMP/$name.log" "$@" \
        >"$TMP/$name.out" 2>&1 &
    SERVERS+=($!)
    for _ in $(seq 1 200); do [[ -s $TMP/$name.port ]] && break; sleep 0.05; done
    PORT=$(cat "$TMP/$name.port")
}

# a small data.h5 to teach (60 train inputs)
DATA=$TMP/base.h5
"$HD" ingest --set data.path="$DATA" --set ingest.limit=60 --set ingest.eval_fraction=0 --set ingest.ood_limit=0 >/dev/null
check "ingest made a data.h5" test -f "$DATA"
fresh() { cp "$DATA" "$TMP/$1.h5"; rm -f "$TMP/$1.h5.llm-cache"; }
teach() {  # teach NAME URL [more --set]...
    local name=$1 url=$2; shift 2
    "$HD" teach --set data.path="$TMP/$name.h5" --set teach.splits=train --set teacher.base_url="$url" \
        --set teacher.backoff=0.05 --set teacher.backoff_max=0.5 "$@" >"$TMP/$name.teach.log" 2>&1
}
h5val() { $PY -c "import h5py,sys; f=h5py.File('$1','r'); print($2)"; }

# --- every fault kind is retried until the answer is good
for kind in 429 500 503 malformed truncated empty schema hang; do
    start_server "f$kind" --seed 3 --fault "$kind=0.3" --retry-after 0
    fresh "f$kind"
    extra=()
    [[ $kind == hang ]] && extra=(--set teacher.timeout=0.5)
    teach "f$kind" "http://127.0.0.1:$PORT/v1" --set teacher.retries=12 "${extra[@]}"
    rc=$?
    check "fault $kind: teach exits 0" test $rc -eq 0
    case $kind in
        429) attr=errors_rate_limited ;; 500|503) attr=errors_http_5xx ;; hang) attr=errors_timeout ;;
        truncated) attr=errors_transport ;; *) attr=errors_$kind ;;
    esac
    check "fault $kind: recorded as $attr" test "$(h5val "$TMP/f$kind.h5" "f['/teacher/usage'].attrs['$attr']")" -gt 0
    check "fault $kind: every input answered" test "$(h5val "$TMP/f$kind.h5" "int((f['/teacher/status'][()]==0).all())")" -eq 1
done
# the request log: one line per request, each key answered with 200 at most once
check "request log: no key answered twice" $PY - "$TMP/f500.log" <<'EOF'
import json, sys, collections
ok = collections.Counter()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("status") == 200: ok[r["key"]] += 1
sys.exit(0 if ok and max(ok.values()) == 1 else 1)
EOF

# --- kill -9 in the middle, start again: answered requests are not sent again
start_server kill --seed 4 --latency-ms 100
"$HD" ingest --set data.path="$TMP/k.h5" --set ingest.limit=400 --set ingest.eval_fraction=0 --set ingest.ood_limit=0 >/dev/null
"$HD" teach --set data.path="$TMP/k.h5" --set teach.splits=train --set teacher.base_url="http://127.0.0.1:$PORT/v1" \
    --set teacher.concurrency=8 >"$TMP/k1.log" 2>&1 &
pid=$!
sleep 2.5
kill -9 $pid; wait $pid 2>/dev/null
n1=$(wc -l <"$TMP/kill.log")
check "killed mid-stage (some but not all requests done)" test "$n1" -gt 20 -a "$n1" -lt 380
"$HD" teach --set data.path="$TMP/k.h5" --set teach.splits=train --set teacher.base_url="http://127.0.0.1:$PORT/v1" \
    --set teacher.concurrency=8 >"$TMP/k2.log" 2>&1
check "restarted teach exits 0" test $? -eq 0
check "no answered request sent again (at most the 8 in flight)" $PY - "$TMP/kill.log" "$n1" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
n1 = int(sys.argv[2])
first = {r["key"] for r in lines[:n1] if r.get("status") == 200}
again = [r["key"] for r in lines[n1:] if r["key"] in first]
print(f"{len(first)} answered before the kill, {len(again)} of them asked again")
sys.exit(0 if len(again) <= 8 and len(first) > 0 else 1)
EOF
check "after restart every input has an answer" test "$(h5val "$TMP/k.h5" "int((f['/teacher/status'][()]==0).all())")" -eq 1

# --- connection refused / unknown host: a clear error, quickly, failures recorded
fresh refused
t0=$SECONDS
teach refused "http://127.0.0.1:9/v1" --set teacher.retries=3
rc=$?
check "connection refused: exit 1" test $rc -eq 1
check "connection refused: says unreachable" grep -q "unreachable" "$TMP/refused.teach.log"
check "connection refused: gives up fast (< 30 s)" test $((SECONDS - t0)) -lt 30
check "connection refused: failures recorded" test "$(h5val "$TMP/refused.h5" "f['/teacher/usage'].attrs['errors_connect']")" -gt 0
fresh unknown
teach unknown "http://no-such-host.invalid/v1" --set teacher.retries=2
check "unknown host: exit 1 with a message" test $? -eq 1 -a "$(grep -c 'unreachable\|resolve' "$TMP/unknown.teach.log")" -gt 0

# --- a server slower than the timeout
start_server slow --latency-ms 3000
fresh slow
t0=$SECONDS
teach slow "http://127.0.0.1:$PORT/v1" --set teacher.timeout=0.3 --set teacher.retries=1 --set teacher.concurrency=64
rc=$?
check "slow server: exit 1, no hang" test $rc -eq 1 -a $((SECONDS - t0)) -lt 60
check "slow server: timeouts recorded" test "$(h5val "$TMP/slow.h5" "f['/teacher/usage'].attrs['errors_timeout']")" -gt 0

# --- always the wrong schema
start_server schema --fault schema=1
fresh schema
teach schema "http://127.0.0.1:$PORT/v1" --set teacher.retries=2
check "wrong schema: exit 1" test $? -eq 1
check "wrong schema: status 8 recorded" test "$(h5val "$TMP/schema.h5" "int((f['/teacher/status'][()]==8).all())")" -eq 1

# --- 4xx is not retried, and fails the stage quoting the server
start_server four
fresh four
teach four "http://127.0.0.1:$PORT/nothing-here"
rc=$?
check "404: exit 1 (a failure, not an answer)" test $rc -eq 1
check "404: no retries" test "$(h5val "$TMP/four.h5" "f['/teacher/usage'].attrs['retries']")" -eq 0
check "404: recorded as http_4xx" test "$(h5val "$TMP/four.h5" "int((f['/teacher/status'][()]==1).all())")" -eq 1
check "404: counted failed, not complete" test "$(h5val "$TMP/four.h5" "f['/teacher/usage'].attrs['failed'] == 60 and f['/teacher'].attrs['complete'] == 0")" = True
check "404: the last line quotes the server" bash -c "tail -n 1 '$TMP/four.teach.log' | grep -q 'HTTP 404'"
check "404: the error stored per input" test "$(h5val "$TMP/four.h5" "int(all(b'HTTP 404' in x for x in f['/teacher/error'][()]))")" -eq 1

# --- rate limit: 60 requests at 40/s take at least ~1.5 s
start_server rate
fresh rate
t0=$(date +%s.%N)
teach rate "http://127.0.0.1:$PORT/v1" --set teacher.rate_rps=40
t1=$(date +%s.%N)
check "rate limit honoured" $PY -c "import sys; sys.exit(0 if $t1 - $t0 >= 1.4 else 1)"

# --- the API key: required when named, never written anywhere
fresh nokey
"$HD" teach --set data.path="$TMP/nokey.h5" --set teacher.api_key_env=HD_NO_SUCH_KEY_VAR >"$TMP/nokey.log" 2>&1
check "missing key variable: exit 2 naming it" test $? -eq 2 -a "$(grep -c 'HD_NO_SUCH_KEY_VAR' "$TMP/nokey.log")" -gt 0
export HD_TEST_KEY="sk-hdistill-test-7f3a9c2e51d0"
start_server key --seed 5
fresh key
teach key "http://127.0.0.1:$PORT/v1" --set teacher.api_key_env=HD_TEST_KEY
check "teach with a key exits 0" test $? -eq 0
check "the key appears in no output, cache or log" test -z "$(grep -rl "$HD_TEST_KEY" "$TMP" 2>/dev/null)"

# --- progress lines in a non-terminal log
check "progress line in the log" grep -q '^\[teach\] .* done' "$TMP/k2.log"

finish
