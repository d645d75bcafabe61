#!/usr/bin/env python3
"""layerfs mount benchmark: each figure beside the same operation on native btrfs.

Usage (as root):  bench/mount-bench.py [--quick] [--binary PATH] [--dir /var/tmp] [--runs N] [--json]

Makes a sparse image under --dir, formats it btrfs and loop-mounts it. On it: a native tree of
small config-like files, snapshotted read-only as T1; 1% of the files changed, snapshotted as T2.
Beside it a layerfs store (a subvolume of the same btrfs) into which T1 and then T2 are imported,
mounted with `layerfs mount -f`. Every figure is measured on both sides in the same run, runs
alternating between the sides, and printed as layerfs / native with its target, MET or MISSED.
Python 3 standard library only. bench/README.md ("mount-bench.py") describes every row.

Everything mounted is unmounted and the loop device detached in all cases: normal end, an
exception, SIGINT/SIGTERM/SIGHUP/SIGQUIT (a second signal does not interrupt the teardown), and a
run killed outright is cleaned up by the next run (through the owner.pid of its work directory).
"""

import argparse
import calendar
import datetime
import errno
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import (BenchError, HANDLED_SIGNALS, Interrupted, Teardown, clean_stale, config_text,
                      drop_caches, fmt_time, log, mounts, on_signal, percentile, run, timed_cmd)

PREFIX = "layerfs-mount-bench-"
SKIP_RO = "skipped: mount is read-only (needs the read-write present)"
MIB = 1 << 20


# ---------------------------------------------------------------------------------------------
# Output helpers

def fmt_value(value, unit):
    if value is None:
        return "-"
    if unit == "s":
        return fmt_time(value)
    if unit == "MB/s":
        return f"{value:.0f} MB/s"
    if unit == "files/s":
        return f"{value:,.0f} files/s"
    return f"{value:.3g} {unit}"


# ---------------------------------------------------------------------------------------------
# Rows of the result table

class Row:
    """One figure: the native and the layerfs value of one measure, their ratio and the target.

    `better` is "lower" (times, latencies) or "higher" (throughputs); `target` is a ratio bound
    (layerfs / native) unless `absolute` is set, in which case it bounds the layerfs value itself.
    """

    def __init__(self, name, unit, native=None, layer=None, target=None, better="lower",
                 absolute=False, samples=None, status=None, note=None):
        self.name = name
        self.unit = unit
        self.native = native
        self.layer = layer
        self.target = target
        self.better = better
        self.absolute = absolute
        self.samples = samples  # (native n, layerfs n)
        self.note = note
        self.ratio = None
        if native and layer is not None and native > 0:
            self.ratio = layer / native
        self.status = status or self.judge()

    def judge(self):
        if self.target is None:
            return "-"
        value = self.layer if self.absolute else self.ratio
        if value is None:
            return "-"
        ok = value <= self.target if self.better == "lower" else value >= self.target
        return "MET" if ok else "MISSED"

    def target_text(self):
        if self.target is None:
            return "-"
        op = "<=" if self.better == "lower" else ">="
        if self.absolute:
            return f"{op} {fmt_value(self.target, self.unit)}"
        return f"{op} {self.target:g}x"

    def cells(self):
        if self.status in ("SKIPPED", "FAILED"):
            return [self.name, "-", "-", "-", self.target_text(), self.status]
        return [self.name, fmt_value(self.native, self.unit), fmt_value(self.layer, self.unit),
                f"{self.ratio:.2f}x" if self.ratio is not None else "-", self.target_text(), self.status]

    def as_json(self):
        return {
            "operation": self.name, "unit": self.unit, "native": self.native, "layerfs": self.layer,
            "ratio": self.ratio, "target": self.target_text() if self.target is not None else None,
            "better": self.better, "status": self.status, "samples": self.samples, "note": self.note,
        }


def time_rows(name, native, layer, target=None, note=None):
    """A row of the medians of two lists of durations (seconds)."""
    return Row(name, "s", statistics.median(native), statistics.median(layer), target,
               samples=(len(native), len(layer)), note=note)


def latency_rows(name, native, layer, median_target=None, p99_target=None, note=None):
    """Two rows, median and p99, of pooled per-operation latencies (seconds)."""
    n = (len(native), len(layer))
    return [
        Row(f"{name}, median", "s", statistics.median(native), statistics.median(layer), median_target,
            samples=n, note=note),
        Row(f"{name}, p99", "s", percentile(native, 99), percentile(layer, 99), p99_target, samples=n),
    ]


def skipped(name, target=None, better="lower", reason=SKIP_RO):
    return Row(name, "s", target=target, better=better, status="SKIPPED", note=reason)


def failed(name, error, target=None, better="lower"):
    return Row(name, "s", target=target, better=better, status="FAILED", note=str(error))


def print_table(rows):
    header = ["operation", "native", "layerfs", "ratio", "target", "result"]
    table = [header] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {1, 2, 3}

    def fmt(line):
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(line)).rstrip()

    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(fmt(r.cells()))
        if r.status in ("SKIPPED", "FAILED") and r.note:
            print(f"    {r.note}")


# ---------------------------------------------------------------------------------------------
# Processes, mounts, teardown

# ---------------------------------------------------------------------------------------------
# Measurement primitives

def paired(runs, native, layer, cold=False, warmup=False):
    """Runs `native()` and `layer()` `runs` times each, alternating which goes first, and returns
    their results. cold: drop the page cache, dentries and inodes before every call."""
    nat, lay = [], []
    if warmup:
        native()
        layer()
    for i in range(runs):
        order = [(nat, native), (lay, layer)] if i % 2 == 0 else [(lay, layer), (nat, native)]
        for acc, fn in order:
            if cold:
                drop_caches()
            acc.append(fn())
    return nat, lay


# ---------------------------------------------------------------------------------------------
# The tree

def tree_files(dirs, per_dir):
    return [f"svc-{d:03d}/elem-{f:04d}.conf" for d in range(dirs) for f in range(per_dir)]


def write_tree(root, dirs, per_dir, seed):
    rng = random.Random(seed)
    for d in range(dirs):
        os.mkdir(os.path.join(root, f"svc-{d:03d}"))
    for rel in tree_files(dirs, per_dir):
        with open(os.path.join(root, rel), "w") as f:
            f.write(config_text(rng, rng.randint(200, 2000), rel))


def change_tree(root, dirs, per_dir, fraction, seed):
    rng = random.Random(seed)
    files = tree_files(dirs, per_dir)
    chosen = rng.sample(files, max(1, round(len(files) * fraction)))
    for rel in chosen:
        with open(os.path.join(root, rel), "w") as f:
            f.write(config_text(rng, rng.randint(200, 2000), rel + " v2"))
    return chosen


def write_big(path, size, stamp, fsync=True):
    """Writes `size` bytes in 1 MiB writes, each block stamped with `stamp` and its index so that
    no two blocks, runs or sides have the same content (a store keyed by content hash must not
    get a free ride), then fsync and close: dd bs=1M conv=fsync, without repeated content."""
    block = bytearray(BIG_BLOCK)
    tag = stamp.encode()[:40].ljust(40, b".")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for i in range(size // MIB):
            block[:48] = tag + i.to_bytes(8, "little")
            view = memoryview(block)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


BIG_BLOCK = random.Random(7).randbytes(MIB)


# ---------------------------------------------------------------------------------------------
# Times of the store's events

CANONICAL = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


def canonical_ns(name):
    m = CANONICAL.match(name)
    if not m:
        return None
    seconds = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))


def time_forms(ns):
    """Four spellings of instant `ns` that `/@time/<name>` accepts (RFC 3339 with Z, RFC 3339 with
    an offset, epoch seconds with and without @), each with all nine fraction digits."""
    seconds, frac = divmod(ns, 1_000_000_000)
    base = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    plus1 = datetime.datetime.fromtimestamp(seconds + 3600, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return [f"{base}.{frac:09d}Z", f"{plus1}.{frac:09d}+01:00", f"@{seconds}.{frac:09d}", f"{seconds}.{frac:09d}"]


# ---------------------------------------------------------------------------------------------
# The benchmark

class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.runs = args.runs or (3 if args.quick else 5)
        if self.quick:
            self.dirs, self.per_dir = 20, 100          # 2,000 files
            self.big = 64 * MIB
            self.create_files = (10, 100)              # 1,000 files
            self.commit_samples = 200
            self.random_reads = 500
        else:
            self.dirs, self.per_dir = 100, 100         # 10,000 files
            self.big = 256 * MIB
            self.create_files = (100, 100)             # 10,000 files
            self.commit_samples = 1000
            self.random_reads = 2000
        self.teardown = Teardown()
        self.rows = []
        self.notes = []
        self.rw = False
        self.failures = 0

    # -- setup --

    def setup(self):
        a = self.args
        t = self.teardown
        work = tempfile.mkdtemp(prefix=PREFIX, dir=a.dir)
        t.work = work
        with open(os.path.join(work, "owner.pid"), "w") as f:
            f.write(f"{os.getpid()}\n")
        t.image = os.path.join(work, "btrfs.img")
        with open(t.image, "wb") as f:
            f.truncate(16 << 30)  # sparse; a full run writes ~3 GiB
        run(["mkfs.btrfs", "-q", "-f", t.image])
        bt = os.path.join(work, "btrfs")
        os.mkdir(bt)
        t.loop = run(["losetup", "-f", "--show", t.image]).stdout.decode().strip()
        run(["mount", t.loop, bt])
        t.btrfs = bt
        self.bt = bt
        log(f"btrfs on {t.loop} (sparse image {t.image}) mounted at {bt}")

        # Native tree, T1 and T2 as read-only snapshots.
        tree = os.path.join(bt, "tree")
        run(["btrfs", "subvolume", "create", tree])
        t0 = time.perf_counter()
        write_tree(tree, self.dirs, self.per_dir, seed=1)
        self.t1_snap = os.path.join(bt, "snap-t1")
        self.t2_snap = os.path.join(bt, "snap-t2")
        run(["btrfs", "subvolume", "snapshot", "-r", tree, self.t1_snap])
        self.changed = change_tree(tree, self.dirs, self.per_dir, 0.01, seed=2)
        run(["btrfs", "subvolume", "snapshot", "-r", tree, self.t2_snap])
        nfiles = self.dirs * self.per_dir
        log(f"native tree: {nfiles} files in {self.dirs} dirs; {len(self.changed)} changed for T2 "
            f"({time.perf_counter() - t0:.1f} s)")

        # A third tree, T2 plus one big imported file: what the read rows use when the mount
        # cannot be written to. The present is T2 + big/imported.bin; T1 and T2 stay as they were.
        tree3 = os.path.join(bt, "tree3")
        run(["btrfs", "subvolume", "snapshot", self.t2_snap, tree3])
        os.mkdir(os.path.join(tree3, "big"))
        self.native_imported_big = os.path.join(tree3, "big", "imported.bin")
        write_big(self.native_imported_big, self.big, "imported")

        # The layerfs store, on the same btrfs.
        self.store = os.path.join(bt, "store")
        binary = a.binary
        run([binary, "init", self.store])
        for label, src in (("T1", self.t1_snap), ("T2", self.t2_snap), ("T2 + big file", tree3)):
            t0 = time.perf_counter()
            p = run([binary, "import", self.store, src])
            log(f"layerfs import of {label}: {p.stdout.decode().strip().splitlines()[-1]} "
                f"({time.perf_counter() - t0:.1f} s)")
            if label == "T1":
                self.t1_instant = time.time_ns()
            elif label == "T2":
                self.t2_instant = time.time_ns()
            time.sleep(0.01)

        # Native counterpart of the present's write area: a subvolume like the store.
        self.native = os.path.join(bt, "native")
        run(["btrfs", "subvolume", "create", self.native])

        # The mount, in the foreground, in the background.
        self.fmnt = os.path.join(work, "mnt")
        os.mkdir(self.fmnt)
        logpath = os.path.join(work, "mount.log")
        logf = open(logpath, "wb")
        proc = subprocess.Popen([binary, "mount", "-f", self.store, self.fmnt], stdout=logf, stderr=logf,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        t.fuse.append((self.fmnt, proc))
        with open(os.path.join(work, "mount.pid"), "w") as f:
            f.write(f"{proc.pid}\n")
        deadline = time.monotonic() + 60
        while not any(m[1] == os.path.realpath(self.fmnt) and m[2].startswith("fuse") for m in mounts()):
            if proc.poll() is not None:
                logf.close()
                raise BenchError(f"layerfs mount exited {proc.returncode}: {open(logpath).read()[-800:]}")
            if time.monotonic() > deadline:
                raise BenchError("layerfs mount did not appear in /proc/mounts within 60 s")
            time.sleep(0.05)
        opts = [m for m in mounts() if m[1] == os.path.realpath(self.fmnt)]
        log(f"layerfs mounted at {self.fmnt} ({opts[0][2]})")

        # The canonical times of T1 and T2: the last event at or before each import's end.
        names = [n for n in os.listdir(os.path.join(self.fmnt, "@time")) if n != "latest"]
        times = sorted((canonical_ns(n), n) for n in names if canonical_ns(n) is not None)
        if not times:
            raise BenchError("ls @time listed no canonical time")
        self.t1 = max((x for x in times if x[0] <= self.t1_instant), default=None)
        self.t2 = max((x for x in times if x[0] <= self.t2_instant), default=None)
        later = [x for x in times if x[0] > self.t1_instant]
        if self.t1 is None or self.t2 is None or not later:
            raise BenchError("could not find the T1 and T2 event times in @time")
        self.t1_gap_end = later[0][0]  # first event of the T2 import
        self.t1_dir = os.path.join(self.fmnt, "@time", self.t1[1])
        self.t2_dir = os.path.join(self.fmnt, "@time", self.t2[1])
        log(f"T1 = {self.t1[1]}, T2 = {self.t2[1]} ({len(times)} events in @time)")

        self.check_views()
        self.probe_rw()

    def check_views(self):
        """Before measuring: the time views equal the native snapshots, and an unchanged file has
        one inode in both views (what lets diff -r skip it)."""
        for snap, view in ((self.t1_snap, self.t1_dir), (self.t2_snap, self.t2_dir)):
            p = subprocess.run(["diff", "-r", snap, view], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if p.returncode != 0:
                raise BenchError(f"{view} differs from {snap}: {p.stdout.decode(errors='replace')[:800]}"
                                 f"{p.stderr.decode(errors='replace')[:400]}")
        same = next(r for r in tree_files(self.dirs, self.per_dir) if r not in set(self.changed))
        i1 = os.stat(os.path.join(self.t1_dir, same)).st_ino
        i2 = os.stat(os.path.join(self.t2_dir, same)).st_ino
        c1 = os.stat(os.path.join(self.t1_dir, self.changed[0])).st_ino
        c2 = os.stat(os.path.join(self.t2_dir, self.changed[0])).st_ino
        self.notes.append(f"check: @time/T1 and @time/T2 equal the native snapshots (diff -r); "
                          f"an unchanged file has {'one inode' if i1 == i2 else 'TWO inodes'} in both views, "
                          f"a changed one {'two' if c1 != c2 else 'ONE'}")
        log(self.notes[-1])

    def probe_rw(self):
        probe = os.path.join(self.fmnt, ".mount-bench-probe")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as e:
            if e.errno == errno.EROFS:
                self.rw = False
                self.notes.append("the mount is read-only (open with O_CREAT in the present: EROFS); "
                                  "the write rows are skipped")
                log(self.notes[-1])
                return
            raise
        os.write(fd, b"probe\n")
        os.close(fd)
        os.unlink(probe)
        self.rw = True
        log("the mount is read-write: the write rows run")

    # -- figures --

    def figure(self, names, fn):
        """Runs one group of rows; a failure becomes FAILED rows and the bench goes on."""
        try:
            self.rows.extend(fn())
        except BenchError as e:
            self.failures += 1
            log(f"FAILED: {names[0]}: {e}")
            self.rows.extend(failed(n, e) for n in names)

    def fig_diff(self):
        rows = []
        for cold in (True, False):
            nat, lay = paired(
                self.runs,
                lambda: timed_cmd(["diff", "-r", self.t1_snap, self.t2_snap], ok=(1,)),
                lambda: timed_cmd(["diff", "-r", self.t1_dir, self.t2_dir], ok=(1,)),
                cold=cold, warmup=not cold)
            rows.append(time_rows(f"diff -r T1 T2, {'cold' if cold else 'warm'}", nat, lay, target=0.3))
        # Same differences on both sides.
        outs = []
        for a, b in ((self.t1_snap, self.t2_snap), (self.t1_dir, self.t2_dir)):
            out = subprocess.run(["diff", "-r", a, b], stdout=subprocess.PIPE).stdout.decode(errors="replace")
            outs.append(out.replace(a, "A").replace(b, "B"))
        self.notes.append(f"diff -r output identical on both sides: {'yes' if outs[0] == outs[1] else 'NO'} "
                          f"({outs[0].count(chr(10))} lines, {len(self.changed)} changed files)")
        return rows

    def fig_cat(self):
        rows = []
        for cold, target in ((True, 1.5), (False, 1.05)):
            nat, lay = paired(
                self.runs,
                lambda: timed_cmd(["find", self.t2_snap, "-type", "f", "-exec", "cat", "{}", "+"]),
                lambda: timed_cmd(["find", self.t2_dir, "-type", "f", "-exec", "cat", "{}", "+"]),
                cold=cold, warmup=not cold)
            rows.append(time_rows(f"cat every file of T2, {'cold' if cold else 'warm'}", nat, lay, target=target))
        return rows

    def fig_ls(self):
        rows = []
        for flags in ("-R", "-lR"):
            for cold in (True, False):
                nat, lay = paired(
                    self.runs,
                    lambda: timed_cmd(["ls", flags, self.t2_snap]),
                    lambda: timed_cmd(["ls", flags, self.t2_dir]),
                    cold=cold, warmup=not cold)
                rows.append(time_rows(f"ls {flags} of T2, {'cold' if cold else 'warm'}", nat, lay, target=2.0))
        return rows

    def fig_first_ls(self):
        """The first listing of a time directory never looked up before: every sample is a new name
        (a new nanosecond after T1's last event, before T2's first, in one of four spellings), so
        the mount resolves the time and builds a new view each time. Timed in-process with
        os.listdir (open, getdents, close: what `ls DIR/` does without -l), so that exec'ing ls is
        not in the figure. Native: the same listing of a native directory seen for the first time,
        the root of a new read-only snapshot of T1 per sample (made untimed). Warm caches: the
        mount's own state is what is measured; a cold variant (caches dropped) follows."""
        samples = max(10 * self.runs, 30)
        cold_samples = max(2 * self.runs, 6)
        if self.t1_gap_end - self.t1[0] <= samples + cold_samples:
            raise BenchError("no room between T1's last event and T2's first for new time names")
        expected = sorted(os.listdir(self.t1_snap))
        snaps = os.path.join(self.bt, "first-ls")
        os.mkdir(snaps)
        counter = [0]

        def fresh_pair():
            i = counter[0]
            counter[0] += 1
            view = os.path.join(self.fmnt, "@time", time_forms(self.t1[0] + 1 + i)[i % 4])
            snap = os.path.join(snaps, f"t1-{i}")
            run(["btrfs", "subvolume", "snapshot", "-r", self.t1_snap, snap])
            return snap, view

        def timed_listdir(path):
            t0 = time.perf_counter()
            names = os.listdir(path)
            dt = time.perf_counter() - t0
            if sorted(names) != expected:
                raise BenchError(f"{path} lists {len(names)} entries, T1 has {len(expected)}")
            return dt

        results = {}
        for cold, n in ((False, samples), (True, cold_samples)):
            nat, lay = [], []
            for i in range(n):
                snap, view = fresh_pair()
                pair = [(nat, snap), (lay, view)]
                for acc, path in (pair if i % 2 == 0 else reversed(pair)):
                    if cold:
                        drop_caches()
                    acc.append(timed_listdir(path))
            results[cold] = (nat, lay)
        nat, lay = results[False]
        cnat, clay = results[True]
        n = (len(nat), len(lay))
        return [
            Row("first ls of a new time dir, median", "s", statistics.median(nat), statistics.median(lay), samples=n,
                note=f"os.listdir of a never-visited @time/<name> ({len(expected)} entries); native: a new snapshot's root"),
            Row("first ls of a new time dir, p99", "s", percentile(nat, 99), percentile(lay, 99), 0.050,
                absolute=True, samples=n),
            Row("first ls of a new time dir, caches dropped, median", "s", statistics.median(cnat),
                statistics.median(clay), samples=(len(cnat), len(clay))),
        ]

    def fig_sequential(self):
        size_mib = self.big // MIB
        wname = f"sequential write {size_mib} MiB (bs 1M, fsync)"
        rname = f"sequential read {size_mib} MiB, cold (dd bs=1M)"
        rows = []
        if self.rw:
            wdir = os.path.join(self.fmnt, "seq")
            os.mkdir(wdir)
            counter = [0]
            written = {}

            def write(side, path):
                counter[0] += 1
                t0 = time.perf_counter()
                write_big(path, self.big, f"{side}-{counter[0]}")
                dt = time.perf_counter() - t0
                written[side] = path
                return self.big / dt / 1e6

            def read(side):
                drop_caches()
                dt = timed_cmd(["dd", f"if={written[side]}", "of=/dev/null", "bs=1M"])
                return self.big / dt / 1e6

            nat_w, lay_w, nat_r, lay_r = [], [], [], []
            try:
                for i in range(self.runs):
                    sides = [("native", self.native, nat_w, nat_r), ("layerfs", wdir, lay_w, lay_r)]
                    for side, d, acc_w, acc_r in (sides if i % 2 == 0 else reversed(sides)):
                        path = os.path.join(d, f"big-{i}.bin")
                        acc_w.append(write(side, path))
                        acc_r.append(read(side))
                        if side == "native":
                            os.unlink(path)
            except OSError as e:
                if e.errno != errno.EROFS:
                    raise BenchError(f"write: {e}")
                return [skipped(wname, 0.6, "higher"), skipped(rname, 0.9, "higher")]
            n = (len(nat_w), len(lay_w))
            rows.append(Row(wname, "MB/s", statistics.median(nat_w), statistics.median(lay_w), 0.6, "higher", samples=n))
            rows.append(Row(rname, "MB/s", statistics.median(nat_r), statistics.median(lay_r), 0.9, "higher", samples=n))
            # The native files were removed after each run (the store keeps its blobs anyway): one more
            # native file, untimed, for the random reads; the layerfs side reads its last written file.
            keep = os.path.join(self.native, "big-random.bin")
            write_big(keep, self.big, "native-random")
            self.rand_paths = (keep, written["layerfs"])
            self.rand_source = "the file written above"
        else:
            rows.append(skipped(wname, 0.6, "higher"))
            # The read still runs, on the file imported before mounting.
            nat, lay = paired(
                self.runs,
                lambda: self.big / timed_cmd(["dd", f"if={self.native_imported_big}", "of=/dev/null", "bs=1M"]) / 1e6,
                lambda: self.big / timed_cmd(["dd", f"if={os.path.join(self.fmnt, 'big', 'imported.bin')}",
                                              "of=/dev/null", "bs=1M"]) / 1e6,
                cold=True)
            rows.append(Row(rname.replace(", cold", " of an imported file, cold"), "MB/s",
                            statistics.median(nat), statistics.median(lay), 0.9, "higher", samples=(len(nat), len(lay)),
                            note="mount read-only: reads the file `layerfs import` put in the present"))
            self.rand_paths = (self.native_imported_big, os.path.join(self.fmnt, "big", "imported.bin"))
            self.rand_source = "the imported file (mount read-only)"
        return rows

    def fig_random(self):
        size = os.path.getsize(self.rand_paths[0])
        pages = size // 4096
        rng = random.Random(11)
        opens = {"native": [], "layerfs": []}

        def sampler(side, path, cold):
            def go():
                if cold:
                    drop_caches()
                else:
                    with open(path, "rb") as f:  # warm: read it whole first
                        while f.read(MIB):
                            pass
                offsets = [rng.randrange(pages) * 4096 for _ in range(self.random_reads)]
                t0 = time.perf_counter_ns()
                fd = os.open(path, os.O_RDONLY)
                t1 = time.perf_counter_ns()
                if cold:
                    opens[side].append((t1 - t0) / 1e9)
                lat = []
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
                    for off in offsets:
                        a = time.perf_counter_ns()
                        if len(os.pread(fd, 4096, off)) != 4096:
                            raise BenchError(f"short read at {off} in {path}")
                        lat.append((time.perf_counter_ns() - a) / 1e9)
                finally:
                    os.close(fd)
                return lat
            return go

        rows = []
        for cold in (True, False):
            nat, lay = paired(self.runs, sampler("native", self.rand_paths[0], cold),
                              sampler("layerfs", self.rand_paths[1], cold))
            nat = [x for run_ in nat for x in run_]
            lay = [x for run_ in lay for x in run_]
            rows.extend(latency_rows(f"4 KiB random pread, {'cold' if cold else 'warm'}", nat, lay))
        rows[0].note = (f"{self.random_reads} reads per run at random 4 KiB-aligned offsets of {self.big // MIB} MiB, "
                        f"{self.rand_source}; POSIX_FADV_RANDOM; the open(2) before them is the next row, not in these")
        rows.insert(2, Row(f"open(2) of the cold {self.big // MIB} MiB file", "s", statistics.median(opens["native"]),
                           statistics.median(opens["layerfs"]), samples=(len(opens["native"]), len(opens["layerfs"]))))
        return rows

    def fig_create(self):
        dirs, per = self.create_files
        total = dirs * per
        name = f"create+write+close {total:,} files"
        name_sync = f"create+write+close {total:,} files (native + fdatasync)"
        if not self.rw:
            return [skipped(name), skipped(name_sync)]
        rng = random.Random(5)
        contents = [config_text(rng, rng.randint(200, 2000), f"new-{i}").encode() for i in range(total)]
        counter = [0]

        def creator(base, sync):
            def go():
                counter[0] += 1
                root = os.path.join(base, f"create-{counter[0]}")
                os.mkdir(root)
                for d in range(dirs):
                    os.mkdir(os.path.join(root, f"d{d:03d}"))
                paths = [os.path.join(root, f"d{d:03d}", f"f{f:04d}.conf") for d in range(dirs) for f in range(per)]
                t0 = time.perf_counter()
                for path, data in zip(paths, contents):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.write(fd, data)
                    if sync:
                        os.fdatasync(fd)
                    os.close(fd)
                return time.perf_counter() - t0
            return go

        try:
            wdir = os.path.join(self.fmnt, "create")
            os.mkdir(wdir)
            nat, lay = paired(self.runs, creator(self.native, False), creator(wdir, False))
            nat_sync = [creator(self.native, True)() for _ in range(self.runs)]
        except OSError as e:
            if e.errno != errno.EROFS:
                raise BenchError(f"create: {e}")
            return [skipped(name), skipped(name_sync)]
        return [time_rows(name, nat, lay, note=f"{dirs} directories x {per} files of 200-2000 bytes"),
                time_rows(name_sync, nat_sync, lay,
                          note="same layerfs runs; native with fdatasync before each close (a commit is durable at close)")]

    def fig_commit(self):
        name = "one small commit (200 B: open, write, close)"
        if not self.rw:
            return [skipped(f"{name}, median", 1.3), skipped(f"{name}, p99", 1.5)]
        try:
            ldir = os.path.join(self.fmnt, "commit")
            os.mkdir(ldir)
            ndir = os.path.join(self.native, "commit")
            os.mkdir(ndir)
            nat, lay = [], []
            rng = random.Random(9)
            texts = [config_text(rng, 200, f"commit-{i}").encode() for i in range(64)]

            def native(i):
                fd = os.open(os.path.join(ndir, f"c{i % 20:02d}.conf"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, texts[i % 64])
                os.fdatasync(fd)
                os.close(fd)

            def layer(i):
                fd = os.open(os.path.join(ldir, f"c{i % 20:02d}.conf"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, texts[i % 64])
                os.close(fd)

            for i in range(20):  # create the files, untimed
                native(i)
                layer(i)
            for i in range(self.commit_samples):
                for acc, fn in ([(nat, native), (lay, layer)] if i % 2 == 0 else [(lay, layer), (nat, native)]):
                    t0 = time.perf_counter_ns()
                    fn(i + 20)
                    acc.append((time.perf_counter_ns() - t0) / 1e9)
        except OSError as e:
            if e.errno != errno.EROFS:
                raise BenchError(f"commit: {e}")
            return [skipped(f"{name}, median", 1.3), skipped(f"{name}, p99", 1.5)]
        rows = latency_rows(name, nat, lay, median_target=1.3, p99_target=1.5)
        rows[0].note = (f"{self.commit_samples} samples per side, interleaved; native: open, write, fdatasync, close; "
                        "20 files rewritten in turn with new content")
        return rows

    # -- the whole run --

    def machine(self):
        info = {"cores": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
        try:
            with open("/proc/meminfo") as f:
                kb = int(f.readline().split()[1])
            info["ram_gib"] = round(kb / (1 << 20), 2)
        except (OSError, ValueError, IndexError):
            pass
        p = run(["findmnt", "-n", "-o", "FSTYPE", "-T", self.args.dir], check=False)
        info["dir_fs"] = p.stdout.decode().strip() or "?"
        p = run(["btrfs", "--version"], check=False)
        info["btrfs_progs"] = p.stdout.decode().strip()
        info["load_start"] = os.getloadavg()[0]
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        p = run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], check=False)
        info["commit"] = p.stdout.decode().strip() if p.returncode == 0 else None
        info["binary"] = self.args.binary
        return info

    def main(self):
        info = self.machine()
        mode = "quick" if self.quick else "full"
        log(f"mount-bench ({mode}): {self.runs} runs per figure; cores {info['cores']}, RAM {info.get('ram_gib')} GiB, "
            f"kernel {info['kernel']}; --dir {self.args.dir} ({info['dir_fs']}); load {info['load_start']:.2f}")
        started = time.perf_counter()
        self.setup()
        self.rand_paths = None
        groups = [
            (["diff -r T1 T2, cold", "diff -r T1 T2, warm"], self.fig_diff),
            (["cat every file of T2"], self.fig_cat),
            (["ls -R / -lR of T2"], self.fig_ls),
            (["first ls of a new time dir"], self.fig_first_ls),
            (["sequential write/read"], self.fig_sequential),
            (["4 KiB random pread"], self.fig_random),
            (["create+write+close small files"], self.fig_create),
            (["one small commit"], self.fig_commit),
        ]
        for names, fn in groups:
            if fn == self.fig_random and not self.rand_paths:
                self.rows.append(failed(names[0], "no file to read (the sequential figure failed)"))
                continue
            log(f"-- {names[0]}")
            t0 = time.perf_counter()
            self.figure(names, fn)
            log(f"   ({time.perf_counter() - t0:.1f} s)")
        info["load_end"] = os.getloadavg()[0]
        info["seconds"] = round(time.perf_counter() - started, 1)
        return info, mode


def default_binary():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for rel in (".build-bench-rel/release/layerfs", ".build/release/layerfs"):
        path = os.path.join(repo, rel)
        if os.access(path, os.X_OK):
            return path
    return shutil.which("layerfs") or "layerfs"


def main():
    ap = argparse.ArgumentParser(description="layerfs mount benchmark against native btrfs (needs root).")
    ap.add_argument("--quick", action="store_true", help="short run: 2,000 files, 64 MiB, 3 runs, 200 commits")
    ap.add_argument("--binary", default=None, help="the layerfs binary (default: the repository's release build)")
    ap.add_argument("--dir", default="/var/tmp", help="where the sparse btrfs image goes (default /var/tmp)")
    ap.add_argument("--runs", type=int, default=None, help="runs per figure (default 5; --quick 3)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary) if args.binary else default_binary()
    args.dir = os.path.abspath(args.dir)

    if os.geteuid() != 0:
        log("mount-bench: must run as root (loop devices, mounts, drop_caches)")
        return 2
    missing = [t for t in ("mkfs.btrfs", "btrfs", "losetup", "mount", "umount", "fusermount3", "diff", "find",
                           "cat", "ls", "dd") if not shutil.which(t)]
    if missing or not os.access(args.binary, os.X_OK) or not os.path.exists("/dev/fuse"):
        log(f"mount-bench: missing: {', '.join(missing + ([args.binary] if not os.access(args.binary, os.X_OK) else []) + ([] if os.path.exists('/dev/fuse') else ['/dev/fuse']))}")
        return 2
    if args.runs is not None and args.runs < 1:
        log("mount-bench: --runs must be at least 1")
        return 2

    clean_stale(args.dir, PREFIX)
    bench = Bench(args)
    import atexit
    atexit.register(bench.teardown)
    for s in HANDLED_SIGNALS:
        signal.signal(s, on_signal)
    status = 0
    info, mode = None, None
    try:
        info, mode = bench.main()
    except Interrupted as e:
        log(f"mount-bench: interrupted by signal {e.signum}; tearing down")
        status = 128 + e.signum
    except BenchError as e:
        log(f"mount-bench: {e}")
        status = 1
    finally:
        bench.teardown()
        for line in bench.teardown.report:
            log(line)
    if status:
        return status
    if args.json:
        json.dump({"mode": mode, "machine": info, "read_write_mount": bench.rw, "runs": bench.runs,
                   "rows": [r.as_json() for r in bench.rows], "notes": bench.notes,
                   "teardown": bench.teardown.report}, sys.stdout, indent=2)
        print()
    else:
        print(f"layerfs mount-bench ({mode}, {bench.runs} runs per figure; medians, p99 of pooled samples)")
        print(f"  cores {info['cores']}, RAM {info.get('ram_gib')} GiB, kernel {info['kernel']}, {info['btrfs_progs']}; "
              f"--dir {args.dir} ({info['dir_fs']}), btrfs on a loop device there")
        print(f"  layerfs {info['binary']} (commit {info['commit']}); mount {'read-write' if bench.rw else 'read-only'}")
        print(f"  tree: {bench.dirs * bench.per_dir:,} files in {bench.dirs} dirs, {len(bench.changed)} changed from T1 to T2; "
              f"ratio = layerfs / native")
        print()
        print_table(bench.rows)
        print()
        for r in bench.rows:
            if r.note and r.status not in ("SKIPPED", "FAILED"):
                print(f"  {r.name}: {r.note}")
        for note in bench.notes + bench.teardown.report:
            print(f"  {note}")
        print(f"  load average {info['load_start']:.2f} at the start, {info['load_end']:.2f} at the end; "
              f"total {info['seconds']:.0f} s")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
