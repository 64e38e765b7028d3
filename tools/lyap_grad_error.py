#!/usr/bin/python3
"""How far the regularizer's float32 gradient is from float64 autograd, on the
standard workloads: snncl (`snncl grad`) and the seed run in float32, both against
the seed in float64, on the same weights, spikes and initial perturbation.

The regularizer's gradient is a difference of two backward passes through
trajectories eps apart, so float32 loses digits there that the cross-entropy's
gradient keeps (docs/semantics.md, "The regularizer's gradient in float32"). For
each case this prints, worst over the trainable tensors, max|a - b| / max|b| of

  total  the whole gradient (cross-entropy + lyap_weight * (lambda - target)^2),
  reg    its regularizer part: the gradient with the regularizer minus the one
         without (each side computes both), over the tensors the regularizer reaches,
  cos    the cosine between that part and float64's, over all those tensors
         together: whether it still points the right way,

and the regularizer part's share of the gradient (its norm over the total's). A
third column group is the problem's own sensitivity: float64 again, with every
weight nudged by float32's rounding. Where a network is chaotic (an estimate well
above its floor), rounding flips spikes, the trajectories part, and no float32
computation follows float64: the nudged float64 run parts as much.

  /usr/bin/python3 tools/lyap_grad_error.py                     (the standard workloads)
  /usr/bin/python3 tools/lyap_grad_error.py --workload simple:28x28x1:8:direct --draws 5

Needs torch and snntorch, the seed (../shared/seed or SNNCL_SEED_DIR), the built
snncl (--snncl) and, for 1x28x28 inputs, Fashion-MNIST (random images otherwise)."""
import argparse
import dataclasses
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from snnpy.paths import REPO, default_seed_dir  # noqa: E402

try:
    import numpy as np
    import torch
    import snntorch  # noqa: F401
except ImportError as e:
    print(f"lyap_grad_error: needs torch and snntorch: {e}", file=sys.stderr)
    sys.exit(77)

from snnpy import seed as seedmod  # noqa: E402
from snnpy.safetensors import st_read, st_write  # noqa: E402
import gen_fixtures as gf  # noqa: E402
import torch_interop  # noqa: E402

STANDARD = ["simple:32x32x3:25:rate", "simple:28x28x1:8:direct", "vgg:32x32x3:8:direct"]


def parse_workload(text):
    """model:HxWxC:T:encoding[:C1-C2-..] (simple's channels, default 64-128-256)."""
    parts = text.split(":")
    model, size, T, encoding = parts[:4]
    channels = tuple(int(v) for v in parts[4].split("-")) if len(parts) > 4 else (64, 128, 256)
    h, w, c = (int(v) for v in size.split("x"))
    return model, c, h, w, int(T), encoding, channels


def draw_batch(c, h, w, T, encoding, batch, g, data_dir):
    """Images (fashion-mnist for 1x28x28, uniform otherwise) and labels; rate
    encoding is drawn here (Bernoulli) so both sides see the same spikes."""
    if (c, h, w) == (1, 28, 28) and pathlib.Path(data_dir).exists():
        _, images = torch_interop.read_idx_images(data_dir, "test")
        idx = torch.randint(0, images.shape[0], (batch,), generator=g)
        x = torch.from_numpy(images[idx.numpy()].astype(np.float64) / 255.0).reshape(batch, 1, 28, 28)
    else:
        x = torch.rand(batch, c, h, w, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (batch,), generator=g)
    if encoding == "rate":
        p = x.clamp(0, 1).unsqueeze(1).expand(-1, T, -1, -1, -1)
        x = torch.bernoulli(p, generator=g)
    return x, y


def rel_err(a, b):
    scale = float(b.abs().max())
    return float((a - b).abs().max()) / scale if scale > 0 else 0.0


def snncl_grads(snncl, tmp, model_path, x, y, perturb, tc):
    """(loss parts, grads with the regularizer, grads without) from `snncl grad`."""
    st_write(tmp / "x.safetensors", [("input", "F32", x.float())], {})
    st_write(tmp / "y.safetensors", [("labels", "I64", y.long())], {})
    st_write(tmp / "p.safetensors", [(f"perturb.{i}", "F32", p.float()) for i, p in enumerate(perturb)], {})
    out = {}
    for weight in (tc.lyap_weight, 0.0):
        cmd = [snncl, "grad", "--model", str(model_path), "--input", str(tmp / "x.safetensors"),
               "--labels", str(tmp / "y.safetensors"), "--output", str(tmp / "g.safetensors"),
               "--lyap-weight", repr(weight), "--lyap-target", repr(tc.lyap_target),
               "--lyap-eps", repr(tc.cfg.lyap_eps)]
        if weight > 0:
            cmd += ["--perturb", str(tmp / "p.safetensors")]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        tensors, _, _ = st_read(tmp / "g.safetensors")
        out[weight] = {k: torch.from_numpy(arr.astype(np.float64)) for k, (_, arr) in tensors.items()}
    return out[tc.lyap_weight], out[0.0]


def seed_grads(net, tc, x, y, perturb, dtype):
    """(outputs, grads with the regularizer, grads without), the seed in dtype."""
    mode = tc.reference()
    out, g, _, _ = gf.grad_run(net, tc, x, y, perturb, mode, record=False, dtype=dtype)
    _, g0, _, _ = gf.grad_run(net, dataclasses.replace(tc, lyap_weight=0.0), x, y, perturb,
                              "seed", record=False, dtype=dtype)
    return out, g, g0


def one_case(args, workload, draw, tmp):
    model, c, h, w, T, encoding, channels = parse_workload(workload)
    g = torch.Generator().manual_seed(1000 * draw + 7)
    torch.manual_seed(1000 * draw + 11)
    cfg_enc = "none" if encoding == "rate" else encoding
    cfg = torch_interop.make_cfg("lyap_grad", model, c, h, w, 10, T, cfg_enc, channels=channels,
                                 dropout=0.0)
    cfg = dataclasses.replace(cfg, lyap_eps=args.eps, lyapunov=True)
    tc = gf.TrainCase(cfg, args.lyap_weight, lyap_target=args.lyap_target)
    net = gf.make_trainable(seedmod.build_model(cfg), cfg, 0)
    x, y = draw_batch(c, h, w, T, encoding, args.batch, g, args.data_dir)
    shapes = gf.mem_shapes(net, args.batch, h, w)
    perturb = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    # both sides start from the float32 weights, input and perturbation
    net = net.float().double()
    x = x.float().double()
    perturb = [p.float().double() for p in perturb]
    model_path = tmp / "model.safetensors"
    torch_interop.write_snncl_model(model_path, cfg, net)

    o64, g64, g64ce = seed_grads(net, tc, x, y, perturb, None)
    o32, g32, g32ce = seed_grads(net, tc, x, y, perturb, torch.float32)
    # the problem's own sensitivity: float64 again, every weight nudged by float32's
    # rounding (relative 2^-24, random sign)
    nudged = gf.clone_net(net)
    with torch.no_grad():
        for prm in nudged.parameters():
            sign = torch.randint(0, 2, prm.shape, generator=g, dtype=torch.float64) * 2 - 1
            prm.mul_(1 + sign * 2.0 ** -24)
    on, gn, gnce = seed_grads(nudged, tc, x, y, perturb, None)
    sn, snce = snncl_grads(args.snncl, tmp, model_path, x, y, perturb, tc)

    names = list(g64)
    reg64 = {k: g64[k] - g64ce[k] for k in names}
    share = (sum(float(reg64[k].norm()) ** 2 for k in names) /
             max(sum(float(g64[k].norm()) ** 2 for k in names), 1e-300)) ** 0.5
    # the tensors the regularizer reaches (not the readout's: lambda does not depend on it)
    top = max(float(reg64[k].abs().max()) for k in names)
    reached = [k for k in names if float(reg64[k].abs().max()) > 1e-9 * top]

    def worst(grads, grads_ce):
        """(total's worst error, the regularizer part's, the cosine between the
        regularizer parts over all tensors: whether it still points the right way)"""
        tot = max(rel_err(grads[k].double().reshape(g64[k].shape), g64[k]) for k in names)
        regs = {k: (grads[k].double() - grads_ce[k].double()).reshape(g64[k].shape) for k in reached}
        reg = max(rel_err(regs[k], reg64[k]) for k in reached)
        a = torch.cat([regs[k].flatten() for k in reached])
        b = torch.cat([reg64[k].flatten() for k in reached])
        return tot, reg, float(a @ b) / max(float(a.norm() * b.norm()), 1e-300)

    s_w = worst({k: sn[f"grad.{k}"] for k in names}, {k: snce[f"grad.{k}"] for k in names})
    p_w = worst(g32, g32ce)
    ce64, ly64 = float(o64["ce"]), float(o64["lyap"])
    return {"workload": workload, "draw": draw, "lyapunov": ly64, "share": share,
            "snncl": (float(sn["lyapunov"][0]) - ly64, abs(float(sn["cross_entropy"][0]) - ce64) / ce64) + s_w,
            "seed32": (float(o32["lyap"]) - ly64, abs(float(o32["ce"]) - ce64) / ce64) + p_w,
            "nudged": (float(on["lyap"]) - ly64, abs(float(on["ce"]) - ce64) / ce64) + worst(gn, gnce)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", action="append",
                    help="model:HxWxC:T:encoding (repeatable; default: " + ", ".join(STANDARD) + ")")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--draws", type=int, default=3, help="weights, images and perturbations per workload")
    ap.add_argument("--lyap-weight", type=float, default=0.1)
    ap.add_argument("--lyap-target", type=float, default=0.0)
    ap.add_argument("--eps", type=float, default=1e-4)
    ap.add_argument("--snncl", default=str(REPO / "build" / "src" / "snncl"))
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    seedmod.load_seed(default_seed_dir())
    torch.set_num_threads(2)
    print("against the seed in float64: d lambda (the estimate's error); worst over tensors of "
          "max|a - b| / max|b| of the total gradient and of its regularizer part; cos: the regularizer "
          "part's cosine with float64's; '*': the cross-entropy differs by more than 1e-6 (relative), "
          "so the reference trajectory flipped a spike")
    head = f"{'d lambda':>9} {'total':>9}  {'reg':>8} {'cos':>7}"
    print(f"{'workload':<26} {'draw':>4} {'lambda':>7} {'reg share':>9} | snncl {head} | seed f32 {head} | "
          f"f64 nudged {head}")
    with tempfile.TemporaryDirectory() as d:
        for wl in args.workload or STANDARD:
            for draw in range(1, args.draws + 1):
                r = one_case(args, wl, draw, pathlib.Path(d))
                cols = []
                for side in ("snncl", "seed32", "nudged"):
                    dl, dce, tot, reg, cos = r[side]
                    cols.append(f"{dl:9.1e} {tot:9.2e}{'*' if dce > 1e-6 else ' '} {reg:8.2e} {cos:7.4f}")
                print(f"{wl:<26} {draw:>4} {r['lyapunov']:7.4f} {r['share']:9.4f} |       {cols[0]} |          "
                      f"{cols[1]} |            {cols[2]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
