"""Philox4x32-10 as cl/philox.cl computes it (vectorized and scalar, with the
Random123 known-answer vectors) and snncl's counter-based dropout mask. numpy."""
from typing import Tuple

import numpy as np

PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
STREAM_DROPOUT = 2         # third counter word, as SNN_STREAM_DROPOUT in cl/philox.cl
_M32 = 0xFFFFFFFF
# Random123 kat_vectors, "philox4x32 10" (the same as tests/test_kernels.c)
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((_M32, _M32, _M32, _M32), (_M32, _M32), (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
]


def philox4x32_10(ctr, key) -> np.ndarray:
    """Philox4x32-10 as in cl/philox.cl. ctr: (N, 4) words, key: (k0, k1).
    Returns (N, 4) uint32."""
    c = np.asarray(ctr, dtype=np.uint64).reshape(-1, 4)
    c0, c1, c2, c3 = (c[:, i].copy() for i in range(4))
    k0, k1 = int(key[0]) & _M32, int(key[1]) & _M32
    m0, m1, mask = np.uint64(PHILOX_M0), np.uint64(PHILOX_M1), np.uint64(_M32)
    for _ in range(10):
        p0 = m0 * c0                      # < 2^64: exact in uint64
        p1 = m1 * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & mask,
                          (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & mask)
        k0 = (k0 + PHILOX_W0) & _M32
        k1 = (k1 + PHILOX_W1) & _M32
    return np.stack([c0, c1, c2, c3], 1).astype(np.uint32)


def _philox_scalar(ctr, key):
    """Plain-integer Philox4x32-10, transcribed from cl/philox.cl."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0, p1 = PHILOX_M0 * c0, PHILOX_M1 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & _M32, (p0 >> 32) ^ c3 ^ k1, p0 & _M32
        k0, k1 = (k0 + PHILOX_W0) & _M32, (k1 + PHILOX_W1) & _M32
    return (c0, c1, c2, c3)


def philox_self_test():
    """Known-answer vectors (both implementations), and the vectorized dropout
    mask against the scalar Philox element by element."""
    for ctr, key, want in PHILOX_KAT:
        got = tuple(int(v) for v in philox4x32_10([ctr], key)[0])
        if got != want or _philox_scalar(ctr, key) != want:
            raise AssertionError(f"philox KAT {ctr}: {[hex(v) for v in got]} != {[hex(v) for v in want]}")
    B, Fn, p, seed = 3, 7, 0.25, 0x123456789abcdef
    m = dropout_mask(B, Fn, p, seed)
    thr, scale = dropout_threshold_scale(p)
    if thr != 1 << 30 or scale != float(np.float32(4.0) / np.float32(3.0)):
        raise AssertionError("dropout threshold/scale")
    for i in range(B * Fn):
        w = _philox_scalar((i >> 2, 0, STREAM_DROPOUT, 0), (seed & _M32, seed >> 32))[i & 3]
        if m[i // Fn, i % Fn] != (scale if w >= thr else 0.0):
            raise AssertionError(f"dropout mask element {i}")


def dropout_threshold_scale(p: float) -> Tuple[int, float]:
    """(threshold, scale) as snncl computes them in float32: an element is kept
    iff its 32-bit word >= threshold = (uint64)(float32(p) * 2^32f); a kept
    element is multiplied by float32(1) / (float32(1) - float32(p))."""
    pf = np.float32(p)
    thr = int(np.floor(pf * np.float32(4294967296.0)))
    scale = float(np.float32(1.0) / (np.float32(1.0) - pf))
    return thr, scale


def dropout_mask(B: int, Fn: int, p: float, seed: int) -> np.ndarray:
    """The (B, F) float64 mask: element i = b*F + j uses word (i & 3) of
    Philox4x32-10(counter (i >> 2, 0, STREAM_DROPOUT, 0), key (seed lo, seed hi))."""
    n = B * Fn
    i = np.arange(n, dtype=np.uint64)
    ctr = np.stack([i >> np.uint64(2), np.zeros(n, np.uint64), np.full(n, STREAM_DROPOUT, np.uint64),
                    np.zeros(n, np.uint64)], 1)
    words = philox4x32_10(ctr, (seed & _M32, (seed >> 32) & _M32))[np.arange(n), (i & np.uint64(3)).astype(np.int64)]
    thr, scale = dropout_threshold_scale(p)
    return np.where(words.astype(np.uint64) >= np.uint64(thr), scale, 0.0).reshape(B, Fn)
