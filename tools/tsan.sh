#!/usr/bin/env bash
# ThreadSanitizer: builds snncl with -fsanitize=thread (build-tsan/) and runs the tests
# that use the library from several threads (tests/test_threads.c: two contexts in two
# threads, one model from four threads; examples/threads.c; examples/opencl_pipeline.c). Any report fails (exit 66). docs/reliability.md says what it covers.
#   bash tools/tsan.sh [meson test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${TSAN_BUILD:-build-tsan}

if [ ! -f "$build/build.ninja" ]; then
    # b_lundef=false: the sanitizer runtime resolves some symbols at load time.
    meson setup "$build" --werror -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false \
        -Dc_args=-fno-omit-frame-pointer >/dev/null
fi
ninja -C "$build" tests/test_threads examples/example_threads examples/example_opencl_pipeline

supp=$PWD/tools/sanitizers/tsan.supp
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:suppressions=$supp"
# test_threads (as the unit test and the example of that name) and the pipeline example
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(threads opencl_pipeline)
out=$(meson test -C "$build" --no-rebuild --print-errorlogs --timeout-multiplier 5 "${tests[@]}" 2>&1) || { echo "$out"; exit 1; }
echo "$out"
# meson exits 0 when no test matched: make sure they ran
grep -q "No suitable tests" <<<"$out" && { echo "tsan.sh: no test matched ${tests[*]}" >&2; exit 1; }
exit 0
