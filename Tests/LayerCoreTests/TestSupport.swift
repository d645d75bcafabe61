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
