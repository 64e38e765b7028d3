#!/usr/bin/env python3
"""What the Lyapunov regularizer buys: for each seed, trains one model without it and
one with it on Fashion-MNIST, then evaluates both under Gaussian input noise and over
more time steps than they were trained with. Prints a Markdown table (mean and
[min, max] over the seeds), and with --plot draws accuracy against noise as an SVG.

    python3 tools/robustness.py [--snncl build/src/snncl] [--out DIR] [--epochs 1]
                                [--seeds 1,2,3] [--plot robustness.svg]

The regularized model's target is halfway between the unregularized model's estimate
and the estimate's floor (`--lyap-target floor+D`): a less chaotic network than the
one training finds alone, which the floor says is reachable. Standard library only.
"""
import argparse
import json
import os
import subprocess
import sys

RECIPE = ["--channels", "16,32", "--T", "4", "--encoding", "direct", "--lr", "6e-3", "--dropout", "0",
          "--quiet"]
NOISE = ["0", "0.1", "0.2", "0.3", "0.5"]
LONGER_T = "8"
KINDS = ("without the regularizer", "with it, target floor+D")


def run(cmd):
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout


def evaluate(snncl, model, out, extra, seed):
    js = os.path.join(out, "eval.jsonl")
    run([snncl, "eval", "--model", model, "--json", js, "--quiet", "--seed", str(seed)] + extra)
    with open(js) as f:
        return json.loads(f.read().splitlines()[-1])


def one_seed(args, seed):
    """{kind: (estimate, floor, D or None, [accuracy per noise], accuracy at LONGER_T)}"""
    out = os.path.join(args.out, "seed%d" % seed)
    os.makedirs(out, exist_ok=True)
    base = RECIPE + ["--epochs", args.epochs, "--seed", str(seed)]
    plain = os.path.join(out, "plain.safetensors")
    run([args.snncl, "train", "--lyap-weight", "0", "--out", plain] + base)
    ref = evaluate(args.snncl, plain, out, ["--lyapunov"], seed)
    offset = max(0.5 * (ref["lyapunov"] - ref["lyapunov_floor"]), 0.0)
    reg = os.path.join(out, "regularized.safetensors")
    run([args.snncl, "train", "--lyap-weight", "0.1", "--lyap-target", "floor+%.4f" % offset, "--out", reg] + base)
    res = {}
    for kind, model, d in ((KINDS[0], plain, None), (KINDS[1], reg, offset)):
        est = evaluate(args.snncl, model, out, ["--lyapunov"], seed)
        accs = [evaluate(args.snncl, model, out, ["--noise", s], seed)["accuracy"] for s in NOISE]
        longer = evaluate(args.snncl, model, out, ["--T", LONGER_T], seed)["accuracy"]
        res[kind] = (est["lyapunov"], est["lyapunov_floor"], d, accs, longer)
    return res


def mean_range(values, fmt):
    m = sum(values) / len(values)
    if len(values) == 1:
        return fmt % m
    return (fmt + " [" + fmt + ", " + fmt + "]") % (m, min(values), max(values))


def table(results, seeds):
    lines = ["| model | estimate | " + " | ".join("noise %s" % s for s in NOISE) + " | T = %s |" % LONGER_T,
             "| --- | --- | " + " | ".join("---" for _ in NOISE) + " | --- |"]
    for kind in KINDS:
        rows = [results[s][kind] for s in seeds]
        name = kind
        if rows[0][2] is not None:
            name = kind.replace("D", mean_range([r[2] for r in rows], "%.3f"))
        cells = [mean_range([r[0] for r in rows], "%.3f") + "; floor %.3f" % rows[0][1]]
        cells += [mean_range([r[3][i] for r in rows], "%.4f") for i in range(len(NOISE))]
        cells.append(mean_range([r[4] for r in rows], "%.4f"))
        lines.append("| %s | " % name + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_svg(path, results, seeds):
    """Accuracy against the noise's sigma, one line per kind (mean) with the range
    over seeds as a bar at each point."""
    W, H, L, R, T, B = 560, 360, 60, 20, 20, 50
    xs = [float(s) for s in NOISE]
    sx = lambda x: L + (W - L - R) * x / max(xs)             # noqa: E731
    sy = lambda y: T + (H - T - B) * (1.0 - y)                # noqa: E731
    colors = ("#1f77b4", "#d62728")
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
         'font-size="12">' % (W, H), '<rect width="100%" height="100%" fill="white"/>']
    for k in range(0, 11, 2):
        y = sy(k / 10)
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, y, W - R, y))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%.1f</text>' % (L - 6, y + 4, k / 10))
    for x in xs:
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (sx(x), H - B + 18, x))
    o.append('<text x="%d" y="%d" text-anchor="middle">Gaussian pixel noise (sigma)</text>' % ((L + W - R) // 2, H - 8))
    o.append('<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">test accuracy</text>'
             % (H // 2, H // 2))
    for kind, color in zip(KINDS, colors):
        accs = [[results[s][kind][3][i] for s in seeds] for i in range(len(NOISE))]
        pts = " ".join("%.1f,%.1f" % (sx(x), sy(sum(a) / len(a))) for x, a in zip(xs, accs))
        o.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>' % (pts, color))
        for x, a in zip(xs, accs):
            o.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>'
                     % (sx(x), sy(min(a)), sx(x), sy(max(a)), color))
            o.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (sx(x), sy(sum(a) / len(a)), color))
    for i, (kind, color) in enumerate(zip(KINDS, colors)):
        y = H - B - 40 + 16 * i
        o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>' % (L + 10, y, L + 30, y, color))
        o.append('<text x="%d" y="%d">%s</text>' % (L + 36, y + 4, kind))
    o.append('<text x="%d" y="%d" text-anchor="end">mean of %d seed(s); bars: range</text>'
             % (W - R, T + 12, len(seeds)))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snncl", default=os.path.join(os.path.dirname(__file__), "..", "build", "src", "snncl"))
    ap.add_argument("--out", default="robustness")
    ap.add_argument("--epochs", default="1")
    ap.add_argument("--seeds", default="1", help="comma-separated training seeds")
    ap.add_argument("--plot", help="write accuracy against noise here (.svg)")
    args = ap.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        ap.error("--seeds takes comma-separated integers")
    os.makedirs(args.out, exist_ok=True)
    results = {s: one_seed(args, s) for s in seeds}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({str(s): r for s, r in results.items()}, f, indent=1)
    print()
    print(table(results, seeds))
    if args.plot:
        plot_svg(args.plot, results, seeds)
        print("\nplot: %s" % args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
