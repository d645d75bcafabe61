"""Unit tests of the benchmarks' plumbing that need no root, no mount and no network (< 1 s):
the generated trees are deterministic, the scripts load and reject bad arguments."""

import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402


def load(name):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), os.path.join(HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snapshot(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            path = os.path.join(d, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


class ConfigText(unittest.TestCase):
    def test_exact_size_and_deterministic(self):
        for size in (200, 1000, 6000):
            a = benchlib.config_text(random.Random(3), size, "x")
            b = benchlib.config_text(random.Random(3), size, "x")
            self.assertEqual(len(a.encode()), size)
            self.assertEqual(a, b)
            self.assertTrue(a.endswith("\n"))
        self.assertNotEqual(benchlib.config_text(random.Random(3), 500, "x"),
                            benchlib.config_text(random.Random(4), 500, "x"))

    def test_percentile_nearest_rank(self):
        self.assertEqual(benchlib.percentile([5, 1, 3, 2, 4], 50), 3)
        self.assertEqual(benchlib.percentile(list(range(1, 101)), 99), 99)
        self.assertEqual(benchlib.percentile([7], 99), 7)


class PeerBenchTree(unittest.TestCase):
    def setUp(self):
        self.pb = load("peer-bench")

    def test_tree_shape(self):
        files = self.pb.tree_files(2000)
        self.assertEqual(len(files), 2000)
        self.assertEqual(len(set(files)), 2000)
        self.assertEqual(len({os.path.dirname(f) for f in files}), 40)

    def test_versions_are_deterministic_and_change_one_percent(self):
        files = self.pb.tree_files(400)
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            for root in (a, b):
                self.pb.write_version(root, files, 1, seed=1, fraction=0.01)
            v1 = snapshot(a)
            self.assertEqual(v1, snapshot(b))
            self.assertEqual(len(v1), 400)
            self.assertTrue(all(1000 <= len(c) <= 6000 for c in v1.values()))
            changed = [self.pb.write_version(root, files, 2, seed=1, fraction=0.01) for root in (a, b)]
            self.assertEqual(changed[0], changed[1])
            self.assertEqual(len(changed[0]), 4)
            v2 = snapshot(a)
            self.assertEqual(v2, snapshot(b))
            differ = sorted(p for p in v1 if v1[p] != v2[p])
            self.assertEqual(differ, changed[0])

    def test_env_file(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("# comment\nRESTIC_PASSWORD=a=b\n\nRESTIC_REPOSITORY=/x/y\n")
        try:
            self.assertEqual(self.pb.read_env_file(f.name), {"RESTIC_PASSWORD": "a=b", "RESTIC_REPOSITORY": "/x/y"})
        finally:
            os.unlink(f.name)


class Scripts(unittest.TestCase):
    def test_scripts_load(self):
        for name in ("mount-bench", "peer-bench", "similar-bench"):
            p = subprocess.run([sys.executable, os.path.join(HERE, f"{name}.py"), "--help"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.assertEqual(p.returncode, 0, p.stderr.decode())

    def test_peer_bench_rejects_bad_arguments(self):
        for args in (["--only", "zfs"], ["--files", "10"], ["--versions", "1"], ["--runs", "0"]):
            p = subprocess.run([sys.executable, os.path.join(HERE, "peer-bench.py"), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(b"peer-bench:", p.stderr)


if __name__ == "__main__":
    unittest.main()
