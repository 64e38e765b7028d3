#!/usr/bin/env bash
# One short check of snncl on a machine with a GPU (at most about 8 minutes): build,
# run the test suite on the first GPU, `snncl tune` there, then `snncl bench
# --all-devices --json` on the standard workloads, and print a table (and save the
# logs and JSON lines under $OUT, or ./gpu-check-out).
#
#   tools/gpu-check.sh            on the GPU machine, from the repository root
#   tools/gpu-check.sh --fetch    here, beforehand, on Debian 12 with network: downloads
#                                 the build's Debian packages (2 MB) into .gpu-deps/
#                                 (git-ignored: carry it), for a GPU machine that has a
#                                 compiler, python3, meson and ninja but no OpenCL
#                                 headers, ICD loader, CLBlast, Check or cJSON
#
# The GPU's OpenCL driver comes with its vendor's driver (NVIDIA: libnvidia-opencl);
# where the driver is installed but no ICD file names it, this script writes one.
# BUDGET=seconds (default 420) bounds the benchmark part: workloads are run in order
# until it is spent. GPU_CHECK_TYPE=CPU runs the same steps on the first CPU device
# (to try the script where there is no GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

debs=(ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-c-headers opencl-clhpp-headers opencl-headers
      libclblast1 libclblast-dev check libsubunit0 libsubunit-dev libcjson1 libcjson-dev pkg-config
      pkgconf pkgconf-bin libpkgconf3 clinfo)

if [ "${1:-}" = "--fetch" ]; then
    mkdir -p .gpu-deps
    (cd .gpu-deps && apt-get download "${debs[@]}") || exit 1
    du -sh .gpu-deps
    exit 0
fi

OUT=${OUT:-$root/gpu-check-out}
mkdir -p "$OUT"
start=$(date +%s)
step() { printf '\n== [%3ds] %s\n' $(($(date +%s) - start)) "$*"; }

# ---- dependencies: the system's, else the carried packages unpacked under /tmp
if ! pkg-config --exists OpenCL clblast libcjson check 2>/dev/null && ls .gpu-deps/*.deb >/dev/null 2>&1; then
    step "unpacking .gpu-deps into /tmp/snncl-deps"
    rm -rf /tmp/snncl-deps && mkdir -p /tmp/snncl-deps
    for f in .gpu-deps/*.deb; do dpkg -x "$f" /tmp/snncl-deps; done
    d=/tmp/snncl-deps/usr
    multi=$(ls -d $d/lib/x86_64-linux-gnu 2>/dev/null || echo $d/lib)
    export PATH=$d/bin:$PATH
    export PKG_CONFIG_PATH=$multi/pkgconfig:$d/share/pkgconfig:${PKG_CONFIG_PATH:-}
    export PKG_CONFIG_SYSROOT_DIR=/tmp/snncl-deps
    export CPATH=$d/include:${CPATH:-}
    export LIBRARY_PATH=$multi:${LIBRARY_PATH:-}
    export LD_LIBRARY_PATH=$multi:${LD_LIBRARY_PATH:-}
fi

# ---- the vendor's OpenCL driver: an ICD file for the loader when none names it
if [ -z "$(ls /etc/OpenCL/vendors/*.icd 2>/dev/null)" ]; then
    lib=$(ls /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 /usr/local/nvidia/lib64/libnvidia-opencl.so.1 \
          /usr/lib64/libnvidia-opencl.so.1 2>/dev/null | head -1 || true)  # ls fails on the missing ones
    if [ -n "$lib" ]; then
        mkdir -p /tmp/snncl-icd && echo "$lib" >/tmp/snncl-icd/nvidia.icd
        export OCL_ICD_VENDORS=/tmp/snncl-icd
    fi
fi

step "devices"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    | tee "$OUT/gpu.txt"

step "build (release, -Dplots=auto)"
if ! { meson setup build-gpu --buildtype=release --wipe >"$OUT/setup.log" 2>&1 ||
       meson setup build-gpu --buildtype=release >"$OUT/setup.log" 2>&1; }; then
    tail -30 "$OUT/setup.log"
    exit 1
fi
ninja -C build-gpu >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
snncl=build-gpu/src/snncl
$snncl devices | tee "$OUT/devices.txt"
# The first GPU's index, for SNNCL_DEVICE (the tests use the default device).
gpu=$(awk -v want="${GPU_CHECK_TYPE:-GPU}" '/^\[[0-9]+\]/ {i = substr($1, 2, length($1) - 2)} $1 == "type:" && $2 == want {print i; exit}' "$OUT/devices.txt")
if [ -z "$gpu" ]; then
    echo "no GPU among the OpenCL devices: nothing more to check" >&2
    exit 1
fi
export SNNCL_DEVICE=$gpu
echo "SNNCL_DEVICE=$gpu"

step "test suite on device $gpu"
timeout 240 meson test -C build-gpu --print-errorlogs --no-rebuild --suite unit --suite examples \
    >"$OUT/tests.log" 2>&1
echo "tests: exit $?"
grep -E '^ *[0-9]+/[0-9]+ ' "$OUT/tests.log"
grep -E '^(Ok|Fail|Timeout|Skipped):' "$OUT/tests.log"

step "snncl tune"
SNNCL_CACHE_DIR=$OUT/tune timeout 150 $snncl tune --candidates 4 2>&1 | tee "$OUT/tune.log"

step "snncl bench --all-devices"
budget=${BUDGET:-420}
rm -f "$OUT/bench.jsonl"
for w in "simple 32x32x3 25 rate" "simple 28x28x1 8 direct" "simple 32x32x3 8 rate" "vgg 32x32x3 25 rate" \
         "vgg 28x28x1 8 direct"; do
    set -- $w
    left=$((budget - ($(date +%s) - start)))
    [ "$left" -gt 20 ] || { echo "benchmark budget spent: skipping $w and later"; break; }
    SNNCL_CACHE_DIR=$OUT/tune timeout "$left" $snncl bench --all-devices --model "$1" --input "$2" --T "$3" \
        --encoding "$4" --runs 3 --json "$OUT/bench.jsonl" 2>&1 | tail -n +2
done

step "table (images/s)"
python3 - "$OUT/bench.jsonl" <<'EOF'
import json, os, sys
rows = {}
modes = ["forward", "forward-lyapunov", "train", "train-lyapunov"]
path = sys.argv[1]
for line in open(path) if os.path.exists(path) else []:
    r = json.loads(line)
    key = (r.get("device", "?"), r.get("model"), r.get("input"), r.get("T"), r.get("encoding"))
    rows.setdefault(key, {})[r.get("mode")] = r
print("| device | model | input | T | encoding | " + " | ".join(modes) + " | peak MB |")
print("| --- | --- | --- | ---: | --- |" + " ---: |" * (len(modes) + 1))
for key, m in rows.items():
    cells = ["%.1f" % m[k]["images_per_s"] if k in m else "" for k in modes]
    peak = max((v.get("peak_device_mb", 0) for v in m.values()), default=0)
    print("| " + " | ".join(str(k) for k in key) + " | " + " | ".join(cells) + " | %.0f |" % peak)
EOF
step "done"
