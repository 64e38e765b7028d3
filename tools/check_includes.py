#!/usr/bin/env python3
"""The include graph of src/: fails on a cycle, and on a CLI file that includes an
internal header (src/cli is a client of the public API: include/snncl.h and
include/snncl_opencl.h).

Each module is one node: src/core/gemm.c and src/core/gemm.h are "core/gemm". An
edge a -> b means a file of a includes a header of b. Headers are resolved as the
compiler does: the including file's folder, then the include directories of
meson.build (generated headers such as cl_sources.h are not in src/ and are left out).

usage: check_includes.py [--dot] [SRC_DIR]
  --dot   print the graph (one "a -> b" line per edge) for docs/guide.md and exit 0
"""

import os
import re
import sys

INCLUDE_DIRS = ["core", "ops", "model", "train"]  # as meson.build's `inc`, relative to src/
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
PUBLIC_HEADERS = {"snncl.h", "snncl_opencl.h", "snncl_mpi.h"}  # include/: all the CLI may use of the library

# CLI files that still reach inside the library, each with the headers it may include,
# until the public API covers what they need. The check fails on any other.
CLI_EXCEPTIONS = {
}


def modules(src):
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith((".c", ".h")):
                path = os.path.relpath(os.path.join(root, n), src)
                files[path] = open(os.path.join(root, n), encoding="utf-8").read()
    return files


def resolve(src, including, header):
    for d in [os.path.dirname(including)] + INCLUDE_DIRS:
        cand = os.path.normpath(os.path.join(d, header))
        if os.path.exists(os.path.join(src, cand)):
            return cand
    return None


def node(path):
    return os.path.splitext(path)[0]


def graph(src, files):
    edges, cli_bad = {}, []
    for path, text in sorted(files.items()):
        a = node(path)
        edges.setdefault(a, set())
        for header in INCLUDE_RE.findall(text):
            target = resolve(src, path, header)
            if path.startswith("cli/") and header not in PUBLIC_HEADERS:
                local = target is not None and target.startswith("cli/")
                if not local and header not in CLI_EXCEPTIONS.get(path, set()):
                    cli_bad.append(f"{path} includes internal header {header}")
            if target is None:
                continue
            b = node(target)
            if b != a:
                edges[a].add(b)
                edges.setdefault(b, set())
    return edges, cli_bad


def cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    files = modules(src)
    edges, cli_bad = graph(src, files)
    if "--dot" in sys.argv:
        for a in sorted(edges):
            if edges[a]:
                print(f"{a} -> {', '.join(sorted(edges[a]))}")
        return 0
    found = cycles(edges)
    for comp in found:
        print("include cycle among: " + ", ".join(comp))
    for line in cli_bad:
        print(line)
    if found or cli_bad:
        return 1
    print(f"include graph of {len(edges)} modules: no cycles; src/cli includes only the public headers and its own "
          f"(exceptions: {', '.join(sorted(CLI_EXCEPTIONS)) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
