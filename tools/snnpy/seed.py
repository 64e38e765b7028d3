"""The seed's models (PyTorch + snnTorch), loaded from conv_lyapunov_snn.py and made
size-generic: load_seed() sets SEED (the module), SimpleNet and VGGNet; CaseConfig
describes a model and its input; build_model() makes the float64 eval model;
lif_modules() lists its LIF layers in snncl's order."""
import dataclasses
import importlib.util
import pathlib
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn

SEED = None                # the seed module, set by load_seed()
SimpleNet = None           # subclasses of the seed's models, set by load_seed()
VGGNet = None


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
