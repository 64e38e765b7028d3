#!/usr/bin/env python3
"""Faults during `snncl train`: signals, kills, a full disk and a diverging loss.

    python3 tests/test_train_faults.py PATH/TO/snncl PATH/TO/tests/fixtures [Class.test ...]

Every test really does it to a running snncl, on a tiny model (channels 4,8, T = 3) and a
tiny MNIST-format dataset, and then checks the promise of docs/guide.md: the checkpoint
on disk is absent or whole (never half-written), a failure says what happened and exits
non-zero, and resuming ends with the same model, bit for bit, as a run that was never
disturbed.

- SIGINT while training and SIGTERM while evaluating: exit 130 / 143, a message naming
  the checkpoint, which resumes to the uninterrupted model.
- SIGKILL at random moments (--checkpoint-every 1, so often while a checkpoint is being
  written) and two SIGINTs back to back: the checkpoint is absent or loads and resumes
  to the uninterrupted model; a temporary file a killed run left behind is removed.
- A full disk (a small tmpfs; root mounts it, others through `unshare -rm`, else this
  case alone is skipped): exit 1 with "No space left on device", the previous
  checkpoint byte-identical, and it resumes once there is space again. Likewise a file
  size limit (RLIMIT_FSIZE): "File too large", not death by SIGXFSZ.
- A loss, or parameters, that become inf or nan: exit 1, the last good checkpoint
  byte-identical and resumable.

SNNCL_FAULT_SEED picks the kill moments (default 1; they are printed). Uses the safetensors
reader and the toy dataset of test_cli.py. Exits 77 (meson's SKIP) only when snncl cannot
train at all here.
"""
import errno
import os
import queue
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cli  # noqa: E402  (the safetensors reader, the toy dataset, the result class)
from test_cli import st_read, write_toy_mnist  # noqa: E402

SNNCL = None
FIXTURES = None
TIMEOUT = 120  # seconds per snncl run

N_TRAIN, N_TEST, BATCH = 1200, 3000, 8  # 150 steps per epoch
STEPS = N_TRAIN // BATCH


def model_bytes(path):
    tensors, _ = st_read(path)
    return {k: v.data for k, v in tensors.items()}


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def check_whole(test, path):
    """A checkpoint must parse, hold its position and end exactly where its header says."""
    raw = file_bytes(path)
    tensors, meta = st_read(path)  # raises on a truncated or corrupt file
    header_len = int.from_bytes(raw[:8], "little")
    test.assertTrue(tensors, path)
    test.assertEqual(8 + header_len + sum(len(t.data) for t in tensors.values()), len(raw),
                     "%s: %d bytes, not what its header describes (%d tensors)" % (path, len(raw), len(tensors)))
    for key in ("train.epoch", "train.step", "train.global_step"):
        test.assertIn(key, meta or {}, "%s has no %s" % (path, key))
    return meta


def temps(directory):
    return sorted(f for f in os.listdir(directory) if ".tmp." in f)


class Proc:
    """snncl running in the background, its stderr read line by line by a thread."""

    def __init__(self, args, cwd=None):
        self.p = subprocess.Popen([SNNCL] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  cwd=cwd)
        self.lines = queue.Queue()
        self.err = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.p.stderr:
            line = raw.decode("utf-8", "replace")
            self.err.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern, timeout=TIMEOUT):
        """Waits for a stderr line matching pattern; False if snncl ended first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if line is None:
                return False
            if re.search(pattern, line):
                return True

    def finish(self, timeout=TIMEOUT):
        out = self.p.stdout.read().decode("utf-8", "replace")
        rc = self.p.wait(timeout=timeout)
        self.reader.join(timeout)
        return rc, out, "".join(self.err)


class FaultTests(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="snncl-faults-")
        cls.data = os.path.join(cls._tmp.name, "data")
        os.mkdir(cls.data)
        write_toy_mnist(cls.data, n_train=N_TRAIN, n_test=N_TEST)
        # The undisturbed runs every disturbed one must reproduce, bit for bit.
        cls.ref = {}
        for name, extra in (("eval", []), ("noeval", ["--no-eval"])):
            out = os.path.join(cls._tmp.name, "ref-%s.safetensors" % name)
            t0 = time.monotonic()
            rc, so, se = test_cli.run_snncl(cls.args(out, *extra, "--quiet"), timeout=TIMEOUT)
            if rc != 0:
                raise AssertionError("reference run failed (%d):\n%s\n%s" % (rc, so, se))
            cls.ref[name] = (model_bytes(out), time.monotonic() - t0)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    @classmethod
    def args(cls, out, *extra):
        return ["train", "--data", "mnist", "--data-dir", cls.data, "--channels", "4,8", "--T", "3",
                "--encoding", "direct", "--batch", str(BATCH), "--epochs", "2", "--lyap-weight", "0.05",
                "--lr", "0.01", "--eval-batch", "2", "--out", out] + list(extra)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="t-", dir=self._tmp.name)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def run_ok(self, args):
        rc, out, err = test_cli.run_snncl(args, timeout=TIMEOUT)
        self.assertEqual(rc, 0, "snncl %s exited %d\n%s\n%s" % (" ".join(args), rc, out, err))
        return out, err

    def resume_matches(self, ckpt, out, ref="eval"):
        """Resumes from ckpt (which writes `out` again) and requires the reference model."""
        self.run_ok(["train", "--resume", ckpt, "--quiet"])
        self.assertEqual(model_bytes(out), self.ref[ref][0], "the resumed run ended with a different model")
        self.assertEqual(temps(os.path.dirname(out)), [], "temporary files left behind")

    # ------------------------------------------------------------ SIGINT / SIGTERM --

    def interrupt(self, sig, wait_pattern, where):
        out, ckpt = self.path("m.safetensors"), self.path("m.ckpt.safetensors")
        p = Proc(self.args(out))
        self.assertTrue(p.wait_for(wait_pattern), "snncl ended before %s:\n%s" % (where, "".join(p.err)))
        p.p.send_signal(sig)
        rc, so, se = p.finish()
        desc = "exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, so, se)
        self.assertEqual(rc, 128 + sig, desc)
        name = signal.Signals(sig).name
        m = re.search(r"interrupted by %s at epoch (\d+) step (\d+)( \(evaluating\))?; checkpoint saved to (\S+); "
                      r"resume with --resume (\S+)\n" % name, se)
        self.assertIsNotNone(m, desc)
        self.assertEqual((m.group(4), m.group(5)), (ckpt, ckpt), desc)
        meta = check_whole(self, ckpt)
        epoch, step = int(m.group(1)), int(m.group(2))
        self.assertEqual((int(meta["train.epoch"]), int(meta["train.step"])), (epoch - 1, step), desc)
        self.assertLessEqual((epoch - 1) * STEPS + step, 2 * STEPS, desc)
        self.resume_matches(ckpt, out)
        return m.group(3) is not None, step

    def test_sigint_while_training(self):
        evaluating, step = self.interrupt(signal.SIGINT, r"^epoch 1/2 \d+/%d" % N_TRAIN, "the first progress line")
        self.assertFalse(evaluating)
        self.assertGreater(step, 0)

    def test_sigterm_while_evaluating(self):
        # The evaluation is short; a signal that lands after it still has to resume exactly,
        # but the case is only covered once one lands inside it.
        for attempt in range(4):
            with self.subTest(attempt=attempt):
                evaluating, step = self.interrupt(signal.SIGTERM, r"^eval \d+/%d" % N_TEST, "evaluating")
                if evaluating:
                    self.assertEqual(step, STEPS)
                    return
                shutil.rmtree(self.tmp)
                os.mkdir(self.tmp)
        self.fail("SIGTERM never landed while evaluating")

    def test_two_sigints_back_to_back(self):
        """The second signal may quit at once (default action); the checkpoint stays whole."""
        out, ckpt = self.path("m.safetensors"), self.path("m.ckpt.safetensors")
        p = Proc(self.args(out, "--no-eval", "--checkpoint-every", "1"))
        self.assertTrue(p.wait_for(r"^epoch 1/2 \d+/"))
        p.p.send_signal(signal.SIGINT)
        p.p.send_signal(signal.SIGINT)
        rc, so, se = p.finish()
        self.assertIn(rc, (130, -signal.SIGINT), se)
        check_whole(self, ckpt)
        self.resume_matches(ckpt, out, "noeval")

    # --------------------------------------------------------------------- SIGKILL --

    def test_sigkill_at_random_moments(self):
        seed = int(os.environ.get("SNNCL_FAULT_SEED", "1"))
        rng = random.Random(seed)
        span = self.ref["noeval"][1]
        delays = [0.0, 0.05] + sorted(rng.uniform(0.1, span) for _ in range(6))
        outcomes = []
        for i, delay in enumerate(delays):
            with self.subTest(kill=i, delay=round(delay, 3)):
                d = self.path("k%d" % i)
                os.mkdir(d)
                out, ckpt = os.path.join(d, "m.safetensors"), os.path.join(d, "m.ckpt.safetensors")
                p = subprocess.Popen([SNNCL] + self.args(out, "--no-eval", "--quiet", "--checkpoint-every", "1"),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(delay)
                p.kill()
                rc = p.wait(TIMEOUT)
                left = temps(d)
                if not os.path.exists(ckpt):
                    what = "no checkpoint yet"
                    self.run_ok(self.args(out, "--no-eval", "--quiet"))
                    self.assertEqual(model_bytes(out), self.ref["noeval"][0])
                else:
                    meta = check_whole(self, ckpt)
                    what = "checkpoint at global step %s" % meta["train.global_step"]
                    self.resume_matches(ckpt, out, "noeval")
                if rc == 0:
                    what += ", finished before the kill"
                if left:
                    what += ", killed while writing (%s left, removed by the resumed run)" % ", ".join(left)
                outcomes.append("kill %d at %.3f s: %s" % (i, delay, what))
        print("\nSIGKILL (seed %d, undisturbed run %.2f s):\n  %s" % (seed, span, "\n  ".join(outcomes)))

    def test_stale_temporary_files(self):
        """Temporaries of dead writers are removed; one of a live process is left alone."""
        dead = subprocess.Popen(["true"])
        dead.wait()
        out, ckpt = self.path("m.safetensors"), self.path("m.ckpt.safetensors")
        stale = [ckpt + ".tmp.%d" % dead.pid, out + ".tmp.%d" % dead.pid]
        live = ckpt + ".tmp.%d" % os.getpid()
        for f in stale + [live]:
            with open(f, "wb") as fh:
                fh.write(b"\0" * 100)
        _, err = self.run_ok(self.args(out, "--no-eval", "--quiet", "--max-steps", "5"))
        for f in stale:
            self.assertFalse(os.path.exists(f), f)
            self.assertIn("removed %s" % f, err)
        self.assertTrue(os.path.exists(live))
        check_whole(self, ckpt)

    # ------------------------------------------------------------------- full disk --

    def mount_small_tmpfs(self, directory, size):
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", directory],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return r.returncode == 0, r.stdout.decode("utf-8", "replace").strip()

    def test_disk_full(self):
        if os.geteuid() != 0 and not os.environ.get("SNNCL_FAULTS_IN_NAMESPACE"):
            # Not root: run this one test again as root of a new user and mount namespace.
            if not shutil.which("unshare"):
                self.skipTest("not root and no unshare: cannot mount a small tmpfs")
            env = dict(os.environ, SNNCL_FAULTS_IN_NAMESPACE="1")
            r = subprocess.run(["unshare", "-rm", sys.executable, os.path.abspath(__file__), SNNCL, FIXTURES,
                                "FaultTests.test_disk_full"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env, timeout=2 * TIMEOUT)
            text = r.stdout.decode("utf-8", "replace")
            if "unshare:" in text and r.returncode != 0:
                self.skipTest("not root and unshare -rm failed: " + text.strip().splitlines()[-1])
            self.assertEqual(r.returncode, 0, text)
            m = re.search(r"(\d+) passed, \d+ failed, (\d+) skipped", text)
            self.assertIsNotNone(m, text)
            if m.group(2) != "0":
                self.skipTest("in the namespace: " + re.findall(r"skipped '.*'", text)[-1])
            self.assertEqual(m.group(1), "1", text)
            print("(ran as root of a user namespace) ", end="")
            return
        disk = self.path("disk")
        os.mkdir(disk)
        ok, why = self.mount_small_tmpfs(disk, "1m")
        if not ok:
            self.skipTest("cannot mount a tmpfs: " + why)
        try:
            self.disk_full_in(disk)
        finally:
            if subprocess.run(["umount", disk]).returncode != 0:
                subprocess.run(["umount", "-l", disk])

    def disk_full_in(self, disk):
        out, ckpt = self.path("m.safetensors"), os.path.join(disk, "m.ckpt.safetensors")
        args = self.args(out, "--no-eval", "--quiet", "--checkpoint", ckpt, "--checkpoint-every", "1")
        # The size of one checkpoint, in the tmpfs's pages.
        probe = os.path.join(disk, "probe.safetensors")
        self.run_ok(self.args(self.path("p.safetensors"), "--no-eval", "--quiet", "--checkpoint", probe,
                              "--max-steps", "1"))
        size = os.path.getsize(probe)
        os.unlink(probe)
        page = os.statvfs(disk).f_bsize
        pages = (size + page - 1) // page
        # Fill the disk page by page, then free room for one checkpoint and a half: the
        # first write fits, the second does not (the first still takes its room).
        fill = []
        while True:
            f = os.path.join(disk, "fill%05d" % len(fill))
            try:
                with open(f, "wb") as fh:
                    fh.write(b"\1" * page)
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC)
                if os.path.exists(f):
                    os.unlink(f)
                break
            fill.append(f)
        for f in fill[-(pages + pages // 2):]:
            os.unlink(f)
        fill = fill[:-(pages + pages // 2)]

        rc, so, se = test_cli.run_snncl(args, timeout=TIMEOUT)
        desc = "exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, so, se)
        self.assertEqual(rc, 1, desc)
        self.assertIn("No space left on device", se, desc)
        self.assertIn("the last checkpoint, %s, is intact" % ckpt, se, desc)
        meta = check_whole(self, ckpt)
        self.assertEqual(meta["train.global_step"], "1", desc)
        self.assertEqual(temps(disk), [], "a failed write left its temporary file")
        before = file_bytes(ckpt)

        # Resuming on the still-full disk fails at its first write, leaving the file as it was.
        rc, so, se = test_cli.run_snncl(["train", "--resume", ckpt, "--quiet"], timeout=TIMEOUT)
        self.assertEqual(rc, 1, se)
        self.assertIn("No space left on device", se)
        self.assertEqual(file_bytes(ckpt), before, "the previous checkpoint changed")
        self.assertEqual(temps(disk), [])

        # Space again: the run resumes and ends with the undisturbed model.
        for f in fill:
            os.unlink(f)
        self.run_ok(["train", "--resume", ckpt, "--quiet"])
        self.assertEqual(model_bytes(out), self.ref["noeval"][0])

    def test_file_size_limit(self):
        """A file size limit below a checkpoint's size: the write fails with EFBIG ("File too
        large") instead of SIGXFSZ killing the run. The limit is lowered once training runs
        (prlimit), since building the kernels at start-up writes larger files."""
        out, ckpt = self.path("m.safetensors"), self.path("m.ckpt.safetensors")
        p = Proc(self.args(out, "--no-eval", "--checkpoint-every", "1"))
        self.assertTrue(p.wait_for(r"^epoch 1/2 \d+/"), "".join(p.err))
        size = os.path.getsize(ckpt)
        resource.prlimit(p.p.pid, resource.RLIMIT_FSIZE, (size // 2, size // 2))
        rc, so, se = p.finish()
        desc = "exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, so, se)
        self.assertEqual(rc, 1, desc)
        self.assertIn("File too large", se, desc)
        self.assertIn("the last checkpoint, %s, is intact" % ckpt, se, desc)
        m = re.search(r"stopping at epoch 1 step (\d+);", se)
        self.assertIsNotNone(m, desc)
        meta = check_whole(self, ckpt)
        self.assertEqual(int(meta["train.step"]), int(m.group(1)) - 1, desc)
        self.assertEqual(temps(self.tmp), [])
        self.resume_matches(ckpt, out, "noeval")

    # ------------------------------------------------------------ non-finite loss --

    def test_non_finite(self):
        out, ckpt = self.path("m.safetensors"), self.path("m.ckpt.safetensors")
        self.run_ok(self.args(out, "--no-eval", "--quiet", "--max-steps", "3"))
        good = file_bytes(ckpt)
        cases = {
            # weights of about 1e30: the next forward pass overflows and the loss is nan
            "loss": (["--lr", "1e30"], r"the loss became (nan|-?inf) at epoch 1 step 5"),
            # the update itself overflows to inf while the step's loss was still finite
            # lr / (1 - beta1^4) overflows, so the step-4 update is inf: Adam's step is finite
            # and the loss (computed before it) too, but the checkpoint must not be written
            "parameters": (["--lr", "3e38", "--checkpoint-every", "1"],
                           r"'[\w.]+' became inf or nan at epoch 1 step 4; stopping without writing"),
        }
        for name, (extra, pattern) in cases.items():
            with self.subTest(name):
                rc, so, se = test_cli.run_snncl(["train", "--resume", ckpt, "--quiet"] + extra, timeout=TIMEOUT)
                desc = "exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, so, se)
                self.assertEqual(rc, 1, desc)
                self.assertRegex(se, pattern, desc)
                self.assertIn("the last checkpoint, %s, is intact" % ckpt, se, desc)
                self.assertEqual(file_bytes(ckpt), good, "the last good checkpoint changed")
                self.assertEqual(temps(self.tmp), [])
        # It still resumes (with its own settings) to the undisturbed model.
        self.resume_matches(ckpt, out, "noeval")
        # A fresh run that diverges at once says that there is no checkpoint to go back to.
        args = self.args(self.path("d.safetensors"), "--no-eval", "--quiet", "--checkpoint-every", "1")
        args[args.index("--lr") + 1] = "1e38"
        rc, so, se = test_cli.run_snncl(args, timeout=TIMEOUT)
        self.assertEqual(rc, 1, se)
        self.assertIn("no checkpoint had been written yet", se)
        self.assertFalse(os.path.exists(self.path("d.ckpt.safetensors")))


def main(argv):
    global SNNCL, FIXTURES
    if len(argv) < 3:
        sys.stderr.write("usage: %s PATH/TO/snncl FIXTURE_DIR [unittest names]\n" % argv[0])
        return 2
    SNNCL = test_cli.SNNCL = os.path.abspath(argv[1])
    FIXTURES = test_cli.FIXTURES = os.path.abspath(argv[2])
    if not os.access(SNNCL, os.X_OK):
        sys.stderr.write("%s is not an executable\n" % SNNCL)
        return 1
    rc, _, err = test_cli.run_snncl(["devices"], timeout=TIMEOUT)
    if rc != 0:
        print("SKIP: snncl has no device here: " + err.strip())
        return 77
    loader = unittest.TestLoader()
    module = sys.modules[__name__]
    suite = loader.loadTestsFromNames(argv[3:], module) if argv[3:] else loader.loadTestsFromModule(module)
    t0 = time.monotonic()
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=test_cli._Result).run(suite)
    skipped = {t.id() for t, _ in result.skipped}
    failed = len(result.failed_ids)
    passed = len(result.method_ids - result.failed_ids - skipped)
    print("%d passed, %d failed, %d skipped (%.1f s)" % (passed, failed, len(skipped), time.monotonic() - t0))
    sys.stdout.flush()
    return 0 if failed == 0 and result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
