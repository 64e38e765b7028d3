#!/usr/bin/python3
"""The seed (PyTorch + snnTorch) trained on Fashion-MNIST with the recipe `snncl train`
uses, for comparing whole runs: ConvLyapunovSNN at 28x28 (membranes and readout sized
for it: tools/snnpy/seed.py), pixels / 255, Adam with a per-step cosine schedule over
all steps, batch 64, shuffled every epoch (torch's generator, seeded), dropout as the
model's, then the test split in eval mode. Prints per-epoch loss, time and images/s,
and a last line 'test accuracy: 0.xxxx' as `snncl train` does.

  /usr/bin/python3 tools/seed_fmnist.py --channels 16,32,64 --T 6 --lr 2e-3 --epochs 2 --seed 1
    (the anchor recipe; snncl: build/src/snncl train --channels 16,32,64 --T 6
     --encoding direct --lr 2e-3 --lyap-weight 0 --epochs 2 --seed 1)"""
import argparse
import gzip
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from snnpy.paths import default_seed_dir  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from snnpy import seed as seedmod  # noqa: E402
import torch_interop  # noqa: E402


def load(data_dir, split):
    path, images = torch_interop.read_idx_images(data_dir, split)
    lp = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    raw = gzip.decompress(lp.read_bytes()) if lp.suffix == ".gz" else lp.read_bytes()
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--channels", default="16,32,64")
    ap.add_argument("--T", type=int, default=6)
    ap.add_argument("--encoding", default="direct", choices=["direct", "rate"])
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--lyap-weight", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images only (0: all)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    seedmod.load_seed(default_seed_dir())
    torch.manual_seed(args.seed)
    channels = [int(c) for c in args.channels.split(",")]
    net = seedmod.SimpleNet(height=28, width=28, in_channels=1, num_classes=10, channels=channels, T=args.T,
                            encoding=args.encoding, dropout=args.dropout)
    x_train, y_train = load(args.data_dir, "train")
    x_test, y_test = load(args.data_dir, "test")
    if args.limit > 0:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    steps = args.epochs * ((len(y_train) + args.batch - 1) // args.batch)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    print(f"seed: simple {channels}, 1x28x28, T={args.T}, {args.encoding}, dropout {args.dropout}, "
          f"Adam {args.lr:g} cosine over {steps} steps, batch {args.batch}, lyap_weight {args.lyap_weight:g}, "
          f"torch {torch.__version__}, {args.threads} threads", flush=True)
    train_time = 0.0
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(y_train))
        t0, total, n = time.time(), 0.0, 0
        for k in range(0, len(order), args.batch):
            idx = order[k:k + args.batch]
            opt.zero_grad(set_to_none=True)
            logits, lyap, _ = net(x_train[idx], compute_lyapunov=args.lyap_weight > 0)
            loss = F.cross_entropy(logits, y_train[idx])
            if args.lyap_weight > 0:
                loss = loss + args.lyap_weight * lyap ** 2
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            n += len(idx)
        dt = time.time() - t0
        train_time += dt
        print(f"epoch {epoch + 1}: loss {total / n:.4f}, {dt:.0f} s ({n / dt:.0f} images/s)", flush=True)
    net.eval()
    correct = 0
    with torch.no_grad():
        for k in range(0, len(y_test), 256):
            logits, _, _ = net(x_test[k:k + 256])
            correct += int((logits.argmax(1) == y_test[k:k + 256]).sum())
    print(f"training {train_time:.1f} s ({args.epochs * len(y_train) / train_time:.0f} images/s)")
    print(f"test accuracy: {correct / len(y_test):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
