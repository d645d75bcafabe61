"""Shared helpers for the robustness runners in Tests/robustness/ (standard library only).

Everything a runner creates is torn down in `finally`/context managers, in this order: the FUSE
mount (fusermount3 -u, retried; umount -l of our own mount point as a last resort), the daemon
(our own child: waited for, SIGKILLed only by its pid), loop filesystems, loop devices, scratch
directories. `assert_nothing_left(scratch)` checks /proc/mounts and losetup for anything of ours.
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository


def _terminated(signum, frame):
    # SIGTERM (timeout(1), a CI runner giving up): unwind, so that every finally block unmounts,
    # kills our daemon and detaches our loop devices instead of leaving them behind.
    raise SystemExit(f"terminated by signal {signum}")


signal.signal(signal.SIGTERM, _terminated)


def log(tag, message):
    print(f"[{tag}] {message}", flush=True)


def long_mode():
    """LAYERFS_STRESS=long (or --long on a runner's command line) selects the long variants."""
    return os.environ.get("LAYERFS_STRESS", "").lower() == "long" or "--long" in sys.argv


def layerfs_binary():
    explicit = os.environ.get("LAYERFS_BINARY")
    if explicit:
        return explicit
    for build in (".build/debug", ".build-release/release", ".build/release"):
        candidate = os.path.join(ROOT, build, "layerfs")
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("the layerfs executable was not found: build it (swift build) or set LAYERFS_BINARY")


def unavailable_reason(tools=()):
    """Why real-mount runners cannot run here, or None."""
    if os.geteuid() != 0:
        return "not running as root"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is missing"
    for tool in ("fusermount3",) + tuple(tools):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        layerfs_binary()
    except RuntimeError as e:
        return str(e)
    return None


def run(args, check=True, timeout=600, **kwargs):
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"`{' '.join(args)}` exited {result.returncode}: {result.stdout[-3000:]}")
    return result


def layerfs(*args, check=True, timeout=900):
    return run([layerfs_binary(), *args], check=check, timeout=timeout)


def verify_store(store):
    """`layerfs verify STORE` must exit 0 and say OK. Returns its output."""
    result = layerfs("verify", store, check=False)
    if result.returncode != 0 or not result.stdout.rstrip().endswith("OK"):
        raise AssertionError(f"layerfs verify {store} exited {result.returncode}: {result.stdout[-3000:]}")
    return result.stdout


def mounted_points():
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f]


def is_mounted(path):
    return path in mounted_points()


def unmount(mount_point, attempts=50):
    """fusermount3 -u, retried while busy; umount -l as a last resort. True if not lazy."""
    tries = 0
    while is_mounted(mount_point) and tries < attempts:
        subprocess.run(["fusermount3", "-u", mount_point], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if is_mounted(mount_point):
            time.sleep(0.1)
        tries += 1
    if not is_mounted(mount_point):
        return True
    subprocess.run(["umount", "-l", mount_point], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return False


class Mount:
    """`layerfs mount STORE DIR -f` as our own child. Use as a context manager."""

    def __init__(self, store, mount_point, log_path, options=("noindex",)):
        self.store = store
        self.mount_point = mount_point
        self.log_path = log_path
        self.options = list(options)
        self.process = None

    def start(self, timeout=30):
        os.makedirs(self.mount_point, exist_ok=True)
        args = [layerfs_binary(), "mount", self.store, self.mount_point, "-f"]
        if self.options:
            args += ["-o", ",".join(self.options)]
        self.log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file)
        deadline = time.monotonic() + timeout
        while not is_mounted(self.mount_point):
            if self.process.poll() is not None:
                raise AssertionError(f"layerfs mount exited {self.process.returncode} before mounting: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the mount did not appear within {timeout} s: {self.log_tail()}")
            time.sleep(0.02)
        return self

    @property
    def pid(self):
        return self.process.pid

    def log_tail(self, n=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:]
        except OSError:
            return ""

    def kill9(self):
        """SIGKILL our daemon (by its pid), wait for it, and take the dead mount away."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log_file.close()
        lazy = not unmount(self.mount_point, attempts=20)
        return lazy

    def stop(self):
        """Unmount cleanly and wait for the daemon; returns its exit status (None if it had to be killed)."""
        problems = []
        if is_mounted(self.mount_point) and not unmount(self.mount_point):
            problems.append("fusermount3 -u kept failing: unmounted lazily")
        status = None
        if self.process is not None:
            try:
                status = self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                problems.append("the daemon did not exit after the unmount: killed")
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
                unmount(self.mount_point)
            if not self.log_file.closed:
                self.log_file.close()
        if problems:
            raise AssertionError("; ".join(problems) + ": " + self.log_tail())
        return status

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.stop()
        except AssertionError:
            if exc[0] is None:
                raise
        return False


def proc_status(pid):
    """VmRSS, RssAnon, RssFile (KiB) and the number of open fds of a process."""
    figures = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
                figures[key] = int(line.split()[1])
    figures["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return figures


@contextlib.contextmanager
def scratch_directory(tag):
    path = tempfile.mkdtemp(prefix=f"layerfs-{tag}-")
    try:
        yield path
    finally:
        # Never remove anything while something is still mounted below it.
        if not any(p == path or p.startswith(path + "/") for p in mounted_points()):
            shutil.rmtree(path, ignore_errors=True)
        else:
            log(tag, f"left {path} in place: something is still mounted below it")


@contextlib.contextmanager
def loop_ext4(directory, size_mib):
    """A fresh ext4 (-m 0: root hits ENOSPC too) of size_mib on a loop device, mounted on
    directory/fs. Unmounted and detached afterwards, also on failure."""
    image = os.path.join(directory, "fs.img")
    mount_point = os.path.join(directory, "fs")
    os.makedirs(mount_point)
    run(["truncate", "-s", f"{size_mib}M", image])
    run(["mkfs.ext4", "-q", "-F", "-m", "0", image])
    device = run(["losetup", "-f", "--show", image]).stdout.strip()
    if not device.startswith("/dev/loop"):
        raise AssertionError(f"losetup printed {device!r}")
    try:
        run(["mount", "-t", "ext4", device, mount_point])
        try:
            yield mount_point
        finally:
            for _ in range(50):
                if not is_mounted(mount_point):
                    break
                if subprocess.run(["umount", mount_point], stderr=subprocess.DEVNULL).returncode != 0:
                    time.sleep(0.1)
            if is_mounted(mount_point):
                subprocess.run(["umount", "-l", mount_point])
    finally:
        for _ in range(50):
            if subprocess.run(["losetup", "-d", device], stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.1)
        else:
            log("harness", f"could not detach {device}")


def assert_nothing_left(scratch):
    """No mount under `scratch`, no loop device backed by a file under it."""
    left = [p for p in mounted_points() if p.startswith(scratch)]
    loops = subprocess.run(["losetup", "-a"], stdout=subprocess.PIPE, text=True).stdout
    loops = [line for line in loops.splitlines() if scratch in line]
    if left or loops:
        raise AssertionError(f"left behind: mounts {left}, loop devices {loops}")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def recovered_files(store):
    directory = os.path.join(store, "metadata", "recovered")
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


def drop_caches():
    """Make the kernel forget cached dentries and inodes (it then sends FORGETs to FUSE)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")
