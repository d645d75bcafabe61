import Foundation
import Testing
@testable import LayerCore

/// python3 from PATH (CI installs it), else the system one.
let pythonForVerifier: String? =
    (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/python3" }
    .first { FileManager.default.isExecutableFile(atPath: $0) }
    ?? ["/usr/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// tools/verify-format.py was written from docs/FORMAT.md alone. Here it checks stores that
/// LayerCore really writes (every operation, blobs, blocks), and, after tampering, must name the
/// same first bad event as LayerCore does.
@Suite(.enabled(if: pythonForVerifier != nil, "python3 is not installed"))
struct IndependentVerifierTests {
    static let python = pythonForVerifier

    static let verifier = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("tools/verify-format.py").path

    /// Runs the independent verifier with --json.
    static func verify(_ store: String) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python!)
        process.arguments = [verifier, store, "--json"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw LayerError(.io, "verify-format.py printed no JSON object: \(String(decoding: data, as: UTF8.self))")
        }
        return object
    }

    static let who = Provenance(uid: 1000, gid: 100, pid: 77, process: "vim")

    static func makeStore(_ path: String) throws {
        try Store.create(at: path, by: who)
        let store = try Store.open(path, options: .init(sealPolicy: .manual))
        try store.commit(.mkdir(path: "/etc"), by: who)
        try store.commit(.write(path: "/etc/motd", content: Array("Hello \"world\"\n\tcafé ☕\u{1}\n".utf8)), by: who)
        try store.commit(.write(path: "/etc/key.bin", content: [0, 255, 16, 128, 127], mode: 0o600), by: who)
        try store.commit(.write(path: "/etc/big.txt", content: Array(repeating: UInt8(ascii: "y"), count: 70_000)), by: who)
        try store.commit(.symlink(path: "/etc/issue", target: "motd"), by: who)
        try store.seal()
        try store.commit(.mkdir(path: "/srv", mode: 0o750), by: who)
        try store.commit(.rename(from: "/etc", to: "/srv/etc"), by: who)
        try store.commit(.chmod(path: "/srv/etc/motd", mode: 0o444), by: who)
        try store.commit(.chown(path: "/srv/etc/motd", owner: 0, group: nil), by: who)
        try store.commit(.setModificationTime(path: "/srv/etc/motd", mtime: Timestamp(nanoseconds: 1_700_000_000_123_456_789)), by: who)
        try store.commit(.truncate(path: "/srv/etc/key.bin", size: 2), by: who)
        try store.commit(.unlink(path: "/srv/etc/issue"), by: who)
        try store.commit(.mkdir(path: "/tmpdir"), by: who)
        try store.commit(.rmdir(path: "/tmpdir"), by: who)
        try store.seal()
        try store.commit(.write(path: "/srv/after-seal", content: Array("x\n".utf8)), by: who)
        try store.close()
    }

    @Test func agreesThatARealStoreIsValid() throws {
        try withTemporaryStoreDirectory { dir in
            let path = dir + "/store"
            try Self.makeStore(path)
            let store = try Store.open(path, mode: .readOnly)
            let result = try Self.verify(path)
            #expect(result["ok"] as? Bool == true, "\(result)")
            #expect((result["events"] as? Int).map(UInt64.init) == store.headSequence + 1)
            #expect(result["blocks"] as? Int == 2)
        }
    }

    @Test func namesTheSameFirstBadEventAfterTampering() throws {
        try withTemporaryStoreDirectory { dir in
            let path = dir + "/store"
            try Self.makeStore(path)
            let log = path + "/events.jsonl"
            let pristine = try Data(contentsOf: URL(fileURLWithPath: log))
            let lineStarts = [0] + pristine.enumerated().filter { $0.element == 10 }.map { $0.offset + 1 }.dropLast()
            // One byte in the middle of every line.
            for (index, start) in lineStarts.enumerated() {
                var bytes = pristine
                let end = pristine[start...].firstIndex(of: 10)!
                bytes[(start + end) / 2] ^= 0x01
                try bytes.write(to: URL(fileURLWithPath: log))
                let ours = try #require(throws: LayerError.self) { try Store.open(path, mode: .readOnly) }
                let theirs = try Self.verify(path)
                #expect(theirs["ok"] as? Bool == false)
                #expect(ours.sequence == UInt64(index), "\(ours)")
                #expect((theirs["first_bad_event"] as? Int).map(UInt64.init) == ours.sequence, "line \(index): \(theirs) vs \(ours)")
            }
            try pristine.write(to: URL(fileURLWithPath: log))
            #expect(try Self.verify(path)["ok"] as? Bool == true)
        }
    }

    func withTemporaryStoreDirectory(_ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("layerfs-indep-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir)
    }
}
