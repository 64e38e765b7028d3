#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ and runs each for a while on a copy of its
# committed seed corpus (which therefore never grows).
#
#   tools/fuzz.sh [SECONDS [TARGET...]]
#
# SECONDS per target (default 30); TARGETs default to all (fuzz_safetensors fuzz_idx
# fuzz_cifar10 fuzz_cli fuzz_model_config fuzz_network). Prints each target's number of executions;
# crash, leak and timeout inputs stay in build-fuzz/artifacts/. Exit status 1 when any
# target found something (or failed to run), 2 on bad usage.
#
# Needs clang with its sanitizer/libFuzzer runtime (Debian 12: clang libclang-rt-14-dev)
# besides the project's usual build dependencies. Environment: FUZZ_BUILD_DIR (default
# build-fuzz), FUZZ_NINJA_JOBS (ninja -j, default ninja's), FUZZ_RSS_MB (default 2048).
set -euo pipefail

seconds=${1:-30}
[ $# -gt 0 ] && shift
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: tools/fuzz.sh [SECONDS [TARGET...]]" >&2
    exit 2
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_safetensors fuzz_idx fuzz_cifar10 fuzz_cli fuzz_model_config fuzz_network)

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac
rss_mb=${FUZZ_RSS_MB:-2048}

for target in "${targets[@]}"; do
    if [ ! -f "$root/fuzz/$target.c" ]; then
        echo "tools/fuzz.sh: no target '$target' (fuzz/$target.c)" >&2
        exit 2
    fi
done

# Configure: a new directory with clang, or switch an existing clang one to -Dfuzz=true.
if [ ! -f "$build/build.ninja" ]; then
    CC=${CC:-clang} meson setup "$build" "$root" -Dfuzz=true
elif ! grep '"name": "fuzz", "value": true' <<<"$(meson introspect --buildoptions "$build")" >/dev/null; then
    meson configure "$build" -Dfuzz=true
fi
ninja -C "$build" ${FUZZ_NINJA_JOBS:+-j "$FUZZ_NINJA_JOBS"} "${targets[@]/#/fuzz/}"

artifacts=$build/artifacts
mkdir -p "$artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/snncl-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=0
summary=()
for target in "${targets[@]}"; do
    corpus=$work/$target
    mkdir -p "$corpus"
    if [ -d "$root/fuzz/corpus/${target#fuzz_}" ]; then
        cp "$root/fuzz/corpus/${target#fuzz_}"/* "$corpus"/
    fi
    dict=()
    [ -f "$root/fuzz/$target.dict" ] && dict=(-dict="$root/fuzz/$target.dict")
    log=$work/$target.log
    echo "== $target: ${seconds}s"
    status=0
    # The outer timeout only guards against a fuzzer that ignores -max_total_time.
    timeout --kill-after=30 $((seconds + 120)) \
        "$build/fuzz/$target" "$corpus" "${dict[@]}" \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$target-" \
        >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)
    if [ "$status" -eq 0 ]; then
        result="ok"
    else
        result="FAILED (exit status $status)"
        failed=1
        # What the fuzzer found, and where the input went.
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*fuzz check failed|.*runtime error|artifact_prefix|Test unit written)' "$log" \
            | head -n 20 >&2 || true
        cp "$log" "$artifacts/$target.log"
        echo "   full log: $artifacts/$target.log" >&2
    fi
    line="$target: ${execs:-?} executions in ${seconds}s: $result"
    echo "   $line"
    summary+=("$line")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
