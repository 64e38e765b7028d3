#!/usr/bin/env bash
# Runs the snncl command line under valgrind memcheck on its main paths (help, devices,
# infer, grad, train, eval, raster, bench, and failures: missing file, corrupt file, bad
# option values). Any invalid access, use of uninitialized memory, or definite/indirect
# leak fails. Builds a normal optimized build with debug info in build-vg.
#
#   bash tools/memcheck.sh
#
# Environment: MEMCHECK_BUILD (default build-vg), MEMCHECK_JOBS (ninja -j).
# Needs valgrind (Debian package valgrind) and python3 (for the toy dataset).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${MEMCHECK_BUILD:-build-vg}
[ -f "$build/build.ninja" ] || meson setup "$build" -Dbuildtype=debugoptimized
ninja -C "$build" ${MEMCHECK_JOBS:+-j "$MEMCHECK_JOBS"} src/snncl
snncl=$root/$build/src/snncl
fx=$root/tests/fixtures
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# A toy MNIST-format dataset (8x8 images, two classes), as tests/test_cli.py makes it.
mkdir data
python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import test_cli; test_cli.write_toy_mnist("data", n_train=16, n_test=8)' \
    "$root/tests"
# A corrupted model: the fixture cut short inside its tensor data.
head -c 700 "$fx/simple_direct_lyap.model.safetensors" > corrupt.safetensors
# A network description with a misspelt key.
echo '{"input": [1, 8, 8], "num_classes": 2, "layers": [{"type": "conv2d", "out_channels": 2, "kernal_size": 3}]}' > bad.json

# Exit 99 on a valgrind error: snncl's own exit statuses 1 and 2 are expected below.
vg=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect
    --error-exitcode=99 --suppressions="$root/tools/sanitizers/valgrind.supp" --num-callers=40 -q)
model=$fx/simple_direct_lyap.model.safetensors
input=$fx/simple_direct_lyap.input.safetensors
train=(train --data mnist --data-dir data --channels 4,8 --T 2 --encoding direct --batch 8 --epochs 1
       --lyap-weight 0.05 --quiet)
cases=(
    "0|--help"
    "0|--version"
    "0|devices"
    "0|tune --show"
    "0|infer --model $model --input $input --output y.safetensors --lyapunov"
    "0|grad --model $fx/train_simple_direct_lyap.model.safetensors --input $fx/train_simple_direct_lyap.input.safetensors --labels $fx/train_simple_direct_lyap.labels.safetensors --output g.safetensors --lyap-weight 0.1"
    "0|${train[*]} --max-steps 1 --no-eval --out m.safetensors"
    "0|${train[*]} --resume m.ckpt.safetensors --out m.safetensors --plot p.png --json m.jsonl"
    "0|eval --model m.safetensors --data mnist --data-dir data --limit 8 --batch 8 --quiet"
    "0|raster --model $model --input $input --output r.svg"
    "0|describe --net $root/examples/fashion_net.json"
    "0|describe --model vgg"
    "0|bench --input 8x8x1 --T 2 --batch 2 --runs 1 --warmup 0 --mode forward,train-lyapunov --encoding direct"
    "1|infer --model missing.safetensors --input $input --output y2.safetensors"
    "1|infer --model corrupt.safetensors --input $input --output y2.safetensors"
    "1|eval --model m.safetensors --data mnist --data-dir nowhere"
    "1|describe --net bad.json"
    "2|infer --model $model --input $input --output y2.safetensors --lyap-eps x"
    "2|${train[*]} --lyap-warmup -1 --out m2.safetensors"
    "2|bench --mode backward"
)

# PoCL compiles kernels on first use; under memcheck that takes minutes per program.
# Valgrind's CPU has no AVX-512, so PoCL sees another CPU there ("pthread-haswell")
# and a native run does not fill the cache that the valgrind runs use. So every case
# runs once first under valgrind's no-op tool, which emulates the same CPU at a
# fraction of memcheck's cost and leaves the kernels in PoCL's cache.
for c in "${cases[@]}"; do
    read -r -a args <<< "${c#*|}"
    valgrind --tool=none -q "$snncl" "${args[@]}" > /dev/null 2>&1 || true
done
rm -f m.safetensors m.ckpt.safetensors m.jsonl
"$snncl" "${train[@]}" --max-steps 1 --no-eval --out m.safetensors > /dev/null

failed=0
for c in "${cases[@]}"; do
    want=${c%%|*}
    read -r -a args <<< "${c#*|}"
    start=$SECONDS
    set +e
    "${vg[@]}" "$snncl" "${args[@]}" > out.txt 2> err.txt
    rc=$?
    set -e
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL (exit $rc, expected $want): snncl ${args[*]}"
        cat err.txt
        failed=1
    else
        echo "ok   ($((SECONDS - start)) s) snncl ${args[*]}"
    fi
done
exit $failed
