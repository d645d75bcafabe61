// Real mounts of the built `layerfs` binary.
//
// `withMountedStore` builds a store with LayerCore, starts `layerfs mount STORE MNT -f` as a child
// process, waits (at most 15 s) until MNT shows in /proc/mounts, runs the body, and ALWAYS tears
// down, also when the body throws: `fusermount3 -u` (retried while busy), then `umount -l` as a
// last resort, then the child is waited for (SIGKILL after 5 s), then the temp dir is removed.
// A mount left behind fails the test, because it outlives the run.
//
// Needs root, /dev/fuse and fusermount3: gate tests on `fuseUnavailableReason == nil`.

import Foundation
import LayerCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Why real-mount tests cannot run here, or nil when they can.
let fuseUnavailableReason: String? = {
    if geteuid() != 0 { return "not running as root (mounting FUSE with allow_other semantics needs it)" }
    if access("/dev/fuse", R_OK | W_OK) != 0 { return "/dev/fuse is missing or not accessible" }
    if findExecutable("fusermount3") == nil { return "fusermount3 is not installed (or not on PATH)" }
    if LayerFSBinary.path == nil { return "the layerfs executable was not found: build it or set LAYERFS_BINARY" }
    return nil
}()

func findExecutable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin:/usr/sbin:/sbin"
    for directory in path.split(separator: ":") + ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let candidate = "\(directory)/\(name)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}

/// The `layerfs` executable: $LAYERFS_BINARY, else next to the test bundle, else `.build*/debug/`.
enum LayerFSBinary {
    static let path: String? = {
        let fm = FileManager.default
        if let explicit = ProcessInfo.processInfo.environment["LAYERFS_BINARY"], !explicit.isEmpty {
            return fm.isExecutableFile(atPath: explicit) ? explicit : nil
        }
        var directories: [String] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            directories.append((exe as NSString).deletingLastPathComponent)
        }
        directories.append(Bundle.main.bundleURL.deletingLastPathComponent().path)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        for entry in ((try? fm.contentsOfDirectory(atPath: root.path)) ?? []).sorted() where entry.hasPrefix(".build") {
            directories.append(root.appendingPathComponent(entry).appendingPathComponent("debug").path)
        }
        for directory in directories {
            let candidate = directory + "/layerfs"
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
                fm.isExecutableFile(atPath: candidate)
            {
                return candidate
            }
        }
        return nil
    }()
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// True when `path` is a mount point in /proc/mounts (paths here have no characters it escapes).
func isMounted(_ path: String) -> Bool {
    guard let text = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return false }
    return text.split(separator: "\n").contains { line in
        let fields = line.split(separator: " ")
        return fields.count > 1 && fields[1] == path
    }
}

/// Runs a program to completion; returns (status, stdout + stderr).
@discardableResult
func runProgram(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Unmounts `mountPoint` with `fusermount3 -u`, retried (100 ms apart) while it is busy, then
/// lazily with `umount -l` as a last resort. Returns false when it had to go lazy.
@discardableResult
func unmountRetrying(_ mountPoint: String, attempts: Int = 50) -> Bool {
    var tries = 0
    while isMounted(mountPoint) && tries < attempts {
        _ = try? runProgram(findExecutable("fusermount3")!, ["-u", mountPoint])
        if isMounted(mountPoint) { usleep(100_000) }
        tries += 1
    }
    guard isMounted(mountPoint) else { return true }
    _ = try? runProgram(findExecutable("umount") ?? "/bin/umount", ["-l", mountPoint])
    return false
}

/// A store built for a test, mounted by a `layerfs mount -f` child.
final class MountedStore {
    let directory: String
    let storePath: String
    let mountPoint: String
    let process: Process
    let stderrPath: String

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    init(directory: String, storePath: String, mountPoint: String, options: [String]) throws {
        self.directory = directory
        self.storePath = storePath
        self.mountPoint = mountPoint
        stderrPath = directory + "/mount.stderr"
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(LayerFSBinary.path))
        // The similarity index in the test's directory, not /var/lib/layerfs (options may override).
        process.arguments = ["mount", storePath, mountPoint, "-f", "-o", "index_dir=\(directory)/index"] + options
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
        let deadline = Date().addingTimeInterval(15)
        while !isMounted(mountPoint) {
            if !process.isRunning {
                throw FixtureError("layerfs mount exited with status \(process.terminationStatus) before mounting: \(stderr)")
            }
            if Date() > deadline { throw FixtureError("the mount did not appear within 15 s: \(stderr)") }
            usleep(20_000)
        }
    }

    /// Unmounts (retrying while busy, then lazily), ends the child, checks nothing is left mounted.
    func tearDown() throws {
        var problems: [String] = []
        if isMounted(mountPoint) && !unmountRetrying(mountPoint) {
            problems.append("fusermount3 -u failed 50 times; lazy unmount")
        }
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            problems.append("layerfs mount did not exit after the unmount; killed")
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if isMounted(mountPoint) { _ = try? runProgram(findExecutable("umount") ?? "/bin/umount", ["-l", mountPoint]) }
        }
        if isMounted(mountPoint) { problems.append("\(mountPoint) is still mounted") }
        if !problems.isEmpty { throw FixtureError(problems.joined(separator: "; ") + "; stderr: \(stderr)") }
    }
}

/// A scoped temporary directory, removed afterwards (only if nothing is mounted below it).
func withScratchDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("layerfs-fs-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer {
        if !isMounted(dir + "/mnt") { try? FileManager.default.removeItem(atPath: dir) }
    }
    return try body(dir)
}

let tester = Provenance(uid: 1000, gid: 1000, pid: 4242, process: "tester")

/// Creates a store, lets `build` commit to it, mounts it with `layerfs mount -f`, runs `body`
/// with the fixture (and the store reopened read-only, to compare with), and always tears down.
func withMountedStore<T>(
    options: [String] = [], build: (Store) throws -> Void, _ body: (MountedStore, Store) throws -> T
) throws -> T {
    try withScratchDirectory { dir in
        let storePath = dir + "/store"
        try Store.create(at: storePath, by: tester)
        do {
            let store = try Store.open(storePath, mode: .readWrite, options: Store.Options(sealPolicy: .manual))
            try build(store)
            try store.close()
        }
        let reference = try Store.open(storePath, mode: .readOnly, options: Store.Options(sealPolicy: .manual))
        let mountPoint = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        let fixture = try MountedStore(directory: dir, storePath: storePath, mountPoint: mountPoint, options: options)
        let result = Result { try body(fixture, reference) }
        do {
            try fixture.tearDown()
        } catch {
            if case .failure = result { Issue.record(error) } else { throw error }
        }
        return try result.get()
    }
}

// MARK: - Small file helpers (errno-level, so tests can check EROFS and ENOENT exactly)

enum FS {
    static func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw FixtureError("cannot read \(path): errno \(errno)") }
        return String(decoding: data, as: UTF8.self)
    }

    static func list(_ path: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }

    /// `lstat`'s result, or the errno.
    static func lstat(_ path: String) -> Result<stat, SysError> {
        var st = Glibc.stat()
        return Glibc.lstat(path, &st) == 0 ? .success(st) : .failure(SysError(errno))
    }

    static func inode(_ path: String) throws -> UInt { try lstat(path).get().st_ino }

    /// The errno of `lstat(path)`, 0 if it succeeds.
    static func lstatErrno(_ path: String) -> Int32 {
        switch lstat(path) {
        case .success: return 0
        case .failure(let e): return e.code
        }
    }

    // <sys/xattr.h> is not part of Glibc's Swift module: look the functions up at run time.
    typealias GetXattr = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
    typealias ListXattr = @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<CChar>?, Int) -> Int
    typealias SetXattr = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeRawPointer?, Int, Int32) -> Int32
    static func symbol<F>(_ name: String, as type: F.Type) -> F {
        unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), name)!, to: F.self)
    }
    static let cGetxattr = symbol("getxattr", as: GetXattr.self)
    static let cListxattr = symbol("listxattr", as: ListXattr.self)
    static let cSetxattr = symbol("setxattr", as: SetXattr.self)

    /// The errno of `setxattr(path, name, value)`, 0 on success.
    static func setxattrErrno(_ path: String, _ name: String, _ value: String) -> Int32 {
        let result = value.withCString { cSetxattr(path, name, $0, value.utf8.count, 0) }
        return result == 0 ? 0 : errno
    }

    static func getxattr(_ path: String, _ name: String) -> Result<String, SysError> {
        let size = cGetxattr(path, name, nil, 0)
        guard size >= 0 else { return .failure(SysError(errno)) }
        var buffer = [UInt8](repeating: 0, count: size)
        let n = cGetxattr(path, name, &buffer, size)
        guard n >= 0 else { return .failure(SysError(errno)) }
        return .success(String(decoding: buffer[0..<n], as: UTF8.self))
    }

    static func listxattr(_ path: String) -> [String] {
        let size = cListxattr(path, nil, 0)
        guard size > 0 else { return [] }
        var buffer = [CChar](repeating: 0, count: size)
        let n = cListxattr(path, &buffer, size)
        guard n > 0 else { return [] }
        return buffer[0..<n].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    }

    /// The errno of `open(path, flags, 0644)` (closing it if it succeeds), 0 on success.
    static func openErrno(_ path: String, _ flags: Int32) -> Int32 {
        let fd = Glibc.open(path, flags, 0o644)
        if fd >= 0 {
            close(fd)
            return 0
        }
        return errno
    }
}

struct SysError: Error, Equatable {
    var code: Int32
    init(_ code: Int32) { self.code = code }
}
