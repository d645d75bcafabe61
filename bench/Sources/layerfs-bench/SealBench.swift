// `seal`: sealing does not stall writers.
//
// Per file system (a loop-mounted btrfs when root, where the store is a subvolume and every seal
// takes a read-only snapshot; and the plain disk, where blocks are logical only): 4 writer threads
// commit continuously for a fixed time, twice, each time on a fresh store:
//   baseline  SealPolicy.manual: no seals at all;
//   sealing   SealPolicy(everyEvents: 200): the store seals in the background every 200 events.
// Per-commit latency p50/p99/max, blocks sealed, snapshots made. Then seal() alone, timed on a
// quiet store, to show what one seal costs.

#if canImport(Glibc)
import Glibc
#endif
import LayerCore

enum SealBench {
    static let writers = 4
    static let everyEvents: UInt64 = 200

    static func run(_ o: BenchOptions) throws {
        heading("seal: commit latency with background seals (every \(everyEvents) events) vs none")
        note("\(writers) writers commit continuously, \(fixed(o.sealSeconds, 1)) s in all per policy, in \(o.quick ? 1 : 2) alternating run(s) on fresh stores")
        var failed: [String] = []
        if o.noBtrfs {
            note("btrfs: skipped (--no-btrfs)")
        } else if let reason = LoopBtrfs.unavailableReason {
            note("btrfs: skipped (\(reason)); seals with real snapshots need a loop-mounted btrfs")
        } else {
            let status = try LoopBtrfs.with(base: o.base, sizeMiB: 4096) { mount in
                try runSelf(["_seal-fs", mount, "btrfs (store is a subvolume: seals take snapshots)"] + o.childArguments)
            }
            if status != 0 { failed.append("the btrfs run failed (status \(status))") }
        }
        let directory = try makeTemporaryDirectory(in: o.base, prefix: "layerfs-bench-seal-")
        defer { removeTree(directory) }
        let status = try runSelf(["_seal-fs", directory, "disk (logical blocks, no snapshots)"] + o.childArguments)
        exitIfSignalled()
        if status != 0 { failed.append("the disk run failed (status \(status))") }
        if !failed.isEmpty { throw fail(failed.joined(separator: "; ")) }
    }

    struct RunResult {
        var samples: [UInt64]
        var commits: Int
        var seconds: Double
        var latency: Summary
        var over50ms: Int
        var blocks: Int
        var snapshots: Int
        var subvolume: Bool

        func merged(with o: RunResult) -> RunResult {
            let all = samples + o.samples
            return RunResult(
                samples: all, commits: commits + o.commits, seconds: seconds + o.seconds, latency: Summary(all),
                over50ms: over50ms + o.over50ms, blocks: blocks + o.blocks, snapshots: snapshots + o.snapshots,
                subvolume: subvolume && o.subvolume)
        }
    }

    static func runOn(directory: String, label: String, _ o: BenchOptions) throws {
        let fsType = fileSystemType(directory)
        print("")
        print("-- \(label): \(fsType) at \(directory) --")
        // Alternate baseline and sealing runs (fresh store each) so that neither always runs on a
        // younger file system.
        let rounds = o.quick ? 1 : 2
        var baseline: RunResult?
        var sealing: RunResult?
        for round in 0..<rounds {
            let b = try measure(storePath: directory + "/store-baseline-\(round)", policy: .manual, seconds: o.sealSeconds / Double(rounds))
            let s = try measure(
                storePath: directory + "/store-sealing-\(round)",
                policy: SealPolicy(everyEvents: everyEvents, everySeconds: nil, onClose: false), seconds: o.sealSeconds / Double(rounds))
            baseline = baseline.map { $0.merged(with: b) } ?? b
            sealing = sealing.map { $0.merged(with: s) } ?? s
        }
        guard let baseline, let sealing else { return }
        var t = Table(["run", "commits", "commits/s", "p50 us", "p99 us", "max ms", "> 50 ms", "blocks", "snapshots"])
        for (name, r) in [("baseline (SealPolicy.manual)", baseline), ("sealing (everyEvents: \(everyEvents))", sealing)] {
            t.add([
                name, grouped(r.commits), fixed(Double(r.commits) / r.seconds, 0), us(r.latency.median), us(r.latency.p99),
                ms(r.latency.max), String(r.over50ms), String(r.blocks), String(r.snapshots),
            ])
        }
        t.add(["ratio sealing / baseline", "", ratio(Double(sealing.commits) / sealing.seconds, Double(baseline.commits) / baseline.seconds),
               ratio(sealing.latency.median, baseline.latency.median), ratio(sealing.latency.p99, baseline.latency.p99),
               ratio(sealing.latency.max, baseline.latency.max), "", "", ""])
        t.print()
        if !sealing.subvolume && fsType == "btrfs" { note("WARNING: the store is not a subvolume: no snapshots were taken") }
        note("target: p99 with sealing <= 50 ms: \(ms(sealing.latency.p99)) ms \(verdict(sealing.latency.p99 <= 50e6))")
        try sealAlone(storePath: directory + "/store-seal-alone", rounds: o.quick ? 3 : 10)
    }

    static func measure(storePath: String, policy: SealPolicy, seconds: Double) throws -> RunResult {
        try createStore(at: storePath)
        let store = try Store.open(storePath, mode: .readWrite, options: quietOptions(policy))
        let slots = (0..<writers).map { _ in CommitBench.Slot() }
        let startLine = StartLine(parties: writers + 1)
        let deadline = Deadline()
        var threads: [pthread_t] = []
        for w in 0..<writers {
            let slot = slots[w]
            threads.append(startThread {
                let maker = ConfigText(seed: UInt64(200 + w))
                var rng = SplitMix64(seed: UInt64(2000 + w))
                let path = "/writer-\(w).conf"
                var revision: UInt64 = 0
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
        deadline.value = t0 + UInt64(seconds * 1e9)
        startLine.wait()
        for t in threads { joinThread(t) }
        let elapsed = Double(nowNanoseconds() - t0) / 1e9
        // Let a seal still running in the background finish before counting.
        usleep(200_000)
        let blocks = store.blocks.count
        let snapshots = (try? listDirectory(Store.snapshotsPath(storePath)).count) ?? 0
        let subvolume = store.isBtrfsSubvolume
        try store.close()
        if let e = slots.compactMap(\.error).first { throw fail("a writer failed: \(e)") }
        let all = slots.flatMap(\.latencies)
        return RunResult(
            samples: all, commits: all.count, seconds: elapsed, latency: Summary(all), over50ms: all.filter { $0 > 50_000_000 }.count,
            blocks: blocks, snapshots: snapshots, subvolume: subvolume)
    }

    /// What one seal costs on its own: commit 200 events, then time seal() (blocks.jsonl append +
    /// fdatasync, and the snapshot on btrfs).
    static func sealAlone(storePath: String, rounds: Int) throws {
        try createStore(at: storePath)
        let store = try Store.open(storePath, mode: .readWrite, options: quietOptions(.manual))
        defer { try? store.close() }
        let maker = ConfigText(seed: 3)
        var rng = SplitMix64(seed: 5)
        var samples: [UInt64] = []
        var revision: UInt64 = 0
        for _ in 0..<rounds {
            for _ in 0..<Int(everyEvents) {
                revision += 1
                let content = maker.make(name: "/x.conf", revision: revision, length: 200, rng: &rng)
                try store.commit(.write(path: "/x.conf", content: content), by: benchProvenance)
            }
            let t0 = nowNanoseconds()
            try store.seal()
            samples.append(nowNanoseconds() - t0)
        }
        let s = Summary(samples)
        note("seal() alone on a quiet store (\(rounds) seals of \(everyEvents) events): median \(ms(s.median)) ms, max \(ms(s.max)) ms")
    }
}

/// Names in a directory (not . or ..).
func listDirectory(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw fail("opendir \(path): \(errnoText())") }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
