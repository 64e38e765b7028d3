#!/usr/bin/env python3
"""Moves models between snncl and PyTorch (the seed's own modules) and checks that
both compute the same logits.

snncl -> PyTorch (`to-torch`): reads an snncl model file (`snncl train --out`, a
checkpoint, or any file in snncl's model format), builds the seed's
ConvLyapunovSNN or VGGLyapunovSNN at the file's input size, loads the tensors with
load_state_dict(strict=True) (a checkpoint's optim.* tensors are dropped), runs it
in eval mode on a batch and compares its logits with `snncl infer` on the same batch.
`--save-pt` also writes the state_dict as a PyTorch .pt file.

    /usr/bin/python3 tools/torch_interop.py to-torch --model M.safetensors [--save-pt M.pt]

PyTorch -> snncl (`from-torch`): builds a seed model (the seed's random
initialization under --init-seed, or the tensors of a torch state_dict .pt file),
writes it as an snncl model file (float32, int64 counters, the metadata snncl reads)
and checks that `snncl infer` gives the logits PyTorch gives (`--no-check`: only write).

    /usr/bin/python3 tools/torch_interop.py from-torch --out M.safetensors \\
        [--state-dict S.pt] --model simple --channels 4,8 --T 3 --encoding direct \\
        --in-channels 1 --height 28 --width 28

The batch for the comparison (both commands): `--input X.safetensors` (tensor `input`,
(B,C,H,W) images or (B,T,C,H,W) spikes), `--random N` uniform images, or `--count N`
images of an MNIST-format IDX directory (`--data`, default Debian's Fashion-MNIST,
`--split test|train`); the default is 32 Fashion-MNIST test images when the model
takes 1x28x28 images, else `--random 8`. Rate encoding draws from snncl's Philox
generator, which PyTorch does not have, so for rate models (and encoding `none`)
the images are encoded here (Bernoulli of clamp(x * gain, 0, 1), torch generator
seeded with --seed) and both sides get the same (B,T,C,H,W) spikes.

The reference is the seed's forward in float64. The check passes when
max|snncl - torch| <= tol * max(max|torch logit|, 1e-3) (tol 1e-4, the parity tests'
tolerance). A failure lists the worst samples with the smallest distance of any of
their membranes from the threshold: below ~1e-6 float32 and float64 may decide a
spike differently, so a failure there is rounding, not a wrong model.
Exit status: 0 match, 1 mismatch or error, 2 bad command line.

Needs torch and snntorch 0.9.4 (Debian's /usr/bin/python3 here) and the seed
(<repo>/../shared/seed/conv_lyapunov_snn.py, or --seed-dir). Models are built by
tools/snnpy/seed.py (its SimpleNet/VGGNet: the seed's classes at any input size).
"""
import argparse
import gzip
import json
import math
import os
import pathlib
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from snnpy import seed as seedmod  # noqa: E402
from snnpy.paths import REPO, default_seed_dir  # noqa: E402
from snnpy.safetensors import st_read, st_write  # noqa: E402

DEFAULT_SNNCL = REPO / "build" / "src" / "snncl"
DEFAULT_DATA = pathlib.Path("/usr/share/datasets/fashion-mnist")
FLOAT_DTYPES = ("F32", "F64")
INT_KEYS = ("num_batches_tracked", "reset_mechanism_val")
LOGIT_FLOOR = 1e-3
# A membrane this close to its threshold (in the float64 reference) makes the sample's
# spikes a float32 coin toss: such samples are left out of the comparison.
ILL_CONDITIONED = 1e-6


class Failure(Exception):
    """An error reported as `torch_interop: message` with exit status 1."""


# ------------------------------------------------------------------- models --
def describe(cfg):
    arch = (f"simple {list(cfg.channels)}" if cfg.model == "simple" else "vgg" if cfg.model == "vgg"
            else f"a network description of {len(cfg.description)} bytes")
    return (f"{arch}, {cfg.in_channels}x{cfg.height}x{cfg.width}, {cfg.num_classes} classes, "
            f"T={cfg.T}, encoding {cfg.encoding}")


def make_cfg(name, model, in_channels, height, width, num_classes, T, encoding, channels=(64, 128, 256),
             beta=0.9, threshold=1.0, dropout=None, encoding_gain=1.0):
    if model not in ("simple", "vgg"):
        raise Failure(f"model '{model}' is not simple or vgg")
    if encoding not in ("rate", "direct", "none"):
        raise Failure(f"encoding '{encoding}' is not rate, direct or none")
    if model == "simple":
        need = 1 << len(channels)
        if height < need or width < need:
            raise Failure(f"{len(channels)} blocks pool the input {len(channels)} times: "
                          f"{height}x{width} is too small")
    elif height < 8 or width < 8:
        raise Failure(f"vgg pools three times: {height}x{width} is too small (at least 8x8)")
    return seedmod.CaseConfig(name, model, in_channels, height, width, num_classes, batch=0, T=T,
                         encoding=encoding, lyapunov=False, description="", seed=0,
                         channels=tuple(channels), beta=beta, threshold=threshold,
                         dropout=dropout, encoding_gain=encoding_gain)


def seed_constructor(cfg):
    """The seed's constructor call for cfg, and the note on the input size."""
    if cfg.model == "simple":
        call = (f"ConvLyapunovSNN(in_channels={cfg.in_channels}, num_classes={cfg.num_classes}, "
                f"channels={list(cfg.channels)}, T={cfg.T}, encoding='{cfg.encoding}', "
                f"encoding_gain={cfg.encoding_gain:.6g}, dropout={cfg.dropout_p():.6g})")
        cls = "SimpleNet"
    else:
        call = (f"VGGLyapunovSNN(in_channels={cfg.in_channels}, num_classes={cfg.num_classes}, "
                f"T={cfg.T}, encoding='{cfg.encoding}', dropout={cfg.dropout_p():.6g})")
        cls = "VGGNet"
    if (cfg.height, cfg.width) != (32, 32):
        call += (f" -- the seed hard-codes 32x32 inputs; at {cfg.height}x{cfg.width} use "
                 f"tools/snnpy/seed.py's {cls}(height={cfg.height}, width={cfg.width}, ...)")
    return call


def state_from_model(net):
    """The float64 model's state as the tensors to load or write."""
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def load_state(net, state, what):
    """load_state_dict(strict=True) after checking names and shapes with clear
    messages; values are converted to the model's dtypes (float64, int64)."""
    want = net.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    if missing or unexpected:
        msg = f"{what}: the tensor names do not match the seed model's state_dict"
        if missing:
            msg += f"; missing: {', '.join(missing)}"
        if unexpected:
            msg += f"; unexpected: {', '.join(unexpected)}"
        raise Failure(msg)
    conv = {}
    for k, ref in want.items():
        v = torch.as_tensor(state[k])
        if tuple(v.shape) != tuple(ref.shape):
            if v.numel() == 1 and ref.numel() == 1:   # snnTorch scalars stored as (1,)
                v = v.reshape(ref.shape)
            else:
                raise Failure(f"{what}: {k} has shape {tuple(v.shape)}, the seed model's is "
                              f"{tuple(ref.shape)}")
        if ref.is_floating_point() != v.is_floating_point():
            if not ref.is_floating_point() and torch.equal(v, v.round()):
                v = v.round()
            elif not ref.is_floating_point():
                raise Failure(f"{what}: {k} should hold integers")
        conv[k] = v.to(ref.dtype)
    net.load_state_dict(conv, strict=True)


def read_snncl_model(path):
    """An snncl model or checkpoint file -> (cfg, float64 eval model, metadata)."""
    try:
        tensors, meta, _ = st_read(path)
    except (OSError, ValueError) as e:
        raise Failure(f"{path}: not a readable safetensors file: {e}")
    optim = [k for k in tensors if k.startswith("optim.")]
    if optim:
        print(f"{path}: a checkpoint: dropped its {len(optim)} optimizer tensors (optim.*); "
              f"the model's tensors remain")
        for k in optim:
            del tensors[k]
    if "snncl.network" in meta:
        return read_network_model(path, tensors, meta)
    kind = meta.get("model")
    if kind is None:
        kind = "simple" if "blocks.0.conv.weight" in tensors else "vgg" if "fc1.weight" in tensors else None
        if kind is None:
            raise Failure(f"{path}: no 'model' metadata and the tensors match neither simple nor vgg")
    if "height" not in meta or "width" not in meta:
        raise Failure(f"{path}: metadata 'height' and 'width' (the input size) are required")
    for k, (dt, _) in tensors.items():
        if dt not in FLOAT_DTYPES and not k.endswith(INT_KEYS):
            raise Failure(f"{path}: {k} is {dt}, a float tensor was expected")
    first = "blocks.0.conv.weight" if kind == "simple" else "blocks.0.0.weight"
    readout = "fc.weight" if kind == "simple" else "fc2.weight"
    for k in (first, readout):
        if k not in tensors:
            raise Failure(f"{path}: tensor '{k}' is missing")
    channels = []
    while kind == "simple" and f"blocks.{len(channels)}.conv.weight" in tensors:
        channels.append(int(tensors[f"blocks.{len(channels)}.conv.weight"][1].shape[0]))
    try:
        cfg = make_cfg(path.name, kind, int(tensors[first][1].shape[1]), int(meta["height"]),
                       int(meta["width"]), int(tensors[readout][1].shape[0]), int(meta.get("T", 25)),
                       meta.get("encoding", "rate"), channels=channels or (64, 128, 256),
                       dropout=float(meta["dropout"]) if "dropout" in meta else None,
                       encoding_gain=float(meta.get("encoding_gain", 1.0)))
    except ValueError as e:
        raise Failure(f"{path}: bad metadata: {e}")
    for k, n in (("in_channels", cfg.in_channels), ("num_classes", cfg.num_classes)):
        if k in meta and int(meta[k]) != n:
            raise Failure(f"{path}: metadata {k} = {meta[k]} but the tensors say {n}")
    net = seedmod.build_model(cfg)
    load_state(net, {k: torch.from_numpy(a.copy()) for k, (_, a) in tensors.items()}, str(path))
    return cfg, net, meta


def read_network_model(path, tensors, meta):
    """A model of a network description (metadata snncl.network): its nn.ModuleDict from
    tools/snnpy/network.py, behind the seed's interface."""
    from snnpy import network
    try:
        desc = json.loads(meta["snncl.network"])
        if "T" in meta:
            desc["T"] = int(meta["T"])   # as snncl: the file's T wins
        net = network.SeedLike(desc, network.build(desc).double().eval())
    except (ValueError, KeyError, TypeError) as e:
        raise Failure(f"{path}: bad snncl.network description: {e}")
    C, H, W = desc["input"]
    cfg = seedmod.CaseConfig(path.name, "network", C, H, W, desc["num_classes"], batch=0, T=desc.get("T", 25),
                             encoding=desc.get("encoding", "rate"), lyapunov=False,
                             description=meta["snncl.network"], seed=0,
                             encoding_gain=float(desc.get("encoding_gain", 1.0)))
    load_state(net, {k: torch.from_numpy(a.copy()) for k, (_, a) in tensors.items()}, str(path))
    for lif in net.leaky_layers():
        lif.spike_grad = seedmod._keep_dtype(lif.spike_grad)
    return cfg, net, meta


def snncl_metadata(cfg):
    """The metadata snncl writes (src/model/model_io.c) for cfg."""
    return {"format": "pt", "model": cfg.model, "T": str(cfg.T), "encoding": cfg.encoding,
            "encoding_gain": repr(float(cfg.encoding_gain)), "dropout": repr(float(cfg.dropout_p())),
            "in_channels": str(cfg.in_channels), "height": str(cfg.height), "width": str(cfg.width),
            "num_classes": str(cfg.num_classes)}


def write_snncl_model(path, cfg, net):
    """Writes net's state_dict as an snncl model: floats F32 (rounded to nearest),
    counters I64. Returns the largest relative change made by the rounding."""
    entries, worst = [], 0.0
    for k, v in net.state_dict().items():
        if v.is_floating_point():
            v32 = v.detach().float()
            d = float((v32.double() - v.double()).abs().max()) if v.numel() else 0.0
            s = float(v.double().abs().max()) if v.numel() else 0.0
            worst = max(worst, d / s if s > 0 else 0.0)
            entries.append((k, "F32", v32))
        else:
            entries.append((k, "I64", v.detach().long()))
    tmp = path.with_name(path.name + ".tmp")
    st_write(tmp, entries, snncl_metadata(cfg))
    os.replace(tmp, path)
    return worst


def load_torch_state(path):
    """A state_dict from a torch.save file: the dict itself, or under
    'state_dict' / 'model_state_dict' / 'model'."""
    try:
        obj = torch.load(str(path), map_location="cpu")
    except Exception as e:   # torch raises many kinds for unreadable files
        raise Failure(f"{path}: torch.load failed: {e}")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise Failure(f"{path}: not a state_dict (a dict of tensors)")
    return dict(obj)


# -------------------------------------------------------------------- batch --
def read_idx_images(directory, split):
    stem = "t10k" if split == "test" else "train"
    for name in (f"{stem}-images-idx3-ubyte", f"{stem}-images-idx3-ubyte.gz",
                 f"{stem}-images.idx3-ubyte"):
        p = pathlib.Path(directory) / name
        if p.exists():
            raw = gzip.open(p, "rb").read() if name.endswith(".gz") else p.read_bytes()
            break
    else:
        raise Failure(f"{directory}: no {stem}-images-idx3-ubyte[.gz]")
    if len(raw) < 16 or raw[:4] != b"\x00\x00\x08\x03":
        raise Failure(f"{p}: not an IDX image file (uint8, 3 dimensions)")
    n, h, w = struct.unpack(">III", raw[4:16])
    if len(raw) < 16 + n * h * w:
        raise Failure(f"{p}: truncated")
    return p, np.frombuffer(raw, dtype=np.uint8, count=n * h * w, offset=16).reshape(n, 1, h, w)


def make_batch(args, cfg):
    """The comparison batch: (x float64 tensor, pre_encoded, description).
    Images are float32-exact; spikes are 0/1."""
    C, H, W = cfg.in_channels, cfg.height, cfg.width
    source = args.input
    if source is None and args.random is None:
        if args.data != DEFAULT_DATA or ((C, H, W) == (1, 28, 28) and args.data.exists()):
            source = "data"
        else:
            args.random = 8
    if source == "data":
        path, imgs = read_idx_images(args.data, args.split)
        if imgs.shape[1:] != (C, H, W):
            raise Failure(f"{path} holds {imgs.shape[1]}x{imgs.shape[2]}x{imgs.shape[3]} images but the "
                          f"model takes {C}x{H}x{W}; use --input or --random")
        n = args.count
        if not 1 <= n or args.offset + n > imgs.shape[0]:
            raise Failure(f"{path} has {imgs.shape[0]} images; --offset {args.offset} --count {n} is outside")
        lut = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)   # as snncl scales pixels
        x = torch.from_numpy(lut[imgs[args.offset:args.offset + n]]).double()
        desc = f"{n} images of {path} (from {args.offset})"
    elif source is None:
        g = torch.Generator().manual_seed(args.seed)
        x = torch.rand((args.random, C, H, W), generator=g, dtype=torch.float32).double()
        desc = f"{args.random} random images (uniform [0,1), seed {args.seed})"
    else:
        try:
            t, _, _ = st_read(pathlib.Path(source))
        except (OSError, ValueError) as e:
            raise Failure(f"{source}: not a readable safetensors file: {e}")
        if "input" not in t or t["input"][0] not in FLOAT_DTYPES:
            raise Failure(f"{source}: needs a float tensor named 'input'")
        x = torch.from_numpy(t["input"][1].copy()).double()
        ok4 = tuple(x.shape[1:]) == (C, H, W)
        ok5 = x.dim() == 5 and tuple(x.shape[1:]) == (cfg.T, C, H, W)
        if x.shape[0] < 1 or not (ok4 or ok5):
            raise Failure(f"{source}: 'input' has shape {tuple(x.shape)}; the model takes (B, {C}, {H}, {W}) "
                          f"images or (B, {cfg.T}, {C}, {H}, {W}) spikes")
        if not torch.equal(x.float().double(), x):
            print(f"{source}: F64 input rounded to float32 (snncl computes in float32)")
            x = x.float().double()
        desc = f"{x.shape[0]} {'spike trains' if x.dim() == 5 else 'images'} of {source}"
    if x.dim() == 5:
        return x, True, desc
    if cfg.encoding == "direct":
        return x, False, desc
    gain = cfg.encoding_gain if cfg.encoding == "rate" else 1.0
    g = torch.Generator().manual_seed(args.seed)
    prob = (x * gain).clamp(0, 1).unsqueeze(1).expand(-1, cfg.T, -1, -1, -1)
    spikes = torch.bernoulli(prob, generator=g)
    why = "rate encoding" if cfg.encoding == "rate" else "encoding none takes spikes"
    return spikes, True, (f"{desc}, encoded here into (B,T,C,H,W) spikes ({why}; Bernoulli of "
                          f"clamp(x * {gain!r}, 0, 1), torch seed {args.seed})")


# --------------------------------------------------------------- comparison --
def torch_forward(net, x, pre_encoded):
    """The seed's forward in eval mode; returns (logits, firing rate per LIF layer,
    per-sample min |mem - threshold| over every layer and step)."""
    lifs = net.leaky_layers() if hasattr(net, "leaky_layers") else seedmod.lif_modules(net)
    B = x.shape[0]
    margin = torch.full((B,), math.inf, dtype=torch.float64)
    fired = [0.0] * len(lifs)
    seen = [0] * len(lifs)

    def hook_for(i):
        def hook(module, inputs, out):
            nonlocal margin
            spk, mem = out
            fired[i] += float(spk.sum())
            seen[i] += spk.numel()
            m = (mem.double() - module.threshold.double()).abs().reshape(mem.shape[0], -1).min(1).values
            margin = torch.minimum(margin, m)
        return hook

    handles = [lif.register_forward_hook(hook_for(i)) for i, lif in enumerate(lifs)]
    encoder = net.encoder
    try:
        net.eval()
        if pre_encoded:
            net.encoder = None
        with torch.no_grad():
            logits = net(x)[0]
    finally:
        net.encoder = encoder
        for h in handles:
            h.remove()
    return logits.double(), [f / s if s else 0.0 for f, s in zip(fired, seen)], margin


def run_snncl_infer(snncl, model_path, x, workdir, device):
    inp, out = pathlib.Path(workdir) / "input.safetensors", pathlib.Path(workdir) / "logits.safetensors"
    st_write(inp, [("input", "F32", x.float())], {})
    cmd = [str(snncl), "infer", "--model", str(model_path), "--input", str(inp), "--output", str(out)]
    if device is not None:
        cmd += ["--device", device]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except OSError as e:
        raise Failure(f"cannot run {snncl}: {e} (build snncl, or pass --snncl PATH)")
    except subprocess.TimeoutExpired:
        raise Failure(f"{' '.join(cmd)} timed out")
    if r.returncode != 0:
        raise Failure(f"{' '.join(cmd)} exited with {r.returncode}:\n{r.stdout}{r.stderr}".rstrip())
    t, _, _ = st_read(out)
    return torch.from_numpy(t["logits"][1].copy()).double()


def compare(args, model_path, cfg, net):
    """Runs both sides on the batch; prints the figures; returns 0 or 1."""
    x, pre, desc = make_batch(args, cfg)
    print(f"batch: {desc}")
    ref, rates, margin = torch_forward(net, x, pre)
    if args.keep:
        workdir = pathlib.Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
        got = run_snncl_infer(args.snncl, model_path, x, workdir, args.device)
    else:
        with tempfile.TemporaryDirectory(prefix="torch_interop.") as workdir:
            got = run_snncl_infer(args.snncl, model_path, x, workdir, args.device)
    if got.shape != ref.shape:
        raise Failure(f"snncl wrote logits {tuple(got.shape)}, PyTorch gives {tuple(ref.shape)}")
    # A sample with a membrane within ILL_CONDITIONED of its threshold has a spike that
    # float32 (snncl) and float64 (the reference) may legitimately decide differently,
    # after which its logits can differ by a whole spike's weight: such samples are left
    # out of the comparison, as long as most of the batch remains.
    keep = margin >= ILL_CONDITIONED
    kept = int(keep.sum())
    if kept < 0.75 * x.shape[0]:
        raise Failure(f"only {kept} of {x.shape[0]} samples have every membrane at least "
                      f"{ILL_CONDITIONED:g} from its threshold; use another batch (--first, --count)")
    diff = (got - ref).abs()
    scale = max(float(ref[keep].abs().max()), LOGIT_FLOOR)
    rel = float(diff[keep].max()) / scale
    agree = int((got.argmax(1) == ref.argmax(1))[keep].sum())
    print("PyTorch (seed, float64, eval) firing rates per LIF layer: "
          + " ".join(f"{r:.3f}" for r in rates)
          + f"; min |membrane - threshold| {float(margin.min()):.2e}")
    if kept < x.shape[0]:
        print(f"{x.shape[0] - kept} sample(s) left out: a membrane within {ILL_CONDITIONED:g} of its "
              "threshold, where float32 and float64 may decide a spike differently")
    print(f"predictions agree on {agree}/{kept} samples")
    if rates[-1] == 0.0:
        print("warning: the last LIF layer never fired, so every logit is the readout's bias and the "
              "comparison checks little (try trained weights or another batch)")
    ok = rel <= args.tol
    print(f"max |snncl - torch| = {float(diff.max()):.3e}, max |logit| = {float(ref.abs().max()):.4g}: "
          f"max relative difference {rel:.3e} (tolerance {args.tol:g}): {'OK' if ok else 'MISMATCH'}")
    if not ok:
        per = diff.max(1).values / scale * keep
        worst = per.argsort(descending=True)[:5]
        for b in worst.tolist():
            print(f"  sample {b}: relative difference {float(per[b]):.3e}, "
                  f"min |membrane - threshold| {float(margin[b]):.2e}")
        if all(float(margin[b]) < 1e-5 for b in worst.tolist() if float(per[b]) > args.tol):
            print("  every failing sample has a membrane within 1e-5 of its threshold: float32 (snncl) "
                  "and float64 (the reference) may decide that spike differently")
    return 0 if ok else 1


# --------------------------------------------------------------- commands --
def cmd_to_torch(args):
    path = pathlib.Path(args.model)
    cfg, net, _ = read_snncl_model(path)
    if cfg.model == "network":
        print(f"{path}: {describe(cfg)}; loaded into its nn.ModuleDict (tools/snnpy/network.py) with "
              "load_state_dict(strict=True)")
    else:
        print(f"{path}: {describe(cfg)}; loaded into the seed's model with load_state_dict(strict=True)")
        print(f"  PyTorch model: {seed_constructor(cfg)}")
    if args.save_pt:
        dtypes = {k: dt for k, (dt, _) in st_read(path)[0].items()}
        state = {k: v.float() if dtypes[k] == "F32" else v.clone() for k, v in net.state_dict().items()}
        torch.save(state, args.save_pt)
        print(f"wrote {args.save_pt}: the state_dict ({len(state)} tensors, the file's dtypes)")
    if args.no_check:
        return 0
    return compare(args, path, cfg, net)


def cmd_from_torch(args):
    state = load_torch_state(args.state_dict) if args.state_dict else None
    model = args.model
    if state is not None and model is None:
        model = "simple" if "blocks.0.conv.weight" in state else "vgg" if "fc1.weight" in state else None
        if model is None:
            raise Failure(f"{args.state_dict}: the names match neither simple nor vgg; give --model")
    model = model or "simple"
    channels = [int(c) for c in args.channels.split(",")] if args.channels else None
    in_channels, num_classes = args.in_channels, args.num_classes
    if state is not None:
        first = "blocks.0.conv.weight" if model == "simple" else "blocks.0.0.weight"
        readout = "fc.weight" if model == "simple" else "fc2.weight"
        for k in (first, readout):
            if k not in state:
                raise Failure(f"{args.state_dict}: tensor '{k}' is missing (a {model} model)")
        found = []
        while model == "simple" and f"blocks.{len(found)}.conv.weight" in state:
            found.append(int(state[f"blocks.{len(found)}.conv.weight"].shape[0]))
        for what, given, have in (("--channels", channels, found or None),
                                  ("--in-channels", in_channels, int(state[first].shape[1])),
                                  ("--num-classes", num_classes, int(state[readout].shape[0]))):
            if given is not None and have is not None and given != have:
                raise Failure(f"{what} {given} but {args.state_dict} has {have}")
        channels = channels or found
        in_channels = in_channels or int(state[first].shape[1])
        num_classes = num_classes or int(state[readout].shape[0])
    cfg = make_cfg(pathlib.Path(args.out).name, model, in_channels or 3, args.height, args.width,
                   num_classes or 10, args.T, args.encoding, channels=channels or (64, 128, 256),
                   beta=args.beta, threshold=args.threshold, dropout=args.dropout,
                   encoding_gain=args.encoding_gain)
    torch.manual_seed(args.init_seed)
    net = seedmod.build_model(cfg)       # the seed's initialization (float32 values, held in float64)
    if state is not None:
        load_state(net, state, str(args.state_dict))
        origin = f"the state_dict of {args.state_dict}"
    else:
        origin = f"the seed's random initialization (torch seed {args.init_seed})"
    out = pathlib.Path(args.out)
    worst = write_snncl_model(out, cfg, net)
    print(f"wrote {out}: {describe(cfg)}, from {origin}")
    if worst > 0:
        print(f"  float64 values rounded to float32 (largest relative change {worst:.2e})")
    if args.no_check:
        return 0
    return compare(args, out, cfg, net)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Run `torch_interop.py COMMAND --help` for a command's options.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p):
        g = p.add_argument_group("comparison (snncl infer vs the seed's PyTorch forward)")
        g.add_argument("--snncl", type=pathlib.Path, default=DEFAULT_SNNCL,
                       help="the snncl executable (default build/src/snncl)")
        g.add_argument("--device", help="snncl's --device (default $SNNCL_DEVICE or 0)")
        g.add_argument("--tol", type=float, default=1e-4,
                       help="tolerance on max|diff| / max|logit| (default 1e-4)")
        g.add_argument("--no-check", action="store_true", help="convert only, do not compare")
        g.add_argument("--input", help="batch: safetensors file with 'input' (B,C,H,W) or (B,T,C,H,W)")
        g.add_argument("--random", type=int, metavar="N", help="batch: N uniform random images")
        g.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA,
                       help="batch: MNIST-format IDX directory (default Debian's Fashion-MNIST)")
        g.add_argument("--split", choices=("test", "train"), default="test", help="IDX split (default test)")
        g.add_argument("--count", type=int, default=32, help="IDX images to use (default 32)")
        g.add_argument("--offset", type=int, default=0, help="first IDX image (default 0)")
        g.add_argument("--seed", type=int, default=0, help="seed of random images and of rate encoding")
        g.add_argument("--keep", metavar="DIR", help="keep snncl's input and output files in DIR")
        p.add_argument("--seed-dir", type=pathlib.Path, default=default_seed_dir(),
                       help="directory of the seed's conv_lyapunov_snn.py (default ../shared/seed)")

    p = sub.add_parser("to-torch", help="snncl model file -> the seed's PyTorch model (and compare)",
                       description="Loads an snncl model file into the seed's PyTorch model and compares logits.")
    p.add_argument("--model", required=True, help="snncl model or checkpoint (.safetensors)")
    p.add_argument("--save-pt", metavar="PATH", help="also write the state_dict with torch.save")
    common(p)
    p.set_defaults(func=cmd_to_torch)

    p = sub.add_parser("from-torch", help="seed PyTorch model -> snncl model file (and compare)",
                       description="Writes a seed PyTorch model as an snncl model file and compares logits.")
    p.add_argument("--out", required=True, help="snncl model file to write (.safetensors)")
    p.add_argument("--state-dict", type=pathlib.Path, metavar="PT",
                   help="torch.save'd state_dict to export (default: the seed's random initialization)")
    p.add_argument("--init-seed", type=int, default=0, help="torch.manual_seed before building (default 0)")
    p.add_argument("--model", choices=("simple", "vgg"), help="architecture (default simple, or from --state-dict)")
    p.add_argument("--channels", help="simple: channels per block (default 64,128,256, or from --state-dict)")
    p.add_argument("--in-channels", type=int, help="input channels (default 3, or from --state-dict)")
    p.add_argument("--num-classes", type=int, help="classes (default 10, or from --state-dict)")
    p.add_argument("--height", type=int, default=32, help="input height (default 32)")
    p.add_argument("--width", type=int, default=32, help="input width (default 32)")
    p.add_argument("--T", type=int, default=25, help="time steps (default 25)")
    p.add_argument("--encoding", choices=("rate", "direct", "none"), default="rate", help="(default rate)")
    p.add_argument("--encoding-gain", type=float, default=1.0, help="rate encoding gain (default 1.0)")
    p.add_argument("--dropout", type=float, help="dropout (default 0.2 simple, 0.3 vgg); eval ignores it")
    p.add_argument("--beta", type=float, default=0.9, help="initial membrane decay (default 0.9)")
    p.add_argument("--threshold", type=float, default=1.0, help="initial threshold (default 1.0)")
    common(p)
    p.set_defaults(func=cmd_from_torch)

    args = ap.parse_args(argv)
    if args.random is not None and args.random < 1:
        ap.error("--random must be at least 1")
    if args.input is not None and args.random is not None:
        ap.error("--input and --random exclude each other")
    seed_file = args.seed_dir / "conv_lyapunov_snn.py"
    if not seed_file.exists():
        print(f"torch_interop: the seed is not at {seed_file} (give --seed-dir)", file=sys.stderr)
        return 1
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    seedmod.load_seed(args.seed_dir)
    try:
        return args.func(args)
    except Failure as e:
        print(f"torch_interop: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
