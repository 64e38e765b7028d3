#!/usr/bin/env bash
# Builds snncl with AddressSanitizer + UndefinedBehaviorSanitizer (gcc, in build-asan)
# and runs the whole test suite under them. Any ASan, UBSan or LeakSanitizer report
# fails the test that caused it, the CLI tests included: they run the sanitized snncl.
#
#   bash tools/sanitize.sh [meson test arguments, e.g. a test name]
#
# Environment: SANITIZE_BUILD (default build-asan), SANITIZE_JOBS (ninja -j).
# Needs gcc's sanitizer runtimes (libasan8, libubsan1: pulled in by build-essential) and
# llvm-symbolizer (package llvm) for readable stacks; everything else as for the build.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SANITIZE_BUILD:-build-asan}

if [ ! -f "$build/build.ninja" ]; then
    # b_lundef=false: the sanitizer runtimes resolve some symbols at load time.
    # -fno-omit-frame-pointer: fast, complete stacks through snncl's own frames.
    meson setup "$build" --werror -Dbuildtype=debugoptimized \
        -Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fno-omit-frame-pointer
fi
ninja -C "$build" ${SANITIZE_JOBS:+-j "$SANITIZE_JOBS"}

supp=$PWD/tools/sanitizers/lsan.supp
# ASan (and LeakSanitizer, which runs at exit inside ASan):
#  halt_on_error=1         stop at the first report.
#  exitcode=86             a report exits with 86, not 1: snncl's own failures exit 1 or 2,
#                          so a CLI test expecting a clean failure still fails on a report.
#  detect_leaks=1          leak check at exit (the default on x86-64 Linux; stated here).
#  intercept_tls_get_addr=0
#                          gcc 12's runtime mistakes some dynamic-TLS blocks (PoCL and LLVM
#                          use thread_local) for glibc 2.19's layout and reads a bogus range;
#                          the leak check then dies with "Tracer caught signal 11". Off, LSan
#                          does not scan dlopen'ed libraries' TLS; snncl uses static TLS only.
#  fast_unwind_on_malloc=0 PoCL and LLVM have no frame pointers, so the fast unwinder stops at
#                          their first frame; the DWARF unwinder gives whole stacks, so the
#                          suppressions can name a PoCL function and never hide a snncl leak.
#                          (Slower; it costs most where PoCL compiles kernels.)
# Neither detect_odr_violation nor protect_shadow_gap needs changing: PoCL loads its LLVM
# and the kernels it compiles (plain dlopen'ed .so files) without conflicting with ASan.
export ASAN_OPTIONS=halt_on_error=1:exitcode=86:detect_leaks=1:intercept_tls_get_addr=0:fast_unwind_on_malloc=0
# UBSan: every report is fatal, with its stack, and exits 86 like ASan's.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=86
# Leaks of the OpenCL stack itself (tools/sanitizers/lsan.supp says which and why).
export LSAN_OPTIONS=suppressions=$supp:print_suppressions=0
# The sanitized tests run slower; the multiplier keeps their timeouts meaningful.
if [ $# -gt 0 ]; then
    meson test -C "$build" --print-errorlogs --timeout-multiplier 3 "$@"
    exit
fi
meson test -C "$build" --print-errorlogs --timeout-multiplier 3 --no-suite mpi
# The MPI test (2 ranks under mpirun) without the leak check: Open MPI's runtime leaves
# thousands of blocks from its progress thread and its unloaded components, in stacks
# LeakSanitizer cannot attribute (no module, no symbol) and so cannot suppress by name.
# Memory errors and undefined behaviour are still caught.
ASAN_OPTIONS=${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0} \
    meson test -C "$build" --print-errorlogs --timeout-multiplier 3 --suite mpi
