"""Plumbing shared by the mount benchmarks (mount-bench.py, peer-bench.py).

Python 3 standard library only. Output helpers, commands run in their own session, /proc/mounts,
unmounting (lazily if a mount stays busy), a Teardown that undoes mounts, a loop-mounted btrfs and
its loop device exactly once (also on SIGINT/SIGTERM/SIGHUP/SIGQUIT, during which further signals
are ignored), the clean-up of a run killed outright, dropping caches, timing a command, and the
config-like text the benchmarks write.
"""

import math
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time


# ---------------------------------------------------------------------------------------------
# Output helpers

def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Interrupted(BaseException):
    """Raised by the signal handlers so that every `finally` runs."""

    def __init__(self, signum):
        super().__init__(f"signal {signum}")
        self.signum = signum


def fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


# ---------------------------------------------------------------------------------------------
# Processes, mounts, teardown

def run(cmd, check=True, quiet=True, **kw):
    """Runs a setup or teardown command in its own session, so a Ctrl-C on the terminal reaches
    only the benchmark (which then tears down in order), never an `umount` in progress."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE if quiet else None, stderr=subprocess.PIPE,
                       start_new_session=True, **kw)
    if check and p.returncode != 0:
        out = (p.stderr or b"").decode(errors="replace").strip()
        raise BenchError(f"{shlex.join(cmd)} exited {p.returncode}: {out[-800:]}")
    return p


def mounts():
    """(source, mount point, type) of every mount, from /proc/mounts."""
    def unescape(s):
        return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)
    out = []
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                out.append((unescape(parts[0]), unescape(parts[1]), parts[2]))
    return out


def mounted_under(root):
    root = os.path.realpath(root)
    return [m for m in mounts() if m[1] == root or m[1].startswith(root + "/")]


def is_mounted(path):
    path = os.path.realpath(path)
    return any(m[1] == path for m in mounts())


def loops_of(image):
    p = run(["losetup", "-j", image], check=False)
    return [line.split(":", 1)[0] for line in p.stdout.decode().splitlines() if line.strip()]


def unmount(path, fuse):
    """Unmounts `path`, lazily if it stays busy. Returns True when it is no longer mounted."""
    for attempt in range(3):
        if not is_mounted(path):
            return True
        cmd = ["fusermount3", "-u", path] if fuse else ["umount", path]
        run(cmd, check=False)
        if not is_mounted(path):
            return True
        time.sleep(0.5 * (attempt + 1))
    run(["fusermount3", "-u", "-z", path] if fuse else ["umount", "-l", path], check=False)
    if is_mounted(path):
        run(["umount", "-l", path], check=False)
    return not is_mounted(path)


def process_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


HANDLED_SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT]


def on_signal(signum, frame):
    raise Interrupted(signum)


def install_signal_handlers():
    for s in HANDLED_SIGNALS:
        signal.signal(s, on_signal)


def stop_daemon(proc, timeout=60):
    """Waits for a FUSE daemon we started (after its unmount) to exit; SIGTERM, then SIGKILL."""
    if proc is None:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Teardown:
    """Everything a run set up, undone in reverse order exactly once: FUSE mounts (mount point and
    the Popen of their daemon, or None), the loop-mounted btrfs, the loop device of `image`, and
    the work directory (deleted only when nothing is left mounted under it)."""

    def __init__(self):
        self.work = None         # the work directory
        self.image = None
        self.loop = None
        self.btrfs = None        # where the loop device is mounted
        self.fuse = []           # (mount point, Popen or None) of FUSE mounts
        self.done = False
        self.report = []

    def fuse_down(self, mnt, proc):
        ok = unmount(mnt, fuse=True)
        if proc is not None:
            stop_daemon(proc)  # a read-write layerfs mount seals its unsealed events on the way out
            ok = unmount(mnt, fuse=True) and ok
        return ok

    def release(self, mnt, proc):
        """Unmounts one FUSE mount now (not at the end) and forgets it. True when it is gone.
        A signal that arrives meanwhile does not cut the unmount short: it is held, and raised as
        Interrupted once the mount is down."""
        pending = []
        old = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in HANDLED_SIGNALS}
        try:
            ok = self.fuse_down(mnt, proc)
            if ok:
                self.fuse = [(m, p) for (m, p) in self.fuse if not (m == mnt and p is proc)]
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if pending:
            raise Interrupted(pending[0])
        return ok

    def __call__(self):
        if self.done:
            return
        self.done = True
        # A second Ctrl-C must not cut the teardown short.
        old = {s: signal.signal(s, signal.SIG_IGN) for s in HANDLED_SIGNALS}
        try:
            clean = True
            for mnt, proc in reversed(self.fuse):
                if not self.fuse_down(mnt, proc):
                    clean = False
                    self.report.append(f"could not unmount {mnt}")
            if self.btrfs and not unmount(self.btrfs, fuse=False):
                clean = False
                self.report.append(f"could not unmount {self.btrfs}")
            if self.image:
                for dev in loops_of(self.image):
                    run(["losetup", "-d", dev], check=False)
                if loops_of(self.image):
                    clean = False
                    self.report.append(f"loop device still attached to {self.image}")
            if self.work:
                left = mounted_under(self.work)
                if left:
                    clean = False
                    self.report.append(f"still mounted under {self.work}: {[m[1] for m in left]}")
                elif clean:
                    shutil.rmtree(self.work, ignore_errors=True)
            # Nothing of ours may stay in /proc/mounts or `losetup -a`.
            ours = [m[1] for m in mounts() if self.work and m[1].startswith(os.path.realpath(self.work))]
            losetup = run(["losetup", "-a"], check=False).stdout.decode()
            loops = [line for line in losetup.splitlines() if self.work and self.work in line]
            self.report.append(
                "teardown: " + ("nothing left mounted, no loop device attached" if not ours and not loops
                                else f"LEFT BEHIND: mounts {ours} loops {loops}"))
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def setup_loop_btrfs(teardown, work, size=16 << 30):
    """A sparse image `work/btrfs.img` of `size` bytes, mkfs.btrfs, loop-mounted at `work/btrfs`;
    registered with `teardown` step by step so that a failure half-way still undoes it."""
    teardown.image = os.path.join(work, "btrfs.img")
    with open(teardown.image, "wb") as f:
        f.truncate(size)
    run(["mkfs.btrfs", "-q", "-f", teardown.image])
    bt = os.path.join(work, "btrfs")
    os.mkdir(bt)
    teardown.loop = run(["losetup", "-f", "--show", teardown.image]).stdout.decode().strip()
    run(["mount", teardown.loop, bt])
    teardown.btrfs = bt
    return bt


def make_work_dir(base, prefix):
    """A new work directory under `base` that names its owner (for clean_stale)."""
    import tempfile
    work = tempfile.mkdtemp(prefix=prefix, dir=base)
    with open(os.path.join(work, "owner.pid"), "w") as f:
        f.write(f"{os.getpid()}\n")
    return work


def record_daemon(work, pid):
    """Appends a FUSE daemon's pid to `work/mount.pids`, for clean_stale."""
    with open(os.path.join(work, "mount.pids"), "a") as f:
        f.write(f"{pid}\n")


def clean_stale(base, prefix):
    """Removes what a run killed outright (SIGKILL, power) left under `base`: its work directory
    (named `prefix*`) names its owner's pid; when that process is gone, end the daemons it recorded
    (`mount.pid`, `mount.pids`; only if such a pid is still a `mount` process whose command line
    names that work directory), unmount everything under it, detach its loop device, delete it."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        work = os.path.join(base, name)
        try:
            with open(os.path.join(work, "owner.pid")) as f:
                owner = int(f.read().strip() or 0)
        except (OSError, ValueError):
            owner = 0
        if owner and process_alive(owner):
            continue
        log(f"cleaning up a previous run's leftovers in {work}")
        pids = []
        for fname in ("mount.pid", "mount.pids"):
            try:
                with open(os.path.join(work, fname)) as f:
                    pids += [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                pass
        killed = False
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().split(b"\0")
                if b"mount" in cmdline and any(work.encode() in c for c in cmdline):
                    os.kill(pid, signal.SIGTERM)
                    killed = True
            except (OSError, ValueError):
                pass
        if killed:
            time.sleep(1)
        for _, mnt, kind in sorted(mounted_under(work), key=lambda m: -len(m[1])):
            unmount(mnt, fuse=kind.startswith("fuse"))
        image = os.path.join(work, "btrfs.img")
        for dev in loops_of(image):
            run(["losetup", "-d", dev], check=False)
        if not mounted_under(work) and not loops_of(image):
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"  could not clean {work} completely; left as is")


# ---------------------------------------------------------------------------------------------
# Measurement primitives

TOOLS = ["ls", "diff", "find", "cat", "dd"]


def drop_caches(tools=TOOLS):
    """Cold: the page cache, dentries and inodes dropped. The tools the runs exec are then loaded
    again (`--version`), so that a cold figure is the data's, not the time to read /usr/bin/ls and
    libc back from disk (which would add the same to both sides and pull ratios towards 1)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    for tool in tools:
        subprocess.run([tool, "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed_cmd(cmd, ok=(0,)):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if p.returncode not in ok:
        raise BenchError(f"{shlex.join(cmd)} exited {p.returncode}: {p.stderr.decode(errors='replace')[-500:]}")
    return dt


def loadavg_text():
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"


# ---------------------------------------------------------------------------------------------
# Config-like text

WORDS = ["address", "gateway", "mtu", "enabled", "timeout", "retries", "listen", "user", "group",
         "restart", "path", "level", "format", "interval", "dns", "domain", "ntp", "route", "metric",
         "weight", "backend", "cipher", "keyfile", "cert", "limit", "burst", "pool", "zone"]


def config_text(rng, size, label, by="mount-bench"):
    """Config-like text of exactly `size` bytes (ASCII), drawn from `rng` (a random.Random)."""
    lines = [f"# {label} (generated by {by})\n"]
    total = len(lines[0])
    section = 0
    while total < size:
        if rng.random() < 0.12:
            line = f"\n[{rng.choice(WORDS)}-{section}]\n"
            section += 1
        else:
            value = rng.choice([str(rng.randrange(1, 65536)), f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                                rng.choice(WORDS) + "-" + str(rng.randrange(100)), "yes", "no", "/etc/" + rng.choice(WORDS)])
            line = f"{rng.choice(WORDS)}_{rng.randrange(10)} = {value}\n"
        lines.append(line)
        total += len(line)
    return "".join(lines)[:size - 1] + "\n"


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("math", "os", "random", "re", "shlex",
                                                                    "shutil", "signal", "subprocess", "sys", "time")]
