import Foundation
import Synchronization
import Testing

@testable import LayerCore

/// Ranged reads of file versions (`Store.openContent`, `FileContent`) and the `/@time` listing
/// (`Store.distinctEventTimes`).
@Suite struct ContentReaderTests {
    /// `count` random bytes, filled a word at a time (fast also in debug builds).
    static func randomBytes(_ count: Int) -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { raw in
            var i = 0
            while i + 8 <= count {
                raw.storeBytes(of: rng.next() as UInt64, toByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < count {
                raw[i] = UInt8.random(in: 0...255, using: &rng)
                i += 1
            }
        }
        return out
    }

    static func makeStore(_ dir: String) throws -> Store {
        let path = dir + "/store"
        try Store.create(at: path, by: tester)
        return try Store.open(path, options: .init(sealPolicy: .manual))
    }

    /// The expected result of a ranged read: the slice of `whole`, short at the end, empty past it.
    static func slice(_ whole: [UInt8], offset: UInt64, count: Int) -> [UInt8] {
        guard offset < UInt64(whole.count) else { return [] }
        let start = Int(offset)
        return Array(whole[start..<min(whole.count, start + count)])
    }

    /// Reads at the start, the middle, across the end, at the end, past the end and of 0 bytes,
    /// through both read variants, and compares with slices of `whole`.
    static func checkRanges(_ content: FileContent, _ whole: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let size = UInt64(whole.count)
        #expect(content.size == size, sourceLocation: sourceLocation)
        let middle = size / 2
        var cases: [(UInt64, Int)] = [
            (0, 1), (0, 10), (0, 4096), (0, whole.count), (0, whole.count + 1),
            (middle, 0), (middle, 1), (middle, 131_072),
            (size >= 5 ? size - 5 : 0, 10),  // across the end
            (size, 1), (size, 0), (size + 1, 100), (UInt64.max, 10),  // at and past the end
        ]
        if size > 0 { cases.append((size - 1, 1)) }
        for (offset, count) in cases {
            let expected = slice(whole, offset: offset, count: count)
            let got = try content.read(offset: offset, count: count)
            #expect(got == expected, "read(offset: \(offset), count: \(count)) of \(size) bytes", sourceLocation: sourceLocation)

            var buffer = [UInt8](repeating: 0xAA, count: count + 3)
            let n = try buffer.withUnsafeMutableBytes { raw throws(LayerError) -> Int in
                try content.read(offset: offset, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<count]))
            }
            #expect(n == expected.count, "read(offset: \(offset), into: \(count)) of \(size) bytes", sourceLocation: sourceLocation)
            #expect(Array(buffer[0..<n]) == expected, sourceLocation: sourceLocation)
            #expect(buffer[n...].allSatisfy { $0 == 0xAA }, "wrote past the bytes it returned", sourceLocation: sourceLocation)
        }
        // Whole content in 128 KiB chunks.
        var assembled: [UInt8] = []
        var offset: UInt64 = 0
        while true {
            let chunk = try content.read(offset: offset, count: 131_072)
            if chunk.isEmpty { break }
            assembled += chunk
            offset += UInt64(chunk.count)
        }
        #expect(assembled == whole, sourceLocation: sourceLocation)
    }

    @Test(arguments: [0, 10, 65_536, 65_537, 3 * 1_048_576 + 17])
    func rangedReadsMatchTheWholeContent(size: Int) throws {
        try withTemporaryDirectory { dir in
            let store = try Self.makeStore(dir)
            let bytes = Self.randomBytes(size)
            let seq = try #require(try store.commit(.write(path: "/f", content: bytes), by: .currentProcess()))
            let info = try store.stat("/f")
            #expect(info.contentSeq == seq)
            // Writers put content above 65536 bytes in a blob, the rest inline.
            switch try store.event(seq).content {
            case .object?: #expect(size > ObjectStore.inlineLimit)
            case .inline?: #expect(size <= ObjectStore.inlineLimit)
            case nil: Issue.record("a write without content")
            }
            let whole = try store.read(info)
            #expect(whole == bytes)
            let content = try store.openContent(info)
            #expect(content.contentSeq == seq)
            try Self.checkRanges(content, whole)
            try store.close()
        }
    }

    @Test func anOldVersionStaysReadableAfterAnOverwrite() throws {
        try withTemporaryDirectory { dir in
            let store = try Self.makeStore(dir)
            let first = Self.randomBytes(200_000)
            let second = Self.randomBytes(150_000)
            let small = Self.randomBytes(100)
            let s1 = try #require(try store.commit(.write(path: "/f", content: first), by: .currentProcess()))
            let s2 = try #require(try store.commit(.write(path: "/g", content: small), by: .currentProcess()))
            let opened = try store.openContent(try store.stat("/f"))
            try store.commit(.write(path: "/f", content: second), by: .currentProcess())
            try store.commit(.write(path: "/g", content: Self.randomBytes(70_000)), by: .currentProcess())
            try store.commit(.unlink(path: "/f"), by: .currentProcess())
            // A handle opened before the overwrite, and the old versions opened afterwards.
            try Self.checkRanges(opened, first)
            try Self.checkRanges(try store.openContent(try store.stat("/f", at: s1)), first)
            try Self.checkRanges(try store.openContent(try store.stat("/f", at: s1 + 2)), second)
            try Self.checkRanges(try store.openContent(try store.stat("/g", at: s2)), small)
            #expect(throws: LayerError.self) { try store.stat("/f") }
            try store.close()
            // And after the store is closed and reopened read-only.
            let reader = try Store.open(store.path, mode: .readOnly)
            try Self.checkRanges(try reader.openContent(try reader.stat("/f", at: s1)), first)
        }
    }

    @Test func aHandleOutlivesItsStoreAndServesManyThreads() throws {
        try withTemporaryDirectory { dir in
            let bytes = Self.randomBytes(1_000_000)
            let content: FileContent
            do {
                let store = try Self.makeStore(dir)
                try store.commit(.write(path: "/f", content: bytes), by: .currentProcess())
                content = try store.openContent(try store.stat("/f"))
                try store.close()
            }
            let mismatches = Atomic<Int>(0)
            DispatchQueue.concurrentPerform(iterations: 64) { i in
                let offset = UInt64(i * 15_000)
                let expected = Self.slice(bytes, offset: offset, count: 40_000)
                if (try? content.read(offset: offset, count: 40_000)) != expected { mismatches.add(1, ordering: .relaxed) }
            }
            #expect(mismatches.load(ordering: .relaxed) == 0)
        }
    }

    @Test func directoriesAndSymlinksAndNegativeCountsAreRefused() throws {
        try withTemporaryDirectory { dir in
            let store = try Self.makeStore(dir)
            try store.commit(.mkdir(path: "/d"), by: tester)
            try store.commit(.symlink(path: "/l", target: "d"), by: tester)
            try store.put("/f", "hello")
            let directory = #expect(throws: LayerError.self) { try store.openContent(try store.stat("/d")) }
            #expect(directory?.code == .isDirectory)
            let symlink = #expect(throws: LayerError.self) { try store.openContent(try store.stat("/l")) }
            #expect(symlink?.code == .invalidArgument)
            let content = try store.openContent(try store.stat("/f"))
            let negative = #expect(throws: LayerError.self) { try content.read(offset: 0, count: -1) }
            #expect(negative?.code == .invalidArgument)
            try store.close()
        }
    }

    // MARK: Damaged blobs

    /// Commits a blob, then damages it on disk while the store is open (an open store checked
    /// every blob already): `openContent` must refuse with `.corrupt` naming the blob, the store
    /// and the event.
    func expectCorruptAfter(_ damage: (String) throws -> Void, _ what: String) throws {
        try withTemporaryDirectory { dir in
            let store = try Self.makeStore(dir)
            let bytes = Self.randomBytes(100_000)
            let seq = try #require(try store.commit(.write(path: "/f", content: bytes), by: .currentProcess()))
            guard case .object(let digest)? = try store.event(seq).content else { throw TestFailure("no blob") }
            let blob = store.objects.path(of: digest)
            #expect(FileManager.default.fileExists(atPath: blob))
            try damage(blob)
            let info = try store.stat("/f")
            do throws(LayerError) {
                _ = try store.openContent(info)
                Issue.record("openContent accepted a blob that is \(what)")
            } catch {
                #expect(error.code == .corrupt, "\(what): \(error)")
                #expect(error.path == blob, "\(what): \(error)")
                #expect(error.store == store.path, "\(what): \(error)")
                #expect(error.sequence == seq, "\(what): \(error)")
                #expect(error.posixErrno == EIO)
            }
            // The whole-content read refuses too.
            let whole = #expect(throws: LayerError.self) { try store.read(info) }
            #expect(whole?.code == .corrupt, "\(what): \(String(describing: whole))")
            try store.close()
        }
    }

    static func makeWritable(_ blob: String) throws {
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: blob)
    }

    @Test func aTruncatedBlobIsCorrupt() throws {
        try expectCorruptAfter({ blob in
            try Self.makeWritable(blob)
            #expect(truncate(blob, 99_999) == 0)
        }, "truncated")
    }

    @Test func aLongerBlobIsCorrupt() throws {
        try expectCorruptAfter({ blob in
            try Self.makeWritable(blob)
            let handle = try #require(FileHandle(forWritingAtPath: blob))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data([1]))
            try handle.close()
        }, "longer")
    }

    @Test func aMissingBlobIsCorrupt() throws {
        try expectCorruptAfter({ blob in try FileManager.default.removeItem(atPath: blob) }, "missing")
    }

    @Test func aBlobReplacedByADirectoryIsCorrupt() throws {
        try expectCorruptAfter({ blob in
            try FileManager.default.removeItem(atPath: blob)
            try FileManager.default.createDirectory(atPath: blob, withIntermediateDirectories: false)
        }, "a directory")
    }

    /// A blob cut short after it was opened: the read fails (EIO), it does not return short data.
    @Test func aBlobCutShortAfterOpenFailsTheRead() throws {
        try withTemporaryDirectory { dir in
            let store = try Self.makeStore(dir)
            let seq = try #require(try store.commit(.write(path: "/f", content: Self.randomBytes(100_000)), by: .currentProcess()))
            guard case .object(let digest)? = try store.event(seq).content else { throw TestFailure("no blob") }
            let blob = store.objects.path(of: digest)
            let content = try store.openContent(try store.stat("/f"))
            try Self.makeWritable(blob)
            #expect(truncate(blob, 50_000) == 0)
            #expect(try content.read(offset: 0, count: 50_000).count == 50_000)
            do throws(LayerError) {
                _ = try content.read(offset: 40_000, count: 20_000)
                Issue.record("a read past the blob's new end succeeded")
            } catch {
                #expect(error.posixErrno == EIO && error.path == blob && error.sequence == seq, "\(error)")
            }
            try store.close()
        }
    }

    // MARK: Event times

    /// The definition, one event at a time through the public per-seq query.
    static func naiveDistinctTimes(_ store: Store) throws -> [(seq: UInt64, time: Timestamp)] {
        let head = store.headSequence
        var out: [(seq: UInt64, time: Timestamp)] = []
        for seq in 0...head {
            let time = try store.time(ofSequence: seq)
            let next = seq == head ? nil : try store.time(ofSequence: seq + 1)
            if next != time { out.append((seq, time)) }
        }
        return out
    }

    static func expectSame(_ a: [(seq: UInt64, time: Timestamp)], _ b: [(seq: UInt64, time: Timestamp)], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.map(\.seq) == b.map(\.seq), sourceLocation: sourceLocation)
        #expect(a.map(\.time) == b.map(\.time), sourceLocation: sourceLocation)
    }

    @Test func distinctEventTimesOfRealCommits() throws {
        try withTemporaryDirectory { dir in
            let store = try Self.makeStore(dir)
            #expect(store.distinctEventTimes().map(\.seq) == [0])
            for i in 0..<200 { try store.put("/f\(i % 7)", "\(i)") }
            let times = store.distinctEventTimes()
            Self.expectSame(times, try Self.naiveDistinctTimes(store))
            // Strictly increasing times and seqs, ending at the head.
            #expect(zip(times, times.dropFirst()).allSatisfy { $0.time < $1.time && $0.seq < $1.seq })
            #expect(times.last?.seq == store.headSequence)
            // Each is the last event at its time.
            for entry in times {
                #expect(try store.sequence(at: entry.time) == entry.seq)
            }
            try store.close()
        }
    }

    /// Events at equal times (a clock with coarse resolution, or one held back so that time never
    /// decreases) cannot be made on demand through `commit`; this writes a valid log by hand.
    @Test func distinctEventTimesPicksTheLastEventOfEqualTimes() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let lines = splitLines(try fileBytes(Store.eventsPath(path)))
            guard case .success(let genesis) = EventCodec.decode(line: Array(lines[0].dropLast())) else {
                throw TestFailure("cannot decode the genesis event")
            }
            let t0 = genesis.time.nanoseconds
            let second: Int64 = 1_000_000_000
            // seq:                    1       2       3       4           5           6           7
            let offsets: [Int64] = [second, second, second, 2 * second, 3 * second, 3 * second, 4 * second]
            var log = lines[0]
            var previous = genesis.hash
            for (i, offset) in offsets.enumerated() {
                var event = Event(
                    seq: UInt64(i + 1), time: Timestamp(nanoseconds: t0 + offset), operation: .mkdir, path: "/d\(i + 1)",
                    mode: 0o755, provenance: tester, previousHash: previous)
                log += EventCodec.seal(&event)
                previous = event.hash
            }
            try setFileBytes(Store.eventsPath(path), log)
            try setFileBytes(path + "/metadata/current_hash", HeadFile.encode(seq: UInt64(offsets.count), hash: previous))

            let store = try Store.open(path, mode: .readOnly)
            #expect(store.headSequence == 7)
            let times = store.distinctEventTimes()
            #expect(times.map(\.seq) == [0, 3, 4, 6, 7])
            #expect(times.map(\.time.nanoseconds) == [t0, t0 + second, t0 + 2 * second, t0 + 3 * second, t0 + 4 * second])
            Self.expectSame(times, try Self.naiveDistinctTimes(store))
        }
    }
}
