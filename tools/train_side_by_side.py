#!/usr/bin/python3
"""snncl and the seed (PyTorch + snnTorch), trained side by side: the same initial
weights (the seed's initialization, written as an snncl model), the same batches in
the same order (the first images of the training split, no shuffle), no dropout, no
regularizer, Adam with a constant learning rate. snncl runs through its C API
(libsnncl, by ctypes), so nothing but the arithmetic differs. Prints both losses at
every step and, every --every steps, the largest parameter difference relative to
the parameter's largest value. Both sides compute in float32: they drift apart
slowly (rounding, then spikes that flip), so a third run, the seed in float64, is the
yardstick: snncl should stay as close to it as the float32 seed does. Where snncl
parts from it faster, that is a bug (this found BatchNorm's statistics losing digits
in long float sums: cl/prelude.cl, snn_ksum).

  /usr/bin/python3 tools/train_side_by_side.py --steps 100
  /usr/bin/python3 tools/train_side_by_side.py --random --steps 3 --check 1e-5   (tests/: exit 1
        when snncl's first loss differs from the float32 seed's by more than that, relatively)

Needs torch and snntorch (exit 77 without them, for the test), the built library
(--lib, default build/src/libsnncl.so) and Fashion-MNIST (Debian's
dataset-fashion-mnist), or random images with --random."""
import argparse
import copy
import ctypes
import gzip
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from snnpy.paths import REPO, default_seed_dir  # noqa: E402

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import snntorch  # noqa: F401
except ImportError as e:
    print(f"train_side_by_side: skipped: {e} (needs torch and snntorch)", file=sys.stderr)
    sys.exit(77)

from snnpy import seed as seedmod  # noqa: E402
from snnpy.safetensors import st_read  # noqa: E402
import torch_interop  # noqa: E402


class TrainConfig(ctypes.Structure):   # snn_train_config (include/snncl.h)
    _fields_ = [("optimizer", ctypes.c_int), ("lr", ctypes.c_float), ("beta1", ctypes.c_float),
                ("beta2", ctypes.c_float), ("adam_eps", ctypes.c_float), ("momentum", ctypes.c_float),
                ("weight_decay", ctypes.c_float), ("schedule", ctypes.c_int), ("total_steps", ctypes.c_int64),
                ("step_size", ctypes.c_int64), ("gamma", ctypes.c_float), ("grad_clip", ctypes.c_float),
                ("lyap_weight", ctypes.c_float), ("lyap_target", ctypes.c_float), ("lyap_eps", ctypes.c_float),
                ("lyap_warmup", ctypes.c_int64), ("reserved", ctypes.c_uint8 * 56)]


class Batch(ctypes.Structure):         # snn_batch
    _fields_ = [("input", ctypes.POINTER(ctypes.c_float)), ("labels", ctypes.POINTER(ctypes.c_int64)),
                ("size", ctypes.c_int), ("seed", ctypes.c_uint64),
                ("perturb", ctypes.c_void_p), ("pre_encoded", ctypes.c_int), ("reserved", ctypes.c_uint8 * 32)]


class StepStats(ctypes.Structure):     # snn_step_stats
    _fields_ = [("loss", ctypes.c_float), ("cross_entropy", ctypes.c_float), ("lyapunov", ctypes.c_float),
                ("correct", ctypes.c_int), ("lr", ctypes.c_float), ("grad_norm", ctypes.c_float),
                ("reserved", ctypes.c_uint8 * 32)]


SCHEDULE_CONSTANT = 0


class Snncl:
    def __init__(self, lib_path):
        self.lib = ctypes.CDLL(str(lib_path))
        self.lib.snn_last_error.restype = ctypes.c_char_p
        self.lib.snn_status_str.restype = ctypes.c_char_p

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: {self.lib.snn_status_str(status).decode()}: "
                               f"{self.lib.snn_last_error().decode()}")


def load_images(args, n):
    if args.random:
        rng = np.random.default_rng(args.seed)
        return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)
    path, images = torch_interop.read_idx_images(args.data_dir, "train")
    labels_path = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    raw = gzip.decompress(labels_path.read_bytes()) if labels_path.suffix == ".gz" else labels_path.read_bytes()
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)
    return (images[:n].astype(np.float32) / 255.0), labels[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--every", type=int, default=10, help="compare parameters every N steps")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channels", default="16,32,64")
    ap.add_argument("--T", type=int, default=6)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1, help="torch's seed for the initial weights")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--random", action="store_true", help="random images instead of Fashion-MNIST")
    ap.add_argument("--lib", default=str(REPO / "build" / "src" / "libsnncl.so"))
    ap.add_argument("--check", type=float, default=0.0,
                    help="exit 1 when, in the first --check-steps steps, snncl's loss differs from the "
                         "float32 seed's by more than this, relatively")
    ap.add_argument("--check-steps", type=int, default=1,
                    help="steps before the two float32 runs may part by chaos (1 on random images: their "
                         "many neurons near the threshold flip on any rounding after the first update)")
    args = ap.parse_args()

    if not (default_seed_dir() / "conv_lyapunov_snn.py").exists():
        print(f"train_side_by_side: skipped: no seed at {default_seed_dir()} (set SNNCL_SEED_DIR)",
              file=sys.stderr)
        return 77
    seedmod.load_seed(default_seed_dir())
    channels = tuple(int(c) for c in args.channels.split(","))
    cfg = torch_interop.make_cfg("side_by_side", "simple", 1, 28, 28, 10, args.T, "direct",
                                 channels=channels, dropout=0.0)
    torch.manual_seed(args.seed)
    net64 = seedmod.build_model(cfg).train()          # float64: the yardstick
    net = copy.deepcopy(net64).float()                # the seed as it runs, float32
    opts = [torch.optim.Adam(n.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)
            for n in (net, net64)]
    x_all, y_all = load_images(args, args.steps * args.batch)

    s = Snncl(args.lib)
    lib = s.lib
    ctx, model, trainer = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    with tempfile.TemporaryDirectory() as tmp:
        init = pathlib.Path(tmp) / "init.safetensors"
        torch_interop.write_snncl_model(init, cfg, net)
        s.check(lib.snn_context_create(ctypes.byref(ctx), None), "snn_context_create")
        try:
            s.check(lib.snn_model_load(ctypes.byref(model), ctx, str(init).encode()), "snn_model_load")
            tc = TrainConfig()
            lib.snn_train_config_default(ctypes.byref(tc))
            tc.lr, tc.schedule, tc.lyap_weight = args.lr, SCHEDULE_CONSTANT, 0.0
            s.check(lib.snn_trainer_create(ctypes.byref(trainer), model, ctypes.byref(tc)), "snn_trainer_create")
            worst = run(args, s, model, trainer, net, net64, opts, x_all, y_all, pathlib.Path(tmp))
        finally:
            lib.snn_trainer_free(trainer)
            lib.snn_model_free(model)
            lib.snn_context_free(ctx)
    if args.check and worst > args.check:
        print(f"FAIL: in the first {args.check_steps} step(s) snncl's loss and the float32 seed's differ by "
              f"{worst:.3g} (relative), more than {args.check:g}")
        return 1
    return 0


def param_dists(s, model, net, net64, path):
    """Over all parameters: ||snncl - seed64|| / ||seed64|| and ||seed32 - seed64|| / ||seed64||."""
    s.check(s.lib.snn_model_save(model, str(path).encode()), "snn_model_save")
    tensors, _, _ = st_read(path)
    d_snncl = d_seed = ref = 0.0
    for (name, p32), (_, p64) in zip(net.named_parameters(), net64.named_parameters()):
        mine = torch.from_numpy(tensors[name][1].astype(np.float64)).reshape(p64.shape)
        d_snncl += float(((mine - p64.detach()) ** 2).sum())
        d_seed += float(((p32.detach().double() - p64.detach()) ** 2).sum())
        ref += float((p64.detach() ** 2).sum())
    return (d_snncl / ref) ** 0.5, (d_seed / ref) ** 0.5


def seed_step(net, opt, xb, yb, dtype):
    opt.zero_grad(set_to_none=True)
    logits, _, _ = net(torch.from_numpy(xb).to(dtype))
    loss = F.cross_entropy(logits, torch.from_numpy(yb))
    loss.backward()
    opt.step()
    return float(loss)


def run(args, s, model, trainer, net, net64, opts, x_all, y_all, tmp):
    print("losses before each update; rel: |x - seed float64| / seed float64")
    print(f"{'step':>5} {'seed f64':>12} {'seed f32':>12} {'snncl':>12} {'rel seed f32':>13} {'rel snncl':>10}")
    worst = 0.0
    for k in range(args.steps):
        xb = np.ascontiguousarray(x_all[k * args.batch:(k + 1) * args.batch])
        yb = np.ascontiguousarray(y_all[k * args.batch:(k + 1) * args.batch])
        a32 = seed_step(net, opts[0], xb, yb, torch.float32)
        a64 = seed_step(net64, opts[1], xb, yb, torch.float64)
        batch = Batch(xb.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                      yb.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), len(yb), k, None, 0)
        st = StepStats()
        s.check(s.lib.snn_trainer_step(trainer, ctypes.byref(batch), ctypes.byref(st)), "snn_trainer_step")
        b = float(st.loss)
        r32, rs = abs(a32 - a64) / abs(a64), abs(b - a64) / abs(a64)
        if k < args.check_steps:
            worst = max(worst, abs(b - a32) / abs(a32))
        print(f"{k:5d} {a64:12.6f} {a32:12.6f} {b:12.6f} {r32:13.2e} {rs:10.2e}")
        if (k + 1) % args.every == 0 or k + 1 == args.steps:
            ds, d32 = param_dists(s, model, net, net64, tmp / "now.safetensors")
            print(f"      after {k + 1} steps, parameters' distance from the float64 seed (relative norm): "
                  f"snncl {ds:.3e}, seed float32 {d32:.3e}")
        sys.stdout.flush()
    return worst


if __name__ == "__main__":
    sys.exit(main())
