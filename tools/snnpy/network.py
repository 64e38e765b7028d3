"""Network descriptions (docs/network.md) in PyTorch + snnTorch, the reference for
snncl's models of them:

- build(desc) makes nn.ModuleDict({"layers": nn.Sequential, "readout": nn.Sequential})
  from torch.nn and snntorch modules; its state_dict names are those of snncl's model
  files ("layers.0.weight", "layers.2.beta", "readout.1.bias"), so
  load_state_dict(strict=True) takes an snncl file as it is;
- forward(net, desc, x) runs it as the seed runs its models: every layer once per
  time step (the membranes carried over time), the readout once on the sum over time
  of the last layer's output, and the seed's Benettin estimate with one perturbed
  membrane per Leaky;
- random_description(rng) draws a description for the tests.

Spikes stay in the input's dtype (float64 in tests): the surrogates are written here
with snnTorch's expressions, since snnTorch's own return float32.
"""
import json
import math

import torch
import torch.nn as nn
import snntorch as snn


# ----------------------------------------------------------------- surrogates --

class _Spike(torch.autograd.Function):
    """Heaviside forward in x's dtype; backward grad * derivative(x, param) with
    snnTorch's expressions (snntorch/surrogate.py)."""

    @staticmethod
    def forward(ctx, x, kind, param):
        ctx.save_for_backward(x)
        ctx.kind, ctx.param = kind, param
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        k, p = ctx.kind, ctx.param
        if k == "fast_sigmoid":
            d = 1.0 / (p * torch.abs(x) + 1.0) ** 2
        elif k == "atan":
            d = (p / 2) / (1 + (math.pi / 2 * p * x) ** 2)
        elif k == "sigmoid":
            e = torch.exp(-p * x)
            d = p * e / (e + 1) ** 2
        else:
            raise ValueError(k)
        return g * d, None, None


def surrogate(spec):
    """The spike function of a description's surrogate object."""
    kind = spec.get("type", "atan")
    param = spec.get("alpha" if kind == "atan" else "slope", 2.0 if kind == "atan" else 25.0)

    def fn(x):
        return _Spike.apply(x, kind, float(param))
    return fn


# ---------------------------------------------------------------------- build --

def _pair(v):
    return v[0] if isinstance(v, (list, tuple)) else v


def _module(layer, shape):
    """The module of one layer and its output shape (C, H, W) or (F,)."""
    t = layer["type"]
    if t == "conv2d":
        k, s, p = _pair(layer["kernel_size"]), _pair(layer.get("stride", 1)), _pair(layer.get("padding", 0))
        m = nn.Conv2d(shape[0], layer["out_channels"], k, stride=s, padding=p, bias=layer.get("bias", True))
        return m, (layer["out_channels"], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)
    if t == "batchnorm2d":
        return nn.BatchNorm2d(shape[0], eps=layer.get("eps", 1e-5), momentum=layer.get("momentum", 0.1)), shape
    if t == "leaky":
        m = snn.Leaky(beta=layer["beta"], threshold=layer.get("threshold", 1.0),
                      spike_grad=surrogate(layer.get("surrogate", {"type": "atan"})),
                      reset_mechanism=layer.get("reset_mechanism", "subtract"),
                      reset_delay=layer.get("reset_delay", True),
                      learn_beta=layer.get("learn_beta", False), learn_threshold=layer.get("learn_threshold", False),
                      init_hidden=False)
        return m, shape
    if t in ("avgpool2d", "maxpool2d"):
        k = _pair(layer["kernel_size"])
        s = layer.get("stride") or k
        s = _pair(s)
        m = (nn.AvgPool2d if t == "avgpool2d" else nn.MaxPool2d)(k, stride=s)
        return m, (shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1)
    if t == "flatten":
        return nn.Flatten(), (math.prod(shape),)
    if t == "linear":
        return nn.Linear(shape[0], layer["out_features"], bias=layer.get("bias", True)), (layer["out_features"],)
    if t == "dropout":
        return nn.Dropout(layer.get("p", 0.5)), shape
    raise ValueError(f"unknown layer type {t!r}")


def build(desc):
    """nn.ModuleDict({"layers", "readout"}) of a description (a dict or JSON text)."""
    if isinstance(desc, str):
        desc = json.loads(desc)
    shape = tuple(desc["input"])
    parts = {}
    for part in ("layers", "readout"):
        mods = []
        for layer in desc.get(part, []):
            m, shape = _module(layer, shape)
            mods.append(m)
        parts[part] = nn.Sequential(*mods)
    return nn.ModuleDict(parts)


def lif_modules(net):
    return [m for m in net["layers"] if isinstance(m, snn.Leaky)]


# -------------------------------------------------------------------- forward --

def encode(desc, x):
    """(B, C, H, W) -> (B, T, C, H, W): direct repeats, none passes (B, T, ...) through.
    (Rate encoding draws from Philox: snncl's tests compare it through pre-encoded input.)"""
    enc = desc.get("encoding", "rate")
    if enc == "none":
        return x
    if enc == "direct":
        return x.unsqueeze(1).expand(-1, desc.get("T", 25), *x.shape[1:])
    raise ValueError("rate encoding: pass the encoded spikes with encoding none")


def _step(net, h, mems):
    """One time step through the layers; mems (one per Leaky, None at first) updated."""
    k = 0
    for m in net["layers"]:
        if isinstance(m, snn.Leaky):
            if mems[k] is None:
                mems[k] = torch.zeros_like(h)
            h, mems[k] = m(h, mems[k])
            k += 1
        else:
            h = m(h)
    return h


def forward(net, desc, x, lyapunov=False, lyap_eps=1e-4, init_perturb=None):
    """Logits (B, classes) and, with lyapunov, the per-sample estimate (B,): the seed's
    forward on any description. init_perturb: one unit-scale noise tensor per Leaky
    (its membrane's shape), as snncl's perturb.N; None draws randn."""
    xs = encode(desc, x)
    B, T = xs.shape[0], xs.shape[1]
    L = len(lif_modules(net))
    mems, mems_p = [None] * L, [None] * L
    total = None
    lyap = torch.zeros(B, dtype=xs.dtype)
    for t in range(T):
        out = _step(net, xs[:, t], mems)
        total = out if total is None else total + out
        if not lyapunov:
            continue
        if t == 0:
            noise = init_perturb if init_perturb is not None else [torch.randn_like(m) for m in mems]
            # the initial membranes are zero: the perturbed ones are eps * noise
            mems_p = [lyap_eps * n.to(xs.dtype) for n in noise]
        _step(net, xs[:, t], mems_p)
        sq = sum(((mp - m) ** 2).reshape(B, -1).sum(1) for m, mp in zip(mems, mems_p))
        lyap = lyap + torch.log(torch.sqrt(sq + 1e-12) / lyap_eps + 1e-12)
        for i in range(L):
            diff = mems_p[i] - mems[i]
            norm = torch.sqrt((diff ** 2).reshape(B, -1).sum(1) + 1e-12).reshape(B, *([1] * (diff.dim() - 1)))
            mems_p[i] = mems[i] + lyap_eps * diff / norm
    logits = net["readout"](total) if len(net["readout"]) else total
    return logits, (lyap / T if lyapunov else None)


class SeedLike(nn.Module):
    """A description's model behind the seed models' interface, for tools written for
    them (tools/torch_interop.py): forward(x) -> (logits, None, None); `encoder` None
    means x is already (B, T, C, H, W); leaky_layers() lists the Leaky layers. Its state_dict is
    the ModuleDict's (no prefix)."""

    def __init__(self, desc, net):
        super().__init__()
        self.desc, self.net = desc, net
        self.encoder = desc.get("encoding", "rate")

    def state_dict(self, *a, **kw):
        return self.net.state_dict(*a, **kw)

    def load_state_dict(self, *a, **kw):
        return self.net.load_state_dict(*a, **kw)

    def leaky_layers(self):
        return lif_modules(self.net)

    def forward(self, x):
        desc = self.desc if self.encoder is not None else dict(self.desc, encoding="none")
        return forward(self.net, desc, x)[0], None, None


def spike_counts(net, desc, x):
    """Spikes per Leaky over the whole batch and all steps (eval forward): tests use it
    to make sure no comparison is vacuous."""
    counts = [0.0] * len(lif_modules(net))
    hooks = []
    for i, m in enumerate(lif_modules(net)):
        def hook(mod, inp, out, i=i):
            counts[i] += float(out[0].sum())
        hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        forward(net, desc, x)
    for h in hooks:
        h.remove()
    return counts


# ------------------------------------------------------------ random networks --

def random_description(rng, kernels="snncl"):
    """A random description of the layers snncl's kernels run today (kernels="snncl"):
    1-3 conv2d (any kernel, stride, padding) + [batchnorm2d, or a bias or none] + leaky
    [+ avgpool2d or maxpool2d, any window and stride] stages,
    0-2 linear (with or without bias) + leaky stages after a flatten, a readout of
    [dropout +] linear (or without linear: spike counts as logits), each
    leaky with its own beta, threshold, reset mechanism and surrogate. rng: random.Random."""
    C, H, W = rng.randint(1, 3), rng.randint(6, 12), rng.randint(6, 12)
    classes = rng.randint(2, 6)
    layers = []
    h, w, c = H, W, C
    for _ in range(rng.randint(1, 3)):
        # the seed's 3x3 (the sparse paths) half the time, else any kernel, stride, padding that fits
        k, stride, pad = (3, 1, 1) if rng.random() < 0.5 else (rng.choice([1, 2, 3, 5]), rng.choice([1, 1, 2]),
                                                               rng.randint(0, 2))
        if h + 2 * pad < k or w + 2 * pad < k:
            k, stride, pad = 3, 1, 1
        if k == 1 and c == 1:
            # one weight per channel before BatchNorm: training-mode BN cancels its scale, so its
            # gradient is zero up to rounding and no relative comparison means anything
            k = 3
        c = rng.randint(2, 8)
        if rng.random() < 0.7:
            layers += [{"type": "conv2d", "out_channels": c, "kernel_size": k, "stride": stride,
                        "padding": pad, "bias": False},
                       {"type": "batchnorm2d", "momentum": rng.choice([0.1, 0.05, 0.3])},
                       _random_leaky(rng)]
        else:  # no BatchNorm: the convolution's own bias, or none
            layers += [{"type": "conv2d", "out_channels": c, "kernel_size": k, "stride": stride,
                        "padding": pad, "bias": rng.random() < 0.7},
                       _random_leaky(rng, 0.1, 0.6)]
        h, w = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        if h >= 4 and w >= 4 and rng.random() < 0.7:
            # the seed's 2x2 average (the fused path) half the time, else any window and stride
            kind, k, st = ("avgpool2d", 2, 2) if rng.random() < 0.5 else (
                rng.choice(["avgpool2d", "maxpool2d"]), rng.choice([2, 3]), rng.choice([1, 2, 3]))
            layers.append({"type": kind, "kernel_size": k, "stride": st})
            h, w = (h - k) // st + 1, (w - k) // st + 1
    layers.append({"type": "flatten"})
    for _ in range(rng.randint(0, 2)):
        # Xavier-initialized linear layers pass small currents: low thresholds keep them firing
        layers += [{"type": "linear", "out_features": rng.randint(8, 24), "bias": rng.random() < 0.7},
                   _random_leaky(rng, 0.05, 0.3)]
    readout = []
    if rng.random() < 0.5:
        readout.append({"type": "dropout", "p": rng.choice([0.1, 0.3])})
    if rng.random() < 0.25:
        # no readout layer: the last layer's spike counts are the logits
        layers += [{"type": "linear", "out_features": classes}, _random_leaky(rng, 0.05, 0.3)]
    else:
        readout.append({"type": "linear", "out_features": classes, "bias": rng.random() < 0.8})
    return {"input": [C, H, W], "num_classes": classes, "T": rng.randint(3, 6),
            "encoding": rng.choice(["direct", "none"]), "layers": layers, "readout": readout}


def _random_leaky(rng, lo=0.3, hi=1.2):
    kind = rng.choice(["fast_sigmoid", "atan", "sigmoid"])
    param = {"fast_sigmoid": ("slope", rng.choice([25, 10])), "atan": ("alpha", rng.choice([2.0, 3.5])),
             "sigmoid": ("slope", rng.choice([25, 5]))}[kind]
    return {"type": "leaky", "beta": round(rng.uniform(0.5, 0.99), 3), "threshold": round(rng.uniform(lo, hi), 3),
            "reset_mechanism": rng.choice(["subtract", "zero", "none"]),
            "surrogate": {"type": kind, param[0]: param[1]}}
