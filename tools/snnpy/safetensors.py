"""The safetensors format (https://github.com/huggingface/safetensors): an 8-byte
little-endian header length, a JSON header (tensors' dtype, shape and data offsets,
and "__metadata__" strings), the tensors' bytes. One implementation for every Python
tool and test of snncl, no `safetensors` package:

- Tensor, encode, decode, read, write: the standard library alone (raw little-endian
  bytes), for the CLI tests and the fuzz corpus, which run without numpy;
- st_encode, st_decode, st_read, st_write: numpy arrays, exact dtype conversion and a
  strict layout check, for the fixture and interop tools.
"""
import json
import pathlib
import struct

_CODES = {"F32": ("f", 4), "F64": ("d", 8), "I64": ("q", 8)}


class Tensor:
    """One tensor: dtype name, shape list and little-endian raw bytes (and, when read
    from a file, the offset of its bytes in the data section)."""

    def __init__(self, dtype, shape, data, offset=None):
        if dtype not in _CODES:
            raise ValueError("unsupported dtype %r" % dtype)
        self.dtype = dtype
        self.shape = [int(s) for s in shape]
        self.data = bytes(data)
        self.offset = offset
        if len(self.data) != self.count() * _CODES[dtype][1]:
            raise ValueError("%d bytes for %s %s" % (len(self.data), dtype, self.shape))

    def count(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    def values(self):
        code, _ = _CODES[self.dtype]
        return list(struct.unpack("<%d%s" % (self.count(), code), self.data))

    @staticmethod
    def of(dtype, shape, values):
        code, _ = _CODES[dtype]
        values = list(values)
        return Tensor(dtype, shape, struct.pack("<%d%s" % (len(values), code), *values))


def encode(entries, metadata=None, pad=True):
    """entries: (name, dtype, shape, raw bytes) in the order of their data. The header
    is padded with spaces to a multiple of 8 bytes unless pad is False (hostile files
    for the fuzz corpus); metadata (a dict, may be None) comes first."""
    header, chunks, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("ascii")
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def decode(blob, what="safetensors"):
    """Returns (dict name -> Tensor in file order, metadata dict or None)."""
    if len(blob) < 8:
        raise ValueError("%s: too short" % what)
    (header_len,) = struct.unpack("<Q", blob[:8])
    if 8 + header_len > len(blob):
        raise ValueError("%s: header length %d past the end" % (what, header_len))
    header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    data = blob[8 + header_len:]
    meta = header.pop("__metadata__", None)
    items = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    tensors = {}
    for name, e in items:
        begin, end = e["data_offsets"]
        if not 0 <= begin <= end <= len(data):
            raise ValueError("%s: tensor %s: bad data_offsets %r" % (what, name, e["data_offsets"]))
        tensors[name] = Tensor(e["dtype"], e["shape"], data[begin:end], begin)
    return tensors, meta


def read(path):
    """decode() of a file."""
    with open(path, "rb") as f:
        return decode(f.read(), str(path))


def write(path, tensors, meta=None):
    """Writes tensors (dict name -> Tensor, in its order) and optional metadata."""
    blob = encode([(n, t.dtype, t.shape, t.data) for n, t in tensors.items()], meta)
    with open(path, "wb") as f:
        f.write(blob)


# ------------------------------------------------------------------ numpy arrays --
def _np():
    import numpy  # only the array functions need it
    return numpy


def _dtypes():
    np = _np()
    return {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}


def _as_array(dtype: str, value):
    """Converts a tensor/array to a C-contiguous little-endian array of `dtype`,
    refusing any conversion that changes a value."""
    np = _np()
    if hasattr(value, "detach"):  # a torch.Tensor
        value = value.detach().cpu().numpy()
    src = np.asarray(value)
    arr = src.astype(_dtypes()[dtype], order="C", copy=True)   # (not ascontiguousarray: keeps 0-d)
    back = arr.astype(src.dtype) if src.dtype.kind == "f" else arr
    if src.dtype.kind == "f":
        if not np.array_equal(back, src):
            raise ValueError(f"value not exactly representable as {dtype}")
    elif not np.array_equal(arr.astype(np.int64), src.astype(np.int64)):
        raise ValueError(f"integer value not representable as {dtype}")
    return arr


def st_encode(tensors, metadata) -> bytes:
    """tensors: (name, dtype, value) in any order. Data is laid out with 8-byte
    dtypes first, then 4-byte ones (each group in the given order), so every
    tensor is aligned to its element size (the header is padded to 8)."""
    dts = _dtypes()
    arrays = [(name, dt, _as_array(dt, v)) for name, dt, v in tensors]
    order = sorted(range(len(arrays)), key=lambda i: (-dts[arrays[i][1]].itemsize, i))
    if metadata and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("metadata must map str to str")
    names = set()
    for name, _, _ in arrays:
        if name in names or name == "__metadata__":
            raise ValueError(f"duplicate tensor name {name}")
        names.add(name)
    entries = [(arrays[i][0], arrays[i][1], arrays[i][2].shape, arrays[i][2].tobytes(order="C")) for i in order]
    return encode(entries, dict(metadata) if metadata else None)


def st_decode(blob: bytes):
    """Returns (tensors, metadata, names_in_file_order); tensors maps a name to
    (dtype, numpy array). decode() on top of a strict layout: a header padded to 8
    bytes, and the tensors' bytes back to back, covering the data exactly."""
    np = _np()
    dts = _dtypes()
    header_len = struct.unpack("<Q", blob[:8])[0] if len(blob) >= 8 else 0
    if header_len % 8:
        raise ValueError(f"bad header length {header_len}")
    tensors, meta = decode(blob)
    pos = 0
    for name, t in tensors.items():  # in file order
        if t.offset != pos:
            raise ValueError(f"{name}: hole or overlap at {pos}")
        pos += len(t.data)
    if pos != len(blob) - 8 - header_len:
        raise ValueError("trailing bytes after the last tensor")
    arrays = {name: (t.dtype, np.frombuffer(t.data, dtype=dts[t.dtype]).reshape(t.shape).copy())
              for name, t in tensors.items()}
    return arrays, meta or {}, list(tensors)


def st_write(path: pathlib.Path, tensors, metadata) -> int:
    blob = st_encode(tensors, metadata)
    path.write_bytes(blob)
    return len(blob)


def st_read(path: pathlib.Path):
    return st_decode(path.read_bytes())
