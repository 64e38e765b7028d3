#!/usr/bin/env python3
"""Tests of tools/torch_interop.py: models move between snncl and the PyTorch seed
both ways and give the same logits.

    /usr/bin/python3 tests/test_interop.py PATH/TO/snncl [unittest names]

Trains tiny models with `snncl train` on a synthetic MNIST-format dataset (8x8
images, two classes; tests/test_cli.py's write_toy_mnist), then
- snncl -> PyTorch: each model (simple direct, simple rate, vgg) and a checkpoint
  load into the seed's model with strict names and give snncl's logits within 1e-4
  of max|logit|; files whose names differ from the seed's state_dict, and a zero
  tolerance, fail with exit status 1;
- PyTorch -> snncl: a fresh seed model (random initialization), a vgg trained a
  few steps in PyTorch (a torch.save'd state_dict) and the state_dict written by
  `to-torch --save-pt` export to snncl files that `snncl infer` runs to the same
  logits (the last one bit-identical to the original file's tensors).
Every comparison must show spikes in every LIF layer, so none is vacuous.

Needs torch, snntorch and numpy (Debian's /usr/bin/python3) and the seed
(../shared/seed). Without them it prints why and exits 77, which meson reports as
SKIP. Ends with "N passed, N failed" and exits non-zero when anything failed.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
TOOL = REPO / "tools" / "torch_interop.py"
sys.path.insert(0, str(REPO / "tools"))
from snnpy.paths import default_seed_dir  # noqa: E402

SEED_FILE = default_seed_dir() / "conv_lyapunov_snn.py"
TIMEOUT = 300
TOL = 1e-4
SKIP = 77

SNNCL = None
gf = None        # tools/snnpy/seed.py, imported once torch is known to be there
stf = None       # tools/snnpy/safetensors.py (its numpy functions)


def missing_requirement():
    """Why the test cannot run here, or None."""
    for mod in ("numpy", "torch", "snntorch"):
        try:
            __import__(mod)
        except Exception as e:   # ImportError, or a broken installation
            return f"{sys.executable} cannot import {mod} ({e.__class__.__name__}: {e})"
    if not SEED_FILE.exists():
        return f"the seed is not at {SEED_FILE}"
    return None


def run(args, timeout=TIMEOUT):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


class InteropTest(unittest.TestCase):
    tmp = None

    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, str(HERE))
        from test_cli import write_toy_mnist
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="snncl-interop."))
        cls.data = cls.tmp / "data"
        cls.data.mkdir()
        write_toy_mnist(str(cls.data))
        base = ["--data", "mnist", "--data-dir", str(cls.data), "--batch", "8", "--lr", "0.01",
                "--lyap-weight", "0.05", "--no-eval", "--quiet"]
        cls.models = {}
        for name, extra in (("direct", ["--channels", "4,8", "--T", "3", "--encoding", "direct",
                                        "--limit", "16", "--epochs", "1"]),        # 2 steps
                            ("rate", ["--channels", "4,8", "--T", "4", "--encoding", "rate",
                                      "--limit", "16", "--epochs", "1"]),
                            ("vgg", ["--model", "vgg", "--T", "2", "--encoding", "direct",
                                     "--epochs", "3"])):                            # 18 steps: vgg fires
            out = cls.tmp / f"{name}.safetensors"
            rc, so, se = run([SNNCL, "train"] + base + extra + ["--out", str(out)])
            if rc != 0:
                raise AssertionError(f"snncl train ({name}) exited with {rc}:\n{so}{se}")
            cls.models[name] = out

    @classmethod
    def tearDownClass(cls):
        if cls.tmp is not None:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def tool(self, *args):
        return run([sys.executable, str(TOOL)] + [str(a) for a in args] + ["--snncl", SNNCL])

    def assert_match(self, rc, out, err, layers):
        """A passing comparison with spikes in each of `layers` LIF layers; returns the
        relative difference."""
        self.assertEqual(rc, 0, out + err)
        m = re.search(r"max relative difference (\S+) \(tolerance", out)
        self.assertIsNotNone(m, out)
        rel = float(m.group(1))
        self.assertLessEqual(rel, TOL, out)
        rates = re.search(r"firing rates per LIF layer: ([0-9. ]+);", out)
        self.assertIsNotNone(rates, out)
        rates = [float(r) for r in rates.group(1).split()]
        self.assertEqual(len(rates), layers, out)
        self.assertTrue(all(r > 0 for r in rates), "a silent LIF layer makes the check vacuous:\n" + out)
        self.assertNotIn("warning", out)
        m = re.search(r"predictions agree on (\d+)/(\d+)", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(m.group(1), m.group(2), out)
        return rel

    def tensors(self, path):
        t, meta, _ = stf.st_read(pathlib.Path(path))
        return t, meta

    def assert_same_tensors(self, a, b):
        ta, _ = self.tensors(a)
        tb, _ = self.tensors(b)
        self.assertEqual(sorted(ta), sorted(tb))
        for k in ta:
            self.assertEqual(ta[k][0], tb[k][0], k)
            self.assertEqual(ta[k][1].shape, tb[k][1].shape, k)
            self.assertEqual(ta[k][1].tobytes(), tb[k][1].tobytes(), k)

    # ---------------------------------------------------------- snncl -> PyTorch --
    def test_to_torch_direct_and_save_pt(self):
        import torch
        pt = self.tmp / "direct.pt"
        rc, out, err = self.tool("to-torch", "--model", self.models["direct"], "--data", self.data,
                                 "--count", 24, "--save-pt", pt)
        self.assert_match(rc, out, err, 2)
        self.assertIn("load_state_dict(strict=True)", out)
        state = torch.load(str(pt))
        t, _ = self.tensors(self.models["direct"])
        self.assertEqual(sorted(state), sorted(t))
        for k, v in state.items():
            self.assertEqual(v.dtype, torch.float32 if t[k][0] == "F32" else torch.int64, k)
            self.assertEqual(v.numpy().tobytes(), t[k][1].tobytes(), k)

    def test_to_torch_rate_pre_encoded(self):
        rc, out, err = self.tool("to-torch", "--model", self.models["rate"], "--data", self.data,
                                 "--count", 24, "--seed", 7)
        self.assert_match(rc, out, err, 2)
        self.assertIn("encoded here into (B,T,C,H,W) spikes", out)

    def test_to_torch_vgg(self):
        rc, out, err = self.tool("to-torch", "--model", self.models["vgg"], "--data", self.data, "--count", 24)
        self.assert_match(rc, out, err, 7)

    def test_to_torch_checkpoint_drops_optimizer_state(self):
        ckpt = self.models["direct"].with_name("direct.ckpt.safetensors")
        t, _ = self.tensors(ckpt)
        n = sum(k.startswith("optim.") for k in t)
        self.assertGreater(n, 0)
        rc, out, err = self.tool("to-torch", "--model", ckpt, "--data", self.data, "--count", 24)
        self.assert_match(rc, out, err, 2)
        self.assertIn(f"dropped its {n} optimizer tensors (optim.*)", out)

    def test_to_torch_names_must_match(self):
        t, meta, order = stf.st_read(self.models["direct"])
        entries = [(k, t[k][0], t[k][1]) for k in order]
        cases = (("extra", entries + [("blocks.0.conv.bias", "F32", t["fc.bias"][1][:4])], "blocks.0.conv.bias"),
                 ("missing", [e for e in entries if e[0] != "blocks.1.bn.running_var"], "blocks.1.bn.running_var"),
                 ("renamed", [("module." + e[0] if e[0] == "fc.bias" else e[0],) + e[1:] for e in entries],
                  "module.fc.bias"))
        for name, ents, needle in cases:
            with self.subTest(name):
                path = self.tmp / f"bad_{name}.safetensors"
                stf.st_write(path, ents, meta)
                rc, out, err = self.tool("to-torch", "--model", path, "--no-check")
                self.assertEqual(rc, 1, out + err)
                self.assertIn(needle, err)
                self.assertIn("state_dict", err)

    def test_tolerance_is_enforced(self):
        rc, out, err = self.tool("to-torch", "--model", self.models["direct"], "--data", self.data,
                                 "--count", 24, "--tol", "0")
        rel = float(re.search(r"max relative difference (\S+) \(tolerance", out).group(1))
        if rel == 0.0:
            self.skipTest("snncl matched float64 PyTorch bit for bit; nothing to exceed")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("MISMATCH", out)

    # ---------------------------------------------------------- PyTorch -> snncl --
    def test_from_torch_fresh_model(self):
        # The seed's initialization with beta 0.8 and threshold 0.5 (with 0.9 and 1.0 the
        # second block of this fresh model stays silent on these images).
        import numpy as np
        out_path = self.tmp / "fresh.safetensors"
        rc, out, err = self.tool("from-torch", "--out", out_path, "--init-seed", 0, "--channels", "4,8",
                                 "--in-channels", 1, "--height", 8, "--width", 8, "--T", 3,
                                 "--encoding", "direct", "--beta", 0.8, "--threshold", 0.5,
                                 "--data", self.data, "--count", 24)
        self.assert_match(rc, out, err, 2)
        self.assertIn("random initialization", out)
        t, meta = self.tensors(out_path)
        for k, v in (("model", "simple"), ("T", "3"), ("encoding", "direct"), ("in_channels", "1"),
                     ("height", "8"), ("width", "8"), ("num_classes", "10")):
            self.assertEqual(meta.get(k), v, k)
        net = gf.build_model(gf.CaseConfig("x", "simple", 1, 8, 8, 10, batch=0, T=3, encoding="direct",
                                           lyapunov=False, description="", seed=0, channels=(4, 8)))
        self.assertEqual(sorted(t), sorted(net.state_dict()))
        for i in range(2):
            self.assertEqual(float(t[f"blocks.{i}.lif.beta"][1]), float(np.float32(0.8)))
            self.assertEqual(float(t[f"blocks.{i}.lif.threshold"][1]), 0.5)

    def test_from_torch_pytorch_trained_vgg(self):
        """A vgg trained three steps in PyTorch, its BatchNorm statistics settled on the
        data, saved with torch.save(state_dict), exported and run by snncl."""
        import torch
        import torch.nn.functional as F
        import torch_interop
        _, imgs = torch_interop.read_idx_images(self.data, "train")
        x = torch.from_numpy(imgs.copy()).float() / 255
        y = torch.tensor([i % 2 for i in range(x.shape[0])])
        torch.manual_seed(0)
        net = gf.VGGNet(height=8, width=8, in_channels=1, num_classes=10, T=2, encoding="rate").train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for step in range(3):
            loss = F.cross_entropy(net(x[:16])[0], y[:16])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            for i in range(20):
                net(x[(i % 3) * 16:(i % 3) * 16 + 16])
        pt = self.tmp / "torch_vgg.pt"
        torch.save(net.state_dict(), str(pt))
        rc, out, err = self.tool("from-torch", "--out", self.tmp / "torch_vgg.safetensors", "--state-dict", pt,
                                 "--T", 2, "--encoding", "rate", "--height", 8, "--width", 8,
                                 "--data", self.data, "--count", 24)
        self.assert_match(rc, out, err, 7)
        self.assertIn("wrote", out)

    def test_round_trip_is_exact(self):
        pt = self.tmp / "rt.pt"
        rc, out, err = self.tool("to-torch", "--model", self.models["direct"], "--save-pt", pt, "--no-check")
        self.assertEqual(rc, 0, out + err)
        back = self.tmp / "rt.safetensors"
        rc, out, err = self.tool("from-torch", "--out", back, "--state-dict", pt, "--T", 3, "--encoding", "direct",
                                 "--height", 8, "--width", 8, "--data", self.data, "--count", 24)
        self.assert_match(rc, out, err, 2)
        self.assert_same_tensors(self.models["direct"], back)

    def test_from_torch_rejects_mismatched_options(self):
        pt = self.tmp / "mm.pt"
        rc, out, err = self.tool("to-torch", "--model", self.models["direct"], "--save-pt", pt, "--no-check")
        self.assertEqual(rc, 0, out + err)
        rc, out, err = self.tool("from-torch", "--out", self.tmp / "mm.safetensors", "--state-dict", pt,
                                 "--channels", "4,16", "--height", 8, "--width", 8, "--no-check")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("--channels", err)
        self.assertFalse((self.tmp / "mm.safetensors").exists())


def main(argv):
    global SNNCL, gf, stf
    if len(argv) < 2:
        sys.stderr.write("usage: %s PATH/TO/snncl [unittest names]\n" % argv[0])
        return 2
    why = missing_requirement()
    if why is not None:
        print(f"SKIP: {why}; the interop test needs torch and snntorch 0.9.4 "
              "(Debian: apt-get install python3-torch, then /usr/bin/python3 -m pip install "
              "--break-system-packages --no-deps snntorch==0.9.4)")
        return SKIP
    SNNCL = os.path.abspath(argv[1])
    if not os.access(SNNCL, os.X_OK):
        sys.stderr.write("%s is not an executable\n" % SNNCL)
        return 1
    sys.path.insert(0, str(REPO / "tools"))
    from snnpy import safetensors, seed
    seed.load_seed(SEED_FILE.parent)
    gf, stf = seed, safetensors
    loader = unittest.TestLoader()
    module = sys.modules[__name__]
    names = argv[2:]
    suite = loader.loadTestsFromNames(names, module) if names else loader.loadTestsFromModule(module)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    bad = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (result.testsRun - bad - len(result.skipped), bad))
    sys.stdout.flush()
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
