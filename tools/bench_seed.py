#!/usr/bin/env python3
"""snncl side by side with the seed (PyTorch + snnTorch) on the same workloads.

    /usr/bin/python3 tools/bench_seed.py [--model simple] [--input 32x32x3] [--T 25]
        [--encoding rate] [--batch 32] [--mode forward,forward-lyapunov,train,train-lyapunov]
        [--runs 3] [--threads 2] [--snncl build/src/snncl] [--seed-dir ../shared/seed]

Runs `snncl bench` on the workloads (one JSON line per result), then the seed's own
code on the same workloads in the same process order with `torch.set_num_threads`
threads, and prints both figures and their ratio (snncl images/s over the seed's).
Needs Debian's python3-torch and snnTorch 0.9.4 (see tools/README.md).

What the seed runs per mode (float32, fresh model, random images in [0, 1]):
  forward            model.eval(); model(x) under torch.no_grad()
  forward-lyapunov   the same with compute_lyapunov=True
  train              model.train(); Adam step on cross_entropy (lr 1e-5)
  train-lyapunov     the same with + 0.1 * lambda**2
The seed's vgg estimate is a placeholder over one layer (SPEC.md); snncl estimates
over all seven LIF layers, so vgg's -lyapunov ratios compare different work.
Sizes other than 32x32 use tools/snnpy/seed.py's size-generic subclasses.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent


def seed_images_per_s(G, model, size, T, encoding, batch, mode, runs):
    import torch
    import torch.nn.functional as F
    H, W, C = size
    kw = dict(in_channels=C, num_classes=10, T=T, encoding=encoding)
    torch.manual_seed(1)
    if model == "simple":
        net = G.SimpleNet(height=H, width=W, **kw)
    else:
        net = G.VGGNet(height=H, width=W, **kw)
    net = net.float()
    x = torch.rand(batch, C, H, W)
    y = torch.arange(batch) % 10
    lyap = mode.endswith("lyapunov")
    train = mode.startswith("train")
    opt = torch.optim.Adam(net.parameters(), lr=1e-5) if train else None
    times = []
    for r in range(runs + 1):
        t0 = time.perf_counter()
        if train:
            net.train()
            logits, lam, _ = net(x, compute_lyapunov=lyap)
            loss = F.cross_entropy(logits, y)
            if lyap:
                loss = loss + 0.1 * lam ** 2
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            net.eval()
            with torch.no_grad():
                net(x, compute_lyapunov=lyap)
        if r > 0:  # the first run warms up
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="simple")
    ap.add_argument("--input", default="32x32x3")
    ap.add_argument("--T", default="25")
    ap.add_argument("--encoding", default="rate")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--mode", default="forward,forward-lyapunov,train,train-lyapunov")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--snncl", default=str(HERE.parent / "build" / "src" / "snncl"))
    ap.add_argument("--seed-dir", default=str(HERE.parent.parent / "shared" / "seed"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        js = os.path.join(tmp, "bench.jsonl")
        cmd = [args.snncl, "bench", "--model", args.model, "--input", args.input, "--T", args.T,
               "--encoding", args.encoding, "--batch", str(args.batch), "--mode", args.mode,
               "--runs", str(args.runs), "--json", js]
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        rows = [json.loads(l) for l in open(js)]

    sys.path.insert(0, str(HERE))
    from snnpy import seed as G
    import torch
    torch.set_num_threads(args.threads)
    G.load_seed(pathlib.Path(args.seed_dir))
    print("\nseed: PyTorch %s, %d threads" % (torch.__version__, args.threads), flush=True)
    print("%-40s %-17s %12s %12s %8s" % ("workload", "mode", "snncl img/s", "seed img/s", "ratio"))
    for r in rows:
        H, W, C = (int(v) for v in r["input"].split("x"))
        seed = seed_images_per_s(G, r["model"], (H, W, C), r["T"], r["encoding"], r["batch"], r["mode"], args.runs)
        print("%-40s %-17s %12.2f %12.2f %7.2fx" % (r["workload"], r["mode"], r["images_per_s"], seed,
                                                   r["images_per_s"] / seed), flush=True)


if __name__ == "__main__":
    main()
