#!/usr/bin/env python3
"""Generates the parity fixtures in tests/fixtures/ from the PyTorch seed.

    /usr/bin/python3 tools/gen_fixtures.py            # write all cases, then self-check
    /usr/bin/python3 tools/gen_fixtures.py --check    # only re-read and re-verify
    options: --seed-dir DIR (default <repo>/../shared/seed), --out DIR, --cases a,b

Needs torch and snntorch 0.9.4 (Debian's /usr/bin/python3 has them). Output is
deterministic: running it twice gives byte-identical files.

For each case NAME it writes
    NAME.model.safetensors     state_dict() of the seed model, floats F32, ints I64
    NAME.input.safetensors     `input`, (B,C,H,W) or (B,T,C,H,W) for encoding none
    NAME.perturb.safetensors   `perturb.<l>`, unit-scale N(0,1), one per LIF layer
                               (only for cases with the Lyapunov estimate)
    NAME.expected.safetensors  `logits` F64, with the estimate `lyapunov` (1,) and
                               `lyapunov_per_sample` (B,), both F64
All model values, inputs and perturbations are float32-exact; expected values are
computed in float64. Every case is checked for healthy firing (5-60% of
neuron-steps per LIF layer, on both trajectories) and for a minimum distance of
MARGIN_MIN between any membrane and its threshold, so a float32 implementation
cannot flip a spike; a draw that fails is redrawn with the next seed.

Layout, for extending (e.g. gradient fixtures): CASES holds CaseConfig entries;
build_model(cfg) makes the float64 eval model, draw_case(cfg) draws parameters,
input and perturbation, compute_expected(...) runs the reference forward,
write_case(...) writes the files; st_encode/st_decode are the safetensors
writer/reader; load_case(...) rebuilds everything from the files.
"""
import argparse
import copy
import dataclasses
import hashlib
import importlib.util
import json
import math
import pathlib
import struct
import sys
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_SEED_DIR = REPO.parent / "shared" / "seed"
DEFAULT_OUT = REPO / "tests" / "fixtures"

MARGIN_MIN = 2e-5          # min |mem - threshold| over every LIF evaluation
RATE_MIN, RATE_MAX = 0.05, 0.60
RATE_TARGET_LO, RATE_TARGET_HI = 0.12, 0.40   # per-layer calibration target, drawn
MAX_ATTEMPTS = 200
BN_EPS = 1e-5

SEED = None                # the seed module, set by load_seed()
SimpleNet = None           # subclasses of the seed's models, set by load_seed()
VGGNet = None


# --------------------------------------------------------------------------
# safetensors writer / reader (own implementation, no `safetensors` package)
# --------------------------------------------------------------------------
_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}


def _as_array(dtype: str, value) -> np.ndarray:
    """Converts a tensor/array to a C-contiguous little-endian array of `dtype`,
    refusing any conversion that changes a value."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    src = np.asarray(value)
    arr = src.astype(_DTYPES[dtype], order="C", copy=True)   # (not ascontiguousarray: keeps 0-d)
    back = arr.astype(src.dtype) if src.dtype.kind == "f" else arr
    if src.dtype.kind == "f":
        if not np.array_equal(back, src):
            raise ValueError(f"value not exactly representable as {dtype}")
    elif not np.array_equal(arr.astype(np.int64), src.astype(np.int64)):
        raise ValueError(f"integer value not representable as {dtype}")
    return arr


def st_encode(tensors: Sequence[Tuple[str, str, object]], metadata: Dict[str, str]) -> bytes:
    """tensors: (name, dtype, value) in any order. Data is laid out with 8-byte
    dtypes first, then 4-byte ones (each group in the given order), so every
    tensor is aligned to its element size (the header is padded to 8)."""
    arrays = [(name, dt, _as_array(dt, v)) for name, dt, v in tensors]
    order = sorted(range(len(arrays)), key=lambda i: (-_DTYPES[arrays[i][1]].itemsize, i))
    header: Dict[str, object] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must map str to str")
        header["__metadata__"] = dict(metadata)
    chunks = []
    off = 0
    for i in order:
        name, dt, arr = arrays[i]
        if name in header or name == "__metadata__":
            raise ValueError(f"duplicate tensor name {name}")
        raw = arr.tobytes(order="C")
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("ascii")
    hjson += b" " * ((-len(hjson)) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(chunks)


def st_decode(blob: bytes):
    """Returns (tensors, metadata, names_in_file_order); tensors maps a name to
    (dtype, numpy array). Validates the layout strictly."""
    if len(blob) < 8:
        raise ValueError("file too short")
    (n,) = struct.unpack("<Q", blob[:8])
    if n % 8 or 8 + n > len(blob):
        raise ValueError(f"bad header length {n}")
    header = json.loads(blob[8:8 + n].decode("ascii"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    spans = []
    for name, info in header.items():
        dt = info["dtype"]
        shape = tuple(int(s) for s in info["shape"])
        a, b = info["data_offsets"]
        if dt not in _DTYPES:
            raise ValueError(f"{name}: unsupported dtype {dt}")
        count = int(np.prod(shape)) if shape else 1
        if b - a != count * _DTYPES[dt].itemsize or not (0 <= a <= b <= len(data)):
            raise ValueError(f"{name}: bad data_offsets {a},{b}")
        arr = np.frombuffer(data, dtype=_DTYPES[dt], count=count, offset=a).reshape(shape).copy()
        tensors[name] = (dt, arr)
        spans.append((a, b, name))
    spans.sort()
    pos = 0
    for a, b, name in spans:
        if a != pos:
            raise ValueError(f"{name}: hole or overlap at {pos}")
        pos = b
    if pos != len(data):
        raise ValueError("trailing bytes after the last tensor")
    return tensors, meta, [s[2] for s in spans]


def st_write(path: pathlib.Path, tensors, metadata) -> int:
    blob = st_encode(tensors, metadata)
    path.write_bytes(blob)
    return len(blob)


def st_read(path: pathlib.Path):
    return st_decode(path.read_bytes())


# --------------------------------------------------------------------------
# the seed and the (minimal) shape generalization
# --------------------------------------------------------------------------
def load_seed(seed_dir: pathlib.Path):
    """Imports conv_lyapunov_snn.py from seed_dir and defines SimpleNet/VGGNet."""
    global SEED, SimpleNet, VGGNet
    path = pathlib.Path(seed_dir) / "conv_lyapunov_snn.py"
    spec = importlib.util.spec_from_file_location("conv_lyapunov_snn", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    SEED = mod

    class _SimpleNet(mod.ConvLyapunovSNN):
        """The seed's ConvLyapunovSNN; only the input size is no longer 32x32:
        fc's in_features and the membranes of _init_mem follow (height, width).
        The membrane of block i has its conv output size, H >> i by W >> i."""

        def __init__(self, height=32, width=32, **kw):
            super().__init__(**kw)
            L = self.num_layers
            fc_in = self.channels[-1] * (height >> L) * (width >> L)
            if fc_in != self.fc.in_features:
                self.fc = nn.Linear(fc_in, self.fc.out_features)
                nn.init.xavier_uniform_(self.fc.weight)
                nn.init.zeros_(self.fc.bias)
            self._hw = (height, width)

        def _init_mem(self, batch_size, device, dtype):
            H, W = self._hw
            return [torch.zeros(batch_size, ch, H >> i, W >> i, device=device, dtype=dtype)
                    for i, ch in enumerate(self.channels)]

        def forward(self, x, *args, **kw):
            self._hw = tuple(x.shape[-2:])
            return super().forward(x, *args, **kw)

    class _VGGNet(mod.VGGLyapunovSNN):
        """The seed's VGGLyapunovSNN with fc1's in_features following the input
        size (256 * (H >> 3) * (W >> 3)). The seed's own forward is only used
        without the estimate: its hard-coded 32x32 zero membranes are replaced by
        snnTorch's Leaky with zeros_like(input) when the shapes differ, which is
        the same zero initial state, so its logits are exact at any size."""

        def __init__(self, height=32, width=32, **kw):
            super().__init__(**kw)
            fc_in = 256 * (height >> 3) * (width >> 3)
            if fc_in != self.fc1.in_features:
                self.fc1 = nn.Linear(fc_in, self.fc1.out_features)
                nn.init.xavier_uniform_(self.fc1.weight)
                nn.init.zeros_(self.fc1.bias)

    SimpleNet, VGGNet = _SimpleNet, _VGGNet
    return mod


def _keep_dtype(fn):
    """snnTorch's fast sigmoid returns float32 spikes; cast back to the input's dtype."""
    if getattr(fn, "_keeps_dtype", False):
        return fn

    def inner(x):
        return fn(x).to(x.dtype)
    inner._keeps_dtype = True
    return inner


# --------------------------------------------------------------------------
# case configuration and model construction
# --------------------------------------------------------------------------
@dataclasses.dataclass
class CaseConfig:
    name: str
    model: str                         # simple | vgg
    in_channels: int
    height: int
    width: int
    num_classes: int
    batch: int
    T: int
    encoding: str                      # direct | none
    lyapunov: bool
    description: str
    seed: int
    channels: Tuple[int, ...] = (64, 128, 256)   # simple only
    beta: Union[float, Tuple[float, ...]] = 0.9
    threshold: Union[float, Tuple[float, ...]] = 1.0
    lyap_eps: float = 1e-4
    dropout: Optional[float] = None    # None: the seed's default for the model
    encoding_gain: float = 1.0

    def dropout_p(self):
        if self.dropout is not None:
            return self.dropout
        return 0.2 if self.model == "simple" else 0.3


CASES: List[CaseConfig] = [
    CaseConfig("simple_direct_lyap", "simple", 1, 8, 8, 10, batch=3, T=5, encoding="direct",
               lyapunov=True, channels=(4, 8), seed=1000,
               description="simple [4,8], 1x8x8, 10 classes, B=3 T=5, direct, default beta/thr, "
                           "estimate eps 1e-4"),
    CaseConfig("simple_none_rect_lyap", "simple", 3, 12, 10, 7, batch=2, T=7, encoding="none",
               lyapunov=True, channels=(6, 8, 12), beta=(0.8, 0.95, 0.7),
               threshold=(0.5, 1.0, 1.3), seed=2000,
               description="simple [6,8,12], 3x12x10 (odd sizes, floor pooling), 7 classes, "
                           "B=2 T=7, encoding none, per-layer beta (0.8,0.95,0.7) and "
                           "threshold (0.5,1.0,1.3), estimate eps 1e-4"),
    CaseConfig("simple_direct_nolyap", "simple", 2, 16, 16, 5, batch=4, T=4, encoding="direct",
               lyapunov=False, channels=(8,), beta=0.5, threshold=0.75, seed=3000,
               description="simple [8], 2x16x16, 5 classes, B=4 T=4, direct, beta 0.5 thr 0.75, "
                           "no estimate"),
    CaseConfig("simple_defaults_lyap", "simple", 3, 32, 32, 10, batch=2, T=4, encoding="direct",
               lyapunov=True, channels=(16, 32, 64), seed=4000,
               description="simple [16,32,64], 3x32x32 (the seed's size), 10 classes, B=2 T=4, "
                           "direct, estimate eps 1e-4"),
    CaseConfig("vgg_direct_lyap", "vgg", 3, 8, 8, 10, batch=2, T=3, encoding="direct",
               lyapunov=True, seed=5000,
               description="vgg, 3x8x8, 10 classes, B=2 T=3, direct, Benettin estimate over all "
                           "7 LIF layers, eps 1e-4"),
    CaseConfig("vgg_none_nolyap", "vgg", 1, 16, 16, 10, batch=2, T=2, encoding="none",
               lyapunov=False, seed=6000,
               description="vgg, 1x16x16, 10 classes, B=2 T=2, encoding none, no estimate "
                           "(logits checked against the seed's own VGG forward)"),
    CaseConfig("simple_eps_lyap", "simple", 1, 8, 8, 10, batch=2, T=3, encoding="direct",
               lyapunov=True, channels=(4, 8), lyap_eps=1e-3, seed=7000,
               description="simple [4,8], 1x8x8, 10 classes, B=2 T=3, direct, estimate eps 1e-3"),
]


def _per_layer(v, n):
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError("per-layer value has the wrong length")
        return list(v)
    return [v] * n


def build_model(cfg: CaseConfig, height=None, width=None) -> nn.Module:
    """The seed model for cfg, float64, eval mode, spikes kept in float64.
    Per-layer beta/threshold are written into the LIF buffers (float32-exact).
    Initial weights come from the seed's own init under the global RNG."""
    h = cfg.height if height is None else height
    w = cfg.width if width is None else width
    scalar_beta = cfg.beta if not isinstance(cfg.beta, (tuple, list)) else 0.9
    scalar_thr = cfg.threshold if not isinstance(cfg.threshold, (tuple, list)) else 1.0
    if cfg.model == "simple":
        net = SimpleNet(height=h, width=w, in_channels=cfg.in_channels,
                        num_classes=cfg.num_classes, channels=list(cfg.channels), T=cfg.T,
                        beta=scalar_beta, threshold=scalar_thr, encoding=cfg.encoding,
                        encoding_gain=cfg.encoding_gain, dropout=cfg.dropout_p())
    elif cfg.model == "vgg":
        net = VGGNet(height=h, width=w, in_channels=cfg.in_channels,
                     num_classes=cfg.num_classes, T=cfg.T, beta=scalar_beta,
                     threshold=scalar_thr, encoding=cfg.encoding, dropout=cfg.dropout_p())
    else:
        raise ValueError(cfg.model)
    net = net.double().eval()
    lifs = lif_modules(net)
    for lif in lifs:
        lif.spike_grad = _keep_dtype(lif.spike_grad)
    for lif, b, t in zip(lifs, _per_layer(cfg.beta, len(lifs)), _per_layer(cfg.threshold, len(lifs))):
        with torch.no_grad():
            lif.beta.copy_(torch.tensor(b, dtype=torch.float32))
            lif.threshold.copy_(torch.tensor(t, dtype=torch.float32))
    return net


def lif_modules(net) -> List[nn.Module]:
    if isinstance(net, SEED.ConvLyapunovSNN):
        return [b.lif for b in net.blocks]
    return list(net.lifs) + [net.lif_fc]


class Stage:
    """One LIF layer: cur = norm(pre(h)) (norm may be None), spk = lif(cur),
    h_next = post(spk)."""

    def __init__(self, pre, norm, lif, post):
        self.pre, self.norm, self.lif, self.post = pre, norm, lif, post

    def current(self, h):
        y = self.pre(h)
        return self.norm(y) if self.norm is not None else y


def net_stages(net) -> Tuple[List[Stage], nn.Module]:
    """The LIF layers of either seed model in forward order, and the readout."""
    ident = nn.Identity()
    if isinstance(net, SEED.ConvLyapunovSNN):
        st = [Stage(b.conv, b.bn, b.lif, p) for b, p in zip(net.blocks, net.pools)]
        return st, net.fc
    st = []
    lif_idx = 0
    for block_layers, pool in zip(net.blocks, net.pools):
        for i in range(0, len(block_layers), 2):
            last = i + 2 >= len(block_layers)
            st.append(Stage(block_layers[i], block_layers[i + 1], net.lifs[lif_idx],
                            pool if last else ident))
            lif_idx += 1
    st.append(Stage(lambda h: net.fc1(h.reshape(h.shape[0], -1)), None, net.lif_fc, ident))
    return st, net.fc2


def mem_shapes(net, B, H, W) -> List[Tuple[int, ...]]:
    if isinstance(net, SEED.ConvLyapunovSNN):
        return [(B, ch, H >> i, W >> i) for i, ch in enumerate(net.channels)]
    return [(B, 64, H, W), (B, 64, H, W), (B, 128, H >> 1, W >> 1), (B, 128, H >> 1, W >> 1),
            (B, 256, H >> 2, W >> 2), (B, 256, H >> 2, W >> 2), (B, net.fc1.out_features)]


def encode(net, x):
    return net.encoder(x) if net.encoder is not None else x


# --------------------------------------------------------------------------
# recording firing rates and threshold margins (hooks on the Leaky modules)
# --------------------------------------------------------------------------
class LifRecorder:
    """Hooks every LIF layer. With two trajectories the calls alternate per
    layer (main, then perturbed, each step) in the seed's simple forward and in
    benettin_forward, so the call parity gives the trajectory. Also asserts
    that each membrane passed in has the input's shape (snnTorch would silently
    replace a mis-shaped membrane with zeros)."""

    def __init__(self, lifs, two_trajectories):
        self.n = len(lifs)
        self.two = two_trajectories
        self.calls = [0] * self.n
        self.spikes = [[0.0, 0.0] for _ in range(self.n)]
        self.count = [[0, 0] for _ in range(self.n)]
        self.margin = [[math.inf, math.inf] for _ in range(self.n)]
        self.digest = [[hashlib.sha256(), hashlib.sha256()] for _ in range(self.n)]
        self.handles = []
        for i, lif in enumerate(lifs):
            self.handles.append(lif.register_forward_pre_hook(self._pre))
            self.handles.append(lif.register_forward_hook(self._make_hook(i)))

    @staticmethod
    def _pre(module, args):
        cur, mem = args[0], args[1]
        if mem.shape != cur.shape:
            raise AssertionError(f"membrane shape {tuple(mem.shape)} != input {tuple(cur.shape)}")

    def _make_hook(self, i):
        def hook(module, args, out):
            spk, mem = out
            traj = self.calls[i] % 2 if self.two else 0
            self.calls[i] += 1
            self.spikes[i][traj] += float(spk.sum())
            self.digest[i][traj].update(spk.ne(0).cpu().numpy().tobytes())
            self.count[i][traj] += spk.numel()
            m = float((mem - module.threshold).abs().min())
            self.margin[i][traj] = min(self.margin[i][traj], m)
        return hook

    def close(self):
        for h in self.handles:
            h.remove()
        self.handles = []

    def rates(self, traj=0):
        return [self.spikes[i][traj] / self.count[i][traj] for i in range(self.n)]

    def spike_digests(self):
        """Per layer and trajectory, a hash of every spike pattern in call order."""
        return [[d.hexdigest() for d in layer] for layer in self.digest]

    def min_margin(self):
        return min(min(m[0], m[1]) for m in self.margin)


# --------------------------------------------------------------------------
# reference forward: the simple model's loop in the seed, generalized over
# stages, so it serves both models (Benettin estimate over every LIF layer)
# --------------------------------------------------------------------------
def _step(stages, x_t, mems):
    h = x_t
    new_mems = []
    for st, mem in zip(stages, mems):
        h, m = st.lif(st.current(h), mem)
        new_mems.append(m)
        h = st.post(h)
    return h, new_mems


def benettin_forward(net, x, compute_lyapunov=False, lyap_eps=1e-4, init_perturb=None):
    """Returns (logits, lyapunov mean or None, lyapunov per sample or None).
    Mirrors ConvLyapunovSNN.forward of the seed, layer list = all LIF layers."""
    stages, head = net_stages(net)
    x = encode(net, x)
    B, T = x.shape[0], x.shape[1]
    H, W = x.shape[-2], x.shape[-1]
    device, dtype = x.device, x.dtype
    mems = [torch.zeros(s, device=device, dtype=dtype) for s in mem_shapes(net, B, H, W)]
    spike_sum = None
    if compute_lyapunov:
        noise = init_perturb if init_perturb is not None else [torch.randn_like(m) for m in mems]
        mems_p = [m + lyap_eps * n for m, n in zip(mems, noise)]
        lyap_accum = torch.zeros(B, device=device, dtype=dtype)
    for t in range(T):
        x_t = x[:, t]
        h, mems = _step(stages, x_t, mems)
        spike_sum = h.view(B, -1) if spike_sum is None else spike_sum + h.view(B, -1)
        if compute_lyapunov:
            _, new_mems_p = _step(stages, x_t, mems_p)
            delta_sq = torch.zeros(B, device=device, dtype=dtype)
            for i in range(len(stages)):
                diff = new_mems_p[i] - mems[i]
                delta_sq += (diff ** 2).sum(dim=tuple(range(1, diff.dim())))
            delta = torch.sqrt(delta_sq + 1e-12)
            lyap_accum = lyap_accum + torch.log(delta / lyap_eps + 1e-12)
            for i in range(len(stages)):
                diff = new_mems_p[i] - mems[i]
                norm = torch.sqrt((diff ** 2).sum(dim=tuple(range(1, diff.dim())), keepdim=True) + 1e-12)
                new_mems_p[i] = mems[i] + lyap_eps * diff / norm
            mems_p = new_mems_p
    logits = head(net.dropout(spike_sum))
    if not compute_lyapunov:
        return logits, None, None
    per = lyap_accum / T
    return logits, per.mean(), per


def layerwise_forward(net, x, compute_lyapunov=False, lyap_eps=1e-4, init_perturb=None):
    """The same estimate computed layer by layer over all T steps (SPEC: each
    layer is renormalized on its own, so only d[b] couples the layers). An
    independent formulation used by --check to cross-check benettin_forward."""
    stages, head = net_stages(net)
    x = encode(net, x)
    B, T = x.shape[0], x.shape[1]
    shapes = mem_shapes(net, B, x.shape[-2], x.shape[-1])
    hs = [x[:, t] for t in range(T)]
    hps = list(hs)
    dsq = torch.zeros(T, B, dtype=x.dtype)
    for l, st in enumerate(stages):
        mem = torch.zeros(shapes[l], dtype=x.dtype)
        mem_p = mem + lyap_eps * init_perturb[l] if compute_lyapunov else None
        outs, outs_p = [], []
        for t in range(T):
            spk, mem = st.lif(st.current(hs[t]), mem)
            outs.append(st.post(spk))
            if compute_lyapunov:
                spk_p, mem_p = st.lif(st.current(hps[t]), mem_p)
                outs_p.append(st.post(spk_p))
                diff = mem_p - mem
                sq = (diff ** 2).reshape(B, -1).sum(1)
                dsq[t] += sq
                norm = torch.sqrt(sq + 1e-12).reshape((B,) + (1,) * (diff.dim() - 1))
                mem_p = mem + lyap_eps * diff / norm
        hs, hps = outs, outs_p
    logits = head(net.dropout(sum(h.reshape(B, -1) for h in hs)))
    if not compute_lyapunov:
        return logits, None, None
    per = torch.log(torch.sqrt(dsq + 1e-12) / lyap_eps + 1e-12).sum(0) / T
    return logits, per.mean(), per


def compute_expected(net, cfg_lyap, lyap_eps, x, perturb, record=True):
    """The values written to NAME.expected.safetensors, plus a recorder.
    simple: logits and lyapunov from the seed's own forward (per-sample values
    from the seed's forward on each sample alone), cross-checked against
    benettin_forward. vgg: benettin_forward; logits checked against the seed's
    own VGG forward (without the estimate)."""
    lifs = lif_modules(net)
    rec = LifRecorder(lifs, cfg_lyap) if record else None
    try:
        with torch.no_grad():
            ref_logits, ref_lyap, ref_per = benettin_forward(net, x, cfg_lyap, lyap_eps, perturb)
    finally:
        if rec is not None:
            rec.close()
    with torch.no_grad():
        if isinstance(net, SEED.ConvLyapunovSNN):
            if cfg_lyap:
                logits, lyap, _ = net(x, compute_lyapunov=True, lyap_eps=lyap_eps, init_perturb=perturb)
                per = torch.stack([
                    net(x[b:b + 1], compute_lyapunov=True, lyap_eps=lyap_eps,
                        init_perturb=[n[b:b + 1] for n in perturb])[1]
                    for b in range(x.shape[0])])
                _close(per, ref_per, 1e-11, "per-sample lyapunov: seed vs benettin_forward")
                _close(lyap.reshape(1), ref_lyap.reshape(1), 1e-11, "lyapunov: seed vs benettin_forward")
                _close(per.mean().reshape(1), lyap.reshape(1), 1e-12, "mean of per-sample vs batch")
            else:
                logits, _, _ = net(x)
                lyap, per = None, None
            _close(logits, ref_logits, 1e-12, "logits: seed vs benettin_forward")
        else:
            seed_logits, _, _ = SEED.VGGLyapunovSNN.forward(net, x, compute_lyapunov=False)
            _close(seed_logits, ref_logits, 0.0, "logits: seed VGG forward vs benettin_forward")
            logits, lyap, per = ref_logits, ref_lyap, ref_per
    out = {"logits": logits}
    if cfg_lyap:
        out["lyapunov"] = lyap.reshape(1)
        out["lyapunov_per_sample"] = per.reshape(-1)
    return out, rec


def _close(a, b, tol, what):
    d = float((a - b).abs().max()) if a.numel() else 0.0
    scale = max(1.0, float(b.abs().max()) if b.numel() else 0.0)
    if d > tol * scale:
        raise AssertionError(f"{what}: max abs diff {d:.3e}")


# --------------------------------------------------------------------------
# drawing parameters, inputs, perturbations
# --------------------------------------------------------------------------
def f32(t: torch.Tensor) -> torch.Tensor:
    """Rounds through float32, back to float64."""
    return t.float().double()


def draw_input(cfg: CaseConfig, g: torch.Generator) -> torch.Tensor:
    if cfg.encoding == "none":
        shape = (cfg.batch, cfg.T, cfg.in_channels, cfg.height, cfg.width)
        return (torch.rand(shape, generator=g, dtype=torch.float64) < 0.3).double()
    shape = (cfg.batch, cfg.in_channels, cfg.height, cfg.width)
    return f32(torch.rand(shape, generator=g, dtype=torch.float64) * 2.0 - 0.5)


def _stage_inputs(stages, x, l):
    """Main-trajectory inputs of stage l at every step (x already encoded)."""
    T = x.shape[1]
    mems = [None] * l
    ins = []
    for t in range(T):
        h = x[:, t]
        for i in range(l):
            cur = stages[i].current(h)
            m = mems[i] if mems[i] is not None else torch.zeros_like(cur)
            h, mems[i] = stages[i].lif(cur, m)
            h = stages[i].post(h)
        ins.append(h)
    return ins


def _lif_rate(lif, currents):
    mem = torch.zeros_like(currents[0])
    spikes = 0.0
    for cur in currents:
        spk, mem = lif(cur, mem)
        spikes += float(spk.sum())
    return spikes / (currents[0].numel() * len(currents))


def calibrate(net, x_enc, g: torch.Generator):
    """Layer by layer: BatchNorm running statistics near the measured ones (with
    noise), random BN weight/bias; the fc LIF of vgg gets a scaled fc1 weight
    and a random fc1 bias. Then a per-layer bias offset is bisected so the
    layer fires at a drawn target rate in [RATE_TARGET_LO, RATE_TARGET_HI].
    Everything is rounded to float32."""
    stages, head = net_stages(net)
    with torch.no_grad():
        for l, st in enumerate(stages):
            thr = float(st.lif.threshold)
            ins = _stage_inputs(stages, x_enc, l)
            if st.norm is not None:
                ys = [st.pre(h) for h in ins]
                y = torch.stack(ys, 0)                      # (T,B,C,H,W)
                C = y.shape[2]
                m = y.transpose(0, 2).reshape(C, -1).mean(1)
                s = y.transpose(0, 2).reshape(C, -1).std(1, unbiased=False)
                bn = st.norm
                z = lambda: torch.randn(C, generator=g, dtype=torch.float64)
                bn.running_mean.copy_(f32(m + 0.25 * s * z()))
                bn.running_var.copy_(f32(torch.clamp(s * s, min=1e-3) * torch.exp(0.3 * z())))
                bn.weight.copy_(f32(thr * (0.4 + 0.6 * torch.rand(C, generator=g, dtype=torch.float64))))
                bias_raw = thr * 0.15 * z()
                bias = bn.bias

                def currents():
                    return [bn(yy) for yy in ys]
            else:
                fc1 = net.fc1
                flat = [h.reshape(h.shape[0], -1) for h in ins]
                y = torch.stack([F.linear(f, fc1.weight) for f in flat], 0)
                sd = float(y.std(unbiased=False))
                if sd > 0:
                    fc1.weight.copy_(f32(fc1.weight * (0.6 * thr / sd)))
                n = fc1.out_features
                bias_raw = thr * 0.15 * torch.randn(n, generator=g, dtype=torch.float64)
                bias = fc1.bias

                def currents():
                    return [fc1(f) for f in flat]
            target = RATE_TARGET_LO + (RATE_TARGET_HI - RATE_TARGET_LO) * float(
                torch.rand(1, generator=g, dtype=torch.float64))
            lo, hi = -4.0 * thr, 4.0 * thr
            best = None
            for _ in range(48):
                mid = 0.5 * (lo + hi)
                bias.copy_(f32(bias_raw + mid))
                r = _lif_rate(st.lif, currents())
                if best is None or abs(r - target) < abs(best[1] - target):
                    best = (mid, r)
                if abs(r - target) < 0.01:
                    break
                if r < target:
                    lo = mid
                else:
                    hi = mid
            bias.copy_(f32(bias_raw + best[0]))
        # readout: keep the seed's Xavier weight, add a random bias
        head.bias.copy_(f32(0.1 * torch.randn(head.bias.shape, generator=g, dtype=torch.float64)))


def assert_f32_exact(net):
    for k, v in net.state_dict().items():
        if v.is_floating_point() and not torch.equal(v, f32(v)):
            raise AssertionError(f"{k} is not float32-exact")


@dataclasses.dataclass
class DrawnCase:
    cfg: CaseConfig
    net: nn.Module
    x: torch.Tensor
    perturb: Optional[List[torch.Tensor]]
    expected: Dict[str, torch.Tensor]
    rec: LifRecorder
    attempt: int


def check_health(rec: LifRecorder, two: bool):
    """Returns None if healthy, else a reason."""
    for traj in ((0, 1) if two else (0,)):
        for i, r in enumerate(rec.rates(traj)):
            if not (RATE_MIN <= r <= RATE_MAX):
                return f"layer {i} traj {traj} rate {r:.3f}"
    if rec.min_margin() < MARGIN_MIN:
        return f"margin {rec.min_margin():.2e}"
    return None


def draw_case(cfg: CaseConfig, verbose=True) -> DrawnCase:
    for attempt in range(MAX_ATTEMPTS):
        seed = cfg.seed + attempt
        torch.manual_seed(seed)            # the seed's own weight init
        net = build_model(cfg)
        g = torch.Generator().manual_seed(seed)
        x = draw_input(cfg, g)
        calibrate(net, encode(net, x), g)
        assert_f32_exact(net)
        perturb = None
        if cfg.lyapunov:
            shapes = mem_shapes(net, cfg.batch, cfg.height, cfg.width)
            perturb = [f32(torch.randn(s, generator=g, dtype=torch.float64)) for s in shapes]
        expected, rec = compute_expected(net, cfg.lyapunov, cfg.lyap_eps, x, perturb)
        why = check_health(rec, cfg.lyapunov)
        if why is None:
            return DrawnCase(cfg, net, x, perturb, expected, rec, attempt)
        if verbose:
            print(f"  {cfg.name}: seed {seed} rejected ({why}), redrawing", flush=True)
    raise RuntimeError(f"{cfg.name}: no acceptable draw in {MAX_ATTEMPTS} attempts")


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------
def model_metadata(cfg: CaseConfig) -> Dict[str, str]:
    return {"model": cfg.model, "T": str(cfg.T), "encoding": cfg.encoding,
            "encoding_gain": repr(float(cfg.encoding_gain)), "dropout": repr(float(cfg.dropout_p())),
            "in_channels": str(cfg.in_channels), "height": str(cfg.height),
            "width": str(cfg.width), "num_classes": str(cfg.num_classes)}


def _fmt_rates(rates):
    return ",".join(f"{r:.4f}" for r in rates)


def case_files(name) -> Dict[str, str]:
    return {k: f"{name}.{k}.safetensors" for k in ("model", "input", "perturb", "expected")}


def write_case(d: DrawnCase, out: pathlib.Path) -> Dict[str, int]:
    cfg = d.cfg
    files = case_files(cfg.name)
    sizes = {}
    sd = d.net.state_dict()
    tensors = [(k, "F32" if v.is_floating_point() else "I64", v) for k, v in sd.items()]
    sizes["model"] = st_write(out / files["model"], tensors, model_metadata(cfg))
    sizes["input"] = st_write(out / files["input"], [("input", "F32", d.x)], {})
    if cfg.lyapunov:
        sizes["perturb"] = st_write(out / files["perturb"],
                                    [(f"perturb.{i}", "F32", p) for i, p in enumerate(d.perturb)], {})
    elif (out / files["perturb"]).exists():
        (out / files["perturb"]).unlink()
    meta = {"lyapunov": "1" if cfg.lyapunov else "0", "lyap_eps": repr(float(cfg.lyap_eps)),
            "case": cfg.description,
            "firing_rates": _fmt_rates(d.rec.rates(0)),
            "min_threshold_margin": f"{d.rec.min_margin():.3e}"}
    if cfg.lyapunov:
        meta["firing_rates_perturbed"] = _fmt_rates(d.rec.rates(1))
    exp = [(k, "F64", v) for k, v in d.expected.items()]
    sizes["expected"] = st_write(out / files["expected"], exp, meta)
    return sizes


def _tensor(dt_arr):
    dt, arr = dt_arr
    t = torch.from_numpy(arr.copy())
    return t.double() if dt in ("F32", "F64") else t.long()


def load_case(out: pathlib.Path, name: str):
    """Rebuilds (cfg-like info, net, x, perturb, expected tensors, expected meta)
    from the files, with st_decode only."""
    files = case_files(name)
    mt, mmeta, _ = st_read(out / files["model"])
    for k in ("model", "T", "encoding", "encoding_gain", "dropout", "in_channels",
              "height", "width", "num_classes"):
        if k not in mmeta:
            raise AssertionError(f"{name}: model metadata lacks {k}")
    for k, (dt, arr) in mt.items():
        want = "I64" if k.endswith(("num_batches_tracked", "reset_mechanism_val")) else "F32"
        if dt != want:
            raise AssertionError(f"{name}: {k} stored as {dt}, expected {want}")
    et, emeta, _ = st_read(out / files["expected"])
    lyap = emeta["lyapunov"] == "1"
    if emeta["lyapunov"] not in ("0", "1"):
        raise AssertionError("bad lyapunov metadata")
    eps = float(emeta["lyap_eps"])
    model = mmeta["model"]
    H, W = int(mmeta["height"]), int(mmeta["width"])
    channels = []
    if model == "simple":
        i = 0
        while f"blocks.{i}.conv.weight" in mt:
            channels.append(mt[f"blocks.{i}.conv.weight"][1].shape[0])
            i += 1
    cfg = CaseConfig(name, model, int(mmeta["in_channels"]), H, W, int(mmeta["num_classes"]),
                     batch=0, T=int(mmeta["T"]), encoding=mmeta["encoding"], lyapunov=lyap,
                     description=emeta.get("case", ""), seed=0,
                     channels=tuple(channels) if channels else (64, 128, 256), lyap_eps=eps,
                     dropout=float(mmeta["dropout"]), encoding_gain=float(mmeta["encoding_gain"]))
    net = build_model(cfg)
    state = {k: _tensor(v) for k, v in mt.items()}
    missing = set(net.state_dict()) ^ set(state)
    if missing:
        raise AssertionError(f"{name}: state_dict keys differ: {sorted(missing)}")
    for k, v in net.state_dict().items():
        if tuple(v.shape) != tuple(state[k].shape):
            raise AssertionError(f"{name}: {k} shape {tuple(state[k].shape)} != {tuple(v.shape)}")
    net.load_state_dict(state, strict=True)
    it, imeta, _ = st_read(out / files["input"])
    if set(it) != {"input"} or it["input"][0] != "F32":
        raise AssertionError(f"{name}: bad input file")
    x = _tensor(it["input"])
    B = x.shape[0]
    cfg.batch = B
    want_x = (B, cfg.T, cfg.in_channels, H, W) if cfg.encoding == "none" else (B, cfg.in_channels, H, W)
    if tuple(x.shape) != want_x:
        raise AssertionError(f"{name}: input shape {tuple(x.shape)} != {want_x}")
    if cfg.encoding == "none" and not bool(((x == 0) | (x == 1)).all()):
        raise AssertionError(f"{name}: encoding none input is not binary")
    perturb = None
    shapes = mem_shapes(net, B, H, W)
    if lyap:
        pt, _, _ = st_read(out / files["perturb"])
        if set(pt) != {f"perturb.{i}" for i in range(len(shapes))}:
            raise AssertionError(f"{name}: perturb names {sorted(pt)}")
        perturb = [_tensor(pt[f"perturb.{i}"]) for i in range(len(shapes))]
        for i, (p, s) in enumerate(zip(perturb, shapes)):
            if tuple(p.shape) != s or pt[f"perturb.{i}"][0] != "F32":
                raise AssertionError(f"{name}: perturb.{i} shape {tuple(p.shape)} != {s}")
    elif (out / files["perturb"]).exists():
        raise AssertionError(f"{name}: stale perturb file")
    want_keys = {"logits"} | ({"lyapunov", "lyapunov_per_sample"} if lyap else set())
    if set(et) != want_keys or any(v[0] != "F64" for v in et.values()):
        raise AssertionError(f"{name}: expected file tensors {sorted(et)}")
    if et["logits"][1].shape != (B, cfg.num_classes):
        raise AssertionError(f"{name}: logits shape")
    if lyap and (et["lyapunov"][1].shape != (1,) or et["lyapunov_per_sample"][1].shape != (B,)):
        raise AssertionError(f"{name}: lyapunov shapes")
    return cfg, net, x, perturb, {k: _tensor(v) for k, v in et.items()}, emeta


def f32_replay(net, lyap, eps, x, perturb, rec64: LifRecorder, expected):
    """Runs benettin_forward in float32 (as snncl stores everything) and checks
    that every layer emits exactly the same spikes, step by step, on both
    trajectories as the float64 run; returns the max abs differences of the
    logits and of the per-sample Lyapunov values, as a hint for tolerances."""
    net32 = copy.deepcopy(net).float()
    rec = LifRecorder(lif_modules(net32), lyap)
    try:
        with torch.no_grad():
            logits, _, per = benettin_forward(net32, x.float(), lyap, eps,
                                              [p.float() for p in perturb] if lyap else None)
    finally:
        rec.close()
    if rec.spike_digests() != rec64.spike_digests():
        raise AssertionError(f"float32 replay changed the spikes (counts {rec.spikes} vs {rec64.spikes})")
    dl = float((logits.double() - expected["logits"]).abs().max())
    dly = float((per.double() - expected["lyapunov_per_sample"]).abs().max()) if lyap else None
    return dl, dly


def check_case(out: pathlib.Path, name: str):
    """Re-reads the fixture, recomputes the expected values (bit-exact), checks
    health, and checks that re-encoding the decoded files gives the same bytes."""
    cfg, net, x, perturb, stored, emeta = load_case(out, name)
    assert_f32_exact(net)
    expected, rec = compute_expected(net, cfg.lyapunov, cfg.lyap_eps, x, perturb)
    for k, v in expected.items():
        if not torch.equal(v, stored[k]):
            d = float((v - stored[k]).abs().max())
            raise AssertionError(f"{name}: recomputed {k} differs by {d:.3e}")
    why = check_health(rec, cfg.lyapunov)
    if why is not None:
        raise AssertionError(f"{name}: unhealthy: {why}")
    with torch.no_grad():
        lw_logits, _, lw_per = layerwise_forward(net, x, cfg.lyapunov, cfg.lyap_eps, perturb)
    _close(lw_logits, stored["logits"], 1e-12, f"{name}: layerwise logits")
    if cfg.lyapunov:
        _close(lw_per, stored["lyapunov_per_sample"], 1e-9, f"{name}: layerwise lyapunov")
    d32 = f32_replay(net, cfg.lyapunov, cfg.lyap_eps, x, perturb, rec, stored)
    for p in case_files(name).values():
        path = out / p
        if not path.exists():
            continue
        blob = path.read_bytes()
        t, meta, order = st_decode(blob)
        again = st_encode([(k, t[k][0], t[k][1]) for k in order], meta)
        if again != blob:
            raise AssertionError(f"{p}: decode/encode round trip changed the bytes")
    return cfg, rec, stored, d32


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def _table(rows):
    print()
    hdr = (f"{'case':22} {'files':>5} {'bytes':>8}  {'margin':>8} {'lyapunov':>10} "
           f"{'f32 dlogit':>10} {'f32 dlyap':>9}  firing rates per layer: main | perturbed")
    print(hdr)
    print("-" * len(hdr))
    total = 0
    for name, nfiles, size, r0, r1, margin, lyap, (dl, dly) in rows:
        total += size
        rs = "/".join(f"{r:.3f}" for r in r0)
        if r1 is not None:
            rs += " | " + "/".join(f"{r:.3f}" for r in r1)
        ly = f"{lyap:.6f}" if lyap is not None else "-"
        dys = f"{dly:.1e}" if dly is not None else "-"
        print(f"{name:22} {nfiles:>5} {size:>8}  {margin:>8.2e} {ly:>10} {dl:>10.1e} {dys:>9}  {rs}")
    print(f"{'total':22} {'':>5} {total:>8}  ({total / 2**20:.2f} MiB)")
    print("f32 dlogit / dlyap: max abs difference of a float32 torch replay (same spikes) "
          "from the float64 expected values")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed-dir", type=pathlib.Path, default=DEFAULT_SEED_DIR)
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="only re-read and verify existing fixtures")
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)                # reproducible float64 sums
    torch.use_deterministic_algorithms(True)
    load_seed(args.seed_dir)
    names = [c.name for c in CASES]
    if args.cases:
        want = args.cases.split(",")
        unknown = set(want) - set(names)
        if unknown:
            ap.error(f"unknown cases {sorted(unknown)}")
        cases = [c for c in CASES if c.name in want]
    else:
        cases = CASES
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    if not args.check:
        for cfg in cases:
            print(f"{cfg.name}: drawing", flush=True)
            d = draw_case(cfg)
            write_case(d, out)
            for traj in ((0, 1) if cfg.lyapunov else (0,)):
                label = "main     " if traj == 0 else "perturbed"
                print(f"  seed {cfg.seed + d.attempt}, {label} firing rates: "
                      + " ".join(f"{r:.3f}" for r in d.rec.rates(traj)))
            print(f"  min |mem - thr| = {d.rec.min_margin():.3e}", flush=True)

    rows = []
    for cfg in cases:
        _, rec, stored, d32 = check_case(out, cfg.name)
        paths = [out / p for p in case_files(cfg.name).values() if (out / p).exists()]
        size = sum(p.stat().st_size for p in paths)
        lyap = float(stored["lyapunov"][0]) if cfg.lyapunov else None
        rows.append((cfg.name, len(paths), size, rec.rates(0),
                     rec.rates(1) if cfg.lyapunov else None, rec.min_margin(), lyap, d32))
    print("\nself-check passed: every fixture re-read and recomputed bit-exactly")
    _table(rows)
    known = {p for c in CASES for p in case_files(c.name).values()}
    stray = sorted(p.name for p in out.glob("*.safetensors") if p.name not in known)
    if stray:
        print(f"warning: files not written by this generator: {stray}")
    h = hashlib.sha256()
    for p in sorted(out.glob("*.safetensors")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    print(f"sha256 of all fixtures: {h.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
