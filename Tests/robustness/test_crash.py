"""Crash safety (Hardening issue, item 4): many cycles of writers + SIGKILL of the daemon at a random
moment + remount, and ENOSPC mid-commit on a small loop filesystem followed by a SIGKILL.

Each kill cycle: mount (our own `layerfs mount -f` child); two writers (crash_writer.py, each in
its own directory, manifests outside the mount) change files; after a random delay the daemon is
SIGKILLed (by its pid); the dead mount ("Transport endpoint is not connected") is unmounted; the
writers stop at their first failing call. Then:
  - `layerfs verify STORE` exits 0;
  - metadata/recovered/ holds nothing but events-tail-* files (a torn tail is the only thing ever
    moved aside), and metadata/staging/ is empty once the store is mounted again;
  - remounted, each writer's directory is exactly its acknowledged state (every change whose
    fsync/close/rename/unlink returned success, in order), or that state plus the one change that
    was in flight at the kill, wholly (an unacknowledged change may or may not be there; never
    half of it, never anything else).
The state found becomes the next cycle's starting state. A fresh store every 25 cycles keeps the
store (and verify) small in the long run.

Short (default): 6 kill cycles. Long (LAYERFS_STRESS=long): 200, or LAYERFS_CRASH_CYCLES=N.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import time
import unittest

import harness
from harness import log

HERE = os.path.dirname(os.path.abspath(__file__))
WRITERS = 2
CYCLES_PER_STORE = 25


def replay(manifest_path, initial):
    """The acknowledged state, and the change in flight (or None), from a writer's manifest."""
    state = dict(initial)
    pending = None
    acked = 0
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            for line in f:
                entry = json.loads(line)
                if "intent" in entry:
                    if pending is not None:
                        raise AssertionError(f"{manifest_path}: change {pending['n']} neither acknowledged nor last")
                    for name, digest in entry["before"].items():
                        if state.get(name) != digest:
                            raise AssertionError(f"{manifest_path}: change {entry['n']} starts from {name}={digest}, the model has {state.get(name)}")
                    pending = entry
                else:
                    if pending is None or pending["n"] != entry["n"]:
                        raise AssertionError(f"{manifest_path}: ack {entry} without its intent")
                    for name, digest in pending["after"].items():
                        if digest is None:
                            state.pop(name, None)
                        else:
                            state[name] = digest
                    pending = None
                    acked += 1
    return state, pending, acked


def observed_state(directory):
    return {name: harness.sha256_file(os.path.join(directory, name)) for name in os.listdir(directory)}


def apply(state, change):
    after = dict(state)
    for name, digest in change["after"].items():
        if digest is None:
            after.pop(name, None)
        else:
            after[name] = digest
    return after


def difference(found, expected):
    keys = sorted(set(found) | set(expected))
    return "; ".join(f"{k}: found {found.get(k, 'nothing')[:12] if found.get(k) else 'nothing'}, expected {expected.get(k, 'nothing')[:12] if expected.get(k) else 'nothing'}"
                     for k in keys if found.get(k) != expected.get(k))[:2000]


def check_recovered(testcase, store):
    files = harness.recovered_files(store)
    testcase.assertTrue(all(f.startswith("events-tail-") for f in files), f"metadata/recovered/ holds more than torn tails: {files}")
    return files


class CrashTests(unittest.TestCase):
    def setUp(self):
        reason = harness.unavailable_reason()
        if reason:
            self.skipTest(reason)

    def test_sigkill_cycles_lose_nothing_acknowledged(self):
        cycles = int(os.environ.get("LAYERFS_CRASH_CYCLES") or (200 if harness.long_mode() else 6))
        seed = int(os.environ.get("LAYERFS_CRASH_SEED") or random.randrange(1 << 31))
        rng = random.Random(seed)
        log("crash", f"{cycles} kill cycles, seed {seed} (LAYERFS_CRASH_SEED={seed} repeats the choices)")
        totals = {"kills": 0, "acked": 0, "bytes": 0, "inflight": 0, "inflight_landed": 0, "torn_tails": 0, "lazy": 0}
        ops = {}
        started = time.monotonic()
        with harness.scratch_directory("crash") as scratch:
            mnt = f"{scratch}/mnt"
            states = None
            store = None
            for cycle in range(cycles):
                if cycle % CYCLES_PER_STORE == 0:
                    if store is not None:  # done with it: keep the disk use bounded
                        totals["torn_tails"] += len(harness.recovered_files(store))
                        shutil.rmtree(store)
                    store = f"{scratch}/store-{cycle // CYCLES_PER_STORE}"
                    harness.layerfs("init", store)
                    states = [{} for _ in range(WRITERS)]
                    with harness.Mount(store, mnt, f"{scratch}/mount-setup.log"):
                        for k in range(WRITERS):
                            os.mkdir(f"{mnt}/w{k}")
                work = f"{scratch}/cycle-{cycle}"
                os.makedirs(work)
                manifests = [f"{work}/manifest-{k}.jsonl" for k in range(WRITERS)]
                m = harness.Mount(store, mnt, f"{work}/mount.log").start()
                writers = []
                try:
                    for k in range(WRITERS):
                        with open(f"{work}/state-{k}.json", "w") as f:
                            json.dump(states[k], f)
                        writers.append(subprocess.Popen(
                            [sys.executable, f"{HERE}/crash_writer.py", f"{mnt}/w{k}", f"{work}/state-{k}.json", manifests[k], str(rng.randrange(1 << 31))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                    time.sleep(rng.uniform(0.1, 2.0))
                    early = [(k, w) for k, w in enumerate(writers) if w.poll() is not None]
                    if early:
                        k, w = early[0]
                        with open(manifests[k]) as f:
                            entries = f.read()[-1500:]
                        raise AssertionError(f"cycle {cycle}: writer {k} stopped before the kill: {w.stdout.read()}; its manifest ends: {entries}; state given: {states[k]}; the mount's log: {m.log_tail(3000)}")
                finally:
                    killed_at = time.monotonic()  # CLOCK_MONOTONIC: the writers' clock too
                    totals["lazy"] += m.kill9()
                    outputs = []
                    for w in writers:
                        try:
                            out, _ = w.communicate(timeout=60)
                        except subprocess.TimeoutExpired:
                            w.kill()
                            out, _ = w.communicate()
                            raise AssertionError("a writer hung after the daemon was killed")
                        outputs.append(out)
                totals["kills"] += 1
                self.assertFalse(harness.is_mounted(mnt))
                self.assertEqual(m.process.returncode, -9)
                summaries = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
                for k, summary in enumerate(summaries):
                    # A writer stops at its first failing call: that must be the kill, not an error
                    # of a live daemon.
                    self.assertIsNotNone(summary["failed_at"], f"writer {k} never saw a failure: {summary}")
                    self.assertGreaterEqual(summary["failed_at"], killed_at, f"cycle {cycle}: writer {k} failed with {summary['errno_name']} before the kill")

                # The store, unmounted: it verifies; nothing but a torn tail was moved aside.
                harness.verify_store(store)
                check_recovered(self, store)

                expected = [replay(manifests[k], states[k]) for k in range(WRITERS)]
                with harness.Mount(store, mnt, f"{work}/mount-check.log") as check:
                    staging = os.listdir(f"{store}/metadata/staging") if os.path.isdir(f"{store}/metadata/staging") else []
                    self.assertEqual(staging, [], "staging files left after the reopen")
                    for k in range(WRITERS):
                        acked_state, pending, acked = expected[k]
                        found = observed_state(f"{mnt}/w{k}")
                        allowed = [acked_state] + ([apply(acked_state, pending)] if pending else [])
                        self.assertIn(found, allowed,
                                      f"cycle {cycle}, writer {k} (in flight: {pending and pending['intent']}): {difference(found, acked_state)}")
                        totals["acked"] += acked
                        totals["bytes"] += summaries[k]["bytes_acked"]
                        if pending:
                            totals["inflight"] += 1
                            totals["inflight_landed"] += found != acked_state
                        for op, n in summaries[k]["counts"].items():
                            ops[op] = ops.get(op, 0) + n
                        states[k] = found
                    self.assertIn("did not close cleanly", check.log_tail(20000))
                check_recovered(self, store)
                harness.verify_store(store)
                shutil.rmtree(work)
                if cycle < 3 or (cycle + 1) % 25 == 0 or cycle == cycles - 1:
                    log("crash", f"cycle {cycle + 1}/{cycles} ({totals['kills']} kills, {totals['acked']} acknowledged changes checked so far): writers acked {[s['acked'] for s in summaries]} changes, stopped by {[s['errno_name'] for s in summaries]}; in flight: {[e[1]['intent'] if e[1] else None for e in expected]}")
            totals["torn_tails"] += len(harness.recovered_files(store))
            harness.assert_nothing_left(scratch)
        log("crash", f"{totals['kills']} SIGKILLs in {time.monotonic() - started:.0f} s: {totals['acked']} acknowledged changes ({totals['bytes'] / 1048576:.0f} MiB) all found; "
                     f"{totals['inflight']} changes in flight at a kill, {totals['inflight_landed']} of them landed; torn tails moved aside: {totals['torn_tails']}; lazy unmounts: {totals['lazy']}")
        log("crash", f"changes by kind: {json.dumps(ops, sort_keys=True)}")

    def test_enospc_mid_commit_then_sigkill_loses_nothing_acknowledged(self):
        """A writer fills a small loop ext4 until a commit fails with ENOSPC (large staged files and
        small ones); the daemon is then SIGKILLed on the full disk; the store verifies, mounts again
        while still full with every acknowledged file, and accepts writes once space is freed."""
        reason = harness.unavailable_reason(("mkfs.ext4", "losetup", "truncate"))
        if reason or not os.path.exists("/dev/loop-control"):
            self.skipTest(reason or "no loop devices")
        with harness.scratch_directory("enospc") as scratch:
            with harness.loop_ext4(scratch, 96) as fs:
                store, mnt = f"{fs}/store", f"{scratch}/mnt"
                harness.layerfs("init", store)
                ballast = f"{fs}/ballast"  # room given back later, from outside the store
                with open(ballast, "wb") as f:
                    f.write(b"\xba" * (12 << 20))
                state_path = f"{scratch}/state.json"
                m = harness.Mount(store, mnt, f"{scratch}/mount-1.log").start()
                try:
                    os.mkdir(f"{mnt}/w")
                    # Until ENOSPC with any size (staged files over 4 MiB fail mid-commit), then
                    # with ever smaller files, so that the disk is full to the last blocks.
                    acked_state, acked, failures = {}, 0, []
                    for phase, fill in enumerate(("--fill", "--fill=1048576", "--fill=65536", "--fill=4096", "--fill=200")):
                        with open(state_path, "w") as f:
                            json.dump(acked_state, f)
                        manifest = f"{scratch}/manifest-{phase}.jsonl"
                        result = subprocess.run([sys.executable, f"{HERE}/crash_writer.py", f"{mnt}/w", state_path, manifest, str(4242 + phase), fill],
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
                        summary = json.loads(result.stdout.strip().splitlines()[-1])
                        self.assertEqual(summary["errno_name"], "ENOSPC", f"the writer ({fill}) stopped with {summary}")
                        acked_state, pending, n = replay(manifest, acked_state)
                        self.assertIsNotNone(pending)
                        acked += n
                        failures.append(f"{fill}: {n} files acknowledged, then ENOSPC writing {pending['size']} bytes")
                    statvfs = os.statvfs(fs)
                    log("enospc", f"{acked} files acknowledged; {'; '.join(failures)}; free now {statvfs.f_bfree * statvfs.f_frsize} bytes")
                    # The failed change is not in the present once its handle is released.
                    deadline = time.monotonic() + 5
                    while observed_state(f"{mnt}/w") != acked_state and time.monotonic() < deadline:
                        time.sleep(0.05)
                    self.assertEqual(observed_state(f"{mnt}/w"), acked_state, "the mount on the full disk")
                finally:
                    m.kill9()  # on the full disk
                self.assertEqual(m.process.returncode, -9)
                harness.verify_store(store)
                check_recovered(self, store)
                # Mounted again while the disk is still full.
                with harness.Mount(store, mnt, f"{scratch}/mount-2.log") as m2:
                    self.assertEqual(observed_state(f"{mnt}/w"), acked_state, "after the kill, remounted on the full disk")
                    self.assertIn("did not close cleanly", m2.log_tail(20000))
                harness.verify_store(store)
                # Space freed from outside the store: writes are accepted again, large and small.
                os.unlink(ballast)
                os.sync()
                with harness.Mount(store, mnt, f"{scratch}/mount-3.log"):
                    self.assertEqual(observed_state(f"{mnt}/w"), acked_state)
                    for name, size in (("after-big", 5 << 20), ("after-small", 1000)):
                        data = random.Random(size).randbytes(size)
                        with open(f"{mnt}/w/{name}", "wb") as f:
                            f.write(data)
                            f.flush()
                            os.fsync(f.fileno())
                        acked_state[name] = harness.sha256(data)
                    self.assertEqual(observed_state(f"{mnt}/w"), acked_state)
                with harness.Mount(store, mnt, f"{scratch}/mount-4.log"):
                    self.assertEqual(observed_state(f"{mnt}/w"), acked_state, "after a clean unmount")
                harness.verify_store(store)
                recovered = check_recovered(self, store)
                log("enospc", f"killed on the full disk, remounted full and then with room: all {len(acked_state)} acknowledged files exact; verify OK; recovered/: {recovered}")
            harness.assert_nothing_left(scratch)


if __name__ == "__main__":
    unittest.main(verbosity=2)
