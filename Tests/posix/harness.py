"""Shared setup for the POSIX suites: a layerfs mount and a native directory, always torn down.

`Workspace` makes a temp directory holding a fresh store, a mount point and a native directory,
mounts the store (`layerfs mount STORE MNT -f -o allow_other,noindex`, the daemon a child of this
process), and on leaving the `with` block (normally, on an exception, on SIGINT or SIGTERM)
unmounts with `fusermount3 -u` (retried while busy, `umount -l` as the last resort), waits for the
daemon (SIGKILL after 10 s) and removes the temp directory.

The binary is $LAYERFS_BINARY, else `.build/debug/layerfs` of this checkout.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_binary():
    return os.environ.get("LAYERFS_BINARY") or os.path.join(REPO, ".build", "debug", "layerfs")


def unavailable_reason(binary):
    """Why mounts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "not root (the suites mount FUSE with allow_other and switch users)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is missing or not accessible"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed"
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        return f"no layerfs binary at {binary} (run swift build, or set LAYERFS_BINARY)"
    return None


def is_mounted(path):
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1 and fields[1] == path:
                return True
    return False


def mount_options(path):
    """The options of the filesystem `path` is on (from /proc/self/mountinfo), as a set."""
    path = os.path.realpath(path)
    best, best_options = "", set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, best_options = point, set(fields[5].split(","))
    return best_options


def _raise_on_signal(signum, frame):
    # KeyboardInterrupt for SIGTERM too: Hypothesis passes it through at once (no replay), and the
    # `with` block's exit tears the mount down.
    raise KeyboardInterrupt(f"signal {signum}")


class Workspace:
    """Temp directory with `store/`, `mnt/` (the mounted present) and `native/`."""

    def __init__(self, binary=None, native_parent=None, options=("allow_other", "noindex")):
        self.binary = binary or default_binary()
        self.native_parent = native_parent
        self.options = list(options)
        self.daemon = None
        self.base = None

    def __enter__(self):
        self._old_handlers = {s: signal.signal(s, _raise_on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._setup()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _setup(self):
        self.base = tempfile.mkdtemp(prefix="layerfs-posix.")
        os.chmod(self.base, 0o755)  # other users reach mnt/ and native/ through it
        self.store = os.path.join(self.base, "store")
        self.mnt = os.path.join(self.base, "mnt")
        if self.native_parent:
            self.native = tempfile.mkdtemp(prefix="layerfs-posix-native.", dir=self.native_parent)
            self._native_is_ours = True
        else:
            self.native = os.path.join(self.base, "native")
            os.mkdir(self.native)
        os.chmod(self.native, 0o755)
        os.mkdir(self.mnt)
        subprocess.run([self.binary, "init", self.store], check=True, stdout=subprocess.DEVNULL)
        self.daemon_log = os.path.join(self.base, "daemon.log")
        log = open(self.daemon_log, "w")
        self.daemon = subprocess.Popen(
            [self.binary, "mount", self.store, self.mnt, "-f", "-o", ",".join(self.options)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 20
        while not is_mounted(self.mnt):
            if self.daemon.poll() is not None:
                raise RuntimeError(f"layerfs mount exited with {self.daemon.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"layerfs did not mount {self.mnt} within 20 s:\n{self.log_text()}")
            time.sleep(0.05)
        # The mount's root belongs to root 0755 like the native directory's.

    def log_text(self):
        try:
            with open(self.daemon_log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def __exit__(self, *exc):
        problems = []
        try:
            if self.base and is_mounted(self.mnt):
                for _ in range(50):
                    subprocess.run(["fusermount3", "-u", self.mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    if not is_mounted(self.mnt):
                        break
                    time.sleep(0.1)
                if is_mounted(self.mnt):
                    problems.append("fusermount3 -u kept failing; unmounted lazily")
                    subprocess.run(["umount", "-l", self.mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self.daemon is not None:
                try:
                    self.daemon.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    problems.append("the daemon did not exit after unmounting; killed")
                    self.daemon.kill()
                    self.daemon.wait()
        finally:
            if self.base and not is_mounted(self.mnt):
                shutil.rmtree(self.base, ignore_errors=True)
            if self.native_parent and getattr(self, "_native_is_ours", False):
                shutil.rmtree(self.native, ignore_errors=True)
            for s, h in self._old_handlers.items():
                signal.signal(s, h)
        for p in problems:
            print(f"cleanup: {p}", file=sys.stderr)
        return False
