#!/usr/bin/env bash
# bench/client.sh -- requests/s and client CPU per request of hdistill's LLM
# client against the stand-in (`hdistill serve`) at 0 ms and 100 ms latency,
# concurrency 1, 16, 64, 256; and, in the same run against the same server,
# the official OpenAI Node SDK (npm "openai", bench/sdk_client.mjs) as the
# baseline.  Prints a Markdown table and
#   RESULT client_rps_100ms_c64=... ideal_rps=... sdk_rps_100ms_c64=... rps_0ms_c64=... sdk_rps_0ms_c64=...
# Never part of the tests (make bench-client).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
OUT=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$OUT"' EXIT
SDK_VERSION=4.104.0
if [[ ! -f build/npm/node_modules/openai/package.json ]]; then
    mkdir -p build/npm
    npm install --prefix build/npm --no-audit --no-fund --loglevel=error "openai@$SDK_VERSION" >&2
fi
json() { $PY -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }

start() {  # start LATENCY -> sets URL
    build/hdistill serve --standin --port 0 --port-file "$OUT/port.$1" --latency-ms "$1" --quiet >/dev/null 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 200); do [[ -s $OUT/port.$1 ]] && break; sleep 0.05; done
    URL="http://127.0.0.1:$(cat "$OUT/port.$1")/v1"
}

rows=()
declare -A R
for lat in 0 100; do
    start "$lat"
    for c in 1 16 64 256; do
        if [[ $lat -eq 0 ]]; then n=20000; ns=4000; else n=$((c * 20 < 200 ? 200 : c * 20)); [[ $c -eq 1 ]] && n=50; ns=$n; fi
        ours=$(build/bench/bench_client "$URL" "$n" "$c")
        sdk=$(node bench/sdk_client.mjs "$URL" "$ns" "$c")
        o_rps=$(json rps <<<"$ours"); o_cpu=$(json cpu_ms_per_req <<<"$ours")
        s_rps=$(json rps <<<"$sdk"); s_cpu=$(json cpu_ms_per_req <<<"$sdk")
        s_fail=$(json failed <<<"$sdk"); o_fail=$(json failed <<<"$ours")
        R[$lat,$c]=$o_rps; R[sdk,$lat,$c]=$s_rps
        rows+=("| $lat | $c | $(printf %.0f "$o_rps") | $(printf %.3f "$o_cpu") | $(printf %.0f "$s_rps") | $(printf %.3f "$s_cpu") | $(printf %.2f "$($PY -c "print($o_rps/$s_rps)")") | $o_fail/$s_fail |")
        echo "  latency ${lat} ms, concurrency $c: hdistill $o_rps req/s, SDK $s_rps req/s" >&2
    done
done
echo
echo "| latency ms | concurrency | hdistill req/s | hdistill CPU ms/req | SDK req/s | SDK CPU ms/req | ratio | failed (ours/SDK) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
printf 'RESULT client_rps_100ms_c64=%.1f ideal_rps=640 sdk_rps_100ms_c64=%.1f rps_0ms_c64=%.1f sdk_rps_0ms_c64=%.1f\n' \
    "${R[100,64]}" "${R[sdk,100,64]}" "${R[0,64]}" "${R[sdk,0,64]}"
