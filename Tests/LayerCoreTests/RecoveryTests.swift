import Foundation
import Testing

@testable import LayerCore

/// Crash recovery: what a writer killed mid-append leaves behind, and garbage after a clean close.
///
/// The crash is simulated faithfully: the head file is the one the writer had written before the
/// last append (the head never names an event that was not acknowledged), the last line of the log
/// is cut at every byte offset, and writer.lock still holds the dead writer's line.
@Suite struct RecoveryTests {
    /// What the last (interrupted) event is: covers escapes and multi-byte UTF-8, base64, a blob
    /// reference, and events without content.
    enum LastChange: String, CaseIterable, Sendable {
        case unicodeText, binary, largeObject, mkdir, rename
    }

    struct Crash {
        var store: String
        /// events.jsonl after the last append completed (events 0...n).
        var log: [UInt8]
        /// metadata/current_hash as it was before event n was appended (it names n-1).
        var headBefore: [UInt8]
        /// Offset of the last line (event n) and of its newline.
        var lineStart: Int
        var newline: Int
        var n: UInt64
    }

    static let policy = Store.Options(sealPolicy: .manual)

    static func setup(_ store: Store) throws {
        try store.commit(.mkdir(path: "/etc"), by: tester)
        try store.put("/etc/hosts", "127.0.0.1 localhost\n")
        try store.commit(.write(path: "/etc/blob", content: [0, 1, 2, 3, 255, 254]), by: tester)
    }

    static func lastChange(_ kind: LastChange) -> Change {
        switch kind {
        case .unicodeText:
            return .write(path: "/etc/motd", content: Array("héllo \"wörld\"\t✓ — 日本語 \\ 🎉\n".utf8))
        case .binary:
            return .write(path: "/etc/bin", content: (0..<40).map { UInt8(($0 * 37 + 11) % 256) })
        case .largeObject:
            return .write(path: "/etc/large", content: (0..<70_000).map { UInt8(($0 * 7) % 251) })
        case .mkdir:
            return .mkdir(path: "/var", mode: 0o750)
        case .rename:
            return .rename(from: "/etc/hosts", to: "/etc/hosts.old")
        }
    }

    /// Builds a store whose last event is `last`, either in the same session as the others, or in
    /// a second session after a clean close.
    static func build(at path: String, cleanBeforeLast: Bool, last: LastChange) throws -> Crash {
        try Store.create(at: path, by: tester)
        var headBefore: [UInt8]
        let n: UInt64
        if cleanBeforeLast {
            do {
                let store = try Store.open(path, options: policy)
                try setup(store)
                try store.close()
            }
            headBefore = try fileBytes(path + "/metadata/current_hash")
            let store = try Store.open(path, options: policy)
            n = try #require(try store.commit(lastChange(last), by: tester))
            try store.close()
        } else {
            let store = try Store.open(path, options: policy)
            try setup(store)
            // The head the writer wrote after acknowledging event n-1 (no close in between).
            headBefore = try fileBytes(path + "/metadata/current_hash")
            n = try #require(try store.commit(lastChange(last), by: tester))
            try store.close()
        }
        let decoded = try #require(HeadFile.decode(headBefore))
        #expect(decoded.seq == n - 1, "the saved head names the event before the last one")
        let log = try fileBytes(Store.eventsPath(path))
        let lines = splitLines(log)
        #expect(lines.count == Int(n) + 1)
        let lastLine = try #require(lines.last)
        #expect(lastLine.last == UInt8(ascii: "\n"))
        return Crash(
            store: path, log: log, headBefore: headBefore, lineStart: log.count - lastLine.count,
            newline: log.count - 1, n: n)
    }

    static func recoveredFiles(_ store: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: store + "/metadata/recovered")) ?? []).sorted()
    }

    /// Puts the store in the state a writer killed after writing `cut` bytes of the log leaves.
    static func crash(_ c: Crash, cut: Int) throws {
        try setFileBytes(Store.eventsPath(c.store), Array(c.log[0..<cut]))
        try setFileBytes(c.store + "/metadata/current_hash", c.headBefore)
        try markUncleanShutdown(c.store)
        try? FileManager.default.removeItem(atPath: c.store + "/metadata/recovered")
    }

    @Test(arguments: [
        (true, LastChange.unicodeText), (false, .unicodeText), (false, .binary), (true, .largeObject),
        (false, .largeObject), (true, .mkdir), (false, .rename),
    ])
    func tornLastLineAtEveryOffsetIsRecovered(cleanBeforeLast: Bool, last: LastChange) throws {
        try withTemporaryDirectory { dir in
            let c = try Self.build(at: dir + "/store", cleanBeforeLast: cleanBeforeLast, last: last)
            // From nothing of the last line to all of it but its newline.
            for cut in c.lineStart...c.newline {
                try Self.crash(c, cut: cut)
                let torn = Array(c.log[c.lineStart..<cut])

                // A reader sees events 0...n-1 and changes no file.
                let before = try treeContents(c.store)
                do {
                    let reader = try Store.open(c.store, mode: .readOnly)
                    #expect(reader.headSequence == c.n - 1, "cut at \(cut)")
                    #expect(try reader.text("/etc/hosts") == "127.0.0.1 localhost\n")
                    try reader.close()
                }
                #expect(try treeContents(c.store) == before, "a read-only open modified the store (cut at \(cut))")

                // A writer moves the torn bytes aside and carries on from event n-1.
                let store = try Store.open(c.store, options: Self.policy)
                #expect(store.headSequence == c.n - 1, "cut at \(cut)")
                #expect(try fileBytes(Store.eventsPath(c.store)) == Array(c.log[0..<c.lineStart]), "cut at \(cut)")
                let recovered = Self.recoveredFiles(c.store)
                if torn.isEmpty {
                    #expect(recovered.isEmpty, "nothing was torn at cut \(cut), yet \(recovered) was written")
                } else {
                    #expect(recovered.count == 1, "cut at \(cut): \(recovered)")
                    if let name = recovered.first {
                        #expect(name.hasPrefix("events-tail-") && name.hasSuffix("-at-byte-\(c.lineStart).bin"), "\(name)")
                        #expect(try fileBytes(c.store + "/metadata/recovered/" + name) == torn, "cut at \(cut)")
                    }
                    #expect(store.openNotes.contains { $0.contains("moved a torn or garbage tail of \(torn.count) byte(s)") }, "\(store.openNotes)")
                }
                #expect(store.openNotes.contains { $0.contains("did not close cleanly") }, "\(store.openNotes)")
                #expect(try store.text("/etc/hosts", at: 2) == "127.0.0.1 localhost\n")
                let after = try #require(try store.put("/after", "written after the crash at \(cut)\n"))
                #expect(after == c.n)
                try store.close()

                let again = try Store.open(c.store, mode: .readOnly)
                #expect(again.headSequence == c.n)
                #expect(again.openNotes.isEmpty, "\(again.openNotes)")
                #expect(try again.text("/after") == "written after the crash at \(cut)\n")
                #expect(try again.event(c.n).operation == .write)
                #expect(try again.event(c.n).previousHash == again.event(c.n - 1).hash)
            }
        }
    }

    /// After an unclean shutdown the head may lag by more than one event (it is written without a
    /// sync of its own); with a torn tail on top, the writer still recovers every complete event.
    @Test func laggingHeadAndTornTail() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let store = try Store.open(path, options: Self.policy)
            try store.commit(.mkdir(path: "/etc"), by: tester)
            let lagging = try fileBytes(path + "/metadata/current_hash")
            try store.put("/etc/a", "a\n")
            try store.put("/etc/b", "b\n")
            try store.put("/etc/c", "c\n")
            try store.close()
            let log = try fileBytes(Store.eventsPath(path))
            let lastLine = try #require(splitLines(log).last)
            let cut = log.count - lastLine.count / 2
            try setFileBytes(Store.eventsPath(path), Array(log[0..<cut]))
            try setFileBytes(path + "/metadata/current_hash", lagging)
            try markUncleanShutdown(path)

            let writer = try Store.open(path, options: Self.policy)
            #expect(writer.headSequence == 3)
            #expect(try writer.text("/etc/b") == "b\n")
            #expect(writer.openNotes.contains { $0.contains("lagged the log by 2 event(s)") }, "\(writer.openNotes)")
            let head = try #require(HeadFile.decode(try fileBytes(path + "/metadata/current_hash")))
            #expect(head.seq == 3 && head.hash == writer.headHash, "the writer brings the head up to the log")
            #expect(try writer.commit(.unlink(path: "/etc/a"), by: tester) == 4)
            try writer.close()
            let reader = try Store.open(path, mode: .readOnly)
            #expect(reader.headSequence == 4 && reader.openNotes.isEmpty)
        }
    }

    /// A head that names the torn event is not a crash the writer could have left (it writes the
    /// head only after the line is durable): the event is missing, and both opens refuse, moving
    /// nothing aside.
    @Test func headNamingTheTornEventIsDamage() throws {
        try withTemporaryDirectory { dir in
            let c = try Self.build(at: dir + "/store", cleanBeforeLast: false, last: .unicodeText)
            try Self.crash(c, cut: c.newline)  // whole line, no newline
            try setFileBytes(c.store + "/metadata/current_hash", HeadFile.encode(seq: c.n, hash: try Self.lastHash(c)))
            for mode in [Store.AccessMode.readOnly, .readWrite] {
                let error = try #require(throws: LayerError.self) { try Store.open(c.store, mode: mode, options: Self.policy) }
                #expect(error.code == .corrupt)
                #expect(error.sequence == c.n)
                try markUncleanShutdown(c.store)
            }
            #expect(Self.recoveredFiles(c.store).isEmpty, "a refused open moved nothing aside")
            #expect(try fileBytes(Store.eventsPath(c.store)) == Array(c.log[0..<c.newline]))
        }
    }

    static func lastHash(_ c: Crash) throws -> Digest {
        let line = Array(c.log[c.lineStart..<c.newline])
        guard case .success(let event) = EventCodec.decode(line: line) else { throw TestFailure("last line does not decode") }
        return event.hash
    }

    // MARK: Garbage after a clean close

    enum Garbage: String, CaseIterable, Sendable {
        case garbageLine, noNewline, nulRun, randomBinary, jsonNotAnEvent

        var bytes: [UInt8] {
            switch self {
            case .garbageLine: return Array("garbage\n".utf8)
            case .noNewline: return Array(#"{"seq":5,"time":"2026-11-21T09:"#.utf8)
            case .nulRun: return [UInt8](repeating: 0, count: 4096)
            case .randomBinary:
                var state: UInt64 = 0x9E37_79B9_7F4A_7C15
                var out: [UInt8] = []
                for i in 0..<3000 {
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    out.append(i % 97 == 96 ? UInt8(ascii: "\n") : UInt8(truncatingIfNeeded: state >> 33))
                }
                return out
            // JSON objects that do not begin like an event line, `{"seq":` (FORMAT.md §10).
            case .jsonNotAnEvent: return Array(#"{"hello":"world","n":[1,2,3]}"#.utf8) + [10] + Array(#"{"op":"write","seq":5}"#.utf8) + [10]
            }
        }
    }

    /// FORMAT.md §10: a complete line that begins like an event line is damage, never a tail,
    /// even after the last event; an incomplete one is a tail whatever it holds.
    @Test(arguments: [#"{"seq":"5"}"#, #"{"seq":5,"bogus":true}"#, #"{"seq":99}"#])
    func completeLineThatLooksLikeAnEventIsDamage(_ appended: String) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let store = try Store.open(path, options: .init(sealPolicy: .manual))
            for i in 1...4 { try store.put("/f\(i)", "\(i)\n") }
            try store.close()
            let log = path + "/events.jsonl"
            let before = try fileBytes(log)
            try setFileBytes(log, before + Array((appended + "\n").utf8))
            let error = try #require(throws: LayerError.self) { try Store.open(path, options: .init(sealPolicy: .manual)) }
            #expect(error.code == .corrupt)
            #expect(error.sequence == 5)
            #expect(try fileBytes(log) == before + Array((appended + "\n").utf8), "a refused open changed the log")
            // Without its newline the same bytes are a torn append: moved aside.
            try setFileBytes(log, before + Array(appended.utf8))
            let reopened = try Store.open(path, options: .init(sealPolicy: .manual))
            #expect(reopened.headSequence == 4)
            #expect(try fileBytes(log) == before)
        }
    }

    @Test(arguments: Garbage.allCases)
    func garbageAfterACleanCloseIsMovedAside(_ garbage: Garbage) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            do {
                let store = try Store.open(path, options: Self.policy)
                try Self.setup(store)
                try store.commit(Self.lastChange(.largeObject), by: tester)
                try store.close()
            }
            let log = try fileBytes(Store.eventsPath(path))
            let bytes = garbage.bytes
            try setFileBytes(Store.eventsPath(path), log + bytes)

            // Reader: sees every event, changes nothing.
            let before = try treeContents(path)
            do {
                let reader = try Store.open(path, mode: .readOnly)
                #expect(reader.headSequence == 4)
                #expect(reader.openNotes.contains { $0.contains("\(bytes.count) byte(s) after event 4") }, "\(reader.openNotes)")
                #expect(try reader.read(reader.stat("/etc/large")).count == 70_000)
            }
            #expect(try treeContents(path) == before)

            // Writer: moves exactly the garbage aside, loses nothing.
            let store = try Store.open(path, options: Self.policy)
            #expect(store.headSequence == 4)
            #expect(try fileBytes(Store.eventsPath(path)) == log)
            let recovered = Self.recoveredFiles(path)
            #expect(recovered.count == 1)
            if let name = recovered.first {
                #expect(name.hasSuffix("-at-byte-\(log.count).bin"))
                #expect(try fileBytes(path + "/metadata/recovered/" + name) == bytes)
            }
            #expect(!store.openNotes.contains { $0.contains("did not close cleanly") }, "\(store.openNotes)")
            #expect(try store.text("/etc/hosts") == "127.0.0.1 localhost\n")
            #expect(try store.read(store.stat("/etc/blob")) == [0, 1, 2, 3, 255, 254])
            #expect(try store.read(store.stat("/etc/large")) == (0..<70_000).map { UInt8(($0 * 7) % 251) })
            #expect(try store.put("/etc/after", "ok\n") == 5)
            try store.close()

            let again = try Store.open(path, mode: .readOnly)
            #expect(again.headSequence == 5 && again.openNotes.isEmpty, "\(again.openNotes)")
            #expect(try again.text("/etc/after") == "ok\n")
            #expect(Self.recoveredFiles(path).count == 1)
        }
    }

    /// A line that parses as an event but fails its checks is damage, not a tail: never moved aside.
    @Test func anEventShapedLineAfterTheLogIsNotATail() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let store = try Store.open(path, options: Self.policy)
            try store.put("/a", "a\n")
            let previous = store.headHash
            try store.close()
            var event = Event(
                seq: 2, time: .now(), operation: .mkdir, path: "/d", mode: 0o755, provenance: tester,
                previousHash: previous)
            var line = EventCodec.seal(&event)
            line[line.count - 4] = line[line.count - 4] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")  // last hash digit
            let log = try fileBytes(Store.eventsPath(path))
            try setFileBytes(Store.eventsPath(path), log + line)
            try markUncleanShutdown(path)
            let error = try #require(throws: LayerError.self) { try Store.open(path, options: Self.policy) }
            #expect(error.code == .corrupt && error.sequence == 2, "\(error)")
            #expect(Self.recoveredFiles(path).isEmpty)
            #expect(try fileBytes(Store.eventsPath(path)) == log + line)
        }
    }
}
