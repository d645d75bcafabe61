import Foundation
@testable import LayerCore

/// A scoped temporary directory, removed afterwards even when the body throws.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("layerfs-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

let tester = Provenance(uid: 1000, gid: 1000, pid: 4242, process: "tester")

extension Store {
    /// Writes UTF-8 text (test helper).
    @discardableResult
    func put(_ path: String, _ text: String, mode: UInt32? = nil) throws -> UInt64? {
        try commit(.write(path: path, content: Array(text.utf8), mode: mode), by: tester)
    }

    func text(_ path: String, at seq: UInt64? = nil) throws -> String {
        String(decoding: try read(stat(path, at: seq)), as: UTF8.self)
    }
}

// MARK: - Raw store files (recovery, tamper and reconstruction tests)

/// The bytes of a file (test helper; traps the test with a thrown error if unreadable).
func fileBytes(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw TestFailure("cannot read \(path)")
    }
    return [UInt8](data)
}

/// Replaces a file's bytes (not atomically: tests simulate what a crash or an editor leaves).
func setFileBytes(_ path: String, _ bytes: [UInt8]) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
        throw TestFailure("cannot write \(path)")
    }
}

/// Every regular file below `root` (relative path → bytes): to prove an operation changed nothing.
func treeContents(_ root: String) throws -> [String: [UInt8]] {
    var out: [String: [UInt8]] = [:]
    guard let walker = FileManager.default.enumerator(atPath: root) else { throw TestFailure("cannot list \(root)") }
    while let relative = walker.nextObject() as? String {
        var isDirectory: ObjCBool = false
        let full = root + "/" + relative
        if FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue {
            out[relative] = try fileBytes(full)
        }
    }
    return out
}

/// The lines of a log or blocks file, each with its newline.
func splitLines(_ bytes: [UInt8]) -> [[UInt8]] {
    var lines: [[UInt8]] = []
    var current: [UInt8] = []
    for b in bytes {
        current.append(b)
        if b == UInt8(ascii: "\n") { lines.append(current); current = [] }
    }
    if !current.isEmpty { lines.append(current) }
    return lines
}

/// What a writer killed with SIGKILL leaves in metadata/writer.lock: its holder line.
func markUncleanShutdown(_ store: String) throws {
    try setFileBytes(store + "/metadata/writer.lock", Array("pid 999999 (killed-writer) on testhost since 2026-11-21T09:00:00.000000000Z\n".utf8))
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
