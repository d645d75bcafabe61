#!/usr/bin/env python3
"""layerfs against its peers: the same versioned tree in layerfs, restic, borg and btrfs snapshots.

Usage (as root):  bench/peer-bench.py [--quick] [--binary PATH] [--dir /var/tmp] [--runs N]
                                      [--files N] [--versions N] [--only layerfs,restic,...] [--json]

On a loop-mounted btrfs: a tree of small config-like files (2,000 by default, a few KB each,
deterministic from a seed) is built in 10 versions, 1% of the files rewritten per version. After
each version: a read-only btrfs snapshot, `layerfs import STORE TREE --seal` (one block per
version), `restic backup`, `borg create`. Then, for each tool, with the FUSE ones freshly mounted
for every sample: the mount itself, `ls -R` of the last version, `cat` of an old version of a file,
`diff -r` between the first and the last version, cold and warm. Medians of --runs samples with
their range, and each peer's ratio to layerfs. bench/README.md ("peer-bench.py") describes it.

Everything mounted is unmounted and the loop device detached in all cases: normal end, an
exception, SIGINT/SIGTERM/SIGHUP/SIGQUIT (a second signal does not interrupt the teardown), and a
run killed outright is cleaned up by the next run (through the owner.pid of its work directory).
"""

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time

from benchlib import (BenchError, Interrupted, Teardown, clean_stale, config_text, drop_caches, fmt_time,
                      install_signal_handlers, loadavg_text, log, make_work_dir, record_daemon,
                      run, setup_loop_btrfs, timed_cmd)

PREFIX = "layerfs-peer-bench-"
PEERS = ["layerfs", "restic", "borg", "btrfs"]
TOOLS = ["ls", "diff", "cat"]
PASSWORD = "peer-bench-password"  # restic needs one; the repository is thrown away after the run


# ---------------------------------------------------------------------------------------------
# The versioned tree

def tree_files(nfiles):
    """Relative paths of `nfiles` files: 10 sites x 4 services x nfiles/40 files."""
    per = max(1, nfiles // 40)
    return [f"site-{s:02d}/svc-{v}/unit-{f:03d}.conf" for s in range(10) for v in range(4) for f in range(per)]


def write_version(root, files, k, seed, fraction):
    """Version k of the tree in `root`: k == 1 writes every file, later versions rewrite
    round(fraction * len(files)) files chosen by the seed. Returns the rewritten paths."""
    rng = random.Random(seed * 1000 + k)
    if k == 1:
        for d in sorted({os.path.dirname(f) for f in files}):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        chosen = list(files)
    else:
        chosen = sorted(rng.sample(files, max(1, round(len(files) * fraction))))
    for rel in chosen:
        with open(os.path.join(root, rel), "w") as f:
            f.write(config_text(rng, rng.randint(1000, 6000), f"{rel} version {k}", by="peer-bench"))
    return chosen


def read_env_file(path):
    """KEY=VALUE lines (no quoting), as restic's password is kept: in an env file."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key] = value
    return env


# ---------------------------------------------------------------------------------------------
# The tools

class Peer:
    name = "?"
    fuse = True

    def __init__(self, bench):
        self.b = bench
        self.mnt = os.path.join(bench.work, f"mnt-{self.name}")
        if self.fuse:
            os.mkdir(self.mnt)
        self.proc = None
        self.build_seconds = 0.0

    def env(self):
        return None

    def mount_cmd(self):
        raise NotImplementedError

    def version_dir(self, k):
        raise NotImplementedError

    def mount(self):
        """Starts the daemon in the foreground (in the background of this script) and returns the
        seconds until the mount point is another file system and its root has been listed."""
        if not self.fuse:
            return None
        parent_dev = os.stat(self.b.work).st_dev
        logf = open(os.path.join(self.b.work, f"mount-{self.name}.log"), "ab")
        t0 = time.perf_counter()
        proc = subprocess.Popen(self.mount_cmd(), stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                env=self.env(), start_new_session=True)
        self.b.teardown.fuse.append((self.mnt, proc))
        record_daemon(self.b.work, proc.pid)
        self.proc = proc
        deadline = time.monotonic() + 120
        while True:
            if os.stat(self.mnt).st_dev != parent_dev:
                os.listdir(self.mnt)
                dt = time.perf_counter() - t0
                break
            if proc.poll() is not None:
                logf.close()
                raise BenchError(f"{self.name} mount exited {proc.returncode}; see mount-{self.name}.log: "
                                 f"{open(os.path.join(self.b.work, f'mount-{self.name}.log')).read()[-600:]}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not mount within 120 s")
            time.sleep(0.001)
        logf.close()
        return dt

    def unmount(self):
        if self.fuse and self.proc is not None:
            if not self.b.teardown.release(self.mnt, self.proc):
                raise BenchError(f"could not unmount {self.mnt}")
            self.proc = None


class Layerfs(Peer):
    name = "layerfs"

    def __init__(self, bench):
        super().__init__(bench)
        self.store = os.path.join(bench.bt, "layerfs-store")
        self.blocks = None
        run([bench.args.binary, "init", self.store])

    def add_version(self, tree, k):
        t0 = time.perf_counter()
        run([self.b.args.binary, "import", self.store, tree, "--seal"])
        self.build_seconds += time.perf_counter() - t0

    def mount_cmd(self):
        # Read-only like the peers' mounts, and without the similarity index (which would load or
        # build itself on a thread of the mount).
        return [self.b.args.binary, "mount", "-f", "-o", "ro,noindex", self.store, self.mnt]

    def resolve(self):
        names = [n for n in os.listdir(os.path.join(self.mnt, "@block")) if n.isdigit()]
        blocks = sorted(int(n) for n in names)
        if len(blocks) < self.b.versions:
            raise BenchError(f"layerfs: {len(blocks)} sealed blocks, expected {self.b.versions}")
        self.blocks = blocks[-self.b.versions:]

    def version_dir(self, k):
        return os.path.join(self.mnt, "@block", str(self.blocks[k - 1]))


class Restic(Peer):
    name = "restic"

    def __init__(self, bench):
        super().__init__(bench)
        self.envfile = os.path.join(bench.work, "restic.env")
        with open(self.envfile, "w") as f:
            f.write(f"RESTIC_REPOSITORY={os.path.join(bench.bt, 'restic-repo')}\n"
                    f"RESTIC_PASSWORD={PASSWORD}\n"
                    f"RESTIC_CACHE_DIR={os.path.join(bench.bt, 'restic-cache')}\n")
        os.chmod(self.envfile, 0o600)
        self.ids = None
        run(["restic", "init", "-q"], env=self.env())

    def env(self):
        env = dict(os.environ)
        env.update(read_env_file(self.envfile))
        return env

    def add_version(self, tree, k):
        t0 = time.perf_counter()
        run(["restic", "backup", "-q", "--host", "peer-bench", "."], cwd=tree, env=self.env())
        self.build_seconds += time.perf_counter() - t0

    def mount_cmd(self):
        return ["restic", "mount", self.mnt]

    def resolve(self):
        p = run(["restic", "snapshots", "--json"], env=self.env())
        snaps = sorted(json.loads(p.stdout), key=lambda s: s["time"])
        if len(snaps) != self.b.versions:
            raise BenchError(f"restic: {len(snaps)} snapshots, expected {self.b.versions}")
        self.ids = [s["short_id"] for s in snaps]

    def version_dir(self, k):
        return os.path.join(self.mnt, "ids", self.ids[k - 1])


class Borg(Peer):
    name = "borg"

    def __init__(self, bench):
        super().__init__(bench)
        self.repo = os.path.join(bench.bt, "borg-repo")
        run(["borg", "init", "-e", "none", self.repo], env=self.env())

    def env(self):
        env = dict(os.environ)
        env["BORG_BASE_DIR"] = os.path.join(self.b.bt, "borg-home")
        env["BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK"] = "yes"
        env["BORG_RELOCATED_REPO_ACCESS_IS_OK"] = "yes"
        return env

    def add_version(self, tree, k):
        t0 = time.perf_counter()
        run(["borg", "create", f"{self.repo}::v{k:02d}", "."], cwd=tree, env=self.env())
        self.build_seconds += time.perf_counter() - t0

    def mount_cmd(self):
        # The whole repository (every archive a directory), so diff -r can compare two versions.
        return ["borg", "mount", "-f", self.repo, self.mnt]

    def resolve(self):
        names = sorted(os.listdir(self.mnt))
        want = [f"v{k:02d}" for k in range(1, self.b.versions + 1)]
        if names != want:
            raise BenchError(f"borg mount lists {names}, expected {want}")

    def version_dir(self, k):
        return os.path.join(self.mnt, f"v{k:02d}")


class Btrfs(Peer):
    name = "btrfs"
    fuse = False

    def __init__(self, bench):
        super().__init__(bench)
        self.snaps = os.path.join(bench.bt, "snaps")
        os.mkdir(self.snaps)

    def add_version(self, tree, k):
        t0 = time.perf_counter()
        run(["btrfs", "subvolume", "snapshot", "-r", tree, os.path.join(self.snaps, f"v{k:02d}")])
        self.build_seconds += time.perf_counter() - t0

    def resolve(self):
        pass

    def version_dir(self, k):
        return os.path.join(self.snaps, f"v{k:02d}")


CLASSES = {"layerfs": Layerfs, "restic": Restic, "borg": Borg, "btrfs": Btrfs}


# ---------------------------------------------------------------------------------------------
# The benchmark

FIGURES = ["mount", "ls -R, cold", "ls -R, warm", "cat old file, cold", "cat old file, warm",
           "diff -r first last, cold", "diff -r first last, warm"]


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.runs = args.runs or (1 if args.quick else 5)
        self.nfiles = args.files or (200 if args.quick else 2000)
        self.versions = args.versions or (3 if args.quick else 10)
        self.only = args.only
        self.teardown = Teardown()
        self.samples = {p: {f: [] for f in FIGURES} for p in self.only}
        self.notes = []

    def setup(self):
        t = self.teardown
        self.work = make_work_dir(self.args.dir, PREFIX)
        t.work = self.work
        self.bt = setup_loop_btrfs(t, self.work)
        log(f"btrfs on {t.loop} (sparse image {t.image}) mounted at {self.bt}")
        self.peers = [CLASSES[name](self) for name in self.only]

        tree = os.path.join(self.bt, "tree")
        run(["btrfs", "subvolume", "create", tree])
        self.files = tree_files(self.nfiles)
        self.changed = {}
        for k in range(1, self.versions + 1):
            self.changed[k] = write_version(tree, self.files, k, self.args.seed, 0.01)
            for peer in self.peers:
                peer.add_version(tree, k)
            log(f"version {k}: {len(self.changed[k])} files written; "
                + ", ".join(f"{p.name} {p.build_seconds:.1f} s" for p in self.peers))
        self.old_file = self.changed[2][0]
        size = sum(os.path.getsize(os.path.join(tree, f)) for f in self.files)
        self.notes.append(f"tree: {len(self.files):,} files in 10 x 4 directories, {size / 1e6:.1f} MB; "
                          f"{self.versions} versions, {len(self.changed[2])} files rewritten per version "
                          f"(1,000-6,000 bytes of config-like text, seed {self.args.seed})")
        self.notes.append("building all versions (s): " + ", ".join(
            f"{p.name} {p.build_seconds:.1f}" for p in self.peers))
        self.check()

    def check(self):
        """Before measuring: each tool's first and last version equal the btrfs snapshots
        (diff -r), and the old file's old content is there."""
        snaps = os.path.join(self.bt, "snaps")
        have_snaps = os.path.isdir(snaps)
        ref = os.path.join(self.bt, "reference")
        if not have_snaps:
            os.mkdir(ref)
        touched = set().union(*(set(c) for k, c in self.changed.items() if k > 1))
        self.unchanged_file = next(f for f in self.files if f not in touched)
        same_inode = {}
        for peer in self.peers:
            peer.mount()
            try:
                peer.resolve()
                for k in (1, self.versions):
                    expected = os.path.join(snaps, f"v{k:02d}")
                    if not have_snaps:
                        continue
                    p = subprocess.run(["diff", "-r", expected, peer.version_dir(k)], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
                    if p.returncode != 0:
                        raise BenchError(f"{peer.name}: version {k} differs from the btrfs snapshot: "
                                         f"{(p.stdout + p.stderr).decode(errors='replace')[:600]}")
                with open(os.path.join(peer.version_dir(1), self.old_file), "rb") as f:
                    old = f.read()
                with open(os.path.join(peer.version_dir(self.versions), self.old_file), "rb") as f:
                    new = f.read()
                if old == new:
                    raise BenchError(f"{peer.name}: {self.old_file} is the same in the first and last version")
                # What lets diff -r skip a file: the same (st_dev, st_ino) in both versions.
                a, b = (os.stat(os.path.join(peer.version_dir(k), self.unchanged_file)) for k in (1, self.versions))
                same_inode[peer.name] = (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
            finally:
                peer.unmount()
        self.notes.append("check: " + ("every tool's first and last version equal the btrfs snapshots (diff -r)"
                                       if have_snaps else "btrfs not measured, so nothing to compare with")
                          + f"; the old file ({self.old_file}) differs between them")
        self.notes.append(f"a file unchanged from the first to the last version ({self.unchanged_file}) has the same "
                          "device and inode number in both (so diff -r need not read it): "
                          + ", ".join(f"{n} {'yes' if v else 'no'}" for n, v in same_inode.items()))

    def measure(self):
        last = self.versions
        ops = [
            ("ls -R", lambda p: ["ls", "-R", p.version_dir(last)], (0,)),
            ("cat old file", lambda p: ["cat", os.path.join(p.version_dir(1), self.old_file)], (0,)),
            ("diff -r first last", lambda p: ["diff", "-r", p.version_dir(1), p.version_dir(last)], (1,)),
        ]
        for rep in range(self.runs):
            order = self.peers[rep % len(self.peers):] + self.peers[:rep % len(self.peers)]
            for peer in order:
                s = self.samples[peer.name]
                for op, cmd, ok in ops:
                    if peer.fuse:
                        drop_caches(TOOLS)
                        s["mount"].append(peer.mount())
                    try:
                        drop_caches(TOOLS)
                        s[f"{op}, cold"].append(timed_cmd(cmd(peer), ok=ok))
                        s[f"{op}, warm"].append(timed_cmd(cmd(peer), ok=ok))
                    finally:
                        peer.unmount()
            log(f"run {rep + 1}/{self.runs} done (load {loadavg_text()})")

    def machine(self):
        info = {"nproc": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / (1 << 20), 1)

        def version(cmd):
            p = run(cmd, check=False)
            return (p.stdout or p.stderr).decode(errors="replace").strip().splitlines()[0] if p.returncode == 0 else "?"
        info["restic"] = version(["restic", "version"]) if "restic" in self.only else None
        info["borg"] = version(["borg", "--version"]) if "borg" in self.only else None
        if "borg" in self.only:
            p = run(["/usr/bin/python3", "-c", "import pyfuse3; print(pyfuse3.__version__)"], check=False)
            info["pyfuse3"] = p.stdout.decode().strip() or "?"
        info["btrfs_progs"] = version(["btrfs", "--version"])
        info["fuse"] = version(["fusermount3", "--version"])
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        p = run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], check=False)
        info["commit"] = p.stdout.decode().strip() if p.returncode == 0 else None
        info["binary"] = self.args.binary
        info["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        info["load_start"] = loadavg_text()
        return info

    def summary(self):
        rows = []
        for fig in FIGURES:
            row = {"figure": fig}
            for name in self.only:
                xs = self.samples[name][fig]
                row[name] = {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)} if xs else None
            lay = row.get("layerfs")
            for name in self.only:
                if name != "layerfs" and lay and row[name]:
                    row[f"{name}/layerfs"] = row[name]["median"] / lay["median"]
            rows.append(row)
        return rows


def cell(stat):
    if not stat:
        return "-"
    return f"{fmt_time(stat['median'])} ({fmt_time(stat['min'])}-{fmt_time(stat['max'])})"


def print_table(rows, names):
    header = ["figure"] + [f"{n} median (min-max)" for n in names] + [f"{n}/layerfs" for n in names if n != "layerfs" and "layerfs" in names]
    lines = [header]
    for r in rows:
        line = [r["figure"]] + [cell(r.get(n)) for n in names]
        for n in names:
            if n != "layerfs" and "layerfs" in names:
                ratio = r.get(f"{n}/layerfs")
                line.append(f"{ratio:.2f}x" if ratio is not None else "-")
        lines.append(line)
    widths = [max(len(l[i]) for l in lines) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(widths[i]) for i, h in enumerate(header)) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|")
    for l in lines[1:]:
        print("| " + " | ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(l)) + " |")


def default_binary():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for rel in (".build-release/release/layerfs", ".build-bench-rel/release/layerfs", ".build/release/layerfs"):
        path = os.path.join(repo, rel)
        if os.access(path, os.X_OK):
            return path
    return shutil.which("layerfs") or "layerfs"


def main():
    ap = argparse.ArgumentParser(description="layerfs against restic, borg and btrfs snapshots (needs root).")
    ap.add_argument("--quick", action="store_true", help="short run: 200 files, 3 versions, 1 run")
    ap.add_argument("--binary", default=None, help="the layerfs binary (default: the repository's release build)")
    ap.add_argument("--dir", default="/var/tmp", help="where the sparse btrfs image goes (default /var/tmp)")
    ap.add_argument("--runs", type=int, default=None, help="samples per figure and tool (default 5; --quick 1)")
    ap.add_argument("--files", type=int, default=None, help="files in the tree (default 2000; --quick 200)")
    ap.add_argument("--versions", type=int, default=None, help="versions (default 10; --quick 3)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the tree's contents (default 1)")
    ap.add_argument("--only", default=",".join(PEERS), help="comma-separated subset of " + ",".join(PEERS))
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary) if args.binary else default_binary()
    args.dir = os.path.abspath(args.dir)
    args.only = [n.strip() for n in args.only.split(",") if n.strip()]

    bad = [n for n in args.only if n not in PEERS]
    if bad or not args.only:
        log(f"peer-bench: --only takes a subset of {','.join(PEERS)}")
        return 2
    if (args.runs is not None and args.runs < 1) or (args.files is not None and args.files < 40) or \
            (args.versions is not None and args.versions < 2):
        log("peer-bench: --runs must be >= 1, --files >= 40, --versions >= 2")
        return 2
    if os.geteuid() != 0:
        log("peer-bench: must run as root (loop devices, mounts, drop_caches)")
        return 2
    needed = ["mkfs.btrfs", "btrfs", "losetup", "mount", "umount", "fusermount3", "diff", "cat", "ls"]
    needed += [t for t in ("restic", "borg") if t in args.only]
    missing = [t for t in needed if not shutil.which(t)]
    if "layerfs" in args.only and not os.access(args.binary, os.X_OK):
        missing.append(args.binary)
    if "borg" in args.only and run(["/usr/bin/python3", "-c", "import pyfuse3"], check=False).returncode != 0:
        missing.append("python3-pyfuse3 (borg mount)")
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse")
    if missing:
        log(f"peer-bench: missing: {', '.join(missing)} (scripts/install-deps.sh --bench installs the packages)")
        return 2

    clean_stale(args.dir, PREFIX)
    bench = Bench(args)
    import atexit
    atexit.register(bench.teardown)
    install_signal_handlers()
    status = 0
    info = None
    try:
        info = bench.machine()
        log(f"peer-bench ({'quick' if args.quick else 'full'}): {bench.nfiles} files, {bench.versions} versions, "
            f"{bench.runs} runs; {', '.join(args.only)}; load {info['load_start']}")
        started = time.perf_counter()
        bench.setup()
        bench.measure()
        info["load_end"] = loadavg_text()
        info["seconds"] = round(time.perf_counter() - started, 1)
    except Interrupted as e:
        log(f"peer-bench: interrupted by signal {e.signum}; tearing down")
        status = 128 + e.signum
    except (BenchError, OSError) as e:
        log(f"peer-bench: {e}")
        status = 1
    finally:
        bench.teardown()
        for line in bench.teardown.report:
            log(line)
    if status:
        return status
    rows = bench.summary()
    if args.json:
        json.dump({"machine": info, "runs": bench.runs, "files": len(bench.files), "versions": bench.versions,
                   "rows": rows, "notes": bench.notes, "teardown": bench.teardown.report}, sys.stdout, indent=2)
        print()
        return 0
    print(f"layerfs peer-bench ({'quick' if args.quick else 'full'}), {info['date']}: medians of {bench.runs} "
          f"samples (min-max); ratio = peer / layerfs (> 1: layerfs faster)")
    print(f"  machine: nproc {info['nproc']}, {info['mem_gib']} GiB, kernel {info['kernel']}; "
          f"load average {info['load_start']} at the start, {info['load_end']} at the end; {info['seconds']:.0f} s")
    print(f"  layerfs {info['binary']} (commit {info['commit']}); {info['restic'] or ''}; {info['borg'] or ''}"
          f"{' (pyfuse3 ' + info['pyfuse3'] + ')' if info.get('pyfuse3') else ''}; {info['btrfs_progs']}; {info['fuse']}")
    print()
    print_table(rows, args.only)
    print()
    for note in bench.notes + bench.teardown.report:
        print(f"  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
