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

Training cases (TRAIN_CASES, names train_*) hold gradients and optimizer steps
computed by autograd in float64, with the model in training mode (BatchNorm on
per-timestep batch statistics, running statistics updated by every call):
    NAME.model / NAME.input / NAME.perturb   as above (perturb only if lyap_weight > 0)
    NAME.labels.safetensors    `labels` I64 (B,)
    NAME.grad.safetensors      F64: loss, cross_entropy, lyapunov, logits,
                               lyapunov_per_sample, grad.<param>, grad_ce.<param>
                               (cases with the estimate: the gradient with
                               lyap_weight 0), after.<BN buffer> (num_batches_tracked
                               I64); grad.* and grad_ce.* are F32 (rounded to
                               nearest) where TrainCase.grad_dtype says so (vgg)
    NAME.steps.safetensors     optimizer-step cases: losses, cross_entropy,
                               lyapunov (K,), grad_norm (K,) with clipping,
                               grads.<k>.<param>, final.<param>, final.<BN buffer>
The loss is cross_entropy(logits, labels) + lyap_weight * (lyapunov - lyap_target)^2.
Reference: the seed's forward (simple; vgg without the estimate), else
benettin_forward; the surrogate runs in float64 (FastSigmoid here); dropout is
the identity (p = 0) except in one case that uses snncl's Philox mask
(dropout_mask). Health is checked on every forward, every optimizer step too.
tools/README.md describes the files, the rules and the float32 tolerances.

Layout, for extending: CASES holds CaseConfig entries;
build_model(cfg) (snnpy.seed) makes the float64 eval model, draw_case(cfg) draws
parameters, input and perturbation, compute_expected(...) runs the reference
forward, write_case(...) writes the files through snnpy.safetensors;
load_case(...) rebuilds everything from the files. Training:
TRAIN_CASES (TrainCase), make_trainable, draw_train, compute_train, run_steps,
write_train_case, load_train_case, check_train_case.
"""
import argparse
import copy
import dataclasses
import hashlib
import math
import pathlib
import sys
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from snnpy import seed as seedmod  # noqa: E402
from snnpy.paths import default_seed_dir  # noqa: E402
from snnpy.philox import dropout_mask, philox_self_test  # noqa: E402
from snnpy.safetensors import st_decode, st_encode, st_read, st_write  # noqa: E402
from snnpy.seed import CaseConfig, build_model, lif_modules, load_seed  # noqa: E402

DEFAULT_SEED_DIR = default_seed_dir()
DEFAULT_OUT = REPO / "tests" / "fixtures"

MARGIN_MIN = 2e-5          # min |mem - threshold| over every LIF evaluation
RATE_MIN, RATE_MAX = 0.05, 0.60
RATE_TARGET_LO, RATE_TARGET_HI = 0.12, 0.40   # per-layer calibration target, drawn
MAX_ATTEMPTS = 200
BN_EPS = 1e-5



# --------------------------------------------------------------------------
# case configuration and model construction
# --------------------------------------------------------------------------
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
    if isinstance(net, seedmod.SEED.ConvLyapunovSNN):
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
    if isinstance(net, seedmod.SEED.ConvLyapunovSNN):
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
        if isinstance(net, seedmod.SEED.ConvLyapunovSNN):
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
            seed_logits, _, _ = seedmod.SEED.VGGLyapunovSNN.forward(net, x, compute_lyapunov=False)
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


def load_net_input(out: pathlib.Path, name: str, files: Dict[str, str], lyap: bool, eps: float,
                   description: str):
    """Reads NAME.model, NAME.input and (with the estimate) NAME.perturb, with
    st_decode only; returns (cfg, net, x, perturb). net is build_model's eval
    model with the stored state."""
    mt, mmeta, _ = st_read(out / files["model"])
    for k in ("model", "T", "encoding", "encoding_gain", "dropout", "in_channels",
              "height", "width", "num_classes"):
        if k not in mmeta:
            raise AssertionError(f"{name}: model metadata lacks {k}")
    for k, (dt, arr) in mt.items():
        want = "I64" if k.endswith(("num_batches_tracked", "reset_mechanism_val")) else "F32"
        if dt != want:
            raise AssertionError(f"{name}: {k} stored as {dt}, expected {want}")
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
                     description=description, seed=0,
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
    return cfg, net, x, perturb


def load_case(out: pathlib.Path, name: str):
    """Rebuilds (cfg-like info, net, x, perturb, expected tensors, expected meta)
    from the files, with st_decode only."""
    files = case_files(name)
    et, emeta, _ = st_read(out / files["expected"])
    lyap = emeta["lyapunov"] == "1"
    if emeta["lyapunov"] not in ("0", "1"):
        raise AssertionError("bad lyapunov metadata")
    eps = float(emeta["lyap_eps"])
    cfg, net, x, perturb = load_net_input(out, name, files, lyap, eps, emeta.get("case", ""))
    B = cfg.batch
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
# training fixtures: gradients (BPTT, fast-sigmoid surrogate, BatchNorm in
# training mode, Lyapunov regularizer) and optimizer steps, by autograd in float64
# --------------------------------------------------------------------------
SURROGATE_SLOPE = 25
NBT_START = 5              # num_batches_tracked in the training model files (so `after` = 5 + calls)
class PhiloxDropout(nn.Module):
    """Replaces the seed's nn.Dropout in the dropout fixture: the mask is
    snncl's counter-based one (dropout_mask), applied in the input's dtype.
    Stateless, so the state_dict is unchanged."""

    def __init__(self, p: float, seed: int):
        super().__init__()
        self.p, self.seed = float(p), int(seed)

    def forward(self, x):
        if x.dim() != 2:
            raise AssertionError("dropout input must be (B, F)")
        if not self.training:
            return x
        m = torch.from_numpy(dropout_mask(x.shape[0], x.shape[1], self.p, self.seed)).to(x.dtype)
        return x * m

    def extra_repr(self):
        return f"p={self.p}, seed={self.seed}"


class FastSigmoid(torch.autograd.Function):
    """snnTorch's FastSigmoid (surrogate.py), with the forward returning the
    input's dtype instead of float32, so the backward runs in float64 too
    (wrapping snnTorch's version in .to(float64) would round the incoming
    gradient to float32). Same expression: grad / (slope * |x| + 1.0) ** 2."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output.clone() / (SURROGATE_SLOPE * torch.abs(x) + 1.0) ** 2


def fast_sigmoid(x):
    return FastSigmoid.apply(x)


fast_sigmoid._keeps_dtype = True


def _surrogate_slope(fn):
    """Digs the `slope` out of snntorch.surrogate.fast_sigmoid's closure (through
    _keep_dtype's wrapper); None if fn is not that."""
    seen = 0
    while fn is not None and seen < 4:
        seen += 1
        names = getattr(getattr(fn, "__code__", None), "co_freevars", ())
        cells = dict(zip(names, (c.cell_contents for c in (fn.__closure__ or ()))))
        if "slope" in cells and fn.__qualname__.startswith("fast_sigmoid."):
            return cells["slope"]
        fn = cells.get("fn")
    return None


@dataclasses.dataclass
class TrainCase:
    cfg: CaseConfig                    # cfg.lyapunov == (lyap_weight > 0), cfg.dropout explicit
    lyap_weight: float
    lyap_target: float = 0.0
    dropout_seed: int = 0
    steps: int = 0                     # > 0: an optimizer-step fixture
    optimizer: str = ""                # adam | sgd
    lr: float = 0.0
    beta1: float = 0.0
    beta2: float = 0.0
    adam_eps: float = 0.0
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip: float = 0.0                  # max_norm of clip_grad_norm_ (0: none)
    min_lyap_share: float = 0.0        # required max over params of |g_lyap| / |g_total|
    grad_dtype: str = "F64"            # storage of grad.* / grad_ce.* (F32: rounded to nearest)

    @property
    def name(self):
        return self.cfg.name

    @property
    def lyap(self):
        return self.lyap_weight > 0

    def reference(self):
        """'seed': the seed's own forward; 'benettin': benettin_forward (vgg with
        the estimate, where the seed's estimate is a placeholder)."""
        return "benettin" if (self.cfg.model == "vgg" and self.lyap) else "seed"


def _tcfg(name, model, cin, h, w, classes, batch, T, encoding, lyap_weight, seed, description,
          **kw):
    ck = {k: kw.pop(k) for k in ("channels", "beta", "threshold", "lyap_eps", "dropout") if k in kw}
    ck.setdefault("dropout", 0.0)
    cfg = CaseConfig(name, model, cin, h, w, classes, batch=batch, T=T, encoding=encoding,
                     lyapunov=lyap_weight > 0, description=description, seed=seed, **ck)
    return TrainCase(cfg, lyap_weight, **kw)


TRAIN_CASES: List[TrainCase] = [
    _tcfg("train_simple_direct", "simple", 1, 8, 8, 10, 4, 5, "direct", 0.0, 11000,
          "training: simple [4,8], 1x8x8, 10 classes, B=4 T=5, direct, cross-entropy only "
          "(lyap_weight 0), seed forward", channels=(4, 8)),
    _tcfg("train_simple_direct_lyap", "simple", 1, 8, 8, 10, 4, 5, "direct", 0.5, 12000,
          "training: simple [4,8], 1x8x8, 10 classes, B=4 T=5, direct, lyap_weight 0.5 target "
          "0.25 eps 1e-4, seed forward", channels=(4, 8), lyap_target=0.25, min_lyap_share=0.1),
    _tcfg("train_simple_none_lyap", "simple", 2, 12, 10, 7, 3, 4, "none", 0.1, 13000,
          "training: simple [4,6,8], 2x12x10 (odd pooling sizes), 7 classes, B=3 T=4, encoding "
          "none, beta (0.8,0.95,0.7) threshold (0.5,1.0,1.3), lyap_weight 0.1 target 0 eps 1e-4, "
          "seed forward", channels=(4, 6, 8), beta=(0.8, 0.95, 0.7), threshold=(0.5, 1.0, 1.3)),
    _tcfg("train_simple_dropout", "simple", 1, 8, 8, 10, 4, 3, "direct", 0.0, 14000,
          "training: simple [4,8], 1x8x8, 10 classes, B=4 T=3, direct, dropout 0.25 with the "
          "Philox mask (seed 1234), lyap_weight 0, seed forward", channels=(4, 8), dropout=0.25,
          dropout_seed=1234),
    _tcfg("train_simple_b1_lyap", "simple", 1, 8, 8, 10, 1, 4, "direct", 0.2, 18000,
          "training: a batch of one (BatchNorm statistics over H*W alone, which PyTorch "
          "accepts): simple [4,8], 1x8x8, 10 classes, B=1 T=4, direct, lyap_weight 0.2 "
          "target 0 eps 1e-4, seed forward", channels=(4, 8)),
    _tcfg("train_vgg_direct_lyap", "vgg", 3, 8, 8, 10, 2, 3, "direct", 0.2, 15000,
          "training: vgg, 3x8x8, 10 classes, B=2 T=3, direct, lyap_weight 0.2 target 0.1 eps "
          "1e-3, Benettin estimate over all 7 LIF layers (benettin_forward)", lyap_target=0.1,
          lyap_eps=1e-3,    # eps 1e-3: float32 resolves the regularizer's gradient ~10x better
          grad_dtype="F32"),   # 1.28 M parameters: grad.* and grad_ce.* stored as float32
    # (vgg without the Lyapunov term: grad_ce of train_vgg_direct_lyap, the seed's VGG forward)
    _tcfg("train_steps_adam", "simple", 1, 8, 8, 10, 4, 5, "direct", 0.1, 17000,
          "optimizer steps: simple [4,8], 1x8x8, 10 classes, B=4 T=5, direct, lyap_weight 0.1 "
          "target 0 eps 1e-4; Adam lr 1e-2 betas (0.9,0.999) eps 1e-8 weight_decay 1e-3, 4 steps",
          channels=(4, 8), steps=4, optimizer="adam", lr=1e-2, beta1=0.9, beta2=0.999,
          adam_eps=1e-8, weight_decay=1e-3),
    _tcfg("train_steps_adam_ce", "simple", 1, 8, 8, 10, 4, 5, "direct", 0.0, 19000,
          "optimizer steps: simple [4,8], 1x8x8, 10 classes, B=4 T=5, direct, lyap_weight 0 "
          "(cross-entropy only, so a float32 run can follow it end to end); Adam lr 1e-2 betas "
          "(0.9,0.999) eps 1e-8 weight_decay 1e-3, 4 steps",
          channels=(4, 8), steps=4, optimizer="adam", lr=1e-2, beta1=0.9, beta2=0.999,
          adam_eps=1e-8, weight_decay=1e-3),
    _tcfg("train_steps_sgd", "simple", 1, 8, 8, 10, 4, 5, "direct", 0.0, 18000,
          "optimizer steps: simple [4,8], 1x8x8, 10 classes, B=4 T=5, direct, lyap_weight 0; "
          "clip_grad_norm_(max_norm 0.5) then SGD lr 0.05 momentum 0.9 weight_decay 1e-3, 4 steps",
          channels=(4, 8), steps=4, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3,
          clip=0.5),
]


def make_trainable(net, cfg: CaseConfig, dropout_seed: int):
    """In place: float64 surrogate on every LIF layer, the Philox dropout (p > 0)
    or the seed's nn.Dropout with p == 0 (the identity), training mode. Asserts
    that the trainable parameters are exactly the conv/BN/linear ones."""
    for lif in lif_modules(net):
        slope = _surrogate_slope(lif.spike_grad)
        if lif.spike_grad is not fast_sigmoid and slope != SURROGATE_SLOPE:
            raise AssertionError(f"unexpected surrogate (slope {slope})")
        lif.spike_grad = fast_sigmoid
        if list(lif.parameters()):
            raise AssertionError("a LIF layer has parameters")
        if not all(isinstance(getattr(lif, b), torch.Tensor) for b in ("beta", "threshold")):
            raise AssertionError("beta/threshold are not tensors")
    names = [n for n, _ in net.named_parameters()]
    if any(n.endswith((".beta", ".threshold", "graded_spikes_factor")) for n in names):
        raise AssertionError(f"beta/threshold are parameters: {names}")
    allowed = (".weight", ".bias")
    if not all(n.endswith(allowed) for n in names):
        raise AssertionError(f"unexpected parameters {names}")
    p = cfg.dropout_p()
    if p > 0:
        net.dropout = PhiloxDropout(p, dropout_seed)
    elif not (isinstance(net.dropout, nn.Dropout) and net.dropout.p == 0.0):
        raise AssertionError("dropout p must be 0 without the Philox mask")
    net.train()
    return net


class frozen_bn_stats:
    """Context: every BatchNorm call restores its running statistics and
    num_batches_tracked afterwards (used while calibrating in training mode)."""

    def __init__(self, net):
        self.bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        self.handles = []

    def __enter__(self):
        for bn in self.bns:
            self.handles.append(bn.register_forward_pre_hook(self._save))
            self.handles.append(bn.register_forward_hook(self._restore))
        return self

    @staticmethod
    def _save(m, args):
        m._frozen = (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())

    @staticmethod
    def _restore(m, args, out):
        rm, rv, nb = m._frozen
        m.running_mean.copy_(rm)
        m.running_var.copy_(rv)
        m.num_batches_tracked.copy_(nb)
        del m._frozen

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles = []


def bn_buffer_names(net) -> List[str]:
    return [k for k in net.state_dict()
            if k.endswith((".running_mean", ".running_var", ".num_batches_tracked"))]


def clone_net(net, dtype=None):
    """deepcopy, after dropping the Leaky modules' leftover membrane (a graph
    tensor after a forward; snnTorch re-creates it each call)."""
    for lif in lif_modules(net):
        lif.mem = torch.zeros(0)
        if hasattr(lif, "reset"):
            lif.reset = None
    c = copy.deepcopy(net)
    if dtype is not None:
        c = c.to(dtype)
    c.zero_grad(set_to_none=True)
    return c


def train_forward(net, tc: TrainCase, x, y, perturb, mode: str):
    """One training-mode forward and the loss. mode: 'seed' (ConvLyapunovSNN.forward,
    or VGGLyapunovSNN.forward without the estimate), 'benettin', 'layerwise'."""
    eps = tc.cfg.lyap_eps
    per = None
    if mode == "seed":
        if isinstance(net, seedmod.SEED.ConvLyapunovSNN):
            if tc.lyap:
                logits, ly, _ = net(x, compute_lyapunov=True, lyap_eps=eps, init_perturb=perturb)
            else:
                logits, ly, _ = net(x)
        else:
            if tc.lyap:
                raise ValueError("the seed's VGG estimate is a placeholder; use benettin")
            logits, ly, _ = seedmod.SEED.VGGLyapunovSNN.forward(net, x, compute_lyapunov=False)
    elif mode == "benettin":
        logits, ly, per = benettin_forward(net, x, tc.lyap, eps, perturb)
    elif mode == "layerwise":
        logits, ly, per = layerwise_forward(net, x, tc.lyap, eps, perturb)
    else:
        raise ValueError(mode)
    ce = F.cross_entropy(logits, y)
    if tc.lyap:
        reg = tc.lyap_weight * (ly - tc.lyap_target) ** 2
        loss = ce + reg
    else:
        reg, loss = None, ce
    return {"logits": logits, "lyap": ly, "per": per, "ce": ce, "reg": reg, "loss": loss}


def grad_run(net0, tc: TrainCase, x, y, perturb, mode: str, record: bool, dtype=None):
    """forward + backward on a clone of net0; returns (outputs, grads, BN buffers
    after, recorder or None). net0 is left unchanged."""
    net = clone_net(net0, dtype)
    if dtype is not None:
        x = x.to(dtype)
        perturb = [p.to(dtype) for p in perturb] if perturb is not None else None
    rec = LifRecorder(lif_modules(net), tc.lyap) if record else None
    try:
        out = train_forward(net, tc, x, y, perturb, mode)
    finally:
        if rec is not None:
            rec.close()
    out["loss"].backward()
    grads = {n: p.grad.detach().clone() for n, p in net.named_parameters()}
    sd = net.state_dict()
    after = {k: sd[k].clone() for k in bn_buffer_names(net)}
    out = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
    return out, grads, after, rec


def _close_rel(a, b, tol, what):
    """max|a - b| <= tol * max|b| (exact when b is 0)."""
    d = float((a - b).abs().max()) if a.numel() else 0.0
    scale = float(b.abs().max()) if b.numel() else 0.0
    if d > tol * scale:
        raise AssertionError(f"{what}: max abs diff {d:.3e} (max |ref| {scale:.3e})")


def compute_train(net, tc: TrainCase, x, y, perturb):
    """The values of NAME.grad.safetensors, and the recorder of the benettin run
    (spikes and margins; the same spikes as the reference). Reference: the seed's
    forward, except vgg with the estimate (benettin_forward). Cross-checks:
    simple: seed vs benettin_forward (loss, logits, lyapunov, grads 1e-10, BN
    buffers after 1e-12); vgg with the estimate: benettin_forward vs
    layerwise_forward (loss and grads, 1e-9; the running statistics are updated
    in another order there, so not compared). With the estimate, grad_ce.* (the
    seed's forward with lyap_weight 0) is checked by lyap_shares against the
    cross-entropy part of the reference graph (1e-10)."""
    ref = tc.reference()
    out, grads, after, rec_ref = grad_run(net, tc, x, y, perturb, ref, record=(ref == "benettin"))
    if ref == "seed":
        bo, bg, ba, rec = grad_run(net, tc, x, y, perturb, "benettin", record=True)
        _close_rel(bo["logits"], out["logits"], 1e-12, f"{tc.name}: logits seed vs benettin")
        _close_rel(bo["loss"].reshape(1), out["loss"].reshape(1), 1e-12, f"{tc.name}: loss seed vs benettin")
        if tc.lyap:
            _close_rel(bo["lyap"].reshape(1), out["lyap"].reshape(1), 1e-11,
                       f"{tc.name}: lyapunov seed vs benettin")
        for k in grads:
            _close_rel(bg[k], grads[k], 1e-10, f"{tc.name}: grad {k} seed vs benettin")
        for k in after:
            _close_rel(ba[k].double(), after[k].double(), 1e-12, f"{tc.name}: after {k} seed vs benettin")
        per = bo["per"]
    else:
        rec = rec_ref
        lo, lg, _, _ = grad_run(net, tc, x, y, perturb, "layerwise", record=False)
        _close_rel(lo["loss"].reshape(1), out["loss"].reshape(1), 1e-12, f"{tc.name}: loss layerwise")
        _close_rel(lo["per"], out["per"], 1e-9, f"{tc.name}: lyapunov layerwise")
        for k in grads:
            _close_rel(lg[k], grads[k], 1e-9, f"{tc.name}: grad {k} benettin vs layerwise")
        per = out["per"]
    nbt_calls = tc.cfg.T * (2 if tc.lyap else 1)
    for k, v in after.items():
        if k.endswith("num_batches_tracked") and int(v) != NBT_START + nbt_calls:
            raise AssertionError(f"{tc.name}: {k} = {int(v)}, expected {NBT_START + nbt_calls}")
    res = {"loss": out["loss"].reshape(1), "cross_entropy": out["ce"].reshape(1)}
    if tc.lyap:
        res["lyapunov"] = out["lyap"].reshape(1)
    res["logits"] = out["logits"]
    if tc.lyap:
        res["lyapunov_per_sample"] = per.reshape(-1)
    for k, g in grads.items():
        res[f"grad.{k}"] = g
    if tc.lyap:
        # the cross-entropy part alone: what a run with lyap_weight 0 gives (the
        # main trajectory does not depend on the perturbed pass, and BatchNorm
        # normalizes each call with its own batch statistics), by the seed's
        # forward (for vgg: VGGLyapunovSNN.forward without the estimate);
        # lyap_shares checks it against the cross-entropy part of the graph above
        _, gce, _, _ = grad_run(net, dataclasses.replace(tc, lyap_weight=0.0), x, y, perturb,
                                "seed", record=False)
        for k, g in gce.items():
            res[f"grad_ce.{k}"] = g
    for k, v in after.items():
        res[f"after.{k}"] = v
    return res, rec


def lyap_shares(net, tc: TrainCase, x, y, perturb, grad=None) -> Dict[str, float]:
    """Per parameter: |grad of lyap_weight * (lambda - target)^2| / |grad of the loss|
    (Frobenius norms), from one more forward on a clone. Checks grad_ce.* of
    `grad` (if there) against the cross-entropy part of this graph."""
    c = clone_net(net)
    out = train_forward(c, tc, x, y, perturb, tc.reference())
    names = [n for n, _ in c.named_parameters()]
    params = [p for _, p in c.named_parameters()]
    g_ce = torch.autograd.grad(out["ce"], params, retain_graph=True, allow_unused=True)
    g_reg = torch.autograd.grad(out["reg"], params, allow_unused=True)
    shares = {}
    for n, p, a, b in zip(names, params, g_ce, g_reg):
        a = torch.zeros_like(p) if a is None else a
        b = torch.zeros_like(p) if b is None else b
        tot = float((a + b).norm())
        shares[n] = float(b.norm()) / tot if tot > 0 else 0.0
        if grad is not None and f"grad_ce.{n}" in grad:
            _close_rel(a, grad[f"grad_ce.{n}"], 1e-10, f"{tc.name}: grad_ce {n}")
            _close_rel(a + b, grad[f"grad.{n}"], 1e-10, f"{tc.name}: grad {n} (split)")
    return shares


def make_optimizer(tc: TrainCase, params):
    if tc.optimizer == "adam":
        return torch.optim.Adam(params, lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=tc.adam_eps,
                                weight_decay=tc.weight_decay, amsgrad=False, foreach=False)
    if tc.optimizer == "sgd":
        return torch.optim.SGD(params, lr=tc.lr, momentum=tc.momentum, dampening=0,
                               weight_decay=tc.weight_decay, nesterov=False, foreach=False)
    raise ValueError(tc.optimizer)


def run_steps(net0, tc: TrainCase, x, y, perturb, dtype=None):
    """tc.steps updates on the same batch and perturbation, on a clone of net0.
    Returns (values of NAME.steps.safetensors, per-step recorders, per-step
    (total grad norm, clipped?)). The values: losses/cross_entropy/lyapunov (K,)
    before each update, grad_norm (K,) (clip_grad_norm_'s total norm, with
    clipping), grads.<k>.<param> (the raw gradient of step k, before clipping
    and weight decay), final.<param> and final.<BN buffer> after the K updates."""
    net = clone_net(net0, dtype)
    if dtype is not None:
        x = x.to(dtype)
        perturb = [p.to(dtype) for p in perturb] if perturb is not None else None
    names = [n for n, _ in net.named_parameters()]
    params = [p for _, p in net.named_parameters()]
    opt = make_optimizer(tc, params)
    losses, ces, lys, recs, clips, norms = [], [], [], [], [], []
    step_grads = {}
    for k in range(tc.steps):
        opt.zero_grad(set_to_none=True)
        rec = LifRecorder(lif_modules(net), tc.lyap)
        try:
            out = train_forward(net, tc, x, y, perturb, tc.reference())
        finally:
            rec.close()
        recs.append(rec)
        losses.append(out["loss"].detach().reshape(1))
        ces.append(out["ce"].detach().reshape(1))
        if tc.lyap:
            lys.append(out["lyap"].detach().reshape(1))
        out["loss"].backward()
        for n, p in zip(names, params):
            step_grads[f"grads.{k}.{n}"] = p.grad.detach().clone()
        if tc.clip > 0:
            total_t = torch.nn.utils.clip_grad_norm_(params, max_norm=tc.clip)
            total = float(total_t)
            norms.append(total_t.detach().reshape(1))
            clips.append((total, total > tc.clip))
        opt.step()
    res = {"losses": torch.cat(losses), "cross_entropy": torch.cat(ces)}
    if tc.lyap:
        res["lyapunov"] = torch.cat(lys)
    if tc.clip > 0:
        res["grad_norm"] = torch.cat(norms)
    res.update(step_grads)
    for n, p in zip(names, params):
        res[f"final.{n}"] = p.detach().clone()
    sd = net.state_dict()
    for k in bn_buffer_names(net):
        res[f"final.{k}"] = sd[k].clone()
    return res, recs, clips


def _min_margin(recs):
    return min(r.min_margin() for r in recs)


@dataclasses.dataclass
class DrawnTrain:
    tc: TrainCase
    net: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    perturb: Optional[List[torch.Tensor]]
    grad: Dict[str, torch.Tensor]
    rec: LifRecorder
    steps: Optional[Dict[str, torch.Tensor]]
    step_recs: List[LifRecorder]
    clips: List[Tuple[float, bool]]
    shares: Optional[Dict[str, float]]
    attempt: int


def evaluate_train(tc: TrainCase, net, x, y, perturb):
    """Everything written for a training case, plus the acceptance test.
    Returns (grad, rec, steps, step_recs, clips, shares, why-or-None)."""
    grad, rec = compute_train(net, tc, x, y, perturb)
    why = check_health(rec, tc.lyap)
    steps, step_recs, clips, shares = None, [], [], None
    if tc.steps:
        steps, step_recs, clips = run_steps(net, tc, x, y, perturb)
        for k, r in enumerate(step_recs):
            w = check_health(r, tc.lyap)
            if w is not None and why is None:
                why = f"step {k}: {w}"
        if tc.clip > 0 and not any(c for _, c in clips) and why is None:
            why = "gradient clipping never triggered"
    if tc.lyap:
        shares = lyap_shares(net, tc, x, y, perturb, grad)
        if tc.min_lyap_share > 0 and max(shares.values()) < tc.min_lyap_share and why is None:
            why = f"lyapunov gradient share {max(shares.values()):.3f} < {tc.min_lyap_share}"
    return grad, rec, steps, step_recs, clips, shares, why


def draw_train(tc: TrainCase, verbose=True) -> DrawnTrain:
    cfg = tc.cfg
    for attempt in range(MAX_ATTEMPTS):
        seed = cfg.seed + attempt
        torch.manual_seed(seed)            # the seed's own weight init
        net = make_trainable(build_model(cfg), cfg, tc.dropout_seed)
        g = torch.Generator().manual_seed(seed)
        x = draw_input(cfg, g)
        y = torch.randint(cfg.num_classes, (cfg.batch,), generator=g, dtype=torch.int64)
        with frozen_bn_stats(net):
            calibrate(net, encode(net, x), g)
        with torch.no_grad():
            for k in bn_buffer_names(net):
                if k.endswith("num_batches_tracked"):
                    net.state_dict()[k].fill_(NBT_START)
        assert_f32_exact(net)
        perturb = None
        if cfg.lyapunov:
            shapes = mem_shapes(net, cfg.batch, cfg.height, cfg.width)
            perturb = [f32(torch.randn(s, generator=g, dtype=torch.float64)) for s in shapes]
        grad, rec, steps, step_recs, clips, shares, why = evaluate_train(tc, net, x, y, perturb)
        if why is None:
            return DrawnTrain(tc, net, x, y, perturb, grad, rec, steps, step_recs, clips, shares,
                              attempt)
        if verbose:
            print(f"  {cfg.name}: seed {seed} rejected ({why}), redrawing", flush=True)
    raise RuntimeError(f"{cfg.name}: no acceptable draw in {MAX_ATTEMPTS} attempts")


def train_files(name) -> Dict[str, str]:
    return {k: f"{name}.{k}.safetensors"
            for k in ("model", "input", "labels", "perturb", "grad", "steps")}


def _r(v) -> str:
    return repr(float(v))


def grad_metadata(tc: TrainCase, rec: LifRecorder) -> Dict[str, str]:
    meta = {"lyap_weight": _r(tc.lyap_weight), "lyap_target": _r(tc.lyap_target),
            "lyap_eps": _r(tc.cfg.lyap_eps), "seed": str(tc.dropout_seed),
            "lyapunov": "1" if tc.lyap else "0",
            "reference": ("benettin_forward (Benettin estimate over all LIF layers)"
                          if tc.reference() == "benettin" else "the seed's forward"),
            "case": tc.cfg.description,
            "firing_rates": _fmt_rates(rec.rates(0)),
            "min_threshold_margin": f"{rec.min_margin():.3e}"}
    if tc.lyap:
        meta["firing_rates_perturbed"] = _fmt_rates(rec.rates(1))
    return meta


def steps_metadata(tc: TrainCase, recs, clips) -> Dict[str, str]:
    meta = {"optimizer": tc.optimizer, "lr": _r(tc.lr), "beta1": _r(tc.beta1), "beta2": _r(tc.beta2),
            "adam_eps": _r(tc.adam_eps), "momentum": _r(tc.momentum), "dampening": "0.0",
            "nesterov": "0", "weight_decay": _r(tc.weight_decay), "clip": _r(tc.clip),
            "steps": str(tc.steps), "lyap_weight": _r(tc.lyap_weight),
            "lyap_target": _r(tc.lyap_target), "lyap_eps": _r(tc.cfg.lyap_eps),
            "seed": str(tc.dropout_seed), "case": tc.cfg.description,
            "min_threshold_margin": f"{_min_margin(recs):.3e}"}
    if tc.clip > 0:
        meta["clipped_steps"] = ",".join("1" if c else "0" for _, c in clips)
    return meta


def _st_entries(values: Dict[str, torch.Tensor]):
    return [(k, "F64" if v.is_floating_point() else "I64", v) for k, v in values.items()]


GRAD_PREFIXES = ("grad.", "grad_ce.")   # the tensors stored as tc.grad_dtype in NAME.grad


def grad_stored(tc: TrainCase, grad: Dict[str, torch.Tensor]) -> Dict[str, Tuple[str, torch.Tensor]]:
    """The grad file's tensors as written: name -> (dtype, value). grad.* and
    grad_ce.* are tc.grad_dtype (F32: the float64 result rounded to nearest),
    other floats F64, integers I64. Reading the file back (st_decode, then
    _tensor) gives exactly value.double() / value.long()."""
    res = {}
    for k, v in grad.items():
        if not v.is_floating_point():
            res[k] = ("I64", v)
        elif k.startswith(GRAD_PREFIXES) and tc.grad_dtype == "F32":
            res[k] = ("F32", v.to(torch.float32))
        elif k.startswith(GRAD_PREFIXES) and tc.grad_dtype != "F64":
            raise ValueError(f"{tc.name}: grad_dtype {tc.grad_dtype}")
        else:
            res[k] = ("F64", v)
    return res


def write_train_case(d: DrawnTrain, out: pathlib.Path) -> Dict[str, int]:
    tc, cfg = d.tc, d.tc.cfg
    files = train_files(cfg.name)
    sizes = {}
    sd = d.net.state_dict()
    tensors = [(k, "F32" if v.is_floating_point() else "I64", v) for k, v in sd.items()]
    sizes["model"] = st_write(out / files["model"], tensors, model_metadata(cfg))
    sizes["input"] = st_write(out / files["input"], [("input", "F32", d.x)], {})
    sizes["labels"] = st_write(out / files["labels"], [("labels", "I64", d.y)], {})
    if tc.lyap:
        sizes["perturb"] = st_write(out / files["perturb"],
                                    [(f"perturb.{i}", "F32", p) for i, p in enumerate(d.perturb)], {})
    elif (out / files["perturb"]).exists():
        (out / files["perturb"]).unlink()
    sizes["grad"] = st_write(out / files["grad"], [(k, dt, v) for k, (dt, v) in grad_stored(tc, d.grad).items()],
                             grad_metadata(tc, d.rec))
    if tc.steps:
        sizes["steps"] = st_write(out / files["steps"], _st_entries(d.steps),
                                  steps_metadata(tc, d.step_recs, d.clips))
    elif (out / files["steps"]).exists():
        (out / files["steps"]).unlink()
    return sizes


def load_train_case(out: pathlib.Path, name: str):
    """Rebuilds (TrainCase, net, x, y, perturb, stored grad, stored steps) from
    the files, with st_decode only."""
    files = train_files(name)
    gt, gmeta, _ = st_read(out / files["grad"])
    for k in ("lyap_weight", "lyap_target", "lyap_eps", "seed", "case", "lyapunov"):
        if k not in gmeta:
            raise AssertionError(f"{name}: grad metadata lacks {k}")
    w = float(gmeta["lyap_weight"])
    if gmeta["lyapunov"] != ("1" if w > 0 else "0"):
        raise AssertionError(f"{name}: lyapunov flag disagrees with lyap_weight")
    cfg, net, x, perturb = load_net_input(out, name, files, w > 0, float(gmeta["lyap_eps"]),
                                          gmeta["case"])
    tc = TrainCase(cfg, w, float(gmeta["lyap_target"]), dropout_seed=int(gmeta["seed"]))
    stored_steps = None
    if (out / files["steps"]).exists():
        stt, smeta, _ = st_read(out / files["steps"])
        tc.steps = int(smeta["steps"])
        tc.optimizer = smeta["optimizer"]
        for k in ("lr", "beta1", "beta2", "adam_eps", "momentum", "weight_decay", "clip"):
            setattr(tc, k, float(smeta[k]))
        if smeta["dampening"] != "0.0" or smeta["nesterov"] != "0":
            raise AssertionError(f"{name}: dampening/nesterov unsupported")
        for k in ("lyap_weight", "lyap_target", "lyap_eps", "seed"):
            if smeta[k] != gmeta[k]:
                raise AssertionError(f"{name}: steps metadata {k} differs from the grad file")
        if any(v[0] not in ("F64", "I64") for v in stt.values()):
            raise AssertionError(f"{name}: steps dtypes")
        stored_steps = {k: _tensor(v) for k, v in stt.items()}
    make_trainable(net, cfg, tc.dropout_seed)
    lt, _, _ = st_read(out / files["labels"])
    if set(lt) != {"labels"} or lt["labels"][0] != "I64" or lt["labels"][1].shape != (cfg.batch,):
        raise AssertionError(f"{name}: bad labels file")
    y = _tensor(lt["labels"])
    if not bool(((y >= 0) & (y < cfg.num_classes)).all()):
        raise AssertionError(f"{name}: label out of range")
    gdt = {dt for k, (dt, _) in gt.items() if k.startswith(GRAD_PREFIXES)}
    if len(gdt) != 1 or not gdt <= {"F32", "F64"}:
        raise AssertionError(f"{name}: grad.*/grad_ce.* dtypes {sorted(gdt)}")
    tc.grad_dtype = gdt.pop()
    for k, (dt, _) in gt.items():
        want = ("I64" if k.endswith("num_batches_tracked") else
                tc.grad_dtype if k.startswith(GRAD_PREFIXES) else "F64")
        if dt != want:
            raise AssertionError(f"{name}: {k} stored as {dt}")
    return tc, net, x, y, perturb, {k: _tensor(v) for k, v in gt.items()}, stored_steps, gmeta


def _rel_err(a, b) -> float:
    a, b = a.double(), b.double()
    scale = float(b.abs().max()) if b.numel() else 0.0
    d = float((a - b).abs().max()) if b.numel() else 0.0
    return d / scale if scale > 0 else (0.0 if d == 0 else math.inf)


def f32_train_replay(tc: TrainCase, net, x, y, perturb, rec64, grad64, step_recs64, steps64):
    """The same training computation in float32 (benettin_forward for the
    gradients, the reference forward for the steps). The gradient replay must
    emit identical spikes. Returns {'loss': abs diff, 'lyap': abs diff, 'grad':
    {param: rel err}, and for steps: 'steps_same': number of leading steps with
    identical spikes, 'steps_loss': abs diff per step, 'final': {param: rel err}
    of the end-to-end float32 run, 'opt_final': {param: rel err} of the float32
    optimizer fed with the stored float64 gradients rounded to float32}."""
    out, grads, _, rec = grad_run(net, tc, x, y, perturb, "benettin", record=True, dtype=torch.float32)
    if rec.spike_digests() != rec64.spike_digests():
        raise AssertionError(f"{tc.name}: float32 replay changed the spikes")
    res = {"loss": abs(float(out["loss"]) - float(grad64["loss"][0])),
           "lyap": abs(float(out["lyap"]) - float(grad64["lyapunov"][0])) if tc.lyap else None,
           "grad": {k: _rel_err(g, grad64[f"grad.{k}"]) for k, g in grads.items()}, "grad_ce": None}
    if any(k.startswith("grad_ce.") for k in grad64):
        _, gce, _, _ = grad_run(net, dataclasses.replace(tc, lyap_weight=0.0), x, y, perturb,
                                "benettin", record=False, dtype=torch.float32)
        res["grad_ce"] = {k: _rel_err(g, grad64[f"grad_ce.{k}"]) for k, g in gce.items()}
    if tc.steps:
        s32, recs32, _ = run_steps(net, tc, x, y, perturb, dtype=torch.float32)
        same = 0
        while same < tc.steps and recs32[same].spike_digests() == step_recs64[same].spike_digests():
            same += 1
        res["steps_same"] = same
        res["steps_loss"] = [abs(float(a) - float(b)) for a, b in zip(s32["losses"], steps64["losses"])]
        pnames = [n for n, _ in net.named_parameters()]
        res["final"] = {n: _rel_err(s32[f"final.{n}"], steps64[f"final.{n}"]) for n in pnames}
        res["opt_final"] = optimizer_replay(tc, net, steps64, torch.float32)
    return res


def optimizer_replay(tc: TrainCase, net, steps64, dtype):
    """Applies the optimizer (with clipping) to the stored per-step gradients,
    in dtype, from the model's parameters; returns {param: rel err} against
    final.<param>. In float64 it must reproduce final.* exactly."""
    c = clone_net(net, dtype)
    names = [n for n, _ in c.named_parameters()]
    params = [p for _, p in c.named_parameters()]
    opt = make_optimizer(tc, params)
    for k in range(tc.steps):
        for n, p in zip(names, params):
            g = steps64[f"grads.{k}.{n}"]
            p.grad = (g.to(dtype) if dtype is not None else g).clone()
        if tc.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, max_norm=tc.clip)
        opt.step()
    return {n: _rel_err(p.detach(), steps64[f"final.{n}"]) for n, p in zip(names, params)}


def check_train_case(out: pathlib.Path, name: str):
    """Re-reads a training fixture, recomputes it bit-exactly, checks health,
    replays in float32, and checks the encode/decode round trip."""
    tc, net, x, y, perturb, stored, stored_steps, gmeta = load_train_case(out, name)
    defined = {t.name: t for t in TRAIN_CASES}.get(name)
    if defined is not None and defined.grad_dtype != tc.grad_dtype:
        raise AssertionError(f"{name}: gradients stored as {tc.grad_dtype}, defined {defined.grad_dtype}")
    assert_f32_exact(net)
    philox_self_test()
    grad, rec, steps, step_recs, clips, shares, why = evaluate_train(tc, net, x, y, perturb)
    if why is not None:
        raise AssertionError(f"{name}: unhealthy: {why}")
    if set(grad) != set(stored):
        raise AssertionError(f"{name}: grad names {sorted(set(grad) ^ set(stored))}")
    for k, (dt, v) in grad_stored(tc, grad).items():
        if not torch.equal(v.double() if v.is_floating_point() else v, stored[k]):
            raise AssertionError(f"{name}: recomputed {k} ({dt}) differs")
    if grad_metadata(tc, rec) != gmeta:
        raise AssertionError(f"{name}: grad metadata differs")
    if tc.steps:
        if set(steps) != set(stored_steps):
            raise AssertionError(f"{name}: steps names {sorted(set(steps) ^ set(stored_steps))}")
        for k, v in steps.items():
            if not torch.equal(v, stored_steps[k]):
                raise AssertionError(f"{name}: recomputed steps {k} differs")
        if st_read(out / train_files(name)["steps"])[1] != steps_metadata(tc, step_recs, clips):
            raise AssertionError(f"{name}: steps metadata differs")
        if any(v != 0.0 for v in optimizer_replay(tc, net, stored_steps, None).values()):
            raise AssertionError(f"{name}: the optimizer on the stored gradients does not give final.*")
        for n, _ in net.named_parameters():
            g0 = grad_stored(tc, {f"grad.{n}": stored_steps[f"grads.0.{n}"]})[f"grad.{n}"][1]
            if not torch.equal(g0.double(), stored[f"grad.{n}"]):
                raise AssertionError(f"{name}: grads.0.{n} differs from grad.{n}")
    elif (out / train_files(name)["steps"]).exists():
        raise AssertionError(f"{name}: stale steps file")
    d32 = f32_train_replay(tc, net, x, y, perturb, rec, stored, step_recs, stored_steps)
    for p in train_files(name).values():
        path = out / p
        if not path.exists():
            continue
        blob = path.read_bytes()
        t, meta, order = st_decode(blob)
        again = st_encode([(k, t[k][0], t[k][1]) for k in order], meta)
        if again != blob:
            raise AssertionError(f"{p}: decode/encode round trip changed the bytes")
    return tc, rec, stored, stored_steps, step_recs, clips, shares, d32


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


def _train_table(rows):
    print()
    hdr = (f"{'training case':26} {'files':>5} {'bytes':>8}  {'margin':>8} {'loss':>10} "
           f"{'cross-ent':>10} {'lyapunov':>10} {'lyap share':>10}  firing rates: main | perturbed")
    print(hdr)
    print("-" * len(hdr))
    total = 0
    for name, nfiles, size, rec, stored, shares in rows:
        total += size
        rs = "/".join(f"{r:.3f}" for r in rec.rates(0))
        if rec.two:
            rs += " | " + "/".join(f"{r:.3f}" for r in rec.rates(1))
        ly = f"{float(stored['lyapunov'][0]):.6f}" if "lyapunov" in stored else "-"
        sh = f"{max(shares.values()):.3f}" if shares else "-"
        print(f"{name:26} {nfiles:>5} {size:>8}  {rec.min_margin():>8.2e} "
              f"{float(stored['loss'][0]):>10.6f} {float(stored['cross_entropy'][0]):>10.6f} "
              f"{ly:>10} {sh:>10}  {rs}")
    print(f"{'total':26} {'':>5} {total:>8}  ({total / 2**20:.2f} MiB)")
    print("lyap share: max over parameters of |grad of the regularizer| / |grad of the loss|")


def _train_details(name, tc, stored, stored_steps, step_recs, clips, shares, d32):
    print(f"\n{name}: loss {float(stored['loss'][0]):.12g}, cross-entropy "
          f"{float(stored['cross_entropy'][0]):.12g}"
          + (f", lyapunov {float(stored['lyapunov'][0]):.12g}" if "lyapunov" in stored else ""))
    ly = f", lyapunov {d32['lyap']:.1e}" if d32["lyap"] is not None else ""
    print(f"  float32 replay (same spikes): |loss diff| {d32['loss']:.1e}{ly}; gradient max|a-b|/max|b| "
          f"per parameter (max {max(d32['grad'].values()):.1e}):")
    if d32["grad_ce"] is not None:
        print("    (grad_ce: the float32 replay of the run with lyap_weight 0)")
    for k, v in d32["grad"].items():
        sh = f"  lyap share {shares[k]:.3f}" if shares else ""
        ce = f"  grad_ce {d32['grad_ce'][k]:.1e}" if d32["grad_ce"] is not None else ""
        print(f"    {k:32} {v:.1e}{sh}{ce}")
    if stored_steps is not None:
        ls = ", ".join(f"{float(v):.10f}" for v in stored_steps["losses"])
        print(f"  {tc.optimizer} steps: losses [{ls}]")
        margins = ", ".join(f"{r.min_margin():.2e}" for r in step_recs)
        print(f"  per-step min |mem - thr|: {margins}")
        if clips:
            print("  clip_grad_norm_ total norms: "
                  + ", ".join(f"{n:.4f}{' (clipped)' if c else ''}" for n, c in clips))
        print(f"  float32 end-to-end replay: identical spikes in the first {d32['steps_same']} of "
              f"{tc.steps} steps; |loss diff| per step "
              + ", ".join(f"{v:.1e}" for v in d32["steps_loss"]))
        print(f"    final parameters max|a-b|/max|b| (max {max(d32['final'].values()):.1e}): "
              + ", ".join(f"{k} {v:.1e}" for k, v in d32["final"].items()))
        print(f"  float32 optimizer on the stored gradients: final max|a-b|/max|b| "
              f"(max {max(d32['opt_final'].values()):.1e}): "
              + ", ".join(f"{k} {v:.1e}" for k, v in d32["opt_final"].items()))


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
    philox_self_test()
    names = [c.name for c in CASES] + [t.name for t in TRAIN_CASES]
    if args.cases:
        want = args.cases.split(",")
        unknown = set(want) - set(names)
        if unknown:
            ap.error(f"unknown cases {sorted(unknown)}")
        cases = [c for c in CASES if c.name in want]
        tcases = [t for t in TRAIN_CASES if t.name in want]
    else:
        cases, tcases = CASES, TRAIN_CASES
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
        for tc in tcases:
            print(f"{tc.name}: drawing", flush=True)
            d = draw_train(tc)
            write_train_case(d, out)
            print(f"  seed {tc.cfg.seed + d.attempt}, firing rates "
                  + " ".join(f"{r:.3f}" for r in d.rec.rates(0))
                  + f", min |mem - thr| = {d.rec.min_margin():.3e}", flush=True)

    rows = []
    for cfg in cases:
        _, rec, stored, d32 = check_case(out, cfg.name)
        paths = [out / p for p in case_files(cfg.name).values() if (out / p).exists()]
        size = sum(p.stat().st_size for p in paths)
        lyap = float(stored["lyapunov"][0]) if cfg.lyapunov else None
        rows.append((cfg.name, len(paths), size, rec.rates(0),
                     rec.rates(1) if cfg.lyapunov else None, rec.min_margin(), lyap, d32))
    trows = []
    for tc0 in tcases:
        tc, rec, stored, stored_steps, step_recs, clips, shares, d32 = check_train_case(out, tc0.name)
        paths = [out / p for p in train_files(tc.name).values() if (out / p).exists()]
        size = sum(p.stat().st_size for p in paths)
        trows.append((tc.name, len(paths), size, rec, stored, shares))
        _train_details(tc.name, tc, stored, stored_steps, step_recs, clips, shares, d32)
    print("\nself-check passed: every fixture re-read and recomputed bit-exactly")
    if rows:
        _table(rows)
    if trows:
        _train_table(trows)
    known = {p for c in CASES for p in case_files(c.name).values()}
    known |= {p for t in TRAIN_CASES for p in train_files(t.name).values()}
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
