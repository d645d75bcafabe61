import Foundation
import Synchronization
import Testing

@testable import LayerCore

/// Many committers at once: unique sequence numbers, nothing lost, group commit, and readers of
/// past states running alongside.
@Suite struct ConcurrencyTests {
    static let threads = 8
    static let writesPerThread = 200

    /// One acknowledged commit: what was written where, and the seq the store returned.
    struct Write: Sendable {
        var seq: UInt64
        var path: String
        var content: [UInt8]
    }

    /// What a reader saw: the content of `path` at event `seq` (nil: it did not exist).
    struct Reading: Sendable {
        var seq: UInt64
        var path: String
        var content: [UInt8]?
        var names: [String]
    }

    static func path(thread: Int, write: Int) -> String {
        write % 4 == 3 ? "/shared" : "/own-\(thread)"
    }

    /// Runs `body(i)` on `count` fresh threads (real threads: concurrentPerform would use only as
    /// many as there are cores) and waits for all of them.
    static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for i in 0..<count {
            group.enter()
            let thread = Thread {
                body(i)
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
    }

    @Test func concurrentCommittersAndReaders() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let store = try Store.open(path, options: .init(sealPolicy: .manual))
            let writes = Mutex<[Write]>([])
            let failures = Mutex<[String]>([])
            let readings = Mutex<[Reading]>([])
            let writersDone = Atomic<Int>(0)
            let readers = 3

            Self.onThreads(Self.threads + readers) { i in
                if i < Self.threads {
                    var mine: [Write] = []
                    for k in 0..<Self.writesPerThread {
                        let target = Self.path(thread: i, write: k)
                        let content = Array("thread \(i) write \(k)\n".utf8)
                        do {
                            guard let seq = try store.commit(.write(path: target, content: content), by: tester) else {
                                failures.withLock { $0.append("thread \(i) write \(k): no-op") }
                                continue
                            }
                            mine.append(Write(seq: seq, path: target, content: content))
                        } catch {
                            failures.withLock { $0.append("thread \(i) write \(k): \(error)") }
                        }
                    }
                    let sorted = mine.map(\.seq)
                    if sorted != sorted.sorted() || Set(sorted).count != sorted.count {
                        failures.withLock { $0.append("thread \(i): its own seqs are not increasing") }
                    }
                    writes.withLock { $0 += mine }
                    writersDone.add(1, ordering: .releasing)
                } else {
                    // A reader: past states, chosen at random below the head, asked twice.
                    var generator = SystemRandomNumberGenerator()
                    var seen: [Reading] = []
                    var rounds = 0
                    while writersDone.load(ordering: .acquiring) < Self.threads || rounds < 50 {
                        rounds += 1
                        let head = store.headSequence
                        let seq = UInt64.random(in: 0...head, using: &generator)
                        let target = Int.random(in: 0...3, using: &generator) == 0 ? "/shared" : "/own-\(Int.random(in: 0..<Self.threads, using: &generator))"
                        do {
                            func look() throws(LayerError) -> ([UInt8]?, [String]) {
                                let names = try store.list("/", at: seq).map(\.name)
                                do throws(LayerError) {
                                    return (try store.read(store.stat(target, at: seq)), names)
                                } catch where error.code == .notFound {
                                    return (nil, names)
                                }
                            }
                            let first = try look()
                            let second = try look()
                            if first.0 != second.0 || first.1 != second.1 {
                                failures.withLock { $0.append("reader: \(target) at \(seq) changed between two reads") }
                            }
                            seen.append(Reading(seq: seq, path: target, content: first.0, names: first.1))
                            // The time index agrees with the sequence numbers it hands out.
                            let time = try store.time(ofSequence: seq)
                            let found = try store.sequence(at: time)
                            if try found < seq || store.time(ofSequence: found) != time {
                                failures.withLock { $0.append("reader: sequence(at: time of \(seq)) = \(found)") }
                            }
                        } catch {
                            failures.withLock { $0.append("reader: \(target) at \(seq): \(error)") }
                        }
                    }
                    readings.withLock { $0 += seen }
                }
            }

            for failure in failures.withLock({ $0 }) { Issue.record(Comment(rawValue: failure)) }
            let all = writes.withLock { $0 }.sorted { $0.seq < $1.seq }
            let total = Self.threads * Self.writesPerThread
            #expect(all.count == total)
            #expect(all.map(\.seq) == Array(1...UInt64(total)), "every commit got its own seq, with no gaps")
            #expect(store.headSequence == UInt64(total))

            // Ground truth from the acknowledged writes.
            func truth(_ path: String, at seq: UInt64) -> [UInt8]? {
                all.last { $0.seq <= seq && $0.path == path }?.content
            }
            func names(at seq: UInt64) -> [String] {
                Set(all.filter { $0.seq <= seq }.map { String($0.path.dropFirst()) }).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            }
            for path in ["/shared"] + (0..<Self.threads).map({ "/own-\($0)" }) {
                #expect(try store.read(store.stat(path)) == truth(path, at: UInt64(total)), "\(path) at the head")
            }
            let seen = readings.withLock { $0 }
            #expect(seen.count >= readers * 50)
            for reading in seen {
                #expect(reading.content == truth(reading.path, at: reading.seq), "a reader saw \(reading.path) at \(reading.seq) wrong")
                #expect(reading.names == names(at: reading.seq), "a reader listed / at \(reading.seq) wrong")
            }

            // Group commit: committers shared fdatasyncs.
            let stats = store.syncStatistics
            #expect(stats.durable == UInt64(total))
            #expect(stats.syncs > 0 && stats.syncs < UInt64(total), "\(stats.syncs) fdatasyncs for \(total) commits")
            try store.close()

            // Every event on disk is the acknowledged write with that seq.
            let reopened = try Store.open(path, mode: .readOnly)
            #expect(reopened.headSequence == UInt64(total) && reopened.openNotes.isEmpty)
            for write in all {
                let event = try reopened.event(write.seq)
                #expect(event.path == write.path && event.content == .inline(write.content), "event \(write.seq)")
            }
            for path in ["/shared"] + (0..<Self.threads).map({ "/own-\($0)" }) {
                #expect(try reopened.read(reopened.stat(path)) == truth(path, at: UInt64(total)))
            }
        }
    }

    /// Committers racing on one directory tree: creations and removals of the same names from
    /// several threads. Whatever interleaving happens, every outcome is either an event or a
    /// POSIX refusal, and the log replays to the same state.
    @Test func racingStructuralChangesReplayIdentically() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let store = try Store.open(path, options: .init(sealPolicy: .manual))
            let accepted = Mutex<[UInt64]>([])
            let unexpected = Mutex<[String]>([])
            Self.onThreads(Self.threads) { i in
                for k in 0..<60 {
                    let name = "/d\((i + k) % 3)"
                    let change: Change
                    switch (i + k) % 5 {
                    case 0: change = .mkdir(path: name)
                    case 1: change = .write(path: name + "/f", content: Array("\(i) \(k)".utf8))
                    case 2: change = .unlink(path: name + "/f")
                    case 3: change = .rmdir(path: name)
                    default: change = .rename(from: name, to: "/d\((i + k + 1) % 3)")
                    }
                    do throws(LayerError) {
                        if let seq = try store.commit(change, by: tester) { accepted.withLock { $0.append(seq) } }
                    } catch {
                        let fine: Set<LayerError.Code> = [.notFound, .alreadyExists, .notDirectory, .isDirectory, .directoryNotEmpty]
                        if !fine.contains(error.code) { unexpected.withLock { $0.append("\(change): \(error)") } }
                    }
                }
            }
            for problem in unexpected.withLock({ $0 }) { Issue.record(Comment(rawValue: problem)) }
            let seqs = accepted.withLock { $0 }.sorted()
            #expect(seqs == Array(1...UInt64(seqs.count)))
            var before: [String: NodeInfo] = [:]
            for name in ["/d0", "/d1", "/d2", "/d0/f", "/d1/f", "/d2/f"] {
                for seq in 0...store.headSequence { before["\(seq) \(name)"] = try? store.stat(name, at: seq) }
            }
            try store.close()
            let reopened = try Store.open(path, mode: .readOnly)
            var after: [String: NodeInfo] = [:]
            for name in ["/d0", "/d1", "/d2", "/d0/f", "/d1/f", "/d2/f"] {
                for seq in 0...reopened.headSequence { after["\(seq) \(name)"] = try? reopened.stat(name, at: seq) }
            }
            #expect(after == before)
        }
    }

    /// A read-only open (`layerfs log`, `status`, `verify` beside a mount) while the writer seals:
    /// a seal appends the header to blocks.jsonl, then rewrites metadata/current_block. A reader
    /// that read blocks.jsonl before a seal and current_block after it saw a block head naming a
    /// block "missing" from blocks.jsonl, and failed as if the store were damaged.
    @Test func readOnlyOpensBesideASealingWriterNeverSeeAMissingBlock() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let store = try Store.open(path, mode: .readWrite, options: Store.Options(sealPolicy: .manual))
            let stop = Atomic<Bool>(false)
            let seals = Atomic<Int>(0)
            let group = DispatchGroup()
            group.enter()
            Thread {
                var i = 0
                while !stop.load(ordering: .relaxed) {
                    _ = try? store.commit(.write(path: "/f", content: Array("\(i)\n".utf8)), by: tester)
                    if (try? store.seal()) != nil { seals.add(1, ordering: .relaxed) }
                    i += 1
                }
                group.leave()
            }.start()
            var opens = 0
            var failures: [String] = []
            let deadline = Date().addingTimeInterval(3)
            while Date() < deadline && failures.count < 5 {
                do {
                    _ = try Store.open(path, mode: .readOnly)
                    opens += 1
                } catch {
                    failures.append("\(error)")
                }
            }
            stop.store(true, ordering: .relaxed)
            group.wait()
            try store.close()
            #expect(failures.isEmpty, "\(failures.count) of \(opens + failures.count) read-only opens failed during \(seals.load(ordering: .relaxed)) seals: \(failures.first ?? "")")
            #expect(opens > 10 && seals.load(ordering: .relaxed) > 10, "opens \(opens), seals \(seals.load(ordering: .relaxed))")
        }
    }
}
