import Foundation
import Testing

@testable import LayerCore

/// The time-travel index on large directories with long histories: many names per directory,
/// rewrites, deletions and re-creations of names, renames of files and of whole subtrees, rmdir
/// and re-creation of directories, so that the directory logs cross many snapshots.
///
/// Two checks:
/// - `StateIndex` against `ReferenceStateIndex` (below: the index as it was before directory
///   logs and snapshots, which answered every question by a binary search per path), at every
///   sequence number, for every path that ever existed: lookup, versionIndex, list, history,
///   and sequence(atOrBefore:). Both are fed the same events; they must also refuse the same ones.
/// - a large-directory history through a real `Store`, against the naive model of
///   `ReconstructionPropertyTests` (stat, list, read, history at every sequence number, then
///   again after reopening from the log).
@Suite struct StateIndexTests {
    struct SplitMix64 {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static let people = [
        Provenance(uid: 0, gid: 0, pid: 1, process: "root"),
        Provenance(uid: 1000, gid: 1000, pid: 2, process: "alice"),
        Provenance(uid: 2000, gid: 3000, pid: 3, process: "bob"),
    ]

    /// A random history of `count` events (genesis included) biased towards large directories.
    /// Returns the events that both indexes accepted.
    static func drive(
        _ index: inout StateIndex, _ reference: inout ReferenceStateIndex, events count: Int, seed: UInt64,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> Int {
        var rng = SplitMix64(state: seed)
        var time: Int64 = 1_700_000_000_000_000_000
        var live: Set<String> = []
        var directories: [String] = ["/"]
        var accepted = 0
        var attempts = 0

        func apply(_ event: Event) {
            let a: Result<StateIndex.Plan, LayerError> = Result { () throws(LayerError) in try index.plan(event) }
            let b: Result<ReferenceStateIndex.Plan, LayerError> = Result { () throws(LayerError) in try reference.plan(event) }
            switch (a, b) {
            case (.success(let plan), .success(let refPlan)):
                index.apply(plan, seq: event.seq, time: event.time, offset: event.seq * 100)
                reference.apply(refPlan, seq: event.seq, time: event.time, offset: event.seq * 100)
                for (path, target) in refPlan.records {
                    if case .absent = target { live.remove(path) } else { live.insert(path) }
                }
                accepted += 1
            case (.failure(let e1), .failure(let e2)):
                #expect(e1.code == e2.code, "event \(event.seq) \(event.operation): \(e1) vs \(e2)", sourceLocation: sourceLocation)
            default:
                Issue.record("event \(event.seq) \(event.operation) \(event.path ?? ""): new \(a), reference \(b)", sourceLocation: sourceLocation)
            }
        }

        let genesis = Event(
            seq: 0, time: Timestamp(nanoseconds: time), operation: .genesis, provenance: people[0], previousHash: .zero)
        apply(genesis)
        live.insert("/")

        let names = (0..<70).map { "n" + String($0 / 10) + String($0 % 10) } + ["a", "b.conf", "é", "Z", "n05.old", "n11.old"]
        let dirNames = ["d0", "d1", "d2", "sub", "sub2"]
        while accepted < count && attempts < count * 20 {
            attempts += 1
            // Times: mostly increasing, sometimes equal.
            if rng.below(4) != 0 { time += Int64(1 + rng.below(1000)) }
            let seq = UInt64(accepted)
            let who = people[rng.below(people.count)]
            directories = live.filter { path in
                path == "/" || reference.lookup(path, at: seq - 1)?.kind == .directory
            }.sorted()
            let existing = live.filter { $0 != "/" }.sorted()
            let files = existing.filter { reference.lookup($0, at: seq - 1)?.kind == .file }
            func newPath() -> String {
                // Mostly in a few big directories (the first ones), sometimes anywhere.
                let dir = rng.below(3) != 0 ? directories[rng.below(min(4, directories.count))] : directories[rng.below(directories.count)]
                let name = rng.below(10) == 0 ? dirNames[rng.below(dirNames.count)] : names[rng.below(names.count)]
                return StorePath.join(dir, name)
            }
            func anyExisting() -> String? { existing.isEmpty ? nil : existing[rng.below(existing.count)] }
            func anyFile() -> String? { files.isEmpty ? nil : files[rng.below(files.count)] }
            func event(_ op: LayerCore.Operation, _ path: String?, destination: String? = nil, target: String? = nil, mode: UInt32? = nil,
                       owner: UInt32? = nil, group: UInt32? = nil, mtime: Timestamp? = nil, size: UInt64? = nil) -> Event {
                Event(
                    seq: seq, time: Timestamp(nanoseconds: time), operation: op, path: path, destination: destination, target: target,
                    mode: mode, owner: owner, group: group, mtime: mtime, size: size, provenance: who, previousHash: .zero)
            }
            let r = rng.below(100)
            switch r {
            case 0..<8:
                // Populate: directories first (there are few at the start).
                let dir = directories[rng.below(directories.count)]
                apply(event(.mkdir, StorePath.join(dir, dirNames[rng.below(dirNames.count)]), mode: [0o755, 0o700][rng.below(2)]))
            case 8..<45:
                let path = rng.below(2) == 0 ? newPath() : (anyFile() ?? newPath())
                apply(event(.write, path, mode: rng.below(5) == 0 ? 0o600 : nil, size: UInt64(rng.below(500))))
            case 45..<48:
                if let path = anyFile() { apply(event(.truncate, path, size: UInt64(rng.below(10)))) }
            case 48..<60:
                if let path = anyFile() { apply(event(.unlink, path)) }
            case 60..<64:
                if let path = anyExisting() { apply(event(.rmdir, path)) }
            case 64..<72:
                // A file renamed within its directory or elsewhere (often parked as .old).
                if let path = anyFile() {
                    let to = rng.below(2) == 0 ? path + ".old" : newPath()
                    apply(event(.rename, path, destination: to))
                }
            case 72..<78:
                // A directory (with its whole subtree) renamed: to a new name, back, or over an empty one.
                let candidates = directories.filter { $0 != "/" }
                if !candidates.isEmpty {
                    let from = candidates[rng.below(candidates.count)]
                    let to = rng.below(3) == 0 ? directories[rng.below(directories.count)] : newPath()
                    apply(event(.rename, from, destination: to))
                }
            case 78..<81:
                apply(event(.symlink, newPath(), target: ["x", "../y", "/etc/hosts"][rng.below(3)]))
            case 81..<88:
                if let path = anyExisting() { apply(event(.chmod, path, mode: [0o644, 0o600, 0o755][rng.below(3)])) }
            case 88..<93:
                if let path = anyExisting() { apply(event(.chown, path, owner: UInt32(rng.below(3)), group: rng.below(2) == 0 ? nil : 7)) }
            case 93..<97:
                if let path = anyExisting() { apply(event(.utimens, path, mtime: Timestamp(nanoseconds: Int64(rng.below(1_000_000))))) }
            default:
                // Remove everything in a directory, then the directory (large rmdir cascades).
                let candidates = directories.filter { $0 != "/" }
                if !candidates.isEmpty {
                    let dir = candidates[rng.below(candidates.count)]
                    let below = live.filter { $0.hasPrefix(dir + "/") }.sorted { $0.count > $1.count }
                    for path in below where accepted < count {
                        let kind = reference.lookup(path, at: UInt64(accepted) - 1)?.kind
                        if rng.below(4) != 0 { time += 1 }
                        let e = Event(
                            seq: UInt64(accepted), time: Timestamp(nanoseconds: time), operation: kind == .directory ? .rmdir : .unlink,
                            path: path, provenance: who, previousHash: .zero)
                        apply(e)
                    }
                    if accepted < count {
                        apply(Event(seq: UInt64(accepted), time: Timestamp(nanoseconds: time), operation: .rmdir, path: dir, provenance: who, previousHash: .zero))
                    }
                }
            }
        }
        return accepted
    }

    /// Compares every answer of the two indexes at every sequence number.
    static func compare(_ index: StateIndex, _ reference: ReferenceStateIndex, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let head = reference.head else { return }
        #expect(index.head == head, sourceLocation: sourceLocation)
        let paths = reference.allPaths.sorted()
        #expect(Set(index.allPaths) == Set(paths), sourceLocation: sourceLocation)
        var failures = 0
        func check(_ ok: Bool, _ message: @autoclosure () -> String) {
            guard !ok else { return }
            failures += 1
            if failures <= 10 { Issue.record(Comment(rawValue: message()), sourceLocation: sourceLocation) }
        }
        var lists = 0
        for seq in 0...head {
            for path in paths {
                let expected = reference.lookup(path, at: seq)
                check(index.lookup(path, at: seq) == expected, "lookup \(path) at \(seq): \(String(describing: index.lookup(path, at: seq))) vs \(String(describing: expected))")
                let id = reference.ids[path]!
                check(index.versionIndex(node: index.ids[path]!, at: seq) == reference.versionIndex(node: id, at: seq), "versionIndex \(path) at \(seq)")
                let a = index.list(path, at: seq), b = reference.list(path, at: seq)
                check((a == nil) == (b == nil), "list \(path) at \(seq): \(a == nil ? "nil" : "entries") vs \(b == nil ? "nil" : "entries")")
                if let a, let b {
                    lists += 1
                    check(a.map(\.name) == b.map(\.name), "list \(path) at \(seq): names \(a.map(\.name)) vs \(b.map(\.name))")
                    check(a.map(\.info) == b.map(\.info), "list \(path) at \(seq): attributes")
                }
            }
        }
        for path in paths {
            let a = index.history(path), b = reference.history(path)
            check(a.map(\.seq) == b.map(\.seq) && a.map(\.info) == b.map(\.info), "history \(path)")
        }
        // sequence(atOrBefore:) at, between and around every event time.
        var probes: [Int64] = [.min, .max]
        for t in reference.times { probes += [t - 1, t, t + 1] }
        for t in probes {
            let time = Timestamp(nanoseconds: t)
            check(index.sequence(atOrBefore: time) == reference.sequence(atOrBefore: time), "sequence(atOrBefore: \(t))")
        }
        #expect(lists > head, "the histories list directories", sourceLocation: sourceLocation)
    }

    @Test(arguments: [(1, UInt64(1)), (2, UInt64(2)), (5, UInt64(3)), (32, UInt64(4)), (32, UInt64(5))])
    func largeDirectoriesAnswerLikeTheReference(snapshotMinimum: Int, seed: UInt64) {
        var index = StateIndex(snapshotMinimum: snapshotMinimum)
        var reference = ReferenceStateIndex()
        let events = Self.drive(&index, &reference, events: 1500, seed: seed)
        #expect(events == 1500)
        // The histories reached what they are for: many snapshots, big directories, renames.
        let snapshots = index.directories.map { $0.snapshots.count - 1 }.reduce(0, +)
        let biggest = index.directories.map(\.names.count).max() ?? 0
        #expect(snapshots >= 10, "\(snapshots) snapshots")
        #expect(biggest >= 60, "largest directory: \(biggest) names")

        Self.compare(index, reference)
    }

    /// One directory with a log many chunks long: listings at every event, crossing snapshots
    /// and chunk boundaries, with names deleted, re-created and renamed within it.
    @Test(arguments: [4, 32])
    func longDirectoryLogsAnswerLikeTheReference(snapshotMinimum: Int) {
        var index = StateIndex(snapshotMinimum: snapshotMinimum)
        var reference = ReferenceStateIndex()
        var rng = SplitMix64(state: UInt64(snapshotMinimum))
        var seq: UInt64 = 0
        var live: Set<Int> = []
        func apply(_ op: LayerCore.Operation, _ path: String, to: String? = nil, mode: UInt32? = nil) {
            let event = Event(
                seq: seq, time: Timestamp(nanoseconds: Int64(seq)), operation: op, path: op == .genesis ? nil : path, destination: to,
                mode: mode, size: UInt64(rng.below(100)), provenance: Self.people[rng.below(3)], previousHash: .zero)
            guard let plan = try? index.plan(event), let refPlan = try? reference.plan(event) else {
                Issue.record("event \(seq) \(op) \(path) refused")
                return
            }
            index.apply(plan, seq: seq, time: event.time, offset: seq)
            reference.apply(refPlan, seq: seq, time: event.time, offset: seq)
            seq += 1
        }
        apply(.genesis, "/")
        apply(.mkdir, "/d")
        func name(_ i: Int) -> String { "/d/n" + String(i) }
        while seq < 6000 {
            let i = rng.below(40)
            if !live.contains(i) {
                apply(.write, name(i))
                live.insert(i)
            } else {
                switch rng.below(10) {
                case 0:
                    apply(.unlink, name(i))
                    live.remove(i)
                case 1:
                    let j = rng.below(40)
                    if j != i {
                        apply(.rename, name(i), to: name(j))
                        live.remove(i)
                        live.insert(j)
                    }
                case 2: apply(.chmod, name(i), mode: rng.below(2) == 0 ? 0o600 : 0o644)
                default: apply(.write, name(i))
                }
            }
        }
        let longest = index.directories.map(\.log.count).max() ?? 0
        #expect(longest > 3 * StateIndex.Chunked<StateIndex.Packed>.chunkSize, "\(longest)")
        var failures = 0
        for at in 0..<seq {
            let a = index.list("/d", at: at), b = reference.list("/d", at: at)
            if a?.map(\.name) != b?.map(\.name) || a?.map(\.info) != b?.map(\.info) {
                failures += 1
                if failures < 5 { Issue.record("/d at \(at): \(a?.map(\.name) ?? []) vs \(b?.map(\.name) ?? [])") }
            }
            if at % 7 == 0 {
                for i in 0..<40 where index.lookup(name(i), at: at) != reference.lookup(name(i), at: at) {
                    failures += 1
                    if failures < 5 { Issue.record("\(name(i)) at \(at)") }
                }
            }
        }
        #expect(failures == 0)
    }

    /// Versions that do not fit the 32-byte form (a size over 4 GiB, more than 32,767 owners,
    /// a content event far back) are kept whole and answer the same.
    @Test func versionsTooLargeToPackAnswerLikeTheReference() {
        var index = StateIndex(snapshotMinimum: 4)
        var reference = ReferenceStateIndex()
        var seq: UInt64 = 0
        func apply(_ op: LayerCore.Operation, _ path: String?, owner: UInt32? = nil, group: UInt32? = nil, size: UInt64? = nil, mode: UInt32? = nil) {
            let event = Event(
                seq: seq, time: Timestamp(nanoseconds: Int64(seq) * 1000), operation: op, path: path, mode: mode, owner: owner,
                group: group, size: size, provenance: Self.people[Int(seq % 3)], previousHash: .zero)
            guard let plan = try? index.plan(event), let refPlan = try? reference.plan(event) else {
                Issue.record("event \(seq) \(op) \(path ?? "") refused")
                return
            }
            index.apply(plan, seq: seq, time: event.time, offset: seq)
            reference.apply(refPlan, seq: seq, time: event.time, offset: seq)
            seq += 1
        }
        apply(.genesis, nil)
        apply(.mkdir, "/d")
        for i in 0..<8 { apply(.write, "/d/f\(i)", size: UInt64(i)) }
        apply(.truncate, "/d/f1", size: 5 << 30)
        apply(.write, "/d/f2", size: UInt64.max)
        apply(.chmod, "/d/f3", mode: 0o600)
        // More distinct owners than a 15-bit index holds.
        for i in 0..<66_000 { apply(.chown, "/d/f\(i % 8)", owner: UInt32(i), group: UInt32(i / 7)) }
        apply(.truncate, "/d/f1", size: 1)
        apply(.unlink, "/d/f4")
        #expect(!index.extended.isEmpty)
        let head = seq - 1
        var probes = Array(0...UInt64(20)) + [head - 1, head]
        var rng = SplitMix64(state: 9)
        for _ in 0..<300 { probes.append(UInt64(rng.below(Int(head) + 1))) }
        for at in probes {
            for path in ["/", "/d"] + (0..<8).map({ "/d/f\($0)" }) {
                #expect(index.lookup(path, at: at) == reference.lookup(path, at: at), "\(path) at \(at)")
            }
            let a = index.list("/d", at: at), b = reference.list("/d", at: at)
            #expect(a?.map(\.name) == b?.map(\.name) && a?.map(\.info) == b?.map(\.info), "/d at \(at)")
        }
        for path in ["/", "/d"] + (0..<8).map({ "/d/f\($0)" }) {
            let a = index.history(path), b = reference.history(path)
            #expect(a.map(\.seq) == b.map(\.seq) && a.map(\.info) == b.map(\.info), "history of \(path)")
        }
    }

    @Test func chunkedArrayKeepsOrderAcrossChunks() {
        var chunked = StateIndex.Chunked<Int>()
        let n = 5 * StateIndex.Chunked<Int>.chunkSize + 17
        for i in 0..<n { chunked.append(i * 3) }
        #expect(chunked.count == n && chunked.last == (n - 1) * 3)
        #expect((0..<n).allSatisfy { chunked[$0] == $0 * 3 })
        var rng = SplitMix64(state: 5)
        for _ in 0..<200 {
            let a = rng.below(n + 1), b = rng.below(n + 1)
            let range = min(a, b) ..< max(a, b)
            var seen: [Int] = []
            chunked.forEachRun(in: range) { seen.append(contentsOf: $0) }
            #expect(seen == range.map { $0 * 3 })
        }
        // Every chunk but the last is full, and only the first grew (the others are allocated
        // once, at their full size).
        #expect(chunked.chunks.dropLast().allSatisfy { $0.count == StateIndex.Chunked<Int>.chunkSize })
        #expect(chunked.chunks.dropFirst().allSatisfy { $0.capacity < StateIndex.Chunked<Int>.chunkSize + 64 }, "\(chunked.chunks.map(\.capacity))")
    }

    /// The search behind every "as of S" question agrees with counting, whatever the spread of
    /// the values (even, clustered, exponential, all equal, with duplicates).
    @Test func countNotAboveAgreesWithCounting() {
        var rng = SplitMix64(state: 77)
        var arrays: [[Int64]] = [[], [5], [5, 5], [1, 2], [Int64.min, 0, Int64.max], (0..<100).map { _ in 7 }]
        arrays.append((0..<1000).map { Int64($0) * 3 })
        arrays.append((0..<60).map { Int64(1) << Int64($0) })
        arrays.append((0..<500).map { $0 < 490 ? Int64($0) : Int64($0) * 1_000_000_000 })
        for n in [3, 17, 256, 4000] {
            var v: Int64 = Int64(rng.below(1000)) - 500
            arrays.append((0..<n).map { _ in
                v += rng.below(5) == 0 ? Int64(rng.below(1_000_000)) : Int64(rng.below(3))
                return v
            })
        }
        for values in arrays {
            var keys: [Int64] = [.min, .max, 0]
            for v in values { keys += [v, v &- 1, v &+ 1] }
            for _ in 0..<50 where !values.isEmpty { keys.append(values[rng.below(values.count)] &+ (Int64(rng.below(7)) - 3)) }
            for key in keys {
                let expected = values.filter { $0 <= key }.count
                #expect(StateIndex.countNotAbove(key, count: values.count) { values[$0] } == expected, "\(key) in \(values.prefix(8))...")
                #expect(StateIndex.countNotAbove(key, count: values.count, last: values.last) { values[$0] } == expected)
            }
        }
    }

    /// One directory of 80 names through a real store, crossing several snapshots: rewrites,
    /// chmod, unlink and re-creation, parking as .old, a subdirectory renamed back and forth,
    /// rmdir and mkdir of the same name, and the whole directory renamed away and back.
    /// Compared at every sequence number with the naive model of ReconstructionPropertyTests
    /// (kept incrementally here: one model per event), then again after reopening from the log.
    @Test func largeDirectoryThroughTheStore() throws {
        typealias R = ReconstructionPropertyTests
        var changes: [(Change, Provenance)] = []
        let who = R.alice
        func name(_ i: Int) -> String { "/big/f" + String(i / 10) + String(i % 10) }
        changes.append((.mkdir(path: "/big"), who))
        changes.append((.mkdir(path: "/big/sub"), who))
        for i in 0..<6 { changes.append((.write(path: "/big/sub/s\(i)", content: [UInt8(i)]), R.bob)) }
        for i in 0..<80 { changes.append((.write(path: name(i), content: Array("v0 \(i)".utf8)), who)) }
        var rng = SplitMix64(state: 42)
        for step in 0..<400 {
            let i = rng.below(80)
            switch step % 20 {
            case 3: changes.append((.chmod(path: name(i), mode: 0o600), R.bob))
            case 5: changes.append((.unlink(path: name(i)), who))
            case 7: changes.append((.rename(from: name(i), to: name(i) + ".old"), who))
            case 9: changes.append((.rename(from: "/big/sub", to: "/big/sub2"), who))
            case 10: changes.append((.rename(from: "/big/sub2", to: "/big/sub"), who))
            case 13: changes.append((.rename(from: "/big", to: "/moved"), who))
            case 14: changes.append((.write(path: "/moved/new\(step)", content: [1, 2]), who))
            case 15: changes.append((.rename(from: "/moved", to: "/big"), who))
            case 17: changes.append((.unlink(path: name(i) + ".old"), who))
            default: changes.append((.write(path: name(i), content: Array("v\(step) \(i)".utf8)), step % 2 == 0 ? who : R.bob))
            }
        }
        // Empty the subdirectory, remove it, make it again.
        for i in 0..<6 { changes.append((.unlink(path: "/big/sub/s\(i)"), who)) }
        changes.append((.rmdir(path: "/big/sub"), who))
        changes.append((.mkdir(path: "/big/sub", mode: 0o700), who))
        changes.append((.write(path: "/big/sub/again", content: [9]), who))

        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let store = try Store.open(path, options: .init(sealPolicy: .manual))
            var model = R.Model(genesis: try store.event(0))
            var models = [model]
            for (change, by) in changes {
                let head = store.headSequence
                var next = model
                switch next.apply(change, seq: head + 1, time: .now(), by: by) {
                case .applied:
                    let seq = try #require(try store.commit(change, by: by))
                    _ = model.apply(change, seq: seq, time: try store.event(seq).time, by: by)
                    models.append(model)
                case .noop:
                    #expect(try store.commit(change, by: by) == nil)
                case .rejected(let codes):
                    // (a random name that is not there: the store must refuse it too)
                    let error = try #require(throws: LayerError.self) { try store.commit(change, by: by) }
                    #expect(codes.contains(error.code), "\(change): \(error) vs \(codes)")
                }
            }
            #expect(store.headSequence == UInt64(models.count - 1))
            #expect(models.count > 400)

            /// Every listing at every event, checked against the model; returns them for the reopened store.
            func check(_ store: Store) throws -> [[Store.DirectoryEntry]] {
                var listings: [[Store.DirectoryEntry]] = []
                var everyPath: Set<String> = []
                for (seq, model) in models.enumerated() {
                    everyPath.formUnion(model.nodes.keys)
                    for (path, node) in model.nodes.sorted(by: { $0.key < $1.key }) {
                        let info = try store.stat(path, at: UInt64(seq))
                        #expect(
                            info.kind == node.kind && info.mode == node.mode && info.uid == node.uid && info.gid == node.gid
                                && info.size == node.size && info.mtime == node.mtime && info.version == node.version,
                            "\(path) at \(seq): \(info) vs \(node)")
                        guard node.kind == .directory else { continue }
                        let entries = try store.list(path, at: UInt64(seq))
                        #expect(entries.map(\.name) == model.children(path), "\(path) at \(seq)")
                        for entry in entries {
                            #expect(entry.info == (try store.stat(StorePath.join(path, entry.name), at: UInt64(seq))), "\(path)/\(entry.name) at \(seq)")
                        }
                        listings.append(entries)
                    }
                    for gone in ["/moved", "/big", "/big/sub", "/big/sub2", "/big/f00.old"] where model.nodes[gone] == nil {
                        #expect(throws: LayerError.self) { try store.list(gone, at: UInt64(seq)) }
                    }
                }
                // Each path's history: exactly the events that changed what it names.
                for path in everyPath {
                    var expected: [(UInt64, UInt64?)] = []
                    var previous: UInt64?
                    for (seq, model) in models.enumerated() {
                        let version = model.nodes[path]?.version
                        if version != previous { expected.append((UInt64(seq), version)) }
                        previous = version
                    }
                    let actual = try store.history(path).map { ($0.seq, $0.info?.version) }
                    #expect(actual.map(\.0) == expected.map(\.0) && actual.map(\.1) == expected.map(\.1), "history of \(path)")
                }
                // Contents of the files in /big at a few points of history.
                for seq in stride(from: 0, to: models.count, by: 37) {
                    for (path, node) in models[seq].nodes where node.kind == .file && path.hasPrefix("/big/f") {
                        #expect(try store.read(store.stat(path, at: UInt64(seq))) == node.content, "\(path) at \(seq)")
                    }
                }
                return listings
            }
            let listings = try check(store)
            try store.close()
            let reopened = try Store.open(path, mode: .readOnly)
            #expect(try check(reopened) == listings, "the index built from the log answers like the one built by commits")
        }
    }
}

// MARK: - The reference: the index before directory logs and snapshots (commit c0c54a6)

/// The time-travel index as it was: per path, the sorted list of (sequence number, version)
/// changes; list is a binary search per name ever created in the directory, then a sort.
struct ReferenceStateIndex {
    struct Version {
        var seq: UInt64
        var contentSeq: UInt64
        var size: UInt64
        var mtime: Int64
        var uid: UInt32
        var gid: UInt32
        var mode: UInt16
        var kind: NodeKind
    }

    /// `version == absent` records a deletion.
    struct PathRecord {
        var seq: UInt64
        var version: UInt32
    }

    static let absent = UInt32.max

    struct PathNode {
        let name: String
        let parent: UInt32
        var records: [PathRecord] = []
        /// Every name that was ever created in this directory (live or not), as node ids.
        var children: [UInt32] = []
    }

    private(set) var nodes: [PathNode] = [PathNode(name: "", parent: 0)]
    private(set) var ids: [String: UInt32] = ["/": 0]
    private(set) var versions: [Version] = []
    /// Byte offset of each event's line in events.jsonl, indexed by sequence number.
    private(set) var offsets: [UInt64] = []
    /// Each event's time in nanoseconds, indexed by sequence number (never decreasing).
    private(set) var times: [Int64] = []

    /// The sequence number of the last event applied (nil before genesis).
    var head: UInt64? { offsets.isEmpty ? nil : UInt64(offsets.count - 1) }

    // MARK: Queries

    func info(_ index: UInt32) -> NodeInfo {
        let v = versions[Int(index)]
        return NodeInfo(
            kind: v.kind, mode: UInt32(v.mode), uid: v.uid, gid: v.gid, size: v.size,
            mtime: Timestamp(nanoseconds: v.mtime), version: v.seq, contentSeq: v.contentSeq)
    }

    /// The version index a node has at `seq`, or nil if it did not exist then.
    func versionIndex(node: UInt32, at seq: UInt64) -> UInt32? {
        let records = nodes[Int(node)].records
        // Last record with record.seq <= seq.
        var low = 0, high = records.count
        while low < high {
            let mid = (low + high) / 2
            if records[mid].seq <= seq { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let v = records[low - 1].version
        return v == Self.absent ? nil : v
    }

    func lookup(_ path: String, at seq: UInt64) -> NodeInfo? {
        guard let id = ids[path], let v = versionIndex(node: id, at: seq) else { return nil }
        return info(v)
    }

    /// The entries of directory `path` at `seq`, sorted by name; nil if it is not a directory then.
    func list(_ path: String, at seq: UInt64) -> [(name: String, info: NodeInfo)]? {
        guard let id = ids[path], let v = versionIndex(node: id, at: seq), versions[Int(v)].kind == .directory
        else { return nil }
        var out: [(name: String, info: NodeInfo)] = []
        for child in nodes[Int(id)].children {
            if let cv = versionIndex(node: child, at: seq) { out.append((nodes[Int(child)].name, info(cv))) }
        }
        out.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        return out
    }

    /// Every change of one path: (sequence number, the version it became, or nil for a deletion).
    func history(_ path: String) -> [(seq: UInt64, info: NodeInfo?)] {
        guard let id = ids[path] else { return [] }
        return nodes[Int(id)].records.map { ($0.seq, $0.version == Self.absent ? nil : info($0.version)) }
    }

    /// Every path that ever existed, in no particular order.
    var allPaths: Dictionary<String, UInt32>.Keys { ids.keys }

    /// The last event with time <= t, or nil if t is before the genesis event.
    func sequence(atOrBefore t: Timestamp) -> UInt64? {
        var low = 0, high = times.count
        while low < high {
            let mid = (low + high) / 2
            if times[mid] <= t.nanoseconds { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? nil : UInt64(low - 1)
    }

    func time(of seq: UInt64) -> Timestamp { Timestamp(nanoseconds: times[Int(seq)]) }
    func offset(of seq: UInt64) -> UInt64 { offsets[Int(seq)] }

    // MARK: Planning and applying changes

    /// What one event does to the index, computed without changing anything.
    struct Plan {
        enum Target { case new(Int), existing(UInt32), absent }
        var newVersions: [Version] = []
        var records: [(path: String, target: Target)] = []
    }

    private func current(_ path: String) -> (id: UInt32, version: UInt32, info: Version)? {
        guard let id = ids[path], let last = nodes[Int(id)].records.last, last.version != Self.absent else { return nil }
        return (id, last.version, versions[Int(last.version)])
    }

    /// The live paths below a directory at the head, depth first, parents before children.
    private func liveDescendants(of id: UInt32, path: String) -> [(path: String, version: UInt32)] {
        var out: [(String, UInt32)] = []
        for child in nodes[Int(id)].children {
            guard let last = nodes[Int(child)].records.last, last.version != Self.absent else { continue }
            let childPath = StorePath.join(path, nodes[Int(child)].name)
            out.append((childPath, last.version))
            if versions[Int(last.version)].kind == .directory {
                out.append(contentsOf: liveDescendants(of: child, path: childPath))
            }
        }
        return out
    }

    private func hasLiveChildren(_ id: UInt32) -> Bool {
        nodes[Int(id)].children.contains { child in
            guard let last = nodes[Int(child)].records.last else { return false }
            return last.version != Self.absent
        }
    }

    private func requireParentDirectory(_ path: String) throws(LayerError) {
        let parent = StorePath.parent(of: path)
        guard let p = current(parent) else {
            throw LayerError(.notFound, "parent directory \(parent) does not exist", path: path)
        }
        guard p.info.kind == .directory else {
            throw LayerError(.notDirectory, "parent \(parent) is not a directory", path: path)
        }
    }

    private func requireNewName(_ path: String) throws(LayerError) {
        guard StorePath.isCanonical(path), path != "/" else {
            throw LayerError(.invalidPath, "not a canonical store path", path: path)
        }
        if StorePath.isReserved(path) {
            throw LayerError(.reservedName, "names starting with '@' at the root are reserved for the mount's views", path: path)
        }
    }

    private func requireExisting(_ path: String) throws(LayerError) -> (id: UInt32, version: UInt32, info: Version) {
        guard StorePath.isCanonical(path) else { throw LayerError(.invalidPath, "not a canonical store path", path: path) }
        guard let c = current(path) else { throw LayerError(.notFound, "no such file or directory", path: path) }
        return c
    }

    /// Validates `event` against the state at the head and returns what applying it does.
    /// Throws the error a filesystem would give for the same change (ENOENT, EEXIST, ENOTDIR...).
    func plan(_ event: Event) throws(LayerError) -> Plan {
        var plan = Plan()
        let time = event.time.nanoseconds
        let by = event.provenance

        func fresh(_ base: Version?, kind: NodeKind, mode: UInt32, size: UInt64, contentSeq: UInt64) -> Version {
            Version(
                seq: event.seq, contentSeq: contentSeq, size: size, mtime: time, uid: base?.uid ?? by.uid,
                gid: base?.gid ?? by.gid, mode: UInt16(mode & 0o7777), kind: kind)
        }
        func set(_ path: String, _ version: Version) {
            plan.newVersions.append(version)
            plan.records.append((path, .new(plan.newVersions.count - 1)))
        }

        guard event.seq == UInt64(offsets.count) else {
            throw LayerError(.corrupt, "expected event \(offsets.count), found \(event.seq)", sequence: event.seq)
        }
        if event.operation == .genesis {
            guard event.seq == 0 else { throw LayerError(.corrupt, "genesis after event 0", sequence: event.seq) }
            set("/", fresh(nil, kind: .directory, mode: 0o755, size: 0, contentSeq: 0))
            return plan
        }
        guard event.seq > 0 else { throw LayerError(.corrupt, "event 0 must be the genesis event", sequence: 0) }
        guard let path = event.path else { throw LayerError(.corrupt, "event has no path", sequence: event.seq) }

        switch event.operation {
        case .genesis:
            break
        case .write, .truncate:
            let existing = current(path)
            if let existing {
                if existing.info.kind == .directory { throw LayerError(.isDirectory, "is a directory", path: path) }
                if existing.info.kind == .symlink { throw LayerError(.invalidArgument, "is a symbolic link", path: path) }
            } else {
                if event.operation == .truncate { throw LayerError(.notFound, "no such file", path: path) }
                try requireNewName(path)
                try requireParentDirectory(path)
            }
            set(path, fresh(existing?.info, kind: .file, mode: event.mode ?? 0o644, size: event.size ?? 0, contentSeq: event.seq))
        case .mkdir:
            try requireNewName(path)
            if current(path) != nil { throw LayerError(.alreadyExists, "already exists", path: path) }
            try requireParentDirectory(path)
            set(path, fresh(nil, kind: .directory, mode: event.mode ?? 0o755, size: 0, contentSeq: 0))
        case .symlink:
            try requireNewName(path)
            if current(path) != nil { throw LayerError(.alreadyExists, "already exists", path: path) }
            try requireParentDirectory(path)
            let target = event.target ?? ""
            guard !target.isEmpty, target.utf8.count <= StorePath.pathMax, !target.utf8.contains(0) else {
                throw LayerError(.invalidArgument, "a symlink target must be 1 to \(StorePath.pathMax) bytes without NUL", path: path)
            }
            set(path, fresh(nil, kind: .symlink, mode: 0o777, size: UInt64(target.utf8.count), contentSeq: event.seq))
        case .unlink:
            let existing = try requireExisting(path)
            if existing.info.kind == .directory { throw LayerError(.isDirectory, "is a directory (use rmdir)", path: path) }
            plan.records.append((path, .absent))
        case .rmdir:
            let existing = try requireExisting(path)
            if path == "/" { throw LayerError(.busy, "cannot remove the root", path: path) }
            if existing.info.kind != .directory { throw LayerError(.notDirectory, "not a directory", path: path) }
            if hasLiveChildren(existing.id) { throw LayerError(.directoryNotEmpty, "directory not empty", path: path) }
            plan.records.append((path, .absent))
        case .rename:
            let source = try requireExisting(path)
            guard let destination = event.destination else {
                throw LayerError(.corrupt, "rename without destination", sequence: event.seq)
            }
            if path == "/" { throw LayerError(.busy, "cannot rename the root", path: path) }
            try requireNewName(destination)
            if destination == path { throw LayerError(.invalidArgument, "rename onto itself", path: path) }
            if source.info.kind == .directory && StorePath.isSelfOrDescendant(destination, of: path) {
                throw LayerError(.invalidArgument, "cannot move a directory into itself", path: destination)
            }
            try requireParentDirectory(destination)
            if let target = current(destination) {
                if source.info.kind == .directory {
                    if target.info.kind != .directory {
                        throw LayerError(.notDirectory, "cannot replace a non-directory with a directory", path: destination)
                    }
                    if hasLiveChildren(target.id) {
                        throw LayerError(.directoryNotEmpty, "directory not empty", path: destination)
                    }
                } else if target.info.kind == .directory {
                    throw LayerError(.isDirectory, "cannot replace a directory with a non-directory", path: destination)
                }
            }
            plan.records.append((path, .absent))
            plan.records.append((destination, .existing(source.version)))
            if source.info.kind == .directory {
                for (descendant, version) in liveDescendants(of: source.id, path: path) {
                    let suffix = descendant.dropFirst(path.count)
                    plan.records.append((descendant, .absent))
                    plan.records.append((destination + suffix, .existing(version)))
                }
            }
        case .chmod:
            let existing = try requireExisting(path)
            if existing.info.kind == .symlink { throw LayerError(.unsupported, "symbolic links have no mode of their own", path: path) }
            var v = existing.info
            v.seq = event.seq
            v.mode = UInt16((event.mode ?? 0) & 0o7777)
            set(path, v)
        case .chown:
            let existing = try requireExisting(path)
            var v = existing.info
            v.seq = event.seq
            if let owner = event.owner { v.uid = owner }
            if let group = event.group { v.gid = group }
            set(path, v)
        case .utimens:
            let existing = try requireExisting(path)
            var v = existing.info
            v.seq = event.seq
            v.mtime = event.mtime?.nanoseconds ?? time
            set(path, v)
        }
        return plan
    }

    /// Applies a plan made by `plan(event)` for the event whose line starts at `offset`.
    mutating func apply(_ plan: Plan, seq: UInt64, time: Timestamp, offset: UInt64) {
        precondition(seq == UInt64(offsets.count), "events are applied in sequence order")
        let base = versions.count
        versions.append(contentsOf: plan.newVersions)
        for (path, target) in plan.records {
            let version: UInt32
            switch target {
            case .new(let i): version = UInt32(base + i)
            case .existing(let v): version = v
            case .absent: version = Self.absent
            }
            let id = node(for: path)
            nodes[Int(id)].records.append(PathRecord(seq: seq, version: version))
        }
        offsets.append(offset)
        times.append(time.nanoseconds)
    }

    /// The node id for a path, created (with its place in the parent's child list) if new.
    private mutating func node(for path: String) -> UInt32 {
        if let id = ids[path] { return id }
        let parentID = node(for: StorePath.parent(of: path))
        let id = UInt32(nodes.count)
        nodes.append(PathNode(name: StorePath.name(of: path), parent: parentID))
        nodes[Int(parentID)].children.append(id)
        ids[path] = id
        return id
    }

    mutating func reserve(events: Int) {
        offsets.reserveCapacity(events)
        times.reserveCapacity(events)
        versions.reserveCapacity(events)
    }
}
