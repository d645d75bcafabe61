#!/usr/bin/env python3
"""Model-based test of layerfs's present and of its history (@time), with Hypothesis.

A Hypothesis RuleBasedStateMachine draws random sequences of filesystem operations (create and
write, O_EXCL create, write at an offset (holes), append, truncate, rename, unlink, mkdir, rmdir,
symlink, chmod, read) over a small pool of paths, so that most of them collide: error cases
(EEXIST, ENOENT, ENOTDIR, EISDIR, ENOTEMPTY, EINVAL, ELOOP...) come often; and up to three
descriptors held open across steps (write, pwrite, pread, ftruncate, fstat, fsync, close), so that
files are renamed, replaced, truncated and unlinked while open. Every operation is applied to a
native directory (the model) and to the present of a layerfs mount. After every step:

- the outcome must be the same on both ('ok' or the same errno), and so must a read's result;
- the trees must be equal: names, types, file contents, permission bits, symlink targets;
- the store's log must have grown by exactly one event if the step changed the tree, none if not
  (docs/OPERATIONS.md: one event per committed change), while no descriptor is open; once the last
  one is closed, history (@time at the current time) must catch up with the present within 5 s.

When an example ends, every recorded moment is checked against history: for each step, both the
time of the event it produced (from the log) and a clock reading taken after it,
`MNT/@time/<RFC 3339 time with nanoseconds>/<example dir>/` must equal the model's tree at that step.

Each example runs in a fresh directory of one mount that the script makes and tears down itself.

Environment (or the matching flags):
  LAYERFS_MODEL_EXAMPLES   examples (default 100)       --examples
  LAYERFS_MODEL_STEPS      steps per example (default 40) --steps
  LAYERFS_MODEL_SEED       a seed, to replay a run       --seed
  LAYERFS_BINARY           the layerfs binary (default .build/debug/layerfs)

Hypothesis is installed from PyPI with pip when it is missing.
"""

import argparse
import datetime
import errno
import json
import os
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def ensure_hypothesis():
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        print("model: hypothesis is missing: installing it from PyPI with pip", file=sys.stderr)
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "hypothesis"])
        if r.returncode != 0:
            sys.exit("model: could not install hypothesis: install python3-hypothesis (Debian; "
                     "scripts/install-deps.sh does) or run pip install hypothesis")


ensure_hypothesis()

from hypothesis import HealthCheck, settings, strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test  # noqa: E402

# A small pool of paths: names that collide, nesting two levels deep, and room for symlinks that
# make one name a way into another directory (e -> d, then e/a is d/a).
PATHS = ["a", "b", "d", "e", "d/a", "d/b", "d/f", "d/f/a", "e/a", "e/b", "f", "f/a"]
# Symlink targets, all relative and staying inside the example's directory (a dangling one, a
# loop through '.', a directory, a path through another name).
TARGETS = ["a", "b", "d", "d/a", "nowhere", ".", "f/a", "b/../a"]
MODES = [0o644, 0o600, 0o755, 0o700, 0o444, 0o000, 0o4755, 0o1777]

paths = st.sampled_from(PATHS)
data = st.binary(max_size=48)
nonempty = st.binary(min_size=1, max_size=48)

WS = None          # the harness.Workspace of this run
EXAMPLE = [0]      # examples run so far (each gets its own directory)


def rfc3339(ns):
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.datetime.fromtimestamp(secs, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except OSError as e:
        return (errno.errorcode.get(e.errno, str(e.errno)), None)


def tree(root):
    """{relative path: description} of root ('.': its mode) and everything under it (symlinks not followed)."""
    out = {".": ("dir", oct(os.lstat(root).st_mode & 0o7777))}

    def walk(d, rel):
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            r = rel + name
            s = os.lstat(p)
            if stat.S_ISLNK(s.st_mode):
                out[r] = ("symlink", os.readlink(p))
            elif stat.S_ISDIR(s.st_mode):
                out[r] = ("dir", oct(s.st_mode & 0o7777))
                walk(p, r + "/")
            elif stat.S_ISREG(s.st_mode):
                with open(p, "rb") as f:
                    out[r] = ("file", oct(s.st_mode & 0o7777), f.read())
            else:
                out[r] = ("other", oct(s.st_mode))
    walk(root, "")
    return out


class EventLog:
    """The store's events.jsonl, read as it grows (complete lines only)."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.buffer = b""
        self.events = []
        self.poll()

    def poll(self):
        self.buffer += self.f.read()
        *lines, self.buffer = self.buffer.split(b"\n")
        self.events += [json.loads(line) for line in lines if line.strip()]
        return len(self.events)

    def wait_for(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.poll() < count and time.monotonic() < deadline:
            time.sleep(0.002)
        return len(self.events)


# ---- the operations, each run on one side's root ------------------------------------------------

def op_create_write(root, path, content, flags):
    fd = os.open(os.path.join(root, path), os.O_WRONLY | os.O_CREAT | flags, 0o644)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def op_write_at(root, path, offset, content):
    fd = os.open(os.path.join(root, path), os.O_WRONLY)
    try:
        return os.pwrite(fd, content, offset)
    finally:
        os.close(fd)


def op_append(root, path, content):
    fd = os.open(os.path.join(root, path), os.O_WRONLY | os.O_APPEND)
    try:
        return os.write(fd, content)
    finally:
        os.close(fd)


def op_read(root, path):
    fd = os.open(os.path.join(root, path), os.O_RDONLY)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


class PresentModel(RuleBasedStateMachine):
    """The mount's present against a native directory, step by step; then history against the steps."""

    def __init__(self):
        super().__init__()
        EXAMPLE[0] += 1
        self.name = f"example-{EXAMPLE[0]:04d}"
        self.native = os.path.join(WS.native, self.name)
        self.mounted = os.path.join(WS.mnt, self.name)
        self.log = EventLog(os.path.join(WS.store, "events.jsonl"))
        os.mkdir(self.native)
        os.mkdir(self.mounted)
        self.expect_events(tree_changed=True, what="mkdir of the example directory")
        self.moments = []    # (what, RFC 3339 time, expected tree)
        self.steps = 0
        self.fds = []        # open descriptors: (native fd, mount fd, what opened it)
        self.fds_used = False  # descriptors were open since the last moment recorded
        self.record("start")

    # -- bookkeeping --------------------------------------------------------------------------

    def expect_events(self, tree_changed, what):
        start = len(self.log.events)
        want = start + (1 if tree_changed else 0)
        got = self.log.wait_for(want, timeout=5.0 if tree_changed else 0.0)
        if not tree_changed:
            time.sleep(0)   # nothing to wait for: an unexpected event shows at the next step's count
        assert got == want, (
            f"{what}: the log grew by {got - start} events, expected {want - start}: "
            f"{[e.get('op') + ' ' + str(e.get('path')) for e in self.log.events[start:]]}")
        return self.log.events[-1] if tree_changed else None

    def record(self, what, event=None):
        snapshot = tree(self.native)
        if event is not None:
            self.moments.append((what + " (its event's time)", event["time"], snapshot))
        self.moments.append((what + " (a clock reading after it)", rfc3339(time.time_ns()), snapshot))

    def both(self, what, fn, *args):
        try:
            self._both(what, fn, *args)
        except AssertionError as e:
            FIRST_FAILURES.append(f"{self.name}: {e}")
            raise

    def _both(self, what, fn, *args):
        before = tree(self.native)
        native = outcome(fn, self.native, *args)
        mounted = outcome(fn, self.mounted, *args)
        assert native == mounted, f"{what}: native {native!r}, layerfs {mounted!r}"
        after_native, after_mounted = tree(self.native), tree(self.mounted)
        assert after_native == after_mounted, f"after {what}:\n{diff(after_native, after_mounted)}"
        self.steps += 1
        self.after_step(f"step {self.steps}: {what} -> {native[0]}", after_native != before)

    def after_step(self, what, tree_changed):
        """Checks the log and records a moment; while descriptors are open, neither (their writes
        are committed at close, one event per writer that changed the file)."""
        if self.fds:
            self.fds_used = True
            return
        if self.fds_used:
            self.settle(what)
            self.fds_used = False
            return
        event = self.expect_events(tree_changed, what)
        self.record(what, event)

    def settle(self, what):
        """After the last descriptor is closed: wait until history shows the model's tree (commits
        of new files come at the release the kernel sends after close returns), then record."""
        expected = tree(self.native)
        deadline = time.monotonic() + 5
        while True:
            self.log.poll()
            now = rfc3339(time.time_ns())
            try:
                actual = tree(os.path.join(WS.mnt, "@time", now, self.name))
            except OSError as e:
                actual = {"error": errno.errorcode.get(e.errno, e.errno)}
            if actual == expected:
                break
            assert time.monotonic() < deadline, (
                f"{what}: 5 s after the last descriptor was closed, @time/{now} still differs from the present:\n"
                + diff(expected, actual))
            time.sleep(0.005)
        self.log.poll()
        self.moments.append((what + " (history caught up with the descriptors' writes)", now, expected))
        self.record(what)

    def both_fd(self, what, index, fn, *args):
        """Runs fn(fd, *args) on both sides' descriptor number `index` (modulo how many are open)."""
        n, m, opened = self.fds[index % len(self.fds)]
        what = f"{what} on the descriptor of {opened}"
        try:
            native = outcome(fn, n, *args)
            mounted = outcome(fn, m, *args)
            assert native == mounted, f"{what}: native {native!r}, layerfs {mounted!r}"
            after_native, after_mounted = tree(self.native), tree(self.mounted)
            assert after_native == after_mounted, f"after {what}:\n{diff(after_native, after_mounted)}"
        except AssertionError as e:
            FIRST_FAILURES.append(f"{self.name}: {e}")
            raise
        self.steps += 1
        self.after_step(f"step {self.steps}: {what} -> {native[0]}", True)

    # -- rules --------------------------------------------------------------------------------

    @rule(path=paths, content=data)
    def create_write(self, path, content):
        self.both(f"create/truncate and write {path} ({len(content)} bytes)", op_create_write, path, content, os.O_TRUNC)

    @rule(path=paths, content=data)
    def create_exclusive(self, path, content):
        self.both(f"O_EXCL create {path} ({len(content)} bytes)", op_create_write, path, content, os.O_EXCL)

    @rule(path=paths, offset=st.integers(0, 120), content=nonempty)
    def write_at(self, path, offset, content):
        self.both(f"pwrite {len(content)} bytes at {offset} into {path}", op_write_at, path, offset, content)

    @rule(path=paths, content=nonempty)
    def append(self, path, content):
        self.both(f"O_APPEND write of {len(content)} bytes to {path}", op_append, path, content)

    @rule(path=paths, size=st.integers(0, 100))
    def truncate(self, path, size):
        self.both(f"truncate {path} to {size}", lambda root, p, n: os.truncate(os.path.join(root, p), n), path, size)

    @rule(src=paths, dst=paths)
    def rename(self, src, dst):
        self.both(f"rename {src} {dst}", lambda root, a, b: os.rename(os.path.join(root, a), os.path.join(root, b)), src, dst)

    @rule(path=paths)
    def unlink(self, path):
        self.both(f"unlink {path}", lambda root, p: os.unlink(os.path.join(root, p)), path)

    @rule(path=paths, mode=st.sampled_from([0o755, 0o700]))
    def mkdir(self, path, mode):
        self.both(f"mkdir {path} {oct(mode)}", lambda root, p, m: os.mkdir(os.path.join(root, p), m), path, mode)

    @rule(path=paths)
    def rmdir(self, path):
        self.both(f"rmdir {path}", lambda root, p: os.rmdir(os.path.join(root, p)), path)

    @rule(link_target=st.sampled_from(TARGETS), path=paths)
    def symlink(self, link_target, path):
        self.both(f"symlink {path} -> {link_target}", lambda root, t, p: os.symlink(t, os.path.join(root, p)), link_target, path)

    @rule(path=paths, mode=st.sampled_from(MODES))
    def chmod(self, path, mode):
        self.both(f"chmod {oct(mode)} {path}", lambda root, p, m: os.chmod(os.path.join(root, p), m), path, mode)

    @rule(path=paths)
    def read(self, path):
        self.both(f"read {path}", op_read, path)

    # -- descriptors held open across steps ----------------------------------------------------

    @precondition(lambda self: len(self.fds) < 3)
    @rule(path=paths, how=st.sampled_from(["r", "w", "rw", "a", "w+creat", "rw+trunc"]))
    def open_fd(self, path, how):
        flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR, "a": os.O_WRONLY | os.O_APPEND,
                 "w+creat": os.O_WRONLY | os.O_CREAT, "rw+trunc": os.O_RDWR | os.O_TRUNC}[how]
        what = f"open({path}, {how})"
        try:
            before = tree(self.native)
            native = outcome(os.open, os.path.join(self.native, path), flags, 0o644)
            mounted = outcome(os.open, os.path.join(self.mounted, path), flags, 0o644)
            if native[0] == "ok" and mounted[0] == "ok":
                self.fds.append((native[1], mounted[1], what))
            else:
                for result in (native, mounted):
                    if result[0] == "ok":
                        os.close(result[1])
            assert native[0] == mounted[0], f"{what}: native {native[0]!r}, layerfs {mounted[0]!r}"
            after_native, after_mounted = tree(self.native), tree(self.mounted)
            assert after_native == after_mounted, f"after {what}:\n{diff(after_native, after_mounted)}"
        except AssertionError as e:
            FIRST_FAILURES.append(f"{self.name}: {e}")
            raise
        self.steps += 1
        self.after_step(f"step {self.steps}: {what} -> {native[0]}", after_native != before)

    @precondition(lambda self: self.fds)
    @rule(index=st.integers(0, 2), offset=st.integers(0, 120), content=nonempty)
    def fd_pwrite(self, index, offset, content):
        self.both_fd(f"pwrite {len(content)} bytes at {offset}", index, os.pwrite, content, offset)

    @precondition(lambda self: self.fds)
    @rule(index=st.integers(0, 2), content=nonempty)
    def fd_write(self, index, content):
        self.both_fd(f"write {len(content)} bytes", index, os.write, content)

    @precondition(lambda self: self.fds)
    @rule(index=st.integers(0, 2), offset=st.integers(0, 120))
    def fd_pread(self, index, offset):
        self.both_fd(f"pread at {offset}", index, os.pread, 200, offset)

    @precondition(lambda self: self.fds)
    @rule(index=st.integers(0, 2), size=st.integers(0, 100))
    def fd_truncate(self, index, size):
        self.both_fd(f"ftruncate to {size}", index, os.ftruncate, size)

    @precondition(lambda self: self.fds)
    @rule(index=st.integers(0, 2))
    def fd_fstat(self, index):
        # A directory's st_size and link count are the filesystem's own business (ext4: 4096 and
        # 2 + subdirectories; btrfs: 1 link): for a directory only whether it has links is compared.
        def summary(fd):
            s = os.fstat(fd)
            if stat.S_ISDIR(s.st_mode):
                return ("dir", s.st_nlink > 0, oct(s.st_mode))
            return (s.st_size, s.st_nlink, oct(s.st_mode))
        self.both_fd("fstat (size and links of a file, mode)", index, summary)

    @precondition(lambda self: self.fds)
    @rule(index=st.integers(0, 2))
    def fd_fsync(self, index):
        self.both_fd("fsync", index, os.fsync)

    @precondition(lambda self: self.fds)
    @rule(index=st.integers(0, 2))
    def fd_close(self, index):
        n, m, opened = self.fds.pop(index % len(self.fds))
        native, mounted = outcome(os.close, n), outcome(os.close, m)
        what = f"close the descriptor of {opened}"
        try:
            assert native == mounted, f"{what}: native {native!r}, layerfs {mounted!r}"
            after_native, after_mounted = tree(self.native), tree(self.mounted)
            assert after_native == after_mounted, f"after {what}:\n{diff(after_native, after_mounted)}"
        except AssertionError as e:
            FIRST_FAILURES.append(f"{self.name}: {e}")
            raise
        self.steps += 1
        self.after_step(f"step {self.steps}: {what}", True)

    # -- at the end: history ------------------------------------------------------------------

    def teardown(self):
        try:
            while self.fds:
                n, m, _ = self.fds.pop()
                os.close(n)
                os.close(m)
                self.fds_used = True
            if self.fds_used:
                self.after_step("the end: every descriptor closed", True)
            problems = []
            for what, when, expected in self.moments:
                view = os.path.join(WS.mnt, "@time", when, self.name)
                try:
                    actual = tree(view)
                except OSError as e:
                    actual = f"error {errno.errorcode.get(e.errno, e.errno)}"
                if actual != expected:
                    problems.append(f"@time/{when}/{self.name} after {what}:\n"
                                    + (diff(expected, actual) if isinstance(actual, dict) else actual))
            if problems:
                FIRST_FAILURES.append(f"{self.name}: {len(problems)} @time moments differ:\n" + "\n".join(problems[:3]))
            assert not problems, f"{len(problems)} of {len(self.moments)} moments differ in @time:\n" + "\n".join(problems[:3])
            STATS["moments"] += len(self.moments)
            STATS["steps"] += self.steps
        finally:
            self.log.f.close()


def diff(expected, actual):
    lines = []
    for k in sorted(set(expected) | set(actual)):
        e, a = expected.get(k), actual.get(k)
        if e != a:
            lines.append(f"  {k}: expected {e!r}, got {a!r}")
    return "\n".join(lines) or "  (equal)"


STATS = {"moments": 0, "steps": 0}
FIRST_FAILURES = []   # every failure as first seen (shrinking replays it; a flaky one shows only here)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=harness.default_binary())
    ap.add_argument("--native-dir", help="parent directory for the native side (default: the temp directory)")
    ap.add_argument("--examples", type=int, default=int(os.environ.get("LAYERFS_MODEL_EXAMPLES", "100")))
    ap.add_argument("--steps", type=int, default=int(os.environ.get("LAYERFS_MODEL_STEPS", "40")))
    ap.add_argument("--seed", type=int, default=int(os.environ["LAYERFS_MODEL_SEED"]) if os.environ.get("LAYERFS_MODEL_SEED") else None)
    args = ap.parse_args()
    reason = harness.unavailable_reason(args.binary)
    if reason:
        print(f"model: cannot run: {reason}", file=sys.stderr)
        return 77   # cannot run here: skipped (the automake convention)
    os.umask(0o022)
    global WS
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"model: {args.examples} examples of up to {args.steps} steps, seed {seed} (LAYERFS_MODEL_SEED={seed} replays it)")
    config = settings(max_examples=args.examples, stateful_step_count=args.steps, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), print_blob=False)
    from hypothesis import seed as hseed
    started = time.monotonic()
    with harness.Workspace(args.binary, args.native_dir) as ws:
        WS = ws
        ok = True
        try:
            run_state_machine_as_test(hseed(seed)(PresentModel), settings=config)
        except KeyboardInterrupt:
            ok = False
            print("model: interrupted")
        except AssertionError as e:
            ok = False
            print(f"model: FAILED\n{e}")
            for note in getattr(e, "__notes__", []):
                print(note)
        except Exception as e:  # noqa: BLE001 — any other error in a step fails the run, shown
            ok = False
            print(f"model: FAILED with {type(e).__name__}: {e}")
            for note in getattr(e, "__notes__", []):
                print(note)
    if FIRST_FAILURES:
        print(f"model: the first failure seen ({len(FIRST_FAILURES)} failing runs in all, shrinking included):")
        print(FIRST_FAILURES[0])
    print(f"model: {EXAMPLE[0]} examples run (shrinking included), {STATS['steps']} steps and "
          f"{STATS['moments']} @time moments checked in the examples that passed, {time.monotonic() - started:.1f} s")
    print(f"{1 if ok else 0} passed, {0 if ok else 1} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
