#!/usr/bin/env bash
# packaging/install.sh -- `make install` and `make uninstall` (the Makefile
# calls it; docs/cluster.md describes the installed tree).
#   PREFIX=DIR [DESTDIR=STAGE] [BUILD=build] packaging/install.sh install
#   PREFIX=DIR [DESTDIR=STAGE] packaging/install.sh uninstall
# install copies the built program, library, headers and pkg-config file and
# the configs, job scripts, analysis scripts and docs into
# $DESTDIR$PREFIX/{bin,lib,include/hdistill,share/hdistill}, and writes
# share/hdistill/install-manifest.txt: every file it installed and every
# directory it created (paths relative to PREFIX).  uninstall removes exactly
# those files (and the bytecode Python caches next to the installed analysis
# scripts when they ran), then those directories if they are empty; anything
# else under PREFIX is left alone.  Paths written into installed files (the job
# scripts' HDISTILL_ROOT default, hdistill.pc) name PREFIX, never DESTDIR, so
# a staged tree works once moved to PREFIX.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
[[ $mode == install || $mode == uninstall ]] || { echo "usage: PREFIX=DIR [DESTDIR=STAGE] $0 install|uninstall" >&2; exit 2; }
: "${PREFIX:?set PREFIX (make install PREFIX=DIR)}"
[[ $PREFIX == /* ]] || { echo "error: PREFIX=$PREFIX must be an absolute path" >&2; exit 2; }
PREFIX=${PREFIX%/}
DESTDIR=${DESTDIR:-}
BUILD=${BUILD:-build}
ROOT=$DESTDIR$PREFIX
SHARE_REL=share/hdistill
MANIFEST_REL=$SHARE_REL/install-manifest.txt
MANIFEST=$ROOT/$MANIFEST_REL

if [[ $mode == uninstall ]]; then
    [[ -f $MANIFEST ]] || { echo "error: $MANIFEST: no such file (nothing installed here, or installed without a manifest); nothing removed" >&2; exit 1; }
    mapfile -t lines <"$MANIFEST"
    nf=0 nd=0
    for l in "${lines[@]}"; do
        [[ $l == "file "* ]] || continue
        p=$ROOT/${l#file }
        if [[ -f $p || -L $p ]]; then rm -f "$p"; nf=$((nf + 1)); fi
        # running an installed script leaves DIR/__pycache__/NAME.<python>.pyc
        if [[ $p == *.py ]]; then
            d=$(dirname "$p")/__pycache__ b=$(basename "$p" .py)
            rm -f "$d/$b".*.pyc
            rmdir "$d" 2>/dev/null || true
        fi
    done
    # directories deepest first; one that holds something else stays
    mapfile -t dirs < <(for l in "${lines[@]}"; do [[ $l == "dir "* ]] && echo "${l#dir }"; done | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)
    for d in ${dirs[@]+"${dirs[@]}"}; do
        p=$ROOT/$d
        [[ $d == . ]] && p=$ROOT
        if [[ -d $p ]]; then
            if rmdir "$p" 2>/dev/null; then nd=$((nd + 1)); else echo "kept $p (not empty)"; fi
        fi
    done
    echo "uninstalled from $ROOT: $nf files, $nd directories"
    exit 0
fi

for f in "$BUILD/hdistill" "$BUILD/libhdistill.a" "$BUILD/hdistill.pc"; do
    [[ -f $f ]] || { echo "error: $f: not built (hint: make install builds it; PREFIX must be the same)" >&2; exit 2; }
done

# what an earlier install here recorded: its directories stay ours, its files
# that this install does not write again are removed (a header that moved)
declare -A old_files=() dirs_made=() new_files=()
if [[ -f $MANIFEST ]]; then
    while IFS= read -r l; do
        case $l in
            "file "*) old_files[${l#file }]=1 ;;
            "dir "*) dirs_made[${l#dir }]=1 ;;
        esac
    done <"$MANIFEST"
fi

# mkdir_rel REL: creates ROOT/REL and its missing parents (inside ROOT), recording them
mkdir_rel() {
    local rel=$1 parent
    [[ -d $ROOT/$rel ]] && return 0
    parent=$(dirname "$rel")
    [[ $parent != . ]] && mkdir_rel "$parent"
    mkdir "$ROOT/$rel"
    dirs_made[$rel]=1
}
# put SRC REL [MODE]: installs SRC as ROOT/REL (mode 755 if SRC is executable, else 644)
put() {
    local src=$1 rel=$2 m=${3:-}
    [[ -n $m ]] || { if [[ -x $src ]]; then m=755; else m=644; fi; }
    mkdir_rel "$(dirname "$rel")"
    install -m "$m" "$src" "$ROOT/$rel"
    new_files[$rel]=1
}

# PREFIX itself counts as made here (".") when it did not exist; its parents never do
if [[ ! -d $ROOT ]]; then mkdir -p "$ROOT"; dirs_made[.]=1; fi
put "$BUILD/hdistill" bin/hdistill 755
put "$BUILD/libhdistill.a" lib/libhdistill.a 644
put "$BUILD/hdistill.pc" lib/pkgconfig/hdistill.pc 644
for h in include/*/*.h; do put "$h" "include/hdistill/${h#include/}" 644; done
for f in README.md CITATION.cff docs/*.md configs/*.json analysis/*.py jobs/common.sh jobs/submit.sh jobs/sweeps/*.tsv; do
    put "$f" "$SHARE_REL/$f"
done
# batch scripts: Slurm runs a copy of the script, so it cannot find common.sh
# beside itself; a checkout's copy looks in $SLURM_SUBMIT_DIR, an installed
# copy in this share directory
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
old='HDISTILL_ROOT=${HDISTILL_ROOT:-${SLURM_SUBMIT_DIR:-.}}'
new="HDISTILL_ROOT=\${HDISTILL_ROOT:-$PREFIX/$SHARE_REL} # installed copy: common.sh and analysis/ are here"
for f in jobs/*.sbatch; do
    text=$(<"$f")
    [[ $text == *"$old"* ]] || { echo "error: $f: no line '$old' to point at the installed tree" >&2; exit 1; }
    printf '%s\n' "${text/"$old"/"$new"}" >"$tmp"
    put "$tmp" "$SHARE_REL/$f" 755
done

# files of an earlier install that are not part of this one
for rel in "${!old_files[@]}"; do
    [[ -n ${new_files[$rel]:-} || $rel == "$MANIFEST_REL" ]] && continue
    rm -f "$ROOT/$rel"
done
new_files[$MANIFEST_REL]=1
{
    echo "# hdistill install manifest: PREFIX=$PREFIX (make uninstall PREFIX=$PREFIX removes these)"
    printf 'file %s\n' "${!new_files[@]}" | sort
    for d in "${!dirs_made[@]}"; do printf 'dir %s\n' "$d"; done | sort
} >"$tmp"
install -m 644 "$tmp" "$MANIFEST"
echo "installed into $ROOT: ${#new_files[@]} files (manifest $MANIFEST)"
