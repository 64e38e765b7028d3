#!/usr/bin/env python3
"""What the Lyapunov regularizer buys: trains one model without it and one with it on
Fashion-MNIST, then evaluates both under Gaussian input noise and over more time steps
than they were trained with, and prints a Markdown table (and the JSON lines it read).

    python3 tools/robustness.py [--snncl build/src/snncl] [--out DIR] [--epochs 1] [--seed 1]

The regularized model's target is halfway between the unregularized model's estimate
and the estimate's floor (`--lyap-target floor+D`): a less chaotic network than the
one training finds alone, which the floor says is reachable. Standard library only.
"""
import argparse
import json
import os
import re
import subprocess
import sys

RECIPE = ["--channels", "16,32", "--T", "4", "--encoding", "direct", "--lr", "6e-3", "--dropout", "0",
          "--quiet"]
NOISE = ["0", "0.1", "0.2", "0.3", "0.5"]
LONGER_T = "8"


def run(cmd):
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout


def evaluate(snncl, model, out, extra, seed):
    js = os.path.join(out, "eval.jsonl")
    run([snncl, "eval", "--model", model, "--json", js, "--quiet", "--seed", str(seed)] + extra)
    with open(js) as f:
        return json.loads(f.read().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snncl", default=os.path.join(os.path.dirname(__file__), "..", "build", "src", "snncl"))
    ap.add_argument("--out", default="robustness")
    ap.add_argument("--epochs", default="1")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    base = RECIPE + ["--epochs", args.epochs, "--seed", str(args.seed)]
    plain = os.path.join(args.out, "plain.safetensors")
    run([args.snncl, "train", "--lyap-weight", "0", "--out", plain] + base)
    ref = evaluate(args.snncl, plain, args.out, ["--lyapunov"], args.seed)
    lam, floor = ref["lyapunov"], ref["lyapunov_floor"]
    offset = max(0.5 * (lam - floor), 0.0)
    reg = os.path.join(args.out, "regularized.safetensors")
    run([args.snncl, "train", "--lyap-weight", "0.1", "--lyap-target", "floor+%.4f" % offset, "--out", reg] + base)
    rows = []
    for name, model in (("without the regularizer", plain), ("with it, target floor+%.3f" % offset, reg)):
        est = evaluate(args.snncl, model, args.out, ["--lyapunov"], args.seed)
        accs = [evaluate(args.snncl, model, args.out, ["--noise", s], args.seed)["accuracy"] for s in NOISE]
        longer = evaluate(args.snncl, model, args.out, ["--T", LONGER_T], args.seed)["accuracy"]
        rows.append((name, est["lyapunov"], est["lyapunov_floor"], accs, longer))
    print()
    print("| model | estimate (floor) | " + " | ".join("noise %s" % s for s in NOISE) + " | T = %s |" % LONGER_T)
    print("| --- | --- | " + " | ".join("---" for _ in NOISE) + " | --- |")
    for name, lam, floor, accs, longer in rows:
        print("| %s | %.3f (%.3f) | " % (name, lam, floor) + " | ".join("%.4f" % a for a in accs)
              + " | %.4f |" % longer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
