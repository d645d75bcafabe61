// `state`: time travel at scale.
//
// For each log size (10k, 100k, 1M events over 10k elements: /etc/svc-NN/elem-MMMM.conf, 100
// directories x 100 files), a store is generated directly: events.jsonl written line by line with
// EventCodec.seal (a valid chain, times spread over 30 days), an empty blocks.jsonl, objects/,
// metadata/current_hash. Then, in a fresh child process (so its RSS holds nothing but the store):
//   - Store.open read-only, timed (it reads and verifies the whole log: warm page cache);
//   - VmRSS before and after the open -> bytes per event;
//   - queries at random past times: sequence(at:) + list of a random directory + stat and read of
//     a file listed there, at that sequence number; median and p99.

#if canImport(Glibc)
import Glibc
#endif
import LayerCore

enum StateBench {
    static let directories = 100
    static let filesPerDirectory = 100
    static var elements: Int { directories * filesPerDirectory }

    struct Generated {
        var events: Int
        var bytes: UInt64
        var seconds: Double
        var headHash: Digest
        var counts: [String: Int]
    }

    // MARK: Parent

    static func run(_ o: BenchOptions) throws {
        heading("state: time travel at scale (open, memory, queries at random past times)")
        note("elements: \(directories) directories x \(filesPerDirectory) files (/etc/svc-NN/elem-MMMM.conf), text 100-400 bytes;")
        note("after the first \(elements + directories + 2) events (genesis, mkdirs, creates): ~96% rewrites, 1.5% chmod, ~0.7% rename to .old,")
        note("~0.6% unlink of a .old, 1.2% unlink (the name comes back with a later rewrite): ~100 entries per directory at every size;")
        note("times spread over 30 days. Each size is opened read-only in a fresh child process (warm page cache).")
        note("query = sequence(at: random time) + list(random dir, at:) + stat + read of a file listed there; \(o.stateQueries) queries after 50 warm-up ones")
        let directory = try makeTemporaryDirectory(in: o.base, prefix: "layerfs-bench-state-")
        defer { removeTree(directory) }

        struct Row {
            var events: Int
            var gen: Generated
            var r: [String: String]
        }
        var rows: [Row] = []
        var failed: [String] = []
        for size in o.stateSizes {
            let storePath = directory + "/store-\(size)"
            let gen = try generate(at: storePath, events: size, seed: UInt64(size))
            note("generated \(grouped(size)) events (\(bytesText(Double(gen.bytes)))) in \(fixed(gen.seconds, 2)) s")
            let child = try runSelfCapturing(["_state-query", storePath, String(o.stateQueries), String(size &* 31 &+ 7)])
            exitIfSignalled()
            var r: [String: String] = [:]
            for line in child.output.split(separator: "\n") {
                if line.hasPrefix("RESULT ") {
                    for pair in line.dropFirst(7).split(separator: " ") {
                        let kv = pair.split(separator: "=", maxSplits: 1)
                        if kv.count == 2 { r[String(kv[0])] = String(kv[1]) }
                    }
                } else {
                    note("child: \(line)")
                }
            }
            if !child.ok || r["error"] != nil || r["open_ns"] == nil {
                failed.append("size \(size) failed")
                note("size \(size): Store.open or the queries FAILED (status \(child.status)): \(r["error"] ?? "no result")")
            } else if r["head"] != String(size - 1) || r["head_hash"] != gen.headHash.hex {
                failed.append("size \(size): wrong head")
                note("size \(size): Store.open accepted the store but its head is \(r["head"] ?? "?") (expected \(size - 1))")
            }
            rows.append(Row(events: size, gen: gen, r: r))
            removeTree(storePath)
        }

        func d(_ row: Row, _ key: String) -> Double { Double(row.r[key] ?? "") ?? .nan }

        print("")
        note("open and memory:")
        var t = Table(["events", "log size", "generate s", "Store.open s", "open MB/s", "RSS before", "RSS after", "bytes/event", "peak RSS", "accepted"])
        for row in rows {
            let delta = d(row, "rss_after") - d(row, "rss_before")
            t.add([
                grouped(row.events), bytesText(Double(row.gen.bytes)), fixed(row.gen.seconds, 2), fixed(d(row, "open_ns") / 1e9, 3),
                fixed(Double(row.gen.bytes) / (d(row, "open_ns") / 1e9) / 1e6, 0),
                bytesText(d(row, "rss_before")), bytesText(d(row, "rss_after")), fixed(delta / Double(row.events), 0),
                bytesText(d(row, "hwm")), row.r["head_hash"] == row.gen.headHash.hex ? "yes" : "NO",
            ])
        }
        t.print()

        print("")
        note("queries at random past times (microseconds):")
        var q = Table([
            "events", "queries", "median", "p99", "max", "seq(at:) med", "list med", "stat+read med", "entries/list",
            "no dir yet", "full dirs: n", "median", "p99",
        ])
        for row in rows {
            q.add([
                grouped(row.events), row.r["queries"] ?? "-", us(d(row, "median")), us(d(row, "p99")), us(d(row, "max")),
                us(d(row, "seq_median"), 2), us(d(row, "list_median")), us(d(row, "read_median")), row.r["entries"] ?? "-",
                row.r["misses"] ?? "-", row.r["full_count"] ?? "-", us(d(row, "full_median")), us(d(row, "full_p99")),
            ])
        }
        q.print()

        if let first = rows.first, let last = rows.last, rows.count > 1 {
            verdicts(first: first.r, last: last.r, firstEvents: first.events, lastEvents: last.events)
        }
        if let big = rows.first(where: { $0.events == 1_000_000 }) {
            let delta = d(big, "rss_after") - d(big, "rss_before")
            note("target at 1M: query median <= 2 ms: \(ms(d(big, "median"), 3)) ms \(verdict(d(big, "median") <= 2e6))")
            note("target at 1M: Store.open <= 5 s: \(fixed(d(big, "open_ns") / 1e9, 2)) s \(verdict(d(big, "open_ns") <= 5e9))")
            let perEvent = delta / Double(big.events)
            note("target at 1M: <= 200 bytes/event: \(fixed(perEvent, 0)) bytes/event \(verdict(perEvent <= 200))")
        } else {
            note("(the 1M targets are checked only when 1,000,000 is among the sizes; --quick stops at 100k)")
        }
        if !failed.isEmpty { throw fail(failed.joined(separator: "; ")) }
    }

    static func verdicts(first: [String: String], last: [String: String], firstEvents: Int, lastEvents: Int) {
        func d(_ r: [String: String], _ key: String) -> Double { Double(r[key] ?? "") ?? .nan }
        let label = "\(lastEvents / 1000)k/\(firstEvents / 1000)k"
        note("ratio \(label) query median: \(ratio(d(last, "median"), d(first, "median"))) (target <= 1.5x: \(verdict(d(last, "median") / d(first, "median") <= 1.5)))")
        note("ratio \(label) query p99:    \(ratio(d(last, "p99"), d(first, "p99")))")
        note("ratio \(label) query median, directories with >= 90 entries only (same tree shape): \(ratio(d(last, "full_median"), d(first, "full_median")))")
        note("(the \(grouped(firstEvents))-event log is mostly its own population: its directories hold \(first["entries"] ?? "?") entries on average")
        note(" at a random time, against ~100 later; list cost grows with entries, so the plain ratio mixes log size and tree size)")
    }

    // MARK: Generating a store

    /// Writes a valid store of `events` events at `path` (exactly the layout Store.create makes,
    /// on a plain directory).
    static func generate(at path: String, events total: Int, seed: UInt64) throws -> Generated {
        let started = nowNanoseconds()
        for dir in [path, path + "/metadata", path + "/objects"] {
            guard mkdir(dir, 0o755) == 0 else { throw fail("mkdir \(dir): \(errnoText())") }
        }
        var rng = SplitMix64(seed: seed)
        let text = ConfigText(seed: seed ^ 0x5EED)
        let writer = try BufferedWriter(path: path + "/events.jsonl")

        let dayNs: Int64 = 86_400 * 1_000_000_000
        let end = Timestamp.now().nanoseconds - dayNs
        let start = end - 30 * dayNs
        let meanGap = UInt64((end - start) / Int64(total))
        var time = start
        var previous = Digest.zero
        var seq: UInt64 = 0
        var counts: [String: Int] = [:]

        let people = [
            Provenance(uid: 0, gid: 0, pid: 1, process: "systemd"),
            Provenance(uid: 0, gid: 0, pid: 2211, process: "ansible-playbook"),
            Provenance(uid: 1000, gid: 1000, pid: 4242, process: "vim"),
            Provenance(uid: 1001, gid: 1001, pid: 5150, process: "nano"),
        ]

        func emit(_ op: Operation, path p: String, to: String? = nil, mode: UInt32? = nil, content: [UInt8]? = nil) throws {
            var who = people[Int(rng.next() % UInt64(people.count))]
            who.pid += Int32(rng.next() % 1000)
            var event = Event(
                seq: seq, time: Timestamp(nanoseconds: time), operation: op, path: p, destination: to, mode: mode,
                size: content.map { UInt64($0.count) }, content: content.map { .inline($0) },
                provenance: who, previousHash: previous)
            let line = EventCodec.seal(&event)
            try writer.append(line)
            previous = event.hash
            counts[op.rawValue, default: 0] += 1
            seq += 1
            time += Int64(rng.next() % (2 * meanGap + 1))
        }

        // Genesis.
        var genesis = Event(
            seq: 0, time: Timestamp(nanoseconds: time), operation: .genesis,
            storeID: "00000000-0000-4000-8000-" + padded(Int(seed % 1_000_000_000_000), 12),
            format: Event.formatName, provenance: people[0], previousHash: .zero)
        try writer.append(EventCodec.seal(&genesis))
        previous = genesis.hash
        seq = 1
        counts["genesis"] = 1

        func dirName(_ d: Int) -> String { "/etc/svc-" + padded(d, 2) }
        let names: [String] = (0..<elements).map { e in
            dirName(e % directories) + "/elem-" + padded(e, 4) + ".conf"
        }
        var live = [Bool](repeating: false, count: elements)
        var old = [Bool](repeating: false, count: elements)
        var modes = [UInt32](repeating: 0o644, count: elements)
        var revisions = [UInt64](repeating: 0, count: elements)

        func write(_ e: Int) throws {
            revisions[e] += 1
            let content = text.make(name: names[e], revision: revisions[e], length: 100 + Int(rng.next() % 301), rng: &rng)
            if !live[e] { modes[e] = 0o644 }
            live[e] = true
            try emit(.write, path: names[e], mode: modes[e], content: content)
        }

        // Population: /etc, the directories, then every element once (round robin over directories).
        if Int(seq) < total { try emit(.mkdir, path: "/etc", mode: 0o755) }
        for d in 0..<directories where Int(seq) < total { try emit(.mkdir, path: dirName(d), mode: 0o755) }
        for e in 0..<elements where Int(seq) < total { try write(e) }

        // History. Renames park a file as <name>.old (the name is re-created by a later write);
        // .old files are unlinked again so that directories keep ~100 entries at every log size.
        var parked: [Int] = []
        while Int(seq) < total {
            let e = Int(rng.next() % UInt64(elements))
            let r = rng.next() % 1000
            if r >= 975, r < 988, !parked.isEmpty, parked.count >= 100 || r >= 982 {
                let k = Int(rng.next() % UInt64(parked.count))
                parked.swapAt(k, parked.count - 1)
                let gone = parked.removeLast()
                old[gone] = false
                try emit(.unlink, path: names[gone] + ".old")
            } else if r < 960 || !live[e] {
                try write(e)
            } else if r < 975 {
                modes[e] = modes[e] == 0o644 ? 0o640 : 0o644
                try emit(.chmod, path: names[e], mode: modes[e])
            } else if r < 988 {
                live[e] = false
                if !old[e] { parked.append(e) }
                old[e] = true
                try emit(.rename, path: names[e], to: names[e] + ".old")
            } else {
                live[e] = false
                try emit(.unlink, path: names[e])
            }
        }
        try writer.finish()

        // blocks.jsonl (empty) and the head: <64 hex> <seq as 20 digits>\n.
        let blocks = open(path + "/blocks.jsonl", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard blocks >= 0 else { throw fail("create blocks.jsonl: \(errnoText())") }
        close(blocks)
        let head = open(path + "/metadata/current_hash", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard head >= 0 else { throw fail("create current_hash: \(errnoText())") }
        defer { close(head) }
        try writeAll(head, Array((previous.hex + " " + padded(Int(seq - 1), 20) + "\n").utf8))

        return Generated(
            events: Int(seq), bytes: fileSize(path + "/events.jsonl"),
            seconds: Double(nowNanoseconds() - started) / 1e9, headHash: previous, counts: counts)
    }

    /// Appends through a 4 MiB buffer.
    final class BufferedWriter {
        let fd: Int32
        var buffer: [UInt8] = []

        init(path: String) throws {
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw fail("create \(path): \(errnoText())") }
            buffer.reserveCapacity(4 << 20)
        }

        func append(_ bytes: [UInt8]) throws {
            buffer.append(contentsOf: bytes)
            if buffer.count >= 4 << 20 { try flush() }
        }

        func flush() throws {
            try writeAll(fd, buffer)
            buffer.removeAll(keepingCapacity: true)
        }

        func finish() throws {
            try flush()
            close(fd)
        }
    }

    // MARK: Child

    /// In a fresh process: open the store read-only and run the queries; prints one RESULT line.
    static func query(storePath: String, queries: Int, seed: UInt64) {
        let rssBefore = procStatusBytes("VmRSS")
        let t0 = nowNanoseconds()
        let store: Store
        do {
            store = try Store.open(storePath, mode: .readOnly, options: quietOptions(.manual))
        } catch {
            print("RESULT error=\("\(error)".split(separator: " ").joined(separator: "_"))")
            return
        }
        let openNs = nowNanoseconds() - t0
        let rssAfter = procStatusBytes("VmRSS")
        let hwm = procStatusBytes("VmHWM")

        do {
            let head = store.headSequence
            let first = try store.time(ofSequence: 0).nanoseconds
            let last = try store.time(ofSequence: head).nanoseconds
            var rng = SplitMix64(seed: seed)
            var total: [UInt64] = [], seqAt: [UInt64] = [], list: [UInt64] = [], read: [UInt64] = []
            // Queries whose directory held >= 90 entries: the same tree shape at every log size.
            var full: [UInt64] = []
            var entries = 0, misses = 0, listed = 0
            for i in 0..<(queries + 50) {
                let t = Timestamp(nanoseconds: first + Int64(rng.next() % UInt64(last - first + 1)))
                let dir = "/etc/svc-" + padded(Int(rng.next() % UInt64(directories)), 2)
                let pick = rng.next()
                let a = nowNanoseconds()
                let seq = try store.sequence(at: t)
                let b = nowNanoseconds()
                var c = b, d = b
                var lastListing = 0
                if let listing = try? store.list(dir, at: seq) {
                    c = nowNanoseconds()
                    lastListing = listing.count
                    let files = listing.filter { $0.info.kind == .file }
                    if !files.isEmpty {
                        let name = files[Int(pick % UInt64(files.count))].name
                        let info = try store.stat(dir + "/" + name, at: seq)
                        let bytes = try store.read(info)
                        guard UInt64(bytes.count) == info.size else { throw fail("read returned \(bytes.count) bytes, stat says \(info.size)") }
                    }
                    d = nowNanoseconds()
                    if i >= 50 { entries += listing.count; listed += 1 }
                } else {
                    c = nowNanoseconds()
                    d = c
                    if i >= 50 { misses += 1 }
                }
                guard i >= 50 else { continue }
                if lastListing >= 90 { full.append(d - a) }
                total.append(d - a)
                seqAt.append(b - a)
                list.append(c - b)
                read.append(d - c)
            }
            // Sanity: the head has every directory.
            let dirs = try store.list("/etc").count
            guard dirs == directories else { throw fail("/etc has \(dirs) entries at the head, expected \(directories)") }
            let s = Summary(total)
            var fields: [String] = [
                "open_ns=\(openNs)", "rss_before=\(rssBefore)", "rss_after=\(rssAfter)", "hwm=\(hwm)",
                "head=\(head)", "head_hash=\(store.headHash.hex)", "queries=\(s.count)",
                "median=\(s.median)", "p99=\(s.p99)", "max=\(s.max)",
                "seq_median=\(Summary(seqAt).median)", "list_median=\(Summary(list).median)", "read_median=\(Summary(read).median)",
                "entries=\(listed > 0 ? entries / listed : 0)", "misses=\(misses)",
                "full_count=\(full.count)", "full_median=\(Summary(full).median)", "full_p99=\(Summary(full).p99)",
            ]
            if !store.openNotes.isEmpty { fields.append("notes=\(store.openNotes.count)") }
            print("RESULT " + fields.joined(separator: " "))
        } catch {
            print("RESULT open_ns=\(openNs) error=\("\(error)".split(separator: " ").joined(separator: "_"))")
        }
    }
}
