#!/usr/bin/env bash
# Installs snncl into a temporary prefix and builds and runs the examples against the
# installed copy, as a developer outside this tree would: the compiler sees only the
# installed header, library and snncl.pc (through pkg-config).
#   tools/check-install.sh            (JOBS=N limits ninja's parallel jobs; KEEP=1 keeps
#                                       the temporary directory and prints its path)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
tmp=$(mktemp -d "${TMPDIR:-/tmp}/snncl-install.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
    trap 'echo "kept $tmp"' EXIT
else
    trap 'rm -rf "$tmp"' EXIT
fi
prefix=$tmp/prefix
step() { printf '\n== %s\n' "$*"; }

step "build and install into $prefix"
meson setup "$tmp/build" --prefix="$prefix" --buildtype=release >"$tmp/setup.log" || { cat "$tmp/setup.log"; exit 1; }
ninja -C "$tmp/build" ${JOBS:+-j"$JOBS"} >"$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }
meson install -C "$tmp/build" --no-rebuild --quiet

# meson picks the library directory (lib/x86_64-linux-gnu on Debian); find it through
# the .pc file it wrote.
pc=$(find "$prefix" -name snncl.pc -print -quit)
[ -n "$pc" ] || { echo "snncl.pc was not installed" >&2; exit 1; }
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
libdir=$(pkg-config --variable=libdir snncl)
for f in "$prefix/include/snncl.h" "$prefix/include/snncl_opencl.h" "$prefix/bin/snncl" "$libdir/libsnncl.a" "$libdir/libsnncl.so"; do
    [ -e "$f" ] || { echo "not installed: $f" >&2; exit 1; }
done
ls -l "$libdir"/libsnncl*
echo "pkg-config --cflags --libs snncl:          $(pkg-config --cflags --libs snncl)"
echo "pkg-config --static --cflags --libs snncl: $(pkg-config --static --cflags --libs snncl)"
[ "$(pkg-config --modversion snncl)" = "$(python3 tools/version.py)" ] || { echo "snncl.pc has the wrong version" >&2; exit 1; }

CFLAGS="-std=c11 -O2 -Wall -Wextra -Werror"
step "compile the examples against the installed shared library"
for ex in devices classify train_tiny lyapunov opencl_pipeline threads custom_network; do
    # -lm: classify computes a softmax; OpenCL: opencl_pipeline makes its own OpenCL
    # objects; -pthread: threads starts threads; rpath: the prefix is not on the
    # loader's path.
    pkgs=snncl
    [ "$ex" = opencl_pipeline ] && pkgs="snncl OpenCL"
    # shellcheck disable=SC2046,SC2086
    cc $CFLAGS "examples/$ex.c" -o "$tmp/$ex" $(pkg-config --cflags --libs $pkgs) -lm -pthread -Wl,-rpath,"$libdir"
    # The output is captured before matching: with pipefail, `ldd | grep -q` fails at
    # random when grep exits before ldd has finished writing (SIGPIPE).
    deps=$(ldd "$tmp/$ex")
    grep "libsnncl.so.* => $libdir/" <<<"$deps" >/dev/null || { echo "$ex does not load $libdir's libsnncl" >&2; exit 1; }
done
echo "ok"

step "compile train_tiny against the static library (Requires.private / Libs.private)"
static_libs=$(pkg-config --static --libs snncl)
# shellcheck disable=SC2046,SC2086
cc $CFLAGS examples/train_tiny.c -o "$tmp/train_tiny_static" $(pkg-config --cflags snncl) \
    ${static_libs/-lsnncl/-l:libsnncl.a}
deps=$(ldd "$tmp/train_tiny_static")
if grep libsnncl <<<"$deps" >/dev/null; then echo "train_tiny_static loads libsnncl.so" >&2; exit 1; fi
echo "ok"

step "the static library exports the public functions only"
# tools/localize_static.py made every other symbol local: a program's own snn_launch,
# say, cannot collide with snncl's.
nm -g --defined-only "$libdir/libsnncl.a" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/exported"
grep -ho 'SNN_API[^(]*(' "$prefix"/include/snncl*.h | grep -o 'snn_[a-z0-9_]*($' | tr -d '(' | sort -u >"$tmp/public"
extra=$(comm -23 "$tmp/exported" "$tmp/public")
[ -z "$extra" ] || { echo "libsnncl.a exports internal symbols:" $extra >&2; exit 1; }
[ -s "$tmp/exported" ] || { echo "libsnncl.a exports nothing" >&2; exit 1; }
echo "ok: $(wc -l <"$tmp/exported") functions, all in the public headers"

step "libsnncl_mpi, where MPI was found: its test built against the installed copy"
if [ -e "$libdir/libsnncl_mpi.so" ] && command -v mpicc >/dev/null; then
    [ -e "$prefix/include/snncl_mpi.h" ] || { echo "not installed: snncl_mpi.h" >&2; exit 1; }
    # shellcheck disable=SC2046
    # -lm: the test measures distances between models (sqrt)
    mpicc $CFLAGS tests/test_mpi.c -o "$tmp/test_mpi" $(pkg-config --cflags --libs snncl) -lsnncl_mpi -lm \
        -Wl,-rpath,"$libdir"
    POCL_MAX_PTHREAD_COUNT=1 mpirun --allow-run-as-root --oversubscribe -np 2 "$tmp/test_mpi"
else
    echo "not built (no MPI); skipped"
fi

step "the headers from C++"
if command -v c++ >/dev/null; then
    # shellcheck disable=SC2046
    printf '#include <snncl_opencl.h>\nint main() { return snn_context_get_cl(NULL, NULL, NULL, NULL) == SNN_OK; }\n' |
        c++ -x c++ -Wall -Wextra -Werror - -o "$tmp/cxx" $(pkg-config --cflags --libs snncl) -Wl,-rpath,"$libdir"
    "$tmp/cxx"
    echo "ok"
else
    echo "no C++ compiler; skipped"
fi

step "run them"
"$tmp/devices"
"$tmp/classify" "$src/tests/fixtures/simple_direct_lyap.model.safetensors" \
                "$src/tests/fixtures/simple_direct_lyap.input.safetensors"
"$tmp/train_tiny" "$tmp/tiny.safetensors"
"$tmp/train_tiny_static" "$tmp/tiny_static.safetensors"
"$tmp/lyapunov"
"$tmp/opencl_pipeline"
"$tmp/threads" 4
"$tmp/custom_network" "$tmp/custom.safetensors" >/dev/null
"$prefix/bin/snncl" describe --model "$tmp/custom.safetensors" >/dev/null
"$prefix/bin/snncl" infer --model "$tmp/tiny.safetensors" \
    --input "$src/tests/fixtures/simple_direct_lyap.input.safetensors" --output "$tmp/logits.safetensors"
echo
echo "check-install: all examples built and ran against $prefix"
