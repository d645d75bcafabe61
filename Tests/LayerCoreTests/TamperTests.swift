import Foundation
import Testing

@testable import LayerCore

#if canImport(Glibc)
import Glibc
#endif

/// Every kind of tampering is detected at the right place, by a read-only open (what `verify`
/// uses) and by a read-write open, which refuses with the same message.
@Suite struct TamperTests {
    static let policy = Store.Options(sealPolicy: .manual)
    static let large = (0..<70_000).map { UInt8(($0 * 13 + 5) % 256) }

    /// A small store: events 0...6, event 3 has its content in objects/.
    struct Fixture {
        var path: String
        var pristine: [String: [UInt8]]
        var log: [UInt8] { pristine["events.jsonl"]! }
        var lines: [[UInt8]] { splitLines(log) }
        var head: UInt64
        var headHash: Digest
        var blob: String

        /// Puts every file back as it was after the clean close.
        func restore() throws {
            for (relative, bytes) in pristine { try setFileBytes(path + "/" + relative, bytes) }
            try? FileManager.default.removeItem(atPath: path + "/metadata/recovered")
        }
    }

    static func makeFixture(_ dir: String) throws -> Fixture {
        let path = dir + "/store"
        try Store.create(at: path, by: tester)
        let store = try Store.open(path, options: policy)
        try store.commit(.mkdir(path: "/etc"), by: tester)
        try store.put("/etc/hosts", "127.0.0.1 localhost\n")
        try store.commit(.write(path: "/etc/large", content: large), by: tester)
        try store.commit(.write(path: "/etc/bin", content: [0, 1, 2, 0xff, 0x80]), by: tester)
        try store.commit(.rename(from: "/etc/hosts", to: "/etc/hosts.old"), by: tester)
        try store.commit(.chmod(path: "/etc/hosts.old", mode: 0o600), by: tester)
        let head = store.headSequence, headHash = store.headHash
        try store.close()
        let digest = SHA256.hash(large).hex
        let blob = "objects/\(digest.prefix(2))/\(digest.dropFirst(2))"
        #expect(FileManager.default.fileExists(atPath: path + "/" + blob))
        #expect(try fileBytes(path + "/metadata/writer.lock").isEmpty, "a clean close empties the lock")
        return Fixture(path: path, pristine: try treeContents(path), head: head, headHash: headHash, blob: blob)
    }

    /// Opens read-only, then read-write (from the same files), and returns the error both threw.
    /// Both must be `.corrupt` with the same message and sequence number.
    static func refusal(
        _ fixture: Fixture, _ context: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> LayerError? {
        let lock = try fileBytes(fixture.path + "/metadata/writer.lock")
        var errors: [LayerError] = []
        for mode in [Store.AccessMode.readOnly, .readWrite] {
            try setFileBytes(fixture.path + "/metadata/writer.lock", lock)
            do {
                let store = try Store.open(fixture.path, mode: mode, options: policy)
                Issue.record("\(mode) open accepted a tampered store (\(context())); head \(store.headSequence)", sourceLocation: sourceLocation)
                try? store.close()
                return nil
            } catch {
                errors.append(error)
            }
        }
        let (ro, rw) = (errors[0], errors[1])
        #expect(ro.code == .corrupt, "\(context()): \(ro)", sourceLocation: sourceLocation)
        #expect(rw.code == ro.code && rw.message == ro.message && rw.sequence == ro.sequence,
            "\(context()): read-only said \(ro), read-write said \(rw)", sourceLocation: sourceLocation)
        return ro
    }

    static func expectCorrupt(
        _ fixture: Fixture, at seq: UInt64, _ context: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        guard let error = try refusal(fixture, context(), sourceLocation: sourceLocation) else { return }
        #expect(error.sequence == seq, "\(context()): expected event \(seq), got \(error)", sourceLocation: sourceLocation)
    }

    static func writeLog(_ fixture: Fixture, _ lines: [[UInt8]]) throws {
        try setFileBytes(Store.eventsPath(fixture.path), Array(lines.joined()))
    }

    // MARK: events.jsonl

    @Test func everySingleByteChangeIsDetectedAtItsLine() throws {
        try withTemporaryDirectory { dir in
            let fixture = try Self.makeFixture(dir)
            let log = fixture.log
            var lineOf: [UInt64] = []
            for (i, line) in fixture.lines.enumerated() { lineOf += [UInt64](repeating: UInt64(i), count: line.count) }
            #expect(lineOf.count == log.count)
            for position in 0..<log.count {
                let original = log[position]
                // A flipped low bit (newline becomes VT, quote becomes '#', 0 becomes 1...), and a
                // newline (or, for a newline, a space): splitting or joining lines.
                for replacement in [original ^ 0x01, original == 0x0A ? 0x20 : 0x0A] {
                    // Only the log changes (refusal() puts the lock back before each open).
                    var bytes = log
                    bytes[position] = replacement
                    try setFileBytes(Store.eventsPath(fixture.path), bytes)
                    try Self.expectCorrupt(
                        fixture, at: lineOf[position],
                        "byte \(position) (line \(lineOf[position])) \(original) -> \(replacement)")
                }
            }
            // Thousands of refused opens left no trace: no recovered tail, no head rewritten, no
            // holder line in the lock.
            try setFileBytes(Store.eventsPath(fixture.path), log)
            #expect(try treeContents(fixture.path) == fixture.pristine)
        }
    }

    @Test func deletedDuplicatedAndSwappedLines() throws {
        try withTemporaryDirectory { dir in
            let fixture = try Self.makeFixture(dir)
            let lines = fixture.lines
            #expect(lines.count == 7)

            var edited = lines
            edited.remove(at: 3)
            try fixture.restore(); try Self.writeLog(fixture, edited)
            try Self.expectCorrupt(fixture, at: 3, "deleted middle line")

            edited = lines
            edited.remove(at: 6)
            try fixture.restore(); try Self.writeLog(fixture, edited)
            try Self.expectCorrupt(fixture, at: 6, "deleted last line (the head names it)")

            edited = lines
            edited.remove(at: 0)
            try fixture.restore(); try Self.writeLog(fixture, edited)
            try Self.expectCorrupt(fixture, at: 0, "deleted genesis")

            edited = lines
            edited.insert(lines[2], at: 3)
            try fixture.restore(); try Self.writeLog(fixture, edited)
            try Self.expectCorrupt(fixture, at: 3, "duplicated line 2")

            edited = lines
            edited.append(lines[6])
            try fixture.restore(); try Self.writeLog(fixture, edited)
            try Self.expectCorrupt(fixture, at: 7, "duplicated last line")

            edited = lines
            edited.swapAt(2, 3)
            try fixture.restore(); try Self.writeLog(fixture, edited)
            try Self.expectCorrupt(fixture, at: 2, "swapped lines 2 and 3")

            edited = lines
            edited.swapAt(5, 6)
            try fixture.restore(); try Self.writeLog(fixture, edited)
            try Self.expectCorrupt(fixture, at: 5, "swapped the last two lines")

            // Empty log.
            try fixture.restore(); try Self.writeLog(fixture, [])
            try Self.expectCorrupt(fixture, at: 0, "empty events.jsonl")
        }
    }

    // MARK: Blobs

    @Test func editedTruncatedOrMissingBlob() throws {
        try withTemporaryDirectory { dir in
            let fixture = try Self.makeFixture(dir)
            let blob = fixture.path + "/" + fixture.blob

            var bytes = Self.large
            bytes[12_345] ^= 0x40
            try fixture.restore(); try setFileBytes(blob, bytes)
            try Self.expectCorrupt(fixture, at: 3, "one byte of the blob changed")

            try fixture.restore(); try setFileBytes(blob, Array(Self.large.dropLast()))
            try Self.expectCorrupt(fixture, at: 3, "blob one byte short")

            try fixture.restore(); try setFileBytes(blob, Self.large + [0])
            try Self.expectCorrupt(fixture, at: 3, "blob one byte long")

            try fixture.restore(); try FileManager.default.removeItem(atPath: blob)
            try Self.expectCorrupt(fixture, at: 3, "blob missing")
        }
    }

    // MARK: The head

    @Test func wrongMissingOrMalformedHead() throws {
        try withTemporaryDirectory { dir in
            let fixture = try Self.makeFixture(dir)
            let headPath = fixture.path + "/metadata/current_hash"
            let previousHash = try Self.hash(of: fixture.lines[5])

            try fixture.restore(); try setFileBytes(headPath, HeadFile.encode(seq: 6, hash: previousHash))
            try Self.expectCorrupt(fixture, at: 6, "current_hash with the hash of another event")

            var flipped = fixture.headHash.bytes
            flipped[31] ^= 1
            try fixture.restore(); try setFileBytes(headPath, HeadFile.encode(seq: 6, hash: Digest(bytes: flipped)))
            try Self.expectCorrupt(fixture, at: 6, "current_hash with one bit changed")

            try fixture.restore(); try setFileBytes(headPath, HeadFile.encode(seq: 9, hash: fixture.headHash))
            try Self.expectCorrupt(fixture, at: 7, "current_hash naming an event beyond the log")

            try fixture.restore(); try FileManager.default.removeItem(atPath: headPath)
            try Self.expectCorrupt(fixture, at: 6, "current_hash missing")
            #expect(!FileManager.default.fileExists(atPath: headPath), "a refused open must not create the head")

            try fixture.restore(); try setFileBytes(headPath, Array(HeadFile.encode(seq: 6, hash: fixture.headHash).dropLast()))
            try Self.expectCorrupt(fixture, at: 6, "current_hash without its newline")

            try fixture.restore(); try setFileBytes(headPath, [])
            try Self.expectCorrupt(fixture, at: 6, "current_hash empty")
        }
    }

    /// A head naming an earlier event after a clean close: someone appended valid events by hand.
    @Test func headLaggingAfterACleanClose() throws {
        try withTemporaryDirectory { dir in
            let fixture = try Self.makeFixture(dir)
            try Self.appendByHand(fixture)
            try Self.expectCorrupt(fixture, at: 7, "a valid event appended by hand after a clean close")

            // Also when the head was rolled back instead (names event 4 of 6).
            try fixture.restore()
            let hash4 = try Self.hash(of: fixture.lines[4])
            try setFileBytes(fixture.path + "/metadata/current_hash", HeadFile.encode(seq: 4, hash: hash4))
            try Self.expectCorrupt(fixture, at: 5, "head rolled back by two events after a clean close")
        }
    }

    /// Appends event 7 (a valid mkdir, correctly chained and hashed) to the fixture's log.
    static func appendByHand(_ fixture: Fixture) throws {
        try fixture.restore()
        let last = try event(fixture.lines[6])
        var event = Event(
            seq: 7, time: max(.now(), last.time), operation: .mkdir, path: "/by-hand", mode: 0o755,
            provenance: tester, previousHash: last.hash)
        let line = EventCodec.seal(&event)
        try setFileBytes(Store.eventsPath(fixture.path), fixture.log + line)
    }

    /// A read-write open that refuses a store must leave it as it found it: in particular it must
    /// not leave its own holder line in writer.lock, or the next open takes the store for one that
    /// crashed and accepts the very events it just refused (the head "lagged after an unclean
    /// shutdown").
    @Test func aRefusedOpenDoesNotMarkTheStoreUnclean() throws {
        try withTemporaryDirectory { dir in
            let fixture = try Self.makeFixture(dir)
            try Self.appendByHand(fixture)
            let lockPath = fixture.path + "/metadata/writer.lock"
            for attempt in 1...3 {
                for mode in [Store.AccessMode.readWrite, .readOnly] {
                    let error = try #require(throws: LayerError.self, "attempt \(attempt), \(mode)") {
                        try Store.open(fixture.path, mode: mode, options: Self.policy)
                    }
                    #expect(error.code == .corrupt && error.sequence == 7, "attempt \(attempt), \(mode): \(error)")
                }
                let lock = try fileBytes(lockPath)
                #expect(lock.isEmpty, "attempt \(attempt): a refused open left \(String(decoding: lock, as: UTF8.self))")
            }
            #expect(try fileBytes(Store.eventsPath(fixture.path)).count > fixture.log.count, "nothing was cut")
        }
    }

    // MARK: blocks.jsonl

    struct BlockFixture {
        var fixture: Fixture
        var headers: [BlockHeader]
        var blockLines: [[UInt8]] { splitLines(fixture.pristine["blocks.jsonl"]!) }
    }

    /// Events 0...9 in three blocks: 0...3, 4...6, 7...9.
    static func makeBlockFixture(_ dir: String) throws -> BlockFixture {
        let path = dir + "/store"
        try Store.create(at: path, by: tester)
        let store = try Store.open(path, options: policy)
        var headers: [BlockHeader] = []
        for block in 0..<3 {
            for i in 0..<3 { try store.put("/f\(block)-\(i)", "block \(block) file \(i)\n") }
            headers.append(try #require(try store.seal()))
        }
        try store.close()
        #expect(headers.map(\.first) == [0, 4, 7] && headers.map(\.last) == [3, 6, 9])
        let fixture = Fixture(path: path, pristine: try treeContents(path), head: 9, headHash: headers[2].hash, blob: "")
        let reader = try Store.open(path, mode: .readOnly)
        #expect(reader.blocks == headers)
        return BlockFixture(fixture: fixture, headers: headers)
    }

    static func expectBlockCorrupt(
        _ fixture: Fixture, block: UInt64, _ context: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        guard let error = try refusal(fixture, context(), sourceLocation: sourceLocation) else { return }
        #expect(error.message.hasPrefix("block \(block):"), "\(context()): expected block \(block), got \(error)", sourceLocation: sourceLocation)
    }

    @Test func everySingleByteChangeOfBlocksIsDetectedAtItsBlock() throws {
        try withTemporaryDirectory { dir in
            let blocks = try Self.makeBlockFixture(dir)
            let bytes = blocks.fixture.pristine["blocks.jsonl"]!
            var blockOf: [UInt64] = []
            for (i, line) in blocks.blockLines.enumerated() { blockOf += [UInt64](repeating: UInt64(i + 1), count: line.count) }
            for position in 0..<bytes.count {
                let original = bytes[position]
                for replacement in [original ^ 0x01, original == 0x0A ? 0x20 : 0x0A] {
                    try blocks.fixture.restore()
                    var edited = bytes
                    edited[position] = replacement
                    try setFileBytes(blocks.fixture.path + "/blocks.jsonl", edited)
                    try Self.expectBlockCorrupt(
                        blocks.fixture, block: blockOf[position], "blocks.jsonl byte \(position) \(original) -> \(replacement)")
                }
            }
        }
    }

    @Test func deletedOrReorderedBlockLines() throws {
        try withTemporaryDirectory { dir in
            let blocks = try Self.makeBlockFixture(dir)
            let lines = blocks.blockLines
            let path = blocks.fixture.path + "/blocks.jsonl"

            try blocks.fixture.restore(); try setFileBytes(path, Array([lines[0], lines[2]].joined()))
            try Self.expectBlockCorrupt(blocks.fixture, block: 2, "block 2 deleted")

            try blocks.fixture.restore(); try setFileBytes(path, Array([lines[1], lines[2]].joined()))
            try Self.expectBlockCorrupt(blocks.fixture, block: 1, "block 1 deleted")

            try blocks.fixture.restore(); try setFileBytes(path, Array([lines[0], lines[2], lines[1]].joined()))
            try Self.expectBlockCorrupt(blocks.fixture, block: 2, "blocks 2 and 3 swapped")

            try blocks.fixture.restore(); try setFileBytes(path, Array([lines[0], lines[1], lines[1], lines[2]].joined()))
            try Self.expectBlockCorrupt(blocks.fixture, block: 3, "block 2 duplicated")
        }
    }

    /// Headers that are well-formed and correctly hashed and chained, but lie about the log.
    @Test func blockHeadersThatDoNotMatchTheLog() throws {
        try withTemporaryDirectory { dir in
            let blocks = try Self.makeBlockFixture(dir)
            let path = blocks.fixture.path + "/blocks.jsonl"

            /// Rewrites blocks.jsonl with `edit` applied to block 2, re-hashing and re-chaining.
            func rewrite(_ edit: (inout BlockHeader) -> Void) throws {
                try blocks.fixture.restore()
                var out: [UInt8] = []
                var previous = Digest.zero
                for var header in blocks.headers {
                    if header.number == 2 { edit(&header) }
                    header.previousHash = previous
                    out += BlockHeader.seal(&header)
                    previous = header.hash
                }
                try setFileBytes(path, out)
            }

            try rewrite { $0.merkleRoot = MerkleTree.root([$0.merkleRoot]) }
            try Self.expectBlockCorrupt(blocks.fixture, block: 2, "wrong Merkle root")

            // The root of events 4...5 instead of 4...6 (a block that forgot an event).
            let lines = blocks.fixture.lines
            let shortRoot = MerkleTree.root(try [4, 5].map { try Self.hash(of: lines[$0]) })
            try rewrite { $0.merkleRoot = shortRoot }
            try Self.expectBlockCorrupt(blocks.fixture, block: 2, "root of too few events")

            let time1 = blocks.headers[0].time
            try rewrite { $0.time = time1 }  // not before block 1, but before event 6
            try Self.expectBlockCorrupt(blocks.fixture, block: 2, "sealed before its last event")

            try rewrite { $0.time = Timestamp(nanoseconds: time1.nanoseconds - 1) }
            try Self.expectBlockCorrupt(blocks.fixture, block: 2, "time before the previous block")

            // Unchanged headers pass: the rewrite itself is faithful.
            try rewrite { _ in }
            #expect(try fileBytes(path) == blocks.fixture.pristine["blocks.jsonl"]!)
            let reader = try Store.open(blocks.fixture.path, mode: .readOnly)
            #expect(reader.blocks == blocks.headers)
        }
    }

    @Test func blockBeyondTheEndOfTheLog() throws {
        try withTemporaryDirectory { dir in
            let blocks = try Self.makeBlockFixture(dir)
            let lines = blocks.fixture.lines
            // Cut events 8 and 9 and point the head at 7: block 3 (7...9) now seals missing events.
            try blocks.fixture.restore()
            try Self.writeLog(blocks.fixture, Array(lines[0...7]))
            try setFileBytes(blocks.fixture.path + "/metadata/current_hash", HeadFile.encode(seq: 7, hash: try Self.hash(of: lines[7])))
            guard let error = try Self.refusal(blocks.fixture, "block 3 beyond the log") else { return }
            #expect(error.sequence == 8, "\(error)")
            #expect(error.message.contains("block 3"), "\(error)")
        }
    }

    // MARK: Consistent forgeries

    /// Re-seals the log from line `from` on after `edit` changed that event: every hash and prev
    /// is right again, as a forger with the format document would make it. Returns the new lines
    /// and the new last hash.
    static func reseal(_ lines: [[UInt8]], from: Int, _ edit: (inout Event) -> Void) throws -> ([[UInt8]], Digest) {
        var out = Array(lines[..<from])
        var previous = try hash(of: lines[from - 1])
        for index in from..<lines.count {
            var event = try event(lines[index])
            if index == from { edit(&event) }
            event.previousHash = previous
            out.append(EventCodec.seal(&event))
            previous = event.hash
        }
        return (out, previous)
    }

    /// A rewritten history with every hash recomputed passes the chain checks; the head (which
    /// names the old last hash) catches it, and blocks catch it even when the head is forged too.
    @Test func aResealedHistoryIsCaughtByTheHeadAndByTheBlocks() throws {
        try withTemporaryDirectory { dir in
            let blocks = try Self.makeBlockFixture(dir)
            let fixture = blocks.fixture
            let (forged, forgedHead) = try Self.reseal(fixture.lines, from: 5) { event in
                event.content = .inline(Array("forged\n".utf8))
                event.size = 7
            }

            // Blocks in place: block 2 (events 4...6) no longer matches, whatever the head says.
            try fixture.restore(); try Self.writeLog(fixture, forged)
            try Self.expectBlockCorrupt(fixture, block: 2, "resealed from event 5, head untouched")
            try fixture.restore(); try Self.writeLog(fixture, forged)
            try setFileBytes(fixture.path + "/metadata/current_hash", HeadFile.encode(seq: 9, hash: forgedHead))
            try Self.expectBlockCorrupt(fixture, block: 2, "resealed from event 5, head forged too")

            // No blocks yet: the head still names the genuine last event.
            try fixture.restore(); try Self.writeLog(fixture, forged)
            try setFileBytes(fixture.path + "/blocks.jsonl", [])
            try Self.expectCorrupt(fixture, at: 9, "resealed from event 5 without blocks, head untouched")
        }
    }

    /// Lines that are canonical and correctly chained but say something impossible.
    @Test func wellFormedButImpossibleEvents() throws {
        try withTemporaryDirectory { dir in
            let fixture = try Self.makeFixture(dir)
            let lines = fixture.lines

            func forge(from: Int, _ context: String, _ edit: (inout Event) -> Void) throws {
                let (forged, head) = try Self.reseal(lines, from: from, edit)
                try fixture.restore(); try Self.writeLog(fixture, forged)
                try setFileBytes(fixture.path + "/metadata/current_hash", HeadFile.encode(seq: 6, hash: head))
                try Self.expectCorrupt(fixture, at: UInt64(from), context)
            }
            // Time going backwards (event 3 before event 2).
            let time2 = try Self.event(lines[2]).time
            try forge(from: 3, "time earlier than the previous event") { $0.time = Timestamp(nanoseconds: time2.nanoseconds - 1) }
            // Not a valid change at that point: removing a file that does not exist.
            try forge(from: 4, "unlink of a missing file") { event in
                event = Event(seq: 4, time: event.time, operation: .unlink, path: "/nowhere", provenance: tester, previousHash: event.previousHash)
            }
            // A write into a missing directory.
            try forge(from: 4, "write below a missing directory") { $0.path = "/missing/bin" }
            // A second genesis.
            try forge(from: 2, "a second genesis event") { event in
                event = Event(
                    seq: 2, time: event.time, operation: .genesis, storeID: "another", format: Event.formatName, provenance: tester,
                    previousHash: event.previousHash)
            }
            // A path that is not canonical.
            try forge(from: 1, "a non-canonical path") { $0.path = "/etc/" }
            // A name reserved for the mount's views.
            try forge(from: 1, "a reserved name") { $0.path = "/@time" }
            // The genesis of another format.
            var genesis = try Self.event(lines[0])
            genesis.format = "layerfs-events/2"
            var forged = [EventCodec.seal(&genesis)]
            var previous = genesis.hash
            for line in lines.dropFirst() {
                var event = try Self.event(line)
                event.previousHash = previous
                forged.append(EventCodec.seal(&event))
                previous = event.hash
            }
            try fixture.restore(); try Self.writeLog(fixture, forged)
            try setFileBytes(fixture.path + "/metadata/current_hash", HeadFile.encode(seq: 6, hash: previous))
            try Self.expectCorrupt(fixture, at: 0, "a genesis of another format")
        }
    }

    // MARK: The writer lock

    @Test func aSecondWriterIsRefusedNamingTheHolder() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let first = try Store.open(path, options: Self.policy)
            try first.put("/a", "a\n")
            let error = try #require(throws: LayerError.self) { try Store.open(path, options: Self.policy) }
            #expect(error.code == .locked, "\(error)")
            #expect(error.message.contains("pid \(getpid())"), "\(error.message)")
            // A reader is fine meanwhile, and sees what the writer committed.
            let reader = try Store.open(path, mode: .readOnly)
            #expect(try reader.text("/a") == "a\n")
            // The refused writer changed nothing: the first one still works and closes cleanly.
            try first.put("/b", "b\n")
            try first.close()
            #expect(try fileBytes(path + "/metadata/writer.lock").isEmpty)
            let second = try Store.open(path, options: Self.policy)
            #expect(second.headSequence == 2 && second.openNotes.isEmpty, "\(second.openNotes)")
            try second.close()
        }
    }

    // MARK: Helpers

    static func event(_ line: [UInt8]) throws -> Event {
        var bytes = line
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        guard case .success(let event) = EventCodec.decode(line: bytes) else { throw TestFailure("line does not decode") }
        return event
    }

    static func hash(of line: [UInt8]) throws -> Digest { try event(line).hash }
}
