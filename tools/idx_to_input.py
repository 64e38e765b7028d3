#!/usr/bin/env python3
"""Writes images of an IDX dataset (MNIST, Fashion-MNIST; plain or .gz) as an snncl
input file: tensor 'input' F32 (B, 1, H, W) scaled to [0, 1] as snncl's datasets are,
and with --labels also tensor 'labels' I64 (B,) in a second file.

    python3 tools/idx_to_input.py /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \\
        --index 0 --index 1 --output input.safetensors \\
        --labels /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz --labels-output labels.safetensors

Python 3 standard library only.
"""
import argparse
import gzip
import json
import struct
import sys


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("%s: not an IDX file of unsigned bytes" % path)
    ndim = raw[3]
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    data = raw[4 + 4 * ndim:]
    n = 1
    for d in dims:
        n *= d
    if len(data) != n:
        raise ValueError("%s: %d bytes of data for dimensions %s" % (path, len(data), dims))
    return dims, data


def write_safetensors(path, name, dtype, shape, payload):
    header = {name: {"dtype": dtype, "shape": list(shape), "data_offsets": [0, len(payload)]}}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + payload)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", help="IDX image file (N x H x W bytes), plain or .gz")
    ap.add_argument("--index", type=int, action="append", help="image index (repeatable; default 0)")
    ap.add_argument("--output", default="input.safetensors")
    ap.add_argument("--labels", help="IDX label file of the same images")
    ap.add_argument("--labels-output", default="labels.safetensors")
    args = ap.parse_args(argv)
    dims, pixels = read_idx(args.images)
    if len(dims) != 3:
        sys.exit("%s: expected 3 dimensions (N, H, W), got %s" % (args.images, dims))
    n, h, w = dims
    indices = args.index or [0]
    for i in indices:
        if not 0 <= i < n:
            sys.exit("index %d is outside [0, %d)" % (i, n))
    values = []
    for i in indices:
        values += [b / 255.0 for b in pixels[i * h * w:(i + 1) * h * w]]
    write_safetensors(args.output, "input", "F32", (len(indices), 1, h, w),
                      struct.pack("<%df" % len(values), *values))
    print("wrote %s: input (%d, 1, %d, %d)" % (args.output, len(indices), h, w))
    if args.labels:
        (ln,), labels = read_idx(args.labels)
        if ln != n:
            sys.exit("%s: %d labels for %d images" % (args.labels, ln, n))
        chosen = [labels[i] for i in indices]
        write_safetensors(args.labels_output, "labels", "I64", (len(indices),),
                          struct.pack("<%dq" % len(chosen), *chosen))
        print("wrote %s: labels %s" % (args.labels_output, chosen))


if __name__ == "__main__":
    main(sys.argv[1:])
