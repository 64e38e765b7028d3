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
