// `commit`: group commit throughput and single-writer latency.
//
// Per file system (the disk under --dir, and a loop-mounted btrfs when root):
//   1. latency: one writer commits `.write` of 180-220 bytes to one file, timing each commit;
//      interleaved commit by commit with the baseline: the very same line bytes (read back from
//      events.jsonl) written with write(2) to an O_APPEND file in the store's directory, each
//      followed by fdatasync(2); plus a diagnostic variant that also rewrites a head-like file.
//   2. throughput: 1, 2 and 8 writer threads, each committing to its own file for a fixed time
//      split into interleaved rounds (1, 2, 8, 1, 2, 8, ...); appends/s, fdatasync calls
//      (Store.syncStatistics) per commit, latency percentiles, the 8/1 and 2/1 ratios.
// The store is opened with SealPolicy.manual: this measures the commit path only.

#if canImport(Glibc)
import Glibc
#endif
import LayerCore

enum CommitBench {
    /// Parent side: one child per file system.
    static func run(_ o: BenchOptions) throws {
        heading("commit: group commit (appends/s with 1, 2, 8 writers) and single-writer latency")
        note("store opened with SealPolicy.manual; each commit is a .write of 180-220 bytes of text;")
        note("\(fixed(o.commitSeconds, 1)) s per writer count in \(o.commitRounds) interleaved rounds; latency: \(o.latencyRounds * o.latencyPerRound) commits, each followed by its baseline")
        let directory = try makeTemporaryDirectory(in: o.base, prefix: "layerfs-bench-commit-")
        defer { removeTree(directory) }
        let status = try runSelf(["_commit-fs", directory, "disk"] + o.childArguments)
        exitIfSignalled()
        var failed: [String] = []
        if status != 0 { failed.append("the disk run failed (status \(status))") }

        if o.noBtrfs {
            note("btrfs: skipped (--no-btrfs)")
        } else if let reason = LoopBtrfs.unavailableReason {
            note("btrfs: skipped (\(reason))")
        } else {
            let status = try LoopBtrfs.with(base: o.base, sizeMiB: 2048) { mount in
                try runSelf(["_commit-fs", mount, "btrfs"] + o.childArguments)
            }
            if status != 0 { failed.append("the btrfs run failed (status \(status))") }
        }
        if !failed.isEmpty { throw fail(failed.joined(separator: "; ")) }
    }

    /// One writer's results.
    final class Slot: @unchecked Sendable {
        var latencies: [UInt64] = []
        var error: String?
        init() { latencies.reserveCapacity(1 << 16) }
    }

    /// Child side: everything on the file system holding `directory`.
    static func runOn(directory: String, label: String, _ o: BenchOptions) throws {
        let fsType = fileSystemType(directory)
        print("")
        print("-- \(label): \(fsType) at \(directory) --")
        if fsType == "tmpfs" { note("WARNING: tmpfs is not a disk; fdatasync is free here. Use --dir on a real disk.") }
        let storePath = directory + "/store"
        try createStore(at: storePath)
        let store = try Store.open(storePath, mode: .readWrite, options: quietOptions(.manual))
        defer { try? store.close() }

        try latency(store: store, storePath: storePath, o)
        try throughput(store: store, o)
    }

    // MARK: Latency

    static func latency(store: Store, storePath: String, _ o: BenchOptions) throws {
        let maker = ConfigText(seed: 7)
        var rng = SplitMix64(seed: 11)
        let logPath = storePath + "/events.jsonl"
        // The baseline files live in the store's own directory (on btrfs: the same subvolume,
        // hence the same log tree) and are removed afterwards.
        let baselinePath = storePath + "/bench-baseline.log"
        let fd = try openAppend(baselinePath)
        defer { close(fd); unlink(baselinePath) }
        let mimicPath = storePath + "/bench-mimic.log"
        let mimicHeadPath = storePath + "/bench-mimic-head"
        let mimicFD = try openAppend(mimicPath)
        let mimicHeadFD = open(mimicHeadPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard mimicHeadFD >= 0 else { throw fail("open \(mimicHeadPath): \(errnoText())") }
        defer { close(mimicFD); close(mimicHeadFD); unlink(mimicPath); unlink(mimicHeadPath) }
        let headBytes = [UInt8](repeating: UInt8(ascii: "0"), count: 85) + [10]
        let logFD = open(logPath, O_RDONLY | O_CLOEXEC)
        guard logFD >= 0 else { throw fail("open \(logPath): \(errnoText())") }
        defer { close(logFD) }

        var revision: UInt64 = 0
        func nextContent() -> [UInt8] {
            revision += 1
            return maker.make(name: "/lat.conf", revision: revision, length: 180 + Int(rng.next() % 41), rng: &rng)
        }
        // Warm up both paths (file creation, first allocations).
        for _ in 0..<20 { try store.commit(.write(path: "/lat.conf", content: nextContent()), by: benchProvenance) }
        for _ in 0..<20 {
            for f in [fd, mimicFD] {
                try writeAll(f, Array(repeating: UInt8(ascii: "x"), count: 399) + [10])
                fdatasync(f)
            }
        }

        var storeSamples: [UInt64] = []
        var baseSamples: [UInt64] = []
        var mimicSamples: [UInt64] = []
        var lineSizes: [Int] = []
        let before = store.syncStatistics
        var commits = 0
        // Interleaved commit by commit: each commit, then its exact line through the baseline,
        // then through the mimic, so all three see the disk in the same state.
        var logEnd = fileSize(logPath)
        for _ in 0..<(o.latencyRounds * o.latencyPerRound) {
            let content = nextContent()
            let t0 = nowNanoseconds()
            let seq = try store.commit(.write(path: "/lat.conf", content: content), by: benchProvenance)
            let t1 = nowNanoseconds()
            if seq != nil { commits += 1 }
            storeSamples.append(t1 - t0)

            // The exact line just appended.
            let end = fileSize(logPath)
            var line = [UInt8](repeating: 0, count: Int(end - logEnd))
            let n = line.withUnsafeMutableBytes { pread(logFD, $0.baseAddress, $0.count, off_t(logEnd)) }
            guard n == line.count, line.last == 10 else { throw fail("could not read back the line appended to events.jsonl") }
            logEnd = end
            lineSizes.append(line.count)
            try line.withUnsafeBytes { b in
                let t0 = nowNanoseconds()
                try writeAll(fd, b)
                guard fdatasync(fd) == 0 else { throw fail("fdatasync: \(errnoText())") }
                let t1 = nowNanoseconds()
                baseSamples.append(t1 - t0)
            }
            // The store's I/O without its CPU: append + fdatasync + the in-place rewrite of the
            // 86-byte head file that the group-commit leader does after each sync.
            try line.withUnsafeBytes { b in
                let t0 = nowNanoseconds()
                try writeAll(mimicFD, b)
                guard fdatasync(mimicFD) == 0 else { throw fail("fdatasync: \(errnoText())") }
                _ = headBytes.withUnsafeBytes { pwrite(mimicHeadFD, $0.baseAddress, $0.count, 0) }
                let t1 = nowNanoseconds()
                mimicSamples.append(t1 - t0)
            }
        }
        let after = store.syncStatistics
        let s = Summary(storeSamples)
        let b = Summary(baseSamples)
        let m = Summary(mimicSamples)
        let syncs = after.syncs - before.syncs

        print("")
        note("single-writer latency (\(s.count) commits; line sizes \(lineSizes.min() ?? 0)-\(lineSizes.max() ?? 0) bytes, mean \(lineSizes.isEmpty ? 0 : lineSizes.reduce(0, +) / lineSizes.count)):")
        var t = Table(["", "median us", "p99 us", "mean us", "max us"])
        t.add(["Store.commit", us(s.median), us(s.p99), us(s.mean), us(s.max)])
        t.add(["write(2)+fdatasync (same lines, O_APPEND)", us(b.median), us(b.p99), us(b.mean), us(b.max)])
        t.add(["ratio commit / baseline", ratio(s.median, b.median), ratio(s.p99, b.p99), ratio(s.mean, b.mean), ""])
        t.add(["(diagnostic) baseline + 86-byte pwrite of a head file", us(m.median), us(m.p99), us(m.mean), us(m.max)])
        t.print()
        note("fdatasync calls: \(syncs) for \(commits) commits")
        note("target: median ratio <= 1.2x: \(fixed(s.median / b.median, 2))x \(verdict(s.median / b.median <= 1.2))")
    }

    // MARK: Throughput

    /// Runs `writers` threads committing for `duration` ns; returns (commits, seconds, syncs, latencies).
    static func timedRun(store: Store, writers: Int, duration: UInt64, round: Int) throws -> (Int, Double, UInt64, [UInt64]) {
        let slots = (0..<writers).map { _ in Slot() }
        let startLine = StartLine(parties: writers + 1)
        let deadline = Deadline()
        let before = store.syncStatistics
        var threads: [pthread_t] = []
        for w in 0..<writers {
            let slot = slots[w]
            threads.append(startThread {
                let maker = ConfigText(seed: UInt64(100 + w))
                var rng = SplitMix64(seed: UInt64(1000 * round + w))
                let path = "/writer-\(w).conf"
                var revision = UInt64(round) << 32
                startLine.wait()
                let end = deadline.value
                while nowNanoseconds() < end {
                    revision += 1
                    let content = maker.make(name: path, revision: revision, length: 180 + Int(rng.next() % 41), rng: &rng)
                    let t0 = nowNanoseconds()
                    do {
                        try store.commit(.write(path: path, content: content), by: benchProvenance)
                    } catch {
                        slot.error = "\(error)"
                        return
                    }
                    slot.latencies.append(nowNanoseconds() - t0)
                }
            })
        }
        let t0 = nowNanoseconds()
        deadline.value = t0 + duration  // published to the writers by the barrier
        startLine.wait()
        for t in threads { joinThread(t) }
        let elapsed = Double(nowNanoseconds() - t0) / 1e9
        let after = store.syncStatistics
        if let e = slots.compactMap(\.error).first { throw fail("a writer failed: \(e)") }
        let all = slots.flatMap(\.latencies)
        return (all.count, elapsed, after.syncs - before.syncs, all)
    }

    /// 1, 2 and 8 writers, interleaved in rounds (1, 2, 8, 1, 2, 8, ...) so that drift in the
    /// disk's speed hits every writer count alike.
    static func throughput(store: Store, _ o: BenchOptions) throws {
        let counts = o.writers
        let rounds = o.commitRounds
        let duration = UInt64(o.commitSeconds / Double(rounds) * 1e9)
        var commits = [Int](repeating: 0, count: counts.count)
        var seconds = [Double](repeating: 0, count: counts.count)
        var syncs = [UInt64](repeating: 0, count: counts.count)
        var latencies = [[UInt64]](repeating: [], count: counts.count)
        var perRound = [[Double]](repeating: [], count: counts.count)
        for round in 0..<rounds {
            for (k, writers) in counts.enumerated() {
                let (c, s, y, l) = try timedRun(store: store, writers: writers, duration: duration, round: round)
                commits[k] += c
                seconds[k] += s
                syncs[k] += y
                latencies[k] += l
                perRound[k].append(Double(c) / s)
            }
        }
        let rows = counts.indices.map { k in
            (writers: counts[k], commits: commits[k], seconds: seconds[k], syncs: syncs[k], lat: Summary(latencies[k]), rounds: perRound[k])
        }
        print("")
        note("group commit throughput (each writer commits to its own file; \(rounds) interleaved rounds per writer count):")
        var t = Table(["writers", "commits", "seconds", "appends/s", "rounds min-max", "fdatasyncs", "commits/fdatasync", "median us", "p99 us"])
        for r in rows {
            t.add([
                String(r.writers), grouped(r.commits), fixed(r.seconds, 2), fixed(Double(r.commits) / r.seconds, 0),
                fixed(r.rounds.min() ?? 0, 0) + "-" + fixed(r.rounds.max() ?? 0, 0),
                grouped(Int(r.syncs)), fixed(Double(r.commits) / Double(max(r.syncs, 1)), 2), us(r.lat.median), us(r.lat.p99),
            ])
        }
        t.print()
        let rate = rows.map { Double($0.commits) / $0.seconds }
        // Each round runs 1, 2, 8 writers back to back: the ratio within a round is immune to
        // slow drift of the disk; the median over rounds resists bursts of outside load.
        func pairedMedian(_ k: Int) -> Double {
            let r = (0..<rounds).map { perRound[k][$0] / perRound[0][$0] }.sorted()
            return r.count % 2 == 1 ? r[r.count / 2] : (r[r.count / 2 - 1] + r[r.count / 2]) / 2
        }
        for k in counts.indices.dropFirst() {
            let label = "ratio \(counts[k])/\(counts[0]) writers: \(fixed(rate[k] / rate[0], 2))x overall, \(fixed(pairedMedian(k), 2))x median of per-round ratios"
            if counts[k] == 8 && counts[0] == 1 {
                note(label + " (target >= 4x: \(verdict(pairedMedian(k) >= 4)))")
            } else {
                note(label)
            }
        }
    }
}
