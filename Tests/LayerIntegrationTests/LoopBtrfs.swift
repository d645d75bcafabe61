// A real btrfs for tests: a sparse image file, formatted with mkfs.btrfs and loop-mounted.
//
// Layout of one fixture (all inside one fresh temp dir, removed afterwards):
//
//     /tmp/layerfs-btrfs-XXXXXX/btrfs.img    the image (sparse, sizeMiB)
//     /tmp/layerfs-btrfs-XXXXXX/mnt          its mount point: the path handed to the body
//
// Teardown always runs, also when the body or the setup throws: unmount (retrying while the mount
// is busy, then a lazy unmount as a last resort), detach any loop device still attached to the
// image, remove the temp dir. A teardown failure fails the call (or is recorded as an issue if
// the body already failed), because a leaked mount or loop device outlives the test run.
//
// Needs root, /dev/loop-control, btrfs-progs and util-linux: gate tests on
// `loopBtrfsUnavailableReason == nil`.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why loop-mounted btrfs tests cannot run on this machine, or nil when they can.
var loopBtrfsUnavailableReason: String? {
    if geteuid() != 0 { return "not running as root (mount and losetup need it)" }
    if access("/dev/loop-control", F_OK) != 0 {
        return "/dev/loop-control is missing (no loop devices)"
    }
    for tool in ["truncate", "mkfs.btrfs", "mount", "umount", "losetup"] {
        if ExternalCommand.find(tool) == nil { return "\(tool) is not installed (or not on PATH)" }
    }
    return nil
}

/// Runs `body` with the path of a freshly made, loop-mounted btrfs of `sizeMiB` MiB, and tears it
/// all down afterwards (see the file header).
func withLoopBtrfs<T>(sizeMiB: Int = 256, _ body: (String) throws -> T) throws -> T {
    let fixture = try LoopBtrfs(sizeMiB: sizeMiB)
    let result = Result { try body(fixture.mountPoint) }
    try fixture.tearDown(afterBodyFailed: isFailure(result))
    return try result.get()
}

/// Async variant of `withLoopBtrfs(sizeMiB:_:)`.
func withLoopBtrfs<T>(
    sizeMiB: Int = 256, isolation: isolated (any Actor)? = #isolation,
    _ body: (String) async throws -> T
) async throws -> T {
    let fixture = try LoopBtrfs(sizeMiB: sizeMiB)
    let result: Result<T, any Error>
    do {
        result = .success(try await body(fixture.mountPoint))
    } catch {
        result = .failure(error)
    }
    try fixture.tearDown(afterBodyFailed: isFailure(result))
    return try result.get()
}

private func isFailure<T>(_ result: Result<T, any Error>) -> Bool {
    if case .failure = result { return true }
    return false
}

/// Paths mounted at the moment, from /proc/mounts (octal escapes such as `\040` decoded).
func currentMountPoints() throws -> [String] {
    let text = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
    return text.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        return fields.count > 1 ? decodeMountField(String(fields[1])) : nil
    }
}

/// Loop devices (`/dev/loopN`) whose backing file is `image`, from `losetup -j`.
func loopDevices(backing image: String) throws -> [String] {
    let output = try ExternalCommand.run("losetup", ["-j", image])
    return output.split(separator: "\n").compactMap { line in
        line.split(separator: ":", maxSplits: 1).first.map(String.init)
    }
}

private func decodeMountField(_ field: String) -> String {
    var bytes: [UInt8] = []
    let utf8 = Array(field.utf8)
    var index = 0
    while index < utf8.count {
        if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count,
            let value = UInt8(
                String(decoding: utf8[(index + 1)...(index + 3)], as: UTF8.self), radix: 8)
        {
            bytes.append(value)
            index += 4
        } else {
            bytes.append(utf8[index])
            index += 1
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// One loop-mounted btrfs. `init` sets it up (and cleans up itself if setup fails halfway);
/// `tearDown` removes it.
private struct LoopBtrfs {
    let directory: String
    let image: String
    let mountPoint: String

    init(sizeMiB: Int) throws {
        var template = Array("/tmp/layerfs-btrfs-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) != nil }
        guard created else {
            throw HarnessError("mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        directory = String(
            decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        image = directory + "/btrfs.img"
        mountPoint = directory + "/mnt"
        do {
            try FileManager.default.createDirectory(
                atPath: mountPoint, withIntermediateDirectories: false)
            try ExternalCommand.run("truncate", ["-s", "\(sizeMiB)M", image])
            try ExternalCommand.run("mkfs.btrfs", ["-q", image])
            try ExternalCommand.run("mount", ["-o", "loop", image, mountPoint])
        } catch {
            try? tearDown(afterBodyFailed: true)
            throw error
        }
    }

    /// Unmounts, detaches and removes everything. Every step runs even if an earlier one failed;
    /// the first failure is thrown at the end, or recorded as a test issue if `afterBodyFailed`
    /// (so the body's own error is the one that propagates).
    func tearDown(afterBodyFailed: Bool) throws {
        var problems: [String] = []

        // 1. Unmount. umount reports EBUSY as exit status 32 like every other failure, so retry
        //    for as long as the mount is still listed, then fall back to a lazy unmount.
        do {
            var attempt = 0
            while try currentMountPoints().contains(mountPoint) {
                attempt += 1
                if attempt <= 10 {
                    if (try? ExternalCommand.run("umount", [mountPoint])) == nil {
                        usleep(300_000)
                    }
                } else {
                    try ExternalCommand.run("umount", ["-l", mountPoint])
                    problems.append("\(mountPoint) stayed busy; detached it with umount -l")
                    break
                }
            }
        } catch {
            problems.append("unmounting \(mountPoint): \(error)")
        }

        // 2. Detach the loop device. `mount -o loop` sets autoclear, so unmounting normally
        //    detaches it, but the kernel may finish that a moment later: wait briefly first.
        if FileManager.default.fileExists(atPath: image) {
            do {
                var devices = try loopDevices(backing: image)
                var waited = 0
                while !devices.isEmpty && waited < 20 {
                    usleep(100_000)
                    waited += 1
                    devices = try loopDevices(backing: image)
                }
                for device in devices {
                    try ExternalCommand.run("losetup", ["-d", device])
                }
            } catch {
                problems.append("detaching loop devices of \(image): \(error)")
            }
        }

        // 3. Remove the temp dir, but never while something is still mounted inside it.
        do {
            if try currentMountPoints().contains(where: { $0.hasPrefix(directory + "/") }) {
                problems.append("not removing \(directory): still mounted")
            } else {
                try FileManager.default.removeItem(atPath: directory)
            }
        } catch {
            problems.append("removing \(directory): \(error)")
        }

        guard !problems.isEmpty else { return }
        let message = "loop btrfs teardown: " + problems.joined(separator: "; ")
        if afterBodyFailed {
            Issue.record(Comment(rawValue: message))
        } else {
            throw HarnessError(message)
        }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// External programs run through Foundation's `Process`, with their output captured.
enum ExternalCommand {
    /// Directories searched besides $PATH: the sbin ones are often missing from a test's PATH.
    private static let extraDirectories = [
        "/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin",
    ]

    /// The full path of the executable `name`, or nil.
    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + extraDirectories
        return directories.map { $0 + "/" + name }.first { access($0, X_OK) == 0 }
    }

    /// Runs `name` with `arguments`, waits for it and returns its standard output. Throws with
    /// the command line, exit status and standard error if it cannot start or exits non-zero.
    @discardableResult
    static func run(_ name: String, _ arguments: [String]) throws -> String {
        let commandLine = ([name] + arguments).joined(separator: " ")
        guard let executable = find(name) else {
            throw HarnessError("`\(commandLine)`: \(name) not found")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["LC_ALL"] = "C"
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        do {
            try process.run()
        } catch {
            throw HarnessError("`\(commandLine)` could not start: \(error)")
        }
        // Drain stderr on another thread so neither pipe can fill up and stall the child.
        let errorText = DrainedPipe(errors)
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stdout = String(decoding: outputData, as: UTF8.self)
        let stderr = errorText.wait()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let how =
                process.terminationReason == .exit
                ? "exit status \(process.terminationStatus)" : "signal \(process.terminationStatus)"
            let detail =
                [stderr, stdout].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                .first { !$0.isEmpty } ?? "no output"
            throw HarnessError("`\(commandLine)` failed (\(how)): \(detail)")
        }
        return stdout
    }
}

/// Reads a pipe to its end on a background thread.
private final class DrainedPipe: @unchecked Sendable {
    // `data` is written by the reader thread before `done.signal()` and read only after
    // `done.wait()`, so the semaphore orders every access.
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ pipe: Pipe) {
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}
