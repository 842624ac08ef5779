#!/usr/bin/env bash
# t_install -- make install / make uninstall, and the installed tree used from
# outside the checkout (docs/cluster.md, "Installing"):
#  - make install PREFIX=P puts bin/hdistill, lib/libhdistill.a,
#    lib/pkgconfig/hdistill.pc, include/hdistill/<layer>/*.h and
#    share/hdistill/{configs,jobs,analysis,docs} in place; again is the same;
#  - from another directory: the installed `hdistill version`; the installed
#    quickstart configuration runs the whole method under mpirun -np 2 (shrunk
#    with --set), writing only below that directory; report and the installed
#    analysis scripts read it;
#  - every installed header compiles on its own with the flags of hdistill.pc,
#    and a program links against the installed library and runs;
#  - the installed job scripts find common.sh, the installed binary and the
#    analysis scripts with neither HDISTILL nor HDISTILL_ROOT set (Slurm's srun
#    and sbatch stood in for by recording shims); the installed submit.sh runs
#    its jobs in the calling directory, the checkout's still in the checkout;
#  - make uninstall leaves the prefix exactly as it was (files that were there
#    before stay; the analysis scripts' __pycache__ goes); a second uninstall
#    changes nothing and says so;
#  - DESTDIR stages the tree under DESTDIR/PREFIX with PREFIX's paths inside.
source "$(dirname "$0")/lib.sh"
P=$TMP/prefix
WORK=$TMP/work
SHARE=$P/share/hdistill
mkdir -p "$WORK" "$TMP/fake"
# the prefix already holds another package's files, which must survive
mkdir -p "$P/bin" "$P/lib/pkgconfig" "$P/share/doc/other"
echo "#!/bin/sh" >"$P/bin/other-tool"
echo "Name: other" >"$P/lib/pkgconfig/other.pc"
echo "other" >"$P/share/doc/other/README"
tree() { (cd "$1" && find . -printf '%p %y %m %s\n' | sort); }
before=$(tree "$P")

make -s -C "$ROOT" install PREFIX="$P" >"$TMP/install.log" 2>&1
check "make install PREFIX=$P ($(tail -1 "$TMP/install.log"))" test $? -eq 0
for f in bin/hdistill lib/libhdistill.a lib/pkgconfig/hdistill.pc include/hdistill/base/util.h \
    include/hdistill/stages/pipeline.h share/hdistill/configs/quickstart.json share/hdistill/configs/paper.json \
    share/hdistill/jobs/common.sh share/hdistill/jobs/distill.sbatch share/hdistill/jobs/submit.sh \
    share/hdistill/jobs/sweeps/objectives.tsv share/hdistill/analysis/summarize.py share/hdistill/analysis/hdio.py \
    share/hdistill/docs/file-formats.md share/hdistill/docs/standin.md share/hdistill/README.md \
    share/hdistill/install-manifest.txt; do
    check "installed $f" test -s "$P/$f"
done
check "bin/hdistill and the job scripts are executable" test -x "$P/bin/hdistill" -a -x "$SHARE/jobs/distill.sbatch" -a -x "$SHARE/jobs/submit.sh"
check "every header of include/ is installed under include/hdistill/" \
    diff <(cd "$ROOT/include" && ls -- */*.h) <(cd "$P/include/hdistill" && ls -- */*.h)
check "installed job scripts look for common.sh in $SHARE" \
    test "$(grep -l "^HDISTILL_ROOT=\${HDISTILL_ROOT:-$SHARE}" "$SHARE"/jobs/*.sbatch | wc -l)" -eq "$(ls "$ROOT"/jobs/*.sbatch | wc -l)"
check "hdistill.pc names the prefix" grep -qx "prefix=$P" "$P/lib/pkgconfig/hdistill.pc"
installed=$(tree "$P")
make -s -C "$ROOT" install PREFIX="$P" >"$TMP/install2.log" 2>&1
check "make install a second time: exit 0, the same tree" test $? -eq 0 -a "$(tree "$P")" == "$installed"

# ---- used from another directory, with no help from the checkout
cd "$WORK"
unset HDISTILL HDISTILL_ROOT
# Python writes bytecode caches beside the installed analysis scripts, as it would for a user
unset PYTHONDONTWRITEBYTECODE
ver=$("$P/bin/hdistill" version 2>&1)
check "installed hdistill version, from $WORK ($(head -1 <<<"$ver"))" grep -q '^hdistill_version *0\.1\.0' <<<"$ver"
SMALL="--set ingest.limit=300 --set ingest.ood_limit=40 --set train.epochs=2 --set critique.rounds=1"
SMALL+=" --set critique.inputs=60 --set critique.epochs=1 --set eval.limit=30 --set eval.bootstrap=100"
touch "$TMP/stamp"
sleep 1
OMP_NUM_THREADS=1 $MPIRUN -np 2 "$P/bin/hdistill" run "$SHARE/configs/quickstart.json" $SMALL >"$TMP/run.log" 2>&1
check "the installed quickstart configuration runs the whole method under mpirun -np 2 (log $TMP/run.log)" test $? -eq 0
check "its outputs are below the calling directory (run.h5, ckpt/, data.h5)" \
    test -s runs/quickstart/run.h5 -a -s runs/quickstart/data.h5 -a -d runs/quickstart/ckpt
check "ingest, teach, SFT, a critique round and the evaluation all ran" \
    test "$(grep -cE '^round 0 complete|^done: step|\| eval \| critic \||\| ood \| critic \|' "$TMP/run.log")" -eq 4
changed=$(find "$P" "$ROOT" -newer "$TMP/stamp" -not -path "$ROOT/build/*" -not -path "$ROOT/.git/*" 2>/dev/null)
check "the run wrote nothing into the prefix or the checkout ($changed)" test -z "$changed"
"$P/bin/hdistill" report runs/quickstart >"$TMP/report.md" 2>&1
check "installed hdistill report" grep -q '^| eval | critic | 30 |' "$TMP/report.md"
$PY "$SHARE/analysis/summarize.py" runs/quickstart --csv "$TMP/summary.csv" >/dev/null 2>"$TMP/summarize.err"
check "installed analysis/summarize.py reads the run ($(head -1 "$TMP/summarize.err"))" \
    test "$(cut -d, -f1 "$TMP/summary.csv" | tail -1)" == quickstart

# ---- the installed headers and library through hdistill.pc
export PKG_CONFIG_PATH=$P/lib/pkgconfig
cflags=$(pkg-config --cflags hdistill) libs=$(pkg-config --libs hdistill)
check "pkg-config finds hdistill 0.1.0" test "$(pkg-config --modversion hdistill)" == 0.1.0
bad=""
for h in $(cd "$P/include" && ls -- hdistill/*/*.h); do
    echo "#include <$h>" | cc -std=c11 -Wall -Wextra -Werror -fsyntax-only $cflags -x c - 2>>"$TMP/headers.err" || bad+=" $h"
done
check "every installed header compiles on its own with hdistill.pc's flags ($bad)" test -z "$bad"
cat >"$TMP/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hdistill/base/sha256.h>
#include <hdistill/base/util.h>
int main(void) {
    char *s = xasprintf("%s", "abc");
    char hex[65];
    sha256_hex(s, strlen(s), hex);
    printf("%s\n", hex);
    free(s);
    return 0;
}
EOF
cc -std=c11 -Wall "$TMP/prog.c" $cflags $libs -o "$TMP/prog" 2>"$TMP/prog.err"
check "a program compiles and links against the installed library ($(head -1 "$TMP/prog.err"))" test $? -eq 0
check "and runs (SHA-256 of abc)" test "$("$TMP/prog")" == ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
unset PKG_CONFIG_PATH

# ---- the installed job scripts; srun and sbatch are shims that record their arguments
cat >"$TMP/fake/srun" <<EOF
#!/usr/bin/env bash
echo "\$*" >>"$TMP/srun.calls"
args=()
for a in "\$@"; do [[ \$a == --mpi=* ]] || args+=("\$a"); done
exec $MPIRUN -np 2 "\${args[@]}"
EOF
printf '#!/bin/sh\necho "$*" >>"%s/sbatch.calls"\necho 42\n' "$TMP" >"$TMP/fake/sbatch"
chmod +x "$TMP/fake/srun" "$TMP/fake/sbatch"
# Slurm runs a copy of the batch script from its spool directory
mkdir -p "$TMP/spool"
cp "$SHARE/jobs/distill.sbatch" "$TMP/spool/slurm_script"
PATH="$TMP/fake:$PATH" SLURM_SUBMIT_DIR=$WORK SLURM_JOB_ID=7 CONFIG="$SHARE/configs/quickstart.json" HDISTILL_SETS="$SMALL" \
    OMP_NUM_THREADS=1 bash "$TMP/spool/slurm_script" >"$TMP/distill.log" 2>&1
check "installed distill.sbatch (a copy, from $WORK, no HDISTILL/HDISTILL_ROOT): exit 0 (log $TMP/distill.log)" test $? -eq 0
check "it ran srun with the installed binary ($(cat "$TMP/srun.calls" 2>/dev/null))" \
    grep -q "^--mpi=pmix $P/bin/hdistill run $SHARE/configs/quickstart.json" "$TMP/srun.calls"
check "the run was complete, so its stages were skipped" \
    test "$(grep -cE 'supervised fine-tuning is complete; skipped|step [0-9]+ is already evaluated' "$TMP/distill.log")" -eq 2
mkdir -p sweep && ln -s "$WORK/runs/quickstart" sweep/row-0
cp "$SHARE/jobs/analysis.sbatch" "$TMP/spool/slurm_script"
SLURM_SUBMIT_DIR=$WORK SWEEP_DIR=$WORK/sweep bash "$TMP/spool/slurm_script" >"$TMP/analysis.log" 2>&1
check "installed analysis.sbatch runs the installed sweep_report.py (log $TMP/analysis.log)" \
    test $? -eq 0 -a -s sweep/report/report.md -a -s sweep/report/summary.csv
out=$(PATH="$TMP/fake:$PATH" bash "$SHARE/jobs/submit.sh" "$SHARE/configs/quickstart.json" \
    "$SHARE/jobs/sweeps/feedback-frequency.tsv" sw 2>&1)
check "installed submit.sh checks the rows with the installed binary and submits ($out)" \
    test $? -eq 0 -a "$(grep -c '^checked 8 sweep rows' <<<"$out")" -eq 1
check "its jobs run in the calling directory, the installed scripts with HDISTILL_ROOT=$SHARE" \
    test "$(grep -c -- "-D $WORK .*HDISTILL_ROOT=$SHARE,.* $SHARE/jobs/[a-z]*\.sbatch\$" "$TMP/sbatch.calls")" -eq 3
rm -f "$TMP/sbatch.calls"
out=$(PATH="$TMP/fake:$PATH" bash "$ROOT/jobs/submit.sh" "$ROOT/configs/quickstart.json" \
    "$ROOT/jobs/sweeps/feedback-frequency.tsv" sw2 2>&1)
check "the checkout's submit.sh, called from elsewhere, still runs its jobs in the checkout ($out)" \
    test $? -eq 0 -a "$(grep -c -- "-D $ROOT .* $ROOT/jobs/[a-z]*\.sbatch\$" "$TMP/sbatch.calls")" -eq 3
cd "$ROOT"

# ---- uninstall
check "the installed analysis scripts left bytecode caches for uninstall to remove" test -d "$SHARE/analysis/__pycache__"
make -s -C "$ROOT" uninstall PREFIX="$P" >"$TMP/uninstall.log" 2>&1
check "make uninstall ($(tail -1 "$TMP/uninstall.log"))" test $? -eq 0
check "the prefix is exactly as before the install (the analysis scripts' __pycache__ too)" \
    diff <(echo "$before") <(tree "$P")
check "the other package's files are untouched" test "$(cat "$P/share/doc/other/README")" == other
make -s -C "$ROOT" uninstall PREFIX="$P" >"$TMP/uninstall2.log" 2>&1
check "a second uninstall: exit 1, says there is no manifest, removes nothing" \
    test $? -ne 0 -a "$(grep -c 'no such file' "$TMP/uninstall2.log")" -ge 1 -a "$(tree "$P")" == "$before"

# ---- DESTDIR staging
S=$TMP/stage
make -s -C "$ROOT" install PREFIX=/opt/hdistill-t-install DESTDIR="$S" >"$TMP/stage.log" 2>&1
check "make install DESTDIR=$S PREFIX=/opt/hdistill-t-install" test $? -eq 0 -a -x "$S/opt/hdistill-t-install/bin/hdistill"
check "nothing outside DESTDIR" test ! -e /opt/hdistill-t-install
check "the staged files name PREFIX, never DESTDIR" \
    test "$(grep -rl "$S" "$S/opt/hdistill-t-install" | wc -l)" -eq 0 \
    -a "$(grep -c '^HDISTILL_ROOT=${HDISTILL_ROOT:-/opt/hdistill-t-install/share/hdistill}' "$S/opt/hdistill-t-install/share/hdistill/jobs/distill.sbatch")" -eq 1 \
    -a "$(grep -c '^prefix=/opt/hdistill-t-install$' "$S/opt/hdistill-t-install/lib/pkgconfig/hdistill.pc")" -eq 1
make -s -C "$ROOT" uninstall PREFIX=/opt/hdistill-t-install DESTDIR="$S" >"$TMP/unstage.log" 2>&1
check "make uninstall DESTDIR=...: the staged prefix is gone" test $? -eq 0 -a ! -e "$S/opt/hdistill-t-install"

finish
