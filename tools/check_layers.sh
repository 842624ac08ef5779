#!/usr/bin/env bash
# check_layers.sh -- fails on any #include that goes up the layer order
#   base < engine < io < llm < standin < stages < src/main.c
# (a file may include headers of its own layer and the layers below), and on
# the engine layer using MPI, HDF5, curl or the comm module (DESIGN.md: kernels
# and the model know nothing of MPI or HDF5), and on <mpi.h> outside
# base/comm.c.  Prints one line per violation and "layers: ok" or exits 1.
# Usage: tools/check_layers.sh   (from anywhere)
set -uo pipefail
cd "$(dirname "$0")/.."
layers=(base engine io llm standin stages)
rank() { local i; for i in "${!layers[@]}"; do [[ ${layers[$i]} == "$1" ]] && { echo "$i"; return; }; done; echo -1; }
bad=0
while IFS= read -r f; do
    case $f in
        src/main.c) mine=${#layers[@]} ;;
        src/*/*|include/*/*) l=${f#*/}; l=${l%%/*}; mine=$(rank "$l") ;;
        *) continue ;;
    esac
    if [[ $mine -lt 0 ]]; then echo "$f: not in a layer folder (${layers[*]})"; bad=1; continue; fi
    while IFS=: read -r line inc; do
        hdr=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"$inc")
        [[ $hdr == */* ]] || { [[ $hdr == version.h ]] && continue; echo "$f:$line: \"$hdr\" names no layer (write \"layer/$hdr\")"; bad=1; continue; }
        them=$(rank "${hdr%%/*}")
        if [[ $them -lt 0 ]]; then echo "$f:$line: \"$hdr\": unknown layer"; bad=1
        elif [[ $them -gt $mine ]]; then echo "$f:$line: includes \"$hdr\" from a higher layer (${layers[$them]} above $(if [[ $mine -lt ${#layers[@]} ]]; then echo "${layers[$mine]}"; else echo main; fi))"; bad=1; fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include "' "$f")
done < <(git ls-files 'src/*.c' 'include/*.h' 2>/dev/null || find src include -name '*.[ch]')
# the engine is pure computation
if grep -nE '#include *[<"](mpi\.h|hdf5\.h|curl/curl\.h|base/comm\.h)' src/engine/*.c include/engine/*.h; then
    echo "engine/: must not use MPI, HDF5, curl or comm (the lines above)"; bad=1
fi
if grep -lE '#include *<mpi\.h>' $(git ls-files 'src/*.c' 'include/*.h') | grep -v '^src/base/comm\.c$'; then
    echo "<mpi.h> outside src/base/comm.c (the files above)"; bad=1
fi
[[ $bad -eq 0 ]] && echo "layers: ok"
exit $bad
