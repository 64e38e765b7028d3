#!/usr/bin/env bash
# Installs everything snncl needs to build and test on Debian 12 (the CPU runs
# OpenCL through PoCL). Safe to run again. Uses sudo when not root.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q \
    build-essential meson ninja-build pkg-config python3 doxygen \
    ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo \
    libclblast-dev check libcjson-dev zlib1g-dev libcairo2-dev \
    dataset-fashion-mnist
# Open MPI: libsnncl_mpi (data-parallel training, include/snncl_mpi.h) and its test on
# 2 ranks; without it that part is not built and its test is skipped.
$SUDO apt-get install -y -q --no-install-recommends openmpi-bin libopenmpi-dev
# The hardening checks (.ci/run, docs/reliability.md): clang and its sanitizer/libFuzzer
# runtime (a mere Recommends of clang) for tools/fuzz.sh, llvm for llvm-symbolizer
# (readable sanitizer stacks), valgrind for tools/memcheck.sh, oclgrind for
# tools/oclgrind.sh.
$SUDO apt-get install -y -q --no-install-recommends clang libclang-rt-14-dev llvm valgrind oclgrind
# PyTorch and snnTorch 0.9.4 for the snncl <-> PyTorch test (tests/test_interop.py,
# tools/torch_interop.py); without them that test is skipped. Recommends left out: they
# are C++ extension build tools (libtorch-dev, pybind11-dev, python3-dev) that import
# torch does not use. Debian has no snntorch; pip installs it (pure Python) without
# dependencies, as torch and numpy come from Debian.
$SUDO apt-get install -y -q --no-install-recommends python3-torch python3-numpy python3-pip
if ! /usr/bin/python3 -c 'import snntorch' 2>/dev/null; then
    $SUDO /usr/bin/python3 -m pip install -q --break-system-packages --no-deps snntorch==0.9.4
fi
