"""Data integrity under load (Hardening issue, item 3): fio with verification and stress-ng's
filesystem stressors against the present of a layerfs mount.

fio: sequential and random writes, several jobs each (numjobs > 1), files in memory (1 MiB) and
staged (over 4 MiB), verify=crc32c with verify_fatal=1: every block is read back and checked after
writing. Then the mount is ended, `layerfs verify` must be clean, and after a remount fio checks
every file again (--verify_only): the data came back from the store, not from a cache. A negative
control then damages one block through the mount and fio must report it (so the check can fail).

stress-ng: hdd, dir, rename, symlink, dentry, seek, chmod, filename, fstat, utime,
touch, open, lockf, flock, readahead, sync-file, one after another (two instances each, --verify),
so that each does real work (bogo ops > 0 is checked). Its exit status cannot be trusted, so each
log is parsed: any line saying fail/error/unsuccessful/corrupt/mismatch or "skipping", or no
"successful run completed", fails the test. (link and xattr are left out: layerfs refuses hard links with EPERM
and setting extended attributes with ENOTSUP, by design, and stress-ng then skips them; fallocate
too: layerfs has no fallocate(2), EOPNOTSUPP, and the stressor then does nothing.) After the
load the daemon must still serve, unmount cleanly, and the store must verify.

Short (default): fio 8 MiB files, 3 jobs per pattern; stress-ng 2 s per stressor. Long
(LAYERFS_STRESS=long): fio 64 MiB files, 4 jobs; stress-ng 30 s per stressor
(LAYERFS_STRESS_SECONDS=N overrides).
"""

import json
import os
import re
import shutil
import subprocess
import time
import unittest

import harness
from harness import log

FIO_JOBS = """\
[global]
directory={directory}
ioengine=psync
verify=crc32c
verify_fatal=1
do_verify=1
fsync_on_close=1
numjobs={numjobs}
group_reporting=0

[seq-write]
rw=write
bs=64k
size={size}

[rand-write]
rw=randwrite
bs=4k
size={size}

[seq-write-small]
rw=write
bsrange=1k-32k
size=1m

[rand-write-mixed-bs]
rw=randwrite
bsrange=4k-128k
size={size}
"""

# Run one after another (--sequential 2: two instances of each), so that every stressor gets the
# mount to itself for its time and has to complete work (bogo ops > 0 is checked).
# Left out: link (hard links are EPERM), xattr (setting attributes is ENOTSUP) and fallocate
# (layerfs does not implement fallocate(2): EOPNOTSUPP, and stress-ng then does no work at all).
STRESSORS = ["hdd", "dir", "rename", "symlink", "dentry", "seek", "chmod", "filename",
             "fstat", "utime", "touch", "open", "lockf", "flock", "readahead", "sync-file"]
OPTIONS = ["--hdd-bytes", "{size}", "--hdd-opts", "wr-rnd,rd-rnd,fsync", "--seek-size", "{size}",
           "--readahead-bytes", "{size}", "--sync-file-bytes", "{size}"]
# Each of their bogo ops creates hundreds of files (one durable commit each): they need longer.
MIN_SECONDS = {"filename": 6, "symlink": 4}

FAILURE = re.compile(r"fail|error|unsuccessful|corrupt|mismatch", re.IGNORECASE)


def fio(job_file, output, *extra):
    # In the scratch directory: fio saves its verify state files (*-verify.state) in its cwd.
    result = subprocess.run(["fio", job_file, "--output-format=json", f"--output={output}", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800,
                            cwd=os.path.dirname(job_file))
    try:
        with open(output) as f:
            text = f.read()
        report = json.loads(text[text.index("{"):])
    except (OSError, ValueError):
        report = None
    return result, report


class LoadTests(unittest.TestCase):
    def setUp(self):
        reason = harness.unavailable_reason(("fio", "stress-ng"))
        if reason:
            self.skipTest(reason)

    def test_fio_verified_writes_survive_remount(self):
        size, numjobs = ("64m", 4) if harness.long_mode() else ("8m", 3)
        with harness.scratch_directory("fio") as scratch:
            store, mnt = f"{scratch}/store", f"{scratch}/mnt"
            harness.layerfs("init", store)
            job_file = f"{scratch}/jobs.fio"
            with open(job_file, "w") as f:
                f.write(FIO_JOBS.format(directory=f"{mnt}/fio", numjobs=numjobs, size=size))
            with harness.Mount(store, mnt, f"{scratch}/mount-1.log") as m:
                os.mkdir(f"{mnt}/fio")
                started = time.monotonic()
                result, report = fio(job_file, f"{scratch}/fio-1.json")
                elapsed = time.monotonic() - started
                self.assertEqual(result.returncode, 0, f"fio: {result.stdout[-3000:]}")
                self.assertIsNotNone(report, "no fio report")
                jobs = report["jobs"]
                self.assertEqual(len(jobs), 4 * numjobs)
                for job in jobs:
                    self.assertEqual(job["error"], 0, f"{job['jobname']}: error {job['error']}")
                    self.assertGreater(job["write"]["io_bytes"], 0, job["jobname"])
                    self.assertGreaterEqual(job["read"]["io_bytes"], job["write"]["io_bytes"], f"{job['jobname']}: not all written data was read back and verified")
                written = sum(j["write"]["io_bytes"] for j in jobs)
                log("fio", f"{len(jobs)} jobs ({numjobs} per pattern: seq 64k, rand 4k, seq 1k-32k, rand 4k-128k), {written / 1048576:.0f} MiB written and verified (crc32c) in {elapsed:.1f} s")
                status = harness.proc_status(m.pid)
                log("fio", f"daemon after fio: VmRSS {status['VmRSS']} KiB, fds {status['fds']}")
                self.assertEqual(m.stop(), 0, "the daemon's exit status")
            log("fio", "store: " + harness.verify_store(store).strip().splitlines()[2])

            # Remounted: every block checked again, read from the store.
            with harness.Mount(store, mnt, f"{scratch}/mount-2.log"):
                result, report = fio(job_file, f"{scratch}/fio-2.json", "--verify_only")
                self.assertEqual(result.returncode, 0, f"fio --verify_only after remount: {result.stdout[-3000:]}")
                verified = sum(j["read"]["io_bytes"] for j in report["jobs"])
                self.assertGreaterEqual(verified, written)
                self.assertTrue(all(j["error"] == 0 for j in report["jobs"]))
                log("fio", f"after remount: {verified / 1048576:.0f} MiB verified again, no error")

                # Negative control: one damaged block is reported.
                victim = f"{mnt}/fio/seq-write.0.0"
                with open(victim, "r+b") as f:
                    f.seek(64 << 10)
                    f.write(b"\0" * 4096)
                one = f"{scratch}/one.fio"
                with open(one, "w") as f:
                    f.write(FIO_JOBS.format(directory=f"{mnt}/fio", numjobs=1, size=size).split("[rand-write]")[0])
                result, report = fio(one, f"{scratch}/fio-3.json", "--verify_only")
                damaged = result.returncode != 0 or any(j["error"] != 0 for j in (report or {"jobs": []})["jobs"])
                self.assertTrue(damaged, "fio did not notice a damaged block: the check cannot fail")
                log("fio", "negative control: a zeroed 4 KiB block in seq-write.0.0 is reported by fio")
            harness.verify_store(store)
            harness.assert_nothing_left(scratch)

    def test_stress_ng_filesystem_stressors(self):
        seconds = int(os.environ.get("LAYERFS_STRESS_SECONDS") or (30 if harness.long_mode() else 2))
        size = "64m" if harness.long_mode() else "16m"
        with harness.scratch_directory("stress") as scratch:
            store, mnt = f"{scratch}/store", f"{scratch}/mnt"
            harness.layerfs("init", store)
            with harness.Mount(store, mnt, f"{scratch}/mount-1.log") as m:
                os.mkdir(f"{mnt}/stress")
                before = harness.proc_status(m.pid)
                started = time.monotonic()
                figures = []
                for stressor in STRESSORS:
                    duration = max(seconds, MIN_SECONDS.get(stressor, 0))
                    log_file = f"{scratch}/stress-ng-{stressor}.log"
                    args = ["stress-ng", f"--{stressor}", "2"] + [a.format(size=size) for a in OPTIONS] + [
                        "--timeout", f"{duration}s", "--temp-path", f"{mnt}/stress", "--verify", "--metrics-brief",
                        "--log-file", log_file]
                    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=duration * 5 + 120)
                    with open(log_file) as f:
                        text = f.read()
                    lines = text.splitlines() + result.stdout.splitlines()
                    bad = [line for line in lines if FAILURE.search(line) or "skipping" in line]
                    self.assertEqual(bad, [], f"stress-ng --{stressor} reported failures (exit {result.returncode})")
                    self.assertTrue(any("successful run completed" in line for line in lines),
                                    f"stress-ng --{stressor} did not complete (exit {result.returncode}): {text[-3000:]}")
                    ops = [int(match.group(1)) for line in text.splitlines()
                           if (match := re.search(rf"metrc: \[\d+\] {re.escape(stressor)} +(\d+) ", line))]
                    self.assertTrue(ops and ops[0] > 0, f"stress-ng --{stressor} did no work in {duration} s: {text[-2000:]}")
                    figures.append(f"{stressor} {ops[0]}")
                    self.assertIsNone(m.process.poll(), f"the daemon died under stress-ng --{stressor}")
                elapsed = time.monotonic() - started
                after = harness.proc_status(m.pid)
                # Still serving.
                with open(f"{mnt}/after", "w") as f:
                    f.write("after the load\n")
                with open(f"{mnt}/after") as f:
                    self.assertEqual(f.read(), "after the load\n")
                self.assertEqual(os.listdir(f"{mnt}/stress"), [], "stress-ng left files behind")
                log("stress-ng", f"{len(STRESSORS)} stressors, 2 instances each, {seconds} s each, --verify; logs clean ({elapsed:.0f} s in all); bogo ops: {', '.join(figures)}")
                log("stress-ng", f"daemon: VmRSS {before['VmRSS']} -> {after['VmRSS']} KiB, fds {before['fds']} -> {after['fds']}")
                self.assertEqual(m.stop(), 0, "the daemon's exit status")
            started = time.monotonic()
            summary = harness.verify_store(store).strip().splitlines()
            log("stress-ng", f"verify OK in {time.monotonic() - started:.1f} s: {summary[2]}")
            harness.assert_nothing_left(scratch)


if __name__ == "__main__":
    unittest.main(verbosity=2)
