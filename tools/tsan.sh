#!/usr/bin/env bash
# ThreadSanitizer: builds snncl with -fsanitize=thread (build-tsan/) and runs the tests
# that use the library from several threads (tests/test_threads.c: two contexts in two
# threads). Any report fails (exit 66). docs/reliability.md says what it covers.
#   bash tools/tsan.sh [meson test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${TSAN_BUILD:-build-tsan}

if [ ! -f "$build/build.ninja" ]; then
    # b_lundef=false: the sanitizer runtime resolves some symbols at load time.
    meson setup "$build" --werror -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false \
        -Dc_args=-fno-omit-frame-pointer >/dev/null
fi
ninja -C "$build" tests/test_threads

supp=$PWD/tools/sanitizers/tsan.supp
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:suppressions=$supp"
meson test -C "$build" --no-rebuild --print-errorlogs --timeout-multiplier 5 "${@:-threads}"
