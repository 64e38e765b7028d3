#!/usr/bin/env python3
"""Random network descriptions: snncl against PyTorch + snnTorch (tools/snnpy/network.py)
in float64, through files as a user would move them.

    /usr/bin/python3 tests/test_network_parity.py PATH/TO/snncl [unittest names]

For each of CASES (16; the first 16 draws include every layer kind and option) random descriptions (tools/snnpy/network.py's random_description:
every layer kind and option snncl's kernels run today, random shapes, per-layer beta,
threshold and BatchNorm momentum, direct or pre-encoded input, with or without
dropout), `snncl create` writes a model; PyTorch builds the description's
nn.ModuleDict and loads the file with strict names; then
- eval: `snncl infer --lyapunov` with a given perturbation against the reference:
  logits within 1e-4 of max|logit|, each sample's estimate within 1e-4 (the seed
  fixtures' tolerances), with spikes in every Leaky (no vacuous case);
- training: `snncl grad` against autograd: loss and the gradient of every trainable
  tensor, within 1e-3 of its largest entry with the regularizer off and 2e-2 with it
  on (the estimate's gradient is a float32-sensitive sum: tests/test_training.c's
  tolerances; the cases are fixed draws, since on some draws even PyTorch's own
  float32 gradient is 10% from its float64 one: SNNCL_PARITY_CASES=40 searches more,
  where one of 40 such cases lands at 2.3% here);
- a file written from PyTorch (the state_dict with the description in its metadata,
  0-dim scalars, without snnTorch's bookkeeping buffers) loads in snncl and gives
  the same logits.

Needs torch, snntorch and numpy (Debian's /usr/bin/python3); exits 77 (SKIP) without
them. Ends with "N passed, N failed".
"""
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tools"))

CASES = int(os.environ.get("SNNCL_PARITY_CASES", "16"))  # more for a longer search
SKIP = 77
LOGIT_TOL = 1e-4
LYAP_TOL = 1e-4
GRAD_TOL = 1e-3
LYAP_GRAD_TOL = 2e-2
LOSS_TOL = 1e-5
LYAP_LOSS_TOL = 2e-4

SNNCL = None
torch = np = netpy = stf = None


def missing_requirement():
    for mod in ("numpy", "torch", "snntorch"):
        try:
            __import__(mod)
        except Exception as e:
            return f"{sys.executable} cannot import {mod} ({e.__class__.__name__}: {e})"
    return None


def snncl(*args):
    r = subprocess.run([SNNCL, *map(str, args)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"snncl {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr}")
    return r.stdout


def load_into(net, path):
    tensors, meta, _ = stf.st_read(path)
    state = {k: torch.from_numpy(v) for k, (dt, v) in tensors.items()}
    net.load_state_dict(state, strict=True)
    return meta


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-5))


class NetworkParity(unittest.TestCase):
    tmp = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="snncl-netparity."))

    def case(self, k):
        """Case k: a description, its snncl model loaded into PyTorch, a batch and a
        perturbation, all as files under case<k>/. Descriptions are drawn again (up to
        20 times) until every Leaky spikes on the batch, so that no comparison is vacuous."""
        rng = random.Random(1000 + k)
        d = self.tmp / f"case{k}"
        d.mkdir(exist_ok=True)
        for attempt in range(20):
            desc = netpy.random_description(rng)
            (d / "net.json").write_text(json.dumps(desc))
            snncl("create", "--net", d / "net.json", "--out", d / "model.safetensors", "--seed", 10 + k)
            net = netpy.build(desc).double()
            meta = load_into(net, d / "model.safetensors")
            self.assertIn("snncl.network", meta)
            B = rng.randint(2, 4)
            C, H, W = desc["input"]
            gen = torch.Generator().manual_seed(k)
            if desc["encoding"] == "direct":
                x = torch.rand(B, C, H, W, generator=gen, dtype=torch.float64) * 2
            else:
                x = (torch.rand(B, desc["T"], C, H, W, generator=gen, dtype=torch.float64) < 0.5).double()
            x = x.float().double()  # what snncl reads: float32 values
            if all(c > 0 for c in netpy.spike_counts(net.eval(), desc, x)):
                break
        else:
            self.fail(f"case {k}: 20 random descriptions with a silent Leaky")
        # one N(0,1) perturbation per Leaky, shaped as its membrane
        with torch.no_grad():
            mems = [None] * len(netpy.lif_modules(net))
            netpy._step(net, netpy.encode(desc, x)[:, 0], mems)
        noise = [torch.randn(*m.shape, generator=gen, dtype=torch.float64).float().double() for m in mems]
        stf.st_write(d / "input.safetensors", [("input", "F32", x.numpy())], {})
        stf.st_write(d / "perturb.safetensors", [(f"perturb.{i}", "F32", n.numpy()) for i, n in enumerate(noise)], {})
        return desc, d, net, x, noise, B

    def check_eval(self, k):
        desc, d, net, x, noise, B = self.case(k)
        net.eval()
        with torch.no_grad():
            logits, lyap = netpy.forward(net, desc, x, lyapunov=True, init_perturb=noise)
        snncl("infer", "--model", d / "model.safetensors", "--input", d / "input.safetensors", "--output",
              d / "out.safetensors", "--lyapunov", "--perturb", d / "perturb.safetensors")
        out, _, _ = stf.st_read(d / "out.safetensors")
        e = rel_err(out["logits"][1], logits.numpy())
        self.assertLessEqual(e, LOGIT_TOL, f"case {k}: logits rel err {e:.3g}\n{json.dumps(desc)}")
        el = float(np.max(np.abs(out["lyapunov_per_sample"][1] - lyap.numpy())))
        self.assertLessEqual(el, LYAP_TOL, f"case {k}: estimate abs err {el:.3g}")

    def check_grad(self, k, lyap_weight):
        desc, d, net, x, noise, B = self.case(k)
        # dropout's mask is Philox's in snncl: compare gradients without it
        desc0 = dict(desc, readout=[l for l in desc["readout"] if l["type"] != "dropout"])
        (d / "net0.json").write_text(json.dumps(desc0))
        snncl("create", "--net", d / "net0.json", "--out", d / "model0.safetensors", "--seed", 10 + k)
        net = netpy.build(desc0).double()
        load_into(net, d / "model0.safetensors")
        net.train()
        labels = torch.tensor([i % desc["num_classes"] for i in range(B)], dtype=torch.int64)
        stf.st_write(d / "labels.safetensors", [("labels", "I64", labels.numpy())], {})
        logits, lyap = netpy.forward(net, desc0, x, lyapunov=lyap_weight > 0, init_perturb=noise)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        if lyap_weight > 0:
            loss = loss + lyap_weight * lyap.mean() ** 2
        loss.backward()
        snncl("grad", "--model", d / "model0.safetensors", "--input", d / "input.safetensors", "--labels",
              d / "labels.safetensors", "--output", d / "grad.safetensors", "--lyap-weight", lyap_weight,
              *(("--perturb", d / "perturb.safetensors") if lyap_weight > 0 else ()))
        got, _, _ = stf.st_read(d / "grad.safetensors")
        tol_loss = LYAP_LOSS_TOL if lyap_weight > 0 else LOSS_TOL
        self.assertLessEqual(abs(float(got["loss"][1].reshape(-1)[0]) - float(loss)), tol_loss * max(1.0, float(loss)))
        tol = LYAP_GRAD_TOL if lyap_weight > 0 else GRAD_TOL
        named = 0
        for name, p in net.named_parameters():
            key = f"grad.{name}"
            self.assertIn(key, got, f"case {k}: snncl grad wrote no {key}")
            e = rel_err(got[key][1], p.grad.numpy())
            self.assertLessEqual(e, tol, f"case {k}: gradient of {name}: rel err {e:.3g}\n{json.dumps(desc0)}")
            named += 1
        self.assertGreaterEqual(named, 2)

    def test_from_pytorch(self):
        """A file PyTorch writes (state_dict + description, no bookkeeping buffers) loads."""
        desc, d, net, x, noise, B = self.case(0)
        net2 = netpy.build(desc).double()
        torch.manual_seed(3)
        for m in net2.modules():  # PyTorch's own initialization, different from snncl's
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        state = {k: v.float() for k, v in net2.state_dict().items()
                 if not k.endswith(("graded_spikes_factor", "reset_mechanism_val", "num_batches_tracked"))}
        stf.st_write(d / "from_torch.safetensors", [(k, "F32", v.numpy()) for k, v in state.items()],
                     {"snncl.network": json.dumps(desc)})
        net2.eval()
        with torch.no_grad():
            logits, _ = netpy.forward(net2, desc, x)
        snncl("infer", "--model", d / "from_torch.safetensors", "--input", d / "input.safetensors", "--output",
              d / "out2.safetensors")
        out, _, _ = stf.st_read(d / "out2.safetensors")
        self.assertLessEqual(rel_err(out["logits"][1], logits.numpy()), LOGIT_TOL)


def add_cases():
    for k in range(CASES):
        setattr(NetworkParity, f"test_eval_{k}", lambda self, k=k: self.check_eval(k))
        setattr(NetworkParity, f"test_grad_{k}", lambda self, k=k: self.check_grad(k, 0.0 if k % 2 else 0.1))


add_cases()


def main(argv):
    global SNNCL, torch, np, netpy, stf
    if len(argv) < 2:
        sys.stderr.write("usage: %s PATH/TO/snncl [unittest names]\n" % argv[0])
        return 2
    why = missing_requirement()
    if why is not None:
        print(f"SKIP: {why}; this test needs torch and snntorch (tools/setup-debian.sh)")
        return SKIP
    SNNCL = os.path.abspath(argv[1])
    import numpy
    import torch as t
    from snnpy import network, safetensors
    torch, np, netpy, stf = t, numpy, network, safetensors
    torch.set_default_dtype(torch.float64)
    module = sys.modules[__name__]
    loader = unittest.TestLoader()
    names = argv[2:]
    suite = loader.loadTestsFromNames(names, module) if names else loader.loadTestsFromModule(module)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    bad = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (result.testsRun - bad - len(result.skipped), bad))
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
