// A loop-mounted btrfs for the benchmarks that need one (root only).
//
//     <base>/layerfs-bench-btrfs-XXXXXX/btrfs.img   sparse image
//     <base>/layerfs-bench-btrfs-XXXXXX/mnt         mount point
//     <base>/layerfs-bench-btrfs-XXXXXX/owner.pid   the pid that mounted it
//
// Teardown always runs: after the body, after a failed setup, after a signal (see Processes.swift:
// the measurement itself runs in a child). A run killed with SIGKILL leaves its mount behind;
// the next run finds it through owner.pid (a dead pid) and removes it first.

#if canImport(Glibc)
import Glibc
#endif

enum LoopBtrfs {
    /// Why no loop btrfs can be made here, or nil when it can.
    static var unavailableReason: String? {
        if geteuid() != 0 { return "not running as root (mount and losetup need it)" }
        if access("/dev/loop-control", F_OK) != 0 { return "/dev/loop-control is missing" }
        for tool in ["truncate", "mkfs.btrfs", "mount", "umount", "losetup"] where findTool(tool) == nil {
            return "\(tool) is not installed"
        }
        return nil
    }

    /// Makes the file system, runs `body(mountPoint)`, and tears everything down whatever happens.
    static func with<T>(base: String, sizeMiB: Int, _ body: (String) throws -> T) throws -> T {
        sweepStale(base: base)
        let directory = try makeTemporaryDirectory(in: base, prefix: "layerfs-bench-btrfs-")
        let image = directory + "/btrfs.img"
        let mountPoint = directory + "/mnt"
        let result: Result<T, any Error>
        do {
            try writeOwner(directory)
            guard mkdir(mountPoint, 0o755) == 0 else { throw fail("mkdir \(mountPoint): \(errnoText())") }
            try runTool("truncate", ["-s", "\(sizeMiB)M", image])
            try runTool("mkfs.btrfs", ["-q", image])
            exitIfSignalledAfter { tearDown(directory) }
            try runTool("mount", ["-o", "loop", image, mountPoint])
            exitIfSignalledAfter { tearDown(directory) }
            result = Result { try body(mountPoint) }
        } catch {
            result = .failure(error)
        }
        let problems = tearDown(directory)
        for p in problems { note("WARNING: btrfs teardown: \(p)") }
        exitIfSignalled()
        return try result.get()
    }

    private static func exitIfSignalledAfter(_ cleanup: () -> [String]) {
        if caughtSignal != 0 {
            _ = cleanup()
            exitIfSignalled()
        }
    }

    private static func writeOwner(_ directory: String) throws {
        let fd = open(directory + "/owner.pid", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot write owner.pid: \(errnoText())") }
        defer { close(fd) }
        try writeAll(fd, Array("\(getpid())\n".utf8))
    }

    /// Unmounts (retrying while busy, then lazily), detaches the loop device, removes the dir.
    /// Returns what went wrong; never throws.
    @discardableResult
    static func tearDown(_ directory: String) -> [String] {
        let image = directory + "/btrfs.img"
        let mountPoint = directory + "/mnt"
        var problems: [String] = []
        var attempt = 0
        while mountPoints().contains(mountPoint) {
            attempt += 1
            if attempt <= 10 {
                if (try? runTool("umount", [mountPoint])) == nil { usleep(300_000) }
            } else {
                if (try? runTool("umount", ["-l", mountPoint])) == nil {
                    problems.append("could not unmount \(mountPoint)")
                } else {
                    problems.append("\(mountPoint) stayed busy: lazily unmounted")
                }
                break
            }
        }
        if exists(image) {
            var devices = loopDevices(backing: image)
            var waited = 0
            while !devices.isEmpty && waited < 20 {  // autoclear may lag the unmount a little
                usleep(100_000)
                waited += 1
                devices = loopDevices(backing: image)
            }
            for device in devices where (try? runTool("losetup", ["-d", device])) == nil {
                problems.append("could not detach \(device)")
            }
        }
        if mountPoints().contains(where: { $0.hasPrefix(directory + "/") }) {
            problems.append("not removing \(directory): still mounted")
        } else {
            removeTree(directory)
        }
        return problems
    }

    /// Removes mounts left by bench runs that were killed outright (their owner pid is gone).
    static func sweepStale(base: String) {
        let prefix = base + "/layerfs-bench-btrfs-"
        for mount in mountPoints() where mount.hasPrefix(prefix) && mount.hasSuffix("/mnt") {
            let directory = String(mount.dropLast(4))
            let owner = (try? readTextFile(directory + "/owner.pid")).flatMap { Int32($0.filter(\.isNumber)) } ?? 0
            if owner > 0 && kill(owner, 0) == 0 { continue }  // another live run
            note("removing a btrfs left mounted by an earlier run that was killed: \(directory)")
            for p in tearDown(directory) { note("WARNING: \(p)") }
        }
    }

    /// Mount points from /proc/mounts (octal escapes decoded).
    static func mountPoints() -> [String] {
        guard let text = try? readTextFile("/proc/mounts") else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 1 ? String(fields[1]).replacingOctal() : nil
        }
    }

    private static func loopDevices(backing image: String) -> [String] {
        guard let out = try? runTool("losetup", ["-j", image]) else { return [] }
        return out.split(separator: "\n").compactMap { $0.split(separator: ":", maxSplits: 1).first.map(String.init) }
    }
}
