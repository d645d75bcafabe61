"""Bounded cost (Hardening issue, item 6): the daemon's memory and open descriptors stay flat while
thousands of distinct /@time/<t>/ directories are walked (ls -R, stat and cat of every file).

The kernel holds a lookup on every dentry it caches (entries of immutable views are cached for a
day), and the daemon must keep a node for each of them: that part of the growth is the kernel's.
To measure the daemon alone, the walk makes the kernel forget every `FORGET_EVERY` directories
(echo 2 > /proc/sys/vm/drop_caches: the kernel then sends FORGETs) and samples the daemon's
RssAnon (its heap), VmRSS and fd count right after. Flat: the last quarter's largest RssAnon is at
most FACTOR times the first quarter's (plus SLACK_KIB for allocator noise), and the fd count at most
2 above it. Both figures are printed ("[bounded]" lines).

Short (default): 2,000 events, 1,500 directories. Long (LAYERFS_STRESS=long): 5,000 events, 5,000
directories.
"""

import json
import os
import time
import unittest

import harness
from harness import log

FACTOR = 1.25
SLACK_KIB = 1536
FORGET_EVERY = 100


def build_store(store, mnt, log_path, events):
    """`events` changes through a mount: 40 directories (4 of them nested) of up to 3 files, each
    rewritten in turn (every @time directory has 41 directories and up to 120 files)."""
    dirs = [f"d{d:02}" for d in range(36)] + [f"d00/n{d}" for d in range(4)]
    with harness.Mount(store, mnt, log_path):
        for d in dirs:
            os.mkdir(f"{mnt}/{d}")
        for i in range(events - len(dirs)):
            with open(f"{mnt}/{dirs[i % len(dirs)]}/f{(i // len(dirs)) % 3}", "w") as f:
                f.write(f"version {i}\n" * (1 + i % 9))


def distinct_times(store):
    lines = harness.layerfs("log", store, "--json").stdout.splitlines()
    times = []
    for line in lines[1:]:  # not the genesis event
        t = json.loads(line)["time"]
        if not times or times[-1] != t:
            times.append(t)
    return times


def walk(directory):
    """ls -R, stat and cat: every entry stat'ed, every file read. Returns (dirs, files)."""
    dirs = files = 0
    for root, subdirs, names in os.walk(directory):
        dirs += 1
        for name in names:
            path = os.path.join(root, name)
            os.stat(path)
            with open(path, "rb") as f:
                f.read()
            files += 1
    return dirs, files


class BoundedCostTests(unittest.TestCase):
    def setUp(self):
        reason = harness.unavailable_reason()
        if reason:
            self.skipTest(reason)

    def test_walking_thousands_of_time_directories_keeps_memory_and_fds_flat(self):
        events, directories = (5000, 5000) if harness.long_mode() else (2000, 1500)
        with harness.scratch_directory("bounded") as scratch:
            store, mnt = f"{scratch}/store", f"{scratch}/mnt"
            harness.layerfs("init", store)
            started = time.monotonic()
            build_store(store, mnt, f"{scratch}/mount-build.log", events)
            times = distinct_times(store)
            log("bounded", f"store: {len(times)} distinct event times, built in {time.monotonic() - started:.1f} s")
            self.assertGreaterEqual(len(times), min(directories, events) - 50)
            # Spread over the whole history; the last `directories` distinct ones if there are more.
            step = max(1, len(times) // directories)
            chosen = times[::step][:directories]

            samples = []  # (directories walked, VmRSS, RssAnon, fds)
            with harness.Mount(store, mnt, f"{scratch}/mount.log") as m:
                pid = m.pid
                started = time.monotonic()
                totals = [0, 0]
                for k, t in enumerate(chosen, 1):
                    d, f = walk(f"{mnt}/@time/{t}")
                    self.assertGreater(d, 1, f"@time/{t} lists no directory")
                    totals[0] += d
                    totals[1] += f
                    if k % FORGET_EVERY == 0 or k == len(chosen):
                        before = harness.proc_status(pid)
                        harness.drop_caches()
                        time.sleep(0.2)  # FORGETs are asynchronous
                        after = harness.proc_status(pid)
                        samples.append((k, after["VmRSS"], after["RssAnon"], after["fds"], before["RssAnon"]))
                walked = time.monotonic() - started
                self.assertIsNone(m.process.poll(), "the daemon died during the walk")

            log("bounded", f"walked {len(chosen)} distinct @time directories ({totals[0]} directories, {totals[1]} files stat'ed and read) in {walked:.1f} s")
            log("bounded", "dirs walked | VmRSS KiB | RssAnon KiB (after forget) | RssAnon KiB (before forget) | fds")
            for k, rss, anon, fds, anon_before in samples:
                log("bounded", f"{k:11} | {rss:9} | {anon:26} | {anon_before:27} | {fds}")
            quarter = max(1, len(samples) // 4)
            first, last = samples[:quarter], samples[-quarter:]
            first_anon, last_anon = max(s[2] for s in first), max(s[2] for s in last)
            first_fds, last_fds = max(s[3] for s in first), max(s[3] for s in last)
            log("bounded", f"RssAnon: first quarter max {first_anon} KiB, last quarter max {last_anon} KiB (x{last_anon / first_anon:.2f}); fds: {first_fds} -> {last_fds}")
            self.assertLessEqual(last_anon, first_anon * FACTOR + SLACK_KIB, "the daemon's heap grows with the directories walked")
            self.assertLessEqual(last_fds, first_fds + 2, "the daemon's open descriptors grow with the directories walked")
            harness.verify_store(store)
            harness.assert_nothing_left(scratch)


if __name__ == "__main__":
    unittest.main(verbosity=2)
