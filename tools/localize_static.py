#!/usr/bin/env python3
"""Makes the installed static library: every object of the input archive linked into
one relocatable object whose hidden symbols (everything but SNN_API) are then made
local, so that a program linking libsnncl.a cannot collide with snncl's internal
names (snn_launch, snn_gemm, ...), as it cannot with the shared library.

    localize_static.py CC OBJCOPY AR IN.a OUT.a
"""
import os
import subprocess
import sys
import tempfile


def main():
    cc, objcopy, ar, archive, out = sys.argv[1:6]
    with tempfile.TemporaryDirectory() as tmp:
        with open(archive, 'rb') as f:
            thin = f.read(8) == b'!<thin>\n'
        if thin:  # meson's archives that are not installed: members are files elsewhere
            names = subprocess.run([ar, 't', archive], check=True, capture_output=True, text=True).stdout.split()
            # GNU ar prints them as paths from the current directory
            objects = [n if os.path.exists(n) else os.path.join(os.path.dirname(archive), n) for n in names]
        else:
            subprocess.run([ar, 'x', os.path.abspath(archive)], cwd=tmp, check=True)
            objects = [os.path.join(tmp, f) for f in sorted(os.listdir(tmp)) if f.endswith('.o')]
        if not objects:
            sys.exit(f'{archive}: no objects')
        merged = os.path.join(tmp, 'snncl.o')
        subprocess.run([cc, '-r', '-nostdlib', '-o', merged] + objects, check=True)
        subprocess.run([objcopy, '--localize-hidden', merged], check=True)
        if os.path.exists(out):
            os.remove(out)
        subprocess.run([ar, 'rcs', out, merged], check=True)


if __name__ == '__main__':
    main()
