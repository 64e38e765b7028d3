#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/: small valid
files of each format plus truncated and hostile variants. Deterministic (gzip without a
timestamp), so rerunning it changes nothing. Standard library only.

    python3 fuzz/make_corpus.py
"""
import gzip
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from snnpy import safetensors as st  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")
FIXTURE_MODEL = os.path.join(ROOT, "tests", "fixtures", "train_simple_direct.model.safetensors")


def gz(data):
    return gzip.compress(data, mtime=0)


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------- safetensors --

def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes), laid out in order."""
    return st.encode(tensors, metadata, pad=pad)


def raw_header(text, data=b""):
    text = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(text)) + text + data


def make_safetensors():
    t = "safetensors"
    f32 = struct.pack("<4f", 1.0, -2.5, 0.0, 3.25)
    f64 = struct.pack("<2d", 1e300, -1e-300)
    i64 = struct.pack("<q", -7)
    valid = {
        "empty": safetensors([]),
        "f32_matrix": safetensors([("w", "F32", [2, 2], f32)]),
        "f64_i64_scalar": safetensors([("a", "F64", [2], f64), ("n", "I64", [], i64)]),
        "zero_sized": safetensors([("z", "F32", [0, 3], b""), ("v", "F32", [1], f32[:4])]),
        "metadata": safetensors([("x", "F32", [4], f32)],
                                {"model": "simple", "T": "4", "height": "28", "width": "28",
                                 "caf\u00e9": "\u2603"}),
        "unpadded": safetensors([("x", "F32", [1, 1, 1, 1], f32[:4])], pad=False),
    }
    for name, data in valid.items():
        write(t, name, data)
    with open(FIXTURE_MODEL, "rb") as f:
        model = f.read()
    write(t, "model_fixture", model)

    good = valid["f32_matrix"]
    write(t, "truncated_data", good[:-3])
    write(t, "truncated_header", good[:20])
    write(t, "short_length", good[:5])
    write(t, "header_too_long", struct.pack("<Q", 1 << 40) + good[8:])
    hostile = {
        "overlap": '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                   '"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}',
        "duplicate_name": '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                          '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        "bad_dtype": '{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}',
        "huge_shape": '{"a":{"dtype":"F64","shape":[9007199254740992,9007199254740992],'
                      '"data_offsets":[0,8]}}',
        "negative_offset": '{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}',
        "float_offset": '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}',
        "too_many_dims": '{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}',
        "metadata_not_string": '{"__metadata__":{"k":1}}',
        "metadata_twice": '{"__metadata__":{},"__metadata__":{}}',
        "duplicate_meta_key": '{"__metadata__":{"k":"a","k":"b"}}',
        "nul_escape_names": '{"a\\u0000b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                            '"a\\u0000c":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        "trailing_garbage": '{} x',
        "not_object": '[1,2,3]',
        "deep_nesting": '{"a":' + '[' * 2000 + ']' * 2000 + '}',
    }
    for name, text in hostile.items():
        write(t, name, raw_header(text, b"\0" * 8))
    write(t, "bad_utf8", raw_header(b'{"\xc3\x28":{}}'))
    write(t, "embedded_nul", raw_header(b'{}\0   '))


# --------------------------------------------------------------------- idx --

def idx(ndim, dims, payload, type_code=0x08):
    return bytes([0, 0, type_code, ndim]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx_input(labels, images):
    """The fuzz_idx input: 2-byte little-endian label-file length, labels, images."""
    return struct.pack("<H", len(labels)) + labels + images


def make_idx():
    t = "idx"
    n, h, w = 3, 4, 5
    pixels = bytes((i * 37) % 256 for i in range(n * h * w))
    labels = idx(1, [n], bytes([9, 0, 4]))
    images = idx(3, [n, h, w], pixels)
    write(t, "plain", idx_input(labels, images))
    write(t, "gzip_both", idx_input(gz(labels), gz(images)))
    write(t, "gzip_images", idx_input(labels, gz(images)))
    write(t, "one_pixel", idx_input(idx(1, [1], b"\x01"), idx(3, [1, 1, 1], b"\xff")))
    write(t, "truncated_images", idx_input(labels, images[:-7]))
    write(t, "truncated_gzip", idx_input(labels, gz(images)[:-10]))
    write(t, "extra_bytes", idx_input(labels, images + b"\0"))
    write(t, "bad_label", idx_input(idx(1, [n], bytes([9, 10, 4])), images))
    write(t, "count_mismatch", idx_input(idx(1, [2], bytes([1, 2])), images))
    write(t, "wrong_type", idx_input(labels, idx(3, [n, h, w], pixels, type_code=0x0D)))
    write(t, "huge_claim", idx_input(labels, idx(3, [0xffffffff, 16384, 1024], b"")))
    write(t, "bad_magic", idx_input(b"\x01\x02\x03\x04", images))
    write(t, "empty", b"\0\0")


# ----------------------------------------------------------------- cifar10 --

def cifar_record(label, seed):
    return bytes([label]) + bytes((seed * 7 + i * 13) % 256 for i in range(3072))


def make_cifar10():
    t = "cifar10"
    write(t, "one_record", cifar_record(3, 1))
    write(t, "two_records", cifar_record(0, 2) + cifar_record(9, 3))
    write(t, "bad_label", cifar_record(10, 4))
    write(t, "truncated", cifar_record(1, 5)[:-1])
    write(t, "extra_byte", cifar_record(1, 6) + b"\0")


# --------------------------------------------------------------------- cli --

def make_cli():
    t = "cli"
    cases = {
        "all_kinds": [b"--flag", b"--text", b"hello", b"--number=-42", b"--real", b"-0",
                      b"--big", b"18446744073709551615"],
        "required": [b"--needed=/tmp/x", b"--real=3.40282347e+38"],
        "help": [b"--number", b"7", b"--help"],
        "twice": [b"--flag", b"--flag"],
        "flag_value": [b"--flag=1"],
        "missing_value": [b"--text"],
        "bad_numbers": [b"--number", b"2147483648", b"--real", b"1e39", b"--big", b" -1"],
        "subnormal": [b"--real", b"1.40129846e-45"],
        "unknown": [b"--nope", b"-x", b"plain"],
    }
    for name, args in cases.items():
        first = b"\1" if name == "required" else b"\0"  # bit 0: --needed is required
        write(t, name, first + b"\0".join(args))

# ------------------------------------------------------------ model config --

def make_model_config():
    t = "model_config"
    with open(FIXTURE_MODEL, "rb") as f:
        write(t, "model_fixture", f.read())
    f32 = struct.pack("<f", 1.0)
    conv = [("blocks.0.conv.weight", "F32", [2, 1, 1, 1], f32 * 2),
            ("fc.weight", "F32", [10, 1], f32 * 10)]
    base = {"model": "simple", "height": "28", "width": "28", "T": "4", "encoding": "direct",
            "encoding_gain": "1", "dropout": "0.2", "in_channels": "1", "num_classes": "10"}
    write(t, "simple_shapes", safetensors(conv, base))
    write(t, "simple_no_model_key", safetensors(conv, {"height": "8", "width": "8"}))
    write(t, "vgg_shapes", safetensors(
        [("blocks.%d.0.weight" % i, "F32", [1, 1, 1, 1], f32) for i in range(3)]
        + [("fc1.weight", "F32", [1, 1], f32), ("fc2.weight", "F32", [10, 1], f32 * 10)],
        {"model": "vgg", "height": "32", "width": "32"}))
    for key, value in [("height", "0"), ("width", "99999999999"), ("T", "-1"), ("dropout", "nan"),
                       ("encoding", "spikes"), ("in_channels", "3"), ("model", "resnet"),
                       ("encoding_gain", "1e39")]:
        write(t, "bad_" + key, safetensors(conv, dict(base, **{key: value})))


# ---------------------------------------------------------------- network --

def make_network():
    import json
    t = "network"
    with open(os.path.join(ROOT, "examples", "fashion_net.json"), "rb") as f:
        write(t, "fashion_net", f.read())
    conv = {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1, "bias": False}
    base = {"input": [2, 9, 9], "num_classes": 3, "T": 3, "encoding": "rate", "encoding_gain": 0.5,
            "layers": [conv, {"type": "batchnorm2d", "eps": 1e-3, "momentum": 0.2},
                       {"type": "leaky", "beta": 0.8, "threshold": 0.5, "reset_mechanism": "zero",
                        "reset_delay": False, "surrogate": {"type": "sigmoid", "slope": 5},
                        "learn_beta": True, "learn_threshold": True},
                       {"type": "maxpool2d", "kernel_size": [2, 2], "stride": None},
                       {"type": "avgpool2d", "kernel_size": 2, "stride": 1},
                       {"type": "flatten"}, {"type": "dropout", "p": 0.1},
                       {"type": "linear", "out_features": 3, "bias": False}],
            "readout": []}
    write(t, "every_layer", json.dumps(base).encode())
    write(t, "readout", json.dumps(dict(base, layers=base["layers"][:-1],
                                        readout=[{"type": "linear", "out_features": 3}])).encode())
    write(t, "unknown_key", json.dumps(dict(base, layers=[dict(conv, kernal_size=3)])).encode())
    write(t, "too_small", json.dumps(dict(base, input=[1, 2, 2])).encode())
    write(t, "not_json", b'{"input": [1, 8, 8], "layers": [')


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    make_safetensors()
    make_idx()
    make_cifar10()
    make_cli()
    make_model_config()
    make_network()
    total = 0
    for directory, _, names in os.walk(CORPUS):
        for name in names:
            total += os.path.getsize(os.path.join(directory, name))
    print(f"corpus: {total} bytes under {os.path.relpath(CORPUS, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
