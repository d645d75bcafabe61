// Running the built `layerfs` binary from tests.
//
// The binary is looked for, in order: $LAYERFS_BINARY; next to the running test executable (SwiftPM
// puts `layerfs` and `layerfsPackageTests.xctest` in the same directory, whatever --scratch-path
// says); next to Bundle.main; then in the package's `.build*/debug/` directories. `swift test` builds
// every product, the executable included, before running tests.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What one run of `layerfs` did.
struct CLIResult {
    var status: Int32
    var stdoutBytes: [UInt8]
    var stderr: String

    var stdout: String { String(decoding: stdoutBytes, as: UTF8.self) }
    var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }
}

enum CLI {
    /// The `layerfs` executable, or nil when it cannot be found.
    static let binary: String? = locate()

    static func locate() -> String? {
        let fm = FileManager.default
        func executable(_ path: String) -> String? {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                fm.isExecutableFile(atPath: path)
            else { return nil }
            return path
        }
        if let explicit = ProcessInfo.processInfo.environment["LAYERFS_BINARY"], !explicit.isEmpty {
            return executable(explicit)
        }
        var directories: [String] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            directories.append((exe as NSString).deletingLastPathComponent)
        }
        let bundle = Bundle.main.bundleURL
        directories.append(bundle.path)
        directories.append(bundle.deletingLastPathComponent().path)
        // The package root, from this file's path: Tests/LayerIntegrationTests/<file>.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        if let entries = try? fm.contentsOfDirectory(atPath: root.path) {
            for entry in entries.sorted() where entry.hasPrefix(".build") {
                directories.append(root.appendingPathComponent(entry).appendingPathComponent("debug").path)
            }
        }
        for directory in directories {
            if let found = executable(directory + "/layerfs") { return found }
        }
        return nil
    }

    /// Runs `layerfs args...`, capturing stdout (bytes) and stderr, with stderr not a terminal.
    static func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> CLIResult {
        let binary = try #require(CLI.binary, "the layerfs executable was not found: build it (swift build) or set LAYERFS_BINARY")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("layerfs-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outPath = scratch.appendingPathComponent("stdout").path
        let errPath = scratch.appendingPathComponent("stderr").path
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))

        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "LAYERFS_LOG_LEVEL")
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        return CLIResult(
            status: process.terminationStatus,
            stdoutBytes: Array(try Data(contentsOf: URL(fileURLWithPath: outPath))),
            stderr: String(decoding: try Data(contentsOf: URL(fileURLWithPath: errPath)), as: UTF8.self))
    }
}

/// A scoped temporary directory for CLI tests, removed afterwards even when the body throws.
func withCLITemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("layerfs-cli-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// Small file-tree helpers with explicit modes (the umask must not decide what a test expects).
enum Tree {
    static func write(_ path: String, _ text: String, mode: Int = 0o644) throws {
        try write(path, Array(text.utf8), mode: mode)
    }

    static func write(_ path: String, _ bytes: [UInt8], mode: Int = 0o644) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    static func mkdir(_ path: String, mode: Int = 0o755) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    static func symlink(_ path: String, to target: String) throws {
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
    }

    static func remove(_ path: String) throws {
        try FileManager.default.removeItem(atPath: path)
    }
}

/// The columns of a human `layerfs log` line that do not depend on time or process: seq, op,
/// path and details, without the time column and the trailing `by uid ... pid ...`.
func logColumns(_ line: String) -> String {
    var fields = line.components(separatedBy: "  ").filter { !$0.isEmpty }
    if fields.count > 1 { fields.remove(at: 1) }  // the time
    if let last = fields.last, last.hasPrefix("by uid ") { fields.removeLast() }
    return fields.map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
}
