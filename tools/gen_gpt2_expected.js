// Encodes each line of a strings file with the npm package gpt-3-encoder
// (GPT-2's BPE in JavaScript) and prints one line of space-separated ids per
// input line; lines end at "\n", which is not part of the text.
// Usage: node tools/gen_gpt2_expected.js tests/data/gpt2_strings.txt > tests/data/gpt2_expected.txt
// (run tools/fetch_gpt2.sh first; it installs the package into build/npm).
'use strict';
const fs = require('fs');
const path = require('path');

const pkg = path.join(__dirname, '..', 'build', 'npm', 'node_modules', 'gpt-3-encoder');
const { encode } = require(pkg);

if (process.argv.length !== 3) {
  process.stderr.write('usage: node tools/gen_gpt2_expected.js STRINGS_FILE\n');
  process.exit(2);
}
const text = fs.readFileSync(process.argv[2], 'utf-8');
const lines = text.split('\n');
if (lines[lines.length - 1] === '') lines.pop();
let out = '';
for (const line of lines) out += encode(line).join(' ') + '\n';
process.stdout.write(out);
